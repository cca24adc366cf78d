//! The MQTT transport end to end: simulated devices (real keys, sealed and signed records,
//! rumqttc) → broker → gateway subscriber → a collecting sink that verifies every record →
//! DACKs back to the devices. Runs against the embedded rumqttd broker, and against a
//! mosquitto process when `mosquitto` is installed (scripts/test.sh installs it).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chipledger_device::key::DevicePublicKey;
use chipledger_device::record::{RecordChainWriter, record_hash, verify_record};
use chipledger_device::seal::{EpochEntropy, EpochPolicy, SealingState};
use chipledger_gateway::mqtt::{
    Durable, EmbeddedBroker, RecordOrigin, RecordSink, SinkError, SubscriberConfig, free_local_addr, spawn_subscriber,
};
use chipledger_gateway::store::{ChainKey, StoredRecord};
use chipledger_gateway::topics::{
    DurableAck, EdgeSequencer, Frame, MAX_FRAME_BYTES, MessageType, REBIRTH_COMMAND, Topic, device_segment,
};
use chipledger_gateway::{Gateway, GatewayConfig, IngestError, MemoryDirectory};
use chipledger_types::data_tx::{RequestRebirth, TrustLevel};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::record::RecordError;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

const GROUP: &str = "plant-1";
const STREAM: &str = "temp";
const WAIT: Duration = Duration::from_secs(30);

/// A sink that verifies each record against the device's key and keeps it in memory.
#[derive(Default)]
struct CollectingSink {
    keys: HashMap<DeviceId, DevicePublicKey>,
    records: Mutex<BTreeMap<(DeviceId, u64), Vec<u8>>>,
    rebirths: Mutex<Vec<RequestRebirth>>,
}

impl RecordSink for CollectingSink {
    fn accept(&self, origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError> {
        let key = self
            .keys
            .get(&origin.device)
            .ok_or(SinkError::Rejected("unknown device".into()))?;
        let r = verify_record(record, key).map_err(|e| SinkError::Rejected(e.to_string()))?;
        if r.device != origin.device {
            return Err(SinkError::Rejected("topic names another device".into()));
        }
        self.records.lock().unwrap().insert((r.device, r.seq), record.to_vec());
        Ok(Durable {
            stream: r.stream,
            seq: r.seq,
        })
    }

    fn rebirth_requested(&self, event: RequestRebirth) {
        self.rebirths.lock().unwrap().push(event);
    }
}

impl CollectingSink {
    fn holds(&self, device: DeviceId, seq: u64) -> bool {
        self.records.lock().unwrap().contains_key(&(device, seq))
    }
}

/// A device: Ed25519 Alias key, sealing to an owner, one chain, one MQTT session.
struct TestDevice {
    key: ed25519_dalek::SigningKey,
    id: DeviceId,
    edge_node: String,
    chain: RecordChainWriter,
    sealing: SealingState,
    session: EdgeSequencer,
    published: Vec<Vec<u8>>,
}

impl TestDevice {
    fn new(index: u8, owner: p256::PublicKey) -> Self {
        let key = ed25519_dalek::SigningKey::from_bytes(&[index.wrapping_add(1); 32]);
        let id = DeviceId(DevicePublicKey::from(key.verifying_key()).dice_id());
        Self {
            key,
            id,
            edge_node: format!("edge-{index}"),
            chain: RecordChainWriter::new(id, STREAM).unwrap(),
            sealing: SealingState::new(id, owner, EpochPolicy::default(), 1),
            session: EdgeSequencer::new(0),
            published: Vec::new(),
        }
    }

    fn topic(&self, t: MessageType) -> String {
        match t.has_device() {
            true => Topic::device(GROUP, t, &self.edge_node, &device_segment(&self.id)),
            false => Topic::node(GROUP, t, &self.edge_node),
        }
        .unwrap()
        .to_string()
    }

