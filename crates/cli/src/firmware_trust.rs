//! What a device (or a tool acting for one) needs to check an update against the network:
//! its [`UpdateTrust`] built from the genesis file's validator cosigning keys, and the
//! downloads it verifies — the update bundle (`GET /v1/firmware/releases/{id}/bundle`) and the
//! image (`GET /v1/blobs/{sha256}`), hashed as it arrives. Nothing here decides whether an
//! update is acceptable: that is `chipledger_device::update::verify_update`.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use chipledger_device::update::{
    ImageDigest, ImageHasher, MAX_BUNDLE_BYTES, TrustedValidator, UpdateBundle, UpdateError, UpdateTrust,
};
use chipledger_node::api::ErrorBody;
use chipledger_node::api_firmware::DeviceFirmwareBody;
use chipledger_node::blob_store::MAX_BLOB_BYTES;
use chipledger_node::checkpoints::verifier_for;
use chipledger_node::config::GenesisFile;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{ApprovalRecord, InstalledFirmware, ReleaseId, ReleaseRecord};
use chipledger_types::genesis::Genesis;
use p256::ecdsa::VerifyingKey;

use crate::client::Client;
use crate::firmware_cmd::{get_final, verify_with_genesis};

/// How long a download waits while the node's newest block is still collecting checkpoint
/// signatures (the node answers 503 `retry`).
pub const DOWNLOAD_RETRY_MAX: Duration = Duration::from_secs(30);
/// Pause between two such attempts.
const DOWNLOAD_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Timeout of one download request.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes read (and hashed) per step while a download streams in.
const IMAGE_CHUNK_BYTES: usize = 16 * 1024;
/// Largest error answer read from a node.
const MAX_ERROR_BYTES: usize = 4 * 1024;
/// Decoding bounds of the records a bundle carries (the device's own bounds).
const RECORD_LIMITS: Limits = Limits {
    input_bytes_max: 16 * 1024,
    string_bytes_max: 4 * 1024,
    array_items_max: 256,
    depth_max: 8,
};

/// Why a download from a node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DownloadError {
    /// The node answered with a typed error, e.g. 404 `not_found` for a release that is not
    /// approved for the owner.
    #[error("{url} answered HTTP {status} {}: {}", .body.error, .body.message)]
    Refused { url: String, status: u16, body: ErrorBody },
    #[error("{url} answered HTTP {status}: {text}")]
    Http { url: String, status: u16, text: String },
    #[error("'{url}' is not a node's base URL: {why}")]
    BadUrl { url: String, why: String },
    #[error("cannot reach {url}: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("the image from {url} is larger than {max} bytes")]
    TooLarge { url: String, max: usize },
    #[error("reading {url}: {source}")]
    Read { url: String, source: std::io::Error },
    #[error("the bundle from {url} does not decode: {source}")]
    Bundle { url: String, source: UpdateError },
}

