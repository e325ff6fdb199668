//! The process runtime, for real: the counting job restarted like Marathon restarts a task on a
//! resize, reports to a fake supervisor, exit statuses, signals, the grace period, stale
//! checkpoints and the one-owner rule.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use serde_json::Value;

use testkit::assert_contains;

use crate::util::{
    Scene, Supervisor, Trap, base_args, cgroup_cpu, check_chain, done_line, drive, is_root,
    job_uuid, plan, report_cpu, report_overheads, serial,
};

/// Steps of the counter: about 3.5 s of CPU in a debug build.
const TARGET: u64 = 700_000;

fn counter_args(
    uuid: &str,
    sup: &Supervisor,
    dir: &Path,
    strategy: &str,
    cpus: f64,
    target: u64,
) -> Vec<String> {
    let mut a = base_args(uuid, sup, dir);
    a.extend([
        "--strategy".into(),
        strategy.into(),
        "--cpus".into(),
        cpus.to_string(),
        "--grace".into(),
        "10".into(),
    ]);
    if is_root() {
        a.extend(["--cgroup".into(), "create".into()]);
    }
    a.extend([
        "--".into(),
        crate::util::counter().into(),
        target.to_string(),
    ]);
    a
}

fn pid_alive(pid: i32) -> bool {
    // Gone, or a zombie waiting for init (it no longer runs).
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn job_pid(trap: &Trap) -> i32 {
    let line = trap
        .wait_stderr("running: incarnation", Duration::from_secs(10))
        .expect("no running line");
    line.text
        .split("process ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {:?}", line.text))
}

#[test]
fn app_strategy_survives_three_restarts_with_the_exact_count() {
    let s = Scene::start();

    // The same job without restarts, through the same wrapper, running at the same time as the
    // restarted one: both see the same machine (on a shared VM a concurrent compiler changes the
    // CPU time of the same work by tens of per cent).
    let u0 = job_uuid();
    let mut base = Trap::spawn(&counter_args(&u0, &s.sup, s.dir(), "app", 2.0, TARGET), &[]);

    // Resized three times: 1 → 0.5 → 1.5 → 2 CPUs.
    let uuid = job_uuid();
    let plan = plan(&[1.0, 0.5, 1.5, 2.0], &[700, 900, 700]);
    let (traps, overheads) = drive(
        &plan,
        |cpus| counter_args(&uuid, &s.sup, s.dir(), "app", cpus, TARGET),
        |i, trap| {
            if i > 0 {
                assert!(
                    trap.stdout().contains("qos-counter: resumed at"),
                    "incarnation {i} did not resume:\n{}\n{}",
                    trap.stdout(),
                    trap.stderr()
                );
            }
            if is_root() {
                // The CPU bound is real: the job's cgroup has the quota of this incarnation.
                let q = std::fs::read_to_string(format!(
                    "/sys/fs/cgroup/cpu/shell-trap-{uuid}/cpu.cfs_quota_us"
                ))
                .or_else(|_| {
                    std::fs::read_to_string(format!("/sys/fs/cgroup/shell-trap-{uuid}/cpu.max"))
                })
                .unwrap();
                let want = (plan[i].cpus * 100_000.0).round() as u64;
                assert!(
                    q.trim().starts_with(&want.to_string()),
                    "quota {q} for {:?}",
                    plan[i]
                );
            }
        },
        Duration::from_secs(10),
    );
    let (st, _) = base.wait(Duration::from_secs(120));
    assert!(st.success(), "{}", base.stderr());
    let b = done_line(&base);
    assert_eq!(b["count"], TARGET);
    let f = done_line(traps.last().unwrap());
    assert_eq!(f["count"], TARGET, "the exact count");
    assert_eq!(
        f["digest"], b["digest"],
        "every step done exactly once, in order"
    );
    assert_eq!(f["incarnations"], 4);
    assert_eq!(f["resumed"], true);
    for (i, t) in traps.iter().enumerate().take(3) {
        assert!(t.stdout().contains("qos-counter: checkpointed at"), "{i}");
        assert!(t.stderr().contains("sealed"), "{i}: {}", t.stderr());
    }

    // No step done twice or skipped: each incarnation resumed where the last one checkpointed.
    let outs: Vec<String> = traps.iter().map(|t| t.stdout()).collect();
    check_chain(&outs, TARGET);
    let cpu_b = b["cpu_seconds"].as_f64().unwrap();
    let cpu_f = f["cpu_seconds"].as_f64().unwrap();
    report_cpu("JOB CPU (the counter's own)", cpu_b, cpu_f);
    let whole_f: Option<f64> = traps.iter().map(cgroup_cpu).sum();
    if let (Some(whole_b), Some(whole_f)) = (cgroup_cpu(&base), whole_f) {
        // Everything in the task's cgroups: the job plus shell-trap itself, every incarnation.
        report_cpu("CGROUP CPU (job + shell-trap)", whole_b, whole_f);
    }
    report_overheads("process runtime, app strategy", &overheads);

    // Reports: one start per incarnation (restores flagged), one end with the exit status.
    let inits = s.sup.wait_for("initMarathonApp", 5, Duration::from_secs(5));
    assert_eq!(
        s.sup.restored_flags(&uuid),
        [false, true, true, true],
        "{inits:?}"
    );
    let ends: Vec<_> = s
        .sup
        .of("endMarathonApp")
        .into_iter()
        .filter(|r| r.body["uuid"] == uuid.as_str())
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].body["exit_code"], 0.0);
    assert_eq!(
        ends[0].auth.as_deref(),
        Some(format!("Bearer token-{uuid}").as_str())
    );
    for r in s.sup.reports() {
        assert!(r.auth.is_some(), "{r:?}");
        assert!(
            r.body["started_at"]
                .as_f64()
                .or(r.body["finished_at"].as_f64())
                .unwrap()
                > 1.0e9
        );
    }
    // The job ended: its checkpoints are gone, already when the supervisor heard of the end
    // (it deletes the app then, and a user may look at once).
    assert_eq!(s.sup.checkpoints_at_end(&uuid), Some(false));
    assert!(!s.dir().join(&uuid).exists());
    assert!(!s.dir().join(&u0).exists());
}

