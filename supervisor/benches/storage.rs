//! Figures, not assertions: sustained `/updateTask` reports from 50 concurrent reporters against
//! the real supervisor binary, for minutes — the WAL's size over time, the database's growth per
//! report, p50/p99 latency and the supervisor's own CPU per acknowledged report at the start vs
//! the end, then `kill -9` and the time back to serving.
//!
//! `cargo bench -p supervisor --bench storage` runs 60 s; `-- --secs 600` (or
//! `QOS_BENCH_SECS=600`) the 10-minute run. `--reporters N`, `--iterations N` (reports per
//! Chronos job: each reporter registers a job, reports all its iterations, then the next; the
//! default 500) and `--wal-max BYTES` change the load and the WAL bound. `--rate N` paces the
//! reporters to N reports a second in all (each sends its next report on its own schedule, at
//! once when it is behind) instead of flat out: at a rate the supervisor keeps up with, the
//! latency's tail is what stalls the writer (a WAL checkpoint), not the queue of a saturated
//! server; it then prints p50/p99/p99.9/max over the run after its first tenth.
//! `--baseline PATH` runs the same load against another supervisor binary first (a build of an
//! earlier commit), so that both are measured in one run on the same machine's load.
//!
//! Lines starting `FIGURE` (figure, value, anchor measured in the same run or the target, ratio)
//! are read by `scripts/bench`.
//!
//! The supervisor runs with Chronos credentials for `testkit`'s fake Chronos served over HTTP
//! from this process, so its decisions are applied (the first report of a job usually shrinks
//! it) and only what changes is stored in its history. The load generator runs in this process,
//! the supervisor in its own (its CPU is read from `/proc/<pid>/stat`), both on this machine's
//! cores.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::procs::{cpu_secs, rss_mb};

