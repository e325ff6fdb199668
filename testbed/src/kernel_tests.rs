//! Tests of the agents and the process runtime against the real kernel (cgroups need root; they
//! are skipped with a notice otherwise).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::cgroups::CgroupLayout;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::task::{Resources, TaskCommand, TaskSpec, TaskState, TaskUpdate};

fn test_config() -> Config {
    Config {
        agents: 2,
        cpus_per_agent: 1.0,
        process_kill_grace_secs: 1.0,
        ..Config::default()
    }
}

fn have_cgroups() -> bool {
    let cfg = Config::default();
    match CgroupLayout::detect(&cfg.cgroup_root, &cfg.cgroup_prefix) {
        Ok(_) => true,
        Err(e) => {
            assert!(
                std::env::var("QOS_REQUIRE_CGROUPS").as_deref() != Ok("1"),
                "no usable cgroups ({e}) and QOS_REQUIRE_CGROUPS=1"
            );
            eprintln!("NOTICE: skipping a real-cgroup test: {e}");
            false
        }
    }
}

fn spec(id: &str, cmd: &str, cpus: f64) -> TaskSpec {
    let id_owned = id.to_owned();
    TaskSpec {
        task_id: id.to_owned(),
        framework_id: "test-framework".to_owned(),
        command: TaskCommand::Shell(cmd.to_owned()),
        resources: Resources {
            cpus,
            mem: 32.0,
            disk: 0.0,
        },
        ports: 1,
        env: Box::new(move |offer| {
            vec![
                ("MESOS_TASK_ID".to_owned(), id_owned),
                ("HOST".to_owned(), offer.host.clone()),
                ("PORT0".to_owned(), offer.ports[0].to_string()),
            ]
        }),
        container: None,
        kill_grace: None,
        uuid: None,
        labels: Vec::new(),
    }
}

/// The task's `TASK_RUNNING` update, within 10 s.
async fn running(rx: &mut mpsc::UnboundedReceiver<TaskUpdate>, id: &str) -> TaskUpdate {
    wait_for(rx, id, TaskState::Running, Duration::from_secs(10)).await
}

async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<TaskUpdate>,
    id: &str,
    state: TaskState,
    within: Duration,
) -> TaskUpdate {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let u = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{id} did not reach {state:?} within {within:?}"))
            .expect("channel open");
        if u.task_id == id && u.state == state {
            return u;
        }
        assert!(
            !(u.task_id == id && u.state.is_terminal()),
            "{id} ended as {:?} ({}) while waiting for {state:?}",
            u.state,
            u.message
        );
    }
}

