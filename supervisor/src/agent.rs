//! The node agent's `POST /resize` (in-place mode): set a container's CPU limit live.

use std::time::Duration;

use async_trait::async_trait;
use qos_core::wire::{ErrorBody, ResizeRequest, ResizeResult};

/// What the supervisor asks of a node agent.
#[async_trait]
pub trait NodeAgent: Send + Sync {
    /// Sets the CPU limit of `req.uuid`'s container on the agent at `agent_url`; returns the
    /// limit actually in force.
    ///
    /// # Errors
    /// A message saying what failed (unreachable, refused, timed out).
    async fn resize(
        &self,
        agent_url: &str,
        token: &str,
        req: &ResizeRequest,
    ) -> Result<ResizeResult, String>;
}

/// The agent over HTTP (`Authorization: Bearer <token>`).
#[derive(Debug, Clone)]
pub struct HttpNodeAgent {
    client: reqwest::Client,
}

impl HttpNodeAgent {
    /// A client whose every request is bounded by `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { client })
    }
}

#[async_trait]
impl NodeAgent for HttpNodeAgent {
    async fn resize(
        &self,
        agent_url: &str,
        token: &str,
        req: &ResizeRequest,
    ) -> Result<ResizeResult, String> {
        let url = format!("{}/resize", agent_url.trim_end_matches('/'));
        let resp = self
            .client
            .post(&url)
            .bearer_auth(token)
            .json(req)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("POST {url}: {e}"))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| format!("POST {url}: unexpected answer: {e}"));
        }
        let message = serde_json::from_slice::<ErrorBody>(&body).map_or_else(
            |_| String::from_utf8_lossy(&body).chars().take(300).collect(),
            |b| format!("{}: {}", b.error.code, b.error.message),
        );
        Err(format!("POST {url}: HTTP {status}: {message}"))
    }
}
