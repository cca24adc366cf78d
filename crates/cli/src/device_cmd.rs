//! `chipledger device …`: manufacturer CA files, provisioning a `SoftChip`, and the device
//! transactions (register, transfer, accept, attest, revoke); reading devices and CAs.
//!
//! The building blocks (`ca_init`, `provision_chip`, `register_payload`, `attest_payload`) are
//! public: the demo and the integration tests use them too.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chipledger_device::cert::{self, CertValidity};
use chipledger_device::chip::{Chip, Firmware, SoftChip};
use chipledger_device::eat::{self, EatClaims, Measurement, OemId, SwVersion};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::ledger;
use chipledger_node::api::{DeviceBody, TxStatusBody};
use chipledger_node::config::KeyFile;
use chipledger_state::device::{ca_id_of, device_id_of};
use chipledger_types::device_tx::{
    AcceptTransfer, Attest, CaId, DeviceId, OfferTransfer, RegisterDevice, RevokeDevice, RevokeReason,
};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::Payload;
use clap::{Args, Subcommand};
use sha2::{Digest, Sha256};

use crate::client::{Client, DEFAULT_API};
use crate::txcmd::{build, wait_final};

/// How long a device command waits for its transaction to become final.
pub const WAIT_FINAL: Duration = Duration::from_secs(60);
/// The firmware image `attest` measures when no `--firmware` is given.
pub const DEFAULT_FIRMWARE_IMAGE: &[u8] = b"chipledger reference firmware image v1";

#[derive(Debug, Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    pub command: DeviceCommand,
}

