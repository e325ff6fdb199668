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

/// A retention prune under way: downsampled samples older than `before`, and the history of
/// jobs that finished before it, deleted a bounded number of rows a transaction ([`Pruning::step`])
/// so that the WAL can be truncated between them and writes go on meanwhile. What they write
/// meanwhile is not touched: samples taken since are newer than the cut, and of the history
/// only the rows that were there when the finished jobs were read are deleted.
pub(super) struct Pruning {
    before: f64,
    /// Samples are deleted in rowid order: the last rowid looked at (`None` once all are gone).
    samples_after: Option<i64>,
    /// The jobs whose history is still to delete, and the newest history row when they were
    /// read (at the first step that reaches them).
    finished: Option<(Vec<String>, i64)>,
    /// Transactions so far.
    transactions: u64,
}

impl Pruning {
    pub(super) fn new(before: f64) -> Self {
        Self {
            before,
            samples_after: Some(i64::MIN),
            finished: None,
            transactions: 0,
        }
    }

    /// The cut: what is older goes.
    pub(super) fn before(&self) -> f64 {
        self.before
    }

    /// The transactions it has taken so far.
    pub(super) fn transactions(&self) -> u64 {
        self.transactions
    }

    /// Deletes at most `rows` rows in `tx`; `true` once nothing is left to delete.
    pub(super) fn step(
        &mut self,
        tx: &Transaction<'_>,
        rows: usize,
        bounds: &mut RowBounds,
    ) -> Result<bool, rusqlite::Error> {
        self.transactions += 1;
        // Counts of pruned rows are read again at the next insert.
        bounds.clear();
        let limit = i64::try_from(rows.max(1)).unwrap_or(i64::MAX);
        let mut left = limit;
        if let Some(after) = self.samples_after {
            let last: Option<i64> = tx
                .prepare_cached(
                    "SELECT max(rowid) FROM (SELECT rowid FROM samples
                       WHERE rowid > ?1 AND at < ?2 ORDER BY rowid LIMIT ?3)",
                )?
                .query_row(params![after, self.before, left], |r| r.get(0))?;
            match last {
                None => self.samples_after = None,
                Some(last) => {
                    let n = tx
                        .prepare_cached(
                            "DELETE FROM samples WHERE rowid > ?1 AND rowid <= ?2 AND at < ?3",
                        )?
                        .execute(params![after, last, self.before])?;
                    let n = i64::try_from(n).unwrap_or(i64::MAX);
                    if n >= left {
                        // Perhaps more.
                        self.samples_after = Some(last);
                        return Ok(false);
                    }
                    self.samples_after = None;
                    left -= n;
                }
            }
        }
        let (finished, upto) = match &mut self.finished {
            Some((f, upto)) => (f, *upto),
            None => {
                let uuids = tx
                    .prepare_cached("SELECT uuid FROM jobs WHERE terminal = 1 AND updated_at < ?1")?
                    .query_map(params![self.before], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                let upto: i64 = tx
                    .prepare_cached("SELECT coalesce(max(id), 0) FROM history")?
                    .query_row([], |r| r.get(0))?;
                let (f, upto) = self.finished.insert((uuids, upto));
                (f, *upto)
            }
        };
        let mut delete = tx.prepare_cached(
            "DELETE FROM history WHERE id IN
               (SELECT id FROM history WHERE uuid = ?1 AND id <= ?3 ORDER BY id LIMIT ?2)",
        )?;
        while let Some(uuid) = finished.last() {
            let n = delete.execute(params![uuid, left, upto])?;
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            if n < left {
                finished.pop();
            }
            left -= n;
            if left <= 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
