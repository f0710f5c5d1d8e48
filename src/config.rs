//! Command-line flags (argh) turned into a validated [`Config`]; every default is a named const.

use crate::logging::LogFormat;
use argh::FromArgs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address: loopback only, so a first run exposes nothing.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    7878,
));
/// Default database file, created on first start.
pub const DEFAULT_DB: &str = "linechat.db";
/// Default bcrypt cost for new passwords.
pub const DEFAULT_BCRYPT_COST: u32 = 12;
/// Default number of recent messages replayed on join.
pub const DEFAULT_HISTORY_ON_JOIN: u32 = 10;
/// Default `--history-on-join-missed`.
pub const DEFAULT_HISTORY_ON_JOIN_MISSED: u32 = 100;
/// Largest accepted `--history-on-join`.
pub const MAX_HISTORY_ON_JOIN: u32 = 1000;
/// Default longest inbound line, in bytes.
pub const DEFAULT_MAX_LINE: usize = 4096;
/// Default cap on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default bound on a session's outbound queue, in lines.
pub const DEFAULT_SENDQ_LINES: usize = 1024;
/// Default bound on a session's outbound queue, in bytes.
pub const DEFAULT_SENDQ_BYTES: usize = 1 << 20;
/// Default message burst a user may send before the rate limit applies.
pub const DEFAULT_RATE_BURST: u32 = 10;
/// Default sustained messages per second per user.
pub const DEFAULT_RATE_PER_SEC: u32 = 5;
/// Default cap on simultaneous connections from one IP address.
pub const DEFAULT_MAX_PER_IP: usize = 64;
/// Default seconds a connection has to log in.
pub const DEFAULT_LOGIN_TIMEOUT: u64 = 30;
/// Default seconds a logged-in session may stay silent.
pub const DEFAULT_IDLE_TIMEOUT: u64 = 600;
/// Default failed logins on one connection before it is closed.
pub const DEFAULT_MAX_LOGIN_FAILURES: u32 = 5;
/// Default rate-limit refusals in a row before a flooding connection is closed.
pub const DEFAULT_FLOOD_STRIKES: u32 = 20;
/// Default commit linger, milliseconds (see `store::WriterOptions::linger`).
pub const DEFAULT_COMMIT_LINGER_MS: u64 = 6;
/// Default cap on connections from one address that have not logged in.
pub const DEFAULT_MAX_GUESTS_PER_IP: usize = 8;
/// Default new accounts one client address may create per hour.
pub const DEFAULT_REGISTER_PER_IP_PER_HOUR: u32 = 10;
/// Default new accounts the whole server creates per hour.
pub const DEFAULT_REGISTER_PER_HOUR: u32 = 600;
/// Largest accepted commit linger, milliseconds.
pub const MAX_COMMIT_LINGER_MS: u64 = 100;

/// SQLite durability mode (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// WAL with synchronous=NORMAL: a commit survives a crash of the daemon, the last ones may be
    /// lost on power failure.
    Normal,
    /// synchronous=FULL: every commit is fsynced.
    Full,
}

impl Sync {
    /// The pragma value.
    pub fn pragma(self) -> &'static str {
        match self {
            Sync::Normal => "NORMAL",
            Sync::Full => "FULL",
        }
    }
}

fn parse_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s == "none" {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| "expected HOST:PORT or none".into())
}

/// Where passwords may be sent in plain text (`--plain-logins`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainLogins {
    /// From anywhere (a trusted network).
    Allow,
    /// Only from a client on this machine (a loopback address): the default, because a
    /// password that crosses a network in clear can be read on the way.
    Loopback,
    /// Never: passwords only over TLS.
    Deny,
}

impl PlainLogins {
    /// Whether a client at `peer` may send a password on the plain port.
    pub fn allows(self, peer: std::net::IpAddr) -> bool {
        let loopback = match peer {
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
            v4 => v4.is_loopback(),
        };
        match self {
            PlainLogins::Allow => true,
            PlainLogins::Loopback => loopback,
            PlainLogins::Deny => false,
        }
    }
}

fn parse_plain_logins(s: &str) -> Result<PlainLogins, String> {
    match s {
        "allow" => Ok(PlainLogins::Allow),
        "loopback" => Ok(PlainLogins::Loopback),
        "deny" => Ok(PlainLogins::Deny),
        _ => Err("expected allow, loopback or deny".into()),
    }
}

/// Whether guests may create accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// `#register` works for anyone (within the registration limits).
    Open,
    /// `#register` is refused with `ERR denied`.
    Closed,
}

