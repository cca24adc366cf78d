//! Firmware keys, releases, certification and vulnerability reports.

use std::collections::BTreeSet;

use chipledger_device::suit::{self, SuitManifest};
use chipledger_types::firmware_tx::*;
use chipledger_types::limits::*;
use chipledger_types::tx::{Role, TxHash};
use p256::ecdsa::VerifyingKey;

use super::model::*;
use super::{FirmwareError, FirmwareEvent, firmware_key_id, require_role};
use crate::apply::{BlockContext, TxState};
use crate::error::TxError;
use crate::model::{IdList, read};
use crate::store::StateRead;

type Events = Result<Vec<FirmwareEvent>, TxError>;
/// Index records to write: (key, release ids).
type IndexWrites = Vec<(Vec<u8>, IdList<ReleaseId>)>;

fn key_owner_key(id: &FirmwareKeyId) -> Vec<u8> {
    format!("fw/key-owner/{id}").into_bytes()
}

fn limit(what: &'static str, max: usize) -> TxError {
    TxError::LimitReached { what, max }
}

pub(super) fn register_key(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &RegisterFirmwareKey) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Publisher)?;
    let key = VerifyingKey::from_sec1_bytes(&p.key_sec1)
        .map_err(|_| FirmwareError::BadFirmwareKey("not a point on the P-256 curve"))?;
    let id = firmware_key_id(&key);
    if read::<TextList>(&view, &key_owner_key(&id))?.is_some() {
        return Err(FirmwareError::FirmwareKeyExists(id).into());
    }
    let mut keys = firmware_keys(&view, org)?;
    if keys.len() >= MAX_FIRMWARE_KEYS_PER_ORG {
        return Err(limit("firmware keys per organisation", MAX_FIRMWARE_KEYS_PER_ORG));
    }
    keys.push(FirmwareKeyEntry {
        id,
        key_sec1: p.key_sec1,
        added_height: ctx.height,
        revoked_height: None,
    });
    st.put(key_owner_key(&id), &TextList(vec![org.into()]));
    st.put(firmware_keys_key(org), &FirmwareKeys(keys));
    Ok(vec![FirmwareEvent::KeyRegistered {
        org: org.into(),
        key: id,
    }])
}

pub(super) fn revoke_key(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &RevokeFirmwareKey) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Publisher)?;
    let mut keys = firmware_keys(&view, org)?;
    let entry = keys
        .iter_mut()
        .find(|k| k.id == p.key_id)
        .ok_or_else(|| FirmwareError::UnknownFirmwareKey {
            org: org.into(),
            key: p.key_id,
        })?;
    if entry.revoked_height.is_some() {
        return Err(FirmwareError::FirmwareKeyRevoked(p.key_id).into());
    }
    entry.revoked_height = Some(ctx.height);
    st.put(firmware_keys_key(org), &FirmwareKeys(keys));
    Ok(vec![FirmwareEvent::KeyRevoked {
        org: org.into(),
        key: p.key_id,
    }])
}

/// Verify `envelope` under the first active key of `org` it verifies under.
fn verify_with_org_keys(
    s: &dyn StateRead,
    org: &str,
    envelope: &[u8],
) -> Result<(SuitManifest, FirmwareKeyId), TxError> {
    let keys = firmware_keys(s, org)?;
    let mut last_error = None;
    for entry in keys.iter().filter(|k| k.revoked_height.is_none()) {
        let key = VerifyingKey::from_sec1_bytes(&entry.key_sec1).map_err(|_| TxError::Corrupt {
            key: String::from_utf8_lossy(&firmware_keys_key(org)).into_owned(),
            why: "a stored firmware key is not a P-256 point".into(),
        })?;
        match suit::verify_envelope(envelope, &key) {
            Ok(manifest) => return Ok((manifest, entry.id)),
            Err(e) => last_error = Some(e),
        }
    }
    match last_error {
        None => Err(FirmwareError::NoFirmwareKey(org.into()).into()),
        Some(e) => Err(FirmwareError::BadEnvelope {
            org: org.into(),
            why: e.to_string(),
        }
        .into()),
    }
}

