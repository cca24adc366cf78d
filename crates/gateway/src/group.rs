//! Group commit: [`Gateway::ingest_many`] takes many records at once, verifies their
//! signatures on all cores (`crate::verify`), classifies them against their chains in input
//! order, and stores everything the group changes in **one** redb write transaction (one
//! fsync). Each record gets exactly the answer [`Gateway::ingest`] would give it had the
//! records arrived one by one in that order: records of one chain inside a group must link to
//! each other, and a record repeated inside a group is a duplicate (or a fork) of the first.
//!
//! Nothing in memory changes before the transaction commits; when it fails, every record whose
//! answer depended on it (accepted, duplicate, or a refusal whose report was to be queued)
//! fails with [`IngestError::Store`] and the gateway is as it was.

use std::collections::HashMap;

use chipledger_device::key::DevicePublicKey;
use chipledger_types::data_tx::{ReportChainAnomaly, TrustLevel};
use chipledger_types::limits::MAX_RECORD_BYTES;
use chipledger_types::record::{
    ChainAnomaly, ChainState, Record, RecordError, RecordHash, Sign1Parts, parse_sign1, record_hash,
};

use crate::error::{IngestError, StoreError};
use crate::ingest::{Accepted, DeviceDirectory, DeviceStatus, Gateway, accepted};
use crate::store::{ChainKey, Evidence, GroupWrite, PendingRecord, RecordReader};
use crate::verify::{SigCheck, verify_signatures};

/// Most records one [`Gateway::ingest_many`] call takes at once (a larger slice is processed
/// in groups of this size, each its own transaction).
pub const MAX_GROUP_RECORDS: usize = 4096;
/// Keys a device may have (attested Alias, DeviceID, self-reported): rounds of verification.
const MAX_CANDIDATE_KEYS: usize = 3;

/// A record that decoded, with the keys it may be signed with (most trusted first).
struct Screened<'a> {
    record: Record,
    parts: Sign1Parts<'a>,
    candidates: Vec<(DevicePublicKey, TrustLevel)>,
}

/// Size, framing, body, and the device's standing: everything before the signature.
fn screen<'a, D: DeviceDirectory + ?Sized>(bytes: &'a [u8], directory: &D) -> Result<Screened<'a>, IngestError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(IngestError::TooLarge {
            len: bytes.len(),
            max: MAX_RECORD_BYTES,
        });
    }
    let parts = parse_sign1(bytes)?;
    let record = Record::decode_body(parts.body)?;
    let entry = directory.lookup(&record.device);
    let candidates = entry.candidates();
    match entry.status {
        DeviceStatus::Revoked => Err(IngestError::Revoked(record.device)),
        DeviceStatus::Unknown if candidates.is_empty() => Err(IngestError::UnknownDevice(record.device)),
        _ if candidates.is_empty() => Err(IngestError::Record(RecordError::BadSignature)),
        _ => Ok(Screened {
            record,
            parts,
            candidates,
        }),
    }
}

/// Each record's signature under its most trusted key that verifies: one parallel round per
/// candidate key (the second round only for records the first key did not verify, …).
fn verify_group(
    records: &[&[u8]],
    screened: Vec<Result<Screened<'_>, IngestError>>,
) -> Vec<Result<(Record, TrustLevel), IngestError>> {
    let mut trust: Vec<Option<TrustLevel>> = vec![None; records.len()];
    let mut last: Vec<RecordError> = vec![RecordError::BadSignature; records.len()];
    for round in 0..MAX_CANDIDATE_KEYS {
        let mut checked = Vec::new();
        let mut checks = Vec::new();
        for (i, s) in screened.iter().enumerate() {
            let Ok(s) = s else { continue };
            let Some((key, _)) = s.candidates.get(round).filter(|_| trust[i].is_none()) else {
                continue;
            };
            match SigCheck::from_parts(records[i], &s.parts, key) {
                Ok(check) => {
                    checked.push(i);
                    checks.push(check);
                }
                Err(e) => last[i] = e,
            }
        }
        if checks.is_empty() {
            break;
        }
        for (i, verdict) in checked.into_iter().zip(verify_signatures(&checks)) {
            match (verdict, &screened[i]) {
                (Ok(()), Ok(s)) => trust[i] = Some(s.candidates[round].1),
                (Err(e), _) => last[i] = e,
                (Ok(()), Err(_)) => {}
            }
        }
    }
    let verdicts = screened.into_iter().zip(trust).zip(last);
    verdicts
        .map(|((s, trust), last)| match (s?, trust) {
            (s, Some(trust)) => Ok((s.record, trust)),
            (_, None) => Err(IngestError::Record(last)),
        })
        .collect()
}

