//! Issue 5, Done-when 3, on four validator processes: `chipledger gateway` (small batches, cut
//! every 50 ms) is killed with SIGKILL twice while devices publish — once while records are
//! being ingested, once while batches are being committed — and restarted on the same `--data`
//! directory each time. The devices behave as the protocol asks: they keep every record until
//! its `DACK` and, after a reconnect, publish their births and then every record not yet
//! acknowledged again. At the end every record is acknowledged and the ledger holds each
//! device's chain with every record committed exactly once: head = last seq and hash, committed
//! records = seq, nothing missing, the gateway's batches contiguous and holding each record
//! once, and no anomaly but duplicates (records stored before a kill whose `DACK` never left).
//! Since a device never republishes a record that was acknowledged, a lost acknowledged record
//! would show as a gap.

mod data_support;

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use chipledger_cli::data_net::register_sim_devices;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::record::SignedRecord;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_node::api_data::BatchBody;
use data_support::{DackLog, Mqtt, STREAM, TestDevice, TestNet, WAIT, poll};

/// API ports 30070..30073, p2p 30170.. (clear of the other process tests).
const BASE_PORT: u16 = 30070;
const SEED: u64 = 30;
const DEVICES: u64 = 4;
const GATEWAY: &str = "gw-crash";
const GROUP: &str = "crash";
/// Small batches cut often: at every kill some are being cut, submitted or finalized.
const GATEWAY_FLAGS: [&str; 6] = ["--batch-records", "5", "--batch-ms", "50", "--http", "off"];
/// New records per device in each gateway life before a kill.
const BURST: u64 = 50;
/// Kill 1 comes once this many records of its burst are acknowledged (two batches' worth).
const KILL_1_ACKED: u64 = 10;
/// New records per device in the last life.
const FINAL_BURST: u64 = 10;

/// The devices, and every record each has signed (index = seq - 1).
struct Fleet {
    devices: Vec<TestDevice>,
    records: Vec<Vec<SignedRecord>>,
}

impl Fleet {
    fn dack_topics(&self) -> Result<Vec<String>> {
        self.devices.iter().map(|d| d.dack_topic()).collect()
    }

    /// Births, every record not acknowledged yet (in order), then `more` new records per
    /// device, interleaved across devices.
    fn publish(&mut self, mqtt: &Mqtt, log: &DackLog, more: u64) -> Result<()> {
        for (device, records) in self.devices.iter_mut().zip(&self.records) {
            mqtt.publish(device.births())?;
            let acked = log.highest(device.id) as usize;
            for rec in &records[acked..] {
                mqtt.publish([device.ddata(&rec.bytes)])?;
            }
        }
        for _ in 0..more {
            for (device, records) in self.devices.iter_mut().zip(&mut self.records) {
                let rec = device.sign(&format!("reading {}", records.len() + 1))?;
                mqtt.publish([device.ddata(&rec.bytes)])?;
                records.push(rec);
            }
        }
        Ok(())
    }

    fn published(&self) -> u64 {
        self.records.iter().map(|r| r.len() as u64).sum()
    }

    fn acked(&self, log: &DackLog) -> u64 {
        self.devices.iter().map(|d| log.highest(d.id)).sum()
    }
}

/// Collects `DACK`s until `done` holds (or fails after [`WAIT`]).
fn dacks_until(mqtt: &Mqtt, log: &mut DackLog, what: &str, mut done: impl FnMut(&DackLog) -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    while !done(log) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match mqtt.dacks.recv_timeout(left) {
            Ok(d) => log.0.push(d),
            Err(_) => bail!("timed out waiting for {what}"),
        }
    }
    Ok(())
}

