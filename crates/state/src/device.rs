//! Chip identity rules (issue 3): manufacturer CAs (governance), device registration, two-step
//! ownership transfer, attestation and revocation.
//!
//! **Device id.** The open-dice ID of the DeviceID public key: `KDF(20, raw key, ID_SALT, "ID")`
//! with the top bit cleared ([`chipledger_device::dice::derive_id`] over the key as open-dice
//! encodes it: `x ‖ y` for P-256, the 32 raw bytes for Ed25519). It is what the chip itself
//! computes and puts in its DeviceID certificate's serial number, so an auditor can recompute it
//! from the chip's key alone. DeviceID and Alias keys may be P-256 (ES256 evidence) or Ed25519
//! (EdDSA evidence); manufacturer CAs are P-256.
//!
//! **CA id.** `cert::key_id` of the CA public key (first 160 bits of SHA-256 of the SEC1 point).
//!
//! **Attestation nonce.** The state machine sees no block digests, so the challenge is built
//! from what it does know deterministically: every device record carries `challenge_seed`, the
//! hash of the last transaction that changed it. Evidence must carry the 40-byte nonce
//! [`attest_nonce`]`(chain, device, seed, h)` = `h` (8 bytes, big-endian) ‖
//! SHA-256(`TAG_ATTEST_NONCE_V1` ‖ 0x00 ‖ CBOR([chain_id, device, seed, h])), for a height `h`
//! no more than [`ATTEST_NONCE_WINDOW_BLOCKS`] below the including block. Accepted evidence
//! changes the seed, so it cannot be replayed; unused evidence expires with the window.
//!
//! **Evidence identity.** An EAT must name the registered device (encodings in
//! [`chipledger_device::ledger`]): its `ueid` must be exactly `0x01 ‖ device id` (UEID type
//! RAND followed by the 20-byte open-dice ID, 21 bytes), and its `hwmodel` exactly the
//! registered model number as 4 bytes big-endian. Anything else is
//! [`TxError::EvidenceMismatch`] naming the claim, what the registration needs and what came.
//!
//! **Proof of presence on accept.** `AcceptTransfer` may carry a COSE_Sign1 made by the
//! device's DeviceID key (the key of the registered DeviceID certificate, whose CA must not be
//! revoked) over `[TAG_ACCEPT_TRANSFER_V1, device id, accepting org, nonce]`
//! ([`chipledger_device::ledger::AcceptTransferProof`]). The nonce follows the attestation
//! nonce rule above (the offer changed the seed, so only a challenge fetched after the offer
//! works). A proof by any other key is [`TxError::DeviceProofWrongKey`]; one naming another
//! device or organisation is [`TxError::DeviceProofMismatch`]; a stale or wrong nonce is
//! [`TxError::StaleNonce`] / [`TxError::WrongNonce`]. Without a proof the accept works as
//! before; the history entry and the `TransferAccepted` event record `device_proof`.
//!
//! **Attested Alias key.** Accepted evidence (`Attest`, or `AttestInstall` in
//! [`crate::firmware`]) stores the Alias public key of the chain it verified
//! ([`Attestation::alias_public_key`], canonical SPKI DER): the key of the attested firmware
//! layer, under which a gateway verifies records at trust level 2. The device record holds only
//! the current one: both transactions must carry the Alias certificate of the layer they prove,
//! so an install that changes the firmware (and so, with DICE, the Alias key) replaces the key
//! in the same write, and the old layer's key stops backing trust 2 from that height.
//!
//! **Time.** Certificate validity is checked against the block timestamp, never a clock.

use chipledger_device::cert::{self, CertError};
use chipledger_device::eat;
use chipledger_device::eat::{EatClaims, EatError};
use chipledger_device::key::DevicePublicKey;
use chipledger_device::ledger::{self, AcceptTransferProof};
use chipledger_types::cbor::Encoder;
use chipledger_types::device_tx::*;
use chipledger_types::limits::{MAX_CAS_PER_ORG, MAX_DEVICE_HISTORY, MAX_DEVICES_PER_OWNER};
use chipledger_types::tx::{Role, TxHash};
use sha2::{Digest, Sha256};

