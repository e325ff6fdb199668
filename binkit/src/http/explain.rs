//! hyper's own answers given a body that says what was wrong.
//!
//! A request hyper cannot read — a target longer than it reads, a head larger than its buffer or
//! with too many headers, a malformed request line or header — never reaches the service: hyper
//! answers it itself (414, 431 or 400) with an empty body and closes the connection. hyper has no
//! hook for that answer (it is written by `Conn::on_parse_error` from the status alone; neither
//! `http1::Builder` nor a tower layer sees it, the request never having been made), so it is
//! mended where it is written: on the connection's socket. [`Explained`] recognises hyper's head
//! (exactly one of those three status lines, `content-length: 0`, nothing but hyper's
//! `connection: close` and `date` besides) when it is not the head of an answer of the service (`Served` counts those), and
//! writes instead the same status with `{"error": {"code", "message", "field"}}` — the shape of
//! the services' other errors.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The longest request target hyper reads (its `MAX_URI_LEN`, not configurable).
pub const MAX_TARGET_BYTES: usize = u16::MAX as usize - 1;

/// A connection's socket on which hyper's empty answers to unreadable requests are written with
/// a body saying what was wrong.
pub(super) struct Explained<I> {
    io: I,
    /// The service's answers so far (`Served`).
    answers: Arc<AtomicU64>,
    /// Heads of the service's answers written so far.
    heads: u64,
    /// Most bytes of a request head hyper reads (its `max_buf_size`).
    max_head_bytes: usize,
    /// Most header fields hyper reads.
    max_headers: usize,
    rewrite: Option<Rewrite>,
    /// An answer was written in place of hyper's: at the close, the rest of the request is read
    /// and dropped a while ([`Linger`]).
    explained: bool,
    linger: Option<Linger>,
}

/// How long, and for how many bytes, the rest of an unreadable request is read and dropped after
/// the answer to it, before the connection closes: closed with unread bytes, the socket would
/// send a reset, and the client — still sending the head it was refused for — would lose the
/// answer with it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// The close of a connection whose answer was written in place of hyper's: its writing half
/// shut, its reading half read (and dropped) until the client closes its own, [`LINGER`] passes
/// or [`LINGER_BYTES`] were read.
struct Linger {
    until: Pin<Box<Sleep>>,
    read: usize,
}

/// An answer being written in place of hyper's.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's answer, reported written once the whole of `bytes` is.
    replaces: usize,
}

impl<I> Explained<I> {
    pub(super) fn new(
        io: I,
        answers: Arc<AtomicU64>,
        max_head_bytes: usize,
        max_headers: usize,
    ) -> Self {
        Self {
            io,
            answers,
            heads: 0,
            max_head_bytes,
            max_headers,
            rewrite: None,
            explained: false,
            linger: None,
        }
    }
}