fn parse_registration(s: &str) -> Result<Registration, String> {
    match s {
        "open" => Ok(Registration::Open),
        "closed" => Ok(Registration::Closed),
        _ => Err("expected open or closed".into()),
    }
}

fn parse_sync(s: &str) -> Result<Sync, String> {
    match s {
        "normal" => Ok(Sync::Normal),
        "full" => Ok(Sync::Full),
        _ => Err("expected normal or full".into()),
    }
}

/// linechatd: a line-oriented chat daemon. Reach it with nc, telnet or the linechat client.
#[derive(FromArgs, Debug)]
#[argh(
    note = "Every option can also come from the environment variable shown with it; an option on the command line wins. `linechatd health --help` describes the health check."
)]
pub struct Args {
    /// address to listen on for plain TCP, or none (default 127.0.0.1:7878; port 0 picks a
    /// free port) [env LINECHAT_LISTEN]
    #[argh(option, default = "Some(DEFAULT_LISTEN)", from_str_fn(parse_listen))]
    pub listen: Option<SocketAddr>,

    /// address to listen on for TLS, conventionally port 7879 (default: no TLS listener); needs
    /// --tls-cert and --tls-key [env LINECHAT_TLS_LISTEN]
    #[argh(option)]
    pub tls_listen: Option<SocketAddr>,

    /// address to serve Prometheus metrics on, GET /metrics, e.g. 127.0.0.1:9878 (default: off) [env LINECHAT_METRICS_LISTEN]
    #[argh(option)]
    pub metrics_listen: Option<SocketAddr>,

    /// the TLS certificate chain, PEM, leaf first; reloaded on SIGHUP [env LINECHAT_TLS_CERT]
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,

    /// the TLS private key, PEM; reloaded on SIGHUP [env LINECHAT_TLS_KEY]
    #[argh(option)]
    pub tls_key: Option<PathBuf>,

    /// SQLite database file, created if missing (default ./linechat.db) [env LINECHAT_DB]
    #[argh(option, default = "PathBuf::from(DEFAULT_DB)")]
    pub db: PathBuf,

    /// bcrypt cost for new passwords, 4 to 31 (default 12) [env LINECHAT_BCRYPT_COST]
    #[argh(option, default = "DEFAULT_BCRYPT_COST")]
    pub bcrypt_cost: u32,

    /// recent messages replayed on #join, 0 turns it off (default 10, at most 1000) [env LINECHAT_HISTORY_ON_JOIN]
    #[argh(option, default = "DEFAULT_HISTORY_ON_JOIN")]
    pub history_on_join: u32,

    /// messages a returning user missed in a room that #join shows, newest first (default 100, at most 1000) [env LINECHAT_HISTORY_ON_JOIN_MISSED]
    #[argh(option, default = "DEFAULT_HISTORY_ON_JOIN_MISSED")]
    pub history_on_join_missed: u32,

    /// durability: normal (WAL, synchronous=NORMAL) or full (fsync every commit) (default normal) [env LINECHAT_SYNC]
    #[argh(option, default = "Sync::Normal", from_str_fn(parse_sync))]
    pub sync: Sync,

    /// longest accepted line in bytes, line ending excluded (default 4096) [env LINECHAT_MAX_LINE]
    #[argh(option, default = "DEFAULT_MAX_LINE")]
    pub max_line: usize,

    /// most simultaneous connections; more get ERR busy (default 10000) [env LINECHAT_MAX_CONNECTIONS]
    #[argh(option, default = "DEFAULT_MAX_CONNECTIONS")]
    pub max_connections: usize,

    /// items (a reply, or a room's messages committed together) a session's outbound queue
    /// holds before a client that does not read is dropped (default 1024)
    /// [env LINECHAT_SENDQ_LINES]
    #[argh(option, default = "DEFAULT_SENDQ_LINES")]
    pub sendq_lines: usize,

    /// bytes a session's outbound queue holds before a client that does not read is dropped
    /// (default 1048576) [env LINECHAT_SENDQ_BYTES]
    #[argh(option, default = "DEFAULT_SENDQ_BYTES")]
    pub sendq_bytes: usize,

    /// messages a user may send in a burst before the rate limit applies (default 10) [env LINECHAT_RATE_BURST]
    #[argh(option, default = "DEFAULT_RATE_BURST")]
    pub rate_burst: u32,

