//! A small blocking client for the validator HTTP API.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use chipledger_node::api::{
    BatchItem, BatchRequest, CaBody, ChallengeBody, CheckpointBody, DeviceBody, DevicePage, DeviceStatsBody,
    DevicesQuery, ErrorBody, HistoryBody, OrgBody, StatusBody, Submitted, TxStatusBody, ValidatorBody,
};
use serde::de::DeserializeOwned;

/// Default API of the first demo validator.
pub const DEFAULT_API: &str = "http://127.0.0.1:7070";

pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Result<Client> {
        Client::with_timeout(base, Duration::from_secs(30))
    }

    /// A client whose requests give up after `timeout` (e.g. a load generator that must not
    /// hang on a stopped validator).
    pub fn with_timeout(base: &str, timeout: Duration) -> Result<Client> {
        let http = reqwest::blocking::Client::builder().timeout(timeout).build()?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            http,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get_url(&format!("{}{path}", self.base))
    }

    fn get_url<T: DeserializeOwned>(&self, url: &str) -> Result<T> {
        let resp = self
            .http
            .get(url)
            .send()
            .with_context(|| format!("cannot reach {url} (is the node running?)"))?;
        decode(resp, url)
    }

    pub fn status(&self) -> Result<StatusBody> {
        self.get("/v1/status")
    }
    pub fn validators(&self) -> Result<Vec<ValidatorBody>> {
        self.get("/v1/validators")
    }
    pub fn org(&self, name: &str) -> Result<OrgBody> {
        self.get(&format!("/v1/orgs/{name}"))
    }
    pub fn checkpoint(&self) -> Result<CheckpointBody> {
        self.get("/v1/checkpoint")
    }
    pub fn tx(&self, hash: &str) -> Result<TxStatusBody> {
        self.get(&format!("/v1/tx/{hash}"))
    }
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.get(path)
    }

    pub fn device(&self, id: &str) -> Result<DeviceBody> {
        self.get(&format!("/v1/devices/{id}"))
    }
    pub fn device_history(&self, id: &str) -> Result<Vec<HistoryBody>> {
        self.get(&format!("/v1/devices/{id}/history"))
    }
    pub fn challenge(&self, id: &str) -> Result<ChallengeBody> {
        self.get(&format!("/v1/devices/{id}/challenge"))
    }
    /// The first `limit` devices `owner` holds (and their total).
    pub fn devices(&self, owner: &str, limit: usize) -> Result<DevicePage> {
        self.device_list(&DevicesQuery {
            owner: Some(owner.into()),
            limit: Some(limit),
            ..DevicesQuery::default()
        })
    }
    /// One page of `GET /v1/devices`: the query's fields become its parameters.
    pub fn device_list(&self, q: &DevicesQuery) -> Result<DevicePage> {
        let mut url = reqwest::Url::parse(&format!("{}/v1/devices", self.base)).context("API address")?;
        if let serde_json::Value::Object(fields) = serde_json::to_value(q)? {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in fields {
                match v {
                    serde_json::Value::Null => {}
                    serde_json::Value::String(s) => {
                        pairs.append_pair(&k, &s);
                    }
                    other => {
                        pairs.append_pair(&k, &other.to_string());
                    }
                }
            }
        }
        self.get_url(url.as_str())
    }
    pub fn device_stats(&self) -> Result<DeviceStatsBody> {
        self.get("/v1/devices/stats")
    }
    pub fn cas(&self) -> Result<Vec<CaBody>> {
        self.get("/v1/cas")
    }

    /// Submit one transaction; a refusal comes back as its typed error body (`Ok(Err(..))`).
    pub fn try_submit(&self, tx: &[u8]) -> Result<std::result::Result<Submitted, ErrorBody>> {
        let url = format!("{}/v1/tx", self.base);
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/cbor")
            .body(tx.to_vec())
            .send()
            .with_context(|| format!("cannot reach {url} (is the node running?)"))?;
        let status = resp.status();
        let text = resp.text().with_context(|| format!("reading the answer of {url}"))?;
        if status.is_success() {
            return Ok(Ok(
                serde_json::from_str(&text).with_context(|| format!("unexpected answer from {url}"))?
            ));
        }
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(e) => Ok(Err(e)),
            Err(_) => bail!("{url} answered HTTP {}: {text}", status.as_u16()),
        }
    }

    pub fn submit(&self, tx: &[u8]) -> Result<Submitted> {
        let url = format!("{}/v1/tx", self.base);
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/cbor")
            .body(tx.to_vec())
            .send()
            .with_context(|| format!("cannot reach {url} (is the node running?)"))?;
        decode(resp, &url)
    }

    pub fn submit_batch(&self, txs: &[Vec<u8>]) -> Result<Vec<BatchItem>> {
        let url = format!("{}/v1/txs", self.base);
        let req = BatchRequest {
            txs: txs.iter().map(hex::encode).collect(),
        };
        let resp = self
            .http
            .post(&url)
            .json(&req)
            .send()
            .with_context(|| format!("cannot reach {url}"))?;
        decode(resp, &url)
    }
}

fn decode<T: DeserializeOwned>(resp: reqwest::blocking::Response, url: &str) -> Result<T> {
    let status = resp.status();
    let text = resp.text().with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        if let Ok(e) = serde_json::from_str::<serde_json::Value>(&text)
            && let (Some(code), Some(msg)) = (e["error"].as_str(), e["message"].as_str())
        {
            bail!("{msg} ({code}, HTTP {})", status.as_u16());
        }
        bail!("{url} answered HTTP {}: {text}", status.as_u16());
    }
    serde_json::from_str(&text).with_context(|| format!("unexpected answer from {url}"))
}
