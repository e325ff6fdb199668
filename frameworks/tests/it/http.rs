//! Transport behaviour shared by every client: authentication, retries, timeouts, unreachable
//! servers, undecodable answers.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use frameworks::{
    ChronosApiVersion, ChronosClient, ClientConfig, FrameworkError, MarathonApi, MarathonApp,
    MarathonClient, RetryPolicy,
};
use serde_json::json;

use testkit::wire::marathon::MarathonServer;
use testkit::wire::{Flaky, Hanging, base64, dead_url, fixed};

use crate::support::{creds, fast_config, fixture, fixture_json};

fn marathon(url: &str, config: ClientConfig) -> MarathonClient {
    MarathonClient::with_config(&creds(url), config).expect("client")
}

#[tokio::test]
async fn basic_auth_is_sent_and_401_is_typed() {
    let fake = MarathonServer::with_basic_auth("admin", "s3cret").await;
    let authed = MarathonClient::with_config(
        &creds(&fake.url).with_basic_auth("admin", "s3cret"),
        fast_config(),
    )
    .expect("client");
    assert!(authed.list_apps().await.expect("authorized").is_empty());
    let expected = format!("Basic {}", base64(b"admin:s3cret"));
    assert_eq!(
        fake.last_request().header("authorization"),
        Some(expected.as_str())
    );

    for client in [
        marathon(&fake.url, fast_config()),
        MarathonClient::with_config(
            &creds(&fake.url).with_basic_auth("admin", "wrong"),
            fast_config(),
        )
        .expect("client"),
    ] {
        let before = fake.requests().len();
        let err = client.get_app("/x").await.expect_err("401");
        match &err {
            FrameworkError::Unauthorized {
                status,
                challenge,
                message,
                ..
            } => {
                assert_eq!(*status, 401);
                assert_eq!(challenge.as_deref(), Some("basic realm=\"Mesosphere\""));
                assert_eq!(message, "Error 401 Unauthorized");
            }
            other => panic!("expected Unauthorized, got {other:?}"),
        }
        let text = err.to_string();
        assert!(
            text.contains("HTTP 401") && text.contains("credential file"),
            "{text}"
        );
        assert_eq!(fake.requests().len(), before + 1, "401 is not retried");
    }
}

#[tokio::test]
async fn credential_file_with_dcos_token() {
    let fake = MarathonServer::with_token("eyJhbGciOi.payload.sig").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("marathon.json");
    std::fs::write(
        &path,
        json!({"url": format!("{}/", fake.url), "token": "eyJhbGciOi.payload.sig"}).to_string(),
    )
    .expect("write");
    let client = MarathonClient::with_config(
        &frameworks::Credentials::load(&path).expect("load"),
        fast_config(),
    )
    .expect("client");
    client.info().await.expect("authorized with token");
    let req = fake.last_request();
    assert_eq!(
        req.header("authorization"),
        Some("token=eyJhbGciOi.payload.sig")
    );
    assert_eq!(
        req.path, "/v2/info",
        "trailing slash of the url is normalised"
    );
}

