//! The operator's side: the health check, #stats, configuration from the environment, running
//! the binary the way the container image does (non-root, /data-style path, SIGTERM), JSON logs.
mod common;
use common::{PASS, TestServer};
use std::process::Command;
use std::time::Duration;

fn health(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_linechatd"))
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success(), text)
}

#[test]
fn health_check_passes_and_fails() {
    let srv = TestServer::start();
    let addr = srv.addr.to_string();
    assert_eq!(
        health(&["--addr", &addr]),
        (true, format!("healthy: {addr}"))
    );
    // The verb itself, before login.
    let mut c = srv.client();
    c.send("#health");
    c.expect("OK health");

    // The store is locked by another process: the daemon answers, its store does not.
    let locker = rusqlite::Connection::open(&srv.db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let (ok, text) = health(&["--addr", &addr, "--timeout", "5"]);
    assert!(!ok);
    assert!(
        text.starts_with(&format!("unhealthy: {addr} is unhealthy: ERR storage ")),
        "{text}"
    );
    c.send("#ping"); // liveness is not health
    c.expect("PONG");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert!(health(&["--addr", &addr]).0);

    // Nothing listening.
    drop(srv);
    let (ok, text) = health(&["--addr", &addr, "--timeout", "2"]);
    assert!(!ok);
    assert!(
        text.starts_with(&format!("unhealthy: cannot connect to {addr}")),
        "{text}"
    );
}

#[test]
fn stats_for_logged_in_users() {
    let srv = TestServer::start();
    let mut guest = srv.client();
    guest.send("#stats");
    guest.expect("ERR auth log in first: #login NAME PASSWORD or #register NAME PASSWORD");
    let mut a = srv.user("alice");
    a.join("g");
    let _a2 = srv.login("alice");
    let mut b = srv.user("bob");
    b.join("g");
    a.expect("JOIN g bob 2");
    a.say("g", "alice", "one");
    b.expect("MSG g alice one");
    a.send("#stats");
    let l = a.line();
    let fields: std::collections::HashMap<&str, &str> = l
        .strip_prefix("STATS ")
        .unwrap()
        .split(' ')
        .map(|kv| kv.split_once('=').unwrap())
        .collect();
    assert_eq!(fields["connections"], "4");
    assert_eq!(fields["sessions"], "3");
    assert_eq!(fields["users"], "2");
    assert_eq!(fields["rooms"], "1");
    assert_eq!(fields["messages"], "1");
    assert!(fields["delivered_per_sec"].parse::<f64>().unwrap() > 0.0);
    for key in ["uptime", "sendq_max", "writer_queue", "actor_queue"] {
        fields[key].parse::<u64>().unwrap();
    }
    assert_eq!(fields.len(), 10, "{l}");
}

/// `messages` counts stored messages, private ones and deleted ones included (a deleted
/// message keeps its row), and goes on from the stored count after a restart.
#[test]
fn stats_count_stored_messages_across_restarts() {
    let mut srv = TestServer::start();
    let db = srv.db.clone();
    let (mut a, mut b) = srv.alice_and_bob("g");
    a.say("g", "alice", "one");
    b.expect("MSG g alice one");
    a.send("#msg bob psst");
    a.expect("PRIV alice bob psst");
    b.expect("PRIV alice bob psst");
    let messages = |c: &mut common::TestClient| {
        c.send("#stats");
        let l = c.expect_prefix("STATS ");
        l.split(' ')
            .find_map(|kv| kv.strip_prefix("messages="))
            .unwrap()
            .to_string()
    };
    assert_eq!(messages(&mut a), "2");
    drop((a, b));
    srv.signal("TERM");
    let srv = TestServer::start_on(&db, &[]);
    let mut a = srv.login("alice");
    a.join("g");
    a.say("g", "alice", "two");
    assert_eq!(messages(&mut a), "3");
}

/// As the image runs it: configured only by environment variables, as an unprivileged user,
/// its database in a data directory; SIGTERM exits 0 and the data is kept.
#[test]
fn runs_like_the_container_image() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // The image's user is an unprivileged uid; when the tests run as root, drop to nobody.
    let as_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if as_root {
        let ok = Command::new("chown")
            .args(["65534:65534"])
            .arg(&data)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        // The temp dir itself must be traversable by nobody.
        let ok = Command::new("chmod")
            .arg("755")
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let db = data.join("linechat.db");
    let command = || {
        let mut cmd = if as_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_linechatd"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_linechatd"))
        };
        cmd.env("LINECHAT_LISTEN", "127.0.0.1:0")
            .env("LINECHAT_DB", &db)
            .env("LINECHAT_BCRYPT_COST", "4")
            .env("LINECHAT_HISTORY_ON_JOIN", "3");
        cmd
    };
    let mut srv = TestServer::start_command(&mut command(), &db);
    let mut a = srv.user("alice");
    let (_, hist) = a.join("g");
    assert!(hist.is_empty());
    for i in 0..5 {
        a.say("g", "alice", &format!("kept {i}"));
    }
    assert!(health(&["--addr", &srv.addr.to_string()]).0);
    let (status, took) = srv.signal("TERM");
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5));
    drop(srv);
    assert!(db.exists());
    if as_root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&db).unwrap().uid(), 65534);
    }

    let srv = TestServer::start_command(&mut command(), &db);
    let mut a = srv.login("alice");
    let (_, hist) = a.join("g"); // LINECHAT_HISTORY_ON_JOIN=3 took effect
    let texts: Vec<String> = hist.iter().map(|h| common::parse_hist(h).3).collect();
    assert_eq!(texts, ["kept 2", "kept 3", "kept 4"]);
}