impl DownloadError {
    /// The HTTP status the node answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            DownloadError::Refused { status, .. } | DownloadError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The validators of `genesis` as a device trusts them: each one's checkpoint-cosigning key,
/// in force from height 0. Later key rotations and set changes reach the device as
/// `ValidatorSetProof`s (`chipledger_device::update::apply_validator_update`).
pub fn genesis_validators(genesis: &Genesis) -> Result<Vec<TrustedValidator>> {
    genesis
        .validators
        .iter()
        .map(|v| {
            verifier_for(&v.name, &v.note_key)
                .map(TrustedValidator::new)
                .ok_or_else(|| anyhow!("validator {}: the note key is not a valid Ed25519 key", v.name))
        })
        .collect()
}

/// The trust a device of `model` owned by `owner`, running firmware of `security_version`, is
/// provisioned with: the log origin, validators and quorum (2f + 1) of `genesis`, and the
/// publisher keys it accepts SUIT manifests from. It has seen no checkpoint yet (height 0).
pub fn trust_from_genesis(
    genesis: &Genesis,
    publisher_keys: Vec<VerifyingKey>,
    model: u32,
    owner: &str,
    security_version: u64,
) -> Result<UpdateTrust> {
    Ok(UpdateTrust {
        origin: genesis.log_origin(),
        validators: genesis_validators(genesis)?,
        quorum: genesis.quorum(),
        publisher_keys,
        model,
        owner: owner.into(),
        security_version,
        checkpoint_height: 0,
    })
}

/// [`trust_from_genesis`] reading the genesis file at `path`.
pub fn trust_from_genesis_file(
    path: &Path,
    publisher_keys: Vec<VerifyingKey>,
    model: u32,
    owner: &str,
    security_version: u64,
) -> Result<UpdateTrust> {
    trust_from_genesis(
        &GenesisFile::read(path)?,
        publisher_keys,
        model,
        owner,
        security_version,
    )
}

/// The fleet-version-map entry of `device` (`None`: no attested install), proven against a
/// checkpoint cosigned by a quorum of the genesis validators, and the state height it is
/// proven at. Use its security version to (re)provision a device's anti-rollback floor.
pub fn proven_installed(
    client: &Client,
    genesis: &Path,
    device: &DeviceId,
) -> Result<(Option<InstalledFirmware>, u64)> {
    let body: DeviceFirmwareBody = get_final(client, &format!("/v1/firmware/devices/{device}"))?;
    let verified = verify_with_genesis(&body, device, genesis)?;
    Ok((verified.installed, verified.state_height))
}

/// Read at most `max` bytes of `resp`, passing each chunk to `on_chunk` as it arrives.
fn read_bounded(
    mut resp: reqwest::blocking::Response,
    url: &str,
    max: usize,
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<Vec<u8>, DownloadError> {
    let mut body = Vec::new();
    let mut chunk = vec![0u8; IMAGE_CHUNK_BYTES];
    loop {
        let n = resp.read(&mut chunk).map_err(|source| DownloadError::Read {
            url: url.into(),
            source,
        })?;
        if n == 0 {
            return Ok(body);
        }
        if body.len() + n > max {
            return Err(DownloadError::TooLarge { url: url.into(), max });
        }
        on_chunk(&chunk[..n]);
        body.extend_from_slice(&chunk[..n]);
    }
}

/// The typed error of a non-success answer.
fn refusal(resp: reqwest::blocking::Response, url: &str) -> DownloadError {
    let status = resp.status().as_u16();
    let text = match read_bounded(resp, url, MAX_ERROR_BYTES, |_| {}) {
        Ok(body) => String::from_utf8_lossy(&body).into_owned(),
        Err(e) => return e,
    };
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => DownloadError::Refused {
            url: url.into(),
            status,
            body,
        },
        Err(_) => DownloadError::Http {
            url: url.into(),
            status,
            text,
        },
    }
}

/// GET `url`; a success response, else the node's typed refusal. Retries while the node
/// answers 503 `retry` (a checkpoint still collecting signatures), up to [`DOWNLOAD_RETRY_MAX`].
fn get_ok(url: &str) -> Result<reqwest::blocking::Response, DownloadError> {
    let transport = |source| DownloadError::Transport {
        url: url.into(),
        source,
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .map_err(transport)?;
    let start = Instant::now();
    loop {
        let resp = client.get(url).send().map_err(transport)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let err = refusal(resp, url);
        let retry = matches!(&err, DownloadError::Refused { status: 503, body, .. } if body.error == "retry");
        if !retry || start.elapsed() >= DOWNLOAD_RETRY_MAX {
            return Err(err);
        }
        std::thread::sleep(DOWNLOAD_RETRY_PAUSE);
    }
}

/// Download the update bundle of `release` for a device owned by `owner` from the node at
/// `api` (base URL) and decode it within the device's limits ([`MAX_BUNDLE_BYTES`]). Not yet
/// verified: that is `verify_update`'s job.
pub fn download_bundle(api: &str, release: &ReleaseId, owner: &str) -> Result<UpdateBundle, DownloadError> {
    let base = api.trim_end_matches('/');
    let mut parsed = reqwest::Url::parse(&format!("{base}/v1/firmware/releases/{release}/bundle")).map_err(|e| {
        DownloadError::BadUrl {
            url: base.into(),
            why: e.to_string(),
        }
    })?;
    parsed.query_pairs_mut().append_pair("owner", owner);
    let url = String::from(parsed);
    let bytes = read_bounded(get_ok(&url)?, &url, MAX_BUNDLE_BYTES, |_| {})?;
    UpdateBundle::from_bytes(&bytes).map_err(|source| DownloadError::Bundle { url, source })
}

/// Download the image named by hex SHA-256 `digest` from the node at `api`, hashing it as it
/// streams in (at most [`MAX_BLOB_BYTES`]). Returns the bytes and the digest the device
/// computed itself; the node's name for the blob is not trusted.
pub fn download_image(api: &str, digest: &str) -> Result<(Vec<u8>, ImageDigest), DownloadError> {
    let url = format!("{}/v1/blobs/{digest}", api.trim_end_matches('/'));
    let mut hasher = ImageHasher::new();
    let image = read_bounded(get_ok(&url)?, &url, MAX_BLOB_BYTES, |chunk| hasher.update(chunk))?;
    Ok((image, hasher.finish()))
}

/// The release and approval records a bundle carries, decoded but *not verified*: read to
/// learn which image to download and which rollout to report the install against.
/// `verify_update` proves both against the checkpoint before anything is installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleRecords {
    pub release: ReleaseRecord,
    pub approval: ApprovalRecord,
}

impl BundleRecords {
    /// Decode both records of `bundle`; an error if either is absent or malformed.
    pub fn of(bundle: &UpdateBundle) -> Result<Self> {
        let decode = |value: &Option<Vec<u8>>, what: &str| -> Result<Vec<u8>> {
            value
                .clone()
                .ok_or_else(|| anyhow!("the bundle's {what} record is absent"))
        };
        let release = ReleaseRecord::from_cbor(&decode(&bundle.release.value, "release")?, RECORD_LIMITS)
            .map_err(|e| anyhow!("the bundle's release record: {e}"))?;
        let approval = ApprovalRecord::from_cbor(&decode(&bundle.approval.value, "approval")?, RECORD_LIMITS)
            .map_err(|e| anyhow!("the bundle's approval record: {e}"))?;
        Ok(Self { release, approval })
    }

    /// Hex SHA-256 of the release's image: its name in the nodes' blob store.
    pub fn image_name(&self) -> String {
        hex::encode(self.release.image_digest)
    }
}
