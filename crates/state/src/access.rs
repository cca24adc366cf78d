//! Access and sharing (issue 6), ledger side: grants, device tags, key releases, offers,
//! purchases and credits (records and keys in `chipledger_types::access_tx`).
//!
//! **Grants.** `GrantAccess`, `PublishOffer` and `TagDevices` need the Owner role; every device
//! they list (tag additions included) must be registered, not revoked and owned by the signer.
//! A grant's `expires_ms` must be after the block time; an organisation grantee must exist; an
//! owner cannot grant to itself. Only the grant's owner may `RevokeAccess` it; a second
//! revocation is [`AccessError::GrantRevoked`].
//!
//! **Revocation stops future releases only.** Once an epoch key has been released to a
//! grantee, the grantee can decrypt those records for good; revoking the grant (or the grant
//! expiring) makes the ledger refuse every later `KeyRelease` under it, nothing more.
//!
//! **Key releases.** `KeyRelease` is submitted by the owner's key service, signed by the owner
//! organisation, *before* it hands out any key. The ledger checks: the grant exists, is not
//! revoked ([`AccessError::GrantRevoked`]) nor expired at block time
//! ([`AccessError::GrantExpired`]), the signer is its owner, and the device is covered — listed
//! in the scope or tagged by the owner with one of the scope's tags, and still registered,
//! not revoked and owned by the grant's owner ([`AccessError::NotCovered`]). It counts the
//! release on the grant and appends audit entries. The ledger cannot see when an epoch
//! started, so the record-time window `[from_ms, until_ms)` is enforced by the key service.
//!
//! **Tags** are per owner (`access/tag/<owner>/<tag>/<device>`): a tag-scoped grant covers a
//! device exactly while its owner keeps it tagged, so untagging (or transferring the device)
//! stops releases for it. Adding an already tagged device is [`AccessError::AlreadyTagged`],
//! removing an untagged one [`AccessError::NotTagged`]; removal needs no ownership (an owner can
//! clean up after a transfer).
//!
//! **Offers and purchases.** A Consumer organisation buys an offer: it must exist, not be
//! withdrawn nor expired, cost at most `max_price` ([`AccessError::PriceChanged`]), not be the
//! buyer's own, and the buyer may not hold a live (unexpired, unrevoked) grant from it
//! ([`AccessError::AlreadyPurchased`]); the offer's listed devices must still be live and the
//! owner's ([`AccessError::OfferStale`]); its credits must cover the price
//! ([`AccessError::InsufficientCredits`]). In that one transaction the buyer is debited, the
//! owner credited, and a grant created (id = the purchase transaction; grantee the buyer; the
//! offer's scope; expiry block time + `duration_ms`; purpose the offer's terms). Either all of
//! it is written or nothing (a refused transaction leaves no write).
//!
//! **Credits** are an accounting unit, issued only by governance (`GovAction::IssueCredits`,
//! executed at the threshold), never minted otherwise; a balance never overflows
//! ([`AccessError::CreditOverflow`]).
//!
//! **Audit.** Every change appends one entry (see [`crate::audit`]) to the devices it names,
//! the acting organisation and the counterparty (grantee org or key, buyer); a key release to
//! its device, the owner and the grantee.

mod error;
pub mod model;

pub use error::AccessError;

use chipledger_types::access_tx::{
    AccessScope, CreditBalance, GrantAccess, GrantRecord, Grantee, KeyRelease, OfferRecord, PublishOffer, Purchase,
    PurchaseMark, RevokeAccess, TagDevices, TagMark, WithdrawOffer, credits_key, grant_key, offer_key, purchase_key,
    tag_key,
};
use chipledger_types::audit::AuditSubject;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::{Payload, Role, TxHash};

use crate::apply::{BlockContext, Event, TxState, active_org};
use crate::audit::{AuditNote, append};
use crate::error::TxError;
use crate::model::get_device;
use crate::store::StateRead;
use model::*;

/// What an access transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessEvent {
    GrantCreated {
        grant: TxHash,
        owner: String,
        grantee: Grantee,
    },
    GrantRevoked {
        grant: TxHash,
    },
    KeysReleased {
        grant: TxHash,
        device: DeviceId,
        epochs: u32,
    },
    DevicesTagged {
        owner: String,
        tag: String,
        added: u32,
        removed: u32,
    },
    OfferPublished {
        offer: TxHash,
        owner: String,
        price: u64,
    },
    OfferWithdrawn {
        offer: TxHash,
    },
    Purchased {
        offer: TxHash,
        grant: TxHash,
        buyer: String,
        owner: String,
        price: u64,
    },
    CreditsIssued {
        org: String,
        amount: u64,
        balance: u64,
    },
}

