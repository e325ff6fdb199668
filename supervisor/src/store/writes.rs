//! How each [`Op`] is written inside a transaction.

use rusqlite::{Transaction, params};

use super::ops::{HistoryRow, Item, Op};
use super::retention::{Counted, RowBounds};

/// Writes `op`; `bounds` keeps the per-job history and samples within their bounds.
pub(super) fn apply_one(
    tx: &Transaction<'_>,
    op: &Op,
    bounds: &mut RowBounds,
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
            items_from,
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
            write_items(tx, uuid, items, *replace_items)?;
            if let Some(from) = items_from {
                forget_items(tx, uuid, from)?;
            }
        }
        Op::ForgetJob { uuid } => forget_job(tx, uuid, bounds)?,
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
        Op::Decision(h) => insert_history(tx, h, bounds)?,
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
            bounds.added(tx, Counted::Samples, uuid)?;
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

/// Adds (or, with `replace`, rewrites) a job's items.
fn write_items(
    tx: &Transaction<'_>,
    uuid: &str,
    items: &[Item],
    replace: bool,
) -> Result<(), rusqlite::Error> {
    if replace {
        tx.prepare_cached("DELETE FROM job_items WHERE uuid = ?1")?
            .execute(params![uuid])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO job_items (uuid, list, idx, body) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for it in items {
        insert.execute(params![uuid, it.list, it.idx, it.body])?;
    }
    Ok(())
}

/// Deletes the rows of a job's list `l` below position `from[l]` (its oldest, forgotten).
fn forget_items(tx: &Transaction<'_>, uuid: &str, from: &[u32; 4]) -> Result<(), rusqlite::Error> {
    let mut delete =
        tx.prepare_cached("DELETE FROM job_items WHERE uuid = ?1 AND list = ?2 AND idx < ?3")?;
    for (list, &below) in (0u8..).zip(from) {
        if below > 0 {
            delete.execute(params![uuid, list, below])?;
        }
    }
    Ok(())
}

/// Deletes a job and everything recorded of it.
fn forget_job(
    tx: &Transaction<'_>,
    uuid: &str,
    bounds: &mut RowBounds,
) -> Result<(), rusqlite::Error> {
    for sql in [
        "DELETE FROM jobs WHERE uuid = ?1",
        "DELETE FROM job_items WHERE uuid = ?1",
        "DELETE FROM history WHERE uuid = ?1",
        "DELETE FROM samples WHERE uuid = ?1",
    ] {
        tx.prepare_cached(sql)?.execute(params![uuid])?;
    }
    bounds.forget(uuid);
    Ok(())
}

/// Appends one entry to a job's history.
fn insert_history(
    tx: &Transaction<'_>,
    h: &HistoryRow,
    bounds: &mut RowBounds,
) -> Result<(), rusqlite::Error> {
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
    bounds.added(tx, Counted::History, &h.uuid)
}