/// Who signs a device transaction, and where it goes.
#[derive(Debug, Args)]
pub struct Signer {
    /// Validator API.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Signing organisation.
    #[arg(long)]
    pub org: String,
    /// The organisation's key file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Download the offline revocation snapshot (all revoked devices and CAs, proven against a
    /// checkpoint cosigned by 2f+1 validators); check it with `chipledger verify revocations`.
    Revocations {
        #[arg(long, default_value = crate::client::DEFAULT_API)]
        api: String,
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Create a manufacturer CA: a P-256 key file and a self-signed CA certificate (DER).
    CaInit {
        #[arg(long, value_name = "FILE")]
        key_out: PathBuf,
        #[arg(long, value_name = "FILE")]
        cert_out: PathBuf,
        /// RFC 4514 name, e.g. "CN=Acme Device CA,O=Acme".
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Make a SoftChip (new UDS file), have the CA certify its DeviceID, register it.
    Provision(ProvisionArgs),
    /// Run a simulated device that answers authorized commands over MQTT with signed receipts.
    ServeCommands(crate::command_cmd::ServeArgs),
    /// Show a device: owner, status, attested firmware, history.
    Show {
        /// Hex device id.
        id: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// List devices by model, owner, manufacturer, status or attested version, a page at a time.
    List(crate::fleet_cmd::ListArgs),
    /// Device counts by model, owner, manufacturer, status and attested version.
    Stats {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// List the manufacturer CAs (revoked ones too).
    Cas {
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
    /// Offer a device to another organisation (the current owner signs).
    Transfer {
        #[command(flatten)]
        signer: Signer,
        #[arg(long)]
        device: String,
        #[arg(long)]
        to: String,
    },
    /// Accept a device offered to the signing organisation.
    Accept {
        #[command(flatten)]
        signer: Signer,
        #[arg(long)]
        device: String,
        /// Have the chip prove its presence: sign the device's current ledger challenge and the
        /// accepting organisation with its DeviceID key (needs --chip).
        #[arg(long, requires = "chip")]
        device_proof: bool,
        /// The chip file (from `device provision`), for --device-proof.
        #[arg(long, value_name = "FILE")]
        chip: Option<PathBuf>,
    },
    /// Revoke a device (its owner or manufacturer signs). Final.
    Revoke {
        #[command(flatten)]
        signer: Signer,
        #[arg(long)]
        device: String,
        #[arg(long, value_parser = ["compromised", "decommissioned", "lost"])]
        reason: String,
    },
    /// Fetch the device's challenge, boot the chip's firmware, sign an EAT, submit it.
    Attest(AttestArgs),
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// The manufacturer organisation (signs the registration).
    #[command(flatten)]
    pub signer: Signer,
    /// Manufacturer CA key file (from `device ca-init`).
    #[arg(long, value_name = "FILE")]
    pub ca_key: PathBuf,
    /// Manufacturer CA certificate, DER (from `device ca-init`).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// Where to write the new chip (its UDS is a secret; mode 0600). Must not exist.
    #[arg(long, value_name = "FILE")]
    pub chip: PathBuf,
    /// Hardware model number (within the CA's granted ranges).
    #[arg(long)]
    pub model: u32,
    /// Hardware model name, written into the DeviceID certificate.
    #[arg(long, default_value = "softchip")]
    pub model_name: String,
    /// First owner.
    #[arg(long)]
    pub owner: String,
    /// Key algorithm of the chip's DeviceID and Alias keys: p256 (ES256 evidence) or ed25519
    /// (EdDSA evidence). The manufacturer CA stays P-256.
    #[arg(long, default_value = "p256", value_parser = parse_key_alg)]
    pub alg: DeviceKeyAlg,
}

/// `--alg`: one of [`DeviceKeyAlg::name`].
fn parse_key_alg(name: &str) -> Result<DeviceKeyAlg, String> {
    DeviceKeyAlg::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = DeviceKeyAlg::ALL.iter().map(|a| a.name()).collect();
        format!("unknown key algorithm '{name}' (expected one of: {})", names.join(", "))
    })
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// Submitting organisation (anyone may submit a device's evidence).
    #[command(flatten)]
    pub signer: Signer,
    #[arg(long)]
    pub device: String,
    /// The chip file (from `device provision`).
    #[arg(long, value_name = "FILE")]
    pub chip: PathBuf,
    /// Firmware image to measure and boot (default: a built-in reference image).
    #[arg(long, value_name = "FILE")]
    pub firmware: Option<PathBuf>,
    #[arg(long, default_value = "chipledger-fw")]
    pub fw_name: String,
    #[arg(long, default_value = "1.0.0")]
    pub fw_version: String,
    #[arg(long, default_value_t = 1)]
    pub svn: u64,
}

/// A manufacturer CA: its P-256 key and self-signed certificate.
pub struct Ca {
    pub key: p256::ecdsa::SigningKey,
    pub cert_der: Vec<u8>,
    pub id: CaId,
}

impl Ca {
    /// A new CA with a random key.
    pub fn generate(name: &str) -> Result<Ca> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let key = p256::ecdsa::SigningKey::from_bytes(&secret.into()).context("random P-256 scalar out of range")?;
        let cert_der = cert::issue_ca_cert(&key, name, 1, CertValidity::DICE_DEFAULT)
            .map_err(|e| anyhow::anyhow!("issuing the CA certificate: {e}"))?;
        let id = ca_id_of(key.verifying_key());
        Ok(Ca { key, cert_der, id })
    }

    /// Write the key (key file, 0600) and the certificate (DER); refuses to overwrite.
    pub fn save(&self, key_path: &Path, cert_path: &Path) -> Result<()> {
        for p in [key_path, cert_path] {
            if p.exists() {
                bail!("{} exists; refusing to overwrite", p.display());
            }
        }
        KeyFile::write(key_path, &SigningKey::P256(self.key.clone()))?;
        std::fs::write(cert_path, &self.cert_der).with_context(|| format!("writing {}", cert_path.display()))
    }

    /// Load a CA written by [`Ca::save`], checking that key and certificate belong together.
    pub fn load(key_path: &Path, cert_path: &Path) -> Result<Ca> {
        let SigningKey::P256(key) = KeyFile::read(key_path)? else {
            bail!(
                "{} is not a P-256 key (a manufacturer CA key is ES256)",
                key_path.display()
            );
        };
        let cert_der = std::fs::read(cert_path).with_context(|| format!("reading {}", cert_path.display()))?;
        let public = cert::verify_ca(&cert_der, None)
            .map_err(|e| anyhow::anyhow!("{} is not a valid CA certificate: {e}", cert_path.display()))?;
        if public != *key.verifying_key() {
            bail!(
                "{} does not certify the key in {}",
                cert_path.display(),
                key_path.display()
            );
        }
        let id = ca_id_of(&public);
        Ok(Ca { key, cert_der, id })
    }
}

/// A new P-256 SoftChip with a random UDS, its DeviceID certified by `ca`.
pub fn provision_chip(ca: &Ca, vendor: &str, model_name: &str) -> Result<SoftChip> {
    provision_chip_with(ca, DeviceKeyAlg::default(), vendor, model_name)
}

/// A new SoftChip with `alg` keys and a random UDS, its DeviceID certified by `ca`.
pub fn provision_chip_with(ca: &Ca, alg: DeviceKeyAlg, vendor: &str, model_name: &str) -> Result<SoftChip> {
    let mut uds = [0u8; 32];
    rand::fill(&mut uds);
    let mut chip = SoftChip::with_alg(uds, alg, vendor, model_name)?;
    let request = chip.deviceid_request();
    let der = cert::issue_deviceid_cert(&ca.key, &ca.cert_der, &request.cert_request())
        .map_err(|e| anyhow::anyhow!("issuing the DeviceID certificate: {e}"))?;
    chip.install_deviceid_cert(&ca.cert_der, &der)?;
    Ok(chip)
}

/// The device id of a chip, as the ledger computes it.
pub fn chip_device_id(chip: &SoftChip) -> DeviceId {
    device_id_of(chip.deviceid_public_key())
}

/// `RegisterDevice` for a provisioned chip.
pub fn register_payload(ca_id: CaId, chip: &SoftChip, model: u32, owner: &str) -> Result<Payload> {
    let der = chip
        .deviceid_cert_der()
        .context("the chip has no DeviceID certificate")?;
    Ok(Payload::RegisterDevice(RegisterDevice {
        ca: ca_id,
        deviceid_cert_der: der.to_vec(),
        model,
        owner: owner.into(),
    }))
}

/// The EAT claims a chip of hardware model number `model` reports after booting `firmware`,
/// answering `nonce`. `ueid` and `hwmodel` use the encodings the ledger checks
/// ([`chipledger_device::ledger`]).
pub fn claims(chip: &SoftChip, model: u32, firmware: &Firmware<'_>, nonce: &[u8]) -> EatClaims {
    let oem: [u8; 32] = Sha256::digest(chip.vendor().as_bytes()).into();
    let mut oem16 = [0u8; 16];
    oem16.copy_from_slice(&oem[..16]);
    EatClaims {
        nonce: nonce.to_vec(),
        ueid: ledger::ueid_of(&chip_device_id(chip).0).to_vec(),
        oemid: OemId::Random(oem16),
        hwmodel: ledger::hwmodel_of(model).to_vec(),
        swname: firmware.name.into(),
        swversion: SwVersion {
            version: firmware.version.into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: eat::CONTENT_FORMAT_OCTET_STREAM,
            value: firmware.measurement().to_vec(),
        }],
    }
}

/// Boot `firmware` on `chip` (registered as hardware model `model`) and build `Attest`
/// answering `nonce`.
pub fn attest_payload(chip: &mut SoftChip, model: u32, firmware: &Firmware<'_>, nonce: &[u8]) -> Result<Payload> {
    let layer = chip.boot(firmware)?;
    let token = chip.sign_eat(&claims(chip, model, firmware, nonce))?;
    Ok(Payload::Attest(Attest {
        device: chip_device_id(chip),
        alias_cert_der: layer.alias_cert_der,
        eat: token,
    }))
}

/// `AcceptTransfer` by `to_org`, with the chip's proof of presence over `nonce` (the device's
/// current ledger challenge).
pub fn accept_with_proof(chip: &SoftChip, to_org: &str, nonce: &[u8]) -> Result<Payload> {
    Ok(Payload::AcceptTransfer(AcceptTransfer {
        device: chip_device_id(chip),
        device_proof: Some(chip.sign_accept_transfer(to_org, nonce)?),
    }))
}

/// Load the chip file at `path` and check that it holds `device`.
fn load_chip(path: &Path, device: &DeviceId) -> Result<SoftChip> {
    let chip = SoftChip::load(path)?;
    if chip_device_id(&chip) != *device {
        bail!(
            "{} holds device {}, not {device}",
            path.display(),
            chip_device_id(&chip)
        );
    }
    Ok(chip)
}

pub fn parse_device_id(s: &str) -> Result<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .with_context(|| format!("'{s}' is not a device id (40 hex characters)"))
}

