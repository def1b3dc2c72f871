//! The AWS SDK's configuration: loaded once per process, shared by the DynamoDB and the
//! Secrets Manager clients, with one HTTPS client the code chooses itself.
//!
//! The SDK's default HTTPS client reads the operating system's whole trust store on every
//! cold start (hundreds of certificates parsed, most of a bootstrap's start-up CPU) and
//! brings a second crypto library. The SDK only ever talks TLS to AWS endpoints, and those
//! chain to the Amazon Trust Services roots, so this client trusts those five roots,
//! compiled in, and uses `ring`, the library the rest of the code already links.
//!
//! A deployment that reaches AWS through a TLS-inspecting proxy or a private CA sets
//! `SSL_CERT_FILE` (or `SSL_CERT_DIR`): the operating system's store is then trusted too.

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};

/// The roots AWS service endpoints chain to: Amazon Root CA 1–4 and Starfield Services
/// Root Certificate Authority – G2 (PEM).
pub const AMAZON_ROOTS_PEM: &str = include_str!("aws/amazon-roots.pem");

/// Variables that, when set, add the operating system's trust store to the Amazon roots.
pub const NATIVE_ROOTS_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// Whether the operating system's trust store is wanted, by `lookup` of the environment.
pub fn wants_native_roots(lookup: impl Fn(&str) -> Option<String>) -> bool {
    NATIVE_ROOTS_VARIABLES
        .iter()
        .any(|name| lookup(name).is_some_and(|value| !value.trim().is_empty()))
}

/// The SDK's HTTPS client: rustls on `ring`, trusting the Amazon roots (and the operating
/// system's store when [`wants_native_roots`]), `TCP_NODELAY` on.
pub fn https_client(native_roots: bool) -> SharedHttpClient {
    let trust = TrustStore::empty()
        .with_native_roots(native_roots)
        .with_pem_certificate(AMAZON_ROOTS_PEM.as_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .unwrap_or_default();
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// What the environment already settles, so the default chains need not be built for it.
#[derive(Debug, PartialEq, Eq)]
pub struct FromEnvironment {
    /// `AWS_REGION`, the variable Lambda sets and the region chain reads first.
    pub region: Option<String>,
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` are both set (Lambda sets them, with
    /// `AWS_SESSION_TOKEN`, to the role's credentials): the credentials chain would stop at
    /// its first provider, the environment's.
    pub credentials: bool,
}

impl FromEnvironment {
    /// Reads the variables through `lookup`; blank values count as unset.
    pub fn read(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        Self {
            region: set("AWS_REGION"),
            credentials: set("AWS_ACCESS_KEY_ID").is_some() && set("AWS_SECRET_ACCESS_KEY").is_some(),
        }
    }
}

/// The shared configuration (region, credentials: the role's in Lambda;
/// `AWS_ENDPOINT_URL_*` for local stand-ins) with [`https_client`]. Each service client
/// adds its own timeouts and retries on top.
pub async fn sdk_config() -> SdkConfig {
    let env = |name: &str| std::env::var(name).ok();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client(wants_native_roots(env)));
    // Same answers as the default chains, without building them: the credentials chain
    // alone builds an STS client for web identity, a third of a cold start's SDK work.
    let known = FromEnvironment::read(env);
    if let Some(region) = known.region {
        loader = loader.region(Region::new(region));
    }
    if known.credentials {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader.load().await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_bundle_holds_the_five_amazon_trust_services_roots() {
        assert_eq!(AMAZON_ROOTS_PEM.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(AMAZON_ROOTS_PEM.matches("-----END CERTIFICATE-----").count(), 5);
        for name in [
            "Amazon_Root_CA_1",
            "Amazon_Root_CA_2",
            "Amazon_Root_CA_3",
            "Amazon_Root_CA_4",
        ] {
            assert!(AMAZON_ROOTS_PEM.contains(name), "{name} missing");
        }
        assert!(AMAZON_ROOTS_PEM.contains("Starfield_Services_Root_Certificate_Authority_-_G2"));
    }

    /// The client parses the bundle when it builds its first connection: a bundle it could
    /// not read would panic there, so a call to a closed port must come back as an error.
    #[tokio::test]
    async fn a_client_on_the_bundle_reports_an_unreachable_endpoint_as_an_error() {
        assert!(!call_dynamodb_at(9).await);
    }

    /// A DynamoDB call to 127.0.0.1 on `port`, with the client AWS calls use.
    async fn call_dynamodb_at(port: u16) -> bool {
        use aws_sdk_dynamodb::config::{Credentials, Region, retry::RetryConfig};
        let config = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("id", "secret", None, None, "test"))
            .endpoint_url(format!("https://127.0.0.1:{port}"))
            .http_client(https_client(false))
            .retry_config(RetryConfig::disabled())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
            .list_tables()
            .send()
            .await
            .is_ok()
    }

    /// An endpoint whose certificate chains to a CA other than the Amazon roots (here a
    /// test CA, as a TLS-intercepting attacker would present) is refused during the
    /// handshake, before any signed request leaves the function.
    #[tokio::test]
    async fn an_endpoint_certified_by_another_ca_is_refused() {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        const CHAIN: &str = include_str!("../../tests/data/untrusted-tls/chain.pem");
        const KEY: &str = include_str!("../../tests/data/untrusted-tls/key.pem");
        let chain = CertificateDer::pem_slice_iter(CHAIN.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("test chain");
        let key = PrivateKeyDer::from_pem_slice(KEY.as_bytes()).expect("test key");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let handshake = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            acceptor.accept(stream).await.map(|_| ()).map_err(|e| e.to_string())
        });

        assert!(!call_dynamodb_at(port).await, "the call must fail");
        let outcome = handshake.await.expect("server task");
        // The client aborted the handshake itself, naming the reason: an unknown CA.
        let error = outcome.expect_err("the handshake must not complete");
        assert!(error.contains("UnknownCA"), "{error}");
    }

    #[test]
    fn the_environment_settles_region_and_credentials_only_when_complete() {
        let lookup = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        const LAMBDA: &[(&str, &str)] = &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        assert_eq!(
            FromEnvironment::read(lookup(LAMBDA)),
            FromEnvironment {
                region: Some("eu-west-1".to_owned()),
                credentials: true
            }
        );
        let partial = FromEnvironment::read(lookup(&[("AWS_ACCESS_KEY_ID", "AKIA"), ("AWS_REGION", " ")]));
        assert_eq!(
            partial,
            FromEnvironment {
                region: None,
                credentials: false
            }
        );
    }

    #[test]
    fn the_system_store_is_added_only_when_asked_for() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        };
        assert!(!wants_native_roots(env(&[])));
        assert!(!wants_native_roots(env(&[("SSL_CERT_FILE", " ")])));
        assert!(wants_native_roots(env(&[(
            "SSL_CERT_FILE",
            "/etc/pki/tls/certs/ca-bundle.crt"
        )])));
        assert!(wants_native_roots(env(&[("SSL_CERT_DIR", "/etc/ssl/certs")])));
    }
}
