//! The guards every API route sits behind (`http_guard`), at the HTTP level on a real executor:
//! a flood from one address gets `429` with `Retry-After` while another address is served; a
//! body over a route's limit gets a typed `413`; an over-long URI `414`; and whatever axum refuses
//! before a handler runs (a path segment that is not a number, a malformed query, bad or deeply
//! nested JSON, an unknown route) is a typed JSON error, as the OpenAPI document says.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chipledger_node::api::{ErrorBody, router, router_with_limits};
use chipledger_node::config::{self, InitOptions};
use chipledger_node::executor::{Executor, Identity};
use chipledger_node::http_guard::{MAX_URI_BYTES, RateLimitConfig};
use chipledger_types::limits::MAX_TX_BYTES;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chipledger-guards-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// An executor over a fresh genesis with the default organisations, as validator 0.
fn executor(dir: &Path) -> Executor {
    let opts = InitOptions {
        out: dir.to_path_buf(),
        chain_id: "guards".into(),
        orgs: config::default_orgs(),
        hosts: vec!["127.0.0.1".into()],
        base_port: 32000,
        governance_threshold: None,
        timestamp_ms: 0,
    };
    let genesis = config::init(&opts).expect("init");
    let me = Identity {
        index: 0,
        name: genesis.validators[0].name.clone(),
        note_seeds: vec![],
    };
    Executor::open(&dir.join("ledger"), genesis, me).expect("executor")
}

/// One `GET path` over a fresh connection from `source` (an address on the loopback interface):
/// the status and the raw answer.
async fn get_from(source: &str, server: SocketAddr, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().unwrap())
        .expect("bind source address");
    let mut stream = socket.connect(server).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("read");
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, answer)
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    answer.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        l.split_once(':')
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_gets_429_with_retry_after_and_others_are_served() {
    let dir = temp_dir("flood");
    let exec = executor(&dir);
    // One request a minute after a burst of 5: the test never waits long enough for a refill.
    let rate = RateLimitConfig {
        requests_per_min: 1,
        burst: 5,
    };
    let (app, _) = router_with_limits(exec, None, false, rate).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = listener.local_addr().unwrap();
    tokio::spawn(chipledger_node::http_guard::serve(listener, app));

    for i in 0..5 {
        let (status, answer) = get_from("127.0.0.1", server, "/v1/status").await;
        assert_eq!(status, 200, "request {i} of the burst: {answer}");
    }
    for _ in 0..20 {
        let (status, answer) = get_from("127.0.0.1", server, "/v1/status").await;
        assert_eq!(status, 429, "{answer}");
        let retry: u64 = header(&answer, "retry-after").expect("Retry-After").parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        let body: ErrorBody = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body.error, "rate_limited");
    }
    // Another address is not affected by the flood (127.0.0.0/8 is all loopback on Linux).
    for source in ["127.0.0.2", "127.0.0.3"] {
        let (status, answer) = get_from(source, server, "/v1/status").await;
        assert_eq!(status, 200, "{source}: {answer}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, ErrorBody) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
    assert_eq!(
        content_type,
        "application/json",
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{status}: not an ErrorBody: {e}"));
    (status, body)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn refusals_before_a_handler_are_typed_json_errors() {
    let dir = temp_dir("refusals");
    let (app, _) = router(executor(&dir));
    let deep_json = format!("{{\"txs\": {}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_id = "a".repeat(MAX_URI_BYTES - 20);
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (get("/v1/blocks/-1"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            get("/v1/blocks/99999999999999999999999"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (get("/v1/devices?limit=x"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            get("/v1/proof/inclusion?index=1"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (get("/v1/state"), StatusCode::BAD_REQUEST, "bad_request"),
        (
            get(&format!("/v1/devices/{huge_id}")),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            get(&format!("/v1/devices/{}", "a".repeat(MAX_URI_BYTES))),
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
        ),
        (get("/v1/no-such-route"), StatusCode::NOT_FOUND, "not_found"),
        (
            post("/v1/status", "application/json", "{}"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            post("/v1/txs", "application/json", "{"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post("/v1/txs", "application/json", "{\"tx\": []}"),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post("/v1/txs", "application/json", deep_json),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            post("/v1/tx", "application/cbor", vec![0u8; MAX_TX_BYTES + 1]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
    ];
    for (req, want_status, want_code) in cases {
        let what = format!(
            "{} {}",
            req.method(),
            &req.uri().to_string()[..req.uri().to_string().len().min(60)]
        );
        let (status, body) = send(&app, req).await;
        assert_eq!(
            (status, body.error.as_str()),
            (want_status, want_code),
            "{what}: {}",
            body.message
        );
    }
    // A declared length over the largest body any route reads is refused before it is read.
    let over = Request::put("/v1/blobs")
        .header("content-length", (64u64 << 20).to_string())
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, over).await;
    assert_eq!(
        (status, body.error.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_operation_documents_the_guards_answers() {
    let doc = serde_json::to_value(chipledger_node::api::openapi()).unwrap();
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            for code in ["400", "414", "429"] {
                assert!(responses.contains_key(code), "{method} {path} does not document {code}");
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("413"), "{method} {path} does not document 413");
            }
            assert!(responses["429"]["headers"].get("Retry-After").is_some());
        }
    }
    assert!(operations > 40, "only {operations} operations");
}
