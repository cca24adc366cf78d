//! The production wiring on commonware's **deterministic** runtime and **simulated** p2p network,
//! for seeded, replayable simulation tests: every validator runs the same [`engine::run`] as in
//! production, only the runtime (virtual clock, seeded scheduler, in-memory storage) and the
//! network (per-link latency, jitter and loss; links can be cut and restored) differ.
//!
//! ```text
//! deterministic::Runner::new(deterministic::Config::new().with_seed(seed)).start(|context| async move {
//!     let net = SimNetwork::new(&context, SimConfig::new(4)).await;
//!     let validators: Vec<_> = ... net.start_validator(i, ledger).await ...;
//!     net.partition(&[&[0, 1], &[2, 3]]).await;   // cut links across groups
//!     net.heal().await;                            // all links back with the default link
//! });
//! ```

use super::{
    EngineHandle, Ledger,
    config::{EngineSettings, PARTITION_PREFIX, Timeouts, private_key, public_key_bytes},
    engine::{self, Channels},
};
use commonware_codec::{DecodeExt, Encode};
use commonware_consensus::simplex::{
    scheme::ed25519::Scheme,
    types::{Finalize, Notarize, Proposal, Vote},
};
use commonware_cryptography::{Hasher, Sha256, Signer, ed25519::PublicKey, sha256::Digest};
use commonware_p2p::{
    CheckedSender, LimitedSender, Recipients,
    simulated::{self, Link, Network, Oracle},
};
use commonware_runtime::{Handle, IoBuf, IoBufs, Quota, Spawner, Supervisor};
use commonware_utils::{NZUsize, Probability};
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::{Duration, SystemTime};
use tracing::warn;

pub use commonware_runtime::{Clock, Runner, deterministic};

/// Behaviour of one directed simulated link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimLink {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    /// Probability that a message is delivered (1.0 = lossless).
    pub success_rate: f64,
}

impl SimLink {
    fn to_link(self) -> Link {
        Link {
            latency: Duration::from_millis(self.latency_ms),
            jitter: Duration::from_millis(self.jitter_ms),
            success_rate: Probability::from_f64(self.success_rate).expect("success_rate must be within 0.0..=1.0"),
        }
    }
}

/// Shape of a simulated network of validators.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub validators: usize,
    /// Link used between every pair of validators (and by [`SimNetwork::heal`]).
    pub link: SimLink,
    pub timeouts: Timeouts,
    pub namespace: Vec<u8>,
    pub max_block_bytes: usize,
}

impl SimConfig {
    /// `validators` validators on a lossless 50 ms ± 10 ms network with default timeouts.
    pub fn new(validators: usize) -> Self {
        Self {
            validators,
            link: SimLink {
                latency_ms: 50,
                jitter_ms: 10,
                success_rate: 1.0,
            },
            timeouts: Timeouts::default(),
            namespace: b"chipledger/consensus/sim".to_vec(),
            max_block_bytes: 64 * 1024,
        }
    }
}

/// A simulated network; validators are identified by index `0..validators`.
pub struct SimNetwork {
    context: deterministic::Context,
    oracle: Oracle<PublicKey, deterministic::Context>,
    config: SimConfig,
    seeds: Vec<[u8; 32]>,
    keys: Vec<PublicKey>,
}

/// A running simulated validator.
pub struct SimValidator {
    handle: EngineHandle,
    task: Handle<()>,
}

impl SimValidator {
    /// The validator's engine handle (gossip).
    pub fn handle(&self) -> &EngineHandle {
        &self.handle
    }

    /// Crashes the validator: aborts every task of its engine (its storage is kept, so
    /// [`SimNetwork::start_validator`] with the same index restarts it from disk).
    pub async fn crash(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// Deterministic 32-byte private key seed of simulated validator `index`.
pub fn validator_seed(index: usize) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(index as u64 + 1).to_be_bytes());
    seed[8..25].copy_from_slice(b"chipledger-simkey");
    seed
}

/// The 32-byte public keys of simulated validators `0..validators` (as [`SimNetwork::public_keys`]).
pub fn public_keys(validators: usize) -> Vec<[u8; 32]> {
    (0..validators)
        .map(|i| public_key_bytes(&private_key(&validator_seed(i)).public_key()))
        .collect()
}

impl SimNetwork {
    /// Starts the simulated network with every validator linked to every other.
    pub async fn new(context: &deterministic::Context, config: SimConfig) -> Self {
        let seeds: Vec<[u8; 32]> = (0..config.validators).map(validator_seed).collect();
        let keys: Vec<PublicKey> = seeds.iter().map(|s| private_key(s).public_key()).collect();
        let max_size = engine::max_message_bytes(config.validators, config.max_block_bytes);
        let (network, oracle) = Network::new_with_peers(
            context.child("network"),
            simulated::Config {
                max_size,
                max_peers_per_set: NZUsize!(config.validators.max(1)),
                disconnect_on_block: false,
                tracked_peer_sets: NZUsize!(1),
            },
            keys.clone(),
        )
        .await;
        network.start();
        let net = Self {
            context: context.child("validators"),
            oracle,
            config,
            seeds,
            keys,
        };
        net.heal().await;
        net
    }

