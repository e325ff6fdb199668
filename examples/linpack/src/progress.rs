//! Progress reports to the supervisor: `POST <url>/api/v1/jobs/<uuid>/progress` with
//! `{"fraction": f, "at": <epoch seconds>}` (the supervisor's `ProgressReport` wire type).
//!
//! The computation only stores the latest fraction in an atomic ([`Reporter::set`]); a background
//! thread sends it at most every `interval` (when it changed) and once more at the end. A slow or dead supervisor therefore never slows the computation: requests time out
//! and later values simply replace the ones that could not be sent. The first failure is logged
//! to stderr; later ones are not.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Default interval between reports.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
/// Time limit of one report request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to report.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressConfig {
    /// Supervisor base URL (`http://host:port`, an optional path prefix allowed).
    pub url: String,
    /// The job's UUID.
    pub uuid: String,
    /// Bearer token for the job's reports, if auth is on.
    pub token: Option<String>,
    /// Minimum time between two periodic reports.
    pub interval: Duration,
}

impl ProgressConfig {
    /// Reads `QOS_SUPERVISOR_URL`, `QOS_UUID`, `QOS_REPORT_TOKEN` and `QOS_PROGRESS_INTERVAL`
    /// through `get`. Returns the configuration (if reporting is enabled) and warnings about
    /// values that were ignored.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> (Option<Self>, Vec<String>) {
        let value = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut warnings = Vec::new();
        let (url, uuid) = match (value("QOS_SUPERVISOR_URL"), value("QOS_UUID")) {
            (Some(url), Some(uuid)) => (url, uuid),
            (None, None) => return (None, warnings),
            (Some(_), None) => {
                warnings.push(
                    "QOS_SUPERVISOR_URL is set but QOS_UUID is not: not reporting progress".into(),
                );
                return (None, warnings);
            }
            (None, Some(_)) => {
                warnings.push(
                    "QOS_UUID is set but QOS_SUPERVISOR_URL is not: not reporting progress".into(),
                );
                return (None, warnings);
            }
        };
        if !url.starts_with("http://") {
            warnings.push(format!(
                "QOS_SUPERVISOR_URL must be a plain http:// URL (this build has no TLS), got \
                 {url:?}: not reporting progress"
            ));
            return (None, warnings);
        }
        let uuid_ok = uuid.len() <= 128
            && uuid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && uuid != "."
            && uuid != "..";
        if !uuid_ok {
            warnings.push(format!(
                "QOS_UUID {uuid:?} is not a job id (letters, digits, '-', '_', '.'): not \
                 reporting progress"
            ));
            return (None, warnings);
        }
        let interval = match value("QOS_PROGRESS_INTERVAL") {
            None => DEFAULT_INTERVAL,
            Some(v) => match v.parse::<f64>() {
                Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Duration::from_secs_f64(s),
                _ => {
                    warnings.push(format!(
                        "QOS_PROGRESS_INTERVAL must be a positive number of seconds, got {v:?}: \
                         using {} s",
                        DEFAULT_INTERVAL.as_secs()
                    ));
                    DEFAULT_INTERVAL
                }
            },
        };
        let config = Self {
            url,
            uuid,
            token: value("QOS_REPORT_TOKEN"),
            interval,
        };
        (Some(config), warnings)
    }

    /// The progress endpoint of the job.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!(
            "{}/api/v1/jobs/{}/progress",
            self.url.trim_end_matches('/'),
            self.uuid
        )
    }
}

struct Shared {
    /// Latest fraction, as `f64` bits (non-negative floats order like their bits).
    bits: AtomicU64,
    finishing: Mutex<bool>,
    wake: Condvar,
    /// Set once any request has failed (the failure is logged once).
    failed: AtomicBool,
}

/// The background reporter. Dropping it without [`Reporter::finish`] stops it without waiting.
pub struct Reporter {
    shared: Arc<Shared>,
    exited: Mutex<mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts the reporting thread; its first report goes out after one interval.
    #[must_use]
    pub fn start(config: ProgressConfig) -> Self {
        let shared = Arc::new(Shared {
            bits: AtomicU64::new(0.0f64.to_bits()),
            finishing: Mutex::new(false),
            wake: Condvar::new(),
            failed: AtomicBool::new(false),
        });
        let (tx, exited) = mpsc::channel();
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("progress".into())
                .spawn(move || {
                    report_loop(&config, &shared);
                    let _ = tx.send(());
                })
                .ok()
        };
        Self {
            shared,
            exited: Mutex::new(exited),
            thread,
        }
    }

    /// Records the fraction done (clamped to `[0, 1]`; never goes backwards). Cheap: one
    /// atomic operation, no I/O.
    pub fn set(&self, fraction: f64) {
        let f = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        self.shared.bits.fetch_max(f.to_bits(), Ordering::Relaxed);
    }

    /// The latest recorded fraction.
    #[must_use]
    pub fn fraction(&self) -> f64 {
        f64::from_bits(self.shared.bits.load(Ordering::Relaxed))
    }

    /// Sends the final report and waits up to `wait` for it. Returns whether the reporter
    /// finished in time (a failed request counts as finished).
    pub fn finish(mut self, wait: Duration) -> bool {
        self.signal_finish();
        let done = self
            .exited
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv_timeout(wait)
            .is_ok();
        if done && let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        done
    }

    /// Whether any report failed so far.
    #[must_use]
    pub fn had_failures(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    fn signal_finish(&self) {
        *self
            .shared
            .finishing
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.signal_finish();
    }
}

