//! What is written: one [`Op`] a change, the elements of a job's growing lists ([`Item`]) and
//! the entries of its history ([`HistoryRow`]).

use serde::{Deserialize, Serialize};

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
        /// The oldest elements of its lists were forgotten: the rows of each list `l` below
        /// position `items_from[l]` are deleted.
        items_from: Option<[u32; 4]>,
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
    /// Insert or replace a node.
    UpsertNode {
        id: String,
        updated_at: f64,
        body: String,
    },
}

/// What a forget weighs in a transaction: it deletes every row of a job (its items, history and
/// samples), where any other write adds or changes a few.
pub(crate) const FORGET_WEIGHT: usize = 64;

impl Op {
    /// Its share of a transaction's bound ([`FORGET_WEIGHT`] for a forget, 1 for the rest):
    /// the writer commits before the sum passes it, so that the WAL can be truncated
    /// in between.
    pub(crate) fn weight(&self) -> usize {
        match self {
            Self::ForgetJob { .. } => FORGET_WEIGHT,
            _ => 1,
        }
    }
}

impl Op {
    /// About what it writes, bytes (its text: bodies, items, reasons): the writer also commits
    /// before a transaction's sum passes a share of the WAL's bound.
    pub(crate) fn bytes(&self) -> usize {
        match self {
            Self::UpsertJob { body, items, .. } => {
                body.len() + items.iter().map(|i| i.body.len()).sum::<usize>()
            }
            Self::InsertHeld { body, .. } | Self::UpsertNode { body, .. } => body.len(),
            Self::Decision(h) => h.reason.len() + 64,
            _ => 64,
        }
    }
}

/// One entry of a job's history: a decision, a resize (applied or failed), or a life-cycle
/// event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRow {
    /// The job's UUID (the row's key; not in the JSON, which is served per job).
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