/// The image a release manifest installs: `(SHA-256 digest, size)`, after the component,
/// class-id and vendor-id rules of the module documentation.
fn check_manifest(m: &SuitManifest, org: &str, models: &[u32]) -> Result<([u8; 32], u64), TxError> {
    let bad = |why: String| TxError::from(FirmwareError::BadManifest(why));
    let [component] = m.components.as_slice() else {
        return Err(bad(format!(
            "a release has exactly one component; this manifest has {}",
            m.components.len()
        )));
    };
    let digest = component
        .image_digest
        .as_ref()
        .and_then(|d| d.sha256())
        .ok_or_else(|| bad("the component needs one SHA-256 image digest (COSE alg -16) on every path".into()))?;
    let size = component
        .image_size
        .ok_or_else(|| bad("the component needs one image size on every path".into()))?;
    if component
        .alternatives
        .iter()
        .any(|a| !a.class_id_checked || a.class_id.is_none())
    {
        return Err(
            FirmwareError::ClassIdMismatch("the manifest does not check a class id on every path".into()).into(),
        );
    }
    let found: BTreeSet<[u8; 16]> = m.class_ids().into_iter().collect();
    for model in models {
        let want = suit::class_id_for_model(*model);
        if !found.contains(&want) {
            let why = format!(
                "model {model} (class id {}) is not in the manifest",
                suit::uuid_string(&want)
            );
            return Err(FirmwareError::ClassIdMismatch(why).into());
        }
    }
    let wanted: BTreeSet<[u8; 16]> = models.iter().map(|m| suit::class_id_for_model(*m)).collect();
    if let Some(extra) = found.difference(&wanted).next() {
        let why = format!("class id {} is not one of the listed models", suit::uuid_string(extra));
        return Err(FirmwareError::ClassIdMismatch(why).into());
    }
    let vendor = suit::vendor_id_for_org(org);
    if m.vendor_ids().iter().any(|v| *v != vendor) {
        return Err(FirmwareError::VendorIdMismatch(org.into()).into());
    }
    Ok((digest, size))
}

/// `list` with `id` appended, bounded by `max`.
fn push_id(list: Vec<ReleaseId>, id: ReleaseId, what: &'static str, max: usize) -> Result<IdList<ReleaseId>, TxError> {
    if list.len() >= max {
        return Err(limit(what, max));
    }
    let mut list = list;
    list.push(id);
    Ok(IdList(list))
}

/// Uniqueness of a new release (id, image, version per model) and the index records it
/// extends: per model, then per publisher.
fn new_release_indexes(
    s: &dyn StateRead,
    org: &str,
    version: &str,
    models: &[u32],
    id: ReleaseId,
    image_digest: &[u8; 32],
) -> Result<IndexWrites, TxError> {
    if get_release(s, &id)?.is_some() {
        return Err(FirmwareError::ReleaseExists(id).into());
    }
    if let Some(release) = release_by_digest(s, image_digest)? {
        let digest = hex::encode(image_digest);
        return Err(FirmwareError::ImageExists { digest, release }.into());
    }
    let mut writes = Vec::new();
    for model in models {
        if s.get(&version_key(org, *model, version)).is_some() {
            let (publisher, version, model) = (org.into(), version.into(), *model);
            return Err(FirmwareError::VersionExists {
                publisher,
                version,
                model,
            }
            .into());
        }
        let list = releases_of_model(s, *model)?;
        let what = "releases per model";
        writes.push((
            model_releases_key(*model),
            push_id(list, id, what, MAX_RELEASES_PER_MODEL)?,
        ));
    }
    let list = releases_of_publisher(s, org)?;
    let what = "releases per publisher";
    writes.push((
        publisher_releases_key(org),
        push_id(list, id, what, MAX_RELEASES_PER_PUBLISHER)?,
    ));
    Ok(writes)
}

pub(super) fn publish(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &PublishRelease,
) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Publisher)?;
    let (manifest, signing_key) = verify_with_org_keys(&view, org, &p.envelope)?;
    let (image_digest, image_size) = check_manifest(&manifest, org, &p.models)?;
    let id = manifest
        .manifest_digest
        .sha256()
        .map(ReleaseId)
        .ok_or_else(|| FirmwareError::BadManifest("the manifest digest is not SHA-256".into()))?;
    let mut models = p.models.clone();
    models.sort_unstable();
    let indexes = new_release_indexes(&view, org, &p.version, &models, id, &image_digest)?;
    let mut fixes = p.fixes.clone();
    fixes.sort();
    let record = ReleaseRecord {
        id,
        publisher: org.into(),
        version: p.version.clone(),
        security_version: manifest.sequence_number,
        models,
        min_applicable: p.min_applicable.clone(),
        max_applicable: p.max_applicable.clone(),
        fixes,
        image_digest_alg: COSE_ALG_SHA256,
        image_digest,
        image_size,
        signing_key,
        published_height: ctx.height,
        published_tx: *hash,
        withdrawn: None,
    };
    for model in &record.models {
        st.put(version_key(org, *model, &p.version), &id);
    }
    for (key, list) in indexes {
        st.put(key, &list);
    }
    st.put(by_digest_key(&image_digest), &id);
    st.put(envelope_key(&id), &Blob(p.envelope.clone()));
    st.put(release_key(&id), &record);
    Ok(vec![FirmwareEvent::ReleasePublished {
        release: id,
        publisher: org.into(),
        version: record.version,
        security_version: record.security_version,
    }])
}

