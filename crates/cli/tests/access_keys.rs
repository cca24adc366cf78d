//! Issue 6, Done-when 1 and 2 for key release: four validator processes, a `chipledger
//! gateway` holding two simulated devices' sealed records, and the owner's `chipledger
//! keyservice`. Grant → release → the grantee decrypts exactly what the owner reads, and the
//! `KeyRelease` is final on the ledger (the grant counts it); a person grantee too; refusals by
//! code with no key in the answer (device outside the scope, a tag the owner never set — refused
//! by the ledger itself —, bad signature, wrong grantee, stale, replayed, outside the record
//! window, no such epoch); revoke → the next request is refused; every answered release has its
//! final `KeyRelease` on the ledger; and with the ledger unable to finalize (2 of 4 validators
//! killed) or unreachable, the service answers 503 and hands out no key.

mod data_support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::data_cmd::{Decryptor, NetworkTrust, Opened, open_record, wait_record_proof};
use chipledger_cli::data_net::{OWNER, org_key, org_key_path, register_sim_devices};
use chipledger_cli::keyservice::protocol::{
    KeyRequest, RELEASE_PATH, ReleaseRequestJson, SERVICE_PATH, ServiceJson, Signer, fresh_p256_secret,
    recipient_digest, request_keys,
};
use chipledger_cli::simulate::{SIM_STREAM, sim_owner_secret};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::seal::open_payload;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_node::api::{BlockBody, StateProofBody};
use chipledger_types::access_tx::{AccessScope, GrantAccess, GrantRecord, Grantee, RevokeAccess, grant_key};
use chipledger_types::block::Block;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, SignedTx, TxHash};
use data_support::{TestNet, WAIT, poll};

/// API ports 32070..32073, p2p 32170.. (issue 6's port plan: B).
const BASE_PORT: u16 = 32070;
const SEED: u64 = 60;
const DEVICES: u64 = 2;
/// `fleet simulate --rate 5 --seconds 1`: 5 data records per device, one epoch.
const RECORDS: u64 = 5;
/// The organisation the first grant is for (a genesis organisation with a key file).
const GRANTEE_ORG: &str = "audit";
/// The key service's `--final-wait-s`: how long it waits for a final `KeyRelease`.
const FINAL_WAIT_S: u64 = 6;
const HOUR_MS: u64 = 3_600_000;