use crate::apply::{BlockContext, Event, TxState, active_org};
use crate::error::TxError;
use crate::model::*;
use crate::store::StateRead;

/// Domain-separation tag of the attestation challenge.
pub const TAG_ATTEST_NONCE_V1: &str = "chipledger/attest-nonce/v1";
/// How many heights back an attestation nonce may name.
pub const ATTEST_NONCE_WINDOW_BLOCKS: u64 = 64;
/// Length of an attestation nonce: 8-byte height ‖ 32-byte digest.
pub const ATTEST_NONCE_BYTES: usize = 40;

/// The challenge a device answers in its EAT `eat_nonce` (see the module documentation).
pub fn attest_nonce(chain_id: &str, device: &DeviceId, seed: &[u8; 32], height: u64) -> [u8; ATTEST_NONCE_BYTES] {
    let mut e = Encoder::new();
    e.array(4).text(chain_id).bytes(&device.0).bytes(seed).uint(height);
    let mut h = Sha256::new();
    h.update(TAG_ATTEST_NONCE_V1.as_bytes());
    h.update([0u8]);
    h.update(e.into_bytes());
    let mut nonce = [0u8; ATTEST_NONCE_BYTES];
    nonce[..8].copy_from_slice(&height.to_be_bytes());
    nonce[8..].copy_from_slice(&h.finalize());
    nonce
}

/// The device id of a DeviceID public key: the open-dice ID of `x ‖ y` (P-256) or of the raw
/// 32-byte key (Ed25519). Takes a P-256 or Ed25519 `VerifyingKey` or a `DevicePublicKey`.
pub fn device_id_of(key: impl Into<DevicePublicKey>) -> DeviceId {
    DeviceId(key.into().dice_id())
}

/// The CA id of a manufacturer CA public key.
pub fn ca_id_of(key: &p256::ecdsa::VerifyingKey) -> CaId {
    CaId(cert::key_id(key))
}

fn now_unix_s(ctx: &BlockContext<'_>) -> Option<u64> {
    Some(ctx.timestamp_ms / 1000)
}

fn bad_cert(what: &'static str) -> impl Fn(CertError) -> TxError {
    move |e| TxError::BadCertificate {
        what,
        why: e.to_string(),
    }
}

// ---- governance -------------------------------------------------------------------------

/// Is `AddManufacturerCa` valid now? Returns the new CA's id.
pub(crate) fn check_add_ca(s: &dyn StateRead, ctx: &BlockContext<'_>, a: &AddManufacturerCa) -> Result<CaId, TxError> {
    let org = active_org(s, &a.org)?;
    if !org.roles.contains(&Role::Manufacturer) {
        return Err(TxError::NotManufacturer(a.org.clone()));
    }
    let key = cert::verify_ca(&a.ca_cert_der, now_unix_s(ctx)).map_err(bad_cert("manufacturer CA"))?;
    let id = ca_id_of(&key);
    if get_ca(s, &id)?.is_some() {
        return Err(TxError::CaExists(id));
    }
    if org_ca_ids(s, &a.org)?.len() >= MAX_CAS_PER_ORG {
        return Err(TxError::LimitReached {
            what: "manufacturer CAs per organisation",
            max: MAX_CAS_PER_ORG,
        });
    }
    Ok(id)
}

