//! Writes the seed inputs (`seeds/<target>/seed-*`) from real encodings: transactions, blocks,
//! notes and proofs, records and MQTT frames signed by the fixture chips, COSE / EAT / SUIT /
//! X.509 from the device SDK, the update and command worlds of the device crate's tests, the
//! cose-wg and SUIT examples under `crates/device/tests/fixtures/` (sources in their READMEs),
//! and range proofs. Deterministic: `cargo run --example seeds --no-default-features --features
//! gateway` writes the same bytes every time. After fuzzing, `cargo fuzz cmin <target>` shrinks each directory.

use std::fs;
use std::path::{Path, PathBuf};

use chipledger_device::chip::Chip;
use chipledger_device::command::{ledger_signer, sign_receipt, sign_request};
use chipledger_device::eat::{CONTENT_FORMAT_OCTET_STREAM, EatClaims, Measurement, OemId, SwVersion};
use chipledger_device::ledger::{AcceptTransferProof, hwmodel_of, ueid_of};
use chipledger_device::reading::sign_reading_commitment;
use chipledger_device::record::RecordChainWriter;
use chipledger_device::seal::{EpochGrant, EpochKey, iv_for, payload_aad, seal_encrypt0, wrap_epoch_key_for};
use chipledger_device::update::ValidatorSetProof;
use chipledger_fuzz::device::{EPOCH_KEY, OWNER_KEY_SEED};
use chipledger_fuzz::fixture::update_fixture::{CHECKPOINT_HEIGHT, OWNER, State};
use chipledger_fuzz::fixture::{self, COMMAND_DEVICE, COMMAND_NOW_MS, EAT_NONCE, ORIGIN, validator};
use chipledger_fuzz::join_framed;
use chipledger_fuzz::mqtt::encode_publishes;
use chipledger_fuzz::notes::TLOG_LEAF;
use chipledger_gateway::topics::{DurableAck, EdgeSequencer, device_segment};
use chipledger_state::model::{KeyEntry, OrgRecord};
use chipledger_types::access_tx::Grantee;
use chipledger_types::block::{BLOCK_VERSION, Block, BlockHeader};
use chipledger_types::cbor::Encode;
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::command_tx::{
    AuthorizationProof, AuthorizationRecord, Authorize, CommandMessage, CommandReceipt, CommandRequest, Outcome,
    RecordCommand, authz_key, org_record_key,
};
use chipledger_types::data_tx::{BatchHead, CommitBatch, RegisterGateway, TrustLevel};
use chipledger_types::device_tx::{AcceptTransfer, Attest, CaId, DeviceId, RegisterDevice};
use chipledger_types::keys::SigningKey;
use chipledger_types::merkle::{MemoryStore, inclusion_proof, root_from_store};
use chipledger_types::note::sign_note;
use chipledger_types::tlog_proof::TlogProof;
use chipledger_types::tx::{GovAction, Payload, Role, SignedTx, TxBody, TxHash};
use chipledger_types::validator_record::{KEY_VALIDATOR_INDEX, validator_key};
use chipledger_types::zk_tx::ReadingCommitment;
use chipledger_zk::{Blinding, commit, prove_bounds};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let txs = transactions();
    let mut out = Out { root };
    out.put("tx", &txs);
    out.put("block", &blocks(&txs));
    out.put("cbor", &txs);
    out.put("note", &notes());
    out.put("tlog_proof", &[("inclusion", tlog_proof())]);
    out.put("merkle", &bytes_seeds(&[(0, 16), (1, 64), (2, 200)]));
    out.put("state_proof", &state_proofs());
    out.put("record", &records());
    out.put("record_chain", &bytes_seeds(&[(3, 30), (4, 90), (5, 300)]));
    out.put("mqtt", &mqtt());
    out.put("cose", &cose());
    out.put("suit", &suit());
    out.put("eat", &eat());
    out.put("x509", &x509());
    out.put("command", &command());
    out.put("update", &update());
    out.put("range_proof", &range_proofs());
    out.put("api", &api(&txs));
}

type Seeds = Vec<(&'static str, Vec<u8>)>;

struct Out {
    root: PathBuf,
}

impl Out {
    fn put<S: AsRef<str>>(&mut self, target: &str, seeds: &[(S, Vec<u8>)]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).expect("seed directory");
        for (name, bytes) in seeds {
            fs::write(dir.join(format!("seed-{}", name.as_ref())), bytes).expect("write seed");
        }
        println!("{target}: {} seeds", seeds.len());
    }
}

