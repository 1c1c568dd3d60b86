//! Microbenchmark of the stores' append path, without the network: `streams` tasks at once
//! each append `BATCHES` batches of [`BATCH`] messages to a recipient of its own through
//! [`Store::append_all`], as SendMessage streams do, on [`MemoryStore`] and on [`RedbStore`]
//! (durable: every append answers after its group commit's fsync). The ratio of the two rates is
//! the durable store's cost without the gRPC edge.
//!
//! Besides criterion's wall-clock rates, it first prints the CPU time per message of each store
//! (of all the process's threads, the writer included, from `/proc/self/task/*/schedstat`):
//! the wall clock of the durable store also holds its waits for fsync, which a server overlaps
//! with other work, while CPU time is the cost that competes with the rest of the server.
//!
//! `cargo bench -p courier-server --bench store` (`-- --cpu-only` for the CPU table alone)

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use courier_server::domain::{NewMessage, UserName};
use courier_server::store::{MemoryStore, RedbStore, Store};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};

/// Messages per append: what a SendMessage stream commits at once.
const BATCH: usize = 256;
/// Appends per stream and round.
const BATCHES: usize = 20;

fn user(name: &str) -> UserName {
    UserName::parse(name).expect("a valid name")
}

/// One round's batches: for each of `streams` streams, [`BATCHES`] batches to its recipient.
fn batches(streams: usize) -> Vec<Vec<Vec<NewMessage>>> {
    (0..streams)
        .map(|stream| {
            let (from, to) = (
                user(&format!("u{stream}")),
                user(&format!("u{}", 100 + stream)),
            );
            (0..BATCHES)
                .map(|batch| {
                    (0..BATCH)
                        .map(|n| NewMessage {
                            from: from.clone(),
                            to: to.clone(),
                            content: format!("message {}", batch * BATCH + n),
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// Appends one round's batches, each stream from a task of its own; answers the wall time.
fn round(
    store: &Arc<dyn Store>,
    runtime: &tokio::runtime::Runtime,
    streams: Vec<Vec<Vec<NewMessage>>>,
) -> Duration {
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let store = Arc::clone(store);
                tokio::spawn(async move {
                    for batch in stream {
                        store
                            .append_all(batch, SystemTime::now())
                            .await
                            .expect("appended");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the stream's task runs");
        }
    });
    started.elapsed()
}

fn bench(c: &mut Criterion) {
    // One worker, as the benchmarked server runs on one core; the redb writer is its own thread.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut group = c.benchmark_group("append_all");
    group.sample_size(20);
    for streams in [1, 8] {
        group.throughput(Throughput::Elements((streams * BATCHES * BATCH) as u64));
        for kind in ["memory", "redb"] {
            group.bench_with_input(
                BenchmarkId::new(kind, format!("{streams}_streams")),
                &streams,
                |b, &streams| {
                    b.iter_custom(|rounds| {
                        // A fresh store for each sample, so the database does not grow without
                        // bound over the run.
                        let dir = tempfile::tempdir().expect("a temporary directory");
                        let store: Arc<dyn Store> = match kind {
                            "memory" => Arc::new(MemoryStore::default()),
                            _ => Arc::new(RedbStore::open(dir.path()).expect("opened")),
                        };
                        let mut total = Duration::ZERO;
                        for _ in 0..rounds {
                            let input = batches(streams);
                            total += round(&store, &runtime, input);
                        }
                        total
                    });
                },
            );
        }
    }
    group.finish();
}

/// CPU time of the process's threads alive now, writer thread included (Linux: the scheduler's
/// nanosecond count per thread; zero elsewhere).
fn cpu_time() -> Duration {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let nanos: u64 = threads
        .filter_map(|thread| {
            let stat = std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(nanos)
}

/// Prints, for each store, the wall-clock rate and the CPU time per message of `rounds` rounds
/// of 8 streams, three times.
fn cpu_table(runtime: &tokio::runtime::Runtime, rounds: usize) {
    let streams = 8;
    let messages = (rounds * streams * BATCHES * BATCH) as f64;
    println!("store  run  msgs/s (wall)  CPU µs/msg");
    for run in 1..=3 {
        for kind in ["memory", "redb"] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let store: Arc<dyn Store> = match kind {
                "memory" => Arc::new(MemoryStore::default()),
                _ => Arc::new(RedbStore::open(dir.path()).expect("opened")),
            };
            // Warm up: the first round pays for growing the file and the maps.
            round(&store, runtime, batches(streams));
            let inputs: Vec<_> = (0..rounds).map(|_| batches(streams)).collect();
            let (cpu, mut wall) = (cpu_time(), Duration::ZERO);
            for input in inputs {
                wall += round(&store, runtime, input);
            }
            let cpu = cpu_time() - cpu;
            println!(
                "{kind:<6} {run:>3}  {:>13.0}  {:>10.3}",
                messages / wall.as_secs_f64(),
                cpu.as_secs_f64() * 1e6 / messages
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    cpu_table(&runtime, 10);
    drop(runtime);
    if std::env::args().any(|arg| arg == "--cpu-only") {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
