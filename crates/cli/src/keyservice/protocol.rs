//! The key-release protocol (issue 6), both sides: what a grantee signs and sends to
//! `POST /v1/keys/release`, what the owner's key service answers, and the grantee's client.
//!
//! The signed statement is canonical CBOR
//! `["chipledger/key-request/v1", grant: bstr .size 32, device: bstr .size 20, epochs: [+ uint],
//! recipient: bstr .size 65, issued_ms: uint]`, signed as every chipledger signature is
//! (`tag ‖ 0x00 ‖ body`, [`chipledger_types::keys::signed_message`]) by the grantee: one of the
//! grantee organisation's active keys, or the grantee's own key for a person grant. `recipient`
//! is the P-256 key (SEC1 uncompressed) the epoch keys are wrapped to; its SHA-256 is what the
//! ledger's `KeyRelease` records.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chipledger_device::seal::{EpochGrant, unwrap_epoch_key};
use chipledger_node::api::ErrorBody;
use chipledger_types::cbor::Encoder;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::{PublicKey, Signature, SigningKey};
use chipledger_types::tx::TxHash;
use p256::elliptic_curve::sec1::ToSec1Point;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain-separation tag of a key request (inside the signed CBOR and as the signature tag).
pub const TAG_KEY_REQUEST_V1: &str = "chipledger/key-request/v1";
/// The route of a release.
pub const RELEASE_PATH: &str = "/v1/keys/release";
/// The route that describes the service (owner, clock).
pub const SERVICE_PATH: &str = "/v1/keys/service";
/// Epochs one request may ask for (the ledger's `KeyRelease` limit).
pub const MAX_REQUEST_EPOCHS: usize = chipledger_types::limits::MAX_RELEASE_EPOCHS;
/// Largest request body accepted.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Largest answer a grantee reads (64 wraps of at most `MAX_WRAP_BYTES`, hex, and framing).
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Length of a SEC1 uncompressed P-256 point.
pub const RECIPIENT_KEY_BYTES: usize = 65;
/// How long a grantee waits for an answer (the service waits for a final ledger transaction).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Who signed a request, as sent: `{"org": NAME}` or `{"key": "ed25519:…" | "p256:…"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SignerJson {
    Org(String),
    Key(String),
}

/// `POST /v1/keys/release` body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequestJson {
    /// Hex grant id (the `GrantAccess` or `Purchase` transaction hash).
    pub grant: String,
    /// Hex device id.
    pub device: String,
    /// Epochs asked for: sorted, unique, 1..=64 of them.
    pub epochs: Vec<u32>,
    /// Hex SEC1 uncompressed P-256 key the epoch keys are wrapped to.
    pub recipient: String,
    /// When the grantee signed (Unix ms); within ±5 minutes of the service's clock.
    pub issued_ms: u64,
    pub signer: SignerJson,
    /// Hex signature: Ed25519 (64 bytes) or ES256 `r ‖ s` (64 bytes), matching the signer's key.
    pub signature: String,
}

/// One released epoch key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKeyJson {
    pub epoch: u32,
    pub started_ms: u64,
    /// Hex tagged COSE_Encrypt (ECDH-ES + A128KW to the recipient), the device's key-wrap layout.
    pub wrap: String,
}

/// A requested epoch that was not released, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldJson {
    pub epoch: u32,
    /// `outside_window` (its start is outside the grant's record window) or `no_key_record`
    /// (no proven `_epoch-keys` record of that epoch).
    pub reason: String,
}

/// The answer to a release: given only after `release_tx` is final on the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseAnswerJson {
    /// Hex hash of the final `KeyRelease` transaction.
    pub release_tx: String,
    /// Its block height.
    pub height: u64,
    pub grant: String,
    pub device: String,
    pub keys: Vec<WrappedKeyJson>,
    pub withheld: Vec<WithheldJson>,
}

/// `GET /v1/keys/service`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceJson {
    /// The owner organisation whose keys this service releases.
    pub org: String,
    /// The service's clock (Unix ms): requests must be issued within `skew_ms` of it.
    pub now_ms: u64,
    pub skew_ms: u64,
}

/// Who signed, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signer {
    Org(String),
    Key(PublicKey),
}

/// A key request, decoded and checked for shape (not yet for its signature).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    pub grant: TxHash,
    pub device: DeviceId,
    pub epochs: Vec<u32>,
    pub recipient: p256::PublicKey,
    pub issued_ms: u64,
}

/// SEC1 uncompressed encoding of a recipient key.
pub fn recipient_bytes(key: &p256::PublicKey) -> Vec<u8> {
    key.to_sec1_point(false).as_bytes().to_vec()
}

/// What the ledger's `KeyRelease.recipient` holds: SHA-256 of the SEC1 uncompressed key.
pub fn recipient_digest(key: &p256::PublicKey) -> [u8; 32] {
    Sha256::digest(recipient_bytes(key)).into()
}

