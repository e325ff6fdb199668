//! The control loop on paused time against the testkit fakes: thirty simulated minutes run in
//! milliseconds, and the decisions are the thesis' under `policy = "thesis"`.

use std::time::Duration;

use axum::http::StatusCode;
use qos_core::policy::Policy;
use serde_json::{Value, json};
use supervisor::config::{AuthConfig, MarathonCompletion};
use supervisor::{Clock, StoreMode};
use testkit::{ChronosCall, MarathonCall};
use tokio::time::{Instant, sleep_until};

use crate::support::{AGENT, Harness, Opts, T0, uuid};

fn opts(policy: Policy) -> Opts {
    Opts {
        policy,
        store: StoreMode::Inline,
        clock: Some(Clock::starting_at(T0)),
        ..Opts::default()
    }
}

/// `(seconds since T0, kind, class, action)` of a job's history.
async fn history(h: &Harness, u: &str) -> Vec<(i64, String, String, Value)> {
    let (s, v) = h
        .admin("GET", &format!("/api/v1/jobs/{u}/history"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (r["at"].as_f64().unwrap() - T0).round() as i64,
                r["kind"].as_str().unwrap().to_owned(),
                r["class"].as_str().unwrap_or("").to_owned(),
                r["action"].clone(),
            )
        })
        .collect()
}

fn decisions(hist: &[(i64, String, String, Value)]) -> Vec<(i64, String, Option<f64>)> {
    hist.iter()
        .filter(|(_, k, _, _)| k == "decision")
        .map(|(t, _, c, a)| (*t, c.clone(), a["cpus"].as_f64()))
        .collect()
}

/// Registers `node-1` (host name `agent1`) with `cpus` CPUs, and more `fields` if any.
pub(crate) async fn register_node(h: &Harness, cpus: f64, fields: Value) {
    let mut node =
        json!({"id": "node-1", "hostname": "agent1", "cpus": cpus, "memory_bytes": 1u64 << 30});
    if let (Some(n), Some(extra)) = (node.as_object_mut(), fields.as_object()) {
        n.extend(extra.clone());
    }
    let (st, v) = h
        .admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

/// Posts a heartbeat of `node-1`.
pub(crate) async fn heartbeat(h: &Harness, beat: &Value) {
    let (st, v) = h
        .admin(
            "POST",
            "/api/v1/nodes/node-1/heartbeat",
            Some(&beat.to_string()),
        )
        .await;
    assert!(st.is_success(), "{st} {v}");
}

/// A Marathon task in a simple world: it uses exactly its allocation, needs `work` CPU-seconds,
/// and a resize restarts it (checkpoint, `gap` seconds, restore in a new container).
struct MarathonTask<'a> {
    h: &'a Harness,
    uuid: String,
    app: String,
    work: f64,
    gap: f64,
    in_place: bool,
    /// The application reports its progress fraction (as the LINPACK example does).
    progress: bool,
}

impl MarathonTask<'_> {
    /// Runs until the work is done or `horizon` seconds have passed; returns the finish time.
    async fn run(&self, horizon: u32) -> Option<f64> {
        let start = Instant::now();
        let h = self.h;
        let mut cpus = 1.0;
        let mut total = 0.0;
        let mut container = 1;
        let mut container_cpu = 0.0;
        let mut restore_at: Option<f64> = None;
        // As shell-trap reports it: the task checkpoints itself (`app`), like LINPACK.
        let started = json!({"uuid": self.uuid, "started_at": T0, "strategy": "app"}).to_string();
        assert_eq!(
            h.status("POST", "/initMarathonApp", Some(&started), &[])
                .await,
            StatusCode::OK
        );
        for t in 1..=horizon {
            sleep_until(start + Duration::from_secs(u64::from(t))).await;
            let now = T0 + f64::from(t);
            let allocated = if self.in_place {
                h.agent
                    .calls
                    .lock()
                    .unwrap()
                    .last()
                    .map_or(1.0, |c| c.2.cpus)
            } else {
                h.marathon.cpus(&self.app).unwrap_or(cpus)
            };
            if (allocated - cpus).abs() > 1e-9 {
                cpus = allocated;
                if !self.in_place {
                    restore_at = Some(now + self.gap);
                }
            }
            if let Some(r) = restore_at {
                if now < r {
                    continue;
                }
                restore_at = None;
                container += 1;
                container_cpu = 0.0;
                let body =
                    json!({"uuid": self.uuid, "started_at": now, "restored": true, "strategy": "app"}).to_string();
                assert_eq!(
                    h.status("POST", "/initMarathonApp", Some(&body), &[]).await,
                    StatusCode::OK
                );
            }
            let step = cpus.min(self.work - total);
            total += step;
            container_cpu += step;
            let batch = json!({"node": "node-1", "samples": [{"uuid": self.uuid, "container_id": format!("c{container}"), "at": now, "user_secs": container_cpu, "system_secs": 0.0, "total_secs": container_cpu}]});
            assert_eq!(
                h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
                    .await
                    .0,
                StatusCode::ACCEPTED
            );
            if self.progress {
                let p = json!({"fraction": (total / self.work).min(1.0), "at": now}).to_string();
                let path = format!("/api/v1/jobs/{}/progress", self.uuid);
                assert_eq!(
                    h.admin("POST", &path, Some(&p)).await.0,
                    StatusCode::NO_CONTENT
                );
            }
            if total >= self.work - 1e-9 {
                let end = json!({"uuid": self.uuid, "finished_at": now}).to_string();
                assert_eq!(
                    h.status("POST", "/endMarathonApp", Some(&end), &[]).await,
                    StatusCode::OK
                );
                return Some(f64::from(t));
            }
        }
        None
    }
}

