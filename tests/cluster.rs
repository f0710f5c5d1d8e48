//! Several linechatd nodes sharing rooms through a real `nats-server` with JetStream, on
//! loopback: one room across nodes, one order and the same stored history everywhere,
//! cluster-wide accounts, a node killed and restarted, a new node rebuilding its history, and
//! NATS going away and coming back.

mod common;

use common::nats::Nats;
use common::{PASS, TestClient, TestServer, parse_hist};
use std::path::Path;
use std::time::{Duration, Instant};

/// A node of the cluster behind `nats`, on a fresh database.
fn node(nats: &Nats, name: &str) -> TestServer {
    TestServer::start_with(&["--cluster", &nats.url(), "--node", name])
}

/// A node on the given database (a restart).
fn node_on(nats: &Nats, name: &str, db: &Path) -> TestServer {
    TestServer::start_on(db, &["--cluster", &nats.url(), "--node", name])
}

/// Every stored message, in id order: (id, room, author, text).
fn stored(db: &Path) -> Vec<(i64, String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT m.id, r.name, u.name, m.body FROM messages m JOIN rooms r ON r.id = m.room_id \
             JOIN users u ON u.id = m.user_id ORDER BY m.id",
        )
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A session in `room` on node `srv`: registered (or logged in, if `login`), joined, its
/// join count returned.
fn seated(srv: &TestServer, name: &str, room: &str, login: bool) -> (TestClient, usize) {
    let mut c = if login {
        srv.login(name)
    } else {
        srv.user(name)
    };
    let (n, _) = c.join(room);
    (c, n)
}

/// Clients on three nodes in one room see each other's joins, messages and leaves, one count
/// of distinct users across nodes (a user on two nodes counts once), and cluster-wide
/// `#users` and `#rooms`.
#[test]
fn one_room_across_three_nodes() {
    let nats = Nats::start();
    let (a, b, c) = (node(&nats, "a"), node(&nats, "b"), node(&nats, "c"));
    let (mut ann, n) = seated(&a, "ann", "lobby", false);
    assert_eq!(n, 1);
    let (mut bob, n) = seated(&b, "bob", "lobby", false);
    assert_eq!(n, 2);
    ann.expect("JOIN lobby bob 2");
    let mut cat = c.user("cat");
    cat.send("#join lobby");
    cat.expect("OK join lobby 3");
    cat.expect("INFO welcome to lobby; here now (3): ann bob cat");
    ann.expect("JOIN lobby cat 3");
    bob.expect("JOIN lobby cat 3");

    // ann again, on node c: still three users, and nobody hears a second JOIN.
    let (mut ann2, n) = seated(&c, "ann", "lobby", true);
    assert_eq!(n, 3);
    bob.send("hello everyone");
    for who in [&mut ann, &mut bob, &mut cat, &mut ann2] {
        who.expect("MSG lobby bob hello everyone");
    }
    cat.send("#users");
    cat.expect("USERS lobby 3 ann bob cat");
    ann.send("#rooms");
    ann.expect("ROOMS 1");
    ann.expect("ROOM lobby 3");
    for who in [&mut ann, &mut bob, &mut cat, &mut ann2] {
        who.expect_quiet();
    }

    // ann's first session leaves: she is still there through node c.
    ann.send("#leave");
    ann.expect("OK leave lobby");
    bob.expect_quiet();
    cat.send("#quit");
    cat.expect("OK quit");
    bob.expect("LEAVE lobby cat 2");
    ann2.expect("LEAVE lobby cat 2");
    ann2.send("#quit");
    ann2.expect("OK quit");
    bob.expect("LEAVE lobby ann 1");
    bob.send("#users");
    bob.expect("USERS lobby 1 bob");
}

