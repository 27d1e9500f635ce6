//! Native TLS (the `tls` feature, rustls with ring): a [`Listener`] that
//! wraps another (TCP, usually) and serves its connections over TLS 1.2 or
//! 1.3 with ALPN `http/1.1`.
//!
//! The certificate chain and key come from PEM files and are read again
//! when asked ([`Tls::reload`], which the daemon calls on `SIGHUP`) or when
//! the files change ([`Tls::watch`]); connections made after a reload get
//! the new certificate, those already open keep theirs. A reload that
//! fails (a half-written file, a key that does not fit the certificate)
//! keeps the certificate in use.
//!
//! The handshake runs on the connection's own task, not in `accept`: a
//! client that never finishes it holds only its own connection, and the
//! server's first-byte deadline closes it like any slow request.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use snowflake_mcp::tls::Tls;
//! let tls = Tls::from_pem_files("cert.pem", "key.pem")?;
//! let _watch = tls.watch(std::time::Duration::from_secs(10));
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let listener = tls.listener(tcp);
//! // Service::new(...).build().on_listener(listener)?.serve(shutdown).await
//! # Ok(()) }
//! ```

mod certs;
mod io;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::server::Listener;

pub use certs::TlsError;
pub use io::TlsIo;

/// TLS settings and the certificate in use. Cheap to clone (shared).
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
}

struct Inner {
    cert_path: PathBuf,
    key_path: PathBuf,
    /// The certificate and key in use: swapped whole by a reload.
    current: Arc<Current>,
    /// The files' modification times at the last reload, for [`Tls::watch`].
    /// A std mutex: held to compare and store, never across an `.await`.
    stamps: parking_lot::Mutex<Option<(std::time::SystemTime, std::time::SystemTime)>>,
    acceptor: tokio_rustls::TlsAcceptor,
}

/// The certificate resolver: whatever the last good reload read.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl std::fmt::Debug for Tls {
    // Paths only: never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.inner.cert_path)
            .field("key", &self.inner.key_path)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// TLS with the certificate chain (leaf first) in `cert` and its
    /// private key (PKCS#8, PKCS#1 or SEC1) in `key`, both PEM.
    pub fn from_pem_files(cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Result<Tls, TlsError> {
        let (cert_path, key_path) = (cert.as_ref().to_owned(), key.as_ref().to_owned());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = certs::load(&cert_path, &key_path, &provider)?;
        let current = Arc::new(Current(ArcSwap::from_pointee(loaded)));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(format!("TLS versions: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let stamps = parking_lot::Mutex::new(certs::stamps(&cert_path, &key_path));
        Ok(Tls {
            inner: Arc::new(Inner {
                cert_path,
                key_path,
                current,
                stamps,
                acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            }),
        })
    }

    /// Reads the files again; the new certificate serves new connections.
    /// On an error the one in use stays. It reads files, and blocks while
    /// they are read: from async code, call it on the blocking pool
    /// (`tokio::task::spawn_blocking`), as [`Tls::watch`] does.
    pub fn reload(&self) -> Result<(), TlsError> {
        let inner = &self.inner;
        let provider = rustls::crypto::ring::default_provider();
        let loaded = certs::load(&inner.cert_path, &inner.key_path, &provider)?;
        inner.current.0.store(Arc::new(loaded));
        *inner.stamps.lock() = certs::stamps(&inner.cert_path, &inner.key_path);
        tracing::info!(target: "snowflake_mcp::tls", cert = %inner.cert_path.display(), "TLS certificate loaded");
        Ok(())
    }

    /// Reloads when either file's modification time changes, checking
    /// every `every`, until the returned task is aborted (or the runtime
    /// ends). A failed reload is logged and tried again at the next change.
    pub fn watch(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // On the blocking pool: a file on a stalled disk or network
                // mount stalls this watcher, never an async worker (and one
                // look at a time, as the next waits for this one).
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.look()).await;
            }
        })
    }

    /// One look of [`Tls::watch`]: reloads if either file changed.
    fn look(&self) {
        let inner = &self.inner;
        let now = certs::stamps(&inner.cert_path, &inner.key_path);
        if now.is_none() || now == *inner.stamps.lock() {
            return;
        }
        if let Err(e) = self.reload() {
            // Not again until the files change once more.
            *inner.stamps.lock() = now;
            tracing::warn!(target: "snowflake_mcp::tls", error = %e, "TLS certificate not reloaded; the one in use stays");
        }
    }

    /// `inner`'s connections, served over TLS.
    pub fn listener<L: Listener>(&self, inner: L) -> TlsListener<L> {
        TlsListener {
            inner,
            acceptor: self.inner.acceptor.clone(),
        }
    }
}

/// A [`Listener`] whose connections speak TLS (see [`Tls::listener`]).
pub struct TlsListener<L> {
    inner: L,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl<L> std::fmt::Debug for TlsListener<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener").finish_non_exhaustive()
    }
}

impl<L: Listener> Listener for TlsListener<L>
where
    L::Io: Sync,
{
    type Io = TlsIo<L::Io>;

    async fn accept(&mut self) -> std::io::Result<(TlsIo<L::Io>, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((TlsIo::new(self.acceptor.accept(stream)), peer))
    }
}
