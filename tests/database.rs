//! The database file's life: upgrading a version-1 database, refusing a newer one, one daemon
//! per database, and `#health` noticing the file deleted or replaced under the daemon.
mod common;
use common::{TestServer, run_daemon};
use linechat::store::migrations::VERSION as CURRENT_VERSION;

/// The committed version-1 database (made by linechatd 0.1.0 before migrations existed; see
/// tests/fixtures/README.md), copied to a temp dir.
fn v1_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.db"),
        &db,
    )
    .unwrap();
    (dir, db)
}

fn user_version(db: &std::path::Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn hist_lines(c: &mut common::TestClient, verb: &str) -> Vec<String> {
    c.history(&format!("#{verb}"), verb)
        .iter()
        .map(|l| {
            // The time differs per line; id, room, name and text are what was stored.
            let (id, room, name, text) = common::parse_hist(l);
            format!("{id} {room} {name} {text}")
        })
        .collect()
}

#[test]
fn a_version_1_database_is_migrated_and_serves_everything_unchanged() {
    let (_dir, db) = v1_copy();
    assert_eq!(user_version(&db), 1);
    let mut srv = TestServer::start_on(&db, &[]);
    // Accounts: the old passwords still log in, names keep their case.
    let mut alice = srv.client();
    alice.send("#login alice alice-pass-1");
    alice.expect("OK login alice");
    let mut bob = srv.client();
    bob.send("#login bob bob-pass-22");
    bob.expect("OK login Bob");
    // Messages and memberships: every old message, in the old order, with the old ids.
    assert_eq!(
        hist_lines(&mut alice, "my_messages"),
        [
            "1 general alice hello bob",
            "2 general alice how are you?",
            "3 general Bob fine, thanks — ünïcode ✓",
            "4 random Bob anyone here?",
            "5 random alice #hashtag",
        ]
    );
    assert_eq!(
        hist_lines(&mut alice, "all_messages"),
        [
            "1 general alice hello bob",
            "2 general alice how are you?",
            "5 random alice #hashtag"
        ]
    );
    assert_eq!(
        hist_lines(&mut bob, "all_messages"),
        [
            "3 general Bob fine, thanks — ünïcode ✓",
            "4 random Bob anyone here?"
        ]
    );
    // The rooms exist still: joining replays their history, and new ids follow the old ones.
    let (_, replay) = bob.join("random");
    assert_eq!(replay.len(), 2, "{replay:?}");
    bob.say("random", "Bob", "after the upgrade");
    let mine = hist_lines(&mut bob, "all_messages");
    assert_eq!(mine.last().unwrap(), "6 random Bob after the upgrade");
    // A taken name is still taken, in any case.
    let mut c = srv.client();
    c.send("#register ALICE another-pass");
    c.expect("ERR exists that name is taken");
    srv.signal("TERM");
    let log = srv.all_log();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("from schema version 1 to {CURRENT_VERSION}"))),
        "the upgrade is logged: {log:?}"
    );
    assert_eq!(user_version(&db), CURRENT_VERSION);
    let ranges: Vec<(String, i64, i64)> = rusqlite::Connection::open(&db)
        .unwrap()
        .prepare("SELECT name, first_message_id, last_message_id FROM rooms ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(ranges, [("general".into(), 1, 3), ("random".into(), 4, 6)]);
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_not_modified() {
    let (_dir, db) = v1_copy();
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let (status, err) = run_daemon(&["--listen", "127.0.0.1:0", "--db", db.to_str().unwrap()]);
    assert!(!status.success());
    assert!(
        err.contains(&format!(
            "its schema version is 99, newer than this linechatd knows ({CURRENT_VERSION})"
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was modified");
}

#[test]
fn a_second_daemon_on_the_same_database_is_refused() {
    let srv = TestServer::start();
    let (status, err) = run_daemon(&["--listen", "127.0.0.1:0", "--db", srv.db.to_str().unwrap()]);
    assert!(!status.success());
    let lock = format!("{}.lock", srv.db.display());
    let pid = srv.pid();
    assert!(
        err.contains(&format!(
            "another linechatd (pid {pid}) is serving it and holds the lock {lock}"
        )),
        "{err}"
    );
    // The first goes on serving.
    let mut a = srv.user("alice");
    a.send("#health");
    a.expect("OK health");
}

#[test]
fn the_lock_ends_with_the_daemon_even_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut srv = TestServer::start_on(&db, &[]);
    srv.signal("KILL");
    let srv = TestServer::start_on(&db, &[]);
    let mut c = srv.client();
    c.send("#health");
    c.expect("OK health");
}

#[test]
fn health_fails_once_the_database_file_is_deleted_or_replaced() {
    for replace in [false, true] {
        let srv = TestServer::start();
        let mut a = srv.user("alice");
        a.send("#health");
        a.expect("OK health");
        std::fs::remove_file(&srv.db).unwrap();
        if replace {
            std::fs::write(&srv.db, b"").unwrap();
        }
        let want = "ERR storage the database file was deleted or replaced; restart the daemon";
        a.send("#health");
        a.expect(want);
        // It stays failed: the open file is not the one at --db.
        let mut b = srv.client();
        b.send("#health");
        b.expect(want);
        let log = srv.wait_log("was deleted or replaced").expect("logged");
        assert!(log.contains("ERROR"), "{log}");
    }
}

/// The committed version-2 database (written by the daemon at schema version 2): upgraded to
/// version 3 (admin flag, moderation log), everything served unchanged.
#[test]
fn a_version_2_database_is_migrated_and_serves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v2.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 2);
    let srv = TestServer::start_on(&db, &[]);
    let mut carol = srv.client();
    carol.send("#login carol carol-pass-1");
    carol.expect("OK login carol");
    assert_eq!(
        hist_lines(&mut carol, "my_messages"),
        ["1 lobby carol hi dave", "2 lobby Dave hello carol"]
    );
    let mut dave = srv.client();
    dave.send("#login dave dave-pass-22");
    dave.expect("OK login Dave");
    assert_eq!(
        hist_lines(&mut dave, "my_messages"),
        [
            "1 lobby carol hi dave",
            "2 lobby Dave hello carol",
            "3 other Dave anyone?"
        ]
    );
    drop(srv);
    assert_eq!(user_version(&db), CURRENT_VERSION);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let admins: i64 = conn
        .query_row("SELECT count(*) FROM users WHERE is_admin", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(admins, 0);
    let logged: i64 = conn
        .query_row("SELECT count(*) FROM moderation", [], |r| r.get(0))
        .unwrap();
    assert_eq!(logged, 0);
}

/// The committed version-3 database (written by the daemon at schema version 3): upgraded to
/// version 4 (bans, mutes, tombstones), its accounts, admin flag, moderation log and history
/// served unchanged, and the new columns empty.
#[test]
fn a_version_3_database_is_migrated_and_serves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v3.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v3.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 3);
    let srv = TestServer::start_on(&db, &[]);
    let mut erin = srv.client();
    erin.send("#login erin erin-pass-1");
    erin.expect("OK login erin");
    assert_eq!(
        hist_lines(&mut erin, "my_messages"),
        [
            "1 plaza erin hello plaza",
            "2 plaza erin second line",
            "3 plaza Frank hi erin"
        ]
    );
    // Still an admin, with the old row in the log and the new verbs working.
    erin.send("#modlog");
    let row = erin.line();
    assert!(
        row.starts_with("MODLOG 1 ") && row.ends_with(" cli admin erin"),
        "{row}"
    );
    erin.expect("OK modlog 1");
    let mut frank = srv.client();
    frank.send("#login frank frank-pass-22");
    frank.expect("OK login Frank");
    assert_eq!(
        hist_lines(&mut frank, "all_messages"),
        ["3 plaza Frank hi erin", "4 annex Frank annex line"]
    );
    erin.send("#delete 4 test");
    erin.expect("OK delete 4");
    assert_eq!(
        hist_lines(&mut frank, "all_messages"),
        ["3 plaza Frank hi erin"]
    );
    erin.send("#mute frank 1h");
    erin.expect_prefix("OK mute Frank 20");
    drop(srv);
    assert_eq!(user_version(&db), 10, "and on to the latest version");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (banned, muted): (i64, i64) = conn
        .query_row(
            "SELECT count(banned_until), count(muted_until) FROM users",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((banned, muted), (0, 1));
    let tombstones: i64 = conn
        .query_row(
            "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tombstones, 1);
    let networks: i64 = conn
        .query_row("SELECT count(*) FROM address_bans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(networks, 0);
}

/// The committed version-4 database: upgraded to version 5 (the cluster's stream position),
/// its accounts, history with its tombstone, network ban and moderation log served unchanged,
/// and no stream position written (a single node never has one).
#[test]
fn a_version_4_database_is_migrated_and_serves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v4.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v4.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 4);
    let srv = TestServer::start_on(&db, &[]);
    let mut hank = srv.client();
    hank.send("#login hank hank-pass-22");
    hank.expect("OK login Hank");
    assert_eq!(
        hist_lines(&mut hank, "all_messages"),
        ["2 deck Hank deck two"],
        "message 3 stays deleted"
    );
    assert_eq!(
        hist_lines(&mut hank, "my_messages"),
        ["1 deck gina deck one", "2 deck Hank deck two"]
    );
    let mut gina = srv.client();
    gina.send("#login gina gina-pass-1");
    gina.expect("OK login gina");
    gina.send("#modlog");
    let rows: Vec<String> = (0..3).map(|_| gina.line()).collect();
    assert!(rows[0].ends_with(" cli admin gina"), "{rows:?}");
    assert!(rows[1].ends_with(" gina delete 3 spam"), "{rows:?}");
    assert!(
        rows[2].ends_with(" gina ban 192.0.2.0/24 until forever: test net"),
        "{rows:?}"
    );
    gina.expect("OK modlog 3");
    gina.send("#join deck");
    gina.expect("OK join deck 1");
    gina.line(); // the welcome
    gina.expect("HIST 1 2026-12-02T06:08:02.419Z deck gina deck one");
    gina.expect("HIST 2 2026-12-02T06:08:02.922Z deck Hank deck two");
    gina.send("after the upgrade");
    gina.expect("MSG deck gina after the upgrade");
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (messages, last): (i64, i64) = conn
        .query_row("SELECT count(*), max(id) FROM messages", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((messages, last), (4, 4));
    let networks: String = conn
        .query_row("SELECT network FROM address_bans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(networks, "192.0.2.0/24");
    let positions: i64 = conn
        .query_row("SELECT count(*) FROM log_position", [], |r| r.get(0))
        .unwrap();
    assert_eq!(positions, 0);
}

/// The committed version-5 database (the first private messages): upgraded to version 6, its
/// conversation found in `conversations`, readable with `#privates` by both parties, the room's
/// message unchanged, and nobody's `seen_id` set.
#[test]
fn a_version_5_database_is_migrated_and_serves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v5.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v5.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 5);
    let srv = TestServer::start_on(&db, &[]);
    let mut jack = srv.client();
    jack.send("#login jack jack-pass-22");
    jack.expect("OK login Jack");
    // Nobody has a seen mark yet after the upgrade: ivy's message is news to Jack.
    jack.expect("INFO 1 unread private message from ivy: #privates NAME to read them");
    assert!(
        jack.expect_prefix("HIST 2 ")
            .ends_with(" @ivy ivy for jack only")
    );
    jack.send("#privates ivy");
    let rows: Vec<String> = (0..2).map(|_| jack.line()).collect();
    assert!(
        rows[0].starts_with("HIST 2 ") && rows[0].ends_with(" @ivy ivy for jack only"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("HIST 3 ") && rows[1].ends_with(" @ivy Jack got it"),
        "{rows:?}"
    );
    jack.expect("OK privates 2");
    let mut ivy = srv.client();
    ivy.send("#login ivy ivy-pass-1");
    ivy.expect("OK login ivy");
    ivy.expect("INFO 1 unread private message from Jack: #privates NAME to read them");
    assert!(ivy.expect_prefix("HIST 3 ").ends_with(" @Jack Jack got it"));
    assert_eq!(hist_lines(&mut ivy, "my_messages"), ["1 yard ivy yard one"]);
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let pair: (i64, i64, i64) = conn
        .query_row("SELECT room_id, low, high FROM conversations", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(pair, (2, 1, 2));
}

/// The committed version-6 database: upgraded to version 7 (ignores), its conversation and
/// seen marks unchanged (Lee saw everything, so no notice), and `#ignore` working on it.
#[test]
fn a_version_6_database_is_migrated_and_serves_everything_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v6.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v6.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 6);
    let srv = TestServer::start_on(&db, &[]);
    let mut lee = srv.client();
    lee.send("#login lee lee-pass-22");
    lee.expect("OK login Lee");
    lee.send("#privates");
    lee.expect("PRIVATES 1");
    lee.expect("PRIVATE kim 0");
    lee.send("#privates kim");
    let rows: Vec<String> = (0..2).map(|_| lee.line()).collect();
    assert!(
        rows[0].starts_with("HIST 1 ") && rows[0].ends_with(" @kim kim first"),
        "{rows:?}"
    );
    assert!(
        rows[1].starts_with("HIST 2 ") && rows[1].ends_with(" @kim Lee reply"),
        "{rows:?}"
    );
    lee.expect("OK privates 2");
    lee.send("#ignore kim");
    lee.expect("OK ignore kim");
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let ignores: (i64, i64) = conn
        .query_row("SELECT user_id, ignored_id FROM ignores", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(ignores, (2, 1));
}

/// The committed version-7 database: upgraded to version 8 (the full-text index, filled with
/// every stored message), its history, conversation and ignore unchanged, and
/// `#search` finding the old messages as each user may read them.
#[test]
fn a_version_7_database_is_migrated_and_its_messages_are_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v7.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v7.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 7);
    let srv = TestServer::start_on(&db, &[]);
    let mut mia = srv.client();
    mia.send("#login mia mia-pass-1");
    mia.expect("OK login mia");
    assert_eq!(
        hist_lines(&mut mia, "my_messages"),
        ["1 quay mia hello quay", "2 quay Ned hi mia"]
    );
    // mia ignores Ned: his private messages stay out of what she reads.
    mia.send("#privates");
    mia.expect("PRIVATES 1");
    mia.expect("PRIVATE Ned 0");
    let found = |c: &mut common::TestClient, words: &str| -> Vec<String> {
        c.history(&format!("#search {words}"), "search")
            .iter()
            .map(|l| {
                let (id, room, name, text) = common::parse_hist(l);
                format!("{id} {room} {name} {text}")
            })
            .collect()
    };
    assert_eq!(found(&mut mia, "mia"), ["2 quay Ned hi mia"]);
    // While she ignores Ned, none of his private messages are shown to her.
    assert_eq!(found(&mut mia, "ping"), Vec::<String>::new());
    mia.send("#unignore ned");
    mia.expect("OK unignore Ned");
    assert_eq!(found(&mut mia, "ping"), ["3 @Ned Ned ping from ned"]);
    assert_eq!(
        found(&mut mia, "after from=Ned"),
        ["4 @Ned Ned after ignore"]
    );
    let mut ned = srv.client();
    ned.send("#login ned ned-pass-22");
    ned.expect("OK login Ned");
    assert_eq!(found(&mut ned, "ignore"), ["4 @mia Ned after ignore"]);
    assert_eq!(found(&mut ned, "quay"), ["1 quay mia hello quay"]);
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marks: Vec<(String, i64)> = conn
        .prepare("SELECT name, seen_id FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Killed with the sessions open: the marks are the fixture's.
    assert_eq!(marks, [("mia".into(), 3), ("Ned".into(), 4)]);
    let indexed: i64 = conn
        .query_row("SELECT count(*) FROM message_words", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexed, 4);
}

/// The committed version-8 database: upgraded to version 9 (per-room seen marks, NULL: no
/// mark yet), everything served and found as before, the first join after the upgrade the
/// plain replay, and the mark kept from then on.
#[test]
fn a_version_8_database_is_migrated_and_marks_rooms_seen_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v8.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v8.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 8);
    let srv = TestServer::start_on(&db, &["--history-on-join", "1"]);
    let mut ola = srv.client();
    ola.send("#login ola ola-pass-1");
    ola.expect("OK login ola");
    assert_eq!(
        hist_lines(&mut ola, "my_messages"),
        [
            "1 pier ola first at the pier",
            "2 pier Pat second at the pier"
        ]
    );
    let found = ola.history("#search secret", "search");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].ends_with(" @Pat Pat searchable secret"),
        "{found:?}"
    );
    // No mark from before the upgrade: the plain replay of the last one.
    let (_, replay) = ola.join("pier");
    assert_eq!(replay.len(), 1);
    assert!(
        replay[0].ends_with(" pier Pat second at the pier"),
        "{replay:?}"
    );
    ola.join("dock");
    let mut pat = srv.client();
    pat.send("#login pat pat-pass-22");
    pat.expect("OK login Pat");
    pat.join("pier");
    pat.say("pier", "Pat", "third");
    let (_, replay) = ola.join("pier");
    assert_eq!(replay.len(), 3, "{replay:?}");
    assert!(replay[0].ends_with(" pier Pat second at the pier"));
    assert_eq!(
        replay[1],
        "INFO 1 new message in pier since you were last here"
    );
    assert!(replay[2].ends_with(" pier Pat third"));
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let marks: Vec<(i64, i64, Option<i64>)> = conn
        .prepare("SELECT user_id, room_id, seen_id FROM memberships ORDER BY user_id, room_id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // ola left pier (for dock) after message 2, and dock (for pier) empty; Pat's is unmarked.
    assert_eq!(marks, [(1, 1, Some(2)), (1, 2, Some(0)), (2, 1, None)]);
}

