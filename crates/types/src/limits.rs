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
/// Largest device proof of presence (COSE_Sign1 by the DeviceID key) an `AcceptTransfer` may
/// carry, in bytes.
pub const MAX_DEVICE_PROOF_BYTES: usize = 1024;
/// Most hardware-model (product-ID) ranges one manufacturer CA grant may list.
pub const MAX_MODEL_RANGES: usize = 16;
/// Most manufacturer CAs (active and revoked) one organisation may have registered.
pub const MAX_CAS_PER_ORG: usize = 16;
/// Most devices one organisation may own (the by-owner index is one bounded record).
pub const MAX_DEVICES_PER_OWNER: usize = 4096;
/// Most entries in one device's history (registration, transfers, attestations, revocation).
pub const MAX_DEVICE_HISTORY: usize = 1024;

// ---- Firmware provenance (issue 4) ---------------------------------------------------------

/// Largest SUIT envelope (RFC 9124) carried in a `PublishRelease`, in bytes. Images are never
/// in transactions; an envelope is a manifest and its authentication wrapper.
pub const MAX_SUIT_ENVELOPE_BYTES: usize = 16 * 1024;
/// Longest semantic version string (`2.1.0-rc.1+build.5`), in bytes.
pub const MAX_SEMVER_BYTES: usize = 64;
/// Longest CVE identifier (`CVE-2024-123456`), in bytes.
pub const MAX_CVE_ID_BYTES: usize = 32;
/// Most hardware models one release (or one rollout) may name.
pub const MAX_RELEASE_MODELS: usize = 16;
/// Most CVE ids one release may say it fixes.
pub const MAX_RELEASE_FIXES: usize = 64;
/// Most firmware-signing keys (active and revoked) one publisher may have registered.
pub const MAX_FIRMWARE_KEYS_PER_ORG: usize = 16;
/// Most releases one publisher may publish (the per-publisher index is one bounded record).
pub const MAX_RELEASES_PER_PUBLISHER: usize = 1024;
/// Most releases listed for one hardware model.
pub const MAX_RELEASES_PER_MODEL: usize = 1024;
/// Most certification entries kept for one release.
pub const MAX_CERT_HISTORY: usize = 64;
/// Most releases one CVE record may list as affected.
pub const MAX_VULN_AFFECTED: usize = 256;
/// Most reports merged into one CVE record.
pub const MAX_VULN_REPORTS: usize = 64;
/// Most CVEs listed against one release.
pub const MAX_CVES_PER_RELEASE: usize = 256;
/// Most organisations a fleet policy may name as rollout approvers.
pub const MAX_FLEET_APPROVERS: usize = 16;
/// Most rollouts one owner may create (the per-owner index is one bounded record).
pub const MAX_ROLLOUTS_PER_OWNER: usize = 1024;
/// Most entries in one device's firmware update history.
pub const MAX_DEVICE_UPDATE_HISTORY: usize = 256;

// ---- Data at source (issue 5) --------------------------------------------------------------

/// Largest signed record (the tagged COSE_Sign1 bytes a device publishes), in bytes.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// Largest record payload (a COSE_Encrypt0, or a COSE_Encrypt on the epoch-key stream), in bytes.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 15 * 1024;
/// Longest record stream name, in bytes (ASCII `[A-Za-z0-9._-]`).
pub const MAX_STREAM_BYTES: usize = 64;
/// Recent (seq, hash) pairs a chain checker remembers per device stream (duplicate vs fork).
pub const CHAIN_WINDOW_RECORDS: usize = 64;
/// Gaps (missing seq ranges) a chain checker remembers per device stream (out-of-order arrivals).
pub const CHAIN_GAPS_TRACKED: usize = 16;
/// Most records one `CommitBatch` may commit (the transaction carries only their Merkle root).
pub const MAX_BATCH_RECORDS: usize = 65_536;
/// Most device+stream chain heads one `CommitBatch` may carry (a gateway splits a batch that
/// touches more chains; also bounded by the transaction decoder's array limit of 256).
pub const MAX_BATCH_HEADS: usize = 256;
/// Most streams one device may have chain heads for.
pub const MAX_STREAMS_PER_DEVICE: usize = 64;
/// Most evidence hashes one `ReportChainAnomaly` may carry.
pub const MAX_ANOMALY_EVIDENCE: usize = 8;
/// Most recent anomaly reports kept in a device's anomaly record (older ones stay in the log;
/// the per-kind counters are never truncated).
pub const MAX_DEVICE_ANOMALIES: usize = 64;
/// Most gateways one operator organisation may register.
pub const MAX_GATEWAYS_PER_ORG: usize = 256;