#[test]
fn none_strategy_restarts_from_zero_and_says_so() {
    let s = Scene::start();
    let uuid = job_uuid();
    let plan = plan(&[1.0, 1.0], &[400]);
    let (traps, _) = drive(
        &plan,
        |cpus| counter_args(&uuid, &s.sup, s.dir(), "none", cpus, 300_000),
        |_, _| {},
        Duration::from_secs(10),
    );
    let first = &traps[0];
    assert_contains(&first.stderr(), &["strategy none"]);
    assert_contains(
        &first.stderr(),
        &["without a checkpoint (strategy none): the work done so far is lost"],
    );
    assert_contains(&first.stdout(), &["stopped at"]);
    let second = &traps[1];
    assert_contains(&second.stdout(), &["qos-counter: starting from 0/300000"]);
    assert_contains(
        &second.stderr(),
        &["incarnation 2: starting from scratch (strategy none)"],
    );
    let f = done_line(second);
    assert_eq!(f["count"], 300_000);
    assert_eq!(f["resumed"], false);
    s.sup.wait_for("endMarathonApp", 1, Duration::from_secs(5));
    assert_eq!(s.sup.restored_flags(&uuid), [false, false]);
    assert!(!s.dir().join(&uuid).exists());
}

#[test]
fn criu_is_refused_for_processes_unless_a_fallback_is_configured() {
    let s = Scene::start();
    let uuid = job_uuid();
    let args = s.args(&uuid, &["--strategy", "criu", "--", "/bin/true"]);
    let (t, st) = s.run(&args, Duration::from_secs(20));
    assert_eq!(st.code(), Some(125));
    assert_contains(
        &t.stderr(),
        &["--strategy criu refused: CRIU checkpoints need the docker runtime"],
    );
    assert!(s.sup.reports().is_empty(), "nothing ran, nothing reported");

    let args = s.args(
        &uuid,
        &[
            "--strategy",
            "criu",
            "--fallback",
            "app",
            "--",
            crate::util::counter(),
            "1000",
        ],
    );
    let (t, st) = s.run(&args, Duration::from_secs(20));
    assert!(st.success(), "{}", t.stderr());
    assert_contains(&t.stderr(), &["falling back to --fallback app"]);
}

