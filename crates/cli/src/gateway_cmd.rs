//! `chipledger gateway`: runs the data-at-source gateway (issue 5) against a validator API.
//!
//! Records arrive over MQTT (an embedded rumqttd broker by default, or any MQTT 3.1.1 broker
//! with `--broker`), are verified against the device registry ([`HttpDirectory`]), stored
//! durably in a redb file under `--data` and acknowledged; a batch loop cuts `CommitBatch`
//! payloads and submits them signed with the operator organisation's key ([`ClientSubmitter`]),
//! together with queued `ReportChainAnomaly` and `RequestRebirth` transactions.
//!
//! **Trust levels.** The node API exposes each device's DeviceID certificate (verified here
//! against its manufacturer CA from `/v1/cas`) but not the Alias key of the attested firmware,
//! so records verify at trust level 1 (registered device key) at most; level 2 needs the API to
//! serve the attested Alias key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_device::cert::verify_deviceid;
use chipledger_device::key::DevicePublicKey;
use chipledger_gateway::mqtt::{
    Durable, EmbeddedBroker, RecordOrigin, RecordSink, SinkError, SubscriberConfig, spawn_subscriber,
};
use chipledger_gateway::{
    DeviceDirectory, DeviceEntry, DeviceStatus, Gateway, GatewayConfig, IngestError, SubmitError, Submitter, TxStatus,
};
use chipledger_node::api::ErrorBody;
use chipledger_node::api_data::{BatchBody, GatewayBody};
use chipledger_node::config::KeyFile;
use chipledger_types::data_tx::{CommitBatch, RegisterGateway, RequestRebirth};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::SigningKey;
use chipledger_types::merkle::Hash;
use chipledger_types::record::{Record, parse_sign1};
use chipledger_types::tx::{Payload, TxHash};
use clap::Args;

use crate::client::{Client, DEFAULT_API};
use crate::txcmd::{build, wait_final};

/// How long a device's registry entry is trusted before it is fetched again.
pub const DIRECTORY_TTL: Duration = Duration::from_secs(10);
/// Blocks ahead a gateway transaction stays valid.
pub const TX_EXPIRY_BLOCKS: u64 = 100;
/// How long registration waits for its transaction to be final.
pub const REGISTER_WAIT: Duration = Duration::from_secs(60);
/// Pause of the batch loop between passes.
pub const BATCH_TICK: Duration = Duration::from_millis(50);
/// Interval of the progress lines.
pub const STATS_EVERY: Duration = Duration::from_secs(5);
/// Pause after a failed ledger pass before the next one.
pub const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Error code of a batch the ledger already holds.
const BATCH_REPLAYED: &str = "batch_replayed";

#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Gateway name (registered with `RegisterGateway` on first start).
    #[arg(long)]
    pub name: String,
    /// Operator organisation that owns the gateway.
    #[arg(long)]
    pub org: String,
    /// The organisation's key file.
    #[arg(long, value_name = "KEYFILE")]
    pub key: PathBuf,
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Subscribe to this MQTT broker (HOST:PORT) instead of running the embedded one.
    #[arg(long, conflicts_with = "listen")]
    pub broker: Option<String>,
    /// Where the embedded broker listens.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: SocketAddr,
    /// Directory of the durable record store.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Cut a batch at this many records.
    #[arg(long)]
    pub batch_records: Option<usize>,
    /// Cut a non-empty batch once its oldest record waited this many milliseconds.
    #[arg(long)]
    pub batch_ms: Option<u64>,
    /// Serve only this MQTT group (default: every group).
    #[arg(long)]
    pub group: Option<String>,
}

/// Prints a progress line; a closed stdout (the reader went away) does not stop the gateway.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

// ---- device directory ---------------------------------------------------------------------------

/// Why the registry could not be read (the record is left unacknowledged and retried).
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("device registry unreachable: {0}")]
    Transport(String),
    #[error("device {device}: {reason}")]
    BadRecord { device: String, reason: String },
}

