//! Firmware records kept only by the ledger (the ones a device proves — release, approval,
//! installed version — live in `chipledger_types::firmware_tx`).
//!
//! Keys: `fw/keys/<org>` → [`FirmwareKeys`]; `fw/envelope/<release>` → the SUIT envelope
//! (a CBOR bstr); `fw/version/<publisher>/<model>/<version>` → the release id;
//! `fw/index/publisher/<org>` and `fw/index/model/<model>` → release ids, oldest first;
//! `fw/cert/<release>` → [`CertRecord`]; `fw/vuln/<CVE>` → [`VulnRecord`];
//! `fw/release-cves/<release>` → CVE ids reported against it; `fw/fleet/<owner>/<name>` →
//! [`FleetPolicy`]; `fw/rollout/<id>` → [`RolloutRecord`]; `fw/index/rollouts/<owner>` → rollout
//! ids; `fw/progress/<rollout>/<device>` → [`DeviceProgress`]; `fw/history/<device>` →
//! [`UpdateEntry`] list. Hex everywhere an id is binary.

use chipledger_types::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list, encode_list};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::*;
use chipledger_types::limits::*;
use chipledger_types::tx::{TxHash, check_name};

use crate::error::TxError;
use crate::model::{IdList, read};
use crate::store::StateRead;

pub fn firmware_keys_key(org: &str) -> Vec<u8> {
    format!("fw/keys/{org}").into_bytes()
}
pub fn envelope_key(id: &ReleaseId) -> Vec<u8> {
    format!("fw/envelope/{id}").into_bytes()
}
pub fn version_key(publisher: &str, model: u32, version: &str) -> Vec<u8> {
    format!("fw/version/{publisher}/{model}/{version}").into_bytes()
}
pub fn publisher_releases_key(org: &str) -> Vec<u8> {
    format!("fw/index/publisher/{org}").into_bytes()
}
pub fn model_releases_key(model: u32) -> Vec<u8> {
    format!("fw/index/model/{model}").into_bytes()
}
pub fn cert_key(id: &ReleaseId) -> Vec<u8> {
    format!("fw/cert/{id}").into_bytes()
}
pub fn vuln_key(cve: &str) -> Vec<u8> {
    format!("fw/vuln/{cve}").into_bytes()
}
pub fn release_cves_key(id: &ReleaseId) -> Vec<u8> {
    format!("fw/release-cves/{id}").into_bytes()
}
pub fn fleet_key(owner: &str, fleet: &str) -> Vec<u8> {
    format!("fw/fleet/{owner}/{fleet}").into_bytes()
}
pub fn rollout_key(id: &TxHash) -> Vec<u8> {
    format!("fw/rollout/{id}").into_bytes()
}
pub fn owner_rollouts_key(owner: &str) -> Vec<u8> {
    format!("fw/index/rollouts/{owner}").into_bytes()
}
pub fn progress_key(rollout: &TxHash, device: &DeviceId) -> Vec<u8> {
    format!("fw/progress/{rollout}/{device}").into_bytes()
}
pub fn update_history_key(device: &DeviceId) -> Vec<u8> {
    format!("fw/history/{device}").into_bytes()
}

/// One firmware-signing key of a publisher. Revoked keys stay listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareKeyEntry {
    pub id: FirmwareKeyId,
    pub key_sec1: [u8; P256_SEC1_UNCOMPRESSED_BYTES],
    pub added_height: u64,
    pub revoked_height: Option<u64>,
}

/// A publisher's firmware keys, in registration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FirmwareKeys(pub Vec<FirmwareKeyEntry>);

/// One certification verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertEntry {
    pub auditor: String,
    pub status: CertStatus,
    pub note: String,
    pub height: u64,
}

/// A release's certification: the latest verdict (of any auditor) and every verdict, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRecord {
    pub status: CertStatus,
    pub history: Vec<CertEntry>,
}

/// One report of a CVE: who, when, and which releases it added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VulnReport {
    pub org: String,
    pub height: u64,
    pub note: String,
    pub affected: Vec<ReleaseId>,
}

/// A CVE and the releases it affects (the union of all reports, sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VulnRecord {
    pub cve: String,
    pub affected: Vec<ReleaseId>,
    pub reports: Vec<VulnReport>,
}