    /// The validators' 32-byte public keys, by index.
    pub fn public_keys(&self) -> Vec<[u8; 32]> {
        self.keys.iter().map(public_key_bytes).collect()
    }

    /// Starts (or restarts, after [`SimValidator::crash`]) validator `index` over `ledger`.
    pub async fn start_validator<L: Ledger>(&self, index: usize, ledger: L) -> SimValidator {
        self.start_validator_with(index, ledger, ValidatorFaults::default())
            .await
    }

    /// [`Self::start_validator`], with `faults` applied to everything the validator sends.
    pub async fn start_validator_with<L: Ledger>(
        &self,
        index: usize,
        ledger: L,
        faults: ValidatorFaults,
    ) -> SimValidator {
        let settings = EngineSettings::new(
            &self.seeds[index],
            &self.public_keys(),
            &self.config.namespace,
            format!("{PARTITION_PREFIX}-sim{index}"),
            self.config.timeouts,
            self.config.max_block_bytes,
        )
        .expect("simulation config is valid");
        let equivocator = Arc::new(
            Scheme::signer(
                &settings.namespace,
                settings.participants.clone(),
                settings.signer.clone(),
            )
            .expect("simulation config is valid"),
        );
        let raw = self.register(index).await;
        let wrap = |(sender, receiver), scheme| (FaultySender::new(sender, faults.clone(), scheme), receiver);
        let channels = Channels {
            votes: wrap(raw.votes, Some(equivocator)),
            certificates: wrap(raw.certificates, None),
            resolver: wrap(raw.resolver, None),
            backfill: wrap(raw.backfill, None),
            blocks: wrap(raw.blocks, None),
            gossip: wrap(raw.gossip, None),
        };
        let (handle, outbox) = EngineHandle::new(&self.keys[index]);
        let control = self.oracle.control(self.keys[index].clone());
        let peers = self.oracle.manager();
        let task = self
            .context
            .child("validator")
            .with_attribute("index", index)
            .spawn(move |context| async move {
                if let Err(err) = engine::run(context, settings, ledger, control, peers, channels, outbox).await {
                    warn!(%err, "simulated validator failed to start");
                }
            });
        SimValidator { handle, task }
    }

    async fn register(
        &self,
        index: usize,
    ) -> Channels<simulated::Sender<PublicKey, deterministic::Context>, simulated::Receiver<PublicKey>> {
        let control = self.oracle.control(self.keys[index].clone());
        let register = |channel, quota: Quota| {
            let control = control.clone();
            async move {
                control
                    .register(channel, quota)
                    .await
                    .expect("simulated network is running")
            }
        };
        Channels {
            votes: register(engine::CHANNEL_VOTES, engine::QUOTA_CONSENSUS).await,
            certificates: register(engine::CHANNEL_CERTIFICATES, engine::QUOTA_CONSENSUS).await,
            resolver: register(engine::CHANNEL_RESOLVER, engine::QUOTA_FETCH).await,
            backfill: register(engine::CHANNEL_BACKFILL, engine::QUOTA_FETCH).await,
            blocks: register(engine::CHANNEL_BLOCKS, engine::QUOTA_FETCH).await,
            gossip: register(engine::CHANNEL_GOSSIP, engine::QUOTA_GOSSIP).await,
        }
    }

    /// Sets the directed link `from -> to`: `Some(link)` (re)creates it, `None` cuts it.
    pub async fn set_link(&self, from: usize, to: usize, link: Option<SimLink>) {
        let (a, b) = (self.keys[from].clone(), self.keys[to].clone());
        // Removing a link that does not exist is not an error worth reporting here.
        let _ = self.oracle.remove_link(a.clone(), b.clone()).await;
        if let Some(link) = link {
            self.oracle
                .add_link(a, b, link.to_link())
                .await
                .expect("adding a simulated link");
        }
    }

    /// Cuts every link between validators in different `groups` (links within a group stay).
    /// Validators in no group are isolated.
    pub async fn partition(&self, groups: &[&[usize]]) {
        let group_of = |i: usize| groups.iter().position(|group| group.contains(&i));
        for from in 0..self.keys.len() {
            for to in 0..self.keys.len() {
                if from == to {
                    continue;
                }
                let same = group_of(from).is_some() && group_of(from) == group_of(to);
                let link = same.then_some(self.config.link);
                self.set_link(from, to, link).await;
            }
        }
    }

    /// Restores every link with the configured default link.
    pub async fn heal(&self) {
        let all: Vec<usize> = (0..self.keys.len()).collect();
        self.partition(&[&all]).await;
    }
}

