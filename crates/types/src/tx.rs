//! The transaction envelope and the payloads of the ledger core.
//!
//! A [`SignedTx`] is `[body, signature]`; the body names the signing organisation, the key it
//! signed with, a per-organisation sequence number (contiguous: exactly one more than the
//! organisation's last; a used or lower number is a replay), the height after which the transaction expires, and the payload.
//! The signature covers `TAG_TX_V1 ‖ 0x00 ‖ CBOR(body)`.

use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::access_tx::{GrantAccess, KeyRelease, PublishOffer, Purchase, RevokeAccess, TagDevices, WithdrawOffer};
use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits, decode_list, encode_list};
use crate::command_tx::{AccessReceipt, Authorize, RecordCommand, RevokeAuthorization};
use crate::data_tx::{CommitBatch, RegisterGateway, ReportChainAnomaly, RequestRebirth};
use crate::device_tx::{
    AcceptTransfer, AddManufacturerCa, Attest, Fields, OfferTransfer, RegisterDevice, RevokeDevice,
    RevokeManufacturerCa, encode_tagged,
};
use crate::firmware_tx::{
    ApproveRollout, AttestInstall, Certify, ControlRollout, CreateRollout, PublishRelease, RegisterFirmwareKey,
    RejectRollout, ReportProgress, ReportVulnerability, RevokeFirmwareKey, SetFleetPolicy, WithdrawRelease,
};
use crate::keys::{KeyId, PublicKey, Signature, SigningKey, TAG_TX_V1};
use crate::limits::*;
use crate::zk_tx::PublishRangeProof;

/// 32-byte SHA-256 of an encoded [`SignedTx`]: its identity everywhere (API, index, approvals).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxHash(pub [u8; 32]);

impl TxHash {
    pub fn of(encoded_tx: &[u8]) -> Self {
        TxHash(Sha256::digest(encoded_tx).into())
    }
}

impl core::fmt::Display for TxHash {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// What an organisation does in the network (DESIGN.md "Who uses it").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Role {
    Manufacturer = 1,
    Owner = 2,
    Publisher = 3,
    Auditor = 4,
    Consumer = 5,
    Operator = 6,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Manufacturer,
        Role::Owner,
        Role::Publisher,
        Role::Auditor,
        Role::Consumer,
        Role::Operator,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Role::Manufacturer => "manufacturer",
            Role::Owner => "owner",
            Role::Publisher => "publisher",
            Role::Auditor => "auditor",
            Role::Consumer => "consumer",
            Role::Operator => "operator",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl Encode for Role {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for Role {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        Role::ALL
            .into_iter()
            .find(|r| *r as u64 == v)
            .ok_or(DecodeError::UnknownVariant { what: "role", value: v })
    }
}

/// Check a name used for organisations and validators: 1..=64 bytes of `[a-z0-9-]`, not
/// starting or ending with `-` (so it is safe in URLs, file names and note key names).
pub fn check_name(name: &str) -> Result<(), DecodeError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !ok_chars || name.starts_with('-') || name.ends_with('-') {
        return Err(DecodeError::Invalid {
            what: "name",
            why: "must be 1-64 chars of a-z, 0-9 and '-'",
        });
    }
    Ok(())
}

fn decode_name(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

fn decode_text(d: &mut Decoder<'_>, max: usize) -> Result<String, DecodeError> {
    let s = d.string()?;
    if s.len() > max {
        return Err(DecodeError::TooLong {
            what: "text",
            len: s.len() as u64,
            max,
        });
    }
    Ok(s)
}

/// An organisation as registered in genesis or by an `AddOrg` proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgSpec {
    pub name: String,
    pub roles: Vec<Role>,
    pub keys: Vec<PublicKey>,
}

impl Encode for OrgSpec {
    fn encode(&self, e: &mut Encoder) {
        e.array(3).text(&self.name);
        encode_list(e, &self.roles);
        encode_list(e, &self.keys);
    }
}

