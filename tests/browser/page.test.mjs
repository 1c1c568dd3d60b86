// The chat page in a real browser: Debian's Chromium, driven by playwright-core, against
// courier-server with TLS and token auth (`make browser-test`; needs the debug binaries).
//
// One server for the whole file, restarted on the same port and data directory in the middle;
// the tests run in order and build on each other's conversation.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";

import {
  CourierServer,
  assertOrderedOnce,
  demoSetup,
  eventually,
  launchChromium,
  mkdirs,
  openPage,
  otherOrigin,
  root,
  send,
  shown,
  signIn,
  waitForConversation,
  waitForState,
} from "./harness.mjs";

const out = mkdirs(join(root, "target/browser"));
const SCREENSHOT = join(out, "conversation.png");

let setup;
let server;
let browser;
let allowed;
let refused;
let jack;
let mike;

before(async () => {
  rmSync(SCREENSHOT, { force: true });
  setup = await demoSetup(join(out, "server"), ["jack", "mike", "lou"]);
  allowed = await otherOrigin();
  refused = await otherOrigin();
  server = await new CourierServer(setup, ["--cors-origin", allowed.origin]).start();
  browser = await launchChromium(setup.spki);
});

after(async () => {
  await browser?.close();
  await server?.kill();
  await allowed?.close();
  await refused?.close();
});

