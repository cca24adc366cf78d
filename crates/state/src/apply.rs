//! `apply`: the only place ledger rules live.

use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::{CaId, DeviceId, RevokeReason};
use chipledger_types::genesis::Genesis;
use chipledger_types::keys::{PublicKey, SignatureError};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, SignedTx, ThresholdKind, TxHash};

use crate::access::{self, AccessEvent};
use crate::command::{self, CommandEvent};
use crate::data::{self, DataEvent};
use crate::device;
use crate::error::TxError;
use crate::firmware::{self, FirmwareEvent};
use crate::model::*;
use crate::store::{Overlay, StateRead, WriteSet};
use crate::zk::{self, ZkEvent};

/// How far ahead of the current height a transaction's expiry may be (bounds mempool life).
pub const MAX_EXPIRY_AHEAD_BLOCKS: u64 = 1_000_000;

/// What a block gives every transaction in it. Deterministic: the same for every validator.
#[derive(Clone, Debug)]
pub struct BlockContext<'a> {
    pub chain_id: &'a str,
    pub height: u64,
    pub timestamp_ms: u64,
}

/// Signature verification, injectable so a node can skip re-verifying a transaction whose
/// exact bytes it already verified (the hash covers body and signature).
pub trait SignatureCheck {
    fn check(&self, tx_hash: &TxHash, tx: &SignedTx, key: &PublicKey) -> Result<(), SignatureError>;
}

/// Always verifies.
pub struct VerifyAll;
impl SignatureCheck for VerifyAll {
    fn check(&self, _: &TxHash, tx: &SignedTx, key: &PublicKey) -> Result<(), SignatureError> {
        tx.verify_with(key)
    }
}

/// What happened, for receipts, the API and the explorer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A firmware flow (issue 4).
    Firmware(FirmwareEvent),
    /// A data-at-source flow (issue 5).
    Data(DataEvent),
    /// An authorized-command flow: authorizations, commands, device receipts (issue 6).
    Command(CommandEvent),
    /// An access flow: grants, key releases, offers, purchases, credits (issue 6).
    Access(AccessEvent),
    /// A range proof over a device-signed reading commitment was published (issue 6).
    Zk(ZkEvent),
    ProposalCreated {
        id: TxHash,
        action: &'static str,
    },
    ProposalApproved {
        id: TxHash,
        org: String,
        approvals: u32,
        threshold: u32,
    },
    ProposalExecuted {
        id: TxHash,
        action: &'static str,
    },
    StatementRecorded {
        org: String,
        topic: String,
    },
    DeviceRegistered {
        device: DeviceId,
        owner: String,
    },
    TransferOffered {
        device: DeviceId,
        to: String,
    },
    TransferAccepted {
        device: DeviceId,
        from: String,
        to: String,
        /// The accept carried a valid proof of presence signed by the device's DeviceID key.
        device_proof: bool,
    },
    DeviceAttested {
        device: DeviceId,
    },
    DeviceRevoked {
        device: DeviceId,
        reason: RevokeReason,
    },
    /// A governance proposal registering a manufacturer CA executed.
    ManufacturerCaAdded {
        ca: CaId,
        org: String,
    },
    /// A governance proposal revoking a manufacturer CA executed.
    ManufacturerCaRevoked {
        ca: CaId,
        org: String,
        reason: String,
    },
}

/// Writes collected while applying one transaction; merged into the block only on success.
pub(crate) struct TxState<'a> {
    base: Overlay<'a>,
    writes: WriteSet,
}

impl TxState<'_> {
    pub(crate) fn view(&self) -> Overlay<'_> {
        Overlay {
            base: &self.base,
            writes: &self.writes,
        }
    }
    pub(crate) fn put<T: Encode>(&mut self, key: Vec<u8>, value: &T) {
        self.writes.insert(key, Some(value.to_cbor()));
    }
    /// Remove `key` from the state.
    pub(crate) fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

