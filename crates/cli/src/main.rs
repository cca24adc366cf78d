//! `chipledger`: the command-line entry point. A thin layer over the library crates.
#![forbid(unsafe_code)]

mod bench;
mod bench_explorer;
mod bench_exposure;
mod bench_identity;
mod bench_ingest;
mod cose_cmd;
mod demo;
mod dice_cmd;
mod merkle_cmd;
mod note_cmd;
mod sim_cmd;
mod status;
mod suit_cmd;
mod verify;

use chipledger_cli::{client, device_cmd, firmware_cmd, net, txcmd};

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use chipledger_node::config::{self, KeyFile};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::Role;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "chipledger",
    version,
    about = "A permissioned multi-organisation ledger for chip identity, firmware and device data."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local 4-validator network (separate processes on loopback) and keep it running.
    Demo(demo::DemoArgs),
    /// Create a network's keys and genesis, or run one validator.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Generate signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Submit transactions and read their status.
    Tx(txcmd::TxArgs),
    /// Chip identity: manufacturer CAs, provisioning, ownership, attestation, revocation.
    Device(device_cmd::DeviceArgs),
    /// Firmware provenance: SUIT releases, certification, CVEs, fleet policies, rollouts,
    /// device-attested installs, exposure and proven per-device firmware.
    Firmware(firmware_cmd::FirmwareArgs),
    /// Every validator's height, log and state root.
    Status(status::StatusArgs),
    /// RFC 9162 Merkle tree tools (offline).
    Merkle(merkle_cmd::MerkleArgs),
    /// C2SP signed-note tools (offline).
    Note(note_cmd::NoteArgs),
    /// Open Profile for DICE tools (offline, open-dice compatible).
    Dice(dice_cmd::DiceArgs),
    /// SUIT firmware manifests: verify and inspect an envelope, or build and sign one (offline).
    Suit(suit_cmd::SuitArgs),
    /// COSE tools for auditors: verify a COSE_Sign1 (ES256 / EdDSA) with a PEM or JWK key (offline).
    Cose(cose_cmd::CoseArgs),
    /// Verify checkpoints and proofs served by a node (or from files) yourself.
    Verify(verify::VerifyArgs),
    /// The audit trail of a device, an organisation or a grantee key: grants, key releases,
    /// purchases, authorizations, commands, receipts, range proofs; `--verify` checks each proof.
    Audit(chipledger_cli::audit_cmd::AuditArgs),
    /// Access and sharing: grants, device tags, data offers, purchases with credits.
    Access(chipledger_cli::access_cmd::AccessArgs),
    /// Benchmarks; each prints a table, or one JSON object with --json.
    Bench(bench::BenchArgs),
    /// Simulated device fleets: `fleet simulate` publishes signed, encrypted records over MQTT.
    Fleet(chipledger_cli::simulate::FleetArgs),
    /// Run a data gateway: MQTT in, verified durable records, `CommitBatch` transactions out.
    Gateway(chipledger_cli::gateway_cmd::GatewayArgs),
    /// Device data: chains and anomalies on the ledger (`show`), one record with its proof from
    /// a gateway, verified and optionally decrypted (`get`).
    Data(chipledger_cli::data_cmd::DataArgs),
    /// The owner's key service: releases epoch keys to grantees, each release recorded on the
    /// ledger (a final `KeyRelease`) before any key leaves.
    Keyservice(chipledger_cli::keyservice::KeyServiceArgs),
    /// Zero-knowledge range proofs over committed device readings: prove, verify, publish, show.
    Zk(chipledger_cli::zk_cmd::ZkArgs),
    /// Print the validator API's OpenAPI 3.1 document (the same one nodes serve at /openapi.json).
    Openapi,
    /// Deterministic simulation of a whole network under seeded faults, invariants checked
    /// (`--seeds N [--from S] [--threads T]`, or `--seed S` to replay one).
    Sim(sim_cmd::SimArgs),
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Generate keys and genesis for one validator per organisation.
    Init {
        /// Output directory (must not hold a network already).
        #[arg(long, default_value = "chipledger-network")]
        out: PathBuf,
        #[arg(long, default_value = "chipledger-local")]
        chain_id: String,
        /// Organisations as name:role, comma separated (default: maker:manufacturer,city:owner,vendor:publisher,audit:auditor).
        #[arg(long, value_delimiter = ',')]
        orgs: Vec<String>,
        /// Host of each validator, comma separated (one for all, or one per organisation).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1")]
        hosts: Vec<String>,
        /// API ports are base, base+1, …; p2p ports base+100, base+101, …
        #[arg(long, default_value_t = 7070)]
        base_port: u16,
        /// Organisations needed to execute a governance proposal (default: 2n/3 + 1).
        #[arg(long)]
        threshold: Option<u32>,
    },
    /// Run the validator configured in a node directory until Ctrl-C or SIGTERM.
    Run {
        #[arg(long, value_name = "DIR")]
        config: PathBuf,
        /// Also run a data gateway with this name in the same process, against this node's
        /// API (as `chipledger gateway` does alone); needs --gateway-org and --gateway-key.
        #[arg(long, value_name = "NAME", requires_all = ["gateway_org", "gateway_key"])]
        gateway: Option<String>,
        /// Operator organisation of the in-process gateway.
        #[arg(long, value_name = "ORG")]
        gateway_org: Option<String>,
        /// The operator organisation's key file.
        #[arg(long, value_name = "KEYFILE")]
        gateway_key: Option<PathBuf>,
        /// Where the in-process gateway's embedded MQTT broker listens.
        #[arg(long, default_value = "127.0.0.1:1883")]
        gateway_listen: std::net::SocketAddr,
        /// Subscribe to this MQTT broker (HOST:PORT) instead of the embedded one.
        #[arg(long, value_name = "HOST:PORT")]
        gateway_broker: Option<String>,
        /// The gateway's record API (HOST:PORT or `off`).
        #[arg(long, value_name = "ADDR|off", default_value = "off")]
        gateway_http: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Generate a key and write it as a key file (mode 0600).
    Gen {
        #[arg(long, default_value = "ed25519", value_parser = ["ed25519", "p256"])]
        kind: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Log filter unless `CHIPLEDGER_LOG` sets one: rumqttd (the embedded broker) logs every
/// connect and disconnect, some at error level, so it is silenced by default.
const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulation's validators reject byzantine blocks and votes by design: only errors.
    let default_filter = match cli.command {
        Command::Sim(_) => "error",
        _ => DEFAULT_LOG_FILTER,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CHIPLEDGER_LOG").unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match cli.command {
        Command::Merkle(a) => merkle_cmd::run(a),
        Command::Note(a) => note_cmd::run(a),
        Command::Dice(a) => dice_cmd::run(a),
        Command::Suit(a) => suit_cmd::run(a),
        Command::Cose(a) => cose_cmd::run(a),
        Command::Verify(a) => verify::run(a),
        other => match dispatch(other) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e:#}");
                1
            }
        },
    };
    ExitCode::from(code as u8)
}

