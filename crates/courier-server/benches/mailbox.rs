//! Microbenchmark of the domain's hot path, `make bench`: take and deliver (claim a message,
//! confirm it) on the in-memory store, with one user and with many users, from one thread and
//! from several. With per-user state, many users across threads share no lock but the
//! store's; one user across threads contends on that user's lock, as competing consumers must.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_server::domain::{Mailboxes, NewMessage, UserName};
use courier_server::store::MemoryStore;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Rounds the queued messages last before they are queued again (outside the measurement).
const ROUNDS_PER_FILL: usize = 16;

fn user(n: usize) -> UserName {
    UserName::parse(&format!("user{n}")).expect("a valid name")
}

/// Mailboxes holding `per_user` messages for each of `users` users.
fn filled(users: usize, per_user: usize, runtime: &tokio::runtime::Runtime) -> Arc<Mailboxes> {
    let mailboxes = Arc::new(Mailboxes::new(Arc::new(MemoryStore::default()), usize::MAX));
    let from = UserName::parse("sender").expect("a valid name");
    runtime.block_on(async {
        for n in 0..users {
            let batch = (0..per_user)
                .map(|m| NewMessage {
                    from: from.clone(),
                    to: user(n),
                    content: format!("message {m}"),
                })
                .collect();
            mailboxes.enqueue_all(batch).await.expect("queued");
        }
    });
    mailboxes
}

/// Takes and delivers `count` messages of `users` from `threads` threads at once (thread `t`
/// serves the users `t, t + threads, …`, or all of them share user 0 when there is one);
/// answers the wall time.
fn take_and_deliver(
    mailboxes: &Arc<Mailboxes>,
    users: usize,
    threads: usize,
    count: usize,
) -> Duration {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let mailboxes = Arc::clone(mailboxes);
            scope.spawn(move || {
                let mine: Vec<usize> = if users == 1 {
                    vec![0]
                } else {
                    (thread..users).step_by(threads).collect()
                };
                let mut boxes: Vec<_> = mine
                    .iter()
                    .map(|&n| mailboxes.open(&user(n), None).expect("opened"))
                    .collect();
                for step in 0..count / threads {
                    let mailbox = &mut boxes[step % mine.len()];
                    let taken = mailbox.try_take().expect("taken").expect("a message");
                    mailbox.delivered(taken.receipt).expect("delivered");
                }
            });
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("take_and_deliver");
    // Divisible by every user count and thread count below, so each round takes the same number
    // of messages from every user; large enough that starting the threads and opening the
    // mailboxes are a small part of a round.
    let count = 16_384;
    group.throughput(Throughput::Elements(count as u64));
    for (users, threads) in [(1, 1), (1, 2), (64, 1), (64, 2), (1_024, 2)] {
        group.bench_with_input(
            BenchmarkId::new(format!("{users}_users"), format!("{threads}_threads")),
            &(users, threads),
            |b, &(users, threads)| {
                b.iter_custom(|rounds| {
                    let mut total = Duration::ZERO;
                    let per_round = count / users;
                    let per_user = per_round * ROUNDS_PER_FILL;
                    let mut mailboxes = filled(users, per_user, &runtime);
                    let mut left = per_user;
                    for _ in 0..rounds {
                        if left < per_round {
                            mailboxes = filled(users, per_user, &runtime);
                            left = per_user;
                        }
                        total += take_and_deliver(&mailboxes, users, threads, count);
                        left -= per_round;
                    }
                    total
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