impl Decode for OrgSpec {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let name = decode_name(d)?;
        let roles = decode_list(d, MAX_ROLES)?;
        let keys: Vec<PublicKey> = decode_list(d, MAX_ORG_KEYS)?;
        if keys.is_empty() {
            return Err(DecodeError::Invalid {
                what: "organisation",
                why: "needs at least one key",
            });
        }
        d.end();
        Ok(OrgSpec { name, roles, keys })
    }
}

/// Which policy threshold a `SetThreshold` proposal changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ThresholdKind {
    /// Distinct organisations whose approval executes a governance proposal.
    Governance = 1,
}

/// A governance action; executed once a threshold of organisations approved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GovAction {
    /// Register a new organisation.
    AddOrg(OrgSpec),
    /// Remove an organisation: its keys stop being accepted; its history stays.
    RemoveOrg { org: String },
    /// Replace one of an organisation's keys by another from `effective_height` on. The old key
    /// stays valid until then, so a rotation never locks an organisation out.
    RotateOrgKey {
        org: String,
        old: KeyId,
        new: PublicKey,
        effective_height: u64,
    },
    /// Replace a validator's checkpoint-cosigning key from `effective_height` on.
    RotateValidatorKey {
        validator: String,
        new: PublicKey,
        effective_height: u64,
    },
    /// Change a policy threshold.
    SetThreshold { kind: ThresholdKind, value: u32 },
    /// Register a manufacturer CA and grant it hardware-model ranges.
    AddManufacturerCa(AddManufacturerCa),
    /// Move a manufacturer CA to the revoked list.
    RevokeManufacturerCa(RevokeManufacturerCa),
    /// Issue ledger credits (issue 6: an accounting unit, no token) to an organisation.
    IssueCredits { org: String, amount: u64 },
}

const GOV_ADD_ORG: u64 = 1;
const GOV_REMOVE_ORG: u64 = 2;
const GOV_ROTATE_ORG_KEY: u64 = 3;
const GOV_ROTATE_VALIDATOR_KEY: u64 = 4;
const GOV_SET_THRESHOLD: u64 = 5;
const GOV_ADD_MANUFACTURER_CA: u64 = 6;
const GOV_REVOKE_MANUFACTURER_CA: u64 = 7;
const GOV_ISSUE_CREDITS: u64 = 8;

impl GovAction {
    pub fn name(&self) -> &'static str {
        match self {
            GovAction::AddOrg(_) => "add-org",
            GovAction::RemoveOrg { .. } => "remove-org",
            GovAction::RotateOrgKey { .. } => "rotate-org-key",
            GovAction::RotateValidatorKey { .. } => "rotate-validator-key",
            GovAction::SetThreshold { .. } => "set-threshold",
            GovAction::AddManufacturerCa(_) => "add-manufacturer-ca",
            GovAction::RevokeManufacturerCa(_) => "revoke-manufacturer-ca",
            GovAction::IssueCredits { .. } => "issue-credits",
        }
    }
}

impl Encode for GovAction {
    fn encode(&self, e: &mut Encoder) {
        match self {
            GovAction::AddOrg(spec) => {
                e.array(2).uint(GOV_ADD_ORG);
                spec.encode(e);
            }
            GovAction::RemoveOrg { org } => {
                e.array(2).uint(GOV_REMOVE_ORG).text(org);
            }
            GovAction::RotateOrgKey {
                org,
                old,
                new,
                effective_height,
            } => {
                e.array(5).uint(GOV_ROTATE_ORG_KEY).text(org);
                old.encode(e);
                new.encode(e);
                e.uint(*effective_height);
            }
            GovAction::RotateValidatorKey {
                validator,
                new,
                effective_height,
            } => {
                e.array(4).uint(GOV_ROTATE_VALIDATOR_KEY).text(validator);
                new.encode(e);
                e.uint(*effective_height);
            }
            GovAction::SetThreshold { kind, value } => {
                e.array(3)
                    .uint(GOV_SET_THRESHOLD)
                    .uint(*kind as u64)
                    .uint(*value as u64);
            }
            GovAction::AddManufacturerCa(a) => encode_tagged(e, GOV_ADD_MANUFACTURER_CA, a),
            GovAction::RevokeManufacturerCa(a) => encode_tagged(e, GOV_REVOKE_MANUFACTURER_CA, a),
            GovAction::IssueCredits { org, amount } => {
                e.array(3).uint(GOV_ISSUE_CREDITS).text(org).uint(*amount);
            }
        }
    }
}

