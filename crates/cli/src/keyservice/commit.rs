//! The one path from a checked request to wrapped keys: submit the `KeyRelease` (signed by the
//! owner organisation), wait until it is in the ledger's log under a checkpoint cosigned by a
//! quorum of the validators, and only then wrap.
//!
//! This is structural: [`wrap_released`] is the only function of the key service that wraps an
//! epoch key, and it takes a [`FinalRelease`], whose fields are private to this module and
//! whose only constructor is [`Ledger::commit`] after that quorum check. It wraps exactly the
//! epochs of that final transaction, for the recipient whose hash it records — nothing else.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chipledger_device::seal::{EpochGrant, wrap_epoch_key_for};
use chipledger_node::api::InclusionProof;
use chipledger_types::access_tx::KeyRelease;
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::keys::SigningKey;
use chipledger_types::merkle::{Hash, MAX_PROOF_HASHES, hash_leaf, verify_inclusion};
use chipledger_types::note::NoteLimits;
use chipledger_types::tx::{Payload, TxHash};

use super::protocol::{WrappedKeyJson, fresh_p256_secret, recipient_digest};
use crate::client::Client;
use crate::data_cmd::NetworkTrust;
use crate::txcmd::build;

/// Blocks a `KeyRelease` stays valid for inclusion.
pub const RELEASE_EXPIRY_BLOCKS: u64 = 100;
/// Submissions retried when another transaction of the owner took the sequence number.
const MAX_SEQ_ATTEMPTS: usize = 3;
/// Pause between two status polls.
const POLL_PAUSE: Duration = Duration::from_millis(100);

/// Why no `KeyRelease` became final.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The ledger refused the transaction (its typed code: `grant_revoked`, `not_covered`, …).
    #[error("the ledger refused the key release ({code}): {message}")]
    Refused { code: String, message: String },
    /// Admitted, then left out of every block.
    #[error("the ledger rejected key release {tx}: {reason}")]
    Rejected { tx: String, reason: String },
    #[error("the ledger cannot be reached: {0}")]
    Unavailable(String),
    #[error("key release {tx} is not final under a quorum checkpoint after {waited_ms} ms")]
    NotFinal { tx: String, waited_ms: u128 },
}

/// Proof that a `KeyRelease` is final: built only by [`Ledger::commit`].
#[derive(Debug)]
pub struct FinalRelease {
    tx: TxHash,
    height: u64,
    release: KeyRelease,
}

impl FinalRelease {
    pub fn tx(&self) -> TxHash {
        self.tx
    }
    pub fn height(&self) -> u64 {
        self.height
    }
    pub fn release(&self) -> &KeyRelease {
        &self.release
    }
}

/// The owner organisation's access to the ledger.
pub struct Ledger {
    pub client: Client,
    pub org: String,
    pub key: SigningKey,
    pub trust: NetworkTrust,
    pub final_wait: Duration,
    /// One submission at a time: the owner's sequence numbers are contiguous.
    submitting: Mutex<()>,
}

impl Ledger {
    pub fn new(client: Client, org: String, key: SigningKey, trust: NetworkTrust, final_wait: Duration) -> Self {
        Self {
            client,
            org,
            key,
            trust,
            final_wait,
            submitting: Mutex::new(()),
        }
    }

    /// Submits `release` and waits until it is final under a quorum checkpoint.
    pub fn commit(&self, release: KeyRelease) -> Result<FinalRelease, CommitError> {
        let _one_at_a_time = self.submitting.lock().unwrap_or_else(|p| p.into_inner());
        let unavailable = |e: anyhow::Error| CommitError::Unavailable(format!("{e:#}"));
        let mut attempt = 1;
        loop {
            let payload = Payload::KeyRelease(release.clone());
            let tx =
                build(&self.client, &self.org, &self.key, None, RELEASE_EXPIRY_BLOCKS, payload).map_err(unavailable)?;
            match self.client.try_submit(&tx).map_err(unavailable)? {
                Ok(_) => {
                    let (tx_hash, height) = self.wait_final(&tx)?;
                    return Ok(FinalRelease {
                        tx: tx_hash,
                        height,
                        release,
                    });
                }
                Err(body) if body.error == "replay" && attempt < MAX_SEQ_ATTEMPTS => attempt += 1,
                Err(body) => {
                    return Err(CommitError::Refused {
                        code: body.error,
                        message: body.message,
                    });
                }
            }
        }
    }

    /// Polls the transaction's status until its inclusion proof verifies under a checkpoint
    /// cosigned by a quorum of the trusted validators; returns its hash and height.
    fn wait_final(&self, tx: &[u8]) -> Result<(TxHash, u64), CommitError> {
        let hash = TxHash::of(tx);
        let started = Instant::now();
        let mut last_problem = String::from("no answer yet");
        while started.elapsed() < self.final_wait {
            match self.client.tx(&hash.to_string()) {
                Ok(s) if s.status == "rejected" => {
                    return Err(CommitError::Rejected {
                        tx: hash.to_string(),
                        reason: s.reason.unwrap_or_default(),
                    });
                }
                Ok(s) if s.status == "final" => match (s.height, s.proof.as_ref()) {
                    (Some(height), Some(p)) => match verify_final(&self.trust, tx, p) {
                        Ok(()) => return Ok((hash, height)),
                        Err(why) => last_problem = why,
                    },
                    _ => last_problem = "final without an inclusion proof".into(),
                },
                Ok(s) => last_problem = s.status,
                Err(e) => last_problem = format!("{e:#}"),
            }
            std::thread::sleep(POLL_PAUSE);
        }
        tracing::warn!(tx = %hash, last = %last_problem, "key release not final in time; no key released");
        Err(CommitError::NotFinal {
            tx: hash.to_string(),
            waited_ms: started.elapsed().as_millis(),
        })
    }
}

