//! `AttestInstall`: device evidence of an installed release → the fleet version map, and the
//! device's attestation (with the Alias key of the installed layer; see `check_measured`).

use std::cmp::Ordering;

use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::*;
use chipledger_types::limits::MAX_DEVICE_UPDATE_HISTORY;
use chipledger_types::tx::TxHash;

use super::model::*;
use super::release::live_release;
use super::rollout::{check_device_in_rollout, existing_rollout};
use super::{FirmwareError, FirmwareEvent};
use crate::apply::{BlockContext, TxState};
use crate::device::verify_evidence;
use crate::error::TxError;
use crate::model::{Attestation, DeviceRecord, device_key};
use crate::store::StateRead;

/// Anti-rollback and applicability against what the device is proven to run now.
fn check_upgrade(device: &DeviceRecord, installed: &InstalledFirmware, release: &ReleaseRecord) -> Result<(), TxError> {
    if release.security_version < installed.security_version {
        return Err(FirmwareError::Rollback {
            device: device.id,
            version: release.version.clone(),
            installed: installed.security_version,
            offered: release.security_version,
        }
        .into());
    }
    let below = semver_cmp(&installed.version, &release.min_applicable)? == Ordering::Less;
    let above = semver_cmp(&installed.version, &release.max_applicable)? == Ordering::Greater;
    if below || above {
        return Err(FirmwareError::NotApplicable {
            device: device.id,
            version: release.version.clone(),
            installed: installed.version.clone(),
            min: release.min_applicable.clone(),
            max: release.max_applicable.clone(),
        }
        .into());
    }
    Ok(())
}

/// The release must be approved for the device's owner and model.
fn check_approved(s: &dyn StateRead, device: &DeviceRecord, release: &ReleaseRecord) -> Result<(), TxError> {
    let approved = get_approval(s, &release.id, &device.owner)?.is_some_and(|a| a.models.contains(&device.model));
    if !approved {
        return Err(FirmwareError::NotApprovedForDevice {
            version: release.version.clone(),
            owner: device.owner.clone(),
            model: device.model,
        }
        .into());
    }
    Ok(())
}

/// The evidence must prove the release: the EAT's measurement (what the firmware claims) and
/// the Alias certificate's SHA-256 FWID (what the DICE layer below measured when it derived the
/// Alias key) must both be the release's image digest. The second check binds the Alias key the
/// device record then holds to the installed release: evidence signed with an earlier layer's
/// Alias key, under that layer's certificate, cannot carry the attestation over an install.
fn check_measured(device: &DeviceId, attestation: &Attestation, release: &ReleaseRecord) -> Result<(), TxError> {
    let want = || hex::encode(release.image_digest);
    if attestation.measurement != release.image_digest {
        return Err(FirmwareError::MeasurementMismatch {
            device: *device,
            version: release.version.clone(),
            want: want(),
            got: hex::encode(&attestation.measurement),
        }
        .into());
    }
    if attestation.alias_fwid_sha256 != release.image_digest {
        return Err(FirmwareError::AliasNotForRelease {
            device: *device,
            version: release.version.clone(),
            want: want(),
            fwid: hex::encode(&attestation.alias_fwid_sha256),
        }
        .into());
    }
    Ok(())
}

pub(super) fn attest_install(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    p: &AttestInstall,
) -> Result<Vec<FirmwareEvent>, TxError> {
    let view = st.view();
    let mut rollout = existing_rollout(&view, &p.rollout)?;
    let (mut device, attestation) = verify_evidence(&view, ctx, &p.device, &p.alias_cert_der, &p.eat)?;
    check_device_in_rollout(&view, &rollout, &p.device)?;
    let release = live_release(&view, &rollout.release)?;
    check_approved(&view, &device, &release)?;
    check_measured(&p.device, &attestation, &release)?;
    let installed = get_installed(&view, &p.device)?;
    let refresh = installed.as_ref().is_some_and(|i| i.release == release.id);
    if let Some(current) = installed.as_ref().filter(|_| !refresh) {
        check_upgrade(&device, current, &release)?;
    }
    if !refresh {
        let mut history = update_history(&view, &p.device)?;
        if history.len() >= MAX_DEVICE_UPDATE_HISTORY {
            return Err(TxError::LimitReached {
                what: "firmware updates per device",
                max: MAX_DEVICE_UPDATE_HISTORY,
            });
        }
        history.push(UpdateEntry {
            height: ctx.height,
            release: release.id,
            version: release.version.clone(),
            security_version: release.security_version,
            rollout: p.rollout,
            tx: *hash,
        });
        rollout.attested += 1;
        st.put(update_history_key(&p.device), &UpdateHistory(history));
        st.put(rollout_key(&p.rollout), &rollout);
    }
    let entry = InstalledFirmware {
        release: release.id,
        version: release.version,
        security_version: release.security_version,
        height: ctx.height,
        tx: *hash,
    };
    st.put(installed_key(&p.device), &entry);
    device.attestation = Some(attestation);
    device.challenge_seed = hash.0;
    st.put(device_key(&p.device), &device);
    Ok(vec![FirmwareEvent::InstallAttested {
        device: p.device,
        release: entry.release,
        security_version: entry.security_version,
    }])
}
