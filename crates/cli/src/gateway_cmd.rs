//! `chipledger gateway`: runs the data-at-source gateway (issue 5) against a validator API.
//!
//! Records arrive over MQTT (an embedded rumqttd broker by default, or any MQTT 3.1.1 broker
//! with `--broker`), are verified against the device registry ([`HttpDirectory`]), stored
//! durably in a redb file under `--data` and acknowledged; a batch loop cuts `CommitBatch`
//! payloads and submits them signed with the operator organisation's key ([`ClientSubmitter`]),
//! together with queued `ReportChainAnomaly` and `RequestRebirth` transactions.
//!
//! **Trust levels.** The node API serves each device's DeviceID certificate (verified here
//! against its manufacturer CA from `/v1/cas`: trust level 1) and, once the ledger accepted
//! DICE evidence, the Alias key of the attested firmware layer (`attestation.alias_key_spki`,
//! verified by the validators in `Attest` / `AttestInstall`: trust level 2). Records signed by
//! the attested Alias key get level 2; after an install the node serves the new layer's key, so
//! the old one stops giving level 2 once the cache entry expires ([`DIRECTORY_TTL`]).

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
use chipledger_gateway::batch::submit_batches_shared;
use chipledger_gateway::mqtt::{
    DropReason, Durable, EmbeddedBroker, RecordOrigin, RecordSink, SinkError, SubscriberConfig, spawn_subscriber,
};
use chipledger_gateway::{
    DeviceDirectory, DeviceEntry, DeviceStatus, Gateway, GatewayConfig, IngestError, Rejection, SubmitError, Submitter,
    TxStatus, verify_many,
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
    /// Serve the record API (records with their proofs) on HOST:PORT; default
    /// 127.0.0.1:8181 (skipped with a warning when taken), `off` disables it.
    #[arg(long, value_name = "ADDR|off")]
    pub http: Option<String>,
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
    /// The latest accepted evidence (absent before the device's first attestation).
    attestation: Option<AttestationView>,
}

/// The part of the node's `AttestationBody` the gateway uses: the attested Alias key.
#[derive(serde::Deserialize)]
struct AttestationView {
    alias_key_alg: String,
    alias_key_spki: String,
}

