//! `chipledger demo`: four validators as separate processes on loopback, a few governance
//! transactions so the log is not empty, a simulated device fleet (`fleet`), a firmware rollout
//! over it (`chipledger_cli::fleet_rollout`: publish → certify → two approvals → device agents
//! update with injected failures → CVE exposure), data at source (`data`: simulated sensors →
//! MQTT → gateway → committed batches), then running until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use chipledger_cli::fleet_rollout::{FleetDevice, RolloutPlan, print_summary, run_rollout};
use chipledger_node::config::KeyFile;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, TxHash};
use clap::Args;

use crate::client::Client;
use crate::net::LocalNet;
use crate::txcmd::{build, wait_final};

mod access;
mod data;
mod fleet;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the network's keys, genesis and data live (reused on restart).
    #[arg(long, default_value = "chipledger-demo")]
    pub dir: PathBuf,
    /// API ports are P..P+3 and p2p ports P+100..P+103.
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Seed choosing which devices fail during the firmware rollout (random when absent;
    /// printed, so a run can be replayed).
    #[arg(long)]
    pub rollout_seed: Option<u64>,
}

pub fn run(a: DemoArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the chipledger binary")?;
    let fresh = !a.dir.join("genesis.json").exists();
    let mut net = LocalNet::prepare(&a.dir, &exe, a.base_port, "chipledger-demo")?;
    println!(
        "{} network in {}",
        if fresh { "created a new" } else { "reusing the" },
        a.dir.display()
    );
    net.start_all()?;
    for i in 0..net.names.len() {
        net.wait_ready(i, Duration::from_secs(60))?;
        println!(
            "  {:<10} API {}  (log: {})",
            net.names[i],
            net.apis[i],
            net.node_dir(i).join("node.log").display()
        );
    }
    let client = Client::new(&net.apis[0])?;
    let gateway = if client.status()?.log_size == 0 {
        println!("submitting governance transactions …");
        seed_transactions(&net, &client)?;
        println!("provisioning the device fleet …");
        let devices = fleet::provision_fleet(&net, &client)?;
        println!("firmware rollout over the fleet …");
        firmware_rollout(&net, devices, a.rollout_seed)?;
        println!("data at source: sensors → MQTT → gateway → batches on the ledger …");
        let (gateway, sensors) = data::run(&net, &exe, a.base_port)?;
        println!("access: credits, an offer, a purchase, a logged key release, a revocation …");
        let keyservice = access::run(&net, &exe, a.base_port, &sensors)?;
        (Some(gateway), Some(keyservice))
    } else {
        (
            data::resume(&net, &exe, a.base_port)?,
            access::resume(&net, &exe, a.base_port)?,
        )
    };
    let (gateway, keyservice) = gateway;
    println!(
        "\nthe network is running. Open the explorer at {}/ or try:\n  chipledger status --api {}\n  curl {}/v1/checkpoint\n  chipledger verify checkpoint --api {}\nCtrl-C stops it.",
        net.apis[0], net.apis[0], net.apis[0], net.apis[0]
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        loop {
            tokio::select! {
                _ = chipledger_node::run::shutdown_signal() => break,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {
                    for i in 0..net.names.len() {
                        if !net.is_running(i) {
                            eprintln!("warning: {} exited; see {}", net.names[i], net.node_dir(i).join("node.log").display());
                        }
                    }
                }
            }
        }
    });
    drop(keyservice);
    if let Some(g) = gateway {
        println!("stopping the gateway …");
        let _ = g.interrupt(Duration::from_secs(10));
    }
    println!("stopping validators …");
    net.stop_all();
    println!("stopped; data kept in {}", a.dir.display());
    Ok(())
}

/// The firmware rollout (`chipledger_cli::fleet_rollout`): publish 1.0.0 and 1.1.0, certify,
/// two-organisation approval, ~120 device agents with injected failures, CVE exposure.
fn firmware_rollout(net: &LocalNet, devices: Vec<FleetDevice>, seed: Option<u64>) -> Result<()> {
    let seed = seed.unwrap_or_else(|| {
        let mut b = [0u8; 8];
        rand::fill(&mut b);
        u64::from_be_bytes(b) % 1_000_000
    });
    let plan = RolloutPlan::demo(fleet::fleet_models(), seed);
    let mut out = |line: &str| println!("{line}");
    let summary = run_rollout(net, devices, &plan, &mut out)?;
    print_summary(&summary, &plan, &mut out);
    println!(
        "  try: chipledger firmware exposure {} --api {}\n       chipledger firmware status --rollout {} --api {}",
        plan.cve, net.apis[0], summary.rollout, net.apis[0]
    );
    Ok(())
}

/// City proposes adding a data buyer; maker and vendor approve (threshold 3 of 4), so it
/// executes; the auditor records a statement.
fn seed_transactions(net: &LocalNet, client: &Client) -> Result<()> {
    let key = |org: &str| KeyFile::read(&net.dir.join("orgs").join(format!("{org}.key")));
    let buyer_key_path = net.dir.join("orgs/buyer.key");
    let buyer = if buyer_key_path.exists() {
        KeyFile::read(&buyer_key_path)?
    } else {
        let mut s = [0u8; 32];
        rand::fill(&mut s);
        let k = SigningKey::ed25519_from_seed(&s);
        KeyFile::write(&buyer_key_path, &k)?;
        k
    };
    let spec = OrgSpec {
        name: "buyer".into(),
        roles: vec![Role::Consumer],
        keys: vec![buyer.public_key()],
    };
    let propose = build(
        client,
        "city",
        &key("city")?,
        None,
        1000,
        Payload::Propose(GovAction::AddOrg(spec)),
    )?;
    let id = TxHash::of(&propose);
    submit_and_wait(client, &propose, "city proposes adding organisation 'buyer'")?;
    for org in ["maker", "vendor"] {
        let tx = build(client, org, &key(org)?, None, 1000, Payload::Approve { proposal: id })?;
        submit_and_wait(client, &tx, &format!("{org} approves"))?;
    }
    let st = Payload::Statement {
        topic: "demo".into(),
        body: b"network started".to_vec(),
    };
    let tx = build(client, "audit", &key("audit")?, None, 1000, st)?;
    submit_and_wait(client, &tx, "audit records a statement")?;
    Ok(())
}

fn submit_and_wait(client: &Client, tx: &[u8], what: &str) -> Result<()> {
    let sub = client.submit(tx)?;
    let s = wait_final(client, &sub.hash, Duration::from_secs(60))?;
    println!(
        "  {what}: {} at height {}",
        s.status,
        s.height.map(|h| h.to_string()).unwrap_or_else(|| "-".into())
    );
    Ok(())
}
