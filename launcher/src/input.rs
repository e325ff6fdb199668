//! Reading the user's files: a JSON syntax error names the file, the line and the column, and
//! shows the line with a caret under the spot.
//!
//! A job file is read the way a person means it, or refused with where and why:
//! - a UTF-8 byte-order mark (as some Windows editors write) is skipped, as the frameworks' JSON
//!   reader (Jackson) skips it;
//! - text that is not UTF-8 is refused at the line and column of its first bad byte;
//! - an empty file, a directory, or a file over [`MAX_FILE_BYTES`] is refused as such (the file
//!   is never read whole into memory past that bound);
//! - a key given twice in one object is refused naming the field ([`qos_core::json`]): Marathon
//!   and Chronos would silently keep only the last value.

use std::path::Path;

use qos_core::json::StrictError;
use serde_json::Value;

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
    use binkit::file::ReadError;
    let shown = path.display();
    let bytes = binkit::file::read_at_most(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::Io(e) => LauncherError::input(format!("cannot read {what} {shown}: {e}")),
        ReadError::Directory => {
            LauncherError::input(format!("{shown} is a directory; give the {what} itself"))
        }
        ReadError::TooLarge { .. } => LauncherError::input(format!(
            "{shown}: the {what} is larger than {} MiB; a {what} is one job of a few KiB \
             (Marathon and Chronos keep each job in one ZooKeeper node of 1 MiB)",
            MAX_FILE_BYTES / (1024 * 1024)
        )),
    })?;
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
    qos_core::json::parse(text.as_bytes()).map_err(
        |StrictError {
             error: e,
             duplicate,
         }| {
            let (line, column) = (e.line(), e.column());
            let mut error = match duplicate {
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
        },
    )
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