/// Lines sent at once from three nodes are delivered in one order to everyone, that order
/// is the id order, and every node stores the same ids, rooms, authors and texts.
#[test]
fn every_node_delivers_and_stores_one_order() {
    let nats = Nats::start();
    let nodes = [node(&nats, "a"), node(&nats, "b"), node(&nats, "c")];
    let names = ["ann", "bob", "cat"];
    let mut clients: Vec<TestClient> = Vec::new();
    for (i, (srv, name)) in nodes.iter().zip(names).enumerate() {
        let (c, n) = seated(srv, name, "lobby", false);
        assert_eq!(n, i + 1);
        clients.push(c);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        for later in &names[i + 1..] {
            let count = names.iter().position(|n| n == later).unwrap() + 1;
            c.expect(&format!("JOIN lobby {later} {count}"));
        }
    }
    const EACH: usize = 40;
    let senders: Vec<_> = clients
        .iter()
        .zip(names)
        .map(|(c, name)| {
            let mut w = c.stream_clone();
            std::thread::spawn(move || {
                use std::io::Write;
                for k in 0..EACH {
                    writeln!(w, "{name} line {k}").unwrap();
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let mut seen: Vec<Vec<String>> = Vec::new();
    for c in &mut clients {
        let lines: Vec<String> = (0..3 * EACH).map(|_| c.line()).collect();
        assert!(
            lines.iter().all(|l| l.starts_with("MSG lobby ")),
            "{lines:?}"
        );
        seen.push(lines);
    }
    assert_eq!(seen[0], seen[1], "nodes a and b delivered different orders");
    assert_eq!(seen[0], seen[2], "nodes a and c delivered different orders");
    for name in names {
        let mine: Vec<&String> = seen[0]
            .iter()
            .filter(|l| l.starts_with(&format!("MSG lobby {name} ")))
            .collect();
        let want: Vec<String> = (0..EACH)
            .map(|k| format!("MSG lobby {name} {name} line {k}"))
            .collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{name}'s own order");
    }
    // Stored: the same everywhere, in the order delivered, ids increasing.
    let rows = stored(&nodes[0].db);
    assert_eq!(rows.len(), 3 * EACH);
    for other in &nodes[1..] {
        assert_eq!(stored(&other.db), rows);
    }
    let delivered: Vec<String> = rows
        .iter()
        .map(|(_, room, name, text)| format!("MSG {room} {name} {text}"))
        .collect();
    assert_eq!(delivered, seen[0]);
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
    // And the history verbs answer the same on every node.
    let mut pages = Vec::new();
    for (srv, name) in nodes.iter().zip(names) {
        let mut c = srv.login(name);
        c.send("#my_messages 1000");
        let hist: Vec<String> = (0..3 * EACH).map(|_| c.line()).collect();
        c.expect(&format!("OK my_messages {}", 3 * EACH));
        let ids: Vec<i64> = hist.iter().map(|h| parse_hist(h).0).collect();
        assert_eq!(ids, rows.iter().map(|r| r.0).collect::<Vec<_>>());
        pages.push(hist);
    }
    assert_eq!(pages[0], pages[1]);
    assert_eq!(pages[0], pages[2]);
}

/// An account made on one node logs in on another; a name registered on two nodes at the
/// same moment is given once; a password changed on one node is the one every node checks.
#[test]
fn accounts_are_cluster_wide() {
    let nats = Nats::start();
    let (a, b, c) = (node(&nats, "a"), node(&nats, "b"), node(&nats, "c"));
    drop(a.user("ann"));
    let mut on_b = b.login("ann");
    on_b.send("#password s3cret-pass changed-pass-2");
    on_b.expect("OK password");
    let mut old = c.client();
    old.send(&format!("#login ann {PASS}"));
    old.expect("ERR auth wrong name or password");
    old.send("#login ann changed-pass-2");
    old.expect("OK login ann");

    for round in 0..5 {
        let name = format!("zed{round}");
        let racers: Vec<_> = [a.addr, c.addr]
            .into_iter()
            .map(|addr| {
                let name = name.clone();
                std::thread::spawn(move || {
                    let mut cl = TestClient::connect(addr);
                    cl.send(&format!("#register {name} {PASS}"));
                    cl.line()
                })
            })
            .collect();
        let mut answers: Vec<String> = racers.into_iter().map(|t| t.join().unwrap()).collect();
        answers.sort();
        assert_eq!(answers[0], "ERR exists that name is taken", "{answers:?}");
        assert_eq!(answers[1], format!("OK register {name}"), "{answers:?}");
    }
    // A third node has them all once it has caught up (a login on it catches up first).
    drop(b.login("zed4"));
    let conn = rusqlite::Connection::open(&b.db).unwrap();
    let zeds: i64 = conn
        .query_row(
            "SELECT count(*) FROM users WHERE name LIKE 'zed%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(zeds, 5);
}

/// A joiner on one node while another node sends: its replay and the live lines after it
/// follow on from each other, with no gap and nothing twice, up to the last line sent.
#[test]
fn join_replay_has_no_gap_while_another_node_sends() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let (ann, _) = seated(&a, "ann", "lobby", false);
    let mut bob = b.user("bob");
    let mut w = ann.stream_clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        for k in 0..300 {
            writeln!(w, "m{k}").unwrap();
            if k == 100 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    std::thread::sleep(Duration::from_millis(10));
    bob.send("#join lobby");
    sender.join().unwrap();
    let mut seen: Vec<u32> = Vec::new();
    let mut joined = false;
    while seen.last() != Some(&299) {
        let l = bob.line();
        let text = if let Some(rest) = l.strip_prefix("MSG lobby ann ") {
            assert!(joined, "a live line before the join: {l}");
            rest.to_string()
        } else if l.starts_with("HIST ") {
            parse_hist(&l).3
        } else {
            joined |= l.starts_with("OK join lobby");
            continue;
        };
        seen.push(text.trim_start_matches('m').parse().unwrap());
    }
    assert!(!seen.is_empty());
    let first = seen[0];
    let want: Vec<u32> = (first..300).collect();
    assert_eq!(seen, want, "replay then live: consecutive, once each");
}

/// A node killed (SIGKILL) under load: its users leave every other node's rooms within a few
/// seconds; nothing any client received is missing from the survivor's history, nothing is
/// twice; the node, restarted, catches up and serves the same history.
#[test]
fn a_killed_node_leaves_then_catches_up() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let mut b = node_on(&nats, "b", &db);
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    let (bob, _) = seated(&b, "bob", "lobby", false);
    ann.expect("JOIN lobby bob 2");
    let mut w = bob.stream_clone();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        for k in 0..2000 {
            if writeln!(w, "b{k}").is_err() {
                return;
            }
        }
    });
    // Some of bob's lines arrive, then node b dies in the middle of them.
    let first = ann.line();
    assert_eq!(first, "MSG lobby bob b0");
    b.signal("KILL");
    let killed = Instant::now();
    let _ = sender.join();
    let mut received = vec!["b0".to_string()];
    loop {
        let l = ann.line();
        if l == "LEAVE lobby bob 1" {
            break;
        }
        let text = l
            .strip_prefix("MSG lobby bob ")
            .unwrap_or_else(|| panic!("{l}"));
        received.push(text.to_string());
    }
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(9), "LEAVE after {took:?}");
    // Everything ann received is stored on a, once, in order.
    let rows = stored(&a.db);
    let texts: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(
        texts,
        received.iter().map(String::as_str).collect::<Vec<_>>()
    );
    ann.send("while b is down");
    ann.expect("MSG lobby ann while b is down");
    // b restarts on its database and catches up.
    drop(b);
    let b = node_on(&nats, "b", &db);
    let (mut bob, n) = {
        let mut c = b.login("bob");
        c.send("#join lobby");
        c.expect("OK join lobby 2");
        (c, 2)
    };
    assert_eq!(n, 2);
    bob.expect("INFO welcome to lobby; here now (2): ann bob");
    let replay = bob.until_pong();
    let last = replay.last().unwrap();
    assert_eq!(parse_hist(last).3, "while b is down");
    ann.expect("JOIN lobby bob 2");
    assert_eq!(stored(&b.db), stored(&a.db));
}

/// A node started on an empty database against a cluster with history rebuilds it from the
/// stream before it serves: the same messages, ids and accounts as the others.
#[test]
fn a_new_node_rebuilds_its_history_from_the_stream() {
    let nats = Nats::start();
    let a = node(&nats, "a");
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    for k in 0..50 {
        ann.say("lobby", "ann", &format!("before d {k}"));
    }
    let d = node(&nats, "d");
    // Once it says it has caught up, everything is committed to its database.
    let caught_up = d
        .wait_log("cluster: caught up to record ")
        .expect("caught up");
    assert!(caught_up.contains(" in "), "{caught_up}");
    assert_eq!(stored(&d.db), stored(&a.db));
    let mut on_d = d.login("ann");
    on_d.send("#all_messages 3");
    for k in 47..50 {
        let (_, room, name, text) = parse_hist(&on_d.line());
        assert_eq!((room.as_str(), name.as_str()), ("lobby", "ann"));
        assert_eq!(text, format!("before d {k}"));
    }
    on_d.expect("OK all_messages 3");
}

/// With NATS gone, a chat line is answered `ERR storage` within the publish attempts' bound
/// and delivered to nobody; `#health` fails; a known user still logs in; once NATS is back,
/// chat goes on.
#[test]
fn nats_going_away_gives_err_storage_and_chat_recovers() {
    let mut nats = Nats::start();
    let a = node(&nats, "a");
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    drop(a.user("bob"));
    ann.say("lobby", "ann", "before");
    nats.stop();
    let t = Instant::now();
    ann.send("while down");
    ann.expect(
        "ERR storage the cluster did not confirm that in time; it is stored once or not at all",
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    let mut h = a.client();
    h.send("#health");
    h.expect("ERR storage the cluster does not answer (NATS JetStream unreachable)");
    let tool = std::process::Command::new(common::daemon())
        .args(["health", "--addr", &a.addr.to_string()])
        .output()
        .unwrap();
    assert!(
        !tool.status.success(),
        "linechatd health passes without NATS"
    );
    let mut bob = a.login("bob");
    bob.send("#ping");
    bob.expect("PONG");
    nats.restart();
    // Reconnecting takes the client a moment: retry until a line is stored.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        ann.send("after");
        let l = ann.line();
        if l == "MSG lobby ann after" {
            break;
        }
        // The line whose outcome was unknown may land once NATS is back (at most once).
        if l == "MSG lobby ann while down" {
            continue;
        }
        assert!(l.starts_with("ERR storage "), "{l}");
        assert!(Instant::now() < deadline, "chat did not recover");
    }
    let texts: Vec<String> = stored(&a.db).into_iter().map(|r| r.3).collect();
    assert_eq!(texts.first().map(String::as_str), Some("before"));
    assert_eq!(texts.last().map(String::as_str), Some("after"));
    let copies = texts.iter().filter(|t| *t == "while down").count();
    assert!(copies <= 1, "stored at most once: {texts:?}");
    h.send("#health");
    h.expect("OK health");
}

/// An admin on one node kicks, bans and mutes users whose sessions are on another node: the
/// kick closes them at once, the ban within the bans' refresh (2 s) and refuses their logins
/// on every node, the mute silences them there too. The offline tool refuses to make
/// accounts or bans on a cluster node's database (the stream owns them).
#[test]
fn moderation_on_one_node_takes_effect_on_the_others() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let mut root = a.user("root");
    a.make_admin("root");
    let (mut bob, _) = seated(&b, "bob", "lobby", false);
    let (mut carl, _) = seated(&b, "carl", "lobby", false);
    bob.expect("JOIN lobby carl 2");
    let (mut dan, _) = seated(&b, "dan", "lobby", false);
    bob.expect("JOIN lobby dan 3");
    carl.expect("JOIN lobby dan 3");

    // Sessions counted in the reply are the admin's node's: bob's is on b.
    root.send("#kick bob spam");
    root.expect("OK kick bob 0");
    assert_eq!(bob.until_closed(), ["ERR kicked spam"]);
    carl.expect("LEAVE lobby bob 2");
    dan.expect("LEAVE lobby bob 2");

    root.send("#ban carl rude");
    root.expect("OK ban carl forever 0");
    let t = Instant::now();
    assert_eq!(carl.until_closed(), ["ERR banned until forever: rude"]);
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let mut again = b.client();
    again.send(&format!("#login carl {PASS}"));
    again.expect("ERR banned until forever: rude");
    dan.expect("LEAVE lobby carl 1");

    root.send("#mute dan");
    root.expect_prefix("OK mute dan forever");
    let deadline = Instant::now() + Duration::from_secs(4);
    loop {
        dan.send("can you hear me");
        let l = dan.line();
        if l.starts_with("ERR muted ") {
            break;
        }
        assert_eq!(l, "MSG lobby dan can you hear me");
        assert!(Instant::now() < deadline, "dan was never muted on b");
        std::thread::sleep(Duration::from_millis(100));
    }

    for args in [
        &["add", "eve"][..],
        &["ban", "dan"][..],
        &["passwd", "dan"][..],
    ] {
        let out = std::process::Command::new(common::daemon())
            .arg("user")
            .args(args)
            .args(["--db", b.db.to_str().unwrap()])
            .env("LINECHAT_PASSWORD", "eve-pass-12345")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is a cluster node's database"),
            "{args:?}: {err}"
        );
    }
}

