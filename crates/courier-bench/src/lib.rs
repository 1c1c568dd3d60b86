//! `courier-bench`: the benchmark harness behind `make bench`.
//!
//! Every scenario runs twice in the same run: against `courier-server` (the full stack: request
//! id, tracing at info, validation, auth when on, the chosen store) and against [`bare`], a bare
//! tonic server of the same contract. Each server is a child process (this binary, re-executed
//! with `serve`), so its peak RSS is its own. Figures are reported as ratios to the baseline
//! measured in the same run, because absolute numbers vary from run to run on shared machines.
//!
//! The load generator opens several HTTP/2 connections and keeps a fixed number of calls or
//! streams in flight; latencies go into an HDR histogram. Unary Hello is also driven by an
//! independent one, h2load ([`h2load`]). gRPC-Web is measured against gRPC on the same Courier
//! server ([`web`]).

pub mod bare;
pub mod h2load;
pub mod web;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courier_client::pb::chat::ChatRequest;
use courier_client::pb::hello::HelloRequest;
use courier_client::pb::message::{Message, ReceiveMessageRequest, SendMessageRequest};
use courier_client::{CallMetadata, ConnectOptions, Connection, ExtraMetadata};
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// The core servers are pinned to, when there are at least two: the load generator (pinned by
/// `make bench` to core 0) then does not compete with the server it measures.
const SERVER_CORE: Option<usize> = Some(1);

/// HTTP/2 connections the load generator spreads its calls over.
pub const CONNECTIONS: usize = 4;
/// Unary calls kept in flight.
pub const IN_FLIGHT: usize = 64;
/// Benchmark users are `u0` to `u999`; each authenticates with its own token.
const USERS: usize = 1000;

/// The server child's stderr, in its working directory.
const LOG_FILE: &str = "server.log";

fn token_of(user: &str) -> String {
    format!("bench-token-{user}")
}

/// Which server a scenario runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The bare tonic baseline.
    Bare,
    /// courier-server with in-memory queues.
    Memory,
    /// courier-server with the durable redb store.
    Durable,
}

/// A server under test, and how to reach it.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The server.
    pub kind: Kind,
    /// TLS, plus bearer-token auth for Courier (the baseline has no auth to turn on).
    pub secure: bool,
}

/// A running server child process; killed when dropped.
pub struct ServerChild {
    child: Child,
    /// Its address.
    pub addr: String,
    kind: Kind,
    /// Its working directory, with its log (`server.log`, its stderr).
    dir: tempfile::TempDir,
    ca: Option<PathBuf>,
}

impl ServerChild {
    /// Starts `target` by re-executing this binary with `serve`.
    pub async fn start(target: Target) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        // With COURIER_BENCH_PERF_DIR set, Courier servers run under `perf record` (software
        // clock, call graphs) and leave `perf-<kind>.data` there; the baseline never does.
        let perf_dir =
            std::env::var_os("COURIER_BENCH_PERF_DIR").filter(|_| target.kind != Kind::Bare);
        let mut command = match &perf_dir {
            Some(perf_dir) => {
                let mut perf = Command::new("perf");
                let data = Path::new(perf_dir).join(format!(
                    "perf-{:?}-{}.data",
                    target.kind,
                    if target.secure { "secure" } else { "plain" }
                ));
                perf.args(["record", "-e", "cpu-clock", "-F", "999", "-g", "-q", "-o"])
                    .arg(data)
                    .arg("--");
                perf.arg(std::env::current_exe()?);
                perf
            }
            None => Command::new(std::env::current_exe()?),
        };
        if let Some(core) = SERVER_CORE {
            // Run the whole command on the server's core; the load generator keeps the other.
            let program = command.as_std().get_program().to_owned();
            let args: Vec<_> = command.as_std().get_args().map(ToOwned::to_owned).collect();
            command = Command::new("taskset");
            command
                .arg("-c")
                .arg(core.to_string())
                .arg(program)
                .args(args);
        }
        command.arg("serve").arg("--kind").arg(match target.kind {
            Kind::Bare => "bare",
            Kind::Memory => "memory",
            Kind::Durable => "durable",
        });
        command.arg("--dir").arg(dir.path());
        let mut ca = None;
        if target.secure {
            let pki = courier_server::dev_pki::DevPki::generate().map_err(std::io::Error::other)?;
            pki.write_to(dir.path())?;
            command.arg("--secure");
            ca = Some(dir.path().join("ca.pem"));
        }
        // Kept for [`Self::logged_failures`]; at info Courier writes a line per failed call only.
        let log = std::fs::File::create(dir.path().join(LOG_FILE))?;
        command
            .stdout(Stdio::piped())
            .stderr(log)
            .stdin(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = lines
            .next_line()
            .await?
            .and_then(|line| line.strip_prefix("listening ").map(str::to_owned))
            .ok_or_else(|| std::io::Error::other("the server did not start"))?;
        Ok(Self {
            child,
            addr,
            kind: target.kind,
            dir,
            ca,
        })
    }

