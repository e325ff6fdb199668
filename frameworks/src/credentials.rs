//! Where a framework lives and how to authenticate to it: the thesis credential file
//! `{"url": "http://IP:PORT", "user": "...", "password": "..."}`.
//!
//! - `user`/`password` empty or absent: no authentication.
//! - `user` set: HTTP Basic (`password` may be empty). Marathon and Chronos both use Basic auth
//!   (`--http_credentials user:password`); a user name may not contain `:`.
//! - `token` set (an extension of the thesis format): DC/OS ACS token, sent as
//!   `Authorization: token=<token>` as go-marathon and marathon-python do. It wins over `user`.
//! - `url` may carry a path prefix (DC/OS serves Marathon under `/service/marathon/`); trailing
//!   slashes are removed, so `http://h:8080/` and `http://h:8080` are the same. A `user:pass@`
//!   part in the URL is moved into Basic auth.
//!
//! Unknown keys in the file are ignored. Secrets never appear in `Debug` output.

use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::Url;
use serde_json::{Map, Value};

use crate::lenient::kind_of;

/// How requests authenticate.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic.
    Basic {
        /// User name (no `:`).
        user: String,
        /// Password, possibly empty.
        password: String,
    },
    /// DC/OS: `Authorization: token=<token>`.
    Token(String),
    /// `Authorization: Bearer <token>` (the supervisor's own API).
    Bearer(String),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A framework's base URL plus its authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    url: Url,
    auth: Auth,
}

/// Why a credential file or URL was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read credential file {}: {source}", .path.display())]
    Read {
        /// The credential file, as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON, or not a JSON object.
    #[error(
        "credential file {origin} is not a JSON object like \
         {{\"url\": \"http://host:port\", \"user\": \"...\", \"password\": \"...\"}}: {reason}"
    )]
    Syntax {
        /// The credential file.
        origin: String,
        /// The parser's message.
        reason: String,
    },
    /// A required field is absent.
    #[error("credential file {origin}: missing field \"{field}\"")]
    MissingField {
        /// The credential file.
        origin: String,
        /// The JSON key that is missing (`url`, …).
        field: &'static str,
    },
    /// A URL given directly ([`Credentials::new`], e.g. from a command-line flag) is unusable.
    #[error("URL {reason}")]
    Url {
        /// What is wrong with it (quoting it).
        reason: String,
    },
    /// A field has the wrong type or an unusable value.
    #[error("credential file {origin}: field \"{field}\" {reason}")]
    InvalidField {
        /// The credential file.
        origin: String,
        /// The JSON key whose value is refused.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl Credentials {
    /// Credentials for `url` without authentication.
    ///
    /// # Errors
    /// [`CredentialsError::Url`] when the URL is not an absolute `http`/`https` URL with a host,
    /// or has a query or fragment.
    pub fn new(url: &str) -> Result<Self, CredentialsError> {
        let (url, userinfo) = normalize_url(url, None)?;
        let auth = match userinfo {
            Some((user, password)) => Auth::Basic { user, password },
            None => Auth::None,
        };
        Ok(Self { url, auth })
    }

    /// Replaces the authentication with HTTP Basic.
    #[must_use]
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Auth::Basic {
            user: user.into(),
            password: password.into(),
        };
        self
    }

    /// Replaces the authentication with a DC/OS token (`Authorization: token=<token>`).
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// Replaces the authentication with a bearer token (`Authorization: Bearer <token>`), as the
    /// supervisor's API expects.
    #[must_use]
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Bearer(token.into());
        self
    }

    /// Reads a credential file.
    ///
    /// # Errors
    /// [`CredentialsError`] naming the file and, where it applies, the field.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CredentialsError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses the content of a credential file; `origin` names it in error messages.
    ///
    /// # Errors
    /// [`CredentialsError`] naming `origin` and, where it applies, the field.
    pub fn from_json_str(text: &str, origin: &str) -> Result<Self, CredentialsError> {
        let value: Value = serde_json::from_str(text).map_err(|e| CredentialsError::Syntax {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        let Value::Object(obj) = value else {
            return Err(CredentialsError::Syntax {
                origin: origin.to_owned(),
                reason: format!("found {}", kind_of(&value)),
            });
        };
        let url =
            string_field(&obj, "url", origin)?.ok_or_else(|| CredentialsError::MissingField {
                origin: origin.to_owned(),
                field: "url",
            })?;
        let (url, userinfo) = normalize_url(&url, Some(origin))?;
        let user = string_field(&obj, "user", origin)?.unwrap_or_default();
        let password = string_field(&obj, "password", origin)?.unwrap_or_default();
        let token = string_field(&obj, "token", origin)?.unwrap_or_default();

        let auth = if !token.trim().is_empty() {
            Auth::Token(token.trim().to_owned())
        } else if !user.is_empty() {
            if user.contains(':') {
                return Err(CredentialsError::InvalidField {
                    origin: origin.to_owned(),
                    field: "user",
                    reason: "must not contain ':' (HTTP Basic auth cannot carry it)".to_owned(),
                });
            }
            if userinfo.is_some() {
                return Err(CredentialsError::InvalidField {
                    origin: origin.to_owned(),
                    field: "url",
                    reason: "carries a user as well as the \"user\" field; keep only one"
                        .to_owned(),
                });
            }
            Auth::Basic { user, password }
        } else if !password.is_empty() {
            return Err(CredentialsError::InvalidField {
                origin: origin.to_owned(),
                field: "password",
                reason: "is set but \"user\" is empty; set both, or neither for no authentication"
                    .to_owned(),
            });
        } else if let Some((user, password)) = userinfo {
            Auth::Basic { user, password }
        } else {
            Auth::None
        };
        Ok(Self { url, auth })
    }

    /// The base URL, without a trailing slash in its path.
    #[must_use]
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// How requests authenticate: none, HTTP Basic, a DC/OS token or a bearer token.
    #[must_use]
    pub fn auth(&self) -> &Auth {
        &self.auth
    }
}

fn string_field(
    obj: &Map<String, Value>,
    field: &'static str,
    origin: &str,
) -> Result<Option<String>, CredentialsError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CredentialsError::InvalidField {
            origin: origin.to_owned(),
            field,
            reason: format!("must be a string, found {}", kind_of(other)),
        }),
    }
}

