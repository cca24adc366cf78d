//! The gateway pipeline end to end on real signed records: batching with correct roots and
//! inclusion proofs, every chain anomaly typed without losing an accepted record, crash and
//! restart from disk, exactly-once batch commitment, and no plaintext in the store.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chipledger_device::key::{DevicePublicKey, DeviceSigner};
use chipledger_device::record::{RecordChainWriter, SignedRecord};
use chipledger_device::seal::{EpochKey, iv_for, payload_aad, seal_encrypt0};
use chipledger_gateway::store::{BatchStatus, ChainKey};
use chipledger_gateway::{
    BatchError, Gateway, GatewayConfig, IngestError, MemoryDirectory, SubmitError, Submitter, TxStatus,
};
use chipledger_types::cbor::{Decoder, Encoder, Limits};
use chipledger_types::data_tx::{AnomalyKind, CommitBatch, ReportChainAnomaly, TrustLevel, batch_root};
use chipledger_types::device_tx::{DeviceId, Fields};
use chipledger_types::limits::MAX_RECORD_BYTES;
use chipledger_types::merkle::{Hash, MemoryStore, hash_leaf, inclusion_proof, verify_inclusion};
use chipledger_types::record::{ChainAnomaly, RecordError};
use chipledger_types::tx::TxHash;

/// Part of every plaintext reading; must never reach the gateway's disk.
const PLAINTEXT_MARKER: &[u8] = b"PLAINTEXT-MARKER-c41b";
const STREAM: &str = "temperature";
const EPOCH: u32 = 1;

/// A scratch directory per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chipledger-gateway-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn db(&self) -> PathBuf {
        self.0.join("gateway.redb")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// How a simulated device is known to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Registered, records signed by an attested Alias key (trust 2).
    Attested,
    /// Registered, records signed by the DeviceID key (trust 1).
    Registered,
    /// Unknown to the registry, key announced in a birth message (trust 0).
    SelfReported,
}

/// A device with real keys (P-256 or Ed25519), its chain writer and data key.
struct Device {
    id: DeviceId,
    kind: Kind,
    device_id_p256: Option<p256::ecdsa::SigningKey>,
    device_id_ed: Option<ed25519_dalek::SigningKey>,
    alias: p256::ecdsa::SigningKey,
    writer: RecordChainWriter,
    data_key: EpochKey,
    counter: u64,
}

impl Device {
    fn new(n: u8, kind: Kind) -> Device {
        let seed = [n.wrapping_add(1); 32];
        let (p, e) = if n.is_multiple_of(2) {
            (Some(p256::ecdsa::SigningKey::from_bytes(&seed.into()).unwrap()), None)
        } else {
            (None, Some(ed25519_dalek::SigningKey::from_bytes(&seed)))
        };
        let mut alias_seed = seed;
        alias_seed[0] ^= 0x80;
        let mut d = Device {
            id: DeviceId([0; 20]),
            kind,
            device_id_p256: p,
            device_id_ed: e,
            alias: p256::ecdsa::SigningKey::from_bytes(&alias_seed.into()).unwrap(),
            writer: RecordChainWriter::new(DeviceId([0; 20]), STREAM).unwrap(),
            data_key: EpochKey::from_bytes([n; 16]),
            counter: 0,
        };
        d.id = DeviceId(d.device_id_public().dice_id());
        d.writer = RecordChainWriter::new(d.id, STREAM).unwrap();
        d
    }

