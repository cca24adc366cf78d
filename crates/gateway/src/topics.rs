//! The MQTT topic namespace and session framing, modelled on Sparkplug B (payloads are COSE,
//! not Sparkplug protobuf, so the namespace is chipledger's own).
//!
//! Topic: `chipledger/v1/{group}/{message_type}/{edge_node}[/{device}]`. Node messages
//! (`NBIRTH`, `NDEATH`, `NCMD`) have no device segment; device messages (`DBIRTH`, `DDEATH`,
//! `DDATA`, `DCMD`, `DACK`) must have one. Every segment is 1-64 chars of `A-Z a-z 0-9 . _ -`
//! (the ledger's rule for edge-node names, [`check_topic_name`]); a chipledger device segment
//! is the lowercase hex of its [`DeviceId`].
//!
//! Every payload an edge node publishes is a [`Frame`]: `version (1) ‖ seq ‖ bd_seq ‖ body`.
//! `seq` is the Sparkplug session sequence (0-255, wrapping), shared by an edge node and its
//! devices: `NBIRTH` carries 0, every following message the next value. `bd_seq` identifies
//! the birth/death session (a will-published `NDEATH` carries the `bd_seq` of its `NBIRTH`).
//! A [`SessionTracker`] checks the sequence on the gateway; a gap (or a message from an
//! unborn edge node) asks for a rebirth (`NCMD` with body [`REBIRTH_COMMAND`]), and the
//! gateway records a `RequestRebirth` event on the ledger.

use std::collections::HashMap;
use std::fmt;

use chipledger_types::cbor::{Decoder, Encoder};
use chipledger_types::data_tx::check_topic_name;
use chipledger_types::device_tx::{DeviceId, ID_BYTES};
use chipledger_types::limits::MAX_RECORD_BYTES;
use chipledger_types::record::{RECORD_LIMITS, Record, parse_sign1};

/// The first two topic segments.
pub const NAMESPACE: &str = "chipledger/v1";
/// The longest topic this module formats or parses.
pub const MAX_TOPIC_BYTES: usize = 256;
/// Frame format version (byte 0 of every frame).
pub const FRAME_VERSION: u8 = 1;
/// Bytes before a frame's body.
pub const FRAME_HEADER_BYTES: usize = 3;
/// The largest frame the gateway accepts: one maximal record plus the header.
pub const MAX_FRAME_BYTES: usize = MAX_RECORD_BYTES + FRAME_HEADER_BYTES;
/// The body of an `NCMD` / `DCMD` asking for a rebirth.
pub const REBIRTH_COMMAND: &[u8] = b"rebirth";
/// Edge-node sessions a tracker keeps; beyond it unknown nodes are refused (no unbounded map).
pub const MAX_TRACKED_EDGE_NODES: usize = 1_000_000;

/// A Sparkplug-style message type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    DData,
    NCmd,
    DCmd,
    /// Gateway → device: the highest durable seq of one stream (chipledger's application ack).
    DAck,
}

impl MessageType {
    /// Every type, in the README table's order.
    pub const ALL: [MessageType; 8] = [
        MessageType::NBirth,
        MessageType::NDeath,
        MessageType::DBirth,
        MessageType::DDeath,
        MessageType::DData,
        MessageType::NCmd,
        MessageType::DCmd,
        MessageType::DAck,
    ];

