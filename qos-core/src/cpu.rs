//! CPU allocations in exact millicores, so that stepping never drifts.
//!
//! The thesis stepped `cpus` with floats and produced `0.19999999999999996`; here `1.0 − 0.4 − 0.4`
//! is exactly `0.2`.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A CPU allocation in thousandths of a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Cpus(u32);

impl Cpus {
    /// No CPU at all.
    pub const ZERO: Self = Self(0);
    /// One whole CPU.
    pub const ONE: Self = Self(1000);
    /// The finest step an allocation is held in, one millicore: the smallest that is not zero
    /// (a finer size rounds to a whole number of millicores, [`Cpus::from_f64`]).
    pub const MILLICORE: Self = Self(1);

    /// From millicores.
    pub const fn from_milli(milli: u32) -> Self {
        Self(milli)
    }

    /// From a float number of CPUs, rounded to the nearest millicore; negative and NaN give zero.
    pub fn from_f64(cpus: f64) -> Self {
        if cpus.is_nan() || cpus <= 0.0 {
            return Self::ZERO;
        }
        Self((cpus * 1000.0).round().min(u32::MAX as f64) as u32)
    }

    /// Millicores.
    pub const fn milli(self) -> u32 {
        self.0
    }

    /// As a float number of CPUs (what frameworks put in their JSON).
    pub const fn as_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// The thesis' increase: `+step` if that stays within `max`, else `max` if not already there,
    /// else `None` (nothing to send).
    pub fn step_up(self, step: Self, max: Self) -> Option<Self> {
        if self.0 + step.0 <= max.0 {
            Some(Self(self.0 + step.0))
        } else if self != max {
            Some(max)
        } else {
            None
        }
    }

    /// The thesis' decrease: `−step` if that stays at or above `min`, else `min` if not already
    /// there, else `None`.
    pub fn step_down(self, step: Self, min: Self) -> Option<Self> {
        if self.0 >= step.0 && self.0 - step.0 >= min.0 {
            Some(Self(self.0 - step.0))
        } else if self != min {
            Some(min)
        } else {
            None
        }
    }

    /// Rounds up to a multiple of `granularity` (no-op for a zero granularity).
    pub fn round_up_to(self, granularity: Self) -> Self {
        if granularity.0 == 0 {
            return self;
        }
        Self(self.0.div_ceil(granularity.0) * granularity.0)
    }

    /// Clamps into `[lo, hi]` (if `lo > hi`, `hi` wins).
    pub fn clamp_to(self, lo: Self, hi: Self) -> Self {
        Self(self.0.max(lo.0).min(hi.0))
    }

    /// Saturating subtraction.
    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }
}

impl Add for Cpus {
    type Output = Self;
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl Sub for Cpus {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        self.saturating_sub(rhs)
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let s = format!("{frac:03}");
            write!(f, "{whole}.{}", s.trim_end_matches('0'))
        }
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !v.is_finite() || v < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "cpus must be a non-negative number, got {v}"
            )));
        }
        Ok(Self::from_f64(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64) -> Cpus {
        Cpus::from_f64(x)
    }

    #[test]
    fn thesis_sequences_without_drift() {
        let (step, min, max) = (c(0.4), c(0.1), c(2.0));
        let mut down = vec![c(1.0)];
        while let Some(next) = down.last().unwrap().step_down(step, min) {
            down.push(next);
        }
        assert_eq!(down, [c(1.0), c(0.6), c(0.2), c(0.1)]);
        assert_eq!(down[2].as_f64(), 0.2);
        let mut up = vec![c(1.0)];
        while let Some(next) = up.last().unwrap().step_up(step, max) {
            up.push(next);
        }
        assert_eq!(up, [c(1.0), c(1.4), c(1.8), c(2.0)]);
    }

    #[test]
    fn display_and_rounding() {
        assert_eq!(c(0.1).to_string(), "0.1");
        assert_eq!(c(2.0).to_string(), "2");
        assert_eq!(c(1.25).to_string(), "1.25");
        assert_eq!(c(0.19999999999999996), c(0.2));
        assert_eq!(c(-1.0), Cpus::ZERO);
        assert_eq!(c(f64::NAN), Cpus::ZERO);
        assert_eq!(c(0.31).round_up_to(c(0.1)), c(0.4));
        assert_eq!(c(0.3).round_up_to(c(0.1)), c(0.3));
        assert_eq!(c(3.0).clamp_to(c(0.1), c(2.0)), c(2.0));
    }

    #[test]
    fn serde_as_number() {
        assert_eq!(serde_json::to_string(&c(1.4)).unwrap(), "1.4");
        assert_eq!(serde_json::from_str::<Cpus>("0.6").unwrap(), c(0.6));
        assert!(serde_json::from_str::<Cpus>("-1").is_err());
    }
}
