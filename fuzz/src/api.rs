//! The node's HTTP API inputs (JSON bodies, query strings as axum's `Query` reads them with
//! serde_urlencoded, path segments) and the client-side verifiers that read the node's JSON
//! answers (`chipledger verify`, `firmware device --verify`, `data batch --verify`): a client
//! must survive any answer a faulty node sends.

use std::sync::OnceLock;

use chipledger_node::api::{BatchRequest, ConsistencyQuery, DevicesQuery, InclusionQuery, MAX_BATCH_TXS, StateQuery};
use chipledger_node::api_data::{BatchBody, verify_batch};
use chipledger_node::api_firmware::{DeviceFirmwareBody, verify_device_firmware};
use chipledger_node::fleet_index::{DeviceStatus, IdPrefix, parse_cursor};
use chipledger_node::revocations::{RevocationSnapshot, verify_snapshot};
use chipledger_types::audit::AuditSubject;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_TX_BYTES;
use chipledger_types::merkle::{MemoryStore, consistency_proof, inclusion_proof};

use crate::fixture::{self, ORIGIN};
use crate::notes::QUORUM;

/// Leaves of the log the proof routes answer from.
pub const API_LOG_LEAVES: u64 = 100;

/// Every API reader on the same bytes (each refuses the others' formats early).
pub fn api(data: &[u8]) {
    submit_batch(data);
    queries(data);
    answers(data);
    if let Ok(text) = std::str::from_utf8(data) {
        path_segments(text);
    }
}

/// `POST /v1/tx/batch`: JSON, hex, size, then the mempool's decode of each transaction.
fn submit_batch(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<BatchRequest>(data) else {
        return;
    };
    if req.txs.len() > MAX_BATCH_TXS {
        return;
    }
    for h in &req.txs {
        if let Ok(bytes) = hex::decode(h)
            && bytes.len() <= MAX_TX_BYTES
        {
            crate::codec::tx(&bytes);
        }
    }
}

/// Query strings: `/v1/devices` filters, `/v1/proof/{inclusion,consistency}` against a log of
/// [`API_LOG_LEAVES`] leaves as the handlers call them, `/v1/state`.
fn queries(data: &[u8]) {
    if let Ok(q) = serde_urlencoded::from_bytes::<DevicesQuery>(data) {
        let _ = q.to_filter();
    }
    let log = api_log();
    if let Ok(q) = serde_urlencoded::from_bytes::<InclusionQuery>(data)
        && q.size <= log.size()
    {
        let _ = inclusion_proof(log, q.index, q.size);
    }
    if let Ok(q) = serde_urlencoded::from_bytes::<ConsistencyQuery>(data)
        && q.to <= log.size()
    {
        let _ = consistency_proof(log, q.from, q.to);
    }
    let _ = serde_urlencoded::from_bytes::<StateQuery>(data);
}

fn api_log() -> &'static MemoryStore {
    static LOG: OnceLock<MemoryStore> = OnceLock::new();
    LOG.get_or_init(|| MemoryStore::from_leaves((0..API_LOG_LEAVES).map(u64::to_be_bytes)))
}

/// The node's JSON answers as clients verify them under the fixture validators' keys.
fn answers(data: &[u8]) {
    let known = fixture::validator_keys();
    if let Ok(body) = serde_json::from_slice::<BatchBody>(data) {
        let _ = verify_batch(&body, ORIGIN, &known, QUORUM);
    }
    if let Ok(snapshot) = serde_json::from_slice::<RevocationSnapshot>(data) {
        let _ = verify_snapshot(&snapshot, ORIGIN, &known, QUORUM);
    }
    if let Ok(body) = serde_json::from_slice::<DeviceFirmwareBody>(data) {
        let _ = verify_device_firmware(&body, &DeviceId([0x11; 20]), ORIGIN, &known, QUORUM);
    }
}

/// Path and query segments the routes parse themselves.
fn path_segments(text: &str) {
    let _ = DeviceStatus::parse(text);
    if let Ok(prefix) = IdPrefix::parse(text) {
        let _ = prefix.matches(&DeviceId([0xab; 20]));
    }
    let _ = parse_cursor(text);
    if let Some(subject) = AuditSubject::parse(text) {
        assert_eq!(
            AuditSubject::parse(&subject.path()),
            Some(subject),
            "audit subject round trip"
        );
    }
}
