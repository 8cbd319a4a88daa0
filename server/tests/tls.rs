//! The secure client port: rustls on both sides (our `zk-client` over TLS), certificates
//! made for each test by a CA of its own, and key stores written by Java's `keytool`.
//! A client certificate becomes the session's `x509` identity; bad certificates, missing
//! ones under `ssl.clientAuth=need` and plaintext on the TLS port are refused, and the
//! server goes on serving good clients.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zk_client::{Client, ClientOptions, CreateOptions, Error};
use zk_server::keystore::{self, StoreType};
use zk_server::tls::{ClientAuth, StoreSetting, TlsSettings};
use zk_server::{Config, Server};

mod common;
use common::pki::Ca;

/// The files of one test: the CA, the server's key store (key and chain in one PEM file,
/// as ZooKeeper reads it) and the trust store.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("zk-rs test CA");
        let (cert, key) = ca.sign("localhost", &["localhost", "127.0.0.1"], false);
        std::fs::write(dir.path().join("server.pem"), format!("{key}{cert}")).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca.pem).unwrap();
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            key_store: Some(StoreSetting {
                path: self.path("server.pem"),
                password: String::new(),
                kind: None,
            }),
            trust_store: Some(StoreSetting {
                path: self.path("ca.pem"),
                password: String::new(),
                kind: None,
            }),
            client_auth,
            ..TlsSettings::default()
        }
    }

    /// A client configuration trusting the test CA, with a certificate signed by `ca`
    /// for `cn` when given.
    fn client(&self, identity: Option<(&Ca, &str, bool)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((ca, cn, expired)) => {
                let (cert, key) = ca.sign(cn, &[], expired);
                let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        Arc::new(config)
    }
}

fn config(dir: &Path, tls: TlsSettings) -> Config {
    Config {
        client_addr: "127.0.0.1:0".parse().unwrap(),
        secure_client_addr: Some("127.0.0.1:0".parse().unwrap()),
        tls,
        data_dir: dir.to_owned(),
        data_log_dir: dir.to_owned(),
        tick_time: Duration::from_millis(200),
        min_session_timeout: Duration::from_millis(400),
        four_letter_words: vec!["*".into()],
        ..Config::default()
    }
}

