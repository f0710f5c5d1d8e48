//! Storage faults: a locked database answers ERR storage, the daemon keeps serving, and it
//! recovers when the lock is gone. Nothing unstored is ever delivered.
mod common;
use common::TestServer;

#[test]
fn locked_database_gives_err_storage_then_recovers() {
    let srv = TestServer::start();
    let (mut a, mut b) = srv.alice_and_bob("g");
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
    let (mut a, mut b) = srv.alice_and_bob("g");
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

/// Sets or clears the immutable attribute (root, ext4): not even root may write the file.
fn immutable(path: &std::path::Path, on: bool) {
    let flag = if on { "+i" } else { "-i" };
    let ok = std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .expect("chattr (e2fsprogs) is needed for this test")
        .success();
    assert!(
        ok,
        "chattr {flag} {} failed: needs root on ext4",
        path.display()
    );
}

#[test]
fn read_only_database_gives_err_storage_then_recovers() {
    let srv = TestServer::start();
    let mut a = srv.user("alice");
    a.join("g");
    a.say("g", "alice", "writable");
    let files = [
        srv.db.clone(),
        srv.db.with_file_name(format!(
            "{}-wal",
            srv.db.file_name().unwrap().to_string_lossy()
        )),
    ];
    for f in &files {
        immutable(f, true);
    }
    a.send("read only now");
    let l = a.line();
    for f in &files {
        immutable(f, false);
    }
    assert_eq!(
        l,
        "ERR storage the server could not store that; nothing was changed, try again"
    );
    a.send("#ping");
    a.expect("PONG");
    a.say("g", "alice", "writable again");
    a.send("#all_messages");
    assert_eq!(common::parse_hist(&a.line()).3, "writable");
    assert_eq!(common::parse_hist(&a.line()).3, "writable again");
    a.expect("OK all_messages 2");
}

/// Sustained writes as fast as the daemon takes them (rate limit off, four writers, large
/// lines): the WAL stays under its documented bound of 64 MiB all along, while several times
/// that goes through it.
#[test]
fn the_wal_stays_bounded_under_sustained_writes() {
    const BOUND: u64 = 64 << 20;
    const LINE: usize = 3000;
    const WINDOW: usize = 100;
    let srv = TestServer::start_with(&["--max-line", "8192"]);
    let wal = format!("{}-wal", srv.db.display());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut max = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            max
        })
    };
    // Each writer in a room of its own, reading its acknowledgements a window at a time.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut c = srv.user(&format!("w{w}"));
            c.join(&format!("r{w}"));
            std::thread::spawn(move || {
                let text = "x".repeat(LINE);
                let window: String = (0..WINDOW).map(|_| format!("{text}\n")).collect();
                let mut sent = 0;
                let t = std::time::Instant::now();
                while sent < 70 * 1024 * 1024 / 4
                    && t.elapsed() < std::time::Duration::from_secs(60)
                {
                    c.send_raw(window.as_bytes());
                    for _ in 0..WINDOW {
                        c.expect_prefix(&format!("MSG r{w} w{w} x"));
                    }
                    sent += WINDOW * LINE;
                }
                sent
            })
        })
        .collect();
    let written: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let max = sampler.join().unwrap();
    assert!(written >= 70 * 1024 * 1024, "wrote only {written} bytes");
    assert!(max < BOUND, "the WAL reached {max} bytes (bound {BOUND})");
    assert!(max > 0, "the WAL was never seen");
}
