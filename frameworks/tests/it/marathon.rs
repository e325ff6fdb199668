//! `MarathonClient` against the fake Marathon.

use std::sync::Arc;

use frameworks::marathon::READ_ONLY_APP_KEYS;
use frameworks::{FrameworkError, MarathonApi, MarathonApp, MarathonClient, UpdateOptions};
use serde_json::{Map, json};

use testkit::wire::marathon::MarathonServer;

use crate::support::{creds, fast_config, fixture_json};

fn client(fake: &MarathonServer) -> MarathonClient {
    MarathonClient::with_config(&creds(&fake.url), fast_config()).expect("client")
}

fn thesis_app() -> MarathonApp {
    MarathonApp::try_from(fixture_json("thesis/marathon_openmpLinpack1.json")).expect("app")
}

#[tokio::test]
async fn create_returns_deployment_id_from_header_and_normalises_id() {
    let fake = MarathonServer::start().await;
    let marathon = client(&fake);
    let mut app = thesis_app();
    app.insert("id", json!("openmplinpack1"));
    let created = marathon.create_app(&app).await.expect("create");

    let req = fake.last_request();
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v2/apps");
    assert_eq!(req.header("content-type"), Some("application/json"));
    let sent = req.json();
    assert_eq!(sent["id"], "/openmplinpack1");
    assert_eq!(
        sent["qos"]["deadline"], 480,
        "the client sends the file as given"
    );

    let dep = created.deployment_id.expect("deployment id");
    assert!(dep.starts_with("5ed4c0c5-"), "{dep}");
    assert_eq!(created.app.id(), Some("/openmplinpack1"));
    assert_eq!(created.app.cpus(), Some(1.0));
    // Marathon drops unknown keys such as qos.
    assert!(created.app.get("qos").is_none());
    assert!(fake.app("/openmplinpack1").is_some());
}

