//! Every query of every dashboard against a real Prometheus (Debian's `prometheus`, installed
//! by `scripts/test` from `scripts/test.d/dashboards.pkgs`), configured by the committed
//! `grafana/prometheus.yml` at a 1 s scrape interval, scraping a live system with a short job mix:
//! - an in-process testbed (Marathon and Chronos emulators, one agent of 2 CPUs running tasks as
//!   processes in real cgroups under a prefix of this test);
//! - the supervisor binary with Marathon and Chronos credentials for it (the predictive policy at
//!   the testbed's scale), so it really resizes through both;
//! - the cgroup-collector binary on the machine's cgroup tree, reading the testbed's tasks (mapped
//!   to their jobs by the testbed's `qos.json`), pushing samples to the supervisor;
//! - Chronos: a job whose 3 one-second-apart iterations each report `/updateTask` with curl, run
//!   to its end (deleted from Chronos), and one whose first of 3 iterations has reported (the next
//!   is a minute away);
//! - Marathon, LINPACK under shell-trap with `--strategy app`: a small job run to its end, and a
//!   job filed too small against a tight deadline that the supervisor grows through a real
//!   restart (Marathon kills the task, LINPACK checkpoints, the new task resumes), still running
//!   while the queries are evaluated, so its restart cost (`qos_restart_cost_seconds`) is
//!   measured and exported.
//!
//! Once every job is where the mix wants it, Prometheus is polled (with a deadline) until every
//! panel and variable query of every dashboard returns series; at the deadline the test fails
//! listing each query that still errs or returns nothing. The testbed (tasks, cgroups), the
//! collector, Prometheus and the supervisor are stopped whatever happened.
//!
//! Skipped with a notice without `prometheus` on the PATH (unless `QOS_REQUIRE_PROMETHEUS=1`),
//! and when the testbed cannot enforce CPU limits — not root — (unless
//! `QOS_REQUIRE_CGROUPS=1`): unbounded, the Marathon job would need no resize.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use frameworks::{
    ChronosApiVersion, ChronosClient, ChronosJob, Credentials, MarathonApp, MarathonClient,
};
use serde_json::{Value, json};

use crate::grafana::queries;
use crate::support::{Proc, on_path, start_json_line, start_supervisor, uuid};
use crate::testbed::{CatchUnwind, dump, poll};

/// The predictive policy at the testbed's scale (as the Marathon restart test in `testbed.rs`):
/// a restart costs a couple of seconds, a 3 s margin before the deadline, no shrink within the
/// test, Marathon jobs looked at every second.
const SUPERVISOR_TOML: &str = "\
policy = \"predictive\"

[predictive]
restart_cost = 2.0
safety_secs = 3.0
cooldown = 600.0

[control]
period = 1.0
backoff_max = 2.0
";

/// LINPACK's problem size: about 0.6 CPU-s per solve in a debug build.
const N: u64 = 500;
/// The grown job's solves: about 24 CPU-s of work, so it still runs (at the half CPU or so the
/// supervisor gives it) well after its restart, while Prometheus is queried.
const REPEATS: u64 = 40;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The query with Grafana's variables replaced by what a user would select ("All").
fn substitute(expr: &str) -> String {
    substitute_with(expr, None, None)
}

