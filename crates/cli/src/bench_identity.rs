//! `chipledger bench identity`: device registrations/s through the state machine, evidence
//! (DeviceID chain + Alias certificate + EAT, all ES256) verifications/s, and both against raw
//! P-256 signature verification on the same machine and core.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use chipledger_device::cert::{
    CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert, issue_deviceid_cert, verify_chain,
};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat, verify_eat};
use chipledger_state::device::{ca_id_of, device_id_of};
use chipledger_state::model::get_seq;
use chipledger_state::store::{WriteSet, apply_writes};
use chipledger_state::{BlockContext, VerifyAll, apply_tx, genesis_writes};
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::{AddManufacturerCa, ModelRange, RegisterDevice};
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::SigningKey as OrgKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, TxBody};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey};
use serde_json::json;

/// Block time used by the benchmark (inside the DICE default certificate validity).
const T0_MS: u64 = 1_800_000_000_000;

struct Chip {
    deviceid_der: Vec<u8>,
    alias_der: Vec<u8>,
    eat: Vec<u8>,
    alias_pub: p256::ecdsa::VerifyingKey,
}

fn key(i: u64) -> SigningKey {
    let mut seed = [7u8; 32];
    seed[..8].copy_from_slice(&(i + 1).to_be_bytes());
    SigningKey::from_bytes(&seed.into()).expect("a valid scalar")
}

fn tcb(layer: u64) -> DiceTcbInfo {
    DiceTcbInfo {
        vendor: Some("maker".into()),
        model: Some("lamp".into()),
        version: Some("1.0.0".into()),
        svn: Some(1),
        layer: Some(layer),
        fwids: Some(vec![Fwid::sha256(&[layer as u8; 32])]),
        ..Default::default()
    }
}

fn make_chip(ca_key: &SigningKey, ca_der: &[u8], i: u64) -> Result<Chip> {
    let (dev, alias) = (key(1000 + 2 * i), key(1001 + 2 * i));
    let (dev_id, alias_id) = (device_id_of(dev.verifying_key()), device_id_of(alias.verifying_key()));
    let (t0, t1) = (tcb(0), tcb(1));
    let dev_req = CertRequest {
        subject_public_key: dev.verifying_key(),
        subject_id: &dev_id.0,
        tcb_info: &t0,
        validity: CertValidity::DICE_DEFAULT,
    };
    let deviceid_der = issue_deviceid_cert(ca_key, ca_der, &dev_req).map_err(|e| anyhow::anyhow!("{e}"))?;
    let alias_req = CertRequest {
        subject_public_key: alias.verifying_key(),
        subject_id: &alias_id.0,
        tcb_info: &t1,
        validity: CertValidity::DICE_DEFAULT,
    };
    let alias_der = issue_alias_cert(&dev, &deviceid_der, &alias_req).map_err(|e| anyhow::anyhow!("{e}"))?;
    let claims = EatClaims {
        nonce: vec![i as u8; 40],
        ueid: vec![1; 17],
        oemid: OemId::Pen(12345),
        hwmodel: b"lamp".to_vec(),
        swname: "lamp-fw".into(),
        swversion: SwVersion {
            version: "2.1.0".into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: 42,
            value: vec![0xab; 32],
        }],
    };
    let eat = sign_eat(&claims, &alias).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Chip {
        deviceid_der,
        alias_der,
        eat,
        alias_pub: *alias.verifying_key(),
    })
}

fn genesis() -> Genesis {
    let orgs = [("maker", Role::Manufacturer), ("city", Role::Owner)]
        .iter()
        .enumerate()
        .map(|(i, (n, r))| OrgSpec {
            name: n.to_string(),
            roles: vec![*r],
            keys: vec![OrgKey::ed25519_from_seed(&[i as u8 + 1; 32]).public_key()],
        })
        .collect();
    let validators = vec![ValidatorSpec {
        name: "v-maker".into(),
        org: "maker".into(),
        consensus_key: [9; 32],
        note_key: OrgKey::ed25519_from_seed(&[99; 32]).public_key(),
        p2p_address: "127.0.0.1:1".into(),
        api_url: "http://127.0.0.1:2".into(),
    }];
    let policy = Policy {
        governance_threshold: 1,
        proposal_ttl_blocks: 100,
    };
    Genesis {
        chain_id: "bench".into(),
        timestamp_ms: T0_MS,
        orgs,
        validators,
        policy,
    }
}

struct World {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    maker: OrgKey,
    height: u64,
}

