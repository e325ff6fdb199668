//! The frameworks' own formats, shared by the emulators: request bodies as Jackson reads them,
//! Java regular expressions, dashed UUIDs, ISO-8601 timestamps with
//! milliseconds, Java's printing of a double, epoch seconds, shell quoting.

use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;

/// A request body read as the frameworks' Jackson reads a byte stream: a leading UTF-8
/// byte-order mark is skipped (`ByteSourceJsonBootstrapper`), so a body saved by an editor that
/// writes one is taken, as Marathon and Chronos take it.
pub(crate) fn json_body(body: &[u8]) -> serde_json::Result<serde_json::Value> {
    serde_json::from_slice(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body))
}

/// `java.util.regex.Pattern.compile` takes `pattern`: its syntax read by `regex-syntax`, with
/// the look-arounds and back-references Java has and it does not counted as valid.
pub(crate) fn java_regex(pattern: &str) -> bool {
    use regex_syntax::ast::ErrorKind;
    match regex_syntax::ast::parse::Parser::new().parse(pattern) {
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            ErrorKind::UnsupportedLookAround | ErrorKind::UnsupportedBackreference
        ),
    }
}

/// A random (version 4) UUID in the dashed lowercase form Marathon and Mesos print.
pub(crate) fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `2015-09-29T15:59:51.164Z`: the ISO 8601 form (UTC, milliseconds) Marathon and Chronos use.
pub(crate) fn iso_millis(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A double printed as Java/Scala's `Double.toString` does for the values resources take
/// (`1.0`, `0.5`, `128.0`): what Marathon and Chronos put in `*_RESOURCE_*` variables.
pub(crate) fn java_double(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Seconds since the epoch as a float (Mesos `timestamp`).
pub(crate) fn epoch_secs(t: DateTime<Utc>) -> f64 {
    // Milliseconds are enough and keep the value exactly representable.
    let ms = t.timestamp_millis() as f64;
    ms / 1000.0
}

/// Quotes a string for a POSIX shell (used only in human-readable names, never executed).
pub(crate) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(u.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_ne!(u, uuid_v4());
    }

    #[test]
    fn doubles_like_java() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.5), "0.5");
        assert_eq!(java_double(128.0), "128.0");
        assert_eq!(java_double(0.1), "0.1");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
