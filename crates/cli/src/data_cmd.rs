//! `chipledger data …` (issue 5): what the ledger and a gateway know of a device's data, for its
//! owner or an auditor.
//!
//! - `data show DEVICE`: the device's record chains on the ledger (head, records, gaps and trust
//!   level per stream) and its anomaly reports (validator API `/v1/data/devices/{id}`).
//! - `data get DEVICE STREAM SEQ --gateway URL`: one record from a gateway's record API with its
//!   proof ([`crate::gateway_http`]), verified against the validators' keys ([`NetworkTrust`]:
//!   `--genesis FILE`, else the node's `/v1/validators`), written to `--out FILE` for
//!   `chipledger verify record FILE`; with `--decrypt` the payload is opened with the owner's key
//!   (`--owner-key FILE`: the epoch key is unwrapped from the device's proven `_epoch-keys`
//!   record) or with an epoch key the owner shared (`--epoch-key HEX`, a grantee), or — a
//!   grantee under a ledger grant — with the key the owner's key service releases
//!   (`--keyservice URL --grant ID --grantee-org ORG --grantee-key FILE` or
//!   `--grantee-person-key FILE`; [`crate::keyservice`]): the release is recorded on the ledger
//!   (a final `KeyRelease`, printed) before the key arrives.
//!
//! The library functions ([`fetch_record_proof`], [`wait_record_proof`], [`NetworkTrust`],
//! [`open_record`]) are what tests and other tools call.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use chipledger_device::seal::{DATA_KEY_BYTES, EpochKey, open_payload, unwrap_epoch_key};
use chipledger_node::api::ErrorBody;
use chipledger_node::api_data::DeviceDataBody;
use chipledger_node::checkpoints::verifier_for;
use chipledger_node::config::{GenesisFile, KeyFile};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::note::VerifierKey;
use chipledger_types::record::{Record, STREAM_EPOCH_KEYS, parse_sign1};
use chipledger_types::record_proof::{ProvenRecord, RecordProof, RecordProofError, verify_record_proof};
use clap::{Args, Subcommand};

use crate::client::{Client, DEFAULT_API};
use crate::gateway_http::{RecordBody, RecordListBody, RecordListQuery, RecordProofJson};

/// Default record API of a local gateway (`chipledger gateway`'s default `--http`).
pub const DEFAULT_GATEWAY_API: &str = "http://127.0.0.1:8181";
/// Timeout of one request to a gateway.
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two attempts while a record's batch is not final yet.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// Largest answer read from a gateway (a page of 100 records of at most 16 KiB, hex).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// Pages of `_epoch-keys` records searched for an epoch's key-wrap record.
const MAX_EPOCH_KEY_PAGES: usize = 100;

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// A device's record chains on the ledger (head, records, gaps, trust per stream) and its
    /// anomalies.
    Show {
        /// Hex device id.
        device: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        /// Only streams whose head was committed at this trust level or higher (0, 1, 2).
        #[arg(long)]
        min_trust: Option<u8>,
        /// Print the node's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One record from a gateway with its proof, verified against the validators' keys;
    /// optionally decrypted for its owner (or a grantee holding the epoch key).
    Get {
        /// Hex device id.
        device: String,
        /// Stream name (`_epoch-keys` for the key-wrap records).
        stream: String,
        /// Record seq in the stream (from 1).
        seq: u64,
        /// The gateway's record API.
        #[arg(long, default_value = DEFAULT_GATEWAY_API)]
        gateway: String,
        /// Validator API (for its validator keys when no --genesis is given).
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        /// Trust anchors: the network's genesis.json (else keys are read from --api).
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        /// Write the proof (JSON) here, for `chipledger verify record FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the decrypted payload on stdout (the summary goes to stderr).
        #[arg(long)]
        decrypt: bool,
        /// The owner's P-256 secret key: 64 hex characters, a PEM (PKCS#8 "PRIVATE KEY" or
        /// SEC1 "EC PRIVATE KEY"), or a `chipledger keys gen --kind p256` key file.
        #[arg(long, value_name = "FILE", requires = "decrypt", conflicts_with = "epoch_key")]
        owner_key: Option<PathBuf>,
        /// A grantee's 16-byte epoch data key (hex), as the owner shared it.
        #[arg(long, value_name = "HEX", requires = "decrypt")]
        epoch_key: Option<String>,
        #[command(flatten)]
        grantee: Box<GranteeArgs>,
        /// How long to wait while the record's batch is not under a final checkpoint yet.
        #[arg(long, default_value_t = 30)]
        wait_s: u64,
    },
}

