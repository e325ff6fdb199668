//! One controller: the decision for one job on its node, taken the same way by the supervisor
//! and by the simulator.
//!
//! The supervisor observes (reports, samples, heartbeats, the frameworks) and acts (resizes);
//! the simulator plays a cluster. Between the two sits [`Controller::decide`]: given a job, `now`
//! and what is known of its node ([`Context`]), it returns a [`Verdict`] — the decision, the
//! allocation the job claims when its node is short, and how a resize takes effect. Everything
//! that turns a policy's wish into what is done is here, once:
//!
//! - **caps**: a job never gets more than its node has room for (or, not placed yet, more than
//!   the roomiest node could take; a Chronos job's next run, a new task placed wherever an offer
//!   fits, and a task restarted to a new size may have the roomiest node's room too);
//! - **arbitration**: when jobs share a node, its CPUs go least laxity first
//!   ([`crate::policy::arbitrate`]); a job is not grown above its grant ("hold above grant");
//! - **stale data**: the thesis policy is not allowed to act on a frozen CPU counter (the
//!   predictive policy checks its own signal's age);
//! - **resize mode**: a continuous job that cannot checkpoint is resized in place where a node
//!   agent can, rather than restarted from scratch (said in the decision);
//! - **the framework first**: nothing is resized before the framework has the job (the resize
//!   would fail).
//!
//! The restore inference (did a new task resume from a checkpoint?) lives with the job model, in
//! [`Job::observe`].

use serde::{Deserialize, Serialize};

use crate::cpu::Cpus;
use crate::decision::{Class, Decision};
use crate::job::{Checkpointing, Job, Phase, Work};
use crate::policy::{Claim, Policy, arbitrate};
use crate::predictive::{self, ResizeMode};

/// How long a job may have no task anywhere before its next task is taken to wait for room
/// (a framework starts the next run or a restarted task within a few seconds), seconds.
pub const WAIT_GRACE: f64 = 10.0;

/// A policy with the rules around it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Controller {
    /// The control policy.
    pub policy: Policy,
    /// How resizes take effect unless a job needs otherwise.
    pub resize_mode: ResizeMode,
    /// Under the thesis policy, a running continuous job's CPU data older than this (seconds,
    /// by when it arrived) is not acted on. The predictive policy has its own `stale_after`.
    pub stale_after: f64,
}

impl Controller {
    /// `policy` with resizes by `resize_mode` and the default staleness bound (30 s).
    pub fn new(policy: Policy, resize_mode: ResizeMode) -> Self {
        Self {
            policy,
            resize_mode,
            stale_after: 30.0,
        }
    }
}

/// What is known of the node a job runs (or last ran) on.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// The node's CPUs: what its tasks hold plus what is free.
    pub capacity: Cpus,
    /// The most this job may hold there now: what is free plus what its own tasks hold.
    pub room: Cpus,
    /// Claims of the other active jobs on the node ([`Controller::claim`]).
    pub peers: Vec<Claim>,
    /// A node agent there can change a container's CPU quota in place.
    pub in_place: bool,
}

/// Everything a decision needs besides the job itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The time of the decision.
    pub now: f64,
    /// The job's node, when it is placed and the node is alive.
    pub node: Option<NodeView>,
    /// The most the roomiest live node could take, when any node is known: the cap of a job
    /// not placed (or whose node is unknown or dead, or whose task waits for room) — a larger
    /// task would wait for room that may not come — and where a running task restarted to a
    /// new size, or a Chronos job's next run, may go.
    pub unplaced_room: Option<Cpus>,
    /// Whether the framework has the job; before it does, a resize can only fail.
    pub in_framework: bool,
    /// Seconds the job has had no task on any node although it has work left and its
    /// framework has it (`None`: it has one, or nobody can tell). Past [`WAIT_GRACE`], with a
    /// size no node has room for, its next task is waiting for room: it is sized to what the
    /// roomiest node has free ([`Context::unplaced_room`]) if that still meets its deadline.
    pub idle_for: Option<f64>,
}

/// A decision and how to carry it out.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What to do, why, and the figures behind it.
    pub decision: Decision,
    /// The allocation the job wants, uncapped: its claim on a short node (policies that
    /// arbitrate only).
    pub want: Option<Cpus>,
    /// How a resize in this verdict takes effect.
    pub mode: ResizeMode,
}

