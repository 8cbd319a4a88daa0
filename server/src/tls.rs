//! TLS on the client port (`secureClientPort`), set up as ZooKeeper's `ClientX509Util`
//! reads it: the `zookeeper.ssl.*` properties (a `zoo.cfg` line `ssl.keyStore.location`
//! is the property `zookeeper.ssl.keyStore.location`), rustls underneath; and between
//! peers (`sslQuorum`), from `zookeeper.ssl.quorum.*` as `QuorumX509Util` reads them,
//! where a peer's certificate also proves its server id ([`TlsSettings::peer_tls`]).
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

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use zk_election::peer_tls::{PeerAuthority, PeerInfo, PeerTls};
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
    /// `zookeeper.X509AuthenticationProvider.superUser`.
    pub super_user: Option<String>,
    /// `ssl.hostnameVerification` (`ssl.quorum.hostnameVerification` between peers):
    /// whether a peer's certificate must be valid for its host.
    pub hostname_verification: bool,
    /// The keys' prefix in `zoo.cfg`: `ssl` for the client port, `ssl.quorum` between
    /// peers (for messages).
    pub prefix: String,
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
            super_user: None,
            hostname_verification: true,
            prefix: "ssl".into(),
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

/// The ZooKeeper authentication provider classes this server implements.
const KNOWN_PROVIDERS: &[&str] = &[
    "org.apache.zookeeper.server.auth.X509AuthenticationProvider",
    "org.apache.zookeeper.server.auth.DigestAuthenticationProvider",
    "org.apache.zookeeper.server.auth.SASLAuthenticationProvider",
    "org.apache.zookeeper.server.auth.IPAuthenticationProvider",
];

impl TlsSettings {
    /// Reads the client port's settings from the system properties (with `zoo.cfg`'s
    /// keys among them): `zookeeper.ssl.*`, as ZooKeeper's `ClientX509Util`.
    pub fn from_properties(system: &BTreeMap<String, String>) -> Result<Self, TlsError> {
        Self::read(system, "ssl")
    }

    /// Reads the peers' settings (`sslQuorum`): `zookeeper.ssl.quorum.*`, as ZooKeeper's
    /// `QuorumX509Util`.
    pub fn quorum_from_properties(system: &BTreeMap<String, String>) -> Result<Self, TlsError> {
        Self::read(system, "ssl.quorum")
    }

