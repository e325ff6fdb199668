//! The Chronos emulator driven through `frameworks::ChronosClient` (2.x and 3.x paths), and raw
//! HTTP where a client refuses to send something.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use frameworks::{ChronosJob, FrameworkError};
use serde_json::{Value, json};

fn job(v: Value) -> ChronosJob {
    ChronosJob::try_from(v).unwrap()
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// 3.x takes a run off the count only when it launches it: every repetition runs. (2.5.1 takes
/// them off as it schedules them, up to its horizon ahead: `v2_takes_runs_off_the_count_a_horizon_ahead`.)
#[tokio::test]
async fn repeating_schedule_runs_exactly_n_times_with_chronos_env() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let name = unique("iter-");
    bed.chronos_v3
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R3//PT2S", "owner": "ops@example.com",
            "cpus": "0.5", "mem": "64", "async": "false",
            "command": format!("date +%s.%N >> {d}/runs; env > {d}/env.tmp; mv {d}/env.tmp {d}/env"),
            "environmentVariables": [{"name": "HOST", "value": "evil"}, {"name": "WORK", "value": "1"}],
            "qos": {"duration": 1, "deadline": 60, "desv_deadline": 0.2},
        })))
        .await
        .unwrap();
    let stored = bed.chronos.get_job(&name).await.unwrap();
    assert!(
        stored.get("qos").is_none(),
        "unknown fields are not returned"
    );
    assert_eq!(stored.cpus(), Some(0.5));
    let done = wait_for("three successes", Duration::from_secs(15), || async {
        let j = bed.chronos.get_job(&name).await.ok()?;
        (j.success_count() == Some(3)).then_some(j)
    })
    .await;
    assert!(done.disabled(), "an exhausted job is disabled");
    assert!(
        done.schedule_str().unwrap().starts_with("R0/"),
        "{:?}",
        done.schedule_str()
    );
    assert!(done.last_success().is_some());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        lines(&dir.path().join("runs")).len(),
        3,
        "exactly three runs"
    );
    let env = env_file(&dir.path().join("env")).unwrap();
    assert_eq!(env_get(&env, "CHRONOS_JOB_NAME"), Some(name.as_str()));
    assert_eq!(env_get(&env, "CHRONOS_JOB_OWNER"), Some("ops@example.com"));
    assert_eq!(env_get(&env, "CHRONOS_RESOURCE_CPU"), Some("0.5"));
    assert_eq!(env_get(&env, "CHRONOS_RESOURCE_MEM"), Some("64.0"));
    assert_eq!(
        env_get(&env, "HOST"),
        Some("127.0.0.1"),
        "user env never overrides built-ins"
    );
    assert_eq!(env_get(&env, "WORK"), Some("1"));
    let tid = env_get(&env, "MESOS_TASK_ID").unwrap();
    assert!(
        tid.starts_with("ct:") && tid.ends_with(&format!(":0:{name}:")),
        "{tid}"
    );
    assert_eq!(env_get(&env, "mesos_task_id"), Some(tid));
    bed.testbed.stop().await;
}

