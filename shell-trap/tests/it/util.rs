//! Helpers: a recording fake supervisor, the real shell-trap binary run like Marathon runs it
//! (own process group, SIGTERM to the group, SIGKILL after the grace), output captured line by
//! line with timestamps.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// The binary under test.
pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shell-trap")
}

/// The counting workload.
pub(crate) fn counter() -> &'static str {
    env!("CARGO_BIN_EXE_qos-counter")
}

/// Tests that measure CPU time or use Docker run one at a time (2-core machines).
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A job UUID no other test uses: 32 hex digits.
pub(crate) fn job_uuid() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}{:08x}{:08x}", nanos as u64, std::process::id(), n)
}

/// Whether we can create cgroups (root).
pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One report received by the fake supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    pub(crate) route: String,
    pub(crate) body: Value,
    pub(crate) auth: Option<String>,
    /// When it arrived.
    pub(crate) at: Instant,
}

/// A fake supervisor on 127.0.0.1 recording `/initMarathonApp` and `/endMarathonApp`.
pub(crate) struct Supervisor {
    pub(crate) url: String,
    reports: Arc<Mutex<Vec<Report>>>,
    /// What `GET /api/v1/jobs/{uuid}` answers, per UUID (404 for the others).
    jobs: Arc<Mutex<std::collections::HashMap<String, Value>>>,
    _rt: tokio::runtime::Runtime,
}

impl Supervisor {
    pub(crate) fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        async fn record(
            route: &'static str,
            State(r): State<Arc<Mutex<Vec<Report>>>>,
            headers: HeaderMap,
            body: String,
        ) -> &'static str {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            r.lock().unwrap().push(Report {
                route: route.to_owned(),
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
                auth,
                at: Instant::now(),
            });
            "ok"
        }
        let jobs: Arc<Mutex<std::collections::HashMap<String, Value>>> = Arc::default();
        let views = jobs.clone();
        let app = Router::new()
            .route(
                "/api/v1/jobs/{uuid}",
                axum::routing::get(
                    move |axum::extract::Path(uuid): axum::extract::Path<String>| async move {
                        match views.lock().unwrap().get(&uuid) {
                            Some(v) => (axum::http::StatusCode::OK, axum::Json(v.clone())),
                            None => (
                                axum::http::StatusCode::NOT_FOUND,
                                axum::Json(serde_json::json!({"error": {"code": "not_found"}})),
                            ),
                        }
                    },
                ),
            )
            .route(
                "/initMarathonApp",
                post(|s, h, b| record("initMarathonApp", s, h, b)),
            )
            .route(
                "/endMarathonApp",
                post(|s, h, b| record("endMarathonApp", s, h, b)),
            )
            .route(
                "/api/v1/jobs/{uuid}/progress",
                post(|s, h, b| record("progress", s, h, b)),
            )
            .with_state(reports.clone());
        rt.spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            reports,
            jobs,
            _rt: rt,
        }
    }

    /// Makes `GET /api/v1/jobs/{uuid}` answer `view`.
    pub(crate) fn set_job(&self, uuid: &str, view: Value) {
        self.jobs.lock().unwrap().insert(uuid.to_owned(), view);
    }

    pub(crate) fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }

    pub(crate) fn of(&self, route: &str) -> Vec<Report> {
        self.reports()
            .into_iter()
            .filter(|r| r.route == route)
            .collect()
    }

    /// Waits until `n` reports of `route` arrived.
    pub(crate) fn wait_for(&self, route: &str, n: usize, timeout: Duration) -> Vec<Report> {
        let until = Instant::now() + timeout;
        loop {
            let got = self.of(route);
            if got.len() >= n || Instant::now() > until {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A line of output and when it was read.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub(crate) at: Instant,
    pub(crate) text: String,
}

/// A running shell-trap.
pub(crate) struct Trap {
    pub(crate) child: Child,
    pub(crate) spawned: Instant,
    out: Arc<Mutex<Vec<Line>>>,
    err: Arc<Mutex<Vec<Line>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn pump(
    r: impl std::io::Read + Send + 'static,
    into: Arc<Mutex<Vec<Line>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(text) = line else { break };
            into.lock().unwrap().push(Line {
                at: Instant::now(),
                text,
            });
        }
    })
}

/// Common flags: `--uuid U --supervisor URL --checkpoint-dir D --report-token-file F`, the
/// token `token-<uuid>` written to `F` (`D/<uuid>.token`: never on the command line).
pub(crate) fn base_args(uuid: &str, sup: &Supervisor, dir: &Path) -> Vec<String> {
    let token_file = dir.join(format!("{uuid}.token"));
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&token_file, format!("token-{uuid}\n")).unwrap();
    vec![
        "--uuid".into(),
        uuid.into(),
        "--supervisor".into(),
        sup.url.clone(),
        "--checkpoint-dir".into(),
        dir.display().to_string(),
        "--report-token-file".into(),
        token_file.display().to_string(),
        "--report-timeout".into(),
        "5".into(),
    ]
}

