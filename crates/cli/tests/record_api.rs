//! The gateway's record API over real HTTP on a real record store: a P-256 device publishes
//! sealed readings and its epoch-key records, the gateway stores and batches them, a small
//! in-process "ledger" logs each `CommitBatch` transaction and cosigns checkpoints with four
//! validator note keys. Then every committed record's proof verifies under a quorum, batches
//! not yet final answer `409 not_final_yet` (and become provable once final), unknown records
//! `404`, listings page through everything with trust filters, the owner decrypts through the
//! proven `_epoch-keys` record, a grantee with an epoch key too, the per-batch ledger proof is
//! fetched once, and a proof file verifies offline (and not once tampered with).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chipledger_cli::data_cmd::{
    Decryptor, FetchError, NetworkTrust, Opened, fetch_record, fetch_record_page, fetch_record_proof, open_record,
    verify_record_file,
};
use chipledger_cli::gateway_http::{RecordApi, RecordListQuery, RecordProofJson, TxProofSource, spawn};
use chipledger_cli::simulate::SimKey;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::record::RecordChainWriter;
use chipledger_device::seal::{EpochEntropy, EpochPolicy, SealingState};
use chipledger_gateway::{Gateway, GatewayConfig, MemoryDirectory, SubmitError, Submitter, TxStatus};
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::data_tx::{CommitBatch, TrustLevel};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::SigningKey;
use chipledger_types::merkle::{Hash, MemoryStore, inclusion_proof};
use chipledger_types::note::{SIG_TYPE_ED25519, SignerKey, sign_note};
use chipledger_types::record::STREAM_EPOCH_KEYS;
use chipledger_types::record_proof::TxInclusion;
use chipledger_types::state_proof::state_extension_line;
use chipledger_types::tx::{Payload, SignedTx, TxBody, TxHash};

const ORIGIN: &str = "chipledger.example/record-api-test";
const GATEWAY: &str = "gw-api";
const DATA: &str = "temperature";
/// Data records per epoch (the device rotates its data key after this many).
const EPOCH_RECORDS: u64 = 4;
const NO_WAIT: Duration = Duration::ZERO;

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chipledger-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The ledger's log as the test runs it: transactions appended, checkpoints cosigned by four
/// validator keys up to `final_size` leaves.
/// Log nodes, and per batch seq the `CommitBatch` tx bytes and its leaf index.
type LogState = (MemoryStore, HashMap<u64, (Vec<u8>, u64)>);

struct Ledger {
    log: Mutex<LogState>,
    final_size: Mutex<u64>,
    signers: Vec<SignerKey>,
    proofs_served: AtomicUsize,
}

impl Ledger {
    fn new() -> Self {
        let signers = (0..4u8)
            .map(|i| SignerKey::from_seed(&format!("validator-{i}"), SIG_TYPE_ED25519, &[i + 40; 32]).unwrap())
            .collect();
        Self {
            log: Mutex::new((MemoryStore::new(), HashMap::new())),
            final_size: Mutex::new(0),
            signers,
            proofs_served: AtomicUsize::new(0),
        }
    }

    fn trust(&self) -> NetworkTrust {
        NetworkTrust {
            keys: self.signers.iter().map(|s| s.verifier().clone()).collect(),
            origin: ORIGIN.into(),
            quorum: 3,
        }
    }

    /// Every logged transaction becomes final under a new checkpoint.
    fn finalize(&self) {
        *self.final_size.lock().unwrap() = self.log.lock().unwrap().0.size();
    }
}

impl TxProofSource for Ledger {
    fn final_tx_proof(&self, gateway: &str, seq: u64) -> Result<Option<TxInclusion>, String> {
        assert_eq!(gateway, GATEWAY);
        let size = *self.final_size.lock().unwrap();
        let log = self.log.lock().unwrap();
        let Some((tx, index)) = log.1.get(&seq).cloned() else {
            return Ok(None);
        };
        if index >= size {
            return Ok(None);
        }
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: log.0.root(size).unwrap(),
            extensions: vec![state_extension_line(size, &[0; 32])],
        }
        .to_text()
        .unwrap();
        // Three of four validators cosigned: exactly a quorum.
        let signers: Vec<&SignerKey> = self.signers.iter().skip(1).collect();
        self.proofs_served.fetch_add(1, Ordering::SeqCst);
        Ok(Some(TxInclusion {
            tx,
            leaf_index: index,
            log_size: size,
            path: inclusion_proof(&log.0, index, size).unwrap(),
            checkpoint: sign_note(&text, &signers, 1_764_000_000).unwrap(),
        }))
    }
}

/// Signs each `CommitBatch` as the operator and appends it to the ledger's log.
struct LedgerSubmitter {
    ledger: Arc<Ledger>,
    key: SigningKey,
    seq: u64,
}

