//! A real `nats-server` with JetStream on a loopback port, for the cluster tests: the one
//! `test.sh` installs under `.tools/`, or `nats-server` on the PATH.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The NATS server binary.
pub fn nats_server() -> PathBuf {
    let local = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/.tools/nats/bin/nats-server"
    ));
    if local.exists() {
        return local;
    }
    PathBuf::from("nats-server")
}

/// One JetStream server; stopped when dropped. Its store lives in a temp directory, so a
/// restart (same port, same store) keeps the stream.
pub struct Nats {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl Nats {
    /// A fresh server.
    pub fn start() -> Nats {
        Self::start_with(&[])
    }

    /// A fresh server with extra flags (`--user`, `--pass`, ...).
    pub fn start_with(extra: &[&str]) -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut n = Nats {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        n.run();
        n
    }

    /// `n` servers routed into one JetStream cluster (stream replicas up to `n`).
    pub fn cluster(n: usize) -> Vec<Nats> {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let routes: Vec<u16> = (0..n).map(|_| free()).collect();
        let all = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        // Started together: each waits for the others' routes before it is ready.
        let mut servers: Vec<Nats> = (0..n)
            .map(|i| Nats {
                child: None,
                port: free(),
                dir: tempfile::tempdir().unwrap(),
                extra: vec![
                    "-n".into(),
                    format!("s{i}"),
                    "--cluster_name".into(),
                    "linechat".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    all.clone(),
                ],
            })
            .collect();
        let started: Vec<_> = servers.iter_mut().map(|s| s.spawn()).collect();
        for (s, (child, ready)) in servers.iter_mut().zip(started) {
            s.child = Some(child);
            Self::wait_ready(&ready, s.port);
        }
        servers
    }

    /// Every server's URL, comma-separated (the `--cluster` value for a JetStream cluster).
    pub fn urls(servers: &[Nats]) -> String {
        servers.iter().map(Nats::url).collect::<Vec<_>>().join(",")
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let (child, ready) = self.spawn();
        Self::wait_ready(&ready, self.port);
        self.child = Some(child);
    }

    /// Launches the server; its log lines come on the channel.
    fn spawn(&mut self) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut child = Command::new(nats_server())
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("-sd")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server (run ./test.sh once to install it)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("LINECHAT_TEST_LOG").is_some() {
                    eprintln!("nats: {line}");
                }
                let _ = tx.send(line);
            }
        });
        (child, rx)
    }

    /// Waits for the server's "ready" line.
    fn wait_ready(log: &std::sync::mpsc::Receiver<String>, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("nats-server did not become ready");
            match log.recv_timeout(left) {
                Ok(line) if line.contains("Server is ready") => break,
                Ok(_) => {}
                Err(e) => panic!("nats-server did not become ready: {e}"),
            }
        }
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    /// Kills the server (SIGKILL): it is unreachable until [`Nats::restart`].
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
