//! The Java client's security settings zk-cli honours, read as zkCli.sh's JVM reads them:
//! `-D` flags in `CLIENT_JVMFLAGS` and `JVMFLAGS`.
//!
//! - TLS with `zookeeper.client.secure=true`: the server's certificate checked against
//!   `zookeeper.ssl.trustStore.location` (the system's CA bundle without one, as the JVM's
//!   default trust store), and the host name unless `zookeeper.ssl.hostnameVerification`
//!   is `false`; a client certificate from `zookeeper.ssl.keyStore.location`. zk-cli reads
//!   PEM stores (a key and its chain in one file for the key store); JKS and PKCS12 ones
//!   are refused with a clear message.
//! - SASL DIGEST-MD5 with the `username` and `password` of the JAAS section
//!   `zookeeper.sasl.clientconfig` (default `Client`) in the file
//!   `java.security.auth.login.config` names, unless `zookeeper.sasl.client=false`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use zk_client::SaslCredentials;

/// What the Java settings ask of the connection.
#[derive(Clone, Default)]
pub(crate) struct Security {
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl)
            .finish()
    }
}

/// The `-Dkey=value` flags of `CLIENT_JVMFLAGS` and `JVMFLAGS` (a later one wins).
pub(crate) fn properties_from_env() -> BTreeMap<String, String> {
    let flags = ["CLIENT_JVMFLAGS", "JVMFLAGS"]
        .map(|name| std::env::var(name).unwrap_or_default())
        .join(" ");
    flags
        .split_whitespace()
        .filter_map(|flag| flag.strip_prefix("-D"))
        .map(|setting| match setting.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (setting.to_owned(), String::new()),
        })
        .collect()
}

/// The security the properties describe, or why they cannot be honoured.
pub(crate) fn security(props: &BTreeMap<String, String>) -> Result<Security, String> {
    let get = |key: &str| setting(props, key);
    let mut security = Security::default();
    if get("zookeeper.client.secure").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        security.tls = Some(tls(props)?);
    }
    let sasl_on = get("zookeeper.sasl.client").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    if let (Some(file), true) = (get("java.security.auth.login.config"), sasl_on) {
        let section = get("zookeeper.sasl.clientconfig").unwrap_or("Client");
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let modules = zk_jute::sasl::jaas_section(&text, section).map_err(|e| e.to_string())?;
        let login = modules
            .iter()
            .flatten()
            .find_map(|(_, options)| Some((options.get("username")?, options.get("password")?)));
        if let Some((user, password)) = login {
            security.sasl = Some(SaslCredentials {
                user: user.clone(),
                password: password.clone(),
            });
        }
    }
    Ok(security)
}

/// A store's certificates and key, read as PEM; a JKS or PKCS12 store is refused.
fn pem_store(path: &str, kind: Option<&str>) -> Result<Vec<u8>, String> {
    let named = kind.map(str::to_ascii_uppercase);
    let ext = Path::new(path).extension().and_then(|e| e.to_str());
    let pem = match named.as_deref() {
        Some("PEM") => true,
        Some(_) => false,
        None => ext == Some("pem"),
    };
    if !pem {
        return Err(format!(
            "{path}: zk-cli reads PEM key and trust stores only (convert a JKS or PKCS12 \
             store with keytool and openssl)"
        ));
    }
    std::fs::read(path).map_err(|e| format!("{path}: {e}"))
}

/// A property's value, when set and not blank.
fn setting<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn tls(props: &BTreeMap<String, String>) -> Result<Arc<rustls::ClientConfig>, String> {
    let get = |key: &str| setting(props, key);
    let bad = |path: &str, e: &dyn std::fmt::Display| format!("{path}: {e}");
    let trust =
        get("zookeeper.ssl.trustStore.location").unwrap_or("/etc/ssl/certs/ca-certificates.crt");
    let trust_pem = pem_store(trust, get("zookeeper.ssl.trustStore.type"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&trust_pem) {
        roots
            .add(cert.map_err(|e| bad(trust, &e))?)
            .map_err(|e| bad(trust, &e))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let verify_names =
        get("zookeeper.ssl.hostnameVerification").is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    let builder = if verify_names {
        builder.with_root_certificates(roots)
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
    };
    let config = match get("zookeeper.ssl.keyStore.location") {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = pem_store(path, get("zookeeper.ssl.keyStore.type"))?;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(path, &e))?;
            let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| bad(path, &e))?;
            let key = match key {
                PrivateKeyDer::Pkcs8(key) => with_public_key(key.secret_pkcs8_der()),
                other => other,
            };
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(path, &e))?
        }
    };
    Ok(Arc::new(config))
}

/// A PKCS#8 key as ring (under rustls) reads it: Java, and openssl exporting a Java key
/// store, leave the public key out of an EC key, which ring requires, so P-256 and P-384
/// keys are written again with it (as the server reads its key stores).
fn with_public_key(der: &[u8]) -> PrivateKeyDer<'static> {
    use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
    let again = if let Ok(key) = p256::SecretKey::from_pkcs8_der(der) {
        key.to_pkcs8_der().ok()
    } else if let Ok(key) = p384::SecretKey::from_pkcs8_der(der) {
        key.to_pkcs8_der().ok()
    } else {
        None
    };
    let der = again.map_or_else(|| der.to_vec(), |doc| doc.as_bytes().to_vec());
    rustls::pki_types::PrivatePkcs8KeyDer::from(der).into()
}

/// `zookeeper.ssl.hostnameVerification=false`: the server's chain is checked, its name
/// is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
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
    fn jks_stores_are_refused_plainly_and_nothing_asked_is_nothing_done() {
        let error = security(&props(&[
            ("zookeeper.client.secure", "true"),
            (
                "zookeeper.ssl.trustStore.location",
                "/etc/zk/truststore.jks",
            ),
        ]))
        .err()
        .unwrap();
        assert!(error.contains("PEM key and trust stores only"), "{error}");
        let none = security(&BTreeMap::new()).unwrap();
        assert!(none.tls.is_none() && none.sasl.is_none());
    }

    #[test]
    fn a_jaas_client_section_gives_the_sasl_login() {
        let dir = std::env::temp_dir().join(format!("zk-cli-jaas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jaas.conf");
        std::fs::write(
            &file,
            "Client {\n org.apache.zookeeper.server.auth.DigestLoginModule required\n \
             username=\"bob\" password=\"pw\";\n};\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let on = security(&props(&[("java.security.auth.login.config", &path)])).unwrap();
        let sasl = on.sasl.unwrap();
        assert_eq!((sasl.user.as_str(), sasl.password.as_str()), ("bob", "pw"));
        let off = security(&props(&[
            ("java.security.auth.login.config", &path),
            ("zookeeper.sasl.client", "false"),
        ]))
        .unwrap();
        assert!(off.sasl.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
