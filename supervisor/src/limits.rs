//! What the API accepts, in one place: the length of every string a client sends, the size of
//! every collection, and the plausibility of every client time. Each check answers a 422 that
//! names the field; nothing unbounded reaches memory, the database or `/metrics`.
//!
//! Lengths are bytes of UTF-8. Neither Marathon nor Chronos documents a length limit for an app
//! id or a job name (Marathon's segments `[a-z0-9.-]`, Chronos' `[\w.-]`; Mesos-DNS wants a
//! Marathon service name of at most 54 characters for its SRV records); 255 bytes is what a
//! file name, a DNS name and a Prometheus label can all hold.

use crate::error::ApiError;
pub(crate) use crate::error::truncate;

/// Job names (Chronos job name, Marathon app id), node names, container ids and names, label
/// keys and values: the registration's own bound, which the launcher checks before registering.
pub(crate) const MAX_NAME: usize = qos_core::wire::MAX_NAME_BYTES;
/// Host names (RFC 1035: 253 characters in text form).
pub(crate) const MAX_HOSTNAME: usize = 253;
/// A node agent's URL.
pub(crate) const MAX_URL: usize = 2048;
/// Labels of one node.
pub(crate) const MAX_LABELS: usize = 64;
/// Entries of a heartbeat's per-job breakdown.
pub(crate) const MAX_JOBS_PER_NODE: usize = 4096;

/// `s` is at most `max` bytes (and, when `required`, not empty).
pub(crate) fn check_len(field: &str, s: &str, max: usize, required: bool) -> Result<(), ApiError> {
    if required && s.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if s.len() > max {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} is {} bytes long; at most {max} are accepted",
                s.len()
            ),
        ));
    }
    Ok(())
}

/// A collection of `len` entries has at most `max`.
pub(crate) fn check_count(field: &str, len: usize, max: usize) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} has {len} entries; at most {max} are accepted"),
        ));
    }
    Ok(())
}

/// A number of CPUs a client sizes something with (a job's registration, the size an iteration
/// ran with): finite, at least one millicore — the finest size a job is held in
/// ([`qos_core::Cpus`]) and the least Marathon accepts; anything smaller would be 0 CPU — and at
/// most `max`. Returns it as [`qos_core::Cpus`].
pub(crate) fn check_cpus(field: &str, cpus: f64, max: f64) -> Result<qos_core::Cpus, ApiError> {
    if !cpus.is_finite() || !(MIN_CPUS..=max).contains(&cpus) {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} must be between {MIN_CPUS} and {max} CPUs, got {}",
                number(cpus)
            ),
        ));
    }
    Ok(qos_core::Cpus::from_f64(cpus))
}

/// The least a job is sized with: the smallest non-zero size [`qos_core::Cpus`] holds (one
/// millicore; below half of it a size rounds to 0 CPU). That Marathon's own minimum is the same
/// value (`frameworks::marathon::APP_MINIMUMS`) is its own rule, checked where apps are written.
pub(crate) const MIN_CPUS: f64 = qos_core::Cpus::MILLICORE.as_f64();

/// A number for a message: `{:.prec$}` while it is of a plausible size, [`number`] past it (a
/// client's 1e308 prints as `1e308`, not as 309 digits; 1e-300 not as `0.000`).
fn readable(x: f64, prec: usize) -> String {
    if x == 0.0 || (1e-3..1e15).contains(&x.abs()) {
        format!("{x:.prec$}")
    } else {
        number(x)
    }
}

/// A number a client sent, for a message: as Rust prints it while that is short (`0.0005`,
/// `NaN`, `-inf`), scientific when not (`-1e300`, `1e-300`, which print as 300 digits).
pub(crate) fn number(x: f64) -> String {
    let plain = x.to_string();
    if plain.len() <= 24 {
        plain
    } else {
        format!("{x:e}")
    }
}

/// A client's epoch time, checked against the supervisor's clock: finite, after 1970, and not
/// more than `skew` seconds ahead of `now`. Within the tolerance it is kept as sent (a re-sent
/// report must read back the same to be recognised as a duplicate). Returns it.
pub(crate) fn client_time(field: &str, t: f64, now: f64, skew: f64) -> Result<f64, ApiError> {
    if !t.is_finite() || t < 0.0 {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be epoch seconds, got {}", number(t)),
        ));
    }
    if t > now + skew {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} is {} s ahead of the supervisor's clock ({} > {now:.3}); at most {skew} s is tolerated — check the sender's clock",
                readable(t - now, 1),
                readable(t, 3),
            ),
        ));
    }
    Ok(t)
}

/// A client's time is not earlier than `earliest` (e.g. a report about a run that started
/// before its job could have been submitted).
pub(crate) fn not_before(field: &str, t: f64, earliest: f64, what: &str) -> Result<(), ApiError> {
    if t < earliest {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} ({}) is {} s before {what}",
                readable(t, 3),
                readable(earliest - t, 0)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_name_the_field() {
        check_len("name", "abc", 3, true).unwrap();
        let e = check_len("name", "abcd", 3, true).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        assert!(e.message.contains("4 bytes"), "{e}");
        assert!(check_len("hostname", "", 3, false).is_ok());
        assert!(check_len("hostname", "", 3, true).is_err());
    }

    #[test]
    fn client_times_are_bounded_by_our_clock() {
        assert_eq!(client_time("at", 100.0, 200.0, 5.0).unwrap(), 100.0);
        assert_eq!(client_time("at", 203.0, 200.0, 5.0).unwrap(), 203.0);
        let e = client_time("at", 200.0 + 86_400.0, 200.0, 5.0).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("at"));
        assert!(e.message.contains("86400.0 s ahead"), "{e}");
        assert!(client_time("at", f64::NAN, 200.0, 5.0).is_err());
        assert!(client_time("at", -1.0, 200.0, 5.0).is_err());
        assert!(not_before("started_at", 5.0, 10.0, "x").is_err());
    }

    /// Any f64 a client sends is echoed in a few characters: -1e300 printed as 301 digits
    /// before, 1e-300 as 302.
    #[test]
    fn refusals_echo_any_number_briefly() {
        let cases = [
            client_time("started_at", -1e300, 200.0, 5.0),
            client_time("started_at", -1e-300, 200.0, 5.0),
            client_time("started_at", 1e300, 200.0, 5.0),
            client_time("started_at", f64::NEG_INFINITY, 200.0, 5.0),
            not_before("started_at", -1e300, 10.0, "x").map(|()| 0.0),
            check_cpus("cpus", 1e300, 4.0).map(|_| 0.0),
            check_cpus("cpus", 1e-300, 4.0).map(|_| 0.0),
            check_cpus("cpus", -1e-300, 4.0).map(|_| 0.0),
        ];
        for r in cases {
            let e = r.unwrap_err();
            assert!(e.message.len() < 200, "{} bytes: {e}", e.message.len());
        }
        let e = client_time("started_at", -1e300, 200.0, 5.0).unwrap_err();
        assert!(e.message.ends_with("got -1e300"), "{e}");
        let e = check_cpus("cpus", 1e-300, 4.0).unwrap_err();
        assert!(e.message.ends_with("got 1e-300"), "{e}");
        let e = check_cpus("cpus", 0.0005, 4.0).unwrap_err();
        assert!(e.message.ends_with("got 0.0005"), "{e}");
    }
}
