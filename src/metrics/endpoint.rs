//! A minimal HTTP/1.0 server for `GET /metrics`: one thread, one request per
//! connection, bounded request size and time. It answers whatever path is
//! asked with the exposition (Prometheus asks for /metrics).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::Exposition;

/// A request line and headers larger than this are cut off: the endpoint
/// only needs to see that a request arrived.
const REQUEST_BYTES_MAX: usize = 8192;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const ACCEPT_POLL: Duration = Duration::from_millis(50);

pub struct MetricsEndpoint {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `render` output until `stop`.
    pub fn start<F>(addr: SocketAddr, render: F) -> std::io::Result<MetricsEndpoint>
    where
        F: Fn(&mut Exposition) + Send + 'static,
    {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(listener, &stop_flag, render))?;
        Ok(MetricsEndpoint {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<F: Fn(&mut Exposition)>(listener: TcpListener, stop: &AtomicBool, render: F) {
    let mut exposition = Exposition::default();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                exposition.clear();
                render(&mut exposition);
                let _ = answer(stream, exposition.as_str());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = [0u8; REQUEST_BYTES_MAX];
    let mut filled = 0;
    while filled < request.len() {
        let n = stream.read(&mut request[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
        if request[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_rendered_text_over_http() {
        let ep = MetricsEndpoint::start("127.0.0.1:0".parse().unwrap(), |e| {
            e.counter("millrace_test_total", "A test counter.", 7)
        })
        .unwrap();
        let mut s = TcpStream::connect(ep.local_addr()).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.0 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("millrace_test_total 7\n"), "{reply}");
    }
}
