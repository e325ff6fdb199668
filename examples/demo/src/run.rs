//! The demo from start to end: build, start, submit, watch, summarise, stop.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::binaries::{self, Binaries};
use crate::cleanup;
use crate::cli::Args;
use crate::components::{self, Component};
use crate::plan::{self, Fw, JobSpec};
use crate::report;
use crate::watch::{Tracked, Ui, Watcher, now_epoch};

/// Exit status when a job did not complete.
const EXIT_JOB_INCOMPLETE: u8 = 4;
/// Exit status after Ctrl-C or SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

/// Everything started, in the order it is stopped.
#[derive(Debug)]
struct Stack {
    testbed: Option<Component>,
    collector: Option<Component>,
    supervisor: Option<Component>,
    /// The run's marker (`QOS_DEMO_RUN`) and cgroup prefix.
    run_id: String,
    prefix: String,
    /// The private Docker daemon, when this run started it.
    docker_stop: Option<PathBuf>,
}

impl Stack {
    fn components(&mut self) -> impl Iterator<Item = &mut Component> {
        [
            self.testbed.as_mut(),
            self.collector.as_mut(),
            self.supervisor.as_mut(),
        ]
        .into_iter()
        .flatten()
    }

    /// A component that stopped on its own, as an error with its stderr tail.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        for c in self.components() {
            if let Some(status) = c.exited() {
                bail!(
                    "{} stopped unexpectedly ({status})\n--- last lines of {} ---\n{}\n---",
                    c.name,
                    c.log_path.display(),
                    c.log_tail(20)
                );
            }
        }
        Ok(())
    }

    /// Stops everything (the testbed first, so its tasks end while the supervisor still
    /// listens), then sweeps for leftovers. Returns what had to be cleaned up by force.
    async fn teardown(&mut self, ui: &Ui) -> Vec<String> {
        let mut forced = Vec::new();
        for (c, grace) in [
            (self.testbed.as_mut(), Duration::from_secs(45)),
            (self.collector.as_mut(), Duration::from_secs(8)),
            (self.supervisor.as_mut(), Duration::from_secs(15)),
        ] {
            let Some(c) = c else { continue };
            if c.stop(grace).await {
                let line = format!(
                    "{} did not stop within {} s of SIGTERM: its process group was killed",
                    c.name,
                    grace.as_secs()
                );
                ui.say(&line);
                forced.push(line);
            }
        }
        for c in self.components() {
            if components::group_alive(c.pid) {
                forced.push(format!("process group {} of {} survived", c.pid, c.name));
            }
        }
        let left = cleanup::sweep(&self.run_id, Path::new("/sys/fs/cgroup"), &self.prefix).await;
        forced.extend(left);
        if let Some(script) = self.docker_stop.take() {
            let _ = Command::new("bash")
                .arg(script)
                .arg("stop")
                .stdout(std::process::Stdio::null())
                .status();
        }
        forced
    }

    fn detach(&mut self) {
        for c in self.components() {
            c.detach();
        }
    }
}

