//! A Courier server on `127.0.0.1:0` for integration tests, and clients for it.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The real `courier-server` binary on a data directory, for tests that kill or signal it.
pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
}

/// A failing test must not leave a server behind.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts it on `data` with `extra` arguments; waits (at most 10 s) until it listens.
    pub fn start(data: &std::path::Path, addr_file: &std::path::Path, extra: &[&str]) -> Self {
        let _ = std::fs::remove_file(addr_file);
        let child = Command::new(env!("CARGO_BIN_EXE_courier-server"))
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(addr_file)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let addr = loop {
            match std::fs::read_to_string(addr_file) {
                Ok(addr) if !addr.is_empty() => break addr,
                _ => {
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "the server did not start"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        Self { child, addr }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub async fn connect(&self) -> Connection {
        let options = ConnectOptions {
            addr: format!("http://{}", self.addr),
            ..ConnectOptions::default()
        };
        Connection::open(&options).await.unwrap()
    }
}

/// The server still answers a good call.
pub async fn assert_hello_works(server: &TestServer) {
    let reply = server
        .connect()
        .await
        .hello(metadata(None, &[]))
        .hello(courier_client::pb::hello::HelloRequest {
            name: "still here".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().msg, "hello world! still here");
}

/// A ReceiveMessage response stream.
pub type Receiving = tonic::Streaming<courier_client::pb::message::ReceiveMessageResponse>;

/// Opens a ReceiveMessage stream for `user`, acting as `user`; resumes after `after_id` unless
/// it is empty.
pub async fn open_receive(
    connection: &Connection,
    user: &str,
    after_id: &str,
    idle: Option<Duration>,
) -> Receiving {
    let request = courier_client::pb::message::ReceiveMessageRequest {
        user: user.into(),
        idle_timeout: idle.map(Into::into),
        after_id: after_id.into(),
    };
    connection
        .messages(as_user(user))
        .receive_message(request)
        .await
        .unwrap()
        .into_inner()
}

/// Reads a stream to its OK end: the messages, and the `x-message-count` trailer.
pub async fn drain(mut stream: Receiving) -> (Vec<courier_client::pb::message::Message>, String) {
    let mut messages = Vec::new();
    while let Some(response) = stream.message().await.unwrap() {
        messages.push(response.message.unwrap());
    }
    let trailers = stream.trailers().await.unwrap().unwrap();
    let count = trailers
        .get("x-message-count")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (messages, count)
}

/// Receives until `idle` passes without a message (see [`open_receive`] and [`drain`]).
pub async fn receive_until_idle(
    connection: &Connection,
    user: &str,
    after_id: &str,
    idle: Duration,
) -> (Vec<courier_client::pb::message::Message>, String) {
    drain(open_receive(connection, user, after_id, Some(idle)).await).await
}

/// The contents of `messages`, in order.
pub fn contents(messages: &[courier_client::pb::message::Message]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message.content.clone())
        .collect()
}
