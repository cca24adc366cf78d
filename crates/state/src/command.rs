//! Authorized commands and access receipts (issue 6), ledger side. Wire formats and records:
//! `chipledger_types::command_tx`; the device's checks: `chipledger_device::command`.
//!
//! **Authorize.** The signer needs the Owner role ([`CommandError::NotOwner`]); every listed
//! device must be registered, not revoked, and owned by the signer
//! ([`CommandError::NotDeviceOwner`]); an organisation grantee must exist
//! ([`CommandError::UnknownGrantee`]); `expires_ms` must be after the block time
//! ([`CommandError::ExpiryPast`]). The record `authz/<tx hex>` is what devices are shown.
//!
//! **RevokeAuthorization.** Only the authorization's owner
//! ([`CommandError::NotAuthorizationOwner`]); twice is [`CommandError::AuthorizationRevoked`].
//! A device learns of a revocation from the next proof it is shown: a proof under an older
//! checkpoint than the newest the device has seen is refused (`stale_checkpoint`), so the
//! window is bounded by how fresh the device's view of the ledger is.
//!
//! **RecordCommand.** Signed by the grantee organisation before it sends the request (for a
//! person's-key grantee, by the owner on that person's behalf): the authorization must be
//! active at block time (not revoked, not expired) and cover the device and action, and the
//! device must still belong to the authorization's owner. Each request hash is recorded once
//! (`cmd/<hash>`); the device's summary (`cmd/device/<id>`) lists it as pending until its
//! receipt is committed (the newest [`MAX_PENDING_COMMANDS_PER_DEVICE`]; older unanswered ones
//! are counted as dropped, and stay in their record and the audit trail).
//!
//! **AccessReceipt.** Anyone may commit a device's receipt. Its COSE_Sign1 must verify under
//! the registered device's DeviceID key (its CA not revoked) or the Alias key of its latest
//! accepted evidence; otherwise it is refused ([`CommandError::BadReceiptSignature`]), as is a
//! second receipt for the same request ([`CommandError::ReceiptReplayed`]) — except that the
//! device's *accepted* receipt replaces a *rejected* one: a device also rejects a replayed or
//! badly proven copy of a request it ran (same request hash), and whoever commits that
//! rejection first must not hide the execution (the audit trail keeps both). A valid *accepted*
//! receipt whose command was not properly authorized is **stored and flagged**, never refused
//! — the ledger records what the device says it did. Flags ([`ReceiptAnomaly`]): no such
//! authorization, revoked, expired, not covering the device/action (checked at block time when
//! no `RecordCommand` announced the request), no `RecordCommand`, or a receipt disagreeing with
//! the recorded command. A *rejected* receipt (the device refused) is recorded without a flag.
//!
//! **Audit.** Every change appends to the audit trails (`crate::audit`) of each device
//! concerned, the owner organisation and the grantee: kinds `authorization`,
//! `authorization-revoked`, `command`, `receipt`, `receipt-anomaly`.

mod error;
pub mod model;

pub use error::CommandError;

use chipledger_device::cert;
use chipledger_device::command::{peek_receipt, verify_receipt};
use chipledger_device::key::DevicePublicKey;
use chipledger_types::access_tx::Grantee;
use chipledger_types::audit::AuditSubject;
use chipledger_types::command_tx::*;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_PENDING_COMMANDS_PER_DEVICE;
use chipledger_types::merkle::Hash;
use chipledger_types::tx::{Payload, Role, TxHash};

use crate::apply::{BlockContext, Event, TxState, active_org};
use crate::audit::{AuditNote, append};
use crate::error::TxError;
use crate::model::{DeviceRecord, get_ca, get_device, get_org};
use crate::store::StateRead;
use model::*;

/// What a command transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandEvent {
    Authorized {
        id: TxHash,
        owner: String,
        grantee: Grantee,
        devices: u32,
    },
    AuthorizationRevoked {
        id: TxHash,
    },
    CommandRecorded {
        request_hash: Hash,
        device: DeviceId,
        action: String,
    },
    ReceiptCommitted {
        request_hash: Hash,
        device: DeviceId,
        outcome: Outcome,
        anomaly: Option<ReceiptAnomaly>,
    },
}

