//! The fidelity corpus (`corpus/` at the workspace root; sources in its README): real Marathon
//! apps and Chronos jobs from the frameworks' own documentation, each given a `qos` block and
//! taken through the launcher, with the testbed's emulators as the frameworks.
//!
//! For every file: the emulator's answer to the file as written (would the framework take it?),
//! the launcher's rewrite (accepted, with which warnings, or refused naming which field), and the
//! emulator's answer to the rewritten request. The outcomes are compared with
//! `corpus/expect.json` (`CORPUS_BLESS=1` rewrites it; review the diff), and one rule holds for
//! all: **a file the framework takes either goes through the launcher and is taken again once
//! rewritten, or is refused with a field-named message** — never accepted to be refused later.
//! The sample job of Chronos' docs (`R10/2012-10-01T05:52:00Z/PT2S`, whose start Chronos 2.x
//! would skip) is also submitted for real and runs its ten iterations on the testbed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use launcher::rewrite::{self, JobUuid, ReportPolicy, Settings, SupervisorUrl};
use qos_core::Framework;
use serde_json::{Value, json};

use testkit::wire::{Recorded, Scripted, dead_url};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus")
}

fn files(dir: &str) -> Vec<(String, Value)> {
    let dir = corpus_dir().join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn qos() -> Value {
    json!({"duration": 2, "deadline": 600, "desv_deadline": 0.2})
}

/// One agent with room for every app of the corpus at once (the secrets example takes Marathon's
/// default of 1 CPU).
async fn testbed() -> testbed::Testbed {
    let config = testbed::Config {
        agents: 1,
        cpus_per_agent: 4.0,
        no_cgroups: true,
        process_kill_grace_secs: 0.5,
        ..testbed::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    testbed::serve(config, listener, std::future::pending())
        .await
        .expect("testbed starts")
}

/// POSTs `body` to `url`, returns the status, and removes what was created.
async fn offer(http: &reqwest::Client, url: &str, body: &Value, delete: &str) -> u16 {
    let status = http
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    if (200..300).contains(&status) {
        let r = http.delete(delete).send().await.unwrap();
        assert!(
            r.status().is_success(),
            "cleaning up {delete}: {}",
            r.status()
        );
        // A Marathon app is gone once its StopApplication deployment is (until then its id is
        // locked, as in Marathon).
        if let Some((base, _)) = delete.split_once("/v2/apps") {
            let deployments = format!("{base}/v2/deployments");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let list: Value = http
                    .get(&deployments)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if list.as_array().is_some_and(Vec::is_empty) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{delete}: still deploying"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    status
}

fn outcome(framework: u16, prepared: &Result<rewrite::Prepared, launcher::LauncherError>) -> Value {
    match prepared {
        Ok(p) => json!({
            "framework": framework,
            "launcher": "ok",
            // The field each warning is about (its first word).
            "warnings": p.warnings.iter()
                .map(|w| w.split([' ', ':']).next().unwrap_or_default().to_owned())
                .collect::<Vec<_>>(),
        }),
        Err(e) => json!({
            "framework": framework,
            "launcher": format!("refused {}", e.field.as_deref().unwrap_or("<no field>")),
        }),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_real_file_goes_through_or_is_refused_naming_its_field() {
    let bed = testbed().await;
    let base = bed.urls().marathon.clone();
    let http = reqwest::Client::new();
    let mut settings = Settings::new(SupervisorUrl::parse(&dead_url()).unwrap());
    // The rewritten jobs really run on the emulator: one report try, not four minutes of them.
    settings.report = ReportPolicy {
        attempts: 1,
        ..ReportPolicy::default()
    };
    let uuid = JobUuid::parse("0123456789ab4def8123456789abcdef").unwrap();
    let now = launcher::submit::now_epoch();
    let mut outcomes = BTreeMap::new();

    // The launcher's outcome for `job` (with `qos`), its rewrite offered to `post_url`.
    let attempt = async |framework: Framework,
                         job: &Value,
                         name: &str,
                         taken: u16,
                         post_url: &str,
                         del: &str| {
        let prepared = rewrite::prepare(framework, job, name, &settings, uuid.clone(), now);
        let mut o = outcome(taken, &prepared);
        if let Ok(p) = &prepared {
            let req = p.request(Some("rt-token")).unwrap();
            o["rewritten"] = json!(offer(&http, post_url, &req, del).await);
        }
        o
    };
    for (name, raw) in files("marathon/apps") {
        let id = raw["id"]
            .as_str()
            .and_then(|s| frameworks::AppId::parse(s).ok())
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let del = format!("{base}/v2/apps{id}?force=true");
        let apps = format!("{base}/v2/apps");
        let taken = offer(&http, &apps, &raw, &del).await;
        let mut job = raw.clone();
        job["qos"] = qos();
        let o = attempt(Framework::Marathon, &job, &name, taken, &apps, &del).await;
        outcomes.insert(format!("marathon/apps/{name}"), o);
    }
    for (name, raw) in files("chronos/jobs") {
        let job_name = raw["name"].as_str().unwrap_or_default().to_owned();
        let endpoint = if raw.get("parents").is_some() {
            "dependency"
        } else {
            "iso8601"
        };
        let iso = format!("{base}/v1/scheduler/iso8601");
        let del = format!("{base}/v1/scheduler/job/{job_name}");
        let taken = offer(
            &http,
            &format!("{base}/v1/scheduler/{endpoint}"),
            &raw,
            &del,
        )
        .await;
        let mut job = raw.clone();
        job["qos"] = qos();
        let mut o = attempt(Framework::Chronos, &job, &name, taken, &iso, &del).await;
        // Infinite schedules are refused (QoS needs a count); the same job made finite goes on.
        if let Some(s) = raw
            .get("schedule")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with("R/"))
        {
            job["schedule"] = json!(format!("R3/{}", &s[2..]));
            o["made_finite"] = attempt(Framework::Chronos, &job, &name, taken, &iso, &del).await;
        }
        outcomes.insert(format!("chronos/jobs/{name}"), o);
    }
    bed.stop().await;

    // The rule, for every file.
    let check = |file: &str, o: &Value| {
        let taken = (200..300).contains(&o["framework"].as_u64().unwrap());
        let launcher = o["launcher"].as_str().unwrap();
        if launcher == "ok" {
            let again = o["rewritten"].as_u64().unwrap();
            assert!(
                !taken || (200..300).contains(&again),
                "{file}: the framework takes the file but refuses its rewrite ({again}): {o}"
            );
        } else {
            assert!(
                !launcher.ends_with("<no field>"),
                "{file}: refused without a field: {o}"
            );
        }
    };
    for (file, o) in &outcomes {
        check(file, o);
        if let Some(f) = o.get("made_finite") {
            check(file, f);
        }
    }

    let expect_path = corpus_dir().join("expect.json");
    let actual = serde_json::to_string_pretty(&outcomes).unwrap() + "\n";
    if std::env::var_os("CORPUS_BLESS").is_some() {
        std::fs::write(&expect_path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&expect_path)
        .unwrap_or_else(|e| panic!("{}: {e} (CORPUS_BLESS=1 writes it)", expect_path.display()));
    assert_eq!(
        actual, expected,
        "corpus outcomes differ from corpus/expect.json"
    );
}

/// The sample job of Chronos' docs, as written (a start in 2012, which Chronos 2.x would skip),
/// submitted with the launcher binary to the testbed's Chronos: the start is moved to now and all
/// ten iterations run and report.
#[tokio::test(flavor = "multi_thread")]
async fn chronos_sample_job_with_a_2012_start_runs_all_its_iterations() {
    let bed = testbed().await;
    let reports: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = Arc::clone(&reports);
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let sup = Scripted::start(
        move |r: &Recorded, _| match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/api/v1/jobs") => (
                201,
                json!({"uuid": r.json()["uuid"], "report_token": "rt-sample"}).to_string(),
            ),
            ("POST", "/updateTask") => {
                let mut seen = seen.lock().unwrap();
                seen.push(r.json());
                let _ = count_tx.send(seen.len());
                (200, "{}".to_owned())
            }
            _ => (
                404,
                json!({"error": {"code": "not_found", "message": "no route"}}).to_string(),
            ),
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("JOB1_OUT");
    let mut job = files("chronos/jobs")
        .into_iter()
        .find(|(n, _)| n == "sample-job1.json")
        .unwrap()
        .1;
    // The job appends to /tmp/JOB1_OUT; here to this test's own file.
    job["command"] = json!(format!("echo 'FOO' >> {}", out_file.display()));
    job["name"] = json!(format!("SAMPLE_JOB1_{}", std::process::id()));
    job["qos"] = qos();
    let file = dir.path().join("sample.json");
    std::fs::write(&file, job.to_string()).unwrap();
    let creds = dir.path().join("chronos.json");
    std::fs::write(
        &creds,
        json!({"url": bed.urls().chronos, "user": "", "password": ""}).to_string(),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
        .args([
            "submit",
            &file.display().to_string(),
            "--creds",
            &creds.display().to_string(),
            "-i",
            &sup.url,
            "-o",
            "json",
        ])
        .env_clear()
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("moved to now"), "{stderr}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap()
            .contains("JobUtils.skipForward"),
        "{answer}"
    );
    tokio::time::timeout(Duration::from_secs(60), count_rx.wait_for(|n| *n >= 10))
        .await
        .unwrap_or_else(|_| panic!("ten reports: {:?}", reports.lock().unwrap()))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        10
    );
    assert!(reports.lock().unwrap().iter().all(|r| r["exit_code"] == 0));
    bed.stop().await;
}

/// The corpus' Marathon apps that run without an image (commands, one in a Mesos container with
/// `linuxInfo`, one with a secret in its environment), submitted with the launcher binary to the
/// testbed's Marathon: each runs under the real shell-trap, which reports the start for the job's
/// UUID.
#[tokio::test(flavor = "multi_thread")]
async fn corpus_command_apps_run_under_shell_trap_on_the_testbed() {
    let bins = tokio::task::spawn_blocking(|| testkit::bins::workspace_bins(&["shell-trap"]))
        .await
        .unwrap();
    let bed = testbed().await;
    let outcome = testkit::CatchUnwind(Box::pin(command_apps_scenario(&bed, &bins))).await;
    bed.stop().await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

async fn command_apps_scenario(bed: &testbed::Testbed, bins: &BTreeMap<String, PathBuf>) {
    let (started_tx, started_rx) = tokio::sync::watch::channel(Vec::<String>::new());
    let sup = Scripted::start(
        move |r: &Recorded, _| match (r.method.as_str(), r.path.as_str()) {
            ("POST", "/api/v1/jobs") => (
                201,
                json!({"uuid": r.json()["uuid"], "report_token": "rt-corpus"}).to_string(),
            ),
            ("POST", "/initMarathonApp") => {
                let uuid = r.json()["uuid"].as_str().unwrap_or_default().to_owned();
                started_tx.send_modify(|s| s.push(uuid));
                (200, "{}".to_owned())
            }
            ("POST", _) => (200, "{}".to_owned()),
            _ => (
                404,
                json!({"error": {"code": "not_found", "message": "no route"}}).to_string(),
            ),
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("marathon.json");
    std::fs::write(
        &creds,
        json!({"url": bed.urls().marathon, "user": "", "password": ""}).to_string(),
    )
    .unwrap();
    let mut uuids = Vec::new();
    for file in [
        "basic-hello.json",
        "health-checks-foo.json",
        "ucr-seccomp.json",
        "secret-env.json",
    ] {
        let mut app = files("marathon/apps")
            .into_iter()
            .find(|(n, _)| n == file)
            .unwrap()
            .1;
        app["id"] = json!(format!(
            "/corpus-{}-{}",
            file.trim_end_matches(".json"),
            std::process::id()
        ));
        app["qos"] = qos();
        let path = dir.path().join(file);
        std::fs::write(&path, app.to_string()).unwrap();
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
            .args([
                "submit",
                &path.display().to_string(),
                "--creds",
                &creds.display().to_string(),
                "-i",
                &sup.url,
                "-o",
                "json",
                "--shell-trap",
                &bins["shell-trap"].display().to_string(),
                "--checkpoint-dir",
                &dir.path().join("ckpt").display().to_string(),
            ])
            .env_clear()
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
        uuids.push(answer["uuid"].as_str().unwrap().to_owned());
    }
    let all = uuids.clone();
    let mut rx = started_rx.clone();
    let waited = tokio::time::timeout(
        Duration::from_secs(60),
        rx.wait_for(|s| all.iter().all(|u| s.contains(u))),
    )
    .await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "every app started under shell-trap: {:?} of {uuids:?}",
        started_rx.borrow()
    );
}
