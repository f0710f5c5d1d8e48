//! Command-line flags (argh) turned into a validated [`Config`]; every default is a named const.

use argh::FromArgs;
use std::net::SocketAddr;
use std::path::PathBuf;

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

fn parse_sync(s: &str) -> Result<Sync, String> {
    match s {
        "normal" => Ok(Sync::Normal),
        "full" => Ok(Sync::Full),
        _ => Err("expected normal or full".into()),
    }
}

/// linechatd: a line-oriented chat daemon. Reach it with nc, telnet or the linechat client.
#[derive(FromArgs, Debug)]
pub struct Args {
    /// address to listen on (default 127.0.0.1:7878; port 0 picks a free port)
    #[argh(option, default = "DEFAULT_LISTEN")]
    pub listen: SocketAddr,

    /// SQLite database file, created if missing (default ./linechat.db)
    #[argh(option, default = "PathBuf::from(DEFAULT_DB)")]
    pub db: PathBuf,

    /// bcrypt cost for new passwords, 4 to 31 (default 12)
    #[argh(option, default = "DEFAULT_BCRYPT_COST")]
    pub bcrypt_cost: u32,

    /// recent messages replayed on #join, 0 turns it off (default 10, at most 1000)
    #[argh(option, default = "DEFAULT_HISTORY_ON_JOIN")]
    pub history_on_join: u32,

    /// durability: normal (WAL, synchronous=NORMAL) or full (fsync every commit) (default normal)
    #[argh(option, default = "Sync::Normal", from_str_fn(parse_sync))]
    pub sync: Sync,

    /// longest accepted line in bytes, line ending excluded (default 4096)
    #[argh(option, default = "DEFAULT_MAX_LINE")]
    pub max_line: usize,

    /// most simultaneous connections; more get ERR busy (default 10000)
    #[argh(option, default = "DEFAULT_MAX_CONNECTIONS")]
    pub max_connections: usize,

    /// lines a session's outbound queue holds before a client that does not read is dropped
    /// (default 1024)
    #[argh(option, default = "DEFAULT_SENDQ_LINES")]
    pub sendq_lines: usize,

    /// bytes a session's outbound queue holds before a client that does not read is dropped
    /// (default 1048576)
    #[argh(option, default = "DEFAULT_SENDQ_BYTES")]
    pub sendq_bytes: usize,
}

/// The daemon's validated settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Database file.
    pub db: PathBuf,
    /// bcrypt cost for new passwords.
    pub bcrypt_cost: u32,
    /// Messages replayed on join.
    pub history_on_join: u32,
    /// SQLite durability mode.
    pub sync: Sync,
    /// Longest inbound line, bytes.
    pub max_line: usize,
    /// Most simultaneous connections.
    pub max_connections: usize,
    /// Outbound queue bound, lines.
    pub sendq_lines: usize,
    /// Outbound queue bound, bytes.
    pub sendq_bytes: usize,
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
        if a.max_line < 64 {
            return Err("--max-line must be at least 64".into());
        }
        for (flag, v) in [
            ("--max-connections", a.max_connections),
            ("--sendq-lines", a.sendq_lines),
            ("--sendq-bytes", a.sendq_bytes),
        ] {
            if v == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        Ok(Config {
            listen: a.listen,
            db: a.db,
            bcrypt_cost: a.bcrypt_cost,
            history_on_join: a.history_on_join,
            sync: a.sync,
            max_line: a.max_line,
            max_connections: a.max_connections,
            sendq_lines: a.sendq_lines,
            sendq_bytes: a.sendq_bytes,
        })
    }

    /// A config with every default, listening on `listen` and storing in `db`.
    pub fn with_defaults(listen: SocketAddr, db: PathBuf) -> Config {
        Config {
            listen,
            db,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            history_on_join: DEFAULT_HISTORY_ON_JOIN,
            sync: Sync::Normal,
            max_line: DEFAULT_MAX_LINE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            sendq_lines: DEFAULT_SENDQ_LINES,
            sendq_bytes: DEFAULT_SENDQ_BYTES,
        }
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
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.db, PathBuf::from("linechat.db"));
        assert_eq!(c.history_on_join, 10);
        assert_eq!(c.sync, Sync::Normal);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(parse(&["--bcrypt-cost", "3"]).is_err());
        assert!(parse(&["--sync", "sometimes"]).is_err());
        assert!(parse(&["--history-on-join", "1001"]).is_err());
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert_eq!(parse(&["--sync", "full"]).unwrap().sync, Sync::Full);
    }
}
