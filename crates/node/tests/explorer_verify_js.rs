//! The explorer's in-browser verifier (`crates/node/explorer/verify.js`) against Rust: known
//! answers made here (a 4-validator checkpoint note signed with `chipledger_types::note`,
//! inclusion proofs from `chipledger_types::merkle`, and the recorded answers of a real
//! one-validator node with a final checkpoint) are handed to `verify.test.mjs`, run by Node's
//! test runner (Node's WebCrypto stands in for the browser's). Also the routes verify.js needs:
//! `GET /v1/tx/{hash}/raw` and the `CHIPLEDGER_TEST_HOOKS` tampered-proof hook.
//!
//! Needs `node` (Debian: `apt-get install -y nodejs`, ≥ 18).

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chipledger_node::api::{TxRawBody, TxStatusBody, router_with_options};
use chipledger_node::config::{self, InitOptions, KeyFile};
use chipledger_node::consensus::Ledger;
use chipledger_node::executor::{Executor, Identity};
use chipledger_state::smt::{Smt, verify};
use chipledger_types::cbor::Encode;
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::data_tx::RegisterGateway;
use chipledger_types::merkle::{MemoryStore, hash_leaf, inclusion_proof, root_from_store, verify_inclusion};
use chipledger_types::note::{Note, SIG_TYPE_ED25519, SignerKey, sign_note};
use chipledger_types::state_proof::{key_hash, state_extension_line, value_hash};
use chipledger_types::tx::{Payload, Role, SignedTx, TxBody, TxHash};
use serde_json::{Value, json};
use tower::ServiceExt;

const CHAIN: &str = "explorerjs";
const TEST_SCRIPT: &str = "explorer/verify.test.mjs";
const FIXTURE_ENV: &str = "CHIPLEDGER_VERIFY_FIXTURE";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chipledger-explorerjs-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// A one-validator network (operator org `ops`) whose validator holds its note key, so its
/// checkpoints are final.
fn executor(dir: &Path) -> Executor {
    let opts = InitOptions {
        out: dir.to_path_buf(),
        chain_id: CHAIN.into(),
        orgs: vec![("ops".into(), Role::Operator)],
        hosts: vec!["127.0.0.1".into()],
        base_port: 32100,
        governance_threshold: None,
        timestamp_ms: 0,
    };
    let genesis = config::init(&opts).expect("init");
    let name = genesis.validators[0].name.clone();
    let note_seed = KeyFile::read(&dir.join(&name).join("keys/note.key"))
        .expect("note key")
        .secret_bytes();
    let me = Identity {
        index: 0,
        name: name.clone(),
        note_seeds: vec![note_seed],
    };
    Executor::open(&dir.join(&name).join("data/ledger"), genesis, me).expect("open")
}

fn register_gateway(dir: &Path, seq: u64) -> Vec<u8> {
    let key = KeyFile::read(&dir.join("orgs/ops.key")).expect("ops key");
    let body = TxBody {
        chain_id: CHAIN.into(),
        org: "ops".into(),
        key_id: key.public_key().id(),
        seq,
        expiry_height: 100,
        payload: Payload::RegisterGateway(RegisterGateway {
            name: format!("gw-{seq}"),
        }),
    };
    SignedTx::sign(body, &key).to_cbor()
}

/// Two finalized blocks (two transactions, then one); returns the transactions in log order.
fn finalize_three(exec: &Executor, dir: &Path) -> Vec<Vec<u8>> {
    let txs: Vec<_> = (1..=3).map(|seq| register_gateway(dir, seq)).collect();
    let mut parent = exec.genesis();
    for (block_txs, now_ms) in [(&txs[..2], 1_000), (&txs[2..], 2_000)] {
        for t in block_txs {
            exec.submit(t.clone(), true).expect("admitted");
        }
        let block = exec.propose(&parent, now_ms).expect("a block");
        exec.finalized(&block, &[]);
        parent = block;
    }
    txs
}