async fn connect(
    addr: std::net::SocketAddr,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Client, Error> {
    let options = ClientOptions {
        session_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(3),
        reconnect_delay: Duration::from_millis(100),
        tls,
        ..ClientOptions::default()
    };
    // The host name the server's certificate names.
    let host = format!("localhost:{}", addr.port());
    Client::connect(&host, options).await
}

async fn secure(server: &Server, tls: Arc<rustls::ClientConfig>) -> Result<Client, Error> {
    connect(server.secure_addr().unwrap(), Some(tls)).await
}

#[tokio::test]
async fn a_client_certificate_is_the_sessions_x509_identity() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(config(data.path(), pki.settings(ClientAuth::Need)))
        .await
        .unwrap();
    let alice = secure(&server, pki.client(Some((&pki.ca, "alice", false))))
        .await
        .expect("alice connects over TLS");
    let infos = alice.who_am_i().await.unwrap();
    let x509: Vec<&str> = infos
        .iter()
        .filter(|i| i.auth_scheme == "x509")
        .map(|i| i.user.as_str())
        .collect();
    // RFC 2253, as Java's X500Principal writes it: the last attribute first.
    assert_eq!(x509, ["O=zk-rs\\, tests,CN=alice"]);
    // `auth` in an ACL expands to the certificate's identity.
    alice
        .create(
            "/alice",
            b"mine",
            &CreateOptions::persistent().with_acl(zk_client::acl::creator_all()),
        )
        .await
        .unwrap();
    let (acl, _) = alice.get_acl("/alice").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(
        (acl[0].id.scheme.as_str(), acl[0].id.id.as_str()),
        ("x509", "O=zk-rs\\, tests,CN=alice")
    );
    assert_eq!(alice.get_data("/alice").await.unwrap().0, &b"mine"[..]);
    // Another certificate of the same CA is another identity.
    let bob = secure(&server, pki.client(Some((&pki.ca, "bob", false))))
        .await
        .expect("bob connects");
    assert_eq!(bob.get_data("/alice").await.unwrap_err(), Error::NoAuth);
    // The plain port serves too, as nobody in particular.
    let plain = connect(server.local_addr(), None).await.unwrap();
    assert_eq!(plain.get_data("/alice").await.unwrap_err(), Error::NoAuth);
    assert!(plain.exists("/alice").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn bad_certificates_and_plaintext_are_refused_and_good_clients_served() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(config(data.path(), pki.settings(ClientAuth::Need)))
        .await
        .unwrap();
    let stranger = Ca::new("another CA");
    let refused = [
        ("no certificate under clientAuth=need", pki.client(None)),
        (
            "a certificate of a CA the trust store does not hold",
            pki.client(Some((&stranger, "mallory", false))),
        ),
        (
            "an expired certificate",
            pki.client(Some((&pki.ca, "late", true))),
        ),
    ];
    for (what, tls) in refused {
        let options = ClientOptions {
            connect_timeout: Duration::from_secs(1),
            reconnect_delay: Duration::from_millis(100),
            tls: Some(tls),
            ..ClientOptions::default()
        };
        let at = format!("localhost:{}", server.secure_addr().unwrap().port());
        let result = Client::connect(&at, options).await;
        assert!(result.is_err(), "{what}: served");
    }
    // Plaintext to the TLS port: a ConnectRequest is not a handshake; the connection
    // closes without an answer.
    let mut raw = tokio::net::TcpStream::connect(server.secure_addr().unwrap())
        .await
        .unwrap();
    let mut connect = vec![0u8; 44];
    connect[3] = 40;
    raw.write_all(&connect).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), raw.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the connection stays open"
    );
    assert!(
        !answer.windows(4).any(|w| w == [0, 0, 0, 36]),
        "a plaintext client got a ConnectResponse: {answer:?}"
    );
    // A wrong server name: the client refuses the server (hostname verification).
    let wrong = Client::connect(
        &format!("127.0.0.2:{}", server.secure_addr().unwrap().port()),
        ClientOptions {
            connect_timeout: Duration::from_secs(1),
            tls: Some(pki.client(Some((&pki.ca, "carol", false)))),
            ..ClientOptions::default()
        },
    )
    .await;
    assert!(
        wrong.is_err(),
        "a certificate for localhost served 127.0.0.2"
    );
    let good = secure(&server, pki.client(Some((&pki.ca, "good", false))))
        .await
        .expect("a good client is served after the refusals");
    good.create("/still", b"", &CreateOptions::persistent())
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn want_serves_clients_without_certificates_and_unification_shares_the_port() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path(), pki.settings(ClientAuth::Want));
    config.port_unification = true;
    let server = Server::start(config).await.unwrap();
    let anonymous = secure(&server, pki.client(None))
        .await
        .expect("served without a certificate under want");
    let infos = anonymous.who_am_i().await.unwrap();
    assert!(infos.iter().all(|i| i.auth_scheme != "x509"), "{infos:?}");
    // The plain port takes TLS and plaintext clients alike.
    let unified = connect(
        server.local_addr(),
        Some(pki.client(Some((&pki.ca, "dave", false)))),
    )
    .await
    .expect("TLS on the unified plain port");
    let infos = unified.who_am_i().await.unwrap();
    assert!(
        infos
            .iter()
            .any(|i| i.auth_scheme == "x509" && i.user.ends_with("CN=dave"))
    );
    let plain = connect(server.local_addr(), None)
        .await
        .expect("plaintext too");
    plain
        .create("/p", b"", &CreateOptions::persistent())
        .await
        .unwrap();
    assert!(unified.exists("/p").await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_secure_port_alone_means_no_plain_listener() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        client_port_enabled: false,
        ..config(data.path(), pki.settings(ClientAuth::None))
    };
    let server = Server::start(config).await.unwrap();
    let secure_addr = server.secure_addr().unwrap();
    assert_eq!(server.local_addr(), secure_addr);
    let client = secure(&server, pki.client(None)).await.expect("TLS serves");
    client
        .create("/x", b"", &CreateOptions::persistent())
        .await
        .unwrap();
    server.shutdown().await;
}

/// The stores `keytool` wrote (see `data/tls/README.md`).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

#[test]
fn keytool_stores_load_in_every_format_with_the_same_contents() {
    let cert = CertificateDer::from_pem_file(fixture("server.cert.pem")).unwrap();
    let jks = keystore::load_identity(&fixture("server.jks"), "secret", None).unwrap();
    let p12 = keystore::load_identity(&fixture("server.p12"), "secret", None).unwrap();
    let pem = keystore::load_identity(&fixture("server.pem"), "", None).unwrap();
    for identity in [&jks, &p12, &pem] {
        assert_eq!(identity.chain, std::slice::from_ref(&cert));
    }
    assert_eq!(jks.key.secret_der(), p12.key.secret_der());
    for trust in ["trust.jks", "trust.p12", "server.cert.pem"] {
        let certs = keystore::load_trust(&fixture(trust), "secret", None).unwrap();
        assert_eq!(certs, std::slice::from_ref(&cert), "{trust}");
    }
    // A PEM key store whose key is encrypted (PBES2): opened with the store's password.
    let encrypted =
        keystore::load_identity(&fixture("server-encrypted.pem"), "secret", None).unwrap();
    assert_eq!(encrypted.chain, std::slice::from_ref(&cert));
    assert_eq!(encrypted.key.secret_der(), pem.key.secret_der());
    // kazoo's harness: an RSA key in JKS, password "apassword".
    let rsa = keystore::load_identity(&fixture("rsa.jks"), "apassword", Some(StoreType::Jks));
    assert_eq!(rsa.unwrap().chain.len(), 1);
}

