//! The jobs users really have, for real: `burn` — a plain CPU-bound program on two threads that
//! reports nothing and cannot checkpoint — submitted with the launcher (`--strategy none`) to
//! the real testbed, supervisor and collector, as processes, filed far too small for its
//! deadline. Under the predictive policy it must meet a deadline that needs a grow, never end
//! later than leaving it at its filed size would, and show the work it lost (if any) exactly:
//!
//! 1. **restart mode, no node agents**: a resize restarts the task from scratch — taken only
//!    when it pays, the CPU-seconds the killed task had burnt are the job's `cpu_seconds_lost`;
//! 2. **restart mode with node agents**: it cannot checkpoint, so it is resized in place — no
//!    restart, nothing lost;
//! 3. **in-place mode**, with a Chronos job of the same program beside it (its runs reported by
//!    the launcher's wrapper).
//!
//! Needs root (the testbed's cgroups); skipped with a notice otherwise, a failure under
//! `QOS_REQUIRE_CGROUPS=1`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use demo::binaries::{self, Binaries, BuildOptions};
use demo::harness::{Stack, StackOptions};
use demo::watch::{Fw, Ui};
use serde_json::{Value, json};

/// The Marathon job: 20 CPU-s of work at 0.3 CPU is 67 s, its deadline 45 s.
const WORK: f64 = 20.0;
const FILED: f64 = 0.3;
const DEADLINE: f64 = 45.0;
/// The Chronos job: 4 runs of 2 CPU-s, at 0.3 CPU about 27 s of running, deadline 24 s.
const RUN_WORK: f64 = 2.0;
const RUNS: u32 = 4;
const CHRONOS_DEADLINE: f64 = 24.0;
const TOKEN: &str = "plain-job-agent-token-0123456789";

fn bins() -> Binaries {
    // The binaries `cargo test --workspace` has just built next to this test, or a build.
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf();
    let have = binaries::COMPONENTS.iter().all(|c| dir.join(c).is_file());
    let opts = BuildOptions {
        bin_dir: have.then_some(dir),
        no_build: false,
        profile: "dev".into(),
    };
    binaries::locate(&opts, &|line| eprintln!("{line}")).expect("the component binaries")
}

fn supervisor_toml(resize_mode: &str) -> String {
    format!(
        "policy = \"predictive\"\n\
         resize_mode = \"{resize_mode}\"\n\
         deployment_time = 1.0\n\
         [predictive]\n\
         deployment_time = 1.0\n\
         restart_cost = 3.0\n\
         safety_secs = 3.0\n\
         cooldown = 10.0\n\
         stale_after = 15.0\n\
         [control]\n\
         period = 1.0\n\
         history_hold_interval = 2.0\n\
         stuck_deployment_timeout = 30.0\n\
         backoff_max = 3.0\n"
    )
}

async fn get(url: &str) -> Value {
    reqwest::get(url)
        .await
        .expect("the supervisor answers")
        .json()
        .await
        .expect("JSON")
}

