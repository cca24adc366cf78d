//! "No firmware install without a logged approved release" and "no key release without a
//! ledger record", checked on a final chain from the log alone.
//!
//! [`Provenance`] reads the final transactions in log order and keeps, from them only, what
//! the state rules consult: manufacturer CAs proposed, devices (owner, model, revoked),
//! published and withdrawn releases, certifications, fleet policies, rollouts and their
//! approvals, grants (direct or bought), offers and device tags. Then:
//!
//! - every `AttestInstall` must name a rollout created earlier in the log, of a release
//!   published earlier and not withdrawn since, for a registered, unrevoked device of the
//!   rollout's owner and models; and some rollout of that release for the device's owner and
//!   model must have reached its approval threshold earlier (distinct approvers of its fleet
//!   policy; the release live and, if the policy requires it, certified at that moment);
//! - every `KeyRelease` must name a `GrantAccess` or `Purchase` earlier in the log, by the
//!   releasing organisation, not revoked and not expired at the release's block time, covering
//!   the device (listed, or tagged by the owner with one of the scope's tags) while the grant's
//!   owner still owns it;
//! - at the end, every entry of the state's fleet version map (`fw/installed/…`) names a
//!   logged release and the logged install that put it there.

use crate::invariants::{Invariant, Violation};
use crate::story::release_id;
use chipledger_device::cert::{verify_ca, verify_deviceid};
use chipledger_state::device::{ca_id_of, device_id_of};
use chipledger_types::access_tx::{AccessScope, KeyRelease};
use chipledger_types::block::Block;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::{CaId, DeviceId};
use chipledger_types::firmware_tx::{AttestInstall, CertStatus, InstalledFirmware, ReleaseId, installed_key};
use chipledger_types::tx::{GovAction, Payload, SignedTx, TxHash};
use std::collections::{BTreeMap, BTreeSet};

/// State entries as stored: (key, value).
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Where a transaction sits in the log.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub height: u64,
    pub timestamp_ms: u64,
    pub hash: TxHash,
}

#[derive(Debug)]
struct Device {
    owner: String,
    model: u32,
    revoked: bool,
}

#[derive(Debug)]
struct Release {
    models: Vec<u32>,
    withdrawn: bool,
}

#[derive(Debug)]
struct Fleet {
    approvers: BTreeSet<String>,
    threshold: u32,
    require_certified: bool,
}

#[derive(Debug)]
struct Rollout {
    owner: String,
    release: ReleaseId,
    models: Vec<u32>,
    approvers: BTreeSet<String>,
    threshold: u32,
    require_certified: bool,
    approvals: BTreeSet<String>,
    /// Still waiting for approval (not ready, not denied).
    open: bool,
}

#[derive(Debug)]
struct Grant {
    owner: String,
    scope: AccessScope,
    expires_ms: u64,
    revoked: bool,
}

#[derive(Debug)]
struct Offer {
    owner: String,
    scope: AccessScope,
    duration_ms: u64,
}

/// Certificates already checked, by DER (every validator's chain carries the same ones, and
/// each check costs P-256 verifications): a CA certificate's id, a DeviceID certificate's
/// device under a CA.
#[derive(Debug, Default)]
pub struct CertCache {
    cas: BTreeMap<Vec<u8>, Option<CaId>>,
    devices: BTreeMap<(CaId, Vec<u8>), Option<DeviceId>>,
}

impl CertCache {
    fn ca(&mut self, der: &[u8]) -> Option<CaId> {
        *self
            .cas
            .entry(der.to_vec())
            .or_insert_with(|| verify_ca(der, None).ok().map(|key| ca_id_of(&key)))
    }

    fn device(&mut self, ca: CaId, ca_der: &[u8], der: &[u8]) -> Option<DeviceId> {
        *self
            .devices
            .entry((ca, der.to_vec()))
            .or_insert_with(|| verify_deviceid(ca_der, der, None).ok().map(device_id_of))
    }
}

