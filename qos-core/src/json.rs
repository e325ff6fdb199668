//! JSON read strictly: a key given twice in one object is refused, naming where it sits
//! (`container.docker.image`, `env.A`, `fetch[0].uri`) the way every other message names a
//! field. serde_json keeps the last value of such a key silently (and a derived struct refuses
//! it without saying where), while Marathon and Chronos keep only one of them: a job file, or a
//! body sent to the supervisor, that says two things is refused rather than half-read.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a text was refused by [`parse`].
#[derive(Debug)]
pub struct StrictError {
    /// serde_json's error: its line and column say where the text went wrong.
    pub error: serde_json::Error,
    /// The dotted path of the key given twice, when that is what was wrong.
    pub duplicate: Option<String>,
}

impl fmt::Display for StrictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.duplicate {
            Some(field) => write!(
                f,
                "{field} is given twice (at line {} column {})",
                self.error.line(),
                self.error.column()
            ),
            None => self.error.fmt(f),
        }
    }
}

impl std::error::Error for StrictError {}

/// Parses JSON `bytes` (one value, then only whitespace) into a [`Value`], refusing a key
/// given twice in one object. Numbers and key order are kept as serde_json keeps them.
///
/// # Errors
/// [`StrictError`]: the text is not JSON (serde_json's error, with its line and column), or a
/// key is given twice (its path in [`StrictError::duplicate`]).
pub fn parse(bytes: &[u8]) -> Result<Value, StrictError> {
    let duplicate = std::cell::RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict {
        path: Place::Root,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|error| StrictError {
        error,
        duplicate: duplicate.into_inner(),
    })
}

/// Where a value sits in the text, for naming a duplicate key.
#[derive(Clone, Copy)]
enum Place<'a> {
    Root,
    Key(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Key(Self::Root, k) => f.write_str(k),
            Self::Key(parent, k) => write!(f, "{parent}.{k}"),
            Self::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// A [`Value`] that refuses a key given twice in one object (recording its path in
/// `duplicate`).
struct Strict<'a, 'p> {
    path: Place<'p>,
    duplicate: &'a std::cell::RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_, '_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Strict {
                path: Place::Index(&self.path, items.len()),
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => return Ok(Value::Array(items)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(Place::Key(&self.path, &key).to_string());
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(Strict {
                path: Place::Key(&self.path, &key),
                duplicate: self.duplicate,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_given_twice_is_named_by_its_path() {
        let dup = |s: &str| parse(s.as_bytes()).unwrap_err().duplicate;
        assert_eq!(dup(r#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            dup(r#"{"container": {"docker": {"image": "a", "image": "b"}}}"#).as_deref(),
            Some("container.docker.image")
        );
        assert_eq!(
            dup(r#"{"fetch": [{"uri": "a"}, {"uri": 1, "uri": 2}]}"#).as_deref(),
            Some("fetch[1].uri")
        );
        assert_eq!(
            dup(r#"[{"x": 1}, {"x": 1, "x": 1}]"#).as_deref(),
            Some("[1].x")
        );
        let e = parse(b"{\"a\": 1,,}").unwrap_err();
        assert!(e.duplicate.is_none() && e.error.is_syntax(), "{e}");
        assert!(parse(b"{} x").unwrap_err().error.is_syntax());
    }

    #[test]
    fn the_same_key_in_two_objects_is_no_duplicate_and_order_and_numbers_are_kept() {
        let v = parse(br#"{"b": {"x": 1}, "a": {"x": 2.5, "y": -3, "z": 18446744073709551615}}"#)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"b":{"x":1},"a":{"x":2.5,"y":-3,"z":18446744073709551615}}"#
        );
    }
}
