//! The search's pieces: per job the Pareto frontier of (time, CPU-seconds) over its units'
//! allocations, and a set of jobs placed unit by unit on the nodes.

use super::*;

/// What a greedy schedule favours for each unit.
#[derive(Debug, Clone, Copy)]
pub(super) enum Adapt {
    /// The cheapest allocation from which the job can still make it.
    Cheapest,
    /// The earliest end from which the job can still make it.
    Earliest,
}

/// Units placed per job of a set, in the set's order.
pub(super) type Schedule = Vec<Vec<UnitPlan>>;

/// One allocation of one unit: how long it takes and what it costs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Opt {
    pub(super) cpus: Cpus,
    pub(super) secs: f64,
    pub(super) cost: f64,
}

/// A point of a suffix frontier: units `k..` take `time` seconds back to back for `cost`
/// CPU-seconds, unit `k` at `opt`, the rest as point `next` of the following frontier.
#[derive(Debug, Clone, Copy)]
pub(super) struct Point {
    pub(super) time: f64,
    pub(super) cost: f64,
    pub(super) opt: u16,
    pub(super) next: u32,
}

/// A job prepared for the search.
pub(super) struct Prep {
    pub(super) submit: f64,
    /// Deadline plus the tolerance.
    pub(super) due: f64,
    /// The largest allocation it can hold: no unit charges CPU-seconds faster than this.
    pub(super) top: f64,
    /// The allocations worth considering for each unit (each faster than every smaller one),
    /// fastest first.
    pub(super) opts: Vec<Vec<Opt>>,
    /// `suffix[k]`: the Pareto frontier (time ascending, cost strictly descending) of units
    /// `k..`; `suffix[units]` is the empty plan. Points too slow to ever meet the deadline are
    /// left out.
    pub(super) suffix: Vec<Vec<Point>>,
}

impl Prep {
    pub(super) fn new(job: &OracleJob, levels: &[Cpus]) -> Self {
        let opts: Vec<Vec<Opt>> = job
            .units
            .iter()
            .map(|u| {
                // A larger allocation is worth considering only if it is faster: a slower or
                // equally fast one is wider and no cheaper (beyond the threads, say). An equally
                // cheap but slower one stays, being narrower: it may pack where the other
                // cannot.
                let mut kept: Vec<Opt> = Vec::new();
                for &c in levels {
                    let secs = u.overhead + u.speed.time(c.min(job.threads));
                    if secs.is_finite() && kept.last().is_none_or(|k| secs < k.secs) {
                        kept.push(Opt {
                            cpus: c,
                            secs,
                            cost: c.as_f64() * secs,
                        });
                    }
                }
                kept.reverse();
                kept
            })
            .collect();
        let due = job.deadline_at + DEADLINE_TOLERANCE;
        let window = due - job.submit_at;
        let n = opts.len();
        // The least time units 0..k take, to leave out suffix points that can never fit.
        let mut prefix_min = vec![0.0; n + 1];
        for k in 0..n {
            let fastest = opts[k].first().map_or(f64::INFINITY, |o| o.secs);
            prefix_min[k + 1] = prefix_min[k] + fastest;
        }
        let mut suffix = vec![Vec::new(); n + 1];
        suffix[n] = vec![Point {
            time: 0.0,
            cost: 0.0,
            opt: 0,
            next: 0,
        }];
        for k in (0..n).rev() {
            suffix[k] = pareto_sum(&opts[k], &suffix[k + 1], window - prefix_min[k]);
        }
        Self {
            submit: job.submit_at,
            due,
            top: levels.last().map_or(0.0, |c| c.as_f64()),
            opts,
            suffix,
        }
    }

    pub(super) fn units(&self) -> usize {
        self.opts.len()
    }

    /// The cheapest plan for units `k..` started at `from` that ends by the deadline: its cost
    /// and its point in `suffix[k]`.
    pub(super) fn cheapest(&self, k: usize, from: f64) -> Option<(f64, usize)> {
        let limit = self.due - from;
        let frontier = &self.suffix[k];
        let i = frontier.partition_point(|p| p.time <= limit);
        (i > 0).then(|| (frontier[i - 1].cost, i - 1))
    }

