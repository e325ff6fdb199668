//! `study real`: a thesis case study run for real — the testbed's agents emulating the thesis'
//! nodes on this machine, the real supervisor, launcher, shell-trap, collector and LINPACK — with
//! times (and, for the five-node cases, CPUs) scaled down, every report, decision and sample
//! recorded in a run directory.
//!
//! # Scaling
//! - **Time** by `F` (`--scale`, default 0.1): deadlines, QoS durations, the thesis' monitoring
//!   period (120 s) and deployment time (45 s), the predictive policy's periods and margins.
//! - **CPU** by `c`: Cases I and II emulate the thesis' five 2-CPU nodes as five agents of 0.4 CPU
//!   (c = 0.2 real CPU per thesis CPU, the whole cluster on 2 cores); Case III's single node is one
//!   agent of 1 CPU (c = 0.5). Allocations, `cpu_min`/`cpu_max`, the thesis' ±0.4 steps and the
//!   predictive granularity and hysteresis are multiplied by `c`. Every allocation is then at
//!   most one real CPU, where LINPACK (one thread) runs at a speed proportional to its quota:
//!   two thesis CPUs are exactly twice one (the thesis measured 1.33× on its nodes).
//! - **Work**: each LINPACK run is sized (by `--repeat`, calibrated in CPU time) to the thesis'
//!   measured time at one CPU (Table 1: N = 6000 → 480.4 s, 4000 → 162.75 s, 3500 → 92.36 s)
//!   × F × c real CPU-seconds; Case II draws N ± 250 for every run (work ∝ N³).
//! - **QoS**: Chronos `duration` is the thesis' per-iteration time × F (what Eq. 1 adds per
//!   remaining iteration); Marathon `duration` is CPU-seconds × F × c (what Eq. 3 compares with
//!   the cgroup's CPU time).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use demo::binaries::BuildOptions;
use demo::harness::{RunStamp, Stack, StackOptions, interrupted, report_leftovers, run_dir};
use demo::report;
use demo::steps;
use demo::watch::{Fw, JobInfo, Tracked, Ui, now_epoch};
use demo::workload;
use serde_json::{Value, json};

/// `study real` options.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RealArgs {
    /// 1 (six Chronos jobs), 2 (the same with N ± 250 per run) or 3 (one Marathon job).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub(crate) case: u8,
    /// Time scale (0.1: Case I's 1800 s deadline becomes 180 s).
    #[arg(long, default_value_t = 0.1)]
    pub(crate) scale: f64,
    /// thesis | predictive
    #[arg(long, default_value = "predictive")]
    pub(crate) policy: String,
    /// Run directory [default: target/study/real/case<N>-<policy>-<time>].
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Where the component binaries come from.
    #[command(flatten)]
    pub(crate) build: BuildOptions,
    /// Give up after this many seconds [default: 2.5 × the longest deadline + 60].
    #[arg(long)]
    pub(crate) timeout: Option<u64>,
}

const THESIS_JOBS: [(&str, &str); 7] = [
    (
        "openmpLinpack1",
        include_str!("../../jobs/thesis/openmpLinpack1.json"),
    ),
    (
        "openmpLinpack2",
        include_str!("../../jobs/thesis/openmpLinpack2.json"),
    ),
    (
        "openmpLinpack3",
        include_str!("../../jobs/thesis/openmpLinpack3.json"),
    ),
    (
        "openmpLinpack4",
        include_str!("../../jobs/thesis/openmpLinpack4.json"),
    ),
    (
        "openmpLinpack5",
        include_str!("../../jobs/thesis/openmpLinpack5.json"),
    ),
    (
        "openmpLinpack6",
        include_str!("../../jobs/thesis/openmpLinpack6.json"),
    ),
    (
        "marathon_openmpLinpack1",
        include_str!("../../jobs/thesis/marathon_openmpLinpack1.json"),
    ),
];

