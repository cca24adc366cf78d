//! The demo's firmware rollout (`chipledger_cli::fleet_rollout`) on four validator processes
//! with 20 devices and seeded failures: every device agent polls, downloads the bundle and the
//! image from any node, verifies it on the device side and proves the install; the fleet map
//! converges to exactly the devices without an injected failure, the rollout finishes with the
//! LwM2M results each fault must produce, and the CVE exposure names exactly the devices left
//! on the factory firmware — also as a proven answer checked against the genesis validators.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, provision_chip, register_payload, submit_final};
use chipledger_cli::firmware_cmd::{get_final, parse_rollout, verify_with_genesis};
use chipledger_cli::fleet_rollout::{
    FACTORY_VERSION, FIXED_VERSION, FleetDevice, RolloutPlan, assign_faults, fault_count, run_rollout,
};
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::{build, wait_final};
use chipledger_cli::update_agent::Fault;
use chipledger_node::api_firmware::{DeviceFirmwareBody, RolloutDetail};
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, DeviceId, ModelRange};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, Payload};

/// API ports 26070..26073, p2p 26170.. (clear of the other process tests).
const BASE_PORT: u16 = 26070;
const DEVICES: usize = 20;
const MODELS: [u32; 2] = [150, 151];
/// Fixed so a failure replays; printed by the test.
const SEED: u64 = 4242;

fn network() -> Result<LocalNet> {
    let dir = std::env::temp_dir().join(format!("chipledger-test-rollout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, BASE_PORT, "chipledger-test")?;
    net.start_all_ready(Duration::from_secs(60))?;
    Ok(net)
}

fn org_key(net: &LocalNet, org: &str) -> Result<SigningKey> {
    KeyFile::read(&net.dir.join("orgs").join(format!("{org}.key")))
}

/// A `maker` CA granted models 100–199 by governance, then `n` devices registered to `city`
/// in one batch.
fn fleet(net: &LocalNet, c: &Client, n: usize) -> Result<Vec<FleetDevice>> {
    let ca = Ca::generate("CN=Maker Device CA,O=maker")?;
    let grant = GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca.cert_der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    });
    let proposal = submit_final(c, "city", &org_key(net, "city")?, Payload::Propose(grant))?;
    let id = parse_rollout(&proposal.hash)?;
    for org in ["maker", "vendor"] {
        submit_final(c, org, &org_key(net, org)?, Payload::Approve { proposal: id })?;
    }
    let maker = org_key(net, "maker")?;
    let first_seq = c.org("maker")?.last_seq + 1;
    let (mut devices, mut txs) = (Vec::new(), Vec::new());
    for i in 0..n {
        let chip = provision_chip(&ca, "maker", "lamp")?;
        let model = MODELS[i % MODELS.len()];
        let payload = register_payload(ca.id, &chip, model, "city")?;
        txs.push(build(c, "maker", &maker, Some(first_seq + i as u64), 1000, payload)?);
        devices.push(FleetDevice { chip, model });
    }
    let items = c.submit_batch(&txs)?;
    let last = items.last().and_then(|i| i.hash.clone()).context("batch answer")?;
    let s = wait_final(c, &last, Duration::from_secs(120))?;
    if s.status != "final" {
        bail!("registration: {}", s.reason.unwrap_or_default());
    }
    Ok(devices)
}

fn hex_set(ids: &[DeviceId]) -> BTreeSet<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// The proven answer for `device` about the plan's CVE: its version and whether it is exposed.
fn proven(net: &LocalNet, c: &Client, device: &DeviceId, cve: &str) -> Result<(String, bool)> {
    let body: DeviceFirmwareBody = get_final(c, &format!("/v1/firmware/devices/{device}?cve={cve}"))?;
    verify_with_genesis(&body, device, &net.dir.join("genesis.json"))?;
    let version = body.installed.as_ref().context("attested install")?.version.clone();
    Ok((version, body.exposure.context("exposure")?.exposed))
}

