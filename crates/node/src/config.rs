//! Node configuration on disk, `node init` (keys + genesis for N organisations) and `node run`.
//!
//! Layout written by [`init`] (each validator directory is self-contained, so it can be copied
//! to its own machine):
//! ```text
//! OUT/genesis.json                 the network's genesis (also copied into each node dir)
//! OUT/orgs/<org>.key               each organisation's transaction-signing key
//! OUT/<validator>/node.toml        listen addresses, name
//! OUT/<validator>/genesis.json
//! OUT/<validator>/keys/consensus.key, note.key   the validator's keys
//! OUT/<validator>/data/            redb ledger + consensus storage (created on first run)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::{PublicKey, SigningKey};
use chipledger_types::tx::{OrgSpec, Role};
use serde::{Deserialize, Serialize};

/// A key file: `{"kind": "ed25519"|"p256", "secret": hex, "public": "<kind>:<hex>"}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct KeyFile {
    pub kind: String,
    pub secret: String,
    pub public: String,
}

impl KeyFile {
    pub fn of(key: &SigningKey) -> Self {
        let kind = match key {
            SigningKey::Ed25519(_) => "ed25519",
            SigningKey::P256(_) => "p256",
        };
        KeyFile {
            kind: kind.into(),
            secret: hex::encode(key.secret_bytes()),
            public: key.public_key().to_string(),
        }
    }

    pub fn signing_key(&self) -> Result<SigningKey> {
        let secret: [u8; 32] = hex::decode(&self.secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("secret must be 64 hex characters")?;
        let key = match self.kind.as_str() {
            "ed25519" => SigningKey::ed25519_from_seed(&secret),
            "p256" => SigningKey::p256_from_bytes(&secret).map_err(|e| anyhow::anyhow!("{e}"))?,
            other => bail!("unknown key kind '{other}' (expected ed25519 or p256)"),
        };
        if key.public_key().to_string() != self.public {
            bail!("key file's public key does not match its secret");
        }
        Ok(key)
    }

    pub fn read(path: &Path) -> Result<SigningKey> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading key file {}", path.display()))?;
        let kf: KeyFile =
            serde_json::from_str(&text).with_context(|| format!("parsing key file {}", path.display()))?;
        kf.signing_key().with_context(|| format!("key file {}", path.display()))
    }

