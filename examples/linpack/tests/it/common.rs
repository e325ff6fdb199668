//! The supervisor that linpack reports its progress to, played by testkit's recording server.

use std::time::Duration;

use testkit::wire::{Recorded, Scripted};

/// A supervisor that accepts every report (`200 {}`), recording it.
pub(crate) fn supervisor() -> Scripted {
    Scripted::blocking(|_, _| (200, "{}".to_owned()))
}

/// The `fraction` a progress report carries.
pub(crate) fn fraction(report: &Recorded) -> f64 {
    report.json()["fraction"]
        .as_f64()
        .expect("fraction is a number")
}

/// Whether a report of a fraction above `min` reaches `server` within `within`.
pub(crate) fn reported_past(server: &Scripted, min: f64, within: Duration) -> bool {
    testkit::wait::blocking(within, Duration::from_millis(5), || {
        server
            .requests()
            .iter()
            .any(|r| fraction(r) > min)
            .then_some(())
    })
    .is_some()
}
