//! Firmware provenance end to end on four validator processes, through the `chipledger
//! firmware` commands: key → publish (SUIT envelope built by the CLI, image uploaded) →
//! certify → fleet policy (owner + auditor) → rollout → two approvals → ready → start →
//! LwM2M progress → install evidence from SoftChips booted with the release image → fleet
//! version map, CVE exposure, proofs verified against a quorum-signed checkpoint with the
//! genesis keys; then an upgrade moves devices out of the exposed set. Every refusal the
//! network can show (wrong-key manifest, not approved, measurement mismatch, rollback, revoked
//! device) is asserted by its typed error code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, chip_device_id, provision_chip, register_payload, submit_final};
use chipledger_cli::firmware_cmd::{get_final, install_payload, parse_rollout, verify_with_genesis};
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::build;
use chipledger_device::chip::{Firmware, SoftChip};
use chipledger_node::api_firmware::DeviceFirmwareBody;
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, DeviceId, ModelRange, RevokeDevice, RevokeReason};
use chipledger_types::firmware_tx::{UpdateResult, UpdateState};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, Payload, TxHash};
use sha2::{Digest, Sha256};

/// API ports 25070..25073, p2p 25170.. (clear of the other process tests).
const BASE_PORT: u16 = 25070;
const MODEL: u32 = 150;
const CVE: &str = "CVE-2026-1000";
const IMAGE_V1: &[u8] = b"lamp firmware 1.0.0: the original image";
const IMAGE_V2: &[u8] = b"lamp firmware 2.0.0: fixes CVE-2026-1000";

fn network() -> Result<LocalNet> {
    let dir = std::env::temp_dir().join(format!("chipledger-test-firmware-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, BASE_PORT, "chipledger-test")?;
    net.start_all_ready(Duration::from_secs(60))?;
    Ok(net)
}

fn key_path(net: &LocalNet, org: &str) -> PathBuf {
    net.dir.join("orgs").join(format!("{org}.key"))
}

fn org_key(net: &LocalNet, org: &str) -> SigningKey {
    KeyFile::read(&key_path(net, org)).expect("org key")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Run `chipledger firmware <args> --api … --json`; its stdout as JSON, or the error text.
fn fw(net: &LocalNet, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(&net.exe)
        .arg("firmware")
        .args(args)
        .args(["--api", &net.apis[0], "--json"])
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("output of firmware {args:?}"))
}

/// `chipledger firmware <args> --api …` with human output; its stdout.
fn fw_human(net: &LocalNet, args: &[&str]) -> Result<String> {
    let out = Command::new(&net.exe)
        .arg("firmware")
        .args(args)
        .args(["--api", &net.apis[0]])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?)
}

/// `chipledger firmware key-gen --out FILE --json` (offline).
fn key_gen(net: &LocalNet, out: &Path) -> Result<()> {
    let o = Command::new(&net.exe)
        .args(["firmware", "key-gen", "--json", "--out", path_str(out)])
        .output()?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Ok(())
}

/// `chipledger firmware <verb…> --org ORG --org-key FILE <rest…>`.
fn fw_as(net: &LocalNet, org: &str, verb: &[&str], rest: &[&str]) -> Result<serde_json::Value> {
    let key = key_path(net, org);
    let mut args = verb.to_vec();
    args.extend(["--org", org, "--org-key", path_str(&key)]);
    args.extend(rest);
    fw(net, &args)
}

/// A firmware command that must be refused with `code`.
fn fw_refused(net: &LocalNet, org: &str, verb: &[&str], rest: &[&str], code: &str) {
    match fw_as(net, org, verb, rest) {
        Ok(v) => panic!("expected refusal {code}, got {v}"),
        Err(e) => assert!(
            e.to_string().contains(&format!("refused: {code}")),
            "expected {code}: {e}"
        ),
    }
}

/// Submit as `org`; the API must refuse it with `code`.
fn refused(net: &LocalNet, c: &Client, org: &str, payload: Payload, code: &str) -> Result<()> {
    let tx = build(c, org, &org_key(net, org), None, 1000, payload)?;
    match c.try_submit(&tx)? {
        Err(e) => {
            assert_eq!(e.error, code, "expected {code}, got: {}", e.message);
            Ok(())
        }
        Ok(s) => bail!("expected {code}, but the transaction was accepted as {}", s.hash),
    }
}

/// A manufacturer CA for `maker`, granted models 100–199 by governance.
fn govern_ca(net: &LocalNet, c: &Client) -> Result<Ca> {
    let ca = Ca::generate("CN=Maker Device CA,O=maker")?;
    let grant = GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca.cert_der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    });
    let proposal = submit_final(c, "city", &org_key(net, "city"), Payload::Propose(grant))?;
    let id = parse_rollout(&proposal.hash)?;
    for org in ["maker", "vendor"] {
        submit_final(c, org, &org_key(net, org), Payload::Approve { proposal: id })?;
    }
    Ok(ca)
}