fn parse_reason(s: &str) -> Result<RevokeReason> {
    RevokeReason::ALL
        .into_iter()
        .find(|r| r.name() == s)
        .with_context(|| format!("unknown reason '{s}' (compromised, decommissioned or lost)"))
}

/// Sign `payload` as `signer`, submit it and wait until it is final; a refusal is an error.
pub fn submit_final(client: &Client, org: &str, key: &SigningKey, payload: Payload) -> Result<TxStatusBody> {
    let tx = build(client, org, key, None, 1000, payload)?;
    let sub = client.submit(&tx)?;
    let s = wait_final(client, &sub.hash, WAIT_FINAL)?;
    if s.status != "final" {
        bail!(
            "transaction {} was rejected: {}",
            s.hash,
            s.reason.as_deref().unwrap_or("?")
        );
    }
    Ok(s)
}

fn sign_and_report(signer: &Signer, payload: Payload, what: &str, extra: serde_json::Value) -> Result<()> {
    let client = Client::new(&signer.api)?;
    let key = KeyFile::read(&signer.key)?;
    let s = submit_final(&client, &signer.org, &key, payload)?;
    let height = s.height.unwrap_or_default();
    if signer.json {
        let mut out = serde_json::json!({ "tx": s.hash, "height": height, "status": s.status });
        if let (Some(o), serde_json::Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        println!("{out}");
    } else {
        println!("{what}: final at height {height} (tx {})", s.hash);
    }
    Ok(())
}

pub fn run(a: DeviceArgs) -> Result<()> {
    match a.command {
        DeviceCommand::Revocations { api, out } => download_revocations(&api, &out),
        DeviceCommand::CaInit {
            key_out,
            cert_out,
            name,
            json,
        } => ca_init(&key_out, &cert_out, &name, json),
        DeviceCommand::Provision(p) => provision(p),
        DeviceCommand::Show { id, api, json } => show(&api, &id, json),
        DeviceCommand::Cas { api, json } => list_cas(&api, json),
        DeviceCommand::List(l) => crate::fleet_cmd::list(&l),
        DeviceCommand::Stats { api, json } => crate::fleet_cmd::stats(&api, json),
        DeviceCommand::ServeCommands(a) => crate::command_cmd::serve_commands(a),
        DeviceCommand::Transfer { signer, device, to } => {
            let device = parse_device_id(&device)?;
            let p = Payload::OfferTransfer(OfferTransfer {
                device,
                to_org: to.clone(),
            });
            sign_and_report(
                &signer,
                p,
                &format!("device {device} offered to '{to}'"),
                serde_json::json!({}),
            )
        }
        DeviceCommand::Accept {
            signer,
            device,
            device_proof,
            chip,
        } => accept(&signer, &device, chip.as_deref().filter(|_| device_proof)),
        DeviceCommand::Revoke { signer, device, reason } => {
            let device = parse_device_id(&device)?;
            let reason = parse_reason(&reason)?;
            let p = Payload::RevokeDevice(RevokeDevice { device, reason });
            let what = format!("device {device} revoked ({})", reason.name());
            sign_and_report(&signer, p, &what, serde_json::json!({}))
        }
        DeviceCommand::Attest(a) => attest(a),
    }
}

fn ca_init(key_out: &Path, cert_out: &Path, name: &str, json: bool) -> Result<()> {
    let ca = Ca::generate(name)?;
    ca.save(key_out, cert_out)?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "ca": ca.id.to_string(), "key": key_out, "cert": cert_out })
        );
    } else {
        println!(
            "manufacturer CA {} → key {}, certificate {}\npropose it with: chipledger tx submit … propose-add-manufacturer-ca --name ORG --ca-cert {} --models FIRST-LAST",
            ca.id,
            key_out.display(),
            cert_out.display(),
            cert_out.display()
        );
    }
    Ok(())
}