async fn register_case3(h: &Harness, u: &str) {
    h.marathon.add_app("/openmplinpack1", 1.0);
    // The thesis' Case III: duration 400, deadline 480, desv 0.1, at 1 CPU.
    let init = json!({"framework": "marathon", "name": "openmplinpack1", "job_duration": "400", "deadline": "480", "desv_deadline": "0.1", "uuid": u}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
}

/// [`register_case3`], and its task started at `T0` (`/initMarathonApp`).
async fn start_case3(h: &Harness, u: &str) {
    register_case3(h, u).await;
    let started = json!({"uuid": u, "started_at": T0}).to_string();
    assert_eq!(
        h.status("POST", "/initMarathonApp", Some(&started), &[])
            .await,
        StatusCode::OK
    );
}

/// Thesis Case III under `policy = "thesis"`: checks every 120 s, Eq. 2/Eq. 3, ±0.4 steps.
/// At 120 s 120 CPU-s were used against 100 desired (ratio 1.2 > 1.1): shrink 1 → 0.6; at 240 s
/// 186 against 200 (0.93): on plan; at 360 s 258 against 300 (0.86 < 0.9): grow 0.6 → 1; at
/// 480 s 368 against 400 (0.92): on plan. Two resizes, as in the thesis.
#[tokio::test(start_paused = true)]
async fn thesis_case_three_gives_the_thesis_decisions() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    let u = uuid(3);
    register_case3(&h, &u).await;
    let wall = std::time::Instant::now();
    let task = MarathonTask {
        h: &h,
        uuid: u.clone(),
        app: "/openmplinpack1".into(),
        work: 400.0,
        gap: 10.0,
        in_place: false,
        progress: false,
    };
    let finished = task.run(1800).await.expect("finishes");
    assert!(
        wall.elapsed() < Duration::from_secs(20),
        "30 simulated minutes took {:?}",
        wall.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let hist = history(&h, &u).await;
    let d = decisions(&hist);
    let checks: Vec<(i64, &str, Option<f64>)> =
        d.iter().map(|(t, c, a)| (*t, c.as_str(), *a)).collect();
    assert_eq!(
        checks,
        [
            (0, "NO_DATA", None),
            (120, "OVER_PERFORMANT", Some(0.6)),
            (240, "ON_PLAN", None),
            (360, "UNDER_PERFORMANT", Some(1.0)),
            (480, "ON_PLAN", None),
        ],
        "{hist:#?}"
    );
    assert_eq!(h.marathon.resizes(), [(0.6, false), (1.0, false)]);
    // The task ended: the app is deleted (the thesis left it relaunching forever).
    assert!(!h.marathon.exists("/openmplinpack1"));
    assert!(
        hist.iter()
            .any(|(_, k, _, a)| k == "completed" && a["met"] == false),
        "{hist:#?}"
    );
    assert_eq!(finished, 512.0);
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["state"], "completed");
    assert_eq!(job["cleaned_up"], true);
    h.sup.stop().await;
}

/// The same job under the predictive policy, when it is slower than its QoS says: the measured
/// progress shows it, the job is grown once (or twice) and meets its deadline.
#[tokio::test(start_paused = true)]
async fn predictive_case_three_meets_the_deadline() {
    let h = Harness::start(opts(Policy::default())).await;
    let u = uuid(4);
    register_case3(&h, &u).await;
    // The job needs 520 CPU-seconds, not the 400 its QoS says: 1 CPU would finish at 520 s.
    let task = MarathonTask {
        h: &h,
        uuid: u.clone(),
        app: "/openmplinpack1".into(),
        work: 520.0,
        gap: 10.0,
        in_place: false,
        progress: true,
    };
    let finished = task.run(1800).await.expect("finishes");
    assert!(finished <= 480.0, "finished at {finished}");
    let resizes = h.marathon.resizes();
    assert!(!resizes.is_empty() && resizes.len() <= 3, "{resizes:?}");
    let hist = history(&h, &u).await;
    // Never resized on missing data.
    for (t, k, c, a) in &hist {
        if c == "NO_DATA" {
            assert_eq!(a["action"], "hold", "at {t}: {k}");
        }
    }
    h.sup.stop().await;
}

