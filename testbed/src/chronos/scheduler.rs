//! When a Chronos job runs: due runs taken from its schedule as the version it was posted
//! through does (2.5.1 skips late runs, 3.x skips the schedule forward at launch), retries after
//! a failure, dependent jobs after their parents, and what a run's end writes on the job.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use frameworks::Schedule;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::iso8601::{self, Generation};
use super::{Chronos, Job, Run, job};
use crate::formats::iso_millis;
use crate::task::{TaskSpec, TaskState, TaskUpdate};

impl Chronos {
    /// Launches what is due, then sleeps until the next due run or a change.
    pub(super) async fn scheduler(self: Arc<Self>) {
        let mut generation = self.generation.subscribe();
        loop {
            generation.mark_unchanged();
            let (launches, wake) = self.tick();
            for spec in launches {
                self.cluster.launch(spec, self.sink.clone());
            }
            if !self.wait(&mut generation, wake).await {
                return;
            }
        }
    }

    /// Takes due runs, advances schedules, launches what may run; returns the next wake-up.
    fn tick(&self) -> (Vec<TaskSpec>, Option<Instant>) {
        let now = Utc::now();
        let inow = Instant::now();
        let mut wake: Option<Instant> = None;
        let mut soonest = |t: Instant| {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        let mut launches = Vec::new();
        let mut st = self.lock();
        let st = &mut *st;
        // 2.5.1's scheduler thread looks ahead over every job once per horizon.
        let look_ahead = st.horizon_next.is_none_or(|t| inow >= t);
        if look_ahead {
            st.horizon_next = Some(inow + HORIZON);
        }
        if let Some(t) = st.horizon_next {
            soonest(t);
        }
        for (name, job) in &mut st.jobs {
            let concurrent = flag(&job.def.map, "concurrent");
            let ahead = match job.def.generation {
                Generation::V3 if !flag(&job.def.map, "disabled") => {
                    job.take_due_v3(now, concurrent)
                }
                Generation::V3 => None,
                Generation::V2 => job.take_due_v2(now, look_ahead),
            };
            if let Some(ahead) = ahead {
                soonest(inow + ahead);
            }
            if let Some(at) = job.take_retry(inow) {
                soonest(at);
            }
            while let Some(run) = job.next_launch(concurrent) {
                let spec = self.task_spec(&job.def, &run);
                st.task_job.insert(spec.task_id.clone(), name.clone());
                job.running.insert(spec.task_id.clone(), run);
                launches.push(spec);
            }
        }
        (launches, wake)
    }

    /// Forwards the terminal updates of the jobs' tasks to [`Self::finished`].
    pub(super) async fn update_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<TaskUpdate>) {
        while let Some(u) = self.next_update(&mut rx).await {
            if u.state.is_terminal() {
                self.finished(&u);
                self.bump();
            }
        }
    }

    /// A run ended: success counts and wakes the dependent jobs whose parents all succeeded; a
    /// failure is retried (`retries`, default 2) before it counts; a kill is neither.
    fn finished(&self, u: &TaskUpdate) {
        let mut st = self.lock();
        let Some(name) = st.task_job.remove(&u.task_id) else {
            return;
        };
        let retry_delay = Duration::from_millis(self.cluster.cfg.chronos_failure_retry_ms);
        let Some(job) = st.jobs.get_mut(&name) else {
            return;
        };
        let Some(run) = job.running.remove(&u.task_id) else {
            return;
        };
        let now = iso_millis(u.at);
        match u.state {
            TaskState::Finished => {
                let m = &mut job.def.map;
                m.insert("successCount".into(), json!(count(m, "successCount") + 1));
                m.insert("lastSuccess".into(), json!(now));
                m.insert("errorsSinceLastSuccess".into(), json!(0));
                job.disable_if_exhausted();
                let mut ready = Vec::new();
                for (child_name, child) in &mut st.jobs {
                    if child.parent_succeeded(&name) {
                        ready.push(child_name.clone());
                    }
                }
                let due_ms = u.at.timestamp_millis();
                for child in ready {
                    if let Some(c) = st.jobs.get_mut(&child) {
                        c.queue.push_back(Run::new(due_ms, String::new()));
                    }
                }
            }
            TaskState::Killed => {}
            _ => job.failed(run, retry_delay, &now),
        }
    }
}

impl Job {
    /// 3.x: a due job is queued once its previous run has ended (unless `concurrent`), and the
    /// schedule skips forward at launch (one run off the count, the start past now). Returns how
    /// long until the next run is due when it is not yet.
    fn take_due_v3(&mut self, now: chrono::DateTime<Utc>, concurrent: bool) -> Option<Duration> {
        let sched = self.next.clone()?;
        match sched.first_run_at(now) {
            None => self.next = None,
            Some(due) if due.with_timezone(&Utc) > now => {
                return Some((due.with_timezone(&Utc) - now).to_std().unwrap_or_default());
            }
            Some(due) => {
                let free = self.queue.is_empty()
                    && self.retry.is_none()
                    && (concurrent || self.running.is_empty());
                if free {
                    self.queue
                        .push_back(Run::new(due.timestamp_millis(), String::new()));
                    self.advance(Some(skip_forward(&sched, due, now)));
                }
            }
        }
        None
    }