    /// most simultaneous connections that have not logged in; 0 means no separate limit
    /// (default half of --max-connections) [env LINECHAT_MAX_GUESTS]
    #[argh(option)]
    pub max_guests: Option<usize>,

    /// most simultaneous connections from one IP address that have not logged in; 0 means no
    /// separate limit (default 8) [env LINECHAT_MAX_GUESTS_PER_IP]
    #[argh(option, default = "DEFAULT_MAX_GUESTS_PER_IP")]
    pub max_guests_per_ip: usize,

    /// sustained messages per second per user; 0 disables the rate limit (default 5) [env LINECHAT_RATE_PER_SEC]
    #[argh(option, default = "DEFAULT_RATE_PER_SEC")]
    pub rate_per_sec: u32,

    /// most simultaneous connections from one IP address; 0 means no limit (default 64) [env LINECHAT_MAX_PER_IP]
    #[argh(option, default = "DEFAULT_MAX_PER_IP")]
    pub max_per_ip: usize,

    /// seconds a connection has to log in before it is closed (default 30) [env LINECHAT_LOGIN_TIMEOUT]
    #[argh(option, default = "DEFAULT_LOGIN_TIMEOUT")]
    pub login_timeout: u64,

    /// seconds a logged-in session may send nothing before it is closed (default 600) [env LINECHAT_IDLE_TIMEOUT]
    #[argh(option, default = "DEFAULT_IDLE_TIMEOUT")]
    pub idle_timeout: u64,

    /// failed logins on one connection before it is closed (default 5)
    /// [env LINECHAT_MAX_LOGIN_FAILURES]
    #[argh(option, default = "DEFAULT_MAX_LOGIN_FAILURES")]
    pub max_login_failures: u32,

    /// rate-limit refusals in a row before a flooding connection is closed (default 20)
    /// [env LINECHAT_FLOOD_STRIKES]
    #[argh(option, default = "DEFAULT_FLOOD_STRIKES")]
    pub flood_strikes: u32,

    /// longest the database writer waits, in milliseconds, for more messages to share a
    /// transaction (and a write to each reader); it stops as soon as, at the recent pace, no
    /// other message is due before then; 0 commits at once (default 6)
    /// [env LINECHAT_COMMIT_LINGER_MS]
    #[argh(option, default = "DEFAULT_COMMIT_LINGER_MS")]
    pub commit_linger_ms: u64,

    /// new accounts one client address may create per hour; 0 turns the limit off (default 10)
    /// [env LINECHAT_REGISTER_PER_IP_PER_HOUR]
    #[argh(option, default = "DEFAULT_REGISTER_PER_IP_PER_HOUR")]
    pub register_per_ip_per_hour: u32,

    /// new accounts the whole server creates per hour; 0 turns the limit off (default 600)
    /// [env LINECHAT_REGISTER_PER_HOUR]
    #[argh(option, default = "DEFAULT_REGISTER_PER_HOUR")]
    pub register_per_hour: u32,

    /// passwords (#register, #login) on the plain port: allow, loopback (only from a client on
    /// this machine) or deny (TLS only) (default loopback) [env LINECHAT_PLAIN_LOGINS]
    #[argh(
        option,
        default = "PlainLogins::Loopback",
        from_str_fn(parse_plain_logins)
    )]
    pub plain_logins: PlainLogins,

    /// open: anyone may #register; closed: only `linechatd user add` creates accounts (default
    /// open) [env LINECHAT_REGISTRATION]
    #[argh(
        option,
        default = "Registration::Open",
        from_str_fn(parse_registration)
    )]
    pub registration: Registration,

    /// log lines as text or json (one object per line) on stderr; RUST_LOG sets the level
    /// (default text) [env LINECHAT_LOG_FORMAT]
    #[argh(option, default = "LogFormat::Text")]
    pub log_format: LogFormat,

    /// join a cluster through these NATS servers (with JetStream), comma-separated
    /// nats://HOST:PORT; without it the daemon runs alone [env LINECHAT_CLUSTER]
    #[argh(option)]
    pub cluster: Option<String>,

    /// this node's name in the cluster (default: the host's name) [env LINECHAT_NODE]
    #[argh(option)]
    pub node: Option<String>,

    /// NATS user name, with --cluster-password [env LINECHAT_CLUSTER_USER]
    #[argh(option)]
    pub cluster_user: Option<String>,

    /// NATS password; give it in the environment, where other users of the machine cannot
    /// read it [env LINECHAT_CLUSTER_PASSWORD]
    #[argh(option)]
    pub cluster_password: Option<String>,

    /// NATS token, instead of a user and password; best in the environment
    /// [env LINECHAT_CLUSTER_TOKEN]
    #[argh(option)]
    pub cluster_token: Option<String>,

    /// replicas of the cluster's stream when this node creates it: 1, or 3 on a three-server
    /// JetStream cluster (default 1) [env LINECHAT_CLUSTER_REPLICAS]
    #[argh(option, default = "1")]
    pub cluster_replicas: usize,
}

