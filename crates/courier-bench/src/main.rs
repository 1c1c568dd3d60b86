//! The `courier-bench` binary: `run` plays every scenario and writes BENCHMARKS.md; `serve` is
//! the server child process the harness starts for each measurement. The h2load scenario needs
//! `h2load` and `nghttp` on PATH (Debian's nghttp2-client, which `make tools` installs).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use courier_bench::{Kind, Measurement, ServerChild, Target};

/// Courier against bare tonic, in one run.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs every scenario and writes the report.
    Run {
        /// Seconds of load for the unary scenarios (the harness's and h2load's, after its
        /// warm-up).
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Where to write the report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Only the scenarios whose name contains this (for profiling); skips the other targets.
        #[arg(long)]
        only: Option<String>,
        /// Output of `cargo bench -p courier-server --bench mailbox`, reported as a table.
        #[arg(long)]
        criterion: Option<PathBuf>,
    },
    /// Serves one kind of server for the harness (internal).
    #[command(hide = true)]
    Serve {
        /// bare, memory or durable.
        #[arg(long)]
        kind: String,
        /// Working directory (certificates, data).
        #[arg(long)]
        dir: PathBuf,
        /// TLS, and token auth for Courier.
        #[arg(long)]
        secure: bool,
    },
}

/// One scenario: what it measures and how, with the parameters of each server kind.
#[derive(Clone, Copy)]
enum Scenario {
    Unary,
    Receive { streams: usize, per_stream: usize },
    Send { streams: usize, per_stream: usize },
    Chat { pairs: usize, per_side: usize },
}

impl Scenario {
    fn name(self) -> String {
        match self {
            Self::Unary => "unary Hello".into(),
            Self::Receive {
                streams,
                per_stream,
            } => format!("ReceiveMessage, {streams} streams x {per_stream} msgs"),
            Self::Send {
                streams,
                per_stream,
            } => format!("SendMessage, {streams} streams x {per_stream} msgs"),
            Self::Chat { pairs, per_side } => {
                format!("Chat relay, {pairs} pairs x {per_side} msgs each way")
            }
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Unary => "calls/s",
            _ => "msgs/s",
        }
    }

    async fn measure(self, server: &ServerChild, unary_length: Duration) -> Measurement {
        match self {
            Self::Unary => courier_bench::unary(server, unary_length).await,
            Self::Receive {
                streams,
                per_stream,
            } => courier_bench::receive(server, streams, per_stream).await,
            Self::Send {
                streams,
                per_stream,
            } => courier_bench::send(server, streams, per_stream).await,
            Self::Chat { pairs, per_side } => courier_bench::chat(server, pairs, per_side).await,
        }
    }
}

/// The h2load scenario's name, which `--only` matches like the others'.
const H2LOAD_SCENARIO: &str = "h2load unary Hello";

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Rounds of each scenario; the median one is reported. Five, because single rounds on a shared
/// 2-core machine range widely.
const ROUNDS: usize = 5;

fn row(
    report: &mut String,
    scenario: &str,
    server: &str,
    unit: &str,
    (measured, baseline): (&Measurement, &Measurement),
    all_ratios: &str,
) {
    let _ = writeln!(
        report,
        "| {scenario} | {server} | {:.0} {unit} | **{:.2}x** ({all_ratios}) | {:.1} / {:.1} | {} / {} | {} / {} | {} / {} |",
        measured.rate,
        measured.rate / baseline.rate,
        measured.cpu_us_per_unit,
        baseline.cpu_us_per_unit,
        measured.p50_us,
        baseline.p50_us,
        measured.p99_us,
        baseline.p99_us,
        mib(measured.peak_rss_kib),
        mib(baseline.peak_rss_kib),
    );
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .map(|line| line.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    // The machine's cores, not this process's: `make bench` pins the harness to one of them.
    let cores = std::fs::read_to_string("/proc/cpuinfo").map_or(0, |info| {
        info.lines()
            .filter(|line| line.starts_with("processor"))
            .count()
    });
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{} GiB", kib / 1024 / 1024),
        );
    format!(
        "{cores} cores ({cpu}), {memory} of memory, Linux; server and load generator on the same machine, over loopback"
    )
}

