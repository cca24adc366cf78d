//! Access and sharing (issue 6), ledger side: consent grants, device tags, logged key releases,
//! paid data offers with ledger credits, and the records a client (node API, CLI, the owner's
//! key service) reads back and proves against the state root.
//!
//! **Grants.** An owner grants an organisation or a person's key ([`Grantee`]) access to the
//! records of some of its devices ([`AccessScope`]: listed devices and/or devices it tagged,
//! some or all data streams, a record-time window `[from_ms, until_ms)`), for a purpose, until
//! `expires_ms` (block time). The grant's id is the hash of the `GrantAccess` (or `Purchase`)
//! transaction. `RevokeAccess` stops **future** key releases at once; keys already released stay
//! released — the ledger cannot take back what a grantee has decrypted.
//!
//! **Key releases.** The ledger never holds a data key. The owner's key service re-wraps epoch
//! keys for a grantee only after a `KeyRelease` naming the grant, device, epochs and the
//! recipient key's hash is final; the ledger checks the grant is live and covers the device.
//! The ledger cannot see when an epoch started, so the record-time window is enforced by the
//! key service (it keeps only epochs whose start lies in the window).
//!
//! **Offers and credits.** An owner publishes an offer (scope, price in credits, how long the
//! resulting grant lasts, terms, until when it can be bought); a Consumer organisation
//! `Purchase`s it, and in that one transaction its credits move to the owner and a grant is
//! created. Credits are an accounting unit issued only by governance (`GovAction::IssueCredits`).
//!
//! State keys (all under `access/`): [`grant_key`], [`tag_key`], [`offer_key`],
//! [`purchase_key`], [`credits_key`]. Payload structs follow their tag positionally in the
//! [`crate::tx::Payload`] array ([`Fields`]); lists are sorted and unique so every value has one
//! encoding; every list and string is bounded by a limit in [`crate::limits`]. The stored
//! records' encodings are frozen by the tests below.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::audit::AuditSubject;
use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list, encode_list};
use crate::data_tx::check_topic_name;
use crate::device_tx::{DeviceId, Fields};
use crate::firmware_tx::{decode_bounded_text, decode_texts, decode_u32s, encode_texts, encode_u32s};
use crate::keys::PublicKey;
use crate::limits::*;
use crate::record::STREAM_EPOCH_KEYS;
use crate::tx::{TxHash, check_name};

fn invalid(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Invalid { what, why }
}

fn decode_org(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

fn decode_tx_hash(d: &mut Decoder<'_>) -> Result<TxHash, DecodeError> {
    d.fixed().map(TxHash)
}

fn encode_opt_uint(e: &mut Encoder, v: Option<u64>) {
    match v {
        Some(v) => e.uint(v),
        None => e.null(),
    };
}

fn decode_opt_uint(d: &mut Decoder<'_>) -> Result<Option<u64>, DecodeError> {
    if d.null()? { Ok(None) } else { Ok(Some(d.uint()?)) }
}

fn encode_opt_hash(e: &mut Encoder, v: &Option<TxHash>) {
    match v {
        Some(h) => e.bytes(&h.0),
        None => e.null(),
    };
}

fn decode_opt_hash(d: &mut Decoder<'_>) -> Result<Option<TxHash>, DecodeError> {
    if d.null()? {
        Ok(None)
    } else {
        Ok(Some(decode_tx_hash(d)?))
    }
}

/// Strictly ascending: canonical order and no entry twice.
fn check_sorted_unique<T: Ord>(items: &[T], what: &'static str) -> Result<(), DecodeError> {
    if items.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(invalid(what, "must be sorted with no entry twice"))
    }
}

/// Check a device tag name: the topic-name rule of [`check_topic_name`] (1..=64 bytes of
/// `[A-Za-z0-9._-]`), since tags appear in state keys and URLs.
pub fn check_tag(tag: &str) -> Result<(), DecodeError> {
    check_topic_name(tag).map_err(|_| invalid("device tag", "must be 1-64 chars of A-Z, a-z, 0-9, '.', '_', '-'"))
}

