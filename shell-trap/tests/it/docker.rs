//! The Docker runtime against a real dockerd (scripts/test.d/docker.up): the counting job as a
//! container (a static build of `qos-counter` in an image imported locally, labelled
//! `qos.checkpoint=app`), restarted like Marathon restarts it on resizes; the CRIU refusal; exit
//! statuses; container options; a live container of the same UUID (thesis bug 22) and an orphan.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use serde_json::Value;

use testkit::assert_contains;

use crate::util::{
    Scene, Trap, check_chain, docker_or_skip, done_line, drive, job_uuid, plan, report_cpu,
    report_overheads,
};

/// Steps of the (optimised) counter: about 4 s of CPU.
const TARGET: u64 = 2_500_000;

/// Builds the counter statically with rustc (std only, no Cargo build needed) and imports it as
/// a one-file image labelled `qos.checkpoint=app`, tagged by the binary's hash (no re-import,
/// no dangling images, when it did not change).
fn image() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qos-counter-image");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/qos-counter/main.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = Command::new(rustc)
            .args([
                "--edition",
                "2024",
                "-C",
                "opt-level=2",
                "-C",
                "target-feature=+crt-static",
            ])
            .args(["-C", "strip=debuginfo", "-W", "unsafe_code", "-o"])
            .arg(rootfs.join("qos-counter"))
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "static build of qos-counter failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bin = std::fs::read(rootfs.join("qos-counter")).unwrap();
        let tag = format!("qos-counter-test:{:08x}", crc32fast::hash(&bin));
        if testkit::docker::run(&["image", "inspect", &tag]).ok {
            return tag;
        }
        let tar = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["-cf"])
            .arg(dir.join("rootfs.tar"))
            .arg(".")
            .status()
            .unwrap();
        assert!(tar.success());
        testkit::docker::ok(&[
            "import",
            "--change",
            "LABEL qos.checkpoint=app",
            dir.join("rootfs.tar").to_str().unwrap(),
            &tag,
        ]);
        tag
    })
}

/// A Docker test's [`Scene`], or `None` (after a notice) when no daemon answers.
fn scene(test: &str) -> Option<Scene> {
    docker_or_skip(test).then(Scene::start)
}

/// Removes the container even when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn inspect(name: &str) -> Option<Value> {
    let ran = testkit::docker::run(&["inspect", name]);
    ran.ok
        .then(|| serde_json::from_str::<Value>(&ran.stdout).unwrap()[0].clone())
}

fn trap_args(
    s: &Scene,
    uuid: &str,
    strategy: &str,
    cpus: f64,
    extra: &[&str],
    job: &[String],
) -> Vec<String> {
    trap_args_in(s, s.dir(), uuid, strategy, cpus, extra, job)
}

/// [`trap_args`] with the checkpoint directory in `dir`.
fn trap_args_in(
    s: &Scene,
    dir: &Path,
    uuid: &str,
    strategy: &str,
    cpus: f64,
    extra: &[&str],
    job: &[String],
) -> Vec<String> {
    let cpus = cpus.to_string();
    let mut a = s.args_in(
        dir,
        uuid,
        &["--strategy", strategy, "--cpus", &cpus, "--grace", "15"],
    );
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a.push("--".into());
    a.extend(job.iter().cloned());
    a
}

/// The counter's image and command line, counting to `target`.
fn counter_cmd(target: u64) -> Vec<String> {
    vec![image().into(), "/qos-counter".into(), target.to_string()]
}

