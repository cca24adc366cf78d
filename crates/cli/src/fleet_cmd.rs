//! `chipledger device list` and `chipledger device stats`: fleet queries answered by a
//! validator's node-local device index (`GET /v1/devices`, `GET /v1/devices/stats`).

use anyhow::Result;
use chipledger_node::api::{DevicePage, DeviceStatsBody, DevicesQuery};
use clap::Args;

use crate::client::{Client, DEFAULT_API};

/// Filters and paging of `device list`; each given filter must match.
#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Hardware model number.
    #[arg(long)]
    pub model: Option<u32>,
    /// Owning organisation.
    #[arg(long)]
    pub owner: Option<String>,
    /// Registering manufacturer organisation.
    #[arg(long)]
    pub manufacturer: Option<String>,
    #[arg(long, value_parser = ["active", "offered", "revoked"])]
    pub status: Option<String>,
    /// Attested firmware version (exact `swversion` of the latest accepted evidence).
    #[arg(long)]
    pub version: Option<String>,
    /// Hex device-id prefix.
    #[arg(long)]
    pub q: Option<String>,
    /// Page size, 1..=1000.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Start after this device id (the `next_after` of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    #[arg(long)]
    pub json: bool,
}

impl ListArgs {
    fn query(&self) -> DevicesQuery {
        DevicesQuery {
            model: self.model,
            owner: self.owner.clone(),
            status: self.status.clone(),
            attested_version: self.version.clone(),
            manufacturer: self.manufacturer.clone(),
            q: self.q.clone(),
            limit: Some(self.limit),
            after: self.after.clone(),
        }
    }
}

/// `device list`: one page of matching devices.
pub fn list(a: &ListArgs) -> Result<()> {
    let page = Client::new(&a.api)?.device_list(&a.query())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    print_page(&page);
    Ok(())
}

fn print_page(page: &DevicePage) {
    println!(
        "{:<40} {:>6} {:<12} {:<12} {:<8} firmware",
        "device", "model", "owner", "manufacturer", "status"
    );
    for d in &page.devices {
        let fw = d.attestation.as_ref().map_or("-", |a| a.swversion.as_str());
        let status = if d.ca_revoked {
            format!("{} (CA revoked)", d.status)
        } else {
            d.status.clone()
        };
        println!(
            "{:<40} {:>6} {:<12} {:<12} {:<8} {fw}",
            d.id, d.model, d.owner, d.manufacturer, status
        );
    }
    println!(
        "{} of {} matching devices at height {}",
        page.devices.len(),
        page.total,
        page.height
    );
    if let Some(next) = &page.next_after {
        println!("next page: --after {next}");
    }
}

/// `device stats`: counts by model, owner, manufacturer, status and attested version.
pub fn stats(api: &str, json: bool) -> Result<()> {
    let s = Client::new(api)?.device_stats()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    print_stats(&s);
    Ok(())
}

fn print_stats(s: &DeviceStatsBody) {
    println!("{} devices at height {}", s.total, s.height);
    let groups = [
        ("status", &s.by_status),
        ("model", &s.by_model),
        ("owner", &s.by_owner),
        ("manufacturer", &s.by_manufacturer),
        ("attested version", &s.by_attested_version),
    ];
    for (name, counts) in groups {
        println!("  by {name}:");
        for (k, n) in counts {
            println!("    {k:<24} {n}");
        }
    }
    println!("  not attested: {}", s.unattested);
    println!("  untrusted (manufacturer CA revoked): {}", s.untrusted);
}