pub(crate) fn execute_add_ca(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    a: &AddManufacturerCa,
) -> Result<Event, TxError> {
    let id = check_add_ca(&st.view(), ctx, a)?;
    let mut ids = org_ca_ids(&st.view(), &a.org)?;
    ids.push(id);
    st.put(org_cas_key(&a.org), &IdList(ids));
    let record = CaRecord {
        id,
        org: a.org.clone(),
        cert_der: a.ca_cert_der.clone(),
        models: a.models.clone(),
        added_height: ctx.height,
        revoked: None,
    };
    st.put(ca_key(&id), &record);
    Ok(Event::ManufacturerCaAdded {
        ca: id,
        org: a.org.clone(),
    })
}

/// Is `RevokeManufacturerCa` valid now? Returns the CA record.
pub(crate) fn check_revoke_ca(s: &dyn StateRead, a: &RevokeManufacturerCa) -> Result<CaRecord, TxError> {
    let record = get_ca(s, &a.ca)?.ok_or(TxError::UnknownCa(a.ca))?;
    if record.revoked.is_some() {
        return Err(TxError::CaRevoked(a.ca));
    }
    Ok(record)
}

pub(crate) fn execute_revoke_ca(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    a: &RevokeManufacturerCa,
) -> Result<Event, TxError> {
    let mut record = check_revoke_ca(&st.view(), a)?;
    record.revoked = Some((ctx.height, a.reason.clone()));
    st.put(ca_key(&a.ca), &record);
    let mut revoked = revoked_ca_ids(&st.view())?;
    revoked.push(a.ca);
    st.put(KEY_REVOKED_CA_INDEX.to_vec(), &IdList(revoked));
    Ok(Event::ManufacturerCaRevoked {
        ca: a.ca,
        org: record.org,
        reason: a.reason.clone(),
    })
}

// ---- device payloads --------------------------------------------------------------------

/// The CA a manufacturer names for a registration: registered, its own, not revoked, and
/// granting `model`.
fn endorsing_ca(s: &dyn StateRead, org: &str, p: &RegisterDevice) -> Result<CaRecord, TxError> {
    let ca = get_ca(s, &p.ca)?.ok_or(TxError::UnknownCa(p.ca))?;
    if ca.org != org {
        return Err(TxError::Unendorsed {
            ca: p.ca,
            why: format!("the CA belongs to '{}', not '{org}'", ca.org),
        });
    }
    if ca.revoked.is_some() {
        return Err(TxError::CaRevoked(p.ca));
    }
    if !ca.models.iter().any(|r| r.contains(p.model)) {
        return Err(TxError::ModelNotGranted {
            org: org.into(),
            ca: p.ca,
            model: p.model,
        });
    }
    Ok(ca)
}

/// Map a failed CA → DeviceID verification: a broken link means "not endorsed by this CA".
fn deviceid_error(ca: CaId, e: CertError) -> TxError {
    match e {
        CertError::BadSignature { .. } | CertError::IssuerMismatch { .. } | CertError::KeyIdMismatch { .. } => {
            TxError::Unendorsed { ca, why: e.to_string() }
        }
        other => bad_cert("DeviceID")(other),
    }
}

pub(crate) fn register(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &RegisterDevice,
) -> Result<Vec<Event>, TxError> {
    let view = st.view();
    if !active_org(&view, org)?.roles.contains(&Role::Manufacturer) {
        return Err(TxError::NotManufacturer(org.into()));
    }
    let ca = endorsing_ca(&view, org, p)?;
    active_org(&view, &p.owner)?;
    let key = cert::verify_deviceid(&ca.cert_der, &p.deviceid_cert_der, now_unix_s(ctx))
        .map_err(|e| deviceid_error(p.ca, e))?;
    let id = device_id_of(key);
    if get_device(&view, &id)?.is_some() {
        return Err(TxError::DeviceExists(id));
    }
    let owned = add_owned(&view, &p.owner, id)?;
    let record = DeviceRecord {
        id,
        manufacturer: org.into(),
        ca: p.ca,
        model: p.model,
        deviceid_cert_der: p.deviceid_cert_der.clone(),
        owner: p.owner.clone(),
        offered_to: None,
        registered_height: ctx.height,
        revoked: None,
        attestation: None,
        challenge_seed: hash.0,
    };
    let history = push_history(&view, &id, ctx, HistoryKind::Registered, org, &p.owner, false)?;
    st.put(owner_index_key(&p.owner), &owned);
    st.put(device_history_key(&id), &history);
    st.put(device_key(&id), &record);
    Ok(vec![Event::DeviceRegistered {
        device: id,
        owner: p.owner.clone(),
    }])
}

