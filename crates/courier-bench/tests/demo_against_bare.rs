//! `courier-client demo` against an independent implementation of the contract: the bench's
//! bare tonic server ([`courier_bench::bare`]), which has none of Courier's metadata extensions
//! (no `x-request-id`, no `x-message-count`, no `x-echo-*`) and no authentication. The demo must
//! pass on what the contract defines alone, and say that the extensions are absent.

use std::collections::HashMap;
use std::net::SocketAddr;

use courier_bench::bare::Bare;
use courier_client::demo::Demo;
use courier_client::{ConnectOptions, Connection};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

/// The bare server on an ephemeral loopback port, plaintext, until [`BareServer::stop`].
struct BareServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl BareServer {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("bound");
        let (hello, messages, chat) = Bare::default().services();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            Server::builder()
                .add_service(hello)
                .add_service(messages)
                .add_service(chat)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task did not panic")
            .expect("the server ran");
    }
}

#[tokio::test]
async fn the_demo_passes_against_the_bare_server_and_reports_no_extensions() {
    let server = BareServer::start().await;
    let connection = Connection::open(&ConnectOptions {
        addr: format!("http://{}", server.addr),
        ..ConnectOptions::default()
    })
    .await
    .expect("connect to the bare server");

    let mut transcript = Vec::new();
    let outcome = Demo::new(connection, HashMap::new())
        .run(&mut transcript)
        .await;
    let transcript = String::from_utf8(transcript).expect("the transcript is UTF-8");
    if let Err(error) = outcome {
        panic!("the demo failed: {error} ({error:?})\n--- transcript ---\n{transcript}");
    }

    for expected in [
        "x-request-id header: absent from all 5 responses",
        "x-echo-* headers: absent from all 5 responses",
        "x-message-count trailer: absent from all 3 streams",
        "demo passed: every answer was right",
    ] {
        assert!(
            transcript.lines().any(|line| line.trim() == expected),
            "no line {expected:?} in:\n{transcript}"
        );
    }
    server.stop().await;
}
