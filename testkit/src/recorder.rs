//! What the in-memory frameworks share: their state behind one lock, every call recorded,
//! failures queued on demand, an outage switch.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use frameworks::FrameworkError;

use crate::lock;

/// A fake's state `S` and the calls `C` it received.
#[derive(Debug)]
pub(crate) struct Recorder<S, C> {
    inner: Mutex<Books<S, C>>,
}

/// The state and the books, as one lock holds them.
#[derive(Debug)]
pub(crate) struct Books<S, C> {
    /// The fake's own state (apps, jobs, locks…).
    pub(crate) state: S,
    calls: Vec<C>,
    failures: VecDeque<FrameworkError>,
    down: bool,
}

impl<S: Default, C> Default for Recorder<S, C> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Books {
                state: S::default(),
                calls: Vec::new(),
                failures: VecDeque::new(),
                down: false,
            }),
        }
    }
}

impl<S, C: Clone> Recorder<S, C> {
    /// Records `call` (a `method` to `url`), then fails it as unreachable while down, or with
    /// the next queued failure; else hands over the state.
    pub(crate) fn enter(
        &self,
        call: C,
        method: &str,
        url: &str,
    ) -> Result<MutexGuard<'_, Books<S, C>>, FrameworkError> {
        let mut books = lock(&self.inner);
        books.calls.push(call);
        if books.down {
            return Err(crate::unreachable(method, url));
        }
        if let Some(e) = books.failures.pop_front() {
            return Err(e);
        }
        Ok(books)
    }

    /// Reads or changes the state without a call being recorded (the test's own look).
    pub(crate) fn state<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        f(&mut lock(&self.inner).state)
    }

    /// Every call so far.
    pub(crate) fn calls(&self) -> Vec<C> {
        lock(&self.inner).calls.clone()
    }

    /// The next call fails with `error` (queued; one error per call).
    pub(crate) fn fail_next(&self, error: FrameworkError) {
        lock(&self.inner).failures.push_back(error);
    }

    /// Every call fails as unreachable while `down`.
    pub(crate) fn set_down(&self, down: bool) {
        lock(&self.inner).down = down;
    }
}
