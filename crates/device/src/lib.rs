//! The device SDK: what runs on a chip (or its secure element). `no_std` + `alloc`.
//!
//! - `dice`: Open Profile for DICE layer derivation (CDI_Attest / CDI_Seal, key pairs, IDs).
//! - `cert`: DeviceID and Alias X.509 certificates with the TCG DiceTcbInfo extension.
//! - `eat`: Entity Attestation Tokens (RFC 9711) as CWT in COSE_Sign1.
//! - `chip`: the `Chip` trait (DeviceID / Alias keys, boot, evidence) and `SoftChip`.
#![cfg_attr(not(feature = "std"), no_std)]
extern crate alloc;
pub mod cert;
pub mod chip;
pub mod dice;
pub mod eat;