#[test]
fn docker_app_checkpoints_survive_three_resizes_with_the_exact_count() {
    let Some(s) = scene("docker_app_checkpoints_survive_three_resizes") else {
        return;
    };
    image();

    let u0 = job_uuid();
    let _c0 = Cleanup(u0.clone());
    let (base, st) = s.run(
        &trap_args(&s, &u0, "auto", 2.0, &[], &counter_cmd(TARGET)),
        Duration::from_secs(180),
    );
    assert!(st.success(), "{}\n{}", base.stdout(), base.stderr());
    assert!(
        base.stderr().contains("auto: CRIU cannot be used")
            && base.stderr().contains("the job declares app checkpoints"),
        "the image label selects app: {}",
        base.stderr()
    );
    let b = done_line(&base);
    let cpu_b = b["cpu_seconds"].as_f64().unwrap();

    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let plan = plan(&[1.0, 0.5, 1.5, 2.0], &[900, 1200, 900]);
    let extra = [
        "--docker-opt",
        "label=team=qos",
        "--docker-opt",
        "memory=64m",
    ];
    let (traps, overheads) = drive(
        &plan,
        |cpus| trap_args(&s, &uuid, "auto", cpus, &extra, &counter_cmd(TARGET)),
        |i, trap| {
            let c =
                inspect(&uuid).unwrap_or_else(|| panic!("no container {uuid}: {}", trap.stderr()));
            let h = &c["HostConfig"];
            assert_eq!(
                h["NanoCpus"],
                (plan[i].cpus * 1e9).round() as i64,
                "the CPU bound"
            );
            assert_eq!(h["NetworkMode"], "host");
            assert_eq!(h["Memory"], 64 << 20);
            let labels = &c["Config"]["Labels"];
            assert_eq!(labels["qos.uuid"], uuid.as_str());
            assert_eq!(labels["qos.incarnation"], (i + 1).to_string());
            assert_eq!(labels["qos.strategy"], "app");
            assert_eq!(labels["team"], "qos");
            let env: Vec<&str> = c["Config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                env.contains(&"QOS_CHECKPOINT_DIR=/qos-checkpoint"),
                "{env:?}"
            );
            assert!(env.contains(&format!("QOS_UUID={uuid}").as_str()));
            let mounts = c["Mounts"].as_array().unwrap();
            assert!(
                mounts.iter().any(|m| m["Destination"] == "/qos-checkpoint"
                    && m["Source"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("{uuid}/inc-{:06}", i + 1))),
                "{mounts:?}"
            );
            if i > 0 {
                assert_contains(&trap.stdout(), &["qos-counter: resumed at"]);
            }
        },
        Duration::from_secs(15),
    );
    let f = done_line(traps.last().unwrap());
    assert_eq!(f["count"], TARGET);
    assert_eq!(f["digest"], b["digest"]);
    assert_eq!(f["incarnations"], 4);
    let outs: Vec<String> = traps.iter().map(|t| t.stdout()).collect();
    check_chain(&outs, TARGET);
    report_cpu(
        "DOCKER JOB CPU (the counter's own)",
        cpu_b,
        f["cpu_seconds"].as_f64().unwrap(),
    );
    report_overheads("docker runtime, app strategy", &overheads);

    s.sup.wait_for("endMarathonApp", 2, Duration::from_secs(5));
    assert_eq!(s.sup.restored_flags(&uuid), [false, true, true, true]);
    let end = s
        .sup
        .of("endMarathonApp")
        .into_iter()
        .find(|r| r.body["uuid"] == uuid.as_str())
        .unwrap();
    assert_eq!(end.body["exit_code"], 0.0);
    assert_eq!(
        end.auth.as_deref(),
        Some(format!("Bearer token-{uuid}").as_str())
    );
    assert!(inspect(&uuid).is_none(), "the container was not removed");
    assert!(inspect(&u0).is_none());
    assert!(!s.dir().join(&uuid).exists(), "checkpoints left");
    assert_eq!(
        s.sup.checkpoints_at_end(&uuid),
        Some(false),
        "left at the end report"
    );
}

