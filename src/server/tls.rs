//! TLS on the ingress listener (rustls with the ring provider): ALPN `h2`
//! and `http/1.1`. The server config lives behind an `ArcSwap`, so a reload
//! swaps certificates for new connections while existing ones keep theirs.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::config::TlsConfig;

/// The current TLS settings; swapped on reload.
pub type SharedTls = Arc<ArcSwap<rustls::ServerConfig>>;

/// Loads the certificate chain and key named by `tls`. Errors name the file
/// and never include key material.
pub fn load(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certs(&tls.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file).map_err(|e| {
        format!(
            "tls.key_file {}: no usable private key ({e})",
            tls.key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: the certificate and key do not form a usable pair ({e})"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls.cert_file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert_file {}: no certificate found",
            path.display()
        ));
    }
    Ok(certs)
}
