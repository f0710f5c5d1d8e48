//! `#search` over TCP: what a user may read and nothing else, searchable the moment it is
//! committed, the forms of WORDS, filters and pages, deleted and ignored messages left out, and
//! every hostile search answered with `ERR usage` on a connection that lives on.
mod common;

use common::{TestClient, TestServer, parse_hist};

/// (id, room, name, text) of each `HIST` line of a search.
fn search(c: &mut TestClient, words: &str) -> Vec<(String, String, String)> {
    c.history(&format!("#search {words}"), "search")
        .iter()
        .map(|l| {
            let (_, room, name, text) = parse_hist(l);
            (room, name, text)
        })
        .collect()
}

fn row(room: &str, name: &str, text: &str) -> (String, String, String) {
    (room.into(), name.into(), text.into())
}

/// A message is found as soon as its sender has its echo; results are the newest matches,
/// oldest first, with every form of WORDS.
#[test]
fn words_phrases_prefixes_and_exclusions() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("ops");
    alice.say("ops", "alice", "the deploy went well");
    bob.expect("MSG ops alice the deploy went well");
    bob.say("ops", "bob", "Deploy failed, rolling back");
    alice.expect("MSG ops bob Deploy failed, rolling back");
    alice.say("ops", "alice", "well, the café is open");
    bob.expect("MSG ops alice well, the café is open");
    bob.say("ops", "bob", "error 404 on the deploy page");
    alice.expect("MSG ops bob error 404 on the deploy page");

    assert_eq!(
        search(&mut alice, "DEPLOY"),
        [
            row("ops", "alice", "the deploy went well"),
            row("ops", "bob", "Deploy failed, rolling back"),
            row("ops", "bob", "error 404 on the deploy page"),
        ]
    );
    assert_eq!(
        search(&mut bob, "\"went well\""),
        [row("ops", "alice", "the deploy went well")]
    );
    assert_eq!(
        search(&mut bob, "\"well went\""),
        Vec::<(String, String, String)>::new()
    );
    assert_eq!(
        search(&mut bob, "roll*"),
        [row("ops", "bob", "Deploy failed, rolling back")]
    );
    assert_eq!(
        search(&mut bob, "deploy -failed -\"went well\""),
        [row("ops", "bob", "error 404 on the deploy page")]
    );
    // Accents and case do not matter; a quoted number is a word.
    assert_eq!(
        search(&mut bob, "CAFE"),
        [row("ops", "alice", "well, the café is open")]
    );
    assert_eq!(
        search(&mut bob, "\"404\""),
        [row("ops", "bob", "error 404 on the deploy page")]
    );
    // The newest LIMIT, oldest first; BEFORE_ID pages back.
    let page = bob.history("#search deploy 2", "search");
    let ids: Vec<i64> = page.iter().map(|l| parse_hist(l).0).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert_eq!(parse_hist(&page[1]).3, "error 404 on the deploy page");
    let back = bob.history(&format!("#search deploy 2 {}", ids[0]), "search");
    assert_eq!(back.len(), 1);
    assert_eq!(parse_hist(&back[0]).3, "the deploy went well");
    alice.expect_quiet();
    bob.expect_quiet();
}

/// `in=` and `from=` narrow a search; a room never joined is `ERR denied` whether or not it
/// exists; unknown names are `ERR nouser`.
#[test]
fn filters_narrow_and_unknown_scopes_are_refused() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("ops");
    alice.say("ops", "alice", "lunch in ops");
    bob.expect("MSG ops alice lunch in ops");
    bob.say("ops", "bob", "lunch? yes");
    alice.expect("MSG ops bob lunch? yes");
    alice.join("food");
    bob.expect("LEAVE ops alice 1");
    alice.say("food", "alice", "lunch menu");
    let mut carol = srv.user("carol");
    carol.join("secret");
    carol.say("secret", "carol", "secret lunch");

    assert_eq!(
        search(&mut alice, "lunch in=food"),
        [row("food", "alice", "lunch menu")]
    );
    assert_eq!(
        search(&mut alice, "lunch from=BOB"),
        [row("ops", "bob", "lunch? yes")]
    );
    assert_eq!(
        search(&mut alice, "lunch in=ops from=alice"),
        [row("ops", "alice", "lunch in ops")]
    );
    assert_eq!(
        search(&mut alice, "lunch").len(),
        3,
        "carol's room is not alice's"
    );
    for room in ["secret", "nowhere"] {
        alice.send(&format!("#search lunch in={room}"));
        alice.expect(&format!(
            "ERR denied you have never joined {room}: #search reads the rooms you have joined"
        ));
    }
    alice.send("#search lunch from=nobody");
    alice.expect("ERR nouser no account named nobody");
    alice.send("#search lunch in=@nobody");
    alice.expect("ERR nouser no account named nobody");
    // Bob never joined food: its messages are not his to find.
    assert_eq!(
        search(&mut bob, "menu"),
        Vec::<(String, String, String)>::new()
    );
    alice.expect_quiet();
}

