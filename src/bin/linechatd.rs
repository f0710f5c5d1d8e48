//! linechatd: parse flags (and LINECHAT_* variables), open the database, bind, log the address,
//! serve until SIGINT/SIGTERM. `linechatd health` checks a running daemon instead;
//! `linechatd user add|passwd|list|admin` manages accounts on its database, offline.

use argh::FromArgs;
use linechat::client::health::{self, HealthArgs};
use linechat::config::{Args, Config, DEFAULT_BCRYPT_COST, DEFAULT_DB, with_env};
use linechat::protocol::sanction::{Ban, Until, parse_duration, parse_target};
use linechat::protocol::{has_control, validate_name, validate_password};
use linechat::server::auth::Auth;
use linechat::server::tls::Tls;
use linechat::store::Database;
use linechat::store::accounts;
use linechat::{logging, server};
use log::{error, info};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// jemalloc, not glibc's malloc: tokio aligns every task and every socket's readiness record
/// to 128 bytes, and glibc serves each such allocation by carving a larger chunk and freeing
/// the slack, which small allocations seldom refill; jemalloc's size classes hold them with
/// no slack. Its options (one arena, small thread caches: a daemon whose work is mostly
/// idle connections) are set at build time in `.cargo/config.toml`, and can be overridden at
/// run time with `_RJEM_MALLOC_CONF` (docs/performance.md, "where an idle connection's bytes go").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match argv.first().map(String::as_str) {
        Some("health") => return health_main(&argv[1..]),
        Some("user") => return user_main(&argv[1..]),
        _ => {}
    }
    let argv = with_env(&argv, |k| std::env::var(k).ok());
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match Args::from_args(&["linechatd"], &refs) {
        Ok(a) => a,
        Err(early) => return early_exit(early),
    };
    let config = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("linechatd: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_format);
    // Blocking work is bounded where it is queued (bcrypt's permits, the store's reader
    // turns); the pool is capped as well, so bursts cannot leave dozens of parked threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .build()
    {
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

/// `--help` (to stdout, success) or a usage error (to stderr, status 2).
fn early_exit(early: argh::EarlyExit) -> ExitCode {
    if early.status.is_ok() {
        println!("{}", early.output);
        ExitCode::SUCCESS
    } else {
        eprintln!("{}", early.output);
        ExitCode::from(2)
    }
}

fn health_main(argv: &[String]) -> ExitCode {
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match HealthArgs::from_args(&["linechatd", "health"], &refs) {
        Ok(a) => a,
        Err(early) => return early_exit(early),
    };
    let addr = args
        .addr
        .unwrap_or_else(|| health::default_addr(std::env::var("LINECHAT_LISTEN").ok().as_deref()));
    let tls = args.tls.then(|| health::TlsCheck {
        ca: args.tls_ca.clone(),
        name: args
            .tls_name
            .clone()
            .unwrap_or_else(|| linechat::client::transport::host_of(&addr)),
    });
    match health::check(&addr, Duration::from_secs(args.timeout), tls.as_ref()) {
        Ok(()) => {
            println!("healthy: {addr}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

/// `linechatd user ...`: accounts, offline.
#[derive(FromArgs, Debug)]
struct UserArgs {
    #[argh(subcommand)]
    cmd: UserCmd,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
enum UserCmd {
    Add(UserAdd),
    Passwd(UserPasswd),
    List(UserList),
    Admin(UserAdmin),
    Ban(UserBan),
    Unban(UserUnban),
}

/// ban an account (admins too) or an address or network (203.0.113.7, 203.0.113.0/24); a
/// running daemon closes its sessions within two seconds; recorded in the moderation log
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "ban")]
struct UserBan {
    /// the account's name (any case), or an address or network
    #[argh(positional)]
    target: String,
    /// how long: 90s, 30m, 12h, 7d, 2w (default: for good)
    #[argh(option, long = "for")]
    duration: Option<String>,
    /// why, shown to the banned user
    #[argh(option, default = "String::new()")]
    reason: String,
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
}

/// lift the ban on an account or an address or network; recorded in the moderation log
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "unban")]
struct UserUnban {
    /// the account's name (any case), or an address or network
    #[argh(positional)]
    target: String,
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
}

/// make an account an admin (or, with --revoke, no longer one); recorded in the moderation log
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "admin")]
struct UserAdmin {
    /// the account's name (any case)
    #[argh(positional)]
    name: String,
    /// take the admin flag away instead
    #[argh(switch)]
    revoke: bool,
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
}

/// create an account; the password comes from LINECHAT_PASSWORD or is asked for (safe while
/// the daemon runs)
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
struct UserAdd {
    /// the account's name
    #[argh(positional)]
    name: String,
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
    /// bcrypt cost, 4 to 31 (default 12)
    #[argh(option, default = "DEFAULT_BCRYPT_COST")]
    bcrypt_cost: u32,
}

/// set an account's password; the password comes from LINECHAT_PASSWORD or is asked for; its
/// sessions stay logged in
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "passwd")]
struct UserPasswd {
    /// the account's name (any case)
    #[argh(positional)]
    name: String,
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
    /// bcrypt cost, 4 to 31 (default 12)
    #[argh(option, default = "DEFAULT_BCRYPT_COST")]
    bcrypt_cost: u32,
}