/// Apply a command payload signed by `org` in the transaction `hash`.
pub(crate) fn apply(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    payload: &Payload,
) -> Result<Vec<Event>, TxError> {
    let event = match payload {
        Payload::Authorize(p) => authorize(st, ctx, hash, org, p)?,
        Payload::RevokeAuthorization(p) => revoke(st, ctx, hash, org, p)?,
        Payload::RecordCommand(p) => record_command(st, ctx, hash, org, p)?,
        Payload::AccessReceipt(p) => access_receipt(st, ctx, hash, org, p)?,
        _ => return Err(TxError::Invalid("not a command payload")),
    };
    Ok(vec![Event::Command(event)])
}

fn owner_subject(owner: &str) -> AuditSubject {
    AuditSubject::Org(owner.into())
}

fn device_subjects(devices: &[DeviceId]) -> impl Iterator<Item = AuditSubject> + '_ {
    devices.iter().map(|d| AuditSubject::Device(*d))
}

fn short(h: &[u8]) -> String {
    hex::encode(&h[..8.min(h.len())])
}

/// A registered, unrevoked device owned by `org`.
fn owned_device(s: &dyn StateRead, org: &str, id: &DeviceId) -> Result<DeviceRecord, TxError> {
    let device = get_device(s, id)?.ok_or(TxError::UnknownDevice(*id))?;
    if device.revoked.is_some() {
        return Err(TxError::DeviceRevoked(*id));
    }
    if device.owner != org {
        return Err(CommandError::NotDeviceOwner {
            org: org.into(),
            device: *id,
            owner: device.owner,
        }
        .into());
    }
    Ok(device)
}

fn authorize(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &Authorize,
) -> Result<CommandEvent, TxError> {
    let view = st.view();
    if !active_org(&view, org)?.roles.contains(&Role::Owner) {
        return Err(CommandError::NotOwner(org.into()).into());
    }
    for d in &p.devices {
        owned_device(&view, org, d)?;
    }
    if let Grantee::Org(name) = &p.grantee
        && get_org(&view, name)?.is_none_or(|o| o.removed_height.is_some())
    {
        return Err(CommandError::UnknownGrantee(name.clone()).into());
    }
    if p.expires_ms <= ctx.timestamp_ms {
        return Err(CommandError::ExpiryPast {
            expires_ms: p.expires_ms,
            now_ms: ctx.timestamp_ms,
        }
        .into());
    }
    let record = AuthorizationRecord {
        id: *hash,
        owner: org.into(),
        grantee: p.grantee.clone(),
        devices: p.devices.clone(),
        actions: p.actions.clone(),
        expires_ms: p.expires_ms,
        purpose: p.purpose.clone(),
        created_height: ctx.height,
        created_ms: ctx.timestamp_ms,
        revoked: None,
    };
    st.put(authz_key(hash), &record);
    let summary = format!(
        "{org} authorized {} to {} on {} device(s) until {}: {}",
        p.grantee,
        p.actions.join(","),
        p.devices.len(),
        chipledger_types::audit::utc(p.expires_ms),
        p.purpose
    );
    audit(st, ctx, hash, org, "authorization", &record, &p.devices, summary)?;
    Ok(CommandEvent::Authorized {
        id: *hash,
        owner: org.into(),
        grantee: p.grantee.clone(),
        devices: p.devices.len() as u32,
    })
}

/// Appends `kind` to the trails of `devices`, the authorization's owner and its grantee.
#[allow(clippy::too_many_arguments)]
fn audit(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    actor: &str,
    kind: &str,
    a: &AuthorizationRecord,
    devices: &[DeviceId],
    summary: String,
) -> Result<(), TxError> {
    let mut subjects: Vec<AuditSubject> = device_subjects(devices).collect();
    subjects.push(owner_subject(&a.owner));
    subjects.push(a.grantee.audit_subject());
    let note = AuditNote {
        kind,
        tx: hash,
        actor,
        summary,
    };
    append(st, ctx, &subjects, &note)
}

fn existing(s: &dyn StateRead, id: &TxHash) -> Result<AuthorizationRecord, TxError> {
    Ok(get_authorization(s, id)?.ok_or(CommandError::UnknownAuthorization(*id))?)
}

fn revoke(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &RevokeAuthorization,
) -> Result<CommandEvent, TxError> {
    let mut record = existing(&st.view(), &p.authorization)?;
    if record.owner != org {
        return Err(CommandError::NotAuthorizationOwner {
            id: p.authorization,
            org: org.into(),
            owner: record.owner,
        }
        .into());
    }
    if record.revoked.is_some() {
        return Err(CommandError::AuthorizationRevoked(p.authorization).into());
    }
    record.revoked = Some(AuthzRevocation {
        height: ctx.height,
        timestamp_ms: ctx.timestamp_ms,
    });
    st.put(authz_key(&p.authorization), &record);
    let summary = format!(
        "{org} revoked authorization {} of {}",
        short(&p.authorization.0),
        record.grantee
    );
    let devices = record.devices.clone();
    audit(st, ctx, hash, org, "authorization-revoked", &record, &devices, summary)?;
    Ok(CommandEvent::AuthorizationRevoked { id: p.authorization })
}

