//! Line limits and malformed input: a clear ERR, and the connection lives on.
mod common;
use common::TestServer;

#[test]
fn long_line_then_ping_in_the_same_write() {
    let srv = TestServer::start_with(&["--max-line", "100"]);
    let mut c = srv.user("alice");
    let mut bytes = vec![b'x'; 5000];
    bytes.extend_from_slice(b"\n#ping\n");
    c.send_raw(&bytes);
    c.expect("ERR toolong line longer than 100 bytes discarded");
    c.expect("PONG");
    // Exactly the limit passes, one more does not; a CR does not count.
    c.join("g");
    let exact = "y".repeat(100);
    c.send_raw(format!("{exact}\r\n").as_bytes());
    c.expect(&format!("MSG g alice {exact}"));
    c.send(&"z".repeat(101));
    c.expect("ERR toolong line longer than 100 bytes discarded");
    c.expect_quiet();
}

#[test]
fn invalid_utf8_is_discarded() {
    let srv = TestServer::start();
    let mut c = srv.user("alice");
    c.join("g");
    c.send_raw(b"caf\xe9\n");
    c.expect("ERR utf8 line is not valid UTF-8, discarded");
    c.say("g", "alice", "café");
}

#[test]
fn over_the_connection_limit_gets_busy() {
    let srv = TestServer::start_with(&["--max-connections", "2"]);
    let mut a = srv.user("alice");
    let mut b = srv.client();
    let mut c = common::TestClient::connect_raw(srv.addr);
    c.expect("ERR busy the server is full, try again later");
    assert!(c.until_closed().is_empty());
    // The established connections are untouched.
    a.send("#ping");
    a.expect("PONG");
    b.send("#ping");
    b.expect("PONG");
    drop(b);
    // A slot frees up once a connection ends.
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let mut d = common::TestClient::connect_raw(srv.addr);
        let first = d.line();
        if first.starts_with("INFO linechat") {
            break;
        }
        assert_eq!(first, "ERR busy the server is full, try again later");
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A client that never reads is dropped once its queue is full; the room keeps flowing for
/// everyone else and hears it leave.
#[test]
fn a_client_that_never_reads_is_dropped_and_the_room_flows_on() {
    const N: usize = 3000;
    const WINDOW: usize = 8;
    let srv = TestServer::start_with(&["--sendq-lines", "64", "--sendq-bytes", "65536"]);
    let mut slow = srv.user("slow");
    slow.join("g");
    let mut fast = srv.user("fast");
    fast.join("g");
    slow.send("#ping"); // and never read again
    let text = "x".repeat(4000);
    let mut left = false;
    for chunk in 0..N / WINDOW {
        for _ in 0..WINDOW {
            fast.send(&text);
        }
        let mut echoes = 0;
        while echoes < WINDOW {
            let l = fast.line();
            if l == "LEAVE g slow 1" {
                assert!(!left);
                left = true;
                eprintln!("slow reader dropped after {} messages", chunk * WINDOW);
            } else {
                assert_eq!(l, format!("MSG g fast {text}"));
                echoes += 1;
            }
        }
    }
    assert!(left, "the slow reader was never dropped");
    fast.send("#users");
    fast.expect("USERS g 1 fast");
    assert!(slow.is_closed() || slow.until_closed().len() < N);
}

/// A client that sends many requests before reading any reply gets every reply, in order: the
/// session stops reading requests while its queue is full instead of dropping replies or
/// growing the queue.
#[test]
fn requests_sent_without_reading_all_get_their_replies() {
    const N: usize = 3000;
    let srv = TestServer::start_with(&["--sendq-lines", "8", "--sendq-bytes", "1024"]);
    let mut c = srv.user("alice");
    c.join("g");
    let mut burst = String::new();
    for _ in 0..N {
        burst.push_str("#ping\n#rooms\n");
    }
    c.send_raw(burst.as_bytes());
    for i in 0..N {
        assert_eq!(c.line(), "PONG", "reply {i}");
        assert_eq!(c.line(), "ROOMS 1", "reply {i}");
        assert_eq!(c.line(), "ROOM g 1", "reply {i}");
    }
    c.say("g", "alice", "still here");
    c.expect_quiet();
}
