//! Storage faults: a locked database answers ERR storage, the daemon keeps serving, and it
//! recovers when the lock is gone. Nothing unstored is ever delivered.
mod common;
use common::TestServer;

#[test]
fn locked_database_gives_err_storage_then_recovers() {
    let srv = TestServer::start();
    let mut a = srv.user("alice");
    a.join("g");
    let mut b = srv.user("bob");
    b.join("g");
    a.expect("JOIN g bob 2");
    a.say("g", "alice", "before the lock");
    b.expect("MSG g alice before the lock");

    // Another process takes the write lock and holds it.
    let locker = rusqlite::Connection::open(&srv.db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    a.send("while locked");
    a.expect("ERR storage the server could not store that; nothing was changed, try again");
    let mut c = srv.client();
    c.send("#register carol s3cret-pass");
    c.expect("ERR storage the server could not store that; nothing was changed, try again");
    // Presence and liveness keep working meanwhile.
    a.send("#users");
    a.expect("USERS g 2 alice bob");
    a.send("#ping");
    a.expect("PONG");
    // bob never saw the unstored line.
    b.expect_quiet();

    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    a.say("g", "alice", "after the lock");
    b.expect("MSG g alice after the lock");
    c.send("#register carol s3cret-pass");
    c.expect("OK register carol");

    a.send("#all_messages");
    assert_eq!(common::parse_hist(&a.line()).3, "before the lock");
    assert_eq!(common::parse_hist(&a.line()).3, "after the lock");
    a.expect("OK all_messages 2");
}

#[test]
fn full_disk_gives_err_storage_then_recovers() {
    let srv = TestServer::start_with_file_limit(1024, &[]);
    let mut a = srv.user("alice");
    a.join("g");
    let mut b = srv.user("bob");
    b.join("g");
    a.expect("JOIN g bob 2");
    // Fill the "disk": 4 KB messages until the store refuses one.
    let text = "f".repeat(4000);
    let mut stored = 0;
    let err = loop {
        a.send(&text);
        let l = a.line();
        if l.starts_with("ERR ") {
            break l;
        }
        assert_eq!(l, format!("MSG g alice {text}"));
        stored += 1;
        assert!(stored < 2000, "the file size limit never bit");
    };
    assert_eq!(
        err,
        "ERR storage the server could not store that; nothing was changed, try again"
    );
    // The daemon keeps serving presence and liveness.
    a.send("#users");
    a.expect("USERS g 2 alice bob");
    a.send("#ping");
    a.expect("PONG");
    // bob saw exactly the stored messages.
    for _ in 0..stored {
        b.expect(&format!("MSG g alice {text}"));
    }
    b.expect_quiet();

    srv.lift_file_limit();
    a.say("g", "alice", "room again");
    b.expect("MSG g alice room again");
}
