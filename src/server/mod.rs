//! The accept loop: connection limit, one session task per socket, and graceful shutdown
//! (stop accepting, tell every session, let them flush, commit what is queued).

pub mod auth;
pub mod codec;
mod exporter;
pub mod live;
pub mod ratelimit;
pub mod sanctions;
mod session;
pub mod tls;

use crate::UserId;
use crate::config::Config;
use crate::log::Log;
use crate::log::cluster;
use crate::log::local::{self, WriterOptions};
use crate::meters;
use crate::protocol::ProtoError;
use crate::protocol::error::{BUSY_ADDRESS, BUSY_ADDRESS_GUESTS, BUSY_GUESTS, BUSY_SERVER};
use crate::protocol::sanction::Until;
use crate::rooms::Rooms;
use crate::rooms::Sweep;
use crate::store::{Database, Store, StoreError};
use auth::Auth;
use live::Live;
use log::{info, warn};
use ratelimit::Limiter;
use sanctions::Sanctions;
use socket2::{SockRef, TcpKeepalive};
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tls::Tls;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long sessions get to say goodbye and flush after shutdown starts.
pub const SESSION_GRACE: Duration = Duration::from_secs(3);
/// A log line that a flood could repeat (a refused connection): at most one a second, the
/// next one saying how many were left out.
#[derive(Debug, Default)]
struct Throttled {
    last: Option<std::time::Instant>,
    left_out: u64,
}

impl Throttled {
    /// `Some(suffix)` if this one is to be logged (the suffix counts those left out since).
    fn admit(&mut self) -> Option<String> {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(match std::mem::take(&mut self.left_out) {
            0 => String::new(),
            n => format!(" ({n} more refused in the last second, not logged)"),
        })
    }
}

/// Refused connections being told why at once; more are closed without the line.
const REFUSALS_IN_FLIGHT: usize = 1024;
/// How long the writer gets to commit what is queued after the sessions are gone.
const STORE_GRACE: Duration = Duration::from_millis(1500);

/// Failed logins a name or an address may have in a burst before logins are throttled.
pub const LOGIN_FAILURE_BURST: f64 = 10.0;
/// Failed logins forgiven per second, per name and per address, once throttled.
pub const LOGIN_FAILURE_REFILL_PER_SEC: f64 = 0.2;
/// TCP keepalive: idle time before probing, and time between probes. A peer that vanished
/// (half-open connection) is noticed within about a minute and a half.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// What every session shares.
pub struct Shared {
    /// Validated settings.
    pub config: Config,
    /// The room actor.
    pub rooms: Rooms,
    /// The ordered log: every write goes through it.
    pub log: Log,
    /// The store's read side: logins and history.
    pub store: Store,
    /// bcrypt, off the async threads.
    pub auth: Auth,
    /// Per-user message rate limit.
    pub message_rate: Limiter<UserId>,
    /// Failed logins per client address.
    pub login_by_ip: Limiter<IpAddr>,
    /// Failed logins per account name (lower case).
    pub login_by_account: Limiter<String>,
    /// New accounts per client address.
    pub register_by_ip: Limiter<IpAddr>,
    /// New accounts in total.
    pub register_total: Limiter<()>,
    /// When the daemon started serving.
    pub started: std::time::Instant,
    /// Connection slots; those taken are the open connections.
    slots: Arc<Semaphore>,
    /// Open connections on the TLS port.
    tls_open: AtomicUsize,
    /// Open connections per client address (`--max-per-ip`).
    per_ip: PerIp,
    /// Guest slots (`--max-guests`), when that limit is on.
    guests: Option<Arc<Semaphore>>,
    /// Guests per client address (`--max-guests-per-ip`).
    guests_per_ip: Arc<PerIp>,
    /// Bans and mutes in force.
    pub sanctions: Sanctions,
    /// Every live session, for shutdown and the deadline sweep.
    pub live: Live,
}

impl Shared {
    /// `#stats`'s numbers and the few more `/metrics` reports, read at once (one source). No
    /// database read: the stored count is the log's.
    pub async fn snapshot(&self) -> Snapshot {
        let rooms = self.rooms.stats().await.unwrap_or_default();
        let messages = self.log.stored();
        let stats = crate::protocol::Stats {
            uptime: self.started.elapsed().as_secs(),
            connections: self.connections(),
            sessions: rooms.sessions,
            users: rooms.users,
            rooms: rooms.rooms,
            messages,
            delivered_per_sec: rooms.delivered_per_sec,
            sendq_max: rooms.sendq_max,
            writer_queue: self.log.queued(),
            actor_queue: rooms.inbox,
        };
        Snapshot {
            // Counted after the total: never more than it.
            tls_connections: self.tls_open.load(Ordering::Relaxed).min(stats.connections),
            delivered: rooms.delivered,
            stats,
        }
    }