/// Runs the demo; the exit status.
pub(crate) async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let ui = Ui::new();
    let started = chrono::Local::now();
    let stamp = started.format("%Y%m%d-%H%M%S").to_string();
    let run_id = format!("{}-{stamp}", std::process::id());
    let mut stack = Stack {
        testbed: None,
        collector: None,
        supervisor: None,
        run_id: run_id.clone(),
        prefix: format!("qos-demo-{}", std::process::id()),
        docker_stop: None,
    };
    let work = tempfile::Builder::new()
        .prefix("qos-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let out = match &args.out {
        Some(d) => d.clone(),
        None => binaries::workspace_root()
            .map_or_else(std::env::temp_dir, |r| r.join("target"))
            .join("demo")
            .join(&stamp),
    };
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(out.join("jobs"))?;

    let body = body(args, &ui, &mut stack, work.path(), &out, started);
    let result = tokio::select! {
        r = body => r.map(Some),
        () = interrupted() => Ok(None),
    };
    match result {
        Ok(Some(mut done)) => {
            if args.keep {
                stack.detach();
                let kept = work.keep();
                report::write(&out, &done.summary, &done.markdown)?;
                print_kept(&ui, args.json, &done, &kept, &stack);
                return Ok(done.exit);
            }
            ui.say("stopping the testbed, the collector and the supervisor…");
            let left = stack.teardown(&ui).await;
            done.summary["leftovers"] = json!(left);
            finish(&ui, args, &mut done, &out, &left)?;
            Ok(done.exit)
        }
        Ok(None) => {
            ui.say("interrupted: stopping everything…");
            let left = stack.teardown(&ui).await;
            report_leftovers(&ui, &left);
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        Err(e) => {
            ui.say("the demo failed: stopping everything…");
            let left = stack.teardown(&ui).await;
            report_leftovers(&ui, &left);
            ui.say(&format!("logs: {}", out.join("logs").display()));
            Err(e)
        }
    }
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn report_leftovers(ui: &Ui, left: &[String]) {
    if left.is_empty() {
        ui.say("everything the demo started has stopped; nothing is left running");
    } else {
        ui.say("cleaned up after components that did not stop cleanly:");
        for l in left {
            ui.say(&format!("  {l}"));
        }
    }
}

/// What a finished run produced.
struct Done {
    summary: Value,
    table: String,
    markdown: String,
    exit: ExitCode,
}

fn print_kept(ui: &Ui, json: bool, done: &Done, work: &Path, stack: &Stack) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&done.summary).unwrap_or_default()
        );
    } else {
        println!("{}", done.table);
    }
    let urls = &done.summary["urls"];
    ui.say("--keep: the services are still running:");
    for (k, v) in urls.as_object().into_iter().flatten() {
        ui.say(&format!("  {k:<18} {}", v.as_str().unwrap_or("")));
    }
    let pids: Vec<String> = [&stack.testbed, &stack.collector, &stack.supervisor]
        .into_iter()
        .flatten()
        .map(|c| c.pid.to_string())
        .collect();
    ui.say(&format!(
        "  submit more with: {} -i {} -j JOB.json -c {}/chronos.json",
        "launcher",
        urls["supervisor"].as_str().unwrap_or(""),
        work.display()
    ));
    ui.say(&format!(
        "  stop them with:   kill -TERM {}   (the testbed stops its tasks and removes its cgroups)",
        pids.join(" ")
    ));
    ui.say(&format!("  work directory:   {}", work.display()));
}

fn finish(
    ui: &Ui,
    args: &Args,
    done: &mut Done,
    out: &Path,
    left: &[String],
) -> anyhow::Result<()> {
    report::write(out, &done.summary, &done.markdown)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done.summary)?);
    } else {
        println!("{}", done.table);
    }
    report_leftovers(ui, left);
    let urls = &done.summary["urls"];
    ui.say(&format!(
        "report:    {}  (and report.json)",
        out.join("report.md").display()
    ));
    ui.say(&format!("logs:      {}", out.join("logs").display()));
    let dashboard = urls["dashboard"].as_str().map_or_else(
        || "the supervisor serves no /ui yet; Grafana dashboards are in grafana/".to_owned(),
        str::to_owned,
    );
    ui.say(&format!(
        "dashboard: {dashboard} and {} (while running; --keep leaves them up)",
        urls["metrics"].as_str().unwrap_or("")
    ));
    Ok(())
}