/// Deterministic filler bytes (SHA-256 counter mode) for the structure-aware targets.
fn bytes_seeds(specs: &[(u8, usize)]) -> Vec<(String, Vec<u8>)> {
    use sha2::{Digest, Sha256};
    specs
        .iter()
        .map(|&(label, len)| {
            let bytes = (0u32..)
                .flat_map(|i| Sha256::digest([&[label][..], &i.to_be_bytes()].concat()).to_vec())
                .take(len)
                .collect();
            (format!("bytes-{label}-{len}"), bytes)
        })
        .collect()
}

fn org_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&[1; 32])
}

/// One transaction per payload family, signed by an Ed25519 and a P-256 organisation key.
fn transactions() -> Seeds {
    let fleet = fixture::fleet();
    let chip = &fleet.chips[0];
    let device = DeviceId(chip.chip.device_id());
    let p256_org = SigningKey::p256_from_bytes(&[3; 32]).expect("scalar");
    let payloads: Vec<(&'static str, Payload)> = vec![
        (
            "approve",
            Payload::Approve {
                proposal: TxHash([4; 32]),
            },
        ),
        (
            "statement",
            Payload::Statement {
                topic: "notice".into(),
                body: b"maintenance window".to_vec(),
            },
        ),
        (
            "rotate-key",
            Payload::Propose(GovAction::RotateOrgKey {
                org: "acme".into(),
                old: org_key().public_key().id(),
                new: p256_org.public_key(),
                effective_height: 10,
            }),
        ),
        (
            "issue-credits",
            Payload::Propose(GovAction::IssueCredits {
                org: "acme".into(),
                amount: 1000,
            }),
        ),
        (
            "register-device",
            Payload::RegisterDevice(RegisterDevice {
                ca: CaId(chipledger_device::cert::key_id(fleet.ca_key.verifying_key())),
                deviceid_cert_der: chip.deviceid_der.clone(),
                model: 5,
                owner: "city".into(),
            }),
        ),
        (
            "attest",
            Payload::Attest(Attest {
                device,
                alias_cert_der: chip.layer.alias_cert_der.clone(),
                eat: chip.chip.sign_eat(&claims(chip)).expect("EAT"),
            }),
        ),
        (
            "accept-transfer",
            Payload::AcceptTransfer(AcceptTransfer {
                device,
                device_proof: Some(chip.chip.sign_accept_transfer("city", EAT_NONCE).expect("proof")),
            }),
        ),
        (
            "register-gateway",
            Payload::RegisterGateway(RegisterGateway { name: "gw-1".into() }),
        ),
        (
            "commit-batch",
            Payload::CommitBatch(CommitBatch {
                gateway: "gw-1".into(),
                batch_seq: 1,
                root: [9; 32],
                record_count: 2,
                first_timestamp_ms: 10,
                last_timestamp_ms: 20,
                heads: vec![BatchHead {
                    device,
                    stream: "temp".into(),
                    seq: 5,
                    hash: [1; 32],
                    records: 2,
                    trust: TrustLevel::Attested,
                }],
            }),
        ),
        (
            "authorize",
            Payload::Authorize(Authorize {
                grantee: Grantee::Org("tech".into()),
                devices: vec![COMMAND_DEVICE],
                actions: vec!["diagnostic".into()],
                expires_ms: COMMAND_NOW_MS,
                purpose: "diagnostics".into(),
            }),
        ),
        (
            "record-command",
            Payload::RecordCommand(RecordCommand {
                authorization: TxHash([0xa0; 32]),
                device: COMMAND_DEVICE,
                request_hash: [5; 32],
                action: "diagnostic".into(),
            }),
        ),
    ];
    let mut out = Vec::new();
    for (i, (name, payload)) in payloads.into_iter().enumerate() {
        let key = if i % 3 == 2 { &p256_org } else { &org_key() };
        let body = TxBody {
            chain_id: "fuzz-net".into(),
            org: "acme".into(),
            key_id: key.public_key().id(),
            seq: i as u64 + 1,
            expiry_height: 1000,
            payload,
        };
        out.push((name, SignedTx::sign(body, key).to_cbor()));
    }
    out
}

fn blocks(txs: &Seeds) -> Seeds {
    let block = |txs: Vec<Vec<u8>>| {
        Block {
            header: BlockHeader {
                version: BLOCK_VERSION,
                height: 7,
                parent: [1; 32],
                timestamp_ms: 1_800_000_000_000,
                proposer: 2,
                tx_count: txs.len() as u32,
                log_size: 40,
                log_root: [2; 32],
                state_root: [3; 32],
            },
            txs,
        }
        .to_cbor()
    };
    vec![
        ("empty", block(Vec::new())),
        ("two-txs", block(txs.iter().take(2).map(|(_, t)| t.clone()).collect())),
    ]
}

