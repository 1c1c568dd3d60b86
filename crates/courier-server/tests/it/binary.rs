//! The `courier-server` binary itself: what `main` refuses, in which order it starts, and how
//! it stops.

use std::path::Path;
use std::time::Duration;

use courier_client::{ConnectOptions, Connection};
use courier_server::dev_pki::DevPki;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::helpers::client::{metadata, send_texts};
use crate::helpers::process::{ServerProcess, server_command};

/// Writes a throwaway CA, server certificate and key into `dir` (`ca.pem`, `server.pem`,
/// `server.key`, ...).
fn write_pki(dir: &Path) {
    DevPki::generate().unwrap().write_to(dir).unwrap();
}

#[test]
fn a_public_address_without_tls_and_tokens_is_refused() {
    let output = server_command()
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to serve 0.0.0.0:0 without TLS and tokens"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_tokens_file_stops_the_start_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "jack sha256:1234\n").unwrap();
    let output = server_command()
        .args(["--listen", "127.0.0.1:0", "--in-memory", "--tokens"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tokens file line 1"), "{stderr}");
}

/// The binary prints each error's whole chain; no cause may be printed twice in it.
#[test]
fn a_bad_user_name_in_the_tokens_file_is_explained_once() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("bad/name sha256:{}\n", "0".repeat(64))).unwrap();
    let output = server_command()
        .args(["--listen", "127.0.0.1:0", "--in-memory", "--tokens"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let reason = "may hold only letters, digits, '.', '_' and '-'";
    assert!(
        stderr.contains(&format!(
            "error: tokens file line 1: bad user name: {reason}\n"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches(reason).count(), 1, "{stderr}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let mut server = ServerProcess::start(&data, &addr_file, &[]);
    server.terminate();
    let exit = server.exit_within(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}");
}

/// A start that fails on its TLS files stops before the store is opened (which would create
/// `--data-dir`) and before anything is bound or announced, and prints the whole error chain.
#[test]
fn a_missing_or_garbage_tls_key_stops_the_start_before_the_data_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let missing = dir.path().join("missing.key");
    let garbage = dir.path().join("garbage.key");
    std::fs::write(
        &garbage,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let cases = [
        (
            &missing,
            format!(
                "error: cannot read {}: No such file or directory (os error 2)",
                missing.display()
            ),
        ),
        (
            &garbage,
            format!(
                "error: the TLS configuration was refused: rustls cannot use {} with {}: unexpected error: failed to parse private key",
                garbage.display(),
                dir.path().join("server.pem").display()
            ),
        ),
    ];
    for (key, chain) in cases {
        let data = dir.path().join("fresh-data");
        let output = server_command()
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .arg("--tls-cert")
            .arg(dir.path().join("server.pem"))
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&chain), "{stderr}");
        assert!(!stderr.contains("listening"), "{stderr}");
        assert!(!data.exists(), "the start created {}", data.display());
    }
}

#[test]
fn a_bad_duration_is_a_usage_error_naming_its_flag() {
    let output = server_command()
        .args(["--in-memory", "--shutdown-grace", "10"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid value '10' for '--shutdown-grace <DURATION>'"),
        "{stderr}"
    );
    let output = server_command()
        .args(["--in-memory", "--retention", "0s"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("invalid value '0s' for '--retention <DURATION>': must be longer than zero"),
        "{stderr}"
    );
}

/// Durations are humantime: the binary starts with one of each, in several units.
#[tokio::test]
async fn every_duration_flag_takes_a_humantime_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let mut server = ServerProcess::start(
        &data,
        &addr_file,
        &[
            "--shutdown-grace",
            "1500ms",
            "--retention",
            "7days",
            "--call-timeout",
            "30s",
            "--http2-keepalive-interval",
            "1m",
            "--http2-keepalive-timeout",
            "10s",
            "--tcp-keepalive",
            "2min",
            "--tls-handshake-timeout",
            "5s",
            "--max-connection-age",
            "1h 30m",
        ],
    );
    server.terminate();
    let exit = server.exit_within(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}");
}

/// A connected `grpc.health.v1.Health/Watch` does not hold shutdown: it gets NOT_SERVING, its
/// stream ends, and the server exits 0 well within its grace period.
#[tokio::test]
async fn sigterm_with_a_health_watcher_connected_exits_0_within_the_grace_period() {
    const GRACE: Duration = Duration::from_secs(5);
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let mut server = ServerProcess::start(&data, &addr_file, &["--shutdown-grace", "5s"]);
    let connection = server.connect().await;
    let mut watch = HealthClient::new(connection.with(metadata(None, &[])))
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let started = std::time::Instant::now();
    server.terminate();
    let exit = server.exit_within(GRACE).await;
    assert!(exit.success(), "{exit}");
    assert!(started.elapsed() < GRACE / 2, "{:?}", started.elapsed());
    let last = watch.message().await.unwrap().unwrap();
    assert_eq!(last.status, ServingStatus::NotServing as i32);
    assert!(
        watch.message().await.unwrap().is_none(),
        "the Watch ended with OK"
    );
}

/// Under TLS, each call is still logged with the peer's address: the connection limit's
/// wrapper around accepted sockets keeps tonic's connect info.
#[tokio::test]
async fn under_tls_a_failed_call_is_logged_with_its_peer() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let (data, addr_file, log) = (
        dir.path().join("data"),
        dir.path().join("addr"),
        dir.path().join("server.log"),
    );
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let mut server = ServerProcess::start_logging_to(
        &data,
        &addr_file,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &log,
    );
    let connection = Connection::open(&ConnectOptions {
        addr: format!("https://{}", server.addr),
        ca: Some(dir.path().join("ca.pem")),
        domain: Some("localhost".into()),
        identity: None,
    })
    .await
    .unwrap();
    let status = send_texts(&connection, "jack", "not a name", &["x".into()])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.terminate();
    let exit = server.exit_within(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}");
    let log = std::fs::read_to_string(&log).unwrap();
    let failed = log
        .lines()
        .find(|line| line.contains("InvalidArgument") || line.contains("invalid argument"))
        .unwrap_or_else(|| panic!("no line for the failed call in:\n{log}"));
    assert!(failed.contains("peer=127.0.0.1:"), "{failed}");
}
