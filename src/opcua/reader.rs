//! The OPC UA reader: one thread per OPC UA device, with a current-thread
//! tokio runtime that runs the async-opcua client (secure channel, session,
//! keep-alive, Publish loop, reconnects) and writes every value it delivers
//! into the thread's own SPSC ring, which the WAL writer drains like any
//! socket reader's.
//!
//! Subscribe: one subscription with one monitored item per tag (its client
//! handle is the tag's index + 1); the stack calls `Out::on_notification`
//! with each NotificationMessage, and each DataChange value becomes that
//! tag's records (convert.rs). Poll: every `poll_interval`, one Read per
//! `MaxNodesPerRead` tags (the server's OperationLimits, read at connect).
//!
//! Backpressure: a value is never dropped for a full ring. The callback
//! waits (on this thread) until the ring has room for the value, counting
//! one overrun per wait. While it waits the stack sends no Publish request
//! and no acknowledgement, so the server keeps what it has not delivered:
//! each monitored item's queue (`queue_size`) holds new changes, and a
//! queue that overflows sets the Overflow bit of the next value's
//! StatusCode, which reaches kdb+ in `quality`.
//!
//! A connection lost gives every tag one `NO_CONNECTION` sample (subscribe)
//! or one per missed poll (poll); the stack then reconnects with its own
//! backoff, reactivates or recreates the session and transfers or recreates
//! the subscription with its monitored items.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use opcua::client::{ClientBuilder, IdentityToken, OnSubscriptionNotificationCore, Session};
use opcua::client::{MonitoredItemMap, SessionPollResult};
use opcua::types::{
    DataChangeNotification, DataValue, ExtensionObject, MessageSecurityMode,
    MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId, NotificationMessage,
    ReadValueId, StatusCode, TimestampsToReturn, VariableId, Variant,
};
use tokio::sync::Notify;

use super::convert::{fill_bad, write_value, ItemPlan};
use crate::config::{DeviceConfig, Identity, OpcuaDevice, ReadMode, TimeSource};
use crate::reader::ring_out::RingOut;
use crate::reader::{Counters, DeviceSpec, Stats};
use crate::ring::Producer;
use crate::sample::{Quality, TagId};

/// The most elements of any array the stack decodes (its default
/// `DecodingOptions`): a Read answer, a CreateMonitoredItems answer and a
/// Publish answer's DataChange items are arrays, so each request is cut to
/// this many nodes and a subscription asks for at most this many
/// notifications per Publish.
pub const ARRAY_ELEMENTS_MAX: usize = opcua::types::constants::MAX_ARRAY_LENGTH;
/// Read requests carry at most this many nodes when the server does not say
/// (its `MaxNodesPerRead` is 0, absent or unreadable).
pub const NODES_PER_READ_DEFAULT: usize = ARRAY_ELEMENTS_MAX;
/// First wait after a full ring; doubles up to `STALL_WAIT_MAX`.
const STALL_WAIT_MIN: Duration = Duration::from_micros(200);
/// Longest wait between two looks at a full ring.
const STALL_WAIT_MAX: Duration = Duration::from_millis(10);
/// First wait before trying an unreachable server again; doubles up to
/// `RETRY_MAX` (the stack's own reconnects use the same two bounds).
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);
/// How long a clean stop waits for the session to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Counters go to the shared stats at most this often (and on every change
/// of connection).
const PUBLISH_EVERY: Duration = Duration::from_millis(100);