/// A published release, or [`FirmwareError::UnknownRelease`].
pub(super) fn existing_release(s: &dyn StateRead, id: &ReleaseId) -> Result<ReleaseRecord, TxError> {
    get_release(s, id)?.ok_or_else(|| FirmwareError::UnknownRelease(*id).into())
}

/// A published release that was not withdrawn.
pub(super) fn live_release(s: &dyn StateRead, id: &ReleaseId) -> Result<ReleaseRecord, TxError> {
    let release = existing_release(s, id)?;
    if release.withdrawn.is_some() {
        return Err(FirmwareError::ReleaseWithdrawn {
            release: *id,
            version: release.version,
        }
        .into());
    }
    Ok(release)
}

pub(super) fn withdraw(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &WithdrawRelease) -> Events {
    let mut release = live_release(&st.view(), &p.release)?;
    if release.publisher != org {
        return Err(FirmwareError::NotReleasePublisher {
            org: org.into(),
            release: p.release,
            publisher: release.publisher,
        }
        .into());
    }
    release.withdrawn = Some(Withdrawal {
        height: ctx.height,
        reason: p.reason.clone(),
    });
    st.put(release_key(&p.release), &release);
    Ok(vec![FirmwareEvent::ReleaseWithdrawn { release: p.release }])
}

pub(super) fn certify(st: &mut TxState<'_>, ctx: &BlockContext<'_>, org: &str, p: &Certify) -> Events {
    let view = st.view();
    require_role(&view, org, Role::Auditor)?;
    if p.status == CertStatus::Revoked {
        existing_release(&view, &p.release)?;
    } else {
        live_release(&view, &p.release)?;
    }
    let mut history = get_certification(&view, &p.release)?
        .map(|c| c.history)
        .unwrap_or_default();
    if history.len() >= MAX_CERT_HISTORY {
        return Err(limit("certification entries per release", MAX_CERT_HISTORY));
    }
    history.push(CertEntry {
        auditor: org.into(),
        status: p.status,
        note: p.note.clone(),
        height: ctx.height,
    });
    st.put(
        cert_key(&p.release),
        &CertRecord {
            status: p.status,
            history,
        },
    );
    Ok(vec![FirmwareEvent::ReleaseCertified {
        release: p.release,
        auditor: org.into(),
        status: p.status,
    }])
}

pub(super) fn report_vulnerability(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    org: &str,
    p: &ReportVulnerability,
) -> Events {
    let view = st.view();
    let record = crate::apply::active_org(&view, org)?;
    if !record
        .roles
        .iter()
        .any(|r| matches!(r, Role::Publisher | Role::Auditor))
    {
        let role = "publisher or auditor";
        return Err(FirmwareError::MissingRole { org: org.into(), role }.into());
    }
    for id in &p.affected {
        existing_release(&view, id)?;
    }
    let mut vuln = get_vulnerability(&view, &p.cve)?.unwrap_or(VulnRecord {
        cve: p.cve.clone(),
        affected: Vec::new(),
        reports: Vec::new(),
    });
    let added: Vec<ReleaseId> = p
        .affected
        .iter()
        .filter(|id| !vuln.affected.contains(id))
        .copied()
        .collect();
    if vuln.reports.len() >= MAX_VULN_REPORTS {
        return Err(limit("reports per CVE", MAX_VULN_REPORTS));
    }
    if vuln.affected.len() + added.len() > MAX_VULN_AFFECTED {
        return Err(limit("affected releases per CVE", MAX_VULN_AFFECTED));
    }
    let mut cve_lists = Vec::with_capacity(added.len());
    for id in &added {
        let mut cves = cves_of_release(&view, id)?;
        if cves.len() >= MAX_CVES_PER_RELEASE {
            return Err(limit("CVEs per release", MAX_CVES_PER_RELEASE));
        }
        cves.push(p.cve.clone());
        cves.sort();
        cve_lists.push((release_cves_key(id), TextList(cves)));
    }
    for (key, list) in cve_lists {
        st.put(key, &list);
    }
    vuln.affected.extend(&added);
    vuln.affected.sort();
    vuln.reports.push(VulnReport {
        org: org.into(),
        height: ctx.height,
        note: p.note.clone(),
        affected: added.clone(),
    });
    st.put(vuln_key(&p.cve), &vuln);
    Ok(vec![FirmwareEvent::VulnerabilityReported {
        cve: p.cve.clone(),
        org: org.into(),
        added: added.len() as u32,
    }])
}
