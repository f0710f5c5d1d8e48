//! linechat: the line client. Interactive on a terminal (a line editor whose prompt incoming
//! lines never clobber, input history, colour); scriptable from a pipe (each input line is sent
//! and acknowledged before the next).

use argh::FromArgs;
use linechat::client::render::Screen;
use linechat::client::transport::TlsOptions;
use linechat::client::{Conn, Identity, Link, Output, read_loop};
use linechat::protocol::{validate_name, validate_password};
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Default server.
const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// Default server with `--tls`.
const DEFAULT_TLS_ADDR: &str = "127.0.0.1:7879";
/// Default room.
const DEFAULT_ROOM: &str = "general";
/// How long to wait for each acknowledgement in piped mode.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `#quit` may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(3);

/// linechat: chat on a linechatd server. On a terminal it asks what it needs; from a pipe it
/// sends each input line as a message (lines starting with # as commands) and exits when the
/// input ends and every message is acknowledged.
#[derive(FromArgs, Debug)]
#[argh(
    note = "The password comes from LINECHAT_PASSWORD, else it is asked for without echo. On a terminal: /help, /join ROOM, /msg NAME TEXT, /privates NAME, /search WORDS, /raw, /quit; #commands pass through to the server."
)]
struct Args {
    /// server address (default 127.0.0.1:7878, or 127.0.0.1:7879 with --tls); several
    /// (repeated, or separated by commas) are tried in turn, and after a lost connection the
    /// next one first
    #[argh(option)]
    addr: Vec<String>,
    /// speak TLS to the server's TLS port; its certificate is verified against the system's
    /// roots (or --tls-ca) for the host of --addr (or --tls-name)
    #[argh(switch)]
    tls: bool,
    /// with --tls: trust the certificates in this PEM file (e.g. a self-signed one) instead of
    /// the system's roots
    #[argh(option)]
    tls_ca: Option<std::path::PathBuf>,
    /// with --tls: the name the server's certificate must carry (default: the host of --addr)
    #[argh(option)]
    tls_name: Option<String>,
    /// room to join (default general)
    #[argh(option)]
    chatroom: Option<String>,
    /// the same as --chatroom
    #[argh(option)]
    room: Option<String>,
    /// user name to log in as (without it, a terminal session asks: login or register)
    #[argh(option)]
    user: Option<String>,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("linechat: {msg}");
    ExitCode::FAILURE
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    let room = match (&args.chatroom, &args.room) {
        (Some(a), Some(b)) if a != b => return fail("--chatroom and --room disagree"),
        (Some(r), _) | (None, Some(r)) => r.clone(),
        (None, None) => DEFAULT_ROOM.to_string(),
    };
    if let Err(e) = validate_name(&room) {
        return fail(format!("bad room name {room:?}: {}", e.text));
    }
    let room = room.to_ascii_lowercase();
    if !args.tls && (args.tls_ca.is_some() || args.tls_name.is_some()) {
        return fail("--tls-ca and --tls-name go with --tls");
    }
    let interactive = std::io::stdin().is_terminal();
    let mut editor = if interactive {
        match DefaultEditor::new() {
            Ok(e) => Some(e),
            Err(e) => return fail(format!("cannot use the terminal: {e}")),
        }
    } else {
        None
    };
    let id = match identity(&args, editor.as_mut()) {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    let (conn, ok_join) = match Conn::establish(&id, &room) {
        Ok(c) => c,
        Err(f) => return fail(f.message()),
    };
    match editor {
        Some(editor) => interactive_main(editor, conn, ok_join, id, &room),
        None => piped_main(conn, ok_join, id),
    }
}

/// Name, password and login-or-register, from flags, the environment or prompts.
fn identity(args: &Args, editor: Option<&mut DefaultEditor>) -> Result<Identity, String> {
    let env_password = std::env::var("LINECHAT_PASSWORD").ok();
    let ask_password = |user: &str| -> Result<String, String> {
        match &env_password {
            Some(p) => Ok(p.clone()),
            None => rpassword::prompt_password(format!("password for {user}: "))
                .map_err(|e| format!("no password (set LINECHAT_PASSWORD): {e}")),
        }
    };
    if let Some(user) = &args.user {
        validate_name(user).map_err(|e| format!("bad user name {user:?}: {}", e.text))?;
        return Ok(Identity {
            addrs: addrs(args),
            user: user.clone(),
            password: ask_password(user)?,
            register: false,
            tls: tls(args),
        });
    }
    let Some(editor) = editor else {
        return Err("--user is needed when input is not a terminal".into());
    };
    let read = |editor: &mut DefaultEditor, prompt: &str| -> Result<String, String> {
        editor
            .readline(prompt)
            .map(|s| s.trim().to_string())
            .map_err(|_| "cancelled".to_string())
    };
    let register = loop {
        match read(editor, "login or register? [l/r] ")?
            .to_ascii_lowercase()
            .as_str()
        {
            "l" | "login" => break false,
            "r" | "register" => break true,
            _ => continue,
        }
    };
    let user = loop {
        let name = read(editor, "name: ")?;
        match validate_name(&name) {
            Ok(()) => break name,
            Err(e) => println!("{}", e.text),
        }
    };
    let password = loop {
        let p = ask_password(&user)?;
        if !register {
            break p;
        }
        if let Err(e) = validate_password(&p) {
            println!("{}", e.text);
            continue;
        }
        // A new password is typed twice: a typo in a hidden password would lock the user out.
        if env_password.is_none() {
            let again = rpassword::prompt_password("the same password again: ")
                .map_err(|e| format!("no password (set LINECHAT_PASSWORD): {e}"))?;
            if again != p {
                println!("the two passwords differ; once more");
                continue;
            }
        }
        break p;
    };
    Ok(Identity {
        addrs: addrs(args),
        user,
        password,
        register,
        tls: tls(args),
    })
}

/// The server's addresses: every `--addr` (each may list several, comma-separated), else the
/// default port for plain or TLS.
fn addrs(args: &Args) -> Vec<String> {
    let given: Vec<String> = args
        .addr
        .iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if !given.is_empty() {
        return given;
    }
    let default = if args.tls {
        DEFAULT_TLS_ADDR
    } else {
        DEFAULT_ADDR
    };
    vec![default.to_string()]
}

/// How to speak TLS, with `--tls`.
fn tls(args: &Args) -> Option<TlsOptions> {
    args.tls.then(|| TlsOptions {
        ca: args.tls_ca.clone(),
        name: args.tls_name.clone(),
    })
}

/// Prints through rustyline, above the line being typed.
struct Printer<P>(P);

impl<P: ExternalPrinter + Send> Output for Printer<P> {
    fn show(&mut self, line: String) {
        let _ = self.0.print(line);
    }
}

/// Prints plain lines to stdout.
struct Stdout;

impl Output for Stdout {
    fn show(&mut self, line: String) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

const CLIENT_HELP: &[&str] = &[
    "-!- /join ROOM   leave this room and join ROOM",
    "-!- /msg NAME TEXT   send TEXT to NAME alone",
    "-!- /privates NAME   your private messages with NAME",
    "-!- /ignore NAME     refuse NAME's private messages (/unignore NAME to undo)",
    "-!- /me TEXT         an action: * you TEXT",
    "-!- /topic [TEXT]    the room's topic, or set it",
    "-!- /whois NAME      when NAME registered, where they are or when last seen",
    "-!- /search WORDS    search what you may read (\"a phrase\", pre*, -not, in=ROOM, from=NAME)",
    "-!- /raw         show the protocol lines as they arrive (again to turn off)",
    "-!- /quit        leave (also Ctrl-C or Ctrl-D)",
    "-!- /help        this list; #help lists the server's commands, which pass through",
    "-!- anything else is said in the room",
];

fn interactive_main(
    mut editor: DefaultEditor,
    conn: Conn,
    ok_join: String,
    id: Identity,
    room: &str,
) -> ExitCode {
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let screen = Screen {
        me: id.user.clone(),
        color,
    };
    let link = Link::new(&conn, room);
    let raw = Arc::new(AtomicBool::new(false));
    if let Some(l) = screen.render(&ok_join, "") {
        println!("{l}");
    }
    let printer = match editor.create_external_printer() {
        Ok(p) => p,
        Err(e) => return fail(format!("cannot use the terminal: {e}")),
    };
    let reader = {
        let (link, raw) = (link.clone(), raw.clone());
        std::thread::spawn(move || {
            read_loop(
                conn,
                link,
                id,
                screen,
                raw,
                true,
                Box::new(Printer(printer)),
            );
        })
    };
    loop {
        if link.seen().closed {
            break;
        }
        let prompt = format!("[{}] ", link.seen().room);
        let line = match editor.readline(&prompt) {
            Ok(l) => l,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("linechat: {e}");
                break;
            }
        };
        if link.seen().closed {
            break; // closed for good while the line was typed
        }
        if line.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        let typed_rows = linechat::client::typed_rows(
            &prompt,
            &line,
            editor
                .dimensions()
                .map_or(80, |(cols, _)| usize::from(cols)),
        );
        let to_send = match line.trim() {
            "/quit" => break,
            "/help" => {
                for l in CLIENT_HELP {
                    println!("{l}");
                }
                continue;
            }
            "/raw" => {
                let now = !raw.fetch_xor(true, Ordering::Relaxed);
                println!("-!- raw protocol view {}", if now { "on" } else { "off" });
                continue;
            }
            t if t.starts_with("/join ") => format!("#join {}", t["/join ".len()..].trim()),
            // The text goes as typed (the server keeps it verbatim after NAME).
            t if t.starts_with("/msg ") => {
                format!("#msg {}", line.trim_start()["/msg ".len()..].trim_start())
            }
            t if t.starts_with("/privates ") => {
                format!("#privates {}", t["/privates ".len()..].trim())
            }
            "/privates" => "#privates".to_string(),
            t if t.starts_with("/search ") => format!("#search {}", t["/search ".len()..].trim()),
            // The text goes as typed.
            t if t.starts_with("/me ") => {
                format!("#me {}", line.trim_start()["/me ".len()..].trim_start())
            }
            "/topic" => "#topic".to_string(),
            t if t.starts_with("/topic ") => {
                format!(
                    "#topic {}",
                    line.trim_start()["/topic ".len()..].trim_start()
                )
            }
            t if t.starts_with("/whois ") => format!("#whois {}", t["/whois ".len()..].trim()),
            t if t.starts_with("/ignore ") => format!("#ignore {}", t["/ignore ".len()..].trim()),
            t if t.starts_with("/unignore ") => {
                format!("#unignore {}", t["/unignore ".len()..].trim())
            }
            t if t.starts_with('/') => {
                println!("-!- unknown command {t}; /help lists them");
                continue;
            }
            _ => line,
        };
        // The server's echo of a chat line, action or private message replaces the typed line,
        // as in an IRC client: it is erased before it is sent, so its echo cannot be printed
        // first. (A room line arriving in the instant between the prompt's end and this would
        // be the line erased; the next redraw of history does not bring it back.)
        if linechat::client::is_echoed(&to_send) {
            print!("\x1b[{typed_rows}A\r\x1b[J");
            let _ = std::io::stdout().flush();
        }
        if !link.send(&to_send) {
            println!("-!- not connected; reconnecting, try again in a moment");
        }
    }
    if link.send("#quit") {
        let _ = link.wait(QUIT_TIMEOUT, |s| s.closed);
    }
    drop(reader);
    ExitCode::SUCCESS
}

fn piped_main(conn: Conn, ok_join: String, id: Identity) -> ExitCode {
    let screen = Screen {
        me: id.user.clone(),
        color: false,
    };
    let room = ok_join.split(' ').nth(2).unwrap_or("").to_string();
    let link = Link::new(&conn, &room);
    if let Some(l) = screen.render(&ok_join, "") {
        Stdout.show(l);
    }
    let reader = {
        let link = link.clone();
        let raw = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            read_loop(conn, link, id, screen, raw, false, Box::new(Stdout));
        })
    };
    let mut failed = 0;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let ok = if line.starts_with('#') && !line.starts_with("##") {
            command(&link, &line)
        } else {
            say(&link, &line)
        };
        if !ok {
            failed += 1;
            if link.seen().closed {
                break;
            }
        }
    }
    // Let the replies to everything sent arrive, then leave.
    let closed = !command(&link, "#ping");
    if !closed && link.send("#quit") {
        let _ = link.wait(QUIT_TIMEOUT, |s| s.closed);
    }
    let _ = reader.join();
    if failed > 0 || closed {
        eprintln!("linechat: {failed} line(s) were not delivered");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Sends a command and waits until the server has answered everything before it.
fn command(link: &Link, line: &str) -> bool {
    let pongs = link.seen().pongs;
    if line != "#ping" && !link.send(line) {
        return false;
    }
    if !link.quiet_ping() {
        return false;
    }
    !link.wait(ACK_TIMEOUT, |s| s.pongs > pongs).closed
}

/// Says one line and waits for its acknowledgement; waits and resends when rate limited.
fn say(link: &Link, text: &str) -> bool {
    loop {
        let (acks, errors) = {
            let s = link.seen();
            (s.acks, s.errors)
        };
        if !link.send(text) {
            return false;
        }
        let seen = link.wait(ACK_TIMEOUT, |s| s.acks > acks || s.errors > errors);
        if seen.acks > acks {
            return true;
        }
        if seen.closed || seen.errors == errors {
            return false;
        }
        let retry = seen
            .last_error
            .strip_prefix("ERR ratelimit retry-after=")
            .and_then(|r| r.split(' ').next())
            .and_then(|ms| ms.parse::<u64>().ok());
        match retry {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => return false,
        }
    }
}
