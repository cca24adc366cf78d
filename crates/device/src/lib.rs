//! The device SDK: what runs on a chip (or its secure element). `no_std` + `alloc`.
//!
//! - `dice`: Open Profile for DICE layer derivation (CDI_Attest / CDI_Seal, key pairs, IDs).
//! - `cert`: DeviceID and Alias X.509 certificates with the TCG DiceTcbInfo extension.
//! - `key`: device keys of either algorithm (P-256 / ES256 default, Ed25519 / EdDSA).
//! - `eat`: Entity Attestation Tokens (RFC 9711) as CWT in COSE_Sign1.
//! - `ledger`: the `ueid` / `hwmodel` encodings the ledger checks and the accept-transfer proof.
//! - `suit`: SUIT manifests (draft-ietf-suit-manifest, ES256 / SHA-256): verify, decode, build.
//! - `update`: verifying a firmware update (SUIT + ledger proofs + anti-rollback) before install.
//! - `chip`: the `Chip` trait (DeviceID / Alias keys, boot, evidence) and `SoftChip`.
#![cfg_attr(not(feature = "std"), no_std)]
extern crate alloc;
pub mod cert;
pub mod chip;
pub mod dice;
pub mod eat;
pub mod key;
pub mod ledger;
pub mod suit;
pub mod update;