fn unhex_hash(s: &str) -> Result<Hash, String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| "the proof holds a hash that is not 32 bytes of hex".to_string())
}

/// Whether `tx` is leaf `p.leaf_index` of the log under `p.checkpoint`, signed by a quorum.
pub fn verify_final(trust: &NetworkTrust, tx: &[u8], p: &InclusionProof) -> Result<(), String> {
    let note = p
        .checkpoint
        .as_ref()
        .ok_or("no final checkpoint covers the transaction yet")?;
    let signed = open_checkpoint(note.as_bytes(), &trust.origin, &trust.keys, &NoteLimits::default())
        .map_err(|e| format!("checkpoint: {e}"))?;
    let valid = signed.note.verified.len();
    if valid < trust.quorum {
        return Err(format!(
            "checkpoint signed by {valid} validators; {} needed",
            trust.quorum
        ));
    }
    if signed.checkpoint.size != p.log_size {
        return Err("the proof is not against the checkpoint's log size".into());
    }
    if p.hashes.len() > MAX_PROOF_HASHES {
        return Err("the inclusion proof is too long".into());
    }
    let path = p.hashes.iter().map(|h| unhex_hash(h)).collect::<Result<Vec<_>, _>>()?;
    verify_inclusion(&hash_leaf(tx), p.leaf_index, p.log_size, &path, &signed.checkpoint.root)
        .map_err(|e| format!("not in the cosigned log: {e}"))
}

/// Why wrapping refused (a bug of the caller: the grants do not match the final release).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WrapError {
    #[error("the recipient key is not the one the final release records")]
    WrongRecipient,
    #[error("epoch {epoch} of device {device} is not what the final release names")]
    NotReleased { device: String, epoch: u32 },
    #[error("wrapping: {0}")]
    Seal(chipledger_device::seal::SealError),
}

/// Wraps each of `grants` for `recipient` — exactly the epochs `release` made final, for the
/// recipient whose hash it records; a fresh ephemeral key (OS CSPRNG) per wrap.
pub fn wrap_released(
    release: &FinalRelease,
    recipient: &p256::PublicKey,
    grants: &[EpochGrant],
) -> Result<Vec<WrappedKeyJson>, WrapError> {
    let r = &release.release;
    if recipient_digest(recipient) != r.recipient {
        return Err(WrapError::WrongRecipient);
    }
    let epochs: Vec<u32> = grants.iter().map(|g| g.epoch).collect();
    for g in grants {
        if g.device != r.device || !r.epochs.contains(&g.epoch) {
            return Err(WrapError::NotReleased {
                device: g.device.to_string(),
                epoch: g.epoch,
            });
        }
    }
    if let Some(&missing) = r.epochs.iter().find(|e| !epochs.contains(e)) {
        return Err(WrapError::NotReleased {
            device: r.device.to_string(),
            epoch: missing,
        });
    }
    grants
        .iter()
        .map(|g| {
            let ephemeral = fresh_p256_secret().to_nonzero_scalar();
            let wrap = wrap_epoch_key_for(recipient, g, &ephemeral).map_err(WrapError::Seal)?;
            Ok(WrappedKeyJson {
                epoch: g.epoch,
                started_ms: g.started_ms,
                wrap: hex::encode(wrap),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_device::seal::{EpochKey, unwrap_epoch_key};
    use chipledger_types::device_tx::DeviceId;

    fn grant(epoch: u32) -> EpochGrant {
        EpochGrant {
            device: DeviceId([5; 20]),
            epoch,
            started_ms: 1_700_000_000_000 + u64::from(epoch),
            key: EpochKey::from_bytes([epoch as u8; 16]),
        }
    }

    /// A `FinalRelease` as [`Ledger::commit`] would make it (tests only: this module's privacy).
    fn final_release(epochs: Vec<u32>, recipient: &p256::PublicKey) -> FinalRelease {
        FinalRelease {
            tx: TxHash([9; 32]),
            height: 7,
            release: KeyRelease {
                grant: TxHash([8; 32]),
                device: DeviceId([5; 20]),
                epochs,
                recipient: recipient_digest(recipient),
            },
        }
    }

    #[test]
    fn only_the_final_epochs_for_the_final_recipient_are_wrapped() {
        let grantee = fresh_p256_secret();
        let other = fresh_p256_secret();
        let release = final_release(vec![1, 2], &grantee.public_key());
        let wraps = wrap_released(&release, &grantee.public_key(), &[grant(1), grant(2)]).unwrap();
        for (w, epoch) in wraps.iter().zip([1, 2]) {
            let opened = unwrap_epoch_key(&hex::decode(&w.wrap).unwrap(), &grantee).unwrap();
            assert_eq!(opened, grant(epoch));
            assert_eq!((w.epoch, w.started_ms), (epoch, grant(epoch).started_ms));
        }
        assert!(matches!(
            wrap_released(&release, &other.public_key(), &[grant(1), grant(2)]),
            Err(WrapError::WrongRecipient)
        ));
        let refused: [&[EpochGrant]; 3] = [&[grant(1)], &[grant(1), grant(2), grant(3)], &[grant(1), grant(3)]];
        for grants in refused {
            assert!(matches!(
                wrap_released(&release, &grantee.public_key(), grants),
                Err(WrapError::NotReleased { .. })
            ));
        }
        let mut elsewhere = grant(1);
        elsewhere.device = DeviceId([6; 20]);
        assert!(matches!(
            wrap_released(&release, &grantee.public_key(), &[elsewhere, grant(2)]),
            Err(WrapError::NotReleased { .. })
        ));
    }
}
