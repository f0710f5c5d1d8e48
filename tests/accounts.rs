//! Accounts and the verbs a guest may use: register, login, ping, help, quit, and the errors.
mod common;
use common::{PASS, TestServer};

#[test]
fn register_login_and_wrong_passwords() {
    let srv = TestServer::start();
    let mut a = srv.client();
    a.send("#register alice s3cret-pass");
    a.expect("OK register alice");
    a.send("#register alice2 s3cret-pass");
    a.expect("ERR usage already logged in as alice");

    let mut b = srv.client();
    b.send("#register ALICE another-pass");
    b.expect("ERR exists that name is taken");
    b.send("#login alice wrong-password");
    b.expect("ERR auth wrong name or password");
    b.send("#login nobody s3cret-pass");
    b.expect("ERR auth wrong name or password");
    // Names are case-insensitive; the reply carries the registered spelling.
    b.send("#login Alice s3cret-pass");
    b.expect("OK login alice");
    b.send("#login alice s3cret-pass");
    b.expect("ERR usage already logged in as alice");
}

#[test]
fn bad_names_and_passwords() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.send("#register al!ce s3cret-pass");
    c.expect("ERR badname names are 1 to 32 of A-Z a-z 0-9 _ -");
    c.send(&format!("#register {} s3cret-pass", "a".repeat(33)));
    c.expect("ERR badname names are 1 to 32 of A-Z a-z 0-9 _ -");
    c.send("#register alice short");
    c.expect("ERR badpass passwords are 8 to 72 bytes");
    c.send(&format!("#register alice {}", "p".repeat(73)));
    c.expect("ERR badpass passwords are 8 to 72 bytes");
    c.send("#register alice");
    c.expect("ERR usage usage: #register NAME PASSWORD");
    c.send("#login alice");
    c.expect("ERR usage usage: #login NAME PASSWORD");
    // 72 bytes is accepted, and all 72 count: a different 72nd byte does not log in.
    let long = "p".repeat(72);
    c.send(&format!("#register {} {long}", "a".repeat(32)));
    c.expect(&format!("OK register {}", "a".repeat(32)));
    let mut d = srv.client();
    d.send(&format!("#login {} {}q", "a".repeat(32), "p".repeat(71)));
    d.expect("ERR auth wrong name or password");
}

#[test]
fn guests_may_only_ping_help_quit_register_login() {
    let srv = TestServer::start();
    let mut c = srv.client();
    for verb in [
        "#join general",
        "#leave",
        "#users",
        "#rooms",
        "#all_messages",
        "#my_messages",
        "#msg bob hi",
        "#privates bob",
        "#ignore bob",
        "#unignore bob",
        "hello",
    ] {
        c.send(verb);
        c.expect("ERR auth log in first: #login NAME PASSWORD or #register NAME PASSWORD");
    }
    c.send("#ping");
    c.expect("PONG");
    c.send("#help");
    let mut help = Vec::new();
    for _ in 0..30 {
        help.push(c.expect_prefix("INFO "));
    }
    for verb in [
        "#register",
        "#login",
        "#password",
        "#join",
        "#leave",
        "#users",
        "#rooms",
        "#all_messages",
        "#my_messages",
        "#msg",
        "#privates",
        "#ignore",
        "#unignore",
        "#ping",
        "#help",
        "#quit",
        "#kick",
        "#ban",
        "#unban",
        "#mute",
        "#unmute",
        "#delete",
        "#modlog",
    ] {
        assert!(
            help.iter().any(|l| l.starts_with(&format!("INFO {verb} "))),
            "{verb} missing from #help"
        );
    }
    c.expect_quiet();
    c.send("#quit");
    c.expect("OK quit");
    assert!(c.until_closed().is_empty());
}

#[test]
fn unknown_verbs_and_usage_errors() {
    let srv = TestServer::start();
    let mut c = srv.user("alice");
    c.send("#frobnicate");
    c.expect("ERR unknown no such command, #help lists them");
    c.send("#leave now");
    c.expect("ERR usage usage: #leave");
    c.send("#ping pong");
    c.expect("ERR usage usage: #ping");
    c.send("#join");
    c.expect("ERR usage usage: #join ROOM");
    c.send("#join bad/room");
    c.expect("ERR badname names are 1 to 32 of A-Z a-z 0-9 _ -");
    c.send("#all_messages 0");
    c.expect("ERR usage LIMIT must be 1 to 1000; usage: #all_messages [LIMIT] [BEFORE_ID]");
    c.send("#my_messages 10 x");
    c.expect(
        "ERR usage BEFORE_ID must be a positive message id; usage: #my_messages [LIMIT] [BEFORE_ID]",
    );
    // Verbs are case-insensitive; blank lines are ignored.
    c.send("");
    c.send("   ");
    c.send("#PING");
    c.expect("PONG");
}

