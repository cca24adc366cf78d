//! What every HTTP surface of chipledger shares — the validator API, the gateway's record API and
//! the owner's key service: a per-client rate limit (token bucket per source address), a bound on
//! the URI and on the request body, and typed JSON errors (`{"error", "message"}`, see
//! [`crate::api::ErrorBody`]) for everything axum refuses before a handler runs (a path segment
//! that is not a number, a malformed query string, an unreadable JSON body, an unknown route).
//!
//! Each route that reads a body names its own limit (`MAX_TX_BYTES`, [`MAX_BATCH_BODY_BYTES`],
//! `MAX_BLOB_BYTES`, the key service's `MAX_REQUEST_BYTES`); [`guard`] adds an outer limit, the
//! largest of a surface's, so no body over it is ever buffered.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api::{ApiError, ErrorBody};

/// Longest request URI (path and query) any route accepts; longer ones get 414.
pub const MAX_URI_BYTES: usize = 4096;
/// Largest body of `POST /v1/txs` (hex transactions in JSON).
pub const MAX_BATCH_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default sustained rate per client: 2,000 requests a second. Far above what the demo, the
/// benches and the tests send from one address.
pub const DEFAULT_REQUESTS_PER_MIN: u32 = 120_000;
/// Default burst per client: requests a client may send at once before the rate applies.
pub const DEFAULT_BURST: u32 = 4_000;
/// Most clients the limiter keeps a bucket for; beyond it, clients it does not know yet share one
/// bucket (clients already known keep theirs), so a flood from many addresses cannot grow memory.
pub const MAX_TRACKED_CLIENTS: usize = 65_536;
/// Longest text kept from a refusal axum produced itself (the rest is cut).
const MAX_REFUSAL_TEXT_BYTES: usize = 1024;
/// IPv6 clients are counted per /64 (one host usually holds a whole /64).
const IPV6_CLIENT_PREFIX_BITS: u32 = 64;
const NANOS_PER_MIN: u64 = 60_000_000_000;
/// Idle buckets are swept out of a full map at most this often (a sweep walks the whole map).
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// The per-client rate limit (`[rate_limit]` in `node.toml`). `requests_per_min = 0` turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute per client address.
    pub requests_per_min: u32,
    /// Requests a client may send at once (bucket size, at least 1).
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            requests_per_min: DEFAULT_REQUESTS_PER_MIN,
            burst: DEFAULT_BURST,
        }
    }
}

/// Why a [`RateLimitConfig`] is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimitConfigError {
    #[error("rate_limit.burst must be at least 1 when rate_limit.requests_per_min is set")]
    ZeroBurst,
}

impl RateLimitConfig {
    /// The limit switched off (every request admitted).
    pub const OFF: RateLimitConfig = RateLimitConfig {
        requests_per_min: 0,
        burst: 0,
    };

    pub fn validate(&self) -> Result<(), RateLimitConfigError> {
        if self.requests_per_min > 0 && self.burst == 0 {
            return Err(RateLimitConfigError::ZeroBurst);
        }
        Ok(())
    }
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_CLIENT_PREFIX_BITS);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// Buckets of the clients seen recently: each holds its GCRA "theoretical arrival time" (ns
/// since the limiter started); a bucket whose time has passed is full and may be forgotten.
struct Buckets {
    by_client: HashMap<IpAddr, u64>,
    /// Shared by new clients while `by_client` is full of active ones.
    overflow: u64,
    last_sweep_ns: Option<u64>,
}

/// A token bucket per client (GCRA form: one number per client). Time is an input
/// ([`RateLimiter::check_at`]), so the rule is tested without a clock.
pub struct RateLimiter {
    /// Nanoseconds one request costs.
    interval_ns: u64,
    /// How far ahead of now a client's time may run: `(burst - 1) × interval`.
    tolerance_ns: u64,
    max_clients: usize,
    started: Instant,
    buckets: Mutex<Buckets>,
}

impl RateLimiter {
    /// `None` when the config turns the limit off.
    pub fn new(cfg: RateLimitConfig) -> Result<Option<RateLimiter>, RateLimitConfigError> {
        Self::with_capacity(cfg, MAX_TRACKED_CLIENTS)
    }

