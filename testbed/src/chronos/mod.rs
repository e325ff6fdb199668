//! Chronos emulator: 2.5.1 under `/scheduler`, 3.0.2 under `/v1/scheduler`, or both over one job
//! store ([`crate::config::ChronosVersion`], `chronos_version`; both by default).
//!
//! # What is reproduced
//! - `POST /iso8601` and `/dependency` (2.5.1 also `PUT`): upsert by name, 204. Jobs are read by
//!   the emulator's own reading of the server's `JobDeserializer` ([`job`]) and schedule parser
//!   (`iso8601`), not by the `frameworks` client's tolerant readers. New jobs: the name must
//!   match `[\w\.-]+`, the schedule must parse, `uris` and `fetch` together are refused, and (3.x)
//!   a start before 1970 is refused. 2.5.1 answers a bad name with the message as text and the
//!   others with an empty 400; 3.x answers `{"status": "Bad Request", "message"}`, the name's
//!   message inside a Java stack trace. A body the deserializer cannot map (no `name`, an unknown
//!   `network`) is a 400 with the exception's text. Unknown keys are ignored and never returned.
//! - Reads answer with the key list of the version asked (2.5.1: `epsilon`, `async`; 3.x:
//!   `concurrent`, `container.networkName`, `container.networkInfos`, `volumes[].external`).
//! - Schedules `R[n]/[start]/period`: an empty start means "now" (3.x: "now − 1 s"). A job is
//!   scheduled as the version it was created through (a re-post through the other prefix, in
//!   `Both`, updates it but leaves its scheduler: one job store has one):
//!   - 2.5.1 (`JobScheduler`): runs are taken off the schedule up to the 60 s horizon ahead
//!     (`--schedule_horizon`), at the POST and then once a horizon: each run due within
//!     (now − `epsilon`, now + 60 s) is set aside for its due time and the stored schedule
//!     rewritten at once (start + one period, `n − 1`), so a finite job whose runs fit in the
//!     horizon reads `R0/…` right after its POST; runs more than `epsilon` (default `PT60S`)
//!     late are skipped, and a start so far in the past that more periods have passed than runs
//!     are left is never scheduled (`makeScheduleStream`). An update takes the runs of the
//!     posted schedule the same way but stores the schedule as posted, and the runs already set
//!     aside stay;
//!   - 3.x: a due job is launched once its previous run has ended (unless `concurrent`), and at
//!     launch the schedule skips forward (`JobUtils.skipForward`: `n − 1`, the start moved past
//!     now on the period's grid); nothing is ever skipped.
//!
//!   `R0`/exhausted jobs are not scheduled, and a run that succeeds while the stored count is 0
//!   sets `disabled: true` (`handleFinishedTask`); `R/…` repeats forever.
//! - A due run (scheduled, on demand, a dependent's, a retry) is queued, and the queue is taken
//!   as Chronos' offer loop takes it (`generateLaunchableTasks`): a run of a disabled job
//!   expires, and a run of a job that is running (unless `concurrent`, 3.x) is dropped, not
//!   kept. So a 2.5.1 job whose runs outlast its period runs at the first due time after each
//!   run ends, and the runs of a finite 2.5.1 job still waiting when one succeeds with the count
//!   at 0 expire (mesos/chronos#476).
//! - Runs of one job never overlap (unless `concurrent: true`, 3.x).
//! - Failures are retried `retries` times (default 2) after `chronos_failure_retry_ms`
//!   (Chronos' `--failure_retry`, 60 s); only the final failure counts: `errorCount`,
//!   `errorsSinceLastSuccess`, `lastError`. Success: `successCount`, `lastSuccess`,
//!   `errorsSinceLastSuccess = 0`, then dependent jobs whose parents have all succeeded run.
//! - `PUT /job/{name}[?arguments=…]` runs one now (204; 400 for an unknown job), leaving the
//!   schedule alone; `DELETE /job/{name}` removes the job and its queued runs — a run in progress
//!   goes on under 2.5.1 (`deregisterJob` only removes the job) and is killed under 3.x (whose
//!   `deregisterJob` calls `cancelMesosTasks`); `DELETE /task/kill/{name}` kills the job's
//!   running tasks (`cancelMesosTasks`: SIGTERM, SIGKILL after the grace, the task's whole
//!   process tree and cgroup with it) and nothing else — its queued runs and schedule stay, so a
//!   job that is still scheduled runs again; `TASK_KILLED` is not retried.
//! - Task id `ct:<due ms>:<attempt>:<name>:<arguments>`; environment `mesos_task_id`,
//!   `MESOS_TASK_ID`, `CHRONOS_JOB_OWNER`, `CHRONOS_JOB_NAME`, `HOST`, `CHRONOS_RESOURCE_MEM`,
//!   `CHRONOS_RESOURCE_CPU`, `CHRONOS_RESOURCE_DISK`, `CHRONOS_JOB_RUN_TIME`,
//!   `CHRONOS_JOB_RUN_ATTEMPT`, then the job's `environmentVariables`, which never override a
//!   built-in. `shell: true` runs `/bin/sh -c command`; `shell: false` runs `command arguments…`.
//! - `GET /jobs`, `GET /jobs/search` (case-insensitive substring on `name`, `command` or `any`,
//!   default `limit` 10), `GET /jobs/summary`, `GET /graph/csv`, and (3.x only) `GET /job/{name}`.
//!
//! # Simplifications
//! `scheduleTimeZone` knows UTC and fixed offsets only (other zone names are taken as UTC);
//! month and year periods are scheduled as 30 and 365 days; resource offers are immediate (a
//! queued run is taken at once, not at the next offer); 2.5.1's horizon is fixed at 60 s.

