#!/usr/bin/env python3
"""A cargo registry on loopback, for the Rust consumer test: `registry.py DIR CRATE_FILE...`.

Serves the given `.crate` files (from `cargo package`) as an alternate registry over cargo's
sparse protocol (https://doc.rust-lang.org/cargo/reference/registry-index.html) on
127.0.0.1:<free port>, writes `DIR/port` once it listens, and serves until killed. Dependencies
on crates that are not among the served ones point at crates.io.

Hand-written: a static index is a few JSON lines per crate, read from each package's normalized
Cargo.toml. A registry to publish to for real would use a registry server (margo, kellnr, …).
"""

import functools
import hashlib
import http.server
import json
import shutil
import sys
import tarfile
import tomllib
from pathlib import Path

CRATES_IO = "https://github.com/rust-lang/crates.io-index"
DEPENDENCY_KINDS = {"dependencies": "normal", "build-dependencies": "build", "dev-dependencies": "dev"}


def manifest(crate_file: Path) -> dict:
    """The normalized Cargo.toml inside a .crate archive."""
    with tarfile.open(crate_file) as archive:
        member = next(m for m in archive.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Cargo.toml"))
        return tomllib.loads(archive.extractfile(member).read().decode())


def dependencies(toml: dict, served: set[str]) -> list[dict]:
    """The index's `deps` entries, from every dependency table (targets included)."""
    tables = [(None, toml)] + [(target, spec) for target, spec in toml.get("target", {}).items()]
    entries = []
    for target, table in tables:
        for section, kind in DEPENDENCY_KINDS.items():
            for name, spec in table.get(section, {}).items():
                spec = {"version": spec} if isinstance(spec, str) else spec
                package = spec.get("package", name)
                entry = {
                    "name": name,
                    "req": spec.get("version", "*"),
                    "features": spec.get("features", []),
                    "optional": spec.get("optional", False),
                    "default_features": spec.get("default-features", True),
                    "target": target,
                    "kind": kind,
                }
                if package != name:
                    entry["package"] = package
                if package not in served:
                    entry["registry"] = spec.get("registry-index", CRATES_IO)
                entries.append(entry)
    return entries


def index_path(name: str) -> str:
    """Where cargo looks a crate up in an index: 1/a, 2/ab, 3/a/abc, ab/cd/abcd…"""
    name = name.lower()
    if len(name) <= 2:
        return f"{len(name)}/{name}"
    if len(name) == 3:
        return f"3/{name[0]}/{name}"
    return f"{name[:2]}/{name[2:4]}/{name}"


def main() -> None:
    root = Path(sys.argv[1])
    crate_files = [Path(arg) for arg in sys.argv[2:]]
    shutil.rmtree(root, ignore_errors=True)
    (root / "crates").mkdir(parents=True)
    manifests = [(crate_file, manifest(crate_file)) for crate_file in crate_files]
    served = {toml["package"]["name"] for _, toml in manifests}
    for crate_file, toml in manifests:
        name, version = toml["package"]["name"], toml["package"]["version"]
        features = toml.get("features", {})
        entry = {
            "name": name,
            "vers": version,
            "deps": dependencies(toml, served),
            "cksum": hashlib.sha256(crate_file.read_bytes()).hexdigest(),
            "features": features,
            "yanked": False,
            "links": toml["package"].get("links"),
            "rust_version": toml["package"].get("rust-version"),
        }
        path = root / "index" / index_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as index:
            index.write(json.dumps(entry) + "\n")
        shutil.copy(crate_file, root / "crates" / f"{name}-{version}.crate")

    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    (root / "index" / "config.json").write_text(
        json.dumps({"dl": f"http://127.0.0.1:{port}/crates/{{crate}}-{{version}}.crate"})
    )
    (root / "port").write_text(str(port))
    server.serve_forever()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without a log line per request."""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


if __name__ == "__main__":
    main()