/// Grafana's `regex` format (`${var:regex}`): each value regex-escaped (`kbn.regexEscape`),
/// several joined as `(a|b)`.
fn grafana_regex(values: &[&str]) -> String {
    let esc: Vec<String> = values
        .iter()
        .map(|v| {
            let mut out = String::new();
            for c in v.chars() {
                if "\\^$*+?.()|[]{}/".contains(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        })
        .collect();
    if esc.len() == 1 {
        esc[0].clone()
    } else {
        format!("({})", esc.join("|"))
    }
}

/// What Grafana's Prometheus data source writes for a bare `$var` of a multi-value variable
/// (its default escaping without the `prometheusSpecialCharsInLabelValues` feature): regex
/// metacharacters escaped for a double-quoted string, `"` left as it is.
fn grafana_prometheus_default(values: &[&str]) -> String {
    let esc: Vec<String> = values
        .iter()
        .map(|v| {
            let mut out = String::new();
            for c in v.chars() {
                match c {
                    '\\' => out.push_str("\\\\\\\\"),
                    '\'' => out.push_str("\\\\'"),
                    c if "$^*{}[]+?.()|".contains(c) => {
                        out.push_str("\\\\");
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out
        })
        .collect();
    format!("({})", esc.join("|"))
}

/// The query with Grafana's variables replaced: `job` and `node` as All (`None`) or the values
/// selected, formatted as Grafana formats them.
fn substitute_with(expr: &str, job: Option<&[&str]>, node: Option<&[&str]>) -> String {
    let mut e = expr
        .replace("$__rate_interval", "30s")
        .replace("$__interval", "5s")
        .replace("$__range", "5m");
    for (var, sel) in [("job", job), ("node", node)] {
        let (regex, plain) = match sel {
            None => (".*".to_owned(), ".*".to_owned()),
            Some(v) => (grafana_regex(v), grafana_prometheus_default(v)),
        };
        e = e
            .replace(&format!("${{{var}:regex}}"), &regex)
            .replace(&format!("${{{var}}}"), &plain)
            .replace(&format!("${var}"), &plain);
    }
    e
}

/// Prometheus on a free port with the committed scrape configuration at a 1 s interval, its
/// targets files pointing at `supervisor` and (unless empty) `collector` (`host:port`), its
/// data and log under `dir`. Returns the process (killed when dropped), the API's base URL and
/// the log file.
fn start_prometheus(
    prometheus: &Path,
    dir: &Path,
    supervisor: &str,
    collector: &str,
) -> (Proc, String, PathBuf) {
    let prom_dir = dir.join("prometheus");
    std::fs::create_dir_all(prom_dir.join("targets")).unwrap();
    let config = std::fs::read_to_string(crate::grafana::grafana_dir().join("prometheus.yml"))
        .unwrap()
        .replace("scrape_interval: 5s", "scrape_interval: 1s");
    assert!(config.contains("scrape_interval: 1s"));
    std::fs::write(prom_dir.join("prometheus.yml"), config).unwrap();
    for (file, target) in [
        ("supervisor.json", supervisor),
        ("collectors.json", collector),
    ] {
        let targets = if target.is_empty() {
            json!([])
        } else {
            json!([{"targets": [target], "labels": {}}])
        };
        std::fs::write(prom_dir.join("targets").join(file), targets.to_string()).unwrap();
    }
    let port = free_port();
    let log = dir.join("prometheus.log");
    let proc = Proc(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    (proc, format!("http://127.0.0.1:{port}/api/v1"), log)
}

/// `application/x-www-form-urlencoded` value encoding.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET url?query` against Prometheus; null while it cannot answer (the caller polls).
async fn prometheus_json(http: &reqwest::Client, url: &str, query: &[(&str, &str)]) -> Value {
    let qs: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let url = format!("{url}?{}", qs.join("&"));
    match http.get(url).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// The last `n` lines of a log file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The Marathon task command the launcher writes: `exec` shell-trap (so Marathon's SIGTERM
/// reaches it), the app checkpoint strategy, a grace within the app's 10 s kill grace period,
/// LINPACK reporting its progress.
fn trap_command(
    bins: &BTreeMap<String, PathBuf>,
    u: &str,
    sup: &str,
    ckpt: &Path,
    repeats: u64,
) -> String {
    let words: Vec<String> = [
        "exec",
        &bins["shell-trap"].display().to_string(),
        "--uuid",
        u,
        "--supervisor",
        sup,
        "--checkpoint-dir",
        &ckpt.display().to_string(),
        "--strategy",
        "app",
        "--grace",
        "8",
        "--runtime",
        "process",
        "--",
        &bins["linpack"].display().to_string(),
        &N.to_string(),
        "--repeat",
        &repeats.to_string(),
        "-o",
        "json",
    ]
    .iter()
    .map(|w| format!("'{w}'"))
    .collect();
    words.join(" ")
}

/// A Chronos command that reports its iteration to `/updateTask` (as the Chronos test in
/// `testbed.rs`).
fn chronos_command(sup: &str, name: &str, u: &str) -> String {
    format!(
        "s=$(date +%s.%N); sleep 0.2; f=$(date +%s.%N); curl -sf -X POST -H 'Content-Type: application/json' \
         -d \"{{\\\"name\\\":\\\"{name}\\\",\\\"uuid\\\":\\\"{u}\\\",\\\"started_at\\\":\\\"$s\\\",\\\"finished_at\\\":\\\"$f\\\",\\\"hostname\\\":\\\"$(hostname)\\\"}}\" {sup}/updateTask"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let Some(prometheus) = on_path("prometheus") else {
        let _ = testkit::skip_unless_required(
            &["QOS_REQUIRE_PROMETHEUS"],
            "no `prometheus` on the PATH (apt-get install prometheus; scripts/test does it)",
            "every_dashboard_query_returns_series_from_a_real_prometheus",
        );
        return;
    };
    let started = Instant::now();
    let bins = tokio::task::spawn_blocking(|| {
        testkit::bins::workspace_bins(&["shell-trap", "linpack", "cgroup-collector"])
    })
    .await
    .unwrap();
    let built = started.elapsed();

    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("qos-prom-it-{}", std::process::id());
    let bed_config = testbed::Config {
        agents: 1,
        cpus_per_agent: 2.0,
        cgroup_prefix: prefix.clone(),
        meta_dir: dir.path().join("meta"),
        work_dir: Some(dir.path().join("work")),
        chronos_failure_retry_ms: 300,
        ..testbed::Config::default()
    };
    let bed = testbed::serve(
        bed_config.clone(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        std::future::pending(),
    )
    .await
    .expect("the testbed starts");
    if !testkit::cgroups_or_skip(
        bed.cpu_limits_enforced(),
        bed.cpu_limits_note(),
        "the live Prometheus test",
    ) {
        bed.stop().await;
        return;
    }

    // Everything the scenario starts (supervisor, collector, Prometheus) is killed when it ends
    // or panics; then the testbed stops its tasks and removes their cgroups.
    let outcome = CatchUnwind(Box::pin(live(
        dir.path(),
        &bed,
        &bed_config,
        &bins,
        &prometheus,
    )))
    .await;
    bed.stop().await;
    let n = outcome.unwrap_or_else(|p| std::panic::resume_unwind(p));
    eprintln!(
        "all {n} dashboard queries returned series ({:.1} s, {:.1} s of it making sure the \
         binaries are built)",
        started.elapsed().as_secs_f64(),
        built.as_secs_f64()
    );
}

/// The live system and the job mix; every dashboard query evaluated. Returns how many.
async fn live(
    dir: &Path,
    bed: &testbed::Testbed,
    bed_config: &testbed::Config,
    bins: &BTreeMap<String, PathBuf>,
    prometheus: &Path,
) -> usize {
    let work = dir.join("work");
    let ckpt = dir.join("ckpt");
    let urls = bed.urls();
    let creds = |file: &str, url: &str| {
        let p = dir.join(file);
        std::fs::write(
            &p,
            json!({"url": url, "user": "", "password": ""}).to_string(),
        )
        .unwrap();
        p
    };
    let (mc, cc) = (
        creds("marathon.json", &urls.marathon),
        creds("chronos.json", &urls.chronos),
    );
    let toml = dir.join("supervisor.toml");
    std::fs::write(&toml, SUPERVISOR_TOML).unwrap();
    let (_sup, sup) = start_supervisor(
        dir,
        &[
            "--config".as_ref(),
            toml.as_os_str(),
            "-m".as_ref(),
            mc.as_os_str(),
            "-c".as_ref(),
            cc.as_os_str(),
        ],
    );

    // The collector on this machine's cgroup tree, the testbed's tasks under its prefix (mapped
    // to their jobs by the testbed's metadata files).
    let (_col, col) = start_json_line(
        Command::new(&bins["cgroup-collector"])
            .args(["--listen", "127.0.0.1:0", "--no-docker", "--cgroup-root"])
            .arg(&bed_config.cgroup_root)
            .arg("--testbed-prefix")
            .arg(&bed_config.cgroup_prefix)
            .arg("--testbed-meta-dir")
            .arg(&bed_config.meta_dir)
            .args(["--supervisor", &sup, "--period", "0.5", "--heartbeat", "1"])
            .env("RUST_LOG", "info"),
        "cgroup-collector",
        &dir.join("collector.log"),
    );
    let col_metrics = col["metrics"].as_str().unwrap().to_owned();

    // The committed scrape configuration, at a 1 s interval, its targets files pointing here.
    let hostport = |u: &str| {
        u.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let (_prom, api, prom_log) =
        start_prometheus(prometheus, dir, &hostport(&sup), &hostport(&col_metrics));

    // The job mix, registered first and then submitted (the launcher's order).
    let http = reqwest::Client::new();
    let marathon =
        Arc::new(MarathonClient::new(&Credentials::new(&urls.marathon).unwrap()).unwrap());
    // Jobs created through 3.x, as the launcher does: it runs every one of their R3 runs (2.5.1
    // takes them off the count within its 60 s horizon and disables the job after the first).
    let chronos = Arc::new(
        ChronosClient::new(
            &Credentials::new(&urls.chronos).unwrap(),
            ChronosApiVersion::V3,
        )
        .unwrap(),
    );
    let register = |body: Value| {
        let req = http.post(format!("{sup}/api/v1/jobs")).json(&body);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201, "{body}: {:?}", r.text().await);
            r.json::<Value>().await.unwrap()["report_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let job = |u: String| {
        let req = http.get(format!("{sup}/api/v1/jobs/{u}"));
        async move {
            match req.send().await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(_) => Value::Null,
            }
        }
    };
    let (grown, small, c_done, c_running) = (uuid(0xa1), uuid(0xa2), uuid(0xc1), uuid(0xc2));

    // Marathon, filed too small: it declares 3 CPU-s (15 s at 0.2 CPU, well within its 60 s) but
    // needs about 24; once LINPACK's progress shows it, the supervisor must grow it.
    // Marathon, small: one solve of the same system, run to its end.
    for (u, app_id, duration, repeats) in [
        (&grown, "/qos-prom-grown", 3.0, REPEATS),
        (&small, "/qos-prom-small", 1.0, 1),
    ] {
        let token = register(json!({"uuid": u, "name": app_id, "framework": "marathon",
            "qos": {"duration": duration, "deadline": 60, "desv_deadline": 0.1}, "cpus": 0.2}))
        .await;
        let app = MarathonApp::try_from(json!({
            "id": app_id, "cmd": trap_command(bins, u, &sup, &ckpt, repeats), "cpus": 0.2,
            "mem": 256, "instances": 1, "taskKillGracePeriodSeconds": 10, "backoffSeconds": 300,
            "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
            "labels": {"qos.uuid": u},
            "env": {"SHELL_TRAP_REPORT_TOKEN": token, "QOS_PROGRESS_INTERVAL": "0.5"}
        }))
        .unwrap();
        marathon.create_app(&app).await.unwrap();
    }
    // Chronos: 3 runs a second apart, to the end; 3 runs a minute apart, the first reported. A
    // deadline the policy's prior (45 s of deployment per iteration) can meet at their size:
    // grown to the whole agent, a job's later runs could not be placed beside the Marathon tasks.
    for (u, name, schedule) in [
        (&c_done, "qos-prom-chronos-done", "R3//PT1S"),
        (&c_running, "qos-prom-chronos-running", "R3//PT60S"),
    ] {
        register(json!({"uuid": u, "name": name, "framework": "chronos",
            "qos": {"duration": 1, "deadline": 600, "desv_deadline": 0.2}, "iterations": 3, "cpus": 0.25}))
        .await;
        let cj: ChronosJob = serde_json::from_value(json!({"name": name, "schedule": schedule,
            "owner": "qos@example.com", "cpus": 0.25, "mem": 64,
            "command": chronos_command(&sup, name, u),
            "environmentVariables": [{"name": "QOS_UUID", "value": u}]}))
        .unwrap();
        chronos.put_job(&cj).await.unwrap();
    }

    let why = |what: &str| {
        format!(
            "{what}\n--- supervisor log (tail) ---\n{}\n--- collector log (tail) ---\n{}\n--- sandboxes ---\n{}",
            tail(&dir.join("supervisor.log"), 40),
            tail(&dir.join("collector.log"), 20),
            dump(&work)
        )
    };

    // The grown job: the supervisor decides to grow it, Marathon restarts it, the restored task
    // runs, and the supervisor has measured what the restart cost.
    let cost = poll(Duration::from_secs(45), || async {
        let text = http
            .get(format!("{sup}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| {
                l.starts_with("qos_restart_cost_seconds{")
                    && l.contains(&format!("uuid=\"{grown}\""))
            })
            .map(str::to_owned)
    })
    .await;
    let Some(cost) = cost else {
        let j = job(grown.clone()).await;
        panic!(
            "{}",
            why(&format!("no restart of the grown job was measured: {j:#}"))
        );
    };
    let hist = http
        .get(format!("{sup}/api/v1/jobs/{grown}/history"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let resize = hist
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "resize")
        .cloned()
        .unwrap_or_else(|| panic!("a restart without a resize: {hist:#}"));
    assert_eq!(resize["action"]["from"], 0.2, "{resize}");
    assert_eq!(resize["action"]["mode"], "restart", "{resize}");
    assert!(resize["action"]["to"].as_f64().unwrap() > 0.2, "{resize}");
    // The new task resumed from the old one's checkpoint (LINPACK says so when it starts).
    let resumed = poll(Duration::from_secs(30), || async {
        dump(&work).contains("linpack: resuming from").then_some(())
    })
    .await;
    assert!(
        resumed.is_some(),
        "{}",
        why("the restarted task did not resume from a checkpoint")
    );

    // The others where the mix wants them: two jobs finished (and cleaned up), one Chronos job
    // between its iterations.
    for (u, what) in [
        (&small, "the small Marathon job"),
        (&c_done, "the finished Chronos job"),
    ] {
        let done = poll(Duration::from_secs(30), || async {
            let j = job(u.clone()).await;
            (j["cleaned_up"] == true).then_some(j)
        })
        .await;
        let Some(done) = done else {
            let j = job(u.clone()).await;
            panic!("{}", why(&format!("{what} did not finish: {j:#}")));
        };
        assert_eq!(done["state"], "completed", "{what}: {done:#}");
    }
    let running = poll(Duration::from_secs(30), || async {
        let j = job(c_running.clone()).await;
        (j["remaining_iterations"] == 2).then_some(j)
    })
    .await;
    assert!(
        running.is_some(),
        "{}",
        why(&format!(
            "the running Chronos job did not report its first iteration: {:#}",
            job(c_running.clone()).await
        ))
    );

    // Prometheus: both targets up, then every query until all return series.
    let targets_up = poll(Duration::from_secs(30), || async {
        let t = prometheus_json(&http, &format!("{api}/targets"), &[("state", "active")]).await;
        let active = t["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (active.len() == 2 && active.iter().all(|t| t["health"] == "up")).then_some(())
    })
    .await;
    assert!(
        targets_up.is_some(),
        "targets not up: {}\n--- prometheus log ---\n{}",
        prometheus_json(&http, &format!("{api}/targets"), &[]).await,
        tail(&prom_log, 40)
    );
    let qs = queries();
    assert!(qs.len() > 30, "{} queries", qs.len());
    let until = Instant::now() + Duration::from_secs(30);
    let mut rounds = 0;
    let failures = loop {
        rounds += 1;
        let mut failures = Vec::new();
        for q in &qs {
            let expr = substitute(&q.expr);
            let v = prometheus_json(&http, &format!("{api}/query"), &[("query", &expr)]).await;
            let n = v["data"]["result"].as_array().map_or(0, Vec::len);
            if v["status"] != "success" {
                failures.push(format!(
                    "{} / {}: error {}: {expr}",
                    q.dashboard, q.panel, v["error"]
                ));
            } else if n == 0 {
                failures.push(format!("{} / {}: no series: {expr}", q.dashboard, q.panel));
            }
        }
        if failures.is_empty() || Instant::now() > until {
            break failures;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        failures.is_empty(),
        "{} of {} queries failed ({rounds} rounds over 30 s):\n{}\ngrown job: {:#}\n--- prometheus log ---\n{}",
        failures.len(),
        qs.len(),
        failures.join("\n"),
        job(grown.clone()).await,
        tail(&prom_log, 20)
    );
    eprintln!(
        "restart measured: {cost}; {} → {} CPU; queries answered after {rounds} round(s)",
        resize["action"]["from"], resize["action"]["to"]
    );
    qs.len()
}

/// Jobs of each framework registered for the bound test: more than a panel draws.
const MANY: usize = 25;
/// The most series a per-job panel draws over All (the dashboards' `topk`).
const TOP: usize = 20;

/// With more jobs than a panel draws, every panel query at the dashboards' defaults (All) stays
/// within [`TOP`] series, and the per-job ones draw exactly [`TOP`] (the bound bites, nothing is
/// dropped below it); selecting jobs draws exactly those, names with `.` and `/` included; a
/// node value with a `"` leaves every node query valid. Against a real Prometheus scraping the
/// real supervisor, with jobs registered through the thesis routes (no framework runs them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_stay_bounded_over_many_jobs_and_escape_selected_values() {
    let Some(prometheus) = on_path("prometheus") else {
        let _ = testkit::skip_unless_required(
            &["QOS_REQUIRE_PROMETHEUS"],
            "no `prometheus` on the PATH (apt-get install prometheus; scripts/test does it)",
            "dashboard_queries_stay_bounded_over_many_jobs_and_escape_selected_values",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_sup, sup) = start_supervisor(dir.path(), &[]);
    let http = reqwest::Client::new();
    let t0 = crate::support::now();
    // Marathon app ids may hold `.` (a regex metacharacter) and `/`.
    let odd = "/odd.name-v1";
    for fw in ["marathon", "chronos"] {
        for i in 0..MANY {
            let name = if fw == "marathon" && i == 0 {
                odd.to_owned()
            } else {
                format!("/many-marathon-{i:02}")
            };
            let body = if fw == "marathon" {
                json!({"framework": fw, "name": name, "job_duration": 20 + i, "deadline": 600,
                    "desv_deadline": 0.1, "uuid": uuid(0x1000 + i as u32)})
            } else {
                json!({"framework": fw, "name": format!("many-chronos-{i:02}"),
                    "job_duration": 20 + i, "deadline": t0 + 600.0, "desv_deadline": 0.2,
                    "uuid": uuid(0x2000 + i as u32), "iterations": 3})
            };
            let r = http
                .post(format!("{sup}/initTask"))
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{body}: {:?}", r.text().await);
        }
    }

    let target = sup.trim_start_matches("http://").to_owned();
    let (_prom, api, prom_log) = start_prometheus(&prometheus, dir.path(), &target, "");
    let query = |expr: String| {
        let http = http.clone();
        let url = format!("{api}/query");
        async move {
            let v = prometheus_json(&http, &url, &[("query", &expr)]).await;
            (v, expr)
        }
    };
    // Every job scraped.
    let scraped = poll(Duration::from_secs(30), || async {
        let (v, _) = query("count by (framework) (qos_cpu_allocated)".to_owned()).await;
        let r = v["data"]["result"].as_array()?.clone();
        (r.len() == 2
            && r.iter()
                .all(|s| s["value"][1].as_str().and_then(|n| n.parse().ok()) == Some(MANY)))
        .then_some(())
    })
    .await;
    assert!(
        scraped.is_some(),
        "the {MANY} jobs of each framework never all appeared in Prometheus\n--- prometheus log ---\n{}",
        tail(&prom_log, 20)
    );

    let panels: Vec<_> = queries()
        .into_iter()
        .filter(|q| !q.panel.starts_with("variable "))
        .collect();
    let mut errors = Vec::new();
    let mut full = 0;
    for q in &panels {
        let (v, expr) = query(substitute(&q.expr)).await;
        let n = v["data"]["result"].as_array().map_or(0, Vec::len);
        let where_ = format!("{} / {}", q.dashboard, q.panel);
        if v["status"] != "success" {
            errors.push(format!("{where_}: error {}: {expr}", v["error"]));
        } else if n > TOP {
            errors.push(format!("{where_}: {n} series over All (> {TOP}): {expr}"));
        } else if n == TOP {
            full += 1;
        } else if q.expr.starts_with("qos_cpu_allocated") || q.panel.starts_with("Class") {
            // Every registered job has an allocation and a class: the bound must bite.
            errors.push(format!("{where_}: {n} series over All, want {TOP}: {expr}"));
        }
    }
    if full < 4 {
        errors.push(format!("only {full} panel queries drew {TOP} series"));
    }

    // Selected jobs: exactly those, whatever their names hold.
    let picked = [odd, "/many-marathon-03", "/many-marathon-17"];
    for q in panels
        .iter()
        .filter(|q| q.dashboard == "marathon-qos.json" && q.expr.starts_with("qos_cpu_allocated"))
    {
        let (v, expr) = query(substitute_with(&q.expr, Some(&picked), None)).await;
        let mut got: Vec<String> = v["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["metric"]["name"].as_str().unwrap_or_default().to_owned())
            .collect();
        got.sort();
        let mut want: Vec<String> = picked.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        if got != want {
            errors.push(format!(
                "{} / {}: selected {want:?}, drew {got:?} ({}): {expr}",
                q.dashboard, q.panel, v["error"]
            ));
        }
    }
    // A selected value with a quote and a backslash keeps every query valid.
    let hostile = [r#"node"1\a:9100"#, "127.0.0.1:9100"];
    for q in &panels {
        let (v, expr) = query(substitute_with(&q.expr, Some(&hostile), Some(&hostile))).await;
        if v["status"] != "success" {
            errors.push(format!(
                "{} / {}: with {hostile:?} selected: error {}: {expr}",
                q.dashboard, q.panel, v["error"]
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
