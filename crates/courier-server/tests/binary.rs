//! The `courier-server` binary itself: what `main` refuses, and how it stops.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVER: &str = env!("CARGO_BIN_EXE_courier-server");

#[test]
fn a_public_address_without_tls_and_tokens_is_refused() {
    let output = Command::new(SERVER)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
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
    let output = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--in-memory", "--tokens"])
        .arg(&tokens)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("tokens file line 1"), "{stderr}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addr");
    let mut server = Command::new(SERVER)
        .args(["--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::fs::read_to_string(&addr_file).map_or(true, |addr| addr.is_empty()) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopping = Instant::now();
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit}");
}