/// A NATS outage: a user who quits meanwhile is answered here at once and leaves the other
/// nodes' rooms once NATS is back; nobody else's session is ended by the outage (every node
/// gives the others a full grace after reconnecting, instead of declaring them dead).
#[test]
fn a_departure_during_an_outage_reaches_the_other_nodes_afterwards() {
    let mut nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    let (mut bob, _) = seated(&b, "bob", "lobby", false);
    ann.expect("JOIN lobby bob 2");
    nats.stop();
    bob.send("#quit");
    assert_eq!(bob.until_closed(), ["OK quit"]);
    // Longer than a node's silence allowance: the nodes must not end each other's sessions.
    std::thread::sleep(Duration::from_secs(6));
    nats.restart();
    let t = Instant::now();
    ann.expect("LEAVE lobby bob 1");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_secs(6));
    ann.say("lobby", "ann", "still here");
    ann.send("#users");
    ann.expect("USERS lobby 1 ann");
}

/// A node whose cluster settings all come from `env` (LINECHAT_* variables), on `db`.
fn node_from_env(name: &str, db: &Path, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::daemon());
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--bcrypt-cost",
        "4",
        "--node",
        name,
    ])
    .arg("--db")
    .arg(db)
    .envs(env.iter().copied());
    cmd
}

