//! Rooms, presence and live chat: joins, leaves, counts across sessions, fan-out to many.
mod common;
use common::{TestClient, TestServer};
use std::collections::HashSet;

#[test]
fn the_netcat_session_from_the_readme() {
    let srv = TestServer::start();
    let mut alice = srv.client();
    let mut bob = srv.client();
    alice.send("#register alice s3cret-pass");
    alice.expect("OK register alice");
    bob.send("#register bob hunter22-pass");
    bob.expect("OK register bob");
    alice.send("#join general");
    alice.expect("OK join general 1");
    alice.expect("INFO welcome to general; here now (1): alice");
    bob.send("#join general");
    bob.expect("OK join general 2");
    bob.expect("INFO welcome to general; here now (2): alice bob");
    alice.expect("JOIN general bob 2");
    alice.send("hello bob");
    alice.expect("MSG general alice hello bob");
    bob.expect("MSG general alice hello bob");
    alice.send("#users");
    alice.expect("USERS general 2 alice bob");
    bob.send("#my_messages");
    let (id, room, name, text) = common::parse_hist(&bob.line());
    assert_eq!(
        (id, &*room, &*name, &*text),
        (1, "general", "alice", "hello bob")
    );
    bob.expect("OK my_messages 1");
    alice.send("#leave");
    alice.expect("OK leave general");
    bob.expect("LEAVE general alice 1");
    bob.send("#quit");
    bob.expect("OK quit");
    assert!(bob.until_closed().is_empty());
    alice.expect_quiet();
}

#[test]
fn counts_are_distinct_users_across_sessions() {
    let srv = TestServer::start();
    let mut bob = srv.user("bob");
    assert_eq!(bob.join("g").0, 1);
    let mut a1 = srv.user("alice");
    assert_eq!(a1.join("g").0, 2);
    bob.expect("JOIN g alice 2");
    // alice's second session: no JOIN, count unchanged.
    let mut a2 = srv.login("alice");
    assert_eq!(a2.join("g").0, 2);
    bob.expect_quiet();
    // Both of alice's sessions get her messages, from either session.
    a2.send("from two");
    a2.expect("MSG g alice from two");
    a1.expect("MSG g alice from two");
    bob.expect("MSG g alice from two");
    // First session leaves: alice is still here.
    a1.send("#leave");
    a1.expect("OK leave g");
    bob.send("#users");
    bob.expect("USERS g 2 alice bob");
    // Last session drops without a word: LEAVE goes out, count is right.
    a2.close();
    bob.expect("LEAVE g alice 1");
    bob.send("#users");
    bob.expect("USERS g 1 bob");
    // A duplicate login after all that starts clean.
    let mut a3 = srv.login("alice");
    assert_eq!(a3.join("g").0, 2);
    bob.expect("JOIN g alice 2");
    a1.send("#rooms");
    a1.expect("ROOMS 1");
    a1.expect("ROOM g 2");
}

#[test]
fn rejoining_the_same_room_changes_nothing() {
    let srv = TestServer::start();
    let mut bob = srv.user("bob");
    bob.join("g");
    let mut alice = srv.user("alice");
    alice.join("g");
    bob.expect("JOIN g alice 2");
    // Room names are case-insensitive: G is g.
    alice.send("#join G");
    alice.expect("OK join g 2");
    alice.expect("INFO welcome to g; here now (2): alice bob");
    alice.expect_quiet();
    bob.expect_quiet();
}

#[test]
fn switching_rooms_leaves_the_old_one() {
    let srv = TestServer::start();
    let mut bob = srv.user("bob");
    bob.join("a");
    let mut alice = srv.user("alice");
    alice.join("a");
    bob.expect("JOIN a alice 2");
    assert_eq!(alice.join("b").0, 1);
    bob.expect("LEAVE a alice 1");
    // Plain lines now go to b only.
    alice.say("b", "alice", "in b");
    bob.expect_quiet();
    bob.send("#rooms");
    bob.expect("ROOMS 2");
    bob.expect("ROOM a 1");
    bob.expect("ROOM b 1");
}

#[test]
fn outside_a_room() {
    let srv = TestServer::start();
    let mut c = srv.user("alice");
    let noroom = "ERR noroom you are not in a room: #join ROOM first";
    c.send("hello?");
    c.expect(noroom);
    c.send("#users");
    c.expect(noroom);
    c.send("#leave");
    c.expect(noroom);
    c.send("#rooms");
    c.expect("ROOMS 0");
    c.join("g");
    c.send("#leave");
    c.expect("OK leave g");
    c.send("after leaving");
    c.expect(noroom);
    c.send("#all_messages");
    c.expect("OK all_messages 0");
}

#[test]
fn hash_escape_sends_a_line_starting_with_hash() {
    let srv = TestServer::start();
    let mut c = srv.user("alice");
    c.join("g");
    c.send("##hashtag");
    c.expect("MSG g alice #hashtag");
}

/// `clients` users in one room; `per` messages each, all sent at once. Every client must see
/// every message exactly once, all in the same order.
fn everyone_sees_everything(clients: usize, per: usize) {
    let srv = TestServer::start();
    let mut cs: Vec<(String, TestClient)> = Vec::new();
    for i in 0..clients {
        let name = format!("u{i}");
        let mut c = srv.user(&name);
        assert_eq!(c.join("room").0, i + 1);
        cs.push((name, c));
    }
    // Drain the JOIN lines: client i saw the joins of i+1..clients.
    for (i, (_, c)) in cs.iter_mut().enumerate() {
        let lines = c.until_pong();
        assert_eq!(lines.len(), clients - 1 - i, "{lines:?}");
    }
    let total = clients * per;
    let handles: Vec<_> = cs
        .into_iter()
        .map(|(name, mut c)| {
            std::thread::spawn(move || {
                for k in 0..per {
                    c.send(&format!("{name} says {k}"));
                }
                let mut seen = Vec::with_capacity(total);
                while seen.len() < total {
                    let l = c.line();
                    let text = l.strip_prefix("MSG room ").unwrap_or_else(|| panic!("{l}"));
                    seen.push(text.to_string());
                }
                assert!(c.until_pong().is_empty());
                // Keep the connection open until everyone is done, or others would see LEAVE.
                (seen, c)
            })
        })
        .collect();
    let (views, _clients): (Vec<Vec<String>>, Vec<TestClient>) =
        handles.into_iter().map(|h| h.join().unwrap()).unzip();
    let expected: HashSet<String> = (0..clients)
        .flat_map(|i| (0..per).map(move |k| format!("u{i} u{i} says {k}")))
        .collect();
    for v in &views {
        assert_eq!(v.len(), total);
        assert_eq!(v.iter().cloned().collect::<HashSet<_>>(), expected);
        assert_eq!(v, &views[0], "clients saw different orders");
    }
    // Each sender's own messages keep their order.
    for i in 0..clients {
        let mine: Vec<&String> = views[0]
            .iter()
            .filter(|t| t.starts_with(&format!("u{i} ")))
            .collect();
        let want: Vec<String> = (0..per).map(|k| format!("u{i} u{i} says {k}")).collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
}

#[test]
fn two_clients_see_every_message_once_in_order() {
    everyone_sees_everything(2, 200);
}

#[test]
fn fifty_clients_see_every_message_once_in_order() {
    everyone_sees_everything(50, 10);
}
