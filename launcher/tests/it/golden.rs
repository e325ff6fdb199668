//! Golden tests: each rewrite compared byte for byte with a reviewed file in `tests/golden/`.
//! Run with `LAUNCHER_BLESS=1` to (re)write the files after an intended change, then review the
//! diff.

use std::path::{Path, PathBuf};

use launcher::rewrite::{self, JobUuid, Pace, Settings, Strategy, SupervisorUrl};
use qos_core::Framework;
use serde_json::{Value, json};

use crate::support::{data, example, read_json};

const UUID: &str = "0123456789ab4def8123456789abcdef";
/// 2023-11-14T22:13:20Z.
const SUBMITTED_AT: f64 = 1_700_000_000.0;
const TOKEN: &str = "rt-0123456789abcdef";

fn settings() -> Settings {
    Settings::new(SupervisorUrl::parse("http://10.0.0.2:30000").unwrap())
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"))
}

/// Rewrites `input` and compares the result with `tests/golden/<name>.json`.
fn check(name: &str, framework: Framework, input: &Path, settings: &Settings, at: f64) -> Value {
    let job = read_json(input);
    let prepared = rewrite::prepare(
        framework,
        &job,
        &input.display().to_string(),
        settings,
        JobUuid::parse(UUID).unwrap(),
        at,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let actual = json!({
        "framework": framework,
        "request": prepared.request(Some(TOKEN)).unwrap(),
        "registration": prepared.registration,
        "warnings": prepared.warnings,
    });
    let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    let path = golden_path(name);
    if std::env::var_os("LAUNCHER_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with LAUNCHER_BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(text, expected, "golden file {} differs", path.display());
    actual
}

/// Every field of the input other than those the launcher owns must be in the output, unchanged.
fn assert_passthrough(input: &Value, output: &Value, owned: &[&str]) {
    let (input, output) = (input.as_object().unwrap(), output.as_object().unwrap());
    for (k, v) in input {
        if owned.contains(&k.as_str()) {
            continue;
        }
        assert_eq!(
            output.get(k),
            Some(v),
            "field {k} was not passed through untouched"
        );
    }
}

#[test]
fn chronos_thesis_openmp_linpack1() {
    let input = example("thesis/openmpLinpack1.json");
    let out = check(
        "chronos_openmpLinpack1",
        Framework::Chronos,
        &input,
        &settings(),
        SUBMITTED_AT,
    );
    let req = &out["request"];
    assert_eq!(
        req["schedule"], "R4//PT1S",
        "back to back: the count and start are kept (not made infinite), the period is 1 s"
    );
    assert!(req.get("qos").is_none());
    assert_eq!(out["registration"]["iterations"], 4);
    assert_eq!(out["warnings"], json!([]));
    assert_passthrough(
        &read_json(&input),
        req,
        // Numbers and booleans written as strings are sent as numbers and booleans.
        &[
            "command", "qos", "retries", "schedule", "cpus", "mem", "async",
        ],
    );
    assert_eq!(
        (&req["cpus"], &req["mem"], &req["async"]),
        (&json!(1), &json!(500), &json!(false))
    );
}

#[test]
fn chronos_thesis_jobs_all_rewrite() {
    for i in 1..=6 {
        let input = example(&format!("thesis/openmpLinpack{i}.json"));
        let job = read_json(&input);
        let p = rewrite::prepare(
            Framework::Chronos,
            &job,
            "x",
            &settings(),
            JobUuid::parse(UUID).unwrap(),
            SUBMITTED_AT,
        )
        .unwrap();
        assert_eq!(p.registration.name, format!("openmpLinpack{i}"));
        assert_eq!(p.registration.cpus, 1.0);
    }
}

#[test]
fn chronos_shell_false_with_absolute_times() {
    // 2029-12-31T23:50:00Z: ten minutes before the schedule's start.
    let out = check(
        "chronos_shell_false",
        Framework::Chronos,
        &data("chronos_shell_false.json"),
        &settings(),
        1_893_455_400.0,
    );
    assert_eq!(out["request"]["shell"], true);
    assert!(out["request"].get("arguments").is_none());
    assert_eq!(
        out["request"]["epsilon"], "PT30S",
        "the user's epsilon is kept"
    );
}

#[test]
fn marathon_thesis_openmp_linpack1() {
    let input = example("thesis/marathon_openmpLinpack1.json");
    let out = check(
        "marathon_openmpLinpack1",
        Framework::Marathon,
        &input,
        &settings(),
        SUBMITTED_AT,
    );
    let req = &out["request"];
    assert!(req.get("container").is_none());
    assert_eq!(req["taskKillGracePeriodSeconds"], 30);
    assert!(
        req["cmd"].as_str().unwrap().contains(" --grace 25 "),
        "shell-trap is done 5 s before Marathon's SIGKILL: {}",
        req["cmd"]
    );
    assert!(
        !req["cmd"].as_str().unwrap().contains("--strategy"),
        "no flag, no label: shell-trap's own default"
    );
    assert_eq!(req["labels"]["qos.uuid"], UUID);
    assert_passthrough(&read_json(&input), req, &["cmd", "qos", "container"]);
}

#[test]
fn marathon_big_app_passes_everything_through() {
    let mut s = settings();
    s.shell_trap.strategy = Some(Strategy::App);
    s.shell_trap.checkpoint_dir = "/shared/checkpoints".into();
    let input = data("marathon_big.json");
    let out = check(
        "marathon_big",
        Framework::Marathon,
        &input,
        &s,
        SUBMITTED_AT,
    );
    let req = &out["request"];
    assert_passthrough(
        &read_json(&input),
        req,
        &[
            "id",
            "cmd",
            "cpus",
            "instances",
            "env",
            "labels",
            "container",
            "upgradeStrategy",
            "networks",
            "qos",
        ],
    );
    assert_eq!(
        req["networks"],
        json!([{"mode": "host"}]),
        "the task uses host networking; the bridge goes to the container"
    );
    assert_eq!(
        req["taskKillGracePeriodSeconds"], 45,
        "the app's own grace period is kept"
    );
    let cmd = req["cmd"].as_str().unwrap();
    assert!(
        cmd.contains(" --strategy app --grace 40 --runtime docker "),
        "{cmd}"
    );
    assert_eq!(req["labels"]["team"], "analytics");
    assert_eq!(req["env"]["DB_PASSWORD"], json!({"secret": "db-pass"}));
    let container: Value =
        serde_json::from_str(req["env"]["QOS_CONTAINER"].as_str().unwrap()).unwrap();
    assert_eq!(container, read_json(&input)["container"]);
}

#[test]
fn marathon_command_app_runs_as_process() {
    let mut s = settings();
    s.shell_trap.grace_period = Some(12);
    let out = check(
        "marathon_command_app",
        Framework::Marathon,
        &data("marathon_command_app.json"),
        &s,
        SUBMITTED_AT,
    );
    let cmd = out["request"]["cmd"].as_str().unwrap();
    assert!(cmd.contains("--runtime process -- sh -c "), "{cmd}");
    assert_eq!(out["request"]["taskKillGracePeriodSeconds"], 12);
    assert!(cmd.contains(" --grace 9.6 "), "12 s minus a fifth: {cmd}");
}

#[test]
fn marathon_args_app_with_image() {
    let out = check(
        "marathon_args_app",
        Framework::Marathon,
        &data("marathon_args_app.json"),
        &settings(),
        SUBMITTED_AT,
    );
    assert!(out["request"].get("args").is_none());
    // The job file's label chooses the strategy, and stays in the app.
    assert!(
        out["request"]["cmd"]
            .as_str()
            .unwrap()
            .contains(" --strategy app --grace 25 ")
    );
    assert_eq!(out["request"]["labels"]["qos.checkpoint"], "app");
}

/// Rewrites a minimal process app with `labels` and `settings`.
fn checkpoint_app(labels: &Value, settings: &Settings) -> Result<rewrite::Prepared, String> {
    let job = json!({"id": "/ckpt", "cmd": "exec linpack 500", "cpus": 0.5, "labels": labels,
                     "qos": {"duration": 60, "deadline": 600, "desv_deadline": 0.1}});
    rewrite::prepare(
        Framework::Marathon,
        &job,
        "ckpt.json",
        settings,
        JobUuid::parse(UUID).unwrap(),
        SUBMITTED_AT,
    )
    .map_err(|e| e.to_string())
}

fn strategy_in(p: &rewrite::Prepared) -> Option<String> {
    let req = p.request(Some(TOKEN)).unwrap();
    let words: Vec<&str> = req["cmd"].as_str().unwrap().split(' ').collect();
    words
        .iter()
        .position(|w| *w == "--strategy")
        .map(|i| words[i + 1].to_owned())
}

#[test]
fn the_strategy_comes_from_the_flag_else_the_label() {
    for (label, flag, sent) in [
        (None, None, None),
        (Some("none"), None, Some("none")),
        (Some(" CRIU "), None, Some("criu")),
        (None, Some(Strategy::Auto), Some("auto")),
        (Some("app"), Some(Strategy::App), Some("app")),
        (Some("none"), Some(Strategy::App), Some("app")),
    ] {
        let labels = label.map_or_else(|| json!({}), |l| json!({"qos.checkpoint": l}));
        let mut s = settings();
        s.shell_trap.strategy = flag;
        let p = checkpoint_app(&labels, &s).unwrap();
        assert_eq!(strategy_in(&p).as_deref(), sent, "{label:?} {flag:?}");
        let overridden = label.is_some_and(|l| flag.is_some_and(|f| f.flag_value() != l.trim()));
        assert_eq!(
            p.notes,
            if overridden {
                vec!["--strategy app overrides the app's label qos.checkpoint=none".to_owned()]
            } else {
                Vec::new()
            },
            "{label:?} {flag:?}"
        );
    }
    for bad in [
        json!({"qos.checkpoint": "fast"}),
        json!({"qos.checkpoint": 1}),
    ] {
        let e = checkpoint_app(&bad, &settings()).unwrap_err();
        assert!(
            e.contains("labels.qos.checkpoint") && e.contains("\"app\""),
            "{bad}: {e}"
        );
    }
}

#[test]
fn a_short_kill_grace_period_is_warned_about() {
    let mut s = settings();
    s.shell_trap.grace_period = Some(3);
    let p = checkpoint_app(&json!({}), &s).unwrap();
    let req = p.request(Some(TOKEN)).unwrap();
    assert_eq!(req["taskKillGracePeriodSeconds"], 3);
    assert!(req["cmd"].as_str().unwrap().contains(" --grace 2.4 "));
    let warnings = rewrite_warnings(&p.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("leaves shell-trap 2.4 s to checkpoint"),
        "{}",
        p.warnings[0]
    );
}

#[test]
fn every_example_job_validates() {
    let dir = testkit::bins::workspace_root().join("examples/jobs");
    let mut n = 0;
    for sub in ["thesis", "local"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let job = read_json(&path);
            let framework = rewrite::detect_framework(&job).expect("framework detectable");
            let p = rewrite::prepare(
                framework,
                &job,
                &path.display().to_string(),
                &settings(),
                JobUuid::generate(),
                SUBMITTED_AT,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            assert!(p.request(Some(TOKEN)).is_ok());
            n += 1;
        }
    }
    assert_eq!(n, 16);
    for fw in ["chronos", "marathon"] {
        let c = frameworks::Credentials::load(dir.join(format!("credentials/{fw}.json"))).unwrap();
        assert_eq!(c.url().as_str(), "http://127.0.0.1:8080/");
    }
}

/// Rewrites a Chronos job built from `schedule` (deadline in 1800 s) with `pace`.
fn chronos_paced(schedule: &str, pace: Pace) -> rewrite::Prepared {
    let job = json!({"name": "paced", "command": "true", "schedule": schedule, "cpus": 1,
                     "qos": {"duration": 130, "deadline": 1800, "desv_deadline": 0.2}});
    let mut s = settings();
    s.pace = pace;
    rewrite::prepare(
        Framework::Chronos,
        &job,
        "paced.json",
        &s,
        JobUuid::parse(UUID).unwrap(),
        // 2029-12-31T23:50:00Z: ten minutes before 2030.
        1_893_455_400.0,
    )
    .unwrap_or_else(|e| panic!("{schedule}: {e}"))
}

fn schedule_of(p: &rewrite::Prepared) -> Value {
    p.request(Some(TOKEN)).unwrap()["schedule"].clone()
}

#[test]
fn back_to_back_replaces_only_the_period() {
    assert_eq!(Settings::new(settings().supervisor).pace, Pace::BackToBack);
    for (input, sent) in [
        ("R4//PT5M", "R4//PT1S"),
        (
            "R3/2030-01-01T00:00:00Z/PT10M",
            "R3/2030-01-01T00:00:00Z/PT1S",
        ),
        // The user's start text is kept as written, whatever its form.
        ("R3/2030-01-01T00:00Z/PT10M", "R3/2030-01-01T00:00Z/PT1S"),
        (
            "R2/2030-01-01T01:00:00.000+01:00/P1DT2H",
            "R2/2030-01-01T01:00:00.000+01:00/PT1S",
        ),
        ("R13//PT3M", "R13//PT1S"),
    ] {
        let p = chronos_paced(input, Pace::BackToBack);
        assert_eq!(schedule_of(&p), sent, "{input}");
        let parsed = frameworks::Schedule::parse(sent).unwrap();
        let original = frameworks::Schedule::parse(input).unwrap();
        assert_eq!(parsed.repetitions(), original.repetitions(), "{input}");
        assert_eq!(parsed.start(), original.start(), "{input}");
        assert_eq!(parsed.period_secs(), 1.0, "{input}");
        assert_eq!(
            p.registration.iterations,
            original.repetitions().map(|n| n as u32)
        );
        assert_eq!(p.notes.len(), 1, "{input}: {:?}", p.notes);
        let note = &p.notes[0];
        assert!(
            note.contains(&format!("{input:?} is sent as {sent:?}"))
                && note.contains("back to back")
                && note.contains("--pace schedule"),
            "{note}"
        );
        assert!(!note.contains('\n'), "one line: {note}");
        let warnings = rewrite_warnings(&p.warnings);
        assert!(warnings.is_empty(), "{input}: {warnings:?}");
    }
    // Already back to back, or a single run: nothing to say.
    for (input, sent) in [("R4//PT1S", "R4//PT1S"), ("R1//PT5M", "R1//PT1S")] {
        let p = chronos_paced(input, Pace::BackToBack);
        assert_eq!(schedule_of(&p), sent);
        assert!(p.notes.is_empty(), "{input}: {:?}", p.notes);
    }
}

#[test]
fn pace_schedule_keeps_the_period_and_warns_as_before() {
    for input in ["R4//PT5M", "R3/2030-01-01T00:00:00Z/PT10M", "R13//PT3M"] {
        let p = chronos_paced(input, Pace::Schedule);
        assert_eq!(schedule_of(&p), input);
        assert!(p.notes.is_empty(), "{input}: {:?}", p.notes);
    }
    let p = chronos_paced("R13//PT3M", Pace::Schedule);
    let warnings = rewrite_warnings(&p.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("a period of at most 139 s would fit"),
        "{}",
        warnings[0]
    );
}

#[test]
fn thesis_openmp_linpack3_no_longer_warns_back_to_back() {
    // 13 iterations, PT3M, deadline 1800 s: on its schedule the last run starts 2160 s in.
    let input = example("thesis/openmpLinpack3.json");
    let job = read_json(&input);
    assert_eq!(job["schedule"], "R13//PT3M");
    let prepare = |pace: Pace| {
        let mut s = settings();
        s.pace = pace;
        rewrite::prepare(
            Framework::Chronos,
            &job,
            "openmpLinpack3.json",
            &s,
            JobUuid::parse(UUID).unwrap(),
            SUBMITTED_AT,
        )
        .unwrap()
    };
    let scheduled = prepare(Pace::Schedule);
    let warnings = rewrite_warnings(&scheduled.warnings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("starts 2160 s after submission"));

    let paced = prepare(Pace::BackToBack);
    assert!(
        rewrite_warnings(&paced.warnings).is_empty(),
        "{:?}",
        paced.warnings
    );
    // The controller's own warning: by its declared 13 × 130 s (and 45 s to deploy each run),
    // even 2 CPUs miss 1800 s — the thesis reports this job missed.
    assert!(
        paced
            .warnings
            .iter()
            .any(|w| w.starts_with(rewrite::CONTROL_WARNING) && w.contains("AT_RISK")),
        "{:?}",
        paced.warnings
    );
    assert_eq!(schedule_of(&paced), "R13//PT1S");
    assert_eq!(paced.registration.iterations, Some(13));
    assert_eq!(paced.notes.len(), 1);
}

#[test]
fn back_to_back_still_refuses_a_start_after_the_deadline() {
    let job = json!({"name": "late", "command": "true", "schedule": "R2/2031-01-01T00:00:00Z/PT1M",
                     "qos": {"duration": 10, "deadline": 600, "desv_deadline": 0.2}});
    let e = rewrite::prepare(
        Framework::Chronos,
        &job,
        "late.json",
        &settings(),
        JobUuid::parse(UUID).unwrap(),
        SUBMITTED_AT,
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.message.contains("not before the deadline"), "{e}");
}

/// The rewrite's own warnings, without the controller's ([`rewrite::CONTROL_WARNING`]: what
/// the default controller will make of the job, tested with the controller).
fn rewrite_warnings(warnings: &[String]) -> Vec<&String> {
    warnings
        .iter()
        .filter(|w| !w.starts_with(rewrite::CONTROL_WARNING))
        .collect()
}
