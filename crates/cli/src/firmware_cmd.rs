//! `chipledger firmware …`: firmware provenance from the command line — publisher keys, SUIT
//! releases (the envelope is built and signed here, the image uploaded to the node's blob
//! store), withdrawal, certification, CVE reports, fleet policies, rollouts (hawkBit controls,
//! LwM2M progress, device-attested installs), and the read side: release/rollout status, CVE
//! exposure, and a device's firmware with its proof checked locally against a checkpoint
//! cosigned by a quorum of the validators named in the genesis file.
//!
//! Every command prints a human summary, or one JSON object with `--json`. A refused
//! transaction fails with its typed error code (`refused: <code>: <message>`).
//!
//! The firmware signing key (`--key PEM`, PKCS#8 P-256) is the publisher's SUIT key; the
//! organisation's transaction key is `--org-key FILE` (a `chipledger keys gen` key file).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_device::chip::{Chip, Firmware, SoftChip};
use chipledger_device::suit::{self, ReleaseSpec, class_id_for_model, vendor_id_for_org};
use chipledger_node::api::TxStatusBody;
use chipledger_node::api_firmware::{
    DeviceFirmwareBody, ExposureBody, ReleaseDetail, ReleaseList, RolloutDetail, verify_device_firmware,
};
use chipledger_node::config::{GenesisFile, KeyFile};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{
    ApproveRollout, AttestInstall, CertStatus, Certify, ControlRollout, CreateRollout, P256_SEC1_UNCOMPRESSED_BYTES,
    PublishRelease, RegisterFirmwareKey, RejectRollout, ReleaseId, ReportProgress, ReportVulnerability, RolloutAction,
    SetFleetPolicy, UpdateResult, UpdateState, WithdrawRelease,
};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, TxHash};
use clap::{Args, Subcommand};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};

use crate::client::{Client, DEFAULT_API};
use crate::device_cmd::{WAIT_FINAL, chip_device_id, claims, parse_device_id};
use crate::txcmd::{build, wait_final};

/// Largest PEM key file read.
pub const MAX_PEM_BYTES: u64 = 16 * 1024;
/// Largest firmware image read (the node's blob store limit).
pub const MAX_IMAGE_BYTES: u64 = 16 * 1024 * 1024;
/// How long a read waits for the newest checkpoint to become final (HTTP 503 `retry`).
pub const RETRY_FINAL: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct FirmwareArgs {
    #[command(subcommand)]
    pub command: FirmwareCommand,
}