/// Every option, as spelled on the command line. Each can also come from `LINECHAT_<NAME>`.
pub const OPTIONS: &[&str] = &[
    "listen",
    "tls-listen",
    "tls-cert",
    "tls-key",
    "db",
    "bcrypt-cost",
    "history-on-join",
    "history-on-join-missed",
    "metrics-listen",
    "sync",
    "max-line",
    "max-connections",
    "sendq-lines",
    "sendq-bytes",
    "rate-burst",
    "rate-per-sec",
    "max-per-ip",
    "max-guests",
    "max-guests-per-ip",
    "login-timeout",
    "idle-timeout",
    "max-login-failures",
    "flood-strikes",
    "commit-linger-ms",
    "register-per-ip-per-hour",
    "register-per-hour",
    "registration",
    "plain-logins",
    "log-format",
    "cluster",
    "node",
    "cluster-user",
    "cluster-password",
    "cluster-token",
    "cluster-replicas",
];

/// The environment variable for an option: `max-line` -> `LINECHAT_MAX_LINE`.
pub fn env_name(option: &str) -> String {
    format!("LINECHAT_{}", option.replace('-', "_").to_ascii_uppercase())
}

/// Command-line arguments with options from the environment appended for every option the
/// command line does not give (so flags win).
pub fn with_env(args: &[String], env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut out = args.to_vec();
    for opt in OPTIONS {
        let flag = format!("--{opt}");
        let given = args
            .iter()
            .any(|a| *a == flag || a.starts_with(&format!("{flag}=")));
        if let (false, Some(v)) = (given, env(&env_name(opt))) {
            out.push(flag);
            out.push(v);
        }
    }
    out
}

/// How NATS knows this node.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No authentication.
    #[default]
    None,
    /// A user and password.
    UserPassword(String, String),
    /// A token.
    Token(String),
}

impl std::fmt::Debug for Credentials {
    /// Never prints a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => write!(f, "none"),
            Credentials::UserPassword(user, _) => write!(f, "user {user} with a password"),
            Credentials::Token(_) => write!(f, "a token"),
        }
    }
}

/// Where the cluster is and who this node is in it.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// NATS servers (`nats://HOST:PORT`), tried in turn.
    pub servers: Vec<String>,
    /// This node's name (logs and heartbeats).
    pub node: String,
    /// How to authenticate to NATS.
    pub credentials: Credentials,
    /// Replicas of the stream when this node creates it (1, or 3 on a three-server cluster).
    pub replicas: usize,
}

/// The cluster settings from their flags; `None` without `--cluster`.
fn cluster_config(
    servers: Option<String>,
    node: Option<String>,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
    replicas: usize,
) -> Result<Option<ClusterConfig>, String> {
    let Some(servers) = servers else {
        return match (&node, &user, &password, &token) {
            (None, None, None, None) => Ok(None),
            _ => Err("--node and the --cluster-* credentials need --cluster".into()),
        };
    };
    let servers: Vec<String> = servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if servers.is_empty() {
        return Err("--cluster needs at least one nats://HOST:PORT".into());
    }
    if !(1..=5).contains(&replicas) {
        return Err(format!("--cluster-replicas {replicas} is outside 1..=5"));
    }
    let node = match node {
        Some(n) => n,
        None => std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into()),
    };
    if node.is_empty() || node.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("--node {node:?}: a name without spaces"));
    }
    let credentials = match (user, password, token) {
        (None, None, None) => Credentials::None,
        (Some(u), Some(p), None) => Credentials::UserPassword(u, p),
        (None, None, Some(t)) => Credentials::Token(t),
        (Some(_), None, _) | (None, Some(_), _) => {
            return Err("--cluster-user and --cluster-password go together".into());
        }
        (Some(_), Some(_), Some(_)) => {
            return Err("--cluster-token or --cluster-user/--cluster-password, not both".into());
        }
    };
    Ok(Some(ClusterConfig {
        servers,
        node,
        credentials,
        replicas,
    }))
}

