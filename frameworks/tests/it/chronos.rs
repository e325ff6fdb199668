//! `ChronosClient` against the fake Chronos, in both API generations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::StatusCode;
use frameworks::{
    ChronosApi, ChronosApiVersion, ChronosClient, ChronosJob, DetectingChronos, FrameworkError,
};
use serde_json::json;

use testkit::lock;
use testkit::wire::chronos::ChronosServer;
use testkit::wire::fixed;

use crate::support::{creds, fast_config, fixture_json};

fn client(fake: &ChronosServer, version: ChronosApiVersion) -> ChronosClient {
    ChronosClient::with_config(&creds(&fake.url), version, fast_config()).expect("client")
}

fn thesis_job(n: u8) -> ChronosJob {
    ChronosJob::try_from(fixture_json(&format!("thesis/openmpLinpack{n}.json"))).expect("job")
}

#[tokio::test]
async fn detects_both_generations() {
    for version in [ChronosApiVersion::V2, ChronosApiVersion::V3] {
        let fake = ChronosServer::start(version).await;
        let detected = ChronosClient::detect(&creds(&fake.url), fast_config())
            .await
            .expect("detect");
        assert_eq!(detected.api_version(), version);
        let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
        match version {
            ChronosApiVersion::V3 => assert_eq!(paths, ["/v1/scheduler/jobs"]),
            ChronosApiVersion::V2 => assert_eq!(paths, ["/v1/scheduler/jobs", "/scheduler/jobs"]),
        }
    }
}

