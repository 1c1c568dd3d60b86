//! A Courier server in this process on `127.0.0.1:0`, with TLS, mutual TLS, tokens, limits and
//! a data directory as a test asks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use courier_client::{ConnectOptions, Connection};
use courier_server::dev_pki::DevPki;
use courier_server::middleware::auth::{TokenStore, token_file_line};
use courier_server::{Config, Limits, ServeError, TlsFiles};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::client::hello;

pub(crate) const JACK_TOKEN: &str = "jack-token-for-tests";
pub(crate) const MIKE_TOKEN: &str = "mike-token-for-tests";

/// How a test server is set up; the default is plaintext, no auth, default limits, in memory.
#[derive(Clone, Default)]
pub(crate) struct Setup {
    pub(crate) tls: bool,
    pub(crate) mutual_tls: bool,
    /// Tokens for jack ([`JACK_TOKEN`]) and mike ([`MIKE_TOKEN`]).
    pub(crate) auth: bool,
    /// Shutdown grace period; 5 s when unset.
    pub(crate) grace: Option<Duration>,
    /// Limits; the defaults when unset.
    pub(crate) limits: Option<Limits>,
    /// Durable store directory; in memory when unset.
    pub(crate) data_dir: Option<PathBuf>,
    /// Origins allowed to call with gRPC-Web from a browser (CORS); none when empty.
    pub(crate) cors_origins: Vec<&'static str>,
}

/// A running server; without [`TestServer::stop`] it ends with the test's runtime.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    /// The directory holding the test PKI's files (`ca.pem`, `client.pem`, ...) when TLS is on.
    pub(crate) pki_dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    pub(crate) async fn start(setup: Setup) -> Self {
        let pki_dir = (setup.tls || setup.mutual_tls).then(|| {
            let dir = tempfile::tempdir().unwrap();
            DevPki::generate().unwrap().write_to(dir.path()).unwrap();
            dir
        });
        let tls = pki_dir.as_ref().map(|dir| TlsFiles {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            client_ca: setup.mutual_tls.then(|| dir.path().join("ca.pem")),
        });
        let tokens = setup.auth.then(|| {
            let file = format!(
                "{}\n{}\n",
                token_file_line("jack", JACK_TOKEN),
                token_file_line("mike", MIKE_TOKEN)
            );
            Arc::new(TokenStore::parse(&file).unwrap())
        });
        let config = Config {
            tls,
            tokens,
            shutdown_grace: setup.grace.unwrap_or(Duration::from_secs(5)),
            limits: setup.limits.unwrap_or_default(),
            data_dir: setup.data_dir,
            retention: courier_server::DEFAULT_RETENTION,
            cors_origins: setup
                .cors_origins
                .iter()
                .map(|origin| origin.parse().unwrap())
                .collect(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(courier_server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            pki_dir,
            stop: Some(stop),
            task,
        }
    }

    /// A plaintext server without auth, with `limits`.
    pub(crate) async fn with_limits(limits: Limits) -> Self {
        Self::start(Setup {
            limits: Some(limits),
            ..Setup::default()
        })
        .await
    }

    /// Connection options for this server: TLS with the test CA when TLS is on.
    pub(crate) fn options(&self) -> ConnectOptions {
        match &self.pki_dir {
            Some(dir) => ConnectOptions {
                addr: format!("https://{}", self.addr),
                ca: Some(dir.path().join("ca.pem")),
                domain: Some("localhost".into()),
                identity: None,
            },
            None => ConnectOptions {
                addr: format!("http://{}", self.addr),
                ..ConnectOptions::default()
            },
        }
    }

    pub(crate) async fn connect(&self) -> Connection {
        Connection::open(&self.options()).await.expect("connects")
    }

    /// Starts graceful shutdown and waits for `run` to return.
    pub(crate) async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap()
    }

    /// Asserts that the server still answers a good call, on a new connection.
    pub(crate) async fn assert_hello_works(&self) {
        let reply = hello(&self.connect().await, "still here").await.unwrap();
        assert_eq!(reply, "hello world! still here");
    }
}
