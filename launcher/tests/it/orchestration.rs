//! The launcher binary against fake supervisor, Marathon and Chronos servers: register first,
//! then submit; rollback on failure; clear messages and exit codes; nothing left behind.

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::example;
use testkit::assert_contains;
use testkit::wire::{Recorded, Scripted, dead_url};

const TOKEN: &str = "rt-abcDEF.123";

/// Runs the launcher binary with a clean environment.
async fn launcher(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
        .args(args)
        .env_clear()
        .output()
        .await
        .expect("run launcher")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that the launcher exited `code` (showing its stderr otherwise); returns its stderr.
fn exited(out: &Output, code: i32) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    stderr
}

type Events = Arc<Mutex<Vec<String>>>;

fn push(events: &Events, what: String) {
    events.lock().unwrap().push(what);
}

/// A supervisor that registers anything, cancels, and shows `jobs`; with the list of events its
/// requests start (the frameworks' fakes of the test add theirs).
async fn supervisor(jobs: Value) -> (Events, Scripted) {
    let events = Events::default();
    let log = events.clone();
    let fake = Scripted::start(move |r: &Recorded, _| {
        push(&log, format!("supervisor {} {}", r.method, r.path));
        let segs: Vec<&str> = r.path.split('/').filter(|s| !s.is_empty()).collect();
        match (r.method.as_str(), segs.as_slice()) {
            ("POST", ["api", "v1", "jobs"]) => {
                let uuid = r.json()["uuid"].clone();
                (201, json!({"uuid": uuid, "report_token": TOKEN}).to_string())
            }
            ("DELETE", ["api", "v1", "jobs", _]) => (204, String::new()),
            ("GET", ["api", "v1", "jobs"]) => (200, jobs.to_string()),
            ("GET", ["api", "v1", "jobs", uuid]) => jobs
                .as_array()
                .and_then(|a| a.iter().find(|j| j["uuid"] == *uuid))
                .map_or_else(
                    || (404, json!({"error": {"code": "not_found", "message": format!("no job {uuid}")}}).to_string()),
                    |j| (200, j.to_string()),
                ),
            _ => (404, json!({"error": {"code": "not_found", "message": "no route"}}).to_string()),
        }
    })
    .await;
    (events, fake)
}

/// A Marathon whose `POST /v2/apps` answers `create`.
async fn marathon(events: Events, create: (u16, Value), exists_after: bool) -> Scripted {
    Scripted::start(move |r: &Recorded, _| {
        push(&events, format!("marathon {} {}", r.method, r.path));
        match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/v2/apps") => {
                let mut body = r.json();
                if create.0 == 201 {
                    body["deployments"] = json!([{"id": "d1"}]);
                    (201, body.to_string())
                } else {
                    (create.0, create.1.to_string())
                }
            }
            ("GET", p) if p.starts_with("/v2/apps/") => {
                if exists_after {
                    (200, json!({"app": {"id": p.trim_start_matches("/v2/apps")}}).to_string())
                } else {
                    (404, json!({"message": format!("App '{}' does not exist", p.trim_start_matches("/v2/apps"))}).to_string())
                }
            }
            ("DELETE", p) if p.starts_with("/v2/apps/") => {
                (200, json!({"deploymentId": "d2", "version": "2026-01-01T00:00:00.000Z"}).to_string())
            }
            _ => (404, json!({"message": "no route"}).to_string()),
        }
    })
    .await
}

/// A Chronos 2.x with `existing` jobs whose iso8601 POST answers `post`.
async fn chronos(events: Events, existing: Value, post: (u16, String)) -> Scripted {
    chronos_at("/scheduler", events, existing, post).await
}

/// A Chronos whose API lives under `prefix` (`/scheduler`: 2.x, `/v1/scheduler`: 3.x).
async fn chronos_at(
    prefix: &'static str,
    events: Events,
    existing: Value,
    post: (u16, String),
) -> Scripted {
    Scripted::start(move |r: &Recorded, _| {
        push(&events, format!("chronos {} {}", r.method, r.path));
        let Some(path) = r.path.strip_prefix(prefix) else {
            return (404, "<html>Not Found</html>".to_owned());
        };
        match (r.method.as_str(), path) {
            ("GET", "/jobs" | "/jobs/search") => (200, existing.to_string()),
            ("POST", "/iso8601") => post.clone(),
            ("DELETE", p) if p.starts_with("/job/") || p.starts_with("/task/kill/") => {
                (204, String::new())
            }
            _ => (404, "<html>Not Found</html>".to_owned()),
        }
    })
    .await
}

