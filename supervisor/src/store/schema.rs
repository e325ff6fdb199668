//! The tables, the schema version, the migration from the first schema, and opening a
//! connection in WAL mode with all of it in place.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::error::StoreError;
use crate::config::StorageConfig;

/// The schema this code writes and reads.
pub(super) const SCHEMA_VERSION: &str = "2";

/// Every table and index, created where missing.
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

/// Opens `path` in WAL mode with `opts`' sync mode and WAL bound, creating the tables or
/// migrating an older schema; refuses a schema it does not know.
pub(super) fn open_connection(path: &Path, opts: &StorageConfig) -> Result<Connection, StoreError> {
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
