//! Against a real dockerd (started by scripts/test.d/docker.up; skipped with a notice when none
//! answers at DOCKER_HOST unless QOS_REQUIRE_DOCKER=1): a container named by a job UUID is
//! discovered, mapped, sampled and resized in place through `POST /resize`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util;

const IMAGE: &str = "qos-busybox:latest";

/// Removes the containers even when the test fails.
struct Containers(Vec<String>);

impl Drop for Containers {
    fn drop(&mut self) {
        for c in &self.0 {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", c])
                .output();
        }
    }
}

fn ensure_image() {
    let have = std::process::Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/docker-daemon");
        let st = std::process::Command::new("bash")
            .arg(script)
            .arg("image-busybox")
            .status()
            .unwrap();
        assert!(st.success(), "building {IMAGE} failed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_container_named_by_uuid_is_mapped_sampled_and_resized_in_place() {
    if !util::docker_or_skip("docker resize") {
        return;
    }
    ensure_image();
    let uuid = util::job_uuid();
    let other = util::unique("qos-it-plain");
    let _guard = Containers(vec![uuid.clone(), other.clone()]);
    let busy = "while :; do :; done";
    // A busy container bounded to half a CPU.
    let run_busy = |name: &str| {
        util::docker(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--cpus",
            "0.5",
            IMAGE,
            "sh",
            "-c",
            busy,
        ])
    };
    let id = run_busy(&uuid);
    run_busy(&other);
    let host = testkit::docker::host();

    let agent = util::Agent::start(&[
        "--docker-host",
        &host,
        "--period",
        "0.2",
        "--resize-token",
        "tok",
    ]);
    let snap = agent
        .wait_for(
            "the container mapped and sampled",
            Duration::from_secs(15),
            |s| {
                s["containers"].as_array().unwrap().iter().any(|c| {
                    c["id"] == id.as_str()
                        && c["uuid"] == uuid.as_str()
                        && c["total_secs"].as_f64().unwrap_or(0.0) > 0.1
                })
            },
        )
        .await;
    let cs = snap["containers"].as_array().unwrap();
    let c = cs.iter().find(|c| c["id"] == id.as_str()).unwrap();
    assert_eq!(
        (c["runtime"].as_str(), c["name"].as_str()),
        (Some("docker"), Some(uuid.as_str()))
    );
    assert_eq!(c["quota_cpus"], json!(0.5));
    assert_eq!(c["image"].as_str(), Some(IMAGE));
    let plain = cs
        .iter()
        .find(|c| c["name"] == other.as_str())
        .expect("the unnamed container is measured too");
    assert!(plain["uuid"].is_null(), "{plain}");

    // Refusals.
    let ok_body = json!({"uuid": uuid, "cpus": 1.5});
    let (st, body) = agent.resize(None, ok_body.clone()).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (st, _) = agent.resize(Some("wrong"), ok_body.clone()).await;
    assert_eq!(st, 401);
    let cpus = snap["node"]["cpus"].as_u64().unwrap();
    let (st, body) = agent
        .resize(
            Some("tok"),
            json!({"uuid": uuid, "cpus": cpus as f64 + 0.5}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["field"].as_str()),
        (422, Some("cpus")),
        "{body}"
    );
    let (st, body) = agent
        .resize(Some("tok"), json!({"uuid": other, "cpus": 1.0}))
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (st, _) = agent
        .resize(Some("tok"), json!({"uuid": util::job_uuid(), "cpus": 1.0}))
        .await;
    assert_eq!(st, 404);

    // The real thing.
    let quota_file = Path::new("/sys/fs/cgroup/cpu/docker")
        .join(&id)
        .join("cpu.cfs_quota_us");
    let t0 = Instant::now();
    let (st, body) = agent.resize(Some("tok"), ok_body).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        (body["cpus"].as_f64(), body["container_id"].as_str()),
        (Some(1.5), Some(id.as_str()))
    );
    let mut seen = String::new();
    while t0.elapsed() < Duration::from_secs(1) {
        seen = fs::read_to_string(&quota_file)
            .unwrap_or_default()
            .trim()
            .to_string();
        if seen == "150000" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let latency = t0.elapsed();
    assert_eq!(
        seen,
        "150000",
        "quota in {} after 1 s",
        quota_file.display()
    );
    eprintln!("docker in-place resize: 0.5 → 1.5 CPUs visible in the cgroup after {latency:?}");
    assert_eq!(
        util::docker(&["inspect", "--format", "{{.HostConfig.NanoCpus}}", &id]),
        "1500000000"
    );

    agent
        .wait_for(
            "the new quota in the snapshot",
            Duration::from_secs(5),
            |s| {
                s["containers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["id"] == id.as_str() && c["quota_cpus"] == json!(1.5))
            },
        )
        .await;
    let text = agent.metrics_text().await;
    let labels = format!("{{id=\"/docker/{id}\",name=\"{uuid}\",qos_uuid=\"{uuid}\"}}");
    for m in [
        "container_cpu_usage_seconds_total",
        "container_spec_cpu_quota",
        "container_cpu_cfs_throttled_periods_total",
    ] {
        assert!(
            text.contains(&format!("{m}{labels}")),
            "{m}{labels} missing from /metrics"
        );
    }
    assert!(
        text.contains(&format!("container_spec_cpu_quota{labels} 150000")),
        "{text}"
    );
}