#[test]
fn docker_none_restarts_from_zero_and_says_so() {
    let Some(s) = scene("docker_none_restarts_from_zero_and_says_so") else {
        return;
    };
    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let plan = plan(&[1.0, 1.0], &[500]);
    let (traps, _) = drive(
        &plan,
        |cpus| trap_args(&s, &uuid, "none", cpus, &[], &counter_cmd(1_000_000)),
        |_, _| {},
        Duration::from_secs(15),
    );
    assert_contains(&traps[0].stderr(), &["the work done so far is lost"]);
    assert_contains(&traps[1].stdout(), &["starting from 0/1000000"]);
    assert!(
        traps[1]
            .stderr()
            .contains("starting from scratch (strategy none)"),
        "{}\n--- first:\n{}",
        traps[1].stderr(),
        traps[0].stderr()
    );
    assert_eq!(done_line(&traps[1])["resumed"], false);
    s.sup.wait_for("endMarathonApp", 1, Duration::from_secs(5));
    assert_eq!(s.sup.restored_flags(&uuid), [false, false]);
    assert!(inspect(&uuid).is_none());
}

#[test]
fn docker_criu_is_refused_with_the_reason_and_falls_back_only_when_configured() {
    let Some(s) = scene("docker_criu_is_refused_with_the_reason") else {
        return;
    };
    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let (t, st) = s.run(
        &trap_args(&s, &uuid, "criu", 1.0, &[], &counter_cmd(1000)),
        Duration::from_secs(60),
    );
    assert_eq!(st.code(), Some(125), "{}", t.stderr());
    let err = t.stderr();
    assert!(err.contains("--strategy criu refused: "), "{err}");
    // Here: criu is not installed, or installed and failing on this kernel, or the daemon is
    // not experimental — the message names which.
    assert!(
        err.contains("criu is not installed")
            || err.contains("`criu check` failed")
            || err.contains("is not experimental"),
        "{err}"
    );
    eprintln!(
        "CRIU REFUSAL: {}",
        err.lines().find(|l| l.contains("refused")).unwrap()
    );
    assert!(inspect(&uuid).is_none(), "a container was created");
    assert!(s.sup.reports().is_empty());

    let (t, st) = s.run(
        &trap_args(
            &s,
            &uuid,
            "criu",
            1.0,
            &["--fallback", "app"],
            &counter_cmd(1000),
        ),
        Duration::from_secs(60),
    );
    assert!(st.success(), "{}", t.stderr());
    assert_contains(&t.stderr(), &["falling back to --fallback app"]);
}

