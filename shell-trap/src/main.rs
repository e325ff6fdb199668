//! `shell-trap`: see the library documentation and `shell-trap --help`.

use clap::Parser;
use shell_trap::cli::{Args, Environment};
use shell_trap::error::EXIT_SETUP;
use shell_trap::signals::Signals;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("shell_trap=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_SETUP } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_tracing();
    // One thread: the job is forked from the main thread, which lives as long as the process,
    // so its parent-death signal fires exactly when shell-trap dies.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            std::process::exit(EXIT_SETUP);
        }
    };
    let code = rt.block_on(async {
        // Handlers first, so that no SIGTERM is lost from here on.
        let mut signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot install signal handlers: {e}");
                return EXIT_SETUP;
            }
        };
        let settings = match args.resolve(&Environment::from_process()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{e}");
                return e.exit_code();
            }
        };
        shell_trap::run(settings, &mut signals).await
    });
    // Exit without waiting for the runtime: nothing of value is left in it.
    std::process::exit(code);
}
