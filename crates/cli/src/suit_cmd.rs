//! `chipledger suit`: SUIT firmware manifests (draft-ietf-suit-manifest, ES256 / SHA-256), offline.
//!
//! - `inspect --key PEM FILE [--json]`: verifies the envelope's COSE_Sign1 and manifest digest,
//!   then prints the sequence number and, per component, vendor / class ids, image digests,
//!   sizes and URIs. Exit codes: 0 valid, 1 invalid (typed error on stderr; in `--json` output
//!   `"valid": false` with `error` and `error_code`), 2 usage error (unreadable file or key).
//! - `make --key PEM --image FILE --sequence N --vendor ORG --model M[,M…] [--uri URI] --out FILE`:
//!   builds and signs a standard release envelope ([`chipledger_device::suit::build_envelope`]).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use chipledger_device::suit::{
    self, ReleaseSpec, SuitComponent, SuitDigest, SuitManifest, SuitParameters, SuitVersionMatch, VersionComparison,
    class_id_for_model, uuid_string, vendor_id_for_org,
};
use clap::{Args, Subcommand};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Exit code: the envelope verified (inspect) or was written (make).
pub const EXIT_VALID: i32 = 0;
/// Exit code: the envelope is invalid (bad signature, digest mismatch, malformed, …).
pub const EXIT_INVALID: i32 = 1;
/// Exit code: unreadable file, malformed key, bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// Largest PEM key file read.
const MAX_PEM_BYTES: usize = 16 * 1024;
/// Largest firmware image `suit make` hashes.
const MAX_IMAGE_BYTES: u64 = 1 << 30;

#[derive(Debug, Args)]
pub struct SuitArgs {
    #[command(subcommand)]
    pub command: SuitCommand,
}

