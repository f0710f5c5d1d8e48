//! The TLS port: the same protocol over TLS 1.2/1.3 (rustls client, and the real `openssl
//! s_client`, `socat` and `ncat`), TLS and plain clients in one room, the wrong protocol on
//! either port, the handshake bounded by the login timeout, and SIGHUP reloading the
//! certificate without dropping anyone. Certificates are made at test time.
mod common;
use common::{PASS, TestServer};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

/// A self-signed certificate for `localhost` and 127.0.0.1, written as cert.pem and key.pem.
struct Certs {
    dir: tempfile::TempDir,
    der: CertificateDer<'static>,
}

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let der = Self::write(dir.path());
        Certs { dir, der }
    }

    fn write(dir: &Path) -> CertificateDer<'static> {
        common::self_signed(dir).cert.der().clone()
    }

    /// A new certificate in the same files (what an ACME renewal does).
    fn renew(&mut self) {
        self.der = Self::write(self.dir.path());
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--tls-listen".into(),
            "127.0.0.1:0".into(),
            "--tls-cert".into(),
            self.cert().display().to_string(),
            "--tls-key".into(),
            self.key().display().to_string(),
        ]
    }
}

fn start(certs: &Certs, extra: &[&str]) -> TestServer {
    let mut args = certs.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    TestServer::start_tls(&refs)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, Tap>;

/// The client's socket, keeping every byte that arrives so a test can count TLS records.
struct Tap {
    tcp: TcpStream,
    seen: Vec<u8>,
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

impl Tap {
    /// Whole application-data records received so far (TLS 1.3 sends its encrypted
    /// handshake and tickets as such records too: count differences, after the handshake).
    fn app_records(&self) -> usize {
        let (mut at, mut n) = (0, 0);
        while at + 5 <= self.seen.len() {
            let len = u16::from_be_bytes([self.seen[at + 3], self.seen[at + 4]]) as usize;
            if at + 5 + len > self.seen.len() {
                break;
            }
            n += usize::from(self.seen[at] == 23);
            at += 5 + len;
        }
        n
    }
}

/// A line client over TLS that trusts `anchor` only and checks the name `localhost`.
struct TlsClient {
    io: BufReader<Tls>,
}

impl TlsClient {
    fn connect(srv: &TestServer, anchor: &CertificateDer<'static>) -> TlsClient {
        let mut c = Self::raw(srv, anchor, None);
        assert!(c.line().starts_with("INFO linechat "));
        assert!(c.line().starts_with("INFO #register NAME PASSWORD"));
        c
    }

    fn raw(
        srv: &TestServer,
        anchor: &CertificateDer<'static>,
        version: Option<&'static rustls::SupportedProtocolVersion>,
    ) -> TlsClient {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(anchor.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
            Some(v) => vec![v],
            None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(srv.tls_addr.unwrap()).unwrap();
        tcp.set_read_timeout(Some(common::TIMEOUT)).unwrap();
        let tap = Tap {
            tcp,
            seen: Vec::new(),
        };
        TlsClient {
            io: BufReader::new(rustls::StreamOwned::new(conn, tap)),
        }
    }

    fn send(&mut self, line: &str) {
        let s = self.io.get_mut();
        s.write_all(format!("{line}\n").as_bytes()).unwrap();
        s.flush().unwrap();
    }

    fn line(&mut self) -> String {
        let mut buf = String::new();
        let n = self
            .io
            .read_line(&mut buf)
            .expect("a line within the timeout");
        assert!(n > 0, "connection closed while waiting for a line");
        buf.strip_suffix("\r\n")
            .unwrap_or_else(|| panic!("not CRLF: {buf:?}"))
            .to_string()
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want);
    }

    fn version(&self) -> Option<rustls::ProtocolVersion> {
        self.io.get_ref().conn.protocol_version()
    }

    fn records(&self) -> usize {
        self.io.get_ref().sock.app_records()
    }

    fn peer_cert(&self) -> Vec<u8> {
        self.io.get_ref().conn.peer_certificates().unwrap()[0].to_vec()
    }
}

#[test]
fn a_tls_client_and_a_plain_client_share_a_room() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut t = TlsClient::connect(&srv, &certs.der);
    assert_eq!(t.version(), Some(rustls::ProtocolVersion::TLSv1_3));
    t.send(&format!("#register alice {PASS}"));
    t.expect("OK register alice");
    t.send("#join g");
    t.expect("OK join g 1");
    t.expect("INFO welcome to g; here now (1): alice");
    let mut bob = srv.user("bob");
    bob.join("g");
    t.expect("JOIN g bob 2");
    t.send("over tls");
    t.expect("MSG g alice over tls");
    bob.expect("MSG g alice over tls");
    bob.say("g", "bob", "in clear");
    t.expect("MSG g bob in clear");
    // A burst is delivered whole and in order.
    for i in 0..50 {
        bob.send(&format!("m{i}"));
    }
    for i in 0..50 {
        t.expect(&format!("MSG g bob m{i}"));
    }
    t.send("#quit");
    t.expect("OK quit");
}

#[test]
fn tls_1_2_is_accepted_too() {
    let certs = Certs::new();
    let srv = start(&certs, &["--listen", "none"]);
    let mut t = TlsClient::raw(&srv, &certs.der, Some(&rustls::version::TLS12));
    assert!(t.line().starts_with("INFO linechat "));
    assert_eq!(t.version(), Some(rustls::ProtocolVersion::TLSv1_2));
}

#[test]
fn listen_none_serves_tls_only() {
    let certs = Certs::new();
    let srv = start(&certs, &["--listen", "none"]);
    let mut t = TlsClient::connect(&srv, &certs.der);
    t.send("#ping");
    t.expect("PONG");
    let (status, err) = common::run_daemon(&["--listen", "none", "--db", "/nonexistent/x.db"]);
    assert!(!status.success());
    assert!(err.contains("--listen none needs --tls-listen"), "{err}");
}

/// Runs `cmd` with `script` on its stdin and returns what it printed.
fn run_client(cmd: &mut Command, script: &str) -> String {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the client program (installed by test.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n")
}

/// What every real client's session must show: login, join, its message acknowledged,
/// then `OK quit` last.
fn check_transcript(out: &str, name: &str) {
    // The join's replay holds the earlier clients' lines; the rest is this client's own.
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("HIST "))
        .collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("INFO linechat "))
        .unwrap_or_else(|| panic!("no greeting in {out:?}"));
    let lines = &lines[at..];
    assert_eq!(lines[2], format!("OK register {name}"), "{out}");
    assert_eq!(lines[3], "OK join g 2", "{out}");
    assert_eq!(lines[5], format!("MSG g {name} hello over tls"), "{out}");
    assert_eq!(lines[6], "OK quit", "{out}");
}