#[test]
fn subjects_are_named_as_javas_x500_principal_names_them() {
    // What `X509Certificate.getSubjectX500Principal().getName()` printed for these
    // certificates (JDK 17).
    for (file, java) in [
        ("server.cert.pem", "CN=localhost,O=zk-rs tests"),
        (
            "odd.cert.pem",
            "CN=Smith\\, J.,OU=ops,O=\\#hash,L=Paris,ST=padded,C=FR,DC=example,UID=42,\
             1.2.840.113549.1.9.1=#16056140622e63",
        ),
    ] {
        let cert = CertificateDer::from_pem_file(fixture(file)).unwrap();
        assert_eq!(zk_server::tls::subject_name(&cert).unwrap(), java, "{file}");
    }
}

#[test]
fn a_wrong_password_or_type_is_a_clear_error() {
    for store in ["server.jks", "server.p12", "server-encrypted.pem"] {
        let error = keystore::load_identity(&fixture(store), "wrong", None).unwrap_err();
        assert!(
            error.to_string().contains("wrong password"),
            "{store}: {error}"
        );
    }
    let error = keystore::load_identity(&fixture("server.p12"), "secret", Some(StoreType::Jks))
        .unwrap_err();
    assert!(error.to_string().contains("not a JKS"), "{error}");
    let missing = keystore::load_identity(Path::new("/no/such/store.jks"), "", None).unwrap_err();
    assert!(
        missing.to_string().contains("/no/such/store.jks"),
        "{missing}"
    );
}

#[tokio::test]
async fn every_store_format_serves_a_handshake() {
    for (store, password) in [
        ("server.jks", "secret"),
        ("server.p12", "secret"),
        ("server.pem", ""),
        ("server-encrypted.pem", "secret"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let tls = TlsSettings {
            key_store: Some(StoreSetting {
                path: fixture(store),
                password: password.into(),
                kind: None,
            }),
            client_auth: ClientAuth::None,
            ..TlsSettings::default()
        };
        let server = Server::start(config(data.path(), tls)).await.unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(fixture("server.cert.pem")).unwrap())
            .unwrap();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = secure(&server, Arc::new(client_config))
            .await
            .unwrap_or_else(|e| panic!("{store}: {e}"));
        assert!(client.exists("/").await.unwrap().is_some(), "{store}");
        server.shutdown().await;
    }
}

/// A server certificate check that takes any server: kazoo's harness gives its server an
/// X.509 v1 certificate, which rustls's client refuses (kazoo's Python client takes it).
#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client with kazoo's harness's client certificate (X.509 v1).
fn kazoo_client() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pem = std::fs::read(fixture("kazoo.client.pem")).unwrap();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&pem).unwrap();
    // Served as it is: rustls's own check that key and certificate go together parses
    // the certificate with webpki, which refuses v1.
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    Arc::new(config)
}

fn kazoo_stores(trust: &str, password: &str) -> TlsSettings {
    TlsSettings {
        key_store: Some(StoreSetting {
            path: fixture("kazoo.keystore.jks"),
            password: "apassword".into(),
            kind: None,
        }),
        trust_store: Some(StoreSetting {
            path: fixture(trust),
            password: password.into(),
            kind: None,
        }),
        client_auth: ClientAuth::Need,
        ..TlsSettings::default()
    }
}

#[tokio::test]
async fn kazoos_stores_and_its_x509_v1_client_certificate_are_taken() {
    let data = tempfile::tempdir().unwrap();
    let tls = kazoo_stores("kazoo.truststore.jks", "apassword");
    let server = Server::start(config(data.path(), tls)).await.unwrap();
    let client = secure(&server, kazoo_client())
        .await
        .expect("kazoo's client certificate is taken");
    let infos = client.who_am_i().await.unwrap();
    assert!(
        infos
            .iter()
            .any(|i| i.auth_scheme == "x509" && i.user == "CN=client"),
        "{infos:?}"
    );
    server.shutdown().await;
    // The same v1 certificate against a trust store without its CA: refused.
    let data = tempfile::tempdir().unwrap();
    let tls = kazoo_stores("trust.jks", "secret");
    let server = Server::start(config(data.path(), tls)).await.unwrap();
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(1),
        tls: Some(kazoo_client()),
        ..ClientOptions::default()
    };
    let at = format!("localhost:{}", server.secure_addr().unwrap().port());
    assert!(
        Client::connect(&at, options).await.is_err(),
        "an unknown CA's v1 certificate"
    );
    server.shutdown().await;
}