#[test]
fn docker_exit_status_marathon_container_options_and_cleanup() {
    let Some(s) = scene("docker_exit_status_and_cleanup") else {
        return;
    };

    // The Marathon container object from the launcher, and forwarded app variables.
    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let container = serde_json::json!({
        "type": "DOCKER",
        "docker": {"image": image(), "network": "HOST",
                   "parameters": [{"key": "label", "value": "from=marathon"}]},
        "volumes": [{"hostPath": "/tmp", "containerPath": "/hosttmp", "mode": "RO"}]
    })
    .to_string();
    let env = [
        ("QOS_CONTAINER", container.as_str()),
        ("QOS_FORWARD_ENV", "FOO MISSING"),
        ("FOO", "bar"),
    ];
    let mut args = s.args(&uuid, &["--strategy", "app", "--"]);
    args.extend(counter_cmd(50_000_000));
    let mut t = Trap::spawn(&args, &env);
    t.wait_stdout("qos-counter: starting", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{}", t.stderr()));
    let c = inspect(&uuid).unwrap();
    assert_eq!(c["Config"]["Labels"]["from"], "marathon");
    assert_eq!(
        c["HostConfig"]["NanoCpus"], 0,
        "no --cpus, no MARATHON_APP_RESOURCE_CPUS"
    );
    let env: Vec<&str> = c["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(env.contains(&"FOO=bar"), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("MISSING")));
    assert!(env.contains(&format!("QOS_REPORT_TOKEN=token-{uuid}").as_str()));
    let mounts = c["Mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["Destination"] == "/hosttmp" && m["RW"] == false)
    );
    t.signal(Signal::SIGTERM);
    let (st, _) = t.wait(Duration::from_secs(30));
    assert!(st.success(), "{}", t.stderr());
    assert!(
        inspect(&uuid).is_none(),
        "the container of a stopped incarnation is removed"
    );
    assert!(s.dir().join(&uuid).exists(), "its checkpoint is kept");

    // The job's own exit status (2: usage error) is shell-trap's, and is reported.
    let uuid = job_uuid();
    let _c2 = Cleanup(uuid.clone());
    let (t, st) = s.run(
        &trap_args(
            &s,
            &uuid,
            "app",
            1.0,
            &[],
            &[image().into(), "/qos-counter".into()],
        ),
        Duration::from_secs(60),
    );
    assert_eq!(st.code(), Some(2), "{}", t.stderr());
    assert!(
        t.stderr().contains("usage: qos-counter"),
        "container stderr is streamed"
    );
    let end = s
        .sup
        .wait_for("endMarathonApp", 1, Duration::from_secs(5))
        .into_iter()
        .find(|r| r.body["uuid"] == uuid.as_str())
        .unwrap();
    assert_eq!(end.body["exit_code"], 2.0);
    assert!(inspect(&uuid).is_none());
    assert!(!s.dir().join(&uuid).exists());

    // An image that is not there (and no registry): 125 with the reason.
    let uuid = job_uuid();
    let args = s.args(&uuid, &["--runtime", "docker", "--", "qos-no-such-image:1"]);
    let (t, st) = s.run(&args, Duration::from_secs(120));
    assert_eq!(st.code(), Some(125), "{}", t.stderr());
    assert_contains(&t.stderr(), &["cannot be pulled"]);
}

#[test]
fn docker_a_live_container_is_never_removed_and_an_orphan_is_checkpointed_first() {
    let Some(s) = scene("docker_a_live_container_is_never_removed") else {
        return;
    };
    let other_dir = tempfile::tempdir().unwrap();
    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let job = counter_cmd(50_000_000);

    let mut a = Trap::spawn(&trap_args(&s, &uuid, "app", 1.0, &[], &job), &[]);
    a.wait_stdout("qos-counter: starting", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{}", a.stderr()));
    let first_id = inspect(&uuid).unwrap()["Id"].as_str().unwrap().to_owned();

    // Another task of the same UUID (another checkpoint dir, so no shared lock): the container
    // belongs to a live shell-trap, so it waits its grace period and refuses — never `rm -f`.
    let mut args = trap_args_in(&s, other_dir.path(), &uuid, "app", 1.0, &[], &job);
    let g = args.iter().position(|x| x == "--grace").unwrap();
    args[g + 1] = "1".into();
    let mut b = Trap::spawn(&args, &[]);
    let (st, _) = b.wait(Duration::from_secs(60));
    assert_eq!(st.code(), Some(125), "{}", b.stderr());
    assert_contains(
        &b.stderr(),
        &["refusing to remove an un-checkpointed container"],
    );
    let c = inspect(&uuid).unwrap();
    assert_eq!(c["Id"], first_id.as_str());
    assert_eq!(c["State"]["Running"], true);

    // The first shell-trap dies by SIGKILL: its container is an orphan. The next incarnation
    // checkpoints it first (SIGTERM → the job saves → sealed), then restores that checkpoint.
    kill(a.pid(), Signal::SIGKILL).unwrap();
    a.wait(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(inspect(&uuid).unwrap()["State"]["Running"], true);
    let t0 = Instant::now();
    let mut c = Trap::spawn(&trap_args(&s, &uuid, "app", 1.0, &[], &job), &[]);
    let resumed = c
        .wait_stdout("qos-counter: resumed at", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{}\n{}", c.stdout(), c.stderr()));
    let err = c.stderr();
    assert!(
        err.contains("the shell-trap that started it is gone; checkpointing it (app)"),
        "{err}"
    );
    assert!(
        err.contains("sealed the orphan's checkpoint (incarnation 1"),
        "{err}"
    );
    assert!(
        err.contains("incarnation 2: restoring the checkpoint of incarnation 1"),
        "{err}"
    );
    eprintln!("ORPHAN adopted and resumed in {:?}", resumed.at - t0);
    assert_ne!(inspect(&uuid).unwrap()["Id"], first_id.as_str());
    c.signal(Signal::SIGTERM);
    assert!(
        c.wait(Duration::from_secs(30)).0.success(),
        "{}",
        c.stderr()
    );
    assert!(inspect(&uuid).is_none());
}

#[test]
fn docker_linpack_resumes_bit_identically_after_a_resize() {
    if !docker_or_skip("docker_linpack_resumes_bit_identically_after_a_resize") {
        return;
    }
    const LINPACK: &str = "qos-linpack:latest";
    if !testkit::docker::run(&["image", "inspect", LINPACK]).ok {
        let msg = format!(
            "{LINPACK} is not on the daemon: build it with `bash examples/linpack/build-image.sh`"
        );
        assert!(
            std::env::var("QOS_SHELL_TRAP_REQUIRE_LINPACK").as_deref() != Ok("1"),
            "{msg}"
        );
        eprintln!("SKIPPED docker_linpack_resumes_bit_identically_after_a_resize: {msg}");
        return;
    }
    let s = Scene::start();
    let job: Vec<String> = [
        LINPACK, "/linpack", "2000", "--repeat", "6", "--output", "json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let args = |uuid: &str, cpus: f64| trap_args(&s, uuid, "app", cpus, &[], &job);
    let result = |t: &Trap| -> Value {
        let line = t
            .stdout_lines()
            .into_iter()
            .find(|l| l.text.starts_with("{\"status\":\"completed\""))
            .unwrap_or_else(|| panic!("no result line:\n{}\n{}", t.stdout(), t.stderr()));
        serde_json::from_str(&line.text).unwrap()
    };

    let u0 = job_uuid();
    let _c0 = Cleanup(u0.clone());
    let mut base = Trap::spawn(&args(&u0, 2.0), &[]);
    assert!(
        base.wait(Duration::from_secs(180)).0.success(),
        "{}",
        base.stderr()
    );
    let b = result(&base);

    let uuid = job_uuid();
    let _c = Cleanup(uuid.clone());
    let mut first = Trap::spawn(&args(&uuid, 1.0), &[]);
    first
        .wait_stderr("running: incarnation 1", Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{}", first.stderr()));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        first.child.try_wait().unwrap().is_none(),
        "finished before SIGTERM"
    );
    first.signal(Signal::SIGTERM);
    let (st, _) = first.wait(Duration::from_secs(30));
    assert!(st.success(), "{}\n{}", first.stdout(), first.stderr());
    assert_contains(&first.stderr(), &["sealed"]);
    let mut second = Trap::spawn(&args(&uuid, 2.0), &[]);
    assert!(
        second.wait(Duration::from_secs(180)).0.success(),
        "{}",
        second.stderr()
    );
    let r = result(&second);
    eprintln!("LINPACK uninterrupted {b}\nLINPACK resized 1 → 2 CPUs {r}");
    assert_eq!(r["resumed"], true);
    assert_eq!(
        r["solution_crc32"], b["solution_crc32"],
        "bit-identical solution"
    );
    assert_eq!(r["residual"], b["residual"]);
    assert_eq!(r["passed"], true);
    assert_eq!(s.sup.restored_flags(&uuid), [false, true]);
    // Its progress reports carry the job's own token, passed in by shell-trap.
    let progress: Vec<_> = s
        .sup
        .of("progress")
        .into_iter()
        .filter(|p| p.auth.as_deref() == Some(format!("Bearer token-{uuid}").as_str()))
        .collect();
    assert!(
        !progress.is_empty(),
        "no progress report from the container"
    );
    assert!(inspect(&uuid).is_none());
    assert!(!s.dir().join(&uuid).exists());
}
