//! The independent load generator: `h2load`, nghttp2's HTTP/2 benchmarking client, drives unary
//! Hello against the bare baseline and courier-server, so that the unary figures do not rest on
//! the harness's own client (tonic, through courier-client) alone.
//!
//! h2load posts one pre-encoded request ([`hello_body`]) on [`CONNECTIONS`] connections with
//! [`STREAMS`] streams in flight on each, for a fixed time after a [`WARM_UP_SECS`] warm-up.
//! It runs as a child of the harness, so it shares the harness's core (core 0 under
//! `make bench`) while the server has the other.
//!
//! h2load counts HTTP statuses only, and a gRPC error is an HTTP 200 whose trailers (or
//! trailers-only headers) carry a non-zero `grpc-status`. So before every measurement [`check`]
//! sends the same body with the same headers through `nghttp` (same package), which prints the
//! trailers: the call must answer `grpc-status: 0` and the greeting for the name sent, which
//! shows the server decoded the hand-made frame. A deliberately truncated frame must come back
//! with a non-zero status, and Courier must log that failure: that proves the two checks can
//! fail. During the load itself, Courier's failed calls are counted in its own log
//! ([`ServerChild::logged_failures`]) until just before h2load stops (it then drops the calls
//! still in flight, which Courier logs as failed: see [`unary`]); the bare server answers Ok to
//! every request it can decode, which the check has just shown this one to be.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::{ServerChild, token_of};

/// Connections h2load opens (`-c`).
pub const CONNECTIONS: usize = 16;
/// Streams each connection keeps in flight (`-m`).
pub const STREAMS: usize = 32;
/// Seconds of load h2load runs before it starts counting (`--warm-up-time`).
pub const WARM_UP_SECS: u64 = 1;
/// How long before h2load's stop Courier's failed calls stop being counted (see [`unary`]).
const STOP_MARGIN: Duration = Duration::from_millis(100);
/// The Debian package with `h2load` and `nghttp`.
pub const PACKAGE: &str = "nghttp2-client";

/// The method's HTTP/2 path.
const PATH: &str = "/courier.hello.v1.SayHelloService/Hello";
/// The name every request carries.
const NAME: &str = "bench";
/// The user whose token the calls carry when the server checks tokens.
const USER: &str = "u0";

/// The protobuf encoding of `HelloRequest { name }`: field 1 with wire type 2 (tag byte 0x0a),
/// the length as a varint, then the UTF-8 bytes.
pub fn hello_request(name: &str) -> Vec<u8> {
    let mut encoded = vec![0x0a];
    let mut length = name.len();
    while length >= 0x80 {
        encoded.push((length & 0x7f) as u8 | 0x80);
        length >>= 7;
    }
    encoded.push(length as u8);
    encoded.extend_from_slice(name.as_bytes());
    encoded
}

/// A gRPC length-prefixed message: flag 0 (not compressed), the length in four big-endian
/// bytes, then `message`.
pub fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let length = u32::try_from(message.len()).expect("a message under 4 GiB");
    let mut frame = Vec::with_capacity(5 + message.len());
    frame.push(0);
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// The request body h2load sends: one framed `HelloRequest` naming `bench`.
pub fn hello_body() -> Vec<u8> {
    grpc_frame(&hello_request(NAME))
}

/// Fails with what to install unless `h2load` and `nghttp` both run.
pub fn check_installed() -> Result<(), String> {
    for tool in ["h2load", "nghttp"] {
        let runs = std::process::Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !runs {
            return Err(format!(
                "`{tool}` is missing: install the {PACKAGE} package (Debian, as root: \
                 `apt-get install -y {PACKAGE}`, which `make tools` does)"
            ));
        }
    }
    Ok(())
}

/// What one h2load run measured against one server.
#[derive(Clone, Debug)]
pub struct Load {
    /// Requests per second over the measured period (after the warm-up).
    pub rate: f64,
    /// h2load's mean time per request, in microseconds.
    pub mean_us: f64,
    /// Server CPU time (user and system, all threads) per call over the measured time, in
    /// microseconds: steadier than the rate on a shared machine.
    pub cpu_us_per_call: f64,
    /// Requests that completed with a 2xx status.
    pub succeeded: u64,
    /// Requests that failed (reset, network error, time-out) or had a status other than 2xx:
    /// must be 0.
    pub http_errors: u64,
    /// Calls the server logged as ended with a non-zero `grpc-status` while h2load ran:
    /// must be 0. `None` for the bare server, which logs nothing.
    pub grpc_errors: Option<usize>,
}