    /// Stops it the way the harness means it to stop: its stdin closes, it shuts down
    /// gracefully (and a wrapping perf writes its data). Killed after 10 s.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// Peak resident memory so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    /// CPU time the server used so far, user and system, all threads.
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.id().unwrap_or_default();
        let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // Fields after the command name, which is in parentheses and may hold spaces;
                // utime and stime are fields 14 and 15 of the whole line.
                let rest = stat.rsplit_once(')')?.1;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                Some(utime + stime)
            })
            .unwrap_or_default();
        // Linux reports these in USER_HZ, which is 100 on every architecture it supports.
        Duration::from_millis(ticks * 10)
    }

    /// Calls Courier logged as failed so far; `None` for the baseline, which logs nothing.
    ///
    /// At its default level (info) Courier logs the end of an RPC only when it failed, as
    /// `rpc finished` with its code (successful ends are debug lines), so with `COURIER_LOG`
    /// unset or `info` this counts the calls answered with a non-zero `grpc-status`.
    /// [`h2load::check`] makes sure it still does.
    pub fn logged_failures(&self) -> Option<usize> {
        if self.kind == Kind::Bare {
            return None;
        }
        let log = std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default();
        Some(
            log.lines()
                .filter(|line| line.contains("rpc finished"))
                .count(),
        )
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    fn status_field(&self, field: &str) -> u64 {
        let pid = self.child.id().unwrap_or_default();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status
                    .lines()
                    .find(|line| line.starts_with(field))?
                    .to_owned();
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    /// `count` connections to it.
    pub async fn connect(
        &self,
        count: usize,
    ) -> Result<Vec<Connection>, courier_client::ClientError> {
        let options = match &self.ca {
            Some(ca) => ConnectOptions {
                addr: format!("https://{}", self.addr),
                ca: Some(ca.clone()),
                domain: Some("localhost".into()),
                identity: None,
            },
            None => ConnectOptions {
                addr: format!("http://{}", self.addr),
                ..ConnectOptions::default()
            },
        };
        let mut connections = Vec::new();
        for _ in 0..count {
            connections.push(Connection::open(&options).await?);
        }
        Ok(connections)
    }
}

/// Call metadata acting as `user`, with the benchmark token.
pub fn as_user(user: &str) -> CallMetadata {
    let from = ExtraMetadata::parse(&format!("from:{user}")).expect("a valid user name");
    CallMetadata::new(Some(&token_of(user)), vec![from]).expect("a valid token")
}

/// Serves `kind` on 127.0.0.1:0, announcing `listening <addr>` on stdout, until stdin closes.
pub async fn serve(kind: &str, dir: &Path, secure: bool) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening {}", listener.local_addr()?);
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
    };
    if kind == "bare" {
        let (hello, messages, chat) = bare::Bare::default().services();
        let mut builder = tonic::transport::Server::builder();
        if secure {
            let identity = tonic::transport::Identity::from_pem(
                std::fs::read(dir.join("server.pem"))?,
                std::fs::read(dir.join("server.key"))?,
            );
            builder =
                builder.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))?;
        }
        builder
            .add_service(hello)
            .add_service(messages)
            .add_service(chat)
            .serve_with_incoming_shutdown(
                // TCP_NODELAY, as tonic sets it when it binds the listener itself.
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
                stdin_closed,
            )
            .await?;
        return Ok(());
    }
    // The full stack, logging every RPC at info as the courier-server binary does (to stderr,
    // which the harness writes to a file in the server's directory).
    let _log_writer = courier_server::logging::init();
    let tokens = secure.then(|| {
        let users = (0..USERS).map(|n| {
            let user = format!("u{n}");
            courier_server::middleware::auth::token_file_line(&user, &token_of(&user))
        });
        let file = users.collect::<Vec<_>>().join("\n");
        Arc::new(courier_server::middleware::auth::TokenStore::parse(&file).expect("valid tokens"))
    });
    let config = courier_server::Config {
        tls: secure.then(|| courier_server::TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_ca: None,
        }),
        tokens,
        data_dir: (kind == "durable").then(|| dir.join("data")),
        limits: courier_server::Limits {
            max_queued_per_user: 1_000_000,
            ..courier_server::Limits::default()
        },
        ..courier_server::Config::default()
    };
    courier_server::run(listener, config, stdin_closed).await?;
    Ok(())
}