    /// The next record as a DDATA frame (sealed payload, signed, chained).
    fn next_record(&mut self, now_ms: u64) -> Vec<u8> {
        if self.sealing.needs_rotation(now_ms) {
            let entropy = EpochEntropy {
                data_key: [9; 16],
                ephemeral_secret: [self.id.0[0] | 1; 32],
            };
            self.sealing.rotate(now_ms, entropy).unwrap();
        }
        let seq = self.chain.next_seq();
        let (epoch, sealed) = self.sealing.seal(now_ms, STREAM, seq, b"{\"temp_mc\":21500}").unwrap();
        let (_, signed) = self.chain.sign_next(&self.key, now_ms, epoch, sealed).unwrap();
        self.published.push(signed.bytes.clone());
        self.session.next(&signed.bytes)
    }
}

/// What a device's connection received.
#[derive(Debug, PartialEq, Eq)]
enum Inbound {
    Ack(DurableAck),
    Rebirth,
}

async fn connect(addr: SocketAddr, id: &str, subscribe: &[String]) -> (AsyncClient, mpsc::UnboundedReceiver<Inbound>) {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_max_packet_size(4 * MAX_FRAME_BYTES, 4 * MAX_FRAME_BYTES);
    let (client, mut event_loop) = AsyncClient::new(options, 256);
    let (tx, rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let mut subscribed_tx = Some(subscribed_tx);
    for filter in subscribe {
        client.subscribe(filter.clone(), QoS::AtLeastOnce).await.unwrap();
    }
    let mut subacks_left = subscribe.len();
    tokio::spawn(async move {
        while let Ok(event) = event_loop.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    subacks_left = subacks_left.saturating_sub(1);
                    if subacks_left == 0 {
                        subscribed_tx.take().map(|s| s.send(()));
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let topic = Topic::parse(&p.topic).unwrap();
                    let msg = match topic.message_type {
                        MessageType::DAck => Inbound::Ack(DurableAck::decode(&p.payload).unwrap()),
                        MessageType::NCmd if p.payload.as_ref() == REBIRTH_COMMAND => Inbound::Rebirth,
                        _ => continue,
                    };
                    let _ = tx.send(msg);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(WAIT, subscribed).await.unwrap().unwrap();
    (client, rx)
}

async fn publish(client: &AsyncClient, topic: String, payload: Vec<u8>) {
    client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap();
}

fn owner() -> p256::PublicKey {
    p256::SecretKey::from_slice(&[5; 32]).unwrap().public_key()
}

fn devices(n: u8) -> (Vec<TestDevice>, Arc<CollectingSink>) {
    let devices: Vec<TestDevice> = (0..n).map(|i| TestDevice::new(i, owner())).collect();
    let keys = devices
        .iter()
        .map(|d| (d.id, DevicePublicKey::from(d.key.verifying_key())))
        .collect();
    let sink = Arc::new(CollectingSink {
        keys,
        ..Default::default()
    });
    (devices, sink)
}

/// Births, `records` DDATA, waits for the DACK of the last one; checks every DACK came after
/// the sink held that record.
async fn run_device(addr: SocketAddr, mut device: TestDevice, records: u64, sink: Arc<CollectingSink>) -> TestDevice {
    let dack = device.topic(MessageType::DAck);
    let (client, mut inbound) = connect(addr, &device.edge_node, &[dack]).await;
    publish(&client, device.topic(MessageType::NBirth), device.session.birth(&[])).await;
    publish(&client, device.topic(MessageType::DBirth), device.session.next(&[])).await;
    for k in 0..records {
        let frame = device.next_record(1_700_000_000_000 + k);
        publish(&client, device.topic(MessageType::DData), frame).await;
    }
    let mut acked = 0;
    while acked < records {
        let msg = tokio::time::timeout(WAIT, inbound.recv()).await;
        let msg = msg
            .unwrap_or_else(|_| {
                panic!(
                    "{}: no DACK after seq {acked} of {records}; sink holds {}",
                    device.edge_node,
                    sink.records.lock().unwrap().len()
                )
            })
            .unwrap();
        let Inbound::Ack(ack) = msg else {
            panic!("unexpected {msg:?}")
        };
        assert_eq!(ack.stream, STREAM);
        assert!(
            sink.holds(device.id, ack.seq),
            "DACK {} before the sink held it",
            ack.seq
        );
        assert!(ack.seq > acked, "DACKs only move forward");
        acked = ack.seq;
    }
    publish(&client, device.topic(MessageType::DDeath), device.session.next(&[])).await;
    publish(&client, device.topic(MessageType::NDeath), device.session.death()).await;
    client.disconnect().await.unwrap();
    device
}

async fn fleet_through(addr: SocketAddr, n: u8, records: u64) {
    let (devices, sink) = devices(n);
    let config = SubscriberConfig::new(&addr.ip().to_string(), addr.port(), "gw-1");
    let subscriber = spawn_subscriber(config, sink.clone()).await.unwrap();
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|d| tokio::spawn(run_device(addr, d, records, sink.clone())))
        .collect();
    let mut devices = Vec::new();
    for t in tasks {
        devices.push(t.await.unwrap());
    }
    let stored = sink.records.lock().unwrap().clone();
    assert_eq!(stored.len() as u64, n as u64 * records);
    for d in &devices {
        for (i, bytes) in d.published.iter().enumerate() {
            let got = &stored[&(d.id, i as u64 + 1)];
            assert_eq!(record_hash(got), record_hash(bytes), "record intact");
        }
    }
    let stats = subscriber.stats();
    assert_eq!(stats.accepted, n as u64 * records);
    assert_eq!(stats.dacks_published, n as u64 * records);
    assert_eq!((stats.rejected, stats.rebirths_requested, stats.oversized), (0, 0, 0));
    assert!(sink.rebirths.lock().unwrap().is_empty());
    subscriber.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_broker_delivers_every_record_and_acks_after_durable() {
    let broker = EmbeddedBroker::start(free_local_addr().unwrap()).unwrap();
    fleet_through(broker.addr(), 8, 25).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_gap_requests_rebirth_and_keeps_the_records() {
    let broker = EmbeddedBroker::start(free_local_addr().unwrap()).unwrap();
    let addr = broker.addr();
    let (mut devices, sink) = devices(1);
    let mut d = devices.remove(0);
    let config = SubscriberConfig::new(&addr.ip().to_string(), addr.port(), "gw-1");
    let subscriber = spawn_subscriber(config, sink.clone()).await.unwrap();
    let subs = [d.topic(MessageType::NCmd), d.topic(MessageType::DAck)];
    let (client, mut inbound) = connect(addr, &d.edge_node, &subs).await;
    publish(&client, d.topic(MessageType::NBirth), d.session.birth(&[])).await; // seq 0
    let first = d.next_record(1); // seq 1
    publish(&client, d.topic(MessageType::DData), first).await;
    let _lost = d.session.next(&[]); // seq 2 never published
    let second = d.next_record(2); // seq 3: a gap
    publish(&client, d.topic(MessageType::DData), second).await;
    let mut seen = Vec::new();
    while !(seen.contains(&Inbound::Rebirth) && sink.holds(d.id, 2) && seen.len() >= 3) {
        seen.push(tokio::time::timeout(WAIT, inbound.recv()).await.unwrap().unwrap());
    }
    let rebirths = sink.rebirths.lock().unwrap().clone();
    assert_eq!(
        rebirths,
        [RequestRebirth {
            gateway: "gw-1".into(),
            device: d.id,
            edge_node: d.edge_node.clone(),
            reason: "session seq gap: expected 2, got 3".into(),
        }]
    );
    assert_eq!(subscriber.stats().rebirths_requested, 1);
    assert_eq!(subscriber.stats().accepted, 2, "records around a gap are still stored");
    subscriber.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_malformed_and_misaddressed_frames_are_counted() {
    let broker = EmbeddedBroker::start(free_local_addr().unwrap()).unwrap();
    let addr = broker.addr();
    let (mut devices, sink) = devices(1);
    let mut d = devices.remove(0);
    let config = SubscriberConfig::new(&addr.ip().to_string(), addr.port(), "gw-1");
    let subscriber = spawn_subscriber(config, sink.clone()).await.unwrap();
    let (client, mut inbound) = connect(addr, &d.edge_node, &[d.topic(MessageType::DAck)]).await;
    publish(&client, d.topic(MessageType::NBirth), d.session.birth(&[])).await;
    let oversized = Frame {
        seq: 1,
        bd_seq: 0,
        body: &vec![0u8; MAX_FRAME_BYTES],
    };
    publish(&client, d.topic(MessageType::DData), oversized.encode()).await;
    publish(&client, d.topic(MessageType::DData), vec![9, 1, 0, 0xd2]).await;
    let wrong_device = Topic::device(GROUP, MessageType::DData, &d.edge_node, "not-a-device-id").unwrap();
    publish(&client, wrong_device.to_string(), vec![1, 1, 0]).await;
    let good = d.next_record(1); // seq 1: the dropped frames did not advance the session
    publish(&client, d.topic(MessageType::DData), good).await;
    let ack = tokio::time::timeout(WAIT, inbound.recv()).await.unwrap().unwrap();
    assert_eq!(
        ack,
        Inbound::Ack(DurableAck {
            stream: STREAM.into(),
            seq: 1
        })
    );
    let stats = subscriber.stats();
    assert_eq!((stats.oversized, stats.malformed, stats.bad_topic), (1, 1, 1));
    assert_eq!((stats.accepted, stats.rebirths_requested), (1, 0));
    subscriber.shutdown().await;
}

/// A sink backed by the real gateway pipeline: each record verified under its own device's keys
/// (a `MemoryDirectory`), chain-checked and stored durably.
struct PipelineSink {
    gateway: Mutex<Gateway>,
    directory: MemoryDirectory,
    dir: std::path::PathBuf,
    /// Why records were refused, in order.
    refusals: Mutex<Vec<IngestError>>,
}

impl PipelineSink {
    fn open(name: &str, directory: MemoryDirectory) -> Self {
        let dir = std::env::temp_dir().join(format!("chipledger-mqtt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gateway = Gateway::open(&dir.join("gateway.redb"), GatewayConfig::new("gw-1")).unwrap();
        Self {
            gateway: Mutex::new(gateway),
            directory,
            dir,
            refusals: Mutex::new(Vec::new()),
        }
    }

    /// The stored record of `device`'s chain at `seq`, if any.
    fn stored(&self, device: DeviceId, seq: u64) -> Option<StoredRecord> {
        let chain = ChainKey {
            device,
            stream: STREAM.into(),
        };
        self.gateway.lock().unwrap().store().record(&chain, seq).unwrap()
    }
}

impl Drop for PipelineSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RecordSink for PipelineSink {
    fn accept(&self, _origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError> {
        match self.gateway.lock().unwrap().ingest(record, &self.directory) {
            Ok(a) => Ok(Durable {
                stream: a.stream,
                seq: a.seq,
            }),
            Err(e @ IngestError::Store(_)) => Err(SinkError::Unavailable(e.to_string())),
            Err(e) => {
                let why = SinkError::Rejected(e.to_string());
                self.refusals.lock().unwrap().push(e);
                Err(why)
            }
        }
    }

    fn rebirth_requested(&self, _event: RequestRebirth) {}
}

/// Mesh relaying: device B's edge node forwards device A's records on
/// `DDATA/{B's edge}/{A}`. Each is verified end to end under A's key and chained in A's chain
/// (its DACK comes back on the relay's topic for A); a copy with one byte altered is refused
/// (bad signature) without harming the chain; A's record published on B's device topic is
/// dropped as a device mismatch; B's own record lands in B's chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_record_is_verified_and_chained_as_its_own_devices() {
    let broker = EmbeddedBroker::start(free_local_addr().unwrap()).unwrap();
    let addr = broker.addr();
    let (mut devices, _) = devices(2);
    let (mut b, mut a) = (devices.pop().unwrap(), devices.pop().unwrap());
    let mut directory = MemoryDirectory::new();
    for d in [&a, &b] {
        directory.register(d.id, DevicePublicKey::from(d.key.verifying_key()));
    }
    let sink = Arc::new(PipelineSink::open("relay", directory));
    let config = SubscriberConfig::new(&addr.ip().to_string(), addr.port(), "gw-1");
    let subscriber = spawn_subscriber(config, sink.clone()).await.unwrap();

    // A is out of the broker's reach: it signs records, B's edge node carries them.
    for t in 1..=4 {
        a.next_record(1_700_000_000_000 + t);
    }
    let relay_edge = b.edge_node.clone();
    let relay_topic = |t: MessageType, device: &DeviceId| {
        Topic::device(GROUP, t, &relay_edge, &device_segment(device))
            .unwrap()
            .to_string()
    };
    let (client, mut inbound) = connect(addr, &b.edge_node, &[relay_topic(MessageType::DAck, &a.id)]).await;
    publish(&client, b.topic(MessageType::NBirth), b.session.birth(&[])).await;
    for record in &a.published[..2] {
        let frame = b.session.next(record);
        publish(&client, relay_topic(MessageType::DData, &a.id), frame).await;
    }
    let mut tampered = a.published[2].clone();
    let last_body_byte = tampered.len() - 67; // before the 64-byte signature and its 2-byte header
    tampered[last_body_byte] ^= 1;
    let frame = b.session.next(&tampered);
    publish(&client, relay_topic(MessageType::DData, &a.id), frame).await;
    let frame = b.session.next(&a.published[2]);
    publish(&client, relay_topic(MessageType::DData, &a.id), frame).await;
    // A's record on B's device topic: the topic lies about the device.
    let frame = b.session.next(&a.published[3]);
    publish(&client, relay_topic(MessageType::DData, &b.id), frame).await;
    let own = b.next_record(1_700_000_000_100);
    publish(&client, b.topic(MessageType::DData), own).await;
    let frame = b.session.next(&a.published[3]);
    publish(&client, relay_topic(MessageType::DData, &a.id), frame).await;

    let mut acked = 0;
    while acked < 4 {
        let msg = tokio::time::timeout(WAIT, inbound.recv()).await.unwrap().unwrap();
        let Inbound::Ack(ack) = msg else {
            panic!("unexpected {msg:?}")
        };
        assert!(sink.stored(a.id, ack.seq).is_some(), "DACK {} before durable", ack.seq);
        acked = ack.seq;
    }
    for (i, bytes) in a.published.iter().enumerate() {
        let stored = sink.stored(a.id, i as u64 + 1).expect("A's record in A's chain");
        assert_eq!(stored.hash, record_hash(bytes), "the untampered record, as signed by A");
        assert_eq!(stored.trust, TrustLevel::Registered);
    }
    assert!(sink.stored(b.id, 1).is_some(), "B's own record in B's chain");
    assert!(sink.stored(b.id, 2).is_none());
    let stats = subscriber.stats();
    assert_eq!(
        (stats.accepted, stats.rejected, stats.device_mismatch),
        (5, 1, 1),
        "{stats:?}"
    );
    assert_eq!((stats.bad_topic, stats.rebirths_requested), (0, 0));
    let refusals = std::mem::take(&mut *sink.refusals.lock().unwrap());
    assert!(
        matches!(
            refusals.as_slice(),
            [IngestError::Record(RecordError::BadSignature) | IngestError::NoMatchingKey(_)]
        ),
        "{refusals:?}"
    );
    subscriber.shutdown().await;
}

/// A mosquitto broker on a free port, killed on drop.
struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(addr: SocketAddr) -> Option<Mosquitto> {
    let which = Command::new("which").arg("mosquitto").output().ok()?;
    if !which.status.success() {
        eprintln!("mosquitto not installed; skipping (scripts/test.sh installs it)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("chipledger-mosquitto-{}", addr.port()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    let text = format!(
        "listener {} {}\nallow_anonymous true\npersistence false\n{}",
        addr.port(),
        addr.ip(),
        chipledger_gateway::mqtt::MOSQUITTO_GATEWAY_SETTINGS
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Mosquitto(child);
    for _ in 0..500 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Some(guard);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("mosquitto did not listen on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_delivers_every_record_and_acks_after_durable() {
    let addr = free_local_addr().unwrap();
    let Some(_mosquitto) = start_mosquitto(addr) else {
        return;
    };
    // 200 devices × 50: a burst far above mosquitto's default queue and the gateway's worker
    // group (the regression of an event loop / worker deadlock under an uncapped broker).
    fleet_through(addr, 200, 50).await;
}
