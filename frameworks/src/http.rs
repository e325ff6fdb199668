//! The HTTP layer shared by the three clients: timeouts, authentication, the retry policy and the
//! mapping of non-success answers to [`FrameworkError`].
//!
//! # When a request is retried
//! - **Connection not established** (refused, DNS, connect timeout): the request never left, so it
//!   is retried whatever its method.
//! - **Timeout, broken connection, or 5xx** (except 501/505): retried only for requests the client
//!   marks idempotent (GETs; Marathon `PUT`/`DELETE /v2/apps/{id}`; Chronos job upserts, deletes
//!   and kills). A Marathon create or a Chronos manual start is never repeated, because the first
//!   attempt may have taken effect.
//! - Never on 4xx.
//!
//! Delays grow exponentially from [`RetryPolicy::base_delay`] up to [`RetryPolicy::max_delay`],
//! with "equal jitter" (half fixed, half random) so that many clients do not retry in step.

use std::time::Duration;

use rand::Rng;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::credentials::{Auth, Credentials};
use crate::error::{FrameworkError, parse_error_body, truncate};

/// How failed safe requests are retried. Set [`RetryPolicy::none`] or tiny delays in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retry; 0 is treated as 1).
    pub max_attempts: u32,
    /// Delay before the first retry; doubles for each further retry.
    pub base_delay: Duration,
    /// Upper bound of a single delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 4 attempts, 250 ms base, 5 s cap: a request that keeps failing gives up after about 2 s of
    /// waiting plus the attempts themselves.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// A single attempt, no retry.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            max_attempts: 1,
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The delay before retry number `retry` (1-based), given `jitter` in `[0, 1]`: half of the
    /// exponential step is fixed, the other half scaled by `jitter`.
    #[must_use]
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let step = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = step / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Settings shared by every client of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Whole-request timeout: from connecting until the body is read. Default 10 s.
    pub timeout: Duration,
    /// Connect timeout (capped by `timeout`). Default 5 s.
    pub connect_timeout: Duration,
    /// Retry policy for safe requests.
    pub retry: RetryPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            user_agent: concat!("qos-elastic-frameworks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Whose error conventions apply when mapping a status to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Marathon,
    Chronos,
    MesosAgent,
    Supervisor,
}

/// One request to make.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) idempotent: bool,
    /// Replaces the client's own `Authorization` for this request only.
    pub(crate) authorization: Option<HeaderValue>,
}

impl Request {
    pub(crate) fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
            idempotent: true,
            authorization: None,
        }
    }

    /// A request with a JSON body.
    pub(crate) fn json(
        method: Method,
        url: Url,
        body: &impl serde::Serialize,
        idempotent: bool,
    ) -> Result<Self, FrameworkError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            FrameworkError::invalid_input(format!("request body for {method} {url}"), e.to_string())
        })?;
        Ok(Self {
            method,
            url,
            body: Some(body),
            idempotent,
            authorization: None,
        })
    }

    pub(crate) fn without_body(method: Method, url: Url, idempotent: bool) -> Self {
        Self {
            method,
            url,
            body: None,
            idempotent,
            authorization: None,
        }
    }
}

/// A success answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    pub(crate) method: Method,
    pub(crate) url: Url,
}

impl Response {
    /// Decodes the body as JSON, or explains what it got instead.
    pub(crate) fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, FrameworkError> {
        serde_json::from_slice(&self.body).map_err(|e| self.decode_error(what, &e.to_string()))
    }

    pub(crate) fn decode_error(&self, what: &str, reason: &str) -> FrameworkError {
        let body = String::from_utf8_lossy(&self.body);
        let shown = if body.trim().is_empty() {
            "empty body".to_owned()
        } else {
            format!("body starts with {:?}", truncate(body.trim(), 200))
        };
        FrameworkError::Decode {
            method: self.method.to_string(),
            url: self.url.to_string(),
            what: what.to_owned(),
            reason: format!("{reason} ({shown})"),
        }
    }

