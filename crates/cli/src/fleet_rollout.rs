//! A whole firmware rollout over a device fleet, as the demo runs it (and `tests/rollout.rs`
//! on a smaller fleet): the publisher registers a SUIT key and publishes 1.0.0 (the factory
//! image the devices run) and 1.1.0 (fixes a CVE); the auditor certifies both; the owner sets
//! its fleet policy (owner + auditor, certified releases only). Every device first proves its
//! factory firmware under an approved 1.0.0 rollout (so the fleet map knows what each runs),
//! then the 1.1.0 rollout is approved by both organisations and started, and every device's
//! [`update_agent`](crate::update_agent) takes it — with seeded failures: a share of devices
//! receives a corrupted image (refused, LwM2M result 5) and a share loses power mid-install
//! (result 8; they reboot from the old slot and stay on 1.0.0 until a later rollout). Finally
//! the auditor reports the CVE against 1.0.0 and the exposure query names exactly the devices
//! still on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_device::chip::SoftChip;
use chipledger_node::api_firmware::{ExposureBody, ReleaseList, RolloutDetail};
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::{
    ApproveRollout, CertStatus, Certify, ControlRollout, CreateRollout, ReleaseId, ReportVulnerability, RolloutAction,
    SetFleetPolicy,
};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, TxHash};
use sha2::{Digest, Sha256};

use crate::client::Client;
use crate::firmware_cmd::{
    ReleaseInput, publish_payload, read_signing_key, register_key_payload, submit_typed, upload_image_to_all,
    write_signing_key,
};
use crate::firmware_trust::trust_from_genesis;
use crate::net::LocalNet;
use crate::update_agent::{
    AgentCtx, DeviceRun, Fault, Nodes, Outcome, OwnerSigner, SimDevice, SlotFirmware, prove_firmware, publisher_keys,
    run_fleet, update_when_offered,
};

/// Size of each simulated firmware image.
pub const IMAGE_BYTES: usize = 64 * 1024;
/// The factory firmware every device runs.
pub const FACTORY_VERSION: &str = "1.0.0";
/// The release that fixes the CVE.
pub const FIXED_VERSION: &str = "1.1.0";
/// How long a device keeps polling before it decides no update is on offer.
pub const POLL_PATIENCE: Duration = Duration::from_secs(15);
/// Largest failure share a plan may inject, per fault kind.
pub const MAX_FAULT_PCT: u32 = 50;

/// Who does what in the rollout, and the failures to inject.
#[derive(Debug, Clone)]
pub struct RolloutPlan {
    pub publisher: String,
    pub auditor: String,
    pub owner: String,
    pub fleet: String,
    /// Hardware models the releases name (the devices' models).
    pub models: Vec<u32>,
    /// The CVE 1.1.0 fixes and the auditor reports against 1.0.0.
    pub cve: String,
    /// Picks which devices fail (printed, so a run can be replayed).
    pub seed: u64,
    pub bad_download_pct: u32,
    pub power_loss_pct: u32,
    /// Agents running at once.
    pub concurrency: usize,
    /// The rollout pauses itself above this failure percentage.
    pub abort_failure_pct: u8,
}

impl RolloutPlan {
    /// The demo's plan: vendor publishes, audit certifies, city's fleet, 5 % bad downloads
    /// and 3 % power losses.
    pub fn demo(models: Vec<u32>, seed: u64) -> Self {
        Self {
            publisher: "vendor".into(),
            auditor: "audit".into(),
            owner: "city".into(),
            fleet: "city-fleet".into(),
            models,
            cve: "CVE-2026-4242".into(),
            seed,
            bad_download_pct: 5,
            power_loss_pct: 3,
            concurrency: 16,
            abort_failure_pct: 30,
        }
    }
}

/// A registered device of the fleet: its chip and hardware model.
#[derive(Debug)]
pub struct FleetDevice {
    pub chip: SoftChip,
    pub model: u32,
}

/// What the rollout did.
#[derive(Debug, Clone)]
pub struct RolloutSummary {
    pub factory_release: ReleaseId,
    pub fixed_release: ReleaseId,
    pub rollout: TxHash,
    /// hawkBit state at the end (`finished`, or `paused` when failures crossed the threshold).
    pub rollout_status: String,
    pub devices: usize,
    /// Devices that installed and proved 1.1.0.
    pub installed: Vec<DeviceId>,
    /// Injected faults, by device.
    pub bad_download: Vec<DeviceId>,
    pub power_loss: Vec<DeviceId>,
    /// Devices whose agent hit an error (transport or ledger), with it.
    pub errors: Vec<(DeviceId, String)>,
    /// The exposure query's answer (sorted hex ids).
    pub exposed: Vec<String>,
    /// Fleet version map: version → devices with an attested install of it.
    pub version_map: BTreeMap<String, usize>,
    /// Devices with no attested install at all.
    pub unknown_firmware: usize,
    pub elapsed: Duration,
}