#[allow(clippy::too_many_lines)]
async fn body(
    args: &Args,
    ui: &Ui,
    stack: &mut Stack,
    work: &Path,
    out: &Path,
    started: chrono::DateTime<chrono::Local>,
) -> anyhow::Result<Done> {
    let t_start = Instant::now();
    if !nix::unistd::Uid::effective().is_root() {
        ui.say(
            "warning: not running as root: the testbed cannot create cgroups, so CPU allocations \
             are not enforced and resizes change nothing measurable",
        );
    }
    // 1. Binaries.
    let a = args.clone();
    let bins: Binaries = tokio::task::spawn_blocking(move || {
        binaries::locate(&a, &|m: &str| eprintln!("demo: {m}"))
    })
    .await??;
    // 2. LINPACK on this machine.
    let linpack = bins.get("linpack").to_path_buf();
    let per_solve = tokio::task::spawn_blocking(move || plan::calibrate(&linpack)).await??;
    ui.say(&format!(
        "LINPACK n={}: {:.1} ms of CPU per solve on one thread; job sizes are set from this",
        plan::LINPACK_N,
        per_solve * 1000.0
    ));
    // 3. Docker, when asked.
    let mut docker_host = None;
    if args.docker {
        docker_host = Some(start_docker(ui, stack)?);
    }
    // 4. Components.
    let logs = out.join("logs");
    for d in ["checkpoints", "meta", "sandboxes"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let path_env = match std::env::var_os("PATH") {
        Some(p) => {
            let mut v = vec![bins.dir.clone()];
            v.extend(std::env::split_paths(&p));
            std::env::join_paths(v)?
        }
        None => bins.dir.clone().into_os_string(),
    };
    let run_id = stack.run_id.clone();
    let base_cmd = |bin: &Path| {
        let mut c = Command::new(bin);
        components::scrub_env(&mut c);
        c.env(cleanup::MARKER, &run_id)
            .env("PATH", &path_env)
            .env("RUST_LOG", "info");
        if let Some(h) = &docker_host {
            c.env("DOCKER_HOST", h);
        }
        c
    };

    let testbed_toml = work.join("testbed.toml");
    std::fs::write(
        &testbed_toml,
        plan::testbed_config(&stack.prefix, work, args.docker),
    )?;
    let mut cmd = base_cmd(bins.get("testbed"));
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--config")
        .arg(&testbed_toml);
    let (c, urls) = Component::start("testbed", cmd, &logs, plan::READY_TIMEOUT).await?;
    stack.testbed = Some(c);
    if plan::prioritise(&stack.prefix).is_empty() && nix::unistd::Uid::effective().is_root() {
        ui.say("note: could not raise the CPU weight of the testbed's cgroups: other load on this machine slows its jobs");
    }
    let marathon_url = urls["marathon"].as_str().unwrap_or_default().to_owned();
    let chronos_url = urls["chronos"].as_str().unwrap_or_default().to_owned();
    if marathon_url.is_empty() || chronos_url.is_empty() {
        bail!("the testbed printed {urls} without marathon and chronos URLs");
    }
    ui.say(&format!(
        "testbed:    Marathon {marathon_url}, Chronos {chronos_url}, {} agent(s) × {} CPU ({})",
        plan::AGENTS,
        plan::CPUS_PER_AGENT,
        if args.docker {
            "Docker containers"
        } else {
            "processes in cgroups"
        }
    ));
    let creds_m = work.join("marathon.json");
    let creds_c = work.join("chronos.json");
    std::fs::write(
        &creds_m,
        json!({"url": marathon_url, "user": "", "password": ""}).to_string(),
    )?;
    std::fs::write(
        &creds_c,
        json!({"url": chronos_url, "user": "", "password": ""}).to_string(),
    )?;

    let timing = plan::Timing::for_run(args.quick);
    let sup_toml = work.join("supervisor.toml");
    std::fs::write(&sup_toml, plan::supervisor_config(args.policy, timing))?;
    let _ = std::fs::copy(&sup_toml, logs.join("supervisor.toml"));
    let _ = std::fs::copy(&testbed_toml, logs.join("testbed.toml"));
    let mut cmd = base_cmd(bins.get("supervisor"));
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--db")
        .arg(work.join("supervisor.db"))
        .arg("--config")
        .arg(&sup_toml)
        .arg("--policy")
        .arg(args.policy.as_str())
        .arg("-m")
        .arg(&creds_m)
        .arg("-c")
        .arg(&creds_c);
    let (c, v) = Component::start("supervisor", cmd, &logs, plan::READY_TIMEOUT).await?;
    stack.supervisor = Some(c);
    let sup = v["url"]
        .as_str()
        .context("the supervisor printed no url")?
        .trim_end_matches('/')
        .to_owned();
    ui.say(&format!(
        "supervisor: {sup}  (policy {}, SQLite in {})",
        args.policy.as_str(),
        work.display()
    ));

    let mut cmd = base_cmd(bins.get("cgroup-collector"));
    cmd.arg("--supervisor")
        .arg(&sup)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--testbed-prefix")
        .arg(&stack.prefix)
        .arg("--testbed-meta-dir")
        .arg(work.join("meta"))
        .arg("--period")
        .arg("1");
    if !args.docker {
        cmd.arg("--no-docker");
    }
    let (c, v) = Component::start("cgroup-collector", cmd, &logs, plan::READY_TIMEOUT).await?;
    stack.collector = Some(c);
    let collector_metrics = v["metrics"].as_str().unwrap_or_default().to_owned();
    let snapshot = v["snapshot"].as_str().map(str::to_owned);
    ui.say(&format!("collector:  {collector_metrics}"));
    let dashboard = probe(&format!("{sup}/ui"))
        .await
        .then(|| format!("{sup}/ui"));

    // 5. Jobs.
    let specs = plan::jobs(args.quick);
    ui.say(&format!(
        "\n{} jobs (from examples/jobs/local, sized for this run; files in {}):",
        specs.len(),
        out.join("jobs").display()
    ));
    let mut files = Vec::new();
    for s in &specs {
        let repeat = plan::repeat_for(s.work, per_solve);
        let job = s.render(repeat, args.docker)?;
        let path = out.join("jobs").join(format!("{}.json", s.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&job)? + "\n")?;
        let what = match s.framework {
            Fw::Chronos => format!("{} × {:.0} CPU-s", s.iterations, s.duration),
            Fw::Marathon => format!("{:.0} CPU-s", s.duration),
        };
        ui.say(&format!(
            "  {:<22} {:<8} {what:<12} deadline {:>3.0} s, starts at {:.2} CPU: {}",
            s.name(),
            s.framework.as_str(),
            s.deadline,
            s.cpus,
            s.story
        ));
        files.push((s.clone(), path));
    }
    ui.say("");
    let mut watcher = Watcher::new(ui.clone(), &sup, snapshot, &work.join("sandboxes"))?;
    watcher.t0 = now_epoch();
    let mut jobs = Vec::new();
    for (spec, path) in files {
        let uuid = submit(
            &bins, &sup, &spec, &path, work, &creds_m, &creds_c, &path_env,
        )?;
        jobs.push(Tracked::new(ui, uuid, spec, now_epoch()));
    }

    // 6. Watch.
    let limit = Instant::now() + Duration::from_secs(args.timeout);
    let mut timed_out = false;
    loop {
        watcher.poll(&mut jobs).await;
        if jobs.iter().all(Tracked::done) {
            break;
        }
        stack.check_alive()?;
        if Instant::now() > limit {
            timed_out = true;
            ui.say(&format!(
                "giving up after {} s (--timeout): some jobs have not finished",
                args.timeout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The collector's last counters.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    watcher.poll(&mut jobs).await;

    // 7. Summary.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut rows = Vec::new();
    let mut per_job = Vec::new();
    for j in &jobs {
        let detail: Value = match http
            .get(format!("{sup}/api/v1/jobs/{}", j.uuid))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let r = report::row(j, &detail);
        per_job.push(json!({
            "summary": r, "story": j.spec.story, "file": j.spec.base_file,
            "events": j.events, "history": j.history, "detail": detail,
        }));
        rows.push(r);
    }
    let all_completed = rows.iter().all(|r| r.state == "completed");
    let mut command = String::from("cargo run --release -p demo --");
    for a in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&a);
    }
    let summary = json!({
        "command": command,
        "policy": args.policy.as_str(),
        "runtime": if args.docker { "docker" } else { "process" },
        "quick": args.quick,
        "started": started.to_rfc3339(),
        "wall_seconds": t_start.elapsed().as_secs_f64(),
        "t0": watcher.t0,
        "run_id": stack.run_id,
        "cgroup_prefix": stack.prefix,
        "timed_out": timed_out,
        "calibration": {"n": plan::LINPACK_N, "seconds_per_solve": per_solve},
        "jobs": rows,
        "totals": report::totals(&rows),
        "details": per_job,
        "urls": {
            "supervisor": sup,
            "metrics": format!("{sup}/metrics"),
            "dashboard": dashboard,
            "collector_metrics": collector_metrics,
            "marathon": marathon_url,
            "chronos": chronos_url,
        },
        "report": {"markdown": out.join("report.md"), "json": out.join("report.json")},
        "logs": logs,
        "leftovers": [],
    });
    let markdown = report::markdown(&summary, &rows, &jobs);
    Ok(Done {
        table: report::table(&rows),
        markdown,
        summary,
        exit: if all_completed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_JOB_INCOMPLETE)
        },
    })
}

/// Submits one job with the launcher (thesis form); its UUID.
#[allow(clippy::too_many_arguments)]
fn submit(
    bins: &Binaries,
    sup: &str,
    spec: &JobSpec,
    file: &Path,
    work: &Path,
    creds_m: &Path,
    creds_c: &Path,
    path_env: &std::ffi::OsStr,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(bins.get("launcher"));
    components::scrub_env(&mut cmd);
    cmd.env("PATH", path_env)
        .arg("-j")
        .arg(file)
        .arg("-i")
        .arg(sup)
        .arg("--output")
        .arg("json");
    match spec.framework {
        Fw::Chronos => cmd.arg("-c").arg(creds_c),
        Fw::Marathon => cmd
            .arg("-m")
            .arg(creds_m)
            .arg("--checkpoint-dir")
            .arg(work.join("checkpoints"))
            .arg("--shell-trap")
            .arg(bins.get("shell-trap"))
            .arg("--strategy")
            .arg("app"),
    };
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", bins.get("launcher").display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "the launcher could not submit {} ({}):\n{}{}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        );
    }
    let v: Value = serde_json::from_str(stdout.trim())
        .with_context(|| format!("unexpected launcher output {stdout:?}"))?;
    v["uuid"]
        .as_str()
        .map(str::to_owned)
        .context("the launcher printed no uuid")
}

