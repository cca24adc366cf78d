//! Firmware provenance routes (issue 4), read side: releases, certification, vulnerabilities,
//! fleet policies, rollouts, and each device's firmware. Registered from [`crate::api`] with one
//! line; the records come from the finalized state, the fleet queries (devices per release,
//! exposure, per-device rollout progress) from the node-local [`crate::firmware_index`].
//!
//! Every answer names the finalized `height` it was computed at and the newest final checkpoint
//! height. The two questions a client must be able to check without trusting the node — *which
//! release does device D run* and *is D exposed to CVE-X* — are answered by
//! `GET /v1/firmware/devices/{id}` with the fleet-version-map record and the CVE record, each
//! with a sparse-Merkle proof against the state root that the newest final checkpoint (returned
//! too) cosigns; [`verify_device_firmware`] checks such an answer offline.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chipledger_state::firmware::model::{
    CertRecord, RolloutRecord, VulnRecord, cves_of_release, get_certification, get_fleet, get_release, get_rollout,
    get_vulnerability, releases_of_model, releases_of_publisher, rollouts_of_owner, update_history, vuln_key,
};
use chipledger_state::model::org_names;
use chipledger_state::store::StateRead;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{InstalledFirmware, ReleaseId, ReleaseRecord, installed_key};
use chipledger_types::note::{NoteLimits, VerifierKey};
use chipledger_types::tx::TxHash;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody};
use crate::checkpoints::state_extension;
use crate::executor::Executor;
use crate::revocations::{ProvenValue, check_proven, prove};

type ApiResult<T> = Result<T, ApiError>;

/// Most devices one exposure or devices-of-release answer lists (the count is always exact).
pub const MAX_LISTED_DEVICES: usize = 100_000;

// ---- bodies ------------------------------------------------------------------------------------

