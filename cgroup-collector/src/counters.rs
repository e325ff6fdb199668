//! Counter-reset handling: cumulative figures that never go backwards.
//!
//! A container restarted under the same id (`docker restart`, a testbed task re-run in the same
//! cgroup) starts its kernel counters again from zero. A consumer computing `now − before` would
//! then see negative CPU use. [`Monotonic`] keeps, per container, an offset equal to everything
//! accounted before each reset, so the figures it hands out only grow:
//!
//! - a **reset** is a drop of the total CPU counter: the previous raw values are added to the
//!   offsets of every field, and the reset is counted;
//! - any other field that drops on its own (never seen from the kernel, but cheap to guard) is
//!   held at its previous reported value until it catches up.
//!
//! A container that vanishes leaves only its tracker behind, in [`Departed`]: for
//! [`FORGET_AFTER_PASSES`] passes and at most [`MAX_DEPARTED`] containers (the oldest
//! departures go first), so a node where thousands of short jobs come and go keeps bounded
//! state, and one restarted under the same id still continues from its previous totals.

use std::collections::HashMap;

use serde::Serialize;

/// Passes a vanished container's counters are remembered.
pub(crate) const FORGET_AFTER_PASSES: u64 = 3_600;

/// Vanished containers remembered at most (a few hundred bytes each).
pub(crate) const MAX_DEPARTED: usize = 4_096;

/// Raw cumulative counters of one cgroup (ns and counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    /// Total CPU, ns.
    pub total_ns: u64,
    /// User CPU, ns.
    pub user_ns: u64,
    /// System CPU, ns.
    pub system_ns: u64,
    /// Throttled time, ns.
    pub throttled_ns: u64,
    /// CFS periods.
    pub nr_periods: u64,
    /// Throttled periods.
    pub nr_throttled: u64,
}

impl Counters {
    fn zip(self, o: Self, f: impl Fn(u64, u64) -> u64) -> Self {
        Self {
            total_ns: f(self.total_ns, o.total_ns),
            user_ns: f(self.user_ns, o.user_ns),
            system_ns: f(self.system_ns, o.system_ns),
            throttled_ns: f(self.throttled_ns, o.throttled_ns),
            nr_periods: f(self.nr_periods, o.nr_periods),
            nr_throttled: f(self.nr_throttled, o.nr_throttled),
        }
    }
}

/// Per-container reset tracker.
#[derive(Debug, Clone, Default)]
pub struct Monotonic {
    last_raw: Option<Counters>,
    offset: Counters,
    last_out: Counters,
    resets: u32,
}

impl Monotonic {
    /// Feed a raw reading; returns the monotonic figures and whether a reset was detected.
    pub fn observe(&mut self, raw: Counters) -> (Counters, bool) {
        let mut reset = false;
        if let Some(prev) = self.last_raw {
            if raw.total_ns < prev.total_ns {
                self.offset = self.offset.zip(prev, u64::saturating_add);
                self.resets += 1;
                reset = true;
            }
        }
        self.last_raw = Some(raw);
        let out = raw
            .zip(self.offset, u64::saturating_add)
            .zip(self.last_out, u64::max);
        self.last_out = out;
        (out, reset)
    }

    /// Resets seen so far.
    #[must_use]
    pub fn resets(&self) -> u32 {
        self.resets
    }
}

/// A container's reset tracker and the pass it was last seen in: what a source keeps of every
/// container for [`Departed`], and all [`Departed`] keeps of one that vanished.
#[derive(Debug, Clone, Default)]
pub(crate) struct Trail {
    /// Its counters made monotonic.
    pub(crate) counters: Monotonic,
    /// The pass it was last seen in.
    pub(crate) last_seen: u64,
}

/// The trails of containers that vanished, by container key; bounded in time
/// ([`FORGET_AFTER_PASSES`]) and in number (a cap, oldest out first).
#[derive(Debug, Clone)]
pub(crate) struct Departed {
    left: HashMap<String, Trail>,
    cap: usize,
}

impl Default for Departed {
    fn default() -> Self {
        Self::with_cap(MAX_DEPARTED)
    }
}

impl Departed {
    /// Remembering at most `cap` containers.
    #[must_use]
    pub(crate) fn with_cap(cap: usize) -> Self {
        Self {
            left: HashMap::new(),
            cap,
        }
    }

