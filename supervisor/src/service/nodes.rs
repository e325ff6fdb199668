//! Nodes: registration, heartbeats and their view.

use qos_core::Cpus;
use qos_core::wire::{Heartbeat, NodeRegistration};
use serde_json::{Value, json};

use super::{Shared, check_uuid, store_err};
use crate::error::ApiError;
use crate::limits;
use crate::state::NodeEntry;

impl Shared {
    /// Registers (or re-registers) a node.
    pub(crate) async fn register_node(&self, reg: NodeRegistration) -> Result<(), ApiError> {
        check_uuid("id", &reg.id).map_err(|_| {
            ApiError::invalid(
                "id",
                "id must be 1 to 64 characters of letters, digits, '-' and '_'",
            )
        })?;
        limits::check_len("hostname", &reg.hostname, limits::MAX_HOSTNAME, true)?;
        limits::check_count("labels", reg.labels.len(), limits::MAX_LABELS)?;
        for (k, v) in &reg.labels {
            let field = format!("labels.{}", limits::truncate(k, 64));
            limits::check_len(&field, k, limits::MAX_NAME, true)?;
            limits::check_len(&field, v, limits::MAX_NAME, false)?;
        }
        if !reg.cpus.is_finite() || reg.cpus < 0.0 || reg.cpus > 1e6 {
            return Err(ApiError::invalid(
                "cpus",
                format!(
                    "cpus must be a number from 0 to 1000000, got {}",
                    limits::number(reg.cpus)
                ),
            ));
        }
        if let Some(u) = &reg.agent_url {
            limits::check_len("agent_url", u, limits::MAX_URL, true)?;
            let ok =
                frameworks::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                return Err(ApiError::invalid(
                    "agent_url",
                    format!("agent_url must be an http(s) URL, got {u:?}"),
                ));
            }
        }
        let now = self.clock.now();
        let pending = {
            let mut st = self.lock();
            let beat = st.nodes.get(&reg.id).and_then(|n| n.beat.clone());
            st.hosts.insert(reg.hostname.clone(), reg.id.clone());
            let node = NodeEntry {
                reg: reg.clone(),
                last_seen: now,
                beat,
                reserved: Cpus::ZERO,
            };
            let op = node.op();
            st.nodes.insert(reg.id.clone(), node);
            self.store.submit(vec![op])
        };
        pending.wait().await.map_err(|e| store_err(&e))?;
        tracing::info!(node.id = %reg.id, node.hostname = %reg.hostname, cpus = reg.cpus, "node registered");
        Ok(())
    }

    /// A node's heartbeat (written behind: the next one supersedes it).
    pub(crate) fn heartbeat(&self, id: &str, beat: Heartbeat) -> Result<(), ApiError> {
        for (name, v) in [
            ("free_cpus", beat.free_cpus),
            ("allocated_cpus", beat.allocated_cpus),
            ("load1", beat.load1),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(ApiError::invalid(
                    name,
                    format!("{name} must be a number ≥ 0, got {}", limits::number(v)),
                ));
            }
        }
        let now = self.clock.now();
        self.client_time("at", beat.at, now)?;
        limits::check_count(
            "allocated_by_job",
            beat.allocated_by_job.len(),
            limits::MAX_JOBS_PER_NODE,
        )?;
        for (uuid, cpus) in &beat.allocated_by_job {
            let field = format!("allocated_by_job.{}", limits::truncate(uuid, 64));
            check_uuid(&field, uuid)?;
            if !cpus.is_finite() || *cpus < 0.0 {
                return Err(ApiError::invalid(
                    &field,
                    format!(
                        "{field} must be a number ≥ 0, got {}",
                        limits::number(*cpus)
                    ),
                ));
            }
        }
        let op = {
            let mut st = self.lock();
            let Some(node) = st.nodes.get_mut(id) else {
                return Err(ApiError::not_found(format!("node {id} is not registered")));
            };
            node.beat = Some(beat);
            node.last_seen = now;
            node.reserved = Cpus::ZERO;
            node.op()
        };
        self.store.submit_detached(vec![op]);
        Ok(())
    }

    /// `GET /api/v1/nodes`.
    pub(crate) fn nodes_view(&self) -> Value {
        let now = self.clock.now();
        let timeout = self.config.control.node_timeout;
        let st = self.lock();
        let mut nodes: Vec<&NodeEntry> = st.nodes.values().collect();
        nodes.sort_by(|a, b| a.reg.id.cmp(&b.reg.id));
        Value::Array(
            nodes
                .into_iter()
                .map(|n| {
                    json!({
                        "id": n.reg.id,
                        "hostname": n.reg.hostname,
                        "cpus": n.reg.cpus,
                        "memory_bytes": n.reg.memory_bytes,
                        "labels": n.reg.labels,
                        "agent_url": n.reg.agent_url,
                        "alive": n.alive(now, timeout),
                        "last_seen": n.last_seen,
                        "free_cpus": n.free().as_f64(),
                        "heartbeat": n.beat,
                        "jobs": st.by_node.get(&n.reg.id).map_or(0, std::collections::HashSet::len),
                    })
                })
                .collect(),
        )
    }
}
