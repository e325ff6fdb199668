//! Reading the supervisor's job objects (`GET /api/v1/jobs[/{uuid}]`) for `list`, `status` and
//! `watch`, tolerantly: a missing or renamed field shows as `-`, never as an error.
//!
//! Fields used: `uuid`, `name`, `framework`, `state` (`pending`, `running`, `restarting`,
//! `completed`, `failed`, `cancelled`), `class`, `cpus`, `progress` (fraction), `iterations`,
//! `remaining_iterations`, `qos.deadline_at` (epoch s), `prediction` (epoch s of the predicted
//! finish), `resizes` (a count, or a list), `resize_history`, `last_error`.

use frameworks::SupervisorClient;
use serde_json::Value;

use crate::error::LauncherError;
use crate::rewrite::JobUuid;

/// One job as the supervisor shows it.
#[derive(Debug, Clone, Copy)]
pub struct JobView<'a>(pub &'a Value);

impl<'a> JobView<'a> {
    fn str(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(Value::as_str)
    }

    fn num(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(frameworks::lenient::as_f64)
    }

    /// The job's `uuid` (`-` when the supervisor gave none).
    #[must_use]
    pub fn uuid(&self) -> &'a str {
        self.str("uuid").unwrap_or("-")
    }

    /// The job's `name` (`-` when the supervisor gave none).
    #[must_use]
    pub fn name(&self) -> &'a str {
        self.str("name").unwrap_or("-")
    }

    /// The job's `framework` (`-` when the supervisor gave none).
    #[must_use]
    pub fn framework(&self) -> &'a str {
        self.str("framework").unwrap_or("-")
    }

    /// `state` (or `phase` when it is a string).
    #[must_use]
    pub fn state(&self) -> &'a str {
        self.str("state")
            .or_else(|| self.str("phase"))
            .or_else(|| {
                self.0
                    .get("phase")
                    .and_then(|p| p.get("phase"))
                    .and_then(Value::as_str)
            })
            .unwrap_or("-")
    }

    /// True once the job has ended (completed, failed, cancelled).
    #[must_use]
    pub fn is_finished(&self) -> bool {
        matches!(
            self.state(),
            "completed" | "done" | "finished" | "failed" | "cancelled" | "canceled"
        )
    }

    /// `class` (UNDER_PERFORMANT, ON_PLAN, OVER_PERFORMANT, AT_RISK, NO_DATA…).
    #[must_use]
    pub fn class(&self) -> &'a str {
        self.str("class").unwrap_or("-")
    }

    /// Allocated CPUs.
    #[must_use]
    pub fn cpus(&self) -> Option<f64> {
        self.num("cpus").or_else(|| self.num("current_cpu"))
    }

    /// Fraction done, `[0, 1]`.
    #[must_use]
    pub fn progress(&self) -> Option<f64> {
        self.num("progress").map(|p| p.clamp(0.0, 1.0))
    }

    /// Iterations requested (Chronos).
    #[must_use]
    pub fn iterations(&self) -> Option<f64> {
        self.num("iterations")
    }

    /// Iterations still to run (Chronos).
    #[must_use]
    pub fn remaining_iterations(&self) -> Option<f64> {
        self.num("remaining_iterations")
    }

    /// Absolute deadline, epoch seconds.
    #[must_use]
    pub fn deadline_at(&self) -> Option<f64> {
        self.0
            .get("qos")
            .and_then(|q| q.get("deadline_at"))
            .and_then(frameworks::lenient::as_f64)
            .or_else(|| self.num("deadline_at"))
    }

    /// Predicted finish, epoch seconds.
    #[must_use]
    pub fn prediction(&self) -> Option<f64> {
        self.num("prediction")
    }

    /// How many times the job was resized.
    #[must_use]
    pub fn resizes(&self) -> Option<usize> {
        match self.0.get("resizes") {
            Some(Value::Array(a)) => Some(a.len()),
            Some(v) => frameworks::lenient::as_u64(v).and_then(|n| usize::try_from(n).ok()),
            None => self
                .0
                .get("resize_history")
                .and_then(Value::as_array)
                .map(Vec::len),
        }
    }

    /// The last error the supervisor met with this job.
    #[must_use]
    pub fn last_error(&self) -> Option<&'a str> {
        self.str("last_error").filter(|s| !s.is_empty())
    }
}

/// The job list out of `GET /api/v1/jobs` (an array, or `{"jobs": [...]}`).
#[must_use]
pub fn job_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .get("jobs")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Seconds as `1h02m`, `3m20s`, `45s`; negative values get a `-`.
#[must_use]
pub fn fmt_secs(secs: f64) -> String {
    let sign = if secs < 0.0 { "-" } else { "" };
    let s = secs.abs().round() as u64;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m:02}m")
    } else if m > 0 {
        format!("{sign}{m}m{s:02}s")
    } else {
        format!("{sign}{s}s")
    }
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map_or_else(|| "-".to_owned(), f)
}

/// Progress as a percentage, with iterations for Chronos jobs (`50% (2/4)`).
#[must_use]
pub fn progress_text(j: JobView<'_>) -> String {
    let pct = opt(j.progress(), |p| format!("{:.0}%", p * 100.0));
    match (j.iterations(), j.remaining_iterations()) {
        (Some(n), Some(r)) => format!("{pct} ({}/{})", (n - r).max(0.0), n),
        _ => pct,
    }
}

