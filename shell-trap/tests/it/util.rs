//! What only shell-trap's tests use: the binary under test run like Marathon runs it (own
//! process group, SIGTERM to the group, SIGKILL after the grace: `testkit::child`), a stand-in
//! supervisor recording the reports it sends, restart plans driven from outside, and the checks
//! of the counting job's output.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use testkit::child::Watched;
use testkit::lock;
use testkit::wire::{Recorded, Scripted};

pub(crate) use testkit::names::job_uuid;
pub(crate) use testkit::{docker_or_skip, is_root};

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
    lock(&LOCK)
}

/// One report received by the stand-in supervisor.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// `initMarathonApp`, `endMarathonApp` or `progress`.
    pub(crate) route: String,
    pub(crate) body: Value,
    pub(crate) auth: Option<String>,
    /// When it arrived.
    pub(crate) at: Instant,
}

impl Report {
    /// The report a request is, if it is one (a `POST` to a report route).
    fn of(r: &Recorded) -> Option<Self> {
        if r.method != "POST" {
            return None;
        }
        let route = match r.path.as_str() {
            "/initMarathonApp" => "initMarathonApp",
            "/endMarathonApp" => "endMarathonApp",
            p if p.starts_with("/api/v1/jobs/") && p.ends_with("/progress") => "progress",
            _ => return None,
        };
        Some(Self {
            route: route.to_owned(),
            body: serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            auth: r.header("authorization").map(str::to_owned),
            at: r.at,
        })
    }
}

/// A supervisor on 127.0.0.1 recording `/initMarathonApp`, `/endMarathonApp` and progress, and
/// answering `GET /api/v1/jobs/{uuid}` with the views a test sets.
pub(crate) struct Supervisor {
    pub(crate) url: String,
    server: Scripted,
    /// What `GET /api/v1/jobs/{uuid}` answers, per UUID (404 for the others).
    jobs: Arc<Mutex<HashMap<String, Value>>>,
    /// Per UUID, whether the job's checkpoint directory still existed when its end report
    /// arrived (only with [`Supervisor::watching`]).
    left_at_end: Arc<Mutex<HashMap<String, bool>>>,
}

impl Supervisor {
    pub(crate) fn start() -> Self {
        Self::serve(None)
    }

    /// A supervisor that, when a job's end report arrives, notes whether `<checkpoints>/<uuid>`
    /// is still there: once the supervisor learns a job ended, nothing of it may be left.
    pub(crate) fn watching(checkpoints: &Path) -> Self {
        Self::serve(Some(checkpoints.to_owned()))
    }

    fn serve(checkpoints: Option<PathBuf>) -> Self {
        let jobs: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let views = Arc::clone(&jobs);
        let left_at_end: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
        let left = Arc::clone(&left_at_end);
        let server = Scripted::blocking(move |r, _| {
            if let Some(report) = Report::of(r) {
                if let (Some(root), "endMarathonApp", Some(uuid)) = (
                    &checkpoints,
                    report.route.as_str(),
                    report.body["uuid"].as_str(),
                ) {
                    lock(&left).insert(uuid.to_owned(), root.join(uuid).exists());
                }
                return (200, "ok".to_owned());
            }
            let uuid = r
                .path
                .strip_prefix("/api/v1/jobs/")
                .filter(|u| !u.contains('/'));
            match (r.method.as_str(), uuid) {
                ("GET", Some(uuid)) => match lock(&views).get(uuid) {
                    Some(v) => (200, v.to_string()),
                    None => (404, json!({"error": {"code": "not_found"}}).to_string()),
                },
                _ => (404, String::new()),
            }
        });
        Self {
            url: server.url.clone(),
            server,
            jobs,
            left_at_end,
        }
    }

    /// Whether job `uuid`'s checkpoint directory was still there when its end report arrived
    /// (`None`: no end report seen, or not [`Supervisor::watching`]).
    pub(crate) fn checkpoints_at_end(&self, uuid: &str) -> Option<bool> {
        lock(&self.left_at_end).get(uuid).copied()
    }

