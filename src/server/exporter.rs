//! `GET /metrics` for Prometheus (`--metrics-listen`), on its own port, never the chat ports.
//!
//! `metrics-exporter-prometheus`'s recorder is installed as the process's only when
//! `--metrics-listen` is given (without it, recording costs nothing) and renders Prometheus's
//! text format. `#stats`'s numbers are read from the same [`Shared::snapshot`] at each scrape
//! (one source); everything else is recorded where it happens ([`crate::meters`]). HTTP is
//! hyper's; anything but `GET /metrics` gets 404.

use super::Shared;
use crate::meters;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, info, warn};
use metrics::{counter, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Connections served at once; more are closed at once (a scraper is one process, or a few).
const SCRAPES_AT_ONCE: usize = 8;
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a connection lives, its request read and its answer written.
const CONNECTION_LIFE: Duration = Duration::from_secs(10);
/// Prometheus's text format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// How often the histograms' samples are folded into their buckets.
const UPKEEP: Duration = Duration::from_secs(2);

/// Installs Prometheus's recorder as the process's, with the histograms' buckets, and turns
/// [`meters`] on; before anything records.
pub fn install() -> Result<PrometheusHandle, String> {
    let buckets = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), meters::LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(meters::COMMIT_BATCH.into()),
                meters::BATCH_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(meters::BCRYPT_WAIT.into()),
                meters::BCRYPT_BUCKETS,
            )
        })
        .map_err(|e| format!("metrics: {e}"))?;
    let recorder = buckets.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| format!("metrics: {e}"))?;
    meters::describe();
    meters::enable();
    Ok(handle)
}

/// Serves `/metrics` on `listener` until `shutdown`, and drains the histograms' samples into
/// their buckets every [`UPKEEP`] (between scrapes they would pile up).
pub async fn serve(
    listener: TcpListener,
    recorder: PrometheusHandle,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let turns = Arc::new(Semaphore::new(SCRAPES_AT_ONCE));
    let mut upkeep = tokio::time::interval(UPKEEP);
    upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = upkeep.tick() => {
                recorder.run_upkeep();
                continue;
            }
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
        // Never waiting for a turn here: the loop also drains the histograms, and a few
        // connections that never finish must not stop that, nor the next scrape's accept for
        // longer than their bounded life.
        let Ok(turn) = turns.clone().try_acquire_owned() else {
            debug!("metrics: {SCRAPES_AT_ONCE} connections open, {peer} closed");
            continue;
        };
        let (shared, recorder) = (shared.clone(), recorder.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (shared, recorder) = (shared.clone(), recorder.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(&shared, &recorder, req).await) }
            });
            // One request per connection, and a bounded life for it: a client that sends its
            // request slowly, or never reads the answer, holds its turn for CONNECTION_LIFE
            // at most.
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFE, served).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!("metrics: connection from {peer}: {e}"),
                Err(_) => debug!("metrics: connection from {peer} took too long, closed"),
            }
            drop(turn);
        });
    }
}

/// The response to one request: the metrics, or 404.
async fn answer(
    shared: &Shared,
    recorder: &PrometheusHandle,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != "/metrics" {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: GET /metrics\n",
        );
    }
    respond(StatusCode::OK, CONTENT_TYPE, render(shared, recorder).await)
}

fn respond(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Every gauge and counter `#stats` also reports, from one read of its numbers (the rest are
/// recorded where they happen, see [`crate::meters`]).
async fn render(shared: &Shared, recorder: &PrometheusHandle) -> String {
    let s = shared.snapshot().await;
    let (t, tls) = (&s.stats, s.tls_connections);
    gauge!(meters::UPTIME).set(t.uptime as f64);
    gauge!(meters::CONNECTIONS, "listener" => "plain").set((t.connections - tls) as f64);
    gauge!(meters::CONNECTIONS, "listener" => "tls").set(tls as f64);
    gauge!(meters::SESSIONS).set(t.sessions as f64);
    gauge!(meters::USERS_ONLINE).set(t.users as f64);
    gauge!(meters::ROOMS_ACTIVE).set(t.rooms as f64);
    counter!(meters::MESSAGES_STORED).absolute(u64::try_from(t.messages).unwrap_or(0));
    counter!(meters::DELIVERIES).absolute(s.delivered);
    gauge!(meters::DELIVERIES_PER_SECOND).set(t.delivered_per_sec);
    gauge!(meters::SENDQ_MAX).set(t.sendq_max as f64);
    gauge!(meters::WRITER_QUEUE).set(t.writer_queue as f64);
    gauge!(meters::ACTOR_QUEUE).set(t.actor_queue as f64);
    recorder.render()
}

/// Logs where `/metrics` is served.
pub fn announce(listener: &TcpListener) {
    if let Ok(a) = listener.local_addr() {
        info!("metrics on http://{a}/metrics");
    }
}
