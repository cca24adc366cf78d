//! The demo's access phase (`chipledger_cli::access_demo`): the research organisation `buyer`
//! buys a month of one district's air-quality data with ledger credits, the city's key service
//! releases an epoch key only after the `KeyRelease` is final, the buyer decrypts, the city
//! revokes and the next request is refused; a vendor technician runs an authorized diagnostic
//! and the sensor's receipt is committed; a range proof over a hidden reading is verified; the
//! sensor's audit trail is verified offline.

use std::path::Path;

use anyhow::Result;
use chipledger_cli::access_demo::{AccessDemo, KeyServiceProcess, run as run_scenario};
use chipledger_types::device_tx::DeviceId;

use super::data;
use crate::net::LocalNet;

/// The Consumer organisation `seed_transactions` adds.
const BUYER: &str = "buyer";
/// The firmware vendor's technician runs the diagnostic.
const TECHNICIAN: &str = "vendor";
/// Port offset of the key service from the demo's base port.
const KEYSERVICE_PORT_OFFSET: u16 = 202;

fn scenario<'a>(net: &'a LocalNet, exe: &'a Path, base_port: u16, sensors: &'a [DeviceId]) -> AccessDemo<'a> {
    AccessDemo {
        net,
        exe,
        sensors,
        records_url: data::records_url(base_port),
        owner_data_key: data::owner_key_path(net),
        keyservice_listen: ([127, 0, 0, 1], base_port + KEYSERVICE_PORT_OFFSET).into(),
        buyer: BUYER,
        technician: TECHNICIAN,
        broker: data::broker(base_port),
        sensor_seed: data::SENSOR_SEED,
        keyservice_log: Some(data::dir(net).join("keyservice.log")),
    }
}

/// The whole phase; returns the running key service.
pub fn run(net: &LocalNet, exe: &Path, base_port: u16, sensors: &[DeviceId]) -> Result<KeyServiceProcess> {
    let d = scenario(net, exe, base_port, sensors);
    let (outcome, ks) = run_scenario(&d, &mut |line: &str| println!("{line}"))?;
    println!(
        "  try: chipledger audit --device {} --verify --api {api}\n       chipledger audit --org {BUYER} --api {api}\n       chipledger access grant-show {} --api {api}",
        sensors[0],
        outcome.grant,
        api = net.apis[0],
    );
    Ok(ks)
}

/// Restarts the key service of an earlier demo run, if the data phase ran.
pub fn resume(net: &LocalNet, exe: &Path, base_port: u16) -> Result<Option<KeyServiceProcess>> {
    if !data::owner_key_path(net).exists() {
        return Ok(None);
    }
    let ks = KeyServiceProcess::start(&scenario(net, exe, base_port, &[]))?;
    println!("  city's key service listening on {}", ks.url);
    Ok(Some(ks))
}
