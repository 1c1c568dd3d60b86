//! Bounded memory: what clients do cannot grow the server's per-user state without bound.

use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;

use crate::helpers::client::open_receive;
use crate::helpers::process::ServerProcess;

/// Opens and cancels one ReceiveMessage stream for each of `users`, `per_connection` at a time
/// on each of `connections`.
async fn open_and_cancel(
    server: &ServerProcess,
    users: std::ops::Range<usize>,
    connections: usize,
    per_connection: usize,
) {
    let mut clients = Vec::new();
    for _ in 0..connections {
        clients.push(server.connect().await);
    }
    let mut next = users.start;
    let mut open = FuturesUnordered::new();
    loop {
        while open.len() < connections * per_connection && next < users.end {
            let connection = clients[next % connections].clone();
            let user = format!("visitor-{next}");
            open.push(async move {
                // Dropped as soon as the server has answered with its headers: the client
                // cancels.
                drop(open_receive(&connection, &user, "", None).await);
            });
            next += 1;
        }
        if open.next().await.is_none() {
            return;
        }
    }
}

/// With authentication off, anyone may open streams for any user name. The state of a user with
/// no open stream and nothing waiting is dropped, so 100,000 distinct users leave the server's
/// resident memory where a first wave of users left it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_for_100_000_distinct_users_leave_memory_near_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(&dir.path().join("data"), &dir.path().join("addr"), &[]);
    // A first wave brings the allocator's and the runtime's pools up to their working size.
    open_and_cancel(&server, 0..10_000, 4, 64).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = server.rss_kib();
    open_and_cancel(&server, 10_000..110_000, 4, 64).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let end = server.rss_kib();
    // Kept state costs about 250 bytes a user (name, claims, wake-up signal, map slot): 100,000
    // users kept would add some 25 MiB.
    let grown = end.saturating_sub(start);
    assert!(
        grown < 8 * 1024,
        "resident memory grew by {grown} KiB over 100,000 users (from {start} KiB to {end} KiB)"
    );
}
