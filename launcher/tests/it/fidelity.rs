//! Job files as the frameworks take them: Chronos starts in the past, numbers and booleans written
//! as strings, and the Marathon features the shell-trap wrapper carries, refuses or warns about.
//! (The real third-party payloads of `corpus/` go through the same paths in `corpus.rs`.)

use launcher::rewrite::{self, JobUuid, Pace, Settings, SupervisorUrl};
use qos_core::Framework;
use serde_json::{Value, json};

const UUID: &str = "0123456789ab4def8123456789abcdef";
/// 2023-11-14T22:13:20Z.
const NOW: f64 = 1_700_000_000.0;

fn settings(pace: Pace) -> Settings {
    let mut s = Settings::new(SupervisorUrl::parse("http://10.0.0.2:30000").unwrap());
    s.pace = pace;
    s
}

fn qos() -> Value {
    json!({"duration": 10, "deadline": 1800, "desv_deadline": 0.2})
}

fn prepare(framework: Framework, mut job: Value, pace: Pace) -> Result<rewrite::Prepared, String> {
    job["qos"] = qos();
    rewrite::prepare(
        framework,
        &job,
        "job.json",
        &settings(pace),
        JobUuid::parse(UUID).unwrap(),
        NOW,
    )
    .map_err(|e| e.message)
}

fn request(p: &rewrite::Prepared) -> Value {
    p.request(Some("rt-token")).unwrap()
}

/// The real schedules of the issue (Chronos' own docs and sample jobs): a start years in the past
/// would be skipped by Chronos 2.x; it is moved to now, with a warning, and the count is kept.
#[test]
fn a_start_chronos_would_skip_is_moved_to_now() {
    for (schedule, pace, sent) in [
        ("R3/2014-09-25T17:22:00Z/PT2M", Pace::Schedule, "R3//PT2M"),
        ("R3/2014-09-25T17:22:00Z/PT2M", Pace::BackToBack, "R3//PT1S"),
        ("R10/2012-10-01T05:52:00Z/PT2S", Pace::Schedule, "R10//PT2S"),
        (
            "R10/2012-10-01T05:52:00Z/PT2S",
            Pace::BackToBack,
            "R10//PT1S",
        ),
    ] {
        let job = json!({"name": "sample", "command": "echo hi", "cpus": 1, "schedule": schedule});
        let p = prepare(Framework::Chronos, job, pace).unwrap();
        assert_eq!(request(&p)["schedule"], sent, "{schedule} {pace:?}");
        assert_eq!(
            p.registration.iterations,
            Some(schedule[1..].split('/').next().unwrap().parse().unwrap())
        );
        let w: Vec<&String> = p
            .warnings
            .iter()
            .filter(|w| w.contains("JobUtils.skipForward"))
            .collect();
        assert_eq!(w.len(), 1, "{schedule}: {:?}", p.warnings);
        assert!(
            w[0].contains("none of the") && w[0].contains("moved to now"),
            "{}",
            w[0]
        );
    }
}

#[test]
fn a_start_within_epsilon_or_ahead_is_kept() {
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(NOW as i64 + secs, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    // 10 minutes ago: within the launcher's epsilon (the 1800 s deadline window).
    let recent = format!("R2/{}/PT1M", at(-600));
    let p = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": recent}),
        Pace::Schedule,
    )
    .unwrap();
    assert_eq!(request(&p)["schedule"], recent.as_str());
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // The same start with the job's own epsilon of 60 s: it would be skipped.
    let p = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": recent, "epsilon": "PT60S"}),
        Pace::Schedule,
    )
    .unwrap();
    assert_eq!(request(&p)["schedule"], "R2//PT1M");
    assert_eq!(request(&p)["epsilon"], "PT60S");
    // A scheduleTimeZone can move the start by up to 14 h: only a start older than that moves.
    let p = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": format!("R2/{}/PT1M", at(-3 * 3600)),
               "scheduleTimeZone": "America/New_York"}),
        Pace::Schedule,
    )
    .unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Ahead: kept.
    let ahead = format!("R2/{}/PT1M", at(300));
    let p = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": ahead}),
        Pace::Schedule,
    )
    .unwrap();
    assert_eq!(request(&p)["schedule"], ahead.as_str());
    // A bad epsilon is named.
    let e = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": recent, "epsilon": "soon"}),
        Pace::Schedule,
    )
    .unwrap_err();
    assert!(
        e.contains("field epsilon: \"soon\" is not an ISO 8601 duration"),
        "{e}"
    );
}

