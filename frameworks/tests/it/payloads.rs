//! Recorded payloads and the thesis job files read through the tolerant models.

use frameworks::marathon::{Deployment, MarathonTask, READ_ONLY_APP_KEYS};
use frameworks::mesos::ExecutorStatistics;
use frameworks::{AppId, ChronosJob, MarathonApp, Schedule};
use serde_json::{Value, json};

use crate::support::fixture_json;

/// (file, name, schedule repetitions, period seconds, qos duration)
const THESIS_CHRONOS: &[(&str, &str, u64, u64, u64)] = &[
    ("openmpLinpack1", "openmpLinpack1", 4, 300, 400),
    ("openmpLinpack2", "openmpLinpack2", 4, 300, 400),
    ("openmpLinpack3", "openmpLinpack3", 13, 180, 130),
    ("openmpLinpack4", "openmpLinpack4", 11, 180, 130),
    ("openmpLinpack5", "openmpLinpack5", 12, 180, 130),
    ("openmpLinpack6", "openmpLinpack6", 14, 120, 80),
];

#[test]
fn thesis_chronos_jobs() {
    for (file, name, reps, period, duration) in THESIS_CHRONOS {
        let raw = fixture_json(&format!("thesis/{file}.json"));
        let job = ChronosJob::try_from(raw.clone()).expect("object");
        assert_eq!(job.name(), Some(*name));
        assert_eq!(job.cpus(), Some(1.0), "\"cpus\": \"1\" reads as 1");
        assert_eq!(job.mem(), Some(500.0));
        assert_eq!(job.owner(), Some("serlophug"));
        assert_eq!(job.container_image(), Some("serlophug/openmplinpack"));
        let schedule = job.schedule().expect("valid").expect("present");
        assert_eq!(schedule.repetitions(), Some(*reps));
        assert_eq!(schedule.start(), None);
        assert_eq!(schedule.period().as_secs(), *period);
        assert_eq!(
            job.get("qos").and_then(|q| q.get("duration")),
            Some(&json!(duration))
        );
        // Nothing is lost or reordered by reading and writing.
        assert_eq!(serde_json::to_value(&job).expect("serialize"), raw);
        assert_eq!(serde_json::to_string(&job).expect("text"), raw.to_string());
        assert_eq!(Value::Object(job.submit_body()), raw);
    }
}

#[test]
fn thesis_marathon_apps() {
    for (file, id, duration, deadline) in [
        ("marathon_openmpLinpack1", "/openmplinpack1", 400, 480),
        ("marathon_openmpLinpack2", "/openmplinpack2", 1100, 1100),
        ("marathon_openmpLinpack3", "/openmplinpack3", 1000, 800),
    ] {
        let raw = fixture_json(&format!("thesis/{file}.json"));
        let app = MarathonApp::try_from(raw.clone()).expect("object");
        assert_eq!(app.app_id().expect("valid id").as_str(), id);
        assert_eq!(app.cpus(), Some(1.0));
        assert_eq!(app.mem(), Some(512.0));
        assert_eq!(app.disk(), Some(0.0));
        assert_eq!(app.instances(), Some(1));
        assert_eq!(app.docker_image(), Some("serlophug/openmplinpack"));
        assert_eq!(app.get("backoffSeconds"), Some(&json!(300)));
        assert_eq!(
            app.get("qos"),
            Some(&json!({"duration": duration, "deadline": deadline, "desv_deadline": 0.1}))
        );
        assert_eq!(serde_json::to_value(&app).expect("serialize"), raw);
        assert_eq!(
            Value::Object(app.update_body()),
            raw,
            "a user's file has no read-only keys"
        );
    }
}

#[test]
fn reference_marathon_create_example() {
    let app = MarathonApp::try_from(fixture_json("marathon/app_create_minimal_docker.json"))
        .expect("app");
    assert_eq!(app.app_id().expect("id").task_id_prefix(), "qos_job-a");
    assert_eq!(app.cpus(), Some(0.5));
    assert_eq!(app.env_var("WORK"), Some("x"));
    assert_eq!(app.label("qos.deadline"), Some("2030-01-01T00:00:00Z"));
    assert_eq!(app.task_kill_grace_period_secs(), Some(10.0));
}

