//! The summary table and the report files.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use crate::watch::{Fw, Tracked};

/// One row of the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Job name.
    pub name: String,
    /// Supervisor UUID.
    pub uuid: String,
    /// `chronos` or `marathon`.
    pub framework: &'static str,
    /// Deadline, seconds after submission.
    pub deadline: f64,
    /// `completed`, `failed`, `cancelled` or the last state seen.
    pub state: String,
    /// Seconds after submission, when completed.
    pub finished: Option<f64>,
    /// Whether it met its deadline (`Some(false)` when it did not complete).
    pub met: Option<bool>,
    /// CPU-seconds allocated (allocation × time while running).
    pub cpu_seconds_allocated: f64,
    /// CPU-seconds used, by the collector's cgroup counters.
    pub cpu_seconds_used: f64,
    /// CPUs at submission.
    pub initial_cpus: f64,
    /// CPUs at the end.
    pub final_cpus: Option<f64>,
    /// Resizes applied.
    pub resizes: u64,
    /// Restarts seen (Marathon).
    pub restarts: u32,
}

/// The summary of one job; `detail` is `GET /api/v1/jobs/{uuid}` at the end.
#[must_use]
pub fn row(job: &Tracked, detail: &Value) -> Row {
    let v = if detail.is_object() {
        detail
    } else {
        &job.last
    };
    let state = v["state"].as_str().unwrap_or("unknown").to_owned();
    let phase = &v["phase"];
    let completed = state == "completed";
    let end = phase["at"].as_f64();
    Row {
        name: job.name.clone(),
        uuid: job.uuid.clone(),
        framework: job.spec.framework.as_str(),
        deadline: job.spec.deadline,
        finished: if completed {
            end.map(|at| at - job.submitted_at)
        } else {
            None
        },
        met: if completed {
            phase["met"].as_bool()
        } else {
            Some(false)
        },
        state,
        cpu_seconds_allocated: allocated(job, v, end),
        cpu_seconds_used: job.cpu_seconds_used(),
        initial_cpus: job.spec.cpus,
        final_cpus: v["cpus"].as_f64(),
        resizes: v["resizes"].as_u64().unwrap_or(0),
        // Resizes that restarted the task, by the supervisor's history (a restart can start and
        // end between two polls of the live view).
        restarts: job
            .history
            .iter()
            .filter(|h| h["kind"] == "resize" && h["action"]["restart"] == true)
            .count()
            .try_into()
            .unwrap_or(u32::MAX)
            .max(job.restarts),
    }
}

/// Allocation × time: Chronos per iteration (its run time at the size it ran with), Marathon
/// from its first start to its end through every resize.
fn allocated(job: &Tracked, v: &Value, end: Option<f64>) -> f64 {
    match job.spec.framework {
        Fw::Chronos => v["reports"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        let d = r["finished_at"].as_f64().unwrap_or(0.0)
                            - r["started_at"].as_f64().unwrap_or(0.0);
                        d.max(0.0) * r["cpus"].as_f64().unwrap_or(job.spec.cpus)
                    })
                    .sum()
            })
            .unwrap_or(0.0),
        Fw::Marathon => {
            let Some(start) = v["started_at"].as_f64() else {
                return 0.0;
            };
            let end = end.unwrap_or_else(crate::watch::now_epoch);
            let mut cpus = job.spec.cpus;
            let mut t = start;
            let mut total = 0.0;
            for r in v["resize_history"].as_array().into_iter().flatten() {
                let at = r["at"].as_f64().unwrap_or(t).clamp(t, end);
                total += (at - t) * cpus;
                t = at;
                cpus = r["to"].as_f64().unwrap_or(cpus);
            }
            total + (end - t).max(0.0) * cpus
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.digits$}"))
}

impl Row {
    /// `met`, `missed` (written as given) for a completed job, else its state.
    fn result<'a>(&'a self, missed: &'a str) -> &'a str {
        match (self.state.as_str(), self.met) {
            ("completed", Some(true)) => "met",
            ("completed", _) => missed,
            (other, _) => other,
        }
    }
}

/// The plain-text table's columns: width, and whether the cell is left-aligned (text) or
/// right-aligned (figures).
const COLUMNS: [(usize, bool); 9] = [
    (22, true),
    (9, true),
    (8, false),
    (9, false),
    (7, true),
    (10, false),
    (9, false),
    (9, false),
    (8, false),
];