impl Decode for GovAction {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = d.array()?;
        let tag = d.uint()?;
        let (arity, action) = match tag {
            GOV_ADD_ORG => (2, GovAction::AddOrg(OrgSpec::decode(d)?)),
            GOV_REMOVE_ORG => (2, GovAction::RemoveOrg { org: decode_name(d)? }),
            GOV_ROTATE_ORG_KEY => (
                5,
                GovAction::RotateOrgKey {
                    org: decode_name(d)?,
                    old: KeyId::decode(d)?,
                    new: PublicKey::decode(d)?,
                    effective_height: d.uint()?,
                },
            ),
            GOV_ROTATE_VALIDATOR_KEY => (
                4,
                GovAction::RotateValidatorKey {
                    validator: decode_name(d)?,
                    new: PublicKey::decode(d)?,
                    effective_height: d.uint()?,
                },
            ),
            GOV_SET_THRESHOLD => {
                let kind = match d.uint()? {
                    1 => ThresholdKind::Governance,
                    value => {
                        return Err(DecodeError::UnknownVariant {
                            what: "threshold kind",
                            value,
                        });
                    }
                };
                (3, GovAction::SetThreshold { kind, value: d.u32()? })
            }
            GOV_ADD_MANUFACTURER_CA => (
                1 + AddManufacturerCa::ARITY,
                GovAction::AddManufacturerCa(AddManufacturerCa::decode_fields(d)?),
            ),
            GOV_REVOKE_MANUFACTURER_CA => (
                1 + RevokeManufacturerCa::ARITY,
                GovAction::RevokeManufacturerCa(RevokeManufacturerCa::decode_fields(d)?),
            ),
            GOV_ISSUE_CREDITS => {
                let org = decode_name(d)?;
                let amount = d.uint()?;
                if amount == 0 {
                    return Err(DecodeError::Invalid {
                        what: "credits",
                        why: "amount must be positive",
                    });
                }
                (3, GovAction::IssueCredits { org, amount })
            }
            value => {
                return Err(DecodeError::UnknownVariant {
                    what: "governance action",
                    value,
                });
            }
        };
        if n != arity {
            return Err(DecodeError::WrongArity {
                expected: arity,
                found: n,
            });
        }
        d.end();
        Ok(action)
    }
}