/// A fleet's rollout approval policy. The fleet is its owner's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FleetPolicy {
    pub owner: String,
    pub name: String,
    /// Sorted.
    pub approvers: Vec<String>,
    pub threshold: u32,
    pub require_certified: bool,
    pub updated_height: u64,
}

/// A rollout's state, named as Eclipse hawkBit names rollout states (`RolloutStatus`, lower case
/// as its REST API spells them). `Stopped` is where a cancelled rollout ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RolloutStatus {
    WaitingForApproval = 1,
    ApprovalDenied = 2,
    Ready = 3,
    Running = 4,
    Paused = 5,
    Stopped = 6,
    Finished = 7,
}

impl RolloutStatus {
    pub const ALL: [RolloutStatus; 7] = [
        RolloutStatus::WaitingForApproval,
        RolloutStatus::ApprovalDenied,
        RolloutStatus::Ready,
        RolloutStatus::Running,
        RolloutStatus::Paused,
        RolloutStatus::Stopped,
        RolloutStatus::Finished,
    ];

    /// hawkBit's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            RolloutStatus::WaitingForApproval => "waiting_for_approval",
            RolloutStatus::ApprovalDenied => "approval_denied",
            RolloutStatus::Ready => "ready",
            RolloutStatus::Running => "running",
            RolloutStatus::Paused => "paused",
            RolloutStatus::Stopped => "stopped",
            RolloutStatus::Finished => "finished",
        }
    }
}

impl Encode for RolloutStatus {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}
impl Decode for RolloutStatus {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        RolloutStatus::ALL
            .into_iter()
            .find(|s| *s as u64 == v)
            .ok_or(DecodeError::UnknownVariant {
                what: "rollout status",
                value: v,
            })
    }
}

/// How many of a rollout's devices are where, by their latest progress report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgressCounts {
    pub idle: u32,
    pub downloading: u32,
    pub downloaded: u32,
    pub updating: u32,
    /// Latest result `Firmware updated successfully`.
    pub succeeded: u32,
    /// Latest result a failure (2..=9).
    pub failed: u32,
}

impl ProgressCounts {
    fn bucket(&mut self, state: UpdateState, result: UpdateResult) -> &mut u32 {
        match (result, state) {
            (UpdateResult::Success, _) => &mut self.succeeded,
            (r, _) if r.is_failure() => &mut self.failed,
            (_, UpdateState::Idle) => &mut self.idle,
            (_, UpdateState::Downloading) => &mut self.downloading,
            (_, UpdateState::Downloaded) => &mut self.downloaded,
            (_, UpdateState::Updating) => &mut self.updating,
        }
    }
    /// Move one device from its previous report (if any) to `now`.
    pub fn record(&mut self, before: Option<&DeviceProgress>, now: &DeviceProgress) {
        if let Some(b) = before {
            let slot = self.bucket(b.state, b.result);
            *slot = slot.saturating_sub(1);
        }
        *self.bucket(now.state, now.result) += 1;
    }
    /// Devices with a final result.
    pub fn finished(&self) -> u32 {
        self.succeeded + self.failed
    }
}

/// A rollout (id = hash of its `CreateRollout` transaction). The policy is copied at creation,
/// so a later `SetFleetPolicy` does not change the rules of a rollout under way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutRecord {
    pub id: TxHash,
    pub owner: String,
    pub fleet: String,
    pub release: ReleaseId,
    pub version: String,
    /// Sorted; the release's models when the creator named none.
    pub models: Vec<u32>,
    pub rate_devices_per_min: u32,
    pub wave_size: u32,
    pub abort_failure_pct: u8,
    pub approvers: Vec<String>,
    pub threshold: u32,
    pub require_certified: bool,
    pub status: RolloutStatus,
    /// Sorted approving organisations.
    pub approvals: Vec<String>,
    /// `(organisation, reason)` of the rejection that denied it.
    pub rejection: Option<(String, String)>,
    pub created_height: u64,
    pub updated_height: u64,
    /// The owner's live devices of `models` when the rollout started (0 before).
    pub target_devices: u32,
    pub counts: ProgressCounts,
    /// Devices whose install of this release was proven by `AttestInstall`.
    pub attested: u32,
}

/// A device's latest progress report within a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceProgress {
    pub state: UpdateState,
    pub result: UpdateResult,
    pub height: u64,
}

