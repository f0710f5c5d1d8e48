//! H2: `#search` over a database of `--fill` messages (the H1 database, its words indexed as
//! the daemon's writer indexes them), and the search storm that runs beside L1 to show that
//! searches do not disturb chat.

use crate::{Args, Client, percentile};
use std::net::SocketAddr;
use std::time::Instant;

/// The searches H2 times, by name: a word in every message (the reader's 5 rooms narrow it
/// inside the index), a phrase from one sender, a word in one message, a prefix in one room,
/// and an exclusion that leaves nothing (every candidate is checked: the slow case).
pub const QUERIES: [(&str, &str); 5] = [
    ("common", "#search fox"),
    ("phrase_from", "#search \"lazy dog\" from=u5"),
    ("rare", "#search \"777777\""),
    ("prefix_in", "#search qui* in=room20"),
    ("excluded", "#search fox -dog"),
];

/// Searching clients in the storm, each sending its next search as soon as one is answered.
const STORM_CLIENTS: usize = 4;

/// H2 setup and timing: with `--db`, fills the H1 database and indexes its words; else times
/// each of [`QUERIES`] (median of 100, after 10 warm-up ones) as `u0`.
pub async fn search(addr: SocketAddr, args: &Args) -> std::io::Result<()> {
    if let Some(db) = &args.db {
        crate::fill(db, args.fill, &args.password).map_err(std::io::Error::other)?;
        index_words(db).map_err(std::io::Error::other)?;
        println!("filled {db} with {} messages, indexed", args.fill);
        return Ok(());
    }
    let mut c = Client::open(addr, 0).await?;
    c.send(&format!("#login u0 {}", args.password)).await?;
    c.until(&["OK login"]).await?;
    let mut line = format!("RESULT {} h2 messages={}", args.label, args.fill);
    let mut all = Vec::new();
    for (name, q) in QUERIES {
        let mut times = Vec::new();
        for k in 0..110 {
            let t = Instant::now();
            c.send(q).await?;
            let end = c.until(&["OK search", "ERR"]).await?;
            if end.starts_with("ERR") {
                return Err(std::io::Error::other(format!("{q}: {end}")));
            }
            if k >= 10 {
                times.push(t.elapsed().as_micros() as u64);
            }
        }
        all.extend_from_slice(&times);
        times.sort_unstable();
        line.push_str(&format!(" {name}_us={}", percentile(&times, 0.5)));
    }
    all.sort_unstable();
    line.push_str(&format!(
        " median_us={} p99_us={}",
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    ));
    println!("{line}");
    Ok(())
}

/// The search storm beside L1: [`STORM_CLIENTS`] sessions of `u0` (the reader of 5 rooms, as
/// in H2) each cycling through [`QUERIES`] without pause until `stop`; returns the searches
/// answered, failing on any `ERR` (a storm of refusals would measure nothing).
pub async fn storm(
    addr: SocketAddr,
    password: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<u64> {
    let clients = (1..=STORM_CLIENTS).map(|i| {
        let (password, stop) = (password.clone(), stop.clone());
        async move {
            let mut c = Client::open(addr, 3000 + i).await?;
            c.send(&format!("#login u0 {password}")).await?;
            c.until(&["OK login"]).await?;
            let mut done = 0u64;
            for (_, q) in QUERIES.iter().cycle() {
                if *stop.borrow() {
                    break;
                }
                c.send(q).await?;
                let end = c.until(&["OK search", "ERR"]).await?;
                if end.starts_with("ERR") {
                    return Err(std::io::Error::other(format!("{q}: {end}")));
                }
                done += 1;
            }
            Ok::<u64, std::io::Error>(done)
        }
    });
    let mut total = 0;
    for r in futures_util::future::join_all(clients).await {
        total += r?;
    }
    Ok(total)
}

/// Indexes every message of the filled database as the daemon's writer would have (the fill
/// inserts around the writer), with the statement of the schema's version-8 migration.
fn index_words(db: &str) -> Result<(), String> {
    let conn = rusqlite::Connection::open(db).map_err(|e| e.to_string())?;
    conn.execute_batch(
        "DELETE FROM message_words;
         INSERT INTO message_words (rowid, body, scope)
             SELECT id, body, 'r' || room_id || ' u' || user_id FROM messages
             WHERE deleted_at IS NULL;",
    )
    .map_err(|e| e.to_string())
}
