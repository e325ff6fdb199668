//! The Docker runtime against the private daemon (`scripts/test.d/docker.up` exports
//! `DOCKER_HOST` and builds `qos-busybox:latest`). Skipped with a notice when no daemon answers,
//! the `docker` CLI is missing or the image is, unless `QOS_REQUIRE_DOCKER=1`, which makes that
//! a failure.

use std::time::Duration;

use crate::support::*;
use frameworks::{ChronosJob, MarathonApp};
use serde_json::json;
use testbed::{Config, RuntimeKind};
use testkit::docker;

const IMAGE: &str = "qos-busybox:latest";

/// A docker testbed, or `None` (after a notice) when Docker is not usable and not required.
async fn docker_bed() -> Option<Bed> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = Config {
        runtime: RuntimeKind::Docker,
        docker_host: Some(docker::host()),
        ..small()
    };
    let why = match testbed::serve(cfg.clone(), listener, std::future::pending()).await {
        Ok(tb) => {
            tb.stop().await;
            // The tests inspect containers with the `docker` CLI, which a machine may lack
            // although a daemon answers.
            match std::process::Command::new("docker")
                .arg("--version")
                .output()
            {
                Err(e) => format!("the docker CLI cannot be run ({e})"),
                Ok(_) if docker::run(&["image", "inspect", IMAGE]).ok => {
                    return Some(start(cfg).await);
                }
                Ok(_) => {
                    format!("image {IMAGE} is missing (bash scripts/docker-daemon image-busybox)")
                }
            }
        }
        Err(e) => format!("{e:#}"),
    };
    let _ = testkit::skip_unless_required(
        &["QOS_REQUIRE_DOCKER"],
        &format!("Docker is not usable: {why}"),
        "a Docker test",
    );
    None
}

#[tokio::test]
async fn marathon_docker_app_runs_as_a_bounded_container_and_is_removed() {
    let Some(bed) = docker_bed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let id = format!("/{}", unique("dock-"));
    bed.marathon
        .create_app(&MarathonApp::try_from(json!({
            "id": id, "cpus": 0.5, "mem": 64, "taskKillGracePeriodSeconds": 1,
            "cmd": "env > /data/env.tmp && mv /data/env.tmp /data/env; exec sleep 60",
            "container": {"type": "DOCKER",
                "docker": {"image": IMAGE, "network": "HOST", "forcePullImage": false},
                "volumes": [{"containerPath": "/data", "hostPath": dir.path().display().to_string(), "mode": "RW"}]},
        })).unwrap())
        .await
        .unwrap();
    let env = wait_for("the container's env", Duration::from_secs(30), || async {
        env_file(&dir.path().join("env"))
    })
    .await;
    assert_eq!(env_get(&env, "MARATHON_APP_DOCKER_IMAGE"), Some(IMAGE));
    assert_eq!(env_get(&env, "MARATHON_APP_RESOURCE_CPUS"), Some("0.5"));
    let task_id = env_get(&env, "MESOS_TASK_ID").unwrap().to_owned();
    let task = wait_for("task running", Duration::from_secs(10), || async {
        bed.marathon
            .app_tasks(&id)
            .await
            .ok()?
            .into_iter()
            .find(|t| t.is_running())
    })
    .await;
    assert_eq!(task.id, task_id);
    let agent = task.slave_id.clone().unwrap();
    let inspect = docker::ok(&[
        "inspect",
        "-f",
        "{{.Id}}|{{.HostConfig.NanoCpus}}|{{.HostConfig.NetworkMode}}|{{index .Config.Labels \"MESOS_TASK_ID\"}}|{{.HostConfig.CgroupParent}}|{{.HostConfig.CpuShares}}",
        &task_id,
    ]);
    let parts: Vec<&str> = inspect.split('|').collect();
    assert_eq!(parts[1], "500000000");
    assert_eq!(parts[2], "host");
    assert_eq!(parts[3], task_id);
    assert_eq!(parts[5], "512", "1024 shares per CPU, as Mesos sets");
    if cgroups(&bed) {
        let prefix = &bed.testbed.config().cgroup_prefix;
        assert_eq!(parts[4], format!("/{prefix}/{agent}"));
        let quota = task_cpu_cgroup(&bed, &agent, parts[0]).join("cpu.cfs_quota_us");
        assert_eq!(read_trim(&quota).as_deref(), Some("50000"));
    }
    let mut stats = None;
    for a in &bed.agents {
        stats = stats.or(a.statistics_for(&task_id).await.unwrap());
    }
    assert_eq!(
        stats.expect("agent statistics").statistics.cpus_limit,
        Some(0.5)
    );
    bed.marathon.delete_app(&id, false).await.unwrap();
    wait_for(
        "the container to be removed",
        Duration::from_secs(15),
        || async { (!docker::run(&["inspect", &task_id]).ok).then_some(()) },
    )
    .await;
    bed.testbed.stop().await;
}

#[tokio::test]
async fn chronos_docker_job_runs_in_its_image() {
    let Some(bed) = docker_bed().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let name = unique("dockjob-");
    bed.chronos
        .add_scheduled_job(&ChronosJob::try_from(json!({
            "name": name, "schedule": "R1//PT1H", "cpus": "0.5", "mem": "64", "async": "false",
            "command": "echo $CHRONOS_JOB_NAME > /shared/out",
            "container": {"type": "DOCKER", "image": IMAGE, "network": "HOST",
                "volumes": [{"containerPath": "/shared", "hostPath": dir.path().display().to_string(), "mode": "RW"}]},
        })).unwrap())
        .await
        .unwrap();
    wait_for("one success", Duration::from_secs(30), || async {
        let j = bed.chronos.get_job(&name).await.ok()?;
        (j.success_count() == Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        read_trim(&dir.path().join("out")).as_deref(),
        Some(name.as_str())
    );
    bed.testbed.stop().await;
}
