//! Chronos' ISO 8601 repeating-interval schedules: `R[n]/[start]/period`.
//!
//! Pure (no clock): wherever "now" matters it is a parameter. Used by the launcher (how many
//! iterations a job has), the supervisor, and the testbed's Chronos emulator (when to run them).
//!
//! # Grammar and semantics (Chronos `Iso8601Expressions`, `JobSchedule`)
//! - The whole string must match Chronos' regex `(R[0-9]*)/(.*)/(P.*)`; as there, the start is
//!   everything up to the **last** `/P`.
//! - `R` alone repeats forever ([`Schedule::repetitions`] is `None`); `Rn` runs the job `n` times:
//!   each run rewrites the schedule to `R(n-1)/<start + period>/…`, and `R0` is not scheduled
//!   (Chronos then disables the job). So `R4//PT5M` means four runs, five minutes apart.
//! - An empty start means "now minus one second" (UTC) at the moment Chronos parses it, i.e. run at
//!   once ([`Schedule::first_run_at`]).
//! - The start is an RFC 3339 date-time (`2026-01-01T00:00:00Z`, `…+02:00`, fractional seconds
//!   allowed). Also accepted, as Joda's parser does: no seconds (`2026-01-01T00:00Z`), and no
//!   offset at all (`2026-01-01T00:00:00`, or a bare date) — those are taken as **UTC** (Chronos
//!   would use its JVM's zone, which is UTC on the usual deployments). `scheduleTimeZone` is a
//!   separate job field and is not interpreted here.
//! - The period is an ISO 8601 duration with weeks, days, hours, minutes and seconds
//!   (`P1W`, `P1DT2H`, `PT5M`, `PT1.5S`), components in that order, fractions on seconds only.
//!   **Years and months are refused** (with a clear error) because they have no fixed length in
//!   seconds; write days instead (`P30D`). A zero period is refused too: it would make Chronos run
//!   the job back to back.
//!
//! Display prints a canonical form: weeks are folded into days and hours/minutes/seconds are
//! normalised (`PT90M` → `PT1H30M`, `P1W` → `P7D`), the start in RFC 3339 with `Z` for UTC and
//! only as many fractional digits as needed. `parse(display(s)) == s` for every schedule.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A parsed `R[n]/[start]/period` schedule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schedule {
    repetitions: Option<u64>,
    start: Option<DateTime<FixedOffset>>,
    period: Duration,
}

/// A schedule string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid ISO 8601 schedule {input:?}: {kind}; expected R[n]/[start]/period, \
     e.g. \"R4//PT5M\" or \"R/2026-01-01T00:00:00Z/PT1H\""
)]
pub struct ScheduleError {
    input: String,
    kind: ScheduleErrorKind,
}

impl ScheduleError {
    /// The string that was refused.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Which part of the schedule is wrong.
    #[must_use]
    pub fn kind(&self) -> &ScheduleErrorKind {
        &self.kind
    }
}

/// The reason a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleErrorKind {
    /// It does not begin with `R`.
    #[error("it must begin with 'R'")]
    MissingR,
    /// `R` is followed by something other than digits, or a number too large.
    #[error("the repetition count {0:?} is not a whole number")]
    BadRepetitions(String),
    /// No `/` after the repetitions.
    #[error("there is no '/' after the repetition count")]
    MissingSlash,
    /// No `/P…` part.
    #[error("there is no period part (\"/P…\")")]
    MissingPeriod,
    /// The start is not a date-time.
    #[error("the start {0:?} is not an RFC 3339 date-time such as 2026-01-01T00:00:00Z")]
    BadStart(String),
    /// The period is not an ISO 8601 duration.
    #[error("the period {text:?} is not an ISO 8601 duration: {reason}")]
    BadPeriod {
        /// The period text.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The period uses years or months.
    #[error(
        "the period {0:?} uses years or months, which have no fixed length; use weeks or days \
         (e.g. P30D)"
    )]
    CalendarPeriod(String),
    /// The period is zero.
    #[error("the period must be longer than zero")]
    ZeroPeriod,
}

