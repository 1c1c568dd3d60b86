//! Nothing accepted is lost: resuming after a cancel, restarting on the same data directory,
//! and a SIGKILL in the middle of sending.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_client::Connection;

use crate::helpers::checks::{assert_in_order, assert_nothing_lost};
use crate::helpers::client::{
    contents, is_transport_error, open_receive, receive_until_idle, send_texts,
};
use crate::helpers::process::ServerProcess;
use crate::helpers::server::{Setup, TestServer};

const IDLE: Duration = Duration::from_millis(300);

/// Receives `mike`'s messages until the idle timeout: their contents.
async fn receive_all(connection: &Connection, after_id: &str) -> Vec<String> {
    contents(
        &receive_until_idle(connection, "mike", after_id, IDLE)
            .await
            .0,
    )
}

fn texts(range: std::ops::RangeInclusive<usize>) -> Vec<String> {
    range.map(|n| format!("m{n}")).collect()
}

/// Sends `texts` from jack to mike in one call: the count.
async fn send(connection: &Connection, texts: &[String]) -> Result<i64, tonic::Status> {
    send_texts(connection, "jack", "mike", texts).await
}

#[tokio::test]
async fn a_receiver_that_cancels_after_k_of_n_resumes_with_exactly_the_rest() {
    const N: usize = 50;
    const K: usize = 17;
    for durable in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let server = TestServer::start(Setup {
            data_dir: durable.then(|| dir.path().to_path_buf()),
            ..Setup::default()
        })
        .await;
        let connection = server.connect().await;
        assert_eq!(send(&connection, &texts(1..=N)).await.unwrap(), N as i64);

        // Read K messages, then cancel: more may already be on their way through HTTP/2.
        let mut stream = open_receive(&connection, "mike", "", Some(IDLE)).await;
        let mut processed = Vec::new();
        while processed.len() < K {
            processed.push(stream.message().await.unwrap().unwrap().message.unwrap());
        }
        drop(stream);
        assert_eq!(
            contents(&processed),
            texts(1..=K),
            "durable store: {durable}"
        );
        let last = processed.last().unwrap().id.clone();

        let rest = receive_all(&connection, &last).await;
        assert_eq!(rest, texts(K + 1..=N), "durable store: {durable}");
        // Without after_id, delivery stands after everything: nothing is repeated.
        assert_eq!(
            receive_all(&connection, "").await,
            Vec::<String>::new(),
            "durable store: {durable}"
        );
    }
}

#[tokio::test]
async fn messages_survive_a_restart_on_the_same_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup {
        data_dir: Some(dir.path().to_path_buf()),
        ..Setup::default()
    };
    let server = TestServer::start(setup.clone()).await;
    let connection = server.connect().await;
    assert_eq!(send(&connection, &texts(1..=10)).await.unwrap(), 10);
    // Deliver the first three, then stop.
    let mut stream = open_receive(&connection, "mike", "", Some(IDLE)).await;
    for _ in 0..3 {
        stream.message().await.unwrap().unwrap();
    }
    drop(stream);
    drop(connection);
    server.stop().await.unwrap();

    let server = TestServer::start(setup).await;
    let connection = server.connect().await;
    let rest: Vec<String> = receive_all(&connection, "").await;
    // Those three were handed over; what HTTP/2 had buffered beyond them counts as delivered too,
    // so the rest starts at 4 at the earliest, and nothing after it is missing.
    let first = rest
        .first()
        .map(|text| text[1..].parse::<usize>().unwrap())
        .unwrap_or(11);
    assert!(first >= 4, "{rest:?}");
    assert_eq!(rest, texts(first..=10));
    // And everything is still there for a client that resumes from the start.
    let all: Vec<String> = receive_all(&connection, "0").await;
    assert_eq!(all, texts(1..=10));
}

#[tokio::test]
async fn every_message_counted_before_a_sigkill_is_delivered_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;

    // Senders send one message per call and remember what was counted, until the kill.
    let counted = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for sender in 0..4 {
        let (connection, counted) = (connection.clone(), counted.clone());
        senders.push(tokio::spawn(async move {
            for n in 0..10_000 {
                let text = format!("s{sender}-{n}");
                match send(&connection, std::slice::from_ref(&text)).await {
                    Ok(1) => counted.lock().unwrap().push(text),
                    Ok(other) => panic!("count {other} for one message"),
                    // A killed server sends nothing: only the connection can have failed.
                    Err(status) => {
                        assert!(is_transport_error(&status), "s{sender}: {status:?}");
                        return;
                    }
                }
            }
        }));
    }
    // Kill once a good number were counted (bounded: at most 10 s).
    let started = Instant::now();
    while counted.lock().unwrap().len() < 200 && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.kill();
    for sender in senders {
        sender.await.unwrap();
    }
    let counted = counted.lock().unwrap().clone();
    assert!(
        counted.len() >= 200,
        "only {} counted in 10 s",
        counted.len()
    );

    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;
    let delivered: Vec<String> = receive_all(&connection, "").await;
    assert_nothing_lost(&counted, &delivered, "after the SIGKILL");
    // Per-sender order is kept.
    for sender in 0..4 {
        assert_in_order(&delivered, &format!("s{sender}-"), "after the SIGKILL");
    }
    server.kill();
}

/// Found by the browser tests: the delivery cursor is written lazily, so after a SIGKILL it lags
/// behind what was delivered. A client that resumes with `after_id` set to the last message it
/// received gets exactly the messages after it, and a receiver without `after_id` does not get
/// the ones up to it again either.
#[tokio::test]
async fn a_resume_after_a_sigkill_starts_right_after_the_id_despite_the_lagging_cursor() {
    const N: usize = 20;
    const K: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;
    assert_eq!(send(&connection, &texts(1..=N)).await.unwrap(), N as i64);
    let mut stream = open_receive(&connection, "mike", "", Some(IDLE)).await;
    let mut received = Vec::new();
    while received.len() < K {
        received.push(stream.message().await.unwrap().unwrap().message.unwrap());
    }
    assert_eq!(contents(&received), texts(1..=K));
    let last = received.last().unwrap().id.clone();
    server.kill();
    drop((stream, connection));

    let server = ServerProcess::start(&data, &addr_file, &[]);
    let connection = server.connect().await;
    let mut stream = open_receive(&connection, "mike", &last, Some(IDLE)).await;
    let next = stream.message().await.unwrap().unwrap().message.unwrap();
    assert_eq!(next.content, format!("m{}", K + 1), "right after {last}");
    let mut rest = vec![next.content];
    while let Some(response) = stream.message().await.unwrap() {
        rest.push(response.message.unwrap().content);
    }
    assert_eq!(rest, texts(K + 1..=N));
    // Everything up to the id counts as delivered: nothing comes again without after_id.
    assert_eq!(receive_all(&connection, "").await, Vec::<String>::new());
    server.kill();
}
