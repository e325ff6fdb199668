//! What the Marathon and Chronos emulators share: a framework registered with the cluster (its
//! id and the channel its tasks' status updates arrive on), its state behind one lock, a
//! generation counter that wakes whoever waits for a change, and the token that stops it.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::task::{TaskUpdate, UpdateSink};

/// One framework's scaffolding; each emulator derefs to its own (`Framework<MState>`, …).
pub(crate) struct Framework<S> {
    /// The cluster its tasks run on.
    pub(crate) cluster: Arc<Cluster>,
    /// The Mesos framework id, `<cluster id>-000<n>`.
    pub(crate) framework_id: String,
    state: Mutex<S>,
    /// Where the cluster sends its tasks' status updates.
    pub(crate) sink: UpdateSink,
    /// Bumped on every change; long-polls and the scheduler wait on it.
    pub(crate) generation: watch::Sender<u64>,
    /// Cancelled when the framework stops (a child of the cluster's shutdown).
    pub(crate) stop: CancellationToken,
}

impl<S> Framework<S> {
    /// Framework number `n` of `cluster`, holding `state`; also returns the receiving end of its
    /// tasks' status updates.
    pub(crate) fn new(
        cluster: &Arc<Cluster>,
        n: u8,
        state: S,
    ) -> (Self, mpsc::UnboundedReceiver<TaskUpdate>) {
        let (sink, rx) = mpsc::unbounded_channel();
        let (generation, _) = watch::channel(0);
        let framework = Self {
            framework_id: format!("{}-{n:04}", cluster.id),
            cluster: Arc::clone(cluster),
            state: Mutex::new(state),
            sink,
            generation,
            stop: cluster.shutdown_token().child_token(),
        };
        (framework, rx)
    }

    /// Stops the framework's loops.
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// The state (a poisoned lock is taken over: the state is kept consistent under it).
    pub(crate) fn lock(&self) -> MutexGuard<'_, S> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Tells every waiter that something changed.
    pub(crate) fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// The next status update of the framework's tasks; `None` once it stops (or the cluster
    /// dropped the channel).
    pub(crate) async fn next_update(
        &self,
        updates: &mut mpsc::UnboundedReceiver<TaskUpdate>,
    ) -> Option<TaskUpdate> {
        tokio::select! {
            u = updates.recv() => u,
            () = self.stop.cancelled() => None,
        }
    }

    /// Waits until the state changes (a bump after `generation` was last marked seen), `wake`
    /// passes (never without one), or the framework stops; false once it stopped.
    pub(crate) async fn wait(
        &self,
        generation: &mut watch::Receiver<u64>,
        wake: Option<Instant>,
    ) -> bool {
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = generation.changed() => r.is_ok(),
            () = sleep => true,
            () = self.stop.cancelled() => false,
        }
    }

    /// Kills a task in the background: SIGTERM, SIGKILL after `grace` (or the runtime's default).
    pub(crate) fn kill_task(&self, task_id: &str, grace: Option<Duration>) {
        let kill = self.cluster.kill(task_id, grace);
        self.cluster.spawn(kill);
    }
}
