//! Chip identity end to end on four validator processes: manufacturer CA governance, then
//! provision → register → transfer → accept (with the chip's proof of presence) → attest →
//! revoke through the `chipledger device` commands, and every rejection path asserted by its
//! typed error code through the API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{
    Ca, DEFAULT_FIRMWARE_IMAGE, accept_with_proof, attest_payload, chip_device_id, claims, parse_device_id,
    provision_chip, register_payload, submit_final,
};
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::build;
use chipledger_device::chip::{Chip, Firmware, SoftChip};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AcceptTransfer, Attest, CaId, OfferTransfer};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, TxHash};
use sha2::{Digest, Sha256};

/// The hardware model number the test chips are registered with.
const MODEL: u32 = 150;

const FIRMWARE: Firmware<'static> = Firmware {
    name: "chipledger-fw",
    version: "1.0.0",
    svn: 1,
    image: DEFAULT_FIRMWARE_IMAGE,
};

fn network(name: &str, base_port: u16) -> Result<LocalNet> {
    let dir = std::env::temp_dir().join(format!("chipledger-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, base_port, "chipledger-test")?;
    net.start_all_ready(Duration::from_secs(60))?;
    Ok(net)
}

fn key_path(net: &LocalNet, org: &str) -> PathBuf {
    net.dir.join("orgs").join(format!("{org}.key"))
}

fn org_key(net: &LocalNet, org: &str) -> SigningKey {
    KeyFile::read(&key_path(net, org)).expect("org key")
}

/// Run the `chipledger` binary with `args` (and `--api`, `--json`); its stdout as JSON.
fn cli(net: &LocalNet, args: &[&str]) -> Result<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend(["--api", &net.apis[0], "--json"]);
    cli_exact(net, &all)
}

/// Run the `chipledger` binary with exactly `args`; its stdout as JSON.
fn cli_exact(net: &LocalNet, args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(&net.exe).args(args).output()?;
    if !out.status.success() {
        bail!("chipledger {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("output of {args:?}"))
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

fn wait_height(c: &Client, height: u64, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while c.status()?.height < height {
        if start.elapsed() > timeout {
            bail!("height {height} not reached in {}s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `ca-init` by the CLI, proposal by city through `tx submit`, approvals by maker and vendor.
fn govern_ca(net: &LocalNet, c: &Client) -> Result<Ca> {
    let (ca_key, ca_cert) = (net.dir.join("maker-ca.key"), net.dir.join("maker-ca.der"));
    let out = Command::new(&net.exe)
        .args(["device", "ca-init", "--name", "CN=Maker Device CA,O=maker", "--json"])
        .args(["--key-out", path_str(&ca_key), "--cert-out", path_str(&ca_cert)])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let proposal = cli_exact(
        net,
        &[
            "tx",
            "submit",
            "--api",
            &net.apis[0],
            "--json",
            "--org",
            "city",
            "--key",
            path_str(&key_path(net, "city")),
            "--wait",
            "propose-add-manufacturer-ca",
            "--name",
            "maker",
            "--ca-cert",
            path_str(&ca_cert),
            "--models",
            "100-199",
        ],
    )?;
    let id: [u8; 32] = hex::decode(proposal["hash"].as_str().context("hash")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("hash length"))?;
    for org in ["maker", "vendor"] {
        let p = Payload::Approve { proposal: TxHash(id) };
        submit_final(c, org, &org_key(net, org), p)?;
    }
    let ca = Ca::load(&ca_key, &ca_cert)?;
    let cas = c.cas()?;
    assert!(
        cas.iter()
            .any(|x| x.id == ca.id.to_string() && x.org == "maker" && x.revoked.is_none()),
        "the CA is registered: {cas:?}"
    );
    Ok(ca)
}

fn provision(net: &LocalNet, chip: &Path) -> Result<String> {
    provision_with(net, chip, &[])
}

/// `device provision` with `extra` arguments (e.g. `--alg ed25519`); the new device's id.
fn provision_with(net: &LocalNet, chip: &Path, extra: &[&str]) -> Result<String> {
    let ca_key = net.dir.join("maker-ca.key");
    let ca_cert = net.dir.join("maker-ca.der");
    let maker_key = key_path(net, "maker");
    let mut args = vec![
        "device",
        "provision",
        "--org",
        "maker",
        "--key",
        path_str(&maker_key),
        "--ca-key",
        path_str(&ca_key),
        "--ca-cert",
        path_str(&ca_cert),
        "--chip",
        path_str(chip),
        "--model",
        "150",
        "--model-name",
        "lamp",
        "--owner",
        "city",
    ];
    args.extend(extra);
    let out = cli(net, &args)?;
    Ok(out["device"].as_str().context("device id")?.to_string())
}

/// An Ed25519 chip (`device provision --alg ed25519`): registered under the DICE ID of its
/// Ed25519 DeviceID key (endorsed by the P-256 CA) and attested with EdDSA evidence.
fn ed25519_chip(net: &LocalNet, c: &Client) -> Result<()> {
    let chip_path = net.dir.join("chip-ed25519.chip");
    let id = provision_with(net, &chip_path, &["--alg", "ed25519"])?;
    let chip = SoftChip::load(&chip_path)?;
    assert_eq!(chip.alg(), DeviceKeyAlg::Ed25519);
    assert_eq!(chip_device_id(&chip).to_string(), id);
    let att = device_cmd(
        net,
        "attest",
        "city",
        &["--device", &id, "--chip", path_str(&chip_path)],
    )?;
    let measurement = hex::encode(Sha256::digest(DEFAULT_FIRMWARE_IMAGE));
    assert_eq!(att["measurement"], measurement.as_str());
    let rec = c.device(&id)?.attestation.context("attested")?;
    assert_eq!(rec.alias_fwid_sha256, measurement);
    // The API serves the Alias key of the verified chain: the one DICE derives for this image
    // (the key depends on the image's hash only, not on its name or version).
    let mut chip = chip;
    let layer = chip.boot(&Firmware {
        name: "any",
        version: "any",
        svn: 0,
        image: DEFAULT_FIRMWARE_IMAGE,
    })?;
    assert_eq!(rec.alias_key_alg, "ed25519");
    assert_eq!(rec.alias_key_spki, hex::encode(layer.alias_public_key.to_spki_der()));
    Ok(())
}

/// Registration refusals: a chip certified by a CA the ledger does not know, and a duplicate.
fn registration_rejections(net: &LocalNet, c: &Client, ca: &Ca, chip1: &SoftChip) -> Result<()> {
    let rogue = Ca::generate("CN=Rogue CA,O=maker")?;
    let rogue_chip = provision_chip(&rogue, "maker", "lamp")?;
    refused(
        net,
        c,
        "maker",
        register_payload(ca.id, &rogue_chip, 150, "city")?,
        "unendorsed",
    )?;
    refused(
        net,
        c,
        "maker",
        register_payload(rogue.id, &rogue_chip, 150, "city")?,
        "unknown_ca",
    )?;
    refused(
        net,
        c,
        "maker",
        register_payload(ca.id, chip1, 150, "city")?,
        "device_exists",
    )?;
    let fresh = provision_chip(ca, "maker", "lamp")?;
    refused(
        net,
        c,
        "maker",
        register_payload(ca.id, &fresh, 500, "city")?,
        "model_not_granted",
    )?;
    refused(
        net,
        c,
        "city",
        register_payload(ca.id, &fresh, 150, "city")?,
        "not_manufacturer",
    )?;
    Ok(())
}

/// Evidence refusals before a good attestation is accepted and after: stale nonce, wrong key
/// (EAT signed by another chip's Alias key), replayed evidence.
fn attest_rejections(net: &LocalNet, c: &Client, ca: &Ca, chip_path: &Path, id: &str) -> Result<()> {
    let mut chip = SoftChip::load(chip_path)?;
    let nonce = hex::decode(c.challenge(id)?.nonce)?;

    let mut other = provision_chip(ca, "maker", "lamp")?;
    other.boot(&FIRMWARE)?;
    let layer = chip.boot(&FIRMWARE)?;
    let forged = Payload::Attest(Attest {
        device: chip_device_id(&chip),
        alias_cert_der: layer.alias_cert_der,
        eat: other.sign_eat(&claims(&chip, MODEL, &FIRMWARE, &nonce))?,
    });
    refused(net, c, "vendor", forged, "bad_evidence")?;
    // Good evidence, but its hwmodel is not the registered model number.
    let wrong_model = attest_payload(&mut chip, MODEL + 1, &FIRMWARE, &nonce)?;
    refused(net, c, "vendor", wrong_model, "evidence_mismatch")?;

    wait_height(c, 70, Duration::from_secs(180))?;
    let mut stale = vec![0u8; 40]; // names height 0, far outside the window
    stale[8..].copy_from_slice(&Sha256::digest(b"old"));
    refused(
        net,
        c,
        "vendor",
        attest_payload(&mut chip, MODEL, &FIRMWARE, &stale)?,
        "stale_nonce",
    )?;

    let nonce = hex::decode(c.challenge(id)?.nonce)?;
    let good = attest_payload(&mut chip, MODEL, &FIRMWARE, &nonce)?;
    submit_final(c, "vendor", &org_key(net, "vendor"), good.clone())?;
    refused(net, c, "vendor", good, "wrong_nonce")?;
    Ok(())
}

/// Revoke the CA by governance (`tx submit propose-revoke-manufacturer-ca`): it stays listed as
/// revoked, its devices show as untrusted, and it endorses nothing any more.
fn revoke_ca(net: &LocalNet, c: &Client, ca: &Ca) -> Result<()> {
    let survivor = provision_chip(ca, "maker", "lamp")?;
    submit_final(
        c,
        "maker",
        &org_key(net, "maker"),
        register_payload(ca.id, &survivor, 151, "city")?,
    )?;
    let city_key = key_path(net, "city");
    let ca_id = ca.id.to_string();
    let proposal = cli_exact(
        net,
        &[
            "tx",
            "submit",
            "--api",
            &net.apis[0],
            "--json",
            "--org",
            "city",
            "--key",
            path_str(&city_key),
            "--wait",
            "propose-revoke-manufacturer-ca",
            "--ca",
            &ca_id,
            "--reason",
            "key leaked",
        ],
    )?;
    let id: [u8; 32] = hex::decode(proposal["hash"].as_str().context("hash")?)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("hash length"))?;
    for org in ["maker", "vendor"] {
        submit_final(c, org, &org_key(net, org), Payload::Approve { proposal: TxHash(id) })?;
    }
    let listed = c
        .cas()?
        .into_iter()
        .find(|x| x.id == ca_id)
        .context("revoked CAs stay listed")?;
    assert_eq!(listed.revoked.map(|r| r.reason), Some("key leaked".into()));
    assert_eq!(c.device(&chip_device_id(&survivor).to_string())?.status, "untrusted");
    let late = provision_chip(ca, "maker", "lamp")?;
    refused(
        net,
        c,
        "maker",
        register_payload(ca.id, &late, 150, "city")?,
        "ca_revoked",
    )
}

/// `chipledger device VERB --org ORG --key <ORG's key> EXTRA… --api … --json`.
fn device_cmd(net: &LocalNet, verb: &str, org: &str, extra: &[&str]) -> Result<serde_json::Value> {
    let key = key_path(net, org);
    let mut args = vec!["device", verb, "--org", org, "--key", path_str(&key)];
    args.extend(extra);
    cli(net, &args)
}

/// Two-step transfer: city offers to vendor; audit (not offered) cannot accept; proofs of
/// presence made for another organisation or by another chip are refused; vendor accepts with
/// the chip's proof (`--device-proof`) and the history records it.
fn transfer(net: &LocalNet, c: &Client, id: &str, chip_path: &Path) -> Result<()> {
    device_cmd(net, "transfer", "city", &["--device", id, "--to", "vendor"])?;
    assert_eq!(c.device(id)?.owner, "city", "nothing changes until accepted");
    let device = parse_device_id(id)?;
    let accept = Payload::AcceptTransfer(AcceptTransfer {
        device,
        device_proof: None,
    });
    refused(net, c, "audit", accept, "no_transfer_offer")?;

    let chip = SoftChip::load(chip_path)?;
    let nonce = hex::decode(c.challenge(id)?.nonce)?;
    let for_audit = accept_with_proof(&chip, "audit", &nonce)?;
    refused(net, c, "vendor", for_audit, "device_proof_mismatch")?;
    let impostor = provision_chip(
        &Ca::load(&net.dir.join("maker-ca.key"), &net.dir.join("maker-ca.der"))?,
        "maker",
        "lamp",
    )?;
    let forged = Payload::AcceptTransfer(AcceptTransfer {
        device,
        device_proof: Some(impostor.sign_accept_transfer("vendor", &nonce)?),
    });
    refused(net, c, "vendor", forged, "device_proof_wrong_key")?;

    let out = device_cmd(
        net,
        "accept",
        "vendor",
        &["--device", id, "--device-proof", "--chip", path_str(chip_path)],
    )?;
    assert_eq!(out["device_proof"], true);
    assert_eq!(c.device(id)?.owner, "vendor");
    let history = c.device_history(id)?;
    let last = history.last().context("history")?;
    assert_eq!(
        (last.kind.as_str(), last.to.as_str(), last.device_proof),
        ("transferred", "vendor", true)
    );
    let page = c.devices("vendor", 10)?;
    assert_eq!((page.total, page.devices[0].id.as_str()), (1, id));
    Ok(())
}

/// Attestation through the CLI records the firmware measurement.
fn attest(net: &LocalNet, c: &Client, id: &str, chip_path: &Path) -> Result<()> {
    let att = device_cmd(
        net,
        "attest",
        "vendor",
        &["--device", id, "--chip", path_str(chip_path)],
    )?;
    let measurement = hex::encode(Sha256::digest(DEFAULT_FIRMWARE_IMAGE));
    assert_eq!(att["measurement"], measurement.as_str());
    let rec = c.device(id)?.attestation.context("attested")?;
    assert_eq!(rec.measurement, measurement);
    assert_eq!(rec.alias_fwid_sha256, measurement);
    Ok(())
}

/// Revocation by the owner; afterwards evidence, transfers and challenges are refused.
fn revoke(net: &LocalNet, c: &Client, id: &str, chip_path: &Path) -> Result<()> {
    let mut chip = SoftChip::load(chip_path)?;
    let nonce = hex::decode(c.challenge(id)?.nonce)?;
    let late = attest_payload(&mut chip, MODEL, &FIRMWARE, &nonce)?;
    device_cmd(net, "revoke", "vendor", &["--device", id, "--reason", "compromised"])?;
    let d = c.device(id)?;
    assert_eq!(d.status, "revoked");
    assert_eq!(d.revoked.map(|r| r.reason), Some("compromised".into()));
    refused(net, c, "vendor", late, "device_revoked")?;
    let offer = Payload::OfferTransfer(OfferTransfer {
        device: parse_device_id(id)?,
        to_org: "city".into(),
    });
    refused(net, c, "vendor", offer, "device_revoked")?;
    assert!(c.challenge(id).unwrap_err().to_string().contains("device_revoked"));
    Ok(())
}

// ---- fleet index queries (issue 3: devices by model / status; counts) -------------------

/// After the revoke, the node-local fleet index lists the device by model and by status, and
/// the counts agree, through the API and through `chipledger device list` / `device stats`.
fn fleet_queries(net: &LocalNet, c: &Client, id: &str) -> Result<()> {
    use chipledger_node::api::DevicesQuery;
    let query = |model: Option<u32>, status: Option<&str>| DevicesQuery {
        model,
        status: status.map(String::from),
        ..DevicesQuery::default()
    };
    let by_model = c.device_list(&query(Some(150), None))?;
    assert_eq!((by_model.total, by_model.devices[0].id.as_str()), (1, id));
    assert!(by_model.height >= by_model.devices[0].revoked.as_ref().context("revoked")?.height);
    let revoked = c.device_list(&query(Some(150), Some("revoked")))?;
    assert_eq!((revoked.total, revoked.devices[0].status.as_str()), (1, "revoked"));
    assert_eq!(c.device_list(&query(None, Some("active")))?.total, 0);
    assert_eq!(c.device_list(&query(Some(151), None))?.total, 0);
    let bad = c.device_list(&query(None, Some("gone"))).unwrap_err();
    assert!(bad.to_string().contains("bad_request"), "{bad}");

    let listed = cli(net, &["device", "list", "--model", "150", "--status", "revoked"])?;
    assert_eq!(
        (listed["total"].as_u64(), listed["devices"][0]["id"].as_str()),
        (Some(1), Some(id))
    );
    let stats = cli(net, &["device", "stats"])?;
    assert_eq!(stats["total"], 1);
    assert_eq!(stats["by_model"]["150"], 1);
    assert_eq!(stats["by_owner"]["vendor"], 1);
    assert_eq!(
        (
            stats["by_status"]["revoked"].as_u64(),
            stats["by_status"]["active"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(stats["unattested"], 0, "the device was attested before the revoke");
    Ok(())
}

#[test]
fn chip_identity_end_to_end() -> Result<()> {
    let mut net = network("identity", 24070)?;
    let c = Client::new(&net.apis[0])?;
    let ca = govern_ca(&net, &c)?;

    let chip_path = net.dir.join("chip1.chip");
    let id = provision(&net, &chip_path)?;
    let chip1 = SoftChip::load(&chip_path)?;
    assert_eq!(
        chip_device_id(&chip1).to_string(),
        id,
        "the device id is the chip's DICE ID"
    );
    let shown = cli(&net, &["device", "show", &id])?;
    assert_eq!(shown["device"]["owner"], "city");
    assert_eq!(shown["device"]["status"], "active");
    assert_eq!(shown["device"]["ca"], ca.id.to_string());
    registration_rejections(&net, &c, &ca, &chip1)?;

    transfer(&net, &c, &id, &chip_path)?;
    attest(&net, &c, &id, &chip_path)?;
    attest_rejections(&net, &c, &ca, &chip_path, &id)?;
    revoke(&net, &c, &id, &chip_path)?;
    fleet_queries(&net, &c, &id)?;
    ed25519_chip(&net, &c)?;
    revoke_ca(&net, &c, &ca)?;

    let history = c.device_history(&id)?;
    let kinds: Vec<(&str, bool)> = history.iter().map(|h| (h.kind.as_str(), h.device_proof)).collect();
    assert_eq!(
        kinds,
        [("registered", false), ("transferred", true), ("revoked", false)]
    );
    revocation_snapshot(&net, &id, &ca)?;
    let unknown = c.device(&CaId([0; 20]).to_string()).unwrap_err();
    assert!(unknown.to_string().contains("not_found"), "{unknown}");
    net.stop_all();
    let _ = std::fs::remove_dir_all(&net.dir);
    Ok(())
}

/// The offline revocation snapshot lists the revoked device and CA, verifies against the
/// genesis keys with no node, and a tampered copy is refused.
fn revocation_snapshot(net: &LocalNet, id: &str, ca: &Ca) -> Result<()> {
    let file = net.dir.join("revocations.json");
    let out = Command::new(&net.exe)
        .args(["device", "revocations", "--api", &net.apis[0], "--out", path_str(&file)])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let genesis = net.dir.join("genesis.json");
    // Offline: an unreachable --api proves the node is not consulted.
    let verify = |f: &Path| {
        Command::new(&net.exe)
            .args([
                "verify",
                "--api",
                "http://127.0.0.1:9",
                "--genesis",
                path_str(&genesis),
                "revocations",
                "--list",
            ])
            .arg(f)
            .output()
    };
    let ok = verify(&file)?;
    let listing = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{listing} {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(listing.contains(&format!("device {id}")), "{listing}");
    assert!(listing.contains(&format!("ca {}", ca.id)), "{listing}");
    // Drop the device from its shard record: the proof no longer matches the cosigned root.
    let mut snap: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    let shard = usize::from_str_radix(&id[..2], 16)?;
    snap["device_shards"][shard]["value"] = serde_json::Value::Null;
    let tampered = net.dir.join("tampered.json");
    std::fs::write(&tampered, snap.to_string())?;
    let bad = verify(&tampered)?;
    assert_eq!(bad.status.code(), Some(1), "a tampered snapshot must be invalid");
    Ok(())
}
