//! The series the figures draw: from a real run's `run.json` (predictions against the deadline,
//! CPUs, iteration durations, the Marathon job's CPU-time ratio) and from the simulator's trace,
//! in thesis units.

use std::collections::BTreeMap;

use qos_core::sim::SimResult;

use super::Run;
use super::plot::Series;

/// Figure 21: prediction − deadline per job over time, from the decisions.
pub(super) fn real_prediction(run: &Run) -> Vec<Series> {
    let t0 = run.t0();
    run.details()
        .map(|d| {
            let deadline = d["detail"]["qos"]["deadline_at"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let points = d["history"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|h| h["kind"] == "decision")
                .filter_map(|h| {
                    let p = h["figures"]["prediction"].as_f64()?;
                    let at = h["at"].as_f64()?;
                    Some(((at - t0) / run.scale, (p - deadline) / run.scale))
                })
                .collect();
            Series {
                name: d["summary"]["name"].as_str().unwrap_or("").to_owned(),
                points,
                marks: Vec::new(),
            }
        })
        .collect()
}

/// CPUs allocated per job over time (thesis CPUs), while the job runs.
pub(super) fn real_cpu(run: &Run) -> Vec<Series> {
    let mut by_job: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in run.v["timeline"].as_array().into_iter().flatten() {
        let state = p["state"].as_str().unwrap_or("");
        if matches!(state, "completed" | "failed" | "cancelled") {
            continue;
        }
        if let (Some(t), Some(c), Some(j)) =
            (p["t"].as_f64(), p["cpus"].as_f64(), p["job"].as_str())
        {
            by_job
                .entry(j.to_owned())
                .or_default()
                .push((t / run.scale, c / run.c));
        }
    }
    order_like(run, by_job)
}

fn order_like(run: &Run, mut by_job: BTreeMap<String, Vec<(f64, f64)>>) -> Vec<Series> {
    run.details()
        .filter_map(|d| {
            let name = d["summary"]["name"].as_str()?.to_owned();
            let points = by_job.remove(&name)?;
            Some(Series {
                name,
                points,
                marks: Vec::new(),
            })
        })
        .collect()
}

/// Iteration durations (thesis seconds) at the time each iteration ended.
pub(super) fn real_iterations(run: &Run) -> Vec<Series> {
    let t0 = run.t0();
    run.details()
        .map(|d| Series {
            name: d["summary"]["name"].as_str().unwrap_or("").to_owned(),
            points: d["detail"]["reports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let s = r["started_at"].as_f64()?;
                    let f = r["finished_at"].as_f64()?;
                    Some(((f - t0) / run.scale, (f - s) / run.scale))
                })
                .collect(),
            marks: Vec::new(),
        })
        .collect()
}

/// Eq. 3's ratio (CPU consumed / desired) over time for the Marathon job, with its resizes.
pub(super) fn real_ratio(run: &Run) -> Series {
    let mut s = Series {
        name: format!("{} (real)", run.policy),
        ..Series::default()
    };
    let Some(d) = run.details().next() else {
        return s;
    };
    let q = &d["detail"]["qos"];
    let (Some(sub), Some(dl), Some(dur)) = (
        q["submitted_at"].as_f64(),
        q["deadline_at"].as_f64(),
        q["duration"].as_f64(),
    ) else {
        return s;
    };
    let window = dl - sub;
    let t0 = run.t0();
    let started = d["detail"]["started_at"].as_f64().unwrap_or(sub);
    for p in run.v["timeline"].as_array().into_iter().flatten() {
        let (Some(t), Some(used)) = (p["t"].as_f64(), p["cpu_used"].as_f64()) else {
            continue;
        };
        if matches!(
            p["state"].as_str(),
            Some("completed" | "failed" | "cancelled")
        ) {
            continue;
        }
        let elapsed = t0 + t - started;
        if elapsed < 0.1 * window {
            continue;
        }
        let desired = (elapsed / window).min(1.0) * dur;
        s.points.push((t / run.scale, used / desired));
    }
    s.marks = d["detail"]["resize_history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["at"].as_f64()? - t0) / run.scale))
        .collect();
    s
}

/// Limits the y values to ±`limit` (the predictive policy's first forecasts, from the user's
/// `duration` alone, can be far off); says whether any was cut.
pub(super) fn clip(series: &mut [Series], limit: f64) -> bool {
    let mut cut = false;
    for s in series {
        for p in &mut s.points {
            if p.1.abs() > limit {
                p.1 = p.1.clamp(-limit, limit);
                cut = true;
            }
        }
    }
    cut
}

/// A step function through decision points: each value holds until the next decision.
pub(super) fn steps(mut series: Vec<Series>) -> Vec<Series> {
    for s in &mut series {
        let mut out = Vec::with_capacity(s.points.len() * 2);
        for (i, &(x, y)) in s.points.iter().enumerate() {
            if i > 0 {
                out.push((x, s.points[i - 1].1));
            }
            out.push((x, y));
        }
        s.points = out;
    }
    series
}

pub(super) fn sim_series(
    r: &SimResult,
    f: impl Fn(&qos_core::sim::TracePoint) -> Option<f64>,
) -> Vec<Series> {
    r.jobs
        .iter()
        .enumerate()
        .map(|(i, j)| Series {
            name: j.name.clone(),
            points: r
                .trace
                .iter()
                .filter(|p| p.job == i)
                .filter_map(|p| Some((p.t, f(p)?)))
                .collect(),
            marks: Vec::new(),
        })
        .collect()
}
