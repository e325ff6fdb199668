//! End to end against the real supervisor (its binary, SQLite, auth on) and a fake Chronos 2.x:
//! a thesis-format Chronos job is submitted by the launcher binary, its rewritten command is run
//! the scheduled number of times exactly as Chronos would (`sh -c`), each run reports with the
//! job's own token, the supervisor completes the job and deletes it from Chronos — and never
//! forces an extra run (the contract of `launcher::rewrite::chronos`).
//!
//! Chronos 2.x cannot run iterations back to back, so the first test submits with
//! `--pace schedule`. The other tests run the whole path for real on the testbed's Chronos
//! emulator (which the launcher detects as 3.x), paced back to back by default, and on its
//! Marathon emulator: a thesis-format Marathon app runs LINPACK through the real shell-trap,
//! reports with its own token, finishes, and is deleted (the resize of a Marathon job through a
//! real restart is the supervisor's test, `supervisor/tests/it/testbed.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use testkit::services::{Proc, start_json_line};

use crate::support::{CatchUnwind, example, read_json, sandboxes};
use testkit::wire::{Recorded, Scripted};

const ADMIN: &str = "e2e-admin-token-0123456789";

/// A stateful Chronos 2.x: remembers the posted job, answers searches, deletes.
async fn chronos() -> Scripted {
    let jobs: Arc<Mutex<Vec<Value>>> = Arc::default();
    Scripted::start(move |r: &Recorded, _| {
        let mut jobs = jobs.lock().unwrap();
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/scheduler/jobs" | "/scheduler/jobs/search") => {
                (200, Value::Array(jobs.clone()).to_string())
            }
            ("POST", "/scheduler/iso8601") => {
                let job = r.json();
                jobs.retain(|j| j["name"] != job["name"]);
                jobs.push(job);
                (204, String::new())
            }
            ("DELETE", p) if p.starts_with("/scheduler/job/") => {
                let name = p.trim_start_matches("/scheduler/job/");
                let before = jobs.len();
                jobs.retain(|j| j["name"] != name);
                if jobs.len() < before {
                    (204, String::new())
                } else {
                    (400, "job not found".into())
                }
            }
            _ => (404, "<html>Not Found</html>".into()),
        }
    })
    .await
}

async fn launcher(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
        .args(args)
        .env_clear()
        .output()
        .await
        .expect("run launcher")
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_job_submits_runs_reports_and_finishes_on_the_real_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let chr = chronos().await;
    let creds = dir.path().join("chronos.json");
    std::fs::write(
        &creds,
        json!({"url": chr.url, "user": "", "password": ""}).to_string(),
    )
    .unwrap();

    // The supervisor, its binary as a user runs it.
    let db = dir.path().join("supervisor.db");
    let mut cmd = testkit::bins::command("supervisor");
    cmd.args(["--listen", "127.0.0.1:0", "--db", &db.display().to_string()])
        .args(["-c", &creds.display().to_string(), "--chronos-api", "v2"])
        .env("QOS_ADMIN_TOKEN", ADMIN);
    let log = dir.path().join("supervisor.log");
    let (supervisor, ready) = start_json_line(&mut cmd, "supervisor", &log);
    let url = ready["url"].as_str().expect("a url").to_owned();

    // A thesis-format job, scaled down: two iterations.
    let job = dir.path().join("e2e.json");
    std::fs::write(
        &job,
        json!({"schedule": "R2//PT1M", "name": "e2eLinpack", "cpus": "1", "mem": "64",
               "command": "echo \"iteration it's $((1 + 1))\"", "owner": "e2e", "async": "false",
               "qos": {"duration": 2, "desv_deadline": 0.2, "deadline": 300}})
        .to_string(),
    )
    .unwrap();
    let out = launcher(&[
        "-j",
        &job.display().to_string(),
        "-c",
        &creds.display().to_string(),
        "-i",
        &url,
        "--admin-token",
        ADMIN,
        "-o",
        "json",
        "--pace",
        "schedule",
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let uuid = answer["uuid"].as_str().unwrap().to_owned();

    // Chronos runs the job twice, as its R2 schedule says.
    // The first POST is the launcher's; the supervisor may re-post to resize, which must change
    // nothing but `cpus`.
    let posted = chr.requests_to("POST", "/scheduler/iso8601");
    let first = posted[0].json();
    let command = first["command"].as_str().unwrap().to_owned();
    for i in 0..2 {
        if i > 0 {
            // Chronos spaces runs by the period; reports of runs within the same second on the
            // same host would look like one repeated report where `date` has no sub-seconds.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
        // Chronos gives the task the job's environmentVariables (the report token among them).
        let env = first["environmentVariables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["value"].as_str().unwrap().to_owned(),
                )
            });
        let run = tokio::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .envs(env)
            .output()
            .await
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&run.stdout), "iteration it's 2\n");
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }

    // The supervisor counts both, completes the job and deletes it from Chronos.
    let mut last = Value::Null;
    for _ in 0..100 {
        let out = launcher(&[
            "status",
            &uuid,
            "-i",
            &url,
            "--admin-token",
            ADMIN,
            "-o",
            "json",
        ])
        .await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last = serde_json::from_slice(&out.stdout).unwrap();
        if last["state"] == "completed"
            && !chr
                .requests_to("DELETE", "/scheduler/job/e2eLinpack")
                .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(last["remaining_iterations"], 0, "{last:#}");
    assert_eq!(
        chr.requests_to("DELETE", "/scheduler/job/e2eLinpack").len(),
        1,
        "deleted after the last iteration"
    );
    assert!(
        chr.requests().iter().all(|r| r.method != "PUT"),
        "the supervisor must never force a Chronos run"
    );
    for resize in &chr.requests_to("POST", "/scheduler/iso8601")[1..] {
        let mut job = resize.json();
        let mut expected = first.clone();
        job.as_object_mut().unwrap().remove("cpus");
        expected.as_object_mut().unwrap().remove("cpus");
        assert_eq!(job, expected, "a supervisor re-post changes only cpus");
    }

    // `list` shows it by name.
    let out = launcher(&["list", "-i", &url, "--admin-token", ADMIN]).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("e2eLinpack"));

    drop(supervisor);
}