/// NATS credentials come from the environment (never only the command line, where other
/// users of the machine can read them): a user and password, or a token. Wrong ones stop the
/// daemon at start with a message naming the cause.
#[test]
fn nats_credentials_come_from_the_environment() {
    let nats = Nats::start_with(&["--user", "linechat", "--pass", "nats-secret-1"]);
    let url = nats.url();
    let dir = tempfile::tempdir().unwrap();
    let as_user = |password| {
        [
            ("LINECHAT_CLUSTER", url.as_str()),
            ("LINECHAT_CLUSTER_USER", "linechat"),
            ("LINECHAT_CLUSTER_PASSWORD", password),
        ]
    };
    let db = dir.path().join("a.db");
    let mut a =
        TestServer::start_command(&mut node_from_env("a", &db, &as_user("nats-secret-1")), &db);
    let mut ann = a.user("ann");
    ann.send("#health");
    ann.expect("OK health");
    a.signal("TERM");
    let log = a.all_log().join("\n");
    assert!(
        log.contains("node=a replicas=1 auth=user linechat with a password"),
        "{log}"
    );
    assert!(
        !log.contains("nats-secret-1"),
        "the password is never logged"
    );

    let wrong = node_from_env("b", &dir.path().join("b.db"), &as_user("not-the-password"))
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("connecting to NATS at"), "{err}");
    assert!(err.to_lowercase().contains("authorization"), "{err}");

    let token = Nats::start_with(&["--auth", "nats-token-22"]);
    let db = dir.path().join("c.db");
    let env = [
        ("LINECHAT_CLUSTER", token.url()),
        ("LINECHAT_CLUSTER_TOKEN", "nats-token-22".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let c = TestServer::start_command(&mut node_from_env("c", &db, &env), &db);
    drop(c.user("cat"));
}

/// Three JetStream servers, the stream on all three (replicas 3): one server killed, chat
/// goes on; every line acknowledged before or after is stored on both nodes, once.
#[test]
fn chat_goes_on_when_one_of_three_jetstream_servers_dies() {
    let mut servers = Nats::cluster(3);
    let urls = Nats::urls(&servers);
    let args = ["--cluster", &urls, "--cluster-replicas", "3"];
    let a = TestServer::start_with(&[&args[..], &["--node", "a"]].concat());
    let b = TestServer::start_with(&[&args[..], &["--node", "b"]].concat());
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    let (mut bob, _) = seated(&b, "bob", "lobby", false);
    ann.expect("JOIN lobby bob 2");
    let mut acked = Vec::new();
    for k in 0..10 {
        let text = format!("before {k}");
        ann.say("lobby", "ann", &text);
        bob.expect(&format!("MSG lobby ann {text}"));
        acked.push(text);
    }
    servers[0].stop();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut k, mut tries) = (0, 0);
    while k < 10 {
        tries += 1;
        // Each try its own text: one whose outcome was unknown may still land, once.
        let text = format!("after {k} try {tries}");
        ann.send(&text);
        // A node whose stream consumer was on the dead server replaces it within seconds.
        let l = ann.line_within(Duration::from_secs(30));
        if l.starts_with("ERR storage ")
            || l.starts_with("MSG lobby ann after ") && l != format!("MSG lobby ann {text}")
        {
            // While the stream elects a new leader: tried again, like a user would.
            assert!(Instant::now() < deadline, "chat did not go on");
            continue;
        }
        assert_eq!(l, format!("MSG lobby ann {text}"));
        acked.push(text);
        k += 1;
    }
    // Node b may have been reading from the dead server: it catches up on another.
    let mut seen_after = Vec::new();
    while seen_after.len() < 10 {
        let l = bob.line_within(Duration::from_secs(30));
        let text = l
            .strip_prefix("MSG lobby ann ")
            .unwrap_or_else(|| panic!("{l}"));
        if acked[10..].iter().any(|t| t == text) {
            seen_after.push(text.to_string());
        }
    }
    assert_eq!(
        seen_after,
        acked[10..],
        "bob saw every acknowledged line once, in order"
    );
    for srv in [&a, &b] {
        let texts: Vec<String> = stored(&srv.db).into_iter().map(|r| r.3).collect();
        for t in &acked {
            assert_eq!(
                texts.iter().filter(|s| *s == t).count(),
                1,
                "{t}: {texts:?}"
            );
        }
    }
    assert_eq!(stored(&a.db), stored(&b.db));
}

