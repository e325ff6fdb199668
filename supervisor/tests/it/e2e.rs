//! End to end: the real binary against the fake frameworks served over real HTTP, driven only
//! through HTTP — the real Marathon and Chronos clients do the resizing and the clean-up.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use testkit::http::{serve_chronos, serve_marathon};
use testkit::{ChronosCall, FakeChronos, FakeMarathon};

use crate::support::{get_json, uuid};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn thesis_jobs_end_to_end_over_http() {
    let marathon = FakeMarathon::new();
    let chronos = FakeChronos::new();
    let m = serve_marathon(marathon.clone()).await.unwrap();
    let c = serve_chronos(chronos.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let creds = |url: &str, file: &str| {
        let p = dir.path().join(file);
        std::fs::write(
            &p,
            json!({"url": url, "user": "u", "password": "p"}).to_string(),
        )
        .unwrap();
        p
    };
    let (mc, cc) = (
        creds(&m.url, "marathon.json"),
        creds(&c.url, "chronos.json"),
    );
    let cfg = dir.path().join("supervisor.toml");
    // The thesis' worked example reports its four runs (up to 1500 s after submission) at once:
    // its clocks are allowed that far ahead of the supervisor's.
    std::fs::write(
        &cfg,
        "policy = \"thesis\"\nmonitoring_period = 2\n[limits]\nclock_skew = 2000\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_supervisor"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("s.db"))
        .arg("--config")
        .arg(&cfg)
        .arg("-m")
        .arg(&mc)
        .arg("-c")
        .arg(&cc)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _proc = Proc(child);
    let url = serde_json::from_str::<Value>(&line).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        let req = http.post(format!("{url}{path}")).body(body.to_string());
        async move {
            let r = req.send().await.unwrap();
            assert!(
                r.status().is_success(),
                "{} {:?}",
                r.status(),
                r.text().await
            );
        }
    };

    // Chronos, the thesis' worked example with the container's timestamps.
    chronos.add_job("openmpLinpack1", 1.0, 4);
    let cu = uuid(21);
    let t0 = now();
    post("/initTask", json!({"framework": "chronos", "name": "openmpLinpack1", "job_duration": "400", "deadline": format!("{}", t0 + 1800.0), "desv_deadline": "0.2", "uuid": cu, "iterations": "4"})).await;
    for (k, (s, f)) in [
        (45.0, 525.0),
        (560.0, 880.0),
        (920.0, 1200.0),
        (1240.0, 1500.0),
    ]
    .into_iter()
    .enumerate()
    {
        post("/updateTask", json!({"name": "openmpLinpack1", "started_at": format!("{}", t0 + s), "finished_at": format!("{}", t0 + f), "hostname": "agent1", "uuid": cu})).await;
        let want = [1, 2, 2, 2][k];
        wait_for("the Chronos resize", || chronos.puts().len() >= want).await;
    }
    wait_for("the Chronos job to be deleted", || {
        !chronos.exists("openmpLinpack1")
    })
    .await;
    assert_eq!(chronos.puts(), [1.4, 1.8]);
    assert!(
        !chronos
            .calls()
            .iter()
            .any(|c| matches!(c, ChronosCall::Start(_)))
    );

    // Marathon: 8 CPU-s of work in 10 s, checked every 2 s; it uses far more than planned.
    marathon.add_app("/linpack-m", 1.0);
    let mu = uuid(22);
    post("/initTask", json!({"framework": "marathon", "name": "linpack-m", "job_duration": 8, "deadline": 10, "desv_deadline": 0.1, "uuid": mu})).await;
    let start = now();
    post("/initMarathonApp", json!({"uuid": mu, "started_at": start})).await;
    let mut k = 0.0;
    let admin_samples = |at: f64, cpu: f64| json!({"node": "n1", "samples": [{"uuid": mu, "container_id": "c1", "at": at, "user_secs": cpu, "system_secs": 0.0, "total_secs": cpu}]});
    while marathon.resizes().is_empty() {
        k += 1.0;
        assert!(k < 100.0, "no Marathon resize");
        post(
            "/api/v1/samples",
            admin_samples(now(), 2.0 * (now() - start)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        marathon.resizes()[0],
        (0.6, false),
        "OVER: shrink by 0.4 through PUT /v2/apps"
    );
    assert_eq!(marathon.cpus("/linpack-m"), Some(0.6));
    post("/endMarathonApp", json!({"uuid": mu, "finished_at": now()})).await;
    wait_for("the Marathon app to be deleted", || {
        !marathon.exists("/linpack-m")
    })
    .await;
    let job: Value = get_json(&http, &format!("{url}/api/v1/jobs/{mu}")).await;
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["cpus"], 0.6);
    // The Chronos job's cleanup row is written once Chronos has answered the DELETE: await it.
    let history = format!("{url}/api/v1/jobs/{cu}/history");
    testkit::wait::until(
        "the Chronos job's \"completed … deleted\" history row",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async {
            let hist: Value = get_json(&http, &history).await;
            let deleted = hist.as_array().unwrap().iter().any(|r| {
                r["kind"] == "completed" && r["reason"].as_str().unwrap().contains("deleted")
            });
            if deleted { Ok(()) } else { Err(hist) }
        },
    )
    .await;
}
