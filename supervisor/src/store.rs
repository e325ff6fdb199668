//! Durable state in SQLite (WAL). A job is one small row of fixed size (its model without the
//! lists that grow with its work) plus one row per list element in `job_items` — an iteration
//! report, a resize, a progress segment, a restart cost — appended as they come; decisions,
//! downsampled samples, held reports and nodes are rows of their own tables. A write costs the
//! same for a job's ten-thousandth report as for its first.
//!
//! rusqlite is blocking, so the connection lives on one dedicated thread fed by a bounded
//! channel. Callers [`Store::submit`] a batch of writes without awaiting (so it can be done while
//! holding the state lock, which keeps writes in the order the state changed), then await the
//! returned [`Pending`] after releasing the lock. The thread drains whatever is queued into one
//! transaction (group commit), so many small writes cost one commit.
//!
//! Durability: WAL with `synchronous = NORMAL` survives a killed process (every committed
//! transaction is in the WAL file); a power loss may lose the last transactions. Pass
//! `full_sync` for `synchronous = FULL`.
//!
//! The WAL is bounded: a second connection copies it into the database in the background
//! (passive checkpoints), and the writer itself truncates it — between two transactions, so the
//! checkpoint always completes — as soon as it passes `wal_max_bytes`, and at least every
//! `checkpoint_interval` (`PRAGMA wal_checkpoint(TRUNCATE)`; `journal_size_limit` as well).
//! History is bounded by age (`Op::Prune`) and by count per job, enforced as rows are added.
//!
//! A failed transaction (a full disk) is rolled back and reported to every writer in it; the
//! store counts failures ([`Store::generation`]) so that the in-memory side knows which of its
//! writes may be missing and writes those jobs whole again.
//!
//! For tests that pause tokio's clock, [`Store::open_inline`] runs the same statements on the
//! calling thread, so awaiting a write never lets paused time jump.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Queue depth of the database thread; past it, writes are refused (503) rather than buffered
/// without bound.
const QUEUE: usize = 65_536;
/// Most commands folded into one transaction.
const GROUP: usize = 4096;
/// Period of the background (passive) checkpoints.
const PASSIVE_EVERY: Duration = Duration::from_millis(250);

/// How the database is kept: sync mode, WAL bound, history bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreOptions {
    /// `synchronous = FULL` (survives a power loss) instead of `NORMAL`.
    pub(crate) full_sync: bool,
    /// The WAL is truncated as soon as it passes this many bytes.
    pub(crate) wal_max_bytes: u64,
    /// ... and at least this often.
    pub(crate) checkpoint_interval: Duration,
    /// Decisions and events kept per job.
    pub(crate) history_max_per_job: usize,
    /// Downsampled samples kept per job.
    pub(crate) samples_max_per_job: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            full_sync: false,
            wal_max_bytes: 16 << 20,
            checkpoint_interval: Duration::from_secs(10),
            history_max_per_job: 10_000,
            samples_max_per_job: 10_000,
        }
    }
}

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    /// The database's file system is full: nothing of the failed transaction was written.
    #[error("the database's disk is full: {0}")]
    Full(String),
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The write queue is full.
    #[error("the database write queue is full")]
    Overloaded,
    /// A write this one depends on failed (retry: it is written again).
    #[error("an earlier database write failed")]
    Earlier,
    /// The database thread is gone (shutting down).
    #[error("the database is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Self::Full(e.to_string()),
            _ => Self::Sqlite(e.to_string()),
        }
    }
}

/// One element of a job's growing lists (`list` numbers a list, `idx` its position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) list: u8,
    pub(crate) idx: u32,
    pub(crate) body: String,
}

/// One write.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Insert or replace a job's row; add (or, with `replace_items`, rewrite) its items.
    UpsertJob {
        uuid: String,
        name: String,
        framework: String,
        terminal: bool,
        /// Its lists need not be in memory (finished and cleaned up): not loaded at start.
        archived: bool,
        updated_at: f64,
        body: String,
        items: Vec<Item>,
        replace_items: bool,
    },
    /// Forget a job and everything recorded of it (retention).
    ForgetJob { uuid: String },
    /// Hold a report for a job not yet registered.
    InsertHeld {
        uuid: String,
        received_at: f64,
        body: String,
    },
    /// Forget a job's held reports (applied or expired).
    DeleteHeld { uuid: String },
    /// Expire held reports received before `before`.
    ExpireHeld { before: f64 },
    /// A decision of the control loop.
    Decision(HistoryRow),
    /// A downsampled CPU sample: `at` when it arrived (supervisor time), `client_at` the time it
    /// carried.
    Sample {
        uuid: String,
        container: String,
        at: f64,
        client_at: f64,
        cumulative_secs: f64,
    },
    /// Drop downsampled samples older than `before`, and the history of jobs that finished
    /// before it.
    Prune { before: f64 },
    /// Insert or replace a node.
    UpsertNode {
        id: String,
        updated_at: f64,
        body: String,
    },
}