fn creds_file(dir: &Path, name: &str, url: &str) -> String {
    let p = dir.join(name);
    std::fs::write(
        &p,
        json!({"url": url, "user": "", "password": ""}).to_string(),
    )
    .unwrap();
    p.display().to_string()
}

/// Runs `launcher -j <example> <flag> <credentials of framework_url> -i <supervisor> <extra…>`,
/// the credentials in a temporary file (`flag`: `-m` Marathon, `-c` Chronos).
async fn submit(
    flag: &str,
    framework_url: &str,
    example_job: &str,
    supervisor: &str,
    extra: &[&str],
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let creds = creds_file(dir.path(), "creds.json", framework_url);
    let job = example(example_job).display().to_string();
    let mut args = vec!["-j", job.as_str(), flag, creds.as_str(), "-i", supervisor];
    args.extend_from_slice(extra);
    launcher(&args).await
}

/// [`submit`] of the thesis' Marathon example.
async fn submit_marathon(framework_url: &str, supervisor: &str, extra: &[&str]) -> Output {
    submit(
        "-m",
        framework_url,
        "thesis/marathon_openmpLinpack1.json",
        supervisor,
        extra,
    )
    .await
}

fn events_of(events: &Events) -> Vec<String> {
    events.lock().unwrap().clone()
}

