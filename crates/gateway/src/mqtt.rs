//! MQTT transport of the gateway: an embedded broker ([`EmbeddedBroker`], rumqttd, plain TCP)
//! and a subscriber ([`spawn_subscriber`], rumqttc) that works with any MQTT 3.1.1 broker.
//!
//! The subscriber checks each edge node's session sequence ([`SessionTracker`]), hands `DDATA`
//! record bytes to a [`RecordSink`] (the gateway pipeline), and only after the sink reports a
//! record durable publishes a `DACK` (highest durable seq of the stream) and acknowledges the
//! MQTT QoS 1 delivery (manual acks: a record the broker considers delivered was stored). A
//! sequence gap publishes an `NCMD` rebirth request and reports a `RequestRebirth` to the sink.
//! Queues are bounded; oversized, malformed and misaddressed messages are dropped, counted
//! and logged with their typed error.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chipledger_types::data_tx::RequestRebirth;
use chipledger_types::device_tx::DeviceId;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot};

use crate::topics::{
    DurableAck, Frame, MAX_FRAME_BYTES, MessageType, REBIRTH_COMMAND, RebirthReason, SessionTracker, SessionVerdict,
    Topic, TopicError, check_record_device, device_segment, gateway_filter,
};

/// Largest MQTT payload the transport carries: twice a frame, so an oversized frame reaches
/// the gateway and is counted instead of dropping the whole connection.
pub const MAX_TRANSPORT_PAYLOAD_BYTES: usize = 2 * MAX_FRAME_BYTES;
/// The mosquitto settings a gateway's broker needs (lines for `mosquitto.conf`). mosquitto
/// drops QoS 1 messages for a subscriber once `max_queued_messages` (default 1,000) are queued
/// for it, so a burst larger than that would be lost before the gateway saw it (the device
/// never gets its `DACK`); and an unbounded `max_inflight_messages` (0) would let the broker
/// push more unacknowledged messages than the gateway queues ([`DEFAULT_QUEUE_RECORDS_MAX`]),
/// so it is bounded below that.
pub const MOSQUITTO_GATEWAY_SETTINGS: &str = "max_inflight_messages 1000\nmax_queued_messages 1000000\n";

/// Default bound of the queue between the MQTT event loop and the sink.
pub const DEFAULT_QUEUE_RECORDS_MAX: usize = 1024;
/// Streams whose highest durable seq the subscriber remembers for its `DACK`s.
pub const MAX_ACKED_STREAMS: usize = 1_000_000;
/// How long [`EmbeddedBroker::start`] waits for the listener.
pub const BROKER_START_TIMEOUT_MS: u64 = 10_000;
/// How long [`spawn_subscriber`] waits for the broker to confirm the subscriptions.
pub const SUBSCRIBE_TIMEOUT_MS: u64 = 10_000;
/// Pause before the event loop reconnects after a connection error.
pub const RECONNECT_DELAY_MS: u64 = 500;
/// MQTT keep-alive of the gateway's connection.
pub const KEEP_ALIVE_S: u64 = 30;
/// Times the worker retries an unavailable sink before leaving a record unacknowledged.
pub const SINK_RETRIES_MAX: u32 = 40;
/// Pause between those retries.
pub const SINK_RETRY_DELAY_MS: u64 = 250;
/// Most queued messages the worker takes at once: their records go to the sink in one
/// [`RecordSink::accept_many`] call (one group commit), then their acks leave in order.
pub const MAX_WORKER_GROUP: usize = 256;
/// The group of the gateway's own will when it serves every group.
pub const GATEWAY_GROUP: &str = "gateways";
/// Broker connections the embedded broker accepts.
pub const EMBEDDED_MAX_CONNECTIONS: usize = 10_000;

/// Why the transport failed (not per-message problems: those are counted in [`Stats`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MqttError {
    #[error("embedded broker config: {0}")]
    BrokerConfig(String),
    #[error("embedded broker did not listen on {addr} within {waited_ms} ms (port in use?)")]
    BrokerNotListening { addr: SocketAddr, waited_ms: u64 },
    #[error("could not find a free local port: {0}")]
    NoFreePort(std::io::Error),
    #[error("gateway id '{0}' must be a ledger name: 1-64 chars of a-z, 0-9 and '-'")]
    BadGatewayId(String),
    #[error("invalid gateway id or group: {0}")]
    BadName(#[from] TopicError),
    #[error("MQTT client request failed: {0}")]
    Client(#[from] rumqttc::ClientError),
    #[error("could not start the sink worker thread: {0}")]
    Thread(std::io::Error),
    #[error("broker {broker} did not confirm the subscriptions within {waited_ms} ms: {last_error}")]
    SubscribeTimeout {
        broker: String,
        waited_ms: u64,
        last_error: String,
    },
}

/// What a [`RecordSink`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The record is invalid (signature, chain, device status): acknowledged, never stored.
    #[error("record rejected: {0}")]
    Rejected(String),
    /// The sink cannot store now: retried, then left unacknowledged (the device keeps the
    /// record until its `DACK` and republishes it).
    #[error("sink unavailable: {0}")]
    Unavailable(String),
}

