//! `chipledger dice derive`: one Open Profile for DICE layer, computed offline exactly as
//! google/open-dice computes it, so an auditor can check a device's CDIs, keys and IDs.
//! Exit codes: 0 derived (prints the result), 2 usage error (malformed hex, wrong length, …).

use std::io::{self, Write};

use chipledger_device::dice::{self, Algorithm, Cdis, Config, InputValues, LayerOutput, Mode};
use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde::Serialize;

/// Exit code: the layer was derived and printed.
pub const EXIT_OK: i32 = 0;
/// Exit code: the derivation failed for a reason other than the arguments (not expected).
pub const EXIT_FAILED: i32 = 1;
/// Exit code: malformed arguments (bad hex, wrong length, oversized descriptor).
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Args)]
pub struct DiceArgs {
    #[command(subcommand)]
    pub command: DiceCommand,
}

#[derive(Debug, Subcommand)]
pub enum DiceCommand {
    /// Derive the next layer's CDIs and the authority/subject keys and IDs (open-dice compatible).
    Derive(DeriveArgs),
}

/// The mode decision input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    #[value(name = "not-configured")]
    NotConfigured,
    #[value(name = "normal")]
    Normal,
    #[value(name = "debug")]
    Debug,
    #[value(name = "maintenance")]
    Maintenance,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Mode {
        match mode {
            ModeArg::NotConfigured => Mode::NotConfigured,
            ModeArg::Normal => Mode::Normal,
            ModeArg::Debug => Mode::Debug,
            ModeArg::Maintenance => Mode::Maintenance,
        }
    }
}

/// The layer key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlgArg {
    #[value(name = "ed25519")]
    Ed25519,
    #[value(name = "p256")]
    P256,
}

impl From<AlgArg> for Algorithm {
    fn from(alg: AlgArg) -> Algorithm {
        match alg {
            AlgArg::Ed25519 => Algorithm::Ed25519,
            AlgArg::P256 => Algorithm::P256,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("current").required(true).args(["uds", "cdi_attest"])))]
#[command(group(ArgGroup::new("config").required(true).args(["config_value", "config_descriptor"])))]
pub struct DeriveArgs {
    /// Unique Device Secret (32 bytes hex): derive the first layer (UDS stands in for both CDIs).
    #[arg(long, value_name = "HEX", conflicts_with_all = ["cdi_attest", "cdi_seal"])]
    pub uds: Option<String>,
    /// Current attestation CDI (32 bytes hex).
    #[arg(long, value_name = "HEX", requires = "cdi_seal")]
    pub cdi_attest: Option<String>,
    /// Current sealing CDI (32 bytes hex).
    #[arg(long, value_name = "HEX", requires = "cdi_attest")]
    pub cdi_seal: Option<String>,
    /// Code hash (64 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub code_hash: String,
    /// Code descriptor (hex; certificates only, does not change the derivation).
    #[arg(long, value_name = "HEX")]
    pub code_descriptor: Option<String>,
    /// Inline configuration value (64 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub config_value: Option<String>,
    /// Configuration descriptor (hex); its SHA-512 is the configuration value.
    #[arg(long, value_name = "HEX")]
    pub config_descriptor: Option<String>,
    /// Authority hash (64 bytes hex; all zero when there is no verified-boot authority).
    #[arg(long, value_name = "HEX")]
    pub authority_hash: String,
    /// Authority descriptor (hex; certificates only, does not change the derivation).
    #[arg(long, value_name = "HEX")]
    pub authority_descriptor: Option<String>,
    /// Mode decision.
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Hidden input (64 bytes hex; all zero when unused).
    #[arg(long, value_name = "HEX")]
    pub hidden: String,
    /// Key algorithm of the authority and subject keys.
    #[arg(long, value_enum, default_value = "p256")]
    pub alg: AlgArg,
    /// Print one JSON object (otherwise `name: hex` lines).
    #[arg(long)]
    pub json: bool,
}

/// What `dice derive` prints (all hex; public keys raw: 32 bytes Ed25519, `x ‖ y` for P-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeriveOutput {
    pub cdi_attest: String,
    pub cdi_seal: String,
    pub authority_public_key: String,
    pub authority_id: String,
    pub subject_public_key: String,
    pub subject_id: String,
}

impl From<&LayerOutput> for DeriveOutput {
    fn from(out: &LayerOutput) -> Self {
        DeriveOutput {
            cdi_attest: hex::encode(out.next.cdi_attest),
            cdi_seal: hex::encode(out.next.cdi_seal),
            authority_public_key: hex::encode(out.authority.public_key.as_bytes()),
            authority_id: hex::encode(out.authority.id),
            subject_public_key: hex::encode(out.subject.public_key.as_bytes()),
            subject_id: hex::encode(out.subject.id),
        }
    }
}

