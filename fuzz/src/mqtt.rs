//! What the gateway does with each MQTT publish before a record reaches its store
//! (`mqtt.rs`'s `classify`, then `verify_many`): topic, frame, session sequence, the relaying
//! rule, and the records' verification against its device directory.

use chipledger_gateway::MemoryDirectory;
use chipledger_gateway::topics::{DurableAck, Frame, MessageType, SessionTracker, Topic, check_record_device};
use chipledger_gateway::verify::verify_records;
use chipledger_gateway::verify_many;
use chipledger_types::device_tx::DeviceId;

use crate::fixture;

/// Publishes one input holds at most (each costs a signature check).
pub const MAX_PUBLISHES: usize = 32;

/// A sequence of publishes `topic_len (1) ‖ topic ‖ payload_len (2, BE) ‖ payload`, through one
/// session tracker, as the gateway's subscriber sees them.
pub fn mqtt(data: &[u8]) {
    let directory = directory();
    let mut tracker = SessionTracker::new();
    for (topic, payload) in publishes(data).take(MAX_PUBLISHES) {
        let Ok(topic) = std::str::from_utf8(topic) else {
            continue;
        };
        let Ok(parsed) = Topic::parse(topic) else { continue };
        assert_eq!(parsed.to_string(), topic, "a topic has one spelling");
        if !parsed.message_type.from_edge() {
            if parsed.message_type == MessageType::DAck
                && let Ok(ack) = DurableAck::decode(payload)
            {
                assert_eq!(ack.encode(), payload, "a DACK has one encoding");
            }
            continue;
        }
        let Ok(frame) = Frame::decode(payload) else { continue };
        assert_eq!(frame.encode(), payload, "a frame has one encoding");
        let device = match parsed.device {
            Some(_) => match parsed.device_id() {
                Ok(d) => Some(d),
                Err(_) => continue,
            },
            None => None,
        };
        let _ = tracker.observe(&parsed, &frame);
        if let (MessageType::DData, Some(device)) = (parsed.message_type, device) {
            ddata(&device, frame.body, &directory);
        }
    }
}

/// A `DDATA` body: the relaying rule holds for every record the gateway would accept.
fn ddata(topic_device: &DeviceId, body: &[u8], directory: &MemoryDirectory) {
    let relay_ok = check_record_device(topic_device, body).is_ok();
    let _ = verify_many(&[body], directory);
    for chip in &fixture::fleet().chips {
        if let [Ok(record)] = verify_records(&[body], &[&chip.layer.alias_public_key]).as_slice() {
            assert_eq!(relay_ok, record.device == *topic_device, "relaying rule broken");
        }
    }
}

/// The fixture chips, registered (DeviceID key) and attested (Alias key).
fn directory() -> MemoryDirectory {
    let mut d = MemoryDirectory::new();
    for chip in &fixture::fleet().chips {
        let id = DeviceId(chip.chip.device_id());
        d.register(id, fixture::deviceid_key(chip));
        d.attest(id, chip.layer.alias_public_key);
    }
    d
}

/// Splits the input into (topic, payload) pairs.
fn publishes(mut data: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || {
        let (&topic_len, rest) = data.split_first()?;
        let topic = rest.get(..usize::from(topic_len))?;
        let rest = &rest[topic.len()..];
        let [a, b, rest @ ..] = rest else { return None };
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(rest.len());
        let (payload, tail) = rest.split_at(len);
        data = tail;
        Some((topic, payload))
    })
}

/// The inverse of [`publishes`] (seed generation).
pub fn encode_publishes(publishes: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (topic, payload) in publishes {
        out.push(u8::try_from(topic.len()).expect("seed topics are short"));
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(
            &u16::try_from(payload.len())
                .expect("seed payloads are small")
                .to_be_bytes(),
        );
        out.extend_from_slice(payload);
    }
    out
}