/// Apply an access payload signed by `org` in the transaction `hash`.
pub(crate) fn apply(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    payload: &Payload,
) -> Result<Vec<Event>, TxError> {
    let event = match payload {
        Payload::GrantAccess(p) => grant(st, ctx, hash, org, p)?,
        Payload::RevokeAccess(p) => revoke(st, ctx, hash, org, p)?,
        Payload::KeyRelease(p) => release(st, ctx, hash, org, p)?,
        Payload::TagDevices(p) => tag(st, ctx, hash, org, p)?,
        Payload::PublishOffer(p) => publish(st, ctx, hash, org, p)?,
        Payload::WithdrawOffer(p) => withdraw(st, ctx, hash, org, p)?,
        Payload::Purchase(p) => purchase(st, ctx, hash, org, p)?,
        _ => return Err(TxError::Invalid("not an access payload")),
    };
    Ok(vec![Event::Access(event)])
}

fn require_role(s: &dyn StateRead, org: &str, role: Role, why: &'static str) -> Result<(), TxError> {
    if !active_org(s, org)?.roles.contains(&role) {
        return Err(AccessError::MissingRole {
            org: org.into(),
            role: role.name(),
            why,
        }
        .into());
    }
    Ok(())
}

/// Every device is registered, not revoked and owned by `org`.
fn check_owned(s: &dyn StateRead, org: &str, devices: &[DeviceId]) -> Result<(), TxError> {
    for id in devices {
        let d = get_device(s, id)?.ok_or(TxError::UnknownDevice(*id))?;
        if d.revoked.is_some() {
            return Err(TxError::DeviceRevoked(*id));
        }
        if d.owner != org {
            return Err(AccessError::NotOwner {
                org: org.into(),
                what: format!("device {id}"),
                owner: d.owner,
            }
            .into());
        }
    }
    Ok(())
}

fn future_expiry(ctx: &BlockContext<'_>, what: &'static str, expires_ms: u64) -> Result<(), TxError> {
    if expires_ms <= ctx.timestamp_ms {
        return Err(AccessError::ExpiryPast {
            what,
            expires_ms,
            now_ms: ctx.timestamp_ms,
        }
        .into());
    }
    Ok(())
}

/// The audit subjects of a scope's listed devices, then `orgs`, then `extra`.
fn subjects(scope: &AccessScope, orgs: &[&str], extra: Option<AuditSubject>) -> Vec<AuditSubject> {
    let mut out: Vec<AuditSubject> = scope.devices.iter().map(|d| AuditSubject::Device(*d)).collect();
    out.extend(orgs.iter().map(|o| AuditSubject::Org((*o).into())));
    out.extend(extra);
    out
}

fn owned_grant(s: &dyn StateRead, org: &str, id: &TxHash) -> Result<GrantRecord, TxError> {
    let g = get_grant(s, id)?.ok_or(AccessError::UnknownGrant(*id))?;
    if g.owner != org {
        return Err(AccessError::NotOwner {
            org: org.into(),
            what: format!("grant {id}"),
            owner: g.owner,
        }
        .into());
    }
    Ok(g)
}

fn owned_offer(s: &dyn StateRead, org: &str, id: &TxHash) -> Result<OfferRecord, TxError> {
    let o = get_offer(s, id)?.ok_or(AccessError::UnknownOffer(*id))?;
    if o.owner != org {
        return Err(AccessError::NotOwner {
            org: org.into(),
            what: format!("offer {id}"),
            owner: o.owner,
        }
        .into());
    }
    Ok(o)
}

fn grant(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &GrantAccess,
) -> Result<AccessEvent, TxError> {
    let view = st.view();
    require_role(&view, org, Role::Owner, "only owners grant access to their devices")?;
    check_owned(&view, org, &p.scope.devices)?;
    future_expiry(ctx, "grant", p.expires_ms)?;
    if let Grantee::Org(g) = &p.grantee {
        if g == org {
            return Err(AccessError::SelfGrant.into());
        }
        active_org(&view, g)?;
    }
    let record = GrantRecord {
        id: *hash,
        owner: org.into(),
        grantee: p.grantee.clone(),
        scope: p.scope.clone(),
        purpose: p.purpose.clone(),
        expires_ms: p.expires_ms,
        price: p.price,
        offer: None,
        created_height: ctx.height,
        created_ms: ctx.timestamp_ms,
        revoked: None,
        releases: 0,
    };
    st.put(grant_key(hash), &record);
    let note = AuditNote {
        kind: "grant",
        tx: hash,
        actor: org,
        summary: format!(
            "{org} granted {} {} until {} for '{}'",
            p.grantee,
            p.scope.summary(),
            chipledger_types::audit::utc(p.expires_ms),
            p.purpose
        ),
    };
    append(
        st,
        ctx,
        &subjects(&p.scope, &[org], Some(p.grantee.audit_subject())),
        &note,
    )?;
    Ok(AccessEvent::GrantCreated {
        grant: *hash,
        owner: org.into(),
        grantee: p.grantee.clone(),
    })
}

