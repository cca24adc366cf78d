//! `chipledger cose`: COSE tools for auditors, offline.
//!
//! - `verify --key PEM|JWK FILE [--external-aad HEX] [--json]`: verifies a COSE_Sign1 (ES256 or
//!   EdDSA, tagged or untagged; [`chipledger_device::cose::verify_sign1`]) and prints the
//!   payload as hex. FILE holds the CBOR bytes, or their hex (as the cose-wg examples and
//!   chipledger's API print them). The key is a PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY",
//!   P-256 or Ed25519) or a JWK (RFC 7517/7518: `{"kty":"EC","crv":"P-256","x","y"}`; RFC 8037:
//!   `{"kty":"OKP","crv":"Ed25519","x"}`; base64url). A device record verifies here too.
//!   Exit codes: 0 valid, 1 invalid (error on stderr; with `--json`, `"valid": false`, `error`,
//!   `error_code`), 2 usage error (unreadable file or key).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use chipledger_device::cose::{
    self, MAX_SIGN1_BYTES, ed25519_from_bytes, p256_from_coordinates, public_key_from_spki_der, verify_sign1,
};
use chipledger_device::key::DevicePublicKey;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Exit code: the message verified.
pub const EXIT_VALID: i32 = 0;
/// Exit code: the message did not verify (bad signature, wrong algorithm, malformed, …).
pub const EXIT_INVALID: i32 = 1;
/// Exit code: unreadable file, malformed key, bad arguments.
pub const EXIT_USAGE: i32 = 2;

/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

#[derive(Debug, Args)]
pub struct CoseArgs {
    #[command(subcommand)]
    pub command: CoseCommand,
}

#[derive(Debug, Subcommand)]
pub enum CoseCommand {
    /// Verify a COSE_Sign1 (ES256 or EdDSA) and print its payload as hex.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The signer's public key: PEM SubjectPublicKeyInfo or a JWK (EC P-256 or OKP Ed25519).
    #[arg(long, value_name = "PEM|JWK")]
    pub key: PathBuf,
    /// The COSE_Sign1: CBOR bytes, or hex text.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// External additional authenticated data the signature covers (hex; default empty).
    #[arg(long, value_name = "HEX", default_value = "")]
    pub external_aad: String,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CoseArgs) -> i32 {
    run_with(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`run`] with explicit output streams (for tests).
pub fn run_with(args: CoseArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match args.command {
        CoseCommand::Verify(a) => verify(&a, out, err),
    }
}

fn verify(a: &VerifyArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let inputs = load_key(&a.key).and_then(|key| {
        let message = message_bytes(&read_limited(&a.file, 2 * MAX_SIGN1_BYTES as u64 + 2)?);
        let aad = hex::decode(&a.external_aad).map_err(|e| format!("--external-aad is not hex: {e}"))?;
        Ok((key, message, aad))
    });
    let (key, message, aad) = match inputs {
        Ok(v) => v,
        Err(why) => {
            let _ = writeln!(err, "error: {why}");
            return EXIT_USAGE;
        }
    };
    match verify_sign1(&message, &key, &aad) {
        Ok(v) => {
            let payload = hex::encode(&v.payload);
            let text = if a.json {
                json!({
                    "valid": true,
                    "alg": alg_name(&v),
                    "tagged": v.tagged,
                    "kid_hex": hex::encode(&v.kid),
                    "payload_hex": payload,
                    "payload_bytes": v.payload.len(),
                })
                .to_string()
            } else {
                format!(
                    "valid {} COSE_Sign1 ({} bytes of payload)\n{payload}",
                    alg_name(&v),
                    v.payload.len()
                )
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

fn alg_name(v: &cose::VerifiedSign1) -> &'static str {
    match v.alg {
        chipledger_device::key::DeviceKeyAlg::P256 => "ES256",
        chipledger_device::key::DeviceKeyAlg::Ed25519 => "EdDSA",
    }
}

/// The file as CBOR: hex text (whitespace ignored) is decoded; anything else is taken as is.
/// A COSE_Sign1's first byte (0xd2 tagged, 0x84 untagged) is never a hex digit.
fn message_bytes(file: &[u8]) -> Vec<u8> {
    let text: Vec<u8> = file.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    if !text.is_empty()
        && text.iter().all(u8::is_ascii_hexdigit)
        && let Ok(bytes) = hex::decode(&text)
    {
        return bytes;
    }
    file.to_vec()
}

/// Reads a key file: PEM SubjectPublicKeyInfo, or JWK JSON.
pub fn load_key(path: &Path) -> Result<DevicePublicKey, String> {
    let bytes = read_limited(path, MAX_KEY_FILE_BYTES)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "key file is not text (PEM or JWK)".to_string())?;
    if text.trim_start().starts_with('{') {
        let jwk: Value = serde_json::from_str(text).map_err(|e| format!("key file is not JSON: {e}"))?;
        return key_from_jwk(&jwk);
    }
    let der = pem_public_key_der(text)?;
    public_key_from_spki_der(&der).map_err(|e| format!("not a P-256 or Ed25519 public key: {e}"))
}

/// A P-256 (`kty` EC) or Ed25519 (`kty` OKP) public key from a JWK.
pub fn key_from_jwk(jwk: &Value) -> Result<DevicePublicKey, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let s = jwk[name].as_str().ok_or(format!("JWK has no \"{name}\" string"))?;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|e| format!("JWK \"{name}\" is not base64url: {e}"))
    };
    let (kty, crv) = (jwk["kty"].as_str().unwrap_or(""), jwk["crv"].as_str().unwrap_or(""));
    let key = match (kty, crv) {
        ("EC", "P-256") => p256_from_coordinates(&field("x")?, &field("y")?),
        ("OKP", "Ed25519") => ed25519_from_bytes(&field("x")?),
        _ => {
            return Err(format!(
                "JWK kty {kty:?} crv {crv:?} is not supported (EC P-256 or OKP Ed25519)"
            ));
        }
    };
    key.map_err(|e| format!("JWK key is invalid: {e}"))
}

fn pem_public_key_der(text: &str) -> Result<Vec<u8>, String> {
    let (begin, end) = ("-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----");
    let body = text
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("key file is neither a JWK nor has a \"{begin}\" block"))?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("PEM body is not base64: {e}"))
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
