//! The demo's access scenario (`chipledger_cli::access_demo`) on four validator processes, a
//! `chipledger gateway` holding simulated sensors' sealed records and the city's `chipledger
//! keyservice`: credits by governance → tagged district → offer → purchase (credits moved
//! exactly) → key release final before the key is sent → the buyer decrypts what the owner
//! reads → revoke → refused → an authorized diagnostic accepted by the sensor with its receipt
//! committed → a range proof over a hidden reading verified by the ledger; and the sensor's audit trail lists every step, each entry's
//! transaction included under a quorum-cosigned checkpoint (checked offline), while the
//! buyer's and the owner's trails hold the purchase and the release.

mod data_support;

use std::process::Command;

use anyhow::{Result, bail};
use chipledger_cli::access_demo::{AccessDemo, BUYER_CREDITS, OFFER_PRICE, run, verified_trail};
use chipledger_cli::data_cmd::NetworkTrust;
use chipledger_cli::data_net::{OWNER, govern, org_key_path, register_sim_devices};
use chipledger_cli::simulate::sim_owner_secret;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_node::config::KeyFile;
use chipledger_types::audit::AuditSubject;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Role};
use data_support::{TestNet, WAIT, poll};

/// API ports 35070..35073, p2p 35170.. (issue 6's port plan: lead).
const BASE_PORT: u16 = 35070;
const SEED: u64 = 61;
const SENSORS: u64 = 4;
/// `fleet simulate --rate 3 --seconds 1`: 3 data records per sensor, one epoch.
const RECORDS: u64 = 3;
const BUYER: &str = "institute";
/// A genesis organisation with a key file: its technician runs the diagnostic.
const TECHNICIAN: &str = "vendor";

#[test]
fn a_month_of_district_data_is_bought_released_decrypted_and_revoked() -> Result<()> {
    let t = TestNet::start("access-flow", BASE_PORT)?;
    let sensors = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..SENSORS)?;
    let buyer_key = SigningKey::ed25519_from_seed(&[SEED as u8; 32]);
    KeyFile::write(&org_key_path(&t.net, BUYER), &buyer_key)?;
    govern(
        &t.net,
        &t.client,
        GovAction::AddOrg(OrgSpec {
            name: BUYER.into(),
            roles: vec![Role::Consumer],
            keys: vec![buyer_key.public_key()],
        }),
    )?;
    let (broker, http) = (free_local_addr()?, free_local_addr()?);
    let _gateway = t.start_gateway("gw-flow", broker, &["--http", &http.to_string(), "--batch-ms", "200"])?;
    let sim = Command::new(&t.exe)
        .args([
            "fleet",
            "simulate",
            "--devices",
            &SENSORS.to_string(),
            "--rate",
            &RECORDS.to_string(),
        ])
        .args([
            "--seconds",
            "1",
            "--seed",
            &SEED.to_string(),
            "--broker",
            &broker.to_string(),
        ])
        .args(["--ack-wait-ms", "30000", "--json"])
        .output()?;
    if !sim.status.success() {
        bail!("fleet simulate: {}", String::from_utf8_lossy(&sim.stderr));
    }
    poll("every record committed", WAIT, || {
        Ok((t.gateway("gw-flow")?.records == SENSORS * (RECORDS + 1)).then_some(()))
    })?;
    let owner_data_key = t.dir.join("owner-data.key");
    std::fs::write(&owner_data_key, hex::encode(sim_owner_secret(SEED).to_bytes()))?;

    let demo = AccessDemo {
        net: &t.net,
        exe: &t.exe,
        sensors: &sensors,
        records_url: format!("http://{http}"),
        owner_data_key,
        keyservice_listen: free_local_addr()?,
        buyer: BUYER,
        technician: TECHNICIAN,
        broker,
        sensor_seed: SEED,
        keyservice_log: None,
    };
    let mut lines = Vec::new();
    let (outcome, _ks) = run(&demo, &mut |l: &str| lines.push(l.to_string()))?;
    eprintln!("{}", lines.join("\n"));

    // Credits moved exactly once, atomically with the grant.
    assert_eq!(outcome.buyer_credits, BUYER_CREDITS - OFFER_PRICE);
    assert_eq!(outcome.owner_credits, OFFER_PRICE);
    // The buyer read the sensor's first reading, as the simulator wrote it.
    assert!(
        outcome.plaintext.starts_with("{\"device\":0,\"k\":0,"),
        "decrypted: {}",
        outcome.plaintext
    );
    assert_eq!(outcome.released_epochs.len(), 1);
    assert_eq!(outcome.refusal_after_revoke, "grant_revoked");
    // The authorized diagnostic was accepted by the device and its receipt committed.
    assert_eq!(outcome.command_outcome, "accepted");
    assert!(!outcome.receipt_tx.is_empty());
    assert!(outcome.range_proof_bytes > 0);

    // The sensor's trail: tagged, released, in block order, every proof cosigned.
    let kinds: Vec<&str> = outcome.audit.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(outcome.audit_cosigned, outcome.audit.len());
    for want in [
        "tags",
        "key-release",
        "authorization",
        "command",
        "receipt",
        "range-proof",
    ] {
        assert!(kinds.contains(&want), "sensor trail {kinds:?} lacks {want}");
    }
    let release = outcome
        .audit
        .iter()
        .find(|e| e.kind == "key-release")
        .expect("a release entry");
    assert_eq!(release.tx, outcome.release_tx);
    assert_eq!(release.actor, OWNER);
    assert!(
        outcome
            .audit
            .windows(2)
            .all(|w| w[0].height <= w[1].height && w[0].n + 1 == w[1].n)
    );

    // The buyer's and the owner's trails hold the purchase, the release and the revocation.
    let trust = NetworkTrust::from_genesis(&t.net.dir.join("genesis.json"))?;
    for org in [BUYER, OWNER] {
        let (trail, cosigned) = verified_trail(&t.client, &trust, &AuditSubject::Org(org.into()))?;
        assert_eq!(cosigned, trail.len());
        let kinds: Vec<&str> = trail.iter().map(|e| e.kind.as_str()).collect();
        for want in ["purchase", "key-release", "grant-revoked"] {
            assert!(kinds.contains(&want), "{org}'s trail {kinds:?} lacks {want}");
        }
        let purchase = trail.iter().find(|e| e.kind == "purchase").expect("a purchase entry");
        assert_eq!(purchase.tx, outcome.grant.to_string(), "the grant is the purchase");
    }
    // A sensor outside the district has no release in its trail.
    let outside = sensors.last().copied().expect("sensors");
    let (trail, _) = verified_trail(&t.client, &trust, &AuditSubject::Device(outside))?;
    assert!(trail.iter().all(|e| e.kind != "key-release"), "{trail:?}");
    Ok(())
}
