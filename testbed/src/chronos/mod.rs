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
//!   scheduled as the version it was posted through schedules:
//!   - 2.5.1: each run is taken when due and the stored schedule is rewritten at that moment
//!     (start + one period, `n − 1`); a run later than the job's `epsilon` (default `PT60S`) is
//!     skipped (the schedule still advances), so a start far in the past never runs;
//!   - 3.x: a due job is launched once its previous run has ended (unless `concurrent`), and at
//!     launch the schedule skips forward (`JobUtils.skipForward`: `n − 1`, the start moved past
//!     now on the period's grid); nothing is ever skipped.
//!
//!   `R0`/exhausted jobs are not scheduled and the last run sets `disabled: true`; `R/…` repeats
//!   forever.
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
//! month and year periods are scheduled as 30 and 365 days; 2.5.1's 60 s scheduling horizon is
//! not reproduced (its runs are not queued ahead of time).

mod iso8601;
pub(crate) mod job;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{DateTime, Utc};
use frameworks::Schedule;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use self::iso8601::Generation;
use crate::cluster::Cluster;
use crate::config::ChronosVersion;
use crate::formats::{iso_millis, java_double};
use crate::framework::Framework;
use crate::task::{ContainerSpec, TaskCommand, TaskSpec, TaskState, TaskUpdate, Volume};

#[derive(Debug, Clone)]
struct Run {
    due_ms: i64,
    attempt: u64,
    arguments: String,
}

#[derive(Debug)]
struct Job {
    def: job::JobDef,
    /// The schedule with its start resolved (an empty start taken as submission time − 1 s).
    next: Option<Schedule>,
    queue: VecDeque<Run>,
    running: HashMap<String, Run>,
    retry: Option<(tokio::time::Instant, Run)>,
    parents_done: HashSet<String>,
}

impl Job {
    /// Stores the schedule after a run, as Chronos rewrites it; an exhausted one disables the job.
    fn advance(&mut self, next: Option<Schedule>) {
        match next {
            Some(next) => {
                self.def
                    .map
                    .insert("schedule".into(), json!(next.to_chronos_string()));
                if next.is_exhausted() {
                    self.def.map.insert("disabled".into(), json!(true));
                    self.next = None;
                } else {
                    self.next = Some(next);
                }
            }
            None => self.next = None,
        }
    }
}

#[derive(Default)]
pub(crate) struct CState {
    jobs: BTreeMap<String, Job>,
    task_job: HashMap<String, String>,
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

    /// 2.5.1's `epsilon` (Joda period, default 60 s).
    fn epsilon(def: &job::JobDef) -> Duration {
        def.map
            .get("epsilon")
            .and_then(Value::as_str)
            .and_then(iso8601::joda_period_secs)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(Duration::from_secs(60))
    }

