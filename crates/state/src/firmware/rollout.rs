//! Fleet policies, rollouts (approval, control) and LwM2M progress reports.

use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::*;
use chipledger_types::limits::MAX_ROLLOUTS_PER_OWNER;
use chipledger_types::tx::{Role, TxHash};

use super::model::*;
use super::release::live_release;
use super::{ABORT_MIN_SAMPLE_DEVICES, FirmwareError, FirmwareEvent, require_role};
use crate::apply::{BlockContext, TxState, active_org};
use crate::error::TxError;
use crate::model::{devices_by_owner, get_device};
use crate::store::StateRead;

type Events = Result<Vec<FirmwareEvent>, TxError>;

pub(super) fn set_fleet_policy(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &SetFleetPolicy) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Owner)?;
    for approver in &p.approvers {
        active_org(&view, approver).map_err(|_| FirmwareError::UnknownApprover(approver.clone()))?;
    }
    let mut approvers = p.approvers.clone();
    approvers.sort();
    let policy = FleetPolicy {
        owner: org.into(),
        name: p.fleet.clone(),
        approvers,
        threshold: p.threshold,
        require_certified: p.require_certified,
        updated_height: ctx.height,
    };
    st.put(fleet_key(org, &p.fleet), &policy);
    Ok(vec![FirmwareEvent::FleetPolicySet {
        owner: org.into(),
        fleet: p.fleet.clone(),
    }])
}

pub(super) fn create(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &CreateRollout,
) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Owner)?;
    let policy = get_fleet(&view, org, &p.fleet)?.ok_or_else(|| FirmwareError::UnknownFleet {
        owner: org.into(),
        fleet: p.fleet.clone(),
    })?;
    let release = live_release(&view, &p.release)?;
    let mut models = if p.models.is_empty() {
        release.models.clone()
    } else {
        p.models.clone()
    };
    if let Some(model) = models.iter().find(|m| !release.models.contains(m)) {
        let version = release.version.clone();
        return Err(FirmwareError::ModelNotInRelease { model: *model, version }.into());
    }
    models.sort_unstable();
    let mut ids = rollouts_of_owner(&view, org)?;
    if ids.len() >= MAX_ROLLOUTS_PER_OWNER {
        return Err(TxError::LimitReached {
            what: "rollouts per owner",
            max: MAX_ROLLOUTS_PER_OWNER,
        });
    }
    ids.push(*hash);
    let record = RolloutRecord {
        id: *hash,
        owner: org.into(),
        fleet: p.fleet.clone(),
        release: p.release,
        version: release.version,
        models,
        rate_devices_per_min: p.rate_devices_per_min,
        wave_size: p.wave_size,
        abort_failure_pct: p.abort_failure_pct,
        approvers: policy.approvers,
        threshold: policy.threshold,
        require_certified: policy.require_certified,
        status: RolloutStatus::WaitingForApproval,
        approvals: Vec::new(),
        rejection: None,
        created_height: ctx.height,
        updated_height: ctx.height,
        target_devices: 0,
        counts: ProgressCounts::default(),
        attested: 0,
    };
    st.put(owner_rollouts_key(org), &HashList(ids));
    st.put(rollout_key(hash), &record);
    Ok(vec![FirmwareEvent::RolloutCreated {
        rollout: *hash,
        fleet: p.fleet.clone(),
        release: p.release,
    }])
}

pub(super) fn existing_rollout(s: &dyn StateRead, id: &TxHash) -> Result<RolloutRecord, TxError> {
    get_rollout(s, id)?.ok_or_else(|| FirmwareError::UnknownRollout(*id).into())
}

fn wrong_state(r: &RolloutRecord, action: &'static str) -> TxError {
    FirmwareError::RolloutState {
        rollout: r.id,
        status: r.status.name(),
        action,
    }
    .into()
}

/// A rollout `org` may still vote on.
fn open_vote(s: &dyn StateRead, org: &str, id: &TxHash, action: &'static str) -> Result<RolloutRecord, TxError> {
    let r = existing_rollout(s, id)?;
    if r.status != RolloutStatus::WaitingForApproval {
        return Err(wrong_state(&r, action));
    }
    if !r.approvers.iter().any(|a| a == org) {
        return Err(FirmwareError::NotRolloutApprover {
            org: org.into(),
            fleet: r.fleet,
            approvers: r.approvers.join(", "),
        }
        .into());
    }
    if r.approvals.iter().any(|a| a == org) {
        return Err(FirmwareError::DuplicateRolloutVote {
            org: org.into(),
            rollout: *id,
        }
        .into());
    }
    Ok(r)
}

