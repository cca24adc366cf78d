//! Why an access transaction was rejected (wrapped in [`crate::TxError::Access`]).

use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::TxHash;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    #[error("organisation '{org}' does not hold the {role} role: {why}")]
    MissingRole {
        org: String,
        role: &'static str,
        why: &'static str,
    },
    #[error("'{org}' is not the owner of {what} (owner: '{owner}')")]
    NotOwner { org: String, what: String, owner: String },
    #[error("an owner cannot grant access to itself")]
    SelfGrant,
    #[error("{what} expiry {expires_ms} ms is not after the block time {now_ms} ms")]
    ExpiryPast {
        what: &'static str,
        expires_ms: u64,
        now_ms: u64,
    },
    #[error("no grant {0}")]
    UnknownGrant(TxHash),
    #[error("grant {grant} was revoked at height {height}: no key is released under it")]
    GrantRevoked { grant: TxHash, height: u64 },
    #[error("grant {grant} expired at {expires_ms} ms (block time {now_ms} ms)")]
    GrantExpired {
        grant: TxHash,
        expires_ms: u64,
        now_ms: u64,
    },
    #[error("grant {grant} does not cover device {device}: {why}")]
    NotCovered {
        grant: TxHash,
        device: DeviceId,
        why: &'static str,
    },
    #[error("device {device} is already tagged '{tag}'")]
    AlreadyTagged { device: DeviceId, tag: String },
    #[error("device {device} is not tagged '{tag}'")]
    NotTagged { device: DeviceId, tag: String },
    #[error("no offer {0}")]
    UnknownOffer(TxHash),
    #[error("offer {offer} was withdrawn at height {height}")]
    OfferWithdrawn { offer: TxHash, height: u64 },
    #[error("offer {offer} expired at {expires_ms} ms (block time {now_ms} ms)")]
    OfferExpired {
        offer: TxHash,
        expires_ms: u64,
        now_ms: u64,
    },
    #[error("offer {offer} costs {price} credits, more than the {max_price} the buyer accepts")]
    PriceChanged { offer: TxHash, price: u64, max_price: u64 },
    #[error("offer {offer} is stale: device {device} {why}")]
    OfferStale {
        offer: TxHash,
        device: DeviceId,
        why: &'static str,
    },
    #[error("'{0}' cannot buy its own offer")]
    OwnOffer(String),
    #[error("'{buyer}' already holds grant {grant} from offer {offer}, not yet expired")]
    AlreadyPurchased {
        offer: TxHash,
        buyer: String,
        grant: TxHash,
    },
    #[error("'{org}' has {have} credits, needs {need}")]
    InsufficientCredits { org: String, have: u64, need: u64 },
    #[error("issuing {amount} credits to '{org}' (balance {balance}) would overflow")]
    CreditOverflow { org: String, balance: u64, amount: u64 },
}

impl AccessError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::MissingRole { .. } => "missing_role",
            AccessError::NotOwner { .. } => "not_owner",
            AccessError::SelfGrant => "self_grant",
            AccessError::ExpiryPast { .. } => "expiry_past",
            AccessError::UnknownGrant(_) => "unknown_grant",
            AccessError::GrantRevoked { .. } => "grant_revoked",
            AccessError::GrantExpired { .. } => "grant_expired",
            AccessError::NotCovered { .. } => "not_covered",
            AccessError::AlreadyTagged { .. } => "already_tagged",
            AccessError::NotTagged { .. } => "not_tagged",
            AccessError::UnknownOffer(_) => "unknown_offer",
            AccessError::OfferWithdrawn { .. } => "offer_withdrawn",
            AccessError::OfferExpired { .. } => "offer_expired",
            AccessError::PriceChanged { .. } => "price_changed",
            AccessError::OfferStale { .. } => "offer_stale",
            AccessError::OwnOffer(_) => "own_offer",
            AccessError::AlreadyPurchased { .. } => "already_purchased",
            AccessError::InsufficientCredits { .. } => "insufficient_credits",
            AccessError::CreditOverflow { .. } => "credit_overflow",
        }
    }
}