/// The TLS listener's settings.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The daemon's validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen for plain TCP, if at all.
    pub listen: Option<SocketAddr>,
    /// Where to listen for TLS, with the certificate chain and key files.
    pub tls: Option<TlsConfig>,
    /// Where to serve `/metrics`, if at all.
    pub metrics_listen: Option<SocketAddr>,
    /// Database file.
    pub db: PathBuf,
    /// bcrypt cost for new passwords.
    pub bcrypt_cost: u32,
    /// Messages replayed on join.
    pub history_on_join: u32,
    /// Most missed messages replayed on a returning user's join.
    pub history_on_join_missed: u32,
    /// SQLite durability mode.
    pub sync: Sync,
    /// Longest inbound line, bytes.
    pub max_line: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Outbound queue bound, items.
    pub sendq_lines: usize,
    /// Outbound queue bound, bytes.
    pub sendq_bytes: usize,
    /// Message burst per user.
    pub rate_burst: u32,
    /// Sustained messages per second per user; 0 = unlimited.
    pub rate_per_sec: u32,
    /// Connections per IP address; 0 = unlimited.
    pub max_per_ip: usize,
    /// Connections not logged in; 0 = no separate limit.
    pub max_guests: usize,
    /// Connections not logged in per IP address; 0 = no separate limit.
    pub max_guests_per_ip: usize,
    /// Time to log in.
    pub login_timeout: Duration,
    /// Time a logged-in session may stay silent.
    pub idle_timeout: Duration,
    /// Log line format.
    pub log_format: LogFormat,
    /// How long the writer lingers for more messages.
    pub commit_linger: Duration,
    /// Failed logins per connection before it is closed.
    pub max_login_failures: u32,
    /// Rate-limit refusals in a row before the connection is closed.
    pub flood_strikes: u32,
    /// New accounts per client address per hour; 0 = unlimited.
    pub register_per_ip_per_hour: u32,
    /// New accounts per hour in total; 0 = unlimited.
    pub register_per_hour: u32,
    /// Whether `#register` is open.
    pub registration: Registration,
    /// Where passwords may come in plain text.
    pub plain_logins: PlainLogins,
    /// The cluster to join, if any.
    pub cluster: Option<ClusterConfig>,
}

