//! `chipledger fleet simulate`: N simulated devices publishing signed, encrypted records over
//! MQTT (one rumqttc client and tokio task per device), using the device SDK exactly as a chip
//! would: a `SealingState` seals each payload to the owner (COSE_Encrypt0 under a per-epoch key,
//! the key wrapped to the owner on the `_epoch-keys` stream), a `RecordChainWriter` signs and
//! chains it (COSE_Sign1). Topics and session framing are the gateway's (`topics`): NBIRTH,
//! DBIRTH, DDATA at the given rate, DDEATH and NDEATH at the end; `NCMD rebirth` is honoured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey, DeviceSigner};
use chipledger_device::record::{RecordChainWriter, STREAM_EPOCH_KEYS, SignedRecord};
use chipledger_device::seal::{EpochEntropy, EpochPolicy, SealingState};
use chipledger_gateway::topics::{DurableAck, EdgeSequencer, MessageType, REBIRTH_COMMAND, Topic, device_segment};
use chipledger_types::device_tx::DeviceId;
use clap::{Args, Subcommand};
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use sha2::{Digest, Sha256};

/// Devices one run may simulate.
pub const MAX_SIM_DEVICES: usize = 100_000;
/// Records per second per device, at most.
pub const MAX_SIM_RATE_PER_S: f64 = 10_000.0;
/// The data stream every simulated device writes.
pub const SIM_STREAM: &str = "telemetry";
/// How long a run waits for the last DACKs after publishing, by default.
pub const ACK_WAIT_MS: u64 = 5_000;
/// Client request queue per simulated device.
const CLIENT_QUEUE: usize = 64;
/// Domain separation of simulated key derivation.
const TAG_SIM_KEY_V1: &[u8] = b"chipledger/sim-key/v1";

/// `chipledger fleet ...`
#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Publish signed, encrypted records from N simulated devices over MQTT.
    Simulate(SimulateArgs),
}

