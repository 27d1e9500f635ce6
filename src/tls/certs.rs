//! Reading a certificate chain and its key from PEM files.

use std::path::Path;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Most bytes of a certificate or key file. Default: 1 MiB.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why the certificate or key could not be used (names the file, never
/// prints key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

/// The chain of `cert` and the key of `key`, checked to belong together.
pub(super) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "{}: not a PEM certificate chain: {e}",
                cert.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate in it",
            cert.display()
        )));
    }
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| TlsError(format!("{}: no PEM private key in it", key.display())))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        TlsError(format!(
            "{} and {}: the key cannot serve this certificate: {e}",
            cert.display(),
            key.display()
        ))
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    let size = std::fs::metadata(path)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?
        .len();
    if size > MAX_PEM_BYTES {
        return Err(TlsError(format!(
            "{}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))
}

/// Both files' modification times, if both can be read.
pub(super) fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}
