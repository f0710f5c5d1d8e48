//! linechat-bench: the load generator behind docs/performance.md. It speaks linechat or IRC,
//! so the same scenarios run against linechatd, ngircd and InspIRCd (bench/peers.sh runs all
//! three and prints one table).
//!
//! Every payload carries its sender, sequence number and send time; every receiver checks
//! order, loss and duplicates and records latency. Server CPU comes from /proc/PID/task/*/schedstat
//! (nanoseconds on CPU) over the send phase; memory from /proc/PID/status (VmRSS).

use argh::FromArgs;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use wire::{Rx, Tx};

mod search;
mod wire;
use tokio::sync::Barrier;

/// linechat-bench: load scenarios against linechatd or an IRC server
#[derive(FromArgs, Debug)]
struct Args {
    /// protocol: linechat or irc (default linechat)
    #[argh(option, default = "String::from(\"linechat\")")]
    proto: String,
    /// server address (default 127.0.0.1:7878); for F1, F2, L1 and A1 a comma-separated
    /// list spreads the clients over several nodes of one cluster, client i on address
    /// i mod n (the senders too)
    #[argh(option, default = "String::from(\"127.0.0.1:7878\")")]
    addr: String,
    /// scenario: f1, f2, l1, i1, a1, h1, h2, h2s, h3, store, or custom (default custom)
    #[argh(option, default = "String::from(\"custom\")")]
    scenario: String,
    /// connected clients (custom)
    #[argh(option, default = "100")]
    clients: usize,
    /// how many of them send (custom)
    #[argh(option, default = "10")]
    senders: usize,
    /// messages per sender (custom; 0 with --rate means: for --duration)
    #[argh(option, default = "2000")]
    messages: usize,
    /// messages per second per sender; 0 = as fast as the window allows (custom)
    #[argh(option, default = "0.0")]
    rate: f64,
    /// seconds to send at --rate (custom)
    #[argh(option, default = "10.0")]
    duration: f64,
    /// unacknowledged messages a sender may have in flight (default 32)
    #[argh(option, default = "32")]
    window: usize,
    /// idle connections to hold (i1; default 10000)
    #[argh(option, default = "IDLE_CONNECTIONS")]
    idle: usize,
    /// clients per room (i1; default 100)
    #[argh(option, default = "100")]
    room_size: usize,
    /// the server's pid, for CPU and memory figures
    #[argh(option)]
    pid: Option<u32>,
    /// another process whose CPU counts with the server's in F1, F2, L1 and A1 (the other
    /// nodes of a cluster and its NATS server); repeatable
    #[argh(option)]
    also_pid: Vec<u32>,
    /// how many times to run the scenario (medians are reported)
    #[argh(option, default = "1")]
    runs: usize,
    /// name prefix for accounts and nicks (default from the clock)
    #[argh(option)]
    prefix: Option<String>,
    /// password for the linechat accounts (default bench-password)
    #[argh(option, default = "String::from(\"bench-password\")")]
    password: String,
    /// database file (h1, h2, h3: filled before the daemon starts; store: created)
    #[argh(option)]
    db: Option<String>,
    /// messages to put in the h1 and h2 database, or per room in the h3 one (default 1000000)
    #[argh(option, default = "1_000_000")]
    fill: usize,
    /// runtime threads for the clients (default 1: the load generator then uses one core and
    /// leaves the other to the server; 2 lowers its own latency floor at moderate load)
    #[argh(option, default = "1")]
    threads: usize,
    /// speak TLS to --addr (a linechatd TLS port), verifying its certificate against --tls-ca
    #[argh(switch)]
    tls: bool,
    /// with --tls: the PEM file of the certificate to trust (default: the system's roots)
    #[argh(option)]
    tls_ca: Option<std::path::PathBuf>,
    /// with --tls: the name the certificate must carry (default localhost)
    #[argh(option, default = "String::from(\"localhost\")")]
    tls_name: String,
    /// label printed with the results
    #[argh(option, default = "String::new()")]
    label: String,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Linechat,
    Irc,
}

/// One load shape.
#[derive(Clone, Debug)]
struct Load {
    clients: usize,
    senders: usize,
    messages: usize,
    rate: f64,
    duration: f64,
    window: usize,
}

/// What one run measured.
#[derive(Default, Debug, Clone)]
struct Outcome {
    deliveries: u64,
    expected: u64,
    lost: u64,
    duplicates: u64,
    out_of_order: u64,
    seconds: f64,
    cpu_ns: u64,
    latencies_us: Vec<u64>,
}

fn now_us(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// The server's CPU time so far: per thread from `/proc/PID/task/*/schedstat` (nanoseconds),
/// and for the whole process from `/proc/PID/stat` (clock ticks, but it keeps the time of
/// threads that have exited, such as idle blocking-pool threads).
#[derive(Debug, Default, Clone)]
struct CpuSample {
    threads: std::collections::HashMap<u64, u64>,
    process_ns: u64,
}

impl CpuSample {
    fn take(pid: u32) -> CpuSample {
        let mut threads = std::collections::HashMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in dir.flatten() {
                let tid = t.file_name().to_string_lossy().parse::<u64>().ok();
                let ns = std::fs::read_to_string(t.path().join("schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok());
                if let (Some(tid), Some(ns)) = (tid, ns) {
                    threads.insert(tid, ns);
                }
            }
        }
        // utime and stime are fields 14 and 15; the command name (field 2) may hold spaces.
        let process_ns = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                let rest = s.rsplit_once(')')?.1;
                let f: Vec<&str> = rest.split_whitespace().collect();
                let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
                Some(ticks * 10_000_000) // USER_HZ is 100 on Linux
            })
            .unwrap_or(0);
        CpuSample {
            threads,
            process_ns,
        }
    }

    /// CPU nanoseconds from `self` to `later`: the precise per-thread sum, unless threads
    /// that have since exited took time with them (the process total, 10 ms resolution, is
    /// then clearly larger, and is used).
    fn until(&self, later: &CpuSample) -> u64 {
        const TICKS_SLACK_NS: u64 = 50_000_000;
        let sum = |m: &std::collections::HashMap<u64, u64>| m.values().sum::<u64>();
        let threads = sum(&later.threads).saturating_sub(sum(&self.threads));
        let process = later.process_ns.saturating_sub(self.process_ns);
        let lost_thread = !self.threads.keys().all(|t| later.threads.contains_key(t));
        if lost_thread || process > threads + TICKS_SLACK_NS {
            process
        } else {
            threads
        }
    }
}

/// Resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

struct Client {
    reader: BufReader<Rx>,
    writer: Tx,
    buf: Vec<u8>,
}

impl Client {
    /// Connects as client `i` (see [`wire::connect`]).
    async fn open(addr: SocketAddr, i: usize) -> std::io::Result<Client> {
        let (r, w) = wire::connect(addr, i).await?;
        Ok(Client {
            reader: BufReader::with_capacity(64 * 1024, r),
            writer: w,
            buf: Vec::with_capacity(256),
        })
    }

    async fn line(&mut self) -> std::io::Result<&str> {
        self.buf.clear();
        if self.reader.read_until(b'\n', &mut self.buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        std::str::from_utf8(&self.buf).map_err(|_| std::io::ErrorKind::InvalidData.into())
    }

    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
    }

    /// Reads until a line starting with one of `wanted`; answers IRC PINGs on the way.
    async fn until(&mut self, wanted: &[&str]) -> std::io::Result<String> {
        loop {
            let l = self.line().await?.to_string();
            if let Some(token) = l.strip_prefix("PING ") {
                let pong = format!("PONG {token}");
                self.send(&pong).await?;
                continue;
            }
            if wanted.iter().any(|w| l.starts_with(w) || l.contains(w)) {
                return Ok(l);
            }
            if l.starts_with("ERR ") || l.starts_with("ERROR") {
                return Err(std::io::Error::other(l));
            }
        }
    }
}

/// Connects and logs in client `i` and puts it in `room`. linechat accounts are shared by
/// groups of clients (sessions of one user), so setup does not cost a bcrypt hash per client.
async fn join(
    proto: Proto,
    addr: SocketAddr,
    i: usize,
    prefix: &str,
    password: &str,
    room: &str,
) -> std::io::Result<Client> {
    let mut c = Client::open(addr, i).await?;
    match proto {
        Proto::Linechat => {
            let user = format!("{prefix}u{}", i % 16);
            c.send(&format!("#login {user} {password}")).await?;
            let l = c.until(&["OK login", "ERR auth"]).await;
            match l {
                Ok(l) if l.starts_with("OK") => {}
                _ => {
                    c.send(&format!("#register {user} {password}")).await?;
                    c.until(&["OK register", "ERR exists"]).await.or_else(|e| {
                        if e.to_string().contains("exists") {
                            Ok(String::new())
                        } else {
                            Err(e)
                        }
                    })?;
                    // Lost a race with another client of the same account: log in instead.
                    c.send(&format!("#login {user} {password}")).await?;
                    let _ = c.until(&["OK login", "ERR usage"]).await;
                }
            }
            c.send(&format!("#join {room}")).await?;
            c.until(&["OK join"]).await?;
            c.send("#ping").await?;
            c.until(&["PONG"]).await?;
        }
        Proto::Irc => {
            let nick = format!("{prefix}{i}");
            c.send(&format!("NICK {nick}")).await?;
            c.send(&format!("USER {nick} 0 * :bench")).await?;
            c.until(&[" 001 "]).await?;
            c.send(&format!("JOIN #{room}")).await?;
            c.until(&[" 366 "]).await?;
        }
    }
    Ok(c)
}

/// Pings every client and waits for the answer: whatever the setup made the server send
/// (JOIN lines, NAMES lists) has then been read.
async fn settle(proto: Proto, clients: &mut [Client]) -> std::io::Result<()> {
    let ping = match proto {
        Proto::Linechat => "#ping",
        Proto::Irc => "PING :sync",
    };
    for c in clients.iter_mut() {
        c.send(ping).await?;
        c.until(&["PONG"]).await?;
    }
    Ok(())
}

/// Clients connecting at once during setup.
const JOIN_BATCH: usize = 20;

/// [`join`], tried three times: some servers reset a connection now and then under a burst
/// of connects, which is not what is being measured.
async fn join_retrying(
    proto: Proto,
    addr: SocketAddr,
    i: usize,
    prefix: &str,
    password: &str,
    room: &str,
) -> std::io::Result<Client> {
    let mut last = None;
    for attempt in 0..3 {
        match join(proto, addr, i, prefix, password, room).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("join failed")))
}

/// The payload: `b SENDER SEQ MICROS`, padded to a realistic chat line.
fn payload(sender: usize, seq: u64, t: u64) -> String {
    format!("b {sender} {seq} {t} the quick brown fox jumps over the lazy dog")
}

fn parse_payload(text: &str) -> Option<(usize, u64, u64)> {
    let mut it = text.strip_prefix("b ")?.split(' ');
    Some((
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    ))
}

