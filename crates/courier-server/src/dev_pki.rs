//! Throwaway certificates and tokens for demos and tests: a fresh CA, a server certificate for
//! `localhost`/`127.0.0.1`, a client certificate for mutual TLS, and random bearer tokens.
//! Nothing here is meant for production, and nothing it makes is ever committed.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM-encoded certificates and keys, all made fresh.
pub struct DevPki {
    /// The CA that signed both certificates; clients trust it.
    pub ca_cert: String,
    /// The server's certificate, for `localhost` and `127.0.0.1`.
    pub server_cert: String,
    /// The server's private key.
    pub server_key: String,
    /// A client certificate, for mutual TLS.
    pub client_cert: String,
    /// The client certificate's private key.
    pub client_key: String,
}

impl DevPki {
    /// Makes a new CA and the certificates it signs.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Courier throwaway CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let leaf =
            |names: Vec<String>, common_name: &str| -> Result<(String, String), rcgen::Error> {
                let mut params = CertificateParams::new(names)?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, common_name);
                let key = KeyPair::generate()?;
                let cert = params.signed_by(&key, &ca)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
        let (server_cert, server_key) =
            leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost")?;
        let (client_cert, client_key) = leaf(vec!["courier-client".into()], "courier-client")?;
        Ok(Self {
            ca_cert: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        })
    }

    /// Writes `ca.pem`, `server.pem`, `server.key`, `client.pem` and `client.key` into `dir`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for (name, contents) in [
            ("ca.pem", &self.ca_cert),
            ("server.pem", &self.server_cert),
            ("server.key", &self.server_key),
            ("client.pem", &self.client_cert),
            ("client.key", &self.client_key),
        ] {
            std::fs::write(dir.join(name), contents)?;
        }
        Ok(())
    }
}

/// A random bearer token: 256 bits from the OS, hex-encoded.
pub fn random_token() -> String {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).expect("the OS provides randomness");
    hex::encode(bytes)
}
