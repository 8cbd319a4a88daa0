//! TLS on the client port (`secureClientPort`), set up as ZooKeeper's `ClientX509Util`
//! reads it: the `zookeeper.ssl.*` properties (a `zoo.cfg` line `ssl.keyStore.location`
//! is the property `zookeeper.ssl.keyStore.location`), rustls underneath.
//!
//! A client certificate, when asked for (`ssl.clientAuth` want or need) and given, must
//! chain to the trust store, and becomes the connection's `x509` identity (its subject as
//! Java's `X500Principal.getName()` writes it), as ZooKeeper's
//! `X509AuthenticationProvider` makes it, when that provider is configured
//! (`authProvider.N=org.apache.zookeeper.server.auth.X509AuthenticationProvider`); a
//! connection that proves a certificate with no such provider is closed, as ZooKeeper
//! closes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use zk_jute::data::Id;

use crate::keystore::{self, StoreError, StoreType};

/// `ssl.clientAuth`: whether a client must, may or may not present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// One is asked for; a client without one is served.
    Want,
    /// One is required (ZooKeeper's default).
    Need,
}

/// A key or trust store as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSetting {
    /// `*.location`.
    pub path: PathBuf,
    /// `*.password` (or the contents of `*.passwordPath`); empty when unset.
    pub password: String,
    /// `*.type`, or `None` to infer it from the file name.
    pub kind: Option<StoreType>,
}

/// The client port's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.keyStore.*`: the server's key and certificate chain.
    pub key_store: Option<StoreSetting>,
    /// `ssl.trustStore.*`: the certificates a client's chain must end in.
    pub trust_store: Option<StoreSetting>,
    /// `ssl.clientAuth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabledProtocols` (or `ssl.protocol`): `TLSv1.2`, `TLSv1.3`.
    pub protocols: Vec<String>,
    /// `ssl.ciphersuites`, IANA names as Java takes them; empty for rustls's defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.authProvider`: the scheme a client certificate authenticates with.
    pub auth_provider: String,
    /// The registered authentication schemes: `x509`, and those of the `authProvider.N`
    /// classes this server knows.
    pub auth_schemes: Vec<String>,
    /// `zookeeper.X509AuthenticationProvider.superUser`.
    pub super_user: Option<String>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            key_store: None,
            trust_store: None,
            client_auth: ClientAuth::Need,
            // ZooKeeper 3.8.0 enabled TLSv1.2 alone; later releases default to TLSv1.3
            // where the JVM has it, which enables TLSv1.3 and TLSv1.2.
            protocols: vec!["TLSv1.3".into(), "TLSv1.2".into()],
            cipher_suites: Vec::new(),
            auth_provider: "x509".into(),
            auth_schemes: Vec::new(),
            super_user: None,
        }
    }
}

/// Why the TLS settings cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A store could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting is wrong or missing.
    #[error("{0}")]
    Setting(String),
    /// rustls refused the result.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The scheme of a ZooKeeper authentication provider class this server implements.
fn provider_scheme(class: &str) -> Option<&'static str> {
    match class.trim() {
        "org.apache.zookeeper.server.auth.X509AuthenticationProvider" => Some("x509"),
        "org.apache.zookeeper.server.auth.DigestAuthenticationProvider" => Some("digest"),
        "org.apache.zookeeper.server.auth.SASLAuthenticationProvider" => Some("sasl"),
        "org.apache.zookeeper.server.auth.IPAuthenticationProvider" => Some("ip"),
        _ => None,
    }
}

