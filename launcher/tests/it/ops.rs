//! Operations on real binaries — the testbed and the supervisor as their binaries run (logs in
//! files), the launcher binary, shell-trap, LINPACK, real processes in real cgroups:
//!
//! - `launcher cancel` leaves nothing behind: no task, no process (a child that ignores SIGTERM
//!   included), no cgroup, no checkpoint directory (unless `--keep-checkpoints`), no framework
//!   entry;
//! - the report token is in no process' arguments while jobs run and report (curl and wget
//!   reporters, shell-trap, LINPACK), in no log line and not in `/metrics`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::procs::{Process, in_cgroup as procs};
use testkit::services::{Proc, start_json_line};

use crate::support::CatchUnwind;

const ADMIN: &str = "ops-admin-token-0123456789abcdef";

/// The testbed and the supervisor, as real processes.
struct Stack {
    dir: tempfile::TempDir,
    bins: BTreeMap<String, PathBuf>,
    testbed: Proc,
    urls: Value,
    supervisor: Proc,
    url: String,
    chronos: PathBuf,
    marathon: PathBuf,
    ckpt: PathBuf,
}

impl Stack {
    fn start() -> Self {
        let bins =
            testkit::bins::workspace_bins(&["testbed", "supervisor", "shell-trap", "linpack"]);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let prefix = format!("qos-launcher-ops-{}-{}", std::process::id(), rand_suffix());
        let (testbed, urls) =
            testkit::services::testbed(&bins["testbed"], d, &prefix, "127.0.0.1:0", "testbed");
        let creds = |file: &str, u: &Value| {
            let p = d.join(file);
            std::fs::write(
                &p,
                json!({"url": u, "user": "", "password": ""}).to_string(),
            )
            .unwrap();
            p
        };
        let chronos = creds("chronos.json", &urls["chronos"]);
        let marathon = creds("marathon.json", &urls["marathon"]);
        let (supervisor, ready) = start_json_line(
            Command::new(&bins["supervisor"])
                .args(["--listen", "127.0.0.1:0", "--admin-token", ADMIN])
                .arg("--db")
                .arg(d.join("supervisor.db"))
                .arg("-c")
                .arg(&chronos)
                .arg("-m")
                .arg(&marathon)
                .env("RUST_LOG", "debug"),
            "supervisor",
            &d.join("supervisor.log"),
        );
        let url = ready["url"].as_str().unwrap().to_owned();
        Self {
            ckpt: d.join("ckpt"),
            dir,
            bins,
            testbed,
            urls,
            supervisor,
            url,
            chronos,
            marathon,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The launcher binary with `args`; its answer (`-o json`) and stderr.
    async fn launcher(&self, args: &[&str]) -> (Option<i32>, Value, String) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
            .args(args)
            .args(["-i", &self.url, "--admin-token", ADMIN, "-o", "json"])
            .env_clear()
            .output()
            .await
            .unwrap();
        let answer = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code(),
            answer,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Submits `job` (a Chronos job or Marathon app with a `qos` block); returns its UUID.
    async fn submit(&self, job: &Value, marathon: bool) -> String {
        let file = self.path(&format!("job-{}.json", rand_suffix()));
        std::fs::write(&file, job.to_string()).unwrap();
        let (flag, creds) = if marathon {
            ("-m", &self.marathon)
        } else {
            ("-c", &self.chronos)
        };
        let (shell_trap, ckpt) = (
            self.bins["shell-trap"].display().to_string(),
            self.ckpt.display().to_string(),
        );
        let mut args = vec!["-j", file.to_str().unwrap(), flag, creds.to_str().unwrap()];
        if marathon {
            args.extend(["--shell-trap", &shell_trap, "--checkpoint-dir", &ckpt]);
        }
        let (code, answer, stderr) = self.launcher(&args).await;
        assert_eq!(code, Some(0), "{stderr}");
        answer["uuid"].as_str().unwrap().to_owned()
    }

    async fn job(&self, uuid: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}/api/v1/jobs/{uuid}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    async fn agent_state(&self) -> Value {
        let url = format!("{}/state", self.urls["agents"][0].as_str().unwrap());
        reqwest::get(url).await.unwrap().json().await.unwrap()
    }

    /// Every running executor of the agent: `(task id, cgroup directory in the cpu hierarchy)`.
    async fn executors(&self) -> Vec<(String, PathBuf)> {
        let state = self.agent_state().await;
        state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    Path::new("/sys/fs/cgroup/cpu").join(e["container"].as_str().unwrap_or("")),
                )
            })
            .collect()
    }

    /// Stops the testbed (its tasks and cgroups) and the supervisor cleanly.
    fn stop(mut self) {
        for p in [&mut self.testbed, &mut self.supervisor] {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(p.0.id()).unwrap()),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = p.0.wait();
        }
    }
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    format!("{:08x}", h.finish() & 0xffff_ffff)
}