    /// Makes `GET /api/v1/jobs/{uuid}` answer `view`.
    pub(crate) fn set_job(&self, uuid: &str, view: Value) {
        lock(&self.jobs).insert(uuid.to_owned(), view);
    }

    pub(crate) fn reports(&self) -> Vec<Report> {
        self.server
            .requests()
            .iter()
            .filter_map(Report::of)
            .collect()
    }

    pub(crate) fn of(&self, route: &str) -> Vec<Report> {
        self.reports()
            .into_iter()
            .filter(|r| r.route == route)
            .collect()
    }

    /// Whether each start of job `uuid` reported to the supervisor was a restore, in order.
    pub(crate) fn restored_flags(&self, uuid: &str) -> Vec<bool> {
        self.of("initMarathonApp")
            .iter()
            .filter(|r| r.body["uuid"] == uuid)
            .map(|r| r.body["restored"].as_bool().unwrap())
            .collect()
    }

    /// The end report of job `uuid`, waiting up to 5 s for it.
    pub(crate) fn end_of(&self, uuid: &str) -> Option<Report> {
        testkit::wait::blocking(Duration::from_secs(5), Duration::from_millis(20), || {
            self.of("endMarathonApp")
                .into_iter()
                .find(|r| r.body["uuid"] == uuid)
        })
    }

    /// Waits until `n` reports of `route` arrived; those that did after `timeout`.
    pub(crate) fn wait_for(&self, route: &str, n: usize, timeout: Duration) -> Vec<Report> {
        testkit::wait::blocking(timeout, Duration::from_millis(20), || {
            Some(self.of(route)).filter(|got| got.len() >= n)
        })
        .unwrap_or_else(|| self.of(route))
    }
}

/// A running shell-trap.
pub(crate) struct Trap(Watched);

impl Deref for Trap {
    type Target = Watched;
    fn deref(&self) -> &Watched {
        &self.0
    }
}

impl DerefMut for Trap {
    fn deref_mut(&mut self) -> &mut Watched {
        &mut self.0
    }
}

impl Trap {
    /// Starts shell-trap with `args`, in its own process group, with `env` set.
    pub(crate) fn spawn(args: &[String], env: &[(&str, &str)]) -> Self {
        Self(Watched::spawn(
            "shell-trap",
            Command::new(bin())
                .args(args)
                .env_remove("MARATHON_APP_RESOURCE_CPUS")
                .env("RUST_LOG", "shell_trap=debug")
                .envs(env.iter().copied()),
        ))
    }
}

/// What every test of a shell-trap run starts with: the tests one at a time (they measure CPU
/// time or use Docker), a stand-in supervisor and a checkpoint directory.
pub(crate) struct Scene {
    pub(crate) sup: Supervisor,
    dir: tempfile::TempDir,
    _serial: MutexGuard<'static, ()>,
}

impl Scene {
    pub(crate) fn start() -> Self {
        let serial = serial();
        let dir = tempfile::tempdir().unwrap();
        Self {
            sup: Supervisor::watching(dir.path()),
            dir,
            _serial: serial,
        }
    }

    /// The checkpoint directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// [`base_args`] for job `uuid`, then `more`.
    pub(crate) fn args(&self, uuid: &str, more: &[&str]) -> Vec<String> {
        self.args_in(self.dir(), uuid, more)
    }

    /// [`Scene::args`] with the checkpoint directory (and the token file) in `dir`.
    pub(crate) fn args_in(&self, dir: &Path, uuid: &str, more: &[&str]) -> Vec<String> {
        let mut a = base_args(uuid, &self.sup, dir);
        a.extend(more.iter().map(|s| (*s).to_owned()));
        a
    }

    /// shell-trap with `args`, waited for (at most `within`): it and its exit status.
    pub(crate) fn run(&self, args: &[String], within: Duration) -> (Trap, ExitStatus) {
        let mut t = Trap::spawn(args, &[]);
        let (st, _) = t.wait(within);
        (t, st)
    }
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
