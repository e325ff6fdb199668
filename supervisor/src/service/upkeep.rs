//! What is stored, kept in shape: the database loaded at start, then every flush interval the
//! jobs a failed write left incomplete written again, finished jobs archived and, after
//! `control.retention`, forgotten.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Shared, move_node};
use crate::state::{Held, HeldReport, NodeEntry, decode_job, saved_after_load};
use crate::store::{Op, StoreError};

/// Loads the database into memory.
pub(crate) async fn load(sh: &Shared) -> Result<Vec<String>, StoreError> {
    let loaded = sh.store.load().await?;
    let now = sh.clock.now();
    let mut st = sh.lock();
    let st = &mut *st;
    let mut uuids = Vec::new();
    for body in loaded.nodes {
        match serde_json::from_str::<NodeEntry>(&body) {
            Ok(n) => {
                st.hosts.insert(n.reg.hostname.clone(), n.reg.id.clone());
                st.nodes.insert(n.reg.id.clone(), n);
            }
            Err(e) => tracing::error!(error = %e, "unreadable node row skipped"),
        }
    }
    let generation = sh.store.generation().load(Ordering::Acquire);
    let mut rewrite = Vec::new();
    for stored in loaded.jobs {
        match decode_job(&stored.body, &stored.items, stored.archived) {
            Ok((p, archived, whole)) => {
                let uuid = p.uuid.clone();
                if let (Some(node), None) = (&p.meta.node, &archived) {
                    st.by_node
                        .entry(node.clone())
                        .or_default()
                        .insert(uuid.clone());
                }
                if let Some(at) = p.meta.finished_wall {
                    st.retiring.push_back((at, uuid.clone()));
                }
                let active = !p.job.phase.is_terminal() || !p.meta.cleaned_up;
                let saved = saved_after_load(&p, whole, generation);
                let mut entry = sh.entry_loaded(p, archived, saved);
                if entry.needs_write() {
                    // A row of the first schema, or lists with a gap (a write lost in a
                    // failure): written whole now.
                    rewrite.push(entry.op(now));
                }
                st.jobs.insert(uuid.clone(), entry);
                if active {
                    uuids.push(uuid);
                }
            }
            Err(e) => tracing::error!(error = %e, "unreadable job row skipped"),
        }
    }
    if !rewrite.is_empty() {
        tracing::info!(jobs = rewrite.len(), "jobs written again in full");
        sh.store.submit_detached(rewrite);
    }
    for (uuid, at, body) in loaded.held {
        match serde_json::from_str::<HeldReport>(&body) {
            Ok(r) => {
                let w = r.weight();
                let h = st.held.entry(uuid).or_insert_with(|| Held {
                    first_at: at,
                    ..Held::default()
                });
                h.reports.push_back((at, r));
                h.bytes += w;
                st.held_bytes += w;
            }
            Err(e) => tracing::error!(error = %e, "unreadable held report skipped"),
        }
    }
    st.retiring
        .make_contiguous()
        .sort_by(|a, b| a.0.total_cmp(&b.0));
    tracing::info!(
        jobs = st.jobs.len(),
        active = uuids.len(),
        held = st.held.len(),
        nodes = st.nodes.len(),
        at = now,
        "state loaded"
    );
    Ok(uuids)
}

/// Upkeep of what is stored, every `control.flush_interval`: jobs a failed write may have left
/// incomplete in the database are written whole again (at once, then with a doubling wait of up
/// to 64 ticks while writes keep failing); finished, cleaned-up jobs whose writes
/// are all on disk leave their lists to the database (memory stays bounded by the jobs that
/// run); jobs finished more than `control.retention` ago are forgotten, memory and database
/// (checked every minute); the held reports' byte count is recounted.
pub(crate) async fn maintain(sh: Arc<Shared>, cancel: tokio_util::sync::CancellationToken) {
    let period = crate::config::ControlConfig::dur(sh.config.control.flush_interval);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen_failures = sh.store.generation().load(Ordering::Acquire);
    // While writes keep failing (a full disk), whole rewrites are tried less and less often.
    let mut rewrite_wait = 1u32;
    let mut rewrite_in = 0u32;
    let mut last_forget = sh.clock.now();
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let failures = sh.store.generation().load(Ordering::Acquire);
        if failures == seen_failures {
            rewrite_wait = 1;
        } else if rewrite_in > 0 {
            rewrite_in -= 1;
        } else {
            seen_failures = failures;
            rewrite_unsaved(&sh);
            rewrite_in = rewrite_wait;
            rewrite_wait = (rewrite_wait * 2).min(64);
        }
        archive_finished(&sh).await;
        let now = sh.clock.now();
        if now - last_forget >= 60.0 {
            last_forget = now;
            forget_expired(&sh, now);
        }
        let mut st = sh.lock();
        st.held_bytes = st.held.values().map(|h| h.bytes).sum();
    }
}

/// Writes whole every job whose last write may have been lost.
fn rewrite_unsaved(sh: &Shared) {
    let now = sh.clock.now();
    let ops: Vec<Op> = {
        let mut st = sh.lock();
        st.jobs
            .values_mut()
            .filter(|e| e.needs_write())
            .map(|e| e.op(now))
            .collect()
    };
    if !ops.is_empty() {
        tracing::warn!(
            jobs = ops.len(),
            "a database write failed: writing the jobs it may have left incomplete again"
        );
        sh.store.submit_detached(ops);
    }
}

/// Drops from memory the lists of finished, cleaned-up jobs once everything written of them is
/// known to be on disk.
async fn archive_finished(sh: &Shared) {
    let candidates: Vec<String> = {
        let st = sh.lock();
        st.jobs
            .values()
            .filter(|e| {
                e.rt.archived.is_none()
                    && e.p.job.phase.is_terminal()
                    && e.p.meta.cleaned_up
                    && !e.rt.dirty
                    && !e.needs_write()
            })
            .map(|e| e.p.uuid.clone())
            .collect()
    };
    if candidates.is_empty() || sh.store.barrier().wait().await.is_err() {
        return;
    }
    let mut st = sh.lock();
    let st = &mut *st;
    for uuid in candidates {
        if let Some(e) = st.jobs.get_mut(&uuid) {
            if !e.rt.dirty && !e.needs_write() {
                e.archive();
                // No longer one of its node's jobs: what runs there is what shares its CPUs.
                let node = e.p.meta.node.clone();
                move_node(st, &uuid, node.as_deref(), None);
            }
        }
    }
}

/// Forgets the jobs that finished more than `control.retention` ago.
fn forget_expired(sh: &Shared, now: f64) {
    let before = now - sh.config.control.retention;
    let mut st = sh.lock();
    let st = &mut *st;
    let expired: Vec<String> = st
        .jobs
        .values()
        .filter(|e| {
            e.p.job.phase.is_terminal() && e.p.meta.finished_wall.is_some_and(|t| t < before)
        })
        .map(|e| e.p.uuid.clone())
        .collect();
    if expired.is_empty() {
        return;
    }
    for uuid in &expired {
        if let Some(e) = st.jobs.remove(uuid) {
            if let Some(g) = &e.rt.gauges {
                sh.metrics.retire(g);
            }
            move_node(st, uuid, e.p.meta.node.as_deref(), None);
        }
    }
    st.retiring.retain(|(_, u)| st.jobs.contains_key(u));
    tracing::info!(
        jobs = expired.len(),
        "jobs finished more than control.retention ago forgotten"
    );
    sh.store.forget_jobs(&expired);
}
