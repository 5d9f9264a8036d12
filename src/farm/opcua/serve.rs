//! The farm's OPC UA servers: async-opcua's server, one per port on
//! 127.0.0.1 (security None, anonymous), each with its device's variables
//! in one folder under Objects, and a task that writes the next change of
//! every variable once per change interval through the stack's
//! `set_values`, which stores it and hands it to every monitored item.
//!
//! Devices are dealt round-robin over `threads` threads, each running a
//! current-thread tokio runtime (the servers' sessions, subscriptions and
//! the change tasks of its devices), as the socket farm deals devices over
//! its event loops.
//!
//! The `k`-th change of every variable of a device carries SourceTimestamp
//! `T0 + k * interval` (T0 the device's start), so consecutive changes are
//! exactly one interval apart and a monitored item sampling at that
//! interval passes every one of them on. A change task that falls behind
//! never skips a `k` and never catches up in a burst either: its next
//! change comes one interval after the late one (tokio's `Delay`), so a
//! variable changes at most once per interval and a monitored item's queue
//! sized for a few intervals cannot overflow because the farm was late
//! (a burst of caught-up ticks overflowed queues of 10 on a loaded machine
//! and the verifier counted the discarded changes as missed).

use std::io;
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use opcua::server::diagnostics::NamespaceMetadata;
use opcua::server::node_manager::memory::{simple_node_manager, SimpleNodeManager};
use opcua::server::{ServerBuilder, ServerHandle};
use opcua::types::{DataValue, DateTime, NodeId, StatusCode, UAString, Variant};
use tokio::sync::watch;

use super::values::{self, FarmValue};
use super::{OpcuaFarmOptions, OpcuaServerKind, NAMESPACE_INDEX, NAMESPACE_URI};
use crate::farm::counters::Tally;
use crate::farm::FarmShared;

/// How long a stop waits for a thread's servers to close their sessions.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Notifications a server keeps per subscription while its client is slow
/// (beyond them the stack drops the oldest, which the verifier would see
/// as lost changes).
const QUEUED_NOTIFICATIONS_MAX: usize = 100_000;
/// Values a monitored item keeps between two Publishes.
const ITEM_QUEUE_MAX: usize = 100_000;
/// The server's subscription timer: how often it looks whether a
/// publishing interval is due.
const SUBSCRIPTION_TICK_MS: u64 = 10;
/// The fastest sampling and publishing the servers accept.
const INTERVAL_MIN_MS: f64 = 10.0;

/// One device to serve: its index and its bound listener.
pub(in crate::farm) struct Served {
    pub device: u32,
    pub listener: StdListener,
}

/// The running servers: a stop flag and the threads.
pub(in crate::farm) struct Serving {
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<io::Result<()>>>,
}