/// A state checkpoint cosigned by three validators, and the plain C2SP note of a bare checkpoint.
fn notes() -> Seeds {
    let world = &fixture::world().0;
    let v: Vec<_> = (0..4).map(validator).collect();
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: 12,
        root: [7; 32],
        extensions: Vec::new(),
    }
    .to_text()
    .expect("checkpoint");
    vec![
        (
            "state-checkpoint",
            world
                .state
                .checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &[&v[0], &v[1], &v[2]])
                .into_bytes(),
        ),
        (
            "plain-checkpoint",
            sign_note(&text, &[&v[3]], 0).expect("note").into_bytes(),
        ),
        ("verifier-key", v[0].verifier().to_string().into_bytes()),
    ]
}

/// A tlog-proof of [`TLOG_LEAF`] at index 5 of 13 under a quorum checkpoint.
fn tlog_proof() -> Vec<u8> {
    let leaves: Vec<Vec<u8>> = (0..13u64)
        .map(|i| {
            if i == 5 {
                TLOG_LEAF.to_vec()
            } else {
                i.to_be_bytes().to_vec()
            }
        })
        .collect();
    let store = MemoryStore::from_leaves(&leaves);
    let text = Checkpoint {
        origin: ORIGIN.into(),
        size: 13,
        root: root_from_store(&store, 13).expect("root"),
        extensions: Vec::new(),
    }
    .to_text()
    .expect("checkpoint");
    let v: Vec<_> = (0..3).map(validator).collect();
    TlogProof {
        extra: Some(b"fuzz".to_vec()),
        index: 5,
        hashes: inclusion_proof(&store, 5, 13).expect("proof"),
        checkpoint_note: sign_note(&text, &v.iter().collect::<Vec<_>>(), 0).expect("note"),
    }
    .format()
    .into_bytes()
}

fn state_proofs() -> Seeds {
    let world = &fixture::world().0;
    vec![
        ("present", world.state.prove(KEY_VALIDATOR_INDEX).to_cbor()),
        ("absent", world.state.prove(b"org/nobody").to_cbor()),
    ]
}

/// Two chained records from each chip.
fn signed_records() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, chip) in fixture::fleet().chips.iter().enumerate() {
        let mut chain = RecordChainWriter::new(DeviceId(chip.chip.device_id()), "temperature").expect("chain");
        for seq in 1..=2u64 {
            let device = DeviceId(chip.chip.device_id());
            let aad = payload_aad(device, "temperature", seq, 0);
            let key = EpochKey::from_bytes(EPOCH_KEY);
            let payload = seal_encrypt0(&key, &iv_for(seq), b"21.5 C", &aad).expect("payload");
            let r = chip
                .chip
                .sign_record(&mut chain, 1_000 * seq, 0, payload)
                .expect("record");
            out.push((format!("chip{i}-seq{seq}"), r.bytes));
        }
    }
    out
}

fn records() -> Vec<(String, Vec<u8>)> {
    signed_records()
}

/// An edge node's birth, two DDATA records per chip, and a DACK.
fn mqtt() -> Vec<(String, Vec<u8>)> {
    let mut publishes = Vec::new();
    let mut session = EdgeSequencer::new(1);
    publishes.push(("chipledger/v1/plant/NBIRTH/edge-1".to_string(), session.birth(b"")));
    for (i, (_, record)) in signed_records().into_iter().enumerate() {
        let chip = &fixture::fleet().chips[i / 2];
        let segment = device_segment(&DeviceId(chip.chip.device_id()));
        publishes.push((
            format!("chipledger/v1/plant/DDATA/edge-1/{segment}"),
            session.next(&record),
        ));
    }
    let ack = DurableAck {
        stream: "temperature".into(),
        seq: 2,
    };
    let segment = device_segment(&DeviceId(fixture::fleet().chips[0].chip.device_id()));
    publishes.push((format!("chipledger/v1/plant/DACK/gateway/{segment}"), ack.encode()));
    publishes.push(("chipledger/v1/plant/NDEATH/edge-1".to_string(), session.death()));
    vec![("session".into(), encode_publishes(&publishes))]
}