impl Schedule {
    /// Builds a schedule.
    ///
    /// # Errors
    /// [`ScheduleErrorKind::ZeroPeriod`] when `period` is zero.
    pub fn new(
        repetitions: Option<u64>,
        start: Option<DateTime<FixedOffset>>,
        period: Duration,
    ) -> Result<Self, ScheduleError> {
        let schedule = Self {
            repetitions,
            start,
            period,
        };
        if period.is_zero() {
            return Err(ScheduleError {
                input: schedule.to_string(),
                kind: ScheduleErrorKind::ZeroPeriod,
            });
        }
        Ok(schedule)
    }

    /// Parses `R[n]/[start]/period`.
    ///
    /// # Errors
    /// [`ScheduleError`] saying which part is wrong.
    pub fn parse(input: &str) -> Result<Self, ScheduleError> {
        parse(input).map_err(|kind| ScheduleError {
            input: input.to_owned(),
            kind,
        })
    }

    /// How many runs are left: `None` = forever, `Some(0)` = none.
    #[must_use]
    pub fn repetitions(&self) -> Option<u64> {
        self.repetitions
    }

    /// The first run's time; `None` = as soon as the job is submitted.
    #[must_use]
    pub fn start(&self) -> Option<DateTime<FixedOffset>> {
        self.start
    }

    /// Time between runs.
    #[must_use]
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Time between runs, in seconds.
    #[must_use]
    pub fn period_secs(&self) -> f64 {
        self.period.as_secs_f64()
    }

    /// `R/…`: repeats forever.
    #[must_use]
    pub fn is_infinite(&self) -> bool {
        self.repetitions.is_none()
    }

    /// `R0/…`: nothing left to run.
    #[must_use]
    pub fn is_exhausted(&self) -> bool {
        self.repetitions == Some(0)
    }

    /// The same schedule with another repetition count.
    #[must_use]
    pub fn with_repetitions(mut self, repetitions: Option<u64>) -> Self {
        self.repetitions = repetitions;
        self
    }

    /// The same schedule with another start (`None` = now).
    #[must_use]
    pub fn with_start(mut self, start: Option<DateTime<FixedOffset>>) -> Self {
        self.start = start;
        self
    }

    /// When the next run is due, given the current time: the start, or — for an empty start —
    /// one second before `now`, as Chronos resolves it. `None` when exhausted.
    #[must_use]
    pub fn first_run_at(&self, now: DateTime<Utc>) -> Option<DateTime<FixedOffset>> {
        if self.is_exhausted() {
            return None;
        }
        Some(self.resolved_start(now))
    }

    fn resolved_start(&self, now: DateTime<Utc>) -> DateTime<FixedOffset> {
        self.start
            .unwrap_or_else(|| (now - TimeDelta::seconds(1)).fixed_offset())
    }

    /// The schedule Chronos stores after one run (`JobSchedule.getSchedule`): start moved one
    /// period later, a finite count decreased by one. `None` when this schedule is exhausted (or
    /// the next start would not be representable).
    #[must_use]
    pub fn after_run(&self, now: DateTime<Utc>) -> Option<Self> {
        let repetitions = match self.repetitions {
            Some(0) => return None,
            Some(n) => Some(n - 1),
            None => None,
        };
        let start = add_period(self.resolved_start(now), self.period, 1)?;
        Some(Self {
            repetitions,
            start: Some(start),
            period: self.period,
        })
    }

    /// The times of the remaining runs, in order (endless for `R/…`).
    #[must_use]
    pub fn run_times(&self, now: DateTime<Utc>) -> RunTimes {
        RunTimes {
            first: self.resolved_start(now),
            period: self.period,
            index: 0,
            limit: self.repetitions,
        }
    }

    /// The form Chronos writes back after each run: like [`fmt::Display`] but with the start in
    /// milliseconds (`2026-01-01T00:05:00.000Z`), as Joda's `ISODateTimeFormat.dateTime` prints it.
    #[must_use]
    pub fn to_chronos_string(&self) -> String {
        self.render(SecondsFormat::Millis)
    }

