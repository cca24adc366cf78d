//! Governance steps that prepare a [`LocalNet`] for a device fleet: a new organisation joins,
//! a manufacturer's CA is granted a model range. Shared by the demo (`demo/fleet.rs`) and
//! `chipledger bench explorer`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, ModelRange};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, TxHash};

use crate::client::Client;
use crate::device_cmd::{Ca, submit_final};
use crate::net::LocalNet;
use crate::txcmd::{build, wait_final};

/// The organisation that proposes governance actions, and those that approve them (with the
/// proposer, 3 of the 4 default organisations: the default threshold).
pub const PROPOSER: &str = "city";
pub const APPROVERS: [&str; 2] = ["maker", "vendor"];
/// How long a proposal may take to become final.
const PROPOSAL_WAIT: Duration = Duration::from_secs(60);
/// Blocks until a governance transaction expires.
const EXPIRY_BLOCKS: u64 = 1000;

/// The key file of `org` in the network directory (`<dir>/orgs/<org>.key`).
pub fn org_key_path(net: &LocalNet, org: &str) -> PathBuf {
    net.dir.join("orgs").join(format!("{org}.key"))
}

/// The signing key of `org`.
pub fn org_key(net: &LocalNet, org: &str) -> Result<SigningKey> {
    KeyFile::read(&org_key_path(net, org))
}

/// [`PROPOSER`] proposes, [`APPROVERS`] approve: the action executes. Prints one line.
pub fn govern(net: &LocalNet, client: &Client, action: GovAction, what: &str) -> Result<()> {
    let propose = build(
        client,
        PROPOSER,
        &org_key(net, PROPOSER)?,
        None,
        EXPIRY_BLOCKS,
        Payload::Propose(action),
    )?;
    let id = TxHash::of(&propose);
    let s = wait_final(client, &client.submit(&propose)?.hash, PROPOSAL_WAIT)?;
    if s.status != "final" {
        bail!("{what}: proposal {}", s.reason.unwrap_or_default());
    }
    for org in APPROVERS {
        submit_final(client, org, &org_key(net, org)?, Payload::Approve { proposal: id })?;
    }
    println!("  {what}: approved by {PROPOSER}, {}", APPROVERS.join(", "));
    Ok(())
}

/// Adds organisation `name` with `roles` by governance; its key is `<dir>/orgs/<name>.key`
/// (made unless it exists, so a restarted network keeps it).
pub fn add_org(net: &LocalNet, client: &Client, name: &str, roles: Vec<Role>) -> Result<SigningKey> {
    let path = org_key_path(net, name);
    let key = if path.exists() {
        KeyFile::read(&path)?
    } else {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let k = SigningKey::ed25519_from_seed(&seed);
        KeyFile::write(&path, &k)?;
        k
    };
    let spec = OrgSpec {
        name: name.into(),
        roles,
        keys: vec![key.public_key()],
    };
    govern(
        net,
        client,
        GovAction::AddOrg(spec),
        &format!("add organisation '{name}'"),
    )?;
    Ok(key)
}

/// A new CA for manufacturer `org` (saved as `<dir>/cas/<org>-ca.{key,der}`), granted `models`
/// by governance.
pub fn grant_ca(net: &LocalNet, client: &Client, org: &str, ca_name: &str, models: ModelRange) -> Result<Ca> {
    let cas = net.dir.join("cas");
    std::fs::create_dir_all(&cas)?;
    let ca = Ca::generate(ca_name)?;
    ca.save(&cas.join(format!("{org}-ca.key")), &cas.join(format!("{org}-ca.der")))?;
    let what = format!("grant '{org}' CA {} models {}..", ca.id, models.first);
    let action = GovAction::AddManufacturerCa(AddManufacturerCa {
        org: org.into(),
        ca_cert_der: ca.cert_der.clone(),
        models: vec![models],
    });
    govern(net, client, action, &what)?;
    Ok(ca)
}