/// The testbed (one agent, Chronos and Marathon emulators) and the real supervisor (its binary),
/// with credential files for the emulators.
struct Bed {
    dir: tempfile::TempDir,
    testbed: testbed::Testbed,
    creds: std::path::PathBuf,
    marathon_creds: std::path::PathBuf,
    /// The task sandboxes.
    work: std::path::PathBuf,
    url: String,
    supervisor: Proc,
}

impl Bed {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bed_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let work = dir.path().join("work");
        let bed_config = testbed::Config {
            agents: 1,
            cpus_per_agent: 2.0,
            process_kill_grace_secs: 1.0,
            cgroup_prefix: format!("qos-launcher-e2e-{}", std::process::id()),
            meta_dir: dir.path().join("meta"),
            work_dir: Some(work.clone()),
            ..testbed::Config::default()
        };
        let testbed = testbed::serve(bed_config, bed_listener, std::future::pending())
            .await
            .expect("testbed starts");
        let chronos_url = testbed.urls().chronos.clone();
        let creds = dir.path().join("chronos.json");
        std::fs::write(
            &creds,
            json!({"url": chronos_url, "user": "", "password": ""}).to_string(),
        )
        .unwrap();
        let marathon_creds = dir.path().join("marathon.json");
        std::fs::write(
            &marathon_creds,
            json!({"url": testbed.urls().marathon, "user": "", "password": ""}).to_string(),
        )
        .unwrap();