/// What a transaction asks the ledger to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Propose a governance action (counts as the proposer's approval).
    Propose(GovAction),
    /// Approve a pending proposal, named by the hash of the transaction that proposed it.
    Approve { proposal: TxHash },
    /// A signed public statement of an organisation, recorded in the log (audit notes,
    /// announcements). The ledger keeps only the log leaf; nothing else changes.
    Statement { topic: String, body: Vec<u8> },
    /// A manufacturer registers a device (issue 3).
    RegisterDevice(RegisterDevice),
    /// A device's owner offers it to another organisation.
    OfferTransfer(OfferTransfer),
    /// The organisation a device was offered to accepts it.
    AcceptTransfer(AcceptTransfer),
    /// A device's evidence: Alias certificate and EAT.
    Attest(Attest),
    /// A device's owner or manufacturer revokes it.
    RevokeDevice(RevokeDevice),
    /// A publisher registers a firmware-signing key (issue 4).
    RegisterFirmwareKey(RegisterFirmwareKey),
    /// A publisher revokes one of its firmware-signing keys.
    RevokeFirmwareKey(RevokeFirmwareKey),
    /// A publisher publishes a SUIT-signed release.
    PublishRelease(PublishRelease),
    /// A publisher withdraws one of its releases.
    WithdrawRelease(WithdrawRelease),
    /// An auditor certifies (or provisionally certifies, or revokes certification of) a release.
    Certify(Certify),
    /// A publisher or auditor reports releases affected by a CVE.
    ReportVulnerability(ReportVulnerability),
    /// An owner sets a fleet's rollout approval policy.
    SetFleetPolicy(SetFleetPolicy),
    /// A fleet owner creates a rollout of a release.
    CreateRollout(CreateRollout),
    /// A fleet policy approver approves a rollout.
    ApproveRollout(ApproveRollout),
    /// A fleet policy approver rejects a rollout.
    RejectRollout(RejectRollout),
    /// A fleet owner starts, pauses, resumes or cancels a rollout.
    ControlRollout(ControlRollout),
    /// A fleet owner reports a device's LwM2M update progress.
    ReportProgress(ReportProgress),
    /// A device's evidence that it runs a rollout's release.
    AttestInstall(AttestInstall),
    /// An operator registers a gateway name (issue 5).
    RegisterGateway(RegisterGateway),
    /// A gateway commits a batch of device records: Merkle root and chain heads.
    CommitBatch(CommitBatch),
    /// A gateway reports a device record-chain anomaly.
    ReportChainAnomaly(ReportChainAnomaly),
    /// A gateway records a Sparkplug-style rebirth request.
    RequestRebirth(RequestRebirth),
    /// A device owner publishes a range proof over a device-signed reading commitment (issue 6).
    PublishRangeProof(PublishRangeProof),
    /// An owner authorizes a grantee to run actions on its devices (issue 6).
    Authorize(Authorize),
    /// An owner ends an authorization.
    RevokeAuthorization(RevokeAuthorization),
    /// A grantee organisation records a command before sending it.
    RecordCommand(RecordCommand),
    /// A device's signed command receipt, committed by anyone.
    AccessReceipt(AccessReceipt),
    /// An owner grants access to its devices' data (issue 6).
    GrantAccess(GrantAccess),
    /// An owner revokes a grant (future key releases only).
    RevokeAccess(RevokeAccess),
    /// An owner's key service records a key release under a grant.
    KeyRelease(KeyRelease),
    /// An owner publishes a data offer priced in credits.
    PublishOffer(PublishOffer),
    /// An owner withdraws an offer.
    WithdrawOffer(WithdrawOffer),
    /// A consumer buys an offer: credits move and a grant is created atomically.
    Purchase(Purchase),
    /// An owner tags or untags devices.
    TagDevices(TagDevices),
}

