//! `SupervisorClient` against the fake supervisor.

use axum::http::StatusCode;
use frameworks::{FrameworkError, SupervisorClient};
use qos_core::job::Framework;
use qos_core::spec::QosSpec;
use qos_core::wire::{
    CpuSample, EndMarathonApp, Heartbeat, InitMarathonApp, InitTask, JobRegistration,
    NodeRegistration, ProgressReport, SampleBatch, UpdateTask,
};
use serde_json::json;

use testkit::wire::Flaky;
use testkit::wire::supervisor::{ADMIN_TOKEN, SupervisorServer};

use crate::support::{creds, fast_config};

const UUID: &str = "0f8b6c1e2d3a4b5c6d7e8f9a0b1c2d3e";

fn admin(fake: &SupervisorServer) -> SupervisorClient {
    SupervisorClient::with_config(
        &creds(&fake.url).with_bearer_token(ADMIN_TOKEN),
        fast_config(),
    )
    .expect("client")
}

fn anonymous(url: &str) -> SupervisorClient {
    SupervisorClient::with_config(&creds(url), fast_config()).expect("client")
}

fn registration() -> JobRegistration {
    JobRegistration {
        uuid: UUID.to_owned(),
        name: "openmpLinpack1".to_owned(),
        framework: Framework::Chronos,
        qos: QosSpec::from_json(&json!({"duration": 400, "deadline": 1800, "desv_deadline": 0.2}))
            .expect("qos"),
        iterations: Some(4),
        cpus: 1.0,
        submitted_at: None,
        checkpoint: None,
    }
}

#[tokio::test]
async fn thesis_routes_post_the_wire_types() {
    let fake = SupervisorServer::start().await;
    let client = anonymous(&fake.url);
    client
        .init_task(&InitTask {
            framework: Framework::Chronos,
            name: "openmpLinpack1".into(),
            job_duration: 400.0,
            deadline: 1_500_001_800.0,
            desv_deadline: 0.2,
            uuid: UUID.into(),
            iterations: Some(4),
        })
        .await
        .expect("initTask");
    let req = fake.last_request();
    assert_eq!(
        (req.method.as_str(), req.path.as_str()),
        ("POST", "/initTask")
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.json()["framework"], "chronos");
    assert_eq!(req.json()["iterations"], 4);

    client
        .update_task(&UpdateTask {
            name: "openmpLinpack1".into(),
            finished_at: 1_500_000_445.0,
            started_at: 1_500_000_045.0,
            hostname: "agent1".into(),
            uuid: UUID.into(),
            exit_code: Some(0.0),
            cpus: Some(1.5),
        })
        .await
        .expect("updateTask");
    assert_eq!(fake.last_request().path, "/updateTask");

    client
        .init_marathon_app(&InitMarathonApp {
            uuid: UUID.into(),
            started_at: 1.0,
            restored: Some(true),
            strategy: Some("app".into()),
        })
        .await
        .expect("initMarathonApp");
    assert_eq!(fake.last_request().json()["restored"], true);
    client
        .end_marathon_app(&EndMarathonApp {
            uuid: UUID.into(),
            finished_at: 2.0,
            exit_code: None,
        })
        .await
        .expect("endMarathonApp");
    assert_eq!(fake.last_request().path, "/endMarathonApp");
    client.healthz().await.expect("healthz");
    client.readyz().await.expect("readyz");
}