    fn render(&self, seconds: SecondsFormat) -> String {
        let reps = self.repetitions.map(|n| n.to_string()).unwrap_or_default();
        let start = self
            .start
            .map(|s| s.to_rfc3339_opts(seconds, true))
            .unwrap_or_default();
        format!("R{reps}/{start}/{}", format_period(self.period))
    }
}

/// `start + k × period`, or `None` on overflow.
fn add_period(
    start: DateTime<FixedOffset>,
    period: Duration,
    k: u64,
) -> Option<DateTime<FixedOffset>> {
    let total = period.checked_mul(u32::try_from(k).ok()?)?;
    start.checked_add_signed(TimeDelta::from_std(total).ok()?)
}

/// Iterator over the remaining run times of a [`Schedule`].
#[derive(Debug, Clone)]
pub struct RunTimes {
    first: DateTime<FixedOffset>,
    period: Duration,
    index: u64,
    limit: Option<u64>,
}

impl Iterator for RunTimes {
    type Item = DateTime<FixedOffset>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.limit.is_some_and(|n| self.index >= n) {
            return None;
        }
        let t = add_period(self.first, self.period, self.index)?;
        self.index += 1;
        Some(t)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(SecondsFormat::AutoSi))
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn parse(input: &str) -> Result<Schedule, ScheduleErrorKind> {
    let rest = input.strip_prefix('R').ok_or(ScheduleErrorKind::MissingR)?;
    let slash = rest.find('/').ok_or(ScheduleErrorKind::MissingSlash)?;
    let reps_text = &rest[..slash];
    let repetitions = if reps_text.is_empty() {
        None
    } else if reps_text.bytes().all(|b| b.is_ascii_digit()) {
        Some(
            reps_text
                .parse::<u64>()
                .map_err(|_| ScheduleErrorKind::BadRepetitions(reps_text.to_owned()))?,
        )
    } else {
        return Err(ScheduleErrorKind::BadRepetitions(reps_text.to_owned()));
    };
    let rest = &rest[slash + 1..];
    // Greedy `(.*)/(P.*)`: the start runs up to the last "/P".
    let cut = rest.rfind("/P").ok_or(ScheduleErrorKind::MissingPeriod)?;
    let start_text = &rest[..cut];
    let period_text = &rest[cut + 1..];
    let start = if start_text.is_empty() {
        None
    } else {
        Some(parse_start(start_text)?)
    };
    let period = parse_period(period_text)?;
    if period.is_zero() {
        return Err(ScheduleErrorKind::ZeroPeriod);
    }
    Ok(Schedule {
        repetitions,
        start,
        period,
    })
}

