//! `chipledger access …`: consent grants and their revocation, device tags, data offers,
//! purchases with ledger credits, credits issued by governance, and reading grants, offers
//! and balances back (issue 6).
//!
//! Every transaction is built with [`crate::txcmd::build`] and submitted with
//! [`Client::try_submit`]; a refusal by the ledger is a typed [`Refused`] error naming the
//! ledger's code (`insufficient_credits`, `offer_expired`, `grant_revoked`, …), printed as
//! `error: … (code)`. Ids (grant, offer, proposal) are transaction hashes in hex.
//!
//! Times (`--from`, `--until`, `--expires`) are RFC 3339 (`2027-01-15T00:00:00Z`), unix ms,
//! `now`, or `now` ± a duration (`+30d`, `-1h`); durations (`--duration`) are ms or
//! `<n>s|m|h|d`.
//!
//! (Helper note: the authorization/command subcommands of issue 6 are added as further
//! [`AccessCommand`] variants, each dispatched in [`run`].)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use chipledger_node::api::TxStatusBody;
use chipledger_node::api_access::{CreditsBody, GrantBody, GrantListBody, OfferBody, ReleaseCheckBody};
use chipledger_node::config::KeyFile;
use chipledger_types::access_tx::{
    AccessScope, GrantAccess, Grantee, PublishOffer, Purchase, RevokeAccess, TagDevices, WithdrawOffer,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::PublicKey;
use chipledger_types::tx::{GovAction, Payload, TxHash};
use clap::{Args, Subcommand};

use crate::client::{Client, DEFAULT_API};
use crate::device_cmd::Signer;
use crate::txcmd::{build, wait_final};

/// How long a command waits for its transaction to become final.
pub const WAIT_FINAL: Duration = Duration::from_secs(60);
/// Blocks an access transaction stays valid.
const EXPIRY_BLOCKS: u64 = 1000;

#[derive(Debug, Args)]
pub struct AccessArgs {
    #[command(subcommand)]
    pub command: AccessCommand,
}

#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Grant an organisation or a person's key access to devices' data; prints the grant id.
    Grant(GrantArgs),
    /// Revoke a grant: no key is released under it any more (released keys stay released).
    Revoke {
        #[command(flatten)]
        signer: Signer,
        /// Hex grant id.
        #[arg(long)]
        grant: String,
        /// Why (recorded on the ledger and shown to the grantee when refused).
        #[arg(long, default_value = "revoked by the owner")]
        reason: String,
    },
    /// Add devices to and remove devices from one of your tags.
    Tag {
        #[command(flatten)]
        signer: Signer,
        #[arg(long)]
        tag: String,
        /// Hex device id(s) to tag.
        #[arg(long, value_delimiter = ',')]
        add: Vec<String>,
        /// Hex device id(s) to untag.
        #[arg(long, value_delimiter = ',')]
        remove: Vec<String>,
    },
    /// Publish a data offer priced in credits; prints the offer id.
    Offer(OfferArgs),
    /// Withdraw one of your offers (grants already bought stay).
    WithdrawOffer {
        #[command(flatten)]
        signer: Signer,
        /// Hex offer id.
        #[arg(long)]
        offer: String,
    },
    /// Buy an offer (Consumer role): credits move and a grant is created; prints the grant id.
    Buy {
        #[command(flatten)]
        signer: Signer,
        /// Hex offer id.
        #[arg(long)]
        offer: String,
        /// The most credits you accept to pay (refused with `price_changed` if the offer costs more).
        #[arg(long)]
        max_price: u64,
    },
    /// An organisation's credit balance.
    Credits {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        json: bool,
    },
    /// Propose issuing credits to an organisation (governance; other organisations approve
    /// with `chipledger tx submit … approve --proposal ID`); prints the proposal id.
    IssueCredits {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        /// The proposing organisation.
        #[arg(long)]
        signer: String,
        /// The proposing organisation's key file.
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        /// The organisation that receives the credits.
        #[arg(long)]
        org: String,
        #[arg(long)]
        amount: u64,
        #[arg(long)]
        json: bool,
    },
    /// Show a grant.
    GrantShow {
        /// Hex grant id.
        id: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// List grants made by an owner or to a grantee organisation.
    Grants {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        grantee: Option<String>,
        /// Only grants active now.
        #[arg(long)]
        active: bool,
        #[arg(long)]
        json: bool,
    },
    /// Would a key release under a grant for a device be accepted now?
    Check {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        grant: String,
        #[arg(long)]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Show an offer.
    OfferShow {
        /// Hex offer id.
        id: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// Authorize an organisation or a person's key to run actions on your devices; prints the
    /// authorization id.
    Authorize(crate::command_cmd::AuthorizeArgs),
    /// End an authorization.
    RevokeAuthorization(crate::command_cmd::RevokeAuthorizationArgs),
    /// Send an authorized command to a device over MQTT, wait for its signed receipt and commit it.
    Command(crate::command_cmd::CommandArgs),
    /// Who accessed a device, when and for what (authorizations, commands, receipts).
    Accesses(crate::command_cmd::DeviceViewArgs),
    /// A device's command anomalies: commands without receipts, receipts without authorization.
    Anomalies(crate::command_cmd::DeviceViewArgs),
}

/// What a grant or offer covers.
#[derive(Debug, Args)]
pub struct ScopeArgs {
    /// Hex device id(s) covered.
    #[arg(long = "device", value_delimiter = ',')]
    pub devices: Vec<String>,
    /// Your device tag(s): tagged devices are covered while tagged.
    #[arg(long = "tag", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Data stream(s) covered (default: every data stream).
    #[arg(long = "stream", value_delimiter = ',')]
    pub streams: Vec<String>,
    /// Start of the record-time window (inclusive).
    #[arg(long)]
    pub from: String,
    /// End of the record-time window (exclusive).
    #[arg(long)]
    pub until: String,
}

#[derive(Debug, Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub signer: Signer,
    /// The grantee organisation.
    #[arg(long, conflicts_with = "to_key", required_unless_present = "to_key")]
    pub to_org: Option<String>,
    /// The grantee person's key: `ed25519:<hex>`, `p256:<hex>` (compressed), or bare hex.
    #[arg(long)]
    pub to_key: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// When the grant ends (block time).
    #[arg(long)]
    pub expires: String,
    #[arg(long)]
    pub purpose: String,
    /// Informational price (no credits move for a direct grant).
    #[arg(long)]
    pub price: Option<u64>,
}

#[derive(Debug, Args)]
pub struct OfferArgs {
    #[command(flatten)]
    pub signer: Signer,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Price in credits.
    #[arg(long)]
    pub price: u64,
    /// How long a bought grant lasts (`30d`, `12h`, or ms).
    #[arg(long)]
    pub duration: String,
    #[arg(long, default_value = "")]
    pub terms: String,
    /// Until when the offer can be bought (block time).
    #[arg(long)]
    pub expires: String,
}

/// The ledger refused a transaction: its stable code and message.
#[derive(Debug, thiserror::Error)]
#[error("the ledger refused the transaction: {message} ({code})")]
pub struct Refused {
    pub code: String,
    pub message: String,
}

// ---- parsing -----------------------------------------------------------------------------------

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `<n>` ms, or `<n>s|m|h|d`.
pub fn parse_duration_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, unit_ms) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1000),
        Some((i, 'm')) => (&s[..i], 60_000),
        Some((i, 'h')) => (&s[..i], 3_600_000),
        Some((i, 'd')) => (&s[..i], 86_400_000),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("'{s}' is not a duration (ms, or <n>s, <n>m, <n>h, <n>d)"))?;
    n.checked_mul(unit_ms).context("duration too large")
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 date-time (`2027-01-15T08:30:00Z`, `…T08:30:00.250+01:00`) as unix ms.
pub fn parse_rfc3339_ms(s: &str) -> Result<u64> {
    let bad = || anyhow::anyhow!("'{s}' is not an RFC 3339 date-time (e.g. 2027-01-15T08:30:00Z)");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 || b[16] != b':' {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0u64;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &f[..digits.min(3)]);
        frac_ms = padded.parse().map_err(|_| bad())?;
        rest = &f[digits..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(bad()),
            };
            let hh: i64 = rest[1..3].parse().map_err(|_| bad())?;
            let mm: i64 = rest[4..6].parse().map_err(|_| bad())?;
            sign * (hh * 3600 + mm * 60)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(y as i64, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + sec) as i64 - offset_s;
    u64::try_from(secs)
        .map(|s| s * 1000 + frac_ms)
        .map_err(|_| anyhow::anyhow!("'{s}' is before 1970"))
}

