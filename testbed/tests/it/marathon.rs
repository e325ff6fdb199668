//! The Marathon emulator driven through `frameworks::MarathonClient` (and raw HTTP for what a
//! client never sends, like malformed JSON).

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use frameworks::{FrameworkError, MarathonApi, MarathonApp};
use serde_json::{Value, json};

fn app(v: Value) -> MarathonApp {
    MarathonApp::try_from(v).unwrap()
}

fn read_f64(p: &Path) -> Option<f64> {
    read_trim(p)?.parse().ok()
}

#[tokio::test]
async fn create_runs_a_task_with_marathon_env_and_drops_unknown_fields() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let envf = dir.path().join("env");
    let id = format!("/qos/{}", unique("env-"));
    let created = bed
        .marathon
        .create_app(&app(json!({
            "id": id,
            "cmd": format!("env > {0}.tmp && mv {0}.tmp {0}; exec sleep 60", envf.display()),
            "cpus": 0.5, "mem": 64, "instances": 1,
            "env": {"WORK": "x", "QOS_UUID": "0123456789abcdef0123456789abcdef"},
            "labels": {"qos.deadline": "2030-01-01T00:00:00Z", "tier": "gold"},
            "taskKillGracePeriodSeconds": 1,
            "qos": {"duration": 400, "deadline": 480, "desv_deadline": 0.1},
            "futureField": [1, 2],
        })))
        .await
        .unwrap();
    assert!(created.deployment_id.is_some());
    assert_eq!(created.app.id(), Some(id.as_str()));
    assert!(created.app.get("qos").is_none() && created.app.get("futureField").is_none());
    assert_eq!(created.app.get("backoffSeconds"), Some(&json!(1)));
    let env = wait_for("the task's env file", Duration::from_secs(10), || async {
        env_file(&envf)
    })
    .await;
    let got = |k: &str| {
        env_get(&env, k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .to_owned()
    };
    assert_eq!(got("MARATHON_APP_ID"), id);
    assert_eq!(got("MARATHON_APP_VERSION"), created.app.version().unwrap());
    assert_eq!(got("MARATHON_APP_RESOURCE_CPUS"), "0.5");
    assert_eq!(got("MARATHON_APP_RESOURCE_MEM"), "64.0");
    assert_eq!(got("MARATHON_APP_LABELS"), "QOS_DEADLINE TIER");
    assert_eq!(got("MARATHON_APP_LABEL_TIER"), "gold");
    assert_eq!(
        got("MARATHON_APP_LABEL_QOS_DEADLINE"),
        "2030-01-01T00:00:00Z"
    );
    assert_eq!(got("WORK"), "x");
    assert_eq!(got("HOST"), "127.0.0.1");
    assert_eq!(got("PORT"), got("PORT0"));
    assert!(got("PORT0").parse::<u16>().is_ok());
    let task_id = got("MESOS_TASK_ID");
    let prefix = format!("{}.instance-", id.trim_start_matches('/').replace('/', "_"));
    assert!(
        task_id.starts_with(&prefix) && task_id.ends_with("._app.1"),
        "{task_id}"
    );

    let stored = wait_for("deployment done", Duration::from_secs(10), || async {
        let a = bed.marathon.get_app(&id).await.unwrap();
        (a.deployment_ids().is_empty() && a.tasks_running() == Some(1)).then_some(a)
    })
    .await;
    let tasks = stored.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].id, task_id);
    assert!(tasks[0].is_running());
    let agent = tasks[0].slave_id.clone().unwrap();
    assert_eq!(bed.marathon.app_tasks(&id).await.unwrap()[0].id, task_id);
    // The agent reports it, keyed by the task id.
    let mut found = None;
    for a in &bed.agents {
        if let Some(s) = a.statistics_for(&task_id).await.unwrap() {
            found = Some(s);
        }
    }
    let stats = found.expect("an agent reports the task");
    assert_eq!(stats.statistics.cpus_limit, Some(0.5));
    // Its /state shows the task with the app's labels, in Mesos' key/value form.
    let mut task = None;
    for a in &bed.agents {
        let state = a.state().await.unwrap();
        for f in state["frameworks"].as_array().unwrap() {
            for e in f["executors"].as_array().unwrap() {
                for t in e["tasks"].as_array().unwrap() {
                    if t["id"] == task_id.as_str() {
                        task = Some(t.clone());
                    }
                }
            }
        }
    }
    let task = task.expect("the task in an agent's /state");
    assert_eq!(task["state"], "TASK_RUNNING");
    assert!(
        task["labels"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "qos.deadline", "value": "2030-01-01T00:00:00Z"})),
        "{task}"
    );
    if cgroups(&bed) {
        let cg = task_cpu_cgroup(&bed, &agent, &task_id);
        assert_eq!(
            read_trim(&cg.join("cpu.cfs_quota_us")).as_deref(),
            Some("50000")
        );
    }
    // DELETE stops it.
    let pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .is_ok_and(|e| e.windows(task_id.len()).any(|w| w == task_id.as_bytes()))
        })
        .expect("the task's process");
    bed.marathon.delete_app(&id, false).await.unwrap();
    assert!(bed.marathon.get_app(&id).await.unwrap_err().is_not_found());
    wait_for("the process to stop", Duration::from_secs(10), || async {
        (!alive(pid)).then_some(())
    })
    .await;
    bed.testbed.stop().await;
}

