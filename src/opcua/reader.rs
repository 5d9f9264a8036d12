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
use opcua::client::{MonitoredItemMap, SessionPollResult};
use opcua::client::{OnSubscriptionNotificationCore, Session};
use opcua::types::{
    DataChangeFilter, DataChangeNotification, DataChangeTrigger, DataValue, DeadbandType,
    ExtensionObject, MonitoredItemCreateRequest, MonitoringMode, MonitoringParameters, NodeId,
    NotificationMessage, ReadValueId, StatusCode, TimestampsToReturn, VariableId, Variant,
};
use tokio::sync::Notify;

use super::connect::{self, EventLoop, Refusal};
use super::convert::{fill_bad, write_value, ItemPlan};
use super::sequence::{Arrival, Sequence};
use crate::config::{Deadband, DeviceConfig, Identity, OpcuaDevice, ReadMode, TimeSource};
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
pub(super) const RETRY_MIN: Duration = Duration::from_millis(500);
pub(super) const RETRY_MAX: Duration = Duration::from_secs(10);
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
        // Tag ids in the configuration's order: an array tag takes one per
        // element.
        let mut next = spec.first_tag.0;
        let plans: Vec<ItemPlan> = opcua
            .tags
            .iter()
            .map(|t| {
                let plan = ItemPlan::new(t, TagId(next));
                next += plan.tags();
                plan
            })
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
            sequence: Sequence::default(),
            repair: Arc::new(Notify::new()),
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
    /// The subscription's data messages seen, and those missing.
    sequence: Sequence,
    /// Woken when a message is missing (subscribe mode's Republish task).
    repair: Arc<Notify>,
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
        let Some((written, _)) = written else { return };
        let bad = value.status.is_some_and(|s| s.is_bad());
        let samples = u64::from(plan.count);
        self.count(|c| {
            c.samples += samples;
            c.exception_samples += if bad { samples } else { 0 };
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
            let samples = u64::from(plan.count);
            self.count(|c| {
                c.samples += samples;
                c.no_connection_samples += if no_connection { samples } else { 0 };
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
        out.deliver(&notification);
    }
}

impl Out {
    /// Writes a NotificationMessage's values, once: a data message whose
    /// number was written already is skipped, and one that leaves a gap
    /// wakes the Republish task (`repair`).
    fn deliver(&mut self, notification: &NotificationMessage) {
        let has_data = notification
            .notification_data
            .as_ref()
            .is_some_and(|d| !d.is_empty());
        if has_data {
            if self.sequence.arrived(notification.sequence_number) == Arrival::Duplicate {
                return;
            }
            if self.sequence.has_missing() {
                self.repair.notify_one();
            }
        }
        let receive_ns = self.now_ns();
        self.count(|c| c.responses += 1);
        for object in notification.notification_data.iter().flatten() {
            let Some(change) = object.inner_as::<DataChangeNotification>() else {
                continue;
            };
            for item in change.monitored_items.iter().flatten() {
                let index = (item.client_handle as usize).wrapping_sub(1);
                self.value(index, &item.value, receive_ns);
            }
        }
        self.publish(false);
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
    let Some((session, event_loop)) = first_session(&device, &opcua, &out, &stop).await else {
        return;
    };
    let connected = Arc::new(AtomicBool::new(false));
    let subscribing = (opcua.mode == ReadMode::Subscribe).then(|| Arc::clone(&session));
    let events = tokio::spawn(watch(
        event_loop,
        subscribing,
        Arc::clone(&out),
        Arc::clone(&connected),
        Arc::clone(&stop),
        Named::of(&device, &opcua),
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

/// Connects (endpoints, trust, session), trying again with backoff until it
/// works or the reader stops (`None`). Every tag gets one `NO_CONNECTION`
/// sample at the first failure; each new reason is logged once, repeats are
/// counted.
async fn first_session(
    device: &DeviceConfig,
    opcua: &OpcuaDevice,
    out: &Arc<Mutex<Out>>,
    stop: &StopSignal,
) -> Option<(Arc<Session>, EventLoop)> {
    let config = connect::client_config(device, opcua);
    let mut retry = RETRY_MIN;
    let mut first = true;
    let mut said = String::new();
    loop {
        if stop.is_set() {
            return None;
        }
        let attempt = match connect::certificate_store(opcua) {
            Ok(store) => connect::session(device, opcua, &config, &store).await,
            Err(why) => Err(Refusal::Failed(why)),
        };
        let refusal = match attempt {
            Ok(pair) => return Some(pair),
            Err(refusal) => refusal,
        };
        if let Ok(mut o) = out.lock() {
            o.count(|c| c.connect_failures += 1);
            if first {
                let now = o.now_ns();
                o.all_bad(Quality::NO_CONNECTION, now);
            }
            o.publish(true);
        }
        first = false;
        let why = refusal.explain();
        if why != said {
            let what = match refusal {
                Refusal::Untrusted { .. } => "refuses the OPC UA server",
                Refusal::Failed(_) => "cannot reach the OPC UA server",
            };
            tracing::warn!(
                device = %device.name,
                protocol = "opcua",
                address = %device.address,
                "device {}: {what}: {why} (retrying; failures are counted, not logged, until \
                 it answers or the reason changes)",
                device.name
            );
            said = why;
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = stop.notify.notified() => return None,
        }
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// What a connection's log lines name: the device, its server, and the
/// security and identity it connects with (never the password).
struct Named {
    name: String,
    address: String,
    security: String,
}

impl Named {
    fn of(device: &DeviceConfig, opcua: &OpcuaDevice) -> Named {
        let identity = match &opcua.identity {
            Identity::Anonymous => "anonymous".to_string(),
            Identity::UserName { user, .. } => format!("user name `{user}`"),
            Identity::X509 { certificate, .. } => {
                format!("X.509 user certificate `{}`", certificate.display())
            }
        };
        Named {
            name: device.name.clone(),
            address: device.address.clone(),
            security: format!(
                "security policy {}, mode {}, {identity}",
                opcua.security_policy.name(),
                opcua.security_mode.name()
            ),
        }
    }
}

/// Drives the stack's session event loop and follows the connection: one
/// `NO_CONNECTION` sample per tag when it is lost (subscribe mode shows the
/// gap; poll mode writes its own per missed poll), counters for the rest.
async fn watch(
    event_loop: EventLoop,
    subscribing: Option<Arc<Session>>,
    out: Arc<Mutex<Out>>,
    connected: Arc<AtomicBool>,
    stop: Arc<StopSignal>,
    named: Named,
) {
    let Named {
        name,
        address,
        security,
    } = named;
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
                let how = match mode {
                    opcua::client::SessionConnectMode::NewSession(_) => "a new session",
                    opcua::client::SessionConnectMode::ReactivatedSession(_) => {
                        "the session reactivated"
                    }
                };
                let again = if ever || failing { " again" } else { "" };
                tracing::info!(
                    device = %name,
                    protocol = "opcua",
                    address = %address,
                    "device {name}: connected{again} to {address} ({how}; {security})"
                );
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
                        "device {name}: reconnecting failed: {} (retrying; counted, not logged, \
                         until it connects)",
                        connect::status_words(status)
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
        .zip(&opcua.tags)
        .enumerate()
        .map(|(i, (node, tag))| {
            MonitoredItemCreateRequest::new(
                ReadValueId::new_value(node.clone()),
                MonitoringMode::Reporting,
                MonitoringParameters {
                    client_handle: i as u32 + 1,
                    sampling_interval: sampling_ms,
                    filter: filter(tag.deadband),
                    queue_size: opcua.queue_size,
                    discard_oldest: true,
                },
            )
        })
        .collect();
    for (chunk_index, chunk) in items.chunks(ARRAY_ELEMENTS_MAX).enumerate() {
        let first = chunk_index * ARRAY_ELEMENTS_MAX;
        let Some(results) = create_items(session, subscription, chunk, first, out, device).await
        else {
            return;
        };
        for (offset, status) in results.into_iter().enumerate() {
            let index = first + offset;
            if status.is_bad() {
                let tag = opcua.tags.get(index).map_or("?", |t| t.name.as_str());
                tracing::warn!(
                    device = %device.name,
                    "device {}: tag `{tag}`: the server refused its monitored item: {status}",
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
    republish(
        session,
        subscription,
        out,
        device,
        opcua.publishing_interval * 2,
    )
    .await;
}

/// CreateMonitoredItems for one chunk of the device's items (the first
/// being item `first`), asked again (after `RETRY_MIN`, doubling up to
/// `RETRY_MAX`) while the server refuses the whole request (a busy
/// server's BadTooManyOperations, a connection lost on the way): a chunk
/// left uncreated would be tags that never deliver. The first refusal is
/// one log line and a sample of its status for each of the chunk's tags,
/// so the gap shows in kdb+. Each item's own status; `None` when the
/// reader stops first.
async fn create_items(
    session: &Arc<Session>,
    subscription: u32,
    chunk: &[MonitoredItemCreateRequest],
    first: usize,
    out: &Arc<Mutex<Out>>,
    device: &DeviceConfig,
) -> Option<Vec<StatusCode>> {
    let stop = Arc::clone(&out.lock().ok()?.stop);
    let tags = format!("tags {}..{}", first, first + chunk.len());
    let mut retry = RETRY_MIN;
    let mut refused = false;
    loop {
        let created = session
            .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
            .await;
        let e = match created {
            Ok(results) => {
                if refused {
                    tracing::info!(
                        device = %device.name,
                        "device {}: {tags} are monitored now",
                        device.name
                    );
                }
                return Some(results.iter().map(|r| r.result.status_code).collect());
            }
            Err(e) => e,
        };
        if !refused {
            tracing::warn!(
                device = %device.name,
                "device {}: CreateMonitoredItems for {tags} failed: {e} (asking again until \
                 the server takes them)",
                device.name
            );
            let mut o = out.lock().ok()?;
            let now = o.now_ns();
            for index in first..first + chunk.len() {
                o.bad(index, Quality::opcua(e.status().bits()), now);
            }
            o.publish(true);
            refused = true;
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = stop.notify.notified() => return None,
        }
        if stop.is_set() {
            return None;
        }
        retry = (retry * 2).min(RETRY_MAX);
        session.wait_for_connection().await;
    }
}

/// Asks the server again for every data message that did not arrive (its
/// Publish answer was lost with a connection), until the reader stops. A
/// message the server no longer holds, or a subscription it no longer
/// has, is counted lost and said in one log line.
async fn republish(
    session: &Arc<Session>,
    subscription: u32,
    out: &Arc<Mutex<Out>>,
    device: &DeviceConfig,
    settle: Duration,
) {
    let Ok(repair) = out.lock().map(|o| Arc::clone(&o.repair)) else {
        return;
    };
    let mut lost_said = 0;
    loop {
        repair.notified().await;
        // A late answer may still fill the gap: wait `settle` (two
        // publishing intervals) before asking.
        tokio::time::sleep(settle).await;
        session.wait_for_connection().await;
        let missing = out.lock().map(|o| o.sequence.missing()).unwrap_or_default();
        for number in missing {
            let answer =
                tokio::time::timeout(device.timeout, session.republish(subscription, number)).await;
            let Ok(mut o) = out.lock() else { return };
            match answer {
                Ok(Ok(message)) if message.sequence_number == number => {
                    o.count(|c| c.requests += 1);
                    o.deliver(&message);
                }
                Ok(Ok(_)) => o.sequence.give_up(number),
                Ok(Err(e)) if e.status() == StatusCode::BadMessageNotAvailable => {
                    o.sequence.give_up(number);
                }
                Ok(Err(e)) if e.status() == StatusCode::BadSubscriptionIdInvalid => {
                    // Created anew (a server restart): the old queue is gone.
                    o.sequence.give_up_all();
                    break;
                }
                Ok(Err(_)) | Err(_) => {
                    // The connection went again: try once it is back.
                    o.repair.notify_one();
                    break;
                }
            }
        }
        let Ok(o) = out.lock() else { return };
        let lost = o.sequence.lost();
        if lost > lost_said {
            tracing::warn!(
                device = %device.name,
                "device {}: {} notification messages were lost that the server no longer \
                 held to republish ({lost} in all)",
                device.name,
                lost - lost_said
            );
            lost_said = lost;
        }
    }
}

/// The monitored item's filter: none, or a DataChangeFilter reporting a
/// change of status or of value beyond the deadband.
fn filter(deadband: Option<Deadband>) -> ExtensionObject {
    let (deadband_type, deadband_value) = match deadband {
        None => return ExtensionObject::null(),
        Some(Deadband::Absolute(v)) => (DeadbandType::Absolute, v),
        Some(Deadband::Percent(p)) => (DeadbandType::Percent, p),
    };
    ExtensionObject::from_message(DataChangeFilter {
        trigger: DataChangeTrigger::StatusValue,
        deadband_type: deadband_type as u32,
        deadband_value,
    })
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