/// A time argument: unix ms, `now`, `now±<duration>` / `±<duration>`, or RFC 3339.
pub fn parse_time_ms(s: &str) -> Result<u64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let rel = s.strip_prefix("now").unwrap_or(s);
    if rel.is_empty() {
        return Ok(now_ms());
    }
    if let Some(d) = rel.strip_prefix('+') {
        return now_ms().checked_add(parse_duration_ms(d)?).context("time too far");
    }
    if let Some(d) = rel.strip_prefix('-') {
        return now_ms().checked_sub(parse_duration_ms(d)?).context("time before 1970");
    }
    parse_rfc3339_ms(s)
}

fn parse_hash(s: &str, what: &str) -> Result<TxHash> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(TxHash)
        .with_context(|| format!("a {what} id is 64 hex characters, not '{s}'"))
}

fn parse_device(s: &str) -> Result<DeviceId> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .with_context(|| format!("a device id is 40 hex characters, not '{s}'"))
}

/// Sorted, unique device ids (the canonical order the ledger requires).
fn parse_devices(ids: &[String]) -> Result<Vec<DeviceId>> {
    let mut out = ids.iter().map(|s| parse_device(s)).collect::<Result<Vec<_>>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn sorted(items: &[String]) -> Vec<String> {
    let mut out = items.to_vec();
    out.sort();
    out.dedup();
    out
}

/// `ed25519:<hex>`, `p256:<hex>`, or bare hex (32 bytes Ed25519, 33 bytes compressed P-256).
pub fn parse_grantee_key(s: &str) -> Result<PublicKey> {
    if s.contains(':') {
        return s.parse().map_err(|e| anyhow::anyhow!("bad key '{s}': {e}"));
    }
    let b = hex::decode(s).with_context(|| format!("key '{s}' is not hex"))?;
    match b.len() {
        32 => Ok(PublicKey::Ed25519(b.try_into().expect("32 bytes"))),
        33 => Ok(PublicKey::P256(b.try_into().expect("33 bytes"))),
        n => bail!("a key is 32 bytes (Ed25519) or 33 bytes (compressed P-256), not {n}"),
    }
}

impl ScopeArgs {
    pub fn to_scope(&self) -> Result<AccessScope> {
        let scope = AccessScope {
            devices: parse_devices(&self.devices)?,
            tags: sorted(&self.tags),
            streams: sorted(&self.streams),
            from_ms: parse_time_ms(&self.from)?,
            until_ms: parse_time_ms(&self.until)?,
        };
        if scope.devices.is_empty() && scope.tags.is_empty() {
            bail!("give at least one --device or --tag");
        }
        if scope.from_ms >= scope.until_ms {
            bail!("--from must be before --until");
        }
        Ok(scope)
    }
}

// ---- submitting --------------------------------------------------------------------------------

/// Sign `payload` as `signer`, submit it and wait until it is final. A refusal (at admission or
/// in a block) is an error; at admission it is a [`Refused`] with the ledger's code.
pub fn submit_access(api: &str, org: &str, key_file: &std::path::Path, payload: Payload) -> Result<TxStatusBody> {
    let client = Client::new(api)?;
    let key = KeyFile::read(key_file)?;
    let tx = build(&client, org, &key, None, EXPIRY_BLOCKS, payload)?;
    let sub = match client.try_submit(&tx)? {
        Ok(sub) => sub,
        Err(e) => {
            return Err(Refused {
                code: e.error,
                message: e.message,
            }
            .into());
        }
    };
    let s = wait_final(&client, &sub.hash, WAIT_FINAL)?;
    if s.status != "final" {
        bail!(
            "transaction {} was rejected: {}",
            s.hash,
            s.reason.as_deref().unwrap_or("?")
        );
    }
    Ok(s)
}

/// Submit as `signer`; print `label id` (or JSON) where the id is the transaction hash.
fn submit_and_print(signer: &Signer, payload: Payload, label: &str) -> Result<()> {
    let s = submit_access(&signer.api, &signer.org, &signer.key, payload)?;
    let height = s.height.unwrap_or_default();
    if signer.json {
        println!("{}", serde_json::json!({ label: s.hash, "height": height }));
    } else {
        println!("{label} {}", s.hash);
        eprintln!("final at height {height}");
    }
    Ok(())
}

fn grant(a: GrantArgs) -> Result<()> {
    let grantee = match (&a.to_org, &a.to_key) {
        (Some(o), None) => Grantee::Org(o.clone()),
        (None, Some(k)) => Grantee::Key(parse_grantee_key(k)?),
        _ => bail!("give exactly one of --to-org and --to-key"),
    };
    let p = Payload::GrantAccess(GrantAccess {
        grantee,
        scope: a.scope.to_scope()?,
        purpose: a.purpose,
        expires_ms: parse_time_ms(&a.expires)?,
        price: a.price,
    });
    submit_and_print(&a.signer, p, "grant")
}

fn offer(a: OfferArgs) -> Result<()> {
    let p = Payload::PublishOffer(PublishOffer {
        scope: a.scope.to_scope()?,
        price: a.price,
        duration_ms: parse_duration_ms(&a.duration)?,
        terms: a.terms,
        expires_ms: parse_time_ms(&a.expires)?,
    });
    submit_and_print(&a.signer, p, "offer")
}

pub fn run(args: AccessArgs) -> Result<()> {
    match args.command {
        AccessCommand::Grant(a) => grant(a),
        AccessCommand::Revoke { signer, grant, reason } => {
            let p = Payload::RevokeAccess(RevokeAccess {
                grant: parse_hash(&grant, "grant")?,
                reason,
            });
            submit_and_print(&signer, p, "revoked")
        }
        AccessCommand::Tag {
            signer,
            tag,
            add,
            remove,
        } => {
            let p = Payload::TagDevices(TagDevices {
                tag,
                add: parse_devices(&add)?,
                remove: parse_devices(&remove)?,
            });
            submit_and_print(&signer, p, "tagged")
        }
        AccessCommand::Offer(a) => offer(a),
        AccessCommand::WithdrawOffer { signer, offer } => {
            let p = Payload::WithdrawOffer(WithdrawOffer {
                offer: parse_hash(&offer, "offer")?,
            });
            submit_and_print(&signer, p, "withdrawn")
        }
        AccessCommand::Buy {
            signer,
            offer,
            max_price,
        } => {
            let p = Payload::Purchase(Purchase {
                offer: parse_hash(&offer, "offer")?,
                max_price,
            });
            submit_and_print(&signer, p, "grant")
        }
        AccessCommand::IssueCredits {
            api,
            signer,
            key,
            org,
            amount,
            json,
        } => {
            let s = submit_access(
                &api,
                &signer,
                &key,
                Payload::Propose(GovAction::IssueCredits { org, amount }),
            )?;
            if json {
                println!("{}", serde_json::json!({ "proposal": s.hash, "height": s.height }));
            } else {
                println!("proposal {}", s.hash);
                eprintln!(
                    "other organisations approve with: chipledger tx submit … approve --proposal {}",
                    s.hash
                );
            }
            Ok(())
        }
        AccessCommand::Credits { api, org, json } => {
            let b: CreditsBody = Client::new(&api)?.get_json(&format!("/v1/access/credits/{org}"))?;
            print_or_json(&b, json, || {
                println!("{} has {} credits (height {})", b.org, b.balance, b.height)
            })
        }
        AccessCommand::GrantShow { id, api, json } => {
            let id = parse_hash(&id, "grant")?;
            let b: GrantBody = Client::new(&api)?.get_json(&format!("/v1/access/grants/{id}"))?;
            print_or_json(&b, json, || print_grant(&b))
        }
        AccessCommand::Grants {
            api,
            owner,
            grantee,
            active,
            json,
        } => list_grants(&api, owner, grantee, active, json),
        AccessCommand::Check {
            api,
            grant,
            device,
            json,
        } => {
            let id = parse_hash(&grant, "grant")?;
            let device = parse_device(&device)?;
            let path = format!("/v1/access/grants/{id}/check?device={device}");
            let b: ReleaseCheckBody = Client::new(&api)?.get_json(&path)?;
            print_or_json(&b, json, || match (&b.code, &b.message) {
                (Some(code), Some(msg)) => println!("refused: {msg} ({code})"),
                _ => println!(
                    "ok: a release of device {} under grant {} would be accepted",
                    b.device, b.grant
                ),
            })
        }
        AccessCommand::OfferShow { id, api, json } => {
            let id = parse_hash(&id, "offer")?;
            let b: OfferBody = Client::new(&api)?.get_json(&format!("/v1/access/offers/{id}"))?;
            print_or_json(&b, json, || print_offer(&b))
        }
        AccessCommand::Authorize(a) => crate::command_cmd::authorize(a),
        AccessCommand::RevokeAuthorization(a) => crate::command_cmd::revoke_authorization(a),
        AccessCommand::Command(a) => crate::command_cmd::command(a),
        AccessCommand::Accesses(a) => crate::command_cmd::accesses(a),
        AccessCommand::Anomalies(a) => crate::command_cmd::anomalies(a),
    }
}

fn list_grants(api: &str, owner: Option<String>, grantee: Option<String>, active: bool, json: bool) -> Result<()> {
    let mut q = Vec::new();
    if let Some(o) = &owner {
        q.push(format!("owner={o}"));
    }
    if let Some(g) = &grantee {
        q.push(format!("grantee={g}"));
    }
    if q.is_empty() {
        bail!("give --owner or --grantee");
    }
    if active {
        q.push("active=true".into());
    }
    let b: GrantListBody = Client::new(api)?.get_json(&format!("/v1/access/grants?{}", q.join("&")))?;
    print_or_json(&b, json, || {
        for g in &b.grants {
            let to = g.grantee.org.clone().or(g.grantee.key_hash.clone()).unwrap_or_default();
            let state = if g.active { "active" } else { "inactive" };
            println!(
                "{} {} -> {to} {state}, {} releases, '{}'",
                g.id, g.owner, g.releases, g.purpose
            );
        }
    })
}

fn print_or_json<T: serde::Serialize>(body: &T, json: bool, human: impl FnOnce()) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(body)?);
    } else {
        human();
    }
    Ok(())
}