async fn get(router: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).body(Body::empty()).expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_json(router: &axum::Router, uri: &str) -> Value {
    let (status, text) = get(router, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {text}");
    serde_json::from_str(&text).expect("JSON")
}

/// `/v1/tx/{hash}/raw` serves the final transaction's exact bytes; its leaf verifies under the
/// proof `/v1/tx/{hash}` serves; a pending or unknown hash is 404, a malformed one 400.
#[tokio::test]
async fn raw_transaction_route_serves_the_leaf_input() {
    let dir = temp_dir("raw");
    let exec = executor(&dir);
    let txs = finalize_three(&exec, &dir);
    let (router, _) = router_with_options(exec, None, false);
    for (index, tx) in txs.iter().enumerate() {
        let hash = TxHash::of(tx).to_string();
        let raw: TxRawBody = serde_json::from_value(get_json(&router, &format!("/v1/tx/{hash}/raw")).await).unwrap();
        assert_eq!((raw.hash.as_str(), raw.cbor.clone()), (hash.as_str(), hex::encode(tx)));
        assert_eq!(raw.height, if index < 2 { 1 } else { 2 });
        let status: TxStatusBody = serde_json::from_value(get_json(&router, &format!("/v1/tx/{hash}")).await).unwrap();
        let p = status.proof.expect("final: a proof");
        let h32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
        let path: Vec<_> = p.hashes.iter().map(|h| h32(h)).collect();
        let leaf = hash_leaf(&hex::decode(&raw.cbor).unwrap());
        assert_eq!((p.leaf_index, p.log_size), (index as u64, 3));
        verify_inclusion(&leaf, p.leaf_index, p.log_size, &path, &h32(&p.root)).expect("the leaf is in the log");
    }
    for (uri, want) in [
        (format!("/v1/tx/{}/raw", "00".repeat(32)), StatusCode::NOT_FOUND),
        ("/v1/tx/xyz/raw".to_string(), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(get(&router, &uri).await.0, want, "{uri}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With the hooks on, `/v1/test/tampered-proof/{hash}` is `/v1/tx/{hash}` with exactly the first
/// byte of the first path hash flipped; with them off it does not exist; never in the OpenAPI.
#[tokio::test]
async fn tampered_proof_hook_exists_only_when_enabled() {
    let dir = temp_dir("hook");
    let exec = executor(&dir);
    let txs = finalize_three(&exec, &dir);
    let hash = TxHash::of(&txs[0]).to_string();
    let hook = format!("/v1/test/tampered-proof/{hash}");

    let (off, doc) = router_with_options(exec.clone(), None, false);
    assert_eq!(get(&off, &hook).await.0, StatusCode::NOT_FOUND);
    let doc = serde_json::to_value(doc).unwrap();
    assert!(
        doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|p| !p.starts_with("/v1/test"))
    );

    let (on, doc_on) = router_with_options(exec, None, true);
    assert_eq!(
        serde_json::to_value(doc_on).unwrap(),
        doc,
        "the hooks are not in the OpenAPI document"
    );
    let honest = get_json(&on, &format!("/v1/tx/{hash}")).await;
    let mut tampered = get_json(&on, &hook).await;
    let first = tampered["proof"]["hashes"][0].as_str().unwrap().to_string();
    let want_first = honest["proof"]["hashes"][0].as_str().unwrap();
    assert_eq!(first[2..], want_first[2..]);
    let (a, b) = (
        u8::from_str_radix(&first[..2], 16).unwrap(),
        u8::from_str_radix(&want_first[..2], 16).unwrap(),
    );
    assert_eq!(a ^ b, 0xff, "first byte flipped");
    tampered["proof"]["hashes"][0] = Value::String(want_first.to_string());
    assert_eq!(tampered, honest, "nothing else changed");
    let (status, _) = get(&on, &format!("/v1/test/tampered-proof/{}", "00".repeat(32))).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unknown transaction has no proof to tamper with"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint for a 4-validator network, signed in Rust by 3 (a quorum), by 2, and by 3 with
/// one corrupted signature.
fn quorum_fixture() -> Value {
    let signers: Vec<SignerKey> = (1u8..=4)
        .map(|i| SignerKey::from_seed(&format!("validator-{i}"), SIG_TYPE_ED25519, &[i; 32]).unwrap())
        .collect();
    let origin = "chipledger.example/quorum";
    let root = hash_leaf(b"explorer");
    let text = Checkpoint {
        origin: origin.into(),
        size: 7,
        root,
        extensions: vec!["chipledger-state 9 AAAA".into()],
    }
    .to_text()
    .unwrap();
    let refs: Vec<&SignerKey> = signers.iter().collect();
    let mut bad = Note {
        text: text.clone(),
        signatures: refs[..3].iter().map(|s| s.sign(&text).unwrap()).collect(),
    };
    bad.signatures[1].sig[10] ^= 1;
    json!({
        "origin": origin,
        "size": 7,
        "root": hex::encode(root),
        "verifier_keys": signers.iter().map(|s| s.verifier().to_string()).collect::<Vec<_>>(),
        "key_ids": signers.iter().map(|s| s.verifier().key_id()).collect::<Vec<_>>(),
        "note_3_of_4": sign_note(&text, &refs[..3], 0).unwrap(),
        "note_2_of_4": sign_note(&text, &refs[1..3], 0).unwrap(),
        "note_bad_sig": bad.encode().unwrap(),
    })
}

/// Inclusion proofs over 13 leaves, for a spread of (index, size).
fn inclusion_fixture() -> Value {
    let leaves: Vec<Vec<u8>> = (0..13).map(|i| format!("leaf {i}").into_bytes()).collect();
    let store = MemoryStore::from_leaves(&leaves);
    let cases = [(0u64, 1u64), (0, 2), (1, 2), (5, 13), (12, 13), (7, 8), (6, 7), (3, 11)];
    cases
        .iter()
        .map(|&(index, size)| {
            let proof = inclusion_proof(&store, index, size).unwrap();
            json!({
                "index": index,
                "size": size,
                "leaf_input": hex::encode(&leaves[index as usize]),
                "root": hex::encode(root_from_store(&store, size).unwrap()),
                "hashes": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// A state map of 40 keys built by the `state` crate's sparse Merkle tree, proofs of present and
/// absent keys (the node's `ProvenValue` JSON shape), and a 3-of-4-signed checkpoint whose
/// `chipledger-state` line binds the root; each proof checked here with the Rust verifier first.
fn state_fixture() -> Value {
    let signers: Vec<SignerKey> = (1u8..=4)
        .map(|i| SignerKey::from_seed(&format!("validator-{i}"), SIG_TYPE_ED25519, &[i; 32]).unwrap())
        .collect();
    let mut tree = Smt::default();
    let mut values = std::collections::BTreeMap::new();
    for i in 0..40u32 {
        let key = format!("device/{i:040x}");
        let value = format!("value of {i}").into_bytes();
        tree.update(key_hash(key.as_bytes()), Some(value_hash(&value)));
        values.insert(key, value);
    }
    let root = tree.root();
    let prove = |key: &str| {
        let proof = tree.prove(&key_hash(key.as_bytes()));
        let value = values.get(key);
        verify(
            &root,
            &key_hash(key.as_bytes()),
            value.map(|v| value_hash(v)).as_ref(),
            &proof,
        )
        .expect("Rust verifies");
        json!({
            "key": key,
            "value": value.map(hex::encode),
            "siblings": proof.siblings.iter().map(hex::encode).collect::<Vec<_>>(),
            "leaf": proof.leaf.map(|(k, v)| [hex::encode(k), hex::encode(v)]),
        })
    };
    let present: Vec<Value> = (0..40u32)
        .step_by(7)
        .map(|i| prove(&format!("device/{i:040x}")))
        .collect();
    let absent: Vec<Value> = ["device/absent", "fw/installed/0000", "data/head/x/y"]
        .iter()
        .map(|k| prove(k))
        .collect();
    assert!(
        absent.iter().any(|p| !p["leaf"].is_null()),
        "one absence is proven by another key's leaf"
    );
    let origin = "chipledger.example/state";
    let text = Checkpoint {
        origin: origin.into(),
        size: 11,
        root: hash_leaf(b"log"),
        extensions: vec![state_extension_line(9, &root)],
    }
    .to_text()
    .unwrap();
    let refs: Vec<&SignerKey> = signers.iter().collect();
    json!({
        "origin": origin,
        "validators": signers.iter().map(|s| json!({"note_verifier_key": s.verifier().to_string()})).collect::<Vec<_>>(),
        "checkpoint": sign_note(&text, &refs[..3], 0).unwrap(),
        "state_height": 9,
        "state_root": hex::encode(root),
        "present": present,
        "absent": absent,
    })
}

/// The answers verify.js asks a node for, recorded from a real one with final checkpoints.
async fn node_fixture() -> Value {
    let dir = temp_dir("node");
    let exec = executor(&dir);
    let txs = finalize_three(&exec, &dir);
    let (router, _) = router_with_options(exec, None, true);
    let hash = TxHash::of(&txs[0]).to_string();
    let paths = [
        format!("/v1/tx/{hash}"),
        format!("/v1/tx/{hash}/raw"),
        format!("/v1/test/tampered-proof/{hash}"),
        "/v1/validators".to_string(),
        "/v1/status".to_string(),
    ];
    let mut responses = serde_json::Map::new();
    for p in paths {
        let body = get_json(&router, &p).await;
        responses.insert(p, body);
    }
    let proof = &responses[&format!("/v1/tx/{hash}")]["proof"];
    assert!(
        proof["checkpoint"].is_string(),
        "a final checkpoint covers the transaction"
    );
    let fixture = json!({
        "tx_hash": hash,
        "leaf_index": proof["leaf_index"],
        "log_size": proof["log_size"],
        "responses": responses,
    });
    let _ = std::fs::remove_dir_all(&dir);
    fixture
}

/// `node --test verify.test.mjs` with the fixtures above; fails (with the reason) if Node is absent.
#[tokio::test]
async fn verify_js_known_answers_under_node() {
    let fixture = json!({
        "quorum": quorum_fixture(),
        "inclusion": inclusion_fixture(),
        "node": node_fixture().await,
        "state": state_fixture(),
    });
    let path = std::env::temp_dir().join(format!("chipledger-verify-fixture-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(&fixture).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(TEST_SCRIPT);
    let out = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=tap")
        .arg(&script)
        .env(FIXTURE_ENV, &path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `node` ({e}): the explorer's verifier tests need Node.js ≥ 18 (apt-get install -y nodejs)"
            )
        });
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "verify.test.mjs failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
    assert!(
        stdout.contains("# skipped 0"),
        "every test ran with the fixture: {stdout}"
    );
}
