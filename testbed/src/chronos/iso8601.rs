//! Chronos' own reading of a schedule (`Iso8601Expressions.parse`), kept apart from the
//! `frameworks` client's reader on purpose: what the emulator accepts must follow the server, so
//! that a parsing bug the client has cannot hide behind the same bug in the emulator.
//!
//! - The whole string must match `(R[0-9]*)/(.*)/(P.*)` (Scala's regex extractor: a full match;
//!   `.*` is greedy, so the start is everything up to the last `/P`).
//! - `R` alone repeats forever (−1), `Rn` is `n` (a `Long`).
//! - An empty start is now (2.5.1) or now − 1 s (3.x); otherwise Joda's `DateTime.parse`
//!   (ISO date, optional time with optional seconds and fraction, optional offset `Z`/`±hh:mm`;
//!   no offset means the JVM's zone, UTC on the usual deployments). `scheduleTimeZone` keeps the
//!   fields and replaces the zone: only `UTC`/`GMT`/`Z` and fixed offsets (`+02:00`, `GMT+2`) are
//!   known here; any other zone name is taken as UTC, documented as a simplification.
//! - The period is Joda's `ISOPeriodFormat.standard` (`PnYnMnWnDTnHnMnS`, seconds may carry a
//!   fraction); years and months are kept (as 365 and 30 days when scheduling).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Utc};

/// Which generation parses (the empty start differs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    /// 2.5.1.
    V2,
    /// 3.x.
    V3,
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    /// −1 = forever.
    pub(crate) repetitions: i64,
    /// The start (resolved: an empty start is "now").
    pub(crate) start: DateTime<FixedOffset>,
    /// The start was empty.
    pub(crate) start_empty: bool,
    /// The period in seconds (years as 365 days, months as 30).
    pub(crate) period_secs: f64,
}

/// `Iso8601Expressions.parse`: `None` where Chronos' `canParse` is false.
pub(crate) fn parse(
    input: &str,
    time_zone: &str,
    generation: Generation,
    now: DateTime<Utc>,
) -> Option<Parsed> {
    let rest = input.strip_prefix('R')?;
    let slash = rest.find('/')?;
    let (count, rest) = (&rest[..slash], &rest[slash + 1..]);
    if !count.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let repetitions = if count.is_empty() {
        -1
    } else {
        count.parse::<i64>().ok()?
    };
    // `(.*)/(P.*)`: the start runs to the last "/P".
    let cut = rest.rfind("/P")?;
    let (start_text, period_text) = (&rest[..cut], &rest[cut + 1..]);
    if start_text.contains(['\n', '\r']) || period_text.contains(['\n', '\r']) {
        return None; // `.` does not match line breaks
    }
    let start_empty = start_text.is_empty();
    let start = if start_empty {
        let now = match generation {
            Generation::V2 => now,
            Generation::V3 => now - TimeDelta::seconds(1),
        };
        now.fixed_offset()
    } else {
        let t = joda_date_time(start_text)?;
        match zone_offset(time_zone) {
            Some(zone) => t.naive_local().and_local_timezone(zone).single()?,
            None => t,
        }
    };
    let period_secs = joda_period_secs(period_text)?;
    Some(Parsed {
        repetitions,
        start,
        start_empty,
        period_secs,
    })
}

/// Joda's `DateTime.parse` (`ISODateTimeFormat.dateTimeParser` with an offset): `yyyy-MM-dd`,
/// optionally `THH[:mm[:ss[.SSS…]]]`, optionally `Z` or `±hh[:mm]`; no offset → UTC.
fn joda_date_time(text: &str) -> Option<DateTime<FixedOffset>> {
    let (date_text, time_text) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let date = NaiveDate::parse_from_str(date_text, "%Y-%m-%d").ok()?;
    let (time, offset) = match time_text {
        None => (NaiveTime::MIN, None),
        Some(t) => {
            let (clock, offset) = split_offset(t)?;
            (joda_time(clock)?, offset)
        }
    };
    let offset = offset.unwrap_or(FixedOffset::east_opt(0)?);
    NaiveDateTime::new(date, time)
        .and_local_timezone(offset)
        .single()
}

fn split_offset(t: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(clock) = t.strip_suffix('Z') {
        return Some((clock, FixedOffset::east_opt(0)));
    }
    match t.rfind(['+', '-']) {
        Some(i) => Some((&t[..i], Some(parse_offset(&t[i..])?))),
        None => Some((t, None)),
    }
}

