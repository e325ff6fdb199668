//! The agent's HTTP server under hostile clients: connections that never finish a request head
//! and idle keep-alive ones are closed after `--header-timeout`, at most `--max-connections` are
//! open at once, and Prometheus' scrape of `/metrics` is answered throughout.

use std::time::Duration;

use testkit::flood;
use testkit::procs::alive;

use crate::util;

/// An agent (no Docker) over a fixture tree of one container in `tree`, with a 1 s header
/// timeout and `more` arguments.
fn one_second_agent(tree: &std::path::Path, more: &[&str]) -> util::Agent {
    util::fixture_v1(tree, "qos-testbed/a1/job", 1, 0, 0, 50_000);
    let root = tree.to_str().unwrap();
    let mut args = vec![
        "--no-docker",
        "--cgroup-root",
        root,
        "--header-timeout",
        "1",
    ];
    args.extend_from_slice(more);
    util::Agent::start(&args)
}

/// 60 stalled connections (half sent part of a request head, half nothing) and an idle
/// keep-alive one against an agent capped at 16 connections with a 1 s header timeout: every
/// one is closed by the agent, its descriptors stay within the cap, and `/metrics` answers while
/// they stall. Before, the agent served with `axum::serve`, which has neither bound: 2 × 12,000
/// idle connections took every descriptor and `/metrics` stopped answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_metrics_still_answers() {
    const MAX: usize = 16;
    let tree = tempfile::tempdir().unwrap();
    let agent = one_second_agent(tree.path(), &["--max-connections", &MAX.to_string()]);
    let pid = agent.pid();
    let addr = agent.base.trim_start_matches("http://").to_owned();
    assert!(agent.metrics_text().await.contains("node_load1 "));
    // Prometheus' scrape while they stall: answered once the first ones are cut.
    let (seen, scrape) = flood::flood(&addr, "/metrics", 60, (pid, MAX)).await;
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

/// Sends `head` and `body_part` on a new connection to `addr`, then waits (sending nothing more)
/// for the agent's answer and the end of the connection, at most `limit`. `Err`: what was read
/// when the limit passed.
async fn stall_body(
    addr: &str,
    head: &str,
    body_part: &[u8],
    limit: Duration,
) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body_part).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    match read {
        Ok(_) => Ok(text),
        Err(_) => Err(text),
    }
}

/// A request whose body never arrives in full — a Content-Length never reached, a chunked body
/// without its end — is answered, naming the body, and its connection closed, once the header
/// timeout has passed after its head (without the token, answered 401 then). Before, the body was
/// awaited for ever: each such connection held its place (and what was buffered) until the client
/// left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_ends_is_cut_after_the_header_timeout() {
    let tree = tempfile::tempdir().unwrap();
    let agent = one_second_agent(tree.path(), &["--resize-token", "t0ken-0123456789"]);
    let addr = agent.base.trim_start_matches("http://").to_owned();
    let cases: [(&str, &[u8]); 2] = [
        (
            "POST /resize HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t0ken-0123456789\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n",
            b"{\"uuid\": \"",
        ),
        (
            "POST /resize HTTP/1.1\r\nhost: x\r\nauthorization: Bearer t0ken-0123456789\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
            b"4\r\n{\"uu\r\n",
        ),
    ];
    for (head, part) in cases {
        let answer = stall_body(&addr, head, part, Duration::from_secs(20))
            .await
            .unwrap_or_else(|read| {
                panic!("connection still open 20 s after a 1 s header timeout; read: {read:?}")
            });
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
        assert!(
            answer.contains("request body did not arrive in full"),
            "{answer:?}"
        );
    }
    // Without the token: refused as such, the connection closed all the same.
    let head = "POST /resize HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n";
    let answer = stall_body(&addr, head, b"{", Duration::from_secs(20))
        .await
        .unwrap_or_else(|read| {
            panic!("connection still open 20 s after a 1 s header timeout; read: {read:?}")
        });
    assert!(answer.starts_with("HTTP/1.1 401 "), "{answer:?}");
    assert!(alive(agent.pid()));
}