/// Flags of `fleet simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Simulated devices (each its own MQTT client and edge node).
    #[arg(long, default_value_t = 10)]
    pub devices: usize,
    /// Records per second per device.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// MQTT broker, host:port.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub broker: String,
    /// How long to publish.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Sparkplug-style group.
    #[arg(long, default_value = "sim")]
    pub group: String,
    /// Device key algorithm.
    #[arg(long, default_value = "p256", value_parser = ["p256", "ed25519"])]
    pub alg: String,
    /// Seed of the device keys (device i's key is derived from it and i).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Owner's P-256 public key (SEC1 hex) the data is sealed to; default: derived from --seed.
    #[arg(long)]
    pub owner: Option<String>,
    /// How long to wait for the gateway's last DACKs after publishing (0: do not wait).
    #[arg(long, default_value_t = ACK_WAIT_MS)]
    pub ack_wait_ms: u64,
    /// Print the counts as one JSON object instead of a progress line and a summary.
    #[arg(long)]
    pub json: bool,
}

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulateError {
    #[error("--devices must be 1..={MAX_SIM_DEVICES}, got {0}")]
    Devices(usize),
    #[error("--rate must be > 0 and <= {MAX_SIM_RATE_PER_S} records/s, got {0}")]
    Rate(f64),
    #[error("--seconds must be > 0, got {0}")]
    Seconds(f64),
    #[error("--broker must be host:port, got '{0}'")]
    Broker(String),
    #[error("bad --group or device name: {0}")]
    Topic(#[from] chipledger_gateway::topics::TopicError),
    #[error("--owner is not a SEC1 P-256 public key")]
    Owner,
    #[error("device {device}: {reason}")]
    Device { device: usize, reason: String },
}

/// A validated run.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    pub host: String,
    pub port: u16,
    pub devices: usize,
    pub records_per_device: u64,
    pub records_per_s: f64,
    pub group: String,
    pub alg: DeviceKeyAlg,
    pub seed: u64,
    pub owner: p256::PublicKey,
    pub ack_wait_ms: u64,
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SimulateReport {
    pub devices: u64,
    pub records_published: u64,
    pub epoch_keys_published: u64,
    pub births_published: u64,
    pub deaths_published: u64,
    pub dacks_received: u64,
    pub records_acked: u64,
    pub rebirths_honoured: u64,
    pub elapsed_ms: u64,
}

#[derive(Default)]
struct Shared {
    records: AtomicU64,
    epoch_keys: AtomicU64,
    births: AtomicU64,
    deaths: AtomicU64,
    dacks: AtomicU64,
    acked: AtomicU64,
    rebirths: AtomicU64,
}

impl SimulateArgs {
    /// Checks the flags.
    pub fn options(&self) -> Result<SimulateOptions, SimulateError> {
        if self.devices == 0 || self.devices > MAX_SIM_DEVICES {
            return Err(SimulateError::Devices(self.devices));
        }
        if !(self.rate > 0.0 && self.rate <= MAX_SIM_RATE_PER_S) {
            return Err(SimulateError::Rate(self.rate));
        }
        if !(self.seconds > 0.0 && self.seconds.is_finite()) {
            return Err(SimulateError::Seconds(self.seconds));
        }
        let (host, port) = self
            .broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
            .ok_or_else(|| SimulateError::Broker(self.broker.clone()))?;
        Topic::node(&self.group, MessageType::NBirth, "sim-0")?;
        let owner = match &self.owner {
            Some(h) => {
                let bytes = hex::decode(h).map_err(|_| SimulateError::Owner)?;
                p256::PublicKey::from_sec1_bytes(&bytes).map_err(|_| SimulateError::Owner)?
            }
            None => sim_owner_secret(self.seed).public_key(),
        };
        Ok(SimulateOptions {
            host,
            port,
            devices: self.devices,
            records_per_device: (self.rate * self.seconds).ceil().max(1.0) as u64,
            records_per_s: self.rate,
            group: self.group.clone(),
            alg: DeviceKeyAlg::from_name(&self.alg).unwrap_or(DeviceKeyAlg::P256),
            seed: self.seed,
            owner,
            ack_wait_ms: self.ack_wait_ms,
        })
    }
}

fn derive_bytes(seed: u64, what: &str, index: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TAG_SIM_KEY_V1);
    h.update(seed.to_be_bytes());
    h.update(what.as_bytes());
    h.update(index.to_be_bytes());
    h.finalize().into()
}

/// The owner key a simulation seals to when no `--owner` is given (deterministic from the seed,
/// so a test can open what the simulator sealed).
pub fn sim_owner_secret(seed: u64) -> p256::SecretKey {
    let mut counter = 0;
    loop {
        if let Ok(key) = p256::SecretKey::from_slice(&derive_bytes(seed, "owner", counter)) {
            return key;
        }
        counter += 1;
    }
}

/// A simulated device's Alias key (deterministic from seed and index).
pub enum SimKey {
    P256(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

impl SimKey {
    /// Device `index`'s key.
    pub fn derive(alg: DeviceKeyAlg, seed: u64, index: u64) -> Self {
        match alg {
            DeviceKeyAlg::Ed25519 => SimKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&derive_bytes(
                seed, "ed25519", index,
            ))),
            DeviceKeyAlg::P256 => {
                let mut counter = index;
                loop {
                    let bytes = derive_bytes(seed, "p256", counter);
                    if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&bytes.into()) {
                        return SimKey::P256(key);
                    }
                    counter = counter.wrapping_add(1 << 32);
                }
            }
        }
    }

    pub fn signer(&self) -> DeviceSigner<'_> {
        match self {
            SimKey::P256(k) => k.into(),
            SimKey::Ed25519(k) => k.into(),
        }
    }

    pub fn public(&self) -> DevicePublicKey {
        self.signer().public_key()
    }

    /// The device id (open-dice ID of the public key).
    pub fn device_id(&self) -> DeviceId {
        DeviceId(self.public().dice_id())
    }
}

/// One simulated device: keys, chains, sealing state and session sequencer. No network.
pub struct SimDevice {
    pub key: SimKey,
    pub id: DeviceId,
    pub edge_node: String,
    group: String,
    data: RecordChainWriter,
    epoch_keys: RecordChainWriter,
    sealing: SealingState,
    pub session: EdgeSequencer,
}

