//! Executor behaviour that needs no network: durability of accepted transactions.

use std::path::PathBuf;

use chipledger_node::config::{self, InitOptions, KeyFile};
use chipledger_node::executor::{Executor, Identity, SubmitError, TxStatus};
use chipledger_types::cbor::Encode;
use chipledger_types::tx::{Payload, SignedTx, TxBody, TxHash};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chipledger-exec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn accepted_transactions_survive_a_restart_of_the_validator() {
    let dir = temp_dir("durable");
    let opts = InitOptions {
        out: dir.clone(),
        chain_id: "durable".into(),
        orgs: config::default_orgs(),
        hosts: vec!["127.0.0.1".into()],
        base_port: 30000,
        governance_threshold: None,
        timestamp_ms: 0,
    };
    let genesis = config::init(&opts).unwrap();
    let key = KeyFile::read(&dir.join("orgs/city.key")).unwrap();
    let me = || Identity {
        index: 0,
        name: "v-maker".into(),
        note_seeds: vec![],
    };
    let data = dir.join("v-maker/data/ledger");
    let tx = |seq| {
        let body = TxBody {
            chain_id: "durable".into(),
            org: "city".into(),
            key_id: key.public_key().id(),
            seq,
            expiry_height: 100,
            payload: Payload::Statement {
                topic: "t".into(),
                body: vec![],
            },
        };
        SignedTx::sign(body, &key).to_cbor()
    };
    let (first, gap) = (tx(1), tx(3));
    {
        let exec = Executor::open(&data, genesis.clone(), me()).unwrap();
        exec.submit(first.clone(), true).unwrap();
        exec.submit(gap.clone(), true).unwrap();
        assert!(matches!(exec.submit(first.clone(), true), Err(SubmitError::Mempool(_))));
    } // the executor (and its in-memory mempool) is gone, as after a crash
    let exec = Executor::open(&data, genesis, me()).unwrap();
    assert_eq!(exec.tx_status(&TxHash::of(&first)), TxStatus::Pending);
    assert_eq!(exec.tx_status(&TxHash::of(&gap)), TxStatus::Pending);
    let _ = std::fs::remove_dir_all(&dir);
}
