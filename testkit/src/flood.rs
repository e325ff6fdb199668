//! Hostile HTTP clients, for tests of a server's connection bounds: connections that never
//! finish a request head (slowloris), a keep-alive connection left idle after its answer, and
//! whether the server has closed them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `n` connections to `addr` (`host:port`) that never finish a request head: every other one
/// sends the start of a `GET path` head and stops mid-header, the rest send nothing.
///
/// # Panics
/// A connection cannot be opened or written.
pub async fn stalled(addr: &str, path: &str, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        if i % 2 == 0 {
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
                .await
                .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
        }
        conns.push(s);
    }
    conns
}

/// A keep-alive connection to `addr` that sent `GET path`, read its answer's first bytes and
/// then stays idle.
///
/// # Panics
/// The connection fails or the answer is not a 200.
pub async fn idle_after_answer(addr: &str, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write to {addr}: {e}"));
    let mut buf = [0_u8; 1024];
    let n = s
        .read(&mut buf)
        .await
        .unwrap_or_else(|e| panic!("read from {addr}: {e}"));
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "GET {path}: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

/// Reads `s` until the server closes it (`true`), or `within` passes (`false`).
pub async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0_u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// How many of `conns` the server closes within `within` (one deadline for them all).
pub async fn count_closed(conns: &mut [TcpStream], within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    let mut closed = 0;
    for s in conns {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if closed_by_server(s, left).await {
            closed += 1;
        }
    }
    closed
}

/// The most descriptors process `pid` holds, sampled every 50 ms over `over` (while stalled
/// connections are being accepted and cut).
pub async fn most_open_fds(pid: u32, over: Duration) -> usize {
    let end = tokio::time::Instant::now() + over;
    let mut most = 0;
    while tokio::time::Instant::now() < end {
        most = most.max(crate::procs::open_fds(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    most
}

/// How many lines of a server's `log` say its connection limit was reached, and cleared: a
/// flood must cost a bounded number of lines, not one each time the limit fills again.
#[must_use]
pub fn limit_lines(log: &str) -> (usize, usize) {
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    (
        count("connection limit reached"),
        count("connection limit cleared"),
    )
}

/// Waits (at most 15 s) until the log `read` returns says the connection limit cleared
/// `floods` times, then asserts that it was reached as many times: one pair of lines a flood.
///
/// # Panics
/// The lines do not come, or there are more.
pub async fn assert_limit_logged_once_a_flood(read: impl Fn() -> String, floods: usize) {
    let log = crate::wait::until(
        "the connection limit cleared",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let log = read();
            async move {
                if limit_lines(&log).1 >= floods {
                    Ok(log)
                } else {
                    Err(limit_lines(&log))
                }
            }
        },
    )
    .await;
    assert_eq!(limit_lines(&log), (floods, floods), "{log}");
}

/// What a flood of a server left, for [`Bounded::check`].
#[derive(Debug, Clone, Copy)]
pub struct Bounded {
    /// Stalled connections opened.
    pub stalled: usize,
    /// Of those, closed by the server.
    pub closed: usize,
    /// Whether the idle keep-alive connection was closed.
    pub idle_closed: bool,
    /// The server's descriptors at rest, before the flood.
    pub before: usize,
    /// The most it held during the flood.
    pub most: usize,
    /// Its connection cap.
    pub max_connections: usize,
}

impl Bounded {
    /// Every stalled connection and the idle one closed by the server, and no more descriptors
    /// held than the cap allows.
    ///
    /// # Panics
    /// One of these does not hold.
    pub fn check(&self) {
        let Self {
            stalled,
            closed,
            idle_closed,
            before,
            most,
            max_connections: max,
        } = *self;
        assert_eq!(
            closed, stalled,
            "every stalled connection is closed by the server"
        );
        assert!(
            idle_closed,
            "an idle keep-alive connection is closed after the header timeout"
        );
        assert!(
            most <= before + max,
            "{most} descriptors open with a cap of {max} connections ({before} at rest)"
        );
    }
}

/// Floods the server at `addr` (process `pid`, capped at `max_connections`): a keep-alive
/// connection answered on `GET path` then left idle, and `n` [`stalled`] ones. While they stall an
/// honest client (reqwest, 20 s at most) sends `GET path` too, and the most descriptors the
/// server holds meanwhile are sampled. Then waits (bounded) for the server to close them all.
/// Returns what it saw, for [`Bounded::check`], and the status of the honest request.
pub async fn flood(
    addr: &str,
    path: &str,
    n: usize,
    (pid, max_connections): (u32, usize),
) -> (Bounded, reqwest::Result<u16>) {
    let before = crate::procs::open_fds(pid);
    let mut idle = idle_after_answer(addr, path).await;
    let mut hostile = stalled(addr, path, n).await;
    let honest = async {
        reqwest::Client::new()
            .get(format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    let (out, most) = tokio::join!(honest, most_open_fds(pid, Duration::from_secs(2)));
    // One deadline for them all: each is cut a header timeout after it is accepted.
    let closed = count_closed(&mut hostile, Duration::from_secs(30)).await;
    let idle_closed = closed_by_server(&mut idle, Duration::from_secs(10)).await;
    let seen = Bounded {
        stalled: n,
        closed,
        idle_closed,
        before,
        most,
        max_connections,
    };
    (seen, out)
}