/// The committed version-9 database: upgraded to version 10 (actions, topics, last seen),
/// its marks serving "what I missed" unchanged, old messages plain messages, no topic, the
/// last-seen time unknown until a session ends, and the new verbs working on it.
#[test]
fn a_version_9_database_is_migrated_and_keeps_its_marks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v9.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v9.db"),
        &db,
    )
    .unwrap();
    assert_eq!(user_version(&db), 9);
    let srv = TestServer::start_on(&db, &[]);
    let mut rex = srv.client();
    rex.send("#login rex rex-pass-22");
    rex.expect("OK login Rex");
    rex.send("#whois quin");
    let whois = rex.line();
    assert!(whois.starts_with("WHOIS quin 2026-"), "{whois}");
    assert!(whois.ends_with(" away unknown"), "{whois}");
    let mut quin = srv.client();
    quin.send("#login quin quin-pass-1");
    quin.expect("OK login quin");
    let (_, replay) = quin.join("yard");
    assert_eq!(replay.len(), 3, "{replay:?}");
    assert!(replay[0].ends_with(" yard quin morning yard"), "{replay:?}");
    assert_eq!(
        replay[1],
        "INFO 1 new message in yard since you were last here"
    );
    assert!(
        replay[2].ends_with(" yard Rex quin missed this"),
        "{replay:?}"
    );
    quin.send("#topic fresh");
    quin.expect_prefix("TOPIC yard quin ");
    quin.expect("OK topic yard");
    quin.send("#me stretches");
    quin.expect("ACTION yard quin stretches");
    drop(srv);
    assert_eq!(user_version(&db), 10);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT body, action FROM messages ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("morning yard".to_string(), 0),
            ("quin missed this".to_string(), 0),
            ("stretches".to_string(), 1),
        ]
    );
    let topic: (String, String) = conn
        .query_row(
            "SELECT topic, topic_by FROM rooms WHERE name = 'yard'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(topic, ("fresh".into(), "quin".into()));
}