    /// The allocations of plan `point` of `suffix[k]`, one per unit from `k`.
    pub(super) fn plan(&self, k: usize, point: usize) -> Vec<Opt> {
        let mut out = Vec::with_capacity(self.units() - k);
        let mut p = self.suffix[k][point];
        for u in k..self.units() {
            out.push(self.opts[u][usize::from(p.opt)]);
            p = self.suffix[u + 1][p.next as usize];
        }
        out
    }

    /// The cheapest plan that meets the deadline alone, from the submission.
    pub(super) fn alone(&self) -> Option<(f64, Vec<Opt>)> {
        self.cheapest(0, self.submit)
            .map(|(cost, point)| (cost, self.plan(0, point)))
    }
}

/// The Pareto frontier of `opts ⊕ next` (one option followed by one point of `next`, times and
/// costs added) up to `limit` seconds, time ascending: a merge of the option's shifted copies of
/// `next` (each already sorted), skipping the points a cheaper one found earlier dominates.
pub(super) fn pareto_sum(opts: &[Opt], next: &[Point], limit: f64) -> Vec<Point> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// A candidate point, ordered by (time, cost, option, point).
    #[derive(PartialEq)]
    struct Head(f64, f64, usize, usize);
    impl Eq for Head {}
    impl PartialOrd for Head {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Head {
        fn cmp(&self, o: &Self) -> std::cmp::Ordering {
            self.0
                .total_cmp(&o.0)
                .then(self.1.total_cmp(&o.1))
                .then(self.2.cmp(&o.2))
                .then(self.3.cmp(&o.3))
        }
    }
    let head = |oi: usize, pi: usize| {
        let (o, p) = (&opts[oi], next.get(pi)?);
        let time = o.secs + p.time;
        (time <= limit).then_some(Reverse(Head(time, o.cost + p.cost, oi, pi)))
    };
    let mut heap: BinaryHeap<Reverse<Head>> =
        (0..opts.len()).filter_map(|oi| head(oi, 0)).collect();
    let mut out = Vec::new();
    let mut best = f64::INFINITY;
    while let Some(Reverse(Head(time, cost, oi, pi))) = heap.pop() {
        if cost < best {
            best = cost;
            out.push(Point {
                time,
                cost,
                opt: oi as u16,
                next: pi as u32,
            });
        }
        // `next` is cost-descending: jump to its first point that can still beat `best`.
        let bar = best - opts[oi].cost;
        let skip = next[pi + 1..].partition_point(|p| p.cost >= bar);
        if let Some(h) = head(oi, pi + 1 + skip) {
            heap.push(h);
        }
    }
    out
}

/// A unit placed on a node: `[start, end)` holding `milli` millicores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Interval {
    pub(super) start: f64,
    pub(super) end: f64,
    pub(super) milli: u32,
}

/// The earliest start at or after `ready` where `milli` fits on a node of `cap` millicores for
/// `secs` seconds next to `placed`.
pub(super) fn earliest(placed: &[Interval], cap: u32, ready: f64, secs: f64, milli: u32) -> f64 {
    if milli > cap {
        return f64::INFINITY;
    }
    let mut candidates: Vec<f64> = std::iter::once(ready)
        .chain(placed.iter().map(|iv| iv.end).filter(|&e| e > ready))
        .collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    for s in candidates {
        let e = s + secs;
        // The load only rises where an interval starts, so check `s` and every start inside.
        let fits = std::iter::once(s)
            .chain(placed.iter().map(|iv| iv.start).filter(|&t| t > s && t < e))
            .all(|t| {
                let load: u32 = placed
                    .iter()
                    .filter(|iv| iv.start <= t && t < iv.end)
                    .map(|iv| iv.milli)
                    .sum();
                load + milli <= cap
            });
        if fits {
            return s;
        }
    }
    f64::INFINITY
}

/// The jobs of one set, as the search sees them.
pub(super) struct SetSearch<'a> {
    pub(super) caps: &'a [Cpus],
    pub(super) total_cap: f64,
    pub(super) members: Vec<&'a Prep>,
    pub(super) placed: Vec<Vec<Interval>>,
    pub(super) next: Vec<usize>,
    pub(super) ready: Vec<f64>,
    pub(super) cost: f64,
    pub(super) units: Schedule,
    /// Start and member of the last unit placed: the next must come after it.
    pub(super) last: (f64, Option<usize>),
    pub(super) best_cost: f64,
    pub(super) best: Option<Schedule>,
    pub(super) visited: u64,
    pub(super) budget: u64,
    pub(super) out_of_budget: bool,
}

