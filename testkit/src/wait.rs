//! Waiting for a condition a test cannot be told about (a file written by another process, a
//! state reached by a server): poll it, bounded, and fail naming what was awaited and what was
//! last seen.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `every` until it returns `Ok`, and returns that; panics after `within`
/// naming `what` and the last `Err` (what was seen instead).
pub async fn until<T, E: Debug, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Fut,
) -> T
where
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

/// Polls `check` every `every` until it returns `Some`, or `None` after `within` (for a test
/// that asserts itself on what it got).
#[must_use]
pub fn blocking<T>(
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocking_returns_what_came_or_none() {
        let mut n = 0;
        let got = blocking(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Some(3));
        let never = blocking(Duration::from_millis(20), Duration::from_millis(1), || {
            None::<()>
        });
        assert_eq!(never, None);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting for the answer; last seen: \"not yet\"")]
    async fn until_names_what_it_waited_for() {
        until(
            "the answer",
            Duration::from_millis(20),
            Duration::from_millis(1),
            || async { Err::<(), _>("not yet") },
        )
        .await;
    }
}
