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
    let Some(bin) = chromium_or_skip("ui_page_in_headless_chromium") else {
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

/// The Chromium binary, or `None` after the skip notice (a failure under
/// `QOS_REQUIRE_CHROMIUM=1`).
fn chromium_or_skip(test: &str) -> Option<std::path::PathBuf> {
    let bin = on_path("chromium").or_else(|| on_path("chromium-browser"));
    if bin.is_none() {
        let _ = testkit::skip_unless_required(
            &["QOS_REQUIRE_CHROMIUM"],
            "no `chromium` on the PATH (apt-get install chromium; scripts/test does it)",
            test,
        );
    }
    bin
}

/// Posts `body` to `url`, asserting success.
async fn post_ok(http: &reqwest::Client, url: &str, body: &Value) {
    let r = http.post(url).body(body.to_string()).send().await.unwrap();
    let status = r.status();
    assert!(status.is_success(), "{url}: {status} {:?}", r.text().await);
}

/// Chromium's DOM of `url` (the page polled once), failing on any console message.
fn dom_of(bin: &Path, profile: &Path, url: &str) -> String {
    let run = chromium(bin, profile, &["--dump-dom".into()], url);
    let console = console_errors(&run.stderr);
    assert!(console.is_empty(), "console: {console:#?}");
    assert!(
        run.stdout.contains("updated "),
        "the page did not load:\n{}",
        run.stdout
    );
    run.stdout
}

/// What clients send is shown as text, never as markup: a report's host name (the job's node)
/// and a node's host name with HTML, `</script>` and quotes, a 255-byte job name; bidi overrides
/// and zero-width characters (which reverse or hide what an operator reads) are shown as their
/// code points; a deadline days past and one a year ahead read as such, with their dates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_shows_client_strings_as_text() {
    let Some(bin) = chromium_or_skip("ui_shows_client_strings_as_text") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_sup, url) = start_supervisor(dir.path(), &[]);
    let http = reqwest::Client::new();
    let t = crate::support::now();
    // Job names are the frameworks' (`[A-Za-z0-9_.-]`, lowercase for Marathon): only long.
    let (hostile, long) = (uuid(0x5000), uuid(0x5001));
    let host = "<img src=x onerror=alert(1)></script><script>alert(2)</script>\"q' &amp; \u{202e}exe.evil zero\u{200b}width\u{feff}";
    for (u, name, hostname) in [
        (&hostile, "hostile".to_owned(), host),
        (&long, "x".repeat(255), "n1"),
    ] {
        let init = json!({"framework": "chronos", "name": name, "job_duration": 20, "deadline": t + 600.0, "desv_deadline": 0.2, "uuid": u, "iterations": 3});
        post_ok(&http, &format!("{url}/initTask"), &init).await;
        let report = json!({"name": name, "started_at": t - 30.0, "finished_at": t - 2.0, "hostname": hostname, "uuid": u});
        post_ok(&http, &format!("{url}/updateTask"), &report).await;
    }
    // Submitted four days ago with a day to finish: three days overdue. And a year ahead.
    let (past, year) = (uuid(0x5100), uuid(0x5101));
    let reg = json!({"uuid": past, "name": "overdue", "framework": "marathon", "qos": {"duration": 3600, "deadline": 86_400, "desv_deadline": 0.1}, "cpus": 1.0, "submitted_at": t - 4.0 * 86_400.0});
    post_ok(&http, &format!("{url}/api/v1/jobs"), &reg).await;
    let year_at = t + 364.0 * 86_400.0;
    let init = json!({"framework": "chronos", "name": "a-year-ahead", "job_duration": 20, "deadline": year_at, "desv_deadline": 0.2, "uuid": year, "iterations": 3});
    post_ok(&http, &format!("{url}/initTask"), &init).await;
    post_ok(
        &http,
        &format!("{url}/api/v1/nodes/register"),
        &json!({"id": "node-x", "hostname": "<img src=x onerror=alert(3)>\u{202e}", "cpus": 2, "memory_bytes": 4_000_000_000_u64}),
    )
    .await;
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();

    let dom = dom_of(&bin, &profile, &format!("{url}/ui#job={hostile}"));
    // Nothing became an element: the page's one script, no image.
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    let shown = "node: <bdi><b>&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;\"q' &amp;amp; ⟨U+202E⟩exe.evil zero⟨U+200B⟩width⟨U+FEFF⟩</b></bdi>";
    assert!(
        dom.contains(shown),
        "{shown} not in the job's facts:\n{dom}"
    );
    for hidden in ['\u{202e}', '\u{200b}', '\u{feff}'] {
        assert!(!dom.contains(hidden), "{hidden:?} reached the page:\n{dom}");
    }
    // The node's host name is its row's tooltip, as text.
    assert!(
        dom.contains("title=\"&lt;img src=x onerror=alert(3)&gt;⟨U+202E⟩\""),
        "{dom}"
    );
    assert!(dom.contains(&format!(">{}</td>", "x".repeat(255))), "{dom}");
    let row = |u: &str| {
        let at = dom.find(&format!("data-uuid=\"{u}\"")).expect("row");
        dom[at..at + dom[at..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row(&past).contains(">overdue by 3.0 d<"), "{}", row(&past));
    assert!(row(&year).contains(">364.0 d<"), "{}", row(&year));

    // The deadline a year ahead is shown with its date.
    let dom = dom_of(&bin, &profile, &format!("{url}/ui#job={year}"));
    let out = Command::new("date")
        .args(["-d", &format!("@{}", year_at.floor()), "+%Y-%m-%d %H:%M"])
        .output()
        .unwrap();
    let deadline = format!(
        "deadline: <bdi><b>{}</b>",
        String::from_utf8(out.stdout).unwrap().trim()
    );
    assert!(dom.contains(&deadline), "{deadline} not in:\n{dom}");
}

/// 150 jobs: the page lists one page of 100, newest first, says how many there are, and pages
/// on; a job's view shows whether or not the job is on the page listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_lists_jobs_a_page_at_a_time() {
    let Some(bin) = chromium_or_skip("ui_lists_jobs_a_page_at_a_time") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_sup, url) = start_supervisor(dir.path(), &[]);
    let http = reqwest::Client::new();
    let mut uuids = Vec::new();
    for i in 0..150u32 {
        let u = uuid(0x6000 + i);
        let init = json!({"framework": "marathon", "name": format!("job-{i:03}"), "job_duration": 40, "deadline": 600, "desv_deadline": 0.1, "uuid": u});
        post_ok(&http, &format!("{url}/initTask"), &init).await;
        uuids.push(u);
    }
    let profile = dir.path().join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    // The oldest job selected: not on the first page (newest first), shown all the same.
    let dom = dom_of(&bin, &profile, &format!("{url}/ui#job={}", uuids[0]));
    assert_eq!(dom.matches("data-uuid=").count(), 100, "{dom}");
    assert!(
        dom.contains(">job-149</td>") && dom.contains(">job-050</td>"),
        "{dom}"
    );
    assert!(!dom.contains(">job-049</td>"), "{dom}");
    assert!(
        dom.contains("<span id=\"page-info\">1–100 of 150</span>"),
        "{dom}"
    );
    assert!(
        dom.contains("<span id=\"job-count\" class=\"count\">(150)</span>"),
        "{dom}"
    );
    assert!(
        !dom.contains("id=\"job-view\" hidden"),
        "job view hidden:\n{dom}"
    );
    assert!(dom.contains("<bdi>job-000</bdi>"), "{dom}");
}
