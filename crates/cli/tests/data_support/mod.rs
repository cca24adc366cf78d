//! Shared by the data-gateway process tests (`gateway_anomalies.rs`, `gateway_crash.rs`): a
//! four-validator network made ready for data (`data_net`), hand-driven devices that sign real
//! record chains with the keys `fleet simulate` uses (so `data_net` registers them), and a raw
//! MQTT connection that publishes whatever a test crafts and collects the gateway's `DACK`s.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::data_net::{DataNet, GatewayProcess, OPERATOR, prepare_data_network};
use chipledger_cli::net::LocalNet;
use chipledger_cli::simulate::SimKey;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::record::{RecordChainWriter, SignedRecord};
use chipledger_device::seal::{EpochKey, iv_for, payload_aad, seal_encrypt0};
use chipledger_gateway::topics::{DurableAck, EdgeSequencer, MessageType, NAMESPACE, Topic, device_segment};
use chipledger_node::api_data::{DeviceDataBody, GatewayBody};
use chipledger_types::device_tx::DeviceId;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};

/// The data stream the test devices write.
pub const STREAM: &str = "telemetry";
/// Encryption epoch of every test record.
const EPOCH: u32 = 1;
/// Largest MQTT packet the test client sends or takes (an oversized frame must get through).
const CLIENT_PACKET_BYTES: usize = 64 * 1024;
/// Requests the test client may queue (a burst publishes a few hundred at once).
const CLIENT_QUEUE: usize = 4096;
/// How long a test waits for the network, the gateway or the ledger.
pub const WAIT: Duration = Duration::from_secs(60);

/// A four-validator network in a scratch directory, with the operator organisation and a
/// manufacturer CA; stopped and removed when dropped.
pub struct TestNet {
    pub net: LocalNet,
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub client: Client,
    pub data: DataNet,
}

impl TestNet {
    pub fn start(name: &str, base_port: u16) -> Result<TestNet> {
        TestNet::start_with_env(name, base_port, &[])
    }

