"""The Python side of the cross-language proto3 JSON test: courier.message.v1.Message with every
field set, written and read by the `courier-proto` wheel and its runtime, the official protobuf
package (google.protobuf.json_format).

Usage (with the Python of a virtualenv that has the wheel installed, such as the one that
`make python-consumer-venv` writes: target/python-consumer/venv/bin/python):

  json_message.py write
      Prints the proto3 JSON of the fixture message on one line (json_format.MessageToJson:
      lowerCamelCase names, default values omitted; UTF-8, not \\u escapes) and exits 0.
  json_message.py read FILE
      Parses FILE (`-` for stdin) as proto3 JSON of courier.message.v1.Message (json_format.Parse:
      unknown fields are an error), prints it back as `write` would and exits 0 if it equals the
      fixture message. Exits 1, with the reason on stderr (a diff when the message differs), if FILE
      is not proto3 JSON of a Message, if the message differs from the fixture, or if its `sentAt`
      (or `sent_at`) is not written in the fixture's canonical form (RFC 3339, UTC, ending in `Z`,
      9 fractional digits here).
  Any other arguments: usage on stderr, exit 2.

The fixture, tests/sdk/message-fixture.json, is shared by every language: the message as canonical
proto3 JSON, every field set, sentAt with nanoseconds.
"""

import difflib
import json
import os
import re
import sys

from google.protobuf import json_format

from courier.message.v1 import message_pb2

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "message-fixture.json")


def fail(reason):
    sys.stderr.write(f"json_message.py: {reason}\n")
    sys.exit(1)


def to_json(message, **options):
    return json_format.MessageToJson(message, ensure_ascii=False, **options)


def written_sent_at(text):
    """The value of sentAt as written in a proto3 JSON text (either name is valid proto3 JSON)."""
    value = json.loads(text)
    return value.get("sentAt", value.get("sent_at"))


def main(arguments):
    with open(FIXTURE, encoding="utf-8") as file:
        fixture_text = file.read()
    expected = json_format.Parse(fixture_text, message_pb2.Message())
    canonical_sent_at = json.loads(fixture_text)["sentAt"]

    # The fixture must keep testing what it is for.
    unset = [field.name for field in expected.DESCRIPTOR.fields if field not in dict(expected.ListFields())]
    if unset:
        fail(f"the fixture leaves {', '.join(unset)} unset")
    if not re.search(r"\.\d{9}Z$", canonical_sent_at):
        fail(f"the fixture's sentAt has no nanoseconds: {canonical_sent_at}")

    sys.stdout.reconfigure(encoding="utf-8")
    if arguments == ["write"]:
        text = to_json(expected, indent=None)
        if written_sent_at(text) != canonical_sent_at:
            fail(f"sentAt written as {written_sent_at(text)!r}, expected {canonical_sent_at!r}")
        print(text)
    elif len(arguments) == 2 and arguments[0] == "read":
        name = arguments[1]
        try:
            if name == "-":
                text = sys.stdin.buffer.read().decode("utf-8")
            else:
                with open(name, encoding="utf-8") as file:
                    text = file.read()
        except (OSError, UnicodeDecodeError) as error:
            fail(f"cannot read {name}: {error}")
        try:
            message = json_format.Parse(text, message_pb2.Message())
        except json_format.ParseError as error:
            fail(f"{name} is not proto3 JSON of courier.message.v1.Message: {error}")
        print(to_json(message, indent=None))
        if message != expected:
            diff = difflib.unified_diff(
                to_json(expected, indent=2, sort_keys=True).splitlines(),
                to_json(message, indent=2, sort_keys=True).splitlines(),
                "the fixture",
                name,
                lineterm="",
            )
            fail(f"{name} differs from the fixture:\n" + "\n".join(diff))
        if written_sent_at(text) != canonical_sent_at:
            fail(f"{name} writes sentAt as {written_sent_at(text)!r}, not the canonical {canonical_sent_at!r}")
    else:
        sys.stderr.write("usage: json_message.py write | read FILE (- for stdin)\n")
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
