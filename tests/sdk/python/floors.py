"""Checks that a `courier-proto` wheel's dependency floors are the versions its generated code
demands when it is imported: `protobuf>=X` must be the gencode version that every `_pb2.py` passes
to `_runtime_version.ValidateProtobufRuntimeVersion`, and `grpcio>=Y` the `GRPC_GENERATED_VERSION`
of every `_pb2_grpc.py`. A generator upgrade that raises them without sdk/python/pyproject.toml
following (or a hand edit of the floors) fails `make sdk-python`.

Usage: python floors.py WHEEL  (with a Python that has `packaging`, such as the build virtualenv)
"""

import re
import sys
import zipfile

from packaging.requirements import Requirement

PROTOBUF_CHECK = re.compile(
    r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),\s*'([^']*)',"
)
GRPC_CHECK = re.compile(r"^GRPC_GENERATED_VERSION = '([^']+)'$", re.MULTILINE)


def one_version(kind, found):
    """The single version that every generated module of a kind demands."""
    versions = {version for version in found.values() if version is not None}
    missing = sorted(name for name, version in found.items() if version is None)
    if not found:
        sys.exit(f"floors.py: the wheel has no {kind} module")
    if missing:
        sys.exit(f"floors.py: no runtime version check found in {', '.join(missing)}")
    if len(versions) != 1:
        sys.exit(f"floors.py: the {kind} modules demand different versions: {found}")
    return versions.pop()


def main(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
        requirements = [
            Requirement(line.split(":", 1)[1].strip())
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
        protobuf, grpc = {}, {}
        for name in names:
            if name.endswith("_pb2.py"):
                match = PROTOBUF_CHECK.search(archive.read(name).decode())
                protobuf[name] = match and "{}.{}.{}{}".format(*match.groups())
            elif name.endswith("_pb2_grpc.py"):
                match = GRPC_CHECK.search(archive.read(name).decode())
                grpc[name] = match and match.group(1)

    demanded = {"protobuf": one_version("_pb2.py", protobuf), "grpcio": one_version("_pb2_grpc.py", grpc)}
    declared = {}
    for requirement in requirements:
        floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        declared[requirement.name] = floors[0] if len(floors) == 1 else str(requirement.specifier)
    wrong = {
        name: f"the wheel declares {declared.get(name, 'no requirement')!r}, the generated code demands >={version}"
        for name, version in demanded.items()
        if declared.get(name) != version
    }
    if wrong:
        for name, reason in wrong.items():
            print(f"floors.py: {name}: {reason}", file=sys.stderr)
        sys.exit("floors.py: set the floors in sdk/python/pyproject.toml to what the generated code demands")
    print(f"dependency floors match the generated code: protobuf>={demanded['protobuf']}, grpcio>={demanded['grpcio']}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: floors.py WHEEL")
    main(sys.argv[1])
