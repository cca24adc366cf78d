//! The demo's device fleet: a second manufacturer joins by governance, each manufacturer's CA
//! is granted a model range by governance, then each provisions SoftChips registered to `city`,
//! submitted in batches. The chips stay in memory for the firmware rollout that follows
//! (`chipledger_cli::fleet_rollout`) and are saved to `<dir>/chips`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, chip_device_id, provision_chip, register_payload};
use chipledger_cli::fleet_rollout::FleetDevice;
use chipledger_cli::fleet_setup::{add_org, grant_ca, org_key};
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::{build, wait_final};
use chipledger_types::device_tx::ModelRange;
use chipledger_types::tx::Role;

/// Devices each manufacturer provisions (two manufacturers: 120 in all).
pub const DEVICES_PER_MANUFACTURER: usize = 60;
/// The second manufacturer, added by governance.
pub const SECOND_MANUFACTURER: &str = "fabx";
/// The fleet's owner.
pub const FLEET_OWNER: &str = "city";

/// One manufacturer's line: its org, CA name, granted model and model name.
struct Line {
    org: &'static str,
    ca_name: &'static str,
    model: u32,
    model_name: &'static str,
}

const LINES: [Line; 2] = [
    Line {
        org: "maker",
        ca_name: "CN=Maker Device CA,O=maker",
        model: 100,
        model_name: "streetlamp",
    },
    Line {
        org: SECOND_MANUFACTURER,
        ca_name: "CN=FabX Device CA,O=fabx",
        model: 200,
        model_name: "air-meter",
    },
];

fn add_second_manufacturer(net: &LocalNet, client: &Client) -> Result<()> {
    add_org(net, client, SECOND_MANUFACTURER, vec![Role::Manufacturer]).map(drop)
}

fn grant_line_ca(net: &LocalNet, client: &Client, line: &Line) -> Result<Ca> {
    let models = ModelRange {
        first: line.model,
        last: line.model + 99,
    };
    grant_ca(net, client, line.org, line.ca_name, models)
}

/// Provision and register one manufacturer's devices in one batch; returns the last tx hash
/// and the devices.
fn register_line(net: &LocalNet, client: &Client, line: &Line, ca: &Ca) -> Result<(String, Vec<FleetDevice>)> {
    let key = org_key(net, line.org)?;
    let chips_dir = net.dir.join("chips");
    std::fs::create_dir_all(&chips_dir)?;
    let first_seq = client.org(line.org)?.last_seq + 1;
    let mut txs = Vec::with_capacity(DEVICES_PER_MANUFACTURER);
    let mut devices = Vec::with_capacity(DEVICES_PER_MANUFACTURER);
    for i in 0..DEVICES_PER_MANUFACTURER {
        let chip = provision_chip(ca, line.org, line.model_name)?;
        chip.save(&chips_dir.join(format!("{}.chip", chip_device_id(&chip))))?;
        let model = line.model + (i % 2) as u32;
        let payload = register_payload(ca.id, &chip, model, FLEET_OWNER)?;
        devices.push(FleetDevice { chip, model });
        txs.push(build(
            client,
            line.org,
            &key,
            Some(first_seq + i as u64),
            1000,
            payload,
        )?);
    }
    let items = client.submit_batch(&txs)?;
    let mut last = None;
    for item in items {
        match item.hash {
            Some(h) if item.status == "pending" => last = Some(h),
            _ => bail!(
                "registration refused: {} {}",
                item.status,
                item.message.unwrap_or_default()
            ),
        }
    }
    Ok((last.context("empty batch")?, devices))
}

/// The hardware models of the fleet's devices.
pub fn fleet_models() -> Vec<u32> {
    LINES.iter().flat_map(|l| [l.model, l.model + 1]).collect()
}

/// The whole fleet; prints progress and the time it took; returns the devices.
pub fn provision_fleet(net: &LocalNet, client: &Client) -> Result<Vec<FleetDevice>> {
    let start = Instant::now();
    add_second_manufacturer(net, client)?;
    let mut pending = Vec::new();
    let mut devices = Vec::new();
    for line in &LINES {
        let ca = grant_line_ca(net, client, line)?;
        let (last, line_devices) = register_line(net, client, line, &ca)?;
        devices.extend(line_devices);
        println!(
            "  '{}' submitted {DEVICES_PER_MANUFACTURER} {} devices (models {}, {})",
            line.org,
            line.model_name,
            line.model,
            line.model + 1
        );
        pending.push(last);
    }
    for hash in pending {
        let s = wait_final(client, &hash, Duration::from_secs(120))?;
        if s.status != "final" {
            bail!("registration {hash}: {}", s.reason.unwrap_or_default());
        }
    }
    let owned = client.devices(FLEET_OWNER, 1)?.total;
    println!(
        "  fleet ready: '{FLEET_OWNER}' owns {owned} devices ({:.1}s); chips in {}, CAs in {}",
        start.elapsed().as_secs_f64(),
        net.dir.join("chips").display(),
        net.dir.join("cas").display()
    );
    Ok(devices)
}
