//! The data path: simulated devices → a real gateway → the simulated ledger.
//!
//! A real [`Gateway`] (its redb record store on a [`FaultyDisk`]) takes sealed, signed records
//! from simulated devices and commits batches of their hashes as `CommitBatch` transactions of
//! the gateway's organisation, submitted to one validator that never crashes. Everything is
//! drawn from the seed (the [`DataFaults`] of the seed's [`FaultMix`](crate::FaultMix)), and the
//! gateway reads a virtual clock, so a seed replays exactly.
//!
//! - **Devices.** The story's chips (once their registration is final, the gateway's directory
//!   learns their DeviceID key from the ledger: trust 1), and a device that announced its own
//!   key (trust 0). Each seals readings (COSE_Encrypt0) and signs one hash-chained record at a
//!   time; it resends every record it holds no acknowledgement for.
//! - **Transport faults.** Records lost on the way (the device resends), acknowledgements lost
//!   on the way back (the resent record is a duplicate), records sent out of order (a gap, then
//!   the late record fills it), sent one by one or as one group.
//! - **Byzantine devices.** A chip replays old records, signs a second record for a position it
//!   already filled (a fork), sends records with a broken signature and malformed bytes, and
//!   floods the gateway with one large group; a device nobody registered or announced sends
//!   records too.
//! - **Gateway crash.** Once per seed the gateway is killed, or its disk fails (write error, or
//!   power loss with a torn write and lost unsynced writes) and it is killed at the failure; it
//!   reopens from its store over the plain file.
//!
//! Invariants: **no acknowledged record lost** (right after every gateway restart, every record
//! the gateway acknowledged is in its store with the same hash; at settle, every one is in a
//! batch that is final on every validator, whose root the gateway's stored hashes reproduce, and
//! the ledger's chain heads are the gateway's) and **record integrity** (a replay is never
//! acknowledged as new, a fork, a broken signature, malformed bytes or an unknown device's record
//! never acknowledged nor committed; every fork shows on the ledger as an anomaly report).

use crate::VALIDATORS;
use crate::disk::{DiskControl, DiskFault, DiskTrip, FaultyDisk};
use crate::faults::{Crash, mix};
use crate::invariants::{Invariant, Violation};
use crate::story::{CHIPS, Fixture, chip_key, p256_key};
use crate::workload::{Workload, is_final};
use crate::world::World;
use chipledger_device::cert::verify_deviceid;
use chipledger_device::key::{DevicePublicKey, DeviceSigner};
use chipledger_device::record::{Record, RecordChainWriter, RecordHash, sign_record};
use chipledger_device::seal::{EpochKey, iv_for, payload_aad, seal_encrypt0};
use chipledger_gateway::store::ChainKey;
use chipledger_gateway::{
    BatchError, DeviceDirectory, DeviceStatus, Gateway, GatewayConfig, IngestError, MemoryDirectory, Rejection,
    StoreError, SubmitError, Submitter, TxStatus,
};
use chipledger_node::executor::{SubmitError as NodeSubmitError, TxStatus as NodeTxStatus};
use chipledger_state::data::model::{anomalies_of, get_batch, get_gateway, get_head};
use chipledger_state::device::device_id_of;
use chipledger_state::model::get_device;
use chipledger_types::data_tx::{AnomalyKind, CommitBatch, RegisterGateway, TrustLevel, batch_root};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::merkle::Hash;
use chipledger_types::record::ChainAnomaly;
use chipledger_types::tx::{Payload, TxHash};
use p256::ecdsa::SigningKey as P256Key;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The organisation operating the gateway (genesis, Operator role, no validator).
pub const GATEWAY_ORG: &str = "relay";
/// The gateway's registered name.
pub const GATEWAY: &str = "gw-sim";
const STREAM: &str = "temp";
const EPOCH: u32 = 1;
/// The data path runs every this many polls (500 ms virtual).
const TICK_EVERY_POLLS: u64 = 2;
/// Most new records an honest device signs per data tick.
const RECORDS_PER_TICK_MAX: u64 = 1;
/// One data tick in this many also runs a byzantine device action.
const BYZANTINE_EVERY: u64 = 3;
/// Most transactions of the gateway pending at once (it pipelines batches and reports).
const IN_FLIGHT_MAX: usize = 32;
/// Data ticks an armed gateway disk has to fail in before the gateway is killed anyway.
const DISK_FAULT_TICKS: u64 = 40;
/// Records in the flood, and the writes within which the gateway's armed disk fails.
pub const DATA_FLOOD_MIN: u64 = 20;
pub const DATA_FLOOD_MAX: u64 = 80;
pub const GATEWAY_DISK_WRITES_MAX: u64 = 40;

/// The data path's faults, drawn from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFaults {
    /// Records lost between device and gateway (percent; the device resends).
    pub loss_pct: u64,
    /// Acknowledgements lost on the way back (percent; the resent record is a duplicate).
    pub ack_loss_pct: u64,
    /// Sends in which two of the device's outstanding records swap places (percent).
    pub reorder_pct: u64,
    /// Records per batch.
    pub batch_records: usize,
    /// How the gateway goes down, and at which data tick (counted from its registration).
    pub crash: Crash,
    pub crash_tick: u64,
    /// Records in the flood, and the data tick it comes at.
    pub flood_records: u64,
    pub flood_tick: u64,
}