test("the page is served with its policy and loads without errors", async () => {
  const page = await openPage(browser, `${server.origin}/`);
  const headers = page.served.headers();
  assert.equal(page.served.status(), 200);
  assert.match(headers["content-security-policy"], /script-src 'self';.*frame-ancestors 'none'/);
  assert.equal(headers["x-content-type-options"], "nosniff");
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
  // The server's TLS offers h2 first: the browser speaks HTTP/2, gRPC-Web included.
  const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  assert.equal(protocol, "h2");
  assert.equal(await page.locator("#status").textContent(), "Not connected");
  for (const label of ["User", "Token", "To", "Message"]) {
    assert.equal(await page.getByLabel(label, { exact: true }).count(), 1, label);
  }
  assert.equal(await page.getByRole("log").count(), 1);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("a wrong token, and a token for another user, are refused in words", async () => {
  const page = await openPage(browser, `${server.origin}/`);
  const alert = page.getByRole("alert");

  const says = (pattern) =>
    eventually(`the alert ${pattern}`, async () => pattern.test((await alert.textContent()) ?? ""));

  await signIn(page, "jack", "not-the-token");
  await says(/refused the token for jack \(UNAUTHENTICATED/);
  await waitForState(page, "failed");
  assert.equal(await page.getByRole("button", { name: "Send" }).isDisabled(), true);

  // A user the server has no token for: no token can be right.
  await signIn(page, "zoe", "made-up");
  await says(/refused the token for zoe \(UNAUTHENTICATED.*that zoe is a user/);
  await waitForState(page, "failed");

  // jack's token is no one else's.
  await signIn(page, "mike", setup.tokens.jack);
  await says(/This token is not mike's \(PERMISSION_DENIED/);
  await waitForState(page, "failed");

  // The token never reaches a URL; it stays in this tab's session storage.
  assert.doesNotMatch(page.url(), /token|made-up/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("courier.token")), setup.tokens.jack);
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test("jack and mike converse, each page showing both sides", async () => {
  jack = await openPage(browser, `${server.origin}/`);
  mike = await openPage(browser, `${server.origin}/`);
  await signIn(jack, "jack", setup.tokens.jack);
  await signIn(mike, "mike", setup.tokens.mike);
  await waitForState(jack, "connected");
  await waitForState(mike, "connected");

  await send(jack, "mike", "hi mike");
  await waitForConversation(mike, ["hi mike"]);
  await send(mike, "jack", "hi jack, what's up?");
  await send(mike, "jack", "<b>not bold</b> & not markup");
  const expected = ["hi mike", "hi jack, what's up?", "<b>not bold</b> & not markup"];
  const onJack = await waitForConversation(jack, expected);
  const onMike = await waitForConversation(mike, expected);
  // Both pages show the same messages, with the ids the server assigned.
  assert.deepEqual(onJack, onMike);
  assertOrderedOnce(onJack);
  assert.deepEqual(
    onJack.map(({ from, to }) => `${from}>${to}`),
    ["jack>mike", "mike>jack", "mike>jack"],
  );
  // Text is text: no element was made of it.
  assert.equal(await jack.getByRole("log").locator("b").count(), 0);
});

test("a message sent with the CLI reaches a page", async () => {
  const said = await server.client("jack", ["send", "--from", "jack", "--to", "mike", "sent from the CLI"]);
  assert.equal(said.trim(), "queued 1");
  await waitForConversation(mike, [
    "hi mike",
    "hi jack, what's up?",
    "<b>not bold</b> & not markup",
    "sent from the CLI",
  ]);
});

test("a page's message reaches a CLI receiver", async () => {
  await send(jack, "lou", "for lou, from a browser");
  const onJack = await eventually("jack's post to lou", async () =>
    (await shown(jack)).find((message) => message.content === "for lou, from a browser"),
  );
  const received = await server.client("lou", ["receive", "--user", "lou", "--idle-timeout", "1s"]);
  assert.equal(received.trim(), `#${onJack.id} jack: for lou, from a browser`);
});

test("the pages reconnect across a server restart and show each message once, in order", async () => {
  await send(jack, "mike", "before the restart");
  const before = [
    "hi mike",
    "hi jack, what's up?",
    "<b>not bold</b> & not markup",
    "sent from the CLI",
    "before the restart",
  ];
  await waitForConversation(mike, before);

  // The server goes away: both pages say so and keep trying.
  const { addr } = server;
  await server.stop();
  for (const page of [jack, mike]) {
    await waitForState(page, "lost");
    assert.match(await page.locator("#status").textContent(), /Connection lost|Cannot connect/);
  }
  // While it stays away, the pages say that it cannot be reached.
  await eventually("the page saying the server cannot be reached", async () =>
    /Cannot connect: The server at https:\/\/localhost:\d+ cannot be reached/.test(
      (await jack.locator("#status").textContent()) ?? "",
    ),
  );
  // A post written while the server is away waits, retrying with its key.
  await send(jack, "mike", "written during the outage");
  await eventually("the pending post", async () =>
    /Trying again/.test((await jack.locator(".pending .note").textContent()) ?? ""),
  );

  await server.restart();
  assert.equal(server.addr, addr);
  await waitForState(jack, "connected", 30_000);
  await waitForState(mike, "connected", 30_000);

  // The post written during the outage arrives once the server is back, once.
  await waitForConversation(mike, [...before, "written during the outage"], 30_000);
  await send(mike, "jack", "back again");
  const all = [...before, "written during the outage", "back again"];
  const onMike = await waitForConversation(mike, all, 30_000);
  assertOrderedOnce(onMike);
  // jack's page shows what he posted (to lou too) and what came to him, not the CLI's message.
  const onJack = await waitForConversation(
    jack,
    [
      "hi mike",
      "hi jack, what's up?",
      "<b>not bold</b> & not markup",
      "for lou, from a browser",
      "before the restart",
      "written during the outage",
      "back again",
    ],
    30_000,
  );
  assertOrderedOnce(onJack);
  assert.equal(await jack.locator(".pending").count(), 0);

  // The server queued the outage post once: mike's queue holds nothing more.
  const rest = await server.client("mike", [
    "receive", "--user", "mike", "--idle-timeout", "1s",
    "--after-id", onMike.at(-2).id,
  ]);
  assert.equal(rest.trim(), "", "mike's queue after the outage post");

  for (const page of [jack, mike]) {
    assert.deepEqual(page.problems, []);
  }
});

/** What a page's log counts: messages delivered again that it had shown already (and ignored). */
const repeats = async (page) => Number((await page.getByRole("log").getAttribute("data-repeats")) ?? 0);

test("after a crash the pages show each message once, though the server repeats some", async () => {
  const before = [...(await shown(mike)).map((message) => message.content), "before the crash"];
  await send(jack, "mike", "before the crash");
  await waitForConversation(mike, before);

  // SIGKILL: the server's record of what it delivered is older than what the pages show (it is
  // saved every 64 deliveries and at shutdown), and a resume with after_id replays after that
  // id and then goes on from the record: the server repeats what it delivered since it last
  // saved the record (at-least-once), and the pages show each message once all the same.
  const repeatedBefore = { jack: await repeats(jack), mike: await repeats(mike) };
  await server.crash();
  for (const page of [jack, mike]) {
    await waitForState(page, "lost");
  }
  await server.restart();
  await waitForState(jack, "connected", 30_000);
  await waitForState(mike, "connected", 30_000);

  await send(jack, "mike", "after the crash");
  const onMike = await waitForConversation(mike, [...before, "after the crash"], 30_000);
  assertOrderedOnce(onMike);
  const onJack = await shown(jack);
  assertOrderedOnce(onJack);
  assert.equal(onJack.at(-1).content, "after the crash");
  console.log(
    `delivered again after the crash, and shown once: ${await repeats(mike) - repeatedBefore.mike} ` +
      `to mike, ${await repeats(jack) - repeatedBefore.jack} to jack`,
  );

  await jack.screenshot({ path: SCREENSHOT, fullPage: true });
  for (const page of [jack, mike]) {
    assert.deepEqual(page.problems, []);
  }
});

test("a post whose answer is lost is tried again with its key and queued once", async () => {
  // lou's context lets playwright fetch on the page's behalf (its own TLS client trusts no
  // throwaway CA), so the first PostMessage reaches the server and its answer is then dropped.
  const lou = await openPage(browser, `${server.origin}/`, { ignoreHTTPSErrors: true });
  const posts = [];
  lou.on("request", (request) => {
    if (request.url().endsWith("/PostMessage")) {
      posts.push(request.postDataBuffer().toString("base64"));
    }
  });
  let answered;
  await lou.route(
    "**/courier.message.v1.MessageService/PostMessage",
    async (route) => {
      answered = await route.fetch();
      await route.abort("connectionreset");
    },
    { times: 1 },
  );
  await signIn(lou, "lou", setup.tokens.lou);
  await waitForState(lou, "connected");
  await send(lou, "mike", "my first answer was lost");

  const onLou = await waitForConversation(lou, ["my first answer was lost"]);
  assert.equal(answered.status(), 200, "the first try reached the server");
  assert.equal(posts.length, 2, "one try, one retry");
  assert.equal(posts[0], posts[1], "the retry is the same request: same message, same key");
  const onMike = await eventually("lou's message on mike's page", async () => {
    const messages = (await shown(mike)).filter((message) => message.from === "lou");
    return messages.length > 0 && messages;
  });
  assert.deepEqual(onMike, onLou);
  // Nothing more arrives: the retry queued nothing.
  await new Promise((done) => setTimeout(done, 1000));
  assert.equal((await shown(mike)).filter((message) => message.from === "lou").length, 1);
  assert.deepEqual(lou.problems, []);
  await lou.context().close();
});

test("another origin is refused unless the server lists it", async () => {
  const hello = async (origin) => {
    const page = await openPage(browser, `${origin}/`);
    const answer = await page.evaluate(
      async ({ url, token }) => {
        const name = new TextEncoder().encode("cors");
        const body = new Uint8Array([0, 0, 0, 0, name.length + 2, 0x0a, name.length, ...name]);
        try {
          const response = await fetch(url, {
            method: "POST",
            body,
            headers: {
              "content-type": "application/grpc-web+proto",
              "x-grpc-web": "1",
              authorization: `Bearer ${token}`,
            },
          });
          const text = new TextDecoder().decode(await response.arrayBuffer());
          return { status: response.status, requestId: response.headers.get("x-request-id"), text };
        } catch (error) {
          return { error: String(error) };
        }
      },
      { url: `${server.origin}/courier.hello.v1.SayHelloService/Hello`, token: setup.tokens.jack },
    );
    await page.context().close();
    return answer;
  };

  const listed = await hello(allowed.origin);
  assert.equal(listed.status, 200, JSON.stringify(listed));
  assert.match(listed.text, /hello world! cors/);
  assert.match(listed.text, /grpc-status:0/);
  assert.ok(listed.requestId, "x-request-id is exposed to the listed origin");

  const other = await hello(refused.origin);
  assert.deepEqual(other, { error: "TypeError: Failed to fetch" });
});

test("the page also works in plaintext on loopback, over HTTP/1.1", async () => {
  const plain = await demoSetup(join(out, "plaintext"), ["jack"]);
  const loopback = await new CourierServer(plain, [], { tls: false }).start();
  try {
    const page = await openPage(browser, `${loopback.origin}/`);
    assert.equal(page.served.request().url(), `${loopback.origin}/`);
    assert.equal(await page.evaluate(() => window.isSecureContext), true, "loopback is a secure context");
    await signIn(page, "jack", plain.tokens.jack);
    await waitForState(page, "connected");
    await send(page, "jack", "a note to self");
    // Once from the answer to the post, once from the stream: shown once.
    const notes = await waitForConversation(page, ["a note to self"]);
    assert.equal(notes[0].from, "jack");
    await eventually("the stream's copy", async () => (await repeats(page)) === 1);
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    assert.equal(protocol, "http/1.1");
    assert.deepEqual(page.problems, []);
    await page.context().close();
  } finally {
    await loopback.stop();
  }
});

test("the screenshot of the conversation is written", async () => {
  assert.ok(statSync(SCREENSHOT).size > 10_000, SCREENSHOT);
  console.log(`screenshot: ${SCREENSHOT}`);
});
