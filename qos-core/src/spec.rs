//! The `qos` block of a job file: parsing and validation.
//!
//! Accepted verbatim in the thesis format, `{"duration": 400, "deadline": 1800, "desv_deadline": 0.2}`,
//! with numbers that may also arrive as strings (`"400"`), and `deadline` either relative seconds or
//! an absolute RFC 3339 time. Every error names the field and the reason.

use std::fmt;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
                    kind(value)
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
        };
        spec.check()?;
        Ok(spec)
    }

    /// Checks the ranges that do not depend on the job: positive finite duration and deadline,
    /// `desv_deadline` in `[0, 1)`.
    pub fn check(&self) -> Result<(), SpecError> {
        positive("duration", self.duration)?;
        if let Deadline::Relative(d) = self.deadline {
            positive("deadline", d)?;
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
    /// (epoch seconds): the deadline must be in the future and long enough for at least one
    /// iteration (iterative jobs) or the whole duration at `cpu_max` CPUs is not checked here —
    /// that is feasibility, reported as `AT_RISK`, not a spec error.
    pub fn validate_for(
        &self,
        iterations: Option<u32>,
        submitted_at: f64,
    ) -> Result<(), SpecError> {
        self.check()?;
        let window = self.deadline.at(submitted_at) - submitted_at;
        if window <= 0.0 {
            return Err(SpecError::new(
                "deadline",
                format!("is already in the past ({})", self.deadline),
            ));
        }
        if let Some(n) = iterations {
            if n == 0 {
                return Err(SpecError {
                    field: "schedule".into(),
                    reason: "must request at least one iteration (R1 or more)".into(),
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
        ResolvedQos {
            duration: self.duration,
            submitted_at,
            deadline_at: self.deadline.at(submitted_at),
            desv: self.desv_deadline,
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

fn kind(v: &Value) -> &'static str {
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
                format!("must be a number, got {}", kind(other)),
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
        let cases = [
            (
                json!({"deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "missing",
            ),
            (
                json!({"duration": -3, "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "positive",
            ),
            (
                json!({"duration": 0, "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "greater than zero",
            ),
            (
                json!({"duration": "NaN", "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "NaN",
            ),
            (
                json!({"duration": "abc", "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "number",
            ),
            (
                json!({"duration": true, "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "boolean",
            ),
            (
                json!({"duration": "inf", "deadline": 1, "desv_deadline": 0.1}),
                "qos.duration",
                "finite",
            ),
            (
                json!({"duration": 1, "deadline": 0, "desv_deadline": 0.1}),
                "qos.deadline",
                "greater than zero",
            ),
            (
                json!({"duration": 1, "deadline": "tomorrow", "desv_deadline": 0.1}),
                "qos.deadline",
                "RFC 3339",
            ),
            (
                json!({"duration": 1, "deadline": 5, "desv_deadline": 1.0}),
                "qos.desv_deadline",
                "[0, 1)",
            ),
            (
                json!({"duration": 1, "deadline": 5, "desv_deadline": -0.1}),
                "qos.desv_deadline",
                "[0, 1)",
            ),
            (
                json!({"duration": 1, "deadline": 5}),
                "qos.desv_deadline",
                "missing",
            ),
            (
                json!({"duration": 1, "deadline": 5, "desv_deadline": 0.1, "dead_line": 3}),
                "qos.dead_line",
                "unknown",
            ),
            (json!([1, 2]), "qos", "object"),
        ];
        for (input, field, reason) in cases {
            let e = err(&input);
            assert_eq!(e.field, field, "{input}");
            assert!(e.reason.contains(reason), "{input}: {e}");
        }
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

    #[test]
    fn absolute_deadline_in_the_past() {
        let spec = QosSpec {
            duration: 1.0,
            deadline: Deadline::Absolute(100.0),
            desv_deadline: 0.1,
        };
        let e = spec.validate_for(None, 200.0).unwrap_err();
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
