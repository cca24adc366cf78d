//! `chipledger merkle`: RFC 9162 tree roots and proof verification from the
//! command line. Exit codes: 0 valid (prints `valid` or the root), 1 invalid
//! (reason on stderr), 2 usage error (bad hex, unreadable file, …).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use chipledger_types::merkle::{Frontier, Hash, hash_leaf, verify_consistency, verify_inclusion};
use clap::{ArgGroup, Args, Subcommand};

/// Exit code: the proof verified (or the root was printed).
pub const EXIT_VALID: i32 = 0;
/// Exit code: the proof did not verify.
pub const EXIT_INVALID: i32 = 1;
/// Exit code: malformed arguments or input.
pub const EXIT_USAGE: i32 = 2;
/// Longest accepted line of `--leaves` (hex characters).
pub const MAX_LEAF_LINE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct MerkleArgs {
    #[command(subcommand)]
    pub command: MerkleCommand,
}

#[derive(Debug, Subcommand)]
pub enum MerkleCommand {
    /// Print the RFC 9162 root (hex) of the leaves in a file.
    Root(RootArgs),
    /// Verify an RFC 9162 inclusion proof.
    VerifyInclusion(InclusionArgs),
    /// Verify an RFC 9162 consistency proof.
    VerifyConsistency(ConsistencyArgs),
}

#[derive(Debug, Args)]
pub struct RootArgs {
    /// File with one hex-encoded leaf input per line; an empty line is the
    /// empty leaf, an empty file the empty tree.
    #[arg(long, value_name = "FILE")]
    pub leaves: PathBuf,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("leaf_input").required(true).args(["leaf", "leaf_hash"])))]
pub struct InclusionArgs {
    /// Leaf input (hex); hashed as SHA-256(0x00 ‖ input).
    #[arg(long, value_name = "HEX")]
    pub leaf: Option<String>,
    /// Leaf hash (32 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub leaf_hash: Option<String>,
    /// Zero-based leaf index.
    #[arg(long)]
    pub index: u64,
    /// Tree size.
    #[arg(long)]
    pub size: u64,
    /// Expected root (32 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub root: String,
    /// Comma-separated proof hashes, leaf's sibling first; '' for the empty proof.
    #[arg(long, value_name = "HEX[,HEX…]")]
    pub proof: String,
}

#[derive(Debug, Args)]
pub struct ConsistencyArgs {
    /// Size of the first (older) tree.
    #[arg(long)]
    pub size1: u64,
    /// Size of the second (newer) tree.
    #[arg(long)]
    pub size2: u64,
    /// Root of the first tree (32 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub root1: String,
    /// Root of the second tree (32 bytes hex).
    #[arg(long, value_name = "HEX")]
    pub root2: String,
    /// Comma-separated proof hashes; '' for the empty proof.
    #[arg(long, value_name = "HEX[,HEX…]")]
    pub proof: String,
}

/// Runs `chipledger merkle …`, printing to stdout/stderr; returns the exit code.
pub fn run(args: MerkleArgs) -> i32 {
    run_with(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`run`] with explicit output streams (for tests).
pub fn run_with(args: MerkleArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let result = match args.command {
        MerkleCommand::Root(a) => root(&a),
        MerkleCommand::VerifyInclusion(a) => inclusion(&a),
        MerkleCommand::VerifyConsistency(a) => consistency(&a),
    };
    match result {
        Ok(line) => {
            let _ = writeln!(out, "{line}");
            EXIT_VALID
        }
        Err(Failure::Invalid(why)) => {
            let _ = writeln!(err, "invalid: {why}");
            EXIT_INVALID
        }
        Err(Failure::Usage(why)) => {
            let _ = writeln!(err, "error: {why}");
            EXIT_USAGE
        }
    }
}

/// Why a command did not succeed.
enum Failure {
    Invalid(String),
    Usage(String),
}

fn parse_hash(what: &str, s: &str) -> Result<Hash, Failure> {
    let bytes = hex::decode(s).map_err(|e| Failure::Usage(format!("{what}: not hex ({e})")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| Failure::Usage(format!("{what}: expected 32 bytes, got {}", b.len())))
}

fn parse_proof(s: &str) -> Result<Vec<Hash>, Failure> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() > chipledger_types::merkle::MAX_PROOF_HASHES {
        return Err(Failure::Invalid(format!(
            "proof has {} hashes, more than any tree needs",
            parts.len()
        )));
    }
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| parse_hash(&format!("--proof hash {i}"), p))
        .collect()
}

