//! Reads millrace's Prometheus endpoint (the names of
//! `millrace::app::run::render_metrics`): counters and per-stage quantiles.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A scrape's body at most: the exposition is a few KiB.
const BODY_BYTES_MAX: u64 = 1 << 20;

pub struct Scrape {
    text: String,
}

impl Scrape {
    pub fn fetch(addr: SocketAddr) -> std::io::Result<Scrape> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.take(BODY_BYTES_MAX).read_to_string(&mut text)?;
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

    /// A stage quantile in milliseconds (the endpoint gives seconds).
    pub fn stage_ms(&self, stage: &str, quantile: &str) -> Option<f64> {
        let key =
            format!("millrace_stage_latency_seconds{{stage=\"{stage}\",quantile=\"{quantile}\"}}");
        self.value(&key).map(|s| s * 1e3)
    }

    pub fn stage_count(&self, stage: &str) -> u64 {
        self.counter(&format!(
            "millrace_stage_latency_seconds_count{{stage=\"{stage}\"}}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_counters_and_quantiles() {
        let s = Scrape {
            text: "HTTP/1.1 200 OK\r\n\r\n# TYPE x counter\nmillrace_frames_total 42\n\
                   millrace_stage_latency_seconds{stage=\"end_to_end\",quantile=\"0.99\"} 0.0125\n\
                   millrace_stage_latency_seconds_count{stage=\"end_to_end\"} 7\n"
                .into(),
        };
        assert_eq!(s.counter("millrace_frames_total"), 42);
        assert_eq!(s.counter("millrace_missing_total"), 0);
        assert_eq!(s.stage_ms("end_to_end", "0.99"), Some(12.5));
        assert_eq!(s.stage_count("end_to_end"), 7);
    }
}
