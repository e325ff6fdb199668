//! Live view: polls the supervisor (jobs and their decision history) and the collector (CPU
//! time per job), draws one progress bar per job and prints every resize with its reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// Which framework a job goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fw {
    /// Chronos: iterations.
    Chronos,
    /// Marathon: one long task.
    Marathon,
}

impl Fw {
    /// `chronos` or `marathon`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chronos => "chronos",
            Self::Marathon => "marathon",
        }
    }
}

/// What the live view and the report know of a job besides what the supervisor says.
#[derive(Debug, Clone)]
pub struct JobInfo {
    /// Chronos job name or Marathon app id without the `/`.
    pub name: String,
    /// Its framework.
    pub framework: Fw,
    /// Deadline, seconds after submission.
    pub deadline: f64,
    /// Initial CPUs.
    pub cpus: f64,
    /// What to watch for.
    pub story: String,
    /// The file it was made from.
    pub file: String,
}

/// Seconds since the Unix epoch.
pub fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Where messages go: above the bars when they are drawn, else plain lines on stderr.
#[derive(Debug, Clone)]
pub struct Ui {
    mp: MultiProgress,
    visible: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Self::new()
    }
}

impl Ui {
    /// Bars on stderr when it is a terminal, plain lines otherwise.
    #[must_use]
    pub fn new() -> Self {
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let visible = !mp.is_hidden();
        Self { mp, visible }
    }

    /// One line for the user.
    pub fn say(&self, line: &str) {
        if self.visible {
            let _ = self.mp.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    fn bar(&self, prefix: &str) -> ProgressBar {
        let bar = ProgressBar::new(1000);
        let style =
            ProgressStyle::with_template("{prefix:<22} [{bar:24.cyan/blue}] {percent:>3}% {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(prefix.to_owned());
        if self.visible {
            self.mp.add(bar)
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
            bar
        }
    }
}

/// One submitted job and what has been seen of it.
#[derive(Debug)]
pub struct Tracked {
    /// The supervisor's UUID.
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// What it was made from.
    pub spec: JobInfo,
    /// When the launcher submitted it, epoch seconds.
    pub submitted_at: f64,
    /// The latest summary from `GET /api/v1/jobs`.
    pub last: Value,
    /// Every history row seen (decisions, resizes, completion), oldest first.
    pub history: Vec<Value>,
    /// CPU-seconds used per container (the collector's cumulative counter).
    pub cpu_used: BTreeMap<String, f64>,
    /// Restarts seen (Marathon).
    pub restarts: u32,
    /// Resize lines printed, for the report.
    pub events: Vec<String>,
    bar: ProgressBar,
    state: String,
    restarting_since: Option<f64>,
    progress_before_restart: f64,
    class: Option<String>,
    done: bool,
    /// LINPACK checkpoint/resume lines already shown.
    linpack_lines: std::collections::HashSet<String>,
}

impl Tracked {
    /// A job just submitted.
    #[must_use]
    pub fn new(ui: &Ui, uuid: String, spec: JobInfo, submitted_at: f64) -> Self {
        let name = spec.name.clone();
        let bar = ui.bar(&name);
        bar.set_message(format!("{:<8} submitted", spec.framework.as_str()));
        Self {
            uuid,
            name,
            spec,
            submitted_at,
            last: Value::Null,
            history: Vec::new(),
            cpu_used: BTreeMap::new(),
            restarts: 0,
            events: Vec::new(),
            bar,
            state: "pending".into(),
            restarting_since: None,
            progress_before_restart: 0.0,
            class: None,
            done: false,
            linpack_lines: std::collections::HashSet::new(),
        }
    }

    /// Whether the job has ended (completed, failed or cancelled).
    pub fn done(&self) -> bool {
        self.done
    }

    /// CPU-seconds used, over every container of the job.
    pub fn cpu_seconds_used(&self) -> f64 {
        self.cpu_used.values().sum()
    }
}

/// Polls and draws.
#[derive(Debug)]
pub struct Watcher {
    http: reqwest::Client,
    supervisor: String,
    snapshot: Option<String>,
    sandboxes: PathBuf,
    /// Start of the run (first submission), epoch seconds.
    pub t0: f64,
    ui: Ui,
}

impl Watcher {
    /// A watcher of the supervisor at `supervisor` (and the collector's `/snapshot`), reading
    /// Marathon tasks' stderr under `sandboxes`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        ui: Ui,
        supervisor: &str,
        snapshot: Option<String>,
        sandboxes: &Path,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            http,
            supervisor: supervisor.trim_end_matches('/').to_owned(),
            snapshot,
            sandboxes: sandboxes.to_path_buf(),
            t0: now_epoch(),
            ui,
        })
    }

