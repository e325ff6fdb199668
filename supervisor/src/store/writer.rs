//! The database thread: it drains queued commands into one transaction (group commit) of a
//! bounded size, answers reads after the writes queued before them, and starts the WAL again
//! from its beginning between transactions once it nears its bound.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::error::StoreError;
use super::ops::{HistoryRow, Item, Op};
use super::reads::{Loaded, history, items, load};
use super::retention::{Pruning, RowBounds};
use super::writes::apply_one;
use crate::config::StorageConfig;

/// Most commands folded into one transaction, and most operations by weight ([`Op::weight`]):
/// a transaction's WAL pages stay in the WAL until it ends, so the WAL can only be kept near its
/// bound if no transaction grows without limit. A single command is never split (its writes
/// belong together).
pub(super) const GROUP: usize = 4096;

/// Where the outcome of a write is sent.
pub(super) type Reply = oneshot::Sender<Result<(), StoreError>>;

/// What the database thread is asked to do.
pub(super) enum Cmd {
    Write(Vec<Op>, Option<Reply>),
    History {
        uuid: String,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<HistoryRow>, StoreError>>,
    },
    Items {
        uuid: String,
        reports: usize,
        reply: oneshot::Sender<Result<Vec<Item>, StoreError>>,
    },
    Load(oneshot::Sender<Result<Loaded, StoreError>>),
    /// Drop downsampled samples older than `before`, and the history of jobs that finished
    /// before it (retention), a bounded number of rows a transaction, one transaction between
    /// two groups of writes; `done` is told when it is over.
    Prune {
        before: f64,
        done: Option<Reply>,
    },
    /// Truncate the WAL's file (the writes pause: everything in it is in the database).
    Truncate,
}

/// Most rows a prune deletes in one transaction, for a WAL bound of `wal_max_bytes`: a deleted
/// row dirties at most a table page and an index page (8 KiB with SQLite's 4 KiB pages), so a
/// transaction stays within a quarter of the bound (64 rows at least, 4096 at most: 512 for the
/// default 16 MiB).
pub(super) fn prune_rows(wal_max_bytes: u64) -> usize {
    usize::try_from(wal_max_bytes / (32 << 10))
        .unwrap_or(usize::MAX)
        .clamp(64, 4096)
}

/// The connection and what the writer keeps beside it.
pub(super) struct Db {
    pub(super) conn: Connection,
    opts: StorageConfig,
    wal: PathBuf,
    /// Frames in the WAL after the last commit (SQLite's WAL hook sets it), and the bytes of
    /// one; `None`: the writer does not bound the WAL (inline mode: SQLite's automatic
    /// checkpoints do).
    frames: Option<(Arc<AtomicU64>, u64)>,
    /// Held by the passive checkpointer while it runs.
    checkpointing: Arc<Mutex<()>>,
    /// Rows per job in `history` and `samples`, and their bounds.
    bounds: RowBounds,
    /// Transactions that failed since start.
    failures: Arc<AtomicU64>,
    /// The largest WAL the writer has seen after a transaction (before truncating it), bytes.
    wal_peak: Arc<AtomicU64>,
}

