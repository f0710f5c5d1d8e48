//! Crashes and garbage: kill -9 under load loses nothing anyone saw; thousands of random lines
//! leave the daemon serving and its counts right.
mod common;
use common::{PASS, TestClient, TestServer, parse_hist};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use std::collections::{BTreeSet, HashSet};

/// Every message a user has sent, from `#all_messages`, paging back to the start.
fn stored_by(srv: &TestServer, name: &str) -> Vec<String> {
    let mut c = srv.login(name);
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        match before {
            Some(b) => c.send(&format!("#all_messages 1000 {b}")),
            None => c.send("#all_messages 1000"),
        }
        let mut page = Vec::new();
        loop {
            let l = c.line();
            if l.starts_with("OK all_messages ") {
                break;
            }
            page.push(parse_hist(&l));
        }
        if page.is_empty() {
            break;
        }
        before = Some(page[0].0);
        for (_, _, _, text) in page.into_iter().rev() {
            all.push(text);
        }
    }
    all.reverse();
    all
}

#[test]
fn kill_9_under_load_loses_nothing_anyone_saw() {
    const CLIENTS: usize = 4;
    const WINDOW: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut srv = TestServer::start_on(&db, &[]);
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut c = srv.user(&format!("k{i}"));
        c.join("load");
        clients.push(c);
    }
    for c in clients.iter_mut() {
        c.until_pong(); // JOIN lines
    }
    let (progress, seen_enough) = std::sync::mpsc::channel();
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let progress = progress.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut n = 0usize;
                'outer: loop {
                    for _ in 0..WINDOW {
                        if !c.send_lossy(format!("k{i}-{n}\n").as_bytes()) {
                            break 'outer;
                        }
                        n += 1;
                    }
                    let mut echoes = 0;
                    while echoes < WINDOW {
                        let Some(l) = c.try_line() else { break 'outer };
                        if let Some(rest) = l.strip_prefix("MSG load ") {
                            let (name, text) = rest.split_once(' ').unwrap();
                            if name == format!("k{i}") {
                                echoes += 1;
                            }
                            seen.push(text.to_string());
                            if seen.len() == 2000 {
                                let _ = progress.send(());
                            }
                        }
                    }
                }
                seen
            })
        })
        .collect();
    // Kill once the chat is well under way.
    seen_enough.recv().unwrap();
    srv.signal("KILL");
    let seen: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    drop(srv);

    let srv = TestServer::start_on(&db, &[]);
    let mut stored = Vec::new();
    for i in 0..CLIENTS {
        stored.extend(stored_by(&srv, &format!("k{i}")));
    }
    let stored_set: HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "a message was stored twice");
    let mut total_seen = BTreeSet::new();
    for view in &seen {
        for text in view {
            assert!(
                stored_set.contains(text),
                "{text} was delivered but is not stored"
            );
            total_seen.insert(text);
        }
    }
    assert!(total_seen.len() >= 2000, "only {} seen", total_seen.len());
}

/// A line of random bytes, sometimes shaped like a command.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let verbs = prop::sample::select(vec![
        "#join ",
        "#leave",
        "#users",
        "#rooms",
        "#my_messages ",
        "#all_messages ",
        "#login ",
        "#register ",
        "#ping",
        "#frob ",
        "",
        "##",
    ]);
    (verbs, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(v, mut bytes)| {
        bytes.retain(|b| *b != b'\n');
        let mut line = v.as_bytes().to_vec();
        line.extend(bytes);
        line.push(b'\n');
        line
    })
}

#[test]
fn thousands_of_random_lines_leave_the_daemon_serving() {
    const FUZZERS: usize = 4;
    const LINES: usize = 1500;
    let srv = TestServer::start();
    let mut good = srv.user("good");
    good.join("calm");
    let mut friend = srv.user("friend");
    friend.join("calm");
    good.expect("JOIN calm friend 2");
    let addr = srv.addr;
    let fuzzers: Vec<_> = (0..FUZZERS)
        .map(|f| {
            std::thread::spawn(move || {
                let mut runner = TestRunner::deterministic();
                let mut c = TestClient::connect(addr);
                // Half log in and sit in the calm room, half stay guests.
                if f % 2 == 0 {
                    c.send(&format!("#register fz{f} {PASS}"));
                    c.send("#join calm");
                }
                let mut reader = TestClient::from_stream(c.stream_clone());
                let drain = std::thread::spawn(move || while reader.try_line().is_some() {});
                for _ in 0..LINES {
                    let line = garbage().new_tree(&mut runner).unwrap().current();
                    if !c.send_lossy(&line) {
                        break;
                    }
                }
                c.send_lossy(b"#quit\n");
                drain.join().unwrap();
            })
        })
        .collect();
    // Meanwhile the calm room keeps talking.
    for i in 0..50 {
        good.send(&format!("still here {i}"));
        loop {
            let l = good.line();
            if l == format!("MSG calm good still here {i}") {
                break;
            }
        }
    }
    for f in fuzzers {
        f.join().unwrap();
    }
    // Everyone the fuzzers were is gone: only the two calm users remain, everywhere.
    good.until_pong();
    good.send("#users");
    good.expect("USERS calm 2 friend good");
    good.send("#rooms");
    good.expect("ROOMS 1");
    good.expect("ROOM calm 2");
    good.say("calm", "good", "all quiet");
    let mut got = false;
    while !got {
        got = friend.line() == "MSG calm good all quiet";
    }
}