#[test]
fn numbers_and_booleans_written_as_strings_are_sent_typed() {
    let p = prepare(
        Framework::Marathon,
        json!({"id": "/a", "cmd": "sleep 1", "cpus": "0.5", "mem": "64", "disk": "0",
               "instances": "1", "gpus": "0", "ports": ["0"], "requirePorts": "false",
               "backoffFactor": "1.15", "maxLaunchDelaySeconds": "300"}),
        Pace::BackToBack,
    )
    .unwrap();
    let r = request(&p);
    for (k, v) in [
        ("cpus", json!(0.5)),
        ("mem", json!(64)),
        ("disk", json!(0)),
        ("instances", json!(1)),
        ("gpus", json!(0)),
        ("ports", json!([0])),
        ("requirePorts", json!(false)),
        ("backoffFactor", json!(1.15)),
        ("maxLaunchDelaySeconds", json!(300)),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    let p = prepare(
        Framework::Chronos,
        json!({"name": "a", "command": "x", "cpus": 1, "schedule": "R2//PT1M", "cpus": "0.5",
               "mem": "64", "disk": "128", "shell": "true", "retries": "0",
               "concurrent": "true", "async": "true"}),
        Pace::Schedule,
    )
    .unwrap();
    let r = request(&p);
    assert_eq!(
        (&r["cpus"], &r["mem"], &r["disk"], &r["shell"]),
        (&json!(0.5), &json!(64), &json!(128), &json!(true))
    );
    assert_eq!(
        (&r["concurrent"], &r["async"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(
        p.warnings.len(),
        2,
        "concurrent and async: {:?}",
        p.warnings
    );
    for (framework, job, field) in [
        (
            Framework::Marathon,
            json!({"id": "/a", "cmd": "true", "mem": "64MB"}),
            "field mem: must be a number, got \"64MB\"",
        ),
        (
            Framework::Marathon,
            json!({"id": "/a", "cmd": "true", "portDefinitions": [{"port": "http"}]}),
            "field portDefinitions[0].port: must be a whole number",
        ),
        (
            Framework::Chronos,
            json!({"name": "a", "command": "x", "cpus": 1, "schedule": "R1//PT1M", "disk": "big"}),
            "field disk: must be a number, got \"big\"",
        ),
    ] {
        let e = prepare(framework, job, Pace::Schedule).unwrap_err();
        assert!(e.contains(field), "{e}");
    }
}

/// The lower bounds of Marathon's `App` type are checked before anything is registered: a
/// `cpus` of 0.0001 or a `mem` of -1 went through `validate`, was registered, and only
/// Marathon's 422 (`/mem`: `error.min`) at submit time refused it.
#[test]
fn numbers_below_marathons_minimums_are_refused_naming_the_field() {
    for (field, value, message) in [
        (
            "cpus",
            json!(0.0001),
            "field cpus: must be at least 0.001 (Marathon refuses less), got 0.0001",
        ),
        (
            "cpus",
            json!("0.0005"),
            "field cpus: must be at least 0.001 (Marathon refuses less), got 0.0005",
        ),
        (
            "mem",
            json!(-1),
            "field mem: must be at least 0 (Marathon refuses less), got -1",
        ),
        (
            "disk",
            json!(-0.5),
            "field disk: must be at least 0 (Marathon refuses less), got -0.5",
        ),
        (
            "backoffFactor",
            json!(0.5),
            "field backoffFactor: must be at least 1 (Marathon refuses less), got 0.5",
        ),
        (
            "instances",
            json!(-1),
            "field instances: must be at least 0 (Marathon refuses less), got -1",
        ),
    ] {
        let mut app = json!({"id": "/a", "cmd": "sleep 1"});
        app[field] = value;
        let e = prepare(Framework::Marathon, app, Pace::Schedule).unwrap_err();
        assert!(e.contains(message), "{e}");
    }
    prepare(
        Framework::Marathon,
        json!({"id": "/a", "cmd": "sleep 1", "cpus": 0.001, "mem": 0, "disk": 0, "backoffFactor": 1}),
        Pace::Schedule,
    )
    .expect("Marathon's minimums themselves are taken");
}

/// Marathon 1.10 refuses a `cmd` of fewer than two characters (`AppValidation`: Java's
/// `length() > 1`, in UTF-16 units) with "must not be an empty string"; the launcher refuses it
/// before anything is registered, with that wording and the field.
#[test]
fn a_cmd_marathon_finds_too_short_is_refused_with_its_wording() {
    for cmd in ["x", " ", "é"] {
        let e = prepare(
            Framework::Marathon,
            json!({"id": "/a", "cmd": cmd}),
            Pace::Schedule,
        )
        .unwrap_err();
        assert!(
            e.contains("field cmd: must not be an empty string") && e.contains("2 characters"),
            "{cmd:?}: {e}"
        );
    }
    // Two characters (an emoji is two UTF-16 units for Marathon's Java) are taken.
    for cmd in ["ls", "😀"] {
        prepare(
            Framework::Marathon,
            json!({"id": "/a", "cmd": cmd}),
            Pace::Schedule,
        )
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    }
}

/// Marathon 1.10 canonicalises an app id against `/` (`PathId.canonicalPath`): `..` takes away
/// the segment before it and empty segments go, so `/a/../b` is app `/b`. The launcher submits
/// the id Marathon will use, and says so; what Marathon refuses (`.`, an id that resolves to the
/// root) is refused naming the field.
#[test]
fn an_app_id_is_read_the_way_marathon_reads_it() {
    for (given, canonical) in [
        ("/a/../b", "/b"),
        ("/grp//job/", "/grp/job"),
        ("x/../../y", "/y"),
    ] {
        let p = prepare(
            Framework::Marathon,
            json!({"id": given, "cmd": "sleep 1"}),
            Pace::Schedule,
        )
        .unwrap_or_else(|e| panic!("{given:?}: {e}"));
        assert_eq!(request(&p)["id"], canonical, "{given:?}");
        assert_eq!(p.registration.name, canonical, "{given:?}");
        if given.contains("..") {
            assert!(
                p.warnings
                    .iter()
                    .any(|w| w.contains(given) && w.contains(canonical)),
                "{given:?}: {:?}",
                p.warnings
            );
        }
    }
    for (given, why) in [("/a/./b", "\".\""), ("/a/..", "root")] {
        let e = prepare(
            Framework::Marathon,
            json!({"id": given, "cmd": "sleep 1"}),
            Pace::Schedule,
        )
        .unwrap_err();
        assert!(e.contains("field id") && e.contains(why), "{given:?}: {e}");
    }
}

/// An `env` secret the app's `secrets` does not define is refused before anything is
/// registered, as Marathon refuses it ("references an undefined secret"); the example of
/// Marathon's secrets page goes through.
#[test]
fn an_env_secret_must_be_defined() {
    let app = json!({"id": "/app-with-secrets", "cmd": "sleep 100",
        "env": {"DATABASE_PW": {"secret": "secretpassword"}},
        "secrets": {"secretpassword": {"source": "databasepassword"}}});
    prepare(Framework::Marathon, app.clone(), Pace::Schedule).expect("the docs' example");
    let mut undefined = app;
    undefined["env"]["DATABASE_PW"]["secret"] = json!("pw");
    let e = prepare(Framework::Marathon, undefined, Pace::Schedule).unwrap_err();
    assert!(
        e.contains("field env.DATABASE_PW.secret: references the secret \"pw\", which \"secrets\" does not define"),
        "{e}"
    );
}

/// Each feature shell-trap cannot carry for a Docker app is refused, naming the field and the
/// fix; none is dropped silently.
#[test]
fn what_shell_trap_cannot_carry_is_refused_with_the_field() {
    let docker = |extra: Value| {
        let mut app = json!({"id": "/a", "cmd": "run", "container": {"type": "DOCKER",
            "docker": {"image": "busybox"}}});
        merge(&mut app, extra);
        app
    };
    for (app, field, hint) in [
        (
            docker(json!({"residency": {"taskLostBehavior": "WAIT_FOREVER"}})),
            "residency",
            "checkpoint directory",
        ),
        (
            docker(json!({"container": {"volumes": [
                {"containerPath": "data", "mode": "RW", "persistent": {"size": 100}}]}})),
            "container.volumes[0].persistent",
            "hostPath",
        ),
        (
            docker(
                json!({"container": {"volumes": [{"containerPath": "/d", "mode": "RW",
                "external": {"name": "v", "provider": "dvdi", "options": {"dvdi/driver": "rexray"}}}]}}),
            ),
            "container.volumes[0].external",
            "hostPath",
        ),
        (
            docker(
                json!({"container": {"volumes": [{"containerPath": "/s", "secret": "pw"}]},
                          "secrets": {"pw": {"source": "/pw"}}}),
            ),
            "container.volumes[0].secret",
            "env entry",
        ),
        (
            docker(
                json!({"container": {"type": "MESOS", "docker": {"pullConfig": {"secret": "pc"}}},
                          "secrets": {"pc": {"source": "/docker/config"}}}),
            ),
            "container.docker.pullConfig",
            "docker login",
        ),
        (docker(json!({"gpus": 1})), "gpus", "remove gpus"),
        (
            docker(json!({"ipAddress": {"networkName": "dev"}})),
            "ipAddress",
            "container.docker.network",
        ),
        (
            docker(json!({"container": {"docker": {"parameters": [
                {"key": "a-docker-option", "value": "xxx"}]}}})),
            "container.docker.parameters[0]",
            "supported:",
        ),
        (
            json!({"id": "/a", "cmd": "run", "container": {"type": "MESOS",
                "appc": {"image": "example.com/app:1"}}}),
            "container.appc",
            "Docker images",
        ),
        (
            json!({"id": "/a", "cmd": "run", "container": {"volumes": [
                {"containerPath": "/d", "hostPath": "/d", "mode": "RO"}]}}),
            "container.type",
            "MESOS",
        ),
    ] {
        let e = prepare(Framework::Marathon, app.clone(), Pace::BackToBack)
            .expect_err(&app.to_string());
        assert!(e.contains(&format!("field {field}: ")), "{field}: {e}");
        assert!(e.contains(hint), "{field}: {e}");
    }
}

/// An app without an image keeps its container, so a resident app with a persistent volume (a
/// Mesos container without an image, as in Marathon's docs) is carried whole: shell-trap runs
/// inside it.
#[test]
fn an_image_less_container_is_kept_and_carries_everything() {
    let app = json!({"id": "/postgres-like", "cmd": "mkdir -p data && exec sleep 1000",
        "container": {"type": "MESOS", "volumes": [
            {"containerPath": "data", "mode": "RW", "persistent": {"size": 10}}]},
        "residency": {"taskLostBehavior": "WAIT_FOREVER"}, "cpus": 0.5});
    let p = prepare(Framework::Marathon, app.clone(), Pace::BackToBack).unwrap();
    let r = request(&p);
    assert_eq!(r["container"], app["container"]);
    assert_eq!(r["residency"], app["residency"]);
    assert!(r["env"].get("QOS_CONTAINER").is_none());
    assert!(
        r["cmd"]
            .as_str()
            .unwrap()
            .contains("--runtime process -- sh -c"),
        "{}",
        r["cmd"]
    );
}

#[test]
fn what_is_carried_with_a_warning_says_so() {
    let app = json!({"id": "/web", "container": {"type": "MESOS", "docker": {"image": "nginx"},
            "portMappings": [{"containerPort": 80, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}],
        "fetch": [{"uri": "https://example.com/site.tgz"}],
        "healthChecks": [{"protocol": "MESOS_HTTP", "portIndex": 0, "path": "/"}],
        "resourceLimits": {"cpus": "unlimited"}});
    let p = prepare(Framework::Marathon, app, Pace::BackToBack).unwrap();
    let r = request(&p);
    assert_eq!(r["networks"], json!([{"mode": "host"}]));
    let c: Value = serde_json::from_str(r["env"]["QOS_CONTAINER"].as_str().unwrap()).unwrap();
    assert_eq!(
        c["docker"]["network"], "BRIDGE",
        "the bridge goes to the container"
    );
    for w in [
        "container.type MESOS",
        "container.portMappings",
        "fetch:",
        "healthChecks[0] (MESOS_HTTP)",
        "resourceLimits",
        "networks [{\"mode\":\"container/bridge\"}]",
    ] {
        assert!(
            p.warnings.iter().any(|x| x.starts_with(w)),
            "{w}: {:?}",
            p.warnings
        );
    }
    // A readiness check naming a port mapping would be refused by Marathon once the mapping
    // has moved to shell-trap: the launcher says so first.
    let app = json!({"id": "/web", "container": {"type": "DOCKER", "docker": {"image": "nginx"},
            "portMappings": [{"containerPort": 80, "name": "http"}]},
        "readinessChecks": [{"name": "ready", "portName": "http", "path": "/"}]});
    let e = prepare(Framework::Marathon, app, Pace::BackToBack).unwrap_err();
    assert!(
        e.contains("field readinessChecks[0].portName: \"http\" names a port mapping"),
        "{e}"
    );
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// `validate` (and `--dry-run`) print the warnings in the JSON's `warnings` and on stderr.
#[test]
fn dry_run_shows_the_warnings_in_its_json_and_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let job = dir.path().join("sample.json");
    std::fs::write(
        &job,
        json!({"name": "sample", "command": "echo hi", "cpus": 1, "schedule": "R3/2014-09-25T17:22:00Z/PT2M",
               "qos": qos()})
        .to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_launcher"))
        .args(["validate", &job.display().to_string()])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let warnings = v["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{v}");
    assert!(warnings[0].as_str().unwrap().contains("moved to now"));
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "the pacing note");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: schedule \"R3/2014-09-25T17:22:00Z/PT2M\" starts"),
        "{stderr}"
    );
}