fn provision(p: ProvisionArgs) -> Result<()> {
    if p.chip.exists() {
        bail!("{} exists; refusing to overwrite a chip", p.chip.display());
    }
    let ca = Ca::load(&p.ca_key, &p.ca_cert)?;
    let chip = provision_chip_with(&ca, p.alg, &p.signer.org, &p.model_name)?;
    chip.save(&p.chip)?;
    let id = chip_device_id(&chip);
    let payload = register_payload(ca.id, &chip, p.model, &p.owner)?;
    let what = format!(
        "device {id} ({}) registered by '{}' for '{}'",
        p.alg, p.signer.org, p.owner
    );
    let extra = serde_json::json!({
        "device": id.to_string(),
        "chip": p.chip,
        "ca": ca.id.to_string(),
        "alg": p.alg.name(),
    });
    sign_and_report(&p.signer, payload, &what, extra)
}

/// Accept `device` as `signer`; with `chip`, the chip proves its presence.
fn accept(signer: &Signer, device: &str, chip: Option<&Path>) -> Result<()> {
    let id = parse_device_id(device)?;
    let payload = match chip {
        Some(path) => {
            let chip = load_chip(path, &id)?;
            let challenge = Client::new(&signer.api)?.challenge(device)?;
            let nonce = hex::decode(&challenge.nonce).context("the node sent a non-hex nonce")?;
            accept_with_proof(&chip, &signer.org, &nonce)?
        }
        None => Payload::AcceptTransfer(AcceptTransfer {
            device: id,
            device_proof: None,
        }),
    };
    let proven = if chip.is_some() {
        " (the device proved its presence)"
    } else {
        ""
    };
    let what = format!("'{}' now owns device {id}{proven}", signer.org);
    let extra = serde_json::json!({ "device": id.to_string(), "device_proof": chip.is_some() });
    sign_and_report(signer, payload, &what, extra)
}

