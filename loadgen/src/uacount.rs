//! `ua-count`: async-opcua's own client alone against the OPC UA devices
//! of a millrace config, subscribing as millrace's OPC UA reader does (one
//! thread per device running the stack on a current-thread runtime, one
//! subscription, one monitored item per tag at the device's sampling
//! interval and queue size, at most 1,000 notifications per Publish) and
//! only counting the values the stack decodes: no ring, no WAL, no kdb+.
//! What millrace spends per notification beyond this is what it adds to
//! the stack's client.
//!
//! After a warm-up it counts for `--seconds` and prints one line:
//! `ua-count: seconds S values N cpu_s C` (C the process's CPU time over
//! the same window).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use millrace::config::{DeviceConfig, OpcuaDevice};
use opcua::client::{
    ClientBuilder, IdentityToken, MonitoredItemMap, OnSubscriptionNotificationCore,
};
use opcua::types::{
    DataChangeNotification, ExtensionObject, MessageSecurityMode, MonitoredItemCreateRequest,
    MonitoringMode, MonitoringParameters, NodeId, NotificationMessage, ReadValueId,
    TimestampsToReturn,
};

#[derive(Args, Debug)]
pub struct UaCountArgs {
    /// A millrace config whose OPC UA devices are subscribed to.
    #[arg(long)]
    config: PathBuf,
    /// Seconds counted, after the warm-up.
    #[arg(long)]
    seconds: f64,
    /// Seconds before the count starts (connect, subscribe, first values).
    #[arg(long, default_value_t = 2.0)]
    warm_up: f64,
}

/// Monitored items per CreateMonitoredItems and notifications per Publish
/// at most: the stack decodes arrays of at most this many elements.
const ITEMS_PER_CALL_MAX: usize = opcua::types::constants::MAX_ARRAY_LENGTH;

/// Counts the values of every DataChange, nothing else.
struct Count(Arc<AtomicU64>);

impl OnSubscriptionNotificationCore for Count {
    fn on_subscription_notification(
        &mut self,
        notification: NotificationMessage,
        _items: MonitoredItemMap<'_>,
    ) {
        let mut values = 0u64;
        for object in notification.notification_data.iter().flatten() {
            if let Some(change) = object.inner_as::<DataChangeNotification>() {
                values += change
                    .monitored_items
                    .as_ref()
                    .map_or(0, |m| m.len() as u64);
            }
        }
        self.0.fetch_add(values, Ordering::Relaxed);
    }
}

pub fn run(args: &UaCountArgs) -> Result<(), String> {
    let config = millrace::config::load(&args.config).map_err(|e| e.to_string())?;
    let devices: Vec<DeviceConfig> = config
        .devices
        .iter()
        .filter(|d| d.opcua_part().is_some())
        .cloned()
        .collect();
    if devices.is_empty() {
        return Err(format!("{}: no OPC UA device", args.config.display()));
    }
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::with_capacity(devices.len());
    for device in devices {
        let (count, stop) = (Arc::clone(&count), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name(format!("ua-{}", device.name))
            .spawn(move || -> Result<(), String> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(subscribe(device, count, stop))
            })
            .map_err(|e| e.to_string())?;
        threads.push(thread);
    }
    std::thread::sleep(Duration::from_secs_f64(args.warm_up));
    let (start, cpu_start) = (Instant::now(), cpu_seconds());
    let values_start = count.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    let values = count.load(Ordering::Relaxed) - values_start;
    let (seconds, cpu_s) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread
            .join()
            .map_err(|_| "a ua-count thread panicked".to_string())??;
    }
    println!("ua-count: seconds {seconds:.3} values {values} cpu_s {cpu_s:.3}");
    Ok(())
}

fn cpu_seconds() -> f64 {
    crate::bench::procs::self_cpu_seconds().unwrap_or(f64::NAN)
}

/// One device: connect, subscribe, drive the session until `stop`.
async fn subscribe(
    device: DeviceConfig,
    count: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let opcua = device.opcua_part().cloned().ok_or("not an OPC UA device")?;
    let mut client = ClientBuilder::new()
        .application_name("millrace ua-count")
        .application_uri("urn:millrace:ua-count")
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .pki_dir(std::env::temp_dir().join("millrace-opcua-pki"))
        .session_retry_limit(3)
        .client()
        .map_err(|errors| errors.join("; "))?;
    let endpoint: opcua::types::EndpointDescription =
        (device.address.as_str(), "None", MessageSecurityMode::None).into();
    let (session, event_loop) = client
        .connect_to_matching_endpoint(endpoint, IdentityToken::Anonymous)
        .await
        .map_err(|e| format!("{}: {e}", device.name))?;
    let events = tokio::spawn(async move {
        let stream = event_loop.enter();
        let mut stream = std::pin::pin!(stream);
        while let Some(Ok(_)) = stream.next().await {}
    });
    session.wait_for_connection().await;
    create(&session, &opcua, count).await?;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), session.disconnect()).await;
    events.abort();
    Ok(())
}

/// The subscription and its monitored items, as millrace creates them.
async fn create(
    session: &opcua::client::Session,
    opcua: &OpcuaDevice,
    count: Arc<AtomicU64>,
) -> Result<(), String> {
    let subscription = session
        .create_subscription(
            opcua.publishing_interval,
            300,
            100,
            ITEMS_PER_CALL_MAX as u32,
            0,
            true,
            Count(count),
        )
        .await
        .map_err(|e| format!("CreateSubscription: {e}"))?;
    let sampling_ms = opcua.sampling_interval.as_secs_f64() * 1000.0;
    let items: Vec<MonitoredItemCreateRequest> = (0u32..)
        .zip(&opcua.tags)
        .map(|(i, tag)| {
            let node: NodeId = tag
                .node_id
                .to_string()
                .parse()
                .unwrap_or_else(|_| NodeId::null());
            MonitoredItemCreateRequest::new(
                ReadValueId::new_value(node),
                MonitoringMode::Reporting,
                MonitoringParameters {
                    client_handle: i + 1,
                    sampling_interval: sampling_ms,
                    filter: ExtensionObject::null(),
                    queue_size: opcua.queue_size,
                    discard_oldest: true,
                },
            )
        })
        .collect();
    for chunk in items.chunks(ITEMS_PER_CALL_MAX) {
        session
            .create_monitored_items(subscription, TimestampsToReturn::Both, chunk.to_vec())
            .await
            .map_err(|e| format!("CreateMonitoredItems: {e}"))?;
    }
    Ok(())
}
