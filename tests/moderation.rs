//! Moderation: admins are made offline (`linechatd user admin`); `#kick` closes every session
//! of a user with `ERR kicked REASON`, the room hears `LEAVE`, the action is stored; non-admins
//! get `ERR denied`, and admins cannot kick admins.
mod common;
use common::{PASS, TestServer};

#[test]
fn an_admin_kicks_every_session_of_a_user_and_the_room_hears_leave() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    let mut bob2 = srv.login("bob");
    let mut root = srv.user("root");
    srv.make_admin("root");
    // Not an admin: denied, whatever the target.
    alice.send("#kick bob");
    alice.expect("ERR denied only admins may do that");
    root.send("#kick nobody x");
    root.expect("ERR usage no account named nobody");
    root.send("#kick bob  spamming  links");
    root.expect("OK kick bob 2");
    assert_eq!(bob.until_closed(), ["ERR kicked spamming  links"]);
    assert_eq!(bob2.until_closed(), ["ERR kicked spamming  links"]);
    alice.expect("LEAVE g bob 1");
    alice.expect_quiet();
    // Kicked is not banned: bob can come back.
    let mut back = srv.login("bob");
    back.send("#ping");
    back.expect("PONG");
    // Stored, with who, what, whom and why.
    let rows: Vec<(String, String, String, String)> = rusqlite::Connection::open(&srv.db)
        .unwrap()
        .prepare("SELECT actor, action, target, reason FROM moderation ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        rows,
        [
            ("cli".into(), "admin".into(), "root".into(), String::new()),
            (
                "root".into(),
                "kick".into(),
                "bob".into(),
                "spamming  links".into()
            ),
        ]
    );
    srv.wait_log("kicked bob (2 sessions): spamming  links")
        .expect("logged at info");
    // #modlog shows the same to admins, oldest first, and nothing to others.
    root.send("#modlog");
    let first = root.line();
    assert!(
        first.starts_with("MODLOG 1 20") && first.ends_with(" cli admin root"),
        "{first}"
    );
    let second = root.line();
    assert!(
        second.starts_with("MODLOG 2 20") && second.ends_with(" root kick bob spamming  links"),
        "{second}"
    );
    root.expect("OK modlog 2");
    root.send("#modlog 1");
    assert!(root.line().starts_with("MODLOG 2 "));
    root.expect("OK modlog 1");
    root.send("#modlog 0");
    root.expect("ERR usage usage: #modlog [LIMIT]");
    alice.send("#modlog");
    alice.expect("ERR denied only admins may do that");
}

#[test]
fn admins_cannot_kick_admins_and_revocation_counts_at_once() {
    let srv = TestServer::start();
    let mut root = srv.user("root");
    let mut other = srv.user("other");
    srv.make_admin("root");
    srv.make_admin("other");
    root.send("#kick other");
    root.expect(
        "ERR denied other is an admin; an operator revokes that first: linechatd user admin other --revoke",
    );
    srv.user_tool(&["admin", "root", "--revoke"]);
    root.send("#kick other");
    root.expect("ERR denied only admins may do that");
    other.send("#kick root");
    other.expect("OK kick root 1");
    assert_eq!(root.until_closed(), ["ERR kicked by an admin"]);
    let mut c = srv.client();
    c.send(&format!("#login root {PASS}"));
    c.expect("OK login root");
}
