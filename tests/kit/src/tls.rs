//! TLS in front of loopback services (the AWS endpoints of the benchmarks' cold starts,
//! which in AWS are only reachable over HTTPS; an API behind a private CA in the tests): a
//! test CA made for the run (`openssl`, RSA 2048 like Amazon's server certificates), and
//! a terminator per service that completes a real TLS handshake on every connection
//! (rustls on `ring`) and forwards the plain bytes.
//!
//! The terminator timestamps each connection's accept and handshake end, which is how the
//! harness attributes cold-start time to handshakes (the function's side of a TLS 1.3
//! handshake, certificate verification included, lies between the two).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// One TLS connection seen by a terminator.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// The service (`dynamodb`, `secretsmanager`, ...).
    pub service: &'static str,
    /// TCP accept.
    pub accepted: Instant,
    /// Handshake complete (or failed).
    pub done: Instant,
    /// It completed.
    pub ok: bool,
    /// It resumed an earlier session (PSK) instead of a full handshake.
    pub resumed: bool,
}

/// Every connection of every terminator, in order.
#[derive(Clone, Default)]
pub struct Handshakes(Arc<Mutex<Vec<Handshake>>>);

impl Handshakes {
    /// Connections accepted in `[from, to]`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Handshake> {
        self.0
            .lock()
            .map(|all| {
                all.iter()
                    .filter(|h| h.accepted >= from && h.accepted <= to)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn push(&self, handshake: Handshake) {
        if let Ok(mut all) = self.0.lock() {
            all.push(handshake);
        }
    }
}

/// The test CA and the server certificate all terminators present.
pub struct Tls {
    /// The CA certificate (PEM): what the functions are given as `SSL_CERT_FILE`.
    pub ca_file: PathBuf,
    acceptor: tokio_rustls::TlsAcceptor,
    /// What the terminators saw.
    pub handshakes: Handshakes,
    /// Added to every connection's set-up and to every chunk of every answer (see
    /// [`Tls::with_delay`]).
    delay: Duration,
}

impl Tls {
    /// Makes a CA and a certificate for `localhost` and `127.0.0.1` in `dir`.
    pub fn create(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let file = |name: &str| dir.join(name).display().to_string();
        std::fs::write(
            dir.join("server.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .map_err(|e| e.to_string())?;
        let steps: [Vec<String>; 3] = [
            [
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=bff test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([file("ca.key"), "-out".into(), file("ca.pem")])
            .collect(),
            [
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([file("server.key"), "-out".into(), file("server.csr")])
            .collect(),
            vec![
                "x509".into(),
                "-req".into(),
                "-in".into(),
                file("server.csr"),
                "-CA".into(),
                file("ca.pem"),
                "-CAkey".into(),
                file("ca.key"),
                "-CAcreateserial".into(),
                "-days".into(),
                "2".into(),
                "-extfile".into(),
                file("server.ext"),
                "-out".into(),
                file("server.pem"),
            ],
        ];
        for args in steps {
            let out = std::process::Command::new("openssl")
                .args(&args)
                .output()
                .map_err(|e| format!("openssl: {e}"))?;
            if !out.status.success() {
                return Err(format!("openssl {}: {}", args[0], String::from_utf8_lossy(&out.stderr)));
            }
        }
        let chain = CertificateDer::pem_file_iter(dir.join("server.pem"))
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("server.pem: {e}"))?;
        let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).map_err(|e| format!("server.key: {e}"))?;
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            ca_file: dir.join("ca.pem"),
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            handshakes: Handshakes::default(),
            delay: Duration::ZERO,
        })
    }

    /// Terminators that wait `delay` after accepting a connection, again after its
    /// handshake, and before passing on each chunk of an answer: a network round trip of
    /// about `delay` for the TCP and the TLS handshake and for each request, as between a
    /// function and an AWS endpoint in its region, where on loopback there is none.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Serves TLS on a loopback port for `service`, forwarding to the plain `target`
    /// (`host:port`); returns `https://localhost:<port>`.
    pub async fn terminate(&self, service: &'static str, target: String) -> Result<String, String> {
        let terminator = self.listen(service).await?;
        let url = terminator.url.clone();
        terminator.forward(target);
        Ok(url)
    }

    /// Binds a terminator for `service` whose target is given later, for a service that
    /// must know its https address before it starts (a provider's issuer).
    pub async fn listen(&self, service: &'static str) -> Result<Terminator, String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        Ok(Terminator {
            url: format!("https://localhost:{port}"),
            service,
            listener,
            acceptor: self.acceptor.clone(),
            handshakes: self.handshakes.clone(),
            delay: self.delay,
        })
    }
}

/// A bound terminator, not yet forwarding.
pub struct Terminator {
    /// `https://localhost:<port>`.
    pub url: String,
    service: &'static str,
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshakes: Handshakes,
    delay: Duration,
}

impl Terminator {
    /// Accepts connections from now on, forwarding each to the plain `target`
    /// (`host:port`).
    pub fn forward(self, target: String) {
        let Self {
            service,
            listener,
            acceptor,
            handshakes,
            delay,
            ..
        } = self;
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let accepted = Instant::now();
                let acceptor = acceptor.clone();
                let handshakes = handshakes.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let tls = acceptor.accept(stream).await;
                    let done = Instant::now();
                    let resumed = tls
                        .as_ref()
                        .ok()
                        .and_then(|s| s.get_ref().1.handshake_kind())
                        .is_some_and(|k| k == rustls::HandshakeKind::Resumed);
                    handshakes.push(Handshake {
                        service,
                        accepted,
                        done,
                        ok: tls.is_ok(),
                        resumed,
                    });
                    let (Ok(mut tls), Ok(mut plain)) = (tls, TcpStream::connect(&target).await) else {
                        return;
                    };
                    let _ = plain.set_nodelay(true);
                    if delay.is_zero() {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    } else {
                        tokio::time::sleep(delay).await;
                        delayed_copy(tls, plain, delay).await;
                    }
                });
            }
        });
    }
}

/// Requests pass at once; each chunk of an answer waits `delay` first.
async fn delayed_copy(tls: tokio_rustls::server::TlsStream<TcpStream>, plain: TcpStream, delay: Duration) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (mut tls_read, mut tls_write) = tokio::io::split(tls);
    let (mut plain_read, mut plain_write) = plain.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut tls_read, &mut plain_write).await;
        let _ = plain_write.shutdown().await;
    };
    let answers = async {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n) = plain_read.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            if tls_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = tls_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}
