//! A local network of validator *processes* on loopback: used by `demo`, `bench` and the
//! integration tests. Each validator is a separate `chipledger node run` OS process.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_node::config::{self, InitOptions};
use chipledger_types::genesis::Genesis;

use crate::client::Client;

pub struct LocalNet {
    pub dir: PathBuf,
    pub exe: PathBuf,
    pub genesis: Genesis,
    pub names: Vec<String>,
    pub apis: Vec<String>,
    /// Environment variables every validator process gets besides this process's (e.g. the
    /// explorer tests' `CHIPLEDGER_TEST_HOOKS=1`).
    pub env: Vec<(String, String)>,
    /// Per validator, a command that runs `chipledger node run …` (e.g. `ip netns exec <ns>`
    /// for the chaos test's network namespaces); empty: run the binary directly.
    pub launchers: Vec<Vec<String>>,
    children: Vec<Option<Child>>,
}

impl LocalNet {
    /// Create the network under `dir` unless it exists (data is reused on restart).
    pub fn prepare(dir: &Path, exe: &Path, base_port: u16, chain_id: &str) -> Result<LocalNet> {
        LocalNet::prepare_on(dir, exe, base_port, chain_id, &["127.0.0.1".to_string()])
    }

    /// [`LocalNet::prepare`] with validator `i` on `hosts[i]` (or all on one host): the
    /// addresses genesis gives peers and clients; validators listen on every interface.
    pub fn prepare_on(dir: &Path, exe: &Path, base_port: u16, chain_id: &str, hosts: &[String]) -> Result<LocalNet> {
        let genesis = if dir.join("genesis.json").exists() {
            config::GenesisFile::read(&dir.join("genesis.json"))?
        } else {
            let opts = InitOptions {
                out: dir.to_path_buf(),
                chain_id: chain_id.into(),
                orgs: config::default_orgs(),
                hosts: hosts.to_vec(),
                base_port,
                governance_threshold: None,
                timestamp_ms: chipledger_node::metrics::now_ms(),
            };
            config::init(&opts)?
        };
        let names: Vec<String> = genesis.validators.iter().map(|v| v.name.clone()).collect();
        let apis = genesis.validators.iter().map(|v| v.api_url.clone()).collect();
        let children = names.iter().map(|_| None).collect();
        let launchers = names.iter().map(|_| Vec::new()).collect();
        Ok(LocalNet {
            dir: dir.to_path_buf(),
            exe: exe.to_path_buf(),
            genesis,
            names,
            apis,
            env: Vec::new(),
            launchers,
            children,
        })
    }

    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.join(&self.names[i])
    }

    /// Start validator `i` as a child process (logs to `<node dir>/node.log`).
    pub fn start(&mut self, i: usize) -> Result<()> {
        self.start_with(i, &[])
    }

    /// [`LocalNet::start`] with extra `node run` arguments (e.g. an in-process gateway).
    pub fn start_with(&mut self, i: usize, extra: &[String]) -> Result<()> {
        if self.children[i].is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_dir(i).join("node.log"))?;
        let mut command = match self.launchers[i].split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&self.exe);
                c
            }
            None => Command::new(&self.exe),
        };
        let child = command
            .args(["node", "run", "--config"])
            .arg(self.node_dir(i))
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.exe.display()))?;
        self.children[i] = Some(child);
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<()> {
        (0..self.names.len()).try_for_each(|i| self.start(i))
    }

    /// Start every validator and wait until each API answers.
    pub fn start_all_ready(&mut self, timeout: Duration) -> Result<()> {
        self.start_all()?;
        (0..self.names.len()).try_for_each(|i| self.wait_ready(i, timeout))
    }

    /// Send a signal (`KILL`, `TERM`, `STOP`, `CONT`) to validator `i`.
    pub fn signal(&mut self, i: usize, sig: &str) -> Result<()> {
        let Some(child) = self.children[i].as_mut() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{sig} {} failed", child.id());
        }
        if sig == "KILL" || sig == "TERM" {
            let mut child = self.children[i].take().expect("checked above");
            wait_exit(&mut child, Duration::from_secs(20))?;
        }
        Ok(())
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.children[i].as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Wait until validator `i`'s API answers.
    pub fn wait_ready(&self, i: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        let c = Client::new(&self.apis[i])?;
        while c.status().is_err() {
            if start.elapsed() > timeout {
                bail!(
                    "{} did not answer on {} within {}s; see {}",
                    self.names[i],
                    self.apis[i],
                    timeout.as_secs(),
                    self.node_dir(i).join("node.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Stop every validator gracefully (SIGTERM, then SIGKILL after a grace period).
    pub fn stop_all(&mut self) {
        for i in 0..self.children.len() {
            if self.signal(i, "TERM").is_err()
                && let Some(mut c) = self.children[i].take()
            {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > timeout {
            child.kill()?;
            child.wait()?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
