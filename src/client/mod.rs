//! The line client's connection logic: connect, log in (or register) and join; a reader that
//! renders what arrives; reconnecting with capped, jittered backoff; and the piped mode that
//! sends each input line and waits for its acknowledgement.
//!
//! Blocking I/O on plain threads: one reader thread per connection, the caller's thread for
//! input. The connection's writer is shared behind a mutex so the reader can swap in a new one
//! after reconnecting.

pub mod health;
pub mod render;
pub mod transport;

use crate::protocol::ServerLine;
use render::Screen;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use transport::{Reader, TlsOptions, Writer};

/// How long to wait for the server during the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a line may take to be written to the server.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// First reconnect delay; it doubles per failed attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(10);

/// Capped exponential backoff with jitter: attempt n waits a random time between half and all
/// of `min(cap, base * 2^n)`, so reconnecting clients do not arrive in lockstep.
#[derive(Debug, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    /// The next delay; `unit` is a random number in [0, 1).
    pub fn next(&mut self, unit: f64) -> Duration {
        let full = BACKOFF_BASE
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(BACKOFF_CAP);
        self.attempt = self.attempt.saturating_add(1);
        full.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying: refused, reset, server busy or failing.
    Transient(String),
    /// Retrying cannot help: wrong password, bad name, name taken.
    Fatal(String),
}

impl Failure {
    /// The message for the user.
    pub fn message(&self) -> &str {
        match self {
            Failure::Transient(m) | Failure::Fatal(m) => m,
        }
    }
}

/// Who to be and where to go.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Server addresses, tried in turn (nodes of one service): never empty.
    pub addrs: Vec<String>,
    /// User name.
    pub user: String,
    /// Password, kept in memory for reconnecting.
    pub password: String,
    /// Create the account first (only on the very first connection).
    pub register: bool,
    /// Speak TLS, trusting and verifying as this says; `None` for plain TCP.
    pub tls: Option<TlsOptions>,
}

/// One connection: a line reader and a writer on the same stream (TLS or not).
pub struct Conn {
    reader: BufReader<Reader>,
    writer: Writer,
}

impl Conn {
    /// Connects (trying every address the name resolves to), over TLS if `tls` says how. A
    /// certificate that does not verify is fatal: retrying cannot help.
    pub fn connect(addr: &str, tls: Option<&TlsOptions>) -> Result<Conn, Failure> {
        let addrs: Vec<_> = addr
            .to_socket_addrs()
            .map_err(|e| Failure::Fatal(format!("bad address {addr}: {e}")))?
            .collect();
        let mut last = None;
        for a in addrs {
            match TcpStream::connect_timeout(&a, HANDSHAKE_TIMEOUT) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    // A write the server does not take within this time fails the connection
                    // (and it is re-established): on TLS a stuck write holds the session the
                    // reader needs, so it must not wait for ever.
                    let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
                    let (reader, writer) = match tls {
                        None => {
                            transport::plain(s).map_err(|e| Failure::Transient(e.to_string()))?
                        }
                        Some(opts) => {
                            let _ = s.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
                            transport::handshake(s, addr, opts).map_err(Failure::Fatal)?
                        }
                    };
                    return Ok(Conn {
                        reader: BufReader::new(reader),
                        writer,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Failure::Transient(match last {
            Some(e) => format!("cannot connect to {addr}: {e}"),
            None => format!("{addr} resolves to no address"),
        }))
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) -> io::Result<()> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())
    }

    /// Reads one line without its ending; `None` at end of stream.
    pub fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut buf = Vec::new();
        if self.reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        let s = String::from_utf8_lossy(&buf);
        Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()))
    }

    fn expect_reply(&mut self, verb: &str) -> Result<String, Failure> {
        loop {
            let line = self
                .read_line()
                .map_err(|e| Failure::Transient(format!("connection failed: {e}")))?
                .ok_or_else(|| Failure::Transient("the server closed the connection".into()))?;
            match ServerLine::parse(&line) {
                ServerLine::Ok(v, _) if v == verb => return Ok(line),
                ServerLine::Err(code, text) => {
                    let msg = format!("{text} ({code})");
                    return Err(match code {
                        "busy" | "storage" | "timeout" | "ratelimit" => Failure::Transient(msg),
                        _ => Failure::Fatal(msg),
                    });
                }
                _ => continue, // the greeting
            }
        }
    }

    /// Logs in (or registers) and joins `room` on the first of the addresses that answers.
    /// Returns the `OK join` line; the welcome and replay follow on the connection.
    pub fn establish(id: &Identity, room: &str) -> Result<(Conn, String), Failure> {
        Self::establish_from(id, room, 0).map(|(c, ok, _)| (c, ok))
    }

    /// [`Conn::establish`] trying the addresses from index `start` on, wrapping around: a
    /// transient failure moves on to the next address, a fatal one (a wrong password, a
    /// certificate that does not verify) ends the attempt. Returns the index that answered.
    pub fn establish_from(
        id: &Identity,
        room: &str,
        start: usize,
    ) -> Result<(Conn, String, usize), Failure> {
        let n = id.addrs.len();
        let mut last = Failure::Fatal("no server address".into());
        for k in 0..n {
            let i = (start + k) % n;
            match Self::establish_at(&id.addrs[i], id, room) {
                Ok((c, ok)) => return Ok((c, ok, i)),
                Err(Failure::Fatal(m)) => return Err(Failure::Fatal(m)),
                Err(transient) => last = transient,
            }
        }
        Err(last)
    }

    fn establish_at(addr: &str, id: &Identity, room: &str) -> Result<(Conn, String), Failure> {
        let mut c = Conn::connect(addr, id.tls.as_ref())?;
        let _ = c.writer.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
        let verb = if id.register { "register" } else { "login" };
        let io = |e: io::Error| Failure::Transient(format!("connection failed: {e}"));
        c.send(&format!("#{verb} {} {}", id.user, id.password))
            .map_err(io)?;
        c.expect_reply(verb)?;
        c.send(&format!("#join {room}")).map_err(io)?;
        let ok = c.expect_reply("join")?;
        let _ = c.writer.set_read_timeout(None);
        Ok((c, ok))
    }
}