/// A third user never finds a private message, whatever they search; the two parties find it
/// as `@PEER`, also with `in=@PEER`; an ignored sender's messages are not found by the one
/// ignoring them; a deleted message is never found.
#[test]
fn private_messages_ignores_and_deletions() {
    let srv = TestServer::start();
    let mut ann = srv.user("ann");
    let mut ben = srv.user("ben");
    let mut eve = srv.user("eve");
    ann.send("#msg ben the password is swordfish");
    ann.expect("PRIV ann ben the password is swordfish");
    ben.expect("PRIV ann ben the password is swordfish");
    ben.send("#msg ann swordfish noted");
    ann.expect("PRIV ben ann swordfish noted");
    ben.expect("PRIV ben ann swordfish noted");
    // The conversation's stored room name cannot be named either.
    for words in [
        "swordfish",
        "swordfish from=ann",
        "swordfish in=@ann",
        "swordfish in=@ben",
        "password",
    ] {
        assert_eq!(
            search(&mut eve, words),
            Vec::<(String, String, String)>::new(),
            "{words}"
        );
    }
    eve.send("#search swordfish in=@1:2");
    eve.expect_prefix("ERR badname");
    assert_eq!(
        search(&mut ann, "swordfish"),
        [
            row("@ben", "ann", "the password is swordfish"),
            row("@ben", "ben", "swordfish noted"),
        ]
    );
    assert_eq!(
        search(&mut ben, "swordfish in=@ANN from=ann"),
        [row("@ann", "ann", "the password is swordfish")]
    );
    ben.send("#ignore ann");
    ben.expect("OK ignore ann");
    assert_eq!(
        search(&mut ben, "swordfish"),
        [row("@ann", "ben", "swordfish noted")]
    );
    // A deleted room message leaves the index.
    srv.make_admin("ann");
    ann.join("hall");
    ann.say("hall", "ann", "swordfish in the hall");
    let found = ann.history("#search hall", "search");
    let id = parse_hist(&found[0]).0;
    ann.send(&format!("#delete {id}"));
    ann.expect(&format!("DELETED hall {id} ann"));
    ann.expect(&format!("OK delete {id}"));
    assert_eq!(
        search(&mut ann, "hall"),
        Vec::<(String, String, String)>::new()
    );
    let conn = rusqlite::Connection::open(&srv.db).unwrap();
    let indexed: i64 = conn
        .query_row(
            "SELECT count(*) FROM message_words WHERE message_words MATCH 'hall'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 0);
}

/// What `ERR usage` says of a search with no word to look for.
const NOTHING: &str = "nothing to search for: give a word with a letter or digit (a number alone is a LIMIT; quote it to search for it)";

/// Hostile searches: every one is `ERR usage` with its reason or a plain search for the text,
/// never a crash or another meaning; the connection and the daemon live on.
#[test]
fn hostile_searches_are_usage_errors_or_plain_text() {
    let srv = TestServer::start_with(&["--rate-burst", "100"]);
    let mut alice = srv.user("alice");
    alice.join("ops");
    alice.say("ops", "alice", "meet near gate 4, or drop table messages");
    let form = "usage: #search WORDS [in=ROOM|in=@NAME] [from=NAME] [LIMIT] [BEFORE_ID]";
    for (words, why) in [
        ("\"unclosed", "a quote is not closed"),
        ("\"", "a quote is not closed"),
        ("a\" \"b", "a quote is not closed"),
        ("", NOTHING),
        ("-gate", NOTHING),
        ("20", NOTHING),
        ("* - (( \"\" -\"!\" --", NOTHING),
        ("gate 0", "LIMIT must be 1 to 1000"),
        ("a b c d e f g h i j k", "at most 10 words or phrases"),
    ] {
        alice.send(&format!("#search {words}"));
        alice.expect(&format!("ERR usage {why}; {form}"));
    }
    alice.send(&format!("#search {}", "x".repeat(4000)));
    alice.expect(&format!("ERR usage a search is at most 256 bytes; {form}"));
    // The index's syntax is plain text: these find the message by its words, or nothing.
    for words in [
        "NEAR(gate",
        "gate OR",
        "drop table",
        "'; DROP TABLE messages;",
        "body:gate",
        "scope:r1 gate",
        "gate*",
        "{body}",
    ] {
        let rows = search(&mut alice, words);
        assert!(rows.len() <= 1, "{words}: {rows:?}");
    }
    assert_eq!(search(&mut alice, "NEAR(gate").len(), 1);
    assert_eq!(search(&mut alice, "'; DROP TABLE messages;").len(), 1);
    // Words without letters or digits are left out, as the index leaves them out of messages.
    assert_eq!(search(&mut alice, "drop -- (( table *").len(), 1);
    assert_eq!(search(&mut alice, "scope:r1 gate").len(), 0);
    alice.say("ops", "alice", "still here");
    let conn = rusqlite::Connection::open(&srv.db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
}