#[test]
fn sigkill_mid_batch_loses_no_acked_record_and_commits_each_once() -> Result<()> {
    let t = TestNet::start("gateway-crash", BASE_PORT)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let ids = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..DEVICES)?;
    let devices = (0..DEVICES)
        .map(|i| TestDevice::new(SEED, i, GROUP))
        .collect::<Result<Vec<_>>>()?;
    assert_eq!(ids, devices.iter().map(|d| d.id).collect::<Vec<_>>());
    let mut fleet = Fleet {
        records: devices.iter().map(|_| Vec::new()).collect(),
        devices,
    };
    let listen = free_local_addr()?;
    let mut log = DackLog::default();

    // Kill 1: while the burst is being ingested.
    let gateway = t.start_gateway(GATEWAY, listen, &GATEWAY_FLAGS)?;
    let mqtt = Mqtt::connect(&runtime, listen, "crash-devices-1", &fleet.dack_topics()?)?;
    fleet.publish(&mqtt, &log, BURST)?;
    dacks_until(&mqtt, &mut log, "the first records acknowledged", |l| {
        fleet.acked(l) >= KILL_1_ACKED
    })?;
    gateway.kill()?;
    log.drain(&mqtt);
    mqtt.close();
    let acked_at_kill_1 = fleet.acked(&log);
    eprintln!(
        "kill 1: {acked_at_kill_1} of {} records acknowledged",
        fleet.published()
    );
    assert!(acked_at_kill_1 < fleet.published(), "the kill came mid-burst");

    // Kill 2: right after everything was acknowledged, while the last batches are being cut,
    // submitted and finalized.
    let gateway = t.start_gateway(GATEWAY, listen, &GATEWAY_FLAGS)?;
    let mqtt = Mqtt::connect(&runtime, listen, "crash-devices-2", &fleet.dack_topics()?)?;
    fleet.publish(&mqtt, &log, BURST)?;
    let total = fleet.published();
    dacks_until(&mqtt, &mut log, "the burst acknowledged", |l| fleet.acked(l) == total)?;
    let committed = t.gateway(GATEWAY)?.records;
    gateway.kill()?;
    mqtt.close();
    eprintln!("kill 2: {total} records acknowledged, {committed} committed on the ledger at the kill");

    // The last life: whatever was not acknowledged is published again, then a few more.
    let gateway = t.start_gateway(GATEWAY, listen, &GATEWAY_FLAGS)?;
    let mqtt = Mqtt::connect(&runtime, listen, "crash-devices-3", &fleet.dack_topics()?)?;
    fleet.publish(&mqtt, &log, FINAL_BURST)?;
    let total = fleet.published();
    dacks_until(&mqtt, &mut log, "every record acknowledged", |l| {
        fleet.acked(l) == total
    })?;
    assert_committed_exactly_once(&t, &fleet, total)?;
    let status = gateway.interrupt(WAIT)?;
    assert!(status.success(), "clean stop: {status}");
    Ok(())
}

/// The ledger holds every record once: per device head = last record, committed = seq, none
/// missing, no anomaly but duplicates; the gateway's batches add up to the records exactly,
/// each chain's heads rising from batch to batch.
fn assert_committed_exactly_once(t: &TestNet, fleet: &Fleet, total: u64) -> Result<()> {
    let g = poll("every record committed", WAIT, || {
        Ok(Some(t.gateway(GATEWAY)?).filter(|g| g.records >= total))
    })?;
    assert_eq!(g.records, total, "committed exactly once");
    for (device, records) in fleet.devices.iter().zip(&fleet.records) {
        let d = t.device(&device.id)?.expect("device data");
        assert_eq!(d.streams.len(), 1);
        let head = &d.streams[0];
        let last = records.last().expect("records");
        assert_eq!(head.stream, STREAM);
        assert_eq!(
            (head.seq, head.records, head.missing),
            (records.len() as u64, records.len() as u64, 0),
            "device {}",
            device.id
        );
        assert_eq!(head.hash, hex::encode(last.hash.0));
        for (kind, n) in &d.anomalies.counts {
            assert!(kind == "duplicate" || *n == 0, "device {}: {n} {kind}", device.id);
        }
    }
    let mut in_batches = 0u64;
    let mut heads: BTreeMap<String, u64> = BTreeMap::new();
    let mut head_records: BTreeMap<String, u64> = BTreeMap::new();
    for seq in 1..=g.last_batch {
        let b: BatchBody = t.client.get_json(&format!("/v1/data/batches/{GATEWAY}/{seq}"))?;
        in_batches += u64::from(b.record_count);
        for h in &b.heads {
            let prev = heads.insert(h.device.clone(), h.seq).unwrap_or(0);
            assert!(
                h.seq > prev,
                "batch {seq}: head of {} rises ({prev} → {})",
                h.device,
                h.seq
            );
            assert!(u64::from(h.records) <= h.seq - prev);
            *head_records.entry(h.device.clone()).or_default() += u64::from(h.records);
        }
    }
    assert_eq!(in_batches, total, "batches 1..={} hold every record once", g.last_batch);
    for (device, records) in fleet.devices.iter().zip(&fleet.records) {
        assert_eq!(head_records.get(&device.id.to_string()), Some(&(records.len() as u64)));
    }
    Ok(())
}