impl Controller {
    /// The claim of `job` on its node, with `want` its last uncapped wish.
    pub fn claim(&self, job: &Job, want: Option<Cpus>, now: f64) -> Claim {
        let (floor, _) = self.policy.bounds();
        Claim {
            wanted: want.unwrap_or(job.cpus),
            floor: floor.min(job.cpus),
            laxity: self.policy.laxity(job, now),
        }
    }

    /// How a resize of `job` takes effect: the configured mode, except that a continuous job
    /// whose restart would lose its work is resized in place where the node allows it. The
    /// thesis policy always uses the configured mode, as the original did.
    pub fn mode_for(&self, job: &Job, ctx: &Context) -> ResizeMode {
        let in_place_possible = ctx.node.as_ref().is_some_and(|n| n.in_place);
        match (self.resize_mode, &job.work, &self.policy) {
            (
                ResizeMode::Restart,
                Work::Continuous(_),
                Policy::Predictive(_) | Policy::Static(_),
            ) if !job.restart_keeps_work() && in_place_possible => ResizeMode::InPlace,
            (mode, _, _) => mode,
        }
    }

    /// The verdict on `job` in `ctx`.
    pub fn decide(&self, job: &Job, ctx: &Context) -> Verdict {
        let now = ctx.now;
        let waited = ctx.idle_for.filter(|&t| t >= WAIT_GRACE);
        let waiting = waited.is_some();
        let mode = self.mode_for(job, ctx);
        let policy = self.policy.with_resize_mode(mode);
        let here = match (&ctx.node, waiting) {
            (Some(n), false) => Some(n.room),
            _ => ctx.unplaced_room,
        };
        // A running task restarted to a new size, and a Chronos job's next run, are placed anew
        // by their framework: they may go to the roomiest node.
        let moves = match job.work {
            // Each iteration is a new task, placed wherever an offer fits.
            Work::Iterative(_) => true,
            Work::Continuous(_) => mode == ResizeMode::Restart && job.phase == Phase::Running,
        };
        let elsewhere = if moves { ctx.unplaced_room } else { None };
        let widest = |here: Option<Cpus>| match (here, elsewhere) {
            (Some(h), Some(e)) => Some(h.max(e)),
            (h, e) => h.or(e),
        };
        let mut decision = policy.decide_placing(job, now, widest(here), waited);
        let mut want = None;
        if policy.arbitrates() {
            let wanted = policy
                .decide(job, now, None)
                .resize_to()
                .unwrap_or(job.cpus);
            want = Some(wanted);
            if let Some(n) = ctx
                .node
                .as_ref()
                .filter(|n| !n.peers.is_empty() && !waiting)
            {
                // Several jobs share the node: its CPUs go least laxity first, not first come.
                let mut claims = n.peers.clone();
                claims.push(self.claim(job, Some(wanted), now));
                let grant = arbitrate(n.capacity, &claims)
                    .last()
                    .copied()
                    .unwrap_or(job.cpus);
                // Never above the grant, but never forced below what it holds either: a job is
                // not shrunk for another's sake (that would cost it a restart, and the other a
                // wait for the CPUs to free).
                let granted = here.map_or(grant, |c| c.min(grant.max(job.cpus)));
                decision = policy.decide_placing(job, now, widest(Some(granted)), None);
                if grant < wanted {
                    decision.reason += &format!(
                        "; the node is short: its CPUs go to jobs with less slack first (grant {grant} of the {wanted} it wants)"
                    );
                }
            }
        }
        if let Some(why) = self.stale(job, now) {
            decision = Decision::hold(
                Class::NoData,
                format!(
                    "{why}; not resizing on stale data (the policy said: {})",
                    decision.reason
                ),
                decision.figures,
            );
        }
        if !ctx.in_framework && decision.resize_to().is_some() {
            decision = hold_with(
                &decision,
                "but the framework does not have the job yet; resizing once it does",
            );
        }
        if mode != self.resize_mode && decision.resize_to().is_some() {
            decision.reason += &format!(
                "; in place: it cannot checkpoint ({}), and a restart would lose its work",
                job.checkpointing.as_str()
            );
        }
        Verdict {
            decision,
            want,
            mode,
        }
    }

