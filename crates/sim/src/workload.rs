//! The seeded workload: signed statements from every organisation, one governance proposal
//! carried through to execution, the firmware and data-access [`Story`], and byzantine clients
//! (replays, the same transaction sent to several validators, forks with the same sequence
//! number, a flood, and the story's forbidden installs and key releases).

use crate::faults::mix;
use crate::invariants::Invariant;
use crate::story::{CHIPS, Signer, Step, Story};
use crate::world::{NEW_ORG, ORGS, World, org_key, sign};
use chipledger_node::executor::{SubmitError, TxStatus};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, TxHash};
use std::collections::BTreeMap;

/// Most statements submitted per workload tick.
const STATEMENTS_PER_TICK_MAX: u64 = 3;
/// One tick in this many also runs a byzantine client action.
const BYZANTINE_CLIENT_EVERY: u64 = 4;

/// Where the governance proposal stands.
#[derive(Debug)]
pub enum Gov {
    NotStarted,
    /// Submitted; approvals wait until the proposal is final where they are submitted.
    Proposed {
        id: TxHash,
    },
    /// Both approvals submitted; whichever is applied second executes `AddOrg`.
    Approved {
        approvals: [TxHash; 2],
    },
    /// `buyer` exists and submits statements too.
    Executed {
        approvals: [TxHash; 2],
    },
}

/// What the byzantine clients did (for the summary).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientStats {
    pub replays: u64,
    /// Replays a validator accepted again (harmless only if never applied twice).
    pub replays_readmitted: u64,
    pub multi_submits: u64,
    pub forks: u64,
    /// Forks of which neither side became final.
    pub forks_dropped: u64,
    pub flooded: u64,
    /// Story attacks refused at submission: rollouts of an unpublished release, installs
    /// under an unknown or unapproved rollout, key releases with no grant or for a device the
    /// grant does not cover.
    pub bad_rollouts: u64,
    pub bad_installs: u64,
    pub bad_key_releases: u64,
    /// Story attacks a validator admitted (each must then never become final).
    pub bad_admitted: u64,
}

/// A forbidden transaction a validator admitted: it must never become final.
#[derive(Clone, Debug)]
pub struct Admitted {
    pub hash: TxHash,
    pub what: String,
    pub invariant: Invariant,
}

pub struct Workload {
    rng: u64,
    pub next_seq: BTreeMap<String, u64>,
    /// Every transaction `submit` accepted: hash → (what, validator, bytes).
    pub accepted: BTreeMap<TxHash, (String, usize, Vec<u8>)>,
    /// Forks: the accepted ones of two transactions with the same organisation and sequence
    /// number; at most one of each fork may end up final.
    pub forks: Vec<Vec<TxHash>>,
    pub gov: Gov,
    pub story: Story,
    /// Each organisation's last transaction `submit` accepted.
    last: BTreeMap<String, TxHash>,
    /// Story attacks a validator admitted.
    pub admitted: Vec<Admitted>,
    pub stats: ClientStats,
}

impl Workload {
    pub fn new(seed: u64) -> Self {
        let rng = mix(seed ^ 0x5EED_10AD);
        Self {
            rng,
            next_seq: BTreeMap::new(),
            accepted: BTreeMap::new(),
            forks: Vec::new(),
            gov: Gov::NotStarted,
            story: Story::new(1 + (mix(rng) % CHIPS as u64) as usize),
            last: BTreeMap::new(),
            admitted: Vec::new(),
            stats: ClientStats::default(),
        }
    }

    fn next(&mut self, bound: u64) -> u64 {
        self.rng = mix(self.rng);
        self.rng % bound
    }

    fn statement(&mut self) -> Payload {
        Payload::Statement {
            topic: "sim".into(),
            body: self.next(u64::MAX).to_be_bytes().to_vec(),
        }
    }

    /// Signs `payload` as `org`'s next transaction and submits it to validator `to`; every
    /// transaction of the honest workload must be accepted.
    fn submit(&mut self, world: &World, to: usize, org: &str, payload: Payload) -> Result<TxHash, String> {
        let what = format!(
            "{org}#{} {}",
            self.next_seq.get(org).copied().unwrap_or(0) + 1,
            payload.kind()
        );
        self.submit_checked(world, to, org, payload)
            .map_err(|e| format!("validator {to} refused {what}: {e}"))
    }

    /// [`Workload::submit`] returning the validator's typed refusal (which uses no sequence
    /// number). An accepted transaction must become final like every other.
    pub(crate) fn submit_checked(
        &mut self,
        world: &World,
        to: usize,
        org: &str,
        payload: Payload,
    ) -> Result<TxHash, SubmitError> {
        let seq = self.next_seq.get(org).copied().unwrap_or(0) + 1;
        let what = format!("{org}#{seq} {}", payload.kind());
        let bytes = sign(org, seq, payload);
        let hash = world.exec(to).submit(bytes.clone(), true)?;
        self.next_seq.insert(org.into(), seq);
        self.last.insert(org.into(), hash);
        self.accepted.insert(hash, (what, to, bytes));
        Ok(hash)
    }