impl<'a> SetSearch<'a> {
    pub(super) fn new(
        caps: &'a [Cpus],
        members: Vec<&'a Prep>,
        incumbent: f64,
        budget: u64,
    ) -> Self {
        let n = members.len();
        Self {
            caps,
            total_cap: caps.iter().map(|c| c.as_f64()).sum(),
            ready: members.iter().map(|p| p.submit).collect(),
            members,
            placed: vec![Vec::new(); caps.len()],
            next: vec![0; n],
            cost: 0.0,
            units: vec![Vec::new(); n],
            last: (f64::NEG_INFINITY, None),
            best_cost: incumbent,
            best: None,
            visited: 0,
            budget,
            out_of_budget: false,
        }
    }

    pub(super) fn place(&mut self, m: usize, opt: Opt, node: usize, start: f64) {
        let end = start + opt.secs;
        self.placed[node].push(Interval {
            start,
            end,
            milli: opt.cpus.milli(),
        });
        self.units[m].push(UnitPlan {
            cpus: opt.cpus,
            node,
            start,
            finish: end,
            cpu_seconds: opt.cost,
        });
        self.next[m] += 1;
        self.ready[m] = end;
        self.cost += opt.cost;
    }

    pub(super) fn unplace(&mut self, m: usize, node: usize, ready: f64, cost: f64) {
        self.placed[node].pop();
        self.units[m].pop();
        self.next[m] -= 1;
        self.ready[m] = ready;
        self.cost -= cost;
    }

    /// The earliest start of member `m`'s next unit at `opt` on node `n` (infinite if it never
    /// fits there).
    pub(super) fn start_on(&self, n: usize, m: usize, opt: Opt) -> f64 {
        earliest(
            &self.placed[n],
            self.caps[n].milli(),
            self.ready[m],
            opt.secs,
            opt.cpus.milli(),
        )
    }

    /// Greedy: whole jobs in `order`, each unit at its earliest start on the node that allows
    /// the earliest, with the plans given. `true` if every job meets its deadline.
    pub(super) fn place_plans(&mut self, order: &[usize], plans: &[Vec<Opt>]) -> bool {
        for &m in order {
            for &opt in &plans[m] {
                let (node, start) = (0..self.caps.len())
                    .map(|n| {
                        let s = self.start_on(n, m, opt);
                        (n, s)
                    })
                    .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
                    .unwrap_or((0, f64::INFINITY));
                if start + opt.secs > self.members[m].due {
                    return false;
                }
                self.place(m, opt, node, start);
            }
        }
        true
    }

    /// Greedy: whole jobs in `order`, each unit at the allocation and node that `rule` prefers
    /// among those from which the job can still meet its deadline. `Err(job)`: the first job
    /// that cannot.
    pub(super) fn place_adaptive(&mut self, order: &[usize], rule: Adapt) -> Result<(), usize> {
        for &m in order {
            let p = self.members[m];
            for k in 0..p.units() {
                let mut pick: Option<((f64, f64), Opt, usize, f64)> = None;
                for &opt in &p.opts[k] {
                    for n in 0..self.caps.len() {
                        let s = self.start_on(n, m, opt);
                        let end = s + opt.secs;
                        let rest = if k + 1 == p.units() {
                            (end <= p.due).then_some(0.0)
                        } else {
                            p.cheapest(k + 1, end).map(|(c, _)| c)
                        };
                        let Some(rest) = rest else { continue };
                        let key = match rule {
                            Adapt::Cheapest => (opt.cost + rest, end),
                            Adapt::Earliest => (end, opt.cost + rest),
                        };
                        if pick.as_ref().is_none_or(|b| {
                            key.0
                                .total_cmp(&b.0.0)
                                .then(key.1.total_cmp(&b.0.1))
                                .is_lt()
                        }) {
                            pick = Some((key, opt, n, s));
                        }
                    }
                }
                let Some((_, opt, n, s)) = pick else {
                    return Err(m);
                };
                self.place(m, opt, n, s);
            }
        }
        Ok(())
    }

