//! A Mesos agent serving its resource statistics at `/monitor/statistics` (1.8+), at
//! `/monitor/statistics.json` only (before 0.25), or at neither; it counts the hits on each
//! path.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{Emulator, Recorded};

/// The emulated agent's state, open to tests.
#[derive(Debug, Default)]
pub struct AgentState {
    /// Whether `/monitor/statistics` answers (else 404).
    pub serve_modern: bool,
    /// Whether `/monitor/statistics.json` answers (else 404).
    pub serve_legacy: bool,
    /// What they answer (a JSON array of executor statistics).
    pub body: String,
    /// Requests to `/monitor/statistics`.
    pub modern_hits: usize,
    /// Requests to `/monitor/statistics.json`.
    pub legacy_hits: usize,
}

/// A Mesos agent on a loopback port.
pub type AgentServer = Emulator<AgentState>;

impl Emulator<AgentState> {
    /// An agent answering `body` on the paths it serves.
    pub async fn start(serve_modern: bool, serve_legacy: bool, body: &str) -> Self {
        let state = AgentState {
            serve_modern,
            serve_legacy,
            body: body.to_owned(),
            ..AgentState::default()
        };
        Self::serve(state, handle).await
    }
}

fn handle(st: &mut AgentState, req: &Recorded) -> Response {
    let served = match req.path.as_str() {
        "/monitor/statistics" => {
            st.modern_hits += 1;
            st.serve_modern
        }
        "/monitor/statistics.json" => {
            st.legacy_hits += 1;
            st.serve_legacy
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    if served {
        (
            [(header::CONTENT_TYPE, "application/json")],
            st.body.clone(),
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