    /// Open connections, guests included.
    pub fn connections(&self) -> usize {
        self.config.max_connections - self.slots.available_permits()
    }

    /// Gives back what a connection's [`Admission`] took: its slot, its count for its address,
    /// and its count as a TLS connection.
    pub(crate) fn release(&self, ip: IpAddr, tls: bool) {
        self.per_ip.uncount(ip);
        if tls {
            self.tls_open.fetch_sub(1, Ordering::Relaxed);
        }
        self.slots.add_permits(1);
    }

    /// Milliseconds since the daemon started: the clock of the sessions' deadlines.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The deadline `d` from now, on that clock.
    pub fn deadline_in(&self, d: Duration) -> u64 {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.now_ms().saturating_add(ms)
    }

    /// Re-reads the bans and mutes from the store and closes every session a ban in force
    /// covers (an account's sessions; a network's, but for admins'), each told `ERR banned`.
    /// Every ban, not only new ones: a login that raced a ban is closed at the next read.
    /// Returns how many sessions it closed.
    pub async fn refresh_sanctions(&self) -> Result<usize, StoreError> {
        let now = Until::now_stored();
        let snapshot = self.store.sanctions(now).await?;
        let line = |ban: &crate::protocol::sanction::Ban| ProtoError::banned(ban).to_bytes();
        let mut sweep = Sweep {
            users: snapshot.banned.iter().map(|(u, b)| (*u, line(b))).collect(),
            networks: snapshot
                .networks
                .iter()
                .map(|(n, b)| (*n, line(b)))
                .collect(),
            spared: Vec::new(),
        };
        self.sanctions.replace(snapshot);
        if sweep.is_empty() {
            return Ok(0);
        }
        if !sweep.networks.is_empty() {
            sweep.spared = self.store.admins().await?;
        }
        Ok(self.rooms.sweep(sweep).await)
    }
}

/// Tells the sessions whose deadline passed to stop, every [`live::SWEEP`], until `shutdown`.
async fn sweep_deadlines(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(live::SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => shared.live.sweep(shared.now_ms()),
        }
    }
}

/// Re-reads the bans and mutes every [`sanctions::REFRESH`] until `shutdown`: the offline
/// tool's bans close their sessions within that time, and bans that ended stop counting.
async fn refresh_sanctions(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(sanctions::REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let _held = shared.sanctions.refreshing.lock().await;
        match shared.refresh_sanctions().await {
            Ok(0) => {}
            Ok(n) => info!("closed {n} sessions of banned accounts or networks"),
            Err(e) => warn!("reading bans and mutes failed: {e}"),
        }
    }
}

/// Live connections per client address, for `--max-per-ip` (and guests, `--max-guests-per-ip`).
#[derive(Debug)]
struct PerIp {
    max: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped.
#[derive(Debug)]
struct IpSlot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    /// Counts a connection from `ip`; false if the address has its fill.
    fn count(&self, ip: IpAddr) -> bool {
        if self.max > 0 {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(ip).or_insert(0);
            if *n >= self.max {
                return false;
            }
            *n += 1;
        }
        true
    }

    /// Uncounts a connection from `ip`.
    fn uncount(&self, ip: IpAddr) {
        if self.max == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    fn take(per_ip: &Arc<PerIp>, ip: IpAddr) -> Option<IpSlot> {
        per_ip.count(ip).then(|| IpSlot {
            per_ip: per_ip.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.per_ip.uncount(self.ip);
    }
}

/// `#stats`'s numbers and what else `/metrics` reports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `#stats`'s.
    pub stats: crate::protocol::Stats,
    /// Of the open connections, those on the TLS port.
    pub tls_connections: usize,
    /// Lines delivered to sessions, ever.
    pub delivered: u64,
}

/// What a connection holds for its whole life, until it is closed: its connection slot, its
/// count for its address, and its count as a TLS connection if it is one. Given back when
/// dropped, unless a session took it over ([`Admission::hand_over`]): the session knows its
/// address and port already and gives it back itself ([`Shared::release`]), so an idle
/// connection carries nothing for it.
pub struct Admission {
    /// `None` once handed over.
    shared: Option<Arc<Shared>>,
    ip: IpAddr,
    tls: bool,
}

impl Admission {
    /// Takes a connection's counts from `ip`, its slot being `permit`; `None` if the address
    /// has its fill.
    fn take(
        shared: &Arc<Shared>,
        permit: tokio::sync::OwnedSemaphorePermit,
        ip: IpAddr,
        tls: bool,
    ) -> Option<Admission> {
        if !shared.per_ip.count(ip) {
            return None;
        }
        // Given back by `Shared::release`, with the other counts.
        permit.forget();
        if tls {
            shared.tls_open.fetch_add(1, Ordering::Relaxed);
        }
        Some(Admission {
            shared: Some(shared.clone()),
            ip,
            tls,
        })
    }

    /// The session takes over: it calls [`Shared::release`] with the same address when it ends.
    pub(crate) fn hand_over(mut self) {
        self.shared = None;
    }
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("ip", &self.ip)
            .field("tls", &self.tls)
            .field("handed_over", &self.shared.is_none())
            .finish()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.release(self.ip, self.tls);
        }
    }
}

