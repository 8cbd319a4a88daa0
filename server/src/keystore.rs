//! Key and trust stores in the formats ZooKeeper's `X509Util` reads for `ssl.keyStore.*`
//! and `ssl.trustStore.*`: PEM (a private key and its certificate chain in one file; a
//! trust store of certificates), PKCS#12 and Java's JKS. The type is the configured one,
//! or else the file's extension's (`.pem`, `.p12`, `.jks`), as ZooKeeper's
//! `KeyStoreFileType.fromFilename` infers it.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha1::{Digest, Sha1};

/// A store's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// PEM: `-----BEGIN CERTIFICATE-----` blocks, and for a key store a private key.
    Pem,
    /// PKCS#12 (`.p12`).
    Pkcs12,
    /// Java's own key store format (`.jks`).
    Jks,
}

impl StoreType {
    /// The type a `ssl.*Store.type` value names (`PEM`, `PKCS12`, `JKS`; any case).
    pub fn parse(name: &str) -> Result<Self, StoreError> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" => Ok(StoreType::Jks),
            other => Err(StoreError::Type(other.to_owned())),
        }
    }

    /// The type of a file by its extension (exactly `.pem`, `.p12` or `.jks`), as
    /// ZooKeeper infers it when none is set.
    pub fn from_path(path: &Path) -> Result<Self, StoreError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("pem") => Ok(StoreType::Pem),
            Some("p12") => Ok(StoreType::Pkcs12),
            Some("jks") => Ok(StoreType::Jks),
            _ => Err(StoreError::Format {
                path: path.into(),
                reason: "no store type set, and the file name does not end in .pem, .p12 \
                         or .jks"
                    .into(),
            }),
        }
    }
}

/// Why a store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a store of its type, or holds nothing usable.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The password does not open the store.
    #[error("{0}: wrong password, or the store is corrupt")]
    Password(PathBuf),
    /// A store type ZooKeeper names that this server does not read.
    #[error("store type {0:?} is not one of PEM, PKCS12, JKS")]
    Type(String),
}

/// A private key and the certificate chain that goes with it, the entity's first.
#[derive(Debug)]
pub struct Identity {
    /// The chain, the entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
}

/// A PKCS#8 private key as ring reads it: Java (keytool, and ZooKeeper's users' stores)
/// leaves the public key out of an EC key, which ring requires, so P-256 and P-384 keys
/// are written again with it. Other keys are returned as they are.
fn pkcs8_key(der: Vec<u8>) -> PrivateKeyDer<'static> {
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let again = if let Ok(key) = p256::SecretKey::from_pkcs8_der(&der) {
        key.to_pkcs8_der().ok()
    } else if let Ok(key) = p384::SecretKey::from_pkcs8_der(&der) {
        key.to_pkcs8_der().ok()
    } else {
        None
    };
    let der = again.map_or(der, |doc| doc.as_bytes().to_vec());
    PrivatePkcs8KeyDer::from(der).into()
}

fn read(path: &Path) -> Result<Vec<u8>, StoreError> {
    std::fs::read(path).map_err(|source| StoreError::Read {
        path: path.into(),
        source,
    })
}

fn format(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::Format {
        path: path.into(),
        reason: reason.into(),
    }
}

fn store_type(path: &Path, kind: Option<StoreType>) -> Result<StoreType, StoreError> {
    kind.map_or_else(|| StoreType::from_path(path), Ok)
}

/// Loads a key store: its (first) private key and that key's certificate chain.
pub fn load_identity(
    path: &Path,
    password: &str,
    kind: Option<StoreType>,
) -> Result<Identity, StoreError> {
    let bytes = read(path)?;
    match store_type(path, kind)? {
        StoreType::Pem => pem_identity(path, &bytes, password),
        StoreType::Pkcs12 => {
            let store = pkcs12(path, &bytes, password)?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or_else(|| format(path, "no private key in the store"))?;
            let certs: Vec<CertificateDer<'static>> = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            if certs.is_empty() {
                return Err(format(path, "the private key has no certificate"));
            }
            Ok(Identity {
                chain: certs,
                key: pkcs8_key(chain.key().as_der().to_vec()),
            })
        }
        StoreType::Jks => {
            let store = Jks::parse(path, &bytes, password)?;
            let (key, chain) = store
                .keys
                .into_iter()
                .next()
                .ok_or_else(|| format(path, "no private key in the store"))?;
            if chain.is_empty() {
                return Err(format(path, "the private key has no certificate"));
            }
            Ok(Identity {
                chain,
                key: pkcs8_key(key),
            })
        }
    }
}

