//! What the server relays is what users see: no forged line breaks, no reordered or hidden
//! text, and passwords checked as sent (control characters are refused, never stripped).
mod common;
use common::{PASS, TestServer};

/// alice says `said`; bob (and alice's own acknowledgement) must read `seen`.
fn relays(srv: &TestServer, cases: &[(&str, &str)]) {
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    for (said, seen) in cases {
        alice.send(said);
        let want = format!("MSG g alice {seen}");
        alice.expect(&want);
        bob.expect(&want);
    }
    alice.expect_quiet();
    bob.expect_quiet();
}

#[test]
fn line_and_paragraph_separators_cannot_forge_a_line() {
    let srv = TestServer::start();
    relays(
        &srv,
        &[
            ("ls\u{2028}MSG z sa fake", "ls MSG z sa fake"),
            ("one\u{2029}two", "one two"),
        ],
    );
}

#[test]
fn bidirectional_controls_are_removed() {
    let srv = TestServer::start();
    relays(
        &srv,
        &[
            ("see \u{202e}gnp.exe", "see gnp.exe"),
            ("\u{202a}a\u{202b}b\u{202c}c\u{202d}d", "abcd"),
            ("x\u{2066}y\u{2067}z\u{2068}w\u{2069}", "xyzw"),
        ],
    );
}

#[test]
fn lone_zero_width_characters_are_removed_and_joined_emoji_kept() {
    let srv = TestServer::start();
    relays(
        &srv,
        &[
            ("pay\u{200b}pal", "paypal"),
            ("a\u{2060}b\u{feff}c", "abc"),
            (
                "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
                "family \u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}",
            ),
            ("lone \u{200d} joiner\u{200c}", "lone  joiner"),
        ],
    );
}

#[test]
fn a_line_of_only_invisible_characters_is_ignored() {
    let srv = TestServer::start();
    let (mut alice, mut bob) = srv.alice_and_bob("g");
    alice.send("\u{200b}\u{202e}\u{2066}\u{feff}");
    alice.expect_quiet();
    bob.expect_quiet();
    // History holds the cleaned text only.
    alice.say("g", "alice", "ok");
    alice.send("#all_messages");
    let (_, _, _, text) = common::parse_hist(&alice.line());
    assert_eq!(text, "ok");
    alice.expect("OK all_messages 1");
}

#[test]
fn a_password_with_a_control_character_is_refused_not_shortened() {
    let srv = TestServer::start();
    let mut c = srv.client();
    c.send("#register carol pass\0word123");
    c.expect("ERR badpass a password may not contain control characters");
    c.send("#register carol pass\u{7f}word123");
    c.expect("ERR badpass a password may not contain control characters");
    c.send("#register carol password123");
    c.expect("OK register carol");
    // Logging in with the control character does not reach the stripped password.
    let mut d = srv.client();
    d.send("#login carol pass\0word123");
    d.expect("ERR auth wrong name or password");
    d.send("#login carol password123");
    d.expect("OK login carol");
    drop(srv.user("dave"));
    let mut e = srv.client();
    e.send(&format!("#login dave {PASS}"));
    e.expect("OK login dave");
}
