//! Device data records (tagged COSE_Sign1 over the record body): the gateway's and every
//! verifier's first step, and the per-(device, stream) chain state the gateway keeps.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use chipledger_device::record::verify_record;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::record::{ChainAnomaly, ChainState, Record, RecordHash, assemble_sign1, parse_sign1};

use crate::fixture;

/// Framing, body and signature: one accepted layout, the gateway's verdict equal to the device
/// SDK's (`verify_record`, the reference), nothing accepted under keys that signed nothing.
pub fn record(data: &[u8]) {
    if let Ok(parts) = parse_sign1(data) {
        assert_eq!(
            assemble_sign1(parts.alg, parts.body, &parts.signature),
            data,
            "one record layout"
        );
        if let Ok(body) = Record::decode_body(parts.body) {
            assert_eq!(
                body.encode_body(),
                parts.body,
                "a record body re-encodes to its own bytes"
            );
        }
    }
    for chip in &fixture::fleet().chips {
        let key = &chip.layer.alias_public_key;
        let reference = verify_record(data, key);
        #[cfg(feature = "gateway")]
        {
            let gateway = chipledger_gateway::verify::verify_records(&[data], &[key]);
            assert_eq!(gateway, vec![reference], "gateway and device SDK disagree");
        }
        #[cfg(not(feature = "gateway"))]
        let _ = reference;
    }
    for key in &fixture::unused_device_keys() {
        assert!(
            verify_record(data, key).is_err(),
            "a record verified under an unused key"
        );
    }
}

/// One arrival at the gateway: seq, which `prev` it names, which hash its bytes have.
#[derive(Arbitrary, Debug)]
struct Arrival {
    seq: u64,
    prev: u8,
    hash: u8,
}

/// A sequence of arrivals on one chain: the head never moves back, `Ok` / `Gap` move it to the
/// record, every other verdict leaves it; duplicates and forks name what was really accepted.
pub fn record_chain(data: &[u8]) {
    let Ok(arrivals) = Vec::<Arrival>::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut chain = ChainState::new();
    let mut accepted: BTreeMap<u64, RecordHash> = BTreeMap::new();
    for a in arrivals {
        let record = Record {
            device: DeviceId([1; 20]),
            stream: "temperature".into(),
            seq: a.seq,
            prev: small_hash(a.prev),
            timestamp_ms: 0,
            epoch: 0,
            payload: Vec::new(),
        };
        let hash = small_hash(a.hash.max(1));
        let head = (chain.head_seq(), chain.head_hash());
        let verdict = chain.check(&record, hash);
        check_verdict(
            &verdict,
            head,
            (chain.head_seq(), chain.head_hash()),
            &record,
            hash,
            &accepted,
        );
        if matches!(verdict, Ok(()) | Err(ChainAnomaly::Gap { .. })) {
            accepted.insert(a.seq, hash);
        }
    }
}

fn check_verdict(
    verdict: &Result<(), ChainAnomaly>,
    before: (u64, RecordHash),
    after: (u64, RecordHash),
    record: &Record,
    hash: RecordHash,
    accepted: &BTreeMap<u64, RecordHash>,
) {
    match verdict {
        Ok(()) => {
            assert_eq!(record.seq, before.0 + 1, "accepted a record that is not the next");
            assert_eq!(record.prev, before.1, "accepted a record not linked to the head");
            assert_eq!(after, (record.seq, hash));
        }
        Err(ChainAnomaly::Gap { expected, got }) => {
            assert!(
                *got > *expected && *expected == before.0 + 1,
                "gap {expected}..{got} after {}",
                before.0
            );
            assert_eq!(after, (record.seq, hash));
        }
        Err(ChainAnomaly::Duplicate { seq }) => {
            assert_eq!(accepted.get(seq), Some(&hash), "a duplicate of nothing accepted");
            assert_eq!(after, before);
        }
        Err(ChainAnomaly::Fork { seq, accepted: a, .. }) => {
            // Seq 0 is the empty chain's head: a first record whose `prev` is not zero.
            let truth = if *seq == 0 {
                Some(&RecordHash::ZERO)
            } else {
                accepted.get(seq)
            };
            assert_eq!(truth, Some(a), "a fork against nothing accepted");
            assert_eq!(after, before);
        }
        Err(_) => {
            assert!(record.seq <= before.0, "a replay / late record ahead of the head");
            assert_eq!(after, before);
        }
    }
}

/// A hash from one byte (0 gives the zero hash, the `prev` of seq 1).
fn small_hash(b: u8) -> RecordHash {
    RecordHash([b; 32])
}
