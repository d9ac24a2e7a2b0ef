//! TLS with rustls (ring): the server's certificate and key, and, for mutual TLS, the CA that client certificates
//! must chain to. The files are PEM; a reload builds new configurations that new connections use, and open
//! connections keep the one they were made with.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::WebPkiClientVerifier,
};
use tokio::sync::watch;

/// Where the server's TLS material lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// For mutual TLS: the CA certificates a client's certificate must chain to (PEM). A client without one is
    /// refused during the handshake.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Every file, for watching.
    pub fn paths(&self) -> Vec<PathBuf> {
        [Some(&self.cert), Some(&self.key), self.client_ca.as_ref()].into_iter().flatten().cloned().collect()
    }
}

/// The server configurations built from one set of files: the same certificate, with the ALPN protocols of each
/// listener.
#[derive(Debug)]
pub struct TlsConfigs {
    /// gRPC: HTTP/2 only (`h2`), which grpc clients require.
    pub grpc: Arc<ServerConfig>,
    /// HTTP/JSON: HTTP/2 or HTTP/1.1.
    pub http: Arc<ServerConfig>,
}

/// The live TLS configurations; a reload sends new ones.
pub type LiveTls = watch::Receiver<Arc<TlsConfigs>>;

/// Why TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// The client CA cannot verify client certificates.
    #[error("{path}: cannot verify client certificates with it: {message}")]
    ClientCa {
        /// The CA file.
        path: String,
        /// rustls's reason.
        message: String,
    },
}

/// Reads `files` and builds the configurations.
///
/// # Errors
/// A file cannot be read or parsed, or the certificate and key do not belong together.
pub fn load(files: &TlsFiles) -> Result<TlsConfigs, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, &e))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider)).with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, &provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut grpc = builder.with_single_cert(certs, key)?;
    let mut http = grpc.clone();
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsConfigs { grpc: Arc::new(grpc), http: Arc::new(http) })
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| file_error(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError::File { path: path.display().to_string(), message: "no CERTIFICATE in it".to_owned() });
    }
    Ok(certs)
}

fn client_verifier(
    ca: &Path,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| TlsError::ClientCa { path: ca.display().to_string(), message: e.to_string() })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::ClientCa { path: ca.display().to_string(), message: e.to_string() })
}

fn file_error(path: &Path, error: &rustls::pki_types::pem::Error) -> TlsError {
    let message = match error {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind in it".to_owned(),
        other => other.to_string(),
    };
    TlsError::File { path: path.display().to_string(), message }
}

/// Loads `files` again and publishes the result, or logs why not; the old configuration stays live on any error.
pub fn reload(files: &TlsFiles, live: &watch::Sender<Arc<TlsConfigs>>, cause: &str) {
    match load(files) {
        Ok(configs) => {
            live.send_replace(Arc::new(configs));
            tracing::info!(cert = %files.cert.display(), cause, "Reloaded the TLS certificate; new connections use it.");
        }
        Err(error) => {
            tracing::error!(cause, %error, "Rejected the TLS files; the old certificate stays live.");
        }
    }
}
