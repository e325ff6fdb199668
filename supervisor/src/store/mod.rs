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
//! transaction is in the WAL file); a power loss may lose the last transactions. Set
//! `full_sync` for `synchronous = FULL`. Every bound below is a field of the
//! [`StorageConfig`] the store is opened with: the file's `[storage]` section.
//!
//! The WAL is bounded: a second connection copies it into the database in the background
//! (passive checkpoints), and the writer — between two transactions, so that the copy completes —
//! copies the rest once the WAL holds three quarters of `wal_max_bytes`, so that its next
//! transaction writes the WAL from its start again, in place (past the bound it waits for a
//! background pass under way to end first, rather than committing on meanwhile). The file is
//! truncated when the writes pause, at most every `checkpoint_interval`, and cut back to the bound
//! by `journal_size_limit`: the WAL stays within its bound and one transaction.
//! No transaction grows without limit, since its pages stay in the WAL until it ends: the writer
//! groups at most a bounded weight of writes (and at most a quarter of the WAL's bound in bytes),
//! and a retention pass forgets jobs a few dozen a
//! transaction ([`Store::forget_jobs`]), and a prune deletes a few hundred rows a transaction
//! ([`Store::prune`]), its transactions taking turns with the writes.
//! History is bounded by age ([`Store::prune`]) and by count per job, enforced as rows are added.
//!
//! A failed transaction (a full disk) is rolled back and reported to every writer in it; the
//! store counts failures ([`Store::generation`]) so that the in-memory side knows which of its
//! writes may be missing and writes those jobs whole again.
//!
//! For tests that pause tokio's clock, [`Store::open_inline`] runs the same statements on the
//! calling thread, so awaiting a write never lets paused time jump.

mod error;
mod ops;
mod reads;
mod retention;
mod schema;
mod writer;
mod writes;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::config::StorageConfig;

pub(crate) use error::StoreError;
pub use ops::HistoryRow;
pub(crate) use ops::{Item, Op};
pub(crate) use reads::Loaded;
use reads::{history, items, load};
use schema::open_connection;
use writer::{Cmd, Db, lock, serve};

/// Queue depth of the database thread; past it, writes are refused (503) rather than buffered
/// without bound.
const QUEUE: usize = 65_536;
/// Period of the background (passive) checkpoints.
const PASSIVE_EVERY: Duration = Duration::from_millis(250);

/// Where the statements run: on the database thread, or on the caller's (inline).
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
    /// The largest WAL seen after a transaction (see [`Store::wal_peak_bytes`]).
    wal_peak: Arc<AtomicU64>,
    /// Held by the passive checkpointer while it runs (tests hold it to stand for a long one).
    #[cfg(test)]
    checkpointing: Arc<Mutex<()>>,
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