/// The authorization must be live at block time and cover `device` and `action`.
fn check_active(
    a: &AuthorizationRecord,
    ctx: &BlockContext<'_>,
    device: &DeviceId,
    action: &str,
) -> Result<(), CommandError> {
    if a.revoked.is_some() {
        return Err(CommandError::AuthorizationRevoked(a.id));
    }
    if ctx.timestamp_ms >= a.expires_ms {
        return Err(CommandError::AuthorizationExpired {
            id: a.id,
            expires_ms: a.expires_ms,
            now_ms: ctx.timestamp_ms,
        });
    }
    if a.devices.binary_search(device).is_err() {
        return Err(CommandError::DeviceNotCovered {
            id: a.id,
            device: *device,
        });
    }
    if !a.actions.iter().any(|x| x == action) {
        return Err(CommandError::ActionNotAllowed {
            id: a.id,
            action: action.into(),
        });
    }
    Ok(())
}

/// Who may record commands under `a`: the grantee organisation, or for a key grantee the owner.
fn check_recorder(a: &AuthorizationRecord, org: &str) -> Result<(), CommandError> {
    let allowed = match &a.grantee {
        Grantee::Org(g) => g == org,
        Grantee::Key(_) => a.owner == org,
    };
    if !allowed {
        return Err(CommandError::NotGrantee {
            id: a.id,
            org: org.into(),
            grantee: a.grantee.to_string(),
        });
    }
    Ok(())
}

fn record_command(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &RecordCommand,
) -> Result<CommandEvent, TxError> {
    let view = st.view();
    let a = existing(&view, &p.authorization)?;
    check_recorder(&a, org)?;
    check_active(&a, ctx, &p.device, &p.action)?;
    owned_device(&view, &a.owner, &p.device)?;
    if get_command(&view, &p.request_hash)?.is_some() {
        return Err(CommandError::CommandExists(hex::encode(p.request_hash)).into());
    }
    let mut summary_of_device = device_commands(&view, &p.device)?;
    if summary_of_device.pending.len() >= MAX_PENDING_COMMANDS_PER_DEVICE {
        summary_of_device.pending.remove(0);
        summary_of_device.pending_dropped += 1;
    }
    summary_of_device.commands += 1;
    summary_of_device.pending.push(PendingCommand {
        request_hash: p.request_hash,
        height: ctx.height,
    });
    let record = CommandRecord {
        request_hash: p.request_hash,
        authorization: p.authorization,
        device: p.device,
        action: p.action.clone(),
        org: Some(org.into()),
        command_tx: Some(*hash),
        height: ctx.height,
        timestamp_ms: ctx.timestamp_ms,
        receipt: None,
    };
    st.put(command_key(&p.request_hash), &record);
    st.put(device_commands_key(&p.device), &summary_of_device);
    let summary = format!(
        "{org} sent '{}' to device {} (request {}, authorization {})",
        p.action,
        short(&p.device.0),
        short(&p.request_hash),
        short(&p.authorization.0)
    );
    audit(st, ctx, hash, org, "command", &a, &[p.device], summary)?;
    Ok(CommandEvent::CommandRecorded {
        request_hash: p.request_hash,
        device: p.device,
        action: p.action.clone(),
    })
}

/// The keys a device's receipt may be signed with: the DeviceID key (CA not revoked) and the
/// Alias key of its latest accepted evidence.
fn device_keys(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    device: &DeviceRecord,
) -> Result<Vec<DevicePublicKey>, TxError> {
    let mut keys = Vec::new();
    if let Some(ca) = get_ca(s, &device.ca)?.filter(|c| c.revoked.is_none())
        && let Ok(k) = cert::verify_deviceid(&ca.cert_der, &device.deviceid_cert_der, Some(ctx.timestamp_ms / 1000))
    {
        keys.push(k);
    }
    if let Some(a) = &device.attestation {
        keys.push(a.alias_public_key);
    }
    Ok(keys)
}