pub fn run(a: DataArgs) -> Result<()> {
    match a.command {
        DataCommand::Show {
            device,
            api,
            min_trust,
            json,
        } => show(&device, &api, min_trust, json),
        DataCommand::Get {
            device,
            stream,
            seq,
            gateway,
            api,
            genesis,
            out,
            decrypt,
            owner_key,
            epoch_key,
            grantee,
            wait_s,
        } => {
            let key = match (decrypt, owner_key, epoch_key, grantee.keyservice.is_some()) {
                (false, ..) => None,
                (true, Some(path), ..) => Some(Decryptor::Owner(read_owner_key(&path)?)),
                (true, None, Some(hex), _) => Some(Decryptor::EpochKey(parse_epoch_key(&hex)?)),
                (true, None, None, true) => Some(Decryptor::Grantee(Box::new(grantee.access()?))),
                (true, None, None, false) => {
                    bail!("--decrypt needs --owner-key FILE, --epoch-key HEX or --keyservice URL")
                }
            };
            let request = GetRequest {
                gateway,
                device: parse_device(&device)?,
                stream,
                seq,
                wait: Duration::from_secs(wait_s),
            };
            let trust = NetworkTrust::load(&api, genesis.as_deref())?;
            get(&request, &trust, out.as_deref(), key.as_ref())
        }
    }
}

pub fn parse_device(s: &str) -> Result<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .with_context(|| format!("'{s}' is not a device id (40 hex characters)"))
}

// ---- trust anchors -----------------------------------------------------------------------------

/// What a client checks a checkpoint with: the validators' note keys, the log origin and the
/// quorum (2f + 1).
#[derive(Clone, Debug)]
pub struct NetworkTrust {
    pub keys: Vec<VerifierKey>,
    pub origin: String,
    pub quorum: usize,
}

impl NetworkTrust {
    /// From the network's genesis file (the trust anchor a client is provisioned with).
    pub fn from_genesis(path: &Path) -> Result<Self> {
        let g = GenesisFile::read(path)?;
        let keys = g
            .validators
            .iter()
            .map(|v| verifier_for(&v.name, &v.note_key).with_context(|| format!("validator {}: bad note key", v.name)))
            .collect::<Result<_>>()?;
        Ok(Self {
            keys,
            origin: g.log_origin(),
            quorum: g.quorum(),
        })
    }

    /// From a validator's `/v1/validators` and `/v1/status` (that node is then trusted for them).
    pub fn from_node(api: &str) -> Result<Self> {
        let client = Client::new(api)?;
        let validators = client.validators()?;
        let keys = validators
            .iter()
            .filter_map(|v| v.note_verifier_key.as_deref())
            .map(VerifierKey::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("node served a bad verifier key: {e}"))?;
        let n = validators.len();
        Ok(Self {
            keys,
            origin: format!("chipledger.example/{}", client.status()?.chain_id),
            quorum: n - n.saturating_sub(1) / 3,
        })
    }

    /// `--genesis FILE` when given, else the node at `api`.
    pub fn load(api: &str, genesis: Option<&Path>) -> Result<Self> {
        match genesis {
            Some(path) => Self::from_genesis(path),
            None => Self::from_node(api),
        }
    }

    /// [`verify_record_proof`] under these anchors.
    pub fn verify(&self, proof: &RecordProof) -> Result<ProvenRecord, RecordProofError> {
        verify_record_proof(proof, &self.origin, &self.keys, self.quorum)
    }
}

/// The trust anchors the validator at `api` serves ([`NetworkTrust::from_node`]).
pub fn node_trust(api: &str) -> Result<NetworkTrust> {
    NetworkTrust::from_node(api)
}

/// The trust anchors of a genesis file ([`NetworkTrust::from_genesis`]).
pub fn genesis_trust(path: &Path) -> Result<NetworkTrust> {
    NetworkTrust::from_genesis(path)
}

// ---- the gateway's record API ------------------------------------------------------------------