    fn device_id_signer(&self) -> DeviceSigner<'_> {
        match (&self.device_id_p256, &self.device_id_ed) {
            (Some(p), _) => DeviceSigner::from(p),
            (None, Some(e)) => DeviceSigner::from(e),
            (None, None) => unreachable!("every test device has a DeviceID key"),
        }
    }

    fn device_id_public(&self) -> DevicePublicKey {
        self.device_id_signer().public_key()
    }

    fn alias_public(&self) -> DevicePublicKey {
        DeviceSigner::from(&self.alias).public_key()
    }

    fn enroll(&self, dir: &mut MemoryDirectory) {
        match self.kind {
            Kind::Attested => {
                dir.register(self.id, self.device_id_public());
                dir.attest(self.id, self.alias_public());
            }
            Kind::Registered => dir.register(self.id, self.device_id_public()),
            Kind::SelfReported => dir.announce(self.id, self.device_id_public()),
        }
    }

    fn trust(&self) -> TrustLevel {
        match self.kind {
            Kind::Attested => TrustLevel::Attested,
            Kind::Registered => TrustLevel::Registered,
            Kind::SelfReported => TrustLevel::SelfReported,
        }
    }

    /// Seals a reading (COSE_Encrypt0, AES-128-GCM) and signs the next record.
    fn next(&mut self, reading: &str) -> SignedRecord {
        let seq = self.writer.next_seq();
        let payload = self.seal(seq, reading);
        let ts = 1_764_000_000_000 + seq * 1_000;
        let signed = match self.kind {
            Kind::Attested => self.writer.sign_next(&self.alias, ts, EPOCH, payload),
            _ => {
                let signer = self.device_id_signer();
                let mut writer = self.writer.clone();
                let out = writer.sign_next(signer, ts, EPOCH, payload);
                self.writer = writer;
                out
            }
        };
        signed.unwrap().1
    }

    fn seal(&mut self, seq: u64, reading: &str) -> Vec<u8> {
        let mut plaintext = PLAINTEXT_MARKER.to_vec();
        plaintext.extend_from_slice(reading.as_bytes());
        self.counter += 1;
        let aad = payload_aad(self.id, STREAM, seq, EPOCH);
        seal_encrypt0(&self.data_key, &iv_for(self.counter), &plaintext, &aad).unwrap()
    }
}

fn config(max_records: usize) -> GatewayConfig {
    GatewayConfig {
        max_batch_records: max_records,
        max_batch_age: Duration::from_secs(3600),
        ..GatewayConfig::new("gw-north")
    }
}

/// Encodes and decodes with the ledger's own payload codec (its field rules included).
fn ledger_round_trip<T: Fields + PartialEq + std::fmt::Debug>(value: &T) {
    let mut e = Encoder::new();
    e.array(T::ARITY);
    value.encode_fields(&mut e);
    let bytes = e.into_bytes();
    let mut d = Decoder::new(&bytes, Limits::TX).unwrap();
    d.array_of(T::ARITY).unwrap();
    assert_eq!(&T::decode_fields(&mut d).unwrap(), value);
}

fn assert_inclusion_proofs(hashes: &[Hash], root: &Hash) {
    let tree = MemoryStore::from_leaves(hashes.iter());
    let size = hashes.len() as u64;
    for (i, h) in hashes.iter().enumerate() {
        let proof = inclusion_proof(&tree, i as u64, size).unwrap();
        verify_inclusion(&hash_leaf(h), i as u64, size, &proof, root).unwrap();
    }
}

