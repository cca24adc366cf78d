//! The data-at-source read routes at the HTTP level, on a real executor over a fresh genesis
//! with an operator organisation: a gateway registers and commits a batch, reports an anomaly
//! and a rebirth in one finalized block; the routes then serve the chain head, the anomaly
//! record, the gateway's totals and the batch with its transaction's log inclusion proof (which
//! is checked here), and refuse what they cannot answer with the right status.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chipledger_node::api::router;
use chipledger_node::api_data::{BatchBody, DeviceDataBody, GatewayBody, verify_batch};
use chipledger_node::checkpoints::verifier_for;
use chipledger_node::config::{self, InitOptions, KeyFile};
use chipledger_node::consensus::Ledger;
use chipledger_node::executor::{Executor, Identity, TxStatus};
use chipledger_node::revocations::check_proven;
use chipledger_types::cbor::{Decode, Encode};
use chipledger_types::data_tx::*;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::genesis::Genesis;
use chipledger_types::merkle::{hash_leaf, verify_inclusion};
use chipledger_types::tx::{Payload, Role, SignedTx, TxBody, TxHash};
use tower::ServiceExt;

const CHAIN: &str = "dataapi";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chipledger-dataapi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An executor over a genesis with the default organisations plus operator `ops`.
fn executor(dir: &std::path::Path) -> Executor {
    let mut orgs = config::default_orgs();
    orgs.push(("ops".into(), Role::Operator));
    open(dir, orgs, false).0
}

/// An executor over a genesis of `orgs` (one validator each), as validator 0; with `cosign`
/// it holds validator 0's note key, so a one-validator network finalizes its checkpoints.
fn open(dir: &std::path::Path, orgs: Vec<(String, Role)>, cosign: bool) -> (Executor, Genesis) {
    let opts = InitOptions {
        out: dir.to_path_buf(),
        chain_id: CHAIN.into(),
        orgs,
        hosts: vec!["127.0.0.1".into()],
        base_port: 32000,
        governance_threshold: None,
        timestamp_ms: 0,
    };
    let genesis = config::init(&opts).expect("init");
    let name = genesis.validators[0].name.clone();
    let note_seeds = match cosign {
        true => vec![
            KeyFile::read(&dir.join(&name).join("keys/note.key"))
                .expect("note key")
                .secret_bytes(),
        ],
        false => vec![],
    };
    let me = Identity {
        index: 0,
        name: name.clone(),
        note_seeds,
    };
    let exec = Executor::open(&dir.join(&name).join("data/ledger"), genesis.clone(), me).expect("open");
    (exec, genesis)
}

/// Sign `payload` as `ops` with sequence number `seq`.
fn ops_tx(dir: &std::path::Path, seq: u64, payload: Payload) -> Vec<u8> {
    let key = KeyFile::read(&dir.join("orgs/ops.key")).expect("ops key");
    let body = TxBody {
        chain_id: CHAIN.into(),
        org: "ops".into(),
        key_id: key.public_key().id(),
        seq,
        expiry_height: 100,
        payload,
    };
    SignedTx::sign(body, &key).to_cbor()
}

