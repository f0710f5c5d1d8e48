//! linechatd: parse flags, open the database, bind, log the address, serve until SIGINT/SIGTERM.

use linechat::auth::Auth;
use linechat::config::{Args, Config};
use linechat::server;
use linechat::store::Database;
use log::{error, info};
use std::process::ExitCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("linechatd: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("linechatd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("linechatd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    info!(
        "starting linechatd {}: db={} sync={:?} bcrypt-cost={} history-on-join={} max-line={} \
         max-connections={} sendq-lines={} sendq-bytes={}",
        env!("CARGO_PKG_VERSION"),
        config.db.display(),
        config.sync,
        config.bcrypt_cost,
        config.history_on_join,
        config.max_line,
        config.max_connections,
        config.sendq_lines,
        config.sendq_bytes
    );
    let (path, sync) = (config.db.clone(), config.sync);
    let db = tokio::task::spawn_blocking(move || Database::open(&path, sync))
        .await
        .map_err(|e| e.to_string())??;
    let cost = config.bcrypt_cost;
    let auth = tokio::task::spawn_blocking(move || Auth::new(cost))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bcrypt: {e}"))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    info!("listening on {addr}");
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    server::run(listener, config, db, auth, shutdown)
        .await
        .map_err(|e| e.to_string())
}

/// Cancels `shutdown` on SIGINT or SIGTERM (as PID 1 in a container, SIGTERM is not default-handled).
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        error!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    info!("{name} received");
    shutdown.cancel();
}