/// Why a gateway did not hand over a record (or its proof).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("{url}: {message}")]
    NotFound { url: String, message: String },
    /// The record's batch is not under a final checkpoint yet: retry.
    #[error("{url}: not final yet: {message}")]
    NotFinalYet { url: String, message: String },
    #[error("{url} answered HTTP {status} {code}: {message}")]
    Refused {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach {url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: unexpected answer: {reason}")]
    Malformed { url: String, reason: String },
}

fn gateway_get<T: serde::de::DeserializeOwned>(url: &str) -> Result<T, FetchError> {
    let transport = |e: reqwest::Error| FetchError::Transport {
        url: url.into(),
        reason: e.to_string(),
    };
    let http = reqwest::blocking::Client::builder()
        .timeout(GATEWAY_TIMEOUT)
        .build()
        .map_err(transport)?;
    let resp = http.get(url).send().map_err(transport)?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().map_err(transport)?;
    let malformed = |reason: String| FetchError::Malformed {
        url: url.into(),
        reason,
    };
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(malformed(format!("longer than {MAX_ANSWER_BYTES} bytes")));
    }
    if (200..300).contains(&status) {
        return serde_json::from_slice(&bytes).map_err(|e| malformed(e.to_string()));
    }
    let body: ErrorBody = serde_json::from_slice(&bytes).map_err(|_| FetchError::Refused {
        url: url.into(),
        status,
        code: String::new(),
        message: String::from_utf8_lossy(&bytes).into_owned(),
    })?;
    Err(match (status, body.error.as_str()) {
        (404, _) => FetchError::NotFound {
            url: url.into(),
            message: body.message,
        },
        (409, "not_final_yet") => FetchError::NotFinalYet {
            url: url.into(),
            message: body.message,
        },
        _ => FetchError::Refused {
            url: url.into(),
            status,
            code: body.error,
            message: body.message,
        },
    })
}

/// `GET {gateway}/v1/records/{device}/{stream}/{seq}`: the record and its proof (JSON).
pub fn fetch_record(gateway: &str, device: &DeviceId, stream: &str, seq: u64) -> Result<RecordBody, FetchError> {
    let url = format!("{}/v1/records/{device}/{stream}/{seq}", gateway.trim_end_matches('/'));
    gateway_get(&url)
}

/// The proof of record (device, stream, seq) from the gateway at `gateway` (base URL), decoded
/// but not verified (see [`NetworkTrust::verify`] / [`verify_record_proof`]).
pub fn fetch_record_proof(gateway: &str, device: &DeviceId, stream: &str, seq: u64) -> Result<RecordProof, FetchError> {
    let body = fetch_record(gateway, device, stream, seq)?;
    RecordProof::try_from(&body.proof).map_err(|reason| FetchError::Malformed {
        url: gateway.into(),
        reason,
    })
}

/// [`fetch_record_proof`], retrying for up to `wait` while the gateway answers `not_final_yet`.
pub fn wait_record_proof(
    gateway: &str,
    device: &DeviceId,
    stream: &str,
    seq: u64,
    wait: Duration,
) -> Result<RecordProof, FetchError> {
    let start = Instant::now();
    loop {
        match fetch_record_proof(gateway, device, stream, seq) {
            Err(FetchError::NotFinalYet { .. }) if start.elapsed() < wait => std::thread::sleep(RETRY_PAUSE),
            other => return other,
        }
    }
}

/// One page of `GET {gateway}/v1/records/{device}`.
pub fn fetch_record_page(gateway: &str, device: &DeviceId, q: &RecordListQuery) -> Result<RecordListBody, FetchError> {
    let base = format!("{}/v1/records/{device}", gateway.trim_end_matches('/'));
    let mut url = reqwest::Url::parse(&base).map_err(|e| FetchError::Transport {
        url: base.clone(),
        reason: e.to_string(),
    })?;
    {
        let mut pairs = url.query_pairs_mut();
        if let Some(s) = &q.stream {
            pairs.append_pair("stream", s);
        }
        if let Some(a) = &q.after {
            pairs.append_pair("after", a);
        }
        if let Some(l) = q.limit {
            pairs.append_pair("limit", &l.to_string());
        }
        if let Some(t) = q.min_trust {
            pairs.append_pair("min_trust", &t.to_string());
        }
    }
    gateway_get(url.as_str())
}