/// The NATS configuration compose.cluster.yaml gives its three servers is one nats-server
/// accepts (with the password from the environment, as the compose file passes it).
#[test]
fn the_compose_clusters_nats_configuration_is_valid() {
    let out = std::process::Command::new(common::nats::nats_server())
        .args(["-t", "-n", "nats1", "-c"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/cluster/nats.conf"
        ))
        .env("NATS_PASSWORD", "check")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("is valid"), "{said}");
}

/// A node stopped cleanly (SIGTERM): its users leave the other nodes' rooms at once, with
/// `LEAVE`, and the node's own sessions get the shutdown notice.
#[test]
fn a_stopped_node_s_users_leave_the_other_nodes_rooms_at_once() {
    let nats = Nats::start();
    let (a, mut b) = (node(&nats, "a"), node(&nats, "b"));
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    let (mut bob, _) = seated(&b, "bob", "lobby", false);
    ann.expect("JOIN lobby bob 2");
    let t = Instant::now();
    let (status, _) = b.signal("TERM");
    assert!(status.success());
    assert_eq!(bob.until_closed(), ["INFO server shutting down"]);
    ann.expect("LEAVE lobby bob 1");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    ann.send("#users");
    ann.expect("USERS lobby 1 ann");
}

/// A single node's database (accounts and messages with ids of its own) is refused as a
/// cluster node's: its ids would clash with the stream's. The daemon says why and exits.
#[test]
fn a_single_node_database_is_refused_as_a_cluster_node_s() {
    let mut single = TestServer::start();
    let (mut ann, _) = seated(&single, "ann", "lobby", false);
    ann.say("lobby", "ann", "alone");
    // Stopped, its database (in its temp directory, kept while `single` lives) is left.
    single.signal("TERM");
    let db = single.db.clone();
    let nats = Nats::start();
    let out = std::process::Command::new(common::daemon())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            &nats.url(),
            "--node",
            "x",
        ])
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds accounts or messages of a single node, not of the cluster's stream"),
        "{err}"
    );
}