/// Polls `check` every 50 ms until it holds, or panics with `what` after `within`.
async fn until(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn root() -> bool {
    testkit::cgroups_or_skip(
        nix::unistd::Uid::effective().is_root(),
        Some("not root"),
        "cancel on the testbed (real cgroups)",
    )
}

/// A long LINPACK under shell-trap (app checkpoints), as a thesis-format Marathon app.
fn linpack_app(stack: &Stack, id: &str) -> Value {
    json!({"id": id, "cpus": 0.5, "mem": 128, "instances": 1,
        "cmd": format!("exec {} 1200 --repeat 1000 -o json", stack.bins["linpack"].display()),
        "labels": {"qos.checkpoint": "app"},
        "qos": {"duration": 600, "deadline": 3600, "desv_deadline": 0.1}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_leaves_no_task_process_cgroup_or_checkpoint() {
    if !root() {
        return;
    }
    let stack = tokio::task::spawn_blocking(Stack::start).await.unwrap();
    let outcome = CatchUnwind(Box::pin(cancel_scenario(&stack))).await;
    let logs = format!(
        "supervisor log:\n{}\ntestbed log:\n{}",
        std::fs::read_to_string(stack.path("supervisor.log")).unwrap_or_default(),
        std::fs::read_to_string(stack.path("testbed.log")).unwrap_or_default()
    );
    stack.stop();
    if let Err(p) = outcome {
        eprintln!("{logs}");
        std::panic::resume_unwind(p);
    }
}

async fn cancel_scenario(stack: &Stack) {
    let name = format!("opsCancel{}", rand_suffix());
    // A child that ignores SIGTERM: only the end of the whole task stops it.
    let chronos = stack
        .submit(
            &json!({"name": name, "schedule": "R3//PT5M", "cpus": 0.5, "mem": 64, "owner": "ops",
                "command": "(trap '' TERM; exec sleep 300) & sleep 300; wait",
                "qos": {"duration": 300, "deadline": 3600, "desv_deadline": 0.2}}),
            false,
        )
        .await;
    let (id1, id2) = (
        format!("/ops-cancel-{}", rand_suffix()),
        format!("/ops-keep-{}", rand_suffix()),
    );
    let discard = stack.submit(&linpack_app(stack, &id1), true).await;
    let keep = stack.submit(&linpack_app(stack, &id2), true).await;

    // All three run, each in its cgroup; the Marathon jobs have reported their start, so
    // shell-trap holds their checkpoint directories.
    let mut running = Vec::new();
    until("three running tasks", Duration::from_secs(60), async || {
        running = stack.executors().await;
        running.len() == 3 && running.iter().all(|(_, cg)| procs(cg).len() >= 2)
    })
    .await;
    for u in [&discard, &keep] {
        until(
            "the Marathon job running",
            Duration::from_secs(60),
            async || stack.job(u).await["state"] == "running" && stack.ckpt.join(u).is_dir(),
        )
        .await;
    }
    let pids: Vec<Process> = running
        .iter()
        .flat_map(|(_, cg)| procs(cg))
        .filter_map(Process::of)
        .collect();
    assert!(pids.len() >= 6, "{running:?} {pids:?}");

    let (code, a, stderr) = stack
        .launcher(&[
            "cancel",
            &chronos,
            "--creds",
            stack.chronos.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    // The supervisor, told first, may have killed and deleted it already.
    assert_eq!(a["deleted_from"], "chronos", "{a}");
    // Either it stopped the running task itself, or the supervisor's cancel got there first.
    assert!(
        a["stopped"]
            .as_str()
            .is_some_and(|s| s.contains("Chronos") || s.contains("already deleted")),
        "{a}"
    );
    let (code, a, stderr) = stack
        .launcher(&[
            "cancel",
            &discard,
            "--creds",
            stack.marathon.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(a["checkpoints"], "removed by shell-trap", "{a}");
    let (code, a, stderr) = stack
        .launcher(&[
            "cancel",
            &keep,
            "--creds",
            stack.marathon.to_str().unwrap(),
            "--keep-checkpoints",
        ])
        .await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(a["checkpoints"], "kept", "{a}");

    // Nothing runs any more: no task, no process, no cgroup.
    // A Marathon task may take its whole kill grace: shell-trap checkpoints LINPACK at an
    // iteration's end, which on a loaded machine at 0.5 CPU can run past shell-trap's 25 s, and
    // the testbed SIGKILLs it at `taskKillGracePeriodSeconds`; then reaping and the cgroup's end.
    let cancelled = std::time::Instant::now();
    let kill_grace = Duration::from_secs(u64::from(launcher::rewrite::DEFAULT_GRACE_PERIOD_SECS));
    testkit::wait::until(
        "every process of the three tasks gone",
        kill_grace + Duration::from_secs(60),
        Duration::from_millis(50),
        || async {
            let left: Vec<String> = pids
                .iter()
                .filter(|p| p.alive())
                .map(Process::describe)
                .collect();
            if left.is_empty() { Ok(()) } else { Err(left) }
        },
    )
    .await;
    eprintln!(
        "every process of the three tasks gone {:.1} s after the last cancel",
        cancelled.elapsed().as_secs_f64()
    );
    until("every task gone", Duration::from_secs(60), async || {
        stack.executors().await.is_empty() && running.iter().all(|(_, cg)| !cg.exists())
    })
    .await;
    // No framework entry.
    let http = reqwest::Client::new();
    let jobs: Value = http
        .get(format!(
            "{}/v1/scheduler/jobs",
            stack.urls["chronos"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !jobs
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == name.as_str()),
        "{jobs}"
    );
    for id in [&id1, &id2] {
        let s = http
            .get(format!(
                "{}/v2/apps{id}",
                stack.urls["marathon"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s.as_u16(), 404, "{id}");
    }
    // The cancelled job's checkpoints are gone; the kept one's are sealed and there.
    assert!(
        !stack.ckpt.join(&discard).exists(),
        "checkpoints of {discard} left"
    );
    let kept: Vec<String> = std::fs::read_dir(stack.ckpt.join(&keep))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        kept.iter().any(|n| n.ends_with(".manifest")),
        "a sealed checkpoint: {kept:?}"
    );
    for u in [&chronos, &discard, &keep] {
        let v = stack.job(u).await;
        assert_eq!(v["state"], "cancelled", "{v}");
    }
    let trap_logs: String = testkit::sandbox::sandboxes(&stack.path("work"))
        .into_iter()
        .map(|s| s.stderr)
        .collect();
    assert!(
        trap_logs.contains("the job was cancelled: stopping"),
        "shell-trap knew it was a cancellation: {trap_logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_token_is_in_no_argv_log_or_metrics() {
    if !root() {
        return;
    }
    let stack = tokio::task::spawn_blocking(Stack::start).await.unwrap();
    let outcome = CatchUnwind(Box::pin(token_scenario(&stack))).await;
    stack.stop();
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

/// A directory with only BusyBox's tools as `PATH`: the Chronos wrapper then reports with wget.
fn busybox_path(dir: &Path) -> PathBuf {
    let bin = dir.join("busybox-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is installed (busybox-static)");
    for n in [
        "sh", "date", "hostname", "sleep", "wget", "timeout", "mktemp", "rm",
    ] {
        std::os::unix::fs::symlink(busybox, bin.join(n)).unwrap();
    }
    bin
}

async fn token_scenario(stack: &Stack) {
    let curl_job = format!("opsCurl{}", rand_suffix());
    let wget_job = format!("opsWget{}", rand_suffix());
    let qos = json!({"duration": 2, "deadline": 600, "desv_deadline": 0.2});
    let c1 = stack
        .submit(
            &json!({"name": curl_job, "schedule": "R3//PT1M", "cpus": 0.3, "mem": 32,
                "command": "sleep 0.5", "qos": qos}),
            false,
        )
        .await;
    let bb = busybox_path(stack.dir.path());
    let c2 = stack
        .submit(
            &json!({"name": wget_job, "schedule": "R3//PT1M", "cpus": 0.3, "mem": 32,
                "command": "sleep 0.5", "qos": qos,
                "environmentVariables": [{"name": "PATH", "value": bb.display().to_string()}]}),
            false,
        )
        .await;
    let app_id = format!("/ops-token-{}", rand_suffix());
    let mut app = linpack_app(stack, &app_id);
    app["cmd"] = json!(format!(
        "exec {} 500 --repeat 6 -o json",
        stack.bins["linpack"].display()
    ));
    app["env"] = json!({"QOS_PROGRESS_INTERVAL": "0.2"});
    app["qos"] = json!({"duration": 4, "deadline": 600, "desv_deadline": 0.1});
    let m1 = stack.submit(&app, true).await;

    // The tokens, as any reader of the frameworks' APIs sees them.
    let http = reqwest::Client::new();
    let chronos_url = stack.urls["chronos"].as_str().unwrap();
    let jobs: Value = http
        .get(format!("{chronos_url}/v1/scheduler/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tokens: Vec<String> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["name"] == curl_job.as_str() || j["name"] == wget_job.as_str())
        .flat_map(|j| {
            j["environmentVariables"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|v| v["name"] == "QOS_REPORT_TOKEN")
        .filter_map(|v| v["value"].as_str().map(str::to_owned))
        .collect();
    let appv: Value = http
        .get(format!(
            "{}/v2/apps{app_id}",
            stack.urls["marathon"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens.extend(
        appv["app"]["env"]["SHELL_TRAP_REPORT_TOKEN"]
            .as_str()
            .map(str::to_owned),
    );
    assert_eq!(tokens.len(), 3, "{jobs:#}\n{appv:#}");
    for j in jobs.as_array().unwrap() {
        assert!(!j["command"].as_str().unwrap_or("").contains(&tokens[0]));
    }

    // While everything runs and reports: no process shows a token in its arguments.
    let mut scans = 0u64;
    let mut exposed = Vec::new();
    until(
        "the three jobs completed",
        Duration::from_secs(180),
        async || {
            for t in &tokens {
                exposed.extend(testkit::procs::argv_containing(t));
            }
            scans += 1;
            let mut done = true;
            for u in [&c1, &c2, &m1] {
                done &= stack.job(u).await["state"] == "completed";
            }
            done
        },
    )
    .await;
    assert!(
        exposed.is_empty(),
        "tokens in process arguments: {exposed:?}"
    );
    assert!(scans > 10, "{scans} scans");
    // Each job reported with its token (a report without it is refused): wget's took it in the
    // body, curl's in the header, shell-trap's and LINPACK's in their own requests.
    for u in [&c1, &c2] {
        let v = stack.job(u).await;
        assert_eq!(v["remaining_iterations"], 0, "{v}");
    }
    assert!(stack.job(&m1).await["progress"].as_f64() == Some(1.0));

    // No log line and no metric holds a token.
    let metrics = http
        .get(format!("{}/metrics", stack.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut texts = vec![
        (
            "supervisor.log".to_owned(),
            std::fs::read_to_string(stack.path("supervisor.log")).unwrap(),
        ),
        (
            "testbed.log".to_owned(),
            std::fs::read_to_string(stack.path("testbed.log")).unwrap(),
        ),
        ("/metrics".to_owned(), metrics),
    ];
    for s in testkit::sandbox::sandboxes(&stack.path("work")) {
        texts.push((format!("{}/stdout", s.dir.display()), s.stdout));
        texts.push((format!("{}/stderr", s.dir.display()), s.stderr));
    }
    assert!(
        texts.len() >= 3 + 2 * 7,
        "every sandbox read: {}",
        texts.len()
    );
    for (what, text) in &texts {
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "a token in {what}");
        }
    }
    // The wget path really ran: its temporary body files are gone.
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("qos-report."))
        .filter(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|b| tokens.iter().any(|t| b.contains(t)))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