impl Submitter for LedgerSubmitter {
    fn submit(&mut self, batch: &CommitBatch) -> Result<TxHash, SubmitError> {
        self.seq += 1;
        let body = TxBody {
            chain_id: "record-api-test".into(),
            org: "ops".into(),
            key_id: self.key.public_key().id(),
            seq: self.seq,
            expiry_height: 1_000,
            payload: Payload::CommitBatch(batch.clone()),
        };
        let tx = chipledger_types::cbor::Encode::to_cbor(&SignedTx::sign(body, &self.key));
        let mut log = self.ledger.log.lock().unwrap();
        let index = log.0.size();
        log.0.append(&tx);
        log.1.insert(batch.batch_seq, (tx.clone(), index));
        Ok(TxHash::of(&tx))
    }
    fn status(&mut self, _tx: &TxHash) -> Result<TxStatus, SubmitError> {
        Ok(TxStatus::Final)
    }
    fn committed_root(&mut self, _gateway: &str, _batch_seq: u64) -> Result<Option<Hash>, SubmitError> {
        Ok(None)
    }
}

/// A registered P-256 device sealing to `owner`, writing its data and epoch-key streams.
struct Device {
    key: SimKey,
    data: RecordChainWriter,
    epoch_keys: RecordChainWriter,
    sealing: SealingState,
    now_ms: u64,
}

impl Device {
    fn new(owner: &p256::SecretKey) -> Self {
        let key = SimKey::derive(DeviceKeyAlg::P256, 11, 0);
        let id = key.device_id();
        let policy = EpochPolicy {
            records_max: EPOCH_RECORDS,
            duration_ms: u64::MAX / 2,
        };
        Self {
            data: RecordChainWriter::new(id, DATA).unwrap(),
            epoch_keys: RecordChainWriter::new(id, STREAM_EPOCH_KEYS).unwrap(),
            sealing: SealingState::new(id, owner.public_key(), policy, 1),
            key,
            now_ms: 1_764_000_000_000,
        }
    }

    /// The next reading's records: an epoch-key record first when the epoch rotates.
    fn next(&mut self, reading: &str) -> Vec<Vec<u8>> {
        self.now_ms += 1_000;
        let mut out = Vec::new();
        if self.sealing.needs_rotation(self.now_ms) {
            let n = self.epoch_keys.next_seq() as u8;
            let entropy = EpochEntropy {
                data_key: [n; 16],
                ephemeral_secret: [n + 100; 32],
            };
            let start = self.sealing.rotate(self.now_ms, entropy).unwrap();
            let signed = self
                .epoch_keys
                .sign_next(self.key.signer(), self.now_ms, start.epoch, start.wrap);
            out.push(signed.unwrap().1.bytes);
        }
        let seq = self.data.next_seq();
        let (epoch, sealed) = self.sealing.seal(self.now_ms, DATA, seq, reading.as_bytes()).unwrap();
        let signed = self.data.sign_next(self.key.signer(), self.now_ms, epoch, sealed);
        out.push(signed.unwrap().1.bytes);
        out
    }
}

fn owner() -> p256::SecretKey {
    p256::SecretKey::from_slice(&[0x42; 32]).unwrap()
}

struct Fixture {
    tmp: TempDir,
    _runtime: tokio::runtime::Runtime,
    url: String,
    device: DeviceId,
    ledger: Arc<Ledger>,
    trust: NetworkTrust,
}

/// Readings 1..=8 (and their epoch keys) in batch 1, final; readings 9..=10 in batch 2,
/// logged but not final; reading 11 pending.
fn fixture(name: &str) -> Fixture {
    let tmp = TempDir::new(name);
    let config = GatewayConfig {
        max_batch_age: Duration::from_secs(3600),
        ..GatewayConfig::new(GATEWAY)
    };
    let mut gateway = Gateway::open(&tmp.0.join("records.redb"), config).unwrap();
    let mut device = Device::new(&owner());
    let mut directory = MemoryDirectory::new();
    directory.register(device.key.device_id(), device.key.public());
    let ledger = Arc::new(Ledger::new());
    let mut submitter = LedgerSubmitter {
        ledger: ledger.clone(),
        key: SigningKey::ed25519_from_seed(&[5; 32]),
        seq: 0,
    };
    let mut ingest = |g: &mut Gateway, readings: std::ops::RangeInclusive<u32>| {
        for i in readings {
            for record in device.next(&format!("reading {i}")) {
                g.ingest(&record, &directory).unwrap();
            }
        }
    };
    ingest(&mut gateway, 1..=8);
    gateway.cut_batch().unwrap().unwrap();
    gateway.submit_batches(&mut submitter).unwrap();
    ledger.finalize();
    gateway.submit_batches(&mut submitter).unwrap();
    ingest(&mut gateway, 9..=10);
    gateway.cut_batch().unwrap().unwrap();
    gateway.submit_batches(&mut submitter).unwrap();
    ingest(&mut gateway, 11..=11);
    let device_id = device.key.device_id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api = Arc::new(RecordApi::new(Arc::new(Mutex::new(gateway)), ledger.clone()).unwrap());
    let addr = runtime.block_on(spawn("127.0.0.1:0".parse().unwrap(), api)).unwrap();
    Fixture {
        tmp,
        _runtime: runtime,
        url: format!("http://{addr}"),
        device: device_id,
        trust: ledger.trust(),
        ledger,
    }
}