#[test]
fn real_clients_speak_to_the_tls_port() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut watcher = srv.user("watch");
    watcher.join("g");
    let port = srv.tls_addr.unwrap().port().to_string();
    let cafile = certs.cert().display().to_string();
    let script = |name: &str| format!("#register {name} {PASS}\n#join g\nhello over tls\n#quit\n");

    let out = run_client(
        Command::new("openssl").args([
            "s_client",
            "-quiet",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-CAfile",
            &cafile,
            "-verify_return_error",
        ]),
        &script("ossl"),
    );
    check_transcript(&out, "ossl");

    let out = run_client(
        Command::new("socat").args([
            "-t5",
            "-",
            &format!("OPENSSL:localhost:{port},cafile={cafile},verify=1"),
        ]),
        &script("socat"),
    );
    check_transcript(&out, "socat");

    let out = run_client(
        Command::new("ncat").args([
            "--ssl",
            "--ssl-verify",
            "--ssl-trustfile",
            &cafile,
            "localhost",
            &port,
        ]),
        &script("ncat"),
    );
    check_transcript(&out, "ncat");

    for name in ["ossl", "socat", "ncat"] {
        watcher.expect(&format!("JOIN g {name} 2"));
        watcher.expect(&format!("MSG g {name} hello over tls"));
        watcher.expect(&format!("LEAVE g {name} 1"));
    }
}