#[tokio::test]
async fn manual_start_runs_one_now_and_delete_stops_future_runs() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let later = unique("later-");
    bed.chronos_v3
        .add_scheduled_job(&job(json!({
            "name": later, "schedule": "R/2099-01-01T00:00:00Z/PT1H", "cpus": 0.1,
            "command": format!("echo manual >> {}", runs.display()),
        })))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(lines(&runs).is_empty(), "not due yet");
    bed.chronos.start_job(&later, None).await.unwrap();
    wait_for("the manual run", Duration::from_secs(10), || async {
        (lines(&runs).len() == 1).then_some(())
    })
    .await;
    let j = bed.chronos.get_job(&later).await.unwrap();
    assert_eq!(
        j.schedule_str(),
        Some("R/2099-01-01T00:00:00Z/PT1H"),
        "a manual run leaves the schedule alone"
    );
    let e = bed
        .chronos
        .start_job(&unique("nope-"), None)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");

    let every = unique("every-");
    let ticks = dir.path().join("ticks");
    bed.chronos
        .add_scheduled_job(&job(json!({
            "name": every, "schedule": "R//PT1S", "cpus": 0.1,
            "command": format!("echo tick >> {}", ticks.display()),
        })))
        .await
        .unwrap();
    wait_for("two ticks", Duration::from_secs(10), || async {
        (lines(&ticks).len() >= 2).then_some(())
    })
    .await;
    bed.chronos.delete_job(&every).await.unwrap();
    let at_delete = lines(&ticks).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(lines(&ticks).len(), at_delete, "no run after delete");
    assert!(bed.chronos.find_job(&every).await.unwrap().is_none());
    assert!(
        bed.chronos
            .delete_job(&every)
            .await
            .unwrap_err()
            .is_not_found()
    );
    bed.testbed.stop().await;
}

#[tokio::test]
async fn failures_are_retried_and_counted_once() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let tries = dir.path().join("tries");
    let name = unique("fail-");
    bed.chronos
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R1//PT1H", "retries": 2, "cpus": 0.1,
            "command": format!("echo $CHRONOS_JOB_RUN_ATTEMPT >> {}; exit 1", tries.display()),
        })))
        .await
        .unwrap();
    let j = wait_for("the final failure", Duration::from_secs(15), || async {
        let j = bed.chronos.get_job(&name).await.ok()?;
        (j.error_count() == Some(1)).then_some(j)
    })
    .await;
    assert_eq!(lines(&tries), ["0", "1", "2"]);
    assert_eq!(j.success_count(), Some(0));
    assert!(j.last_error().is_some());
    assert_eq!(j.get("errorsSinceLastSuccess"), Some(&json!(1)));
    bed.testbed.stop().await;
}

#[tokio::test]
async fn runs_of_one_job_never_overlap() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let name = unique("slow-");
    // 3.x: the second run, due while the first runs, is launched once the first has ended
    // (2.5.1 drops it: a_run_due_while_a_v2_job_runs_is_dropped_not_kept).
    bed.chronos_v3
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R2//PT1S", "cpus": 0.1,
            "command": format!("echo start $(date +%s.%N) >> {0}; sleep 2; echo end $(date +%s.%N) >> {0}", log.display()),
        })))
        .await
        .unwrap();
    let l = wait_for("two runs", Duration::from_secs(15), || async {
        let l = lines(&log);
        (l.len() == 4).then_some(l)
    })
    .await;
    let t = |i: usize| {
        l[i].split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        l[0].starts_with("start") && l[1].starts_with("end") && l[2].starts_with("start"),
        "{l:?}"
    );
    assert!(
        t(2) >= t(1),
        "second run started before the first ended: {l:?}"
    );
    bed.testbed.stop().await;
}

