//! Names no other test uses: tests run in parallel threads, in parallel processes (several
//! `cargo test` at once on one machine), and leave cgroups, containers and jobs that must not
//! collide.

use std::sync::atomic::{AtomicU32, Ordering};

/// `prefix-<pid>-<n>-<nanos>`: unique within this process (a counter) and across processes
/// (the process id, and the clock for a pid reused later).
#[must_use]
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A job UUID no other test uses: 32 lowercase hex digits (the clock, the process id, a
/// counter).
#[must_use]
pub fn job_uuid() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, Ordering::Relaxed);
    // The low 64 bits of the clock: they change every nanosecond.
    #[allow(clippy::cast_possible_truncation)]
    let low = nanos as u64;
    format!("{low:016x}{:08x}{n:08x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_uuids_are_32_hex_digits() {
        assert_ne!(unique("a"), unique("a"));
        assert!(unique("cg").starts_with("cg-"));
        let (a, b) = (job_uuid(), job_uuid());
        assert_ne!(a, b);
        for u in [a, b] {
            assert_eq!(u.len(), 32, "{u}");
            assert!(
                u.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