/// Where a record came from (its topic).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordOrigin {
    pub group: String,
    pub edge_node: String,
    pub device: DeviceId,
}

/// A record the sink holds durably.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durable {
    pub stream: String,
    pub seq: u64,
}

/// The gateway pipeline as the transport sees it. Called from one dedicated thread, in
/// arrival order; may block (disk, fsync).
pub trait RecordSink: Send + Sync + 'static {
    /// Verifies and durably stores one record (tagged COSE_Sign1 bytes); returns its
    /// stream and seq once durable.
    fn accept(&self, origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError>;
    /// Verifies and durably stores several records, given in arrival order; one answer per
    /// record, in that order. A sink that can verify in parallel and store a group in one
    /// transaction overrides it. Default: [`RecordSink::accept`] one by one.
    fn accept_many(&self, records: &[(&RecordOrigin, &[u8])]) -> Vec<Result<Durable, SinkError>> {
        records
            .iter()
            .map(|(origin, record)| self.accept(origin, record))
            .collect()
    }
    /// A rebirth was requested after a session-sequence gap: record it on the ledger.
    fn rebirth_requested(&self, event: RequestRebirth);
    /// A message was dropped before reaching [`RecordSink::accept`] (oversized, not a frame,
    /// bad topic); `device` is its `DDATA` topic's device, if any. Called on the worker
    /// thread in arrival order before the message is acknowledged; may block. Default: nothing.
    fn dropped(&self, device: Option<DeviceId>, reason: DropReason, detail: String) {
        let _ = (device, reason, detail);
    }
}

/// Why a message was dropped without reaching the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    Oversized,
    Malformed,
    BadTopic,
    /// A `DDATA` topic names another device than its record ([`TopicError::DeviceMismatch`]).
    DeviceMismatch,
}

/// Counters of a running subscriber.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub unavailable: AtomicU64,
    pub oversized: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_topic: AtomicU64,
    pub device_mismatch: AtomicU64,
    pub rebirths_requested: AtomicU64,
    pub dacks_published: AtomicU64,
    pub transport_errors: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub accepted: u64,
    pub rejected: u64,
    pub unavailable: u64,
    pub oversized: u64,
    pub malformed: u64,
    pub bad_topic: u64,
    pub device_mismatch: u64,
    pub rebirths_requested: u64,
    pub dacks_published: u64,
    pub transport_errors: u64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            unavailable: get(&self.unavailable),
            oversized: get(&self.oversized),
            malformed: get(&self.malformed),
            bad_topic: get(&self.bad_topic),
            device_mismatch: get(&self.device_mismatch),
            rebirths_requested: get(&self.rebirths_requested),
            dacks_published: get(&self.dacks_published),
            transport_errors: get(&self.transport_errors),
        }
    }

    fn dropped(&self, reason: DropReason) {
        let counter = match reason {
            DropReason::Oversized => &self.oversized,
            DropReason::Malformed => &self.malformed,
            DropReason::BadTopic => &self.bad_topic,
            DropReason::DeviceMismatch => &self.device_mismatch,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

// ---- embedded broker ----------------------------------------------------------------------------

/// An in-process rumqttd broker on plain TCP. rumqttd has no shutdown API: it lives until the
/// process exits.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

/// A loopback address with a port that was free a moment ago (bind to port 0, read, release).
pub fn free_local_addr() -> Result<SocketAddr, MqttError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(MqttError::NoFreePort)?;
    listener.local_addr().map_err(MqttError::NoFreePort)
}

fn broker_config(listen: SocketAddr) -> Result<rumqttd::Config, MqttError> {
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = {EMBEDDED_MAX_CONNECTIONS}
max_outgoing_packet_count = 200
max_segment_size = 10485760
max_segment_count = 10

[v4.1]
name = "chipledger-v4"
listen = "{listen}"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = {MAX_TRANSPORT_PAYLOAD_BYTES}
    max_inflight_count = 500
    dynamic_filters = true
"#
    );
    toml::from_str(&text).map_err(|e| MqttError::BrokerConfig(e.to_string()))
}