/// One entry of a job's history: a decision, a resize (applied or failed), or a life-cycle
/// event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// The job.
    #[serde(skip)]
    pub uuid: String,
    /// Supervisor time, epoch seconds.
    pub at: f64,
    /// `decision`, `resize`, `resize_failed`, `event`.
    pub kind: String,
    /// The class at that moment (`ON_PLAN`, …), when a decision was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The action (`{"action": "resize", "cpus": 1.4}` …) or event details.
    pub action: serde_json::Value,
    /// Why, in one sentence with the inputs.
    pub reason: String,
    /// The figures behind it (prediction, bands, ratio, …).
    pub figures: serde_json::Value,
}

/// A job as stored: its row and, unless archived, its items.
#[derive(Debug, Default)]
pub(crate) struct LoadedJob {
    /// Finished and cleaned up: its items were not loaded.
    pub(crate) archived: bool,
    /// The row (JSON).
    pub(crate) body: String,
    /// Its items, by list then position.
    pub(crate) items: Vec<Item>,
}

/// Everything loaded at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) jobs: Vec<LoadedJob>,
    /// Held reports `(uuid, received_at, body)`, oldest first.
    pub(crate) held: Vec<(String, f64, String)>,
    /// Node bodies.
    pub(crate) nodes: Vec<String>,
}

type Reply = oneshot::Sender<Result<(), StoreError>>;

enum Cmd {
    Write(Vec<Op>, Option<Reply>),
    History {
        uuid: String,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<HistoryRow>, StoreError>>,
    },
    Items {
        uuid: String,
        reply: oneshot::Sender<Result<Vec<Item>, StoreError>>,
    },
    Load(oneshot::Sender<Result<Loaded, StoreError>>),
}

#[derive(Clone)]
enum Backend {
    Thread(mpsc::Sender<Cmd>),
    Inline(Arc<Mutex<Db>>),
}

