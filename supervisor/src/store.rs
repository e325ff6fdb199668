//! Durable state in SQLite (WAL): jobs (the serialized `qos_core::Job` plus the supervisor's
//! bookkeeping), held reports, decisions, resizes, downsampled samples and nodes.
//!
//! rusqlite is blocking, so the connection lives on one dedicated thread fed by a bounded
//! channel. Callers [`Store::submit`] a batch of writes without awaiting (so it can be done while
//! holding the state lock, which keeps writes in the order the state changed), then await the
//! returned [`Pending`] after releasing the lock. The thread drains whatever is queued into one
//! transaction (group commit), so many small writes cost one commit.
//!
//! Durability: WAL with `synchronous = NORMAL` survives a killed process (every committed
//! transaction is in the WAL file); a power loss may lose the last transactions. Pass
//! `synchronous = FULL` through [`Store::open`]'s `full_sync` for that.
//!
//! For tests that pause tokio's clock, [`Store::open_inline`] runs the same statements on the
//! calling thread, so awaiting a write never lets paused time jump.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Queue depth of the database thread; past it, writes are refused (503) rather than buffered
/// without bound.
const QUEUE: usize = 65_536;
/// Most commands folded into one transaction.
const GROUP: usize = 4096;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum StoreError {
    /// SQLite said no.
    #[error("database error: {0}")]
    Sqlite(String),
    /// The write queue is full.
    #[error("the database write queue is full")]
    Overloaded,
    /// The database thread is gone (shutting down).
    #[error("the database is closed")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e.to_string())
    }
}

/// One write.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Insert or replace a job.
    UpsertJob {
        uuid: String,
        name: String,
        framework: String,
        terminal: bool,
        updated_at: f64,
        body: String,
    },
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
    /// A downsampled CPU sample.
    Sample {
        uuid: String,
        container: String,
        at: f64,
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

/// Everything loaded at start.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    /// Job bodies (JSON of `state::PersistedJob`).
    pub(crate) jobs: Vec<String>,
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
    Load(oneshot::Sender<Result<Loaded, StoreError>>),
}

#[derive(Clone)]
enum Backend {
    Thread(mpsc::Sender<Cmd>),
    Inline(Arc<Mutex<Connection>>),
}

/// Handle to the database.
#[derive(Clone)]
pub(crate) struct Store {
    backend: Backend,
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
}

impl Pending {
    /// Waits until the write is committed.
    pub(crate) async fn wait(self) -> Result<(), StoreError> {
        match self {
            Self::Done(r) => r,
            Self::Waiting(rx) => rx.await.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

fn open_connection(path: &Path, full_sync: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::Sqlite(format!(
            "cannot switch {} to WAL (journal_mode is {mode})",
            path.display()
        )));
    }
    conn.execute_batch(if full_sync {
        "PRAGMA synchronous = FULL;"
    } else {
        "PRAGMA synchronous = NORMAL;"
    })?;
    conn.execute_batch(SCHEMA)?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match version.as_deref() {
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                params![SCHEMA_VERSION],
            )?;
        }
        Some(SCHEMA_VERSION) => {}
        Some(other) => {
            return Err(StoreError::Sqlite(format!(
                "{} has schema version {other}; this supervisor understands {SCHEMA_VERSION}",
                path.display()
            )));
        }
    }
    Ok(conn)
}

const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    uuid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    framework TEXT NOT NULL,
    terminal INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    body TEXT NOT NULL
);
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
    cumulative_secs REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS samples_uuid ON samples (uuid, at);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, updated_at REAL NOT NULL, body TEXT NOT NULL);
";

fn apply(conn: &mut Connection, ops: &[Op]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    for op in ops {
        apply_one(&tx, op)?;
    }
    tx.commit()
}