fn attest(a: AttestArgs) -> Result<()> {
    let device = parse_device_id(&a.device)?;
    let mut chip = load_chip(&a.chip, &device)?;
    let image = match &a.firmware {
        Some(path) => std::fs::read(path).with_context(|| format!("reading firmware {}", path.display()))?,
        None => DEFAULT_FIRMWARE_IMAGE.to_vec(),
    };
    let firmware = Firmware {
        name: &a.fw_name,
        version: &a.fw_version,
        svn: a.svn,
        image: &image,
    };
    let client = Client::new(&a.signer.api)?;
    // A SoftChip has no fuses: its hardware model number is the one it was registered with.
    let model = client.device(&a.device)?.model;
    let challenge = client.challenge(&a.device)?;
    let nonce = hex::decode(&challenge.nonce).context("the node sent a non-hex nonce")?;
    let payload = attest_payload(&mut chip, model, &firmware, &nonce)?;
    let what = format!(
        "device {device} attested firmware {} {} (sha256 {})",
        a.fw_name,
        a.fw_version,
        hex::encode(firmware.measurement())
    );
    let extra = serde_json::json!({ "device": device.to_string(), "measurement": hex::encode(firmware.measurement()) });
    sign_and_report(&a.signer, payload, &what, extra)
}

fn show(api: &str, id: &str, json: bool) -> Result<()> {
    parse_device_id(id)?;
    let client = Client::new(api)?;
    let d = client.device(id)?;
    let history = client.device_history(id)?;
    if json {
        println!("{}", serde_json::json!({ "device": d, "history": history }));
        return Ok(());
    }
    print_device(&d);
    println!("  history:");
    for h in &history {
        let proof = if h.device_proof {
            "  (device proved presence)"
        } else {
            ""
        };
        println!("    height {:<6} {:<12} {} → {}{proof}", h.height, h.kind, h.from, h.to);
    }
    Ok(())
}

fn print_device(d: &DeviceBody) {
    println!("device {}", d.id);
    println!("  status:       {}", d.status);
    println!("  owner:        {}", d.owner);
    if let Some(to) = &d.offered_to {
        println!("  offered to:   {to}");
    }
    println!("  manufacturer: {} (CA {})", d.manufacturer, d.ca);
    println!("  model:        {}", d.model);
    println!("  registered:   height {}", d.registered_height);
    match &d.attestation {
        Some(a) => println!(
            "  firmware:     {} {} (measurement {}) attested at height {}\n  alias key:    {} {}",
            a.swname, a.swversion, a.measurement, a.height, a.alias_key_alg, a.alias_key_spki
        ),
        None => println!("  firmware:     not attested yet"),
    }
    if let Some(r) = &d.revoked {
        println!("  revoked:      {} by {} at height {}", r.reason, r.by, r.height);
    }
}

fn list_cas(api: &str, json: bool) -> Result<()> {
    let cas = Client::new(api)?.cas()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cas)?);
        return Ok(());
    }
    for ca in &cas {
        let models: Vec<String> = ca.models.iter().map(|[a, b]| format!("{a}-{b}")).collect();
        let state = match &ca.revoked {
            Some(r) => format!("revoked at height {} ({})", r.height, r.reason),
            None => "active".into(),
        };
        println!("{} {:<10} models {:<20} {state}", ca.id, ca.org, models.join(","));
    }
    Ok(())
}

/// Fetch the snapshot, retrying while the newest checkpoint collects signatures.
fn download_revocations(api: &str, out: &std::path::Path) -> Result<()> {
    let client = crate::client::Client::new(api)?;
    let start = std::time::Instant::now();
    let snap: chipledger_node::revocations::RevocationSnapshot = loop {
        match client.get_json("/v1/revocations") {
            Ok(s) => break s,
            Err(e) if start.elapsed() < std::time::Duration::from_secs(30) && e.to_string().contains("retry") => {
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            Err(e) => return Err(e),
        }
    };
    std::fs::write(out, serde_json::to_string_pretty(&snap)? + "\n")?;
    println!(
        "wrote {}: {} revoked devices, {} revoked CAs, as of height {}",
        out.display(),
        snap.revoked_devices.len(),
        snap.revoked_cas.len(),
        snap.state_height
    );
    Ok(())
}
