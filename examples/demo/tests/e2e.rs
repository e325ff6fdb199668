//! The demo end to end, reduced (`--quick`: one Chronos and one Marathon job, about a minute):
//! the real testbed, supervisor, collector, launcher, shell-trap and LINPACK as processes.
//!
//! Needs root (the testbed's cgroups); skipped with a notice otherwise. The component binaries
//! are the ones `cargo test --workspace` has just built next to the demo (every component has
//! integration tests, so cargo builds its binary); when one is missing (`cargo test -p demo`
//! alone), the demo builds them itself with `cargo build --profile dev`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const COMPONENTS: [&str; 7] = [
    "testbed",
    "supervisor",
    "launcher",
    "cgroup-collector",
    "shell-trap",
    "linpack",
    "burn",
];

/// What of the run still runs, as `pid: command` (the demo's own reader of the run's marker).
fn marked_processes(run: &str) -> Vec<String> {
    demo::cleanup::marked_processes(run)
        .into_iter()
        .map(|(pid, cmd)| format!("{pid}: {cmd}"))
        .collect()
}

fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(prefix))
        .filter(|p| p.exists())
        .collect();
    if root.join(prefix).exists() {
        found.push(root.join(prefix));
    }
    found
}

#[test]
fn quick_demo_runs_resizes_reports_and_leaves_nothing() {
    if !testkit::is_root() {
        let why = "the demo's testbed needs root for its cgroups";
        let _ = testkit::skip_unless_required(&["QOS_REQUIRE_CGROUPS"], why, "the quick demo");
        return;
    }
    let demo = PathBuf::from(env!("CARGO_BIN_EXE_demo"));
    let dir = demo.parent().expect("the demo binary has a directory");
    let out = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(&demo);
    cmd.args(["--quick", "--timeout", "100", "--out"])
        .arg(out.path())
        .env_remove("QOS_SUPERVISOR_URL");
    if std::env::var_os("QOS_DEMO_TEST_BUILD").is_none()
        && COMPONENTS.iter().all(|c| dir.join(c).is_file())
    {
        cmd.arg("--bin-dir").arg(dir);
    } else {
        cmd.args(["--profile", "dev"]);
    }
    let started = Instant::now();
    let output = cmd.output().expect("the demo runs");
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    eprintln!(
        "demo --quick took {:.0} s\n{stderr}\n{stdout}",
        took.as_secs_f64()
    );
    assert!(
        took < Duration::from_secs(400),
        "demo --quick took {took:?}"
    );

    // The summary table on stdout.
    assert!(stdout.contains("framework"), "no table header:\n{stdout}");
    assert!(
        stdout.contains("chronos") && stdout.contains("marathon"),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("total")), "{stdout}");
    // Resizes were printed as they happened, with a reason.
    assert!(
        stderr.contains(" → ")
            && (stderr.contains("UNDER_PERFORMANT") || stderr.contains("OVER_PERFORMANT")),
        "no resize line:\n{stderr}"
    );

    // The report files.
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report.json"),
    )
    .expect("report.json is JSON");
    let md = std::fs::read_to_string(out.path().join("report.md")).expect("report.md");
    assert!(md.contains("| job |"), "{md}");
    let totals = &report["totals"];
    assert_eq!(totals["jobs"], 2, "{totals}");
    assert_eq!(totals["completed"], 2, "every job completed: {totals}");
    assert!(totals["resizes"].as_u64().unwrap_or(0) >= 1, "{totals}");
    for job in report["jobs"].as_array().expect("jobs") {
        assert_eq!(job["state"], "completed", "{job}");
        assert!(
            job["cpu_seconds_used"].as_f64().unwrap_or(0.0) > 0.0,
            "{job}"
        );
    }

    // Nothing left: the demo's own check, and ours.
    assert_eq!(
        report["leftovers"],
        serde_json::json!([]),
        "{}",
        report["leftovers"]
    );
    let run = report["run_id"].as_str().expect("run_id");
    let prefix = report["cgroup_prefix"].as_str().expect("cgroup_prefix");
    assert_eq!(marked_processes(run), Vec::<String>::new());
    assert_eq!(cgroups_named(prefix), Vec::<PathBuf>::new());
}