/// Table 1 of the thesis: LINPACK seconds at one CPU by matrix order.
fn one_cpu_seconds(n: u32) -> Option<f64> {
    match n {
        6000 => Some(480.4),
        4000 => Some(162.75),
        3500 => Some(92.36),
        _ => None,
    }
}

/// The emulated cluster of a case.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    /// Agents (thesis nodes).
    pub(crate) agents: usize,
    /// Real CPUs per thesis CPU.
    pub(crate) c: f64,
}

pub(crate) fn setup(case: u8) -> Setup {
    if case == 3 {
        // One thesis node (2 CPUs) as one agent of 1 CPU: every allocation stays at or below one
        // core, where LINPACK's speed is proportional to its quota whatever else the machine runs.
        Setup { agents: 1, c: 0.5 }
    } else {
        Setup { agents: 5, c: 0.2 }
    }
}

/// One job of a case, scaled.
#[derive(Debug, Clone)]
struct CaseJob {
    file: &'static str,
    framework: Fw,
    name: String,
    body: Value,
    /// LINPACK order in the thesis.
    n: u32,
    /// Real CPU-seconds of one run.
    work: f64,
    cpus: f64,
    deadline: f64,
    duration: f64,
}

fn case_jobs(case: u8, scale: f64, c: f64) -> anyhow::Result<Vec<CaseJob>> {
    let names: &[&str] = match case {
        1 | 2 => &[
            "openmpLinpack1",
            "openmpLinpack2",
            "openmpLinpack3",
            "openmpLinpack4",
            "openmpLinpack5",
            "openmpLinpack6",
        ],
        3 => &["marathon_openmpLinpack1"],
        other => bail!("--case must be 1, 2 or 3, not {other}"),
    };
    let mut out = Vec::new();
    for name in names {
        let (_, text) = THESIS_JOBS
            .iter()
            .find(|(n, _)| n == name)
            .context("thesis job file")?;
        let body: Value = serde_json::from_str(text)?;
        let framework = if body.get("id").is_some() {
            Fw::Marathon
        } else {
            Fw::Chronos
        };
        let cmd = body["command"]
            .as_str()
            .or_else(|| body["cmd"].as_str())
            .unwrap_or_default();
        let n: u32 = cmd
            .split_whitespace()
            .nth(1)
            .and_then(|w| w.parse().ok())
            .with_context(|| format!("{name}: no matrix order in {cmd:?}"))?;
        let t1 = one_cpu_seconds(n).with_context(|| format!("{name}: N = {n} not in Table 1"))?;
        let qos = &body["qos"];
        let num = |v: &Value| {
            v.as_f64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        };
        let duration = num(&qos["duration"]).context("qos.duration")?;
        let deadline = num(&qos["deadline"]).context("qos.deadline")?;
        let cpus = num(&body["cpus"]).unwrap_or(1.0);
        let job_name = match framework {
            Fw::Chronos => body["name"].as_str().unwrap_or(name).to_owned(),
            Fw::Marathon => body["id"]
                .as_str()
                .unwrap_or(name)
                .trim_start_matches('/')
                .to_owned(),
        };
        out.push(CaseJob {
            file: name,
            framework,
            name: job_name,
            body,
            n,
            work: t1 * scale * c,
            cpus: cpus * c,
            deadline: deadline * scale,
            duration: match framework {
                Fw::Chronos => duration * scale,
                Fw::Marathon => duration * scale * c,
            },
        });
    }
    Ok(out)
}

