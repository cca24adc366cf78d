//! `chipledger tx …`: build, sign and submit transactions; read their status.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_node::config::KeyFile;
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::{AddManufacturerCa, CaId, ModelRange, RevokeManufacturerCa};
use chipledger_types::keys::{KeyId, PublicKey};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, ThresholdKind, TxBody, TxHash};
use clap::{Args, Subcommand};

use crate::client::{Client, DEFAULT_API};

#[derive(Debug, Args)]
pub struct TxArgs {
    #[command(subcommand)]
    pub command: TxCommand,
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Sign a transaction with an organisation's key and submit it.
    Submit(SubmitArgs),
    /// Show a transaction's status (and inclusion proof once final).
    Status {
        /// Hex transaction hash.
        hash: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Validator API to submit to.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Signing organisation.
    #[arg(long)]
    pub org: String,
    /// The organisation's key file (from `node init` or `keys gen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Sequence number (default: the organisation's last used + 1, read from the node).
    #[arg(long)]
    pub seq: Option<u64>,
    /// Blocks from now after which the transaction expires.
    #[arg(long, default_value_t = 1000)]
    pub expiry_blocks: u64,
    /// Wait until the transaction is final (or rejected) and print its inclusion proof.
    #[arg(long)]
    pub wait: bool,
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub payload: PayloadCmd,
}

#[derive(Debug, Subcommand)]
pub enum PayloadCmd {
    /// Propose adding an organisation.
    ProposeAddOrg {
        #[arg(long)]
        name: String,
        /// Role(s): manufacturer, owner, publisher, auditor, consumer, operator.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Public key(s) `ed25519:<hex>` or `p256:<hex>`.
        #[arg(long = "pubkey", required = true)]
        keys: Vec<String>,
    },
    /// Propose removing an organisation.
    ProposeRemoveOrg {
        #[arg(long = "name")]
        org: String,
    },
    /// Propose replacing one of an organisation's keys from a height on.
    ProposeRotateOrgKey {
        #[arg(long = "name")]
        org: String,
        /// Public key being replaced.
        #[arg(long)]
        old: String,
        /// New public key.
        #[arg(long)]
        new: String,
        #[arg(long)]
        effective_height: u64,
    },
    /// Propose replacing a validator's checkpoint-cosigning key from a height on.
    ProposeRotateValidatorKey {
        #[arg(long)]
        validator: String,
        #[arg(long)]
        new: String,
        #[arg(long)]
        effective_height: u64,
    },
    /// Propose a new governance threshold.
    ProposeSetThreshold {
        #[arg(long)]
        value: u32,
    },
    /// Propose registering a manufacturer CA for an organisation, granting it model ranges.
    ProposeAddManufacturerCa {
        /// The manufacturer organisation.
        #[arg(long = "name")]
        org: String,
        /// The CA certificate, DER (from `device ca-init`).
        #[arg(long, value_name = "FILE")]
        ca_cert: PathBuf,
        /// Granted hardware model ranges `FIRST-LAST` (or one number), comma separated.
        #[arg(long, value_delimiter = ',', required = true)]
        models: Vec<String>,
    },
    /// Propose revoking a manufacturer CA (it moves to the revoked list).
    ProposeRevokeManufacturerCa {
        /// Hex CA id.
        #[arg(long)]
        ca: String,
        #[arg(long)]
        reason: String,
    },
    /// Approve a pending proposal.
    Approve {
        /// Hash of the proposing transaction.
        #[arg(long)]
        proposal: String,
    },
    /// Record a signed statement.
    Statement {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        body: String,
    },
}

fn parse_key(s: &str) -> Result<PublicKey> {
    s.parse()
        .map_err(|e| anyhow::anyhow!("bad public key '{s}': {e} (expected ed25519:<hex> or p256:<hex>)"))
}

/// `FIRST-LAST` or a single model number.
pub fn parse_model_range(s: &str) -> Result<ModelRange> {
    let (first, last) = s.split_once('-').unwrap_or((s, s));
    let num = |v: &str| {
        v.trim()
            .parse::<u32>()
            .with_context(|| format!("model range '{s}': '{v}' is not a number"))
    };
    let range = ModelRange {
        first: num(first)?,
        last: num(last)?,
    };
    if range.first > range.last {
        bail!("model range '{s}': first is greater than last");
    }
    Ok(range)
}

/// The manufacturer-CA governance payloads.
fn ca_payload(cmd: PayloadCmd) -> Result<Payload> {
    Ok(match cmd {
        PayloadCmd::ProposeAddManufacturerCa { org, ca_cert, models } => {
            let ca_cert_der =
                std::fs::read(&ca_cert).with_context(|| format!("reading CA certificate {}", ca_cert.display()))?;
            let models = models.iter().map(|m| parse_model_range(m)).collect::<Result<_>>()?;
            Payload::Propose(GovAction::AddManufacturerCa(AddManufacturerCa {
                org,
                ca_cert_der,
                models,
            }))
        }
        PayloadCmd::ProposeRevokeManufacturerCa { ca, reason } => {
            let id: [u8; 20] = hex::decode(&ca)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--ca must be 40 hex characters")?;
            Payload::Propose(GovAction::RevokeManufacturerCa(RevokeManufacturerCa {
                ca: CaId(id),
                reason,
            }))
        }
        other => bail!("not a manufacturer-CA payload: {other:?}"),
    })
}

fn payload(cmd: PayloadCmd) -> Result<Payload> {
    Ok(match cmd {
        PayloadCmd::ProposeAddOrg { name, roles, keys } => Payload::Propose(GovAction::AddOrg(OrgSpec {
            name,
            roles: roles
                .iter()
                .map(|r| Role::from_name(r).with_context(|| format!("unknown role '{r}'")))
                .collect::<Result<_>>()?,
            keys: keys.iter().map(|k| parse_key(k)).collect::<Result<_>>()?,
        })),
        PayloadCmd::ProposeRemoveOrg { org } => Payload::Propose(GovAction::RemoveOrg { org }),
        PayloadCmd::ProposeRotateOrgKey {
            org,
            old,
            new,
            effective_height,
        } => Payload::Propose(GovAction::RotateOrgKey {
            org,
            old: parse_key(&old)?.id(),
            new: parse_key(&new)?,
            effective_height,
        }),
        PayloadCmd::ProposeRotateValidatorKey {
            validator,
            new,
            effective_height,
        } => Payload::Propose(GovAction::RotateValidatorKey {
            validator,
            new: parse_key(&new)?,
            effective_height,
        }),
        PayloadCmd::ProposeSetThreshold { value } => Payload::Propose(GovAction::SetThreshold {
            kind: ThresholdKind::Governance,
            value,
        }),
        c @ (PayloadCmd::ProposeAddManufacturerCa { .. } | PayloadCmd::ProposeRevokeManufacturerCa { .. }) => {
            ca_payload(c)?
        }
        PayloadCmd::Approve { proposal } => {
            let h: [u8; 32] = hex::decode(&proposal)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("--proposal must be 64 hex characters")?;
            Payload::Approve { proposal: TxHash(h) }
        }
        PayloadCmd::Statement { topic, body } => Payload::Statement {
            topic,
            body: body.into_bytes(),
        },
    })
}

/// Build and sign a transaction, filling sequence and expiry from the node.
pub fn build(
    client: &Client,
    org: &str,
    key: &chipledger_types::keys::SigningKey,
    seq: Option<u64>,
    expiry_blocks: u64,
    payload: Payload,
) -> Result<Vec<u8>> {
    let status = client.status()?;
    let seq = match seq {
        Some(s) => s,
        None => client.org(org)?.last_seq + 1,
    };
    let body = TxBody {
        chain_id: status.chain_id,
        org: org.into(),
        key_id: KeyId(key.public_key().id().0),
        seq,
        expiry_height: status.height + expiry_blocks,
        payload,
    };
    Ok(SignedTx::sign(body, key).to_cbor())
}

pub fn run(args: TxArgs) -> Result<()> {
    match args.command {
        TxCommand::Submit(a) => submit(a),
        TxCommand::Status { hash, api, json } => {
            let s = Client::new(&api)?.tx(&hash)?;
            print_status(&s, json);
            Ok(())
        }
    }
}

fn submit(a: SubmitArgs) -> Result<()> {
    let client = Client::new(&a.api)?;
    let key = KeyFile::read(&a.key)?;
    let tx = build(&client, &a.org, &key, a.seq, a.expiry_blocks, payload(a.payload)?)?;
    let sub = client.submit(&tx)?;
    if !a.wait {
        if a.json {
            println!("{}", serde_json::to_string_pretty(&sub)?)
        } else {
            println!("{} {}", sub.hash, sub.status)
        }
        return Ok(());
    }
    let s = wait_final(&client, &sub.hash, Duration::from_secs(60))?;
    print_status(&s, a.json);
    if s.status != "final" {
        bail!("transaction {} was {}", s.hash, s.status);
    }
    Ok(())
}

/// Poll until a transaction is final or rejected.
pub fn wait_final(client: &Client, hash: &str, timeout: Duration) -> Result<chipledger_node::api::TxStatusBody> {
    let start = Instant::now();
    loop {
        let s = client.tx(hash)?;
        if s.status == "final" || s.status == "rejected" {
            return Ok(s);
        }
        if start.elapsed() > timeout {
            bail!("transaction {hash} still {} after {}s", s.status, timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_status(s: &chipledger_node::api::TxStatusBody, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(s).unwrap_or_default());
        return;
    }
    match (&s.status[..], s.height, &s.proof) {
        ("final", Some(h), Some(p)) => println!(
            "{} final at height {h}, leaf {} of {} (root {})",
            s.hash, p.leaf_index, p.log_size, p.root
        ),
        ("rejected", _, _) => println!("{} rejected: {}", s.hash, s.reason.as_deref().unwrap_or("")),
        _ => println!("{} {}", s.hash, s.status),
    }
}
