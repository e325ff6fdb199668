//! Small fault-injecting servers: flaky (5xx then 200), fixed answer, never answering, refusing
//! connections, and a Mesos agent with or without the pre-1.8 `.json` endpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

use super::{Log, Recorded, Server, lock, serve};

/// Answers `failures` times with `fail_status`, then `ok_status` + `ok_body` + `ok_headers`.
/// Counts every hit.
pub(crate) struct Flaky {
    pub(crate) url: String,
    pub(crate) hits: Arc<AtomicUsize>,
    pub(crate) log: Log,
    _server: Server,
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
    pub(crate) async fn start(
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
        let server = serve(router).await;
        Self {
            url: server.url.clone(),
            hits: conf.hits,
            log: conf.log,
            _server: server,
        }
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
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
pub(crate) async fn fixed(status: StatusCode, headers: &[(&str, &str)], body: &str) -> Flaky {
    Flaky::start(0, status, status, body, headers).await
}

/// Accepts connections and never answers, counting them (one per attempt: a timed-out request's
/// connection is dropped, so a retry opens a new one).
pub(crate) struct Hanging {
    pub(crate) url: String,
    accepted: Arc<AtomicUsize>,
    handle: tokio::task::JoinHandle<()>,
}

impl Hanging {
    pub(crate) fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Hanging {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

pub(crate) async fn hanging() -> Hanging {
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
    Hanging {
        url,
        accepted,
        handle,
    }
}

/// A loopback URL where nothing listens (the port was bound, then released).
pub(crate) async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A Mesos agent serving `/monitor/statistics` (1.8+) or only `/monitor/statistics.json`
/// (before 0.25), counting the hits on each path.
pub(crate) struct FakeAgent {
    pub(crate) url: String,
    pub(crate) modern_hits: Arc<AtomicUsize>,
    pub(crate) legacy_hits: Arc<AtomicUsize>,
    _server: Server,
}

#[derive(Clone)]
struct AgentConf {
    serve_modern: bool,
    serve_legacy: bool,
    body: String,
    modern_hits: Arc<AtomicUsize>,
    legacy_hits: Arc<AtomicUsize>,
}

impl FakeAgent {
    pub(crate) async fn start(serve_modern: bool, serve_legacy: bool, body: &str) -> Self {
        let conf = AgentConf {
            serve_modern,
            serve_legacy,
            body: body.to_owned(),
            modern_hits: Arc::default(),
            legacy_hits: Arc::default(),
        };
        let router = Router::new().fallback(agent).with_state(conf.clone());
        let server = serve(router).await;
        Self {
            url: server.url.clone(),
            modern_hits: conf.modern_hits,
            legacy_hits: conf.legacy_hits,
            _server: server,
        }
    }
}

async fn agent(State(conf): State<AgentConf>, uri: Uri) -> Response {
    let (counter, served) = match uri.path() {
        "/monitor/statistics" => (&conf.modern_hits, conf.serve_modern),
        "/monitor/statistics.json" => (&conf.legacy_hits, conf.serve_legacy),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    counter.fetch_add(1, Ordering::SeqCst);
    if served {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            conf.body.clone(),
        )
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}
