//! Zero-knowledge range proofs (issue 6), ledger side: `PublishRangeProof` records a verified
//! Bulletproof that a device-signed, committed reading lies within public bounds (see
//! `chipledger_types::zk_tx` for the formats and `crates/zk/README.md` for what is hidden).
//!
//! **Rules**, in order:
//! 1. The statement decodes as a COSE_Sign1 over a reading commitment ([`ZkTxError::BadStatement`]).
//! 2. Its device is registered ([`TxError::UnknownDevice`]) and not revoked
//!    ([`TxError::DeviceRevoked`]); its manufacturer CA is known and not revoked
//!    ([`TxError::CaRevoked`]).
//! 3. The signer of the transaction is the device's **owner** ([`ZkTxError::NotDeviceOwner`]).
//!    The owner decides what is disclosed about its devices' data; the manufacturer has no say
//!    over readings (and a range proof needs the blinding, which the owner's device holds).
//! 4. The statement verifies under the device's DeviceID key (from its registered DeviceID
//!    certificate, checked against the CA at block time) or, if the device is attested, under
//!    the Alias key of its attested firmware ([`ZkTxError::StatementSignature`]); the record
//!    says which ([`StatementKey`]).
//! 5. The bounds make a statement (`min ≤ max`, `max − min < 2^bits`; [`ZkTxError::BadBounds`])
//!    and the proof verifies for the statement's commitment ([`ZkTxError::ProofMalformed`],
//!    [`ZkTxError::ProofInvalid`]). Verification is deterministic (`chipledger_zk`).
//!
//! **Writes.** `zk/proof/<tx hex>` → [`RangeProofRecord`] (with the statement and proof bytes,
//! so anyone can re-verify from state), and an audit entry of kind `range-proof` for the device
//! and the publishing organisation (the device's trail is its index of proofs). A refused
//! transaction writes nothing.
//!
//! The ledger does not check that the committed value is the reading inside the (encrypted)
//! record: the device signs both, so that binding rests on the device's key.

mod error;

pub use error::ZkTxError;

use chipledger_device::cert;
use chipledger_device::eat::EatError;
use chipledger_device::key::DevicePublicKey;
use chipledger_device::reading::{decode_unverified, verify_reading_commitment};
use chipledger_types::audit::AuditSubject;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::{Payload, TxHash};
use chipledger_types::zk_tx::{
    AUDIT_KIND_RANGE_PROOF, PublishRangeProof, RangeProofRecord, ReadingCommitment, StatementKey, range_proof_key,
};
use chipledger_zk::{Commitment, ZkError, verify_bounds};

use crate::apply::{BlockContext, Event, TxState};
use crate::audit::{AuditNote, append};
use crate::error::TxError;
use crate::model::{DeviceRecord, get_ca, get_device, read};
use crate::store::StateRead;

/// What a range-proof transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZkEvent {
    RangeProofPublished {
        tx: TxHash,
        device: DeviceId,
        stream: String,
        seq: u64,
        quantity: String,
        min: u64,
        max: u64,
        bits: u8,
    },
}

/// Apply a range-proof payload signed by `org` in the transaction `hash`.
pub(crate) fn apply(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    payload: &Payload,
) -> Result<Vec<Event>, TxError> {
    let Payload::PublishRangeProof(p) = payload else {
        return Err(TxError::Invalid("not a range-proof payload"));
    };
    let event = publish(st, ctx, hash, org, p)?;
    Ok(vec![Event::Zk(event)])
}

/// The stored record of a published range proof, if `tx` published one.
pub fn get_range_proof(s: &dyn StateRead, tx: &TxHash) -> Result<Option<RangeProofRecord>, TxError> {
    read(s, &range_proof_key(tx))
}