/// Locks `m`, whether or not a panic poisoned it (the database's state is SQLite's own).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Db {
    /// The writer of `conn`. `frames`: the frames in the WAL after each commit (set by the
    /// WAL hook of `conn`) and the bytes of one, `None` when this writer leaves the WAL to
    /// SQLite (inline mode); `checkpointing` is held by the passive checkpointer while it runs.
    pub(super) fn new(
        conn: Connection,
        opts: StorageConfig,
        wal: PathBuf,
        frames: Option<(Arc<AtomicU64>, u64)>,
        checkpointing: Arc<Mutex<()>>,
        failures: Arc<AtomicU64>,
        wal_peak: Arc<AtomicU64>,
    ) -> Self {
        Self {
            wal_peak,
            conn,
            bounds: RowBounds::new(&opts),
            opts,
            wal,
            frames,
            checkpointing,
            failures,
        }
    }

    /// Applies `ops` as one transaction. A failure rolls it back, is counted, and forgets the
    /// row counts (they may have counted rows that were not written).
    pub(super) fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let result = self.try_apply(ops);
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::AcqRel);
            self.bounds.clear();
            tracing::error!(error = %e, ops = ops.len(), "database write failed");
        }
        result.map_err(Into::into)
    }

    fn try_apply(&mut self, ops: &[Op]) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        for op in ops {
            apply_one(&tx, op, &mut self.bounds)?;
        }
        tx.commit()
    }

    /// Prunes what is older than `before` ([`Pruning`]) at once, [`prune_rows`] rows a
    /// transaction, bounding the WAL between them (inline mode; the database thread interleaves
    /// the transactions of a prune with the writes, [`serve`]).
    pub(super) fn prune(&mut self, before: f64) {
        let mut pruning = Pruning::new(before);
        while self.prune_step(&mut pruning).is_none() {
            self.bound_wal();
        }
    }

    /// One transaction of a prune under way: `None` while there is more to delete, its outcome
    /// once it is over. A failure is counted and logged as any write's, and ends the prune (the
    /// next one deletes what is left).
    pub(super) fn prune_step(&mut self, pruning: &mut Pruning) -> Option<Result<(), StoreError>> {
        let rows = prune_rows(self.opts.wal_max_bytes);
        let step = self.conn.transaction().and_then(|tx| {
            let done = pruning.step(&tx, rows, &mut self.bounds)?;
            tx.commit().map(|()| done)
        });
        match step {
            Ok(false) => None,
            Ok(true) => {
                tracing::debug!(
                    before = pruning.before(),
                    transactions = pruning.transactions(),
                    rows,
                    "pruned"
                );
                Some(Ok(()))
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::AcqRel);
                self.bounds.clear();
                tracing::error!(error = %e, before = pruning.before(), "database prune failed");
                Some(Err(e.into()))
            }
        }
    }

    /// Most bytes of writes ([`Op::bytes`]) grouped into one transaction: a quarter of the WAL's
    /// bound, so that writes queued during a stall do not make one transaction far past it.
    fn group_bytes(&self) -> usize {
        usize::try_from(self.opts.wal_max_bytes / 4).unwrap_or(usize::MAX)
    }

    /// The WAL's size now, bytes.
    fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Keeps the WAL near its bound while stalling the writes as little as it can. The
    /// background checkpointer copies the WAL into the database as it grows (passive
    /// checkpoints, beside the writes). What SQLite cannot do beside the writes is start the
    /// WAL again from its beginning: that needs every frame copied while nothing is appended.
    /// So between two transactions, once the WAL holds three quarters of its bound, the writer
    /// copies what the background has not yet (a passive checkpoint on its own connection: the
    /// frames written since the background's last pass), unless the background is copying just
    /// then (the next transaction tries again); past the bound it waits for the background's
    /// pass to end rather than grow the WAL on. The next transaction writes the WAL from its
    /// start again, in place. The file is not truncated under load: a truncated WAL is extended
    /// again page by page, which made each of these stops cost 60 ms (p50; 160 ms at most)
    /// under the soak's load instead of the few milliseconds of copying and two fsyncs; SQLite's
    /// `journal_size_limit` cuts it back to the bound should it have grown past, and it is
    /// truncated once the writes pause (`checkpoint_interval`, [`Cmd::Truncate`]).
    fn bound_wal(&mut self) {
        let Some((frames, frame_bytes)) = &self.frames else {
            return;
        };
        let size = self.wal_bytes();
        self.wal_peak.fetch_max(size, Ordering::AcqRel);
        let used = frames.load(Ordering::Acquire).saturating_mul(*frame_bytes);
        let max = self.opts.wal_max_bytes;
        if used < max / 4 * 3 {
            return;
        }
        let frames = Arc::clone(frames);
        let checkpointing = Arc::clone(&self.checkpointing);
        let waited = Instant::now();
        let _guard = if used >= max {
            let g = lock(&checkpointing);
            tracing::debug!(
                wal_bytes = used,
                waited_ms = waited.elapsed().as_secs_f64() * 1e3,
                "the WAL is past its bound: waited for the passive checkpoint"
            );
            g
        } else {
            match checkpointing.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            }
        };
        let t0 = Instant::now();
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            });
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok((log, done)) if log == done => {
                // Every frame is in the database: the next transaction starts the WAL again.
                frames.store(0, Ordering::Release);
                tracing::debug!(wal_bytes = used, log, ms, "WAL copied: it starts again");
            }
            Ok((log, done)) => tracing::warn!(
                wal_bytes = used,
                log,
                done,
                ms,
                "the WAL could not be copied whole: another process reads the database"
            ),
            Err(e) => tracing::warn!(error = %e, wal_bytes = used, "WAL checkpoint failed"),
        }
    }
}

