//! What the simulated supervisor knows of a job's node ([`Context`]), the one controller's
//! verdict on it, and that verdict carried out as the framework or a node agent would.

use super::*;

impl Sim {
    /// What the supervisor would know of job `i`'s node at this instant: the node it runs (or
    /// last ran) on, its room there, and the claims of the other jobs on it.
    fn context(&self, i: usize) -> Context {
        let now = self.now;
        let j = &self.jobs[i];
        let node = j.node.or(j.last_node).map(|n| {
            let own = if j.node == Some(n) {
                j.held
            } else {
                Cpus::ZERO
            };
            let peers = self
                .jobs
                .iter()
                .enumerate()
                .filter(|&(k, p)| {
                    k != i
                        && p.submitted
                        && p.finished_at.is_none()
                        && !p.job.phase.is_terminal()
                        && p.node.or(p.last_node) == Some(n)
                })
                .map(|(_, p)| self.ctl.claim(&p.job, p.want, now))
                .collect();
            NodeView {
                capacity: self.nodes[n],
                room: self.free(n) + own,
                peers,
                in_place: self.agents,
            }
        });
        let unplaced_room = (0..self.nodes.len()).map(|n| self.free(n)).max();
        Context {
            now,
            node,
            unplaced_room,
            in_framework: j.submitted,
            idle_for: (j.state == Some(TaskState::Waiting)).then_some(now - j.waiting_since),
        }
    }

    pub(super) fn decide_and_apply(&mut self, i: usize) {
        let now = self.now;
        let ctx = self.context(i);
        let verdict = self.ctl.decide(&self.jobs[i].job, &ctx);
        let decision = &verdict.decision;
        if let Some(log) = &mut self.log {
            log.push(Recorded::Decided {
                at: now,
                job: i,
                decision: decision.clone(),
            });
        }
        {
            let j = &mut self.jobs[i];
            j.want = verdict.want;
            self.trace.push(TracePoint {
                t: now,
                job: i,
                cpus: j.job.cpus,
                prediction_vs_deadline: decision
                    .figures
                    .prediction
                    .map(|p| p - j.job.qos.deadline_at),
                progress: j.job.progress(),
                ratio: decision.figures.ratio,
                class: decision.class,
                resize_to: decision.resize_to(),
                reason: decision.reason.clone(),
            });
        }
        let Action::Resize { cpus } = decision.action else {
            return;
        };
        let j = &mut self.jobs[i];
        let live = matches!(j.state, Some(TaskState::Deploying | TaskState::Running));
        match (&j.spec.work, verdict.mode, live) {
            // Iterative jobs: applies to the next iteration (the job is re-posted); continuous
            // jobs not running yet: their task starts at the new size.
            (WorkSpec::Iterative { .. }, _, _) | (WorkSpec::Continuous { .. }, _, false) => {
                if j.state != Some(TaskState::Restarting) {
                    let _ = j.job.observe(Observation::Resized {
                        at: now,
                        cpus,
                        restart: false,
                    });
                }
                if j.state == Some(TaskState::Waiting) {
                    // Re-posted at a size that may fit now.
                    self.try_launch(i);
                }
            }
            (WorkSpec::Continuous { .. }, ResizeMode::InPlace, true) => {
                // The quota changes at once; a grow takes only what the node has free.
                let room = j.node.map_or(Cpus::ZERO, |n| self.free(n)) + self.jobs[i].held;
                let j = &mut self.jobs[i];
                let cpus = cpus.min(room);
                if cpus != j.held {
                    j.held = cpus;
                    let _ = j.job.observe(Observation::Resized {
                        at: now,
                        cpus,
                        restart: false,
                    });
                }
            }
            (WorkSpec::Continuous { restart_costs, .. }, ResizeMode::Restart, true) => {
                let cost = restart_costs[(j.usage.restarts as usize) % restart_costs.len().max(1)];
                j.shrinking = cpus < j.job.cpus;
                let _ = j.job.observe(Observation::Resized {
                    at: now,
                    cpus,
                    restart: true,
                });
                j.state = Some(TaskState::Restarting);
                // The checkpointing task keeps its old reservation until it is gone.
                self.push(now + cost, EventKind::RestartDone(i));
            }
        }
    }
}
