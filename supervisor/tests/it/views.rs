//! The read views' query parameters: `GET /api/v1/jobs` answers one bounded page of the jobs
//! that match its filters (`limit`, `offset`, `state`, `framework`, `order`) with
//! `X-Total-Count`; every view refuses an unknown, repeated or out-of-range parameter with a 422
//! naming it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::support::{Harness, Opts, T0, assert_error, uuid};

/// `GET path`: status, body and `X-Total-Count`.
async fn get(h: &Harness, path: &str) -> (StatusCode, Value, Option<usize>) {
    let req = Request::get(path).body(Body::empty()).unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let total = resp
        .headers()
        .get("x-total-count")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap(), total)
}

fn uuids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| j["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// 8 Chronos jobs, then 12 Marathon jobs of which the first 3 have ended.
async fn twenty_jobs(h: &Harness) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..20u32 {
        let u = uuid(0x100 + i);
        let body = if i < 8 {
            json!({"framework": "chronos", "name": format!("c{i}"), "job_duration": 20, "deadline": T0 + 600.0, "desv_deadline": 0.2, "uuid": u, "iterations": 3})
        } else {
            json!({"framework": "marathon", "name": format!("m{i}"), "job_duration": 40, "deadline": 600, "desv_deadline": 0.1, "uuid": u})
        };
        let (s, r) = h
            .call("POST", "/initTask", Some(&body.to_string()), &[])
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        if (8..11).contains(&i) {
            h.applied(
                "/initMarathonApp",
                &json!({"uuid": u, "started_at": T0 - 10.0}).to_string(),
            )
            .await;
            h.applied(
                "/endMarathonApp",
                &json!({"uuid": u, "finished_at": T0, "exit_code": 0}).to_string(),
            )
            .await;
        }
        all.push(u);
    }
    all
}

#[tokio::test]
async fn views_list_jobs_a_page_at_a_time() {
    let h = Harness::start(Opts::default()).await;
    let by_registration = twenty_jobs(&h).await;
    // Registration order (ties, one clock reading, by UUID: the same here).
    let (s, v, total) = get(&h, "/api/v1/jobs").await;
    assert_eq!((s, total), (StatusCode::OK, Some(20)));
    assert_eq!(uuids(&v), by_registration);

    // Pages do not overlap and together are the list.
    let mut paged = Vec::new();
    for offset in [0, 7, 14] {
        let (s, v, total) = get(&h, &format!("/api/v1/jobs?limit=7&offset={offset}")).await;
        assert_eq!((s, total), (StatusCode::OK, Some(20)));
        assert_eq!(uuids(&v).len(), if offset == 14 { 6 } else { 7 });
        paged.extend(uuids(&v));
    }
    assert_eq!(paged, by_registration);
    // Past the end: an empty page, still with the total.
    let (s, v, total) = get(&h, "/api/v1/jobs?offset=4294967295").await;
    assert_eq!((s, v, total), (StatusCode::OK, json!([]), Some(20)));
    // Newest first.
    let (_, v, _) = get(&h, "/api/v1/jobs?order=desc&limit=3").await;
    let newest: Vec<String> = by_registration.iter().rev().take(3).cloned().collect();
    assert_eq!(uuids(&v), newest);

    // Filters, alone and together; the total counts what matches.
    for (query, want) in [
        ("state=finished", 3),
        ("state=active", 17),
        ("state=completed", 3),
        ("state=running", 0),
        ("framework=chronos", 8),
        ("framework=marathon", 12),
        ("framework=marathon&state=active", 9),
        ("framework=chronos&state=finished&limit=1", 0),
    ] {
        let (s, v, total) = get(&h, &format!("/api/v1/jobs?{query}")).await;
        assert_eq!((s, total), (StatusCode::OK, Some(want)), "{query}: {v}");
        assert_eq!(
            uuids(&v).len(),
            want.min(if query.contains("limit=1") { 1 } else { 20 })
        );
        for j in v.as_array().unwrap() {
            if query.contains("state=finished") || query.contains("state=completed") {
                assert_eq!(j["state"], "completed", "{query}");
            }
            if query.contains("state=active") {
                assert_ne!(j["state"], "completed", "{query}");
            }
            if let Some(f) = query.strip_prefix("framework=") {
                assert_eq!(j["framework"], f.split('&').next().unwrap(), "{query}");
            }
        }
    }
    // Percent-encoded parameters are decoded.
    let (s, _, total) = get(&h, "/api/v1/jobs?st%61te=%66inished").await;
    assert_eq!((s, total), (StatusCode::OK, Some(3)));
}