async fn probe(url: &str) -> bool {
    let Ok(c) = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
    else {
        return false;
    };
    matches!(c.get(url).send().await, Ok(r) if r.status().is_success())
}

/// Makes sure the private Docker daemon runs (starting it if needed) and the LINPACK image
/// exists; the daemon's address.
fn start_docker(ui: &Ui, stack: &mut Stack) -> anyhow::Result<String> {
    let root = binaries::workspace_root()
        .context("--docker needs the repository (scripts/docker-daemon, examples/linpack)")?;
    let script = root.join("scripts/docker-daemon");
    let running = Command::new("bash")
        .arg(&script)
        .arg("status")
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("cannot run scripts/docker-daemon")?;
    if !out.status.success() {
        bail!("scripts/docker-daemon start failed ({})", out.status);
    }
    if !running {
        stack.docker_stop = Some(script);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let host = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("export DOCKER_HOST="))
        .context("scripts/docker-daemon printed no DOCKER_HOST")?
        .trim()
        .to_owned();
    ui.say(&format!(
        "docker:     private daemon at {host}; building {}",
        plan::IMAGE
    ));
    let status = Command::new("bash")
        .arg(root.join("examples/linpack/build-image.sh"))
        .env("DOCKER_HOST", &host)
        .current_dir(&root)
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run examples/linpack/build-image.sh")?;
    if !status.success() {
        bail!("examples/linpack/build-image.sh failed ({status})");
    }
    Ok(host)
}