/// A message ready to publish.
pub struct Outgoing {
    pub topic: String,
    pub payload: Vec<u8>,
}

impl SimDevice {
    /// Device `index` of a run.
    pub fn new(opts: &SimulateOptions, index: usize) -> Result<Self, SimulateError> {
        let fail = |reason: String| SimulateError::Device { device: index, reason };
        let key = SimKey::derive(opts.alg, opts.seed, index as u64);
        let id = key.device_id();
        let data = RecordChainWriter::new(id, SIM_STREAM).map_err(|e| fail(e.to_string()))?;
        let epoch_keys = RecordChainWriter::new(id, STREAM_EPOCH_KEYS).map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            key,
            id,
            edge_node: format!("sim-{index}"),
            group: opts.group.clone(),
            data,
            epoch_keys,
            sealing: SealingState::new(id, opts.owner, EpochPolicy::default(), 1),
            session: EdgeSequencer::new(0),
        })
    }

    fn topic(&self, t: MessageType) -> String {
        match t.has_device() {
            true => format!("{}/{}", self.node_topic(t), device_segment(&self.id)),
            false => self.node_topic(t),
        }
    }

    fn node_topic(&self, t: MessageType) -> String {
        format!(
            "{}/{}/{t}/{}",
            chipledger_gateway::topics::NAMESPACE,
            self.group,
            self.edge_node
        )
    }

    /// The will (`NDEATH`) of the current session.
    pub fn will(&self) -> Outgoing {
        Outgoing {
            topic: self.topic(MessageType::NDeath),
            payload: self.session.death(),
        }
    }

    /// `NBIRTH` and `DBIRTH` (the DBIRTH body is the device's public key, raw).
    pub fn births(&mut self) -> [Outgoing; 2] {
        let nbirth = self.session.birth(&[]);
        let raw = self.key.public().raw();
        let dbirth = self.session.next(raw.as_bytes());
        [
            Outgoing {
                topic: self.topic(MessageType::NBirth),
                payload: nbirth,
            },
            Outgoing {
                topic: self.topic(MessageType::DBirth),
                payload: dbirth,
            },
        ]
    }

    /// The next data record (after an epoch-key record when the epoch rotates) as `DDATA`.
    pub fn data(&mut self, now_ms: u64, plaintext: &[u8]) -> Result<Vec<Outgoing>, String> {
        let mut out = Vec::with_capacity(2);
        if self.sealing.needs_rotation(now_ms) {
            let mut entropy = EpochEntropy {
                data_key: [0; 16],
                ephemeral_secret: [0; 32],
            };
            rand::fill(&mut entropy.data_key);
            rand::fill(&mut entropy.ephemeral_secret);
            let start = self.sealing.rotate(now_ms, entropy).map_err(|e| e.to_string())?;
            let signer = self.key.signer();
            let (_, signed) = self
                .epoch_keys
                .sign_next(signer, now_ms, start.epoch, start.wrap)
                .map_err(|e| e.to_string())?;
            out.push(self.ddata(&signed));
        }
        let seq = self.data.next_seq();
        let (epoch, sealed) = self
            .sealing
            .seal(now_ms, SIM_STREAM, seq, plaintext)
            .map_err(|e| e.to_string())?;
        let signer = self.key.signer();
        let (_, signed) = self
            .data
            .sign_next(signer, now_ms, epoch, sealed)
            .map_err(|e| e.to_string())?;
        out.push(self.ddata(&signed));
        Ok(out)
    }

    fn ddata(&mut self, signed: &SignedRecord) -> Outgoing {
        Outgoing {
            topic: self.topic(MessageType::DData),
            payload: self.session.next(&signed.bytes),
        }
    }

    /// `DDEATH` then `NDEATH` (a clean disconnect does not fire the will).
    pub fn deaths(&mut self) -> [Outgoing; 2] {
        let ddeath = self.session.next(&[]);
        [
            Outgoing {
                topic: self.topic(MessageType::DDeath),
                payload: ddeath,
            },
            self.will(),
        ]
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Runs the simulation; calls `progress` about once a second with the counts so far.
pub async fn simulate(
    opts: SimulateOptions,
    progress: impl Fn(&SimulateReport),
) -> Result<SimulateReport, SimulateError> {
    let started = Instant::now();
    let shared = Arc::new(Shared::default());
    let mut tasks = tokio::task::JoinSet::new();
    for index in 0..opts.devices {
        let device = SimDevice::new(&opts, index)?;
        tasks.spawn(run_device(opts.clone(), index, device, shared.clone()));
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut first_error = None;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => { first_error.get_or_insert(e); }
                Some(Err(e)) => { first_error.get_or_insert(SimulateError::Device { device: 0, reason: e.to_string() }); }
                None => break,
            },
            _ = ticker.tick() => progress(&report(&opts, &shared, started)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(report(&opts, &shared, started)),
    }
}

fn report(opts: &SimulateOptions, shared: &Shared, started: Instant) -> SimulateReport {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    SimulateReport {
        devices: opts.devices as u64,
        records_published: get(&shared.records),
        epoch_keys_published: get(&shared.epoch_keys),
        births_published: get(&shared.births),
        deaths_published: get(&shared.deaths),
        dacks_received: get(&shared.dacks),
        records_acked: get(&shared.acked),
        rebirths_honoured: get(&shared.rebirths),
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// What the device's event loop tells its publisher.
enum Inbound {
    Rebirth,
    Acked { stream: String, seq: u64 },
}

async fn run_device(
    opts: SimulateOptions,
    index: usize,
    mut device: SimDevice,
    shared: Arc<Shared>,
) -> Result<(), SimulateError> {
    let fail = |reason: String| SimulateError::Device { device: index, reason };
    let client_id = format!("sim-{}-{index}", opts.seed);
    let mut options = MqttOptions::new(client_id, opts.host.clone(), opts.port);
    let will = device.will();
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(64 * 1024, 64 * 1024)
        .set_last_will(LastWill::new(will.topic, will.payload, QoS::AtLeastOnce, false));
    let (client, event_loop) = AsyncClient::new(options, CLIENT_QUEUE);
    let (inbound_tx, mut inbound) = tokio::sync::mpsc::channel(CLIENT_QUEUE);
    let (connected_tx, connected) = tokio::sync::oneshot::channel();
    let poller = tokio::spawn(poll_device(event_loop, inbound_tx, connected_tx));
    let broker = format!("{}:{}", opts.host, opts.port);
    match connected.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(fail(format!("cannot connect to MQTT broker {broker}: {e}"))),
        Err(_) => return Err(fail(format!("cannot connect to MQTT broker {broker}"))),
    }
    let cmd = Topic::node(&opts.group, MessageType::NCmd, &device.edge_node)?.to_string();
    let dack = Topic::device(
        &opts.group,
        MessageType::DAck,
        &device.edge_node,
        &device_segment(&device.id),
    )?;
    let subs = [cmd, dack.to_string()].map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
    client.subscribe_many(subs).await.map_err(|e| fail(e.to_string()))?;
    publish_all(&client, device.births()).await.map_err(&fail)?;
    shared.births.fetch_add(2, Ordering::Relaxed);
    let mut data_acked = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / opts.records_per_s));
    for k in 0..opts.records_per_device {
        ticker.tick().await;
        while let Ok(msg) = inbound.try_recv() {
            handle_inbound(msg, &client, &mut device, &shared, &mut data_acked)
                .await
                .map_err(&fail)?;
        }
        let plaintext = format!("{{\"device\":{index},\"k\":{k},\"temp_mc\":{}}}", 20_000 + (k % 500));
        let out = device.data(now_ms(), plaintext.as_bytes()).map_err(&fail)?;
        shared.epoch_keys.fetch_add(out.len() as u64 - 1, Ordering::Relaxed);
        publish_all(&client, out).await.map_err(&fail)?;
        shared.records.fetch_add(1, Ordering::Relaxed);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(opts.ack_wait_ms);
    while data_acked < opts.records_per_device {
        match tokio::time::timeout_at(deadline, inbound.recv()).await {
            Ok(Some(msg)) => {
                handle_inbound(msg, &client, &mut device, &shared, &mut data_acked)
                    .await
                    .map_err(&fail)?;
            }
            _ => break,
        }
    }
    publish_all(&client, device.deaths()).await.map_err(&fail)?;
    shared.deaths.fetch_add(2, Ordering::Relaxed);
    let _ = client.disconnect().await;
    let _ = poller.await;
    Ok(())
}

async fn handle_inbound(
    msg: Inbound,
    client: &AsyncClient,
    device: &mut SimDevice,
    shared: &Shared,
    data_acked: &mut u64,
) -> Result<(), String> {
    match msg {
        Inbound::Rebirth => {
            shared.rebirths.fetch_add(1, Ordering::Relaxed);
            publish_all(client, device.births()).await?;
            shared.births.fetch_add(2, Ordering::Relaxed);
        }
        Inbound::Acked { stream, seq } => {
            shared.dacks.fetch_add(1, Ordering::Relaxed);
            if stream == SIM_STREAM && seq > *data_acked {
                shared.acked.fetch_add(seq - *data_acked, Ordering::Relaxed);
                *data_acked = seq;
            }
        }
    }
    Ok(())
}

async fn publish_all(client: &AsyncClient, out: impl IntoIterator<Item = Outgoing>) -> Result<(), String> {
    for o in out {
        client
            .publish(o.topic, QoS::AtLeastOnce, false, o.payload)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Polls a device's connection until it closes; forwards rebirth commands and DACKs.
async fn poll_device(
    mut event_loop: rumqttc::EventLoop,
    inbound: tokio::sync::mpsc::Sender<Inbound>,
    connected: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let mut connected = Some(connected);
    loop {
        let event = event_loop.poll().await;
        if let Some(tx) = connected.take_if(|_| matches!(event, Ok(Event::Incoming(Packet::ConnAck(_))) | Err(_))) {
            let _ = tx.send(event.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        }
        match event {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(topic) = Topic::parse(&p.topic) else { continue };
                let msg = match topic.message_type {
                    MessageType::NCmd | MessageType::DCmd if p.payload.as_ref() == REBIRTH_COMMAND => Inbound::Rebirth,
                    MessageType::DAck => match DurableAck::decode(&p.payload) {
                        Ok(ack) => Inbound::Acked {
                            stream: ack.stream,
                            seq: ack.seq,
                        },
                        Err(_) => continue,
                    },
                    _ => continue,
                };
                let _ = inbound.try_send(msg);
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// `chipledger fleet ...`
pub fn run(args: FleetArgs) -> anyhow::Result<()> {
    let FleetCommand::Simulate(args) = args.command;
    let opts = args.options()?;
    let json = args.json;
    let total = opts.devices as u64 * opts.records_per_device;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(simulate(opts, |r| {
        if !json {
            eprint!(
                "\r{} devices: {}/{total} records published, {} acked ({:.1} s)   ",
                r.devices,
                r.records_published,
                r.records_acked,
                r.elapsed_ms as f64 / 1000.0
            );
        }
    }))?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!();
        println!(
            "published {} records ({} epoch keys) from {} devices in {:.1} s; {} acked durable; {} rebirths",
            report.records_published,
            report.epoch_keys_published,
            report.devices,
            report.elapsed_ms as f64 / 1000.0,
            report.records_acked,
            report.rebirths_honoured
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use chipledger_device::record::verify_record;
    use chipledger_device::seal::{EpochKey, open_payload, unwrap_epoch_key};
    use chipledger_gateway::mqtt::{
        Durable, EmbeddedBroker, RecordOrigin, RecordSink, SinkError, SubscriberConfig, free_local_addr,
        spawn_subscriber,
    };
    use chipledger_types::data_tx::RequestRebirth;

    use super::*;

    /// The owner's view: verifies each record, unwraps epoch keys, opens every payload.
    struct OwnerSink {
        keys: HashMap<DeviceId, DevicePublicKey>,
        owner: p256::SecretKey,
        epoch_keys: Mutex<HashMap<(DeviceId, u32), EpochKey>>,
        plaintexts: Mutex<Vec<String>>,
    }

    impl RecordSink for OwnerSink {
        fn accept(&self, origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError> {
            let reject = |e: String| SinkError::Rejected(e);
            let key = self.keys.get(&origin.device).ok_or(reject("unknown device".into()))?;
            let r = verify_record(record, key).map_err(|e| reject(e.to_string()))?;
            if r.stream == STREAM_EPOCH_KEYS {
                let grant = unwrap_epoch_key(&r.payload, &self.owner).map_err(|e| reject(e.to_string()))?;
                assert_eq!(grant.device, origin.device);
                self.epoch_keys
                    .lock()
                    .unwrap()
                    .insert((grant.device, grant.epoch), grant.key);
            } else {
                let keys = self.epoch_keys.lock().unwrap();
                let epoch_key = keys
                    .get(&(r.device, r.epoch))
                    .ok_or(reject("epoch key not seen".into()))?;
                let plain = open_payload(&r, epoch_key).map_err(|e| reject(e.to_string()))?;
                self.plaintexts.lock().unwrap().push(String::from_utf8(plain).unwrap());
            }
            Ok(Durable {
                stream: r.stream,
                seq: r.seq,
            })
        }

        fn rebirth_requested(&self, event: RequestRebirth) {
            panic!("no gap expected: {event:?}");
        }
    }

    #[test]
    fn simulated_fleet_records_verify_and_open_for_the_owner() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let broker = EmbeddedBroker::start(free_local_addr().unwrap()).unwrap();
        let args = SimulateArgs {
            devices: 3,
            rate: 50.0,
            broker: broker.addr().to_string(),
            seconds: 0.2,
            group: "sim".into(),
            alg: "p256".into(),
            seed: 7,
            owner: None,
            ack_wait_ms: ACK_WAIT_MS,
            json: true,
        };
        let opts = args.options().unwrap();
        let keys = (0..3).map(|i| {
            (
                SimKey::derive(opts.alg, 7, i).device_id(),
                SimKey::derive(opts.alg, 7, i).public(),
            )
        });
        let sink = Arc::new(OwnerSink {
            keys: keys.collect(),
            owner: sim_owner_secret(7),
            epoch_keys: Mutex::default(),
            plaintexts: Mutex::default(),
        });
        let report = runtime.block_on(async {
            let config = SubscriberConfig::new("127.0.0.1", broker.addr().port(), "gw-sim");
            let subscriber = spawn_subscriber(config, sink.clone()).await.unwrap();
            let report = simulate(opts, |_| {}).await.unwrap();
            assert_eq!(subscriber.stats().accepted, 33, "30 data + 3 epoch-key records");
            subscriber.shutdown().await;
            report
        });
        assert_eq!(report.records_published, 30);
        assert_eq!(report.records_acked, 30, "every record acked durable");
        assert_eq!(
            (
                report.epoch_keys_published,
                report.births_published,
                report.deaths_published
            ),
            (3, 6, 6)
        );
        let plaintexts = sink.plaintexts.lock().unwrap();
        assert_eq!(plaintexts.len(), 30);
        assert!(
            plaintexts
                .iter()
                .any(|p| p == "{\"device\":2,\"k\":9,\"temp_mc\":20009}")
        );
    }

    #[test]
    fn flags_are_checked() {
        let args = |devices, rate, broker: &str| SimulateArgs {
            devices,
            rate,
            broker: broker.into(),
            seconds: 1.0,
            group: "sim".into(),
            alg: "ed25519".into(),
            seed: 1,
            owner: None,
            ack_wait_ms: 0,
            json: false,
        };
        assert!(matches!(args(0, 1.0, "h:1").options(), Err(SimulateError::Devices(0))));
        assert!(matches!(args(1, 0.0, "h:1").options(), Err(SimulateError::Rate(_))));
        assert!(matches!(args(1, 1.0, "h").options(), Err(SimulateError::Broker(_))));
        let ok = args(2, 2.5, "localhost:1883").options().unwrap();
        assert_eq!(
            (ok.port, ok.records_per_device, ok.alg),
            (1883, 3, DeviceKeyAlg::Ed25519)
        );
    }
}
