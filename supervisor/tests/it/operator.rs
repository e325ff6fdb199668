//! `POST /api/v1/jobs/{uuid}/resize`: an operator's resize is a decision with the reason
//! `operator`, applied through the controller's own path (Marathon, or the node agent in place).

use axum::http::StatusCode;
use frameworks::{Credentials, FrameworkError, SupervisorClient};
use qos_core::policy::Policy;
use qos_core::predictive::ResizeMode;
use serde_json::{Value, json};
use supervisor::config::AuthConfig;
use supervisor::{Clock, StoreMode};

use crate::control::{heartbeat, register_node};
use crate::support::{ADMIN, AGENT, Harness, Opts, T0, assert_error, uuid};

fn opts(mode: ResizeMode) -> Opts {
    Opts {
        // The thesis policy holds a Marathon job that has no CPU sample yet: every resize here is
        // the operator's.
        policy: Policy::by_name("thesis").unwrap(),
        store: StoreMode::Inline,
        clock: Some(Clock::starting_at(T0)),
        auth: AuthConfig {
            admin_token: Some(ADMIN.into()),
            agent_token: Some(AGENT.into()),
            ..AuthConfig::default()
        },
        configure: Some(Box::new(move |c| c.resize_mode = mode)),
        ..Opts::default()
    }
}