impl Load {
    /// Whether every request succeeded, by HTTP status and, where the server tells, by gRPC
    /// status.
    pub fn clean(&self) -> bool {
        self.http_errors == 0 && self.grpc_errors.unwrap_or(0) == 0 && self.succeeded > 0
    }
}

/// The URL of Hello on `server`, and the headers every call sends.
fn request_of(server: &ServerChild) -> (String, Vec<String>) {
    let scheme = if server.ca.is_some() { "https" } else { "http" };
    let mut headers = vec![
        "content-type: application/grpc".to_owned(),
        "te: trailers".to_owned(),
    ];
    if server.ca.is_some() {
        // The baseline ignores it; Courier with TLS checks it.
        headers.push(format!("authorization: Bearer {}", token_of(USER)));
    }
    (format!("{scheme}://{}{PATH}", server.addr), headers)
}

/// One call through `nghttp -v` with `body`: the `grpc-status` it ended with (from its headers
/// or trailers) and everything nghttp printed (frames, then the response body).
async fn call_once(server: &ServerChild, body: &Path) -> Result<(Option<String>, String), String> {
    let (url, headers) = request_of(server);
    let mut command = Command::new("nghttp");
    command.arg("-v").arg("-d").arg(body);
    for header in &headers {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(&url)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| format!("cannot run nghttp: {error}"))?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "nghttp {url} failed ({}): {printed}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    // Received header fields are printed as `[  0.001] recv (stream_id=13) name: value`.
    let status = printed
        .lines()
        .filter(|line| line.contains("] recv (stream_id="))
        .find_map(|line| line.split_once(") grpc-status: "))
        .map(|(_, code)| code.trim().to_owned());
    Ok((status, printed))
}

