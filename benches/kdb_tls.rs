//! The cost of TLS on the publish path: our publisher sends 10 `.u.upd`
//! batches of 10,000 rows and a sync chaser to the stand-in on 127.0.0.1,
//! over plain TCP and over TLS 1.3 (rustls/ring both ends, client
//! certificate required), the same batches side by side. Loopback, so never
//! compressed: what TLS adds is encryption, records and copies.
//!
//! cargo bench --bench kdb_tls -- --measurement-time 3 --warm-up-time 1

#[path = "../tests/tls_support/mod.rs"]
mod tls_support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use millrace::config::{ClientCertFiles, Secret, SinkTls};
use millrace::kdb::{
    Publisher, PublisherOptions, ServerTlsFiles, SymbolTable, Tickerplant, TickerplantOptions,
    TlsClient,
};
use millrace::{Sample, TagId};

const ROWS: usize = 10_000;
const BATCHES: usize = 10;
const TAGS: usize = 25_000;

fn symbols() -> SymbolTable {
    let mut t = SymbolTable::new();
    for i in 0..TAGS {
        let device = format!("dev-{:03}", i / 125);
        t.push(&format!("{device}.tag-{:03}", i % 125), &device)
            .unwrap();
    }
    t
}

fn batch() -> Vec<Sample> {
    let ts0 = 1_764_000_000_000_000_000i64;
    (0..ROWS)
        .map(|i| Sample::f64(ts0 + i as i64 * 10_000, TagId(i as u32), (i % 100) as f64))
        .collect()
}

fn bench(c: &mut Criterion) {
    let pki = tls_support::pki();
    let files = ServerTlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    };
    let plain_tp = Tickerplant::bind("127.0.0.1:0", TickerplantOptions::default()).unwrap();
    let tls_options = TickerplantOptions {
        tls: Some(files.load().unwrap()),
        ..Default::default()
    };
    let tls_tp = Tickerplant::bind("127.0.0.1:0", tls_options).unwrap();
    let client = SinkTls {
        ca_file: pki.ca.clone(),
        client_cert: Some(ClientCertFiles {
            cert_file: pki.client_cert.clone(),
            key_file: pki.client_key.clone(),
        }),
        server_name: "127.0.0.1".into(),
    };
    let symbols = symbols();
    let batch = batch();
    let none = Secret::default();
    let plain_addr = plain_tp.local_addr().to_string();
    let mut plain = Publisher::connect(&plain_addr, "", &none, Default::default()).unwrap();
    let options = PublisherOptions {
        tls: Some(TlsClient::from_sink(&client).unwrap()),
        ..Default::default()
    };
    let tls_addr = tls_tp.local_addr().to_string();
    let mut tls = Publisher::connect(&tls_addr, "", &none, options).unwrap();
    assert!(tls.is_tls() && !plain.is_tls());

    let mut group = c.benchmark_group("standin_publish_10x10k");
    group.throughput(Throughput::Elements((ROWS * BATCHES) as u64));
    for (name, publisher) in [("plain", &mut plain), ("tls", &mut tls)] {
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BATCHES {
                    publisher.publish("plc", &batch, seq, &symbols).unwrap();
                    seq += ROWS as u64;
                }
                publisher.chase().unwrap();
            })
        });
    }
    group.finish();
    drop((plain, tls));
    assert!(plain_tp.rows("plc") > 0 && tls_tp.rows("plc") > 0);
}

criterion_group!(benches, bench);
criterion_main!(benches);
