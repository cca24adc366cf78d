//! The bodies of chipledger's fuzz targets (issue 8), one function per target, each calling the
//! exact entry point production calls with outside input, and checking cheap properties
//! (decode → encode → decode round trips, verifiers never accepting under a key nobody signed
//! with, the gateway's verdict equal to the device SDK's).
//!
//! `fuzz_targets/<name>.rs` wraps each in `fuzz_target!`; `tests/corpus_replay.rs` replays the
//! committed corpus (`corpus/<name>/`) through the same functions on stable Rust. A panic is a
//! finding: every property below is an `assert!`.
#![forbid(unsafe_code)]

#[cfg(feature = "node")]
pub mod api;
pub mod codec;
pub mod device;
pub mod fixture;
#[cfg(feature = "gateway")]
pub mod mqtt;
pub mod notes;
pub mod proofs;
pub mod record;
pub mod zk;

/// One fuzz target: its name (binary, corpus directory) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the README's order.
pub const TARGETS: &[Target] = &[
    Target {
        name: "tx",
        run: codec::tx,
    },
    Target {
        name: "block",
        run: codec::block,
    },
    Target {
        name: "cbor",
        run: codec::cbor,
    },
    Target {
        name: "note",
        run: notes::note,
    },
    Target {
        name: "tlog_proof",
        run: notes::tlog_proof,
    },
    Target {
        name: "merkle",
        run: proofs::merkle,
    },
    Target {
        name: "state_proof",
        run: proofs::state_proof,
    },
    Target {
        name: "record",
        run: record::record,
    },
    Target {
        name: "record_chain",
        run: record::record_chain,
    },
    #[cfg(feature = "gateway")]
    Target {
        name: "mqtt",
        run: mqtt::mqtt,
    },
    Target {
        name: "cose",
        run: device::cose,
    },
    Target {
        name: "suit",
        run: device::suit,
    },
    Target {
        name: "eat",
        run: device::eat,
    },
    Target {
        name: "x509",
        run: device::x509,
    },
    Target {
        name: "command",
        run: device::command,
    },
    Target {
        name: "update",
        run: device::update,
    },
    Target {
        name: "range_proof",
        run: zk::range_proof,
    },
    #[cfg(feature = "node")]
    Target {
        name: "api",
        run: api::api,
    },
];

/// Splits `data` into at most `n` parts framed by 2-byte big-endian lengths (the last part
/// takes the rest): how targets with several inputs read theirs. Short input gives fewer parts.
pub fn split_framed(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        let [a, b, tail @ ..] = rest else { break };
        let len = usize::from(u16::from_be_bytes([*a, *b])).min(tail.len());
        parts.push(&tail[..len]);
        rest = &tail[len..];
    }
    parts.push(rest);
    parts
}

/// The inverse of [`split_framed`] (seed generation).
pub fn join_framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 < parts.len() {
            let len = u16::try_from(p.len()).expect("seed parts are below 64 KiB");
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(p);
    }
    out
}
