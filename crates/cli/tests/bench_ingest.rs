//! `chipledger bench ingest` at a tiny size: four validator processes, an in-process gateway,
//! both algorithms. Only the shape of the JSON and the exact counts are checked (the bench
//! refuses to report figures unless every record was accepted, DACKed and committed exactly
//! once); timings are load-dependent and never asserted.

use std::process::Command;

use anyhow::Result;

/// API ports 31070..31073, p2p 31170.. (clear of the other process tests).
const BASE_PORT: u16 = 31070;
const DEVICES: u64 = 3;
const RECORDS: u64 = 40;

#[test]
fn bench_ingest_counts_are_exact_for_both_algorithms() -> Result<()> {
    let out = Command::new(env!("CARGO_BIN_EXE_chipledger"))
        .args(["bench", "ingest", "--json", "--alg", "both"])
        .args(["--devices", &DEVICES.to_string(), "--records", &RECORDS.to_string()])
        .args([
            "--base-port",
            &BASE_PORT.to_string(),
            "--batch-ms",
            "100",
            "--window",
            "4",
        ])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let algs: Vec<&String> = v.as_object().expect("one JSON object").keys().collect();
    assert_eq!(algs, ["ed25519", "es256"]);
    for alg in ["es256", "ed25519"] {
        let f = &v[alg];
        for key in [
            "bound_records_per_s",
            "end_to_end_records_per_s",
            "ratio",
            "final_latency_p99_ms",
        ] {
            assert!(f[key].as_f64().is_some_and(|x| x >= 0.0), "{alg}.{key}: {f}");
        }
        for key in ["records", "records_accepted", "records_dacked", "records_committed"] {
            assert_eq!(f[key].as_u64(), Some(RECORDS), "{alg}.{key}: {f}");
        }
        assert_eq!(f["devices"].as_u64(), Some(DEVICES));
        assert_eq!(
            f["publishers"].as_u64(),
            Some(DEVICES),
            "one edge node per device up to 8"
        );
        assert!(f["batches"].as_u64().is_some_and(|b| b >= 1), "{f}");
    }
    Ok(())
}
