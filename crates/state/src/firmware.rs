//! Firmware provenance rules (issue 4): firmware keys, SUIT-signed releases, certification,
//! vulnerability reports, fleet policies, rollouts with multi-organisation approval, LwM2M
//! progress, and device-attested installs feeding the fleet version map.
//!
//! **Releases.** `PublishRelease` needs the Publisher role. The envelope must verify
//! ([`chipledger_device::suit::verify_envelope`]) under one of the publisher's *active* firmware
//! keys; the release id is the manifest digest and the security version the manifest sequence
//! number. The manifest must have exactly one component with a SHA-256 image digest and a size
//! that every path agrees on; it must check the class id on every path, and its set of class ids
//! must equal `{class_id_for_model(m)}` of the listed models (several models = several class ids
//! in a `try-each`). A vendor id, when the manifest has one, must be
//! `vendor_id_for_org(publisher)`. One image digest names one release
//! (`fw/by-digest/<digest>`), so a device's measurement identifies what it runs; a second
//! release of the same image is [`FirmwareError::ImageExists`]. The same (publisher, version,
//! model) twice is [`FirmwareError::VersionExists`]. Security versions need not grow between
//! releases (hotfix branches); anti-rollback is enforced per device at install.
//!
//! **Keys.** Firmware keys are self-service for publishers (no governance), bounded per
//! organisation, and unique network-wide (`fw/key-owner/<id>`), so nobody can register another
//! publisher's key and claim its releases. A revoked key stays listed and signs nothing new;
//! releases it signed earlier stay valid until withdrawn.
//!
//! **Rollouts.** The policy (approvers, threshold, certification requirement) is copied into
//! the rollout when it is created. Every rollout starts `waiting_for_approval`, even with a
//! threshold of one. The approval that reaches the threshold makes it `ready` — and fails
//! instead (the approver may retry) when the release was withdrawn or, under
//! `require_certified`, its latest certification is not `Certified`. Any rejection makes it
//! `approval_denied`. Becoming ready writes the
//! [`ApprovalRecord`](chipledger_types::firmware_tx::ApprovalRecord) devices prove; a later
//! rollout of the same release for the same owner adds its models to it. Cancelling a rollout
//! (`stopped`) does not revoke an approval already given: withdrawing the release does.
//! `rate_devices_per_min` and `wave_size` are recorded for the delivery side (the ledger has
//! no clock to pace devices by).
//!
//! **Progress.** `ReportProgress` (owner) keeps each device's latest LwM2M state/result under
//! the rollout and the rollout's counters; `Downloading` and `Updating` carry no final result
//! (LwM2M object 5 state machine). A running rollout pauses itself when, over at least
//! [`ABORT_MIN_SAMPLE_DEVICES`] devices with a final result, the failed share exceeds
//! `abort_failure_pct`; it is `finished` when every device targeted at start has a final result.
//! Reports never touch the fleet version map.
//!
//! **Installs.** `AttestInstall` (anyone may submit; the evidence authenticates the device)
//! verifies the evidence exactly as `Attest` does ([`crate::device`]), then requires: the
//! rollout's release is not withdrawn and approved for the device's owner and model; the
//! device is the rollout owner's and of one of its models; the EAT's first measurement equals
//! the image digest, and so does the Alias certificate's SHA-256 FWID
//! ([`FirmwareError::AliasNotForRelease`]: the evidence must be signed by the Alias key DICE
//! derived for *this* release, not an earlier layer's); the security version is not below the
//! installed one; and the installed version (if any) lies in the release's applicable range.
//! It then writes the fleet version map (`fw/installed/<device>`), the device's update history
//! and its attestation, whose Alias key (trust level 2 for records) becomes the new layer's. Evidence for the release the
//! device already runs refreshes the map entry without a new history entry. A rollout's state
//! does not gate evidence: the map records what devices prove.

mod error;
mod install;
pub mod model;
mod release;
mod rollout;

pub use error::FirmwareError;

use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{CertStatus, FirmwareKeyId, ReleaseId, UpdateResult, UpdateState};
use chipledger_types::tx::{Payload, Role, TxHash};