/// Check a stream a scope names: a topic name, and never the epoch-key stream itself (a grant
/// covers the data; epoch keys are released one by one through `KeyRelease`).
pub fn check_scope_stream(stream: &str) -> Result<(), DecodeError> {
    check_topic_name(stream)?;
    if stream == STREAM_EPOCH_KEYS {
        return Err(invalid("scope stream", "the epoch-key stream cannot be granted"));
    }
    Ok(())
}

// ---- grantee and scope -----------------------------------------------------------------------

const GRANTEE_ORG: u64 = 1;
const GRANTEE_KEY: u64 = 2;

/// Who a grant is for: an organisation (any of its active keys speaks for it) or a person
/// known only by a public key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grantee {
    Org(String),
    Key(PublicKey),
}

impl Grantee {
    /// The grantee's audit trail: `Org(name)`, or `Key(SHA-256 of the key's CBOR)`.
    pub fn audit_subject(&self) -> AuditSubject {
        match self {
            Grantee::Org(o) => AuditSubject::Org(o.clone()),
            Grantee::Key(k) => AuditSubject::Key(key_hash(k)),
        }
    }
}

/// SHA-256 of a public key's canonical CBOR (the `key/<hex>` audit subject of a person).
pub fn key_hash(key: &PublicKey) -> [u8; 32] {
    Sha256::digest(key.to_cbor()).into()
}

impl core::fmt::Display for Grantee {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Grantee::Org(o) => write!(f, "org {o}"),
            Grantee::Key(k) => write!(f, "key {}", hex::encode(key_hash(k))),
        }
    }
}

impl Encode for Grantee {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        match self {
            Grantee::Org(o) => {
                e.uint(GRANTEE_ORG).text(o);
            }
            Grantee::Key(k) => {
                e.uint(GRANTEE_KEY);
                k.encode(e);
            }
        }
    }
}

impl Decode for Grantee {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let g = match d.uint()? {
            GRANTEE_ORG => Grantee::Org(decode_org(d)?),
            GRANTEE_KEY => Grantee::Key(PublicKey::decode(d)?),
            value => return Err(DecodeError::UnknownVariant { what: "grantee", value }),
        };
        d.end();
        Ok(g)
    }
}

/// What a grant or offer covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessScope {
    /// Devices listed by id: sorted, unique, ≤ [`MAX_SCOPE_DEVICES`].
    pub devices: Vec<DeviceId>,
    /// The owner's device tags: a device is covered while the owner has it tagged. Sorted,
    /// unique, ≤ [`MAX_SCOPE_TAGS`], each [`check_tag`].
    pub tags: Vec<String>,
    /// Data streams: sorted, unique, ≤ [`MAX_SCOPE_STREAMS`]; empty = every data stream.
    pub streams: Vec<String>,
    /// Record-time window `[from_ms, until_ms)`, unix ms; `from_ms < until_ms`.
    pub from_ms: u64,
    pub until_ms: u64,
}

impl AccessScope {
    const ARITY: usize = 5;

    /// Whether `stream` is one this scope covers.
    pub fn covers_stream(&self, stream: &str) -> bool {
        stream != STREAM_EPOCH_KEYS && (self.streams.is_empty() || self.streams.iter().any(|s| s == stream))
    }

    /// One line for summaries: `2 devices, tags [district-7], streams [pm25], [from, until)`.
    pub fn summary(&self) -> String {
        let streams = if self.streams.is_empty() {
            String::from("all streams")
        } else {
            format!("streams [{}]", self.streams.join(","))
        };
        format!(
            "{} devices, tags [{}], {streams}, records [{}, {})",
            self.devices.len(),
            self.tags.join(","),
            crate::audit::utc(self.from_ms),
            crate::audit::utc(self.until_ms)
        )
    }

    fn check(&self) -> Result<(), DecodeError> {
        check_sorted_unique(&self.devices, "scope devices")?;
        check_sorted_unique(&self.tags, "scope tags")?;
        check_sorted_unique(&self.streams, "scope streams")?;
        if self.devices.is_empty() && self.tags.is_empty() {
            return Err(invalid("access scope", "must list at least one device or tag"));
        }
        if self.from_ms >= self.until_ms {
            return Err(invalid("access scope", "from_ms must be before until_ms"));
        }
        Ok(())
    }
}

impl Encode for AccessScope {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY);
        encode_list(e, &self.devices);
        encode_texts(e, &self.tags);
        encode_texts(e, &self.streams);
        e.uint(self.from_ms).uint(self.until_ms);
    }
}