/// Apply one encoded transaction on top of `base` + `block_writes`. On success its writes are
/// merged into `block_writes` and its events returned; on error nothing changes.
pub fn apply_tx(
    base: &dyn StateRead,
    block_writes: &mut WriteSet,
    ctx: &BlockContext<'_>,
    sigs: &dyn SignatureCheck,
    tx_bytes: &[u8],
) -> Result<Vec<Event>, TxError> {
    let tx = SignedTx::from_bytes(tx_bytes)?;
    let hash = TxHash::of(tx_bytes);
    let mut st = TxState {
        base: Overlay {
            base,
            writes: block_writes,
        },
        writes: WriteSet::new(),
    };
    authenticate(&mut st, ctx, sigs, &hash, &tx)?;
    let events = match &tx.body.payload {
        Payload::Propose(action) => propose(&mut st, ctx, &hash, &tx.body.org, action)?,
        Payload::Approve { proposal } => approve(&mut st, ctx, proposal, &tx.body.org)?,
        Payload::Statement { topic, .. } => {
            vec![Event::StatementRecorded {
                org: tx.body.org.clone(),
                topic: topic.clone(),
            }]
        }
        Payload::RegisterDevice(p) => device::register(&mut st, ctx, &hash, &tx.body.org, p)?,
        Payload::OfferTransfer(p) => device::offer(&mut st, &hash, &tx.body.org, p)?,
        Payload::AcceptTransfer(p) => device::accept(&mut st, ctx, &hash, &tx.body.org, p)?,
        Payload::Attest(p) => device::attest(&mut st, ctx, &hash, p)?,
        Payload::RevokeDevice(p) => device::revoke(&mut st, ctx, &hash, &tx.body.org, p)?,
        p @ (Payload::RegisterFirmwareKey(_)
        | Payload::RevokeFirmwareKey(_)
        | Payload::PublishRelease(_)
        | Payload::WithdrawRelease(_)
        | Payload::Certify(_)
        | Payload::ReportVulnerability(_)
        | Payload::SetFleetPolicy(_)
        | Payload::CreateRollout(_)
        | Payload::ApproveRollout(_)
        | Payload::RejectRollout(_)
        | Payload::ControlRollout(_)
        | Payload::ReportProgress(_)
        | Payload::AttestInstall(_)) => firmware::apply(&mut st, ctx, &hash, &tx.body.org, p)?,
        p @ (Payload::RegisterGateway(_)
        | Payload::CommitBatch(_)
        | Payload::ReportChainAnomaly(_)
        | Payload::RequestRebirth(_)) => data::apply(&mut st, ctx, &hash, &tx.body.org, p)?,
        p @ (Payload::Authorize(_)
        | Payload::RevokeAuthorization(_)
        | Payload::RecordCommand(_)
        | Payload::AccessReceipt(_)) => command::apply(&mut st, ctx, &hash, &tx.body.org, p)?,
        p @ Payload::PublishRangeProof(_) => zk::apply(&mut st, ctx, &hash, &tx.body.org, p)?,
        p @ (Payload::GrantAccess(_)
        | Payload::RevokeAccess(_)
        | Payload::KeyRelease(_)
        | Payload::PublishOffer(_)
        | Payload::WithdrawOffer(_)
        | Payload::Purchase(_)
        | Payload::TagDevices(_)) => access::apply(&mut st, ctx, &hash, &tx.body.org, p)?,
    };
    let writes = st.writes;
    block_writes.extend(writes);
    Ok(events)
}

