//! The bundled `linechat` client against the real daemon: piped mode as a script would use it,
//! and the interactive mode through a pseudo-terminal.
mod common;
use common::{PASS, TestServer, linechat};
use rexpect::reader::Options;
use rexpect::session::{PtySession, spawn_with_options};
use std::process::Command;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn piped_lines_are_sent_and_acknowledged() {
    let srv = TestServer::start();
    drop(srv.user("bob"));
    let mut watcher = srv.user("watcher");
    watcher.join("b");
    let addr = srv.addr.to_string();
    let out = linechat(
        &["--addr", &addr, "--user", "bob", "--chatroom", "b"],
        Some(PASS),
        "hi\nbye\n#users\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "--> you joined b (2 users)");
    assert_eq!(lines[1], "-!- welcome to b; here now (2): bob watcher");
    assert!(lines[2].ends_with("] bob (you): hi"), "{stdout}");
    assert!(lines[3].ends_with("] bob (you): bye"), "{stdout}");
    assert_eq!(lines[4], "-!- in b (2 users): bob watcher");
    assert_eq!(lines.len(), 5, "{stdout}");
    watcher.expect("JOIN b bob 2");
    watcher.expect("MSG b bob hi");
    watcher.expect("MSG b bob bye");
    watcher.expect("LEAVE b bob 1");
}

#[test]
fn piped_mode_waits_out_the_rate_limit() {
    let srv = TestServer::start_with(&["--rate-burst", "2", "--rate-per-sec", "10"]);
    drop(srv.user("bob"));
    let mut watcher = srv.user("watcher");
    watcher.join("r");
    let addr = srv.addr.to_string();
    let input: String = (0..8).map(|i| format!("line {i}\n")).collect();
    // --room is the short form of --chatroom.
    let out = linechat(
        &["--addr", &addr, "--user", "bob", "--room", "r"],
        Some(PASS),
        &input,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("(ratelimit)"),
        "the limit never bit: {stdout}"
    );
    watcher.expect("JOIN r bob 2");
    for i in 0..8 {
        watcher.expect(&format!("MSG r bob line {i}"));
    }
    watcher.expect("LEAVE r bob 1");
}

#[test]
fn clear_errors_and_nonzero_exit() {
    let srv = TestServer::start();
    drop(srv.user("bob"));
    let addr = srv.addr.to_string();
    let out = linechat(
        &["--addr", &addr, "--user", "bob"],
        Some("wrong-password"),
        "hi\n",
    );
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "linechat: wrong name or password (auth)\n"
    );

    let out = linechat(
        &["--addr", &addr, "--user", "bob", "--chatroom", "no/such"],
        Some(PASS),
        "",
    );
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "linechat: bad room name \"no/such\": names are 1 to 32 of A-Z a-z 0-9 _ -\n"
    );

    drop(srv);
    let out = linechat(&["--addr", &addr, "--user", "bob"], Some(PASS), "hi\n");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("linechat: cannot connect to {addr}: ")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    let out = linechat(&["--addr", &addr], None, "hi\n");
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "linechat: --user is needed when input is not a terminal\n"
    );
}