impl<I: AsyncWrite + Unpin> Explained<I> {
    /// Writes the rest of the answer being rewritten; `Ok(n)`: done, `n` of hyper's bytes stand
    /// written.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(r) = &mut self.rewrite else {
            return Poll::Ready(Ok(0));
        };
        while r.written < r.bytes.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &r.bytes[r.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            r.written += n;
        }
        let replaces = r.replaces;
        self.rewrite = None;
        self.explained = true;
        Poll::Ready(Ok(replaces))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Explained<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Explained<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.rewrite.is_none() {
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            if first.starts_with(b"HTTP/1.") {
                if this.heads < this.answers.load(Ordering::Relaxed) {
                    // The head of the service's answer.
                    let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
                    if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                        this.heads += 1;
                    }
                    return r;
                }
                this.rewrite = explain(bufs, this.max_head_bytes, this.max_headers);
            }
            if this.rewrite.is_none() {
                return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
            }
        }
        this.drain(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        let this = &mut *self;
        if !this.explained {
            return Pin::new(&mut this.io).poll_shutdown(cx);
        }
        let linger = match &mut this.linger {
            Some(l) => l,
            None => {
                ready!(Pin::new(&mut this.io).poll_shutdown(cx))?;
                this.linger.insert(Linger {
                    until: Box::pin(tokio::time::sleep(LINGER)),
                    read: 0,
                })
            }
        };
        let mut scratch = [0u8; 4096];
        while linger.read < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.read += buf.filled().len()
                }
                // The client's end, or an error: nothing more to wait for.
                Poll::Ready(_) => break,
                Poll::Pending => {
                    ready!(linger.until.as_mut().poll(cx));
                    break;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// hyper's answers to requests it could not read: status line, error code, the part of the
/// request at fault, what was wrong.
fn problem(status_line: &[u8], max_head_bytes: usize, max_headers: usize) -> Option<[String; 3]> {
    let (code, field, message) = match status_line {
        b"HTTP/1.1 400 Bad Request" => (
            "malformed_request",
            "request",
            "the request is not HTTP/1.1 this server can read: its request line (method, target, \
             version) or a header (its name, its value, or a Content-Length or Transfer-Encoding \
             that is not valid) is malformed"
                .to_owned(),
        ),
        b"HTTP/1.1 414 URI Too Long" => (
            "uri_too_long",
            "uri",
            format!(
                "the request target (path and query) is longer than {MAX_TARGET_BYTES} bytes, the most this server reads"
            ),
        ),
        b"HTTP/1.1 431 Request Header Fields Too Large" => (
            "request_head_too_large",
            "headers",
            format!(
                "the request head (request line and headers) is larger than {max_head_bytes} bytes or has more than {max_headers} header fields, the most this server reads"
            ),
        ),
        _ => return None,
    };
    Some([code.to_owned(), field.to_owned(), message])
}

/// The answer to write instead of `bufs`, when they are hyper's empty answer to a request it
/// could not read.
fn explain(bufs: &[IoSlice<'_>], max_head_bytes: usize, max_headers: usize) -> Option<Rewrite> {
    let len: usize = bufs.iter().map(|b| b.len()).sum();
    if len > 512 {
        return None;
    }
    let head: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
    let fields = std::str::from_utf8(head.strip_suffix(b"\r\n\r\n")?).ok()?;
    let mut lines = fields.split("\r\n");
    let status_line = lines.next()?;
    let [code, field, message] = problem(status_line.as_bytes(), max_head_bytes, max_headers)?;
    let mut empty = false;
    let mut others = Vec::new();
    for line in lines {
        match line {
            "content-length: 0" => empty = true,
            // Said again below, whether hyper said it or not.
            "connection: close" => {}
            l if l.starts_with("date: ") => others.push(l),
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    let body = format!(
        "{{\"error\":{{\"code\":\"{code}\",\"message\":\"{message}\",\"field\":\"{field}\"}}}}"
    );
    let mut bytes = Vec::with_capacity(len + body.len() + 96);
    bytes.extend_from_slice(status_line.as_bytes());
    bytes.extend_from_slice(b"\r\ncontent-type: application/json\r\n");
    bytes.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(b"connection: close\r\n");
    for l in others {
        bytes.extend_from_slice(l.as_bytes());
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(body.as_bytes());
    Some(Rewrite {
        bytes,
        written: 0,
        replaces: len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(head: &str) -> Option<String> {
        explain(&[IoSlice::new(head.as_bytes())], 65_536, 100)
            .map(|r| String::from_utf8(r.bytes).unwrap())
    }

    #[test]
    fn hypers_empty_answers_are_given_a_body_naming_the_problem() {
        let date = "date: Sat, 05 Dec 2026 21:13:44 GMT";
        for (status, field) in [
            ("400 Bad Request", "\"field\":\"request\""),
            ("414 URI Too Long", "\"field\":\"uri\""),
            (
                "431 Request Header Fields Too Large",
                "\"field\":\"headers\"",
            ),
        ] {
            let out = rewritten(&format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\n{date}\r\n\r\n"
            ))
            .unwrap();
            let (head, body) = out.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status}\r\n")), "{out}");
            assert!(head.contains(date), "{out}");
            assert!(head.contains("connection: close"), "{out}");
            assert!(
                head.contains(&format!("content-length: {}\r\n", body.len())),
                "{out}"
            );
            assert!(body.contains(field), "{out}");
        }
        assert!(
            rewritten("HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n")
                .unwrap()
                .contains("larger than 65536 bytes or has more than 100 header fields")
        );
    }

    #[test]
    fn anything_else_is_left_alone() {
        for head in [
            // Other statuses, a body, other headers, an unfinished head.
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}",
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            "HTTP/1.1 400 Bad Request\r\n\r\n",
        ] {
            assert!(rewritten(head).is_none(), "{head:?}");
        }
    }
}