/// A deterministic image of `IMAGE_BYTES` for `version`.
pub fn image_for(version: &str) -> Vec<u8> {
    let line = format!("chipledger city firmware {version}\n");
    line.bytes().cycle().take(IMAGE_BYTES).collect()
}

/// The factory firmware (security version 1).
pub fn factory_firmware() -> SlotFirmware {
    SlotFirmware {
        version: FACTORY_VERSION.into(),
        security_version: 1,
        image: image_for(FACTORY_VERSION),
    }
}

/// How many of `n` devices a `pct` share is (rounded to nearest).
pub fn fault_count(n: usize, pct: u32) -> usize {
    (n * pct.min(MAX_FAULT_PCT) as usize + 50) / 100
}

/// The fault of each device: devices ranked by SHA-256(seed ‖ id); the first ranks get a bad
/// download, the next a power loss. Same seed and devices → same faults.
pub fn assign_faults(ids: &[DeviceId], plan: &RolloutPlan) -> Vec<Fault> {
    let rank = |id: &DeviceId| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(plan.seed.to_be_bytes());
        h.update(id.0);
        h.finalize().into()
    };
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|i| rank(&ids[*i]));
    let bad = fault_count(ids.len(), plan.bad_download_pct);
    let power = fault_count(ids.len(), plan.power_loss_pct);
    let mut faults = vec![Fault::None; ids.len()];
    for (pos, i) in order.into_iter().enumerate() {
        if pos < bad {
            faults[i] = Fault::BadDownload;
        } else if pos < bad + power {
            faults[i] = Fault::PowerLoss;
        }
    }
    faults
}

/// The first 12 hex digits of an id, for progress lines.
fn short(id: &dyn std::fmt::Display) -> String {
    id.to_string().chars().take(12).collect()
}

fn org_key(net: &LocalNet, org: &str) -> Result<SigningKey> {
    KeyFile::read(&net.dir.join("orgs").join(format!("{org}.key")))
}

/// The publisher's SUIT key: `<net>/firmware/<publisher>-fw.pem`, created on first use.
fn publisher_suit_key(net: &LocalNet, publisher: &str) -> Result<p256::ecdsa::SigningKey> {
    let dir = net.dir.join("firmware");
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join(format!("{publisher}-fw.pem"));
    if path.exists() {
        return read_signing_key(&path);
    }
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let key = p256::ecdsa::SigningKey::from_bytes(&secret.into()).context("random P-256 scalar out of range")?;
    write_signing_key(&key, &path)?;
    Ok(key)
}

/// Publish `fw` (with `fixes`) and upload its image to every node.
fn publish(
    net: &LocalNet,
    client: &Client,
    plan: &RolloutPlan,
    key: &p256::ecdsa::SigningKey,
    fw: &SlotFirmware,
    (min, max, fixes): (&str, &str, &[String]),
) -> Result<ReleaseId> {
    let input = ReleaseInput {
        publisher: &plan.publisher,
        image: &fw.image,
        version: &fw.version,
        models: &plan.models,
        sequence: fw.security_version,
        min_applicable: min,
        max_applicable: max,
        fixes,
        uri: None,
    };
    let (id, payload) = publish_payload(&input, key)?;
    submit_typed(client, &plan.publisher, &org_key(net, &plan.publisher)?, payload)?;
    let stored = upload_image_to_all(&net.apis, &fw.image)?;
    if stored != net.apis.len() {
        bail!(
            "only {stored} of {} nodes stored the {} image",
            net.apis.len(),
            fw.version
        );
    }
    Ok(id)
}

