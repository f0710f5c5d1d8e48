//! Test harness: the real `linechatd` binary on port 0 with a temp database, and a line client
//! with a timeout on every read. No sleeps: tests synchronise on replies (a `#ping` is a barrier,
//! since a session's replies are in order).
#![allow(dead_code)]

pub mod nats;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The `linechatd` binary under test. Cargo names it to this package's tests; the load
/// generator's tests (another package of the workspace) find it beside their own executable,
/// in the same target directory and profile.
pub fn daemon() -> PathBuf {
    built(option_env!("CARGO_BIN_EXE_linechatd"), "linechatd")
}

/// The `linechat` client binary under test (see [`daemon`]).
pub fn line_client() -> PathBuf {
    built(option_env!("CARGO_BIN_EXE_linechat"), "linechat")
}

fn built(named: Option<&str>, name: &str) -> PathBuf {
    if let Some(path) = named {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "build {name} first: {} is missing",
        path.display()
    );
    path
}

/// Runs the line client with `args`, the password in `LINECHAT_PASSWORD` (if any) and `input`
/// on its standard input (piped mode); its output once it exits.
pub fn linechat(args: &[&str], password: Option<&str>, input: &str) -> std::process::Output {
    let mut cmd = Command::new(line_client());
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = password {
        cmd.env("LINECHAT_PASSWORD", p);
    }
    let mut child = cmd.spawn().expect("the line client");
    // A client that fails early exits without reading its input: a broken pipe here is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("the line client's output")
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made now (nothing secret is
/// committed) and written as `dir/cert.pem` and `dir/key.pem`.
pub fn self_signed(dir: &Path) -> rcgen::CertifiedKey {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("a test certificate");
    std::fs::write(dir.join("cert.pem"), made.cert.pem()).expect("cert.pem");
    std::fs::write(dir.join("key.pem"), made.key_pair.serialize_pem()).expect("key.pem");
    made
}

/// Every read waits at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The password every test user has.
pub const PASS: &str = "s3cret-pass";

/// A running daemon.
pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub db: PathBuf,
    _dir: Option<tempfile::TempDir>,
    log: mpsc::Receiver<String>,
    all_log: Arc<Mutex<Vec<String>>>,
    /// The TLS port, for a daemon started with `--tls-listen`.
    pub tls_addr: Option<SocketAddr>,
}

impl TestServer {
    /// A daemon on a fresh temp database with a TLS listener (`args` has `--tls-listen`,
    /// `--tls-cert`, `--tls-key`; with `--listen none` it has no plain port).
    pub fn start_tls(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("linechat.db");
        let (child, log, all_log) = spawn(&db, args);
        let mut s = TestServer {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            db,
            _dir: Some(dir),
            log,
            all_log,
            tls_addr: None,
        };
        if !args.windows(2).any(|w| w == ["--listen", "none"]) {
            s.addr = s.wait_listening();
        }
        s.tls_addr = Some(s.wait_addr("listening for TLS on "));
        s
    }

    /// A daemon on a fresh temp database.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// A daemon on a fresh temp database with extra flags.
    pub fn start_with(args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("linechat.db");
        let mut s = Self::start_on(&db, args);
        s._dir = Some(dir);
        s
    }

    /// A daemon on the given database file (for restarts).
    pub fn start_on(db: &Path, args: &[&str]) -> TestServer {
        Self::started(spawn(db, args), db, None)
    }

    /// Wraps a launched daemon and waits until it listens.
    fn started(launched: Launched, db: &Path, dir: Option<tempfile::TempDir>) -> TestServer {
        let (child, log, all_log) = launched;
        let mut s = TestServer {
            child: Some(child),
            addr: "127.0.0.1:1".parse().unwrap(),
            db: db.to_path_buf(),
            _dir: dir,
            log,
            all_log,
            tls_addr: None,
        };
        s.addr = s.wait_listening();
        s
    }

    /// A daemon on a fresh temp database whose process may write files of at most `kib` KiB
    /// (soft limit, SIGXFSZ ignored): a full disk, as far as SQLite can tell.
    pub fn start_with_file_limit(kib: u64, args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("linechat.db");
        let script = format!("trap '' XFSZ; ulimit -S -f {kib}; exec \"$0\" \"$@\"");
        let launched = spawn_cmd(
            Command::new("bash").arg("-c").arg(script).arg(daemon()),
            &db,
            args,
        );
        Self::started(launched, &db, Some(dir))
    }

    /// Lifts the file size limit set by [`TestServer::start_with_file_limit`].
    pub fn lift_file_limit(&self) {
        let ok = Command::new("prlimit")
            .arg("--pid")
            .arg(self.pid().to_string())
            .arg("--fsize=unlimited:")
            .status()
            .unwrap()
            .success();
        assert!(ok, "prlimit failed");
    }

    fn wait_listening(&mut self) -> SocketAddr {
        self.wait_addr("listening on ")
    }

    /// Waits for the log line `NEEDLE ADDR` and returns ADDR.
    fn wait_addr(&mut self, needle: &str) -> SocketAddr {
        let line = self
            .wait_log(needle)
            .unwrap_or_else(|| panic!("daemon did not start: {:?}", self.child_status()));
        let rest = line.rsplit(needle).next().unwrap();
        let addr: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        addr.parse().unwrap()
    }

    fn child_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> Option<String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Every log line the daemon wrote. Call after it exited: waits for its stderr to close.
    pub fn all_log(&self) -> Vec<String> {
        while let Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) = self.log.recv_timeout(TIMEOUT) {
            assert!(self.child.is_none(), "all_log() before the daemon exited");
        }
        self.all_log.lock().unwrap().clone()
    }

    /// A new connection whose greeting has been read.
    pub fn client(&self) -> TestClient {
        TestClient::connect(self.addr)
    }

    /// A new connection, registered as `name` (password [`PASS`]).
    pub fn user(&self, name: &str) -> TestClient {
        let mut c = self.client();
        c.send(&format!("#register {name} {PASS}"));
        c.expect(&format!("OK register {name}"));
        c
    }

    /// A new connection, logged in as existing user `name`.
    pub fn login(&self, name: &str) -> TestClient {
        let mut c = self.client();
        c.send(&format!("#login {name} {PASS}"));
        c.expect(&format!("OK login {name}"));
        c
    }

    /// alice and bob, registered, both in `room` (alice first; her JOIN line for bob read).
    pub fn alice_and_bob(&self, room: &str) -> (TestClient, TestClient) {
        let mut a = self.user("alice");
        a.join(room);
        let mut b = self.user("bob");
        b.join(room);
        a.expect(&format!("JOIN {room} bob 2"));
        (a, b)
    }

    /// Runs `linechatd user ARGS... --db DB` on this server's database; its stdout, or a panic
    /// with its stderr.
    pub fn user_tool(&self, args: &[&str]) -> String {
        let out = Command::new(daemon())
            .arg("user")
            .args(args)
            .args(["--db", self.db.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "linechatd user {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Makes `name` an admin with the offline tool.
    pub fn make_admin(&self, name: &str) {
        self.user_tool(&["admin", name]);
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends `signal` (e.g. "TERM", "KILL") and waits for the exit; returns status and how long
    /// it took.
    pub fn signal(&mut self, signal: &str) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} failed");
        let mut child = self.child.take().unwrap();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return (st, started.elapsed());
            }
            assert!(started.elapsed() < TIMEOUT, "daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

type Launched = (Child, mpsc::Receiver<String>, Arc<Mutex<Vec<String>>>);

fn spawn(db: &Path, args: &[&str]) -> Launched {
    spawn_cmd(&mut Command::new(daemon()), db, args)
}

fn spawn_cmd(cmd: &mut Command, db: &Path, args: &[&str]) -> Launched {
    // Most tests send faster than a person types: the rate limit is off unless a test sets it.
    let rate: &[&str] = if args.contains(&"--rate-per-sec") {
        &[]
    } else {
        &["--rate-per-sec", "0"]
    };
    // Cheap hashes keep tests fast, unless a test asks for a real cost.
    let cost: &[&str] = if args.contains(&"--bcrypt-cost") {
        &[]
    } else {
        &["--bcrypt-cost", "4"]
    };
    // Tests register many accounts from one address: the registration limits are off unless
    // a test sets them.
    for flag in ["--register-per-ip-per-hour", "--register-per-hour"] {
        if !args.contains(&flag) {
            cmd.args([flag, "0"]);
        }
    }
    if !args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.arg("--db").arg(db).args(cost).args(rate).args(args);
    launch(cmd)
}

/// Starts `cmd` with stderr captured line by line (and echoed if LINECHAT_TEST_LOG is set).
fn launch(cmd: &mut Command) -> Launched {
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn linechatd");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let all = Arc::new(Mutex::new(Vec::new()));
    let all2 = all.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if std::env::var_os("LINECHAT_TEST_LOG").is_some() {
                eprintln!("{line}");
            }
            all2.lock().unwrap().push(line.clone());
            // Keep draining even when nobody listens, so the daemon never blocks on stderr.
            let _ = tx.send(line);
        }
    });
    (child, rx, all)
}

impl TestServer {
    /// A daemon started by a command the test builds (environment, user, wrapper), storing in
    /// `db`; it must listen on a port it logs.
    pub fn start_command(cmd: &mut Command, db: &Path) -> TestServer {
        Self::started(launch(cmd), db, None)
    }
}

/// Runs the daemon binary to completion (for start-up failures); returns status and stderr.
pub fn run_daemon(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(daemon())
        .args(args)
        .output()
        .expect("run linechatd");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A line-protocol client, like a user with nc.
pub struct TestClient {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl TestClient {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> TestClient {
        let mut c = Self::connect_raw(addr);
        let first = c.line();
        assert!(first.starts_with("INFO linechat "), "{first}");
        let second = c.line();
        assert!(
            second.starts_with("INFO #register NAME PASSWORD"),
            "{second}"
        );
        c
    }

    /// Connects from the loopback address `from` (127.0.0.2, ...: every 127/8 address is this
    /// machine's), so a test can be several client addresses; reads nothing.
    pub fn connect_from(addr: SocketAddr, from: &str) -> TestClient {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let local: SocketAddr = format!("{from}:0").parse().expect("an address");
        socket.bind(&local.into()).expect("bind");
        socket.connect(&addr.into()).expect("connect");
        Self::from_stream(socket.into())
    }

    /// Reads the greeting.
    pub fn greeted(mut self) -> TestClient {
        let first = self.line();
        assert!(first.starts_with("INFO linechat "), "{first}");
        self.line();
        self
    }

    /// Connects without reading anything.
    pub fn connect_raw(addr: SocketAddr) -> TestClient {
        Self::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// Wraps a connected socket; reads nothing.
    pub fn from_stream(s: TcpStream) -> TestClient {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        TestClient {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    /// Sends `line` and a LF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Reads one line; it must end with CRLF, which is removed.
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => panic!("connection closed while waiting for a line"),
            Ok(_) => {}
            Err(e) => panic!("no line within {TIMEOUT:?}: {e}"),
        }
        let s = String::from_utf8(buf).expect("server sent invalid UTF-8");
        s.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("line not ended with CRLF: {s:?}"))
            .to_string()
    }

    /// Reads one line, waiting up to `wait` instead of the usual timeout (a cluster electing a
    /// new stream leader).
    pub fn line_within(&mut self, wait: Duration) -> String {
        self.writer.set_read_timeout(Some(wait)).unwrap();
        let line = self.line();
        self.writer.set_read_timeout(Some(TIMEOUT)).unwrap();
        line
    }

    /// Reads one line; `None` once the connection is closed or broken (no CRLF check).
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) if !buf.ends_with(b"\n") => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&buf)
                    .trim_end_matches("\r\n")
                    .to_string(),
            ),
        }
    }

    /// Sends bytes, ignoring errors (for clients the server may have dropped).
    pub fn send_lossy(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// Reads one line and checks it is exactly `want`.
    pub fn expect(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want);
    }

    /// Reads one line and checks it starts with `prefix`; returns it.
    pub fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line();
        assert!(
            got.starts_with(prefix),
            "expected {prefix:?}..., got {got:?}"
        );
        got
    }

    /// Sends `request` (a history verb) and returns the lines before its `OK VERB N`, checking
    /// that N counts them.
    pub fn history(&mut self, request: &str, verb: &str) -> Vec<String> {
        self.send(request);
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l.starts_with(&format!("OK {verb} ")) {
                assert_eq!(l, format!("OK {verb} {}", lines.len()));
                return lines;
            }
            lines.push(l);
        }
    }

    /// Sends `#ping` and returns every line that arrives before the `PONG`.
    pub fn until_pong(&mut self) -> Vec<String> {
        self.send("#ping");
        let mut lines = Vec::new();
        loop {
            let l = self.line();
            if l == "PONG" {
                return lines;
            }
            lines.push(l);
        }
    }

    /// Checks nothing is pending: the next line after a `#ping` is the `PONG`.
    pub fn expect_quiet(&mut self) {
        let extra = self.until_pong();
        assert!(extra.is_empty(), "unexpected lines: {extra:?}");
    }

    /// `#join ROOM`: checks `OK join ROOM N` and the welcome, returns N and the replayed `HIST`
    /// lines (everything up to a ping barrier; the room must be quiet meanwhile).
    pub fn join(&mut self, room: &str) -> (usize, Vec<String>) {
        self.send(&format!("#join {room}"));
        let ok = self.expect_prefix(&format!("OK join {room} "));
        let n = ok.rsplit(' ').next().unwrap().parse().unwrap();
        self.expect_prefix(&format!("INFO welcome to {room}; here now ({n}):"));
        let hist = self.until_pong();
        (n, hist)
    }

    /// Says `text` and waits for its own `MSG` echo (the acknowledgement).
    pub fn say(&mut self, room: &str, name: &str, text: &str) {
        self.send(text);
        self.expect(&format!("MSG {room} {name} {text}"));
    }

    /// Reads until the server closes the connection; returns the lines read before that.
    pub fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        let mut buf = String::new();
        loop {
            buf.clear();
            match self.reader.read_line(&mut buf) {
                Ok(0) => return lines,
                Ok(_) => lines.push(buf.trim_end_matches("\r\n").to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return lines,
                Err(e) => panic!("connection not closed within {TIMEOUT:?}: {e}"),
            }
        }
    }

    /// True once the server has closed the connection (reads EOF or reset).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
            || matches!(self.reader.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }

    /// Another handle on the same socket.
    pub fn stream_clone(&self) -> TcpStream {
        self.writer.try_clone().unwrap()
    }

    /// Resets the connection (SO_LINGER 0, then close): the server sees RST, not FIN.
    pub fn reset(self) {
        socket2::SockRef::from(&self.writer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }

    /// Closes the socket abruptly.
    pub fn close(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

/// Parses `HIST ID TIME ROOM NAME TEXT` into (id, room, name, text), checking TIME's shape.
pub fn parse_hist(line: &str) -> (i64, String, String, String) {
    let rest = line
        .strip_prefix("HIST ")
        .unwrap_or_else(|| panic!("not HIST: {line}"));
    let mut parts = rest.splitn(5, ' ');
    let id = parts.next().unwrap().parse().unwrap();
    let time = parts.next().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "TIME not RFC 3339 UTC: {time}"
    );
    let room = parts.next().unwrap().to_string();
    let name = parts.next().unwrap().to_string();
    let text = parts.next().unwrap_or("").to_string();
    (id, room, name, text)
}