#[tokio::test]
async fn duplicate_create_is_a_conflict() {
    let fake = MarathonServer::start().await;
    let marathon = client(&fake);
    marathon
        .create_app(&thesis_app())
        .await
        .expect("first create");
    let err = marathon
        .create_app(&thesis_app())
        .await
        .expect_err("second create");
    match &err {
        FrameworkError::Conflict {
            message,
            method,
            url,
        } => {
            assert_eq!(message, "An app with id [/openmplinpack1] already exists.");
            assert_eq!(method, "POST");
            assert!(url.ends_with("/v2/apps"), "{url}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert!(err.to_string().contains("already exists"), "{err}");
}

#[tokio::test]
async fn validation_errors_carry_marathon_details() {
    let fake = MarathonServer::start().await;
    let marathon = client(&fake);
    let mut app = thesis_app();
    app.insert(
        "upgradeStrategy",
        json!({"minimumHealthCapacity": 2, "maximumOverCapacity": 0}),
    );
    let err = marathon.create_app(&app).await.expect_err("invalid");
    match &err {
        FrameworkError::Invalid {
            status,
            message,
            details,
            ..
        } => {
            assert_eq!(*status, 422);
            assert_eq!(message, "Object is not valid");
            assert_eq!(details[0].path, "/upgradeStrategy/minimumHealthCapacity");
            assert_eq!(details[0].errors, ["is greater than 1"]);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("/upgradeStrategy/minimumHealthCapacity: is greater than 1"),
        "{err}"
    );
}

#[tokio::test]
async fn apps_without_a_valid_id_are_refused_before_sending() {
    let fake = MarathonServer::start().await;
    let marathon = client(&fake);
    let mut app = thesis_app();
    app.remove("id");
    assert!(matches!(
        marathon.create_app(&app).await,
        Err(FrameworkError::InvalidInput { .. })
    ));
    let err = marathon.get_app("/Upper/case").await.expect_err("bad id");
    assert!(err.to_string().contains("\"Upper\""), "{err}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn nested_ids_and_missing_apps() {
    let fake = MarathonServer::start().await;
    let stored = fixture_json("marathon/app_get_1_10.json")["app"].clone();
    fake.insert_app(stored);
    let marathon = client(&fake);

    let app = marathon.get_app("grp/sub/job-b").await.expect("get nested");
    assert_eq!(fake.last_request().path, "/v2/apps/grp/sub/job-b");
    assert_eq!(app.id(), Some("/grp/sub/job-b"));
    assert_eq!(app.cpus(), Some(0.5));
    assert_eq!(
        app.deployment_ids(),
        ["97c136bf-5a28-4821-9d94-480d9fbb01c8"]
    );
    assert_eq!(app.tasks_staged(), Some(1));

    let tasks = marathon.app_tasks("/grp/sub/job-b").await.expect("tasks");
    assert_eq!(fake.last_request().path, "/v2/apps/grp/sub/job-b/tasks");
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].state.as_deref(), Some("TASK_STAGING"));
    assert_eq!(tasks[0].started_at, None);

    let err = marathon.get_app("/nope").await.expect_err("missing");
    match &err {
        FrameworkError::NotFound { message, .. } => {
            assert_eq!(message, "App '/nope' does not exist")
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(err.is_not_found());
    assert!(matches!(
        marathon.app_tasks("/nope").await,
        Err(FrameworkError::NotFound { .. })
    ));
}

/// GET an app full of fields the client does not know → change cpus → PUT: every other field
/// goes back unchanged, and no read-only key is sent.
#[tokio::test]
async fn full_update_round_trips_unknown_fields_and_strips_read_only_keys() {
    let fake = MarathonServer::start().await;
    let original = fixture_json("marathon/app_get_1_4.json")["app"].clone();
    fake.insert_app(original.clone());
    let marathon = client(&fake);

    let mut app = marathon.get_app("/qos/job-a").await.expect("get");
    assert_eq!(
        app.as_map(),
        original.as_object().expect("object"),
        "GET keeps everything"
    );
    app.set_cpus(1.4).expect("cpus");
    let result = marathon
        .update_app(&app, UpdateOptions::default())
        .await
        .expect("put");
    assert!(result.deployment_id.starts_with("5ed4c0c5-"));
    assert_eq!(result.version.as_deref(), Some("2026-01-01T00:00:00.000Z"));

    let req = fake.last_request();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.path, "/v2/apps/qos/job-a");
    assert_eq!(req.param("partialUpdate").as_deref(), Some("false"));
    assert_eq!(req.param("force"), None);
    let sent = req.json();
    let sent = sent.as_object().expect("object body");
    let original = original.as_object().expect("object");

    for key in READ_ONLY_APP_KEYS {
        assert!(!sent.contains_key(*key), "read-only key {key} was sent");
    }
    assert!(
        !sent.contains_key("uris"),
        "uris duplicates fetch and must not be sent with it"
    );
    assert!(
        !sent.contains_key("ports"),
        "ports duplicates portDefinitions"
    );
    assert_eq!(sent["cpus"], json!(1.4));
    let mut checked = 0;
    for (key, value) in original {
        if READ_ONLY_APP_KEYS.contains(&key.as_str())
            || ["uris", "ports", "cpus"].contains(&key.as_str())
        {
            continue;
        }
        assert_eq!(
            sent.get(key),
            Some(value),
            "field {key} changed or was dropped"
        );
        checked += 1;
    }
    assert_eq!(sent.len(), checked + 1, "nothing but cpus was added");
    for key in [
        "labels",
        "user",
        "secrets",
        "killSelection",
        "unreachableStrategy",
        "readinessChecks",
        "futureFieldObject",
        "futureFieldScalar",
        "gpus",
        "residency",
        "storeUrls",
    ] {
        assert!(sent.contains_key(key), "{key} must be kept");
    }
    // Order is kept too.
    let order: Vec<&String> = original.keys().filter(|k| sent.contains_key(*k)).collect();
    assert_eq!(sent.keys().collect::<Vec<_>>(), order);

    // And the fake accepted it as Marathon would (no uris+fetch clash): the stored app changed.
    assert_eq!(fake.app("/qos/job-a").expect("stored")["cpus"], json!(1.4));
}

#[tokio::test]
async fn resize_is_a_partial_update_with_only_cpus() {
    let fake = MarathonServer::start().await;
    fake.insert_app(fixture_json("marathon/app_get_1_4.json")["app"].clone());
    let marathon = client(&fake);
    let result = marathon
        .set_app_cpus("/qos/job-a", 0.75, false)
        .await
        .expect("resize");
    let req = fake.last_request();
    assert_eq!(req.method, "PUT");
    assert_eq!(req.query, None, "partialUpdate defaults to true; no force");
    assert_eq!(req.json(), json!({"cpus": 0.75}));
    assert!(!result.deployment_id.is_empty());
    let stored = fake.app("/qos/job-a").expect("stored");
    assert_eq!(stored["cpus"], json!(0.75));
    assert_eq!(
        stored["labels"]["qos.uuid"], "0f8b6c1e2d3a4b5c6d7e8f9a0b1c2d3e",
        "other fields kept"
    );

    assert!(matches!(
        marathon.set_app_cpus("/qos/job-a", f64::NAN, false).await,
        Err(FrameworkError::InvalidInput { .. })
    ));

    let mut patch = Map::new();
    patch.insert("mem".into(), json!(1024));
    marathon
        .patch_app("/qos/job-a", &patch, false)
        .await
        .expect("patch");
    assert_eq!(fake.app("/qos/job-a").expect("stored")["mem"], json!(1024));

    // Through the trait: scaling to zero keeps the definition (the supervisor's completion).
    let api: &dyn frameworks::MarathonApi = &marathon;
    api.scale_app("/qos/job-a", 0, true).await.expect("scale");
    let req = fake.last_request();
    assert_eq!(
        (req.method.as_str(), req.query.as_deref()),
        ("PUT", Some("force=true"))
    );
    assert_eq!(req.json(), json!({"instances": 0}));
    assert_eq!(
        fake.app("/qos/job-a").expect("stored")["instances"],
        json!(0)
    );
}

#[tokio::test]
async fn locked_apps_report_blocking_deployments_and_force_overrides() {
    let fake = MarathonServer::start().await;
    fake.insert_app(fixture_json("marathon/app_get_1_4.json")["app"].clone());
    fake.lock_app("/qos/job-a", "97c136bf-5a28-4821-9d94-480d9fbb01c8");
    let marathon = client(&fake);

    let err = marathon
        .set_app_cpus("/qos/job-a", 1.8, false)
        .await
        .expect_err("locked");
    match &err {
        FrameworkError::Locked {
            deployments,
            message,
            ..
        } => {
            assert_eq!(deployments, &["97c136bf-5a28-4821-9d94-480d9fbb01c8"]);
            assert!(
                message.starts_with("App is locked by one or more deployments."),
                "{message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(fake.requests().len(), 1, "a 409 is not retried");

    let deployments = marathon.deployments().await.expect("deployments");
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].id, "97c136bf-5a28-4821-9d94-480d9fbb01c8");
    assert!(deployments[0].affects(&"/qos/job-a".parse().expect("id")));

    marathon
        .set_app_cpus("/qos/job-a", 1.8, true)
        .await
        .expect("forced");
    assert_eq!(fake.last_request().param("force").as_deref(), Some("true"));

    let app = marathon.get_app("/qos/job-a").await.expect("get");
    let opts = UpdateOptions {
        force: true,
        partial: false,
    };
    marathon
        .update_app(&app, opts)
        .await
        .expect("forced full update");
    let req = fake.last_request();
    assert_eq!(req.param("force").as_deref(), Some("true"));
    assert_eq!(req.param("partialUpdate").as_deref(), Some("false"));

    assert!(matches!(
        marathon.restart_app("/qos/job-a", false).await,
        Err(FrameworkError::Locked { .. })
    ));
    marathon
        .restart_app("/qos/job-a", true)
        .await
        .expect("forced restart");
    assert_eq!(fake.last_request().path, "/v2/apps/qos/job-a/restart");
}

#[tokio::test]
async fn delete_list_and_info() {
    let fake = MarathonServer::start().await;
    let marathon = client(&fake);
    marathon.create_app(&thesis_app()).await.expect("create");
    let apps = marathon.list_apps().await.expect("list");
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].id(), Some("/openmplinpack1"));

    let info = marathon.info().await.expect("info");
    assert_eq!(info.version(), Some("1.4.13"));
    assert_eq!(info.name(), Some("marathon"));
    assert!(info.framework_id().is_some());
    assert_eq!(info.leader(), Some("master1:8080"));

    let deleted = marathon
        .delete_app("openmplinpack1", false)
        .await
        .expect("delete");
    assert!(!deleted.deployment_id.is_empty());
    assert_eq!(fake.last_request().method, "DELETE");
    assert!(
        marathon
            .delete_app("/openmplinpack1", false)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    assert!(marathon.list_apps().await.expect("list").is_empty());
}

#[tokio::test]
async fn usable_as_a_trait_object() {
    let fake = MarathonServer::start().await;
    let api: Arc<dyn MarathonApi> = Arc::new(client(&fake));
    api.create_app(&thesis_app()).await.expect("create");
    api.set_app_cpus("/openmplinpack1", 1.4, false)
        .await
        .expect("resize");
    let app = api.get_app("/openmplinpack1").await.expect("get");
    assert_eq!(app.cpus(), Some(1.4));
    assert!(
        api.app_tasks("/openmplinpack1")
            .await
            .expect("tasks")
            .is_empty()
    );
    assert!(api.deployments().await.expect("deployments").is_empty());
    api.delete_app("/openmplinpack1", false)
        .await
        .expect("delete");
}
