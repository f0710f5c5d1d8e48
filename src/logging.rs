//! Logging: env_logger on stderr (the container convention; rotation is the log driver's job),
//! levels from `RUST_LOG` (default `info`), as human-readable text or one JSON object per line.
//!
//! Connection events carry their fields as log key-values (`conn`, `peer`, `user`, `room`); the
//! JSON format puts each in its own key, ready for Promtail/Loki or any log shipper.

use log::kv::{Error as KvError, Key, Value, VisitSource};
use std::io::Write;
use std::str::FromStr;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-29T02:40:19.123Z INFO  linechat::session: connected conn=1 peer=...`
    Text,
    /// `{"timestamp":"...","level":"INFO","target":"...","message":"connected","conn":1,...}`
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// Collects a record's key-values, skipping empty ones (a guest has no `user`).
struct Fields<F: FnMut(&str, Value<'_>)>(F);

impl<'kvs, F: FnMut(&str, Value<'_>)> VisitSource<'kvs> for Fields<F> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), KvError> {
        if value.to_borrowed_str() != Some("") {
            (self.0)(key.as_str(), value);
        }
        Ok(())
    }
}

/// Installs the global logger. Call once, before anything logs.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            write!(
                buf,
                "{} {:<5} {}: {}",
                buf.timestamp_millis(),
                record.level(),
                record.target(),
                record.args()
            )?;
            let mut fields = String::new();
            let _ = record.key_values().visit(&mut Fields(|k, v| {
                fields.push_str(&format!(" {k}={v}"));
            }));
            writeln!(buf, "{fields}")
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let mut obj = serde_json::Map::new();
            obj.insert(
                "timestamp".into(),
                buf.timestamp_millis().to_string().into(),
            );
            obj.insert("level".into(), record.level().as_str().into());
            obj.insert("target".into(), record.target().into());
            obj.insert("message".into(), record.args().to_string().into());
            let _ = record.key_values().visit(&mut Fields(|k, v| {
                let v = match v.to_u64() {
                    Some(n) => serde_json::Value::from(n),
                    None => serde_json::Value::from(v.to_string()),
                };
                obj.insert(k.to_string(), v);
            }));
            writeln!(buf, "{}", serde_json::Value::Object(obj))
        }),
    };
    builder.init();
}
