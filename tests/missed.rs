//! "What I missed" over TCP: a returning user's `#join` replays the messages since one of
//! their sessions last left the room (after a little context, with an `INFO` line between),
//! capped by `--history-on-join-missed` with a line saying how many more and how to page back;
//! a first visit, or a return with nothing new, gets the last N as before.
mod common;

use common::{TestClient, TestServer};

/// The lines after `OK join` and the welcome (up to a ping barrier), each `HIST` shortened to
/// `NAME TEXT`.
fn replay(c: &mut TestClient, room: &str) -> Vec<String> {
    c.join(room)
        .1
        .iter()
        .map(|l| match l.strip_prefix("HIST ") {
            Some(_) => {
                let (_, _, name, text) = common::parse_hist(l);
                format!("{name} {text}")
            }
            None => l.clone(),
        })
        .collect()
}

/// Leaving by `#join` elsewhere, by `#leave` and by disconnecting all mark the room seen; the
/// next join shows context, the separator line, then exactly the missed messages.
#[test]
fn a_returning_user_sees_what_they_missed_after_the_context() {
    let srv = TestServer::start_with(&["--history-on-join", "3"]);
    let mut ann = srv.user("ann");
    ann.join("ops");
    let mut bob = srv.user("bob");
    assert_eq!(replay(&mut bob, "ops"), Vec::<String>::new());
    ann.expect("JOIN ops bob 2");
    for k in 1..=4 {
        ann.say("ops", "ann", &format!("seen {k}"));
        bob.expect(&format!("MSG ops ann seen {k}"));
    }
    // Away by joining another room: two messages missed.
    bob.join("elsewhere");
    ann.expect("LEAVE ops bob 1");
    ann.say("ops", "ann", "missed 1");
    ann.say("ops", "ann", "missed 2");
    assert_eq!(
        replay(&mut bob, "ops"),
        [
            "ann seen 2",
            "ann seen 3",
            "ann seen 4",
            "INFO 2 new messages in ops since you were last here",
            "ann missed 1",
            "ann missed 2",
        ]
    );
    ann.expect("JOIN ops bob 2");
    // Nothing new since: the plain replay of the last 3.
    bob.send("#leave");
    bob.expect("OK leave ops");
    ann.expect("LEAVE ops bob 1");
    assert_eq!(
        replay(&mut bob, "ops"),
        ["ann seen 4", "ann missed 1", "ann missed 2"]
    );
    ann.expect("JOIN ops bob 2");
    // Away by disconnecting; back on a new connection: one missed, by the singular.
    bob.send("#quit");
    bob.expect("OK quit");
    ann.expect("LEAVE ops bob 1");
    ann.say("ops", "ann", "while you were out");
    let mut bob = srv.login("bob");
    assert_eq!(
        replay(&mut bob, "ops"),
        [
            "ann seen 4",
            "ann missed 1",
            "ann missed 2",
            "INFO 1 new message in ops since you were last here",
            "ann while you were out",
        ]
    );
    // A first visit is unchanged: the last 3, no separator.
    let mut cat = srv.user("cat");
    assert_eq!(
        replay(&mut cat, "ops"),
        ["ann missed 1", "ann missed 2", "ann while you were out"]
    );
}

/// More missed than `--history-on-join-missed`: the newest that many, and a line saying how
/// many there are and how to page back to the older ones.
#[test]
fn a_long_absence_is_capped_with_a_way_back() {
    let srv = TestServer::start_with(&[
        "--history-on-join",
        "2",
        "--history-on-join-missed",
        "5",
        "--rate-burst",
        "100",
    ]);
    let mut ann = srv.user("ann");
    ann.join("ops");
    let mut bob = srv.user("bob");
    bob.join("ops");
    ann.expect("JOIN ops bob 2");
    bob.join("away");
    ann.expect("LEAVE ops bob 1");
    for k in 1..=12 {
        ann.say("ops", "ann", &format!("m{k}"));
    }
    let lines = replay(&mut bob, "ops");
    ann.expect("JOIN ops bob 2");
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert_eq!(
        &lines[1..],
        ["ann m8", "ann m9", "ann m10", "ann m11", "ann m12"]
    );
    // No context: everything before the shown ones is missed too.
    let info = &lines[0];
    let first = info
        .rsplit(' ')
        .next()
        .and_then(|id| id.parse::<i64>().ok())
        .unwrap();
    assert_eq!(
        info,
        &format!(
            "INFO 12 new messages in ops since you were last here; the newest 5 follow, the older ones: #my_messages 5 {first}"
        )
    );
    // The way back works: the page before the first shown ends with m7.
    let older = bob.history(&format!("#my_messages 5 {first}"), "my_messages");
    assert_eq!(older.len(), 5);
    assert!(older[4].ends_with(" ops ann m7"), "{older:?}");
    // Missed messages deleted since are not shown and not counted.
    srv.make_admin("ann");
    bob.join("away");
    ann.expect("LEAVE ops bob 1");
    ann.say("ops", "ann", "oops");
    let id = ann
        .history("#search oops", "search")
        .first()
        .map(|l| common::parse_hist(l).0)
        .unwrap();
    ann.send(&format!("#delete {id}"));
    ann.expect(&format!("DELETED ops {id} ann"));
    ann.expect(&format!("OK delete {id}"));
    ann.say("ops", "ann", "kept");
    assert_eq!(
        replay(&mut bob, "ops"),
        [
            "ann m11",
            "ann m12",
            "INFO 1 new message in ops since you were last here",
            "ann kept",
        ]
    );
}

/// `--history-on-join-missed 0` turns the feature off: every join is the plain replay.
#[test]
fn missed_replay_can_be_turned_off() {
    let srv = TestServer::start_with(&["--history-on-join", "2", "--history-on-join-missed", "0"]);
    let mut ann = srv.user("ann");
    ann.join("ops");
    let mut bob = srv.user("bob");
    bob.join("ops");
    ann.expect("JOIN ops bob 2");
    bob.join("away");
    ann.expect("LEAVE ops bob 1");
    for k in 1..=3 {
        ann.say("ops", "ann", &format!("m{k}"));
    }
    assert_eq!(replay(&mut bob, "ops"), ["ann m2", "ann m3"]);
}
