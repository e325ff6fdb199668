//! An axum router served over TCP with bounds a hostile client cannot pass: at most
//! [`ConnLimits::max_connections`] connections at once (kept below the open-file limit by
//! [`connection_cap`]), and a connection that has not sent a complete request head
//! [`ConnLimits::header_timeout`] after it opened or after its last answer — an idle keep-alive
//! connection, a client sending its headers a byte at a time — is closed; a request's body is due
//! in full the same time after its head. (`axum::serve` has
//! neither: 20,000 connections that never finished a request head took every file descriptor,
//! and the service stopped answering until they went away.) A stop ends accepting; open
//! connections finish their request and close.
//!
//! A request hyper cannot read (a target longer than [`MAX_TARGET_BYTES`], a head larger than
//! [`MAX_HEAD_BYTES`] or with more than [`MAX_HEADERS`] headers, a malformed request line or
//! header) is answered 414, 431 or 400 with a JSON body naming the part at fault —
//! `{"error": {"code", "message", "field"}}` — where hyper alone sends an empty one (see
//! `explain`: hyper has no hook for that answer, so it is mended on the socket).

mod explain;
mod served;

pub use explain::MAX_TARGET_BYTES;
pub use served::{BodyTimedOut, Due};

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most bytes of a request head (request line and headers) read: a connection's read buffer
/// grows to it (hyper checks it once a read leaves the head unfinished, so a head of up to about
/// twice it may still be read whole). Four times the 8 KiB a real Marathon or Chronos (Jetty)
/// reads. hyper's default, 417,792, let 300 connections each sending a 400 KB head hold 116 MB of
/// the supervisor's memory (1024 connections: about 800 MB); at 32 KiB a connection holds at most
/// 64 KiB.
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Most header fields a request may have: hyper's default.
pub const MAX_HEADERS: usize = 100;

/// The bounds on a server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Most connections open at once; past it, new ones wait in the listen backlog (holding no
    /// descriptor of the process) until one closes.
    pub max_connections: usize,
    /// Longest wait for a complete request head, from the connection's opening or its last
    /// answer; and for a request's whole body, from its head (a body still arriving then — a
    /// byte at a time, or chunked without its end — fails with [`BodyTimedOut`], which the
    /// handler reading it answers as a bad body).
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
/// later; the loop ends only at `stop`. A flood costs two log lines (see [`Saturation`]).
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
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS);
    let mut limit = Saturation::new(limits);
    'serve: loop {
        let (permit, waited) = match Arc::clone(&permits).try_acquire_owned() {
            Ok(p) => (p, false),
            Err(_) => {
                limit.full(Instant::now());
                let p = tokio::select! {
                    () = stop.cancelled() => break,
                    p = Arc::clone(&permits).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                // Full until this very moment.
                limit.full(Instant::now());
                (p, true)
            }
        };
        let stream = loop {
            tokio::select! {
                () = stop.cancelled() => break 'serve,
                r = listener.accept() => match r {
                    Ok((stream, _)) => break stream,
                    Err(e) => accept_failed(&e).await,
                },
                () = limit.clear_at() => limit.cleared(Instant::now()),
            }
        };
        limit.accepted(waited);
        let _ = stream.set_nodelay(true);
        // The service's answers, counted, tell hyper's own answers apart on the socket.
        let answers = Arc::new(AtomicU64::new(0));
        let io = explain::Explained::new(stream, Arc::clone(&answers), MAX_HEAD_BYTES, MAX_HEADERS);
        let service = served::Served::new(
            TowerToHyperService::new(app.clone()),
            answers,
            limits.header_timeout,
        );
        let conn = http.serve_connection(TokioIo::new(io), service);
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

/// The connection limit's episodes of saturation, logged as two lines whatever their length: one
/// when the limit is reached, one when it clears — once [`Saturation::quiet`] has passed without
/// the limit being full — saying how long it lasted and how many connections waited for a free
/// one. (A line each time the limit filled again was 45 lines for 2,000 stalled connections.)
#[derive(Debug)]
struct Saturation {
    max_connections: usize,
    /// How long the limit must stay clear to end an episode: a header timeout (the longest a
    /// stalled connection holds its place, so a flood of them fills the limit again within it),
    /// at least a second.
    quiet: Duration,
    episode: Option<Episode>,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    since: Instant,
    /// The last moment the limit was seen full.
    last_full: Instant,
    /// Connections accepted after waiting for a free place.
    waited: u64,
}

impl Saturation {
    fn new(limits: ConnLimits) -> Self {
        Self {
            max_connections: limits.max_connections,
            quiet: limits.header_timeout.max(Duration::from_secs(1)),
            episode: None,
        }
    }

    /// The limit is full at `now`.
    fn full(&mut self, now: Instant) {
        match &mut self.episode {
            Some(e) => e.last_full = now,
            None => {
                tracing::warn!(
                    max_connections = self.max_connections,
                    "connection limit reached; new connections wait until one closes"
                );
                self.episode = Some(Episode {
                    since: now,
                    last_full: now,
                    waited: 0,
                });
            }
        }
    }

    /// A connection was accepted; `waited` whether it waited for a free place.
    fn accepted(&mut self, waited: bool) {
        if let (Some(e), true) = (&mut self.episode, waited) {
            e.waited += 1;
        }
    }

    /// When the episode ends (never, outside one).
    async fn clear_at(&self) {
        match self.episode {
            Some(e) => tokio::time::sleep_until(e.last_full + self.quiet).await,
            None => std::future::pending().await,
        }
    }

    /// The episode ended: its line.
    fn cleared(&mut self, now: Instant) {
        if let Some(e) = self.episode.take() {
            let full_for = e.last_full.duration_since(e.since);
            tracing::warn!(
                max_connections = self.max_connections,
                full_for_secs = full_for.as_secs_f64(),
                waited = e.waited,
                "connection limit cleared: it was full for {:.1} s and {} connections waited for a free place; none has for {:.1} s",
                full_for.as_secs_f64(),
                e.waited,
                now.duration_since(e.last_full).as_secs_f64(),
            );
        }
    }
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