/// Key registration, both releases (images on every node), certification, fleet policy.
fn releases(net: &LocalNet, client: &Client, plan: &RolloutPlan, out: &mut dyn FnMut(&str)) -> Result<[ReleaseId; 2]> {
    let key = publisher_suit_key(net, &plan.publisher)?;
    let publisher_key = org_key(net, &plan.publisher)?;
    submit_typed(
        client,
        &plan.publisher,
        &publisher_key,
        register_key_payload(key.verifying_key())?,
    )?;
    let fixed = SlotFirmware {
        version: FIXED_VERSION.into(),
        security_version: 2,
        image: image_for(FIXED_VERSION),
    };
    let v1 = publish(net, client, plan, &key, &factory_firmware(), ("0.0.0", "0.9.9", &[]))?;
    let v2 = publish(
        net,
        client,
        plan,
        &key,
        &fixed,
        ("1.0.0", "1.0.99", std::slice::from_ref(&plan.cve)),
    )?;
    out(&format!(
        "  '{}' registered a SUIT key and published {FACTORY_VERSION} ({}…) and {FIXED_VERSION} ({}…, fixes {}); images on all {} nodes",
        plan.publisher,
        short(&v1),
        short(&v2),
        plan.cve,
        net.apis.len()
    ));
    let auditor = org_key(net, &plan.auditor)?;
    for release in [v1, v2] {
        let note = "lab report".to_string();
        let p = Certify {
            release,
            status: CertStatus::Certified,
            note,
        };
        submit_typed(client, &plan.auditor, &auditor, Payload::Certify(p))?;
    }
    let policy = SetFleetPolicy {
        fleet: plan.fleet.clone(),
        approvers: vec![plan.owner.clone(), plan.auditor.clone()],
        threshold: 2,
        require_certified: true,
    };
    submit_typed(
        client,
        &plan.owner,
        &org_key(net, &plan.owner)?,
        Payload::SetFleetPolicy(policy),
    )?;
    out(&format!(
        "  '{}' certified both; '{}' fleet '{}' needs 2 of {}, {} and a certified release",
        plan.auditor, plan.owner, plan.fleet, plan.owner, plan.auditor
    ));
    Ok([v1, v2])
}

/// Create a rollout of `release`, have owner and auditor approve it, and start it if `start`.
fn approved_rollout(
    net: &LocalNet,
    client: &Client,
    plan: &RolloutPlan,
    release: ReleaseId,
    start: bool,
) -> Result<TxHash> {
    let owner = org_key(net, &plan.owner)?;
    let create = CreateRollout {
        fleet: plan.fleet.clone(),
        release,
        models: vec![],
        rate_devices_per_min: 600,
        wave_size: plan.concurrency.min(u32::MAX as usize) as u32,
        abort_failure_pct: plan.abort_failure_pct,
    };
    let s = submit_typed(client, &plan.owner, &owner, Payload::CreateRollout(create))?;
    let rollout = crate::firmware_cmd::parse_rollout(&s.hash)?;
    for org in [&plan.owner, &plan.auditor] {
        let p = Payload::ApproveRollout(ApproveRollout { rollout });
        submit_typed(client, org, &org_key(net, org)?, p)?;
    }
    if start {
        let p = ControlRollout {
            rollout,
            action: RolloutAction::Start,
        };
        submit_typed(client, &plan.owner, &owner, Payload::ControlRollout(p))?;
    }
    Ok(rollout)
}

/// Every device proves its factory firmware under the approved 1.0.0 rollout `baseline`.
fn prove_factory(
    ctx: &Arc<AgentCtx>,
    devices: Vec<SimDevice>,
    plan: &RolloutPlan,
    baseline: TxHash,
) -> Result<Vec<SimDevice>> {
    let jobs = devices.into_iter().map(|d| (d, Fault::None)).collect();
    let task = move |ctx: &AgentCtx, _: usize, dev: &mut SimDevice, _: Fault| {
        let running = dev.running.clone();
        let tx = prove_firmware(ctx, dev, &running, baseline)?;
        Ok(Outcome::Installed {
            version: running.version,
            tx,
        })
    };
    let runs = run_fleet(ctx, jobs, plan.concurrency, task, |_| {})?;
    let mut devices = Vec::with_capacity(runs.len());
    for r in runs {
        if let Err(e) = r.outcome {
            bail!("device {} could not prove its factory firmware: {e}", r.device.id);
        }
        devices.push(r.device);
    }
    Ok(devices)
}

/// Running tallies for the progress lines.
#[derive(Default)]
struct Tally {
    done: usize,
    installed: usize,
    failed: usize,
    errors: usize,
}

fn progress_line(t: &mut Tally, run: &DeviceRun, total: usize, started: Instant) -> Option<String> {
    t.done += 1;
    match &run.outcome {
        Ok(Outcome::Installed { .. }) => t.installed += 1,
        Ok(Outcome::Failed { .. }) => t.failed += 1,
        Ok(Outcome::UpToDate) => {}
        Err(_) => t.errors += 1,
    }
    let step = (total / 10).max(1);
    (t.done.is_multiple_of(step) || t.done == total).then(|| {
        format!(
            "  [{:>4}/{total}] installed {:>4}  failed {:>3}  errors {:>3}  ({:.1}s)",
            t.done,
            t.installed,
            t.failed,
            t.errors,
            started.elapsed().as_secs_f64()
        )
    })
}

