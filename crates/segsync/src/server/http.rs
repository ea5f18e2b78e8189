//! The HTTP/1.1 server under the router: what keeps slow or hanging clients from holding the
//! server ([`HttpLimits`]).
//!
//! - A client has [`HttpLimits::header_read_timeout`] to send a request's headers: a
//!   connection that sends nothing, or half a header, is closed then (hyper's header read
//!   timeout, which also bounds how long a kept-alive connection may sit idle).
//! - A request's body may pause at most [`HttpLimits::body_read_timeout`] between two parts
//!   (tower-http's `RequestBodyTimeoutLayer`): a large upload that keeps sending is not
//!   limited, one that stalls fails.
//! - At most [`HttpLimits::max_connections`] connections are served at once; further ones
//!   wait in the listen queue until one closes.
//! - At shutdown no connection is accepted any more, the requests in progress have
//!   [`HttpLimits::shutdown_grace`] to finish, and whatever connection is still open then is
//!   closed, so a hanging client cannot keep the server alive.
//!
//! HTTP/1.1 only: a proxy in front brings HTTP/2 and TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceBuilder;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutBody};

/// How long clients may take, how many may be connected, how long shutdown waits.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains as
/// [`HttpLimits::shutdown_grace`] allows.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let (close_tx, close_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = accept(&listener, &slots) => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer, slot) = accepted;
        let conn = Connection {
            router: router.clone(),
            limits: limits.clone(),
            peer,
            slot,
            close: close_rx.clone(),
        };
        conn.spawn(stream, graceful.watcher());
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_seconds = limits.shutdown_grace.as_secs_f64(),
            "connections still open after the shutdown grace period: closing them"
        );
        let _ = close_tx.send(true);
    }
}

/// The next connection, once a slot is free.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> (TcpStream, SocketAddr, OwnedSemaphorePermit) {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the connection slots are never closed");
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => return (stream, peer, slot),
            // Out of file descriptors and the like: wait rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// One accepted connection and what it is served with.
struct Connection {
    router: Router,
    limits: HttpLimits,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    /// Turns true when the grace period is over.
    close: watch::Receiver<bool>,
}

impl Connection {
    fn spawn(self, stream: TcpStream, watcher: Watcher) {
        let peer = self.peer;
        let service = ServiceBuilder::new()
            .layer(RequestBodyTimeoutLayer::new(self.limits.body_read_timeout))
            .map_request(move |mut req: axum::http::Request<TimeoutBody<Incoming>>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            })
            .service(self.router);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let conn = watcher.watch(conn);
        let (slot, mut close) = (self.slot, self.close);
        tokio::spawn(async move {
            let _slot = slot;
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended");
                },
                _ = close.wait_for(|closed| *closed) => {
                    tracing::debug!(%peer, "connection closed at shutdown");
                }
            }
        });
    }
}
