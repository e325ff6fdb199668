//! The injection test: the rewritten Chronos command is really executed with `sh -c` against an
//! in-test HTTP server standing in for the supervisor. User commands full of quotes, `$()`,
//! backticks, `;` and newlines must run literally (exactly as `sh -c <command>` would run them),
//! and the report must arrive intact, with the right token, through curl or through BusyBox wget —
//! the token taken from the task's environment, never seen in any process' arguments.

use std::path::{Path, PathBuf};
use std::process::Output;

use launcher::rewrite::{self, JobUuid, ReportPolicy, Settings, SupervisorUrl};
use qos_core::Framework;
use serde_json::{Value, json};

use testkit::wire::{Scripted, dead_url};

const UUID: &str = "00112233445566778899aabbccddeeff";
const TOKEN: &str = "tok_EN-1.2~3+4/5=";

/// A command that prints things which would be mangled, expanded or executed by a naive splice.
const NASTY: &str = r#"printf '%s\n' "it's" 'say "hi"' '$(echo EXPANDED)' '`echo EXPANDED`' 'a;b' '\n'
echo second line; echo "$(echo inner-sub)"
echo x'; touch PWNED; echo '
exit 7"#;

const EXPECTED_OUTPUT: &str = "it's\nsay \"hi\"\n$(echo EXPANDED)\n`echo EXPANDED`\na;b\n\\n\nsecond line\ninner-sub\nx; touch PWNED; echo \n";

/// Which tools the "image" has.
#[derive(Clone, Copy, Debug)]
enum Image {
    /// The host's dash, coreutils and curl.
    Curl,
    /// Only BusyBox: its `sh`, `date`, `hostname`, `sleep` and `wget`, as in the LINPACK image.
    BusyBoxWget,
}

/// A directory holding only the tools of `image`, to be used as `PATH`.
fn toolbox(dir: &Path, image: Image) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
    };
    match image {
        Image::Curl => {
            for (t, n) in [
                ("/bin/sh", "sh"),
                ("/bin/date", "date"),
                ("/bin/hostname", "hostname"),
                ("/bin/sleep", "sleep"),
                ("/usr/bin/curl", "curl"),
            ] {
                link(t, n);
            }
        }
        Image::BusyBoxWget => {
            for n in [
                "sh", "date", "hostname", "sleep", "wget", "timeout", "mktemp", "rm",
            ] {
                link(busybox(), n);
            }
        }
    }
    bin
}

fn busybox() -> &'static str {
    ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox is installed (apt-get install busybox-static)")
}

fn chronos_job(command: &str) -> Value {
    json!({
        "name": "inject.test-1", "command": command, "schedule": "R2//PT1M", "cpus": 0.5,
        "qos": {"duration": 10, "deadline": 600, "desv_deadline": 0.2}
    })
}

/// The rewritten command and the environment Chronos gives its task (`environmentVariables`).
fn rewritten(command: &str, supervisor: &str, policy: ReportPolicy) -> Rewritten {
    let mut settings = Settings::new(SupervisorUrl::parse(supervisor).unwrap());
    settings.report = policy;
    let prepared = rewrite::prepare(
        Framework::Chronos,
        &chronos_job(command),
        "inject.json",
        &settings,
        JobUuid::parse(UUID).unwrap(),
        1_700_000_000.0,
    )
    .unwrap();
    let req = prepared.request(Some(TOKEN)).unwrap();
    let command = req["command"].as_str().unwrap().to_owned();
    assert!(
        !command.contains(TOKEN),
        "the token is not in the command: {command}"
    );
    let env = req["environmentVariables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    Rewritten { command, env }
}

struct Rewritten {
    command: String,
    env: Vec<(String, String)>,
}

/// What Chronos puts in `CHRONOS_RESOURCE_CPU` for each run here: a Java double for the curl
/// image; for the BusyBox one, a hostile value (the variable is the agent's, but the report must
/// stay data whatever it holds).
fn chronos_cpu(image: Image) -> &'static str {
    match image {
        Image::Curl => "0.5",
        Image::BusyBoxWget => "1,\"x\":$(touch PWNED)",
    }
}

async fn run(command: &Rewritten, image: Image, workdir: &Path) -> Output {
    run_with(&command.command, &command.env, image, workdir).await
}

