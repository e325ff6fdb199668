//! Shared helpers of the testbed's integration tests: start a testbed in-process, build the
//! `frameworks` clients for it, wait for conditions.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use frameworks::{
    ChronosApiVersion, ChronosClient, ClientConfig, Credentials, MarathonClient, MesosAgentClient,
    RetryPolicy,
};
use testbed::{Config, Testbed};

pub struct Bed {
    pub testbed: Testbed,
    pub marathon: MarathonClient,
    pub chronos: ChronosClient,
    pub chronos_v3: ChronosClient,
    pub agents: Vec<MesosAgentClient>,
}

pub fn client_config() -> ClientConfig {
    ClientConfig {
        timeout: Duration::from_secs(10),
        retry: RetryPolicy::none(),
        ..ClientConfig::default()
    }
}

pub async fn start(config: Config) -> Bed {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let testbed = testbed::serve(config, listener, std::future::pending())
        .await
        .expect("testbed starts");
    let urls = testbed.urls().clone();
    let creds = |u: &str| Credentials::new(u).unwrap();
    Bed {
        marathon: MarathonClient::with_config(&creds(&urls.marathon), client_config()).unwrap(),
        chronos: ChronosClient::with_config(
            &creds(&urls.chronos),
            ChronosApiVersion::V2,
            client_config(),
        )
        .unwrap(),
        chronos_v3: ChronosClient::with_config(
            &creds(&urls.chronos),
            ChronosApiVersion::V3,
            client_config(),
        )
        .unwrap(),
        agents: urls
            .agents
            .iter()
            .map(|u| MesosAgentClient::with_config(&creds(u), client_config()).unwrap())
            .collect(),
        testbed,
    }
}

/// Two agents × 1 CPU, process runtime, short kill grace.
pub fn small() -> Config {
    Config {
        agents: 2,
        cpus_per_agent: 1.0,
        process_kill_grace_secs: 1.0,
        chronos_failure_retry_ms: 300,
        ..Config::default()
    }
}

/// A name nobody else uses (tests run in parallel, also across processes).
pub use testkit::names::unique;

/// Polls `check` every 50 ms until it returns `Some`, or panics after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    testkit::wait::until(what, within, Duration::from_millis(50), || {
        let seen = check();
        async move { seen.await.ok_or("not yet") }
    })
    .await
}

/// Whether real cgroups are used by this testbed; a notice when not (a failure under
/// `QOS_REQUIRE_CGROUPS=1`).
pub fn cgroups(bed: &Bed) -> bool {
    testkit::cgroups_or_skip(
        bed.testbed.cpu_limits_enforced(),
        bed.testbed.cpu_limits_note(),
        "the cgroup checks",
    )
}

/// `<cgroup root>/cpu/<prefix>/<agent>/<task>`.
pub fn task_cpu_cgroup(bed: &Bed, agent: &str, task: &str) -> PathBuf {
    let cfg = bed.testbed.config();
    cfg.cgroup_root
        .join("cpu")
        .join(&cfg.cgroup_prefix)
        .join(agent)
        .join(task)
}

pub fn read_trim(p: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

/// The environment of a file written by `env > file`.
pub fn env_file(p: &std::path::Path) -> Option<Vec<(String, String)>> {
    let text = std::fs::read_to_string(p).ok()?;
    if !text.ends_with('\n') {
        return None;
    }
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    )
}

pub fn env_get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Whether a process exists and is not a zombie.
#[allow(unused_imports)] // not every test binary that includes this module uses it
pub use testkit::procs::alive;