/// What one scenario measured against one server.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Calls or messages per second.
    pub rate: f64,
    /// Median latency, in microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: u64,
    /// Peak server RSS, in KiB.
    pub peak_rss_kib: u64,
    /// Server CPU time (user and system, all threads, since it started) per call or message,
    /// in microseconds: the cost of the work itself, less disturbed than the rate by what else
    /// the machine runs.
    pub cpu_us_per_unit: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

fn measurement(
    count: u64,
    elapsed: Duration,
    latencies: &Histogram<u64>,
    server: &ServerChild,
) -> Measurement {
    measurement_since(count, elapsed, latencies, server, Duration::ZERO)
}

/// [`measurement`] with the server CPU counted from `cpu_before` (its [`ServerChild::cpu_time`]
/// when the measured load began) rather than from its start.
fn measurement_since(
    count: u64,
    elapsed: Duration,
    latencies: &Histogram<u64>,
    server: &ServerChild,
    cpu_before: Duration,
) -> Measurement {
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    Measurement {
        rate: count as f64 / elapsed.as_secs_f64(),
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        peak_rss_kib: server.peak_rss_kib(),
        cpu_us_per_unit: cpu.as_secs_f64() * 1e6 / count.max(1) as f64,
    }
}

fn message(from: &str, to: &str, content: String) -> Message {
    Message {
        from: from.into(),
        to: to.into(),
        content,
        ..Message::default()
    }
}

/// Unary Hello with [`IN_FLIGHT`] calls in flight over [`CONNECTIONS`] connections for `length`.
pub async fn unary(server: &ServerChild, length: Duration) -> Measurement {
    let connections = server.connect(CONNECTIONS).await.expect("connects");
    let stop = Instant::now() + length;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..IN_FLIGHT {
        let mut client = connections[worker % CONNECTIONS].hello(as_user("u0"));
        workers.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut calls = 0_u64;
            while Instant::now() < stop {
                let sent = Instant::now();
                client
                    .hello(HelloRequest {
                        name: "bench".into(),
                    })
                    .await
                    .expect("hello answers");
                latencies
                    .record(sent.elapsed().as_micros() as u64)
                    .expect("in bounds");
                calls += 1;
            }
            (calls, latencies)
        }));
    }
    let mut total = 0;
    let mut latencies = histogram();
    for worker in workers {
        let (calls, histogram) = worker.await.expect("worker runs");
        total += calls;
        latencies.add(histogram).expect("same bounds");
    }
    measurement(total, started.elapsed(), &latencies, server)
}

/// SendMessage: `streams` clients each stream `per_stream` messages in one call. Latency is per
/// call.
pub async fn send(server: &ServerChild, streams: usize, per_stream: usize) -> Measurement {
    let connections = server.connect(CONNECTIONS).await.expect("connects");
    let started = Instant::now();
    let mut workers = Vec::new();
    for stream in 0..streams {
        let mut client = connections[stream % CONNECTIONS].messages(as_user(&format!("u{stream}")));
        let from = format!("u{stream}");
        let to = format!("u{}", 100 + stream);
        workers.push(tokio::spawn(async move {
            let requests: Vec<_> = (0..per_stream)
                .map(|n| SendMessageRequest {
                    message: Some(message(&from, &to, format!("message {n}"))),
                })
                .collect();
            let sent = Instant::now();
            let count = client
                .send_message(tokio_stream::iter(requests))
                .await
                .expect("send answers")
                .into_inner()
                .count;
            assert_eq!(count, per_stream as i64);
            sent.elapsed()
        }));
    }
    let mut latencies = histogram();
    for worker in workers {
        let took = worker.await.expect("worker runs");
        latencies
            .record(took.as_micros() as u64)
            .expect("in bounds");
    }
    measurement(
        (streams * per_stream) as u64,
        started.elapsed(),
        &latencies,
        server,
    )
}