/// One line of the plain-text table: each cell padded to its column.
fn line(s: &mut String, cells: [&str; 9]) {
    let padded: Vec<String> = COLUMNS
        .iter()
        .zip(cells)
        .map(|(&(width, left), cell)| {
            if left {
                format!("{cell:<width$}")
            } else {
                format!("{cell:>width$}")
            }
        })
        .collect();
    let _ = writeln!(s, "{}", padded.join(" "));
}

/// The summary table (plain text).
#[must_use]
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    line(
        &mut s,
        [
            "job",
            "framework",
            "deadline",
            "finished",
            "result",
            "CPU-s",
            "CPU-s",
            "CPU",
            "resizes",
        ],
    );
    line(
        &mut s,
        ["", "", "s", "s", "", "allocated", "used", "start→end", ""],
    );
    for r in rows {
        let resizes = if r.restarts > 0 {
            format!("{} ({}r)", r.resizes, r.restarts)
        } else {
            r.resizes.to_string()
        };
        line(
            &mut s,
            [
                &r.name,
                r.framework,
                &format!("{:.0}", r.deadline),
                &opt(r.finished, 0),
                r.result("MISSED"),
                &format!("{:.1}", r.cpu_seconds_allocated),
                &format!("{:.1}", r.cpu_seconds_used),
                &format!("{:.1}→{}", r.initial_cpus, opt(r.final_cpus, 1)),
                &resizes,
            ],
        );
    }
    let met = rows.iter().filter(|r| r.met == Some(true)).count();
    let alloc: f64 = rows.iter().map(|r| r.cpu_seconds_allocated).sum();
    let used: f64 = rows.iter().map(|r| r.cpu_seconds_used).sum();
    let resizes: u64 = rows.iter().map(|r| r.resizes).sum();
    line(
        &mut s,
        [
            "total",
            "",
            "",
            "",
            &format!("{met}/{}", rows.len()),
            &format!("{alloc:.1}"),
            &format!("{used:.1}"),
            "",
            &resizes.to_string(),
        ],
    );
    s
}

/// Totals over the rows.
#[must_use]
pub fn totals(rows: &[Row]) -> Value {
    json!({
        "jobs": rows.len(),
        "completed": rows.iter().filter(|r| r.state == "completed").count(),
        "met": rows.iter().filter(|r| r.met == Some(true)).count(),
        "cpu_seconds_allocated": rows.iter().map(|r| r.cpu_seconds_allocated).sum::<f64>(),
        "cpu_seconds_used": rows.iter().map(|r| r.cpu_seconds_used).sum::<f64>(),
        "resizes": rows.iter().map(|r| r.resizes).sum::<u64>(),
        "restarts": rows.iter().map(|r| u64::from(r.restarts)).sum::<u64>(),
    })
}

