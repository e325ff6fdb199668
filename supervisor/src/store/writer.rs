//! The database thread: it drains queued commands into one transaction (group commit) of a
//! bounded size, answers reads after the writes queued before them, and truncates the WAL
//! between transactions.

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
    /// before it (retention), a bounded number of rows a transaction.
    Prune {
        before: f64,
    },
}

/// Most rows a prune deletes in one transaction, for a WAL bound of `wal_max_bytes`: a deleted
/// row dirties at most a table page and an index page (8 KiB with SQLite's 4 KiB pages), so a
/// transaction stays within a quarter of the bound (64 rows at least, 4096 at most: 512 for the
/// default 16 MiB).
fn prune_rows(wal_max_bytes: u64) -> usize {
    usize::try_from(wal_max_bytes / (32 << 10))
        .unwrap_or(usize::MAX)
        .clamp(64, 4096)
}

/// The connection and what the writer keeps beside it.
pub(super) struct Db {
    pub(super) conn: Connection,
    opts: StorageConfig,
    wal: PathBuf,
    /// When the WAL was last truncated (`None`: the writer does not truncate, inline mode).
    last_truncate: Option<Instant>,
    /// Held by the passive checkpointer while it runs: the writer does not wait behind it.
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
    /// The writer of `conn`. `last_truncate`: `None` when this writer never truncates the WAL
    /// (inline mode); `checkpointing` is held by the passive checkpointer while it runs.
    pub(super) fn new(
        conn: Connection,
        opts: StorageConfig,
        wal: PathBuf,
        last_truncate: Option<Instant>,
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
            last_truncate,
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

    /// Prunes what is older than `before` ([`Pruning`]), [`prune_rows`] rows a transaction,
    /// bounding the WAL between them. A failure is counted and logged as any write's, and ends
    /// the prune (the next one deletes what is left).
    pub(super) fn prune(&mut self, before: f64) {
        let rows = prune_rows(self.opts.wal_max_bytes);
        let mut pruning = Pruning::new(before);
        let mut transactions = 0u64;
        loop {
            transactions += 1;
            let step = self.conn.transaction().and_then(|tx| {
                let done = pruning.step(&tx, rows, &mut self.bounds)?;
                tx.commit().map(|()| done)
            });
            match step {
                Ok(true) => break,
                Ok(false) => self.bound_wal(),
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    self.bounds.clear();
                    tracing::error!(error = %e, before, "database prune failed");
                    break;
                }
            }
        }
        tracing::debug!(before, transactions, rows, "pruned");
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

    /// Truncates the WAL when it has passed its bound or the interval is over. Runs between
    /// transactions on the writer's own connection, so nothing is appended meanwhile and the
    /// checkpoint completes.
    fn bound_wal(&mut self) {
        let Some(last) = self.last_truncate else {
            return;
        };
        let size = self.wal_bytes();
        self.wal_peak.fetch_max(size, Ordering::AcqRel);
        let max = self.opts.wal_max_bytes;
        if size < max && (size == 0 || last.elapsed() < self.opts.checkpoint_every()) {
            return;
        }
        let checkpointing = Arc::clone(&self.checkpointing);
        // Past the bound, wait for a running passive checkpoint to end (it copies the same
        // pages the truncation would): committing on meanwhile grows the WAL by every
        // transaction for as long as it runs, and a passive checkpoint of a large WAL under
        // writes runs for hundreds of milliseconds. Only due by the interval, try again after
        // the next transaction instead.
        let waited = Instant::now();
        let _guard = if size >= max {
            let g = lock(&checkpointing);
            tracing::debug!(
                wal_bytes = size,
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
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        tracing::debug!(
            wal_bytes = size,
            ms = t0.elapsed().as_secs_f64() * 1e3,
            "WAL truncated"
        );
        match r {
            Ok(0) => self.last_truncate = Some(Instant::now()),
            Ok(_) => {
                tracing::warn!(
                    wal_bytes = size,
                    "the WAL could not be truncated: another process reads the database"
                );
                self.last_truncate = Some(Instant::now());
            }
            Err(e) => tracing::warn!(error = %e, wal_bytes = size, "WAL checkpoint failed"),
        }
    }
}

/// Runs the database thread until every sender is gone: drains what is queued (at most
/// [`GROUP`] commands, or writes of that weight, or of a quarter of the WAL's bound in bytes)
/// into one transaction, then bounds the WAL.
pub(super) fn serve(mut db: Db, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(first) = rx.blocking_recv() {
        let mut writes: Vec<Op> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut next = Some(first);
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
                Cmd::Prune { before } => {
                    n += 1;
                    // After the writes queued before it, in transactions of its own.
                    flush(&mut db, &mut writes, &mut replies);
                    db.bound_wal();
                    db.prune(before);
                }
            }
            if n < GROUP && bytes < db.group_bytes() {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut db, &mut writes, &mut replies);
        db.bound_wal();
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