/// A running OPC UA reader thread (one device).
pub struct OpcuaReader {
    stop: Arc<StopSignal>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

/// Set once; wakes the runtime's main task.
#[derive(Default)]
struct StopSignal {
    set: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
}

impl OpcuaReader {
    /// Checks the device's NodeIds against the stack's parser and starts the
    /// thread. Errors here are set-up errors; the thread itself never gives
    /// up on the server.
    pub fn spawn(
        spec: DeviceSpec,
        producer: Producer,
        name: String,
        doorbell: Option<Arc<crate::doorbell::Doorbell>>,
    ) -> io::Result<OpcuaReader> {
        let device = spec.config;
        let Some(opcua) = device.opcua_part().cloned() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("device `{}` is not an OPC UA device", device.name),
            ));
        };
        let node_ids = node_ids(&device.name, &opcua)?;
        let plans: Vec<ItemPlan> = opcua
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| ItemPlan::new(t, TagId(spec.first_tag.0 + i as u32)))
            .collect();
        let records_max = plans.iter().map(ItemPlan::records).max().unwrap_or(1);
        if records_max > producer.capacity() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "device `{}`: a tag takes {records_max} ring slots, more than the ring's {}: \
                     raise ring_slots",
                    device.name,
                    producer.capacity()
                ),
            ));
        }
        let stats = Arc::new(Stats::default());
        let _ = stats
            .devices
            .set(vec![crate::reader::DeviceStats::new(&device.name)]);
        let stop = Arc::new(StopSignal::default());
        let out = Out {
            ring: RingOut::new(producer, records_max),
            plans,
            time_source: opcua.time_source,
            pending: Counters::default(),
            totals: Counters::default(),
            stats: Arc::clone(&stats),
            doorbell,
            stop: Arc::clone(&stop),
            published_at: Instant::now(),
            mismatch_logged: vec![false; opcua.tags.len()],
            device: device.name.clone(),
            clock: crate::reader::clock::Clock::new(),
        };
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let out = Arc::new(Mutex::new(out));
            runtime.block_on(run(device, opcua, node_ids, out, thread_stop));
            Ok(())
        })?;
        Ok(OpcuaReader {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Ends the thread (closing the session) and returns its outcome.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.set.store(true, Ordering::Relaxed);
        self.stop.notify.notify_one();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("OPC UA reader thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for OpcuaReader {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The stack's NodeIds of the device's tags, from their checked text.
fn node_ids(device: &str, opcua: &OpcuaDevice) -> io::Result<Vec<NodeId>> {
    opcua
        .tags
        .iter()
        .map(|t| {
            let text = t.node_id.to_string();
            text.parse::<NodeId>().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("device `{device}`, tag `{}`: `{text}` is not a NodeId the OPC UA stack takes", t.name),
                )
            })
        })
        .collect()
}

/// The thread's side of its ring, shared by the stack's subscription
/// callback and the thread's own tasks (all on this one thread: the lock is
/// never contended, it only satisfies the stack's `Send + Sync`).
struct Out {
    ring: RingOut,
    plans: Vec<ItemPlan>,
    time_source: TimeSource,
    pending: Counters,
    totals: Counters,
    stats: Arc<Stats>,
    doorbell: Option<Arc<crate::doorbell::Doorbell>>,
    stop: Arc<StopSignal>,
    published_at: Instant,
    /// One log line per tag for a value of an unexpected type.
    mismatch_logged: Vec<bool>,
    device: String,
    clock: crate::reader::clock::Clock,
}

impl Out {
    /// UNIX nanoseconds, on the readers' step-safe clock.
    fn now_ns(&self) -> i64 {
        self.clock.now().unix_ns
    }

    fn count(&mut self, bump: impl Fn(&mut Counters)) {
        bump(&mut self.pending);
        bump(&mut self.totals);
    }

