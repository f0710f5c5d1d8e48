//! One connection: the session state machine (guest -> logged in -> in a room), the reader loop
//! that turns lines into requests, and the single cleanup path every exit goes through.
//!
//! The session writes its own replies to its [`Outbox`]; room traffic (`MSG`, `JOIN`, `LEAVE`,
//! and the `OK join` + welcome + replay item) is queued by the room actor into the same outbox.

use crate::log::{Departure, Health, Seated};
use crate::protocol::{self, HistRow, ProtoError, Reply, Request, Verb};
use crate::rooms::outbox::{Flusher, Outbox, SocketOf, Stop};
use crate::server::codec::{Line, LineReader, ReadSource, Stream};
use crate::server::ratelimit;
use crate::server::{GuestPass, Passes, Shared};
use crate::store::StoreError;
use crate::{SessionId, User};
use bytes::{Bytes, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a closing session waits for its last lines to be written.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `#health` waits for the store.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a session ended, when the server is shutting down.
const SHUTDOWN: &str = protocol::SHUTTING_DOWN;
/// Why a session ended when it was killed (not reading, or a write failed).
const DROPPED: &str = "dropped";
/// Why a session ended when an admin kicked it.
const KICKED: &str = "kicked";

/// Where a session is in its life.
#[derive(Debug, Clone)]
enum State {
    /// Connected, not logged in.
    Guest,
    /// Logged in, and seated in a room (chat lines go there) or in none. (Two variants, not
    /// three: the room's pointer is the niche that tells them apart, and every idle session's
    /// task is 8 bytes smaller for it.)
    LoggedIn(User, Option<Arc<str>>),
}

/// Whether the reader loop goes on after a request.
enum Flow {
    Continue,
    /// Close the connection; the reason is logged.
    Close(&'static str),
    /// `#quit`: close with `OK quit` once the session's messages are acknowledged.
    Quit,
}

/// The client's address, as compact as it goes (an idle session carries it in its task):
/// 19 bytes where a `SocketAddr` takes 32.
#[derive(Debug, Clone, Copy)]
struct Peer {
    ip: IpAddr,
    port: u16,
}

impl Peer {
    fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl From<SocketAddr> for Peer {
    fn from(a: SocketAddr) -> Peer {
        Peer {
            ip: a.ip(),
            port: a.port(),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        SocketAddr::new(self.ip, self.port).fmt(f)
    }
}

struct Session {
    id: SessionId,
    /// On the TLS port: passwords are always welcome.
    secure: bool,
    peer: Peer,
    shared: Arc<Shared>,
    outbox: Outbox,
    state: State,
    /// Failed logins on this connection.
    login_failures: u32,
    /// Rate-limit refusals since the last accepted message.
    strikes: u32,
    /// The guest slots this connection holds until it logs in (boxed: a logged-in session,
    /// the one that idles for hours, keeps 8 bytes for it).
    guest: Option<Box<GuestPass>>,
}

/// The connection's admission (its slot and counts, see [`Admission::hand_over`]) is given
/// back when the session is dropped: the last thing its task does, once the client has
/// closed too or the close timed out.
impl Drop for Session {
    fn drop(&mut self) {
        self.shared.release(self.peer.ip(), self.secure);
    }
}

/// Logs with the connection's fields as key-values: `conn` (the trace id), `peer`, and once
/// known `user` and `room`.
macro_rules! event {
    ($lvl:ident, $s:expr, $($arg:tt)+) => {
        log::$lvl!(
            conn = $s.id, peer:% = $s.peer, user = $s.user_name(), room = $s.room_name();
            $($arg)+
        )
    };
}

/// Serves one connection until the client quits or goes away, the server shuts down, or the
/// connection is dropped for not reading.
pub fn run(
    stream: TcpStream,
    id: SessionId,
    peer: SocketAddr,
    shared: Arc<Shared>,
    passes: Passes,
) -> impl Future<Output = ()> + Send {
    // Built here, not in an async fn, so the arguments are not kept beside the session for
    // the connection's whole life (every idle connection carries this future).
    let outbox = Outbox::with_socket(shared.config.sendq_lines, shared.config.sendq_bytes, stream);
    serve(Session::new(id, peer, shared, outbox, false, passes))
}

/// The session's life on the plain port: the outbox owns the socket (the room actor writes to
/// it directly, see `Outbox::try_push`), and the reader and the writer each hold a handle on
/// it, so the future borrows nothing (an outer `async` block lending the socket would keep a
/// second copy of the reader in every idle connection's task).
fn serve(s: Session) -> impl Future<Output = ()> + Send {
    let lines = LineReader::new(SocketOf(s.outbox.clone()), s.shared.config.max_line);
    let write = SocketOf(s.outbox.clone());
    serve_on(s, lines, write)
}

/// Serves a TLS connection: the handshake (bounded by the login timeout, and preceded by a
/// look at the first bytes, so a client speaking plain text gets one readable `ERR tls`),
/// then the same session as on the plain port, over the decrypted stream. The room actor
/// cannot write a TLS connection directly: its deliveries are queued and the session writes
/// them, a batch of items in one write (one TLS record where it fits).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments and their moved copies"
)]
pub fn run_tls(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    id: SessionId,
    peer: SocketAddr,
    shared: Arc<Shared>,
    passes: Passes,
) -> impl Future<Output = ()> + Send {
    async move {
        let Some(tls) =
            super::tls::handshake(stream, acceptor, id, peer, shared.config.login_timeout).await
        else {
            return;
        };
        let (read, write) = tokio::io::split(tls);
        let outbox = Outbox::new(shared.config.sendq_lines, shared.config.sendq_bytes);
        let s = Session::new(id, peer, shared, outbox, true, passes);
        let lines = LineReader::new(Stream(read), s.shared.config.max_line);
        serve_on(s, lines, write).await
    }
}

/// The session's loop and its one cleanup path, over any reader and writer.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn keeps its arguments and their moved copies"
)]
fn serve_on<R, W>(
    mut s: Session,
    mut lines: LineReader<R>,
    mut write: W,
) -> impl Future<Output = ()> + Send
where
    R: ReadSource + Send,
    W: AsyncWrite + Unpin + Send,
{
    async move {
        let mut flusher = Flusher::new();
        event!(info, s, "connected");
        for text in protocol::greeting() {
            s.reply(Reply::Info(&text));
        }
        // Shutdown and the deadline reach the session through its outbox (see `live`): no
        // timer or shutdown future of its own in every idle connection's task.
        let entered = s.shared.live.enter(s.id, &s.outbox);
        if !entered {
            s.outbox.stop(Stop::Shutdown);
        }
        s.outbox
            .set_deadline(s.shared.deadline_in(s.shared.config.login_timeout));
        let mut first_line = true;
        let mut quit = false;
        let reason = loop {
            // Requests are read only while the queue is under its bounds: a client that does not
            // read its replies stops being served instead of growing the queue.
            let reading = !s.outbox.is_full();
            let item = tokio::select! {
                biased;
                stop = s.outbox.stopped() => match stop {
                    Stop::Shutdown => {
                        let line = Reply::Info(SHUTDOWN).to_bytes();
                        Box::pin(s.depart(&mut flusher, &mut write, Some(line), false)).await;
                        break SHUTDOWN;
                    }
                    Stop::Deadline => {
                        let config = &s.shared.config;
                        let e = match s.state {
                            State::Guest => ProtoError::login_timeout(config.login_timeout.as_secs()),
                            _ => ProtoError::idle_timeout(config.idle_timeout.as_secs()),
                        };
                        s.error(&e);
                        break "timeout";
                    }
                },
                flushed = flusher.flush_when_ready(&s.outbox, &mut write, !reading) => match flushed {
                    Ok(()) => continue,
                    Err(_) if s.outbox.is_closing() => break KICKED,
                    Err(_) => break DROPPED,
                },
                item = lines.next_line(), if reading => item,
            };
            let flow = match item {
                None => break "client closed the connection",
                Some(Err(e)) => {
                    event!(debug, s, "read error: {e}");
                    break "read error";
                }
                Some(Ok(Line::TooLong)) => {
                    s.error(&ProtoError::too_long(s.shared.config.max_line));
                    Flow::Continue
                }
                Some(Ok(Line::TlsHello)) => {
                    s.error(&ProtoError::tls_on_plain_port());
                    break "spoke TLS to the plain port";
                }
                Some(Ok(Line::BadUtf8)) => {
                    s.error(&ProtoError::bad_utf8());
                    Flow::Continue
                }
                Some(Ok(Line::Text(line))) => {
                    if std::mem::take(&mut first_line) && protocol::looks_like_http(&line) {
                        s.error(&ProtoError::http());
                        break "spoke HTTP";
                    }
                    // Boxed, the line with it: the request futures (bcrypt, store round trips)
                    // are large, and an idle session should not carry their space.
                    Box::pin(s.handle_line(line)).await
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(reason) => break reason,
                Flow::Quit => {
                    quit = true;
                    break "quit";
                }
            }
            // Anything a logged-in client sends keeps it alive; a guest's clock never resets.
            if !matches!(s.state, State::Guest) {
                s.outbox
                    .set_deadline(s.shared.deadline_in(s.shared.config.idle_timeout));
            }
        };
        s.shared.live.leave(s.id);
        // The one cleanup path. A guest's slots go back first: the next connection need not
        // wait for this one's farewell (and "disconnected" in the log means they are free).
        s.guest = None;
        // Every line read before the end was queued in order; the departure goes behind them,
        // so they are committed and acknowledged, then `OK quit`, then the room hears LEAVE.
        if reason != SHUTDOWN {
            let line = quit.then(|| Reply::Ok("quit", "").to_bytes());
            Box::pin(s.depart(&mut flusher, &mut write, line, true)).await;
        }
        event!(info, s, "disconnected: {reason}");
        // The room actor no longer queues to this session (it departed): write what is
        // queued, send FIN, then read and discard until the client closes too; the
        // connection's slots are held until then. Closing a socket with unread input makes the
        // kernel send RST, and the client could lose the lines just written. A connection
        // dropped for not reading is closed at once instead.
        let closing = async {
            if flusher.flush(&s.outbox, &mut write).await.is_ok() {
                let _ = write.shutdown().await;
                while let Some(Ok(_)) = lines.next_line().await {}
            }
        };
        // Boxed, like the other rare awaits: an idle session's future stays small.
        if Box::pin(tokio::time::timeout(FLUSH_TIMEOUT, closing))
            .await
            .is_err()
        {
            s.outbox.kill();
        }
        // Gives the connection's slots back (see `Drop for Session`).
        drop(s);
    }
}

impl Session {
    /// A guest's session on `outbox`; `secure` on the TLS port.
    fn new(
        id: SessionId,
        peer: SocketAddr,
        shared: Arc<Shared>,
        outbox: Outbox,
        secure: bool,
        passes: Passes,
    ) -> Session {
        passes.admission.hand_over();
        Session {
            id,
            secure,
            peer: Peer::from(peer),
            shared,
            outbox,
            state: State::Guest,
            login_failures: 0,
            strikes: 0,
            guest: Some(Box::new(passes.guest)),
        }
    }

    /// Queues a reply (never refused for the queue's bounds, see [`Outbox::push`]).
    fn reply(&self, r: Reply<'_>) {
        self.outbox.push(r.to_bytes());
    }

    fn error(&self, e: &ProtoError) {
        self.reply(Reply::Err(e.code, &e.text));
    }

    /// Ends the session in order with its own queued messages: those are committed and
    /// acknowledged first, then `line` (`OK quit`, the shutdown notice) is its last line, and
    /// with `announce` its room hears `LEAVE`. Keeps writing meanwhile, so that a busy room
    /// cannot fill the queue while the departure waits its turn.
    async fn depart(
        &self,
        flusher: &mut Flusher,
        write: &mut (impl AsyncWrite + Unpin),
        line: Option<Bytes>,
        announce: bool,
    ) {
        let Some(_) = self.user() else {
            if let Some(line) = line {
                self.outbox.push(line);
            }
            return;
        };
        let departure = Departure {
            session: self.id,
            user: self.user().map(|u| u.id),
            line: line.clone(),
            announce,
        };
        let departing = self.shared.log.depart(departure);
        tokio::pin!(departing);
        let first = tokio::select! {
            r = &mut departing => Some(r),
            _ = flusher.flush_when_ready(&self.outbox, write, false) => None,
        };
        // A killed connection (the flusher's end) still leaves its room.
        let ordered = match first {
            Some(r) => r,
            None => departing.await,
        };
        if let Err(e) = ordered {
            // The store is gone: presence still has to be freed.
            event!(debug, self, "departure not ordered: {e}");
            if let Some(line) = line {
                self.outbox.push(line);
            }
            self.shared.rooms.detach(self.id).await;
        }
    }

    fn user_name(&self) -> &str {
        self.user().map_or("", |u| &u.name)
    }

    fn room_name(&self) -> &str {
        match &self.state {
            State::LoggedIn(_, Some(r)) => r,
            _ => "",
        }
    }

    fn user(&self) -> Option<&User> {
        match &self.state {
            State::Guest => None,
            State::LoggedIn(u, _) => Some(u),
        }
    }

    /// Serves one line as it came.
    async fn handle_line(&mut self, raw: String) -> Flow {
        self.handle(&protocol::sanitize(&raw), &raw).await
    }

    /// Serves one request: `line` is the cleaned line, `raw` the line as it came (a password
    /// is checked against what the client really sent).
    async fn handle(&mut self, line: &str, raw: &str) -> Flow {
        let request = match Request::parse(line) {
            Ok(Some(r)) => r,
            Ok(None) => return Flow::Continue,
            Err(e) => {
                // A moderation verb from a non-admin is refused as such, whatever its words.
                let admin_only = Verb::of_line(line).is_some_and(Verb::is_admin_only);
                let denied = match self.user() {
                    Some(u) if admin_only => {
                        !matches!(self.shared.store.is_admin(u.id).await, Ok(true))
                    }
                    _ => false,
                };
                self.error(&if denied { ProtoError::admins_only() } else { e });
                return Flow::Continue;
            }
        };
        let user = match (self.user().cloned(), request.allowed_as_guest()) {
            (Some(u), _) => Some(u),
            (None, true) => None,
            (None, false) => {
                self.error(&ProtoError::log_in_first());
                return Flow::Continue;
            }
        };
        event!(debug, self, "request {}", request.verb().spec().name);
        // A network banned since this guest connected: told, and closed, before any bcrypt.
        if user.is_none()
            && matches!(request, Request::Register { .. } | Request::Login { .. })
            && let Some(ban) = self.banned_address()
        {
            self.error(&ProtoError::banned(&ban));
            return Flow::Close("banned address");
        }
        match (request, user) {
            (Request::Ping, _) => self.reply(Reply::Pong),
            (Request::Health, _) => self.health().await,
            (Request::Help, _) => self.help(),
            (Request::Quit, _) => return Flow::Quit,
            (Request::Register { .. } | Request::Login { .. }, Some(u)) => {
                self.error(&ProtoError::already_logged_in(&u.name))
            }
            (Request::Register { .. } | Request::Login { .. }, None)
                if !self.secure && !self.shared.config.plain_logins.allows(self.peer.ip()) =>
            {
                event!(info, self, "password refused on the plain port");
                self.error(&ProtoError::tls_for_passwords())
            }
            // Cleaning removed control characters from the password: refused for a new one,
            // and never a match for an existing one (`pass\0word123` is not `password123`).
            (Request::Register { .. }, None) if word_had_control(raw, 2) => {
                self.error(&ProtoError::password_control())
            }
            (Request::Register { name, password }, None) => self.register(name, password).await,
            (Request::Login { name, password }, None) => {
                return self.login(name, password, word_had_control(raw, 2)).await;
            }
            (_, None) => return Flow::Continue, // guests only reach the verbs above
            (r, Some(u)) if r.is_rate_limited() && !self.admit(&u) => {
                let strikes = self.shared.config.flood_strikes;
                return if self.strikes >= strikes {
                    crate::meters::flood_close();
                    self.error(&ProtoError::flood(strikes));
                    Flow::Close("flooding")
                } else {
                    Flow::Continue
                };
            }
            (Request::Password { .. }, Some(_))
                if !self.secure && !self.shared.config.plain_logins.allows(self.peer.ip()) =>
            {
                self.error(&ProtoError::tls_for_passwords())
            }
            (Request::Password { old, new }, Some(u)) => {
                return self.change_password(u, old, new, raw).await;
            }
            (Request::Kick { name, reason }, Some(u)) => self.kick(u, name, reason).await,
            (
                Request::Ban {
                    target,
                    duration,
                    reason,
                },
                Some(u),
            ) => self.ban(u, target, duration, reason).await,
            (Request::Unban(target), Some(u)) => self.unban(u, target).await,
            (
                Request::Mute {
                    name,
                    duration,
                    reason,
                },
                Some(u),
            ) => self.mute(u, name, duration, reason).await,
            (Request::Unmute(name), Some(u)) => self.unmute(u, name).await,
            (Request::Delete { id, reason }, Some(u)) => self.delete(u, id, reason).await,
            (Request::Modlog(limit), Some(u)) => self.modlog(u, limit).await,
            (Request::Join { room }, Some(u)) => self.join(u, room).await,
            (Request::Leave, Some(u)) => self.leave(u).await,
            (Request::Say(text), Some(u)) => self.say(u, text, false).await,
            (Request::Me(text), Some(u)) => self.say(u, text, true).await,
            (Request::Topic(text), Some(u)) => self.topic(u, text).await,
            (Request::Whois(name), Some(_)) => self.whois(name).await,
            (Request::Msg { name, text }, Some(u)) => self.private(u, name, text).await,
            (Request::Privates { name, page }, Some(u)) => self.privates(u, name, page).await,
            (Request::Conversations, Some(u)) => self.conversations(u).await,
            (Request::Search { query, .. }, Some(u)) => self.search(u, query).await,
            (Request::Ignore(name), Some(u)) => self.ignore(u, name, true).await,
            (Request::Unignore(name), Some(u)) => self.ignore(u, name, false).await,
            (Request::Users, Some(_)) => self.users().await,
            (Request::Rooms, Some(_)) => self.rooms().await,
            (Request::Stats, Some(_)) => self.stats().await,
            (Request::AllMessages(page), Some(u)) => {
                let rows = self.shared.store.all_messages(u.id, page).await;
                self.history("all_messages", rows)
            }
            (Request::MyMessages(page), Some(u)) => {
                let rows = self.shared.store.my_messages(u.id, page).await;
                self.history("my_messages", rows)
            }
        }
        Flow::Continue
    }

    /// The ban on this connection's address, if one is in force now.
    fn banned_address(&self) -> Option<crate::protocol::sanction::Ban> {
        self.shared.sanctions.network_ban(self.peer.ip())
    }

    fn help(&self) {
        let mut buf = BytesMut::new();
        for line in protocol::help_lines() {
            Reply::Info(&line).encode(&mut buf);
        }
        self.outbox.push(buf.freeze());
    }

    /// Takes a rate-limit token for `user`; on refusal answers `ERR ratelimit` and counts a
    /// strike.
    fn admit(&mut self, user: &User) -> bool {
        match self.shared.message_rate.take(&user.id) {
            Ok(()) => {
                self.strikes = 0;
                true
            }
            Err(wait) => {
                self.strikes += 1;
                if self.strikes == 1 {
                    event!(info, self, "rate limited");
                }
                if self.strikes < self.shared.config.flood_strikes {
                    crate::meters::rate_limited();
                    let c = &self.shared.config;
                    let ms = ratelimit::retry_after_ms(wait);
                    self.error(&ProtoError::rate_limited(ms, c.rate_per_sec, c.rate_burst));
                }
                false
            }
        }
    }

    async fn join(&mut self, user: User, room: String) {
        let room: Arc<str> = room.into();
        let history = self.shared.config.history_on_join;
        match self.shared.log.join(self.id, &user, &room, history).await {
            Ok(Seated { count, room }) => {
                self.state = State::LoggedIn(user, Some(room));
                event!(info, self, "joined ({count} users)");
            }
            Err(e) => {
                event!(warn, self, "join {room} failed: {e}");
                self.error(&store_error(&e));
            }
        }
    }

    async fn leave(&mut self, user: User) {
        if !matches!(self.state, State::LoggedIn(_, Some(_))) {
            return self.error(&ProtoError::not_in_room());
        }
        match self.shared.log.leave(self.id).await {
            Ok(Some(room)) => {
                event!(info, self, "left");
                self.state = State::LoggedIn(user, None);
                self.reply(Reply::Ok("leave", &room));
            }
            Ok(None) => {
                self.state = State::LoggedIn(user, None);
                self.error(&ProtoError::not_in_room());
            }
            Err(e) => self.error(&store_error(&e)),
        }
    }

    /// A chat line, or with `action` a `#me` line, in the session's room.
    async fn say(&mut self, user: User, text: &str, action: bool) {
        let State::LoggedIn(_, Some(room)) = &self.state else {
            return self.error(&ProtoError::not_in_room());
        };
        if let Some(until) = self.shared.sanctions.muted(user.id) {
            return self.error(&ProtoError::muted(until));
        }
        if let Err(e) = self
            .shared
            .log
            .say(self.id, &user, room, text.to_string(), action)
            .await
        {
            self.error(&store_error(&e));
        }
    }

    /// `#msg NAME TEXT`: stored in the two accounts' conversation, then delivered to both
    /// parties' sessions (the sender's copies are the acknowledgement). Muted users are
    /// refused as for chat lines.
    async fn private(&mut self, user: User, name: &str, text: &str) {
        if let Some(until) = self.shared.sanctions.muted(user.id) {
            return self.error(&ProtoError::muted(until));
        }
        let to = match self.account(name).await {
            Ok(Some(to)) => to,
            Ok(None) => return self.error(&ProtoError::no_such_user(name)),
            Err(e) => return self.error(&store_error(&e)),
        };
        if let Err(e) = self
            .shared
            .log
            .say_private(self.id, &user, &to, text.to_string())
            .await
        {
            self.error(&store_error(&e));
        }
    }

    /// `#privates NAME [LIMIT] [BEFORE_ID]`: this user's conversation with NAME, a page of it,
    /// oldest first, as `HIST` lines whose room is `@NAME`.
    async fn privates(&mut self, user: User, name: &str, page: crate::protocol::Page) {
        let peer = match self.account(name).await {
            Ok(Some(peer)) => peer,
            Ok(None) => return self.error(&ProtoError::no_such_user(name)),
            Err(e) => return self.error(&store_error(&e)),
        };
        let rows = self.shared.store.conversation(user.id, peer, page).await;
        self.history("privates", rows);
    }

    /// `#privates`: `PRIVATES N` and a `PRIVATE NAME UNREAD` line per conversation, together.
    async fn conversations(&mut self, user: User) {
        match self.shared.store.conversations(user.id).await {
            Ok(list) => {
                let mut buf = BytesMut::new();
                Reply::Privates(list.len()).encode(&mut buf);
                for (name, unread) in &list {
                    Reply::Private {
                        name,
                        unread: *unread,
                    }
                    .encode(&mut buf);
                }
                self.outbox.push(buf.freeze());
            }
            Err(e) => self.error(&store_error(&e)),
        }
    }

    /// `#ignore NAME` / `#unignore NAME`: recorded on every node before the reply.
    async fn ignore(&mut self, user: User, name: &str, on: bool) {
        let verb = if on { "ignore" } else { "unignore" };
        let other = match self.account(name).await {
            Ok(Some(other)) => other,
            Ok(None) => return self.error(&ProtoError::no_such_user(name)),
            Err(e) => return self.error(&store_error(&e)),
        };
        if other.id == user.id {
            return self.error(&ProtoError::ignore_self());
        }
        match self.shared.log.ignore(user.id, other.id, on).await {
            Ok(()) => self.reply(Reply::Ok(verb, &other.name)),
            Err(e) => self.error(&store_error(&e)),
        }
    }

    /// The account named `name` (any case); in a cluster, one made on another node a moment
    /// ago too (the node catches up with the stream before it says there is none).
    async fn account(&self, name: &str) -> Result<Option<User>, crate::store::StoreError> {
        if let Some(found) = self.shared.store.find_user(name).await? {
            return Ok(Some(found.user));
        }
        self.shared.log.sync().await;
        Ok(self.shared.store.find_user(name).await?.map(|f| f.user))
    }

    async fn users(&self) {
        match self.shared.rooms.users(self.id).await {
            Some((room, names)) => {
                let names: Vec<&str> = names.iter().map(|n| &**n).collect();
                self.reply(Reply::Users {
                    room: &room,
                    names: &names,
                })
            }
            None => self.error(&ProtoError::not_in_room()),
        }
    }

    async fn health(&self) {
        match tokio::time::timeout(HEALTH_TIMEOUT, self.shared.log.health()).await {
            Ok(Health::Ok) => self.reply(Reply::Ok("health", "")),
            Ok(Health::Failing) => self.error(&ProtoError::db_failing()),
            Ok(Health::Unreachable) => self.error(&ProtoError::cluster_unreachable()),
            Ok(Health::FileReplaced) => self.error(&ProtoError::db_replaced()),
            Err(_) => self.error(&ProtoError::db_timeout()),
        }
    }

    async fn stats(&self) {
        let snapshot = self.shared.snapshot().await;
        self.reply(Reply::Stats(&snapshot.stats));
    }

    async fn rooms(&self) {
        let rooms = self.shared.rooms.list().await;
        let mut buf = BytesMut::new();
        Reply::Rooms(rooms.len()).encode(&mut buf);
        for (room, count, topic) in &rooms {
            Reply::Room {
                room,
                count: *count,
                topic,
            }
            .encode(&mut buf);
        }
        self.outbox.push(buf.freeze());
    }

    /// A history page and its closing `OK` as one queue item.
    fn history(&self, verb: &str, rows: Result<Vec<HistRow>, crate::store::StoreError>) {
        match rows {
            Ok(rows) => {
                let mut buf = BytesMut::new();
                for h in &rows {
                    Reply::Hist(h).encode(&mut buf);
                }
                Reply::Ok(verb, &rows.len().to_string()).encode(&mut buf);
                self.outbox.push(buf.freeze());
            }
            Err(e) => {
                event!(warn, self, "{verb} failed: {e}");
                self.error(&store_error(&e))
            }
        }
    }
}

/// Whether word `k` (0 = the verb) of a raw `#register`/`#login`/`#password` line holds a
/// control character, which cleaning would remove: a password is checked as the client sent it.
fn word_had_control(raw: &str, k: usize) -> bool {
    raw.split(' ')
        .filter(|w| !w.is_empty())
        .nth(k)
        .is_some_and(protocol::has_control)
}

/// The protocol error a client sees for a storage failure.
fn store_error(e: &StoreError) -> ProtoError {
    match e {
        StoreError::Exists => ProtoError::name_taken(),
        StoreError::Sqlite(_) | StoreError::Closed => ProtoError::storage(),
    }
}

// After `event!`, which the account and admin verbs use too (macros are in scope below their
// definition).
mod accounts;
mod moderation;
mod room_details;
mod search;