/// Who signs a firmware transaction, and where it goes.
#[derive(Debug, Clone, Args)]
pub struct FwSigner {
    /// Validator API.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Signing organisation.
    #[arg(long)]
    pub org: String,
    /// The organisation's transaction key file (`chipledger keys gen`).
    #[arg(long, value_name = "FILE")]
    pub org_key: PathBuf,
    /// One JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

/// Where a read goes.
#[derive(Debug, Clone, Args)]
pub struct Reader {
    /// Validator API.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// One JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FirmwareCommand {
    /// Generate a P-256 firmware signing key: PKCS#8 PEM (0600) and its public key PEM.
    KeyGen {
        #[arg(long, value_name = "PEM")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Register the publisher's firmware signing key (PEM PKCS#8 private or SPKI public key).
    KeyRegister {
        #[command(flatten)]
        signer: FwSigner,
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
    },
    /// Build and sign the SUIT envelope for an image, publish the release, upload the image.
    Publish(PublishArgs),
    /// Withdraw a release (the publisher signs); it stays on the ledger, marked invalid.
    Withdraw {
        #[command(flatten)]
        signer: FwSigner,
        /// Hex release id.
        release: String,
        #[arg(long)]
        reason: String,
    },
    /// Record a certification verdict on a release (an auditor signs).
    Certify {
        #[command(flatten)]
        signer: FwSigner,
        /// Hex release id.
        release: String,
        #[arg(long, default_value = "certified", value_parser = ["certified", "provisional", "revoked"])]
        status: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Vulnerability reports.
    Vuln {
        #[command(subcommand)]
        command: VulnCommand,
    },
    /// Fleet rollout policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Rollouts: create, approve/reject, start/pause/resume/cancel, report device progress.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
    /// Boot a chip with the release image and submit its install evidence (`AttestInstall`).
    Install(InstallArgs),
    /// A release (certification, CVEs, devices), a rollout (`--rollout`), or every release.
    Status {
        /// Hex release id.
        release: Option<String>,
        /// Hex rollout id.
        #[arg(long, conflicts_with = "release")]
        rollout: Option<String>,
        #[command(flatten)]
        reader: Reader,
    },
    /// Exactly the devices running a release affected by a CVE (and how many are unknown).
    Exposure {
        /// CVE id, e.g. CVE-2024-0001.
        cve: String,
        #[command(flatten)]
        reader: Reader,
    },
    /// Which release a device runs (and, with --cve, whether it is exposed), with proofs.
    Device {
        /// Hex device id.
        id: String,
        #[arg(long)]
        cve: Option<String>,
        /// Check the proofs locally against a checkpoint cosigned by a quorum of the validators
        /// in --genesis; exit 1 if they do not verify.
        #[arg(long, requires = "genesis")]
        verify: bool,
        /// The network's genesis.json (the trust anchors).
        #[arg(long, value_name = "FILE")]
        genesis: Option<PathBuf>,
        #[command(flatten)]
        reader: Reader,
    },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub signer: FwSigner,
    /// The firmware image.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Semantic version.
    #[arg(long)]
    pub version: String,
    /// Hardware models, comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub model: Vec<u32>,
    /// SUIT manifest sequence number: the security version (anti-rollback).
    #[arg(long)]
    pub sequence: u64,
    /// Lowest installed version the release applies over.
    #[arg(long)]
    pub min: String,
    /// Highest installed version the release applies over.
    #[arg(long)]
    pub max: String,
    /// CVE ids the release fixes, comma separated.
    #[arg(long, value_delimiter = ',')]
    pub fixes: Vec<String>,
    /// The publisher's firmware signing key (PEM PKCS#8 P-256).
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// Where devices fetch the image (SUIT `uri` parameter).
    #[arg(long)]
    pub uri: Option<String>,
    /// Another node API to upload the image to (repeatable): each node's blob store serves
    /// devices on its own, so a device can download from any of them.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum VulnCommand {
    /// Report a CVE against releases (a publisher or auditor signs).
    Report {
        #[command(flatten)]
        signer: FwSigner,
        #[arg(long)]
        cve: String,
        /// Affected hex release ids, comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        releases: Vec<String>,
        #[arg(long, default_value = "")]
        note: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Set the signing owner's fleet policy: who approves rollouts, and how many must.
    Set {
        #[command(flatten)]
        signer: FwSigner,
        #[arg(long)]
        fleet: String,
        #[arg(long, value_delimiter = ',', required = true)]
        approvers: Vec<String>,
        #[arg(long)]
        threshold: u32,
        /// Only a release whose latest certification is `certified` can become ready.
        #[arg(long)]
        require_certified: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Propose a rollout of a release to the signing owner's fleet.
    Create {
        #[command(flatten)]
        signer: FwSigner,
        #[arg(long)]
        fleet: String,
        /// Hex release id.
        #[arg(long)]
        release: String,
        /// A subset of the release's models (default: all).
        #[arg(long, value_delimiter = ',')]
        models: Vec<u32>,
        #[arg(long, default_value_t = 60)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        wave: u32,
        /// Pause when more than this percentage of finished devices failed.
        #[arg(long, default_value_t = 20)]
        abort_pct: u8,
    },
    /// Approve a rollout (an approver of the fleet policy signs).
    Approve(RolloutRef),
    /// Reject a rollout; one rejection denies it.
    Reject {
        #[command(flatten)]
        r: RolloutRef,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Start a ready rollout (hawkBit `running`).
    Start(RolloutRef),
    /// Pause a running rollout (hawkBit `paused`).
    Pause(RolloutRef),
    /// Resume a paused rollout (hawkBit `running`).
    Resume(RolloutRef),
    /// Cancel a rollout (hawkBit `stopped`).
    Cancel(RolloutRef),
    /// Report a device's LwM2M state and update result (the fleet owner signs).
    Progress {
        #[command(flatten)]
        r: RolloutRef,
        #[arg(long)]
        device: String,
        /// LwM2M /5/0/3: Idle, Downloading, Downloaded, Updating.
        #[arg(long)]
        state: String,
        /// LwM2M /5/0/5 update result code 0..=9.
        #[arg(long, default_value_t = 0)]
        result: u8,
    },
}

#[derive(Debug, Args)]
pub struct RolloutRef {
    #[command(flatten)]
    pub signer: FwSigner,
    /// Hex rollout id.
    pub rollout: String,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Submitting organisation (anyone may submit a device's evidence).
    #[command(flatten)]
    pub signer: FwSigner,
    #[arg(long)]
    pub rollout: String,
    #[arg(long)]
    pub device: String,
    /// The chip file (from `device provision`).
    #[arg(long, value_name = "FILE")]
    pub chip: PathBuf,
    /// The release image the chip boots (its SHA-256 is the measurement).
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    #[arg(long, default_value = "chipledger-fw")]
    pub fw_name: String,
}

// ---- building blocks (public: the tests and the demo use them) -------------------------------

/// Read at most `max` bytes of a file (a larger file is an error, not truncated).
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    if len > max {
        bail!("{} is {len} bytes; the limit is {max}", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The DER inside the first PEM block labelled `label` (RFC 7468).
fn pem_der(text: &str, label: &str) -> Result<Vec<u8>> {
    use base64::Engine as _;
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .with_context(|| format!("key file has no \"{begin}\" block"))?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .context("PEM body is not base64")
}

/// `der` as a PEM block labelled `label` (64-column base64 lines).
fn pem_encode(der: &[u8], label: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn read_pem(path: &Path) -> Result<String> {
    String::from_utf8(read_limited(path, MAX_PEM_BYTES)?).context("key file is not PEM text")
}

/// A P-256 firmware signing key from a PEM PKCS#8 file.
pub fn read_signing_key(path: &Path) -> Result<p256::ecdsa::SigningKey> {
    let der = pem_der(&read_pem(path)?, "PRIVATE KEY")?;
    p256::ecdsa::SigningKey::from_pkcs8_der(&der)
        .map_err(|e| anyhow::anyhow!("{} is not a P-256 PKCS#8 private key: {e}", path.display()))
}

/// The public key of a PEM file holding a PKCS#8 private key or an SPKI public key.
pub fn read_verifying_key(path: &Path) -> Result<p256::ecdsa::VerifyingKey> {
    use p256::pkcs8::DecodePublicKey;
    let text = read_pem(path)?;
    if text.contains("PRIVATE KEY") {
        return Ok(*read_signing_key(path)?.verifying_key());
    }
    let der = pem_der(&text, "PUBLIC KEY")?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der)
        .map_err(|e| anyhow::anyhow!("{} is not a P-256 public key: {e}", path.display()))
}

/// Write `key` as PKCS#8 PEM (mode 0600) to `out` and its SPKI PEM next to it (`.pub.pem`).
pub fn write_signing_key(key: &p256::ecdsa::SigningKey, out: &Path) -> Result<PathBuf> {
    let public_path = out.with_extension("pub.pem");
    for p in [out, public_path.as_path()] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite a key", p.display());
        }
    }
    let private = key.to_pkcs8_der().context("encoding the key")?;
    let public = key
        .verifying_key()
        .to_public_key_der()
        .context("encoding the public key")?;
    write_secret(out, pem_encode(private.as_bytes(), "PRIVATE KEY").as_bytes())?;
    std::fs::write(&public_path, pem_encode(public.as_bytes(), "PUBLIC KEY"))
        .with_context(|| format!("writing {}", public_path.display()))?;
    Ok(public_path)
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// `RegisterFirmwareKey` for `key`.
pub fn register_key_payload(key: &p256::ecdsa::VerifyingKey) -> Result<Payload> {
    let point = key.to_sec1_point(false);
    let key_sec1: [u8; P256_SEC1_UNCOMPRESSED_BYTES] =
        point.as_bytes().try_into().context("not an uncompressed P-256 point")?;
    Ok(Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1 }))
}

/// What a release is made of, before signing.
#[derive(Debug, Clone)]
pub struct ReleaseInput<'a> {
    pub publisher: &'a str,
    pub image: &'a [u8],
    pub version: &'a str,
    pub models: &'a [u32],
    pub sequence: u64,
    pub min_applicable: &'a str,
    pub max_applicable: &'a str,
    pub fixes: &'a [String],
    pub uri: Option<&'a str>,
}

/// The SUIT envelope (signed by `key`) and `PublishRelease` for `r`, with the release id.
pub fn publish_payload(r: &ReleaseInput<'_>, key: &p256::ecdsa::SigningKey) -> Result<(ReleaseId, Payload)> {
    let spec = ReleaseSpec {
        sequence_number: r.sequence,
        vendor_id: vendor_id_for_org(r.publisher),
        class_ids: r.models.iter().map(|m| class_id_for_model(*m)).collect(),
        image_digest_sha256: Sha256::digest(r.image).into(),
        image_size: r.image.len() as u64,
        uri: r.uri.map(str::to_string),
    };
    let envelope = suit::build_envelope(&spec, key);
    let id = suit::decode_envelope_unverified(&envelope)
        .ok()
        .and_then(|m| m.manifest_digest.sha256())
        .map(ReleaseId)
        .context("the envelope just built does not decode")?;
    let payload = Payload::PublishRelease(PublishRelease {
        envelope,
        version: r.version.into(),
        models: r.models.to_vec(),
        min_applicable: r.min_applicable.into(),
        max_applicable: r.max_applicable.into(),
        fixes: r.fixes.to_vec(),
    });
    Ok((id, payload))
}

/// Boot `image` (release `version`, security version `svn`) on `chip` (hardware model
/// `model`) and build `AttestInstall` for `rollout`, answering `nonce`.
pub fn install_payload(
    chip: &mut SoftChip,
    model: u32,
    firmware: &Firmware<'_>,
    rollout: TxHash,
    nonce: &[u8],
) -> Result<Payload> {
    let layer = chip.boot(firmware)?;
    let eat = chip.sign_eat(&claims(chip, model, firmware, nonce))?;
    Ok(Payload::AttestInstall(AttestInstall {
        device: chip_device_id(chip),
        rollout,
        alias_cert_der: layer.alias_cert_der,
        eat,
    }))
}

fn parse32(s: &str, what: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("'{s}' is not a {what} (64 hex characters)"))
}

pub fn parse_release(s: &str) -> Result<ReleaseId> {
    parse32(s, "release id").map(ReleaseId)
}

pub fn parse_rollout(s: &str) -> Result<TxHash> {
    parse32(s, "rollout id").map(TxHash)
}

/// Sign `payload` as `org`, submit and wait until final. A refusal at admission or in the
/// block is an error naming its typed code.
pub fn submit_typed(client: &Client, org: &str, key: &SigningKey, payload: Payload) -> Result<TxStatusBody> {
    let tx = build(client, org, key, None, 1000, payload)?;
    let sub = match client.try_submit(&tx)? {
        Ok(s) => s,
        Err(e) => bail!("refused: {}: {}", e.error, e.message),
    };
    let s = wait_final(client, &sub.hash, WAIT_FINAL)?;
    if s.status != "final" {
        bail!("refused: {}", s.reason.as_deref().unwrap_or("rejected"));
    }
    Ok(s)
}

fn sign_and_report(signer: &FwSigner, payload: Payload, what: &str, extra: serde_json::Value) -> Result<TxStatusBody> {
    let client = Client::new(&signer.api)?;
    let key = KeyFile::read(&signer.org_key)?;
    let s = submit_typed(&client, &signer.org, &key, payload)?;
    let height = s.height.unwrap_or_default();
    if signer.json {
        let mut out = serde_json::json!({ "tx": s.hash, "height": height, "status": s.status });
        if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        println!("{out}");
    } else {
        println!("{what}: final at height {height} (tx {})", s.hash);
    }
    Ok(s)
}

/// GET `path`, retrying while the node answers `retry` (a checkpoint still collecting
/// signatures).
pub fn get_final<T: serde::de::DeserializeOwned>(client: &Client, path: &str) -> Result<T> {
    let start = Instant::now();
    loop {
        match client.get_json(path) {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() < RETRY_FINAL && format!("{e:#}").contains("retry") => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    }
}

// ---- commands ----------------------------------------------------------------------------------

pub fn run(a: FirmwareArgs) -> Result<()> {
    match a.command {
        FirmwareCommand::KeyGen { out, json } => key_gen(&out, json),
        FirmwareCommand::Publish(p) => publish(&p),
        FirmwareCommand::Rollout { command } => rollout(command),
        FirmwareCommand::Install(i) => install(&i),
        FirmwareCommand::Status {
            release,
            rollout,
            reader,
        } => status(&reader, release.as_deref(), rollout.as_deref()),
        FirmwareCommand::Exposure { cve, reader } => exposure(&reader, &cve),
        FirmwareCommand::Device {
            id,
            cve,
            verify,
            genesis,
            reader,
        } => device(&reader, &id, cve.as_deref(), genesis.as_deref().filter(|_| verify)),
        other => {
            let t = simple_tx(other)?;
            sign_and_report(&t.signer, t.payload, &t.what, t.extra).map(drop)
        }
    }
}

/// A one-transaction command: who signs, what, and how to report it.
struct SimpleTx {
    signer: FwSigner,
    payload: Payload,
    what: String,
    extra: serde_json::Value,
}

fn simple_tx(c: FirmwareCommand) -> Result<SimpleTx> {
    let (signer, payload, what) = match c {
        FirmwareCommand::KeyRegister { signer, key } => {
            let public = read_verifying_key(&key)?;
            let id = chipledger_state::firmware::firmware_key_id(&public);
            let what = format!("firmware key {id} registered for '{}'", signer.org);
            let extra = serde_json::json!({ "key_id": id.to_string() });
            let payload = register_key_payload(&public)?;
            return Ok(SimpleTx {
                signer,
                payload,
                what,
                extra,
            });
        }
        FirmwareCommand::Withdraw {
            signer,
            release,
            reason,
        } => {
            let release = parse_release(&release)?;
            let what = format!("release {release} withdrawn");
            (
                signer,
                Payload::WithdrawRelease(WithdrawRelease { release, reason }),
                what,
            )
        }
        FirmwareCommand::Certify {
            signer,
            release,
            status,
            note,
        } => {
            let release = parse_release(&release)?;
            let status = CertStatus::from_name(&status).context("unknown certification status")?;
            let what = format!("release {release} {}", status.name());
            (signer, Payload::Certify(Certify { release, status, note }), what)
        }
        FirmwareCommand::Vuln {
            command:
                VulnCommand::Report {
                    signer,
                    cve,
                    releases,
                    note,
                },
        } => {
            let affected = releases.iter().map(|r| parse_release(r)).collect::<Result<Vec<_>>>()?;
            let what = format!("{cve} reported against {} release(s)", affected.len());
            let p = ReportVulnerability { cve, affected, note };
            (signer, Payload::ReportVulnerability(p), what)
        }
        FirmwareCommand::Policy {
            command:
                PolicyCommand::Set {
                    signer,
                    fleet,
                    approvers,
                    threshold,
                    require_certified,
                },
        } => {
            let what = format!("fleet '{fleet}': {threshold} of {}", approvers.join(", "));
            let p = SetFleetPolicy {
                fleet,
                approvers,
                threshold,
                require_certified,
            };
            (signer, Payload::SetFleetPolicy(p), what)
        }
        other => bail!("not a one-transaction command: {other:?}"),
    };
    Ok(SimpleTx {
        signer,
        payload,
        what,
        extra: serde_json::json!({}),
    })
}

fn key_gen(out: &Path, json: bool) -> Result<()> {
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let key = p256::ecdsa::SigningKey::from_bytes(&secret.into()).context("random P-256 scalar out of range")?;
    let public = write_signing_key(&key, out)?;
    let id = chipledger_state::firmware::firmware_key_id(key.verifying_key());
    if json {
        println!(
            "{}",
            serde_json::json!({ "key": out, "public": public, "key_id": id.to_string() })
        );
    } else {
        println!("firmware key {id} → {} (public {})", out.display(), public.display());
    }
    Ok(())
}

fn publish(p: &PublishArgs) -> Result<()> {
    let key = read_signing_key(&p.key)?;
    let image = read_limited(&p.image, MAX_IMAGE_BYTES)?;
    let input = ReleaseInput {
        publisher: &p.signer.org,
        image: &image,
        version: &p.version,
        models: &p.model,
        sequence: p.sequence,
        min_applicable: &p.min,
        max_applicable: &p.max,
        fixes: &p.fixes,
        uri: p.uri.as_deref(),
    };
    let (id, payload) = publish_payload(&input, &key)?;
    let client = Client::new(&p.signer.api)?;
    let org_key = KeyFile::read(&p.signer.org_key)?;
    let s = submit_typed(&client, &p.signer.org, &org_key, payload)?;
    let mut apis = vec![p.signer.api.clone()];
    apis.extend(p.mirrors.iter().cloned());
    let stored = upload_image_to_all(&apis, &image)?;
    let uploaded = stored > 0;
    let digest = hex::encode(Sha256::digest(&image));
    if p.signer.json {
        println!(
            "{}",
            serde_json::json!({ "tx": s.hash, "height": s.height, "status": s.status, "release": id.to_string(),
                "image_digest": digest, "image_uploaded": uploaded, "image_stored_on": stored })
        );
    } else {
        println!(
            "release {id} ({} {}, security version {}) final at height {} (tx {})\n  image sha256 {digest}: {}",
            p.signer.org,
            p.version,
            p.sequence,
            s.height.unwrap_or_default(),
            s.hash,
            if uploaded {
                format!("stored by {stored} of {} node blob store(s)", apis.len())
            } else {
                "not uploaded (no node keeps a blob store)".to_string()
            }
        );
    }
    Ok(())
}

/// PUT the image to the blob store of the node at `api`; `false` when the node keeps none.
/// A node that does not know the release yet (HTTP 404: not final there) is retried for
/// [`RETRY_FINAL`].
pub fn upload_image(api: &str, image: &[u8]) -> Result<bool> {
    let url = format!("{}/v1/blobs", api.trim_end_matches('/'));
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let start = Instant::now();
    loop {
        let resp = http
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body(image.to_vec())
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        match resp.status().as_u16() {
            200..=299 => return Ok(true),
            503 | 405 => return Ok(false),
            404 if start.elapsed() < RETRY_FINAL => std::thread::sleep(Duration::from_millis(200)),
            code => bail!(
                "uploading the image to {url}: HTTP {code}: {}",
                resp.text().unwrap_or_default()
            ),
        }
    }
}

/// Upload the image to every node in `apis` (each serves devices on its own); how many keep
/// a blob store and stored it.
pub fn upload_image_to_all(apis: &[String], image: &[u8]) -> Result<usize> {
    let mut stored = 0;
    for api in apis {
        stored += usize::from(upload_image(api, image)?);
    }
    Ok(stored)
}

fn rollout(c: RolloutCommand) -> Result<()> {
    let (r, payload, what) = match c {
        RolloutCommand::Create { .. } => return create_rollout(c),
        RolloutCommand::Approve(r) => {
            let rollout = parse_rollout(&r.rollout)?;
            let what = format!("rollout {rollout} approved by '{}'", r.signer.org);
            (r, Payload::ApproveRollout(ApproveRollout { rollout }), what)
        }
        RolloutCommand::Reject { r, reason } => {
            let rollout = parse_rollout(&r.rollout)?;
            let what = format!("rollout {rollout} rejected");
            (r, Payload::RejectRollout(RejectRollout { rollout, reason }), what)
        }
        RolloutCommand::Start(r) => control(r, RolloutAction::Start)?,
        RolloutCommand::Pause(r) => control(r, RolloutAction::Pause)?,
        RolloutCommand::Resume(r) => control(r, RolloutAction::Resume)?,
        RolloutCommand::Cancel(r) => control(r, RolloutAction::Cancel)?,
        RolloutCommand::Progress {
            r,
            device,
            state,
            result,
        } => {
            let (payload, what) = progress_payload(&r.rollout, &device, &state, result)?;
            (r, payload, what)
        }
    };
    sign_and_report(&r.signer, payload, &what, serde_json::json!({})).map(drop)
}

/// `ControlRollout` for a hawkBit control.
fn control(r: RolloutRef, action: RolloutAction) -> Result<(RolloutRef, Payload, String)> {
    let rollout = parse_rollout(&r.rollout)?;
    let what = format!("rollout {rollout}: {}", action.name());
    Ok((r, Payload::ControlRollout(ControlRollout { rollout, action }), what))
}

/// `ReportProgress` from the command line's LwM2M state name and result code.
fn progress_payload(rollout: &str, device: &str, state: &str, result: u8) -> Result<(Payload, String)> {
    let rollout = parse_rollout(rollout)?;
    let device = parse_device_id(device)?;
    let state = UpdateState::from_name(state).context("state must be Idle, Downloading, Downloaded or Updating")?;
    let result = UpdateResult::ALL
        .iter()
        .copied()
        .find(|x| *x as u8 == result)
        .context("update result must be an LwM2M code 0..=9")?;
    let what = format!("device {device}: {} / {}", state.name(), result.name());
    let p = ReportProgress {
        rollout,
        device,
        state,
        result,
    };
    Ok((Payload::ReportProgress(p), what))
}

fn create_rollout(c: RolloutCommand) -> Result<()> {
    let RolloutCommand::Create {
        signer,
        fleet,
        release,
        models,
        rate,
        wave,
        abort_pct,
    } = c
    else {
        bail!("not a rollout creation");
    };
    let release = parse_release(&release)?;
    let p = Payload::CreateRollout(CreateRollout {
        fleet: fleet.clone(),
        release,
        models,
        rate_devices_per_min: rate,
        wave_size: wave,
        abort_failure_pct: abort_pct,
    });
    let client = Client::new(&signer.api)?;
    let key = KeyFile::read(&signer.org_key)?;
    let s = submit_typed(&client, &signer.org, &key, p)?;
    if signer.json {
        let out = serde_json::json!({ "tx": s.hash, "height": s.height, "status": s.status, "rollout": s.hash });
        println!("{out}");
    } else {
        println!(
            "rollout {} of {release} to fleet '{fleet}' created (waiting for approval)",
            s.hash
        );
    }
    Ok(())
}

fn install(a: &InstallArgs) -> Result<()> {
    let device = parse_device_id(&a.device)?;
    let rollout = parse_rollout(&a.rollout)?;
    let mut chip = SoftChip::load(&a.chip)?;
    if chip_device_id(&chip) != device {
        bail!(
            "{} holds device {}, not {device}",
            a.chip.display(),
            chip_device_id(&chip)
        );
    }
    let image = read_limited(&a.image, MAX_IMAGE_BYTES)?;
    let client = Client::new(&a.signer.api)?;
    let r: RolloutDetail = client.get_json(&format!("/v1/firmware/rollouts/{rollout}"))?;
    let release: ReleaseDetail = client.get_json(&format!("/v1/firmware/releases/{}", r.rollout.release))?;
    let firmware = Firmware {
        name: &a.fw_name,
        version: &release.release.version,
        svn: release.release.security_version,
        image: &image,
    };
    let model = client.device(&a.device)?.model;
    let nonce = hex::decode(client.challenge(&a.device)?.nonce).context("the node sent a non-hex nonce")?;
    let payload = install_payload(&mut chip, model, &firmware, rollout, &nonce)?;
    let what = format!(
        "device {device} proved release {} ({})",
        release.release.id, release.release.version
    );
    sign_and_report(
        &a.signer,
        payload,
        &what,
        serde_json::json!({ "device": device.to_string() }),
    )
    .map(drop)
}

fn status(r: &Reader, release: Option<&str>, rollout: Option<&str>) -> Result<()> {
    let client = Client::new(&r.api)?;
    if let Some(id) = rollout {
        let d: RolloutDetail = client.get_json(&format!("/v1/firmware/rollouts/{}", parse_rollout(id)?))?;
        return print_json_or(r.json, &d, || print_rollout(&d));
    }
    if let Some(id) = release {
        let d: ReleaseDetail = client.get_json(&format!("/v1/firmware/releases/{}", parse_release(id)?))?;
        return print_json_or(r.json, &d, || print_release(&d));
    }
    let list: ReleaseList = client.get_json("/v1/firmware/releases")?;
    print_json_or(r.json, &list, || {
        println!("{} release(s) at height {}", list.releases.len(), list.at.height);
        for rel in &list.releases {
            let n = list.devices_per_release.get(&rel.id).copied().unwrap_or(0);
            let w = if rel.withdrawn.is_some() { " WITHDRAWN" } else { "" };
            println!(
                "  {} {:<10} {:<10} svn {:<4} models {:?} devices {n}{w}",
                rel.id, rel.publisher, rel.version, rel.security_version, rel.models
            );
        }
    })
}

fn print_json_or<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce()) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        human();
    }
    Ok(())
}

fn print_release(d: &ReleaseDetail) {
    let r = &d.release;
    println!("release {} (height {})", r.id, d.at.height);
    println!(
        "  {} {} security version {}, models {:?}",
        r.publisher, r.version, r.security_version, r.models
    );
    println!("  applies over {} ..= {}", r.min_applicable, r.max_applicable);
    println!("  image sha256 {} ({} bytes)", r.image_digest, r.image_size);
    println!(
        "  fixes: {}",
        if r.fixes.is_empty() {
            "-".into()
        } else {
            r.fixes.join(", ")
        }
    );
    println!(
        "  affected by: {}",
        if d.vulnerabilities.is_empty() {
            "-".into()
        } else {
            d.vulnerabilities.join(", ")
        }
    );
    match &d.certification {
        Some(c) => println!("  certification: {} ({} verdicts)", c.status, c.history.len()),
        None => println!("  certification: none"),
    }
    if let Some(w) = &r.withdrawn {
        println!("  WITHDRAWN at height {}: {}", w.height, w.reason);
    }
    println!("  devices running it: {}", d.devices);
}

fn print_rollout(d: &RolloutDetail) {
    let r = &d.rollout;
    println!("rollout {} (height {})", r.id, d.at.height);
    println!(
        "  {} fleet '{}' → release {} ({})",
        r.owner, r.fleet, r.release, r.version
    );
    println!(
        "  status: {}  approvals: {} of {} [{}]",
        r.status,
        r.approvals.len(),
        r.threshold,
        r.approvals.join(", ")
    );
    let c = &r.counts;
    println!(
        "  devices: {} targeted; downloading {} downloaded {} updating {} succeeded {} failed {}; attested {}",
        r.target_devices, c.downloading, c.downloaded, c.updating, c.succeeded, c.failed, r.attested
    );
    for p in &d.devices {
        println!("    {} {:<12} {} ({})", p.device, p.state, p.result, p.result_text);
    }
}

fn exposure(r: &Reader, cve: &str) -> Result<()> {
    let client = Client::new(&r.api)?;
    let e: ExposureBody = client.get_json(&format!("/v1/firmware/exposure?cve={cve}"))?;
    print_json_or(r.json, &e, || {
        println!(
            "{cve}: {} exposed device(s) at height {} ({} with unknown firmware)",
            e.count, e.at.height, e.unknown_firmware
        );
        for d in &e.devices {
            println!("  {} runs {} ({})", d.device, d.version, d.release);
        }
    })
}

fn device(r: &Reader, id: &str, cve: Option<&str>, genesis: Option<&Path>) -> Result<()> {
    let device: DeviceId = parse_device_id(id)?;
    let client = Client::new(&r.api)?;
    let path = match cve {
        Some(c) => format!("/v1/firmware/devices/{device}?cve={c}"),
        None => format!("/v1/firmware/devices/{device}"),
    };
    let body: DeviceFirmwareBody = get_final(&client, &path)?;
    let verified = match genesis {
        None => None,
        Some(g) => Some(verify_with_genesis(&body, &device, g)?),
    };
    if r.json {
        let mut v = serde_json::to_value(&body)?;
        v["verified"] = serde_json::json!(verified.is_some());
        println!("{v}");
    } else {
        print_device(&body, verified.as_ref());
    }
    Ok(())
}

/// Verify a device-firmware answer with the validator keys of the genesis file at `genesis`.
pub fn verify_with_genesis(
    body: &DeviceFirmwareBody,
    device: &DeviceId,
    genesis: &Path,
) -> Result<chipledger_node::api_firmware::VerifiedDeviceFirmware> {
    let g = GenesisFile::read(genesis)?;
    let keys: Vec<_> = g
        .validators
        .iter()
        .filter_map(|v| chipledger_node::checkpoints::verifier_for(&v.name, &v.note_key))
        .collect();
    verify_device_firmware(body, device, &g.log_origin(), &keys, g.quorum())
        .map_err(|e| anyhow::anyhow!("invalid: {e}"))
}

fn print_device(b: &DeviceFirmwareBody, verified: Option<&chipledger_node::api_firmware::VerifiedDeviceFirmware>) {
    println!("device {} (state height {})", b.device, b.state_height);
    match &b.installed {
        Some(i) => println!(
            "  runs {} ({}), security version {}, attested at height {}",
            i.version, i.release, i.security_version, i.height
        ),
        None => println!("  firmware unknown: no attested install"),
    }
    if let Some(e) = &b.exposure {
        println!("  {}: {}", e.cve, if e.exposed { "EXPOSED" } else { "not exposed" });
    }
    for h in &b.history {
        println!(
            "    height {:<6} {} ({}) via rollout {}",
            h.height, h.version, h.release, h.rollout
        );
    }
    match verified {
        Some(v) => println!(
            "  verified: proofs check against the checkpoint at height {} ({} validator signatures)",
            v.state_height, v.signers
        ),
        None => println!("  not verified (pass --verify --genesis FILE)"),
    }
}