#[tokio::test]
async fn search_upsert_validation_and_both_prefixes() {
    let bed = start(small()).await;
    let base = bed.testbed.urls().chronos.clone();
    let prefix = unique("srch-");
    for i in 0..12 {
        bed.chronos
            .add_scheduled_job(&job(json!({
                "name": format!("{prefix}{i:02}"), "schedule": "R/2099-01-01T00:00:00Z/PT1H", "command": "true",
            })))
            .await
            .unwrap();
    }
    // Upsert: same name replaces.
    bed.chronos
        .add_scheduled_job(&job(json!({"name": format!("{prefix}00"), "schedule": "R/2099-01-01T00:00:00Z/PT2H", "command": "false"})))
        .await
        .unwrap();
    let j = bed
        .chronos_v3
        .get_job(&format!("{prefix}00"))
        .await
        .unwrap();
    assert_eq!(j.command(), Some("false"));
    let http = reqwest::Client::new();
    let upper = prefix.to_uppercase();
    for p in ["scheduler", "v1/scheduler"] {
        let r: Vec<Value> = http
            .get(format!("{base}/{p}/jobs/search?name={upper}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r.len(), 10, "case-insensitive substring, default limit 10");
    }
    assert_eq!(
        bed.chronos
            .search_jobs(&prefix, 100, 0)
            .await
            .unwrap()
            .len(),
        12
    );
    assert_eq!(
        bed.chronos
            .search_jobs(&prefix, 100, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let post = |path: &str, body: Value| {
        let http = http.clone();
        let url = format!("{base}/{path}");
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        post(
            "scheduler/iso8601",
            json!({"name": "bad name", "command": "x"})
        )
        .await,
        400
    );
    assert_eq!(
        post(
            "scheduler/iso8601",
            json!({"name": "bad/name", "command": "x"})
        )
        .await,
        400
    );
    assert_eq!(
        post(
            "v1/scheduler/iso8601",
            json!({"name": "ok", "schedule": "every day"})
        )
        .await,
        400
    );
    // Chronos' Jackson reads the body as bytes and skips a UTF-8 byte-order mark.
    let bom = unique("bom-");
    for p in ["scheduler/iso8601", "v1/scheduler/iso8601"] {
        let r = http
            .post(format!("{base}/{p}"))
            .header("content-type", "application/json")
            .body(format!(
                "\u{feff}{}",
                json!({"name": bom, "command": "true", "schedule": "R1/2099-01-01T00:00:00Z/PT1H"})
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 204, "{p}");
    }
    assert!(bed.chronos.find_job(&bom).await.unwrap().is_some());
    let e = bed
        .chronos
        .add_dependent_job(&job(
            json!({"name": unique("child-"), "parents": [unique("ghost-")], "command": "true"}),
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            FrameworkError::Invalid { status: 400, .. } | FrameworkError::NotFound { .. }
        ),
        "{e}"
    );
    let del = http
        .delete(format!("{base}/scheduler/task/kill/{}", unique("ghost-")))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status().as_u16(), 400);
    bed.testbed.stop().await;
}

#[tokio::test]
async fn dependent_job_runs_after_its_parent_succeeds() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let parent = unique("parent-");
    let child = unique("child-");
    bed.chronos
        .add_scheduled_job(&job(
            json!({"name": parent, "schedule": "R/2099-01-01T00:00:00Z/PT1H",
            "command": format!("echo parent >> {}", log.display())}),
        ))
        .await
        .unwrap();
    bed.chronos
        .add_dependent_job(&job(json!({"name": child, "parents": [parent],
            "command": format!("echo child >> {}", log.display())})))
        .await
        .unwrap();
    bed.chronos.start_job(&parent, None).await.unwrap();
    let l = wait_for("parent then child", Duration::from_secs(10), || async {
        let l = lines(&log);
        (l.len() == 2).then_some(l)
    })
    .await;
    assert_eq!(l, ["parent", "child"]);
    bed.testbed.stop().await;
}

/// Starts `name` once now with a command that records its own pid and a child's (which ignores
/// SIGTERM), then waits until both run; returns the pids (`sh`, `sleep`).
async fn running_twice(client: &frameworks::ChronosClient, name: &str, dir: &Path) -> (u32, u32) {
    let (me, child) = (
        dir.join(format!("{name}.pid")),
        dir.join(format!("{name}.child")),
    );
    client
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R1//PT1S", "cpus": 0.1,
            // The child ignores SIGTERM: only the end of the whole task (its process group,
            // its cgroup) stops it.
            "command": format!("(trap '' TERM; exec sleep 300) & echo $! > {c}; echo $$ > {m}; wait", c = child.display(), m = me.display()),
        })))
        .await
        .unwrap();
    wait_for(
        "the task and its child",
        Duration::from_secs(10),
        || async {
            let p = read_trim(&me)?.parse().ok()?;
            let c = read_trim(&child)?.parse().ok()?;
            (alive(p) && alive(c)).then_some((p, c))
        },
    )
    .await
}