/// What the log says about firmware and access, up to the transaction last applied.
#[derive(Debug, Default)]
pub struct Provenance {
    certs: CertCache,
    cas: BTreeMap<CaId, Vec<u8>>,
    devices: BTreeMap<DeviceId, Device>,
    releases: BTreeMap<ReleaseId, Release>,
    certified: BTreeMap<ReleaseId, CertStatus>,
    fleets: BTreeMap<(String, String), Fleet>,
    rollouts: BTreeMap<TxHash, Rollout>,
    /// (release, owner) → the models approved for it.
    approved: BTreeMap<(ReleaseId, String), BTreeSet<u32>>,
    /// Each device's last logged install: (release, transaction).
    installed: BTreeMap<DeviceId, (ReleaseId, TxHash)>,
    grants: BTreeMap<TxHash, Grant>,
    offers: BTreeMap<TxHash, Offer>,
    /// (owner, tag, device) while tagged.
    tags: BTreeSet<(String, String, DeviceId)>,
    /// Final installs and key releases seen.
    pub installs: u64,
    pub key_releases: u64,
}

fn violation(invariant: Invariant, at: &At, what: &str, why: String) -> Violation {
    (invariant, format!("{what} {} at height {}: {why}", at.hash, at.height))
}

/// Checks a validator's whole final chain (blocks in height order), with the certificates
/// `certs` already checked.
pub fn check_chain(index: usize, chain: &[Block], certs: CertCache) -> Result<Provenance, Violation> {
    let mut log = Provenance {
        certs,
        ..Provenance::default()
    };
    for block in chain {
        for tx in &block.txs {
            let at = At {
                height: block.header.height,
                timestamp_ms: block.header.timestamp_ms,
                hash: TxHash::of(tx),
            };
            let signed = SignedTx::from_cbor(tx, Limits::TX).map_err(|e| (Invariant::HashChain, e.to_string()))?;
            log.apply(&at, &signed)
                .map_err(|(invariant, detail)| (invariant, format!("validator {index}: {detail}")))?;
        }
    }
    Ok(log)
}

impl Provenance {
    /// The certificates checked so far (for the next chain).
    pub fn into_certs(self) -> CertCache {
        self.certs
    }

    /// Takes in one final transaction; checks it if it is an install or a key release.
    pub fn apply(&mut self, at: &At, tx: &SignedTx) -> Result<(), Violation> {
        let org = tx.body.org.as_str();
        match &tx.body.payload {
            Payload::Propose(GovAction::AddManufacturerCa(a)) => {
                if let Some(id) = self.certs.ca(&a.ca_cert_der) {
                    self.cas.insert(id, a.ca_cert_der.clone());
                }
            }
            Payload::RegisterDevice(r) => {
                let id = match self.cas.get(&r.ca) {
                    Some(ca_der) => self.certs.device(r.ca, ca_der, &r.deviceid_cert_der),
                    None => None,
                };
                if let Some(id) = id {
                    let device = Device {
                        owner: r.owner.clone(),
                        model: r.model,
                        revoked: false,
                    };
                    self.devices.insert(id, device);
                }
            }
            Payload::AcceptTransfer(a) => {
                if let Some(d) = self.devices.get_mut(&a.device) {
                    d.owner = org.into();
                }
            }
            Payload::RevokeDevice(r) => {
                if let Some(d) = self.devices.get_mut(&r.device) {
                    d.revoked = true;
                }
            }
            Payload::PublishRelease(p) => self.publish(at, &p.envelope, &p.models)?,
            Payload::WithdrawRelease(w) => {
                if let Some(r) = self.releases.get_mut(&w.release) {
                    r.withdrawn = true;
                }
            }
            Payload::Certify(c) => {
                self.certified.insert(c.release, c.status);
            }
            Payload::SetFleetPolicy(p) => {
                let fleet = Fleet {
                    approvers: p.approvers.iter().cloned().collect(),
                    threshold: p.threshold,
                    require_certified: p.require_certified,
                };
                self.fleets.insert((org.into(), p.fleet.clone()), fleet);
            }
            Payload::CreateRollout(c) => self.create_rollout(at, org, &c.fleet, c.release, &c.models)?,
            Payload::ApproveRollout(a) => self.approve_rollout(org, &a.rollout),
            Payload::RejectRollout(r) => {
                if let Some(r) = self.rollouts.get_mut(&r.rollout) {
                    r.open = false;
                }
            }
            Payload::AttestInstall(p) => self.install(at, p)?,
            Payload::GrantAccess(g) => {
                let grant = Grant {
                    owner: org.into(),
                    scope: g.scope.clone(),
                    expires_ms: g.expires_ms,
                    revoked: false,
                };
                self.grants.insert(at.hash, grant);
            }
            Payload::PublishOffer(o) => {
                let offer = Offer {
                    owner: org.into(),
                    scope: o.scope.clone(),
                    duration_ms: o.duration_ms,
                };
                self.offers.insert(at.hash, offer);
            }
            Payload::Purchase(p) => {
                if let Some(o) = self.offers.get(&p.offer) {
                    let grant = Grant {
                        owner: o.owner.clone(),
                        scope: o.scope.clone(),
                        expires_ms: at.timestamp_ms.saturating_add(o.duration_ms),
                        revoked: false,
                    };
                    self.grants.insert(at.hash, grant);
                }
            }
            Payload::RevokeAccess(r) => {
                if let Some(g) = self.grants.get_mut(&r.grant) {
                    g.revoked = true;
                }
            }
            Payload::TagDevices(t) => {
                for d in &t.remove {
                    self.tags.remove(&(org.into(), t.tag.clone(), *d));
                }
                for d in &t.add {
                    self.tags.insert((org.into(), t.tag.clone(), *d));
                }
            }
            Payload::KeyRelease(k) => self.key_release(at, org, k)?,
            _ => {}
        }
        Ok(())
    }