    /// The topic segment.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::NBirth => "NBIRTH",
            MessageType::NDeath => "NDEATH",
            MessageType::DBirth => "DBIRTH",
            MessageType::DDeath => "DDEATH",
            MessageType::DData => "DDATA",
            MessageType::NCmd => "NCMD",
            MessageType::DCmd => "DCMD",
            MessageType::DAck => "DACK",
        }
    }

    /// Parses a topic segment (exact, upper case).
    pub fn from_segment(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == segment)
    }

    /// Whether the topic carries a device segment.
    pub fn has_device(self) -> bool {
        !matches!(self, MessageType::NBirth | MessageType::NDeath | MessageType::NCmd)
    }

    /// Whether an edge node publishes it (and so it carries a session sequence).
    pub fn from_edge(self) -> bool {
        !matches!(self, MessageType::NCmd | MessageType::DCmd | MessageType::DAck)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a topic, frame or ack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("topic is {len} bytes, more than {max}")]
    TooLong { len: usize, max: usize },
    #[error("topic must start with '{NAMESPACE}/'")]
    WrongNamespace,
    #[error("topic has {0} segments; expected {NAMESPACE}/group/TYPE/edge_node[/device]")]
    SegmentCount(usize),
    #[error("unknown message type '{0}' (expected one of NBIRTH NDEATH DBIRTH DDEATH DDATA NCMD DCMD DACK)")]
    UnknownType(String),
    #[error("{0} needs a device segment")]
    MissingDevice(MessageType),
    #[error("{0} takes no device segment")]
    UnexpectedDevice(MessageType),
    #[error("{what} segment '{value}' must be 1-64 chars of A-Z, a-z, 0-9, '.', '_', '-'")]
    BadSegment { what: &'static str, value: String },
    #[error("device segment '{0}' is not a 40-hex-digit device id")]
    NotADeviceId(String),
    #[error("frame is {len} bytes, more than {max}")]
    FrameTooLarge { len: usize, max: usize },
    #[error("frame is {0} bytes, shorter than its 3-byte header")]
    FrameTooShort(usize),
    #[error("frame version {0} is not supported (expected {FRAME_VERSION})")]
    FrameVersion(u8),
    #[error("malformed DACK body: {0}")]
    BadAck(String),
    /// A `DDATA` topic names another device than the record it carries: a relay must publish
    /// a record on its own device's topic (`.../DDATA/{relay_edge}/{record's device}`).
    #[error("DDATA topic names device {topic} but the record is device {record}'s")]
    DeviceMismatch { topic: DeviceId, record: DeviceId },
}

/// A parsed topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic {
    pub group: String,
    pub message_type: MessageType,
    pub edge_node: String,
    pub device: Option<String>,
}

fn check_segment(what: &'static str, value: &str) -> Result<(), TopicError> {
    check_topic_name(value).map_err(|_| TopicError::BadSegment {
        what,
        value: value.chars().take(MAX_TOPIC_BYTES).collect(),
    })
}

impl Topic {
    /// A node topic (`NBIRTH`, `NDEATH`, `NCMD`), validated.
    pub fn node(group: &str, message_type: MessageType, edge_node: &str) -> Result<Self, TopicError> {
        Self::checked(group, message_type, edge_node, None)
    }

    /// A device topic, validated.
    pub fn device(group: &str, message_type: MessageType, edge_node: &str, device: &str) -> Result<Self, TopicError> {
        Self::checked(group, message_type, edge_node, Some(device))
    }

    fn checked(group: &str, t: MessageType, edge_node: &str, device: Option<&str>) -> Result<Self, TopicError> {
        check_segment("group", group)?;
        check_segment("edge node", edge_node)?;
        match (t.has_device(), device) {
            (true, None) => return Err(TopicError::MissingDevice(t)),
            (false, Some(_)) => return Err(TopicError::UnexpectedDevice(t)),
            (true, Some(d)) => check_segment("device", d)?,
            (false, None) => {}
        }
        Ok(Topic {
            group: group.into(),
            message_type: t,
            edge_node: edge_node.into(),
            device: device.map(Into::into),
        })
    }

