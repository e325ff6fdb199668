//! The solver: sets of jobs, largest first, each tried by greedy schedules in fixed and random
//! orders, then by a bounded exhaustive search, until the most deadlines that can be met are
//! found or bounded.

use super::search::*;
use super::*;

/// What became of one set of jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Proven: no schedule meets all of them (cheaper than the incumbent, when one was given).
    RuledOut,
    /// The budget ran out before a proof.
    Unresolved,
    /// A schedule was found, proven the cheapest for this set.
    Optimal,
}

pub(super) struct Solver<'a> {
    pub(super) caps: &'a [Cpus],
    pub(super) preps: &'a [Prep],
    pub(super) budget: u64,
    pub(super) visited: u64,
}

impl Solver<'_> {
    /// The energy argument over windows `[a, b]` between a submission and a deadline: `false`
    /// when the set's jobs need more CPU-seconds inside than the nodes have there. A job needs
    /// its alone-minimum, less what its largest allocation can spend in the parts of its own
    /// window outside `[a, b]`.
    pub(super) fn windows_fit(&self, set: &[usize], alone: &[f64]) -> bool {
        let total: f64 = self.caps.iter().map(|c| c.as_f64()).sum();
        set.iter().all(|&a| {
            let from = self.preps[a].submit;
            set.iter().all(|&b| {
                let to = self.preps[b].due;
                if to <= from {
                    return true;
                }
                let need: f64 = set
                    .iter()
                    .map(|&j| {
                        let p = &self.preps[j];
                        let outside = (from - p.submit).max(0.0) + (p.due - to).max(0.0);
                        (alone[j] - p.top * outside).max(0.0)
                    })
                    .sum();
                need <= total * (to - from) + COST_EPS
            })
        })
    }

    /// Searches set `set` for a schedule cheaper than `incumbent`.
    pub(super) fn search_set(
        &mut self,
        set: &[usize],
        plans: &[Vec<Opt>],
        incumbent: f64,
    ) -> (Verdict, Option<(f64, Schedule)>) {
        let members: Vec<&Prep> = set.iter().map(|&j| &self.preps[j]).collect();
        let set_plans: Vec<Vec<Opt>> = set.iter().map(|&j| plans[j].clone()).collect();
        let mut orders: Vec<Vec<usize>> = Vec::new();
        let mut by = |key: &dyn Fn(usize) -> f64| {
            let mut o: Vec<usize> = (0..set.len()).collect();
            o.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
            if !orders.contains(&o) {
                orders.push(o);
            }
        };
        by(&|m| members[m].due);
        by(&|m| members[m].submit);
        by(&|m| {
            members[m].due - members[m].submit - set_plans[m].iter().map(|o| o.secs).sum::<f64>()
        });
        by(&|m| {
            -set_plans[m]
                .iter()
                .map(|o| o.cpus.as_f64())
                .fold(0.0, f64::max)
        });
        // First the cheapest plans, greedily: if they fit, nothing is cheaper.
        let lower: f64 = set_plans.iter().flatten().map(|o| o.cost).sum();
        if lower < incumbent - COST_EPS {
            for order in &orders {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                if s.place_plans(order, &set_plans) {
                    return (Verdict::Optimal, Some((s.cost, s.units)));
                }
            }
        }
        // Then greedy schedules that adapt each unit's allocation to where it can start: a
        // schedule to beat, so that the search prunes on cost from the start.
        let mut greedy: Option<(f64, Schedule)> = None;
        for order in &orders {
            for rule in [Adapt::Cheapest, Adapt::Earliest] {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                let best = greedy.as_ref().map_or(incumbent, |g| g.0);
                if s.place_adaptive(order, rule).is_ok() && s.cost < best - COST_EPS {
                    greedy = Some((s.cost, s.units));
                }
            }
        }
        // Then the same from random orders (seeded by the set: deterministic), charged to the
        // search budget: until one works, and a few more to keep the cheapest.
        let mut rng = ChaCha8Rng::seed_from_u64(set.iter().fold(0x0a11_ce00, |h, &j| {
            h.wrapping_mul(31).wrapping_add(j as u64)
        }));
        let units: u64 = members.iter().map(|p| p.units() as u64).sum();
        let mut order: Vec<usize> = (0..set.len()).collect();
        let mut extra = RESTARTS_AFTER_SUCCESS;
        for _ in 0..RESTARTS {
            if extra == 0 || self.visited + units > self.budget {
                break;
            }
            self.visited += units;
            order.shuffle(&mut rng);
            for rule in [Adapt::Cheapest, Adapt::Earliest] {
                let mut s = SetSearch::new(self.caps, members.clone(), incumbent, 0);
                let best = greedy.as_ref().map_or(incumbent, |g| g.0);
                if s.place_adaptive(&order, rule).is_ok() && s.cost < best - COST_EPS {
                    greedy = Some((s.cost, s.units));
                }
            }
            if greedy.is_some() {
                extra -= 1;
            }
        }
        let incumbent = greedy.as_ref().map_or(incumbent, |g| g.0);
        let left = self.budget.saturating_sub(self.visited);
        let mut s = SetSearch::new(self.caps, members, incumbent, left);
        s.search();
        self.visited += s.visited.min(left);
        let found = s.best.map(|units| (s.best_cost, units)).or(greedy);
        let verdict = match (&found, s.out_of_budget) {
            (_, true) => Verdict::Unresolved,
            (Some(_), false) => Verdict::Optimal,
            (None, false) => Verdict::RuledOut,
        };
        (verdict, found)
    }

    /// Long on purpose: one search — jobs alone, the exact branch and bound, then the bound where
    /// exact is too slow — whose steps share the same tables.
    pub(super) fn solve(mut self) -> Oracle {
        let n = self.preps.len();
        let alone: Vec<Option<(f64, Vec<Opt>)>> = self.preps.iter().map(Prep::alone).collect();
        let feasible: Vec<usize> = (0..n).filter(|&j| alone[j].is_some()).collect();
        let alone_cost: Vec<f64> = alone
            .iter()
            .map(|a| a.as_ref().map_or(0.0, |a| a.0))
            .collect();
        let plans: Vec<Vec<Opt>> = alone
            .iter()
            .map(|a| a.as_ref().map_or_else(Vec::new, |a| a.1.clone()))
            .collect();

        // Largest sets first; within a size, cheapest lower bound first.
        let mut found: Option<(usize, f64, Vec<usize>, Schedule)> = None;
        // Per size: the least lower bound among sets not ruled out (sizes not reached: none).
        let mut open_bound: Vec<Option<f64>> = vec![None; feasible.len() + 1];
        let mut proven = true;
        let mut separable = false;
        for size in (0..=feasible.len()).rev() {
            let mut sets = match combinations(&feasible, size, MAX_SETS_PER_SIZE) {
                Some(sets) => sets,
                None => {
                    // Too many to enumerate: this size stays open, bounded by its k cheapest.
                    let mut costs: Vec<f64> = feasible.iter().map(|&j| alone_cost[j]).collect();
                    costs.sort_by(f64::total_cmp);
                    open_bound[size] = Some(costs[..size].iter().sum());
                    proven = false;
                    continue;
                }
            };
            let lower = |s: &Vec<usize>| s.iter().map(|&j| alone_cost[j]).sum::<f64>();
            sets.sort_by(|a, b| lower(a).total_cmp(&lower(b)));
            let mut best: Option<(f64, Vec<usize>, Schedule)> = None;
            for set in sets {
                let lb = lower(&set);
                let incumbent = best.as_ref().map_or(f64::INFINITY, |b| b.0);
                if lb >= incumbent - COST_EPS {
                    break;
                }
                if !self.windows_fit(&set, &alone_cost) {
                    continue;
                }
                let (verdict, schedule) = self.search_set(&set, &plans, incumbent);
                if verdict == Verdict::Unresolved {
                    proven = false;
                    let open = open_bound[size].get_or_insert(lb);
                    *open = open.min(lb);
                }
                if let Some((cost, units)) = schedule {
                    if best.is_none() && size == feasible.len() && (cost - lb).abs() <= COST_EPS {
                        separable = true;
                    }
                    best = Some((cost, set, units));
                }
            }
            if let Some((cost, set, units)) = best {
                let open = open_bound[size].get_or_insert(cost);
                *open = open.min(cost);
                found = Some((size, cost, set, units));
                break;
            }
        }

        let (met_found, cost_found, set, units) = found.unwrap_or((0, 0.0, Vec::new(), Vec::new()));
        // The bound: the largest size not ruled out, and its least open lower bound.
        let met = (met_found..=feasible.len())
            .rev()
            .find(|&s| open_bound[s].is_some())
            .unwrap_or(met_found);
        let cpu_bound = open_bound[met].unwrap_or(cost_found);
        let exact = proven && met == met_found;
        let mut per_job: Vec<OracleJobPlan> = (0..n)
            .map(|j| OracleJobPlan {
                met: false,
                alone_cpu_seconds: alone[j].as_ref().map(|a| a.0),
                units: Vec::new(),
                finish: None,
                cpu_seconds: 0.0,
            })
            .collect();
        for (m, plan) in set.iter().zip(units) {
            let job = &mut per_job[*m];
            job.met = true;
            job.finish = plan.last().map(|u| u.finish);
            job.cpu_seconds = plan.iter().map(|u| u.cpu_seconds).sum();
            job.units = plan;
        }
        let method = if exact && separable {
            format!(
                "exact: all {} jobs that can meet their deadline alone were placed together with \
                 their individually cheapest plans (a DP over the allocation grid), reaching both \
                 the upper bound on deadlines met and the lower bound on CPU-seconds",
                feasible.len()
            )
        } else if exact {
            format!(
                "exact: of the {} jobs feasible alone, every larger set and every cheaper set of \
                 {met} was ruled out by node-capacity energy over [submit, deadline] windows or \
                 by a complete branch and bound over placements ({} nodes)",
                feasible.len(),
                self.visited
            )
        } else if met == met_found {
            format!(
                "deadlines exact, CPU-s bounded: {met} met (of {} feasible alone; every larger \
                 set ruled out by energy or search), with between {cpu_bound:.1} CPU-s (the sum \
                 of individually cheapest plans of the cheapest set not ruled out) and \
                 {cost_found:.1} (the schedule found); the search budget of {} nodes ran out",
                feasible.len(),
                self.budget
            )
        } else {
            format!(
                "bound: at most {met} deadlines (of {} feasible alone; larger sets ruled out by \
                 energy or search) with at least {cpu_bound:.1} CPU-s (the sum of individually \
                 cheapest plans of the cheapest set not ruled out); the best schedule found meets \
                 {met_found} with {cost_found:.1} CPU-s; the search budget of {} nodes ran out",
                feasible.len(),
                self.budget
            )
        };
        Oracle {
            met,
            cpu_seconds: if exact { cost_found } else { cpu_bound },
            exact,
            met_exact: met == met_found,
            method,
            feasible_alone: feasible.len(),
            schedule_met: met_found,
            schedule_cpu_seconds: cost_found,
            per_job,
            search_nodes: self.visited,
        }
    }
}

/// All `size`-element subsets of `items` (in lexicographic order), or `None` if there are more
/// than `cap`.
pub(super) fn combinations(items: &[usize], size: usize, cap: usize) -> Option<Vec<Vec<usize>>> {
    let n = items.len();
    let mut count: u128 = 1;
    for i in 0..size {
        count = count * (n - i) as u128 / (i + 1) as u128;
    }
    if count > cap as u128 {
        return None;
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut idx: Vec<usize> = (0..size).collect();
    loop {
        out.push(idx.iter().map(|&i| items[i]).collect());
        // Advance to the next combination.
        let Some(pos) = (0..size).rev().find(|&i| idx[i] < n - size + i) else {
            break;
        };
        idx[pos] += 1;
        for i in pos + 1..size {
            idx[i] = idx[i - 1] + 1;
        }
    }
    Some(out)
}