impl DataFaults {
    pub fn from_seed(r: &dyn Fn(u64) -> u64) -> Self {
        Self {
            loss_pct: r(40) % 31,
            ack_loss_pct: r(41) % 21,
            reorder_pct: r(42) % 31,
            batch_records: 4 + (r(43) % 29) as usize,
            crash: match r(44) % 3 {
                0 => Crash::Kill,
                1 => Crash::Disk(DiskFault::WriteError, 1 + r(45) % GATEWAY_DISK_WRITES_MAX),
                _ => Crash::Disk(DiskFault::PowerLoss, 1 + r(45) % GATEWAY_DISK_WRITES_MAX),
            },
            crash_tick: 5 + r(46) % 40,
            flood_records: DATA_FLOOD_MIN + r(47) % (DATA_FLOOD_MAX - DATA_FLOOD_MIN + 1),
            flood_tick: 3 + r(48) % 40,
        }
    }
}

/// What the data path did (for the summary).
#[derive(Clone, Copy, Debug, Default)]
pub struct DataStats {
    /// Records the gateway acknowledged (first time), and of them gaps and late gap-fillers.
    pub acked: u64,
    pub gaps: u64,
    pub out_of_order: u64,
    /// Resends and replays acknowledged again as duplicates.
    pub duplicates: u64,
    /// Byzantine records refused: forks, broken signatures, malformed bytes, unknown device.
    pub forks: u64,
    pub bad_signatures: u64,
    pub malformed: u64,
    pub unknown_device: u64,
    pub flooded: u64,
    /// Records lost in transport and acknowledgements lost.
    pub lost_sends: u64,
    pub lost_acks: u64,
    /// Honest late records refused as replays: their gap was forgotten, by a gateway restart
    /// (`ChainState::resume` keeps only the head) or because more than `CHAIN_GAPS_TRACKED`
    /// gaps came after it. Never acknowledged, so not lost by the gateway; lost to the device.
    pub late_refused: u64,
    /// Store errors the devices saw (not acknowledged: they resent).
    pub store_errors: u64,
    /// Batches final, anomaly reports sent.
    pub batches: u64,
    pub reports: u64,
    /// The gateway's restarts, and what its disk fault did.
    pub restarts: u64,
    pub disk: Option<DiskTrip>,
}

/// Who a simulated device is to the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The story's chip `i`: registered on the ledger by its manufacturer (trust 1).
    Chip(usize),
    /// Unregistered; announced its key to the gateway (trust 0).
    SelfReported,
}

/// One signed record the device keeps: its hash, `prev` and bytes.
#[derive(Clone, Debug)]
struct Sent {
    hash: RecordHash,
    prev: RecordHash,
    bytes: Vec<u8>,
}

struct Device {
    kind: Kind,
    id: DeviceId,
    key: P256Key,
    writer: RecordChainWriter,
    data_key: EpochKey,
    counter: u64,
    /// Every record it signed, by seq.
    signed: BTreeMap<u64, Sent>,
    /// Seqs it holds no acknowledgement for (resent every tick).
    outbox: BTreeSet<u64>,
}

impl Device {
    fn new(kind: Kind, key: P256Key, tag: u8) -> Self {
        let id = device_id_of(key.verifying_key());
        Self {
            kind,
            id,
            key,
            writer: RecordChainWriter::new(id, STREAM).expect("a valid stream name"),
            data_key: EpochKey::from_bytes([tag; 16]),
            counter: 0,
            signed: BTreeMap::new(),
            outbox: BTreeSet::new(),
        }
    }

    fn public(&self) -> DevicePublicKey {
        DeviceSigner::from(&self.key).public_key()
    }

    /// The sealed payload of reading `seq` (COSE_Encrypt0; the gateway never sees plaintext).
    fn seal(&mut self, seq: u64, reading: u64) -> Vec<u8> {
        self.counter += 1;
        let aad = payload_aad(self.id, STREAM, seq, EPOCH);
        seal_encrypt0(
            &self.data_key,
            &iv_for(self.counter),
            format!("reading {reading}").as_bytes(),
            &aad,
        )
        .expect("sealing a short reading")
    }

    /// Signs the next record of the chain and queues it for sending.
    fn next_record(&mut self, virtual_ms: u64, reading: u64) {
        let seq = self.writer.next_seq();
        let payload = self.seal(seq, reading);
        let prev = self.signed.get(&(seq - 1)).map_or(RecordHash::ZERO, |s| s.hash);
        let (_, signed) = self
            .writer
            .sign_next(&self.key, virtual_ms, EPOCH, payload)
            .expect("a valid record");
        self.signed.insert(
            seq,
            Sent {
                hash: signed.hash,
                prev,
                bytes: signed.bytes,
            },
        );
        self.outbox.insert(seq);
    }

    /// A second, validly signed record for `seq`: same `prev`, another payload.
    fn fork_of(&mut self, seq: u64, reading: u64) -> Option<(RecordHash, Vec<u8>)> {
        let prev = self.signed.get(&seq)?.prev;
        let record = Record {
            device: self.id,
            stream: STREAM.into(),
            seq,
            prev,
            timestamp_ms: 1,
            epoch: EPOCH,
            payload: self.seal(seq, reading),
        };
        let signed = sign_record(&record, &self.key).ok()?;
        Some((signed.hash, signed.bytes))
    }
}

/// The gateway's ledger client: signs as [`GATEWAY_ORG`] through the workload (so its
/// transactions are held to "every accepted transaction becomes final"), with at most
/// [`IN_FLIGHT_MAX`] pending. After a gateway restart it sends nothing until all the earlier
/// ones are final: a batch whose `Submitted` mark the crash lost is resubmitted, and were its
/// first transaction still pending, the second would be admitted and then refused as
/// `batch_replayed` when applied, leaving a hole in the organisation's sequence numbers that
/// strands every later transaction. Once the first is final, the resubmission is refused at
/// admission instead and the gateway compares the roots.
struct LedgerClient<'a> {
    world: &'a World,
    load: &'a mut Workload,
    to: usize,
    /// The gateway's transactions not yet final at `to`.
    in_flight: &'a mut Vec<TxHash>,
    /// Set by a restart until nothing is in flight.
    settle_first: &'a mut bool,
    /// A submitted transaction the ledger refused after admitting it (a violation here).
    dropped: &'a mut Option<String>,
}

