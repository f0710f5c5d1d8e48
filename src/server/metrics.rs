//! `GET /metrics` for Prometheus (`--metrics-listen`), on its own port, never the chat ports.
//!
//! The numbers are `#stats`'s, from the same [`Shared::stats`] at each scrape (one source),
//! set on a recorder of `metrics-exporter-prometheus` (local to this task: nothing global, no
//! cost on the chat path) and rendered by it in Prometheus's text format. No label ever holds a
//! user name, room name or text. HTTP is hyper's; anything but `GET /metrics` gets 404.

use super::Shared;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, info, warn};
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Scrapes served at once; more wait for a turn (a scraper is one process, or a few).
const SCRAPES_AT_ONCE: usize = 8;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Prometheus's text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let turns = Arc::new(Semaphore::new(SCRAPES_AT_ONCE));
    let recorder = Arc::new(PrometheusBuilder::new().build_recorder());
    metrics::with_local_recorder(&*recorder, describe);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(turn) = turns.clone().acquire_owned().await else {
            return;
        };
        let (shared, recorder) = (shared.clone(), recorder.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (shared, recorder) = (shared.clone(), recorder.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, &recorder, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                debug!("metrics: connection from {peer}: {e}");
            }
            drop(turn);
        });
    }
}

/// The response to one request: the metrics, or 404.
async fn answer(
    shared: &Shared,
    recorder: &PrometheusRecorder,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: GET /metrics\n",
        );
    }
    match render(shared, recorder).await {
        Ok(text) => respond(StatusCode::OK, CONTENT_TYPE, text),
        Err(e) => {
            warn!("metrics: {e}");
            respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "the database did not answer\n",
            )
        }
    }
}

fn respond(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Every metric's help and unit, once.
fn describe() {
    describe_gauge!(
        "linechat_uptime_seconds",
        Unit::Seconds,
        "Time since the daemon started"
    );
    describe_gauge!("linechat_connections", "Open connections, guests included");
    describe_gauge!("linechat_sessions", "Logged-in sessions");
    describe_gauge!("linechat_users_online", "Distinct users logged in");
    describe_gauge!("linechat_rooms_active", "Rooms with users in them");
    describe_counter!(
        "linechat_messages_stored_total",
        "Messages stored, ever (ids are never reused)"
    );
    describe_gauge!(
        "linechat_deliveries_per_second",
        "Lines delivered to sessions per second, averaged over the last minute"
    );
    describe_gauge!(
        "linechat_sendq_max_items",
        "The longest outbound queue of any session, in items"
    );
    describe_gauge!(
        "linechat_writer_queue_operations",
        "Operations waiting for the store's writer"
    );
    describe_gauge!(
        "linechat_actor_queue_commands",
        "Commands waiting for the room actor"
    );
}

/// Every metric, from one read of `#stats`'s numbers.
async fn render(shared: &Shared, recorder: &PrometheusRecorder) -> Result<String, String> {
    let s = shared.stats().await.map_err(|e| e.to_string())?;
    metrics::with_local_recorder(recorder, || {
        gauge!("linechat_uptime_seconds").set(s.uptime as f64);
        gauge!("linechat_connections").set(s.connections as f64);
        gauge!("linechat_sessions").set(s.sessions as f64);
        gauge!("linechat_users_online").set(s.users as f64);
        gauge!("linechat_rooms_active").set(s.rooms as f64);
        counter!("linechat_messages_stored_total").absolute(u64::try_from(s.messages).unwrap_or(0));
        gauge!("linechat_deliveries_per_second").set(s.delivered_per_sec);
        gauge!("linechat_sendq_max_items").set(s.sendq_max as f64);
        gauge!("linechat_writer_queue_operations").set(s.writer_queue as f64);
        gauge!("linechat_actor_queue_commands").set(s.actor_queue as f64);
    });
    Ok(recorder.handle().render())
}

/// Logs where `/metrics` is served.
pub fn announce(listener: &TcpListener) {
    if let Ok(a) = listener.local_addr() {
        info!("metrics on http://{a}/metrics");
    }
}
