//! Named maxima for everything chipledger decodes or stores. One source of truth: the
//! decoders, the mempool, the API and the docs all refer to these.

/// Largest encoded transaction envelope, in bytes.
pub const MAX_TX_BYTES: usize = 64 * 1024;
/// Most transactions in one block.
pub const MAX_BLOCK_TXS: usize = 10_000;
/// Largest encoded block, in bytes.
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// Longest organisation or validator name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// Most keys one organisation may hold at once.
pub const MAX_ORG_KEYS: usize = 16;
/// Most organisations in the network.
pub const MAX_ORGS: usize = 256;
/// Most validators in the network.
pub const MAX_VALIDATORS: usize = 64;
/// Longest free-text field (statement topics, reasons), in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Largest opaque statement body, in bytes.
pub const MAX_STATEMENT_BYTES: usize = 16 * 1024;
/// Most roles an organisation can hold.
pub const MAX_ROLES: usize = 8;
/// Longest chain identifier, in bytes.
pub const MAX_CHAIN_ID_BYTES: usize = 64;
/// Largest X.509 certificate (manufacturer CA, DeviceID, Alias) carried in a transaction, in
/// bytes (the device SDK's `cert::MAX_CERT_BYTES`).
pub const MAX_CERT_DER_BYTES: usize = 4096;
/// Largest EAT (COSE_Sign1) carried in an `Attest` transaction, in bytes (`eat::MAX_EAT_BYTES`).
pub const MAX_EAT_BYTES: usize = 4096;
/// Most hardware-model (product-ID) ranges one manufacturer CA grant may list.
pub const MAX_MODEL_RANGES: usize = 16;
/// Most manufacturer CAs (active and revoked) one organisation may have registered.
pub const MAX_CAS_PER_ORG: usize = 16;
/// Most devices one organisation may own (the by-owner index is one bounded record).
pub const MAX_DEVICES_PER_OWNER: usize = 4096;
/// Most entries in one device's history (registration, transfers, attestations, revocation).
pub const MAX_DEVICE_HISTORY: usize = 1024;