/// Chain, expiry, organisation, key, signature and replay checks; records the sequence number.
fn authenticate(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    sigs: &dyn SignatureCheck,
    hash: &TxHash,
    tx: &SignedTx,
) -> Result<(), TxError> {
    let b = &tx.body;
    if b.chain_id != ctx.chain_id {
        return Err(TxError::WrongChain {
            expected: ctx.chain_id.into(),
            found: b.chain_id.clone(),
        });
    }
    if b.expiry_height < ctx.height {
        return Err(TxError::Expired {
            expiry_height: b.expiry_height,
            height: ctx.height,
        });
    }
    if b.expiry_height - ctx.height > MAX_EXPIRY_AHEAD_BLOCKS {
        return Err(TxError::ExpiryTooFar {
            expiry_height: b.expiry_height,
            height: ctx.height,
            max_ahead: MAX_EXPIRY_AHEAD_BLOCKS,
        });
    }
    let org = active_org(&st.view(), &b.org)?;
    let entry = org.key(&b.key_id).ok_or(TxError::UnknownKey {
        org: b.org.clone(),
        key_id: b.key_id,
    })?;
    if !entry.active_at(ctx.height) {
        return Err(TxError::KeyNotActive {
            org: b.org.clone(),
            key_id: b.key_id,
            height: ctx.height,
            from: entry.from_height,
            until: entry.until_height,
        });
    }
    sigs.check(hash, tx, &entry.key).map_err(TxError::BadSignature)?;
    let last = get_seq(&st.view(), &b.org)?;
    if b.seq <= last {
        return Err(TxError::Replay {
            org: b.org.clone(),
            seq: b.seq,
            last,
        });
    }
    if b.seq != last + 1 {
        return Err(TxError::SeqGap {
            org: b.org.clone(),
            seq: b.seq,
            expected: last + 1,
        });
    }
    st.put(seq_key(&b.org), &Seq(b.seq));
    Ok(())
}

pub(crate) fn active_org(s: &dyn StateRead, name: &str) -> Result<OrgRecord, TxError> {
    let org = get_org(s, name)?.ok_or_else(|| TxError::UnknownOrg(name.into()))?;
    if org.removed_height.is_some() {
        return Err(TxError::OrgRemoved(name.into()));
    }
    Ok(org)
}

fn active_org_count(s: &dyn StateRead) -> Result<u32, TxError> {
    Ok(org_names(s)?.len() as u32)
}

fn propose(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    id: &TxHash,
    org: &str,
    action: &GovAction,
) -> Result<Vec<Event>, TxError> {
    check_action(&st.view(), ctx, action)?;
    let policy = get_policy(&st.view())?;
    let record = ProposalRecord {
        action: action.clone(),
        proposer: org.into(),
        created_height: ctx.height,
        expires_height: ctx.height.saturating_add(policy.proposal_ttl_blocks),
        approvals: vec![org.into()],
        executed_height: None,
    };
    let mut events = vec![Event::ProposalCreated {
        id: *id,
        action: action.name(),
    }];
    events.extend(record_approval(st, ctx, id, record, org, policy.governance_threshold)?);
    Ok(events)
}

fn approve(st: &mut TxState<'_>, ctx: &BlockContext<'_>, id: &TxHash, org: &str) -> Result<Vec<Event>, TxError> {
    let mut record = get_proposal(&st.view(), id)?.ok_or(TxError::UnknownProposal(*id))?;
    if record.executed_height.is_some() {
        return Err(TxError::ProposalExecuted(*id));
    }
    if ctx.height > record.expires_height {
        return Err(TxError::ProposalExpired {
            id: *id,
            expired_at: record.expires_height,
        });
    }
    if record.approvals.iter().any(|a| a == org) {
        return Err(TxError::DuplicateApproval {
            org: org.into(),
            id: *id,
        });
    }
    record.approvals.push(org.into());
    record.approvals.sort();
    let threshold = get_policy(&st.view())?.governance_threshold;
    record_approval(st, ctx, id, record, org, threshold)
}

