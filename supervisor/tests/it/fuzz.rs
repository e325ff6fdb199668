//! Random bodies at every route: never a 5xx, never a panic, always a JSON error for a 4xx.

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{ADMIN, Harness, Opts, call, uuid};

const ROUTES: &[(&str, &str)] = &[
    ("POST", "/initTask"),
    ("POST", "/updateTask"),
    ("POST", "/initMarathonApp"),
    ("POST", "/endMarathonApp"),
    ("POST", "/api/v1/jobs"),
    (
        "POST",
        "/api/v1/jobs/00000000000000000000000000000001/progress",
    ),
    ("POST", "/api/v1/samples"),
    ("POST", "/api/v1/nodes/register"),
    ("POST", "/api/v1/nodes/node-1/heartbeat"),
    ("GET", "/api/v1/jobs/%2e%2e"),
    ("DELETE", "/api/v1/jobs/x"),
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 ._/-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("1500000000"),
            Just("-1"),
            Just("NaN"),
            Just("1e400"),
            Just("chronos"),
            Just("marathon")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("uuid".to_owned()),
                    Just("name".to_owned()),
                    Just("framework".to_owned()),
                    Just("job_duration".to_owned()),
                    Just("deadline".to_owned()),
                    Just("desv_deadline".to_owned()),
                    Just("iterations".to_owned()),
                    Just("finished_at".to_owned()),
                    Just("started_at".to_owned()),
                    Just("hostname".to_owned()),
                    Just("qos".to_owned()),
                    Just("cpus".to_owned()),
                    Just("fraction".to_owned()),
                    Just("samples".to_owned()),
                    Just("node".to_owned()),
                    Just("id".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        json_value().prop_map(|v| v.to_string().into_bytes()),
    ]
}

#[test]
fn random_bodies_never_break_the_service() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let h = rt.block_on(Harness::start(Opts::default()));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    let auth = format!("Bearer {ADMIN}");
    runner
        .run(
            &(0..ROUTES.len(), body(), any::<bool>()),
            |(i, b, with_ct)| {
                let (method, path) = ROUTES[i];
                let headers: Vec<(&str, &str)> = if with_ct {
                    vec![
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ]
                } else {
                    vec![]
                };
                let (status, v) = rt.block_on(call(&h.router, method, path, Some(b), &headers));
                prop_assert!(
                    !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
                    "{status} {v}"
                );
                if status.is_client_error() {
                    prop_assert!(v["error"]["code"].is_string(), "{status} {v}");
                }
                Ok(())
            },
        )
        .unwrap();
    // Still serving and consistent.
    let (s, _) = rt.block_on(call(&h.router, "GET", "/healthz", None, &[]));
    assert_eq!(s, StatusCode::OK);
    let (s, v) = rt.block_on(call(&h.router, "GET", "/api/v1/jobs", None, &[]));
    assert_eq!(s, StatusCode::OK, "{v}");
    let _ = uuid(0);
    rt.block_on(h.sup.stop());
}