#[tokio::test]
async fn error_bodies_and_codes_are_marathons() {
    let bed = start(small()).await;
    let base = bed.testbed.urls().marathon.clone();
    let http = reqwest::Client::new();
    let post = |body: String| {
        let http = http.clone();
        let url = format!("{base}/v2/apps");
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // The id is held to the RAML `PathId` pattern while the JSON is read.
    for bad in ["/Bad_Id", "/a/./b"] {
        let (s, b) = post(json!({"id": bad, "cmd": "true"}).to_string()).await;
        assert_eq!(s, 422, "{bad}");
        assert_eq!(
            b,
            json!({"message": "Invalid JSON", "details": [{"path": "/id", "errors": ["error.pattern"]}]}),
            "{bad}"
        );
    }
    // `AppValidation`: a cmd needs two characters.
    let (s, b) = post(json!({"id": "/short", "cmd": "x"}).to_string()).await;
    assert_eq!(s, 422);
    assert_eq!(
        b,
        json!({"message": "Object is not valid", "details": [{"path": "/", "errors": ["must not be an empty string"]}]})
    );
    // `..` and empty segments are canonicalised, not refused.
    let leaf = unique("dotdot-");
    let (s, b) = post(
        json!({"id": format!("/grp/../{leaf}//"), "cmd": "sleep 1", "instances": 0}).to_string(),
    )
    .await;
    let canonical = format!("/{leaf}");
    assert_eq!(
        (s, b["id"].as_str()),
        (201, Some(canonical.as_str())),
        "{b}"
    );
    let (s, b) = post(json!({"id": "/nocmd"}).to_string()).await;
    assert_eq!(s, 422);
    assert_eq!(
        b["details"][0]["errors"][0],
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
    );
    let (s, _) = post(json!({"id": "/both", "cmd": "true", "args": ["y"]}).to_string()).await;
    assert_eq!(s, 422);
    let (s, b) = post(json!({"cmd": "true"}).to_string()).await;
    assert_eq!((s, b["message"].as_str()), (422, Some("Invalid JSON")));
    assert_eq!(b["details"][0]["errors"][0], "error.path.missing");
    let (s, b) = post("{\"id\": ".to_owned()).await;
    assert_eq!((s, b["message"].as_str()), (400, Some("Invalid JSON")));
    assert!(b["details"].is_string());
    // Marathon's Jackson reads the body as bytes and skips a UTF-8 byte-order mark.
    let bom_id = format!("/{}", unique("bom-"));
    let (s, b) = post(format!(
        "\u{feff}{}",
        json!({"id": bom_id, "cmd": "sleep 1", "instances": 0})
    ))
    .await;
    assert_eq!((s, b["id"].as_str()), (201, Some(bom_id.as_str())), "{b}");
    // Through the client: typed errors.
    let e = bed.marathon.get_app("/nope/app").await.unwrap_err();
    assert!(
        matches!(&e, FrameworkError::NotFound { message, .. } if message == "App '/nope/app' does not exist"),
        "{e}"
    );
    let id = format!("/{}", unique("dup-"));
    let a = app(json!({"id": id, "cmd": "sleep 30", "cpus": 0.1, "mem": 16}));
    bed.marathon.create_app(&a).await.unwrap();
    let e = bed.marathon.create_app(&a).await.unwrap_err();
    assert!(
        matches!(&e, FrameworkError::Conflict { message, .. } if message == &format!("An app with id [{id}] already exists.")),
        "{e}"
    );
    let e = bed
        .marathon
        .create_app(&app(
            json!({"id": "/x", "cmd": "ls", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, FrameworkError::Invalid { status: 422, details, .. } if details[0].path == "/upgradeStrategy/minimumHealthCapacity"),
        "{e}"
    );
    assert_eq!(bed.marathon.info().await.unwrap().name(), Some("marathon"));
    let ping = http
        .get(format!("{base}/ping"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(ping, "pong");
    bed.testbed.stop().await;
}

#[tokio::test]
async fn cpus_change_restarts_kill_first_with_sigterm_and_the_grace_period() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let id = format!("/{}", unique("restart-"));
    // Records when it starts and when it gets SIGTERM (each file written whole, then renamed, so
    // a reader never sees it empty), and ignores SIGTERM.
    let cmd = format!(
        "trap 'date +%s.%N > {d}/term-$MESOS_TASK_ID.tmp; mv {d}/term-$MESOS_TASK_ID.tmp {d}/term-$MESOS_TASK_ID' TERM; \
         env > {d}/env-$MESOS_TASK_ID.tmp; mv {d}/env-$MESOS_TASK_ID.tmp {d}/env-$MESOS_TASK_ID; \
         date +%s.%N > {d}/start-$MESOS_TASK_ID.tmp; mv {d}/start-$MESOS_TASK_ID.tmp {d}/start-$MESOS_TASK_ID; \
         while :; do sleep 0.05; done"
    );
    bed.marathon
        .create_app(&app(json!({
            "id": id, "cmd": cmd, "cpus": 0.3, "mem": 32, "taskKillGracePeriodSeconds": 1,
            "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
        })))
        .await
        .unwrap();
    let first = wait_for("first task", Duration::from_secs(10), || async {
        let t = bed.marathon.app_tasks(&id).await.ok()?;
        let t = t.into_iter().find(|t| t.is_running())?;
        Path::new(&format!("{d}/start-{}", t.id))
            .exists()
            .then_some(t)
    })
    .await;
    wait_for(
        "create deployment done",
        Duration::from_secs(10),
        || async {
            bed.marathon
                .get_app(&id)
                .await
                .unwrap()
                .deployment_ids()
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let result = bed.marathon.set_app_cpus(&id, 0.6, false).await.unwrap();
    let deps = bed.marathon.deployments().await.unwrap();
    let dep = deps
        .iter()
        .find(|x| x.id == result.deployment_id)
        .expect("listed");
    assert!(
        dep.current_actions
            .iter()
            .any(|a| a.action == "RestartApplication" && a.app.as_deref() == Some(id.as_str()))
    );
    // A second change while it runs is refused with the blocking deployment.
    match bed.marathon.set_app_cpus(&id, 0.7, false).await {
        Err(FrameworkError::Locked { deployments, .. }) => {
            assert_eq!(deployments, vec![result.deployment_id.clone()])
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    let second = wait_for("the new task", Duration::from_secs(15), || async {
        let t = bed.marathon.app_tasks(&id).await.ok()?;
        let t = t.into_iter().find(|t| t.id != first.id && t.is_running())?;
        Path::new(&format!("{d}/start-{}", t.id))
            .exists()
            .then_some(t)
    })
    .await;
    let term =
        read_f64(Path::new(&format!("{d}/term-{}", first.id))).expect("old task got SIGTERM");
    let started = read_f64(Path::new(&format!("{d}/start-{}", second.id))).unwrap();
    assert!(
        started - term >= 0.95,
        "new task started {:.3}s after SIGTERM; the 1 s grace must pass first",
        started - term
    );
    assert!(started - term < 4.0, "{:.3}", started - term);
    let env = env_file(Path::new(&format!("{d}/env-{}", second.id))).unwrap();
    assert_eq!(env_get(&env, "MARATHON_APP_RESOURCE_CPUS"), Some("0.6"));
    if cgroups(&bed) {
        let cg = task_cpu_cgroup(&bed, second.slave_id.as_deref().unwrap(), &second.id);
        assert_eq!(
            read_trim(&cg.join("cpu.cfs_quota_us")).as_deref(),
            Some("60000")
        );
        assert!(!task_cpu_cgroup(&bed, first.slave_id.as_deref().unwrap(), &first.id).exists());
    }
    wait_for("deployment gone", Duration::from_secs(10), || async {
        let deps = bed.marathon.deployments().await.unwrap();
        deps.is_empty().then_some(())
    })
    .await;
    let stored = bed.marathon.get_app(&id).await.unwrap();
    assert_eq!(stored.cpus(), Some(0.6));
    assert_eq!(stored.tasks().len(), 1);
    bed.testbed.stop().await;
}

#[tokio::test]
async fn default_upgrade_strategy_starts_the_new_task_first() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let id = format!("/{}", unique("startfirst-"));
    let cmd = format!(
        "trap 'date +%s.%N > {d}/term-$MESOS_TASK_ID.tmp; mv {d}/term-$MESOS_TASK_ID.tmp {d}/term-$MESOS_TASK_ID; exit 0' TERM; \
         date +%s.%N > {d}/start-$MESOS_TASK_ID.tmp; mv {d}/start-$MESOS_TASK_ID.tmp {d}/start-$MESOS_TASK_ID; \
         while :; do sleep 0.05; done"
    );
    bed.marathon
        .create_app(&app(json!({"id": id, "cmd": cmd, "cpus": 0.3, "mem": 32})))
        .await
        .unwrap();
    let first = wait_for("first task", Duration::from_secs(10), || async {
        let t = bed
            .marathon
            .app_tasks(&id)
            .await
            .ok()?
            .into_iter()
            .find(|t| t.is_running())?;
        Path::new(&format!("{d}/start-{}", t.id))
            .exists()
            .then_some(t)
    })
    .await;
    wait_for(
        "create deployment done",
        Duration::from_secs(10),
        || async {
            bed.marathon
                .get_app(&id)
                .await
                .unwrap()
                .deployment_ids()
                .is_empty()
                .then_some(())
        },
    )
    .await;
    bed.marathon.set_app_cpus(&id, 0.4, false).await.unwrap();
    let term = wait_for("old task stopped", Duration::from_secs(15), || async {
        read_f64(Path::new(&format!("{d}/term-{}", first.id)))
    })
    .await;
    let tasks = bed.marathon.app_tasks(&id).await.unwrap();
    let second = tasks.iter().find(|t| t.id != first.id).expect("new task");
    // When the new task was RUNNING (Marathon's `startedAt`; its script's own first line may
    // run a moment later, after the old task already got its SIGTERM).
    let started = second
        .started_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .expect("startedAt");
    assert!(
        started <= term,
        "new started {started}, old terminated {term}"
    );
    bed.testbed.stop().await;
}

#[tokio::test]
async fn exited_tasks_are_relaunched_after_a_growing_backoff() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let id = format!("/{}", unique("backoff-"));
    bed.marathon
        .create_app(&app(json!({
            "id": id, "cmd": format!("date +%s.%N >> {}; exit 3", runs.display()),
            "cpus": 0.1, "mem": 16, "backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 30,
        })))
        .await
        .unwrap();
    let times: Vec<f64> = wait_for("three runs", Duration::from_secs(40), || async {
        let t: Vec<f64> = std::fs::read_to_string(&runs)
            .ok()?
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect();
        (t.len() >= 3).then_some(t)
    })
    .await;
    // The delays are lower bounds (a busy machine only adds to them): at least 1 s, then at
    // least 2 s, the second at least the first plus most of a second.
    let (g1, g2) = (times[1] - times[0], times[2] - times[1]);
    assert!(g1 >= 0.9, "first back-off {g1:.2}s, expected ~1 s");
    assert!(g2 >= 1.9, "second back-off {g2:.2}s, expected ~2 s");
    assert!(
        g1 < 10.0 && g2 < 20.0,
        "back-offs {g1:.2}s, {g2:.2}s: far above 1 s and 2 s"
    );
    let a = bed.marathon.get_app(&id).await.unwrap();
    let failure = a.get("lastTaskFailure").expect("lastTaskFailure");
    assert_eq!(failure["state"], "TASK_FAILED");
    assert_eq!(failure["message"], "Command exited with status 3");
    bed.testbed.stop().await;
}

#[tokio::test]
async fn force_cancels_a_running_deployment() {
    let bed = start(small()).await;
    let id = format!("/{}", unique("force-"));
    bed.marathon
        .create_app(&app(json!({
            "id": id, "cmd": "trap '' TERM; while :; do sleep 0.05; done", "cpus": 0.2, "mem": 16,
            "taskKillGracePeriodSeconds": 3,
            "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
        })))
        .await
        .unwrap();
    wait_for("running", Duration::from_secs(10), || async {
        let a = bed.marathon.get_app(&id).await.unwrap();
        (a.tasks_running() == Some(1) && a.deployment_ids().is_empty()).then_some(())
    })
    .await;
    let first = bed.marathon.set_app_cpus(&id, 0.3, false).await.unwrap();
    let second = bed.marathon.set_app_cpus(&id, 0.4, true).await.unwrap();
    assert_ne!(first.deployment_id, second.deployment_id);
    let deps = bed.marathon.deployments().await.unwrap();
    assert!(deps.iter().all(|d| d.id != first.deployment_id));
    let a = wait_for(
        "the forced version runs",
        Duration::from_secs(15),
        || async {
            let a = bed.marathon.get_app(&id).await.unwrap();
            (a.deployment_ids().is_empty() && a.tasks_running() == Some(1)).then_some(a)
        },
    )
    .await;
    assert_eq!(a.cpus(), Some(0.4));
    bed.testbed.stop().await;
}

/// Marathon keeps the newest `zk_max_versions` (50) versions of an app, not every one it had: an
/// app resized every second for a day would otherwise keep 86,400 and answer them all.
#[tokio::test]
async fn an_app_keeps_its_fifty_newest_versions() {
    let bed = start(small()).await;
    let id = format!("/qos/{}", unique("versions-"));
    bed.marathon
        .create_app(&app(
            json!({"id": id, "cmd": "sleep 60", "cpus": 0.1, "mem": 16, "instances": 0}),
        ))
        .await
        .unwrap();
    let mut last = String::new();
    for i in 0..60 {
        let cpus = 0.1 + f64::from(i) / 1000.0;
        let done = bed.marathon.set_app_cpus(&id, cpus, true).await.unwrap();
        last = done.version.expect("a PUT answers its version");
    }
    let url = format!("{}/v2/apps{id}/versions", bed.testbed.urls().marathon);
    let got: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let versions = got["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 50, "{got}");
    assert_eq!(versions[0], json!(last), "newest first");
    let app = bed.marathon.get_app(&id).await.unwrap();
    assert_eq!(app.version(), Some(last.as_str()));
}