impl Config {
    /// Validates flags into a config; the error is one line for the operator.
    pub fn from_args(a: Args) -> Result<Config, String> {
        if !(4..=31).contains(&a.bcrypt_cost) {
            return Err(format!("--bcrypt-cost {} is outside 4..=31", a.bcrypt_cost));
        }
        if a.history_on_join > MAX_HISTORY_ON_JOIN {
            return Err(format!(
                "--history-on-join {} is above {MAX_HISTORY_ON_JOIN}",
                a.history_on_join
            ));
        }
        if a.history_on_join_missed > MAX_HISTORY_ON_JOIN {
            return Err(format!(
                "--history-on-join-missed {} is above {MAX_HISTORY_ON_JOIN}",
                a.history_on_join_missed
            ));
        }
        if a.commit_linger_ms > MAX_COMMIT_LINGER_MS {
            return Err(format!(
                "--commit-linger-ms {} is above {MAX_COMMIT_LINGER_MS}",
                a.commit_linger_ms
            ));
        }
        if a.max_line < 64 {
            return Err("--max-line must be at least 64".into());
        }
        for (flag, v) in [
            ("--max-connections", a.max_connections),
            ("--sendq-lines", a.sendq_lines),
            ("--sendq-bytes", a.sendq_bytes),
            ("--rate-burst", a.rate_burst as usize),
            ("--login-timeout", a.login_timeout as usize),
            ("--idle-timeout", a.idle_timeout as usize),
            ("--max-login-failures", a.max_login_failures as usize),
            ("--flood-strikes", a.flood_strikes as usize),
        ] {
            if v == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let tls = match (a.tls_listen, a.tls_cert, a.tls_key) {
            (Some(listen), Some(cert), Some(key)) => Some(TlsConfig { listen, cert, key }),
            (None, None, None) => None,
            (Some(_), _, _) => return Err("--tls-listen needs --tls-cert and --tls-key".into()),
            (None, _, _) => return Err("--tls-cert and --tls-key need --tls-listen".into()),
        };
        let cluster = cluster_config(
            a.cluster,
            a.node,
            a.cluster_user,
            a.cluster_password,
            a.cluster_token,
            a.cluster_replicas,
        )?;
        if a.listen.is_none() && tls.is_none() {
            return Err(
                "--listen none needs --tls-listen: there would be nothing to listen on".into(),
            );
        }
        // Port 0 picks a free port for each: never the same one.
        if let Some(m) = a.metrics_listen
            && m.port() != 0
            && (Some(m) == a.listen || Some(m) == a.tls_listen)
        {
            return Err(format!(
                "--metrics-listen {m} is a chat port: metrics get a port of their own"
            ));
        }
        Ok(Config {
            listen: a.listen,
            tls,
            metrics_listen: a.metrics_listen,
            db: a.db,
            bcrypt_cost: a.bcrypt_cost,
            history_on_join: a.history_on_join,
            history_on_join_missed: a.history_on_join_missed,
            sync: a.sync,
            max_line: a.max_line,
            max_connections: a.max_connections,
            sendq_lines: a.sendq_lines,
            sendq_bytes: a.sendq_bytes,
            rate_burst: a.rate_burst,
            rate_per_sec: a.rate_per_sec,
            max_per_ip: a.max_per_ip,
            max_guests: a.max_guests.unwrap_or(a.max_connections / 2),
            max_guests_per_ip: a.max_guests_per_ip,
            login_timeout: Duration::from_secs(a.login_timeout),
            idle_timeout: Duration::from_secs(a.idle_timeout),
            log_format: a.log_format,
            commit_linger: Duration::from_millis(a.commit_linger_ms),
            max_login_failures: a.max_login_failures,
            flood_strikes: a.flood_strikes,
            register_per_ip_per_hour: a.register_per_ip_per_hour,
            register_per_hour: a.register_per_hour,
            registration: a.registration,
            plain_logins: a.plain_logins,
            cluster,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let a = Args::from_args(&["linechatd"], args).map_err(|e| e.output)?;
        Config::from_args(a)
    }

    #[test]
    fn plain_logins_judges_the_client_address() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        for local in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(PlainLogins::Loopback.allows(ip(local)), "{local}");
            assert!(!PlainLogins::Deny.allows(ip(local)), "{local}");
        }
        for remote in [
            "192.168.1.20",
            "10.0.0.1",
            "203.0.113.7",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!PlainLogins::Loopback.allows(ip(remote)), "{remote}");
            assert!(PlainLogins::Allow.allows(ip(remote)), "{remote}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(
            c.listen.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:7878")
        );
        assert_eq!(c.db, PathBuf::from("linechat.db"));
        assert_eq!(c.history_on_join, 10);
        assert_eq!(c.sync, Sync::Normal);
    }

    #[test]
    fn environment_fills_in_and_flags_win() {
        let env = |k: &str| match k {
            "LINECHAT_LISTEN" => Some("0.0.0.0:7878".to_string()),
            "LINECHAT_DB" => Some("/data/linechat.db".to_string()),
            "LINECHAT_MAX_LINE" => Some("100".to_string()),
            _ => None,
        };
        let args: Vec<String> = ["--db", "mine.db"].iter().map(|s| s.to_string()).collect();
        let merged = with_env(&args, env);
        let refs: Vec<&str> = merged.iter().map(|s| s.as_str()).collect();
        let c = parse(&refs).unwrap();
        assert_eq!(
            c.listen.map(|a| a.to_string()).as_deref(),
            Some("0.0.0.0:7878")
        );
        assert_eq!(c.db, PathBuf::from("mine.db"));
        assert_eq!(c.max_line, 100);
        assert_eq!(env_name("rate-per-sec"), "LINECHAT_RATE_PER_SEC");
    }

    #[test]
    fn every_option_is_in_the_list() {
        let help = match Args::from_args(&["linechatd"], &["--help"]) {
            Err(e) => e.output,
            Ok(_) => unreachable!(),
        };
        for opt in OPTIONS {
            assert!(
                help.contains(&format!("--{opt}")),
                "{opt} missing from --help"
            );
            assert!(
                help.contains(&env_name(opt)),
                "{} missing from --help",
                env_name(opt)
            );
        }
        assert_eq!(help.matches("  --").count() - 1, OPTIONS.len(), "{help}");
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--bcrypt-cost", "3"]).is_err());
        assert!(parse(&["--sync", "sometimes"]).is_err());
        assert!(parse(&["--history-on-join", "1001"]).is_err());
        assert!(parse(&["--history-on-join-missed", "1001"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert_eq!(parse(&["--sync", "full"]).unwrap().sync, Sync::Full);
    }
}
