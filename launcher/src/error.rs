//! The launcher's one error type and the exit codes it maps to.
//!
//! | code | meaning | examples |
//! |---|---|---|
//! | 0 | done | |
//! | 1 | internal error | an answer the launcher cannot read, a bug |
//! | 2 | bad input: something the user must fix | malformed JSON, a bad `qos` field, a name Chronos refuses, a framework's 4xx (422, 409), wrong credentials |
//! | 3 | a service cannot be reached | connection refused, timeout, 5xx from the supervisor or framework |
//!
//! Every message says what to fix: the file (and line/column for JSON syntax), the field, and the
//! reason.

use std::fmt;

use frameworks::FrameworkError;

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status for an internal error.
pub const EXIT_INTERNAL: u8 = 1;
/// Exit status for bad input (file, flag, field, or a request a service refused as invalid).
pub const EXIT_INPUT: u8 = 2;
/// Exit status when a service (supervisor, Marathon, Chronos) cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Something the user must fix: exit 2.
    Input,
    /// A service could not be reached or is failing: exit 3.
    Unreachable,
    /// Anything else: exit 1.
    Internal,
}

impl Kind {
    /// The lowercase name used in JSON output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Unreachable => "unreachable",
            Self::Internal => "internal",
        }
    }
}

/// An error with its kind and a message that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LauncherError {
    /// Decides the exit code.
    pub kind: Kind,
    /// The full message (file, line/column, field, reason, what to do).
    pub message: String,
    /// The offending field (dotted, e.g. `qos.duration`), when there is one.
    pub field: Option<String>,
}

impl LauncherError {
    /// Bad input that is not one field's (a missing flag, an unreadable file); exit status 2.
    pub fn input(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Input,
            message: message.into(),
            field: None,
        }
    }

    /// Bad input in one field of a file: `"<origin>: field <field>: <reason>"`.
    pub fn field(origin: &str, field: &str, reason: impl fmt::Display) -> Self {
        Self {
            kind: Kind::Input,
            message: format!("{origin}: field {field}: {reason}"),
            field: Some(field.to_owned()),
        }
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Internal,
            message: message.into(),
            field: None,
        }
    }

    /// Classifies a client error from talking to `service` (e.g. "the supervisor") while doing
    /// `action` (e.g. "registering the job").
    #[must_use]
    pub fn from_framework(service: &str, action: &str, err: &FrameworkError) -> Self {
        let kind = classify(err);
        let hint = if kind == Kind::Unreachable {
            format!(" — is {service} running at that address?")
        } else if service == "the supervisor" && matches!(err, FrameworkError::Unauthorized { .. })
        {
            " (for the supervisor: give its admin token with --admin-token or QOS_ADMIN_TOKEN)"
                .to_owned()
        } else {
            String::new()
        };
        let field = match err {
            FrameworkError::Invalid { details, .. } => details
                .iter()
                .find(|d| !d.path.is_empty())
                .map(|d| d.path.trim_start_matches('/').replace('/', ".")),
            _ => None,
        };
        Self {
            kind,
            message: format!("{action} failed: {err}{hint}"),
            field,
        }
    }

    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Input => EXIT_INPUT,
            Kind::Unreachable => EXIT_UNREACHABLE,
            Kind::Internal => EXIT_INTERNAL,
        }
    }

    /// Appends a sentence to the message.
    #[must_use]
    pub fn with_note(mut self, note: impl fmt::Display) -> Self {
        self.message = format!("{}; {note}", self.message);
        self
    }
}

/// The kind of a client error: no answer / 5xx → unreachable; 4xx and refused input → input;
/// unreadable answers → internal.
#[must_use]
pub fn classify(err: &FrameworkError) -> Kind {
    match err {
        FrameworkError::Unreachable { .. }
        | FrameworkError::Timeout { .. }
        | FrameworkError::Server { .. }
        | FrameworkError::Locked { .. } => Kind::Unreachable,
        FrameworkError::Unauthorized { .. }
        | FrameworkError::NotFound { .. }
        | FrameworkError::Conflict { .. }
        | FrameworkError::Invalid { .. }
        | FrameworkError::InvalidInput { .. } => Kind::Input,
        _ => Kind::Internal,
    }
}

impl fmt::Display for LauncherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LauncherError {}