fn assert_no_plaintext_on_disk(tmp: &TempDir, some_record: &[u8]) {
    let mut disk = Vec::new();
    for entry in std::fs::read_dir(&tmp.0).unwrap() {
        disk.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| disk.windows(needle.len()).any(|w| w == needle);
    assert!(contains(some_record), "the store keeps record bytes verbatim");
    assert!(!contains(PLAINTEXT_MARKER), "plaintext reached the store");
}

/// 50 devices × 20 records, interleaved: four batches whose roots are the RFC 9162 root of
/// their record hashes, every record provably included, heads and trust as the ledger wants.
#[test]
fn fifty_devices_batch_with_correct_roots_and_proofs() {
    let tmp = TempDir::new("fifty");
    let kinds = [Kind::Attested, Kind::Registered, Kind::SelfReported];
    let mut devices: Vec<Device> = (0..50).map(|n| Device::new(n, kinds[n as usize % 3])).collect();
    let mut dir = MemoryDirectory::new();
    devices.iter().for_each(|d| d.enroll(&mut dir));
    let mut gw = Gateway::open(&tmp.db(), config(300)).unwrap();
    let mut acked = BTreeMap::new();
    let mut batches = Vec::new();
    for round in 0..20 {
        for d in devices.iter_mut() {
            let signed = d.next(&format!("reading {round}"));
            let a = gw.ingest(&signed.bytes, &dir).unwrap();
            assert_eq!((a.hash, a.trust, a.anomaly.clone()), (signed.hash, d.trust(), None));
            acked.insert(a.hash.0, signed.bytes);
            if gw.batch_due(Instant::now()) {
                batches.push(gw.cut_batch().unwrap().unwrap());
            }
        }
    }
    batches.extend(gw.cut_batch().unwrap());
    assert!(gw.cut_batch().unwrap().is_none());
    let counts: Vec<u32> = batches.iter().map(|b| b.record_count).collect();
    assert_eq!(counts, [300, 300, 300, 100]);

    let mut committed = BTreeSet::new();
    for (i, batch) in batches.iter().enumerate() {
        assert_eq!(batch.batch_seq, i as u64 + 1);
        let hashes = gw.batch_record_hashes(batch.batch_seq).unwrap().unwrap();
        assert_eq!(batch_root(&hashes), batch.root);
        assert_inclusion_proofs(&hashes, &batch.root);
        committed.extend(hashes);
        ledger_round_trip(batch);
        assert_eq!(batch.heads.len(), 50);
        for h in &batch.heads {
            let d = devices.iter().find(|d| d.id == h.device).unwrap();
            assert_eq!(h.trust, d.trust());
        }
    }
    assert_eq!(committed, acked.keys().copied().collect::<BTreeSet<_>>());
    let last = batches.last().unwrap();
    assert!(last.heads.iter().all(|h| h.seq == 20 && h.records == 2));
    let some_record = acked.values().next().unwrap().clone();
    drop(gw);
    assert_no_plaintext_on_disk(&tmp, &some_record);
}

/// With a head limit, a batch is split before it would carry too many chains.
#[test]
fn batches_split_at_the_head_limit() {
    let tmp = TempDir::new("heads");
    let mut devices: Vec<Device> = (0..10).map(|n| Device::new(n, Kind::Registered)).collect();
    let mut dir = MemoryDirectory::new();
    devices.iter().for_each(|d| d.enroll(&mut dir));
    let cfg = GatewayConfig {
        max_batch_heads: 4,
        ..config(1000)
    };
    let mut gw = Gateway::open(&tmp.db(), cfg).unwrap();
    for d in devices.iter_mut() {
        for _ in 0..3 {
            gw.ingest(&d.next("x").bytes, &dir).unwrap();
        }
    }
    let mut sizes = Vec::new();
    while let Some(b) = gw.cut_batch().unwrap() {
        assert!(b.heads.len() <= 4);
        sizes.push((b.record_count, b.heads.len()));
    }
    assert_eq!(sizes, [(12, 4), (12, 4), (6, 2)]);
}

fn chain(d: &Device) -> ChainKey {
    ChainKey {
        device: d.id,
        stream: STREAM.into(),
    }
}

/// Every chain anomaly is typed; accepted records (gap, out-of-order) stay stored and reach a
/// batch; refused ones (fork, replay) are reported with evidence; bad input is refused typed.
#[test]
fn every_anomaly_is_typed_and_no_accepted_record_is_lost() {
    let tmp = TempDir::new("anomalies");
    let mut d = Device::new(4, Kind::Attested);
    let mut dir = MemoryDirectory::new();
    d.enroll(&mut dir);
    let r: Vec<SignedRecord> = (1..=8).map(|i| d.next(&format!("r{i}"))).collect();
    let mut forker = Device::new(4, Kind::Attested);
    forker.next("r1");
    let fork2 = forker.next("other r2"); // seq 2, prev = hash of r1: conflicts with r[1]
    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    let anomaly = |gw: &mut Gateway, rec: &SignedRecord| gw.ingest(&rec.bytes, &dir).map(|a| a.anomaly);

    assert_eq!(anomaly(&mut gw, &r[0]).unwrap(), None);
    assert_eq!(anomaly(&mut gw, &r[1]).unwrap(), None);
    let dup = ChainAnomaly::Duplicate { seq: 2 };
    assert_eq!(anomaly(&mut gw, &r[1]).unwrap(), Some(dup), "redelivery is acked again");
    let fork = ChainAnomaly::Fork {
        seq: 2,
        accepted: r[1].hash,
        conflicting: fork2.hash,
    };
    assert!(matches!(anomaly(&mut gw, &fork2), Err(IngestError::Chain(a)) if a == fork));
    assert_eq!(gw.store().evidence(&fork2.hash).unwrap(), Some(fork2.bytes.clone()));
    let gap = ChainAnomaly::Gap { expected: 3, got: 6 };
    assert_eq!(anomaly(&mut gw, &r[5]).unwrap(), Some(gap));
    let late = ChainAnomaly::OutOfOrder { seq: 4, head: 6 };
    assert_eq!(anomaly(&mut gw, &r[3]).unwrap(), Some(late));
    // A restart forgets the missing ranges: seq 3 now counts as a replay of an old seq.
    drop(gw);
    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    let replay = ChainAnomaly::Replay { seq: 3, head: 6 };
    assert!(matches!(anomaly(&mut gw, &r[2]), Err(IngestError::Chain(a)) if a == replay));
    assert_eq!(
        anomaly(&mut gw, &r[6]).unwrap(),
        None,
        "the chain resumed from its durable head"
    );

    let kinds: Vec<AnomalyKind> = gw
        .queued_anomalies()
        .unwrap()
        .into_iter()
        .map(|(_, a)| a.kind)
        .collect();
    use AnomalyKind::*;
    assert_eq!(kinds, [Duplicate, Fork, Gap, OutOfOrder, Replay]);
    for (_, report) in gw.queued_anomalies().unwrap() {
        ledger_round_trip::<ReportChainAnomaly>(&report);
    }
    // Accepted: 1, 2, 6, 4, 7 — all stored verbatim, all in the next batch; 6 and 7 move heads.
    for (i, rec) in [(1, &r[0]), (2, &r[1]), (6, &r[5]), (4, &r[3]), (7, &r[6])] {
        assert_eq!(gw.store().record(&chain(&d), i).unwrap().unwrap().bytes, rec.bytes);
    }
    let batch = gw.cut_batch().unwrap().unwrap();
    assert_eq!(batch.record_count, 5);
    assert_eq!((batch.heads[0].seq, batch.heads[0].records), (7, 4));
    ledger_round_trip(&batch);
    let (index, _) = gw.queued_anomalies().unwrap()[0].clone();
    gw.anomaly_sent(index).unwrap();
    assert_eq!(gw.queued_anomalies().unwrap().len(), 4);
}

/// Refusals before any chain logic: size, framing, unknown, revoked, wrong key, tampering.
#[test]
fn bad_records_are_refused_with_typed_errors() {
    let tmp = TempDir::new("refusals");
    let mut good = Device::new(6, Kind::Attested);
    let mut stranger = Device::new(7, Kind::SelfReported);
    let mut revoked = Device::new(8, Kind::Registered);
    let mut dir = MemoryDirectory::new();
    good.enroll(&mut dir);
    revoked.enroll(&mut dir);
    dir.revoke(revoked.id);
    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    let big = vec![0u8; MAX_RECORD_BYTES + 1];
    assert!(matches!(gw.ingest(&big, &dir), Err(IngestError::TooLarge { .. })));
    assert!(matches!(
        gw.ingest(b"\x84", &dir),
        Err(IngestError::Record(RecordError::Framing(_)))
    ));
    let s = stranger.next("x");
    assert!(matches!(gw.ingest(&s.bytes, &dir), Err(IngestError::UnknownDevice(id)) if id == stranger.id));
    let rv = revoked.next("x");
    assert!(matches!(gw.ingest(&rv.bytes, &dir), Err(IngestError::Revoked(id)) if id == revoked.id));
    let mut tampered = good.next("x").bytes;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        gw.ingest(&tampered, &dir),
        Err(IngestError::Record(RecordError::BadSignature))
    ));
    // The attested device signing with its registered DeviceID key instead of the attested
    // Alias key: accepted at trust 1, not 2.
    let mut as_registered = Device::new(6, Kind::Registered);
    as_registered.writer = good.writer.clone();
    let rec = as_registered.next("y");
    assert_eq!(gw.ingest(&rec.bytes, &dir).unwrap().trust, TrustLevel::Registered);
    assert_eq!(gw.pending_records(), 1);
}

