//! A Courier server on `127.0.0.1:0` for integration tests, and clients for it.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::sync::Arc;
use std::time::Duration;

use courier_client::{CallMetadata, ConnectOptions, Connection, ExtraMetadata};
use courier_server::auth::{TokenStore, token_file_line};
use courier_server::dev_pki::DevPki;
use courier_server::{Config, ServeError, TlsFiles};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const JACK_TOKEN: &str = "jack-token-for-tests";
pub const MIKE_TOKEN: &str = "mike-token-for-tests";

/// A running server; dropping it without [`TestServer::stop`] just aborts it.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    pub pki: Option<(tempfile::TempDir, Arc<DevPki>)>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

#[derive(Clone, Default)]
pub struct Setup {
    pub tls: bool,
    pub mutual_tls: bool,
    pub auth: bool,
    /// Shutdown grace period; 5 s when unset.
    pub grace: Option<Duration>,
    /// Limits; the defaults when unset.
    pub limits: Option<courier_server::Limits>,
    /// Durable store directory; in memory when unset.
    pub data_dir: Option<std::path::PathBuf>,
}

impl TestServer {
    pub async fn start(setup: Setup) -> Self {
        let pki = (setup.tls || setup.mutual_tls).then(|| {
            let dir = tempfile::tempdir().unwrap();
            let pki = DevPki::generate().unwrap();
            pki.write_to(dir.path()).unwrap();
            (dir, Arc::new(pki))
        });
        let tls = pki.as_ref().map(|(dir, _)| TlsFiles {
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
            limits: setup.limits.clone().unwrap_or_default(),
            data_dir: setup.data_dir.clone(),
            retention: courier_server::DEFAULT_RETENTION,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(courier_server::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            pki,
            stop: Some(stop),
            task,
        }
    }

    /// Connection options for this server: TLS with the test CA when TLS is on.
    pub fn options(&self) -> ConnectOptions {
        match &self.pki {
            Some((dir, _)) => ConnectOptions {
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

    pub async fn connect(&self) -> Connection {
        Connection::open(&self.options()).await.expect("connects")
    }

    /// Starts graceful shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap()
    }
}

/// Call metadata with `token` and extra `key:value` entries.
pub fn metadata(token: Option<&str>, extra: &[&str]) -> CallMetadata {
    let extra = extra
        .iter()
        .map(|entry| ExtraMetadata::parse(entry).unwrap())
        .collect();
    CallMetadata::new(token, extra).unwrap()
}

/// Metadata for acting as `user` on a server without auth (the tutorial's `from` header).
pub fn as_user(user: &str) -> CallMetadata {
    metadata(None, &[&format!("from:{user}")])
}

pub fn message(from: &str, to: &str, content: &str) -> courier_client::pb::message::Message {
    courier_client::pb::message::Message {
        from: from.into(),
        to: to.into(),
        content: content.into(),
        ..Default::default()
    }
}