/// Handle to the database.
#[derive(Clone)]
pub(crate) struct Store {
    backend: Backend,
    /// Transactions that failed since start (see [`Store::generation`]).
    failures: Arc<AtomicU64>,
    /// The write-ahead log's file.
    wal: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// A write on its way to the disk.
#[must_use = "await the write to know it is durable"]
pub(crate) enum Pending {
    Done(Result<(), StoreError>),
    Waiting(oneshot::Receiver<Result<(), StoreError>>),
    /// A barrier: done when what was queued before it is, failed if any write failed since
    /// it was queued (what it stands for may have been in that write).
    Barrier(Box<Pending>, u64, Arc<AtomicU64>),
}

impl Pending {
    /// Waits until the write is committed.
    pub(crate) async fn wait(self) -> Result<(), StoreError> {
        match self {
            Self::Done(r) => r,
            Self::Waiting(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
            Self::Barrier(inner, generation, failures) => {
                Box::pin(inner.wait()).await?;
                if failures.load(Ordering::Acquire) == generation {
                    Ok(())
                } else {
                    Err(StoreError::Earlier)
                }
            }
        }
    }
}

const SCHEMA_VERSION: &str = "2";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    framework TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    body TEXT NOT NULL,
    archived INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job_items (
    uuid TEXT NOT NULL,
    list INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (uuid, list, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS held_uuid ON held (uuid);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    class TEXT,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    figures TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_uuid ON history (uuid, id);
CREATE TABLE IF NOT EXISTS samples (
    uuid TEXT NOT NULL,
    container TEXT NOT NULL,
    at REAL NOT NULL,
    cumulative_secs REAL NOT NULL,
    client_at REAL
);
CREATE INDEX IF NOT EXISTS samples_uuid ON samples (uuid, at);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, updated_at REAL NOT NULL, body TEXT NOT NULL);
";

/// Schema 1 (one JSON body per job, every report in it) to 2: the new columns; job bodies of
/// schema 1 still load (their lists are in the body) and are split into rows at their next
/// write.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE jobs ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
ALTER TABLE samples ADD COLUMN client_at REAL;
UPDATE meta SET value = '2' WHERE key = 'schema_version';
";

fn open_connection(path: &Path, opts: &StoreOptions) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::Sqlite(format!(
            "cannot switch {} to WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch(if opts.full_sync {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    })?;
    // A WAL reset by any checkpoint is cut back to the bound.
    conn.execute_batch(&format!(
        "PRAGMA journal_size_limit = {};",
        opts.wal_max_bytes
    ))?;
    let version: Option<String> = {
        let tx = conn.transaction()?;
        let exists: bool = tx.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        let v = if exists {
            tx.query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()?
        } else {
            None
        };
        match v.as_deref() {
            Some("1") => {
                tx.execute_batch(MIGRATE_1_TO_2)?;
                tracing::info!(db = %path.display(), "database migrated from schema 1 to 2");
            }
            Some(SCHEMA_VERSION) | None => {}
            Some(other) => {
                return Err(StoreError::Sqlite(format!(
                    "{} has schema version {other}; this supervisor understands {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        tx.execute_batch(SCHEMA)?;
        if v.is_none() {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION],
            )?;
        }
        tx.commit()?;
        v
    };
    let _ = version;
    Ok(conn)
}

/// Which table a per-job row count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    History,
    Samples,
}

/// The connection and what the writer keeps beside it.
struct Db {
    conn: Connection,
    opts: StoreOptions,
    wal: PathBuf,
    /// When the WAL was last truncated (`None`: the writer does not truncate, inline mode).
    last_truncate: Option<Instant>,
    /// Held by the passive checkpointer while it runs: the writer does not wait behind it.
    checkpointing: Arc<Mutex<()>>,
    /// Rows per job in `history` and `samples`, counted at the first insert of this process.
    counts: HashMap<(Counted, String), usize>,
    failures: Arc<AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Db {
    /// Applies `ops` as one transaction. A failure rolls it back, is counted, and forgets the
    /// row counts (they may have counted rows that were not written).
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let result = self.try_apply(ops);
        if let Err(e) = &result {
            self.failures.fetch_add(1, Ordering::AcqRel);
            self.counts.clear();
            tracing::error!(error = %e, ops = ops.len(), "database write failed");
        }
        result.map_err(Into::into)
    }

    fn try_apply(&mut self, ops: &[Op]) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        for op in ops {
            apply_one(&tx, op, &mut self.counts, &self.opts)?;
        }
        tx.commit()
    }

    /// Truncates the WAL when it has passed its bound or the interval is over. Runs between
    /// transactions on the writer's own connection, so nothing is appended meanwhile and the
    /// checkpoint completes.
    fn bound_wal(&mut self) {
        let Some(last) = self.last_truncate else {
            return;
        };
        let size = std::fs::metadata(&self.wal).map_or(0, |m| m.len());
        let max = self.opts.wal_max_bytes;
        if size < max && (size == 0 || last.elapsed() < self.opts.checkpoint_interval) {
            return;
        }
        let checkpointing = Arc::clone(&self.checkpointing);
        // Behind a running passive checkpoint, wait only when the WAL is far past its bound;
        // otherwise try again after the next transaction.
        let _guard = if size >= max.saturating_mul(2) {
            lock(&checkpointing)
        } else {
            match checkpointing.try_lock() {
                Ok(g) => g,
                Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return,
            }
        };
        match self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
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

fn apply_one(
    tx: &rusqlite::Transaction<'_>,
    op: &Op,
    counts: &mut HashMap<(Counted, String), usize>,
    opts: &StoreOptions,
) -> Result<(), rusqlite::Error> {
    match op {
        Op::UpsertJob {
            uuid,
            name,
            framework,
            terminal,
            archived,
            updated_at,
            body,
            items,
            replace_items,
        } => {
            tx.prepare_cached(
                "INSERT INTO jobs (uuid, name, framework, terminal, archived, updated_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (uuid) DO UPDATE SET name = ?2, framework = ?3, terminal = ?4,
                   archived = ?5, updated_at = ?6, body = ?7",
            )?
            .execute(params![
                uuid, name, framework, terminal, archived, updated_at, body
            ])?;
            if *replace_items {
                tx.prepare_cached("DELETE FROM job_items WHERE uuid = ?1")?
                    .execute(params![uuid])?;
            }
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO job_items (uuid, list, idx, body) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for it in items {
                insert.execute(params![uuid, it.list, it.idx, it.body])?;
            }
        }
        Op::ForgetJob { uuid } => {
            for sql in [
                "DELETE FROM jobs WHERE uuid = ?1",
                "DELETE FROM job_items WHERE uuid = ?1",
                "DELETE FROM history WHERE uuid = ?1",
                "DELETE FROM samples WHERE uuid = ?1",
            ] {
                tx.prepare_cached(sql)?.execute(params![uuid])?;
            }
            counts.remove(&(Counted::History, uuid.clone()));
            counts.remove(&(Counted::Samples, uuid.clone()));
        }
        Op::InsertHeld {
            uuid,
            received_at,
            body,
        } => {
            tx.prepare_cached("INSERT INTO held (uuid, received_at, body) VALUES (?1, ?2, ?3)")?
                .execute(params![uuid, received_at, body])?;
        }
        Op::DeleteHeld { uuid } => {
            tx.prepare_cached("DELETE FROM held WHERE uuid = ?1")?
                .execute(params![uuid])?;
        }
        Op::ExpireHeld { before } => {
            tx.prepare_cached("DELETE FROM held WHERE received_at < ?1")?
                .execute(params![before])?;
        }
        Op::Decision(h) => {
            tx.prepare_cached(
                "INSERT INTO history (uuid, at, kind, class, action, reason, figures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                h.uuid,
                h.at,
                h.kind,
                h.class,
                h.action.to_string(),
                h.reason,
                h.figures.to_string()
            ])?;
            bound_count(
                tx,
                counts,
                Counted::History,
                &h.uuid,
                opts.history_max_per_job,
            )?;
        }
        Op::Sample {
            uuid,
            container,
            at,
            client_at,
            cumulative_secs,
        } => {
            tx.prepare_cached(
                "INSERT INTO samples (uuid, container, at, cumulative_secs, client_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![uuid, container, at, cumulative_secs, client_at])?;
            bound_count(tx, counts, Counted::Samples, uuid, opts.samples_max_per_job)?;
        }
        Op::Prune { before } => {
            tx.prepare_cached("DELETE FROM samples WHERE at < ?1")?
                .execute(params![before])?;
            tx.prepare_cached(
                "DELETE FROM history WHERE uuid IN
                   (SELECT uuid FROM jobs WHERE terminal = 1 AND updated_at < ?1)",
            )?
            .execute(params![before])?;
            // Counts of pruned rows are read again at the next insert.
            counts.clear();
        }
        Op::UpsertNode {
            id,
            updated_at,
            body,
        } => {
            tx.prepare_cached(
                "INSERT INTO nodes (id, updated_at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET updated_at = ?2, body = ?3",
            )?
            .execute(params![id, updated_at, body])?;
        }
    }
    Ok(())
}

/// Keeps at most `max` rows of `uuid` in `table` (the oldest go), deleting in batches of an
/// eighth of `max` so that the bound costs one small delete every so often.
fn bound_count(
    tx: &rusqlite::Transaction<'_>,
    counts: &mut HashMap<(Counted, String), usize>,
    table: Counted,
    uuid: &str,
    max: usize,
) -> Result<(), rusqlite::Error> {
    let key = (table, uuid.to_owned());
    let n = match counts.get_mut(&key) {
        Some(n) => {
            *n += 1;
            *n
        }
        None => {
            let sql = match table {
                Counted::History => "SELECT count(*) FROM history WHERE uuid = ?1",
                Counted::Samples => "SELECT count(*) FROM samples WHERE uuid = ?1",
            };
            let n: i64 = tx
                .prepare_cached(sql)?
                .query_row(params![uuid], |r| r.get(0))?;
            let n = usize::try_from(n).unwrap_or(0);
            counts.insert(key.clone(), n);
            n
        }
    };
    if n <= max + max / 8 {
        return Ok(());
    }
    let excess = i64::try_from(n - max).unwrap_or(i64::MAX);
    let sql = match table {
        Counted::History => {
            "DELETE FROM history WHERE id IN
               (SELECT id FROM history WHERE uuid = ?1 ORDER BY id LIMIT ?2)"
        }
        Counted::Samples => {
            "DELETE FROM samples WHERE rowid IN
               (SELECT rowid FROM samples WHERE uuid = ?1 ORDER BY at LIMIT ?2)"
        }
    };
    tx.prepare_cached(sql)?.execute(params![uuid, excess])?;
    counts.insert(key, max);
    Ok(())
}

fn load(conn: &Connection) -> Result<Loaded, rusqlite::Error> {
    let mut out = Loaded::default();
    let mut stmt = conn.prepare("SELECT uuid, archived, body FROM jobs ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let uuid: String = r.get(0)?;
        let archived: bool = r.get(1)?;
        // Items of the jobs in memory only, each read by its key range: a finished job's
        // history stays on disk, and a start costs what runs, not what ran.
        let items = if archived {
            Vec::new()
        } else {
            items(conn, &uuid)?
        };
        out.jobs.push(LoadedJob {
            archived,
            body: r.get(2)?,
            items,
        });
    }
    let mut stmt = conn.prepare("SELECT uuid, received_at, body FROM held ORDER BY id")?;
    out.held = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare("SELECT body FROM nodes ORDER BY id")?;
    out.nodes = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(out)
}

fn items(conn: &Connection, uuid: &str) -> Result<Vec<Item>, rusqlite::Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT list, idx, body FROM job_items WHERE uuid = ?1 ORDER BY list, idx",
    )?;
    let rows = stmt.query_map(params![uuid], |r| {
        Ok(Item {
            list: r.get(0)?,
            idx: r.get(1)?,
            body: r.get(2)?,
        })
    })?;
    rows.collect()
}

fn history(
    conn: &Connection,
    uuid: &str,
    limit: usize,
) -> Result<Vec<HistoryRow>, rusqlite::Error> {
    // The newest `limit` entries, returned oldest first.
    let mut stmt = conn.prepare_cached(
        "SELECT at, kind, class, action, reason, figures FROM
           (SELECT id, at, kind, class, action, reason, figures FROM history
            WHERE uuid = ?1 ORDER BY id DESC LIMIT ?2)
         ORDER BY id",
    )?;
    let rows = stmt.query_map(params![uuid, limit as i64], |r| {
        let action: String = r.get(3)?;
        let figures: String = r.get(5)?;
        Ok(HistoryRow {
            uuid: uuid.to_owned(),
            at: r.get(0)?,
            kind: r.get(1)?,
            class: r.get(2)?,
            action: serde_json::from_str(&action).unwrap_or(serde_json::Value::String(action)),
            reason: r.get(4)?,
            figures: serde_json::from_str(&figures).unwrap_or(serde_json::Value::Null),
        })
    })?;
    rows.collect()
}

fn serve(mut db: Db, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(first) = rx.blocking_recv() {
        let mut writes: Vec<Op> = Vec::new();
        let mut replies: Vec<Reply> = Vec::new();
        let mut next = Some(first);
        let mut n = 0;
        while let Some(cmd) = next.take() {
            match cmd {
                Cmd::Write(ops, reply) => {
                    writes.extend(ops);
                    replies.extend(reply);
                }
                Cmd::History { uuid, limit, reply } => {
                    // Reads see every write queued before them.
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(history(&db.conn, &uuid, limit).map_err(Into::into));
                }
                Cmd::Items { uuid, reply } => {
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(items(&db.conn, &uuid).map_err(Into::into));
                }
                Cmd::Load(reply) => {
                    flush(&mut db, &mut writes, &mut replies);
                    let _ = reply.send(load(&db.conn).map_err(Into::into));
                }
            }
            n += 1;
            if n < GROUP {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut db, &mut writes, &mut replies);
        db.bound_wal();
    }
}

fn flush(db: &mut Db, writes: &mut Vec<Op>, replies: &mut Vec<Reply>) {
    if writes.is_empty() && replies.is_empty() {
        return;
    }
    let result = db.apply(writes);
    for r in replies.drain(..) {
        let _ = r.send(result.clone());
    }
    writes.clear();
}

impl Store {
    /// Opens (creating or migrating if needed) the database at `path` on its own thread, with
    /// a background checkpointer.
    ///
    /// # Errors
    /// When the file cannot be opened, switched to WAL or has an unknown schema.
    pub(crate) fn open(path: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let conn = open_connection(path, &opts)?;
        // Checkpoints run on the writer (truncating, when due) and on their own connection
        // (passive, copying the WAL into the database in the background).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let checkpointer = open_connection(path, &opts)?;
        let failures = Arc::new(AtomicU64::new(0));
        let checkpointing = Arc::new(Mutex::new(()));
        let wal = wal_path(path);
        let db = Db {
            conn,
            opts,
            wal: wal.clone(),
            last_truncate: Some(Instant::now()),
            checkpointing: Arc::clone(&checkpointing),
            counts: HashMap::new(),
            failures: Arc::clone(&failures),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("supervisor-db".into())
            .spawn(move || {
                serve(db, rx);
                drop(alive);
            })
            .map_err(|e| StoreError::Sqlite(format!("cannot start the database thread: {e}")))?;
        std::thread::Builder::new()
            .name("supervisor-db-checkpoint".into())
            .spawn(move || {
                while watch.strong_count() > 0 {
                    std::thread::sleep(PASSIVE_EVERY);
                    let _running = lock(&checkpointing);
                    if let Err(e) =
                        checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
                let _ = checkpointer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| StoreError::Sqlite(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            backend: Backend::Thread(tx),
            failures,
            wal,
        })
    }

    /// Opens the database and runs every statement on the calling thread (tests with paused
    /// time; small embedded uses). The WAL is left to SQLite's automatic checkpoints.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub(crate) fn open_inline(path: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let conn = open_connection(path, &opts)?;
        let failures = Arc::new(AtomicU64::new(0));
        let wal = wal_path(path);
        Ok(Self {
            backend: Backend::Inline(Arc::new(Mutex::new(Db {
                conn,
                opts,
                wal: wal.clone(),
                last_truncate: None,
                checkpointing: Arc::new(Mutex::new(())),
                counts: HashMap::new(),
                failures: Arc::clone(&failures),
            }))),
            failures,
            wal,
        })
    }

    /// How many transactions have failed since start. A change means some write since the
    /// last look may be missing from the database.
    pub(crate) fn generation(&self) -> &Arc<AtomicU64> {
        &self.failures
    }

    /// The WAL's size now, bytes.
    pub(crate) fn wal_bytes(&self) -> u64 {
        std::fs::metadata(&self.wal).map_or(0, |m| m.len())
    }

    /// Queues `ops` as one transaction; never blocks. Await the result after releasing locks.
    pub(crate) fn submit(&self, ops: Vec<Op>) -> Pending {
        if ops.is_empty() {
            return Pending::Done(Ok(()));
        }
        self.send(ops)
    }

    /// A write that completes once everything queued before it is committed (or fails with
    /// it): an acknowledgement that repeats an earlier one waits for that one's write.
    pub(crate) fn barrier(&self) -> Pending {
        match &self.backend {
            Backend::Inline(_) => Pending::Done(Ok(())),
            Backend::Thread(_) => {
                let generation = self.failures.load(Ordering::Acquire);
                Pending::Barrier(
                    Box::new(self.send(Vec::new())),
                    generation,
                    Arc::clone(&self.failures),
                )
            }
        }
    }

    fn send(&self, ops: Vec<Op>) -> Pending {
        match &self.backend {
            Backend::Inline(db) => Pending::Done(lock(db).apply(&ops)),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                match tx.try_send(Cmd::Write(ops, Some(reply))) {
                    Ok(()) => Pending::Waiting(rx),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        Pending::Done(Err(StoreError::Overloaded))
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        Pending::Done(Err(StoreError::Closed))
                    }
                }
            }
        }
    }

    /// Queues `ops` without waiting for them (write-behind; errors are logged and counted).
    pub(crate) fn submit_detached(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        match &self.backend {
            Backend::Inline(db) => {
                let _ = lock(db).apply(&ops);
            }
            Backend::Thread(tx) => {
                if let Err(e) = tx.try_send(Cmd::Write(ops, None)) {
                    // Not written: what it carried must be written again.
                    self.failures.fetch_add(1, Ordering::AcqRel);
                    tracing::warn!(error = %e, "database queue refused a background write");
                }
            }
        }
    }

    /// The newest `limit` history entries of a job, oldest first.
    pub(crate) async fn history(
        &self,
        uuid: &str,
        limit: usize,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        match &self.backend {
            Backend::Inline(db) => history(&lock(db).conn, uuid, limit).map_err(Into::into),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.try_send(Cmd::History {
                    uuid: uuid.to_owned(),
                    limit,
                    reply,
                })
                .map_err(|_| StoreError::Overloaded)?;
                rx.await.unwrap_or(Err(StoreError::Closed))
            }
        }
    }

    /// A job's items (the lists of a job whose history is not in memory).
    pub(crate) async fn items(&self, uuid: &str) -> Result<Vec<Item>, StoreError> {
        match &self.backend {
            Backend::Inline(db) => items(&lock(db).conn, uuid).map_err(Into::into),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.try_send(Cmd::Items {
                    uuid: uuid.to_owned(),
                    reply,
                })
                .map_err(|_| StoreError::Overloaded)?;
                rx.await.unwrap_or(Err(StoreError::Closed))
            }
        }
    }

    /// Everything stored (finished jobs without their items).
    pub(crate) async fn load(&self) -> Result<Loaded, StoreError> {
        match &self.backend {
            Backend::Inline(db) => load(&lock(db).conn).map_err(Into::into),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Cmd::Load(reply))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                rx.await.unwrap_or(Err(StoreError::Closed))
            }
        }
    }

    /// Waits until every write queued so far is committed.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Inline(_) => Ok(()),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(Cmd::Write(Vec::new(), Some(reply)))
                    .await
                    .map_err(|_| StoreError::Closed)?;
                rx.await.unwrap_or(Err(StoreError::Closed))
            }
        }
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(uuid: &str, at: f64) -> HistoryRow {
        HistoryRow {
            uuid: uuid.into(),
            at,
            kind: "decision".into(),
            class: Some("ON_PLAN".into()),
            action: serde_json::json!({"action": "hold"}),
            reason: format!("r{at}"),
            figures: serde_json::json!({}),
        }
    }