    /// [`RateLimiter::new`] keeping at most `max_clients` buckets.
    pub fn with_capacity(
        cfg: RateLimitConfig,
        max_clients: usize,
    ) -> Result<Option<RateLimiter>, RateLimitConfigError> {
        cfg.validate()?;
        if cfg.requests_per_min == 0 {
            return Ok(None);
        }
        let interval_ns = (NANOS_PER_MIN / u64::from(cfg.requests_per_min)).max(1);
        Ok(Some(RateLimiter {
            interval_ns,
            tolerance_ns: interval_ns.saturating_mul(u64::from(cfg.burst) - 1),
            max_clients,
            started: Instant::now(),
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                overflow: 0,
                last_sweep_ns: None,
            }),
        }))
    }

    /// Admits one request from `client` now, or says how long it must wait.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        let now_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(client, now_ns)
    }

    /// Admits one request from `client` at `now_ns` (ns since the limiter started), or returns
    /// the wait until it would be admitted.
    pub fn check_at(&self, client: IpAddr, now_ns: u64) -> Result<(), Duration> {
        let key = client_key(client);
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let full = b.by_client.len() >= self.max_clients && !b.by_client.contains_key(&key);
        let may_sweep = b
            .last_sweep_ns
            .is_none_or(|t| now_ns.saturating_sub(t) >= SWEEP_EVERY_NS);
        if full && may_sweep {
            b.by_client.retain(|_, tat| *tat > now_ns);
            b.last_sweep_ns = Some(now_ns);
        }
        let tat = if b.by_client.len() < self.max_clients || b.by_client.contains_key(&key) {
            b.by_client.entry(key).or_insert(now_ns)
        } else {
            &mut b.overflow
        };
        let start = (*tat).max(now_ns);
        let ahead = start - now_ns;
        if ahead > self.tolerance_ns {
            return Err(Duration::from_nanos(ahead - self.tolerance_ns));
        }
        *tat = start.saturating_add(self.interval_ns);
        Ok(())
    }

    /// Clients holding a bucket (for tests and metrics).
    pub fn tracked_clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).by_client.len()
    }
}

/// The source address axum recorded for the connection; requests served without one (in-process
/// tests calling the router directly) all count as one client.
fn source_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

async fn limit_rate(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    match limiter.check(source_ip(&req)) {
        Ok(()) => next.run(req).await,
        Err(wait) => too_many_requests(wait),
    }
}

/// `429 rate_limited` with `Retry-After` in whole seconds (at least 1).
fn too_many_requests(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests from this address; retry in {secs} s"),
    )
    .into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// The stable code for a status axum or tower-http answered with.
fn refusal_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Refuses over-long URIs, and turns every error answer that is not JSON yet (axum's extractor
/// rejections, tower-http's 413, the router's 404/405) into an [`ErrorBody`]. axum's 422 for a
/// well-formed JSON body of the wrong shape becomes 400, like every other malformed input.
async fn json_errors(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request URI has {uri_len} bytes; at most {MAX_URI_BYTES}"),
        )
        .into_response();
    }
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&resp) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REFUSAL_TEXT_BYTES * 4).await {
        Ok(b) => refusal_text(&b, status),
        Err(_) => status.canonical_reason().unwrap_or("refused").to_string(),
    };
    let status = match status {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let body = ErrorBody {
        error: refusal_code(status).into(),
        message: text,
    };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, Body::from(json))
}

fn refusal_text(body: &Bytes, status: StatusCode) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status.canonical_reason().unwrap_or("refused").to_string();
    }
    let mut end = text.len().min(MAX_REFUSAL_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// `router` behind the shared guards: typed JSON errors and the URI bound (outermost), then the
/// per-client `rate` limit, then an outer body limit of `max_body_bytes`. Serve the result with
/// [`serve`] (or `into_make_service_with_connect_info::<SocketAddr>()`) so clients are told
/// apart by address.
pub fn guard(router: Router, rate: RateLimitConfig, max_body_bytes: usize) -> Result<Router, RateLimitConfigError> {
    let router = router.layer(tower_http::limit::RequestBodyLimitLayer::new(max_body_bytes));
    let router = match RateLimiter::new(rate)? {
        Some(limiter) => router.layer(middleware::from_fn_with_state(Arc::new(limiter), limit_rate)),
        None => router,
    };
    Ok(router.layer(middleware::from_fn(json_errors)))
}

/// Serves `router` on `listener`, recording each connection's source address for the rate limit.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await
}

/// Documents, on every operation of `doc`, the answers the guards give whatever the route: `400`
/// (malformed path, query or body; added where a route does not list it), `413` (operations with
/// a request body), `414` and `429` (with `Retry-After`). All carry an [`ErrorBody`].
pub fn document_guards(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::Operation;
    let add = |op: &mut Operation, code: &str, description: &str| {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| error_response(description, code == "429").into());
    };
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            add(
                op,
                "400",
                "Bad request: a malformed path, query or body (a typed error)",
            );
            if op.request_body.is_some() {
                add(op, "413", "The request body is over this route's limit");
            }
            add(op, "414", "The request URI is over the limit");
            add(
                op,
                "429",
                "Too many requests from this address; retry after `Retry-After` seconds",
            );
        }
    }
}

