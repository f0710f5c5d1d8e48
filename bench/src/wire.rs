//! The load generator's connections: a TCP socket, or TLS over it (`--tls`), split into a
//! read side and a write side that different tasks (and the pacer's plain thread) drive.
//!
//! With TLS both sides share one rustls session behind a mutex held only to encrypt or
//! decrypt, never across a wait: the write side seals a whole burst into records, then writes
//! the bytes; the read side reads what the socket has, then opens it. One writer at a time per
//! connection (setup, then its sender task or the pacer) keeps the records in order.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, pki_types::ServerName};

/// How every connection of this run speaks TLS, if `--tls` was given: set once in `main`
/// (the whole run speaks one way to one server).
pub static TLS: OnceLock<(Arc<ClientConfig>, ServerName<'static>)> = OnceLock::new();

type Session = Arc<Mutex<ClientConnection>>;

fn lock(s: &Session) -> MutexGuard<'_, ClientConnection> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// A client socket from 127.0.0.x (x spread over 1..=250), so per-address limits stay out of
/// it; over TLS once the handshake is done.
pub async fn connect(addr: SocketAddr, i: usize) -> io::Result<(Rx, Tx)> {
    let sock = TcpSocket::new_v4()?;
    if addr.ip().is_loopback() {
        let src = Ipv4Addr::new(127, 0, (i / 250 % 250) as u8, (i % 250 + 1) as u8);
        sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    let Some((config, name)) = TLS.get() else {
        let (r, w) = s.into_split();
        return Ok((Rx { half: r, tls: None }, Tx { half: w, tls: None }));
    };
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let (s, conn) = connector.connect(name.clone(), s).await?.into_inner();
    let session = Arc::new(Mutex::new(conn));
    let (r, w) = s.into_split();
    Ok((
        Rx {
            half: r,
            tls: Some(Opening {
                session: session.clone(),
                raw: vec![0; 64 * 1024],
                plain: Vec::new(),
                at: 0,
            }),
        },
        Tx {
            half: w,
            tls: Some(session),
        },
    ))
}

/// The read side of a connection.
pub struct Rx {
    half: OwnedReadHalf,
    tls: Option<Opening>,
}

/// What the read side of a TLS connection keeps: the session, and what it has opened and not
/// yet handed out.
struct Opening {
    session: Session,
    raw: Vec<u8>,
    plain: Vec<u8>,
    at: usize,
}

impl AsyncRead for Rx {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(t) = &mut this.tls else {
            return Pin::new(&mut this.half).poll_read(cx, buf);
        };
        loop {
            if t.at < t.plain.len() {
                let n = buf.remaining().min(t.plain.len() - t.at);
                buf.put_slice(&t.plain[t.at..t.at + n]);
                t.at += n;
                return Poll::Ready(Ok(()));
            }
            t.plain.clear();
            t.at = 0;
            let mut raw = ReadBuf::new(&mut t.raw);
            ready!(Pin::new(&mut this.half).poll_read(cx, &mut raw))?;
            let mut rest = raw.filled();
            if rest.is_empty() {
                return Poll::Ready(Ok(())); // end of stream
            }
            let mut s = lock(&t.session);
            // Open record by record, taking the plaintext out as it comes (rustls holds only
            // so much of it).
            while !rest.is_empty() {
                s.read_tls(&mut rest)?;
                s.process_new_packets().map_err(io::Error::other)?;
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    match s.reader().read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => t.plain.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        }
    }
}

/// The write side of a connection.
pub struct Tx {
    half: OwnedWriteHalf,
    tls: Option<Session>,
}

impl Tx {
    /// `plain` as it goes on the wire: sealed into TLS records (as few as fit) on TLS.
    fn seal<'a>(&self, plain: &'a [u8]) -> io::Result<std::borrow::Cow<'a, [u8]>> {
        let Some(session) = &self.tls else {
            return Ok(plain.into());
        };
        let mut s = lock(session);
        s.writer().write_all(plain)?;
        let mut out = Vec::with_capacity(plain.len() + 64);
        while s.wants_write() {
            s.write_tls(&mut out)?;
        }
        Ok(out.into())
    }

    /// Writes all of `buf`.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let wire = self.seal(buf)?;
        self.half.write_all(&wire).await
    }

    /// Writes all of `buf` from a plain thread (the pacer), waiting out a full socket.
    pub fn write_fully(&self, buf: &[u8]) -> io::Result<()> {
        let wire = self.seal(buf)?;
        let mut rest = &wire[..];
        while !rest.is_empty() {
            match self.half.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(100))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
