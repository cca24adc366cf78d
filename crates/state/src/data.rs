//! Data at source (issue 5), ledger side: gateways commit batches of device records, report
//! record-chain anomalies and rebirth requests. The ledger never sees a record: only batch
//! Merkle roots, chain heads and anomaly reports (see `chipledger_types::data_tx`).
//!
//! **Gateways.** `RegisterGateway` needs the Operator role. A gateway name is global and
//! belongs to the organisation that registered it (at most [`MAX_GATEWAYS_PER_ORG`] each);
//! only that organisation may commit batches, report anomalies or request rebirths in its name
//! ([`DataError::NotGatewayOperator`]). The gateway process signs with one of its
//! organisation's keys: no second key registry, and the organisation is accountable for
//! everything its gateways commit. Every data transaction also needs the Operator role at the
//! time it applies, so removing the role (governance) stops an organisation's gateways.
//!
//! **Batches.** Batch numbers are contiguous per gateway from 1: a number already used is
//! [`DataError::BatchReplayed`] (a replayed batch is never applied twice), a higher one
//! [`DataError::BatchSeqGap`]; a refused batch uses no number, so the gateway reuses it. (A
//! gateway's batches follow its organisation's contiguous transaction sequence, so pipelined
//! batches wait in the mempool in order like any later sequence number.) The batch record
//! (`data/batch/<gateway>/<seq>`) keeps the root, counts, timestamps, heads, height and the
//! transaction hash, whose log leaf proves the batch under a cosigned checkpoint. Device timestamps are self-reported and not checked against the
//! block time.
//!
//! **Chain heads.** Each head must extend the head the ledger holds for its device+stream
//! (`data/head/<device>/<stream>`): a higher seq moves it; the same seq with the same hash is
//! [`DataError::HeadAlreadyCommitted`], with another hash [`DataError::ChainFork`]; a lower seq
//! is [`DataError::ChainRewind`]. A head's `records` may not exceed the seqs it advances
//! ([`DataError::TooManyRecords`]); the difference is counted as `missing` (gaps). The ledger
//! cannot check the hash links between records (it sees only heads): the gateway does, and
//! reports what it finds as anomalies.
//!
//! **Trust.** A head's trust level is checked against the registry: a revoked device commits
//! nothing, at any level ([`DataError::DeviceRevoked`]); trust ≥ 1 needs a registered device
//! ([`DataError::DeviceNotRegistered`]); trust 2 a device with verified evidence
//! ([`DataError::NotAttested`]). Unregistered device ids are accepted at trust 0
//! (self-reported). A device has heads for at most [`MAX_STREAMS_PER_DEVICE`] streams.
//!
//! **Anomalies.** `ReportChainAnomaly` is recorded per device (`data/anomalies/<device>`): exact
//! per-kind counters and the latest
//! [`MAX_DEVICE_ANOMALIES`](chipledger_types::limits::MAX_DEVICE_ANOMALIES) reports (every
//! report stays in the log). Reports are accepted for unregistered devices (a bad signature from an unknown key is
//! still worth recording); a `revoked_device` report must name a revoked registered device
//! ([`DataError::NotRevoked`]). `RequestRebirth` (Sparkplug B rebirth after a sequence gap)
//! counts and keeps the latest request in the same record. Neither touches chain heads.

mod error;
pub mod model;

pub use error::DataError;

use chipledger_types::data_tx::{
    AnomalyKind, BatchHead, BatchRecord, ChainHead, CommitBatch, RegisterGateway, ReportChainAnomaly, RequestRebirth,
    TrustLevel, batch_key, head_key,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::{MAX_GATEWAYS_PER_ORG, MAX_STREAMS_PER_DEVICE};
use chipledger_types::tx::{Payload, Role, TxHash};

use crate::apply::{BlockContext, Event, TxState, active_org};
use crate::error::TxError;
use crate::model::get_device;
use crate::store::StateRead;
use model::*;

/// What a data transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataEvent {
    GatewayRegistered {
        gateway: String,
        operator: String,
    },
    BatchCommitted {
        gateway: String,
        seq: u64,
        records: u32,
        heads: u32,
    },
    ChainAnomalyReported {
        device: DeviceId,
        stream: String,
        kind: AnomalyKind,
        seq: u64,
    },
    RebirthRequested {
        device: DeviceId,
        edge_node: String,
        gateway: String,
    },
}

