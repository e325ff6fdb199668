//! The Chronos emulator as one generation only (`chronos_version = "2"` / `"3"`): the prefix the
//! `frameworks` client's detection finds, the keys each version keeps, its error shapes, and how
//! it schedules a start in the past (2.5.1 skips the runs; 3.x runs them).

use std::time::Duration;

use crate::support::*;
use frameworks::{ChronosApiVersion, ChronosClient, Credentials};
use serde_json::{Value, json};
use testbed::ChronosVersion;

fn config(version: ChronosVersion) -> testbed::Config {
    testbed::Config {
        chronos_version: version,
        ..small()
    }
}

/// A testbed with one Chronos generation; the client's detection must find it, and the other
/// generation's prefix must not answer.
async fn one_version(version: ChronosVersion) -> (Bed, String, reqwest::Client, ChronosClient) {
    let bed = start(config(version)).await;
    let base = bed.testbed.urls().chronos.clone();
    let http = reqwest::Client::new();
    let detected = ChronosClient::detect(&Credentials::new(&base).unwrap(), client_config())
        .await
        .unwrap();
    let (api, other) = match version {
        ChronosVersion::V2 => (ChronosApiVersion::V2, "v1/scheduler"),
        _ => (ChronosApiVersion::V3, "scheduler"),
    };
    assert_eq!(detected.api_version(), api);
    let r = http
        .get(format!("{base}/{other}/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    (bed, base, http, detected)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn status_and_body(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test]
async fn chronos_3_keeps_3x_fields_and_runs_a_past_start() {
    // Only /v1/scheduler exists: the client's detection finds 3.x.
    let (bed, base, http, detected) = one_version(ChronosVersion::V3).await;

    // 3.x keeps networkInfos, networkName and external volumes, and writes port numbers as
    // strings.
    let name = unique("net-");
    let job = json!({"name": name, "command": "true", "schedule": "R/2099-01-01T00:00:00Z/PT1H",
        "container": {"type": "DOCKER", "image": "busybox", "network": "USER", "networkName": "dcos",
            "networkInfos": [{"name": "dcos", "protocol": "IPv4",
                "labels": [{"key": "k", "value": "v"}],
                "portMappings": [{"hostPort": 31000, "containerPort": 80, "protocol": "tcp"}]}],
            "volumes": [{"containerPath": "/data", "mode": "RW",
                "external": {"name": "vol", "provider": "dvdi",
                    "options": [{"key": "dvdi/driver", "value": "rexray"}]}}]},
        "concurrent": false, "epsilon": "PT30S", "async": false, "qos": {"duration": 1}});
    let r = http
        .post(format!("{base}/v1/scheduler/iso8601"))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let job_url = format!("{base}/v1/scheduler/job/{name}");
    let got = get_json(&http, &job_url).await;
    let c = &got["container"];
    assert_eq!(c["networkName"], "dcos");
    assert_eq!(
        c["networkInfos"][0]["portMappings"][0],
        json!({"hostPort": "31000", "containerPort": "80", "protocol": "tcp"})
    );
    assert_eq!(c["volumes"][0]["external"]["options"][0]["value"], "rexray");
    assert!(got.get("epsilon").is_none() && got.get("async").is_none() && got.get("qos").is_none());
    // The client reads it back, and a re-post of what it read keeps every 3.x field.
    let read = detected.get_job(&name).await.unwrap();
    detected.put_job(&read).await.unwrap();
    let again = get_json(&http, &job_url).await;
    assert_eq!(again, got);

    // 3.x error shapes: PUT is gone from /iso8601, refusals are ApiResults.
    let r = http
        .put(format!("{base}/v1/scheduler/iso8601"))
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let (status, body) = status_and_body(
        http.post(format!("{base}/v1/scheduler/iso8601"))
            .json(&json!({"name": "bad name", "command": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 400);
    assert_eq!(body["status"], "Bad Request");
    assert!(
        body["message"].as_str().unwrap().starts_with(
            "java.lang.IllegalArgumentException: requirement failed: the job's name is invalid"
        ),
        "{body}"
    );

    // A start years in the past: 3.x runs every run, one after the other (skipForward).
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let past = unique("past-");
    detected
        .put_job(
            &frameworks::ChronosJob::try_from(json!({"name": past,
                "schedule": "R3/2014-09-25T17:22:00Z/PT1S",
                "command": format!("echo run >> {}", runs.display())}))
            .unwrap(),
        )
        .await
        .unwrap();
    let done = wait_for(
        "three runs of a past start",
        Duration::from_secs(20),
        || async {
            let j = detected.get_job(&past).await.ok()?;
            (j.success_count() == Some(3)).then_some(j)
        },
    )
    .await;
    assert!(done.disabled());
    assert!(done.schedule_str().unwrap().starts_with("R0/"));
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 3);
    bed.testbed.stop().await;
}

#[tokio::test]
async fn chronos_2_speaks_251_and_skips_a_past_start() {
    // Only /scheduler exists: the client's detection finds 2.x.
    let (bed, base, http, detected) = one_version(ChronosVersion::V2).await;

    // 2.5.1 error shapes: a bad schedule is an empty 400, a bad name the plain message.
    let (status, body) = status_and_body(
        http.put(format!("{base}/scheduler/iso8601"))
            .json(&json!({"name": "ok", "schedule": "every day"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (400, ""));
    let (status, body) = status_and_body(
        http.post(format!("{base}/scheduler/iso8601"))
            .json(&json!({"name": "bad name"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with("requirement failed: the job's name is invalid"),
        "{body}"
    );
    // 2.5.1 knows no USER network and keeps no 3.x fields.
    let r = http
        .post(format!("{base}/scheduler/iso8601"))
        .json(&json!({"name": unique("u-"), "command": "true",
            "container": {"image": "busybox", "network": "USER"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // A start years in the past, beyond epsilon: `makeScheduleStream` skips forward by the
    // periods since the start, more than the three runs left, so the job is never scheduled
    // ("Filtered job as it is no longer valid"): stored as posted, not disabled, never run.
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let past = unique("past-");
    detected
        .put_job(
            &frameworks::ChronosJob::try_from(json!({"name": past,
                "schedule": "R3/2014-09-25T17:22:00Z/PT1S", "epsilon": "PT60S",
                "command": format!("echo run >> {}", runs.display())}))
            .unwrap(),
        )
        .await
        .unwrap();
    // The schedule is resolved as the POST is answered; give a run the time it would need.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let done = detected.get_job(&past).await.unwrap();
    assert!(!done.disabled(), "{done:?}");
    assert_eq!(done.success_count(), Some(0));
    assert_eq!(done.schedule_str(), Some("R3/2014-09-25T17:22:00Z/PT1S"));
    assert!(done.get("concurrent").is_none(), "2.5.1 writes no 3.x keys");
    assert_eq!(done.get("epsilon"), Some(&json!("PT60S")));
    assert!(!runs.exists(), "nothing ran");
    bed.testbed.stop().await;
}
