//! The roots the provider and upstream clients trust besides their compiled-in set.
//!
//! Both clients trust the Mozilla roots compiled into the binary: reading the operating
//! system's store at every cold start costs CPU a 128 MB function lacks (see
//! [`crate::platform::aws`]). A provider or API behind a private CA or a TLS-inspecting
//! proxy is reached by the same opt-in as the AWS endpoints: `SSL_CERT_FILE` (or
//! `SSL_CERT_DIR`) names the certificates to trust as well, and only those are read,
//! once per process.
//!
//! The provider client is reqwest's ([`with_extra_roots`]); the upstream client is hyper's
//! over rustls ([`client_tls_config`]). Both trust the same roots.

use std::sync::OnceLock;

use crate::platform::aws::wants_native_roots;

/// The certificates `SSL_CERT_FILE` / `SSL_CERT_DIR` name, DER-encoded; empty when neither
/// is set. Read once per process; unreadable entries are logged and skipped.
pub fn extra_roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        if !wants_native_roots(|name| std::env::var(name).ok()) {
            return Vec::new();
        }
        // With either variable set, only what they name is read, not the system store.
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(error = %error, "a certificate named by SSL_CERT_FILE or SSL_CERT_DIR was not read");
        }
        found.certs.into_iter().map(|cert| cert.as_ref().to_vec()).collect()
    })
}

/// The TLS client configuration of the upstream client: rustls on `ring`, trusting the
/// Mozilla roots compiled in and [`extra_roots`].
pub fn client_tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra_roots() {
        if let Err(e) = roots.add(rustls_pki_types::CertificateDer::from(der.as_slice())) {
            tracing::warn!(error = %e, "a certificate named by SSL_CERT_FILE or SSL_CERT_DIR was not usable");
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `builder` trusting [`extra_roots`] as well as its compiled-in roots.
pub fn with_extra_roots(mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    for der in extra_roots() {
        match reqwest::Certificate::from_der(der) {
            Ok(cert) => builder = builder.add_root_certificate(cert),
            Err(e) => tracing::warn!(error = %e, "a certificate named by SSL_CERT_FILE or SSL_CERT_DIR was not usable"),
        }
    }
    builder
}
