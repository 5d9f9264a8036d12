//! `millrace tickerplant`: run the stand-in until SIGINT or SIGTERM, then
//! print one `rows TABLE N` line per table on stdout. With `--tls-cert` and
//! `--tls-key` it serves TLS only (as kdb+ -E 2), requiring client
//! certificates signed by `--tls-client-ca` when that is given.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::tickerplant::{parse_users, Tickerplant, TickerplantOptions};
use super::tls::ServerTlsFiles;

/// The most bytes read from `--users`: far more `user:password` lines than
/// a test stand-in has.
const USERS_FILE_BYTES_MAX: u64 = 16 << 20;

/// Runs until a signal; errors are messages for the user.
pub fn run_tickerplant(
    listen: &str,
    journal: Option<&Path>,
    users: Option<&Path>,
    tls: Option<&ServerTlsFiles>,
) -> Result<(), String> {
    let tls = tls.map(ServerTlsFiles::load).transpose()?;
    let serves_tls = tls.is_some();
    let users = match users {
        Some(path) => {
            let text = crate::files::read_text_capped(path, USERS_FILE_BYTES_MAX)
                .map_err(|e| format!("cannot read users file {}: {e}", path.display()))?;
            Some(parse_users(&text))
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| format!("cannot install signal handler: {e}"))?;
    }
    let options = TickerplantOptions {
        journal: journal.map(Path::to_path_buf),
        users,
        tls,
        ..TickerplantOptions::default()
    };
    let tp = Tickerplant::bind(listen, options)
        .map_err(|e| format!("tickerplant cannot listen on {listen}: {e}"))?;
    // The first line says where we listen (port 0 picks a free one).
    println!("listening {}", tp.local_addr());
    if serves_tls {
        eprintln!("millrace tickerplant: serving TLS only");
    }
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let counts = tp.stop();
    let mut out = std::io::stdout().lock();
    for (table, rows) in counts {
        let _ = writeln!(out, "rows {table} {rows}");
    }
    let _ = out.flush();
    Ok(())
}