    async fn get(&self, url: &str) -> Option<Value> {
        let r = self.http.get(url).send().await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    fn stamp(&self) -> String {
        format!("[{:>4.0}s]", now_epoch() - self.t0)
    }

    /// One poll: every job's summary and new history, the collector's counters; bars and
    /// event lines updated.
    pub async fn poll(&self, jobs: &mut [Tracked]) {
        // Newest first: this run's jobs lead whatever else the supervisor remembers (the list
        // answers one page).
        let list = self
            .get(&format!(
                "{}/api/v1/jobs?order=desc&limit=10000",
                self.supervisor
            ))
            .await;
        let snapshot = match &self.snapshot {
            Some(u) => self.get(u).await,
            None => None,
        };
        let by_uuid: BTreeMap<String, Value> = list
            .as_ref()
            .and_then(|v| v.as_array().or_else(|| v["jobs"].as_array()))
            .map(|a| {
                a.iter()
                    .filter_map(|j| Some((j["uuid"].as_str()?.to_owned(), j.clone())))
                    .collect()
            })
            .unwrap_or_default();
        for job in jobs.iter_mut() {
            if let Some(s) = &snapshot {
                record_cpu(job, s);
            }
            if job.done {
                continue;
            }
            if let Some(v) = by_uuid.get(&job.uuid) {
                job.last = v.clone();
            }
            if let Some(h) = self
                .get(&format!(
                    "{}/api/v1/jobs/{}/history",
                    self.supervisor, job.uuid
                ))
                .await
            {
                let rows: Vec<Value> = h
                    .as_array()
                    .or_else(|| h["history"].as_array())
                    .cloned()
                    .unwrap_or_default();
                self.new_history(job, rows);
            }
            self.state_change(job);
            if job.spec.framework == Fw::Marathon {
                self.linpack_news(job);
            }
            self.draw(job);
        }
    }

    fn new_history(&self, job: &mut Tracked, rows: Vec<Value>) {
        // The API returns the newest 1000 rows, oldest first: new ones are those past what we
        // have, matched on (at, kind).
        let key = |r: &Value| (r["at"].as_f64().unwrap_or(0.0), r["kind"].clone());
        let last_seen = job.history.last().map(key);
        let start = match &last_seen {
            None => 0,
            Some(k) => rows.iter().rposition(|r| key(r) == *k).map_or(0, |i| i + 1),
        };
        for row in rows.into_iter().skip(start) {
            match row["kind"].as_str() {
                Some("resize") => {
                    let line = self.resize_line(job, &row);
                    self.ui.say(&line);
                    job.events.push(line);
                }
                Some("resize_failed") => {
                    let reason = row["reason"].as_str().unwrap_or("?");
                    let line = if reason.contains("no Chronos job is named") {
                        format!(
                            "{} {:<22} resize waits until the launcher has submitted the job \
                             (the supervisor retries)",
                            self.stamp(),
                            job.name
                        )
                    } else if reason.contains("locked by deployment") {
                        format!(
                            "{} {:<22} resize to {} CPU waits for Marathon's running deployment \
                             (the supervisor retries)",
                            self.stamp(),
                            job.name,
                            row["action"]["to"]
                                .as_f64()
                                .map_or("?".into(), |c| format!("{c:.1}"))
                        )
                    } else {
                        format!(
                            "{} {:<22} resize not applied (the supervisor retries): {}",
                            self.stamp(),
                            job.name,
                            self.relative(reason)
                        )
                    };
                    self.ui.say(&line);
                    job.events.push(line);
                }
                Some("decision") => {
                    let class = row["class"].as_str().map(str::to_owned);
                    if class.as_deref() == Some("AT_RISK")
                        && job.class.as_deref() != Some("AT_RISK")
                    {
                        let line = format!(
                            "{} {:<22} AT_RISK: {}",
                            self.stamp(),
                            job.name,
                            self.relative(row["reason"].as_str().unwrap_or("?"))
                        );
                        self.ui.say(&line);
                        job.events.push(line);
                    }
                    if class.is_some() {
                        job.class = class;
                    }
                }
                _ => {}
            }
            job.history.push(row);
        }
    }

    fn resize_line(&self, job: &Tracked, row: &Value) -> String {
        let from = row["action"]["from"].as_f64().unwrap_or(f64::NAN);
        let to = row["action"]["to"].as_f64().unwrap_or(f64::NAN);
        let verb = if to > from { "grow  " } else { "shrink" };
        // The decision behind it: the newest decision row that asked for this size.
        let decision = job.history.iter().rev().find(|d| {
            d["kind"] == "decision"
                && d["action"]["cpus"]
                    .as_f64()
                    .is_some_and(|c| (c - to).abs() < 1e-6)
        });
        let how = match (job.spec.framework, row["action"]["restart"].as_bool()) {
            (Fw::Chronos, _) => "from the next iteration",
            (Fw::Marathon, Some(false)) => "in place",
            (Fw::Marathon, _) => "restart: checkpoint, new size, resume",
        };
        let why = decision.map_or_else(String::new, |d| {
            format!(
                "\n{:>8}{} — {}",
                "",
                d["class"].as_str().unwrap_or("?"),
                self.relative(d["reason"].as_str().unwrap_or("?"))
            )
        });
        format!(
            "{} {:<22} {verb} {from:.1} → {to:.1} CPU ({how}){why}",
            self.stamp(),
            job.name
        )
    }

    fn state_change(&self, job: &mut Tracked) {
        let state = job.last["state"].as_str().unwrap_or("pending").to_owned();
        if state == job.state {
            return;
        }
        let progress = job.last["progress"].as_f64().unwrap_or(0.0);
        match (job.state.as_str(), state.as_str()) {
            (_, "restarting") => {
                job.restarting_since = Some(now_epoch());
                job.progress_before_restart = progress;
                let line = format!(
                    "{} {:<22} restarting at {:.0} %: SIGTERM → LINPACK checkpoints itself",
                    self.stamp(),
                    job.name,
                    progress * 100.0
                );
                self.ui.say(&line);
                job.events.push(line);
            }
            ("restarting", "running") => {
                job.restarts += 1;
                let took = job.restarting_since.map_or(0.0, |t| now_epoch() - t);
                let line = format!(
                    "{} {:<22} running again with {} CPU, {took:.0} s after the restart began",
                    self.stamp(),
                    job.name,
                    job.last["cpus"]
                        .as_f64()
                        .map_or("?".into(), |c| format!("{c:.1}")),
                );
                self.ui.say(&line);
                job.events.push(line);
            }
            (_, "completed" | "failed" | "cancelled") => {
                let line = self.end_line(job, &state);
                self.ui.say(&line);
                job.events.push(line);
            }
            _ => {}
        }
        job.state = state;
    }

    fn end_line(&self, job: &Tracked, state: &str) -> String {
        let phase = &job.last["phase"];
        let rel = |at: f64| at - job.submitted_at;
        let deadline = job.spec.deadline;
        match state {
            "completed" => {
                let at = phase["at"].as_f64().map_or(f64::NAN, rel);
                let met = phase["met"].as_bool().unwrap_or(false);
                format!(
                    "{} {:<22} completed {at:.0} s after submission (deadline {deadline:.0} s): {}",
                    self.stamp(),
                    job.name,
                    if met { "met" } else { "MISSED" }
                )
            }
            other => format!(
                "{} {:<22} {other}{}",
                self.stamp(),
                job.name,
                job.last["last_error"]
                    .as_str()
                    .map_or_else(String::new, |e| format!(": {e}"))
            ),
        }
    }

    /// `text` with every epoch time in it (the supervisor's reasons use them) written as
    /// seconds since the start of the run, `t=37s`.
    pub fn relative(&self, text: &str) -> String {
        relative_times(text, self.t0)
    }

    /// LINPACK's own lines about checkpoints, from the task sandboxes' stderr.
    fn linpack_news(&self, job: &mut Tracked) {
        let name = job.name.to_ascii_lowercase();
        let mut lines = Vec::new();
        let Ok(agents) = std::fs::read_dir(self.sandboxes.join("agents")) else {
            return;
        };
        for agent in agents.flatten() {
            let Ok(tasks) = std::fs::read_dir(agent.path().join("tasks")) else {
                continue;
            };
            for t in tasks.flatten() {
                if !t
                    .file_name()
                    .to_string_lossy()
                    .to_ascii_lowercase()
                    .contains(&name)
                {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(t.path().join("stderr")) else {
                    continue;
                };
                // Incarnations in order: shell-trap's first log line starts with its RFC 3339
                // time.
                let started = text.lines().next().unwrap_or_default().to_owned();
                let news: Vec<String> = text
                    .lines()
                    .filter(|l| SANDBOX_NEWS.iter().any(|p| l.contains(p)))
                    .map(str::to_owned)
                    .collect();
                lines.push((started, news));
            }
        }
        lines.sort();
        for l in lines.into_iter().flat_map(|(_, news)| news) {
            if job.linpack_lines.insert(l.clone()) {
                let line = format!("{} {:<22} {}", self.stamp(), job.name, shorten(&l));
                self.ui.say(&line);
                job.events.push(line);
            }
        }
    }

    fn draw(&self, job: &mut Tracked) {
        let v = &job.last;
        let progress = v["progress"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        job.bar.set_position((progress * 1000.0).round() as u64);
        let fw = job.spec.framework.as_str();
        let now = now_epoch();
        let deadline_at = v["qos"]["deadline_at"]
            .as_f64()
            .unwrap_or(job.submitted_at + job.spec.deadline);
        if matches!(job.state.as_str(), "completed" | "failed" | "cancelled") {
            let msg = match job.state.as_str() {
                "completed" => {
                    let at = v["phase"]["at"].as_f64().unwrap_or(now) - job.submitted_at;
                    let met = v["phase"]["met"].as_bool().unwrap_or(false);
                    format!(
                        "{fw:<8} done at {at:.0} s / {:.0} s  {}  {} resizes",
                        job.spec.deadline,
                        if met { "met" } else { "MISSED" },
                        v["resizes"].as_u64().unwrap_or(0)
                    )
                }
                s => format!("{fw:<8} {s}"),
            };
            job.bar.finish_with_message(msg);
            job.done = true;
            return;
        }
        let class = v["class"].as_str().unwrap_or("-");
        let cpus = v["cpus"].as_f64().unwrap_or(job.spec.cpus);
        let iters = match (v["iterations"].as_u64(), v["remaining_iterations"].as_u64()) {
            (Some(t), Some(r)) => format!("it {}/{t}  ", t.saturating_sub(r)),
            _ => String::new(),
        };
        let left = deadline_at - now;
        let clock = if left >= 0.0 {
            format!("{left:>3.0} s to deadline")
        } else {
            format!("{:>3.0} s past deadline", -left)
        };
        let forecast = v["prediction"].as_f64().map_or_else(String::new, |p| {
            let d = p - deadline_at;
            if d > 0.0 {
                format!("  forecast {d:.0} s late")
            } else {
                format!("  forecast {:.0} s early", -d)
            }
        });
        let state = if job.state == "restarting" {
            "restarting"
        } else {
            class
        };
        job.bar.set_message(format!(
            "{fw:<8} {state:<16} {cpus:>3.1} CPU  {iters}{clock}{forecast}"
        ));
    }
}

/// Lines of a Marathon task's stderr worth showing: LINPACK's checkpoint and resume, and
/// shell-trap's word when a checkpoint could not be made or restored.
const SANDBOX_NEWS: [&str; 4] = [
    "linpack: stopped at",
    "linpack: resuming from",
    "checkpoint failed",
    "no complete checkpoint to restore",
];

/// One sandbox line, without paths and log prefixes.
fn shorten(l: &str) -> String {
    if let Some(rest) = l.strip_prefix("linpack: stopped at ") {
        // "repeat 66/200, column 128/600; state saved to /path in 0.051 s"
        let (pos, tail) = rest.split_once("; state saved to ").unwrap_or((rest, ""));
        let secs = tail.rsplit_once(" in ").map_or("", |(_, s)| s);
        return format!("LINPACK checkpointed at {pos} in {secs}");
    }
    if let Some(rest) = l.strip_prefix("linpack: resuming from ") {
        let pos = rest.rsplit_once(": ").map_or(rest, |(_, p)| p);
        return format!("LINPACK resumed from its checkpoint at {pos}");
    }
    // shell-trap's log line: "<time>  LEVEL message".
    let msg = ["ERROR ", "WARN ", "INFO "]
        .iter()
        .find_map(|lvl| l.split_once(lvl).map(|(_, m)| m.trim()))
        .unwrap_or(l);
    format!("shell-trap: {msg}")
}

/// Replaces epoch times (numbers between 10⁹ and 10¹⁰) by `t=<seconds since t0>s`.
pub fn relative_times(text: &str, t0: f64) -> String {
    let mut out = String::with_capacity(text.len());
    let mut num = String::new();
    let flush = |num: &mut String, out: &mut String| {
        match num.parse::<f64>() {
            Ok(v) if (1e9..1e10).contains(&v) => {
                let _ = write!(out, "t={:.0}s", v - t0);
            }
            _ => out.push_str(num),
        }
        num.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || (c == '.' && !num.is_empty() && !num.contains('.')) {
            num.push(c);
        } else {
            if !num.is_empty() {
                flush(&mut num, &mut out);
            }
            out.push(c);
        }
    }
    if !num.is_empty() {
        flush(&mut num, &mut out);
    }
    out
}

fn record_cpu(job: &mut Tracked, snapshot: &Value) {
    let Some(containers) = snapshot["containers"].as_array() else {
        return;
    };
    let dashed = dashed(&job.uuid);
    for c in containers {
        let Some(u) = c["uuid"].as_str() else {
            continue;
        };
        if u != job.uuid && u != dashed {
            continue;
        }
        let (Some(id), Some(total)) = (c["id"].as_str(), c["total_secs"].as_f64()) else {
            continue;
        };
        let e = job.cpu_used.entry(id.to_owned()).or_insert(0.0);
        *e = e.max(total);
    }
}

fn dashed(uuid: &str) -> String {
    if uuid.len() == 32 && !uuid.contains('-') {
        format!(
            "{}-{}-{}-{}-{}",
            &uuid[..8],
            &uuid[8..12],
            &uuid[12..16],
            &uuid[16..20],
            &uuid[20..]
        )
    } else {
        uuid.to_owned()
    }
}
