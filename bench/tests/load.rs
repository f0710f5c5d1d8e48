//! The load generator behind docs/performance.md, against a real daemon: it must count every
//! delivery exactly, in both of its sending modes (as fast as the window allows, and paced at
//! a fixed rate from its own thread), or the figures it reports mean nothing.
#[path = "../../tests/common/mod.rs"]
mod common;
use common::TestServer;
use std::process::Command;

/// Runs linechat-bench against `srv` with 5 clients, 2 of them sending, and `args` (split
/// on spaces); returns its `run 0 ...` line.
fn bench(srv: &TestServer, args: &str) -> String {
    bench_at(srv, srv.addr, args)
}

/// [`bench`] at `addr` (the TLS port, say).
fn bench_at(srv: &TestServer, addr: std::net::SocketAddr, args: &str) -> String {
    let (addr, pid) = (addr.to_string(), srv.pid().to_string());
    let out = Command::new(env!("CARGO_BIN_EXE_linechat-bench"))
        .args([
            "--addr",
            &addr,
            "--pid",
            &pid,
            "--clients",
            "5",
            "--senders",
            "2",
        ])
        .args(args.split(' '))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find(|l| l.starts_with("run 0 "))
        .unwrap_or_else(|| panic!("no run line in {stdout}"))
        .to_string()
}

#[test]
fn the_load_generator_counts_every_delivery_in_both_modes() {
    let srv = TestServer::start_with(&["--rate-per-sec", "0", "--max-per-ip", "0"]);
    // 5 clients, 2 of them sending: every message reaches all 5 (the sender's copy included).
    let windowed = bench(&srv, "--messages 100 --window 8");
    assert!(
        windowed.contains(": deliveries=1000 lost=0 dup=0 reorder=0 "),
        "{windowed}"
    );
    // Paced: 40 messages a second each for half a second, 20 per sender.
    let paced = bench(&srv, "--messages 0 --rate 40 --duration 0.5");
    assert!(
        paced.contains(": deliveries=200 lost=0 dup=0 reorder=0 "),
        "{paced}"
    );
    // Half a second of sending, not a burst: the last message left about 475 ms after the
    // first (the second sender starts half an interval late).
    let secs: f64 = paced
        .split(" secs=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    assert!(secs >= 0.45, "{paced}");
}

/// `--tls`: the same counts over the daemon's TLS port, in both sending modes (the pacer
/// seals its lines on its own thread), the certificate verified.
#[test]
fn the_load_generator_speaks_tls() {
    let dir = tempfile::tempdir().unwrap();
    common::self_signed(dir.path());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let srv = TestServer::start_tls(&[
        "--rate-per-sec",
        "0",
        "--max-per-ip",
        "0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ]);
    let tls = srv.tls_addr.unwrap();
    let windowed = bench_at(
        &srv,
        tls,
        &format!("--messages 100 --window 8 --tls --tls-ca {cert}"),
    );
    assert!(
        windowed.contains(": deliveries=1000 lost=0 dup=0 reorder=0 "),
        "{windowed}"
    );
    let paced = bench_at(
        &srv,
        tls,
        &format!("--messages 0 --rate 40 --duration 0.5 --tls --tls-ca {cert}"),
    );
    assert!(
        paced.contains(": deliveries=200 lost=0 dup=0 reorder=0 "),
        "{paced}"
    );
}