#[test]
fn tls_to_the_plain_port_gets_one_err_tls_line() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut c = srv.client();
    // The start of a ClientHello: a handshake record, TLS 1.0 record version.
    c.send_raw(&[
        0x16, 0x03, 0x01, 0x00, 0xf0, 0x01, 0x00, 0x00, 0xec, 0x03, 0x03,
    ]);
    assert_eq!(
        c.until_closed(),
        ["ERR tls this port speaks plain text; use the TLS port for TLS"]
    );
    // The real thing: openssl's handshake fails, and the daemon says why in plain text.
    let out = run_client(
        Command::new("openssl").args(["s_client", "-quiet", "-connect", &srv.addr.to_string()]),
        "",
    );
    assert!(!out.contains("OK"), "{out}");
    srv.wait_log("spoke TLS to the plain port")
        .expect("logged once");
}

#[test]
fn plain_text_to_the_tls_port_gets_a_readable_err_tls() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut c = common::TestClient::connect_raw(srv.tls_addr.unwrap());
    c.send(&format!("#login alice {PASS}"));
    let lines = c.until_closed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("ERR tls this port speaks TLS"),
        "{lines:?}"
    );
    srv.wait_log("spoke plain text to the TLS port")
        .expect("logged");
}

#[test]
fn a_silent_handshake_is_closed_at_the_login_timeout_and_counts_toward_the_limits() {
    let certs = Certs::new();
    let srv = start(&certs, &["--login-timeout", "1", "--max-per-ip", "2"]);
    let tls = srv.tls_addr.unwrap();
    let a = TcpStream::connect(tls).unwrap();
    let _b = TcpStream::connect(tls).unwrap();
    // The per-address limit counts connections still in their handshake (the third is
    // accepted after them: one listener accepts in order).
    let mut third = common::TestClient::connect_raw(tls);
    let refused = third.until_closed();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].starts_with("ERR busy too many connections from your address"));
    // Nothing sent: closed when the login timeout ends.
    let t = std::time::Instant::now();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let n = (&a).read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    srv.wait_log("TLS handshake not done within 1 s")
        .expect("logged");
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_everyone_connected() {
    let mut certs = Certs::new();
    let mut srv = start(&certs, &[]);
    let old = certs.der.clone();
    let mut before = TlsClient::connect(&srv, &old);
    before.send(&format!("#register alice {PASS}"));
    before.expect("OK register alice");
    assert_eq!(before.peer_cert(), old.to_vec());
    certs.renew();
    let hup = |srv: &TestServer| {
        let ok = Command::new("kill")
            .args(["-HUP", &srv.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    hup(&srv);
    srv.wait_log("TLS certificate reloaded")
        .expect("reload logged");
    // New connections get the new certificate; the old one still talks.
    let fresh = TlsClient::connect(&srv, &certs.der);
    assert_eq!(fresh.peer_cert(), certs.der.to_vec());
    before.send("#ping");
    before.expect("PONG");
    // A broken file on reload: logged, the current certificate kept, the daemon alive.
    std::fs::write(certs.key(), "not a key").unwrap();
    hup(&srv);
    srv.wait_log("TLS certificate not reloaded, keeping the old one")
        .expect("failure logged");
    let still = TlsClient::connect(&srv, &certs.der);
    assert_eq!(still.peer_cert(), certs.der.to_vec());
    let (status, _) = srv.signal("TERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sighup_without_tls_does_not_stop_the_daemon() {
    let mut srv = TestServer::start();
    let mut a = srv.user("alice");
    let ok = Command::new("kill")
        .args(["-HUP", &srv.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    srv.wait_log("SIGHUP received: no TLS certificate to reload")
        .expect("logged");
    a.send("#ping");
    a.expect("PONG");
    let (status, _) = srv.signal("TERM");
    assert!(status.success());
}

#[test]
fn plain_logins_deny_sends_passwords_to_the_tls_port() {
    let certs = Certs::new();
    let srv = start(&certs, &["--plain-logins", "deny"]);
    let mut c = srv.client();
    c.send(&format!("#register alice {PASS}"));
    c.expect("ERR tls use the TLS port for passwords");
    c.send(&format!("#login alice {PASS}"));
    c.expect("ERR tls use the TLS port for passwords");
    c.send("#ping");
    c.expect("PONG");
    let mut t = TlsClient::connect(&srv, &certs.der);
    t.send(&format!("#register alice {PASS}"));
    t.expect("OK register alice");
}

#[test]
fn the_health_check_speaks_tls_and_verifies_the_certificate() {
    let certs = Certs::new();
    let srv = start(&certs, &["--listen", "none"]);
    let addr = srv.tls_addr.unwrap().to_string();
    let cafile = certs.cert().display().to_string();
    let health = |extra: &[&str]| {
        let out = Command::new(common::daemon())
            .args(["health", "--addr", &addr, "--tls"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = health(&["--tls-ca", &cafile, "--tls-name", "localhost"]);
    assert_eq!((code, out), (Some(0), format!("healthy: {addr}\n")));
    // The address's own host is the default name (the certificate names 127.0.0.1 too).
    let (code, _) = health(&["--tls-ca", &cafile]);
    assert_eq!(code, Some(0));
    // A name the certificate does not carry, or a certificate nobody vouches for: unhealthy.
    let (code, out) = health(&["--tls-ca", &cafile, "--tls-name", "example.org"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.starts_with("unhealthy: "), "{out}");
    let other = Certs::new();
    let (code, out) = health(&["--tls-ca", &other.cert().display().to_string()]);
    assert_eq!(code, Some(1), "{out}");
}

/// The TLS path reads through its own source: the line limit, bad UTF-8 and a line split
/// across records behave as on the plain port.
#[test]
fn framing_over_tls_is_the_plain_ports() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut t = TlsClient::connect(&srv, &certs.der);
    let s = t.io.get_mut();
    let mut long = vec![b'x'; 10_000];
    long.extend_from_slice(b"\n#ping\n");
    s.write_all(&long).unwrap();
    s.write_all(b"caf\xe9\n").unwrap();
    s.write_all(b"#pi").unwrap();
    s.flush().unwrap();
    s.write_all(b"ng\n").unwrap();
    s.flush().unwrap();
    t.expect("ERR toolong line longer than 4096 bytes discarded");
    t.expect("PONG");
    t.expect("ERR utf8 line is not valid UTF-8, discarded");
    t.expect("PONG");
    t.send("#quit");
    t.expect("OK quit");
}

/// The bundled client speaks TLS: a self-signed certificate trusted with `--tls-ca`, the name
/// verified; reading and writing share the one session (lines go both ways while it reads).
#[test]
fn the_line_client_speaks_tls_and_verifies_the_certificate() {
    let certs = Certs::new();
    let srv = start(&certs, &["--listen", "none"]);
    let addr = format!("localhost:{}", srv.tls_addr.unwrap().port());
    let ca = certs.cert().display().to_string();
    let mut t = TlsClient::connect(&srv, &certs.der);
    t.send(&format!("#register watch {PASS}"));
    t.expect("OK register watch");
    t.send("#join g");
    t.expect("OK join g 1");
    t.line();
    let linechat = |args: &[&str], input: &str| common::linechat(args, Some(PASS), input);
    // An account to log in as (the client logs in; registering is interactive).
    let mut reg = TlsClient::connect(&srv, &certs.der);
    reg.send(&format!("#register ann {PASS}"));
    reg.expect("OK register ann");
    let lines: Vec<String> = (0..40).map(|i| format!("line {i} over tls")).collect();
    let out = linechat(
        &[
            "--tls", "--tls-ca", &ca, "--addr", &addr, "--user", "ann", "--room", "g",
        ],
        &(lines.join("\n") + "\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let acked = stdout
        .lines()
        .filter(|l| l.contains("] ann (you): line "))
        .count();
    assert_eq!(acked, 40, "{stdout}");
    t.expect("JOIN g ann 2");
    for l in &lines {
        t.expect(&format!("MSG g ann {l}"));
    }
    // Not trusted, or not the name on the certificate: refused, with why, and no retry.
    let out = linechat(&["--tls", "--addr", &addr, "--user", "ann"], "x\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // (Without a CA bundle on the machine there is nothing to trust at all: said too.)
    assert!(err.contains("certificate"), "{err}");
    let ip = format!("127.0.0.1:{}", srv.tls_addr.unwrap().port());
    let out = linechat(
        &[
            "--tls",
            "--tls-ca",
            &ca,
            "--tls-name",
            "example.org",
            "--addr",
            &ip,
            "--user",
            "ann",
        ],
        "x\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    // Its name given, an address works too.
    let out = linechat(
        &[
            "--tls",
            "--tls-ca",
            &ca,
            "--tls-name",
            "localhost",
            "--addr",
            &ip,
            "--user",
            "ann",
            "--room",
            "g",
        ],
        "by address\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What is queued for a TLS session together goes out as one TLS record where it fits: a
/// reply of many lines is one record, and a room's messages committed together reach a TLS
/// member in far fewer records than lines.
#[test]
fn a_batch_of_lines_is_one_tls_record() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut t = TlsClient::connect(&srv, &certs.der);
    t.send(&format!("#register tee {PASS}"));
    t.expect("OK register tee");
    let before = t.records();
    t.send("#help");
    for _ in 0..30 {
        assert!(t.line().starts_with("INFO "));
    }
    assert_eq!(t.records() - before, 1, "#help's 30 lines in one record");
    t.send("#join g");
    t.expect("OK join g 1");
    t.line();
    let mut sender = srv.user("pipe");
    sender.join("g");
    t.expect("JOIN g pipe 2");
    let before = t.records();
    let burst: String = (0..30).map(|i| format!("line {i}\n")).collect();
    sender.send_raw(burst.as_bytes());
    for i in 0..30 {
        t.expect(&format!("MSG g pipe line {i}"));
    }
    let records = t.records() - before;
    assert!(
        records <= 10,
        "30 lines committed in a few batches came in {records} records"
    );
}

/// README's self-signed recipe, run as written (openssl), gives a certificate that every
/// client README shows accepts: the bundled client and the health check verify it.
#[test]
fn the_readme_certificate_recipe_works_with_the_bundled_clients() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("    openssl req -x509")
        .expect("README has the recipe");
    let mut recipe = String::new();
    for line in readme[start..].lines() {
        recipe.push_str(line.trim().trim_end_matches('\\'));
        recipe.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .args(["-c", &recipe])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{recipe}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let srv = TestServer::start_tls(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let port = srv.tls_addr.unwrap().port();
    let health = Command::new(common::daemon())
        .args(["health", "--tls", "--tls-ca", &cert])
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    drop(srv.user("ann"));
    let addr = format!("localhost:{port}");
    let args = ["--tls", "--tls-ca", &cert, "--user", "ann", "--addr", &addr];
    let out = common::linechat(&args, Some(PASS), "hello\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("] ann (you): hello"));
}

/// Moderation reaches TLS sessions too: a kicked TLS session reads `ERR kicked` over TLS as its
/// last line; a banned network is refused on the TLS port before any handshake, in plain text.
#[test]
fn kicks_and_bans_reach_the_tls_port() {
    let certs = Certs::new();
    let srv = start(&certs, &[]);
    let mut root = srv.user("root");
    srv.make_admin("root");
    let mut t = TlsClient::connect(&srv, &certs.der);
    t.send(&format!("#register tee {PASS}"));
    t.expect("OK register tee");
    root.send("#kick tee enough");
    root.expect("OK kick tee 1");
    t.expect("ERR kicked enough");
    let mut rest = String::new();
    assert_eq!(
        t.io.read_line(&mut rest).unwrap_or(0),
        0,
        "closed after: {rest:?}"
    );

    root.send("#ban 127.0.0.5 1h");
    let ok = root.line();
    assert!(ok.starts_with("OK ban 127.0.0.5/32 20"), "{ok}");
    let tls = srv.tls_addr.unwrap();
    let mut banned = common::TestClient::connect_from(tls, "127.0.0.5");
    let lines = banned.until_closed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("ERR banned until 20"), "{lines:?}");
}