fn parse_start(text: &str) -> Result<DateTime<FixedOffset>, ScheduleErrorKind> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt);
    }
    // No seconds, with an offset or Z.
    let zoned = text
        .strip_suffix(['Z', 'z'])
        .map_or_else(|| text.to_owned(), |t| format!("{t}+00:00"));
    if let Ok(dt) = DateTime::parse_from_str(&zoned, "%Y-%m-%dT%H:%M%:z") {
        return Ok(dt);
    }
    // No offset: UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return Ok(naive.and_utc().fixed_offset());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(naive) = date.and_hms_opt(0, 0, 0) {
            return Ok(naive.and_utc().fixed_offset());
        }
    }
    Err(ScheduleErrorKind::BadStart(text.to_owned()))
}

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Parses `PnWnDTnHnMn(.n)S` (and zero-valued `nY`/`nM`) into a duration.
fn parse_period(text: &str) -> Result<Duration, ScheduleErrorKind> {
    let bad = |reason: &str| ScheduleErrorKind::BadPeriod {
        text: text.to_owned(),
        reason: reason.to_owned(),
    };
    let mut rest = text
        .strip_prefix('P')
        .ok_or_else(|| bad("it must begin with 'P'"))?;
    let mut in_time = false;
    let mut last_rank = 0u8;
    let mut any = false;
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('T') {
            if in_time {
                return Err(bad("'T' appears twice"));
            }
            if after.is_empty() {
                return Err(bad("nothing follows 'T'"));
            }
            in_time = true;
            rest = after;
            continue;
        }
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(bad("expected a number"));
        }
        let whole: u128 = rest[..digits_end]
            .parse()
            .map_err(|_| bad("a number is too large"))?;
        rest = &rest[digits_end..];
        let mut frac_nanos: u128 = 0;
        let mut has_fraction = false;
        if let Some(after) = rest.strip_prefix(['.', ',']) {
            let frac_end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            if frac_end == 0 {
                return Err(bad("a decimal point must be followed by digits"));
            }
            let digits = &after[..frac_end];
            let kept = &digits[..digits.len().min(9)];
            let scale = 10u128.pow(u32::try_from(9 - kept.len()).unwrap_or(0));
            frac_nanos = kept.parse::<u128>().map_err(|_| bad("bad fraction"))? * scale;
            has_fraction = true;
            rest = &after[frac_end..];
        }
        let unit = rest
            .chars()
            .next()
            .ok_or_else(|| bad("a number has no unit"))?;
        rest = &rest[unit.len_utf8()..];
        let (rank, unit_nanos): (u8, u128) = match (in_time, unit) {
            (false, 'Y') => (1, 0),
            (false, 'M') => (2, 0),
            (false, 'W') => (3, 7 * 86_400 * NANOS_PER_SEC),
            (false, 'D') => (4, 86_400 * NANOS_PER_SEC),
            (true, 'H') => (5, 3_600 * NANOS_PER_SEC),
            (true, 'M') => (6, 60 * NANOS_PER_SEC),
            (true, 'S') => (7, NANOS_PER_SEC),
            (false, 'H' | 'S') => return Err(bad("hours and seconds must come after 'T'")),
            (true, 'Y' | 'W' | 'D') => {
                return Err(bad("years, weeks and days must come before 'T'"));
            }
            _ => return Err(bad(&format!("unknown unit '{unit}'"))),
        };
        if rank <= last_rank {
            return Err(bad(
                "components must appear once each, in the order Y M W D T H M S",
            ));
        }
        last_rank = rank;
        if has_fraction && rank != 7 {
            return Err(bad("only seconds may have a fraction"));
        }
        if rank <= 2 {
            if whole != 0 {
                return Err(ScheduleErrorKind::CalendarPeriod(text.to_owned()));
            }
        } else {
            let add = whole
                .checked_mul(unit_nanos)
                .and_then(|n| n.checked_add(frac_nanos))
                .ok_or_else(|| bad("too long"))?;
            nanos = nanos.checked_add(add).ok_or_else(|| bad("too long"))?;
        }
        any = true;
    }
    if !any {
        return Err(bad("it has no components"));
    }
    let secs = u64::try_from(nanos / NANOS_PER_SEC).map_err(|_| bad("too long"))?;
    let sub = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// Canonical ISO 8601 text of a positive duration: `PnDTnHnMn(.n)S`, zero parts omitted.
