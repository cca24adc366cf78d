//! The update agent of a simulated device: what runs on a city's street lamp to take a firmware
//! update from the ledger network.
//!
//! A [`SimDevice`] is a [`SoftChip`] plus the firmware in its boot slot and its
//! [`UpdateTrust`]: the genesis validators' cosigning keys with the 2f + 1 quorum, the
//! publisher's SUIT keys read from the ledger (`fw/keys/<publisher>`), its model, owner and the
//! security version it runs. [`update_device`] then does what a device does:
//!
//! 1. **poll** any node (round-robin from the device's own start index, falling over to the
//!    next on an error) for a `running` rollout of its owner that names its model, whose
//!    release it does not run and whose security version is not below its own;
//! 2. **download** the update bundle (SUIT envelope + quorum-cosigned checkpoint + release and
//!    approval proofs) and the image (`/v1/blobs/<sha256>`) from any node — `firmware publish`
//!    uploads the image to every node it is given (`--mirror`), so each node serves it on its
//!    own (simpler than nodes fetching missing blobs from peers, and a node still serves only
//!    images a release on its own ledger copy names);
//! 3. **verify** with [`verify_update`]: a refusal leaves the old firmware booted (the chip's
//!    code hash is unchanged) and is reported as LwM2M result 5 (integrity check failure);
//! 4. **install**: reboot the SoftChip with the new image (a new DICE Alias key) and submit
//!    `AttestInstall` evidence answering the device's current challenge, so the fleet version
//!    map changes only on device proof.
//!
//! Every step is reported as `ReportProgress` by the owner (LwM2M object 5: Downloading →
//! Downloaded → Updating → Idle with an update result). The owner's transactions are signed by
//! one [`OwnerSigner`] shared by all agents: it hands out contiguous sequence numbers (the
//! ledger's per-organisation order) and submits through one gateway node, while reads go to
//! any node. [`run_fleet`] runs many agents as bounded tokio tasks, with injected [`Fault`]s.
//!
//! Errors are typed ([`AgentError`]); nothing here panics on what a node answers.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chipledger_device::chip::{ChipError, Firmware, SoftChip};
use chipledger_device::update::{ImageHasher, MAX_BUNDLE_BYTES, UpdateBundle, UpdateError, UpdateTrust, verify_update};
use chipledger_node::api::{StateProofBody, TxStatusBody};
use chipledger_node::api_firmware::{ReleaseBody, ReleaseDetail, RolloutList};
use chipledger_node::blob_store::MAX_BLOB_BYTES;
use chipledger_state::firmware::model::{FirmwareKeys, firmware_keys_key};
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{ReleaseId, ReportProgress, UpdateResult, UpdateState};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, TxHash};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::device_cmd::{WAIT_FINAL, chip_device_id};
use crate::firmware_cmd::install_payload;
use crate::txcmd::{build, wait_final};

/// Timeout of one HTTP request to a node.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a download waits while nodes answer `retry` (a checkpoint still collecting
/// signatures) or do not know the release yet.
pub const RETRY_NOT_READY: Duration = Duration::from_secs(30);
/// Pause between such retries.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(200);
/// Pause between two polls for an update.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Largest JSON answer the agent reads.
pub const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;
/// Most node APIs an agent knows.
pub const MAX_NODES: usize = 64;
/// Blocks an owner transaction stays valid for.
pub const TX_EXPIRY_BLOCKS: u64 = 1000;
/// Times a signer re-reads its sequence number after a `replay` refusal before giving up.
pub const MAX_SEQ_RESYNCS: usize = 3;
/// The typed error code of a sequence number already used.
const CODE_REPLAY: &str = "replay";
/// The firmware name the chip measures into its Alias certificate and EAT (`swname`).
pub const FW_NAME: &str = "chipledger-fw";