struct Device {
    id: DeviceId,
    chip: SoftChip,
}

fn provision(net: &LocalNet, c: &Client, ca: &Ca, n: usize) -> Result<Vec<Device>> {
    (0..n)
        .map(|_| {
            let chip = provision_chip(ca, "maker", "lamp")?;
            submit_final(
                c,
                "maker",
                &org_key(net, "maker"),
                register_payload(ca.id, &chip, MODEL, "city")?,
            )?;
            Ok(Device {
                id: chip_device_id(&chip),
                chip,
            })
        })
        .collect()
}

fn firmware<'a>(version: &'a str, svn: u64, image: &'a [u8]) -> Firmware<'a> {
    Firmware {
        name: "lamp-fw",
        version,
        svn,
        image,
    }
}

/// The device boots `fw` and its install evidence for `rollout` answers its current challenge.
fn evidence(c: &Client, d: &mut Device, fw: &Firmware<'_>, rollout: TxHash) -> Result<Payload> {
    let nonce = hex::decode(c.challenge(&d.id.to_string())?.nonce)?;
    install_payload(&mut d.chip, MODEL, fw, rollout, &nonce)
}

fn write(net: &LocalNet, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let p = net.dir.join(name);
    std::fs::write(&p, bytes)?;
    Ok(p)
}

/// Publish `image` as `version` (sequence `seq`) with the CLI; returns the release id.
fn publish(net: &LocalNet, key: &Path, image: &[u8], version: &str, seq: &str, fixes: &str) -> Result<String> {
    let file = write(net, &format!("image-{version}.bin"), image)?;
    let mut rest = vec!["--image", path_str(&file), "--version", version, "--model", "150,151"];
    rest.extend([
        "--sequence",
        seq,
        "--min",
        "0.0.0",
        "--max",
        "1.9.9",
        "--key",
        path_str(key),
    ]);
    if !fixes.is_empty() {
        rest.extend(["--fixes", fixes]);
    }
    let out = fw_as(net, "vendor", &["publish"], &rest)?;
    assert_eq!(out["image_uploaded"], true, "the node keeps a blob store");
    assert_eq!(out["image_digest"], hex::encode(Sha256::digest(image)).as_str());
    Ok(out["release"].as_str().context("release id")?.to_string())
}

/// Create a rollout of `release` to `city-lights` and have city and audit approve it.
fn ready_rollout(net: &LocalNet, release: &str) -> Result<String> {
    let created = fw_as(
        net,
        "city",
        &["rollout", "create"],
        &["--fleet", "city-lights", "--release", release],
    )?;
    let id = created["rollout"].as_str().context("rollout id")?.to_string();
    let st = fw(net, &["status", "--rollout", &id])?;
    assert_eq!(st["rollout"]["status"], "waiting_for_approval");
    for org in ["city", "audit"] {
        fw_as(net, org, &["rollout", "approve"], &[&id])?;
    }
    let st = fw(net, &["status", "--rollout", &id])?;
    assert_eq!(st["rollout"]["status"], "ready");
    assert_eq!(st["rollout"]["approvals"], serde_json::json!(["audit", "city"]));
    Ok(id)
}

