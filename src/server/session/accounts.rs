//! The account verbs: `#register`, `#login` and `#password`, with the throttles that keep
//! password checks (bcrypt, off the async threads) from being abused, and the step from guest
//! to logged in.

use super::{Flow, Session, State, store_error, word_had_control};
use crate::User;
use crate::config::Registration;
use crate::meters::{self, Outcome};
use crate::protocol::{ProtoError, Reply};
use crate::server::ratelimit;
use bytes::BytesMut;

impl Session {
    /// `#register`: refused while registration is closed or over its hourly limits (before
    /// any hashing), else hashed off the async threads and created through the log.
    pub(super) async fn register(&mut self, name: &str, password: &str) {
        if self.shared.config.registration == Registration::Closed {
            return self.error(&ProtoError::registration_closed());
        }
        // Before any hashing: a storm of registrations costs a hash table lookup each.
        let ip = self.peer.ip();
        let (by_ip, total) = (&self.shared.register_by_ip, &self.shared.register_total);
        let wait = by_ip.wait(&ip).max(total.wait(&()));
        if !wait.is_zero() {
            event!(info, self, "register {name} throttled");
            meters::registration(Outcome::Throttled);
            return self.error(&ProtoError::register_throttled(ratelimit::retry_after_ms(
                wait,
            )));
        }
        by_ip.charge(&ip);
        total.charge(&());
        let hash = match self.shared.auth.hash(password).await {
            Ok(h) => h,
            Err(e) => {
                event!(warn, self, "bcrypt failed: {e}");
                meters::registration(Outcome::Failed);
                return self.error(&ProtoError::hash_failed());
            }
        };
        match self.shared.log.create_user(name, hash).await {
            Ok(user) => {
                event!(info, self, "registered {}", user.name);
                meters::registration(Outcome::Ok);
                self.logged_in("register", user).await;
            }
            Err(e) => {
                event!(info, self, "register {name} refused: {e}");
                meters::registration(Outcome::Failed);
                self.error(&store_error(&e));
            }
        }
    }

    /// How long failed logins for `account` or this address keep password checks away.
    fn login_throttle(&self, account: &str) -> std::time::Duration {
        let ip = self.peer.ip();
        let by_account = self.shared.login_by_account.wait(&account.to_string());
        self.shared.login_by_ip.wait(&ip).max(by_account)
    }

    /// Counts a wrong password against `account` and this address.
    fn charge_failure(&self, account: &str) {
        self.shared.login_by_ip.charge(&self.peer.ip());
        self.shared.login_by_account.charge(&account.to_string());
    }

    /// `#password OLD NEW`: OLD is checked like a login (throttles, failure count, the same
    /// bcrypt work), NEW is hashed off the async threads and stored through the log. The
    /// user's other sessions stay logged in.
    pub(super) async fn change_password(
        &mut self,
        user: User,
        old: &str,
        new: &str,
        raw: &str,
    ) -> Flow {
        if word_had_control(raw, 2) {
            self.error(&ProtoError::password_control());
            return Flow::Continue;
        }
        let poisoned = word_had_control(raw, 1);
        let account = user.name.to_ascii_lowercase();
        let throttled = self.login_throttle(&account);
        if !throttled.is_zero() {
            self.error(&ProtoError::login_throttled(ratelimit::retry_after_ms(
                throttled,
            )));
            return self.login_failed();
        }
        let hash = match self.shared.store.find_user(&user.name).await {
            Ok(found) => found.map(|f| f.hash),
            Err(e) => {
                self.error(&store_error(&e));
                return Flow::Continue;
            }
        };
        let matches = self.shared.auth.verify(old, hash).await;
        if !matches || poisoned {
            event!(info, self, "password change refused: wrong password");
            self.charge_failure(&account);
            self.error(&ProtoError::wrong_password());
            return self.login_failed();
        }
        let hash = match self.shared.auth.hash(new).await {
            Ok(h) => h,
            Err(e) => {
                event!(warn, self, "bcrypt failed: {e}");
                self.error(&ProtoError::hash_failed());
                return Flow::Continue;
            }
        };
        match self.shared.log.set_password(user.id, hash).await {
            Ok(()) => {
                event!(info, self, "password changed");
                self.reply(Reply::Ok("password", ""));
            }
            Err(e) => self.error(&store_error(&e)),
        }
        Flow::Continue
    }

