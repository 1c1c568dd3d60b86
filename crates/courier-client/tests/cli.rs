//! The `courier-client` binary as a user runs it: what it prints and how it exits when it
//! cannot go on. No server is needed; every case fails before or at connecting.

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Output};

/// Runs the built binary with `args`, stdin empty.
fn courier_client(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier-client"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the binary runs")
}

/// An address on loopback where nothing listens: a port the OS just handed out and took back.
fn closed_addr() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    drop(listener);
    format!("http://{addr}")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_refused_connection_prints_the_whole_cause_chain() {
    let addr = closed_addr();
    let output = courier_client(&["--addr", &addr, "hello", "--name", "jack"]);
    let stderr = stderr(&output);
    assert!(!output.status.success(), "exit status {:?}", output.status);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot connect to {addr}: transport error: "
        )),
        "{stderr}"
    );
    assert!(stderr.contains("Connection refused"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}

#[test]
fn bad_user_names_are_refused_before_connecting_naming_the_flag() {
    // The address is closed: an error about connecting would mean the name went unchecked.
    let addr = closed_addr();
    let cases: [(&[&str], &str); 8] = [
        (
            &["post", "--from", "ja ck", "--to", "mike", "hi"],
            "error: --from: user name \"ja ck\": may hold only letters, digits, '.', '_' and '-'",
        ),
        (
            &[
                "post",
                "--from",
                "jack",
                "--to",
                "",
                "--idempotency-key",
                "k",
                "hi",
            ],
            "error: --to: user name \"\": is required",
        ),
        (
            &["send", "--from", "mi ke", "--to", "mike", "hi"],
            "error: --from: user name \"mi ke\": may hold only letters, digits, '.', '_' and '-'",
        ),
        (
            &["send", "--from", "jack", "--to", "", "hi"],
            "error: --to: user name \"\": is required",
        ),
        (
            &["receive", "--user", "a/b"],
            "error: --user: user name \"a/b\": may hold only letters, digits, '.', '_' and '-'",
        ),
        (
            &["chat", "--user", "jäck", "--to", "mike"],
            "error: --user: user name \"jäck\": may hold only letters, digits, '.', '_' and '-'",
        ),
        (
            &["chat", "--user", "jack", "--to", "m:ke"],
            "error: --to: user name \"m:ke\": may hold only letters, digits, '.', '_' and '-'",
        ),
        (
            &["receive", "--user", &"x".repeat(65)],
            "is longer than 64 bytes",
        ),
    ];
    for (args, expected) in cases {
        let output = courier_client(&[&["--addr", &addr][..], args].concat());
        let stderr = stderr(&output);
        assert!(!output.status.success(), "{args:?}: {:?}", output.status);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("connect"), "{args:?}: {stderr}");
    }
}