/// Apply a data payload signed by `org` in the transaction `hash`.
pub(crate) fn apply(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    payload: &Payload,
) -> Result<Vec<Event>, TxError> {
    require_operator(&st.view(), org)?;
    let event = match payload {
        Payload::RegisterGateway(p) => register_gateway(st, ctx, org, p)?,
        Payload::CommitBatch(p) => commit_batch(st, ctx, hash, org, p)?,
        Payload::ReportChainAnomaly(p) => report_anomaly(st, ctx, org, p)?,
        Payload::RequestRebirth(p) => request_rebirth(st, ctx, org, p)?,
        _ => return Err(TxError::Invalid("not a data payload")),
    };
    Ok(vec![Event::Data(event)])
}

fn require_operator(s: &dyn StateRead, org: &str) -> Result<(), TxError> {
    if !active_org(s, org)?.roles.contains(&Role::Operator) {
        return Err(DataError::NotOperator(org.into()).into());
    }
    Ok(())
}

/// The gateway `name`, which must belong to `org`.
fn own_gateway(s: &dyn StateRead, org: &str, name: &str) -> Result<GatewayRecord, TxError> {
    let g = get_gateway(s, name)?.ok_or_else(|| DataError::UnknownGateway(name.into()))?;
    if g.operator != org {
        return Err(DataError::NotGatewayOperator {
            org: org.into(),
            gateway: name.into(),
            operator: g.operator,
        }
        .into());
    }
    Ok(g)
}

fn register_gateway(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    org: &str,
    p: &RegisterGateway,
) -> Result<DataEvent, TxError> {
    if get_gateway(&st.view(), &p.name)?.is_some() {
        return Err(DataError::GatewayExists(p.name.clone()).into());
    }
    let mut names = gateways_of(&st.view(), org)?;
    if names.len() >= MAX_GATEWAYS_PER_ORG {
        return Err(TxError::LimitReached {
            what: "gateways per organisation",
            max: MAX_GATEWAYS_PER_ORG,
        });
    }
    names.push(p.name.clone());
    names.sort();
    st.put(org_gateways_key(org), &Names(names));
    let record = GatewayRecord {
        name: p.name.clone(),
        operator: org.into(),
        registered_height: ctx.height,
        last_batch: 0,
        records: 0,
    };
    st.put(gateway_key(&p.name), &record);
    Ok(DataEvent::GatewayRegistered {
        gateway: p.name.clone(),
        operator: org.into(),
    })
}

fn commit_batch(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &CommitBatch,
) -> Result<DataEvent, TxError> {
    let mut gateway = own_gateway(&st.view(), org, &p.gateway)?;
    if p.batch_seq <= gateway.last_batch {
        return Err(DataError::BatchReplayed {
            gateway: p.gateway.clone(),
            seq: p.batch_seq,
            last: gateway.last_batch,
        }
        .into());
    }
    if p.batch_seq != gateway.last_batch + 1 {
        return Err(DataError::BatchSeqGap {
            gateway: p.gateway.clone(),
            seq: p.batch_seq,
            expected: gateway.last_batch + 1,
        }
        .into());
    }
    for head in &p.heads {
        check_trust(&st.view(), head)?;
        advance_head(st, ctx, p, head)?;
    }
    gateway.last_batch = p.batch_seq;
    gateway.records += p.record_count as u64;
    st.put(gateway_key(&p.gateway), &gateway);
    let record = BatchRecord {
        gateway: p.gateway.clone(),
        seq: p.batch_seq,
        operator: org.into(),
        root: p.root,
        record_count: p.record_count,
        first_timestamp_ms: p.first_timestamp_ms,
        last_timestamp_ms: p.last_timestamp_ms,
        heads: p.heads.clone(),
        height: ctx.height,
        tx: *hash,
    };
    st.put(batch_key(&p.gateway, p.batch_seq), &record);
    Ok(DataEvent::BatchCommitted {
        gateway: p.gateway.clone(),
        seq: p.batch_seq,
        records: p.record_count,
        heads: p.heads.len() as u32,
    })
}

