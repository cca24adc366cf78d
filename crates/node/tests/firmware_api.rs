//! The firmware delivery routes at the HTTP level, on a real executor over a fresh genesis:
//! the image store only takes images a release on the ledger names, serves nothing it cannot
//! re-hash, and the bundle route refuses what it cannot prove. (The success paths of bundle
//! assembly are unit-tested in `firmware_bundle`, where a real bundle is verified by the device
//! verifier.)

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use chipledger_node::api::router_with_blobs;
use chipledger_node::blob_store::{BlobStore, MAX_BLOB_BYTES};
use chipledger_node::config::{self, InitOptions};
use chipledger_node::executor::{Executor, Identity};
use tower::ServiceExt;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chipledger-fwapi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn executor(dir: &std::path::Path) -> Executor {
    let opts = InitOptions {
        out: dir.to_path_buf(),
        chain_id: "fwapi".into(),
        orgs: config::default_orgs(),
        hosts: vec!["127.0.0.1".into()],
        base_port: 31000,
        governance_threshold: None,
        timestamp_ms: 0,
    };
    let genesis = config::init(&opts).expect("init");
    let me = Identity {
        index: 0,
        name: "v-maker".into(),
        note_seeds: vec![],
    };
    Executor::open(&dir.join("v-maker/data/ledger"), genesis, me).expect("open")
}

async fn call(router: &axum::Router, method: Method, uri: &str, body: Vec<u8>) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body))
        .expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn firmware_routes_refuse_what_the_ledger_does_not_vouch_for() {
    let dir = temp_dir("routes");
    let exec = executor(&dir);
    let blobs = BlobStore::open(&dir.join("blobs")).expect("store");
    let (router, _) = router_with_blobs(exec.clone(), Some(blobs));
    let unknown = "ab".repeat(32);
    let cases: Vec<(Method, String, Vec<u8>, StatusCode, &str)> = vec![
        (
            Method::PUT,
            "/v1/blobs".into(),
            b"an image".to_vec(),
            StatusCode::NOT_FOUND,
            "no release",
        ),
        (
            Method::PUT,
            "/v1/blobs".into(),
            vec![0; MAX_BLOB_BYTES + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            Method::GET,
            format!("/v1/blobs/{unknown}"),
            vec![],
            StatusCode::NOT_FOUND,
            "no blob",
        ),
        (
            Method::GET,
            "/v1/blobs/..%2Fsecret".into(),
            vec![],
            StatusCode::BAD_REQUEST,
            "not a hex",
        ),
        (
            Method::GET,
            "/v1/firmware/releases/xyz/bundle?owner=city".into(),
            vec![],
            StatusCode::BAD_REQUEST,
            "64 hex",
        ),
        (
            Method::GET,
            format!("/v1/firmware/releases/{unknown}/bundle?owner=city"),
            vec![],
            StatusCode::SERVICE_UNAVAILABLE,
            "retry",
        ),
    ];
    for (method, uri, body, want, needle) in cases {
        let (status, text) = call(&router, method.clone(), &uri, body).await;
        assert_eq!(status, want, "{method} {uri}: {text}");
        assert!(text.contains(needle), "{method} {uri}: {text}");
    }
    // Without a store the blob routes say so.
    let (bare, _) = chipledger_node::api::router(exec);
    let (status, text) = call(&bare, Method::GET, &format!("/v1/blobs/{unknown}"), vec![]).await;
    assert_eq!(
        (status, text.contains("no_blob_store")),
        (StatusCode::SERVICE_UNAVAILABLE, true)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