/// ReceiveMessage: `streams` users each have `per_stream` messages queued (not timed), then
/// all are received at once. Latency is the gap between consecutive messages of a stream.
pub async fn receive(server: &ServerChild, streams: usize, per_stream: usize) -> Measurement {
    let connections = server.connect(CONNECTIONS).await.expect("connects");
    fill_queues(&connections, streams, per_stream).await;
    let started = Instant::now();
    let mut workers = Vec::new();
    for stream in 0..streams {
        let user = receiver(stream);
        let mut client = connections[stream % CONNECTIONS].messages(as_user(&user));
        workers.push(tokio::spawn(async move {
            let request = ReceiveMessageRequest {
                user,
                idle_timeout: None,
                after_id: String::new(),
            };
            let mut responses = client
                .receive_message(request)
                .await
                .expect("receive opens")
                .into_inner();
            let mut latencies = histogram();
            let mut last = Instant::now();
            for _ in 0..per_stream {
                responses
                    .message()
                    .await
                    .expect("streams")
                    .expect("not ended");
                latencies
                    .record(last.elapsed().as_micros().max(1) as u64)
                    .expect("in bounds");
                last = Instant::now();
            }
            latencies
        }));
    }
    let mut latencies = histogram();
    for worker in workers {
        latencies
            .add(worker.await.expect("worker runs"))
            .expect("same bounds");
    }
    measurement(
        (streams * per_stream) as u64,
        started.elapsed(),
        &latencies,
        server,
    )
}

/// The user whose queue ReceiveMessage stream `stream` of a scenario drains.
fn receiver(stream: usize) -> String {
    format!("u{}", 200 + stream)
}

/// Queues `per_stream` messages for each of the first `streams` [`receiver`]s, from `u999`, over
/// gRPC on `connections`.
async fn fill_queues(connections: &[Connection], streams: usize, per_stream: usize) {
    for stream in 0..streams {
        let mut client = connections[stream % connections.len()].messages(as_user("u999"));
        let to = receiver(stream);
        let requests: Vec<_> = (0..per_stream)
            .map(|n| SendMessageRequest {
                message: Some(message("u999", &to, format!("message {n}"))),
            })
            .collect();
        client
            .send_message(tokio_stream::iter(requests))
            .await
            .expect("fills the queue");
    }
}

/// Chat relay: `pairs` pairs of users each send `per_side` messages to each other; latency is
/// from sending a message to its arrival at the peer.
pub async fn chat(server: &ServerChild, pairs: usize, per_side: usize) -> Measurement {
    let connections = server.connect(CONNECTIONS).await.expect("connects");
    let epoch = Instant::now();
    let started = Instant::now();
    let mut sides = Vec::new();
    for pair in 0..pairs {
        for (me, peer) in [(2 * pair, 2 * pair + 1), (2 * pair + 1, 2 * pair)] {
            let (me, peer) = (format!("u{}", 300 + me), format!("u{}", 300 + peer));
            let mut client = connections[(2 * pair) % CONNECTIONS].chat(as_user(&me));
            sides.push(tokio::spawn(async move {
                let (outbound, requests) = mpsc::channel(64);
                let mut inbound = client
                    .chat(ReceiverStream::new(requests))
                    .await
                    .expect("chat opens")
                    .into_inner();
                let sender = tokio::spawn(async move {
                    for _ in 0..per_side {
                        let sent_at = epoch.elapsed().as_micros().to_string();
                        let request = ChatRequest {
                            message: Some(message(&me, &peer, sent_at)),
                        };
                        if outbound.send(request).await.is_err() {
                            return;
                        }
                    }
                    // Keep the stream open until the peer's messages are in: the half-close
                    // would end it early.
                    std::future::pending::<()>().await;
                });
                let mut latencies = histogram();
                for _ in 0..per_side {
                    let response = inbound.message().await.expect("relays").expect("not ended");
                    let sent_at: u128 = response
                        .message
                        .expect("a message")
                        .content
                        .parse()
                        .expect("a time");
                    let took = epoch.elapsed().as_micros().saturating_sub(sent_at).max(1);
                    latencies.record(took as u64).expect("in bounds");
                }
                sender.abort();
                latencies
            }));
        }
    }
    let mut latencies = histogram();
    for side in sides {
        latencies
            .add(side.await.expect("side runs"))
            .expect("same bounds");
    }
    measurement(
        (2 * pairs * per_side) as u64,
        started.elapsed(),
        &latencies,
        server,
    )
}

