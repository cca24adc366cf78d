//! The device SDK: what runs on a chip (or its secure element). `no_std` + `alloc`.
//!
//! - `dice`: Open Profile for DICE layer derivation (CDI_Attest / CDI_Seal, key pairs, IDs).
//! - `cert`: DeviceID and Alias X.509 certificates with the TCG DiceTcbInfo extension.
//! - `key`: device keys of either algorithm (P-256 / ES256 default, Ed25519 / EdDSA).
//! - `eat`: Entity Attestation Tokens (RFC 9711) as CWT in COSE_Sign1.
//! - `ledger`: the `ueid` / `hwmodel` encodings the ledger checks and the accept-transfer proof.
//! - `cose`: a general COSE_Sign1 verifier (ES256 / EdDSA) for auditors (`chipledger cose verify`).
//! - `reading`: a device-signed commitment to one reading (range proofs, issue 6).
//! - `record`: signing / verifying data records (COSE_Sign1), hash chains (types' `record`).
//! - `seal`: encryption at source: COSE_Encrypt0 payloads, per-epoch keys wrapped to the owner.
//! - `suit`: SUIT manifests (draft-ietf-suit-manifest, ES256 / SHA-256): verify, decode, build.
//! - `update`: verifying a firmware update (SUIT + ledger proofs + anti-rollback) before install.
//! - `command`: verifying authorized commands (ledger authorization proofs) and signing receipts.
//! - `chip`: the `Chip` trait (DeviceID / Alias keys, boot, evidence) and `SoftChip`.
#![cfg_attr(not(feature = "std"), no_std)]
extern crate alloc;
pub mod cert;
pub mod chip;
pub mod command;
pub mod cose;
pub mod dice;
pub mod eat;
pub mod key;
pub mod ledger;
pub mod reading;
pub mod record;
pub mod seal;
pub mod suit;
pub mod update;