const PAYLOAD_PROPOSE: u64 = 1;
const PAYLOAD_APPROVE: u64 = 2;
const PAYLOAD_STATEMENT: u64 = 3;
const PAYLOAD_REGISTER_DEVICE: u64 = 4;
const PAYLOAD_OFFER_TRANSFER: u64 = 5;
const PAYLOAD_ACCEPT_TRANSFER: u64 = 6;
const PAYLOAD_ATTEST: u64 = 7;
const PAYLOAD_REVOKE_DEVICE: u64 = 8;
const PAYLOAD_REGISTER_FIRMWARE_KEY: u64 = 20;
const PAYLOAD_REVOKE_FIRMWARE_KEY: u64 = 21;
const PAYLOAD_PUBLISH_RELEASE: u64 = 22;
const PAYLOAD_WITHDRAW_RELEASE: u64 = 23;
const PAYLOAD_CERTIFY: u64 = 24;
const PAYLOAD_REPORT_VULNERABILITY: u64 = 25;
const PAYLOAD_SET_FLEET_POLICY: u64 = 26;
const PAYLOAD_CREATE_ROLLOUT: u64 = 27;
const PAYLOAD_APPROVE_ROLLOUT: u64 = 28;
const PAYLOAD_REJECT_ROLLOUT: u64 = 29;
const PAYLOAD_CONTROL_ROLLOUT: u64 = 30;
const PAYLOAD_REPORT_PROGRESS: u64 = 31;
const PAYLOAD_ATTEST_INSTALL: u64 = 32;
const PAYLOAD_REGISTER_GATEWAY: u64 = 40;
const PAYLOAD_COMMIT_BATCH: u64 = 41;
const PAYLOAD_REPORT_CHAIN_ANOMALY: u64 = 42;
const PAYLOAD_REQUEST_REBIRTH: u64 = 43;
const PAYLOAD_PUBLISH_RANGE_PROOF: u64 = 70;
const PAYLOAD_AUTHORIZE: u64 = 60;
const PAYLOAD_REVOKE_AUTHORIZATION: u64 = 61;
const PAYLOAD_RECORD_COMMAND: u64 = 62;
const PAYLOAD_ACCESS_RECEIPT: u64 = 63;
const PAYLOAD_GRANT_ACCESS: u64 = 50;
const PAYLOAD_REVOKE_ACCESS: u64 = 51;
const PAYLOAD_KEY_RELEASE: u64 = 52;
const PAYLOAD_PUBLISH_OFFER: u64 = 53;
const PAYLOAD_WITHDRAW_OFFER: u64 = 54;
const PAYLOAD_PURCHASE: u64 = 55;
const PAYLOAD_TAG_DEVICES: u64 = 56;

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Propose(_) => "propose",
            Payload::Approve { .. } => "approve",
            Payload::Statement { .. } => "statement",
            Payload::RegisterDevice(_) => "register-device",
            Payload::OfferTransfer(_) => "offer-transfer",
            Payload::AcceptTransfer(_) => "accept-transfer",
            Payload::Attest(_) => "attest",
            Payload::RevokeDevice(_) => "revoke-device",
            Payload::RegisterFirmwareKey(_) => "register-firmware-key",
            Payload::RevokeFirmwareKey(_) => "revoke-firmware-key",
            Payload::PublishRelease(_) => "publish-release",
            Payload::WithdrawRelease(_) => "withdraw-release",
            Payload::Certify(_) => "certify",
            Payload::ReportVulnerability(_) => "report-vulnerability",
            Payload::SetFleetPolicy(_) => "set-fleet-policy",
            Payload::CreateRollout(_) => "create-rollout",
            Payload::ApproveRollout(_) => "approve-rollout",
            Payload::RejectRollout(_) => "reject-rollout",
            Payload::ControlRollout(_) => "control-rollout",
            Payload::ReportProgress(_) => "report-progress",
            Payload::AttestInstall(_) => "attest-install",
            Payload::RegisterGateway(_) => "register-gateway",
            Payload::CommitBatch(_) => "commit-batch",
            Payload::ReportChainAnomaly(_) => "report-chain-anomaly",
            Payload::RequestRebirth(_) => "request-rebirth",
            Payload::PublishRangeProof(_) => "publish-range-proof",
            Payload::Authorize(_) => "authorize",
            Payload::RevokeAuthorization(_) => "revoke-authorization",
            Payload::RecordCommand(_) => "record-command",
            Payload::AccessReceipt(_) => "access-receipt",
            Payload::GrantAccess(_) => "grant-access",
            Payload::RevokeAccess(_) => "revoke-access",
            Payload::KeyRelease(_) => "key-release",
            Payload::PublishOffer(_) => "publish-offer",
            Payload::WithdrawOffer(_) => "withdraw-offer",
            Payload::Purchase(_) => "purchase",
            Payload::TagDevices(_) => "tag-devices",
        }
    }
}