/// What the reader thread has seen, for the input side to wait on.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Our own `MSG` lines (acknowledgements).
    pub acks: u64,
    /// `ERR` lines, and the last one.
    pub errors: u64,
    /// The last `ERR` line.
    pub last_error: String,
    /// `PONG` lines.
    pub pongs: u64,
    /// The connection is gone for good.
    pub closed: bool,
    /// The room we are in (follows `OK join`, for rejoining after a reconnect).
    pub room: String,
}

/// The state shared by the input side and the reader thread.
pub struct Link {
    writer: Mutex<Option<Writer>>,
    seen: Mutex<Seen>,
    changed: Condvar,
    /// Pings sent by the client itself, whose `PONG` is not shown.
    quiet_pongs: Mutex<u64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Link {
    /// A link around an established connection's writer.
    pub fn new(conn: &Conn, room: &str) -> Arc<Link> {
        Arc::new(Link {
            writer: Mutex::new(conn.writer.try_clone().ok()),
            seen: Mutex::new(Seen {
                room: room.to_string(),
                ..Seen::default()
            }),
            changed: Condvar::new(),
            quiet_pongs: Mutex::new(0),
        })
    }

    /// Sends a line; false if not connected right now.
    pub fn send(&self, line: &str) -> bool {
        match lock(&self.writer).as_mut() {
            Some(w) => w.write_all(format!("{line}\r\n").as_bytes()).is_ok(),
            None => false,
        }
    }

    /// Sends `#ping` whose `PONG` the reader will not show.
    pub fn quiet_ping(&self) -> bool {
        *lock(&self.quiet_pongs) += 1;
        self.send("#ping")
    }

    /// A snapshot of what was seen.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        lock(&self.seen)
    }

    /// Waits until `done` holds (or the connection closed, or `timeout` passed); returns what
    /// was seen by then.
    pub fn wait(&self, timeout: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let guard = lock(&self.seen);
        self.changed
            .wait_timeout_while(guard, timeout, |s| !done(s) && !s.closed)
            .map(|(g, _)| g.clone())
            .unwrap_or_else(|e| e.into_inner().0.clone())
    }

    fn update(&self, f: impl FnOnce(&mut Seen)) {
        f(&mut lock(&self.seen));
        self.changed.notify_all();
    }
}

/// Where the reader thread puts screen lines.
pub trait Output: Send {
    /// Shows one line.
    fn show(&mut self, line: String);
}

