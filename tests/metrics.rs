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

/// The value of the sample `name` (with its labels, if any), if the body has it.
fn value(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
}

/// The value of the sample `name`, which must be there.
fn sample(body: &str, name: &str) -> f64 {
    value(body, name).unwrap_or_else(|| panic!("{name} missing:\n{body}"))
}

/// Runs `promtool check metrics` on `body`; panics with its complaint.
fn promtool_accepts(body: &str) {
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
}

/// One scrape's body, after a 200.
fn scrape(addr: &str) -> String {
    let (status, _, body) = http(addr, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// Scrapes until `name` reads `want` (for what changes in the background).
fn wait_for(addr: &str, name: &str, want: f64) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = scrape(addr);
        if value(&body, name) == Some(want) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never {want}:\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn metrics_are_the_stats_in_prometheus_text_format() {
    let srv = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let addr = metrics_addr(&srv);
    let (mut alice, mut bob) = srv.alice_and_bob("kitchen");
    alice.say("kitchen", "alice", "quince");
    bob.expect("MSG kitchen alice quince");
    bob.say("kitchen", "bob", "zebra");
    alice.expect("MSG kitchen bob zebra");
    let (status, headers, body) = http(&addr, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert_eq!(sample(&body, "linechat_sessions"), 2.0);
    assert_eq!(sample(&body, "linechat_users_online"), 2.0);
    assert_eq!(sample(&body, "linechat_rooms_active"), 1.0);
    assert_eq!(
        sample(&body, r#"linechat_connections{listener="plain"}"#),
        2.0
    );
    assert_eq!(
        sample(&body, r#"linechat_connections{listener="tls"}"#),
        0.0
    );
    assert_eq!(sample(&body, "linechat_messages_stored_total"), 2.0);
    // alice's join (OK and welcome), bob's join to alice and to bob, each message to both.
    assert_eq!(sample(&body, "linechat_deliveries_total"), 7.0);
    assert_eq!(
        sample(&body, r#"linechat_registrations_total{result="ok"}"#),
        2.0
    );
    assert_eq!(sample(&body, r#"linechat_logins_total{result="ok"}"#), 0.0);
    // Each message timed once, from its read to its write to the last of the two.
    assert_eq!(
        sample(&body, "linechat_delivery_latency_seconds_count"),
        2.0
    );
    let latency = sample(&body, "linechat_delivery_latency_seconds_sum");
    assert!(latency > 0.0 && latency < 2.0, "{latency}");
    assert_eq!(
        sample(
            &body,
            r#"linechat_delivery_latency_seconds_bucket{le="+Inf"}"#
        ),
        2.0
    );
    // Two accounts and two joins and two messages, in as many transactions or fewer.
    let commits = sample(&body, "linechat_commit_batch_operations_count");
    assert!((1.0..=6.0).contains(&commits), "{commits}");
    assert!(sample(&body, "linechat_commit_batch_operations_sum") >= 6.0);
    assert_eq!(
        sample(&body, "linechat_commit_duration_seconds_count"),
        commits
    );
    assert_eq!(sample(&body, "linechat_bcrypt_wait_seconds_count"), 2.0);
    assert_eq!(sample(&body, "linechat_storage_errors_total"), 0.0);
    assert!(body.contains("# TYPE linechat_messages_stored_total counter"));
    assert!(body.contains("# TYPE linechat_uptime_seconds gauge"));
    assert!(body.contains("# TYPE linechat_delivery_latency_seconds histogram"));
    // No names or text in any sample or label (help texts are the daemon's own words).
    for secret in ["alice", "bob", "kitchen", "quince", "zebra"] {
        assert!(
            !body
                .lines()
                .filter(|l| !l.starts_with('#'))
                .any(|l| l.contains(secret)),
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
    promtool_accepts(&body);
    // Anything else is 404; the chat port does not speak HTTP metrics.
    assert_eq!(http(&addr, "GET", "/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(&addr, "GET", "/metricsx").0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(&addr, "POST", "/metrics").0, "HTTP/1.1 404 Not Found");
    alice.expect_quiet();
}

/// Refusals and closes are counted as the client sees them: every `ERR ratelimit`, the flood
/// close, each failed or throttled login.
#[test]
fn refusals_are_counted_as_clients_see_them() {
    let srv = TestServer::start_with(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--rate-burst",
        "1",
        "--rate-per-sec",
        "1",
    ]);
    let addr = metrics_addr(&srv);
    let mut a = srv.user("alice");
    for i in 0..40 {
        a.send(&format!("#all_messages 1 {}", i + 1));
    }
    let lines = a.until_closed();
    let refusals = lines
        .iter()
        .filter(|l| l.starts_with("ERR ratelimit "))
        .count();
    assert_eq!(refusals, 19);
    let mut wrong = srv.client();
    wrong.send("#login alice not-the-password");
    wrong.expect("ERR auth wrong name or password");
    wrong.send("#login nobody not-the-password");
    wrong.expect("ERR auth wrong name or password");
    let body = scrape(&addr);
    assert_eq!(sample(&body, "linechat_rate_limited_total"), 19.0);
    assert_eq!(sample(&body, "linechat_flood_closes_total"), 1.0);
    assert_eq!(
        sample(&body, r#"linechat_logins_total{result="failed"}"#),
        2.0
    );
    assert_eq!(sample(&body, r#"linechat_logins_total{result="ok"}"#), 0.0);
    assert_eq!(
        sample(&body, r#"linechat_registrations_total{result="ok"}"#),
        1.0
    );
    // Three bcrypt calls: alice's hash, two checks (one against the dummy hash).
    assert_eq!(sample(&body, "linechat_bcrypt_wait_seconds_count"), 3.0);
    promtool_accepts(&body);
}

/// TLS connections by listener, refusals at accept, a slow reader's drop and an admin's kick.
#[test]
fn listeners_refusals_drops_and_moderation_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    common::self_signed(dir.path());
    let cert = dir.path().join("cert.pem").display().to_string();
    let key = dir.path().join("key.pem").display().to_string();
    let srv = TestServer::start_tls(&[
        "--metrics-listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--max-connections",
        "4",
        "--sendq-lines",
        "64",
        "--sendq-bytes",
        "65536",
    ]);
    let addr = metrics_addr(&srv);
    let mut slow = srv.user("slow");
    slow.join("g");
    let mut fast = srv.user("fast");
    fast.join("g");
    let mut root = srv.user("root");
    srv.make_admin("root");
    // A TLS connection holds its slot from the handshake on: the fourth of four.
    let _tls = TcpStream::connect(srv.tls_addr.unwrap()).unwrap();
    let body = wait_for(&addr, r#"linechat_connections{listener="tls"}"#, 1.0);
    assert_eq!(
        sample(&body, r#"linechat_connections{listener="plain"}"#),
        3.0
    );
    let mut refused = common::TestClient::connect_raw(srv.addr);
    assert!(refused.line().starts_with("ERR busy "));
    assert!(refused.is_closed());
    let body = scrape(&addr);
    assert_eq!(
        sample(
            &body,
            r#"linechat_connections_refused_total{reason="busy"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            r#"linechat_connections_refused_total{reason="banned"}"#
        ),
        0.0
    );
    // slow never reads again; fast writes until the room hears slow dropped.
    slow.send("#ping");
    let text = "x".repeat(4000);
    let mut dropped = false;
    for _ in 0..3000 {
        fast.send(&text);
        let mut l = fast.line();
        if l == "LEAVE g slow 1" {
            dropped = true;
            l = fast.line();
        }
        assert_eq!(l, format!("MSG g fast {text}"));
        if dropped {
            break;
        }
    }
    assert!(dropped, "the slow reader was never dropped");
    root.send("#kick fast");
    root.expect("OK kick fast 1");
    let body = scrape(&addr);
    assert_eq!(sample(&body, "linechat_slow_reader_drops_total"), 1.0);
    assert_eq!(
        sample(&body, r#"linechat_moderation_actions_total{action="kick"}"#),
        1.0
    );
    assert_eq!(
        sample(&body, r#"linechat_moderation_actions_total{action="ban"}"#),
        0.0
    );
    promtool_accepts(&body);
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
    assert!(
        srv.all_log()
            .iter()
            .any(|l| l.contains("starting linechatd") && l.contains(" metrics-listen=none ")),
        "the start line says metrics are off"
    );
    let mut on = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    on.signal("TERM");
    assert!(
        on.all_log().iter().any(|l| l.contains("starting linechatd")
            && l.contains(" metrics-listen=127.0.0.1:0 ")),
        "the start line names the metrics address"
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

/// A cluster node reports its NATS connection, its publishes' acknowledgements and its lag
/// behind the stream; a message read on another node is not timed here.
#[test]
fn a_cluster_node_reports_its_stream() {
    let mut nats = common::nats::Nats::start();
    let url = nats.url();
    let a = TestServer::start_with(&[
        "--cluster",
        &url,
        "--node",
        "a",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let b = TestServer::start_with(&["--cluster", &url, "--node", "b"]);
    let addr = metrics_addr(&a);
    let mut ann = a.user("ann");
    ann.join("lobby");
    let mut bob = b.user("bob");
    bob.join("lobby");
    ann.expect("JOIN lobby bob 2");
    ann.say("lobby", "ann", "from a");
    bob.expect("MSG lobby ann from a");
    bob.say("lobby", "bob", "from b");
    ann.expect("MSG lobby bob from b");
    let body = wait_for(&addr, "linechat_cluster_consumer_lag_records", 0.0);
    assert_eq!(sample(&body, "linechat_cluster_nats_connected"), 1.0);
    // ann's account, join and message at least (heartbeats are published too).
    assert!(sample(&body, "linechat_cluster_publish_ack_seconds_count") >= 3.0);
    assert!(body.contains("# TYPE linechat_cluster_publish_ack_seconds histogram"));
    // Only ann's message was read here.
    assert_eq!(
        sample(&body, "linechat_delivery_latency_seconds_count"),
        1.0
    );
    assert_eq!(sample(&body, "linechat_messages_stored_total"), 2.0);
    promtool_accepts(&body);
    nats.stop();
    wait_for(&addr, "linechat_cluster_nats_connected", 0.0);
    nats.restart();
    wait_for(&addr, "linechat_cluster_nats_connected", 1.0);
}

/// The observability files beside the daemon.
fn deploy(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/observability")
        .join(file)
}

/// Every `linechat_...` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("linechat_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Every Prometheus expression of the dashboard's panels (its Loki panel's are LogQL).
fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(deploy("grafana/dashboards/linechat.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if target["datasource"]["type"] == "prometheus" {
                exprs.push(target["expr"].as_str().unwrap().to_string());
            }
        }
    }
    for var in dash["templating"]["list"].as_array().unwrap() {
        exprs.push(var["definition"].as_str().unwrap().to_string());
    }
    exprs
}

/// Every alert's expression in alerts.yml (`expr:` lines).
fn alert_exprs() -> Vec<String> {
    std::fs::read_to_string(deploy("alerts.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_string)
        .collect()
}

/// Every series name in a scrape (histograms' `_bucket`, `_sum` and `_count` included).
fn series(body: &str) -> std::collections::BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l[..l.find(['{', ' ']).unwrap()].to_string())
        .collect()
}

/// Every metric the dashboard and the alerts query is one a live node exports (a cluster
/// node, which exports everything a single node does and the cluster's own), each panel
/// has a query, and Prometheus reads the configuration and the rules.
#[test]
fn the_dashboard_and_alerts_query_only_exported_metrics() {
    let nats = common::nats::Nats::start();
    let srv = TestServer::start_with(&[
        "--cluster",
        &nats.url(),
        "--node",
        "a",
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let addr = metrics_addr(&srv);
    let mut ann = srv.user("ann");
    ann.join("lobby");
    ann.say("lobby", "ann", "hello");
    drop(ann);
    let _ann = srv.login("ann");
    let exported = series(&wait_for(&addr, "linechat_cluster_nats_connected", 1.0));
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 30, "{} expressions", exprs.len());
    let mut queried = std::collections::BTreeSet::new();
    for expr in exprs.iter().chain(&alert_exprs()) {
        let names = metric_names(expr);
        assert!(
            !names.is_empty() || expr.contains("up{"),
            "no metric in {expr}"
        );
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported; exported: {exported:?}"
            );
            queried.insert(name);
        }
    }
    // The dashboard shows every metric family the daemon has.
    let families: std::collections::BTreeSet<String> = exported
        .iter()
        .map(|s| {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| s.strip_suffix(suffix))
                .unwrap_or(s);
            base.to_string()
        })
        .collect();
    for family in &families {
        assert!(
            queried.iter().any(|q| q.starts_with(family.as_str())),
            "{family} is on no panel"
        );
    }
    for (what, file) in [("config", "prometheus.yml"), ("rules", "alerts.yml")] {
        let out = std::process::Command::new("promtool")
            .args(["check", what])
            .arg(deploy(file))
            .output()
            .expect("promtool (test.sh installs it)");
        assert!(
            out.status.success(),
            "promtool check {what} {file}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Promtail's pipeline reads fields the daemon's JSON log lines have, with the timestamp in
/// the format it parses, and makes labels only of the few-valued ones.
#[test]
fn promtail_reads_the_fields_the_daemon_logs() {
    let config = std::fs::read_to_string(deploy("promtail.yaml")).unwrap();
    // The json stage's `NAME: FIELD` lines, up to the next stage.
    let stage = &config[config.find("- json:").unwrap()..];
    let stage = &stage[..1 + stage[1..].find("\n      - ").unwrap()];
    let fields: Vec<&str> = stage
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .map(|(_, field)| field)
        .collect();
    assert_eq!(fields, ["timestamp", "level", "target", "conn"]);
    let labels = &config[config.find("- labels:").unwrap()..];
    let labels = &labels[..labels.find("- structured_metadata:").unwrap()];
    for unbounded in ["conn", "user", "room", "peer"] {
        assert!(!labels.contains(unbounded), "{unbounded} as a label");
    }
    assert!(config.contains("format: RFC3339Nano"));
    let mut srv = TestServer::start_with(&["--log-format", "json"]);
    let mut c = srv.user("alice");
    c.join("g");
    drop(c);
    srv.signal("TERM");
    let lines: Vec<serde_json::Value> = srv
        .all_log()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let connected = lines
        .iter()
        .find(|l| l.get("conn").is_some())
        .expect("a connection's line");
    for field in fields {
        assert!(connected.get(field).is_some(), "{field} in {connected}");
    }
    let at = connected["timestamp"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
    for l in &lines {
        let level = l["level"].as_str().unwrap();
        assert!(["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level));
    }
}

/// Connections that never send a request are closed after the header timeout; while they hold
/// every turn, more are closed at once; then scrapes are answered again. A request is answered
/// once per connection (no keep-alive to hold a turn).
#[test]
fn idle_metrics_connections_are_bounded() {
    use std::time::{Duration, Instant};
    let srv = TestServer::start_with(&["--metrics-listen", "127.0.0.1:0"]);
    let addr = metrics_addr(&srv);
    let started = Instant::now();
    let mut idle: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // A ninth is closed without an answer while the eight hold their turns.
    let mut ninth = TcpStream::connect(&addr).unwrap();
    ninth
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let _ = write!(ninth, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    // Closed (an end of stream, or a reset: its request was unread), not merely unanswered
    // within the read timeout.
    let read = ninth.read_to_end(&mut got);
    let closed = match &read {
        Ok(0) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    };
    assert!(closed, "{read:?} {got:?}");
    // The silent ones are closed at the header timeout (5 s), not held.
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }
    let held = started.elapsed();
    assert!(
        held >= Duration::from_secs(4) && held < Duration::from_secs(9),
        "{held:?}"
    );
    assert!(scrape(&addr).contains("linechat_uptime_seconds"));
    // One request per connection: closed after its answer though the client asked nothing.
    let mut one = TcpStream::connect(&addr).unwrap();
    one.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(one, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    one.read_to_string(&mut answer)
        .expect("closed after one answer");
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
}

/// A transaction the disk refuses is counted as a storage error, once per `ERR storage` the
/// sender sees.
#[test]
fn storage_errors_are_counted() {
    let srv = TestServer::start_with_file_limit(1024, &["--metrics-listen", "127.0.0.1:0"]);
    let addr = metrics_addr(&srv);
    let mut a = srv.user("alice");
    a.join("g");
    let text = "f".repeat(4000);
    let mut stored = 0;
    loop {
        a.send(&text);
        let l = a.line();
        if l.starts_with("ERR storage ") {
            break;
        }
        assert_eq!(l, format!("MSG g alice {text}"));
        stored += 1;
        assert!(stored < 2000, "the file size limit never bit");
    }
    let body = scrape(&addr);
    assert_eq!(sample(&body, "linechat_storage_errors_total"), 1.0);
    assert_eq!(
        sample(&body, "linechat_messages_stored_total"),
        stored as f64
    );
}