/// The owner index of `owner` with `id` added (sorted, bounded).
fn add_owned(s: &dyn StateRead, owner: &str, id: DeviceId) -> Result<IdList<DeviceId>, TxError> {
    let mut ids = devices_by_owner(s, owner)?;
    if ids.len() >= MAX_DEVICES_PER_OWNER {
        return Err(TxError::LimitReached {
            what: "devices per owner",
            max: MAX_DEVICES_PER_OWNER,
        });
    }
    if let Err(at) = ids.binary_search(&id) {
        ids.insert(at, id);
    }
    Ok(IdList(ids))
}

/// The device's history with one more entry (bounded).
fn push_history(
    s: &dyn StateRead,
    id: &DeviceId,
    ctx: &BlockContext<'_>,
    kind: HistoryKind,
    from: &str,
    to: &str,
    device_proof: bool,
) -> Result<History, TxError> {
    let mut entries = device_history(s, id)?;
    if entries.len() >= MAX_DEVICE_HISTORY {
        return Err(TxError::LimitReached {
            what: "history entries per device",
            max: MAX_DEVICE_HISTORY,
        });
    }
    entries.push(HistoryEntry {
        height: ctx.height,
        kind,
        from: from.into(),
        to: to.into(),
        device_proof,
    });
    Ok(History(entries))
}

/// A registered, unrevoked device.
fn live_device(s: &dyn StateRead, id: &DeviceId) -> Result<DeviceRecord, TxError> {
    let record = get_device(s, id)?.ok_or(TxError::UnknownDevice(*id))?;
    if record.revoked.is_some() {
        return Err(TxError::DeviceRevoked(*id));
    }
    Ok(record)
}

pub(crate) fn offer(st: &mut TxState<'_>, hash: &TxHash, org: &str, p: &OfferTransfer) -> Result<Vec<Event>, TxError> {
    let mut record = live_device(&st.view(), &p.device)?;
    if record.owner != org {
        return Err(TxError::NotAuthorized {
            org: org.into(),
            device: p.device,
            who: "its owner",
        });
    }
    active_org(&st.view(), &p.to_org)?;
    if p.to_org == org {
        return Err(TxError::Invalid("a device cannot be offered to its current owner"));
    }
    record.offered_to = Some(p.to_org.clone());
    record.challenge_seed = hash.0;
    st.put(device_key(&p.device), &record);
    Ok(vec![Event::TransferOffered {
        device: p.device,
        to: p.to_org.clone(),
    }])
}

pub(crate) fn accept(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &AcceptTransfer,
) -> Result<Vec<Event>, TxError> {
    let view = st.view();
    let mut record = live_device(&view, &p.device)?;
    if record.offered_to.as_deref() != Some(org) {
        return Err(TxError::NoTransferOffer {
            org: org.into(),
            device: p.device,
        });
    }
    let device_proof = match &p.device_proof {
        Some(proof) => check_device_proof(&view, ctx, &record, org, proof).map(|()| true)?,
        None => false,
    };
    let from = record.owner.clone();
    let gained = add_owned(&view, org, p.device)?;
    let mut kept = devices_by_owner(&view, &from)?;
    kept.retain(|d| *d != p.device);
    let history = push_history(
        &view,
        &p.device,
        ctx,
        HistoryKind::Transferred,
        &from,
        org,
        device_proof,
    )?;
    record.owner = org.into();
    record.offered_to = None;
    record.challenge_seed = hash.0;
    st.put(owner_index_key(&from), &IdList(kept));
    st.put(owner_index_key(org), &gained);
    st.put(device_history_key(&p.device), &history);
    st.put(device_key(&p.device), &record);
    Ok(vec![Event::TransferAccepted {
        device: p.device,
        from,
        to: org.into(),
        device_proof,
    }])
}