    /// Why a running continuous job's CPU data cannot be trusted now, if it cannot: the thesis
    /// policy checks only that a sample exists since the last restart, not that it is recent (a
    /// dead collector would leave the consumption frozen and the job would be grown).
    fn stale(&self, job: &Job, now: f64) -> Option<String> {
        let (Policy::Thesis(t), Work::Continuous(w)) = (&self.policy, &job.work) else {
            return None;
        };
        if t.missing_cpu_as_zero || job.phase != Phase::Running {
            return None;
        }
        let age = now - w.cpu.last_sample_at()?;
        (age > self.stale_after).then(|| format!("the newest CPU sample is {age:.0} s old"))
    }

    /// What a user should hear when `job` is submitted at `now`: that resizes will restart it
    /// from scratch, or that its deadline is out of reach even at `cpu_max` by its own declared
    /// duration. Empty when all is well.
    pub fn warnings(&self, job: &Job, now: f64) -> Vec<String> {
        let mut out = Vec::new();
        let (_, cpu_max) = self.policy.bounds();
        if matches!(job.work, Work::Continuous(_))
            && self.resize_mode == ResizeMode::Restart
            && !job.restart_keeps_work()
        {
            let said = match job.checkpointing {
                Checkpointing::Unable => "it cannot checkpoint (strategy none)",
                _ => "nothing says it can checkpoint (strategy auto or unknown)",
            };
            out.push(format!(
                "{said}, and this supervisor resizes by restarting the task: a restart would start it again from scratch. It is resized in place where a node agent can do it, and restarted only when that finishes it earlier than staying; give it a checkpoint strategy (--strategy app, or the label qos.checkpoint=app) if it can save its state on SIGTERM"
            ));
        }
        // By the declared work: no allowance for a declaration that is too short.
        let cfg = match self.policy {
            Policy::Predictive(c) | Policy::Static(c) => predictive::PredictiveConfig {
                duration_uncertainty: 0.0,
                ..c
            },
            Policy::Thesis(t) => predictive::PredictiveConfig {
                cpu_max: t.cpu_max,
                cpu_min: t.cpu_min,
                duration_uncertainty: 0.0,
                ..predictive::PredictiveConfig::default()
            },
        };
        if let Ok(f) = predictive::forecast(&cfg, job, now) {
            // By the declared work, without the allowance for a declaration that is too short.
            let late = f.as_expected().finish(cpu_max) - job.qos.deadline_at;
            if late > 0.0 && f.units > 0.0 {
                out.push(format!(
                    "by its declared duration, even {cpu_max} CPU (cpu_max) finishes {late:.0} s after its deadline: it will be AT_RISK from the start; give it a later deadline or less work"
                ));
            }
        }
        out
    }
}

