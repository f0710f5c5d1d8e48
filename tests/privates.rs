//! Private messages over TCP: `#msg` to every session of both parties (and nobody else),
//! stored before delivery, read back with `#privates` (also by a recipient who was away), never
//! readable by a third user through any verb.
mod common;

use common::{PASS, TestClient, TestServer, parse_hist};

/// Stored rows of the private conversation table: (room, author, body).
fn stored_privates(srv: &TestServer) -> Vec<(String, String, String)> {
    let conn = rusqlite::Connection::open(&srv.db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.name, u.name, m.body FROM messages m JOIN rooms r ON r.id = m.room_id \
             JOIN users u ON u.id = m.user_id WHERE r.name LIKE '@%' ORDER BY m.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The lines of a history verb before its `OK VERB N`.
fn hist(c: &mut TestClient, request: &str, verb: &str) -> Vec<String> {
    c.history(request, verb)
}

/// One `#msg` reaches each session of the recipient and of the sender (the sender's copies are
/// its acknowledgement), whatever room they are in or none, in any case of the name; a third
/// user, in the sender's room, hears nothing.
#[test]
fn a_private_message_reaches_every_session_of_both_parties_and_nobody_else() {
    let srv = TestServer::start();
    let (mut ann, mut carl) = srv.alice_and_bob("lobby");
    let mut ann2 = srv.login("alice");
    let mut bob = srv.user("bob2");
    let mut bob_too = srv.login("bob2");
    bob.join("elsewhere");
    ann.send("#msg BOB2   hello,  there ");
    for c in [&mut ann, &mut ann2, &mut bob, &mut bob_too] {
        c.expect("PRIV alice bob2 hello,  there ");
    }
    bob_too.send("#msg alice and back");
    for c in [&mut ann, &mut ann2, &mut bob, &mut bob_too] {
        c.expect("PRIV bob2 alice and back");
    }
    // To oneself: each of one's sessions once.
    ann2.send("#msg alice a note to self");
    ann.expect("PRIV alice alice a note to self");
    ann2.expect("PRIV alice alice a note to self");
    for c in [&mut ann, &mut ann2, &mut bob, &mut bob_too, &mut carl] {
        c.expect_quiet();
    }
    let mut rows = stored_privates(&srv);
    rows.iter_mut().for_each(|r| r.0 = "@".into());
    assert_eq!(
        rows,
        [
            ("@".into(), "alice".into(), "hello,  there ".into()),
            ("@".into(), "bob2".into(), "and back".into()),
            ("@".into(), "alice".into(), "a note to self".into()),
        ]
    );
}

/// A recipient who is away finds the messages with `#privates NAME`, oldest first, paged like
/// the other history verbs.
#[test]
fn an_absent_recipient_reads_the_conversation_later() {
    let srv = TestServer::start();
    let mut ann = srv.user("ann");
    let mut away = srv.user("bob");
    away.send("#quit");
    away.expect("OK quit");
    for k in 0..5 {
        ann.send(&format!("#msg bob note {k}"));
        ann.expect(&format!("PRIV ann bob note {k}"));
    }
    let mut bob = srv.login("bob");
    bob.expect("INFO 5 unread private messages from ann: #privates NAME to read them");
    // What arrived while away follows the notice, as history.
    let told: Vec<String> = (0..5).map(|_| bob.line()).collect();
    let all = hist(&mut bob, "#privates ann", "privates");
    assert_eq!(told, all);
    let texts: Vec<String> = all.iter().map(|h| parse_hist(h).3).collect();
    assert_eq!(
        texts,
        (0..5).map(|k| format!("note {k}")).collect::<Vec<_>>()
    );
    for h in &all {
        let (_, room, name, _) = parse_hist(h);
        assert_eq!((room.as_str(), name.as_str()), ("@ann", "ann"));
    }
    let last_two = hist(&mut bob, "#privates ANN 2", "privates");
    assert_eq!(last_two, all[3..]);
    let before = parse_hist(&all[3]).0;
    let page = hist(&mut bob, &format!("#privates ann 2 {before}"), "privates");
    assert_eq!(page, all[1..3]);
    // The sender sees the same conversation, named after the other party.
    let mine = hist(&mut ann, "#privates bob 1", "privates");
    assert!(mine[0].ends_with(" @bob ann note 4"), "{mine:?}");
}

/// Bad `#msg` and `#privates` lines get a clear error and the session goes on.
#[test]
fn bad_private_messages_are_refused_clearly() {
    let srv = TestServer::start();
    let mut guest = srv.client();
    guest.send("#msg bob hi");
    guest.expect("ERR auth log in first: #login NAME PASSWORD or #register NAME PASSWORD");
    let mut ann = srv.user("ann");
    ann.send("#msg nobody hi");
    ann.expect("ERR nouser no account named nobody");
    ann.send("#msg ann");
    ann.expect("ERR usage usage: #msg NAME TEXT");
    ann.send("#msg ann    ");
    ann.expect("ERR usage usage: #msg NAME TEXT");
    ann.send("#msg b@d hi");
    ann.expect_prefix("ERR badname ");
    ann.send("#privates nobody");
    ann.expect("ERR nouser no account named nobody");
    ann.send("#privates ann 0");
    ann.expect("ERR usage LIMIT must be 1 to 1000; usage: #privates [NAME [LIMIT] [BEFORE_ID]]");
    ann.send("#privates ann 5 x");
    ann.expect_prefix("ERR usage ");
    ann.send("#ping");
    ann.expect("PONG");
}

/// A third user never reads a private message: not with `#privates` (only one's own
/// conversations exist for one), not with `#my_messages` or `#all_messages`, not by joining the
/// conversation's stored room name, not in anyone's join replay.
#[test]
fn a_third_user_can_never_read_a_private_message() {
    let srv = TestServer::start();
    let (mut ann, mut bob) = srv.alice_and_bob("lobby");
    ann.say("lobby", "alice", "in the room");
    bob.expect("MSG lobby alice in the room");
    ann.send("#msg bob the secret");
    ann.expect("PRIV alice bob the secret");
    bob.expect("PRIV alice bob the secret");
    let mut eve = srv.user("eve");
    eve.join("lobby");
    ann.expect("JOIN lobby eve 3");
    bob.expect("JOIN lobby eve 3");
    for (request, verb) in [
        ("#privates alice", "privates"),
        ("#privates bob", "privates"),
        ("#my_messages", "my_messages"),
        ("#all_messages", "all_messages"),
    ] {
        let lines = hist(&mut eve, request, verb);
        assert!(
            lines.iter().all(|l| !l.contains("the secret")),
            "{request}: {lines:?}"
        );
    }
    let room = stored_privates(&srv)[0].0.clone();
    eve.send(&format!("#join {room}"));
    eve.expect_prefix("ERR badname ");
    eve.send(&format!("#join {}", &room[1..]));
    eve.expect_prefix("ERR badname ");
    // The parties' own history: #all_messages has the sender's private message, shown with
    // the other party; #my_messages (rooms) has none.
    let mine = hist(&mut ann, "#all_messages", "all_messages");
    assert!(
        mine.last().unwrap().ends_with(" @bob alice the secret"),
        "{mine:?}"
    );
    let rooms = hist(&mut bob, "#my_messages", "my_messages");
    assert!(rooms.iter().all(|l| !l.contains("the secret")), "{rooms:?}");
}

/// `#all_messages` is the user's messages: what they sent anywhere and the private messages
/// they received, in one order, paged; not what someone they ignore sent them.
#[test]
fn all_messages_holds_what_was_sent_and_received() {
    let srv = TestServer::start();
    let mut ann = srv.user("ann");
    ann.join("lobby");
    let mut bob = srv.user("bob");
    let mut pest = srv.user("pest");
    ann.say("lobby", "ann", "one in the room");
    bob.send("#msg ann two from bob");
    ann.expect("PRIV bob ann two from bob");
    ann.send("#msg bob three to bob");
    ann.expect("PRIV ann bob three to bob");
    ann.send("#ignore pest");
    ann.expect("OK ignore pest");
    pest.send("#msg ann four, ignored");
    pest.expect("PRIV pest ann four, ignored");
    bob.send("#msg ann five from bob");
    ann.expect("PRIV bob ann five from bob");
    ann.send("#msg ann six to self");
    ann.expect("PRIV ann ann six to self");
    let shown = |c: &mut TestClient, request: &str| -> Vec<String> {
        hist(c, request, "all_messages")
            .iter()
            .map(|l| {
                let (_, room, name, text) = parse_hist(l);
                format!("{room} {name} {text}")
            })
            .collect()
    };
    let all = shown(&mut ann, "#all_messages");
    assert_eq!(
        all,
        [
            "lobby ann one in the room",
            "@bob bob two from bob",
            "@bob ann three to bob",
            "@bob bob five from bob",
            "@ann ann six to self",
        ]
    );
    // Pages: the newest 2, then the 2 before the first of them.
    let page = hist(&mut ann, "#all_messages 2", "all_messages");
    assert_eq!(page.len(), 2);
    let first = parse_hist(&page[0]).0;
    assert_eq!(
        shown(&mut ann, &format!("#all_messages 2 {first}")),
        ["@bob bob two from bob", "@bob ann three to bob"]
    );
    // The ignored sender's own history keeps theirs.
    assert_eq!(
        shown(&mut pest, "#all_messages"),
        ["@ann pest four, ignored"]
    );
}

/// Private messages share the chat rate limit, and a muted user cannot send them.
#[test]
fn private_messages_are_rate_limited_and_muted_users_refused() {
    let srv = TestServer::start_with(&["--rate-burst", "2", "--rate-per-sec", "1"]);
    let mut root = srv.user("root");
    srv.make_admin("root");
    let mut ann = srv.user("ann");
    ann.send("#msg root one");
    ann.expect("PRIV ann root one");
    ann.send("#msg root two");
    ann.expect("PRIV ann root two");
    ann.send("#msg root three");
    ann.expect_prefix("ERR ratelimit retry-after=");
    root.expect("PRIV ann root one");
    root.expect("PRIV ann root two");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    root.send("#mute ann");
    root.expect_prefix("OK mute ann forever");
    ann.send("#msg root let me speak");
    ann.expect("ERR muted until forever");
    let _ = PASS;
}

/// Logging in after being away: one `INFO` line says how many private messages arrived and
/// from whom (in the order they first wrote); `#privates` lists the conversations, the most
/// recent first, with what is new in each. Once a session of the user has ended after them,
/// they are no longer new.
#[test]
fn a_returning_user_is_told_what_arrived_while_away() {
    let srv = TestServer::start();
    let mut bob = srv.user("bob");
    bob.send("#quit");
    bob.expect("OK quit");
    let mut carol = srv.user("Carol");
    let mut dave = srv.user("dave");
    carol.send("#msg bob one from carol");
    carol.expect("PRIV Carol bob one from carol");
    dave.send("#msg bob one from dave");
    dave.expect("PRIV dave bob one from dave");
    carol.send("#msg bob two from carol");
    carol.expect("PRIV Carol bob two from carol");
    let mut back = srv.client();
    back.send(&format!("#login bob {PASS}"));
    back.expect("OK login bob");
    back.expect("INFO 3 unread private messages from Carol, dave: #privates NAME to read them");
    for want in [
        " @Carol Carol one from carol",
        " @dave dave one from dave",
        " @Carol Carol two from carol",
    ] {
        let l = back.expect_prefix("HIST ");
        assert!(l.ends_with(want), "{l}");
    }
    back.send("#privates");
    back.expect("PRIVATES 2");
    back.expect("PRIVATE Carol 2");
    back.expect("PRIVATE dave 1");
    back.send("#quit");
    back.expect("OK quit");
    // Seen by that session: the next login is quiet, the list says nothing is new.
    let mut again = srv.login("bob");
    again.send("#privates");
    again.expect("PRIVATES 2");
    again.expect("PRIVATE Carol 0");
    again.expect("PRIVATE dave 0");
    again.expect_quiet();
    // One message, said so.
    let mut eve = srv.user("eve");
    again.send("#quit");
    again.expect("OK quit");
    eve.send("#msg bob hi");
    eve.expect("PRIV eve bob hi");
    let mut third = srv.client();
    third.send(&format!("#login bob {PASS}"));
    third.expect("OK login bob");
    third.expect("INFO 1 unread private message from eve: #privates NAME to read them");
    assert!(third.expect_prefix("HIST ").ends_with(" @eve eve hi"));
    third.expect_quiet();
    // Nobody else's conversations are listed.
    let mut lone = srv.user("lone");
    lone.send("#privates");
    lone.expect("PRIVATES 0");
}

/// `#ignore NAME`: NAME's private messages still get their echo (NAME is not told), but
/// reach none of the ignoring user's sessions, nor their unread notice or `#privates`;
/// `#unignore` takes new ones again. Bad names and oneself are refused.
#[test]
fn an_ignored_sender_is_not_heard_and_not_told() {
    let srv = TestServer::start();
    let mut bob = srv.user("bob");
    let mut pest = srv.user("pest");
    let mut friend = srv.user("friend");
    bob.send("#ignore PEST");
    bob.expect("OK ignore pest");
    bob.send("#ignore bob");
    bob.expect("ERR usage you cannot ignore yourself");
    bob.send("#ignore nobody");
    bob.expect("ERR nouser no account named nobody");
    bob.send("#ignore");
    bob.expect("ERR usage usage: #ignore NAME");
    pest.send("#msg bob let me in");
    pest.expect("PRIV pest bob let me in");
    friend.send("#msg bob hello");
    friend.expect("PRIV friend bob hello");
    bob.expect("PRIV friend bob hello");
    bob.expect_quiet();
    assert!(hist(&mut bob, "#privates pest", "privates").is_empty());
    bob.send("#quit");
    bob.expect("OK quit");
    pest.send("#msg bob while you were out");
    pest.expect("PRIV pest bob while you were out");
    let mut back = srv.login("bob");
    back.send("#privates");
    back.expect("PRIVATES 2");
    back.expect("PRIVATE pest 0");
    back.expect("PRIVATE friend 0");
    back.send("#unignore pest");
    back.expect("OK unignore pest");
    pest.send("#msg bob finally");
    pest.expect("PRIV pest bob finally");
    back.expect("PRIV pest bob finally");
    // The sender's own history keeps all three.
    let sent = hist(&mut pest, "#privates bob", "privates");
    assert_eq!(sent.len(), 3, "{sent:?}");
}

/// More unread private messages than `--history-on-join-missed`: the notice, a line saying
/// the newest that many follow, then those; none if it is 0.
#[test]
fn unread_private_messages_at_login_are_capped() {
    for (cap, shown) in [("2", 2usize), ("0", 0)] {
        let srv = TestServer::start_with(&["--history-on-join-missed", cap]);
        let mut ann = srv.user("ann");
        // Away before the first message: its end is ordered before it.
        let mut away = srv.user("bob");
        away.send("#quit");
        away.expect("OK quit");
        for k in 1..=3 {
            ann.send(&format!("#msg bob note {k}"));
            ann.expect(&format!("PRIV ann bob note {k}"));
        }
        let mut bob = srv.login("bob");
        bob.expect("INFO 3 unread private messages from ann: #privates NAME to read them");
        if shown > 0 {
            bob.expect("INFO the newest 2 of them follow; #privates NAME for the others");
            assert!(bob.expect_prefix("HIST ").ends_with(" @ann ann note 2"));
            assert!(bob.expect_prefix("HIST ").ends_with(" @ann ann note 3"));
        }
        bob.expect_quiet();
    }
}
