//! The issue's acceptance path: the job runs as a Marathon app on the testbed's Marathon emulator
//! (process runtime, task cgroups bounded by the app's `cpus`), shell-trap is the app's command
//! exactly as the launcher writes it, and the job is resized three times with
//! `frameworks::MarathonApi::set_app_cpus` on the Marathon client — the emulator restarts the task each time
//! (kill first: SIGTERM to the task's process group, the grace period, then the new task with the
//! new `MARATHON_APP_RESOURCE_CPUS`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use frameworks::{
    ClientConfig, Credentials, MarathonApi, MarathonApp, MarathonClient, RetryPolicy,
};
use serde_json::{Value, json};

use crate::util::{
    Supervisor, bin, check_chain, counter, is_root, job_uuid, report_cpu, serial, stats_ms,
};

const TARGET: u64 = 700_000;

/// Every sandbox `stdout`/`stderr` below the testbed's work directory, oldest first.
fn sandbox_files(work: &Path, name: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, name: &str, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, name, out);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(work, name, &mut out);
    out.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.created()).ok());
    out
}

/// The `n`-th start report of `uuid` (0-based), waiting up to a minute.
async fn wait_init(sup: &Supervisor, uuid: &str, n: usize) -> crate::util::Report {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let got = sup
            .of("initMarathonApp")
            .into_iter()
            .filter(|r| r.body["uuid"] == uuid)
            .nth(n);
        if let Some(r) = got {
            return r;
        }
        assert!(
            Instant::now() < until,
            "no start report #{n}: {:?}",
            sup.reports()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the app has no deployment under way.
async fn deployed(marathon: &MarathonClient, app_id: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while !marathon
        .get_app(app_id)
        .await
        .unwrap()
        .deployment_ids()
        .is_empty()
    {
        assert!(Instant::now() < until, "deployment stuck");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[test]
fn testbed_marathon_resizes_restart_the_job_three_times_without_losing_work() {
    let _g = serial();
    let sup = Supervisor::start();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let work = dir.path().join("work");

    // The job alone, for the reference count, digest and CPU.
    let out = Command::new(counter())
        .arg(TARGET.to_string())
        .output()
        .unwrap();
    let base: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let cpu_b = base["cpu_seconds"].as_f64().unwrap();

    let uuid = job_uuid();
    // The launcher's Marathon rewrite (launcher/src/rewrite/marathon.rs) for an args app without
    // an image — with `exec` in front: Marathon runs `cmd` with `/bin/sh -c`, and Debian's dash
    // does not exec the last command, so without `exec` the task's SIGTERM (sent to the whole
    // process group) kills that shell at once, the executor sees the task end, and the cgroup is
    // destroyed while shell-trap is still checkpointing.
    let cmd = [
        "exec".into(),
        quote(bin()),
        "--uuid".into(),
        quote(&uuid),
        "--supervisor".into(),
        quote(&sup.url),
        "--checkpoint-dir".into(),
        quote(&ckpt.display().to_string()),
        "--strategy".into(),
        "app".into(),
        "--runtime".into(),
        "process".into(),
        "--".into(),
        quote(counter()),
        quote(&TARGET.to_string()),
    ]
    .join(" ");
    let app_id = format!("/qos-shell-trap-{}", &uuid[8..16]);
    let app = MarathonApp::try_from(json!({
        "id": app_id, "cmd": cmd, "cpus": 1.0, "mem": 64, "instances": 1,
        "taskKillGracePeriodSeconds": 10, "backoffSeconds": 3600,
        "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
        "labels": {"qos.uuid": uuid},
        "env": {"SHELL_TRAP_GRACE": "8", "SHELL_TRAP_REPORT_TOKEN": format!("token-{uuid}")}
    }))
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let overheads = rt.block_on(async {
        let sup = &sup;
        let config = testbed::Config {
            agents: 1,
            cpus_per_agent: 2.0,
            cgroup_prefix: format!("qos-st-{}", &uuid[8..16]),
            meta_dir: dir.path().join("meta"),
            work_dir: Some(work.clone()),
            no_cgroups: !is_root(),
            ..testbed::Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bed = testbed::serve(config, listener, std::future::pending())
            .await
            .expect("the testbed starts");
        let marathon = MarathonClient::with_config(
            &Credentials::new(&bed.urls().marathon).unwrap(),
            ClientConfig {
                retry: RetryPolicy::none(),
                ..ClientConfig::default()
            },
        )
        .unwrap();
        let scenario = async {
            marathon.create_app(&app).await.unwrap();
            let first = wait_init(sup, &uuid, 0).await;
            assert_eq!(first.body["restored"], false);
            deployed(&marathon, &app_id).await;
            let mut overheads = Vec::new();
            for (n, cpus) in [(1, 0.5), (2, 1.5), (3, 2.0)] {
                tokio::time::sleep(Duration::from_millis(if cpus < 1.0 { 600 } else { 800 })).await;
                assert!(
                    sup.of("endMarathonApp").is_empty(),
                    "the job finished before resize {n}: make it longer"
                );
                let t = Instant::now();
                marathon.set_app_cpus(&app_id, cpus, false).await.unwrap();
                let r = wait_init(sup, &uuid, n).await;
                if r.body["restored"] != true {
                    let logs: Vec<String> = sandbox_files(&work, "stderr")
                        .iter()
                        .chain(sandbox_files(&work, "stdout").iter())
                        .map(|p| {
                            format!(
                                "== {}\n{}",
                                p.display(),
                                std::fs::read_to_string(p).unwrap()
                            )
                        })
                        .collect();
                    panic!("incarnation {} not restored:\n{}", n + 1, logs.join("\n"));
                }
                overheads.push(r.at - t);
                deployed(&marathon, &app_id).await;
            }
            let until = Instant::now() + Duration::from_secs(180);
            while sup.of("endMarathonApp").is_empty() {
                assert!(Instant::now() < until, "the job did not finish");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            overheads
        };
        // Stop the testbed (its tasks, cgroups) whatever happened.
        let r = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario)).await;
        let _ = marathon.delete_app(&app_id, true).await;
        bed.stop().await;
        r.unwrap_or_else(|p| std::panic::resume_unwind(p))
    });
    drop(rt);

    let end = sup.of("endMarathonApp");
    assert_eq!(end.len(), 1, "{end:?}");
    assert_eq!(end[0].body["exit_code"], 0.0);
    assert_eq!(
        end[0].auth.as_deref(),
        Some(format!("Bearer token-{uuid}").as_str())
    );
    let flags: Vec<bool> = sup
        .of("initMarathonApp")
        .iter()
        .map(|r| r.body["restored"].as_bool().unwrap())
        .collect();
    assert_eq!(flags, [false, true, true, true]);

    // The four task sandboxes: the job resumed three times and finished exactly.
    let outs: Vec<String> = sandbox_files(&work, "stdout")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|s| s.contains("qos-counter:"))
        .collect();
    assert_eq!(outs.len(), 4, "{outs:#?}");
    assert_eq!(
        outs.iter().filter(|s| s.contains("resumed at")).count(),
        3,
        "{outs:#?}"
    );
    let done: Value = outs
        .iter()
        .flat_map(|s| s.lines())
        .find(|l| l.starts_with("{\"status\":\"done\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("a final line");
    assert_eq!(done["count"], TARGET);
    assert_eq!(done["digest"], base["digest"]);
    assert_eq!(done["incarnations"], 4);
    // Marathon's new cpus reached shell-trap through MARATHON_APP_RESOURCE_CPUS.
    let errs: String = sandbox_files(&work, "stderr")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for c in ["CPUs 1,", "CPUs 0.5,", "CPUs 1.5,", "CPUs 2,"] {
        assert!(errs.contains(c), "{c} not in\n{errs}");
    }
    assert!(
        errs.contains("grace 8.0 s"),
        "SHELL_TRAP_GRACE from the app env"
    );
    check_chain(&outs, TARGET);
    report_cpu(
        "TESTBED JOB CPU (the counter's own)",
        cpu_b,
        done["cpu_seconds"].as_f64().unwrap(),
    );
    eprintln!(
        "RESIZE → RESTORED INCARNATION REPORTED (testbed Marathon, kill first; min / median / \
         max of 3): {}",
        stats_ms(&overheads)
    );
    assert!(!ckpt.join(&uuid).exists(), "checkpoints left after the end");
}