impl Db {
    /// Truncates the WAL's file, between two transactions (the background asks, once the writes
    /// pause).
    fn truncate_wal(&mut self) {
        let checkpointing = Arc::clone(&self.checkpointing);
        let _guard = lock(&checkpointing);
        let t0 = Instant::now();
        let r = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(0) => {
                if let Some((frames, _)) = &self.frames {
                    frames.store(0, Ordering::Release);
                }
                tracing::debug!(ms, "WAL truncated: the writes pause");
            }
            Ok(_) => tracing::debug!(ms, "the WAL could not be truncated: it is being read"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }
}

/// Runs the database thread until every sender is gone: drains what is queued (at most
/// [`GROUP`] commands, or writes of that weight, or of a quarter of the WAL's bound in bytes)
/// into one transaction, then bounds the WAL. A prune under way takes one transaction of its own
/// between two such groups, so that no write waits behind more than one of its transactions.
pub(super) fn serve(mut db: Db, mut rx: mpsc::Receiver<Cmd>) {
    // The prune under way, and who waits for its end.
    let mut pruning: Option<(Pruning, Vec<Reply>)> = None;
    loop {
        let first = if pruning.is_some() {
            match rx.try_recv() {
                Ok(cmd) => Some(cmd),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(cmd) => Some(cmd),
                None => break,
            }
        };
        let mut writes: Vec<Op> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut next = first;
        let mut n = 0;
        let mut bytes = 0;
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Write(ops, reply) => {
                    n += ops.iter().map(Op::weight).sum::<usize>().max(1);
                    bytes += ops.iter().map(Op::bytes).sum::<usize>();
                    writes.extend(ops);
                    replies.extend(reply);
                }
                Cmd::History { uuid, limit, reply } => {
                    n += 1;
                    // Reads see every write queued before them.
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(history(&db.conn, &uuid, limit).map_err(Into::into));
                }
                Cmd::Items {
                    uuid,
                    reports,
                    reply,
                } => {
                    n += 1;
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(items(&db.conn, &uuid, reports).map_err(Into::into));
                }
                Cmd::Load(reply) => {
                    n += 1;
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(load(&db.conn).map_err(Into::into));
                }
                Cmd::Truncate => {
                    n += 1;
                    flush(&mut db, &mut writes, &mut replies);
                    db.truncate_wal();
                }
                Cmd::Prune { before, done } => {
                    n += 1;
                    // After the writes queued before it. A newer cut covers an older one under
                    // way: it starts again from there, and ends for both.
                    flush(&mut db, &mut writes, &mut replies);
                    let mut waiting = pruning.take().map(|(_, w)| w).unwrap_or_default();
                    waiting.extend(done);
                    pruning = Some((Pruning::new(before), waiting));
                }
            }
            if n < GROUP && bytes < db.group_bytes() {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut db, &mut writes, &mut replies);
        db.bound_wal();
        if let Some((p, waiting)) = &mut pruning {
            if let Some(outcome) = db.prune_step(p) {
                for w in waiting.drain(..) {
                    let _ = w.send(outcome.clone());
                }
                pruning = None;
            }
            db.bound_wal();
        }
    }
}

/// Commits the writes gathered so far as one transaction and tells each writer the outcome.
fn flush(db: &mut Db, writes: &mut Vec<Op>, replies: &mut Vec<Reply>) {
    if writes.is_empty() && replies.is_empty() {
        return;
    }
    // What each transaction adds to the WAL, for whoever diagnoses its size (debug level).
    let traced = tracing::enabled!(tracing::Level::DEBUG);
    let wal_before = if traced { db.wal_bytes() } else { 0 };
    let t0 = Instant::now();
    let result = db.apply(writes);
    if traced {
        tracing::debug!(
            ops = writes.len(),
            writers = replies.len(),
            wal_before,
            wal_after = db.wal_bytes(),
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "transaction"
        );
    }
    for r in replies.drain(..) {
        let _ = r.send(result.clone());
    }
    writes.clear();
}