fn revoke(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &RevokeAccess,
) -> Result<AccessEvent, TxError> {
    let mut g = owned_grant(&st.view(), org, &p.grant)?;
    if let Some((height, _, _)) = g.revoked {
        return Err(AccessError::GrantRevoked { grant: p.grant, height }.into());
    }
    g.revoked = Some((ctx.height, ctx.timestamp_ms, p.reason.clone()));
    st.put(grant_key(&p.grant), &g);
    let note = AuditNote {
        kind: "grant-revoked",
        tx: hash,
        actor: org,
        summary: format!("{org} revoked grant {} to {}: {}", p.grant, g.grantee, p.reason),
    };
    append(
        st,
        ctx,
        &subjects(&g.scope, &[org], Some(g.grantee.audit_subject())),
        &note,
    )?;
    Ok(AccessEvent::GrantRevoked { grant: p.grant })
}

/// The grant `id` as it stands for a key release of `device` signed by `org` at block time
/// `now_ms`: live, owned by `org`, covering the device. The rule of `KeyRelease`; the node API
/// serves it so a key service can ask before it submits.
pub fn check_release(
    s: &dyn StateRead,
    now_ms: u64,
    org: &str,
    id: &TxHash,
    device: &DeviceId,
) -> Result<GrantRecord, TxError> {
    let g = get_grant(s, id)?.ok_or(AccessError::UnknownGrant(*id))?;
    if let Some((height, _, _)) = g.revoked {
        return Err(AccessError::GrantRevoked { grant: *id, height }.into());
    }
    if now_ms >= g.expires_ms {
        return Err(AccessError::GrantExpired {
            grant: *id,
            expires_ms: g.expires_ms,
            now_ms,
        }
        .into());
    }
    if g.owner != org {
        return Err(AccessError::NotOwner {
            org: org.into(),
            what: format!("grant {id}"),
            owner: g.owner,
        }
        .into());
    }
    let not_covered = |why| AccessError::NotCovered {
        grant: *id,
        device: *device,
        why,
    };
    let listed = g.scope.devices.binary_search(device).is_ok();
    let mut tagged = false;
    for t in &g.scope.tags {
        if is_tagged(s, &g.owner, t, device)? {
            tagged = true;
            break;
        }
    }
    if !listed && !tagged {
        return Err(not_covered("neither listed in the scope nor tagged with one of its tags").into());
    }
    let d = get_device(s, device)?.ok_or(not_covered("not a registered device"))?;
    if d.revoked.is_some() {
        return Err(not_covered("the device was revoked").into());
    }
    if d.owner != g.owner {
        return Err(not_covered("the grant's owner no longer owns the device").into());
    }
    Ok(g)
}

fn release(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &KeyRelease,
) -> Result<AccessEvent, TxError> {
    let mut g = check_release(&st.view(), ctx.timestamp_ms, org, &p.grant, &p.device)?;
    g.releases += 1;
    st.put(grant_key(&p.grant), &g);
    let note = AuditNote {
        kind: "key-release",
        tx: hash,
        actor: org,
        summary: format!(
            "{org} released epochs {:?} of device {} to {} under grant {} (recipient key {})",
            p.epochs,
            p.device,
            g.grantee,
            p.grant,
            hex::encode(p.recipient)
        ),
    };
    let subjects = [
        AuditSubject::Device(p.device),
        AuditSubject::Org(org.into()),
        g.grantee.audit_subject(),
    ];
    append(st, ctx, &subjects, &note)?;
    Ok(AccessEvent::KeysReleased {
        grant: p.grant,
        device: p.device,
        epochs: p.epochs.len() as u32,
    })
}

