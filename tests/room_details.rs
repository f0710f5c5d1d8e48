//! Room details and people over TCP: `#me` actions (live, stored, in history and search),
//! `#topic` (read, set, told to the room in order, on `#join` and in `#rooms`), `#whois`
//! (registered, online where, or last seen).
mod common;

use common::{TestServer, parse_hist};

/// `#me` reaches everyone in the room as `ACTION`, the sender's copy being its
/// acknowledgement; history and search show it as `*NAME`.
#[test]
fn an_action_is_a_stored_message_shown_as_an_action() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    alice.send("#me waves  at bob ");
    alice.expect("ACTION g alice waves  at bob ");
    bob.expect("ACTION g alice waves  at bob ");
    bob.say("g", "bob", "hi");
    alice.expect("MSG g bob hi");
    let rows: Vec<_> = alice
        .history("#my_messages", "my_messages")
        .iter()
        .map(|l| parse_hist(l))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].2.as_str(), rows[0].3.as_str()),
        ("*alice", "waves  at bob ")
    );
    assert_eq!((rows[1].2.as_str(), rows[1].3.as_str()), ("bob", "hi"));
    let found = alice.history("#search waves", "search");
    assert_eq!(parse_hist(&found[0]).2, "*alice");
    let mut carol = srv.user("carol");
    let (_, replay) = carol.join("g");
    assert!(
        replay[0].ends_with(" g *alice waves  at bob "),
        "{replay:?}"
    );
    alice.expect("JOIN g carol 3");
    bob.expect("JOIN g carol 3");
    // Outside a room, empty, or muted: refused, nothing stored.
    let mut dave = srv.user("dave");
    dave.send("#me waves");
    dave.expect_prefix("ERR noroom");
    alice.send("#me   ");
    alice.expect("ERR usage usage: #me TEXT");
    srv.make_admin("alice");
    alice.send("#mute bob 1h");
    alice.expect_prefix("OK mute bob");
    bob.send("#me sulks");
    bob.expect_prefix("ERR muted");
    alice.expect_quiet();
    let conn = rusqlite::Connection::open(&srv.db).unwrap();
    let actions: Vec<(String, i64)> = conn
        .prepare("SELECT body, action FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        actions,
        [("waves  at bob ".to_string(), 1), ("hi".to_string(), 0)]
    );
}

/// A topic: none at first, set by anyone in the room, told to everyone there in order with the
/// messages, sent on join, listed by `#rooms`, kept across a restart.
#[test]
fn a_topic_is_set_told_shown_on_join_and_listed() {
    let mut srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("ops");
    alice.send("#topic");
    alice.expect("OK topic ops");
    bob.say("ops", "bob", "before");
    alice.expect("MSG ops bob before");
    alice.send("#topic release day:  no deploys");
    let told = alice.expect_prefix("TOPIC ops alice ");
    assert!(told.ends_with(" release day:  no deploys"), "{told}");
    alice.expect("OK topic ops");
    bob.expect(&told);
    bob.send("#topic");
    bob.expect(&told);
    bob.expect("OK topic ops");
    bob.send("#rooms");
    bob.expect("ROOMS 1");
    bob.expect("ROOM ops 2 release day:  no deploys");
    let mut carol = srv.user("carol");
    carol.send("#join ops");
    carol.expect("OK join ops 3");
    carol.expect_prefix("INFO welcome to ops;");
    carol.expect(&told);
    carol.expect_prefix("HIST ");
    // Outside a room: refused.
    let mut dave = srv.user("dave");
    dave.send("#topic hello");
    dave.expect_prefix("ERR noroom");
    dave.expect_quiet();
    // Stored: a restarted daemon still has it.
    drop((alice, bob, carol, dave));
    srv.signal("TERM");
    let srv = TestServer::start_on(&srv.db, &[]);
    let mut erin = srv.user("erin");
    erin.send("#join ops");
    erin.expect("OK join ops 1");
    erin.expect_prefix("INFO welcome to ops;");
    erin.expect(&told);
}

/// `#whois`: registered when, online in which rooms (any session's), else when last seen;
/// unknown names are `ERR nouser`.
#[test]
fn whois_tells_registration_presence_and_last_seen() {
    let srv = TestServer::start();
    let mut alice = srv.user("Alice");
    let mut bob = srv.user("bob");
    bob.join("ops");
    let mut bob2 = srv.login("bob");
    bob2.join("dev");
    alice.send("#whois BOB");
    let line = alice.line();
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(parts[..2], ["WHOIS", "bob"]);
    assert!(parts[2].ends_with('Z') && parts[2].len() == 24, "{line}");
    assert_eq!(parts[3..], ["online", "dev", "ops"]);
    alice.send("#whois alice");
    let me = alice.line();
    assert!(
        me.starts_with("WHOIS Alice ") && me.ends_with(" online"),
        "{me}"
    );
    for c in [bob, bob2] {
        let mut c = c;
        c.send("#quit");
        c.expect("OK quit");
    }
    alice.send("#whois bob");
    let away = alice.line();
    let parts: Vec<&str> = away.split(' ').collect();
    assert_eq!(parts[3], "away", "{away}");
    assert!(parts[4].ends_with('Z') && parts[4] > parts[2], "{away}");
    alice.send("#whois nobody");
    alice.expect("ERR nouser no account named nobody");
    alice.send("#whois");
    alice.expect("ERR usage usage: #whois NAME");
}
