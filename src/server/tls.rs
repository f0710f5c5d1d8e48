//! TLS for the `--tls-listen` port: the certificate chain and key from PEM files, rustls with the
//! ring provider, TLS 1.2 and 1.3 only, and a reload (on SIGHUP) that swaps the configuration
//! for new connections without touching open ones. A reload that fails keeps the old one.

use crate::protocol::ProtoError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// The TLS listener's certificate, reloadable.
#[derive(Debug)]
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Loads `cert` (a PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, String> {
        let config = server_config(cert, key)?;
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Reads the files again; on success new handshakes use them, on failure nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not fit together: {e}"))
}

/// Whether the first bytes a client sent look like a TLS handshake record (a ClientHello):
/// content type 22, protocol major version 3.
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, ..])
}

/// Waits until the client has sent something and tells whether it is a TLS handshake; `None`
/// if it closed first. Reads nothing: the bytes stay for the handshake (or the plain session).
pub async fn peek_is_tls(stream: &TcpStream) -> io::Result<Option<bool>> {
    let mut first = [0u8; 2];
    loop {
        let n = stream.peek(&mut first).await?;
        if n == 0 {
            return Ok(None);
        }
        if n >= 2 || first[0] != 0x16 {
            return Ok(Some(looks_like_tls(&first[..n])));
        }
        // Only the record type so far; the version byte is on its way (the caller bounds the
        // wait).
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The TLS handshake, within the login timeout. A client that opens with plain text is told
/// so in plain text; a failed handshake is logged once.
pub async fn handshake(
    mut stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    id: crate::SessionId,
    peer: std::net::SocketAddr,
    limit: std::time::Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let attempt = async {
        match peek_is_tls(&stream).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => {
                log::info!(conn = id, peer:% = peer; "spoke plain text to the TLS port");
                let _ = stream
                    .write_all(&ProtoError::tls_expected().to_bytes())
                    .await;
                let _ = stream.shutdown().await;
                return None;
            }
            Ok(None) | Err(_) => return None,
        }
        match acceptor.accept(stream).await {
            Ok(tls) => Some(tls),
            Err(e) => {
                log::info!(conn = id, peer:% = peer; "TLS handshake failed: {e}");
                None
            }
        }
    };
    match tokio::time::timeout(limit, attempt).await {
        Ok(tls) => tls,
        Err(_) => {
            log::info!(conn = id, peer:% = peer; "TLS handshake not done within {} s", limit.as_secs());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_hello_is_told_from_text() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(b"#login alice x"));
        assert!(!looks_like_tls(b"GET / HTTP/1.1"));
        assert!(!looks_like_tls(&[0x16]));
    }

    #[test]
    fn bad_files_are_refused_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let e = Tls::load(&cert, &key).unwrap_err();
        assert!(e.contains("cert.pem"), "{e}");
        std::fs::write(&cert, "not a certificate").unwrap();
        let e = Tls::load(&cert, &key).unwrap_err();
        assert!(e.contains("no certificate in"), "{e}");
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.key_pair.serialize_pem()).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        // A key of another certificate does not fit; the old configuration stays.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&key, other.key_pair.serialize_pem()).unwrap();
        let e = tls.reload().unwrap_err();
        assert!(e.contains("do not fit"), "{e}");
    }
}