/// `GET path` is a 422 `invalid_field` naming `field`: its message.
async fn invalid(h: &Harness, path: &str, field: &str) -> String {
    let got = h.call("GET", path, None, &[]).await;
    assert_error(
        &got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        Some(field),
    );
    got.1["error"]["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn views_refuse_bad_query_parameters_naming_them() {
    let h = Harness::start(Opts::default()).await;
    let u = twenty_jobs(&h).await.remove(0);
    for (query, field) in [
        ("limit=-1", "limit"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=1.5", "limit"),
        ("limit=", "limit"),
        ("limit=10001", "limit"),
        ("limit=99999999999999999999999999", "limit"),
        ("offset=-3", "offset"),
        ("offset=4294967296", "offset"),
        ("offset=1e3", "offset"),
        ("state=bogus", "state"),
        ("state=", "state"),
        ("framework=mesos", "framework"),
        // As registered and as documented: lowercase, exactly.
        ("framework=Chronos", "framework"),
        ("framework=%20marathon", "framework"),
        ("order=up", "order"),
        ("limit=1&limit=2", "limit"),
        ("page=2", "page"),
        ("name=c1", "name"),
    ] {
        let message = invalid(&h, &format!("/api/v1/jobs?{query}"), field).await;
        assert!(message.contains(field), "{query}: {message}");
    }
    // A huge value is quoted cut short, not echoed whole.
    let long = "9".repeat(5000);
    let message = invalid(&h, &format!("/api/v1/jobs?limit={long}"), "limit").await;
    assert!(message.len() < 1000, "{message}");

    // A parameter a view does not take is named.
    for (path, field) in [
        (format!("/api/v1/jobs/{u}?verbose=1"), "verbose"),
        (format!("/api/v1/jobs/{u}?reports=1&limit=1"), "limit"),
        (format!("/api/v1/jobs/{u}/history?limit=5"), "limit"),
        ("/api/v1/nodes?offset=0".to_owned(), "offset"),
    ] {
        invalid(&h, &path, field).await;
    }
    // Without parameters they answer as before.
    for path in [
        format!("/api/v1/jobs/{u}"),
        format!("/api/v1/jobs/{u}/history"),
        "/api/v1/nodes".to_owned(),
    ] {
        assert_eq!(
            h.status("GET", &path, None, &[]).await,
            StatusCode::OK,
            "{path}"
        );
    }
}

/// A job's view answers every iteration report, or with `reports=N` the newest N (the page asks
/// for none: a job may have a million, 98 bytes each).
#[tokio::test]
async fn views_job_detail_bounds_its_reports() {
    let h = Harness::start(Opts::default()).await;
    let u = uuid(0x200);
    let init = json!({"framework": "chronos", "name": "r", "job_duration": 20, "deadline": T0 + 600.0, "desv_deadline": 0.2, "uuid": u, "iterations": 5});
    let (s, r) = h
        .call("POST", "/initTask", Some(&init.to_string()), &[])
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    for i in 0..3 {
        let at = T0 - 30.0 + f64::from(i) * 10.0;
        h.applied(
            "/updateTask",
            &json!({"name": "r", "started_at": at, "finished_at": at + 5.0, "hostname": "n1", "uuid": u}).to_string(),
        )
        .await;
    }
    let started = |v: &Value| -> Vec<f64> {
        v["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["started_at"].as_f64().unwrap())
            .collect()
    };
    let (s, all, _) = get(&h, &format!("/api/v1/jobs/{u}")).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(started(&all), [T0 - 30.0, T0 - 20.0, T0 - 10.0]);
    for (n, want) in [
        ("1000000", vec![T0 - 30.0, T0 - 20.0, T0 - 10.0]),
        ("2", vec![T0 - 20.0, T0 - 10.0]),
        ("0", vec![]),
    ] {
        let (s, v, _) = get(&h, &format!("/api/v1/jobs/{u}?reports={n}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(started(&v), want, "reports={n}");
        assert_eq!(v["remaining_iterations"], 2);
    }
    for query in [
        "reports=-1",
        "reports=x",
        "reports=1000001",
        "reports=1&reports=2",
    ] {
        invalid(&h, &format!("/api/v1/jobs/{u}?{query}"), "reports").await;
    }
}