#[tokio::test]
async fn detect_reports_auth_failures_at_once() {
    let server = fixed(
        StatusCode::UNAUTHORIZED,
        &[("www-authenticate", "basic realm=\"Chronos\"")],
        "",
    )
    .await;
    let err = ChronosClient::detect(&creds(&server.url), fast_config())
        .await
        .expect_err("401");
    assert!(
        matches!(err, FrameworkError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn thesis_jobs_are_accepted_by_both_generations() {
    for version in [ChronosApiVersion::V2, ChronosApiVersion::V3] {
        let fake = ChronosServer::start(version).await;
        let chronos = client(&fake, version);
        for n in 1..=6 {
            chronos.put_job(&thesis_job(n)).await.expect("upsert");
        }
        let req = fake.last_request();
        assert_eq!(req.method, "POST");
        let expected = match version {
            ChronosApiVersion::V2 => "/scheduler/iso8601",
            ChronosApiVersion::V3 => "/v1/scheduler/iso8601",
        };
        assert_eq!(req.path, expected);
        assert_eq!(
            req.json(),
            fixture_json("thesis/openmpLinpack6.json"),
            "sent verbatim"
        );

        let jobs = chronos.list_jobs().await.expect("list");
        assert_eq!(jobs.len(), 6);
        let stored = chronos.get_job("openmpLinpack3").await.expect("find");
        assert_eq!(
            stored
                .schedule()
                .expect("schedule")
                .expect("some")
                .repetitions(),
            Some(13)
        );
        assert_eq!(stored.cpus(), Some(1.0));
        assert!(stored.get("qos").is_none(), "Chronos drops qos");
    }
}

#[tokio::test]
async fn dependent_jobs_go_to_the_dependency_endpoint() {
    let fake = ChronosServer::start(ChronosApiVersion::V3).await;
    let chronos = client(&fake, ChronosApiVersion::V3);
    chronos.put_job(&thesis_job(1)).await.expect("parent");
    let mut child = ChronosJob::new("after-linpack");
    child.set_command("echo done");
    child.insert("parents", json!(["openmpLinpack1"]));
    chronos.put_job(&child).await.expect("child");
    assert_eq!(fake.last_request().path, "/v1/scheduler/dependency");
    assert_eq!(
        chronos
            .get_job("after-linpack")
            .await
            .expect("child")
            .parents(),
        ["openmpLinpack1"]
    );
}

/// Chronos search is a case-insensitive substring match limited to 10 results by default: the
/// exact name must still be found, and only it.
#[tokio::test]
async fn find_is_exact_despite_substring_search_and_default_limit() {
    let fake = ChronosServer::start(ChronosApiVersion::V2).await;
    for i in 0..15 {
        fake.insert_job(
            json!({"name": format!("JOB1{i}"), "schedule": "R1//PT1M", "command": "true"}),
        );
    }
    fake.insert_job(
        json!({"name": "job1", "schedule": "R4//PT5M", "command": "true", "cpus": "1"}),
    );
    let chronos = client(&fake, ChronosApiVersion::V2);

    // What the thesis did: search with the default limit. The wanted job is not even in the page.
    let raw = chronos.search_jobs("job1", 10, 0).await.expect("search");
    assert_eq!(raw.len(), 10);
    assert!(raw.iter().all(|j| j.name() != Some("job1")));

    let job = chronos
        .find_job("job1")
        .await
        .expect("find")
        .expect("exact match");
    assert_eq!(job.name(), Some("job1"));
    assert_eq!(job.cpus(), Some(1.0));
    let req = fake.last_request();
    assert_eq!(req.path, "/scheduler/jobs/search");
    assert_eq!(req.param("name").as_deref(), Some("job1"));
    assert_eq!(req.param("limit").as_deref(), Some("1000"));

    assert!(
        chronos.find_job("job").await.expect("find").is_none(),
        "substring hits are not matches"
    );
    assert!(
        chronos.find_job("Job1").await.expect("find").is_none(),
        "names are case-sensitive"
    );
    let err = chronos.get_job("job").await.expect_err("no exact job");
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("\"job\""), "{err}");
}

#[tokio::test]
async fn resize_reposts_the_whole_job_with_numeric_cpus() {
    for version in [ChronosApiVersion::V2, ChronosApiVersion::V3] {
        let fake = ChronosServer::start(version).await;
        // As stored by a real server: every serializer field, plus uris mirrored from fetch.
        fake.insert_job(fixture_json("chronos/job_get_3x.json"));
        let chronos = client(&fake, version);
        let original = fixture_json("chronos/job_get_3x.json");

        let sent = chronos
            .set_job_cpus("openmpLinpack1", 1.4)
            .await
            .expect("resize");
        assert_eq!(sent.cpus(), Some(1.4));
        let req = fake.last_request();
        assert_eq!(req.method, "POST");
        let body = req.json();
        let body = body.as_object().expect("object");
        assert_eq!(body["cpus"], json!(1.4));
        assert!(
            !body.contains_key("uris"),
            "uris mirrored from fetch must not be sent with fetch"
        );
        for (key, value) in original.as_object().expect("object") {
            if key == "cpus" || key == "uris" {
                continue;
            }
            assert_eq!(
                body.get(key),
                Some(value),
                "field {key} changed or was dropped"
            );
        }
        assert_eq!(
            fake.job("openmpLinpack1").expect("stored")["cpus"],
            json!(1.4)
        );
    }
}

#[tokio::test]
async fn resize_of_a_thesis_job_keeps_string_fields() {
    let fake = ChronosServer::start(ChronosApiVersion::V2).await;
    let chronos = client(&fake, ChronosApiVersion::V2);
    chronos.put_job(&thesis_job(1)).await.expect("submit");
    chronos
        .set_job_cpus("openmpLinpack1", 0.6)
        .await
        .expect("resize");
    let body = fake.last_request().json();
    assert_eq!(body["cpus"], json!(0.6));
    assert_eq!(body["mem"], json!("500"), "other string numbers untouched");
    assert_eq!(body["async"], json!("false"));
    assert_eq!(
        body["container"]["volumes"][0]["hostPath"],
        "/home/users/shared/serlophug/"
    );
}

#[tokio::test]
async fn start_delete_and_kill() {
    for version in [ChronosApiVersion::V2, ChronosApiVersion::V3] {
        let fake = ChronosServer::start(version).await;
        let chronos = client(&fake, version);
        chronos.put_job(&thesis_job(2)).await.expect("submit");

        chronos
            .start_job("openmpLinpack2", None)
            .await
            .expect("start");
        let req = fake.last_request();
        assert_eq!(req.method, "PUT");
        assert!(
            req.path.ends_with("/scheduler/job/openmpLinpack2"),
            "{}",
            req.path
        );
        chronos
            .start_job("openmpLinpack2", Some("--size 4000"))
            .await
            .expect("start with args");
        assert_eq!(
            fake.last_request().param("arguments").as_deref(),
            Some("--size 4000")
        );
        assert_eq!(fake.state().started, ["openmpLinpack2", "openmpLinpack2"]);

        chronos
            .kill_job_tasks("openmpLinpack2")
            .await
            .expect("kill");
        assert!(
            fake.last_request()
                .path
                .ends_with("/scheduler/task/kill/openmpLinpack2")
        );
        assert_eq!(fake.state().killed, ["openmpLinpack2"]);

        chronos.delete_job("openmpLinpack2").await.expect("delete");
        assert_eq!(fake.last_request().method, "DELETE");
        assert!(fake.job("openmpLinpack2").is_none());

        // Unknown jobs: Chronos answers 400 (stack trace in 3.x, bare message in 2.x).
        for err in [
            chronos
                .delete_job("openmpLinpack2")
                .await
                .expect_err("gone"),
            chronos
                .start_job("openmpLinpack2", None)
                .await
                .expect_err("gone"),
            chronos
                .kill_job_tasks("openmpLinpack2")
                .await
                .expect_err("gone"),
        ] {
            match &err {
                FrameworkError::NotFound { message, .. } => {
                    assert!(
                        message
                            .starts_with("java.lang.IllegalArgumentException: requirement failed:")
                            || message.starts_with("requirement failed:"),
                        "{message}"
                    );
                    assert!(
                        !message.contains("\tat "),
                        "stack trace lines are dropped: {message}"
                    );
                }
                other => panic!("expected NotFound, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn bad_names_and_schedules_are_refused_before_sending() {
    let fake = ChronosServer::start(ChronosApiVersion::V3).await;
    let chronos = client(&fake, ChronosApiVersion::V3);
    let mut job = thesis_job(1);
    job.insert("name", json!("bad name"));
    assert!(matches!(
        chronos.put_job(&job).await,
        Err(FrameworkError::InvalidInput { .. })
    ));
    let mut job = thesis_job(1);
    job.insert("schedule", json!("R4//P1M"));
    let err = chronos.put_job(&job).await.expect_err("calendar period");
    assert!(err.to_string().contains("P30D"), "{err}");
    let mut job = thesis_job(1);
    job.remove("name");
    assert!(matches!(
        chronos.put_job(&job).await,
        Err(FrameworkError::InvalidInput { .. })
    ));
    assert!(matches!(
        chronos.start_job("a/b", None).await,
        Err(FrameworkError::InvalidInput { .. })
    ));
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn chronos_400_with_empty_body_is_invalid() {
    let server = fixed(StatusCode::BAD_REQUEST, &[], "").await;
    let chronos =
        ChronosClient::with_config(&creds(&server.url), ChronosApiVersion::V2, fast_config())
            .expect("client");
    let err = chronos.put_job(&thesis_job(1)).await.expect_err("400");
    match &err {
        FrameworkError::Invalid {
            status: 400,
            message,
            details,
            ..
        } => {
            assert_eq!(message, "Bad Request");
            assert!(details.is_empty());
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(server.hits(), 1, "4xx is never retried");
}

/// A fake `ChronosApi` to check the provided `set_job_cpus`.
#[derive(Default)]
struct InMemoryChronos {
    jobs: Mutex<BTreeMap<String, ChronosJob>>,
}

fn missing(name: &str) -> FrameworkError {
    FrameworkError::NotFound {
        method: "GET".into(),
        url: format!("memory://{name}"),
        message: "no such job".into(),
    }
}

#[async_trait]
impl ChronosApi for InMemoryChronos {
    async fn find_job(&self, name: &str) -> Result<Option<ChronosJob>, FrameworkError> {
        Ok(lock(&self.jobs).get(name).cloned())
    }
    async fn get_job(&self, name: &str) -> Result<ChronosJob, FrameworkError> {
        self.find_job(name).await?.ok_or_else(|| missing(name))
    }
    async fn put_job(&self, job: &ChronosJob) -> Result<(), FrameworkError> {
        let name = job
            .name()
            .ok_or_else(|| FrameworkError::invalid_input("job", "no name"))?;
        lock(&self.jobs).insert(name.to_owned(), job.clone());
        Ok(())
    }
    async fn start_job(&self, name: &str) -> Result<(), FrameworkError> {
        self.get_job(name).await.map(drop)
    }
    async fn delete_job(&self, name: &str) -> Result<(), FrameworkError> {
        lock(&self.jobs)
            .remove(name)
            .map(drop)
            .ok_or_else(|| missing(name))
    }
    async fn kill_job_tasks(&self, name: &str) -> Result<(), FrameworkError> {
        self.get_job(name).await.map(drop)
    }
}

#[tokio::test]
async fn trait_objects_real_and_fake() {
    let fake_api: Arc<dyn ChronosApi> = Arc::new(InMemoryChronos::default());
    fake_api.put_job(&thesis_job(1)).await.expect("put");
    let job = fake_api
        .set_job_cpus("openmpLinpack1", 1.8)
        .await
        .expect("provided method");
    assert_eq!(job.cpus(), Some(1.8));
    assert_eq!(
        fake_api
            .get_job("openmpLinpack1")
            .await
            .expect("get")
            .cpus(),
        Some(1.8)
    );
    assert!(
        fake_api
            .set_job_cpus("nope", 1.0)
            .await
            .expect_err("missing")
            .is_not_found()
    );

    let fake = ChronosServer::start(ChronosApiVersion::V3).await;
    let real: Arc<dyn ChronosApi> = Arc::new(client(&fake, ChronosApiVersion::V3));
    real.put_job(&thesis_job(4)).await.expect("put");
    real.start_job("openmpLinpack4").await.expect("start");
    let resized = real
        .set_job_cpus("openmpLinpack4", 0.2)
        .await
        .expect("resize");
    assert_eq!(resized.cpus(), Some(0.2));
    real.kill_job_tasks("openmpLinpack4").await.expect("kill");
    real.delete_job("openmpLinpack4").await.expect("delete");
    assert!(
        real.find_job("openmpLinpack4")
            .await
            .expect("find")
            .is_none()
    );
    assert!(fake.job("openmpLinpack4").is_none());
}

#[tokio::test]
async fn a_detecting_client_asks_at_its_first_request_and_keeps_the_answer() {
    for version in [ChronosApiVersion::V2, ChronosApiVersion::V3] {
        let fake = ChronosServer::start(version).await;
        let chronos = DetectingChronos::new(&creds(&fake.url), fast_config()).expect("client");
        assert!(
            fake.requests().is_empty(),
            "nothing is sent before a request"
        );
        assert_eq!(chronos.api_version(), None);
        ChronosApi::put_job(&chronos, &thesis_job(1))
            .await
            .expect("put");
        ChronosApi::get_job(&chronos, "openmpLinpack1")
            .await
            .expect("get");
        assert_eq!(chronos.api_version(), Some(version));
        let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
        let prefix = if version == ChronosApiVersion::V3 {
            "/v1/scheduler"
        } else {
            "/scheduler"
        };
        let probes = paths
            .iter()
            .filter(|p| p.ends_with("/scheduler/jobs"))
            .count();
        assert_eq!(
            probes,
            if version == ChronosApiVersion::V3 {
                1
            } else {
                2
            },
            "{paths:?}"
        );
        assert!(
            paths.iter().skip(probes).all(|p| p.starts_with(prefix)),
            "{version}: {paths:?}"
        );
    }
}

#[tokio::test]
async fn a_detecting_client_asks_again_after_a_failed_probe() {
    // Chronos answers 503 while it starts up, then as 3.x.
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ready = Arc::clone(&up);
    let server = testkit::wire::Scripted::start(move |r, _| {
        if !ready.load(std::sync::atomic::Ordering::SeqCst) {
            return (503, "starting".to_owned());
        }
        match r.path.as_str() {
            "/v1/scheduler/jobs" => (200, "[]".to_owned()),
            _ => (404, String::new()),
        }
    })
    .await;
    let chronos = DetectingChronos::new(&creds(&server.url), fast_config()).expect("client");
    let first = ChronosApi::find_job(&chronos, "j").await;
    assert!(first.is_err(), "{first:?}");
    assert_eq!(chronos.api_version(), None);
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = ChronosApi::delete_job(&chronos, "j").await;
    assert_eq!(
        chronos.api_version(),
        Some(ChronosApiVersion::V3),
        "{second:?}"
    );
    let last = server.requests().last().map(|r| r.path.clone());
    assert_eq!(last.as_deref(), Some("/v1/scheduler/job/j"));
}