/// The reader thread: renders every line that arrives; on loss, reconnects (if `reconnect`)
/// with backoff, logs in again and rejoins the room. Returns when the connection is closed for
/// good (after `#quit`, a kick or ban, a fatal failure, or a loss without `reconnect`).
pub fn read_loop(
    mut conn: Conn,
    link: Arc<Link>,
    id: Identity,
    screen: Screen,
    raw: Arc<std::sync::atomic::AtomicBool>,
    reconnect: bool,
    mut out: Box<dyn Output>,
) {
    let mut quitting = false;
    // Kicked or banned: the connection's end is not a loss to repair.
    let mut put_out = false;
    // The address in use: after a loss the next one is tried first.
    let mut at = 0;
    loop {
        match conn.read_line() {
            Ok(Some(line)) => {
                let parsed = ServerLine::parse(&line);
                match parsed {
                    ServerLine::Msg(_, name, _) if name.eq_ignore_ascii_case(&id.user) => {
                        link.update(|s| s.acks += 1)
                    }
                    ServerLine::Err(code, _) => {
                        // An admin closed this session: coming back at once would undo it.
                        put_out |= matches!(code, "kicked" | "banned");
                        link.update(|s| {
                            s.errors += 1;
                            s.last_error = line.clone();
                        })
                    }
                    ServerLine::Pong => {
                        let mut quiet = lock(&link.quiet_pongs);
                        let hide = *quiet > 0;
                        if hide {
                            *quiet -= 1;
                        }
                        drop(quiet);
                        link.update(|s| s.pongs += 1);
                        if hide {
                            continue;
                        }
                    }
                    ServerLine::Ok("join", args) => {
                        let room = args.split(' ').next().unwrap_or("").to_string();
                        link.update(|s| s.room = room);
                    }
                    ServerLine::Ok("quit", _) => quitting = true,
                    _ => {}
                }
                if raw.load(std::sync::atomic::Ordering::Relaxed) {
                    out.show(line);
                } else if let Some(shown) =
                    screen.render(&line, &chrono::Local::now().format("%H:%M").to_string())
                {
                    out.show(shown);
                }
            }
            Ok(None) | Err(_) => {
                *lock(&link.writer) = None;
                if quitting || put_out || !reconnect {
                    if put_out {
                        out.show("-!- an admin closed the connection; not reconnecting".into());
                    } else if !quitting {
                        out.show(format!(
                            "-!- the server closed the connection ({})",
                            id.addrs[at]
                        ));
                    }
                    link.update(|s| s.closed = true);
                    return;
                }
                out.show(format!(
                    "-!- connection to {} lost; reconnecting",
                    id.addrs[at]
                ));
                match reconnect_loop(&link, &id, &mut out, at + 1) {
                    Some((c, ok, i)) => {
                        conn = c;
                        at = i;
                        *lock(&link.writer) = conn.writer.try_clone().ok();
                        out.show(format!("-!- reconnected to {}", id.addrs[at]));
                        if let Some(shown) = screen.render(&ok, "") {
                            out.show(shown);
                        }
                    }
                    None => {
                        link.update(|s| s.closed = true);
                        return;
                    }
                }
            }
        }
    }
}

/// Logs in again with backoff, trying the addresses from `start` on each round.
fn reconnect_loop(
    link: &Link,
    id: &Identity,
    out: &mut Box<dyn Output>,
    start: usize,
) -> Option<(Conn, String, usize)> {
    let mut backoff = Backoff::default();
    let login = Identity {
        register: false, // the account exists by now
        ..id.clone()
    };
    loop {
        let delay = backoff.next(fastrand::f64());
        std::thread::sleep(delay);
        let room = link.seen().room.clone();
        match Conn::establish_from(&login, &room, start) {
            Ok(c) => return Some(c),
            Err(Failure::Fatal(m)) => {
                out.show(format!("!!! cannot log in again: {m}"));
                return None;
            }
            Err(Failure::Transient(m)) => {
                out.show(format!("-!- {m}; retrying"));
            }
        }
    }
}

/// Whether the server echoes `line` back to its sender (a chat line, `#me`, `#msg`): the
/// interactive client then erases the typed line, and the echo stands in its place.
pub fn is_echoed(line: &str) -> bool {
    match line.strip_prefix('#') {
        None => true,
        Some(rest) => {
            rest.starts_with('#')
                || matches!(
                    crate::protocol::Verb::of_line(line),
                    Some(crate::protocol::Verb::Me | crate::protocol::Verb::Msg)
                )
        }
    }
}

/// The terminal rows a typed line took after its prompt, at `cols` columns (one character,
/// one column: wide characters make it an underestimate).
pub fn typed_rows(prompt: &str, line: &str, cols: usize) -> usize {
    (prompt.chars().count() + line.chars().count())
        .max(1)
        .div_ceil(cols.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_lines_and_their_rows() {
        for line in ["hello", "##tag", "#me waves", "#ME waves", "#msg bob hi"] {
            assert!(is_echoed(line), "{line}");
        }
        for line in ["#users", "#join x", "#search me", "#mess"] {
            assert!(!is_echoed(line), "{line}");
        }
        assert_eq!(typed_rows("[g] ", "hi", 80), 1);
        assert_eq!(typed_rows("[g] ", &"x".repeat(76), 80), 1);
        assert_eq!(typed_rows("[g] ", &"x".repeat(77), 80), 2);
        assert_eq!(typed_rows("[g] ", "é", 0), 5);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::default();
        assert_eq!(b.next(1.0), Duration::from_millis(250));
        assert_eq!(b.next(0.0), Duration::from_millis(250)); // half of 500
        assert_eq!(b.next(1.0), Duration::from_millis(1000));
        for _ in 0..40 {
            let d = b.next(0.5);
            assert!(d <= BACKOFF_CAP);
        }
        assert_eq!(b.next(1.0), BACKOFF_CAP);
        assert_eq!(b.next(0.0), BACKOFF_CAP / 2);
    }
}