/// list the accounts
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
struct UserList {
    /// the database (default: LINECHAT_DB, else ./linechat.db)
    #[argh(option)]
    db: Option<PathBuf>,
}

fn user_main(argv: &[String]) -> ExitCode {
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match UserArgs::from_args(&["linechatd", "user"], &refs) {
        Ok(a) => a,
        Err(early) => return early_exit(early),
    };
    let db = |flag: Option<PathBuf>| {
        flag.or_else(|| std::env::var_os("LINECHAT_DB").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
    };
    let done = match args.cmd {
        UserCmd::Add(a) => new_password(&a.name, a.bcrypt_cost).and_then(|hash| {
            let path = db(a.db);
            let conn = accounts::open(&path)?;
            accounts::not_clustered(&conn, &path)?;
            accounts::add(&conn, &a.name, &hash)?;
            println!("created {}", a.name);
            Ok(())
        }),
        UserCmd::Passwd(a) => new_password(&a.name, a.bcrypt_cost).and_then(|hash| {
            let path = db(a.db);
            let conn = accounts::open(&path)?;
            accounts::not_clustered(&conn, &path)?;
            accounts::set_password(&conn, &a.name, &hash)?;
            println!("password of {} changed", a.name);
            Ok(())
        }),
        UserCmd::List(a) => accounts::open(&db(a.db))
            .and_then(|conn| accounts::list(&conn))
            .map(|list| {
                for acc in list {
                    let admin = if acc.admin { " admin" } else { "" };
                    let banned = match &acc.banned {
                        Some(ban) => format!(" banned {}", ban.text()),
                        None => String::new(),
                    };
                    println!("{} {}{admin}{banned}", acc.name, acc.created_at);
                }
            }),
        UserCmd::Admin(a) => accounts::open(&db(a.db)).and_then(|mut conn| {
            accounts::set_admin(&mut conn, &a.name, !a.revoke)?;
            if a.revoke {
                println!("{} is no longer an admin", a.name);
            } else {
                println!("{} is an admin", a.name);
            }
            Ok(())
        }),
        UserCmd::Ban(a) => parse_target(&a.target)
            .map_err(|e| e.text)
            .and_then(|target| {
                let duration = match a.duration.as_deref() {
                    None => None,
                    Some(d) => Some(
                        parse_duration(d)
                            .ok_or_else(|| format!("--for {d}: not a duration (30m, 12h, 7d)"))?,
                    ),
                };
                let ban = Ban {
                    until: Until::after(chrono::Utc::now(), duration),
                    reason: a.reason,
                };
                let path = db(a.db);
                let mut conn = accounts::open(&path)?;
                accounts::not_clustered(&conn, &path)?;
                let name = accounts::ban(&mut conn, target, &ban)?;
                println!("{name} is banned {}", ban.text());
                Ok(())
            }),
        UserCmd::Unban(a) => parse_target(&a.target)
            .map_err(|e| e.text)
            .and_then(|target| {
                let path = db(a.db);
                let mut conn = accounts::open(&path)?;
                accounts::not_clustered(&conn, &path)?;
                let name = accounts::unban(&mut conn, target)?;
                println!("{name} is no longer banned");
                Ok(())
            }),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linechatd user: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The checked name and a bcrypt hash of the new password (from LINECHAT_PASSWORD or asked),
/// under the protocol's rules.
fn new_password(name: &str, cost: u32) -> Result<String, String> {
    validate_name(name).map_err(|e| e.text)?;
    if !(4..=31).contains(&cost) {
        return Err(format!("--bcrypt-cost {cost} is outside 4..=31"));
    }
    let password = match std::env::var("LINECHAT_PASSWORD") {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?,
    };
    if has_control(&password) {
        return Err("a password may not contain control characters".into());
    }
    validate_password(&password).map_err(|e| e.text)?;
    bcrypt::hash(&password, cost).map_err(|e| format!("bcrypt: {e}"))
}

async fn serve(config: Config) -> Result<(), String> {
    // First of all, so that a SIGHUP while the database opens does not end the daemon.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| format!("cannot install the SIGHUP handler: {e}"))?;
    info!(
        "starting linechatd {}: listen={} db={} sync={:?} bcrypt-cost={} history-on-join={} \
         max-line={} max-connections={} max-per-ip={} sendq-lines={} sendq-bytes={} \
         rate-burst={} rate-per-sec={} login-timeout={}s idle-timeout={}s \
         max-login-failures={} flood-strikes={} commit-linger={}ms tls-listen={} metrics-listen={} cluster={}",
        env!("CARGO_PKG_VERSION"),
        config.listen.map_or("none".to_string(), |a| a.to_string()),
        config.db.display(),
        config.sync,
        config.bcrypt_cost,
        config.history_on_join,
        config.max_line,
        config.max_connections,
        config.max_per_ip,
        config.sendq_lines,
        config.sendq_bytes,
        config.rate_burst,
        config.rate_per_sec,
        config.login_timeout.as_secs(),
        config.idle_timeout.as_secs(),
        config.max_login_failures,
        config.flood_strikes,
        config.commit_linger.as_millis(),
        config
            .tls
            .as_ref()
            .map_or("none".to_string(), |t| t.listen.to_string()),
        config
            .metrics_listen
            .map_or("none".to_string(), |a| a.to_string()),
        // Never a secret: the credentials' Debug names only their kind.
        config
            .cluster
            .as_ref()
            .map_or("none".to_string(), |c| format!(
                "{} node={} replicas={} auth={:?}",
                c.servers.join(","),
                c.node,
                c.replicas,
                c.credentials
            )),
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
    let plain = match config.listen {
        Some(addr) => {
            let l = bind(addr).await?;
            info!(
                "listening on {}",
                l.local_addr().map_err(|e| e.to_string())?
            );
            Some(l)
        }
        None => None,
    };
    let tls = match &config.tls {
        Some(t) => {
            // Reading and parsing the PEM files: off the async threads, like the database.
            let (cert, key) = (t.cert.clone(), t.key.clone());
            let certs = tokio::task::spawn_blocking(move || Tls::load(&cert, &key))
                .await
                .map_err(|e| e.to_string())??;
            let certs = Arc::new(certs);
            let l = bind(t.listen).await?;
            info!(
                "listening for TLS on {}",
                l.local_addr().map_err(|e| e.to_string())?
            );
            Some((l, certs))
        }
        None => None,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    tokio::spawn(on_hangup(hup, tls.as_ref().map(|(_, t)| t.clone())));
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let listeners = server::Listeners {
        plain,
        tls,
        metrics,
    };
    server::run(listeners, config, db, auth, shutdown)
        .await
        .map_err(|e| e.to_string())
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))
}

/// SIGHUP reloads the TLS certificate and key (ACME clients renew them every 60 to 90 days):
/// new connections get the new ones, open ones keep theirs, and a file that does not load is
/// logged and the old certificate kept. Without TLS there is nothing to reload; SIGHUP never
/// stops the daemon.
async fn on_hangup(mut hup: tokio::signal::unix::Signal, tls: Option<Arc<Tls>>) {
    while hup.recv().await.is_some() {
        let Some(tls) = tls.clone() else {
            info!("SIGHUP received: no TLS certificate to reload");
            continue;
        };
        // Reading files and parsing keys: off the async threads.
        match tokio::task::spawn_blocking(move || tls.reload()).await {
            Ok(Ok(())) => info!("SIGHUP received: TLS certificate reloaded"),
            Ok(Err(e)) => {
                error!("SIGHUP received: TLS certificate not reloaded, keeping the old one: {e}")
            }
            Err(e) => error!("SIGHUP received: reload failed: {e}"),
        }
    }
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
    info!("{name} received, shutting down");
    shutdown.cancel();
}
