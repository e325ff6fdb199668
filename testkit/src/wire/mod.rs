//! Recording HTTP servers on `127.0.0.1:0` for tests of clients: every request is kept as a
//! [`Recorded`] so a test can check exactly what the client sent.
//!
//! - [`serve`]: any axum router on a fresh loopback port, stopped when the [`Served`] drops.
//! - [`Scripted`]: a server whose every answer a closure gives (`(status, body)`), for a test
//!   that plays the supervisor, Marathon or Chronos with a few lines; [`Scripted::blocking`]
//!   runs one on its own runtime for tests that are not async, and [`Scripted::hanging`]
//!   records every request and never answers it.
//! - [`Emulator`]: a server with state that answers like a real system: [`marathon`] (Marathon
//!   1.x `/v2`), [`chronos`] (Chronos 2.x and 3.x), [`supervisor`] (the supervisor's thesis and
//!   `/api/v1` routes), [`agent`] (the Mesos agent's statistics), with the real systems' status
//!   codes, headers and error bodies.
//! - [`Flaky`] (`failures` errors, then a fixed answer) and [`fixed`]; [`Hanging`] (accepts
//!   connections, counts them and never reads them); [`dead_url`] (nothing listens there).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::lock;

pub mod agent;
pub mod chronos;
pub mod marathon;
pub mod supervisor;

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    handle: JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Serves `router` on a fresh loopback port (panics when none can be bound).
pub async fn serve(router: Router) -> Served {
    try_serve(router).await.expect("bind a loopback port")
}

/// [`serve`], with the bind error returned.
///
/// # Errors
/// When no loopback port can be bound.
pub async fn try_serve(router: Router) -> std::io::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Served { url, handle })
}

/// One request as a server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Its method.
    pub method: Method,
    /// Its path, without the query.
    pub path: String,
    /// Its query string, if any.
    pub query: Option<String>,
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Recorded {
    /// The request of these parts, arrived now.
    #[must_use]
    pub fn new(method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Self {
        Self {
            method: method.clone(),
            path: uri.path().to_owned(),
            query: uri.query().map(str::to_owned),
            headers: headers.clone(),
            body: body.clone(),
            at: Instant::now(),
        }
    }

    /// The body as JSON (panics, naming the request, when it is not).
    #[must_use]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body of {} {} is not JSON ({e}): {:?}",
                self.method, self.path, self.body
            )
        })
    }

    /// A query parameter, percent-decoded.
    #[must_use]
    pub fn param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        q.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }

    /// A header's value, when it is text.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A shared log of the requests a server received.
pub type Log = Arc<Mutex<Vec<Recorded>>>;

/// What a [`Scripted`] server answers: a status and a body (sent as JSON when it parses as
/// JSON, else as text).
pub type Answer = (u16, String);

type Script = dyn Fn(&Recorded, usize) -> Answer + Send + Sync;

/// How a [`Scripted`] server replies to each request it recorded.
#[derive(Clone)]
enum Reply {
    /// With what the script answers.
    Script(Arc<Script>),
    /// Never: the request is held open until the server stops.
    Hang,
}

/// A recording server whose answers a closure gives; stops when dropped.
pub struct Scripted {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Log,
    _served: Served,
    _runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted").field("url", &self.url).finish()
    }
}

impl Scripted {
    /// Starts a server answering every request with `script(request, index)`, where `index`
    /// counts the requests received before it (0 for the first).
    pub async fn start(
        script: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        Self::replying(Reply::Script(Arc::new(script))).await
    }

    /// [`Scripted::start`] on a runtime of its own (one worker thread), for a test that is not
    /// async; the runtime stops when this drops.
    #[must_use]
    pub fn blocking(script: impl Fn(&Recorded, usize) -> Answer + Send + Sync + 'static) -> Self {
        Self::blocking_replying(Reply::Script(Arc::new(script)))
    }

    /// A server on a runtime of its own (as [`Scripted::blocking`]) that records every request
    /// and never answers it: the client waits until its own timeout (a hung service).
    #[must_use]
    pub fn hanging() -> Self {
        Self::blocking_replying(Reply::Hang)
    }

    async fn replying(reply: Reply) -> Self {
        let log = Log::default();
        let served = serve(Self::router(Arc::clone(&log), reply)).await;
        Self {
            url: served.url.clone(),
            log,
            _served: served,
            _runtime: None,
        }
    }

    fn blocking_replying(reply: Reply) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut this = runtime.block_on(Self::replying(reply));
        this._runtime = Some(runtime);
        this
    }

    fn router(log: Log, reply: Reply) -> Router {
        Router::new()
            .fallback(
                |State((log, reply)): State<(Log, Reply)>,
                 method: Method,
                 uri: Uri,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let rec = Recorded::new(&method, &uri, &headers, &body);
                    let index = {
                        let mut l = lock(&log);
                        l.push(rec.clone());
                        l.len() - 1
                    };
                    let Reply::Script(script) = reply else {
                        return std::future::pending().await;
                    };
                    let (status, body) = script(&rec, index);
                    let status = StatusCode::from_u16(status).expect("valid status");
                    let ct = if serde_json::from_str::<Value>(&body).is_ok() {
                        "application/json"
                    } else {
                        "text/plain"
                    };
                    (status, [(header::CONTENT_TYPE, ct)], body).into_response()
                },
            )
            .with_state((log, reply))
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    /// The requests whose method and path match.
    #[must_use]
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.path == path)
            .collect()
    }
}

