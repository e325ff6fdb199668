//! The command-line contract and the resize endpoint on fixture cgroup trees (no root needed).

use std::fs;
use std::process::Command;

use serde_json::json;

use crate::util;

#[test]
fn once_prints_node_and_every_discovered_or_named_cgroup() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let docker_id = "d".repeat(64);
    util::fixture_v1(
        root,
        &format!("docker/{docker_id}"),
        3_000_000_000,
        250,
        50,
        150_000,
    );
    util::fixture_v1(
        root,
        "qos-testbed/agent1/task-1",
        1_500_000_000,
        100,
        40,
        50_000,
    );
    util::fixture_v1(root, "custom/thing", 42, 0, 0, -1);
    let meta = root.join("meta");
    let uuid = util::job_uuid();
    util::fixture_meta(&meta, "agent1", "task-1", &uuid);

    let snap = util::once(&[
        "--cgroup-root",
        root.to_str().unwrap(),
        "--testbed-meta-dir",
        meta.to_str().unwrap(),
        "--cgroup",
        "custom/thing",
    ]);
    assert!(snap["node"]["cpus"].as_u64().unwrap() >= 1, "{snap}");
    assert!(snap["node"]["memory"]["total"].as_u64().unwrap() > 0);
    assert!(snap["at"].as_f64().unwrap() > 1.6e9);
    let d = util::container(&snap, &format!("/docker/{docker_id}"));
    assert_eq!(
        (d["runtime"].as_str(), d["id"].as_str()),
        (Some("docker"), Some(docker_id.as_str()))
    );
    assert_eq!(
        (
            d["total_secs"].as_f64(),
            d["user_secs"].as_f64(),
            d["system_secs"].as_f64()
        ),
        (Some(3.0), Some(2.5), Some(0.5))
    );
    assert_eq!(
        (
            d["quota_cpus"].as_f64(),
            d["throttled_secs"].as_f64(),
            d["nr_throttled"].as_u64()
        ),
        (Some(1.5), Some(0.25), Some(4))
    );
    assert!(d["uuid"].is_null());
    let t = util::container(&snap, "/qos-testbed/agent1/task-1");
    assert_eq!(
        (
            t["runtime"].as_str(),
            t["uuid"].as_str(),
            t["quota_cpus"].as_f64()
        ),
        (Some("testbed"), Some(uuid.as_str()), Some(0.5))
    );
    let n = util::container(&snap, "/custom/thing");
    assert_eq!(
        (n["runtime"].as_str(), n["quota_cpus"].as_f64()),
        (Some("named"), None)
    );
    assert_eq!(snap["containers"].as_array().unwrap().len(), 3);

    // Only the named one.
    let snap = util::once(&[
        "--cgroup-root",
        root.to_str().unwrap(),
        "--no-discovery",
        "--cgroup",
        "custom/thing",
    ]);
    assert_eq!(snap["containers"].as_array().unwrap().len(), 1);
}

