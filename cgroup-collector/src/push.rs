//! Delivery to the supervisor: batched samples with a bounded buffer and exponential backoff,
//! node registration and heartbeats.
//!
//! # Guarantees
//! - Samples are delivered oldest first, in batches of at most `max_batch`.
//! - While the supervisor is unreachable or answers 5xx/401/403/408/429, samples stay buffered
//!   and the push is retried after `base × 2ⁿ` (capped at `max`, with equal jitter). Nothing is
//!   lost while the buffer holds it; past `capacity` the **oldest** samples are dropped and
//!   counted (`qos_collector_samples_dropped_total`).
//! - A batch the supervisor rejects as invalid (other 4xx) is dropped and counted
//!   (`qos_collector_samples_rejected_total`), so one bad batch cannot block the queue.
//! - Samples carry cumulative counters that never decrease ([`crate::counters`]), so a consumer
//!   never computes negative use, even across a buffered outage.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use frameworks::{ClientConfig, Credentials, FrameworkError, RetryPolicy, SupervisorClient};
use qos_core::wire::{CpuSample, Heartbeat, NodeRegistration, SampleBatch};
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::metrics::{AgentStats, SharedSnapshot};

/// A supervisor call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// No answer (connection refused, timeout, reset).
    #[error("supervisor unreachable: {0}")]
    Unreachable(String),
    /// A non-success answer.
    #[error("supervisor answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Body (truncated).
        body: String,
    },
}

impl PushError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) => true,
            Self::Status { status, .. } => {
                *status >= 500 || matches!(status, 401 | 403 | 404 | 408 | 429)
            }
        }
    }
}

/// The supervisor API the agent uses.
#[async_trait]
pub(crate) trait SupervisorApi: Send + Sync + std::fmt::Debug {
    /// `POST /api/v1/samples`.
    async fn push_samples(&self, batch: &SampleBatch) -> Result<(), PushError>;
    /// `POST /api/v1/nodes/register`.
    async fn register(&self, reg: &NodeRegistration) -> Result<(), PushError>;
    /// `POST /api/v1/nodes/{id}/heartbeat`.
    async fn heartbeat(&self, node: &str, hb: &Heartbeat) -> Result<(), PushError>;
}

impl From<FrameworkError> for PushError {
    /// An answer with a status keeps it (so 404 on a heartbeat means "register again" and the
    /// retry rules above apply); anything else (no connection, timeout) is "unreachable".
    fn from(e: FrameworkError) -> Self {
        match e.status() {
            Some(status) => Self::Status {
                status,
                body: e.to_string(),
            },
            None => Self::Unreachable(e.to_string()),
        }
    }
}

/// The supervisor over HTTP: the workspace's one typed client, [`SupervisorClient`], built with
/// no retry of its own (the push and heartbeat loops above own backoff and buffering) and
/// `Authorization: Bearer <token>` when a token is set.
///
/// # Errors
/// [`FrameworkError`] when the URL or token is unusable.
pub(crate) fn supervisor_client(
    base: &str,
    token: Option<&str>,
    timeout: Duration,
) -> Result<SupervisorClient, FrameworkError> {
    let creds = Credentials::new(base)
        .map_err(|e| FrameworkError::invalid_input("supervisor URL", e.to_string()))?;
    let creds = match token {
        Some(t) => creds.with_bearer_token(t),
        None => creds,
    };
    SupervisorClient::with_config(
        &creds,
        ClientConfig {
            timeout,
            connect_timeout: timeout,
            retry: RetryPolicy::none(),
            user_agent: concat!("cgroup-collector/", env!("CARGO_PKG_VERSION")).to_owned(),
        },
    )
}

#[async_trait]
impl SupervisorApi for SupervisorClient {
    async fn push_samples(&self, batch: &SampleBatch) -> Result<(), PushError> {
        Ok(SupervisorClient::push_samples(self, batch).await?)
    }
    async fn register(&self, reg: &NodeRegistration) -> Result<(), PushError> {
        Ok(self.register_node(reg).await?)
    }
    async fn heartbeat(&self, node: &str, hb: &Heartbeat) -> Result<(), PushError> {
        Ok(SupervisorClient::heartbeat(self, node, hb).await?)
    }
}

/// Bounded FIFO of samples waiting for delivery (sans-IO).
#[derive(Debug)]
pub(crate) struct SampleBuffer {
    queue: VecDeque<CpuSample>,
    capacity: usize,
    /// Sequence number of the front sample: every sample ever queued has one, so a batch in
    /// flight can be consumed correctly even if the bound dropped some of it meanwhile.
    head: u64,
}