// ---- decryption --------------------------------------------------------------------------------

/// Who opens a payload.
pub enum Decryptor {
    /// The owner: epoch keys are unwrapped from the device's `_epoch-keys` records.
    Owner(p256::SecretKey),
    /// A grantee holding one epoch's data key.
    EpochKey(EpochKey),
    /// A grantee asking the owner's key service under a ledger grant.
    Grantee(Box<GranteeAccess>),
}

/// `data get --decrypt` as a grantee of a ledger grant, through the owner's key service.
#[derive(Debug, Args)]
pub struct GranteeArgs {
    /// The owner's key service (`chipledger keyservice`).
    #[arg(long, value_name = "URL", requires_all = ["decrypt", "grant"])]
    pub keyservice: Option<String>,
    /// The grant (hex id: its `GrantAccess` or `Purchase` transaction).
    #[arg(long, value_name = "ID", requires = "keyservice")]
    pub grant: Option<String>,
    /// The grantee organisation (signs the request with --grantee-key).
    #[arg(long, value_name = "ORG", requires_all = ["keyservice", "grantee_key"], conflicts_with = "grantee_person_key")]
    pub grantee_org: Option<String>,
    /// The grantee organisation's key file.
    #[arg(long, value_name = "FILE", requires = "grantee_org")]
    pub grantee_key: Option<PathBuf>,
    /// A person grantee's key file (the key the grant names).
    #[arg(long, value_name = "FILE", requires = "keyservice")]
    pub grantee_person_key: Option<PathBuf>,
    /// The P-256 key the epoch key is wrapped to (as --owner-key reads it); default: a fresh
    /// one for this request.
    #[arg(long, value_name = "FILE", requires = "keyservice")]
    pub recipient_key: Option<PathBuf>,
}

/// What a grantee needs to ask a key service.
pub struct GranteeAccess {
    pub url: String,
    pub grant: chipledger_types::tx::TxHash,
    pub signer: crate::keyservice::protocol::Signer,
    pub key: chipledger_types::keys::SigningKey,
    pub recipient: p256::SecretKey,
}

impl GranteeArgs {
    /// The checked flags.
    pub fn access(&self) -> Result<GranteeAccess> {
        use crate::keyservice::protocol::{Signer, fresh_p256_secret};
        let url = self.keyservice.clone().context("--keyservice URL")?;
        let grant = hex::decode(self.grant.as_deref().unwrap_or_default())
            .ok()
            .and_then(|b| b.try_into().ok())
            .map(chipledger_types::tx::TxHash)
            .context("--grant is the grant's id (64 hex characters)")?;
        let (signer, key) = match (&self.grantee_org, &self.grantee_key, &self.grantee_person_key) {
            (Some(org), Some(path), None) => (Signer::Org(org.clone()), KeyFile::read(path)?),
            (None, None, Some(path)) => {
                let key = KeyFile::read(path)?;
                (Signer::Key(key.public_key()), key)
            }
            _ => bail!("--keyservice needs --grantee-org ORG --grantee-key FILE, or --grantee-person-key FILE"),
        };
        let recipient = match &self.recipient_key {
            Some(path) => read_owner_key(path)?,
            None => fresh_p256_secret(),
        };
        Ok(GranteeAccess {
            url,
            grant,
            signer,
            key,
            recipient,
        })
    }
}

impl GranteeAccess {
    /// Asks the key service for `device`'s epoch `epoch` (printing the final `KeyRelease` to
    /// stderr) and returns its key.
    pub fn epoch_key(&self, device: DeviceId, epoch: u32) -> Result<EpochKey> {
        let released = crate::keyservice::protocol::request_keys(
            &self.url,
            self.grant,
            device,
            &[epoch],
            (&self.signer, &self.key),
            &self.recipient,
        )?;
        eprintln!(
            "key release {} final at height {} (grant {}, device {device}, epoch {epoch})",
            released.release_tx, released.height, self.grant
        );
        let withheld: Vec<String> = released.withheld.iter().map(|w| w.reason.clone()).collect();
        released
            .keys
            .into_iter()
            .find(|g| g.epoch == epoch)
            .map(|g| g.key)
            .with_context(|| format!("the key service withheld epoch {epoch} ({})", withheld.join(", ")))
    }
}