    fn publish(&mut self, at: &At, envelope: &[u8], models: &[u32]) -> Result<(), Violation> {
        let id = release_id(envelope).ok_or_else(|| {
            let why = "its SUIT envelope has no SHA-256 manifest digest".to_string();
            violation(Invariant::NoInstallWithoutApprovedRelease, at, "PublishRelease", why)
        })?;
        let release = Release {
            models: models.to_vec(),
            withdrawn: false,
        };
        self.releases.insert(id, release);
        Ok(())
    }

    /// A final rollout must name a logged fleet policy of its owner and a logged release.
    fn create_rollout(
        &mut self,
        at: &At,
        org: &str,
        fleet: &str,
        release: ReleaseId,
        models: &[u32],
    ) -> Result<(), Violation> {
        let fail = |why| violation(Invariant::NoInstallWithoutApprovedRelease, at, "CreateRollout", why);
        let r = self
            .releases
            .get(&release)
            .ok_or_else(|| fail(format!("release {release} was never published before it")))?;
        let policy = self
            .fleets
            .get(&(org.to_string(), fleet.to_string()))
            .ok_or_else(|| fail(format!("{org} set no fleet policy '{fleet}' before it")))?;
        let rollout = Rollout {
            owner: org.into(),
            release,
            models: if models.is_empty() {
                r.models.clone()
            } else {
                models.to_vec()
            },
            approvers: policy.approvers.clone(),
            threshold: policy.threshold,
            require_certified: policy.require_certified,
            approvals: BTreeSet::new(),
            open: true,
        };
        self.rollouts.insert(at.hash, rollout);
        Ok(())
    }

    /// An approval counts if its organisation is one of the rollout's approvers; the one that
    /// reaches the threshold approves the release for the owner's models, provided the release
    /// is live (and certified, when the policy says so) at that point.
    fn approve_rollout(&mut self, org: &str, id: &TxHash) {
        let Some(r) = self.rollouts.get_mut(id) else {
            return;
        };
        if !r.open || !r.approvers.contains(org) {
            return;
        }
        r.approvals.insert(org.into());
        if (r.approvals.len() as u32) < r.threshold {
            return;
        }
        let live = self.releases.get(&r.release).is_some_and(|rel| !rel.withdrawn);
        let certified = !r.require_certified || self.certified.get(&r.release) == Some(&CertStatus::Certified);
        if live && certified {
            r.open = false;
            let models = self.approved.entry((r.release, r.owner.clone())).or_default();
            models.extend(r.models.iter().copied());
        }
    }