#[test]
fn demo_rollout_converges_and_exposure_names_the_devices_left_behind() -> Result<()> {
    let mut net = network()?;
    let result = run(&net);
    net.stop_all();
    result
}

fn run(net: &LocalNet) -> Result<()> {
    let c = Client::new(&net.apis[0])?;
    let devices = fleet(net, &c, DEVICES)?;
    let plan = RolloutPlan {
        bad_download_pct: 5,
        power_loss_pct: 5,
        concurrency: 8,
        ..RolloutPlan::demo(MODELS.to_vec(), SEED)
    };
    eprintln!("rollout seed {SEED}");
    let mut out = |line: &str| eprintln!("{line}");
    let s = run_rollout(net, devices, &plan, &mut out)?;

    assert!(s.errors.is_empty(), "agent errors: {:?}", s.errors);
    assert_eq!(s.bad_download.len(), fault_count(DEVICES, 5));
    assert_eq!(s.power_loss.len(), fault_count(DEVICES, 5));
    let left_behind: BTreeSet<String> = hex_set(&s.bad_download)
        .union(&hex_set(&s.power_loss))
        .cloned()
        .collect();
    assert_eq!(left_behind.len(), 2, "one device per fault kind");
    // The fleet map converges: every device without an injected failure proved 1.1.0.
    assert_eq!(s.installed.len(), DEVICES - left_behind.len());
    assert!(hex_set(&s.installed).is_disjoint(&left_behind));
    assert_eq!(s.version_map.get(FIXED_VERSION), Some(&(DEVICES - 2)));
    assert_eq!(s.version_map.get(FACTORY_VERSION), Some(&2));
    assert_eq!(s.unknown_firmware, 0, "every device proved its factory firmware first");
    // Exposure is exactly the devices not updated.
    assert_eq!(s.exposed.iter().cloned().collect::<BTreeSet<_>>(), left_behind);
    assert_eq!(s.exposed.len(), 2);

    // The rollout finished with the LwM2M result each fault produces.
    let d: RolloutDetail = c.get_json(&format!("/v1/firmware/rollouts/{}", s.rollout))?;
    assert_eq!(d.rollout.status, "finished");
    assert_eq!(s.rollout_status, "finished");
    assert_eq!((d.rollout.counts.succeeded, d.rollout.counts.failed), (18, 2));
    assert_eq!(d.rollout.attested, 18);
    let result_of = |id: &DeviceId| {
        let id = id.to_string();
        d.devices
            .iter()
            .find(|p| p.device == id)
            .map(|p| (p.state.clone(), p.result))
    };
    assert_eq!(
        result_of(&s.bad_download[0]),
        Some(("Idle".into(), 5)),
        "integrity check failure"
    );
    assert_eq!(
        result_of(&s.power_loss[0]),
        Some(("Downloaded".into(), 8)),
        "update failed"
    );
    assert_eq!(result_of(&s.installed[0]), Some(("Idle".into(), 1)), "success");

    // The same answers, proven against a quorum-cosigned checkpoint.
    assert_eq!(
        proven(net, &c, &s.bad_download[0], &plan.cve)?,
        (FACTORY_VERSION.into(), true)
    );
    assert_eq!(
        proven(net, &c, &s.installed[0], &plan.cve)?,
        (FIXED_VERSION.into(), false)
    );

    // The faults replay from the seed.
    let mut ids: Vec<DeviceId> = s.installed.clone();
    ids.extend(&s.bad_download);
    ids.extend(&s.power_loss);
    let again = assign_faults(&ids, &plan);
    assert_eq!(again[DEVICES - 2], Fault::BadDownload);
    assert_eq!(again[DEVICES - 1], Fault::PowerLoss);
    assert!(again[..DEVICES - 2].iter().all(|f| *f == Fault::None));
    Ok(())
}