fn report_loop(config: &ProgressConfig, shared: &Shared) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(
            REQUEST_TIMEOUT.min(config.interval.max(Duration::from_secs(1))),
        ))
        .build()
        .into();
    let endpoint = config.endpoint();
    let auth = config.token.as_ref().map(|t| format!("Bearer {t}"));
    let send = |bits: u64| {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let body = serde_json::json!({ "fraction": f64::from_bits(bits), "at": at }).to_string();
        let mut request = agent.post(&endpoint).content_type("application/json");
        if let Some(auth) = &auth {
            request = request.header("Authorization", auth);
        }
        if let Err(e) = request.send(&body)
            && !shared.failed.swap(true, Ordering::Relaxed)
        {
            eprintln!(
                "linpack: progress report to {endpoint} failed: {e} (carrying on; further \
                 failures are not logged)"
            );
        }
    };
    // Nothing is sent before the first interval: a resumed run has set its fraction by then.
    let mut last = None;
    loop {
        let finishing = {
            let guard = shared
                .finishing
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (guard, _) = shared
                .wake
                .wait_timeout_while(guard, config.interval, |f| !*f)
                .unwrap_or_else(PoisonError::into_inner);
            *guard
        };
        let bits = shared.bits.load(Ordering::Relaxed);
        if finishing {
            send(bits);
            return;
        }
        if last != Some(bits) {
            send(bits);
            last = Some(bits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_from_environment() {
        let (c, w) = ProgressConfig::from_lookup(&lookup(&[]));
        assert!(c.is_none() && w.is_empty());
        let (c, w) = ProgressConfig::from_lookup(&lookup(&[
            ("QOS_SUPERVISOR_URL", "http://127.0.0.1:30000/"),
            ("QOS_UUID", "3f2a-77"),
            ("QOS_REPORT_TOKEN", "s3cret"),
            ("QOS_PROGRESS_INTERVAL", "0.5"),
        ]));
        let c = c.unwrap();
        assert!(w.is_empty());
        assert_eq!(
            c.endpoint(),
            "http://127.0.0.1:30000/api/v1/jobs/3f2a-77/progress"
        );
        assert_eq!(c.token.as_deref(), Some("s3cret"));
        assert_eq!(c.interval, Duration::from_millis(500));
        let (c, w) = ProgressConfig::from_lookup(&lookup(&[
            ("QOS_SUPERVISOR_URL", "http://h:1"),
            ("QOS_UUID", "u"),
            ("QOS_PROGRESS_INTERVAL", "-3"),
        ]));
        assert_eq!(c.unwrap().interval, DEFAULT_INTERVAL);
        assert_eq!(w.len(), 1);
        for bad in [
            vec![("QOS_SUPERVISOR_URL", "http://h:1")],
            vec![("QOS_UUID", "u")],
            vec![("QOS_SUPERVISOR_URL", "https://h:1"), ("QOS_UUID", "u")],
            vec![
                ("QOS_SUPERVISOR_URL", "http://h:1"),
                ("QOS_UUID", "../../admin"),
            ],
        ] {
            let (c, w) = ProgressConfig::from_lookup(&lookup(&bad));
            assert!(c.is_none() && w.len() == 1, "{bad:?}");
        }
    }

    #[test]
    fn set_is_monotone_and_clamped() {
        let r = Reporter::start(ProgressConfig {
            url: "http://127.0.0.1:9".into(),
            uuid: "u".into(),
            token: None,
            interval: Duration::from_secs(60),
        });
        r.set(0.5);
        r.set(0.25);
        assert_eq!(r.fraction(), 0.5);
        r.set(7.0);
        assert_eq!(r.fraction(), 1.0);
        r.set(f64::NAN);
        assert_eq!(r.fraction(), 1.0);
        // Port 9 refuses connections: finishing still returns promptly.
        assert!(r.finish(Duration::from_secs(5)));
    }
}