/// A device's proof of presence for `org` accepting it (see the module documentation).
fn check_device_proof(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    record: &DeviceRecord,
    org: &str,
    proof: &[u8],
) -> Result<(), TxError> {
    let ca = get_ca(s, &record.ca)?.ok_or(TxError::UnknownCa(record.ca))?;
    if ca.revoked.is_some() {
        return Err(TxError::CaRevoked(record.ca));
    }
    let key = cert::verify_deviceid(&ca.cert_der, &record.deviceid_cert_der, now_unix_s(ctx))
        .map_err(bad_cert("DeviceID"))?;
    let payload = eat::verify_cose_sign1(proof, &key).map_err(|e| match e {
        EatError::BadSignature | EatError::AlgorithmMismatch { .. } => TxError::DeviceProofWrongKey(record.id),
        other => TxError::BadDeviceProof(other.to_string()),
    })?;
    let claimed = AcceptTransferProof::from_payload(&payload).map_err(|e| TxError::BadDeviceProof(e.to_string()))?;
    if claimed.device_id != record.id.0 {
        return Err(TxError::DeviceProofMismatch {
            field: "device",
            want: record.id.to_string(),
            got: hex::encode(claimed.device_id),
        });
    }
    if claimed.to_org != org {
        return Err(TxError::DeviceProofMismatch {
            field: "to_org",
            want: org.into(),
            got: claimed.to_org,
        });
    }
    check_nonce(ctx, record, &claimed.nonce)
}

