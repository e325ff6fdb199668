//! What the `supervisor` binary does with its parsed command line: resolve and validate the
//! configuration, start logging, then either print the stored state (`--dump-state`) or bind,
//! print `{"url": URL}` once serving, and run until SIGINT/SIGTERM (a second SIGINT exits at
//! once).

use crate::{Args, StartError};

/// Runs the binary for `args` to the end.
///
/// # Errors
/// A [`StartError`]; [`StartError::exit_code`] gives the process' exit status.
pub fn main_with(mut args: Args) -> Result<(), StartError> {
    if args.dump_state {
        // Nothing is served: any address will do.
        args.settings.listen = Some("127.0.0.1:0".into());
    }
    let config = args.resolve()?;
    let log_file = config.log_dir.as_ref().map(|d| d.join("supervisor.log"));
    let log = log_file.as_deref().map(|path| binkit::LogFile {
        path,
        max_bytes: config.storage.log_max_bytes,
        keep: config.storage.log_keep,
    });
    binkit::init_tracing("supervisor=info,frameworks=warn,warn", log)
        .map_err(StartError::Logging)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    if args.dump_state {
        let state = rt.block_on(crate::dump_state(config))?;
        println!("{state:#}");
        return Ok(());
    }
    rt.block_on(async move {
        let listener = binkit::listen(config.listen).await?;
        let shutdown = async {
            binkit::shutdown_signal().await;
            binkit::exit_on_second_interrupt();
        };
        crate::run(config, listener, shutdown, |url| {
            println!("{}", serde_json::json!({ "url": url }));
        })
        .await
    })
}
