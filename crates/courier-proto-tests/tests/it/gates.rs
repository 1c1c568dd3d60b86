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

// === semver: the release gate asks for the bump the Rust API needs ===

/// `make semver` on mutated copies of the module. The baseline of both the wire and the crate is an
/// unmodified, regenerated copy (as `make breaking` gets the repository above), and the versions
/// are the next patch and breaking versions of the last release in RELEASES. The rustdoc JSON is
/// built in the repository's `target/semver`, shared with `make semver`, so the dependencies are
/// built once; the mutations run one after the other in one test, since they share it.
mod semver {
    use super::*;
    use std::time::Instant;

    /// A module copy that also holds the Cargo workspace the generated crate builds in.
    fn crate_copy() -> ModuleCopy {
        let copy = ModuleCopy::new();
        let root = repo_root();
        for file in ["Cargo.toml", "Cargo.lock"] {
            fs::copy(root.join(file), copy.dir.path().join(file)).unwrap();
        }
        copy_tree(&root.join("crates"), &copy.dir.path().join("crates"));
        copy
    }

    /// The smallest compatible and the smallest breaking version after the last release.
    fn next_versions() -> (String, String) {
        let releases = fs::read_to_string(repo_root().join("RELEASES")).unwrap();
        let last = releases
            .lines()
            .rev()
            .find(|line| !line.starts_with('#') && !line.trim().is_empty())
            .and_then(|line| line.split_whitespace().next())
            .unwrap();
        let parts: Vec<u64> = last.split('.').map(|part| part.parse().unwrap()).collect();
        let (major, minor, patch) = (parts[0], parts[1], parts[2]);
        let breaking = match (major, minor) {
            (0, 0) => format!("0.0.{}", patch + 1),
            (0, _) => format!("0.{}.0", minor + 1),
            _ => format!("{}.0.0", major + 1),
        };
        (format!("{major}.{minor}.{}", patch + 1), breaking)
    }

    struct Gate {
        baseline: ModuleCopy,
        compatible: String,
        breaking: String,
    }

    impl Gate {
        fn new() -> Self {
            let baseline = crate_copy();
            assert_passes(baseline.make("generate"));
            let (compatible, breaking) = next_versions();
            Self {
                baseline,
                compatible,
                breaking,
            }
        }

        /// Runs `make semver VERSION=<version>` in a copy (which `make generate` has brought up to
        /// date: the gate refuses a stale gen/).
        fn semver(&self, copy: &ModuleCopy, version: &str) -> GateRun {
            let started = Instant::now();
            let output = Command::new("make")
                .arg("semver")
                .arg(format!("VERSION={version}"))
                .arg(format!("BASELINE={}", self.baseline.dir.path().display()))
                .arg(format!(
                    "SEMVER_BASELINE={}",
                    self.baseline.dir.path().display()
                ))
                .arg(format!(
                    "SEMVER_TARGET_DIR={}",
                    repo_root().join("target/semver").display()
                ))
                .current_dir(copy.dir.path())
                .env_remove("MAKEFLAGS")
                .env_remove("MFLAGS")
                .env_remove("MAKELEVEL")
                .output()
                .expect("make runs");
            eprintln!("make semver VERSION={version}: {:.1?}", started.elapsed());
            GateRun {
                passed: output.status.success(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            }
        }

        /// The compatible bump is refused for each of `lints`, pointing at the breaking one.
        #[track_caller]
        fn refuses_compatible_bump(&self, copy: &ModuleCopy, lints: &[&str]) {
            let run = self.semver(copy, &self.compatible);
            let needs = format!("release {} or later", self.breaking);
            assert_fails_with_all(run, &[lints, &[needs.as_str()]].concat());
        }

        /// The compatible bump is refused for `lint`, the breaking one accepted.
        #[track_caller]
        fn needs_breaking_bump(&self, copy: &ModuleCopy, lint: &str) {
            self.refuses_compatible_bump(copy, &[lint]);
            assert_passes(self.semver(copy, &self.breaking));
        }

        #[track_caller]
        fn accepts_compatible_bump(&self, copy: &ModuleCopy) {
            let run = self.semver(copy, &self.compatible);
            assert!(
                run.passed && run.output.contains("required bump:  patch"),
                "the gate should accept {}:\n{}",
                self.compatible,
                run.output
            );
        }
    }

