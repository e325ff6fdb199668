//! Against the testbed (Marathon and Chronos emulators with agents that run tasks for real), in
//! process:
//! - a Chronos job whose command reports each iteration with curl is classified, resized through
//!   the real Chronos client, and deleted after its last iteration — with no forced run;
//! - a Marathon job filed too small (real LINPACK under the real shell-trap, in a task cgroup
//!   bounded by the app's `cpus`) is grown by the supervisor's own decision through a real
//!   restart: Marathon kills the task, shell-trap has LINPACK checkpoint, the new task resumes
//!   exactly where the old one stopped, and the app is deleted when the job ends.

use std::future::Future;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use frameworks::{
    ChronosApi, ChronosApiVersion, ChronosClient, ChronosJob, Credentials, MarathonApi,
    MarathonApp, MarathonClient,
};
use qos_core::policy::Policy;
use qos_core::predictive::PredictiveConfig;
use serde_json::{Value, json};
use supervisor::{Clock, Config, Deps, HttpNodeAgent, StoreMode, Supervisor};

use crate::support::{get_json, uuid};

#[tokio::test]
async fn a_chronos_job_on_the_testbed_is_resized_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let bed_config = testbed::Config {
        agents: 1,
        cpus_per_agent: 2.0,
        no_cgroups: true,
        meta_dir: dir.path().join("meta"),
        process_kill_grace_secs: 1.0,
        chronos_failure_retry_ms: 300,
        ..testbed::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bed = testbed::serve(bed_config, listener, std::future::pending())
        .await
        .unwrap();
    // 3.x: it runs every one of a job's R3 runs (2.5.1 takes all three off the count within its
    // 60 s horizon and disables the job after the first); the launcher also submits through 3.x.
    let chronos = Arc::new(
        ChronosClient::new(
            &Credentials::new(&bed.urls().chronos).unwrap(),
            ChronosApiVersion::V3,
        )
        .unwrap(),
    );

    let config = Config::for_tests(dir.path().join("s.db"), Policy::by_name("thesis").unwrap());
    let deps = Deps {
        marathon: None,
        chronos: Some(chronos.clone() as Arc<dyn ChronosApi>),
        agent: Arc::new(HttpNodeAgent::new(Duration::from_secs(5)).unwrap()),
        clock: Clock::system(),
        store: StoreMode::Thread,
    };
    let sup = Supervisor::start(config, deps).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sup.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Registered first, then submitted (the launcher's order), with a schedule of exactly 3 runs.
    let u = uuid(31);
    let name = format!("qos-e2e-{}", &u[24..]);
    let http = reqwest::Client::new();
    let reg = json!({"uuid": u, "name": name, "framework": "chronos", "qos": {"duration": 1, "deadline": 30, "desv_deadline": 0.2}, "iterations": 3, "cpus": 0.5});
    assert_eq!(
        http.post(format!("{url}/api/v1/jobs"))
            .json(&reg)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let report = format!(
        "s=$(date +%s.%N); sleep 0.2; f=$(date +%s.%N); curl -sf -X POST -H 'Content-Type: application/json' \
         -d \"{{\\\"name\\\":\\\"{name}\\\",\\\"uuid\\\":\\\"{u}\\\",\\\"started_at\\\":\\\"$s\\\",\\\"finished_at\\\":\\\"$f\\\",\\\"hostname\\\":\\\"$(hostname)\\\"}}\" {url}/updateTask"
    );
    let job: ChronosJob = serde_json::from_value(json!({"name": name, "schedule": "R3//PT2S", "owner": "qos@example.com", "cpus": 0.5, "mem": 64, "command": report})).unwrap();
    chronos.put_job(&job).await.unwrap();

    let mut last: Value = Value::Null;
    for _ in 0..300 {
        last = get_json(&http, &format!("{url}/api/v1/jobs/{u}")).await;
        if last["cleaned_up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["cleaned_up"], true, "{last}");
    assert_eq!(last["remaining_iterations"], 0);
    // Eq. 1 with 45 s of deployment per remaining iteration predicts far past a 30 s deadline:
    // UNDER after each of the first two iterations, +0.4 each time, through the real client.
    assert_eq!(last["cpus"], 1.3, "{last}");
    assert!(
        chronos.find_job(&name).await.unwrap().is_none(),
        "deleted after the last iteration"
    );
    let hist: Value = get_json(&http, &format!("{url}/api/v1/jobs/{u}/history")).await;
    let resizes = hist
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "resize")
        .count();
    assert_eq!(resizes, 2, "{hist}");
    server.abort();
    sup.stop().await;
    bed.stop().await;
}

/// A request the tap passed on, with the supervisor's answer.
#[derive(Debug, Clone)]
struct Tapped {
    path: String,
    body: Value,
    status: u16,
}

/// A transparent recording proxy in front of the supervisor: what the job's task (shell-trap and
/// LINPACK) sends goes through it unchanged, so the test can see the reports themselves.
struct Tap {
    url: String,
    seen: Arc<Mutex<Vec<Tapped>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Tap {
    async fn start(upstream: String) -> Self {
        let seen: Arc<Mutex<Vec<Tapped>>> = Arc::default();
        let client = reqwest::Client::new();
        let log = Arc::clone(&seen);
        let router = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, log, upstream) = (client.clone(), Arc::clone(&log), upstream.clone());
                async move {
                    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                    let mut req = client.request(method, format!("{upstream}{path}"));
                    for name in ["authorization", "content-type"] {
                        if let Some(v) = headers.get(name) {
                            req = req.header(name, v);
                        }
                    }
                    let (status, answer) = match req.body(body.to_vec()).send().await {
                        Ok(r) => (r.status().as_u16(), r.bytes().await.unwrap_or_default()),
                        Err(_) => (502, Bytes::new()),
                    };
                    log.lock().unwrap().push(Tapped {
                        path: uri.path().to_owned(),
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        status,
                    });
                    (
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        answer,
                    )
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, seen, server }
    }

    fn of(&self, path: &str) -> Vec<Tapped> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.path == path)
            .cloned()
            .collect()
    }
}

pub(crate) use testkit::sandbox::dump;
use testkit::sandbox::sandboxes;

pub(crate) use testkit::CatchUnwind;

/// Polls `probe` every 50 ms until it gives a value or `timeout` has passed.
pub(crate) async fn poll<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(repeat index, column)` of a LINPACK resume line (`… repeat R/K, column C/N`; R is 1-based).
fn resumed_at(stderr: &str) -> Option<(u64, u64)> {
    let line = stderr
        .lines()
        .find(|l| l.contains("linpack: resuming from"))?;
    let tail = line.rsplit_once(": repeat ")?.1;
    let (repeat, rest) = tail.split_once('/')?;
    let column = rest.split_once(", column ")?.1.split_once('/')?.0;
    Some((
        repeat.trim().parse::<u64>().ok()? - 1,
        column.trim().parse().ok()?,
    ))
}

/// LINPACK's JSON line with `"status": status` in `stdout`.
fn linpack_line(stdout: &str, status: &str) -> Option<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["status"] == status)
}

const ADMIN: &str = "testbed-admin-token-0123456789";
/// LINPACK's problem: N=500 takes about 0.6 CPU-s per solve in a debug build, so 13 solves are
/// about 8 CPU-s of work — 40 s at the 0.2 CPU the job is filed with.
const N: u64 = 500;
const REPEATS: u64 = 13;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marathon_job_on_the_testbed_is_grown_through_a_real_restart() {
    let bins =
        tokio::task::spawn_blocking(|| testkit::bins::workspace_bins(&["shell-trap", "linpack"]))
            .await
            .unwrap();
    let (trap, linpack) = (&bins["shell-trap"], &bins["linpack"]);
    // The uninterrupted result: every solve of the same system gives the same solution, bit for
    // bit, whatever the thread count (examples/linpack/README.md).
    let reference = Command::new(linpack)
        .args([N.to_string().as_str(), "--threads", "2", "-o", "json"])
        .env_remove("QOS_SUPERVISOR_URL")
        .env_remove("QOS_CHECKPOINT_DIR")
        .output()
        .unwrap();
    let reference = linpack_line(&String::from_utf8_lossy(&reference.stdout), "completed")
        .expect("a reference run");

    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let ckpt = dir.path().join("ckpt");
    let bed = testbed::serve(
        testbed::Config {
            agents: 1,
            cpus_per_agent: 2.0,
            cgroup_prefix: format!("qos-sup-it-{}", std::process::id()),
            meta_dir: dir.path().join("meta"),
            work_dir: Some(work.clone()),
            ..testbed::Config::default()
        },
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        std::future::pending(),
    )
    .await
    .expect("the testbed starts");
    // Without the task's CPU quota the job would run at full speed and need no resize.
    if !testkit::cgroups_or_skip(
        bed.cpu_limits_enforced(),
        bed.cpu_limits_note(),
        "the Marathon restart test",
    ) {
        bed.stop().await;
        return;
    }
    let marathon =
        Arc::new(MarathonClient::new(&Credentials::new(&bed.urls().marathon).unwrap()).unwrap());

    // The predictive policy on the testbed's scale: a restart costs a couple of seconds, a 3 s
    // margin before the deadline, no shrink within the test, every job looked at each second.
    let policy = Policy::Predictive(PredictiveConfig {
        restart_cost: 2.0,
        safety_secs: 3.0,
        cooldown: 600.0,
        ..PredictiveConfig::default()
    });
    let mut config = Config::for_tests(dir.path().join("s.db"), policy);
    config.control.period = 1.0;
    config.control.backoff_max = 2.0;
    config.auth.admin_token = Some(ADMIN.to_owned());
    let deps = Deps {
        marathon: Some(marathon.clone() as Arc<dyn MarathonApi>),
        chronos: None,
        agent: Arc::new(HttpNodeAgent::new(Duration::from_secs(5)).unwrap()),
        clock: Clock::system(),
        store: StoreMode::Thread,
    };
    let sup = Supervisor::start(config, deps).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sup.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let tap = Tap::start(url.clone()).await;
    let http = reqwest::Client::new();
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN);
    let get = |path: String| {
        let req = admin(http.get(format!("{url}{path}")));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // Filed too small: it declares 1.5 CPU-s (7.5 s at 0.2 CPU, well within its 25 s) but needs
    // about 8 (40 s at 0.2 CPU): once LINPACK's progress shows it, the supervisor must grow it.
    let u = uuid(32);
    let app_id = format!("/qos-sup-it-{}", &u[24..]);
    let reg = json!({"uuid": u, "name": app_id, "framework": "marathon",
                     "qos": {"duration": 1.5, "deadline": 25, "desv_deadline": 0.1}, "cpus": 0.2});
    let answer = admin(http.post(format!("{url}/api/v1/jobs")))
        .json(&reg)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 201);
    let token = answer.json::<Value>().await.unwrap()["report_token"]
        .as_str()
        .expect("a report token")
        .to_owned();
    // Submitted after the registration, as the launcher writes it: `exec` (so Marathon's SIGTERM
    // reaches shell-trap, not `sh -c`), the app checkpoint strategy, shell-trap's grace 8 s within
    // the 10 s kill grace period, kill-first restarts, the token in the environment.
    let words: Vec<String> = [
        "exec",
        &trap.display().to_string(),
        "--uuid",
        &u,
        "--supervisor",
        &tap.url,
        "--checkpoint-dir",
        &ckpt.display().to_string(),
        "--strategy",
        "app",
        "--grace",
        "8",
        "--runtime",
        "process",
        "--",
        &linpack.display().to_string(),
        &N.to_string(),
        "--repeat",
        &REPEATS.to_string(),
        "-o",
        "json",
    ]
    .iter()
    .map(|w| format!("'{w}'"))
    .collect();
    let app = MarathonApp::try_from(json!({
        "id": app_id, "cmd": words.join(" "), "cpus": 0.2, "mem": 256, "instances": 1,
        "taskKillGracePeriodSeconds": 10, "backoffSeconds": 300,
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
        "labels": {"qos.uuid": u},
        "env": {"SHELL_TRAP_REPORT_TOKEN": token, "QOS_PROGRESS_INTERVAL": "0.5"}
    }))
    .unwrap();
    marathon.create_app(&app).await.unwrap();

    let scenario = async {
        // The first task starts.
        let first_task = poll(Duration::from_secs(30), || async {
            let inits = tap.of("/initMarathonApp");
            let tasks = marathon.app_tasks(&app_id).await.ok()?;
            (!inits.is_empty()).then(|| tasks.first().map(|t| t.id.clone()))?
        })
        .await
        .unwrap_or_else(|| panic!("the first task did not start:\n{}", dump(&work)));

        // The supervisor grows it on its own, through Marathon.
        let resize = poll(Duration::from_secs(30), || async {
            let hist = get(format!("/api/v1/jobs/{u}/history")).await;
            hist.as_array()?
                .iter()
                .find(|r| r["kind"] == "resize")
                .cloned()
        })
        .await
        .unwrap_or_else(|| {
            panic!("no resize was applied:\n{}", dump(&work));
        });
        assert_eq!(resize["action"]["from"], 0.2, "{resize}");
        assert_eq!(resize["action"]["mode"], "restart", "{resize}");
        assert_eq!(resize["action"]["restart"], true, "{resize}");
        let grown = resize["action"]["to"].as_f64().unwrap();
        assert!(grown > 0.2, "{resize}");

        // A new task, with the new size, restored from the checkpoint.
        let (second_task, app_cpus) = poll(Duration::from_secs(30), || async {
            if tap.of("/initMarathonApp").len() < 2 {
                return None;
            }
            let tasks = marathon.app_tasks(&app_id).await.ok()?;
            let app = marathon.get_app(&app_id).await.ok()?;
            Some((tasks.first()?.id.clone(), app.cpus()?))
        })
        .await
        .unwrap_or_else(|| panic!("the task did not come back:\n{}", dump(&work)));
        assert_ne!(second_task, first_task, "Marathon restarted the task");
        assert!(
            app_cpus > 0.2,
            "Marathon's app has the new size: {app_cpus}"
        );

        // The job ends; the supervisor completes it and deletes the app.
        poll(Duration::from_secs(120), || async {
            let job = get(format!("/api/v1/jobs/{u}")).await;
            (job["cleaned_up"] == true).then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("the job did not finish:\n{}", dump(&work)));
        let gone = marathon.get_app(&app_id).await;
        assert!(
            gone.as_ref()
                .is_err_and(frameworks::FrameworkError::is_not_found),
            "the app is deleted when the job ends: {gone:?}"
        );
        (first_task, app_cpus)
    };
    // Stop the testbed (its tasks, cgroups) whatever happened.
    let outcome = CatchUnwind(Box::pin(scenario)).await;
    let _ = marathon.delete_app(&app_id, true).await;
    bed.stop().await;
    let (_, app_cpus) = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));

    // The supervisor decided it, said why, and applied it.
    let job = get(format!("/api/v1/jobs/{u}")).await;
    let hist = get(format!("/api/v1/jobs/{u}/history")).await;
    let hist = hist.as_array().unwrap();
    assert_eq!(job["state"], "completed", "{job:#}");
    assert_eq!(job["cleaned_up"], true, "{job:#}");
    let resizes: Vec<&Value> = hist.iter().filter(|r| r["kind"] == "resize").collect();
    assert!(!resizes.is_empty());
    assert_eq!(job["resizes"], resizes.len(), "{job:#}");
    let targets: Vec<f64> = resizes
        .iter()
        .map(|r| r["action"]["to"].as_f64().unwrap())
        .collect();
    assert!(targets.contains(&app_cpus), "{app_cpus} not in {targets:?}");
    let first = resizes[0];
    let grow = hist
        .iter()
        .rfind(|r| r["kind"] == "decision" && r["at"].as_f64() <= first["at"].as_f64())
        .expect("a decision before the resize");
    assert_eq!(grow["action"]["action"], "resize", "{grow}");
    assert_eq!(grow["action"]["cpus"], first["action"]["to"], "{grow}");
    assert_eq!(grow["class"], "UNDER_PERFORMANT", "{grow}");
    let reason = grow["reason"].as_str().unwrap();
    assert!(
        reason.contains("application progress") || reason.contains("% of the work"),
        "decided on the job's measured progress: {reason}"
    );
    assert!(reason.contains("grow 0.2 → "), "{reason}");
    assert!(hist.iter().any(|r| r["kind"] == "completed"), "{hist:#?}");

    // What the task reported: a first start, then only restores, one successful end — every
    // report accepted with the job's own token.
    let restored: Vec<Value> = tap
        .of("/initMarathonApp")
        .iter()
        .map(|r| r.body["restored"].clone())
        .collect();
    assert_eq!(
        restored.len(),
        resizes.len() + 1,
        "one task per size: {restored:?}"
    );
    assert_eq!(restored[0], false);
    assert!(restored[1..].iter().all(|r| *r == true), "{restored:?}");
    let ends = tap.of("/endMarathonApp");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0].body["exit_code"], 0.0);
    let progress = tap.of(&format!("/api/v1/jobs/{u}/progress"));
    assert!(!progress.is_empty());
    let refused: Vec<Tapped> = tap
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|t| t.status >= 300)
        .cloned()
        .collect();
    assert!(refused.is_empty(), "{refused:?}");

    // LINPACK's own account: each task resumed exactly where the previous one checkpointed (no
    // work lost or redone), and the result is bit-identical to an uninterrupted run.
    let boxes = sandboxes(&work);
    assert_eq!(boxes.len(), restored.len(), "{}", dump(&work));
    for pair in boxes.windows(2) {
        let saved = linpack_line(&pair[0].stdout, "checkpointed")
            .unwrap_or_else(|| panic!("no checkpoint:\n{}", dump(&work)));
        let at = (
            saved["repeat"].as_u64().unwrap(),
            saved["column"].as_u64().unwrap(),
        );
        assert_eq!(resumed_at(&pair[1].stderr), Some(at), "{}", dump(&work));
    }
    let done = linpack_line(&boxes[boxes.len() - 1].stdout, "completed")
        .unwrap_or_else(|| panic!("no result:\n{}", dump(&work)));
    assert_eq!(done["passed"], true, "{done}");
    assert_eq!(done["resumed"], true, "{done}");
    assert_eq!(done["repeats"], REPEATS);
    assert_eq!(
        done["solution_crc32"], reference["solution_crc32"],
        "{done}"
    );
    assert_eq!(done["residual"], reference["residual"], "{done}");
    assert!(
        !ckpt.join(&u).exists(),
        "shell-trap removes the checkpoints of a finished job"
    );
    eprintln!(
        "MARATHON RESTART: {} resize(s) {targets:?}; LINPACK {}",
        resizes.len(),
        done
    );

    tap.server.abort();
    server.abort();
    sup.stop().await;
}
