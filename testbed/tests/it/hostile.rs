//! The `testbed serve` binary under input nobody designed for: an app asking for more instances
//! than any cluster has, bodies that never arrive, changes faster than the clock's millisecond.
//! Each answer is Marathon's, and the testbed's memory follows what it runs, not what it was asked.

use std::process::Command;
use std::time::Duration;

use crate::support::*;
use serde_json::{Value, json};
use testkit::procs::rss_mb;
use testkit::services::{Proc, start_json_line};

/// `testbed serve` with one agent of 1 CPU, no cgroups; returns it and its Marathon base URL.
fn serve(dir: &std::path::Path) -> (Proc, String) {
    let (tb, urls) = start_json_line(
        Command::new(env!("CARGO_BIN_EXE_testbed"))
            .args(["serve", "--listen", "127.0.0.1:0", "--agents", "1"])
            .args([
                "--cpus-per-agent",
                "1",
                "--runtime",
                "process",
                "--no-cgroups",
            ])
            .args(["--header-timeout-secs", "2"])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--meta-dir")
            .arg(dir.join("meta")),
        "testbed",
        &dir.join("testbed.log"),
    );
    let base = urls["marathon"].as_str().unwrap().to_owned();
    (tb, base)
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .timeout(Duration::from_secs(20));
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Polls `check` every 100 ms for up to 60 s until it returns `Ok`; the panic names what was
/// awaited and the last `Err`.
async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    testkit::wait::until(
        what,
        Duration::from_secs(60),
        Duration::from_millis(100),
        check,
    )
    .await
}

