//! Time for the service: epoch seconds derived from tokio's clock, so tests that pause tokio's
//! time (`tokio::time::pause`) move the supervisor's "now" with it.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Epoch seconds as the supervisor sees them: an anchor read once, advanced by tokio's
/// monotonic clock (never goes backwards, follows `tokio::time::advance` in tests).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch_at_anchor: f64,
    anchor: Instant,
}

impl Clock {
    /// Anchored to the system's wall clock now.
    #[must_use]
    pub fn system() -> Self {
        let epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self::starting_at(epoch)
    }

    /// Anchored so that "now" is `epoch` seconds (tests and simulations).
    #[must_use]
    pub fn starting_at(epoch: f64) -> Self {
        Self {
            epoch_at_anchor: epoch,
            anchor: Instant::now(),
        }
    }

    /// Epoch seconds now.
    #[must_use]
    pub fn now(&self) -> f64 {
        self.epoch_at_anchor + self.anchor.elapsed().as_secs_f64()
    }

    /// The tokio instant corresponding to epoch seconds `at` (clamped to the anchor).
    #[must_use]
    pub fn instant_at(&self, at: f64) -> Instant {
        let offset = (at - self.epoch_at_anchor).max(0.0);
        self.anchor + std::time::Duration::from_secs_f64(offset.min(1e9))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_paused_time() {
        let c = Clock::starting_at(1000.0);
        assert_eq!(c.now(), 1000.0);
        tokio::time::advance(std::time::Duration::from_secs(120)).await;
        assert!((c.now() - 1120.0).abs() < 1e-6);
        assert!(c.instant_at(1130.0) > Instant::now());
    }
}
