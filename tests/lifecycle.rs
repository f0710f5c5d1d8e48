//! Start and stop: readiness, refusing a bad database, SIGTERM with clients connected.
mod common;
use common::{TestServer, run_daemon};
use std::time::Duration;

#[test]
fn sigterm_tells_sessions_commits_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut srv = TestServer::start_on(&db, &[]);
    let (mut a, mut b) = srv.alice_and_bob("g");
    // Pipelined messages, then SIGTERM right away: every acknowledged one must be stored.
    for i in 0..200 {
        a.send(&format!("m{i}"));
    }
    a.expect("MSG g alice m0");
    let (status, took) = srv.signal("TERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let rest = a.until_closed();
    assert_eq!(
        rest.last().map(String::as_str),
        Some("INFO server shutting down")
    );
    let acked = 1 + rest
        .iter()
        .filter(|l| l.starts_with("MSG g alice m"))
        .count();
    // bob's farewell is ordered after his own lines, not alice's: he sees a prefix of her
    // messages, in order and without holes, then the farewell last.
    let bobs = b.until_closed();
    assert_eq!(
        bobs.last().map(String::as_str),
        Some("INFO server shutting down")
    );
    let bob_saw: Vec<&String> = bobs
        .iter()
        .filter(|l| l.starts_with("MSG g alice m"))
        .collect();
    for (i, l) in bob_saw.iter().enumerate() {
        assert_eq!(**l, format!("MSG g alice m{i}"));
    }
    drop(srv);

    let srv = TestServer::start_on(&db, &[]);
    let mut a = srv.login("alice");
    a.send("#all_messages 1000");
    let mut stored = 0;
    loop {
        let l = a.line();
        if l.starts_with("OK all_messages ") {
            break;
        }
        stored += 1;
    }
    assert!(stored >= acked, "{acked} acknowledged but {stored} stored");
}

#[test]
fn refuses_a_file_that_is_not_a_linechat_database() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("notes.txt");
    std::fs::write(&junk, "shopping list\n".repeat(400)).unwrap();
    let before = std::fs::read(&junk).unwrap();
    let (status, err) = run_daemon(&["--listen", "127.0.0.1:0", "--db", junk.to_str().unwrap()]);
    assert!(!status.success());
    assert!(err.contains("cannot use"), "{err}");
    assert_eq!(std::fs::read(&junk).unwrap(), before, "file was modified");
}

#[test]
fn bad_flags_exit_with_a_message() {
    let (status, err) = run_daemon(&["--bcrypt-cost", "99"]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--bcrypt-cost 99 is outside 4..=31"), "{err}");
    let (status, _) = run_daemon(&["--sync", "maybe"]);
    assert!(!status.success());
}

#[test]
fn creates_the_database_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let srv = TestServer::start_on(&db, &[]);
    assert!(db.exists());
    let _a = srv.user("alice");
}