#[test]
fn flags_win_over_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flag.db");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linechatd"));
    cmd.env("LINECHAT_LISTEN", "127.0.0.1:1") // would fail: port 1 needs privileges... or is taken
        .env("LINECHAT_DB", "/nonexistent/dir/x.db")
        .env("LINECHAT_BCRYPT_COST", "4")
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(&db);
    let srv = TestServer::start_command(&mut cmd, &db);
    assert_ne!(srv.addr.port(), 1);
    drop(srv.user("alice"));
    assert!(db.exists());
}

#[test]
fn help_lists_flags_and_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_linechatd"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--listen", "LINECHAT_LISTEN"),
        ("--db", "LINECHAT_DB"),
        ("--log-format", "LINECHAT_LOG_FORMAT"),
        ("--rate-per-sec", "LINECHAT_RATE_PER_SEC"),
    ] {
        assert!(
            help.contains(flag) && help.contains(env),
            "{flag}/{env} missing:\n{help}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_linechatd"))
        .args(["health", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--timeout"));
}

#[test]
fn json_logs_carry_connection_fields_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("j.db");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linechatd"));
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--bcrypt-cost",
        "4",
        "--log-format",
        "json",
    ])
    .arg("--db")
    .arg(&db)
    .env("RUST_LOG", "debug");
    let mut srv = TestServer::start_command(&mut cmd, &db);
    let mut a = srv.user("alice");
    a.join("g");
    a.say("g", "alice", "top secret chat text");
    let mut b = srv.client();
    b.send("#login alice wrong-password-here");
    b.expect("ERR auth wrong name or password");
    a.send("#quit");
    a.expect("OK quit");
    let (status, _) = srv.signal("TERM");
    assert!(status.success());
    let lines = srv.all_log();
    let mut events = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(v.get(key).is_some(), "{key} missing: {l}");
        }
        assert!(
            !l.contains(PASS) && !l.contains("wrong-password-here"),
            "secret in log: {l}"
        );
        assert!(!l.contains("top secret chat text"), "chat text in log: {l}");
        events.push(v);
    }
    let find = |msg: &str| {
        events
            .iter()
            .find(|e| e["message"].as_str().unwrap().starts_with(msg))
            .unwrap_or_else(|| panic!("no {msg:?} event in {lines:#?}"))
    };
    let joined = find("joined");
    assert_eq!(joined["user"], "alice");
    assert_eq!(joined["room"], "g");
    assert!(joined["conn"].as_u64().unwrap() >= 1);
    assert!(joined["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    let failed = find("login alice failed");
    assert!(failed.get("user").is_none(), "a guest has no user key");
    find("connected");
    find("disconnected: quit");
    find("starting linechatd");
    find("SIGTERM received");
    find("shut down");
}

#[test]
fn schema_diagram_covers_every_table_and_column() {
    let schema =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.sql")).unwrap();
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/schema.md")).unwrap();
    let mermaid = doc
        .split("```mermaid")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/schema.md has a mermaid block");
    assert!(mermaid.contains("erDiagram"));
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(&schema).unwrap();
    let tables: Vec<String> = conn
        // Tables and virtual tables; not the shadow tables a full-text index keeps for itself.
        .prepare(
            "SELECT name FROM pragma_table_list WHERE schema = 'main' \
             AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite_%'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(tables.len() >= 4);
    for table in tables {
        let block = mermaid
            .split(&format!("{table} {{"))
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_else(|| panic!("table {table} missing from the diagram"));
        let columns: Vec<String> = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        for col in columns {
            assert!(
                block.split_whitespace().any(|w| w == col),
                "column {table}.{col} missing from the diagram"
            );
        }
    }
}

/// `linechatd user` beside a running daemon: the first account of a closed server, a new
/// password, the list; refusals are one line on stderr with status 1.
#[test]
fn the_user_tool_manages_accounts_beside_a_running_daemon() {
    let srv = TestServer::start_with(&["--registration", "closed"]);
    let db = srv.db.to_str().unwrap().to_string();
    let user = |args: &[&str], password: Option<&str>| {
        let mut cmd = std::process::Command::new(common::daemon());
        cmd.arg("user").args(args).args(["--db", &db]);
        if args[0] != "list" {
            cmd.args(["--bcrypt-cost", "4"]);
        }
        match password {
            Some(p) => cmd.env("LINECHAT_PASSWORD", p),
            None => cmd.env_remove("LINECHAT_PASSWORD"),
        };
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = user(&["add", "Root"], Some("first-admin-pass"));
    assert_eq!((code, out.as_str()), (Some(0), "created Root\n"));
    let mut c = srv.client();
    c.send("#login root first-admin-pass");
    c.expect("OK login Root");
    let (code, _, err) = user(&["add", "root"], Some("another-pass"));
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "linechatd user: the name root is taken (in some case)\n"
    );
    let (code, _, err) = user(&["add", "bad name"], Some("another-pass"));
    assert_eq!(code, Some(1));
    assert!(err.contains("names are 1 to 32"), "{err}");
    let (code, _, err) = user(&["add", "eve"], Some("short"));
    assert_eq!(code, Some(1));
    assert!(err.contains("passwords are 8 to 72 bytes"), "{err}");
    let (code, out, _) = user(&["passwd", "ROOT"], Some("second-pass-1"));
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "password of ROOT changed\n")
    );
    // The logged-in session stays; the next login needs the new password.
    c.send("#ping");
    c.expect("PONG");
    let mut d = srv.client();
    d.send("#login root first-admin-pass");
    d.expect("ERR auth wrong name or password");
    d.send("#login root second-pass-1");
    d.expect("OK login Root");
    let (code, _, err) = user(&["passwd", "nobody"], Some("second-pass-1"));
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "linechatd user: no account named nobody\n")
    );
    let (code, out, _) = user(&["list"], None);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("Root 20"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
}
