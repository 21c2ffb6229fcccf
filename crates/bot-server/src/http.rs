//! Serving the API: the accept loop, with every limit explicit, and HTTPS.
//!
//! `axum::serve` sets no timeout at all: 3,000 half-sent requests were held
//! for as long as their clients liked, and at 20,000 the process ran out of
//! descriptors and stopped answering (issue 12). So connections are served
//! here with hyper's own settings:
//!
//! - the request head must arrive within [`HttpLimits::header_timeout`]
//!   (hyper's `header_read_timeout`, which also bounds an idle keep-alive
//!   connection waiting for its next request);
//! - a request body must arrive within [`HttpLimits::body_timeout`]
//!   (tower-http's `RequestBodyTimeoutLayer`; a slow body gets 408);
//! - at most [`HttpLimits::max_connections`] connections are open at once;
//!   one more is closed at once, with a warning logged at most once a
//!   second, so descriptors stay for the broker, the agent of `bot up` and
//!   the database;
//! - with TLS ([`HttpLimits`] plus a rustls config), the handshake must
//!   finish within the header timeout.
//!
//! Each request carries the peer's address (`ConnectInfo<SocketAddr>`), for
//! the authentication-failure limit. On shutdown the listener closes and
//! open connections finish their current request (hyper's graceful
//! shutdown), for at most [`HttpLimits::shutdown_grace`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Largest request head hyper reads (hyper's default is about 400 KB);
/// beyond it hyper refuses the request itself (431, no body). URIs up to
/// this size reach the API, which answers a JSON 414 beyond
/// `api::MAX_URI_BYTES`.
pub const HEAD_BYTES: usize = 64 * 1024;

/// The HTTP limits, each a decision (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time for a request's head to arrive, and for an idle keep-alive
    /// connection to send its next request.
    pub header_timeout: Duration,
    /// Time for a request's body to arrive.
    pub body_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long open connections may take to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            // A real client sends its head at once; 10 s allows a slow
            // network and closes a silent socket long before descriptors
            // run out.
            header_timeout: Duration::from_secs(10),
            // Bodies are at most 1 MiB (MAX_BODY_BYTES): 30 s is ample.
            body_timeout: Duration::from_secs(30),
            // Far below the usual 1,024-65,536 descriptor limits once the
            // broker, the database pool and the agent of `bot up` have
            // theirs; the API's clients are operators and dashboards.
            max_connections: 1_024,
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` fires, over TLS when
/// `tls` is given.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    tls: Option<Arc<bot_bus::rustls::ServerConfig>>,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .max_buf_size(HEAD_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut last_full_warning: Option<Instant> = None;
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors and the like: back off, never spin.
                    tracing::warn!(error = %e, "HTTP listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            if last_full_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(
                    max = limits.max_connections,
                    "HTTP listener full; closing new connections"
                );
                last_full_warning = Some(Instant::now());
            }
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let served = match acceptor {
                None => {
                    let conn = builder.serve_connection(TokioIo::new(socket), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(socket))
                        .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "HTTPS handshake refused");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "HTTP connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown grace period");
    }
}