    /// Whether the CPU-seconds still needed fit in the capacity left: for every deadline `b`,
    /// what is already placed in `[from, b]`, plus what the jobs' cheapest remaining plans must
    /// spend before `b` (all of it for a job due by `b`; for one due at `d > b`, all but what its
    /// largest allocation can spend in `(b, d]`), must fit in `Σ capacity × (b − from)`.
    pub(super) fn energy_fits(&self, from: f64, need: &[(f64, f64, f64)]) -> bool {
        for &(due, _, _) in need {
            let sum: f64 = need
                .iter()
                .map(|&(d, cost, top)| (cost - top * (d - due).max(0.0)).max(0.0))
                .sum();
            let busy: f64 = self
                .placed
                .iter()
                .flatten()
                .map(|iv| {
                    let overlap = iv.end.min(due) - iv.start.max(from);
                    f64::from(iv.milli) / 1000.0 * overlap.max(0.0)
                })
                .sum();
            if sum + busy > self.total_cap * (due - from) + COST_EPS {
                return false;
            }
        }
        true
    }

    pub(super) fn search(&mut self) {
        if self.out_of_budget {
            return;
        }
        self.visited += 1;
        if self.visited > self.budget {
            self.out_of_budget = true;
            return;
        }
        let (t_last, m_last) = self.last;
        // Cheapest completion of every job from now on: a bound on cost, and on feasibility.
        let mut lower = self.cost;
        let mut need: Vec<(f64, f64, f64)> = Vec::new();
        let mut each = vec![0.0; self.members.len()];
        for (m, p) in self.members.iter().enumerate() {
            if self.next[m] == p.units() {
                continue;
            }
            let Some((c, _)) = p.cheapest(self.next[m], self.ready[m].max(t_last)) else {
                return;
            };
            each[m] = c;
            lower += c;
            need.push((p.due, c, p.top));
        }
        if need.is_empty() {
            if self.cost < self.best_cost - COST_EPS {
                self.best_cost = self.cost;
                self.best = Some(self.units.clone());
            }
            return;
        }
        // Every unit still to place starts at or after the last start (or the first submission).
        let from = if t_last.is_finite() {
            t_last
        } else {
            self.ready.iter().copied().fold(f64::INFINITY, f64::min)
        };
        if lower >= self.best_cost - COST_EPS || !self.energy_fits(from, &need) {
            return;
        }
        // Every (job, allocation, node) that can come next, with the bound it leaves.
        let mut branches: Vec<(f64, f64, usize, Opt, usize)> = Vec::new();
        for (m, p) in self.members.iter().enumerate() {
            let k = self.next[m];
            if k == p.units() {
                continue;
            }
            for &opt in &p.opts[k] {
                let mut tried: Vec<usize> = Vec::new();
                for n in 0..self.caps.len() {
                    // Empty nodes of equal capacity are interchangeable.
                    if self.placed[n].is_empty()
                        && tried
                            .iter()
                            .any(|&o| self.placed[o].is_empty() && self.caps[o] == self.caps[n])
                    {
                        continue;
                    }
                    tried.push(n);
                    let s = self.start_on(n, m, opt);
                    // Nondecreasing (start, job) order; a unit that fits before the last start
                    // belongs earlier in the order and is generated there.
                    if !s.is_finite() || s < t_last || (s == t_last && Some(m) <= m_last) {
                        continue;
                    }
                    let rest = if k + 1 == p.units() {
                        (s + opt.secs <= p.due).then_some(0.0)
                    } else {
                        p.cheapest(k + 1, s + opt.secs).map(|(c, _)| c)
                    };
                    let Some(rest) = rest else { continue };
                    let bound = lower - each[m] + opt.cost + rest;
                    if bound < self.best_cost - COST_EPS {
                        branches.push((bound, s, m, opt, n));
                    }
                }
            }
        }
        // With a schedule to beat, cheapest bound first; without one, earliest start first (a
        // schedule at all is what is missing).
        let feasibility_first = !self.best_cost.is_finite();
        branches.sort_by(|a, b| {
            let (x, y) = if feasibility_first {
                (a.1.total_cmp(&b.1), a.0.total_cmp(&b.0))
            } else {
                (a.0.total_cmp(&b.0), a.1.total_cmp(&b.1))
            };
            x.then(y).then(a.2.cmp(&b.2)).then(a.4.cmp(&b.4))
        });
        for (bound, s, m, opt, n) in branches {
            if self.out_of_budget {
                break;
            }
            if bound >= self.best_cost - COST_EPS {
                continue;
            }
            let ready = self.ready[m];
            self.place(m, opt, n, s);
            self.last = (s, Some(m));
            self.search();
            self.last = (t_last, m_last);
            self.unplace(m, n, ready, opt.cost);
        }
    }
}