        let db = dir.path().join("supervisor.db");
        let mut cmd = testkit::bins::command("supervisor");
        cmd.args(["--listen", "127.0.0.1:0", "--db", &db.display().to_string()])
            .args(["-c", &creds.display().to_string(), "--chronos-api", "v2"])
            .args(["-m", &marathon_creds.display().to_string()])
            .env("QOS_ADMIN_TOKEN", ADMIN);
        let log = dir.path().join("supervisor.log");
        let (supervisor, ready) = start_json_line(&mut cmd, "supervisor", &log);
        let url = ready["url"].as_str().expect("a url").to_owned();
        Self {
            dir,
            testbed,
            creds,
            marathon_creds,
            work,
            url,
            supervisor,
        }
    }

    /// Submits `job` with the thesis form; returns the launcher's JSON answer and its stderr.
    async fn submit(&self, job: &Value) -> (Value, String) {
        let path = self.dir.path().join("job.json");
        std::fs::write(&path, job.to_string()).unwrap();
        let out = launcher(&[
            "-j",
            &path.display().to_string(),
            "-c",
            &self.creds.display().to_string(),
            "-i",
            &self.url,
            "--admin-token",
            ADMIN,
            "-o",
            "json",
        ])
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        (serde_json::from_slice(&out.stdout).unwrap(), stderr)
    }

    /// The job's status, as `launcher status -o json` shows it.
    async fn status(&self, uuid: &str) -> Value {
        let out = launcher(&[
            "status",
            uuid,
            "-i",
            &self.url,
            "--admin-token",
            ADMIN,
            "-o",
            "json",
        ])
        .await;
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Polls the job's status until it is completed (or `tries` × 200 ms have passed).
    async fn until_completed(&self, uuid: &str, tries: u32) -> Value {
        let mut last = Value::Null;
        for _ in 0..tries {
            last = self.status(uuid).await;
            if last["state"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        last
    }

    async fn stop(self) {
        drop(self.supervisor);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.testbed.stop()).await;
    }
}

/// The whole path for real: the launcher submits a thesis-format job to the testbed's Chronos
/// emulator, which runs the rewritten command (`/bin/sh -c`, a real process) on its schedule; each
/// run reports to the real supervisor with the job's token; the supervisor completes the job.
#[tokio::test(flavor = "multi_thread")]
async fn thesis_format_job_runs_on_the_testbed_chronos_and_finishes() {
    let bed = Bed::start().await;
    let name = format!("e2eTestbed{}", std::process::id());
    let (answer, _) = bed
        .submit(
            &json!({"schedule": "R3//PT2S", "name": name, "cpus": "0.5", "mem": "64",
               "command": "sleep 0.3; echo \"it's iteration $((1 + 1))\"", "owner": "e2e",
               "async": "false", "qos": {"duration": 1, "desv_deadline": 0.2, "deadline": 120}}),
        )
        .await;
    let uuid = answer["uuid"].as_str().unwrap().to_owned();

    let last = bed.until_completed(&uuid, 300).await;
    assert_eq!(last["state"], "completed", "{last:#}");
    assert_eq!(last["remaining_iterations"], 0, "{last:#}");
    let reports = last["reports"].as_array().expect("reports");
    assert_eq!(
        reports.len(),
        3,
        "exactly the three scheduled runs: {last:#}"
    );
    bed.stop().await;
}

/// Back-to-back pacing (the default) on the emulator: a job whose own schedule spaces its three
/// runs five minutes apart completes in seconds, each run starting within a couple of seconds of
/// the previous one's end, and exactly three runs happen.
#[tokio::test(flavor = "multi_thread")]
async fn back_to_back_runs_follow_each_other_on_the_testbed_chronos() {
    let bed = Bed::start().await;
    let name = format!("e2eBackToBack{}", std::process::id());
    let (answer, stderr) = bed
        .submit(
            &json!({"schedule": "R3//PT5M", "name": name, "cpus": "0.5", "mem": "64",
               "command": "sleep 1.5", "owner": "e2e", "async": "false",
               "qos": {"duration": 2, "desv_deadline": 0.2, "deadline": 600}}),
        )
        .await;
    assert!(
        stderr.contains("note: schedule \"R3//PT5M\" is sent as \"R3//PT1S\""),
        "{stderr}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
    let uuid = answer["uuid"].as_str().unwrap().to_owned();

    // On its own schedule the third run would start 10 minutes in; back to back it ends in ~5 s.
    let last = bed.until_completed(&uuid, 150).await;
    assert_eq!(last["state"], "completed", "{last:#}");
    let reports = last["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 3, "exactly three runs: {last:#}");
    let at = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
    let mut runs: Vec<(f64, f64)> = reports
        .iter()
        .map(|r| (at(r, "started_at"), at(r, "finished_at")))
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in runs.windows(2) {
        let ((_, prev_end), (next_start, _)) = (pair[0], pair[1]);
        let gap = next_start - prev_end;
        assert!(
            (0.0..2.0).contains(&gap),
            "each run starts within 2 s of the previous one's end, not on the 5-minute period \
             (and never before it ends): gap {gap} s in {runs:?}"
        );
    }
    bed.stop().await;
}

/// The Marathon path for real: the launcher binary submits the thesis-format Marathon job (the
/// local `marathon_openmpLinpack1.json`, scaled down, choosing app checkpoints with its
/// `qos.checkpoint` label) to the testbed's Marathon emulator; the task runs LINPACK through the
/// real shell-trap, both report to the real supervisor with the job's own token; the job
/// finishes, and the supervisor deletes the app: nothing is left.
#[tokio::test(flavor = "multi_thread")]
async fn thesis_format_marathon_app_runs_through_shell_trap_and_leaves_nothing() {
    let bins =
        tokio::task::spawn_blocking(|| testkit::bins::workspace_bins(&["shell-trap", "linpack"]))
            .await
            .unwrap();
    let bed = Bed::start().await;
    // The testbed (its tasks and cgroups) is stopped whatever happens.
    let outcome = CatchUnwind(Box::pin(marathon_app_scenario(&bed, &bins))).await;
    bed.stop().await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

async fn marathon_app_scenario(bed: &Bed, bins: &BTreeMap<String, PathBuf>) {
    let ckpt = bed.dir.path().join("ckpt");
    let id = format!("/e2e-linpack-{}", std::process::id());
    let mut job = read_json(&example("local/marathon_openmpLinpack1.json"));
    // About 2.4 CPU-s of LINPACK (N=500, 4 solves, debug build) on the app's 1 CPU.
    job["id"] = json!(id);
    job["cmd"] = json!(format!(
        "exec {} 500 --repeat 4 -o json",
        bins["linpack"].display()
    ));
    job["labels"] = json!({"qos.checkpoint": "app"});
    job["env"] = json!({"QOS_PROGRESS_INTERVAL": "0.5"});
    job["qos"] = json!({"duration": 3, "deadline": 120, "desv_deadline": 0.1});
    let path = bed.dir.path().join("marathon_job.json");
    std::fs::write(&path, job.to_string()).unwrap();
    let out = launcher(&[
        "-j",
        &path.display().to_string(),
        "-m",
        &bed.marathon_creds.display().to_string(),
        "-i",
        &bed.url,
        "--admin-token",
        ADMIN,
        "-o",
        "json",
        "--shell-trap",
        &bins["shell-trap"].display().to_string(),
        "--checkpoint-dir",
        &ckpt.display().to_string(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["framework"], "marathon");
    assert_eq!(answer["name"], id.as_str());
    let uuid = answer["uuid"].as_str().unwrap().to_owned();

    // What Marathon holds (the task cannot be done yet: it needs seconds of CPU at 1 CPU).
    let marathon = frameworks::MarathonClient::new(
        &frameworks::Credentials::load(&bed.marathon_creds).unwrap(),
    )
    .unwrap();
    let app = serde_json::to_value(marathon.get_app(&id).await.unwrap()).unwrap();
    let cmd = app["cmd"].as_str().unwrap();
    assert!(cmd.starts_with("exec "), "{cmd}");
    assert!(
        cmd.contains(&format!(" --uuid {uuid} "))
            && cmd.contains(" --strategy app --grace 25 --runtime process -- sh -c "),
        "{cmd}"
    );
    assert_eq!(app["labels"]["qos.uuid"], uuid.as_str(), "{app:#}");
    assert_eq!(app["labels"]["qos.checkpoint"], "app", "{app:#}");
    assert_eq!(app["taskKillGracePeriodSeconds"], 30, "{app:#}");
    assert_eq!(
        app["upgradeStrategy"],
        json!({"minimumHealthCapacity": 0, "maximumOverCapacity": 0}),
        "{app:#}"
    );
    assert!(app["env"]["SHELL_TRAP_REPORT_TOKEN"].is_string(), "{app:#}");

    // It runs, reports and finishes; the supervisor deletes the app.
    let mut last = Value::Null;
    for _ in 0..600 {
        last = bed.status(&uuid).await;
        if last["cleaned_up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let boxes = sandboxes(&bed.work);
    let logs = format!("{last:#}\n{boxes:#?}");
    assert_eq!(last["state"], "completed", "{logs}");
    assert_eq!(last["cleaned_up"], true, "{logs}");
    assert_eq!(last["progress"], 1.0, "{logs}");
    assert!(last["started_at"].is_number(), "{logs}");
    let gone = marathon.get_app(&id).await;
    assert!(
        gone.as_ref()
            .is_err_and(frameworks::FrameworkError::is_not_found),
        "the app is deleted when the job ends: {gone:?}"
    );

    // One task, one clean LINPACK run under shell-trap with the launcher's settings.
    assert_eq!(boxes.len(), 1, "{logs}");
    let (stdout, trap_log) = &boxes[0];
    let done: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["status"] == "completed")
        .unwrap_or_else(|| panic!("no LINPACK result: {logs}"));
    assert_eq!(done["passed"], true, "{done}");
    assert_eq!(done["repeats"], 4, "{done}");
    assert_eq!(done["resumed"], false, "{done}");
    assert!(trap_log.contains("grace 25.0 s"), "{trap_log}");
    assert!(
        !ckpt.join(&uuid).exists(),
        "shell-trap removes the checkpoints of a finished job"
    );

    // `list` shows it finished.
    let out = launcher(&["list", "-i", &bed.url, "--admin-token", ADMIN, "-o", "json"]).await;
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mine: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["uuid"] == uuid.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{list:#}");
    assert_eq!(mine[0]["state"], "completed", "{list:#}");
}