/// Median wall time of `buf generate` into a scratch directory, over five runs.
fn buf_generate_time() -> Option<Duration> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let scratch = tempfile::tempdir().ok()?;
        let started = Instant::now();
        let status = std::process::Command::new("node_modules/.bin/buf")
            .arg("generate")
            .arg("--output")
            .arg(scratch.path())
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
        times.push(started.elapsed());
    }
    times.sort();
    Some(times[2])
}

/// A scenario of the gRPC-Web section.
struct WebScenario {
    name: &'static str,
    unit: &'static str,
    /// ReceiveMessage's streams and messages per stream; unary Hello when `None`.
    receive: Option<(usize, usize)>,
}

const WEB_SCENARIOS: [WebScenario; 2] = [
    WebScenario {
        name: "gRPC-Web unary Hello",
        unit: "calls/s",
        receive: None,
    },
    WebScenario {
        name: "gRPC-Web ReceiveMessage, 8 streams x 5000 msgs",
        unit: "msgs/s",
        receive: Some((8, 5_000)),
    },
];

/// gRPC-Web against gRPC on Courier in memory, plaintext: [`ROUNDS`] rounds, each measuring
/// gRPC, gRPC-Web over HTTP/1.1 and gRPC-Web over HTTP/2 (in an order that rotates from round
/// to round), each in its own server child of the same kind and flags. Adds the section to
/// `report`; for each gRPC-Web transport, the row of the round with the median ratio to gRPC.
async fn web_table(
    report: &mut String,
    seconds: u64,
    only: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    use courier_bench::web::{self, Protocol};

    let scenarios: Vec<_> = WEB_SCENARIOS
        .iter()
        .filter(|scenario| only.is_none_or(|only| scenario.name.contains(only)))
        .collect();
    if scenarios.is_empty() {
        return Ok(());
    }
    let length = Duration::from_secs(seconds);
    let _ = writeln!(report, "\n## gRPC-Web vs gRPC on Courier\n");
    let _ = writeln!(
        report,
        "The same scenarios over gRPC and over gRPC-Web (binary form, `application/grpc-web`), served by the same Courier server on the same port: in memory, plaintext, the full stack at info as above, each measurement in its own server child of the same kind and flags, pinned to core 1. gRPC-Web goes through Courier's `WebLayer` and tonic-web's translation to gRPC before the same layers and services. The client is the same for both: tonic's generated client with the harness's metadata over hyper's client connections (`TCP_NODELAY`, no pool), with tonic-web's `GrpcWebClientLayer` in between for gRPC-Web (it changes the content type and reads the trailers out of the last frame; request bodies are tonic's streamed ones, so chunked over HTTP/1.1, where a browser sends a length). So the gRPC figures here are this client's, not the tonic `Channel`'s of the table above. Concurrency is the same: unary keeps {} calls in flight for {seconds} s, ReceiveMessage one task per stream; gRPC and gRPC-Web over HTTP/2 spread them over {} connections, gRPC-Web over HTTP/1.1 (one call at a time per connection) gives each task its own keep-alive connection (the last column: gRPC-Web / gRPC), all opened before the measurement; a connection not kept alive would fail the run. A round measures the three in an order that rotates from round to round; the row shows the round with the median **ratio** (gRPC-Web's rate over gRPC's in the same round) and all rounds' ratios. Server CPU counts only the measured load (the queues of ReceiveMessage are filled over gRPC first, untimed); the extra CPU column is gRPC-Web's server CPU per call or message minus gRPC's in the same round, the median over all rounds and its range: what the translation and the HTTP version cost the server. Columns with two figures are gRPC-Web / gRPC.\n",
        courier_bench::IN_FLIGHT,
        courier_bench::CONNECTIONS,
    );
    let _ = writeln!(
        report,
        "| scenario | gRPC-Web over | gRPC-Web rate | gRPC rate | ratio (all rounds) | server CPU µs per unit | extra server CPU µs per unit | p50 µs | p99 µs | peak RSS MiB | connections |"
    );
    let _ = writeln!(
        report,
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let target = Target {
        kind: Kind::Memory,
        secure: false,
    };
    for &&WebScenario {
        name,
        unit,
        receive: streams,
    } in &scenarios
    {
        // Per round, the measurements in Protocol::ALL's order.
        let mut rounds: Vec<Vec<Measurement>> = Vec::new();
        for round in 0..ROUNDS {
            let mut measured: Vec<Option<Measurement>> = vec![None; Protocol::ALL.len()];
            for step in 0..Protocol::ALL.len() {
                let index = (round + step) % Protocol::ALL.len();
                let protocol = Protocol::ALL[index];
                let server = ServerChild::start(target).await?;
                let measurement = match streams {
                    None => web::unary(&server, protocol, length).await,
                    Some((streams, per_stream)) => {
                        web::receive(&server, protocol, streams, per_stream).await
                    }
                };
                server.stop().await;
                measured[index] = Some(measurement);
            }
            rounds.push(measured.into_iter().map(|m| m.expect("measured")).collect());
        }
        for (index, protocol) in Protocol::ALL.iter().enumerate().skip(1) {
            let ratio = |round: &Vec<Measurement>| round[index].rate / round[0].rate;
            let mut ordered: Vec<&Vec<Measurement>> = rounds.iter().collect();
            ordered.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
            let ratios: Vec<String> = ordered
                .iter()
                .map(|round| format!("{:.2}", ratio(round)))
                .collect();
            // The extra server CPU per unit, gRPC-Web's less gRPC's, of every round: steadier
            // than the rates, so its own median is given, with its range.
            let mut extra: Vec<f64> = rounds
                .iter()
                .map(|round| round[index].cpu_us_per_unit - round[0].cpu_us_per_unit)
                .collect();
            extra.sort_by(f64::total_cmp);
            let extra = format!(
                "{:+.1} ({:+.1} to {:+.1})",
                extra[ROUNDS / 2],
                extra[0],
                extra[ROUNDS - 1]
            );
            let median = ordered[ROUNDS / 2];
            let (web, grpc) = (&median[index], &median[0]);
            let transport = protocol.label().trim_start_matches("gRPC-Web, ");
            let concurrent = streams.map_or(courier_bench::IN_FLIGHT, |(streams, _)| streams);
            let connections = format!(
                "{} / {}",
                protocol.connections(concurrent),
                Protocol::Grpc.connections(concurrent)
            );
            eprintln!(
                "{name}: over {transport}: {:.0} {unit} against gRPC's {:.0} (ratios {}); server CPU {:.1} / {:.1} µs per unit, extra {extra}; connections {connections}",
                web.rate,
                grpc.rate,
                ratios.join(", "),
                web.cpu_us_per_unit,
                grpc.cpu_us_per_unit,
            );
            let _ = writeln!(
                report,
                "| {name} | {transport} | {:.0} {unit} | {:.0} {unit} | **{:.2}x** ({}) | {:.1} / {:.1} | {extra} | {} / {} | {} / {} | {} / {} | {connections} |",
                web.rate,
                grpc.rate,
                web.rate / grpc.rate,
                ratios.join(" "),
                web.cpu_us_per_unit,
                grpc.cpu_us_per_unit,
                web.p50_us,
                grpc.p50_us,
                web.p99_us,
                grpc.p99_us,
                mib(web.peak_rss_kib),
                mib(grpc.peak_rss_kib),
            );
        }
    }
    // The translation without HTTP, sockets or the rest of the stack: a steadier figure for its
    // own cost than the difference of two servers' CPU.
    const CALLS: usize = 100_000;
    let (grpc_ns, web_ns) = web::translation_ns(CALLS, ROUNDS).await;
    eprintln!(
        "gRPC-Web translation in process: {web_ns:.0} ns per call against gRPC's {grpc_ns:.0}"
    );
    let _ = writeln!(
        report,
        "\nThe translation alone, in the harness's process without HTTP or sockets: Courier's `WebLayer` (as the server builds it, tonic-web's translation behind it) around the bare tonic Hello service, called with a gRPC request and with the same request in gRPC-Web, each answer read to its end; {ROUNDS} alternating blocks of {CALLS} calls, the median block of each: gRPC {grpc_ns:.0} ns per call, gRPC-Web {web_ns:.0} ns per call, so the translation costs **{:.2} µs per call** (the service's own work and the layer's routing included in both).",
        (web_ns - grpc_ns) / 1000.0
    );
    Ok(())
}

/// h2load's unary Hello, plaintext and with TLS+auth: [`ROUNDS`] rounds of the baseline then
/// Courier in memory, each server pinned like the others while h2load runs beside the harness.
/// Adds a table to `report` with the round of the median ratio; answers whether every request
/// of every round succeeded.
async fn h2load_table(
    report: &mut String,
    seconds: u64,
) -> Result<bool, Box<dyn std::error::Error>> {
    use courier_bench::h2load::{self, Load};

    let length = Duration::from_secs(seconds);
    let _ = writeln!(
        report,
        "\n## Unary Hello from an independent load generator\n"
    );
    let _ = writeln!(
        report,
        "h2load (nghttp2's HTTP/2 benchmarking client, `h2load -c {} -m {} -D {seconds} --warm-up-time {}`) posts one unary Hello request (a gRPC frame holding `HelloRequest {{ name: \"bench\" }}`, with `content-type: application/grpc`, `te: trailers` and, with TLS, a bearer token) on {} connections with {} streams in flight on each, {seconds} s after a {} s warm-up. It runs on core 0 beside the harness; each server is pinned to core 1 as above. Courier runs the same full stack at info. Rounds, median and ratios as above; server CPU is per call over h2load's measured time (from the end of the warm-up to 0.1 s before the stop), Courier / baseline; the mean request time is h2load's, Courier / baseline. Before each measurement one call with the same body and headers through `nghttp` must answer `grpc-status: 0` and the greeting; errors are h2load's failed, errored or non-2xx requests, and gRPC errors the calls Courier logged as failed from the start of the load to 0.1 s before h2load stops (it then drops the calls in flight, which Courier logs as failed), over all rounds (the baseline answers every decodable request with OK).\n",
        h2load::CONNECTIONS,
        h2load::STREAMS,
        h2load::WARM_UP_SECS,
        h2load::CONNECTIONS,
        h2load::STREAMS,
        h2load::WARM_UP_SECS,
    );
    let _ = writeln!(
        report,
        "| Courier server | Courier req/s | bare tonic req/s | ratio (all rounds) | server CPU µs per call | mean request µs | HTTP errors | gRPC errors (Courier's log) |"
    );
    let _ = writeln!(report, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut clean = true;
    for secure in [false, true] {
        let mut rounds: Vec<(Load, Load)> = Vec::new();
        for _ in 0..ROUNDS {
            let baseline_server = ServerChild::start(Target {
                kind: Kind::Bare,
                secure,
            })
            .await?;
            let baseline = h2load::unary(&baseline_server, length).await?;
            baseline_server.stop().await;
            let server = ServerChild::start(Target {
                kind: Kind::Memory,
                secure,
            })
            .await?;
            let measured = h2load::unary(&server, length).await?;
            server.stop().await;
            clean &= measured.clean() && baseline.clean();
            rounds.push((measured, baseline));
        }
        let http_errors: (u64, u64) = rounds.iter().fold((0, 0), |(courier, bare), round| {
            (courier + round.0.http_errors, bare + round.1.http_errors)
        });
        let grpc_errors: usize = rounds
            .iter()
            .map(|(measured, _)| measured.grpc_errors.unwrap_or(0))
            .sum();
        let ratio = |(measured, baseline): &(Load, Load)| measured.rate / baseline.rate;
        rounds.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let ratios: Vec<String> = rounds
            .iter()
            .map(|round| format!("{:.2}", ratio(round)))
            .collect();
        let (measured, baseline) = &rounds[ROUNDS / 2];
        let label = if secure {
            "in memory, TLS+auth"
        } else {
            "in memory"
        };
        eprintln!(
            "{H2LOAD_SCENARIO}: {label}: {:.0} req/s against {:.0} (ratios {}); server CPU {:.1} / {:.1} µs per call; errors {} / {}, gRPC {grpc_errors}",
            measured.rate,
            baseline.rate,
            ratios.join(", "),
            measured.cpu_us_per_call,
            baseline.cpu_us_per_call,
            http_errors.0,
            http_errors.1,
        );
        let _ = writeln!(
            report,
            "| {label} | {:.0} | {:.0} | **{:.2}x** ({}) | {:.1} / {:.1} | {:.0} / {:.0} | {} / {} | {grpc_errors} |",
            measured.rate,
            baseline.rate,
            ratio(&rounds[ROUNDS / 2]),
            ratios.join(" "),
            measured.cpu_us_per_call,
            baseline.cpu_us_per_call,
            measured.mean_us,
            baseline.mean_us,
            http_errors.0,
            http_errors.1,
        );
    }
    Ok(clean)
}

async fn run(
    seconds: u64,
    out: PathBuf,
    only: Option<String>,
    criterion: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let unary_length = Duration::from_secs(seconds);
    let with_h2load = only
        .as_ref()
        .is_none_or(|only| H2LOAD_SCENARIO.contains(only.as_str()));
    if with_h2load {
        // Before minutes of the other scenarios.
        courier_bench::h2load::check_installed()?;
    }
    let mut report = String::new();
    let _ = writeln!(report, "# Benchmarks\n");
    let _ = writeln!(
        report,
        "Generated by `make bench` (`taskset -c 0 target/release/courier-bench run --seconds {seconds}`); do not edit by hand.\n"
    );
    let _ = writeln!(report, "- Machine: {}.", machine());
    let _ = writeln!(
        report,
        "- Load: {} HTTP/2 connections; unary keeps {} calls in flight for {seconds} s; streaming scenarios as named.",
        courier_bench::CONNECTIONS,
        courier_bench::IN_FLIGHT
    );
    let _ = writeln!(
        report,
        "- Each scenario runs five rounds; a round measures the bare tonic baseline, then Courier, each in its own child process pinned to core 1 while the load generator runs on core 0. The row shows the round with the median **ratio** (Courier's rate over the baseline's) and all rounds' ratios. Server CPU is the server process's user and system time per call or message, Courier / baseline: the cost of the work itself, steadier than the rate. Latency columns are Courier / baseline in microseconds (unary: per call; ReceiveMessage: gap between messages; SendMessage: per call; Chat: send to arrival). RSS is the server's peak."
    );
    let _ = writeln!(
        report,
        "- Courier runs its full stack: request ids, load shedding, tracing at the default level info (a failed call logged with method, peer, request id and code; a successful one only at debug, with its span), validation, limits; \"TLS+auth\" adds rustls and bearer-token checks (1,000 users in the tokens file). The baseline with TLS has TLS only.\n"
    );
    let _ = writeln!(
        report,
        "| scenario | Courier server | rate | ratio (all rounds) | server CPU µs per unit | p50 µs | p99 µs | peak RSS MiB |"
    );
    let _ = writeln!(report, "| --- | --- | --- | --- | --- | --- | --- | --- |");

    let memory_scenarios = [
        Scenario::Unary,
        Scenario::Receive {
            streams: 8,
            per_stream: 5_000,
        },
        Scenario::Send {
            streams: 8,
            per_stream: 5_000,
        },
        Scenario::Chat {
            pairs: 4,
            per_side: 2_000,
        },
    ];
    let durable_scenarios = [
        memory_scenarios[1],
        memory_scenarios[2],
        memory_scenarios[3],
    ];
    let mut runs: Vec<(Scenario, Kind, bool)> = Vec::new();
    for scenario in memory_scenarios {
        runs.push((scenario, Kind::Memory, false));
        runs.push((scenario, Kind::Memory, true));
    }
    for scenario in durable_scenarios {
        runs.push((scenario, Kind::Durable, false));
    }
    for (scenario, kind, secure) in runs {
        if only
            .as_ref()
            .is_some_and(|only| !scenario.name().contains(only.as_str()))
        {
            continue;
        }
        // Rounds alternate baseline and Courier; the round with the median ratio is reported.
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let baseline_server = ServerChild::start(Target {
                kind: Kind::Bare,
                secure,
            })
            .await?;
            let baseline = scenario.measure(&baseline_server, unary_length).await;
            baseline_server.stop().await;
            let server = ServerChild::start(Target { kind, secure }).await?;
            let measured = scenario.measure(&server, unary_length).await;
            server.stop().await;
            rounds.push((measured, baseline));
        }
        let ratio =
            |(measured, baseline): &(Measurement, Measurement)| measured.rate / baseline.rate;
        rounds.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        let ratios: Vec<String> = rounds
            .iter()
            .map(|round| format!("{:.2}", ratio(round)))
            .collect();
        let (measured, baseline) = &rounds[ROUNDS / 2];
        let label = match (kind, secure) {
            (Kind::Durable, _) => "durable store",
            (_, true) => "in memory, TLS+auth",
            _ => "in memory",
        };
        eprintln!(
            "{}: {label}: {:.0} {} (ratios {}); server CPU {:.1} / {:.1} µs per unit",
            scenario.name(),
            measured.rate,
            scenario.unit(),
            ratios.join(", "),
            measured.cpu_us_per_unit,
            baseline.cpu_us_per_unit,
        );
        row(
            &mut report,
            &scenario.name(),
            label,
            scenario.unit(),
            (measured, baseline),
            &ratios.join(" "),
        );
    }

    let h2load_clean = if with_h2load {
        h2load_table(&mut report, seconds).await?
    } else {
        true
    };
    web_table(&mut report, seconds, only.as_deref()).await?;
    // Written either way, so that the figures of a run with failed requests can be read.
    let failed_requests = || {
        format!(
            "h2load saw failed requests or gRPC errors (see {}): its figures do not count",
            out.display()
        )
    };

    if only.is_some() {
        std::fs::write(&out, &report)?;
        if !h2load_clean {
            return Err(failed_requests().into());
        }
        return Ok(());
    }
    let server = ServerChild::start(Target {
        kind: Kind::Memory,
        secure: false,
    })
    .await?;
    let idle_rss = courier_bench::idle_streams(&server, 1_000).await;
    server.stop().await;
    let _ = writeln!(report, "\n## Other targets\n");
    let _ = writeln!(report, "| target | measured |");
    let _ = writeln!(report, "| --- | --- |");
    let _ = writeln!(
        report,
        "| server RSS with 1,000 idle open ReceiveMessage streams (in memory) below 64 MiB | {} MiB |",
        mib(idle_rss)
    );
    match buf_generate_time() {
        Some(took) => {
            let _ = writeln!(
                report,
                "| `buf generate` under 1 s (median of 5) | {:.2} s |",
                took.as_secs_f64()
            );
        }
        None => {
            let _ = writeln!(
                report,
                "| `buf generate` under 1 s | not measured: run from the repository root after `make tools` |"
            );
        }
    }
    if let Some(path) = &criterion {
        let output = std::fs::read_to_string(path)?;
        report.push_str(&courier_bench::criterion_table(&output));
    }
    // The analysis (targets, profiling, what each change bought) is kept by hand beside the harness.
    report.push_str(include_str!("../ANALYSIS.md"));
    std::fs::write(&out, &report)?;
    eprintln!("wrote {}", out.display());
    if !h2load_clean {
        return Err(failed_requests().into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().command {
        Command::Run {
            seconds,
            out,
            only,
            criterion,
        } => run(seconds, out, only, criterion).await,
        Command::Serve { kind, dir, secure } => courier_bench::serve(&kind, &dir, secure).await,
    }
}