/// Loads a trust store: every certificate in it (for PKCS#12 and JKS, the trusted
/// certificate entries and the chains of key entries, as Java's trust manager takes
/// them).
pub fn load_trust(
    path: &Path,
    password: &str,
    kind: Option<StoreType>,
) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let bytes = read(path)?;
    let certs: Vec<CertificateDer<'static>> = match store_type(path, kind)? {
        StoreType::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<_, _>>()
            .map_err(|e| format(path, format!("bad PEM: {e}")))?,
        StoreType::Pkcs12 => {
            let store = pkcs12(path, &bytes, password)?;
            let mut certs = Vec::new();
            for (_, entry) in store.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        certs.push(CertificateDer::from(c.as_der().to_vec()));
                    }
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                        if let Some(c) = chain.certs().first() {
                            certs.push(CertificateDer::from(c.as_der().to_vec()));
                        }
                    }
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
            certs
        }
        StoreType::Jks => {
            let store = Jks::parse(path, &bytes, password)?;
            let mut certs = store.trusted;
            certs.extend(
                store
                    .keys
                    .into_iter()
                    .filter_map(|(_, c)| c.into_iter().next()),
            );
            certs
        }
    };
    if certs.is_empty() {
        return Err(format(path, "no certificate in the trust store"));
    }
    Ok(certs)
}

fn pem_identity(path: &Path, bytes: &[u8], password: &str) -> Result<Identity, StoreError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format(path, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(format(path, "no certificate in the PEM key store"));
    }
    let key = match PrivateKeyDer::from_pem_slice(bytes) {
        Ok(PrivateKeyDer::Pkcs8(key)) => pkcs8_key(key.secret_pkcs8_der().to_vec()),
        Ok(key) => key,
        Err(_) if contains(bytes, b"-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            decrypt_pem_key(path, bytes, password)?
        }
        Err(e) => return Err(format(path, format!("no private key in the PEM file: {e}"))),
    };
    Ok(Identity { chain, key })
}

/// An `ENCRYPTED PRIVATE KEY` block (PKCS#8, PBES2), opened with the key store's password
/// as ZooKeeper's `PemReader` opens it.
fn decrypt_pem_key(
    path: &Path,
    bytes: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, StoreError> {
    use pkcs8::der::Decode;
    let text = std::str::from_utf8(bytes).map_err(|_| format(path, "a PEM file not in UTF-8"))?;
    let (begin, end) = (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        "-----END ENCRYPTED PRIVATE KEY-----",
    );
    let block = text
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(body, _)| body)
        .ok_or_else(|| format(path, "an unterminated ENCRYPTED PRIVATE KEY block"))?;
    let b64: String = block.split_whitespace().collect();
    let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64)
        .map_err(|e| format(path, format!("bad base64 in the key: {e}")))?;
    let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&der)
        .map_err(|e| format(path, format!("an encrypted key that does not decode: {e}")))?;
    let plain = info
        .decrypt(password)
        .map_err(|_| StoreError::Password(path.into()))?;
    Ok(pkcs8_key(plain.as_bytes().to_vec()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn pkcs12(path: &Path, bytes: &[u8], password: &str) -> Result<p12_keystore::KeyStore, StoreError> {
    p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) => StoreError::Password(path.into()),
            other => format(path, format!("not a PKCS12 store: {other}")),
        })
}

/// What a JKS file holds: its private keys (PKCS#8, with their chains) and its trusted
/// certificates.
struct Jks {
    keys: Vec<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    trusted: Vec<CertificateDer<'static>>,
}

/// The magic number of a JKS file (a JCEKS file starts with 0xCECECECE).
const JKS_MAGIC: u32 = 0xFEED_FEED;
/// The algorithm of Sun's JKS key protection (`KeyProtector`).
const JKS_KEY_PROTECTOR_OID: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];

/// A big-endian reader over a JKS file that fails instead of panicking.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    /// Java's `writeUTF`: a 16-bit length, then (modified) UTF-8.
    fn utf(&mut self) -> Option<&'a [u8]> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn blob(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u32()?).ok()?;
        self.take(len)
    }
}

/// A password as Java's key store code hashes it: each UTF-16 unit as two bytes,
/// big-endian.
fn utf16_be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