    /// Parses a topic; never panics, bounded by [`MAX_TOPIC_BYTES`].
    pub fn parse(topic: &str) -> Result<Self, TopicError> {
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong {
                len: topic.len(),
                max: MAX_TOPIC_BYTES,
            });
        }
        let rest = topic
            .strip_prefix(NAMESPACE)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(TopicError::WrongNamespace)?;
        let segments: Vec<&str> = rest.split('/').collect();
        if !(3..=4).contains(&segments.len()) {
            return Err(TopicError::SegmentCount(segments.len() + 2));
        }
        let t = MessageType::from_segment(segments[1])
            .ok_or_else(|| TopicError::UnknownType(segments[1].chars().take(16).collect()))?;
        Self::checked(segments[0], t, segments[2], segments.get(3).copied())
    }

    /// The device id a chipledger device segment names.
    pub fn device_id(&self) -> Result<DeviceId, TopicError> {
        let d = self
            .device
            .as_deref()
            .ok_or(TopicError::MissingDevice(self.message_type))?;
        device_id_from_segment(d)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NAMESPACE}/{}/{}/{}", self.group, self.message_type, self.edge_node)?;
        match &self.device {
            Some(d) => write!(f, "/{d}"),
            None => Ok(()),
        }
    }
}

/// The topic segment of a device: lowercase hex of its id.
pub fn device_segment(device: &DeviceId) -> String {
    hex::encode(device.0)
}

/// Parses a device segment written by [`device_segment`].
pub fn device_id_from_segment(segment: &str) -> Result<DeviceId, TopicError> {
    let mut id = [0u8; ID_BYTES];
    if segment.len() != 2 * ID_BYTES || hex::decode_to_slice(segment, &mut id).is_err() {
        return Err(TopicError::NotADeviceId(segment.chars().take(64).collect()));
    }
    Ok(DeviceId(id))
}

/// Mesh relaying: an edge node may forward another device's records (`DDATA` on
/// `.../{relay_edge}/{device}`); the record is verified end to end against its own device's keys
/// and chained in its own device's chain, so the topic only routes it (and its `DACK`, which the
/// relay forwards). The topic's device must therefore be the one the record's signed body names:
/// [`TopicError::DeviceMismatch`] otherwise. A body that is not a record passes here; the sink
/// refuses it with the typed record error.
pub fn check_record_device(topic_device: &DeviceId, body: &[u8]) -> Result<(), TopicError> {
    let record = parse_sign1(body).and_then(|parts| Record::decode_body(parts.body));
    match record {
        Ok(r) if r.device != *topic_device => Err(TopicError::DeviceMismatch {
            topic: *topic_device,
            record: r.device,
        }),
        _ => Ok(()),
    }
}

/// The one subscription filter a gateway uses for `group` (`+` for every group). One filter, not
/// one per edge message type: MQTT orders messages per topic only, and rumqttd keeps one log per
/// filter, so separate filters could deliver an `NBIRTH` after the `DDATA` that followed it and
/// fake a session gap. The gateway's own `NCMD` / `DACK` come back on it and are ignored.
pub fn gateway_filter(group: &str) -> String {
    format!("{NAMESPACE}/{group}/#")
}

/// One edge-node payload: session sequence, birth/death sequence, body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub seq: u8,
    pub bd_seq: u8,
    pub body: &'a [u8],
}

impl<'a> Frame<'a> {
    /// `version ‖ seq ‖ bd_seq ‖ body`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + self.body.len());
        out.extend_from_slice(&[FRAME_VERSION, self.seq, self.bd_seq]);
        out.extend_from_slice(self.body);
        out
    }

    /// Parses a frame, refusing more than [`MAX_FRAME_BYTES`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self, TopicError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(TopicError::FrameTooLarge {
                len: bytes.len(),
                max: MAX_FRAME_BYTES,
            });
        }
        match bytes {
            [FRAME_VERSION, seq, bd_seq, body @ ..] => Ok(Frame {
                seq: *seq,
                bd_seq: *bd_seq,
                body,
            }),
            [version, _, _, ..] => Err(TopicError::FrameVersion(*version)),
            _ => Err(TopicError::FrameTooShort(bytes.len())),
        }
    }
}

/// The edge-node side of a session: numbers every message it publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeSequencer {
    bd_seq: u8,
    next_seq: u8,
}

