//! Smoke test of the production wiring: 4 validators on the commonware tokio runtime with
//! authenticated lookup p2p over loopback (real sockets, wall-clock time; ports picked free).

mod common;

use chipledger_node::consensus::{ValidatorConfig, ValidatorPeer, spawn};
use common::TestLedger;
use std::{
    net::{SocketAddr, TcpListener},
    time::{Duration, Instant},
};

const VALIDATORS: usize = 4;
const TARGET_HEIGHT: u64 = 5;
const DEADLINE: Duration = Duration::from_secs(60);

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

fn seed(index: usize) -> [u8; 32] {
    [index as u8 + 1; 32]
}

#[test]
fn four_tokio_validators_finalize_blocks() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let addresses: Vec<SocketAddr> = (0..VALIDATORS).map(|_| free_port()).collect();
    let storage = std::env::temp_dir().join(format!("chipledger-smoke-{}", std::process::id()));
    let mut peers = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let probe = ValidatorConfig::new(seed(i), vec![], *address, storage.clone(), vec![]);
        peers.push(ValidatorPeer {
            public_key: probe.public_key(),
            address: *address,
        });
    }
    let mut ledgers = Vec::new();
    for (i, address) in addresses.iter().enumerate() {
        let mut config = ValidatorConfig::new(
            seed(i),
            peers.clone(),
            *address,
            storage.join(format!("v{i}")),
            b"chipledger/consensus/smoke".to_vec(),
        );
        config.allow_private_ips = true;
        config.worker_threads = 1;
        let ledger = TestLedger::new(i as u8);
        let (handle, _thread) = spawn(config, ledger.clone()).expect("validator starts");
        assert_eq!(handle.public_key(), peers[i].public_key);
        ledgers.push(ledger);
    }
    let start = Instant::now();
    while ledgers.iter().any(|l| l.height() < TARGET_HEIGHT) {
        let heights: Vec<u64> = ledgers.iter().map(TestLedger::height).collect();
        assert!(start.elapsed() < DEADLINE, "no progress: heights {heights:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let chains: Vec<_> = ledgers.iter().map(TestLedger::chain).collect();
    for height in 0..=TARGET_HEIGHT as usize {
        assert!(
            chains.iter().all(|c| c[height] == chains[0][height]),
            "disagree at {height}"
        );
    }
    let _ = std::fs::remove_dir_all(&storage);
}
