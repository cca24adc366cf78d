//! The gateway hosted by a validator: `chipledger node run --gateway …` runs the same gateway
//! as `chipledger gateway`, in the validator's process and against its own API. Validator 0 is
//! restarted with a gateway; the gateway registers itself, devices publish through its
//! embedded broker, every record is acknowledged durable and committed, and the validator goes
//! on serving its API.

mod data_support;

use anyhow::Result;
use chipledger_cli::data_net::{OPERATOR, register_sim_devices};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::free_local_addr;
use data_support::{DackLog, Mqtt, TestDevice, TestNet, WAIT, poll};

/// API ports 30570..30573, p2p 30670.. (clear of the other process tests).
const BASE_PORT: u16 = 30570;
const SEED: u64 = 57;
const DEVICES: u64 = 3;
const RECORDS: u64 = 20;
const GATEWAY: &str = "gw-in-node";
const GROUP: &str = "in-node";

#[test]
fn a_validator_hosts_the_gateway_in_its_own_process() -> Result<()> {
    let mut t = TestNet::start("node-gateway", BASE_PORT)?;
    let ids = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..DEVICES)?;
    let listen = free_local_addr()?;
    t.net.signal(0, "TERM")?;
    let extra = [
        "--gateway",
        GATEWAY,
        "--gateway-org",
        OPERATOR,
        "--gateway-key",
        &t.data.operator_key_path.display().to_string(),
        "--gateway-listen",
        &listen.to_string(),
    ]
    .map(String::from);
    t.net.start_with(0, &extra)?;
    t.net.wait_ready(0, WAIT)?;
    let registered = poll("the in-node gateway's registration", WAIT, || {
        Ok(t.gateway(GATEWAY).ok())
    })?;
    assert_eq!(registered.operator, OPERATOR);

    let mut devices = (0..DEVICES)
        .map(|i| TestDevice::new(SEED, i, GROUP))
        .collect::<Result<Vec<_>>>()?;
    assert_eq!(devices.iter().map(|d| d.id).collect::<Vec<_>>(), ids);
    let runtime = tokio::runtime::Runtime::new()?;
    // The embedded broker starts once the gateway has registered: retry the connection.
    let topics = devices.iter().map(|d| d.dack_topic()).collect::<Result<Vec<_>>>()?;
    let mqtt = poll("the in-node broker", WAIT, || {
        Ok(Mqtt::connect(&runtime, listen, "node-gw-test", &topics).ok())
    })?;
    let mut log = DackLog::default();
    for d in &mut devices {
        mqtt.publish(d.births())?;
        for k in 0..RECORDS {
            let rec = d.sign(&format!("reading {k}"))?;
            mqtt.publish([d.ddata(&rec.bytes)])?;
        }
    }
    for d in &devices {
        log.wait(&mqtt, d.id, RECORDS)?;
    }
    let committed = poll("every record committed", WAIT, || {
        let g = t.gateway(GATEWAY)?;
        Ok((g.records >= DEVICES * RECORDS).then_some(g))
    });
    let g = match committed {
        Ok(g) => g,
        // Say what the ledger holds and what the gateway logged, not just "timed out".
        Err(e) => {
            let seen = t
                .gateway(GATEWAY)
                .map(|g| format!("{g:?}"))
                .unwrap_or_else(|e| format!("{e:#}"));
            let log = t.log_tail(0, 80);
            return Err(e.context(format!("gateway on the ledger: {seen}\nvalidator 0 log:\n{log}")));
        }
    };
    assert_eq!(g.records, DEVICES * RECORDS, "no record committed twice");
    assert!(g.last_batch >= 1);
    for id in &ids {
        let d = t.device(id)?.expect("the device has chains");
        assert_eq!(d.records, RECORDS, "{id}: every record committed");
        assert_eq!(d.anomalies.total, 0);
    }
    // The validator itself is still serving.
    t.net.wait_ready(0, WAIT)?;
    mqtt.close();
    Ok(())
}
