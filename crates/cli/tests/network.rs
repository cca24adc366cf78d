//! End-to-end tests on real validator processes over loopback TCP: agreement under load,
//! crash and catch-up, loss of quorum and recovery, and governance.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::net::LocalNet;
use chipledger_cli::txcmd::{build, wait_final};
use chipledger_node::api::{BlockBody, CheckpointBody};
use chipledger_node::config::KeyFile;
use chipledger_types::cbor::Encode;
use chipledger_types::keys::{SigningKey, TAG_TX_V1};
use chipledger_types::note::{Note, NoteLimits};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, TxBody, TxHash};

const ORGS: [&str; 4] = ["maker", "city", "vendor", "audit"];

fn network(name: &str, base_port: u16) -> Result<LocalNet> {
    let dir = std::env::temp_dir().join(format!("chipledger-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, base_port, "chipledger-test")?;
    net.start_all_ready(Duration::from_secs(60))?;
    Ok(net)
}

fn org_key(net: &LocalNet, org: &str) -> SigningKey {
    KeyFile::read(&net.dir.join("orgs").join(format!("{org}.key"))).expect("org key")
}

/// `count` signed statements per organisation, with sequence numbers after `first_seq`.
fn statements(net: &LocalNet, chain_id: &str, first_seq: u64, count: usize) -> Vec<Vec<u8>> {
    let keys: Vec<SigningKey> = ORGS.iter().map(|o| org_key(net, o)).collect();
    (0..count * 4)
        .map(|i| {
            let k = &keys[i % 4];
            let body = TxBody {
                chain_id: chain_id.into(),
                org: ORGS[i % 4].into(),
                key_id: k.public_key().id(),
                seq: first_seq + (i / 4) as u64 + 1,
                expiry_height: 1_000_000,
                payload: Payload::Statement {
                    topic: "load".into(),
                    body: (i as u64).to_be_bytes().to_vec(),
                },
            };
            SignedTx::sign(body, k).to_cbor()
        })
        .collect()
}

/// Submit in batches spread over the given validators; every transaction must be accepted.
fn submit_all(net: &LocalNet, to: &[usize], txs: &[Vec<u8>]) -> Result<Vec<String>> {
    let mut hashes = Vec::new();
    for (i, chunk) in txs.chunks(500).enumerate() {
        let c = Client::new(&net.apis[to[i % to.len()]])?;
        for item in c.submit_batch(chunk)? {
            match item.hash {
                Some(h) if item.status == "pending" => hashes.push(h),
                _ => bail!("transaction refused: {} {:?}", item.status, item.message),
            }
        }
    }
    Ok(hashes)
}

/// Wait until validator `i` reports a log of at least `size` leaves.
fn wait_log(net: &LocalNet, i: usize, size: u64, timeout: Duration) -> Result<()> {
    let c = Client::new(&net.apis[i])?;
    let start = Instant::now();
    loop {
        let s = c.status()?;
        if s.log_size >= size {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!(
                "{} has {} of {size} leaves after {}s",
                net.names[i],
                s.log_size,
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every validator in `which` has the same block (digest, log root, state root) at the lowest
/// height they all reached, and the same final checkpoint for the same log size.
fn assert_agreement(net: &LocalNet, which: &[usize]) -> Result<()> {
    let clients: Vec<Client> = which
        .iter()
        .map(|&i| Client::new(&net.apis[i]))
        .collect::<Result<_>>()?;
    let h = clients
        .iter()
        .map(|c| c.status().map(|s| s.height))
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .min()
        .unwrap_or(0);
    let headers: Vec<BlockBody> = clients
        .iter()
        .map(|c| c.get_json(&format!("/v1/blocks/{h}")))
        .collect::<Result<_>>()?;
    for b in &headers[1..] {
        assert_eq!(
            b.header.digest, headers[0].header.digest,
            "block digest differs at height {h}"
        );
        assert_eq!(
            b.header.state_root, headers[0].header.state_root,
            "state root differs at height {h}"
        );
        assert_eq!(
            b.header.log_root, headers[0].header.log_root,
            "log root differs at height {h}"
        );
    }
    Ok(())
}

/// Wait until every listed validator has a final checkpoint of exactly `size` leaves; they
/// must all carry the same root and a quorum of signatures.
fn assert_same_checkpoint(net: &LocalNet, which: &[usize], size: u64) -> Result<()> {
    let mut roots = BTreeSet::new();
    for &i in which {
        let c = Client::new(&net.apis[i])?;
        let start = Instant::now();
        let cp: CheckpointBody = loop {
            match c.checkpoint() {
                Ok(cp) if cp.log_size == size => break cp,
                _ if start.elapsed() > Duration::from_secs(60) => {
                    bail!("{} has no final checkpoint of size {size}", net.names[i])
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        assert!(
            cp.signatures >= 3,
            "checkpoint needs 2f+1 = 3 signatures, has {}",
            cp.signatures
        );
        roots.insert(cp.root);
    }
    assert_eq!(roots.len(), 1, "validators disagree on the checkpoint root: {roots:?}");
    Ok(())
}

#[test]
fn load_crash_catch_up_and_quorum_loss() -> Result<()> {
    let mut net = network("load", 21070)?;
    let chain = Client::new(&net.apis[0])?.status()?.chain_id;

    // 2,000 transactions from four organisations, submitted to all four validators.
    let txs = statements(&net, &chain, 0, 500);
    assert_eq!(txs.len(), 2000);
    submit_all(&net, &[0, 1, 2, 3], &txs)?;
    for i in 0..4 {
        wait_log(&net, i, 2000, Duration::from_secs(180))?;
    }
    assert_agreement(&net, &[0, 1, 2, 3])?;
    assert_same_checkpoint(&net, &[0, 1, 2, 3], 2000)?;

    // SIGKILL one validator: the other three keep finalizing.
    net.signal(3, "KILL")?;
    let more = statements(&net, &chain, 500, 50);
    submit_all(&net, &[0, 1, 2], &more)?;
    for i in 0..3 {
        wait_log(&net, i, 2200, Duration::from_secs(120))?;
    }
    assert_agreement(&net, &[0, 1, 2])?;

    // Restart it: it catches up to the same roots.
    net.start(3)?;
    net.wait_ready(3, Duration::from_secs(60))?;
    wait_log(&net, 3, 2200, Duration::from_secs(120))?;
    assert_agreement(&net, &[0, 1, 2, 3])?;

    // Two of four stopped: transactions are accepted but nothing finalizes.
    net.signal(2, "KILL")?;
    net.signal(3, "KILL")?;
    let stuck = statements(&net, &chain, 550, 25);
    let hashes = submit_all(&net, &[0], &stuck)?;
    std::thread::sleep(Duration::from_secs(3));
    for i in 0..2 {
        let s = Client::new(&net.apis[i])?.status()?;
        assert_eq!(s.log_size, 2200, "{} finalized without a quorum", net.names[i]);
    }
    // Restart both: everything resumes and no accepted transaction is lost.
    net.start(2)?;
    net.start(3)?;
    for i in 0..4 {
        net.wait_ready(i, Duration::from_secs(60))?;
        wait_log(&net, i, 2300, Duration::from_secs(180))?;
    }
    let c = Client::new(&net.apis[3])?;
    for h in &hashes {
        assert_eq!(c.tx(h)?.status, "final", "accepted transaction {h} was lost");
    }
    assert_agreement(&net, &[0, 1, 2, 3])?;
    assert_same_checkpoint(&net, &[0, 1, 2, 3], 2300)?;
    net.stop_all();
    let _ = std::fs::remove_dir_all(&net.dir);
    Ok(())
}

fn approve_by(net: &LocalNet, c: &Client, orgs: &[&str], id: TxHash) -> Result<()> {
    for org in orgs {
        let tx = build(
            c,
            org,
            &org_key(net, org),
            None,
            1000,
            Payload::Approve { proposal: id },
        )?;
        let s = wait_final(c, &c.submit(&tx)?.hash, Duration::from_secs(60))?;
        assert_eq!(s.status, "final", "{org}'s approval: {:?}", s.reason);
    }
    Ok(())
}

fn propose(net: &LocalNet, c: &Client, org: &str, action: GovAction) -> Result<TxHash> {
    let tx = build(c, org, &org_key(net, org), None, 1000, Payload::Propose(action))?;
    let s = wait_final(c, &c.submit(&tx)?.hash, Duration::from_secs(60))?;
    assert_eq!(s.status, "final", "proposal: {:?}", s.reason);
    Ok(TxHash::of(&tx))
}

#[test]
fn governance_add_org_rotate_validator_key_remove_org() -> Result<()> {
    let mut net = network("gov", 22070)?;
    let c = Client::new(&net.apis[0])?;

    // Add an organisation: executed only when the third organisation approves.
    let buyer = SigningKey::ed25519_from_seed(&[42; 32]);
    let spec = OrgSpec {
        name: "buyer".into(),
        roles: vec![Role::Consumer],
        keys: vec![buyer.public_key()],
    };
    let id = propose(&net, &c, "city", GovAction::AddOrg(spec))?;
    approve_by(&net, &c, &["maker"], id)?;
    assert!(c.org("buyer").is_err(), "executed before the threshold");
    approve_by(&net, &c, &["vendor"], id)?;
    assert_eq!(c.org("buyer")?.roles, vec!["consumer"]);
    let tx = build(
        &c,
        "buyer",
        &buyer,
        None,
        1000,
        Payload::Statement {
            topic: "hi".into(),
            body: vec![],
        },
    )?;
    assert_eq!(
        wait_final(&c, &c.submit(&tx)?.hash, Duration::from_secs(60))?.status,
        "final"
    );

    // Rotate v-audit's cosigning key: stage the new key on the node, then approve the rotation.
    let new_note = SigningKey::ed25519_from_seed(&[43; 32]);
    KeyFile::write(&net.node_dir(3).join("keys/note-2.key"), &new_note)?;
    net.signal(3, "TERM")?;
    net.start(3)?;
    net.wait_ready(3, Duration::from_secs(60))?;
    let effective = c.status()?.height + 40;
    let rot = GovAction::RotateValidatorKey {
        validator: "v-audit".into(),
        new: new_note.public_key(),
        effective_height: effective,
    };
    let id = propose(&net, &c, "audit", rot)?;
    approve_by(&net, &c, &["maker", "city"], id)?;
    // After the effective height, checkpoints carry v-audit's signature under the new key.
    let want = chipledger_node::checkpoints::verifier_for("v-audit", &new_note.public_key()).expect("verifier");
    let tx = build(
        &c,
        "maker",
        &org_key(&net, "maker"),
        None,
        1000,
        Payload::Statement {
            topic: "after".into(),
            body: vec![],
        },
    )?;
    let start = Instant::now();
    loop {
        let _ = c.submit(&tx);
        let cp = c.checkpoint()?;
        let note = Note::parse(cp.note.as_bytes(), &NoteLimits::default()).expect("note");
        let signed_by_new = note
            .signatures
            .iter()
            .any(|s| s.name == "v-audit" && s.key_id == want.key_id());
        if cp.height > effective && signed_by_new {
            assert!(
                want.verify(
                    &note.text,
                    &note.signatures.iter().find(|s| s.name == "v-audit").unwrap().sig
                )
                .is_ok()
            );
            break;
        }
        if start.elapsed() > Duration::from_secs(90) {
            bail!("no checkpoint signed with v-audit's new key after height {effective}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        c.status()?.height > effective,
        "network stopped finalizing after the rotation"
    );

    // Remove the buyer organisation; its transactions are then rejected.
    let id = propose(&net, &c, "city", GovAction::RemoveOrg { org: "buyer".into() })?;
    approve_by(&net, &c, &["maker", "vendor"], id)?;
    assert!(c.org("buyer")?.removed_height.is_some());
    let tx = build(
        &c,
        "buyer",
        &buyer,
        Some(99),
        1000,
        Payload::Statement {
            topic: "x".into(),
            body: vec![],
        },
    )?;
    let err = c.submit(&tx).expect_err("removed organisation must be refused");
    assert!(err.to_string().contains("org_removed"), "{err}");
    net.stop_all();
    let _ = std::fs::remove_dir_all(&net.dir);
    Ok(())
}

#[test]
fn bad_inputs_get_typed_errors_and_change_nothing() -> Result<()> {
    let mut net = network("bad", 23070)?;
    let c = Client::new(&net.apis[0])?;
    let good = build(
        &c,
        "city",
        &org_key(&net, "city"),
        None,
        1000,
        Payload::Statement {
            topic: "ok".into(),
            body: vec![],
        },
    )?;
    let good_hash = c.submit(&good)?.hash;
    assert_eq!(wait_final(&c, &good_hash, Duration::from_secs(60))?.status, "final");
    let before = c.status()?;

    let code_of = |bytes: &[u8]| -> String {
        match c.submit(bytes) {
            Ok(s) => panic!("accepted bad input as {}", s.hash),
            Err(e) => e.to_string(),
        }
    };
    let sign = |org: &str, key: &SigningKey, seq: u64, expiry: u64, chain: &str| {
        let body = TxBody {
            chain_id: chain.into(),
            org: org.into(),
            key_id: key.public_key().id(),
            seq,
            expiry_height: expiry,
            payload: Payload::Statement {
                topic: "bad".into(),
                body: vec![],
            },
        };
        SignedTx::sign(body, key).to_cbor()
    };
    let city = org_key(&net, "city");
    let h = before.height;
    assert!(code_of(&[0xff, 0x00, 0x13]).contains("malformed"));
    assert!(code_of(&good[..good.len() - 3]).contains("malformed"));
    assert!(code_of(&vec![0u8; 70_000]).contains("too_large"));
    let mut forged = SignedTx::from_bytes(&sign("city", &city, 2, h + 100, &before.chain_id)).unwrap();
    forged.signature = SigningKey::ed25519_from_seed(&[9; 32]).sign(TAG_TX_V1, &forged.body.to_cbor());
    assert!(code_of(&forged.to_cbor()).contains("bad_signature"));
    assert!(code_of(&good).contains("already_final"));
    assert!(code_of(&sign("city", &city, 1, h + 100, &before.chain_id)).contains("replay"));
    assert!(code_of(&sign("city", &city, 2, 1, &before.chain_id)).contains("expired"));
    assert!(code_of(&sign("city", &city, 2, h + 100, "other-chain")).contains("wrong_chain"));
    assert!(code_of(&sign("nobody", &city, 1, h + 100, &before.chain_id)).contains("unknown_org"));
    assert!(code_of(&sign("maker", &city, 1, h + 100, &before.chain_id)).contains("unknown_key"));

    // Nothing above changed the state or the log, and the good transaction is still there.
    std::thread::sleep(Duration::from_secs(1));
    let after = c.status()?;
    assert_eq!(after.state_root, before.state_root);
    assert_eq!(after.log_size, before.log_size);
    assert_eq!(c.tx(&good_hash)?.status, "final");

    // A state value proven against the state root a quorum cosigned in the checkpoint.
    let cp = c.checkpoint()?;
    let proof: chipledger_node::api::StateProofBody = c.get_json("/v1/state?key=seq/city")?;
    assert_eq!(
        Some(&proof.state_root),
        cp.state_root.as_ref(),
        "state moved since the last checkpoint"
    );
    let root: [u8; 32] = hex::decode(&proof.state_root)?.try_into().unwrap();
    let value = hex::decode(proof.value.as_deref().expect("city has a sequence number"))?;
    let siblings = proof
        .siblings
        .iter()
        .map(|h| hex::decode(h).unwrap().try_into().unwrap())
        .collect();
    let leaf = proof.leaf.as_ref().map(|[k, v]| {
        (
            hex::decode(k).unwrap().try_into().unwrap(),
            hex::decode(v).unwrap().try_into().unwrap(),
        )
    });
    let smt_proof = chipledger_state::smt::SmtProof { siblings, leaf };
    let key = chipledger_state::store::key_hash(b"seq/city");
    let vh = chipledger_state::store::value_hash(&value);
    assert_eq!(
        chipledger_state::smt::verify(&root, &key, Some(&vh), &smt_proof),
        Ok(())
    );
    let wrong = chipledger_state::store::value_hash(b"tampered");
    assert!(chipledger_state::smt::verify(&root, &key, Some(&wrong), &smt_proof).is_err());
    net.stop_all();
    let _ = std::fs::remove_dir_all(&net.dir);
    Ok(())
}
