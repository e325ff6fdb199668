//! `GET /ui` in headless Chromium (Debian's `chromium`, installed by `scripts/test` from
//! `scripts/test.d/dashboards.pkgs`) against the real supervisor binary with seeded jobs and a
//! node: the page loads with no console messages or uncaught errors, lists every job with its
//! class, the nodes with their free CPU, and a job's view shows its charts and decision log
//! with the reasons. The screenshot is saved as `target/ui-screenshot.png`.
//!
//! Without `chromium` on the PATH the test is skipped with a notice, unless
//! `QOS_REQUIRE_CHROMIUM=1` is set (the project's test command sets it), then it fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use testkit::http::{serve_chronos, serve_marathon};
use testkit::{FakeChronos, FakeMarathon};

use crate::support::{get_json, on_path, seed_jobs, start_supervisor, target_dir, uuid};

/// Output of one headless run.
struct Run {
    stdout: String,
    stderr: String,
}

fn chromium(bin: &Path, profile: &Path, extra: &[String], url: &str) -> Run {
    let dir = profile.parent().unwrap();
    let (out, err) = (dir.join("chromium.out"), dir.join("chromium.err"));
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,900",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let run = Run {
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    };
    assert!(status.success(), "chromium: {status}\n{}", run.stderr);
    run
}