/// A [`DeviceDirectory`] backed by the node API, with a small time-bounded cache. Call
/// [`HttpDirectory::refresh`] before ingesting (it may fail); `lookup` reads the cache only.
pub struct HttpDirectory {
    http: reqwest::blocking::Client,
    base: String,
    devices: Mutex<HashMap<DeviceId, (DeviceEntry, Instant)>>,
    /// CA id (hex) → CA certificate DER.
    cas: Mutex<HashMap<String, Vec<u8>>>,
}

#[derive(serde::Deserialize)]
struct DeviceView {
    ca: String,
    status: String,
    deviceid_cert: String,
}

#[derive(serde::Deserialize)]
struct CaView {
    id: String,
    cert: String,
}

impl HttpDirectory {
    pub fn new(base: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base: base.trim_end_matches('/').to_string(),
            devices: Mutex::new(HashMap::new()),
            cas: Mutex::new(HashMap::new()),
        })
    }

    /// Makes sure the cache holds a fresh entry for `device`.
    pub fn refresh(&self, device: &DeviceId) -> Result<(), DirectoryError> {
        let fresh = self
            .devices
            .lock()
            .map_err(|_| DirectoryError::Transport("cache lock poisoned".into()))?
            .get(device)
            .is_some_and(|(_, at)| at.elapsed() < DIRECTORY_TTL);
        if fresh {
            return Ok(());
        }
        let entry = self.fetch(device)?;
        if let Ok(mut cache) = self.devices.lock() {
            cache.insert(*device, (entry, Instant::now()));
        }
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Option<String>, DirectoryError> {
        let url = format!("{}{path}", self.base);
        let t = |e: reqwest::Error| DirectoryError::Transport(format!("{url}: {e}"));
        let resp = self.http.get(&url).send().map_err(t)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp.text().map_err(t)?;
        if !status.is_success() {
            return Err(DirectoryError::Transport(format!(
                "{url} answered HTTP {status}: {text}"
            )));
        }
        Ok(Some(text))
    }

    fn fetch(&self, device: &DeviceId) -> Result<DeviceEntry, DirectoryError> {
        let id = device.to_string();
        let bad = |reason: String| DirectoryError::BadRecord {
            device: id.clone(),
            reason,
        };
        let Some(text) = self.get(&format!("/v1/devices/{id}"))? else {
            return Ok(DeviceEntry::UNKNOWN);
        };
        let view: DeviceView = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let status = match view.status.as_str() {
            "active" => DeviceStatus::Registered,
            _ => DeviceStatus::Revoked,
        };
        let cert = hex::decode(&view.deviceid_cert).map_err(|e| bad(format!("certificate hex: {e}")))?;
        let ca = self.ca_cert(&view.ca)?;
        let key: DevicePublicKey =
            verify_deviceid(&ca, &cert, None).map_err(|e| bad(format!("DeviceID certificate: {e}")))?;
        Ok(DeviceEntry {
            status,
            device_id_key: Some(key),
            attested_alias: None,
            self_reported: None,
        })
    }

    fn ca_cert(&self, ca: &str) -> Result<Vec<u8>, DirectoryError> {
        let poisoned = || DirectoryError::Transport("CA cache lock poisoned".into());
        if let Some(der) = self.cas.lock().map_err(|_| poisoned())?.get(ca) {
            return Ok(der.clone());
        }
        let text = self.get("/v1/cas")?.unwrap_or_else(|| "[]".into());
        let list: Vec<CaView> = serde_json::from_str(&text)
            .map_err(|e| DirectoryError::Transport(format!("unexpected /v1/cas answer: {e}")))?;
        let mut cache = self.cas.lock().map_err(|_| poisoned())?;
        for c in list {
            if let Ok(der) = hex::decode(&c.cert) {
                cache.insert(c.id, der);
            }
        }
        cache.get(ca).cloned().ok_or_else(|| DirectoryError::BadRecord {
            device: String::new(),
            reason: format!("unknown manufacturer CA {ca}"),
        })
    }
}

impl DeviceDirectory for HttpDirectory {
    fn lookup(&self, device: &DeviceId) -> DeviceEntry {
        self.devices
            .lock()
            .ok()
            .and_then(|c| c.get(device).map(|(e, _)| e.clone()))
            .unwrap_or(DeviceEntry::UNKNOWN)
    }
}