fn unique(name: &str) -> String {
    format!("{name}.{}", crate::formats::uuid_v4())
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn quota_equals_requested_cpus_and_cleanup_removes_everything() {
    if !have_cgroups() {
        return;
    }
    let cluster = Cluster::start(test_config()).await.unwrap();
    assert!(cluster.limits_enforced());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = unique("quota");
    cluster.launch(spec(&id, "sleep 60", 0.5), tx);
    running(&mut rx, &id).await;
    let rel = cluster.task_cgroup(&id).expect("task cgroup");
    let agent_rel = rel.parent().unwrap().to_owned();
    let root = PathBuf::from("/sys/fs/cgroup");
    assert_eq!(
        read(&root.join("cpu").join(&rel).join("cpu.cfs_quota_us")),
        "50000"
    );
    assert_eq!(
        read(&root.join("cpu").join(&rel).join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(
        read(&root.join("cpu").join(&agent_rel).join("cpu.cfs_quota_us")),
        "100000"
    );
    // The Mesos agent's weights: 1024 per CPU.
    assert_eq!(read(&root.join("cpu").join(&rel).join("cpu.shares")), "512");
    assert_eq!(
        read(&root.join("cpu").join(&agent_rel).join("cpu.shares")),
        "1024"
    );
    let pid = cluster.task_pid(&id).unwrap();
    // The command itself (not a wrapper) is in every hierarchy.
    for h in ["cpu", "cpuacct", "memory", "unified"] {
        let procs = read(&root.join(h).join(&rel).join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "{h}: {procs:?} lacks {pid}"
        );
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    // `/bin/sh -c 'sleep 60'` (dash then execs the single command itself).
    assert!(
        cmdline == b"/bin/sh\0-c\0sleep 60\0" || cmdline == b"sleep\x0060\x00",
        "{:?}",
        String::from_utf8_lossy(&cmdline)
    );
    // Statistics in the Mesos shape.
    let agent = cluster
        .agents
        .iter()
        .position(|a| agent_rel.ends_with(&a.id))
        .unwrap();
    let stats = cluster.statistics(agent);
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].executor_id, id);
    assert_eq!(stats[0].source, id);
    assert_eq!(stats[0].statistics.cpus_limit, Some(0.5));
    assert!(stats[0].statistics.cpus_nr_periods.is_some());
    // The collector's metadata file.
    let meta = cluster
        .cfg
        .meta_dir
        .join(&cluster.agents[agent].id)
        .join(&id)
        .join("qos.json");
    assert!(meta.is_file());
    cluster.shutdown().await;
    assert!(!root.join("cpu").join(&rel).exists());
    assert!(!root.join("cpu").join(&agent_rel).exists());
    assert!(!root.join("unified").join(&agent_rel).exists());
    assert!(!meta.exists());
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "task process left behind"
    );
}

#[tokio::test]
async fn busy_task_under_half_a_cpu_gets_half_the_wall_time() {
    if !have_cgroups() {
        return;
    }
    let cluster = Cluster::start(test_config()).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = unique("busy");
    cluster.launch(spec(&id, "while :; do :; done", 0.5), tx);
    let up = running(&mut rx, &id).await;
    let agent = cluster
        .agents
        .iter()
        .position(|a| a.id == up.placement.agent_id)
        .unwrap();
    let cpu = |c: &Cluster| {
        let s = &c.statistics(agent)[0].statistics;
        (
            s.timestamp,
            s.cpu_time_secs().unwrap(),
            s.cpus_nr_throttled.unwrap_or(0),
        )
    };
    // The kernel's own count, read just before and just after the testbed reads it.
    let rel = cluster.task_cgroup(&id).expect("task cgroup");
    let stat = ["cpu", ""]
        .iter()
        .map(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join(&rel)
                .join("cpu.stat")
        })
        .find(|p| p.exists())
        .expect("the task's cpu.stat (cgroup v1 or v2)");
    let kernel_throttled = || {
        read(&stat)
            .lines()
            .find_map(|l| l.strip_prefix("nr_throttled ")?.trim().parse::<u64>().ok())
            .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (t0, c0, _) = cpu(&cluster);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = kernel_throttled();
    let (t1, c1, throttled) = cpu(&cluster);
    let after = kernel_throttled();
    let share = (c1 - c0) / (t1 - t0);
    // The quota is the bound (what other load on the machine leaves can only lower the share).
    assert!(
        share > 0.02 && share <= 0.6,
        "a busy loop under 0.5 CPU used {share:.3} CPU"
    );
    // Throttling as the kernel counted it. (Whether it throttled at all is the machine's: a loop
    // that shares its CPUs with other work may never reach its 50 ms in a period, even at 45 %.)
    assert!(
        (before..=after).contains(&throttled),
        "cpus_nr_throttled {throttled} at {share:.3} CPU, the kernel's {before} then {after}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn sigterm_first_then_sigkill_after_the_grace_period() {
    let cluster = Cluster::start(test_config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("term");
    let ready = dir.path().join("ready");
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Ignores SIGTERM (records it) and keeps running: must be SIGKILLed after the grace.
    let stubborn = unique("stubborn");
    let cmd = format!(
        "trap 'echo got-term > {}' TERM; touch {}; while :; do sleep 0.05; done",
        marker.display(),
        ready.display()
    );
    cluster.launch(spec(&stubborn, &cmd, 0.2), tx.clone());
    running(&mut rx, &stubborn).await;
    // The trap is in place once the shell has gone past it.
    let until = Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(Instant::now() < until, "the task never got past its trap");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = cluster.task_pid(&stubborn).unwrap();
    let t = Instant::now();
    cluster
        .kill(&stubborn, Some(Duration::from_millis(1500)))
        .await;
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1450) && took < Duration::from_secs(15),
        "killed after {took:?}, grace 1.5 s"
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "got-term");
    let end = wait_for(
        &mut rx,
        &stubborn,
        TaskState::Killed,
        Duration::from_secs(5),
    )
    .await;
    assert!(end.message.contains("terminated"), "{}", end.message);
    assert!(
        !PathBuf::from(format!("/proc/{pid}")).exists(),
        "not reaped"
    );

    // A task that exits on SIGTERM goes at once, whatever the grace.
    let polite = unique("polite");
    cluster.launch(spec(&polite, "sleep 60", 0.2), tx);
    running(&mut rx, &polite).await;
    let t = Instant::now();
    cluster.kill(&polite, Some(Duration::from_secs(20))).await;
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn least_loaded_placement_and_waiting_for_room() {
    let cluster = Cluster::start(Config {
        no_cgroups: true,
        ..test_config()
    })
    .await
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = unique("a");
    let b = unique("b");
    let c = unique("c");
    cluster.launch(spec(&a, "sleep 60", 0.6), tx.clone());
    let ua = running(&mut rx, &a).await;
    cluster.launch(spec(&b, "sleep 60", 0.6), tx.clone());
    let ub = running(&mut rx, &b).await;
    assert_ne!(
        ua.placement.agent_id, ub.placement.agent_id,
        "the second task must go to the idle agent"
    );
    cluster.launch(spec(&c, "exit 3", 0.6), tx);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(cluster.is_known(&c));
    assert!(
        cluster.task_pid(&c).is_none(),
        "c does not fit anywhere yet"
    );
    cluster.kill(&a, None).await;
    let uc = running(&mut rx, &c).await;
    assert_eq!(uc.placement.agent_id, ua.placement.agent_id);
    let end = wait_for(&mut rx, &c, TaskState::Failed, Duration::from_secs(10)).await;
    assert_eq!(end.message, "Command exited with status 3");
    cluster.shutdown().await;
    assert!(!cluster.is_known(&b));
}

#[tokio::test]
async fn without_cgroups_tasks_still_run_and_are_measured() {
    let cluster = Cluster::start(Config {
        no_cgroups: true,
        agents: 1,
        ..test_config()
    })
    .await
    .unwrap();
    assert!(!cluster.limits_enforced());
    assert!(cluster.agent_state(0)["qos_testbed"]["cpu_limits_enforced"] == false);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = unique("plain");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    cluster.launch(
        spec(
            &id,
            &format!(
                "env > {0}.tmp; mv {0}.tmp {0}; exec sleep 60",
                out.display()
            ),
            0.3,
        ),
        tx,
    );
    running(&mut rx, &id).await;
    let until = Instant::now() + Duration::from_secs(10);
    while !out.exists() {
        assert!(Instant::now() < until, "the task wrote no environment");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let env = std::fs::read_to_string(&out).unwrap();
    assert!(env.contains(&format!("MESOS_TASK_ID={id}")), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PORT0=")));
    let stats = cluster.statistics(0);
    assert_eq!(stats.len(), 1);
    assert!(stats[0].statistics.cpus_user_time_secs.is_some());
    assert!(stats[0].statistics.cpus_nr_periods.is_none());
    cluster.shutdown().await;
}