fn print_scope(s: &chipledger_node::api_access::ScopeBody) {
    println!("  devices:    {}", s.devices.join(", "));
    println!("  tags:       {}", s.tags.join(", "));
    let streams = if s.streams.is_empty() {
        "all".to_string()
    } else {
        s.streams.join(", ")
    };
    println!("  streams:    {streams}");
    println!("  records:    from {} until {} UTC", utc(s.from_ms), utc(s.until_ms));
}

use crate::audit_cmd::utc;

fn print_grant(g: &GrantBody) {
    println!("grant {} (height {})", g.id, g.height);
    println!("  owner:      {}", g.owner);
    match (&g.grantee.org, &g.grantee.key_hash) {
        (Some(o), _) => println!("  grantee:    org {o}"),
        (None, Some(k)) => println!("  grantee:    key {k}"),
        _ => {}
    }
    print_scope(&g.scope);
    println!("  purpose:    {}", g.purpose);
    println!("  expires:    {} UTC", utc(g.expires_ms));
    if let Some(p) = g.price {
        println!("  price:      {p} credits");
    }
    if let Some(o) = &g.offer {
        println!("  offer:      {o}");
    }
    match &g.revoked {
        Some(r) => println!("  revoked:    at height {} ({})", r.height, r.reason),
        None => println!("  status:     {}", if g.active { "active" } else { "expired" }),
    }
    println!("  releases:   {}", g.releases);
}