/// `decision` turned into a hold (its class kept), with `why` appended to its reason.
fn hold_with(decision: &Decision, why: &str) -> Decision {
    Decision::hold(
        decision.class,
        format!("{}; {why}", decision.reason),
        decision.figures,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{chronos, cpu_sample, started};
    use crate::predictive::PredictiveConfig;

    fn marathon(duration: f64, deadline: f64, cpus: f64) -> Job {
        crate::fixtures::marathon(duration, deadline, Cpus::from_f64(cpus))
    }

    fn running(job: &mut Job, cpu: f64, at: f64) {
        job.observe(started(0.0)).unwrap();
        job.observe(cpu_sample(at, cpu)).unwrap();
    }

    fn ctx(now: f64, node: Option<NodeView>) -> Context {
        Context {
            now,
            node,
            unplaced_room: None,
            in_framework: true,
            idle_for: None,
        }
    }

    fn node(room: f64, in_place: bool) -> NodeView {
        NodeView {
            capacity: Cpus::from_f64(4.0),
            room: Cpus::from_f64(room),
            peers: Vec::new(),
            in_place,
        }
    }

    fn predictive() -> Controller {
        Controller::new(
            Policy::Predictive(PredictiveConfig::default()),
            ResizeMode::Restart,
        )
    }

    #[test]
    fn nothing_is_resized_before_the_framework_has_the_job() {
        // 48 CPU-s of work due in 45 s at 0.3 CPU: it must grow, but the app does not exist yet.
        let job = marathon(48.0, 45.0, 0.3);
        let c = predictive();
        let mut cx = ctx(0.0, None);
        cx.in_framework = false;
        let v = c.decide(&job, &cx);
        assert_eq!(v.decision.resize_to(), None, "{v:?}");
        assert!(
            v.decision
                .reason
                .contains("framework does not have the job")
        );
        cx.in_framework = true;
        assert!(c.decide(&job, &cx).decision.resize_to().is_some());
    }

    #[test]
    fn a_job_that_cannot_checkpoint_is_resized_in_place_where_an_agent_can() {
        let mut job = marathon(48.0, 45.0, 0.3);
        job.checkpointing = Checkpointing::Unable;
        running(&mut job, 0.3, 1.0);
        let c = predictive();
        let v = c.decide(&job, &ctx(1.0, Some(node(4.0, true))));
        assert_eq!(v.mode, ResizeMode::InPlace);
        assert!(v.decision.resize_to().is_some());
        assert!(
            v.decision.reason.contains("in place"),
            "{}",
            v.decision.reason
        );
        // Without an agent it stays in restart mode, priced as a restart from scratch.
        let v = c.decide(&job, &ctx(1.0, Some(node(4.0, false))));
        assert_eq!(v.mode, ResizeMode::Restart);
        // A job that checkpoints keeps the configured mode.
        job.checkpointing = Checkpointing::Able;
        assert_eq!(
            c.decide(&job, &ctx(1.0, Some(node(4.0, true)))).mode,
            ResizeMode::Restart
        );
    }

    #[test]
    fn a_grow_is_held_to_the_grant_of_a_short_node() {
        // 100 CPU-s due in 95 s at 1 CPU: it needs about 1.4 CPU.
        let mut job = marathon(100.0, 95.0, 1.0);
        job.checkpointing = Checkpointing::Able;
        running(&mut job, 1.0, 1.0);
        let c = Controller::new(
            Policy::Predictive(PredictiveConfig::default()),
            ResizeMode::InPlace,
        );
        let mut n = node(1.5, true);
        n.capacity = Cpus::from_f64(2.0);
        // A peer with less slack wants the whole node.
        n.peers.push(Claim {
            wanted: Cpus::from_f64(1.9),
            floor: Cpus::from_f64(0.1),
            laxity: 1.0,
        });
        let alone = c.decide(&job, &ctx(1.0, Some(node(1.5, true))));
        assert!(
            alone.decision.resize_to().is_some_and(|to| to > Cpus::ONE),
            "{alone:?}"
        );
        let v = c.decide(&job, &ctx(1.0, Some(n)));
        assert_eq!(v.decision.resize_to(), None, "{v:?}");
        assert!(
            v.decision.reason.contains("less slack first"),
            "{}",
            v.decision.reason
        );
        assert!(v.want.is_some_and(|w| w > Cpus::ONE));
    }

    #[test]
    fn a_chronos_job_is_sized_for_the_roomiest_node_not_only_its_last() {
        // Four iterations of 400 s due in 1800 s: more than 1 CPU. Its last node has 0.5 CPU
        // free, another node 2: its next iteration is a new task, placed wherever it fits.
        let job = chronos(4, 400.0, 1800.0);
        let c = predictive();
        let mut cx = ctx(0.0, Some(node(0.5, true)));
        cx.unplaced_room = Some(Cpus::from_f64(2.0));
        let v = c.decide(&job, &cx);
        assert!(
            v.decision.resize_to().is_some_and(|to| to > Cpus::ONE),
            "{v:?}"
        );
        // With no other node known, its last node's room is the cap.
        cx.unplaced_room = None;
        let v = c.decide(&job, &cx);
        assert!(
            v.decision
                .resize_to()
                .is_none_or(|to| to <= Cpus::from_f64(0.5)),
            "{v:?}"
        );
    }

    #[test]
    fn warns_of_restarts_from_scratch_and_of_out_of_reach_deadlines() {
        let c = predictive();
        let mut job = marathon(48.0, 45.0, 0.3);
        job.checkpointing = Checkpointing::Unable;
        let w = c.warnings(&job, 0.0);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("from scratch"), "{w:?}");
        job.checkpointing = Checkpointing::Able;
        assert!(c.warnings(&job, 0.0).is_empty());
        let hopeless = marathon(480.0, 60.0, 1.0);
        let w = c.warnings(&hopeless, 0.0);
        assert!(w.iter().any(|m| m.contains("AT_RISK")), "{w:?}");
        // In-place mode never restarts: no checkpoint warning.
        let inplace = Controller::new(c.policy, ResizeMode::InPlace);
        let mut job = marathon(48.0, 45.0, 0.3);
        job.checkpointing = Checkpointing::Unable;
        assert!(inplace.warnings(&job, 0.0).is_empty());
    }
}