/// The registry must back the head's trust level; a revoked device commits nothing.
fn check_trust(s: &dyn StateRead, head: &BatchHead) -> Result<(), TxError> {
    let Some(device) = get_device(s, &head.device)? else {
        if head.trust == TrustLevel::SelfReported {
            return Ok(());
        }
        return Err(DataError::DeviceNotRegistered {
            device: head.device,
            trust: head.trust.name(),
        }
        .into());
    };
    if let Some(r) = &device.revoked {
        return Err(DataError::DeviceRevoked {
            device: head.device,
            stream: head.stream.clone(),
            height: r.height,
        }
        .into());
    }
    if head.trust == TrustLevel::Attested && device.attestation.is_none() {
        return Err(DataError::NotAttested(head.device).into());
    }
    Ok(())
}

/// Move the device+stream head to `head`, which must extend the stored one.
fn advance_head(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    p: &CommitBatch,
    head: &BatchHead,
) -> Result<(), TxError> {
    let (device, stream) = (head.device, head.stream.clone());
    let stored = get_head(&st.view(), &device, &stream)?;
    let (from, records, missing) = match &stored {
        None => (0, 0, 0),
        Some(h) => (h.seq, h.records, h.missing),
    };
    if let Some(h) = stored.as_ref().filter(|h| head.seq <= h.seq) {
        return Err(match (head.seq == h.seq, head.hash == h.hash) {
            (true, true) => DataError::HeadAlreadyCommitted {
                device,
                stream,
                seq: head.seq,
            },
            (true, false) => DataError::ChainFork {
                device,
                stream,
                seq: head.seq,
                committed: hex::encode(h.hash),
                offered: hex::encode(head.hash),
            },
            (false, _) => DataError::ChainRewind {
                device,
                stream,
                seq: head.seq,
                head: h.seq,
            },
        }
        .into());
    }
    let advance = head.seq - from;
    if head.records as u64 > advance {
        return Err(DataError::TooManyRecords {
            device,
            stream,
            records: head.records,
            from,
            seq: head.seq,
        }
        .into());
    }
    if stored.is_none() {
        add_stream(st, &device, &stream)?;
    }
    let new = ChainHead {
        seq: head.seq,
        hash: head.hash,
        trust: head.trust,
        records: records + head.records as u64,
        missing: missing + (advance - head.records as u64),
        gateway: p.gateway.clone(),
        batch_seq: p.batch_seq,
        height: ctx.height,
    };
    st.put(head_key(&device, &stream), &new);
    Ok(())
}

fn add_stream(st: &mut TxState<'_>, device: &DeviceId, stream: &str) -> Result<(), TxError> {
    let mut streams = streams_of(&st.view(), device)?;
    if streams.len() >= MAX_STREAMS_PER_DEVICE {
        return Err(TxError::LimitReached {
            what: "streams per device",
            max: MAX_STREAMS_PER_DEVICE,
        });
    }
    streams.push(stream.into());
    streams.sort();
    st.put(streams_key(device), &Names(streams));
    Ok(())
}

fn report_anomaly(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    org: &str,
    p: &ReportChainAnomaly,
) -> Result<DataEvent, TxError> {
    own_gateway(&st.view(), org, &p.gateway)?;
    if p.kind == AnomalyKind::RevokedDevice {
        let revoked = get_device(&st.view(), &p.device)?.is_some_and(|d| d.revoked.is_some());
        if !revoked {
            return Err(DataError::NotRevoked(p.device).into());
        }
    }
    let mut log = anomalies_of(&st.view(), &p.device)?;
    log.push(AnomalyEntry {
        kind: p.kind,
        stream: p.stream.clone(),
        seq: p.seq,
        expected_seq: p.expected_seq,
        evidence: p.evidence.clone(),
        detail: p.detail.clone(),
        gateway: p.gateway.clone(),
        height: ctx.height,
    });
    st.put(anomalies_key(&p.device), &log);
    Ok(DataEvent::ChainAnomalyReported {
        device: p.device,
        stream: p.stream.clone(),
        kind: p.kind,
        seq: p.seq,
    })
}

fn request_rebirth(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    org: &str,
    p: &RequestRebirth,
) -> Result<DataEvent, TxError> {
    own_gateway(&st.view(), org, &p.gateway)?;
    let mut log = anomalies_of(&st.view(), &p.device)?;
    log.rebirths += 1;
    log.last_rebirth = Some(RebirthEntry {
        gateway: p.gateway.clone(),
        edge_node: p.edge_node.clone(),
        reason: p.reason.clone(),
        height: ctx.height,
    });
    st.put(anomalies_key(&p.device), &log);
    Ok(DataEvent::RebirthRequested {
        device: p.device,
        edge_node: p.edge_node.clone(),
        gateway: p.gateway.clone(),
    })
}
