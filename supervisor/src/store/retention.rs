//! What bounds the history: rows per job in `history` and `samples` kept under a count as they
//! are added, and rows older than the retention pruned.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use crate::config::StorageConfig;

/// Which table a per-job row count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Counted {
    History,
    Samples,
}

/// The per-job bounds of `history` and `samples`, with the rows each job has there, counted at
/// its first insert of this process and kept up to date as rows are added.
pub(super) struct RowBounds {
    counts: HashMap<(Counted, String), usize>,
    history_max: usize,
    samples_max: usize,
}

impl RowBounds {
    pub(super) fn new(opts: &StorageConfig) -> Self {
        Self {
            counts: HashMap::new(),
            history_max: opts.history_max_per_job,
            samples_max: opts.samples_max_per_job,
        }
    }

    /// Forgets every count: they are read again at the next insert (after a failed transaction
    /// that may have counted rows it did not write, or a prune).
    pub(super) fn clear(&mut self) {
        self.counts.clear();
    }

    /// Forgets the counts of a job whose rows were deleted.
    pub(super) fn forget(&mut self, uuid: &str) {
        self.counts.remove(&(Counted::History, uuid.to_owned()));
        self.counts.remove(&(Counted::Samples, uuid.to_owned()));
    }

    /// A row of `uuid` was added to `table`: keeps at most the table's bound of them (the
    /// oldest go), deleting in batches of an eighth of the bound so that it costs one small
    /// delete every so often.
    pub(super) fn added(
        &mut self,
        tx: &Transaction<'_>,
        table: Counted,
        uuid: &str,
    ) -> Result<(), rusqlite::Error> {
        let max = match table {
            Counted::History => self.history_max,
            Counted::Samples => self.samples_max,
        };
        let key = (table, uuid.to_owned());
        let n = match self.counts.get_mut(&key) {
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
                self.counts.insert(key.clone(), n);
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
        self.counts.insert(key, max);
        Ok(())
    }
}

/// Drops downsampled samples older than `before`, and the history of jobs that finished before
/// it.
pub(super) fn prune(
    tx: &Transaction<'_>,
    before: f64,
    bounds: &mut RowBounds,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("DELETE FROM samples WHERE at < ?1")?
        .execute(params![before])?;
    tx.prepare_cached(
        "DELETE FROM history WHERE uuid IN
           (SELECT uuid FROM jobs WHERE terminal = 1 AND updated_at < ?1)",
    )?
    .execute(params![before])?;
    // Counts of pruned rows are read again at the next insert.
    bounds.clear();
    Ok(())
}