/// Verify a receipt's signature under its device's registered keys.
fn verified_receipt(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    bytes: &[u8],
) -> Result<(CommandReceipt, DeviceRecord), TxError> {
    let claimed = peek_receipt(bytes).map_err(|e| CommandError::MalformedReceipt(e.to_string()))?;
    let device = get_device(s, &claimed.device)?.ok_or(TxError::UnknownDevice(claimed.device))?;
    if device.revoked.is_some() {
        return Err(TxError::DeviceRevoked(claimed.device));
    }
    for key in device_keys(s, ctx, &device)? {
        if let Ok(receipt) = verify_receipt(bytes, &key) {
            return Ok((receipt, device));
        }
    }
    Err(CommandError::BadReceiptSignature(claimed.device).into())
}

/// Why an accepted receipt is flagged, if it is (see the module documentation).
fn receipt_anomaly(
    ctx: &BlockContext<'_>,
    r: &CommandReceipt,
    a: Option<&AuthorizationRecord>,
    recorded: Option<&CommandRecord>,
) -> Option<ReceiptAnomaly> {
    if !r.outcome.is_accepted() {
        return None;
    }
    let Some(a) = a else {
        return Some(ReceiptAnomaly::NoAuthorization);
    };
    match recorded {
        Some(c) if c.authorization != r.authorization || c.device != r.device || c.action != r.action => {
            Some(ReceiptAnomaly::CommandMismatch)
        }
        Some(_) => None,
        None => match check_active(a, ctx, &r.device, &r.action) {
            Err(CommandError::AuthorizationRevoked(_)) => Some(ReceiptAnomaly::AuthorizationRevoked),
            Err(CommandError::AuthorizationExpired { .. }) => Some(ReceiptAnomaly::AuthorizationExpired),
            Err(_) => Some(ReceiptAnomaly::NotCovered),
            Ok(()) => Some(ReceiptAnomaly::NoRecordedCommand),
        },
    }
}

fn access_receipt(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &AccessReceipt,
) -> Result<CommandEvent, TxError> {
    let view = st.view();
    let (r, device) = verified_receipt(&view, ctx, &p.receipt)?;
    let recorded = get_command(&view, &r.request_hash)?;
    let previous = recorded.as_ref().and_then(|c| c.receipt.as_ref());
    if previous.is_some_and(|prev| prev.outcome.is_accepted() || !r.outcome.is_accepted()) {
        return Err(CommandError::ReceiptReplayed(hex::encode(r.request_hash)).into());
    }
    // Only a `RecordCommand` announces a request; a record a rejected receipt created does not.
    let announced = recorded.filter(|c| c.command_tx.is_some());
    let a = get_authorization(&view, &r.authorization)?;
    let anomaly = receipt_anomaly(ctx, &r, a.as_ref(), announced.as_ref());
    let mut summary_of_device = device_commands(&view, &r.device)?;
    summary_of_device.receipts += 1;
    summary_of_device.anomalies += u64::from(anomaly.is_some());
    summary_of_device.pending.retain(|c| c.request_hash != r.request_hash);
    let mut record = announced.unwrap_or_else(|| CommandRecord {
        request_hash: r.request_hash,
        authorization: r.authorization,
        device: r.device,
        action: r.action.clone(),
        org: None,
        command_tx: None,
        height: ctx.height,
        timestamp_ms: ctx.timestamp_ms,
        receipt: None,
    });
    record.receipt = Some(ReceiptRef {
        tx: *hash,
        height: ctx.height,
        outcome: r.outcome.clone(),
        device_ms: r.device_ms,
        anomaly,
    });
    st.put(command_key(&r.request_hash), &record);
    st.put(device_commands_key(&r.device), &summary_of_device);
    let mut subjects = vec![AuditSubject::Device(r.device), owner_subject(&device.owner)];
    if let Some(a) = &a {
        subjects.push(owner_subject(&a.owner));
        subjects.push(a.grantee.audit_subject());
    }
    let flag = anomaly.map(|x| format!(" [anomaly: {}]", x.name())).unwrap_or_default();
    let note = AuditNote {
        kind: if anomaly.is_some() {
            "receipt-anomaly"
        } else {
            "receipt"
        },
        tx: hash,
        actor: org,
        summary: format!(
            "device {} {} '{}' (request {}, token {}){flag}",
            short(&r.device.0),
            r.outcome.code(),
            r.action,
            short(&r.request_hash),
            r.client_token
        ),
    };
    append(st, ctx, &subjects, &note)?;
    Ok(CommandEvent::ReceiptCommitted {
        request_hash: r.request_hash,
        device: r.device,
        outcome: r.outcome,
        anomaly,
    })
}