fn tag(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &TagDevices,
) -> Result<AccessEvent, TxError> {
    let view = st.view();
    require_role(&view, org, Role::Owner, "only owners tag their devices")?;
    check_owned(&view, org, &p.add)?;
    for d in &p.add {
        if is_tagged(&view, org, &p.tag, d)? {
            return Err(AccessError::AlreadyTagged {
                device: *d,
                tag: p.tag.clone(),
            }
            .into());
        }
    }
    for d in &p.remove {
        if !is_tagged(&view, org, &p.tag, d)? {
            return Err(AccessError::NotTagged {
                device: *d,
                tag: p.tag.clone(),
            }
            .into());
        }
    }
    for d in &p.add {
        st.put(tag_key(org, &p.tag, d), &TagMark { height: ctx.height });
    }
    for d in &p.remove {
        st.delete(tag_key(org, &p.tag, d));
    }
    let mut subjects: Vec<AuditSubject> = p
        .add
        .iter()
        .chain(&p.remove)
        .map(|d| AuditSubject::Device(*d))
        .collect();
    subjects.push(AuditSubject::Org(org.into()));
    let note = AuditNote {
        kind: "tags",
        tx: hash,
        actor: org,
        summary: format!(
            "{org} tag '{}': added {} devices, removed {}",
            p.tag,
            p.add.len(),
            p.remove.len()
        ),
    };
    append(st, ctx, &subjects, &note)?;
    Ok(AccessEvent::DevicesTagged {
        owner: org.into(),
        tag: p.tag.clone(),
        added: p.add.len() as u32,
        removed: p.remove.len() as u32,
    })
}

fn publish(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &PublishOffer,
) -> Result<AccessEvent, TxError> {
    let view = st.view();
    require_role(&view, org, Role::Owner, "only owners offer their devices' data")?;
    check_owned(&view, org, &p.scope.devices)?;
    future_expiry(ctx, "offer", p.expires_ms)?;
    let record = OfferRecord {
        id: *hash,
        owner: org.into(),
        scope: p.scope.clone(),
        price: p.price,
        duration_ms: p.duration_ms,
        terms: p.terms.clone(),
        expires_ms: p.expires_ms,
        created_height: ctx.height,
        created_ms: ctx.timestamp_ms,
        withdrawn: None,
        purchases: 0,
    };
    st.put(offer_key(hash), &record);
    let note = AuditNote {
        kind: "offer",
        tx: hash,
        actor: org,
        summary: format!(
            "{org} offered {} for {} credits, grants last {} h, buyable until {}",
            p.scope.summary(),
            p.price,
            p.duration_ms / 3_600_000,
            chipledger_types::audit::utc(p.expires_ms)
        ),
    };
    append(st, ctx, &subjects(&p.scope, &[org], None), &note)?;
    Ok(AccessEvent::OfferPublished {
        offer: *hash,
        owner: org.into(),
        price: p.price,
    })
}

fn withdraw(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    org: &str,
    p: &WithdrawOffer,
) -> Result<AccessEvent, TxError> {
    let mut o = owned_offer(&st.view(), org, &p.offer)?;
    if let Some((height, _)) = o.withdrawn {
        return Err(AccessError::OfferWithdrawn { offer: p.offer, height }.into());
    }
    o.withdrawn = Some((ctx.height, ctx.timestamp_ms));
    st.put(offer_key(&p.offer), &o);
    let note = AuditNote {
        kind: "offer-withdrawn",
        tx: hash,
        actor: org,
        summary: format!("{org} withdrew offer {}", p.offer),
    };
    append(st, ctx, &subjects(&o.scope, &[org], None), &note)?;
    Ok(AccessEvent::OfferWithdrawn { offer: p.offer })
}

/// The offer's listed devices are still registered, not revoked and owned by its owner (a
/// buyer never pays for devices the owner no longer holds).
fn check_offer_devices(s: &dyn StateRead, p: &Purchase, o: &OfferRecord) -> Result<(), TxError> {
    for id in &o.scope.devices {
        let stale = |why| AccessError::OfferStale {
            offer: p.offer,
            device: *id,
            why,
        };
        let d = get_device(s, id)?.ok_or(stale("is not registered"))?;
        if d.revoked.is_some() {
            return Err(stale("was revoked").into());
        }
        if d.owner != o.owner {
            return Err(stale("changed owner").into());
        }
    }
    Ok(())
}