impl Serving {
    /// Starts `threads` threads serving `devices` (dealt round-robin).
    pub fn start(
        devices: Vec<Served>,
        threads: usize,
        options: OpcuaFarmOptions,
        tags_per_device: u32,
        shared: Arc<FarmShared>,
    ) -> io::Result<Serving> {
        let (stop, watching) = watch::channel(false);
        let mut dealt: Vec<Vec<Served>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, served) in devices.into_iter().enumerate() {
            if let Some(slot) = dealt.get_mut(i % threads) {
                slot.push(served);
            }
        }
        let mut handles = Vec::with_capacity(threads);
        for (i, mine) in dealt.into_iter().enumerate() {
            let watching = watching.clone();
            let shared = Arc::clone(&shared);
            handles.push(
                std::thread::Builder::new()
                    .name(format!("farm-ua-{i}"))
                    .spawn(move || {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()?;
                        match options.server {
                            OpcuaServerKind::Stack => runtime.block_on(serve_thread(
                                mine,
                                options,
                                tags_per_device,
                                shared,
                                watching,
                            )),
                            OpcuaServerKind::Lean => runtime.block_on(super::lean::serve_thread(
                                mine,
                                options,
                                tags_per_device,
                                shared,
                                watching,
                            )),
                        }
                    })?,
            );
        }
        Ok(Serving {
            stop,
            threads: handles,
        })
    }

    /// Stops every server and joins the threads; the first error.
    pub fn stop(&mut self) -> io::Result<()> {
        let _ = self.stop.send(true);
        let mut result = Ok(());
        for thread in self.threads.drain(..) {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("farm OPC UA thread panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

/// One thread: its devices' servers and change tasks until told to stop.
async fn serve_thread(
    devices: Vec<Served>,
    options: OpcuaFarmOptions,
    tags_per_device: u32,
    shared: Arc<FarmShared>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut handles = Vec::with_capacity(devices.len());
    let mut tasks = Vec::with_capacity(devices.len() * 2);
    for served in devices {
        let (handle, manager, run) = server(&served, tags_per_device)?;
        tasks.push(tokio::spawn(run));
        let nodes = add_variables(&manager, served.device, tags_per_device)?;
        tasks.push(tokio::spawn(change(
            served.device,
            nodes,
            manager,
            handle.clone(),
            options.change_interval,
            Arc::clone(&shared),
        )));
        handles.push(handle);
    }
    let _ = stop.wait_for(|stopping| *stopping).await;
    for handle in &handles {
        handle.cancel();
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        for task in tasks.iter_mut() {
            let _ = task.await;
        }
    })
    .await;
    for task in &tasks {
        task.abort();
    }
    Ok(())
}

type Running = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// One device's server, bound to its listener (not yet running: the
/// returned future runs it).
fn server(
    served: &Served,
    tags_per_device: u32,
) -> io::Result<(ServerHandle, Arc<SimpleNodeManager>, Running)> {
    let port = served.listener.local_addr()?.port();
    let name = crate::farm::emit::device_name(served.device);
    let pki = std::env::temp_dir().join("millrace-farm-opcua-pki");
    let mut builder = ServerBuilder::new_anonymous(format!("millrace farm {name}"))
        .application_uri(format!("urn:millrace:farm:{name}"))
        .product_uri("urn:millrace:farm")
        .host("127.0.0.1")
        .port(port)
        .discovery_urls(vec![format!("opc.tcp://127.0.0.1:{port}/")])
        .create_sample_keypair(false)
        .pki_dir(pki)
        .diagnostics_enabled(false)
        .subscription_poll_interval_ms(SUBSCRIPTION_TICK_MS)
        .max_array_length(opcua::types::constants::MAX_ARRAY_LENGTH.max(tags_per_device as usize))
        .with_node_manager(simple_node_manager(
            NamespaceMetadata {
                namespace_uri: NAMESPACE_URI.to_string(),
                ..Default::default()
            },
            "farm",
        ));
    let limits = builder.limits_mut();
    limits.subscriptions.max_queued_notifications = QUEUED_NOTIFICATIONS_MAX;
    limits.subscriptions.max_monitored_item_queue_size = ITEM_QUEUE_MAX;
    // The stack's default is 1,000 items per subscription: every variable
    // of the device may be monitored in one.
    limits.subscriptions.max_monitored_items_per_sub = tags_per_device as usize;
    limits.subscriptions.min_sampling_interval_ms = INTERVAL_MIN_MS;
    limits.subscriptions.min_publishing_interval_ms = INTERVAL_MIN_MS;
    let (server, handle) = builder
        .build()
        .map_err(|e| io::Error::other(format!("farm device {name}: OPC UA server: {e}")))?;
    let manager = handle
        .node_managers()
        .get_of_type::<SimpleNodeManager>()
        .ok_or_else(|| io::Error::other("the farm's OPC UA node manager is missing"))?;
    let index = handle.get_namespace_index(NAMESPACE_URI);
    if index != Some(NAMESPACE_INDEX) {
        return Err(io::Error::other(format!(
            "the farm's namespace got index {index:?}, not {NAMESPACE_INDEX} as emitted configs \
             name it"
        )));
    }
    let std_listener = served.listener.try_clone()?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let run: Running = Box::pin(async move {
        if let Err(e) = server.run_with(listener).await {
            tracing::warn!("farm device {name}: the OPC UA server stopped: {e}");
        }
    });
    Ok((handle, manager, run))
}

/// The NodeId of tag `index` (numeric, in the farm's namespace).
pub fn node_id(index: u32) -> NodeId {
    NodeId::new(NAMESPACE_INDEX, index + 1)
}

/// The stack's value of a farm value.
pub(super) fn variant(value: FarmValue) -> Variant {
    match value {
        FarmValue::Double(x) => Variant::Double(x),
        FarmValue::Float(x) => Variant::Float(x),
        FarmValue::Int16(x) => Variant::Int16(x),
        FarmValue::Int32(x) => Variant::Int32(x),
        FarmValue::UInt32(x) => Variant::UInt32(x),
        FarmValue::Int64(x) => Variant::Int64(x),
        FarmValue::Boolean(x) => Variant::Boolean(x),
        FarmValue::String(text) => {
            Variant::String(UAString::from(String::from_utf8_lossy(&text).as_ref()))
        }
    }
}

/// The device's variables at `k = 0`, in one folder under Objects.
fn add_variables(
    manager: &SimpleNodeManager,
    device: u32,
    tags_per_device: u32,
) -> io::Result<Vec<NodeId>> {
    let folder = NodeId::new(NAMESPACE_INDEX, "Farm");
    let nodes: Vec<NodeId> = (0..tags_per_device).map(node_id).collect();
    let mut space = manager.address_space().write();
    space.add_folder(&folder, "Farm", "Farm", &NodeId::objects_folder_id());
    let variables = (0..tags_per_device)
        .zip(&nodes)
        .map(|(index, node)| {
            let name = super::emit::tag_name(device, index);
            opcua::server::address_space::Variable::new(
                node,
                name.as_str(),
                name.as_str(),
                variant(values::value(device, index, 0)),
            )
        })
        .collect();
    if space
        .add_variables(variables, &folder)
        .iter()
        .any(|added| !added)
    {
        return Err(io::Error::other("a farm variable could not be added"));
    }
    Ok(nodes)
}

/// Writes change `k = 1, 2, ...` of every variable, one per interval.
async fn change(
    device: u32,
    nodes: Vec<NodeId>,
    manager: Arc<SimpleNodeManager>,
    handle: ServerHandle,
    interval: Duration,
    shared: Arc<FarmShared>,
) {
    let t0 = DateTime::now().ticks();
    let interval_ticks = (interval.as_nanos() / 100) as i64;
    let start = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval_at(start + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let token = handle.token().clone();
    let mut tally = Tally::default();
    for k in 1u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            () = token.cancelled() => return,
        }
        let at = DateTime::from(t0 + k as i64 * interval_ticks);
        let changes = (0u32..).zip(&nodes).map(|(index, node)| {
            let value = DataValue {
                value: Some(variant(values::value(device, index, k))),
                status: Some(StatusCode::Good),
                source_timestamp: Some(at),
                server_timestamp: Some(at),
                ..DataValue::default()
            };
            (node, None, value)
        });
        if let Err(status) = manager.set_values(handle.subscriptions(), changes) {
            tracing::warn!("farm device {device}: set_values: {status}");
        }
        tally.requests += 1;
        tally.data_responses += nodes.len() as u64;
        shared.counters.publish(&mut tally);
    }
}