impl TlsSettings {
    /// Reads the settings from the system properties (with `zoo.cfg`'s keys among them).
    pub fn from_properties(system: &BTreeMap<String, String>) -> Result<Self, TlsError> {
        let get = |name: &str| {
            system
                .get(&format!("zookeeper.ssl.{name}"))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let store = |prefix: &str| -> Result<Option<StoreSetting>, TlsError> {
            let Some(path) = get(&format!("{prefix}.location")) else {
                return Ok(None);
            };
            let password = match get(&format!("{prefix}.passwordPath")) {
                Some(file) => std::fs::read_to_string(&file)
                    .map_err(|e| {
                        TlsError::Setting(format!("ssl.{prefix}.passwordPath {file}: {e}"))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => get(&format!("{prefix}.password")).unwrap_or_default(),
            };
            let kind = get(&format!("{prefix}.type"))
                .map(|t| StoreType::parse(&t))
                .transpose()?;
            Ok(Some(StoreSetting {
                path: path.into(),
                password,
                kind,
            }))
        };
        let mut settings = TlsSettings {
            key_store: store("keyStore")?,
            trust_store: store("trustStore")?,
            ..TlsSettings::default()
        };
        if let Some(auth) = get("clientAuth") {
            settings.client_auth = match auth.to_ascii_lowercase().as_str() {
                "none" => ClientAuth::None,
                "want" => ClientAuth::Want,
                "need" => ClientAuth::Need,
                other => {
                    return Err(TlsError::Setting(format!(
                        "ssl.clientAuth {other:?}: expected none, want or need"
                    )));
                }
            };
        }
        if let Some(list) = get("enabledProtocols") {
            settings.protocols = list
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
        } else if let Some(protocol) = get("protocol") {
            // The JVM's defaults for a context of that protocol.
            settings.protocols = match protocol.as_str() {
                "TLSv1.3" | "TLS" => vec!["TLSv1.3".into(), "TLSv1.2".into()],
                _ => vec![protocol],
            };
        }
        if let Some(list) = get("ciphersuites") {
            settings.cipher_suites = list
                .split(',')
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
        }
        if let Some(provider) = get("authProvider") {
            settings.auth_provider = provider;
        }
        // A server with a secure port registers X509AuthenticationProvider itself
        // (ZooKeeper's `configureSSLAuth`).
        settings.auth_schemes.push("x509".into());
        for (key, class) in system {
            if key.starts_with("zookeeper.authProvider.") {
                match provider_scheme(class) {
                    Some(scheme) => settings.auth_schemes.push(scheme.to_owned()),
                    None => tracing::warn!(%key, %class, "unknown authentication provider"),
                }
            }
        }
        settings.super_user = system
            .get("zookeeper.X509AuthenticationProvider.superUser")
            .cloned();
        for unsupported in ["crl", "ocsp"] {
            if get(unsupported).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                tracing::warn!(
                    setting = format!("ssl.{unsupported}"),
                    "revocation checking is not supported; the setting is ignored"
                );
            }
        }
        Ok(settings)
    }

    /// The rustls configuration these settings describe: the key store's identity,
    /// the protocols and suites, and the client certificate check.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let key_store = self.key_store.as_ref().ok_or_else(|| {
            TlsError::Setting("secureClientPort needs ssl.keyStore.location".into())
        })?;
        let identity =
            keystore::load_identity(&key_store.path, &key_store.password, key_store.kind)?;
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let wanted: Vec<String> = self
                .cipher_suites
                .iter()
                .map(|c| c.to_ascii_uppercase())
                .collect();
            provider.cipher_suites.retain(|suite| {
                let name = format!("{:?}", suite.suite());
                // rustls names TLS 1.3's suites TLS13_*, IANA (and Java) TLS_*.
                let iana = name.replacen("TLS13_", "TLS_", 1);
                wanted.contains(&name) || wanted.contains(&iana)
            });
            if provider.cipher_suites.is_empty() {
                return Err(TlsError::Setting(format!(
                    "ssl.ciphersuites: none of {:?} is supported",
                    self.cipher_suites
                )));
            }
        }
        let mut versions = Vec::new();
        for protocol in &self.protocols {
            match protocol.as_str() {
                "TLSv1.3" => versions.push(&rustls::version::TLS13),
                "TLSv1.2" => versions.push(&rustls::version::TLS12),
                // Java's generic "TLS" context: every version.
                "TLS" => versions.extend([&rustls::version::TLS13, &rustls::version::TLS12]),
                other => tracing::warn!(protocol = other, "TLS protocol not supported; ignored"),
            }
        }
        if versions.is_empty() {
            return Err(TlsError::Setting(format!(
                "ssl.enabledProtocols: none of {:?} is supported (TLSv1.2, TLSv1.3)",
                self.protocols
            )));
        }
        let builder = ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&versions)?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let mut roots = RootCertStore::empty();
                for cert in self.trust_certificates()? {
                    roots.add(cert)?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
                let verifier = if auth == ClientAuth::Want {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| TlsError::Setting(format!("client verifier: {e}")))?,
                )
            }
        };
        Ok(Arc::new(
            builder.with_single_cert(identity.chain, identity.key)?,
        ))
    }

    /// The trust store's certificates, or the system's CA bundle when none is set (the
    /// JVM's default trust store).
    fn trust_certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        match &self.trust_store {
            Some(store) => Ok(keystore::load_trust(
                &store.path,
                &store.password,
                store.kind,
            )?),
            None => {
                let bundle = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
                keystore::load_trust(bundle, "", Some(StoreType::Pem)).map_err(|e| {
                    TlsError::Setting(format!(
                        "ssl.clientAuth asks for client certificates but no \
                         ssl.trustStore.location is set, and the system's CA bundle \
                         cannot be read: {e}"
                    ))
                })
            }
        }
    }

    /// The identities a verified client certificate chain gives the connection
    /// (`x509`, and `super` for the configured super user), or why the connection must
    /// close.
    pub fn identities(&self, chain: &[CertificateDer<'_>]) -> Result<Vec<Id>, String> {
        let Some(cert) = chain.first() else {
            return Ok(Vec::new());
        };
        if !self.auth_schemes.contains(&self.auth_provider) {
            return Err(format!(
                "X509 Auth provider not found: {}",
                self.auth_provider
            ));
        }
        let name = subject_name(cert)?;
        let mut ids = Vec::new();
        if self.super_user.as_deref() == Some(name.as_str()) {
            ids.push(Id {
                scheme: "super".into(),
                id: name.clone(),
            });
        }
        ids.push(Id {
            scheme: self.auth_provider.clone(),
            id: name,
        });
        Ok(ids)
    }
}