    /// `key` vanished, leaving `trail`.
    pub(crate) fn remember(&mut self, key: String, trail: Trail) {
        self.left.insert(key, trail);
        while self.left.len() > self.cap {
            let oldest = self
                .left
                .iter()
                .min_by_key(|(_, t)| t.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.left.remove(&k),
                None => break,
            };
        }
    }

    /// Drops from `tracked` (a `BTreeMap` or `HashMap` by container key) every container not
    /// seen in `pass`, remembering its trail, and forgets what expired.
    pub(crate) fn leave<T: AsMut<Trail>>(
        &mut self,
        pass: u64,
        retain: impl FnOnce(&mut dyn FnMut(&String, &mut T) -> bool),
    ) {
        retain(&mut |key, t| {
            let trail = t.as_mut();
            let here = trail.last_seen == pass;
            if !here {
                self.remember(key.clone(), std::mem::take(trail));
            }
            here
        });
        self.expire(pass);
    }

    /// The trail of `key`, seen in `pass`: its earlier counters if it vanished before (it is
    /// back), else fresh ones.
    pub(crate) fn arrive(&mut self, key: &str, pass: u64) -> Trail {
        Trail {
            counters: self
                .left
                .remove(key)
                .map(|t| t.counters)
                .unwrap_or_default(),
            last_seen: pass,
        }
    }

    /// Forgets what left more than [`FORGET_AFTER_PASSES`] before `pass`.
    pub(crate) fn expire(&mut self, pass: u64) {
        self.left
            .retain(|_, t| pass - t.last_seen <= FORGET_AFTER_PASSES);
    }

    /// Containers remembered.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.left.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(total: u64, user: u64) -> Counters {
        Counters {
            total_ns: total,
            user_ns: user,
            ..Counters::default()
        }
    }

    #[test]
    fn restart_continues_from_previous_total() {
        let mut m = Monotonic::default();
        assert_eq!(m.observe(c(100, 60)).0, c(100, 60));
        assert_eq!(m.observe(c(150, 90)), (c(150, 90), false));
        // Container restarted: kernel counters back near zero.
        assert_eq!(m.observe(c(10, 5)), (c(160, 95), true));
        assert_eq!(m.observe(c(40, 20)).0, c(190, 110));
        assert_eq!(m.resets(), 1);
        // A lone field dropping (total still rising) is held, not a reset.
        assert_eq!(m.observe(c(50, 10)).0, c(200, 110));
    }

    #[test]
    fn departed_containers_are_bounded_in_number_and_time() {
        let mut d = Departed::with_cap(3);
        let mut m = Monotonic::default();
        m.observe(c(100, 60));
        for (i, last_seen) in [(0, 5), (1, 1), (2, 7), (3, 6)] {
            let trail = Trail {
                counters: m.clone(),
                last_seen,
            };
            d.remember(format!("c{i}"), trail);
        }
        assert_eq!(d.len(), 3, "the oldest departure (c1) made room");
        let mut back = d.arrive("c1", 8);
        assert_eq!(back.last_seen, 8);
        assert_eq!(back.counters.observe(c(10, 5)), (c(10, 5), false));
        // Back after vanishing: continues from its previous totals.
        let mut back = d.arrive("c0", 8);
        assert_eq!(back.counters.observe(c(10, 5)), (c(110, 65), true));
        assert_eq!(d.len(), 2);
        d.expire(7 + FORGET_AFTER_PASSES);
        assert_eq!(d.len(), 1, "c3 left at pass 6 expired, c2 (pass 7) stays");
    }

    proptest! {
        #[test]
        fn outputs_never_decrease(readings in proptest::collection::vec((0u64..1_000_000, 0u64..1_000_000, 0u64..1000), 1..60)) {
            let mut m = Monotonic::default();
            let mut prev = Counters::default();
            let mut raw_growth = 0u64;
            let mut last_total = None;
            for (t, u, n) in readings {
                let raw = Counters { total_ns: t, user_ns: u, nr_throttled: n, ..Counters::default() };
                let (out, _) = m.observe(raw);
                prop_assert!(out.total_ns >= prev.total_ns && out.user_ns >= prev.user_ns && out.nr_throttled >= prev.nr_throttled);
                // The reported total grows exactly by the CPU the kernel accounted.
                raw_growth += match last_total { Some(l) if t >= l => t - l, Some(_) => t, None => t };
                last_total = Some(t);
                prop_assert_eq!(out.total_ns, raw_growth);
                prev = out;
            }
        }
    }
}
