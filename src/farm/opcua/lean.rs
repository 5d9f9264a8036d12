//! The farm's lean OPC UA server (`--opcua-server lean`): just what a
//! subscribing or polling client of the farm needs, over OPC UA binary with
//! security None and an anonymous identity, with no address space and no
//! sampling engine. A notification is computed when it is sent: the value
//! of change `k` of tag `J` is `values::value(device, J, k)`, so nothing is
//! stored per change or per item.
//!
//! Why: async-opcua's server spends 1.5-2 us of CPU per value change (the
//! address space write, its monitored items' filters and queues, the
//! subscription timer over every item); at 1 M changes/s that is most of a
//! 2-core machine, and a load generator must not be what bounds the system
//! it measures. This one encodes the notifications and little else. The
//! messages, the chunks and the secure channel framing are the stack's own
//! (`RequestMessage`, `Chunker`, `SendBuffer`), so a client sees the same
//! bytes a full server would send for the same notifications.
//!
//! What it serves: Hello, OpenSecureChannel (issue and renew),
//! GetEndpoints, CreateSession, ActivateSession, CloseSession,
//! CreateSubscription, CreateMonitoredItems (the farm's variables,
//! `ns=2;i=J+1`), DeleteSubscriptions, Publish with acknowledgements,
//! Republish of any message not yet acknowledged (recomputed), Read of the
//! variables' values and of the server state and namespace array that
//! clients ask for, CloseSecureChannel. Anything else is a ServiceFault
//! `BadServiceUnsupported` (Browse among them: `discover` uses the stack's
//! server). A session lives as long as its connection; a client that
//! reconnects creates a new one and recreates its subscription.
//!
//! Timing: every variable changes at `start + k * interval` (the device's
//! clock, as the stack server's change task). A subscription publishes at
//! `start + n * publishing_interval`, so with the publishing interval equal
//! to the change interval each change leaves in the Publish of its own
//! instant, and what a bench measures after it is the client's latency. A
//! tick that comes late sends every change it missed, at most the
//! monitored item's queue size of them per item (the oldest dropped beyond
//! it, as a server's queue does). Every change is sampled: the revised
//! sampling interval is the change interval.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use opcua::core::comms::buffer::SendBuffer;
use opcua::core::comms::chunker::Chunker;
use opcua::core::comms::message_chunk::{MessageChunk, MessageChunkType, MessageIsFinalType};
use opcua::core::comms::secure_channel::{Role, SecureChannel};
use opcua::core::comms::tcp_codec::{Message, TcpCodec};
use opcua::core::comms::tcp_types::AcknowledgeMessage;
use opcua::core::{RequestMessage, ResponseMessage};
use opcua::crypto::{CertificateStore, SecurityPolicy};
use opcua::sync::RwLock;
use opcua::types::{
    ActivateSessionResponse, ApplicationDescription, ApplicationType, AttributeId, ByteString,
    ChannelSecurityToken, CloseSessionResponse, CreateMonitoredItemsRequest,
    CreateMonitoredItemsResponse, CreateSessionResponse, CreateSubscriptionRequest,
    CreateSubscriptionResponse, DataChangeNotification, DataValue, DateTime, DecodingOptions,
    DeleteSubscriptionsResponse, EndpointDescription, ExtensionObject, GetEndpointsResponse,
    Identifier, LocalizedText, MessageSecurityMode, MonitoredItemCreateResult,
    MonitoredItemNotification, NodeId, NotificationMessage, OpenSecureChannelRequest,
    OpenSecureChannelResponse, PublishRequest, PublishResponse, ReadRequest, ReadResponse,
    RepublishResponse, RequestHeader, ResponseHeader, ServiceFault, SignatureData, StatusCode,
    UAString, UserTokenPolicy, UserTokenType, Variant,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use super::serve::{variant, Served};
use super::values;
use super::{OpcuaFarmOptions, NAMESPACE_INDEX, NAMESPACE_URI};
use crate::farm::counters::Tally;
use crate::farm::FarmShared;

/// The largest chunk either side sends (the stack client's default).
const CHUNK_SIZE: u32 = 65_535;
/// Chunks one request may take (a request of the farm's clients is one).
const REQUEST_CHUNKS_MAX: usize = 64;
/// Publish requests a session holds for its subscriptions.
const PUBLISH_QUEUE_MAX: usize = 100;
/// Unacknowledged messages kept for Republish (their (k, items) only).
const RETRANSMIT_MAX: usize = 1_000;
/// Notifications per Publish when the client leaves it open.
const NOTIFICATIONS_PER_PUBLISH_DEFAULT: usize = 1_000;
/// The fastest publishing the server grants.
const PUBLISHING_MIN: Duration = Duration::from_millis(10);
/// The slowest publishing the server grants.
const PUBLISHING_MAX: Duration = Duration::from_secs(3600);

/// Node ids of the server object a client reads (Part 6, NodeIds.csv).
const SERVER_NAMESPACE_ARRAY: u32 = 2255;
const SERVER_STATUS_STATE: u32 = 2259;

/// One device's change clock: change `k` of every variable happens at
/// `start + k * interval` and carries SourceTimestamp `t0 + k * interval`.
struct Clock {
    device: u32,
    tags: u32,
    start: Instant,
    t0_ticks: i64,
    interval: Duration,
}

impl Clock {
    /// The last change that has happened by `now`.
    fn k(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(since / self.interval.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    fn timestamp(&self, k: u64) -> DateTime {
        let ticks = i64::try_from(self.interval.as_nanos() / 100).unwrap_or(i64::MAX);
        DateTime::from(
            self.t0_ticks
                .saturating_add(ticks.saturating_mul(i64::try_from(k).unwrap_or(i64::MAX))),
        )
    }

    /// Change `k` of tag `index`, as the stack server's change task
    /// writes it.
    fn data_value(&self, index: u32, k: u64) -> DataValue {
        let at = self.timestamp(k);
        DataValue {
            value: Some(variant(values::value(self.device, index, k))),
            status: Some(StatusCode::Good),
            source_timestamp: Some(at),
            server_timestamp: Some(at),
            ..DataValue::default()
        }
    }

    /// The tag index of a farm variable's node id.
    fn tag(&self, node: &NodeId) -> Option<u32> {
        match node.identifier {
            Identifier::Numeric(n) if node.namespace == NAMESPACE_INDEX => {
                n.checked_sub(1).filter(|&j| j < self.tags)
            }
            _ => None,
        }
    }
}

/// Serves `devices` on this thread's runtime until `stop`.
pub(super) async fn serve_thread(
    devices: Vec<Served>,
    options: OpcuaFarmOptions,
    tags_per_device: u32,
    shared: Arc<FarmShared>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut tasks = Vec::with_capacity(devices.len());
    for served in devices {
        let std_listener = served.listener.try_clone()?;
        std_listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(std_listener)?;
        let clock = Arc::new(Clock {
            device: served.device,
            tags: tags_per_device,
            start: Instant::now(),
            t0_ticks: DateTime::now().ticks(),
            interval: options.change_interval,
        });
        tasks.push(tokio::spawn(accept(listener, clock, Arc::clone(&shared))));
    }
    let _ = stop.wait_for(|stopping| *stopping).await;
    for task in &tasks {
        task.abort();
    }
    Ok(())
}

/// Accepts connections to one device, each served by a task of its own
/// (all of them end with the runtime).
async fn accept(listener: TcpListener, clock: Arc<Clock>, shared: Arc<FarmShared>) {
    let url = match listener.local_addr() {
        Ok(addr) => format!("opc.tcp://127.0.0.1:{}/", addr.port()),
        Err(_) => return,
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection::new(Arc::clone(&clock), url.clone(), Arc::clone(&shared));
        tokio::spawn(async move {
            if let Err(e) = connection.run(stream).await {
                tracing::debug!("farm OPC UA (lean): a connection ended: {e}");
            }
        });
    }
}

/// One subscription's monitored items and what it has to send.
struct Subscription {
    id: u32,
    publishing: Duration,
    keep_alive: u32,
    /// Notifications per message (the client's maximum, or ours).
    per_message: usize,
    /// Tag index of each item, and its client handle.
    items: Vec<(u32, u32)>,
    /// Changes an item keeps between two ticks (the largest queue asked).
    queue: u64,
    next_tick: Instant,
    /// The last change put into `ready`.
    last_k: u64,
    /// Ticks since the last message (for keep-alives).
    idle_ticks: u32,
    next_sequence: u32,
    /// Messages waiting for a Publish: change `k`, items `from..to`.
    ready: VecDeque<Batch>,
    /// Sent and not acknowledged, by sequence number.
    sent: BTreeMap<u32, Batch>,
}

struct Waiting {
    request_id: u32,
    header: RequestHeader,
    acks: Vec<StatusCode>,
}

impl Subscription {
    /// Queues the changes after the last one queued, up to change `k`: at
    /// most `queue` of them (the newest; a monitored item's queue drops the
    /// oldest), each split into messages of at most `per_message` items.
    fn queue_changes(&mut self, k: u64) {
        let first = self
            .last_k
            .saturating_add(1)
            .max(k.saturating_sub(self.queue.saturating_sub(1)));
        let step = self.per_message.max(1);
        for change in first..=k {
            for from in (0..self.items.len()).step_by(step) {
                let to = from.saturating_add(step).min(self.items.len());
                self.ready.push_back(Batch {
                    k: change,
                    from,
                    to,
                });
            }
        }
        self.last_k = self.last_k.max(k);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Batch {
    k: u64,
    from: usize,
    to: usize,
}

/// A session: created and activated on this connection.
struct Session {
    token: NodeId,
    activated: bool,
    subscriptions: Vec<Subscription>,
    /// Publish requests waiting for a message: request id, header and the
    /// results of the acknowledgements it carried.
    publishes: VecDeque<Waiting>,
}

struct Connection {
    clock: Arc<Clock>,
    url: String,
    shared: Arc<FarmShared>,
    tally: Tally,
    channel: SecureChannel,
    send: SendBuffer,
    session: Option<Session>,
    next_id: u32,
}

impl Connection {
    fn new(clock: Arc<Clock>, url: String, shared: Arc<FarmShared>) -> Connection {
        // Security None: the store holds nothing and is never asked for a
        // certificate; a path under /dev/null can never be created.
        let store = Arc::new(RwLock::new(CertificateStore::new(Path::new("/dev/null"))));
        let mut channel = SecureChannel::new(store, Role::Server, Default::default());
        channel.set_security_policy(SecurityPolicy::None);
        channel.set_security_mode(MessageSecurityMode::None);
        Connection {
            clock,
            url,
            shared,
            tally: Tally::default(),
            channel,
            send: SendBuffer::new(CHUNK_SIZE as usize, 0, 0, true),
            session: None,
            next_id: 1,
        }
    }

    fn id(&mut self) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.next_id
    }

    async fn run(mut self, stream: TcpStream) -> io::Result<()> {
        let (read, mut write) = stream.into_split();
        let options = DecodingOptions {
            max_chunk_count: REQUEST_CHUNKS_MAX,
            ..DecodingOptions::default()
        };
        let mut frames = FramedRead::new(read, TcpCodec::new(options));
        let mut chunks: Vec<MessageChunk> = Vec::new();
        loop {
            let due = self.next_tick();
            let frame = tokio::select! {
                frame = frames.next() => frame,
                () = tokio::time::sleep_until(due) => {
                    self.tick(Instant::now());
                    self.flush(&mut write).await?;
                    continue;
                }
            };
            let Some(frame) = frame else { return Ok(()) };
            match frame? {
                Message::Hello(hello) => {
                    let ack = AcknowledgeMessage::new(
                        0,
                        CHUNK_SIZE.min(hello.send_buffer_size),
                        CHUNK_SIZE.min(hello.receive_buffer_size),
                        hello.max_message_size,
                        hello.max_chunk_count,
                    );
                    self.send.revise(
                        ack.send_buffer_size as usize,
                        ack.max_message_size as usize,
                        ack.max_chunk_count as usize,
                    );
                    self.send.write_ack(ack);
                }
                Message::Chunk(chunk) => {
                    let header = chunk.message_header(&self.channel.decoding_options())?;
                    if header.message_type == MessageChunkType::CloseSecureChannel {
                        return Ok(());
                    }
                    let chunk = self.channel.verify_and_remove_security_server(chunk.data)?;
                    chunks.push(chunk);
                    if chunks.len() > REQUEST_CHUNKS_MAX {
                        return Err(io::Error::other("a request of too many chunks"));
                    }
                    if header.is_final == MessageIsFinalType::Intermediate {
                        continue;
                    }
                    let first = chunks
                        .first()
                        .ok_or_else(|| io::Error::other("no chunk"))?
                        .chunk_info(&self.channel)?;
                    let request_id = first.sequence_header.request_id;
                    let request: RequestMessage =
                        Chunker::decode(&chunks, &self.channel, None).map_err(io::Error::other)?;
                    chunks.clear();
                    self.answer(request_id, request)?;
                }
                other => {
                    return Err(io::Error::other(format!("unexpected message {other:?}")));
                }
            }
            self.flush(&mut write).await?;
        }
    }

    /// Writes what the send buffer holds.
    async fn flush(&mut self, write: &mut tokio::net::tcp::OwnedWriteHalf) -> io::Result<()> {
        loop {
            while self.send.should_encode_chunks() {
                self.send
                    .encode_next_chunk(&self.channel)
                    .map_err(|s| io::Error::other(s.to_string()))?;
            }
            if !self.send.can_read() {
                return write.flush().await;
            }
            self.send.read_into_async(write).await?;
        }
    }

    fn respond(&mut self, request_id: u32, response: impl Into<ResponseMessage>) -> io::Result<()> {
        self.send
            .write(request_id, response.into(), &self.channel)
            .map(|_| ())
            .map_err(io::Error::other)
    }

    fn answer(&mut self, request_id: u32, request: RequestMessage) -> io::Result<()> {
        let header = request.request_header().clone();
        // Every service but these needs the session activated on this
        // connection.
        let open = matches!(
            request,
            RequestMessage::OpenSecureChannel(_)
                | RequestMessage::GetEndpoints(_)
                | RequestMessage::CreateSession(_)
                | RequestMessage::ActivateSession(_)
                | RequestMessage::CloseSecureChannel(_)
        );
        let active = self
            .session
            .as_ref()
            .is_some_and(|s| s.activated && s.token == header.authentication_token);
        if !open && !active {
            return self.respond(
                request_id,
                ServiceFault::new(&header, StatusCode::BadSessionIdInvalid),
            );
        }
        match request {
            RequestMessage::OpenSecureChannel(r) => {
                let response = self.open(&r);
                self.respond(request_id, response)
            }
            RequestMessage::CloseSecureChannel(_) => Ok(()),
            RequestMessage::GetEndpoints(_) => {
                let response = GetEndpointsResponse {
                    response_header: ResponseHeader::new_good(&header),
                    endpoints: Some(vec![self.endpoint()]),
                };
                self.respond(request_id, response)
            }
            RequestMessage::CreateSession(r) => {
                let n = self.id();
                let token = NodeId::new(1, u32::MAX - n);
                self.session = Some(Session {
                    token: token.clone(),
                    activated: false,
                    subscriptions: Vec::new(),
                    publishes: VecDeque::new(),
                });
                let response = CreateSessionResponse {
                    response_header: ResponseHeader::new_good(&header),
                    session_id: NodeId::new(1, n),
                    authentication_token: token,
                    revised_session_timeout: r.requested_session_timeout,
                    server_nonce: ByteString::from(vec![0u8; 32]),
                    server_certificate: ByteString::null(),
                    server_endpoints: Some(vec![self.endpoint()]),
                    server_software_certificates: None,
                    server_signature: SignatureData::null(),
                    max_request_message_size: 0,
                };
                self.respond(request_id, response)
            }
            RequestMessage::ActivateSession(_) => {
                let Some(session) = self
                    .session
                    .as_mut()
                    .filter(|s| s.token == header.authentication_token)
                else {
                    return self.respond(
                        request_id,
                        ServiceFault::new(&header, StatusCode::BadSessionIdInvalid),
                    );
                };
                session.activated = true;
                let response = ActivateSessionResponse {
                    response_header: ResponseHeader::new_good(&header),
                    server_nonce: ByteString::from(vec![0u8; 32]),
                    results: None,
                    diagnostic_infos: None,
                };
                self.respond(request_id, response)
            }
            RequestMessage::CloseSession(_) => {
                self.session = None;
                let response = CloseSessionResponse {
                    response_header: ResponseHeader::new_good(&header),
                };
                self.respond(request_id, response)
            }
            RequestMessage::CreateSubscription(r) => {
                let response = self.create_subscription(&r);
                self.respond(request_id, response)
            }
            RequestMessage::CreateMonitoredItems(r) => {
                let response = self.create_items(&r);
                self.respond(request_id, response)
            }
            RequestMessage::DeleteSubscriptions(r) => {
                let ids = r.subscription_ids.clone().unwrap_or_default();
                let Some(session) = self.session.as_mut() else {
                    return Ok(());
                };
                let results = ids
                    .iter()
                    .map(|id| {
                        let before = session.subscriptions.len();
                        session.subscriptions.retain(|s| s.id != *id);
                        if session.subscriptions.len() < before {
                            StatusCode::Good
                        } else {
                            StatusCode::BadSubscriptionIdInvalid
                        }
                    })
                    .collect();
                let response = DeleteSubscriptionsResponse {
                    response_header: ResponseHeader::new_good(&header),
                    results: Some(results),
                    diagnostic_infos: None,
                };
                self.respond(request_id, response)
            }
            RequestMessage::Publish(r) => self.publish(request_id, *r),
            RequestMessage::Republish(r) => {
                let found = self.session.as_ref().and_then(|session| {
                    let s = session
                        .subscriptions
                        .iter()
                        .find(|s| s.id == r.subscription_id)?;
                    let sequence = r.retransmit_sequence_number;
                    Some(
                        s.sent
                            .get(&sequence)
                            .map(|&batch| message(&self.clock, sequence, batch, &s.items)),
                    )
                });
                match found {
                    Some(Some(message)) => {
                        let response = RepublishResponse {
                            response_header: ResponseHeader::new_good(&header),
                            notification_message: message,
                        };
                        self.respond(request_id, response)
                    }
                    Some(None) => self.respond(
                        request_id,
                        ServiceFault::new(&header, StatusCode::BadMessageNotAvailable),
                    ),
                    None => self.respond(
                        request_id,
                        ServiceFault::new(&header, StatusCode::BadSubscriptionIdInvalid),
                    ),
                }
            }
            RequestMessage::Read(r) => {
                let response = self.read(&r);
                self.respond(request_id, response)
            }
            _ => self.respond(
                request_id,
                ServiceFault::new(&header, StatusCode::BadServiceUnsupported),
            ),
        }
    }

    fn open(&mut self, r: &OpenSecureChannelRequest) -> ResponseMessage {
        if r.security_mode != MessageSecurityMode::None {
            return ServiceFault::new(&r.request_header, StatusCode::BadSecurityModeRejected)
                .into();
        }
        self.channel.set_secure_channel_id(1);
        self.channel.set_token_id(1);
        self.channel.set_token_lifetime(r.requested_lifetime);
        OpenSecureChannelResponse {
            response_header: ResponseHeader::new_good(&r.request_header),
            server_protocol_version: 0,
            security_token: ChannelSecurityToken {
                channel_id: 1,
                token_id: 1,
                created_at: DateTime::now(),
                revised_lifetime: r.requested_lifetime,
            },
            server_nonce: ByteString::null(),
        }
        .into()
    }

    fn endpoint(&self) -> EndpointDescription {
        let name = crate::farm::emit::device_name(self.clock.device);
        EndpointDescription {
            endpoint_url: UAString::from(self.url.as_str()),
            server: ApplicationDescription {
                application_uri: UAString::from(format!("urn:millrace:farm:{name}")),
                product_uri: UAString::from("urn:millrace:farm"),
                application_name: LocalizedText::new("", &format!("millrace farm {name}")),
                application_type: ApplicationType::Server,
                gateway_server_uri: UAString::null(),
                discovery_profile_uri: UAString::null(),
                discovery_urls: Some(vec![UAString::from(self.url.as_str())]),
            },
            server_certificate: ByteString::null(),
            security_mode: MessageSecurityMode::None,
            security_policy_uri: UAString::from(SecurityPolicy::None.to_uri()),
            user_identity_tokens: Some(vec![UserTokenPolicy {
                policy_id: UAString::from("anonymous"),
                token_type: UserTokenType::Anonymous,
                issued_token_type: UAString::null(),
                issuer_endpoint_url: UAString::null(),
                security_policy_uri: UAString::null(),
            }]),
            transport_profile_uri: UAString::from(
                "http://opcfoundation.org/UA-Profile/Transport/uatcp-uasc-uabinary",
            ),
            security_level: 0,
        }
    }

    fn create_subscription(&mut self, r: &CreateSubscriptionRequest) -> CreateSubscriptionResponse {
        let id = self.id();
        let publishing = publishing_interval(r.requested_publishing_interval);
        let per_message = match r.max_notifications_per_publish {
            0 => NOTIFICATIONS_PER_PUBLISH_DEFAULT,
            n => n as usize,
        };
        let now = Instant::now();
        let clock = &self.clock;
        let subscription = Subscription {
            id,
            publishing,
            keep_alive: r.requested_max_keep_alive_count.max(1),
            per_message,
            items: Vec::new(),
            queue: 1,
            next_tick: next_multiple(clock.start, publishing, now),
            last_k: clock.k(now),
            idle_ticks: 0,
            next_sequence: 1,
            ready: VecDeque::new(),
            sent: BTreeMap::new(),
        };
        if let Some(session) = self.session.as_mut() {
            session.subscriptions.push(subscription);
        }
        CreateSubscriptionResponse {
            response_header: ResponseHeader::new_good(&r.request_header),
            subscription_id: id,
            revised_publishing_interval: publishing.as_secs_f64() * 1000.0,
            revised_lifetime_count: r.requested_lifetime_count,
            revised_max_keep_alive_count: r.requested_max_keep_alive_count.max(1),
        }
    }

    fn create_items(&mut self, r: &CreateMonitoredItemsRequest) -> ResponseMessage {
        let clock = Arc::clone(&self.clock);
        let first_id = self.next_id;
        let Some(subscription) = self.session.as_mut().and_then(|s| {
            s.subscriptions
                .iter_mut()
                .find(|s| s.id == r.subscription_id)
        }) else {
            return ServiceFault::new(&r.request_header, StatusCode::BadSubscriptionIdInvalid)
                .into();
        };
        let interval_ms = clock.interval.as_secs_f64() * 1000.0;
        let mut results = Vec::new();
        for (n, item) in r.items_to_create.iter().flatten().enumerate() {
            let tag = clock
                .tag(&item.item_to_monitor.node_id)
                .filter(|_| item.item_to_monitor.attribute_id == AttributeId::Value as u32);
            let Some(tag) = tag else {
                results.push(MonitoredItemCreateResult {
                    status_code: StatusCode::BadNodeIdUnknown,
                    ..Default::default()
                });
                continue;
            };
            let queue = item.requested_parameters.queue_size.max(1);
            subscription.queue = subscription.queue.max(u64::from(queue));
            subscription
                .items
                .push((tag, item.requested_parameters.client_handle));
            results.push(MonitoredItemCreateResult {
                status_code: StatusCode::Good,
                monitored_item_id: first_id.wrapping_add(n as u32 + 1),
                revised_sampling_interval: interval_ms,
                revised_queue_size: queue,
                filter_result: ExtensionObject::null(),
            });
        }
        self.next_id = first_id.wrapping_add(results.len() as u32 + 1);
        CreateMonitoredItemsResponse {
            response_header: ResponseHeader::new_good(&r.request_header),
            results: Some(results),
            diagnostic_infos: None,
        }
        .into()
    }

    fn read(&self, r: &ReadRequest) -> ReadResponse {
        let now = Instant::now();
        let k = self.clock.k(now);
        let results = r
            .nodes_to_read
            .iter()
            .flatten()
            .map(|read| {
                if read.attribute_id != AttributeId::Value as u32 {
                    return DataValue::new_now_status(
                        Variant::Empty,
                        StatusCode::BadAttributeIdInvalid,
                    );
                }
                if let Some(tag) = self.clock.tag(&read.node_id) {
                    return self.clock.data_value(tag, k);
                }
                match read.node_id.identifier {
                    Identifier::Numeric(SERVER_STATUS_STATE) if read.node_id.namespace == 0 => {
                        // ServerState Running.
                        DataValue::new_now(Variant::Int32(0))
                    }
                    Identifier::Numeric(SERVER_NAMESPACE_ARRAY) if read.node_id.namespace == 0 => {
                        let uris = [
                            "http://opcfoundation.org/UA/",
                            "urn:millrace:farm:lean",
                            NAMESPACE_URI,
                        ];
                        DataValue::new_now(Variant::from(
                            uris.iter().map(|u| UAString::from(*u)).collect::<Vec<_>>(),
                        ))
                    }
                    _ => DataValue::new_now_status(Variant::Empty, StatusCode::BadNodeIdUnknown),
                }
            })
            .collect();
        ReadResponse {
            response_header: ResponseHeader::new_good(&r.request_header),
            results: Some(results),
            diagnostic_infos: None,
        }
    }

    /// Takes a Publish: its acknowledgements now, the request itself until
    /// a subscription has a message (or a keep-alive) for it.
    fn publish(&mut self, request_id: u32, r: PublishRequest) -> io::Result<()> {
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let acks = r
            .subscription_acknowledgements
            .iter()
            .flatten()
            .map(|ack| {
                let known = session
                    .subscriptions
                    .iter_mut()
                    .find(|s| s.id == ack.subscription_id)
                    .and_then(|s| s.sent.remove(&ack.sequence_number))
                    .is_some();
                if known {
                    StatusCode::Good
                } else {
                    StatusCode::BadSequenceNumberUnknown
                }
            })
            .collect();
        let refusal = if session.subscriptions.is_empty() {
            Some(StatusCode::BadNoSubscription)
        } else if session.publishes.len() >= PUBLISH_QUEUE_MAX {
            Some(StatusCode::BadTooManyPublishRequests)
        } else {
            None
        };
        if let Some(status) = refusal {
            return self.respond(request_id, ServiceFault::new(&r.request_header, status));
        }
        session.publishes.push_back(Waiting {
            request_id,
            header: r.request_header,
            acks,
        });
        self.send_ready()
    }

    /// When the next subscription tick is due (far away without one).
    fn next_tick(&self) -> Instant {
        self.session
            .as_ref()
            .and_then(|s| s.subscriptions.iter().map(|s| s.next_tick).min())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Every subscription due by `now` queues the changes since its last
    /// tick (or counts towards a keep-alive), then waiting Publishes are
    /// answered.
    fn tick(&mut self, now: Instant) {
        let clock = Arc::clone(&self.clock);
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let mut keep_alives = Vec::new();
        for s in session
            .subscriptions
            .iter_mut()
            .filter(|s| s.next_tick <= now)
        {
            s.next_tick = next_multiple(clock.start, s.publishing, now);
            s.queue_changes(clock.k(now));
            if s.ready.is_empty() {
                s.idle_ticks += 1;
                if s.idle_ticks >= s.keep_alive {
                    keep_alives.push(s.id);
                }
            }
        }
        for id in keep_alives {
            self.keep_alive(id);
        }
        let _ = self.send_ready();
    }

    /// A keep-alive for subscription `id`, if a Publish waits.
    fn keep_alive(&mut self, id: u32) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(s) = session.subscriptions.iter_mut().find(|s| s.id == id) else {
            return;
        };
        let Some(waiting) = session.publishes.pop_front() else {
            return;
        };
        s.idle_ticks = 0;
        let message = NotificationMessage {
            sequence_number: s.next_sequence,
            publish_time: DateTime::now(),
            notification_data: None,
        };
        let response = publish_response(waiting.header, s, message, waiting.acks);
        let _ = self.respond(waiting.request_id, response);
    }

    /// Answers waiting Publishes with waiting messages, oldest change
    /// first.
    fn send_ready(&mut self) -> io::Result<()> {
        loop {
            let Some(session) = self.session.as_mut() else {
                return Ok(());
            };
            let Some(s) = session
                .subscriptions
                .iter_mut()
                .filter(|s| !s.ready.is_empty())
                .min_by_key(|s| s.ready.front().map(|b| b.k))
            else {
                return Ok(());
            };
            let Some(waiting) = session.publishes.pop_front() else {
                return Ok(());
            };
            let Some(batch) = s.ready.pop_front() else {
                return Ok(());
            };
            let sequence = s.next_sequence;
            s.next_sequence = s.next_sequence.wrapping_add(1).max(1);
            s.idle_ticks = 0;
            s.sent.insert(sequence, batch);
            while s.sent.len() > RETRANSMIT_MAX {
                s.sent.pop_first();
            }
            let message = message(&self.clock, sequence, batch, &s.items);
            let response = publish_response(waiting.header, s, message, waiting.acks);
            self.tally.requests += 1;
            self.tally.data_responses += (batch.to - batch.from) as u64;
            self.respond(waiting.request_id, response)?;
            self.shared.counters.publish(&mut self.tally);
        }
    }
}

/// The answer to a Publish for subscription `s`.
fn publish_response(
    header: RequestHeader,
    s: &Subscription,
    message: NotificationMessage,
    acks: Vec<StatusCode>,
) -> PublishResponse {
    PublishResponse {
        response_header: ResponseHeader::new_good(&header),
        subscription_id: s.id,
        available_sequence_numbers: Some(s.sent.keys().copied().collect()),
        more_notifications: !s.ready.is_empty(),
        notification_message: message,
        results: (!acks.is_empty()).then_some(acks),
        diagnostic_infos: None,
    }
}

/// The notification message of `batch` (sent first, or again).
fn message(
    clock: &Clock,
    sequence: u32,
    batch: Batch,
    items: &[(u32, u32)],
) -> NotificationMessage {
    let notifications = items
        .get(batch.from..batch.to)
        .unwrap_or_default()
        .iter()
        .map(|&(tag, client_handle)| MonitoredItemNotification {
            client_handle,
            value: clock.data_value(tag, batch.k),
        })
        .collect();
    NotificationMessage {
        sequence_number: sequence,
        publish_time: DateTime::now(),
        notification_data: Some(vec![ExtensionObject::from_message(
            DataChangeNotification {
                monitored_items: Some(notifications),
                diagnostic_infos: None,
            },
        )]),
    }
}

/// The first `start + n * period` after `now`.
fn next_multiple(start: Instant, period: Duration, now: Instant) -> Instant {
    let period_ns = period.as_nanos().max(1);
    let n = now.saturating_duration_since(start).as_nanos() / period_ns + 1;
    start + Duration::from_nanos(u64::try_from(n * period_ns).unwrap_or(u64::MAX))
}

/// The publishing interval granted for a requested one in milliseconds (any
/// f64 a client sends: NaN, negative and infinite ones included).
fn publishing_interval(requested_ms: f64) -> Duration {
    Duration::try_from_secs_f64(requested_ms / 1000.0)
        .unwrap_or(if requested_ms > 0.0 {
            PUBLISHING_MAX
        } else {
            PUBLISHING_MIN
        })
        .clamp(PUBLISHING_MIN, PUBLISHING_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(items: u32, per_message: usize, queue: u64, last_k: u64) -> Subscription {
        Subscription {
            id: 1,
            publishing: Duration::from_millis(100),
            keep_alive: 3,
            per_message,
            items: (0..items).map(|j| (j, j + 1)).collect(),
            queue,
            next_tick: Instant::now(),
            last_k,
            idle_ticks: 0,
            next_sequence: 1,
            ready: VecDeque::new(),
            sent: BTreeMap::new(),
        }
    }

    #[test]
    fn a_change_is_queued_once_in_messages_of_at_most_per_message_items() {
        let mut s = subscription(2_500, 1_000, 10, 4);
        s.queue_changes(5);
        let batches: Vec<Batch> = s.ready.drain(..).collect();
        let want = [(0, 1_000), (1_000, 2_000), (2_000, 2_500)];
        assert_eq!(batches.len(), want.len());
        for (b, (from, to)) in batches.iter().zip(want) {
            assert_eq!(*b, Batch { k: 5, from, to });
        }
        // The same change again, or none since: nothing more.
        s.queue_changes(5);
        assert!(s.ready.is_empty());
    }

    #[test]
    fn a_late_tick_sends_the_missed_changes_up_to_the_queue_size() {
        let mut s = subscription(3, 1_000, 10, 4);
        s.queue_changes(7);
        let ks: Vec<u64> = s.ready.drain(..).map(|b| b.k).collect();
        assert_eq!(ks, [5, 6, 7]);
        // Queue 2: of changes 8..=12 only the two newest.
        let mut s = subscription(3, 1_000, 2, 7);
        s.queue_changes(12);
        let ks: Vec<u64> = s.ready.drain(..).map(|b| b.k).collect();
        assert_eq!(ks, [11, 12]);
    }

    #[test]
    fn any_requested_publishing_interval_is_granted_within_bounds() {
        assert_eq!(publishing_interval(100.0), Duration::from_millis(100));
        for (asked, granted) in [
            (0.0, PUBLISHING_MIN),
            (-5.0, PUBLISHING_MIN),
            (f64::NAN, PUBLISHING_MIN),
            (f64::NEG_INFINITY, PUBLISHING_MIN),
            (f64::INFINITY, PUBLISHING_MAX),
            (f64::MAX, PUBLISHING_MAX),
        ] {
            assert_eq!(publishing_interval(asked), granted, "{asked}");
        }
    }

    #[test]
    fn ticks_fall_on_the_clock_and_changes_carry_their_own_time() {
        let start = Instant::now();
        let period = Duration::from_millis(100);
        assert_eq!(next_multiple(start, period, start), start + period);
        assert_eq!(
            next_multiple(start, period, start + Duration::from_millis(250)),
            start + Duration::from_millis(300)
        );
        let clock = Clock {
            device: 0,
            tags: 16,
            start,
            t0_ticks: 1_000,
            interval: period,
        };
        assert_eq!(clock.k(start + Duration::from_millis(299)), 2);
        assert_eq!(clock.timestamp(3).ticks(), 1_000 + 3 * 1_000_000);
        assert_eq!(clock.tag(&NodeId::new(NAMESPACE_INDEX, 16)), Some(15));
        assert_eq!(clock.tag(&NodeId::new(NAMESPACE_INDEX, 17)), None);
        assert_eq!(clock.tag(&NodeId::new(NAMESPACE_INDEX, 0)), None);
        assert_eq!(clock.tag(&NodeId::new(0, 1)), None);
        let value = clock.data_value(3, 4);
        assert_eq!(value.source_timestamp, Some(clock.timestamp(4)));
        assert_eq!(value.value, Some(variant(values::value(0, 3, 4))));
    }
}
