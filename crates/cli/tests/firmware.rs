//! Firmware provenance end to end on four validator processes, through the `chipledger
//! firmware` commands: key → publish (SUIT envelope built by the CLI, image uploaded) →
//! certify → fleet policy (owner + auditor) → rollout → two approvals → ready → start →
//! LwM2M progress → install evidence from SoftChips booted with the release image → fleet
//! version map, CVE exposure, proofs verified against a quorum-signed checkpoint with the
//! genesis keys; then an upgrade moves devices out of the exposed set. Every refusal the
//! network can show (wrong-key manifest, not approved, measurement mismatch, rollback, revoked
//! device) is asserted by its typed error code.
//!
//! Every install is device-verified: before it boots a release, a device downloads the update
//! bundle and the image from *its* node (nodes 1–3; the images are mirrored there) and runs
//! `verify_update` with the trust it was provisioned with (the genesis validators' note keys,
//! quorum 3 of 4, the vendor's SUIT key, its model, owner and security version). The device-side
//! refusals are shown on network-served data too: wrong-key and unsigned manifests, a corrupted
//! image, a release not approved (the node's 404; an approval for another model or owner), a
//! checkpoint stripped to 2 of 4 cosignatures, proofs under another checkpoint, a rollback, and a
//! revoked device whose verified update the ledger refuses. None of them changes the device's
//! trust, its firmware, or its entry in the fleet version map.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, WAIT_FINAL, chip_device_id, provision_chip, register_payload, submit_final};
use chipledger_cli::firmware_cmd::{
    get_final, install_payload, parse_release, parse_rollout, read_verifying_key, verify_with_genesis,
};
use chipledger_cli::firmware_trust::{
    BundleRecords, DownloadError, download_bundle, download_image, proven_installed, trust_from_genesis_file,
};
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::{build, wait_final};
use chipledger_device::chip::{Firmware, SoftChip};
use chipledger_device::update::{ImageHasher, UpdateBundle, UpdateError, UpdateTrust, VerifiedUpdate, verify_update};
use chipledger_node::api_firmware::DeviceFirmwareBody;
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, DeviceId, ModelRange, RevokeDevice, RevokeReason};
use chipledger_types::firmware_tx::{UpdateResult, UpdateState};
use chipledger_types::keys::SigningKey;
use chipledger_types::state_proof::ProofError;
use chipledger_types::tx::{GovAction, Payload, TxHash};
use sha2::{Digest, Sha256};

/// API ports 25070..25073, p2p 25170.. (clear of the other process tests).
const BASE_PORT: u16 = 25070;
const MODEL: u32 = 150;
const CVE: &str = "CVE-2026-1000";
const IMAGE_V1: &[u8] = b"lamp firmware 1.0.0: the original image";
const IMAGE_V2: &[u8] = b"lamp firmware 2.0.0: fixes CVE-2026-1000";
const IMAGE_V3: &[u8] = b"lamp firmware 3.0.0: for model 151 only";
/// The organisation owning the test fleet.
const OWNER: &str = "city";

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
    /// What the device checks updates against; raised only by an install the ledger accepted.
    trust: UpdateTrust,
    /// The node it downloads updates from.
    node: usize,
    /// The update it runs (`None`: the factory image).
    running: Option<VerifiedUpdate>,
}

/// The trust a new device of the fleet is provisioned with: genesis validators, quorum 3 of 4,
/// the vendor's SUIT key, model 150, owner `city`, security version 0.
fn new_device_trust(net: &LocalNet) -> Result<UpdateTrust> {
    let vendor = read_verifying_key(&net.dir.join("vendor-fw.pem"))?;
    let trust = trust_from_genesis_file(&net.dir.join("genesis.json"), vec![vendor], MODEL, OWNER, 0)?;
    assert_eq!((trust.validators.len(), trust.quorum), (4, 3), "2f + 1 of 4");
    Ok(trust)
}

