//! What the API refuses: client clocks ahead of ours, implausible QoS numbers, strings and
//! collections past their bounds, floods of held reports — each with a 4xx naming the field, in
//! the one JSON error shape; and the trust boundary of tokens.

use std::time::Duration;

use axum::http::StatusCode;
use qos_core::policy::Policy;
use serde_json::{Value, json};
use supervisor::{Clock, StoreMode};
use tokio::time::{Instant, sleep_until};

use crate::support::{ADMIN, Harness, Opts, T0, assert_error, call, uuid};

fn chronos_reg(u: &str, name: &str, qos: &Value) -> String {
    json!({"uuid": u, "name": name, "framework": "chronos", "qos": qos, "iterations": 3, "cpus": 1})
        .to_string()
}

fn update(u: &str, s: f64, f: f64) -> String {
    json!({"name": "linpack", "finished_at": f, "started_at": s, "hostname": "agent1", "uuid": u})
        .to_string()
}

/// Times ahead of the supervisor's clock by more than `limits.clock_skew` are refused, naming
/// the field; within it they are read as "now".
#[tokio::test]
async fn client_times_ahead_of_our_clock_are_refused() {
    let h = Harness::start(Opts::default()).await;
    let u = uuid(1);
    let reg = chronos_reg(
        &u,
        "linpack",
        &json!({"duration": 10, "deadline": 3600, "desv_deadline": 0.2}),
    );
    assert_eq!(
        h.admin("POST", "/api/v1/jobs", Some(&reg)).await.0,
        StatusCode::CREATED
    );
    let now = h.sup.now();
    // An iteration that started 11 days from now.
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(&update(
                &u,
                now + 11.0 * 86_400.0,
                now + 11.0 * 86_400.0 + 5.0,
            )),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("started_at"),
    );
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(&update(&u, now - 5.0, now + 60.0)),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("finished_at"),
    );
    // A run that started long before the job could have been submitted.
    assert_error(
        &h.call(
            "POST",
            "/updateTask",
            Some(&update(&u, now - 30.0 * 86_400.0, now)),
            &[],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("started_at"),
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["remaining_iterations"], 3, "nothing was counted: {job}");
    // Within the tolerance (a clock 2 s fast): accepted as sent, and a re-send is a duplicate.
    let report = update(&u, now - 8.0, now + 2.0);
    let (st, r) = h.call("POST", "/updateTask", Some(&report), &[]).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("applied"))
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
    assert_eq!(job["reports"][0]["finished_at"].as_f64(), Some(now + 2.0));
    let (st, r) = h.call("POST", "/updateTask", Some(&report), &[]).await;
    assert_eq!(
        (st, r["status"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // The other clients' times.
    let m = uuid(2);
    let reg = json!({"uuid": m, "name": "app", "framework": "marathon", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.1}, "cpus": 1});
    assert_eq!(
        h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await
            .0,
        StatusCode::CREATED
    );
    let now = h.sup.now();
    for (path, body, field) in [
        (
            "/initMarathonApp".to_owned(),
            json!({"uuid": m, "started_at": now + 3600.0}),
            "started_at",
        ),
        (
            "/endMarathonApp".to_owned(),
            json!({"uuid": m, "finished_at": now + 3600.0}),
            "finished_at",
        ),
        (
            format!("/api/v1/jobs/{m}/progress"),
            json!({"fraction": 0.5, "at": now + 3600.0}),
            "at",
        ),
        (
            "/api/v1/samples".to_owned(),
            json!({"node": "n1", "samples": [{"uuid": m, "container_id": "c1", "at": now + 86_400.0, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]}),
            "samples[0].at",
        ),
    ] {
        assert_error(
            &h.admin("POST", &path, Some(&body.to_string())).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        );
    }
    // A sample dated within the tolerance is observed when it arrives, not when it says.
    let batch = json!({"node": "n1", "samples": [{"uuid": m, "container_id": "c1", "at": now + 3.0, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]});
    let (st, v) = h
        .admin("POST", "/api/v1/samples", Some(&batch.to_string()))
        .await;
    assert_eq!(
        (st, v["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1)),
        "{v}"
    );
    let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{m}"), None).await;
    let seen = job["cpu_sample_at"].as_f64().unwrap();
    assert!(seen >= now && seen <= h.sup.now(), "{seen} vs {now}: {job}");
    let node = json!({"id": "n1", "hostname": "agent1", "cpus": 2.0, "memory_bytes": 1});
    h.admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
        .await;
    let beat = json!({"at": now + 3600.0, "free_cpus": 1.0, "allocated_cpus": 0.0, "load1": 0.1});
    assert_error(
        &h.admin(
            "POST",
            "/api/v1/nodes/n1/heartbeat",
            Some(&beat.to_string()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("at"),
    );
    // A registration submitted in the future.
    let reg = json!({"uuid": uuid(3), "name": "later", "framework": "marathon", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.1}, "cpus": 1, "submitted_at": now + 1e9});
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("submitted_at"),
    );
    let (_, metrics) = h.call("GET", "/metrics", None, &[]).await;
    let refused = metrics
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("qos_clock_skew_refusals_total "))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(refused, Some(8.0), "every refusal is counted");
    h.sup.stop().await;
}

/// The QoS numbers of the issue: a deadline of 1e300, `desv_deadline` −0.0, `submitted_at` a
/// billion seconds ahead, a deadline past the configured horizon.
#[tokio::test]
async fn implausible_qos_numbers_are_refused_or_normalised() {
    let h = Harness::start(Opts {
        configure: Some(Box::new(|c| c.limits.deadline_horizon = 30.0 * 86_400.0)),
        ..Opts::default()
    })
    .await;
    for (qos, field) in [
        (
            json!({"duration": 10, "deadline": 1e300, "desv_deadline": 0.2}),
            "qos.deadline",
        ),
        (
            json!({"duration": 1e300, "deadline": 100, "desv_deadline": 0.2}),
            "qos.duration",
        ),
        (
            json!({"duration": 10, "deadline": 31.0 * 86_400.0, "desv_deadline": 0.2}),
            "qos.deadline",
        ),
        (
            json!({"duration": 10, "deadline": "2999-01-01T00:00:00Z", "desv_deadline": 0.2}),
            "qos.deadline",
        ),
    ] {
        assert_error(
            &h.admin(
                "POST",
                "/api/v1/jobs",
                Some(&chronos_reg(&uuid(1), "j", &qos)),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        );
    }
    let reg = json!({"uuid": uuid(1), "name": "j", "framework": "chronos", "qos": {"duration": 10, "deadline": 100, "desv_deadline": 0.2}, "iterations": 2_000_000, "cpus": 1});
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("iterations"),
    );
    // The thesis' /initTask with an absolute Chronos deadline 1e300.
    let init = json!({"framework": "chronos", "name": "j", "job_duration": 10, "deadline": 1e300, "desv_deadline": 0.2, "uuid": uuid(2), "iterations": 2});
    assert_error(
        &h.call("POST", "/initTask", Some(&init.to_string()), &[])
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("qos.deadline"),
    );
    // −0.0 is zero.
    for (u, body) in [
        (
            uuid(3),
            chronos_reg(&uuid(3), "z", &json!({"duration": 10, "deadline": 100, "desv_deadline": -0.0}),
            ),
        ),
        (
            uuid(4),
            r#"{"framework": "marathon", "name": "y", "job_duration": 10, "deadline": 100, "desv_deadline": "-0.0", "uuid": "UUID"}"#
                .replace("UUID", &uuid(4)),
        ),
    ] {
        let path = if body.contains("job_duration") {
            "/initTask"
        } else {
            "/api/v1/jobs"
        };
        let (st, v) = h.admin("POST", path, Some(&body)).await;
        assert!(st.is_success(), "{st} {v}");
        let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
        let text = job["qos"].to_string();
        assert!(!text.contains("-0"), "{text}");
        assert_eq!(job["qos"]["desv"].as_f64(), Some(0.0), "{job}");
    }
    h.sup.stop().await;
}

/// A size below a millicore (the finest a job is sized in, and the least Marathon takes) would
/// register a job at 0 CPU: refused naming `cpus`, as a report's `cpus` is. A client time far
/// out of range is refused with a message a person can read (not a 300-digit number).
#[tokio::test]
async fn sizes_below_a_millicore_and_absurd_times_are_refused_readably() {
    let h = Harness::start(Opts::default()).await;
    let qos = json!({"duration": 10, "deadline": 100, "desv_deadline": 0.2});
    for (i, cpus) in [(1, json!(1e-320)), (2, json!(0.0004)), (3, json!(5e-324))] {
        let reg = json!({"uuid": uuid(i), "name": "j", "framework": "chronos", "qos": qos, "iterations": 3, "cpus": cpus});
        let got = h
            .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
            .await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("cpus"),
        );
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("0.001"),
            "{}",
            got.1
        );
    }
    let reg = json!({"uuid": uuid(4), "name": "j", "framework": "chronos", "qos": qos, "iterations": 3, "cpus": 0.001});
    let (st, v) = h
        .admin("POST", "/api/v1/jobs", Some(&reg.to_string()))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (_, job) = h
        .admin("GET", &format!("/api/v1/jobs/{}", uuid(4)), None)
        .await;
    assert_eq!(job["cpus"].as_f64(), Some(0.001), "{job}");
    let got = h
        .admin("POST", "/updateTask", Some(&update(&uuid(4), 1e308, 1e308)))
        .await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("started_at"),
    );
    let message = got.1["error"]["message"].as_str().unwrap();
    assert!(
        message.len() < 300 && !message.contains("00000000000"),
        "{message}"
    );
    h.sup.stop().await;
}

/// A dead collector, then one sample dated a day ahead (the issue's attack): refused, and the
/// job stays `NO_DATA` with no resize — under both policies.
#[tokio::test(start_paused = true)]
async fn a_future_dated_sample_cannot_cause_a_resize() {
    for policy in ["thesis", "predictive"] {
        let h = Harness::start(Opts {
            policy: Policy::by_name(policy).unwrap(),
            store: StoreMode::Inline,
            clock: Some(Clock::starting_at(T0)),
            ..Opts::default()
        })
        .await;
        let u = uuid(14);
        h.marathon.add_app("/openmplinpack1", 1.5);
        let init = json!({"framework": "marathon", "name": "openmplinpack1", "job_duration": "400", "deadline": "480", "desv_deadline": "0.1", "uuid": u}).to_string();
        assert_eq!(
            h.status("POST", "/initTask", Some(&init), &[]).await,
            StatusCode::OK
        );
        let started = json!({"uuid": u, "started_at": T0}).to_string();
        assert_eq!(
            h.status("POST", "/initMarathonApp", Some(&started), &[])
                .await,
            StatusCode::OK
        );
        let start = Instant::now();
        // The collector reports for 100 s (a slow job: half a CPU), then dies. A resize
        // restarts the task in a new container, its counter from zero.
        let (mut container, mut cpu, mut cpus) = (1, 0.0, h.marathon.cpus("/openmplinpack1"));
        for t in 1..=100u32 {
            sleep_until(start + Duration::from_secs(u64::from(t))).await;
            if h.marathon.cpus("/openmplinpack1") != cpus {
                cpus = h.marathon.cpus("/openmplinpack1");
                (container, cpu) = (container + 1, 0.0);
            }
            cpu += 0.5;
            let batch = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": format!("c{container}"), "at": T0 + f64::from(t), "user_secs": cpu, "system_secs": 0.0, "total_secs": cpu}]});
            h.admin("POST", "/api/v1/samples", Some(&batch.to_string()))
                .await;
        }
        // Decisions on live data may resize; from 30 s after the last sample on, none may.
        sleep_until(start + Duration::from_secs(200)).await;
        let resizes_before = h.marathon.resizes().len();
        let now = h.sup.now();
        let forged = json!({"node": "node-1", "samples": [{"uuid": u, "container_id": format!("c{container}"), "at": now + 86_400.0, "user_secs": cpu + 50.0, "system_secs": 0.0, "total_secs": cpu + 50.0}]});
        assert_error(
            &h.admin("POST", "/api/v1/samples", Some(&forged.to_string()))
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some("samples[0].at"),
        );
        sleep_until(start + Duration::from_secs(480)).await;
        assert_eq!(
            h.marathon.resizes().len(),
            resizes_before,
            "{policy}: resized on stale data: {:?}",
            h.marathon.resizes()
        );
        let (_, job) = h.admin("GET", &format!("/api/v1/jobs/{u}"), None).await;
        assert_eq!(job["class"], "NO_DATA", "{policy}: {job}");
        let reason = job["decision"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("stale") || reason.contains("no CPU time"),
            "{policy}: {job}"
        );
        h.sup.stop().await;
    }
}

/// Strings and collections past their bounds, each refused naming the field.
#[tokio::test]
async fn every_string_and_collection_is_bounded() {
    let h = Harness::start(Opts::default()).await;
    let long = "a".repeat(256);
    let qos = json!({"duration": 10, "deadline": 100, "desv_deadline": 0.2});
    let now = h.sup.now();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "/api/v1/jobs",
            chronos_reg(&uuid(1), &"a".repeat(900_000), &qos),
            "name",
        ),
        ("/api/v1/jobs", chronos_reg(&uuid(1), &long, &qos), "name"),
        (
            "/api/v1/jobs",
            json!({"uuid": uuid(1), "name": long, "framework": "marathon", "qos": qos, "cpus": 1})
                .to_string(),
            "name",
        ),
        (
            "/updateTask",
            json!({"name": "j", "finished_at": now, "started_at": now - 1.0, "hostname": "h".repeat(1 << 19), "uuid": uuid(2)})
                .to_string(),
            "hostname",
        ),
        (
            "/updateTask",
            json!({"name": long, "finished_at": now, "started_at": now - 1.0, "hostname": "h", "uuid": uuid(2)})
                .to_string(),
            "name",
        ),
        (
            "/api/v1/samples",
            json!({"node": "n", "samples": [{"uuid": uuid(2), "container_id": "c", "name": "x".repeat(7_000_000), "at": now, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]})
                .to_string(),
            "samples[0].name",
        ),
        (
            "/api/v1/samples",
            json!({"node": "n", "samples": [{"uuid": uuid(2), "container_id": long, "at": now, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]})
                .to_string(),
            "samples[0].container_id",
        ),
        (
            "/api/v1/samples",
            json!({"node": long, "samples": []}).to_string(),
            "node",
        ),
        (
            "/api/v1/nodes/register",
            json!({"id": "n", "hostname": "h".repeat(254), "cpus": 1.0, "memory_bytes": 1})
                .to_string(),
            "hostname",
        ),
        (
            "/api/v1/nodes/register",
            json!({"id": "n", "hostname": "h", "cpus": 1.0, "memory_bytes": 1, "labels": {"k": long}})
                .to_string(),
            "labels.k",
        ),
        (
            "/api/v1/nodes/register",
            json!({"id": "n", "hostname": "h", "cpus": 1.0, "memory_bytes": 1, "labels": (0..65).map(|i| (format!("k{i}"), "v".to_owned())).collect::<std::collections::BTreeMap<_, _>>()})
                .to_string(),
            "labels",
        ),
        (
            "/api/v1/nodes/register",
            json!({"id": "n", "hostname": "h", "cpus": 1.0, "memory_bytes": 1, "agent_url": format!("http://h/{}", "p".repeat(3000))})
                .to_string(),
            "agent_url",
        ),
    ];
    for (path, body, field) in cases {
        let got = h.admin("POST", path, Some(&body)).await;
        assert_error(
            &got,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            Some(field),
        );
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(
            message.len() <= 1100,
            "{path}: a {} byte message",
            message.len()
        );
    }
    // A path parameter is an id, whatever its encoding.
    for (path, status, code) in [
        (
            "/api/v1/jobs/%FF%FE",
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            "/api/v1/jobs/%2e%2e",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ] {
        assert_error(
            &h.admin("GET", path, None).await,
            status,
            code,
            Some("uuid"),
        );
    }
    let beat = json!({"at": now, "free_cpus": 1.0, "allocated_cpus": 0.0, "load1": 0.1});
    assert_error(
        &h.admin(
            "POST",
            &format!("/api/v1/nodes/{long}/heartbeat"),
            Some(&beat.to_string()),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("id"),
    );
    h.sup.stop().await;
}

/// Every error, routing and body failures included, in the one JSON shape.
#[tokio::test]
async fn every_error_has_the_one_json_shape() {
    let h = Harness::start(Opts::default()).await;
    let cases: Vec<(&str, &str, Option<Vec<u8>>, StatusCode)> = vec![
        ("GET", "/nope", None, StatusCode::NOT_FOUND),
        ("GET", "/api/v1/nope/deeper", None, StatusCode::NOT_FOUND),
        ("PUT", "/api/v1/jobs", None, StatusCode::METHOD_NOT_ALLOWED),
        (
            "DELETE",
            "/updateTask",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            "POST",
            "/updateTask",
            Some(b"{\"name\": ".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/updateTask",
            Some(vec![0xff, 0xfe, b'{']),
            StatusCode::BAD_REQUEST,
        ),
        (
            "POST",
            "/updateTask",
            Some(vec![b'x'; 2 << 20]),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        ("GET", "/api/v1/jobs/%C3%28", None, StatusCode::BAD_REQUEST),
        (
            "POST",
            "/api/v1/nodes/%FF/heartbeat",
            Some(b"{}".to_vec()),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, body, status) in cases {
        let (st, v) = call(&h.router, method, path, body, &[]).await;
        assert_eq!(st, status, "{method} {path}: {v}");
        let e = &v["error"];
        assert!(
            e["code"].is_string() && e["message"].is_string(),
            "{method} {path}: {v}"
        );
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert!(
            keys.iter()
                .all(|k| ["code", "message", "field"].contains(&k.as_str())),
            "{v}"
        );
    }
    h.sup.stop().await;
}

/// `/initMarathonApp` for a Chronos job is a 4xx, not a 200 `duplicate`.
#[tokio::test]
async fn marathon_reports_for_a_chronos_job_are_refused() {
    let h = Harness::start(Opts::default()).await;
    let u = uuid(5);
    let reg = chronos_reg(
        &u,
        "linpack",
        &json!({"duration": 10, "deadline": 3600, "desv_deadline": 0.2}),
    );
    h.admin("POST", "/api/v1/jobs", Some(&reg)).await;
    let now = h.sup.now();
    for (path, body) in [
        ("/initMarathonApp", json!({"uuid": u, "started_at": now})),
        ("/endMarathonApp", json!({"uuid": u, "finished_at": now})),
    ] {
        for _ in 0..2 {
            assert_error(
                &h.call("POST", path, Some(&body.to_string()), &[]).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                Some("uuid"),
            );
        }
    }
    h.sup.stop().await;
}

/// An anonymous repeat of `/initTask` (thesis routes open with `--insecure`) never learns the
/// job's token; the admin does.
#[tokio::test]
async fn an_anonymous_re_registration_never_returns_the_token() {
    let h = Harness::start(Opts::admin_token(true)).await;
    let u = uuid(6);
    let init = json!({"framework": "chronos", "name": "linpack", "job_duration": 10, "deadline": T0 + 3600.0, "desv_deadline": 0.2, "uuid": u, "iterations": 2}).to_string();
    let (st, first) = h.call("POST", "/initTask", Some(&init), &[]).await;
    assert_eq!(st, StatusCode::OK, "{first}");
    let token = first["report_token"].as_str().unwrap().to_owned();
    let (st, again) = h.call("POST", "/initTask", Some(&init), &[]).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "duplicate");
    assert!(again.get("report_token").is_none(), "{again}");
    assert!(!again.to_string().contains(&token));
    let (st, admin) = h.admin("POST", "/initTask", Some(&init)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(admin["report_token"].as_str(), Some(token.as_str()));
    // The same uuid under another name is a conflict for anyone.
    let other = init.replace("\"linpack\"", "\"other\"");
    assert_error(
        &h.call("POST", "/initTask", Some(&other), &[]).await,
        StatusCode::CONFLICT,
        "conflict",
        Some("uuid"),
    );
    // Nor does /metrics carry it.
    let (_, metrics) = h.call("GET", "/metrics", None, &[]).await;
    assert!(!metrics.as_str().unwrap().contains(&token));
    h.sup.stop().await;
}

/// Held reports are bounded in bytes as well as count: past `limits.held_max_bytes` more are
/// refused (503), counted, and applied ones free their room.
#[tokio::test]
async fn held_reports_are_bounded_in_bytes() {
    let h = Harness::start(Opts {
        configure: Some(Box::new(|c| c.limits.held_max_bytes = 64 << 10)),
        ..Opts::default()
    })
    .await;
    let now = h.sup.now();
    let report = |i: u32| {
        json!({"name": "linpack", "finished_at": now, "started_at": now - 1.0, "hostname": "h".repeat(250), "uuid": uuid(1000 + i)})
            .to_string()
    };
    let mut held = 0;
    let mut refused = None;
    for i in 0..1000 {
        let (st, v) = h.call("POST", "/updateTask", Some(&report(i)), &[]).await;
        if st == StatusCode::OK {
            assert_eq!(v["status"], "held");
            held += 1;
        } else {
            assert_error(
                &(st, v.clone()),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                None,
            );
            assert!(
                v["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("limits.held_max_bytes"),
                "{v}"
            );
            refused = Some(i);
            break;
        }
    }
    let first_refused = refused.expect("the bound was never reached");
    assert!(
        (100..250).contains(&held),
        "{held} reports of ~400 bytes held in 64 KiB"
    );
    // Samples too (kept in memory only): refused by the same bound, counted as ignored.
    let batch = json!({"node": "n", "samples": (0..50).map(|i| json!({"uuid": uuid(5000 + i), "container_id": "c".repeat(250), "at": now, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0})).collect::<Vec<_>>()});
    let (st, v) = h
        .admin("POST", "/api/v1/samples", Some(&batch.to_string()))
        .await;
    assert_eq!(
        (st, v["held"].as_u64()),
        (StatusCode::ACCEPTED, Some(0)),
        "{v}"
    );
    // Registering a job applies its held report and frees its room.
    let init = json!({"framework": "chronos", "name": "linpack", "job_duration": 1, "deadline": now + 3600.0, "desv_deadline": 0.2, "uuid": uuid(1000), "iterations": 2}).to_string();
    assert_eq!(
        h.status("POST", "/initTask", Some(&init), &[]).await,
        StatusCode::OK
    );
    let (st, v) = h
        .call("POST", "/updateTask", Some(&report(first_refused)), &[])
        .await;
    assert_eq!((st, v["status"].as_str()), (StatusCode::OK, Some("held")));
    h.sup.stop().await;
}

/// The real binary with `--insecure` on a public address: a loud warning at start; and with every
/// log line on (`RUST_LOG=trace`) no token appears in the log or in `/metrics`.
#[tokio::test]
async fn insecure_warns_and_no_token_is_ever_logged() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("supervisor.log");
    let (mut p, v) = crate::support::start_json_line(
        std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .args(["--listen", "0.0.0.0:0", "--insecure", "--db"])
            .arg(dir.path().join("s.db"))
            .env("QOS_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "trace"),
        "supervisor",
        &log,
    );
    let port = v["url"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let now = crate::support::now();
    let reg = json!({"uuid": uuid(1), "name": "app", "framework": "marathon", "qos": {"duration": 100, "deadline": 1000, "desv_deadline": 0.1}, "cpus": 1});
    let r: Value = http
        .post(format!("{url}/api/v1/jobs"))
        .bearer_auth(ADMIN)
        .json(&reg)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["report_token"].as_str().unwrap().to_owned();
    for (path, body, auth) in [
        (
            "/initMarathonApp",
            json!({"uuid": uuid(1), "started_at": now}),
            Some(&token),
        ),
        (
            "/api/v1/jobs/00000000000000000000000000000001/progress",
            json!({"fraction": 0.5}),
            Some(&token),
        ),
        (
            "/initMarathonApp",
            json!({"uuid": uuid(1), "started_at": now}),
            Some(&"wrong-token-0123456789".to_owned()),
        ),
        (
            "/initTask",
            json!({"framework": "chronos", "name": "c", "job_duration": 1, "deadline": now + 100.0, "desv_deadline": 0.1, "uuid": uuid(2), "iterations": 1}),
            None,
        ),
        (
            "/initTask",
            json!({"framework": "chronos", "name": "c", "job_duration": 1, "deadline": now + 100.0, "desv_deadline": 0.1, "uuid": uuid(2), "iterations": 1}),
            None,
        ),
    ] {
        let mut req = http.post(format!("{url}{path}")).json(&body);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        assert!(req.send().await.unwrap().status().as_u16() < 500);
    }
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = p.0.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains("INSECURE") && l.contains("0.0.0.0")),
        "{text}"
    );
    assert!(text.lines().count() > 10, "trace logging was on: {text}");
    for secret in [ADMIN, token.as_str(), "wrong-token-0123456789"] {
        assert!(!text.contains(secret), "a token is in the log");
        assert!(!metrics.contains(secret), "a token is in /metrics");
    }
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["s.db", "s.db-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).map_or(0, |m| m.len()))
        .sum()
}

/// The WAL bound of [`spawn_with_held_bound`].
const WAL_MAX: u64 = 1 << 20;

/// The real binary in `dir` with `held_max_bytes` (and a WAL of at most [`WAL_MAX`]); its process
/// and URL.
fn spawn_with_held_bound(dir: &std::path::Path, held_max: u64) -> (crate::support::Proc, String) {
    let cfg = dir.join("s.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\n[limits]\nheld_max_bytes = {held_max}\n[storage]\nwal_max_bytes = {WAL_MAX}\n"
        ),
    )
    .unwrap();
    let (p, v) = crate::support::start_json_line(
        std::process::Command::new(env!("CARGO_BIN_EXE_supervisor"))
            .arg("--config")
            .arg(&cfg)
            .arg("--db")
            .arg(dir.join("s.db"))
            .env("RUST_LOG", "warn"),
        "supervisor",
        &dir.join("supervisor.log"),
    );
    (p, v["url"].as_str().unwrap().to_owned())
}

async fn post_json(http: &reqwest::Client, url: String, body: String) -> (u16, Value) {
    let r = http.post(url).body(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json::<Value>().await.unwrap_or(Value::Null))
}

/// The size abuse of the issue against the real binary: 20 sample batches with a 7 MB container
/// name, 2,000 unregistered UUIDs × 256 held samples, 200 held `/updateTask` with a 1 MB
/// `hostname`, a 900,000-character Chronos job name: the supervisor's RSS stays ≤ 100 MB. Then,
/// on a fresh one, a flood of held reports of plausible size cannot grow the database past the
/// held bound.
#[tokio::test]
async fn size_abuse_keeps_memory_and_the_database_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let held_max: u64 = 2 << 20;
    let (p, url) = spawn_with_held_bound(dir.path(), held_max);
    let pid = p.0.id();
    let http = reqwest::Client::new();
    let post = |path: &str, body: String| post_json(&http, format!("{url}{path}"), body);
    let start_rss = testkit::procs::rss_mb(pid);
    let now = crate::support::now();
    let mut refused = 0;
    // 1. 20 batches with a 7 MB container name.
    let big = "x".repeat(7_000_000);
    for i in 0..20 {
        let batch = json!({"node": "n", "samples": [{"uuid": uuid(100 + i), "container_id": "c", "name": big, "at": now, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}]});
        let (st, v) = post("/api/v1/samples", batch.to_string()).await;
        assert_eq!(
            (st, v["error"]["field"].as_str()),
            (422, Some("samples[0].name"))
        );
        refused += 1;
    }
    drop(big);
    // 2. 2,000 unregistered UUIDs × 256 held samples.
    let (mut held, mut ignored) = (0, 0);
    for u in 0..2000u32 {
        let samples: Vec<Value> = (0..256)
            .map(|c| json!({"uuid": uuid(10_000 + u), "container_id": format!("container-{c}"), "name": format!("task-{u}-{c}"), "at": now, "user_secs": 1.0, "system_secs": 0.0, "total_secs": 1.0}))
            .collect();
        let (st, v) = post(
            "/api/v1/samples",
            json!({"node": "node-abuse", "samples": samples}).to_string(),
        )
        .await;
        assert_eq!(st, 202, "{v}");
        held += v["held"].as_u64().unwrap();
        ignored += v["ignored"].as_u64().unwrap();
    }
    // 3. 200 held /updateTask with a 1 MB hostname.
    let host = "h".repeat(1_000_000);
    for i in 0..200 {
        let body = json!({"name": "j", "finished_at": now, "started_at": now - 1.0, "hostname": host, "uuid": uuid(50_000 + i)});
        let (st, v) = post("/updateTask", body.to_string()).await;
        assert_eq!((st, v["error"]["field"].as_str()), (422, Some("hostname")));
        refused += 1;
    }
    drop(host);
    // 4. A 900,000-character Chronos job name.
    let reg = json!({"uuid": uuid(60_000), "name": "n".repeat(900_000), "framework": "chronos", "qos": {"duration": 10, "deadline": 100, "desv_deadline": 0.2}, "iterations": 2, "cpus": 1});
    let (st, v) = post("/api/v1/jobs", reg.to_string()).await;
    assert_eq!((st, v["error"]["field"].as_str()), (422, Some("name")));
    refused += 1;
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let after_abuse = testkit::procs::rss_mb(pid);
    drop(p);

    // 5. A flood of held reports of plausible size, until refused, on a fresh supervisor.
    let dir = tempfile::tempdir().unwrap();
    let (_p, url) = spawn_with_held_bound(dir.path(), held_max);
    let db_before = db_bytes(dir.path());
    let (mut flood, mut flood_refused) = (0, 0);
    for i in 0..40_000u32 {
        let body = json!({"name": "linpack", "finished_at": now, "started_at": now - 1.0, "hostname": format!("agent-{i}.{}.example.org", "x".repeat(200)), "uuid": uuid(70_000 + i)});
        let (st, _) = post_json(&http, format!("{url}/updateTask"), body.to_string()).await;
        match st {
            200 => flood += 1,
            503 => flood_refused += 1,
            other => panic!("{other}"),
        }
        if flood_refused >= 100 {
            break;
        }
    }
    let db_after = db_bytes(dir.path());
    println!(
        "size abuse: supervisor RSS {start_rss:.1} MB at start, {after_abuse:.1} MB after it ({refused} bodies refused 422 naming the field; {held} samples held, {ignored} refused by the held bound); /metrics {} bytes. Held flood: {flood} reports held, then {flood_refused} refused 503; database and WAL {:.2} MB → {:.2} MB (held bound {:.1} MB, WAL bound {:.1} MB)",
        metrics.len(),
        db_before as f64 / 1e6,
        db_after as f64 / 1e6,
        held_max as f64 / 1e6,
        WAL_MAX as f64 / 1e6,
    );
    assert!(ignored > 0, "the byte bound was never reached");
    assert!(flood_refused > 0 && flood > 0);
    assert!(after_abuse <= 100.0, "RSS {after_abuse} MB");
    assert!(
        metrics.len() < 64 << 10,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(
        db_after.saturating_sub(db_before) <= 3 * held_max + 2 * WAL_MAX,
        "the held flood grew the database and its WAL by {} bytes",
        db_after - db_before
    );
}

/// A key given twice in one object is refused naming its path: serde kept the last of a map's
/// keys silently (a heartbeat's `allocated_by_job`) and refused a struct's as `field: "body"`.
#[tokio::test]
async fn a_key_given_twice_is_refused_naming_it() {
    let h = Harness::start(Opts::default()).await;
    let u = uuid(7);
    let reg = format!(
        r#"{{"uuid": "{u}", "name": "linpack", "framework": "chronos", "iterations": 3, "cpus": 1,
            "qos": {{"duration": 10, "deadline": 3600, "deadline": 60, "desv_deadline": 0.2}}}}"#
    );
    assert_error(
        &h.admin("POST", "/api/v1/jobs", Some(&reg)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("qos.deadline"),
    );
    let now = h.sup.now();
    let twice = format!(
        r#"{{"name": "linpack", "finished_at": {now}, "started_at": {now}, "hostname": "a",
            "uuid": "{u}", "uuid": "{}"}}"#,
        uuid(8)
    );
    let got = h.call("POST", "/updateTask", Some(&twice), &[]).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some("uuid"),
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uuid is given twice"),
        "{}",
        got.1
    );
    let node = json!({"id": "n1", "hostname": "n1", "cpus": 4, "memory_bytes": 1 << 30});
    assert_eq!(
        h.admin("POST", "/api/v1/nodes/register", Some(&node.to_string()))
            .await
            .0,
        StatusCode::OK
    );
    let beat = format!(
        r#"{{"at": {now}, "free_cpus": 1, "allocated_by_job": {{"{u}": 1.0, "{u}": 3.0}}}}"#
    );
    assert_error(
        &h.admin("POST", "/api/v1/nodes/n1/heartbeat", Some(&beat))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some(&format!("allocated_by_job.{u}")),
    );
    h.sup.stop().await;
}

/// Sends `request` on a new connection to the server at `url` and reads its answer to the end
/// (the server closes the connection after it), at most 20 s.
async fn raw_exchange(url: &str, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before the whole request is sent.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(
        read.is_ok(),
        "no end of the answer within 20 s to {:?}; read so far: {out:?}",
        String::from_utf8_lossy(&request[..request.len().min(200)])
    );
    out
}

/// The last answer in `exchange` (answers one after the other, each with a Content-Length): its
/// status line and its body as JSON.
fn last_answer(exchange: &str) -> (String, Value) {
    let mut rest = exchange;
    loop {
        let (head, after) = rest
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of a head in {exchange:?}"));
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no content-length in {exchange:?}"));
        let (body, more) = after.split_at(len.min(after.len()));
        if more.is_empty() {
            let status = head.lines().next().unwrap_or_default().to_owned();
            let v = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {exchange:?}"));
            return (status, v);
        }
        rest = more;
    }
}

/// Requests hyper cannot read — a target too long, a head too large or with too many headers, a
/// malformed header, a bad Content-Length, a bad header after an answered request — are answered by the real binary with the status and a
/// JSON body naming the part at fault (hyper alone sends an empty body), also after an answered
/// request on the same connection; an answer of the API is left as it is.
#[tokio::test]
async fn requests_hyper_cannot_read_get_an_answer_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, url) = crate::support::start_supervisor(dir.path(), &[]);
    let long_target = format!(
        "GET /api/v1/jobs?name={} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers = format!(
        "GET /api/v1/jobs HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..150)
            .map(|i| format!("x-{i}: 1\r\n"))
            .collect::<String>()
    );
    let large_head = format!(
        "GET /api/v1/jobs HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "b".repeat(3 * binkit::http::MAX_HEAD_BYTES)
    );
    let valid = "GET /api/v1/jobs HTTP/1.1\r\nhost: x\r\n\r\n";
    let cases = [
        // Past the head's bound before it is parsed (hyper's 414, for a target past
        // `MAX_TARGET_BYTES`, needs a larger head bound).
        (
            long_target,
            "431 Request Header Fields Too Large",
            "headers",
        ),
        (
            many_headers,
            "431 Request Header Fields Too Large",
            "headers",
        ),
        (large_head, "431 Request Header Fields Too Large", "headers"),
        (
            "GET /api/v1/jobs HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n".to_owned(),
            "400 Bad Request",
            "request",
        ),
        (
            "POST /updateTask HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n".to_owned(),
            "400 Bad Request",
            "request",
        ),
        (
            format!("{valid}GET /api/v1/jobs HTTP/1.1\r\nhost: x\r\nx-bad\u{1}: 1\r\n\r\n"),
            "400 Bad Request",
            "request",
        ),
    ];
    for (request, status, field) in cases {
        let exchange = raw_exchange(&url, request.as_bytes()).await;
        let (got, v) = last_answer(&exchange);
        assert_eq!(got, format!("HTTP/1.1 {status}"), "{exchange:?}");
        assert_eq!(v["error"]["field"], field, "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 20, "{v}");
    }
    // An answer of the API, even after an unreadable request elsewhere, is the API's.
    let exchange = raw_exchange(
        &url,
        b"GET /api/v1/jobs?bogus=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let (got, v) = last_answer(&exchange);
    assert!(got.starts_with("HTTP/1.1 4"), "{exchange:?}");
    assert_eq!(v["error"]["field"], "bogus", "{v}");
}