    async fn scheduler(self: Arc<Self>) {
        let mut generation = self.generation.subscribe();
        loop {
            generation.mark_unchanged();
            let (launches, wake) = self.tick();
            for spec in launches {
                self.cluster.launch(spec, self.sink.clone());
            }
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = generation.changed() => if r.is_err() { return },
                () = sleep => {}
                () = self.stop.cancelled() => return,
            }
        }
    }

    /// Takes due runs, advances schedules, launches what may run; returns the next wake-up.
    fn tick(&self) -> (Vec<TaskSpec>, Option<tokio::time::Instant>) {
        let now = Utc::now();
        let inow = tokio::time::Instant::now();
        let mut wake: Option<tokio::time::Instant> = None;
        let mut soonest = |t: tokio::time::Instant| {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        };
        let mut launches = Vec::new();
        let mut st = self.lock();
        let st = &mut *st;
        for (name, job) in &mut st.jobs {
            let disabled = job
                .def
                .map
                .get("disabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let concurrent = job
                .def
                .map
                .get("concurrent")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if job.def.generation == Generation::V3 {
                // 3.x: a due job is launched once its previous run has ended, and the schedule
                // skips forward at launch (one run off the count, the start past now).
                if let Some(sched) = job.next.clone().filter(|_| !disabled) {
                    match sched.first_run_at(now) {
                        None => job.next = None,
                        Some(due) if due.with_timezone(&Utc) > now => {
                            let ahead =
                                (due.with_timezone(&Utc) - now).to_std().unwrap_or_default();
                            soonest(inow + ahead);
                        }
                        Some(due) => {
                            let free = job.queue.is_empty()
                                && job.retry.is_none()
                                && (concurrent || job.running.is_empty());
                            if free {
                                job.queue.push_back(Run {
                                    due_ms: due.timestamp_millis(),
                                    attempt: 0,
                                    arguments: String::new(),
                                });
                                job.advance(Some(skip_forward(&sched, due, now)));
                            }
                        }
                    }
                }
            }
            // 2.5.1: due scheduled runs (several if the loop was late), late ones skipped.
            while let Some(sched) = job
                .next
                .clone()
                .filter(|_| !disabled && job.def.generation == Generation::V2)
            {
                let Some(due) = sched.first_run_at(now) else {
                    job.next = None;
                    break;
                };
                let due_utc = due.with_timezone(&Utc);
                if due_utc > now {
                    let ahead = (due_utc - now).to_std().unwrap_or_default();
                    soonest(inow + ahead);
                    break;
                }
                let after = sched.after_run(now);
                let late = (now - due_utc).to_std().unwrap_or_default();
                if late <= Self::epsilon(&job.def) {
                    job.queue.push_back(Run {
                        due_ms: due_utc.timestamp_millis(),
                        attempt: 0,
                        arguments: String::new(),
                    });
                }
                job.advance(after);
            }
            if let Some((at, _)) = &job.retry {
                if *at <= inow {
                    if let Some((_, run)) = job.retry.take() {
                        job.queue.push_front(run);
                    }
                } else {
                    soonest(*at);
                }
            }
            while !job.queue.is_empty() && (concurrent || job.running.is_empty()) {
                let Some(run) = job.queue.pop_front() else {
                    break;
                };
                let spec = self.task_spec(&job.def, &run);
                st.task_job.insert(spec.task_id.clone(), name.clone());
                job.running.insert(spec.task_id.clone(), run);
                launches.push(spec);
            }
        }
        (launches, wake)
    }

    fn task_spec(&self, def: &job::JobDef, run: &Run) -> TaskSpec {
        let m = &def.map;
        let name = m["name"].as_str().unwrap_or_default().to_owned();
        let task_id = format!(
            "ct:{}:{}:{}:{}",
            run.due_ms, run.attempt, name, run.arguments
        );
        let cpus = m.get("cpus").and_then(Value::as_f64).unwrap_or(0.1);
        let mem = m.get("mem").and_then(Value::as_f64).unwrap_or(128.0);
        let disk = m.get("disk").and_then(Value::as_f64).unwrap_or(256.0);
        let shell = m.get("shell").and_then(Value::as_bool).unwrap_or(true);
        let command_text = m
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let container = m.get("container").and_then(|c| {
            Some(ContainerSpec {
                image: c.get("image")?.as_str()?.to_owned(),
                network: c.get("network").and_then(Value::as_str).map(str::to_owned),
                volumes: c
                    .get("volumes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| {
                                Some(Volume {
                                    host_path: v.get("hostPath")?.as_str()?.to_owned(),
                                    container_path: v.get("containerPath")?.as_str()?.to_owned(),
                                    read_only: v.get("mode").and_then(Value::as_str) == Some("RO"),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                parameters: c
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| {
                                Some((
                                    p.get("key")?.as_str()?.to_owned(),
                                    p.get("value")?.as_str()?.to_owned(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                force_pull: c
                    .get("forcePullImage")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        });
        let command = if shell {
            if command_text.is_empty() && container.is_some() {
                TaskCommand::Image
            } else {
                TaskCommand::Shell(command_text)
            }
        } else {
            let mut argv: Vec<String> = Vec::new();
            if !command_text.is_empty() {
                argv.push(command_text);
            }
            argv.extend(
                m.get("arguments")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
            argv.extend(run.arguments.split_whitespace().map(str::to_owned));
            if argv.is_empty() {
                TaskCommand::Image
            } else {
                TaskCommand::Argv(argv)
            }
        };
        let user_env: Vec<(String, String)> = m
            .get("environmentVariables")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| {
                        Some((
                            e.get("name")?.as_str()?.to_owned(),
                            e.get("value")?.as_str()?.to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let uuid = user_env
            .iter()
            .find(|(k, _)| k == "QOS_UUID")
            .map(|(_, v)| v.clone());
        let owner = m
            .get("owner")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let run_time = DateTime::<Utc>::from_timestamp_millis(run.due_ms)
            .map(iso_millis)
            .unwrap_or_default();
        let attempt = run.attempt;
        let env_task_id = task_id.clone();
        let env: crate::task::EnvBuilder = Box::new(move |offer| {
            let mut env = vec![
                ("mesos_task_id".to_owned(), env_task_id.clone()),
                ("MESOS_TASK_ID".to_owned(), env_task_id),
                ("CHRONOS_JOB_OWNER".to_owned(), owner),
                ("CHRONOS_JOB_NAME".to_owned(), name),
                ("HOST".to_owned(), offer.hostname.clone()),
                ("CHRONOS_RESOURCE_MEM".to_owned(), java_double(mem)),
                ("CHRONOS_RESOURCE_CPU".to_owned(), java_double(cpus)),
                ("CHRONOS_RESOURCE_DISK".to_owned(), java_double(disk)),
                ("CHRONOS_JOB_RUN_TIME".to_owned(), run_time),
                ("CHRONOS_JOB_RUN_ATTEMPT".to_owned(), attempt.to_string()),
            ];
            for (k, v) in user_env {
                if !env.iter().any(|(n, _)| *n == k) {
                    env.push((k, v));
                }
            }
            env
        });
        TaskSpec {
            task_id,
            framework_id: self.framework_id.clone(),
            command,
            cpus,
            mem,
            disk,
            ports: 0,
            env,
            container,
            kill_grace: None,
            uuid,
            labels: Vec::new(),
        }
    }

    async fn update_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<TaskUpdate>) {
        loop {
            let u = tokio::select! {
                u = rx.recv() => match u { Some(u) => u, None => return },
                () = self.stop.cancelled() => return,
            };
            if u.state.is_terminal() {
                self.finished(&u);
                self.bump();
            }
        }
    }

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
        let m = &mut job.def.map;
        let count = |m: &serde_json::Map<String, Value>, k: &str| {
            m.get(k).and_then(Value::as_u64).unwrap_or(0)
        };
        match u.state {
            TaskState::Finished => {
                m.insert("successCount".into(), json!(count(m, "successCount") + 1));
                m.insert("lastSuccess".into(), json!(now));
                m.insert("errorsSinceLastSuccess".into(), json!(0));
                let mut ready = Vec::new();
                for (child_name, child) in &mut st.jobs {
                    if child.def.parents.contains(&name) {
                        child.parents_done.insert(name.clone());
                        if child
                            .def
                            .parents
                            .iter()
                            .all(|p| child.parents_done.contains(p))
                        {
                            child.parents_done.clear();
                            ready.push(child_name.clone());
                        }
                    }
                }
                let due_ms = u.at.timestamp_millis();
                for child in ready {
                    if let Some(c) = st.jobs.get_mut(&child) {
                        c.queue.push_back(Run {
                            due_ms,
                            attempt: 0,
                            arguments: String::new(),
                        });
                    }
                }
            }
            TaskState::Killed => {}
            _ => {
                let retries = m.get("retries").and_then(Value::as_u64).unwrap_or(2);
                if run.attempt < retries {
                    job.retry = Some((
                        tokio::time::Instant::now() + retry_delay,
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
    }

    fn upsert(&self, def: job::JobDef) -> Result<(), String> {
        let mut st = self.lock();
        for p in &def.parents {
            if !st.jobs.contains_key(p) {
                return Err(format!("requirement failed: parent job '{p}' not found"));
            }
        }
        let name = def.map["name"].as_str().unwrap_or_default().to_owned();
        let now = Utc::now();
        let disabled = def
            .map
            .get("disabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let next = def
            .schedule
            .clone()
            .filter(|s| !s.is_exhausted() && !disabled)
            .map(|s| {
                let start = s.first_run_at(now);
                s.with_start(start)
            });
        match st.jobs.get_mut(&name) {
            Some(job) => {
                job.def = def;
                job.next = next;
            }
            None => {
                st.jobs.insert(
                    name,
                    Job {
                        def,
                        next,
                        queue: VecDeque::new(),
                        running: HashMap::new(),
                        retry: None,
                        parents_done: HashSet::new(),
                    },
                );
            }
        }
        Ok(())
    }
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

// --- HTTP -----------------------------------------------------------------------------------

/// A route's state: the emulator and the generation its prefix speaks.
type C = State<(Arc<Chronos>, Generation)>;

/// Chronos' routes: `/scheduler` (2.5.1) and/or `/v1/scheduler` (3.x), as configured.
pub(crate) fn router(c: &Arc<Chronos>) -> Router {
    let api = |g: Generation| {
        let iso = match g {
            // 3.x "ditched PUT" on /iso8601 (chronos-python); 2.5.1 takes both.
            Generation::V2 => post(post_iso).put(post_iso),
            Generation::V3 => post(post_iso),
        };
        let job = match g {
            // 2.5.1 has no GET /job/{name} (405, as Jersey answers for the other methods).
            Generation::V2 => axum::routing::put(start_job).delete(delete_job),
            Generation::V3 => get(get_job).put(start_job).delete(delete_job),
        };
        Router::new()
            .route("/iso8601", iso)
            .route("/dependency", post(post_dep).put(post_dep))
            .route("/jobs", get(list_jobs))
            .route("/jobs/search", get(search_jobs))
            .route("/jobs/summary", get(summary))
            .route("/job/{name}", job)
            .route("/task/kill/{name}", delete(kill_tasks))
            .route("/graph/csv", get(graph_csv))
            .with_state((Arc::clone(c), g))
    };
    let version = c.cluster.cfg.chronos_version;
    let mut r = Router::new();
    if matches!(version, ChronosVersion::V2 | ChronosVersion::Both) {
        r = r.nest("/scheduler", api(Generation::V2));
    }
    if matches!(version, ChronosVersion::V3 | ChronosVersion::Both) {
        r = r.nest("/v1/scheduler", api(Generation::V3));
    }
    r
}

/// A 400 as `generation` writes it: 2.5.1 the plain message (or nothing), 3.x an `ApiResult`.
fn bad_request(generation: Generation, message: &str) -> Response {
    match generation {
        Generation::V2 => (StatusCode::BAD_REQUEST, message.to_owned()).into_response(),
        Generation::V3 => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "Bad Request", "message": message})),
        )
            .into_response(),
    }
}

fn refused(generation: Generation, r: &job::Refusal) -> Response {
    match (generation, r) {
        (
            Generation::V2,
            job::Refusal::Check {
                empty_in_v2: true, ..
            },
        ) => StatusCode::BAD_REQUEST.into_response(),
        (
            Generation::V3,
            job::Refusal::Check {
                message,
                stack_trace_in_v3: true,
                ..
            },
        ) => bad_request(
            generation,
            &format!(
                "java.lang.IllegalArgumentException: {message}\n\tat \
                 scala.Predef$.require(Predef.scala:224)\n\tat \
                 org.apache.mesos.chronos.scheduler.api.Iso8601JobResource.post(Iso8601JobResource.scala:39)\n"
            ),
        ),
        (g, r) => bad_request(g, r.message()),
    }
}

fn job_not_found(generation: Generation, name: &str) -> Response {
    bad_request(
        generation,
        &format!("requirement failed: Job '{name}' not found"),
    )
}

async fn upsert(c: &Chronos, generation: Generation, body: &[u8], dependent: bool) -> Response {
    let body: Value = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            return bad_request(
                generation,
                &format!("com.fasterxml.jackson.core.JsonParseException: {e}"),
            );
        }
    };
    let existing = body
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| c.lock().jobs.contains_key(n));
    let def = match job::parse(
        &body,
        &c.cluster.cfg,
        dependent,
        generation,
        existing,
        Utc::now(),
    ) {
        Ok(d) => d,
        Err(e) => return refused(generation, &e),
    };
    if let Err(e) = c.upsert(def) {
        return bad_request(generation, &e);
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn post_iso(State((c, g)): C, body: Bytes) -> Response {
    upsert(&c, g, &body, false).await
}

async fn post_dep(State((c, g)): C, body: Bytes) -> Response {
    upsert(&c, g, &body, true).await
}

fn jobs_json(st: &CState, g: Generation) -> Vec<Value> {
    st.jobs
        .values()
        .map(|j| job::render(&j.def.map, g))
        .collect()
}

async fn list_jobs(State((c, g)): C) -> Response {
    let st = c.lock();
    axum::Json(Value::Array(jobs_json(&st, g))).into_response()
}

async fn search_jobs(State((c, g)): C, Query(q): Query<HashMap<String, String>>) -> Response {
    let lower = |k: &str| q.get(k).map(|v| v.to_lowercase());
    let (name, command, any) = (lower("name"), lower("command"), lower("any"));
    let limit = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10usize);
    let offset = q
        .get("offset")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0usize);
    let st = c.lock();
    let found: Vec<Value> = st
        .jobs
        .values()
        .filter(|j| {
            let jn = j.def.map["name"].as_str().unwrap_or("").to_lowercase();
            let jc = j.def.map["command"].as_str().unwrap_or("").to_lowercase();
            name.as_ref().is_none_or(|n| jn.contains(n))
                && command.as_ref().is_none_or(|n| jc.contains(n))
                && any
                    .as_ref()
                    .is_none_or(|n| jn.contains(n) || jc.contains(n))
        })
        .skip(offset)
        .take(limit)
        .map(|j| job::render(&j.def.map, g))
        .collect();
    axum::Json(Value::Array(found)).into_response()
}

async fn summary(State((c, _)): C) -> Response {
    let st = c.lock();
    let jobs: Vec<Value> = st
        .jobs
        .iter()
        .map(|(name, j)| {
            let m = &j.def.map;
            let status = match (m["lastSuccess"].as_str(), m["lastError"].as_str()) {
                (Some(s), Some(e)) if !s.is_empty() && s >= e => "success",
                (_, Some(e)) if !e.is_empty() => "failure",
                (Some(s), _) if !s.is_empty() => "success",
                _ => "fresh",
            };
            let state = match (j.running.len(), j.queue.is_empty()) {
                (0, true) => "idle".to_owned(),
                (0, false) => "queued".to_owned(),
                (1, _) => "running".to_owned(),
                (n, _) => format!("{n} running"),
            };
            json!({"name": name, "status": status, "state": state,
                "schedule": m.get("schedule").cloned().unwrap_or(json!("")),
                "parents": m.get("parents").cloned().unwrap_or(json!([])),
                "disabled": m["disabled"]})
        })
        .collect();
    axum::Json(json!({ "jobs": jobs })).into_response()
}

async fn get_job(State((c, g)): C, Path(name): Path<String>) -> Response {
    let st = c.lock();
    match st.jobs.get(&name) {
        Some(j) => axum::Json(job::render(&j.def.map, g)).into_response(),
        None => job_not_found(g, &name),
    }
}

async fn start_job(
    State((c, g)): C,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    {
        let mut st = c.lock();
        let Some(job) = st.jobs.get_mut(&name) else {
            return job_not_found(g, &name);
        };
        let shell = job
            .def
            .map
            .get("shell")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let arguments = if shell {
            String::new()
        } else {
            q.get("arguments").cloned().unwrap_or_default()
        };
        job.queue.push_back(Run {
            due_ms: Utc::now().timestamp_millis(),
            attempt: 0,
            arguments,
        });
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_job(State((c, g)): C, Path(name): Path<String>) -> Response {
    let running: Vec<String> = {
        let mut st = c.lock();
        let Some(job) = st.jobs.remove(&name) else {
            return job_not_found(g, &name);
        };
        // Children lose this parent; a child left without parents becomes a one-off job.
        for j in st.jobs.values_mut() {
            if j.def.parents.contains(&name) {
                j.def.parents.retain(|p| *p != name);
                j.def.map.insert("parents".into(), json!(j.def.parents));
                j.parents_done.remove(&name);
            }
        }
        job.running.into_keys().collect()
    };
    if g == Generation::V3 {
        // 3.x: `deregisterJob` ends with `taskManager.cancelMesosTasks(job)`.
        for id in running {
            let kill = c.cluster.kill(&id, None);
            c.cluster.spawn(kill);
        }
    }
    c.bump();
    StatusCode::NO_CONTENT.into_response()
}

async fn kill_tasks(State((c, g)): C, Path(name): Path<String>) -> Response {
    let ids: Vec<String> = {
        let st = c.lock();
        let Some(job) = st.jobs.get(&name) else {
            return job_not_found(g, &name);
        };
        job.running.keys().cloned().collect()
    };
    for id in ids {
        let kill = c.cluster.kill(&id, None);
        c.cluster.spawn(kill);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn graph_csv(State((c, _)): C) -> Response {
    let st = c.lock();
    let mut out = String::new();
    for (name, j) in &st.jobs {
        let m = &j.def.map;
        let last = if m["lastError"].as_str().is_some_and(|e| !e.is_empty())
            && m["lastError"].as_str() > m["lastSuccess"].as_str()
        {
            "failure"
        } else if m["lastSuccess"].as_str().is_some_and(|s| !s.is_empty()) {
            "success"
        } else {
            "fresh"
        };
        let state = if j.running.is_empty() {
            if j.queue.is_empty() { "idle" } else { "queued" }
        } else {
            "running"
        };
        out.push_str(&format!("node,{name},{last},{state}\n"));
        for p in &j.def.parents {
            out.push_str(&format!("link,{p},{name}\n"));
        }
    }
    out.into_response()
}