#[test]
fn marathon_1_4_app_info() {
    let raw = fixture_json("marathon/app_get_1_4.json")["app"].clone();
    let app = MarathonApp::try_from(raw).expect("app");
    let id = app.app_id().expect("id");
    assert_eq!(app.version(), Some("2017-07-10T12:00:00.000Z"));
    assert_eq!(app.tasks_running(), Some(1));
    assert!(app.deployment_ids().is_empty());
    assert_eq!(
        app.env_var("MY_UUID"),
        Some("0f8b6c1e2d3a4b5c6d7e8f9a0b1c2d3e")
    );
    assert_eq!(
        app.env_var("DB_PASSWORD"),
        None,
        "secret references are not plain values"
    );
    let tasks = app.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].is_running());
    assert!(id.owns_task(&tasks[0].id), "legacy task id joins the app");
    assert_eq!(tasks[0].ports, [31756]);
    assert!(tasks[0].extra.contains_key("ipAddresses"));

    let body = app.update_body();
    for key in READ_ONLY_APP_KEYS {
        assert!(!body.contains_key(*key), "{key}");
    }
    assert!(!body.contains_key("uris") && body.contains_key("fetch"));
    assert!(!body.contains_key("ports") && body.contains_key("portDefinitions"));
    assert_eq!(
        body["futureFieldObject"],
        json!({"nested": [1, 2, {"deep": true}]})
    );
}

#[test]
fn marathon_1_10_app_info() {
    let raw = fixture_json("marathon/app_get_1_10.json")["app"].clone();
    let app = MarathonApp::try_from(raw).expect("app");
    let id: AppId = app.id().expect("id").parse().expect("valid");
    assert_eq!(id.task_id_prefix(), "grp_sub_job-b");
    let tasks = app.tasks();
    assert!(
        id.owns_task(&tasks[0].id),
        "1.5+ instance task id joins the app"
    );
    assert_eq!(tasks[0].started_at, None);
    assert_eq!(tasks[0].extra.get("role"), Some(&json!("*")));
    let body = app.update_body();
    assert!(!body.contains_key("tasksStats") && !body.contains_key("readinessCheckResults"));
    for key in [
        "role",
        "resourceLimits",
        "networks",
        "executorResources",
        "checks",
        "futureField110",
    ] {
        assert!(body.contains_key(key), "{key}");
    }
}

#[test]
fn marathon_tasks_and_deployments() {
    let raw = fixture_json("marathon/tasks.json");
    let tasks: Vec<MarathonTask> = serde_json::from_value(raw["tasks"].clone()).expect("tasks");
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].slave_id.as_deref(), Some("c9d7e5b2-S0"));
    assert_eq!(tasks[0].extra.get("servicePorts"), Some(&json!([10000])));
    assert!(tasks[1].ports.is_empty(), "ports: null reads as empty");
    assert!(!tasks[1].is_running());
    // Unknown task fields survive a round trip.
    let back = serde_json::to_value(&tasks[0]).expect("serialize");
    assert_eq!(back["ipAddresses"], raw["tasks"][0]["ipAddresses"]);

    let deployments: Vec<Deployment> =
        serde_json::from_value(fixture_json("marathon/deployments.json")).expect("deployments");
    let d = &deployments[0];
    assert_eq!(d.id, "97c136bf-5a28-4821-9d94-480d9fbb01c8");
    assert_eq!(d.affected_apps, ["/foo"]);
    assert_eq!(d.current_actions[0].action, "RestartApplication");
    assert_eq!(d.current_actions[0].app.as_deref(), Some("/foo"));
    assert_eq!((d.current_step, d.total_steps), (Some(1), Some(1)));
    assert!(d.extra.contains_key("steps") && d.extra.contains_key("affectedPods"));
}