#[test]
fn keys_are_released_only_after_a_final_key_release() -> Result<()> {
    let started = Instant::now();
    let mut t = TestNet::start("access-keys", BASE_PORT)?;
    let setup = Setup::new(&t)?;
    let ks = KeyService::start(&t, &setup, FINAL_WAIT_S)?;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
    let mut answered = Vec::new();

    let now = chipledger_node::metrics::now_ms();
    let window = (now - HOUR_MS, now + HOUR_MS);
    let [dev0, dev1] = [setup.devices[0], setup.devices[1]];
    let org_grant = grant(&t, Grantee::Org(GRANTEE_ORG.into()), &[dev0], &[], window)?;
    let person = SigningKey::p256_from_bytes(&[0x61; 32]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let person_grant = grant(&t, Grantee::Key(person.public_key()), &[dev0, dev1], &[], window)?;
    let past_grant = grant(&t, Grantee::Org(GRANTEE_ORG.into()), &[dev0], &[], (1, 2))?;
    let tag_grant = grant(&t, Grantee::Org(GRANTEE_ORG.into()), &[], &["district-7"], window)?;

    // The grantee organisation decrypts with `data get`, exactly what the owner reads.
    answered.push(grantee_get_decrypts(&t, &setup, &ks, org_grant, dev0)?);
    // A person grantee (library client), another device of its grant.
    let audit = org_key(&t.net, GRANTEE_ORG)?;
    let org_signer = (&Signer::Org(GRANTEE_ORG.into()), &audit);
    let person_signer = (&Signer::Key(person.public_key()), &person);
    let recipient = fresh_p256_secret();
    let released = request_keys(&ks.url, person_grant, dev1, &[1], person_signer, &recipient)?;
    assert_eq!(released.keys.len(), 1);
    let plain = owner_plaintexts(&setup, dev1)?;
    let record = first_record(&setup, dev1)?;
    assert_eq!(
        open_payload(&record, &released.keys[0].key).map_err(|e| anyhow::anyhow!("{e}"))?,
        plain
    );
    answered.push(Answered {
        tx: released.release_tx.clone(),
        grant: person_grant,
        device: dev1,
        epochs: vec![1],
        recipient: recipient_digest(&recipient.public_key()),
    });

    let grants = Grants {
        org: org_grant,
        person: person_grant,
        past: past_grant,
        tag: tag_grant,
    };
    refusals(&ks, &grants, [dev0, dev1], org_signer, person_signer)?;

    // Revocation stops the next release.
    submit(
        &t,
        Payload::RevokeAccess(RevokeAccess {
            grant: org_grant,
            reason: "study over".into(),
        }),
    )?;
    let (status, code, body) = post_signed(&ks, org_grant, dev0, &[1], org_signer, 0)?;
    assert_refused(status, &code, &body, 403, "grant_revoked");

    // Every answered release has its final KeyRelease on the ledger, and the grants count them.
    for a in &answered {
        assert_release_on_ledger(&t, a)?;
    }
    assert_eq!(grant_record(&t, org_grant)?.releases, 1);
    assert_eq!(grant_record(&t, person_grant)?.releases, 1);
    for g in [past_grant, tag_grant] {
        assert_eq!(grant_record(&t, g)?.releases, 0, "refused requests leave no release");
    }

    ledger_down_no_key(&mut t, &ks, person_grant, dev0, person_signer)?;
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// What the test set up besides the network: devices with committed records, the gateway.
struct Setup {
    devices: Vec<DeviceId>,
    records_url: String,
    _gateway: chipledger_cli::data_net::GatewayProcess,
    data_key_path: PathBuf,
    trust: NetworkTrust,
}

impl Setup {
    fn new(t: &TestNet) -> Result<Setup> {
        let devices = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..DEVICES)?;
        let (broker, http) = (free_local_addr()?, free_local_addr()?);
        let gateway = t.start_gateway("gw-keys", broker, &["--http", &http.to_string(), "--batch-ms", "200"])?;
        let out = Command::new(&t.exe)
            .args([
                "fleet",
                "simulate",
                "--devices",
                &DEVICES.to_string(),
                "--rate",
                "5",
                "--seconds",
                "1",
            ])
            .args(["--seed", &SEED.to_string(), "--broker", &broker.to_string()])
            .args(["--ack-wait-ms", "30000", "--json"])
            .output()?;
        if !out.status.success() {
            bail!("fleet simulate: {}", String::from_utf8_lossy(&out.stderr));
        }
        let expected = DEVICES * (RECORDS + 1);
        poll("every record committed", WAIT, || {
            Ok((t.gateway("gw-keys")?.records == expected).then_some(()))
        })?;
        let data_key_path = t.dir.join("owner-data.key");
        std::fs::write(&data_key_path, hex::encode(sim_owner_secret(SEED).to_bytes()))?;
        Ok(Setup {
            devices,
            records_url: format!("http://{http}"),
            _gateway: gateway,
            data_key_path,
            trust: NetworkTrust::from_genesis(&t.net.dir.join("genesis.json"))?,
        })
    }
}

/// A `chipledger keyservice` child process; killed when dropped.
struct KeyService {
    child: Child,
    url: String,
    _lines: Receiver<String>,
}

impl KeyService {
    fn start(t: &TestNet, s: &Setup, final_wait_s: u64) -> Result<KeyService> {
        use std::io::BufRead as _;
        let listen = free_local_addr()?;
        let mut child = Command::new(&t.exe)
            .args(["keyservice", "--api", &t.net.apis[0], "--org", OWNER, "--key"])
            .arg(org_key_path(&t.net, OWNER))
            .arg("--data-key")
            .arg(&s.data_key_path)
            .args(["--records", &s.records_url, "--listen", &listen.to_string()])
            .arg("--genesis")
            .arg(t.net.dir.join("genesis.json"))
            .args(["--final-wait-s", &final_wait_s.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the key service")?;
        let out = child.stdout.take().context("key service stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = lines.recv_timeout(WAIT).context("the key service did not start")?;
        if !line.contains("listening on") {
            bail!("unexpected first line of the key service: {line}");
        }
        let ks = KeyService {
            child,
            url: format!("http://{listen}"),
            _lines: lines,
        };
        let about: ServiceJson = reqwest::blocking::get(format!("{}{SERVICE_PATH}", ks.url))?.json()?;
        assert_eq!((about.org.as_str(), about.skew_ms), (OWNER, 300_000));
        Ok(ks)
    }
}

impl Drop for KeyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A release the key service answered with keys.
struct Answered {
    tx: String,
    grant: TxHash,
    device: DeviceId,
    epochs: Vec<u32>,
    recipient: [u8; 32],
}

fn submit(t: &TestNet, payload: Payload) -> Result<TxHash> {
    let s = chipledger_cli::device_cmd::submit_final(&t.client, OWNER, &org_key(&t.net, OWNER)?, payload)?;
    Ok(TxHash(
        hex::decode(&s.hash)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("tx hash"))?,
    ))
}

/// `city` grants `grantee` the listed devices / tags, every stream, records in `window`.
fn grant(t: &TestNet, grantee: Grantee, devices: &[DeviceId], tags: &[&str], window: (u64, u64)) -> Result<TxHash> {
    let mut devices = devices.to_vec();
    devices.sort();
    let scope = AccessScope {
        devices,
        tags: tags.iter().map(|s| s.to_string()).collect(),
        streams: Vec::new(),
        from_ms: window.0,
        until_ms: window.1,
    };
    submit(
        t,
        Payload::GrantAccess(GrantAccess {
            grantee,
            scope,
            purpose: "air-quality study".into(),
            expires_ms: chipledger_node::metrics::now_ms() + HOUR_MS,
            price: None,
        }),
    )
}

fn first_record(s: &Setup, device: DeviceId) -> Result<chipledger_types::record::Record> {
    let proof = wait_record_proof(&s.records_url, &device, SIM_STREAM, 1, WAIT)?;
    Ok(s.trust.verify(&proof)?.record)
}

/// What the owner reads in `device`'s first data record.
fn owner_plaintexts(s: &Setup, device: DeviceId) -> Result<Vec<u8>> {
    let proof = wait_record_proof(&s.records_url, &device, SIM_STREAM, 1, WAIT)?;
    let proven = s.trust.verify(&proof)?;
    let owner = Decryptor::Owner(sim_owner_secret(SEED));
    match open_record(&s.records_url, &s.trust, &proven, &owner, WAIT)? {
        Opened::Plaintext(p) => Ok(p),
        Opened::EpochKey { .. } => bail!("a data record opened as an epoch key"),
    }
}

/// `chipledger data get … --decrypt --keyservice …` as the grantee organisation.
fn grantee_get_decrypts(t: &TestNet, s: &Setup, ks: &KeyService, grant: TxHash, device: DeviceId) -> Result<Answered> {
    let recipient_path = t.dir.join("recipient.key");
    let recipient = fresh_p256_secret();
    std::fs::write(&recipient_path, hex::encode(recipient.to_bytes()))?;
    let out = Command::new(&t.exe)
        .args([
            "data",
            "get",
            &device.to_string(),
            SIM_STREAM,
            "1",
            "--gateway",
            &s.records_url,
        ])
        .arg("--genesis")
        .arg(t.net.dir.join("genesis.json"))
        .args(["--decrypt", "--keyservice", &ks.url, "--grant", &grant.to_string()])
        .args(["--grantee-org", GRANTEE_ORG, "--grantee-key"])
        .arg(org_key_path(&t.net, GRANTEE_ORG))
        .arg("--recipient-key")
        .arg(&recipient_path)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "data get: {stderr}");
    let owner = owner_plaintexts(s, device)?;
    assert!(owner.windows(10).any(|w| w == b"\"temp_mc\":"), "a simulated reading");
    assert_eq!(
        out.stdout.trim_ascii_end(),
        owner.trim_ascii_end(),
        "the grantee reads what the owner reads"
    );
    let tx = stderr
        .split("key release ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("data get names the KeyRelease: {stderr}"))?;
    Ok(Answered {
        tx: tx.to_string(),
        grant,
        device,
        epochs: vec![1],
        recipient: recipient_digest(&recipient.public_key()),
    })
}

/// Signs a request (issued `skew_ms` from now) and posts it; status, error code and raw body.
fn post_signed(
    ks: &KeyService,
    grant: TxHash,
    device: DeviceId,
    epochs: &[u32],
    (signer, key): (&Signer, &SigningKey),
    skew_ms: i64,
) -> Result<(u16, String, String)> {
    let request = KeyRequest {
        grant,
        device,
        epochs: epochs.to_vec(),
        recipient: fresh_p256_secret().public_key(),
        issued_ms: chipledger_node::metrics::now_ms().saturating_add_signed(skew_ms),
    };
    post_raw(ks, &request.sign(signer, key))
}

fn post_raw(ks: &KeyService, body: &ReleaseRequestJson) -> Result<(u16, String, String)> {
    post_bytes(ks, serde_json::to_vec(body)?)
}

fn post_bytes(ks: &KeyService, body: Vec<u8>) -> Result<(u16, String, String)> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let resp = http
        .post(format!("{}{RELEASE_PATH}", ks.url))
        .header("content-type", "application/json")
        .body(body)
        .send()?;
    let status = resp.status().as_u16();
    let text = resp.text()?;
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_default();
    Ok((status, code, text))
}

/// A refusal: the status and code expected, and no key material in the answer.
fn assert_refused(status: u16, code: &str, body: &str, want_status: u16, want_code: &str) {
    assert_eq!((status, code), (want_status, want_code), "{body}");
    assert!(
        !body.contains("wrap") && !body.contains("\"keys\""),
        "no key in a refusal: {body}"
    );
}

/// The grants the test made (all by `city`).
struct Grants {
    org: TxHash,
    person: TxHash,
    past: TxHash,
    tag: TxHash,
}

/// A grantee's signing identity.
type Signing<'a> = (&'a Signer, &'a SigningKey);

/// One request the key service must refuse, and how.
struct Refused<'a> {
    what: &'a str,
    grant: TxHash,
    device: DeviceId,
    epochs: &'a [u32],
    signer: Signing<'a>,
    skew_ms: i64,
    status: u16,
    code: &'a str,
    /// Text the answer must hold (which rule refused).
    says: &'a str,
}

fn refusals(
    ks: &KeyService,
    g: &Grants,
    [dev0, dev1]: [DeviceId; 2],
    org: Signing<'_>,
    person: Signing<'_>,
) -> Result<()> {
    let impostor = SigningKey::ed25519_from_seed(&[0x62; 32]);
    let case = |what, grant, device, signer, status, code, says| Refused {
        what,
        grant,
        device,
        epochs: &[1],
        signer,
        skew_ms: 0,
        status,
        code,
        says,
    };
    let cases = [
        case(
            "device outside the scope",
            g.org,
            dev1,
            org,
            403,
            "not_covered",
            "does not cover",
        ),
        case(
            "the org's name, another key",
            g.org,
            dev0,
            (org.0, &impostor),
            401,
            "bad_signature",
            "",
        ),
        case(
            "the person's key, another key",
            g.person,
            dev0,
            (person.0, &impostor),
            401,
            "bad_signature",
            "",
        ),
        case(
            "a person grant asked by an org",
            g.person,
            dev0,
            org,
            403,
            "not_grantee",
            "",
        ),
        Refused {
            skew_ms: -600_000,
            ..case("issued ten minutes ago", g.org, dev0, org, 401, "stale_request", "")
        },
        // The key service lets this through (the grant names a tag); the ledger refuses it.
        case(
            "a tag the owner never set",
            g.tag,
            dev0,
            org,
            403,
            "not_covered",
            "the ledger refused",
        ),
        case(
            "epoch started before the window",
            g.past,
            dev0,
            org,
            403,
            "nothing_to_release",
            "outside_window",
        ),
        Refused {
            epochs: &[99],
            ..case(
                "no such epoch",
                g.org,
                dev0,
                org,
                403,
                "nothing_to_release",
                "no_key_record",
            )
        },
    ];
    for c in cases {
        let (status, code, body) = post_signed(ks, c.grant, c.device, c.epochs, c.signer, c.skew_ms)?;
        eprintln!("{}: {status} {code}", c.what);
        assert_refused(status, &code, &body, c.status, c.code);
        assert!(body.contains(c.says), "{}: {body}", c.what);
    }

    // A replayed body is refused even where the first answer was a refusal.
    let request = KeyRequest {
        grant: g.org,
        device: dev1,
        epochs: vec![1],
        recipient: fresh_p256_secret().public_key(),
        issued_ms: chipledger_node::metrics::now_ms(),
    };
    let body = request.sign(org.0, org.1);
    let (s, c, text) = post_raw(ks, &body)?;
    assert_refused(s, &c, &text, 403, "not_covered");
    let (s, c, text) = post_raw(ks, &body)?;
    assert_refused(s, &c, &text, 401, "replay");
    let (s, c, text) = post_bytes(ks, b"{\"grant\": 1}".to_vec())?;
    assert_refused(s, &c, &text, 400, "bad_request");
    Ok(())
}

/// The answered release's transaction is final, and it is a `KeyRelease` of exactly that grant,
/// device, epochs and recipient.
fn assert_release_on_ledger(t: &TestNet, a: &Answered) -> Result<()> {
    let s = t.client.tx(&a.tx)?;
    assert_eq!(s.status, "final", "{}", a.tx);
    let height = s.height.context("final at a height")?;
    let block: BlockBody = t.client.get_json(&format!("/v1/blocks/{height}"))?;
    let block = Block::from_cbor(&hex::decode(&block.raw)?, Limits::BLOCK)?;
    let tx = block
        .txs
        .iter()
        .find(|tx| TxHash::of(tx).to_string() == a.tx)
        .context("the release is in its block")?;
    let Payload::KeyRelease(r) = SignedTx::from_cbor(tx, Limits::TX)?.body.payload else {
        bail!("{} is not a KeyRelease", a.tx);
    };
    assert_eq!(
        (r.grant, r.device, &r.epochs, r.recipient),
        (a.grant, a.device, &a.epochs, a.recipient)
    );
    Ok(())
}

fn grant_record(t: &TestNet, id: TxHash) -> Result<GrantRecord> {
    let key = String::from_utf8(grant_key(&id))?;
    let s: StateProofBody = t.client.get_json(&format!("/v1/state?key={key}"))?;
    let bytes = hex::decode(s.value.context("the grant is in the state")?)?;
    Ok(GrantRecord::from_cbor(&bytes, Limits::STATE)?)
}

/// With 2 of 4 validators gone the `KeyRelease` is admitted but never final: 503, no key. With
/// the key service's node gone too: 503, no key.
fn ledger_down_no_key(
    t: &mut TestNet,
    ks: &KeyService,
    grant: TxHash,
    device: DeviceId,
    signer: (&Signer, &SigningKey),
) -> Result<()> {
    for i in [2, 3] {
        t.net.signal(i, "KILL")?;
    }
    let asked = Instant::now();
    let (s, c, body) = post_signed(ks, grant, device, &[1], signer, 0)?;
    assert_refused(s, &c, &body, 503, "not_final");
    assert!(
        asked.elapsed() >= Duration::from_secs(FINAL_WAIT_S),
        "it waited for finality"
    );
    t.net.signal(0, "KILL")?;
    let (s, c, body) = post_signed(ks, grant, device, &[1], signer, 0)?;
    assert_refused(s, &c, &body, 503, "ledger_unavailable");
    Ok(())
}