// ---- record sink ----------------------------------------------------------------------------------

/// The MQTT transport's view of the gateway: accept = verify + ingest; rebirth requests are
/// queued for the ledger loop.
pub struct GatewaySink {
    pub gateway: Arc<Mutex<Gateway>>,
    pub directory: Arc<HttpDirectory>,
    pub rebirths: Mutex<Sender<RequestRebirth>>,
}

impl RecordSink for GatewaySink {
    fn accept(&self, _origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError> {
        let reject = |e: &dyn std::fmt::Display| SinkError::Rejected(e.to_string());
        // The record's own device (a relayed record names another device than its topic).
        let parts = parse_sign1(record).map_err(|e| reject(&e))?;
        let claimed = Record::decode_body(parts.body).map_err(|e| reject(&e))?;
        self.directory.refresh(&claimed.device).map_err(|e| match e {
            DirectoryError::Transport(_) => SinkError::Unavailable(e.to_string()),
            DirectoryError::BadRecord { .. } => SinkError::Rejected(e.to_string()),
        })?;
        let mut gateway = self
            .gateway
            .lock()
            .map_err(|_| SinkError::Unavailable("gateway lock poisoned".into()))?;
        match gateway.ingest(record, self.directory.as_ref()) {
            Ok(a) => Ok(Durable {
                stream: a.stream,
                seq: a.seq,
            }),
            Err(e @ IngestError::Store(_)) => Err(SinkError::Unavailable(e.to_string())),
            Err(e) => Err(reject(&e)),
        }
    }

    fn rebirth_requested(&self, event: RequestRebirth) {
        if let Ok(tx) = self.rebirths.lock() {
            let _ = tx.send(event);
        }
    }
}

// ---- submitter -------------------------------------------------------------------------------------

/// Signs the gateway's ledger payloads with the operator organisation's key and submits them
/// through the API. Sequence numbers are assigned locally (several may be in flight) and
/// re-read from the ledger after any refusal.
pub struct ClientSubmitter {
    client: Client,
    org: String,
    key: SigningKey,
    next_seq: Option<u64>,
}

impl ClientSubmitter {
    pub fn new(client: Client, org: &str, key: SigningKey) -> Self {
        Self {
            client,
            org: org.into(),
            key,
            next_seq: None,
        }
    }

    /// Signs and submits one payload; a refusal comes back typed.
    pub fn send(&mut self, payload: Payload) -> Result<TxHash, SubmitError> {
        let t = |e: anyhow::Error| SubmitError::Transport(format!("{e:#}"));
        let seq = match self.next_seq {
            Some(s) => s,
            None => self.client.org(&self.org).map_err(t)?.last_seq + 1,
        };
        let tx = build(&self.client, &self.org, &self.key, Some(seq), TX_EXPIRY_BLOCKS, payload).map_err(t)?;
        match self.client.try_submit(&tx).map_err(t)? {
            Ok(sub) => {
                self.next_seq = Some(seq + 1);
                parse_tx_hash(&sub.hash)
            }
            Err(ErrorBody { error, message }) => {
                self.next_seq = None;
                Err(refusal(&error, &message))
            }
        }
    }
}

fn refusal(code: &str, message: &str) -> SubmitError {
    if code == BATCH_REPLAYED || message.contains(BATCH_REPLAYED) {
        SubmitError::BatchReplayed
    } else {
        SubmitError::Rejected(format!("{code}: {message}"))
    }
}

fn parse_tx_hash(s: &str) -> Result<TxHash, SubmitError> {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(TxHash)
        .ok_or_else(|| SubmitError::Transport(format!("node answered a malformed tx hash '{s}'")))
}

fn parse_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok().and_then(|b| b.try_into().ok())
}

impl Submitter for ClientSubmitter {
    fn submit(&mut self, batch: &CommitBatch) -> Result<TxHash, SubmitError> {
        self.send(Payload::CommitBatch(batch.clone()))
    }

