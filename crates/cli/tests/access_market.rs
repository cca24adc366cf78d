//! Issue 6, Done-when 1 for paid offers: four validator processes; a Consumer organisation
//! added by governance; credits issued by governance through `chipledger access issue-credits`
//! and two `tx submit … approve`s; the owner publishes offers with `chipledger access offer`;
//! the consumer buys one (`access buy`): credits move exactly and the grant exists (`access
//! grant-show`, the API and the audit trails). Insufficient balance, expired offer, withdrawn
//! offer, raised price and double purchase are refused by the CLI with the ledger's code, and
//! leave the balances untouched. A direct tag-scoped grant (`access grant`, `access tag`,
//! `access revoke`) covers the device only while tagged and not revoked (`access check`).

mod data_support;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chipledger_cli::data_net::{OWNER, govern, org_key_path, register_sim_devices};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::api_access::{CreditsBody, GrantBody, OfferBody};
use chipledger_node::api_audit::AuditBody;
use chipledger_node::config::KeyFile;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Role};
use data_support::{TestNet, WAIT, poll};

/// API ports 31070..31073, p2p 31170.. (issue 6's port plan: A).
const BASE_PORT: u16 = 31070;
const CONSUMER: &str = "lab";
const SEED: u64 = 70;

/// `chipledger <args>`: (success, stdout, stderr).
fn cli<S: AsRef<str>>(exe: &Path, args: &[S]) -> Result<(bool, String, String)> {
    let out = Command::new(exe)
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .context("running chipledger")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs a command that must succeed and print JSON; returns `field` of it.
fn cli_json<S: AsRef<str>>(exe: &Path, args: &[S], field: &str) -> Result<String> {
    let (ok, out, err) = cli(exe, args)?;
    if !ok {
        bail!(
            "chipledger {:?} failed: {err}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
        );
    }
    let v: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("not JSON: {out}"))?;
    v[field]
        .as_str()
        .map(String::from)
        .with_context(|| format!("no '{field}' in {out}"))
}

/// Runs a command that must be refused with the ledger's `code`.
fn cli_refused<S: AsRef<str>>(exe: &Path, args: &[S], code: &str) -> Result<()> {
    let (ok, out, err) = cli(exe, args)?;
    if ok || !err.contains(&format!("({code})")) {
        bail!("should be refused with {code}: ok={ok}, stdout={out}, stderr={err}");
    }
    Ok(())
}

