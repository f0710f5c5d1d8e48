//! `/metrics` for Prometheus over real HTTP: its own port, `#stats`'s numbers (one source),
//! Prometheus's text format as `promtool check metrics` reads it, 404 for anything else, and a
//! chat port refused as its address.
mod common;

use common::{TestServer, run_daemon};
use std::io::{Read, Write};
use std::net::TcpStream;

/// The daemon's metrics address, from its log.
fn metrics_addr(srv: &TestServer) -> String {
    let line = srv
        .wait_log("metrics on http://")
        .expect("metrics announced");
    let rest = &line[line.find("http://").unwrap() + "http://".len()..];
    rest[..rest.find("/metrics").unwrap()].to_string()
}

/// One HTTP/1.1 request; the status line, the headers (lower case) and the body.
fn http(addr: &str, method: &str, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (
        status.to_string(),
        headers.to_ascii_lowercase(),
        body.to_string(),
    )
}

/// The value of an unlabelled sample.
fn sample(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
        .parse()
        .unwrap()
}

#[test]
fn metrics_are_the_stats_in_prometheus_text_format() {
    let srv = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let addr = metrics_addr(&srv);
    let (mut alice, mut bob) = srv.alice_and_bob("ops");
    alice.say("ops", "alice", "one");
    bob.expect("MSG ops alice one");
    bob.say("ops", "bob", "two");
    alice.expect("MSG ops bob two");
    let (status, headers, body) = http(&addr, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert_eq!(sample(&body, "linechat_sessions"), 2.0);
    assert_eq!(sample(&body, "linechat_users_online"), 2.0);
    assert_eq!(sample(&body, "linechat_rooms_active"), 1.0);
    assert_eq!(sample(&body, "linechat_connections"), 2.0);
    assert_eq!(sample(&body, "linechat_messages_stored_total"), 2.0);
    assert!(body.contains("# TYPE linechat_messages_stored_total counter"));
    assert!(body.contains("# TYPE linechat_uptime_seconds gauge"));
    // No names or text in it, anywhere.
    for secret in ["alice", "bob", "ops", "one", "two"] {
        assert!(
            !body
                .split_whitespace()
                .any(|w| w.contains(secret) && !w.starts_with("linechat_")),
            "{secret} in:\n{body}"
        );
    }
    // #stats says the same (one source).
    alice.send("#stats");
    let stats = alice.expect_prefix("STATS ");
    for (key, name) in [
        ("sessions", "linechat_sessions"),
        ("users", "linechat_users_online"),
        ("rooms", "linechat_rooms_active"),
        ("messages", "linechat_messages_stored_total"),
    ] {
        let v: f64 = stats
            .split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(v, sample(&body, name), "{key}");
    }
    // Prometheus's own linter reads it without a complaint.
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (test.sh installs it)");
    lint.stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = lint.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Anything else is 404; the chat port does not speak HTTP metrics.
    assert_eq!(http(&addr, "GET", "/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(&addr, "GET", "/metricsx").0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(&addr, "POST", "/metrics").0, "HTTP/1.1 404 Not Found");
    alice.expect_quiet();
}

#[test]
fn metrics_are_off_by_default_and_never_on_a_chat_port() {
    let mut srv = TestServer::start();
    srv.client().expect_quiet();
    srv.signal("TERM");
    assert!(
        srv.all_log().iter().all(|l| !l.contains("metrics on")),
        "no metrics listener without --metrics-listen"
    );
    let (status, err) = run_daemon(&[
        "--listen",
        "127.0.0.1:7979",
        "--metrics-listen",
        "127.0.0.1:7979",
    ]);
    assert!(!status.success());
    assert!(
        err.contains(
            "--metrics-listen 127.0.0.1:7979 is a chat port: metrics get a port of their own"
        ),
        "{err}"
    );
}