/// How many `DELETE`s `fake` received.
fn deletes(fake: &Scripted) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn marathon_thesis_form_registers_first_then_submits() {
    let (events, sup) = supervisor(json!([])).await;
    let mar = marathon(events.clone(), (201, Value::Null), false).await;
    let out = submit_marathon(&mar.url, &sup.url, &["--admin-token", "adm"]).await;
    exited(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Launch completed with UUID: "), "{stdout}");
    assert_eq!(
        events_of(&events),
        ["supervisor POST /api/v1/jobs", "marathon POST /v2/apps"],
        "registration strictly before submission"
    );
    let reg = &sup.requests_to("POST", "/api/v1/jobs")[0];
    assert_eq!(reg.header("authorization"), Some("Bearer adm"));
    let registration = reg.json();
    let app = mar.requests_to("POST", "/v2/apps")[0].json();
    let uuid = registration["uuid"].as_str().unwrap();
    assert_eq!(uuid.len(), 32);
    assert!(stdout.contains(uuid));
    assert_eq!(registration["name"], "/openmplinpack1");
    assert_eq!(registration["framework"], "marathon");
    assert_eq!(registration["cpus"], 1.0);
    assert_eq!(app["labels"]["qos.uuid"], uuid);
    assert!(app.get("qos").is_none() && app.get("container").is_none());
    let cmd = app["cmd"].as_str().unwrap();
    assert!(cmd.starts_with("exec "), "{cmd}");
    assert!(
        !cmd.contains(TOKEN),
        "the token stays off the command line: {cmd}"
    );
    assert_eq!(app["env"]["SHELL_TRAP_REPORT_TOKEN"], TOKEN);
    assert!(cmd.contains(&format!("--supervisor {}", sup.url)), "{cmd}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_submit_detects_v2_and_embeds_the_report_token() {
    let (events, sup) = supervisor(json!([])).await;
    let chr = chronos(events.clone(), json!([]), (204, String::new())).await;
    let dir = tempfile::tempdir().unwrap();
    let creds = creds_file(dir.path(), "chronos.json", &chr.url);
    let job = example("thesis/openmpLinpack3.json");
    let out = launcher(&[
        "submit",
        &job.display().to_string(),
        "--creds",
        &creds,
        "--supervisor",
        &sup.url,
        "-o",
        "json",
        "--pace",
        "schedule",
    ])
    .await;
    exited(&out, 0);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["submitted"], true);
    assert_eq!(answer["framework"], "chronos");
    assert_eq!(
        answer["notes"],
        json!([]),
        "--pace schedule: nothing replaced"
    );
    assert!(
        text(&out.stderr).contains("warning: the last of the 13 runs starts 2160 s"),
        "today's warning: {}",
        text(&out.stderr)
    );
    let ev = events_of(&events);
    let reg_at = ev
        .iter()
        .position(|e| e == "supervisor POST /api/v1/jobs")
        .unwrap();
    let post_at = ev
        .iter()
        .position(|e| e == "chronos POST /scheduler/iso8601")
        .unwrap();
    assert!(reg_at < post_at, "{ev:?}");
    let job = chr.requests_to("POST", "/scheduler/iso8601")[0].json();
    assert_eq!(
        job["schedule"], "R13//PT3M",
        "--pace schedule keeps the period"
    );
    assert_eq!(job["retries"], 0);
    let command = job["command"].as_str().unwrap();
    assert!(
        !command.contains(TOKEN),
        "never on the command line: {command}"
    );
    assert!(
        job["environmentVariables"]
            .as_array()
            .unwrap()
            .contains(&json!({"name": "QOS_REPORT_TOKEN", "value": TOKEN})),
        "{job:#}"
    );
    assert!(
        command.contains(&format!("{}/updateTask", sup.url)),
        "{command}"
    );
    assert_eq!(
        sup.requests_to("POST", "/api/v1/jobs")[0].json()["iterations"],
        13
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_3_gets_back_to_back_runs_by_default() {
    let (events, sup) = supervisor(json!([])).await;
    let chr = chronos_at(
        "/v1/scheduler",
        events.clone(),
        json!([]),
        (204, String::new()),
    )
    .await;
    let out = submit(
        "-c",
        &chr.url,
        "thesis/openmpLinpack3.json",
        &sup.url,
        &["-o", "json"],
    )
    .await;
    let stderr = exited(&out, 0);
    assert_eq!(
        stderr,
        "note: schedule \"R13//PT3M\" is sent as \"R13//PT1S\": the 13 runs go back to back, \
         each as soon as the previous one ends, as the QoS model assumes (not PT3M apart); \
         --pace schedule keeps the period\n",
        "one note, no warning"
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["warnings"], json!([]));
    assert_eq!(answer["notes"].as_array().unwrap().len(), 1);
    let job = chr.requests_to("POST", "/v1/scheduler/iso8601")[0].json();
    assert_eq!(job["schedule"], "R13//PT1S");
    assert_eq!(
        sup.requests_to("POST", "/api/v1/jobs")[0].json()["iterations"],
        13
    );
    assert!(chr.requests().iter().all(|r| r.method != "PUT"));
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_2_refuses_back_to_back_before_registering() {
    let job = example("thesis/openmpLinpack3.json").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    // Detected (auto) and forced (--chronos-api v2), with the default pace.
    for extra in [&[][..], &["--chronos-api", "v2"][..]] {
        let (events, sup) = supervisor(json!([])).await;
        let chr = chronos(events.clone(), json!([]), (204, String::new())).await;
        let creds = creds_file(dir.path(), "chronos.json", &chr.url);
        let mut args = vec!["-j", &job, "-c", &creds, "-i", &sup.url];
        args.extend_from_slice(extra);
        let out = launcher(&args).await;
        assert_contains(
            &exited(&out, 2),
            &[
                "Chronos 2.x discards a run that falls due while the job's previous run",
                "only the first of the 13 runs",
                "--pace schedule",
                "nothing was registered or submitted",
            ],
        );
        assert!(sup.requests().is_empty(), "nothing registered");
        assert!(chr.requests_to("POST", "/scheduler/iso8601").is_empty());
    }
    // A dry run that is told it is for 2.x says the same; QOS_PACE=schedule is accepted.
    let out = launcher(&["validate", &job, "--chronos-api", "v2"]).await;
    assert_contains(&exited(&out, 2), &["--chronos-api v2 selects Chronos 2.x"]);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
        .args(["validate", &job, "--chronos-api", "v2"])
        .env_clear()
        .env("QOS_PACE", "schedule")
        .output()
        .await
        .unwrap();
    exited(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["request"]["schedule"], "R13//PT3M");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(
        &job,
        "{\n  \"id\": \"/a\",\n  \"cmd\": \"x\"\n  \"qos\": {}\n}\n",
    )
    .unwrap();
    let sup_url = dead_url();
    let out = launcher(&[
        "-j",
        &job.display().to_string(),
        "-m",
        "nope.json",
        "-i",
        &sup_url,
    ])
    .await;
    let at = format!("{}:4:3: the job file is not valid JSON", job.display());
    assert_contains(&exited(&out, 2), &[&at, "\"qos\": {}"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_qos_is_a_clear_input_error() {
    let (events, sup) = supervisor(json!([])).await;
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("app.json");
    std::fs::write(&job, r#"{"id": "/a", "cmd": "sleep 1"}"#).unwrap();
    let out = launcher(&[
        "submit",
        &job.display().to_string(),
        "--creds",
        "x.json",
        "--supervisor",
        &sup.url,
        "-o",
        "json",
    ])
    .await;
    assert_contains(&exited(&out, 2), &["field qos: is missing"]);
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["field"], "qos");
    assert_eq!(body["error"]["kind"], "input");
    assert!(events_of(&events).is_empty(), "nothing contacted");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_qos_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("job.json");
    std::fs::write(&job, r#"{"name": "a", "command": "true", "schedule": "R2//PT1M", "qos": {"duration": -4, "deadline": 60, "desv_deadline": 0.1}}"#).unwrap();
    let out = launcher(&["validate", &job.display().to_string()]).await;
    assert_contains(
        &exited(&out, 2),
        &["field qos.duration: must be positive, got -4"],
    );
    std::fs::write(&job, r#"{"name": "a", "command": "true", "schedule": "R//PT1M", "qos": {"duration": 4, "deadline": 60, "desv_deadline": 0.1}}"#).unwrap();
    let out = launcher(&["validate", &job.display().to_string()]).await;
    assert_contains(&exited(&out, 2), &["repeats forever"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_supervisor_exits_3_and_submits_nothing() {
    let events = Events::default();
    let mar = marathon(events.clone(), (201, Value::Null), false).await;
    let dead = dead_url();
    let out = submit_marathon(&mar.url, &dead, &["--timeout", "2"]).await;
    assert_contains(
        &exited(&out, 3),
        &[
            "registering the job with the supervisor",
            "nothing was submitted to Marathon",
        ],
    );
    assert!(mar.requests().is_empty(), "Marathon was not contacted");
}

#[tokio::test(flavor = "multi_thread")]
async fn marathon_422_exits_2_and_rolls_the_registration_back() {
    let (events, sup) = supervisor(json!([])).await;
    let refusal = json!({"message": "Object is not valid",
                         "details": [{"path": "/upgradeStrategy/minimumHealthCapacity", "errors": ["is greater than 1"]}]});
    let mar = marathon(events.clone(), (422, refusal), false).await;
    let out = submit_marathon(&mar.url, &sup.url, &[]).await;
    assert_contains(
        &exited(&out, 2),
        &[
            "HTTP 422",
            "is greater than 1",
            "rolled back: nothing is left",
        ],
    );
    let uuid = sup.requests_to("POST", "/api/v1/jobs")[0].json()["uuid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        events_of(&events),
        [
            "supervisor POST /api/v1/jobs".to_owned(),
            "marathon POST /v2/apps".to_owned(),
            format!("supervisor DELETE /api/v1/jobs/{uuid}"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn marathon_5xx_is_ambiguous_so_the_app_is_deleted_too() {
    let (events, sup) = supervisor(json!([])).await;
    let mar = marathon(
        events.clone(),
        (503, json!({"message": "leader election"})),
        true,
    )
    .await;
    let out = submit_marathon(&mar.url, &sup.url, &[]).await;
    assert_contains(
        &exited(&out, 3),
        &["deleted \"/openmplinpack1\" from Marathon", "rolled back"],
    );
    assert_eq!(
        mar.requests_to("DELETE", "/v2/apps/openmplinpack1").len(),
        1
    );
    assert_eq!(deletes(&sup), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn chronos_400_rolls_back_and_existing_name_is_refused_before_registering() {
    let (events, sup) = supervisor(json!([])).await;
    let chr = chronos(
        events.clone(),
        json!([]),
        (400, "Cannot parse schedule".to_owned()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let creds = creds_file(dir.path(), "chronos.json", &chr.url);
    let job = example("thesis/openmpLinpack1.json").display().to_string();
    let out = launcher(&[
        "-j",
        &job,
        "-c",
        &creds,
        "-i",
        &sup.url,
        "--chronos-api",
        "v2",
        "--pace",
        "schedule",
    ])
    .await;
    assert_contains(&exited(&out, 2), &["rolled back"]);
    assert_eq!(deletes(&sup), 1);

    // A job of the same name exists: refused before anything is registered.
    let (events, sup) = supervisor(json!([])).await;
    let chr = chronos(
        events.clone(),
        json!([{"name": "openmpLinpack1", "schedule": "R1//PT1M"}]),
        (204, String::new()),
    )
    .await;
    let creds = creds_file(dir.path(), "chronos2.json", &chr.url);
    let out = launcher(&[
        "-j", &job, "-c", &creds, "-i", &sup.url, "--pace", "schedule",
    ])
    .await;
    assert_contains(&exited(&out, 2), &["already exists"]);
    assert!(sup.requests().is_empty());
    assert!(chr.requests_to("POST", "/scheduler/iso8601").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_prints_one_object_and_contacts_nothing() {
    let dead = dead_url();
    for args in [
        vec![
            "-j",
            "thesis/openmpLinpack1.json",
            "-c",
            "nowhere.json",
            "--dry-run",
        ],
        vec!["validate", "thesis/marathon_openmpLinpack1.json"],
        vec![
            "submit",
            "thesis/marathon_openmpLinpack1.json",
            "--dry-run",
            "-o",
            "human",
        ],
    ] {
        let args: Vec<String> = args
            .into_iter()
            .map(|a| {
                if a.starts_with("thesis/") {
                    example(a).display().to_string()
                } else {
                    a.to_owned()
                }
            })
            .chain(["-i".to_owned(), dead.clone()])
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = launcher(&args).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("exactly one JSON object");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["framework", "request", "registration", "warnings", "notes"],
            "{args:?}"
        );
        assert!(
            v["request"].to_string().contains("DRY-RUN-report-token"),
            "{args:?}"
        );
    }
}

fn job_views() -> Value {
    json!([
        {"uuid": "0123456789ab4def8123456789abcdef", "name": "openmpLinpack1", "framework": "chronos",
         "state": "running", "class": "UNDER_PERFORMANT", "cpus": 1.4, "progress": 0.5, "iterations": 4,
         "remaining_iterations": 2, "qos": {"deadline_at": 4_000_000_000.0}, "prediction": 4_000_000_040.0,
         "resizes": 1, "resize_history": []},
        {"uuid": "fedcba9876544321fedcba9876543210", "name": "/openmplinpack1", "framework": "marathon",
         "state": "completed", "class": "ON_PLAN", "cpus": 1.0, "progress": 1.0, "resizes": 2}
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn list_status_and_cancel() {
    let (events, sup) = supervisor(job_views()).await;
    let out = launcher(&["list", "-i", &sup.url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(
        table.contains("UNDER_PERFORMANT")
            && table.contains("50% (2/4)")
            && table.contains("40s late"),
        "{table}"
    );

    let out = launcher(&["status", "openmpLinpack1", "-i", &sup.url]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("0123456789ab4def8123456789abcdef") && s.contains("resizes     1"),
        "{s}"
    );

    let out = launcher(&["status", "openmplinpack1", "-i", &sup.url, "-o", "json"]).await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["framework"], "marathon",
        "a Marathon id matches without its '/'"
    );

    let out = launcher(&["status", "nope", "-i", &sup.url]).await;
    assert_contains(&exited(&out, 2), &["no job is named \"nope\""]);

    let dir = tempfile::tempdir().unwrap();
    let chr = chronos(events.clone(), json!([]), (204, String::new())).await;
    let creds = creds_file(dir.path(), "chronos.json", &chr.url);
    let out = launcher(&[
        "cancel",
        "openmpLinpack1",
        "-i",
        &sup.url,
        "--creds",
        &creds,
        "--chronos-api",
        "v2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("its running task killed and the job deleted from Chronos"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        sup.requests_to("DELETE", "/api/v1/jobs/0123456789ab4def8123456789abcdef")
            .len(),
        1
    );
    // The running task is killed before the job is deleted (Chronos 2.x would leave it running).
    let ev = events_of(&events);
    let kill = ev
        .iter()
        .position(|e| e == "chronos DELETE /scheduler/task/kill/openmpLinpack1");
    let delete = ev
        .iter()
        .position(|e| e == "chronos DELETE /scheduler/job/openmpLinpack1");
    assert!(
        kill.is_some() && delete.is_some() && kill < delete,
        "{ev:?}"
    );

    let out = launcher(&["list", "-i", &dead_url()]).await;
    assert_eq!(out.status.code(), Some(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_ends_when_the_jobs_end() {
    let (_, sup) = supervisor(job_views()).await;
    let out = launcher(&[
        "watch",
        "/openmplinpack1",
        "-i",
        &sup.url,
        "-o",
        "json",
        "--interval",
        "0.1",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["job"]["state"], "completed");
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_usage_errors() {
    let out = launcher(&["--help"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Examples:"));
    for cmd in [&[][..], &["submit"][..], &["validate"][..]] {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let help = text(&launcher(&args).await.stdout);
        assert!(
            help.contains("--pace <PACE>")
                && help.contains("[env: QOS_PACE=]")
                && help.contains("[default: back-to-back]")
                && help.contains("R13//PT1S"),
            "{cmd:?}: {help}"
        );
    }
    let out = launcher(&["validate", "x.json", "--pace", "asap"]).await;
    assert_contains(
        &exited(&out, 2),
        &["possible values", "back-to-back", "schedule"],
    );
    let out = launcher(&["-j", "x.json", "-c", "a.json", "-m", "b.json"]).await;
    assert_eq!(out.status.code(), Some(2));
    let out = launcher(&["-j", "x.json"]).await;
    assert_contains(&exited(&out, 2), &["one of -c"]);
}
