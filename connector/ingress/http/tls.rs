//! The listener: plain TCP, or native HTTPS (rustls) whose certificate is reloaded when its
//! files change, so a renewed certificate (cert-manager, a rotated Kubernetes Secret) is
//! served to new connections without a restart.
//!
//! TLS handshakes run in their own tasks under a timeout and a cap, off the accept loop, so a
//! slow or silent client cannot hold up anyone else. The files are polled (content compared)
//! rather than watched: that survives the symlink swap of Secret volumes. A half-written or
//! mismatched pair is logged and skipped; the previous certificate stays in use.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::config::TlsConfig;

/// Handshakes in progress at once; more connections are closed until some finish.
const MAX_HANDSHAKES: usize = 1024;

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Binding the port failed.
    #[error("binding http.listen {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    /// A file cannot be read.
    #[error("config key `{key}`: cannot read {}: {source}", path.display())]
    Read {
        key: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The certificate file has no certificate.
    #[error("config key `http.tls.cert_file`: no PEM certificate in {}", .0.display())]
    NoCertificate(PathBuf),
    /// The key file has no usable key.
    #[error("config key `http.tls.key_file`: no PEM private key in {}", .0.display())]
    NoKey(PathBuf),
    /// rustls refused the pair (unsupported key, or key and certificate do not match).
    #[error("config keys `http.tls.cert_file`/`http.tls.key_file`: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TCP peer of a connection (before any proxy header is considered); the connect info
/// handlers extract with `ConnectInfo<PeerAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, ServeListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, ServeListener>) -> Self {
        *stream.remote_addr()
    }
}

/// Binds `listen` (`http.listen`); the error names the key.
pub async fn bind(listen: SocketAddr) -> Result<TcpListener, TlsError> {
    TcpListener::bind(listen)
        .await
        .map_err(|source| TlsError::Bind {
            addr: listen,
            source,
        })
}

/// Serves `tcp` as is, or with TLS when `tls` is enabled (the files are read now; a bad pair
/// stops start-up naming the key).
pub fn serve_on(tcp: TcpListener, tls: &TlsConfig) -> Result<ServeListener, TlsError> {
    let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) else {
        return Ok(ServeListener::Plain(tcp));
    };
    let store = Arc::new(CertStore::load(cert, key)?);
    Ok(ServeListener::Tls(TlsListener::start(tcp, store, tls)))
}

/// What `axum::serve` accepts connections from.
pub enum ServeListener {
    /// Plain HTTP.
    Plain(TcpListener),
    /// HTTPS.
    Tls(TlsListener),
}

impl ServeListener {
    /// The bound address (port 0 in config resolves here).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            ServeListener::Plain(tcp) => tcp.local_addr(),
            ServeListener::Tls(tls) => Ok(tls.local),
        }
    }
}

impl axum::serve::Listener for ServeListener {
    type Io = Stream;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (Stream, PeerAddr) {
        match self {
            ServeListener::Plain(tcp) => {
                let (stream, peer) = super::accept::accept_tcp(tcp).await;
                (Stream::Plain(stream), PeerAddr(peer))
            }
            ServeListener::Tls(tls) => match tls.incoming.recv().await {
                Some((stream, peer)) => (Stream::Tls(Box::new(stream)), PeerAddr(peer)),
                // The accept task ended (only when the listener is dropped).
                None => std::future::pending().await,
            },
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        ServeListener::local_addr(self).map(PeerAddr)
    }
}

/// HTTPS connections whose handshake completed.
pub struct TlsListener {
    local: SocketAddr,
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accept_task: tokio::task::JoinHandle<()>,
    _store: Arc<CertStore>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    fn start(tcp: TcpListener, store: Arc<CertStore>, config: &TlsConfig) -> Self {
        let local = tcp.local_addr().expect("a bound listener has an address");
        let mut server = rustls::ServerConfig::builder_with_provider(store.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(store.clone());
        // axum serves HTTP/1.1 (its http2 feature is off).
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(server));
        let (tx, incoming) = mpsc::channel(128);
        let timeout = Duration::from_millis(config.handshake_timeout_ms);
        let accept_task = tokio::spawn(accept_loop(tcp, acceptor, timeout, tx));
        spawn_reload(
            Arc::downgrade(&store),
            Duration::from_millis(config.reload_interval_ms),
        );
        Self {
            local,
            incoming,
            accept_task,
            _store: store,
        }
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = super::accept::accept_tcp(&tcp).await;
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "too many TLS handshakes in progress; connection closed");
            continue;
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

/// Checks the files every `every` while the store is alive.
fn spawn_reload(store: Weak<CertStore>, every: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(store) = store.upgrade() else { return };
            match store.reload_if_changed() {
                Ok(true) => {
                    tracing::info!(cert_file = %store.cert_path.display(), "TLS certificate reloaded")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "TLS certificate files changed but cannot be used; still serving the previous certificate")
                }
            }
        }
    });
}