#[test]
fn exit_statuses_are_propagated_and_reported() {
    let s = Scene::start();
    for (cmd, want) in [("exit 7", 7), ("exit 0", 0), ("kill -9 $$", 137)] {
        let uuid = job_uuid();
        let args = s.args(&uuid, &["--", "/bin/sh", "-c", cmd]);
        let (t, st) = s.run(&args, Duration::from_secs(20));
        assert_eq!(st.code(), Some(want), "{cmd}: {}", t.stderr());
        let end = s
            .sup
            .end_of(&uuid)
            .unwrap_or_else(|| panic!("{cmd}: no end report\n{}", t.stderr()));
        assert_eq!(end.body["exit_code"], Value::from(f64::from(want)), "{cmd}");
        assert!(!s.dir().join(&uuid).exists(), "{cmd}: checkpoints left");
    }
    for (cmd, want) in [("/nonexistent/job", 127), ("/etc/passwd", 126)] {
        let uuid = job_uuid();
        let args = s.args(&uuid, &["--runtime", "process", "--", cmd]);
        let (t, st) = s.run(&args, Duration::from_secs(20));
        assert_eq!(st.code(), Some(want), "{cmd}: {}", t.stderr());
        assert_contains(&t.stderr(), &["cannot execute"]);
    }
    // Invalid arguments: 125, before anything starts.
    for bad in [["--uuid", "a/b"], ["--cpus", "0"]] {
        let uuid = job_uuid();
        let args = s.args(&uuid, &[bad[0], bad[1], "--", "/bin/true"]);
        let (t, st) = s.run(&args, Duration::from_secs(20));
        assert_eq!(st.code(), Some(125), "{bad:?}: {}", t.stderr());
        assert!(t.stderr().contains(bad[0]), "{}", t.stderr());
    }
}

/// A job that ignores SIGTERM (so it never checkpoints).
fn stubborn(uuid: &str, sup: &Supervisor, dir: &Path, grace: &str) -> Vec<String> {
    let mut a = base_args(uuid, sup, dir);
    a.extend([
        "--strategy".into(),
        "app".into(),
        "--grace".into(),
        grace.into(),
        "--".into(),
        "/bin/sh".into(),
        "-c".into(),
        "trap '' TERM; echo ready; while :; do sleep 0.05; done".into(),
    ]);
    a
}

#[test]
fn the_grace_period_bounds_the_stop_and_a_second_signal_stops_at_once() {
    let s = Scene::start();

    // Grace 2 s: the job ignores SIGTERM, so shell-trap kills it and says the checkpoint failed.
    let uuid = job_uuid();
    let mut t = Trap::spawn(&stubborn(&uuid, &s.sup, s.dir(), "2"), &[]);
    t.wait_stdout("ready", Duration::from_secs(10)).unwrap();
    let pid = job_pid(&t);
    let t0 = Instant::now();
    t.signal(Signal::SIGTERM);
    let (st, at) = t.wait(Duration::from_secs(10));
    let took = at - t0;
    assert_eq!(st.code(), Some(1), "{}", t.stderr());
    // Bounded by the 2 s grace, not shell-trap's default 25 s (a busy machine adds a little).
    assert!(took < Duration::from_secs(12), "stop took {took:?}");
    assert!(
        t.stderr()
            .contains("did not save its state and stop within the grace period")
    );
    assert!(!pid_alive(pid), "the job {pid} outlived shell-trap");
    assert!(
        s.sup.of("endMarathonApp").is_empty(),
        "a stop is not an end"
    );

    // Grace 20 s, but a second signal (SIGINT, like an impatient Ctrl-C) stops at once.
    let uuid = job_uuid();
    let mut t = Trap::spawn(&stubborn(&uuid, &s.sup, s.dir(), "20"), &[]);
    t.wait_stdout("ready", Duration::from_secs(10)).unwrap();
    let pid = job_pid(&t);
    t.signal(Signal::SIGTERM);
    // A duplicate SIGTERM right away is the same request, not a second one.
    t.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        t.child.try_wait().unwrap().is_none(),
        "a duplicate SIGTERM stopped it"
    );
    let t0 = Instant::now();
    kill(t.pid(), Signal::SIGINT).unwrap();
    let (st, at) = t.wait(Duration::from_secs(10));
    assert_eq!(st.code(), Some(130), "{}", t.stderr());
    assert!(at - t0 < Duration::from_secs(2), "{:?}", at - t0);
    assert_contains(&t.stderr(), &["second signal SIGINT"]);
    assert!(!pid_alive(pid));
}

