//! Every thesis example payload and the reference payload shapes are accepted by the emulators,
//! through the `frameworks` clients, and stored as the real servers store them.

use std::path::PathBuf;

use crate::support::*;
use frameworks::{ChronosJob, MarathonApp};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[tokio::test]
async fn thesis_chronos_jobs_are_accepted() {
    let bed = start(small()).await;
    for i in 1..=6 {
        let v = fixture(&format!("thesis/openmpLinpack{i}.json"));
        let job = ChronosJob::try_from(v.clone()).unwrap();
        bed.chronos.add_scheduled_job(&job).await.unwrap();
        let stored = bed.chronos.get_job(job.name().unwrap()).await.unwrap();
        assert_eq!(stored.cpus(), Some(1.0), "\"cpus\": \"1\" is read as 1");
        assert_eq!(stored.get("cpus"), Some(&json!(1.0)));
        assert_eq!(stored.get("async"), Some(&json!(false)));
        assert_eq!(stored.container_image(), Some("serlophug/openmplinpack"));
        assert_eq!(
            stored.get("container").unwrap()["volumes"][0]["hostPath"],
            "/home/users/shared/serlophug/"
        );
        assert_eq!(stored.owner(), Some("serlophug"));
        assert!(stored.get("qos").is_none(), "qos is ignored, not stored");
        assert_eq!(stored.command(), v["command"].as_str());
    }
    assert_eq!(bed.chronos_v3.list_jobs().await.unwrap().len(), 6);
    let minimal = ChronosJob::try_from(fixture("chronos_minimal_docker.json")).unwrap();
    bed.chronos_v3.add_scheduled_job(&minimal).await.unwrap();
    let stored = bed.chronos.get_job(minimal.name().unwrap()).await.unwrap();
    assert_eq!(
        stored.env_var("QOS_DEADLINE"),
        minimal.env_var("QOS_DEADLINE")
    );
    bed.testbed.stop().await;
}

#[tokio::test]
async fn thesis_marathon_apps_are_accepted() {
    let bed = start(small()).await;
    for i in 1..=3 {
        let v = fixture(&format!("thesis/marathon_openmpLinpack{i}.json"));
        let created = bed
            .marathon
            .create_app(&MarathonApp::try_from(v.clone()).unwrap())
            .await
            .unwrap();
        assert!(created.deployment_id.is_some());
        let app = bed
            .marathon
            .get_app(v["id"].as_str().unwrap())
            .await
            .unwrap();
        assert!(app.get("qos").is_none(), "Marathon drops unknown fields");
        assert_eq!(app.get("backoffSeconds"), Some(&json!(300)));
        assert_eq!(app.docker_image(), Some("serlophug/openmplinpack"));
        assert_eq!(app.get("networks"), Some(&json!([{"mode": "host"}])));
        assert_eq!(app.cmd(), v["cmd"].as_str());
        // A GET → change cpus → full PUT round trip is accepted too.
        let mut edited = app.clone();
        edited.set_cpus(1.4).unwrap();
        bed.marathon
            .update_app(
                &edited,
                frameworks::UpdateOptions {
                    force: true,
                    partial: false,
                },
            )
            .await
            .unwrap();
        let after = bed
            .marathon
            .get_app(v["id"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(after.cpus(), Some(1.4));
    }
    let minimal = MarathonApp::try_from(fixture("marathon_minimal_docker.json")).unwrap();
    bed.marathon.create_app(&minimal).await.unwrap();
    let app = bed.marathon.get_app(minimal.id().unwrap()).await.unwrap();
    assert_eq!(app.label("qos.deadline"), minimal.label("qos.deadline"));
    assert_eq!(app.get("upgradeStrategy"), minimal.get("upgradeStrategy"));
    bed.testbed.stop().await;
}