impl Jks {
    fn parse(path: &Path, bytes: &[u8], password: &str) -> Result<Jks, StoreError> {
        let bad = || format(path, "not a JKS key store, or a truncated one");
        if bytes.len() < 20 {
            return Err(bad());
        }
        // The file's integrity: SHA-1 over the password, "Mighty Aphrodite" and the body.
        let (body, digest) = bytes.split_at(bytes.len() - 20);
        let mut sha = Sha1::new();
        sha.update(utf16_be(password));
        sha.update(b"Mighty Aphrodite");
        sha.update(body);
        let mut c = Cursor { bytes: body, at: 0 };
        let magic = c.u32().ok_or_else(bad)?;
        if magic != JKS_MAGIC {
            return Err(format(
                path,
                if magic == 0xCECE_CECE {
                    "a JCEKS store, not JKS: convert it to PKCS12"
                } else {
                    "not a JKS key store"
                },
            ));
        }
        if sha.finalize().as_slice() != digest {
            return Err(StoreError::Password(path.into()));
        }
        let version = c.u32().ok_or_else(bad)?;
        if !matches!(version, 1 | 2) {
            return Err(format(path, format!("JKS version {version} is unknown")));
        }
        let count = c.u32().ok_or_else(bad)?;
        let mut store = Jks {
            keys: Vec::new(),
            trusted: Vec::new(),
        };
        let cert = |c: &mut Cursor<'_>| -> Option<CertificateDer<'static>> {
            if version == 2 {
                // The certificate type, "X.509".
                c.utf()?;
            }
            Some(CertificateDer::from(c.blob()?.to_vec()))
        };
        for _ in 0..count {
            let tag = c.u32().ok_or_else(bad)?;
            c.utf().ok_or_else(bad)?; // alias
            c.take(8).ok_or_else(bad)?; // creation date
            match tag {
                1 => {
                    let protected = c.blob().ok_or_else(bad)?;
                    let n = c.u32().ok_or_else(bad)?;
                    let mut chain = Vec::new();
                    for _ in 0..n {
                        chain.push(cert(&mut c).ok_or_else(bad)?);
                    }
                    let key = unprotect(path, protected, password)?;
                    store.keys.push((key, chain));
                }
                2 => store.trusted.push(cert(&mut c).ok_or_else(bad)?),
                other => return Err(format(path, format!("unknown JKS entry tag {other}"))),
            }
        }
        Ok(store)
    }
}

/// Reads one DER element at the start of `der`: its tag, its content, and what follows.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (content, after) = rest.split_at_checked(len)?;
    Some((tag, content, after))
}

/// Recovers the PKCS#8 key of a JKS key entry: an `EncryptedPrivateKeyInfo` whose data
/// is a salt, the key XORed with a SHA-1 stream of the password and salt, and a SHA-1
/// check of the password and the key (Sun's `KeyProtector`).
fn unprotect(path: &Path, protected: &[u8], password: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || format(path, "a JKS key entry does not decode");
    let (_, info, _) = der_element(protected).ok_or_else(bad)?;
    let (_, algorithm, rest) = der_element(info).ok_or_else(bad)?;
    let (_, oid, _) = der_element(algorithm).ok_or_else(bad)?;
    if oid != JKS_KEY_PROTECTOR_OID {
        return Err(format(
            path,
            "a JKS key entry protected by an unknown algorithm",
        ));
    }
    let (_, encrypted, _) = der_element(rest).ok_or_else(bad)?;
    if encrypted.len() < 40 {
        return Err(bad());
    }
    let (salt, rest) = encrypted.split_at(20);
    let (masked, check) = rest.split_at(rest.len() - 20);
    let password = utf16_be(password);
    let mut key = Vec::with_capacity(masked.len());
    let mut block = salt.to_vec();
    for chunk in masked.chunks(20) {
        let mut sha = Sha1::new();
        sha.update(&password);
        sha.update(&block);
        block = sha.finalize().to_vec();
        key.extend(chunk.iter().zip(&block).map(|(a, b)| a ^ b));
    }
    let mut sha = Sha1::new();
    sha.update(&password);
    sha.update(&key);
    if sha.finalize().as_slice() != check {
        return Err(StoreError::Password(path.into()));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_zookeepers_names_and_extensions() {
        assert_eq!(StoreType::parse("pkcs12").unwrap(), StoreType::Pkcs12);
        assert_eq!(StoreType::parse(" JKS ").unwrap(), StoreType::Jks);
        assert!(matches!(
            StoreType::parse("BCFKS"),
            Err(StoreError::Type(_))
        ));
        for (name, kind) in [
            ("a.pem", StoreType::Pem),
            ("a.p12", StoreType::Pkcs12),
            ("a.jks", StoreType::Jks),
        ] {
            assert_eq!(StoreType::from_path(Path::new(name)).unwrap(), kind);
        }
        // ZooKeeper's rule is exact: no other extension, no other case.
        for name in ["a.key", "a.pfx", "a.JKS"] {
            assert!(StoreType::from_path(Path::new(name)).is_err(), "{name}");
        }
    }

    #[test]
    fn truncated_or_foreign_jks_files_are_refused_without_panicking() {
        let path = Path::new("k.jks");
        for bytes in [&b""[..], &[0xfe, 0xed, 0xfe, 0xed][..], &[0u8; 64][..]] {
            assert!(Jks::parse(path, bytes, "pw").is_err());
        }
        let mut jceks = vec![0xce, 0xce, 0xce, 0xce];
        jceks.extend([0u8; 40]);
        let error = Jks::parse(path, &jceks, "pw").err().unwrap().to_string();
        assert!(error.contains("JCEKS"), "{error}");
    }

    #[test]
    fn der_lengths_past_the_input_are_refused() {
        assert_eq!(der_element(&[0x30, 0x03, 1, 2]), None);
        assert_eq!(der_element(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(
            der_element(&[0x04, 0x01, 7, 9]),
            Some((0x04, &[7][..], &[9][..]))
        );
    }
}
