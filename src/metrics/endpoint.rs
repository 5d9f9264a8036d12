//! The HTTP endpoint: hyper (HTTP/1.1) on a current-thread tokio runtime
//! that owns the `metrics` thread, so no data-path thread ever runs async
//! code or waits on a scrape. It answers `GET` (and `HEAD`) at any path with
//! the exposition; Prometheus asks for /metrics.
//!
//! A scraper must get through whatever else is connected, so every
//! connection is bounded: request head at most `REQUEST_HEAD_BYTES_MAX`,
//! a head that has not fully arrived `HEAD_TIMEOUT` after the connection
//! (or its previous request) went idle closes it (idle and slow-loris
//! clients alike), a connection lives `CONNECTION_LIFETIME_MAX` at most,
//! and at `CONNECTIONS_MAX` the oldest connection is closed to make room:
//! the newest client, the one most likely to be a scraper, is served.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::exposition::{Exporter, Exposition, CONTENT_TYPE as OPENMETRICS};

/// The request line and headers of a scrape are a few hundred bytes; hyper's
/// read buffer, and so the largest head it will parse, is this (its minimum).
const REQUEST_HEAD_BYTES_MAX: usize = 8192;
/// Headers per request at most (a scrape sends about five).
const REQUEST_HEADERS_MAX: usize = 32;
/// A whole request head must arrive within this, counted from when the
/// connection is waiting for one: an idle or trickling client is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Even a well-behaved keep-alive connection is closed after this (bounds a
/// client that sends requests but never reads the answers); Prometheus just
/// opens a new one.
const CONNECTION_LIFETIME_MAX: Duration = Duration::from_secs(120);
/// Open connections at most (each holds a socket and a few KiB of buffers).
const CONNECTIONS_MAX: usize = 1024;
/// A failed accept (out of file descriptors) is retried after this.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

pub struct MetricsEndpoint {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `render` output until dropped.
    pub fn start<F>(addr: SocketAddr, render: F) -> std::io::Result<MetricsEndpoint>
    where
        F: Fn(&mut Exposition<'_>) + Send + Sync + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let listener = {
            let _entered = runtime.enter();
            let std_listener = std::net::TcpListener::bind(addr)?;
            std_listener.set_nonblocking(true)?;
            TcpListener::from_std(std_listener)?
        };
        let addr = listener.local_addr()?;
        let exporter = Arc::new(Exporter::new(render));
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || runtime.block_on(serve(listener, exporter, stopped)))?;
        Ok(MetricsEndpoint {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        // Dropping the sender wakes the accept loop; the runtime, and with
        // it every open connection, goes when the thread returns.
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: TcpListener, exporter: Arc<Exporter>, mut stopped: oneshot::Receiver<()>) {
    let mut open: VecDeque<AbortHandle> = VecDeque::with_capacity(CONNECTIONS_MAX);
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        make_room(&mut open);
        let exporter = Arc::clone(&exporter);
        let task = tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let exporter = Arc::clone(&exporter);
                async move { Ok::<_, Infallible>(answer(&request, &exporter)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(REQUEST_HEAD_BYTES_MAX)
                .max_headers(REQUEST_HEADERS_MAX)
                .serve_connection(TokioIo::new(stream), service);
            // An error is the client's (timed out, malformed, went away):
            // its connection closes, nothing else to do.
            let _ = tokio::time::timeout(CONNECTION_LIFETIME_MAX, connection).await;
        });
        open.push_back(task.abort_handle());
    }
}

/// Forgets finished connections and, at `CONNECTIONS_MAX`, closes the oldest.
fn make_room(open: &mut VecDeque<AbortHandle>) {
    if open.len() < CONNECTIONS_MAX {
        return;
    }
    open.retain(|task| !task.is_finished());
    while open.len() >= CONNECTIONS_MAX {
        if let Some(oldest) = open.pop_front() {
            oldest.abort();
        }
    }
}

fn answer(request: &Request<Incoming>, exporter: &Exporter) -> Response<Full<Bytes>> {
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match exporter.encode() {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the exposition could not be encoded\n",
        ),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn endpoint() -> MetricsEndpoint {
        MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), |e| {
            e.counter("millrace_test_total", "A test counter.", 7)
        })
        .unwrap()
    }

    fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn serves_the_exposition_over_http() {
        let ep = endpoint();
        let reply = exchange(
            ep.local_addr(),
            b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("application/openmetrics-text"), "{reply}");
        assert!(reply.contains("\nmillrace_test_total 7\n"), "{reply}");
        assert!(reply.ends_with("# EOF\n"), "{reply}");
    }

    #[test]
    fn refuses_other_methods_and_oversized_heads() {
        let ep = endpoint();
        let reply = exchange(
            ep.local_addr(),
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        assert!(reply.starts_with("HTTP/1.1 405 "), "{reply}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
        huge.resize(huge.len() + 2 * REQUEST_HEAD_BYTES_MAX, b'a');
        huge.extend_from_slice(b"\r\n\r\n");
        let mut s = TcpStream::connect(ep.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The server may close before all of it is written.
        let _ = s.write_all(&huge);
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(
            reply.is_empty() || reply.starts_with("HTTP/1.1 431 "),
            "{reply}"
        );
    }
}
