//! What the long-running services share: logging, the shutdown signal, the listening socket.

use std::fmt;
use std::io;

use tokio::net::{TcpListener, ToSocketAddrs};
use tracing_subscriber::EnvFilter;

use crate::logfile::{LogFile, Rotating};

/// Installs the global tracing subscriber: the filter from `RUST_LOG`, else `default_filter`
/// (e.g. `"supervisor=info,warn"`); lines without their module path. With `log_file`, lines are
/// appended to that file (its directory created) without colours, the file rotated as
/// [`LogFile`] says so that it stays bounded; otherwise they go to stderr, coloured when stderr
/// is a terminal.
///
/// # Errors
/// The log file's directory cannot be created or the file cannot be opened (the message names
/// the path).
pub fn init_tracing(default_filter: &str, log_file: Option<LogFile<'_>>) -> Result<(), String> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match log_file {
        Some(log) => {
            let file =
                Rotating::open(log).map_err(|e| format!("log file {}: {e}", log.path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            let ansi = io::IsTerminal::is_terminal(&io::stderr());
            builder.with_ansi(ansi).with_writer(io::stderr).init();
        }
    }
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM (and logs it). When the handlers cannot be
/// installed it logs why and never resolves: the process then runs until it is killed.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot install signal handlers ({e}); stop with SIGKILL");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
    }
}

/// Spawns a task that exits the process with status 130 on the next SIGINT: a user who presses
/// Ctrl-C twice does not wait for the drain. Call it after [`shutdown_signal`] resolved, inside
/// a tokio runtime.
pub fn exit_on_second_interrupt() {
    tracing::info!("a second SIGINT exits at once");
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}

/// An address a service cannot listen on: `cannot listen on ADDR: REASON`.
#[derive(Debug)]
pub struct ListenError {
    /// The address as given.
    pub addr: String,
    /// The operating system's reason (in use, not permitted, …).
    pub source: io::Error,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot listen on {}: {}", self.addr, self.source)
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Binds a TCP listener on `addr` (`host:port`; port 0 picks a free one).
///
/// # Errors
/// A [`ListenError`] naming `addr`.
pub async fn listen<A>(addr: A) -> Result<TcpListener, ListenError>
where
    A: ToSocketAddrs + fmt::Display,
{
    TcpListener::bind(&addr)
        .await
        .map_err(|source| ListenError {
            addr: addr.to_string(),
            source,
        })
}