/// A recording server with state `S` open to the test, answering every request with
/// `answer(state, request)`; stops when dropped. The emulators of this module are its
/// instances (`Emulator<MarathonState>`, …).
pub struct Emulator<S> {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<S>>,
    log: Log,
    _served: Served,
}

impl<S> std::fmt::Debug for Emulator<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator").field("url", &self.url).finish()
    }
}

/// How an [`Emulator`] answers a request, given its state.
pub type Answerer<S> = fn(&mut S, &Recorded) -> Response;

impl<S: Send + 'static> Emulator<S> {
    /// Serves `state` on a fresh loopback port, every request recorded, then answered by
    /// `answer`.
    pub async fn serve(state: S, answer: Answerer<S>) -> Self {
        let state = Arc::new(Mutex::new(state));
        let log = Log::default();
        let shared = (Arc::clone(&state), Arc::clone(&log));
        let router = Router::new()
            .fallback(
                move |State((state, log)): State<(Arc<Mutex<S>>, Log)>,
                      method: Method,
                      uri: Uri,
                      headers: HeaderMap,
                      body: Bytes| async move {
                    let req = Recorded::new(&method, &uri, &headers, &body);
                    lock(&log).push(req.clone());
                    answer(&mut lock(&state), &req)
                },
            )
            .with_state(shared);
        let served = serve(router).await;
        Self {
            url: served.url.clone(),
            state,
            log,
            _served: served,
        }
    }

    /// The state, locked (the test reads or changes it).
    pub fn state(&self) -> std::sync::MutexGuard<'_, S> {
        lock(&self.state)
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }

    /// The last request received (panics when there was none).
    #[must_use]
    pub fn last_request(&self) -> Recorded {
        self.requests().pop().expect("at least one request")
    }
}

/// Answers `failures` times with `fail_status`, then with a fixed status, body and headers;
/// counts and records every hit.
#[derive(Debug)]
pub struct Flaky {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    hits: Arc<AtomicUsize>,
    log: Log,
    _served: Served,
}

#[derive(Clone)]
struct FlakyConf {
    failures: usize,
    fail_status: StatusCode,
    ok_status: StatusCode,
    ok_body: String,
    ok_headers: Vec<(String, String)>,
    hits: Arc<AtomicUsize>,
    log: Log,
}

impl Flaky {
    /// `failures` answers of `fail_status` (`{"message":"Service Unavailable: try again"}`),
    /// then `ok_status` with `ok_body` and `ok_headers`.
    pub async fn start(
        failures: usize,
        fail_status: StatusCode,
        ok_status: StatusCode,
        ok_body: &str,
        ok_headers: &[(&str, &str)],
    ) -> Self {
        let conf = FlakyConf {
            failures,
            fail_status,
            ok_status,
            ok_body: ok_body.to_owned(),
            ok_headers: ok_headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            hits: Arc::default(),
            log: Log::default(),
        };
        let router = Router::new().fallback(flaky).with_state(conf.clone());
        let served = serve(router).await;
        Self {
            url: served.url.clone(),
            hits: conf.hits,
            log: conf.log,
            _served: served,
        }
    }

    /// Requests received so far.
    #[must_use]
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.log).clone()
    }
}

async fn flaky(
    State(conf): State<FlakyConf>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&conf.log).push(Recorded::new(&method, &uri, &headers, &body));
    let n = conf.hits.fetch_add(1, Ordering::SeqCst);
    if n < conf.failures {
        return (
            conf.fail_status,
            r#"{"message":"Service Unavailable: try again"}"#,
        )
            .into_response();
    }
    let mut resp = (conf.ok_status, conf.ok_body.clone()).into_response();
    for (k, v) in &conf.ok_headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    resp
}

/// Always answers with the same status, headers and body.
pub async fn fixed(status: StatusCode, headers: &[(&str, &str)], body: &str) -> Flaky {
    Flaky::start(0, status, status, body, headers).await
}

/// Accepts connections and never answers, counting them (one per attempt: a timed-out
/// request's connection is dropped, so a retry opens a new one); stops when dropped.
#[derive(Debug)]
pub struct Hanging {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    accepted: Arc<AtomicUsize>,
    handle: JoinHandle<()>,
}

impl Hanging {
    /// Starts one.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let handle = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(socket);
            }
        });
        Self {
            url,
            accepted,
            handle,
        }
    }

    /// Connections accepted so far.
    #[must_use]
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// A loopback URL where nothing listens (a port that was bound, then released).
#[must_use]
pub fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

/// `s` with `+` as a space and `%XX` escapes decoded (a query value).
#[must_use]
pub fn percent_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 (RFC 4648, padded), for `Authorization: Basic …`.
#[must_use]
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A JSON answer with `Content-Type: application/json`.
#[must_use]
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"admin:s3cret"), "YWRtaW46czNjcmV0");
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b+c%2Fd"), "a b c/d");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
