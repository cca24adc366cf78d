//! `chipledger status`: every validator's view, side by side.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use crate::client::{Client, DEFAULT_API};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Any validator's API; the others are found through its validator list.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct ValidatorStatus {
    pub name: String,
    pub api: String,
    pub reachable: bool,
    pub height: Option<u64>,
    pub log_size: Option<u64>,
    pub log_root: Option<String>,
    pub state_root: Option<String>,
    pub final_checkpoint_height: Option<u64>,
    pub error: Option<String>,
}

pub fn collect(api: &str) -> Result<Vec<ValidatorStatus>> {
    let validators = Client::new(api)?.validators()?;
    let mut out = Vec::new();
    for v in validators {
        let s = Client::new(&v.api_url).and_then(|c| c.status());
        out.push(match s {
            Ok(s) => ValidatorStatus {
                name: v.name,
                api: v.api_url,
                reachable: true,
                height: Some(s.height),
                log_size: Some(s.log_size),
                log_root: Some(s.log_root),
                state_root: Some(s.state_root),
                final_checkpoint_height: s.final_checkpoint_height,
                error: None,
            },
            Err(e) => ValidatorStatus {
                name: v.name,
                api: v.api_url,
                reachable: false,
                height: None,
                log_size: None,
                log_root: None,
                state_root: None,
                final_checkpoint_height: None,
                error: Some(format!("{e:#}")),
            },
        });
    }
    Ok(out)
}

pub fn run(a: StatusArgs) -> Result<()> {
    let vs = collect(&a.api)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "validators": vs }))?
        );
        return Ok(());
    }
    println!(
        "{:<14} {:>8} {:>9} {:<18} {:<18} {:>6}  api",
        "validator", "height", "log size", "log root", "state root", "final"
    );
    for v in &vs {
        let short = |s: &Option<String>| {
            s.as_deref()
                .map(|s| format!("{}…", &s[..16.min(s.len())]))
                .unwrap_or_else(|| "-".into())
        };
        let num = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        println!(
            "{:<14} {:>8} {:>9} {:<18} {:<18} {:>6}  {}{}",
            v.name,
            num(v.height),
            num(v.log_size),
            short(&v.log_root),
            short(&v.state_root),
            num(v.final_checkpoint_height),
            v.api,
            if v.reachable {
                String::new()
            } else {
                format!("  (unreachable: {})", v.error.as_deref().unwrap_or(""))
            }
        );
    }
    Ok(())
}