/// Registers a running Marathon job `app` at 1 CPU.
async fn running_job(h: &Harness, u: &str, app: &str) {
    h.marathon.add_app(&format!("/{app}"), 1.0);
    let reg = json!({"uuid": u, "name": app, "framework": "marathon", "cpus": 1,
        "qos": {"duration": 400, "deadline": 3600, "desv_deadline": 0.1}});
    let (s, v) = h
        .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let started = json!({"uuid": u, "started_at": T0}).to_string();
    let (s, v) = h.admin("POST", "/initMarathonApp", Some(&started)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn resize(h: &Harness, u: &str, body: &str) -> (StatusCode, Value) {
    h.admin("POST", &format!("/api/v1/jobs/{u}/resize"), Some(body))
        .await
}

/// The history rows of `kind`, as `(action, reason)`.
async fn rows(h: &Harness, u: &str, kind: &str) -> Vec<(Value, String)> {
    let (s, v) = h
        .admin("GET", &format!("/api/v1/jobs/{u}/history"), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            (
                r["action"].clone(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn operator_resize_by_restart_goes_through_marathon() {
    let h = Harness::start(opts(ResizeMode::Restart)).await;
    let u = uuid(41);
    running_job(&h, &u, "op-app").await;

    let (s, v) = resize(&h, &u, r#"{"cpus": 1.5}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["uuid"], &v["from"], &v["to"], &v["mode"], &v["applied"]),
        (
            &json!(u),
            &json!(1.0),
            &json!(1.5),
            &json!("restart"),
            &json!(true)
        )
    );
    assert_eq!(v["decided_at"], json!(T0));
    assert_eq!(h.marathon.resizes(), [(1.5, false)]);
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["cpus"], 1.5);

    let decisions = rows(&h, &u, "decision").await;
    let operator: Vec<_> = decisions
        .iter()
        .filter(|(_, r)| r.starts_with("operator:"))
        .collect();
    assert_eq!(operator.len(), 1, "{decisions:?}");
    assert_eq!(operator[0].0, json!({"action": "resize", "cpus": 1.5}));
    let applied = rows(&h, &u, "resize").await;
    assert_eq!(applied.len(), 1, "{applied:?}");
    assert_eq!(applied[0].0["to"], 1.5);

    // The allocation it already has: nothing is applied, no restart.
    let (s, v) = resize(&h, &u, r#"{"cpus": 1.5}"#).await;
    assert_eq!(
        (s, &v["applied"], &v["to"]),
        (StatusCode::OK, &json!(false), &json!(1.5))
    );
    assert_eq!(h.marathon.resizes().len(), 1);

    // Marathon refuses while a deployment locks the app: 409 `locked`, allocation unchanged.
    h.marathon.lock_app("/op-app", "d-1");
    assert_error(
        &resize(&h, &u, r#"{"cpus": 0.5}"#).await,
        StatusCode::CONFLICT,
        "locked",
        None,
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["cpus"], 1.5);
    assert_eq!(rows(&h, &u, "resize_failed").await.len(), 1);
    h.sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn operator_resize_in_place_goes_to_the_node_agent() {
    let h = Harness::start(opts(ResizeMode::InPlace)).await;
    let u = uuid(42);
    running_job(&h, &u, "op-inplace").await;
    // No node agent known for the job yet: nothing can apply it.
    assert_error(
        &resize(&h, &u, r#"{"cpus": 0.5}"#).await,
        StatusCode::CONFLICT,
        "not_configured",
        None,
    );
    register_node(&h, 2.0, json!({"agent_url": "http://agent1:9100"})).await;
    heartbeat(
        &h,
        &json!({"at": T0, "free_cpus": 1.0, "allocated_cpus": 1.0, "load1": 1.0}),
    )
    .await;
    let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": "c1",
        "at": T0, "user_secs": 0.0, "system_secs": 0.0, "total_secs": 0.0}]});
    let (s, v) = h
        .admin("POST", "/api/v1/samples", Some(&batch.to_string()))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");

    let (s, v) = resize(&h, &u, r#"{"cpus": 0.5}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((&v["to"], &v["mode"]), (&json!(0.5), &json!("in-place")));
    let calls = h.agent.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (
            calls[0].0.as_str(),
            calls[0].1.as_str(),
            &calls[0].2.uuid,
            calls[0].2.cpus
        ),
        ("http://agent1:9100", AGENT, &u, 0.5)
    );
    assert!(h.marathon.resizes().is_empty(), "no restart in place");

    // The agent refuses: 502, the allocation stays, the failure is in the history.
    *h.agent.fail.lock().unwrap() = true;
    let got = resize(&h, &u, r#"{"cpus": 0.8}"#).await;
    assert_error(&got, StatusCode::BAD_GATEWAY, "apply_failed", None);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agent refused"),
        "{got:?}"
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["cpus"], 0.5);
    h.sup.stop().await;
}

/// A Chronos job's runs are tasks of their own: in in-place mode too its resize re-posts the
/// job (the next run takes the size); a node agent could reach only the run under way.
#[tokio::test(start_paused = true)]
async fn a_chronos_job_is_resized_through_chronos_in_in_place_mode() {
    let h = Harness::start(opts(ResizeMode::InPlace)).await;
    let u = uuid(44);
    h.chronos.add_job("op-runs", 0.3, 4);
    let reg = json!({"uuid": u, "name": "op-runs", "framework": "chronos", "cpus": 0.3,
        "iterations": 4, "qos": {"duration": 20, "deadline": 3600, "desv_deadline": 0.2}});
    let (s, v) = h
        .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    register_node(&h, 2.0, json!({"agent_url": "http://agent1:9100"})).await;

    let (s, v) = resize(&h, &u, r#"{"cpus": 0.6}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((&v["to"], &v["mode"]), (&json!(0.6), &json!("next-run")));
    assert_eq!(
        h.chronos.puts(),
        [0.6],
        "the job is re-posted with the new size"
    );
    assert!(
        h.agent.calls.lock().unwrap().is_empty(),
        "no node agent call"
    );
    let resized = rows(&h, &u, "resize").await;
    assert_eq!(resized.len(), 1, "{resized:?}");
    assert_eq!(resized[0].0["mode"], "next-run");
    h.sup.stop().await;
}

#[tokio::test(start_paused = true)]
async fn operator_resize_refusals_name_the_problem() {
    let h = Harness::start(opts(ResizeMode::Restart)).await;
    let u = uuid(43);
    running_job(&h, &u, "op-bad").await;
    let path = format!("/api/v1/jobs/{u}/resize");
    assert_error(
        &h.call("POST", &path, Some(r#"{"cpus": 1.5}"#), &[]).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    for body in [
        r#"{"cpus": 0}"#,
        r#"{"cpus": -1}"#,
        r#"{"cpus": 2.5}"#,
        r#"{"cpus": 0.01}"#,
        r#"{"cpus": "lots"}"#,
    ] {
        assert_error(
            &resize(&h, &u, body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("cpus"),
        );
    }
    assert_error(
        &resize(&h, &u, r#"{"cpus": 1.5, "force": true}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("force"),
    );
    assert_error(
        &resize(&h, &u, "").await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
    );
    assert_error(
        &resize(&h, &uuid(99), r#"{"cpus": 1.5}"#).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &resize(&h, "bad.uuid", r#"{"cpus": 1.5}"#).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("uuid"),
    );
    assert!(h.marathon.resizes().is_empty());

    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    let end = json!({"uuid": u, "finished_at": T0 + 10.0}).to_string();
    let (s, v) = h.admin("POST", "/endMarathonApp", Some(&end)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_error(
        &resize(&h, &u, r#"{"cpus": 1.5}"#).await,
        StatusCode::CONFLICT,
        "conflict",
        Some("uuid"),
    );
    h.sup.stop().await;
}

/// The typed client of frameworks over TCP: the answer decodes, errors keep the field.
#[tokio::test]
async fn the_frameworks_client_resizes_a_job() {
    let mut o = opts(ResizeMode::Restart);
    o.store = StoreMode::Thread;
    o.clock = None;
    let h = Harness::start(o).await;
    let u = uuid(44);
    running_job(&h, &u, "op-client").await;
    let (url, server) = h.serve_tcp().await;
    let admin =
        SupervisorClient::new(&Credentials::new(&url).unwrap().with_bearer_token(ADMIN)).unwrap();
    let done = admin.resize_job(&u, 0.7).await.unwrap();
    assert_eq!((done.from, done.to, done.applied), (1.0, 0.7, true));
    assert_eq!(h.marathon.cpus("/op-client"), Some(0.7));
    let err = admin.resize_job(&u, 9.0).await.unwrap_err();
    assert!(
        matches!(&err, FrameworkError::Invalid { status: 422, details, .. } if details[0].path == "cpus"),
        "{err:?}"
    );
    server.abort();
    h.sup.stop().await;
}