fn publish(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &PublishRangeProof,
) -> Result<ZkEvent, TxError> {
    let view = st.view();
    let claimed = decode_unverified(&p.statement).map_err(|e| ZkTxError::BadStatement(e.to_string()))?;
    let device = live_device(&view, &claimed.device)?;
    if device.owner != org {
        return Err(ZkTxError::NotDeviceOwner {
            org: org.into(),
            device: device.id,
            owner: device.owner,
        }
        .into());
    }
    let (reading, signed_by) = verify_statement(&view, ctx, &device, &p.statement)?;
    check_proof(&reading, p)?;
    let record = RangeProofRecord {
        tx: *hash,
        publisher: org.into(),
        reading,
        min: p.min,
        max: p.max,
        bits: p.bits,
        signed_by,
        height: ctx.height,
        timestamp_ms: ctx.timestamp_ms,
        statement: p.statement.clone(),
        proof: p.proof.clone(),
    };
    st.put(range_proof_key(hash), &record);
    let r = &record.reading;
    let note = AuditNote {
        kind: AUDIT_KIND_RANGE_PROOF,
        tx: hash,
        actor: org,
        summary: format!(
            "range proof: {} of record {}#{} lies in [{}, {}] ({} bits; statement signed by the {} key)",
            r.quantity,
            r.stream,
            r.seq,
            p.min,
            p.max,
            p.bits,
            signed_by.name()
        ),
    };
    append(
        st,
        ctx,
        &[AuditSubject::Device(r.device), AuditSubject::Org(org.into())],
        &note,
    )?;
    Ok(ZkEvent::RangeProofPublished {
        tx: *hash,
        device: r.device,
        stream: r.stream.clone(),
        seq: r.seq,
        quantity: r.quantity.clone(),
        min: p.min,
        max: p.max,
        bits: p.bits,
    })
}

/// A registered, unrevoked device.
fn live_device(s: &dyn StateRead, id: &DeviceId) -> Result<DeviceRecord, TxError> {
    let record = get_device(s, id)?.ok_or(TxError::UnknownDevice(*id))?;
    if record.revoked.is_some() {
        return Err(TxError::DeviceRevoked(*id));
    }
    Ok(record)
}

/// The device's registered DeviceID key (its certificate checked against its CA at block time).
fn deviceid_key(s: &dyn StateRead, ctx: &BlockContext<'_>, device: &DeviceRecord) -> Result<DevicePublicKey, TxError> {
    let ca = get_ca(s, &device.ca)?.ok_or(TxError::UnknownCa(device.ca))?;
    if ca.revoked.is_some() {
        return Err(TxError::CaRevoked(device.ca));
    }
    cert::verify_deviceid(&ca.cert_der, &device.deviceid_cert_der, Some(ctx.timestamp_ms / 1000)).map_err(|e| {
        TxError::BadCertificate {
            what: "DeviceID",
            why: e.to_string(),
        }
    })
}

/// Verify the statement under the DeviceID key, then the attested Alias key.
fn verify_statement(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    device: &DeviceRecord,
    statement: &[u8],
) -> Result<(ReadingCommitment, StatementKey), TxError> {
    let mut keys = vec![(deviceid_key(s, ctx, device)?, StatementKey::DeviceId)];
    if let Some(a) = &device.attestation {
        keys.push((a.alias_public_key, StatementKey::Alias));
    }
    for (key, which) in keys {
        match verify_reading_commitment(statement, &key) {
            Ok(reading) => return Ok((reading, which)),
            Err(EatError::BadSignature | EatError::AlgorithmMismatch { .. }) => continue,
            Err(e) => return Err(ZkTxError::BadStatement(e.to_string()).into()),
        }
    }
    Err(ZkTxError::StatementSignature(device.id).into())
}

/// The bounds and the proof, against the statement's commitment.
fn check_proof(reading: &ReadingCommitment, p: &PublishRangeProof) -> Result<(), TxError> {
    let commitment = Commitment(reading.commitment);
    verify_bounds(&commitment, p.min, p.max, p.bits, &p.proof).map_err(|e| {
        let err = match e {
            ZkError::InvalidStatement(why) => ZkTxError::BadBounds(why.into()),
            ZkError::VerificationFailed => ZkTxError::ProofInvalid {
                quantity: reading.quantity.clone(),
                min: p.min,
                max: p.max,
            },
            other => ZkTxError::ProofMalformed(other.to_string()),
        };
        TxError::from(err)
    })
}