/// What an accepted connection is handed: its admission, and its guest pass until it logs in.
#[derive(Debug)]
pub struct Passes {
    /// Held until the connection is closed.
    pub admission: Admission,
    /// Held until it logs in.
    pub guest: GuestPass,
}

/// What a connection holds while it has not logged in: a guest slot, overall and for its
/// address. Dropped at login, so guests cannot take the room logged-in users need.
#[derive(Debug)]
pub struct GuestPass {
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    _per_ip: IpSlot,
}

impl Shared {
    /// A guest pass for a new connection from `ip`, or why there is none.
    fn guest_pass(&self, ip: IpAddr) -> Result<GuestPass, ProtoError> {
        let slot = match &self.guests {
            None => None,
            Some(g) => Some(
                g.clone()
                    .try_acquire_owned()
                    .map_err(|_| ProtoError::busy(BUSY_GUESTS))?,
            ),
        };
        let per_ip = PerIp::take(&self.guests_per_ip, ip)
            .ok_or_else(|| ProtoError::busy(BUSY_ADDRESS_GUESTS))?;
        Ok(GuestPass {
            _slot: slot,
            _per_ip: per_ip,
        })
    }
}

/// A limiter of `n` a hour: a burst of `n`, refilled evenly over the hour; 0 is no limit.
fn per_hour<K: std::hash::Hash + Eq + Clone>(n: u32) -> Limiter<K> {
    Limiter::new(n.into(), f64::from(n) / 3600.0)
}

/// What the daemon listens on: the plain port, the TLS port, or both.
pub struct Listeners {
    /// Plain TCP (`--listen`), unless `--listen none`.
    pub plain: Option<TcpListener>,
    /// TLS (`--tls-listen`), with its reloadable certificate.
    pub tls: Option<(TcpListener, Arc<Tls>)>,
    /// Prometheus's `/metrics` (`--metrics-listen`), if on.
    pub metrics: Option<TcpListener>,
}

