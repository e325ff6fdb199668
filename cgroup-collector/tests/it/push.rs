//! Delivery through a supervisor outage: a tiny axum server stands in for the supervisor, is
//! down (nothing listening) for a while, then comes up on the same port. Samples taken during
//! the outage are buffered and delivered in order; none is lost within the bound; none shows
//! negative use even though the container's counters reset meanwhile.

use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::routing::post;
use qos_core::wire::{Heartbeat, NodeRegistration, SampleBatch};

use crate::util;

#[derive(Default)]
struct Seen {
    batches: Vec<SampleBatch>,
    registrations: Vec<NodeRegistration>,
    heartbeats: Vec<(String, Heartbeat)>,
    auth: Vec<Option<String>>,
}

type Shared = Arc<Mutex<Seen>>;

fn auth(h: &HeaderMap) -> Option<String> {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn supervisor(seen: Shared) -> Router {
    Router::new()
        .route(
            "/api/v1/samples",
            post(|State(s): State<Shared>, h: HeaderMap, axum::Json(b): axum::Json<SampleBatch>| async move {
                let mut s = s.lock().unwrap();
                s.auth.push(auth(&h));
                s.batches.push(b);
                axum::Json(serde_json::json!({"accepted": true}))
            }),
        )
        .route(
            "/api/v1/nodes/register",
            post(|State(s): State<Shared>, axum::Json(b): axum::Json<NodeRegistration>| async move {
                s.lock().unwrap().registrations.push(b);
                "{}"
            }),
        )
        .route(
            "/api/v1/nodes/{id}/heartbeat",
            post(|State(s): State<Shared>, UrlPath(id): UrlPath<String>, axum::Json(b): axum::Json<Heartbeat>| async move {
                s.lock().unwrap().heartbeats.push((id, b));
                "{}"
            }),
        )
        .with_state(seen)
}

fn write_usage(dir: &Path, ns: u64) {
    // In place and fixed-width, as the kernel's files behave: the agent keeps the file open and
    // re-reads it, and never sees a half-written (shorter) number.
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dir.join("cpuacct.usage"))
        .unwrap();
    f.write_all_at(format!("{ns:020}\n").as_bytes(), 0).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_buffered_through_an_outage_are_delivered_in_order_none_negative() {
    let tree = tempfile::tempdir().unwrap();
    let meta = tree.path().join("meta");
    let uuid = util::job_uuid();
    util::fixture_v1(tree.path(), "qos-testbed/a1/t1", 0, 0, 0, 100_000);
    util::fixture_meta(&meta, "a1", "t1", &uuid);
    let acct = tree.path().join("cpuacct/qos-testbed/a1/t1");

    // A port with nothing listening yet: the supervisor is "down".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let started = util::epoch();
    let mut agent = util::Agent::start(&[
        "--no-docker",
        "--cgroup-root",
        tree.path().to_str().unwrap(),
        "--testbed-meta-dir",
        meta.to_str().unwrap(),
        "--supervisor",
        &url,
        "--token",
        "push-token",
        "--node-id",
        "node-it",
        "--period",
        "0.1",
        "--heartbeat",
        "0.3",
        "--backoff-base-ms",
        "100",
        "--backoff-max-ms",
        "400",
        "--buffer-samples",
        "10000",
        "--max-batch",
        "7",
    ]);

    // The container burns CPU meanwhile, and restarts (counter reset) during the outage.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let acct = acct.clone();
        std::thread::spawn(move || {
            let mut ns = 0u64;
            let t0 = Instant::now();
            let mut reset_done = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ns += 20_000_000;
                if !reset_done && t0.elapsed() > Duration::from_millis(1200) {
                    ns = 5_000_000; // restarted
                    reset_done = true;
                }
                write_usage(&acct, ns);
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let outage_end = util::epoch();
    let seen: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(axum::serve(listener, supervisor(Arc::clone(&seen))).into_future());

    // Wait until samples taken after the outage arrive.
    let t0 = Instant::now();
    loop {
        let last = seen
            .lock()
            .unwrap()
            .batches
            .iter()
            .flat_map(|b| &b.samples)
            .map(|s| s.at)
            .fold(0.0, f64::max);
        if last > outage_end + 1.0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "no post-outage samples delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics: String = reqwest::get(&agent.metrics)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(agent.stop(), "agent did not exit cleanly on SIGTERM");
    server.abort();

    let s = seen.lock().unwrap();
    let samples: Vec<_> = s.batches.iter().flat_map(|b| &b.samples).collect();
    assert!(
        s.batches
            .iter()
            .all(|b| b.node == "node-it" && b.samples.len() <= 7)
    );
    assert!(
        s.auth
            .iter()
            .all(|a| a.as_deref() == Some("Bearer push-token")),
        "{:?}",
        s.auth
    );
    let during_outage = samples.iter().filter(|x| x.at < outage_end).count();
    eprintln!(
        "{} samples in {} batches; {during_outage} taken during the {:.1} s outage",
        samples.len(),
        s.batches.len(),
        outage_end - started
    );
    assert!(
        during_outage >= 15,
        "outage samples were buffered and delivered: {during_outage}"
    );
    // Nothing lost: every pass since the first is there, in order, without gaps or duplicates.
    assert!(
        samples[0].at - started < 1.0,
        "first sample {} vs start {started}",
        samples[0].at
    );
    for w in samples.windows(2) {
        assert!(
            w[1].at > w[0].at,
            "out of order or duplicated: {} then {}",
            w[0].at,
            w[1].at
        );
        assert!(w[1].at - w[0].at < 0.5, "gap: {} then {}", w[0].at, w[1].at);
        // Never negative use, across the counter reset too.
        assert!(
            w[1].total_secs >= w[0].total_secs,
            "negative: {} then {}",
            w[0].total_secs,
            w[1].total_secs
        );
    }
    assert!(
        samples
            .iter()
            .all(|x| x.uuid.as_deref() == Some(uuid.as_str()) && x.container_id == "t1")
    );
    assert!(
        metrics.contains("qos_collector_samples_dropped_total 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("qos_collector_counter_resets_total 1"),
        "{metrics}"
    );
    // Registration (retried until the supervisor came up), then heartbeats.
    let reg = s
        .registrations
        .first()
        .expect("registered after the outage");
    assert_eq!(
        (reg.id.as_str(), reg.cpus > 0.0, reg.memory_bytes > 0),
        ("node-it", true, true)
    );
    assert!(s.heartbeats.iter().any(|(id, hb)| id == "node-it"
        && hb.free_cpus >= 0.0
        && (hb.allocated_cpus - 1.0).abs() < 1e-9
        && hb.allocated_by_job.len() == 1
        && (hb.allocated_by_job.values().sum::<f64>() - 1.0).abs() < 1e-9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_the_oldest_and_counts_them() {
    let tree = tempfile::tempdir().unwrap();
    let meta = tree.path().join("meta");
    util::fixture_v1(tree.path(), "qos-testbed/a1/t1", 1_000, 0, 0, -1);
    util::fixture_meta(&meta, "a1", "t1", &util::job_uuid());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = util::Agent::start(&[
        "--no-docker",
        "--cgroup-root",
        tree.path().to_str().unwrap(),
        "--testbed-meta-dir",
        meta.to_str().unwrap(),
        "--supervisor",
        &format!("http://127.0.0.1:{port}"),
        "--period",
        "0.05",
        "--backoff-base-ms",
        "50",
        "--backoff-max-ms",
        "100",
        "--buffer-samples",
        "5",
    ]);
    let t0 = Instant::now();
    loop {
        let text: String = reqwest::get(&agent.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let get = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0.0)
        };
        if get("qos_collector_samples_dropped_total ") >= 3.0 {
            assert_eq!(get("qos_collector_samples_buffered "), 5.0, "{text}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "nothing dropped: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
