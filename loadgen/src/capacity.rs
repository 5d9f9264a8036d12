//! `capacity`: how many answers the farm gives per second and per CPU-second
//! of its event loop. A raw client (blocking sockets, one thread per share of
//! the connections, `depth` requests in flight on each) reads `quantity`
//! holding registers again and again and checks every value it gets.
//! `--peer HOST:PORT` runs the same client against another Modbus server
//! (e.g. modbus-tk) right after, for a side-by-side figure.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use clap::Args;
use millrace::farm::{self, Farm, FarmOptions};

#[derive(Args, Debug)]
pub struct CapacityArgs {
    /// Farm devices (one connection each).
    #[arg(long, default_value_t = 64)]
    devices: u32,
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Registers per read, 1..=125.
    #[arg(long, default_value_t = 125)]
    quantity: u16,
    /// Requests in flight per connection (sent in one write).
    #[arg(long, default_value_t = 1)]
    depth: usize,
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Also measure this server with the same client (connections: --devices).
    #[arg(long)]
    peer: Option<SocketAddr>,
}

struct Outcome {
    responses: u64,
    bad_values: u64,
    elapsed: Duration,
}

pub fn run(args: &CapacityArgs) -> io::Result<()> {
    if !(1..=125).contains(&args.quantity) || args.depth == 0 || args.client_threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "quantity 1..=125, depth >= 1",
        ));
    }
    let options = FarmOptions {
        devices: args.devices,
        threads: 1,
        ..FarmOptions::default()
    };
    let handle = Farm::start(options)?;
    let targets: Vec<(SocketAddr, Option<u32>)> = (0..args.devices)
        .filter_map(|d| handle.addr(d).map(|a| (a, Some(d))))
        .collect();
    let cpu_before = handle.counters().cpu_ns;
    let outcome = drive(args, &targets)?;
    let counters = handle.stop()?;
    let cpu_s = (counters.cpu_ns - cpu_before) as f64 / 1e9;
    report("farm", args, &outcome);
    println!(
        "farm: {:.2} event-loop CPU-seconds, {:.0} responses per farm CPU-second",
        cpu_s,
        outcome.responses as f64 / cpu_s.max(1e-9)
    );
    if let Some(peer) = args.peer {
        let targets: Vec<_> = (0..args.devices).map(|_| (peer, None)).collect();
        let outcome = drive(args, &targets)?;
        report(&format!("peer {peer}"), args, &outcome);
    }
    Ok(())
}

fn report(name: &str, args: &CapacityArgs, outcome: &Outcome) {
    let seconds = outcome.elapsed.as_secs_f64();
    println!(
        "{name}: {} connections, depth {}, {} registers: {:.0} responses/s \
         ({} responses in {:.2} s), {} bad values",
        args.devices,
        args.depth,
        args.quantity,
        outcome.responses as f64 / seconds,
        outcome.responses,
        seconds,
        outcome.bad_values
    );
}

fn drive(args: &CapacityArgs, targets: &[(SocketAddr, Option<u32>)]) -> io::Result<Outcome> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let share = targets.len().div_ceil(args.client_threads);
    let outcomes = std::thread::scope(|scope| {
        let workers: Vec<_> = targets
            .chunks(share.max(1))
            .map(|chunk| scope.spawn(move || client(chunk, args.quantity, args.depth, deadline)))
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(io::Error::other("client panicked")))
            })
            .collect::<Vec<_>>()
    });
    let mut total = Outcome {
        responses: 0,
        bad_values: 0,
        elapsed: start.elapsed(),
    };
    for outcome in outcomes {
        let (responses, bad_values) = outcome?;
        total.responses += responses;
        total.bad_values += bad_values;
    }
    Ok(total)
}

fn request(tid: u16, quantity: u16) -> [u8; 12] {
    let [t0, t1] = tid.to_be_bytes();
    let [q0, q1] = quantity.to_be_bytes();
    [t0, t1, 0, 0, 0, 6, 1, 3, 0, 0, q0, q1]
}

/// Round-robin over the connections until the deadline; (responses, bad values).
fn client(
    targets: &[(SocketAddr, Option<u32>)],
    quantity: u16,
    depth: usize,
    deadline: Instant,
) -> io::Result<(u64, u64)> {
    let mut streams = Vec::with_capacity(targets.len());
    let mut batch = Vec::with_capacity(12 * depth);
    for (i, &(addr, _)) in targets.iter().enumerate() {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        batch.clear();
        for k in 0..depth {
            batch.extend_from_slice(&request((i * depth + k) as u16, quantity));
        }
        stream.write_all(&batch)?;
        streams.push(stream);
    }
    let response_size = 9 + 2 * usize::from(quantity);
    let mut buf = vec![0u8; response_size];
    let (mut responses, mut bad) = (0u64, 0u64);
    let mut round = 0u16;
    while Instant::now() < deadline {
        round = round.wrapping_add(1);
        for (stream, &(_, device)) in streams.iter_mut().zip(targets) {
            for _ in 0..depth {
                stream.read_exact(&mut buf)?;
                bad += check(&buf, quantity, device);
                responses += 1;
            }
            batch.clear();
            for _ in 0..depth {
                batch.extend_from_slice(&request(round, quantity));
            }
            stream.write_all(&batch)?;
        }
    }
    Ok((responses, bad))
}

/// Bad values in one response (all of them if the frame is wrong).
fn check(response: &[u8], quantity: u16, device: Option<u32>) -> u64 {
    let header_ok = response.get(7) == Some(&3) && response.get(8) == Some(&((quantity * 2) as u8));
    if !header_ok {
        return u64::from(quantity);
    }
    let Some(device) = device else { return 0 };
    let data = response.get(9..).unwrap_or_default();
    (0u16..)
        .zip(data.chunks_exact(2))
        .filter(|(address, pair)| {
            !farm::verify_register(device, *address, u16::from_be_bytes([pair[0], pair[1]]))
        })
        .count() as u64
}