impl CaseJob {
    /// The job file sent: the thesis file, scaled, run as a process (`exec` so that SIGTERM
    /// reaches LINPACK), LINPACK sized by `per_solve`.
    fn render(&self, case: u8, per_solve: f64) -> Value {
        let mut v = self.body.clone();
        let Some(o) = v.as_object_mut() else {
            return v;
        };
        let repeat = workload::repeat_for(self.work, per_solve);
        let command = if case == 2 {
            // N ± 250 for every run, drawn when the run starts; work ∝ N³.
            let n = u64::from(self.n);
            format!(
                "n=$(shuf -i {}-{} -n 1); exec linpack {} --repeat $(( {repeat} * n * n * n / ({n} * {n} * {n}) ))",
                n - 250,
                n + 250,
                workload::LINPACK_N
            )
        } else {
            format!("exec linpack {} --repeat {repeat}", workload::LINPACK_N)
        };
        o.remove("container");
        let desv = o["qos"]["desv_deadline"].clone();
        o.insert(
            "qos".into(),
            json!({"duration": round3(self.duration), "deadline": round3(self.deadline), "desv_deadline": desv}),
        );
        match self.framework {
            Fw::Chronos => {
                o.insert("command".into(), json!(command));
                o.insert("cpus".into(), json!(format!("{}", round3(self.cpus))));
                o.insert("owner".into(), json!("qos-elastic"));
            }
            Fw::Marathon => {
                o.insert("cmd".into(), json!(command));
                o.insert("cpus".into(), json!(round3(self.cpus)));
                o.insert("backoffSeconds".into(), json!(1));
            }
        }
        v
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The supervisor's configuration: the thesis' constants, times × `scale`, CPUs × `c`.
pub(crate) fn supervisor_config(policy: &str, scale: f64, c: f64) -> String {
    let period = (10.0 * scale).max(1.0);
    format!(
        "# study real: the thesis' constants with times × {scale} and CPUs × {c}\n\
         policy = \"{policy}\"\n\
         cpu_min = {cpu_min}\n\
         cpu_max = {cpu_max}\n\
         cpu_increment = {step}\n\
         cpu_decrement = {step}\n\
         monitoring_period = {monitoring}\n\
         deployment_time = {deployment}\n\
         sleeping_time = 0.0\n\
         \n\
         [predictive]\n\
         granularity = {granularity}\n\
         hysteresis = {hysteresis}\n\
         cooldown = {cooldown}\n\
         restart_cost = {restart}\n\
         safety_secs = {safety}\n\
         stale_after = {stale}\n\
         \n\
         [control]\n\
         period = {period}\n\
         history_hold_interval = 1.0\n\
         sample_downsample = 1.0\n\
         stuck_deployment_timeout = {stuck}\n\
         backoff_max = 5.0\n",
        cpu_min = round3(0.1 * c),
        cpu_max = round3(2.0 * c),
        step = round3(0.4 * c),
        monitoring = round3(120.0 * scale),
        deployment = round3(45.0 * scale),
        granularity = round3(0.1 * c).max(0.01),
        hysteresis = round3(0.2 * c),
        cooldown = round3(60.0 * scale),
        restart = round3(20.0 * scale),
        safety = round3(10.0 * scale),
        stale = round3((30.0 * scale).max(10.0)),
        stuck = round3((180.0 * scale).max(20.0)),
    )
}

/// Runs one case; the run directory.
pub(crate) async fn run(args: &RealArgs) -> anyhow::Result<PathBuf> {
    if !(args.scale > 0.0 && args.scale <= 1.0) {
        bail!("--scale must be in (0, 1], got {}", args.scale);
    }
    if !matches!(args.policy.as_str(), "thesis" | "predictive") {
        bail!("--policy must be thesis or predictive");
    }
    let ui = Ui::new();
    let run = RunStamp::now();
    let name = format!("case{}-{}-{}", args.case, args.policy, run.stamp);
    let dir = run_dir(args.out.as_deref(), &Path::new("study/real").join(name));
    std::fs::create_dir_all(dir.join("jobs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let work = tempfile::Builder::new().prefix("qos-study-").tempdir()?;
    let mut stack = Stack::new(&run.id, "qos-study", work.path(), &dir.join("logs"));
    let result = {
        let body = body(args, &ui, &mut stack, &dir, run.started);
        tokio::select! {
            r = body => r.map(Some),
            () = interrupted() => Ok(None),
        }
    };
    ui.say("stopping the testbed, the collector and the supervisor…");
    let left = stack.teardown(&ui).await;
    report_leftovers(&ui, &left);
    // Each task's stderr (shell-trap's log, LINPACK's checkpoint lines, the Chronos reports'
    // errors) and the head of its stdout (LINPACK's header: threads and their source).
    copy_sandboxes(&stack.sandboxes(), &dir.join("sandboxes"));
    // The database, with every report, decision and (downsampled) sample.
    for f in ["supervisor.db", "supervisor.db-wal", "supervisor.db-shm"] {
        let p = work.path().join(f);
        if p.exists() {
            let _ = std::fs::copy(&p, dir.join(f));
        }
    }
    match result {
        Ok(Some(mut record)) => {
            record["leftovers"] = json!(left);
            std::fs::write(
                dir.join("run.json"),
                serde_json::to_string_pretty(&record)? + "\n",
            )?;
            ui.say(&format!("run recorded in {}", dir.display()));
            Ok(dir)
        }
        Ok(None) => bail!("interrupted; partial logs in {}", dir.display()),
        Err(e) => Err(e.context(format!("logs in {}", dir.join("logs").display()))),
    }
}

fn copy_sandboxes(from: &Path, to: &Path) {
    let Ok(agents) = std::fs::read_dir(from.join("agents")) else {
        return;
    };
    for a in agents.flatten() {
        let Ok(tasks) = std::fs::read_dir(a.path().join("tasks")) else {
            continue;
        };
        for t in tasks.flatten() {
            let dst = to.join(t.file_name());
            if std::fs::create_dir_all(&dst).is_err() {
                continue;
            }
            let _ = std::fs::copy(t.path().join("stderr"), dst.join("stderr"));
            let head: String = std::fs::read_to_string(t.path().join("stdout"))
                .unwrap_or_default()
                .lines()
                .take(5)
                .map(|l| format!("{l}\n"))
                .collect();
            let _ = std::fs::write(dst.join("stdout.head"), head);
        }
    }
}

async fn body(
    args: &RealArgs,
    ui: &Ui,
    stack: &mut Stack,
    dir: &Path,
    started: chrono::DateTime<chrono::Local>,
) -> anyhow::Result<Value> {
    let t_start = Instant::now();
    let Setup { agents, c } = setup(args.case);
    let (bins, per_solve) = steps::prepare(&args.build, "study").await?;
    ui.say(&format!(
        "case {} · policy {} · time × {} · {} agent(s) of {} CPU (thesis CPU = {c} real) · LINPACK n={} {:.1} ms CPU/solve",
        args.case,
        args.policy,
        args.scale,
        agents,
        2.0 * c,
        workload::LINPACK_N,
        per_solve * 1000.0
    ));
    let jobs_spec = case_jobs(args.case, args.scale, c)?;
    let sopts = StackOptions {
        agents,
        cpus_per_agent: 2.0 * c,
        docker: false,
        supervisor_toml: supervisor_config(&args.policy, args.scale, c),
        policy: args.policy.clone(),
        agent_token: None,
    };
    stack.start(&sopts, &bins, ui).await?;
    let watcher = steps::watcher(ui, stack)?;
    let mut jobs = Vec::new();
    for j in &jobs_spec {
        let body = j.render(args.case, per_solve);
        let path = dir.join("jobs").join(format!("{}.json", j.file));
        std::fs::write(&path, serde_json::to_string_pretty(&body)? + "\n")?;
        let uuid = stack.submit(&bins, &path, j.framework)?;
        let info = JobInfo {
            name: j.name.clone(),
            framework: j.framework,
            deadline: j.deadline,
            cpus: j.cpus,
            story: format!(
                "thesis {} (N = {}), {:.2} real CPU-s per run",
                j.file, j.n, j.work
            ),
            file: format!("examples/jobs/thesis/{}.json", j.file),
        };
        jobs.push(Tracked::new(ui, uuid, info, now_epoch()));
    }
    let longest = jobs_spec.iter().map(|j| j.deadline).fold(0.0, f64::max);
    let timeout = args.timeout.map_or(
        Duration::from_secs_f64(longest * 2.5 + 60.0),
        Duration::from_secs,
    );
    let mut timeline: Vec<Value> = Vec::new();
    let timed_out = steps::watch_until_done(
        ui,
        stack,
        &watcher,
        &mut jobs,
        timeout,
        "unfinished jobs count as missed",
        |t, jobs| {
            for j in jobs {
                let v = &j.last;
                timeline.push(json!({
                    "t": t, "job": j.name, "state": v["state"], "class": v["class"],
                    "cpus": v["cpus"], "progress": v["progress"], "prediction": v["prediction"],
                    "cpu_seconds": v["cpu_seconds"], "cpu_used": j.cpu_seconds_used(),
                }));
            }
        },
    )
    .await?;
    let (rows, per_job) = steps::summarize(&stack.urls.supervisor, &jobs).await?;
    println!("{}", report::table(&rows));
    Ok(json!({
        "case": args.case,
        "policy": args.policy,
        "scale": args.scale,
        "cpu_scale": c,
        "agents": agents,
        "cpus_per_agent": 2.0 * c,
        "started": started.to_rfc3339(),
        "wall_seconds": t_start.elapsed().as_secs_f64(),
        "t0": watcher.t0,
        "timed_out": timed_out,
        "calibration": {"n": workload::LINPACK_N, "seconds_per_solve": per_solve},
        "supervisor_config": supervisor_config(&args.policy, args.scale, c),
        "jobs": rows,
        "totals": report::totals(&rows),
        "details": per_job,
        "timeline": timeline,
        "command": std::env::args().collect::<Vec<_>>().join(" "),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_jobs_are_the_thesis_jobs_scaled() {
        let jobs = case_jobs(1, 0.1, 0.2).unwrap();
        assert_eq!(jobs.len(), 6);
        let j1 = &jobs[0];
        assert_eq!(j1.name, "openmpLinpack1");
        assert_eq!(j1.n, 6000);
        assert!((j1.deadline - 180.0).abs() < 1e-9);
        assert!((j1.duration - 40.0).abs() < 1e-9);
        assert!((j1.cpus - 0.2).abs() < 1e-9);
        assert!((j1.work - 480.4 * 0.02).abs() < 1e-9);
        let body = j1.render(1, 0.01);
        assert_eq!(body["cpus"], "0.2");
        assert!(body.get("container").is_none());
        assert_eq!(body["schedule"], "R4//PT5M");
        assert_eq!(body["command"], "exec linpack 600 --repeat 961");
        let c2 = case_jobs(2, 0.1, 0.2).unwrap()[2].render(2, 0.01);
        assert!(
            c2["command"]
                .as_str()
                .unwrap()
                .starts_with("n=$(shuf -i 3750-4250 -n 1); exec linpack 600 --repeat $(( 326 *"),
            "{c2}"
        );
        let m = &case_jobs(3, 0.1, 0.5).unwrap()[0];
        assert_eq!(m.framework, Fw::Marathon);
        assert!((m.duration - 20.0).abs() < 1e-9 && (m.deadline - 48.0).abs() < 1e-9);
        assert!((m.cpus - 0.5).abs() < 1e-9);
        assert_eq!(m.render(3, 0.01)["cmd"], "exec linpack 600 --repeat 2402");
    }

    #[test]
    fn supervisor_accepts_the_scaled_configurations() {
        for policy in ["thesis", "predictive"] {
            for (scale, c) in [(0.1, 0.2), (0.1, 0.5), (0.25, 0.2)] {
                // The address comes from the command line when the supervisor starts.
                let text = format!(
                    "listen = \"127.0.0.1:0\"\n{}",
                    supervisor_config(policy, scale, c)
                );
                if let Err(e) = supervisor::config::check_file(&text) {
                    panic!("{policy} × {scale} × {c}: {e}\n{text}");
                }
            }
        }
        let t = supervisor_config("thesis", 0.1, 0.2);
        assert!(t.contains("cpu_max = 0.4") && t.contains("monitoring_period = 12"));
        assert!(t.contains("cpu_increment = 0.08"));
    }
}