/// The app's `(tasksStaged, tasksRunning, tasks listed)` and the queue's count for it.
async fn counts(base: &str, id: &str) -> ((u64, u64, usize), Option<u64>) {
    let (_, a) = call(reqwest::Method::GET, format!("{base}/v2/apps{id}"), None).await;
    let a = &a["app"];
    let (_, q) = call(reqwest::Method::GET, format!("{base}/v2/queue"), None).await;
    let queued = q["queue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["app"]["id"] == id)
        .and_then(|e| e["count"].as_u64());
    (
        (
            a["tasksStaged"].as_u64().unwrap(),
            a["tasksRunning"].as_u64().unwrap(),
            a["tasks"].as_array().unwrap().len(),
        ),
        queued,
    )
}

/// Waits until [`counts`] of app `id` are `want`.
async fn until_counts(what: &str, base: &str, id: &str, want: ((u64, u64, usize), Option<u64>)) {
    until(what, || async {
        let c = counts(base, id).await;
        if c == want {
            Ok(())
        } else {
            Err(format!("{c:?}"))
        }
    })
    .await;
}

/// An app asking for the largest `instances` Marathon reads (2^31 − 1) on a cluster with room
/// for two of its tasks: Marathon queues a count and makes a task only when an offer fits, so
/// two tasks run, `/v2/queue` says how many wait, and the testbed's memory does not grow with
/// the count. Before, the emulator made a task record (and a queued launch) per instance.
/// Scaling down empties the queue; deleting stops the tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_past_the_cluster_are_a_queued_count_not_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (tb, base) = serve(dir.path());
    let pid = tb.0.id();
    let id = format!("/{}", unique("many-"));
    let before = rss_mb(pid);
    let (s, b) = call(
        reqwest::Method::POST,
        format!("{base}/v2/apps"),
        Some(
            json!({"id": id, "cmd": "exec sleep 300", "cpus": 0.5, "mem": 16,
                     "instances": i32::MAX}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let want = ((0, 2, 2), Some(u64::from(i32::MAX.unsigned_abs()) - 2));
    let seen = until("two tasks run, the rest queued", || async {
        let c = counts(&base, &id).await;
        if c == want {
            Ok(c)
        } else {
            Err(format!("{c:?}, RSS {:.1} MB", rss_mb(pid)))
        }
    })
    .await;
    let after = rss_mb(pid);
    eprintln!("instances 2^31-1: {seen:?}; testbed RSS {before:.1} MB before, {after:.1} MB after");
    assert!(
        after - before < 20.0,
        "RSS {before:.1} MB -> {after:.1} MB for two placed tasks"
    );
    // Scaled down to one (forced: the deployment to 2^31 - 1 never ends): one task killed,
    // nothing queued.
    let (s, b) = call(
        reqwest::Method::PUT,
        format!("{base}/v2/apps{id}?force=true"),
        Some(json!({"instances": 1})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    until_counts("scaled to one", &base, &id, ((0, 1, 1), None)).await;
    // Another app's instance waits (a count) while the first holds the room it needs, and runs
    // once the first is deleted and its task gives the room back.
    let other = format!("/{}", unique("waits-"));
    let (s, b) = call(
        reqwest::Method::POST,
        format!("{base}/v2/apps"),
        Some(json!({"id": other, "cmd": "exec sleep 300", "cpus": 0.6, "mem": 16})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    until_counts("the other app queued", &base, &other, ((0, 0, 0), Some(1))).await;
    let (s, b) = call(reqwest::Method::DELETE, format!("{base}/v2/apps{id}"), None).await;
    assert_eq!(s, 200, "{b}");
    until_counts("the other app runs", &base, &other, ((0, 1, 1), None)).await;
    until("app gone", || async {
        let (s, _) = call(reqwest::Method::GET, format!("{base}/v2/apps{id}"), None).await;
        let (_, t) = call(reqwest::Method::GET, format!("{base}/v2/tasks"), None).await;
        let left = t["tasks"]
            .as_array()
            .map(|t| t.iter().filter(|t| t["appId"] == id).count());
        if s == 404 && left == Some(0) {
            Ok(())
        } else {
            Err(format!("GET app {s}, tasks {t}"))
        }
    })
    .await;
}

/// Sends `head` (a request head with its blank line) and `body`, then reads the answer until the
/// server closes; returns the status, the `content-type` and the body.
async fn raw(addr: &str, head: &str, body: &[u8]) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(read.is_ok(), "no answer within 30 s; got {text:?}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

/// A body that never arrives in full (here the first 7 of 100 bytes, due 2 s after its head)
/// and one past the size bound are answered in each server's own error shape: Marathon's
/// `{"message"}`, Chronos 3.x's `{"status", "message"}`. Before, both answered axum's
/// text/plain "Failed to buffer the request body".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_and_oversized_bodies_are_answered_in_the_servers_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (_tb, base) = serve(dir.path());
    let addr = base.trim_start_matches("http://").to_owned();
    let big = vec![b' '; 3 << 20];
    for (path, shape) in [("/v2/apps", "message"), ("/v1/scheduler/iso8601", "status")] {
        let head = |len: usize| {
            format!(
                "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                 content-length: {len}\r\nconnection: close\r\n\r\n"
            )
        };
        let (status, ctype, body) = raw(&addr, &head(100), b"{\"id\": ").await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {status} {ctype} {body:?}: {e}"));
        assert_eq!(status, 400, "{path}: {body}");
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("did not arrive in full")),
            "{path}: {v}"
        );
        assert!(v.get(shape).is_some(), "{path}: {v}");
        let (status, ctype, body) = raw(&addr, &head(big.len()), &big).await;
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: {status} {ctype} {body:?}: {e}"));
        assert_eq!(status, 413, "{path}: {body}");
        assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
        assert!(v.get(shape).is_some(), "{path}: {v}");
    }
}

/// Thirty changes of one app sent at once (many within one millisecond): every version Marathon
/// answers and lists is its own, newest first, each later than the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_within_one_millisecond_get_their_own_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (_tb, base) = serve(dir.path());
    let id = format!("/{}", unique("versions-"));
    let (s, b) = call(
        reqwest::Method::POST,
        format!("{base}/v2/apps"),
        Some(json!({"id": id, "cmd": "sleep 60", "cpus": 0.1, "mem": 16, "instances": 0})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    let puts = (0..30).map(|i| {
        call(
            reqwest::Method::PUT,
            format!("{base}/v2/apps{id}?force=true"),
            Some(json!({"cpus": 0.1 + f64::from(i) / 1000.0})),
        )
    });
    let mut answered: Vec<String> = futures_util::future::join_all(puts)
        .await
        .into_iter()
        .map(|(s, b)| {
            assert_eq!(s, 200, "{b}");
            b["version"].as_str().unwrap().to_owned()
        })
        .collect();
    answered.sort();
    answered.dedup();
    assert_eq!(answered.len(), 30, "{answered:?}");
    let (_, v) = call(
        reqwest::Method::GET,
        format!("{base}/v2/apps{id}/versions"),
        None,
    )
    .await;
    let listed: Vec<&str> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed.len(), 31, "{v}");
    assert!(
        listed.windows(2).all(|w| w[0] > w[1]),
        "newest first, none the same: {listed:?}"
    );
}
