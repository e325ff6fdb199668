//! The HTTP face of one emulated agent (Mesos agent port 5051): `/monitor/statistics` (and the
//! pre-1.8 `/monitor/statistics.json`), `/containers`, `/state` (`/state.json`,
//! `/slave(1)/state`), `/health`.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::cluster::Cluster;

#[derive(Clone)]
struct AgentCtx {
    cluster: Arc<Cluster>,
    index: usize,
}

/// The router of agent `index`.
pub(crate) fn router(cluster: Arc<Cluster>, index: usize) -> Router {
    Router::new()
        .route("/monitor/statistics", get(statistics))
        .route("/monitor/statistics.json", get(statistics))
        .route("/containers", get(containers))
        .route("/state", get(state))
        .route("/state.json", get(state))
        .route("/slave(1)/state", get(state))
        .route("/health", get(|| async { "" }))
        .with_state(AgentCtx { cluster, index })
}

async fn statistics(State(ctx): State<AgentCtx>) -> Json<Value> {
    let c = Arc::clone(&ctx.cluster);
    let stats = tokio::task::spawn_blocking(move || c.statistics(ctx.index))
        .await
        .unwrap_or_default();
    Json(serde_json::to_value(stats).unwrap_or_else(|_| json!([])))
}

async fn containers(State(ctx): State<AgentCtx>) -> Json<Value> {
    let c = Arc::clone(&ctx.cluster);
    let stats = tokio::task::spawn_blocking(move || c.statistics(ctx.index))
        .await
        .unwrap_or_default();
    let list: Vec<Value> = stats
        .into_iter()
        .map(|s| {
            json!({
                "container_id": s.executor_id,
                "executor_id": s.executor_id,
                "executor_name": s.executor_name,
                "framework_id": s.framework_id,
                "source": s.source,
                "status": {"container_id": {"value": s.executor_id},
                           "network_infos": [{"ip_addresses": [{"ip_address": ctx.cluster.agents[ctx.index].hostname}]}]},
                "statistics": s.statistics,
            })
        })
        .collect();
    Json(Value::Array(list))
}

async fn state(State(ctx): State<AgentCtx>) -> Json<Value> {
    Json(ctx.cluster.agent_state(ctx.index))
}