fn update(u: &str, s: f64, f: f64) -> String {
    json!({"name": "openmpLinpack1", "finished_at": format!("{}", T0 + f), "started_at": format!("{}", T0 + s), "hostname": "agent1", "uuid": u}).to_string()
}

/// thesis-code.md §3.5 worked example (R4, duration 400, desv 0.2, deadline 1800): after
/// iteration 1 at 525 the prediction is 525 + 3·445 = 1860 > 1710 → grow to 1.4; after
/// iteration 2 at 880, 1770 → grow to 1.8; after iteration 3 at 1200, 1645 → on plan; the last
/// iteration completes the job and Chronos' job is deleted. No run is ever forced.
#[tokio::test(start_paused = true)]
async fn thesis_chronos_worked_example() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let u = uuid(5);
    let init = json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": "400", "deadline": format!("{}", T0 + 1800.0), "desv_deadline": "0.2", "uuid": u, "iterations": "4"}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    let start = Instant::now();
    for (s, f) in [
        (45.0, 525.0),
        (560.0, 880.0),
        (920.0, 1200.0),
        (1240.0, 1500.0),
    ] {
        sleep_until(start + Duration::from_secs_f64(f)).await;
        let (st, r) = h
            .call("POST", "/updateTask", Some(&update(&u, s, f)), &[])
            .await;
        assert_eq!(
            (st, r["status"].as_str()),
            (StatusCode::OK, Some("applied"))
        );
        // A re-sent report is a duplicate and triggers nothing.
        assert_eq!(
            h.call("POST", "/updateTask", Some(&update(&u, s, f)), &[])
                .await
                .1["status"],
            "duplicate"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(h.chronos.puts(), [1.4, 1.8]);
    assert!(
        !h.chronos
            .calls()
            .iter()
            .any(|c| matches!(c, ChronosCall::Start(_))),
        "{:?}",
        h.chronos.calls()
    );
    assert!(!h.chronos.exists("openmpLinpack1"));
    let hist = history(&h, &u).await;
    let d = decisions(&hist);
    let classes: Vec<(&str, Option<f64>)> = d.iter().map(|(_, c, a)| (c.as_str(), *a)).collect();
    assert_eq!(
        classes,
        [
            ("NO_DATA", None),
            ("UNDER_PERFORMANT", Some(1.4)),
            ("UNDER_PERFORMANT", Some(1.8)),
            ("ON_PLAN", None)
        ],
        "{hist:#?}"
    );
    assert!(
        hist.iter()
            .any(|(_, k, _, a)| k == "completed" && a["met"] == true),
        "{hist:#?}"
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["remaining_iterations"], 0);
    h.sup.stop().await;
}

/// A locked app is retried with backoff, never recorded as resized until Marathon accepts it;
/// past the stuck-deployment timeout the resize is forced.
#[tokio::test(start_paused = true)]
async fn marathon_lock_backs_off_then_forces() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    let u = uuid(6);
    register_case3(&h, &u).await;
    h.marathon.lock_app("/openmplinpack1", "dep-stuck");
    let task = MarathonTask {
        h: &h,
        uuid: u.clone(),
        app: "/openmplinpack1".into(),
        work: 400.0,
        gap: 10.0,
        in_place: false,
        progress: false,
    };
    task.run(400).await;
    let resizes = h.marathon.resizes();
    assert!(resizes.len() >= 3, "{resizes:?}");
    assert!(
        resizes.iter().take_while(|(_, f)| !f).count() >= 2,
        "{resizes:?}"
    );
    assert!(
        resizes.iter().any(|(_, f)| *f),
        "forced after the timeout: {resizes:?}"
    );
    let hist = history(&h, &u).await;
    let failed: Vec<i64> = hist
        .iter()
        .filter(|(_, k, _, _)| k == "resize_failed")
        .map(|(t, ..)| *t)
        .collect();
    let applied: Vec<i64> = hist
        .iter()
        .filter(|(_, k, _, _)| k == "resize")
        .map(|(t, ..)| *t)
        .collect();
    assert!(failed.len() >= 2, "{hist:#?}");
    // Backoff: the failures are spaced out, and the forced resize comes ≥ 180 s after the first.
    assert!(failed.windows(2).all(|w| w[1] > w[0]), "{failed:?}");
    assert!(applied[0] - failed[0] >= 180, "{hist:#?}");
    h.sup.stop().await;
}