    fn install(&mut self, at: &At, p: &AttestInstall) -> Result<(), Violation> {
        let fail = |why| violation(Invariant::NoInstallWithoutApprovedRelease, at, "AttestInstall", why);
        let rollout = self
            .rollouts
            .get(&p.rollout)
            .ok_or_else(|| fail(format!("rollout {} was not created before it", p.rollout)))?;
        let release = self
            .releases
            .get(&rollout.release)
            .ok_or_else(|| fail(format!("release {} was never published before it", rollout.release)))?;
        if release.withdrawn {
            return Err(fail(format!("release {} was withdrawn before it", rollout.release)));
        }
        let device = self
            .devices
            .get(&p.device)
            .ok_or_else(|| fail(format!("device {} was not registered before it", p.device)))?;
        if device.revoked {
            return Err(fail(format!("device {} was revoked before it", p.device)));
        }
        if device.owner != rollout.owner || !rollout.models.contains(&device.model) {
            return Err(fail(format!(
                "device {} ({}, model {}) is not in rollout {} ({}, models {:?})",
                p.device, device.owner, device.model, p.rollout, rollout.owner, rollout.models
            )));
        }
        let approved = self
            .approved
            .get(&(rollout.release, device.owner.clone()))
            .is_some_and(|models| models.contains(&device.model));
        if !approved {
            return Err(fail(format!(
                "no rollout of release {} reached its approval threshold for {} model {} before it",
                rollout.release, device.owner, device.model
            )));
        }
        self.installed.insert(p.device, (rollout.release, at.hash));
        self.installs += 1;
        Ok(())
    }

    fn key_release(&mut self, at: &At, org: &str, k: &KeyRelease) -> Result<(), Violation> {
        let fail = |why| violation(Invariant::NoKeyReleaseWithoutRecord, at, "KeyRelease", why);
        let grant = self
            .grants
            .get(&k.grant)
            .ok_or_else(|| fail(format!("no GrantAccess or Purchase {} before it", k.grant)))?;
        if grant.revoked {
            return Err(fail(format!("grant {} was revoked before it", k.grant)));
        }
        if at.timestamp_ms >= grant.expires_ms {
            return Err(fail(format!(
                "grant {} expired at {} ms, the release is at {} ms",
                k.grant, grant.expires_ms, at.timestamp_ms
            )));
        }
        if grant.owner != org {
            return Err(fail(format!(
                "released by {org}; grant {} is {}'s",
                k.grant, grant.owner
            )));
        }
        let listed = grant.scope.devices.contains(&k.device);
        let tagged = grant
            .scope
            .tags
            .iter()
            .any(|t| self.tags.contains(&(grant.owner.clone(), t.clone(), k.device)));
        if !listed && !tagged {
            return Err(fail(format!("grant {} does not cover device {}", k.grant, k.device)));
        }
        let owned = self
            .devices
            .get(&k.device)
            .is_some_and(|d| !d.revoked && d.owner == grant.owner);
        if !owned {
            return Err(fail(format!(
                "device {} is not a live device of {} (the grant's owner)",
                k.device, grant.owner
            )));
        }
        self.key_releases += 1;
        Ok(())
    }