/// One proven install in a device's firmware history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateEntry {
    pub height: u64,
    pub release: ReleaseId,
    pub version: String,
    pub security_version: u64,
    pub rollout: TxHash,
    pub tx: TxHash,
}

/// A device's firmware history, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateHistory(pub Vec<UpdateEntry>);

/// A list of CVE ids or rollout ids stored as one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TextList(pub Vec<String>);

/// A list of transaction hashes (rollout ids).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashList(pub Vec<TxHash>);

/// An opaque byte string record (the SUIT envelope).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

// ---- encodings ---------------------------------------------------------------------------------

fn opt_uint(e: &mut Encoder, v: Option<u64>) {
    match v {
        Some(v) => e.uint(v),
        None => e.null(),
    };
}
fn dec_opt_uint(d: &mut Decoder<'_>) -> Result<Option<u64>, DecodeError> {
    if d.null()? { Ok(None) } else { d.uint().map(Some) }
}
fn hash(d: &mut Decoder<'_>) -> Result<TxHash, DecodeError> {
    d.fixed().map(TxHash)
}
fn text(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    decode_bounded_text(d, "text", MAX_TEXT_BYTES)
}
fn any_text(_: &str) -> Result<(), DecodeError> {
    Ok(())
}

impl Encode for FirmwareKeyEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(4);
        self.id.encode(e);
        e.bytes(&self.key_sec1).uint(self.added_height);
        opt_uint(e, self.revoked_height);
    }
}
impl Decode for FirmwareKeyEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let r = FirmwareKeyEntry {
            id: FirmwareKeyId::decode(d)?,
            key_sec1: d.fixed()?,
            added_height: d.uint()?,
            revoked_height: dec_opt_uint(d)?,
        };
        d.end();
        Ok(r)
    }
}
impl Encode for FirmwareKeys {
    fn encode(&self, e: &mut Encoder) {
        encode_list(e, &self.0);
    }
}
impl Decode for FirmwareKeys {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_list(d, MAX_FIRMWARE_KEYS_PER_ORG).map(FirmwareKeys)
    }
}

impl Encode for CertEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(4).text(&self.auditor);
        self.status.encode(e);
        e.text(&self.note).uint(self.height);
    }
}
impl Decode for CertEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let r = CertEntry {
            auditor: text(d)?,
            status: CertStatus::decode(d)?,
            note: text(d)?,
            height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}