/// The loopback URL of the API a node directory configures (an unspecified listen address
/// is reached on 127.0.0.1 / ::1).
fn node_api_url(dir: &std::path::Path) -> Result<String> {
    let loaded = chipledger_node::config::load(dir)?;
    let mut addr = loaded.node.api_listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Ok(format!("http://{addr}"))
}

/// How long the in-process gateway waits for its node's API before giving up.
const IN_PROCESS_GATEWAY_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `node run --gateway …`: waits until the node's API answers, then runs the gateway until the
/// shutdown signal (which stops the node too). A failing gateway is logged; the node goes on.
fn run_in_process_gateway(args: chipledger_cli::gateway_cmd::GatewayArgs) {
    let started = std::time::Instant::now();
    let ready = || {
        chipledger_cli::client::Client::new(&args.api)
            .and_then(|c| c.status())
            .is_ok()
    };
    while !ready() {
        if started.elapsed() > IN_PROCESS_GATEWAY_WAIT {
            tracing::error!(api = %args.api, "the node's API did not come up; gateway not started");
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    if let Err(e) = chipledger_cli::gateway_cmd::run(args) {
        tracing::error!(error = %format!("{e:#}"), "in-process gateway stopped");
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Demo(a) => demo::run(a),
        Command::Node {
            command:
                NodeCommand::Run {
                    config,
                    gateway,
                    gateway_org,
                    gateway_key,
                    gateway_listen,
                    gateway_broker,
                    gateway_http,
                },
        } => {
            if let (Some(name), Some(org), Some(key)) = (gateway, gateway_org, gateway_key) {
                let args = chipledger_cli::gateway_cmd::GatewayArgs {
                    name,
                    org,
                    key,
                    api: node_api_url(&config)?,
                    broker: gateway_broker,
                    listen: gateway_listen,
                    data: config.join("data/gateway"),
                    batch_records: None,
                    batch_ms: None,
                    group: None,
                    http: Some(gateway_http),
                };
                std::thread::Builder::new()
                    .name("gateway".into())
                    .spawn(move || run_in_process_gateway(args))?;
            }
            chipledger_node::run::run(&config)
        }
        Command::Node {
            command:
                NodeCommand::Init {
                    out,
                    chain_id,
                    orgs,
                    hosts,
                    base_port,
                    threshold,
                },
        } => node_init(out, chain_id, orgs, hosts, base_port, threshold),
        Command::Keys {
            command: KeysCommand::Gen { kind, out, json },
        } => keys_gen(&kind, &out, json),
        Command::Tx(a) => txcmd::run(a),
        Command::Device(a) => device_cmd::run(a),
        Command::Firmware(a) => firmware_cmd::run(a),
        Command::Status(a) => status::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Fleet(a) => chipledger_cli::simulate::run(a),
        Command::Gateway(a) => chipledger_cli::gateway_cmd::run(a),
        Command::Data(a) => chipledger_cli::data_cmd::run(a),
        Command::Keyservice(a) => chipledger_cli::keyservice::run(a),
        Command::Zk(a) => chipledger_cli::zk_cmd::run(a),
        Command::Audit(a) => chipledger_cli::audit_cmd::run(a),
        Command::Access(a) => chipledger_cli::access_cmd::run(a),
        Command::Sim(a) => sim_cmd::run(a),
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&chipledger_node::api::openapi())?);
            Ok(())
        }
        Command::Merkle(_)
        | Command::Note(_)
        | Command::Dice(_)
        | Command::Suit(_)
        | Command::Cose(_)
        | Command::Verify(_) => {
            unreachable!("handled in main")
        }
    }
}