pub(super) fn approve(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &ApproveRollout) -> Events {
    let mut r = open_vote(&st.view(), org, &p.rollout, "be approved")?;
    r.approvals.push(org.into());
    r.approvals.sort();
    r.updated_height = ctx.height;
    let mut events = vec![FirmwareEvent::RolloutApproved {
        rollout: r.id,
        org: org.into(),
        approvals: r.approvals.len() as u32,
        threshold: r.threshold,
    }];
    if r.approvals.len() as u32 >= r.threshold {
        events.push(become_ready(st, ctx, &mut r)?);
    }
    st.put(rollout_key(&r.id), &r);
    Ok(events)
}

/// The threshold is reached: check the release (withdrawal, certification), mark the rollout
/// ready and write (or extend) the approval record devices prove.
fn become_ready(st: &mut TxState<'_>, ctx: &BlockContext<'_>, r: &mut RolloutRecord) -> Result<FirmwareEvent, TxError> {
    let view = st.view();
    let release = live_release(&view, &r.release)?;
    if r.require_certified {
        let status = get_certification(&view, &r.release)?.map(|c| c.status);
        if status != Some(CertStatus::Certified) {
            return Err(FirmwareError::NotCertified {
                fleet: r.fleet.clone(),
                version: release.version,
                status: status.map_or("not certified", CertStatus::name),
            }
            .into());
        }
    }
    let mut models = r.models.clone();
    if let Some(previous) = get_approval(&view, &r.release, &r.owner)? {
        models.extend(previous.models);
        models.sort_unstable();
        models.dedup();
    }
    let approval = ApprovalRecord {
        release: r.release,
        rollout: r.id,
        owner: r.owner.clone(),
        models,
        security_version: release.security_version,
        image_digest: release.image_digest,
        approved_height: ctx.height,
        approvers: r.approvals.clone(),
    };
    st.put(approval_key(&r.release, &r.owner), &approval);
    r.status = RolloutStatus::Ready;
    Ok(FirmwareEvent::RolloutReady {
        rollout: r.id,
        release: r.release,
        owner: r.owner.clone(),
    })
}

pub(super) fn reject(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &RejectRollout) -> Events {
    let mut r = open_vote(&st.view(), org, &p.rollout, "be rejected")?;
    r.rejection = Some((org.into(), p.reason.clone()));
    r.status = RolloutStatus::ApprovalDenied;
    r.updated_height = ctx.height;
    st.put(rollout_key(&r.id), &r);
    Ok(vec![FirmwareEvent::RolloutDenied {
        rollout: p.rollout,
        org: org.into(),
    }])
}

/// A rollout whose owner is `org`.
fn owned_rollout(s: &dyn StateRead, org: &str, id: &TxHash) -> Result<RolloutRecord, TxError> {
    let r = existing_rollout(s, id)?;
    if r.owner != org {
        return Err(FirmwareError::NotRolloutOwner {
            org: org.into(),
            rollout: *id,
            owner: r.owner,
        }
        .into());
    }
    Ok(r)
}

fn not_approved(r: &RolloutRecord) -> TxError {
    let missing: Vec<&str> = r
        .approvers
        .iter()
        .filter(|a| !r.approvals.contains(a))
        .map(String::as_str)
        .collect();
    FirmwareError::NotApproved {
        version: r.version.clone(),
        fleet: r.fleet.clone(),
        approvals: r.approvals.len() as u32,
        threshold: r.threshold,
        missing: missing.join(", "),
    }
    .into()
}

/// The owner's live devices of the rollout's models.
fn count_targets(s: &dyn StateRead, r: &RolloutRecord) -> Result<u32, TxError> {
    let mut n = 0u32;
    for id in devices_by_owner(s, &r.owner)? {
        if let Some(d) = get_device(s, &id)?
            && d.revoked.is_none()
            && r.models.contains(&d.model)
        {
            n += 1;
        }
    }
    Ok(n)
}

