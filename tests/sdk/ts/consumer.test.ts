// The TypeScript consumer test: code that depends on the packed `courier-proto` npm package, as a
// user's would, calls every RPC kind of courier-server through Connect v2's Node gRPC transport,
// over TLS with a bearer token, and checks the exact answers, headers and trailers.
//
// Run by tests/sdk/ts/run (`make ts-consumer`, part of `make test`): it installs the .tgz into a
// scratch Node project outside the repository, type-checks this file against the installed .d.ts,
// compiles it and runs it with `node --test` against a throwaway server, which sets COURIER_ADDR
// (host:port), COURIER_CA (PEM file) and COURIER_TOKENS_DIR (<user>.token files).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { create, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { ChatRequestSchema, ChatService, type ChatRequest } from "courier-proto/courier/chat/v1/chat_pb.js";
import { SayHelloService, type HelloResponse } from "courier-proto/courier/hello/v1/hello_pb.js";
import { MessageSchema, MessageService, type Message } from "courier-proto/courier/message/v1/message_pb.js";

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (tests/sdk/ts/run sets it)`);
  return value;
}

const addr = required("COURIER_ADDR");
const ca = readFileSync(required("COURIER_CA"));
const tokensDir = required("COURIER_TOKENS_DIR");

function transport(user: string | null): Transport {
  const interceptors: Interceptor[] = [];
  if (user !== null) {
    const token = readFileSync(`${tokensDir}/${user}.token`, "utf8").trim();
    interceptors.push((next) => async (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    });
  }
  return createGrpcTransport({
    baseUrl: `https://${addr}`,
    nodeOptions: { ca, servername: "localhost" },
    interceptors,
  });
}

test("unary: Hello answers and echoes metadata, text and binary", async () => {
  const client = createClient(SayHelloService, transport("jack"));
  let headers: Headers | undefined;
  const response: HelloResponse = await client.hello(
    { name: "typescript" },
    {
      headers: {
        "x-request-id": "ts-consumer-1",
        "x-echo-note": "from node",
        "x-echo-blob-bin": Buffer.from([0, 1, 255]).toString("base64"),
      },
      onHeader: (h) => (headers = h),
    },
  );
  assert.equal(response.msg, "hello world! typescript");
  assert.equal(headers?.get("x-request-id"), "ts-consumer-1");
  assert.equal(headers?.get("x-echo-note"), "from node");
  assert.deepEqual([...Buffer.from(headers?.get("x-echo-blob-bin") ?? "", "base64")], [0, 1, 255]);
});

test("a call without a token is UNAUTHENTICATED", async () => {
  const client = createClient(SayHelloService, transport(null));
  await assert.rejects(client.hello({ name: "nobody" }), (error: unknown) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.Unauthenticated);
    return true;
  });
});

// The server is fresh (with-demo-server), so mike's queue holds exactly what this test sends.
test("client streaming SendMessage counts; server streaming ReceiveMessage delivers them in order", async () => {
  const texts = ["one", "two", "three"].map((n) => `message ${n} from typescript`);
  const sender = createClient(MessageService, transport("jack"));
  async function* requests() {
    for (const content of texts) {
      yield { message: { from: "jack", to: "mike", content } };
    }
  }
  const sent = await sender.sendMessage(requests());
  assert.equal(sent.count, 3n);

  const receiver = createClient(MessageService, transport("mike"));
  let trailers: Headers | undefined;
  const received: Message[] = [];
  const stream = receiver.receiveMessage(
    { user: "mike", idleTimeout: { seconds: 1n, nanos: 0 } },
    { onTrailer: (t) => (trailers = t) },
  );
  for await (const response of stream) {
    assert.ok(response.message, "every response carries a message");
    received.push(response.message);
  }
  assert.deepEqual(
    received.map(({ from, to, content }) => ({ from, to, content })),
    texts.map((content) => ({ from: "jack", to: "mike", content })),
  );
  assert.equal(new Set(received.map((m) => m.id)).size, 3, "three distinct ids");
  for (const message of received) {
    assert.ok(message.id !== "" && message.sentAt, "id and sentAt are assigned");
    // The proto3 JSON of a delivered message, through the package's schema: sentAt ends in Z.
    const json = JSON.parse(toJsonString(MessageSchema, message));
    assert.match(json.sentAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$/);
  }
  assert.equal(trailers?.get("x-message-count"), "3");
});

// Chat shares the users' queues: it runs after the test above has emptied mike's (node:test runs
// a file's tests one after another).
test("bidirectional streaming: Chat relays one line each way and ends cleanly", async () => {
  function chat(user: string, peer: string) {
    const client = createClient(ChatService, transport(user));
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    // Sends one line, then half-closes once the peer's line has arrived.
    async function* requests(): AsyncGenerator<ChatRequest> {
      yield create(ChatRequestSchema, { message: { from: user, to: peer, content: `${user} to ${peer}` } });
      await done;
    }
    let trailers: Headers | undefined;
    const responses = client.chat(requests(), { onTrailer: (t) => (trailers = t) });
    return (async () => {
      const got: { from: string; to: string; content: string }[] = [];
      for await (const response of responses) {
        const { from, to, content } = response.message ?? { from: "", to: "", content: "" };
        got.push({ from, to, content });
        release();
      }
      return { got, trailers };
    })();
  }
  const [jack, mike] = await Promise.all([chat("jack", "mike"), chat("mike", "jack")]);
  assert.deepEqual(jack.got, [{ from: "mike", to: "jack", content: "mike to jack" }]);
  assert.deepEqual(mike.got, [{ from: "jack", to: "mike", content: "jack to mike" }]);
  assert.equal(jack.trailers?.get("x-message-count"), "1");
  assert.equal(mike.trailers?.get("x-message-count"), "1");
});
