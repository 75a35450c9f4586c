//! The cluster's PKI: certificate authorities and the certificates they issue (serving
//! certificates with their SANs, client certificates whose CN and O are the user and
//! groups), as PEM files with upstream's names (`ca.crt`, `apiserver.key`, ...).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    Pem { path: PathBuf, what: &'static str },
    #[error("invalid subject alternative name {0:?}")]
    San(String),
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl CertAndKey {
    /// Write `<name>.crt` and `<name>.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        write_file(&cert, self.cert_pem.as_bytes(), 0o644)?;
        write_file(&key, self.key_pem.as_bytes(), 0o600)?;
        Ok((cert, key))
    }

    pub fn read(dir: &Path, name: &str) -> Result<Self> {
        Ok(CertAndKey {
            cert_pem: read_file(&dir.join(format!("{name}.crt")))?,
            key_pem: read_file(&dir.join(format!("{name}.key")))?,
        })
    }
}

pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(data).map_err(io)
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// The subject and names of a certificate to issue.
#[derive(Debug, Clone)]
pub struct CertSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    /// DNS names and IP addresses; each string is parsed as an IP first.
    pub alt_names: Vec<String>,
    pub usage: Usage,
    pub validity_days: i64,
}

impl CertSpec {
    pub fn client(common_name: &str, organizations: &[&str]) -> Self {
        CertSpec {
            common_name: common_name.to_string(),
            organizations: organizations.iter().map(|s| s.to_string()).collect(),
            alt_names: Vec::new(),
            usage: Usage::Client,
            validity_days: 365,
        }
    }

    pub fn server(common_name: &str, alt_names: &[&str]) -> Self {
        CertSpec {
            common_name: common_name.to_string(),
            organizations: Vec::new(),
            alt_names: alt_names.iter().map(|s| s.to_string()).collect(),
            usage: Usage::Server,
            validity_days: 365,
        }
    }
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = jiff::Timestamp::now();
    // Backdate a little so that clocks slightly behind still accept the certificate.
    let not_before = now - jiff::SignedDuration::from_secs(300);
    let not_after = now + jiff::SignedDuration::from_hours(24 * days);
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + time_offset(not_before);
    params.not_after = rcgen::date_time_ymd(1970, 1, 1) + time_offset(not_after);
}

fn time_offset(t: jiff::Timestamp) -> std::time::Duration {
    std::time::Duration::from_secs(t.as_second().max(0) as u64)
}

fn subject(cn: &str, orgs: &[String]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, cn);
    dn
}

/// A certificate authority that can issue certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
    key_pem: String,
}

impl Ca {
    /// A new self-signed CA valid for ten years.
    pub fn generate(common_name: &str) -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name, &[]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        Ok(Ca {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    /// An existing CA from its PEM certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Ca {
            issuer,
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
        })
    }

    pub fn load(dir: &Path, name: &str) -> Result<Self> {
        let pair = CertAndKey::read(dir, name)?;
        Self::from_pem(&pair.cert_pem, &pair.key_pem)
    }

    pub fn pair(&self) -> CertAndKey {
        CertAndKey {
            cert_pem: self.cert_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }

    pub fn issue(&self, spec: &CertSpec) -> Result<CertAndKey> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&spec.common_name, &spec.organizations);
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        for name in &spec.alt_names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    name.clone()
                        .try_into()
                        .map_err(|_| PkiError::San(name.clone()))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, spec.validity_days);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(CertAndKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Parse every certificate of a PEM file.
pub fn certificates_from_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|_| PkiError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
        })?
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_path_buf(),
            what: "certificate",
        });
    }
    Ok(certs)
}

pub fn private_key_from_pem(path: &Path) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|_| PkiError::Pem {
        path: path.to_path_buf(),
        what: "private key",
    })
}

/// Subject CN and O of a DER certificate.
pub fn subject_of(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let orgs = cert
        .subject()
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some((cn, orgs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("kubernetes").unwrap();
        ca.pair().write(dir.path(), "ca").unwrap();
        let ca = Ca::load(dir.path(), "ca").unwrap();
        let client = ca
            .issue(&CertSpec::client("alice", &["system:masters"]))
            .unwrap();
        let (crt, _) = client.write(dir.path(), "alice").unwrap();
        let certs = certificates_from_pem(&crt).unwrap();
        let (cn, orgs) = subject_of(certs[0].as_ref()).unwrap();
        assert_eq!(cn, "alice");
        assert_eq!(orgs, vec!["system:masters"]);
        let server = ca
            .issue(&CertSpec::server(
                "kube-apiserver",
                &["localhost", "127.0.0.1"],
            ))
            .unwrap();
        assert!(server.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key_path = dir.path().join("alice.key");
        private_key_from_pem(&key_path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