impl SampleBuffer {
    /// A buffer holding at most `capacity` samples (at least 1).
    #[must_use]
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            head: 0,
        }
    }

    /// Append; returns how many of the oldest samples were dropped to stay within the bound.
    pub(crate) fn extend(&mut self, samples: impl IntoIterator<Item = CpuSample>) -> u64 {
        let mut dropped = 0;
        for s in samples {
            if self.queue.len() == self.capacity {
                self.queue.pop_front();
                self.head += 1;
                dropped += 1;
            }
            self.queue.push_back(s);
        }
        dropped
    }

    /// A copy of the oldest `max` samples (the next batch) and the sequence number just past
    /// its last sample.
    #[must_use]
    pub(crate) fn peek(&self, max: usize) -> (Vec<CpuSample>, u64) {
        let batch: Vec<CpuSample> = self.queue.iter().take(max).cloned().collect();
        let end = self.head + batch.len() as u64;
        (batch, end)
    }

    /// Remove every sample before sequence number `end` still queued (a delivered batch).
    pub(crate) fn consume_until(&mut self, end: u64) {
        while self.head < end && self.queue.pop_front().is_some() {
            self.head += 1;
        }
    }

    /// Samples waiting.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// Exponential backoff with equal jitter (sans-IO).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Start at `base`, never exceed `max`.
    #[must_use]
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// Record a failure; the delay before the next attempt given `jitter` in `[0, 1]`.
    pub(crate) fn fail(&mut self, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        exp / 2 + exp.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// Record a success.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Push settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PushConfig {
    /// Node id sent with every batch.
    pub node: String,
    /// Buffer bound, samples.
    pub capacity: usize,
    /// Largest batch, samples.
    pub max_batch: usize,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
}

/// The buffer plus the wake-up the pass loop gives the push loop.
#[derive(Debug)]
pub(crate) struct Pusher {
    cfg: PushConfig,
    buffer: Mutex<SampleBuffer>,
    wake: Notify,
    stats: Arc<AgentStats>,
}

impl Pusher {
    /// A pusher for `cfg` that counts its sends and failures in `stats`.
    #[must_use]
    pub(crate) fn new(cfg: PushConfig, stats: Arc<AgentStats>) -> Self {
        let buffer = Mutex::new(SampleBuffer::new(cfg.capacity));
        Self {
            cfg,
            buffer,
            wake: Notify::new(),
            stats,
        }
    }

    /// Queue one pass's samples and wake the push loop.
    pub(crate) fn enqueue(&self, samples: Vec<CpuSample>) {
        let (dropped, len) = {
            let mut b = self
                .buffer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (b.extend(samples), b.len())
        };
        if dropped > 0 {
            AgentStats::add(&self.stats.samples_dropped, dropped);
            tracing::warn!(
                dropped,
                capacity = self.cfg.capacity,
                "push buffer full: oldest samples dropped"
            );
        }
        self.stats
            .samples_buffered
            .store(len as u64, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn next_batch(&self) -> (Vec<CpuSample>, u64) {
        self.buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .peek(self.cfg.max_batch)
    }

    fn delivered(&self, end: u64) {
        let mut b = self
            .buffer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        b.consume_until(end);
        self.stats
            .samples_buffered
            .store(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Deliver until the buffer is empty or a retryable failure; `Err(delay)` asks to wait.
    async fn drain(&self, api: &dyn SupervisorApi, backoff: &mut Backoff) -> Result<(), Duration> {
        loop {
            let (batch, end) = self.next_batch();
            if batch.is_empty() {
                return Ok(());
            }
            let body = SampleBatch {
                node: self.cfg.node.clone(),
                samples: batch,
            };
            match api.push_samples(&body).await {
                Ok(()) => {
                    backoff.reset();
                    AgentStats::add(&self.stats.samples_pushed, body.samples.len() as u64);
                    self.delivered(end);
                }
                Err(e) if e.is_retryable() => {
                    AgentStats::add(&self.stats.push_failures, 1);
                    let delay = backoff.fail(rand::rng().random::<f64>());
                    tracing::warn!(cause = %e, retry_in_ms = delay.as_millis() as u64, "sample push failed");
                    return Err(delay);
                }
                Err(e) => {
                    AgentStats::add(&self.stats.push_failures, 1);
                    AgentStats::add(&self.stats.samples_rejected, body.samples.len() as u64);
                    tracing::error!(cause = %e, samples = body.samples.len(), "supervisor rejected a sample batch; dropped");
                    self.delivered(end);
                }
            }
        }
    }

    /// The push loop: runs until `shutdown`, then makes one last bounded attempt to flush.
    pub(crate) async fn run(
        self: Arc<Self>,
        api: Arc<dyn SupervisorApi>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Backoff::new(self.cfg.backoff_base, self.cfg.backoff_max);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
            }
            if let Err(delay) = self.drain(api.as_ref(), &mut backoff).await {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(delay) => self.wake.notify_one(),
                }
            }
        }
        let mut once = Backoff::new(Duration::ZERO, Duration::ZERO);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.drain(api.as_ref(), &mut once)).await;
    }
}

/// Registration and heartbeat settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HeartbeatConfig {
    /// What to register.
    pub registration: NodeRegistration,
    /// Heartbeat period.
    pub every: Duration,
    /// Retry delays for registration.
    pub backoff_base: Duration,
    /// Largest retry delay.
    pub backoff_max: Duration,
}