impl Trap {
    /// Starts shell-trap with `args`, in its own process group, with `env` set.
    pub(crate) fn spawn(args: &[String], env: &[(&str, &str)]) -> Self {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env_remove("MARATHON_APP_RESOURCE_CPUS")
            .env("RUST_LOG", "shell_trap=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let spawned = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let out: Arc<Mutex<Vec<Line>>> = Arc::default();
        let err: Arc<Mutex<Vec<Line>>> = Arc::default();
        let readers = vec![
            pump(child.stdout.take().unwrap(), out.clone()),
            pump(child.stderr.take().unwrap(), err.clone()),
        ];
        Self {
            child,
            spawned,
            out,
            err,
            readers,
        }
    }

    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Like Marathon's executor: the signal goes to the task's whole process group.
    pub(crate) fn signal(&self, sig: Signal) {
        let _ = killpg(self.pid(), sig);
    }

    /// The first stdout line containing `needle`, waiting up to `timeout`.
    pub(crate) fn wait_stdout(&self, needle: &str, timeout: Duration) -> Option<Line> {
        wait_line(&self.out, needle, timeout)
    }

    /// The first stderr line containing `needle`, waiting up to `timeout`.
    pub(crate) fn wait_stderr(&self, needle: &str, timeout: Duration) -> Option<Line> {
        wait_line(&self.err, needle, timeout)
    }

    /// Waits for the exit up to `timeout` (then SIGKILLs the group, as Mesos would, and panics).
    pub(crate) fn wait(&mut self, timeout: Duration) -> (ExitStatus, Instant) {
        let until = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let at = Instant::now();
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return (st, at);
            }
            if Instant::now() > until {
                self.signal(Signal::SIGKILL);
                let _ = self.child.wait();
                panic!(
                    "shell-trap did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub(crate) fn stdout(&self) -> String {
        join(&self.out)
    }

    pub(crate) fn stderr(&self) -> String {
        join(&self.err)
    }

    pub(crate) fn stdout_lines(&self) -> Vec<Line> {
        self.out.lock().unwrap().clone()
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

fn join(lines: &Mutex<Vec<Line>>) -> String {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_line(lines: &Mutex<Vec<Line>>, needle: &str, timeout: Duration) -> Option<Line> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(l) = lines
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.text.contains(needle))
        {
            return Some(l.clone());
        }
        if Instant::now() > until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The counter's final JSON line.
pub(crate) fn done_line(trap: &Trap) -> Value {
    let line = trap
        .stdout_lines()
        .into_iter()
        .find(|l| l.text.starts_with("{\"status\":\"done\""))
        .unwrap_or_else(|| {
            panic!(
                "no final line in:\n{}\nstderr:\n{}",
                trap.stdout(),
                trap.stderr()
            )
        });
    serde_json::from_str(&line.text).unwrap()
}

/// The CPU seconds shell-trap logged for its job cgroup (`--cgroup create`), summed.
pub(crate) fn cgroup_cpu(trap: &Trap) -> Option<f64> {
    let mut sum = None;
    for l in trap.stderr().lines() {
        if let Some(rest) = l.split("job cgroup used ").nth(1) {
            let v: f64 = rest.split_whitespace().next()?.parse().ok()?;
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

pub(crate) use testkit::docker_or_skip;

/// `docker ARGS…` → (success, trimmed stdout + stderr).
pub(crate) fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_owned())
}

/// One incarnation of a restart plan: its CPUs, and how long it runs before Marathon's SIGTERM
/// (`None`: until the job finishes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) cpus: f64,
    pub(crate) run_for: Option<Duration>,
}

/// A resize plan from `(cpus, run for ms)` pairs; the last step (no time) runs to the end.
pub(crate) fn plan(sizes: &[f64], run_ms: &[u64]) -> Vec<Step> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &cpus)| Step {
            cpus,
            run_for: run_ms.get(i).map(|&ms| Duration::from_millis(ms)),
        })
        .collect()
}

/// What one restart cost, measured from outside.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overhead {
    /// SIGTERM → the old shell-trap exited (checkpoint written and sealed, job stopped).
    pub(crate) stop: Duration,
    /// New shell-trap spawned → the job printed that it resumed.
    pub(crate) start: Duration,
}

impl Overhead {
    pub(crate) fn total(&self) -> Duration {
        self.stop + self.start
    }
}