#[test]
fn a_killed_incarnation_is_not_restored_and_its_job_dies_with_it() {
    let s = Scene::start();
    let uuid = job_uuid();
    let args = |cpus| counter_args(&uuid, &s.sup, s.dir(), "app", cpus, TARGET);

    // Incarnation 1 checkpoints normally.
    let mut t1 = Trap::spawn(&args(1.0), &[]);
    t1.wait_stdout("starting from 0", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    t1.signal(Signal::SIGTERM);
    assert!(t1.wait(Duration::from_secs(15)).0.success());
    let saved = t1
        .wait_stdout("checkpointed at ", Duration::from_secs(1))
        .unwrap()
        .text
        .split("checkpointed at ")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    // Incarnation 2 is SIGKILLed (shell-trap alone): its job must not live on, and its
    // unsealed directory must not be restored.
    let mut t2 = Trap::spawn(&args(1.0), &[]);
    t2.wait_stdout(&format!("resumed at {saved}/"), Duration::from_secs(10))
        .unwrap();
    let pid = job_pid(&t2);
    std::thread::sleep(Duration::from_millis(300));
    kill(t2.pid(), Signal::SIGKILL).unwrap();
    t2.wait(Duration::from_secs(5));
    let until = Instant::now() + Duration::from_secs(2);
    while pid_alive(pid) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pid_alive(pid), "the job survived its shell-trap's SIGKILL");
    assert!(s.dir().join(&uuid).join("inc-000002").exists());
    if is_root() {
        // Its cgroup is left behind by the SIGKILL; the next incarnation reuses it.
        assert!(Path::new(&format!("/sys/fs/cgroup/cpu/shell-trap-{uuid}")).exists());
    }

    // Incarnation 3 restores incarnation 1's checkpoint, and cleans incarnation 2 up.
    let mut t3 = Trap::spawn(&args(2.0), &[]);
    t3.wait_stdout(&format!("resumed at {saved}/"), Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{}\n{}", t3.stdout(), t3.stderr()));
    assert!(
        t3.stderr().contains("removing stale checkpoint") && t3.stderr().contains("inc-000002"),
        "{}",
        t3.stderr()
    );
    assert!(
        t3.stderr()
            .contains("incarnation 3: restoring the checkpoint of incarnation 1")
    );
    assert!(t3.wait(Duration::from_secs(120)).0.success());
    assert_eq!(done_line(&t3)["count"], TARGET);
    assert!(!s.dir().join(&uuid).exists());
    if is_root() {
        assert!(!Path::new(&format!("/sys/fs/cgroup/cpu/shell-trap-{uuid}")).exists());
    }
}

#[test]
fn one_live_incarnation_per_uuid_and_signals_before_the_start() {
    let s = Scene::start();
    let uuid = job_uuid();
    let job = |grace: &str| {
        let mut a = base_args(&uuid, &s.sup, s.dir());
        a.extend([
            "--strategy".into(),
            "none".into(),
            "--grace".into(),
            grace.into(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 0.05; done".into(),
        ]);
        a
    };
    let mut a = Trap::spawn(&job("10"), &[]);
    a.wait_stdout("ready", Duration::from_secs(10)).unwrap();

    // Forwarded signals reach the job.
    kill(a.pid(), Signal::SIGUSR1).unwrap();
    a.wait_stdout("got-usr1", Duration::from_secs(5))
        .unwrap_or_else(|| panic!("{}\n{}", a.stdout(), a.stderr()));

    // A second incarnation waits for the first (its grace), then refuses.
    let t0 = Instant::now();
    let mut b = Trap::spawn(&job("1"), &[]);
    let (st, at) = b.wait(Duration::from_secs(10));
    assert_eq!(st.code(), Some(125), "{}", b.stderr());
    assert!(at - t0 >= Duration::from_millis(900));
    assert_contains(&b.stderr(), &["is still held"]);
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "the first one was disturbed"
    );

    // A SIGTERM while waiting for the lock: nothing started, exit 0 at once.
    let mut c = Trap::spawn(&job("30"), &[]);
    c.wait_stderr("waiting up to", Duration::from_secs(10))
        .unwrap();
    c.signal(Signal::SIGTERM);
    let (st, _) = c.wait(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "{}", c.stderr());
    assert_contains(&c.stderr(), &["before the job started"]);

    a.signal(Signal::SIGTERM);
    assert_eq!(
        a.wait(Duration::from_secs(15)).0.code(),
        Some(0),
        "{}",
        a.stderr()
    );
    // Only the first incarnation ever started.
    let inits: Vec<_> = s
        .sup
        .of("initMarathonApp")
        .into_iter()
        .filter(|r| r.body["uuid"] == uuid.as_str())
        .collect();
    assert_eq!(inits.len(), 1);
}

/// A supervisor that accepts connections and never answers (a hung service, a black-holed
/// network): the job still starts at once, a SIGTERM still checkpoints and stops within the
/// grace period (not the 60 s report timeout), and the next incarnation, with the supervisor
/// back, resumes exactly where the checkpoint left off.
#[test]
fn a_hanging_supervisor_never_delays_the_start_or_the_checkpoint() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    let uuid = job_uuid();
    let args: Vec<String> = [
        "--uuid",
        &uuid,
        "--supervisor",
        &url,
        "--checkpoint-dir",
        &dir.path().display().to_string(),
        "--report-timeout",
        "60",
        "--strategy",
        "app",
        "--grace",
        "3",
        "--",
        crate::util::counter(),
        &TARGET.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut first = Trap::spawn(&args, &[("SHELL_TRAP_REPORT_TOKEN", "t")]);
    first
        .wait_stdout("qos-counter: starting from 0", Duration::from_secs(10))
        .expect("the job starts while its start report hangs");
    let t0 = Instant::now();
    first.signal(Signal::SIGTERM);
    let (st, at) = first.wait(Duration::from_secs(30));
    let took = at - t0;
    assert!(st.success(), "{st:?}\n{}", first.stderr());
    assert!(
        took < Duration::from_secs(9),
        "stop took {took:?}: bounded by the 3 s grace, not the 60 s report timeout"
    );
    assert!(first.stdout().contains("qos-counter: checkpointed at"));
    assert_contains(
        &first.stderr(),
        &["the start report was not delivered before the grace period ended"],
    );
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the report reached the hung service"
    );

    // The supervisor is back: the next incarnation resumes and finishes.
    let sup = Supervisor::start();
    let mut second = Trap::spawn(
        &counter_args(&uuid, &sup, dir.path(), "app", 1.0, TARGET),
        &[],
    );
    let (st, _) = second.wait(Duration::from_secs(120));
    assert!(st.success(), "{}", second.stderr());
    check_chain(&[first.stdout(), second.stdout()], TARGET);
    assert_eq!(sup.restored_flags(&uuid), [true]);
}