/// Reads an owner's P-256 secret key: 64 hex characters (the raw scalar), a PEM — PKCS#8
/// (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, as `openssl ecparam -genkey` writes)
/// — or a chipledger key file of kind `p256` (`chipledger keys gen --kind p256`).
pub fn read_owner_key(path: &Path) -> Result<p256::SecretKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_owner_key(&text).with_context(|| format!("owner key {}", path.display()))
}

fn parse_owner_key(text: &str) -> Result<p256::SecretKey> {
    let t = text.trim();
    if t.starts_with('{') {
        let kf: KeyFile = serde_json::from_str(t).context("not a chipledger key file")?;
        if kf.kind != "p256" {
            bail!("the key file holds a {} key; the owner key is P-256", kf.kind);
        }
        return scalar(&kf.secret);
    }
    if let Some(rest) = t.strip_prefix("-----BEGIN ") {
        let (label, body) = rest.split_once("-----").context("malformed PEM header")?;
        let b64: String = body
            .lines()
            .take_while(|l| !l.starts_with("-----END"))
            .collect::<Vec<_>>()
            .concat();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .context("PEM body is not base64")?;
        return match label {
            "PRIVATE KEY" => {
                use p256::pkcs8::DecodePrivateKey;
                p256::SecretKey::from_pkcs8_der(&der).map_err(|e| anyhow!("PKCS#8: {e}"))
            }
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(&der).map_err(|e| anyhow!("SEC1: {e}")),
            other => bail!("PEM '{other}' is not a private key (PRIVATE KEY or EC PRIVATE KEY)"),
        };
    }
    scalar(t)
}

fn scalar(hex_text: &str) -> Result<p256::SecretKey> {
    let bytes = hex::decode(hex_text.trim()).context("not 64 hex characters, a PEM or a key file")?;
    p256::SecretKey::from_slice(&bytes).map_err(|_| anyhow!("not a P-256 secret scalar (32 bytes, 0 < k < n)"))
}

fn parse_epoch_key(s: &str) -> Result<EpochKey> {
    let bytes: [u8; DATA_KEY_BYTES] = hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--epoch-key is 32 hex characters (16 bytes)")?;
    Ok(EpochKey::from_bytes(bytes))
}

/// What opening a proven record gave.
pub enum Opened {
    /// A data record's plaintext.
    Plaintext(Vec<u8>),
    /// An `_epoch-keys` record: the epoch it starts and its data key (to share with a grantee).
    EpochKey { epoch: u32, key: EpochKey },
}

/// Opens a proven record. A data record needs its epoch's key: a grantee's, or the owner's
/// unwrapped from the device's `_epoch-keys` record for that epoch, which is fetched from
/// `gateway` and proven under `trust` like the record itself.
pub fn open_record(
    gateway: &str,
    trust: &NetworkTrust,
    proven: &ProvenRecord,
    who: &Decryptor,
    wait: Duration,
) -> Result<Opened> {
    let record = &proven.record;
    if record.stream == STREAM_EPOCH_KEYS {
        let Decryptor::Owner(owner) = who else {
            bail!("an epoch-key record opens only with the owner's key");
        };
        let grant = unwrap_epoch_key(&record.payload, owner).map_err(|e| anyhow!("{e}"))?;
        if grant.device != record.device || grant.epoch != record.epoch {
            bail!("the key-wrap statement names another device or epoch than its record");
        }
        return Ok(Opened::EpochKey {
            epoch: grant.epoch,
            key: grant.key,
        });
    }
    let key = match who {
        Decryptor::EpochKey(k) => k.clone(),
        Decryptor::Owner(owner) => owner_epoch_key(gateway, trust, record, owner, wait)?,
        Decryptor::Grantee(g) => g.epoch_key(record.device, record.epoch)?,
    };
    open_payload(record, &key)
        .map(Opened::Plaintext)
        .map_err(|e| anyhow!("{e}"))
}

