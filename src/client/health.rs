//! `linechatd health`: the container health check. Connects to a running daemon, sends
//! `#health`, and succeeds only on `OK health` (the daemon answers and its store answers).

use super::transport::{self, TlsOptions};
use argh::FromArgs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Default seconds to wait for the answer.
pub const DEFAULT_TIMEOUT: u64 = 5;

/// check that a running linechatd answers and its database works; exits 0 if healthy, 1 with
/// one line saying why not
#[derive(FromArgs, Debug)]
pub struct HealthArgs {
    /// address of the daemon (default: the address in LINECHAT_LISTEN, with 0.0.0.0 or :: read
    /// as loopback, else 127.0.0.1:7878)
    #[argh(option)]
    pub addr: Option<String>,

    /// seconds to wait for the answer (default 5)
    #[argh(option, default = "DEFAULT_TIMEOUT")]
    pub timeout: u64,

    /// speak TLS to the daemon's TLS port (the certificate is verified)
    #[argh(switch)]
    pub tls: bool,

    /// with --tls: trust the certificates in this PEM file (e.g. a self-signed one) instead of
    /// the system's roots
    #[argh(option)]
    pub tls_ca: Option<std::path::PathBuf>,

    /// with --tls: the name the certificate must carry (default: the host of --addr)
    #[argh(option)]
    pub tls_name: Option<String>,
}

/// How the check speaks TLS: whom it trusts and which name it verifies.
#[derive(Debug, Clone)]
pub struct TlsCheck {
    /// A PEM file of trusted certificates; `None` for the system's roots.
    pub ca: Option<std::path::PathBuf>,
    /// The server name to verify.
    pub name: String,
}

/// Where to check when no `--addr` is given: the daemon's own listen address from the
/// environment, a wildcard address meaning this host's loopback.
pub fn default_addr(listen: Option<&str>) -> String {
    let addr = listen.and_then(|l| l.parse::<SocketAddr>().ok());
    match addr {
        Some(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(match a.ip() {
                    IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                });
            }
            a.to_string()
        }
        None => crate::config::DEFAULT_LISTEN.to_string(),
    }
}

/// Runs the check: `Ok` if the daemon at `addr` replied `OK health` within `timeout`, over
/// TLS when `tls` says how.
pub fn check(addr: &str, timeout: Duration, tls: Option<&TlsCheck>) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let target = addr
        .to_socket_addrs()
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("bad address {addr}"))?;
    let stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {}s", timeout.as_secs()))
    };
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let (reader, mut writer) = match tls {
        None => transport::plain(stream.try_clone().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?,
        Some(t) => {
            let opts = TlsOptions {
                ca: t.ca.clone(),
                name: Some(t.name.clone()),
            };
            transport::handshake(stream.try_clone().map_err(|e| e.to_string())?, addr, &opts)?
        }
    };
    writer
        .write_all(b"#health\r\n#quit\r\n")
        .map_err(|e| format!("cannot talk to {addr}: {e}"))?;
    let mut reader = BufReader::new(reader);
    let mut line = String::new();
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => return Err(format!("{addr} closed the connection without answering")),
            Ok(_) => {}
            Err(e) => return Err(format!("no answer from {addr}: {e}")),
        }
        let l = line.trim_end();
        if l.starts_with("INFO ") {
            continue;
        }
        return if l == "OK health" {
            Ok(())
        } else {
            Err(format!("{addr} is unhealthy: {l}"))
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_address() {
        assert_eq!(default_addr(None), "127.0.0.1:7878");
        assert_eq!(default_addr(Some("0.0.0.0:9000")), "127.0.0.1:9000");
        assert_eq!(default_addr(Some("[::]:9000")), "[::1]:9000");
        assert_eq!(default_addr(Some("10.0.0.5:7878")), "10.0.0.5:7878");
        assert_eq!(default_addr(Some("nonsense")), "127.0.0.1:7878");
    }
}