mod http;
mod iso8601;
pub(crate) mod job;
mod launch;
mod scheduler;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::Utc;
use frameworks::Schedule;
use serde_json::json;

use crate::cluster::Cluster;
use crate::framework::Framework;

pub(crate) use http::router;

/// One run of a job: when it was due, which attempt (retries count up) and the `?arguments=`
/// of an on-demand run.
#[derive(Debug, Clone)]
struct Run {
    due_ms: i64,
    attempt: u64,
    arguments: String,
}

impl Run {
    /// A first attempt due at `due_ms` (epoch milliseconds).
    fn new(due_ms: i64, arguments: String) -> Self {
        Self {
            due_ms,
            attempt: 0,
            arguments,
        }
    }
}

/// A stored job and where its runs are.
#[derive(Debug)]
struct Job {
    def: job::JobDef,
    /// The schedule with its start resolved (an empty start taken as submission time − 1 s):
    /// 3.x's stored schedule, 2.5.1's schedule stream (the next run not yet taken into
    /// `pending`).
    next: Option<Schedule>,
    /// 2.5.1: runs taken off the schedule within the horizon, waiting for their due time
    /// (Chronos' delayed `ScheduledTask`s), in due order.
    pending: VecDeque<Run>,
    /// Runs waiting to launch, in order.
    queue: VecDeque<Run>,
    /// Runs launched and not ended, by task id.
    running: HashMap<String, Run>,
    /// The next attempt of a failed run and when it may launch.
    retry: Option<(tokio::time::Instant, Run)>,
    /// The parents that succeeded since the job last ran as their dependent.
    parents_done: HashSet<String>,
}

impl Job {
    /// Stores the schedule after a run is launched, as 3.x rewrites it (`skipForward`); an
    /// exhausted one is no longer scheduled, and the job is disabled when a run then succeeds
    /// (`handleFinishedTask`).
    fn advance(&mut self, next: Option<Schedule>) {
        match next {
            Some(next) => {
                self.def
                    .map
                    .insert("schedule".into(), json!(next.to_chronos_string()));
                self.next = (!next.is_exhausted()).then_some(next);
            }
            None => self.next = None,
        }
    }
}

/// Every job by name, and which job each running task belongs to.
#[derive(Default)]
pub(crate) struct CState {
    jobs: BTreeMap<String, Job>,
    task_job: HashMap<String, String>,
    /// 2.5.1: when the scheduler's next look-ahead over every job is due (every
    /// [`scheduler::HORIZON`]).
    horizon_next: Option<tokio::time::Instant>,
}

/// The Chronos emulator.
pub(crate) struct Chronos {
    framework: Framework<CState>,
}

/// The shared scaffolding's fields and `lock`/`bump`/`stop` read as the emulator's own.
impl std::ops::Deref for Chronos {
    type Target = Framework<CState>;

    fn deref(&self) -> &Self::Target {
        &self.framework
    }
}

impl Chronos {
    pub(crate) fn start(cluster: &Arc<Cluster>) -> Arc<Self> {
        let (framework, rx) = Framework::new(cluster, 1, CState::default());
        let c = Arc::new(Self { framework });
        let me = Arc::clone(&c);
        cluster.spawn(async move { me.update_loop(rx).await });
        let me = Arc::clone(&c);
        cluster.spawn(async move { me.scheduler().await });
        c
    }

    /// Stores a job read from a POST (replacing one of the same name); its parents must exist.
    /// A job keeps the generation it was created through: one job store has one scheduler, so
    /// a job re-posted through the other prefix (in `Both`) is updated, not rescheduled as the
    /// other version would.
    fn upsert(&self, mut def: job::JobDef) -> Result<(), String> {
        let mut st = self.lock();
        for p in &def.parents {
            if !st.jobs.contains_key(p) {
                return Err(format!("requirement failed: parent job '{p}' not found"));
            }
        }
        let name = def.map["name"].as_str().unwrap_or_default().to_owned();
        let now = Utc::now();
        let existing = st.jobs.get(&name).map(|j| j.def.generation);
        if let Some(g) = existing {
            def.generation = g;
        }
        let disabled = scheduler::flag(&def.map, "disabled");
        let next = def
            .schedule
            .clone()
            .filter(|s| !s.is_exhausted() && !disabled)
            .map(|s| {
                let start = s.first_run_at(now);
                s.with_start(start)
            });
        let job = st.jobs.entry(name).or_insert_with(|| Job {
            def: def.clone(),
            next: None,
            pending: VecDeque::new(),
            queue: VecDeque::new(),
            running: HashMap::new(),
            retry: None,
            parents_done: HashSet::new(),
        });
        job.def = def;
        match job.def.generation {
            iso8601::Generation::V3 => job.next = next,
            iso8601::Generation::V2 => job.register_v2(next, existing.is_some(), now),
        }
        Ok(())
    }
}