impl EdgeSequencer {
    /// A session with birth/death sequence `bd_seq` (increment it per connection).
    pub fn new(bd_seq: u8) -> Self {
        Self { bd_seq, next_seq: 0 }
    }

    /// The `NBIRTH` frame (seq 0); restarts the sequence.
    pub fn birth(&mut self, body: &[u8]) -> Vec<u8> {
        self.next_seq = 0;
        self.next(body)
    }

    /// The will `NDEATH` frame (its seq is not checked; only `bd_seq` matters).
    pub fn death(&self) -> Vec<u8> {
        Frame {
            seq: 0,
            bd_seq: self.bd_seq,
            body: &[],
        }
        .encode()
    }

    /// The next frame (`DBIRTH`, `DDATA`, `DDEATH`).
    pub fn next(&mut self, body: &[u8]) -> Vec<u8> {
        let frame = Frame {
            seq: self.next_seq,
            bd_seq: self.bd_seq,
            body,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        frame.encode()
    }
}

/// What the gateway makes of one frame's place in its edge node's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionVerdict {
    /// In order.
    InOrder,
    /// The node's `NDEATH` for its current session: it is offline now.
    Died,
    /// A stale `NDEATH` (older `bd_seq`): ignored.
    StaleDeath,
    /// Out of order, or from a node with no live birth: ask for a rebirth. Further messages
    /// are not re-reported until the next `NBIRTH`.
    RebirthNeeded(RebirthReason),
    /// Already asked for a rebirth; still waiting for the `NBIRTH`.
    AwaitingRebirth,
}

/// Why a rebirth is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebirthReason {
    Gap { expected: u8, got: u8 },
    NotBorn,
}

impl fmt::Display for RebirthReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebirthReason::Gap { expected, got } => write!(f, "session seq gap: expected {expected}, got {got}"),
            RebirthReason::NotBorn => f.write_str("message from an edge node without a live NBIRTH"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct NodeSession {
    bd_seq: u8,
    next_seq: u8,
    alive: bool,
    rebirth_asked: bool,
}

/// The gateway side: one session per (group, edge node), bounded by [`MAX_TRACKED_EDGE_NODES`].
#[derive(Debug, Default)]
pub struct SessionTracker {
    nodes: HashMap<(String, String), NodeSession>,
}

impl SessionTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks one frame published on `topic` (an edge-node message type).
    pub fn observe(&mut self, topic: &Topic, frame: &Frame<'_>) -> SessionVerdict {
        let key = (topic.group.clone(), topic.edge_node.clone());
        if topic.message_type == MessageType::NBirth {
            return self.birth(key, frame);
        }
        let Some(node) = self.nodes.get_mut(&key) else {
            return self.unborn(key);
        };
        if topic.message_type == MessageType::NDeath {
            if frame.bd_seq != node.bd_seq || !node.alive {
                return SessionVerdict::StaleDeath;
            }
            node.alive = false;
            return SessionVerdict::Died;
        }
        if node.rebirth_asked {
            return SessionVerdict::AwaitingRebirth;
        }
        if !node.alive || frame.bd_seq != node.bd_seq {
            node.rebirth_asked = true;
            return SessionVerdict::RebirthNeeded(RebirthReason::NotBorn);
        }
        if frame.seq != node.next_seq {
            node.rebirth_asked = true;
            let reason = RebirthReason::Gap {
                expected: node.next_seq,
                got: frame.seq,
            };
            return SessionVerdict::RebirthNeeded(reason);
        }
        node.next_seq = node.next_seq.wrapping_add(1);
        SessionVerdict::InOrder
    }

    fn birth(&mut self, key: (String, String), frame: &Frame<'_>) -> SessionVerdict {
        if !self.nodes.contains_key(&key) && self.nodes.len() >= MAX_TRACKED_EDGE_NODES {
            return SessionVerdict::AwaitingRebirth;
        }
        self.nodes.insert(
            key,
            NodeSession {
                bd_seq: frame.bd_seq,
                next_seq: frame.seq.wrapping_add(1),
                alive: true,
                rebirth_asked: false,
            },
        );
        SessionVerdict::InOrder
    }

    fn unborn(&mut self, key: (String, String)) -> SessionVerdict {
        if self.nodes.len() >= MAX_TRACKED_EDGE_NODES {
            return SessionVerdict::AwaitingRebirth;
        }
        self.nodes.insert(
            key,
            NodeSession {
                bd_seq: 0,
                next_seq: 0,
                alive: false,
                rebirth_asked: true,
            },
        );
        SessionVerdict::RebirthNeeded(RebirthReason::NotBorn)
    }
}

