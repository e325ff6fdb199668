//! The routes: thesis compatibility, the versioned API, errors, auth, and the typed client.

use axum::http::StatusCode;
use frameworks::{Credentials, FrameworkError, SupervisorClient};
use qos_core::job::Framework;
use qos_core::spec::QosSpec;
use qos_core::wire::{Heartbeat, JobRegistration, NodeRegistration, ProgressReport};
use serde_json::json;
use testkit::ChronosCall;

use crate::support::{ADMIN, Harness, Opts, T0, assert_error, uuid};

fn init_task_chronos(u: &str, name: &str) -> String {
    // Exactly what the thesis launcher sends: numbers as strings, absolute Chronos deadline.
    format!(
        r#"{{"framework": "chronos", "name": "{name}", "job_duration": "400", "deadline": "{}", "desv_deadline": "0.2", "uuid": "{u}", "iterations": "4"}}"#,
        T0 + 1800.0
    )
}

fn update_task(u: &str, name: &str, s: f64, f: f64) -> String {
    format!(
        r#"{{"name": "{name}", "finished_at": "{f}", "started_at": "{s}", "hostname": "agent1", "uuid": "{u}"}}"#
    )
}

#[tokio::test]
async fn thesis_routes_as_the_thesis_sends_them() {
    // The thesis' timeline: runs reported up to T0 + 900 while the supervisor's clock is at T0;
    // its clients' clocks are allowed that far ahead.
    let h = Harness::start(Opts {
        configure: Some(Box::new(|c| c.limits.clock_skew = 1000.0)),
        ..Opts::default()
    })
    .await;
    h.chronos.add_job("openmpLinpack1", 1.0, 4);
    let (s, body) = h.call("GET", "/", None, &[]).await;
    assert_eq!((s, body), (StatusCode::OK, json!("Welcome\n")));

    let u = uuid(1);
    // No Content-Type at all.
    let (s, reg) = h
        .call(
            "POST",
            "/initTask",
            Some(&init_task_chronos(&u, "openmpLinpack1")),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{reg}");
    assert_eq!(reg["uuid"], u.as_str());
    assert!(reg["report_token"].as_str().is_some_and(|t| t.len() >= 32));
    // The same registration again (the client retries it) is accepted, not duplicated; the
    // job's token is not handed out again to a caller without the admin token.
    let (s, again) = h
        .call(
            "POST",
            "/initTask",
            Some(&init_task_chronos(&u, "openmpLinpack1")),
            &[],
        )
        .await;
    assert_eq!((s, &again["status"]), (StatusCode::OK, &json!("duplicate")));
    assert_eq!(again["uuid"], u.as_str());
    assert!(again.get("report_token").is_none(), "{again}");

    // Content-Type with a charset, and plain text: parsed as JSON either way.
    let ct = [("content-type", "application/json; charset=utf-8")];
    let (s, r) = h
        .call(
            "POST",
            "/updateTask",
            Some(&update_task(&u, "openmpLinpack1", T0 + 45.0, T0 + 525.0)),
            &ct,
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("applied")));
    let text = [("content-type", "text/plain")];
    let (s, r) = h
        .call(
            "POST",
            "/updateTask",
            Some(&update_task(&u, "openmpLinpack1", T0 + 45.0, T0 + 525.0)),
            &text,
        )
        .await;
    assert_eq!(
        (s, r["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // The size a run really had, when the reporter knows it (CHRONOS_RESOURCE_CPU); a bad one
    // is refused by name and nothing is recorded.
    let ran = |cpus: &str| {
        format!(
            r#"{{"name":"openmpLinpack1","started_at":{},"finished_at":{},"hostname":"agent1","uuid":"{u}","cpus":{cpus}}}"#,
            T0 + 530.0,
            T0 + 900.0
        )
    };
    assert_error(
        &h.call("POST", "/updateTask", Some(&ran("-1")), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("cpus"),
    );
    h.applied("/updateTask", &ran("\"0.4\"")).await;

    let (s, job) = h.call("GET", &format!("/api/v1/jobs/{u}"), None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    let reports = job["reports"].as_array().expect("reports");
    assert_eq!(reports.len(), 2, "{job}");
    // Filled in from the allocation in force when it arrived: `control.default_cpus` (nothing
    // said at registration), or what the registration's decision resized it to if that was
    // applied first (the decision runs beside the requests: either may come first).
    let mut allowed = vec![1.0];
    allowed.extend(
        job["resize_history"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["to"].as_f64()),
    );
    let filled = reports[0]["cpus"].as_f64().unwrap();
    assert!(
        allowed.contains(&filled),
        "{filled} not in {allowed:?}: {job}"
    );
    assert_eq!(reports[1]["cpus"], 0.4, "as reported");
    assert_eq!(job["remaining_iterations"], 2, "{job}");
    assert_eq!(job["framework"], "chronos");
    assert_eq!(job["qos"]["deadline_at"], T0 + 1800.0);

    // Marathon: start and end, numbers as strings.
    let m = uuid(2);
    let init = format!(
        r#"{{"framework": "marathon", "name": "openmplinpack1", "job_duration": "400", "deadline": "480", "desv_deadline": "0.1", "uuid": "{m}"}}"#
    );
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    h.applied(
        "/initMarathonApp",
        &format!(r#"{{"uuid": "{m}", "started_at": "{}"}}"#, T0 + 5.0),
    )
    .await;
    h.applied(
        "/endMarathonApp",
        &format!(r#"{{"uuid": "{m}", "finished_at": "{}"}}"#, T0 + 393.0),
    )
    .await;
    let (_, job) = h.call("GET", &format!("/api/v1/jobs/{m}"), None, &[]).await;
    assert_eq!(job["state"], "completed", "{job}");
    h.sup.stop().await;
}

#[tokio::test]
async fn reports_before_registration_are_held_then_applied() {
    let h = Harness::start(Opts {
        configure: Some(Box::new(|c| c.limits.clock_skew = 1000.0)),
        ..Opts::default()
    })
    .await;
    let u = uuid(3);
    // The thesis launcher submitted first and registered second: an early report.
    let (s, r) = h
        .call(
            "POST",
            "/updateTask",
            Some(&update_task(&u, "early", T0 + 10.0, T0 + 400.0)),
            &[],
        )
        .await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("held")));
    assert_eq!(
        h.status("GET", &format!("/api/v1/jobs/{u}"), None, &[])
            .await,
        StatusCode::NOT_FOUND
    );
    let (s, _) = h
        .call(
            "POST",
            "/initTask",
            Some(&init_task_chronos(&u, "early")),
            &[],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, job) = h.call("GET", &format!("/api/v1/jobs/{u}"), None, &[]).await;
    assert_eq!(job["remaining_iterations"], 3, "{job}");
    // Re-sent after registration: not counted twice.
    let (_, r) = h
        .call(
            "POST",
            "/updateTask",
            Some(&update_task(&u, "early", T0 + 10.0, T0 + 400.0)),
            &[],
        )
        .await;
    assert_eq!(r["status"], "duplicate");
    h.sup.stop().await;
}

#[tokio::test]
async fn errors_name_the_field_and_never_500() {
    let h = Harness::start(Opts::default()).await;
    let u = uuid(4);
    assert_error(
        &h.call("POST", "/updateTask", Some("{"), &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
    );
    assert_error(
        &h.call("POST", "/updateTask", Some(""), &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
        None,
    );
    assert_error(
        &h.call("POST", "/updateTask", Some(&format!(r#"{{"name":"x","finished_at":"soon","started_at":"1","hostname":"h","uuid":"{u}"}}"#)), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("finished_at"),
    );
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(r#"{"name":"x","finished_at":2,"started_at":1,"hostname":"h"}"#),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("uuid"),
    );
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(r#"{"name":"x","finished_at":2,"started_at":1,"hostname":"h","uuid":"../etc"}"#),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("uuid"),
    );
    let bad_qos = format!(
        r#"{{"framework": "chronos", "name": "j", "job_duration": "-1", "deadline": "{}", "desv_deadline": "0.2", "uuid": "{u}", "iterations": 2}}"#,
        T0 + 100.0
    );
    assert_error(
        &h.call("POST", "/initTask", Some(&bad_qos), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("qos.duration"),
    );
    let no_iter = format!(
        r#"{{"framework": "chronos", "name": "j", "job_duration": 10, "deadline": {}, "desv_deadline": 0.2, "uuid": "{u}"}}"#,
        T0 + 100.0
    );
    assert_error(
        &h.call("POST", "/initTask", Some(&no_iter), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("iterations"),
    );
    let bad_framework = format!(
        r#"{{"framework": "k8s", "name": "j", "job_duration": 10, "deadline": 100, "desv_deadline": 0.2, "uuid": "{u}"}}"#
    );
    assert_error(
        &h.call("POST", "/initTask", Some(&bad_framework), &[]).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("framework"),
    );
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(2 << 20));
    assert_error(
        &h.call("POST", "/updateTask", Some(&big), &[]).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        None,
    );
    assert_error(
        &h.call("GET", "/nope", None, &[]).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    assert_error(
        &h.call("DELETE", "/updateTask", None, &[]).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    assert_error(
        &h.call("GET", &format!("/api/v1/jobs/{u}"), None, &[]).await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let reg = json!({"uuid": u, "name": "j", "framework": "chronos", "qos": {"duration": 10, "deadline": 100, "desv_deadline": 0.2}, "iterations": 2, "cpus": 1, "extra": 1});
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("extra"),
    );
    let reg = json!({"uuid": u, "name": "j", "framework": "chronos", "qos": {"duration": 10, "deadline": 100, "desv_deadline": 1.5}, "iterations": 2, "cpus": 1});
    let got = h
        .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("desv_deadline"),
        "{:?}",
        got.1
    );
    let reg = json!({"uuid": u, "name": "bad name", "framework": "chronos", "qos": {"duration": 10, "deadline": 100, "desv_deadline": 0.2}, "iterations": 2, "cpus": 1});
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("name"),
    );
    h.sup.stop().await;
}

#[tokio::test]
async fn versioned_api_register_progress_history_cancel_nodes_samples() {
    let h = Harness::start(Opts::default()).await;
    h.chronos.add_job("linpack-a", 1.0, 2);
    let u = uuid(5);
    let reg = json!({"uuid": u, "name": "linpack-a", "framework": "chronos", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.2}, "iterations": 2, "cpus": 1});
    let (s, r) = h
        .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await,
        StatusCode::CONFLICT,
        "conflict",
        Some("uuid"),
    );
    let (s, list) = h.admin("GET", "/api/v1/jobs", None).await;
    assert_eq!(
        (s, list.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    // Progress is for continuous jobs: an iterative job names the field.
    let (s, e) = h
        .admin(
            "POST",
            &format!("/api/v1/jobs/{u}/progress"),
            Some(r#"{"fraction": 0.5}"#),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_error(
        &h.admin(
            "POST",
            &format!("/api/v1/jobs/{u}/progress"),
            Some(r#"{"fraction": 1.5}"#),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("fraction"),
    );

    // Nodes.
    let node = json!({"id": "node-1", "hostname": "agent1", "cpus": 2.0, "memory_bytes": 8u64 << 30, "agent_url": "http://127.0.0.1:9"});
    assert_eq!(
        h.admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
            .await
            .0,
        StatusCode::OK
    );
    let beat = json!({"at": T0, "free_cpus": 0.5, "allocated_cpus": 1.5, "load1": 1.0});
    assert_eq!(
        h.admin(
            "POST",
            "/api/v1/nodes/node-1/heartbeat",
            Some(&beat.to_string())
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &h.admin(
            "POST",
            "/api/v1/nodes/node-2/heartbeat",
            Some(&beat.to_string()),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (_, nodes) = h.admin("GET", "/api/v1/nodes", None).await;
    assert_eq!(nodes[0]["alive"], true, "{nodes}");
    assert_eq!(nodes[0]["free_cpus"], 0.5);

    // Samples: known, unknown (held) and unmapped.
    let m = uuid(6);
    let batch = json!({"node": "node-1", "samples": [
        {"uuid": m, "container_id": "c1", "at": T0, "user_secs": 1.0, "system_secs": 0.5, "total_secs": 1.5},
        {"container_id": "c2", "at": T0, "user_secs": 1.0, "system_secs": 0.5, "total_secs": 1.5}]});
    let (s, r) = h
        .admin("POST", "/api/v1/samples", Some(&batch.to_string()))
        .await;
    assert_eq!(
        (s, &r),
        (
            StatusCode::ACCEPTED,
            &json!({"accepted": 0, "held": 1, "ignored": 1})
        )
    );
    let bad = json!({"node": "node-1", "samples": [{"uuid": m, "container_id": "c1", "at": T0, "user_secs": -1.0, "system_secs": 0.5, "total_secs": 1.5}]});
    assert_error(
        &h.admin("POST", "/api/v1/samples", Some(&bad.to_string()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("samples[0].user_secs"),
    );

    // History has the registration decision; cancel deletes the Chronos job.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, hist) = h
        .admin("GET", &format!("/api/v1/jobs/{u}/history"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(hist.as_array().is_some_and(|a| !a.is_empty()), "{hist}");
    assert_eq!(
        h.admin("DELETE", &format!("/api/v1/jobs/{u}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    for _ in 0..100 {
        if !h.chronos.exists("linpack-a") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!h.chronos.exists("linpack-a"), "{:?}", h.chronos.calls());
    // Its running task is killed first (Chronos 2.x leaves it running when the job is deleted).
    let ends: Vec<ChronosCall> = h
        .chronos
        .calls()
        .into_iter()
        .filter(|c| matches!(c, ChronosCall::Kill(_) | ChronosCall::Delete(_)))
        .collect();
    assert_eq!(
        ends,
        [
            ChronosCall::Kill("linpack-a".into()),
            ChronosCall::Delete("linpack-a".into())
        ]
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["state"], "cancelled");
    assert_error(
        &h.admin("DELETE", &format!("/api/v1/jobs/{}", uuid(99)), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    let (s, text) = h.call("GET", "/metrics", None, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        text.as_str().unwrap().contains(
            "qos_http_requests_total{route=\"/api/v1/jobs\",method=\"POST\",status=\"201\"}"
        ),
        "{text}"
    );
    // The database's WAL: its size at the scrape, and the largest it was after a transaction
    // (the registration and the cancellation were written, so it was more than empty).
    let gauge = |name: &str| -> f64 {
        let text = text.as_str().unwrap();
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"));
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert!(gauge("qos_store_wal_bytes") >= 0.0);
    assert!(gauge("qos_store_wal_peak_bytes") > 0.0);
    h.sup.stop().await;
}

#[tokio::test]
async fn tokens_admin_and_per_job() {
    let h = Harness::start(Opts::admin_token(false)).await;
    let u = uuid(7);
    let other = uuid(8);
    let reg = |id: &str, name: &str| {
        json!({"uuid": id, "name": name, "framework": "marathon", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.2}, "cpus": 1}).to_string()
    };
    assert_error(
        &h.call("POST", "/api/v1/jobs", Some(&reg(&u, "a")), &[])
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_error(
        &h.call(
            "POST",
            "/api/v1/jobs",
            Some(&reg(&u, "a")),
            &[("authorization", "Bearer wrong")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    let (_, r) = h.admin("POST", "/api/v1/jobs", Some(&reg(&u, "a"))).await;
    let token = r["report_token"].as_str().unwrap().to_owned();
    let (_, r2) = h
        .admin("POST", "/api/v1/jobs", Some(&reg(&other, "b")))
        .await;
    let other_token = r2["report_token"].as_str().unwrap().to_owned();
    let own = format!("Bearer {token}");
    let foreign = format!("Bearer {other_token}");
    let start = format!(r#"{{"uuid": "{u}", "started_at": {T0}}}"#);
    assert_error(
        &h.call("POST", "/initMarathonApp", Some(&start), &[]).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_error(
        &h.call(
            "POST",
            "/initMarathonApp",
            Some(&start),
            &[("authorization", &foreign)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    assert_eq!(
        h.status(
            "POST",
            "/initMarathonApp",
            Some(&start),
            &[("authorization", &own)]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        h.status(
            "POST",
            &format!("/api/v1/jobs/{u}/progress"),
            Some(r#"{"fraction": 0.1}"#),
            &[("authorization", &own)]
        )
        .await,
        StatusCode::NO_CONTENT
    );
    assert_error(
        &h.call(
            "POST",
            &format!("/api/v1/jobs/{other}/progress"),
            Some(r#"{"fraction": 0.1}"#),
            &[("authorization", &own)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // A job's token reads its own job only; lists need the admin token.
    assert_eq!(
        h.status(
            "GET",
            &format!("/api/v1/jobs/{u}"),
            None,
            &[("authorization", &own)]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        h.status(
            "GET",
            &format!("/api/v1/jobs/{other}"),
            None,
            &[("authorization", &own)]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.status("GET", "/api/v1/jobs", None, &[("authorization", &own)])
            .await,
        StatusCode::UNAUTHORIZED
    );
    // A job token cannot hold reports for unknown jobs.
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(&update_task(&uuid(9), "x", T0, T0 + 1.0)),
            &[("authorization", &own)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    // `/updateTask` also takes the job's token in its body (the Chronos wrapper's wget path,
    // which can send headers only as command-line arguments) — its own job's only.
    let c = uuid(10);
    let chronos = json!({"uuid": c, "name": "c", "framework": "chronos", "iterations": 3,
        "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.2}, "cpus": 1});
    let (_, rc) = h
        .admin("POST", "/api/v1/jobs", Some(&chronos.to_string()))
        .await;
    let c_token = rc["report_token"].as_str().unwrap().to_owned();
    let with_token = |t: &str| {
        let mut v: serde_json::Value =
            serde_json::from_str(&update_task(&c, "c", T0, T0 + 1.0)).unwrap();
        v["report_token"] = json!(t);
        v.to_string()
    };
    assert_error(
        &h.call("POST", "/updateTask", Some(&with_token(&token)), &[])
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        None,
    );
    let (s, v) = h
        .call("POST", "/updateTask", Some(&with_token(&c_token)), &[])
        .await;
    assert_eq!(
        (s, &v["status"]),
        (StatusCode::OK, &json!("applied")),
        "{v}"
    );

    // Cancelling keeps a Marathon job's checkpoints only when asked, and says so in its view.
    assert_error(
        &h.admin(
            "DELETE",
            &format!("/api/v1/jobs/{other}?keep_checkpoints=maybe"),
            None,
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("keep_checkpoints"),
    );
    assert_eq!(
        h.admin(
            "DELETE",
            &format!("/api/v1/jobs/{other}?keep_checkpoints=true"),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, view) = h.admin("GET", &format!("/api/v1/jobs/{other}"), None).await;
    assert_eq!(
        (&view["state"], &view["keep_checkpoints"]),
        (&json!("cancelled"), &json!(true)),
        "{view}"
    );
    // Open routes.
    for p in ["/", "/healthz", "/readyz", "/metrics"] {
        assert_eq!(h.status("GET", p, None, &[]).await, StatusCode::OK, "{p}");
    }
    h.sup.stop().await;
}

#[tokio::test]
async fn insecure_leaves_only_the_thesis_routes_open() {
    let h = Harness::start(Opts::admin_token(true)).await;
    let u = uuid(10);
    assert_eq!(
        h.status("POST", "/initTask", Some(&init_task_chronos(&u, "j")), &[])
            .await,
        StatusCode::OK
    );
    assert_eq!(
        h.status(
            "POST",
            "/updateTask",
            Some(&update_task(&u, "j", T0, T0 + 1.0)),
            &[]
        )
        .await,
        StatusCode::OK
    );
    let reg = json!({"uuid": uuid(11), "name": "k", "framework": "marathon", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.2}, "cpus": 1});
    assert_eq!(
        h.status("POST", "/api/v1/jobs", Some(&reg.to_string()), &[])
            .await,
        StatusCode::UNAUTHORIZED
    );
    h.sup.stop().await;
}

/// The typed client of frameworks against the real server over TCP: the routes match.
#[tokio::test]
async fn the_frameworks_client_speaks_this_api() {
    let h = Harness::start(Opts::admin_token(false)).await;
    let (url, server) = h.serve_tcp().await;
    let admin =
        SupervisorClient::new(&Credentials::new(&url).unwrap().with_bearer_token(ADMIN)).unwrap();
    let anon = SupervisorClient::new(&Credentials::new(&url).unwrap()).unwrap();
    admin.healthz().await.unwrap();
    admin.readyz().await.unwrap();
    let u = uuid(12);
    let reg = JobRegistration {
        uuid: u.clone(),
        name: "openmplinpack1".into(),
        framework: Framework::Marathon,
        qos: QosSpec::from_json(&json!({"duration": 400, "deadline": 480, "desv_deadline": 0.1}))
            .unwrap(),
        iterations: None,
        cpus: 1.0,
        submitted_at: None,
        checkpoint: Some("app".into()),
    };
    let registered = admin.register_job(&reg).await.unwrap();
    assert_eq!(registered.uuid, u);
    let err = admin.register_job(&reg).await.unwrap_err();
    assert!(
        matches!(&err, FrameworkError::Conflict { message, .. } if message.contains("already registered")),
        "{err:?}"
    );
    anon.report_progress(
        &u,
        &ProgressReport {
            fraction: 0.25,
            at: None,
        },
        Some(&registered.report_token),
    )
    .await
    .unwrap();
    let err = anon
        .report_progress(
            &u,
            &ProgressReport {
                fraction: 1.5,
                at: None,
            },
            Some(&registered.report_token),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FrameworkError::Invalid { status: 422, details, .. } if details[0].path == "fraction"),
        "{err:?}"
    );
    assert!(matches!(
        anon.report_progress(
            &u,
            &ProgressReport {
                fraction: 0.3,
                at: None
            },
            Some("nope")
        )
        .await,
        Err(FrameworkError::Unauthorized { status: 401, .. })
    ));
    assert_eq!(admin.job(&u).await.unwrap()["progress"], 0.25);
    assert_eq!(
        admin.jobs().await.unwrap().as_array().map(Vec::len),
        Some(1)
    );
    assert!(admin.job_history(&u).await.unwrap().is_array());
    admin
        .register_node(&NodeRegistration {
            id: "node-1".into(),
            hostname: "agent1".into(),
            cpus: 2.0,
            memory_bytes: 1 << 30,
            labels: Default::default(),
            agent_url: None,
        })
        .await
        .unwrap();
    admin
        .heartbeat(
            "node-1",
            &Heartbeat {
                at: T0,
                free_cpus: 1.0,
                allocated_cpus: 1.0,
                allocated_by_job: Default::default(),
                load1: 0.5,
            },
        )
        .await
        .unwrap();
    assert!(
        admin
            .heartbeat(
                "node-2",
                &Heartbeat {
                    at: T0,
                    free_cpus: 1.0,
                    allocated_cpus: 1.0,
                    allocated_by_job: Default::default(),
                    load1: 0.5
                }
            )
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(admin.nodes().await.unwrap()[0]["id"], "node-1");
    admin.cancel_job(&u).await.unwrap();
    assert!(admin.job(&uuid(13)).await.unwrap_err().is_not_found());
    server.abort();
    h.sup.stop().await;
}