    /// [`TestNet::start`] with extra environment variables for the validator processes.
    pub fn start_with_env(name: &str, base_port: u16, env: &[(&str, &str)]) -> Result<TestNet> {
        let dir = std::env::temp_dir().join(format!("chipledger-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
        let mut net = LocalNet::prepare(&dir, &exe, base_port, "chipledger-test")?;
        net.env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Err(e) = net.start_all_ready(WAIT) {
            net.stop_all();
            return Err(e);
        }
        let setup = Client::new(&net.apis[0]).and_then(|c| Ok((prepare_data_network(&net, &c)?, c)));
        match setup {
            Ok((data, client)) => Ok(TestNet {
                net,
                dir,
                exe,
                client,
                data,
            }),
            Err(e) => {
                net.stop_all();
                Err(e)
            }
        }
    }

    /// `chipledger gateway` arguments: embedded broker on `listen`, store under the test dir.
    pub fn gateway_args(&self, name: &str, listen: SocketAddr, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = ["--name", name, "--org", OPERATOR, "--key"].map(String::from).into();
        args.push(self.data.operator_key_path.display().to_string());
        args.extend([
            "--api".into(),
            self.net.apis[0].clone(),
            "--listen".into(),
            listen.to_string(),
        ]);
        args.push("--data".into());
        args.push(self.dir.join(format!("{name}-data")).display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn start_gateway(&self, name: &str, listen: SocketAddr, extra: &[&str]) -> Result<GatewayProcess> {
        GatewayProcess::start(&self.exe, &self.gateway_args(name, listen, extra), None)
    }

    /// The device's chains and anomalies (`None` when the ledger has nothing on it).
    pub fn device(&self, id: &DeviceId) -> Result<Option<DeviceDataBody>> {
        match self
            .client
            .get_json::<DeviceDataBody>(&format!("/v1/data/devices/{id}"))
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if format!("{e:#}").contains("HTTP 404") => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn gateway(&self, name: &str) -> Result<GatewayBody> {
        self.client.get_json(&format!("/v1/data/gateways/{name}"))
    }

    /// The last `lines` lines of validator `i`'s log (for a failing test's message).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let path = self.net.node_dir(i).join("node.log");
        match std::fs::read_to_string(&path) {
            Ok(log) => {
                let all: Vec<&str> = log.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(cannot read {}: {e})", path.display()),
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.net.stop_all();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Calls `f` every 100 ms until it returns `Some`, for at most `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A device driven by the test: simulated device `index` of `seed` (so `register_sim_devices`
/// registers its key), its edge node's session and its `telemetry` chain.
pub struct TestDevice {
    pub id: DeviceId,
    key: SimKey,
    pub edge_node: String,
    group: String,
    pub session: EdgeSequencer,
    bd_seq: u8,
    writer: RecordChainWriter,
    data_key: EpochKey,
}

impl TestDevice {
    pub fn new(seed: u64, index: u64, group: &str) -> Result<TestDevice> {
        let key = SimKey::derive(DeviceKeyAlg::P256, seed, index);
        let id = key.device_id();
        Ok(TestDevice {
            id,
            key,
            edge_node: format!("edge-{index}"),
            group: group.into(),
            session: EdgeSequencer::new(0),
            bd_seq: 0,
            writer: RecordChainWriter::new(id, STREAM)?,
            data_key: EpochKey::from_bytes([index as u8; 16]),
        })
    }

    /// The next record of the chain, sealed and signed (advances the chain).
    pub fn sign(&mut self, text: &str) -> Result<SignedRecord> {
        let mut writer = self.writer.clone();
        let signed = self.sign_with(&mut writer, text)?;
        self.writer = writer;
        Ok(signed)
    }

    /// Another record at the seq [`TestDevice::sign`] would use next (a fork; the chain does
    /// not advance).
    pub fn sign_conflicting(&self, text: &str) -> Result<SignedRecord> {
        self.sign_with(&mut self.writer.clone(), text)
    }

    fn sign_with(&self, writer: &mut RecordChainWriter, text: &str) -> Result<SignedRecord> {
        let seq = writer.next_seq();
        let aad = payload_aad(self.id, STREAM, seq, EPOCH);
        let sealed = seal_encrypt0(&self.data_key, &iv_for(seq), text.as_bytes(), &aad)
            .map_err(|e| anyhow::anyhow!("sealing: {e}"))?;
        let (_, signed) = writer.sign_next(self.key.signer(), 1_700_000_000_000 + seq, EPOCH, sealed)?;
        Ok(signed)
    }

    pub fn topic(&self, t: MessageType) -> String {
        let node = format!("{NAMESPACE}/{}/{t}/{}", self.group, self.edge_node);
        match t.has_device() {
            true => format!("{node}/{}", device_segment(&self.id)),
            false => node,
        }
    }

    /// A new session: `NBIRTH` and `DBIRTH` (after a reconnect, as a device does).
    pub fn births(&mut self) -> Vec<(String, Vec<u8>)> {
        self.bd_seq = self.bd_seq.wrapping_add(1);
        self.session = EdgeSequencer::new(self.bd_seq);
        let nbirth = self.session.birth(&[]);
        let dbirth = self.session.next(self.key.public().raw().as_bytes());
        vec![
            (self.topic(MessageType::NBirth), nbirth),
            (self.topic(MessageType::DBirth), dbirth),
        ]
    }

    /// `DDATA` carrying `body` (a record, or whatever the test wants the gateway to see).
    pub fn ddata(&mut self, body: &[u8]) -> (String, Vec<u8>) {
        (self.topic(MessageType::DData), self.session.next(body))
    }

    /// The `DACK` topic the gateway answers on.
    pub fn dack_topic(&self) -> Result<String> {
        let t = Topic::device(
            &self.group,
            MessageType::DAck,
            &self.edge_node,
            &device_segment(&self.id),
        )?;
        Ok(t.to_string())
    }
}

/// One `DACK`: the gateway holds the device's `stream` durably up to `seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dack {
    pub device: DeviceId,
    pub stream: String,
    pub seq: u64,
}

/// A raw MQTT connection (QoS 1) to the gateway's broker, subscribed to some devices' `DACK`s.
pub struct Mqtt {
    client: AsyncClient,
    runtime: tokio::runtime::Handle,
    pub dacks: Receiver<Dack>,
}

impl Mqtt {
    /// Connects as `client_id` and returns once the subscriptions to `dack_topics`
    /// ([`TestDevice::dack_topic`]) are confirmed.
    pub fn connect(
        runtime: &tokio::runtime::Runtime,
        broker: SocketAddr,
        client_id: &str,
        dack_topics: &[String],
    ) -> Result<Mqtt> {
        let mut options = MqttOptions::new(client_id, broker.ip().to_string(), broker.port());
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(CLIENT_PACKET_BYTES, CLIENT_PACKET_BYTES);
        let (client, event_loop) = AsyncClient::new(options, CLIENT_QUEUE);
        let filters = dack_topics
            .iter()
            .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce))
            .collect();
        let (dack_tx, dacks) = channel();
        let (ready_tx, ready) = channel();
        runtime.spawn(poll_client(event_loop, client.clone(), filters, dack_tx, ready_tx));
        let confirmed = ready.recv_timeout(WAIT).context("MQTT connection")?;
        confirmed.map_err(|e| anyhow::anyhow!("MQTT connection to {broker}: {e}"))?;
        Ok(Mqtt {
            client,
            runtime: runtime.handle().clone(),
            dacks,
        })
    }

    /// Publishes (QoS 1) in order.
    pub fn publish(&self, messages: impl IntoIterator<Item = (String, Vec<u8>)>) -> Result<()> {
        for (topic, payload) in messages {
            self.runtime
                .block_on(self.client.publish(topic, QoS::AtLeastOnce, false, payload))?;
        }
        Ok(())
    }

    /// Stops the connection (without waiting for anything in flight).
    pub fn close(self) {
        let _ = self.runtime.block_on(self.client.disconnect());
    }
}

/// Drives the connection: subscribes on connect, reports readiness, forwards `DACK`s; ends
/// when the connection does.
async fn poll_client(
    mut event_loop: rumqttc::EventLoop,
    client: AsyncClient,
    filters: Vec<SubscribeFilter>,
    dacks: Sender<Dack>,
    ready: Sender<std::result::Result<(), String>>,
) {
    loop {
        match event_loop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                if let Err(e) = client.subscribe_many(filters.clone()).await {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = ready.send(Ok(()));
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let Ok(topic) = Topic::parse(&p.topic) else { continue };
                let (Ok(device), Ok(ack)) = (topic.device_id(), DurableAck::decode(&p.payload)) else {
                    continue;
                };
                let _ = dacks.send(Dack {
                    device,
                    stream: ack.stream,
                    seq: ack.seq,
                });
            }
            Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        }
    }
}

/// Every `DACK` a test received, in arrival order (across reconnections).
#[derive(Debug, Default)]
pub struct DackLog(pub Vec<Dack>);

impl DackLog {
    /// Takes what arrived without waiting.
    pub fn drain(&mut self, mqtt: &Mqtt) {
        self.0.extend(mqtt.dacks.try_iter());
    }

    /// Waits until a `DACK` of `device` for `seq` arrived (now or earlier).
    pub fn wait(&mut self, mqtt: &Mqtt, device: DeviceId, seq: u64) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while !self.0.iter().any(|d| d.device == device && d.seq == seq) {
            let left = deadline.saturating_duration_since(Instant::now());
            match mqtt.dacks.recv_timeout(left) {
                Ok(d) => self.0.push(d),
                Err(_) => bail!(
                    "no DACK {seq} for {device} within {WAIT:?}; got {:?}",
                    self.seqs(device)
                ),
            }
        }
        Ok(())
    }

    /// The seqs `device`'s `DACK`s carried, in arrival order.
    pub fn seqs(&self, device: DeviceId) -> Vec<u64> {
        self.0.iter().filter(|d| d.device == device).map(|d| d.seq).collect()
    }

    /// The highest seq acknowledged for `device` (0 = none).
    pub fn highest(&self, device: DeviceId) -> u64 {
        self.seqs(device).into_iter().max().unwrap_or(0)
    }
}