/// Opens `count` ReceiveMessage streams that wait for messages and answers the server's RSS
/// (KiB) once they are all open.
pub async fn idle_streams(server: &ServerChild, count: usize) -> u64 {
    let before = server.rss_kib();
    // 256 streams per connection at most (the server's limit); leave room.
    let connections = server.connect(count / 200 + 1).await.expect("connects");
    let mut streams = Vec::new();
    for n in 0..count {
        let user = format!("u{}", n % USERS);
        let mut client = connections[n % connections.len()].messages(as_user(&user));
        let request = ReceiveMessageRequest {
            user,
            idle_timeout: None,
            after_id: String::new(),
        };
        streams.push(
            client
                .receive_message(request)
                .await
                .expect("opens")
                .into_inner(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    drop(streams);
    after.max(before)
}

/// The throughputs of a criterion run (`cargo bench` output) as a Markdown table, each as a
/// ratio to the first benchmark of the run: the domain microbenchmark's section of the report.
pub fn criterion_table(output: &str) -> String {
    let mut rows: Vec<(String, f64)> = Vec::new();
    let mut name: Option<&str> = None;
    for line in output.lines() {
        let trimmed = line.trim();
        if !line.starts_with(' ') && !trimmed.is_empty() && !trimmed.contains(':') {
            name = Some(trimmed);
        } else if let (Some(bench), Some(values)) = (name, trimmed.strip_prefix("thrpt:")) {
            // The estimate is the middle of `[low unit estimate unit high unit]`; a line with
            // `%` is the change since the last run.
            let words: Vec<&str> = values
                .trim_matches([' ', '[', ']'])
                .split_whitespace()
                .collect();
            if values.contains('%') || words.len() != 6 {
                continue;
            }
            let scale = match words[3] {
                "elem/s" => 1.0,
                "Kelem/s" => 1e3,
                "Melem/s" => 1e6,
                "Gelem/s" => 1e9,
                _ => continue,
            };
            if let Ok(value) = words[2].parse::<f64>() {
                rows.push((bench.to_owned(), value * scale));
                name = None;
            }
        }
    }
    let mut table = String::from(
        "\n## Domain microbenchmark: take and deliver (criterion)\n\n\
         `cargo bench -p courier-server --bench mailbox`: claim and confirm messages on the \
         in-memory store, one user or many, from one thread or two. Ratios are to the first row.\n\n\
         | benchmark | messages/s | ratio |\n| --- | --- | --- |\n",
    );
    let base = rows.first().map_or(1.0, |(_, value)| *value);
    for (bench, value) in &rows {
        table.push_str(&format!(
            "| `{bench}` | {:.0}k | {:.2}x |\n",
            value / 1e3,
            value / base
        ));
    }
    if rows.is_empty() {
        table.push_str("| (no results found in the criterion output) | | |\n");
    }
    table
}

#[cfg(test)]
mod criterion_tests {
    use super::criterion_table;

    #[test]
    fn criterion_throughputs_become_ratios_to_the_first() {
        let output = "\
take_and_deliver/1_users/1_threads
                        time:   [6.2 ms 6.3 ms 6.4 ms]
                        thrpt:  [2.0000 Melem/s 2.5000 Melem/s 3.0000 Melem/s]
                 change:
                        thrpt:  [-1.0% +2.0% +3.0%]
take_and_deliver/64_users/2_threads
                        time:   [5.1 ms 5.2 ms 5.3 ms]
                        thrpt:  [4.0000 Melem/s 5.0000 Melem/s 6.0000 Melem/s]
";
        let table = criterion_table(output);
        assert!(
            table.contains("| `take_and_deliver/1_users/1_threads` | 2500k | 1.00x |"),
            "{table}"
        );
        assert!(
            table.contains("| `take_and_deliver/64_users/2_threads` | 5000k | 2.00x |"),
            "{table}"
        );
    }
}