/// Why an agent step failed. A failed update never changes the firmware a device runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("no node API given (1 to {MAX_NODES} are needed)")]
    NoNodes,
    #[error("cannot reach {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}: {body}")]
    Http { url: String, status: u16, body: String },
    #[error("{what} from {url} is malformed: {why}")]
    Malformed {
        url: String,
        what: &'static str,
        why: String,
    },
    #[error("{what} is too large ({len} bytes; the limit is {max})")]
    TooLarge { what: &'static str, len: u64, max: usize },
    #[error("{what}: not available after {secs} s of retrying")]
    Timeout { what: String, secs: u64 },
    #[error("transaction refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("transaction {tx} was not accepted: {reason}")]
    Rejected { tx: String, reason: String },
    #[error("publisher '{0}' has no active firmware key on the ledger")]
    NoPublisherKey(String),
    #[error("the device refused the update: {0}")]
    Verify(#[from] UpdateError),
    #[error("the chip: {0}")]
    Chip(#[from] ChipError),
    #[error("{0}")]
    Client(String),
}

/// The chain of an `anyhow` error from the shared client helpers, as an agent error.
fn client_err(e: anyhow::Error) -> AgentError {
    AgentError::Client(format!("{e:#}"))
}

// ---- reading from any node ---------------------------------------------------------------------

/// The node APIs a device can reach; every read tries them in turn from a start index.
#[derive(Debug, Clone)]
pub struct Nodes {
    apis: Vec<String>,
    http: reqwest::blocking::Client,
}

/// One failed attempt: retry on another node (or later) unless it is final.
fn retryable(e: &AgentError) -> bool {
    match e {
        AgentError::Unreachable { .. } => true,
        AgentError::Http { status, .. } => *status == 404 || *status >= 500,
        _ => false,
    }
}

impl Nodes {
    /// Must be created outside an async context (a blocking HTTP client).
    pub fn new(apis: &[String]) -> Result<Self, AgentError> {
        if apis.is_empty() || apis.len() > MAX_NODES {
            return Err(AgentError::NoNodes);
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| AgentError::Client(e.to_string()))?;
        let apis = apis.iter().map(|a| a.trim_end_matches('/').to_string()).collect();
        Ok(Self { apis, http })
    }

    pub fn apis(&self) -> &[String] {
        &self.apis
    }

    /// GET `path` from one node: the body of a 2xx answer, at most `max` bytes.
    fn get_one(&self, api: &str, path: &str, max: usize) -> Result<Vec<u8>, AgentError> {
        let url = format!("{api}{path}");
        let unreachable = |e: reqwest::Error| AgentError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = self.http.get(&url).send().map_err(unreachable)?;
        let status = resp.status().as_u16();
        if let Some(len) = resp.content_length().filter(|l| *l > max as u64) {
            return Err(AgentError::TooLarge {
                what: "answer",
                len,
                max,
            });
        }
        let body = resp.bytes().map_err(unreachable)?;
        if body.len() > max {
            let len = body.len() as u64;
            return Err(AgentError::TooLarge {
                what: "answer",
                len,
                max,
            });
        }
        if !(200..300).contains(&status) {
            let body = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(AgentError::Http { url, status, body });
        }
        Ok(body.to_vec())
    }

    /// GET `path` from the first node (starting at `start`, round-robin) that answers 2xx.
    pub fn get(&self, start: usize, path: &str, max: usize) -> Result<Vec<u8>, AgentError> {
        let n = self.apis.len();
        let mut last = AgentError::NoNodes;
        for i in 0..n {
            match self.get_one(&self.apis[(start + i) % n], path, max) {
                Ok(b) => return Ok(b),
                Err(e) if retryable(&e) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// [`Nodes::get`], retried for [`RETRY_NOT_READY`] while every node answers 404/5xx or is
    /// unreachable (a release or checkpoint not final everywhere yet).
    pub fn get_retrying(&self, start: usize, path: &str, max: usize) -> Result<Vec<u8>, AgentError> {
        let began = Instant::now();
        loop {
            match self.get(start, path, max) {
                Err(e) if retryable(&e) && began.elapsed() < RETRY_NOT_READY => std::thread::sleep(RETRY_INTERVAL),
                other => return other,
            }
        }
    }

    /// GET `path` as JSON from any node.
    pub fn get_json<T: DeserializeOwned>(&self, start: usize, path: &str) -> Result<T, AgentError> {
        let body = self.get(start, path, MAX_JSON_BYTES)?;
        serde_json::from_slice(&body).map_err(|e| AgentError::Malformed {
            url: path.into(),
            what: "JSON answer",
            why: e.to_string(),
        })
    }
}

/// The publisher's active (not revoked) SUIT signing keys, read from the ledger state
/// (`fw/keys/<publisher>`). A device gets these at manufacture, as its publisher trust anchors.
pub fn publisher_keys(nodes: &Nodes, publisher: &str) -> Result<Vec<p256::ecdsa::VerifyingKey>, AgentError> {
    let key = String::from_utf8_lossy(&firmware_keys_key(publisher)).into_owned();
    let body: StateProofBody = nodes.get_json(0, &format!("/v1/state?key={key}"))?;
    let malformed = |why: String| AgentError::Malformed {
        url: "/v1/state".into(),
        what: "firmware key record",
        why,
    };
    let hex_value = body.value.ok_or_else(|| AgentError::NoPublisherKey(publisher.into()))?;
    let bytes = hex::decode(hex_value).map_err(|e| malformed(e.to_string()))?;
    let keys = FirmwareKeys::from_cbor(&bytes, Limits::STATE).map_err(|e| malformed(e.to_string()))?;
    let active: Vec<_> = keys
        .0
        .iter()
        .filter(|k| k.revoked_height.is_none())
        .filter_map(|k| p256::ecdsa::VerifyingKey::from_sec1_bytes(&k.key_sec1).ok())
        .collect();
    if active.is_empty() {
        return Err(AgentError::NoPublisherKey(publisher.into()));
    }
    Ok(active)
}

// ---- the owner's transactions ------------------------------------------------------------------

/// Signs and submits the owner organisation's transactions for every agent: contiguous
/// sequence numbers from one counter, submitted to one gateway node (the others receive them
/// by gossip), each awaited until final.
pub struct OwnerSigner {
    org: String,
    key: SigningKey,
    client: Client,
    /// The next sequence number to use; `None`: read it from the node.
    next_seq: Mutex<Option<u64>>,
}

impl OwnerSigner {
    /// Must be created outside an async context (a blocking HTTP client).
    pub fn new(gateway_api: &str, org: &str, key: SigningKey) -> Result<Self, AgentError> {
        Ok(Self {
            org: org.into(),
            key,
            client: Client::new(gateway_api).map_err(client_err)?,
            next_seq: Mutex::new(None),
        })
    }

    pub fn org(&self) -> &str {
        &self.org
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Sign `payload` with the next sequence number and submit it; its hash. A refusal at
    /// admission consumes no sequence number; a `replay` refusal (the organisation signed
    /// elsewhere meanwhile) re-reads the sequence number from the node and tries again.
    fn submit(&self, payload: Payload) -> Result<String, AgentError> {
        let mut next = self.next_seq.lock().unwrap_or_else(|p| p.into_inner());
        let mut resyncs = 0;
        loop {
            let seq = match *next {
                Some(s) => s,
                None => self.client.org(&self.org).map_err(client_err)?.last_seq + 1,
            };
            let tx = build(
                &self.client,
                &self.org,
                &self.key,
                Some(seq),
                TX_EXPIRY_BLOCKS,
                payload.clone(),
            )
            .map_err(client_err)?;
            match self.client.try_submit(&tx).map_err(client_err)? {
                Ok(s) => {
                    *next = Some(seq + 1);
                    return Ok(s.hash);
                }
                Err(e) if e.error == CODE_REPLAY && resyncs < MAX_SEQ_RESYNCS => {
                    *next = None;
                    resyncs += 1;
                }
                Err(e) => {
                    *next = Some(seq);
                    return Err(AgentError::Refused {
                        code: e.error,
                        message: e.message,
                    });
                }
            }
        }
    }

    /// Submit `payload` and wait until it is final. A transaction rejected in a block makes
    /// the signer re-read its sequence number from the node.
    pub fn submit_final(&self, payload: Payload) -> Result<TxStatusBody, AgentError> {
        let hash = self.submit(payload)?;
        let s = wait_final(&self.client, &hash, WAIT_FINAL).map_err(client_err)?;
        if s.status != "final" {
            *self.next_seq.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(AgentError::Rejected {
                tx: hash,
                reason: s.reason.unwrap_or_else(|| s.status.clone()),
            });
        }
        Ok(s)
    }
}

// ---- the device ----------------------------------------------------------------------------------

/// The firmware in a device's boot slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFirmware {
    pub version: String,
    pub security_version: u64,
    pub image: Vec<u8>,
}

impl SlotFirmware {
    /// What the chip measures when it boots this image.
    pub fn firmware(&self) -> Firmware<'_> {
        Firmware {
            name: FW_NAME,
            version: &self.version,
            svn: self.security_version,
            image: &self.image,
        }
    }

    /// SHA-256 of the image: the measurement the ledger records.
    pub fn measurement(&self) -> [u8; 32] {
        self.firmware().measurement()
    }
}

/// A simulated device: its chip, the firmware it runs, and what it trusts.
#[derive(Debug)]
pub struct SimDevice {
    pub id: DeviceId,
    pub chip: SoftChip,
    pub running: SlotFirmware,
    pub trust: UpdateTrust,
}

impl SimDevice {
    /// A device running `factory` firmware (booted now), trusting `trust`.
    pub fn new(mut chip: SoftChip, factory: SlotFirmware, trust: UpdateTrust) -> Result<Self, AgentError> {
        use chipledger_device::chip::Chip as _;
        chip.boot(&factory.firmware())?;
        Ok(Self {
            id: chip_device_id(&chip),
            chip,
            running: factory,
            trust,
        })
    }
}

/// A fault injected into one device's update (the demo's and the tests' failure model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// The image arrives corrupted: the digest check fails (LwM2M result 5).
    BadDownload,
    /// Power is lost while installing: the device reboots from its old slot (result 8) and
    /// stays on its old firmware until a later rollout.
    PowerLoss,
}

/// How one device's update attempt ended.
#[derive(Debug)]
pub enum Outcome {
    /// No running rollout offers this device anything newer.
    UpToDate,
    /// Installed and proven: the `AttestInstall` transaction.
    Installed { version: String, tx: String },
    /// The attempt failed; the device still runs its old firmware. `result` was reported.
    Failed { result: UpdateResult, reason: String },
}

/// An update on offer: a running rollout and its release.
#[derive(Debug, Clone)]
pub struct Offer {
    pub rollout: TxHash,
    pub release: ReleaseBody,
}

/// Shared by all agents: the nodes to read from and the owner's signer.
pub struct AgentCtx {
    pub nodes: Nodes,
    pub owner: OwnerSigner,
}

fn parse_hash(s: &str, url: &str, what: &'static str) -> Result<[u8; 32], AgentError> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| AgentError::Malformed {
            url: url.into(),
            what,
            why: format!("'{s}' is not 64 hex digits"),
        })
}

/// Poll for an update: the newest running rollout of the device's owner naming its model,
/// whose release is not withdrawn, is not what the device runs and does not roll it back.
pub fn poll(ctx: &AgentCtx, start: usize, dev: &SimDevice) -> Result<Option<Offer>, AgentError> {
    let path = format!("/v1/firmware/rollouts?owner={}", dev.trust.owner);
    let mut list: RolloutList = ctx.nodes.get_json(start, &path)?;
    list.rollouts.sort_by_key(|r| std::cmp::Reverse(r.created_height));
    let running = hex::encode(dev.running.measurement());
    for r in list.rollouts {
        if r.status != "running" || !r.models.contains(&dev.trust.model) {
            continue;
        }
        let detail: ReleaseDetail = ctx
            .nodes
            .get_json(start, &format!("/v1/firmware/releases/{}", r.release))?;
        let rel = detail.release;
        if rel.withdrawn.is_some() || rel.image_digest == running || rel.security_version < dev.trust.security_version {
            continue;
        }
        let rollout = TxHash(parse_hash(&r.id, &path, "rollout id")?);
        return Ok(Some(Offer { rollout, release: rel }));
    }
    Ok(None)
}

/// Report the device's LwM2M state and result for `rollout` (signed by the owner).
pub fn report(
    ctx: &AgentCtx,
    dev: &SimDevice,
    rollout: TxHash,
    state: UpdateState,
    result: UpdateResult,
) -> Result<(), AgentError> {
    let p = ReportProgress {
        rollout,
        device: dev.id,
        state,
        result,
    };
    ctx.owner.submit_final(Payload::ReportProgress(p)).map(drop)
}

/// The update bundle and the image of `offer`, from any node.
fn download(
    ctx: &AgentCtx,
    start: usize,
    dev: &SimDevice,
    offer: &Offer,
) -> Result<(UpdateBundle, Vec<u8>), AgentError> {
    let rel = &offer.release;
    let path = format!("/v1/firmware/releases/{}/bundle?owner={}", rel.id, dev.trust.owner);
    let bytes = ctx.nodes.get_retrying(start, &path, MAX_BUNDLE_BYTES)?;
    let bundle = UpdateBundle::from_bytes(&bytes)?;
    if rel.image_size > MAX_BLOB_BYTES as u64 {
        return Err(AgentError::TooLarge {
            what: "image",
            len: rel.image_size,
            max: MAX_BLOB_BYTES,
        });
    }
    let image = ctx
        .nodes
        .get_retrying(start + 1, &format!("/v1/blobs/{}", rel.image_digest), MAX_BLOB_BYTES)?;
    Ok((bundle, image))
}

/// The LwM2M result a refused update is reported with.
pub fn refusal_result(e: &UpdateError) -> UpdateResult {
    match e {
        UpdateError::Malformed { .. } => UpdateResult::UnsupportedPackageType,
        _ => UpdateResult::IntegrityCheckFailure,
    }
}

/// One update attempt of `dev` (see the module documentation), with `fault` injected.
/// Transport and ledger errors are `Err`; a refused or interrupted install is
/// `Ok(Outcome::Failed)` after its result was reported.
pub fn update_device(ctx: &AgentCtx, start: usize, dev: &mut SimDevice, fault: Fault) -> Result<Outcome, AgentError> {
    let Some(offer) = poll(ctx, start, dev)? else {
        return Ok(Outcome::UpToDate);
    };
    let rollout = offer.rollout;
    report(ctx, dev, rollout, UpdateState::Downloading, UpdateResult::Initial)?;
    let (bundle, mut image) = match download(ctx, start, dev, &offer) {
        Ok(d) => d,
        Err(e) => {
            report(ctx, dev, rollout, UpdateState::Idle, UpdateResult::ConnectionLost)?;
            return Err(e);
        }
    };
    let middle = image.len() / 2;
    if fault == Fault::BadDownload
        && let Some(b) = image.get_mut(middle)
    {
        *b ^= 0x5a;
    }
    let verified = match verify_update(&bundle, &ImageHasher::digest(&image), &dev.trust) {
        Ok(v) => v,
        Err(e) => {
            let result = refusal_result(&e);
            report(ctx, dev, rollout, UpdateState::Idle, result)?;
            let reason = e.to_string();
            return Ok(Outcome::Failed { result, reason });
        }
    };
    report(ctx, dev, rollout, UpdateState::Downloaded, UpdateResult::Initial)?;
    report(ctx, dev, rollout, UpdateState::Updating, UpdateResult::Initial)?;
    if fault == Fault::PowerLoss {
        use chipledger_device::chip::Chip as _;
        dev.chip.boot(&dev.running.firmware())?;
        let result = UpdateResult::UpdateFailed;
        report(ctx, dev, rollout, UpdateState::Downloaded, result)?;
        let reason = "power lost mid-install; rebooted from the old slot".to_string();
        return Ok(Outcome::Failed { result, reason });
    }
    let new = SlotFirmware {
        version: verified.version.clone(),
        security_version: verified.security_version,
        image,
    };
    let tx = prove_firmware(ctx, dev, &new, rollout)?;
    dev.trust.record_install(&verified);
    dev.running = new;
    report(ctx, dev, rollout, UpdateState::Idle, UpdateResult::Success)?;
    Ok(Outcome::Installed {
        version: verified.version,
        tx,
    })
}

/// [`update_device`], polling every [`POLL_INTERVAL`] for up to `patience` while no update is
/// on offer (the node polled may not have finalized the rollout's start yet).
pub fn update_when_offered(
    ctx: &AgentCtx,
    start: usize,
    dev: &mut SimDevice,
    fault: Fault,
    patience: Duration,
) -> Result<Outcome, AgentError> {
    let began = Instant::now();
    loop {
        match update_device(ctx, start, dev, fault)? {
            Outcome::UpToDate if began.elapsed() < patience => std::thread::sleep(POLL_INTERVAL),
            outcome => return Ok(outcome),
        }
    }
}

/// Boot `firmware` on the device's chip and submit `AttestInstall` evidence for `rollout`
/// answering the device's current challenge; the evidence transaction's hash.
pub fn prove_firmware(
    ctx: &AgentCtx,
    dev: &mut SimDevice,
    firmware: &SlotFirmware,
    rollout: TxHash,
) -> Result<String, AgentError> {
    let client = ctx.owner.client();
    let challenge = client.challenge(&dev.id.to_string()).map_err(client_err)?;
    let nonce = hex::decode(&challenge.nonce).map_err(|e| AgentError::Malformed {
        url: "/v1/devices/{id}/challenge".into(),
        what: "nonce",
        why: e.to_string(),
    })?;
    let payload =
        install_payload(&mut dev.chip, dev.trust.model, &firmware.firmware(), rollout, &nonce).map_err(client_err)?;
    Ok(ctx.owner.submit_final(payload)?.hash)
}

/// The release id of a hex string from a node.
pub fn release_id(s: &str) -> Result<ReleaseId, AgentError> {
    parse_hash(s, "release", "release id").map(ReleaseId)
}

// ---- a fleet of agents -----------------------------------------------------------------------------

/// One device's finished task.
#[derive(Debug)]
pub struct DeviceRun {
    pub device: SimDevice,
    pub fault: Fault,
    pub outcome: Result<Outcome, AgentError>,
}

/// Most agents running at once.
pub const MAX_CONCURRENT_AGENTS: usize = 64;

/// Run `task` for every device as bounded tokio tasks (at most `concurrency` at once, each on
/// the blocking pool: the agents use blocking HTTP); `on_done` sees each run as it ends.
/// Must be called outside an async context.
pub fn run_fleet<F>(
    ctx: &Arc<AgentCtx>,
    devices: Vec<(SimDevice, Fault)>,
    concurrency: usize,
    task: F,
    mut on_done: impl FnMut(&DeviceRun),
) -> Result<Vec<DeviceRun>, AgentError>
where
    F: Fn(&AgentCtx, usize, &mut SimDevice, Fault) -> Result<Outcome, AgentError> + Send + Sync + 'static,
{
    let permits = concurrency.clamp(1, MAX_CONCURRENT_AGENTS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(permits)
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))?;
    let task = Arc::new(task);
    let runs = rt.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(permits));
        let mut set = tokio::task::JoinSet::new();
        for (i, (mut dev, fault)) in devices.into_iter().enumerate() {
            let (ctx, task, limit) = (ctx.clone(), task.clone(), limit.clone());
            set.spawn(async move {
                let _permit = limit.acquire_owned().await;
                tokio::task::spawn_blocking(move || {
                    let outcome = task(&ctx, i, &mut dev, fault);
                    DeviceRun {
                        device: dev,
                        fault,
                        outcome,
                    }
                })
                .await
            });
        }
        let mut runs = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(Ok(run)) => {
                    on_done(&run);
                    runs.push(run);
                }
                Ok(Err(e)) | Err(e) => return Err(AgentError::Client(format!("an agent task failed: {e}"))),
            }
        }
        Ok(runs)
    })?;
    Ok(runs)
}