fn claims(chip: &fixture::ProvisionedChip) -> EatClaims {
    EatClaims {
        nonce: EAT_NONCE.to_vec(),
        ueid: ueid_of(&chip.chip.device_id()).to_vec(),
        oemid: OemId::Random([3; 16]),
        hwmodel: hwmodel_of(5).to_vec(),
        swname: fixture::FIRMWARE.name.into(),
        swversion: SwVersion {
            version: fixture::FIRMWARE.version.into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: CONTENT_FORMAT_OCTET_STREAM,
            value: fixture::FIRMWARE.measurement().to_vec(),
        }],
    }
}

/// COSE_Sign1 by both chips, COSE_Encrypt0, a key wrap, and the cose-wg examples' outputs.
fn cose() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, chip) in fixture::fleet().chips.iter().enumerate() {
        out.push((format!("eat-chip{i}"), chip.chip.sign_eat(&claims(chip)).expect("EAT")));
    }
    let key = EpochKey::from_bytes(EPOCH_KEY);
    out.push((
        "encrypt0".into(),
        seal_encrypt0(&key, &[0; 12], b"21.5 C", b"").expect("encrypt0"),
    ));
    let owner = fixture::p256_key(OWNER_KEY_SEED);
    let owner_public = p256::PublicKey::from(owner.verifying_key());
    let grant = EpochGrant {
        device: DeviceId([1; 20]),
        epoch: 3,
        started_ms: 1_000,
        key: EpochKey::from_bytes(EPOCH_KEY),
    };
    let ephemeral = p256::NonZeroScalar::from_repr(fixture::p256_key(21).to_bytes()).expect("scalar");
    out.push((
        "key-wrap".into(),
        wrap_epoch_key_for(&owner_public, &grant, &ephemeral).expect("wrap"),
    ));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/device/tests/fixtures/cose");
    for entry in fs::read_dir(&dir).expect("cose fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).expect("read")).expect("json");
            if let Some(hex_cbor) = json["output"]["cbor"].as_str() {
                let name = path.file_stem().expect("name").to_string_lossy().into_owned();
                out.push((format!("cose-wg-{name}"), hex::decode(hex_cbor).expect("hex")));
            }
        }
    }
    out
}

/// The update world's envelope and the SUIT examples (`crates/device/tests/fixtures/suit/`).
fn suit() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("release".to_string(), fixture::world().0.envelope.clone())];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/device/tests/fixtures/suit");
    for entry in fs::read_dir(&dir).expect("suit fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "suit") {
            let name = path.file_stem().expect("name").to_string_lossy().into_owned();
            out.push((format!("ietf-{name}"), fs::read(&path).expect("read")));
        }
    }
    out
}

/// Evidence, accept-transfer proofs and reading commitments from both chips, and bare payloads.
fn eat() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, chip) in fixture::fleet().chips.iter().enumerate() {
        out.push((format!("eat-chip{i}"), chip.chip.sign_eat(&claims(chip)).expect("EAT")));
        let proof = chip.chip.sign_accept_transfer("city", EAT_NONCE).expect("proof");
        out.push((format!("accept-transfer-chip{i}"), proof));
        let reading = reading(chip);
        out.push((format!("reading-payload-chip{i}"), reading.to_payload()));
        let signed = match i {
            0 => sign_reading_commitment(&reading, &fixture::statement_key_p256()),
            _ => sign_reading_commitment(&reading, &fixture::statement_key_ed25519()),
        };
        out.push((format!("reading-chip{i}"), signed.expect("reading")));
    }
    let proof = AcceptTransferProof {
        device_id: [1; 20],
        to_org: "city".into(),
        nonce: EAT_NONCE.to_vec(),
    };
    out.push(("accept-transfer-payload".into(), proof.to_payload()));
    out
}

fn reading(chip: &fixture::ProvisionedChip) -> ReadingCommitment {
    ReadingCommitment {
        device: DeviceId(chip.chip.device_id()),
        stream: "co2".into(),
        seq: 3,
        record_hash: [4; 32],
        quantity: "co2_ppm".into(),
        commitment: commit(412, &blinding()).0,
    }
}

fn blinding() -> Blinding {
    Blinding::derive(b"fuzz seed secret bytes", b"co2").expect("blinding")
}

fn x509() -> Vec<(String, Vec<u8>)> {
    let fleet = fixture::fleet();
    fleet
        .chips
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let chain = join_framed(&[&fleet.ca_der, &c.deviceid_der, &c.layer.alias_cert_der]);
            (format!("chain-chip{i}"), chain)
        })
        .collect()
}