/// Console messages and uncaught errors of the page (Chromium logs them as `…:CONSOLE…`).
fn console_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_page_in_headless_chromium() {
    let Some(bin) = on_path("chromium").or_else(|| on_path("chromium-browser")) else {
        let _ = testkit::skip_unless_required(
            &["QOS_REQUIRE_CHROMIUM"],
            "no `chromium` on the PATH (apt-get install chromium; scripts/test does it)",
            "ui_page_in_headless_chromium",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Fake Chronos and Marathon over HTTP, so the supervisor's resizes are really applied.
    let chronos = FakeChronos::new();
    chronos.add_job("linpack-chronos-1", 1.0, 3);
    chronos.add_job("linpack-chronos-2", 1.0, 1);
    let marathon = FakeMarathon::new();
    marathon.add_app("linpack-marathon-1", 1.0);
    marathon.add_app("linpack-marathon-2", 1.0);
    let (c, m) = (
        serve_chronos(chronos.clone()).await.unwrap(),
        serve_marathon(marathon.clone()).await.unwrap(),
    );
    let creds = |file: &str, u: &str| {
        let p = dir.path().join(file);
        let body = json!({"url": u, "user": "u", "password": "p"});
        std::fs::write(&p, body.to_string()).unwrap();
        p
    };
    let (cc, mc) = (
        creds("chronos.json", &c.url),
        creds("marathon.json", &m.url),
    );
    let (_sup, url) = start_supervisor(
        dir.path(),
        &["-c".as_ref(), cc.as_os_str(), "-m".as_ref(), mc.as_os_str()],
    );
    seed_jobs(&url).await;
    let http = reqwest::Client::new();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    // A second iteration of the first Chronos job a moment later: another decision, so its
    // charts have a history to draw.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let c1 = uuid(0xc1);
    let t = now();
    let r = http
        .post(format!("{url}/updateTask"))
        .body(json!({"name": "linpack-chronos-1", "started_at": t - 12.0, "finished_at": t - 0.5, "hostname": "node-ui", "uuid": c1}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let now = now();
    for (path, body) in [
        (
            "/api/v1/nodes/register".to_owned(),
            json!({"id": "node-ui", "hostname": "node-ui", "cpus": 2, "memory_bytes": 4_000_000_000_u64}),
        ),
        (
            "/api/v1/nodes/node-ui/heartbeat".to_owned(),
            json!({"at": now, "free_cpus": 1.25, "allocated_cpus": 0.5, "load1": 0.75}),
        ),
    ] {
        let r = http
            .post(format!("{url}{path}"))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    // The page itself: HTML, self-contained, locked to this origin.
    let r = http.get(format!("{url}/ui")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = h["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let html = r.text().await.unwrap();
    for external in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(external), "external resource: {external}");
    }

    // The reconcile after the second iteration runs on its own: wait (bounded) for its resize.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while chronos.puts().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs: Value = get_json(&http, &format!("{url}/api/v1/jobs")).await;
    let jobs = jobs.as_array().unwrap().clone();
    assert!(
        !chronos.puts().is_empty(),
        "no resize reached the fake Chronos within 30 s: {jobs:?}"
    );
    assert_eq!(jobs.len(), 4);
    assert!(
        jobs.iter().filter(|j| j["class"].is_string()).count() >= 2,
        "{jobs:?}"
    );
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();

    // The list: every job with its class, the node with its free CPU, no console messages.
    let list = chromium(&bin, &profile, &["--dump-dom".into()], &format!("{url}/ui"));
    assert!(
        console_errors(&list.stderr).is_empty(),
        "console: {:#?}",
        console_errors(&list.stderr)
    );
    let dom = &list.stdout;
    assert!(
        dom.contains("updated "),
        "the page did not load its data:\n{dom}"
    );
    // A reconcile may change a class while the page loads: the one before or after counts.
    let after: Value = get_json(&http, &format!("{url}/api/v1/jobs")).await;
    for j in &jobs {
        let (uuid, name) = (j["uuid"].as_str().unwrap(), j["name"].as_str().unwrap());
        assert!(dom.contains(&format!(">{name}</td>")), "{name}:\n{dom}");
        let later = after
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["uuid"] == uuid)
            .map_or(Value::Null, |k| k["class"].clone());
        let shown = [&j["class"], &later].into_iter().any(|c| {
            let class = c.as_str().unwrap_or_default();
            let badge = if class.is_empty() {
                "<span class=\"class none\">—</span>".to_owned()
            } else {
                format!("<span class=\"class {class}\">{class}</span>")
            };
            dom.contains(&format!("data-uuid=\"{uuid}\" data-class=\"{class}\""))
                && dom.contains(&badge)
        });
        assert!(
            shown,
            "{name}: row with class {} / {later} missing:\n{dom}",
            j["class"]
        );
    }
    assert!(dom.contains("data-node=\"node-ui\""), "node row:\n{dom}");
    // Free = the node's 2 CPUs less the 0.5 its job containers reserve.
    assert!(
        dom.contains(">1.50</td>") || dom.contains(">1.5</td>"),
        "free CPU:\n{dom}"
    );
    assert!(
        dom.contains("id=\"job-view\" hidden"),
        "no job selected yet"
    );

    // A job's view: two charts and the decision log with the reasons of its history.
    let chronos = jobs
        .iter()
        .find(|j| j["name"] == "linpack-chronos-1")
        .unwrap();
    let uuid = chronos["uuid"].as_str().unwrap();
    let history: Value = get_json(&http, &format!("{url}/api/v1/jobs/{uuid}/history")).await;
    let page = format!("{url}/ui#job={uuid}");
    let view = chromium(&bin, &profile, &["--dump-dom".into()], &page);
    assert!(
        console_errors(&view.stderr).is_empty(),
        "console: {:#?}",
        console_errors(&view.stderr)
    );
    let dom = &view.stdout;
    assert!(!dom.contains("id=\"job-view\" hidden"), "job view hidden");
    assert!(dom.matches("<svg").count() >= 2, "charts:\n{dom}");
    assert!(dom.contains("<path"), "chart lines:\n{dom}");
    let rows = history.as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let reason = row["reason"].as_str().unwrap();
        // The DOM escapes `>`, `<` and `&` only; the reasons have none of them.
        assert!(
            dom.contains(reason),
            "reason {reason:?} not in the log:\n{dom}"
        );
    }

    // The screenshot of that view.
    let shot = target_dir().join("ui-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let run = chromium(
        &bin,
        &profile,
        &[format!("--screenshot={}", shot.display())],
        &page,
    );
    assert!(
        console_errors(&run.stderr).is_empty(),
        "console: {:#?}",
        console_errors(&run.stderr)
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!("screenshot: {}", shot.display());
}
