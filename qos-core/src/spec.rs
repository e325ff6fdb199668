//! The `qos` block of a job file: parsing and validation.
//!
//! Accepted verbatim in the thesis format, `{"duration": 400, "deadline": 1800, "desv_deadline": 0.2}`,
//! with numbers that may also arrive as strings (`"400"`), and `deadline` either relative seconds or
//! an absolute RFC 3339 time. Every error names the field and the reason.

use std::fmt;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The farthest a deadline may lie after submission by default in the supervisor
/// (`limits.deadline_horizon`): 365 days. A deadline of `1e300` is a typo or an attack, not a
/// plan.
pub const DEFAULT_HORIZON: f64 = 365.0 * 86_400.0;

/// The largest `duration` or relative `deadline` accepted at all, seconds (100 years): beyond it
/// no arithmetic on the value means anything.
pub const MAX_SECONDS: f64 = 100.0 * 365.0 * 86_400.0;

/// The most iterations a job may request (a run a minute for almost two years).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// A validation error in a `qos` block. `field` is the dotted path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// Dotted path of the field, e.g. `qos.duration`.
    pub field: String,
    /// What is wrong and, where useful, what would be right.
    pub reason: String,
}

impl SpecError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        Self {
            field: format!("qos.{field}"),
            reason: reason.into(),
        }
    }
}

/// When a job must be done.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadline {
    /// Seconds after submission (the thesis form).
    Relative(f64),
    /// An absolute time, seconds since the Unix epoch (given as RFC 3339 in job files).
    Absolute(f64),
}

impl Deadline {
    /// The absolute deadline for a job submitted at `submitted_at` (epoch seconds).
    pub fn at(self, submitted_at: f64) -> f64 {
        match self {
            Self::Relative(secs) => submitted_at + secs,
            Self::Absolute(at) => at,
        }
    }
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Relative(s) => write!(f, "{s} s after submission"),
            Self::Absolute(at) => match DateTime::from_timestamp_millis((at * 1000.0) as i64) {
                Some(t) => write!(f, "{}", t.to_rfc3339()),
                None => write!(f, "{at} (epoch s)"),
            },
        }
    }
}

/// A job's QoS target, as stated by its owner. Serialises back to the thesis format.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QosSpec {
    /// Seconds of work at 1 CPU: per iteration for iterative (Chronos) jobs, total CPU-seconds
    /// for continuous (Marathon) jobs.
    pub duration: f64,
    /// When the job must be done.
    pub deadline: Deadline,
    /// Tolerated deviation, a fraction in `[0, 1)`.
    pub desv_deadline: f64,
}

impl QosSpec {
    /// Parses and validates a `qos` block given as JSON.
    ///
    /// Numbers may be JSON numbers or numeric strings; `deadline` may also be an RFC 3339 string.
    /// Unknown keys are rejected, because a misspelt key (`dead_line`) would otherwise silently
    /// leave the job without its target.
    pub fn from_json(value: &Value) -> Result<Self, SpecError> {
        let Some(obj) = value.as_object() else {
            return Err(SpecError {
                field: "qos".into(),
                reason: format!(
                    "must be an object like {{\"duration\": 400, \"deadline\": 1800, \"desv_deadline\": 0.2}}, got {}",
                    kind_of(value)
                ),
            });
        };
        for key in obj.keys() {
            if !matches!(key.as_str(), "duration" | "deadline" | "desv_deadline") {
                return Err(SpecError::new(
                    key,
                    "unknown field (expected duration, deadline, desv_deadline)",
                ));
            }
        }
        let duration = number(obj.get("duration"), "duration")?;
        let deadline = match obj.get("deadline") {
            Some(Value::String(s)) if looks_like_timestamp(s) => {
                let t = DateTime::parse_from_rfc3339(s.trim()).map_err(|e| {
                    SpecError::new("deadline", format!("not a valid RFC 3339 time {s:?}: {e}"))
                })?;
                Deadline::Absolute(t.timestamp_millis() as f64 / 1000.0)
            }
            other => Deadline::Relative(number(other, "deadline")?),
        };
        let desv_deadline = number(obj.get("desv_deadline"), "desv_deadline")?;
        let spec = Self {
            duration,
            deadline,
            desv_deadline,
        }
        .normalised();
        spec.check()?;
        Ok(spec)
    }

    /// The same spec with `-0.0` read as `0.0` (`desv_deadline: -0.0` is "no deviation", and
    /// must not print or compare as a negative number later).
    #[must_use]
    pub fn normalised(self) -> Self {
        let zero = |x: f64| if x == 0.0 { 0.0 } else { x };
        Self {
            duration: zero(self.duration),
            deadline: match self.deadline {
                Deadline::Relative(d) => Deadline::Relative(zero(d)),
                Deadline::Absolute(a) => Deadline::Absolute(zero(a)),
            },
            desv_deadline: zero(self.desv_deadline),
        }
    }