/// `DELETE …/task/kill/{name}` kills the running task's whole process tree (and its cgroup goes)
/// but leaves the job; deleting a job kills its running task under 3.x (`deregisterJob` calls
/// `cancelMesosTasks`) and leaves it running under 2.5.1.
#[tokio::test]
async fn kill_stops_the_whole_task_and_only_3x_delete_kills() {
    let bed = start(small()).await;
    let enforced = cgroups(&bed);
    let dir = tempfile::tempdir().unwrap();

    let killed = unique("kill-");
    let (sh, sleep) = running_twice(&bed.chronos, &killed, dir.path()).await;
    bed.chronos.kill_job_tasks(&killed).await.unwrap();
    wait_for(
        "the task's processes gone",
        Duration::from_secs(10),
        || async { (!alive(sh) && !alive(sleep)).then_some(()) },
    )
    .await;
    assert!(
        bed.chronos.find_job(&killed).await.unwrap().is_some(),
        "a kill leaves the job"
    );
    if enforced {
        let cfg = bed.testbed.config();
        let root = cfg.cgroup_root.join("cpu").join(&cfg.cgroup_prefix);
        wait_for(
            "the task's cgroup removed",
            Duration::from_secs(10),
            || async {
                let left: Vec<_> = std::fs::read_dir(&root)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter(|a| a.path().is_dir())
                    .flat_map(|a| std::fs::read_dir(a.path()).into_iter().flatten().flatten())
                    .filter(|t| {
                        t.path().is_dir() && t.file_name().to_string_lossy().contains(&killed)
                    })
                    .collect();
                left.is_empty().then_some(())
            },
        )
        .await;
    }

    let v3 = unique("del3-");
    let (sh, sleep) = running_twice(&bed.chronos_v3, &v3, dir.path()).await;
    bed.chronos_v3.delete_job(&v3).await.unwrap();
    wait_for(
        "3.x: the deleted job's task killed",
        Duration::from_secs(10),
        || async { (!alive(sh) && !alive(sleep)).then_some(()) },
    )
    .await;

    let v2 = unique("del2-");
    let (sh, sleep) = running_twice(&bed.chronos, &v2, dir.path()).await;
    bed.chronos.delete_job(&v2).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        alive(sh) && alive(sleep),
        "2.5.1: the deleted job's run goes on"
    );
    // Only the testbed's stop ends it now.
    bed.testbed.stop().await;
    assert!(!alive(sh) && !alive(sleep));
}

/// An ended task's sandbox is removed `sandbox_gc_delay_secs` after it ended, as a Mesos agent
/// removes it after `--gc_delay`; without it every task that ever ran kept its directory until
/// the testbed stopped (9,026 sandboxes, 37 MB of directories, after 7 minutes of the soak).
#[tokio::test]
async fn sandboxes_of_ended_tasks_are_removed_after_the_gc_delay() {
    let work = tempfile::tempdir().unwrap();
    let bed = start(testbed::Config {
        work_dir: Some(work.path().to_owned()),
        sandbox_gc_delay_secs: 0.0,
        ..small()
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let name = unique("gc-");
    // 3.x, which runs all three (2.5.1 would disable the job after its first run: all three are
    // taken off the count at once).
    bed.chronos_v3
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R3//PT1S", "cpus": 0.1,
            "command": format!("echo run >> {}; echo to-stdout", ran.display()),
        })))
        .await
        .unwrap();
    wait_for("three runs", Duration::from_secs(30), || async {
        let j = bed.chronos.get_job(&name).await.ok()?;
        (j.success_count() == Some(3)).then_some(())
    })
    .await;
    assert_eq!(lines(&ran).len(), 3);
    // Removed before the run's end is told: none is left once the third run counted.
    let left = testkit::sandbox::sandboxes(work.path());
    assert!(
        left.is_empty(),
        "sandboxes left: {:?}",
        left.iter().map(|s| &s.dir).collect::<Vec<_>>()
    );
    bed.testbed.stop().await;
}