fn provision(net: &LocalNet, c: &Client, ca: &Ca, n: usize) -> Result<Vec<Device>> {
    (0..n)
        .map(|i| {
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
                trust: new_device_trust(net)?,
                // Nodes 1, 2, 3: not the one the releases were published through.
                node: 1 + i % 3,
                running: None,
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
        let v = update_from_network(net, c, d, v1)?;
        assert_eq!(v.version, "1.0.0");
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
    let v = update_from_network(net, c, &mut devices[0], v2)?;
    assert_eq!((v.version.as_str(), v.security_version), ("2.0.0", 2));
    assert_eq!(
        BundleRecords::of(&bundle_for(net, &devices[0], v2)?)?.approval.rollout,
        r2
    );
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

#[test]
fn firmware_provenance_end_to_end() -> Result<()> {
    let mut net = network()?;
    let c = Client::new(&net.apis[0])?;
    let ca = govern_ca(&net, &c)?;
    let (v1, v2) = publish_phase(&net)?;
    mirror_images(&net, &[IMAGE_V1, IMAGE_V2])?;
    let mut devices = provision(&net, &c, &ca, 3)?;
    let first = first_rollout(&net, &c, &mut devices, &v1)?;
    exposure_phase(&net, &c, &devices, &v1)?;
    upgrade_phase(&net, &c, &mut devices, (&v1, &v2, first))?;
    human_output(&net, &v1, &devices[1].id)?;
    device_refusals_on_served_data(&net, &c, &mut devices, (&v1, &v2))?;
    revoked_device_is_refused(&net, &c, &mut devices[2], &v1)?;
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

/// `bench exposure` answers exactly over a 10,000-device fleet (it refuses to report timings
/// otherwise); the ≤ 50 ms budget is a benchmark figure, not asserted here.
#[test]
fn bench_exposure_answer_is_exact() -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_chipledger"))
        .args(["bench", "exposure", "--devices", "10000", "--json"])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    // 10,000 devices (the test-fleet size) round-robin over 8 releases; the CVE affects 3
    // of them; every tenth device has no attested install.
    let want = (0..10_000).filter(|i| i % 10 != 9 && i % 8 < 3).count();
    assert_eq!(
        (v["exact"].as_bool(), v["exposed"].as_u64()),
        (Some(true), Some(want as u64))
    );
    assert_eq!(v["unknown_firmware"], 1000);
    // The timing is reported, never asserted (load-dependent): only its presence is checked.
    assert!(v["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    Ok(())
}

// ---- device-verified updates on network-served data ------------------------------------------

/// Copy release images into the blob stores of nodes 1–3, as a distributor would. A node
/// accepts only images a release on its ledger names; one still catching up answers 404 for a
/// moment.
fn mirror_images(net: &LocalNet, images: &[&[u8]]) -> Result<()> {
    let http = reqwest::blocking::Client::new();
    for api in &net.apis[1..] {
        for image in images {
            let start = Instant::now();
            loop {
                let resp = http
                    .put(format!("{api}/v1/blobs"))
                    .header("content-type", "application/octet-stream")
                    .body(image.to_vec())
                    .send()?;
                let status = resp.status().as_u16();
                if resp.status().is_success() {
                    break;
                }
                if status != 404 || start.elapsed() > WAIT_FINAL {
                    bail!("mirroring an image to {api}: HTTP {status}: {}", resp.text()?);
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(())
}

/// The update bundle of `release` for `d`'s owner, served by `d`'s node.
fn bundle_for(net: &LocalNet, d: &Device, release: &str) -> Result<UpdateBundle> {
    Ok(download_bundle(
        &net.apis[d.node],
        &parse_release(release)?,
        &d.trust.owner,
    )?)
}

/// The bundle of `release` and the image its release record names, both from `d`'s node.
fn download_update(net: &LocalNet, d: &Device, release: &str) -> Result<(UpdateBundle, Vec<u8>)> {
    let bundle = bundle_for(net, d, release)?;
    let name = BundleRecords::of(&bundle)?.image_name();
    let (image, streamed) = download_image(&net.apis[d.node], &name)?;
    assert_eq!(
        streamed,
        ImageHasher::digest(&image),
        "hashed while streaming = hashed whole"
    );
    Ok((bundle, image))
}

/// Why a device did not install an update.
#[derive(Debug)]
enum NotInstalled {
    /// The device's own verification refused it: nothing was booted.
    Device(UpdateError),
    /// The device verified it, but the ledger refused its install evidence (the error code).
    Ledger(String),
}

/// What a device does with a downloaded update: verify it under its trust; only then boot the
/// image and send install evidence for the rollout the proven approval names; once the ledger
/// has accepted the evidence, run it and raise the trust's floors.
fn attempt_update(
    net: &LocalNet,
    c: &Client,
    d: &mut Device,
    bundle: &UpdateBundle,
    image: &[u8],
) -> Result<Result<VerifiedUpdate, NotInstalled>> {
    match prepare_install(c, d, bundle, image)? {
        Ok((v, payload)) => submit_install(net, c, d, v, payload),
        Err(e) => Ok(Err(NotInstalled::Device(e))),
    }
}

/// Verify the update under `d`'s trust; only if it verifies, boot the image and build the
/// install evidence for the rollout the proven approval names (answering `d`'s challenge).
fn prepare_install(
    c: &Client,
    d: &mut Device,
    bundle: &UpdateBundle,
    image: &[u8],
) -> Result<Result<(VerifiedUpdate, Payload), UpdateError>> {
    let v = match verify_update(bundle, &ImageHasher::digest(image), &d.trust) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let rollout = BundleRecords::of(bundle)?.approval.rollout;
    let fw = Firmware {
        name: "lamp-fw",
        version: &v.version,
        svn: v.security_version,
        image,
    };
    let payload = evidence(c, d, &fw, rollout)?;
    Ok(Ok((v, payload)))
}

/// The owner submits `d`'s install evidence; once final, `d` runs `v` and raises its floors.
fn submit_install(
    net: &LocalNet,
    c: &Client,
    d: &mut Device,
    v: VerifiedUpdate,
    payload: Payload,
) -> Result<Result<VerifiedUpdate, NotInstalled>> {
    let tx = build(c, OWNER, &org_key(net, OWNER), None, 1000, payload)?;
    let submitted = match c.try_submit(&tx)? {
        Ok(s) => s,
        Err(e) => return Ok(Err(NotInstalled::Ledger(e.error))),
    };
    let s = wait_final(c, &submitted.hash, WAIT_FINAL)?;
    if s.status != "final" {
        return Ok(Err(NotInstalled::Ledger(s.reason.unwrap_or_default())));
    }
    d.trust.record_install(&v);
    d.running = Some(v.clone());
    Ok(Ok(v))
}

/// Device `d` updates to `release` from its node; the proven fleet version map then names it.
fn update_from_network(net: &LocalNet, c: &Client, d: &mut Device, release: &str) -> Result<VerifiedUpdate> {
    let (bundle, image) = download_update(net, d, release)?;
    let v = match attempt_update(net, c, d, &bundle, &image)? {
        Ok(v) => v,
        Err(why) => bail!("device {} did not install {release}: {why:?}", d.id),
    };
    assert_eq!(v.release_id, parse_release(release)?.0);
    assert!(v.signers >= 3, "a quorum cosigned the checkpoint");
    assert_eq!(d.trust.security_version, v.security_version);
    assert_map(net, c, d)?;
    Ok(v)
}

/// The fleet version map, proven under a checkpoint the genesis validators cosigned, names what
/// `d` runs; its security version is the floor `d` enforces.
fn assert_map(net: &LocalNet, c: &Client, d: &Device) -> Result<()> {
    let (installed, _) = proven_installed(c, &net.dir.join("genesis.json"), &d.id)?;
    let got = installed.map(|i| (i.release.0, i.version, i.security_version));
    let want = d
        .running
        .as_ref()
        .map(|v| (v.release_id, v.version.clone(), v.security_version));
    assert_eq!(got, want, "fleet map entry of {}", d.id);
    assert_eq!(want.map_or(0, |w| w.2), d.trust.security_version);
    Ok(())
}

/// The same envelope with its authentication wrapper (key 2) removed: an unsigned manifest.
fn strip_authentication(envelope: &[u8]) -> Vec<u8> {
    // Tag 107 (0xd8 0x6b), map of 2 (0xa2), key 2, bstr auth, key 3, bstr manifest.
    assert_eq!(&envelope[..4], &[0xd8, 0x6b, 0xa2, 0x02], "the CLI's envelope layout");
    let (len, head) = match envelope[4] {
        x @ 0x40..=0x57 => ((x - 0x40) as usize, 1),
        0x58 => (envelope[5] as usize, 2),
        0x59 => (u16::from_be_bytes([envelope[5], envelope[6]]) as usize, 3),
        other => panic!("unexpected head {other:#x}"),
    };
    let rest = &envelope[4 + head + len..];
    assert_eq!(rest[0], 0x03, "the manifest follows the authentication wrapper");
    let mut out = vec![0xd8, 0x6b, 0xa1];
    out.extend_from_slice(rest);
    out
}

/// `note` with only its first `n` cosignature lines.
fn keep_signatures(note: &str, n: usize) -> String {
    let (body, sigs) = note
        .split_once("\n\n")
        .expect("a signed note: body, blank line, signatures");
    let lines: Vec<&str> = sigs.lines().collect();
    assert!(lines.len() > n, "the served note has more than {n} cosignatures");
    format!("{body}\n\n{}\n", lines[..n].join("\n"))
}

/// What the network served device 1, and what the refusal rows swap in.
struct Served {
    /// 2.0.0 for owner `city`: a valid update for device 1 (runs 1.0.0).
    bundle: UpdateBundle,
    image: Vec<u8>,
    /// 3.0.0, approved for `city`'s model 151 only (device 1 is model 150).
    model_151_only: UpdateBundle,
    image_v3: Vec<u8>,
    /// The newest final checkpoint, from a later height than `bundle`'s.
    later_checkpoint: String,
    /// The key of a would-be publisher the device does not trust.
    rogue_key: p256::ecdsa::VerifyingKey,
}

type Change = fn(&Served, &mut UpdateBundle, &mut Vec<u8>, &mut UpdateTrust);

/// One device-side refusal of network-served data: what changes, and the error it must give.
struct Refusal {
    name: &'static str,
    change: Change,
    expect: fn(&UpdateError) -> bool,
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "manifest signed by a key the device does not hold",
        change: |s, _, _, t| t.publisher_keys = vec![s.rogue_key],
        expect: |e| matches!(e, UpdateError::ManifestNotFromPublisher),
    },
    Refusal {
        name: "unsigned manifest (authentication wrapper stripped)",
        change: |_, b, _, _| b.envelope = strip_authentication(&b.envelope),
        expect: |e| matches!(e, UpdateError::UnsignedManifest),
    },
    Refusal {
        name: "image corrupted in transit",
        change: |_, _, img, _| img[0] ^= 0x01,
        expect: |e| matches!(e, UpdateError::DigestMismatch { .. }),
    },
    Refusal {
        name: "release approved for another model only",
        change: |s, b, img, _| (*b, *img) = (s.model_151_only.clone(), s.image_v3.clone()),
        expect: |e| matches!(e, UpdateError::NotApproved { owner, model: MODEL, .. } if owner == OWNER),
    },
    Refusal {
        name: "approval of another owner",
        change: |_, _, _, t| t.owner = "maker".into(),
        expect: |e| {
            matches!(
                e,
                UpdateError::Proof {
                    record: "approval",
                    source: ProofError::WrongKey { .. }
                }
            )
        },
    },
    Refusal {
        name: "checkpoint stripped to 2 of 4 cosignatures",
        change: |_, b, _, _| b.checkpoint = keep_signatures(&b.checkpoint, 2),
        expect: |e| matches!(e, UpdateError::BelowQuorum { valid: 2, quorum: 3 }),
    },
    Refusal {
        name: "proofs under a checkpoint of another height",
        change: |s, b, _, _| b.checkpoint = s.later_checkpoint.clone(),
        expect: |e| {
            matches!(
                e,
                UpdateError::Proof {
                    record: "release",
                    source: ProofError::RootMismatch
                }
            )
        },
    },
    Refusal {
        name: "rollback: the device runs a higher security version",
        change: |_, _, _, t| t.security_version = 3,
        expect: |e| {
            matches!(
                e,
                UpdateError::Rollback {
                    installed: 3,
                    offered: 2
                }
            )
        },
    },
];

/// Release 3.0.0, certified, approved by city and audit for `city-lights`' model 151 only;
/// its image mirrored. Returns its release id.
fn publish_for_model_151(net: &LocalNet) -> Result<String> {
    let v3 = publish(net, &net.dir.join("vendor-fw.pem"), IMAGE_V3, "3.0.0", "3", "")?;
    fw_as(net, "audit", &["certify"], &[&v3, "--note", "lab report"])?;
    let args = ["--fleet", "city-lights", "--release", v3.as_str(), "--models", "151"];
    let created = fw_as(net, OWNER, &["rollout", "create"], &args)?;
    let id = created["rollout"].as_str().context("rollout id")?.to_string();
    for org in [OWNER, "audit"] {
        fw_as(net, org, &["rollout", "approve"], &[&id])?;
    }
    mirror_images(net, &[IMAGE_V3])?;
    Ok(v3)
}

/// Download what the refusal rows need from device `d`'s node; the 2.0.0 bundle verifies as
/// served.
fn serve(net: &LocalNet, d: &Device, v2: &str) -> Result<Served> {
    let (bundle, image) = download_update(net, d, v2)?;
    let as_served = verify_update(&bundle, &ImageHasher::digest(&image), &d.trust)
        .map_err(|e| anyhow::anyhow!("the served update does not verify: {e}"))?;
    let v3 = publish_for_model_151(net)?;
    let (model_151_only, image_v3) = download_update(net, d, &v3)?;
    let later = Client::new(&net.apis[d.node])?.checkpoint()?;
    assert!(
        later.state_height > Some(as_served.checkpoint_height),
        "a later checkpoint"
    );
    assert!(later.signatures >= 3, "final: cosigned by a quorum");
    Ok(Served {
        bundle,
        image,
        model_151_only,
        image_v3,
        later_checkpoint: later.note,
        rogue_key: read_verifying_key(&net.dir.join("rogue-fw.pem"))?,
    })
}

/// A bundle request for an owner without an approval is the node's typed 404.
fn node_refuses_unapproved_owner(net: &LocalNet, d: &Device, release: &str) -> Result<()> {
    match download_bundle(&net.apis[d.node], &parse_release(release)?, "maker") {
        Err(DownloadError::Refused { status: 404, body, .. }) => {
            assert_eq!(body.error, "not_found");
            assert!(
                body.message.contains("not approved for owner 'maker'"),
                "{}",
                body.message
            );
            Ok(())
        }
        other => bail!("expected the node's 404, got {other:?}"),
    }
}

/// Every device-side refusal on data the network served device 1, each leaving its trust, its
/// firmware and its map entry unchanged; device 0 (on 2.0.0) refuses 1.0.0 as a rollback; then
/// device 1 installs the unchanged 2.0.0 update.
fn device_refusals_on_served_data(
    net: &LocalNet,
    c: &Client,
    devices: &mut [Device],
    (v1, v2): (&str, &str),
) -> Result<()> {
    let served = serve(net, &devices[1], v2)?;
    node_refuses_unapproved_owner(net, &devices[1], v2)?;
    let d = &mut devices[1];
    for r in REFUSALS {
        let (mut bundle, mut image, provisioned) = (served.bundle.clone(), served.image.clone(), d.trust.clone());
        (r.change)(&served, &mut bundle, &mut image, &mut d.trust);
        let before = (d.trust.clone(), d.running.clone());
        match attempt_update(net, c, d, &bundle, &image)? {
            Err(NotInstalled::Device(e)) => assert!((r.expect)(&e), "{}: unexpected error {e:?}", r.name),
            other => panic!("{}: expected a device refusal, got {other:?}", r.name),
        }
        assert_eq!(
            (d.trust.clone(), d.running.clone()),
            before,
            "{}: device changed",
            r.name
        );
        d.trust = provisioned;
        assert_map(net, c, d)?;
    }
    rollback_is_refused_by_the_device(net, c, &mut devices[0], v1)?;
    let v = update_from_network(net, c, &mut devices[1], v2)?;
    assert_eq!(v.version, "2.0.0");
    Ok(())
}

/// Device 0 runs 2.0.0 (security version 2); the served 1.0.0 update is a rollback.
fn rollback_is_refused_by_the_device(net: &LocalNet, c: &Client, d: &mut Device, v1: &str) -> Result<()> {
    let (bundle, image) = download_update(net, d, v1)?;
    let before = (d.trust.clone(), d.running.clone());
    match attempt_update(net, c, d, &bundle, &image)? {
        Err(NotInstalled::Device(UpdateError::Rollback {
            installed: 2,
            offered: 1,
        })) => {}
        other => panic!("expected a rollback refusal, got {other:?}"),
    }
    assert_eq!((d.trust.clone(), d.running.clone()), before);
    assert_map(net, c, d)
}

/// Evidence a device made (for an update it verified) before it was revoked is refused after
/// it (`device_revoked`). The node still serves the owner's bundle and it still verifies (the
/// approval is the fleet's; a device cannot know it was revoked), but a revoked device gets no
/// challenge, so no new evidence: its map entry stays empty and its trust unchanged.
fn revoked_device_is_refused(net: &LocalNet, c: &Client, d: &mut Device, v1: &str) -> Result<()> {
    let (bundle, image) = download_update(net, d, v1)?;
    let (v, payload) = prepare_install(c, d, &bundle, &image)?.map_err(|e| anyhow::anyhow!("{e}"))?;
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: d.id,
        reason: RevokeReason::Compromised,
    });
    submit_final(c, OWNER, &org_key(net, OWNER), revoke)?;
    let before = (d.trust.clone(), d.running.clone());
    match submit_install(net, c, d, v, payload)? {
        Err(NotInstalled::Ledger(code)) => assert_eq!(code, "device_revoked"),
        other => panic!("expected the ledger's device_revoked, got {other:?}"),
    }
    let (bundle, image) = download_update(net, d, v1)?;
    assert!(verify_update(&bundle, &ImageHasher::digest(&image), &d.trust).is_ok());
    let again = attempt_update(net, c, d, &bundle, &image).map(|_| ());
    assert!(
        again.as_ref().is_err_and(|e| e.to_string().contains("device_revoked")),
        "no challenge for a revoked device: {again:?}"
    );
    assert_eq!((d.trust.clone(), d.running.clone()), before);
    assert!(d.running.is_none(), "device 2 never installed");
    assert_map(net, c, d)
}