fn apply_one(tx: &rusqlite::Transaction<'_>, op: &Op) -> Result<(), rusqlite::Error> {
    match op {
        Op::UpsertJob {
            uuid,
            name,
            framework,
            terminal,
            updated_at,
            body,
        } => {
            tx.prepare_cached(
                "INSERT INTO jobs (uuid, name, framework, terminal, updated_at, body)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (uuid) DO UPDATE SET name = ?2, framework = ?3, terminal = ?4,
                   updated_at = ?5, body = ?6",
            )?
            .execute(params![uuid, name, framework, terminal, updated_at, body])?;
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
        }
        Op::Sample {
            uuid,
            container,
            at,
            cumulative_secs,
        } => {
            tx.prepare_cached(
                "INSERT INTO samples (uuid, container, at, cumulative_secs) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![uuid, container, at, cumulative_secs])?;
        }
        Op::Prune { before } => {
            tx.prepare_cached("DELETE FROM samples WHERE at < ?1")?
                .execute(params![before])?;
            tx.prepare_cached(
                "DELETE FROM history WHERE uuid IN
                   (SELECT uuid FROM jobs WHERE terminal = 1 AND updated_at < ?1)",
            )?
            .execute(params![before])?;
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

fn load(conn: &Connection) -> Result<Loaded, rusqlite::Error> {
    let mut out = Loaded::default();
    let mut stmt = conn.prepare("SELECT body FROM jobs ORDER BY rowid")?;
    out.jobs = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
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

fn serve(mut conn: Connection, mut rx: mpsc::Receiver<Cmd>) {
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
                    flush(&mut conn, &mut writes, &mut replies);
                    let _ = reply.send(history(&conn, &uuid, limit).map_err(Into::into));
                }
                Cmd::Load(reply) => {
                    flush(&mut conn, &mut writes, &mut replies);
                    let _ = reply.send(load(&conn).map_err(Into::into));
                }
            }
            n += 1;
            if n < GROUP {
                next = rx.try_recv().ok();
            }
        }
        flush(&mut conn, &mut writes, &mut replies);
    }
}

fn flush(conn: &mut Connection, writes: &mut Vec<Op>, replies: &mut Vec<Reply>) {
    if writes.is_empty() && replies.is_empty() {
        return;
    }
    let result = apply(conn, writes).map_err(StoreError::from);
    if let Err(e) = &result {
        tracing::error!(error = %e, ops = writes.len(), "database write failed");
    }
    for r in replies.drain(..) {
        let _ = r.send(result.clone());
    }
    writes.clear();
}

fn lock(conn: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens (creating if needed) the database at `path` on its own thread.
    ///
    /// # Errors
    /// When the file cannot be opened, switched to WAL or has an unknown schema.
    pub(crate) fn open(path: &Path, full_sync: bool) -> Result<Self, StoreError> {
        let conn = open_connection(path, full_sync)?;
        // Checkpoints (copying the WAL into the database, with an fsync) run on their own
        // connection and thread, so a write never waits behind one.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let checkpointer = open_connection(path, full_sync)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        std::thread::Builder::new()
            .name("supervisor-db".into())
            .spawn(move || {
                serve(conn, rx);
                drop(alive);
            })
            .map_err(|e| StoreError::Sqlite(format!("cannot start the database thread: {e}")))?;
        std::thread::Builder::new()
            .name("supervisor-db-checkpoint".into())
            .spawn(move || {
                while watch.strong_count() > 0 {
                    std::thread::sleep(std::time::Duration::from_millis(500));
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
        })
    }

    /// Opens the database and runs every statement on the calling thread (tests with paused
    /// time; small embedded uses).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub(crate) fn open_inline(path: &Path) -> Result<Self, StoreError> {
        let conn = open_connection(path, false)?;
        Ok(Self {
            backend: Backend::Inline(Arc::new(Mutex::new(conn))),
        })
    }

    /// Queues `ops` as one transaction; never blocks. Await the result after releasing locks.
    pub(crate) fn submit(&self, ops: Vec<Op>) -> Pending {
        if ops.is_empty() {
            return Pending::Done(Ok(()));
        }
        match &self.backend {
            Backend::Inline(conn) => {
                let mut c = lock(conn);
                Pending::Done(apply(&mut c, &ops).map_err(Into::into))
            }
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

    /// Queues `ops` without waiting for them (write-behind; errors are logged).
    pub(crate) fn submit_detached(&self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        match &self.backend {
            Backend::Inline(conn) => {
                let mut c = lock(conn);
                if let Err(e) = apply(&mut c, &ops) {
                    tracing::error!(error = %e, "database write failed");
                }
            }
            Backend::Thread(tx) => {
                if let Err(e) = tx.try_send(Cmd::Write(ops, None)) {
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
            Backend::Inline(conn) => {
                let c = lock(conn);
                history(&c, uuid, limit).map_err(Into::into)
            }
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

    /// Everything stored.
    pub(crate) async fn load(&self) -> Result<Loaded, StoreError> {
        match &self.backend {
            Backend::Inline(conn) => {
                let c = lock(conn);
                load(&c).map_err(Into::into)
            }
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

    #[tokio::test]
    async fn round_trip_on_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, false).unwrap();
        store
            .submit(vec![
                Op::UpsertJob {
                    uuid: "u".into(),
                    name: "n".into(),
                    framework: "chronos".into(),
                    terminal: false,
                    updated_at: 1.0,
                    body: "{\"v\":1}".into(),
                },
                Op::UpsertJob {
                    uuid: "u".into(),
                    name: "n".into(),
                    framework: "chronos".into(),
                    terminal: false,
                    updated_at: 2.0,
                    body: "{\"v\":2}".into(),
                },
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
        let again = Store::open(&path, false).unwrap();
        let l = again.load().await.unwrap();
        assert_eq!(l.jobs, ["{\"v\":2}"]);
        assert_eq!(l.held.len(), 1);
        again
            .submit(vec![Op::ExpireHeld { before: 5.0 }])
            .wait()
            .await
            .unwrap();
        assert!(again.load().await.unwrap().held.is_empty());
    }

    #[test]
    fn refuses_an_unknown_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open_inline(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(c);
        let e = Store::open_inline(&path).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }
}