#[test]
fn offers_are_bought_with_credits_and_failures_are_typed() -> Result<()> {
    let started = Instant::now();
    let t = TestNet::start("access-market", BASE_PORT)?;
    let (exe, api) = (t.exe.clone(), t.net.apis[0].clone());
    let device = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..1)?[0];
    let lab_key = SigningKey::ed25519_from_seed(&[SEED as u8; 32]);
    let lab_key_path = org_key_path(&t.net, CONSUMER);
    KeyFile::write(&lab_key_path, &lab_key)?;
    govern(
        &t.net,
        &t.client,
        GovAction::AddOrg(OrgSpec {
            name: CONSUMER.into(),
            roles: vec![Role::Consumer],
            keys: vec![lab_key.public_key()],
        }),
    )?;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());
    let city_key = org_key_path(&t.net, OWNER).display().to_string();
    let lab_key = lab_key_path.display().to_string();
    let device = device.to_string();
    let owner = ["--api", &api, "--org", OWNER, "--key", &city_key, "--json"];
    let buyer = ["--api", &api, "--org", CONSUMER, "--key", &lab_key, "--json"];
    let scope = [
        "--device",
        &device,
        "--stream",
        "telemetry",
        "--from",
        "2020-01-01T00:00:00Z",
        "--until",
        "+30d",
    ];
    let offer = |price: &str, expires: &str| -> Result<String> {
        let mut args = vec!["access", "offer"];
        args.extend(owner);
        args.extend(scope);
        args.extend([
            "--price",
            price,
            "--duration",
            "30d",
            "--terms",
            "research",
            "--expires",
            expires,
        ]);
        cli_json(&exe, &args, "offer")
    };
    let buy = |offer: &str, max: &str| {
        let mut args = vec!["access", "buy"];
        args.extend(buyer);
        args.extend(["--offer", offer, "--max-price", max]);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let credits = |org: &str| -> Result<u64> {
        Ok(t.client
            .get_json::<CreditsBody>(&format!("/v1/access/credits/{org}"))?
            .balance)
    };

    // An offer, bought before the consumer has credits: refused, nothing moves.
    let o1 = offer("30", "+1h")?;
    let body: OfferBody = t.client.get_json(&format!("/v1/access/offers/{o1}"))?;
    assert_eq!((body.owner.as_str(), body.price, body.open), (OWNER, 30, true));
    cli_refused(&exe, &buy(&o1, "30"), "insufficient_credits")?;

    // Credits by governance: proposed with the CLI, approved by two more organisations.
    let proposal = cli_json(
        &exe,
        &[
            "access",
            "issue-credits",
            "--api",
            &api,
            "--signer",
            OWNER,
            "--key",
            &city_key,
            "--org",
            CONSUMER,
            "--amount",
            "100",
            "--json",
        ],
        "proposal",
    )?;
    for org in ["maker", "vendor"] {
        let key = org_key_path(&t.net, org).display().to_string();
        let (ok, _, err) = cli(
            &exe,
            &[
                "tx",
                "submit",
                "--api",
                &api,
                "--org",
                org,
                "--key",
                &key,
                "--wait",
                "approve",
                "--proposal",
                &proposal,
            ],
        )?;
        assert!(ok, "approval by {org}: {err}");
    }
    assert_eq!(credits(CONSUMER)?, 100);
    let city_before = credits(OWNER)?;

    // Raised price (the buyer accepts less): refused.
    cli_refused(&exe, &buy(&o1, "29"), "price_changed")?;
    // The purchase: exactly 30 credits move, and the grant exists.
    let grant = cli_json(&exe, &buy(&o1, "30"), "grant")?;
    assert_eq!((credits(CONSUMER)?, credits(OWNER)?), (70, city_before + 30));
    let (ok, out, err) = cli(&exe, &["access", "grant-show", &grant, "--api", &api, "--json"])?;
    assert!(ok, "{err}");
    let g: GrantBody = serde_json::from_str(&out)?;
    assert_eq!(g.grantee.org.as_deref(), Some(CONSUMER));
    assert_eq!(
        (g.owner.as_str(), g.price, g.offer.as_deref()),
        (OWNER, Some(30), Some(o1.as_str()))
    );
    assert_eq!(g.scope.devices, vec![device.clone()]);
    assert!(g.active && g.revoked.is_none());
    // Bought twice: refused, balances intact.
    cli_refused(&exe, &buy(&o1, "30"), "already_purchased")?;

    // More than the balance: refused with have/need.
    let o2 = offer("1000", "+1h")?;
    let (ok, _, err) = cli(&exe, &buy(&o2, "1000"))?;
    assert!(
        !ok && err.contains("(insufficient_credits)") && err.contains("has 70 credits, needs 1000"),
        "{err}"
    );
    // Withdrawn: refused.
    let mut args = vec!["access", "withdraw-offer"];
    args.extend(owner);
    args.extend(["--offer", &o2]);
    cli_json(&exe, &args, "withdrawn")?;
    cli_refused(&exe, &buy(&o2, "1000"), "offer_withdrawn")?;

    // Expired: buyable for 3 s of block time only.
    let o3 = offer("5", "+3s")?;
    poll("the offer to expire", WAIT, || {
        let o: OfferBody = t.client.get_json(&format!("/v1/access/offers/{o3}"))?;
        Ok((!o.open).then_some(()))
    })?;
    cli_refused(&exe, &buy(&o3, "5"), "offer_expired")?;
    assert_eq!((credits(CONSUMER)?, credits(OWNER)?), (70, city_before + 30));

    // A direct, tag-scoped grant: covers the device only once tagged; revoked, it covers nothing.
    let mut args = vec!["access", "grant"];
    args.extend(owner);
    args.extend([
        "--to-org",
        CONSUMER,
        "--tag",
        "district-7",
        "--from",
        "now",
        "--until",
        "+1d",
    ]);
    args.extend(["--expires", "+1d", "--purpose", "air-quality study"]);
    let direct = cli_json(&exe, &args, "grant")?;
    let check = |code: &str| -> Result<()> {
        let args = [
            "access", "check", "--api", &api, "--grant", &direct, "--device", &device, "--json",
        ];
        let (ok, out, err) = cli(&exe, &args)?;
        let v: serde_json::Value = serde_json::from_str(&out).with_context(|| err.clone())?;
        assert!(ok && v["code"].as_str().unwrap_or("ok") == code, "{code}: {out}");
        Ok(())
    };
    check("not_covered")?;
    let mut args = vec!["access", "tag"];
    args.extend(owner);
    args.extend(["--tag", "district-7", "--add", &device]);
    cli_json(&exe, &args, "tagged")?;
    check("ok")?;
    let mut args = vec!["access", "revoke"];
    args.extend(owner);
    args.extend(["--grant", &direct, "--reason", "study over"]);
    cli_json(&exe, &args, "revoked")?;
    check("grant_revoked")?;
    let (ok, out, err) = cli(
        &exe,
        &["access", "grants", "--api", &api, "--grantee", CONSUMER, "--json"],
    )?;
    assert!(ok, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out)?;
    let ids: Vec<&str> = listed["grants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g["id"].as_str())
        .collect();
    assert_eq!(ids, [direct.as_str(), grant.as_str()], "newest first");

    // Absent records are a typed 404.
    let zeros = "00".repeat(32);
    for path in [
        format!("/v1/access/grants/{zeros}"),
        format!("/v1/access/offers/{zeros}"),
        "/v1/access/credits/nobody".into(),
    ] {
        let e = t.client.get_json::<serde_json::Value>(&path).expect_err("absent");
        assert!(format!("{e:#}").contains("(not_found, HTTP 404)"), "{path}: {e:#}");
    }

    // The audit trails saw it: the consumer's credits, purchase and grant; the device's offers,
    // sale and tag.
    let lab: AuditBody = t.client.get_json(&format!("/v1/audit/orgs/{CONSUMER}?proofs=false"))?;
    let kinds: Vec<&str> = lab.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["credits-issued", "purchase", "grant", "grant-revoked"]);
    assert_eq!(lab.entries[1].tx, grant);
    let dev: AuditBody = t.client.get_json(&format!("/v1/audit/devices/{device}?proofs=false"))?;
    let kinds: Vec<&str> = dev.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["offer", "purchase", "offer", "offer-withdrawn", "offer", "tags"]
    );
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