// ---- Access grants, offers and credits (issue 6, `access_tx`) ------------------------------

/// Most devices one access scope (grant or offer) may list.
pub const MAX_SCOPE_DEVICES: usize = 256;
/// Most device tags one access scope may list.
pub const MAX_SCOPE_TAGS: usize = 16;
/// Most data streams one access scope may list (none = every data stream).
pub const MAX_SCOPE_STREAMS: usize = 16;
/// Longest grant purpose text, in bytes.
pub const MAX_PURPOSE_BYTES: usize = 256;
/// Longest grant-revocation reason, in bytes.
pub const MAX_ACCESS_REASON_BYTES: usize = 256;
/// Longest offer terms text, in bytes.
pub const MAX_OFFER_TERMS_BYTES: usize = 1024;
/// Most epochs one `KeyRelease` may release (at least one).
pub const MAX_RELEASE_EPOCHS: usize = 64;
/// Most devices one `TagDevices` may add plus remove.
pub const MAX_TAG_CHANGE_DEVICES: usize = 256;

// ---- Authorized commands and access receipts (issue 6, `command_tx`) ----------------------

/// Most devices one `Authorize` may list.
pub const MAX_AUTHZ_DEVICES: usize = 256;
/// Most actions one `Authorize` may allow.
pub const MAX_AUTHZ_ACTIONS: usize = 16;
/// Longest action name (`diagnostic`, `config`, `reboot`, `firmware`, or a custom one), in bytes.
pub const MAX_ACTION_BYTES: usize = 32;
/// Longest authorization purpose text, in bytes.
pub const MAX_AUTHZ_PURPOSE_BYTES: usize = 256;
/// Largest command argument blob, in bytes.
pub const MAX_COMMAND_ARGS_BYTES: usize = 1024;
/// Largest command result blob a receipt carries, in bytes.
pub const MAX_COMMAND_RESULT_BYTES: usize = 1024;
/// Longest MQTT client token (AWS IoT's limit), in bytes.
pub const MAX_CLIENT_TOKEN_BYTES: usize = 64;
/// Largest signed command request (COSE_Sign1), in bytes.
pub const MAX_COMMAND_REQUEST_BYTES: usize = 2048;
/// Largest signed command receipt (COSE_Sign1) an `AccessReceipt` may carry, in bytes.
pub const MAX_RECEIPT_BYTES: usize = 2048;
/// Longest rejection code in a receipt, in bytes.
pub const MAX_REJECT_CODE_BYTES: usize = 32;
/// Most recorded commands of one device still waiting for a receipt.
pub const MAX_PENDING_COMMANDS_PER_DEVICE: usize = 256;

// ---- Range proofs (issue 6, Z) ---------------------------------------------------------------

/// Largest device-signed reading commitment (a COSE_Sign1) a `PublishRangeProof` may carry.
pub const MAX_READING_STATEMENT_BYTES: usize = 1024;
/// Longest quantity name in a reading commitment (`co2_ppm`, `pm2.5`), in bytes.
pub const MAX_QUANTITY_BYTES: usize = 64;
/// Largest range proof: a two-party Bulletproof over 64 bits (`chipledger_zk::MAX_PROOF_BYTES`).
pub const MAX_RANGE_PROOF_BYTES: usize = 736;
/// Bit widths a range proof may use.
pub const RANGE_PROOF_BITS: [u8; 4] = [8, 16, 32, 64];
