//! The schedule of a QoS Chronos job: finite, re-anchored to now when its start is so far past
//! that Chronos would skip its runs, started before the deadline, and paced as asked
//! ([`Pace`]: back to back, or kept with warnings when it cannot meet the deadline).

use frameworks::chronos::Schedule;
use qos_core::QosSpec;
use serde_json::{Map, Value};

use super::BACK_TO_BACK_PERIOD;
use crate::error::LauncherError;
use crate::rewrite::{Origin, Pace, fmt_num, string_field};

/// The schedule: finite, re-anchored when its start is long past, started before the deadline,
/// and paced as asked. Returns the iterations and the deadline (epoch seconds).
pub(super) fn plan_schedule(
    body: &mut Map<String, Value>,
    origin: Origin<'_>,
    qos: &QosSpec,
    submitted_at: f64,
    pace: Pace,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<(u32, f64), LauncherError> {
    if body.contains_key("parents") {
        return Err(origin.field(
            "parents",
            "dependent jobs are not supported for QoS: give the job its own finite \
             \"schedule\" (e.g. \"R4//PT5M\") instead of \"parents\"",
        ));
    }
    crate::rewrite::fields::coerce(body, crate::rewrite::fields::CHRONOS, origin)?;
    let schedule_text = string_field(
        body,
        origin,
        "schedule",
        "is missing; a QoS Chronos job needs a finite repeating schedule such as \"R4//PT5M\" \
         (4 iterations, 5 minutes apart, starting now)",
    )?;
    let schedule =
        Schedule::parse(&schedule_text).map_err(|e| origin.field("schedule", e.to_string()))?;
    let Some(reps) = schedule.repetitions() else {
        return Err(origin.field(
            "schedule",
            format!(
                "{schedule_text:?} repeats forever (R/…); QoS needs a finite number of iterations \
                 to plan for: write the count after the R, e.g. \"R4/{}\"",
                schedule_text
                    .split_once('/')
                    .map_or("/PT5M", |(_, rest)| rest)
            ),
        ));
    };
    let iterations = u32::try_from(reps).map_err(|_| {
        origin.field(
            "schedule",
            format!("{reps} iterations is too many (at most {})", u32::MAX),
        )
    })?;
    qos.validate_for(Some(iterations), submitted_at)
        .map_err(|e| origin.spec_error(&e))?;
    let deadline_at = qos.deadline.at(submitted_at);
    let (schedule, schedule_text) = anchor(
        schedule,
        schedule_text,
        body,
        origin,
        submitted_at,
        deadline_at,
        warnings,
    )?;
    body.insert("schedule".into(), Value::String(schedule_text.clone()));
    if let Some(start) = schedule.start() {
        if start.timestamp() as f64 >= deadline_at {
            return Err(origin.field(
                "schedule",
                format!(
                    "starts at {start}, which is not before the deadline; move the start \
                     earlier or the deadline later"
                ),
            ));
        }
    }
    match pace {
        Pace::BackToBack => {
            let paced = back_to_back(&schedule, &schedule_text)
                .map_err(|e| LauncherError::internal(format!("{origin}: field schedule: {e}")))?;
            if schedule.period() != BACK_TO_BACK_PERIOD && iterations > 1 {
                let period = schedule_text
                    .rsplit_once('/')
                    .map_or(schedule_text.as_str(), |(_, p)| p);
                notes.push(format!(
                    "schedule {schedule_text:?} is sent as {paced:?}: the {iterations} runs go \
                     back to back, each as soon as the previous one ends, as the QoS model \
                     assumes (not {period} apart); --pace schedule keeps the period"
                ));
            }
            body.insert("schedule".into(), Value::String(paced));
        }
        Pace::Schedule => schedule_warnings(
            &schedule,
            iterations,
            qos.duration,
            submitted_at,
            deadline_at,
            warnings,
        ),
    }

    Ok((iterations, deadline_at))
}

/// How far a `scheduleTimeZone` (which replaces the start's zone, keeping its fields) can move a
/// start: the widest UTC offsets are −12 h and +14 h.
const ZONE_MARGIN_SECS: f64 = 14.0 * 3600.0;

/// A start so far in the past that Chronos would skip the runs is moved to now.
///
/// Chronos 2.x skips every run due more than `epsilon` ago (`JobUtils.skipForward`: with a start
/// that old, as many runs as periods have passed are dropped, and a job with fewer runs left than
/// that is never scheduled at all), so `R3/2014-09-25T17:22:00Z/PT2M` would never run and the
/// supervisor would wait for iterations that never come. Chronos 3.x runs the first at once and
/// the others on the old start's grid. Either way the job's QoS window starts now, so the
/// schedule is re-anchored to now (`R3//PT2M`, Chronos' "now") with a warning; a start in the
/// past but within `epsilon` (the job's, or the deadline window the launcher writes) is kept.
fn anchor(
    schedule: Schedule,
    text: String,
    body: &Map<String, Value>,
    origin: Origin<'_>,
    submitted_at: f64,
    deadline_at: f64,
    warnings: &mut Vec<String>,
) -> Result<(Schedule, String), LauncherError> {
    let Some(start) = schedule.start() else {
        return Ok((schedule, text));
    };
    let epsilon = match body.get("epsilon") {
        None | Some(Value::Null) => (deadline_at - submitted_at).ceil().max(1.0),
        Some(Value::String(e)) => Schedule::parse(&format!("R1//{}", e.trim()))
            .map(|s| s.period_secs())
            .map_err(|_| {
                origin.field(
                    "epsilon",
                    format!(
                        "{e:?} is not an ISO 8601 duration such as \"PT60S\" (how late a run may \
                         start before Chronos 2.x skips it)"
                    ),
                )
            })?,
        Some(other) => {
            return Err(origin.field(
                "epsilon",
                format!("must be an ISO 8601 duration such as \"PT60S\", got {other}"),
            ));
        }
    };
    let zone = body
        .get("scheduleTimeZone")
        .and_then(Value::as_str)
        .is_some_and(|z| !z.trim().is_empty());
    let margin = if zone { ZONE_MARGIN_SECS } else { 0.0 };
    let start_s = start.timestamp() as f64;
    let late = submitted_at - (start_s + epsilon + margin);
    if late <= 0.0 {
        return Ok((schedule, text));
    }
    let anchored = Schedule::new(schedule.repetitions(), None, schedule.period())
        .map_err(|e| LauncherError::internal(format!("{origin}: field schedule: {e}")))?;
    // Keep the user's own period text when it means the same.
    let period_text = text.rsplit_once("/P").map(|(_, p)| format!("P{p}"));
    let reps = schedule
        .repetitions()
        .map_or_else(String::new, |n| n.to_string());
    let kept = period_text
        .map(|p| format!("R{reps}//{p}"))
        .filter(|t| Schedule::parse(t).is_ok_and(|s| s == anchored))
        .unwrap_or_else(|| anchored.to_string());
    let runs = schedule.repetitions().unwrap_or(0);
    let iterations = u32::try_from(runs).unwrap_or(u32::MAX);
    warnings.push(format!(
        "schedule {text:?} starts {} before now ({}), more than epsilon ({} s) ago: \
         Chronos 2.x skips every run due more than epsilon ago (JobUtils.skipForward), so {} of \
         the {runs} runs would start and the supervisor would wait for them forever; the start is \
         moved to now ({kept:?}). Give a start in the future to start later",
        age_text(submitted_at - start_s),
        start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        fmt_num(epsilon),
        // skipForward drops one run per period passed; fewer runs than that: none is left.
        if (submitted_at - start_s) / schedule.period_secs() >= f64::from(iterations) {
            "none"
        } else {
            "not all"
        },
    ));
    Ok((anchored, kept))
}

/// `secs` as a person says it: `3 min`, `5 h`, `12 days`, `11 years`.
fn age_text(secs: f64) -> String {
    let (n, unit) = if secs < 120.0 {
        (secs, "s")
    } else if secs < 7_200.0 {
        (secs / 60.0, "min")
    } else if secs < 172_800.0 {
        (secs / 3_600.0, "h")
    } else if secs < 2.0 * 31_557_600.0 {
        (secs / 86_400.0, "days")
    } else {
        (secs / 31_557_600.0, "years")
    };
    format!("{} {unit}", fmt_num(n.floor()))
}

/// `schedule` (written `text`) with its period replaced by [`BACK_TO_BACK_PERIOD`], count and
/// start unchanged: built and printed by [`Schedule`], with the user's own start text kept (Chronos'
/// regex `(R[0-9]*)/(.*)/(P.*)`: the start is everything between the first `/` and the last `/P`)
/// when it parses back to the same schedule.
fn back_to_back(schedule: &Schedule, text: &str) -> Result<String, String> {
    let paced = Schedule::new(
        schedule.repetitions(),
        schedule.start(),
        BACK_TO_BACK_PERIOD,
    )
    .map_err(|e| e.to_string())?;
    let printed = paced.to_string();
    let start_of = |s: &str| Some((s.find('/')? + 1, s.rfind("/P")?));
    let (Some((a, b)), Some((c, d))) = (start_of(text), start_of(&printed)) else {
        return Ok(printed);
    };
    if a > b || c > d {
        return Ok(printed);
    }
    let kept = format!("{}{}{}", &printed[..c], &text[a..b], &printed[d..]);
    Ok(if Schedule::parse(&kept).is_ok_and(|s| s == paced) {
        kept
    } else {
        printed
    })
}

/// [`Pace::Schedule`]: warns when the schedule alone makes the deadline unreachable.
fn schedule_warnings(
    schedule: &Schedule,
    iterations: u32,
    duration: f64,
    submitted_at: f64,
    deadline_at: f64,
    warnings: &mut Vec<String>,
) {
    if let Some(start) = schedule.start() {
        let start_s = start.timestamp() as f64;
        let last = start_s + schedule.period_secs() * f64::from(iterations.saturating_sub(1));
        if last > deadline_at {
            warnings.push(format!(
                "the schedule's last run is due {} s after the deadline; the job cannot meet it \
                 unless the supervisor has no say in when runs start",
                fmt_num((last - deadline_at).round())
            ));
        }
    } else {
        let last = schedule.period_secs() * f64::from(iterations.saturating_sub(1));
        let window = deadline_at - submitted_at;
        if submitted_at + last + duration > deadline_at {
            let fit =
                ((window - duration) / f64::from(iterations.saturating_sub(1).max(1))).floor();
            warnings.push(format!(
                "the last of the {iterations} runs starts {} s after submission (period {} s) and \
                 needs {} s of work at 1 CPU, but the deadline is {} s away; Chronos starts runs on \
                 the schedule (nothing forces them earlier), so a period of at most {} s would fit",
                fmt_num(last),
                fmt_num(schedule.period_secs()),
                fmt_num(duration),
                fmt_num(window),
                fmt_num(fit.max(1.0))
            ));
        }
    }
}