/// A certificate's subject as Java's `X500Principal.getName()` (RFC 2253) writes it: the
/// last RDN first, joined by commas, known attributes by keyword and others by OID with
/// their DER value in hex.
pub fn subject_name(cert: &CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| format!("the client certificate does not parse: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in parsed.subject().iter() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            let oid = attr.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let text = attr.as_str().ok();
            match (keyword, text) {
                (Some(keyword), Some(text)) => parts.push(format!("{keyword}={}", escape(text))),
                _ => {
                    let raw = attr.attr_value();
                    let mut hex = String::from("#");
                    // The value's whole DER encoding: tag, length, content.
                    let mut der = vec![raw.header.tag().0 as u8];
                    let len = raw.data.len();
                    if len < 0x80 {
                        der.push(len as u8);
                    } else {
                        let bytes = len.to_be_bytes();
                        let skip = bytes.iter().take_while(|b| **b == 0).count();
                        der.push(0x80 | (bytes.len() - skip) as u8);
                        der.extend(bytes.iter().skip(skip));
                    }
                    der.extend(raw.data);
                    for b in der {
                        hex.push_str(&format!("{b:02x}"));
                    }
                    parts.push(format!("{oid}={hex}"));
                }
            }
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 2253's escaping of an attribute value.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_are_read_from_zookeepers_properties() {
        let s = TlsSettings::from_properties(&props(&[
            ("zookeeper.ssl.keyStore.location", "/k.jks"),
            ("zookeeper.ssl.keyStore.password", "pw"),
            ("zookeeper.ssl.trustStore.location", "/t.pem"),
            ("zookeeper.ssl.trustStore.type", "PEM"),
            ("zookeeper.ssl.clientAuth", "WANT"),
            ("zookeeper.ssl.enabledProtocols", "TLSv1.2"),
            (
                "zookeeper.authProvider.x509",
                "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
            ),
        ]))
        .unwrap();
        assert_eq!(s.key_store.as_ref().unwrap().password, "pw");
        assert_eq!(s.key_store.as_ref().unwrap().kind, None);
        assert_eq!(s.trust_store.unwrap().kind, Some(StoreType::Pem));
        assert_eq!(s.client_auth, ClientAuth::Want);
        assert_eq!(s.protocols, ["TLSv1.2"]);
        let modern =
            TlsSettings::from_properties(&props(&[("zookeeper.ssl.protocol", "TLSv1.3")])).unwrap();
        assert_eq!(modern.protocols, ["TLSv1.3", "TLSv1.2"]);
        assert_eq!(s.auth_schemes, ["x509", "x509"]);
        let defaults = TlsSettings::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(defaults.client_auth, ClientAuth::Need);
        assert!(
            TlsSettings::from_properties(&props(&[("zookeeper.ssl.clientAuth", "maybe")])).is_err()
        );
    }

    #[test]
    fn rfc_2253_escapes_what_it_must() {
        assert_eq!(escape("a,b"), "a\\,b");
        assert_eq!(escape("#x "), "\\#x\\ ");
        assert_eq!(escape("plain"), "plain");
    }
}