/// Runs `chipledger dice …`, printing to stdout/stderr; returns the exit code.
pub fn run(args: DiceArgs) -> i32 {
    run_with(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`run`] with explicit output streams (for tests).
pub fn run_with(args: DiceArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let DiceCommand::Derive(derive_args) = args.command;
    match derive(&derive_args) {
        Ok(result) => {
            let text = if derive_args.json {
                serde_json::to_string_pretty(&result).unwrap_or_default()
            } else {
                human(&result)
            };
            let _ = writeln!(out, "{text}");
            EXIT_OK
        }
        Err(Failure::Usage(why)) => {
            let _ = writeln!(err, "error: {why}");
            EXIT_USAGE
        }
        Err(Failure::Failed(why)) => {
            let _ = writeln!(err, "error: {why}");
            EXIT_FAILED
        }
    }
}

fn human(result: &DeriveOutput) -> String {
    [
        ("cdi_attest", &result.cdi_attest),
        ("cdi_seal", &result.cdi_seal),
        ("authority_public_key", &result.authority_public_key),
        ("authority_id", &result.authority_id),
        ("subject_public_key", &result.subject_public_key),
        ("subject_id", &result.subject_id),
    ]
    .iter()
    .map(|(name, value)| format!("{name}: {value}"))
    .collect::<Vec<_>>()
    .join("\n")
}

/// Why `dice derive` did not succeed.
#[derive(Debug)]
enum Failure {
    Usage(String),
    Failed(String),
}

fn parse_hex(flag: &str, s: &str) -> Result<Vec<u8>, Failure> {
    hex::decode(s.trim()).map_err(|e| Failure::Usage(format!("{flag}: not hex ({e})")))
}

fn parse_fixed<const N: usize>(flag: &str, s: &str) -> Result<[u8; N], Failure> {
    parse_hex(flag, s)?
        .try_into()
        .map_err(|b: Vec<u8>| Failure::Usage(format!("{flag}: expected {N} bytes, got {}", b.len())))
}

fn parse_descriptor(flag: &str, s: Option<&str>) -> Result<Option<Vec<u8>>, Failure> {
    let Some(s) = s else { return Ok(None) };
    let bytes = parse_hex(flag, s)?;
    if bytes.len() > dice::MAX_DESCRIPTOR_BYTES {
        let limit = dice::MAX_DESCRIPTOR_BYTES;
        return Err(Failure::Usage(format!(
            "{flag}: {} bytes, at most {limit} accepted",
            bytes.len()
        )));
    }
    Ok(Some(bytes))
}

fn current_cdis(args: &DeriveArgs) -> Result<Cdis, Failure> {
    match (&args.uds, &args.cdi_attest, &args.cdi_seal) {
        (Some(uds), None, None) => Ok(Cdis::from_uds(&parse_fixed("--uds", uds)?)),
        (None, Some(attest), Some(seal)) => Ok(Cdis {
            cdi_attest: parse_fixed("--cdi-attest", attest)?,
            cdi_seal: parse_fixed("--cdi-seal", seal)?,
        }),
        _ => Err(Failure::Usage(
            "give either --uds, or --cdi-attest and --cdi-seal".into(),
        )),
    }
}

/// Parses the arguments and derives the layer.
fn derive(args: &DeriveArgs) -> Result<DeriveOutput, Failure> {
    let current = current_cdis(args)?;
    let code_descriptor = parse_descriptor("--code-descriptor", args.code_descriptor.as_deref())?;
    let config_descriptor = parse_descriptor("--config-descriptor", args.config_descriptor.as_deref())?;
    let authority_descriptor = parse_descriptor("--authority-descriptor", args.authority_descriptor.as_deref())?;
    let config = match (&args.config_value, &config_descriptor) {
        (Some(value), None) => Config::Inline(parse_fixed("--config-value", value)?),
        (None, Some(descriptor)) => Config::Descriptor(descriptor),
        _ => {
            return Err(Failure::Usage(
                "give exactly one of --config-value and --config-descriptor".into(),
            ));
        }
    };
    let inputs = InputValues {
        code_hash: parse_fixed("--code-hash", &args.code_hash)?,
        code_descriptor: code_descriptor.as_deref(),
        config,
        authority_hash: parse_fixed("--authority-hash", &args.authority_hash)?,
        authority_descriptor: authority_descriptor.as_deref(),
        mode: args.mode.into(),
        hidden: parse_fixed("--hidden", &args.hidden)?,
    };
    let layer = dice::derive_layer(args.alg.into(), &current, &inputs).map_err(|e| match e {
        dice::DiceError::DescriptorTooLong { .. } | dice::DiceError::UnknownMode(_) => Failure::Usage(e.to_string()),
        other => Failure::Failed(other.to_string()),
    })?;
    Ok(DeriveOutput::from(&layer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        dice: DiceArgs,
    }

    const ZERO_32: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn zero_64() -> String {
        "00".repeat(64)
    }

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let cli = TestCli::try_parse_from(std::iter::once("dice").chain(args.iter().copied())).expect("parse");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(cli.dice, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn zero_input_args(alg: &str) -> Vec<String> {
        let z = zero_64();
        [
            "derive",
            "--uds",
            ZERO_32,
            "--code-hash",
            &z,
            "--config-value",
            &z,
            "--authority-hash",
            &z,
        ]
        .into_iter()
        .chain(["--mode", "not-configured", "--hidden", &z, "--alg", alg, "--json"])
        .map(String::from)
        .collect()
    }

    /// open-dice `kExpected*_ZeroInput` (crates/device/tests/fixtures/open-dice/known_values.txt).
    #[test]
    fn zero_input_reproduces_open_dice_known_values() {
        for (alg, subject_key_prefix, subject_id, authority_id) in [
            (
                "ed25519",
                "0d14e5de292eb1c8b31beae43ab55d8e9dc014b73eaa83b925a0788cc62e5c8d",
                "67c22a8859062b986818e8e72b0bcd9f59349c89",
                "7a06eee41b789f4863d86b8778b1a201a6fedd56",
            ),
            (
                "p256",
                "4f3b4e82c45ada084589c2197baf1f376eac40e1fd49b0240602aec269541c6b",
                "2e75b6e7230c20f2960bde4acf1288d4ab665b9b",
                "672d0053ae4513fbb3bac8209daeb3e8897681cd",
            ),
        ] {
            let args = zero_input_args(alg);
            let (code, out, err) = run_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(code, EXIT_OK, "{err}");
            let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
            assert_eq!(
                json["cdi_attest"],
                "fbfc679771342eeacb908659ce49d6b63b4535da2c51433d7f04efa6319e0c19"
            );
            assert_eq!(
                json["cdi_seal"],
                "8ff8b22571325e7defefbfea8df1c9f34bf4d9ee03b75b788219c6b1ef49bdc5"
            );
            assert!(
                json["subject_public_key"]
                    .as_str()
                    .unwrap()
                    .starts_with(subject_key_prefix),
                "{alg}"
            );
            assert_eq!(json["subject_id"], subject_id, "{alg}");
            assert_eq!(json["authority_id"], authority_id, "{alg}");
            let key_len = if alg == "p256" { 128 } else { 64 };
            assert_eq!(json["authority_public_key"].as_str().unwrap().len(), key_len);
        }
    }

    /// open-dice `kExpected*_DescriptorInput` for P-256, from current CDIs with descriptors.
    #[test]
    fn descriptor_input_reproduces_open_dice_known_values() {
        let attest = "326b7af456fd2c702a76392e8dee3c355bd48d35438c0ffbca2d9484c9f695d4";
        let seal = "353ea9b7aa6bfc243d8bec1957eea01c8677f4ae54d31c262640b5e07f1e53cb";
        let code_hash = "b7d40ccb225ba5788f98ff9e869375f690ac50cf9ebd0afeb1d9c24e5219e4de\
                         29e561f3f929e840877add174805897e2bcb5479cc66f1b313290c6896b2bb8f";
        let authority_hash = "22526017ef2ca1f6cbed39d5e2aa6520fbad8293e578232297c16e6a4e36d76a\
                              61390821d4fe925f362deb5dbb328be3944fbe1b21f9cc237341b6b9b698d0bc";
        let config_descriptor = "1b40c1a97760ebc367f05f6ae15e20c251684d82488b03321679881437787f169a06fdc08a158062";
        let z = zero_64();
        let (code, out, err) = run_args(&[
            "derive",
            "--cdi-attest",
            attest,
            "--cdi-seal",
            seal,
            "--code-hash",
            code_hash,
            "--code-descriptor",
            "00ff",
            "--config-descriptor",
            config_descriptor,
            "--authority-hash",
            authority_hash,
            "--mode",
            "not-configured",
            "--hidden",
            &z,
            "--alg",
            "p256",
            "--json",
        ]);
        assert_eq!(code, EXIT_OK, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(
            json["cdi_attest"],
            "20d50c685ad9e2df77607868190024c2044fb8de79aa9f5f12fca8da3708a310"
        );
        assert_eq!(
            json["cdi_seal"],
            "90c9a2865df4fa5830643d6caef07c76aeaa15619828f1bda7f74482e2f0ae1e"
        );
        assert_eq!(json["subject_id"], "5a04e9ecf19ad3d52668b82a6081f03fdb29f864");
        assert_eq!(json["authority_id"], "48603c0052c1cac73cae36c3bdec7c6139885c9d");
    }

    #[test]
    fn malformed_hex_is_a_usage_error() {
        let mut args = zero_input_args("ed25519");
        args[2] = "zz".into(); // --uds
        let (code, out, err) = run_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!((code, out.as_str()), (EXIT_USAGE, ""));
        assert!(err.contains("--uds: not hex"), "{err}");
        args[2] = "00".into();
        let (code, _, err) = run_args(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("expected 32 bytes, got 1"), "{err}");
    }

    #[test]
    fn uds_and_cdis_are_exclusive() {
        let mut args = zero_input_args("ed25519");
        args.extend(["--cdi-attest", ZERO_32, "--cdi-seal", ZERO_32].map(String::from));
        assert!(TestCli::try_parse_from(std::iter::once("dice".to_string()).chain(args)).is_err());
    }
}
