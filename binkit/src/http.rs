//! An axum router served over TCP with bounds a hostile client cannot pass: at most
//! [`ConnLimits::max_connections`] connections at once (kept below the open-file limit by
//! [`connection_cap`]), and a connection that has not sent a complete request head
//! [`ConnLimits::header_timeout`] after it opened or after its last answer — an idle keep-alive
//! connection, a client sending its headers a byte at a time — is closed. (`axum::serve` has
//! neither: 20,000 connections that never finished a request head took every file descriptor,
//! and the service stopped answering until they went away.) A stop ends accepting; open
//! connections finish their request and close.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The bounds on a server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once; past it, new ones wait in the listen backlog (holding no
    /// descriptor of the process) until one closes.
    pub max_connections: usize,
    /// Longest wait for a complete request head, from the connection's opening or its last
    /// answer.
    pub header_timeout: Duration,
}

/// `configured` (the setting named `setting`), lowered to what the process' open-file limit
/// leaves beside `reserved` descriptors for everything else (with a warning saying so).
#[must_use]
pub fn connection_cap(configured: usize, reserved: u64, setting: &str) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return configured;
    };
    let room = usize::try_from(soft.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    if room < configured {
        tracing::warn!(
            configured,
            open_file_limit = soft,
            serving = room,
            "{setting} is above what the open-file limit leaves (ulimit -n, less {reserved} for other files and clients); serving at most {room} connections"
        );
        return room;
    }
    configured
}

/// Serves `app` on `listener` within `limits` until `stop`, then lets the open connections
/// finish their request. A failed accept (no descriptor left) is logged and retried a moment
/// later; the loop ends only at `stop`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut full = false;
    loop {
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => {
                full = false;
                p
            }
            Err(_) => {
                if !full {
                    full = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection limit reached; new connections wait until one closes"
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                }
            }
        };
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An accept that failed: a connection the client gave up on is nothing; anything else (no
/// descriptor left) is logged and retried a moment later.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