/// A Chronos outage: the resize is retried with backoff and applied once Chronos is back.
#[tokio::test(start_paused = true)]
async fn chronos_outage_is_retried() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let u = uuid(7);
    let init = json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": 400, "deadline": T0 + 1800.0, "desv_deadline": 0.2, "uuid": u, "iterations": 4}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.chronos.set_down(true);
    let start = Instant::now();
    sleep_until(start + Duration::from_secs(524)).await;
    assert_eq!(
        h.status("POST", "/updateTask", Some(&update(&u, 45.0, 525.0)), &[])
            .await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(h.chronos.puts().is_empty());
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["cpus"], 1.0, "not recorded while failing: {job}");
    assert!(
        job["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("connection refused")),
        "{job}"
    );
    h.chronos.set_down(false);
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(h.chronos.puts(), [1.4]);
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["cpus"], 1.4);
    h.sup.stop().await;
}

/// In-place mode: the node agent resizes the container live (no restart, no framework call).
#[tokio::test(start_paused = true)]
async fn in_place_goes_to_the_node_agent() {
    let mut o = opts(Policy::default());
    o.auth = AuthConfig {
        agent_token: Some(AGENT.into()),
        ..AuthConfig::default()
    };
    o.configure = Some(Box::new(|c| {
        c.resize_mode = qos_core::predictive::ResizeMode::InPlace
    }));
    let h = Harness::start(o).await;
    register_node(&h, 4.0, json!({"agent_url": "http://agent1:9100"})).await;
    let u = uuid(8);
    register_case3(&h, &u).await;
    let beat = async {
        for t in 0..600u64 {
            let b =
                json!({"at": T0 + t as f64, "free_cpus": 2.0, "allocated_cpus": 1.0, "load1": 1.0})
                    .to_string();
            let _ = h
                .admin("POST", "/api/v1/nodes/node-1/heartbeat", Some(&b))
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    };
    let task = MarathonTask {
        h: &h,
        uuid: u.clone(),
        app: "/openmplinpack1".into(),
        gap: 0.0,
        in_place: true,
        progress: true,
        work: 520.0,
    };
    let finished = tokio::select! {
        f = task.run(1800) => f,
        () = beat => None,
    };
    assert!(finished.is_some_and(|f| f <= 480.0), "{finished:?}");
    let calls = h.agent.calls.lock().unwrap().clone();
    assert!(!calls.is_empty());
    assert!(
        calls
            .iter()
            .all(|(url, token, req)| url == "http://agent1:9100"
                && token == AGENT
                && req.uuid == u)
    );
    assert!(h.marathon.resizes().is_empty(), "no restart in place");
    h.sup.stop().await;
}

/// Without CPU data a Marathon job is never resized (the thesis grew it as if it used nothing).
#[tokio::test(start_paused = true)]
async fn missing_cpu_data_never_resizes() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    let u = uuid(9);
    start_case3(&h, &u).await;
    tokio::time::sleep(Duration::from_secs(500)).await;
    assert!(h.marathon.resizes().is_empty());
    let d = decisions(&history(&h, &u).await);
    assert!(
        d.len() >= 4 && d.iter().all(|(_, c, a)| c == "NO_DATA" && a.is_none()),
        "{d:?}"
    );
    h.sup.stop().await;
}

