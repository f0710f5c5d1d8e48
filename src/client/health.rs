//! `linechatd health`: the container health check. Connects to a running daemon, sends
//! `#health`, and succeeds only on `OK health` (the daemon answers and its store answers).

use argh::FromArgs;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
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

/// A client configuration trusting `ca` (or the system's roots).
pub fn tls_client_config(
    ca: Option<&std::path::Path>,
) -> Result<Arc<tokio_rustls::rustls::ClientConfig>, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err("no trusted certificate to verify the server with (give --tls-ca)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The host part of `HOST:PORT` (brackets of an IPv6 address removed).
pub fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
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
    let mut io: Box<dyn ReadWrite> = match tls {
        None => Box::new(stream.try_clone().map_err(|e| e.to_string())?),
        Some(t) => {
            use tokio_rustls::rustls;
            let config = tls_client_config(t.ca.as_deref())?;
            let name = rustls::pki_types::ServerName::try_from(t.name.clone())
                .map_err(|e| format!("bad --tls-name {}: {e}", t.name))?;
            let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
            let sock = stream.try_clone().map_err(|e| e.to_string())?;
            Box::new(rustls::StreamOwned::new(conn, sock))
        }
    };
    io.write_all(b"#health\r\n#quit\r\n")
        .and_then(|()| io.flush())
        .map_err(|e| format!("cannot talk to {addr}: {e}"))?;
    let mut reader = BufReader::new(io);
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

/// A byte stream both ways: a socket, or TLS over one.
trait ReadWrite: std::io::Read + Write {}
impl<T: std::io::Read + Write> ReadWrite for T {}

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

    #[test]
    fn host_of_an_address() {
        assert_eq!(host_of("example.org:7879"), "example.org");
        assert_eq!(host_of("127.0.0.1:7879"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7879"), "::1");
    }
}