#[tokio::test]
async fn get_is_retried_after_503_then_succeeds() {
    let body = fixture("marathon/info.json");
    let server = Flaky::start(
        2,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        &body,
        &[],
    )
    .await;
    let info = marathon(&server.url, fast_config())
        .info()
        .await
        .expect("third attempt succeeds");
    assert_eq!(info.version(), Some("1.4.13"));
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let server = Flaky::start(
        usize::MAX,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        "",
        &[],
    )
    .await;
    let err = marathon(&server.url, fast_config())
        .list_apps()
        .await
        .expect_err("always 503");
    match &err {
        FrameworkError::Server { status, body, .. } => {
            assert_eq!(*status, 503);
            assert_eq!(body, "Service Unavailable: try again");
        }
        other => panic!("expected Server, got {other:?}"),
    }
    assert_eq!(server.hits(), 3);

    let none = ClientConfig {
        retry: RetryPolicy::none(),
        ..fast_config()
    };
    let server = Flaky::start(usize::MAX, StatusCode::BAD_GATEWAY, StatusCode::OK, "", &[]).await;
    assert!(marathon(&server.url, none).list_apps().await.is_err());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn non_idempotent_calls_are_not_retried_after_5xx() {
    let app =
        MarathonApp::try_from(fixture_json("thesis/marathon_openmpLinpack1.json")).expect("app");
    let server = Flaky::start(
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::CREATED,
        "{}",
        &[],
    )
    .await;
    let err = marathon(&server.url, fast_config())
        .create_app(&app)
        .await
        .expect_err("503 on create");
    assert!(
        matches!(err, FrameworkError::Server { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(
        server.hits(),
        1,
        "a create may have happened: never repeat it"
    );

    let server = Flaky::start(
        1,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::NO_CONTENT,
        "",
        &[],
    )
    .await;
    let chronos =
        ChronosClient::with_config(&creds(&server.url), ChronosApiVersion::V2, fast_config())
            .expect("client");
    assert!(chronos.start_job("openmpLinpack1", None).await.is_err());
    assert_eq!(
        server.hits(),
        1,
        "a manual start may have happened: never repeat it"
    );
}

#[tokio::test]
async fn idempotent_updates_are_retried_after_5xx() {
    let server = Flaky::start(
        2,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::OK,
        &fixture("marathon/put_result.json"),
        &[(
            "Marathon-Deployment-Id",
            "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43",
        )],
    )
    .await;
    let result = marathon(&server.url, fast_config())
        .set_app_cpus("/a", 1.0, false)
        .await
        .expect("retried");
    assert_eq!(result.deployment_id, "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43");
    assert_eq!(result.version.as_deref(), Some("2015-09-29T15:59:51.164Z"));
    assert_eq!(server.hits(), 3);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.json() == json!({"cpus": 1.0})),
        "same body every time"
    );

    let server = Flaky::start(
        1,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::NO_CONTENT,
        "",
        &[],
    )
    .await;
    let chronos =
        ChronosClient::with_config(&creds(&server.url), ChronosApiVersion::V3, fast_config())
            .expect("client");
    let job =
        frameworks::ChronosJob::try_from(fixture_json("thesis/openmpLinpack1.json")).expect("job");
    chronos.put_job(&job).await.expect("upsert retried");
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn deployment_id_may_come_from_the_header_only() {
    let server = Flaky::start(
        0,
        StatusCode::OK,
        StatusCode::OK,
        "",
        &[("Marathon-Deployment-Id", "hdr-1")],
    )
    .await;
    let result = marathon(&server.url, fast_config())
        .delete_app("/a", false)
        .await
        .expect("delete");
    assert_eq!(result.deployment_id, "hdr-1");
    assert_eq!(result.version, None);

    let server = Flaky::start(0, StatusCode::OK, StatusCode::OK, "{}", &[]).await;
    let err = marathon(&server.url, fast_config())
        .delete_app("/a", false)
        .await
        .expect_err("no id");
    assert!(matches!(err, FrameworkError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = Hanging::start().await;
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        ..fast_config()
    };
    let started = Instant::now();
    let err = marathon(&server.url, config)
        .get_app("/a")
        .await
        .expect_err("timeout");
    let elapsed = started.elapsed();
    match &err {
        FrameworkError::Timeout {
            method,
            url,
            timeout,
        } => {
            assert_eq!(method, "GET");
            assert_eq!(url, &format!("{}/v2/apps/a", server.url));
            assert_eq!(*timeout, Duration::from_millis(300));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(600),
        "two attempts of 300 ms: {elapsed:?}"
    );
    assert_eq!(server.accepted(), 2, "two attempts");
    assert!(elapsed < Duration::from_secs(5), "bounded: {elapsed:?}");
    assert!(
        err.to_string().contains("got no answer within 300ms"),
        "{err}"
    );

    // A create is not repeated after a timeout: it may have been applied.
    let config = ClientConfig {
        timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let app =
        MarathonApp::try_from(fixture_json("thesis/marathon_openmpLinpack1.json")).expect("app");
    assert!(matches!(
        marathon(&server.url, config).create_app(&app).await,
        Err(FrameworkError::Timeout { .. })
    ));
    assert_eq!(server.accepted(), 3, "one attempt only for the create");
}

#[tokio::test]
async fn refused_connections_are_unreachable_and_retried() {
    let url = dead_url();
    let config = ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
        },
        ..fast_config()
    };
    let started = Instant::now();
    let app =
        MarathonApp::try_from(fixture_json("thesis/marathon_openmpLinpack1.json")).expect("app");
    // Even a create is retried when the connection was never made.
    let err = marathon(&url, config)
        .create_app(&app)
        .await
        .expect_err("refused");
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "retried with backoff: {:?}",
        started.elapsed()
    );
    match &err {
        FrameworkError::Unreachable {
            method,
            url: u,
            reason,
        } => {
            assert_eq!(method, "POST");
            assert_eq!(u, &format!("{url}/v2/apps"));
            assert!(
                reason.to_lowercase().contains("refused") || reason.contains("connect"),
                "{reason}"
            );
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(err.is_transient());
}

#[tokio::test]
async fn undecodable_success_bodies_are_decode_errors() {
    let server = fixed(
        StatusCode::OK,
        &[("content-type", "text/html")],
        "<html>Marathon UI</html>",
    )
    .await;
    let err = marathon(&server.url, fast_config())
        .get_app("/a")
        .await
        .expect_err("html");
    match &err {
        FrameworkError::Decode { what, reason, .. } => {
            assert!(what.contains("app"), "{what}");
            assert!(reason.contains("<html>Marathon UI</html>"), "{reason}");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(server.hits(), 1, "decode errors are not retried");
}

#[tokio::test]
async fn forbidden_and_unexpected_statuses() {
    let server = fixed(
        StatusCode::FORBIDDEN,
        &[],
        r#"{"message":"Too many running deployments"}"#,
    )
    .await;
    let err = marathon(&server.url, fast_config())
        .set_app_cpus("/a", 1.0, false)
        .await
        .expect_err("403");
    assert!(
        matches!(&err, FrameworkError::Unauthorized { status: 403, message, challenge: None, .. } if message == "Too many running deployments"),
        "{err:?}"
    );

    let server = fixed(StatusCode::METHOD_NOT_ALLOWED, &[], "").await;
    let err = marathon(&server.url, fast_config())
        .list_apps()
        .await
        .expect_err("405");
    assert!(
        matches!(err, FrameworkError::UnexpectedStatus { status: 405, .. }),
        "{err:?}"
    );
}