    /// A header as text, when present and readable.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What went wrong on one attempt.
struct Failure {
    error: FrameworkError,
    /// The request provably did not reach the server: retrying is safe for any method.
    not_sent: bool,
    /// The server or the transport may recover: retry if the request is idempotent.
    transient: bool,
}

/// `new` (the default [`ClientConfig`]) and `with_config` of a client whose fields are an
/// [`HttpCore`] named `http` and, optionally, more fields given as `name: initial value`.
macro_rules! client_constructors {
    ($flavor:expr $(, $field:ident: $init:expr)* $(,)?) => {
        /// A client with the default [`ClientConfig`].
        ///
        /// # Errors
        /// [`FrameworkError::InvalidInput`] when the HTTP client cannot be built, or for an https
        /// URL in a build without the `tls` feature.
        pub fn new(credentials: &Credentials) -> Result<Self, FrameworkError> {
            Self::with_config(credentials, ClientConfig::default())
        }

        /// A client with explicit settings.
        ///
        /// # Errors
        /// As [`Self::new`].
        pub fn with_config(
            credentials: &Credentials,
            config: ClientConfig,
        ) -> Result<Self, FrameworkError> {
            Ok(Self {
                http: HttpCore::new(credentials, config, $flavor)?,
                $($field: $init,)*
            })
        }
    };
}
pub(crate) use client_constructors;

/// A base URL, credentials and a configured `reqwest::Client`.
#[derive(Debug, Clone)]
pub(crate) struct HttpCore {
    client: reqwest::Client,
    base: Url,
    auth: Auth,
    token_header: Option<HeaderValue>,
    config: ClientConfig,
    flavor: Flavor,
}

impl HttpCore {
    pub(crate) fn new(
        credentials: &Credentials,
        config: ClientConfig,
        flavor: Flavor,
    ) -> Result<Self, FrameworkError> {
        if credentials.url().scheme() == "https" && !cfg!(feature = "tls") {
            return Err(FrameworkError::invalid_input(
                "url",
                format!(
                    "{} uses https, which this build cannot speak: build with \
                     `--features frameworks/tls`",
                    credentials.url()
                ),
            ));
        }
        let token_header = match credentials.auth() {
            Auth::Token(t) => Some(sensitive_header(&format!("token={t}"), "DC/OS token")?),
            Auth::Bearer(t) => Some(sensitive_header(&format!("Bearer {t}"), "bearer token")?),
            Auth::None | Auth::Basic { .. } => None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout.min(config.timeout))
            .user_agent(config.user_agent.clone())
            .default_headers(headers)
            .build()
            .map_err(|e| {
                FrameworkError::invalid_input("HTTP client configuration", e.to_string())
            })?;
        Ok(Self {
            client,
            base: credentials.url().clone(),
            auth: credentials.auth().clone(),
            token_header,
            config,
            flavor,
        })
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    pub(crate) fn endpoint<S: AsRef<str>>(&self, segments: impl IntoIterator<Item = S>) -> Url {
        let mut url = self.base.clone();
        {
            // A base URL with a host always has path segments.
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty();
                for s in segments {
                    path.push(s.as_ref());
                }
            }
        }
        url
    }