impl KeyRequest {
    /// The canonical CBOR the grantee signs.
    pub fn signed_body(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(6)
            .text(TAG_KEY_REQUEST_V1)
            .bytes(&self.grant.0)
            .bytes(&self.device.0)
            .array(self.epochs.len());
        for epoch in &self.epochs {
            e.uint(u64::from(*epoch));
        }
        e.bytes(&recipient_bytes(&self.recipient)).uint(self.issued_ms);
        e.into_bytes()
    }

    /// SHA-256 of the signed body: the replay cache's key.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.signed_body()).into()
    }

    /// The request signed by `key` on behalf of `signer`.
    pub fn sign(&self, signer: &Signer, key: &SigningKey) -> ReleaseRequestJson {
        let signature = match key.sign(TAG_KEY_REQUEST_V1, &self.signed_body()) {
            Signature::Ed25519(s) | Signature::Es256(s) => hex::encode(s),
        };
        ReleaseRequestJson {
            grant: self.grant.to_string(),
            device: self.device.to_string(),
            epochs: self.epochs.clone(),
            recipient: hex::encode(recipient_bytes(&self.recipient)),
            issued_ms: self.issued_ms,
            signer: match signer {
                Signer::Org(name) => SignerJson::Org(name.clone()),
                Signer::Key(k) => SignerJson::Key(k.to_string()),
            },
            signature,
        }
    }

    /// Whether `signature` (64 hex-decoded bytes) is `key`'s over this request.
    pub fn verify(&self, key: &PublicKey, signature: &[u8; 64]) -> bool {
        let sig = match key {
            PublicKey::Ed25519(_) => Signature::Ed25519(*signature),
            PublicKey::P256(_) => Signature::Es256(*signature),
        };
        key.verify(TAG_KEY_REQUEST_V1, &self.signed_body(), &sig).is_ok()
    }
}

fn fixed_hex<const N: usize>(what: &str, s: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(format!("{what} must be {} hex characters", 2 * N));
    }
    let bytes = hex::decode(s).map_err(|_| format!("{what} is not hex"))?;
    bytes.try_into().map_err(|_| format!("{what} must be {N} bytes"))
}

/// Decodes a request body: the request, its signer and the signature bytes. Every field is
/// checked for shape here (a 400 for the caller); nothing is verified yet.
pub fn parse_request(j: &ReleaseRequestJson) -> Result<(KeyRequest, Signer, [u8; 64]), String> {
    let grant = TxHash(fixed_hex("grant", &j.grant)?);
    let device = DeviceId(fixed_hex("device", &j.device)?);
    if j.epochs.is_empty() || j.epochs.len() > MAX_REQUEST_EPOCHS {
        return Err(format!("epochs must list 1..={MAX_REQUEST_EPOCHS} epochs"));
    }
    if !j.epochs.windows(2).all(|w| w[0] < w[1]) {
        return Err("epochs must be sorted and unique".into());
    }
    let point: [u8; RECIPIENT_KEY_BYTES] = fixed_hex("recipient", &j.recipient)?;
    if point[0] != 0x04 {
        return Err("recipient must be an uncompressed SEC1 point (04 ‖ x ‖ y)".into());
    }
    let recipient = p256::PublicKey::from_sec1_bytes(&point).map_err(|_| "recipient is not a P-256 point")?;
    let signature = fixed_hex("signature", &j.signature)?;
    let signer = match &j.signer {
        SignerJson::Org(name) if !name.is_empty() && name.len() <= 64 => Signer::Org(name.clone()),
        SignerJson::Org(_) => return Err("signer.org must be an organisation name".into()),
        SignerJson::Key(text) => Signer::Key(text.parse().map_err(|e| format!("signer.key: {e}"))?),
    };
    let request = KeyRequest {
        grant,
        device,
        epochs: j.epochs.clone(),
        recipient,
        issued_ms: j.issued_ms,
    };
    Ok((request, signer, signature))
}

// ---- the grantee's side ---------------------------------------------------------------------

/// What the grantee got: the final `KeyRelease` and the epoch keys it opened.
#[derive(Debug)]
pub struct ReleasedKeys {
    pub release_tx: String,
    pub height: u64,
    pub keys: Vec<EpochGrant>,
    pub withheld: Vec<WithheldJson>,
}

/// A refusal of the key service, as the grantee sees it.
#[derive(Debug, thiserror::Error)]
#[error("the key service refused (HTTP {status}, {code}): {message}")]
pub struct Refused {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A fresh P-256 key from the operating system's CSPRNG (via `rand`'s thread generator).
pub fn fresh_p256_secret() -> p256::SecretKey {
    loop {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
            return k;
        }
    }
}