async fn run_with(command: &str, env: &[(String, String)], image: Image, workdir: &Path) -> Output {
    let path = toolbox(workdir, image);
    let shell = match image {
        Image::Curl => "/bin/sh".to_owned(),
        Image::BusyBoxWget => path.join("sh").display().to_string(),
    };
    tokio::process::Command::new(shell)
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .env_clear()
        .env("PATH", &path)
        .env("HOST", "agent-7")
        .env("CHRONOS_RESOURCE_CPU", chronos_cpu(image))
        .env("TMPDIR", workdir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .expect("run the rewritten command")
}

fn fast() -> ReportPolicy {
    ReportPolicy {
        attempts: 4,
        first_delay_secs: 1,
        max_delay_secs: 1,
        timeout_secs: 5,
    }
}

async fn literal_run(image: Image) {
    // While a report is being answered its sender is alive: no process may show the token.
    let exposed: std::sync::Arc<std::sync::Mutex<Vec<(u32, String)>>> = Default::default();
    let seen = std::sync::Arc::clone(&exposed);
    let sup = Scripted::start(move |_, _| {
        seen.lock()
            .unwrap()
            .extend(testkit::procs::argv_containing(TOKEN));
        (200, "OK".into())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let command = rewritten(NASTY, &sup.url, fast());
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let out = run(&command, image, dir.path()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stdout, EXPECTED_OUTPUT, "{image:?}: stderr: {stderr}");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{image:?}: the user's exit code is the task's"
    );
    assert!(
        !dir.path().join("PWNED").exists(),
        "{image:?}: text of the command was executed"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "bin")
        .collect();
    assert!(
        left.is_empty(),
        "{image:?}: the report's temporary file is removed: {left:?}"
    );

    let reports = sup.requests_to("POST", "/updateTask");
    assert_eq!(
        reports.len(),
        1,
        "{image:?}: exactly one report; stderr: {stderr}"
    );
    let r = &reports[0];
    assert_eq!(
        *exposed.lock().unwrap(),
        [],
        "{image:?}: the token was in a process' arguments"
    );
    // curl sends the header (read from its stdin); wget, which takes headers only as
    // arguments, sends the token in the body instead.
    let (auth, token_in_body) = match image {
        Image::Curl => (Some(format!("Bearer {TOKEN}")), None),
        Image::BusyBoxWget => (None, Some(TOKEN)),
    };
    assert_eq!(r.header("authorization"), auth.as_deref(), "{image:?}");
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "{image:?}"
    );
    let mut body = r.json();
    assert_eq!(
        body.as_object_mut()
            .unwrap()
            .shift_remove("report_token")
            .as_ref()
            .and_then(Value::as_str),
        token_in_body,
        "{image:?}"
    );
    let report: qos_core::wire::UpdateTask = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(report.name, "inject.test-1");
    assert_eq!(report.uuid, UUID);
    assert_eq!(report.exit_code, Some(7.0));
    let cpus = match image {
        Image::Curl => Some(0.5),
        Image::BusyBoxWget => None,
    };
    assert_eq!(report.cpus, cpus, "{image:?}: {body}");
    assert!(
        !report.hostname.is_empty() && report.hostname != "unknown",
        "{body}"
    );
    assert!(
        report.started_at >= before.floor() && report.finished_at >= report.started_at,
        "{body}"
    );
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "name",
            "uuid",
            "started_at",
            "finished_at",
            "hostname",
            "exit_code",
            "cpus"
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn nasty_command_runs_literally_and_reports_with_curl() {
    literal_run(Image::Curl).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nasty_command_runs_literally_and_reports_with_busybox_wget() {
    literal_run(Image::BusyBoxWget).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_equals_plain_sh_c() {
    // The wrapper must not change what the command does: same output as `sh -c NASTY`.
    let dir = tempfile::tempdir().unwrap();
    let plain = run_with(NASTY, &[], Image::Curl, dir.path()).await;
    assert_eq!(String::from_utf8_lossy(&plain.stdout), EXPECTED_OUTPUT);
    assert_eq!(plain.status.code(), Some(7));
}

#[tokio::test(flavor = "multi_thread")]
async fn briefly_unreachable_supervisor_loses_no_report() {
    for image in [Image::Curl, Image::BusyBoxWget] {
        // The first two tries get 503, the third is taken.
        let sup = Scripted::start(|_, i| {
            if i < 2 {
                (503, "down".into())
            } else {
                (200, "OK".into())
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let out = run(&rewritten("echo work", &sup.url, fast()), image, dir.path()).await;
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "work\n");
        let reports = sup.requests_to("POST", "/updateTask");
        assert_eq!(reports.len(), 3, "{image:?}");
        assert_eq!(
            reports[0].body, reports[2].body,
            "a retry sends the same report"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("retrying"), "{image:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_supervisor_gives_up_and_keeps_the_exit_code() {
    let policy = ReportPolicy {
        attempts: 2,
        ..fast()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &rewritten("exit 3", &dead_url(), policy),
        Image::Curl,
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("giving up"), "{stderr}");
}

#[test]
fn hostile_names_are_refused() {
    let settings = Settings::new(SupervisorUrl::parse("http://127.0.0.1:30000").unwrap());
    for name in [
        "a;b", "$(id)", "a'b", "a\"b", "a\nb", "`x`", "a b", "a/b", "",
    ] {
        let mut job = chronos_job("true");
        job["name"] = json!(name);
        let e = rewrite::prepare(
            Framework::Chronos,
            &job,
            "job.json",
            &settings,
            JobUuid::parse(UUID).unwrap(),
            1_700_000_000.0,
        )
        .unwrap_err();
        assert_eq!(e.exit_code(), 2, "{name:?}");
        assert_eq!(e.field.as_deref(), Some("name"), "{name:?}: {e}");
    }
    for id in ["/a;b", "/$(id)", "/A", "/a b", "/a'b", "/a\nb"] {
        let job = json!({"id": id, "cmd": "true", "qos": {"duration": 1, "deadline": 60, "desv_deadline": 0}});
        let e = rewrite::prepare(
            Framework::Marathon,
            &job,
            "app.json",
            &settings,
            JobUuid::parse(UUID).unwrap(),
            1_700_000_000.0,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("id"), "{id:?}: {e}");
    }
    // Names the supervisor would refuse at registration are refused before, by validate too: a
    // 7 MiB name went through `validate` and was printed whole.
    let prepare = |framework, job: &Value| {
        rewrite::prepare(
            framework,
            job,
            "job.json",
            &settings,
            JobUuid::parse(UUID).unwrap(),
            1_700_000_000.0,
        )
    };
    let mut job = chronos_job("true");
    job["name"] = json!("a".repeat(7 << 20));
    let e = prepare(Framework::Chronos, &job).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("name"));
    assert!(
        e.message.ends_with(
            "is 7340032 bytes long; the supervisor registers names of at most 255 bytes"
        ),
        "{}",
        &e.message[..e.message.len().min(300)]
    );
    job["name"] = json!("a".repeat(255));
    prepare(Framework::Chronos, &job).expect("255 bytes is a name");
    let app = json!({"id": format!("/grp/{}", "b".repeat(300)), "cmd": "true",
        "qos": {"duration": 1, "deadline": 60, "desv_deadline": 0}});
    let e = prepare(Framework::Marathon, &app).unwrap_err();
    assert_eq!(e.field.as_deref(), Some("id"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn marathon_command_reaches_shell_trap_as_exact_words() {
    // Stand-in for shell-trap: prints its argv one per line, NUL-free.
    let dir = tempfile::tempdir().unwrap();
    let fake_trap = dir.path().join("shell-trap");
    std::fs::write(
        &fake_trap,
        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' \"$a\"; done\n",
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&fake_trap).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(
        &fake_trap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut settings = Settings::new(SupervisorUrl::parse("http://127.0.0.1:30000").unwrap());
    settings.shell_trap.binary = fake_trap.display().to_string();
    let app = json!({"id": "/x", "cmd": NASTY, "container": {"docker": {"image": "img:1"}},
                     "qos": {"duration": 1, "deadline": 60, "desv_deadline": 0}});
    let prepared = rewrite::prepare(
        Framework::Marathon,
        &app,
        "app.json",
        &settings,
        JobUuid::parse(UUID).unwrap(),
        1_700_000_000.0,
    )
    .unwrap();
    let request = prepared.request(Some(TOKEN)).unwrap();
    let cmd = request["cmd"].as_str().unwrap().to_owned();
    assert_eq!(request["env"]["SHELL_TRAP_REPORT_TOKEN"], TOKEN);
    // Marathon runs `cmd` with /bin/sh -c.
    let out = run_with(&cmd, &[], Image::Curl, dir.path()).await;
    let args: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split("]\n")
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_start_matches('[').to_owned())
        .collect();
    let expected: Vec<String> = [
        "--uuid",
        UUID,
        "--supervisor",
        "http://127.0.0.1:30000",
        "--checkpoint-dir",
        rewrite::DEFAULT_CHECKPOINT_DIR,
        "--grace",
        "25",
        "--runtime",
        "docker",
        "--",
        "img:1",
        "sh",
        "-c",
        NASTY,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(
        args,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("PWNED").exists());
}
