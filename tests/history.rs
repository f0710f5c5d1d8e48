//! Stored messages: replay on join, paging, the scope of #all_messages and #my_messages,
//! persistence across restarts, and exactly-once between replay and live lines.
mod common;
use common::{TestServer, parse_hist};

/// Reads `HIST` lines until the `OK VERB N` line; checks N and returns (id, room, name, text).
fn page(c: &mut common::TestClient, cmd: &str) -> Vec<(i64, String, String, String)> {
    let verb = cmd
        .trim_start_matches('#')
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    c.send(cmd);
    let mut rows = Vec::new();
    loop {
        let l = c.line();
        if let Some(n) = l.strip_prefix(&format!("OK {verb} ")) {
            assert_eq!(n.parse::<usize>().unwrap(), rows.len());
            return rows;
        }
        rows.push(parse_hist(&l));
    }
}

fn texts(rows: &[(i64, String, String, String)]) -> Vec<String> {
    rows.iter().map(|r| r.3.clone()).collect()
}

#[test]
fn join_replays_the_last_messages() {
    let srv = TestServer::start();
    let mut a = srv.user("alice");
    a.join("g");
    for i in 1..=12 {
        a.say("g", "alice", &format!("m{i}"));
    }
    let mut b = srv.user("bob");
    let (n, hist) = b.join("g");
    assert_eq!(n, 2);
    let rows: Vec<_> = hist.iter().map(|l| parse_hist(l)).collect();
    let want: Vec<String> = (3..=12).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&rows), want);
    assert!(rows.iter().all(|r| r.1 == "g" && r.2 == "alice"));
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "ids ascending");
}

#[test]
fn replay_length_is_configurable() {
    for (flag, want) in [("0", 0usize), ("3", 3)] {
        let srv = TestServer::start_with(&["--history-on-join", flag]);
        let mut a = srv.user("alice");
        a.join("g");
        for i in 0..5 {
            a.say("g", "alice", &format!("m{i}"));
        }
        let mut b = srv.user("bob");
        assert_eq!(b.join("g").1.len(), want, "--history-on-join {flag}");
    }
}