fn root(args: &RootArgs) -> Result<String, Failure> {
    let path = args.leaves.display();
    let file = File::open(&args.leaves).map_err(|e| Failure::Usage(format!("{path}: {e}")))?;
    let mut reader = BufReader::new(file);
    let mut frontier = Frontier::new();
    let mut line = Vec::new();
    for line_no in 1u64.. {
        line.clear();
        let read = (&mut reader)
            .take(MAX_LEAF_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Failure::Usage(format!("{path}: {e}")))?;
        if read == 0 {
            break;
        }
        let has_newline = line.last() == Some(&b'\n');
        if !has_newline && read as u64 > MAX_LEAF_LINE_BYTES {
            return Err(Failure::Usage(format!(
                "{path}:{line_no}: line longer than {MAX_LEAF_LINE_BYTES} bytes"
            )));
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let leaf = hex::decode(text).map_err(|e| Failure::Usage(format!("{path}:{line_no}: not hex ({e})")))?;
        frontier.append(&leaf);
    }
    Ok(hex::encode(frontier.root()))
}

fn inclusion(args: &InclusionArgs) -> Result<String, Failure> {
    let leaf_hash = match (&args.leaf, &args.leaf_hash) {
        (Some(leaf), None) => {
            hash_leaf(&hex::decode(leaf).map_err(|e| Failure::Usage(format!("--leaf: not hex ({e})")))?)
        }
        (None, Some(h)) => parse_hash("--leaf-hash", h)?,
        _ => {
            return Err(Failure::Usage("give exactly one of --leaf and --leaf-hash".into()));
        }
    };
    let root = parse_hash("--root", &args.root)?;
    let proof = parse_proof(&args.proof)?;
    verify_inclusion(&leaf_hash, args.index, args.size, &proof, &root).map_err(|e| Failure::Invalid(e.to_string()))?;
    Ok("valid".into())
}

fn consistency(args: &ConsistencyArgs) -> Result<String, Failure> {
    let root1 = parse_hash("--root1", &args.root1)?;
    let root2 = parse_hash("--root2", &args.root2)?;
    let proof = parse_proof(&args.proof)?;
    verify_consistency(args.size1, args.size2, &proof, &root1, &root2).map_err(|e| Failure::Invalid(e.to_string()))?;
    Ok("valid".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: MerkleCommand,
    }

    /// Runs `merkle <args>`; returns (exit code, stdout, stderr).
    fn exec(args: &[&str]) -> (i32, String, String) {
        let cli = match Cli::try_parse_from(std::iter::once("merkle").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => return (e.exit_code(), String::new(), e.to_string()),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(MerkleArgs { command: cli.command }, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn leaves_file(name: &str, contents: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("chipledger-merkle-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    // transparency-dev/merkle testonly/constants.go: LeafInputs() and RootHashes().
    const LEAVES: &str = "\n00\n10\n2021\n3031\n40414243\n5051525354555657\n606162636465666768696a6b6c6d6e6f\n";
    const ROOT_3: &str = "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77";
    const ROOT_6: &str = "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef";
    const ROOT_8: &str = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    // testdata/inclusion/1/happy-path.json (leaf 0 of 8), base64 → hex.
    const INCL_PROOF: &str = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7,5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e,6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4";
    // testdata/consistency/2/happy-path.json (6 → 8).
    const CONS_PROOF: &str = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a,ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0,d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7";

    #[test]
    fn root_of_files() {
        let all = leaves_file("all", LEAVES);
        assert_eq!(
            exec(&["root", "--leaves", all.to_str().unwrap()]),
            (0, format!("{ROOT_8}\n"), String::new())
        );
        let three = leaves_file("three", "\r\n00\n10");
        assert_eq!(
            exec(&["root", "--leaves", three.to_str().unwrap()]).1,
            format!("{ROOT_3}\n")
        );
        let empty = leaves_file("empty", "");
        assert_eq!(
            exec(&["root", "--leaves", empty.to_str().unwrap()]).1,
            format!("{EMPTY}\n")
        );
        let bad = leaves_file("bad", "00\nzz\n");
        let (code, _, err) = exec(&["root", "--leaves", bad.to_str().unwrap()]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains(":2:"), "{err}");
        assert_eq!(exec(&["root", "--leaves", "/nonexistent/leaves"]).0, EXIT_USAGE);
        for p in [all, three, empty, bad] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn inclusion_valid_invalid_and_usage() {
        let ok = [
            "verify-inclusion",
            "--leaf",
            "",
            "--index",
            "0",
            "--size",
            "8",
            "--root",
            ROOT_8,
            "--proof",
            INCL_PROOF,
        ];
        assert_eq!(exec(&ok), (0, "valid\n".into(), String::new()));
        let leaf_hash = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d";
        let mut by_hash = ok;
        (by_hash[1], by_hash[2]) = ("--leaf-hash", leaf_hash);
        assert_eq!(exec(&by_hash).0, EXIT_VALID);
        let mut wrong_index = ok;
        wrong_index[4] = "1";
        let (code, _, err) = exec(&wrong_index);
        assert_eq!(code, EXIT_INVALID);
        assert!(err.starts_with("invalid:"), "{err}");
        let mut wrong_root = ok;
        wrong_root[8] = ROOT_6;
        assert_eq!(exec(&wrong_root).0, EXIT_INVALID);
        let mut bad_hex = ok;
        bad_hex[10] = "zz";
        assert_eq!(exec(&bad_hex).0, EXIT_USAGE);
        let mut short_root = ok;
        short_root[8] = "abcd";
        assert_eq!(exec(&short_root).0, EXIT_USAGE);
        // Both or neither leaf argument: clap's usage error.
        assert_eq!(
            exec(&[
                "verify-inclusion",
                "--index",
                "0",
                "--size",
                "1",
                "--root",
                EMPTY,
                "--proof",
                ""
            ])
            .0,
            2
        );
        let single = [
            "verify-inclusion",
            "--leaf",
            "",
            "--leaf-hash",
            leaf_hash,
            "--index",
            "0",
            "--size",
            "1",
            "--root",
            leaf_hash,
            "--proof",
            "",
        ];
        assert_eq!(exec(&single).0, 2);
        let single = [
            "verify-inclusion",
            "--leaf-hash",
            leaf_hash,
            "--index",
            "0",
            "--size",
            "1",
            "--root",
            leaf_hash,
            "--proof",
            "",
        ];
        assert_eq!(exec(&single).0, EXIT_VALID);
        assert_eq!(
            exec(&[
                "verify-inclusion",
                "--leaf",
                "",
                "--index",
                "x",
                "--size",
                "1",
                "--root",
                EMPTY,
                "--proof",
                ""
            ])
            .0,
            2
        );
    }

    #[test]
    fn consistency_valid_invalid_and_usage() {
        let ok = [
            "verify-consistency",
            "--size1",
            "6",
            "--size2",
            "8",
            "--root1",
            ROOT_6,
            "--root2",
            ROOT_8,
            "--proof",
            CONS_PROOF,
        ];
        assert_eq!(exec(&ok), (0, "valid\n".into(), String::new()));
        let mut swapped = ok;
        (swapped[6], swapped[8]) = (ROOT_8, ROOT_6);
        assert_eq!(exec(&swapped).0, EXIT_INVALID);
        let mut size0 = ok;
        size0[2] = "0";
        assert_eq!(exec(&size0).0, EXIT_INVALID);
        let same = [
            "verify-consistency",
            "--size1",
            "8",
            "--size2",
            "8",
            "--root1",
            ROOT_8,
            "--root2",
            ROOT_8,
            "--proof",
            "",
        ];
        assert_eq!(exec(&same).0, EXIT_VALID);
        let mut trailing_comma = ok;
        let proof = format!("{CONS_PROOF},");
        trailing_comma[10] = &proof;
        assert_eq!(exec(&trailing_comma).0, EXIT_USAGE);
    }
}