/// A run that falls due while its job is still running is dropped by Chronos' offer loop ("The
/// head of the task queue appears to already be running", `generateLaunchableTasks`), not kept
/// for later. The emulator kept every one, so a 2.5.1 job whose runs outlast its period piled up
/// a run per period (285 waiting after 7 minutes of the soak) and ran them long after. Here a
/// 2.5.1 job due every second whose runs take 2.5 s: the runs that happen are due at least two
/// periods apart (the ones in between were dropped), and none starts before the previous ended.
#[tokio::test]
async fn a_run_due_while_a_v2_job_runs_is_dropped_not_kept() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let name = unique("busy-");
    bed.chronos
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R//PT1S", "cpus": 0.1,
            "command": format!(
                "echo start $MESOS_TASK_ID $(date +%s.%N) >> {0}; sleep 2.5; echo end x $(date +%s.%N) >> {0}",
                log.display()),
        })))
        .await
        .unwrap();
    let l = wait_for("three runs ended", Duration::from_secs(30), || async {
        let l = lines(&log);
        (l.iter().filter(|l| l.starts_with("end")).count() >= 3).then_some(l)
    })
    .await;
    bed.chronos.delete_job(&name).await.unwrap();
    // Task id `ct:<due ms>:<attempt>:<name>:`; lines alternate start/end (runs never overlap).
    let due: Vec<i64> = l
        .iter()
        .filter(|l| l.starts_with("start"))
        .map(|l| {
            let id = l.split_whitespace().nth(1).unwrap();
            id.split(':').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    for w in due.windows(2) {
        assert!(
            w[1] - w[0] >= 2000,
            "a run due while the previous ran was kept and run later (dues {due:?}): {l:#?}"
        );
    }
    for (i, pair) in l.chunks(2).enumerate() {
        assert!(
            pair[0].starts_with("start") && pair.get(1).is_none_or(|e| e.starts_with("end")),
            "run {i} overlapped another: {l:#?}"
        );
    }
    bed.testbed.stop().await;
}

/// 2.5.1 takes a run off the count when it schedules it, up to its 60 s horizon ahead
/// (`JobScheduler.scheduleStream` persists the advanced schedule per run taken), and disables the
/// job when a run finishes with the stored count at 0; runs still waiting then expire
/// (`JobExpired`, mesos/chronos#476). So `R3//PT2S` is stored as `R0/…` at once, runs once and
/// is disabled — while 3.x runs it three times (`repeating_schedule_runs_exactly_n_times…`).
#[tokio::test]
async fn v2_takes_runs_off_the_count_a_horizon_ahead() {
    let bed = start(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let name = unique("ahead-");
    bed.chronos
        .add_scheduled_job(&job(json!({
            "name": name, "schedule": "R3//PT2S", "cpus": 0.1,
            "command": format!("echo run >> {}", runs.display()),
        })))
        .await
        .unwrap();
    let stored = bed.chronos.get_job(&name).await.unwrap();
    let s = stored.schedule_str().unwrap().to_owned();
    assert!(s.starts_with("R0/"), "all three taken at once: {s}");
    assert!(!stored.disabled(), "disabled only when a run ends");
    let done = wait_for(
        "the first run's success",
        Duration::from_secs(15),
        || async {
            let j = bed.chronos.get_job(&name).await.ok()?;
            (j.success_count() == Some(1)).then_some(j)
        },
    )
    .await;
    assert!(done.disabled(), "{done:?}");
    // The other two were due 2 and 4 s after the first: they expire, nothing runs.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let j = bed.chronos.get_job(&name).await.unwrap();
    assert_eq!(j.success_count(), Some(1), "{j:?}");
    assert_eq!(lines(&runs).len(), 1);
    bed.testbed.stop().await;
}