/// One record's answer, and whether it stands only if the group's write commits.
struct Answer {
    result: Result<Accepted, IngestError>,
    needs_write: bool,
}

impl Answer {
    fn refused(error: IngestError) -> Answer {
        Answer {
            result: Err(error),
            needs_write: false,
        }
    }

    /// A record left unclassified because the group failed (answered by [`fail_all`]).
    fn unclassified() -> Answer {
        Answer {
            result: Err(IngestError::Store(StoreError::GroupWrite(String::new()))),
            needs_write: true,
        }
    }
}

/// A chain as the group leaves it.
struct Working {
    state: ChainState,
    /// A record of the group was accepted into it (only then is it kept).
    accepted: bool,
    /// Its head moved (written to the store).
    head_moved: bool,
}

/// What a group will change, built before anything is written.
struct Plan<'a> {
    /// Working copies of the chains the group touches.
    chains: HashMap<ChainKey, Working>,
    /// Records accepted earlier in this group: a later copy is a duplicate or a fork.
    held: HashMap<(ChainKey, u64), (RecordHash, TrustLevel)>,
    pending: Vec<(u64, PendingRecord, &'a [u8])>,
    anomalies: Vec<(u64, ReportChainAnomaly, Option<Evidence<'a>>)>,
    /// Duplicates to report (rate-limited) once the group is durable.
    duplicates: Vec<(Record, RecordHash)>,
    next_pending: u64,
    next_anomaly: u64,
    /// One read transaction for the group's store lookups, opened on the first one.
    reader: Option<RecordReader>,
}

/// Records whose signatures were checked ([`verify_many`]), ready for
/// [`Gateway::ingest_verified`].
#[derive(Debug)]
pub struct Verified {
    verdicts: Vec<Result<(Record, TrustLevel), IngestError>>,
}

/// The first half of [`Gateway::ingest_many`], which needs no gateway state: size, framing,
/// body, the device's standing in `directory`, and the signature under its most trusted key
/// that verifies (on all cores). A gateway shared behind a lock runs this outside the lock.
pub fn verify_many<D: DeviceDirectory + ?Sized>(records: &[&[u8]], directory: &D) -> Verified {
    let screened = records.iter().map(|bytes| screen(bytes, directory)).collect();
    Verified {
        verdicts: verify_group(records, screened),
    }
}

impl Gateway {
    /// Verifies, classifies and durably stores many records; one result per record, in input
    /// order, each what [`Gateway::ingest`] would answer for it in that order. Signatures are
    /// verified on all cores; each group of at most [`MAX_GROUP_RECORDS`] is one store
    /// transaction. `Ok` means the record is on disk (or already was). Never panics on input.
    pub fn ingest_many<D: DeviceDirectory + ?Sized>(
        &mut self,
        records: &[&[u8]],
        directory: &D,
    ) -> Vec<Result<Accepted, IngestError>> {
        let verified = verify_many(records, directory);
        self.ingest_verified(records, verified)
    }

    /// The second half of [`Gateway::ingest_many`]: chains and the store, for records that
    /// [`verify_many`] checked. Panics if `verified` is not for these records (a bug).
    pub fn ingest_verified(&mut self, records: &[&[u8]], verified: Verified) -> Vec<Result<Accepted, IngestError>> {
        assert_eq!(records.len(), verified.verdicts.len(), "verify_many of these records");
        let mut verdicts = verified.verdicts.into_iter();
        let mut results = Vec::with_capacity(records.len());
        for group in records.chunks(MAX_GROUP_RECORDS) {
            let group_verdicts = verdicts.by_ref().take(group.len()).collect();
            results.extend(self.ingest_group(group, group_verdicts));
        }
        results
    }

    fn ingest_group(
        &mut self,
        records: &[&[u8]],
        verified: Vec<Result<(Record, TrustLevel), IngestError>>,
    ) -> Vec<Result<Accepted, IngestError>> {
        let mut plan = Plan {
            chains: HashMap::new(),
            held: HashMap::new(),
            pending: Vec::new(),
            anomalies: Vec::new(),
            duplicates: Vec::new(),
            next_pending: self.next_pending,
            next_anomaly: self.next_anomaly,
            reader: None,
        };
        let mut answers = Vec::with_capacity(records.len());
        let mut failure = None;
        for (bytes, verdict) in records.iter().zip(verified) {
            answers.push(match verdict {
                Err(e) => Answer::refused(e),
                Ok(_) if failure.is_some() => Answer::unclassified(),
                Ok((record, trust)) => self.classify(&mut plan, record, trust, bytes).unwrap_or_else(|e| {
                    failure = Some(e);
                    Answer::unclassified()
                }),
            });
        }
        let written = match failure {
            Some(e) => Err(e),
            None => self.commit(plan),
        };
        match written {
            Ok(()) => answers.into_iter().map(|a| a.result).collect(),
            Err(e) => fail_all(e, answers),
        }
    }

    /// Classifies one verified record against its chain (as the group has left it so far) and
    /// adds what it changes to the plan.
    fn classify<'a>(
        &self,
        plan: &mut Plan<'a>,
        record: Record,
        trust: TrustLevel,
        bytes: &'a [u8],
    ) -> Result<Answer, StoreError> {
        let hash = record_hash(bytes);
        let chain = ChainKey {
            device: record.device,
            stream: record.stream.clone(),
        };
        if let Some((held_hash, held_trust)) = self.held_at(plan, &chain, record.seq)? {
            return Ok(self.already_held(plan, record, hash, held_hash, held_trust, bytes));
        }
        let working = plan.chains.entry(chain.clone()).or_insert_with(|| Working {
            state: self.chains.get(&chain).cloned().unwrap_or_default(),
            accepted: false,
            head_moved: false,
        });
        let outcome = working.state.check(&record, hash);
        let moves_head = match &outcome {
            Ok(()) | Err(ChainAnomaly::Gap { .. }) => true,
            Err(ChainAnomaly::OutOfOrder { .. }) => false,
            Err(anomaly @ (ChainAnomaly::Fork { .. } | ChainAnomaly::Replay { .. })) => {
                return Ok(self.refuse(plan, &record, hash, anomaly.clone(), bytes));
            }
            // A duplicate the window knows but neither the store nor the group holds cannot
            // happen (records are stored before the window moves); refuse rather than ack
            // anything not on disk.
            Err(anomaly) => {
                return Ok(Answer {
                    result: Err(IngestError::Chain(anomaly.clone())),
                    needs_write: false,
                });
            }
        };
        working.accepted = true;
        working.head_moved |= moves_head;
        let anomaly = outcome.err();
        if let Some(a) = &anomaly {
            let report = self.report(&record, hash, a);
            plan.anomalies.push((plan.next_anomaly, report, None));
            plan.next_anomaly += 1;
        }
        let pending = PendingRecord {
            chain,
            seq: record.seq,
            hash,
            trust,
            timestamp_ms: record.timestamp_ms,
            moves_head,
        };
        plan.held.insert((pending.chain.clone(), record.seq), (hash, trust));
        plan.pending.push((plan.next_pending, pending, bytes));
        plan.next_pending += 1;
        Ok(Answer {
            result: Ok(accepted(&record, hash, trust, anomaly)),
            needs_write: true,
        })
    }

    /// The record at (chain, seq) that the group or the store already holds. Every stored
    /// record's seq is at most its chain's head, so a seq beyond the head needs no lookup.
    fn held_at(
        &self,
        plan: &mut Plan<'_>,
        chain: &ChainKey,
        seq: u64,
    ) -> Result<Option<(RecordHash, TrustLevel)>, StoreError> {
        let head = match plan.chains.get(chain) {
            Some(working) => working.state.head_seq(),
            None => self.chains.get(chain).map_or(0, ChainState::head_seq),
        };
        if seq > head {
            return Ok(None);
        }
        if let Some(&held) = plan.held.get(&(chain.clone(), seq)) {
            return Ok(Some(held));
        }
        let reader = match &mut plan.reader {
            Some(reader) => reader,
            empty => empty.insert(self.store.reader()?),
        };
        reader.get(chain, seq)
    }

    /// A record at a seq already held: the same one (acked again) or a fork (refused).
    fn already_held<'a>(
        &self,
        plan: &mut Plan<'a>,
        record: Record,
        hash: RecordHash,
        held_hash: RecordHash,
        held_trust: TrustLevel,
        bytes: &'a [u8],
    ) -> Answer {
        if held_hash == hash {
            let anomaly = ChainAnomaly::Duplicate { seq: record.seq };
            let result = Ok(accepted(&record, hash, held_trust, Some(anomaly)));
            plan.duplicates.push((record, hash));
            return Answer {
                result,
                needs_write: true,
            };
        }
        let fork = ChainAnomaly::Fork {
            seq: record.seq,
            accepted: held_hash,
            conflicting: hash,
        };
        self.refuse(plan, &record, hash, fork, bytes)
    }

    /// Plans the report of a refused record (a fork keeps the record as evidence).
    fn refuse<'a>(
        &self,
        plan: &mut Plan<'a>,
        record: &Record,
        hash: RecordHash,
        anomaly: ChainAnomaly,
        bytes: &'a [u8],
    ) -> Answer {
        let report = self.report(record, hash, &anomaly);
        let evidence = matches!(anomaly, ChainAnomaly::Fork { .. }).then_some((hash, bytes));
        plan.anomalies.push((plan.next_anomaly, report, evidence));
        plan.next_anomaly += 1;
        Answer {
            result: Err(IngestError::Chain(anomaly)),
            needs_write: true,
        }
    }

    /// Writes the plan in one transaction, then (only then) applies it in memory.
    fn commit(&mut self, mut plan: Plan<'_>) -> Result<(), StoreError> {
        plan.reader = None;
        let heads = plan.chains.iter().filter(|(_, w)| w.head_moved);
        let write = GroupWrite {
            records: plan.pending.iter().map(|(i, r, b)| (*i, r, *b)).collect(),
            heads: heads
                .map(|(c, w)| (c, w.state.head_seq(), w.state.head_hash()))
                .collect(),
            anomalies: plan.anomalies.iter().map(|(i, r, e)| (*i, r, *e)).collect(),
        };
        if !write.is_empty() {
            self.store.write_group(&write)?;
        }
        drop(write);
        for (chain, working) in plan.chains {
            if working.accepted {
                self.chains.insert(chain, working.state);
            }
        }
        if !plan.pending.is_empty() {
            self.oldest_pending.get_or_insert_with(|| (self.clock)());
        }
        self.pending.extend(plan.pending.into_iter().map(|(i, r, _)| (i, r)));
        self.next_pending = plan.next_pending;
        self.next_anomaly = plan.next_anomaly;
        for (record, hash) in &plan.duplicates {
            self.note_duplicate(record, *hash);
        }
        Ok(())
    }
}