#[test]
fn committed_records_prove_and_the_rest_say_why_not() {
    let f = fixture("record-api-proofs");
    // Batch 1: readings 1..=8 and the epoch-key records of epochs 1 and 2.
    let wanted = (1..=8u64)
        .map(|s| (DATA, s))
        .chain([(STREAM_EPOCH_KEYS, 1), (STREAM_EPOCH_KEYS, 2)]);
    for (stream, seq) in wanted {
        let body = fetch_record(&f.url, &f.device, stream, seq).unwrap();
        assert_eq!((body.trust, body.batch), (1, 1), "{stream}/{seq}");
        let proof = fetch_record_proof(&f.url, &f.device, stream, seq).unwrap();
        let p = f.trust.verify(&proof).unwrap_or_else(|e| panic!("{stream}/{seq}: {e}"));
        assert_eq!((p.device, p.stream.as_str(), p.seq), (f.device, stream, seq));
        assert_eq!((p.gateway.as_str(), p.batch_seq), (GATEWAY, 1));
        assert_eq!(p.chain_trust, Some(TrustLevel::Registered));
        assert_eq!(p.signers, 3);
        assert_eq!(p.hash.to_string(), body.hash);
    }
    assert_eq!(
        f.ledger.proofs_served.load(Ordering::SeqCst),
        1,
        "the ledger half is fetched once per batch"
    );

    // Batch 2 is logged but not final; reading 11 is in no batch; seq 99 does not exist.
    for seq in [9, 11] {
        match fetch_record_proof(&f.url, &f.device, DATA, seq) {
            Err(FetchError::NotFinalYet { .. }) => {}
            other => panic!("seq {seq}: {other:?}"),
        }
    }
    assert!(matches!(
        fetch_record_proof(&f.url, &f.device, DATA, 99),
        Err(FetchError::NotFound { .. })
    ));
    match fetch_record_proof(&f.url, &DeviceId([0; 20]), "no-such-stream", 1) {
        Err(FetchError::NotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
    let bad = reqwest::blocking::get(format!("{}/v1/records/zz/{DATA}/1", f.url)).unwrap();
    assert_eq!(bad.status(), 400);

    // Once final, batch 2 proves too.
    f.ledger.finalize();
    let proof = fetch_record_proof(&f.url, &f.device, DATA, 10).unwrap();
    assert_eq!(f.trust.verify(&proof).unwrap().batch_seq, 2);
}

#[test]
fn listings_page_and_filter_by_trust() {
    let f = fixture("record-api-list");
    let mut all = Vec::new();
    let mut q = RecordListQuery {
        limit: Some(4),
        ..Default::default()
    };
    for _ in 0..10 {
        let page = fetch_record_page(&f.url, &f.device, &q).unwrap();
        assert!(page.records.len() <= 4);
        all.extend(page.records);
        match page.next {
            Some(next) => q.after = Some(next),
            None => break,
        }
    }
    // 11 readings, and epoch keys for epochs 1..=3 (rotation every EPOCH_RECORDS readings).
    let data: Vec<u64> = all.iter().filter(|r| r.stream == DATA).map(|r| r.seq).collect();
    let keys: Vec<(u64, u32)> = all
        .iter()
        .filter(|r| r.stream == STREAM_EPOCH_KEYS)
        .map(|r| (r.seq, r.epoch))
        .collect();
    assert_eq!(data, (1..=11).collect::<Vec<_>>());
    assert_eq!(keys, vec![(1, 1), (2, 2), (3, 3)]);
    let batches: Vec<Option<u64>> = all.iter().filter(|r| r.stream == DATA).map(|r| r.batch).collect();
    assert_eq!(batches[..8], [Some(1); 8]);
    assert_eq!(batches[8..], [Some(2), Some(2), None]);
    assert!(all.iter().all(|r| r.trust == 1 && r.trust_name == "registered"));

    let only = |stream: Option<&str>, after: Option<&str>, min_trust| {
        let q = RecordListQuery {
            stream: stream.map(Into::into),
            after: after.map(Into::into),
            limit: None,
            min_trust,
        };
        fetch_record_page(&f.url, &f.device, &q).unwrap().records
    };
    assert_eq!(only(Some(STREAM_EPOCH_KEYS), None, None).len(), 3);
    let tail: Vec<u64> = only(Some(DATA), Some("8"), Some(1)).iter().map(|r| r.seq).collect();
    assert_eq!(tail, vec![9, 10, 11]);
    assert!(only(None, None, Some(2)).is_empty(), "nothing is attested");
    let bad = reqwest::blocking::get(format!("{}/v1/records/{}?min_trust=7", f.url, f.device)).unwrap();
    assert_eq!(bad.status(), 400);
}

#[test]
fn the_owner_and_a_grantee_decrypt_proven_records() {
    let f = fixture("record-api-decrypt");
    let who = Decryptor::Owner(owner());
    // Reading 6 is in epoch 2 (readings 5..=8).
    let proven = f
        .trust
        .verify(&fetch_record_proof(&f.url, &f.device, DATA, 6).unwrap())
        .unwrap();
    assert_eq!(proven.record.epoch, 2);
    match open_record(&f.url, &f.trust, &proven, &who, NO_WAIT).unwrap() {
        Opened::Plaintext(p) => assert_eq!(p, b"reading 6"),
        Opened::EpochKey { .. } => panic!("a data record opens to plaintext"),
    }
    // The owner opens the epoch-key record and shares that key; the grantee opens reading 7.
    let key_record = f
        .trust
        .verify(&fetch_record_proof(&f.url, &f.device, STREAM_EPOCH_KEYS, 2).unwrap())
        .unwrap();
    let Opened::EpochKey { epoch, key } = open_record(&f.url, &f.trust, &key_record, &who, NO_WAIT).unwrap() else {
        panic!("an epoch-key record opens to its key");
    };
    assert_eq!(epoch, 2);
    assert_eq!(key.as_bytes(), &[2; 16], "the data key the device drew for epoch 2");
    let seven = f
        .trust
        .verify(&fetch_record_proof(&f.url, &f.device, DATA, 7).unwrap())
        .unwrap();
    let grantee = Decryptor::EpochKey(key);
    assert!(matches!(
        open_record(&f.url, &f.trust, &seven, &grantee, NO_WAIT).unwrap(),
        Opened::Plaintext(p) if p == b"reading 7"
    ));
    // Not for another epoch, nor for another owner.
    let one = f
        .trust
        .verify(&fetch_record_proof(&f.url, &f.device, DATA, 1).unwrap())
        .unwrap();
    assert!(open_record(&f.url, &f.trust, &one, &grantee, NO_WAIT).is_err());
    let stranger = Decryptor::Owner(p256::SecretKey::from_slice(&[0x43; 32]).unwrap());
    assert!(open_record(&f.url, &f.trust, &one, &stranger, NO_WAIT).is_err());
}

/// Changes the hex digit at `at` to another one.
fn flip_hex(s: &mut String, at: usize) {
    let other = if &s[at..=at] == "0" { "1" } else { "0" };
    s.replace_range(at..=at, other);
}

#[test]
fn a_proof_file_verifies_offline_and_not_once_tampered_with() {
    let f = fixture("record-api-file");
    let body = fetch_record(&f.url, &f.device, DATA, 3).unwrap();
    let file = f.tmp.0.join("proof.json");
    std::fs::write(&file, serde_json::to_string(&body.proof).unwrap()).unwrap();
    let verdict = verify_record_file(&file, &f.trust).unwrap();
    assert!(
        verdict.as_ref().is_ok_and(|m| m.contains("/temperature/3")),
        "{verdict:?}"
    );

    let tampered = |edit: fn(&mut RecordProofJson)| {
        let mut j = body.proof.clone();
        edit(&mut j);
        std::fs::write(&file, serde_json::to_string(&j).unwrap()).unwrap();
        verify_record_file(&file, &f.trust).unwrap()
    };
    type Tamper = fn(&mut RecordProofJson);
    let cases: [(&str, Tamper); 5] = [
        ("record", |j| flip_hex(&mut j.record, 100)),
        ("batch path", |j| flip_hex(&mut j.batch.path[0], 0)),
        ("tx", |j| {
            let last = j.log.tx.len() - 1;
            flip_hex(&mut j.log.tx, last)
        }),
        ("checkpoint", |j| {
            j.log.checkpoint = j.log.checkpoint.replacen("record-api-test", "other", 1)
        }),
        ("format", |j| j.format = "something/else".into()),
    ];
    for (name, edit) in cases {
        assert!(tampered(edit).is_err(), "{name}");
    }
    std::fs::write(&file, "not json").unwrap();
    assert!(verify_record_file(&file, &f.trust).unwrap().is_err());
}
