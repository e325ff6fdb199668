//! `study report`: `docs/study/README.md` and its PNG plots, from the newest real run of each
//! case and policy (`study real`) and from the simulator (same cases, seed 1, CPU quotas as in
//! the real runs).
//!
//! Every real time and CPU figure is converted back to the thesis' scale (times ÷ F, CPUs ÷ c,
//! CPU-seconds ÷ F·c) so the real, simulated and published columns read in the same units.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod plot;
mod series;

use anyhow::Context;
use qos_core::Policy;
use qos_core::sim::{Sharing, SimConfig, SimResult, scenario, simulate};
use serde_json::Value;

use self::plot::{Panel, Series, load_font, plot};
use self::series::{
    clip, real_cpu, real_iterations, real_prediction, real_ratio, sim_series, steps,
};

const POLICIES: [&str; 2] = ["thesis", "predictive"];

/// Predictions further than this from the deadline (thesis seconds) are drawn at this bound.
const CLIP: f64 = 1000.0;

/// One `study real` run.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) case: u8,
    pub(crate) policy: String,
    /// Time scale F.
    pub(crate) scale: f64,
    /// Real CPUs per thesis CPU.
    pub(crate) c: f64,
    pub(crate) dir: PathBuf,
    pub(crate) v: Value,
}

impl Run {
    fn t0(&self) -> f64 {
        self.v["t0"].as_f64().unwrap_or(0.0)
    }

    fn details(&self) -> impl Iterator<Item = &Value> {
        self.v["details"].as_array().into_iter().flatten()
    }

    fn totals(&self) -> &Value {
        &self.v["totals"]
    }

    /// Restarts of a job, by the supervisor's history (resizes that restarted the task).
    fn restarts_of(&self, name: &str) -> u64 {
        self.details()
            .filter(|d| d["summary"]["name"] == name)
            .flat_map(|d| d["history"].as_array().into_iter().flatten())
            .filter(|h| h["kind"] == "resize" && h["action"]["restart"] == true)
            .count() as u64
    }

    fn restarts(&self) -> u64 {
        self.details()
            .filter_map(|d| d["summary"]["name"].as_str())
            .map(|n| self.restarts_of(n))
            .sum()
    }
}

/// The newest run of each (case, policy) under `dir`.
pub(crate) fn load_runs(dir: &Path) -> anyhow::Result<BTreeMap<(u8, String), Run>> {
    let mut runs: BTreeMap<(u8, String), Run> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(runs);
    };
    for e in rd.flatten() {
        let p = e.path().join("run.json");
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let v: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", p.display()))?;
        let case = u8::try_from(v["case"].as_u64().unwrap_or(0)).unwrap_or(0);
        let policy = v["policy"].as_str().unwrap_or_default().to_owned();
        let run = Run {
            case,
            policy: policy.clone(),
            scale: v["scale"].as_f64().unwrap_or(1.0),
            c: v["cpu_scale"].as_f64().unwrap_or(1.0),
            dir: e.path(),
            v,
        };
        let newer = runs.get(&(case, policy.clone())).is_none_or(|old| {
            old.v["started"].as_str().unwrap_or("") < run.v["started"].as_str().unwrap_or("")
        });
        if newer {
            runs.insert((case, policy), run);
        }
    }
    Ok(runs)
}

/// The simulator on the same case: seed 1, CPU quotas (as the testbed enforces them).
pub(crate) fn simulated(case: u8, policy: &str) -> anyhow::Result<SimResult> {
    let s = scenario(&format!("case{case}"), 1, Sharing::Quota)?;
    let p = Policy::by_name(policy).map_err(anyhow::Error::msg)?;
    Ok(simulate(&s, &p, SimConfig::default()))
}

/// Published figures of the thesis (Chapter 5).
fn published(case: u8) -> (&'static str, &'static str, &'static str, &'static str) {
    // (deadlines met, CPU-s allocated, resizes, restarts)
    match case {
        1 => ("4/6 (3 and 5 missed)", "—", "— (Figures 22–27)", "0"),
        2 => ("5/6", "—", "—", "0"),
        _ => ("1/1 (finished at 393 s)", "—", "2", "2"),
    }
}

/// A column of the side-by-side table.
#[derive(Debug, Clone)]
struct Column {
    met: String,
    cpu: String,
    resizes: String,
    restarts: String,
}