/// Turns every answer that depended on the failed write into a store error (the first one
/// carries the cause); refusals that did not depend on it stand.
fn fail_all(error: StoreError, answers: Vec<Answer>) -> Vec<Result<Accepted, IngestError>> {
    let message = error.to_string();
    let mut cause = Some(error);
    answers
        .into_iter()
        .map(|a| match a.needs_write {
            true => Err(IngestError::Store(
                cause.take().unwrap_or_else(|| StoreError::GroupWrite(message.clone())),
            )),
            false => a.result,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use chipledger_device::key::DeviceSigner;
    use chipledger_device::record::RecordChainWriter;
    use chipledger_types::device_tx::DeviceId;

    use super::*;
    use crate::ingest::MemoryDirectory;

    use crate::test_support::Scratch;

    enum Key {
        P256(p256::ecdsa::SigningKey),
        Ed25519(ed25519_dalek::SigningKey),
    }

    impl Key {
        fn new(n: u8) -> Key {
            match n % 2 {
                0 => Key::P256(p256::ecdsa::SigningKey::from_bytes(&[n + 1; 32].into()).unwrap()),
                _ => Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[n + 1; 32])),
            }
        }

        fn signer(&self) -> DeviceSigner<'_> {
            match self {
                Key::P256(k) => k.into(),
                Key::Ed25519(k) => k.into(),
            }
        }
    }

    /// A device: its DeviceID key, an Alias key, and `count` chained records signed with the
    /// Alias key (or the DeviceID key where `by_device_id` says so).
    struct Device {
        id: DeviceId,
        device_id: Key,
        alias: Key,
    }

    impl Device {
        fn new(n: u8) -> Device {
            let device_id = Key::new(n);
            Device {
                id: DeviceId(device_id.signer().public_key().dice_id()),
                device_id,
                alias: Key::new(n + 100),
            }
        }

        fn records(&self, stream: &str, count: u64, by_device_id: impl Fn(u64) -> bool) -> Vec<Vec<u8>> {
            let mut w = RecordChainWriter::new(self.id, stream).unwrap();
            (1..=count)
                .map(|seq| {
                    let key = match by_device_id(seq) {
                        true => &self.device_id,
                        false => &self.alias,
                    };
                    let payload = vec![0xd0, 0x83, 0x40, 0xa0, 0x41, seq as u8];
                    w.sign_next(key.signer(), 1_764_000_000_000 + seq, 1, payload)
                        .unwrap()
                        .1
                        .bytes
                })
                .collect()
        }

        /// Another record at `seq` of the same chain (a fork): same prev, other payload.
        fn fork(&self, stream: &str, records: &[Vec<u8>], seq: u64) -> Vec<u8> {
            let prev = match seq {
                1 => RecordHash::ZERO,
                s => record_hash(&records[s as usize - 2]),
            };
            let mut w = RecordChainWriter::resume(self.id, stream, seq, prev).unwrap();
            let payload = vec![0xd0, 0x83, 0x40, 0xa0, 0x41, 0xff];
            w.sign_next(self.alias.signer(), 1, 1, payload).unwrap().1.bytes
        }
    }

    /// Devices 0..=5: attested (0, 1), registered only (2: records verify by the DeviceID
    /// key), self-reported (3), revoked (4), unknown (5).
    fn fleet() -> (Vec<Device>, MemoryDirectory) {
        let devices: Vec<Device> = (0..6).map(Device::new).collect();
        let mut dir = MemoryDirectory::new();
        for d in &devices[..3] {
            dir.register(d.id, d.device_id.signer().public_key());
        }
        for d in &devices[..2] {
            dir.attest(d.id, d.alias.signer().public_key());
        }
        dir.announce(devices[3].id, devices[3].alias.signer().public_key());
        dir.register(devices[4].id, devices[4].device_id.signer().public_key());
        dir.revoke(devices[4].id);
        (devices, dir)
    }

    /// A mixed arrival sequence: interleaved chains, in-order records, a duplicate right
    /// after its original and one much later, a gap and its late filler, a fork, a record
    /// signed by the DeviceID key of an attested device (trust 1), tampered and malformed
    /// bytes, revoked and unknown devices.
    fn arrivals(devices: &[Device]) -> Vec<Vec<u8>> {
        let a = devices[0].records("t", 12, |_| false);
        let b = devices[1].records("t", 10, |seq| seq == 6);
        let c = devices[2].records("door", 5, |_| true);
        let d = devices[3].records("t", 4, |_| false);
        let e = devices[4].records("t", 2, |_| true);
        let f = devices[5].records("t", 2, |_| false);
        let mut tampered = b[8].clone();
        let at = tampered.len() - 70;
        tampered[at] ^= 1;
        let mut out = Vec::new();
        for i in 0..12 {
            out.push(a[i].clone());
            if i < 10 && i != 3 {
                out.push(b[i].clone());
            }
            if i == 2 {
                out.push(a[2].clone());
            }
            if i == 7 {
                out.push(b[3].clone()); // the gap's late filler
                out.push(devices[0].fork("t", &a, 6));
                out.push(tampered.clone());
                out.push(b"\x84".to_vec());
            }
            if i < 5 {
                out.push(c[i].clone());
            }
            if i < 4 {
                out.push(d[i].clone());
            }
            if i < 2 {
                out.push(e[i].clone());
                out.push(f[i].clone());
            }
        }
        out.push(a[0].clone());
        out.push(c[4].clone());
        out
    }

    fn debug<T: std::fmt::Debug>(items: &[T]) -> Vec<String> {
        items.iter().map(|i| format!("{i:?}")).collect()
    }

    fn anomalies(gw: &Gateway) -> Vec<String> {
        let mut all = debug(
            &gw.queued_anomalies()
                .unwrap()
                .into_iter()
                .map(|(_, a)| a)
                .collect::<Vec<_>>(),
        );
        all.sort();
        all
    }

    /// Groups of any size answer exactly as record-by-record ingestion, and leave the same
    /// chains, pending records and anomaly reports (duplicate reports may be queued in another
    /// order: after their group).
    #[test]
    fn groups_answer_like_one_by_one() {
        let (devices, dir) = fleet();
        let input = arrivals(&devices);
        let refs: Vec<&[u8]> = input.iter().map(Vec::as_slice).collect();
        let (_a, mut one) = Scratch::gateway("one");
        let want: Vec<_> = refs.iter().map(|r| one.ingest(r, &dir)).collect();
        for sizes in [vec![refs.len()], vec![1, 7, 3, 50, 2]] {
            let (_b, mut grouped) = Scratch::gateway(&format!("grouped-{}", sizes.len()));
            let mut got = Vec::new();
            let mut rest = &refs[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (group, tail) = rest.split_at((*size).min(rest.len()));
                got.extend(grouped.ingest_many(group, &dir));
                rest = tail;
            }
            assert_eq!(debug(&got), debug(&want), "groups {sizes:?}");
            assert_eq!(grouped.chains, one.chains);
            assert_eq!(grouped.pending, one.pending);
            assert_eq!(anomalies(&grouped), anomalies(&one));
            assert_eq!(
                (grouped.next_pending, grouped.next_anomaly),
                (one.next_pending, one.next_anomaly)
            );
        }
        let kinds: std::collections::BTreeSet<String> = want
            .iter()
            .map(|r| match r {
                Ok(a) => format!("ok {:?} {:?}", a.trust, a.anomaly.as_ref().map(std::mem::discriminant)),
                Err(e) => format!("{e}").split(':').next().unwrap_or_default().to_string(),
            })
            .collect();
        assert!(kinds.len() >= 9, "the workload exercises every path: {kinds:#?}");
    }

    /// A failed group write acks nothing that needed it, keeps the refusals that did not, and
    /// leaves the gateway exactly as it was: the same group then succeeds.
    #[test]
    fn a_failed_group_write_changes_nothing() {
        let (devices, dir) = fleet();
        let a = devices[0].records("t", 6, |_| false);
        let (_s, mut gw) = Scratch::gateway("fail");
        let first: Vec<&[u8]> = a[..3].iter().map(Vec::as_slice).collect();
        assert!(gw.ingest_many(&first, &dir).iter().all(Result::is_ok));
        let before = (
            gw.chains.clone(),
            gw.pending.clone(),
            gw.next_pending,
            gw.next_anomaly,
            anomalies(&gw),
        );
        let mut bad = a[3].clone();
        let at = bad.len() - 1;
        bad[at] ^= 1;
        let fork = devices[0].fork("t", &a, 2);
        let group: Vec<&[u8]> = vec![&a[3], &a[1], &fork, &bad, b"\x84", &a[5], &a[4]];

        gw.store.fail_writes.store(true, Ordering::SeqCst);
        let failed = gw.ingest_many(&group, &dir);
        let store_errors = failed
            .iter()
            .filter(|r| matches!(r, Err(IngestError::Store(_))))
            .count();
        assert_eq!(
            store_errors, 5,
            "accepted, duplicate, fork report, gap, filler: {failed:#?}"
        );
        assert!(
            matches!(&failed[0], Err(IngestError::Store(StoreError::Corrupt { .. }))),
            "the cause first"
        );
        assert!(matches!(&failed[1], Err(IngestError::Store(StoreError::GroupWrite(_)))));
        assert!(matches!(
            &failed[3],
            Err(IngestError::Record(RecordError::BadSignature))
        ));
        assert!(matches!(&failed[4], Err(IngestError::Record(_))));
        let after = (
            gw.chains.clone(),
            gw.pending.clone(),
            gw.next_pending,
            gw.next_anomaly,
            anomalies(&gw),
        );
        assert_eq!(after, before, "nothing changed in memory or on disk");

        gw.store.fail_writes.store(false, Ordering::SeqCst);
        let ok = gw.ingest_many(&group, &dir);
        assert!(ok[0].is_ok() && ok[5].is_ok() && ok[6].is_ok(), "{ok:#?}");
        let dup = ok[1].as_ref().map(|a| a.anomaly.clone());
        assert!(matches!(dup, Ok(Some(ChainAnomaly::Duplicate { seq: 2 }))), "{dup:?}");
        assert!(matches!(
            &ok[2],
            Err(IngestError::Chain(ChainAnomaly::Fork { seq: 2, .. }))
        ));
        let gap = ok[5].as_ref().map(|a| a.anomaly.clone());
        assert!(
            matches!(gap, Ok(Some(ChainAnomaly::Gap { expected: 5, got: 6 }))),
            "{gap:?}"
        );
        assert_eq!(gw.pending_records(), 6);
    }
}