impl World {
    fn apply(&mut self, payload: Payload) -> Result<()> {
        let body = TxBody {
            chain_id: "bench".into(),
            org: "maker".into(),
            key_id: self.maker.public_key().id(),
            seq: get_seq(&self.state, "maker").map_err(|e| anyhow::anyhow!("{e}"))? + 1,
            expiry_height: self.height + 10,
            payload,
        };
        let tx = SignedTx::sign(body, &self.maker).to_cbor();
        let ctx = BlockContext {
            chain_id: "bench",
            height: self.height,
            timestamp_ms: T0_MS + self.height,
        };
        let mut writes = WriteSet::new();
        apply_tx(&self.state, &mut writes, &ctx, &VerifyAll, &tx).map_err(|e| anyhow::anyhow!("{e}"))?;
        apply_writes(&mut self.state, &writes);
        self.height += 1;
        Ok(())
    }
}

/// Raw P-256 ECDSA verifications per second (RustCrypto `p256`, the implementation the state
/// machine uses), over `n` distinct signatures.
fn raw_p256_verify_rate(n: usize) -> f64 {
    let k = key(1);
    let msgs: Vec<[u8; 32]> = (0..n).map(|i| [i as u8; 32]).collect();
    let sigs: Vec<Signature> = msgs.iter().map(|m| k.sign(m)).collect();
    let vk = k.verifying_key();
    let start = Instant::now();
    for (m, s) in msgs.iter().zip(&sigs) {
        vk.verify(m, s).expect("valid signature");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn identity(n: usize, json_out: bool) -> Result<()> {
    let ca_key = key(0);
    let ca_der = issue_ca_cert(&ca_key, "CN=Bench CA,O=maker", 1, CertValidity::DICE_DEFAULT)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    eprintln!("making {n} software chips …");
    let chips = (0..n as u64)
        .map(|i| make_chip(&ca_key, &ca_der, i))
        .collect::<Result<Vec<_>>>()?;
    let g = genesis();
    let mut state = BTreeMap::new();
    apply_writes(&mut state, &genesis_writes(&g));
    let mut w = World {
        state,
        maker: OrgKey::ed25519_from_seed(&[1; 32]),
        height: 1,
    };
    let grant = AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca_der.clone(),
        models: vec![ModelRange { first: 1, last: 10 }],
    };
    w.apply(Payload::Propose(GovAction::AddManufacturerCa(grant)))
        .context("granting the CA")?;
    let ca = ca_id_of(ca_key.verifying_key());

    let start = Instant::now();
    for c in &chips {
        let reg = RegisterDevice {
            ca,
            deviceid_cert_der: c.deviceid_der.clone(),
            model: 5,
            owner: "city".into(),
        };
        w.apply(Payload::RegisterDevice(reg))?;
    }
    let registrations_per_s = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    for (i, c) in chips.iter().enumerate() {
        verify_chain(&ca_der, &c.deviceid_der, &c.alias_der, None).map_err(|e| anyhow::anyhow!("{e}"))?;
        verify_eat(&c.eat, c.alias_pub, &[i as u8; 40]).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let evidence_per_s = n as f64 / start.elapsed().as_secs_f64();
    let raw = raw_p256_verify_rate(n.max(1000));
    let figures = json!({
        "devices": n,
        "registrations_per_s": registrations_per_s.round(),
        "evidence_verifications_per_s": evidence_per_s.round(),
        "p256_verify_per_s": raw.round(),
        "evidence_to_p256_verify_ratio": (evidence_per_s / raw * 1000.0).round() / 1000.0,
        "registration_to_p256_verify_ratio": (registrations_per_s / raw * 1000.0).round() / 1000.0,
        "note": "single core, state machine in-process; evidence = CA→DeviceID→Alias chain (3 ES256 verifies) + EAT (1 ES256 verify)",
    });
    if json_out {
        println!("{figures}");
    } else {
        println!("{:<34} {:>12} {:>22}", "figure", "measured", "ratio to raw P-256");
        println!(
            "{:<34} {:>12.0} {:>22.3}",
            "registrations_per_s",
            registrations_per_s,
            registrations_per_s / raw
        );
        println!(
            "{:<34} {:>12.0} {:>22.3}",
            "evidence_verifications_per_s",
            evidence_per_s,
            evidence_per_s / raw
        );
        println!("{:<34} {:>12.0} {:>22.3}", "p256_verify_per_s (RustCrypto)", raw, 1.0);
    }
    Ok(())
}