fn format_period(period: Duration) -> String {
    let total = period.as_secs();
    let nanos = period.subsec_nanos();
    let days = total / 86_400;
    let hours = total % 86_400 / 3_600;
    let minutes = total % 3_600 / 60;
    let seconds = total % 60;
    let mut out = String::from("P");
    if days > 0 {
        out.push_str(&format!("{days}D"));
    }
    if hours > 0 || minutes > 0 || seconds > 0 || nanos > 0 {
        out.push('T');
        if hours > 0 {
            out.push_str(&format!("{hours}H"));
        }
        if minutes > 0 {
            out.push_str(&format!("{minutes}M"));
        }
        if seconds > 0 || nanos > 0 {
            out.push_str(&seconds.to_string());
            if nanos > 0 {
                let frac = format!("{nanos:09}");
                out.push('.');
                out.push_str(frac.trim_end_matches('0'));
            }
            out.push('S');
        }
    }
    if out == "P" {
        // Only a zero duration gets here; Schedule never holds one.
        out.push_str("T0S");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<FixedOffset> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap()
            .fixed_offset()
    }

    #[test]
    fn thesis_schedules() {
        for (text, reps, secs) in [
            ("R4//PT5M", Some(4), 300),
            ("R13//PT3M", Some(13), 180),
            ("R11//PT3M", Some(11), 180),
            ("R12//PT3M", Some(12), 180),
            ("R14//PT2M", Some(14), 120),
            ("R//PT5M", None, 300),
            ("R16//PT1M", Some(16), 60),
            ("R11//PT10M", Some(11), 600),
        ] {
            let s = Schedule::parse(text).unwrap();
            assert_eq!(s.repetitions(), reps, "{text}");
            assert_eq!(s.start(), None, "{text}");
            assert_eq!(s.period(), Duration::from_secs(secs), "{text}");
            assert_eq!(s.to_string(), text);
        }
    }

    #[test]
    fn with_start() {
        let s = Schedule::parse("R/2026-01-01T00:00:00Z/PT1M").unwrap();
        assert!(s.is_infinite());
        assert_eq!(s.start(), Some(utc(2026, 1, 1, 0, 0, 0)));
        assert_eq!(s.to_string(), "R/2026-01-01T00:00:00Z/PT1M");
        assert_eq!(s.to_chronos_string(), "R/2026-01-01T00:00:00.000Z/PT1M");

        let s = Schedule::parse("R2/2017-07-10T12:00:00.000+02:00/P1DT2H").unwrap();
        assert_eq!(s.start(), Some(utc(2017, 7, 10, 10, 0, 0)));
        assert_eq!(s.to_string(), "R2/2017-07-10T12:00:00+02:00/P1DT2H");
        assert_eq!(s.period_secs(), 93_600.0);
    }

    #[test]
    fn relaxed_starts_are_utc() {
        let expect = Some(utc(2026, 1, 1, 12, 30, 0));
        for text in [
            "R1/2026-01-01T12:30Z/PT1S",
            "R1/2026-01-01T12:30:00/PT1S",
            "R1/2026-01-01T12:30/PT1S",
        ] {
            assert_eq!(Schedule::parse(text).unwrap().start(), expect, "{text}");
        }
        assert_eq!(
            Schedule::parse("R1/2026-01-01/PT1S").unwrap().start(),
            Some(utc(2026, 1, 1, 0, 0, 0))
        );
    }

    #[test]
    fn zero_repetitions_and_periods() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let s = Schedule::parse("R0//PT5M").unwrap();
        assert!(s.is_exhausted());
        assert_eq!(s.first_run_at(now), None);
        assert_eq!(s.after_run(now), None);
        assert_eq!(s.run_times(now).count(), 0);
        assert_eq!(
            Schedule::parse("R//P1DT2H").unwrap().period_secs(),
            93_600.0
        );
        assert_eq!(Schedule::parse("R//P2W").unwrap().to_string(), "R//P14D");
        assert_eq!(
            Schedule::parse("R//PT90M").unwrap().to_string(),
            "R//PT1H30M"
        );
        assert_eq!(
            Schedule::parse("R//PT1.5S").unwrap().period(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            Schedule::parse("R//PT0,25S").unwrap().to_string(),
            "R//PT0.25S"
        );
        assert_eq!(Schedule::parse("R//P0Y0M1D").unwrap().to_string(), "R//P1D");
    }

    #[test]
    fn errors() {
        use ScheduleErrorKind::{
            BadRepetitions, BadStart, CalendarPeriod, MissingPeriod, MissingR, MissingSlash,
            ZeroPeriod,
        };
        let kind = |t: &str| Schedule::parse(t).unwrap_err().kind().clone();
        for (text, expect) in [
            ("4//PT5M", MissingR),
            ("Rx//PT5M", BadRepetitions("x".into())),
            ("R-1//PT5M", BadRepetitions("-1".into())),
            (
                "R99999999999999999999//PT5M",
                BadRepetitions("99999999999999999999".into()),
            ),
            ("R4", MissingSlash),
            ("R4//T5M", MissingPeriod),
            ("R4/PT5M", MissingPeriod),
            ("R4/yesterday/PT5M", BadStart("yesterday".into())),
            ("R4//P1M", CalendarPeriod("P1M".into())),
            ("R4//P1Y", CalendarPeriod("P1Y".into())),
            ("R4//PT0S", ZeroPeriod),
        ] {
            assert_eq!(kind(text), expect, "{text}");
        }
        for bad in [
            "R4//P",
            "R4//PT",
            "R4//P5",
            "R4//PT5X",
            "R4//P5H",
            "R4//PT1D",
            "R4//PT5M1H",
            "R4//P1.5D",
            "R4//PT1.S",
            "R4//PTT1S",
        ] {
            assert!(
                matches!(kind(bad), ScheduleErrorKind::BadPeriod { .. }),
                "{bad}: {:?}",
                kind(bad)
            );
        }
        let msg = Schedule::parse("R4//P1M").unwrap_err().to_string();
        assert!(msg.contains("\"R4//P1M\"") && msg.contains("P30D"), "{msg}");
        assert!(Schedule::new(Some(1), None, Duration::ZERO).is_err());
    }

    #[test]
    fn runs_follow_chronos() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
        let s = Schedule::parse("R4//PT5M").unwrap();
        let first = s.first_run_at(now).unwrap();
        assert_eq!(first, utc(2026, 3, 1, 9, 59, 59));
        let times: Vec<_> = s.run_times(now).collect();
        assert_eq!(times.len(), 4);
        assert_eq!(times[3], utc(2026, 3, 1, 10, 14, 59));

        let mut cur = s;
        let mut runs = 0;
        while let Some(next) = cur.after_run(now) {
            runs += 1;
            cur = next;
        }
        assert_eq!(runs, 4);
        assert_eq!(cur.to_string(), "R0/2026-03-01T10:19:59Z/PT5M");

        let inf = Schedule::parse("R/2026-01-01T00:00:00Z/PT1M").unwrap();
        let next = inf.after_run(now).unwrap();
        assert_eq!(next.to_string(), "R/2026-01-01T00:01:00Z/PT1M");
        assert_eq!(inf.run_times(now).take(1000).count(), 1000);
    }

    #[test]
    fn serde_as_string() {
        let s: Schedule = serde_json::from_str("\"R4//PT5M\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"R4//PT5M\"");
        assert!(serde_json::from_str::<Schedule>("\"nope\"").is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn schedule() -> impl Strategy<Value = Schedule> {
            let reps = proptest::option::of(0u64..1_000_000);
            let start = proptest::option::of((
                0i64..4_102_444_800,       // 1970 .. 2100
                0u32..1_000,               // milliseconds
                -(14 * 60)..=(14 * 60i32), // offset in minutes
            ));
            let period = (0u64..10_000_000, 0u32..1_000_000_000)
                .prop_filter("positive", |(s, n)| *s > 0 || *n > 0);
            (reps, start, period).prop_map(|(reps, start, (secs, nanos))| {
                let start = start.map(|(secs, ms, off)| {
                    let offset = FixedOffset::east_opt(off * 60).unwrap();
                    DateTime::from_timestamp(secs, ms * 1_000_000)
                        .unwrap()
                        .with_timezone(&offset)
                });
                Schedule::new(reps, start, Duration::new(secs, nanos)).unwrap()
            })
        }

        proptest! {
            #[test]
            fn display_parse_round_trip(s in schedule()) {
                let text = s.to_string();
                let back = Schedule::parse(&text).unwrap();
                prop_assert_eq!(&back, &s);
                prop_assert_eq!(back.to_string(), text);
                let chronos = Schedule::parse(&s.to_chronos_string()).unwrap();
                prop_assert_eq!(chronos.repetitions(), s.repetitions());
                prop_assert_eq!(chronos.period(), s.period());
            }

            #[test]
            fn parse_never_panics(text in "R[0-9]{0,3}/[-0-9T:Z.+]{0,25}/P[0-9WDTHMS.,]{0,12}") {
                let _ = Schedule::parse(&text);
            }
        }
    }
}
