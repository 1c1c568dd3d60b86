//! The `courier-server` binary itself: what `main` refuses, and how it stops.

use std::time::Duration;

use crate::helpers::process::{ServerProcess, server_command};

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

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (data, addr_file) = (dir.path().join("data"), dir.path().join("addr"));
    let mut server = ServerProcess::start(&data, &addr_file, &[]);
    server.terminate();
    let exit = server.exit_within(Duration::from_secs(10)).await;
    assert!(exit.success(), "{exit}");
}
