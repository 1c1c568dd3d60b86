// The TypeScript side of the cross-language proto3 JSON test: courier.message.v1.Message with
// every field set, written and read by the generated `courier-proto` npm package (gen/ts) and its
// runtime, @bufbuild/protobuf.
//
// Usage (from anywhere; needs `make tools`, which installs @bufbuild/protobuf into the repository's
// node_modules/, where gen/ts and this script find it):
//
//   node tests/sdk/ts/json.mjs write
//       Prints the proto3 JSON of the fixture message on one line (toJsonString, default options:
//       lowerCamelCase names, defaults omitted) and exits 0.
//   node tests/sdk/ts/json.mjs read FILE
//       Parses FILE (`-` for stdin) as proto3 JSON of courier.message.v1.Message (fromJsonString,
//       default options: unknown fields are an error), prints it back canonical (as `write` would)
//       and exits 0 if it equals the fixture message. Exits 1, with the reason on stderr, if FILE
//       is not valid proto3 JSON of a Message, if the message differs from the fixture, or if its
//       `sentAt` (or `sent_at`) is not written in the fixture's canonical form (RFC 3339, UTC,
//       ending in `Z`, 9 fractional digits here).
//   Any other arguments: usage on stderr, exit 2.
//
// The fixture, tests/sdk/message-fixture.json, is shared by every language: the message as canonical
// proto3 JSON, every field set, sentAt with nanoseconds. Its sentAt string is the canonical form
// that `write` checks it writes and `read` checks it was given.

import { readFileSync } from "node:fs";

import { equals, fromJsonString, isFieldSet, toJsonString } from "@bufbuild/protobuf";

import { MessageSchema } from "../../../gen/ts/courier/message/v1/message_pb.js";

const fixtureText = readFileSync(new URL("../message-fixture.json", import.meta.url), "utf8");
const expected = fromJsonString(MessageSchema, fixtureText);
const canonicalSentAt = JSON.parse(fixtureText).sentAt;

function fail(reason) {
  process.stderr.write(`json.mjs: ${reason}\n`);
  process.exit(1);
}

// The fixture must keep testing what it is for.
for (const field of MessageSchema.fields) {
  if (!isFieldSet(expected, field)) fail(`the fixture leaves ${field.name} unset`);
}
if (!/\.\d{9}Z$/.test(canonicalSentAt)) fail(`the fixture's sentAt has no nanoseconds: ${canonicalSentAt}`);

// The value of sentAt as written in a proto3 JSON text (either name is valid proto3 JSON).
function writtenSentAt(text) {
  const object = JSON.parse(text);
  return object.sentAt ?? object.sent_at;
}

const [command, file, ...rest] = process.argv.slice(2);
if (command === "write" && file === undefined) {
  const json = toJsonString(MessageSchema, expected);
  if (writtenSentAt(json) !== canonicalSentAt) {
    fail(`sentAt written as ${JSON.stringify(writtenSentAt(json))}, expected ${JSON.stringify(canonicalSentAt)}`);
  }
  process.stdout.write(`${json}\n`);
} else if (command === "read" && file !== undefined && rest.length === 0) {
  let text;
  let message;
  try {
    text = readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (error) {
    fail(`cannot read ${file}: ${error.message}`);
  }
  try {
    message = fromJsonString(MessageSchema, text);
  } catch (error) {
    fail(`${file} is not proto3 JSON of courier.message.v1.Message: ${error.message}`);
  }
  const canonical = toJsonString(MessageSchema, message);
  process.stdout.write(`${canonical}\n`);
  if (!equals(MessageSchema, message, expected)) {
    fail(`${file} differs from the fixture:\n  read:     ${canonical}\n  expected: ${toJsonString(MessageSchema, expected)}`);
  }
  if (writtenSentAt(text) !== canonicalSentAt) {
    fail(`${file} writes sentAt as ${JSON.stringify(writtenSentAt(text))}, not the canonical ${JSON.stringify(canonicalSentAt)}`);
  }
} else {
  process.stderr.write("usage: node tests/sdk/ts/json.mjs write | read FILE (- for stdin)\n");
  process.exit(2);
}
