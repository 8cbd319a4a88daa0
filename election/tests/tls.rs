//! The election over mutual TLS: three members, each with its own certificate from a
//! test CA, elect a leader; the [`PeerAuthority`] here pins each server id to its
//! member's certificate, so a member's genuine certificate speaking for another id is
//! refused before its first vote is heard, and so is a peer without a certificate.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tonic::transport::Endpoint;
use zk_election::peer_tls::{self, PeerAuthority, PeerInfo, PeerTls};
use zk_election::transport::proto::{Frame, Hello, election_client::ElectionClient, frame};
use zk_election::transport::{Node, NodeConfig};
use zk_election::{Config, PeerData, ServerState, Sid};

/// Server N speaks only with the certificate issued to member N.
#[derive(Debug)]
struct Pinned(BTreeMap<Sid, CertificateDer<'static>>);

impl PeerAuthority for Pinned {
    fn authorize(&self, sid: Sid, peer: &PeerInfo) -> Result<(), String> {
        match (self.0.get(&sid), peer.certificates.first()) {
            (Some(pinned), Some(leaf)) if pinned == leaf => Ok(()),
            _ => Err(format!("not server {sid}'s certificate")),
        }
    }
}

struct Pki {
    roots: Arc<rustls::RootCertStore>,
    identities: BTreeMap<Sid, (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>)>,
}

impl Pki {
    fn new(sids: &[Sid]) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(params, ca_key);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let identities = sids
            .iter()
            .map(|sid| {
                let key = KeyPair::generate().unwrap();
                let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
                let cert = params.signed_by(&key, &issuer).unwrap();
                let key = PrivatePkcs8KeyDer::from(key.serialize_der());
                (*sid, (cert.der().clone(), key))
            })
            .collect();
        Pki {
            roots: Arc::new(roots),
            identities,
        }
    }

    /// Member `sid`'s TLS (the certificate of member `as_sid`).
    fn tls(&self, as_sid: Sid) -> PeerTls {
        let (cert, key) = &self.identities[&as_sid];
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            self.roots.clone(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
            .unwrap();
        let pins = self
            .identities
            .iter()
            .map(|(sid, (cert, _))| (*sid, cert.clone()))
            .collect();
        PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
            authority: Arc::new(Pinned(pins)),
        }
    }
}

async fn claim(addr: &str, tls: Option<&PeerTls>, sid: Sid) -> Result<(), tonic::Status> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let channel = peer_tls::channel(&endpoint, addr, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let hello = Frame {
        body: Some(frame::Body::Hello(Hello {
            sid,
            addr: String::new(),
        })),
    };
    let frames = futures_util::StreamExt::chain(
        futures_util::stream::iter([hello]),
        futures_util::stream::pending(),
    );
    let mut votes = ElectionClient::new(channel)
        .exchange(frames)
        .await?
        .into_inner();
    votes.message().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_elect_over_tls_and_ids_are_proven() {
    let ports: Vec<u16> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect::<Vec<_>>()
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let entries: Vec<(String, String)> = (1..=3)
        .map(|sid| {
            (
                format!("server.{sid}"),
                format!("127.0.0.1:0:{}", ports[sid - 1]),
            )
        })
        .collect();
    let config =
        Config::from_entries(entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let pki = Pki::new(&[1, 2, 3]);
    let mut nodes = Vec::new();
    for sid in 1..=3 {
        let mut node = NodeConfig::new(sid, config.clone(), PeerData::default());
        node.tls = Some(pki.tls(sid));
        nodes.push(Node::start(node).await.unwrap());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let statuses: Vec<_> = nodes.iter().map(Node::status).collect();
        if statuses
            .iter()
            .all(|s| s.state != ServerState::Looking && s.vote.leader == 3)
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{statuses:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let one = format!("127.0.0.1:{}", ports[0]);
    // Member 3's certificate speaking for server 2: refused before a vote is heard.
    let forged = claim(&one, Some(&pki.tls(3)), 2).await.unwrap_err();
    assert_eq!(forged.code(), tonic::Code::PermissionDenied, "{forged:?}");
    assert!(forged.message().contains("not server 2's"), "{forged:?}");
    // No TLS at all.
    assert!(claim(&one, None, 2).await.is_err());
    // Member 2's own certificate as server 2 is heard (server 2 then redials: the newer
    // stream wins, as after any reconnection).
    claim(&one, Some(&pki.tls(2)), 2).await.unwrap();
    for node in nodes {
        node.shutdown().await;
    }
}