/// The chat text of a delivered line, if it is one.
fn chat_text(proto: Proto, line: &str) -> Option<&str> {
    match proto {
        // MSG ROOM NAME TEXT
        Proto::Linechat => line.strip_prefix("MSG ")?.splitn(3, ' ').nth(2),
        // :nick!user@host PRIVMSG #room :TEXT
        Proto::Irc => line
            .split_once(" PRIVMSG ")?
            .1
            .split_once(" :")
            .map(|x| x.1),
    }
}

/// Per-receiver bookkeeping.
#[derive(Default)]
struct Tally {
    next: Vec<u64>,
    deliveries: u64,
    duplicates: u64,
    out_of_order: u64,
    latencies: Vec<u64>,
}

impl Tally {
    fn record(&mut self, sender: usize, seq: u64, sent: u64, now: u64) {
        if self.next.len() <= sender {
            self.next.resize(sender + 1, 0);
        }
        let want = self.next[sender];
        if seq < want {
            self.duplicates += 1;
            return;
        }
        if seq > want {
            self.out_of_order += 1;
        }
        self.next[sender] = seq + 1;
        self.deliveries += 1;
        self.latencies.push(now.saturating_sub(sent));
    }
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One fan-out run: all clients join one room, senders send, everyone counts. `started` (if
/// any) is told when the send phase begins, after every client has joined.
async fn fanout(
    proto: Proto,
    addrs: &[SocketAddr],
    load: &Load,
    prefix: &str,
    password: &str,
    pids: &[u32],
    started: Option<tokio::sync::oneshot::Sender<()>>,
) -> std::io::Result<Outcome> {
    let room = format!("{prefix}room");
    let mut clients = Vec::with_capacity(load.clients);
    for chunk in (0..load.clients).collect::<Vec<_>>().chunks(JOIN_BATCH) {
        let joins = chunk.iter().map(|&i| {
            let addr = addrs[i % addrs.len()];
            join_retrying(proto, addr, i, prefix, password, &room)
        });
        for c in futures_util::future::join_all(joins).await {
            clients.push(c.map_err(|e| std::io::Error::other(format!("joining: {e}")))?);
        }
    }
    // Let the joins' own traffic (JOIN lines) drain before measuring.
    settle(proto, &mut clients).await?;
    let epoch = Instant::now();
    let per_sender: u64 = if load.rate > 0.0 && load.messages == 0 {
        (load.rate * load.duration).round() as u64
    } else {
        load.messages as u64
    };
    let total = per_sender * load.senders as u64;
    let per_message = match proto {
        Proto::Linechat => load.clients as u64,
        Proto::Irc => load.clients as u64 - 1, // IRC does not echo to the sender
    };
    let expected = total * per_message;
    let start = Arc::new(Barrier::new(load.clients + 1));
    // Fixed-rate senders are written by one thread of their own (see [`pace`]).
    let pacer = if load.rate > 0.0 && load.senders > 0 {
        let (tx, rx) = std::sync::mpsc::channel();
        let (load, room) = (load.clone(), room.clone());
        std::thread::Builder::new()
            .name("bench-pacer".into())
            .spawn(move || pace(rx, &load, proto, &room, epoch, per_sender))?;
        Some(tx)
    } else {
        None
    };
    let delivered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let start = start.clone();
        let delivered = delivered.clone();
        let is_sender = i < load.senders;
        let load = load.clone();
        let room = room.clone();
        let pacer = pacer.clone();
        tasks.push(tokio::spawn(async move {
            let Client {
                reader, mut writer, ..
            } = c;
            start.wait().await;
            let mut tally = Tally::default();
            // Each client receives every message (but its own, on IRC).
            let own = if proto == Proto::Irc && is_sender {
                per_sender
            } else {
                0
            };
            let want = total - own;
            tally.latencies.reserve(want as usize);
            let acked = Arc::new(AtomicU64::new(0));
            let acked_r = acked.clone();
            let notify = Arc::new(tokio::sync::Notify::new());
            let notify_r = notify.clone();
            let send = async move {
                if !is_sender {
                    return Ok::<_, std::io::Error>(writer);
                }
                if let Some(pacer) = pacer {
                    let (done, writer_back) = tokio::sync::oneshot::channel();
                    let paced = Paced {
                        i,
                        writer,
                        acked,
                        done,
                    };
                    pacer
                        .send(paced)
                        .map_err(|_| std::io::Error::other("pacer gone"))?;
                    return writer_back
                        .await
                        .map_err(|_| std::io::Error::other("pacer gone"))?;
                }
                // As fast as the window allows: never more than `window` unacknowledged, and
                // what the window allows goes in one write.
                let mut out = Vec::with_capacity(4096);
                let mut seq = 0u64;
                while seq < per_sender {
                    loop {
                        let woken = notify.notified();
                        tokio::pin!(woken);
                        woken.as_mut().enable();
                        if seq - acked.load(Ordering::Acquire) < load.window as u64 {
                            break;
                        }
                        woken.await;
                    }
                    out.clear();
                    let room_in_window = load.window as u64 - (seq - acked.load(Ordering::Acquire));
                    let burst = room_in_window.min(per_sender - seq);
                    for _ in 0..burst {
                        encode_message(proto, &room, i, seq, now_us(epoch), &mut out);
                        seq += 1;
                    }
                    writer.write_all(&out).await?;
                }
                if proto == Proto::Irc {
                    writer
                        .write_all(format!("PING :{seq}\r\n").as_bytes())
                        .await?;
                }
                Ok(writer)
            };
            let recv = async move {
                let mine = if is_sender { per_sender } else { 0 };
                let mut on_line = |line: &[u8], now: u64| {
                    let line = std::str::from_utf8(line).unwrap_or("").trim_end();
                    if let Some(text) = chat_text(proto, line) {
                        if let Some((s, seq, t)) = parse_payload(text) {
                            tally.record(s, seq, t, now);
                            delivered.fetch_add(1, Ordering::Relaxed);
                            if s == i && proto == Proto::Linechat {
                                acked_r.store(seq + 1, Ordering::Release);
                                notify_r.notify_one();
                            }
                        }
                    } else if let Some(rest) = line.split_once(" PONG ") {
                        // IRC: a PONG acknowledges the messages sent before its PING.
                        if let Some(n) = rest.1.rsplit(':').next().and_then(|n| n.parse().ok()) {
                            acked_r.store(n, Ordering::Release);
                            notify_r.notify_one();
                        }
                    }
                    tally.deliveries + tally.duplicates < want
                        || acked_r.load(Ordering::Acquire) < mine
                };
                // Whole reads, split into lines here: the lines of one read arrived together
                // and share one clock reading, and the reader costs little per line (it shares
                // the machine with the server).
                let mut buf = vec![0u8; 64 * 1024];
                let mut have = reader.buffer().len();
                buf[..have].copy_from_slice(reader.buffer());
                let mut sock = reader.into_inner();
                let mut now = now_us(epoch);
                let mut more = want > 0 || mine > 0;
                while more {
                    let mut start = 0;
                    while more && let Some(n) = buf[start..have].iter().position(|&b| b == b'\n') {
                        more = on_line(&buf[start..start + n], now);
                        start += n + 1;
                    }
                    if !more {
                        break;
                    }
                    buf.copy_within(start..have, 0);
                    have -= start;
                    if have == buf.len() {
                        return Err(std::io::Error::other("line longer than 64 KiB"));
                    }
                    let n = sock.read(&mut buf[have..]).await?;
                    if n == 0 {
                        break;
                    }
                    have += n;
                    now = now_us(epoch);
                }
                Ok::<_, std::io::Error>(tally)
            };
            let (w, t) = tokio::join!(send, recv);
            Ok::<_, std::io::Error>((w?, t?))
        }));
    }
    // The pacer starts once every sender is handed over and ends with the last message.
    drop(pacer);
    let cpu0: Vec<CpuSample> = pids.iter().map(|&p| CpuSample::take(p)).collect();
    let t0 = Instant::now();
    start.wait().await;
    if let Some(started) = started {
        let _ = started.send(());
    }
    let mut outcome = Outcome {
        expected,
        ..Outcome::default()
    };
    let mut writers = Vec::new();
    let deadline = Duration::from_secs_f64((load.duration * 3.0).max(60.0));
    for t in tasks {
        match tokio::time::timeout(deadline, t).await {
            Ok(Ok(Ok((w, tally)))) => {
                writers.push(w);
                outcome.deliveries += tally.deliveries;
                outcome.duplicates += tally.duplicates;
                outcome.out_of_order += tally.out_of_order;
                outcome.latencies_us.extend(tally.latencies);
            }
            Ok(Ok(Err(e))) => eprintln!("client failed: {e}"),
            _ => eprintln!("client timed out or panicked"),
        }
    }
    outcome.seconds = t0.elapsed().as_secs_f64();
    outcome.cpu_ns = pids
        .iter()
        .zip(&cpu0)
        .map(|(&p, before)| before.until(&CpuSample::take(p)))
        .sum();
    outcome.lost = outcome.expected.saturating_sub(outcome.deliveries);
    outcome.latencies_us.sort_unstable();
    drop(writers);
    Ok(outcome)
}

/// Appends message `seq` of sender `i`, sent at `t`, as the protocol's chat line; on IRC,
/// which does not echo, every 16th is followed by a PING whose PONG acknowledges them.
fn encode_message(proto: Proto, room: &str, i: usize, seq: u64, t: u64, out: &mut Vec<u8>) {
    let p = payload(i, seq, t);
    match proto {
        Proto::Linechat => out.extend_from_slice(p.as_bytes()),
        Proto::Irc => out.extend_from_slice(format!("PRIVMSG #{room} :{p}").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    if proto == Proto::Irc && (seq + 1).is_multiple_of(16) {
        out.extend_from_slice(format!("PING :{}\r\n", seq + 1).as_bytes());
    }
}

/// A fixed-rate sender handed to the pacer: its socket, its acknowledgements, and where the
/// socket goes back once every message is written.
struct Paced {
    i: usize,
    writer: Tx,
    acked: Arc<AtomicU64>,
    done: tokio::sync::oneshot::Sender<std::io::Result<Tx>>,
}

/// Writes every fixed-rate sender's messages, each when it is due (sender *i* of *S* starts
/// *i/S* of an interval late), from a thread of its own that sleeps until then (`nanosleep`,
/// not a millisecond timer wheel): on the receivers' thread, timers round to the millisecond
/// and fire late while it reads a fan-out, and evenly spread senders bunch up. The send time
/// in each payload is read as it is written. Starts once every sender has been handed over.
fn pace(
    senders: std::sync::mpsc::Receiver<Paced>,
    load: &Load,
    proto: Proto,
    room: &str,
    epoch: Instant,
    per_sender: u64,
) {
    let paced = senders.iter().take(load.senders);
    if per_sender == 0 {
        for p in paced {
            let _ = p.done.send(Ok(p.writer));
        }
        return;
    }
    /// A sender's place in the schedule.
    struct Slot {
        p: Paced,
        next: Instant,
        seq: u64,
    }
    let interval = Duration::from_secs_f64(1.0 / load.rate);
    let t0 = Instant::now();
    let mut slots: Vec<Slot> = paced
        .map(|p| Slot {
            next: t0 + interval.mul_f64(p.i as f64 / load.senders as f64),
            seq: 0,
            p,
        })
        .collect();
    let mut out = Vec::with_capacity(256);
    while let Some(k) = (0..slots.len()).min_by_key(|&k| slots[k].next) {
        let s = &mut slots[k];
        if let Some(wait) = s.next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Window: never more than `window` unacknowledged; look again shortly.
        if s.seq - s.p.acked.load(Ordering::Acquire) >= load.window as u64 {
            s.next += Duration::from_millis(1);
            continue;
        }
        out.clear();
        encode_message(proto, room, s.p.i, s.seq, now_us(epoch), &mut out);
        s.seq += 1;
        if proto == Proto::Irc && s.seq == per_sender {
            out.extend_from_slice(format!("PING :{per_sender}\r\n").as_bytes());
        }
        let written = s.p.writer.write_fully(&out);
        s.next += interval;
        if written.is_err() || s.seq == per_sender {
            let Slot { p, .. } = slots.swap_remove(k);
            let _ = p.done.send(written.map(|()| p.writer));
        }
    }
}

fn report(label: &str, name: &str, runs: &[Outcome]) {
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    for (k, o) in runs.iter().enumerate() {
        println!(
            "run {k} {label} {name}: deliveries={} lost={} dup={} reorder={} secs={:.3} rate={:.0}/s cpu_per_delivery_us={:.3} p50_us={} p99_us={} p999_us={} max_us={}",
            o.deliveries,
            o.lost,
            o.duplicates,
            o.out_of_order,
            o.seconds,
            o.deliveries as f64 / o.seconds,
            o.cpu_ns as f64 / 1000.0 / o.deliveries.max(1) as f64,
            percentile(&o.latencies_us, 0.5),
            percentile(&o.latencies_us, 0.99),
            percentile(&o.latencies_us, 0.999),
            o.latencies_us.last().copied().unwrap_or(0),
        );
    }
    println!(
        "RESULT {label} {name} deliveries_per_sec={:.0} cpu_per_delivery_us={:.3} p50_us={:.0} p99_us={:.0} p999_us={:.0} max_us={:.0} lost={} dup={} runs={}",
        median(
            runs.iter()
                .map(|o| o.deliveries as f64 / o.seconds)
                .collect()
        ),
        median(
            runs.iter()
                .map(|o| o.cpu_ns as f64 / 1000.0 / o.deliveries.max(1) as f64)
                .collect()
        ),
        median(
            runs.iter()
                .map(|o| percentile(&o.latencies_us, 0.5) as f64)
                .collect()
        ),
        median(
            runs.iter()
                .map(|o| percentile(&o.latencies_us, 0.99) as f64)
                .collect()
        ),
        median(
            runs.iter()
                .map(|o| percentile(&o.latencies_us, 0.999) as f64)
                .collect()
        ),
        median(
            runs.iter()
                .map(|o| o.latencies_us.last().copied().unwrap_or(0) as f64)
                .collect()
        ),
        runs.iter().map(|o| o.lost).sum::<u64>(),
        runs.iter().map(|o| o.duplicates).sum::<u64>(),
        runs.len(),
    );
}

/// Connections held by the i1 scenario.
const IDLE_CONNECTIONS: usize = 10_000;

/// I1: `n` logged-in clients, idle, in rooms of `room_size`; memory per connection.
async fn idle(proto: Proto, addr: SocketAddr, args: &Args, prefix: &str) -> std::io::Result<()> {
    let (n, room_size, password, pid, label) = (
        args.idle,
        args.room_size,
        args.password.as_str(),
        args.pid,
        args.label.as_str(),
    );
    let before = pid.map(rss_kib).unwrap_or(0);
    let mut clients = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(JOIN_BATCH) {
        let joins = chunk.iter().map(|&i| {
            let room = format!("{prefix}r{}", i / room_size);
            async move { join_retrying(proto, addr, i, prefix, password, &room).await }
        });
        for c in futures_util::future::join_all(joins).await {
            clients.push(c?);
        }
    }
    // Drain what the joins produced, then let the server settle.
    settle(proto, &mut clients).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = pid.map(rss_kib).unwrap_or(0);
    println!(
        "RESULT {label} i1 connections={n} rss_before_kib={before} rss_after_kib={after} bytes_per_connection={:.0}",
        (after.saturating_sub(before)) as f64 * 1024.0 / n as f64
    );
    drop(clients);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Args = argh::from_env();
    let proto = match args.proto.as_str() {
        "linechat" => Proto::Linechat,
        "irc" => Proto::Irc,
        p => {
            eprintln!("unknown --proto {p}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.tls {
        let config = linechat::client::transport::tls_client_config(args.tls_ca.as_deref());
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(args.tls_name.clone());
        match (config, name) {
            (Ok(config), Ok(name)) => {
                let _ = wire::TLS.set((config, name));
            }
            (Err(e), _) => {
                eprintln!("--tls: {e}");
                return std::process::ExitCode::FAILURE;
            }
            (_, Err(e)) => {
                eprintln!("--tls-name: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let rt = if args.threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args, proto)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linechat-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, proto: Proto) -> std::io::Result<()> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in args.addr.split(',').filter(|a| !a.is_empty()) {
        addrs.push(
            tokio::net::lookup_host(a)
                .await?
                .next()
                .ok_or_else(|| std::io::Error::other(format!("no address for {a}")))?,
        );
    }
    let addr = *addrs
        .first()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let pids: Vec<u32> = args.pid.iter().chain(&args.also_pid).copied().collect();
    let base_prefix = args.prefix.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(0);
        format!("x{t}")
    });
    let custom = Load {
        clients: args.clients,
        senders: args.senders,
        messages: args.messages,
        rate: args.rate,
        duration: args.duration,
        window: args.window,
    };
    let load = match args.scenario.as_str() {
        "f1" => Load {
            clients: 100,
            senders: 10,
            messages: 2000,
            rate: 0.0,
            ..custom
        },
        "f2" => Load {
            clients: 500,
            senders: 4,
            messages: 250,
            rate: 0.0,
            ..custom
        },
        "l1" | "a1" | "h2s" => Load {
            clients: 200,
            senders: 20,
            messages: 0,
            rate: 20.0,
            // a1 runs longer: 50 logins at bcrypt cost 12 take about 25 s on 2 cores (one
            // core is left to chat), and the whole storm should fall inside the measurement.
            duration: if args.scenario == "a1" { 30.0 } else { 10.0 },
            ..custom
        },
        "i1" => {
            return idle(proto, addr, &args, &base_prefix).await;
        }
        "h1" => return history(addr, &args).await,
        "h3" => return many_rooms(addr, &args).await,
        "h2" => return search::search(addr, &args).await,
        "store" => return store_path(&args).await,
        "custom" => custom,
        s => return Err(std::io::Error::other(format!("unknown scenario {s}"))),
    };
    let mut outcomes = Vec::new();
    for k in 0..args.runs {
        let prefix = format!("{base_prefix}k{k}");
        let (stop, searching) = tokio::sync::watch::channel(false);
        let (storm, started, searches) = if args.scenario == "a1" {
            register_storm(addr, &args.password, &prefix).await?;
            let (started, go) = tokio::sync::oneshot::channel();
            let storm = tokio::spawn(login_storm(addr, args.password.clone(), prefix.clone(), go));
            (Some(storm), Some(started), None)
        } else if args.scenario == "h2s" {
            // The search storm starts with the chat load and stops when it ends.
            let (started, go) = tokio::sync::oneshot::channel::<()>();
            let password = args.password.clone();
            let searches = tokio::spawn(async move {
                go.await
                    .map_err(|_| std::io::Error::other("the load never started"))?;
                search::storm(addr, password, searching).await
            });
            (None, Some(started), Some(searches))
        } else {
            (None, None, None)
        };
        let o = fanout(
            proto,
            &addrs,
            &load,
            &prefix,
            &args.password,
            &pids,
            started,
        )
        .await?;
        let _ = stop.send(true);
        if let Some(s) = searches {
            match s.await {
                Ok(Ok(n)) => println!("search storm: {n} searches answered"),
                Ok(Err(e)) => eprintln!("search storm failed: {e}"),
                Err(e) => eprintln!("search storm: {e}"),
            }
        }
        if let Some(s) = storm {
            match s.await {
                Ok(Ok(took)) => println!("login storm: 50 logins in {took:.2}s"),
                Ok(Err(e)) => eprintln!("login storm failed: {e}"),
                Err(e) => eprintln!("login storm: {e}"),
            }
        }
        outcomes.push(o);
    }
    report(&args.label, &args.scenario, &outcomes);
    Ok(())
}

/// Accounts the A1 login storm logs in.
const STORM: usize = 50;

/// A1 setup: registers the storm accounts (at the daemon's own bcrypt cost) before the load.
async fn register_storm(addr: SocketAddr, password: &str, prefix: &str) -> std::io::Result<()> {
    for i in 0..STORM {
        let mut c = Client::open(addr, 1000 + i).await?;
        c.send(&format!("#register {prefix}storm{i} {password}"))
            .await?;
        let _ = c.until(&["OK register", "ERR exists"]).await;
    }
    Ok(())
}

/// A1: 50 concurrent logins, one second into the chat load's send phase (`go`: the clients'
/// own logins are done by then, so the storm competes with chat, not with setup); returns how
/// long they all took.
async fn login_storm(
    addr: SocketAddr,
    password: String,
    prefix: String,
    go: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<f64> {
    go.await
        .map_err(|_| std::io::Error::other("the load never started"))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let logins = (0..STORM).map(|i| {
        let (password, prefix) = (password.clone(), prefix.clone());
        async move {
            let mut c = Client::open(addr, 2000 + i).await?;
            c.send(&format!("#login {prefix}storm{i} {password}"))
                .await?;
            c.until(&["OK login"]).await.map(|_| ())
        }
    });
    for r in futures_util::future::join_all(logins).await {
        r?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// A new database at `db` with linechat's schema (from its own store) and a cheap hash of
/// `password` for the accounts; `None` if the file exists already (filled by an earlier run).
fn new_database(
    db: &str,
    password: &str,
) -> Result<Option<(rusqlite::Connection, String)>, String> {
    let path = std::path::Path::new(db);
    if path.exists() {
        return Ok(None);
    }
    drop(linechat::store::Database::open(
        path,
        linechat::config::Sync::Normal,
    )?);
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let hash = bcrypt::hash(password, 4).map_err(|e| e.to_string())?;
    Ok(Some((conn, hash)))
}

/// Users and rooms in the h1 database; `u0` (the one that queries) has joined 5 rooms and
/// sent 3% of the messages, so pages are full on the small database too.
const H1_USERS: usize = 1000;
const H1_ROOMS: usize = 100;

/// Fills `db` with `n` messages spread over [`H1_ROOMS`] rooms and [`H1_USERS`] users
/// (run before the daemon starts; the schema comes from linechat's own store).
fn fill(db: &str, n: usize, password: &str) -> Result<(), String> {
    let Some((mut conn, hash)) = new_database(db, password)? else {
        return Ok(());
    };
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let e = |e: rusqlite::Error| e.to_string();
        let mut user = tx
            .prepare("INSERT INTO users (id, name, password_hash) VALUES (?1, ?2, ?3)")
            .map_err(e)?;
        for u in 0..H1_USERS {
            user.execute(rusqlite::params![u as i64 + 1, format!("u{u}"), hash])
                .map_err(e)?;
        }
        let mut room = tx
            .prepare("INSERT INTO rooms (id, name) VALUES (?1, ?2)")
            .map_err(e)?;
        for r in 0..H1_ROOMS {
            room.execute(rusqlite::params![r as i64 + 1, format!("room{r}")])
                .map_err(e)?;
        }
        let mut member = tx
            .prepare("INSERT INTO memberships (user_id, room_id) VALUES (1, ?1)")
            .map_err(e)?;
        for r in 0..5 {
            member
                .execute(rusqlite::params![r as i64 * 20 + 1])
                .map_err(e)?;
        }
        let mut msg = tx
            .prepare("INSERT INTO messages (room_id, user_id, body) VALUES (?1, ?2, ?3)")
            .map_err(e)?;
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..n {
            // u0 (id 1) sends 3% of all messages, so even the small database gives full pages.
            let sender = if rng.u8(0..100) < 3 {
                1
            } else {
                rng.usize(0..H1_USERS) as i64 + 1
            };
            msg.execute(rusqlite::params![
                rng.usize(0..H1_ROOMS) as i64 + 1,
                sender,
                format!("history message {i} the quick brown fox jumps over the lazy dog"),
            ])
            .map_err(e)?;
        }
    }
    set_room_ranges(&tx)?;
    tx.commit().map_err(|e| e.to_string())
}

/// Each room's first and last message id, which the daemon's writer keeps as it inserts
/// (the fills insert around it).
fn set_room_ranges(tx: &rusqlite::Connection) -> Result<(), String> {
    tx.execute_batch(
        "UPDATE rooms SET
             first_message_id = (SELECT min(id) FROM messages WHERE room_id = rooms.id),
             last_message_id = (SELECT max(id) FROM messages WHERE room_id = rooms.id);",
    )
    .map_err(|e| e.to_string())
}

/// Rooms the h3 user `u0` has joined.
const H3_ROOMS: usize = 20_000;

/// Fills `db` for H3: `u0` has joined [`H3_ROOMS`] rooms with `per_room` messages each (from
/// a second user), spread in time the way rooms joined one after another would be.
fn fill_many_rooms(db: &str, per_room: usize, password: &str) -> Result<(), String> {
    let Some((mut conn, hash)) = new_database(db, password)? else {
        return Ok(());
    };
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    {
        let e = |e: rusqlite::Error| e.to_string();
        tx.execute(
            "INSERT INTO users (id, name, password_hash) VALUES (1, 'u0', ?1), (2, 'u1', ?1)",
            [&hash],
        )
        .map_err(e)?;
        let mut room = tx
            .prepare("INSERT INTO rooms (id, name) VALUES (?1, ?2)")
            .map_err(e)?;
        let mut member = tx
            .prepare("INSERT INTO memberships (user_id, room_id) VALUES (1, ?1)")
            .map_err(e)?;
        for r in 0..H3_ROOMS {
            room.execute(rusqlite::params![r as i64 + 1, format!("h3room{r}")])
                .map_err(e)?;
            member.execute(rusqlite::params![r as i64 + 1]).map_err(e)?;
        }
        let mut msg = tx
            .prepare("INSERT INTO messages (room_id, user_id, body) VALUES (?1, 2, ?2)")
            .map_err(e)?;
        for k in 0..per_room {
            for r in 0..H3_ROOMS {
                msg.execute(rusqlite::params![
                    r as i64 + 1,
                    format!("message {k} in room {r}")
                ])
                .map_err(e)?;
            }
        }
    }
    set_room_ranges(&tx)?;
    tx.commit().map_err(|e| e.to_string())
}

/// H3: `#my_messages 100` for a user of [`H3_ROOMS`] rooms, median of 200, and the daemon's
/// memory after 20 warm-up queries (SQLite's page caches filled) and after the 200 (with
/// `--pid`): flat when the cost does not grow with the queries.
async fn many_rooms(addr: SocketAddr, args: &Args) -> std::io::Result<()> {
    if let Some(db) = &args.db {
        fill_many_rooms(db, args.fill, &args.password).map_err(std::io::Error::other)?;
        println!("filled {db}: {H3_ROOMS} rooms of {} messages", args.fill);
        return Ok(());
    }
    let mut c = Client::open(addr, 0).await?;
    c.send(&format!("#login u0 {}", args.password)).await?;
    c.until(&["OK login"]).await?;
    for _ in 0..20 {
        c.send("#my_messages 100").await?;
        c.until(&["OK my_messages"]).await?;
    }
    let before = args.pid.map(rss_kib).unwrap_or(0);
    let mut times = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        c.send("#my_messages 100").await?;
        c.until(&["OK my_messages"]).await?;
        times.push(t.elapsed().as_micros() as u64);
    }
    let after = args.pid.map(rss_kib).unwrap_or(0);
    times.sort_unstable();
    println!(
        "RESULT {} h3 rooms={H3_ROOMS} per_room={} my_first_us={} p99_us={} rss_before_kib={before} rss_after_kib={after}",
        args.label,
        args.fill,
        percentile(&times, 0.5),
        percentile(&times, 0.99),
    );
    Ok(())
}

/// H1: history pages on a database of `--fill` messages: first page and a deep page of
/// `#my_messages` and `#all_messages`, median of many.
async fn history(addr: SocketAddr, args: &Args) -> std::io::Result<()> {
    if let Some(db) = &args.db {
        // Only fills; the daemon is started on the file afterwards.
        fill(db, args.fill, &args.password).map_err(std::io::Error::other)?;
        println!("filled {db} with {} messages", args.fill);
        return Ok(());
    }
    let mut c = Client::open(addr, 0).await?;
    c.send(&format!("#login u0 {}", args.password)).await?;
    c.until(&["OK login"]).await?;
    let mid = args.fill / 2;
    let queries = [
        ("my_first", "#my_messages 100".to_string()),
        ("my_deep", format!("#my_messages 100 {mid}")),
        ("all_first", "#all_messages 100".to_string()),
        ("all_deep", format!("#all_messages 100 {mid}")),
    ];
    let mut line = format!("RESULT {} h1 messages={}", args.label, args.fill);
    for (name, q) in queries {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            c.send(&q).await?;
            c.until(&["OK my_messages", "OK all_messages"]).await?;
            times.push(t.elapsed().as_micros() as u64);
        }
        times.sort_unstable();
        line.push_str(&format!(" {name}_us={}", percentile(&times, 0.5)));
    }
    println!("{line}");
    Ok(())
}

/// The log's sink in the store scenario: counts committed messages; `done` fires at `want`.
struct CommitCounter {
    want: usize,
    seen: std::sync::atomic::AtomicUsize,
    done: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

impl linechat::log::Sink for CommitCounter {
    fn apply(&self, event: linechat::log::Event) {
        if let linechat::log::Event::Said(batch) = event {
            let seen = self.seen.fetch_add(batch.len(), Ordering::Relaxed) + batch.len();
            if seen >= self.want
                && let Some(d) = self.done.lock().ok().and_then(|mut d| d.take())
            {
                let _ = d.send(());
            }
        }
    }
}

/// The store path alone, in process: messages/s through linechat's writer with group commit
/// versus one transaction per message, same database settings, same run.
async fn store_path(args: &Args) -> std::io::Result<()> {
    use linechat::log::local::{self, WriterOptions};
    use linechat::store::Database;
    let dir = std::env::temp_dir().join(format!("linechat-store-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for sync in [linechat::config::Sync::Normal, linechat::config::Sync::Full] {
        // An fsync per commit is slow: a tenth of the messages keeps the full run short (both
        // modes of one durability setting push the same number).
        let n = match sync {
            linechat::config::Sync::Normal => args.messages.max(1000),
            linechat::config::Sync::Full => (args.messages / 10).max(1000),
        };
        let mut rates = Vec::new();
        let one = WriterOptions {
            batch_max: 1,
            linger: Duration::ZERO,
            ..WriterOptions::default()
        };
        for (name, options) in [
            ("one_per_txn", one),
            ("group_commit", WriterOptions::default()),
        ] {
            let path = dir.join(format!("{name}-{sync:?}.db"));
            let _ = std::fs::remove_file(&path);
            let db = Database::open(&path, sync).map_err(std::io::Error::other)?;
            let (done, finished) = tokio::sync::oneshot::channel();
            let counter = CommitCounter {
                want: n,
                seen: std::sync::atomic::AtomicUsize::new(0),
                done: std::sync::Mutex::new(Some(done)),
            };
            let (_reads, writer) = db.split();
            let store = local::start(writer, counter, options)?;
            let user = store
                .create_user("bench", "x".into())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let room: Arc<str> = Arc::from("bench");
            let t = Instant::now();
            for i in 0..n {
                store
                    .say(1, &user, &room, format!("message {i}"), false)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            let _ = finished.await;
            let secs = t.elapsed().as_secs_f64();
            rates.push(n as f64 / secs);
            println!(
                "store {sync:?} {name}: {n} messages in {secs:.3}s = {:.0}/s",
                n as f64 / secs
            );
            store.stop().await;
        }
        println!(
            "RESULT {} store sync={} one_per_txn_per_sec={:.0} group_commit_per_sec={:.0} ratio={:.1}",
            args.label,
            sync.pragma().to_lowercase(),
            rates[0],
            rates[1],
            rates[1] / rates[0]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_irc_pings_every_sixteenth() {
        let mut out = Vec::new();
        encode_message(Proto::Linechat, "r", 3, 14, 99, &mut out);
        let line = String::from_utf8(out.clone()).unwrap();
        assert_eq!(line, format!("{}\r\n", payload(3, 14, 99)));
        assert_eq!(parse_payload(line.trim_end()), Some((3, 14, 99)));

        out.clear();
        encode_message(Proto::Irc, "r", 3, 14, 99, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            format!("PRIVMSG #r :{}\r\n", payload(3, 14, 99))
        );
        out.clear();
        encode_message(Proto::Irc, "r", 3, 15, 99, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("\r\nPING :16\r\n")
        );
    }

    #[test]
    fn chat_text_finds_the_payload_in_both_protocols() {
        let p = payload(1, 2, 3);
        assert_eq!(
            chat_text(Proto::Linechat, &format!("MSG r ann {p}")),
            Some(p.as_str())
        );
        assert_eq!(
            chat_text(Proto::Irc, &format!(":ann!a@h PRIVMSG #r :{p}")),
            Some(p.as_str())
        );
        assert_eq!(chat_text(Proto::Linechat, "JOIN r ann 2"), None);
    }
}