/// Signs a request for `epochs` of `device` under `grant`, posts it to the key service at
/// `url`, and unwraps every released key with `recipient` (whose public key is sent). A refusal
/// comes back as a [`Refused`] error (downcast it to read the code).
pub fn request_keys(
    url: &str,
    grant: TxHash,
    device: DeviceId,
    epochs: &[u32],
    (signer, key): (&Signer, &SigningKey),
    recipient: &p256::SecretKey,
) -> Result<ReleasedKeys> {
    let request = KeyRequest {
        grant,
        device,
        epochs: epochs.to_vec(),
        recipient: recipient.public_key(),
        issued_ms: chipledger_node::metrics::now_ms(),
    };
    let answer = post_release(url, &request.sign(signer, key))?;
    if answer.grant != grant.to_string() || answer.device != device.to_string() {
        bail!("the key service answered for another grant or device");
    }
    let mut keys = Vec::with_capacity(answer.keys.len());
    for k in &answer.keys {
        let wrap = hex::decode(&k.wrap).context("a wrap is not hex")?;
        let g = unwrap_epoch_key(&wrap, recipient).map_err(|e| anyhow!("epoch {}: {e}", k.epoch))?;
        if g.device != device || g.epoch != k.epoch || !epochs.contains(&g.epoch) {
            bail!(
                "the wrap of epoch {} names device {} epoch {}",
                k.epoch,
                g.device,
                g.epoch
            );
        }
        keys.push(g);
    }
    Ok(ReleasedKeys {
        release_tx: answer.release_tx,
        height: answer.height,
        keys,
        withheld: answer.withheld,
    })
}

/// `POST {url}/v1/keys/release` with a signed body; the answer or a [`Refused`].
pub fn post_release(url: &str, body: &ReleaseRequestJson) -> Result<ReleaseAnswerJson> {
    let endpoint = format!("{}{RELEASE_PATH}", url.trim_end_matches('/'));
    let http = reqwest::blocking::Client::builder().timeout(CLIENT_TIMEOUT).build()?;
    let resp = http
        .post(&endpoint)
        .json(body)
        .send()
        .with_context(|| format!("cannot reach the key service at {endpoint}"))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        bail!("{endpoint}: answer longer than {MAX_ANSWER_BYTES} bytes");
    }
    if status == 200 {
        return serde_json::from_slice(&bytes).with_context(|| format!("unexpected answer from {endpoint}"));
    }
    let e: ErrorBody = serde_json::from_slice(&bytes)
        .map_err(|_| anyhow!("{endpoint} answered HTTP {status}: {}", String::from_utf8_lossy(&bytes)))?;
    Err(Refused {
        status,
        code: e.error,
        message: e.message,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> KeyRequest {
        KeyRequest {
            grant: TxHash([1; 32]),
            device: DeviceId([2; 20]),
            epochs: vec![1, 2],
            recipient: p256::SecretKey::from_slice(&[3; 32]).unwrap().public_key(),
            issued_ms: 1_700_000_000_000,
        }
    }

    /// A signed request round-trips through JSON, verifies under the signer's key only, and any
    /// change to a signed field breaks the signature.
    #[test]
    fn requests_verify_only_as_signed() {
        let keys = [
            SigningKey::ed25519_from_seed(&[7; 32]),
            SigningKey::p256_from_bytes(&[9; 32]).unwrap(),
        ];
        for key in &keys {
            let json = request().sign(&Signer::Org("research".into()), key);
            let (parsed, signer, sig) = parse_request(&json).unwrap();
            assert_eq!((parsed.clone(), signer), (request(), Signer::Org("research".into())));
            assert!(parsed.verify(&key.public_key(), &sig));
            let other = SigningKey::ed25519_from_seed(&[8; 32]).public_key();
            assert!(!parsed.verify(&other, &sig));
            let changes: [&dyn Fn(&mut KeyRequest); 4] = [
                &|r| r.epochs = vec![1, 3],
                &|r| r.issued_ms += 1,
                &|r| r.device = DeviceId([3; 20]),
                &|r| r.recipient = p256::SecretKey::from_slice(&[4; 32]).unwrap().public_key(),
            ];
            for change in changes {
                let mut r = parsed.clone();
                change(&mut r);
                assert!(!r.verify(&key.public_key(), &sig));
            }
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_a_reason() {
        let good = request().sign(
            &Signer::Org("research".into()),
            &SigningKey::ed25519_from_seed(&[7; 32]),
        );
        type Change = dyn Fn(&mut ReleaseRequestJson);
        let cases: [(&str, &Change); 8] = [
            ("grant", &|j| j.grant = "00".into()),
            ("device", &|j| j.device = "zz".repeat(20)),
            ("epochs must list", &|j| j.epochs.clear()),
            ("epochs must list", &|j| j.epochs = (1..=65).collect()),
            ("sorted", &|j| j.epochs = vec![2, 1]),
            ("uncompressed", &|j| j.recipient = format!("02{}", &j.recipient[2..])),
            ("signature", &|j| j.signature.truncate(10)),
            ("signer.key", &|j| j.signer = SignerJson::Key("p256:00".into())),
        ];
        for (want, change) in cases {
            let mut j = good.clone();
            change(&mut j);
            let err = parse_request(&j).unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn the_ledger_records_sha256_of_the_uncompressed_recipient_key() {
        let key = request().recipient;
        let bytes = recipient_bytes(&key);
        assert_eq!((bytes.len(), bytes[0]), (RECIPIENT_KEY_BYTES, 0x04));
        assert_eq!(recipient_digest(&key), <[u8; 32]>::from(Sha256::digest(&bytes)));
    }
}