impl Decode for AccessScope {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let s = AccessScope {
            devices: decode_list(d, MAX_SCOPE_DEVICES)?,
            tags: decode_texts(d, MAX_SCOPE_TAGS, check_tag)?,
            streams: decode_texts(d, MAX_SCOPE_STREAMS, check_scope_stream)?,
            from_ms: d.uint()?,
            until_ms: d.uint()?,
        };
        d.end();
        s.check()?;
        Ok(s)
    }
}

// ---- payloads --------------------------------------------------------------------------------

/// The owner grants `grantee` access to `scope` until `expires_ms` (block time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantAccess {
    pub grantee: Grantee,
    pub scope: AccessScope,
    /// Why (≤ [`MAX_PURPOSE_BYTES`]); shown in every audit view.
    pub purpose: String,
    pub expires_ms: u64,
    /// Informational for a direct grant (no credits move); set by `Purchase` for bought grants.
    pub price: Option<u64>,
}

impl Fields for GrantAccess {
    const ARITY: usize = 5;
    fn encode_fields(&self, e: &mut Encoder) {
        self.grantee.encode(e);
        self.scope.encode(e);
        e.text(&self.purpose).uint(self.expires_ms);
        encode_opt_uint(e, self.price);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(GrantAccess {
            grantee: Grantee::decode(d)?,
            scope: AccessScope::decode(d)?,
            purpose: decode_bounded_text(d, "purpose", MAX_PURPOSE_BYTES)?,
            expires_ms: d.uint()?,
            price: decode_opt_uint(d)?,
        })
    }
}

/// The owner revokes a grant: no key is released for it from then on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeAccess {
    pub grant: TxHash,
    pub reason: String,
}

impl Fields for RevokeAccess {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.grant.0).text(&self.reason);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RevokeAccess {
            grant: decode_tx_hash(d)?,
            reason: decode_bounded_text(d, "reason", MAX_ACCESS_REASON_BYTES)?,
        })
    }
}

/// The owner's key service records that it is releasing `epochs` of `device`'s epoch keys
/// under `grant`, wrapped to the recipient key whose hash is `recipient`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRelease {
    pub grant: TxHash,
    pub device: DeviceId,
    /// Epoch numbers: sorted, unique, 1..=[`MAX_RELEASE_EPOCHS`] entries.
    pub epochs: Vec<u32>,
    /// SHA-256 of the grantee's P-256 recipient key, SEC1 uncompressed (65 bytes).
    pub recipient: [u8; 32],
}

impl Fields for KeyRelease {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.grant.0);
        self.device.encode(e);
        encode_u32s(e, &self.epochs);
        e.bytes(&self.recipient);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let r = KeyRelease {
            grant: decode_tx_hash(d)?,
            device: DeviceId::decode(d)?,
            epochs: decode_u32s(d, MAX_RELEASE_EPOCHS)?,
            recipient: d.fixed()?,
        };
        if r.epochs.is_empty() {
            return Err(invalid("key release", "must name at least one epoch"));
        }
        check_sorted_unique(&r.epochs, "key release epochs")?;
        Ok(r)
    }
}

/// The owner adds devices to and removes devices from one of its tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagDevices {
    pub tag: String,
    /// Sorted, unique; no device both added and removed; together ≤ [`MAX_TAG_CHANGE_DEVICES`].
    pub add: Vec<DeviceId>,
    pub remove: Vec<DeviceId>,
}

impl Fields for TagDevices {
    const ARITY: usize = 3;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.tag);
        encode_list(e, &self.add);
        encode_list(e, &self.remove);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let tag = d.string()?;
        check_tag(&tag)?;
        let t = TagDevices {
            tag,
            add: decode_list(d, MAX_TAG_CHANGE_DEVICES)?,
            remove: decode_list(d, MAX_TAG_CHANGE_DEVICES)?,
        };
        check_sorted_unique(&t.add, "tag additions")?;
        check_sorted_unique(&t.remove, "tag removals")?;
        let n = t.add.len() + t.remove.len();
        if n == 0 {
            return Err(invalid("tag change", "must add or remove at least one device"));
        }
        if n > MAX_TAG_CHANGE_DEVICES {
            return Err(DecodeError::TooLong {
                what: "tag change devices",
                len: n as u64,
                max: MAX_TAG_CHANGE_DEVICES,
            });
        }
        if t.add.iter().any(|a| t.remove.binary_search(a).is_ok()) {
            return Err(invalid("tag change", "adds and removes the same device"));
        }
        Ok(t)
    }
}

