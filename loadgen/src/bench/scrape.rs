//! Reads millrace's metrics endpoint (the names of
//! `millrace::app::run::render_metrics`): counters and per-stage quantiles.
//! One hyper HTTP/1.1 request per scrape on a current-thread runtime.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// A scrape's body at most: the exposition is a few tens of KiB.
const BODY_BYTES_MAX: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole exchange, connect excluded.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Scrape {
    text: String,
}

impl Scrape {
    pub fn fetch(addr: SocketAddr) -> std::io::Result<Scrape> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let text = runtime.block_on(get_text(addr))?;
        Ok(Scrape { text })
    }

    /// The value of a line `NAME VALUE` or `NAME{LABELS} VALUE` whose name
    /// and labels are exactly `key`.
    pub fn value(&self, key: &str) -> Option<f64> {
        self.text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == key).then(|| value.parse().ok()).flatten()
        })
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.value(name).map_or(0, |v| v as u64)
    }

    /// A stage's exact quantile in milliseconds (the endpoint gives seconds).
    pub fn stage_ms(&self, stage: &str, quantile: &str) -> Option<f64> {
        let key = format!(
            "millrace_stage_latency_quantile_seconds{{stage=\"{stage}\",quantile=\"{quantile}\"}}"
        );
        self.value(&key).map(|s| s * 1e3)
    }

    pub fn stage_count(&self, stage: &str) -> u64 {
        self.counter(&format!(
            "millrace_stage_latency_seconds_count{{stage=\"{stage}\"}}"
        ))
    }
}

async fn get_text(addr: SocketAddr) -> std::io::Result<String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| timed_out("connect"))??;
    tokio::time::timeout(SCRAPE_TIMEOUT, exchange(stream, addr))
        .await
        .map_err(|_| timed_out("scrape"))?
}

async fn exchange(stream: tokio::net::TcpStream, addr: SocketAddr) -> std::io::Result<String> {
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(std::io::Error::other)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(std::io::Error::other)?;
    if !response.status().is_success() {
        return Err(std::io::Error::other(format!(
            "the metrics endpoint answered {}",
            response.status()
        )));
    }
    let body = Limited::new(response.into_body(), BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    driver.abort();
    String::from_utf8(body.to_vec()).map_err(std::io::Error::other)
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_counters_and_quantiles() {
        let s = Scrape {
            text: "# TYPE millrace_frames counter\nmillrace_frames_total 42\n\
                   millrace_stage_latency_quantile_seconds{stage=\"end_to_end\",quantile=\"0.99\"} \
                   0.0125\n\
                   millrace_stage_latency_seconds_count{stage=\"end_to_end\"} 7\n# EOF\n"
                .into(),
        };
        assert_eq!(s.counter("millrace_frames_total"), 42);
        assert_eq!(s.counter("millrace_missing_total"), 0);
        assert_eq!(s.stage_ms("end_to_end", "0.99"), Some(12.5));
        assert_eq!(s.stage_count("end_to_end"), 7);
    }

    #[test]
    fn fetches_from_the_real_endpoint() {
        let endpoint =
            millrace::metrics::MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), |e| {
                e.counter("millrace_frames_total", "Frames.", 5)
            })
            .unwrap();
        let s = Scrape::fetch(endpoint.local_addr()).unwrap();
        assert_eq!(s.counter("millrace_frames_total"), 5);
    }
}