    pub fn write(path: &Path, key: &SigningKey) -> Result<()> {
        let text = serde_json::to_string_pretty(&KeyFile::of(key))? + "\n";
        write_private(path, &text)
    }
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Genesis in JSON, the form people edit and review.
#[derive(Debug, Serialize, Deserialize)]
pub struct GenesisFile {
    pub chain_id: String,
    pub timestamp_ms: u64,
    pub policy: PolicyFile,
    pub orgs: Vec<OrgFile>,
    pub validators: Vec<ValidatorFile>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PolicyFile {
    pub governance_threshold: u32,
    pub proposal_ttl_blocks: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OrgFile {
    pub name: String,
    pub roles: Vec<String>,
    pub keys: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ValidatorFile {
    pub name: String,
    pub org: String,
    /// Hex ed25519 consensus public key.
    pub consensus_key: String,
    /// `ed25519:<hex>` checkpoint-cosigning key.
    pub note_key: String,
    pub p2p_address: String,
    pub api_url: String,
}

impl GenesisFile {
    pub fn to_genesis(&self) -> Result<Genesis> {
        let orgs = self
            .orgs
            .iter()
            .map(|o| {
                Ok(OrgSpec {
                    name: o.name.clone(),
                    roles: o
                        .roles
                        .iter()
                        .map(|r| Role::from_name(r).with_context(|| format!("unknown role '{r}'")))
                        .collect::<Result<_>>()?,
                    keys: o
                        .keys
                        .iter()
                        .map(|k| {
                            k.parse::<PublicKey>()
                                .map_err(|e| anyhow::anyhow!("org {}: key {k}: {e}", o.name))
                        })
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let validators = self
            .validators
            .iter()
            .map(|v| {
                let ck: [u8; 32] = hex::decode(&v.consensus_key)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .with_context(|| format!("validator {}: consensus_key must be 64 hex characters", v.name))?;
                Ok(ValidatorSpec {
                    name: v.name.clone(),
                    org: v.org.clone(),
                    consensus_key: ck,
                    note_key: v
                        .note_key
                        .parse()
                        .map_err(|e| anyhow::anyhow!("validator {}: note_key: {e}", v.name))?,
                    p2p_address: v.p2p_address.clone(),
                    api_url: v.api_url.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let g = Genesis {
            chain_id: self.chain_id.clone(),
            timestamp_ms: self.timestamp_ms,
            orgs,
            validators,
            policy: Policy {
                governance_threshold: self.policy.governance_threshold,
                proposal_ttl_blocks: self.policy.proposal_ttl_blocks,
            },
        };
        g.validate().map_err(|e| anyhow::anyhow!("genesis is invalid: {e}"))?;
        Ok(g)
    }

    pub fn read(path: &Path) -> Result<Genesis> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let f: GenesisFile = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        f.to_genesis()
    }
}

/// `node.toml`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NodeFile {
    /// This validator's name in genesis.
    pub name: String,
    /// HTTP API listen address.
    pub api_listen: SocketAddr,
    /// p2p listen address.
    pub p2p_listen: SocketAddr,
    /// Accept peers on loopback/private addresses (local networks, demos, tests).
    #[serde(default)]
    pub allow_private_ips: bool,
    /// Per-client (source address) rate limit of the HTTP API; defaults far above what one
    /// honest client sends (`http_guard::DEFAULT_REQUESTS_PER_MIN`, `DEFAULT_BURST`).
    #[serde(default)]
    pub rate_limit: crate::http_guard::RateLimitConfig,
}

/// Options of `node init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub out: PathBuf,
    pub chain_id: String,
    /// (organisation name, role) pairs; each runs one validator.
    pub orgs: Vec<(String, Role)>,
    /// One host per validator (the same host for all on one machine).
    pub hosts: Vec<String>,
    pub base_port: u16,
    pub governance_threshold: Option<u32>,
    pub timestamp_ms: u64,
}

/// The default organisations of a demo network.
pub fn default_orgs() -> Vec<(String, Role)> {
    vec![
        ("maker".into(), Role::Manufacturer),
        ("city".into(), Role::Owner),
        ("vendor".into(), Role::Publisher),
        ("audit".into(), Role::Auditor),
    ]
}

/// Port layout: API at base+i, p2p at base+100+i.
pub fn api_port(base: u16, i: usize) -> u16 {
    base + i as u16
}
pub fn p2p_port(base: u16, i: usize) -> u16 {
    base + 100 + i as u16
}

/// Generate keys and genesis for one validator per organisation. Refuses to overwrite.
pub fn init(opts: &InitOptions) -> Result<Genesis> {
    if opts.out.join("genesis.json").exists() {
        bail!(
            "{} already holds a network (genesis.json exists); choose another --out",
            opts.out.display()
        );
    }
    let n = opts.orgs.len();
    if n == 0 || (opts.hosts.len() != 1 && opts.hosts.len() != n) {
        bail!("give one host for all validators or one per organisation ({n})");
    }
    let mut rng = rand::rng();
    let mut seed = || {
        let mut s = [0u8; 32];
        rand::RngExt::fill(&mut rng, &mut s);
        s
    };
    let (mut orgs, mut validators) = (Vec::new(), Vec::new());
    for (i, (org, role)) in opts.orgs.iter().enumerate() {
        let host = &opts.hosts[if opts.hosts.len() == 1 { 0 } else { i }];
        let org_key = SigningKey::ed25519_from_seed(&seed());
        let consensus = seed();
        let note = SigningKey::ed25519_from_seed(&seed());
        let name = format!("v-{org}");
        let dir = opts.out.join(&name);
        KeyFile::write(&opts.out.join("orgs").join(format!("{org}.key")), &org_key)?;
        KeyFile::write(&dir.join("keys/org.key"), &org_key)?;
        KeyFile::write(
            &dir.join("keys/consensus.key"),
            &SigningKey::ed25519_from_seed(&consensus),
        )?;
        KeyFile::write(&dir.join("keys/note.key"), &note)?;
        let node = NodeFile {
            name: name.clone(),
            api_listen: format!("0.0.0.0:{}", api_port(opts.base_port, i)).parse()?,
            p2p_listen: format!("0.0.0.0:{}", p2p_port(opts.base_port, i)).parse()?,
            allow_private_ips: true,
            rate_limit: Default::default(),
        };
        std::fs::write(dir.join("node.toml"), toml::to_string(&node)?)?;
        orgs.push(OrgFile {
            name: org.clone(),
            roles: vec![role.name().into()],
            keys: vec![org_key.public_key().to_string()],
        });
        validators.push(ValidatorFile {
            name,
            org: org.clone(),
            consensus_key: hex::encode(ed25519_public(&consensus)),
            note_key: note.public_key().to_string(),
            p2p_address: format!("{host}:{}", p2p_port(opts.base_port, i)),
            api_url: format!("http://{host}:{}", api_port(opts.base_port, i)),
        });
    }
    let threshold = opts
        .governance_threshold
        .unwrap_or((2 * n as u32) / 3 + 1)
        .min(n as u32);
    let file = GenesisFile {
        chain_id: opts.chain_id.clone(),
        timestamp_ms: opts.timestamp_ms,
        policy: PolicyFile {
            governance_threshold: threshold,
            proposal_ttl_blocks: 100_000,
        },
        orgs,
        validators,
    };
    let genesis = file.to_genesis()?;
    let text = serde_json::to_string_pretty(&file)? + "\n";
    std::fs::write(opts.out.join("genesis.json"), &text)?;
    for v in &file.validators {
        std::fs::write(opts.out.join(&v.name).join("genesis.json"), &text)?;
    }
    Ok(genesis)
}

fn ed25519_public(seed: &[u8; 32]) -> [u8; 32] {
    match SigningKey::ed25519_from_seed(seed).public_key() {
        PublicKey::Ed25519(k) => k,
        PublicKey::P256(_) => unreachable!("ed25519 key"),
    }
}

/// Everything `node run` loads from a node directory.
pub struct LoadedNode {
    pub dir: PathBuf,
    pub node: NodeFile,
    pub genesis: Genesis,
    pub index: usize,
    pub consensus_seed: [u8; 32],
    pub note_seeds: Vec<[u8; 32]>,
}

/// Load and cross-check a node directory.
pub fn load(dir: &Path) -> Result<LoadedNode> {
    let node: NodeFile = toml::from_str(
        &std::fs::read_to_string(dir.join("node.toml"))
            .with_context(|| format!("reading {}/node.toml", dir.display()))?,
    )
    .with_context(|| format!("parsing {}/node.toml", dir.display()))?;
    node.rate_limit
        .validate()
        .with_context(|| format!("{}/node.toml", dir.display()))?;
    let genesis = GenesisFile::read(&dir.join("genesis.json"))?;
    let index = genesis
        .validators
        .iter()
        .position(|v| v.name == node.name)
        .with_context(|| format!("validator '{}' is not in genesis", node.name))?;
    let consensus_seed = KeyFile::read(&dir.join("keys/consensus.key"))?.secret_bytes();
    if ed25519_public(&consensus_seed) != genesis.validators[index].consensus_key {
        bail!("keys/consensus.key does not match validator '{}' in genesis", node.name);
    }
    // note.key plus any staged rotation keys (note-*.key).
    let mut note_seeds = Vec::new();
    for entry in std::fs::read_dir(dir.join("keys"))? {
        let p = entry?.path();
        let fname = p.file_name().and_then(|f| f.to_str()).unwrap_or_default();
        if fname.starts_with("note") && fname.ends_with(".key") {
            note_seeds.push(KeyFile::read(&p)?.secret_bytes());
        }
    }
    Ok(LoadedNode {
        dir: dir.to_path_buf(),
        node,
        genesis,
        index,
        consensus_seed,
        note_seeds,
    })
}