#[test]
fn chronos_serializer_shapes() {
    let v3 = ChronosJob::try_from(fixture_json("chronos/job_get_3x.json")).expect("3.x job");
    let schedule = v3.schedule().expect("valid").expect("present");
    assert_eq!(schedule.repetitions(), Some(2));
    assert_eq!(
        schedule.start().map(|s| s.to_rfc3339()),
        Some("2017-07-10T12:15:00+00:00".to_owned())
    );
    assert_eq!(
        schedule.to_chronos_string(),
        "R2/2017-07-10T12:15:00.000Z/PT5M"
    );
    assert_eq!(v3.success_count(), Some(2));
    assert_eq!(v3.error_count(), Some(1));
    assert_eq!(v3.last_success(), Some("2017-07-10T12:10:00.000Z"));
    assert_eq!(v3.retries(), Some(2));
    assert_eq!(
        v3.env_var("QOS_UUID"),
        Some("0f8b6c1e2d3a4b5c6d7e8f9a0b1c2d3e")
    );
    let body = v3.submit_body();
    assert!(!body.contains_key("uris"), "mirrored uris dropped");
    assert_eq!(body["successCount"], json!(2), "counters kept");

    let v2 = ChronosJob::try_from(fixture_json("chronos/job_get_2x.json")).expect("2.x job");
    assert!(
        v2.schedule()
            .expect("valid")
            .expect("present")
            .is_infinite()
    );
    assert_eq!(v2.last_success(), None, "empty timestamps read as absent");
    assert_eq!(v2.get("epsilon"), Some(&json!("PT60S")));
    assert!(
        v2.submit_body().contains_key("uris"),
        "empty uris with empty fetch are left alone"
    );

    let minimal =
        ChronosJob::try_from(fixture_json("chronos/job_minimal_docker.json")).expect("job");
    let s = minimal.schedule().expect("valid").expect("present");
    assert_eq!(s.to_string(), "R/2030-01-01T00:00:00Z/PT1H");
    assert_eq!(minimal.disk(), Some(64.0));
    assert_eq!(
        minimal.env_var("QOS_DEADLINE"),
        Some("2030-01-01T01:00:00Z")
    );
}

#[test]
fn schedules_from_the_reference() {
    for (text, reps) in [
        ("R4//PT5M", Some(4)),
        ("R/2026-01-01T00:00:00Z/PT1M", None),
        ("R0//PT5M", Some(0)),
        ("R//P1DT2H", None),
    ] {
        let s: Schedule = text.parse().expect(text);
        assert_eq!(s.repetitions(), reps, "{text}");
        assert_eq!(s.to_string(), text);
    }
}

#[test]
fn mesos_statistics_sample() {
    let stats: Vec<ExecutorStatistics> =
        serde_json::from_value(fixture_json("mesos/statistics.json")).expect("stats");
    assert_eq!(stats.len(), 2);
    let app: AppId = "/qos/job-a".parse().expect("id");
    assert!(
        app.owns_task(&stats[0].executor_id),
        "executor id is the Marathon task id"
    );
    let s = &stats[0].statistics;
    assert_eq!(s.cpus_user_time_secs, Some(96_348.84));
    assert_eq!(s.mem_rss_bytes, Some(5_105_614_848));
    assert_eq!(
        stats[1].statistics.extra.get("net_rx_bytes"),
        Some(&json!(1000))
    );
}

/// Marathon 0.9 tasks have no `state` (mesosphere/marathon v0.9.0, docs/docs/rest-api.md,
/// `GET /v2/apps/{appId}/tasks` and `GET /v2/apps?embed=apps.tasks` examples): a task with a
/// `startedAt` is running, one still staged has `"startedAt": null`.
#[test]
fn marathon_0_9_tasks_without_state() {
    let tasks: Vec<MarathonTask> = serde_json::from_value(json!([
        {"appId": "/toggle", "host": "10.141.141.10",
         "id": "toggle.802df2ae-3ad4-11e4-a400-56847afe9799", "ports": [31045],
         "stagedAt": "2014-09-12T23:28:28.594Z", "startedAt": "2014-09-13T00:24:46.959Z",
         "version": "2014-09-12T23:28:21.737Z"},
        {"appId": "/ubuntu", "host": "10.141.141.10",
         "id": "ubuntu.55de96ed-503f-11e4-bd18-56847afe9799", "ports": [31467],
         "stagedAt": "2014-10-10T05:36:08.178Z", "startedAt": null,
         "version": "2014-10-09T23:03:33.993Z"}
    ]))
    .expect("0.9 tasks");
    assert!(tasks[0].state.is_none());
    assert!(tasks[0].is_running(), "started, no state: running");
    assert!(!tasks[1].is_running(), "staged: not running yet");
}