/// The owner's data key of `record`'s epoch, from the device's proven `_epoch-keys` records.
fn owner_epoch_key(
    gateway: &str,
    trust: &NetworkTrust,
    record: &Record,
    owner: &p256::SecretKey,
    wait: Duration,
) -> Result<EpochKey> {
    let mut q = RecordListQuery {
        stream: Some(STREAM_EPOCH_KEYS.into()),
        ..Default::default()
    };
    let mut last_error = None;
    for _ in 0..MAX_EPOCH_KEY_PAGES {
        let page = fetch_record_page(gateway, &record.device, &q)?;
        for r in page.records.iter().filter(|r| r.epoch == record.epoch) {
            let proof = wait_record_proof(gateway, &record.device, STREAM_EPOCH_KEYS, r.seq, wait)?;
            let proven = trust
                .verify(&proof)
                .map_err(|e| anyhow!("epoch-key record {}: {e}", r.seq))?;
            match open_record(gateway, trust, &proven, &Decryptor::Owner(owner.clone()), wait)? {
                Opened::EpochKey { epoch, key } if epoch == record.epoch => return Ok(key),
                _ => last_error = Some(format!("epoch-key record {} is for another epoch", r.seq)),
            }
        }
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    Err(anyhow!(
        "the gateway holds no epoch-key record of device {} for epoch {}{}",
        record.device,
        record.epoch,
        last_error.map(|e| format!(" ({e})")).unwrap_or_default()
    ))
}

// ---- commands ----------------------------------------------------------------------------------

/// Prints to stdout; a closed stdout is not an error worth a panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

fn show(device: &str, api: &str, min_trust: Option<u8>, json: bool) -> Result<()> {
    let id = parse_device(device)?;
    let client = Client::new(api)?;
    let query = min_trust.map(|t| format!("?min_trust={t}")).unwrap_or_default();
    let d: DeviceDataBody = client.get_json(&format!("/v1/data/devices/{id}{query}"))?;
    if json {
        out!("{}", serde_json::to_string_pretty(&d)?);
        return Ok(());
    }
    let status = match (d.registered, d.revoked) {
        (_, true) => "revoked",
        (true, _) => "registered",
        _ => "not registered",
    };
    out!("device {} ({status}) at height {}", d.device, d.height);
    out!(
        "  {:<24} {:>8} {:>8} {:>8}  {:<14} set by",
        "stream",
        "head",
        "records",
        "missing",
        "trust"
    );
    for s in &d.streams {
        out!(
            "  {:<24} {:>8} {:>8} {:>8}  {:<14} {}/{} at height {}",
            s.stream,
            s.seq,
            s.records,
            s.missing,
            s.trust_name,
            s.gateway,
            s.batch_seq,
            s.height
        );
    }
    let a = &d.anomalies;
    let counts: Vec<String> = a
        .counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    out!(
        "anomalies: {}{}; rebirth requests: {}",
        a.total,
        if counts.is_empty() {
            String::new()
        } else {
            format!(" ({})", counts.join(", "))
        },
        a.rebirths
    );
    for r in &a.recent {
        out!(
            "  height {:<6} {:<14} {}/{} via {}: {}",
            r.height,
            r.kind,
            r.stream,
            r.seq,
            r.gateway,
            r.detail
        );
    }
    out!(
        "chain heads proven against a final checkpoint: {}",
        if d.proof.is_some() {
            "yes"
        } else {
            "not yet (state ahead of the newest final checkpoint)"
        }
    );
    Ok(())
}

/// What `data get` fetches.
pub struct GetRequest {
    pub gateway: String,
    pub device: DeviceId,
    pub stream: String,
    pub seq: u64,
    pub wait: Duration,
}

/// A one-paragraph account of what a proof established.
pub fn describe(p: &ProvenRecord, trust: &NetworkTrust) -> String {
    let chain_trust = p.chain_trust.map_or("not stated (no head in the batch)", |t| t.name());
    let height = p
        .checkpoint_height
        .map(|h| format!(" at height {h}"))
        .unwrap_or_default();
    format!(
        "record {}/{}/{} (hash {}, epoch {}) is in batch {}/{} (chain trust: {chain_trust}), committed by \
         transaction {} of '{}', leaf {} of the log of {} under a checkpoint{height} signed by {} of {} validators \
         (quorum {})",
        p.device,
        p.stream,
        p.seq,
        p.hash,
        p.record.epoch,
        p.gateway,
        p.batch_seq,
        p.tx,
        p.operator,
        p.log_index,
        p.log_size,
        p.signers,
        trust.keys.len(),
        trust.quorum
    )
}

fn get(r: &GetRequest, trust: &NetworkTrust, out: Option<&Path>, who: Option<&Decryptor>) -> Result<()> {
    let proof = wait_record_proof(&r.gateway, &r.device, &r.stream, r.seq, r.wait)?;
    let proven = trust.verify(&proof).map_err(|e| anyhow!("invalid proof: {e}"))?;
    if (proven.device, proven.stream.as_str(), proven.seq) != (r.device, r.stream.as_str(), r.seq) {
        bail!(
            "the gateway proved record {}/{}/{} instead",
            proven.device,
            proven.stream,
            proven.seq
        );
    }
    let summary = format!("verified: {}", describe(&proven, trust));
    if let Some(path) = out {
        let json = serde_json::to_string_pretty(&RecordProofJson::from(&proof))?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    let Some(who) = who else {
        out!("{summary}");
        if let Some(path) = out {
            out!("wrote the proof to {}", path.display());
        }
        return Ok(());
    };
    eprintln!("{summary}");
    match open_record(&r.gateway, trust, &proven, who, r.wait)? {
        Opened::Plaintext(bytes) => {
            use std::io::Write as _;
            std::io::stdout().write_all(&bytes)?;
            if !bytes.ends_with(b"\n") {
                out!();
            }
        }
        Opened::EpochKey { epoch, key } => out!("epoch {epoch} data key {}", hex::encode(key.as_bytes())),
    }
    Ok(())
}

/// `chipledger verify record FILE`: outer error = could not check (unreadable file); inner
/// error = checked and found invalid (the reason).
pub fn verify_record_file(path: &Path, trust: &NetworkTrust) -> Result<Result<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json: RecordProofJson = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => return Ok(Err(format!("{} is not a record proof: {e}", path.display()))),
    };
    let proof = match RecordProof::try_from(&json) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    Ok(trust
        .verify(&proof)
        .map(|p| describe(&p, trust))
        .map_err(|e| e.to_string()))
}