    fn job(uuid: &str, version: u32, items: Vec<Item>, replace: bool) -> Op {
        Op::UpsertJob {
            uuid: uuid.into(),
            name: "n".into(),
            framework: "chronos".into(),
            terminal: false,
            archived: false,
            updated_at: f64::from(version),
            body: format!("{{\"v\":{version}}}"),
            items,
            replace_items: replace,
        }
    }

    fn item(list: u8, idx: u32, body: &str) -> Item {
        Item {
            list,
            idx,
            body: body.into(),
        }
    }

    #[tokio::test]
    async fn round_trip_on_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        store
            .submit(vec![
                job("u", 1, vec![item(0, 0, "a"), item(0, 1, "b")], false),
                job("u", 2, vec![item(0, 2, "c"), item(1, 0, "r")], false),
                Op::InsertHeld {
                    uuid: "h".into(),
                    received_at: 1.0,
                    body: "{}".into(),
                },
                Op::Decision(row("u", 1.0)),
                Op::Decision(row("u", 2.0)),
                Op::Decision(row("u", 3.0)),
            ])
            .wait()
            .await
            .unwrap();
        let h = store.history("u", 2).await.unwrap();
        assert_eq!(h.iter().map(|r| r.at).collect::<Vec<_>>(), [2.0, 3.0]);
        drop(store);
        let again = Store::open(&path, StoreOptions::default()).unwrap();
        let l = again.load().await.unwrap();
        assert_eq!(l.jobs.len(), 1);
        assert_eq!(l.jobs[0].body, "{\"v\":2}");
        assert_eq!(
            l.jobs[0].items,
            [
                item(0, 0, "a"),
                item(0, 1, "b"),
                item(0, 2, "c"),
                item(1, 0, "r")
            ]
        );
        assert_eq!(l.held.len(), 1);
        // A rewrite replaces every item.
        again
            .submit(vec![
                job("u", 3, vec![item(0, 0, "z")], true),
                Op::ExpireHeld { before: 5.0 },
            ])
            .wait()
            .await
            .unwrap();
        let l = again.load().await.unwrap();
        assert_eq!(l.jobs[0].items, [item(0, 0, "z")]);
        assert!(l.held.is_empty());
        // An archived job's items stay on disk, read when asked for.
        let mut archived = job("u", 4, vec![], false);
        if let Op::UpsertJob { archived: a, .. } = &mut archived {
            *a = true;
        }
        again.submit(vec![archived]).wait().await.unwrap();
        let l = again.load().await.unwrap();
        assert!(l.jobs[0].archived && l.jobs[0].items.is_empty());
        assert_eq!(again.items("u").await.unwrap(), [item(0, 0, "z")]);
        again
            .submit(vec![Op::ForgetJob { uuid: "u".into() }])
            .wait()
            .await
            .unwrap();
        assert!(again.load().await.unwrap().jobs.is_empty());
        assert!(again.items("u").await.unwrap().is_empty());
        assert!(again.history("u", 10).await.unwrap().is_empty());
    }

    #[test]
    fn refuses_an_unknown_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open_inline(&path, StoreOptions::default()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(c);
        let e = Store::open_inline(&path, StoreOptions::default()).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }

    /// A database of the first schema (one body per job, its lists in it) opens, is migrated,
    /// and its job loads with its body as it was.
    #[tokio::test]
    async fn a_schema_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '1');
             CREATE TABLE jobs (uuid TEXT PRIMARY KEY, name TEXT NOT NULL, framework TEXT NOT NULL,
               terminal INTEGER NOT NULL, updated_at REAL NOT NULL, body TEXT NOT NULL);
             INSERT INTO jobs VALUES ('u', 'n', 'chronos', 0, 1.0, '{\"old\":true}');
             CREATE TABLE held (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL,
               received_at REAL NOT NULL, body TEXT NOT NULL);
             CREATE TABLE history (id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL,
               at REAL NOT NULL, kind TEXT NOT NULL, class TEXT, action TEXT NOT NULL,
               reason TEXT NOT NULL, figures TEXT NOT NULL);
             CREATE TABLE samples (uuid TEXT NOT NULL, container TEXT NOT NULL, at REAL NOT NULL,
               cumulative_secs REAL NOT NULL);
             INSERT INTO samples VALUES ('u', 'c', 1.0, 2.0);
             CREATE TABLE nodes (id TEXT PRIMARY KEY, updated_at REAL NOT NULL, body TEXT NOT NULL);",
        )
        .unwrap();
        drop(c);
        let store = Store::open(&path, StoreOptions::default()).unwrap();
        let l = store.load().await.unwrap();
        assert_eq!(l.jobs[0].body, "{\"old\":true}");
        assert!(!l.jobs[0].archived);
        store
            .submit(vec![Op::Sample {
                uuid: "u".into(),
                container: "c".into(),
                at: 2.0,
                client_at: 1.9,
                cumulative_secs: 3.0,
            }])
            .wait()
            .await
            .unwrap();
        drop(store);
        let c = Connection::open(&path).unwrap();
        let v: String = c
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    /// Rows of one job in `history` stay within the bound, the newest kept.
    #[test]
    fn history_is_bounded_per_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let opts = StoreOptions {
            history_max_per_job: 16,
            ..StoreOptions::default()
        };
        let store = Store::open_inline(&path, opts).unwrap();
        for i in 0..100 {
            store.submit_detached(vec![
                Op::Decision(row("a", f64::from(i))),
                Op::Decision(row("b", f64::from(i))),
            ]);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        for u in ["a", "b"] {
            let h = rt.block_on(store.history(u, 1000)).unwrap();
            assert!((16..=18).contains(&h.len()), "{}", h.len());
            assert_eq!(h.last().unwrap().at, 99.0);
        }
    }

    /// Under writes that never stop, the writer truncates the WAL at its bound: it never grows
    /// past a small multiple of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_constant_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let opts = StoreOptions {
            wal_max_bytes: 256 << 10,
            ..StoreOptions::default()
        };
        let store = Store::open(&path, opts).unwrap();
        let wal = wal_path(&path);
        let mut largest = 0;
        let body = "x".repeat(300);
        for round in 0..400u32 {
            let ops = (0..20u32)
                .map(|j| {
                    job(
                        &format!("job-{j}"),
                        round,
                        vec![item(0, round, &body)],
                        false,
                    )
                })
                .collect();
            store.submit(ops).wait().await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        assert!(largest > 0);
        assert!(
            largest <= 3 * (256 << 10),
            "the WAL reached {largest} bytes with a bound of {}",
            256 << 10
        );
    }
}