/// The owner offers access to `scope` for `price` credits; a purchase yields a grant lasting
/// `duration_ms` from the purchase. The offer can be bought until `expires_ms` (block time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishOffer {
    pub scope: AccessScope,
    pub price: u64,
    /// How long a bought grant lasts (> 0).
    pub duration_ms: u64,
    /// Terms of use (≤ [`MAX_OFFER_TERMS_BYTES`]); the bought grant's purpose.
    pub terms: String,
    pub expires_ms: u64,
}

impl Fields for PublishOffer {
    const ARITY: usize = 5;
    fn encode_fields(&self, e: &mut Encoder) {
        self.scope.encode(e);
        e.uint(self.price)
            .uint(self.duration_ms)
            .text(&self.terms)
            .uint(self.expires_ms);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let o = PublishOffer {
            scope: AccessScope::decode(d)?,
            price: d.uint()?,
            duration_ms: d.uint()?,
            terms: decode_bounded_text(d, "terms", MAX_OFFER_TERMS_BYTES)?,
            expires_ms: d.uint()?,
        };
        if o.duration_ms == 0 {
            return Err(invalid("offer", "duration_ms must be positive"));
        }
        Ok(o)
    }
}

/// The owner withdraws an offer: it can no longer be bought (bought grants stay).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawOffer {
    pub offer: TxHash,
}

impl Fields for WithdrawOffer {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.offer.0);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(WithdrawOffer {
            offer: decode_tx_hash(d)?,
        })
    }
}

/// A Consumer organisation buys an offer, paying at most `max_price` credits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Purchase {
    pub offer: TxHash,
    pub max_price: u64,
}

impl Fields for Purchase {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.offer.0).uint(self.max_price);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Purchase {
            offer: decode_tx_hash(d)?,
            max_price: d.uint()?,
        })
    }
}

// ---- records a client proves ---------------------------------------------------------------------

/// `access/grant/<tx hex>` → [`GrantRecord`].
pub fn grant_key(id: &TxHash) -> Vec<u8> {
    format!("access/grant/{id}").into_bytes()
}
/// `access/tag/<owner>/<tag>/<device hex>` → [`TagMark`] while the owner has the device tagged.
pub fn tag_key(owner: &str, tag: &str, device: &DeviceId) -> Vec<u8> {
    format!("access/tag/{owner}/{tag}/{device}").into_bytes()
}
/// `access/offer/<tx hex>` → [`OfferRecord`].
pub fn offer_key(id: &TxHash) -> Vec<u8> {
    format!("access/offer/{id}").into_bytes()
}
/// `access/purchase/<offer hex>/<buyer>` → [`PurchaseMark`] (the buyer's latest grant from it).
pub fn purchase_key(offer: &TxHash, buyer: &str) -> Vec<u8> {
    format!("access/purchase/{offer}/{buyer}").into_bytes()
}
/// `access/credits/<org>` → [`CreditBalance`] (absent = 0).
pub fn credits_key(org: &str) -> Vec<u8> {
    format!("access/credits/{org}").into_bytes()
}

/// A grant as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    /// The `GrantAccess` or `Purchase` transaction.
    pub id: TxHash,
    /// The granting owner organisation.
    pub owner: String,
    pub grantee: Grantee,
    pub scope: AccessScope,
    /// ≤ [`MAX_PURPOSE_BYTES`] for a direct grant; a bought grant's purpose is the offer's
    /// terms (≤ [`MAX_OFFER_TERMS_BYTES`]).
    pub purpose: String,
    pub expires_ms: u64,
    pub price: Option<u64>,
    /// The offer it was bought from.
    pub offer: Option<TxHash>,
    pub created_height: u64,
    pub created_ms: u64,
    /// `(height, block time ms, reason)` of the revocation.
    pub revoked: Option<(u64, u64, String)>,
    /// Key releases recorded under this grant.
    pub releases: u64,
}

impl GrantRecord {
    const ARITY: usize = 12;

