//! Proves that the Makefile's gates gate: each test copies the module into a temporary
//! directory, applies one known violation, runs the real `make` target there and asserts that it
//! fails for the expected reason (or passes, for a change that must be allowed).
//!
//! The tools must already be installed (`make test` installs them before running these).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a gate run printed, and whether it passed.
struct GateRun {
    passed: bool,
    output: String,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A temporary copy of everything the gates read, with the installed tools linked in.
struct ModuleCopy {
    dir: tempfile::TempDir,
}

impl ModuleCopy {
    fn new() -> Self {
        let root = repo_root();
        assert!(
            root.join("node_modules/.bin/buf").exists(),
            "buf is missing: run `make tools` first"
        );
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "Makefile",
            "package.json",
            "package-lock.json",
            "RELEASES",
            "buf.yaml",
            "buf.gen.yaml",
            "VERSION",
        ] {
            fs::copy(root.join(file), dir.path().join(file)).unwrap();
        }
        for tree in ["proto", "gen", "sdk", "scripts", "make"] {
            copy_tree(&root.join(tree), &dir.path().join(tree));
        }
        // The other tools live in the tool cache outside the clone, which the copy shares.
        std::os::unix::fs::symlink(root.join("node_modules"), dir.path().join("node_modules"))
            .unwrap();
        Self { dir }
    }

    /// Replaces `from` with `to` in one proto file, failing if `from` is not there.
    fn edit(&self, proto: &str, from: &str, to: &str) -> &Self {
        let path = self.dir.path().join("proto/courier").join(proto);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{proto} does not contain {from:?}");
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
        self
    }

    /// Runs `make <target>` in the copy; `breaking` compares against the repository's own module.
    fn make(&self, target: &str) -> GateRun {
        let output = Command::new("make")
            .arg(target)
            .arg(format!("BASELINE={}", repo_root().display()))
            .current_dir(self.dir.path())
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL")
            .output()
            .expect("make runs");
        GateRun {
            passed: output.status.success(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[track_caller]
fn assert_fails_with(run: GateRun, reason: &str) {
    assert!(
        !run.passed,
        "the gate passed but should fail with {reason}:\n{}",
        run.output
    );
    assert!(
        run.output.contains(reason),
        "expected {reason} in:\n{}",
        run.output
    );
}

#[track_caller]
fn assert_passes(run: GateRun) {
    assert!(run.passed, "the gate failed:\n{}", run.output);
}

// === the unmodified module passes every gate ===

#[test]
fn unmodified_module_passes_lint_breaking_and_check_generated() {
    let copy = ModuleCopy::new();
    assert_passes(copy.make("lint"));
    assert_passes(copy.make("breaking"));
    assert_passes(copy.make("check-generated"));
}

// === breaking ===

#[test]
fn deleting_a_field_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "message/v1/message.proto",
        "  // The text of the message.\n  string content = 2;\n",
        "",
    );
    assert_fails_with(copy.make("breaking"), "FIELD_NO_DELETE");
}

#[test]
fn changing_a_field_type_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "message/v1/message.proto",
        "string id = 4;",
        "int64 id = 4;",
    );
    assert_fails_with(copy.make("breaking"), "FIELD_SAME_TYPE");
}

#[test]
fn renumbering_a_field_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "message/v1/message.proto",
        "string to = 3;",
        "string to = 6;",
    );
    assert_fails_with(copy.make("breaking"), "FIELD_NO_DELETE");
}

#[test]
fn renaming_a_field_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "string msg = 1;",
        "string message = 1;",
    );
    assert_fails_with(copy.make("breaking"), "FIELD_SAME_NAME");
}

#[test]
fn renaming_an_rpc_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit("hello/v1/hello.proto", "rpc Hello(", "rpc Greet(");
    assert_fails_with(copy.make("breaking"), "RPC_NO_DELETE");
}

#[test]
fn making_a_unary_rpc_streaming_is_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "returns (HelloResponse);",
        "returns (stream HelloResponse);",
    );
    assert_fails_with(copy.make("breaking"), "RPC_SAME_SERVER_STREAMING");
}

#[test]
fn adding_a_field_is_not_breaking() {
    let copy = ModuleCopy::new();
    copy.edit(
        "message/v1/message.proto",
        "  google.protobuf.Timestamp sent_at = 5;\n",
        "  google.protobuf.Timestamp sent_at = 5;\n  // The id of the message this one answers.\n  string reply_to = 6;\n",
    );
    assert_passes(copy.make("lint"));
    assert_passes(copy.make("breaking"));
}

// === lint ===

#[test]
fn a_missing_comment_fails_lint() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "// HelloRequest names who is to be greeted.\n",
        "",
    );
    assert_fails_with(copy.make("lint"), "COMMENT_MESSAGE");
}

#[test]
fn a_badly_named_message_fails_lint() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "message HelloResponse {",
        "message hello_response {",
    )
    .edit(
        "hello/v1/hello.proto",
        "returns (HelloResponse);",
        "returns (hello_response);",
    );
    assert_fails_with(copy.make("lint"), "MESSAGE_PASCAL_CASE");
}

#[test]
fn unformatted_protos_fail_lint() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "  string name = 1;",
        "  string   name=1;",
    );
    assert_fails_with(copy.make("lint"), "string name = 1;");
}

// === check-generated ===

#[test]
fn a_proto_change_without_regeneration_fails_check_generated() {
    let copy = ModuleCopy::new();
    copy.edit(
        "hello/v1/hello.proto",
        "// HelloRequest names who is to be greeted.",
        "// HelloRequest names the one to greet.",
    );
    assert_fails_with(copy.make("check-generated"), "gen/ is stale or hand-edited");
}

#[test]
fn a_hand_edit_in_gen_fails_check_generated() {
    let copy = ModuleCopy::new();
    let lib = copy.dir.path().join("gen/rust/src/lib.rs");
    let mut text = fs::read_to_string(&lib).unwrap();
    text.push_str("pub fn added_by_hand() {}\n");
    fs::write(&lib, text).unwrap();
    assert_fails_with(copy.make("check-generated"), "gen/ is stale or hand-edited");
}
