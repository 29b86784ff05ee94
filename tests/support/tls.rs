//! A certificate authority and a server certificate made for one test, with rcgen: the CA is
//! trusted by nothing but the test that hands it to cachette.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA and a certificate it signed for `localhost` and `127.0.0.1`, written as PEM files.
pub struct TestPki {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// The CA's certificate file.
    pub ca_file: PathBuf,
    /// The server's certificate file.
    pub cert_file: PathBuf,
    /// The server's private key file.
    pub key_file: PathBuf,
}

impl TestPki {
    /// Makes a fresh CA and server certificate, and writes them into `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cachette test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca.self_signed(&ca_key).expect("a self-signed CA");

        let key = KeyPair::generate().expect("a server key");
        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server certificate parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "cachette test redis-server");
        let server = server
            .signed_by(&key, &ca, &ca_key)
            .expect("a server certificate signed by the CA");

        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            fs::write(&path, pem)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
            path
        };
        TestPki {
            ca_pem: ca.pem(),
            ca_file: write("ca.pem", &ca.pem()),
            cert_file: write("server.pem", &server.pem()),
            key_file: write("server.key", &key.serialize_pem()),
        }
    }
}