    /// Whether the grant allows a release at block time `now_ms` (not revoked, not expired).
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.revoked.is_none() && now_ms < self.expires_ms
    }
}

impl Encode for GrantRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY).bytes(&self.id.0).text(&self.owner);
        self.grantee.encode(e);
        self.scope.encode(e);
        e.text(&self.purpose).uint(self.expires_ms);
        encode_opt_uint(e, self.price);
        encode_opt_hash(e, &self.offer);
        e.uint(self.created_height).uint(self.created_ms);
        match &self.revoked {
            Some((height, ms, reason)) => e.array(3).uint(*height).uint(*ms).text(reason),
            None => e.null(),
        };
        e.uint(self.releases);
    }
}

impl Decode for GrantRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = GrantRecord {
            id: decode_tx_hash(d)?,
            owner: decode_org(d)?,
            grantee: Grantee::decode(d)?,
            scope: AccessScope::decode(d)?,
            purpose: decode_bounded_text(d, "purpose", MAX_OFFER_TERMS_BYTES)?,
            expires_ms: d.uint()?,
            price: decode_opt_uint(d)?,
            offer: decode_opt_hash(d)?,
            created_height: d.uint()?,
            created_ms: d.uint()?,
            revoked: decode_revoked(d)?,
            releases: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

fn decode_revoked(d: &mut Decoder<'_>) -> Result<Option<(u64, u64, String)>, DecodeError> {
    if d.null()? {
        return Ok(None);
    }
    d.array_of(3)?;
    let r = (
        d.uint()?,
        d.uint()?,
        decode_bounded_text(d, "reason", MAX_ACCESS_REASON_BYTES)?,
    );
    d.end();
    Ok(Some(r))
}

/// An offer as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferRecord {
    /// The `PublishOffer` transaction.
    pub id: TxHash,
    pub owner: String,
    pub scope: AccessScope,
    pub price: u64,
    pub duration_ms: u64,
    pub terms: String,
    pub expires_ms: u64,
    pub created_height: u64,
    pub created_ms: u64,
    /// `(height, block time ms)` of the withdrawal.
    pub withdrawn: Option<(u64, u64)>,
    /// Purchases so far.
    pub purchases: u64,
}

impl OfferRecord {
    const ARITY: usize = 11;
}

impl Encode for OfferRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY).bytes(&self.id.0).text(&self.owner);
        self.scope.encode(e);
        e.uint(self.price)
            .uint(self.duration_ms)
            .text(&self.terms)
            .uint(self.expires_ms)
            .uint(self.created_height)
            .uint(self.created_ms);
        match self.withdrawn {
            Some((height, ms)) => e.array(2).uint(height).uint(ms),
            None => e.null(),
        };
        e.uint(self.purchases);
    }
}

impl Decode for OfferRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = OfferRecord {
            id: decode_tx_hash(d)?,
            owner: decode_org(d)?,
            scope: AccessScope::decode(d)?,
            price: d.uint()?,
            duration_ms: d.uint()?,
            terms: decode_bounded_text(d, "terms", MAX_OFFER_TERMS_BYTES)?,
            expires_ms: d.uint()?,
            created_height: d.uint()?,
            created_ms: d.uint()?,
            withdrawn: if d.null()? {
                None
            } else {
                d.array_of(2)?;
                let w = (d.uint()?, d.uint()?);
                d.end();
                Some(w)
            },
            purchases: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

/// The grant a buyer got from an offer (its latest purchase of it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurchaseMark {
    pub grant: TxHash,
}

impl Encode for PurchaseMark {
    fn encode(&self, e: &mut Encoder) {
        e.bytes(&self.grant.0);
    }
}

impl Decode for PurchaseMark {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(PurchaseMark {
            grant: decode_tx_hash(d)?,
        })
    }
}

/// An owner has a device tagged: the height at which it was tagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TagMark {
    pub height: u64,
}

impl Encode for TagMark {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.height);
    }
}

impl Decode for TagMark {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(TagMark { height: d.uint()? })
    }
}

/// An organisation's credits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditBalance(pub u64);

impl Encode for CreditBalance {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.0);
    }
}

impl Decode for CreditBalance {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(CreditBalance(d.uint()?))
    }
}

#[cfg(test)]
mod tests;