impl Encode for CertRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        self.status.encode(e);
        encode_list(e, &self.history);
    }
}
impl Decode for CertRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let r = CertRecord {
            status: CertStatus::decode(d)?,
            history: decode_list(d, MAX_CERT_HISTORY)?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for VulnReport {
    fn encode(&self, e: &mut Encoder) {
        e.array(4).text(&self.org).uint(self.height).text(&self.note);
        encode_list(e, &self.affected);
    }
}
impl Decode for VulnReport {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        let r = VulnReport {
            org: text(d)?,
            height: d.uint()?,
            note: text(d)?,
            affected: decode_list(d, MAX_VULN_AFFECTED)?,
        };
        d.end();
        Ok(r)
    }
}
impl Encode for VulnRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(3).text(&self.cve);
        encode_list(e, &self.affected);
        encode_list(e, &self.reports);
    }
}
impl Decode for VulnRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let r = VulnRecord {
            cve: text(d)?,
            affected: decode_list(d, MAX_VULN_AFFECTED)?,
            reports: decode_list(d, MAX_VULN_REPORTS)?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for FleetPolicy {
    fn encode(&self, e: &mut Encoder) {
        e.array(6).text(&self.owner).text(&self.name);
        encode_texts(e, &self.approvers);
        e.uint(self.threshold as u64)
            .bool(self.require_certified)
            .uint(self.updated_height);
    }
}
impl Decode for FleetPolicy {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let r = FleetPolicy {
            owner: text(d)?,
            name: text(d)?,
            approvers: decode_texts(d, MAX_FLEET_APPROVERS, check_name)?,
            threshold: d.u32()?,
            require_certified: d.bool()?,
            updated_height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for ProgressCounts {
    fn encode(&self, e: &mut Encoder) {
        e.array(6)
            .uint(self.idle as u64)
            .uint(self.downloading as u64)
            .uint(self.downloaded as u64)
            .uint(self.updating as u64)
            .uint(self.succeeded as u64)
            .uint(self.failed as u64);
    }
}
impl Decode for ProgressCounts {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let r = ProgressCounts {
            idle: d.u32()?,
            downloading: d.u32()?,
            downloaded: d.u32()?,
            updating: d.u32()?,
            succeeded: d.u32()?,
            failed: d.u32()?,
        };
        d.end();
        Ok(r)
    }
}

impl RolloutRecord {
    const ARITY: usize = 20;
}

impl Encode for RolloutRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY)
            .bytes(&self.id.0)
            .text(&self.owner)
            .text(&self.fleet);
        self.release.encode(e);
        e.text(&self.version);
        encode_u32s(e, &self.models);
        e.uint(self.rate_devices_per_min as u64)
            .uint(self.wave_size as u64)
            .uint(self.abort_failure_pct as u64);
        encode_texts(e, &self.approvers);
        e.uint(self.threshold as u64).bool(self.require_certified);
        self.status.encode(e);
        encode_texts(e, &self.approvals);
        match &self.rejection {
            Some((org, reason)) => e.array(2).text(org).text(reason),
            None => e.null(),
        };
        e.uint(self.created_height)
            .uint(self.updated_height)
            .uint(self.target_devices as u64);
        self.counts.encode(e);
        e.uint(self.attested as u64);
    }
}
impl Decode for RolloutRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let (id, owner, fleet) = (hash(d)?, text(d)?, text(d)?);
        let (release, version) = (ReleaseId::decode(d)?, text(d)?);
        let models = decode_u32s(d, MAX_RELEASE_MODELS)?;
        let (rate_devices_per_min, wave_size) = (d.u32()?, d.u32()?);
        let abort_failure_pct = u8::try_from(d.uint()?).map_err(|_| DecodeError::Invalid {
            what: "abort_failure_pct",
            why: "not a percentage",
        })?;
        let approvers = decode_texts(d, MAX_FLEET_APPROVERS, check_name)?;
        let (threshold, require_certified, status) = (d.u32()?, d.bool()?, RolloutStatus::decode(d)?);
        let approvals = decode_texts(d, MAX_FLEET_APPROVERS, check_name)?;
        let rejection = if d.null()? {
            None
        } else {
            d.array_of(2)?;
            let r = (text(d)?, text(d)?);
            d.end();
            Some(r)
        };
        let (created_height, updated_height, target_devices) = (d.uint()?, d.uint()?, d.u32()?);
        let (counts, attested) = (ProgressCounts::decode(d)?, d.u32()?);
        d.end();
        Ok(RolloutRecord {
            id,
            owner,
            fleet,
            release,
            version,
            models,
            rate_devices_per_min,
            wave_size,
            abort_failure_pct,
            approvers,
            threshold,
            require_certified,
            status,
            approvals,
            rejection,
            created_height,
            updated_height,
            target_devices,
            counts,
            attested,
        })
    }
}

impl Encode for DeviceProgress {
    fn encode(&self, e: &mut Encoder) {
        e.array(3);
        self.state.encode(e);
        self.result.encode(e);
        e.uint(self.height);
    }
}
impl Decode for DeviceProgress {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let r = DeviceProgress {
            state: UpdateState::decode(d)?,
            result: UpdateResult::decode(d)?,
            height: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for UpdateEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(6).uint(self.height);
        self.release.encode(e);
        e.text(&self.version)
            .uint(self.security_version)
            .bytes(&self.rollout.0)
            .bytes(&self.tx.0);
    }
}
impl Decode for UpdateEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let r = UpdateEntry {
            height: d.uint()?,
            release: ReleaseId::decode(d)?,
            version: text(d)?,
            security_version: d.uint()?,
            rollout: hash(d)?,
            tx: hash(d)?,
        };
        d.end();
        Ok(r)
    }
}
impl Encode for UpdateHistory {
    fn encode(&self, e: &mut Encoder) {
        encode_list(e, &self.0);
    }
}
impl Decode for UpdateHistory {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_list(d, MAX_DEVICE_UPDATE_HISTORY).map(UpdateHistory)
    }
}

impl Encode for TextList {
    fn encode(&self, e: &mut Encoder) {
        encode_texts(e, &self.0);
    }
}
impl Decode for TextList {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_texts(d, MAX_CVES_PER_RELEASE, any_text).map(TextList)
    }
}

