//! Readers of the access records (`chipledger_types::access_tx` defines the records and their
//! keys, so the node, CLI and key service decode them too). Read-only views over any state
//! version: the node API uses them as they are.

use chipledger_types::access_tx::{
    CreditBalance, GrantRecord, OfferRecord, PurchaseMark, TagMark, credits_key, grant_key, offer_key, purchase_key,
    tag_key,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::TxHash;

use crate::error::TxError;
use crate::model::read;
use crate::store::StateRead;

/// The grant made by transaction `id`.
pub fn get_grant(s: &dyn StateRead, id: &TxHash) -> Result<Option<GrantRecord>, TxError> {
    read(s, &grant_key(id))
}

/// The offer published by transaction `id`.
pub fn get_offer(s: &dyn StateRead, id: &TxHash) -> Result<Option<OfferRecord>, TxError> {
    read(s, &offer_key(id))
}

/// An organisation's credits (0 when it never had any).
pub fn credits_of(s: &dyn StateRead, org: &str) -> Result<u64, TxError> {
    Ok(read::<CreditBalance>(s, &credits_key(org))?.unwrap_or_default().0)
}

/// The grant `buyer` got from its latest purchase of `offer`.
pub fn purchase_of(s: &dyn StateRead, offer: &TxHash, buyer: &str) -> Result<Option<TxHash>, TxError> {
    Ok(read::<PurchaseMark>(s, &purchase_key(offer, buyer))?.map(|m| m.grant))
}

/// Whether `owner` has `device` tagged `tag`.
pub fn is_tagged(s: &dyn StateRead, owner: &str, tag: &str, device: &DeviceId) -> Result<bool, TxError> {
    Ok(read::<TagMark>(s, &tag_key(owner, tag, device))?.is_some())
}
