//! Against the testbed (Chronos emulator with agents that run commands for real), in process:
//! a Chronos job whose command reports each iteration with curl is classified, resized through
//! the real Chronos client, and deleted after its last iteration — with no forced run.

use std::sync::Arc;
use std::time::Duration;

use frameworks::{ChronosApi, ChronosApiVersion, ChronosClient, ChronosJob, Credentials};
use qos_core::policy::Policy;
use serde_json::{Value, json};
use supervisor::{Clock, Config, Deps, HttpNodeAgent, StoreMode, Supervisor};

use crate::support::uuid;

#[tokio::test]
async fn a_chronos_job_on_the_testbed_is_resized_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let bed_config = testbed::Config {
        agents: 1,
        cpus_per_agent: 2.0,
        no_cgroups: true,
        meta_dir: dir.path().join("meta"),
        process_kill_grace_secs: 1.0,
        chronos_failure_retry_ms: 300,
        ..testbed::Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bed = testbed::serve(bed_config, listener, std::future::pending())
        .await
        .unwrap();
    let chronos = Arc::new(
        ChronosClient::new(
            &Credentials::new(&bed.urls().chronos).unwrap(),
            ChronosApiVersion::V2,
        )
        .unwrap(),
    );

    let config = Config::for_tests(dir.path().join("s.db"), Policy::by_name("thesis").unwrap());
    let deps = Deps {
        marathon: None,
        chronos: Some(chronos.clone() as Arc<dyn ChronosApi>),
        agent: Arc::new(HttpNodeAgent::new(Duration::from_secs(5)).unwrap()),
        clock: Clock::system(),
        store: StoreMode::Thread,
    };
    let sup = Supervisor::start(config, deps).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sup.router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Registered first, then submitted (the launcher's order), with a schedule of exactly 3 runs.
    let u = uuid(31);
    let name = format!("qos-e2e-{}", &u[24..]);
    let http = reqwest::Client::new();
    let reg = json!({"uuid": u, "name": name, "framework": "chronos", "qos": {"duration": 1, "deadline": 30, "desv_deadline": 0.2}, "iterations": 3, "cpus": 0.5});
    assert_eq!(
        http.post(format!("{url}/api/v1/jobs"))
            .json(&reg)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        201
    );
    let report = format!(
        "s=$(date +%s.%N); sleep 0.2; f=$(date +%s.%N); curl -sf -X POST -H 'Content-Type: application/json' \
         -d \"{{\\\"name\\\":\\\"{name}\\\",\\\"uuid\\\":\\\"{u}\\\",\\\"started_at\\\":\\\"$s\\\",\\\"finished_at\\\":\\\"$f\\\",\\\"hostname\\\":\\\"$(hostname)\\\"}}\" {url}/updateTask"
    );
    let job: ChronosJob = serde_json::from_value(json!({"name": name, "schedule": "R3//PT2S", "owner": "qos@example.com", "cpus": 0.5, "mem": 64, "command": report})).unwrap();
    chronos.put_job(&job).await.unwrap();

    let mut last: Value = Value::Null;
    for _ in 0..300 {
        last = http
            .get(format!("{url}/api/v1/jobs/{u}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if last["cleaned_up"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(last["state"], "completed", "{last}");
    assert_eq!(last["cleaned_up"], true, "{last}");
    assert_eq!(last["remaining_iterations"], 0);
    // Eq. 1 with 45 s of deployment per remaining iteration predicts far past a 30 s deadline:
    // UNDER after each of the first two iterations, +0.4 each time, through the real client.
    assert_eq!(last["cpus"], 1.3, "{last}");
    assert!(
        chronos.find_job(&name).await.unwrap().is_none(),
        "deleted after the last iteration"
    );
    let hist: Value = http
        .get(format!("{url}/api/v1/jobs/{u}/history"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resizes = hist
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "resize")
        .count();
    assert_eq!(resizes, 2, "{hist}");
    server.abort();
    sup.stop().await;
    bed.stop().await;
}