    /// Sends `req`, retrying as the module docs describe. Returns the 2xx answer or the error the
    /// last attempt produced.
    pub(crate) async fn execute(&self, req: Request) -> Result<Response, FrameworkError> {
        let max_attempts = self.config.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let failure = match self.send_once(&req).await {
                Ok(resp) => return Ok(resp),
                Err(f) => f,
            };
            let retryable = failure.not_sent || (failure.transient && req.idempotent);
            if !retryable || attempt >= max_attempts {
                return Err(failure.error);
            }
            let delay = self.config.retry.delay(attempt, jitter());
            tracing::warn!(
                method = %req.method,
                url = %req.url,
                attempt,
                max_attempts,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %failure.error,
                "retrying framework request"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    async fn send_once(&self, req: &Request) -> Result<Response, Failure> {
        let mut builder = self.client.request(req.method.clone(), req.url.clone());
        match (&req.authorization, &self.auth) {
            (Some(v), _) => builder = builder.header(header::AUTHORIZATION, v.clone()),
            (None, Auth::None) => {}
            (None, Auth::Basic { user, password }) => {
                builder = builder.basic_auth(user, Some(password));
            }
            (None, Auth::Token(_) | Auth::Bearer(_)) => {
                if let Some(v) = &self.token_header {
                    builder = builder.header(header::AUTHORIZATION, v.clone());
                }
            }
        }
        if let Some(body) = &req.body {
            builder = builder
                .header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )
                .body(body.clone());
        }
        let resp = builder
            .send()
            .await
            .map_err(|e| self.transport_failure(req, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_failure(req, &e))?
            .to_vec();
        if status.is_success() {
            return Ok(Response {
                headers,
                body,
                method: req.method.clone(),
                url: req.url.clone(),
            });
        }
        let transient = status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED;
        Err(Failure {
            error: classify(self.flavor, &req.method, &req.url, status, &headers, &body),
            not_sent: false,
            transient,
        })
    }

    fn transport_failure(&self, req: &Request, e: &reqwest::Error) -> Failure {
        let method = req.method.to_string();
        let url = req.url.to_string();
        let error = if e.is_timeout() {
            FrameworkError::Timeout {
                method,
                url,
                timeout: self.config.timeout,
            }
        } else {
            FrameworkError::Unreachable {
                method,
                url,
                reason: error_chain(e),
            }
        };
        Failure {
            error,
            not_sent: e.is_connect(),
            transient: true,
        }
    }
}

/// A header value marked sensitive (kept out of debug output), or an error naming `what`.
pub(crate) fn sensitive_header(value: &str, what: &str) -> Result<HeaderValue, FrameworkError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| {
        FrameworkError::invalid_input(what, "contains characters that cannot go in an HTTP header")
    })?;
    v.set_sensitive(true);
    Ok(v)
}

fn jitter() -> f64 {
    rand::rng().random::<f64>()
}

/// `e` and its causes, joined, without the URL reqwest already prints (we print it ourselves).
fn error_chain(e: &reqwest::Error) -> String {
    let mut top = e.to_string();
    if let Some(u) = e.url() {
        top = top.replace(&format!(" for url ({u})"), "");
    }
    let mut parts = vec![top];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Maps a non-success answer to the error variant it means for `flavor`.
pub(crate) fn classify(
    flavor: Flavor,
    method: &Method,
    url: &Url,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> FrameworkError {
    let parsed = parse_error_body(body);
    let method = method.to_string();
    let url = url.to_string();
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if parsed.message.is_empty() {
        reason.to_owned()
    } else {
        parsed.message.clone()
    };
    match code {
        401 | 403 => FrameworkError::Unauthorized {
            method,
            url,
            status: code,
            message,
            challenge: headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        404 => FrameworkError::NotFound {
            method,
            url,
            message,
        },
        409 if !parsed.deployments.is_empty() => FrameworkError::Locked {
            method,
            url,
            message,
            deployments: parsed.deployments,
        },
        409 => FrameworkError::Conflict {
            method,
            url,
            message,
        },
        400 if flavor == Flavor::Chronos && chronos_says_missing(&message) => {
            FrameworkError::NotFound {
                method,
                url,
                message,
            }
        }
        400 | 422 => FrameworkError::Invalid {
            method,
            url,
            status: code,
            message,
            details: parsed.details,
        },
        c if c >= 500 => FrameworkError::Server {
            method,
            url,
            status: code,
            body: message,
        },
        _ => FrameworkError::UnexpectedStatus {
            method,
            url,
            status: code,
            body: message,
        },
    }
}

/// Chronos answers 400 (not 404) for an unknown job: `requirement failed: Job 'x' not found` or
/// `JobSchedule 'x' not found`.
fn chronos_says_missing(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("not found") && m.contains("job")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `tls` feature an https URL is refused when the client is built, naming the
    /// field and the feature; with it the same client builds.
    #[test]
    fn https_needs_the_tls_feature() {
        let creds = Credentials::new("https://marathon.example:8443").unwrap();
        let built = crate::MarathonClient::new(&creds);
        if cfg!(feature = "tls") {
            assert!(built.is_ok(), "{built:?}");
        } else {
            let err = built.unwrap_err().to_string();
            assert!(
                err.contains("url") && err.contains("features frameworks/tls"),
                "{err}"
            );
        }
        assert!(crate::MarathonClient::new(&Credentials::new("http://m:8080").unwrap()).is_ok());
    }

    #[test]
    fn delays_grow_and_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
        };
        assert_eq!(p.delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(300));
        assert_eq!(p.delay(4, 1.0), Duration::from_millis(700));
        assert_eq!(p.delay(40, 1.0), Duration::from_millis(700));
        assert_eq!(RetryPolicy::none().delay(1, 1.0), Duration::ZERO);
    }

    fn classify_simple(flavor: Flavor, status: u16, body: &str) -> FrameworkError {
        classify(
            flavor,
            &Method::PUT,
            &Url::parse("http://m:8080/v2/apps/x").unwrap(),
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            body.as_bytes(),
        )
    }

    #[test]
    fn classification() {
        let e = classify_simple(
            Flavor::Marathon,
            409,
            r#"{"message":"locked","deployments":[{"id":"d1"}]}"#,
        );
        assert!(matches!(&e, FrameworkError::Locked { deployments, .. } if deployments == &["d1"]));
        let e = classify_simple(
            Flavor::Marathon,
            409,
            r#"{"message":"An app with id [/x] already exists."}"#,
        );
        assert!(matches!(e, FrameworkError::Conflict { .. }));
        let e = classify_simple(Flavor::Marathon, 400, r#"{"message":"Job 'x' not found"}"#);
        assert!(matches!(e, FrameworkError::Invalid { status: 400, .. }));
        let e = classify_simple(
            Flavor::Chronos,
            400,
            r#"{"status":"Bad Request","message":"java.lang.IllegalArgumentException: requirement failed: Job 'x' not found"}"#,
        );
        assert!(e.is_not_found(), "{e}");
        let e = classify_simple(Flavor::Chronos, 400, "");
        assert!(
            matches!(&e, FrameworkError::Invalid { message, .. } if message == "Bad Request"),
            "{e}"
        );
        let e = classify_simple(Flavor::MesosAgent, 503, "");
        assert!(
            matches!(&e, FrameworkError::Server { status: 503, body, .. } if body == "Service Unavailable")
        );
        let e = classify_simple(Flavor::Marathon, 405, "");
        assert!(matches!(
            e,
            FrameworkError::UnexpectedStatus { status: 405, .. }
        ));
    }

    #[test]
    fn endpoint_encodes_segments_and_keeps_prefix() {
        let creds = Credentials::new("http://h:8080/service/marathon/").unwrap();
        let core = HttpCore::new(&creds, ClientConfig::default(), Flavor::Marathon).unwrap();
        assert_eq!(
            core.endpoint(["v2", "apps", "grp", "a b"]).as_str(),
            "http://h:8080/service/marathon/v2/apps/grp/a%20b"
        );
        let creds = Credentials::new("http://h:8080").unwrap();
        let core = HttpCore::new(&creds, ClientConfig::default(), Flavor::Marathon).unwrap();
        assert_eq!(
            core.endpoint(["v2", "info"]).as_str(),
            "http://h:8080/v2/info"
        );
    }
}