fn error_response(description: &str, retry_after: bool) -> utoipa::openapi::Response {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder, header::HeaderBuilder};
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorBody")))
        .build();
    let mut resp = ResponseBuilder::new()
        .description(description)
        .content("application/json", content);
    if retry_after {
        let seconds = utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(1));
        let header = HeaderBuilder::new()
            .schema(Some(seconds))
            .description(Some("Seconds to wait before the next request"));
        resp = resp.header("Retry-After", header.build());
    }
    resp.build()
}

/// Reads a whole request body of at most `max` bytes, else `413 too_large` naming the limit.
pub async fn read_body(body: Body, max: usize, what: &str) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} exceeds {max} bytes"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND_NS: u64 = 1_000_000_000;

    fn limiter(per_min: u32, burst: u32, max_clients: usize) -> RateLimiter {
        let cfg = RateLimitConfig {
            requests_per_min: per_min,
            burst,
        };
        RateLimiter::with_capacity(cfg, max_clients).unwrap().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        // 60 per minute = one a second; bucket of 3.
        let l = limiter(60, 3, 16);
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.check_at(a, 0), Ok(()));
        }
        assert_eq!(l.check_at(a, 0), Err(Duration::from_secs(1)));
        assert_eq!(l.check_at(a, SECOND_NS / 2), Err(Duration::from_millis(500)));
        assert_eq!(l.check_at(a, SECOND_NS), Ok(()));
        assert!(l.check_at(a, SECOND_NS).is_err());
        // After a long pause the bucket is full again, never fuller.
        for _ in 0..3 {
            assert_eq!(l.check_at(a, 100 * SECOND_NS), Ok(()));
        }
        assert!(l.check_at(a, 100 * SECOND_NS).is_err());
    }

    #[test]
    fn clients_are_counted_apart_and_ipv6_per_64() {
        let l = limiter(60, 1, 16);
        assert_eq!(l.check_at(ip("192.0.2.1"), 0), Ok(()));
        assert!(l.check_at(ip("192.0.2.1"), 0).is_err());
        assert_eq!(l.check_at(ip("192.0.2.2"), 0), Ok(()));
        assert_eq!(l.check_at(ip("2001:db8:1:2::1"), 0), Ok(()));
        assert!(l.check_at(ip("2001:db8:1:2::ffff"), 0).is_err(), "same /64");
        assert_eq!(l.check_at(ip("2001:db8:1:3::1"), 0), Ok(()));
        assert!(l.check_at(ip("::ffff:192.0.2.2"), 0).is_err(), "v4-mapped = v4");
    }

    #[test]
    fn the_client_map_is_bounded_and_known_clients_keep_their_bucket() {
        let l = limiter(60, 2, 2);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        assert_eq!(l.check_at(a, 0), Ok(()));
        assert_eq!(l.check_at(b, 0), Ok(()));
        // A flood of new addresses while both buckets are active shares one overflow bucket.
        assert_eq!(l.check_at(ip("198.51.100.1"), 0), Ok(()));
        assert_eq!(l.check_at(ip("198.51.100.2"), 0), Ok(()));
        assert!(l.check_at(ip("198.51.100.3"), 0).is_err());
        assert_eq!(l.tracked_clients(), 2);
        // The known clients are unaffected.
        assert_eq!(l.check_at(a, 0), Ok(()));
        assert_eq!(l.check_at(b, 0), Ok(()));
        // Once their buckets are full again (idle), they are forgotten and new clients get one.
        assert_eq!(l.check_at(ip("198.51.100.9"), 10 * SECOND_NS), Ok(()));
        assert_eq!(l.tracked_clients(), 1);
    }

    #[test]
    fn config_is_checked_and_zero_turns_it_off() {
        let bad = RateLimitConfig {
            requests_per_min: 10,
            burst: 0,
        };
        assert_eq!(RateLimiter::new(bad).err(), Some(RateLimitConfigError::ZeroBurst));
        assert!(RateLimiter::new(RateLimitConfig::OFF).unwrap().is_none());
        let parsed: RateLimitConfig = toml::from_str("burst = 7").unwrap();
        assert_eq!(parsed.burst, 7);
        assert_eq!(parsed.requests_per_min, DEFAULT_REQUESTS_PER_MIN);
        assert!(toml::from_str::<RateLimitConfig>("burts = 7").is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let resp = too_many_requests(Duration::from_millis(1500));
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
        assert_eq!(
            too_many_requests(Duration::from_nanos(1)).headers()[header::RETRY_AFTER],
            "1"
        );
    }
}