    /// The final state's fleet version map (`fw/installed/<device>` entries, as stored) against
    /// the log: each entry names a logged release and the device's last logged install of it,
    /// and every logged install left its entry.
    pub fn check_installed(&self, index: usize, entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Violation> {
        let fail = |why: String| {
            (
                Invariant::NoInstallWithoutApprovedRelease,
                format!("validator {index}: {why}"),
            )
        };
        for (key_bytes, value) in entries {
            let key = String::from_utf8_lossy(key_bytes);
            let entry = InstalledFirmware::from_cbor(value, Limits::STATE)
                .map_err(|e| fail(format!("state entry {key} does not decode: {e}")))?;
            if !self.releases.contains_key(&entry.release) {
                return Err(fail(format!("{key} names release {}, never published", entry.release)));
            }
            let logged = self
                .installed
                .iter()
                .any(|(device, install)| installed_key(device) == *key_bytes && *install == (entry.release, entry.tx));
            if !logged {
                return Err(fail(format!(
                    "{key} (release {}, transaction {}) is not the device's last logged install",
                    entry.release, entry.tx
                )));
            }
        }
        if entries.len() != self.installed.len() {
            return Err(fail(format!(
                "{} devices have installs in the log, {} in the fleet version map",
                self.installed.len(),
                entries.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::story::{self, Fixture};
    use crate::world::sign;

    /// A hand-built log: each entry is (signer, payload), one per block, block `h` stamped
    /// `1000 h` ms. Returns the transaction hashes and the first violation.
    fn run(log: &mut Provenance, txs: Vec<(&str, Payload)>) -> (Vec<TxHash>, Result<(), Violation>) {
        let mut hashes = Vec::new();
        for (i, (org, payload)) in txs.into_iter().enumerate() {
            let bytes = sign(org, i as u64 + 1, payload);
            let at = At {
                height: i as u64 + 1,
                timestamp_ms: 1000 * (i as u64 + 1),
                hash: TxHash::of(&bytes),
            };
            hashes.push(at.hash);
            let tx = SignedTx::from_cbor(&bytes, Limits::TX).expect("signed tx decodes");
            if let Err(v) = log.apply(&at, &tx) {
                return (hashes, Err(v));
            }
        }
        (hashes, Ok(()))
    }

    /// A placeholder hash standing for "the transaction at `index` of this log" (resolved by
    /// the test: hashes depend on the whole transaction).
    fn h(n: u8) -> TxHash {
        TxHash([n; 32])
    }

    fn expect(result: Result<(), Violation>, want: Option<Invariant>, case: &str) {
        match (result, want) {
            (Ok(()), None) => {}
            (Err((got, detail)), Some(want)) => assert_eq!(got, want, "{case}: {detail}"),
            (got, want) => panic!("{case}: got {got:?}, want {want:?}"),
        }
    }

    /// Logs up to a registered chip 0 of `city`: CA proposal, registration.
    fn with_chip() -> Vec<(&'static str, Payload)> {
        let fx = Fixture::get();
        vec![("city", fx.propose_ca()), ("maker", fx.register(0))]
    }

    #[test]
    fn key_releases_need_a_grant_in_force() {
        let fx = Fixture::get();
        let chip = fx.chips[0].id;
        let other = fx.chips[1].id;
        // (case, grant expiry, revoke before the release?, releasing org, device, violation)
        type Case = (&'static str, u64, bool, &'static str, DeviceId, Option<Invariant>);
        let bad = Some(Invariant::NoKeyReleaseWithoutRecord);
        let cases: [Case; 5] = [
            ("grant in force", 1_000_000, false, "city", chip, None),
            ("grant revoked before the release", 1_000_000, true, "city", chip, bad),
            (
                "grant expired at the release's block time",
                4_500,
                false,
                "city",
                chip,
                bad,
            ),
            (
                "released by another organisation",
                1_000_000,
                false,
                "vendor",
                chip,
                bad,
            ),
            ("device not covered", 1_000_000, false, "city", other, bad),
        ];
        for (case, expires, revoke, releaser, device, want) in cases {
            let mut txs = with_chip();
            txs.push(("maker", fx.register(1)));
            txs.push(("city", story::grant("buyer", &[chip], expires)));
            let mut log = Provenance::default();
            let (hashes, r) = run(&mut log, txs.clone());
            r.unwrap();
            let grant = hashes[3];
            if revoke {
                let revoke = Payload::RevokeAccess(chipledger_types::access_tx::RevokeAccess {
                    grant,
                    reason: "study over".into(),
                });
                txs.push(("city", revoke));
            }
            txs.push((releaser, fx.key_release(grant, device)));
            let mut log = Provenance::default();
            let (_, r) = run(&mut log, txs);
            expect(r, want, case);
            assert_eq!(log.key_releases, u64::from(want.is_none()), "{case}");
        }
        // No grant at all: the release names a registration.
        let mut log = Provenance::default();
        let (hashes, r) = run(&mut log, with_chip());
        r.unwrap();
        let (_, r) = run(&mut log, vec![("city", fx.key_release(hashes[1], chip))]);
        expect(r, bad, "no grant");
    }

    /// Steps of a firmware log, named so a case can leave one out or reorder.
    #[derive(Clone, Copy, PartialEq, Debug)]
    enum Fw {
        Publish,
        Policy,
        Rollout,
        Certify,
        ApproveCity,
        ApproveAudit,
        ApproveVendor,
        Install,
    }

    fn firmware_log(steps: &[Fw]) -> (Provenance, Result<(), Violation>) {
        let fx = Fixture::get();
        let release = &fx.releases[0];
        let mut log = Provenance::default();
        let (hashes, r) = run(&mut log, with_chip());
        r.unwrap();
        let registered = hashes[1];
        // The rollout's id is the hash of the CreateRollout transaction: sign it as it will be
        // logged (the position in `run` decides its sequence number and so its hash).
        let mut rollout = h(0);
        let mut result = Ok(());
        for (i, step) in steps.iter().enumerate() {
            let seq = i as u64 + 1;
            let (org, payload) = match step {
                Fw::Publish => ("vendor", release.publish()),
                Fw::Policy => ("city", story::fleet_policy()),
                Fw::Rollout => ("city", story::create_rollout(release.id)),
                Fw::Certify => ("audit", story::certify(release.id)),
                Fw::ApproveCity => ("city", story::approve_rollout(rollout)),
                Fw::ApproveAudit => ("audit", story::approve_rollout(rollout)),
                Fw::ApproveVendor => ("vendor", story::approve_rollout(rollout)),
                Fw::Install => ("city", fx.chips[0].install(rollout, release, &registered.0, 1)),
            };
            let bytes = sign(org, seq, payload);
            let at = At {
                height: 10 + seq,
                timestamp_ms: 10_000 + seq,
                hash: TxHash::of(&bytes),
            };
            if *step == Fw::Rollout {
                rollout = at.hash;
            }
            let tx = SignedTx::from_cbor(&bytes, Limits::TX).expect("signed tx decodes");
            result = log.apply(&at, &tx);
            if result.is_err() {
                break;
            }
        }
        (log, result)
    }

    #[test]
    fn installs_need_a_logged_approved_release() {
        use Fw::*;
        let bad = Some(Invariant::NoInstallWithoutApprovedRelease);
        let cases: [(&str, &[Fw], Option<Invariant>); 7] = [
            (
                "published, certified, approved by city and audit",
                &[Publish, Policy, Rollout, Certify, ApproveCity, ApproveAudit, Install],
                None,
            ),
            ("install with no rollout or release", &[Install], bad),
            (
                "approvals below the threshold",
                &[Publish, Policy, Rollout, Certify, ApproveCity, Install],
                bad,
            ),
            (
                "an approval by an organisation not among the approvers does not count",
                &[Publish, Policy, Rollout, Certify, ApproveCity, ApproveVendor, Install],
                bad,
            ),
            (
                "threshold reached before certification (required by the policy)",
                &[Publish, Policy, Rollout, ApproveCity, ApproveAudit, Certify, Install],
                bad,
            ),
            ("rollout of a release not yet published", &[Policy, Rollout], bad),
            (
                "install before its rollout",
                &[Publish, Policy, Install, Rollout, Certify, ApproveCity, ApproveAudit],
                bad,
            ),
        ];
        for (case, steps, want) in cases {
            let (log, r) = firmware_log(steps);
            expect(r, want, case);
            assert_eq!(log.installs, u64::from(want.is_none()), "{case}");
        }
    }

    #[test]
    fn the_version_map_must_match_the_logged_installs() {
        use Fw::*;
        let (log, r) = firmware_log(&[Publish, Policy, Rollout, Certify, ApproveCity, ApproveAudit, Install]);
        r.unwrap();
        let (device, (release, tx)) = log.installed.iter().next().map(|(d, i)| (*d, *i)).unwrap();
        let entry = |release, tx| {
            let e = InstalledFirmware {
                release,
                version: "2.1.0".into(),
                security_version: 5,
                height: 17,
                tx,
            };
            (
                format!("fw/installed/{device}").into_bytes(),
                chipledger_types::cbor::Encode::to_cbor(&e),
            )
        };
        log.check_installed(0, &[entry(release, tx)]).unwrap();
        let bad = Invariant::NoInstallWithoutApprovedRelease;
        let unlogged = Fixture::get().unpublished.id;
        assert_eq!(log.check_installed(0, &[entry(unlogged, tx)]).unwrap_err().0, bad);
        assert_eq!(log.check_installed(0, &[entry(release, h(7))]).unwrap_err().0, bad);
        assert_eq!(
            log.check_installed(0, &[]).unwrap_err().0,
            bad,
            "an install left no entry"
        );
    }
}