/// The command scene of `crates/device/tests/command_verify.rs`: an authorized request with its
/// proof, and a receipt by each chip.
fn command() -> Vec<(String, Vec<u8>)> {
    let authz_id = TxHash([0xa0; 32]);
    let tech = fixture::command_grantee_key();
    let authz = AuthorizationRecord {
        id: authz_id,
        owner: OWNER.into(),
        grantee: Grantee::Org("tech".into()),
        devices: vec![DeviceId([0x01; 20]), COMMAND_DEVICE],
        actions: vec!["diagnostic".into(), "reboot".into()],
        expires_ms: COMMAND_NOW_MS + 60_000,
        purpose: "diagnostics".into(),
        created_height: 100,
        created_ms: COMMAND_NOW_MS - 60_000,
        revoked: None,
    };
    let org = OrgRecord {
        name: "tech".into(),
        roles: vec![Role::Operator],
        keys: vec![KeyEntry {
            key: tech.public_key(),
            from_height: 0,
            until_height: None,
        }],
        added_height: 0,
        removed_height: None,
    };
    let mut state = State::with_filler();
    state.put(authz_key(&authz_id), authz.to_cbor());
    state.put(org_record_key("tech"), org.to_cbor());
    let v: Vec<_> = (0..4).map(validator).collect();
    let proof = AuthorizationProof {
        checkpoint: state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &[&v[0], &v[1], &v[2]]),
        authorization: state.prove(&authz_key(&authz_id)),
        grantee_org: Some(state.prove(&org_record_key("tech"))),
    };
    let request = CommandRequest {
        device: COMMAND_DEVICE,
        authorization: authz_id,
        action: "diagnostic".into(),
        args: b"battery".to_vec(),
        client_token: "tok-1".into(),
        issued_ms: COMMAND_NOW_MS,
    };
    let signed = sign_request(&request, ledger_signer(&tech)).expect("request");
    let mut out = vec![(
        "message".to_string(),
        CommandMessage { request: signed, proof }.to_cbor(),
    )];
    for i in 0..2 {
        let receipt = CommandReceipt {
            device: COMMAND_DEVICE,
            request_hash: [5; 32],
            authorization: authz_id,
            action: "diagnostic".into(),
            outcome: Outcome::Accepted,
            result: b"battery 91%".to_vec(),
            client_token: "tok-1".into(),
            device_ms: COMMAND_NOW_MS,
        };
        let signed = match i {
            0 => sign_receipt(&receipt, &fixture::statement_key_p256()),
            _ => sign_receipt(&receipt, &fixture::statement_key_ed25519()),
        };
        out.push((format!("receipt-{i}"), signed.expect("receipt")));
    }
    out
}

/// The update world's bundle, and a validator-set proof of its state.
fn update() -> Seeds {
    let world = &fixture::world().0;
    let v: Vec<_> = (0..4).map(validator).collect();
    let set = ValidatorSetProof {
        checkpoint: world
            .state
            .checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &[&v[0], &v[1], &v[2]]),
        index: world.state.prove(KEY_VALIDATOR_INDEX),
        validators: (0..4)
            .map(|i| world.state.prove(&validator_key(&format!("v{i}"))))
            .collect(),
    };
    vec![("bundle", world.bundle().to_bytes()), ("validator-set", set.to_bytes())]
}

/// Proofs that 412 lies in [400, 450] (8 bits) and in [0, 2^32) (32 bits).
fn range_proofs() -> Seeds {
    let seed = |min: u64, max: u64, bits: u8| {
        let proof = prove_bounds(412, &blinding(), min, max, bits).expect("proof");
        let mut out = commit(412, &blinding()).0.to_vec();
        out.extend_from_slice(&min.to_be_bytes());
        out.extend_from_slice(&max.to_be_bytes());
        out.push(bits);
        out.extend_from_slice(&proof);
        out
    };
    vec![
        ("8-bit", seed(400, 450, 8)),
        ("32-bit", seed(0, u64::from(u32::MAX), 32)),
    ]
}

fn api(txs: &Seeds) -> Seeds {
    let hexes: Vec<String> = txs.iter().take(3).map(|(_, t)| hex::encode(t)).collect();
    let batch = serde_json::json!({ "txs": hexes }).to_string().into_bytes();
    let device = hex::encode(fixture::fleet().chips[0].chip.device_id());
    vec![
        ("batch", batch),
        (
            "devices-query",
            format!("model=5&owner=city&status=active&q=ab&limit=10&after={device}").into_bytes(),
        ),
        ("inclusion-query", b"index=3&size=10".to_vec()),
        ("consistency-query", b"from=3&to=10".to_vec()),
        ("state-query", b"key=org%2Fcity".to_vec()),
        ("audit-subject", format!("device/{device}").into_bytes()),
    ]
}