fn real_column(run: Option<&Run>) -> Column {
    let Some(run) = run else {
        return Column {
            met: "not run".into(),
            cpu: "—".into(),
            resizes: "—".into(),
            restarts: "—".into(),
        };
    };
    let t = run.totals();
    let finished: Vec<String> = if run.case == 3 {
        run.v["jobs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|j| j["finished"].as_f64())
            .map(|f| format!(" (finished at {:.0} s)", f / run.scale))
            .collect()
    } else {
        Vec::new()
    };
    Column {
        met: format!(
            "{}/{}{}",
            t["met"].as_u64().unwrap_or(0),
            t["jobs"].as_u64().unwrap_or(0),
            finished.join("")
        ),
        cpu: format!(
            "{:.0}",
            t["cpu_seconds_allocated"].as_f64().unwrap_or(0.0) / (run.scale * run.c)
        ),
        resizes: t["resizes"].as_u64().unwrap_or(0).to_string(),
        restarts: run.restarts().to_string(),
    }
}

fn sim_column(r: &SimResult) -> Column {
    let t = &r.totals;
    let finished = if r.jobs.len() == 1 {
        r.jobs[0]
            .finished_at
            .map_or(String::new(), |f| format!(" (finished at {f:.0} s)"))
    } else {
        String::new()
    };
    Column {
        met: format!("{}/{}{finished}", t.met, t.jobs),
        cpu: format!("{:.0}", t.usage.cpu_seconds_allocated),
        resizes: t.usage.resizes.to_string(),
        restarts: t.usage.restarts.to_string(),
    }
}

/// Writes `out/README.md` and the plots; the README's path.
pub(crate) fn write(runs_dir: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    load_font()?;
    std::fs::create_dir_all(out)?;
    let runs = load_runs(runs_dir)?;
    let mut md = String::new();
    let _ = writeln!(md, "{}", intro(&runs));
    let checks = side_by_side(&mut md, &runs)?;
    let _ = writeln!(md, "\n## Acceptance (issue 8)\n");
    if checks.is_empty() {
        let _ = writeln!(md, "No pair of real runs of the same case yet.");
    }
    for c in &checks {
        let _ = writeln!(md, "- {c}");
    }
    for case in 1..=3u8 {
        case_section(&mut md, out, &runs, case)?;
    }
    let path = out.join("README.md");
    std::fs::write(&path, md)?;
    Ok(path)
}

/// The side-by-side table (published, real and simulated figures of each case); returns the
/// acceptance line of each case with both real runs.
fn side_by_side(
    md: &mut String,
    runs: &BTreeMap<(u8, String), Run>,
) -> anyhow::Result<Vec<String>> {
    let _ = writeln!(md, "## Side by side\n");
    let _ = writeln!(
        md,
        "Real runs in thesis units (times ÷ F, CPU-seconds ÷ F·c); simulated runs at full \
         scale, seed 1, with CPU quotas like the testbed's.\n"
    );
    let _ = writeln!(
        md,
        "| case | | thesis (published) | thesis policy, real | predictive, real | thesis policy, simulated | predictive, simulated |\n|---|---|---|---|---|---|---|"
    );
    let mut checks = Vec::new();
    for case in 1..=3u8 {
        let pubd = published(case);
        let rt = real_column(runs.get(&(case, "thesis".into())));
        let rp = real_column(runs.get(&(case, "predictive".into())));
        let st = simulated(case, "thesis")?;
        let sp = simulated(case, "predictive")?;
        let (ct, cp) = (sim_column(&st), sim_column(&sp));
        let label = match case {
            1 => "I — six Chronos jobs, deadline 1800 s",
            2 => "II — as I, N ± 250 per run",
            _ => "III — one Marathon job, 400 CPU-s by 480 s",
        };
        for (what, p, a, b, c, d) in [
            ("deadlines met", pubd.0, &rt.met, &rp.met, &ct.met, &cp.met),
            (
                "CPU-s allocated",
                pubd.1,
                &rt.cpu,
                &rp.cpu,
                &ct.cpu,
                &cp.cpu,
            ),
            (
                "resizes",
                pubd.2,
                &rt.resizes,
                &rp.resizes,
                &ct.resizes,
                &cp.resizes,
            ),
            (
                "restarts",
                pubd.3,
                &rt.restarts,
                &rp.restarts,
                &ct.restarts,
                &cp.restarts,
            ),
        ] {
            let first = if what == "deadlines met" { label } else { "" };
            let _ = writeln!(md, "| {first} | {what} | {p} | {a} | {b} | {c} | {d} |");
        }
        if let (Some(t), Some(p)) = (
            runs.get(&(case, "thesis".into())),
            runs.get(&(case, "predictive".into())),
        ) {
            checks.push(acceptance(case, t, p));
        }
    }
    Ok(checks)
}

/// One case's section: its figures (predictions, CPUs, then iteration durations or the
/// Marathon job's CPU-time ratio) and the table of each real run.
fn case_section(
    md: &mut String,
    out: &Path,
    runs: &BTreeMap<(u8, String), Run>,
    case: u8,
) -> anyhow::Result<()> {
    let _ = writeln!(
        md,
        "\n## Case {}\n",
        ["I", "II", "III"][usize::from(case - 1)]
    );
    let (pred, cpu) = prediction_and_cpu_panels(runs, case)?;
    let last = if case < 3 {
        (
            "iterations",
            "iteration durations",
            "iteration durations (thesis Figures 22–27)",
            iterations_panels(runs, case),
        )
    } else {
        (
            "ratio",
            "CPU-time ratio",
            "the Marathon job's CPU-time ratio (thesis Figure 30)",
            ratio_panels(runs),
        )
    };
    let figures = [
        (
            "prediction",
            "prediction − deadline",
            "prediction − deadline per job (thesis Figure 21)",
            pred,
        ),
        ("cpu", "CPUs allocated", "CPUs allocated per job", cpu),
        last,
    ];
    for (name, alt, title, panels) in figures {
        let file = format!("case{case}-{name}.png");
        plot(
            &out.join(&file),
            &format!("Case {case}: {title}"),
            2,
            &panels,
        )?;
        let _ = writeln!(md, "![{alt}]({file})\n");
    }
    for policy in POLICIES {
        if let Some(run) = runs.get(&(case, policy.to_owned())) {
            let _ = writeln!(md, "{}", run_table(run));
        }
    }
    Ok(())
}

/// The panels of predictions against the deadline and of CPUs allocated: real runs, then the
/// simulator, one per policy.
fn prediction_and_cpu_panels(
    runs: &BTreeMap<(u8, String), Run>,
    case: u8,
) -> anyhow::Result<(Vec<Panel>, Vec<Panel>)> {
    let mut pred = Vec::new();
    let mut cpu = Vec::new();
    for policy in POLICIES {
        let run = runs.get(&(case, policy.to_owned()));
        let (p, c) = panel_pair(
            &format!("real, {policy} policy"),
            "time (s, thesis scale)",
            "CPUs allocated (thesis CPUs)",
            run.map(real_prediction).unwrap_or_default(),
            run.map(real_cpu).unwrap_or_default(),
        );
        pred.push(p);
        cpu.push(c);
    }
    for policy in POLICIES {
        let r = simulated(case, policy)?;
        let (p, c) = panel_pair(
            &format!("simulated, {policy} policy"),
            "time (s)",
            "CPUs allocated",
            sim_series(&r, |p| p.prediction_vs_deadline),
            steps(sim_series(&r, |p| Some(p.cpus.as_f64()))),
        );
        pred.push(p);
        cpu.push(c);
    }
    Ok((pred, cpu))
}

/// One run's prediction panel (clipped at ±[`CLIP`], as its title then says) and CPU panel.
fn panel_pair(
    title: &str,
    x_desc: &str,
    cpu_y_desc: &str,
    mut prediction: Vec<Series>,
    cpus: Vec<Series>,
) -> (Panel, Panel) {
    let cut = clip(&mut prediction, CLIP);
    let pred = Panel {
        title: format!("{title}{}", if cut { " (clipped at ±1000 s)" } else { "" }),
        x_desc: x_desc.into(),
        y_desc: "prediction − deadline (s)".into(),
        series: prediction,
        hlines: vec![0.0],
        points: true,
    };
    let cpu = Panel {
        title: title.to_owned(),
        x_desc: x_desc.into(),
        y_desc: cpu_y_desc.into(),
        series: cpus,
        hlines: Vec::new(),
        points: false,
    };
    (pred, cpu)
}

/// Cases I and II: the iteration durations of the real runs (thesis Figures 22–27).
fn iterations_panels(runs: &BTreeMap<(u8, String), Run>, case: u8) -> Vec<Panel> {
    POLICIES
        .iter()
        .map(|policy| Panel {
            title: format!("real, {policy} policy"),
            x_desc: "time the iteration ended (s, thesis scale)".into(),
            y_desc: "iteration duration (s, thesis scale)".into(),
            series: runs
                .get(&(case, (*policy).to_owned()))
                .map(real_iterations)
                .unwrap_or_default(),
            hlines: Vec::new(),
            points: true,
        })
        .collect()
}

/// Case III: the Marathon job's CPU-time ratio, real and simulated (thesis Figure 30).
fn ratio_panels(runs: &BTreeMap<(u8, String), Run>) -> Vec<Panel> {
    let real: Vec<Series> = POLICIES
        .iter()
        .filter_map(|p| runs.get(&(3, (*p).to_owned())))
        .map(real_ratio)
        .collect();
    let sim: Vec<Series> = POLICIES
        .iter()
        .filter_map(|p| simulated(3, p).ok())
        .map(|r| Series {
            name: format!("{} (simulated)", r.policy),
            points: r
                .trace
                .iter()
                .filter_map(|p| Some((p.t, p.ratio?)))
                .collect(),
            marks: Vec::new(),
        })
        .collect();
    vec![
        Panel {
            title: "real: CPU-s consumed / desired (Eq. 3); vertical lines: resizes".into(),
            x_desc: "time (s, thesis scale)".into(),
            y_desc: "ratio".into(),
            series: real,
            hlines: vec![0.9, 1.0, 1.1],
            points: false,
        },
        Panel {
            title: "simulated (the thesis policy's own Eq. 3 figures)".into(),
            x_desc: "time (s)".into(),
            y_desc: "ratio".into(),
            series: sim,
            hlines: vec![0.9, 1.0, 1.1],
            points: true,
        },
    ]
}

fn acceptance(case: u8, thesis: &Run, pred: &Run) -> String {
    let all_met = pred.v["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|j| j["met"] == true);
    let cpu = |r: &Run| r.totals()["cpu_seconds_allocated"].as_f64().unwrap_or(0.0);
    let (ct, cp) = (cpu(thesis), cpu(pred));
    format!(
        "Case {case}: the predictive policy met {} of {} deadlines ({}); it allocated {:.1} real \
         CPU-s against the thesis policy's {:.1} ({:+.0} %).",
        pred.totals()["met"].as_u64().unwrap_or(0),
        pred.totals()["jobs"].as_u64().unwrap_or(0),
        if all_met { "all" } else { "NOT all" },
        cp,
        ct,
        100.0 * (cp / ct.max(1e-9) - 1.0)
    )
}

fn run_table(run: &Run) -> String {
    let mut s = format!(
        "**{} policy, real** — `{}` ({}, {} s wall; run directory `{}`)\n\n\
         | job | deadline (s) | finished (s) | result | CPU-s allocated | CPU-s used | CPUs start → end | resizes | restarts |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        run.policy,
        run.v["command"]
            .as_str()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or(""),
        run.v["started"].as_str().unwrap_or(""),
        run.v["wall_seconds"].as_f64().unwrap_or(0.0).round(),
        run.dir
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let (f, c) = (run.scale, run.c);
    for j in run.v["jobs"].as_array().into_iter().flatten() {
        let result = match (j["state"].as_str(), j["met"].as_bool()) {
            (Some("completed"), Some(true)) => "met".to_owned(),
            (Some("completed"), _) => "**missed**".to_owned(),
            (Some(s), _) => format!("**{s}**"),
            _ => "?".to_owned(),
        };
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {result} | {:.0} | {:.0} | {:.1} → {} | {} | {} |",
            j["name"].as_str().unwrap_or(""),
            j["deadline"].as_f64().unwrap_or(0.0) / f,
            j["finished"]
                .as_f64()
                .map_or("—".to_owned(), |x| format!("{:.0}", x / f)),
            j["cpu_seconds_allocated"].as_f64().unwrap_or(0.0) / (f * c),
            j["cpu_seconds_used"].as_f64().unwrap_or(0.0) / (f * c),
            j["initial_cpus"].as_f64().unwrap_or(0.0) / c,
            j["final_cpus"]
                .as_f64()
                .map_or("—".to_owned(), |x| format!("{:.1}", x / c)),
            j["resizes"].as_u64().unwrap_or(0),
            run.restarts_of(j["name"].as_str().unwrap_or(""))
        );
    }
    s
}

fn intro(runs: &BTreeMap<(u8, String), Run>) -> String {
    let mut s = String::from(
        "# The thesis case studies, for real and simulated\n\n\
         Written by `cargo run --release -p study -- report` from the newest run of each case and \
         policy under `target/study/real/` and from the simulator. The real runs were made with \
         (as root, on this repository's 2-core VM):\n\n```sh\n",
    );
    for ((case, policy), run) in runs {
        let _ = writeln!(
            s,
            "cargo run --release -p study -- real --case {case} --policy {policy} --scale {}",
            run.scale
        );
    }
    s.push_str("cargo run --release -p study -- report\n```\n\n");
    s.push_str(
        "Each real run starts the testbed (its agents emulate the thesis' 2-CPU nodes: five agents \
         of 0.4 CPU for Cases I–II, so one thesis CPU is c = 0.2 real CPU; one agent of 1 CPU for \
         Case III, c = 0.5), the supervisor with the thesis' constants scaled (times × F, CPUs × c; \
         `supervisor_config` in each `run.json`), the node collector, and submits the thesis' job \
         files (`examples/jobs/thesis`) with the launcher, each LINPACK run sized in CPU time to the \
         thesis' measured time at one CPU (Table 1) × F × c. Chronos `duration` is the thesis' \
         per-iteration time × F (what Eq. 1 adds per iteration); Marathon `duration` is CPU-seconds \
         × F × c (what Eq. 3 compares with the cgroup's CPU time). Every report, decision and \
         sample is in the run directory (`run.json`, the supervisor's SQLite database, the \
         components' logs, each task's stderr).\n\n\
         How the real runs differ from the thesis' cluster:\n\n\
         - **Quotas, not shares.** The testbed enforces every allocation as a CFS quota; the \
           thesis' Docker containers used any idle CPU of their node. Compare the real runs with \
           the simulator's *quota* runs (here) rather than with its *shares* runs \
           (`docs/results.md`).\n\
         - **Linear speed-up.** Every allocation is at most one real core, where one LINPACK \
           thread runs at a speed proportional to its quota: two thesis CPUs are exactly twice one \
           (the thesis measured 1.33× at N = 6000), so more jobs are feasible than on the thesis' \
           nodes.\n\
         - **Deployment.** A run starts about a second after the previous one ends (the launcher \
           paces runs back to back; the testbed starts a process) instead of the thesis' 30–45 s \
           of Mesos offers and image pulls; the thesis policy still adds its 45 s × F per \
           remaining iteration in Eq. 1.\n\
         - **Predictive prior.** A Chronos `duration` is the thesis' per-iteration time, which the \
           predictive policy reads as seconds at one (real) CPU: until the first iteration is \
           measured it over-estimates the work 1/c times and asks for more CPU than needed.\n\
         - **Node capacity.** The collector registers this machine with its CPUs and the \
           supervisor caps a grow at the CPUs no job container holds; each agent's capacity \
           bounds placement (a task that does not fit waits, as on Mesos). Runs made before that \
           rule (when free CPU was idle CPU) set `control.node_timeout` so that nodes counted as \
           unknown; each run's `supervisor_config` in `run.json` says which.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips (with a notice) without a system font, unless `QOS_REQUIRE_FONT=1` (scripts/test).
    fn no_font() -> bool {
        let Err(e) = load_font() else { return false };
        assert!(
            std::env::var("QOS_REQUIRE_FONT").as_deref() != Ok("1"),
            "{e} and QOS_REQUIRE_FONT=1"
        );
        eprintln!("skipped: no system font (apt-get install fonts-dejavu-core)");
        true
    }

    #[test]
    fn plots_render_with_a_system_font() {
        if no_font() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let panel = Panel {
            title: "t".into(),
            x_desc: "x".into(),
            y_desc: "y".into(),
            series: vec![Series {
                name: "a".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0)],
                marks: vec![0.5],
            }],
            hlines: vec![0.0],
            points: true,
        };
        let p = dir.path().join("p.png");
        plot(&p, "title", 2, &[panel.clone(), Panel::default()]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn report_without_real_runs_still_has_the_simulated_columns() {
        if no_font() {
            return;
        }
        let runs = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let md = std::fs::read_to_string(write(runs.path(), out.path()).unwrap()).unwrap();
        assert!(md.contains("| thesis (published) |"), "{md}");
        assert!(md.contains("not run"), "{md}");
        for f in ["case1-prediction.png", "case2-cpu.png", "case3-ratio.png"] {
            assert!(out.path().join(f).is_file(), "{f}");
        }
    }
}
