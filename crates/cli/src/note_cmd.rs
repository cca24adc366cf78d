//! `chipledger note`: verify C2SP signed notes (Ed25519 type 0x01 signatures
//! and tlog-cosignature/v1 type 0x04 cosignatures). Exit codes: 0 valid
//! (prints `valid`), 1 invalid (reason on stderr), 2 usage error.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use chipledger_types::note::{NoteLimits, VerifierKey, open};
use clap::{Args, Subcommand};

pub use crate::merkle_cmd::{EXIT_INVALID, EXIT_USAGE, EXIT_VALID};

#[derive(Debug, Args)]
pub struct NoteArgs {
    #[command(subcommand)]
    pub command: NoteCommand,
}

#[derive(Debug, Subcommand)]
pub enum NoteCommand {
    /// Verify a signed note against verifier keys.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Verifier key `name+hexkeyid+base64(type‖pubkey)` (type 0x01 or 0x04); repeatable.
    #[arg(long = "key", value_name = "VERIFIER_KEY", required = true)]
    pub keys: Vec<String>,
    /// Valid signatures required from distinct given keys; default: all given keys.
    #[arg(long, value_name = "K")]
    pub threshold: Option<usize>,
    /// The signed note.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Runs `chipledger note …`, printing to stdout/stderr; returns the exit code.
pub fn run(args: NoteArgs) -> i32 {
    run_with(args, &mut io::stdout().lock(), &mut io::stderr().lock())
}

/// [`run`] with explicit output streams (for tests).
pub fn run_with(args: NoteArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let NoteCommand::Verify(args) = args.command;
    match verify(&args) {
        Ok(()) => {
            let _ = writeln!(out, "valid");
            EXIT_VALID
        }
        Err((code, why)) => {
            let prefix = if code == EXIT_INVALID { "invalid" } else { "error" };
            let _ = writeln!(err, "{prefix}: {why}");
            code
        }
    }
}

/// Parses the keys, dropping exact duplicates.
fn parse_keys(texts: &[String]) -> Result<Vec<VerifierKey>, (i32, String)> {
    let mut keys: Vec<VerifierKey> = Vec::with_capacity(texts.len());
    for text in texts {
        let key = VerifierKey::parse(text).map_err(|e| (EXIT_USAGE, format!("--key {text}: {e}")))?;
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn read_bounded(path: &PathBuf, max: usize) -> Result<Vec<u8>, (i32, String)> {
    let file = File::open(path).map_err(|e| (EXIT_USAGE, format!("{}: {e}", path.display())))?;
    let mut msg = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut msg)
        .map_err(|e| (EXIT_USAGE, format!("{}: {e}", path.display())))?;
    Ok(msg)
}

fn verify(args: &VerifyArgs) -> Result<(), (i32, String)> {
    let keys = parse_keys(&args.keys)?;
    let threshold = args.threshold.unwrap_or(keys.len());
    if threshold == 0 || threshold > keys.len() {
        return Err((
            EXIT_USAGE,
            format!(
                "--threshold must be between 1 and {} (the distinct keys given)",
                keys.len()
            ),
        ));
    }
    let limits = NoteLimits::default();
    let msg = read_bounded(&args.file, limits.note_bytes_max)?;
    let opened = open(&msg, &keys, &limits).map_err(|e| (EXIT_INVALID, e.to_string()))?;
    if opened.verified.len() < threshold {
        let missing: Vec<&str> = keys
            .iter()
            .filter(|k| {
                !opened
                    .verified
                    .iter()
                    .any(|v| v.name == k.name() && v.key_id == k.key_id())
            })
            .map(|k| k.name())
            .collect();
        return Err((
            EXIT_INVALID,
            format!(
                "{} of {} required signatures (missing: {})",
                opened.verified.len(),
                threshold,
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_types::note::{SIG_TYPE_COSIGNATURE_V1, SIG_TYPE_ED25519, SignerKey, sign_note};
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: NoteCommand,
    }

    fn exec(args: &[&str]) -> (i32, String, String) {
        let cli = match Cli::try_parse_from(std::iter::once("note").chain(args.iter().copied())) {
            Ok(cli) => cli,
            Err(e) => return (e.exit_code(), String::new(), e.to_string()),
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(NoteArgs { command: cli.command }, &mut out, &mut err);
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn note_file(name: &str, contents: &str) -> String {
        let path = std::env::temp_dir().join(format!("chipledger-note-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    // golang/mod sumdb/note/note_test.go vectors.
    const PETER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const ENOCH: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    #[test]
    fn go_vectors() {
        let file = note_file("go", GO_NOTE);
        assert_eq!(
            exec(&["verify", "--key", PETER, &file]),
            (0, "valid\n".into(), String::new())
        );
        assert_eq!(exec(&["verify", "--key", PETER, "--key", ENOCH, &file]).0, EXIT_VALID);
        let other = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
        let (code, _, err) = exec(&["verify", "--key", PETER, "--key", other, &file]);
        assert_eq!(code, EXIT_INVALID);
        assert!(err.contains("1 of 2") && err.contains("example.com/foo"), "{err}");
        assert_eq!(
            exec(&["verify", "--key", PETER, "--key", other, "--threshold", "1", &file]).0,
            EXIT_VALID
        );
        assert_eq!(
            exec(&["verify", "--key", other, "--threshold", "1", &file]).0,
            EXIT_INVALID
        );
        let tampered = note_file("tampered", &GO_NOTE.replace("answer", "Answer"));
        assert_eq!(exec(&["verify", "--key", PETER, &tampered]).0, EXIT_INVALID);
        for p in [file, tampered] {
            let _ = std::fs::remove_file(p);
        }
    }

    #[test]
    fn cosigned_checkpoint() {
        let log = SignerKey::from_seed("example.com/log", SIG_TYPE_ED25519, &[1; 32]).unwrap();
        let witness = SignerKey::from_seed("witness.example/w1", SIG_TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
        let body = "example.com/log\n1\nbjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=\n";
        let file = note_file("cosigned", &sign_note(body, &[&log, &witness], 1_700_000_000).unwrap());
        let (lk, wk) = (log.verifier().to_string(), witness.verifier().to_string());
        assert_eq!(exec(&["verify", "--key", &lk, "--key", &wk, &file]).0, EXIT_VALID);
        assert_eq!(exec(&["verify", "--key", &wk, &file]).0, EXIT_VALID);
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn usage_errors() {
        let file = note_file("usage", GO_NOTE);
        assert_eq!(exec(&["verify", &file]).0, 2, "--key is required");
        assert_eq!(exec(&["verify", "--key", "not-a-key", &file]).0, EXIT_USAGE);
        assert_eq!(
            exec(&["verify", "--key", PETER, "--threshold", "0", &file]).0,
            EXIT_USAGE
        );
        assert_eq!(
            exec(&["verify", "--key", PETER, "--threshold", "2", &file]).0,
            EXIT_USAGE
        );
        assert_eq!(
            exec(&["verify", "--key", PETER, "--key", PETER, "--threshold", "2", &file]).0,
            EXIT_USAGE
        );
        assert_eq!(exec(&["verify", "--key", PETER, "/nonexistent/note"]).0, EXIT_USAGE);
        let _ = std::fs::remove_file(file);
    }
}