    fn status(&mut self, tx: &TxHash) -> Result<TxStatus, SubmitError> {
        let s = self
            .client
            .tx(&tx.to_string())
            .map_err(|e| SubmitError::Transport(format!("{e:#}")))?;
        Ok(match s.status.as_str() {
            "final" => TxStatus::Final,
            "pending" => TxStatus::Pending,
            "rejected" => {
                // Resubmitting re-signs with a fresh seq; a replayed batch then comes back as
                // `batch_replayed`, which compares the roots.
                self.next_seq = None;
                tracing::warn!(tx = %tx, reason = s.reason.as_deref().unwrap_or(""), "transaction rejected; resubmitting");
                TxStatus::Unknown
            }
            _ => {
                self.next_seq = None;
                TxStatus::Unknown
            }
        })
    }

    fn committed_root(&mut self, gateway: &str, batch_seq: u64) -> Result<Option<Hash>, SubmitError> {
        let path = format!("/v1/data/batches/{gateway}/{batch_seq}");
        match self.client.get_json::<BatchBody>(&path) {
            Ok(b) => Ok(parse_hash(&b.root)),
            Err(e) if format!("{e:#}").contains("HTTP 404") => Ok(None),
            Err(e) => Err(SubmitError::Transport(format!("{e:#}"))),
        }
    }
}

// ---- the command ----------------------------------------------------------------------------------

/// Registers `name` for `org` unless the ledger already has it (then it must be `org`'s).
fn ensure_registered(client: &Client, org: &str, key: &SigningKey, name: &str) -> Result<()> {
    match client.get_json::<GatewayBody>(&format!("/v1/data/gateways/{name}")) {
        Ok(g) if g.operator == org => {
            say!("gateway {name} registered to {org} (last batch {})", g.last_batch);
            return Ok(());
        }
        Ok(g) => bail!("gateway name '{name}' belongs to organisation '{}'", g.operator),
        Err(e) if format!("{e:#}").contains("HTTP 404") => {}
        Err(e) => return Err(e),
    }
    let payload = Payload::RegisterGateway(RegisterGateway { name: name.into() });
    let tx = build(client, org, key, None, TX_EXPIRY_BLOCKS, payload)?;
    let sub = client.submit(&tx).context("registering the gateway")?;
    let s = wait_final(client, &sub.hash, REGISTER_WAIT)?;
    if s.status != "final" {
        bail!(
            "RegisterGateway {} was {}: {}",
            s.hash,
            s.status,
            s.reason.unwrap_or_default()
        );
    }
    say!("registered gateway {name} for {org} (tx {})", s.hash);
    Ok(())
}

pub fn run(a: GatewayArgs) -> Result<()> {
    let client = Client::new(&a.api)?;
    let key = KeyFile::read(&a.key)?;
    ensure_registered(&client, &a.org, &key, &a.name)?;
    std::fs::create_dir_all(&a.data).with_context(|| format!("creating {}", a.data.display()))?;
    let mut config = GatewayConfig::new(&a.name);
    if let Some(n) = a.batch_records {
        config.max_batch_records = n;
    }
    if let Some(ms) = a.batch_ms {
        config.max_batch_age = Duration::from_millis(ms);
    }
    let store = a.data.join("records.redb");
    let gateway = Arc::new(Mutex::new(Gateway::open(&store, config)?));
    let directory = Arc::new(HttpDirectory::new(&a.api)?);
    let (rebirth_tx, rebirth_rx) = channel();
    let sink = Arc::new(GatewaySink {
        gateway: gateway.clone(),
        directory,
        rebirths: Mutex::new(rebirth_tx),
    });
    let stopping = Arc::new(AtomicBool::new(false));
    let ledger = {
        let (gateway, stopping) = (gateway.clone(), stopping.clone());
        let submitter = ClientSubmitter::new(Client::new(&a.api)?, &a.org, key);
        std::thread::Builder::new()
            .name("gateway-ledger".into())
            .spawn(move || ledger_loop(&gateway, submitter, &rebirth_rx, &stopping))?
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let served = runtime.block_on(serve(&a, sink, &gateway));
    stopping.store(true, Ordering::SeqCst);
    let _ = ledger.join();
    served
}

/// Broker (or not), subscriber, progress lines; returns on Ctrl-C / SIGTERM.
async fn serve(a: &GatewayArgs, sink: Arc<GatewaySink>, gateway: &Arc<Mutex<Gateway>>) -> Result<()> {
    let (host, port) = match &a.broker {
        Some(b) => {
            let (h, p) = b.rsplit_once(':').context("--broker is HOST:PORT")?;
            (h.to_string(), p.parse::<u16>().context("--broker port")?)
        }
        None => {
            let broker = EmbeddedBroker::start(a.listen)?;
            say!("embedded MQTT broker listening on {}", broker.addr());
            (a.listen.ip().to_string(), a.listen.port())
        }
    };
    let mut config = SubscriberConfig::new(&host, port, &a.name);
    config.group = a.group.clone();
    let handle = spawn_subscriber(config, sink).await?;
    say!("gateway {} subscribed to {host}:{port}; Ctrl-C stops", a.name);
    let mut ticker = tokio::time::interval(STATS_EVERY);
    let shutdown = chipledger_node::run::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                let s = handle.stats();
                let pending = gateway.lock().map(|g| g.pending_records()).unwrap_or(0);
                say!(
                    "records: {} accepted, {} rejected, {} unavailable, {} malformed; {} pending; {} rebirths",
                    s.accepted, s.rejected, s.unavailable, s.malformed, pending, s.rebirths_requested
                );
            }
        }
    }
    say!("stopping gateway {}", a.name);
    handle.shutdown().await;
    Ok(())
}