impl LedgerClient<'_> {
    /// Whether one more transaction may be sent now.
    fn may_send(&mut self) -> bool {
        let (world, to) = (self.world, self.to);
        self.in_flight.retain(|h| !is_final(world, to, h));
        if self.in_flight.is_empty() {
            *self.settle_first = false;
        }
        !*self.settle_first && self.in_flight.len() < IN_FLIGHT_MAX
    }

    fn send(&mut self, payload: Payload) -> Result<TxHash, SubmitError> {
        if !self.may_send() {
            return Err(SubmitError::Transport(
                "waiting for the gateway's earlier transactions to become final".into(),
            ));
        }
        match self.load.submit_checked(self.world, self.to, GATEWAY_ORG, payload) {
            Ok(hash) => {
                self.in_flight.push(hash);
                Ok(hash)
            }
            Err(NodeSubmitError::Rejected(e)) if e.code() == "batch_replayed" => Err(SubmitError::BatchReplayed),
            Err(e) => Err(SubmitError::Rejected(format!("{}: {e}", e.code()))),
        }
    }
}

impl Submitter for LedgerClient<'_> {
    fn submit(&mut self, batch: &CommitBatch) -> Result<TxHash, SubmitError> {
        self.send(Payload::CommitBatch(batch.clone()))
    }

    fn status(&mut self, tx: &TxHash) -> Result<TxStatus, SubmitError> {
        Ok(match self.world.exec(self.to).tx_status(tx) {
            NodeTxStatus::Final { .. } => TxStatus::Final,
            NodeTxStatus::Pending => TxStatus::Pending,
            NodeTxStatus::Rejected(why) => {
                self.dropped
                    .get_or_insert(format!("batch transaction {tx} rejected after admission: {why}"));
                TxStatus::Unknown
            }
            NodeTxStatus::Unknown => TxStatus::Unknown,
        })
    }

    fn committed_root(&mut self, gateway: &str, batch_seq: u64) -> Result<Option<Hash>, SubmitError> {
        let state = self
            .world
            .exec(self.to)
            .finalized_state()
            .map_err(|e| SubmitError::Transport(format!("{e:#}")))?;
        let batch = get_batch(&state, gateway, batch_seq).map_err(|e| SubmitError::Transport(e.to_string()))?;
        Ok(batch.map(|b| b.root))
    }
}

/// What the gateway acknowledged for a record: its chain position and whether it moved the head.
#[derive(Clone, Debug)]
struct Ack {
    device: DeviceId,
    seq: u64,
    moves_head: bool,
}

/// The gateway, its devices and what the invariants compare against.
pub struct DataPath {
    rng: u64,
    pub faults: DataFaults,
    /// The validator the gateway submits to (never crashes, never byzantine).
    to: usize,
    dir: PathBuf,
    gateway: Option<Gateway>,
    disk: DiskControl,
    /// Virtual milliseconds, the gateway's clock.
    virtual_ms: Arc<AtomicU64>,
    epoch: Instant,
    directory: MemoryDirectory,
    devices: Vec<Device>,
    /// A device nobody registered or announced.
    stranger: Device,
    registration: Option<TxHash>,
    /// Data ticks since the gateway's registration became final.
    ticks: u64,
    /// The disk fault armed at this tick, not yet happened.
    armed_at: Option<u64>,
    crashed: bool,
    flood_done: bool,
    /// Every record the gateway acknowledged, by hash.
    acked: BTreeMap<RecordHash, Ack>,
    /// Records that must never be acknowledged or committed.
    refused: BTreeSet<RecordHash>,
    /// Devices whose forks were refused (their forks must show on the ledger).
    forked: BTreeSet<DeviceId>,
    dropped: Option<String>,
    in_flight: Vec<TxHash>,
    settle_first: bool,
    pub stats: DataStats,
}

fn violation(invariant: Invariant, detail: String) -> Violation {
    (invariant, detail)
}

impl DataPath {
    /// The data path of a seed; the gateway's store goes under `dir`, it submits to `to`.
    pub fn new(seed: u64, faults: DataFaults, to: usize, dir: PathBuf) -> Self {
        let chips = (0..CHIPS).map(|i| Device::new(Kind::Chip(i), chip_key(i), 0x30 + i as u8));
        let announced = Device::new(Kind::SelfReported, p256_key(0x71), 0x71);
        let mut directory = MemoryDirectory::new();
        directory.announce(announced.id, announced.public());
        Self {
            rng: mix(seed ^ 0xDA7A_9A7E),
            faults,
            to,
            dir,
            gateway: None,
            disk: DiskControl::default(),
            virtual_ms: Arc::default(),
            epoch: Instant::now(),
            directory,
            devices: chips.chain([announced]).collect(),
            stranger: Device::new(Kind::SelfReported, p256_key(0x72), 0x72),
            registration: None,
            ticks: 0,
            armed_at: None,
            crashed: false,
            flood_done: false,
            acked: BTreeMap::new(),
            refused: BTreeSet::new(),
            forked: BTreeSet::new(),
            dropped: None,
            in_flight: Vec::new(),
            settle_first: false,
            stats: DataStats::default(),
        }
    }

    fn next(&mut self, bound: u64) -> u64 {
        self.rng = mix(self.rng);
        self.rng % bound.max(1)
    }

    fn chance(&mut self, pct: u64) -> bool {
        self.next(100) < pct
    }