/// Build each device's trust from the genesis and the publisher's key on the ledger.
fn sim_devices(net: &LocalNet, nodes: &Nodes, plan: &RolloutPlan, fleet: Vec<FleetDevice>) -> Result<Vec<SimDevice>> {
    let keys = publisher_keys(nodes, &plan.publisher)?;
    let factory = factory_firmware();
    fleet
        .into_iter()
        .map(|d| {
            let trust = trust_from_genesis(
                &net.genesis,
                keys.clone(),
                d.model,
                &plan.owner,
                factory.security_version,
            )?;
            Ok(SimDevice::new(d.chip, factory.clone(), trust)?)
        })
        .collect()
}

/// Run the whole rollout (see the module documentation) over `fleet`, printing through `out`.
pub fn run_rollout(
    net: &LocalNet,
    fleet: Vec<FleetDevice>,
    plan: &RolloutPlan,
    out: &mut dyn FnMut(&str),
) -> Result<RolloutSummary> {
    let started = Instant::now();
    let client = Client::new(&net.apis[0])?;
    let [v1, v2] = releases(net, &client, plan, out)?;
    let nodes = Nodes::new(&net.apis)?;
    let ctx = Arc::new(AgentCtx {
        nodes: nodes.clone(),
        owner: OwnerSigner::new(&net.apis[0], &plan.owner, org_key(net, &plan.owner)?)?,
    });
    let devices = sim_devices(net, &nodes, plan, fleet)?;
    let n = devices.len();
    let baseline = approved_rollout(net, &client, plan, v1, false)?;
    let devices = prove_factory(&ctx, devices, plan, baseline)?;
    out(&format!(
        "  {n} devices proved their factory firmware {FACTORY_VERSION} (AttestInstall under rollout {}…)",
        short(&baseline)
    ));
    let rollout = approved_rollout(net, &client, plan, v2, true)?;
    out(&format!(
        "  rollout {}… of {FIXED_VERSION}: approved by '{}' and '{}', started",
        short(&rollout),
        plan.owner,
        plan.auditor
    ));
    let ids: Vec<DeviceId> = devices.iter().map(|d| d.id).collect();
    let faults = assign_faults(&ids, plan);
    let jobs: Vec<(SimDevice, Fault)> = devices.into_iter().zip(faults).collect();
    let (mut tally, wave_start) = (Tally::default(), Instant::now());
    let task =
        |ctx: &AgentCtx, i: usize, dev: &mut SimDevice, f: Fault| update_when_offered(ctx, i, dev, f, POLL_PATIENCE);
    let runs = run_fleet(&ctx, jobs, plan.concurrency, task, |run| {
        if let Some(line) = progress_line(&mut tally, run, n, wave_start) {
            out(&line);
        }
    })?;
    let mut summary = summarize(&runs, [v1, v2], rollout, n);
    report_cve(net, &client, plan, v1)?;
    query_map(&client, plan, &mut summary)?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn summarize(runs: &[DeviceRun], [v1, v2]: [ReleaseId; 2], rollout: TxHash, n: usize) -> RolloutSummary {
    let mut s = RolloutSummary {
        factory_release: v1,
        fixed_release: v2,
        rollout,
        rollout_status: String::new(),
        devices: n,
        installed: vec![],
        bad_download: vec![],
        power_loss: vec![],
        errors: vec![],
        exposed: vec![],
        version_map: BTreeMap::new(),
        unknown_firmware: 0,
        elapsed: Duration::ZERO,
    };
    for r in runs {
        let id = r.device.id;
        match r.fault {
            Fault::BadDownload => s.bad_download.push(id),
            Fault::PowerLoss => s.power_loss.push(id),
            Fault::None => {}
        }
        match &r.outcome {
            Ok(Outcome::Installed { .. }) => s.installed.push(id),
            Ok(_) => {}
            Err(e) => s.errors.push((id, e.to_string())),
        }
    }
    for v in [&mut s.installed, &mut s.bad_download, &mut s.power_loss] {
        v.sort();
    }
    s
}

/// The auditor reports the CVE against the factory release.
fn report_cve(net: &LocalNet, client: &Client, plan: &RolloutPlan, v1: ReleaseId) -> Result<()> {
    let p = ReportVulnerability {
        cve: plan.cve.clone(),
        affected: vec![v1],
        note: format!("remote code execution in {FACTORY_VERSION}"),
    };
    submit_typed(
        client,
        &plan.auditor,
        &org_key(net, &plan.auditor)?,
        Payload::ReportVulnerability(p),
    )?;
    Ok(())
}

/// Exposure, the version map and the rollout's final state, from the node.
fn query_map(client: &Client, plan: &RolloutPlan, s: &mut RolloutSummary) -> Result<()> {
    let e: ExposureBody = client.get_json(&format!("/v1/firmware/exposure?cve={}", plan.cve))?;
    s.exposed = e.devices.iter().map(|d| d.device.clone()).collect();
    s.exposed.sort();
    s.unknown_firmware = e.unknown_firmware;
    let list: ReleaseList = client.get_json(&format!("/v1/firmware/releases?publisher={}", plan.publisher))?;
    for r in &list.releases {
        let n = list.devices_per_release.get(&r.id).copied().unwrap_or(0);
        *s.version_map.entry(r.version.clone()).or_default() += n;
    }
    let d: RolloutDetail = client.get_json(&format!("/v1/firmware/rollouts/{}", s.rollout))?;
    s.rollout_status = d.rollout.status;
    Ok(())
}

/// The summary as the demo prints it.
pub fn print_summary(s: &RolloutSummary, plan: &RolloutPlan, out: &mut dyn FnMut(&str)) {
    out(&format!(
        "  rollout {}: {} of {} devices installed and proved {FIXED_VERSION} ({:.1}s in all)",
        s.rollout_status,
        s.installed.len(),
        s.devices,
        s.elapsed.as_secs_f64()
    ));
    out(&format!(
        "  injected (seed {}): {} corrupted downloads → integrity check failure (LwM2M 5); {} power losses mid-install → update failed (8), rebooted from the old slot; both stay on {FACTORY_VERSION} until a later rollout",
        plan.seed,
        s.bad_download.len(),
        s.power_loss.len()
    ));
    for (id, e) in &s.errors {
        out(&format!("  error: device {id}: {e}"));
    }
    let map: Vec<String> = s.version_map.iter().map(|(v, n)| format!("{v}: {n}")).collect();
    out(&format!(
        "  fleet version map (device-attested): {} (unknown firmware: {})",
        map.join(", "),
        s.unknown_firmware
    ));
    out(&format!(
        "  '{}' reported {} against {FACTORY_VERSION}: {} exposed device(s)",
        plan.auditor,
        plan.cve,
        s.exposed.len()
    ));
    for id in &s.exposed {
        out(&format!("    {id} runs {FACTORY_VERSION}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<DeviceId> {
        (0..n).map(|i| DeviceId([i; 20])).collect()
    }

    fn count(faults: &[Fault], f: Fault) -> usize {
        faults.iter().filter(|x| **x == f).count()
    }

    #[test]
    fn fault_counts_round_to_nearest_and_are_capped() {
        for (n, pct, want) in [
            (120, 5, 6),
            (120, 3, 4),
            (100, 3, 3),
            (20, 5, 1),
            (20, 3, 1),
            (10, 3, 0),
            (10, 99, 5),
        ] {
            assert_eq!(fault_count(n, pct), want, "{n} devices at {pct} %");
        }
    }

    #[test]
    fn faults_are_exact_and_replay_from_the_seed() {
        let devices = ids(120);
        let plan = RolloutPlan::demo(vec![100], 7);
        let faults = assign_faults(&devices, &plan);
        assert_eq!(count(&faults, Fault::BadDownload), 6);
        assert_eq!(count(&faults, Fault::PowerLoss), 4);
        assert_eq!(assign_faults(&devices, &plan), faults, "same seed, same faults");
        // The choice follows the device, not its position in the list.
        let mut reversed = devices.clone();
        reversed.reverse();
        let mut back = assign_faults(&reversed, &plan);
        back.reverse();
        assert_eq!(back, faults);
        let other = assign_faults(&devices, &RolloutPlan::demo(vec![100], 8));
        assert_ne!(other, faults, "another seed picks other devices");
    }

    #[test]
    fn images_differ_per_version_and_have_the_fixed_size() {
        let (a, b) = (image_for(FACTORY_VERSION), image_for(FIXED_VERSION));
        assert_eq!((a.len(), b.len()), (IMAGE_BYTES, IMAGE_BYTES));
        assert_ne!(Sha256::digest(&a), Sha256::digest(&b));
        assert_eq!(factory_firmware().image, a);
    }
}
