//! How a session ends — `#quit`, the client closing its side (EOF), EOF after a burst — and what
//! the sender and the room see: every line read before the end is committed and delivered, the
//! sender's acknowledgements come before `OK quit`, and the room hears `MSG` before `LEAVE`.
mod common;
use common::{PASS, TestServer};
use std::io::Write;
use std::net::Shutdown;
use std::process::{Command, Stdio};

/// alice and bob in room `g`; bob is the one who leaves.
fn room(srv: &TestServer) -> (common::TestClient, common::TestClient) {
    srv.alice_and_bob("g")
}

#[test]
fn quit_right_after_a_line_acknowledges_it_first() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = room(&srv);
    // One write, as `printf ... | nc` sends it.
    bob.send_raw(b"bye\n#quit\n");
    assert_eq!(bob.until_closed(), ["MSG g bob bye", "OK quit"]);
    alice.expect("MSG g bob bye");
    alice.expect("LEAVE g bob 1");
    alice.expect_quiet();
}

#[test]
fn eof_right_after_a_line_delivers_it_before_leave() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = room(&srv);
    bob.send_raw(b"bye\n");
    bob.stream_clone().shutdown(Shutdown::Write).unwrap();
    assert_eq!(bob.until_closed(), ["MSG g bob bye"]);
    alice.expect("MSG g bob bye");
    alice.expect("LEAVE g bob 1");
    alice.expect_quiet();
}

#[test]
fn eof_after_a_burst_delivers_every_line_in_order_before_leave() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = room(&srv);
    let burst: String = (0..20).map(|i| format!("line {i}\n")).collect();
    bob.send_raw(burst.as_bytes());
    bob.stream_clone().shutdown(Shutdown::Write).unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("MSG g bob line {i}")).collect();
    assert_eq!(bob.until_closed(), want);
    for line in &want {
        alice.expect(line);
    }
    alice.expect("LEAVE g bob 1");
    alice.expect_quiet();
    // Every line is stored too, in order.
    let mut check = srv.login("alice");
    check.send("#my_messages 100");
    for i in 0..20 {
        let got = check.line();
        let (_, room, name, text) = common::parse_hist(&got);
        assert_eq!((room.as_str(), name.as_str()), ("g", "bob"));
        assert_eq!(text, format!("line {i}"));
    }
    check.expect("OK my_messages 20");
}

#[test]
fn quit_after_a_burst_acknowledges_all_of_it_first() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = room(&srv);
    let mut burst: String = (0..20).map(|i| format!("line {i}\n")).collect();
    burst.push_str("#quit\n");
    bob.send_raw(burst.as_bytes());
    let mut want: Vec<String> = (0..20).map(|i| format!("MSG g bob line {i}")).collect();
    want.push("OK quit".into());
    assert_eq!(bob.until_closed(), want);
    for line in &want[..20] {
        alice.expect(line);
    }
    alice.expect("LEAVE g bob 1");
}

#[test]
fn a_guest_quits_at_once() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.send("#quit");
    assert_eq!(c.until_closed(), ["OK quit"]);
}

/// The issue's own script, with the real `nc`: a bot logs in, joins, says its line and quits.
#[test]
fn a_netcat_bot_gets_its_acknowledgement_before_ok_quit() {
    let srv = TestServer::start();
    drop(srv.user("dave"));
    let (mut alice, _bob) = room(&srv);
    let mut nc = Command::new("nc")
        .arg(srv.addr.ip().to_string())
        .arg(srv.addr.port().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("nc (netcat-openbsd, installed by test.sh)");
    let script = format!("#login dave {PASS}\n#join g\nbye\n#quit\n");
    nc.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = nc.wait_with_output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    // Greeting (2), OK login, OK join, welcome, then the acknowledgement and OK quit.
    assert_eq!(lines[2], "OK login dave");
    assert_eq!(lines[3], "OK join g 3");
    assert!(
        lines[4].starts_with("INFO welcome to g; here now (3):"),
        "{out}"
    );
    assert_eq!(lines[5..], ["MSG g dave bye", "OK quit"], "{out}");
    alice.expect("JOIN g dave 3");
    alice.expect("MSG g dave bye");
    alice.expect("LEAVE g dave 2");
    alice.expect_quiet();
}