use crate::apply::{BlockContext, Event, TxState, active_org};
use crate::error::TxError;
use crate::model::OrgRecord;
use crate::store::StateRead;

/// Fewest devices with a final result before the failure percentage may pause a rollout.
pub const ABORT_MIN_SAMPLE_DEVICES: u32 = 10;

/// What a firmware transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirmwareEvent {
    KeyRegistered {
        org: String,
        key: FirmwareKeyId,
    },
    KeyRevoked {
        org: String,
        key: FirmwareKeyId,
    },
    ReleasePublished {
        release: ReleaseId,
        publisher: String,
        version: String,
        security_version: u64,
    },
    ReleaseWithdrawn {
        release: ReleaseId,
    },
    ReleaseCertified {
        release: ReleaseId,
        auditor: String,
        status: CertStatus,
    },
    VulnerabilityReported {
        cve: String,
        org: String,
        /// Releases this report added to the CVE.
        added: u32,
    },
    FleetPolicySet {
        owner: String,
        fleet: String,
    },
    RolloutCreated {
        rollout: TxHash,
        fleet: String,
        release: ReleaseId,
    },
    RolloutApproved {
        rollout: TxHash,
        org: String,
        approvals: u32,
        threshold: u32,
    },
    /// The rollout became ready; its approval record was written.
    RolloutReady {
        rollout: TxHash,
        release: ReleaseId,
        owner: String,
    },
    RolloutDenied {
        rollout: TxHash,
        org: String,
    },
    /// A state change by the owner (hawkBit state name).
    RolloutStatusChanged {
        rollout: TxHash,
        status: &'static str,
    },
    ProgressReported {
        rollout: TxHash,
        device: DeviceId,
        state: UpdateState,
        result: UpdateResult,
    },
    RolloutAutoPaused {
        rollout: TxHash,
        failed: u32,
        finished: u32,
    },
    RolloutFinished {
        rollout: TxHash,
    },
    InstallAttested {
        device: DeviceId,
        release: ReleaseId,
        security_version: u64,
    },
}

/// Apply a firmware payload signed by `org` in the transaction `hash`.
pub(crate) fn apply(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    payload: &Payload,
) -> Result<Vec<Event>, TxError> {
    let events = match payload {
        Payload::RegisterFirmwareKey(p) => release::register_key(st, ctx, org, p)?,
        Payload::RevokeFirmwareKey(p) => release::revoke_key(st, ctx, org, p)?,
        Payload::PublishRelease(p) => release::publish(st, ctx, hash, org, p)?,
        Payload::WithdrawRelease(p) => release::withdraw(st, ctx, org, p)?,
        Payload::Certify(p) => release::certify(st, ctx, org, p)?,
        Payload::ReportVulnerability(p) => release::report_vulnerability(st, ctx, org, p)?,
        Payload::SetFleetPolicy(p) => rollout::set_fleet_policy(st, ctx, org, p)?,
        Payload::CreateRollout(p) => rollout::create(st, ctx, hash, org, p)?,
        Payload::ApproveRollout(p) => rollout::approve(st, ctx, org, p)?,
        Payload::RejectRollout(p) => rollout::reject(st, ctx, org, p)?,
        Payload::ControlRollout(p) => rollout::control(st, ctx, org, p)?,
        Payload::ReportProgress(p) => rollout::report_progress(st, ctx, org, p)?,
        Payload::AttestInstall(p) => install::attest_install(st, ctx, hash, p)?,
        _ => return Err(TxError::Invalid("not a firmware payload")),
    };
    Ok(events.into_iter().map(Event::Firmware).collect())
}

/// An active organisation holding `role`.
fn require_role(s: &dyn StateRead, org: &str, role: Role) -> Result<OrgRecord, TxError> {
    let record = active_org(s, org)?;
    if !record.roles.contains(&role) {
        return Err(FirmwareError::MissingRole {
            org: org.into(),
            role: role.name(),
        }
        .into());
    }
    Ok(record)
}

/// The id of a firmware key: first 160 bits of SHA-256 of its uncompressed SEC1 point.
pub fn firmware_key_id(key: &p256::ecdsa::VerifyingKey) -> FirmwareKeyId {
    FirmwareKeyId(chipledger_device::cert::key_id(key))
}