/// Where an answer was computed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AtHeight {
    /// The finalized height the answer was computed at.
    pub height: u64,
    /// Height of the newest final (quorum-cosigned) checkpoint, if any.
    pub checkpoint_height: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WithdrawalBody {
    pub height: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseBody {
    /// Hex release id (SHA-256 of the SUIT manifest).
    pub id: String,
    pub publisher: String,
    pub version: String,
    /// The SUIT manifest sequence number (anti-rollback).
    pub security_version: u64,
    pub models: Vec<u32>,
    pub min_applicable: String,
    pub max_applicable: String,
    /// CVE ids the release fixes.
    pub fixes: Vec<String>,
    /// COSE algorithm id of the image digest (-16 = SHA-256).
    pub image_digest_alg: i64,
    pub image_digest: String,
    pub image_size: u64,
    /// Hex id of the firmware key that signed the envelope.
    pub signing_key: String,
    pub published_height: u64,
    pub published_tx: String,
    pub withdrawn: Option<WithdrawalBody>,
}

impl From<ReleaseRecord> for ReleaseBody {
    fn from(r: ReleaseRecord) -> Self {
        ReleaseBody {
            id: r.id.to_string(),
            publisher: r.publisher,
            version: r.version,
            security_version: r.security_version,
            models: r.models,
            min_applicable: r.min_applicable,
            max_applicable: r.max_applicable,
            fixes: r.fixes,
            image_digest_alg: r.image_digest_alg,
            image_digest: hex::encode(r.image_digest),
            image_size: r.image_size,
            signing_key: r.signing_key.to_string(),
            published_height: r.published_height,
            published_tx: r.published_tx.to_string(),
            withdrawn: r.withdrawn.map(|w| WithdrawalBody {
                height: w.height,
                reason: w.reason,
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertEntryBody {
    pub auditor: String,
    /// `certified`, `provisional` or `revoked`.
    pub status: String,
    pub note: String,
    pub height: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CertificationBody {
    /// The latest verdict of any auditor.
    pub status: String,
    /// Every verdict, oldest first.
    pub history: Vec<CertEntryBody>,
}

impl From<CertRecord> for CertificationBody {
    fn from(c: CertRecord) -> Self {
        CertificationBody {
            status: c.status.name().into(),
            history: c
                .history
                .into_iter()
                .map(|e| CertEntryBody {
                    auditor: e.auditor,
                    status: e.status.name().into(),
                    note: e.note,
                    height: e.height,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub at: AtHeight,
    pub release: ReleaseBody,
    /// Absent: never certified.
    pub certification: Option<CertificationBody>,
    /// CVE ids reported against this release.
    pub vulnerabilities: Vec<String>,
    /// Devices whose attested install is this release (node-local index).
    pub devices: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseList {
    #[serde(flatten)]
    pub at: AtHeight,
    pub releases: Vec<ReleaseBody>,
    /// Hex release id → devices whose attested install it is (node-local index; listed
    /// releases only, zeros included).
    pub devices_per_release: std::collections::BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VulnReportBody {
    pub org: String,
    pub height: u64,
    pub note: String,
    /// Hex release ids this report added.
    pub affected: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VulnerabilityBody {
    #[serde(flatten)]
    pub at: AtHeight,
    pub cve: String,
    /// Hex ids of every affected release (union of all reports, sorted).
    pub affected: Vec<String>,
    pub reports: Vec<VulnReportBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FleetPolicyBody {
    #[serde(flatten)]
    pub at: AtHeight,
    pub owner: String,
    pub name: String,
    pub approvers: Vec<String>,
    pub threshold: u32,
    pub require_certified: bool,
    pub updated_height: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RejectionBody {
    pub org: String,
    pub reason: String,
}

/// A rollout's devices by their latest LwM2M report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CountsBody {
    pub idle: u32,
    pub downloading: u32,
    pub downloaded: u32,
    pub updating: u32,
    pub succeeded: u32,
    pub failed: u32,
}

/// One device's latest progress in a rollout (LwM2M object 5 names).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceProgressBody {
    pub device: String,
    /// `/5/0/3` State: `Idle`, `Downloading`, `Downloaded`, `Updating`.
    pub state: String,
    /// `/5/0/5` Update Result code (0..=9).
    pub result: u8,
    /// The result's LwM2M description.
    pub result_text: String,
    pub height: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutBody {
    /// Hex rollout id (hash of its `CreateRollout` transaction).
    pub id: String,
    pub owner: String,
    pub fleet: String,
    pub release: String,
    pub version: String,
    pub models: Vec<u32>,
    pub rate_devices_per_min: u32,
    pub wave_size: u32,
    pub abort_failure_pct: u8,
    pub approvers: Vec<String>,
    pub threshold: u32,
    pub require_certified: bool,
    /// hawkBit state: `waiting_for_approval`, `approval_denied`, `ready`, `running`, `paused`,
    /// `stopped`, `finished`.
    pub status: String,
    /// Organisations that approved (sorted).
    pub approvals: Vec<String>,
    pub rejection: Option<RejectionBody>,
    pub created_height: u64,
    pub updated_height: u64,
    /// Devices targeted when it started.
    pub target_devices: u32,
    pub counts: CountsBody,
    /// Devices that proved the install (`AttestInstall`).
    pub attested: u32,
}

impl From<RolloutRecord> for RolloutBody {
    fn from(r: RolloutRecord) -> Self {
        let c = r.counts;
        RolloutBody {
            id: r.id.to_string(),
            owner: r.owner,
            fleet: r.fleet,
            release: r.release.to_string(),
            version: r.version,
            models: r.models,
            rate_devices_per_min: r.rate_devices_per_min,
            wave_size: r.wave_size,
            abort_failure_pct: r.abort_failure_pct,
            approvers: r.approvers,
            threshold: r.threshold,
            require_certified: r.require_certified,
            status: r.status.name().into(),
            approvals: r.approvals,
            rejection: r.rejection.map(|(org, reason)| RejectionBody { org, reason }),
            created_height: r.created_height,
            updated_height: r.updated_height,
            target_devices: r.target_devices,
            counts: CountsBody {
                idle: c.idle,
                downloading: c.downloading,
                downloaded: c.downloaded,
                updating: c.updating,
                succeeded: c.succeeded,
                failed: c.failed,
            },
            attested: r.attested,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutDetail {
    #[serde(flatten)]
    pub at: AtHeight,
    pub rollout: RolloutBody,
    /// Every device's latest report, in device-id order (node-local index).
    pub devices: Vec<DeviceProgressBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RolloutList {
    #[serde(flatten)]
    pub at: AtHeight,
    pub rollouts: Vec<RolloutBody>,
}

/// A device's entry in the fleet version map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InstalledBody {
    pub release: String,
    pub version: String,
    pub security_version: u64,
    /// Height of the block that accepted the install evidence.
    pub height: u64,
    /// The `AttestInstall` transaction.
    pub tx: String,
}

impl From<&InstalledFirmware> for InstalledBody {
    fn from(i: &InstalledFirmware) -> Self {
        InstalledBody {
            release: i.release.to_string(),
            version: i.version.clone(),
            security_version: i.security_version,
            height: i.height,
            tx: i.tx.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpdateEntryBody {
    pub height: u64,
    pub release: String,
    pub version: String,
    pub security_version: u64,
    pub rollout: String,
    pub tx: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExposureClaim {
    pub cve: String,
    /// The node's claim: the installed release is among the CVE's affected releases.
    pub exposed: bool,
    /// The CVE record (`fw/vuln/<CVE>`, or its absence) with its proof.
    pub proof: ProvenValue,
}

/// A device's firmware, provable: the records and proofs are against `state_root`, which the
/// quorum-signed `checkpoint` binds in its `chipledger-state` line.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceFirmwareBody {
    pub device: String,
    /// The final checkpoint (C2SP signed note) the proofs are against.
    pub checkpoint: String,
    pub state_height: u64,
    pub state_root: String,
    /// The node's reading of the proven record; absent: no attested install.
    pub installed: Option<InstalledBody>,
    /// `fw/installed/<device>` (or its absence) with its proof.
    pub installed_proof: ProvenValue,
    /// Attested installs, oldest first (not proven).
    pub history: Vec<UpdateEntryBody>,
    /// Present when the request named `cve`.
    pub exposure: Option<ExposureClaim>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FleetDeviceBody {
    pub device: String,
    pub release: String,
    pub version: String,
    pub security_version: u64,
    /// Height of the install evidence.
    pub height: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExposureBody {
    #[serde(flatten)]
    pub at: AtHeight,
    pub cve: String,
    /// Hex ids of the CVE's affected releases.
    pub affected: Vec<String>,
    /// Exactly the devices whose attested release is affected (count is exact).
    pub count: usize,
    pub devices: Vec<FleetDeviceBody>,
    /// Registered devices with no attested install: their exposure is unknown.
    pub unknown_firmware: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseDevicesBody {
    #[serde(flatten)]
    pub at: AtHeight,
    pub release: String,
    pub count: usize,
    pub devices: Vec<FleetDeviceBody>,
}

// ---- queries -------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleasesQuery {
    /// Publishing organisation.
    pub publisher: Option<String>,
    /// Hardware model.
    pub model: Option<u32>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolloutsQuery {
    /// Fleet owner.
    pub owner: Option<String>,
    /// Hex release id.
    pub release: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CveQuery {
    /// CVE id, e.g. `CVE-2024-0001`.
    pub cve: Option<String>,
}

// ---- helpers -----------------------------------------------------------------------------------

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

fn parse32(s: &str, what: &str) -> ApiResult<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad(format!("{what} must be 64 hex digits")))
}

fn parse_release(s: &str) -> ApiResult<ReleaseId> {
    parse32(s, "a release id").map(ReleaseId)
}

fn parse_rollout(s: &str) -> ApiResult<TxHash> {
    parse32(s, "a rollout id").map(TxHash)
}

fn parse_device(s: &str) -> ApiResult<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| ApiError::bad("a device id is 40 hex characters"))
}

fn check_cve(cve: &str) -> ApiResult<()> {
    chipledger_types::firmware_tx::check_cve(cve).map_err(|e| ApiError::bad(format!("'{cve}': {e}")))
}

fn at(exec: &Executor, height: u64) -> AtHeight {
    AtHeight {
        height,
        checkpoint_height: exec.lock().votes.latest_final.as_ref().map(|(h, _)| *h),
    }
}

fn release_of(s: &dyn StateRead, id: &ReleaseId) -> ApiResult<ReleaseRecord> {
    get_release(s, id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no release {id}")))
}

fn fleet_device(device: &DeviceId, i: &InstalledFirmware) -> FleetDeviceBody {
    FleetDeviceBody {
        device: device.to_string(),
        release: i.release.to_string(),
        version: i.version.clone(),
        security_version: i.security_version,
        height: i.height,
    }
}

// ---- routes ------------------------------------------------------------------------------------

/// Releases by publisher and/or model (every release when neither is given), oldest first.
#[utoipa::path(get, path = "/v1/firmware/releases", params(ReleasesQuery),
    responses((status = 200, description = "The matching releases, with the height they were read at", body = ReleaseList)))]
async fn releases(State(c): State<Ctx>, Query(q): Query<ReleasesQuery>) -> ApiResult<Json<ReleaseList>> {
    let (height, list) = {
        let inner = c.exec.lock();
        let s = inner.db.state().map_err(internal)?;
        let ids = match (&q.publisher, q.model) {
            (Some(p), _) => releases_of_publisher(&s, p).map_err(internal)?,
            (None, Some(m)) => releases_of_model(&s, m).map_err(internal)?,
            (None, None) => {
                let mut all = Vec::new();
                for org in org_names(&s).map_err(internal)? {
                    all.extend(releases_of_publisher(&s, &org).map_err(internal)?);
                }
                all
            }
        };
        let mut list = Vec::new();
        for id in ids {
            let r = release_of(&s, &id)?;
            if q.model.is_none_or(|m| r.models.contains(&m)) {
                list.push(ReleaseBody::from(r));
            }
        }
        (inner.tip.height, list)
    };
    let counts = {
        let fleet = c.exec.fleet();
        let fw = fleet.firmware();
        list.iter()
            .map(|r| {
                let n = parse_release(&r.id).map_or(0, |id| fw.devices_of_release(&id).count());
                (r.id.clone(), n)
            })
            .collect()
    };
    Ok(Json(ReleaseList {
        at: at(&c.exec, height),
        releases: list,
        devices_per_release: counts,
    }))
}

/// One release: its record, certification, withdrawal, the CVEs it fixes and those reported
/// against it, and how many devices run it.
#[utoipa::path(get, path = "/v1/firmware/releases/{id}", params(("id" = String, Path, description = "Hex release id", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The release", body = ReleaseDetail),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such release", body = ErrorBody)))]
async fn release(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<ReleaseDetail>> {
    let id = parse_release(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let record = release_of(&s, &id)?;
    let detail = ReleaseDetail {
        at: AtHeight {
            height: inner.tip.height,
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        release: record.into(),
        certification: get_certification(&s, &id).map_err(internal)?.map(Into::into),
        vulnerabilities: cves_of_release(&s, &id).map_err(internal)?,
        devices: c.exec.fleet().firmware().devices_of_release(&id).count(),
    };
    Ok(Json(detail))
}

/// The devices whose attested install is release `id` (node-local fleet index).
#[utoipa::path(get, path = "/v1/firmware/releases/{id}/devices", params(("id" = String, Path, description = "Hex release id", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The devices running the release", body = ReleaseDevicesBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such release", body = ErrorBody)))]
async fn release_devices(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<ReleaseDevicesBody>> {
    let id = parse_release(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    release_of(&s, &id)?;
    let fleet = c.exec.fleet();
    let fw = fleet.firmware();
    let devices: Vec<FleetDeviceBody> = fw
        .devices_of_release(&id)
        .take(MAX_LISTED_DEVICES)
        .filter_map(|d| fw.installed(d).map(|i| fleet_device(d, i)))
        .collect();
    Ok(Json(ReleaseDevicesBody {
        at: AtHeight {
            height: fleet.height(),
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        release: id.to_string(),
        count: fw.devices_of_release(&id).count(),
        devices,
    }))
}

fn vuln_body(v: VulnRecord, at: AtHeight) -> VulnerabilityBody {
    VulnerabilityBody {
        at,
        cve: v.cve,
        affected: v.affected.iter().map(|r| r.to_string()).collect(),
        reports: v
            .reports
            .into_iter()
            .map(|r| VulnReportBody {
                org: r.org,
                height: r.height,
                note: r.note,
                affected: r.affected.iter().map(|a| a.to_string()).collect(),
            })
            .collect(),
    }
}

/// A CVE: the releases it affects and who reported them.
#[utoipa::path(get, path = "/v1/firmware/vulnerabilities/{cve}", params(("cve" = String, Path, description = "CVE id", pattern = "^CVE-[0-9]{4}-[0-9]{4,23}$")),
    responses((status = 200, description = "The CVE record", body = VulnerabilityBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No report of this CVE", body = ErrorBody)))]
async fn vulnerability(State(c): State<Ctx>, Path(cve): Path<String>) -> ApiResult<Json<VulnerabilityBody>> {
    check_cve(&cve)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let v = get_vulnerability(&s, &cve)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no report of {cve}")))?;
    let at = AtHeight {
        height: inner.tip.height,
        checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
    };
    Ok(Json(vuln_body(v, at)))
}

/// A fleet's rollout policy: approvers, threshold, certification requirement.
#[utoipa::path(get, path = "/v1/firmware/fleets/{owner}/{name}",
    params(("owner" = String, Path, description = "Owning organisation", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"), ("name" = String, Path, description = "Fleet name", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")),
    responses((status = 200, description = "The fleet policy", body = FleetPolicyBody),
        (status = 404, description = "No such fleet", body = ErrorBody)))]
async fn fleet_policy(
    State(c): State<Ctx>,
    Path((owner, name)): Path<(String, String)>,
) -> ApiResult<Json<FleetPolicyBody>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let f = get_fleet(&s, &owner, &name)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("'{owner}' has no fleet '{name}'")))?;
    Ok(Json(FleetPolicyBody {
        at: AtHeight {
            height: inner.tip.height,
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        owner: f.owner,
        name: f.name,
        approvers: f.approvers,
        threshold: f.threshold,
        require_certified: f.require_certified,
        updated_height: f.updated_height,
    }))
}

/// One rollout: hawkBit state, approvals, counters, and every device's latest LwM2M report.
#[utoipa::path(get, path = "/v1/firmware/rollouts/{id}", params(("id" = String, Path, description = "Hex rollout id", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The rollout", body = RolloutDetail),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such rollout", body = ErrorBody)))]
async fn rollout(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<RolloutDetail>> {
    let id = parse_rollout(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let r = get_rollout(&s, &id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no rollout {id}")))?;
    let devices = c
        .exec
        .fleet()
        .firmware()
        .rollout_progress(&id)
        .into_iter()
        .map(|(d, p)| DeviceProgressBody {
            device: d.to_string(),
            state: p.state.name().into(),
            result: p.result as u8,
            result_text: p.result.name().into(),
            height: p.height,
        })
        .collect();
    Ok(Json(RolloutDetail {
        at: AtHeight {
            height: inner.tip.height,
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        rollout: r.into(),
        devices,
    }))
}

/// Rollouts by owner and/or release (every rollout when neither is given), oldest first per owner.
#[utoipa::path(get, path = "/v1/firmware/rollouts", params(RolloutsQuery),
    responses((status = 200, description = "The matching rollouts", body = RolloutList),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn rollouts(State(c): State<Ctx>, Query(q): Query<RolloutsQuery>) -> ApiResult<Json<RolloutList>> {
    let release = q.release.as_deref().map(parse_release).transpose()?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let owners = match &q.owner {
        Some(o) => vec![o.clone()],
        None => org_names(&s).map_err(internal)?,
    };
    let mut list = Vec::new();
    for owner in owners {
        for id in rollouts_of_owner(&s, &owner).map_err(internal)? {
            let Some(r) = get_rollout(&s, &id).map_err(internal)? else {
                continue;
            };
            if release.is_none_or(|rel| r.release == rel) {
                list.push(r.into());
            }
        }
    }
    Ok(Json(RolloutList {
        at: AtHeight {
            height: inner.tip.height,
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        rollouts: list,
    }))
}

/// Which release device `id` runs (fleet version map) and, with `cve`, whether it is exposed —
/// both with sparse-Merkle proofs against the state root of the newest final checkpoint
/// (included), so a client verifies the answer with the validators' keys alone. 503 while a
/// newer block's checkpoint is still collecting signatures (retry shortly).
#[utoipa::path(get, path = "/v1/firmware/devices/{id}", params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$"), CveQuery),
    responses((status = 200, description = "The device's firmware with proofs", body = DeviceFirmwareBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 503, description = "No final checkpoint matches the current state yet; retry", body = ErrorBody)))]
async fn device_firmware(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<CveQuery>,
) -> ApiResult<Json<DeviceFirmwareBody>> {
    let device = parse_device(&id)?;
    if let Some(cve) = &q.cve {
        check_cve(cve)?;
    }
    let retry = |why: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "retry", why);
    let inner = c.exec.lock();
    let (_, note) = inner
        .votes
        .latest_final
        .clone()
        .ok_or_else(|| retry("no final checkpoint yet"))?;
    let text = chipledger_types::note::Note::parse(note.as_bytes(), &Default::default())
        .map_err(internal)?
        .text;
    let cp = chipledger_types::checkpoint::Checkpoint::parse(&text).map_err(internal)?;
    let (state_height, root) = state_extension(&cp).ok_or_else(|| internal("checkpoint without state line"))?;
    if root != inner.tip.header.state_root {
        return Err(retry("the newest block's checkpoint is not final yet"));
    }
    let s = inner.db.state().map_err(internal)?;
    let tree = &inner.tip.smt;
    let installed_proof = prove(&s, tree, &installed_key(&device));
    let installed = decode_installed(&installed_proof).map_err(internal)?;
    let exposure = match &q.cve {
        None => None,
        Some(cve) => {
            let proof = prove(&s, tree, &vuln_key(cve));
            let vuln = decode_vuln(&proof).map_err(internal)?;
            Some(ExposureClaim {
                cve: cve.clone(),
                exposed: is_exposed(installed.as_ref(), vuln.as_ref()),
                proof,
            })
        }
    };
    let history = update_history(&s, &device)
        .map_err(internal)?
        .into_iter()
        .map(|e| UpdateEntryBody {
            height: e.height,
            release: e.release.to_string(),
            version: e.version,
            security_version: e.security_version,
            rollout: e.rollout.to_string(),
            tx: e.tx.to_string(),
        })
        .collect();
    Ok(Json(DeviceFirmwareBody {
        device: device.to_string(),
        checkpoint: note,
        state_height,
        state_root: hex::encode(root),
        installed: installed.as_ref().map(Into::into),
        installed_proof,
        history,
        exposure,
    }))
}

/// Exactly the devices whose attested release is among CVE `cve`'s affected releases, plus the
/// number of devices whose firmware is unknown (no attested install), from the fleet index.
#[utoipa::path(get, path = "/v1/firmware/exposure", params(CveQuery),
    responses((status = 200, description = "The exposed devices at a finalized height", body = ExposureBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No report of this CVE", body = ErrorBody)))]
async fn exposure(State(c): State<Ctx>, Query(q): Query<CveQuery>) -> ApiResult<Json<ExposureBody>> {
    let cve = q.cve.ok_or_else(|| ApiError::bad("name the CVE: ?cve=CVE-YYYY-NNNN"))?;
    check_cve(&cve)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let vuln = get_vulnerability(&s, &cve)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no report of {cve}")))?;
    let fleet = c.exec.fleet();
    let body = exposure_answer(&cve, &vuln, fleet.firmware(), fleet.len());
    Ok(Json(ExposureBody {
        at: AtHeight {
            height: fleet.height(),
            checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        },
        ..body
    }))
}

/// The exposure answer for `vuln` over `index`, with `registered` devices in the fleet (the
/// benchmark calls this too). `at` is left at zero for the caller to fill.
pub fn exposure_answer(
    cve: &str,
    vuln: &VulnRecord,
    index: &crate::firmware_index::FirmwareIndex,
    registered: usize,
) -> ExposureBody {
    let exposed = index.exposed(&vuln.affected);
    ExposureBody {
        at: AtHeight {
            height: 0,
            checkpoint_height: None,
        },
        cve: cve.into(),
        affected: vuln.affected.iter().map(|r| r.to_string()).collect(),
        count: exposed.len(),
        devices: exposed
            .iter()
            .take(MAX_LISTED_DEVICES)
            .map(|e| fleet_device(&e.device, &e.installed))
            .collect(),
        unknown_firmware: registered.saturating_sub(index.installed_count()),
    }
}

/// The firmware routes (merged into [`crate::api`]'s single route list).
pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(releases))
        .routes(routes!(release))
        .routes(routes!(release_devices))
        .routes(routes!(vulnerability))
        .routes(routes!(fleet_policy))
        .routes(routes!(rollouts))
        .routes(routes!(rollout))
        .routes(routes!(device_firmware))
        .routes(routes!(exposure))
}

// ---- client-side verification --------------------------------------------------------------------

fn decode_installed(p: &ProvenValue) -> Result<Option<InstalledFirmware>, String> {
    p.value
        .as_deref()
        .map(|v| {
            let bytes = hex::decode(v).map_err(|_| "value is not hex".to_string())?;
            InstalledFirmware::from_cbor(&bytes, Limits::STATE).map_err(|e| e.to_string())
        })
        .transpose()
}

fn decode_vuln(p: &ProvenValue) -> Result<Option<VulnRecord>, String> {
    p.value
        .as_deref()
        .map(|v| {
            let bytes = hex::decode(v).map_err(|_| "value is not hex".to_string())?;
            VulnRecord::from_cbor(&bytes, Limits::STATE).map_err(|e| e.to_string())
        })
        .transpose()
}

fn is_exposed(installed: Option<&InstalledFirmware>, vuln: Option<&VulnRecord>) -> bool {
    match (installed, vuln) {
        (Some(i), Some(v)) => v.affected.contains(&i.release),
        _ => false,
    }
}

/// What a verified device-firmware answer proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedDeviceFirmware {
    pub state_height: u64,
    pub signers: usize,
    /// The proven fleet-version-map entry (`None`: proven absent).
    pub installed: Option<InstalledFirmware>,
    /// `(cve, exposed)` when the answer carried an exposure claim.
    pub exposure: Option<(String, bool)>,
}

/// Verify a [`DeviceFirmwareBody`] offline: the checkpoint carries ≥ `quorum` valid signatures
/// of `known` validator keys for `origin`, its state line is the answer's root, the installed
/// record (and CVE record) are proven against it, and the node's readings match the proven
/// values.
pub fn verify_device_firmware(
    body: &DeviceFirmwareBody,
    device: &DeviceId,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> Result<VerifiedDeviceFirmware, String> {
    let cp = open_checkpoint(body.checkpoint.as_bytes(), origin, known, &NoteLimits::default())
        .map_err(|e| e.to_string())?;
    let signers = cp.note.verified.len();
    if signers < quorum {
        return Err(format!(
            "checkpoint has {signers} valid validator signatures; {quorum} needed"
        ));
    }
    let (state_height, root) = state_extension(&cp.checkpoint).ok_or("checkpoint has no chipledger-state line")?;
    if hex::encode(root) != body.state_root || state_height != body.state_height {
        return Err("the answer's state root is not the one the checkpoint cosigns".into());
    }
    check_proven(&root, &installed_key(device), &body.installed_proof)?;
    let installed = decode_installed(&body.installed_proof)?;
    if body.installed != installed.as_ref().map(InstalledBody::from) {
        return Err("the node's installed release differs from the proven record".into());
    }
    let exposure = match &body.exposure {
        None => None,
        Some(claim) => {
            check_cve(&claim.cve).map_err(|e| e.1.message)?;
            check_proven(&root, &vuln_key(&claim.cve), &claim.proof)?;
            let exposed = is_exposed(installed.as_ref(), decode_vuln(&claim.proof)?.as_ref());
            if exposed != claim.exposed {
                return Err(format!(
                    "the node claims exposed={} but the proofs say {exposed}",
                    claim.exposed
                ));
            }
            Some((claim.cve.clone(), exposed))
        }
    };
    Ok(VerifiedDeviceFirmware {
        state_height,
        signers,
        installed,
        exposure,
    })
}

#[cfg(test)]
mod tests {
    /// Every firmware route is in the one OpenAPI document, every response has a description,
    /// and every `$ref` resolves.
    #[test]
    fn firmware_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&[
            "/v1/firmware/releases",
            "/v1/firmware/releases/{id}",
            "/v1/firmware/releases/{id}/devices",
            "/v1/firmware/vulnerabilities/{cve}",
            "/v1/firmware/fleets/{owner}/{name}",
            "/v1/firmware/rollouts",
            "/v1/firmware/rollouts/{id}",
            "/v1/firmware/devices/{id}",
            "/v1/firmware/exposure",
        ]);
    }
}
