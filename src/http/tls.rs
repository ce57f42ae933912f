//! HTTPS and WSS served directly, when `server.tls_cert` and
//! `server.tls_key` are set: the certificate and key, loaded for rustls
//! (ring). The accept loop (`accept.rs`) serves the same routes over it,
//! one HTTP/1.1 connection per TLS stream.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

/// The peer address of a connection served here (warp's own remote
/// address filter only knows its own server).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Reads the certificate chain and private key (PEM); errors name the
/// setting and the file.
pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| anyhow::anyhow!("server.tls_cert = {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "server.tls_cert = {}: no PEM certificate in the file",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("server.tls_key = {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert and server.tls_key do not form a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_files_name_the_setting() {
        let missing = Path::new("/nonexistent/cert.pem");
        let e = load(missing, missing).unwrap_err().to_string();
        assert!(
            e.starts_with("server.tls_cert = /nonexistent/cert.pem"),
            "{e}"
        );
        let empty = std::env::temp_dir().join(format!("tessera-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "").unwrap();
        let e = load(&empty, missing).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_file(&empty);
    }
}
