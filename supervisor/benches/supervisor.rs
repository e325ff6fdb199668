//! Figures, not assertions: control-loop capacity, ingestion over loopback, restart recovery.
//!
//! `cargo bench -p supervisor --bench supervisor` (all three), or pass `control`, `ingest`,
//! `recovery` to run one. Everything runs in this one process on this machine (the load
//! generator shares the cores with the supervisor), against `testkit`'s fake frameworks.
//!
//! Lines starting `FIGURE` (figure, value, anchor measured in the same run or the target, ratio)
//! are read by `scripts/bench`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use qos_core::policy::Policy;
use serde_json::json;
use supervisor::{Clock, Config, Deps, HttpNodeAgent, StoreMode, Supervisor};
use testkit::{FakeChronos, FakeMarathon};
use tower::ServiceExt;

const JOBS: usize = 10_000;

fn cpu_secs() -> f64 {
    testkit::procs::cpu_secs(std::process::id())
}

fn rss_mb() -> f64 {
    testkit::procs::rss_mb(std::process::id())
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

async fn start(
    db: &std::path::Path,
    period: f64,
) -> (Supervisor, Arc<FakeMarathon>, Arc<FakeChronos>) {
    let mut config = Config::for_tests(db, Policy::default());
    config.control.period = period;
    config.control.max_concurrency = 256;
    let marathon = FakeMarathon::new();
    let chronos = FakeChronos::new();
    let deps = Deps {
        marathon: Some(marathon.clone()),
        chronos: Some(chronos.clone()),
        agent: Arc::new(HttpNodeAgent::new(Duration::from_secs(5)).expect("client")),
        clock: Clock::system(),
        store: StoreMode::Thread,
    };
    let sup = Supervisor::start(config, deps).await.expect("start");
    (sup, marathon, chronos)
}

async fn post(router: &axum::Router, path: &str, body: String) -> u16 {
    let req = Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    router
        .clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

fn uuid(i: usize) -> String {
    format!("{i:032x}")
}

/// Registers `JOBS` jobs, half Chronos (20 iterations), half Marathon (started).
async fn populate(router: &axum::Router, marathon: &FakeMarathon, chronos: &FakeChronos) -> f64 {
    let t0 = now_epoch();
    for i in 0..JOBS {
        let u = uuid(i);
        let body = if i % 2 == 0 {
            let name = format!("chronos-{i}");
            chronos.add_job(&name, 1.0, 20);
            json!({"uuid": u, "name": name, "framework": "chronos", "qos": {"duration": 100, "deadline": 3600, "desv_deadline": 0.2}, "iterations": 20, "cpus": 1.0})
        } else {
            let name = format!("marathon-{i}");
            marathon.add_app(&name, 1.0);
            json!({"uuid": u, "name": name, "framework": "marathon", "qos": {"duration": 3000, "deadline": 3600, "desv_deadline": 0.1}, "cpus": 1.0})
        };
        assert_eq!(post(router, "/api/v1/jobs", body.to_string()).await, 201);
        if i % 2 == 1 {
            let s = json!({"uuid": u, "started_at": t0}).to_string();
            assert_eq!(post(router, "/initMarathonApp", s).await, 200);
        }
    }
    t0
}

async fn control() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sup, marathon, chronos) = start(&dir.path().join("c.db"), 1.0).await;
    let router = sup.router();
    let t0 = populate(&router, &marathon, &chronos).await;
    // Samples for every Marathon job each second (the collectors' load), batched by 500.
    let feeder = {
        let router = router.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n = 0.0;
            loop {
                tick.tick().await;
                n += 1.0;
                let at = now_epoch();
                let samples: Vec<_> = (0..JOBS)
                    .filter(|i| i % 2 == 1)
                    .map(|i| json!({"uuid": uuid(i), "container_id": format!("c{i}"), "at": at, "user_secs": n, "system_secs": 0.0, "total_secs": n}))
                    .collect();
                for chunk in samples.chunks(500) {
                    let batch = json!({"node": "node-1", "samples": chunk}).to_string();
                    post(&router, "/api/v1/samples", batch).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (c0, d0, w0) = (cpu_secs(), sup.decisions(), Instant::now());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (c1, d1, w1) = (cpu_secs(), sup.decisions(), Instant::now());
    let wall = (w1 - w0).as_secs_f64();
    println!(
        "control capacity: {JOBS} jobs (5000 Chronos, 5000 Marathon at a 1 s period, 5000 samples/s fed in-process)"
    );
    let decisions = (d1 - d0) as f64 / wall;
    let with_feed = 100.0 * (c1 - c0) / wall;
    println!("  decisions/s      {decisions:>10.0}");
    println!("  CPU (one core)   {with_feed:>9.1} %  (supervisor + in-process sample feeder)");
    println!("  RSS              {:>9.1} MB", rss_mb());
    feeder.abort();
    // Without the feeder: the loop alone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, d0, w0) = (cpu_secs(), sup.decisions(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (c1, d1, w1) = (cpu_secs(), sup.decisions(), Instant::now());
    let wall = (w1 - w0).as_secs_f64();
    let alone = 100.0 * (c1 - c0) / wall;
    println!(
        "  loop alone (no ingestion): decisions/s {:.0}, CPU {alone:.1} %",
        (d1 - d0) as f64 / wall,
    );
    println!(
        "FIGURE\tcontrol: {JOBS} jobs at a 1 s period with 5,000 samples/s, CPU of one core\t{with_feed:.1} %\tthe loop alone {alone:.1} %\t{:.2}",
        with_feed / alone.max(0.01)
    );
    println!(
        "FIGURE\tcontrol: decisions per second, {JOBS} jobs\t{decisions:.0}/s\ttarget: every Marathon job each second (5,000/s)\t{:.2}",
        decisions / 5000.0
    );
    let _ = t0;
    sup.stop().await;
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn ingest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sup, marathon, chronos) = start(&dir.path().join("i.db"), 10.0).await;
    let router = sup.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = tokio::spawn(axum::serve(listener, router.clone()).into_future());
    // 1000 Marathon jobs to sample, 1000 Chronos jobs with many iterations to report.
    for i in 0..1000 {
        marathon.add_app(&format!("m-{i}"), 1.0);
        let b = json!({"uuid": uuid(i), "name": format!("m-{i}"), "framework": "marathon", "qos": {"duration": 3000, "deadline": 3600, "desv_deadline": 0.1}, "cpus": 1.0});
        post(&router, "/api/v1/jobs", b.to_string()).await;
        chronos.add_job(&format!("c-{i}"), 1.0, 100_000);
        let b = json!({"uuid": uuid(100_000 + i), "name": format!("c-{i}"), "framework": "chronos", "qos": {"duration": 1, "deadline": 360_000, "desv_deadline": 0.2}, "iterations": 100_000, "cpus": 1.0});
        post(&router, "/api/v1/jobs", b.to_string()).await;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");

    // Batched samples: 100 per batch, 16 concurrent senders, 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut tasks = Vec::new();
    for w in 0..16 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut lat) = (0u64, Vec::new());
            let mut k = 0.0;
            while Instant::now() < deadline {
                k += 1.0;
                let at = now_epoch();
                let samples: Vec<_> = (0..100)
                    .map(|j| {
                        let i = (w * 100 + j) % 1000;
                        json!({"uuid": uuid(i), "container_id": format!("c{w}-{j}"), "at": at, "user_secs": k, "system_secs": 0.0, "total_secs": k})
                    })
                    .collect();
                let t = Instant::now();
                let r = client.post(format!("{url}/api/v1/samples")).json(&json!({"node": format!("n{w}"), "samples": samples})).send().await;
                if r.is_ok_and(|r| r.status().as_u16() == 202) {
                    n += 100;
                    lat.push(t.elapsed().as_secs_f64());
                }
            }
            (n, lat)
        }));
    }
    let (mut total, mut lat) = (0u64, Vec::new());
    for t in tasks {
        let (n, l) = t.await.expect("sender");
        total += n;
        lat.extend(l);
    }
    println!("ingestion over loopback (client and server in this process, 2 cores):");
    let rate = total as f64 / 10.0;
    println!(
        "  samples (batches of 100, 16 senders): {rate:>8.0} samples/s, batch p99 {:.2} ms",
        1000.0 * percentile(&mut lat, 0.99)
    );
    println!(
        "FIGURE\tingestion: CPU samples per second over loopback (batches of 100, 16 senders)\t{rate:.0}/s\ttarget 20,000/s\t{:.2}",
        rate / 20_000.0
    );

    // /updateTask at a fixed 1000 reports/s for 10 s: latency.
    let mut lat = Vec::new();
    let mut handles = Vec::new();
    let start = Instant::now();
    // The iterations' times lie in the past: the supervisor refuses a client time further
    // ahead of its clock than `limits.clock_skew` (5 s), and accepts one up to
    // `control.held_ttl` (1 h) before the job's submission. Paced: iterations 0–9 of each job;
    // flat out: from iteration 100, two seconds apart (a few hundred per job in 5 s).
    let base = now_epoch() - 3000.0;
    for k in 0..10_000usize {
        let due = start + Duration::from_micros(1000 * k as u64);
        tokio::time::sleep_until(due.into()).await;
        let (client, url) = (client.clone(), url.clone());
        let i = k % 1000;
        let it = (k / 1000) as f64;
        let body = json!({"name": format!("c-{i}"), "finished_at": format!("{}", base + it * 2.0 + 1.0), "started_at": format!("{}", base + it * 2.0), "hostname": "agent1", "uuid": uuid(100_000 + i)}).to_string();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            let ok = client
                .post(format!("{url}/updateTask"))
                .body(body)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            (ok, t.elapsed().as_secs_f64())
        }));
    }
    let mut ok = 0;
    for h in handles {
        let (o, l) = h.await.expect("report");
        ok += usize::from(o);
        lat.push(l);
    }
    let took = start.elapsed().as_secs_f64();
    let (p50, p99) = (
        1000.0 * percentile(&mut lat.clone(), 0.5),
        1000.0 * percentile(&mut lat, 0.99),
    );
    println!(
        "  /updateTask at 1000 reports/s: {ok}/10000 ok in {took:.1} s, p50 {p50:.2} ms, p99 {p99:.2} ms"
    );
    let refused = if ok < 10_000 {
        format!(" ({} of 10000 not acknowledged)", 10_000 - ok)
    } else {
        String::new()
    };
    println!(
        "FIGURE\tingestion: /updateTask at 1,000 reports/s, p99 (each durable before its answer){refused}\t{p99:.2} ms\tp50 {p50:.2} ms; target p99 10 ms\t{:.2}",
        p99 / 10.0
    );

    // /updateTask flat out: 32 concurrent reporters, 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tasks = Vec::new();
    for w in 0..32usize {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let (mut n, mut failed, mut lat) = (0u64, 0u64, Vec::new());
            let mut it = 100.0;
            while Instant::now() < deadline {
                for j in 0..31usize {
                    let i = w * 31 + j;
                    let body = json!({"name": format!("c-{i}"), "finished_at": format!("{}", base + it * 2.0 + 1.0), "started_at": format!("{}", base + it * 2.0), "hostname": "agent1", "uuid": uuid(100_000 + i)}).to_string();
                    let t = Instant::now();
                    if client.post(format!("{url}/updateTask")).body(body).send().await.is_ok_and(|r| r.status().is_success()) {
                        n += 1;
                        lat.push(t.elapsed().as_secs_f64());
                    } else {
                        failed += 1;
                    }
                }
                it += 1.0;
            }
            (n, failed, lat)
        }));
    }
    let (mut total, mut failed, mut lat) = (0u64, 0u64, Vec::new());
    for t in tasks {
        let (n, f, l) = t.await.expect("reporter");
        total += n;
        failed += f;
        lat.extend(l);
    }
    let flat = total as f64 / 5.0;
    let refused = if failed > 0 {
        format!(" ({failed} not acknowledged)")
    } else {
        String::new()
    };
    println!(
        "  /updateTask flat out (32 reporters): {flat:>8.0} reports/s, p99 {:.2} ms{refused}",
        1000.0 * percentile(&mut lat, 0.99)
    );
    println!(
        "FIGURE\tingestion: /updateTask flat out, 32 reporters{refused}\t{flat:.0}/s\tthe paced run's 1,000/s\t{:.2}",
        flat / 1000.0
    );
    server.abort();
    sup.stop().await;
}