/// Scale-to-zero completion keeps the app definition.
#[tokio::test(start_paused = true)]
async fn marathon_completion_can_scale_to_zero() {
    let mut o = opts(Policy::default());
    o.configure = Some(Box::new(|c| {
        c.control.marathon_completion = MarathonCompletion::ScaleToZero
    }));
    let h = Harness::start(o).await;
    let u = uuid(10);
    register_case3(&h, &u).await;
    let started = json!({"uuid": u, "started_at": T0}).to_string();
    h.call("POST", "/initMarathonApp", Some(&started), &[])
        .await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    let end = json!({"uuid": u, "finished_at": T0 + 100.0}).to_string();
    h.call("POST", "/endMarathonApp", Some(&end), &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(h.marathon.exists("/openmplinpack1"));
    assert_eq!(h.marathon.instances("/openmplinpack1"), Some(0));
    assert!(
        h.marathon
            .calls()
            .iter()
            .any(|c| matches!(c, MarathonCall::Scale { instances: 0, .. }))
    );
    h.sup.stop().await;
}

fn metric(text: &str, name: &str, u: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("uuid=\"{u}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `/metrics` carries the thesis' catalogue per job, and retires a finished job's series.
#[tokio::test(start_paused = true)]
async fn metrics_per_job_and_retirement() {
    let mut o = opts(Policy::by_name("thesis").unwrap());
    o.configure = Some(Box::new(|c| c.control.metrics_retention = 600.0));
    let h = Harness::start(o).await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let u = uuid(11);
    let init = json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": 400, "deadline": T0 + 1800.0, "desv_deadline": 0.2, "uuid": u, "iterations": 2}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    let start = Instant::now();
    sleep_until(start + Duration::from_secs(525)).await;
    h.call("POST", "/updateTask", Some(&update(&u, 45.0, 525.0)), &[])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, text) = h.call("GET", "/metrics", None, &[]).await;
    let text = text.as_str().unwrap().to_owned();
    // 2 iterations: prediction 525 + 1·445 = 970 vs bands [1440, 1710] → OVER: shrink 1 → 0.6.
    assert_eq!(
        metric(&text, "qos_prediction_vs_deadline_seconds", &u),
        Some(970.0 - 1800.0),
        "{text}"
    );
    // The job's own bands, relative to its deadline: [1440, 1710] − 1800.
    assert_eq!(metric(&text, "qos_band_upper_seconds", &u), Some(-90.0));
    assert_eq!(metric(&text, "qos_band_lower_seconds", &u), Some(-360.0));
    assert_eq!(metric(&text, "qos_remaining_iterations", &u), Some(1.0));
    assert_eq!(metric(&text, "qos_cpu_allocated", &u), Some(0.6));
    assert_eq!(metric(&text, "qos_last_iteration_seconds", &u), Some(480.0));
    assert_eq!(metric(&text, "qos_resizes_total", &u), Some(1.0));
    assert!(text.contains(&format!("qos_job_class{{uuid=\"{u}\",name=\"openmpLinpack1\",framework=\"chronos\",class=\"OVER_PERFORMANT\"}} 1")), "{text}");
    assert!(text.contains(&format!("qos_job_class{{uuid=\"{u}\",name=\"openmpLinpack1\",framework=\"chronos\",class=\"ON_PLAN\"}} 0")));
    assert!(
        text.contains("qos_http_request_duration_seconds_bucket{le="),
        "{text}"
    );
    sleep_until(start + Duration::from_secs(1000)).await;
    h.call("POST", "/updateTask", Some(&update(&u, 560.0, 1000.0)), &[])
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, text) = h.call("GET", "/metrics", None, &[]).await;
    assert_eq!(
        metric(text.as_str().unwrap(), "qos_deadline_met", &u),
        Some(1.0)
    );
    tokio::time::sleep(Duration::from_secs(700)).await;
    let (_, text) = h.call("GET", "/metrics", None, &[]).await;
    assert!(
        !text.as_str().unwrap().contains(&u),
        "retired after the retention"
    );
    h.sup.stop().await;
}

/// Past `control.metrics_max_finished` finished jobs, the oldest finished leaves `/metrics`
/// first, long before `metrics_retention`.
#[tokio::test(start_paused = true)]
async fn metrics_keep_at_most_the_bound_of_finished_jobs() {
    let mut o = opts(Policy::by_name("thesis").unwrap());
    o.configure = Some(Box::new(|c| c.control.metrics_max_finished = 1));
    let h = Harness::start(o).await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let (a, b) = (uuid(21), uuid(22));
    let start = Instant::now();
    for (i, u) in [&a, &b].into_iter().enumerate() {
        let init = json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": 400, "deadline": T0 + 1800.0, "desv_deadline": 0.2, "uuid": u, "iterations": 1}).to_string();
        assert_eq!(
            h.status("POST", "/initTask", Some(&init), &[]).await,
            StatusCode::OK
        );
        let at = 10.0 + 10.0 * i as f64;
        sleep_until(start + Duration::from_secs_f64(at)).await;
        h.call("POST", "/updateTask", Some(&update(u, at - 5.0, at)), &[])
            .await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let (_, text) = h.call("GET", "/metrics", None, &[]).await;
    let text = text.as_str().unwrap();
    assert!(!text.contains(&a), "the first finished left: {text}");
    assert!(
        metric(text, "qos_deadline_met", &b).is_some(),
        "the last finished stays: {text}"
    );
    h.sup.stop().await;
}

/// Two jobs on one node that is short of CPU: the node's CPUs go to the job with less slack
/// first, and the allocations never exceed what the node has.
#[tokio::test(start_paused = true)]
async fn a_short_node_serves_least_laxity_first() {
    let h = Harness::start(opts(Policy::default())).await;
    register_node(&h, 2.3, json!({})).await;
    let (a, b) = (uuid(12), uuid(13));
    for (u, name, deadline) in [(&a, "tight", 480), (&b, "loose", 700)] {
        h.marathon.add_app(name, 1.0);
        let reg = json!({"uuid": u, "name": name, "framework": "marathon", "qos": {"duration": 400, "deadline": deadline, "desv_deadline": 0.1}, "cpus": 1.0});
        assert_eq!(
            h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let over = std::sync::atomic::AtomicBool::new(false);
    let beats = async {
        for t in 0..400u64 {
            let used =
                h.marathon.cpus("tight").unwrap_or(0.0) + h.marathon.cpus("loose").unwrap_or(0.0);
            if used > 2.3 + 1e-9 {
                over.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let b = json!({"at": T0 + t as f64, "free_cpus": (2.3 - used).max(0.0), "allocated_cpus": used, "load1": 2.0}).to_string();
            let _ = h
                .admin("POST", "/api/v1/nodes/node-1/heartbeat", Some(&b))
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    let ta = MarathonTask {
        h: &h,
        uuid: a.clone(),
        app: "tight".into(),
        work: 560.0,
        gap: 10.0,
        in_place: false,
        progress: true,
    };
    let tb = MarathonTask {
        h: &h,
        uuid: b.clone(),
        app: "loose".into(),
        work: 700.0,
        gap: 10.0,
        in_place: false,
        progress: true,
    };
    let (fa, _fb, ()) = tokio::join!(ta.run(800), tb.run(800), beats);
    assert!(
        !over.load(std::sync::atomic::Ordering::SeqCst),
        "allocations exceeded the node"
    );
    assert!(
        fa.is_some_and(|f| f <= 480.0),
        "the tight job met its deadline: {fa:?}"
    );
    let grown = |id: &str| {
        h.marathon.calls().into_iter().any(
            |c| matches!(c, MarathonCall::SetCpus { id: ref i, cpus, .. } if i == id && cpus > 1.0),
        )
    };
    assert!(grown("/tight"), "{:?}", h.marathon.calls());
    let (_, hist) = h
        .admin("GET", &format!("/api/v1/jobs/{b}/history"), None)
        .await;
    let limited = hist.as_array().unwrap().iter().any(|r| {
        r["reason"]
            .as_str()
            .is_some_and(|t| t.contains("less slack first"))
    });
    let loose_first_grow = h.marathon.calls().into_iter().position(
        |c| matches!(c, MarathonCall::SetCpus { ref id, cpus, .. } if id == "/loose" && cpus > 1.0),
    );
    let tight_first_grow = h.marathon.calls().into_iter().position(
        |c| matches!(c, MarathonCall::SetCpus { ref id, cpus, .. } if id == "/tight" && cpus > 1.0),
    );
    assert!(
        limited || loose_first_grow.is_none() || tight_first_grow < loose_first_grow,
        "{hist}"
    );
    h.sup.stop().await;
}

/// A collector that stops: the frozen consumption is not read as a slow job (the thesis policy
/// would have grown it); the job is `NO_DATA` until samples come back.
#[tokio::test(start_paused = true)]
async fn stale_cpu_data_never_resizes() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    let u = uuid(14);
    start_case3(&h, &u).await;
    let start = Instant::now();
    for t in 1..=150u32 {
        sleep_until(start + Duration::from_secs(u64::from(t))).await;
        let cpu = f64::from(t) * 400.0 / 480.0;
        let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": "c1", "at": T0 + f64::from(t), "user_secs": cpu, "system_secs": 0.0, "total_secs": cpu}]});
        h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
            .await;
    }
    sleep_until(start + Duration::from_secs(500)).await;
    assert!(
        h.marathon.resizes().is_empty(),
        "{:?}",
        h.marathon.resizes()
    );
    let d = decisions(&history(&h, &u).await);
    let classes: Vec<(i64, &str)> = d.iter().map(|(t, c, _)| (*t, c.as_str())).collect();
    assert_eq!(
        classes,
        [
            (0, "NO_DATA"),
            (120, "ON_PLAN"),
            (240, "NO_DATA"),
            (360, "NO_DATA"),
            (480, "NO_DATA")
        ]
    );
    h.sup.stop().await;
}

/// A task that fails is not relaunched forever: its app is removed too.
#[tokio::test(start_paused = true)]
async fn a_failed_marathon_task_is_removed() {
    let h = Harness::start(opts(Policy::default())).await;
    let u = uuid(15);
    register_case3(&h, &u).await;
    let started = json!({"uuid": u, "started_at": T0}).to_string();
    h.call("POST", "/initMarathonApp", Some(&started), &[])
        .await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    let end =
        json!({"uuid": u, "finished_at": format!("{}", T0 + 50.0), "exit_code": "137"}).to_string();
    assert_eq!(
        h.status("POST", "/endMarathonApp", Some(&end), &[]).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!h.marathon.exists("/openmplinpack1"));
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(
        (job["state"].as_str(), job["cleaned_up"].as_bool()),
        (Some("failed"), Some(true)),
        "{job}"
    );
    h.sup.stop().await;
}

/// A restart that is never reported (no restore notification, no new container) does not leave
/// the job uncontrolled: after the stuck-deployment timeout it is assumed to run again.
#[tokio::test(start_paused = true)]
async fn an_unreported_restart_does_not_strand_the_job() {
    let h = Harness::start(opts(Policy::by_name("thesis").unwrap())).await;
    let u = uuid(16);
    register_case3(&h, &u).await;
    let started = json!({"uuid": u, "started_at": T0}).to_string();
    h.call("POST", "/initMarathonApp", Some(&started), &[])
        .await;
    let start = Instant::now();
    // Uses twice the plan for 120 s, then the same container keeps reporting (no restore).
    for t in 1..=700u32 {
        sleep_until(start + Duration::from_secs(u64::from(t))).await;
        let cpu = f64::from(t.min(120)) * 1.0 + f64::from(t.saturating_sub(120)) * 0.8;
        let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": "c1", "at": T0 + f64::from(t), "user_secs": cpu, "system_secs": 0.0, "total_secs": cpu}]});
        h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
            .await;
    }
    let d = decisions(&history(&h, &u).await);
    assert_eq!(d[1], (120, "OVER_PERFORMANT".into(), Some(0.6)), "{d:?}");
    assert!(
        d.iter().any(|(t, c, _)| *t >= 360 && c != "NO_DATA"),
        "controlled again: {d:?}"
    );
    h.sup.stop().await;
}

/// A Chronos job that has just reported still holds its task's CPUs in the node's heartbeat (or
/// its next run is already placed): with the collector's per-job breakdown the supervisor counts
/// them as the job's own room, not as another job's; without it, it can only assume the job's
/// task is gone.
#[tokio::test(start_paused = true)]
async fn a_jobs_own_task_is_room_for_it_not_a_neighbour() {
    async fn grow_after_first_report(breakdown: bool) -> Vec<f64> {
        let h = Harness::start(opts(Policy::default())).await;
        register_node(&h, 2.0, json!({})).await;
        h.chronos.add_job("openmpLinpack1", 0.5, 4);
        let u = uuid(21);
        let reg = json!({"uuid": u, "name": "openmpLinpack1", "framework": "chronos", "qos": {"duration": 100, "deadline": 1800, "desv_deadline": 0.2}, "iterations": 4, "cpus": 0.5});
        assert_eq!(
            h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
                .await
                .0,
            StatusCode::CREATED
        );
        // Its task (0.5) and a neighbour's (0.9) hold 1.4 of the node's 2 CPUs.
        let mut beat =
            json!({"at": T0 + 799.0, "free_cpus": 0.1, "allocated_cpus": 1.4, "load1": 2.0});
        if breakdown {
            beat["allocated_by_job"] = json!({u.as_str(): 0.5, "neighbour": 0.9});
        }
        tokio::time::sleep(Duration::from_secs(799)).await;
        heartbeat(&h, &beat).await;
        // As declared (100 s at 1 CPU, even 30 % more), 0.5 CPU is about right; but the first
        // iteration took 800 s at 0.5 CPU: three more at that pace miss by far.
        let (st, _) = h
            .call("POST", "/updateTask", Some(&update(&u, 0.0, 800.0)), &[])
            .await;
        assert_eq!(st, StatusCode::OK);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let puts = h.chronos.puts();
        h.sup.stop().await;
        puts
    }
    // Free 0.6 plus its own 0.5.
    assert_eq!(grow_after_first_report(true).await, [1.1]);
    // Without the breakdown: the larger of what is free and what it has.
    assert_eq!(grow_after_first_report(false).await, [0.6]);
}

/// A job not placed yet is never granted more than the roomiest live node could take: a Chronos
/// job sized past that at registration would wait for room that may never come (its runs could
/// not be placed beside long-running tasks).
#[tokio::test(start_paused = true)]
async fn an_unplaced_job_gets_no_more_than_a_node_can_take() {
    let h = Harness::start(opts(Policy::default())).await;
    register_node(&h, 2.0, json!({})).await;
    // Long-running neighbours hold 1.4 of its 2 CPUs.
    let beat = json!({"at": T0, "free_cpus": 0.6, "allocated_cpus": 1.4, "allocated_by_job": {"m1": 0.8, "m2": 0.6}, "load1": 1.4});
    heartbeat(&h, &beat).await;
    h.chronos.add_job("openmpLinpack1", 0.5, 4);
    let u = uuid(22);
    // 4 × 400 CPU-s by 1800 s cannot be done at 0.5 CPU: the policy wants well over 0.6.
    let reg = json!({"uuid": u, "name": "openmpLinpack1", "framework": "chronos", "qos": {"duration": 400, "deadline": 1800, "desv_deadline": 0.2}, "iterations": 4, "cpus": 0.5});
    assert_eq!(
        h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await
            .0,
        StatusCode::CREATED
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.chronos.puts(), [0.6]);
    h.sup.stop().await;
}

/// A Marathon app removed behind the supervisor's back: Marathon answers the resize with 422 (its
/// PUT would create the app, and `{"cpus"}` alone is not a valid app), a read says 404; after
/// `control.lost_after` such attempts the job is `LOST`, with the reason in its view, its history
/// and `/metrics`, and nothing more is sent to Marathon for it.
#[tokio::test(start_paused = true)]
async fn a_marathon_app_gone_from_marathon_is_marked_lost() {
    let mut o = opts(Policy::by_name("thesis").unwrap());
    o.configure = Some(Box::new(|c| c.control.lost_after = 3));
    let h = Harness::start(o).await;
    let u = uuid(20);
    register_case3(&h, &u).await;
    // The app's size is read at registration; then the app goes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.marathon.remove_app("/openmplinpack1");
    let task = MarathonTask {
        h: &h,
        uuid: u.clone(),
        app: "/openmplinpack1".into(),
        work: 400.0,
        gap: 10.0,
        in_place: false,
        progress: false,
    };
    task.run(300).await;
    let tries = || {
        h.marathon
            .calls()
            .iter()
            .filter(|c| matches!(c, MarathonCall::SetCpus { .. }))
            .count()
    };
    assert_eq!(tries(), 3, "{:?}", h.marathon.calls());
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["state"], "lost", "{job}");
    assert_eq!(job["phase"]["phase"], "lost", "{job}");
    let why = job["lost_reason"].as_str().unwrap_or_default();
    assert!(
        why.contains("Marathon app openmplinpack1 no longer exists")
            && why.contains("3 attempts")
            && why.contains("does not exist"),
        "{job}"
    );
    let hist = history(&h, &u).await;
    assert_eq!(
        hist.iter()
            .filter(|(_, k, ..)| k == "resize_failed")
            .count(),
        3,
        "{hist:#?}"
    );
    assert!(
        hist.iter()
            .any(|(_, k, _, a)| k == "lost" && a["attempts"] == 3),
        "{hist:#?}"
    );
    let (_, text) = h.call("GET", "/metrics", None, &[]).await;
    let text = text.as_str().unwrap_or_default();
    assert_eq!(metric(text, "qos_job_lost", &u), Some(1.0), "{text}");
    assert!(text.contains("qos_jobs_lost_total 1"), "{text}");
    // Terminal: later reports and periods send nothing more.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(tries(), 3, "{:?}", h.marathon.calls());
    h.sup.stop().await;
}

/// A Chronos job deleted behind the supervisor's back: each resize finds no job of that name;
/// the job is `LOST` after `control.lost_after` tries, never re-created.
#[tokio::test(start_paused = true)]
async fn a_chronos_job_gone_from_chronos_is_marked_lost() {
    let mut o = opts(Policy::by_name("thesis").unwrap());
    o.configure = Some(Box::new(|c| c.control.lost_after = 4));
    let h = Harness::start(o).await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let u = uuid(21);
    let init = json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": 400, "deadline": T0 + 1800.0, "desv_deadline": 0.2, "uuid": u, "iterations": 4}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.chronos.remove_job("openmpLinpack1");
    sleep_until(Instant::now() + Duration::from_secs(524)).await;
    assert_eq!(
        h.status("POST", "/updateTask", Some(&update(&u, 45.0, 525.0)), &[])
            .await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["state"], "lost", "{job}");
    assert!(
        job["lost_reason"].as_str().is_some_and(|w| w
            .contains("Chronos job openmpLinpack1 no longer exists")
            && w.contains("4 attempts")),
        "{job}"
    );
    assert!(h.chronos.puts().is_empty(), "{:?}", h.chronos.calls());
    assert!(!h.chronos.exists("openmpLinpack1"));
    let finds = h
        .chronos
        .calls()
        .iter()
        .filter(|c| matches!(c, ChronosCall::Find(_)))
        .count();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        h.chronos
            .calls()
            .iter()
            .filter(|c| matches!(c, ChronosCall::Find(_)))
            .count(),
        finds
    );
    h.sup.stop().await;
}