/// Runs a restart plan like Marathon does on resizes: start with the step's CPUs, SIGTERM the
/// process group after `run_for`, wait for the exit (status 0 expected), start again at once.
/// `args(cpus)` builds the command line; `on_running(i, trap)` is called once each incarnation's
/// job printed its first line. Returns every incarnation's shell-trap and the restart overheads.
pub(crate) fn drive(
    plan: &[Step],
    args: impl Fn(f64) -> Vec<String>,
    mut on_running: impl FnMut(usize, &Trap),
    grace: Duration,
) -> (Vec<Trap>, Vec<Overhead>) {
    let mut traps = Vec::new();
    let mut overheads = Vec::new();
    let mut last_stop: Option<Duration> = None;
    for (i, step) in plan.iter().enumerate() {
        let mut trap = Trap::spawn(&args(step.cpus), &[]);
        let first = trap
            .wait_stdout("qos-counter: ", Duration::from_secs(60))
            .unwrap_or_else(|| {
                panic!(
                    "incarnation {i} did not start:\n{}\n{}",
                    trap.stdout(),
                    trap.stderr()
                )
            });
        if let Some(stop) = last_stop.take() {
            overheads.push(Overhead {
                stop,
                start: first.at - trap.spawned,
            });
        }
        on_running(i, &trap);
        match step.run_for {
            Some(d) => {
                let left = d.saturating_sub(first.at.elapsed());
                std::thread::sleep(left);
                assert!(
                    trap.child.try_wait().unwrap().is_none(),
                    "incarnation {i} ended before its SIGTERM (make the job longer):\n{}",
                    trap.stderr()
                );
                let t = Instant::now();
                trap.signal(Signal::SIGTERM);
                let (st, at) = trap.wait(grace + Duration::from_secs(10));
                assert!(
                    st.success(),
                    "incarnation {i} exited {st} after SIGTERM:\n{}\n{}",
                    trap.stdout(),
                    trap.stderr()
                );
                last_stop = Some(at - t);
            }
            None => {
                let (st, _) = trap.wait(Duration::from_secs(300));
                assert!(
                    st.success(),
                    "the last incarnation exited {st}:\n{}\n{}",
                    trap.stdout(),
                    trap.stderr()
                );
            }
        }
        traps.push(trap);
    }
    (traps, overheads)
}

/// `min / median / max` in milliseconds.
pub(crate) fn stats_ms(v: &[Duration]) -> String {
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return "-".into();
    }
    format!(
        "{:.0} / {:.0} / {:.0} ms",
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    )
}

/// Prints the restart overheads (for the README).
pub(crate) fn report_overheads(what: &str, o: &[Overhead]) {
    let stop: Vec<Duration> = o.iter().map(|x| x.stop).collect();
    let start: Vec<Duration> = o.iter().map(|x| x.start).collect();
    let total: Vec<Duration> = o.iter().map(Overhead::total).collect();
    eprintln!(
        "RESTART OVERHEAD {what} ({} restarts, min / median / max): SIGTERM→stopped {}; \
         start→resumed {}; total {}",
        o.len(),
        stats_ms(&stop),
        stats_ms(&start),
        stats_ms(&total)
    );
}

/// Prints the CPU seconds of the restarted run next to the uninterrupted one. A figure, not an
/// assertion: on a shared 2-core VM the CPU time of the same work moves by several per cent
/// (throttling at 0.5 CPU, cold caches after each restart), so "no work redone" is proven
/// exactly by [`check_chain`] and the digest instead.
pub(crate) fn report_cpu(what: &str, base: f64, restarted: f64) {
    eprintln!(
        "{what}: uninterrupted {base:.3} s, with restarts {restarted:.3} s ({:+.2} %)",
        (restarted - base) / base * 100.0
    );
}

/// Proves from the incarnations' stdout (in order) that no step was done twice or skipped:
/// the first starts at 0, every one but the last checkpoints, each later one resumes exactly
/// where the previous one checkpointed, and the last one finishes at `target`.
pub(crate) fn check_chain(stdouts: &[String], target: u64) {
    let at = |out: &str, what: &str| -> Option<u64> {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("qos-counter: {what} ")))?;
        let rest = &line[format!("qos-counter: {what} ").len()..];
        rest.split('/').next()?.trim().parse().ok()
    };
    assert!(!stdouts.is_empty(), "no incarnation");
    let mut next = 0;
    for (i, out) in stdouts.iter().enumerate() {
        let start = if i == 0 {
            assert!(
                out.contains("qos-counter: starting from 0/"),
                "incarnation 1 must start from 0:\n{out}"
            );
            0
        } else {
            at(out, "resumed at")
                .unwrap_or_else(|| panic!("incarnation {} did not resume:\n{out}", i + 1))
        };
        assert_eq!(
            start,
            next,
            "incarnation {} resumed at {start}, the previous one checkpointed at {next}",
            i + 1
        );
        if i + 1 < stdouts.len() {
            next = at(out, "checkpointed at").unwrap_or_else(|| {
                panic!("incarnation {} ended without a checkpoint:\n{out}", i + 1)
            });
            assert!(next >= start, "incarnation {} went backwards", i + 1);
        } else {
            assert!(
                out.contains(&format!("\"count\":{target}")),
                "the last incarnation did not finish at {target}:\n{out}"
            );
        }
    }
}