/// Store the proposal with its approvals; execute it when the threshold is reached. Approvals
/// of organisations removed since they approved do not count.
fn record_approval(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    id: &TxHash,
    mut record: ProposalRecord,
    org: &str,
    threshold: u32,
) -> Result<Vec<Event>, TxError> {
    let active = org_names(&st.view())?;
    let approvals = record.approvals.iter().filter(|a| active.contains(a)).count() as u32;
    let mut events = vec![Event::ProposalApproved {
        id: *id,
        org: org.into(),
        approvals,
        threshold,
    }];
    if approvals >= threshold {
        check_action(&st.view(), ctx, &record.action)?;
        let effects = execute(st, ctx, id, &record.proposer, &record.action)?;
        record.executed_height = Some(ctx.height);
        events.push(Event::ProposalExecuted {
            id: *id,
            action: record.action.name(),
        });
        events.extend(effects);
    }
    st.put(proposal_key(id), &record);
    Ok(events)
}

/// Would `action` be valid now? Checked when proposed and again when executed.
fn check_action(s: &dyn StateRead, ctx: &BlockContext<'_>, action: &GovAction) -> Result<(), TxError> {
    match action {
        GovAction::AddOrg(spec) => check_add_org(s, spec),
        GovAction::RemoveOrg { org } => {
            active_org(s, org)?;
            let runs_validator = validator_names(s)?
                .iter()
                .filter_map(|v| get_validator(s, v).ok().flatten())
                .any(|v| v.org == *org);
            if runs_validator {
                return Err(TxError::CannotRemove {
                    org: org.clone(),
                    why: "it runs a validator",
                });
            }
            if active_org_count(s)? <= get_policy(s)?.governance_threshold {
                return Err(TxError::CannotRemove {
                    org: org.clone(),
                    why: "fewer organisations than the governance threshold would remain",
                });
            }
            Ok(())
        }
        GovAction::RotateOrgKey {
            org,
            old,
            new,
            effective_height,
        } => {
            let rec = active_org(s, org)?;
            let entry = rec.key(old).ok_or(TxError::UnknownKey {
                org: org.clone(),
                key_id: *old,
            })?;
            if entry.until_height.is_some() {
                return Err(TxError::Invalid("the key to replace is already being retired"));
            }
            if rec.key(&new.id()).is_some() {
                return Err(TxError::DuplicateKey(new.id()));
            }
            future_height(*effective_height, ctx)
        }
        GovAction::RotateValidatorKey {
            validator,
            new,
            effective_height,
        } => {
            get_validator(s, validator)?.ok_or_else(|| TxError::UnknownValidator(validator.clone()))?;
            if !matches!(new, PublicKey::Ed25519(_)) {
                return Err(TxError::Invalid("validator cosigning keys must be Ed25519"));
            }
            future_height(*effective_height, ctx)
        }
        GovAction::SetThreshold {
            kind: ThresholdKind::Governance,
            value,
        } => {
            let orgs = active_org_count(s)?;
            if *value == 0 || *value > orgs {
                return Err(TxError::BadThreshold { value: *value, orgs });
            }
            Ok(())
        }
        GovAction::AddManufacturerCa(a) => device::check_add_ca(s, ctx, a).map(|_: CaId| ()),
        GovAction::RevokeManufacturerCa(a) => device::check_revoke_ca(s, a).map(|_| ()),
        GovAction::IssueCredits { org, amount } => access::check_issue_credits(s, org, *amount).map(|_| ()),
    }
}

fn future_height(effective_height: u64, ctx: &BlockContext<'_>) -> Result<(), TxError> {
    if effective_height <= ctx.height {
        return Err(TxError::EffectiveHeightPast {
            effective_height,
            height: ctx.height,
        });
    }
    Ok(())
}

fn check_add_org(s: &dyn StateRead, spec: &OrgSpec) -> Result<(), TxError> {
    if get_org(s, &spec.name)?.is_some() {
        return Err(TxError::OrgExists(spec.name.clone()));
    }
    if org_names(s)?.len() >= chipledger_types::limits::MAX_ORGS {
        return Err(TxError::Invalid(
            "the network already has the maximum number of organisations",
        ));
    }
    Ok(())
}

