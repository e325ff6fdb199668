//! The demo from start to end: build, start, submit, watch, summarise, stop.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use demo::harness::{RunStamp, Stack, StackOptions, interrupted, report_leftovers, run_dir};
use demo::report;
use demo::steps;
use demo::watch::{Fw, Tracked, Ui, now_epoch};
use demo::workload;
use serde_json::{Value, json};

use crate::cli::Args;
use crate::plan;

/// Exit status when a job did not complete.
const EXIT_JOB_INCOMPLETE: u8 = 4;
/// Exit status after Ctrl-C or SIGTERM.
const EXIT_INTERRUPTED: u8 = 130;

/// Runs the demo; the exit status.
pub(crate) async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let ui = Ui::new();
    let run = RunStamp::now();
    let work = tempfile::Builder::new()
        .prefix("qos-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let out = run_dir(args.out.as_deref(), &Path::new("demo").join(&run.stamp));
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::create_dir_all(out.join("jobs"))?;
    let mut stack = Stack::new(&run.id, "qos-demo", work.path(), &out.join("logs"));

    let body = body(args, &ui, &mut stack, &out, run.started);
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
    let pids: Vec<String> = stack.pids().iter().map(ToString::to_string).collect();
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

async fn body(
    args: &Args,
    ui: &Ui,
    stack: &mut Stack,
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
    // 1. Binaries; 2. LINPACK on this machine.
    let (bins, per_solve) = steps::prepare(&args.build, "demo").await?;
    ui.say(&format!(
        "LINPACK n={}: {:.1} ms of CPU per solve on one thread; job sizes are set from this",
        workload::LINPACK_N,
        per_solve * 1000.0
    ));
    // 3. Testbed, supervisor, collector.
    let timing = plan::Timing::for_run(args.quick);
    let opts = StackOptions {
        agents: plan::AGENTS,
        cpus_per_agent: plan::CPUS_PER_AGENT,
        docker: args.docker,
        supervisor_toml: plan::supervisor_config(args.policy, timing),
        policy: args.policy.as_str().to_owned(),
        // Loopback only, and gone with the run: unique is enough.
        agent_token: args
            .in_place
            .then(|| format!("demo-agent-{}-{}", std::process::id(), now_epoch())),
    };
    stack.start(&opts, &bins, ui).await?;
    let sup = stack.urls.supervisor.clone();

    // 5. Jobs.
    let files = write_jobs(ui, args, out, per_solve)?;
    ui.say("");
    let watcher = steps::watcher(ui, stack)?;
    let mut jobs = Vec::new();
    for (spec, path) in files {
        let uuid = stack.submit(&bins, &path, spec.base.framework)?;
        jobs.push(Tracked::new(ui, uuid, spec.info(), now_epoch()));
    }

    // 6. Watch.
    let timed_out = steps::watch_until_done(
        ui,
        stack,
        &watcher,
        &mut jobs,
        Duration::from_secs(args.timeout),
        "some jobs have not finished (--timeout)",
        |_, _| {},
    )
    .await?;

    // 7. Summary.
    let (rows, per_job) = steps::summarize(&sup, &jobs).await?;
    let all_completed = rows.iter().all(|r| r.state == "completed");
    let run = RunFacts {
        started,
        wall_seconds: t_start.elapsed().as_secs_f64(),
        t0: watcher.t0,
        timed_out,
        per_solve,
    };
    let summary = summary(args, stack, out, &run, &rows, &per_job);
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

/// The jobs of this run, sized from LINPACK's `per_solve`, written under `out/jobs` and listed
/// for the user; each with its file.
fn write_jobs(
    ui: &Ui,
    args: &Args,
    out: &Path,
    per_solve: f64,
) -> anyhow::Result<Vec<(plan::JobSpec, PathBuf)>> {
    let specs = plan::jobs(args.quick);
    ui.say(&format!(
        "\n{} jobs (from examples/jobs/local, sized for this run; files in {}):",
        specs.len(),
        out.join("jobs").display()
    ));
    let mut files = Vec::new();
    for s in &specs {
        let repeat = workload::repeat_for(s.work, per_solve);
        let job = s.render(repeat, args.docker)?;
        let path = out.join("jobs").join(format!("{}.json", s.name()));
        std::fs::write(&path, serde_json::to_string_pretty(&job)? + "\n")?;
        let what = match s.base.framework {
            Fw::Chronos => format!("{} × {:.0} CPU-s", s.iterations(), s.duration),
            Fw::Marathon => format!("{:.0} CPU-s", s.duration),
        };
        ui.say(&format!(
            "  {:<22} {:<8} {what:<12} deadline {:>3.0} s, starts at {:.2} CPU: {}",
            s.name(),
            s.base.framework.as_str(),
            s.deadline,
            s.cpus,
            s.story
        ));
        files.push((s.clone(), path));
    }
    Ok(files)
}

/// When the run started and ended, and what it measured, for its summary.
struct RunFacts {
    started: chrono::DateTime<chrono::Local>,
    wall_seconds: f64,
    t0: f64,
    timed_out: bool,
    per_solve: f64,
}

/// `report.json`: the command, the run's facts, every job's row and details, totals, the URLs
/// and logs of the stack.
fn summary(
    args: &Args,
    stack: &Stack,
    out: &Path,
    run: &RunFacts,
    rows: &[report::Row],
    per_job: &[Value],
) -> Value {
    let sup = &stack.urls.supervisor;
    let mut command = String::from("cargo run --release --bin demo --");
    for a in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&a);
    }
    json!({
        "command": command,
        "policy": args.policy.as_str(),
        "runtime": if args.docker { "docker" } else { "process" },
        "quick": args.quick,
        "started": run.started.to_rfc3339(),
        "wall_seconds": run.wall_seconds,
        "t0": run.t0,
        "run_id": stack.run_id,
        "cgroup_prefix": stack.prefix,
        "timed_out": run.timed_out,
        "calibration": {"n": workload::LINPACK_N, "seconds_per_solve": run.per_solve},
        "jobs": rows,
        "totals": report::totals(rows),
        "details": per_job,
        "urls": {
            "supervisor": sup,
            "metrics": format!("{sup}/metrics"),
            "dashboard": stack.urls.dashboard,
            "collector_metrics": stack.urls.collector_metrics,
            "marathon": stack.urls.marathon,
            "chronos": stack.urls.chronos,
        },
        "report": {"markdown": out.join("report.md"), "json": out.join("report.json")},
        "logs": stack.logs,
        "leftovers": [],
    })
}