/// The record inside a proof, decoded (not verified).
pub fn record_of(proof: &RecordProof) -> Result<Record> {
    let parts = parse_sign1(&proof.record).map_err(|e| anyhow!("{e}"))?;
    Record::decode_body(parts.body).map_err(|e| anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6979 §A.2.5: the P-256 test key x.
    const RFC6979_P256_X: &str = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
    /// Its public key Ux (same appendix), to check each encoding decodes to that key.
    const RFC6979_P256_UX: &str = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6";

    fn ux(k: &p256::SecretKey) -> String {
        use p256::elliptic_curve::sec1::ToSec1Point;
        hex::encode(&k.public_key().to_sec1_point(false).as_bytes()[1..33])
    }

    #[test]
    fn owner_keys_read_in_every_documented_form() {
        use p256::pkcs8::EncodePrivateKey;
        let key = scalar(RFC6979_P256_X).unwrap();
        assert_eq!(ux(&key), RFC6979_P256_UX);
        let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let sec1 = key.to_sec1_der().unwrap();
        let keyfile = KeyFile::of(
            &chipledger_types::keys::SigningKey::p256_from_bytes(
                &hex::decode(RFC6979_P256_X).unwrap().try_into().unwrap(),
            )
            .unwrap(),
        );
        let forms = [
            format!("{RFC6979_P256_X}\n"),
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                b64(pkcs8.as_bytes())
            ),
            format!(
                "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
                b64(&sec1)
            ),
            serde_json::to_string(&keyfile).unwrap(),
        ];
        for form in &forms {
            let parsed = parse_owner_key(form).unwrap_or_else(|e| panic!("{form}: {e:#}"));
            assert_eq!(ux(&parsed), RFC6979_P256_UX, "{form}");
        }
        for bad in [
            "00",
            &"00".repeat(32),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
            r#"{"kind":"ed25519","secret":"00","public":""}"#,
        ] {
            assert!(parse_owner_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_keys_are_16_bytes_of_hex() {
        assert!(parse_epoch_key(&"ab".repeat(16)).is_ok());
        for bad in ["", "ab", &"ab".repeat(17), &"zz".repeat(16)] {
            assert!(parse_epoch_key(bad).is_err(), "{bad}");
        }
    }
}