    /// Waits until the ring has room for `records`; false if the reader is
    /// stopping first (the value is then not written).
    fn wait_for_room(&mut self, records: usize) -> bool {
        if self.ring.producer.free_at_least(records) >= records {
            return true;
        }
        self.count(|c| c.overruns += 1);
        self.publish(true);
        let mut wait = STALL_WAIT_MIN;
        while self.ring.producer.free_at_least(records) < records {
            if self.stop.is_set() {
                return false;
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(STALL_WAIT_MAX);
        }
        true
    }

    /// Writes one value of tag `index` (no tag: nothing).
    fn value(&mut self, index: usize, value: &DataValue, receive_ns: i64) {
        let Some(plan) = self.plans.get(index).copied() else {
            return;
        };
        let records = plan.records();
        if !self.wait_for_room(records) {
            return;
        }
        let time_source = self.time_source;
        let written = self.ring.write(records, |slice| {
            let w = write_value(&plan, value, time_source, receive_ns, slice);
            (w.records, w)
        });
        let Some(written) = written else { return };
        let bad = value.status.is_some_and(|s| s.is_bad());
        self.count(|c| {
            c.samples += 1;
            c.exception_samples += u64::from(bad);
        });
        if written.mismatch && !self.mismatch_logged[index] {
            self.mismatch_logged[index] = true;
            tracing::warn!(
                device = %self.device,
                "device {}: tag #{index}: the server sent {} where the tag's type is {}; \
                 written with quality TYPE_MISMATCH (said once per tag)",
                self.device,
                variant_name(value.value.as_ref()),
                plan.data_type
            );
        }
    }

    /// Every tag once with `quality` and no value.
    fn all_bad(&mut self, quality: Quality, ts_ns: i64) {
        for index in 0..self.plans.len() {
            self.bad(index, quality, ts_ns);
        }
    }

    fn bad(&mut self, index: usize, quality: Quality, ts_ns: i64) {
        let Some(plan) = self.plans.get(index).copied() else {
            return;
        };
        let records = plan.records();
        if !self.wait_for_room(records) {
            return;
        }
        let written = self.ring.write(records, |slice| {
            fill_bad(&plan, ts_ns, quality, slice);
            (records, ())
        });
        if written.is_some() {
            let no_connection = quality == Quality::NO_CONNECTION;
            self.count(|c| {
                c.samples += 1;
                c.no_connection_samples += u64::from(no_connection);
            });
        }
    }

    /// Rings the WAL writer's doorbell if samples went out, and hands the
    /// counters to the shared stats (`force`, or once per `PUBLISH_EVERY`).
    fn publish(&mut self, force: bool) {
        if self.ring.take_published() {
            if let Some(doorbell) = &self.doorbell {
                let ring = &mut self.ring;
                doorbell.ring(|| ring.filling());
            }
        }
        if force || self.published_at.elapsed() >= PUBLISH_EVERY {
            self.published_at = Instant::now();
            self.stats.publish(&mut self.pending);
            if let Some(devices) = self.stats.devices.get() {
                if let Some(d) = devices.first() {
                    d.store(&self.totals);
                }
            }
        }
    }
}

/// The stack's subscription callback: the whole NotificationMessage, so the
/// client handle (tag index + 1) picks the tag without a map lookup.
struct Notifications(Arc<Mutex<Out>>);

impl OnSubscriptionNotificationCore for Notifications {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let Ok(mut out) = self.0.lock() else { return };
        let receive_ns = out.now_ns();
        out.count(|c| c.responses += 1);
        for object in notification.notification_data.iter().flatten() {
            let Some(change) = object.inner_as::<DataChangeNotification>() else {
                continue;
            };
            for item in change.monitored_items.iter().flatten() {
                let index = (item.client_handle as usize).wrapping_sub(1);
                out.value(index, &item.value, receive_ns);
            }
        }
        out.publish(false);
    }
}

fn variant_name(value: Option<&Variant>) -> String {
    match value {
        None | Some(Variant::Empty) => "no value".to_string(),
        Some(v) => match v.type_id() {
            opcua::types::VariantTypeId::Array(t, _) => format!("an array of {t:?}"),
            t => format!("a {t:?}"),
        },
    }
}