/// A cancelled job (the supervisor's view says `cancelled`): on SIGTERM shell-trap stops it
/// without a checkpoint and deletes the job's checkpoint directory, the one saved by an earlier
/// restart included; cancelled with `keep_checkpoints`, it saves the work as for a restart.
#[test]
fn a_cancelled_job_leaves_no_checkpoint_unless_asked_to_keep_them() {
    let s = Scene::start();
    for keep in [false, true] {
        let uuid = job_uuid();
        let job_dir = s.dir().join(&uuid);
        // A first incarnation stopped for a restart: a sealed checkpoint.
        let args = counter_args(&uuid, &s.sup, s.dir(), "app", 1.0, TARGET);
        let mut t = Trap::spawn(&args, &[]);
        t.wait_stdout("qos-counter: starting from 0", Duration::from_secs(10))
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        t.signal(Signal::SIGTERM);
        let (st, _) = t.wait(Duration::from_secs(20));
        assert!(st.success(), "{}", t.stderr());
        assert!(job_dir.exists(), "{}", t.stderr());
        // The second is running when the job is cancelled.
        let mut t = Trap::spawn(&args, &[]);
        t.wait_stdout("qos-counter: resumed at", Duration::from_secs(10))
            .unwrap();
        let pid = job_pid(&t);
        let mut view = serde_json::json!({"uuid": uuid, "state": "cancelled"});
        if keep {
            view["keep_checkpoints"] = serde_json::json!(true);
        }
        s.sup.set_job(&uuid, view);
        t.signal(Signal::SIGTERM);
        let (st, _) = t.wait(Duration::from_secs(20));
        assert!(st.success(), "{}", t.stderr());
        assert!(!pid_alive(pid), "the job {pid} outlived shell-trap");
        if keep {
            assert_contains(&t.stderr(), &["checkpoint of incarnation"]);
            assert!(job_dir.exists(), "kept: {}", t.stderr());
        } else {
            assert_contains(&t.stderr(), &["the job was cancelled"]);
            assert!(
                !job_dir.exists(),
                "{} is left: {}",
                job_dir.display(),
                t.stderr()
            );
        }
    }
}

