//! Tarball integrity: Subresource Integrity strings (`sha512-<base64>`) and npm's legacy
//! `shasum` (hex sha1), with a streaming hasher so a download is checked as it arrives.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha384, Sha512};

/// The hash algorithms npm publishes, weakest first so the strongest sorts last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// Only from the legacy `shasum` field, used when a version has no `integrity`.
    Sha1,
    /// Allowed by SRI; rare on the registry.
    Sha256,
    /// Allowed by SRI; rare on the registry.
    Sha384,
    /// What npm has published for every version since 2017.
    Sha512,
}

/// One expected digest of a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integrity {
    algorithm: Algorithm,
    digest: Vec<u8>,
}

impl Integrity {
    /// Picks the strongest supported hash of an SRI string (`sha512-… sha1-…`); unknown
    /// algorithms and options (`?foo`) are ignored as the SRI spec asks.
    pub fn parse_sri(text: &str) -> Option<Integrity> {
        text.split_whitespace()
            .filter_map(|entry| {
                let (name, rest) = entry.split_once('-')?;
                let algorithm = match name {
                    "sha512" => Algorithm::Sha512,
                    "sha384" => Algorithm::Sha384,
                    "sha256" => Algorithm::Sha256,
                    "sha1" => Algorithm::Sha1,
                    _ => return None,
                };
                let encoded = rest.split('?').next().unwrap_or_default();
                let digest = STANDARD.decode(encoded).ok()?;
                (digest.len() == algorithm.digest_len()).then_some(Integrity { algorithm, digest })
            })
            .max_by_key(|integrity| integrity.algorithm)
    }

    /// Reads the legacy hex `shasum` field.
    pub fn from_shasum(hex_digest: &str) -> Option<Integrity> {
        let digest = hex::decode(hex_digest.trim()).ok()?;
        (digest.len() == Algorithm::Sha1.digest_len()).then_some(Integrity {
            algorithm: Algorithm::Sha1,
            digest,
        })
    }

    /// A file-name-safe key for content-addressed storage: `sha512-<hex>`.
    pub fn store_key(&self) -> String {
        format!("{}-{}", self.algorithm.name(), hex::encode(&self.digest))
    }

    /// A short form of the key for directory names that must stay readable.
    pub fn short_key(&self) -> String {
        hex::encode(&self.digest[..8])
    }

    /// A hasher for the same algorithm, to compare a download against this value.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }

    /// Whether `actual` (from [`Hasher::finish`]) is this digest.
    pub fn matches(&self, actual: &Integrity) -> bool {
        self == actual
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.algorithm.name(),
            STANDARD.encode(&self.digest)
        )
    }
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }
}

/// Incremental hash of a tarball being downloaded or re-read from the store.
pub enum Hasher {
    /// Legacy `shasum`.
    Sha1(Sha1),
    /// SRI sha256.
    Sha256(Sha256),
    /// SRI sha384.
    Sha384(Sha384),
    /// SRI sha512.
    Sha512(Sha512),
}

impl Hasher {
    fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Feeds the next chunk.
    pub fn update(&mut self, chunk: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(chunk),
            Hasher::Sha256(h) => h.update(chunk),
            Hasher::Sha384(h) => h.update(chunk),
            Hasher::Sha512(h) => h.update(chunk),
        }
    }

    /// The digest of everything fed so far, in the same algorithm as the expectation.
    pub fn finish(self) -> Integrity {
        let (algorithm, digest) = match self {
            Hasher::Sha1(h) => (Algorithm::Sha1, h.finalize().to_vec()),
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha384(h) => (Algorithm::Sha384, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        Integrity { algorithm, digest }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sri_of(algorithm: Algorithm, data: &[u8]) -> Integrity {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(data);
        hasher.finish()
    }

    #[test]
    fn strongest_known_hash_of_an_sri_list_wins() {
        let sha1 = sri_of(Algorithm::Sha1, b"tarball");
        let sha512 = sri_of(Algorithm::Sha512, b"tarball");
        let text = format!("{sha1} md5-AAAA {sha512}?opt");
        assert_eq!(Integrity::parse_sri(&text), Some(sha512));
    }

    #[test]
    fn sri_round_trips_through_display() {
        let integrity = sri_of(Algorithm::Sha512, b"hello");
        assert_eq!(
            Integrity::parse_sri(&integrity.to_string()),
            Some(integrity)
        );
    }

    #[test]
    fn streamed_hash_matches_only_the_same_bytes() {
        let expected = sri_of(Algorithm::Sha512, b"hello world");
        let mut hasher = expected.hasher();
        hasher.update(b"hello ");
        hasher.update(b"world");
        assert!(expected.matches(&hasher.finish()));

        let mut hasher = expected.hasher();
        hasher.update(b"hello w0rld");
        assert!(!expected.matches(&hasher.finish()));
    }

    #[test]
    fn shasum_is_hex_sha1() {
        // sha1("abc")
        let integrity = Integrity::from_shasum("a9993e364706816aba3e25717850c26c9cd0d89d").unwrap();
        assert_eq!(integrity, sri_of(Algorithm::Sha1, b"abc"));
        assert!(Integrity::from_shasum("xyz").is_none());
    }

    #[test]
    fn malformed_sri_is_rejected() {
        assert_eq!(Integrity::parse_sri("sha512-notbase64!"), None);
        assert_eq!(Integrity::parse_sri("sha512-AAAA"), None);
        assert_eq!(Integrity::parse_sri(""), None);
    }
}