impl Encode for HashList {
    fn encode(&self, e: &mut Encoder) {
        e.array(self.0.len());
        for h in &self.0 {
            e.bytes(&h.0);
        }
    }
}
impl Decode for HashList {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = d.array()?;
        if n > MAX_ROLLOUTS_PER_OWNER {
            return Err(DecodeError::TooLong {
                what: "rollout list",
                len: n as u64,
                max: MAX_ROLLOUTS_PER_OWNER,
            });
        }
        let out = (0..n).map(|_| hash(d)).collect::<Result<Vec<_>, _>>()?;
        d.end();
        Ok(HashList(out))
    }
}

impl Encode for Blob {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(&self.0);
    }
}
impl Decode for Blob {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.bytes().map(|b| Blob(b.to_vec()))
    }
}

// ---- reads (rules, API, CLI) ---------------------------------------------------------------------

pub fn get_release(s: &dyn StateRead, id: &ReleaseId) -> Result<Option<ReleaseRecord>, TxError> {
    read(s, &release_key(id))
}
pub fn get_envelope(s: &dyn StateRead, id: &ReleaseId) -> Result<Option<Vec<u8>>, TxError> {
    Ok(read::<Blob>(s, &envelope_key(id))?.map(|b| b.0))
}
pub fn release_by_digest(s: &dyn StateRead, image_digest: &[u8; 32]) -> Result<Option<ReleaseId>, TxError> {
    read(s, &by_digest_key(image_digest))
}
pub fn firmware_keys(s: &dyn StateRead, org: &str) -> Result<Vec<FirmwareKeyEntry>, TxError> {
    Ok(read::<FirmwareKeys>(s, &firmware_keys_key(org))?.unwrap_or_default().0)
}
pub fn releases_of_publisher(s: &dyn StateRead, org: &str) -> Result<Vec<ReleaseId>, TxError> {
    Ok(read::<IdList<ReleaseId>>(s, &publisher_releases_key(org))?
        .unwrap_or_default()
        .0)
}
pub fn releases_of_model(s: &dyn StateRead, model: u32) -> Result<Vec<ReleaseId>, TxError> {
    Ok(read::<IdList<ReleaseId>>(s, &model_releases_key(model))?
        .unwrap_or_default()
        .0)
}
pub fn get_certification(s: &dyn StateRead, id: &ReleaseId) -> Result<Option<CertRecord>, TxError> {
    read(s, &cert_key(id))
}
pub fn get_vulnerability(s: &dyn StateRead, cve: &str) -> Result<Option<VulnRecord>, TxError> {
    read(s, &vuln_key(cve))
}
pub fn cves_of_release(s: &dyn StateRead, id: &ReleaseId) -> Result<Vec<String>, TxError> {
    Ok(read::<TextList>(s, &release_cves_key(id))?.unwrap_or_default().0)
}
pub fn get_fleet(s: &dyn StateRead, owner: &str, fleet: &str) -> Result<Option<FleetPolicy>, TxError> {
    read(s, &fleet_key(owner, fleet))
}
pub fn get_rollout(s: &dyn StateRead, id: &TxHash) -> Result<Option<RolloutRecord>, TxError> {
    read(s, &rollout_key(id))
}
pub fn rollouts_of_owner(s: &dyn StateRead, owner: &str) -> Result<Vec<TxHash>, TxError> {
    Ok(read::<HashList>(s, &owner_rollouts_key(owner))?.unwrap_or_default().0)
}
pub fn get_progress(s: &dyn StateRead, rollout: &TxHash, device: &DeviceId) -> Result<Option<DeviceProgress>, TxError> {
    read(s, &progress_key(rollout, device))
}
pub fn get_approval(s: &dyn StateRead, release: &ReleaseId, owner: &str) -> Result<Option<ApprovalRecord>, TxError> {
    read(s, &approval_key(release, owner))
}
pub fn get_installed(s: &dyn StateRead, device: &DeviceId) -> Result<Option<InstalledFirmware>, TxError> {
    read(s, &installed_key(device))
}
pub fn update_history(s: &dyn StateRead, device: &DeviceId) -> Result<Vec<UpdateEntry>, TxError> {
    Ok(read::<UpdateHistory>(s, &update_history_key(device))?
        .unwrap_or_default()
        .0)
}