fn print_offer(o: &OfferBody) {
    println!("offer {} (height {})", o.id, o.height);
    println!("  owner:      {}", o.owner);
    print_scope(&o.scope);
    println!(
        "  price:      {} credits for {:.1} days of access",
        o.price,
        o.duration_ms as f64 / 86_400_000.0
    );
    println!("  terms:      {}", o.terms);
    println!("  expires:    {} UTC", utc(o.expires_ms));
    println!("  status:     {}", if o.open { "open" } else { "closed" });
    println!("  purchases:  {}", o.purchases);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_answers() {
        // 2000-01-01T00:00:00Z = 946684800 s (a well-known epoch value); RFC 3339 §5.8 examples.
        assert_eq!(parse_rfc3339_ms("2000-01-01T00:00:00Z").unwrap(), 946_684_800_000);
        assert_eq!(parse_rfc3339_ms("1985-04-12T23:20:50.52Z").unwrap(), 482_196_050_520);
        assert_eq!(parse_rfc3339_ms("1996-12-19T16:39:57-08:00").unwrap(), 851_042_397_000);
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        for bad in [
            "",
            "2000-01-01",
            "2000-13-01T00:00:00Z",
            "2000-01-01T00:00:00",
            "2000-01-01T00:00:00+0100",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time_ms("1800000000000").unwrap(), 1_800_000_000_000);
        assert_eq!(parse_duration_ms("30d").unwrap(), 30 * 86_400_000);
        assert_eq!(parse_duration_ms("90s").unwrap(), 90_000);
        assert_eq!(parse_duration_ms("250").unwrap(), 250);
        assert!(parse_duration_ms("3w").is_err());
        let before = now_ms();
        let t = parse_time_ms("+1h").unwrap();
        assert!(t >= before + 3_600_000 && t <= now_ms() + 3_600_000);
        assert!(parse_time_ms("now").unwrap() >= before);
    }

    #[test]
    fn grantee_keys() {
        let k = parse_grantee_key(&hex::encode([7u8; 32])).unwrap();
        assert_eq!(k, PublicKey::Ed25519([7; 32]));
        assert_eq!(
            parse_grantee_key(&format!("ed25519:{}", hex::encode([7u8; 32]))).unwrap(),
            k
        );
        assert!(parse_grantee_key("00").is_err());
    }
}