type UserInfo = Option<(String, String)>;

/// Parses and normalises a base URL; returns any `user:password@` part separately.
/// `origin`: the credential file the URL comes from; `None` when it was given directly.
fn normalize_url(raw: &str, origin: Option<&str>) -> Result<(Url, UserInfo), CredentialsError> {
    let bad = |reason: String| match origin {
        Some(origin) => CredentialsError::InvalidField {
            origin: origin.to_owned(),
            field: "url",
            reason,
        },
        None => CredentialsError::Url { reason },
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(bad(
            "is empty; expected e.g. \"http://10.0.0.1:8080\"".to_owned()
        ));
    }
    let mut url = Url::parse(trimmed).map_err(|e| {
        bad(format!(
            "{trimmed:?} is not an absolute URL ({e}); expected e.g. \"http://10.0.0.1:8080\""
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "{trimmed:?} must use http or https, not {:?}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad(format!("{trimmed:?} has no host")));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "{trimmed:?} must not have a query or fragment"
        )));
    }
    let userinfo = if url.username().is_empty() {
        None
    } else {
        let user = percent_decode(url.username());
        let password = url.password().map(percent_decode).unwrap_or_default();
        // Cannot fail for http(s) URLs with a host.
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some((user, password))
    };
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(if path.is_empty() { "/" } else { &path });
    Ok((url, userinfo))
}

