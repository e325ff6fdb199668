//! The agent's HTTP server under hostile clients: connections that never finish a request head
//! and idle keep-alive ones are closed after `--header-timeout`, at most `--max-connections` are
//! open at once, and Prometheus' scrape of `/metrics` is answered throughout.

use std::time::Duration;

use testkit::flood;
use testkit::procs::alive;

use crate::util;

/// 60 stalled connections (half sent part of a request head, half nothing) and an idle
/// keep-alive one against an agent capped at 16 connections with a 1 s header timeout: every
/// one is closed by the agent, its descriptors stay within the cap, and `/metrics` answers while
/// they stall. Before, the agent served with `axum::serve`, which has neither bound: 2 × 12,000
/// idle connections took every descriptor and `/metrics` stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_metrics_still_answers() {
    const MAX: usize = 16;
    let tree = tempfile::tempdir().unwrap();
    util::fixture_v1(tree.path(), "qos-testbed/a1/job", 1, 0, 0, 50_000);
    let agent = util::Agent::start(&[
        "--no-docker",
        "--cgroup-root",
        tree.path().to_str().unwrap(),
        "--max-connections",
        &MAX.to_string(),
        "--header-timeout",
        "1",
    ]);
    let pid = agent.pid();
    let addr = agent.base.trim_start_matches("http://").to_owned();
    assert!(agent.metrics_text().await.contains("node_load1 "));
    // Prometheus' scrape while they stall: answered once the first ones are cut.
    let (seen, scrape) = flood::flood(&addr, "/metrics", 60, (pid, MAX), async {
        reqwest::Client::new()
            .get(&agent.metrics)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map(|r| r.status().as_u16())
    })
    .await;
    assert!(alive(pid));
    assert_eq!(
        scrape.ok(),
        Some(200),
        "GET /metrics while 60 connections stall"
    );
    seen.check();
    assert!(
        agent.log().contains("connection limit reached"),
        "{}",
        agent.log()
    );
    // Two lines for the whole flood: reached, then cleared once a header timeout passed with
    // the limit never full — not one each time it filled again.
    flood::assert_limit_logged_once_a_flood(|| agent.log(), 1).await;
}

/// The two settings are checked before anything starts, the message naming the flag.
#[test]
fn connection_settings_are_validated() {
    let tree = tempfile::tempdir().unwrap();
    util::fixture_v1(tree.path(), "qos-testbed/a1/job", 1, 0, 0, 50_000);
    let root = tree.path().to_str().unwrap();
    for (flag, value) in [("--max-connections", "0"), ("--header-timeout", "0")] {
        let out = std::process::Command::new(util::bin())
            .args([
                "--no-docker",
                "--listen",
                "127.0.0.1:0",
                "--cgroup-root",
                root,
            ])
            .args([flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag.trim_start_matches('-')), "{err}");
    }
}