/// The EAT's `ueid` and `hwmodel` must name the registered device (see the module documentation).
fn check_evidence_identity(record: &DeviceRecord, claims: &EatClaims) -> Result<(), TxError> {
    let expected: [(&'static str, &[u8], &[u8]); 2] = [
        ("ueid", &ledger::ueid_of(&record.id.0), &claims.ueid),
        ("hwmodel", &ledger::hwmodel_of(record.model), &claims.hwmodel),
    ];
    for (claim, want, got) in expected {
        if want != got {
            return Err(TxError::EvidenceMismatch {
                claim,
                want: hex::encode(want),
                got: hex::encode(got),
            });
        }
    }
    Ok(())
}

/// Check the nonce of accepted-signature evidence against the device's current challenge.
fn check_nonce(ctx: &BlockContext<'_>, record: &DeviceRecord, nonce: &[u8]) -> Result<(), TxError> {
    let nonce: &[u8; ATTEST_NONCE_BYTES] = nonce.try_into().map_err(|_| TxError::WrongNonce)?;
    let nonce_height = u64::from_be_bytes(nonce[..8].try_into().expect("8 bytes"));
    if nonce_height > ctx.height {
        return Err(TxError::WrongNonce);
    }
    if ctx.height - nonce_height > ATTEST_NONCE_WINDOW_BLOCKS {
        return Err(TxError::StaleNonce {
            nonce_height,
            height: ctx.height,
            window_blocks: ATTEST_NONCE_WINDOW_BLOCKS,
        });
    }
    if *nonce != attest_nonce(ctx.chain_id, &record.id, &record.challenge_seed, nonce_height) {
        return Err(TxError::WrongNonce);
    }
    Ok(())
}

/// Anyone may submit a device's evidence (a gateway, its owner): the evidence authenticates
/// the device, and the one-time challenge stops replays.
pub(crate) fn attest(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    p: &Attest,
) -> Result<Vec<Event>, TxError> {
    let (mut record, attestation) = verify_evidence(&st.view(), ctx, &p.device, &p.alias_cert_der, &p.eat)?;
    record.attestation = Some(attestation);
    record.challenge_seed = hash.0;
    st.put(device_key(&p.device), &record);
    Ok(vec![Event::DeviceAttested { device: p.device }])
}

/// Verify a device's evidence exactly as `Attest` does (live device, unrevoked CA, Alias chain,
/// EAT signature, identity claims, fresh nonce) without writing anything; returns the device
/// record and what the evidence says. `AttestInstall` (firmware) verifies through this too.
/// Whoever accepts the evidence must move the record's `challenge_seed` on (no replay).
pub(crate) fn verify_evidence(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    device: &DeviceId,
    alias_cert_der: &[u8],
    eat_token: &[u8],
) -> Result<(DeviceRecord, Attestation), TxError> {
    let record = live_device(s, device)?;
    let ca = get_ca(s, &record.ca)?.ok_or(TxError::UnknownCa(record.ca))?;
    if ca.revoked.is_some() {
        return Err(TxError::CaRevoked(record.ca));
    }
    let chain = cert::verify_chain(&ca.cert_der, &record.deviceid_cert_der, alias_cert_der, now_unix_s(ctx))
        .map_err(bad_cert("Alias chain"))?;
    let payload =
        eat::verify_cose_sign1(eat_token, &chain.alias_public_key).map_err(|e| TxError::BadEvidence(e.to_string()))?;
    let claims = eat::decode_claims(&payload).map_err(|e| TxError::BadEvidence(e.to_string()))?;
    check_evidence_identity(&record, &claims)?;
    check_nonce(ctx, &record, &claims.nonce)?;
    let fwids = chain.alias_tcb_info.fwids.as_deref().unwrap_or_default();
    let fwid = fwids
        .iter()
        .find(|f| f.expected_len() == Some(32))
        .map(|f| f.digest.as_bytes());
    let attestation = Attestation {
        height: ctx.height,
        swname: claims.swname,
        swversion: claims.swversion.version,
        measurement: claims.measurements.first().map(|m| m.value.clone()).unwrap_or_default(),
        alias_fwid_sha256: fwid.map(<[u8]>::to_vec).unwrap_or_default(),
        alias_public_key: chain.alias_public_key,
    };
    Ok((record, attestation))
}

pub(crate) fn revoke(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &RevokeDevice,
) -> Result<Vec<Event>, TxError> {
    let mut record = live_device(&st.view(), &p.device)?;
    if record.owner != org && record.manufacturer != org {
        return Err(TxError::NotAuthorized {
            org: org.into(),
            device: p.device,
            who: "its owner or its manufacturer",
        });
    }
    let history = push_history(
        &st.view(),
        &p.device,
        ctx,
        HistoryKind::Revoked,
        org,
        &record.owner,
        false,
    )?;
    record.revoked = Some(DeviceRevocation {
        height: ctx.height,
        reason: p.reason,
        by: org.into(),
    });
    record.offered_to = None;
    record.challenge_seed = hash.0;
    st.put(device_history_key(&p.device), &history);
    st.put(device_key(&p.device), &record);
    let shard = p.device.0[0];
    let mut revoked = revoked_devices_in_shard(&st.view(), shard)?;
    revoked.push(p.device);
    st.put(revoked_devices_shard_key(shard), &IdList(revoked));
    Ok(vec![Event::DeviceRevoked {
        device: p.device,
        reason: p.reason,
    }])
}

/// The challenge a device must answer now: [`attest_nonce`] over its current `challenge_seed`
/// at `height` (the newest finalized height). The API serves it; the rule above checks it.
pub fn current_challenge(
    s: &dyn StateRead,
    chain_id: &str,
    device: &DeviceId,
    height: u64,
) -> Result<[u8; ATTEST_NONCE_BYTES], TxError> {
    let record = live_device(s, device)?;
    Ok(attest_nonce(chain_id, &record.id, &record.challenge_seed, height))
}