/// "prediction vs deadline": `+40s late`, `-2m00s early`, or `-`.
#[must_use]
pub fn prediction_text(j: JobView<'_>) -> String {
    match (j.prediction(), j.deadline_at()) {
        (Some(p), Some(d)) if p > d => format!("{} late", fmt_secs(p - d)),
        (Some(p), Some(d)) => format!("{} early", fmt_secs(d - p)),
        _ => "-".to_owned(),
    }
}

/// The `list` table.
#[must_use]
pub fn render_list(jobs: &[Value], now: f64) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let mut rows = vec![[
        "UUID".to_owned(),
        "NAME".to_owned(),
        "FRAMEWORK".to_owned(),
        "STATE".to_owned(),
        "CLASS".to_owned(),
        "CPUS".to_owned(),
        "PROGRESS".to_owned(),
        "DEADLINE IN".to_owned(),
        "PREDICTION".to_owned(),
    ]];
    for v in jobs {
        let j = JobView(v);
        rows.push([
            j.uuid().to_owned(),
            j.name().to_owned(),
            j.framework().to_owned(),
            j.state().to_owned(),
            j.class().to_owned(),
            opt(j.cpus(), |c| format!("{c:.2}")),
            progress_text(j),
            opt(j.deadline_at(), |d| fmt_secs(d - now)),
            prediction_text(j),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The `status` text.
#[must_use]
pub fn render_status(v: &Value, now: f64) -> String {
    let j = JobView(v);
    let mut out = format!(
        "{} ({}, {})\n  uuid        {}\n  state       {}\n  class       {}\n  cpus        {}\n  progress    {}\n",
        j.name(),
        j.framework(),
        j.state(),
        j.uuid(),
        j.state(),
        j.class(),
        opt(j.cpus(), |c| format!("{c:.2}")),
        progress_text(j),
    );
    out.push_str(&format!(
        "  deadline    {}\n  prediction  {}\n  resizes     {}\n",
        opt(j.deadline_at(), |d| format!("in {}", fmt_secs(d - now))),
        match j.prediction() {
            Some(p) => format!("finish in {} ({})", fmt_secs(p - now), prediction_text(j)),
            None => "-".to_owned(),
        },
        j.resizes()
            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
    ));
    if let Some(Value::Array(history)) = v.get("resize_history") {
        for r in history.iter().rev().take(5).rev() {
            out.push_str(&format!("    {r}\n"));
        }
    }
    if let Some(reason) = v
        .get("decision")
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
    {
        out.push_str(&format!("  decision    {reason}\n"));
    }
    if let Some(e) = j.last_error() {
        out.push_str(&format!("  last error  {e}\n"));
    }
    out
}

/// Turns `UUID|NAME` into a UUID: a UUID is used as is; a name is looked up in the job list
/// (Marathon ids with or without their leading `/`); when several jobs share the name, the one
/// still running is chosen, else the user is asked for the UUID.
///
/// # Errors
/// [`LauncherError`] (input) for an unknown or ambiguous name; the client's error otherwise.
pub async fn resolve(client: &SupervisorClient, key: &str) -> Result<String, LauncherError> {
    if let Ok(u) = JobUuid::parse(key) {
        return Ok(u.as_str().to_owned());
    }
    let list = client.jobs().await.map_err(|e| {
        LauncherError::from_framework("the supervisor", "listing the supervisor's jobs", &e)
    })?;
    let jobs = job_list(&list);
    let norm = |s: &str| s.trim_start_matches('/').to_owned();
    let matches: Vec<&Value> = jobs
        .iter()
        .filter(|j| norm(JobView(j).name()) == norm(key))
        .collect();
    let active: Vec<&&Value> = matches
        .iter()
        .filter(|j| !JobView(j).is_finished())
        .collect();
    match (matches.as_slice(), active.as_slice()) {
        ([], _) => Err(LauncherError::input(format!(
            "no job is named {key:?} (see `launcher list`)"
        ))),
        ([one], _) => Ok(JobView(one).uuid().to_owned()),
        (_, [one]) => Ok(JobView(one).uuid().to_owned()),
        (all, _) => Err(LauncherError::input(format!(
            "{} jobs are named {key:?}: {}; give the UUID",
            all.len(),
            all.iter()
                .map(|j| format!("{} ({})", JobView(j).uuid(), JobView(j).state()))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job() -> Value {
        json!({"uuid": "u1", "name": "openmpLinpack1", "framework": "chronos", "state": "running",
               "class": "UNDER_PERFORMANT", "cpus": 1.4, "progress": 0.5, "iterations": 4,
               "remaining_iterations": 2, "qos": {"deadline_at": 1800.0}, "prediction": 1840.0,
               "resizes": 1})
    }

    #[test]
    fn views() {
        let v = job();
        let j = JobView(&v);
        assert_eq!(progress_text(j), "50% (2/4)");
        assert_eq!(prediction_text(j), "40s late");
        assert_eq!(j.resizes(), Some(1));
        let table = render_list(std::slice::from_ref(&v), 1000.0);
        assert!(
            table.contains("openmpLinpack1") && table.contains("13m20s"),
            "{table}"
        );
        let status = render_status(&v, 1000.0);
        assert!(
            status.contains("UNDER_PERFORMANT") && status.contains("40s late"),
            "{status}"
        );
        assert_eq!(fmt_secs(3725.0), "1h02m");
        assert_eq!(fmt_secs(-5.0), "-5s");
    }
}
