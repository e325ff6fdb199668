//! Reports to the supervisor (`/initMarathonApp`, `/endMarathonApp`) through the workspace's
//! [`SupervisorClient`], with the job's report token as bearer.
//!
//! Each report is retried with exponential backoff (0.25 s doubling to 5 s, with jitter) on
//! transient failures (connection refused, timeouts, 5xx) until a deadline; a 4xx is final. The
//! deadline is the caller's: `--report-timeout` after the event, and never later than the grace
//! deadline on the signal path — a dead supervisor never delays a checkpoint.

use std::time::Duration;

use frameworks::{ClientConfig, Credentials, FrameworkError, RetryPolicy, SupervisorClient};
use qos_core::wire::{EndMarathonApp, InitMarathonApp};
use tokio::time::Instant;

/// One job's reporter.
#[derive(Debug, Clone)]
pub struct Reporter {
    client: SupervisorClient,
    uuid: String,
}

/// How a report ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The supervisor accepted the report.
    Sent {
        /// Attempts made.
        attempts: u32,
    },
    /// Not accepted before the deadline, or refused.
    Failed(String),
}

impl Reporter {
    /// A reporter for `uuid`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(credentials: &Credentials, uuid: &str) -> Result<Self, FrameworkError> {
        // One attempt per call: this module owns the retry loop so the deadline bounds it.
        let config = ClientConfig {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            retry: RetryPolicy::none(),
            user_agent: concat!("shell-trap/", env!("CARGO_PKG_VERSION")).to_owned(),
        };
        Ok(Self {
            client: SupervisorClient::with_config(credentials, config)?,
            uuid: uuid.to_owned(),
        })
    }

    /// `POST /initMarathonApp {uuid, started_at, restored, strategy}`: whether this start
    /// resumed from a checkpoint, and the strategy the task runs with (whether a restart keeps
    /// its work) — the supervisor prices restarts with both.
    pub async fn init(
        &self,
        started_at: f64,
        restored: bool,
        strategy: &str,
        deadline: Instant,
    ) -> Outcome {
        let body = InitMarathonApp {
            uuid: self.uuid.clone(),
            started_at,
            restored: Some(restored),
            strategy: Some(strategy.to_owned()),
        };
        self.retry("initMarathonApp", deadline, || {
            self.client.init_marathon_app(&body)
        })
        .await
    }

    /// `POST /endMarathonApp {uuid, finished_at, exit_code}`.
    pub async fn end(&self, finished_at: f64, exit_code: i32, deadline: Instant) -> Outcome {
        let body = EndMarathonApp {
            uuid: self.uuid.clone(),
            finished_at,
            exit_code: Some(f64::from(exit_code)),
        };
        self.retry("endMarathonApp", deadline, || {
            self.client.end_marathon_app(&body)
        })
        .await
    }

    /// Whether the supervisor says the job was cancelled — `Some(keep_checkpoints)` — asked once,
    /// by `deadline`. `None` when it was not, or when the supervisor cannot tell in time (then
    /// the stop is taken for a restart: the work is saved).
    pub async fn cancelled(&self, deadline: Instant) -> Option<bool> {
        match tokio::time::timeout_at(deadline, self.client.job(&self.uuid)).await {
            Ok(Ok(v)) if v["state"] == "cancelled" => {
                Some(v["keep_checkpoints"].as_bool().unwrap_or(false))
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::debug!("cannot ask the supervisor whether the job was cancelled: {e}");
                None
            }
            Err(_) => {
                tracing::warn!(
                    "the supervisor did not say in time whether the job was cancelled; \
                     treating the stop as a restart"
                );
                None
            }
        }
    }

    async fn retry<F, Fut>(&self, what: &str, deadline: Instant, mut call: F) -> Outcome
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), FrameworkError>>,
    {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        };
        let mut attempts = 0u32;
        let mut last = String::from("no attempt was made before the deadline");
        loop {
            if Instant::now() >= deadline {
                break;
            }
            attempts += 1;
            match tokio::time::timeout_at(deadline, call()).await {
                Ok(Ok(())) => {
                    tracing::info!("reported /{what} ({attempts} attempt(s))");
                    return Outcome::Sent { attempts };
                }
                Ok(Err(e)) if !e.is_transient() => {
                    let msg = format!("/{what} refused: {e}");
                    tracing::error!("{msg}");
                    return Outcome::Failed(msg);
                }
                Ok(Err(e)) => {
                    if attempts == 1 {
                        tracing::warn!("/{what} failed ({e}); retrying until the deadline");
                    }
                    last = e.to_string();
                }
                Err(_) => {
                    last = "timed out".into();
                    break;
                }
            }
            let delay = policy.delay(attempts, jitter());
            if Instant::now() + delay >= deadline {
                break;
            }
            tokio::time::sleep(delay).await;
        }
        let msg = format!("/{what} not delivered after {attempts} attempt(s): {last}");
        tracing::error!("{msg}");
        Outcome::Failed(msg)
    }
}

/// A jitter in `[0, 1)` without a random-number dependency.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}
