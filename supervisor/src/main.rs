//! `supervisor`: parse the command line, validate the configuration, bind, print
//! `{"url": URL}` once serving, run until SIGINT/SIGTERM, drain, exit.

use std::process::ExitCode;

use clap::Parser;
use supervisor::{Args, Deps, Supervisor, url_of};
use tokio::net::TcpListener;

fn init_tracing(config: &supervisor::Config) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("supervisor=info,frameworks=warn,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match &config.log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("log directory {}: {e}", dir.display()))?;
            let path = dir.join("supervisor.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder.with_ansi(ansi).with_writer(std::io::stderr).init();
        }
    }
    Ok(())
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received; shutting down (a second signal exits at once)");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if args.dump_state {
        // Nothing is served: any address will do.
        args.listen = Some("127.0.0.1:0".into());
    }
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("supervisor: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_tracing(&config) {
        eprintln!("supervisor: {e}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supervisor: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if args.dump_state {
        return rt.block_on(async move {
            match supervisor::dump_state(config).await {
                Ok(state) => {
                    println!("{state:#}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("supervisor: {e}");
                    ExitCode::from(1)
                }
            }
        });
    }
    rt.block_on(async move {
        let listener = match TcpListener::bind(config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("supervisor: cannot listen on {}: {e}", config.listen);
                return ExitCode::from(3);
            }
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => {
                eprintln!("supervisor: {e}");
                return ExitCode::from(3);
            }
        };
        let deps = match Deps::from_config(&config) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("supervisor: {e}");
                return ExitCode::from(2);
            }
        };
        let sup = match Supervisor::start(config, deps).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("supervisor: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(url = %url_of(addr), "serving");
        println!("{}", serde_json::json!({"url": url_of(addr)}));
        match sup.serve(listener, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("supervisor: {e}");
                ExitCode::from(1)
            }
        }
    })
}
