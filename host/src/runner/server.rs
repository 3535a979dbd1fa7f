//! The HTTP/1.1 server: accepts connections, bounds them (count, idle time, header size, slow
//! clients), answers each request through [`App`], and stops in two steps on shutdown.
//!
//! Shutdown first closes the listener (new connections are refused) while open connections go
//! on being served, each response asking the client to close; then, once the runner has
//! drained its work, every connection is shut down gracefully.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::header::{CONNECTION, HeaderValue};
use http::{Request, Version};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::endpoints::App;
use super::options::HttpLimits;
use crate::intake::{HttpResponse, InFlight};

/// How long the accept loop pauses after `accept` fails (out of file descriptors, say), so a
/// persistent failure does not spin a core.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Handles to stop a running server.
pub struct ServerControl {
    /// Set to stop accepting connections.
    pub stop_accepting: watch::Sender<bool>,
    /// Set to shut every open connection down gracefully.
    pub close_connections: watch::Sender<bool>,
    /// Open connections.
    pub connections: Arc<InFlight>,
}

/// Starts serving `listener`; returns the handles to stop it.
pub fn start(listener: TcpListener, app: Arc<App>, limits: &HttpLimits) -> ServerControl {
    let (stop_accepting, stop_rx) = watch::channel(false);
    let (close_connections, close_rx) = watch::channel(false);
    let connections = Arc::new(InFlight::default());

    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // In hyper this timer runs whenever the connection waits for a request head, so it
        // bounds both idle keep-alive time and slow (slowloris) header senders.
        .header_read_timeout(limits.idle_timeout)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let keep_alive =
        HeaderValue::from_str(&format!("timeout={}", limits.idle_timeout.as_secs().max(1)))
            .unwrap_or(HeaderValue::from_static("timeout=5"));

    let accept = AcceptLoop {
        listener,
        app,
        builder: Arc::new(builder),
        keep_alive,
        max_connections: limits.max_connections,
        connections: connections.clone(),
        close_rx,
    };
    tokio::spawn(accept.run(stop_rx));
    ServerControl {
        stop_accepting,
        close_connections,
        connections,
    }
}

struct AcceptLoop {
    listener: TcpListener,
    app: Arc<App>,
    builder: Arc<http1::Builder>,
    keep_alive: HeaderValue,
    max_connections: usize,
    connections: Arc<InFlight>,
    close_rx: watch::Receiver<bool>,
}

impl AcceptLoop {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let metrics = self.app.state.metrics.clone();
        loop {
            let (stream, peer) = tokio::select! {
                biased;
                _ = stop.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "Cannot accept a connection; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            if self.connections.count() >= self.max_connections {
                // Closing at once lets the client retry elsewhere instead of waiting in the
                // backlog for a slot.
                metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            metrics.connections_accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                app: self.app.clone(),
                keep_alive: self.keep_alive.clone(),
                peer,
            };
            let guard = self.connections.enter();
            let builder = self.builder.clone();
            let close = self.close_rx.clone();
            tokio::spawn(async move {
                let _guard = guard;
                connection.serve(stream, &builder, close).await;
            });
        }
        tracing::info!("Stopped accepting connections");
    }
}

/// One client connection.
#[derive(Clone)]
struct Connection {
    app: Arc<App>,
    keep_alive: HeaderValue,
    peer: SocketAddr,
}

impl Connection {
    async fn serve(
        self,
        stream: tokio::net::TcpStream,
        builder: &http1::Builder,
        mut close: watch::Receiver<bool>,
    ) {
        let metrics = self.app.state.metrics.clone();
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let service = service_fn(move |request| {
            let this = this.clone();
            async move { Ok::<_, Infallible>(this.answer(request).await) }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let closing = *close.borrow();
        if closing {
            connection.as_mut().graceful_shutdown();
        }
        let closed = async move {
            // Dropping the borrow at once keeps the future `Send`.
            let _ = close.wait_for(|closing| *closing).await.map(|_| ());
        };
        tokio::select! {
            result = connection.as_mut() => log_connection_end(result),
            () = closed, if !closing => {
                connection.as_mut().graceful_shutdown();
                log_connection_end(connection.await);
            }
        }
        metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    async fn answer(&self, request: Request<Incoming>) -> HttpResponse {
        let state = &self.app.state;
        let _request = state.requests.enter();
        let wants_keep_alive = keeps_alive(&request);
        let (route, mut response) = self.app.handle(request, Some(self.peer.ip())).await;
        state
            .metrics
            .count_request(route, response.status().as_u16());

        // Node announces keep-alive on every response; while draining, clients are asked to
        // close so that their next request goes to another instance.
        let headers = response.headers_mut();
        if wants_keep_alive && !state.is_draining() {
            headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
            headers.insert("keep-alive", self.keep_alive.clone());
        } else {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Whether the client wants the connection kept open after this request.
fn keeps_alive<B>(request: &Request<B>) -> bool {
    let connection = request
        .headers()
        .get(CONNECTION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let has = |token: &str| {
        connection
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match request.version() {
        Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

fn log_connection_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Clients that vanish, time out or send garbage are routine on a public endpoint.
        tracing::debug!(error = %e, "Connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_alive_follows_the_request() {
        let r = |version, connection: Option<&str>| {
            let mut builder = Request::get("/").version(version);
            if let Some(c) = connection {
                builder = builder.header(CONNECTION, c);
            }
            keeps_alive(&builder.body(()).unwrap())
        };
        assert!(r(Version::HTTP_11, None));
        assert!(!r(Version::HTTP_11, Some("close")));
        assert!(!r(Version::HTTP_10, None));
        assert!(r(Version::HTTP_10, Some("Keep-Alive")));
    }
}