/// A ledger double: contiguous batch seqs, refuses a used seq as `batch_replayed`.
#[derive(Default)]
struct Ledger {
    batches: BTreeMap<u64, Hash>,
    final_txs: BTreeSet<TxHash>,
    submits: Vec<u64>,
}

impl Submitter for Ledger {
    fn submit(&mut self, batch: &CommitBatch) -> Result<TxHash, SubmitError> {
        self.submits.push(batch.batch_seq);
        if self.batches.contains_key(&batch.batch_seq) {
            return Err(SubmitError::BatchReplayed);
        }
        let next = self.batches.keys().last().map_or(1, |l| l + 1);
        if batch.batch_seq != next {
            return Err(SubmitError::Rejected("batch_seq_gap".into()));
        }
        self.batches.insert(batch.batch_seq, batch.root);
        Ok(TxHash(batch.root))
    }
    fn status(&mut self, tx: &TxHash) -> Result<TxStatus, SubmitError> {
        Ok(if self.final_txs.contains(tx) {
            TxStatus::Final
        } else if self.batches.values().any(|r| *r == tx.0) {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }
    fn committed_root(&mut self, _gateway: &str, batch_seq: u64) -> Result<Option<Hash>, SubmitError> {
        Ok(self.batches.get(&batch_seq).copied())
    }
}

/// Crash (drop without shutdown) at each stage: every acked record survives, the pending batch
/// is submitted exactly once, a batch the ledger already holds is marked committed after the
/// root check, and each batch is marked committed once.
#[test]
fn restart_keeps_acked_records_and_commits_each_batch_once() {
    let tmp = TempDir::new("restart");
    let mut devices: Vec<Device> = (0..3).map(|n| Device::new(n, Kind::Attested)).collect();
    let mut dir = MemoryDirectory::new();
    devices.iter().for_each(|d| d.enroll(&mut dir));
    let mut acked = Vec::new();
    let mut first_bytes = None;
    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    for round in 0..12 {
        let d = &mut devices[round % 3];
        let signed = d.next("v");
        let a = gw.ingest(&signed.bytes, &dir).unwrap();
        first_bytes.get_or_insert(signed.bytes);
        acked.push((chain(d), a.seq, a.hash));
        if round == 8 {
            gw.cut_batch().unwrap().unwrap();
        }
    }
    drop(gw); // crash: batch 1 cut but not submitted, 3 records pending

    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    for (c, seq, hash) in &acked {
        assert_eq!(gw.store().record(c, *seq).unwrap().unwrap().hash, *hash);
    }
    assert_eq!(gw.pending_records(), 3);
    let first_bytes = first_bytes.unwrap();
    let redelivered = gw.ingest(&first_bytes, &dir).unwrap();
    assert_eq!(
        redelivered.anomaly,
        Some(ChainAnomaly::Duplicate { seq: 1 }),
        "acked again, not stored twice"
    );
    assert_eq!(gw.pending_records(), 3);
    let next = gw.ingest(&devices[0].next("after").bytes, &dir).unwrap();
    assert_eq!((next.seq, next.anomaly), (5, None), "chain heads survived the crash");
    let mut ledger = Ledger::default();
    assert_eq!(gw.submit_batches(&mut ledger).unwrap().submitted, [1]);
    assert_eq!(gw.submit_batches(&mut ledger).unwrap().submitted, Vec::<u64>::new());
    let batch2 = gw.cut_batch().unwrap().unwrap();
    drop(gw); // crash: batch 1 submitted (not final), batch 2 cut

    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    let statuses: Vec<_> = gw.open_batches().map(|(s, b)| (*s, b.status)).collect();
    assert!(matches!(
        statuses[..],
        [(1, BatchStatus::Submitted(_)), (2, BatchStatus::Pending)]
    ));
    // The ledger got batch 2 just before the crash, but the store never learned its tx.
    ledger.batches.insert(2, batch2.root);
    ledger.final_txs.insert(TxHash(ledger.batches[&1]));
    let report = gw.submit_batches(&mut ledger).unwrap();
    assert_eq!((report.submitted, report.committed), (vec![], vec![1, 2]));
    assert_eq!(
        ledger.submits,
        [1, 2],
        "batch 1 once; batch 2 tried once, found replayed"
    );
    assert_eq!(gw.submit_batches(&mut ledger).unwrap(), Default::default());
    drop(gw);
    let gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    assert_eq!(
        gw.open_batches().count(),
        0,
        "committed stays committed across restarts"
    );
    for (c, seq, _) in &acked {
        assert!(gw.store().record_batch(c, *seq).unwrap().is_some());
    }
}

/// `batch_replayed` with another root than the stored one is not taken as committed.
#[test]
fn replayed_batch_with_another_root_is_an_error() {
    let tmp = TempDir::new("mismatch");
    let mut d = Device::new(9, Kind::Registered);
    let mut dir = MemoryDirectory::new();
    d.enroll(&mut dir);
    let mut gw = Gateway::open(&tmp.db(), config(1000)).unwrap();
    gw.ingest(&d.next("v").bytes, &dir).unwrap();
    gw.cut_batch().unwrap().unwrap();
    let mut ledger = Ledger::default();
    ledger.batches.insert(1, [0xee; 32]);
    assert!(matches!(
        gw.submit_batches(&mut ledger),
        Err(BatchError::RootMismatch { seq: 1 })
    ));
    assert_eq!(gw.open_batches().count(), 1);
}