    /// Checks the ranges that do not depend on the job: positive finite duration and deadline
    /// (at most [`MAX_SECONDS`]), `desv_deadline` in `[0, 1)`, an absolute deadline a finite
    /// epoch time.
    pub fn check(&self) -> Result<(), SpecError> {
        positive("duration", self.duration)?;
        at_most("duration", self.duration, MAX_SECONDS)?;
        match self.deadline {
            Deadline::Relative(d) => {
                positive("deadline", d)?;
                at_most("deadline", d, MAX_SECONDS)?;
            }
            Deadline::Absolute(at) => {
                if !at.is_finite() || at < 0.0 {
                    return Err(SpecError::new(
                        "deadline",
                        format!("must be a time after 1970 (epoch seconds), got {at}"),
                    ));
                }
            }
        }
        let desv = self.desv_deadline;
        if !desv.is_finite() {
            return Err(SpecError::new("desv_deadline", "must be a finite number"));
        }
        if !(0.0..1.0).contains(&desv) {
            return Err(SpecError::new(
                "desv_deadline",
                format!("must be a fraction in [0, 1) (e.g. 0.2 for 20 %), got {desv}"),
            ));
        }
        Ok(())
    }

    /// Validates the spec against the job it belongs to, at submission time `submitted_at`
    /// (epoch seconds), with no horizon but the absolute [`MAX_SECONDS`]; see
    /// [`QosSpec::validate_within`] (the supervisor applies its configured horizon, by default
    /// [`DEFAULT_HORIZON`]).
    pub fn validate_for(
        &self,
        iterations: Option<u32>,
        submitted_at: f64,
    ) -> Result<(), SpecError> {
        self.validate_within(iterations, submitted_at, MAX_SECONDS)
    }