    /// 2.5.1's `registerJob` / `updateJob` of a scheduled job: its stream starts from the posted
    /// schedule (`makeScheduleStream`: a start more than `epsilon` in the past skips forward, a
    /// finite count losing the runs skipped), and the scheduler at once takes every run due
    /// within the horizon. A new job is stored with the schedule advanced past them; an update
    /// stores the schedule as posted (`replaceJob` after the iteration), and the runs an earlier
    /// version of the job had taken stay pending (their delayed tasks are not cancelled).
    pub(super) fn register_v2(
        &mut self,
        stream: Option<Schedule>,
        update: bool,
        now: chrono::DateTime<Utc>,
    ) {
        let posted = self.def.map.get("schedule").cloned();
        self.next = stream.and_then(|s| skip_stale_start(s, now, epsilon(&self.def)));
        self.schedule_ahead(now);
        if update {
            if let Some(posted) = posted {
                self.def.map.insert("schedule".into(), posted);
            }
        }
    }

    /// 2.5.1 (`JobScheduler.next`, `scheduleStream`): every run of the stream due within
    /// (now − epsilon, now + horizon) is taken into `pending` and the stored schedule rewritten
    /// after each (one run off the count, the start one period on) — so the count falls as runs
    /// are *scheduled*, up to a horizon ahead of them, not as they run. Runs further than
    /// `epsilon` in the past are skipped (the stream advances; the stored schedule only with the
    /// next run taken). An exhausted stream ends (`R0`); the job is disabled only when a run
    /// then succeeds ([`Self::disable_if_exhausted`]).
    fn schedule_ahead(&mut self, now: chrono::DateTime<Utc>) {
        let eps = chrono::TimeDelta::from_std(epsilon(&self.def)).unwrap_or_default();
        let horizon = chrono::TimeDelta::from_std(HORIZON).unwrap_or_default();
        while let Some(sched) = self.next.clone() {
            let Some(due) = sched.first_run_at(now) else {
                self.next = None;
                break;
            };
            let due = due.with_timezone(&Utc);
            if due > now - eps && due < now + horizon {
                self.pending
                    .push_back(Run::new(due.timestamp_millis(), String::new()));
                let after = sched.after_run(now);
                if let Some(a) = &after {
                    self.def
                        .map
                        .insert("schedule".into(), json!(a.to_chronos_string()));
                }
                self.next = after;
            } else if due >= now {
                break;
            } else {
                // Too late by more than epsilon: skipped, as many periods at once as needed.
                let behind = (now - eps - due).to_std().unwrap_or_default();
                let periods = behind.as_secs_f64() / sched.period().as_secs_f64();
                self.next = skip(&sched, periods.floor() as u64 + 1);
            }
        }
    }

    /// 2.5.1: the look-ahead (when `look_ahead`) and the pending runs now due moved to the
    /// queue (`ScheduledTask.call` → `enqueue`). Returns how long until the next pending run.
    fn take_due_v2(&mut self, now: chrono::DateTime<Utc>, look_ahead: bool) -> Option<Duration> {
        if look_ahead && !flag(&self.def.map, "disabled") {
            self.schedule_ahead(now);
        }
        let now_ms = now.timestamp_millis();
        while self.pending.front().is_some_and(|r| r.due_ms <= now_ms) {
            if let Some(run) = self.pending.pop_front() {
                self.queue.push_back(run);
            }
        }
        self.pending
            .front()
            .map(|r| Duration::from_millis(u64::try_from(r.due_ms - now_ms).unwrap_or_default()))
    }

    /// `handleFinishedTask` (both versions): a success while the stored schedule's count is 0
    /// disables the job ("has exhausted all of its recurrences"); its runs still pending or queued
    /// then expire.
    fn disable_if_exhausted(&mut self) {
        let exhausted = self
            .def
            .map
            .get("schedule")
            .and_then(Value::as_str)
            .and_then(|s| iso8601::parse(s, "", Generation::V2, Utc::now()))
            .is_some_and(|p| p.repetitions == 0);
        if exhausted {
            self.def.map.insert("disabled".into(), json!(true));
            self.next = None;
        }
    }

    /// Queues (first) a retry whose delay has passed; otherwise when the pending one is due.
    fn take_retry(&mut self, now: Instant) -> Option<Instant> {
        match &self.retry {
            Some((at, _)) if *at > now => Some(*at),
            Some(_) => {
                if let Some((_, run)) = self.retry.take() {
                    self.queue.push_front(run);
                }
                None
            }
            None => None,
        }
    }