#[test]
fn crlf_and_lf_both_work() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.send_raw(format!("#register alice {PASS}\r\n#ping\n#ping\r\n").as_bytes());
    c.expect("OK register alice");
    c.expect("PONG");
    c.expect("PONG");
}

#[test]
fn one_user_many_sessions() {
    let srv = TestServer::start();
    let _a = srv.user("alice");
    let _b = srv.login("alice");
    let _c = srv.login("alice");
}

#[test]
fn registrations_per_address_are_throttled_before_any_hashing() {
    // A slow hash (cost 13), so that a refusal that hashed first would show.
    let srv = TestServer::start_with(&["--register-per-ip-per-hour", "2", "--bcrypt-cost", "13"]);
    for name in ["r1", "r2"] {
        let mut c = srv.client();
        c.send(&format!("#register {name} {PASS}"));
        c.expect(&format!("OK register {name}"));
    }
    let mut c = srv.client();
    let t = std::time::Instant::now();
    c.send(&format!("#register r3 {PASS}"));
    let line = c.line();
    assert!(
        t.elapsed() < std::time::Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // One new account every half hour at 2 an hour.
    let ms: u64 = line
        .strip_prefix("ERR ratelimit retry-after=")
        .and_then(|r| r.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((1_700_000..=1_800_000).contains(&ms), "{line}");
    assert!(line.ends_with(" too many new accounts from this address or in total; try later"));
    // The connection goes on; logins are not throttled by it.
    c.send(&format!("#login r1 {PASS}"));
    c.expect("OK login r1");
}

#[test]
fn registrations_in_total_are_throttled_too() {
    let srv = TestServer::start_with(&["--register-per-hour", "1"]);
    let mut a = srv.client();
    a.send(&format!("#register t1 {PASS}"));
    a.expect("OK register t1");
    let mut b = srv.client();
    b.send(&format!("#register t2 {PASS}"));
    let line = b.line();
    assert!(line.starts_with("ERR ratelimit retry-after="), "{line}");
}

#[test]
fn closed_registration_refuses_register_and_keeps_logins() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    {
        let srv = TestServer::start_on(&db, &[]);
        drop(srv.user("alice"));
    }
    let srv = TestServer::start_on(&db, &["--registration", "closed"]);
    let mut c = srv.client();
    c.send(&format!("#register bob {PASS}"));
    c.expect("ERR denied registration is closed here; ask an operator for an account");
    c.send(&format!("#login alice {PASS}"));
    c.expect("OK login alice");
}

#[test]
fn password_change_keeps_other_sessions_and_counts_wrong_old_passwords() {
    let srv = TestServer::start_with(&["--max-login-failures", "2"]);
    let mut a = srv.user("alice");
    let mut other = srv.login("alice");
    a.send(&format!("#password {PASS} short"));
    a.expect("ERR badpass passwords are 8 to 72 bytes");
    a.send(&format!("#password {PASS} new\u{1}pass-42"));
    a.expect("ERR badpass a password may not contain control characters");
    // A control character in OLD never matches, though cleaning would make it the password.
    a.send("#password s3cret\0-pass new-pass-42");
    a.expect("ERR auth wrong password");
    a.send(&format!("#password {PASS} new-pass-42"));
    a.expect("OK password");
    // The other session is still logged in; the old password no longer works, the new does.
    other.send("#ping");
    other.expect("PONG");
    let mut c = srv.client();
    c.send(&format!("#login alice {PASS}"));
    c.expect("ERR auth wrong name or password");
    c.send("#login alice new-pass-42");
    c.expect("OK login alice");
    // A wrong current password is a failed login: the second one closes the connection.
    other.send("#password not-the-one another-pass");
    other.expect("ERR auth wrong password");
    other.send("#password not-the-one another-pass");
    other.expect("ERR auth wrong password");
    assert_eq!(other.until_closed(), ["ERR auth 2 failed logins, closing"]);
}