#[tokio::test]
async fn jobs_register_report_and_cancel() {
    let fake = SupervisorServer::start().await;
    let client = admin(&fake);
    let registered = client
        .register_job(&registration())
        .await
        .expect("register");
    assert_eq!(registered.uuid, UUID);
    assert_eq!(registered.report_token, format!("rt-{UUID}"));
    let req = fake.last_request();
    assert_eq!(req.header("authorization"), Some("Bearer admin-token"));
    assert_eq!(
        req.json()["qos"],
        json!({"duration": 400.0, "deadline": 1800.0, "desv_deadline": 0.2})
    );

    let err = client
        .register_job(&registration())
        .await
        .expect_err("duplicate");
    assert!(
        matches!(&err, FrameworkError::Conflict { message, .. } if message.contains("already registered")),
        "{err:?}"
    );

    // A container reports with its own token, and only for itself.
    let reporter = anonymous(&fake.url);
    let report = ProgressReport {
        fraction: 0.25,
        at: Some(10.0),
    };
    reporter
        .report_progress(UUID, &report, Some(&registered.report_token))
        .await
        .expect("own report");
    assert_eq!(
        fake.last_request().header("authorization"),
        Some(format!("Bearer rt-{UUID}").as_str())
    );
    let err = reporter
        .report_progress(UUID, &report, Some("rt-someone-else"))
        .await
        .expect_err("foreign token");
    assert!(
        matches!(&err, FrameworkError::Unauthorized { status: 401, message, .. } if message == "a valid bearer token is required"),
        "{err:?}"
    );

    let err = client
        .report_progress(
            UUID,
            &ProgressReport {
                fraction: 1.5,
                at: None,
            },
            None,
        )
        .await
        .expect_err("out of range");
    match &err {
        FrameworkError::Invalid {
            status,
            message,
            details,
            ..
        } => {
            assert_eq!(*status, 422);
            assert_eq!(message, "fraction must be in [0, 1]");
            assert_eq!(details[0].path, "fraction");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("(fraction: fraction must be in [0, 1])"),
        "{err}"
    );

    assert_eq!(client.job(UUID).await.expect("job")["progress"], 0.25);
    assert_eq!(
        client.jobs().await.expect("jobs").as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(client.job_history(UUID).await.expect("history"), json!([]));
    client.cancel_job(UUID).await.expect("cancel");
    let err = client.job(UUID).await.expect_err("gone");
    assert!(
        matches!(&err, FrameworkError::NotFound { message, .. } if message == &format!("no job {UUID}")),
        "{err:?}"
    );
    assert!(
        client
            .cancel_job(UUID)
            .await
            .expect_err("gone")
            .is_not_found()
    );
}

#[tokio::test]
async fn nodes_and_samples() {
    let fake = SupervisorServer::start().await;
    let client = admin(&fake);
    let beat = Heartbeat {
        at: 5.0,
        free_cpus: 0.5,
        allocated_cpus: 1.5,
        allocated_by_job: Default::default(),
        load1: 1.2,
    };
    assert!(
        client
            .heartbeat("node-1", &beat)
            .await
            .expect_err("unregistered")
            .is_not_found()
    );
    client
        .register_node(&NodeRegistration {
            id: "node-1".into(),
            hostname: "agent1".into(),
            cpus: 2.0,
            memory_bytes: 8 << 30,
            labels: Default::default(),
            agent_url: Some("http://127.0.0.1:9100".into()),
        })
        .await
        .expect("register node");
    assert!(fake.state().nodes.contains("node-1"));
    client.heartbeat("node-1", &beat).await.expect("heartbeat");
    assert_eq!(fake.last_request().path, "/api/v1/nodes/node-1/heartbeat");
    assert_eq!(
        client.nodes().await.expect("nodes"),
        json!([{"id": "node-1"}])
    );

    let batch = SampleBatch {
        node: "node-1".into(),
        samples: vec![CpuSample {
            uuid: Some(UUID.into()),
            container_id: "abc".into(),
            name: None,
            at: 100.0,
            user_secs: 10.0,
            system_secs: 1.0,
            total_secs: 11.0,
            quota_cpus: Some(1.0),
            throttled_secs: None,
        }],
    };
    client.push_samples(&batch).await.expect("samples");
    assert_eq!(
        fake.last_request().json()["samples"][0]["container_id"],
        "abc"
    );
    assert!(matches!(
        anonymous(&fake.url).push_samples(&batch).await,
        Err(FrameworkError::Unauthorized { status: 401, .. })
    ));
}

#[tokio::test]
async fn reports_are_retried_but_registrations_are_not() {
    let server = Flaky::start(
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        "OK",
        &[],
    )
    .await;
    let client = anonymous(&server.url);
    let update = UpdateTask {
        name: "j".into(),
        finished_at: 2.0,
        started_at: 1.0,
        hostname: "h".into(),
        uuid: UUID.into(),
        exit_code: None,
        cpus: None,
    };
    client.update_task(&update).await.expect("retried report");
    assert_eq!(server.hits(), 2);

    let server = Flaky::start(
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::CREATED,
        "{}",
        &[],
    )
    .await;
    let client = anonymous(&server.url);
    assert!(matches!(
        client.register_job(&registration()).await,
        Err(FrameworkError::Server { status: 503, .. })
    ));
    assert_eq!(server.hits(), 1);
}

/// The supervisor answers its job list a page at a time (1000 jobs unless `limit` says
/// otherwise, at most `MAX_JOBS_PAGE`); `jobs()` reads every page, so a collector or a launcher
/// that looks a job up by name finds it however many jobs came before it.
#[tokio::test]
async fn every_job_is_listed_however_many_pages_they_take() {
    let fake = SupervisorServer::start().await;
    let n = 2 * qos_core::wire::MAX_JOBS_PAGE + 1;
    fake.state().jobs.extend((0..n).map(|i| {
        let uuid = format!("{i:032x}");
        (
            uuid.clone(),
            json!({"uuid": uuid, "name": format!("job-{i}")}),
        )
    }));
    let all = admin(&fake).jobs().await.expect("jobs");
    let all = all.as_array().expect("a list");
    assert_eq!(all.len(), n);
    assert_eq!(all[n - 1]["name"], format!("job-{}", n - 1));
    // Without a limit, one request sees only the first page.
    let first: serde_json::Value = reqwest::get(format!("{}/api/v1/jobs", fake.url))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(first.as_array().map(Vec::len), Some(1000));
}