/// With checkpoint directory `dir` unusable (its job directory failing with `error`): a job that
/// does not checkpoint runs anyway, with one warning naming the job's directory and what is
/// lost; a strategy that needs the directory is refused (125) naming it, and nothing runs.
fn plain_runs_and_what_needs_the_directory_is_refused(s: &Scene, dir: &Path, error: &str) {
    let args = |uuid: &str, more: &[&str]| {
        let mut a = s.args(uuid, more);
        let i = a.iter().position(|x| x == "--checkpoint-dir").unwrap();
        a[i + 1] = dir.display().to_string();
        a
    };
    let job = ["--", "/bin/sh", "-c", "echo the job ran; exit 3"];
    for how in [
        &["--strategy", "none"][..],
        &["--strategy", "auto"],
        &["--strategy", "auto", "--app-checkpoint"],
        &["--strategy", "criu", "--fallback", "none"],
    ] {
        let uuid = job_uuid();
        let (t, st) = s.run(&args(&uuid, &[how, &job].concat()), Duration::from_secs(20));
        let err = t.stderr();
        assert_eq!(st.code(), Some(3), "{how:?}: {err}");
        assert_contains(&t.stdout(), &["the job ran"]);
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{how:?}: one warning: {err}");
        assert_contains(
            warnings[0],
            &[
                &dir.join(&uuid).display().to_string(),
                error,
                "without checkpoints",
                "a second shell-trap of this job is not excluded",
                "nothing can be restored",
            ],
        );
        let end = s
            .sup
            .end_of(&uuid)
            .unwrap_or_else(|| panic!("{how:?}: no end report\n{err}"));
        assert_eq!(end.body["exit_code"], Value::from(3.0), "{how:?}");
        assert_eq!(s.sup.restored_flags(&uuid), [false], "{how:?}");
    }
    // What needs the directory is refused before anything runs, naming it.
    for how in [
        &["--strategy", "app"][..],
        &["--strategy", "criu", "--fallback", "app"],
    ] {
        let uuid = job_uuid();
        let (t, st) = s.run(&args(&uuid, &[how, &job].concat()), Duration::from_secs(20));
        let err = t.stderr();
        assert_eq!(st.code(), Some(125), "{how:?}: {err}");
        assert_contains(
            &err,
            &[&dir.join(&uuid).display().to_string(), error, "refused"],
        );
        assert!(!t.stdout().contains("the job ran"), "{how:?}: {err}");
        assert!(
            s.sup
                .reports()
                .iter()
                .all(|r| r.body["uuid"] != uuid.as_str()),
            "{how:?}: nothing ran, nothing reported"
        );
    }
}