/// The certificate being served, and where it comes from.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The file contents `current` was built from.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("cert lock").clone())
    }
}

impl CertStore {
    /// Reads and checks the pair.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (cert, key) = read_pair(cert_path, key_path)?;
        let certified = certified_key(&cert, &key, cert_path, key_path, &provider)?;
        Ok(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(certified)),
            loaded: Mutex::new((cert, key)),
        })
    }

    /// Swaps in the files' pair when their content changed. `Ok(false)`: unchanged.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let (cert, key) = read_pair(&self.cert_path, &self.key_path)?;
        let mut loaded = self.loaded.lock().expect("cert lock");
        if loaded.0 == cert && loaded.1 == key {
            return Ok(false);
        }
        let certified =
            certified_key(&cert, &key, &self.cert_path, &self.key_path, &self.provider)?;
        *self.current.write().expect("cert lock") = Arc::new(certified);
        *loaded = (cert, key);
        Ok(true)
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |key: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            key,
            path: path.to_path_buf(),
            source,
        })
    };
    Ok((
        read("http.tls.cert_file", cert_path)?,
        read("http.tls.key_file", key_path)?,
    ))
}

fn certified_key(
    cert: &[u8],
    key: &[u8],
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(cert_path.to_path_buf()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_path_buf()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::NoKey(key_path.to_path_buf()))?;
    Ok(CertifiedKey::from_der(chain, key, provider)?)
}

/// A plain or TLS connection.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (cert.cert.pem(), cert.signing_key.serialize_pem())
    }

    #[test]
    fn a_changed_pair_is_swapped_in_and_a_mismatched_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (cert_a, key_a) = pair("a.test");
        std::fs::write(&cert_path, &cert_a).unwrap();
        std::fs::write(&key_path, &key_a).unwrap();
        let store = CertStore::load(&cert_path, &key_path).unwrap();
        let served = |s: &CertStore| s.current.read().unwrap().cert[0].clone();
        let first = served(&store);
        assert!(!store.reload_if_changed().unwrap());

        // Only the certificate replaced: the key does not match, keep serving A.
        let (cert_b, key_b) = pair("b.test");
        std::fs::write(&cert_path, &cert_b).unwrap();
        let error = store.reload_if_changed().unwrap_err();
        assert!(error.to_string().contains("http.tls"), "{error}");
        assert_eq!(served(&store), first);

        std::fs::write(&key_path, &key_b).unwrap();
        assert!(store.reload_if_changed().unwrap());
        assert_ne!(served(&store), first);
        assert!(!error.to_string().contains("PRIVATE KEY"));
    }

    #[test]
    fn unusable_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let error = CertStore::load(&cert_path, &key_path).unwrap_err();
        assert!(error.to_string().contains("http.tls.cert_file"), "{error}");
        let (cert, _) = pair("a.test");
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, "not a key").unwrap();
        let error = CertStore::load(&cert_path, &key_path).unwrap_err();
        assert!(error.to_string().contains("http.tls.key_file"), "{error}");
    }
}