/// Faults applied to everything one simulated validator sends (shared by its channels).
#[derive(Clone, Debug, Default)]
pub struct ValidatorFaults {
    /// Probability (percent) that a message is sent twice (the network then delays, loses or
    /// delivers each copy independently).
    pub duplicate_pct: u64,
    /// While set, every notarize or finalize vote the validator sends is followed by a second,
    /// validly signed vote for the same round on a random digest: an equivocating validator.
    pub equivocate: Arc<AtomicBool>,
    /// Seed of the duplication and equivocation choices.
    pub seed: u64,
    /// Messages duplicated and conflicting votes sent so far.
    pub duplicated: Arc<AtomicU64>,
    pub equivocations: Arc<AtomicU64>,
}

impl ValidatorFaults {
    /// The next pseudo-random number of this validator's fault stream (splitmix64).
    fn next(&self) -> u64 {
        let state = self.seed.wrapping_add(self.duplicated.load(Ordering::Relaxed));
        let mut x = state.wrapping_add(self.equivocations.load(Ordering::Relaxed).rotate_left(32));
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
}

type SimSender = simulated::Sender<PublicKey, deterministic::Context>;

/// A simulated p2p sender with [`ValidatorFaults`]: duplicates messages and, on the vote
/// channel, equivocates. Rate limits are checked once per logical message.
#[derive(Clone)]
struct FaultySender {
    inner: SimSender,
    faults: ValidatorFaults,
    /// Present on the vote channel only: signs the conflicting votes.
    scheme: Option<Arc<Scheme>>,
    /// Counts messages sent, so the duplication stream advances per message.
    sent: Arc<AtomicU64>,
}

impl FaultySender {
    fn new(inner: SimSender, faults: ValidatorFaults, scheme: Option<Arc<Scheme>>) -> Self {
        Self {
            inner,
            faults,
            scheme,
            sent: Arc::default(),
        }
    }

    /// Whether this message is sent twice.
    fn duplicate(&self) -> bool {
        let n = self.sent.fetch_add(1, Ordering::Relaxed);
        let roll = (self.faults.next() ^ n.wrapping_mul(0xA076_1D64_78BD_642F)) % 100;
        roll < self.faults.duplicate_pct
    }

    /// A validly signed vote for the same round and parent as `vote`, on a random digest.
    fn conflicting(&self, vote: &[u8]) -> Option<IoBuf> {
        let scheme: &Scheme = self.scheme.as_deref()?;
        if !self.faults.equivocate.load(Ordering::Relaxed) {
            return None;
        }
        let vote = Vote::<Scheme, Digest>::decode(bytes::Bytes::copy_from_slice(vote)).ok()?;
        let n = self.faults.equivocations.fetch_add(1, Ordering::Relaxed);
        let digest = Sha256::hash(&[&self.faults.next().to_be_bytes(), &n.to_be_bytes()]);
        let conflicting = match vote {
            Vote::Notarize(v) => {
                let proposal = Proposal::new(v.proposal.round, v.proposal.parent, digest);
                Vote::Notarize(Notarize::sign(scheme, proposal)?)
            }
            Vote::Finalize(v) => {
                let proposal = Proposal::new(v.proposal.round, v.proposal.parent, digest);
                Vote::Finalize(Finalize::sign(scheme, proposal)?)
            }
            Vote::Nullify(_) => return None,
        };
        Some(IoBuf::from(conflicting.encode().to_vec()))
    }
}

impl LimitedSender for FaultySender {
    type PublicKey = PublicKey;
    type Checked<'a> = FaultyChecked<'a>;

    fn check(&mut self, recipients: Recipients<PublicKey>) -> Result<FaultyChecked<'_>, SystemTime> {
        let extra = self.clone();
        let checked = self.inner.check(recipients.clone())?;
        Ok(FaultyChecked {
            checked,
            extra,
            recipients,
        })
    }
}

struct FaultyChecked<'a> {
    checked: <SimSender as LimitedSender>::Checked<'a>,
    /// Sends the extra copies (duplicates, conflicting votes) to the same recipients.
    extra: FaultySender,
    recipients: Recipients<PublicKey>,
}

impl CheckedSender for FaultyChecked<'_> {
    type PublicKey = PublicKey;

    fn recipients(&self) -> Vec<PublicKey> {
        self.checked.recipients()
    }

    fn send(
        self,
        message: impl Into<IoBufs> + Send,
        priority: bool,
    ) -> commonware_actor::Unreliable<commonware_actor::Feedback> {
        let message: IoBuf = message.into().coalesce();
        let mut extra = self.extra;
        let mut copies = Vec::new();
        if extra.duplicate() {
            extra.faults.duplicated.fetch_add(1, Ordering::Relaxed);
            copies.push(message.clone());
        }
        copies.extend(extra.conflicting(message.as_ref()));
        let feedback = self.checked.send(message, priority);
        for copy in copies {
            if let Ok(checked) = extra.inner.check(self.recipients.clone()) {
                let _ = checked.send(copy, priority);
            }
        }
        feedback
    }
}
