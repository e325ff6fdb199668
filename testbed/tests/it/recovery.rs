//! Recovery after a crash: a testbed killed with `kill -9` leaves its tasks running (re-parented
//! to init) with their cgroups; the next testbed started on the same state directory and cgroup
//! prefix kills them and removes their cgroups and metadata before it serves, as a Mesos agent
//! restarted with `--recover=cleanup` does. Real binaries, real processes, real cgroups.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;
use frameworks::{Credentials, MarathonApp, MarathonClient};
use serde_json::{Value, json};

/// `testbed serve` on a free port, on the state under `dir`; returns it and its URLs.
fn serve(dir: &Path, prefix: &str, tag: &str) -> (testkit::services::Proc, Value) {
    testkit::services::testbed(
        Path::new(env!("CARGO_BIN_EXE_testbed")),
        dir,
        prefix,
        "127.0.0.1:0",
        tag,
    )
}

async fn agent_state(urls: &Value) -> Value {
    let url = format!("{}/state", urls["agents"][0].as_str().unwrap());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_testbed_kills_what_a_killed_one_left() {
    if !nix::unistd::Uid::effective().is_root() {
        assert!(
            std::env::var("QOS_REQUIRE_CGROUPS").as_deref() != Ok("1"),
            "recovery needs root (cgroups) and QOS_REQUIRE_CGROUPS=1"
        );
        eprintln!("SKIPPED: recovery of cgroups and tasks needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("qos-recovery-");
    // A failed run leaves nothing running: what is left under the prefix is killed and removed.
    let mut leftovers = testkit::procs::Leftovers::new(
        &prefix,
        vec![dir.path().join("first.log"), dir.path().join("second.log")],
    );
    let (mut first, urls) = serve(dir.path(), &prefix, "first");
    let marathon = MarathonClient::with_config(
        &Credentials::new(urls["marathon"].as_str().unwrap()).unwrap(),
        client_config(),
    )
    .unwrap();
    let id = format!("/{}", unique("orphan-"));
    // A task with a child that ignores SIGTERM, as a real job's helper might.
    marathon
        .create_app(
            &MarathonApp::try_from(json!({"id": id, "cpus": 0.2, "mem": 16,
                "cmd": "(trap '' TERM; exec sleep 300) & exec sleep 300"}))
            .unwrap(),
        )
        .await
        .unwrap();
    let chronos = frameworks::ChronosClient::with_config(
        &Credentials::new(urls["chronos"].as_str().unwrap()).unwrap(),
        frameworks::ChronosApiVersion::V3,
        client_config(),
    )
    .unwrap();
    let job = unique("orphan-");
    chronos
        .add_scheduled_job(
            &frameworks::ChronosJob::try_from(json!({"name": job, "schedule": "R1//PT1S",
                "cpus": 0.2, "command": "sleep 300"}))
            .unwrap(),
        )
        .await
        .unwrap();
    // Both running, each in its cgroup, with the processes of each. Only a RUNNING task's
    // `container` names its cgroup: a STAGING one has none yet (an empty string, which joined to
    // the hierarchy's root would list every process of the machine, and a STAGING task's
    // process may not have been started when the testbed dies).
    let cpu = PathBuf::from("/sys/fs/cgroup/cpu");
    let ours = cpu.join(&prefix);
    let (cgroups, pids) = wait_for("two running tasks", Duration::from_secs(20), || async {
        let state = agent_state(&urls).await;
        let executors: Vec<Value> = state["frameworks"]
            .as_array()?
            .iter()
            .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
            .collect();
        let mut cgroups = Vec::new();
        let mut pids = Vec::new();
        for e in &executors {
            if e["tasks"][0]["state"] != "TASK_RUNNING" {
                return None;
            }
            let cg = cpu.join(e["container"].as_str().filter(|c| !c.is_empty())?);
            assert!(
                cg.starts_with(&ours),
                "{} is not the testbed's",
                cg.display()
            );
            let p = testkit::procs::in_cgroup(&cg);
            // The app's shell and its TERM-ignoring child; the job's shell (and its `sleep`
            // when the shell does not exec its last command).
            let chronos = e["id"].as_str().is_some_and(|i| i.starts_with("ct:"));
            if p.len() < if chronos { 1 } else { 2 } {
                return None;
            }
            cgroups.push(cg);
            pids.extend(p);
        }
        (cgroups.len() == 2).then_some((cgroups, pids))
    })
    .await;
    leftovers.pids.clone_from(&pids);
    let meta: Vec<PathBuf> = std::fs::read_dir(dir.path().join("meta"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(meta.len(), 1, "one agent's metadata");

    // kill -9: nothing of the testbed runs its shutdown.
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    // Still there once the testbed is reaped; that they are still there when the next testbed
    // looks is shown by its list of what it killed (read from the cgroups before killing).
    for p in &pids {
        assert!(alive(*p), "{p} died with the testbed: nothing to recover");
    }
    assert!(cgroups.iter().all(|c| c.exists()));

    // The next testbed on the same state directory and prefix.
    let (mut second, urls2) = serve(dir.path(), &prefix, "second");
    // Killed processes are reaped by init: wait for that, not for the testbed.
    wait_for("the orphans gone", Duration::from_secs(10), || async {
        pids.iter().all(|p| !alive(*p)).then_some(())
    })
    .await;
    for c in &cgroups {
        assert!(!c.exists(), "{} is left", c.display());
    }
    for m in &meta {
        assert!(!m.exists(), "{} is left", m.display());
    }
    let state = agent_state(&urls2).await;
    let recovered = &state["qos_testbed"]["recovered"];
    assert_eq!(recovered.as_array().map(Vec::len), Some(1), "{state:#}");
    let killed: Vec<u64> = recovered[0]["killed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    for p in &pids {
        assert!(killed.contains(&u64::from(*p)), "{p} not in {recovered}");
    }
    assert_eq!(
        recovered[0]["cgroups_removed"], 3,
        "two tasks and the agent: {recovered}"
    );
    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(log.contains("recovered from a testbed that died"), "{log}");
    // Only the live testbed's record is left; a clean stop removes it too.
    let records = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        records(&dir.path().join("state")).len(),
        2,
        "its .lock and .json"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(second.0.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    second.0.wait().unwrap();
    assert_eq!(records(&dir.path().join("state")), Vec::<String>::new());
}
