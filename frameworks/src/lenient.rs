//! Tolerant readers for JSON values whose type varies between servers and hand-written files.
//!
//! The thesis Chronos jobs carry `"cpus": "1"` and `"async": "false"`; Chronos reads them with
//! Jackson's `asDouble`/`asBoolean`, so numbers may arrive as numeric strings and booleans as
//! `"true"`/`"false"`. These helpers accept both forms and reject everything else.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A finite number, or a string holding one (surrounding blanks allowed).
#[must_use]
pub fn as_f64(value: &Value) -> Option<f64> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

/// A non-negative integer, or a string holding one. Integral floats (`3.0`) are accepted.
#[must_use]
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| integral_f64_to_u64(n.as_f64()?)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| integral_f64_to_u64(s.parse::<f64>().ok()?))
        }
        _ => None,
    }
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::float_cmp
)]
fn integral_f64_to_u64(f: f64) -> Option<u64> {
    // 2^64 as f64; anything at or above it does not fit.
    const LIMIT: f64 = 18_446_744_073_709_551_616.0;
    ((0.0..LIMIT).contains(&f) && f.trunc() == f).then_some(f as u64)
}

/// A boolean, or the strings `"true"`/`"false"` in any case.
#[must_use]
pub fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value's type as an error message names it (qos-core's one wording).
pub use qos_core::spec::kind_of;

/// `deserialize_with` for an optional number that may arrive as a string. `null` and values of
/// the wrong type read as `None` (tolerant by design: a field we cannot read is treated as absent).
pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(as_f64))
}

/// `deserialize_with` for an optional non-negative integer that may arrive as a string.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<Value>::deserialize(d)?.as_ref().and_then(as_u64))
}

/// `deserialize_with` for a value whose `null` means "the default".
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The conversions and map accessors shared by the tolerant whole-object models (`ChronosJob`,
/// `MarathonApp`): each is a newtype over the server's JSON object, so unknown fields survive a
/// round trip. `$what` names the object in the error for a value that is not an object.
macro_rules! json_object_accessors {
    ($ty:ty, $what:literal) => {
        impl From<Map<String, Value>> for $ty {
            fn from(map: Map<String, Value>) -> Self {
                Self(map)
            }
        }

        impl TryFrom<Value> for $ty {
            type Error = $crate::FrameworkError;
            fn try_from(value: Value) -> Result<Self, Self::Error> {
                match value {
                    Value::Object(map) => Ok(Self(map)),
                    other => Err($crate::FrameworkError::invalid_input(
                        $what,
                        format!(
                            "must be a JSON object, found {}",
                            $crate::error::truncate(&other.to_string(), 80)
                        ),
                    )),
                }
            }
        }

        impl $ty {
            /// The whole object.
            #[must_use]
            pub fn as_map(&self) -> &Map<String, Value> {
                &self.0
            }

            /// `cpus`, as a number or numeric string.
            #[must_use]
            pub fn cpus(&self) -> Option<f64> {
                self.number("cpus")
            }

            /// `mem` in MiB (Chronos' docs say MB), as a number or numeric string.
            #[must_use]
            pub fn mem(&self) -> Option<f64> {
                self.number("mem")
            }

            /// `disk` in MiB (Chronos' docs say MB), as a number or numeric string.
            #[must_use]
            pub fn disk(&self) -> Option<f64> {
                self.number("disk")
            }

            /// A string field; `None` when absent or not a string.
            fn text(&self, key: &str) -> Option<&str> {
                self.0.get(key).and_then(Value::as_str)
            }

            /// A number field, as a number or numeric string.
            fn number(&self, key: &str) -> Option<f64> {
                self.0.get(key).and_then($crate::lenient::as_f64)
            }

            /// A non-negative integer field, as a number or numeric string.
            fn count(&self, key: &str) -> Option<u64> {
                self.0.get(key).and_then($crate::lenient::as_u64)
            }

            /// A field as the server wrote it (`None` when absent).
            #[must_use]
            pub fn get(&self, key: &str) -> Option<&Value> {
                self.0.get(key)
            }

            /// Sets a field, returning the old value.
            pub fn insert(&mut self, key: impl Into<String>, value: Value) -> Option<Value> {
                self.0.insert(key.into(), value)
            }

            /// Removes a field, returning it.
            pub fn remove(&mut self, key: &str) -> Option<Value> {
                self.0.shift_remove(key)
            }
        }
    };
}
pub(crate) use json_object_accessors;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_numeric_strings() {
        assert_eq!(as_f64(&json!(1)), Some(1.0));
        assert_eq!(as_f64(&json!(0.5)), Some(0.5));
        assert_eq!(as_f64(&json!("1")), Some(1.0));
        assert_eq!(as_f64(&json!(" 0.25 ")), Some(0.25));
        assert_eq!(as_f64(&json!("NaN")), None);
        assert_eq!(as_f64(&json!("inf")), None);
        assert_eq!(as_f64(&json!("abc")), None);
        assert_eq!(as_f64(&json!(null)), None);
        assert_eq!(as_f64(&json!(true)), None);
    }

    #[test]
    fn integers() {
        assert_eq!(as_u64(&json!(3)), Some(3));
        assert_eq!(as_u64(&json!(3.0)), Some(3));
        assert_eq!(as_u64(&json!("500")), Some(500));
        assert_eq!(as_u64(&json!("2.0")), Some(2));
        assert_eq!(as_u64(&json!(2.5)), None);
        assert_eq!(as_u64(&json!(-1)), None);
        assert_eq!(as_u64(&json!(1e30)), None);
    }

    #[test]
    fn booleans() {
        assert_eq!(as_bool(&json!(true)), Some(true));
        assert_eq!(as_bool(&json!("false")), Some(false));
        assert_eq!(as_bool(&json!("TRUE")), Some(true));
        assert_eq!(as_bool(&json!("yes")), None);
        assert_eq!(as_bool(&json!(1)), None);
    }
}