/// Cuts batches when due, submits them, reports anomalies and rebirths, until `stopping`; then
/// one last pass (pending records stay durable for the next start).
fn ledger_loop(
    gateway: &Mutex<Gateway>,
    mut submitter: ClientSubmitter,
    rebirths: &Receiver<RequestRebirth>,
    stopping: &AtomicBool,
) {
    let mut committed = 0usize;
    while !stopping.load(Ordering::SeqCst) {
        match ledger_pass(gateway, &mut submitter, rebirths) {
            Ok(n) => {
                if n > 0 {
                    committed += n;
                    say!("batches committed: {committed}");
                }
                std::thread::sleep(BATCH_TICK);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "ledger pass failed; retrying");
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
}

/// One pass; returns how many batches became committed.
fn ledger_pass(
    gateway: &Mutex<Gateway>,
    submitter: &mut ClientSubmitter,
    rebirths: &Receiver<RequestRebirth>,
) -> Result<usize> {
    let mut g = gateway.lock().map_err(|_| anyhow::anyhow!("gateway lock poisoned"))?;
    while g.batch_due(Instant::now()) && g.cut_batch()?.is_some() {}
    let report = g.submit_batches(submitter)?;
    for (index, anomaly) in g.queued_anomalies()? {
        match submitter.send(Payload::ReportChainAnomaly(anomaly)) {
            Ok(_) => g.anomaly_sent(index)?,
            Err(e @ (SubmitError::Rejected(_) | SubmitError::BatchReplayed)) => {
                tracing::warn!(error = %e, "anomaly report refused by the ledger; dropped");
                g.anomaly_sent(index)?
            }
            Err(e) => return Err(e.into()),
        }
    }
    drop(g);
    while let Ok(r) = rebirths.try_recv() {
        if let Err(e) = submitter.send(Payload::RequestRebirth(r)) {
            tracing::warn!(error = %e, "rebirth request not recorded on the ledger");
        }
    }
    Ok(report.committed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_typed() {
        let cases = [
            (
                "batch_replayed",
                "gateway gw batch 3 exists",
                SubmitError::BatchReplayed,
            ),
            ("invalid", "batch_replayed: seq 3", SubmitError::BatchReplayed),
            (
                "replay",
                "seq 4 <= 5",
                SubmitError::Rejected("replay: seq 4 <= 5".into()),
            ),
        ];
        for (code, message, want) in cases {
            assert_eq!(refusal(code, message), want, "{code}");
        }
    }

    #[test]
    fn tx_hashes_parse_strictly() {
        let good = "ab".repeat(32);
        assert_eq!(parse_tx_hash(&good), Ok(TxHash([0xab; 32])));
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(matches!(parse_tx_hash(bad), Err(SubmitError::Transport(_))), "{bad}");
        }
    }
}