impl EmbeddedBroker {
    /// Starts rumqttd listening on `listen` (MQTT 3.1.1) on its own thread and returns once
    /// the port accepts connections.
    pub fn start(listen: SocketAddr) -> Result<Self, MqttError> {
        let mut broker = rumqttd::Broker::new(broker_config(listen)?);
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded MQTT broker stopped");
                }
            })
            .map_err(|e| MqttError::BrokerConfig(e.to_string()))?;
        let started = Instant::now();
        let timeout = Duration::from_millis(BROKER_START_TIMEOUT_MS);
        while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
            if started.elapsed() > timeout {
                return Err(MqttError::BrokerNotListening {
                    addr: listen,
                    waited_ms: BROKER_START_TIMEOUT_MS,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { addr: listen })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

// ---- subscriber ---------------------------------------------------------------------------------

/// Where and as whom the subscriber connects.
#[derive(Clone, Debug)]
pub struct SubscriberConfig {
    pub host: String,
    pub port: u16,
    /// MQTT client id, the `gateway` of ledger events and the edge node of the gateway's will.
    pub gateway_id: String,
    /// The group served; `None` for every group.
    pub group: Option<String>,
    /// MQTT client id when it is not `gateway_id`: one gateway serving several groups over
    /// several connections (one subscriber each, e.g. past a broker's in-flight limit per
    /// connection) needs a distinct one per connection.
    pub client_id: Option<String>,
    /// Sizes the client's request channel (DACKs and acks the worker hands back). The queue
    /// from the event loop to the worker itself is unbounded: see [`spawn_subscriber`].
    pub queue_records_max: usize,
}

impl SubscriberConfig {
    /// Every group, default queue.
    pub fn new(host: &str, port: u16, gateway_id: &str) -> Self {
        Self {
            host: host.into(),
            port,
            gateway_id: gateway_id.into(),
            group: None,
            client_id: None,
            queue_records_max: DEFAULT_QUEUE_RECORDS_MAX,
        }
    }

    fn will_topic(&self) -> Result<Topic, TopicError> {
        let group = self.group.as_deref().unwrap_or(GATEWAY_GROUP);
        Topic::node(group, MessageType::NDeath, &self.gateway_id)
    }
}

/// A running subscriber.
pub struct SubscriberHandle {
    client: AsyncClient,
    counters: Arc<Counters>,
    stopping: Arc<AtomicBool>,
    will: Topic,
    event_loop: tokio::task::JoinHandle<()>,
    worker: std::thread::JoinHandle<()>,
}

impl SubscriberHandle {
    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// Publishes the gateway's `NDEATH` (a clean disconnect does not fire the will),
    /// disconnects and waits until the queue is drained.
    pub async fn shutdown(self) {
        self.stopping.store(true, Ordering::SeqCst);
        let death = crate::topics::EdgeSequencer::new(0).death();
        let _ = self
            .client
            .publish(self.will.to_string(), QoS::AtLeastOnce, false, death)
            .await;
        let _ = self.client.disconnect().await;
        let _ = self.event_loop.await;
        let _ = tokio::task::spawn_blocking(move || self.worker.join()).await;
    }
}

enum Job {
    Record {
        origin: RecordOrigin,
        publish: Publish,
    },
    /// Acknowledge only (not a record).
    Ack(Publish),
    /// Tell the sink, then acknowledge.
    Dropped {
        publish: Publish,
        device: Option<DeviceId>,
        reason: DropReason,
        detail: String,
    },
    Rebirth {
        topic: Topic,
        reason: RebirthReason,
    },
}

/// Connects to the broker, subscribes to the edge-node topics (QoS 1) and returns once the
/// broker confirmed them. Must run inside a tokio runtime.
pub async fn spawn_subscriber(
    config: SubscriberConfig,
    sink: Arc<dyn RecordSink>,
) -> Result<SubscriberHandle, MqttError> {
    chipledger_types::tx::check_name(&config.gateway_id)
        .map_err(|_| MqttError::BadGatewayId(config.gateway_id.clone()))?;
    let will = config.will_topic()?;
    let group = config.group.clone().unwrap_or_else(|| "+".into());
    let queue = config.queue_records_max.max(1);
    let client_id = config.client_id.clone().unwrap_or_else(|| config.gateway_id.clone());
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options
        .set_keep_alive(Duration::from_secs(KEEP_ALIVE_S))
        .set_manual_acks(true)
        .set_clean_session(true)
        .set_max_packet_size(MAX_TRANSPORT_PAYLOAD_BYTES + 1024, MAX_TRANSPORT_PAYLOAD_BYTES + 1024)
        .set_last_will(LastWill::new(
            will.to_string(),
            crate::topics::EdgeSequencer::new(0).death(),
            QoS::AtLeastOnce,
            false,
        ));
    // Each job makes at most two client requests (DACK, ack): room for two per queued job and
    // per job of a worker group lets the worker run ahead of the event loop's draining.
    let (client, event_loop) = AsyncClient::new(options, 2 * (queue + MAX_WORKER_GROUP) + 16);
    // The event loop never waits on the worker: rumqttc drains the client's requests (our
    // acks) only between network reads of up to 10 packets, so an event loop blocked on a
    // full queue while the worker waits for request-channel space deadlocks under a broker
    // that pushes faster than acks drain (mosquitto does not cap in-flight messages to an
    // MQTT 3.1.1 subscriber). Memory is then bounded by what the broker sends unacknowledged.
    let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let counters = Arc::new(Counters::default());
    let stopping = Arc::new(AtomicBool::new(false));
    let worker = spawn_worker(&config, client.clone(), sink, jobs_rx, counters.clone())?;
    let state = LoopState {
        client: client.clone(),
        filter: gateway_filter(&group),
        tracker: SessionTracker::new(),
        jobs: jobs_tx,
        counters: counters.clone(),
        stopping: stopping.clone(),
        ready: Some(ready_tx),
        last_error: Arc::new(std::sync::Mutex::new(String::new())),
    };
    let last_error = state.last_error.clone();
    let event_loop = tokio::spawn(run_event_loop(event_loop, state));
    let waited = tokio::time::timeout(Duration::from_millis(SUBSCRIBE_TIMEOUT_MS), ready_rx).await;
    if !matches!(waited, Ok(Ok(()))) {
        stopping.store(true, Ordering::SeqCst);
        event_loop.abort();
        let last_error = last_error.lock().map(|e| e.clone()).unwrap_or_default();
        return Err(MqttError::SubscribeTimeout {
            broker: format!("{}:{}", config.host, config.port),
            waited_ms: SUBSCRIBE_TIMEOUT_MS,
            last_error,
        });
    }
    Ok(SubscriberHandle {
        client,
        counters,
        stopping,
        will,
        event_loop,
        worker,
    })
}

struct LoopState {
    client: AsyncClient,
    filter: String,
    tracker: SessionTracker,
    jobs: mpsc::UnboundedSender<Job>,
    counters: Arc<Counters>,
    stopping: Arc<AtomicBool>,
    ready: Option<oneshot::Sender<()>>,
    last_error: Arc<std::sync::Mutex<String>>,
}

async fn run_event_loop(mut event_loop: EventLoop, mut state: LoopState) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = state.client.try_subscribe(state.filter.clone(), QoS::AtLeastOnce) {
                    tracing::warn!(error = %e, "could not subscribe");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(ready) = state.ready.take() {
                    let _ = ready.send(());
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => state.on_publish(publish).await,
            Ok(_) => {}
            Err(e) => {
                if state.stopping.load(Ordering::SeqCst) {
                    return;
                }
                bump(&state.counters.transport_errors);
                tracing::warn!(error = %e, "MQTT connection error; reconnecting");
                if let Ok(mut last) = state.last_error.lock() {
                    *last = e.to_string();
                }
                tokio::time::sleep(Duration::from_millis(RECONNECT_DELAY_MS)).await;
            }
        }
    }
}

impl LoopState {
    /// Queues the publish for the worker: every publish, so that MQTT acks leave in arrival
    /// order (rumqttd refuses out-of-order acks).
    async fn on_publish(&mut self, publish: Publish) {
        let job = match self.classify(&publish).await {
            Ok(Some(origin)) => Job::Record { origin, publish },
            Ok(None) => Job::Ack(publish),
            Err((reason, error)) => {
                self.counters.dropped(reason);
                tracing::warn!(topic = %publish.topic, %error, "dropped MQTT message");
                Job::Dropped {
                    device: ddata_device(&publish.topic),
                    publish,
                    reason,
                    detail: error.to_string(),
                }
            }
        };
        self.queue(job).await;
    }

    async fn queue(&self, job: Job) {
        if self.jobs.send(job).is_err() {
            tracing::error!("sink worker stopped; message not acknowledged");
        }
    }

    /// Checks topic, frame and session; returns the job for the worker, if any.
    async fn classify(&mut self, publish: &Publish) -> Result<Option<RecordOrigin>, (DropReason, TopicError)> {
        let topic = Topic::parse(&publish.topic).map_err(|e| (DropReason::BadTopic, e))?;
        if !topic.message_type.from_edge() {
            return Ok(None);
        }
        let frame = Frame::decode(&publish.payload).map_err(|e| match e {
            TopicError::FrameTooLarge { .. } => (DropReason::Oversized, e),
            e => (DropReason::Malformed, e),
        })?;
        // A device segment must name a device before the message counts in the session.
        let device = match topic.device {
            Some(_) => Some(topic.device_id().map_err(|e| (DropReason::BadTopic, e))?),
            None => None,
        };
        let verdict = self.tracker.observe(&topic, &frame);
        if let SessionVerdict::RebirthNeeded(reason) = verdict {
            bump(&self.counters.rebirths_requested);
            let job = Job::Rebirth {
                topic: topic.clone(),
                reason,
            };
            self.queue(job).await;
        }
        let (MessageType::DData, Some(device)) = (topic.message_type, device) else {
            return Ok(None);
        };
        // Relayed records: the topic's edge node is the relay, its device the record's own.
        check_record_device(&device, frame.body).map_err(|e| (DropReason::DeviceMismatch, e))?;
        Ok(Some(RecordOrigin {
            group: topic.group,
            edge_node: topic.edge_node,
            device,
        }))
    }
}

/// The device a `DDATA` topic names, if it parses.
fn ddata_device(topic: &str) -> Option<DeviceId> {
    let topic = Topic::parse(topic).ok()?;
    (topic.message_type == MessageType::DData)
        .then(|| topic.device_id().ok())
        .flatten()
}

// ---- sink worker --------------------------------------------------------------------------------

struct Worker {
    gateway_id: String,
    client: AsyncClient,
    runtime: tokio::runtime::Handle,
    sink: Arc<dyn RecordSink>,
    counters: Arc<Counters>,
    heads: HashMap<(DeviceId, String), u64>,
}

fn spawn_worker(
    config: &SubscriberConfig,
    client: AsyncClient,
    sink: Arc<dyn RecordSink>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    counters: Arc<Counters>,
) -> Result<std::thread::JoinHandle<()>, MqttError> {
    let mut worker = Worker {
        gateway_id: config.gateway_id.clone(),
        client,
        runtime: tokio::runtime::Handle::current(),
        sink,
        counters,
        heads: HashMap::new(),
    };
    let spawned = std::thread::Builder::new().name("gateway-sink".into()).spawn(move || {
        let mut group = Vec::with_capacity(MAX_WORKER_GROUP);
        while let Some(job) = jobs.blocking_recv() {
            group.push(job);
            while group.len() < MAX_WORKER_GROUP
                && let Ok(job) = jobs.try_recv()
            {
                group.push(job);
            }
            worker.group(group.drain(..));
        }
    });
    spawned.map_err(MqttError::Thread)
}

impl Worker {
    /// Hands the group's records to the sink at once, then acts on each job in arrival order.
    fn group(&mut self, jobs: impl Iterator<Item = Job>) {
        let jobs: Vec<Job> = jobs.collect();
        let records: Vec<(&RecordOrigin, &[u8])> = jobs
            .iter()
            .filter_map(|job| match job {
                // The event loop checked the frame: it decodes.
                Job::Record { origin, publish } => Frame::decode(&publish.payload).ok().map(|f| (origin, f.body)),
                _ => None,
            })
            .collect();
        let mut answers = self.accept_with_retry(&records).into_iter();
        drop(records);
        for job in jobs {
            match job {
                // A frame that does not decode got no answer (and is left as before).
                Job::Record { origin, publish } if Frame::decode(&publish.payload).is_ok() => {
                    if let Some(answer) = answers.next() {
                        self.record(&origin, &publish, answer);
                    }
                }
                Job::Record { .. } => {}
                Job::Ack(publish) => self.ack(&publish),
                Job::Dropped {
                    publish,
                    device,
                    reason,
                    detail,
                } => {
                    self.sink.dropped(device, reason, detail);
                    self.ack(&publish);
                }
                Job::Rebirth { topic, reason } => self.rebirth(&topic, reason),
            }
        }
    }

    /// Acts on the sink's answer for one record: `DACK` and ack, ack only, or nothing.
    fn record(&mut self, origin: &RecordOrigin, publish: &Publish, answer: Result<Durable, SinkError>) {
        match answer {
            Ok(durable) => {
                bump(&self.counters.accepted);
                self.publish_dack(origin, durable);
                self.ack(publish);
            }
            Err(SinkError::Rejected(why)) => {
                bump(&self.counters.rejected);
                tracing::info!(device = %device_segment(&origin.device), %why, "record rejected");
                self.ack(publish);
            }
            Err(SinkError::Unavailable(why)) => {
                tracing::warn!(%why, "sink unavailable; record left unacknowledged");
            }
        }
    }

    /// The sink's answers, one per record; records the sink could not take are retried
    /// [`SINK_RETRIES_MAX`] times (in order, together), since an unacknowledged message
    /// blocks every later ack on its connection.
    fn accept_with_retry(&self, records: &[(&RecordOrigin, &[u8])]) -> Vec<Result<Durable, SinkError>> {
        if records.is_empty() {
            return Vec::new();
        }
        let mut answers = self.answers(records);
        for _ in 0..SINK_RETRIES_MAX {
            let again: Vec<usize> = (0..answers.len())
                .filter(|&i| matches!(answers[i], Err(SinkError::Unavailable(_))))
                .collect();
            if again.is_empty() {
                break;
            }
            self.counters
                .unavailable
                .fetch_add(again.len() as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(SINK_RETRY_DELAY_MS));
            let retried: Vec<_> = again.iter().map(|&i| records[i]).collect();
            for (i, answer) in again.into_iter().zip(self.answers(&retried)) {
                answers[i] = answer;
            }
        }
        answers
    }

    /// [`RecordSink::accept_many`], held to one answer per record.
    fn answers(&self, records: &[(&RecordOrigin, &[u8])]) -> Vec<Result<Durable, SinkError>> {
        let mut answers = self.sink.accept_many(records);
        let missing = || {
            Err(SinkError::Unavailable(
                "the sink answered fewer records than it was given".into(),
            ))
        };
        answers.resize_with(records.len(), missing);
        answers
    }

    fn publish_dack(&mut self, origin: &RecordOrigin, durable: Durable) {
        let key = (origin.device, durable.stream);
        let seq = match self.heads.get_mut(&key) {
            Some(head) => {
                *head = (*head).max(durable.seq);
                *head
            }
            None => {
                if self.heads.len() < MAX_ACKED_STREAMS {
                    self.heads.insert(key.clone(), durable.seq);
                }
                durable.seq
            }
        };
        let device = device_segment(&origin.device);
        let Ok(topic) = Topic::device(&origin.group, MessageType::DAck, &origin.edge_node, &device) else {
            return;
        };
        let body = DurableAck { stream: key.1, seq }.encode();
        // QoS 0: a DACK is cumulative (the highest durable seq of the chain), so a lost one is
        // covered by the next, and a device that sees none resends, which is acked again. A
        // QoS 1 DACK would hold one of the client's few outgoing in-flight slots until the
        // broker's PUBACK, which arrives behind the flood of incoming records the event loop
        // is blocked on: under a broker without an in-flight cap the acks stopped flowing.
        let sent = self
            .runtime
            .block_on(self.client.publish(topic.to_string(), QoS::AtMostOnce, false, body));
        match sent {
            Ok(()) => bump(&self.counters.dacks_published),
            Err(_) => bump(&self.counters.transport_errors),
        }
    }

    fn ack(&self, publish: &Publish) {
        if self.runtime.block_on(self.client.ack(publish)).is_err() {
            bump(&self.counters.transport_errors);
        }
    }

    fn rebirth(&self, topic: &Topic, reason: RebirthReason) {
        if let Ok(device) = topic.device_id() {
            self.sink.rebirth_requested(RequestRebirth {
                gateway: self.gateway_id.clone(),
                device,
                edge_node: topic.edge_node.clone(),
                reason: reason.to_string(),
            });
        }
        let Ok(cmd) = Topic::node(&topic.group, MessageType::NCmd, &topic.edge_node) else {
            return;
        };
        let sent =
            self.runtime.block_on(
                self.client
                    .publish(cmd.to_string(), QoS::AtLeastOnce, false, REBIRTH_COMMAND),
            );
        if sent.is_err() {
            bump(&self.counters.transport_errors);
        }
    }
}
