//! The client's byte stream to the server: plain TCP, or TLS over it (rustls, the server's
//! name verified against the system's roots or a given CA file).
//!
//! The line client reads on one thread and writes from another. A plain socket is simply
//! cloned. A TLS session is one state machine for both directions, so the two halves share it
//! behind a mutex that neither holds while waiting: the reader waits for bytes with `peek` on
//! its own handle of the socket, then takes the lock only to decrypt what arrived; the writer
//! takes it to encrypt and send one line.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_rustls::rustls;

/// How to speak TLS: whom to trust and which name the certificate must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of trusted certificates (a self-signed one, say); `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// The name to verify; `None`: the host of the address.
    pub name: Option<String>,
}

/// A client configuration trusting `ca` (or the system's roots), TLS 1.2 and 1.3.
pub fn tls_client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
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

/// A TLS session shared by the two halves.
struct Session {
    tls: rustls::ClientConnection,
    socket: TcpStream,
}

type Shared = Arc<Mutex<Session>>;

fn lock(s: &Shared) -> MutexGuard<'_, Session> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the handshake on `socket` (bounded by its timeouts). A certificate that does not
/// verify is an error saying so.
pub fn handshake(
    socket: TcpStream,
    addr: &str,
    opts: &TlsOptions,
) -> Result<(Reader, Writer), String> {
    let config = tls_client_config(opts.ca.as_deref())?;
    let name = opts.name.clone().unwrap_or_else(|| host_of(addr));
    let server = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|e| format!("bad TLS server name {name}: {e}"))?;
    let mut tls = rustls::ClientConnection::new(config, server).map_err(|e| e.to_string())?;
    let mut sock = socket.try_clone().map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut sock)
            .map_err(|e| format!("TLS handshake with {addr} failed: {e}"))?;
    }
    let peek = socket.try_clone().map_err(|e| e.to_string())?;
    let shared = Arc::new(Mutex::new(Session { tls, socket }));
    Ok((
        Reader(Half::Tls {
            shared: shared.clone(),
            peek,
        }),
        Writer(WriterHalf::Tls(shared)),
    ))
}

/// The plain halves of `socket`.
pub fn plain(socket: TcpStream) -> io::Result<(Reader, Writer)> {
    let writer = socket.try_clone()?;
    Ok((
        Reader(Half::Plain(socket)),
        Writer(WriterHalf::Plain(writer)),
    ))
}

enum Half {
    Plain(TcpStream),
    Tls {
        shared: Shared,
        /// The reader's own handle, to wait for bytes without the lock.
        peek: TcpStream,
    },
}

/// The reading half.
pub struct Reader(Half);

impl Read for Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (shared, peek) = match &mut self.0 {
            Half::Plain(s) => return s.read(buf),
            Half::Tls { shared, peek } => (shared, peek),
        };
        loop {
            {
                let mut s = lock(shared);
                match s.tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            // Nothing decrypted: wait (unlocked) for the next bytes, then take them in.
            let mut one = [0u8; 1];
            if peek.peek(&mut one)? == 0 {
                return Ok(0);
            }
            let mut s = lock(shared);
            let Session { tls, socket } = &mut *s;
            if tls.read_tls(socket)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // Key updates and alerts the session owes the server.
            while tls.wants_write() {
                tls.write_tls(socket)?;
            }
        }
    }
}

enum WriterHalf {
    Plain(TcpStream),
    Tls(Shared),
}

/// The writing half; clones write to the same stream.
pub struct Writer(WriterHalf);

impl Writer {
    /// Another handle on the same stream.
    pub fn try_clone(&self) -> io::Result<Writer> {
        Ok(Writer(match &self.0 {
            WriterHalf::Plain(s) => WriterHalf::Plain(s.try_clone()?),
            WriterHalf::Tls(shared) => WriterHalf::Tls(shared.clone()),
        }))
    }

    /// Bounds reads (both halves share the socket's timeout).
    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match &self.0 {
            WriterHalf::Plain(s) => s.set_read_timeout(d),
            WriterHalf::Tls(shared) => lock(shared).socket.set_read_timeout(d),
        }
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// One call, one TLS record where it fits: the line is encrypted and sent whole.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.0 {
            WriterHalf::Plain(s) => s.write_all(buf),
            WriterHalf::Tls(shared) => {
                let mut s = lock(shared);
                let Session { tls, socket } = &mut *s;
                tls.writer().write_all(buf)?;
                while tls.wants_write() {
                    tls.write_tls(socket)?;
                }
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_an_address() {
        assert_eq!(host_of("example.org:7879"), "example.org");
        assert_eq!(host_of("127.0.0.1:7879"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7879"), "::1");
    }
}