impl Store {
    /// Opens (creating or migrating if needed) the database at `path` on its own thread, with
    /// a background checkpointer.
    ///
    /// # Errors
    /// When the file cannot be opened, switched to WAL or has an unknown schema.
    pub(crate) fn open(path: &Path, opts: StorageConfig) -> Result<Self, StoreError> {
        let mut conn = open_connection(path, &opts)?;
        // Checkpoints run on the writer (starting the WAL again, when near its bound) and on
        // their own connection (passive, copying the WAL into the database in the background;
        // truncating it once the writes pause).
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let page = u64::try_from(page).unwrap_or(4096);
        // After each commit, the frames now in the WAL (a frame: a page and its 24-byte header).
        let frames = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&frames);
        conn.wal_hook(Some(move |_: &mut rusqlite::hooks::Wal, pages: i32| {
            seen.store(u64::try_from(pages).unwrap_or(0), Ordering::Release);
            Ok(())
        }))?;
        let checkpointer = open_connection(path, &opts)?;
        let failures = Arc::new(AtomicU64::new(0));
        let checkpointing = Arc::new(Mutex::new(()));
        let wal = wal_path(path);
        let wal_peak = Arc::new(AtomicU64::new(0));
        let interval = opts.checkpoint_every();
        let db = Db::new(
            conn,
            opts,
            wal.clone(),
            Some((frames, page + 24)),
            Arc::clone(&checkpointing),
            Arc::clone(&failures),
            Arc::clone(&wal_peak),
        );
        #[cfg(test)]
        let held_by_tests = Arc::clone(&checkpointing);
        let (tx, rx) = mpsc::channel(QUEUE);
        let writer = tx.downgrade();
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
                let mut last_truncate = Instant::now();
                let mut last_log = -1;
                while watch.strong_count() > 0 {
                    std::thread::sleep(PASSIVE_EVERY);
                    let _running = lock(&checkpointing);
                    let t0 = Instant::now();
                    match checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                    }) {
                        Ok((log, done)) => {
                            tracing::debug!(
                                log,
                                done,
                                ms = t0.elapsed().as_secs_f64() * 1e3,
                                "passive WAL checkpoint"
                            );
                            // Nothing written since the last pass, all of it copied: the writes
                            // pause, and truncating the WAL stalls none of them. The writer
                            // truncates it, between two transactions (from this connection, a
                            // transaction of the writer's that read before it would fail).
                            if log > 0
                                && log == done
                                && log == last_log
                                && last_truncate.elapsed() >= interval
                                && let Some(writer) = writer.upgrade()
                            {
                                let _ = writer.try_send(Cmd::Truncate);
                                last_truncate = Instant::now();
                            }
                            last_log = log;
                        }
                        Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
                    }
                }
                let _ = checkpointer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| StoreError::Sqlite(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self {
            backend: Backend::Thread(tx),
            failures,
            wal,
            wal_peak,
            #[cfg(test)]
            checkpointing: held_by_tests,
        })
    }

    /// Opens the database and runs every statement on the calling thread (tests with paused
    /// time; small embedded uses). The WAL is left to SQLite's automatic checkpoints.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub(crate) fn open_inline(path: &Path, opts: StorageConfig) -> Result<Self, StoreError> {
        let conn = open_connection(path, &opts)?;
        let failures = Arc::new(AtomicU64::new(0));
        let wal = wal_path(path);
        let wal_peak = Arc::new(AtomicU64::new(0));
        let checkpointing = Arc::new(Mutex::new(()));
        Ok(Self {
            backend: Backend::Inline(Arc::new(Mutex::new(Db::new(
                conn,
                opts,
                wal.clone(),
                None,
                Arc::clone(&checkpointing),
                Arc::clone(&failures),
                Arc::clone(&wal_peak),
            )))),
            failures,
            wal,
            wal_peak,
            #[cfg(test)]
            checkpointing,
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

    /// The largest WAL the writer has seen at the end of a transaction since start (before it
    /// truncated it), bytes; 0 in inline mode, where SQLite checkpoints by itself. `/metrics`
    /// serves it: a WAL that grows past its bound between two scrapes shows here, where the
    /// size now ([`Store::wal_bytes`]) is back down by the next scrape.
    pub(crate) fn wal_peak_bytes(&self) -> u64 {
        self.wal_peak.load(Ordering::Acquire)
    }

    /// [`Store::wal_peak_bytes`], starting again from 0.
    #[cfg(test)]
    pub(crate) fn take_wal_peak(&self) -> u64 {
        self.wal_peak.swap(0, Ordering::AcqRel)
    }

    /// Queues the forgetting of `uuids` (retention) without waiting for it, a bounded number
    /// of jobs a transaction (their weight makes one [`writer::GROUP`]), so that the WAL is
    /// truncated between them rather than holding every deleted page of a large pass.
    pub(crate) fn forget_jobs(&self, uuids: &[String]) {
        for chunk in uuids.chunks(writer::GROUP / ops::FORGET_WEIGHT) {
            self.submit_detached(
                chunk
                    .iter()
                    .map(|u| Op::ForgetJob { uuid: u.clone() })
                    .collect(),
            );
        }
    }

    /// Queues the retention prune: downsampled samples older than `before`, and the history of
    /// jobs that finished before it, deleted a bounded number of rows a transaction (after every
    /// write queued before it), the WAL bounded in between; the writes queued meanwhile take
    /// their turns between two of its transactions instead of waiting for its end. A failure is
    /// logged and counted; the next prune deletes what is left. The returned write is done when
    /// the prune is (nobody needs to await it).
    pub(crate) fn prune(&self, before: f64) -> Pending {
        match &self.backend {
            Backend::Inline(db) => {
                lock(db).prune(before);
                Pending::Done(Ok(()))
            }
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                match tx.try_send(Cmd::Prune {
                    before,
                    done: Some(reply),
                }) {
                    Ok(()) => Pending::Waiting(rx),
                    Err(e) => {
                        tracing::warn!(error = %e, "database queue refused a prune");
                        Pending::Done(Err(StoreError::Overloaded))
                    }
                }
            }
        }
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

    /// A job's items (the lists of a job whose history is not in memory), of its iteration
    /// reports only the newest `reports` (all: `usize::MAX`).
    pub(crate) async fn items(&self, uuid: &str, reports: usize) -> Result<Vec<Item>, StoreError> {
        match &self.backend {
            Backend::Inline(db) => items(&lock(db).conn, uuid, reports).map_err(Into::into),
            Backend::Thread(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.try_send(Cmd::Items {
                    uuid: uuid.to_owned(),
                    reports,
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
    use rusqlite::Connection;

    use super::schema::SCHEMA_VERSION;
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
            items_from: None,
        }
    }

    fn item(list: u8, idx: u32, body: &str) -> Item {
        Item {
            list,
            idx,
            body: body.into(),
        }
    }

    /// A store on its thread in a new directory, its WAL bounded at `bound` bytes.
    fn open_with_wal_bound(bound: u64) -> (tempfile::TempDir, PathBuf, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let opts = StorageConfig {
            wal_max_bytes: bound,
            ..StorageConfig::default()
        };
        let store = Store::open(&path, opts).unwrap();
        (dir, path, store)
    }

    /// `samples` downsampled samples of each of `jobs` jobs (`job-000`, ...), at 0, 1, ..., one
    /// transaction for each time.
    async fn add_samples(store: &Store, jobs: u32, samples: u32) {
        for at in 0..samples {
            let ops = (0..jobs)
                .map(|j| Op::Sample {
                    uuid: format!("job-{j:03}"),
                    container: format!("container-of-job-{j:03}"),
                    at: f64::from(at),
                    client_at: f64::from(at),
                    cumulative_secs: f64::from(at) * 0.5,
                })
                .collect();
            store.submit(ops).wait().await.unwrap();
        }
    }

    /// Stands for a passive checkpoint that runs until told (a send on, or the drop of, the
    /// returned sender; then join the thread): returns once it is running.
    fn hold_the_checkpoint(
        store: &Store,
    ) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let mutex = Arc::clone(&store.checkpointing);
        let holder = std::thread::spawn(move || {
            let _running = lock(&mutex);
            held_tx.send(()).unwrap();
            let _ = released.recv();
        });
        held_rx.recv().unwrap();
        (release, holder)
    }

    #[tokio::test]
    async fn round_trip_on_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store = Store::open(&path, StorageConfig::default()).unwrap();
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
        let again = Store::open(&path, StorageConfig::default()).unwrap();
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
        assert_eq!(
            again.items("u", usize::MAX).await.unwrap(),
            [item(0, 0, "z")]
        );
        again
            .submit(vec![Op::ForgetJob { uuid: "u".into() }])
            .wait()
            .await
            .unwrap();
        assert!(again.load().await.unwrap().jobs.is_empty());
        assert!(again.items("u", usize::MAX).await.unwrap().is_empty());
        assert!(again.history("u", 10).await.unwrap().is_empty());
    }

    #[test]
    fn refuses_an_unknown_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(Store::open_inline(&path, StorageConfig::default()).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(c);
        let e = Store::open_inline(&path, StorageConfig::default()).unwrap_err();
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
        let store = Store::open(&path, StorageConfig::default()).unwrap();
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
        let opts = StorageConfig {
            history_max_per_job: 16,
            ..StorageConfig::default()
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

    /// A retention pass forgetting thousands of jobs at once leaves the WAL near its bound: it
    /// deletes them a bounded number at a time, the WAL truncated in between (in one
    /// transaction, 8000 jobs grew it to more than 11 times its bound).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forgetting_many_jobs_keeps_the_wal_bounded() {
        let bound = 1 << 20;
        let (_dir, path, store) = open_with_wal_bound(bound);
        let body = "x".repeat(200);
        let uuids: Vec<String> = (0..8000).map(|i| format!("job-{i:05}")).collect();
        for chunk in uuids.chunks(50) {
            let mut ops = Vec::new();
            for u in chunk {
                ops.push(job(
                    u,
                    1,
                    (0..4).map(|i| item(0, i, &body)).collect(),
                    false,
                ));
                ops.extend((0..4).map(|i| Op::Decision(row(u, f64::from(i)))));
            }
            store.submit(ops).wait().await.unwrap();
        }
        let filled = std::fs::metadata(&path).unwrap().len();
        store.take_wal_peak();
        store.forget_jobs(&uuids);
        store.sync().await.unwrap();
        assert!(store.load().await.unwrap().jobs.is_empty());
        let peak = store.take_wal_peak();
        assert!(peak > 0);
        // Truncated as soon as it is past the bound: the bound and one transaction at most.
        assert!(
            peak <= 2 * bound,
            "forgetting 8000 jobs ({filled} bytes of database) grew the WAL to {peak} bytes \
             with a bound of {bound}"
        );
    }

    /// A retention prune of many jobs' samples and of finished jobs' history leaves the WAL near
    /// its bound: it deletes a bounded number of rows a transaction, the WAL truncated in
    /// between (in one transaction, it grew the WAL to several times its bound), and deletes
    /// exactly what it did in one: every sample older than the cut, and the history of the jobs
    /// that finished before it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pruning_many_samples_keeps_the_wal_bounded() {
        let bound = 1 << 20;
        let (_dir, path, store) = open_with_wal_bound(bound);
        let (jobs, samples, decisions) = (200u32, 500u32, 100u32);
        // Even jobs finished at 1.0 (before the cut), odd ones run on.
        let mut ops = Vec::new();
        for j in 0..jobs {
            let mut op = job(&format!("job-{j:03}"), 1, vec![], false);
            if let Op::UpsertJob { terminal, .. } = &mut op {
                *terminal = j % 2 == 0;
            }
            ops.push(op);
        }
        store.submit(ops).wait().await.unwrap();
        // Samples arrive for every job in turn, as they do; half of them before the cut.
        add_samples(&store, jobs, samples).await;
        for at in 0..decisions {
            let ops = (0..jobs)
                .map(|j| Op::Decision(row(&format!("job-{j:03}"), f64::from(at))))
                .collect();
            store.submit(ops).wait().await.unwrap();
        }
        store.sync().await.unwrap();
        let cut = f64::from(samples / 2);
        store.take_wal_peak();
        store.prune(cut).wait().await.unwrap();
        let peak = store.take_wal_peak();
        let c = Connection::open(&path).unwrap();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(
            count("SELECT count(*) FROM samples WHERE at < 250"),
            0,
            "samples older than the cut are gone"
        );
        assert_eq!(
            count("SELECT count(*) FROM samples"),
            i64::from(jobs * samples / 2),
            "newer samples are kept"
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM history WHERE uuid IN \
                   (SELECT uuid FROM jobs WHERE terminal = 1)"
            ),
            0,
            "the history of jobs finished before the cut is gone"
        );
        assert_eq!(
            count("SELECT count(*) FROM history"),
            i64::from(jobs / 2 * decisions),
            "the history of running jobs is kept"
        );
        assert!(peak > 0);
        // Truncated as soon as it is past the bound: the bound and one transaction at most.
        assert!(
            peak <= 2 * bound,
            "pruning {} samples and {} decisions grew the WAL to {peak} bytes with a bound of \
             {bound}",
            jobs * samples / 2,
            jobs / 2 * decisions
        );
    }

    /// Writes go on while a prune runs: its transactions take turns with them, so a write queued
    /// behind a prune of 40,000 samples (64 rows a transaction here) is committed while nearly
    /// all of them are still there. It used to wait for the whole pass (the prune held the
    /// writer from its first transaction to its last). A trigger notes the samples left when
    /// the write's transaction ran.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_take_turns_with_a_prune() {
        let (_dir, path, store) = open_with_wal_bound(1 << 20);
        let rows = i64::try_from(writer::prune_rows(1 << 20)).unwrap();
        let (jobs, samples) = (200u32, 200u32);
        add_samples(&store, jobs, samples).await;
        let total = i64::from(jobs * samples);
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE probe (samples_left INTEGER NOT NULL);
             CREATE TRIGGER probe_job AFTER INSERT ON jobs
               BEGIN INSERT INTO probe SELECT count(*) FROM samples; END;",
        )
        .unwrap();
        let pruned = store.prune(f64::from(samples));
        store
            .submit(vec![job("late", 1, vec![], false)])
            .wait()
            .await
            .unwrap();
        pruned.wait().await.unwrap();
        let count = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM samples"), 0, "the prune ended");
        let left = count("SELECT samples_left FROM probe");
        assert!(
            left >= total - 2 * rows,
            "the write queued behind the prune was committed with {left} of {total} samples \
             left: it waited for more than two of the prune's transactions of {rows} rows"
        );
    }

    /// A passive checkpoint that runs long (held here) while the WAL passes its bound does not
    /// let the writer go on growing it: the writer waits for it and truncates, so the WAL ends
    /// at its bound and one transaction. (It used to wait only past twice the bound, committing
    /// on meanwhile: the soak's WAL peaked at 35 MB against 16 MiB, the passive checkpoint of a
    /// large WAL taking 100–430 ms while forget transactions added 2.2 MB each.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_waits_for_a_long_passive_checkpoint_past_the_bound() {
        let bound: u64 = 256 << 10;
        let (_dir, _path, store) = open_with_wal_bound(bound);
        let body = "x".repeat(2000);
        let write = |round: u32| {
            store.submit(
                (0..8u32)
                    .map(|j| {
                        job(
                            &format!("job-{round}-{j}"),
                            round,
                            vec![item(0, 0, &body)],
                            false,
                        )
                    })
                    .collect(),
            )
        };
        // A passive checkpoint that does not end until the writer is seen waiting for it (a
        // write not answered for a while) or the WAL is four times past its bound.
        let (release, holder) = hold_the_checkpoint(&store);
        store.take_wal_peak();
        let mut growth = 0;
        let mut holding = true;
        for round in 0..400u32 {
            let before = store.wal_bytes();
            let mut pending = Box::pin(write(round).wait());
            if holding {
                match tokio::time::timeout(Duration::from_millis(300), &mut pending).await {
                    Ok(r) => r.unwrap(),
                    Err(_) => {
                        // The writer waits behind the checkpoint: let it end.
                        holding = false;
                        release.send(()).unwrap();
                        pending.await.unwrap();
                    }
                }
            } else {
                pending.await.unwrap();
            }
            growth = growth.max(store.wal_bytes().saturating_sub(before));
            if holding && store.wal_bytes() > 4 * bound {
                holding = false;
                release.send(()).unwrap();
            }
        }
        drop(release);
        holder.join().unwrap();
        let peak = store.take_wal_peak();
        assert!(growth > 0 && peak > bound, "growth {growth}, peak {peak}");
        assert!(
            peak <= bound + 2 * growth,
            "with a passive checkpoint running, the WAL reached {peak} bytes; bound {bound}, \
             largest transaction {growth}"
        );
    }

    /// Writes queued while the writer is stalled (here behind a passive checkpoint, past the
    /// bound) are grouped into transactions of a bounded size in bytes, not only in count: 64
    /// writes of 64 KiB each made one 4 MiB transaction against a 256 KiB bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_queued_in_a_stall_are_grouped_within_a_size() {
        let bound: u64 = 256 << 10;
        let (_dir, _path, store) = open_with_wal_bound(bound);
        let (release, holder) = hold_the_checkpoint(&store);
        let big = "x".repeat(64 << 10);
        // Past the bound: the writer answers, then waits for the (held) checkpoint before it
        // takes anything else from its queue.
        let mut round = 0;
        while store.wal_bytes() < bound {
            store
                .submit(vec![job(
                    &format!("fill-{round}"),
                    1,
                    vec![item(0, 0, &big)],
                    false,
                )])
                .wait()
                .await
                .unwrap();
            round += 1;
        }
        let queued: Vec<Pending> = (0..64)
            .map(|j| {
                store.submit(vec![job(
                    &format!("job-{j}"),
                    1,
                    vec![item(0, 0, &big)],
                    false,
                )])
            })
            .collect();
        store.take_wal_peak();
        release.send(()).unwrap();
        for p in queued {
            p.wait().await.unwrap();
        }
        holder.join().unwrap();
        let peak = store.take_wal_peak();
        assert!(
            peak <= 2 * bound,
            "64 writes of 64 KiB queued in a stall grew the WAL to {peak} bytes; bound {bound}"
        );
    }

    /// Under writes that never stop, the writer truncates the WAL at its bound: it never grows
    /// past a small multiple of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_under_constant_writes() {
        let (_dir, path, store) = open_with_wal_bound(256 << 10);
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
