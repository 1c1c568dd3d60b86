//! The real `courier-server` binary, for tests of `main` and tests that signal or kill the
//! server: spawning it, waiting for the address it writes, stopping it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use courier_client::{ConnectOptions, Connection};

/// How long the binary may take to write its address file.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A command running the `courier-server` binary.
pub(crate) fn server_command() -> Command {
    Command::new(env!("CARGO_BIN_EXE_courier-server"))
}

/// Waits (at most [`START_TIMEOUT`]) until the server has written its address to `addr_file`.
fn wait_for_address(addr_file: &Path) -> String {
    let started = Instant::now();
    loop {
        match std::fs::read_to_string(addr_file) {
            Ok(addr) if !addr.is_empty() => return addr,
            _ => {
                assert!(
                    started.elapsed() < START_TIMEOUT,
                    "the server wrote no address to {} within {START_TIMEOUT:?}",
                    addr_file.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The binary serving plaintext on loopback with a data directory.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: String,
}

/// A failing test must not leave a server behind.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts it on the data directory `data` with `extra` arguments, and waits until it
    /// listens (it writes its address to `addr_file` then).
    pub(crate) fn start(data: &Path, addr_file: &Path, extra: &[&str]) -> Self {
        Self::spawn(data, addr_file, extra, Stdio::null())
    }

    /// [`ServerProcess::start`], with the server's log (its stderr) written to the file `log`.
    pub(crate) fn start_logging_to(
        data: &Path,
        addr_file: &Path,
        extra: &[&str],
        log: &Path,
    ) -> Self {
        let log = std::fs::File::create(log).unwrap();
        Self::spawn(data, addr_file, extra, log.into())
    }

    fn spawn(data: &Path, addr_file: &Path, extra: &[&str], stderr: Stdio) -> Self {
        let _ = std::fs::remove_file(addr_file);
        let child = server_command()
            .args(["--listen", "127.0.0.1:0", "--addr-file"])
            .arg(addr_file)
            .arg("--data-dir")
            .arg(data)
            .args(extra)
            .stderr(stderr)
            .spawn()
            .unwrap();
        // Until the address is read, a failed start must still kill the child.
        let mut server = Self {
            child,
            addr: String::new(),
        };
        server.addr = wait_for_address(addr_file);
        server
    }

    pub(crate) async fn connect(&self) -> Connection {
        let options = ConnectOptions {
            addr: format!("http://{}", self.addr),
            ..ConnectOptions::default()
        };
        Connection::open(&options).await.unwrap()
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM: the graceful stop.
    pub(crate) fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM: {status}");
    }

    /// Waits for the process to exit, failing if it takes longer than `within`.
    pub(crate) async fn exit_within(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                return exit;
            }
            assert!(Instant::now() < deadline, "no exit within {within:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        self.memory_kib("VmHWM:")
    }

    /// Resident memory now (VmRSS), in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        self.memory_kib("VmRSS:")
    }

    /// A size line of `/proc/<pid>/status`, in KiB.
    fn memory_kib(&self, key: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}