    /// Whether every transaction `org` submitted is final at validator `to`, so its next one is
    /// checked against the rules on submission (not parked behind a sequence gap).
    pub(crate) fn quiet(&self, world: &World, to: usize, org: &str) -> bool {
        self.last.get(org).is_none_or(|h| is_final(world, to, h))
    }

    /// One step: a few statements to random validators among `targets`, sometimes a
    /// byzantine client action, the governance proposal advanced by one stage, and every story
    /// step that is ready.
    pub fn tick(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        if targets.is_empty() {
            return Ok(());
        }
        let mut orgs: Vec<&str> = ORGS.iter().map(|(o, _)| *o).collect();
        let buyer_at: Vec<usize> = match &self.gov {
            Gov::Executed { approvals } => targets
                .iter()
                .copied()
                .filter(|&t| all_final(world, t, approvals))
                .collect(),
            _ => Vec::new(),
        };
        if !buyer_at.is_empty() {
            orgs.push(NEW_ORG);
        }
        for _ in 0..self.next(STATEMENTS_PER_TICK_MAX + 1) {
            let org = orgs[self.next(orgs.len() as u64) as usize];
            let eligible = if org == NEW_ORG { &buyer_at[..] } else { targets };
            let to = eligible[self.next(eligible.len() as u64) as usize];
            let payload = self.statement();
            self.submit(world, to, org, payload)?;
        }
        if self.next(BYZANTINE_CLIENT_EVERY) == 0 {
            self.byzantine_client(world, targets)?;
        }
        self.advance_governance(world, targets)?;
        self.advance_story(world, targets)
    }

    /// One byzantine client action, chosen by the seed.
    fn byzantine_client(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        let to = targets[self.next(targets.len() as u64) as usize];
        match self.next(3) {
            0 => self.replay(world, to),
            1 => self.multi_submit(world, targets),
            _ => self.fork(world, targets),
        }
    }

    /// Re-sends an already accepted transaction (possibly final) to a validator.
    fn replay(&mut self, world: &World, to: usize) -> Result<(), String> {
        if self.accepted.is_empty() {
            return Ok(());
        }
        let pick = self.next(self.accepted.len() as u64) as usize;
        let bytes = self
            .accepted
            .values()
            .nth(pick)
            .map(|(_, _, b)| b.clone())
            .unwrap_or_default();
        self.stats.replays += 1;
        if world.exec(to).submit(bytes, true).is_ok() {
            self.stats.replays_readmitted += 1;
        }
        Ok(())
    }

    /// Submits one new statement to every target (a client retrying everywhere).
    fn multi_submit(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        let org = ORGS[self.next(ORGS.len() as u64) as usize].0;
        let payload = self.statement();
        let hash = self.submit(world, targets[0], org, payload)?;
        let bytes = self.accepted[&hash].2.clone();
        for &t in &targets[1..] {
            // Either accepted (its own copy) or a duplicate of the gossiped one: both fine.
            let _ = world.exec(t).submit(bytes.clone(), true);
        }
        self.stats.multi_submits += 1;
        Ok(())
    }

    /// Two different statements with the same organisation and sequence number, sent to two
    /// different validators. Both may be accepted; at most one may ever be applied.
    fn fork(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        if targets.len() < 2 {
            return Ok(());
        }
        let org = "audit";
        let seq = self.next_seq.get(org).copied().unwrap_or(0) + 1;
        let first = targets[self.next(targets.len() as u64) as usize];
        let second = targets.iter().copied().find(|&t| t != first).unwrap_or(first);
        let a = sign(org, seq, self.statement());
        let b = sign(org, seq, self.statement());
        let (ra, rb) = (world.exec(first).submit(a, true), world.exec(second).submit(b, true));
        let accepted: Vec<TxHash> = [ra, rb].into_iter().flatten().collect();
        if !accepted.is_empty() {
            self.forks.push(accepted);
        }
        // The next honest transaction of `org` uses seq + 1, whichever fork wins.
        self.next_seq.insert(org.into(), seq);
        self.stats.forks += 1;
        Ok(())
    }

    /// A flood: `count` statements of one organisation submitted to one validator at once.
    pub fn flood(&mut self, world: &World, to: usize, count: u64) -> Result<(), String> {
        for _ in 0..count {
            let payload = self.statement();
            self.submit(world, to, "maker", payload)?;
        }
        self.stats.flooded += count;
        Ok(())
    }

