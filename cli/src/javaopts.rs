//! The Java client's security settings zk-cli honours, read as zkCli.sh's JVM reads them:
//! `-D` flags in `CLIENT_JVMFLAGS` and `JVMFLAGS`.
//!
//! - TLS with `zookeeper.client.secure=true`: the server's certificate checked against
//!   `zookeeper.ssl.trustStore.location` (the system's CA bundle without one, as the JVM's
//!   default trust store), and the host name unless `zookeeper.ssl.hostnameVerification`
//!   is `false`; a client certificate from `zookeeper.ssl.keyStore.location`. The stores
//!   are PEM (a key and its chain in one file for the key store), PKCS12 or JKS, with
//!   their `*.password`, read by the same code as the server's.
//! - SASL DIGEST-MD5 with the `username` and `password` of the JAAS section
//!   `zookeeper.sasl.clientconfig` (default `Client`) in the file
//!   `java.security.auth.login.config` names, unless `zookeeper.sasl.client=false`.

use std::collections::BTreeMap;
use std::sync::Arc;

use zk_client::SaslCredentials;
use zk_server::tls::TlsSettings;

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
    zk_server::jvm_system_properties(&flags)
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

/// A property's value, when set and not blank.
fn setting<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    props.get(key).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The TLS the `zookeeper.ssl.*` properties describe, read as the server reads its own
/// (`zk_server::tls`): key and trust stores in PEM, PKCS12 or JKS, the type from
/// `*.type` or the file's extension; protocols, cipher suites, hostname verification.
fn tls(props: &BTreeMap<String, String>) -> Result<Arc<rustls::ClientConfig>, String> {
    let settings = TlsSettings::from_properties(props).map_err(|e| e.to_string())?;
    settings.client_config().map_err(|e| e.to_string())
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
    fn java_key_stores_are_read_and_nothing_asked_is_nothing_done() {
        // The server's fixtures, written by keytool: JKS and PKCS12 with a password.
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/data/tls");
        for (keys, trust) in [("server.jks", "trust.jks"), ("server.p12", "trust.p12")] {
            let on = security(&props(&[
                ("zookeeper.client.secure", "true"),
                ("zookeeper.ssl.keyStore.location", &format!("{data}/{keys}")),
                ("zookeeper.ssl.keyStore.password", "secret"),
                (
                    "zookeeper.ssl.trustStore.location",
                    &format!("{data}/{trust}"),
                ),
                ("zookeeper.ssl.trustStore.password", "secret"),
            ]))
            .unwrap();
            assert!(
                on.tls.unwrap().client_auth_cert_resolver.has_certs(),
                "{keys}"
            );
        }
        let wrong = security(&props(&[
            ("zookeeper.client.secure", "true"),
            (
                "zookeeper.ssl.trustStore.location",
                &format!("{data}/trust.jks"),
            ),
            ("zookeeper.ssl.trustStore.password", "not it"),
        ]))
        .err()
        .unwrap();
        assert!(wrong.contains("trust.jks"), "{wrong}");
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