/// A host without Docker: `--once --cgroup DIR` (without `--no-docker`, with and without
/// discovery) warns once on stderr and measures the raw cgroups, Docker ones included (measured,
/// not mapped); a cgroup holding `cpuacct.stat` but no `cpuacct.usage` is read too.
#[test]
fn once_without_docker_warns_once_and_measures_raw_cgroups() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let docker_id = "e".repeat(64);
    util::fixture_v1(
        root,
        &format!("docker/{docker_id}"),
        2_000_000_000,
        150,
        50,
        -1,
    );
    let stat_only = root.join("stat-only");
    fs::create_dir_all(&stat_only).unwrap();
    fs::write(stat_only.join("cpuacct.stat"), "user 120\nsystem 30\n").unwrap();
    let no_daemon = root.join("no-such-docker.sock");
    let no_daemon = format!("unix://{}", no_daemon.display());
    for extra in [&[][..], &["--no-discovery"][..]] {
        let out = Command::new(util::bin())
            .args(["--once", "--output", "json", "--cgroup-root"])
            .arg(root)
            .args(["--docker-host", &no_daemon, "--cgroup"])
            .arg(&stat_only)
            .args(extra)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{extra:?}: {}\n{err}", out.status);
        assert_eq!(
            err.matches("Docker is not available").count(),
            1,
            "one warning: {err}"
        );
        assert!(err.contains("measured but not mapped"), "{err}");
        let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let named = util::container(&snap, &stat_only.display().to_string());
        assert_eq!(
            (named["total_secs"].as_f64(), named["user_secs"].as_f64()),
            (Some(1.5), Some(1.2)),
            "total = user + system without cpuacct.usage: {snap}"
        );
        let docker = snap["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["runtime"] == "docker");
        if extra.is_empty() {
            let d = docker.expect("the Docker container is measured");
            assert_eq!(d["total_secs"].as_f64(), Some(2.0));
            assert!(d["uuid"].is_null(), "not mapped without the API");
        } else {
            assert!(docker.is_none(), "--no-discovery reads only --cgroup");
        }
    }
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    let tree = tempfile::tempdir().unwrap();
    util::fixture_v1(tree.path(), "x", 1, 0, 0, -1);
    let run = |args: &[&str]| {
        let o = Command::new(util::bin()).args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let root = tree.path().to_str().unwrap();
    let (code, err) = run(&[
        "--once",
        "--no-docker",
        "--cgroup-root",
        root,
        "--cgroup",
        "/no/such/cgroup",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such cgroup: /no/such/cgroup"), "{err}");
    let (code, err) = run(&["--once", "--cgroup-root", root, "--period", "0"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("period"), "{err}");
    let (code, err) = run(&["--once", "--cgroup-root", root, "--supervisor", "ftp://x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("supervisor"), "{err}");
    // Accepted by a prefix check, refused by the client only once the agent ran (exit 1, as a
    // "credential file <inline>"): the same rule as the client's now, before anything starts.
    for url in ["http://", "http://sup:99999", "http://sup:30000/?a=1"] {
        let (code, err) = run(&["--once", "--cgroup-root", root, "--supervisor", url]);
        assert_eq!(code, Some(2), "{url}: {err}");
        assert!(err.contains("`supervisor`") && err.contains(url), "{err}");
        assert!(!err.contains("credential file"), "{err}");
    }
    let empty = tempfile::tempdir().unwrap();
    let (code, err) = run(&["--once", "--cgroup-root", empty.path().to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no cgroup hierarchy"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_is_authenticated_bounded_and_only_for_mapped_containers() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path();
    let meta = root.join("meta");
    let (job, job_v2) = (util::job_uuid(), util::job_uuid());
    util::fixture_v1(root, "qos-testbed/a1/job", 1, 0, 0, 50_000);
    util::fixture_meta(&meta, "a1", "job", &job);
    util::fixture_v1(root, "qos-testbed/a1/unmapped", 1, 0, 0, 50_000);
    // A v2 task without the cpu controller (like the hybrid `unified` tree).
    util::fixture_v2(root, "qos-testbed/a1/v2job", 10, 5, 5);
    util::fixture_meta(&meta, "a1", "v2job", &job_v2);

    let args = [
        "--no-docker",
        "--cgroup-root",
        root.to_str().unwrap(),
        "--testbed-meta-dir",
        meta.to_str().unwrap(),
        "--period",
        "0.1",
    ];
    let agent = util::Agent::start(&[&args[..], &["--resize-token", "t0k"]].concat());
    let snap = agent
        .wait_for("both jobs mapped", std::time::Duration::from_secs(5), |s| {
            let cs = s["containers"].as_array().unwrap();
            cs.iter().any(|c| c["uuid"] == job.as_str())
                && cs.iter().any(|c| c["uuid"] == job_v2.as_str())
        })
        .await;
    let cpus = snap["node"]["cpus"].as_f64().unwrap();
    let quota = root.join("cpu/qos-testbed/a1/job/cpu.cfs_quota_us");

    let cases = [
        (None, json!({"uuid": job, "cpus": 1.0}), 401, "unauthorized"),
        (
            Some("nope"),
            json!({"uuid": job, "cpus": 1.0}),
            401,
            "unauthorized",
        ),
        (Some("t0k"), json!({"uuid": job}), 400, "invalid_body"),
        (
            Some("t0k"),
            json!({"uuid": job, "cpus": cpus + 1.0}),
            422,
            "invalid_field",
        ),
        (
            Some("t0k"),
            json!({"uuid": job, "cpus": 0.0}),
            422,
            "invalid_field",
        ),
        (
            Some("t0k"),
            json!({"uuid": job, "cpus": 0.001}),
            422,
            "invalid_field",
        ),
        (
            Some("t0k"),
            json!({"uuid": util::job_uuid(), "cpus": 1.0}),
            404,
            "not_found",
        ),
        (
            Some("t0k"),
            json!({"uuid": "unmapped", "cpus": 1.0}),
            404,
            "not_found",
        ),
        (
            Some("t0k"),
            json!({"uuid": job_v2, "cpus": 1.0}),
            409,
            "no_cpu_controller",
        ),
        // Not a job UUID: refused naming it, not echoed (a 1 MB one was, in the answer and in a
        // WARN line of the log).
        (
            Some("t0k"),
            json!({"uuid": "u".repeat(1 << 20), "cpus": 1.0}),
            422,
            "invalid_field",
        ),
        (
            Some("t0k"),
            json!({"uuid": "../x", "cpus": 1.0}),
            422,
            "invalid_field",
        ),
    ];
    for (token, body, status, code) in cases {
        let (st, b) = agent.resize(token, body.clone()).await;
        let shown: String = body.to_string().chars().take(200).collect();
        assert_eq!(
            (st, b["error"]["code"].as_str()),
            (status, Some(code)),
            "{shown} → {b}"
        );
        assert!(b.to_string().len() < 1000, "{shown} → {b}");
        assert_eq!(
            fs::read_to_string(&quota).unwrap().trim(),
            "50000",
            "refused request changed nothing"
        );
    }
    let (st, b) = agent
        .resize(Some("t0k"), json!({"uuid": job, "cpus": cpus}))
        .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (b["cpus"].as_f64(), b["container_id"].as_str()),
        (Some(cpus), Some("job"))
    );
    assert_eq!(
        fs::read_to_string(&quota).unwrap().trim(),
        format!("{}", (cpus * 100_000.0) as u64)
    );
    let text = agent.metrics_text().await;
    assert!(
        text.contains("qos_collector_resizes_total{result=\"ok\"} 1"),
        "{text}"
    );

    // Without a resize token the endpoint is off.
    drop(agent);
    let agent = util::Agent::start(&args);
    let (st, b) = agent
        .resize(Some("t0k"), json!({"uuid": job, "cpus": 1.0}))
        .await;
    assert_eq!(
        (st, b["error"]["code"].as_str()),
        (403, Some("resize_disabled")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_cadvisor_and_node_exporter_names() {
    let tree = tempfile::tempdir().unwrap();
    let id = "e".repeat(64);
    util::fixture_v1(
        tree.path(),
        &format!("docker/{id}"),
        2_000_000_000,
        150,
        50,
        50_000,
    );
    let agent = util::Agent::start(&[
        "--no-docker",
        "--cgroup-root",
        tree.path().to_str().unwrap(),
    ]);
    let text = agent.metrics_text().await;
    let labels = format!("{{id=\"/docker/{id}\",name=\"{id}\",qos_uuid=\"\"}}");
    for (metric, value) in [
        ("container_cpu_usage_seconds_total", "2.0"),
        ("container_cpu_user_seconds_total", "1.5"),
        ("container_cpu_system_seconds_total", "0.5"),
        ("container_spec_cpu_quota", "50000.0"),
        ("container_spec_cpu_period", "100000.0"),
        ("container_cpu_cfs_periods_total", "10.0"),
        ("container_cpu_cfs_throttled_periods_total", "4.0"),
        ("container_cpu_cfs_throttled_seconds_total", "0.25"),
    ] {
        let line = format!("{metric}{labels} {value}");
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    for name in [
        "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}",
        "node_load1 ",
        "node_memory_MemTotal_bytes ",
        "node_memory_MemAvailable_bytes ",
        "node_memory_SwapTotal_bytes ",
        "node_filesystem_size_bytes{device=",
        "node_network_receive_bytes_total{device=\"lo\"}",
        "node_network_transmit_packets_total{device=\"lo\"}",
        "node_processes_pids ",
        "node_processes_threads ",
        "node_boot_time_seconds ",
        "qos_node_uptime_seconds ",
        "qos_node_free_cpus ",
        "qos_node_cpu_usage_ratio{cpu=\"total\"}",
        "qos_collector_samples_dropped_total ",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

/// A `/resize` body of the wrong shape names the field at fault (a number as a string, a
/// string as a number, a missing field, the wrong kind of body), and unknown routes and methods
/// answer the same `{"error": {"code", "message", "field"}}` as every other refusal. Before,
/// type errors left `field` null and an unknown route was a 404 with an empty body.
#[tokio::test]
async fn body_errors_name_the_field_and_unknown_routes_answer_json() {
    let tree = tempfile::tempdir().unwrap();
    util::fixture_v1(tree.path(), "qos-testbed/a1/job", 1, 0, 0, 50_000);
    let root = tree.path().to_str().unwrap();
    let agent = util::Agent::start(&[
        "--no-docker",
        "--cgroup-root",
        root,
        "--period",
        "0.1",
        "--resize-token",
        "t0k",
    ]);
    let job = util::job_uuid();
    let cases = [
        (json!({"uuid": job, "cpus": "1.5"}), "cpus"),
        (json!({"uuid": job, "cpus": "NaN"}), "cpus"),
        (json!({"uuid": job, "cpus": [1]}), "cpus"),
        (json!({"uuid": 7, "cpus": 1.0}), "uuid"),
        (json!({"cpus": 1.0}), "uuid"),
        (json!({"uuid": job}), "cpus"),
        (json!([job, 1.0]), "body"),
        (json!("x".repeat(1 << 20)), "body"),
    ];
    for (body, field) in cases {
        let (st, b) = agent.resize(Some("t0k"), body.clone()).await;
        let shown: String = body.to_string().chars().take(80).collect();
        assert_eq!(
            (
                st,
                b["error"]["code"].as_str(),
                b["error"]["field"].as_str()
            ),
            (400, Some("invalid_body"), Some(field)),
            "{shown} → {b}"
        );
        assert!(b.to_string().len() < 1000, "{shown} → {b}");
    }
    let http = reqwest::Client::new();
    for (method, path, status) in [
        (reqwest::Method::GET, "/nope", 404),
        (reqwest::Method::POST, "/metrics/x", 404),
        (reqwest::Method::GET, "/resize", 405),
        (reqwest::Method::DELETE, "/metrics", 405),
    ] {
        let r = http
            .request(method.clone(), format!("{}{path}", agent.base))
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        let b: serde_json::Value = r.json().await.unwrap_or_default();
        assert_eq!(st, status, "{method} {path} → {b}");
        assert!(
            b["error"]["code"].is_string() && b["error"]["message"].is_string(),
            "{method} {path} → {st} {b}"
        );
    }
}