/// A proxy in front of NATS for one node: cut, it partitions that node alone from the cluster.
struct Proxy {
    child: Option<std::process::Child>,
    port: u16,
    nats: u16,
}

impl Proxy {
    fn start(nats: &Nats) -> Proxy {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut p = Proxy {
            child: None,
            port,
            nats: nats.port,
        };
        p.open();
        p
    }

    /// Listens again (one connection, socat without fork: killing it cuts that connection).
    fn open(&mut self) {
        let child = std::process::Command::new("socat")
            .arg(format!("TCP-LISTEN:{},bind=127.0.0.1,reuseaddr", self.port))
            .arg(format!("TCP:127.0.0.1:{}", self.nats))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (./test.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        // Ready once it listens; a probe would use up its one connection, so watch /proc.
        while !std::fs::read_to_string("/proc/net/tcp")
            .unwrap_or_default()
            .contains(&format!(":{:04X} 00000000:0000 0A", self.port))
        {
            assert!(Instant::now() < deadline, "socat did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn cut(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

/// One node cut off from NATS for longer than the silence allowance while the others keep
/// theirs: the others free its users' seats (`LEAVE`); when it is back it ends its sessions
/// with `ERR storage ...` (they reconnect and join again) and goes on as a new incarnation,
/// whose users the others see, and free again if it dies.
#[test]
fn a_node_cut_off_too_long_ends_its_sessions_and_goes_on_anew() {
    let nats = Nats::start();
    let mut proxy = Proxy::start(&nats);
    let a = node(&nats, "a");
    let mut b = TestServer::start_with(&["--cluster", &proxy.url(), "--node", "b"]);
    let (mut ann, _) = seated(&a, "ann", "lobby", false);
    let (mut bob, _) = seated(&b, "bob", "lobby", false);
    ann.expect("JOIN lobby bob 2");
    proxy.cut();
    let t = Instant::now();
    ann.expect("LEAVE lobby bob 1");
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    proxy.open();
    assert_eq!(
        bob.until_closed(),
        ["ERR storage this node lost the cluster and its sessions were ended; reconnect"]
    );
    // Back as a new incarnation: a new session is seen everywhere...
    let (mut bob, n) = seated(&b, "bob", "lobby", true);
    assert_eq!(n, 2);
    ann.expect("JOIN lobby bob 2");
    bob.say("lobby", "bob", "back");
    ann.expect("MSG lobby bob back");
    // ...and freed when this incarnation dies.
    b.signal("KILL");
    let t = Instant::now();
    ann.expect("LEAVE lobby bob 1");
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
}

/// A private message from one node reaches the recipient on another node and the sender's
/// session there too, stored once with the same id on both; the recipient reads it back with
/// `#privates` on either node.
#[test]
fn a_private_message_crosses_nodes() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let mut ann = a.user("ann");
    let mut ann_on_b = b.login("ann");
    let mut bob = b.user("bob");
    ann.send("#msg bob across the cluster");
    for c in [&mut ann, &mut ann_on_b, &mut bob] {
        c.expect("PRIV ann bob across the cluster");
    }
    let on_a: Vec<_> = stored(&a.db);
    assert_eq!(on_a.len(), 1);
    assert_eq!(on_a, stored(&b.db));
    for (k, srv) in [&a, &b].into_iter().enumerate() {
        let mut c = srv.login("bob");
        // Told on the first node; that session's end marks it seen on every node.
        if k == 0 {
            c.expect("INFO 1 unread private message from ann: #privates NAME to read them");
            assert!(
                c.expect_prefix("HIST ")
                    .ends_with(" @ann ann across the cluster")
            );
        }
        c.send("#privates ann");
        let (id, room, name, text) = parse_hist(&c.line());
        assert_eq!(
            (id, room.as_str(), name.as_str(), text.as_str()),
            (on_a[0].0, "@ann", "ann", "across the cluster")
        );
        c.expect("OK privates 1");
        c.send("#quit");
        c.expect("OK quit");
    }
}

/// `#ignore` on one node holds on the others: the ignored sender on another node gets its echo,
/// the ignoring user's sessions on every node nothing.
#[test]
fn an_ignore_holds_on_every_node() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let mut bob = b.user("bob");
    let mut bob_on_a = a.login("bob");
    let mut pest = a.user("pest");
    bob.send("#ignore pest");
    bob.expect("OK ignore pest");
    pest.send("#msg bob from the other node");
    pest.expect("PRIV pest bob from the other node");
    pest.send("#msg pest a barrier");
    pest.expect("PRIV pest pest a barrier");
    for c in [&mut bob, &mut bob_on_a] {
        c.expect_quiet();
    }
    bob_on_a.send("#unignore pest");
    bob_on_a.expect("OK unignore pest");
    pest.send("#msg bob now?");
    pest.expect("PRIV pest bob now?");
    for c in [&mut bob, &mut bob_on_a] {
        c.expect("PRIV pest bob now?");
    }
}

/// `#search` on every node finds what was said on another, with the same ids: each node
/// indexes the stream's messages as it applies them; a deletion from one node leaves every
/// node's index.
#[test]
fn a_search_finds_what_another_node_stored() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let (mut ann, _) = seated(&a, "ann", "ops", false);
    let (mut bob, _) = seated(&b, "bob", "ops", false);
    ann.expect("JOIN ops bob 2");
    ann.say("ops", "ann", "the deploy went well");
    bob.expect("MSG ops ann the deploy went well");
    bob.send("#msg ann deploy tonight?");
    bob.expect("PRIV bob ann deploy tonight?");
    ann.expect("PRIV bob ann deploy tonight?");
    let found = |c: &mut TestClient| -> Vec<(i64, String, String, String)> {
        c.history("#search deploy", "search")
            .iter()
            .map(|l| parse_hist(l))
            .collect()
    };
    let on_b = found(&mut bob);
    let on_a = found(&mut ann);
    assert_eq!(on_b.len(), 2);
    assert_eq!(
        on_a.iter().map(|r| r.0).collect::<Vec<_>>(),
        on_b.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!((on_b[1].1.as_str(), on_b[1].2.as_str()), ("@ann", "bob"));
    assert_eq!(
        (on_a[1].1.as_str(), on_a[1].3.as_str()),
        ("@bob", "deploy tonight?")
    );
    a.make_admin("ann");
    ann.send(&format!("#delete {}", on_a[0].0));
    ann.expect(&format!("DELETED ops {} ann", on_a[0].0));
    ann.expect(&format!("OK delete {}", on_a[0].0));
    bob.expect(&format!("DELETED ops {} ann", on_a[0].0));
    assert_eq!(found(&mut bob).len(), 1);
    assert_eq!(found(&mut ann).len(), 1);
}

/// "What I missed" across nodes: a user who left a room on one node and comes back on another
/// gets what was said meanwhile (on a third node), after the separator line: every node keeps
/// the marks as it applies the stream.
#[test]
fn what_a_user_missed_follows_them_to_another_node() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let (mut ann, _) = seated(&a, "ann", "ops", false);
    let (mut bob, _) = seated(&b, "bob", "ops", false);
    ann.expect("JOIN ops bob 2");
    ann.say("ops", "ann", "before");
    bob.expect("MSG ops ann before");
    bob.send("#quit");
    bob.expect("OK quit");
    ann.expect("LEAVE ops bob 1");
    ann.say("ops", "ann", "while away");
    let mut bob = a.login("bob");
    let (_, replay) = bob.join("ops");
    assert_eq!(replay.len(), 3, "{replay:?}");
    assert!(replay[0].ends_with(" ops ann before"), "{replay:?}");
    assert_eq!(
        replay[1],
        "INFO 1 new message in ops since you were last here"
    );
    assert!(replay[2].ends_with(" ops ann while away"), "{replay:?}");
}

/// Actions, topics and presence across nodes: `#me` on one node is an `ACTION` on the other,
/// a topic set on one is told to the room on the other (and sent on a join there), and
/// `#whois` on one node sees a user seated on the other.
#[test]
fn actions_topics_and_whois_cross_nodes() {
    let nats = Nats::start();
    let (a, b) = (node(&nats, "a"), node(&nats, "b"));
    let (mut ann, _) = seated(&a, "ann", "ops", false);
    let (mut bob, _) = seated(&b, "bob", "ops", false);
    ann.expect("JOIN ops bob 2");
    ann.send("#me waves");
    ann.expect("ACTION ops ann waves");
    bob.expect("ACTION ops ann waves");
    bob.send("#topic from node b");
    let told = bob.expect_prefix("TOPIC ops bob ");
    bob.expect("OK topic ops");
    ann.expect(&told);
    let (mut cid, replay) = {
        let mut c = a.user("cid");
        let (_, replay) = c.join("ops");
        (c, replay)
    };
    assert_eq!(replay[0], told, "the topic is sent on join");
    ann.expect("JOIN ops cid 3");
    bob.expect("JOIN ops cid 3");
    cid.send("#rooms");
    cid.expect("ROOMS 1");
    cid.expect("ROOM ops 3 from node b");
    ann.send("#whois bob");
    let whois = ann.line();
    assert!(
        whois.starts_with("WHOIS bob ") && whois.ends_with(" online ops"),
        "{whois}"
    );
}
