//! TLS termination: certificates, SNI, ALPN, and reloading certificates from disk.
//!
//! The server config resolves certificates through `CertResolver`, whose set is swapped
//! atomically when the files change (cert-manager and Kubernetes rotate them in place), so a
//! rotation never needs a restart and never drops a live connection. A failed reload (a
//! half-written file, a key that does not match) is logged and the previous set keeps serving.
//!
//! SNI selection: a name listed in `server_names` (exact, then `*.suffix`), then the first
//! certificate whose own subject names cover the SNI name, then the default (the first one).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::config::{CertificateConfig, TlsConfig};

mod validity;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: cannot read certificates: {source}", file.display())]
    Cert {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no certificate in the file", file.display())]
    NoCert { file: PathBuf },
    #[error("{}: cannot read the private key: {source}", file.display())]
    Key {
        file: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: the key does not fit {}: {source}", key.display(), cert.display())]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
}

/// One loaded certificate with the names it was configured for.
struct CertEntry {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// The set in force: the first entry is the default.
struct CertSet {
    entries: Vec<CertEntry>,
    by_name: HashMap<String, usize>,
}

impl CertSet {
    fn load(config: &TlsConfig) -> Result<CertSet, TlsError> {
        let mut entries = Vec::with_capacity(config.certificates.len());
        let mut by_name = HashMap::new();
        for (i, c) in config.certificates.iter().enumerate() {
            let key = load_pair(c)?;
            for name in &c.server_names {
                by_name.entry(name.clone()).or_insert(i);
            }
            entries.push(CertEntry {
                key: Arc::new(key),
                names: c.server_names.clone(),
            });
        }
        Ok(CertSet { entries, by_name })
    }

    /// `portcullis_certificate_not_after_seconds` of each leaf certificate in force.
    fn export_expiry(&self, config: &TlsConfig) {
        for (entry, c) in self.entries.iter().zip(&config.certificates) {
            if let Some(t) = entry.key.cert.first().and_then(|d| validity::not_after(d)) {
                crate::metrics::certificate_not_after(&c.cert_file.to_string_lossy(), t);
            }
        }
    }

    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.entries.first().map(|e| e.key.clone());
        };
        let listed = self.by_name.get(&sni).or_else(|| {
            let dot = sni.find('.')?;
            self.by_name.get(&format!("*{}", &sni[dot..]))
        });
        if let Some(&i) = listed {
            return self.entries.get(i).map(|e| e.key.clone());
        }
        let covered = ServerName::try_from(sni.as_str()).ok().and_then(|name| {
            self.entries.iter().find(|e| {
                e.names.is_empty()
                    && e.key
                        .end_entity_cert()
                        .ok()
                        .and_then(|der| webpki::EndEntityCert::try_from(der).ok())
                        .is_some_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        covered.or(self.entries.first()).map(|e| e.key.clone())
    }
}

fn load_pair(c: &CertificateConfig) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(&c.cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            file: c.cert_file.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCert {
            file: c.cert_file.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&c.key_file).map_err(|source| TlsError::Key {
        file: c.key_file.clone(),
        source,
    })?;
    CertifiedKey::from_der(chain, key, &rustls::crypto::ring::default_provider()).map_err(
        |source| TlsError::Mismatch {
            cert: c.cert_file.clone(),
            key: c.key_file.clone(),
            source,
        },
    )
}

/// Picks the certificate for each handshake from the current set.
pub struct CertResolver {
    config: TlsConfig,
    set: ArcSwap<CertSet>,
}

impl fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertResolver")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CertResolver {
    pub fn new(config: TlsConfig) -> Result<CertResolver, TlsError> {
        let set = CertSet::load(&config)?;
        set.export_expiry(&config);
        Ok(CertResolver {
            config,
            set: ArcSwap::from_pointee(set),
        })
    }

    /// Re-reads every certificate and key; keeps the current set if any of them fails.
    pub fn reload(&self) -> Result<(), TlsError> {
        let set = CertSet::load(&self.config)?;
        set.export_expiry(&self.config);
        self.set.store(Arc::new(set));
        Ok(())
    }

    /// Every file the set is read from, to watch for changes.
    pub fn files(&self) -> Vec<PathBuf> {
        self.config
            .certificates
            .iter()
            .flat_map(|c| [c.cert_file.clone(), c.key_file.clone()])
            .collect()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().pick(hello.server_name())
    }
}

/// The rustls server configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
///
/// Session resumption: with `tls.session_tickets` (the default), stateless tickets from
/// rustls's ticketer (ChaCha20-Poly1305 under a random key made at start and replaced every 6
/// hours; the previous key still opens tickets, so they live up to 12 hours), so every
/// returning client can resume, however many there are. Without it, rustls's default: a
/// session cache of 256 entries, which a TLS 1.3 handshake fills two at a time, so that past
/// about 128 clients a returning one pays a full handshake again. A resumed TLS 1.3 handshake
/// still runs an ECDHE exchange (rustls offers no PSK-only mode): what it skips is the
/// certificate and its signature, the costly part with an RSA key. A ticket names the server
/// name (SNI) it was issued under, and rustls resumes only under the same name, so a resumed
/// session never stands in for another host's certificate. No early (0-RTT) data is accepted.
pub fn server_config(
    resolver: Arc<CertResolver>,
    session_tickets: bool,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if session_tickets {
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    }
    Ok(config)
}

/// The one crypto provider used across the process (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