impl Encode for Payload {
    fn encode(&self, e: &mut Encoder) {
        match self {
            Payload::Propose(action) => {
                e.array(2).uint(PAYLOAD_PROPOSE);
                action.encode(e);
            }
            Payload::Approve { proposal } => {
                e.array(2).uint(PAYLOAD_APPROVE).bytes(&proposal.0);
            }
            Payload::Statement { topic, body } => {
                e.array(3).uint(PAYLOAD_STATEMENT).text(topic).bytes(body);
            }
            Payload::RegisterDevice(p) => encode_tagged(e, PAYLOAD_REGISTER_DEVICE, p),
            Payload::OfferTransfer(p) => encode_tagged(e, PAYLOAD_OFFER_TRANSFER, p),
            Payload::AcceptTransfer(p) => encode_tagged(e, PAYLOAD_ACCEPT_TRANSFER, p),
            Payload::Attest(p) => encode_tagged(e, PAYLOAD_ATTEST, p),
            Payload::RevokeDevice(p) => encode_tagged(e, PAYLOAD_REVOKE_DEVICE, p),
            Payload::RegisterFirmwareKey(p) => encode_tagged(e, PAYLOAD_REGISTER_FIRMWARE_KEY, p),
            Payload::RevokeFirmwareKey(p) => encode_tagged(e, PAYLOAD_REVOKE_FIRMWARE_KEY, p),
            Payload::PublishRelease(p) => encode_tagged(e, PAYLOAD_PUBLISH_RELEASE, p),
            Payload::WithdrawRelease(p) => encode_tagged(e, PAYLOAD_WITHDRAW_RELEASE, p),
            Payload::Certify(p) => encode_tagged(e, PAYLOAD_CERTIFY, p),
            Payload::ReportVulnerability(p) => encode_tagged(e, PAYLOAD_REPORT_VULNERABILITY, p),
            Payload::SetFleetPolicy(p) => encode_tagged(e, PAYLOAD_SET_FLEET_POLICY, p),
            Payload::CreateRollout(p) => encode_tagged(e, PAYLOAD_CREATE_ROLLOUT, p),
            Payload::ApproveRollout(p) => encode_tagged(e, PAYLOAD_APPROVE_ROLLOUT, p),
            Payload::RejectRollout(p) => encode_tagged(e, PAYLOAD_REJECT_ROLLOUT, p),
            Payload::ControlRollout(p) => encode_tagged(e, PAYLOAD_CONTROL_ROLLOUT, p),
            Payload::ReportProgress(p) => encode_tagged(e, PAYLOAD_REPORT_PROGRESS, p),
            Payload::AttestInstall(p) => encode_tagged(e, PAYLOAD_ATTEST_INSTALL, p),
            Payload::RegisterGateway(p) => encode_tagged(e, PAYLOAD_REGISTER_GATEWAY, p),
            Payload::CommitBatch(p) => encode_tagged(e, PAYLOAD_COMMIT_BATCH, p),
            Payload::ReportChainAnomaly(p) => encode_tagged(e, PAYLOAD_REPORT_CHAIN_ANOMALY, p),
            Payload::RequestRebirth(p) => encode_tagged(e, PAYLOAD_REQUEST_REBIRTH, p),
            Payload::PublishRangeProof(p) => encode_tagged(e, PAYLOAD_PUBLISH_RANGE_PROOF, p),
            Payload::Authorize(p) => encode_tagged(e, PAYLOAD_AUTHORIZE, p),
            Payload::RevokeAuthorization(p) => encode_tagged(e, PAYLOAD_REVOKE_AUTHORIZATION, p),
            Payload::RecordCommand(p) => encode_tagged(e, PAYLOAD_RECORD_COMMAND, p),
            Payload::AccessReceipt(p) => encode_tagged(e, PAYLOAD_ACCESS_RECEIPT, p),
            Payload::GrantAccess(p) => encode_tagged(e, PAYLOAD_GRANT_ACCESS, p),
            Payload::RevokeAccess(p) => encode_tagged(e, PAYLOAD_REVOKE_ACCESS, p),
            Payload::KeyRelease(p) => encode_tagged(e, PAYLOAD_KEY_RELEASE, p),
            Payload::PublishOffer(p) => encode_tagged(e, PAYLOAD_PUBLISH_OFFER, p),
            Payload::WithdrawOffer(p) => encode_tagged(e, PAYLOAD_WITHDRAW_OFFER, p),
            Payload::Purchase(p) => encode_tagged(e, PAYLOAD_PURCHASE, p),
            Payload::TagDevices(p) => encode_tagged(e, PAYLOAD_TAG_DEVICES, p),
        }
    }
}

