//! What the server's integration tests share: free ports, and a test CA.

/// A free loopback port, below the ephemeral range (32768 and up on Linux): a port picked
/// there may become some connection's source port before the server binds it. Each
/// test binary draws from its own block, never the same port twice.
#[allow(dead_code)]
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 48) * 256;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 256) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A test CA and the certificates it signs (rcgen, ring underneath as our TLS).
#[allow(dead_code)]
pub(crate) mod pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    /// A certificate authority of a test's own.
    pub(crate) struct Ca {
        issuer: Issuer<'static, KeyPair>,
        /// Its certificate, in PEM.
        pub(crate) pem: String,
    }

    impl Ca {
        pub(crate) fn new(name: &str) -> Ca {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            Ca {
                pem: cert.pem(),
                issuer: Issuer::new(params, key),
            }
        }

        /// A certificate for `cn` (with `names` as subject alternative names, expired in
        /// 2001 when asked) and its key, both PEM.
        pub(crate) fn sign(&self, cn: &str, names: &[&str], expired: bool) -> (String, String) {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params
                .distinguished_name
                .push(DnType::OrganizationName, "zk-rs, tests");
            if expired {
                params.not_before = rcgen::date_time_ymd(2000, 1, 1);
                params.not_after = rcgen::date_time_ymd(2001, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        }

        /// A key store for `host` (key and certificate in one PEM file, as ZooKeeper
        /// reads it), written as `dir/<name>.pem`.
        pub(crate) fn key_store(
            &self,
            dir: &std::path::Path,
            name: &str,
            host: &str,
        ) -> std::path::PathBuf {
            let (cert, key) = self.sign(name, &[host], false);
            let path = dir.join(format!("{name}.pem"));
            std::fs::write(&path, format!("{key}{cert}")).unwrap();
            path
        }
    }
}