/// Waits (polling every 250 ms, up to `limit`) until the job is cleaned up; its view.
async fn finished(sup: &str, uuid: &str, limit: Duration) -> Value {
    let until = Instant::now() + limit;
    loop {
        let v = get(&format!("{sup}/api/v1/jobs/{uuid}")).await;
        if v["cleaned_up"] == true || Instant::now() > until {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Scenario {
    name: &'static str,
    resize_mode: &'static str,
    agents: bool,
    chronos: bool,
}

/// What `burn` printed in each of the job's sandboxes: `(status, cpu_seconds)` per task.
fn burn_lines(work: &Path, id: &str) -> Vec<(String, f64)> {
    testkit::sandbox::sandboxes(work)
        .into_iter()
        .filter(|s| s.dir.to_string_lossy().contains(id))
        .filter_map(|s| {
            let line = s
                .stdout
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v.get("cpu_seconds").is_some())?;
            Some((
                line["status"].as_str().unwrap_or_default().to_owned(),
                line["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
            ))
        })
        .collect()
}

async fn run(sc: &Scenario, bins: &Binaries) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let work: PathBuf = dir.path().join("work");
    let logs = dir.path().join("logs");
    let run_id = format!("plain-{}-{}", sc.name, std::process::id());
    let mut stack = Stack::new(&run_id, "qos-plain", &work, &logs);
    let ui = Ui::new();
    let opts = StackOptions {
        agents: 1,
        cpus_per_agent: 2.0,
        docker: false,
        supervisor_toml: supervisor_toml(sc.resize_mode),
        policy: "predictive".into(),
        agent_token: sc.agents.then(|| TOKEN.to_owned()),
    };
    let started = stack.start(&opts, bins, &ui).await;
    if let Err(e) = started {
        let left = stack.teardown(&ui).await;
        panic!(
            "{}: the stack did not start: {e:#} (left: {left:?})",
            sc.name
        );
    }
    let sup = stack.urls.supervisor.clone();

    let id = format!("plain-{}-{}", sc.name, std::process::id());
    let app = json!({
        "id": format!("/{id}"),
        "cmd": format!("burn --work {WORK} --threads 2"),
        "cpus": FILED,
        "mem": 64,
        "instances": 1,
        "qos": {"duration": WORK, "deadline": DEADLINE, "desv_deadline": 0.1}
    });
    let app_file = dir.path().join("app.json");
    std::fs::write(&app_file, app.to_string()).expect("the job file");
    let submitted = Instant::now();
    let answer = stack
        .submit_with(bins, &app_file, Fw::Marathon, &["--strategy", "none"])
        .expect("the launcher submits the app");
    let uuid = answer["uuid"].as_str().expect("a uuid").to_owned();
    let warnings = answer["warnings"].to_string();
    if sc.resize_mode == "restart" {
        assert!(
            warnings.contains("cannot checkpoint"),
            "{}: the user is told a restart would start it from scratch: {answer}",
            sc.name
        );
    }

    let chronos_uuid = if sc.chronos {
        let name = format!("plain-runs-{}", std::process::id());
        let job = json!({
            "name": name,
            "command": format!("burn --work {RUN_WORK} --threads 2"),
            "schedule": format!("R{RUNS}//PT1S"),
            "owner": "qos@example.com",
            "cpus": FILED,
            "mem": 64,
            "qos": {"duration": RUN_WORK, "deadline": CHRONOS_DEADLINE, "desv_deadline": 0.2}
        });
        let file = dir.path().join("chronos.json");
        std::fs::write(&file, job.to_string()).expect("the job file");
        let a = stack
            .submit_with(bins, &file, Fw::Chronos, &[])
            .expect("the launcher submits the Chronos job");
        a["uuid"].as_str().map(str::to_owned)
    } else {
        None
    };

    let view = finished(&sup, &uuid, Duration::from_secs(150)).await;
    let took = submitted.elapsed().as_secs_f64();
    let history = get(&format!("{sup}/api/v1/jobs/{uuid}/history")).await;
    let chronos_view = match &chronos_uuid {
        Some(u) => Some(finished(&sup, u, Duration::from_secs(60)).await),
        None => None,
    };
    let lines = burn_lines(&stack.sandboxes(), &id);
    let left = stack.teardown(&ui).await;
    let context = format!(
        "{}: job {view:#}\nhistory {history:#}\nburn {lines:?}\nchronos {chronos_view:#?}",
        sc.name
    );
    eprintln!(
        "{}: finished in {took:.1} s (static would take {:.0} s), cpus {} · restarts {} · lost {} CPU-s",
        sc.name,
        WORK / FILED,
        view["cpus"],
        view["restarts"],
        view["cpu_seconds_lost"]
    );
    assert!(left.is_empty(), "{}: left behind {left:?}", sc.name);

    // Met, and never later than leaving it at its filed size would have been.
    assert_eq!(view["state"], "completed", "{context}");
    let phase = &view["phase"];
    assert_eq!(phase["met"], true, "{context}");
    let ran = phase["at"].as_f64().unwrap_or(f64::NAN)
        - view["qos"]["submitted_at"].as_f64().unwrap_or(f64::NAN);
    assert!(
        ran < WORK / FILED,
        "{}: {ran:.1} s ≥ static's {:.0}: {context}",
        sc.name,
        WORK / FILED
    );
    assert!(
        view["cpus"].as_f64().unwrap_or(0.0) > FILED,
        "it was grown: {context}"
    );
    assert_eq!(view["checkpointing"], "unable", "{context}");

    // Lost work is shown as it happened: each restart from scratch threw away what its task had
    // burnt (a task killed before `burn` printed anything had burnt next to nothing).
    let killed: Vec<f64> = lines
        .iter()
        .filter(|(s, _)| s == "terminated")
        .map(|(_, c)| *c)
        .collect();
    let finished: Vec<f64> = lines
        .iter()
        .filter(|(s, _)| s == "completed")
        .map(|(_, c)| *c)
        .collect();
    assert_eq!(finished.len(), 1, "one task did the whole work: {context}");
    let lost = view["cpu_seconds_lost"].as_f64().expect("cpu_seconds_lost");
    let restarts_lost = view["restarts_lost"].as_u64().expect("restarts_lost");
    assert_eq!(
        view["restarts"].as_u64(),
        Some(restarts_lost),
        "it cannot checkpoint: every restart started it from scratch: {context}"
    );
    assert!(killed.len() as u64 <= restarts_lost, "{context}");
    let burnt: f64 = killed.iter().sum();
    assert!(
        (lost - burnt).abs() <= 1.5,
        "{}: the supervisor says {lost:.1} CPU-s were lost, the killed tasks had burnt {burnt:.1}: {context}",
        sc.name
    );
    // What the collector measured in all is the work done plus the work lost.
    let measured = view["cpu_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        (measured - lost - finished[0]).abs() <= 1.5,
        "{}: measured {measured:.1} CPU-s, lost {lost:.1}, the finishing task burnt {:.1}: {context}",
        sc.name,
        finished[0]
    );
    if sc.agents {
        // Node agents can resize it in place: it is never restarted.
        assert_eq!(view["restarts"], 0, "{context}");
        assert_eq!(lost, 0.0, "{context}");
        let resizes: Vec<&Value> = history
            .as_array()
            .expect("history")
            .iter()
            .filter(|r| r["kind"] == "resize")
            .collect();
        assert!(
            !resizes.is_empty() && resizes.iter().all(|r| r["action"]["mode"] == "in-place"),
            "{context}"
        );
    }
    if let Some(c) = chronos_view {
        assert_eq!(c["state"], "completed", "{context}");
        assert_eq!(c["phase"]["met"], true, "{context}");
        // Its runs are tasks of their own: a resize re-posts the job and every run that starts
        // after it (a second of margin for the re-post) runs at the new size — a node agent
        // could reach only the run under way.
        let resizes = c["resize_history"].as_array().cloned().unwrap_or_default();
        let runs = c["reports"].as_array().cloned().unwrap_or_default();
        eprintln!(
            "{}: the Chronos job's runs at {:?} CPU, its resizes to {:?}",
            sc.name,
            runs.iter().map(|r| r["cpus"].clone()).collect::<Vec<_>>(),
            resizes.iter().map(|r| r["to"].clone()).collect::<Vec<_>>()
        );
        for run in &runs {
            let start = run["started_at"].as_f64().unwrap_or(f64::NAN);
            let at = |r: &Value| r["at"].as_f64().unwrap_or(f64::NAN);
            if resizes
                .iter()
                .any(|r| (start - 1.0..=start).contains(&at(r)))
            {
                continue;
            }
            if let Some(r) = resizes.iter().rev().find(|r| at(r) < start - 1.0) {
                assert_eq!(
                    run["cpus"], r["to"],
                    "run {run} after resize {r}: {context}"
                );
            }
        }
    }
}

#[test]
fn a_plain_job_that_cannot_checkpoint_meets_a_deadline_that_needs_a_grow() {
    if !testkit::cgroups_or_skip(
        testkit::is_root(),
        Some("not root"),
        "the plain-job end-to-end test",
    ) {
        return;
    }
    let bins = bins();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    for sc in [
        Scenario {
            name: "restart",
            resize_mode: "restart",
            agents: false,
            chronos: false,
        },
        Scenario {
            name: "restart-agents",
            resize_mode: "restart",
            agents: true,
            chronos: false,
        },
        Scenario {
            name: "in-place",
            resize_mode: "in-place",
            agents: true,
            chronos: true,
        },
    ] {
        rt.block_on(run(&sc, &bins));
    }
}