/// The attested Alias key from the node (canonical SPKI DER, which must name the algorithm the
/// node states): the key of trust level 2.
fn attested_alias(a: &AttestationView) -> Result<DevicePublicKey, String> {
    let der = hex::decode(&a.alias_key_spki).map_err(|e| format!("attested Alias key hex: {e}"))?;
    let key = DevicePublicKey::from_spki_der(&der).map_err(|e| format!("attested Alias key: {e}"))?;
    if key.alg().name() != a.alias_key_alg {
        return Err(format!(
            "attested Alias key is {} but the node names it {}",
            key.alg(),
            a.alias_key_alg
        ));
    }
    Ok(key)
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
        let attested_alias = view.attestation.as_ref().map(attested_alias).transpose().map_err(bad)?;
        Ok(DeviceEntry {
            status,
            device_id_key: Some(key),
            attested_alias,
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

impl GatewaySink {
    /// Reports a record `ingest` refused (bad signature, revoked device, malformed) to the
    /// ledger, rate-limited (`Gateway::queue_rejection`); call it before acking the record.
    /// The registry lookup happens outside the gateway lock.
    pub fn report_rejection(&self, origin: &RecordOrigin, record: &[u8], error: &IngestError) {
        if let Some(rejection) = Rejection::of_ingest(error, record, origin.device) {
            self.queue_rejection(rejection);
        }
    }

    fn queue_rejection(&self, rejection: Rejection) {
        if let Err(e) = self.directory.refresh(&rejection.device) {
            tracing::warn!(error = %e, "rejection not reported: registry unavailable");
            return;
        }
        let Ok(mut gateway) = self.gateway.lock() else { return };
        match gateway.queue_rejection(rejection, self.directory.as_ref(), Instant::now()) {
            Ok(outcome) => tracing::debug!(?outcome, "rejection"),
            Err(e) => tracing::warn!(error = %e, "rejection report not queued"),
        }
    }
}

impl RecordSink for GatewaySink {
    fn accept(&self, origin: &RecordOrigin, record: &[u8]) -> Result<Durable, SinkError> {
        let reject = |e: &dyn std::fmt::Display| SinkError::Rejected(e.to_string());
        // The record's own device (the transport already dropped a `DDATA` whose topic names
        // another one; a relayed record's topic edge node is the relay); an undecodable record
        // is refused by `ingest` without a lookup.
        let claimed = parse_sign1(record).ok().and_then(|p| Record::decode_body(p.body).ok());
        if let Some(claimed) = claimed {
            self.directory.refresh(&claimed.device).map_err(|e| match e {
                DirectoryError::Transport(_) => SinkError::Unavailable(e.to_string()),
                DirectoryError::BadRecord { .. } => SinkError::Rejected(e.to_string()),
            })?;
        }
        let mut gateway = self
            .gateway
            .lock()
            .map_err(|_| SinkError::Unavailable("gateway lock poisoned".into()))?;
        let error = match gateway.ingest(record, self.directory.as_ref()) {
            Ok(a) => {
                return Ok(Durable {
                    stream: a.stream,
                    seq: a.seq,
                });
            }
            Err(e @ IngestError::Store(_)) => return Err(SinkError::Unavailable(e.to_string())),
            Err(e) => e,
        };
        drop(gateway);
        self.report_rejection(origin, record, &error);
        Err(reject(&error))
    }

    /// The transport's group path: each distinct device's registry entry is refreshed once,
    /// the records that may proceed are verified on all cores outside the gateway lock (so
    /// several connections' workers verify at once) and stored as one group (one store
    /// transaction); refusals are reported outside the lock.
    fn accept_many(&self, records: &[(&RecordOrigin, &[u8])]) -> Vec<Result<Durable, SinkError>> {
        let mut answers: Vec<Option<Result<Durable, SinkError>>> = vec![None; records.len()];
        let mut refreshed: HashMap<DeviceId, Result<(), SinkError>> = HashMap::new();
        let mut admitted = Vec::with_capacity(records.len());
        for (i, (_, record)) in records.iter().enumerate() {
            let claimed = parse_sign1(record).ok().and_then(|p| Record::decode_body(p.body).ok());
            if let Some(device) = claimed.map(|c| c.device) {
                let refresh = refreshed.entry(device).or_insert_with(|| {
                    self.directory.refresh(&device).map_err(|e| match e {
                        DirectoryError::Transport(_) => SinkError::Unavailable(e.to_string()),
                        DirectoryError::BadRecord { .. } => SinkError::Rejected(e.to_string()),
                    })
                });
                if let Err(e) = refresh {
                    answers[i] = Some(Err(e.clone()));
                    continue;
                }
            }
            admitted.push(i);
        }
        let bytes: Vec<&[u8]> = admitted.iter().map(|&i| records[i].1).collect();
        let verified = verify_many(&bytes, self.directory.as_ref());
        let results = match self.gateway.lock() {
            Ok(mut gateway) => gateway.ingest_verified(&bytes, verified),
            Err(_) => Vec::new(),
        };
        for (i, result) in admitted.into_iter().zip(results) {
            answers[i] = Some(match result {
                Ok(a) => Ok(Durable {
                    stream: a.stream,
                    seq: a.seq,
                }),
                Err(e @ IngestError::Store(_)) => Err(SinkError::Unavailable(e.to_string())),
                Err(e) => {
                    self.report_rejection(records[i].0, records[i].1, &e);
                    Err(SinkError::Rejected(e.to_string()))
                }
            });
        }
        let poisoned = || Err(SinkError::Unavailable("gateway lock poisoned".into()));
        answers.into_iter().map(|a| a.unwrap_or_else(poisoned)).collect()
    }

    /// An oversized or unframed `DDATA` on a device's topic: reported as `malformed` when the
    /// registry knows the device.
    fn dropped(&self, device: Option<DeviceId>, reason: DropReason, detail: String) {
        let code = match reason {
            DropReason::Oversized => "frame_too_large",
            DropReason::Malformed => "bad_frame",
            _ => return,
        };
        if let Some(device) = device {
            self.queue_rejection(Rejection::dropped_frame(device, code, detail));
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
                // A refused transaction consumed no sequence number: keep the cached one
                // unless the refusal was about the number itself (then ask the node again).
                // Re-reading it after any refusal would reuse a number still held by one of
                // our transactions waiting in the mempool.
                if matches!(error.as_str(), "replay" | "seq_gap") {
                    self.next_seq = None;
                }
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
    if let Some(addr) = crate::gateway_http::start(a.http.as_deref(), gateway.clone(), &a.api).await? {
        say!("record API listening on http://{addr}");
    }
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
    let lock = || gateway.lock().map_err(|_| anyhow::anyhow!("gateway lock poisoned"));
    let queued = {
        let mut g = lock()?;
        while g.batch_due(Instant::now()) && g.cut_batch()?.is_some() {}
        g.flush_rejections(Instant::now())?;
        g.queued_anomalies()?
    };
    // The ledger round trips run without the lock: ingestion goes on meanwhile.
    let report = submit_batches_shared(gateway, submitter)?;
    for (index, anomaly) in queued {
        match submitter.send(Payload::ReportChainAnomaly(anomaly)) {
            Ok(_) => lock()?.anomaly_sent(index)?,
            Err(e @ (SubmitError::Rejected(_) | SubmitError::BatchReplayed)) => {
                tracing::warn!(error = %e, "anomaly report refused by the ledger; dropped");
                lock()?.anomaly_sent(index)?
            }
            Err(e) => return Err(e.into()),
        }
    }
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

    /// The node's `AttestationBody`, as the API serves it, gives the directory the attested
    /// Alias key (both algorithms); a key of another algorithm than named, or bad hex, is refused.
    #[test]
    fn attested_alias_is_read_from_the_nodes_attestation() {
        use chipledger_device::dice::LayerKey;
        use chipledger_device::key::{DeviceKeyAlg, DeviceSigner};
        use chipledger_node::api::AttestationBody;

        let body = |alg: &str, spki: String| AttestationBody {
            height: 7,
            swname: "lamp-fw".into(),
            swversion: "2.1.0".into(),
            measurement: String::new(),
            alias_fwid_sha256: String::new(),
            alias_key_alg: alg.into(),
            alias_key_spki: spki,
        };
        let parse = |b: AttestationBody| {
            let json = serde_json::to_string(&b).unwrap();
            attested_alias(&serde_json::from_str::<AttestationView>(&json).unwrap())
        };
        for alg in DeviceKeyAlg::ALL {
            let pair = LayerKey::derive(alg, &[5; 32]).unwrap().key_pair;
            let key = DeviceSigner::from(&pair).public_key();
            let spki = hex::encode(key.to_spki_der());
            assert_eq!(parse(body(alg.name(), spki.clone())), Ok(key));
            let other = DeviceKeyAlg::ALL.into_iter().find(|a| *a != alg).unwrap();
            assert!(parse(body(other.name(), spki.clone())).is_err(), "{alg}");
            assert!(parse(body(alg.name(), format!("{spki}zz"))).is_err(), "{alg}");
            assert!(parse(body(alg.name(), format!("{spki}00"))).is_err(), "{alg}");
        }
    }

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