/// The Markdown report of a demo run.
#[must_use]
pub fn markdown(summary: &Value, rows: &[Row], jobs: &[Tracked]) -> String {
    let t0 = summary["t0"].as_f64().unwrap_or(0.0);
    let mut s = String::new();
    let _ = writeln!(s, "# qos-elastic demo run\n");
    let _ = writeln!(
        s,
        "Command: `{}`  \nPolicy: **{}**, runtime: {}, started {}, {} s wall time.  \n\
         LINPACK n = {}: {:.4} s per solve on one thread here (each job's `--repeat` makes its \
         `duration` true on this machine).\n",
        summary["command"].as_str().unwrap_or(""),
        summary["policy"].as_str().unwrap_or(""),
        summary["runtime"].as_str().unwrap_or(""),
        summary["started"].as_str().unwrap_or(""),
        summary["wall_seconds"].as_f64().unwrap_or(0.0).round(),
        summary["calibration"]["n"],
        summary["calibration"]["seconds_per_solve"]
            .as_f64()
            .unwrap_or(0.0),
    );
    let _ = writeln!(s, "## Jobs\n");
    let _ = writeln!(
        s,
        "| job | framework | deadline (s) | finished (s) | result | CPU-s allocated | CPU-s used | CPU start → end | resizes | restarts |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let result = r.result("**missed**");
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {} | {result} | {:.1} | {:.1} | {:.1} → {} | {} | {} |",
            r.name,
            r.framework,
            r.deadline,
            opt(r.finished, 1),
            r.cpu_seconds_allocated,
            r.cpu_seconds_used,
            r.initial_cpus,
            opt(r.final_cpus, 1),
            r.resizes,
            r.restarts
        );
    }
    let _ = writeln!(s, "\n## What each job was for\n");
    for j in jobs {
        let _ = writeln!(
            s,
            "- **{}** (`{}`, {}): {}",
            j.name,
            j.spec.file,
            j.spec.framework.as_str(),
            j.spec.story
        );
    }
    let _ = writeln!(s, "\n## Events\n\n```text");
    let mut events: Vec<&String> = jobs.iter().flat_map(|j| &j.events).collect();
    events.sort();
    for e in events {
        let _ = writeln!(s, "{e}");
    }
    let _ = writeln!(s, "```\n\n## Decisions\n");
    for j in jobs {
        let _ = writeln!(
            s,
            "### {}\n\n| t (s since the first submission) | kind | class | action | reason |\n|---|---|---|---|---|",
            j.name
        );
        for h in &j.history {
            let _ = writeln!(
                s,
                "| {:.1} | {} | {} | {} | {} |",
                h["at"].as_f64().unwrap_or(0.0) - t0,
                h["kind"].as_str().unwrap_or(""),
                h["class"].as_str().unwrap_or(""),
                compact(&h["action"]),
                crate::watch::relative_times(h["reason"].as_str().unwrap_or(""), t0)
                    .replace('|', "\\|")
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "## Where things were\n");
    for (k, v) in summary["urls"].as_object().into_iter().flatten() {
        let _ = writeln!(s, "- {k}: {}", v.as_str().unwrap_or(""));
    }
    s
}

fn compact(v: &Value) -> String {
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// Writes `report.json` and `report.md` into `dir`.
///
/// # Errors
/// I/O errors.
pub fn write(dir: &Path, summary: &Value, md: &str) -> anyhow::Result<()> {
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(summary)? + "\n",
    )?;
    std::fs::write(dir.join("report.md"), md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A completed job that met its deadline: (name, framework, deadline, finished),
    /// CPU-seconds (allocated, used), CPUs (start, end), (resizes, restarts).
    fn row(
        (name, framework, deadline, finished): (&str, &'static str, f64, f64),
        (allocated, used): (f64, f64),
        (initial, end): (f64, f64),
        (resizes, restarts): (u64, u32),
    ) -> Row {
        Row {
            name: name.into(),
            uuid: String::new(),
            framework,
            deadline,
            state: "completed".into(),
            finished: Some(finished),
            met: Some(true),
            cpu_seconds_allocated: allocated,
            cpu_seconds_used: used,
            initial_cpus: initial,
            final_cpus: Some(end),
            resizes,
            restarts,
        }
    }

    /// The table of the demo's README, from the rows of that run (its totals here are the sums
    /// of the rounded figures).
    #[test]
    fn the_table_lines_up_as_in_the_readme() {
        let rows = [
            row(
                ("local-openmpLinpack1", "chronos", 100.0, 92.0),
                (53.7, 52.7),
                (0.5, 0.7),
                (2, 0),
            ),
            row(
                ("local-openmpLinpack3", "chronos", 130.0, 104.0),
                (24.5, 23.7),
                (1.0, 0.1),
                (2, 0),
            ),
            row(
                ("local-openmplinpack1", "marathon", 110.0, 93.0),
                (46.2, 45.8),
                (0.4, 0.5),
                (1, 1),
            ),
        ];
        let expected = "\
job                    framework deadline  finished result       CPU-s     CPU-s       CPU  resizes
                                        s         s          allocated      used start→end         
local-openmpLinpack1   chronos        100        92 met           53.7      52.7   0.5→0.7        2
local-openmpLinpack3   chronos        130       104 met           24.5      23.7   1.0→0.1        2
local-openmplinpack1   marathon       110        93 met           46.2      45.8   0.4→0.5   1 (1r)
total                                               3/3          124.4     122.2                  5
";
        assert_eq!(table(&rows), expected);
        let mut missed = rows[0].clone();
        missed.met = Some(false);
        missed.final_cpus = None;
        assert!(
            table(&[missed]).contains(" MISSED  "),
            "a missed deadline is shouted"
        );
    }
}
