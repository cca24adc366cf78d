//! The content-addressed image store of a node (`PUT /v1/blobs`, `GET /v1/blobs/{sha256}`):
//! firmware images live here, never in blocks. A blob's name is the hex SHA-256 of its bytes,
//! so any node (or a device) can check what it serves; the API only accepts an image whose
//! digest a release on the ledger names (`fw/by-digest/<sha256>`), so the store holds nothing
//! the ledger does not vouch for. Files are written to a temporary name and renamed, so a
//! reader never sees a partial blob; every read re-hashes the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest blob (one firmware image).
pub const MAX_BLOB_BYTES: usize = 16 * 1024 * 1024;
/// Most bytes the store holds in total.
pub const MAX_STORE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Why a blob could not be stored or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    #[error("blob is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the blob store is full ({used} of {max} bytes used)")]
    StoreFull { used: u64, max: u64 },
    #[error("'{0}' is not a hex SHA-256 digest (64 lowercase hex digits)")]
    BadDigest(String),
    #[error("stored blob {0} no longer matches its digest")]
    Corrupt(String),
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A directory of blobs named by their hex SHA-256.
#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    max_blob_bytes: usize,
    max_store_bytes: u64,
}

/// Parse a lowercase hex SHA-256 digest.
pub fn parse_digest(hex_digest: &str) -> Result<[u8; 32], BlobError> {
    let bad = || BlobError::BadDigest(hex_digest.chars().take(80).collect());
    if hex_digest.len() != 64 || hex_digest.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    hex::decode(hex_digest)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)
}

impl BlobStore {
    /// A store in `dir` (created if missing) with the default limits.
    pub fn open(dir: &Path) -> Result<Self, BlobError> {
        Self::with_limits(dir, MAX_BLOB_BYTES, MAX_STORE_BYTES)
    }

    pub fn with_limits(dir: &Path, max_blob_bytes: usize, max_store_bytes: u64) -> Result<Self, BlobError> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_blob_bytes,
            max_store_bytes,
        })
    }

    fn path(&self, digest: &[u8; 32]) -> PathBuf {
        self.dir.join(hex::encode(digest))
    }

    /// Bytes held by the store.
    pub fn used_bytes(&self) -> Result<u64, BlobError> {
        let mut used = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            used += entry?.metadata()?.len();
        }
        Ok(used)
    }

    /// Store `bytes`; returns their SHA-256. Storing a blob twice is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<[u8; 32], BlobError> {
        if bytes.len() > self.max_blob_bytes {
            return Err(BlobError::TooLarge {
                len: bytes.len(),
                max: self.max_blob_bytes,
            });
        }
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let path = self.path(&digest);
        if path.exists() {
            return Ok(digest);
        }
        let used = self.used_bytes()?;
        if used + bytes.len() as u64 > self.max_store_bytes {
            return Err(BlobError::StoreFull {
                used,
                max: self.max_store_bytes,
            });
        }
        let tmp = self.dir.join(format!(".{}.tmp", hex::encode(digest)));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(digest)
    }

    /// The blob with this digest, if stored (re-hashed on every read).
    pub fn get(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, BlobError> {
        let bytes = match std::fs::read(self.path(digest)) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if Sha256::digest(&bytes).as_slice() != digest {
            return Err(BlobError::Corrupt(hex::encode(digest)));
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chipledger-blobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn put_get_round_trip_and_limits() {
        let dir = temp_dir("roundtrip");
        let store = BlobStore::with_limits(&dir, 8, 12).expect("open");
        let d = store.put(b"image-1").expect("stored");
        assert_eq!(d, <[u8; 32]>::from(Sha256::digest(b"image-1")));
        assert_eq!(store.put(b"image-1").expect("idempotent"), d);
        assert_eq!(store.get(&d).expect("read"), Some(b"image-1".to_vec()));
        assert_eq!(store.get(&[0; 32]).expect("read"), None);
        assert!(matches!(
            store.put(b"123456789"),
            Err(BlobError::TooLarge { len: 9, max: 8 })
        ));
        assert!(matches!(
            store.put(b"image-2"),
            Err(BlobError::StoreFull { used: 7, max: 12 })
        ));
        // A file altered on disk is reported, never served.
        std::fs::write(dir.join(hex::encode(d)), b"tampered").expect("write");
        assert!(matches!(store.get(&d), Err(BlobError::Corrupt(_))));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn digests_are_strict_lowercase_hex() {
        let ok = "ab".repeat(32);
        assert_eq!(parse_digest(&ok).expect("valid"), [0xab; 32]);
        for bad in [
            "",
            "ab",
            &"AB".repeat(32),
            &"zz".repeat(32),
            &"ab".repeat(33),
            "../../etc/passwd",
        ] {
            assert!(matches!(parse_digest(bad), Err(BlobError::BadDigest(_))), "{bad}");
        }
    }
}
