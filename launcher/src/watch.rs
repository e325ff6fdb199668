//! `launcher watch`: a live progress bar per job (class, CPUs, time to deadline, prediction),
//! polling `GET /api/v1/jobs/{uuid}` until each job ends. With `--output json` it prints one JSON
//! line per job per poll instead.

use std::io::Write;
use std::time::Duration;

use frameworks::SupervisorClient;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::error::LauncherError;
use crate::submit::now_epoch;
use crate::view::{JobView, fmt_secs, prediction_text, progress_text};

/// Watches `uuids` until every one has ended (or is gone). Returns the last view of each.
///
/// # Errors
/// [`LauncherError`] when the supervisor cannot be asked (after a few consecutive failures).
pub async fn watch(
    client: &SupervisorClient,
    uuids: &[String],
    interval: Duration,
    json_lines: bool,
    out: &mut dyn Write,
) -> Result<Vec<Value>, LauncherError> {
    let multi = MultiProgress::with_draw_target(if json_lines {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style =
        ProgressStyle::with_template("{prefix:<20!} [{bar:30.cyan/blue}] {percent:>3}% {msg}")
            .map_err(|e| LauncherError::internal(format!("progress bar template: {e}")))?
            .progress_chars("=> ");
    let bars: Vec<ProgressBar> = uuids
        .iter()
        .map(|u| {
            let b = multi.add(ProgressBar::new(1000));
            b.set_style(style.clone());
            b.set_prefix(u.chars().take(8).collect::<String>());
            b
        })
        .collect();
    let mut last: Vec<Option<Value>> = vec![None; uuids.len()];
    let mut done = vec![false; uuids.len()];
    let mut failures = 0u32;
    while done.iter().any(|d| !d) {
        for (i, uuid) in uuids.iter().enumerate() {
            if done[i] {
                continue;
            }
            match client.job(uuid).await {
                Ok(v) => {
                    failures = 0;
                    let j = JobView(&v);
                    let now = now_epoch();
                    let msg = format!(
                        "{} · {} · cpu {} · deadline {} · {}",
                        j.state(),
                        j.class(),
                        j.cpus().map_or_else(|| "-".into(), |c| format!("{c:.2}")),
                        j.deadline_at()
                            .map_or_else(|| "-".into(), |d| format!("in {}", fmt_secs(d - now))),
                        prediction_text(j),
                    );
                    if json_lines {
                        let line = json!({"uuid": uuid, "at": now, "job": v});
                        writeln!(out, "{line}")
                            .map_err(|e| LauncherError::internal(format!("stdout: {e}")))?;
                    }
                    bars[i].set_prefix(j.name().chars().take(20).collect::<String>());
                    bars[i].set_position((j.progress().unwrap_or(0.0) * 1000.0).round() as u64);
                    bars[i].set_message(format!("{} {msg}", progress_text(j)));
                    if j.is_finished() {
                        done[i] = true;
                        bars[i].finish_with_message(format!("{} {msg}", progress_text(j)));
                    }
                    last[i] = Some(v);
                }
                Err(e) if e.is_not_found() => {
                    done[i] = true;
                    bars[i].abandon_with_message("gone (not known to the supervisor)");
                    if json_lines {
                        let line = json!({"uuid": uuid, "at": now_epoch(), "gone": true});
                        writeln!(out, "{line}")
                            .map_err(|e| LauncherError::internal(format!("stdout: {e}")))?;
                    }
                }
                Err(e) => {
                    failures += 1;
                    bars[i].set_message(format!("supervisor not answering: {e}"));
                    if failures >= 10 {
                        return Err(LauncherError::from_framework(
                            "the supervisor",
                            &format!("watching {uuid}"),
                            &e,
                        ));
                    }
                }
            }
        }
        if done.iter().any(|d| !d) {
            tokio::time::sleep(interval).await;
        }
    }
    Ok(last.into_iter().flatten().collect())
}