/// A checkpoint directory that cannot be created (a path under a regular file: ENOTDIR, as root
/// too).
#[test]
fn an_unusable_checkpoint_directory_never_keeps_a_plain_job_from_running() {
    let s = Scene::start();
    let blocker = s.dir().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    plain_runs_and_what_needs_the_directory_is_refused(
        &s,
        &blocker.join("checkpoints"),
        "Not a directory",
    );
}

/// The checkpoint directory fails only *after* the job's lock is taken: `<dir>/<uuid>/lock`
/// fits in PATH_MAX but the incarnation directory `<dir>/<uuid>/inc-000001.tmp` does not
/// (ENAMETOOLONG, as root too — the same path as a disk that fills or a permission that changes
/// while the incarnation is prepared).
#[test]
fn a_checkpoint_directory_failing_after_the_lock_never_keeps_a_plain_job_from_running() {
    let s = Scene::start();
    // Linux PATH_MAX is 4096 bytes with the NUL: the job directory gets 4085, so `/lock` (5
    // more) fits and `/inc-000001.tmp` (15 more) does not.
    let uuid_len = job_uuid().len();
    let mut base = s.dir().join("deep");
    loop {
        let gap = 4085 - (base.as_os_str().len() + 1 + uuid_len);
        if gap == 0 {
            break;
        }
        // Components of at most 255 bytes (NAME_MAX); the last one takes what is left.
        let name_len = if gap > 256 { 200 } else { gap - 1 };
        base = base.join("d".repeat(name_len));
    }
    assert_eq!(base.as_os_str().len() + 1 + uuid_len, 4085);
    plain_runs_and_what_needs_the_directory_is_refused(&s, &base, "File name too long");
}

/// After a rollback, the job's newest checkpoint was sealed by a newer shell-trap (manifest
/// format 2). A strategy that would restore it refuses to start (125), naming the checkpoint and
/// how to proceed, and leaves it untouched; `none` runs the job from scratch beside it, with a
/// warning, without touching it.
#[test]
fn a_checkpoint_sealed_by_a_newer_shell_trap_is_kept_and_named() {
    let s = Scene::start();
    let uuid = job_uuid();
    let job_dir = s.dir().join(&uuid);
    let inc = job_dir.join("inc-000001");
    std::fs::create_dir_all(&inc).unwrap();
    std::fs::write(inc.join("state"), b"hours of work").unwrap();
    let manifest = job_dir.join("inc-000001.manifest");
    let body = serde_json::json!({"format": 2, "uuid": uuid, "incarnation": 1,
        "strategy": "app", "chunks": [{"path": "state", "len": 13}]});
    std::fs::write(&manifest, body.to_string()).unwrap();

    let job = [
        "--",
        "/bin/sh",
        "-c",
        "test -f \"$0\" && echo the checkpoint is there; echo the job ran",
    ];
    let state = inc.join("state").display().to_string();
    let mut refused = s.args(&uuid, &["--strategy", "app"]);
    refused.extend(job.iter().map(|x| (*x).to_owned()));
    refused.push(state.clone());
    let (t, st) = s.run(&refused, Duration::from_secs(20));
    let err = t.stderr();
    assert_eq!(st.code(), Some(125), "{err}");
    assert_contains(
        &err,
        &[
            &manifest.display().to_string(),
            "format 2",
            "newer shell-trap",
            "left untouched",
            "to start it from scratch remove",
        ],
    );
    assert!(!t.stdout().contains("the job ran"), "{err}");
    assert_eq!(std::fs::read(inc.join("state")).unwrap(), b"hours of work");
    assert_eq!(
        std::fs::read_to_string(&manifest).unwrap(),
        body.to_string()
    );

    let mut none = s.args(&uuid, &["--strategy", "none"]);
    none.extend(job.iter().map(|x| (*x).to_owned()));
    none.push(state);
    let (t, st) = s.run(&none, Duration::from_secs(20));
    let err = t.stderr();
    assert_eq!(st.code(), Some(0), "{err}");
    assert_contains(&t.stdout(), &["the checkpoint is there", "the job ran"]);
    assert_contains(&err, &["newer shell-trap", "left untouched"]);
}
