//! What is read back: everything at start ([`Loaded`]), a job's items, a job's history.

use rusqlite::{Connection, params};

use super::ops::{HistoryRow, Item};

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
    /// Every job, in the order they were first written.
    pub(crate) jobs: Vec<LoadedJob>,
    /// Held reports `(uuid, received_at, body)`, oldest first.
    pub(crate) held: Vec<(String, f64, String)>,
    /// Node bodies.
    pub(crate) nodes: Vec<String>,
}

/// Everything stored, finished jobs without their items.
pub(super) fn load(conn: &Connection) -> Result<Loaded, rusqlite::Error> {
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
            items(conn, &uuid, usize::MAX)?
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

/// A job's items, by list then position: of its iteration reports (list
/// [`crate::state::REPORTS`]) only the newest `reports` (all: `usize::MAX`), of the other lists
/// every element. Each part is read by its key range: a view that answers a few reports of a job
/// that has a million reads a few rows.
pub(super) fn items(
    conn: &Connection,
    uuid: &str,
    reports: usize,
) -> Result<Vec<Item>, rusqlite::Error> {
    fn item(r: &rusqlite::Row<'_>) -> Result<Item, rusqlite::Error> {
        Ok(Item {
            list: r.get(0)?,
            idx: r.get(1)?,
            body: r.get(2)?,
        })
    }
    let list = crate::state::REPORTS;
    let mut stmt = conn.prepare_cached(
        "SELECT list, idx, body FROM job_items WHERE uuid = ?1 AND list = ?2
         ORDER BY idx DESC LIMIT ?3",
    )?;
    let limit = i64::try_from(reports).unwrap_or(i64::MAX);
    let mut out = stmt
        .query_map(params![uuid, list, limit], item)?
        .collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    let mut stmt = conn.prepare_cached(
        "SELECT list, idx, body FROM job_items WHERE uuid = ?1 AND list > ?2 ORDER BY list, idx",
    )?;
    for it in stmt.query_map(params![uuid, list], item)? {
        out.push(it?);
    }
    Ok(out)
}

/// The newest `limit` history entries of a job, oldest first.
pub(super) fn history(
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
