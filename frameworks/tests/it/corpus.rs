//! The readers against the fidelity corpus (`corpus/` at the workspace root, sources in its
//! README): every real app definition, Chronos job and Marathon response collected from the
//! frameworks' own documentation is read, and what it says is what the reader gives.

use std::path::PathBuf;

use frameworks::marathon::{Deployment, MarathonInfo, MarathonTask};
use frameworks::{AppId, ChronosJob, MarathonApp};
use serde_json::Value;

fn corpus(dir: &str) -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "{} is empty", dir.display());
    out
}

#[test]
fn every_real_marathon_app_is_read() {
    for (name, raw) in corpus("marathon/apps") {
        let app = MarathonApp::try_from(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let id: AppId = app
            .id()
            .unwrap_or_else(|| panic!("{name}: no id"))
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(id.as_str().starts_with('/'), "{name}");
        // Numbers as the file writes them (numbers or numeric strings).
        let num = |k: &str| raw.get(k).and_then(frameworks::lenient::as_f64);
        assert_eq!(app.cpus(), num("cpus"), "{name}: cpus");
        assert_eq!(app.mem(), num("mem"), "{name}: mem");
        assert_eq!(
            app.docker_image(),
            raw.pointer("/container/docker/image")
                .and_then(Value::as_str),
            "{name}"
        );
        // Nothing is lost on the way back.
        let back = serde_json::to_value(&app).unwrap();
        assert_eq!(back, raw, "{name}: round trip");
    }
}

#[test]
fn every_real_chronos_job_is_read() {
    for (name, raw) in corpus("chronos/jobs") {
        let job = ChronosJob::try_from(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(job.name(), raw["name"].as_str(), "{name}");
        assert_eq!(
            job.cpus(),
            raw.get("cpus").and_then(frameworks::lenient::as_f64),
            "{name}"
        );
        match raw.get("schedule").and_then(Value::as_str) {
            Some(s) => {
                let sched = job
                    .schedule()
                    .unwrap_or_else(|e| panic!("{name}: {e}"))
                    .unwrap_or_else(|| panic!("{name}: schedule {s} not read"));
                assert_eq!(
                    sched.repetitions().is_none(),
                    s.starts_with("R/"),
                    "{name}: {s}"
                );
            }
            None => assert!(raw.get("parents").is_some(), "{name}: neither"),
        }
        let back = serde_json::to_value(&job).unwrap();
        assert_eq!(back, raw, "{name}: round trip");
    }
}

#[test]
fn every_real_marathon_response_is_read() {
    let mut seen = 0;
    for (name, raw) in corpus("marathon/responses") {
        let apps: Vec<Value> = match (&raw.get("apps"), &raw.get("app")) {
            (Some(Value::Array(a)), _) => a.clone(),
            (_, Some(a)) => vec![(*a).clone()],
            _ => Vec::new(),
        };
        for a in apps {
            let app = MarathonApp::try_from(a.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let tasks = app.tasks();
            assert_eq!(
                tasks.len(),
                a.get("tasks").and_then(Value::as_array).map_or(0, Vec::len),
                "{name}"
            );
            // A task of any era reads as running exactly when it has started.
            for t in tasks {
                let started = t.started_at.is_some();
                match t.state.as_deref() {
                    Some(s) => assert_eq!(t.is_running(), s == "TASK_RUNNING", "{name}"),
                    None => assert_eq!(t.is_running(), started, "{name} (0.9: no state)"),
                }
            }
            seen += 1;
        }
        if let Some(tasks) = raw.get("tasks") {
            let tasks: Vec<MarathonTask> =
                serde_json::from_value(tasks.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(tasks.iter().all(|t| !t.id.is_empty()), "{name}");
            seen += 1;
        }
        if raw.is_array() {
            let d: Vec<Deployment> =
                serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(d.iter().all(|d| !d.affected_apps.is_empty()), "{name}");
            seen += 1;
        }
        if raw.get("frameworkId").is_some() {
            let info: MarathonInfo =
                serde_json::from_value(raw.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(info.version().is_some(), "{name}");
            seen += 1;
        }
    }
    assert!(seen >= 10, "every response file was read ({seen})");
}