fn parse_offset(o: &str) -> Option<FixedOffset> {
    let sign = match o.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = o[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits.get(2..).map_or(Some(0), |m| m.parse().ok())?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

fn joda_time(clock: &str) -> Option<NaiveTime> {
    let (hms, frac) = match clock.split_once(['.', ',']) {
        Some((a, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (a, Some(f)),
        Some(_) => return None,
        None => (clock, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let num = |s: &str| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let (h, m, s) = match parts.as_slice() {
        [h] => (num(h)?, 0, 0),
        [h, m] => (num(h)?, num(m)?, 0),
        [h, m, s] => (num(h)?, num(m)?, num(s)?),
        _ => return None,
    };
    if frac.is_some() && parts.len() < 3 {
        return None;
    }
    let nanos = frac.map_or(Some(0), |f| {
        let f: String = f.chars().take(9).collect();
        format!("{f:0<9}").parse::<u32>().ok()
    })?;
    NaiveTime::from_hms_nano_opt(h, m, s, nanos)
}

/// Joda's `ISOPeriodFormat.standard`: `P[nY][nM][nW][nD][T[nH][nM][n[.f]S]]`, at least one field;
/// in seconds (Y = 365 d, M = 30 d).
pub(crate) fn joda_period_secs(text: &str) -> Option<f64> {
    let body = text.strip_prefix('P')?;
    let (date, time) = match body.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (body, None),
    };
    let mut total = 0.0;
    let mut fields = 0;
    let mut read = |part: &str, units: &[(char, f64)], fraction_on: Option<char>| -> Option<()> {
        let mut rest = part;
        let mut next_unit = 0;
        while !rest.is_empty() {
            let end = rest.find(|c: char| c.is_ascii_alphabetic())?;
            let (num, tail) = rest.split_at(end);
            let unit = tail.chars().next()?;
            let idx = units[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
            next_unit = idx + 1;
            let value: f64 = if Some(unit) == fraction_on {
                let n = num.replace(',', ".");
                let ok = !n.is_empty()
                    && n.trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.');
                if !ok {
                    return None;
                }
                n.parse().ok()?
            } else {
                let ok = !num.is_empty()
                    && num
                        .trim_start_matches('-')
                        .bytes()
                        .all(|b| b.is_ascii_digit());
                if !ok {
                    return None;
                }
                num.parse::<i64>().ok()? as f64
            };
            total += value * units[idx].1;
            fields += 1;
            rest = &tail[1..];
        }
        Some(())
    };
    read(
        date,
        &[
            ('Y', 365.0 * 86_400.0),
            ('M', 30.0 * 86_400.0),
            ('W', 7.0 * 86_400.0),
            ('D', 86_400.0),
        ],
        None,
    )?;
    if let Some(t) = time {
        read(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)], Some('S'))?;
    }
    (fields > 0).then_some(total)
}

/// A `scheduleTimeZone` this emulator can apply: UTC names and fixed offsets (`+02:00`,
/// `GMT+2`, `UTC-05:30`); `None` for an empty zone. Other names are taken as UTC.
fn zone_offset(zone: &str) -> Option<FixedOffset> {
    let z = zone.trim();
    if z.is_empty() {
        return None;
    }
    let rest = z
        .strip_prefix("GMT")
        .or_else(|| z.strip_prefix("UTC"))
        .unwrap_or(z);
    if rest.is_empty() || rest == "Z" {
        return FixedOffset::east_opt(0);
    }
    if rest.starts_with(['+', '-']) && rest[1..].len() <= 2 {
        let h: i32 = rest[1..].parse().ok()?;
        let sign = if rest.starts_with('-') { -1 } else { 1 };
        return FixedOffset::east_opt(sign * h * 3600);
    }
    parse_offset(rest).or(FixedOffset::east_opt(0))
}

/// Joda's `ISODateTimeFormat.dateTime` print: `2014-09-25T17:22:00.000Z`, `…+02:00`.
pub(crate) fn print_date_time(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn what_chronos_parses() {
        let p = parse("R3/2014-09-25T17:22:00Z/PT2M", "", Generation::V3, now()).unwrap();
        assert_eq!((p.repetitions, p.period_secs), (3, 120.0));
        assert_eq!(print_date_time(p.start), "2014-09-25T17:22:00.000Z");
        let p = parse("R//PT1H", "", Generation::V3, now()).unwrap();
        assert_eq!(p.repetitions, -1);
        assert_eq!(p.start.timestamp(), 1_700_000_000 - 1);
        let p = parse("R//PT1H", "", Generation::V2, now()).unwrap();
        assert_eq!(p.start.timestamp(), 1_700_000_000);
        // Months and years, as Joda keeps them; fractions on seconds; no seconds; a bare date.
        for (s, secs) in [
            ("R/2014-01-01T00:00:00Z/P1M", 30.0 * 86_400.0),
            ("R1/2014-01-01/P1Y2D", 367.0 * 86_400.0),
            ("R2/2014-01-01T10:00/PT0.5S", 0.5),
            ("R2/2014-01-01T10:00:00.123+02:00/P1W", 7.0 * 86_400.0),
        ] {
            assert_eq!(
                parse(s, "", Generation::V3, now()).unwrap().period_secs,
                secs,
                "{s}"
            );
        }
        // A zone keeps the fields.
        let p = parse(
            "R1/2014-01-01T10:00:00Z/PT1H",
            "GMT+2",
            Generation::V3,
            now(),
        )
        .unwrap();
        assert_eq!(p.start.to_rfc3339(), "2014-01-01T10:00:00+02:00");
    }

    #[test]
    fn what_chronos_refuses() {
        for bad in [
            "",
            "R4//5M",
            "4//PT5M",
            "Rx//PT5M",
            "R4/tomorrow/PT5M",
            "R4//P",
            "R4//PT",
            "R4//PT5X",
            "R4//PT1M1H",
            "R4/2014-13-01T00:00:00Z/PT1M",
            "R4/2014-01-01T25:00:00Z/PT1M",
        ] {
            assert!(parse(bad, "", Generation::V3, now()).is_none(), "{bad}");
        }
    }
}