/// The next connection on `listener`; never, if there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves `listeners` until `shutdown` is cancelled, then winds down: sessions are told
/// `INFO server shutting down`, get [`SESSION_GRACE`] to flush, and the store commits what is
/// queued. Takes already bound listeners so tests and scripts can bind port 0.
pub async fn run(
    listeners: Listeners,
    config: Config,
    db: Database,
    auth: Auth,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Before anything records: with no recorder, every metric is a no-op.
    let recorder = match &listeners.metrics {
        Some(_) => Some(exporter::install().map_err(std::io::Error::other)?),
        None => None,
    };
    // A cluster node's incarnation: new at every start, the high half of its sessions' ids.
    let epoch = crate::Incarnation::new(config.cluster.is_some());
    let rooms = Rooms::spawn(epoch.clone());
    let options = WriterOptions {
        linger: config.commit_linger,
        missed_max: config.history_on_join_missed,
        ..WriterOptions::default()
    };
    let (store, writer) = db.split();
    let log = match config.cluster.clone() {
        None => local::start(writer, rooms.clone(), options)?,
        Some(cluster) => cluster::start(writer, rooms.clone(), options, cluster, epoch.clone())
            .await
            .map_err(std::io::Error::other)?,
    };
    let limit = Arc::new(Semaphore::new(config.max_connections));
    let shared = Arc::new(Shared {
        message_rate: Limiter::new(config.rate_burst.into(), config.rate_per_sec.into()),
        login_by_ip: Limiter::new(LOGIN_FAILURE_BURST, LOGIN_FAILURE_REFILL_PER_SEC),
        login_by_account: Limiter::new(LOGIN_FAILURE_BURST, LOGIN_FAILURE_REFILL_PER_SEC),
        register_by_ip: per_hour(config.register_per_ip_per_hour),
        register_total: per_hour(config.register_per_hour),
        started: std::time::Instant::now(),
        slots: limit.clone(),
        tls_open: AtomicUsize::new(0),
        per_ip: PerIp {
            max: config.max_per_ip,
            counts: Mutex::new(HashMap::new()),
        },
        guests: (config.max_guests > 0).then(|| Arc::new(Semaphore::new(config.max_guests))),
        guests_per_ip: Arc::new(PerIp {
            max: config.max_guests_per_ip,
            counts: Mutex::new(HashMap::new()),
        }),
        sanctions: Sanctions::default(),
        live: Live::default(),
        config,
        rooms,
        log: log.clone(),
        store,
        auth,
    });
    // Bans are in force before the first connection is accepted.
    if let Err(e) = shared.refresh_sanctions().await {
        warn!("reading bans and mutes failed: {e}");
    }
    let tracker = TaskTracker::new();
    tracker.spawn(refresh_sanctions(shared.clone(), shutdown.clone()));
    tracker.spawn(sweep_deadlines(shared.clone(), shutdown.clone()));
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    let mut refusal_log = Throttled::default();
    let mut next_id: u64 = 0;
    let Listeners {
        plain,
        tls,
        metrics,
    } = listeners;
    if let (Some(l), Some(recorder)) = (metrics, recorder) {
        exporter::announce(&l);
        tracker.spawn(exporter::serve(
            l,
            recorder,
            shared.clone(),
            shutdown.clone(),
        ));
    }
    let (tls_listener, tls) = match tls {
        Some((l, t)) => (Some(l), Some(t)),
        None => (None, None),
    };
    loop {
        let (accepted, is_tls) = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = accept(plain.as_ref()) => (a, false),
            a = accept(tls_listener.as_ref()) => (a, true),
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        next_id += 1;
        let id = (u64::from(epoch.get()) << 32) | (next_id & u64::from(u32::MAX));
        let _ = stream.set_nodelay(true);
        let keepalive = TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL);
        let _ = SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        // A banned network is refused before anything else: no slot, no handshake.
        let banned = shared.sanctions.network_ban(peer.ip());
        let is_banned = banned.is_some();
        let admitted = match (banned, limit.clone().try_acquire_owned()) {
            (Some(ban), _) => Err(ProtoError::banned(&ban)),
            (None, Err(_)) => Err(ProtoError::busy(BUSY_SERVER)),
            (None, Ok(permit)) => match Admission::take(&shared, permit, peer.ip(), is_tls) {
                None => Err(ProtoError::busy(BUSY_ADDRESS)),
                Some(admission) => shared
                    .guest_pass(peer.ip())
                    .map(|guest| Passes { admission, guest }),
            },
        };
        match admitted {
            // The handshake counts toward both limits: the slot is taken before it starts.
            Ok(passes) => {
                let shared = shared.clone();
                // The session's own future is the task: no wrapper around it keeping a second
                // copy of its arguments in every idle connection.
                match tls.as_ref().filter(|_| is_tls) {
                    None => tracker.spawn(session::run(stream, id, peer, shared, passes)),
                    Some(tls) => tracker.spawn(session::run_tls(
                        stream,
                        tls.acceptor(),
                        id,
                        peer,
                        shared,
                        passes,
                    )),
                };
            }
            Err(why) => {
                meters::refused(is_banned);
                if let Some(suppressed) = refusal_log.admit() {
                    info!(conn = id, peer:% = peer; "refused: {}{suppressed}", why.text);
                }
                // Bounded like everything else: in a flood of refused connections (a banned
                // network reconnecting, say) those beyond the bound are closed without a word.
                let Ok(refusal) = refusals.clone().try_acquire_owned() else {
                    drop(stream);
                    continue;
                };
                tracker.spawn(async move {
                    let _refusal = refusal;
                    let line = why.to_bytes();
                    let _ = tokio::time::timeout(SESSION_GRACE, async {
                        let _ = stream.write_all(&line).await;
                        let _ = stream.shutdown().await;
                        // Wait for the client to close, so unread input does not turn our
                        // close into a reset that could swallow the line.
                        let mut sink = [0u8; 512];
                        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                    })
                    .await;
                });
            }
        }
    }
    drop((plain, tls_listener));
    info!("shutting down: no longer accepting connections");
    shared.live.stop_all();
    tracker.close();
    if tokio::time::timeout(SESSION_GRACE, tracker.wait())
        .await
        .is_err()
    {
        warn!("shutting down: some sessions did not finish in time");
    }
    if tokio::time::timeout(STORE_GRACE, log.stop()).await.is_err() {
        warn!("shutting down: the store did not finish committing and checkpointing in time");
    }
    info!("shut down");
    Ok(())
}