impl Decode for Payload {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = d.array()?;
        let (arity, payload) = match d.uint()? {
            PAYLOAD_PROPOSE => (2, Payload::Propose(GovAction::decode(d)?)),
            PAYLOAD_APPROVE => (
                2,
                Payload::Approve {
                    proposal: TxHash(d.fixed()?),
                },
            ),
            PAYLOAD_STATEMENT => {
                let topic = decode_text(d, MAX_TEXT_BYTES)?;
                let body = d.bytes()?;
                if body.len() > MAX_STATEMENT_BYTES {
                    return Err(DecodeError::TooLong {
                        what: "statement",
                        len: body.len() as u64,
                        max: MAX_STATEMENT_BYTES,
                    });
                }
                (
                    3,
                    Payload::Statement {
                        topic,
                        body: body.to_vec(),
                    },
                )
            }
            PAYLOAD_REGISTER_DEVICE => fields(d, Payload::RegisterDevice)?,
            PAYLOAD_OFFER_TRANSFER => fields(d, Payload::OfferTransfer)?,
            PAYLOAD_ACCEPT_TRANSFER => fields(d, Payload::AcceptTransfer)?,
            PAYLOAD_ATTEST => fields(d, Payload::Attest)?,
            PAYLOAD_REVOKE_DEVICE => fields(d, Payload::RevokeDevice)?,
            PAYLOAD_REGISTER_FIRMWARE_KEY => fields(d, Payload::RegisterFirmwareKey)?,
            PAYLOAD_REVOKE_FIRMWARE_KEY => fields(d, Payload::RevokeFirmwareKey)?,
            PAYLOAD_PUBLISH_RELEASE => fields(d, Payload::PublishRelease)?,
            PAYLOAD_WITHDRAW_RELEASE => fields(d, Payload::WithdrawRelease)?,
            PAYLOAD_CERTIFY => fields(d, Payload::Certify)?,
            PAYLOAD_REPORT_VULNERABILITY => fields(d, Payload::ReportVulnerability)?,
            PAYLOAD_SET_FLEET_POLICY => fields(d, Payload::SetFleetPolicy)?,
            PAYLOAD_CREATE_ROLLOUT => fields(d, Payload::CreateRollout)?,
            PAYLOAD_APPROVE_ROLLOUT => fields(d, Payload::ApproveRollout)?,
            PAYLOAD_REJECT_ROLLOUT => fields(d, Payload::RejectRollout)?,
            PAYLOAD_CONTROL_ROLLOUT => fields(d, Payload::ControlRollout)?,
            PAYLOAD_REPORT_PROGRESS => fields(d, Payload::ReportProgress)?,
            PAYLOAD_ATTEST_INSTALL => fields(d, Payload::AttestInstall)?,
            PAYLOAD_REGISTER_GATEWAY => fields(d, Payload::RegisterGateway)?,
            PAYLOAD_COMMIT_BATCH => fields(d, Payload::CommitBatch)?,
            PAYLOAD_REPORT_CHAIN_ANOMALY => fields(d, Payload::ReportChainAnomaly)?,
            PAYLOAD_REQUEST_REBIRTH => fields(d, Payload::RequestRebirth)?,
            PAYLOAD_PUBLISH_RANGE_PROOF => fields(d, Payload::PublishRangeProof)?,
            PAYLOAD_AUTHORIZE => fields(d, Payload::Authorize)?,
            PAYLOAD_REVOKE_AUTHORIZATION => fields(d, Payload::RevokeAuthorization)?,
            PAYLOAD_RECORD_COMMAND => fields(d, Payload::RecordCommand)?,
            PAYLOAD_ACCESS_RECEIPT => fields(d, Payload::AccessReceipt)?,
            PAYLOAD_GRANT_ACCESS => fields(d, Payload::GrantAccess)?,
            PAYLOAD_REVOKE_ACCESS => fields(d, Payload::RevokeAccess)?,
            PAYLOAD_KEY_RELEASE => fields(d, Payload::KeyRelease)?,
            PAYLOAD_PUBLISH_OFFER => fields(d, Payload::PublishOffer)?,
            PAYLOAD_WITHDRAW_OFFER => fields(d, Payload::WithdrawOffer)?,
            PAYLOAD_PURCHASE => fields(d, Payload::Purchase)?,
            PAYLOAD_TAG_DEVICES => fields(d, Payload::TagDevices)?,
            value => return Err(DecodeError::UnknownVariant { what: "payload", value }),
        };
        if n != arity {
            return Err(DecodeError::WrongArity {
                expected: arity,
                found: n,
            });
        }
        d.end();
        Ok(payload)
    }
}

