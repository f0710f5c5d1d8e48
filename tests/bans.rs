//! Bans, mutes and deletions: `#ban` of accounts and of networks (closing their sessions now,
//! refusing them before any bcrypt work), `#mute`, `#delete` with its tombstone and room line,
//! and the operator's `linechatd user ban|unban`, all against the real daemon.
mod common;
use common::{PASS, TestClient, TestServer, parse_hist};
use std::time::{Duration, Instant};

/// A ban's TIME: RFC 3339 UTC to the second.
fn is_time(t: &str) -> bool {
    t.len() == 20 && t.starts_with("20") && t.ends_with('Z') && t.as_bytes()[10] == b'T'
}

/// The words of an `OK VERB ...` line after the verb.
fn ok_args(line: &str, verb: &str) -> Vec<String> {
    let rest = line
        .strip_prefix(&format!("OK {verb} "))
        .unwrap_or_else(|| panic!("not OK {verb}: {line}"));
    rest.split(' ').map(String::from).collect()
}

fn stored<T: rusqlite::types::FromSql>(srv: &TestServer, sql: &str) -> T {
    rusqlite::Connection::open(&srv.db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_banned_account_is_closed_now_and_refused_before_any_password_check() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    let mut root = srv.user("root");
    srv.make_admin("root");
    alice.send("#ban bob");
    alice.expect("ERR denied only admins may do that");
    // Whatever the words: a non-admin learns nothing about the verb's arguments.
    for line in [
        "#ban",
        "#ban 1.2.3.4/99",
        "#delete x",
        "#mute",
        "#unban a b",
        "#modlog 0",
    ] {
        alice.send(line);
        alice.expect("ERR denied only admins may do that");
    }
    root.send("#ban root");
    root.expect_prefix("ERR denied root is an admin;");
    root.send("#ban nobody 1h");
    root.expect("ERR usage no account named nobody");

    root.send("#ban BOB 1h  spamming links");
    let ok = ok_args(&root.line(), "ban");
    assert_eq!((ok[0].as_str(), ok[2].as_str()), ("bob", "1"), "{ok:?}");
    assert!(is_time(&ok[1]), "{ok:?}");
    let until = ok[1].clone();
    assert_eq!(
        bob.until_closed(),
        [format!("ERR banned until {until}: spamming links")]
    );
    alice.expect("LEAVE g bob 1");
    alice.expect_quiet();

    // Refused with the reason whatever the password (the name decides it, no bcrypt), and
    // the connection stays for another account.
    let mut c = srv.client();
    c.send("#login bob wrong-password");
    c.expect(&format!("ERR banned until {until}: spamming links"));
    c.send(&format!("#login bob {PASS}"));
    c.expect(&format!("ERR banned until {until}: spamming links"));
    c.send(&format!("#login alice {PASS}"));
    c.expect("OK login alice");

    // The ban is stored, and so is the action.
    let reason: String = stored(&srv, "SELECT ban_reason FROM users WHERE name = 'bob'");
    assert_eq!(reason, "spamming links");
    root.send("#modlog 1");
    let row = root.line();
    assert!(
        row.ends_with(&format!(" root ban bob until {until}: spamming links")),
        "{row}"
    );
    root.expect("OK modlog 1");

    root.send("#unban bob");
    root.expect("OK unban bob");
    root.send("#unban bob");
    root.expect("ERR usage bob is not banned");
    let mut back = srv.client();
    back.send(&format!("#login bob {PASS}"));
    back.expect("OK login bob");
}

#[test]
fn a_ban_without_a_duration_is_for_good_and_one_with_ends_by_itself() {
    let srv = TestServer::start();
    let mut root = srv.user("root");
    let _bob = srv.user("bob");
    let _carl = srv.user("carl");
    srv.make_admin("root");
    // A second word that is not a duration starts the reason.
    root.send("#ban carl for spam");
    root.expect("OK ban carl forever 1");
    let mut c = srv.client();
    c.send(&format!("#login carl {PASS}"));
    c.expect("ERR banned until forever: for spam");

    root.send("#ban bob 2s");
    let ok = ok_args(&root.line(), "ban");
    assert_eq!(ok[2], "1");
    c.send(&format!("#login bob {PASS}"));
    c.expect(&format!("ERR banned until {}", ok[1]));
    std::thread::sleep(Duration::from_millis(2100));
    c.send(&format!("#login bob {PASS}"));
    c.expect("OK login bob");
}

#[test]
fn a_banned_network_is_refused_at_connect_and_its_sessions_are_closed_but_admins() {
    let srv = TestServer::start();
    let mut root = srv.user("root");
    srv.make_admin("root");
    let mut alice = srv.user("alice");
    alice.join("g");
    // bob and an admin from 127.0.0.2, a guest from 127.0.0.3, carl from 127.0.0.9.
    let mut bob = TestClient::connect_from(srv.addr, "127.0.0.2").greeted();
    bob.send(&format!("#register bob {PASS}"));
    bob.expect("OK register bob");
    bob.join("g");
    alice.expect("JOIN g bob 2");
    let mut ops = TestClient::connect_from(srv.addr, "127.0.0.2").greeted();
    ops.send(&format!("#register ops {PASS}"));
    ops.expect("OK register ops");
    srv.make_admin("ops");
    let mut guest = TestClient::connect_from(srv.addr, "127.0.0.3").greeted();
    let mut carl = TestClient::connect_from(srv.addr, "127.0.0.9").greeted();
    carl.send(&format!("#register carl {PASS}"));
    carl.expect("OK register carl");

    // Not one that holds the admin's own address.
    root.send("#ban 127.0.0.0/8");
    root.expect_prefix("ERR denied 127.0.0.0/8 holds your own address");
    root.send("#ban 127.0.0.300");
    root.expect_prefix("ERR usage 127.0.0.300 is not an address or a network");

    // 127.0.0.2/31 is .2 and .3: bob closed, the admin spared, the guest closed at its login.
    root.send("#ban 127.0.0.3/31 1h abuse");
    let ok = ok_args(&root.line(), "ban");
    assert_eq!(
        (ok[0].as_str(), ok[2].as_str()),
        ("127.0.0.2/31", "1"),
        "{ok:?}"
    );
    let line = format!("ERR banned until {}: abuse", ok[1]);
    assert_eq!(bob.until_closed(), std::slice::from_ref(&line));
    alice.expect("LEAVE g bob 1");
    ops.send("#ping");
    ops.expect("PONG");
    guest.send(&format!("#login carl {PASS}"));
    assert_eq!(guest.until_closed(), std::slice::from_ref(&line));
    carl.send("#ping");
    carl.expect("PONG");

    // New connections from it get the line and nothing else, before any greeting.
    let mut again = TestClient::connect_from(srv.addr, "127.0.0.2");
    assert_eq!(again.until_closed(), std::slice::from_ref(&line));
    let mut other = TestClient::connect_from(srv.addr, "127.0.0.3");
    assert_eq!(other.until_closed(), [line]);
    TestClient::connect_from(srv.addr, "127.0.0.4").greeted();
    srv.wait_log("refused: until").expect("refusals logged");

    // Unbanned by the network it was banned as.
    root.send("#unban 127.0.0.2");
    root.expect("ERR usage 127.0.0.2/32 is not banned");
    root.send("#unban 127.0.0.2/31");
    root.expect("OK unban 127.0.0.2/31");
    TestClient::connect_from(srv.addr, "127.0.0.2").greeted();
    let rows: i64 = stored(&srv, "SELECT count(*) FROM address_bans");
    assert_eq!(rows, 0);
}

#[test]
fn a_muted_user_reads_on_but_is_not_heard_until_unmuted_even_after_a_restart() {
    let mut srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    let mut root = srv.user("root");
    srv.make_admin("root");
    root.send("#mute root");
    root.expect_prefix("ERR denied root is an admin;");
    root.send("#mute bob 1h flooding");
    let ok = ok_args(&root.line(), "mute");
    assert_eq!(ok[0], "bob");
    assert!(is_time(&ok[1]), "{ok:?}");
    let muted = format!("ERR muted until {}", ok[1]);
    bob.send("can anyone hear me");
    bob.expect(&muted);
    alice.say("g", "alice", "bob reads this");
    bob.expect("MSG g alice bob reads this");
    alice.expect_quiet();
    let bodies: i64 = stored(
        &srv,
        "SELECT count(*) FROM messages WHERE body LIKE 'can anyone%'",
    );
    assert_eq!(bodies, 0, "a muted line is not stored");
    root.send("#modlog 1");
    let row = root.line();
    assert!(
        row.ends_with(&format!(" root mute bob until {}: flooding", ok[1])),
        "{row}"
    );
    root.expect("OK modlog 1");

    // Stored: a restart keeps it.
    drop((alice, bob, root));
    srv.signal("TERM");
    let srv = TestServer::start_on(&srv.db, &[]);
    let mut bob = srv.login("bob");
    bob.join("g");
    bob.send("still here");
    bob.expect(&muted);
    let mut root = srv.login("root");
    root.send("#unmute bob");
    root.expect("OK unmute bob");
    root.send("#unmute bob");
    root.expect("ERR usage bob is not muted");
    bob.say("g", "bob", "heard again");
}

#[test]
fn a_deleted_message_leaves_history_and_its_room_is_told_in_order() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    let mut root = srv.user("root");
    srv.make_admin("root");
    for text in ["one", "buy cheap pills", "three"] {
        alice.say("g", "alice", text);
        bob.expect(&format!("MSG g alice {text}"));
    }
    alice.send("#all_messages");
    let ids: Vec<i64> = (0..3).map(|_| parse_hist(&alice.line()).0).collect();
    alice.expect("OK all_messages 3");
    let spam = ids[1];

    alice.send(&format!("#delete {spam}"));
    alice.expect("ERR denied only admins may do that");
    root.send(&format!("#delete {spam} phishing"));
    root.expect(&format!("OK delete {spam}"));
    alice.expect(&format!("DELETED g {spam} alice"));
    bob.expect(&format!("DELETED g {spam} alice"));
    root.send(&format!("#delete {spam}"));
    root.expect(&format!("ERR usage no message {spam}"));
    root.send("#delete 999999");
    root.expect("ERR usage no message 999999");
    root.send("#delete x");
    root.expect("ERR usage usage: #delete ID [REASON]");

    // Gone from replay and from both history commands.
    let mut carl = srv.user("carl");
    let (_, replay) = carl.join("g");
    let texts: Vec<String> = replay.iter().map(|l| parse_hist(l).3).collect();
    assert_eq!(texts, ["one", "three"]);
    alice.expect("JOIN g carl 3");
    for verb in ["all_messages", "my_messages"] {
        alice.send(&format!("#{verb}"));
        let got: Vec<String> = (0..2).map(|_| parse_hist(&alice.line()).3).collect();
        assert_eq!(got, ["one", "three"], "{verb}");
        alice.expect(&format!("OK {verb} 2"));
    }
    // A tombstone: the row stays, emptied, and ids go on increasing past it.
    let (body, deleted): (String, Option<String>) = rusqlite::Connection::open(&srv.db)
        .unwrap()
        .query_row(
            "SELECT body, deleted_at FROM messages WHERE id = ?1",
            [spam],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(body, "");
    assert!(deleted.is_some());
    alice.say("g", "alice", "four");
    alice.send("#all_messages 1");
    assert_eq!(parse_hist(&alice.line()).0, ids[2] + 1);
    alice.expect("OK all_messages 1");
    // Deleting the newest message does not give its id out again.
    root.send(&format!("#delete {}", ids[2] + 1));
    root.expect(&format!("OK delete {}", ids[2] + 1));
    alice.expect(&format!("DELETED g {} alice", ids[2] + 1));
    alice.say("g", "alice", "five");
    alice.send("#all_messages 1");
    assert_eq!(parse_hist(&alice.line()).0, ids[2] + 2);
}

#[test]
fn the_operator_bans_from_the_command_line_and_the_daemon_acts_within_seconds() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    srv.make_admin("alice");
    // An admin too: the operator can.
    let out = srv.user_tool(&["ban", "Alice", "--for", "1h", "--reason", "stepped down"]);
    assert!(out.starts_with("alice is banned until 20"), "{out}");
    let start = Instant::now();
    let closed = alice.until_closed();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert!(
        closed[0].starts_with("ERR banned until 20") && closed[0].ends_with(": stepped down"),
        "{closed:?}"
    );
    bob.expect("LEAVE g alice 1");
    let list = srv.user_tool(&["list"]);
    assert!(list.contains(" admin banned until 20"), "{list}");
    let mut c = srv.client();
    c.send(&format!("#login alice {PASS}"));
    c.expect_prefix("ERR banned until 20");
    srv.user_tool(&["unban", "alice"]);
    c.send(&format!("#login alice {PASS}"));
    c.expect("OK login alice");

    // A network, and its end.
    srv.user_tool(&["ban", "127.0.0.7"]);
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let mut c = TestClient::connect_from(srv.addr, "127.0.0.7");
        c.line().starts_with("ERR banned until forever")
    });
    assert!(refused, "the daemon read the offline tool's network ban");
    srv.user_tool(&["unban", "127.0.0.7/32"]);
    let back = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        let mut c = TestClient::connect_from(srv.addr, "127.0.0.7");
        c.line().starts_with("INFO linechat")
    });
    assert!(back, "and its unban");
    let log: i64 = stored(&srv, "SELECT count(*) FROM moderation WHERE actor = 'cli'");
    assert_eq!(log, 5, "admin, ban, unban, ban, unban");
}