/// Admit `txs` and finalize one block holding them on top of `parent`; returns the block.
fn finalize(exec: &Executor, parent: &[u8], txs: &[Vec<u8>], now_ms: u64) -> Vec<u8> {
    for t in txs {
        exec.submit(t.clone(), true).expect("admitted");
    }
    let block = exec.propose(parent, now_ms).expect("a block");
    exec.finalized(&block, &[]);
    block
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn data_routes_serve_committed_batches_heads_and_anomalies() {
    let dir = temp_dir("routes");
    let exec = executor(&dir);
    let tx = |seq, payload| ops_tx(&dir, seq, payload);
    let device = DeviceId([0x5a; 20]);
    let record_hashes = [[1u8; 32], [2; 32], [3; 32]];
    let commit = CommitBatch {
        gateway: "gw-1".into(),
        batch_seq: 1,
        root: batch_root(&record_hashes),
        record_count: 3,
        first_timestamp_ms: 1_000,
        last_timestamp_ms: 3_000,
        heads: vec![BatchHead {
            device,
            stream: "temp".into(),
            seq: 4,
            hash: [3; 32],
            records: 3,
            trust: TrustLevel::SelfReported,
        }],
    };
    let txs = [
        tx(1, Payload::RegisterGateway(RegisterGateway { name: "gw-1".into() })),
        tx(2, Payload::CommitBatch(commit.clone())),
        tx(
            3,
            Payload::ReportChainAnomaly(ReportChainAnomaly {
                gateway: "gw-1".into(),
                device,
                stream: "temp".into(),
                kind: AnomalyKind::Gap,
                seq: 2,
                expected_seq: Some(1),
                evidence: vec![],
                detail: "seq 1 never arrived".into(),
            }),
        ),
        tx(
            4,
            Payload::RequestRebirth(RequestRebirth {
                gateway: "gw-1".into(),
                device,
                edge_node: "edge-1".into(),
                reason: "gap at seq 1".into(),
            }),
        ),
    ];
    // One block with all four, finalized.
    finalize(&exec, &exec.genesis(), &txs, 1_000);
    let batch_tx = TxHash::of(&txs[1]);
    assert!(matches!(exec.tx_status(&batch_tx), TxStatus::Final { height: 1, .. }));

    let (router, _) = router(exec.clone());
    let id = device.to_string();
    let (status, text) = get(&router, &format!("/v1/data/devices/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let d: DeviceDataBody = serde_json::from_str(&text).expect("device body");
    assert_eq!((d.height, d.registered, d.revoked, d.records), (1, false, false, 3));
    assert_eq!(d.streams.len(), 1);
    let h = &d.streams[0];
    assert_eq!(
        (
            h.stream.as_str(),
            h.seq,
            h.hash.clone(),
            h.trust,
            h.missing,
            h.batch_seq
        ),
        ("temp", 4, hex::encode([3u8; 32]), 0, 1, 1)
    );
    assert_eq!(
        (d.anomalies.total, d.anomalies.counts["gap"], d.anomalies.rebirths),
        (1, 1, 1)
    );
    assert_eq!(d.anomalies.recent[0].detail, "seq 1 never arrived");
    assert_eq!(d.anomalies.last_rebirth.as_ref().unwrap().edge_node, "edge-1");
    assert!(d.proof.is_none(), "no final checkpoint yet: no state proof");
    // Filtering by trust: the head is self-reported.
    let (_, text) = get(&router, &format!("/v1/data/devices/{id}?min_trust=1")).await;
    let d: DeviceDataBody = serde_json::from_str(&text).expect("device body");
    assert!(d.streams.is_empty() && d.anomalies.total == 1);

    let (status, text) = get(&router, "/v1/data/batches/gw-1/1").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let b: BatchBody = serde_json::from_str(&text).expect("batch body");
    assert_eq!(
        (b.root.clone(), b.record_count, b.committed_height),
        (hex::encode(commit.root), 3, 1)
    );
    assert_eq!(
        (b.tx.clone(), b.operator.as_str(), b.heads.len()),
        (batch_tx.to_string(), "ops", 1)
    );
    // The CommitBatch transaction is in the log: its inclusion proof checks against the root.
    let p = b.tx_proof.expect("inclusion proof");
    let h32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
    let path: Vec<[u8; 32]> = p.hashes.iter().map(|s| h32(s)).collect();
    verify_inclusion(&hash_leaf(&txs[1]), p.leaf_index, p.log_size, &path, &h32(&p.root)).expect("proof verifies");
    assert_eq!(p.log_size, 4);

    let (status, text) = get(&router, "/v1/data/gateways/gw-1").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let g: GatewayBody = serde_json::from_str(&text).expect("gateway body");
    assert_eq!((g.operator.as_str(), g.last_batch, g.records), ("ops", 1, 3));

    let other = DeviceId([0x11; 20]).to_string();
    for (uri, want, needle) in [
        (
            "/v1/data/batches/gw-1/2".to_string(),
            StatusCode::NOT_FOUND,
            "no committed batch 2",
        ),
        ("/v1/data/batches/GW/1".into(), StatusCode::BAD_REQUEST, "gateway 'GW'"),
        ("/v1/data/gateways/gw-2".into(), StatusCode::NOT_FOUND, "no gateway"),
        ("/v1/data/devices/xyz".into(), StatusCode::BAD_REQUEST, "40 hex"),
        (format!("/v1/data/devices/{other}"), StatusCode::NOT_FOUND, "no data"),
        (
            format!("/v1/data/devices/{id}?min_trust=3"),
            StatusCode::BAD_REQUEST,
            "min_trust",
        ),
    ] {
        let (status, text) = get(&router, &uri).await;
        assert_eq!(status, want, "{uri}: {text}");
        assert!(text.contains(needle), "{uri}: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With a final checkpoint binding the current state (a one-validator network that cosigns),
/// the batch and the chain heads come with state proofs, and `verify_batch` checks the batch
/// answer offline with the validator's key alone — and refuses a doctored one.
#[tokio::test]
async fn batch_and_heads_are_proven_under_a_final_checkpoint() {
    let dir = temp_dir("proofs");
    let (exec, genesis) = open(&dir, vec![("ops".into(), Role::Operator)], true);
    let device = DeviceId([0x5b; 20]);
    let head = |seq, hash| BatchHead {
        device,
        stream: "temp".into(),
        seq,
        hash,
        records: 1,
        trust: TrustLevel::SelfReported,
    };
    let commit = |seq, h: BatchHead| CommitBatch {
        gateway: "gw-1".into(),
        batch_seq: seq,
        root: batch_root(&[h.hash]),
        record_count: 1,
        first_timestamp_ms: 5,
        last_timestamp_ms: 5,
        heads: vec![h],
    };
    let txs = [
        ops_tx(
            &dir,
            1,
            Payload::RegisterGateway(RegisterGateway { name: "gw-1".into() }),
        ),
        ops_tx(&dir, 2, Payload::CommitBatch(commit(1, head(1, [1; 32])))),
    ];
    let block = finalize(&exec, &exec.genesis(), &txs, 1_000);
    // A second block: the first batch's log proof is now against a larger checkpoint.
    finalize(
        &exec,
        &block,
        &[ops_tx(&dir, 3, Payload::CommitBatch(commit(2, head(2, [2; 32]))))],
        2_000,
    );

    let (router, _) = router(exec.clone());
    let known: Vec<_> = genesis
        .validators
        .iter()
        .map(|v| verifier_for(&v.name, &v.note_key).expect("ed25519 note key"))
        .collect();
    let origin = genesis.log_origin();
    let (status, text) = get(&router, "/v1/data/batches/gw-1/1").await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let body: BatchBody = serde_json::from_str(&text).expect("batch body");
    let p = body.tx_proof.as_ref().expect("inclusion proof");
    assert_eq!((p.log_size, p.checkpoint.is_some()), (3, true));
    let rec = verify_batch(&body, &origin, &known, genesis.quorum()).expect("the answer verifies");
    assert_eq!((rec.seq, rec.tx), (1, TxHash::of(&txs[1])));

    let mut doctored = serde_json::from_str::<BatchBody>(&text).unwrap();
    doctored.record_count = 7;
    assert!(verify_batch(&doctored, &origin, &known, genesis.quorum()).is_err());
    let mut other_tx = serde_json::from_str::<BatchBody>(&text).unwrap();
    other_tx.tx_cbor = Some(hex::encode(&txs[0]));
    assert!(verify_batch(&other_tx, &origin, &known, genesis.quorum()).is_err());
    assert!(
        verify_batch(&body, &origin, &known, 2).is_err(),
        "one signature is not a quorum of 2"
    );

    // The device's head is proven too: seq 2, set by batch 2.
    let (_, text) = get(&router, &format!("/v1/data/devices/{device}")).await;
    let d: DeviceDataBody = serde_json::from_str(&text).expect("device body");
    let proof = d.proof.expect("state proofs");
    let root: [u8; 32] = hex::decode(&proof.state_root).unwrap().try_into().unwrap();
    let key = head_key(&device, "temp");
    let bytes = check_proven(&root, &key, &proof.values[0])
        .expect("proof checks")
        .expect("present");
    let h = ChainHead::from_cbor(&bytes, chipledger_types::cbor::Limits::STATE).unwrap();
    assert_eq!((h.seq, h.batch_seq, d.streams[0].seq), (2, 2, 2));
    let _ = std::fs::remove_dir_all(&dir);
}