struct Options {
    secs: u64,
    reporters: usize,
    iterations: u32,
    wal_max: u64,
    rate: Option<u64>,
    /// Another supervisor binary to measure first, under the same load.
    baseline: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let env_secs = std::env::var("QOS_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok());
    Options {
        secs: flag("--secs").or(env_secs).unwrap_or(60),
        reporters: flag("--reporters").map_or(50, |v| v as usize),
        iterations: flag("--iterations").map_or(500, |v| v as u32),
        wal_max: flag("--wal-max").unwrap_or(16 << 20),
        rate: flag("--rate").filter(|r| *r > 0),
        baseline: args
            .iter()
            .position(|a| a == "--baseline")
            .and_then(|i| args.get(i + 1))
            .map(std::path::PathBuf::from),
    }
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

struct Supervisor {
    child: Child,
    url: String,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the supervisor binary on `dir`'s database, Chronos at `chronos`; returns it once it
/// serves, and how long that took.
fn start(bin: &Path, dir: &Path, wal_max: u64, chronos: &str) -> (Supervisor, Duration) {
    let cfg = dir.join("supervisor.toml");
    std::fs::write(
        &cfg,
        format!("listen = \"127.0.0.1:0\"\n[storage]\nwal_max_bytes = {wal_max}\n"),
    )
    .expect("config");
    let credentials = dir.join("chronos.json");
    std::fs::write(
        &credentials,
        json!({"url": chronos, "user": "u", "password": "p"}).to_string(),
    )
    .expect("credentials");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))
        .expect("log file");
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("-c")
        .arg(&credentials)
        .arg("--db")
        .arg(dir.join("s.db"))
        .env("RUST_LOG", "warn,supervisor::control=error")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn the supervisor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let ready = t.elapsed();
    let v: Value = serde_json::from_str(&line).expect("one JSON line");
    let url = v["url"].as_str().expect("url").to_owned();
    (Supervisor { child, url }, ready)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// What the reporters share.
#[derive(Clone)]
struct Load {
    url: String,
    chronos: Arc<testkit::FakeChronos>,
    http: reqwest::Client,
    iterations: u32,
    /// Time between two reports of one reporter (paced), or none (flat out).
    every: Option<Duration>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    started: Instant,
}

/// One reporter: registers a Chronos job of `iterations`, reports every iteration, then the
/// next job, until `stop`. Returns its latencies as (completion time, seconds).
async fn reporter(id: usize, l: Load) -> Vec<(f32, f32)> {
    let Load {
        url,
        chronos,
        http,
        iterations,
        every,
        stop,
        acked,
        refused,
        started,
    } = l;
    let mut lat = Vec::new();
    // Paced: the reporters start spread over one period.
    let mut due = started + every.map_or(Duration::ZERO, |e| e.mul_f64(id as f64 / 64.0 % 1.0));
    let mut job = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let uuid = format!("{id:016x}{job:016x}");
        let name = format!("bench-{id}-{job}");
        chronos.add_job(&name, 1.0, iterations);
        let reg = json!({"uuid": uuid, "name": name, "framework": "chronos", "qos": {"duration": 1, "deadline": 86_400, "desv_deadline": 0.2}, "iterations": iterations, "cpus": 1.0});
        let ok = http
            .post(format!("{url}/api/v1/jobs"))
            .body(reg.to_string())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            refused.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for _ in 0..iterations {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Some(e) = every {
                tokio::time::sleep_until(due.into()).await;
                due = (due + e).max(Instant::now() - e);
            }
            let f = now_epoch();
            let body = json!({"name": name, "started_at": f - 0.002, "finished_at": f, "hostname": "agent-1", "uuid": uuid}).to_string();
            let t = Instant::now();
            let r = http
                .post(format!("{url}/updateTask"))
                .body(body)
                .send()
                .await;
            let secs = t.elapsed().as_secs_f32();
            match r {
                Ok(r) if r.status().is_success() => {
                    acked.fetch_add(1, Ordering::Relaxed);
                    lat.push((started.elapsed().as_secs_f32(), secs));
                }
                _ => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        job += 1;
    }
    lat
}

/// One sample of the supervisor's resources.
#[derive(Clone, Copy)]
struct Sample {
    at: f64,
    acked: u64,
    cpu: f64,
    db: u64,
    wal: u64,
    rss: f64,
}

async fn run(o: &Options, bin: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("s.db");
    let wal = dir.path().join("s.db-wal");
    let chronos = testkit::FakeChronos::new();
    let served = testkit::http::serve_chronos(Arc::clone(&chronos))
        .await
        .expect("fake Chronos");
    let (sup, _) = start(bin, dir.path(), o.wal_max, &served.url);
    let pid = sup.child.id();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(o.reporters * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    println!(
        "storage: {} reporters posting /updateTask to the supervisor binary for {} s, {} (Chronos jobs of {} iterations, one after another; WAL bound {:.0} MiB)",
        o.reporters,
        o.secs,
        o.rate.map_or_else(
            || "flat out".to_owned(),
            |r| format!("{r} reports/s in all")
        ),
        o.iterations,
        o.wal_max as f64 / f64::from(1 << 20)
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let load = Load {
        url: sup.url.clone(),
        chronos: Arc::clone(&chronos),
        http: http.clone(),
        iterations: o.iterations,
        every: o
            .rate
            .map(|r| Duration::from_secs_f64(o.reporters as f64 / r as f64)),
        stop: Arc::clone(&stop),
        acked: Arc::clone(&acked),
        refused: Arc::clone(&refused),
        started,
    };
    let tasks: Vec<_> = (0..o.reporters)
        .map(|i| tokio::spawn(reporter(i, load.clone())))
        .collect();
    // Resources every second; a line every tenth of the run.
    let mut samples: Vec<Sample> = Vec::new();
    let mut wal_max_seen = 0u64;
    let print_every = (o.secs / 10).max(1);
    println!(
        "{:>6} {:>10} {:>9} {:>9} {:>10} {:>10} {:>11} {:>8}",
        "t (s)", "reports", "rep/s", "DB MB", "WAL MB", "WAL max", "CPU ms/rep", "RSS MB"
    );
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_print: Option<Sample> = None;
    loop {
        tick.tick().await;
        let s = Sample {
            at: started.elapsed().as_secs_f64(),
            acked: acked.load(Ordering::Relaxed),
            cpu: cpu_secs(pid),
            db: file_len(&db),
            wal: file_len(&wal),
            rss: rss_mb(pid),
        };
        wal_max_seen = wal_max_seen.max(s.wal);
        samples.push(s);
        let second = s.at.round() as u64;
        if second > 0 && second % print_every == 0 {
            let prev = last_print.unwrap_or(samples[0]);
            let dn = (s.acked - prev.acked).max(1) as f64;
            println!(
                "{:>6.0} {:>10} {:>9.0} {:>9.1} {:>10.2} {:>10.2} {:>11.3} {:>8.1}",
                s.at,
                s.acked,
                dn / (s.at - prev.at),
                s.db as f64 / 1e6,
                s.wal as f64 / 1e6,
                wal_max_seen as f64 / 1e6,
                1000.0 * (s.cpu - prev.cpu) / dn,
                s.rss
            );
            last_print = Some(s);
        }
        if s.at >= o.secs as f64 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<(f32, f32)> = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("reporter"));
    }
    let end = *samples.last().expect("samples");
    // Start and end windows: the second and the last tenth of the run (the first tenth warms up
    // the connections).
    let tenth = o.secs as f32 / 10.0;
    let window = |from: f32, to: f32| {
        let mut v: Vec<f64> = lat
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, s)| f64::from(*s))
            .collect();
        (
            percentile(&mut v, 0.5),
            percentile(&mut v.clone(), 0.99),
            v.len(),
        )
    };
    let cpu_per = |from: f64, to: f64| {
        let a = samples
            .iter()
            .find(|s| s.at >= from)
            .copied()
            .unwrap_or(samples[0]);
        let b = samples
            .iter()
            .rev()
            .find(|s| s.at <= to)
            .copied()
            .unwrap_or(end);
        1000.0 * (b.cpu - a.cpu) / (b.acked - a.acked).max(1) as f64
    };
    if o.rate.is_some() {
        let mut v: Vec<f64> = lat
            .iter()
            .filter(|(at, _)| *at >= tenth)
            .map(|(_, s)| f64::from(*s))
            .collect();
        let n = v.len();
        let p = |v: &mut Vec<f64>, q| 1000.0 * percentile(v, q);
        println!(
            "latency, paced, t ≥ {tenth:.0} s ({n} reports): p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; over 10 ms: {}",
            p(&mut v, 0.5),
            p(&mut v, 0.99),
            p(&mut v, 0.999),
            p(&mut v, 1.0),
            v.iter().filter(|s| **s > 0.010).count()
        );
    }
    let (p50s, p99s, ns) = window(tenth, 2.0 * tenth);
    let (p50e, p99e, ne) = window(9.0 * tenth, 10.0 * tenth);
    let (cs, ce) = (
        cpu_per(f64::from(tenth), f64::from(2.0 * tenth)),
        cpu_per(f64::from(9.0 * tenth), f64::from(10.0 * tenth)),
    );
    let mid = samples[samples.len() / 2];
    let per = |s: Sample| (s.db + s.wal) as f64 / s.acked.max(1) as f64;
    // The database file grows as checkpoints copy the WAL into it: its growth per report over
    // each half of the run.
    let growth = |a: Sample, b: Sample| {
        (b.db + b.wal).saturating_sub(a.db + a.wal) as f64 / (b.acked - a.acked).max(1) as f64
    };
    println!(
        "acknowledged {} reports in {:.0} s ({:.0}/s), {} refused",
        end.acked,
        end.at,
        end.acked as f64 / end.at,
        refused.load(Ordering::Relaxed)
    );
    if refused.load(Ordering::Relaxed) > 0 {
        let log = std::fs::read_to_string(dir.path().join("supervisor.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        println!(
            "  refusals: the supervisor's last log lines:\n  {}",
            tail.join("\n  ")
        );
    }
    println!(
        "WAL: at most {:.2} MB over the run (bound {:.2} MB)",
        wal_max_seen as f64 / 1e6,
        o.wal_max as f64 / 1e6
    );
    println!(
        "database + WAL per acknowledged report: {:.0} bytes at half time, {:.0} bytes at the end ({:.1} MB for {} reports); growth per report {:.0} bytes in the first half, {:.0} in the second",
        per(mid),
        per(end),
        (end.db + end.wal) as f64 / 1e6,
        end.acked,
        growth(samples[0], mid),
        growth(mid, end)
    );
    println!(
        "latency, start (t {:.0}–{:.0} s, {ns} reports) vs end (t {:.0}–{:.0} s, {ne}): p50 {:.2} → {:.2} ms, p99 {:.2} → {:.2} ms (end/start {:.2})",
        tenth,
        2.0 * tenth,
        9.0 * tenth,
        10.0 * tenth,
        1000.0 * p50s,
        1000.0 * p50e,
        1000.0 * p99s,
        1000.0 * p99e,
        p99e / p99s
    );
    println!(
        "supervisor CPU per acknowledged report: {cs:.3} ms at the start, {ce:.3} ms at the end (end/start {:.2}); RSS {:.1} MB at the end",
        ce / cs,
        end.rss
    );
    // For scripts/bench: figure, value, anchor (the same at the start of the run), ratio.
    println!(
        "FIGURE\tstorage: /updateTask p99 at the end of {:.0} s of sustained reports\t{:.2} ms\tat the start {:.2} ms\t{:.2}",
        end.at,
        1000.0 * p99e,
        1000.0 * p99s,
        p99e / p99s
    );
    println!(
        "FIGURE\tstorage: supervisor CPU per acknowledged report at the end\t{ce:.3} ms\tat the start {cs:.3} ms\t{:.2}",
        ce / cs
    );
    println!(
        "FIGURE\tstorage: database + WAL per acknowledged report at the end\t{:.0} bytes\tat half time {:.0} bytes\t{:.2}",
        per(end),
        per(mid),
        per(end) / per(mid).max(1.0)
    );
    println!(
        "FIGURE\tstorage: database growth per report, second half of the run\t{:.0} bytes\tfirst half {:.0} bytes\t{:.2}",
        growth(mid, end),
        growth(samples[0], mid),
        growth(mid, end) / growth(samples[0], mid).max(1.0)
    );
    println!(
        "FIGURE\tstorage: WAL at its largest, {} reporters for {:.0} s\t{:.1} MB\ttarget 64 MB\t{:.2}",
        o.reporters,
        end.at,
        wal_max_seen as f64 / 1e6,
        wal_max_seen as f64 / 64e6
    );
    // kill -9 and back.
    let stored_before = end.acked;
    let wal_at_kill = file_len(&wal);
    drop(sup);
    let (sup, ready) = start(bin, dir.path(), o.wal_max, &served.url);
    // Every job, a page at a time (the list answers at most 10,000 jobs a request).
    let (mut stored, mut offset) = (0u64, 0usize);
    loop {
        let page: Value = http
            .get(format!(
                "{}/api/v1/jobs?limit=10000&offset={offset}",
                sup.url
            ))
            .send()
            .await
            .expect("jobs")
            .json()
            .await
            .expect("jobs JSON");
        let page = page.as_array().cloned().unwrap_or_default();
        if page.is_empty() {
            break;
        }
        offset += page.len();
        stored += page
            .iter()
            .map(|j| {
                j["iterations"].as_u64().unwrap_or(0)
                    - j["remaining_iterations"].as_u64().unwrap_or(0)
            })
            .sum::<u64>();
    }
    let lost = stored_before.saturating_sub(stored);
    let ready_ms = ready.as_secs_f64() * 1000.0;
    println!(
        "kill -9 with a {:.2} MB WAL and a {:.1} MB database: serving again in {ready_ms:.0} ms; {stored} reports stored of {stored_before} acknowledged ({lost} lost)",
        wal_at_kill as f64 / 1e6,
        file_len(&db) as f64 / 1e6,
    );
    println!(
        "FIGURE\tstorage: kill -9 → serving again\t{ready_ms:.0} ms\treports acknowledged and stored: {stored} of {stored_before} ({lost} lost); target 1,000 ms\t{:.4}",
        ready_ms / 1000.0
    );
}

fn main() {
    let o = options();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(b) = &o.baseline {
        println!("== baseline: {}", b.display());
        rt.block_on(run(&o, b));
        println!("== this build");
    }
    rt.block_on(run(&o, Path::new(env!("CARGO_BIN_EXE_supervisor"))));
}