    /// Validates the spec against the job it belongs to, at submission time `submitted_at`
    /// (epoch seconds): the deadline must be in the future, at most `horizon` seconds after
    /// submission, and long enough for at least one iteration (iterative jobs, which request 1
    /// to [`MAX_ITERATIONS`]). Whether the whole work fits at `cpu_max` CPUs is not checked
    /// here — that is feasibility, reported as `AT_RISK`, not a spec error.
    pub fn validate_within(
        &self,
        iterations: Option<u32>,
        submitted_at: f64,
        horizon: f64,
    ) -> Result<(), SpecError> {
        self.check()?;
        let window = self.deadline.at(submitted_at) - submitted_at;
        if window <= 0.0 {
            return Err(SpecError::new(
                "deadline",
                format!("is already in the past ({})", self.deadline),
            ));
        }
        if window > horizon {
            return Err(SpecError::new(
                "deadline",
                format!(
                    "is {} s after submission; at most {horizon:.0} s ({:.0} days) is accepted",
                    secs(window),
                    horizon / 86_400.0
                ),
            ));
        }
        if let Some(n) = iterations {
            if n == 0 {
                return Err(SpecError {
                    field: "schedule".into(),
                    reason: "must request at least one iteration (R1 or more)".into(),
                });
            }
            if n > MAX_ITERATIONS {
                return Err(SpecError {
                    field: "schedule".into(),
                    reason: format!(
                        "requests {n} iterations; at most {MAX_ITERATIONS} are accepted"
                    ),
                });
            }
            if window < self.duration {
                return Err(SpecError::new(
                    "deadline",
                    format!(
                        "{window:.0} s is shorter than one iteration (duration {} s)",
                        self.duration
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Resolves the spec for a job submitted at `submitted_at`.
    pub fn resolve(&self, submitted_at: f64) -> ResolvedQos {
        let spec = self.normalised();
        ResolvedQos {
            duration: spec.duration,
            submitted_at,
            deadline_at: spec.deadline.at(submitted_at),
            desv: spec.desv_deadline,
        }
    }
}

impl Serialize for QosSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("duration", &self.duration)?;
        match self.deadline {
            Deadline::Relative(secs) => m.serialize_entry("deadline", &secs)?,
            Deadline::Absolute(_) => m.serialize_entry("deadline", &self.deadline.to_string())?,
        }
        m.serialize_entry("desv_deadline", &self.desv_deadline)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for QosSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Self::from_json(&v).map_err(serde::de::Error::custom)
    }
}

/// A QoS spec bound to a submission time: what the policies work with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResolvedQos {
    /// Seconds of work at 1 CPU (per iteration, or total CPU-seconds).
    pub duration: f64,
    /// Submission time, epoch seconds.
    pub submitted_at: f64,
    /// Absolute deadline, epoch seconds.
    pub deadline_at: f64,
    /// Tolerated deviation, a fraction in `[0, 1)`.
    pub desv: f64,
}

impl ResolvedQos {
    /// The deadline relative to submission, in seconds.
    pub fn window(&self) -> f64 {
        self.deadline_at - self.submitted_at
    }
}

fn looks_like_timestamp(s: &str) -> bool {
    s.trim().parse::<f64>().is_err()
}

/// A JSON value's type as an error message names it: `null`, `a boolean`, `a number`, `a string`,
/// `an array`, `an object` (the one wording for every crate that reads JSON).
#[must_use]
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn number(v: Option<&Value>, field: &str) -> Result<f64, SpecError> {
    let n = match v {
        None | Some(Value::Null) => return Err(SpecError::new(field, "is missing")),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(other) => {
            return Err(SpecError::new(
                field,
                format!("must be a number, got {}", kind_of(other)),
            ));
        }
    };
    match n {
        Some(x) if x.is_nan() => Err(SpecError::new(field, "must be a number, got NaN")),
        Some(x) => Ok(x),
        None => Err(SpecError::new(
            field,
            format!(
                "must be a number, got {}",
                v.map_or("nothing".into(), |v| v.to_string())
            ),
        )),
    }
}

/// Seconds for a message: whole seconds, or scientific notation when a number is absurd.
fn secs(x: f64) -> String {
    if x.abs() < 1e12 {
        format!("{x:.0}")
    } else {
        format!("{x:e}")
    }
}

fn at_most(field: &str, x: f64, max: f64) -> Result<(), SpecError> {
    if x > max {
        return Err(SpecError::new(
            field,
            format!("must be at most {max:.0} s (100 years), got {}", secs(x)),
        ));
    }
    Ok(())
}

fn positive(field: &str, x: f64) -> Result<(), SpecError> {
    if !x.is_finite() {
        return Err(SpecError::new(
            field,
            format!("must be a finite number of seconds, got {x}"),
        ));
    }
    if x < 0.0 {
        return Err(SpecError::new(field, format!("must be positive, got {x}")));
    }
    if x == 0.0 {
        return Err(SpecError::new(field, "must be greater than zero"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thesis_block_verbatim() {
        let spec =
            QosSpec::from_json(&json!({"duration": 400, "desv_deadline": 0.2, "deadline": 1800}))
                .unwrap();
        assert_eq!(spec.duration, 400.0);
        assert_eq!(spec.deadline, Deadline::Relative(1800.0));
        assert_eq!(spec.desv_deadline, 0.2);
        assert_eq!(spec.resolve(1000.0).deadline_at, 2800.0);
    }

    #[test]
    fn numbers_as_strings() {
        let spec = QosSpec::from_json(
            &json!({"duration": "130", "desv_deadline": "0.1", "deadline": " 480 "}),
        )
        .unwrap();
        assert_eq!(spec.duration, 130.0);
        assert_eq!(spec.deadline, Deadline::Relative(480.0));
    }

    #[test]
    fn absolute_deadline() {
        let spec = QosSpec::from_json(
            &json!({"duration": 10, "desv_deadline": 0, "deadline": "2030-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!(spec.deadline, Deadline::Absolute(1_893_456_000.0));
        assert_eq!(spec.resolve(5.0).deadline_at, 1_893_456_000.0);
        let off = QosSpec::from_json(
            &json!({"duration": 10, "desv_deadline": 0, "deadline": "2030-01-01T01:00:00+01:00"}),
        )
        .unwrap();
        assert_eq!(off.deadline, Deadline::Absolute(1_893_456_000.0));
    }

    fn err(v: &Value) -> SpecError {
        QosSpec::from_json(v).unwrap_err()
    }

    #[test]
    fn errors_name_the_field_and_reason() {
        // A valid spec with one key set to a bad value (or removed, for `None`).
        let cases = [
            ("duration", None, "missing"),
            ("duration", Some(json!(-3)), "positive"),
            ("duration", Some(json!(0)), "greater than zero"),
            ("duration", Some(json!("NaN")), "NaN"),
            ("duration", Some(json!("abc")), "number"),
            ("duration", Some(json!(true)), "boolean"),
            ("duration", Some(json!("inf")), "finite"),
            ("deadline", Some(json!(0)), "greater than zero"),
            ("deadline", Some(json!("tomorrow")), "RFC 3339"),
            ("desv_deadline", Some(json!(1.0)), "[0, 1)"),
            ("desv_deadline", Some(json!(-0.1)), "[0, 1)"),
            ("desv_deadline", None, "missing"),
            ("dead_line", Some(json!(3)), "unknown"),
            // Implausible numbers.
            ("duration", Some(json!(1e300)), "at most"),
            ("deadline", Some(json!(1e300)), "at most"),
            ("deadline", Some(json!("1e400")), "finite"),
        ];
        for (key, value, reason) in cases {
            let mut input = json!({"duration": 1, "deadline": 100, "desv_deadline": 0.1});
            match value {
                Some(value) => input[key] = value,
                None => {
                    input.as_object_mut().unwrap().remove(key);
                }
            }
            let e = err(&input);
            assert_eq!(e.field, format!("qos.{key}"), "{input}");
            assert!(e.reason.contains(reason), "{input}: {e}");
        }
        let e = err(&json!([1, 2]));
        assert_eq!(e.field, "qos");
        assert!(e.reason.contains("object"), "{e}");
    }

    #[test]
    fn deadline_shorter_than_one_iteration() {
        let spec =
            QosSpec::from_json(&json!({"duration": 400, "deadline": 300, "desv_deadline": 0.2}))
                .unwrap();
        let e = spec.validate_for(Some(4), 0.0).unwrap_err();
        assert_eq!(e.field, "qos.deadline");
        assert!(e.reason.contains("shorter than one iteration"), "{e}");
        // The same deadline is fine for a continuous job whose duration is CPU-seconds.
        spec.validate_for(None, 0.0).unwrap();
        assert_eq!(
            spec.validate_for(Some(0), 0.0).unwrap_err().field,
            "schedule"
        );
    }

    /// A one-second job due at epoch second `at`.
    fn due_at(at: f64) -> QosSpec {
        QosSpec {
            duration: 1.0,
            deadline: Deadline::Absolute(at),
            desv_deadline: 0.1,
        }
    }

    #[test]
    fn absolute_deadline_in_the_past() {
        let e = due_at(100.0).validate_for(None, 200.0).unwrap_err();
        assert!(e.reason.contains("past"), "{e}");
    }

    #[test]
    fn serde_goes_through_validation() {
        let ok: QosSpec =
            serde_json::from_str(r#"{"duration": 400, "desv_deadline": 0.2, "deadline": 1800}"#)
                .unwrap();
        assert_eq!(ok.duration, 400.0);
        let bad = serde_json::from_str::<QosSpec>(
            r#"{"duration": -1, "desv_deadline": 0.2, "deadline": 1800}"#,
        )
        .unwrap_err();
        assert!(bad.to_string().contains("qos.duration"), "{bad}");
    }

    #[test]
    fn negative_zero_deviation_is_zero() {
        let spec =
            QosSpec::from_json(&json!({"duration": 10, "deadline": 100, "desv_deadline": -0.0}))
                .unwrap();
        assert!(spec.desv_deadline.is_sign_positive(), "{spec:?}");
        assert_eq!(
            serde_json::to_string(&spec).unwrap(),
            r#"{"duration":10.0,"deadline":100.0,"desv_deadline":0.0}"#
        );
        // Built by hand (the thesis' /initTask numbers), it is normalised when resolved.
        let raw = QosSpec {
            duration: 10.0,
            deadline: Deadline::Relative(100.0),
            desv_deadline: -0.0,
        };
        raw.check().unwrap();
        assert!(raw.resolve(0.0).desv.is_sign_positive());
    }

    #[test]
    fn implausible_numbers_are_refused_with_the_field() {
        let e = due_at(1e300).validate_for(None, 1.5e9).unwrap_err();
        assert_eq!(e.field, "qos.deadline");
        assert!(e.reason.contains("at most"), "{e}");
        let nan = due_at(f64::NAN);
        assert_eq!(nan.check().unwrap_err().field, "qos.deadline");
    }

    #[test]
    fn the_horizon_bounds_the_deadline() {
        let spec = QosSpec {
            duration: 10.0,
            deadline: Deadline::Relative(2.0 * 86_400.0),
            desv_deadline: 0.1,
        };
        spec.validate_within(None, 0.0, 3.0 * 86_400.0).unwrap();
        let e = spec.validate_within(None, 0.0, 86_400.0).unwrap_err();
        assert_eq!(e.field, "qos.deadline");
        assert!(e.reason.contains("at most 86400 s (1 days)"), "{e}");
        // Exactly at the horizon is fine.
        spec.validate_within(None, 0.0, 2.0 * 86_400.0).unwrap();
        let e = spec
            .validate_within(Some(MAX_ITERATIONS + 1), 0.0, DEFAULT_HORIZON)
            .unwrap_err();
        assert_eq!(e.field, "schedule");
        spec.validate_within(Some(MAX_ITERATIONS), 0.0, DEFAULT_HORIZON)
            .unwrap();
    }

    #[test]
    fn serialises_back_to_the_thesis_format() {
        for text in [
            r#"{"duration":400.0,"deadline":1800.0,"desv_deadline":0.2}"#,
            r#"{"duration":10.0,"deadline":"2030-01-01T00:00:00+00:00","desv_deadline":0.0}"#,
        ] {
            let spec: QosSpec = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&spec).unwrap(), text);
        }
    }
}