pub(super) fn control(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &ControlRollout) -> Events {
    use RolloutStatus::*;
    let view = st.view();
    let mut r = owned_rollout(&view, org, &p.rollout)?;
    let next = match (p.action, r.status) {
        (RolloutAction::Start, Ready) => {
            r.target_devices = count_targets(&view, &r)?;
            Running
        }
        (RolloutAction::Start, WaitingForApproval) => return Err(not_approved(&r)),
        (RolloutAction::Pause, Running) => Paused,
        (RolloutAction::Resume, Paused) => Running,
        (RolloutAction::Cancel, WaitingForApproval | Ready | Running | Paused) => Stopped,
        (action, _) => {
            let what = match action {
                RolloutAction::Start => "start",
                RolloutAction::Pause => "pause",
                RolloutAction::Resume => "resume",
                RolloutAction::Cancel => "be cancelled",
            };
            return Err(wrong_state(&r, what));
        }
    };
    r.status = next;
    r.updated_height = ctx.height;
    st.put(rollout_key(&r.id), &r);
    Ok(vec![FirmwareEvent::RolloutStatusChanged {
        rollout: r.id,
        status: next.name(),
    }])
}

/// The device must be a live device of the rollout's owner and of one of its models.
pub(super) fn check_device_in_rollout(
    s: &dyn StateRead,
    r: &RolloutRecord,
    device: &DeviceId,
) -> Result<crate::model::DeviceRecord, TxError> {
    let d = get_device(s, device)?.ok_or(TxError::UnknownDevice(*device))?;
    if d.revoked.is_some() {
        return Err(TxError::DeviceRevoked(*device));
    }
    let why = if d.owner != r.owner {
        format!("it belongs to '{}', the rollout to '{}'", d.owner, r.owner)
    } else if !r.models.contains(&d.model) {
        format!("its model {} is not among the rollout's models {:?}", d.model, r.models)
    } else {
        return Ok(d);
    };
    Err(FirmwareError::DeviceNotInRollout {
        device: *device,
        rollout: r.id,
        why,
    }
    .into())
}

pub(super) fn report_progress(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &ReportProgress) -> Events {
    let view = st.view();
    let mut r = owned_rollout(&view, org, &p.rollout)?;
    if !matches!(r.status, RolloutStatus::Running | RolloutStatus::Paused) {
        return Err(wrong_state(&r, "take progress reports"));
    }
    check_device_in_rollout(&view, &r, &p.device)?;
    if matches!(p.state, UpdateState::Downloading | UpdateState::Updating) && p.result != UpdateResult::Initial {
        return Err(TxError::Invalid(
            "LwM2M /5/0/5 must be 0 (Initial value) while /5/0/3 is Downloading or Updating",
        ));
    }
    let before = get_progress(&view, &p.rollout, &p.device)?;
    let now = DeviceProgress {
        state: p.state,
        result: p.result,
        height: ctx.height,
    };
    r.counts.record(before.as_ref(), &now);
    r.updated_height = ctx.height;
    let mut events = vec![FirmwareEvent::ProgressReported {
        rollout: r.id,
        device: p.device,
        state: p.state,
        result: p.result,
    }];
    events.extend(auto_transition(&mut r));
    st.put(progress_key(&p.rollout, &p.device), &now);
    st.put(rollout_key(&r.id), &r);
    Ok(events)
}

/// Pause a running rollout whose failure share is above its threshold; finish one whose
/// targeted devices all have a final result.
fn auto_transition(r: &mut RolloutRecord) -> Option<FirmwareEvent> {
    if r.status != RolloutStatus::Running {
        return None;
    }
    let (failed, finished) = (r.counts.failed, r.counts.finished());
    let over = u64::from(failed) * 100 > u64::from(r.abort_failure_pct) * u64::from(finished);
    if finished >= ABORT_MIN_SAMPLE_DEVICES && over {
        r.status = RolloutStatus::Paused;
        return Some(FirmwareEvent::RolloutAutoPaused {
            rollout: r.id,
            failed,
            finished,
        });
    }
    if r.target_devices > 0 && finished >= r.target_devices {
        r.status = RolloutStatus::Finished;
        return Some(FirmwareEvent::RolloutFinished { rollout: r.id });
    }
    None
}