/// Shows that [`hello_body`] is a valid request for `server` and that a broken one is noticed:
/// see the module's documentation.
pub async fn check(server: &ServerChild) -> Result<(), String> {
    let scratch = tempfile::tempdir().map_err(|error| error.to_string())?;
    let good = scratch.path().join("hello.bin");
    std::fs::write(&good, hello_body()).map_err(|error| error.to_string())?;
    let (status, printed) = call_once(server, &good).await?;
    let greeting = format!("hello world! {NAME}");
    if status.as_deref() != Some("0") || !printed.contains(&greeting) {
        return Err(format!(
            "the h2load request is not answered with grpc-status 0 and {greeting:?}: {printed}"
        ));
    }

    // A frame announcing two bytes of message but holding a field that claims five.
    let broken = scratch.path().join("broken.bin");
    std::fs::write(&broken, grpc_frame(&[0x0a, 0x05])).map_err(|error| error.to_string())?;
    let logged_before = server.logged_failures();
    let (status, printed) = call_once(server, &broken).await?;
    if matches!(status.as_deref(), None | Some("0")) {
        return Err(format!(
            "a broken request did not end with a non-zero grpc-status, so the check cannot \
             tell: {printed}"
        ));
    }
    if let Some(before) = logged_before {
        // The log is written by a thread of its own: give it a moment.
        let mut logged = 0;
        for _ in 0..50 {
            logged = server.logged_failures().unwrap_or(0).saturating_sub(before);
            if logged > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if logged != 1 {
            return Err(format!(
                "Courier logged {logged} failed calls for one broken request, not 1: its log no \
                 longer shows failures the way ServerChild::logged_failures reads them"
            ));
        }
    }
    Ok(())
}

/// Runs h2load against `server` for `length` (whole seconds, at least one) after the warm-up,
/// having [`check`]ed the request.
pub async fn unary(server: &ServerChild, length: Duration) -> Result<Load, String> {
    check(server).await?;
    let scratch = tempfile::tempdir().map_err(|error| error.to_string())?;
    let body = scratch.path().join("hello.bin");
    std::fs::write(&body, hello_body()).map_err(|error| error.to_string())?;
    let (url, headers) = request_of(server);
    let seconds = length.as_secs().max(1);
    let mut command = Command::new("h2load");
    command
        .arg("-c")
        .arg(CONNECTIONS.to_string())
        .arg("-m")
        .arg(STREAMS.to_string())
        .arg("-D")
        .arg(seconds.to_string())
        .arg("--warm-up-time")
        .arg(WARM_UP_SECS.to_string())
        .arg("-d")
        .arg(&body);
    for header in &headers {
        command.arg("-H").arg(header);
    }
    let logged_before = server.logged_failures();
    let started = tokio::time::Instant::now();
    let child = command
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot run h2load: {error}"))?;
    let output = tokio::spawn(child.wait_with_output());
    // The server is sampled over h2load's measured time (it counts from its start, after the
    // warm-up) but for its last STOP_MARGIN: when its time is up, h2load drops the calls still
    // in flight (some 500) and closes its connections, and Courier logs those calls as failed
    // (code Unknown), though h2load never counted them and no client was answered.
    let measured_from = started + Duration::from_secs(WARM_UP_SECS);
    let measured_to = measured_from + Duration::from_secs(seconds) - STOP_MARGIN;
    tokio::time::sleep_until(measured_from).await;
    let cpu_from = server.cpu_time();
    tokio::time::sleep_until(measured_to).await;
    let cpu_to = server.cpu_time();
    let logged = server.logged_failures();
    let output = output.await.map_err(|error| format!("h2load: {error}"))?;
    let output = output.map_err(|error| format!("h2load: {error}"))?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!(
            "h2load {url} failed ({}): {printed}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let mut load = parse(&printed).ok_or_else(|| format!("unexpected h2load output: {printed}"))?;
    if let (Some(before), Some(logged)) = (logged_before, logged) {
        load.grpc_errors = Some(logged.saturating_sub(before));
    }
    let calls = load.rate * (measured_to - measured_from).as_secs_f64();
    load.cpu_us_per_call = cpu_to.saturating_sub(cpu_from).as_secs_f64() * 1e6 / calls.max(1.0);
    if !load.clean() {
        eprintln!("h2load against {url}:\n{printed}");
    }
    Ok(load)
}

/// The number just before `label` in `line` (`"requests: 5 total, 4 done"` with `"done"` is 4).
fn count_before(line: &str, label: &str) -> Option<u64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.windows(2).find_map(|pair| {
        (pair[1].trim_end_matches(',') == label)
            .then(|| pair[0].parse().ok())
            .flatten()
    })
}

/// A duration as h2load prints it (`812us`, `1.25ms`, `2.01s`), in microseconds.
fn micros(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(number) = text.strip_suffix("us") {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix("ms") {
        (number, 1e3)
    } else {
        (text.strip_suffix('s')?, 1e6)
    };
    Some(number.parse::<f64>().ok()? * scale)
}

/// Reads h2load's summary:
///
/// ```text
/// finished in 5.00s, 51234.40 req/s, 2.34MB/s
/// requests: 256172 total, 256684 started, 256172 done, 256172 succeeded, 0 failed, 0 errored, 0 timeout
/// status codes: 256172 2xx, 0 3xx, 0 4xx, 0 5xx
/// ...
/// time for request:      1.23ms     45.67ms      3.21ms      1.23ms    80.00%
/// ```
fn parse(printed: &str) -> Option<Load> {
    let line = |prefix: &str| printed.lines().find(|line| line.starts_with(prefix));
    let rate = line("finished in")?
        .split(", ")
        .find_map(|part| part.strip_suffix(" req/s"))?
        .parse()
        .ok()?;
    // h2load's `failed` includes `errored` (resets, network errors) and `timeout`, and the
    // requests answered with neither 2xx nor 3xx; it counts a 3xx as succeeded.
    let requests = line("requests:")?;
    let succeeded = count_before(requests, "succeeded")?;
    let failed = count_before(requests, "failed")?;
    let redirected = count_before(line("status codes:")?, "3xx")?;
    // min, max, mean, sd, +/- sd.
    let mean_us = micros(line("time for request:")?.split_whitespace().nth(5)?)?;
    Some(Load {
        rate,
        mean_us,
        cpu_us_per_call: 0.0,
        succeeded: succeeded.saturating_sub(redirected),
        http_errors: failed + redirected,
        grpc_errors: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_framed_hello_request() {
        assert_eq!(hello_body(), b"\x00\x00\x00\x00\x07\x0a\x05bench");
        // Lengths of 128 and more take more than one varint byte.
        let long = hello_request(&"x".repeat(300));
        assert_eq!(&long[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(long.len(), 303);
    }

    #[test]
    fn reads_the_summary() {
        let printed = "\
starting benchmark...
finished in 5.00s, 51234.40 req/s, 2.34MB/s
requests: 256172 total, 256684 started, 256172 done, 256170 succeeded, 2 failed, 1 errored, 0 timeout
status codes: 256169 2xx, 1 3xx, 1 4xx, 0 5xx
traffic: 11.72MB (12288000) total, 1.00MB (1000000) headers (space savings 95.00%), 5.00MB (5000000) data
                     min         max         mean         sd        +/- sd
time for request:      812us     45.67ms      1.25ms      1.23ms    80.00%
";
        let load = parse(printed).expect("parses");
        assert!((load.rate - 51234.4).abs() < 1e-6);
        assert!((load.mean_us - 1250.0).abs() < 1e-6);
        assert_eq!(load.succeeded, 256_169);
        assert_eq!(load.http_errors, 3);
        assert!(!load.clean());
    }
}