    fn config(&self) -> GatewayConfig {
        GatewayConfig {
            max_batch_records: self.faults.batch_records,
            max_batch_age: Duration::from_secs(1),
            ..GatewayConfig::new(GATEWAY)
        }
    }

    fn now(&self) -> Instant {
        self.epoch + Duration::from_millis(self.virtual_ms.load(Ordering::Relaxed))
    }

    /// Opens the gateway over a fresh, healthy disk (its file survives from before).
    fn open(&mut self) -> Result<(), Violation> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| violation(Invariant::Restart, format!("gateway directory: {e}")))?;
        self.disk = DiskControl::default();
        let file = self.dir.join("gateway.redb");
        let backend = FaultyDisk::open(&file, self.disk.clone())
            .map_err(|e| violation(Invariant::Restart, format!("gateway disk: {e}")))?;
        let (epoch, ms) = (self.epoch, self.virtual_ms.clone());
        let clock = Box::new(move || epoch + Duration::from_millis(ms.load(Ordering::Relaxed)));
        let gateway = Gateway::open_with_backend(backend, self.config()).map_err(|e| {
            violation(
                Invariant::Restart,
                format!("the gateway does not reopen its store: {e}"),
            )
        })?;
        self.gateway = Some(gateway.with_clock(clock));
        Ok(())
    }

    /// One record to the gateway, alone.
    fn ingest(&mut self, bytes: &[u8]) -> Result<chipledger_gateway::Accepted, IngestError> {
        let gateway = self.gateway.as_mut().expect("the gateway is open");
        gateway.ingest(bytes, &self.directory)
    }

    /// Kills the gateway (drops it: nothing but its store survives) and reopens it; every
    /// record it acknowledged must still be in its store, with the same hash.
    fn restart(&mut self) -> Result<(), Violation> {
        self.gateway = None;
        if let Some(trip) = self.disk.tripped() {
            self.stats.disk = Some(trip);
        }
        self.stats.restarts += 1;
        self.armed_at = None;
        self.crashed = true;
        self.settle_first = true;
        self.open()?;
        let store = self.gateway.as_ref().expect("the gateway is open").store();
        for (hash, ack) in &self.acked {
            let chain = ChainKey {
                device: ack.device,
                stream: STREAM.into(),
            };
            let stored = store
                .record(&chain, ack.seq)
                .map_err(|e| violation(Invariant::NoLostRecord, format!("reading the store after restart: {e}")))?;
            if stored.as_ref().map(|s| s.hash) != Some(*hash) {
                return Err(violation(
                    Invariant::NoLostRecord,
                    format!(
                        "record {} seq {} ({hash}) was acknowledged but is not in the gateway's store after its restart",
                        ack.device, ack.seq
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One step, every [`TICK_EVERY_POLLS`] polls: registration, directory, devices (new
    /// records while `producing`, resends, byzantine actions), the gateway's crash, and its
    /// ledger loop (batches, anomaly reports).
    pub fn tick(
        &mut self,
        world: &World,
        load: &mut Workload,
        poll: u64,
        virtual_ms: u64,
        producing: bool,
    ) -> Result<(), Violation> {
        if !poll.is_multiple_of(TICK_EVERY_POLLS) {
            return Ok(());
        }
        self.virtual_ms.store(virtual_ms, Ordering::Relaxed);
        if self.gateway.is_none() {
            self.open()?;
        }
        let Some(registration) = self.registration else {
            let payload = Payload::RegisterGateway(RegisterGateway { name: GATEWAY.into() });
            let hash = load
                .submit_checked(world, self.to, GATEWAY_ORG, payload)
                .map_err(|e| violation(Invariant::Workload, format!("RegisterGateway refused: {e}")))?;
            self.registration = Some(hash);
            return Ok(());
        };
        if !is_final(world, self.to, &registration) {
            return Ok(());
        }
        self.ticks += 1;
        self.learn_devices(world)?;
        self.crash_schedule()?;
        self.devices_send(virtual_ms, producing)?;
        if producing && self.next(BYZANTINE_EVERY) == 0 {
            self.byzantine()?;
        }
        if self.disk.tripped().is_some() {
            self.restart()?;
        }
        self.ledger_loop(world, load)?;
        if self.disk.tripped().is_some() {
            self.restart()?;
        }
        match self.dropped.take() {
            Some(why) => Err(violation(Invariant::NoLostRecord, why)),
            None => Ok(()),
        }
    }

    /// Registered chips enter the directory once their registration is final at the
    /// gateway's validator: the DeviceID key from the certificate the ledger stores, checked
    /// against the manufacturer CA (as the production directory does).
    fn learn_devices(&mut self, world: &World) -> Result<(), Violation> {
        let unknown: Vec<DeviceId> = self
            .devices
            .iter()
            .filter(|d| matches!(d.kind, Kind::Chip(_)))
            .map(|d| d.id)
            .filter(|id| self.directory.lookup(id).status == DeviceStatus::Unknown)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let state = world
            .exec(self.to)
            .finalized_state()
            .map_err(|e| violation(Invariant::Restart, format!("{e:#}")))?;
        for id in unknown {
            let record = get_device(&state, &id).map_err(|e| violation(Invariant::Restart, e.to_string()))?;
            let Some(record) = record.filter(|r| r.revoked.is_none()) else {
                continue;
            };
            let key = verify_deviceid(&Fixture::get().ca_der, &record.deviceid_cert_der, None).map_err(|e| {
                violation(
                    Invariant::Workload,
                    format!("registered chip {id}: DeviceID certificate does not verify: {e}"),
                )
            })?;
            self.directory.register(id, key);
        }
        Ok(())
    }

    fn active(&self, device: &Device) -> bool {
        self.directory.lookup(&device.id).status != DeviceStatus::Unknown || device.kind == Kind::SelfReported
    }

    /// The gateway's crash: a kill at its tick, or a disk armed at its tick that fails within
    /// [`DISK_FAULT_TICKS`] (the gateway is then killed at the failure), else killed anyway.
    fn crash_schedule(&mut self) -> Result<(), Violation> {
        if self.crashed {
            return Ok(());
        }
        match (self.faults.crash, self.armed_at) {
            (Crash::Kill, _) if self.ticks >= self.faults.crash_tick => self.restart(),
            (Crash::Disk(fault, writes), None) if self.ticks >= self.faults.crash_tick => {
                let seed = self.next(u64::MAX);
                self.disk.arm(writes, fault, seed);
                self.armed_at = Some(self.ticks);
                Ok(())
            }
            (Crash::Disk(..), Some(at)) if self.ticks >= at + DISK_FAULT_TICKS => self.restart(),
            _ => Ok(()),
        }
    }

    /// Each active device signs new readings (while `producing`) and sends what it holds no
    /// acknowledgement for, through a lossy, reordering transport.
    fn devices_send(&mut self, virtual_ms: u64, producing: bool) -> Result<(), Violation> {
        for d in 0..self.devices.len() {
            if !self.active(&self.devices[d]) {
                continue;
            }
            let fresh = if producing {
                self.next(RECORDS_PER_TICK_MAX + 1)
            } else {
                0
            };
            let flood = producing && !self.flood_done && self.ticks >= self.faults.flood_tick && d == 0;
            self.flood_done |= flood;
            let count = if flood { self.faults.flood_records } else { fresh };
            for _ in 0..count {
                let reading = self.next(1_000);
                self.devices[d].next_record(virtual_ms, reading);
            }
            if flood {
                self.stats.flooded += count;
            }
            let mut seqs: Vec<u64> = self.devices[d].outbox.iter().copied().collect();
            if seqs.len() >= 2 && self.chance(self.faults.reorder_pct) {
                let at = self.next(seqs.len() as u64 - 1) as usize;
                seqs.swap(at, at + 1);
            }
            let mut sent = Vec::new();
            for seq in seqs {
                if self.chance(self.faults.loss_pct) {
                    self.stats.lost_sends += 1;
                } else {
                    sent.push(seq);
                }
            }
            self.deliver(d, &sent, flood)?;
        }
        Ok(())
    }

    /// Hands device `d`'s records `seqs` to the gateway (one group, or one by one) and
    /// processes each answer as the device would.
    fn deliver(&mut self, d: usize, seqs: &[u64], as_group: bool) -> Result<(), Violation> {
        if seqs.is_empty() {
            return Ok(());
        }
        let records: Vec<(u64, RecordHash, Vec<u8>)> = seqs
            .iter()
            .map(|s| {
                let sent = &self.devices[d].signed[s];
                (*s, sent.hash, sent.bytes.clone())
            })
            .collect();
        let group = as_group || self.next(2) == 0;
        let answers: Vec<Result<_, IngestError>> = if group {
            let bytes: Vec<&[u8]> = records.iter().map(|(_, _, b)| b.as_slice()).collect();
            let gateway = self.gateway.as_mut().expect("the gateway is open");
            gateway.ingest_many(&bytes, &self.directory)
        } else {
            let mut out = Vec::new();
            for (_, _, bytes) in &records {
                let gateway = self.gateway.as_mut().expect("the gateway is open");
                out.push(gateway.ingest(bytes, &self.directory));
            }
            out
        };
        let device = self.devices[d].id;
        for ((seq, hash, _), answer) in records.into_iter().zip(answers) {
            match answer {
                Ok(accepted) => {
                    self.acknowledged(device, seq, hash, accepted.anomaly.as_ref(), "honest record")?;
                    if self.chance(self.faults.ack_loss_pct) {
                        self.stats.lost_acks += 1;
                    } else {
                        self.devices[d].outbox.remove(&seq);
                    }
                }
                Err(IngestError::Store(_)) => self.stats.store_errors += 1,
                Err(IngestError::Chain(ChainAnomaly::Replay { .. })) => {
                    // A late record whose gap the chain no longer remembers: a restart forgot
                    // it, or more than `CHAIN_GAPS_TRACKED` gaps came after it. Refused (and
                    // reported by ingest), never acknowledged: the device drops it.
                    self.stats.late_refused += 1;
                    self.devices[d].outbox.remove(&seq);
                }
                Err(e) => {
                    return Err(violation(
                        Invariant::NoLostRecord,
                        format!("honest record {device} seq {seq} refused by the gateway: {e}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Books an acknowledgement: a duplicate must be of a record acknowledged before; a new
    /// one must not be a record that had to be refused.
    fn acknowledged(
        &mut self,
        device: DeviceId,
        seq: u64,
        hash: RecordHash,
        anomaly: Option<&ChainAnomaly>,
        what: &str,
    ) -> Result<(), Violation> {
        if self.refused.contains(&hash) {
            return Err(violation(
                Invariant::RecordIntegrity,
                format!("{what} {device} seq {seq} was refused before and is now acknowledged"),
            ));
        }
        match anomaly {
            Some(ChainAnomaly::Duplicate { .. }) => {
                if !self.acked.contains_key(&hash) {
                    return Err(violation(
                        Invariant::RecordIntegrity,
                        format!("{what} {device} seq {seq} acknowledged as a duplicate of a record never acknowledged"),
                    ));
                }
                self.stats.duplicates += 1;
            }
            other => {
                if self.acked.contains_key(&hash) {
                    return Err(violation(
                        Invariant::RecordIntegrity,
                        format!("{what} {device} seq {seq} acknowledged as new a second time ({other:?})"),
                    ));
                }
                match other {
                    Some(ChainAnomaly::Gap { .. }) => self.stats.gaps += 1,
                    Some(ChainAnomaly::OutOfOrder { .. }) => self.stats.out_of_order += 1,
                    _ => {}
                }
                self.stats.acked += 1;
                let moves_head = !matches!(other, Some(ChainAnomaly::OutOfOrder { .. }));
                self.acked.insert(
                    hash,
                    Ack {
                        device,
                        seq,
                        moves_head,
                    },
                );
            }
        }
        Ok(())
    }

    /// Reports a refused record to the ledger, as the MQTT transport does (rate-limited).
    fn report_refusal(&mut self, error: &IngestError, bytes: &[u8], device: DeviceId) {
        if let Some(rejection) = Rejection::of_ingest(error, bytes, device) {
            let now = self.now();
            let gateway = self.gateway.as_mut().expect("the gateway is open");
            // A store error here only loses a report (the ledger loop would retry a record).
            let _ = gateway.queue_rejection(rejection, &self.directory, now);
        }
    }

    /// One byzantine device action, drawn from the seed: a replay, a fork, a broken signature,
    /// malformed bytes, or a stranger's record.
    fn byzantine(&mut self) -> Result<(), Violation> {
        let Some(d) = (0..self.devices.len())
            .find(|&d| matches!(self.devices[d].kind, Kind::Chip(_)) && self.active(&self.devices[d]))
        else {
            return Ok(());
        };
        let device = self.devices[d].id;
        let acked: Vec<u64> = self
            .acked
            .values()
            .filter(|a| a.device == device)
            .map(|a| a.seq)
            .collect();
        match self.next(5) {
            0 if !acked.is_empty() => {
                // A replay of an acknowledged record: acknowledged again as a duplicate, or
                // refused; never acknowledged as new.
                let seq = acked[self.next(acked.len() as u64) as usize];
                let sent = self.devices[d].signed[&seq].clone();
                let answer = self.ingest(&sent.bytes);
                match answer {
                    Ok(a) if matches!(a.anomaly, Some(ChainAnomaly::Duplicate { .. })) => {
                        self.acknowledged(device, seq, sent.hash, a.anomaly.as_ref(), "replayed record")?;
                    }
                    Ok(a) => {
                        return Err(violation(
                            Invariant::RecordIntegrity,
                            format!("replay of {device} seq {seq} acknowledged as new ({:?})", a.anomaly),
                        ));
                    }
                    Err(IngestError::Store(_)) => self.stats.store_errors += 1,
                    Err(e) => self.report_refusal(&e, &sent.bytes, device),
                }
            }
            1 if !acked.is_empty() => {
                // A fork: a second record for a position the gateway already holds.
                let seq = acked[self.next(acked.len() as u64) as usize];
                let reading = self.next(1_000) + 1_000;
                let Some((hash, bytes)) = self.devices[d].fork_of(seq, reading) else {
                    return Ok(());
                };
                self.refused.insert(hash);
                match self.ingest(&bytes) {
                    Ok(a) => {
                        return Err(violation(
                            Invariant::RecordIntegrity,
                            format!("fork of {device} seq {seq} acknowledged ({:?})", a.anomaly),
                        ));
                    }
                    Err(IngestError::Store(_)) => self.stats.store_errors += 1,
                    Err(e @ IngestError::Chain(ChainAnomaly::Fork { .. })) => {
                        self.stats.forks += 1;
                        self.forked.insert(device);
                        self.report_refusal(&e, &bytes, device);
                    }
                    Err(e) => {
                        return Err(violation(
                            Invariant::RecordIntegrity,
                            format!("fork of {device} seq {seq} refused as something else: {e}"),
                        ));
                    }
                }
            }
            2 => {
                // A broken signature on an otherwise valid next record.
                let mut writer = self.devices[d].writer.clone();
                let seq = writer.next_seq();
                let payload = self.devices[d].seal(seq, 7);
                let key = self.devices[d].key.clone();
                let Ok((_, signed)) = writer.sign_next(&key, 1, EPOCH, payload) else {
                    return Ok(());
                };
                let mut bytes = signed.bytes;
                let at = bytes.len() - 1 - self.next(32) as usize;
                bytes[at] ^= 0x01;
                self.must_refuse(device, bytes, "record with a broken signature", |s| {
                    &mut s.bad_signatures
                })?;
            }
            3 => {
                // Malformed: a valid record cut short, or noise.
                let bytes = match acked.first() {
                    Some(seq) if self.next(2) == 0 => {
                        let whole = &self.devices[d].signed[seq].bytes;
                        whole[..whole.len() / 2].to_vec()
                    }
                    _ => (0..self.next(200) + 1).map(|_| self.next(256) as u8).collect(),
                };
                self.must_refuse(device, bytes, "malformed record", |s| &mut s.malformed)?;
            }
            _ => {
                // A device nobody registered or announced.
                let reading = self.next(1_000);
                self.stranger.next_record(1, reading);
                let seq = self.stranger.writer.next_seq() - 1;
                let bytes = self.stranger.signed[&seq].bytes.clone();
                let stranger = self.stranger.id;
                self.must_refuse(stranger, bytes, "unknown device's record", |s| &mut s.unknown_device)?;
            }
        }
        Ok(())
    }

    /// Sends bytes that must be refused (never acknowledged, never committed).
    fn must_refuse(
        &mut self,
        device: DeviceId,
        bytes: Vec<u8>,
        what: &str,
        counter: impl Fn(&mut DataStats) -> &mut u64,
    ) -> Result<(), Violation> {
        self.refused.insert(chipledger_device::record::record_hash(&bytes));
        match self.ingest(&bytes) {
            Ok(a) => Err(violation(
                Invariant::RecordIntegrity,
                format!("{what} of {device} acknowledged ({:?})", a.anomaly),
            )),
            Err(IngestError::Store(_)) => {
                self.stats.store_errors += 1;
                Ok(())
            }
            Err(e) => {
                *counter(&mut self.stats) += 1;
                self.report_refusal(&e, &bytes, device);
                Ok(())
            }
        }
    }

    /// The gateway's ledger loop: cut due batches, submit / poll them, send anomaly reports.
    fn ledger_loop(&mut self, world: &World, load: &mut Workload) -> Result<(), Violation> {
        let now = self.now();
        let mut dropped = self.dropped.take();
        let gateway = self.gateway.as_mut().expect("the gateway is open");
        let store_error = |e: &dyn std::fmt::Display| violation(Invariant::NoLostRecord, format!("gateway store: {e}"));
        let mut fail: Option<Violation> = None;
        let cut = (|| {
            gateway.flush_rejections(now)?;
            while gateway.batch_due(now) && gateway.cut_batch()?.is_some() {}
            Ok::<(), StoreError>(())
        })();
        if let Err(e) = cut {
            if self.disk.tripped().is_none() {
                fail = Some(store_error(&e));
            }
            self.dropped = dropped;
            return fail.map_or(Ok(()), Err);
        }
        let mut client = LedgerClient {
            world,
            load,
            to: self.to,
            in_flight: &mut self.in_flight,
            settle_first: &mut self.settle_first,
            dropped: &mut dropped,
        };
        match gateway.submit_batches(&mut client) {
            Ok(report) => self.stats.batches += report.committed.len() as u64,
            Err(BatchError::Submit(SubmitError::Transport(_))) => {}
            Err(BatchError::Store(_)) if self.disk.tripped().is_some() => {}
            Err(e) => fail = Some(violation(Invariant::NoLostRecord, format!("batch submission: {e}"))),
        }
        if fail.is_none() {
            let queued = gateway.queued_anomalies();
            match queued {
                Ok(queued) => {
                    for (index, report) in queued {
                        match client.send(Payload::ReportChainAnomaly(report)) {
                            Ok(_) => self.stats.reports += 1,
                            Err(SubmitError::Transport(_)) => break,
                            Err(e) => {
                                fail = Some(violation(
                                    Invariant::RecordIntegrity,
                                    format!("anomaly report refused by the ledger: {e}"),
                                ));
                                break;
                            }
                        }
                        if let Err(e) = gateway.anomaly_sent(index)
                            && self.disk.tripped().is_none()
                        {
                            fail = Some(store_error(&e));
                        }
                    }
                }
                Err(e) if self.disk.tripped().is_none() => fail = Some(store_error(&e)),
                Err(_) => {}
            }
        }
        self.dropped = dropped;
        fail.map_or(Ok(()), Err)
    }

    /// Whether everything is through (and the gateway's crash happened): no device holds an unacknowledged record, nothing waits
    /// for a batch, every batch is committed, every report sent, the gateway's last
    /// transaction final.
    pub fn flushed(&self, world: &World, load: &Workload) -> bool {
        let Some(gateway) = &self.gateway else {
            return false;
        };
        let devices_done = self.devices.iter().all(|d| !self.active(d) || d.outbox.is_empty());
        self.crashed
            && devices_done
            && gateway.pending_records() == 0
            && gateway.open_batches().next().is_none()
            && gateway.queued_anomalies().is_ok_and(|q| q.is_empty())
            && load.quiet(world, self.to, GATEWAY_ORG)
    }

    /// At settle (everything final everywhere): every acknowledged record is in a batch final
    /// on every validator whose root the gateway's stored hashes reproduce; no refused record
    /// is in any batch; the ledger's chain heads are the gateway's; every fork was reported.
    pub fn check_final(&self, world: &World) -> Result<(), Violation> {
        let lost = |d: String| violation(Invariant::NoLostRecord, d);
        let gateway = self
            .gateway
            .as_ref()
            .ok_or_else(|| lost("the gateway is not open".into()))?;
        if self.acked.is_empty() {
            return Err(lost("no record was acknowledged: the data path did not run".into()));
        }
        let store = gateway.store();
        let mut committed: BTreeMap<Hash, u64> = BTreeMap::new();
        let mut roots = Vec::new();
        for seq in 1.. {
            let Some(hashes) = store.batch_hashes(seq).map_err(|e| lost(e.to_string()))? else {
                break;
            };
            roots.push(batch_root(&hashes));
            for h in hashes {
                if committed.insert(h, seq).is_some() {
                    return Err(violation(
                        Invariant::NoDoubleApply,
                        format!("record {} is in two of the gateway's batches", RecordHash(h)),
                    ));
                }
            }
        }
        for i in 0..VALIDATORS {
            let state = world.exec(i).finalized_state().map_err(|e| lost(format!("{e:#}")))?;
            let record = get_gateway(&state, GATEWAY)
                .map_err(|e| lost(e.to_string()))?
                .ok_or_else(|| lost(format!("validator {i} does not know gateway {GATEWAY}")))?;
            if record.last_batch != roots.len() as u64 {
                return Err(lost(format!(
                    "validator {i} holds {} batches of {GATEWAY}, its store {} (all committed)",
                    record.last_batch,
                    roots.len()
                )));
            }
            for (n, root) in roots.iter().enumerate() {
                let seq = n as u64 + 1;
                let batch = get_batch(&state, GATEWAY, seq).map_err(|e| lost(e.to_string()))?;
                if batch.map(|b| b.root) != Some(*root) {
                    return Err(lost(format!(
                        "validator {i}: batch {seq}'s root is not the root of the gateway's stored hashes"
                    )));
                }
            }
            self.check_heads(i, &state)?;
            for device in &self.forked {
                let forks = anomalies_of(&state, device).map_err(|e| lost(e.to_string()))?;
                if forks.count(AnomalyKind::Fork) == 0 {
                    return Err(violation(
                        Invariant::RecordIntegrity,
                        format!("validator {i}: the forks of {device} were never reported on the ledger"),
                    ));
                }
            }
        }
        for (hash, ack) in &self.acked {
            if !committed.contains_key(&hash.0) {
                return Err(lost(format!(
                    "acknowledged record {} seq {} ({hash}) is in no committed batch",
                    ack.device, ack.seq
                )));
            }
        }
        if let Some(bad) = self.refused.iter().find(|h| committed.contains_key(&h.0)) {
            return Err(violation(
                Invariant::RecordIntegrity,
                format!("refused record {bad} was committed in batch {}", committed[&bad.0]),
            ));
        }
        Ok(())
    }

    /// The ledger's head of each chain is the gateway's newest head-moving record, at the
    /// device's trust level.
    fn check_heads(&self, validator: usize, state: &dyn chipledger_state::store::StateRead) -> Result<(), Violation> {
        let mut heads: BTreeMap<DeviceId, (u64, RecordHash)> = BTreeMap::new();
        for (hash, ack) in self.acked.iter().filter(|(_, a)| a.moves_head) {
            let head = heads.entry(ack.device).or_insert((0, *hash));
            if ack.seq >= head.0 {
                *head = (ack.seq, *hash);
            }
        }
        for device in self.devices.iter().filter(|d| heads.contains_key(&d.id)) {
            let (seq, hash) = heads[&device.id];
            let trust = match device.kind {
                Kind::Chip(_) => TrustLevel::Registered,
                Kind::SelfReported => TrustLevel::SelfReported,
            };
            let head =
                get_head(state, &device.id, STREAM).map_err(|e| violation(Invariant::NoLostRecord, e.to_string()))?;
            let ok = head
                .as_ref()
                .is_some_and(|h| h.seq == seq && h.hash == hash.0 && h.trust == trust);
            if !ok {
                return Err(violation(
                    Invariant::NoLostRecord,
                    format!(
                        "validator {validator}: head of {} is {:?}, the gateway's newest is seq {seq} ({hash}) at {trust:?}",
                        device.id,
                        head.map(|h| (h.seq, RecordHash(h.hash), h.trust))
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::FaultMix;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chipledger-sim-data-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn path(name: &str) -> DataPath {
        DataPath::new(7, FaultMix::from_seed(7).data, 0, scratch(name))
    }

    /// The gateway on the simulated disk: a power cut in the middle of ingestion loses only
    /// what was never acknowledged, and the reopened gateway holds every acknowledged record.
    #[test]
    fn power_loss_under_the_gateway_keeps_every_acknowledged_record() {
        let mut p = path("power");
        p.open().unwrap();
        let d = p.devices.len() - 1; // the self-reported device: active from the start
        assert_eq!(p.devices[d].kind, Kind::SelfReported);
        for round in 0..6u64 {
            if round == 3 {
                p.disk.arm(2, DiskFault::PowerLoss, 99);
            }
            p.devices[d].next_record(round, round);
            p.devices[d].next_record(round, round + 100);
            let seqs: Vec<u64> = p.devices[d].outbox.iter().copied().collect();
            p.deliver(d, &seqs, round % 2 == 0).unwrap();
        }
        assert!(p.disk.tripped().is_some(), "the disk lost power");
        assert!(p.stats.store_errors > 0, "ingestion failed after the cut");
        let acked = p.acked.len();
        assert!(acked >= 4, "records were acknowledged before the cut ({acked})");
        p.restart().unwrap();
        let held = p.devices[d].outbox.len();
        assert!(held > 0, "the device still holds the records the cut refused");
        let seqs: Vec<u64> = p.devices[d].outbox.iter().copied().collect();
        p.deliver(d, &seqs, true).unwrap();
        assert!(p.acked.len() > acked, "they are acknowledged after the restart");
        let _ = std::fs::remove_dir_all(&p.dir);
    }

    /// The bookkeeping the invariants rest on: a duplicate of a record never acknowledged, a
    /// second "new" acknowledgement of the same record, and an acknowledged refused record are
    /// violations.
    #[test]
    fn acknowledgements_are_checked_against_what_came_before() {
        let mut p = path("acks");
        let device = DeviceId([1; 20]);
        let (a, b, refused) = (RecordHash([1; 32]), RecordHash([2; 32]), RecordHash([3; 32]));
        let dup = ChainAnomaly::Duplicate { seq: 1 };
        let integrity = |r: Result<(), Violation>| matches!(r, Err((Invariant::RecordIntegrity, _)));
        assert!(integrity(p.acknowledged(device, 1, a, Some(&dup), "t")));
        assert!(p.acknowledged(device, 1, a, None, "t").is_ok());
        assert!(p.acknowledged(device, 1, a, Some(&dup), "t").is_ok());
        assert!(integrity(p.acknowledged(device, 1, a, None, "t")));
        let late = ChainAnomaly::OutOfOrder { seq: 2, head: 3 };
        assert!(p.acknowledged(device, 2, b, Some(&late), "t").is_ok());
        assert!(!p.acked[&b].moves_head && p.acked[&a].moves_head);
        p.refused.insert(refused);
        assert!(integrity(p.acknowledged(device, 4, refused, None, "t")));
        assert_eq!((p.stats.acked, p.stats.duplicates, p.stats.out_of_order), (2, 1, 1));
    }
}