/// `firmware device ID --cve CVE --verify`: the proven answer (checked by the CLI itself).
fn proven_device(net: &LocalNet, d: &DeviceId) -> Result<serde_json::Value> {
    let genesis = net.dir.join("genesis.json");
    let id = d.to_string();
    let out = fw(
        net,
        &["device", &id, "--cve", CVE, "--verify", "--genesis", path_str(&genesis)],
    )?;
    assert_eq!(out["verified"], true);
    Ok(out)
}

fn exposed_ids(net: &LocalNet) -> Result<(Vec<String>, u64)> {
    let e = fw(net, &["exposure", CVE])?;
    let mut ids: Vec<String> = e["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .map(|d| d["device"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    assert_eq!(e["count"].as_u64(), Some(ids.len() as u64));
    Ok((ids, e["unknown_firmware"].as_u64().context("unknown_firmware")?))
}

/// A proof edited by the node (or on the way) no longer verifies against the checkpoint.
fn tampered_proof_is_refused(net: &LocalNet, c: &Client, d: &DeviceId) -> Result<()> {
    let mut body: DeviceFirmwareBody = get_final(c, &format!("/v1/firmware/devices/{d}?cve={CVE}"))?;
    let genesis = net.dir.join("genesis.json");
    verify_with_genesis(&body, d, &genesis)?;
    let mut claim = body.clone();
    claim.exposure.as_mut().context("exposure")?.exposed ^= true;
    assert!(
        verify_with_genesis(&claim, d, &genesis).is_err(),
        "a flipped exposure claim"
    );
    body.installed_proof.value = None;
    body.installed = None;
    assert!(verify_with_genesis(&body, d, &genesis).is_err(), "a hidden install");
    Ok(())
}

/// Publisher key (and a wrong-key manifest refused), releases 1.0.0 and 2.0.0 (fixing the CVE)
/// published with their images uploaded, both certified, and the `city-lights` policy.
fn publish_phase(net: &LocalNet) -> Result<(String, String)> {
    let key = net.dir.join("vendor-fw.pem");
    key_gen(net, &key)?;
    fw_as(net, "vendor", &["key-register"], &["--key", path_str(&key)])?;
    let rogue = net.dir.join("rogue-fw.pem");
    key_gen(net, &rogue)?;
    let img = write(net, "rogue.bin", b"not the vendor's")?;
    let mut rest = vec!["--image", path_str(&img), "--version", "9.0.0", "--model", "150"];
    rest.extend([
        "--sequence",
        "9",
        "--min",
        "0.0.0",
        "--max",
        "9.9.9",
        "--key",
        path_str(&rogue),
    ]);
    fw_refused(net, "vendor", &["publish"], &rest, "bad_envelope");

    let v1 = publish(net, &key, IMAGE_V1, "1.0.0", "1", "")?;
    let v2 = publish(net, &key, IMAGE_V2, "2.0.0", "2", CVE)?;
    let digest = hex::encode(Sha256::digest(IMAGE_V1));
    let blob = reqwest::blocking::get(format!("{}/v1/blobs/{digest}", net.apis[0]))?;
    assert_eq!(
        blob.bytes()?.as_ref(),
        IMAGE_V1,
        "the image is served by the blob store"
    );
    for r in [&v1, &v2] {
        fw_as(net, "audit", &["certify"], &[r, "--note", "lab report"])?;
    }
    let mut policy = vec!["--fleet", "city-lights", "--approvers", "city,audit"];
    policy.extend(["--threshold", "2", "--require-certified"]);
    fw_as(net, "city", &["policy", "set"], &policy)?;
    Ok((v1, v2))
}

/// Rollout of 1.0.0: evidence before approval refused, two approvals, start, LwM2M progress for
/// all three devices (all report success), evidence with a wrong image refused, install
/// evidence from devices 0 and 1. Returns the rollout id.
fn first_rollout(net: &LocalNet, c: &Client, devices: &mut [Device], v1: &str) -> Result<TxHash> {
    let fw1 = firmware("1.0.0", 1, IMAGE_V1);
    let args = ["--fleet", "city-lights", "--release", v1];
    let created = fw_as(net, "city", &["rollout", "create"], &args)?;
    let rollout = parse_rollout(created["rollout"].as_str().context("rollout")?)?;
    let early = evidence(c, &mut devices[0], &fw1, rollout)?;
    refused(net, c, "city", early, "not_approved_for_device")?;
    let r1 = rollout.to_string();
    for org in ["city", "audit"] {
        fw_as(net, org, &["rollout", "approve"], &[&r1])?;
    }
    fw_as(net, "city", &["rollout", "start"], &[&r1])?;
    for d in devices.iter() {
        let id = d.id.to_string();
        for (state, result) in [("Downloading", "0"), ("Downloaded", "0"), ("Idle", "1")] {
            let rest = [r1.as_str(), "--device", &id, "--state", state, "--result", result];
            fw_as(net, "city", &["rollout", "progress"], &rest)?;
        }
    }
    let wrong = evidence(c, &mut devices[2], &firmware("1.0.0", 1, b"tampered image"), rollout)?;
    refused(net, c, "city", wrong, "measurement_mismatch")?;
    for d in devices.iter_mut().take(2) {
        let p = evidence(c, d, &fw1, rollout)?;
        submit_final(c, "city", &org_key(net, "city"), p)?;
    }
    let st = fw(net, &["status", "--rollout", &r1])?;
    assert_eq!(
        st["rollout"]["status"], "finished",
        "every targeted device has a final result"
    );
    assert_eq!(st["rollout"]["attested"], 2);
    assert_eq!(st["rollout"]["counts"]["succeeded"], 3);
    assert_eq!(st["devices"].as_array().map(Vec::len), Some(3));
    assert_eq!(st["devices"][0]["state"], UpdateState::Idle.name());
    assert_eq!(st["devices"][0]["result"], UpdateResult::Success as u8);
    Ok(rollout)
}

/// The CVE against 1.0.0: exactly the two attested devices are exposed; the third, whose
/// success was only reported by the owner, is unknown — not exposed; the proofs verify.
fn exposure_phase(net: &LocalNet, c: &Client, devices: &[Device], v1: &str) -> Result<()> {
    let args = ["--cve", CVE, "--releases", v1, "--note", "advisory"];
    fw_as(net, "audit", &["vuln", "report"], &args)?;
    let (exposed, unknown) = exposed_ids(net)?;
    let mut want: Vec<String> = devices[..2].iter().map(|d| d.id.to_string()).collect();
    want.sort();
    assert_eq!((exposed, unknown), (want, 1));
    let p0 = proven_device(net, &devices[0].id)?;
    assert_eq!(p0["installed"]["release"], v1);
    assert_eq!(p0["exposure"]["exposed"], true);
    let p2 = proven_device(net, &devices[2].id)?;
    assert!(p2["installed"].is_null(), "a server's success report is not evidence");
    assert_eq!(p2["exposure"]["exposed"], false);
    tampered_proof_is_refused(net, c, &devices[0].id)?;
    let rel = fw(net, &["status", v1])?;
    assert_eq!(rel["certification"]["status"], "certified");
    assert_eq!(rel["vulnerabilities"], serde_json::json!([CVE]));
    assert_eq!(rel["devices"], 2);
    Ok(())
}

/// Device 0 upgrades to 2.0.0 and leaves the exposed set; going back to 1.0.0 is a rollback.
fn upgrade_phase(net: &LocalNet, c: &Client, devices: &mut [Device], ids: (&str, &str, TxHash)) -> Result<()> {
    let (v1, v2, first) = ids;
    let r2 = parse_rollout(&ready_rollout(net, v2)?)?;
    let p = evidence(c, &mut devices[0], &firmware("2.0.0", 2, IMAGE_V2), r2)?;
    submit_final(c, "city", &org_key(net, "city"), p)?;
    let back = evidence(c, &mut devices[0], &firmware("1.0.0", 1, IMAGE_V1), first)?;
    refused(net, c, "city", back, "rollback")?;
    let (exposed, _) = exposed_ids(net)?;
    assert_eq!(exposed, vec![devices[1].id.to_string()]);
    let p0 = proven_device(net, &devices[0].id)?;
    assert_eq!(p0["installed"]["version"], "2.0.0");
    assert_eq!(p0["exposure"]["exposed"], false);
    let versions: Vec<_> = p0["history"]
        .as_array()
        .context("history")?
        .iter()
        .map(|h| h["version"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"]);
    let on_v2: serde_json::Value = c.get_json(&format!("/v1/firmware/releases/{v2}/devices"))?;
    assert_eq!(on_v2["count"], 1);
    assert_eq!(on_v2["devices"][0]["device"], devices[0].id.to_string().as_str());
    let list = fw(net, &["status"])?;
    assert_eq!(list["devices_per_release"][v1], 1);
    assert_eq!(list["devices_per_release"][v2], 1);
    Ok(())
}

/// Evidence made before the device was revoked is refused after it.
fn revoked_device_is_refused(net: &LocalNet, c: &Client, d: &mut Device, rollout: TxHash) -> Result<()> {
    let p = evidence(c, d, &firmware("1.0.0", 1, IMAGE_V1), rollout)?;
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: d.id,
        reason: RevokeReason::Compromised,
    });
    submit_final(c, "city", &org_key(net, "city"), revoke)?;
    refused(net, c, "city", p, "device_revoked")
}

#[test]
fn firmware_provenance_end_to_end() -> Result<()> {
    let mut net = network()?;
    let c = Client::new(&net.apis[0])?;
    let ca = govern_ca(&net, &c)?;
    let (v1, v2) = publish_phase(&net)?;
    let mut devices = provision(&net, &c, &ca, 3)?;
    let first = first_rollout(&net, &c, &mut devices, &v1)?;
    exposure_phase(&net, &c, &devices, &v1)?;
    upgrade_phase(&net, &c, &mut devices, (&v1, &v2, first))?;
    human_output(&net, &v1, &devices[1].id)?;
    revoked_device_is_refused(&net, &c, &mut devices[2], first)?;
    net.stop_all();
    let _ = std::fs::remove_dir_all(&net.dir);
    Ok(())
}

/// The default (human) output of the read commands names what the JSON says.
fn human_output(net: &LocalNet, v1: &str, exposed: &DeviceId) -> Result<()> {
    let genesis = net.dir.join("genesis.json");
    let rel = fw_human(net, &["status", v1])?;
    assert!(rel.contains("certification: certified") && rel.contains(CVE), "{rel}");
    let exp = fw_human(net, &["exposure", CVE])?;
    assert!(
        exp.contains("1 exposed device(s)") && exp.contains(&exposed.to_string()),
        "{exp}"
    );
    let id = exposed.to_string();
    let dev = fw_human(
        net,
        &["device", &id, "--cve", CVE, "--verify", "--genesis", path_str(&genesis)],
    )?;
    assert!(
        dev.contains("EXPOSED") && dev.contains("verified: proofs check"),
        "{dev}"
    );
    Ok(())
}

/// `bench exposure` answers exactly (it refuses to report timings otherwise) within budget.
#[test]
fn bench_exposure_is_exact_and_within_budget() -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_chipledger"))
        .args(["bench", "exposure", "--devices", "2000", "--json"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // Devices 0..2000 round-robin over 8 releases, the CVE affects 3; every tenth has no install.
    let want = (0..2000).filter(|i| i % 10 != 9 && i % 8 < 3).count();
    assert_eq!(
        (v["exact"].as_bool(), v["exposed"].as_u64()),
        (Some(true), Some(want as u64))
    );
    assert_eq!(v["unknown_firmware"], 200);
    assert_eq!(v["within_budget"], true);
    Ok(())
}