/// The body of a `DACK`: the highest seq of `stream` that the gateway holds durably.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurableAck {
    pub stream: String,
    pub seq: u64,
}

impl DurableAck {
    /// CBOR `[stream: tstr, seq: uint]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(2).text(&self.stream).uint(self.seq);
        e.into_bytes()
    }

    /// Parses [`DurableAck::encode`]'s output (record-sized limits).
    pub fn decode(bytes: &[u8]) -> Result<Self, TopicError> {
        let bad = |e: chipledger_types::cbor::DecodeError| TopicError::BadAck(e.to_string());
        let mut d = Decoder::new(bytes, RECORD_LIMITS).map_err(bad)?;
        d.array_of(2).map_err(bad)?;
        let stream = d.string().map_err(bad)?;
        let seq = d.uint().map_err(bad)?;
        d.end();
        d.finish().map_err(bad)?;
        check_segment("stream", &stream)?;
        Ok(DurableAck { stream, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "0102030405060708090a0b0c0d0e0f1011121314";

    #[test]
    fn topics_round_trip() {
        let cases = [
            ("chipledger/v1/plant-1/NBIRTH/edge_7", MessageType::NBirth, None),
            ("chipledger/v1/plant-1/NDEATH/edge_7", MessageType::NDeath, None),
            ("chipledger/v1/plant-1/NCMD/edge_7", MessageType::NCmd, None),
            (
                "chipledger/v1/plant-1/DBIRTH/edge_7/d.1",
                MessageType::DBirth,
                Some("d.1"),
            ),
            (
                "chipledger/v1/plant-1/DDEATH/edge_7/d.1",
                MessageType::DDeath,
                Some("d.1"),
            ),
            (
                "chipledger/v1/plant-1/DDATA/edge_7/d.1",
                MessageType::DData,
                Some("d.1"),
            ),
            ("chipledger/v1/plant-1/DCMD/edge_7/d.1", MessageType::DCmd, Some("d.1")),
            ("chipledger/v1/plant-1/DACK/edge_7/d.1", MessageType::DAck, Some("d.1")),
        ];
        for (text, t, device) in cases {
            let topic = Topic::parse(text).unwrap();
            assert_eq!(topic.message_type, t, "{text}");
            assert_eq!(topic.group, "plant-1");
            assert_eq!(topic.edge_node, "edge_7");
            assert_eq!(topic.device.as_deref(), device);
            assert_eq!(topic.to_string(), text);
        }
    }

    /// The topic routes a relayed record; the record's signed body names its device, and the
    /// two must agree. Bytes that are not a record are left to the sink's typed refusal.
    #[test]
    fn a_relayed_record_must_be_on_its_own_devices_topic() {
        use chipledger_device::record::RecordChainWriter;
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let (a, b) = (DeviceId([1; ID_BYTES]), DeviceId([2; ID_BYTES]));
        let mut chain = RecordChainWriter::new(a, "temp").unwrap();
        let payload = vec![0xd0, 0x83, 0x40, 0xa0, 0x41, 0x00];
        let (_, signed) = chain.sign_next(&key, 1, 0, payload).unwrap();
        assert_eq!(check_record_device(&a, &signed.bytes), Ok(()));
        assert_eq!(
            check_record_device(&b, &signed.bytes),
            Err(TopicError::DeviceMismatch { topic: b, record: a })
        );
        assert_eq!(check_record_device(&b, b"not a record"), Ok(()));
    }

    #[test]
    fn bad_topics_are_typed_errors() {
        let long = format!("chipledger/v1/g/DDATA/e/{}", "a".repeat(300));
        let cases: [(&str, TopicError); 9] = [
            ("spBv1.0/g/DDATA/e/d", TopicError::WrongNamespace),
            ("chipledger/v2/g/DDATA/e/d", TopicError::WrongNamespace),
            ("chipledger/v1/g/DDATA", TopicError::SegmentCount(4)),
            ("chipledger/v1/g/DDATA/e/d/x", TopicError::SegmentCount(7)),
            ("chipledger/v1/g/ddata/e/d", TopicError::UnknownType("ddata".into())),
            ("chipledger/v1/g/DDATA/e", TopicError::MissingDevice(MessageType::DData)),
            (
                "chipledger/v1/g/NBIRTH/e/d",
                TopicError::UnexpectedDevice(MessageType::NBirth),
            ),
            (
                "chipledger/v1/g/DDATA/e/+",
                TopicError::BadSegment {
                    what: "device",
                    value: "+".into(),
                },
            ),
            (&long, TopicError::TooLong { len: 324, max: 256 }),
        ];
        for (text, want) in cases {
            assert_eq!(Topic::parse(text), Err(want), "{text}");
        }
        let empty_group = Topic::parse("chipledger/v1//DDATA/e/d");
        assert!(matches!(empty_group, Err(TopicError::BadSegment { what: "group", .. })));
        let long_node = Topic::node("g", MessageType::NBirth, &"n".repeat(65));
        assert!(matches!(
            long_node,
            Err(TopicError::BadSegment { what: "edge node", .. })
        ));
    }

    #[test]
    fn device_segments() {
        let id = device_id_from_segment(DEV).unwrap();
        assert_eq!(id.0[0], 1);
        assert_eq!(device_segment(&id), DEV);
        for bad in ["", "01", &DEV[..39], &DEV.replace('0', "g"), &format!("{DEV}00")] {
            assert!(
                matches!(device_id_from_segment(bad), Err(TopicError::NotADeviceId(_))),
                "{bad}"
            );
        }
        let t = Topic::device("g", MessageType::DData, "e", DEV).unwrap();
        assert_eq!(t.device_id().unwrap(), id);
    }

    #[test]
    fn gateway_subscribes_with_one_filter() {
        assert_eq!(gateway_filter("+"), "chipledger/v1/+/#");
        assert_eq!(gateway_filter("plant-1"), "chipledger/v1/plant-1/#");
    }

    #[test]
    fn frame_bytes_are_frozen() {
        let f = Frame {
            seq: 7,
            bd_seq: 2,
            body: &[0xd2, 0x84],
        };
        assert_eq!(f.encode(), [1, 7, 2, 0xd2, 0x84]);
        assert_eq!(Frame::decode(&[1, 7, 2, 0xd2, 0x84]).unwrap(), f);
        assert_eq!(Frame::decode(&[1, 0, 0]).unwrap().body, &[] as &[u8]);
        assert_eq!(Frame::decode(&[1, 0]), Err(TopicError::FrameTooShort(2)));
        assert_eq!(Frame::decode(&[2, 0, 0]), Err(TopicError::FrameVersion(2)));
        let big = vec![1u8; MAX_FRAME_BYTES + 1];
        assert_eq!(
            Frame::decode(&big),
            Err(TopicError::FrameTooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
    }

    #[test]
    fn dack_bytes_are_frozen() {
        let ack = DurableAck {
            stream: "temp".into(),
            seq: 300,
        };
        // CBOR: array(2), text(4) "temp", uint16 300.
        let want = [0x82, 0x64, b't', b'e', b'm', b'p', 0x19, 0x01, 0x2c];
        assert_eq!(ack.encode(), want);
        assert_eq!(DurableAck::decode(&want).unwrap(), ack);
        assert!(matches!(DurableAck::decode(&[0x82, 0x64]), Err(TopicError::BadAck(_))));
        assert!(DurableAck::decode(&[0x82, 0x61, b'/', 0x01]).is_err());
    }

    fn observe(tracker: &mut SessionTracker, t: MessageType, frame: &[u8]) -> SessionVerdict {
        let topic = match t.has_device() {
            true => Topic::device("g", t, "edge", DEV).unwrap(),
            false => Topic::node("g", t, "edge").unwrap(),
        };
        tracker.observe(&topic, &Frame::decode(frame).unwrap())
    }

    #[test]
    fn session_in_order_wraps_past_255() {
        let mut edge = EdgeSequencer::new(3);
        let mut gw = SessionTracker::new();
        assert_eq!(
            observe(&mut gw, MessageType::NBirth, &edge.birth(b"")),
            SessionVerdict::InOrder
        );
        assert_eq!(
            observe(&mut gw, MessageType::DBirth, &edge.next(b"")),
            SessionVerdict::InOrder
        );
        for i in 0..600 {
            assert_eq!(
                observe(&mut gw, MessageType::DData, &edge.next(b"r")),
                SessionVerdict::InOrder,
                "{i}"
            );
        }
        assert_eq!(
            observe(&mut gw, MessageType::NDeath, &edge.death()),
            SessionVerdict::Died
        );
        assert_eq!(
            observe(&mut gw, MessageType::NDeath, &edge.death()),
            SessionVerdict::StaleDeath
        );
    }

    #[test]
    fn gap_asks_for_one_rebirth_until_nbirth() {
        let mut edge = EdgeSequencer::new(0);
        let mut gw = SessionTracker::new();
        observe(&mut gw, MessageType::NBirth, &edge.birth(b""));
        observe(&mut gw, MessageType::DData, &edge.next(b"1"));
        let _lost = edge.next(b"2");
        let want = SessionVerdict::RebirthNeeded(RebirthReason::Gap { expected: 2, got: 3 });
        assert_eq!(observe(&mut gw, MessageType::DData, &edge.next(b"3")), want);
        assert_eq!(
            observe(&mut gw, MessageType::DData, &edge.next(b"4")),
            SessionVerdict::AwaitingRebirth
        );
        let mut edge = EdgeSequencer::new(1);
        assert_eq!(
            observe(&mut gw, MessageType::NBirth, &edge.birth(b"")),
            SessionVerdict::InOrder
        );
        assert_eq!(
            observe(&mut gw, MessageType::DData, &edge.next(b"5")),
            SessionVerdict::InOrder
        );
    }

    #[test]
    fn unborn_and_stale_sessions() {
        let mut gw = SessionTracker::new();
        let want = SessionVerdict::RebirthNeeded(RebirthReason::NotBorn);
        assert_eq!(observe(&mut gw, MessageType::DData, &[1, 5, 0]), want);
        assert_eq!(
            observe(&mut gw, MessageType::DData, &[1, 6, 0]),
            SessionVerdict::AwaitingRebirth
        );
        // A will from an older session does not kill the current one.
        observe(&mut gw, MessageType::NBirth, &[1, 0, 9]);
        assert_eq!(
            observe(&mut gw, MessageType::NDeath, &[1, 0, 8]),
            SessionVerdict::StaleDeath
        );
        assert_eq!(
            observe(&mut gw, MessageType::DData, &[1, 1, 9]),
            SessionVerdict::InOrder
        );
        // Data after death needs a rebirth.
        assert_eq!(observe(&mut gw, MessageType::NDeath, &[1, 0, 9]), SessionVerdict::Died);
        assert_eq!(observe(&mut gw, MessageType::DData, &[1, 2, 9]), want);
    }
}