fn node_init(
    out: PathBuf,
    chain_id: String,
    orgs: Vec<String>,
    hosts: Vec<String>,
    base_port: u16,
    threshold: Option<u32>,
) -> Result<()> {
    let orgs = if orgs.is_empty() {
        config::default_orgs()
    } else {
        orgs.iter()
            .map(|o| {
                let (name, role) = o
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--orgs entries are name:role, got '{o}'"))?;
                let role = Role::from_name(role).ok_or_else(|| anyhow::anyhow!("unknown role '{role}'"))?;
                Ok((name.to_string(), role))
            })
            .collect::<Result<_>>()?
    };
    let opts = config::InitOptions {
        out: out.clone(),
        chain_id,
        orgs,
        hosts,
        base_port,
        governance_threshold: threshold,
        timestamp_ms: chipledger_node::metrics::now_ms(),
    };
    let g = config::init(&opts)?;
    println!("wrote a {}-validator network to {}", g.validators.len(), out.display());
    for v in &g.validators {
        println!(
            "  {}: chipledger node run --config {}  (API {})",
            v.name,
            out.join(&v.name).display(),
            v.api_url
        );
    }
    Ok(())
}

fn keys_gen(kind: &str, out: &std::path::Path, json: bool) -> Result<()> {
    if out.exists() {
        anyhow::bail!("{} exists; refusing to overwrite a key", out.display());
    }
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let key = match kind {
        "p256" => SigningKey::p256_from_bytes(&secret).map_err(|e| anyhow::anyhow!("{e}"))?,
        _ => SigningKey::ed25519_from_seed(&secret),
    };
    KeyFile::write(out, &key)?;
    let public = key.public_key();
    if json {
        println!(
            "{}",
            serde_json::json!({ "file": out, "public": public.to_string(), "key_id": hex::encode(public.id().0) })
        );
    } else {
        println!("wrote {} key to {}\npublic: {public}", kind, out.display());
    }
    Ok(())
}