/// The thread's main task: connect (retrying until the server answers),
/// then subscribe or poll until told to stop.
async fn run(
    device: DeviceConfig,
    opcua: OpcuaDevice,
    node_ids: Vec<NodeId>,
    out: Arc<Mutex<Out>>,
    stop: Arc<StopSignal>,
) {
    let mut retry = RETRY_MIN;
    let mut first = true;
    let (session, event_loop) = loop {
        if stop.is_set() {
            return;
        }
        match connect(&device, &opcua).await {
            Ok(pair) => break pair,
            Err(why) => {
                let quality = Quality::NO_CONNECTION;
                if let Ok(mut o) = out.lock() {
                    o.count(|c| c.connect_failures += 1);
                    if first {
                        let now = o.now_ns();
                        o.all_bad(quality, now);
                    }
                    o.publish(true);
                }
                if first {
                    tracing::warn!(
                        device = %device.name,
                        protocol = "opcua",
                        address = %device.address,
                        "device {}: cannot reach the OPC UA server: {why} (retrying; failures \
                         are counted, not logged, until it answers)",
                        device.name
                    );
                }
                first = false;
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = stop.notify.notified() => return,
                }
                retry = (retry * 2).min(RETRY_MAX);
            }
        }
    };
    let connected = Arc::new(AtomicBool::new(false));
    let subscribing = (opcua.mode == ReadMode::Subscribe).then(|| Arc::clone(&session));
    let events = tokio::spawn(watch(
        event_loop,
        subscribing,
        Arc::clone(&out),
        Arc::clone(&connected),
        Arc::clone(&stop),
        device.name.clone(),
        device.address.clone(),
    ));
    let work = async {
        match opcua.mode {
            ReadMode::Subscribe => subscribe(&session, &opcua, &node_ids, &out, &device).await,
            ReadMode::Poll => poll(&session, &device, &node_ids, &out, &connected).await,
        }
    };
    tokio::select! {
        () = work => {}
        () = stop.notify.notified() => {}
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, session.disconnect()).await;
    events.abort();
    if connected.swap(false, Ordering::Relaxed) {
        if let Ok(o) = out.lock() {
            o.stats.connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if let Ok(mut o) = out.lock() {
        o.publish(true);
    }
}

/// A client for the device and its session (not yet connected: the event
/// loop connects). Asks the server for its endpoints first, so an
/// unreachable server is an error here.
async fn connect(
    device: &DeviceConfig,
    opcua: &OpcuaDevice,
) -> Result<
    (
        Arc<Session>,
        opcua::client::SessionEventLoop<opcua::client::transport::TcpConnector>,
    ),
    String,
> {
    let application_uri = opcua
        .application_uri
        .clone()
        .unwrap_or_else(default_application_uri);
    let mut client = ClientBuilder::new()
        .application_name("millrace")
        .application_uri(application_uri)
        .product_uri("urn:millrace")
        // Security None only (the parser refuses the rest): no certificate
        // of our own, none of the server's trusted.
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .pki_dir(std::env::temp_dir().join("millrace-opcua-pki"))
        .session_retry_limit(-1)
        .session_retry_initial(RETRY_MIN)
        .session_retry_max(RETRY_MAX)
        .request_timeout(device.timeout)
        .recreate_subscriptions(true)
        .recreate_monitored_items_chunk(ARRAY_ELEMENTS_MAX)
        .session_name(format!("millrace {}", device.name))
        .client()
        .map_err(|errors| errors.join("; "))?;
    let identity = match &opcua.identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName { user, password } => {
            IdentityToken::new_user_name(user.clone(), password.expose().to_string())
        }
    };
    // The server's endpoint with this policy and mode; its user token
    // policies come with it, and the stack picks the one for `identity`.
    let endpoint: opcua::types::EndpointDescription = (
        device.address.as_str(),
        opcua.security_policy.name(),
        MessageSecurityMode::None,
    )
        .into();
    let connecting = client.connect_to_matching_endpoint(endpoint, identity);
    match tokio::time::timeout(device.timeout.max(Duration::from_secs(1)), connecting).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(format!("{} ({})", e.status(), e)),
        Err(_) => Err("no answer to GetEndpoints in time".to_string()),
    }
}

/// `urn:millrace:HOST`, the host name as Linux keeps it.
fn default_application_uri() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "urn:millrace:{}",
        if host.is_empty() { "localhost" } else { host }
    )
}

/// Drives the stack's session event loop and follows the connection: one
/// `NO_CONNECTION` sample per tag when it is lost (subscribe mode shows the
/// gap; poll mode writes its own per missed poll), counters for the rest.
async fn watch(
    event_loop: opcua::client::SessionEventLoop<opcua::client::transport::TcpConnector>,
    subscribing: Option<Arc<Session>>,
    out: Arc<Mutex<Out>>,
    connected: Arc<AtomicBool>,
    stop: Arc<StopSignal>,
    name: String,
    address: String,
) {
    let stream = event_loop.enter();
    let mut stream = std::pin::pin!(stream);
    let mut ever = false;
    let mut failing = false;
    while let Some(event) = stream.next().await {
        let Ok(event) = event else {
            tracing::warn!(device = %name, "device {name}: the OPC UA session gave up");
            break;
        };
        let Ok(mut o) = out.lock() else { break };
        match event {
            SessionPollResult::Reconnected(mode) => {
                connected.store(true, Ordering::Relaxed);
                o.stats.connected.fetch_add(1, Ordering::Relaxed);
                if ever {
                    o.count(|c| c.reconnects += 1);
                    // async-opcua 0.19 starts each connection's Publish loop
                    // idle until something triggers it, and the subscription
                    // it transferred or recreated did so before that loop
                    // existed: without this trigger no Publish is sent again.
                    if let Some(session) = &subscribing {
                        session.trigger_publish_now();
                    }
                }
                if ever || failing {
                    tracing::info!(
                        device = %name,
                        protocol = "opcua",
                        address = %address,
                        "device {name}: connected again ({})",
                        match mode {
                            opcua::client::SessionConnectMode::NewSession(_) => "a new session",
                            opcua::client::SessionConnectMode::ReactivatedSession(_) =>
                                "the session reactivated",
                        }
                    );
                }
                ever = true;
                failing = false;
                o.publish(true);
            }
            SessionPollResult::ConnectionLost(status) => {
                if connected.swap(false, Ordering::Relaxed) {
                    o.stats.connected.fetch_sub(1, Ordering::Relaxed);
                }
                if stop.is_set() {
                    // Our own clean stop: no gap to show.
                    continue;
                }
                o.count(|c| c.disconnects += 1);
                tracing::warn!(
                    device = %name,
                    protocol = "opcua",
                    address = %address,
                    "device {name}: the OPC UA connection was lost: {status} (the stack \
                     reconnects and restores the subscription)"
                );
                let now = o.now_ns();
                o.all_bad(Quality::NO_CONNECTION, now);
                o.publish(true);
            }
            SessionPollResult::ReconnectFailed(status) => {
                o.count(|c| c.connect_failures += 1);
                if !failing {
                    failing = true;
                    tracing::warn!(
                        device = %name,
                        "device {name}: reconnecting failed: {status} (retrying; counted, not \
                         logged, until it connects)"
                    );
                }
                o.publish(true);
            }
            _ => o.publish(false),
        }
    }
}