async fn recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("r.db");
    let populated = {
        let (sup, marathon, chronos) = start(&db, 10.0).await;
        let router = sup.router();
        let t = Instant::now();
        populate(&router, &marathon, &chronos).await;
        let took = t.elapsed();
        sup.flush().await.expect("flush");
        sup.stop().await;
        took
    };
    let size = std::fs::metadata(&db).map_or(0, |m| m.len())
        + std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    let t = Instant::now();
    let (sup, _, _) = start(&db, 10.0).await;
    let loaded = t.elapsed();
    while sup.decisions() < JOBS as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let controlled = t.elapsed();
    println!(
        "restart recovery: {} jobs in the database ({:.1} MB)",
        sup.job_count(),
        size as f64 / 1e6
    );
    println!(
        "  start → loaded and serving       {:>8.0} ms",
        loaded.as_secs_f64() * 1000.0
    );
    println!(
        "  start → every job reconciled     {:>8.0} ms",
        controlled.as_secs_f64() * 1000.0
    );
    println!(
        "FIGURE\trecovery: restart with {JOBS} jobs in the database → every job reconciled\t{:.0} ms\tregistering them through the API {:.0} ms\t{:.3}",
        controlled.as_secs_f64() * 1000.0,
        populated.as_secs_f64() * 1000.0,
        controlled.as_secs_f64() / populated.as_secs_f64()
    );
    sup.stop().await;
}

fn main() {
    let which: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if run("recovery") {
        rt.block_on(recovery());
    }
    if run("ingest") {
        rt.block_on(ingest());
    }
    if run("control") {
        rt.block_on(control());
    }
}