#[test]
fn all_messages_pages_back_oldest_first() {
    let srv = TestServer::start();
    let mut a = srv.user("alice");
    for i in 0..25 {
        let room = if i % 2 == 0 { "even" } else { "odd" };
        a.join(room);
        a.say(room, "alice", &format!("m{i}"));
    }
    let p1 = page(&mut a, "#all_messages 10");
    assert_eq!(
        texts(&p1),
        (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert_eq!(p1[0].1, "odd");
    assert_eq!(p1[1].1, "even");
    let p2 = page(&mut a, &format!("#all_messages 10 {}", p1[0].0));
    assert_eq!(
        texts(&p2),
        (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let p3 = page(&mut a, &format!("#all_messages 10 {}", p2[0].0));
    assert_eq!(
        texts(&p3),
        (0..5).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(page(&mut a, &format!("#all_messages 10 {}", p3[0].0)).is_empty());
    // Default page size is 100.
    assert_eq!(page(&mut a, "#all_messages").len(), 25);
}

#[test]
fn history_scopes() {
    let srv = TestServer::start();
    let mut alice = srv.user("alice");
    let mut bob = srv.user("bob");
    // bob talks in "shared" before alice ever joins it, and in "secret" which she never joins.
    bob.join("shared");
    bob.say("shared", "bob", "early");
    bob.join("secret");
    bob.say("secret", "bob", "hidden");
    bob.join("shared");
    alice.join("shared");
    bob.expect("JOIN shared alice 2");
    alice.say("shared", "alice", "hi bob");
    bob.expect("MSG shared alice hi bob");
    bob.say("shared", "bob", "hi alice");
    alice.expect("MSG shared bob hi alice");
    alice.send("#leave");
    alice.expect("OK leave shared");
    bob.expect("LEAVE shared alice 1");
    bob.say("shared", "bob", "after she left");

    // my_messages: every message of every room alice has joined, never "secret".
    let mine = page(&mut alice, "#my_messages");
    assert_eq!(
        texts(&mine),
        ["early", "hi bob", "hi alice", "after she left"]
    );
    assert!(mine.iter().all(|r| r.1 == "shared"));
    // all_messages: only what alice sent.
    let sent = page(&mut alice, "#all_messages");
    assert_eq!(texts(&sent), ["hi bob"]);
    assert!(sent.iter().all(|r| r.2 == "alice"));
    // bob's my_messages covers both of his rooms, in id order.
    let bobs = page(&mut bob, "#my_messages");
    assert_eq!(
        texts(&bobs),
        ["early", "hidden", "hi bob", "hi alice", "after she left"]
    );
    let page1 = page(&mut bob, "#my_messages 2");
    assert_eq!(texts(&page1), ["hi alice", "after she left"]);
    let page2 = page(&mut bob, &format!("#my_messages 2 {}", page1[0].0));
    assert_eq!(texts(&page2), ["hidden", "hi bob"]);
}

#[test]
fn text_is_stored_verbatim() {
    let srv = TestServer::start();
    let mut a = srv.user("alice");
    a.join("g");
    let text = "  spaced  out\tand ünïcödé ✓ ";
    a.say("g", "alice", text);
    let rows = page(&mut a, "#all_messages");
    assert_eq!(rows[0].3, text);
}

#[test]
fn data_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut srv = TestServer::start_on(&db, &[]);
    let mut a = srv.user("alice");
    a.join("g");
    for i in 0..5 {
        a.say("g", "alice", &format!("before restart {i}"));
    }
    let (status, _) = srv.signal("TERM");
    assert!(status.success());
    drop(srv);

    let srv = TestServer::start_on(&db, &[]);
    let mut a = srv.login("alice");
    let rows = page(&mut a, "#all_messages");
    assert_eq!(
        texts(&rows),
        (0..5)
            .map(|i| format!("before restart {i}"))
            .collect::<Vec<_>>()
    );
    // Presence starts empty after a restart.
    a.send("#rooms");
    a.expect("ROOMS 0");
    let (n, hist) = a.join("g");
    assert_eq!((n, hist.len()), (1, 5));
    // The name is still taken.
    let mut c = srv.client();
    c.send("#register alice other-pass");
    c.expect("ERR exists that name is taken");
}

/// A joiner arriving while messages stream in sees every message exactly once: those committed
/// before its join as HIST, the rest as MSG.
#[test]
fn join_under_traffic_gets_every_message_once() {
    const N: usize = 400;
    let srv = TestServer::start_with(&["--history-on-join", "1000"]);
    let mut sender = srv.user("sender");
    sender.join("busy");
    let mut joiner = srv.user("joiner");
    let (started, wait_started) = std::sync::mpsc::channel();
    let blaster = std::thread::spawn(move || {
        // Chunks of 20, each acknowledged before the next; the joiner is let go after 100.
        let mut acked = 0;
        for chunk in 0..N / 20 {
            for i in chunk * 20..(chunk + 1) * 20 {
                sender.send(&format!("n{i}"));
            }
            while acked < (chunk + 1) * 20 {
                let l = sender.line();
                if l == "JOIN busy joiner 2" {
                    continue;
                }
                assert_eq!(l, format!("MSG busy sender n{acked}"));
                acked += 1;
            }
            if acked == 100 {
                started.send(()).unwrap();
            }
        }
        sender
    });
    wait_started.recv().unwrap();
    joiner.send("#join busy");
    joiner.expect("OK join busy 2");
    joiner.expect_prefix("INFO welcome to busy; here now (2):");
    let mut seen = Vec::new();
    let mut from_hist = 0;
    while seen.len() < N {
        let l = joiner.line();
        if l.starts_with("HIST ") {
            seen.push(parse_hist(&l).3);
            from_hist += 1;
        } else {
            let t = l
                .strip_prefix("MSG busy sender ")
                .unwrap_or_else(|| panic!("{l}"));
            seen.push(t.to_string());
        }
    }
    let _sender = blaster.join().unwrap();
    joiner.expect_quiet();
    let want: Vec<String> = (0..N).map(|i| format!("n{i}")).collect();
    assert_eq!(
        seen, want,
        "replay + live must be every message once, in order"
    );
    assert!(
        (100..N).contains(&from_hist),
        "{from_hist} of {N} arrived as HIST"
    );
}