    #[test]
    fn semver_asks_for_the_bump_the_rust_api_needs() {
        let gate = Gate::new();

        // A field added to an existing message breaks every struct literal of it.
        let copy = crate_copy();
        copy.edit(
            "message/v1/message.proto",
            "  google.protobuf.Timestamp sent_at = 5;\n",
            "  google.protobuf.Timestamp sent_at = 5;\n  // The id of the message this one answers.\n  string reply_to = 6;\n",
        );
        assert_passes(copy.make("generate"));
        gate.needs_breaking_bump(&copy, "constructible_struct_adds_field");

        // An added RPC is a new required method of the generated server trait.
        let copy = crate_copy();
        copy.edit(
            "hello/v1/hello.proto",
            "  rpc Hello(HelloRequest) returns (HelloResponse);\n",
            "  rpc Hello(HelloRequest) returns (HelloResponse);\n  // Goodbye takes leave of the caller.\n  rpc Goodbye(HelloRequest) returns (HelloResponse);\n",
        );
        assert_passes(copy.make("generate"));
        gate.needs_breaking_bump(&copy, "trait_method_added");

        // A plugin upgrade that changes the generated API with no proto change: simulated by a
        // generator option, protoc-gen-tonic's no_server, which drops the server stubs.
        let copy = crate_copy();
        add_generator_option(&copy, "protoc-gen-tonic", "no_server=true");
        assert_passes(copy.make("generate"));
        gate.refuses_compatible_bump(&copy, &["module_missing", "trait_missing"]);

        // One that only changes a field's type, which cargo-semver-checks does not compare
        // (scripts/semver-lints does): prost's `boxed` option, as a prost upgrade could box a field.
        let copy = crate_copy();
        add_generator_option(
            &copy,
            "protoc-gen-prost",
            "boxed=.courier.message.v1.SendMessageRequest.message",
        );
        assert_passes(copy.make("generate"));
        gate.refuses_compatible_bump(&copy, &["type_changed", "SendMessageRequest.message"]);

        // A new message type alone is an addition: compatible in 0.x.
        let copy = crate_copy();
        copy.edit(
            "hello/v1/hello.proto",
            "// HelloResponse carries the greeting.\n",
            "// Farewell is a parting word.\nmessage Farewell {\n  // The parting word.\n  string text = 1;\n}\n\n// HelloResponse carries the greeting.\n",
        );
        assert_passes(copy.make("generate"));
        gate.accepts_compatible_bump(&copy);

        // A comment changes the docs only.
        let copy = crate_copy();
        copy.edit(
            "hello/v1/hello.proto",
            "// HelloRequest names who is to be greeted.",
            "// HelloRequest names the one to greet.",
        );
        assert_passes(copy.make("generate"));
        gate.accepts_compatible_bump(&copy);

        // A wire break is refused whatever the version, pointing at a new package.
        let copy = crate_copy();
        copy.edit(
            "message/v1/message.proto",
            "  // The text of the message.\n  string content = 2;\n",
            "",
        );
        assert_passes(copy.make("generate"));
        let run = gate.semver(&copy, &gate.breaking);
        assert_fails_with_all(run, &["FIELD_NO_DELETE", "courier.<name>.v2"]);
    }

    /// Adds `option` to the options of `plugin` in the copy's buf.gen.yaml.
    fn add_generator_option(copy: &ModuleCopy, plugin: &str, option: &str) {
        let template = copy.dir.path().join("buf.gen.yaml");
        let text = fs::read_to_string(&template).unwrap();
        let entry = format!("  - local: {plugin}\n    out: gen/rust/src\n    opt:\n");
        assert!(text.contains(&entry), "buf.gen.yaml has no {entry:?}");
        let text = text.replacen(&entry, &format!("{entry}      - {option}\n"), 1);
        fs::write(&template, text).unwrap();
    }

    #[track_caller]
    fn assert_fails_with_all(run: GateRun, reasons: &[&str]) {
        assert!(
            !run.passed,
            "the gate passed but should fail with {reasons:?}:\n{}",
            run.output
        );
        for reason in reasons {
            assert!(
                run.output.contains(reason),
                "expected {reason} in:\n{}",
                run.output
            );
        }
    }
}
