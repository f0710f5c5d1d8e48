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