    /// `#login`; a `poisoned` password (control characters removed by cleaning) is checked
    /// like any other, for the same time and throttles, and never matches.
    pub(super) async fn login(&mut self, name: &str, password: &str, poisoned: bool) -> Flow {
        let account = name.to_ascii_lowercase();
        let throttled = self.login_throttle(&account);
        if !throttled.is_zero() {
            event!(info, self, "login {name} throttled");
            meters::login(Outcome::Throttled);
            let ms = ratelimit::retry_after_ms(throttled);
            self.error(&ProtoError::login_throttled(ms));
            return self.login_failed();
        }
        // In a cluster, the account, its password and its ban as the whole cluster has them:
        // made, changed or set on another node a moment ago.
        self.shared.log.sync().await;
        let found = match self.shared.store.find_user(name).await {
            Ok(f) => f,
            Err(e) => {
                event!(warn, self, "login lookup failed: {e}");
                meters::login(Outcome::Failed);
                self.error(&store_error(&e));
                return Flow::Continue;
            }
        };
        // A ban is told before any bcrypt work: the name alone decides it.
        if let Some(ban) = found
            .as_ref()
            .and_then(|f| f.banned.as_ref())
            .filter(|b| !b.until.is_over(chrono::Utc::now()))
        {
            event!(info, self, "login {name} refused: banned");
            meters::login(Outcome::Failed);
            self.error(&ProtoError::banned(ban));
            return Flow::Continue;
        }
        let (user, hash) = match found {
            Some(f) => (Some(f.user), Some(f.hash)),
            None => (None, None),
        };
        // Unknown users are checked against a dummy hash: same reply, same time.
        let ok = self.shared.auth.verify(password, hash).await && !poisoned;
        match user {
            Some(user) if ok => {
                event!(info, self, "login {} succeeded", user.name);
                meters::login(Outcome::Ok);
                let id = user.id;
                self.logged_in("login", user).await;
                self.tell_unread(id).await;
                Flow::Continue
            }
            _ => {
                event!(info, self, "login {name} failed");
                meters::login(Outcome::Failed);
                self.charge_failure(&account);
                self.error(&ProtoError::wrong_login());
                self.login_failed()
            }
        }
    }

    /// After a login: how many private messages arrived since a session of this user last
    /// ended, and from whom, then the newest of them (at most `--history-on-join-missed`) as
    /// `HIST` lines, with a line saying where the rest are if there are more; nothing if none.
    async fn tell_unread(&self, user: crate::UserId) {
        let unread = match self.shared.store.unread(user).await {
            Ok(u) if !u.is_empty() => u,
            Ok(_) => return,
            Err(e) => {
                event!(warn, self, "unread private messages not read: {e}");
                return;
            }
        };
        let total: u64 = unread.iter().map(|(_, n)| n).sum();
        let names: Vec<&str> = unread.iter().map(|(name, _)| name.as_str()).collect();
        let max = self.shared.config.history_on_join_missed;
        let rows = match max {
            0 => Vec::new(),
            _ => match self.shared.store.unread_messages(user, max).await {
                Ok(rows) => rows,
                Err(e) => {
                    event!(warn, self, "unread private messages not read: {e}");
                    Vec::new()
                }
            },
        };
        let mut buf = BytesMut::new();
        Reply::Info(&crate::protocol::unread_notice(total, &names)).encode(&mut buf);
        if (rows.len() as u64) < total && !rows.is_empty() {
            Reply::Info(&format!(
                "the newest {} of them follow; #privates NAME for the others",
                rows.len()
            ))
            .encode(&mut buf);
        }
        for h in &rows {
            Reply::Hist(h).encode(&mut buf);
        }
        self.outbox.push(buf.freeze());
    }

    /// Counts a failed login on this connection; closes it after `--max-login-failures`.
    fn login_failed(&mut self) -> Flow {
        self.login_failures += 1;
        let max = self.shared.config.max_login_failures;
        if self.login_failures >= max {
            self.error(&ProtoError::too_many_failures(max));
            Flow::Close("too many failed logins")
        } else {
            Flow::Continue
        }
    }

    pub(super) async fn logged_in(&mut self, verb: &str, user: User) {
        self.shared
            .rooms
            .attach(self.id, user.id, self.peer.ip(), self.outbox.clone())
            .await;
        self.reply(Reply::Ok(verb, &user.name));
        self.state = State::LoggedIn(user, None);
        // No longer a guest: its guest slots go to the next connection.
        self.guest = None;
    }
}