    /// The next queued run that may start now, as Chronos' offer loop takes its queue
    /// (`MesosJobFramework.generateLaunchableTasks`, `TaskManager.getTask`): a run of a disabled
    /// job expires, and a run of a job that is running (and not `concurrent`) is dropped ("The
    /// head of the task queue appears to already be running") — it is not kept for later, so
    /// nothing piles up behind a job whose runs outlast its period.
    fn next_launch(&mut self, concurrent: bool) -> Option<Run> {
        while let Some(run) = self.queue.pop_front() {
            let why = if flag(&self.def.map, "disabled") {
                "the job is disabled: the run expires"
            } else if !concurrent && !self.running.is_empty() {
                "the job is already running: the run is dropped"
            } else {
                return Some(run);
            };
            let job = self.def.map.get("name").and_then(|n| n.as_str());
            tracing::debug!(
                job = job.unwrap_or_default(),
                due_ms = run.due_ms,
                attempt = run.attempt,
                "{why}"
            );
        }
        None
    }

    /// Parent `parent` succeeded; true when that completes the set (which then starts over).
    fn parent_succeeded(&mut self, parent: &str) -> bool {
        if !self.def.parents.iter().any(|p| p == parent) {
            return false;
        }
        self.parents_done.insert(parent.to_owned());
        if self
            .def
            .parents
            .iter()
            .all(|p| self.parents_done.contains(p))
        {
            self.parents_done.clear();
            return true;
        }
        false
    }

    /// A run failed at `now`: retried after `retry_delay` while attempts remain, else counted.
    fn failed(&mut self, run: Run, retry_delay: Duration, now: &str) {
        let m = &mut self.def.map;
        let retries = m.get("retries").and_then(Value::as_u64).unwrap_or(2);
        if run.attempt < retries {
            self.retry = Some((
                Instant::now() + retry_delay,
                Run {
                    attempt: run.attempt + 1,
                    ..run
                },
            ));
        } else {
            m.insert("errorCount".into(), json!(count(m, "errorCount") + 1));
            m.insert(
                "errorsSinceLastSuccess".into(),
                json!(count(m, "errorsSinceLastSuccess") + 1),
            );
            m.insert("lastError".into(), json!(now));
        }
    }
}

/// 2.5.1's look-ahead (`--schedule_horizon`, 60 s by default): how far ahead of its due time a
/// run is taken off the schedule.
pub(super) const HORIZON: Duration = Duration::from_secs(60);

/// `schedule` `k` periods on: the start moved, a finite count lowered (to 0 at least).
fn skip(s: &Schedule, k: u64) -> Option<Schedule> {
    let start = s.first_run_at(Utc::now())?;
    let by = u32::try_from(k)
        .ok()
        .and_then(|k| s.period().checked_mul(k))
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .and_then(|d| start.checked_add_signed(d))?;
    Some(
        s.clone()
            .with_repetitions(s.repetitions().map(|n| n.saturating_sub(k)))
            .with_start(Some(by)),
    )
}

/// 2.5.1's `makeScheduleStream`: a start more than `epsilon` before `now` skips forward
/// (`JobUtils.skipForward`) by the whole periods between start and now; a finite schedule with
/// fewer runs than that is dropped (never scheduled).
fn skip_stale_start(s: Schedule, now: chrono::DateTime<Utc>, eps: Duration) -> Option<Schedule> {
    let start = s.first_run_at(now)?.with_timezone(&Utc);
    let eps = chrono::TimeDelta::from_std(eps).unwrap_or_default();
    if start + eps >= now {
        return Some(s);
    }
    let secs = (now - start).num_seconds().max(0) as u64;
    let k = secs / s.period().as_secs().max(1);
    if s.repetitions().is_some_and(|n| n < k) {
        return None;
    }
    skip(&s, k)
}

/// A boolean field of a job (`disabled`, `concurrent`), false when absent.
pub(super) fn flag(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// A counter field of a job (`successCount`, …), 0 when absent.
fn count(m: &Map<String, Value>, key: &str) -> u64 {
    m.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// 2.5.1's `epsilon` (Joda period, default 60 s): how late a run may start before it is skipped.
fn epsilon(def: &job::JobDef) -> Duration {
    def.map
        .get("epsilon")
        .and_then(Value::as_str)
        .and_then(iso8601::joda_period_secs)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(Duration::from_secs(60))
}

/// 3.x's `JobUtils.skipForward` at launch: one run off a finite count, and the start moved past
/// `now` on the period's grid (`secondsBetween(start, now) / period + 1` periods later).
fn skip_forward(
    sched: &Schedule,
    due: chrono::DateTime<chrono::FixedOffset>,
    now: chrono::DateTime<Utc>,
) -> Schedule {
    let period = sched.period().as_secs().max(1);
    let behind = u64::try_from((now - due.with_timezone(&Utc)).num_seconds()).unwrap_or(0);
    let skip = behind / period + 1;
    let start = u32::try_from(skip)
        .ok()
        .and_then(|k| sched.period().checked_mul(k))
        .and_then(|d| chrono::TimeDelta::from_std(d).ok())
        .and_then(|d| due.checked_add_signed(d))
        .unwrap_or(due);
    sched
        .clone()
        .with_repetitions(sched.repetitions().map(|n| n.saturating_sub(1)))
        .with_start(Some(start))
}