/// Decode a device payload's fields; returns the expected array length (tag included) with it.
fn fields<T: Fields>(d: &mut Decoder<'_>, wrap: fn(T) -> Payload) -> Result<(usize, Payload), DecodeError> {
    Ok((1 + T::ARITY, wrap(T::decode_fields(d)?)))
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxBody {
    /// The network this transaction is for (genesis `chain_id`): no cross-network replay.
    pub chain_id: String,
    /// The signing organisation.
    pub org: String,
    /// Which of the organisation's keys signed.
    pub key_id: KeyId,
    /// Per-organisation sequence number: exactly one more than the organisation's last.
    pub seq: u64,
    /// Last block height at which this transaction may be included.
    pub expiry_height: u64,
    pub payload: Payload,
}

impl Encode for TxBody {
    fn encode(&self, e: &mut Encoder) {
        e.array(6).text(&self.chain_id).text(&self.org);
        self.key_id.encode(e);
        e.uint(self.seq).uint(self.expiry_height);
        self.payload.encode(e);
    }
}

impl Decode for TxBody {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let chain_id = decode_text(d, MAX_CHAIN_ID_BYTES)?;
        let body = TxBody {
            chain_id,
            org: decode_name(d)?,
            key_id: KeyId::decode(d)?,
            seq: d.uint()?,
            expiry_height: d.uint()?,
            payload: Payload::decode(d)?,
        };
        d.end();
        Ok(body)
    }
}

/// A transaction as submitted, gossiped, stored and logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    pub body: TxBody,
    pub signature: Signature,
}

impl SignedTx {
    /// Sign `body` with `key`; `body.key_id` must be `key`'s id.
    pub fn sign(body: TxBody, key: &SigningKey) -> Self {
        debug_assert_eq!(body.key_id, key.public_key().id());
        let signature = key.sign(TAG_TX_V1, &body.to_cbor());
        SignedTx { body, signature }
    }

    /// Decode an envelope from bytes with the transaction limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_cbor(bytes, Limits::TX)
    }

    /// Check the signature against `key` (the state machine picks the key by `key_id`).
    pub fn verify_with(&self, key: &PublicKey) -> Result<(), crate::keys::SignatureError> {
        key.verify(TAG_TX_V1, &self.body.to_cbor(), &self.signature)
    }
}

impl Encode for SignedTx {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        self.body.encode(e);
        self.signature.encode(e);
    }
}

impl Decode for SignedTx {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let tx = SignedTx {
            body: TxBody::decode(d)?,
            signature: Signature::decode(d)?,
        };
        d.end();
        Ok(tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(key: &SigningKey) -> SignedTx {
        let body = TxBody {
            chain_id: "test".into(),
            org: "acme".into(),
            key_id: key.public_key().id(),
            seq: 1,
            expiry_height: 100,
            payload: Payload::Propose(GovAction::RotateOrgKey {
                org: "acme".into(),
                old: key.public_key().id(),
                new: SigningKey::ed25519_from_seed(&[3; 32]).public_key(),
                effective_height: 10,
            }),
        };
        SignedTx::sign(body, key)
    }

    #[test]
    fn round_trip_and_signature() {
        let key = SigningKey::ed25519_from_seed(&[1; 32]);
        let tx = sample(&key);
        let bytes = tx.to_cbor();
        let back = SignedTx::from_bytes(&bytes).unwrap();
        assert_eq!(back, tx);
        assert_eq!(back.to_cbor(), bytes);
        assert!(back.verify_with(&key.public_key()).is_ok());
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error_or_a_different_valid_value() {
        let key = SigningKey::ed25519_from_seed(&[1; 32]);
        let bytes = sample(&key).to_cbor();
        for cut in 0..bytes.len() {
            assert!(SignedTx::from_bytes(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            if let Ok(tx) = SignedTx::from_bytes(&b) {
                // If it still decodes, it must re-encode to exactly these bytes (canonical) and
                // the signature must no longer verify.
                assert_eq!(tx.to_cbor(), b);
                assert!(tx.verify_with(&key.public_key()).is_err());
            }
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("city-lights").is_ok());
        for bad in ["", "-a", "a-", "A", "a b", "a+b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