#[derive(Debug, Subcommand)]
pub enum SuitCommand {
    /// Verify a SUIT envelope (ES256 signature, manifest digest) and print what it installs.
    Inspect(InspectArgs),
    /// Build and sign a SUIT envelope for a firmware image (one component, ES256, SHA-256).
    Make(MakeArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The signer's P-256 public key (PEM SubjectPublicKeyInfo, "BEGIN PUBLIC KEY").
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// The SUIT envelope (CBOR tag 107).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MakeArgs {
    /// The signer's P-256 private key (PEM PKCS#8, "BEGIN PRIVATE KEY").
    #[arg(long, value_name = "PEM")]
    pub key: PathBuf,
    /// The firmware image; its SHA-256 digest and size go into the manifest.
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// Manifest sequence number (anti-rollback; must grow with every release).
    #[arg(long)]
    pub sequence: u64,
    /// Publishing organisation; the vendor id is `vendor_id_for_org(ORG)`.
    #[arg(long, value_name = "ORG")]
    pub vendor: String,
    /// Chip model(s) the image is for; each becomes a class id `class_id_for_model(M)`.
    #[arg(long = "model", value_name = "M", value_delimiter = ',', required = true)]
    pub models: Vec<u32>,
    /// Where devices fetch the image.
    #[arg(long)]
    pub uri: Option<String>,
    /// Output file for the envelope.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SuitArgs) -> i32 {
    run_with(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`run`] with explicit output streams (for tests).
pub fn run_with(args: SuitArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match args.command {
        SuitCommand::Inspect(a) => inspect(&a, out, err),
        SuitCommand::Make(a) => match make(&a) {
            Ok(summary) => {
                let text = if a.json {
                    summary.to_string()
                } else {
                    format!("wrote {} ({} bytes)", a.out.display(), summary["bytes"])
                };
                let _ = writeln!(out, "{text}");
                EXIT_VALID
            }
            Err(why) => {
                let _ = writeln!(err, "error: {why}");
                EXIT_USAGE
            }
        },
    }
}

fn inspect(a: &InspectArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs = read_limited(&a.key, MAX_PEM_BYTES as u64)
        .and_then(|pem| verifying_key(&pem))
        .and_then(|key| Ok((key, read_limited(&a.file, suit::MAX_ENVELOPE_BYTES as u64)?)));
    let (key, envelope) = match inputs {
        Ok(v) => v,
        Err(why) => {
            let _ = writeln!(err, "error: {why}");
            return EXIT_USAGE;
        }
    };
    match suit::verify_envelope(&envelope, &key) {
        Ok(m) => {
            let text = if a.json {
                serde_json::to_string_pretty(&ManifestJson::new(&m)).unwrap_or_default()
            } else {
                human(&m)
            };
            let _ = writeln!(out, "{text}");
            EXIT_VALID
        }
        Err(e) => {
            if a.json {
                let _ = writeln!(
                    out,
                    "{}",
                    json!({ "valid": false, "error": e.to_string(), "error_code": e.code() })
                );
            }
            let _ = writeln!(err, "invalid: {e}");
            EXIT_INVALID
        }
    }
}

/// Reads at most `max` bytes of a file (a larger file is an error, not truncated).
fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > max {
        return Err(format!("{} is {len} bytes; the limit is {max}", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The DER inside a PEM block with the given label.
fn pem_der(pem: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "key file is not PEM text".to_string())?;
    let (begin, end) = (format!("-----BEGIN {label}-----"), format!("-----END {label}-----"));
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("key file has no \"{begin}\" block"))?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))
}

/// A P-256 public key from a PEM SubjectPublicKeyInfo.
pub fn verifying_key(pem: &[u8]) -> Result<VerifyingKey, String> {
    let der = pem_der(pem, "PUBLIC KEY")?;
    VerifyingKey::from_public_key_der(&der).map_err(|e| format!("not a P-256 SubjectPublicKeyInfo: {e}"))
}

/// A P-256 private key from a PEM PKCS#8 document.
pub fn signing_key(pem: &[u8]) -> Result<SigningKey, String> {
    let der = pem_der(pem, "PRIVATE KEY")?;
    SigningKey::from_pkcs8_der(&der).map_err(|e| format!("not a P-256 PKCS#8 private key: {e}"))
}

fn make(a: &MakeArgs) -> Result<serde_json::Value, String> {
    let signer = signing_key(&read_limited(&a.key, MAX_PEM_BYTES as u64)?)?;
    let image = read_limited(&a.image, MAX_IMAGE_BYTES)?;
    if a.models.len() > suit::MAX_PATHS {
        return Err(format!("at most {} models per envelope", suit::MAX_PATHS));
    }
    if a.uri.as_ref().is_some_and(|u| u.len() > suit::MAX_URI_BYTES) {
        return Err(format!("--uri is longer than {} bytes", suit::MAX_URI_BYTES));
    }
    let spec = ReleaseSpec {
        sequence_number: a.sequence,
        vendor_id: vendor_id_for_org(&a.vendor),
        class_ids: a.models.iter().map(|m| class_id_for_model(*m)).collect(),
        image_digest_sha256: Sha256::digest(&image).into(),
        image_size: image.len() as u64,
        uri: a.uri.clone(),
    };
    let envelope = suit::build_envelope(&spec, &signer);
    if a.out.exists() {
        return Err(format!("{} exists; refusing to overwrite", a.out.display()));
    }
    std::fs::write(&a.out, &envelope).map_err(|e| format!("{}: {e}", a.out.display()))?;
    Ok(json!({
        "file": a.out,
        "bytes": envelope.len(),
        "sequence_number": spec.sequence_number,
        "vendor_id": uuid_string(&spec.vendor_id),
        "class_ids": spec.class_ids.iter().map(uuid_string).collect::<Vec<_>>(),
        "image_digest": hex::encode(spec.image_digest_sha256),
        "image_size": spec.image_size,
    }))
}

#[derive(Serialize)]
struct DigestJson {
    /// COSE algorithm id (-16 = SHA-256).
    alg: i64,
    hex: String,
}

impl DigestJson {
    fn new(d: &SuitDigest) -> Self {
        Self {
            alg: d.alg,
            hex: hex::encode(&d.bytes),
        }
    }
}

#[derive(Serialize)]
struct ParametersJson {
    vendor_id: Option<String>,
    vendor_id_checked: bool,
    class_id: Option<String>,
    class_id_checked: bool,
    image_digest: Option<DigestJson>,
    image_size: Option<u64>,
    uri: Option<String>,
    slot: Option<u64>,
    /// Version conditions as `"<comparison> <version>"`, e.g. `"lesser 1.0.0"`.
    version_conditions: Vec<String>,
}

impl ParametersJson {
    fn new(p: &SuitParameters) -> Self {
        Self {
            vendor_id: p.vendor_id.as_ref().map(uuid_string),
            vendor_id_checked: p.vendor_id_checked,
            class_id: p.class_id.as_ref().map(uuid_string),
            class_id_checked: p.class_id_checked,
            image_digest: p.image_digest.as_ref().map(DigestJson::new),
            image_size: p.image_size,
            uri: p.uri.clone(),
            slot: p.slot,
            version_conditions: p.version_conditions.iter().map(version_text).collect(),
        }
    }
}

#[derive(Serialize)]
struct ComponentJson {
    /// Component identifier segments, hex.
    id: Vec<String>,
    vendor_id: Option<String>,
    class_id: Option<String>,
    image_digest: Option<DigestJson>,
    image_size: Option<u64>,
    uri: Option<String>,
    alternatives: Vec<ParametersJson>,
}

impl ComponentJson {
    fn new(c: &SuitComponent) -> Self {
        Self {
            id: c.id.iter().map(hex::encode).collect(),
            vendor_id: c.vendor_id.as_ref().map(uuid_string),
            class_id: c.class_id.as_ref().map(uuid_string),
            image_digest: c.image_digest.as_ref().map(DigestJson::new),
            image_size: c.image_size,
            uri: c.uri.clone(),
            alternatives: c.alternatives.iter().map(ParametersJson::new).collect(),
        }
    }
}

#[derive(Serialize)]
struct ManifestJson {
    valid: bool,
    sequence_number: u64,
    manifest_digest: DigestJson,
    components: Vec<ComponentJson>,
    reference_uri: Option<String>,
    sequences: Vec<u64>,
    severed_missing: Vec<u64>,
    text: Option<String>,
}

impl ManifestJson {
    fn new(m: &SuitManifest) -> Self {
        Self {
            valid: true,
            sequence_number: m.sequence_number,
            manifest_digest: DigestJson::new(&m.manifest_digest),
            components: m.components.iter().map(ComponentJson::new).collect(),
            reference_uri: m.reference_uri.clone(),
            sequences: m.sequences.clone(),
            severed_missing: m.severed_missing.clone(),
            text: m.text.as_ref().and_then(|t| t.manifest_description.clone()),
        }
    }
}

fn digest_text(d: &SuitDigest) -> String {
    match d.alg {
        suit::COSE_ALG_SHA256 => format!("sha-256:{}", hex::encode(&d.bytes)),
        alg => format!("alg {alg}:{}", hex::encode(&d.bytes)),
    }
}

fn version_text(v: &SuitVersionMatch) -> String {
    let comparison = match v.comparison {
        VersionComparison::Greater => "greater",
        VersionComparison::GreaterEqual => "greater-equal",
        VersionComparison::Equal => "equal",
        VersionComparison::LesserEqual => "lesser-equal",
        VersionComparison::Lesser => "lesser",
        _ => "unknown",
    };
    let parts: Vec<String> = v.value.iter().map(i64::to_string).collect();
    format!("{comparison} {}", parts.join("."))
}

fn id_text(id: Option<[u8; 16]>, checked: bool) -> String {
    match (id, checked) {
        (Some(id), true) => format!("{} (checked)", uuid_string(&id)),
        (Some(id), false) => format!("{} (set, not checked)", uuid_string(&id)),
        (None, _) => "-".into(),
    }
}

fn human(m: &SuitManifest) -> String {
    let mut s = format!(
        "valid: ES256 signature and manifest digest verified\nsequence number: {}\nmanifest digest: {}\n",
        m.sequence_number,
        digest_text(&m.manifest_digest)
    );
    for c in &m.components {
        let id: Vec<String> = c.id.iter().map(hex::encode).collect();
        s.push_str(&format!("component [{}]:\n", id.join(", ")));
        for (n, p) in c.alternatives.iter().enumerate() {
            let indent = if c.alternatives.len() > 1 {
                let slot = p.slot.map(|s| format!(" (slot {s})")).unwrap_or_default();
                s.push_str(&format!("  alternative {}{slot}:\n", n + 1));
                "    "
            } else {
                "  "
            };
            for (label, value) in parameter_lines(p) {
                s.push_str(&format!("{indent}{label:<13} {value}\n"));
            }
        }
    }
    if !m.severed_missing.is_empty() {
        s.push_str(&format!("severed members not carried: {:?}\n", m.severed_missing));
    }
    s.trim_end().to_string()
}

/// (label, value) lines describing one path's parameters.
fn parameter_lines(p: &SuitParameters) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        ("vendor id:", id_text(p.vendor_id, p.vendor_id_checked)),
        ("class id:", id_text(p.class_id, p.class_id_checked)),
        (
            "image digest:",
            p.image_digest.as_ref().map(digest_text).unwrap_or_else(|| "-".into()),
        ),
        (
            "image size:",
            p.image_size.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        ),
    ];
    lines.extend(p.uri.iter().map(|uri| ("uri:", uri.clone())));
    lines.extend(p.version_conditions.iter().map(|v| ("version:", version_text(v))));
    lines
}