    fn advance_governance(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        let to = targets[self.next(targets.len() as u64) as usize];
        match self.gov {
            Gov::NotStarted => {
                let spec = OrgSpec {
                    name: NEW_ORG.into(),
                    roles: vec![Role::Consumer],
                    keys: vec![org_key(NEW_ORG).public_key()],
                };
                let id = self.submit(world, to, "city", Payload::Propose(GovAction::AddOrg(spec)))?;
                self.gov = Gov::Proposed { id };
            }
            Gov::Proposed { id } if is_final(world, to, &id) => {
                let first = self.submit(world, to, "maker", Payload::Approve { proposal: id })?;
                let last = self.submit(world, to, "vendor", Payload::Approve { proposal: id })?;
                self.gov = Gov::Approved {
                    approvals: [first, last],
                };
            }
            Gov::Approved { approvals } if all_final(world, to, &approvals) => {
                self.gov = Gov::Executed { approvals };
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether governance finished and `buyer` has submitted at least one statement.
    pub fn governance_done(&self) -> bool {
        matches!(self.gov, Gov::Executed { .. }) && self.next_seq.contains_key(NEW_ORG)
    }

    /// Whether `buyer` exists in validator `to`'s finalized state.
    fn buyer_at(&self, world: &World, to: usize) -> bool {
        matches!(&self.gov, Gov::Executed { approvals } if all_final(world, to, approvals))
    }

    /// Runs every story step whose prerequisites are final at one validator among `targets`.
    fn advance_story(&mut self, world: &World, targets: &[usize]) -> Result<(), String> {
        let to = targets[self.next(targets.len() as u64) as usize];
        let buyer = self.buyer_at(world, to);
        let ready = self.story.ready(&|h| is_final(world, to, h), buyer);
        let height = world.height(to);
        for step in ready {
            if step.is_attack() {
                self.attack(world, to, step, height)?;
            } else {
                self.honest_step(world, to, step, height)?;
            }
        }
        Ok(())
    }

    /// The submitter of `step` at validator `to`, if it has one: the first of its candidate
    /// organisations that is quiet there. `Err(())` while none is (the step waits).
    fn submitter(&self, world: &World, to: usize, step: Step) -> Result<Option<&'static str>, ()> {
        match Story::submitters(step) {
            None => Ok(None),
            Some(candidates) => match candidates.iter().find(|o| self.quiet(world, to, o)) {
                Some(&org) => Ok(Some(org)),
                None => Err(()),
            },
        }
    }

    /// Submits an honest step's transactions (all must be accepted). A step with a submitter
    /// waits for a tick where one is quiet.
    fn honest_step(&mut self, world: &World, to: usize, step: Step, height: u64) -> Result<(), String> {
        let Ok(submitter) = self.submitter(world, to, step) else {
            return Ok(());
        };
        let txs = self.story.honest(step, height);
        let mut hashes = Vec::with_capacity(txs.len());
        for (signer, payload) in txs {
            let org = match signer {
                Signer::Org(org) => org,
                Signer::Submitter => submitter.ok_or_else(|| format!("story step {step:?} has no submitter"))?,
            };
            hashes.push(self.submit(world, to, org, payload)?);
        }
        self.story.record(step, hashes);
        Ok(())
    }

    /// A story attack: a forbidden transaction, signed with its submitter's next sequence
    /// number while that organisation is quiet (so the validator judges it against the rules).
    /// It must be refused with the expected error; if it is admitted instead, it is recorded
    /// and must never become final (checked at settle).
    fn attack(&mut self, world: &World, to: usize, step: Step, height: u64) -> Result<(), String> {
        let Ok(Some(org)) = self.submitter(world, to, step) else {
            return Ok(());
        };
        let attack = self.story.attack(step, height);
        let seq = self.next_seq.get(org).copied().unwrap_or(0) + 1;
        let what = format!("{org}#{seq} {} ({step:?})", attack.payload.kind());
        let bytes = sign(org, seq, attack.payload);
        let hash = TxHash::of(&bytes);
        match world.exec(to).submit(bytes, true) {
            Ok(_) => {
                self.stats.bad_admitted += 1;
                self.admitted.push(Admitted {
                    hash,
                    what,
                    invariant: attack.invariant,
                });
            }
            Err(e) if e.code() == attack.expect => match step {
                Step::RolloutOfUnpublished => self.stats.bad_rollouts += 1,
                Step::InstallUnknownRollout | Step::InstallUnapproved => self.stats.bad_installs += 1,
                _ => self.stats.bad_key_releases += 1,
            },
            Err(e) => {
                return Err(format!(
                    "validator {to} refused {what} with {} ({e}), not {}",
                    e.code(),
                    attack.expect
                ));
            }
        }
        self.story.record(step, vec![hash]);
        Ok(())
    }

    /// Whether every story step ran.
    pub fn story_done(&self) -> bool {
        self.story.done()
    }
}

pub fn is_final(world: &World, index: usize, hash: &TxHash) -> bool {
    matches!(world.exec(index).tx_status(hash), TxStatus::Final { .. })
}

pub fn all_final(world: &World, index: usize, hashes: &[TxHash]) -> bool {
    hashes.iter().all(|h| is_final(world, index, h))
}