/// The offer `id` as `buyer` may buy it now for at most `max_price`; the buyer's balance.
fn check_purchase(
    s: &dyn StateRead,
    ctx: &BlockContext<'_>,
    buyer: &str,
    p: &Purchase,
) -> Result<(OfferRecord, u64), TxError> {
    require_role(s, buyer, Role::Consumer, "only data consumers buy offers")?;
    let o = get_offer(s, &p.offer)?.ok_or(AccessError::UnknownOffer(p.offer))?;
    if let Some((height, _)) = o.withdrawn {
        return Err(AccessError::OfferWithdrawn { offer: p.offer, height }.into());
    }
    if ctx.timestamp_ms >= o.expires_ms {
        return Err(AccessError::OfferExpired {
            offer: p.offer,
            expires_ms: o.expires_ms,
            now_ms: ctx.timestamp_ms,
        }
        .into());
    }
    if o.price > p.max_price {
        return Err(AccessError::PriceChanged {
            offer: p.offer,
            price: o.price,
            max_price: p.max_price,
        }
        .into());
    }
    if o.owner == buyer {
        return Err(AccessError::OwnOffer(buyer.into()).into());
    }
    check_offer_devices(s, p, &o)?;
    if let Some(grant) = purchase_of(s, &p.offer, buyer)? {
        let live = get_grant(s, &grant)?.is_some_and(|g| g.is_active(ctx.timestamp_ms));
        if live {
            return Err(AccessError::AlreadyPurchased {
                offer: p.offer,
                buyer: buyer.into(),
                grant,
            }
            .into());
        }
    }
    let have = credits_of(s, buyer)?;
    if have < o.price {
        return Err(AccessError::InsufficientCredits {
            org: buyer.into(),
            have,
            need: o.price,
        }
        .into());
    }
    Ok((o, have))
}

fn purchase(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    hash: &TxHash,
    buyer: &str,
    p: &Purchase,
) -> Result<AccessEvent, TxError> {
    let (mut o, have) = check_purchase(&st.view(), ctx, buyer, p)?;
    let owner_balance = credits_of(&st.view(), &o.owner)?;
    let credited = owner_balance.checked_add(o.price).ok_or(AccessError::CreditOverflow {
        org: o.owner.clone(),
        balance: owner_balance,
        amount: o.price,
    })?;
    st.put(credits_key(buyer), &CreditBalance(have - o.price));
    st.put(credits_key(&o.owner), &CreditBalance(credited));
    let record = GrantRecord {
        id: *hash,
        owner: o.owner.clone(),
        grantee: Grantee::Org(buyer.into()),
        scope: o.scope.clone(),
        purpose: o.terms.clone(),
        expires_ms: ctx.timestamp_ms.saturating_add(o.duration_ms),
        price: Some(o.price),
        offer: Some(p.offer),
        created_height: ctx.height,
        created_ms: ctx.timestamp_ms,
        revoked: None,
        releases: 0,
    };
    st.put(grant_key(hash), &record);
    st.put(purchase_key(&p.offer, buyer), &PurchaseMark { grant: *hash });
    o.purchases += 1;
    st.put(offer_key(&p.offer), &o);
    let note = AuditNote {
        kind: "purchase",
        tx: hash,
        actor: buyer,
        summary: format!(
            "{buyer} bought offer {} of {} for {} credits: grant {} until {}",
            p.offer,
            o.owner,
            o.price,
            hash,
            chipledger_types::audit::utc(record.expires_ms)
        ),
    };
    append(st, ctx, &subjects(&o.scope, &[buyer, &o.owner], None), &note)?;
    Ok(AccessEvent::Purchased {
        offer: p.offer,
        grant: *hash,
        buyer: buyer.into(),
        owner: o.owner,
        price: o.price,
    })
}

/// Whether `IssueCredits { org, amount }` would execute now (governance checks it when
/// proposed and again when executed).
pub(crate) fn check_issue_credits(s: &dyn StateRead, org: &str, amount: u64) -> Result<u64, TxError> {
    active_org(s, org)?;
    if amount == 0 {
        return Err(TxError::Invalid("credits to issue must be positive"));
    }
    let balance = credits_of(s, org)?;
    balance.checked_add(amount).ok_or_else(|| {
        AccessError::CreditOverflow {
            org: org.into(),
            balance,
            amount,
        }
        .into()
    })
}

/// Execute `IssueCredits`: credit `org`, audit it on the organisation's trail (the entry names
/// the proposal and its proposer).
pub(crate) fn execute_issue_credits(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    proposal: &TxHash,
    proposer: &str,
    org: &str,
    amount: u64,
) -> Result<Event, TxError> {
    let balance = check_issue_credits(&st.view(), org, amount)?;
    st.put(credits_key(org), &CreditBalance(balance));
    let note = AuditNote {
        kind: "credits-issued",
        tx: proposal,
        actor: proposer,
        summary: format!("governance proposal {proposal} issued {amount} credits to {org}: balance {balance}"),
    };
    append(st, ctx, &[AuditSubject::Org(org.into())], &note)?;
    Ok(Event::Access(AccessEvent::CreditsIssued {
        org: org.into(),
        amount,
        balance,
    }))
}
