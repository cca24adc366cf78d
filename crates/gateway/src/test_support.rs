//! Helpers shared by the crate's unit tests.

use crate::ingest::{Gateway, GatewayConfig};

/// A scratch gateway store in the temp directory, removed when dropped.
pub(crate) struct Scratch(std::path::PathBuf);

impl Scratch {
    /// A fresh gateway named `gw` over a new store; `name` keeps parallel tests apart.
    pub(crate) fn gateway(name: &str) -> (Scratch, Gateway) {
        let dir = std::env::temp_dir().join(format!("chipledger-gw-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gw = Gateway::open(&dir.join("g.redb"), GatewayConfig::new("gw")).unwrap();
        (Scratch(dir), gw)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