/// One subscription, one monitored item per tag; then the callback does
/// the work until the reader stops.
async fn subscribe(
    session: &Arc<Session>,
    opcua: &OpcuaDevice,
    node_ids: &[NodeId],
    out: &Arc<Mutex<Out>>,
    device: &DeviceConfig,
) {
    session.wait_for_connection().await;
    let publishing = opcua.publishing_interval;
    // Keep-alive every ~10 s of silence; the server drops the subscription
    // after three missed keep-alives' worth of publishing intervals.
    let keep_alive =
        u32::try_from(Duration::from_secs(10).as_millis() / publishing.as_millis().max(1))
            .unwrap_or(u32::MAX)
            .max(1);
    let lifetime = keep_alive.saturating_mul(3);
    let subscription = loop {
        let created = session
            .create_subscription(
                publishing,
                lifetime,
                keep_alive,
                ARRAY_ELEMENTS_MAX as u32,
                0,
                true,
                Notifications(Arc::clone(out)),
            )
            .await;
        match created {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!(
                    device = %device.name,
                    "device {}: CreateSubscription failed: {e} (trying again)",
                    device.name
                );
                tokio::time::sleep(RETRY_MAX).await;
                session.wait_for_connection().await;
            }
        }
    };
    let sampling_ms = opcua.sampling_interval.as_secs_f64() * 1000.0;
    let items: Vec<MonitoredItemCreateRequest> = node_ids
        .iter()
        .enumerate()
        .map(|(i, node)| {
            MonitoredItemCreateRequest::new(
                ReadValueId::new_value(node.clone()),
                MonitoringMode::Reporting,
                MonitoringParameters {
                    client_handle: i as u32 + 1,
                    sampling_interval: sampling_ms,
                    filter: ExtensionObject::null(),
                    queue_size: opcua.queue_size,
                    discard_oldest: true,
                },
            )
        })
        .collect();
    for (chunk_index, chunk) in items.chunks(ARRAY_ELEMENTS_MAX).enumerate() {
        let first = chunk_index * ARRAY_ELEMENTS_MAX;
        let created = session
            .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
            .await;
        match created {
            Ok(results) => {
                for (offset, result) in results.iter().enumerate() {
                    let index = first + offset;
                    let status = result.result.status_code;
                    if status.is_bad() {
                        let tag = opcua.tags.get(index).map_or("?", |t| t.name.as_str());
                        tracing::warn!(
                            device = %device.name,
                            "device {}: tag `{tag}`: the server refused its monitored item: \
                             {status}",
                            device.name
                        );
                        if let Ok(mut o) = out.lock() {
                            let now = o.now_ns();
                            o.bad(index, Quality::opcua(status.bits()), now);
                            o.publish(true);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(
                device = %device.name,
                "device {}: CreateMonitoredItems failed: {e}",
                device.name
            ),
        }
    }
    std::future::pending::<()>().await;
}

/// Reads every tag each `poll_interval`, `MaxNodesPerRead` at a time.
async fn poll(
    session: &Arc<Session>,
    device: &DeviceConfig,
    node_ids: &[NodeId],
    out: &Arc<Mutex<Out>>,
    connected: &AtomicBool,
) {
    let reads: Vec<ReadValueId> = node_ids
        .iter()
        .map(|n| ReadValueId::new_value(n.clone()))
        .collect();
    let mut per_read = 0usize;
    let mut ticker = tokio::time::interval(device.poll_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        if let Ok(mut o) = out.lock() {
            o.count(|c| c.polls += 1);
        }
        if !connected.load(Ordering::Relaxed) {
            if let Ok(mut o) = out.lock() {
                let now = o.now_ns();
                o.all_bad(Quality::NO_CONNECTION, now);
                o.publish(true);
            }
            per_read = 0;
            continue;
        }
        if per_read == 0 {
            per_read = nodes_per_read(session).await;
        }
        for (chunk_index, chunk) in reads.chunks(per_read).enumerate() {
            let first = chunk_index * per_read;
            let answer = tokio::time::timeout(
                device.timeout,
                session.read(chunk, TimestampsToReturn::Both, 0.0),
            )
            .await;
            let Ok(mut o) = out.lock() else { return };
            let receive_ns = o.now_ns();
            o.count(|c| c.requests += 1);
            match answer {
                Ok(Ok(values)) if values.len() == chunk.len() => {
                    o.count(|c| c.responses += 1);
                    for (offset, value) in values.iter().enumerate() {
                        o.value(first + offset, value, receive_ns);
                    }
                }
                Ok(Ok(_)) => {
                    o.count(|c| c.malformed += 1);
                    for offset in 0..chunk.len() {
                        o.bad(first + offset, Quality::DECODE_ERROR, receive_ns);
                    }
                }
                Ok(Err(e)) => {
                    let quality = if e.status() == StatusCode::BadTimeout {
                        o.count(|c| c.timeouts += 1);
                        Quality::TIMEOUT
                    } else {
                        Quality::opcua(e.status().bits())
                    };
                    for offset in 0..chunk.len() {
                        o.bad(first + offset, quality, receive_ns);
                    }
                }
                Err(_) => {
                    o.count(|c| c.timeouts += 1);
                    for offset in 0..chunk.len() {
                        o.bad(first + offset, Quality::TIMEOUT, receive_ns);
                    }
                }
            }
            o.publish(false);
        }
        if let Ok(mut o) = out.lock() {
            o.publish(false);
        }
    }
}

/// The server's `MaxNodesPerRead` (0 or unreadable: the default), at most
/// `ARRAY_ELEMENTS_MAX`.
async fn nodes_per_read(session: &Session) -> usize {
    let node: NodeId = VariableId::Server_ServerCapabilities_OperationLimits_MaxNodesPerRead.into();
    let read = session
        .read(
            &[ReadValueId::new_value(node)],
            TimestampsToReturn::Neither,
            0.0,
        )
        .await;
    let limit = match read.as_deref() {
        Ok(
            [DataValue {
                value: Some(Variant::UInt32(n)),
                ..
            }],
        ) => *n as usize,
        _ => 0,
    };
    if limit == 0 {
        NODES_PER_READ_DEFAULT
    } else {
        limit.min(ARRAY_ELEMENTS_MAX)
    }
}

/// Requests per cycle for the configuration summary: one Publish per
/// publishing interval (subscribe), one Read per `NODES_PER_READ_DEFAULT`
/// tags (poll; the server's own limit is known only once connected).
pub fn requests_per_cycle(opcua: &OpcuaDevice) -> usize {
    match opcua.mode {
        ReadMode::Subscribe => 1,
        ReadMode::Poll => opcua.tags.len().div_ceil(NODES_PER_READ_DEFAULT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_node_id_text_is_taken_by_the_stack() {
        for text in [
            "i=2258",
            "ns=2;s=Cell3.Temp",
            "ns=2;s=a;b=c",
            "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
        ] {
            let ours = crate::config::opcua_node::parse_node_id(text).unwrap();
            let theirs: NodeId = ours.to_string().parse().unwrap();
            assert_eq!(theirs.namespace, ours.namespace, "{text}");
            assert_eq!(
                theirs.to_string().replace("ns=0;", ""),
                ours.to_string(),
                "{text}"
            );
        }
    }
}
