//! The steps every run on a local installation shares (the demo and `study real`): binaries and
//! LINPACK calibration first, then watching the submitted jobs until they are all done, then
//! each job's summary row and details from the supervisor.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::binaries::{self, Binaries, BuildOptions};
use crate::harness::Stack;
use crate::report::{self, Row};
use crate::watch::{Tracked, Ui, Watcher, now_epoch};
use crate::workload;

/// The component binaries (built by one `cargo build` unless told not to) and LINPACK's CPU
/// seconds per solve on one thread of this machine. `who` prefixes the progress lines.
///
/// # Errors
/// When a binary cannot be built or found, or LINPACK cannot be run.
pub async fn prepare(opts: &BuildOptions, who: &'static str) -> anyhow::Result<(Binaries, f64)> {
    let opts = opts.clone();
    let bins =
        tokio::task::spawn_blocking(move || binaries::locate(&opts, &|m| eprintln!("{who}: {m}")))
            .await??;
    let linpack = bins.get("linpack").to_path_buf();
    let per_solve = tokio::task::spawn_blocking(move || workload::calibrate(&linpack)).await??;
    Ok((bins, per_solve))
}

/// A watcher of the stack's supervisor (with the collector's `/snapshot` and the agents'
/// sandboxes), its clock `t0` starting now.
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn watcher(ui: &Ui, stack: &Stack) -> anyhow::Result<Watcher> {
    Watcher::new(
        ui.clone(),
        &stack.urls.supervisor,
        stack.urls.snapshot.clone(),
        &stack.sandboxes(),
    )
}

/// Polls the supervisor every second until every job is done or `timeout` has passed (then says
/// so, ending with `hint`); `tick` sees the seconds since `watcher.t0` and the jobs after each
/// poll. A last poll, a little after the end, picks up the collector's final counters. Whether
/// it timed out.
///
/// # Errors
/// When a component of the stack has exited.
pub async fn watch_until_done(
    ui: &Ui,
    stack: &mut Stack,
    watcher: &Watcher,
    jobs: &mut [Tracked],
    timeout: Duration,
    hint: &str,
    mut tick: impl FnMut(f64, &[Tracked]),
) -> anyhow::Result<bool> {
    let limit = Instant::now() + timeout;
    let mut timed_out = false;
    loop {
        watcher.poll(jobs).await;
        tick(now_epoch() - watcher.t0, jobs);
        if jobs.iter().all(Tracked::done) {
            break;
        }
        stack.check_alive()?;
        if Instant::now() > limit {
            timed_out = true;
            ui.say(&format!("giving up after {} s: {hint}", timeout.as_secs()));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // The collector pushes once a second: its last counters.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    watcher.poll(jobs).await;
    Ok(timed_out)
}

/// One summary row per job, and its details: the row, story, file, events, history, submission
/// time and the supervisor's own record of the job (null when it cannot be read).
///
/// # Errors
/// When no HTTP client can be made.
pub async fn summarize(
    supervisor: &str,
    jobs: &[Tracked],
) -> anyhow::Result<(Vec<Row>, Vec<Value>)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for j in jobs {
        let detail: Value = match http
            .get(format!("{supervisor}/api/v1/jobs/{}", j.uuid))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let r = report::row(j, &detail);
        details.push(json!({
            "summary": r, "story": j.spec.story, "file": j.spec.file, "events": j.events,
            "history": j.history, "detail": detail, "submitted_at": j.submitted_at,
        }));
        rows.push(r);
    }
    Ok((rows, details))
}