/// Decodes `%XX` escapes in URL user info (the URL parser keeps them encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        Credentials::from_json_str(text, "test.json")
    }

    #[test]
    fn thesis_file_with_basic_auth() {
        let c = parse(r#"{"url": "http://10.0.0.1:8080/", "user": "admin", "password": "s3cret"}"#)
            .unwrap();
        assert_eq!(c.url().as_str(), "http://10.0.0.1:8080/");
        assert_eq!(
            c.auth(),
            &Auth::Basic {
                user: "admin".into(),
                password: "s3cret".into()
            }
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn empty_user_means_no_auth() {
        let c = parse(r#"{"url": "http://h:4400", "user": "", "password": ""}"#).unwrap();
        assert_eq!(c.auth(), &Auth::None);
        let c = parse(r#"{"url": "http://h:4400"}"#).unwrap();
        assert_eq!(c.auth(), &Auth::None);
    }

    #[test]
    fn token_wins() {
        let c = parse(r#"{"url": "https://dcos/service/marathon/", "user": "u", "token": "abc"}"#)
            .unwrap();
        assert_eq!(c.auth(), &Auth::Token("abc".into()));
        assert_eq!(c.url().path(), "/service/marathon");
        assert!(!format!("{c:?}").contains("abc"));
    }

    #[test]
    fn bearer_token_is_redacted() {
        let c = Credentials::new("http://sup:30000")
            .unwrap()
            .with_bearer_token("t0ps3cret");
        assert_eq!(c.auth(), &Auth::Bearer("t0ps3cret".into()));
        assert!(!format!("{c:?}").contains("t0ps3cret"));
    }

    #[test]
    fn a_url_given_directly_is_refused_as_a_url_not_as_a_credential_file() {
        for (url, why) in [
            ("http://", "empty host"),
            ("ftp://x", "must use http or https"),
            ("", "is empty"),
        ] {
            let e = Credentials::new(url).unwrap_err().to_string();
            assert!(e.starts_with("URL ") && e.contains(why), "{e}");
            assert!(!e.contains("credential file"), "{e}");
        }
    }

    #[test]
    fn trailing_slashes_are_removed() {
        let c = Credentials::new("http://h:8080/prefix//").unwrap();
        assert_eq!(c.url().as_str(), "http://h:8080/prefix");
    }

    #[test]
    fn userinfo_in_url_becomes_basic_auth() {
        let c = Credentials::new("http://bob:p%40ss@h:8080").unwrap();
        assert_eq!(
            c.auth(),
            &Auth::Basic {
                user: "bob".into(),
                password: "p@ss".into()
            }
        );
        assert_eq!(c.url().as_str(), "http://h:8080/");
    }

    #[test]
    fn errors_name_file_and_field() {
        let e = parse(r#"{"user": "x"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "credential file test.json: missing field \"url\""
        );
        let e = parse(r#"{"url": 8080}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "credential file test.json: field \"url\" must be a string, found a number"
        );
        let e = parse(r#"{"url": "ftp://h"}"#).unwrap_err();
        assert!(e.to_string().contains("field \"url\""), "{e}");
        let e = parse(r#"{"url": "10.0.0.1:8080"}"#).unwrap_err();
        assert!(e.to_string().contains("field \"url\""), "{e}");
        let e = parse(r#"{"url": "http://h", "password": "p"}"#).unwrap_err();
        assert!(e.to_string().contains("field \"password\""), "{e}");
        let e = parse(r#"{"url": "http://h", "user": "a:b"}"#).unwrap_err();
        assert!(e.to_string().contains("field \"user\""), "{e}");
        let e = parse("[1]").unwrap_err();
        assert!(e.to_string().contains("test.json"), "{e}");
        let e = parse("{not json").unwrap_err();
        assert!(e.to_string().contains("test.json"), "{e}");
    }

    #[test]
    fn load_from_file_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("marathon.json");
        std::fs::write(&path, r#"{"url":"http://m:8080","user":"","password":""}"#).unwrap();
        let c = Credentials::load(&path).unwrap();
        assert_eq!(c.url().host_str(), Some("m"));
        let missing = dir.path().join("nope.json");
        let e = Credentials::load(&missing).unwrap_err();
        assert!(e.to_string().contains("nope.json"), "{e}");
    }
}
