//! Marathon health checks executed against the running task: an HTTP check of a real server on
//! the task's port, and a command check that fails until the test makes it pass (the unhealthy
//! task is killed and replaced, as Marathon does).

use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};

async fn app_json(base: &str, id: &str) -> Option<Value> {
    let r = reqwest::get(format!("{base}/v2/apps{id}")).await.ok()?;
    r.status().is_success().then_some(())?;
    r.json::<Value>().await.ok().map(|v| v["app"].clone())
}

async fn create(base: &str, app: &Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/v2/apps"))
        .json(app)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
}

#[tokio::test]
async fn http_check_of_a_real_server_makes_the_task_healthy() {
    let bed = start(small()).await;
    let base = bed.testbed.urls().marathon.clone();
    let id = format!("/{}", unique("web-"));
    let app = json!({"id": id, "cpus": 0.1, "mem": 32,
        // BusyBox's httpd serving a page on the task's port.
        "cmd": "mkdir -p www && echo ok > www/index.html && exec busybox httpd -f -p 127.0.0.1:$PORT0 -h www",
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 2,
            "maxConsecutiveFailures": 3}]});
    create(&base, &app).await;
    let healthy = wait_for("a healthy task", Duration::from_secs(20), || async {
        let a = app_json(&base, &id).await?;
        (a["tasksHealthy"] == 1 && a["deployments"].as_array()?.is_empty()).then_some(a)
    })
    .await;
    assert_eq!(healthy["tasksUnhealthy"], 0);
    let result = &healthy["tasks"][0]["healthCheckResults"][0];
    assert_eq!(result["alive"], true, "{healthy}");
    assert_eq!(result["consecutiveFailures"], 0);
    assert!(result["firstSuccess"].is_string() && result["lastSuccess"].is_string());
    let task_id = healthy["tasks"][0]["id"].as_str().unwrap();
    assert!(task_id.starts_with(result["instanceId"].as_str().unwrap()));
    bed.testbed.stop().await;
}

#[tokio::test]
async fn failing_command_check_kills_and_replaces_the_task_until_it_passes() {
    let bed = start(small()).await;
    let base = bed.testbed.urls().marathon.clone();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("healthy");
    let id = format!("/{}", unique("cmd-"));
    let app = json!({"id": id, "cpus": 0.1, "mem": 32, "cmd": "exec sleep 600",
        "healthChecks": [{"protocol": "COMMAND",
            "command": {"value": format!("test -f {} && test -n \"$MESOS_TASK_ID\"", marker.display())},
            "gracePeriodSeconds": 0, "intervalSeconds": 1, "timeoutSeconds": 2,
            "maxConsecutiveFailures": 2}]});
    create(&base, &app).await;
    // Unhealthy first: failures counted, the cause shown.
    let unhealthy = wait_for("an unhealthy task", Duration::from_secs(20), || async {
        let a = app_json(&base, &id).await?;
        (a["tasksUnhealthy"] == 1).then_some(a)
    })
    .await;
    let first = unhealthy["tasks"][0]["id"].as_str().unwrap().to_owned();
    let result = &unhealthy["tasks"][0]["healthCheckResults"][0];
    assert_eq!(result["alive"], false);
    assert!(
        result["lastFailureCause"]
            .as_str()
            .unwrap()
            .contains("exited"),
        "{result}"
    );
    // After two failures in a row the task is killed and replaced.
    wait_for("a replacement task", Duration::from_secs(20), || async {
        let a = app_json(&base, &id).await?;
        let ids: Vec<&str> = a["tasks"]
            .as_array()?
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        (!ids.is_empty() && !ids.contains(&first.as_str())).then_some(())
    })
    .await;
    // The check passes now: the running task becomes healthy.
    std::fs::write(&marker, "").unwrap();
    let healthy = wait_for("a healthy task", Duration::from_secs(20), || async {
        let a = app_json(&base, &id).await?;
        (a["tasksHealthy"] == 1).then_some(a)
    })
    .await;
    assert_eq!(healthy["tasks"][0]["healthCheckResults"][0]["alive"], true);
    bed.testbed.stop().await;
}