fn pty(args: &[&str], password_env: Option<&str>) -> PtySession {
    let mut cmd = Command::new(common::line_client());
    cmd.args(args).env("NO_COLOR", "1").env("TERM", "xterm");
    if let Some(p) = password_env {
        cmd.env("LINECHAT_PASSWORD", p);
    }
    spawn_with_options(
        cmd,
        Options::new()
            .timeout_ms(Some(10_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap()
}

#[test]
fn interactive_register_hides_the_password_and_keeps_the_half_typed_line() {
    let srv = TestServer::start();
    let addr = srv.addr.to_string();
    let mut p = pty(&["--addr", &addr], None);
    p.exp_string("login or register? [l/r] ").unwrap();
    p.send_line("r").unwrap();
    p.exp_string("name: ").unwrap();
    p.send_line("dave").unwrap();
    p.exp_string("password for dave: ").unwrap();
    p.send_line("not-echoed-secret").unwrap();
    // Typed twice; a mismatch asks again from the start.
    p.exp_string("the same password again: ").unwrap();
    p.send_line("not-echoed-secreT").unwrap();
    p.exp_string("the two passwords differ; once more").unwrap();
    p.exp_string("password for dave: ").unwrap();
    p.send_line("not-echoed-secret").unwrap();
    p.exp_string("the same password again: ").unwrap();
    p.send_line("not-echoed-secret").unwrap();
    let screen = p.exp_string("--> you joined general (1 user)").unwrap();
    assert!(
        !screen.contains("not-echoed-secret"),
        "password echoed: {screen:?}"
    );
    p.exp_string("[general] ").unwrap();

    // Half a line typed when a message arrives: the message shows, the half line survives.
    p.send("half typ").unwrap();
    p.flush().unwrap();
    p.exp_string("half typ").unwrap();
    let mut eve = srv.user("eve");
    eve.join("general");
    eve.send("ping from eve");
    eve.expect("MSG general eve ping from eve");
    p.exp_string("eve: ping from eve").unwrap();
    p.exp_string("half typ").unwrap(); // redrawn below the message
    p.send_line("ed").unwrap();
    eve.expect("MSG general dave half typed");
    p.exp_string("dave (you): half typed").unwrap();

    // Client commands: /join is sugar for #join, and #commands pass through.
    p.send_line("/join side").unwrap();
    p.exp_string("--> you joined side (1 user)").unwrap();
    eve.expect("LEAVE general dave 1");
    p.send_line("#users").unwrap();
    p.exp_string("-!- in side (1 user): dave").unwrap();
    p.send_line("/raw").unwrap();
    p.exp_string("raw protocol view on").unwrap();
    p.send_line("#ping").unwrap();
    p.exp_string("PONG").unwrap();
    // Ctrl-D leaves cleanly.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
}

#[test]
fn interactive_reconnects_after_the_daemon_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let mut srv = TestServer::start_on(&db, &[]);
    drop(srv.user("frank"));
    let addr = srv.addr.to_string();
    let mut p = pty(
        &["--addr", &addr, "--user", "frank", "--chatroom", "ops"],
        Some(PASS),
    );
    p.exp_string("--> you joined ops (1 user)").unwrap();
    p.exp_string("[ops] ").unwrap();

    let (status, _) = srv.signal("TERM");
    assert!(status.success());
    drop(srv);
    p.exp_string("connection to").unwrap();
    let srv = TestServer::start_on(&db, &["--listen", &addr]);
    assert_eq!(srv.addr.to_string(), addr);
    p.exp_string("-!- reconnected").unwrap();
    p.exp_string("--> you joined ops (1 user)").unwrap();

    let mut g = srv.user("grace");
    g.join("ops");
    p.send_line("after the restart").unwrap();
    g.expect("MSG ops frank after the restart");
    // Ctrl-C leaves cleanly too.
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
    g.expect("LEAVE ops frank 1");
}

/// Several addresses (nodes of one service): the client logs in on the first that answers, and
/// after losing it carries on with the next.
#[test]
fn interactive_moves_to_the_next_address_when_its_server_goes() {
    let mut a = TestServer::start();
    let b = TestServer::start();
    // The same account on both (each daemon has its own database here).
    drop(a.user("hank"));
    drop(b.user("hank"));
    let mut watcher = b.user("watch");
    watcher.join("ops");
    // A closed port first: skipped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nobody = closed.local_addr().unwrap().to_string();
    drop(closed);
    let list = format!("{nobody},{}", a.addr);
    let b_addr = b.addr.to_string();
    let mut p = pty(
        &[
            "--addr",
            &list,
            "--addr",
            &b_addr,
            "--user",
            "hank",
            "--chatroom",
            "ops",
        ],
        Some(PASS),
    );
    p.exp_string("--> you joined ops (1 user)").unwrap();
    p.exp_string("[ops] ").unwrap();
    let (status, _) = a.signal("TERM");
    assert!(status.success());
    p.exp_string("connection to").unwrap();
    p.exp_string(&format!("-!- reconnected to {b_addr}"))
        .unwrap();
    watcher.expect("JOIN ops hank 2");
    p.send_line("on the other node").unwrap();
    watcher.expect("MSG ops hank on the other node");
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}

/// Two nodes of one cluster: the node the client is on is killed (SIGKILL); the client
/// reconnects to the other, logs in and rejoins, and its room (on the surviving node) hears
/// it go on, with no LEAVE and JOIN between (the user never left the room).
#[test]
fn interactive_carries_on_on_another_cluster_node_when_its_node_dies() {
    let nats = common::nats::Nats::start();
    let cluster = ["--cluster".to_string(), nats.url()];
    let mut a = TestServer::start_with(&[&cluster[0], &cluster[1], "--node", "a"]);
    let b = TestServer::start_with(&[&cluster[0], &cluster[1], "--node", "b"]);
    drop(a.user("hank"));
    let mut watcher = b.user("watch");
    watcher.join("ops");
    let list = format!("{},{}", a.addr, b.addr);
    let mut p = pty(
        &["--addr", &list, "--user", "hank", "--chatroom", "ops"],
        Some(PASS),
    );
    p.exp_string("--> you joined ops (2 users)").unwrap();
    watcher.expect("JOIN ops hank 2");
    p.send_line("on node a").unwrap();
    watcher.expect("MSG ops hank on node a");
    a.signal("KILL");
    p.exp_string(&format!("-!- reconnected to {}", b.addr))
        .unwrap();
    p.send_line("on node b").unwrap();
    watcher.expect("MSG ops hank on node b");
    // Past the dead node's silence allowance: its seat is freed, hank's new one stays.
    std::thread::sleep(std::time::Duration::from_secs(7));
    watcher.send("#users");
    watcher.expect("USERS ops 2 hank watch");
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}

/// `/msg NAME TEXT` sends a private message; one arriving is shown as `*FROM -> TO* TEXT`;
/// `/search WORDS` finds it; `/me`, `/topic` and `/whois` show in their own styles.
#[test]
fn interactive_sends_and_shows_private_messages() {
    let srv = TestServer::start();
    drop(srv.user("pat"));
    let mut sam = srv.user("sam");
    let addr = srv.addr.to_string();
    let mut p = pty(
        &["--addr", &addr, "--user", "pat", "--chatroom", "hall"],
        Some(PASS),
    );
    p.exp_string("--> you joined hall (1 user)").unwrap();
    p.send_line("/msg sam  psst, over here").unwrap();
    sam.expect("PRIV pat sam psst, over here");
    p.exp_string("*pat -> sam* psst, over here").unwrap();
    sam.send("#msg pat what is it");
    sam.expect("PRIV sam pat what is it");
    p.exp_string("*sam -> pat* what is it").unwrap();
    // /search finds it, shown as history, then how many.
    p.send_line("/search psst").unwrap();
    p.exp_string("psst, over here").unwrap();
    p.exp_string("-!- 1 found").unwrap();
    // /me, /topic and /whois, each in its own style.
    p.send_line("/me stretches").unwrap();
    p.exp_string("* pat stretches").unwrap();
    p.send_line("/topic quiet  hours").unwrap();
    p.exp_string("-!- topic of hall: quiet  hours (set by pat,")
        .unwrap();
    p.send_line("/whois sam").unwrap();
    p.exp_string("-!- sam: registered ").unwrap();
    p.exp_string(", online, in no room").unwrap();
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}

/// Kicked by an admin: the client says so and does not come straight back.
#[test]
fn interactive_does_not_reconnect_after_a_kick() {
    let mut srv = TestServer::start();
    drop(srv.user("ivan"));
    let mut root = srv.user("root");
    srv.make_admin("root");
    let addr = srv.addr.to_string();
    let mut p = pty(&["--addr", &addr, "--user", "ivan"], Some(PASS));
    p.exp_string("--> you joined general (1 user)").unwrap();
    root.send("#kick ivan flooding");
    root.expect("OK kick ivan 1");
    p.exp_string("!!! flooding (kicked)").unwrap();
    p.exp_string("-!- an admin closed the connection; not reconnecting")
        .unwrap();
    // The prompt leaves at the next line typed, which is sent nowhere.
    p.send("anyone?\r").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
    // Logged in once, never again.
    drop(root);
    srv.signal("TERM");
    let logins = srv.all_log();
    let logins = logins.iter().filter(|l| l.contains("login ivan succeeded"));
    assert_eq!(logins.count(), 1);
}

/// A sent chat line shows once on the screen: the typed line is replaced by the server's
/// echo, as in an IRC client (the terminal's screen rebuilt from the raw output with a
/// terminal emulator); a command's typed line stays.
#[test]
fn interactive_shows_a_sent_line_once() {
    let srv = TestServer::start();
    drop(srv.user("uma"));
    let addr = srv.addr.to_string();
    let mut cmd = Command::new(common::line_client());
    cmd.args(["--addr", &addr, "--user", "uma", "--chatroom", "den"])
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env("LINECHAT_PASSWORD", PASS);
    let mut p = spawn_with_options(cmd, Options::new().timeout_ms(Some(10_000))).unwrap();
    let mut raw = String::new();
    let mut upto = |p: &mut PtySession, s: &str| {
        raw.push_str(&p.exp_string(s).unwrap());
        raw.push_str(s);
    };
    upto(&mut p, "[den] ");
    p.send_line("a line said once").unwrap();
    upto(&mut p, "uma (you): a line said once");
    upto(&mut p, "[den] ");
    p.send_line("#users").unwrap();
    upto(&mut p, "-!- in den (1 user): uma");
    upto(&mut p, "[den] ");
    let mut screen = vt100::Parser::new(24, 80, 0);
    screen.process(raw.as_bytes());
    let shown = screen.screen().contents();
    assert_eq!(shown.matches("a line said once").count(), 1, "{shown}");
    assert!(shown.contains("[den] #users"), "{shown}");
    p.send_control('c').unwrap();
    p.exp_eof().unwrap();
}