/// Register (retrying with backoff), then heartbeat every period from the latest snapshot;
/// re-register when the supervisor says it does not know the node (404).
pub(crate) async fn heartbeat_loop(
    api: Arc<dyn SupervisorApi>,
    cfg: HeartbeatConfig,
    snapshot: SharedSnapshot,
    stats: Arc<AgentStats>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
    let mut registered = false;
    loop {
        let wait = if registered {
            let snap = snapshot.read().map(|g| Arc::clone(&g)).unwrap_or_default();
            let hb = Heartbeat {
                at: crate::collector::epoch_now(),
                free_cpus: snap.node.free_cpus,
                allocated_cpus: snap.allocated_cpus(),
                allocated_by_job: snap.allocated_by_job(),
                load1: snap.node.load1,
            };
            match api.heartbeat(&cfg.registration.id, &hb).await {
                Ok(()) => {
                    AgentStats::add(&stats.heartbeats, 1);
                    cfg.every
                }
                Err(PushError::Status { status: 404, .. }) => {
                    tracing::warn!("supervisor does not know this node; registering again");
                    registered = false;
                    Duration::ZERO
                }
                Err(e) => {
                    tracing::warn!(cause = %e, "heartbeat failed");
                    cfg.every
                }
            }
        } else {
            match api.register(&cfg.registration).await {
                Ok(()) => {
                    tracing::info!(node = %cfg.registration.id, "registered with the supervisor");
                    registered = true;
                    backoff.reset();
                    Duration::ZERO
                }
                Err(e) => {
                    let d = backoff.fail(rand::rng().random::<f64>());
                    tracing::warn!(cause = %e, retry_in_ms = d.as_millis() as u64, "node registration failed");
                    d
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(i: u32) -> CpuSample {
        CpuSample {
            uuid: None,
            container_id: "c".into(),
            name: None,
            at: f64::from(i),
            user_secs: 0.0,
            system_secs: 0.0,
            total_secs: f64::from(i),
            quota_cpus: None,
            throttled_secs: None,
        }
    }

    #[test]
    fn buffer_drops_oldest_past_bound() {
        let mut b = SampleBuffer::new(3);
        assert_eq!(b.extend((0..2).map(s)), 0);
        assert_eq!(b.extend((2..5).map(s)), 2);
        let (batch, end) = b.peek(2);
        let ats: Vec<f64> = batch.iter().map(|x| x.at).collect();
        assert_eq!((ats, end), (vec![2.0, 3.0], 4));
        // While the batch is in flight the bound drops sample 2 (and 3): only what is left of
        // the batch is consumed, nothing newer.
        assert_eq!(b.extend((5..7).map(s)), 2);
        b.consume_until(end);
        assert_eq!(
            b.peek(10).0.iter().map(|x| x.at).collect::<Vec<_>>(),
            vec![4.0, 5.0, 6.0]
        );
        b.consume_until(100);
        assert!(b.is_empty());
    }

    #[test]
    fn backoff_grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<u128> = (0..6).map(|_| b.fail(1.0).as_millis()).collect();
        assert_eq!(d, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.fail(0.0).as_millis(), 50);
    }

    #[test]
    fn retryable_statuses() {
        let st = |status| PushError::Status {
            status,
            body: String::new(),
        };
        assert!(st(503).is_retryable() && st(401).is_retryable() && st(429).is_retryable());
        assert!(!st(400).is_retryable() && !st(422).is_retryable());
        assert!(PushError::Unreachable("x".into()).is_retryable());
    }

    #[derive(Debug, Default)]
    struct Flaky {
        fail_next: Mutex<u32>,
        got: Mutex<Vec<f64>>,
    }

    #[async_trait]
    impl SupervisorApi for Flaky {
        async fn push_samples(&self, batch: &SampleBatch) -> Result<(), PushError> {
            let mut f = self.fail_next.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(PushError::Unreachable("down".into()));
            }
            self.got
                .lock()
                .unwrap()
                .extend(batch.samples.iter().map(|s| s.at));
            Ok(())
        }
        async fn register(&self, _: &NodeRegistration) -> Result<(), PushError> {
            Ok(())
        }
        async fn heartbeat(&self, _: &str, _: &Heartbeat) -> Result<(), PushError> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn outage_then_delivery_in_order_and_batches() {
        let stats = Arc::new(AgentStats::default());
        let p = Arc::new(Pusher::new(
            PushConfig {
                node: "n".into(),
                capacity: 100,
                max_batch: 4,
                backoff_base: Duration::from_millis(100),
                backoff_max: Duration::from_secs(1),
            },
            Arc::clone(&stats),
        ));
        let api = Arc::new(Flaky {
            fail_next: Mutex::new(3),
            ..Flaky::default()
        });
        let stop = CancellationToken::new();
        let task = tokio::spawn(Arc::clone(&p).run(api.clone(), stop.clone()));
        for i in 0..10 {
            p.enqueue(vec![s(i)]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        stop.cancel();
        task.await.unwrap();
        let got = api.got.lock().unwrap().clone();
        assert_eq!(got, (0..10).map(f64::from).collect::<Vec<_>>());
        assert_eq!(
            stats
                .push_failures
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
        assert_eq!(
            stats
                .samples_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
}