/// Execute `action`; returns the events of its effects (beyond `ProposalExecuted`).
fn execute(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    id: &TxHash,
    proposer: &str,
    action: &GovAction,
) -> Result<Vec<Event>, TxError> {
    match action {
        GovAction::AddOrg(spec) => {
            let mut names = org_names(&st.view())?;
            names.push(spec.name.clone());
            names.sort();
            st.put(KEY_ORG_INDEX.to_vec(), &NameList(names));
            st.put(org_key(&spec.name), &new_org(spec, ctx.height));
        }
        GovAction::RemoveOrg { org } => {
            let mut rec = active_org(&st.view(), org)?;
            rec.removed_height = Some(ctx.height);
            let names: Vec<String> = org_names(&st.view())?.into_iter().filter(|n| n != org).collect();
            st.put(KEY_ORG_INDEX.to_vec(), &NameList(names));
            st.put(org_key(org), &rec);
        }
        GovAction::RotateOrgKey {
            org,
            old,
            new,
            effective_height,
        } => {
            let mut rec = active_org(&st.view(), org)?;
            for k in rec.keys.iter_mut().filter(|k| k.key.id() == *old) {
                k.until_height = Some(*effective_height);
            }
            rec.keys.push(KeyEntry {
                key: *new,
                from_height: *effective_height,
                until_height: None,
            });
            st.put(org_key(org), &rec);
        }
        GovAction::RotateValidatorKey {
            validator,
            new,
            effective_height,
        } => {
            let mut rec =
                get_validator(&st.view(), validator)?.ok_or_else(|| TxError::UnknownValidator(validator.clone()))?;
            rec.note_keys.push((*new, *effective_height));
            st.put(validator_key(validator), &rec);
        }
        GovAction::SetThreshold {
            kind: ThresholdKind::Governance,
            value,
        } => {
            let mut policy = get_policy(&st.view())?;
            policy.governance_threshold = *value;
            st.put(KEY_POLICY.to_vec(), &StoredPolicy(policy));
        }
        GovAction::AddManufacturerCa(a) => return device::execute_add_ca(st, ctx, a).map(|e| vec![e]),
        GovAction::RevokeManufacturerCa(a) => return device::execute_revoke_ca(st, ctx, a).map(|e| vec![e]),
        GovAction::IssueCredits { org, amount } => {
            return access::execute_issue_credits(st, ctx, id, proposer, org, *amount).map(|e| vec![e]);
        }
    }
    Ok(Vec::new())
}

fn new_org(spec: &OrgSpec, height: u64) -> OrgRecord {
    OrgRecord {
        name: spec.name.clone(),
        roles: spec.roles.clone(),
        keys: spec
            .keys
            .iter()
            .map(|k| KeyEntry {
                key: *k,
                from_height: height,
                until_height: None,
            })
            .collect(),
        added_height: height,
        removed_height: None,
    }
}

/// The state written by genesis (height 0).
pub fn genesis_writes(genesis: &Genesis) -> WriteSet {
    let mut w = WriteSet::new();
    let mut put = |k: Vec<u8>, v: Vec<u8>| {
        w.insert(k, Some(v));
    };
    let mut org_names: Vec<String> = genesis.orgs.iter().map(|o| o.name.clone()).collect();
    org_names.sort();
    put(KEY_ORG_INDEX.to_vec(), NameList(org_names).to_cbor());
    for spec in &genesis.orgs {
        put(org_key(&spec.name), new_org(spec, 0).to_cbor());
    }
    let mut names = Vec::new();
    for (i, v) in genesis.validators.iter().enumerate() {
        names.push(v.name.clone());
        let rec = ValidatorRecord {
            name: v.name.clone(),
            org: v.org.clone(),
            index: i as u32,
            consensus_key: v.consensus_key,
            note_keys: vec![(v.note_key, 0)],
        };
        put(validator_key(&v.name), rec.to_cbor());
    }
    names.sort();
    put(KEY_VALIDATOR_INDEX.to_vec(), NameList(names).to_cbor());
    put(KEY_POLICY.to_vec(), StoredPolicy(genesis.policy.clone()).to_cbor());
    w
}