    fn read(system: &BTreeMap<String, String>, prefix: &str) -> Result<Self, TlsError> {
        let get = |name: &str| {
            system
                .get(&format!("zookeeper.{prefix}.{name}"))
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let store = |store: &str| -> Result<Option<StoreSetting>, TlsError> {
            let Some(path) = get(&format!("{store}.location")) else {
                return Ok(None);
            };
            let password = match get(&format!("{store}.passwordPath")) {
                Some(file) => std::fs::read_to_string(&file)
                    .map_err(|e| {
                        TlsError::Setting(format!("{prefix}.{store}.passwordPath {file}: {e}"))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => get(&format!("{store}.password")).unwrap_or_default(),
            };
            let kind = get(&format!("{store}.type"))
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
            prefix: prefix.to_owned(),
            ..TlsSettings::default()
        };
        if let Some(verify) = get("hostnameVerification") {
            settings.hostname_verification = !verify.eq_ignore_ascii_case("false");
        }
        if let Some(auth) = get("clientAuth") {
            settings.client_auth = match auth.to_ascii_lowercase().as_str() {
                "none" => ClientAuth::None,
                "want" => ClientAuth::Want,
                "need" => ClientAuth::Need,
                other => {
                    return Err(TlsError::Setting(format!(
                        "{prefix}.clientAuth {other:?}: expected none, want or need"
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
        for (key, class) in system {
            if key.starts_with("zookeeper.authProvider.")
                && !KNOWN_PROVIDERS.contains(&class.trim())
            {
                tracing::warn!(%key, %class, "unknown authentication provider");
            }
        }
        settings.super_user = system
            .get("zookeeper.X509AuthenticationProvider.superUser")
            .cloned();
        for unsupported in ["crl", "ocsp"] {
            if get(unsupported).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
                tracing::warn!(
                    setting = format!("{prefix}.{unsupported}"),
                    "revocation checking is not supported; the setting is ignored"
                );
            }
        }
        Ok(settings)
    }

    /// The rustls configuration these settings describe: the key store's identity,
    /// the protocols and suites, and the client certificate check.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        self.server_config_with(self.client_auth)
    }

    fn server_config_with(&self, client_auth: ClientAuth) -> Result<Arc<ServerConfig>, TlsError> {
        let (provider, versions) = self.provider()?;
        let certified = self.certified_key(&provider)?;
        let builder =
            ServerConfig::builder_with_provider(provider).with_protocol_versions(&versions)?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let anchors = self.trust_certificates()?;
                let mut roots = RootCertStore::empty();
                for cert in &anchors {
                    roots.add(cert.clone())?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
                let verifier = if auth == ClientAuth::Want {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let webpki = verifier
                    .build()
                    .map_err(|e| TlsError::Setting(format!("client verifier: {e}")))?;
                builder.with_client_cert_verifier(Arc::new(V1Tolerant {
                    webpki,
                    anchors,
                    provider: rustls::crypto::ring::default_provider(),
                }))
            }
        };
        Ok(Arc::new(builder.with_cert_resolver(Arc::new(
            SingleCertAndKey::from(certified),
        ))))
    }

    /// The dialing side's configuration, between peers or for a client (the Java
    /// client reads the same `zookeeper.ssl.*` properties): the key store's identity, if
    /// one is set, as the client certificate, and the server's certificate checked
    /// against the trust store (the system's CA bundle without one) and, with
    /// `hostnameVerification`, against the host dialed.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let (provider, versions) = self.provider()?;
        let certified = match self.key_store {
            Some(_) => Some(self.certified_key(&provider)?),
            None => None,
        };
        let mut roots = RootCertStore::empty();
        for cert in self.trust_certificates()? {
            roots.add(cert)?;
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| TlsError::Setting(format!("server verifier: {e}")))?;
        let builder =
            ClientConfig::builder_with_provider(provider).with_protocol_versions(&versions)?;
        let builder = if self.hostname_verification {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHost(webpki)))
        };
        Ok(Arc::new(match certified {
            Some(certified) => {
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)))
            }
            None => builder.with_no_client_auth(),
        }))
    }

    /// Mutual TLS between the members of `servers` (`sslQuorum`), with each peer's
    /// server id proven by its certificate: a peer may speak as server N only with a
    /// certificate valid for the host of the `server.N` line, as ZooKeeper's
    /// `ssl.quorum.hostnameVerification` checks a peer's certificate against its host.
    /// Client certificates are always required between peers.
    pub fn peer_tls(
        &self,
        servers: &BTreeMap<u64, zk_election::ServerLine>,
    ) -> Result<PeerTls, TlsError> {
        if self.client_auth != ClientAuth::Need {
            tracing::warn!(
                setting = format!("{}.clientAuth", self.prefix),
                "peers must prove their server id with a certificate: the setting is ignored"
            );
        }
        if !self.hostname_verification {
            tracing::warn!(
                "{}.hostnameVerification=false: any peer with a trusted certificate may \
                 speak for any server id",
                self.prefix
            );
        }
        Ok(PeerTls {
            server: self.server_config_with(ClientAuth::Need)?,
            client: self.client_config()?,
            authority: Arc::new(MemberHosts {
                hosts: servers
                    .iter()
                    .map(|(sid, line)| (*sid, line.host.clone()))
                    .collect(),
                verify_hostnames: self.hostname_verification,
            }),
        })
    }

    /// The crypto provider with the configured suites, and the protocol versions.
    fn provider(
        &self,
    ) -> Result<
        (
            Arc<rustls::crypto::CryptoProvider>,
            Vec<&'static rustls::SupportedProtocolVersion>,
        ),
        TlsError,
    > {
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
                    "{}.ciphersuites: none of {:?} is supported",
                    self.prefix, self.cipher_suites
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
                "{}.enabledProtocols: none of {:?} is supported (TLSv1.2, TLSv1.3)",
                self.prefix, self.protocols
            )));
        }
        Ok((Arc::new(provider), versions))
    }

    /// The key store's identity.
    fn certified_key(
        &self,
        provider: &Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<CertifiedKey, TlsError> {
        let key_store = self.key_store.as_ref().ok_or_else(|| {
            TlsError::Setting(format!("TLS needs {}.keyStore.location", self.prefix))
        })?;
        let identity =
            keystore::load_identity(&key_store.path, &key_store.password, key_store.kind)?;
        // rustls checks that the key goes with the certificate by parsing the certificate
        // with webpki, which refuses X.509 v1 (kazoo's harness gives its server one): such
        // a certificate is served as it is.
        match CertifiedKey::from_der(identity.chain.clone(), identity.key.clone_key(), provider) {
            Ok(certified) => Ok(certified),
            Err(_) if identity.chain.first().is_some_and(is_v1) => Ok(CertifiedKey::new(
                identity.chain,
                provider.key_provider.load_private_key(identity.key)?,
            )),
            Err(e) => Err(e.into()),
        }
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
                        "no {}.trustStore.location is set, and the system's CA bundle \
                         cannot be read: {e}",
                        self.prefix
                    ))
                })
            }
        }
    }

    /// The identities a verified client certificate chain gives the connection
    /// (`x509`, and `super` for the configured super user), or why the connection must
    /// close: `registered` says whether the `ssl.authProvider` scheme has a provider
    /// (`Config::has_auth_provider`).
    pub fn identities(
        &self,
        chain: &[CertificateDer<'_>],
        registered: bool,
    ) -> Result<Vec<Id>, String> {
        let Some(cert) = chain.first() else {
            return Ok(Vec::new());
        };
        if !registered {
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

/// Who may speak for which server id between peers: a member, with a certificate valid
/// for the host of its `server.N` line (any trusted certificate when hostname
/// verification is off).
#[derive(Debug)]
struct MemberHosts {
    hosts: BTreeMap<u64, String>,
    verify_hostnames: bool,
}

impl PeerAuthority for MemberHosts {
    fn authorize(&self, sid: u64, peer: &PeerInfo) -> Result<(), String> {
        let host = self
            .hosts
            .get(&sid)
            .ok_or_else(|| format!("server {sid} is not a member"))?;
        if !self.verify_hostnames {
            return Ok(());
        }
        let from = peer
            .remote
            .map_or_else(|| "the peer".to_owned(), |a| a.to_string());
        let leaf = peer
            .certificates
            .first()
            .ok_or_else(|| format!("{from} presented no certificate"))?;
        let cert = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| format!("the certificate of {from} does not parse: {e}"))?;
        let name = ServerName::try_from(host.as_str())
            .map_err(|e| format!("server.{sid}'s host {host:?} is not a name: {e}"))?;
        cert.verify_is_valid_for_subject_name(&name).map_err(|_| {
            format!("the certificate of {from} is not valid for {host}, the host of server.{sid}")
        })
    }
}

/// The listener's certificate check with `hostnameVerification=false`: the chain must
/// still end in the trust store; only the name is not checked, as Java's trust manager
/// then checks it.
#[derive(Debug)]
struct AnyHost(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHost {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The client certificate check: rustls's (webpki), and for an X.509 version 1 client
/// certificate, which webpki refuses but Java's trust manager takes (kazoo's test harness
/// makes them), a check of its own: issued and signed by a trust anchor itself, and valid
/// now; the handshake's signature is then checked with its key.
#[derive(Debug)]
struct V1Tolerant {
    webpki: Arc<dyn ClientCertVerifier>,
    anchors: Vec<CertificateDer<'static>>,
    provider: rustls::crypto::CryptoProvider,
}

/// Whether `cert` is an X.509 version 1 certificate.
fn is_v1(cert: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(cert.as_ref())
        .is_ok_and(|(_, c)| c.version() == x509_parser::x509::X509Version::V1)
}

impl V1Tolerant {
    fn verify_v1(&self, leaf: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
        let bad = |why: &str| rustls::Error::General(format!("X.509 v1 client certificate: {why}"));
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|_| bad("it does not parse"))?;
        let at = x509_parser::time::ASN1Time::from_timestamp(
            i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        )
        .map_err(|_| bad("the time is out of range"))?;
        if !cert.validity().is_valid_at(at) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        for anchor in &self.anchors {
            let Ok((_, root)) = x509_parser::parse_x509_certificate(anchor.as_ref()) else {
                continue;
            };
            if root.subject().as_raw() == cert.issuer().as_raw()
                && cert.verify_signature(Some(root.public_key())).is_ok()
            {
                return Ok(());
            }
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))
    }

    /// Checks a handshake signature made with a v1 certificate's key.
    fn verify_v1_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|_| rustls::Error::General("a client certificate does not parse".into()))?;
        let key = &parsed.public_key().subject_public_key.data;
        let algorithms = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .unwrap_or_default();
        if algorithms
            .iter()
            .any(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
        {
            Ok(HandshakeSignatureValid::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature,
            ))
        }
    }
}

impl ClientCertVerifier for V1Tolerant {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if is_v1(end_entity) {
            self.verify_v1(end_entity, now)?;
            return Ok(ClientCertVerified::assertion());
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match is_v1(cert) {
            true => self.verify_v1_signature(message, cert, dss),
            false => self.webpki.verify_tls12_signature(message, cert, dss),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match is_v1(cert) {
            true => self.verify_v1_signature(message, cert, dss),
            false => self.webpki.verify_tls13_signature(message, cert, dss),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
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
