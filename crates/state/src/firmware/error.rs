//! Why a firmware transaction was rejected (wrapped in [`crate::TxError::Firmware`]).

use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{FirmwareKeyId, ReleaseId};
use chipledger_types::tx::TxHash;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirmwareError {
    #[error("organisation '{org}' does not hold the {role} role")]
    MissingRole { org: String, role: &'static str },
    #[error("invalid firmware key: {0}")]
    BadFirmwareKey(&'static str),
    #[error("firmware key {0} is already registered")]
    FirmwareKeyExists(FirmwareKeyId),
    #[error("'{org}' has no firmware key {key}")]
    UnknownFirmwareKey { org: String, key: FirmwareKeyId },
    #[error("firmware key {0} is already revoked")]
    FirmwareKeyRevoked(FirmwareKeyId),
    #[error("'{0}' has no active firmware key: register one with RegisterFirmwareKey first")]
    NoFirmwareKey(String),
    #[error("the SUIT envelope does not verify under any active firmware key of '{org}': {why}")]
    BadEnvelope { org: String, why: String },
    #[error("the SUIT manifest is not a valid release: {0}")]
    BadManifest(String),
    #[error("the manifest's class ids do not match the listed models: {0}")]
    ClassIdMismatch(String),
    #[error("the manifest's vendor id is not the one of publisher '{0}' (suit::vendor_id_for_org)")]
    VendorIdMismatch(String),
    #[error("release {0} is already published")]
    ReleaseExists(ReleaseId),
    #[error("'{publisher}' already published version {version} for model {model}")]
    VersionExists {
        publisher: String,
        version: String,
        model: u32,
    },
    #[error("image {digest} is already published as release {release}")]
    ImageExists { digest: String, release: ReleaseId },
    #[error("no release {0}")]
    UnknownRelease(ReleaseId),
    #[error("firmware {version} (release {release}) was withdrawn")]
    ReleaseWithdrawn { release: ReleaseId, version: String },
    #[error("release {release} belongs to '{publisher}'; '{org}' cannot withdraw it")]
    NotReleasePublisher {
        org: String,
        release: ReleaseId,
        publisher: String,
    },
    #[error("no fleet policy '{fleet}' of '{owner}': set one with SetFleetPolicy first")]
    UnknownFleet { owner: String, fleet: String },
    #[error("approver '{0}' is not an active organisation")]
    UnknownApprover(String),
    #[error("model {model} is not one of the models of firmware {version}")]
    ModelNotInRelease { model: u32, version: String },
    #[error("no rollout {0}")]
    UnknownRollout(TxHash),
    #[error("'{org}' is not an approver of fleet '{fleet}' (approvers: {approvers})")]
    NotRolloutApprover {
        org: String,
        fleet: String,
        approvers: String,
    },
    #[error("'{org}' already decided on rollout {rollout}")]
    DuplicateRolloutVote { org: String, rollout: TxHash },
    #[error("rollout {rollout} is {status}; it cannot {action}")]
    RolloutState {
        rollout: TxHash,
        status: &'static str,
        action: &'static str,
    },
    #[error(
        "firmware {version} is not approved for fleet '{fleet}': {approvals} of {threshold} approvals (missing: {missing})"
    )]
    NotApproved {
        version: String,
        fleet: String,
        approvals: u32,
        threshold: u32,
        missing: String,
    },
    #[error("fleet '{fleet}' requires certified firmware; {version} is {status}")]
    NotCertified {
        fleet: String,
        version: String,
        status: &'static str,
    },
    #[error("rollout {rollout} belongs to '{owner}'; '{org}' cannot control it")]
    NotRolloutOwner {
        org: String,
        rollout: TxHash,
        owner: String,
    },
    #[error("device {device} is not part of rollout {rollout}: {why}")]
    DeviceNotInRollout {
        device: DeviceId,
        rollout: TxHash,
        why: String,
    },
    #[error("firmware {version} is not approved for '{owner}' model {model}")]
    NotApprovedForDevice { version: String, owner: String, model: u32 },
    #[error("device {device} measures {got}, but firmware {version} has image digest {want}")]
    MeasurementMismatch {
        device: DeviceId,
        version: String,
        want: String,
        got: String,
    },
    #[error(
        "device {device}'s Alias certificate names firmware SHA-256 '{fwid}', not firmware {version} ({want}): install evidence must be signed by the Alias key of the booted release"
    )]
    AliasNotForRelease {
        device: DeviceId,
        version: String,
        want: String,
        fwid: String,
    },
    #[error("rollback refused: device {device} runs security version {installed}, firmware {version} has {offered}")]
    Rollback {
        device: DeviceId,
        version: String,
        installed: u64,
        offered: u64,
    },
    #[error("firmware {version} applies over {min}..={max}; device {device} runs {installed}")]
    NotApplicable {
        device: DeviceId,
        version: String,
        installed: String,
        min: String,
        max: String,
    },
}

impl FirmwareError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            FirmwareError::MissingRole { .. } => "missing_role",
            FirmwareError::BadFirmwareKey(_) => "bad_firmware_key",
            FirmwareError::FirmwareKeyExists(_) => "firmware_key_exists",
            FirmwareError::UnknownFirmwareKey { .. } => "unknown_firmware_key",
            FirmwareError::FirmwareKeyRevoked(_) => "firmware_key_revoked",
            FirmwareError::NoFirmwareKey(_) => "no_firmware_key",
            FirmwareError::BadEnvelope { .. } => "bad_envelope",
            FirmwareError::BadManifest(_) => "bad_manifest",
            FirmwareError::ClassIdMismatch(_) => "class_id_mismatch",
            FirmwareError::VendorIdMismatch(_) => "vendor_id_mismatch",
            FirmwareError::ReleaseExists(_) => "release_exists",
            FirmwareError::VersionExists { .. } => "version_exists",
            FirmwareError::ImageExists { .. } => "image_exists",
            FirmwareError::UnknownRelease(_) => "unknown_release",
            FirmwareError::ReleaseWithdrawn { .. } => "release_withdrawn",
            FirmwareError::NotReleasePublisher { .. } => "not_release_publisher",
            FirmwareError::UnknownFleet { .. } => "unknown_fleet",
            FirmwareError::UnknownApprover(_) => "unknown_approver",
            FirmwareError::ModelNotInRelease { .. } => "model_not_in_release",
            FirmwareError::UnknownRollout(_) => "unknown_rollout",
            FirmwareError::NotRolloutApprover { .. } => "not_rollout_approver",
            FirmwareError::DuplicateRolloutVote { .. } => "duplicate_rollout_vote",
            FirmwareError::RolloutState { .. } => "rollout_state",
            FirmwareError::NotApproved { .. } => "not_approved",
            FirmwareError::NotCertified { .. } => "not_certified",
            FirmwareError::NotRolloutOwner { .. } => "not_rollout_owner",
            FirmwareError::DeviceNotInRollout { .. } => "device_not_in_rollout",
            FirmwareError::NotApprovedForDevice { .. } => "not_approved_for_device",
            FirmwareError::MeasurementMismatch { .. } => "measurement_mismatch",
            FirmwareError::AliasNotForRelease { .. } => "alias_not_for_release",
            FirmwareError::Rollback { .. } => "rollback",
            FirmwareError::NotApplicable { .. } => "not_applicable",
        }
    }
}
