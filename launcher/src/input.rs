//! Reading the user's files: a JSON syntax error names the file, the line and the column, and
//! shows the line with a caret under the spot.
//!
//! A job file is read the way a person means it, or refused with where and why:
//! - a UTF-8 byte-order mark (as some Windows editors write) is skipped, as the frameworks' JSON
//!   reader (Jackson) skips it;
//! - text that is not UTF-8 is refused at the line and column of its first bad byte;
//! - an empty file, a directory, or a file over [`MAX_FILE_BYTES`] is refused as such (the file
//!   is never read whole into memory past that bound);
//! - a key given twice in one object is refused naming the field: Marathon and Chronos would
//!   silently keep only the last value.

use std::cell::RefCell;
use std::fmt;
use std::io::Read;
use std::path::Path;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::LauncherError;

/// The largest job file read, bytes: a job is a few KiB, and Marathon and Chronos keep each one
/// in a single ZooKeeper node (1 MiB by default), so a larger file is a mistake.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads and parses a JSON file; `what` says what the file is for ("job file").
///
/// # Errors
/// [`LauncherError`] (input) when the file cannot be read, is a directory, is larger than
/// [`MAX_FILE_BYTES`], or is not JSON (see [`parse_json_bytes`]).
pub fn read_json_file(path: &Path, what: &str) -> Result<Value, LauncherError> {
    let shown = path.display();
    let cannot =
        |e: std::io::Error| LauncherError::input(format!("cannot read {what} {shown}: {e}"));
    let file = std::fs::File::open(path).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(LauncherError::input(format!(
            "{shown} is a directory; give the {what} itself"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(LauncherError::input(format!(
            "{shown}: the {what} is larger than {} MiB; a {what} is one job of a few KiB \
             (Marathon and Chronos keep each job in one ZooKeeper node of 1 MiB)",
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    parse_json_bytes(&bytes, &shown.to_string(), what)
}

/// Parses a file's bytes: a leading UTF-8 byte-order mark is skipped; bytes that are not UTF-8,
/// an empty file and a key given twice are refused, like malformed JSON, at their line and
/// column (see [`parse_json`]).
///
/// # Errors
/// [`LauncherError`] (input) naming `origin`, the line and column, and what is wrong.
pub fn parse_json_bytes(bytes: &[u8], origin: &str, what: &str) -> Result<Value, LauncherError> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            // The column in characters, as serde_json counts them.
            let column = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
            let byte = bytes[e.valid_up_to()];
            return Err(LauncherError::input(format!(
                "{origin}:{line}:{column}: the {what} is not UTF-8 text (byte 0x{byte:02X} there); \
                 save it as UTF-8"
            )));
        }
    };
    if text.trim().is_empty() {
        return Err(LauncherError::input(format!(
            "{origin}: the {what} is empty; it must hold one JSON object"
        )));
    }
    parse_json(text, origin, what)
}

/// Parses JSON text; `origin` names it in messages (a path, or `<stdin>`).
///
/// # Errors
/// [`LauncherError`] (input) with `origin:line:column`, the parser's reason and the line itself;
/// a key given twice in one object is refused naming its field.
pub fn parse_json(text: &str, origin: &str, what: &str) -> Result<Value, LauncherError> {
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = Strict {
        path: Place::Root,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    parsed.map_err(|e| {
        let (line, column) = (e.line(), e.column());
        let mut error = match duplicate.into_inner() {
            Some(field) => LauncherError::field(
                &format!("{origin}:{line}:{column}"),
                &field,
                "is given twice; Marathon and Chronos would silently keep only the last \
                 value, so keep one",
            ),
            None => {
                let full = e.to_string();
                let reason = full
                    .strip_suffix(&format!(" at line {line} column {column}"))
                    .unwrap_or(&full);
                LauncherError::input(format!(
                    "{origin}:{line}:{column}: the {what} is not valid JSON: {reason}"
                ))
            }
        };
        if let Some(src) = line.checked_sub(1).and_then(|i| text.lines().nth(i)) {
            let shown: String = src.chars().take(200).collect();
            let caret_at = column.saturating_sub(1).min(shown.chars().count());
            let pad: String = shown
                .chars()
                .take(caret_at)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            error
                .message
                .push_str(&format!("\n    {shown}\n    {pad}^"));
        }
        error
    })
}

/// Where a value sits in the file, for naming a duplicate key the way every other message
/// names a field (`container.docker.image`, `env.A`, `fetch[0].uri`).
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

/// A `serde_json::Value` that refuses a key given twice in one object (recording its path in
/// `duplicate`); serde_json's own `Value` keeps the last one silently.
struct Strict<'a, 'p> {
    path: Place<'p>,
    duplicate: &'a RefCell<Option<String>>,
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
    fn syntax_error_has_line_column_and_caret() {
        let text = "{\n  \"name\": \"a\",\n  \"cpus\": 1,,\n}\n";
        let e = parse_json(text, "job.json", "job file").unwrap_err();
        assert!(
            e.message
                .starts_with("job.json:3:13: the job file is not valid JSON"),
            "{}",
            e.message
        );
        assert!(e.message.contains("\"cpus\": 1,,"), "{}", e.message);
        assert_eq!(e.exit_code(), 2);
    }

    fn read(bytes: &[u8]) -> Result<Value, LauncherError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("job.json");
        std::fs::write(&path, bytes).unwrap();
        read_json_file(&path, "job file").map_err(|mut e| {
            e.message = e.message.replace(&path.display().to_string(), "job.json");
            e
        })
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let v = read(b"\xEF\xBB\xBF{\"id\": \"/a\"}\n").unwrap();
        assert_eq!(v["id"], "/a");
    }

    #[test]
    fn text_that_is_not_utf8_is_refused_at_its_line_and_column() {
        let e = read(b"{\n  \"cmd\": \"echo caf\xE9\"\n}\n").unwrap_err();
        assert_eq!(
            e.message,
            "job.json:2:19: the job file is not UTF-8 text (byte 0xE9 there); save it as UTF-8"
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn an_empty_file_or_a_directory_is_said_to_be_one() {
        for empty in [&b""[..], b"  \n", b"\xEF\xBB\xBF"] {
            let e = read(empty).unwrap_err();
            assert_eq!(
                e.message,
                "job.json: the job file is empty; it must hold one JSON object"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let e = read_json_file(dir.path(), "job file").unwrap_err();
        assert!(
            e.message
                .ends_with("is a directory; give the job file itself"),
            "{}",
            e.message
        );
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_file_over_the_bound_is_refused_without_reading_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.json");
        // Sparse: no disk used, and only MAX_FILE_BYTES + 1 bytes are ever read.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(64 * MAX_FILE_BYTES)
            .unwrap();
        let e = read_json_file(&path, "job file").unwrap_err();
        assert!(e.message.contains("is larger than 4 MiB"), "{}", e.message);
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn a_key_given_twice_is_refused_naming_its_field() {
        let e = read(b"{\"id\": \"/a\", \"cpus\": 1,\n \"cpus\": 4}").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cpus"));
        assert!(
            e.message
                .starts_with("job.json:2:7: field cpus: is given twice"),
            "{}",
            e.message
        );
        let e = read(
            br#"{"container": {"docker": {"image": "a", "image": "b"}}, "fetch": [{"uri": 1, "uri": 2}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("container.docker.image"));
        let e = read(br#"{"fetch": [{"uri": "a"}, {"uri": 1, "uri": 2}]}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("fetch[1].uri"));
        // The same key in two objects is no duplicate; order and numbers are kept.
        let v = read(br#"{"b": {"x": 1}, "a": {"x": 2.5, "y": -3, "z": 18446744073709551615}}"#)
            .unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"{"b":{"x":1},"a":{"x":2.5,"y":-3,"z":18446744073709551615}}"#
        );
    }

    #[test]
    fn deep_nesting_is_a_json_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = read(deep.as_bytes()).unwrap_err();
        assert!(
            e.message.contains("recursion limit exceeded"),
            "{}",
            e.message
        );
    }

    #[test]
    fn missing_file() {
        let e = read_json_file(Path::new("/nonexistent/job.json"), "job file").unwrap_err();
        assert!(e.message.contains("/nonexistent/job.json"), "{}", e.message);
    }
}
