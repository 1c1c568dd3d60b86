// What the browser tests share: a courier-server process that can be stopped and started again
// on the same port and data directory (the page's origin includes the port), the CLI, small
// HTTP servers that play other origins, and Debian's Chromium driven by playwright-core.
//
// The server runs as in `make run-web`: TLS with a throwaway CA (courier-demo-setup) and token
// auth. Chromium is told to accept exactly that server's key, by the SHA-256 of its
// SubjectPublicKeyInfo (`--ignore-certificate-errors-spki-list`), rather than all certificate
// errors, so the pages are real https:// pages (secure contexts, HTTP/2 through ALPN) served by
// the server's own TLS.
import { execFile, spawn } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { createServer } from "node:http";
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { chromium } from "playwright-core";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = (name) => join(root, "target/debug", name);
const run = promisify(execFile);

/** Debian's Chromium; playwright-core never downloads one. */
export const CHROMIUM = process.env.COURIER_CHROMIUM ?? "/usr/bin/chromium";

/** Polls `probe` until it returns a truthy value; fails with `what` and the last value after `ms`. */
export async function eventually(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}; last seen: ${JSON.stringify(last)}`);
    }
    await sleep(100);
  }
}

/**
 * A throwaway CA, server certificate and tokens for `users` in `dir` (courier-demo-setup, as
 * `make run-demo` does): `{ dir, tokens: { user: token }, ca, spki }`.
 */
export async function demoSetup(dir, users) {
  rmSync(dir, { recursive: true, force: true });
  await run(bin("courier-demo-setup"), ["--out", dir, "--users", users.join(",")]);
  const tokens = Object.fromEntries(
    users.map((user) => [user, readFileSync(join(dir, `${user}.token`), "utf8").trim()]),
  );
  return { dir, tokens, ca: join(dir, "ca.pem"), spki: spkiHash(join(dir, "server.pem")) };
}

/** The base64 SHA-256 of a certificate's SubjectPublicKeyInfo, as Chromium's SPKI list takes it. */
export function spkiHash(pemFile) {
  const spki = new X509Certificate(readFileSync(pemFile)).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

/**
 * courier-server with TLS (unless `tls` is false: plaintext on loopback), tokens and a data
 * directory, stopped and started as a test needs.
 */
export class CourierServer {
  constructor(setup, extraArgs = [], { tls = true } = {}) {
    this.setup = setup;
    this.extraArgs = extraArgs;
    this.tls = tls;
    this.process = undefined;
    this.addr = undefined;
    this.log = join(setup.dir, "server.log");
  }

  /** The page's origin: `https://localhost:<port>`, or `http://127.0.0.1:<port>` without TLS. */
  get origin() {
    return this.tls ? `https://localhost:${this.addr.split(":").pop()}` : `http://${this.addr}`;
  }

  /** Starts on `listen` (an ephemeral port the first time) and waits for the address file. */
  async start(listen = "127.0.0.1:0") {
    const { dir } = this.setup;
    const addrFile = join(dir, "addr");
    rmSync(addrFile, { force: true });
    const log = createWriteStream(this.log, { flags: "a" });
    await new Promise((done) => log.on("open", done));
    const child = spawn(
      bin("courier-server"),
      [
        "--listen", listen,
        "--addr-file", addrFile,
        "--data-dir", join(dir, "data"),
        ...(this.tls ? ["--tls-cert", join(dir, "server.pem"), "--tls-key", join(dir, "server.key")] : []),
        "--tokens", join(dir, "tokens"),
        "--shutdown-grace", "5s",
        ...this.extraArgs,
      ],
      { stdio: ["ignore", "ignore", log] },
    );
    const exited = new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
    this.process = { child, exited };
    const started = await Promise.race([
      eventually(`${addrFile}`, () => existsSync(addrFile) && readFileSync(addrFile, "utf8"), 15_000),
      exited.then(({ code, signal }) => {
        throw new Error(`courier-server exited (${code ?? signal}) before listening; see ${this.log}`);
      }),
    ]);
    this.addr = started.trim();
    return this;
  }

  /** SIGTERM, then the exit, which must be clean. */
  async stop() {
    const { child, exited } = this.process;
    this.process = undefined;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const { code, signal } = await exited;
    clearTimeout(timer);
    if (code !== 0) {
      throw new Error(`courier-server exited with ${code ?? signal} after SIGTERM; see ${this.log}`);
    }
  }

  /** Stops (if running), then starts again on the same address and data directory. */
  async restart() {
    const addr = this.addr;
    if (this.process) {
      await this.stop();
    }
    // The port is free once the process is gone; try again briefly should the OS disagree.
    for (let tries = 1; ; tries += 1) {
      try {
        return await this.start(addr);
      } catch (error) {
        if (tries >= 20) {
          throw error;
        }
        await sleep(250);
      }
    }
  }

  /** SIGKILL: a crash, which saves nothing it had not saved. */
  async crash() {
    const { child, exited } = this.process;
    this.process = undefined;
    child.kill("SIGKILL");
    await exited;
  }

  /** Stops the server if it runs, ignoring how it ends (for cleanup after a failure). */
  async kill() {
    if (this.process) {
      this.process.child.kill("SIGKILL");
      await this.process.exited;
      this.process = undefined;
    }
  }

  /** Runs `courier-client` against this server as `user`; resolves to its stdout. */
  async client(user, args) {
    const { stdout } = await run(
      bin("courier-client"),
      this.tls
        ? ["--addr", `https://${this.addr}`, "--ca", this.setup.ca, "--domain", "localhost", ...args]
        : ["--addr", `http://${this.addr}`, ...args],
      { env: { ...process.env, COURIER_TOKEN: this.setup.tokens[user] }, timeout: 30_000 },
    );
    return stdout;
  }
}

/** An HTTP server on loopback that plays another origin: it serves an empty page at `/`. */
export async function otherOrigin() {
  const server = createServer((request, response) => {
    response.writeHead(request.url === "/" ? 200 : 404, { "content-type": "text/html; charset=utf-8" });
    response.end("<!doctype html><title>another origin</title>");
  });
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((done) => server.close(done)),
  };
}

/** Chromium, headless, with a fresh profile (playwright makes one per launch), trusting `spki`. */
export async function launchChromium(spki) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium package (make tools does, as root)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      `--ignore-certificate-errors-spki-list=${spki}`,
    ],
  });
}

/**
 * A page in a context of its own (its own session storage), with what went wrong in it
 * recorded: uncaught errors, and console messages about the Content-Security-Policy.
 */
export async function openPage(browser, url, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 760 }, ...contextOptions });
  const page = await context.newPage();
  page.problems = [];
  page.on("pageerror", (error) => page.problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    if (/content security policy|refused to (load|execute|apply)/i.test(message.text())) {
      page.problems.push(`CSP: ${message.text()}`);
    }
  });
  const response = await page.goto(url);
  page.served = response;
  return page;
}

/** Fills in User and Token and presses Connect. */
export async function signIn(page, user, token) {
  await page.getByLabel("User", { exact: true }).fill(user);
  await page.getByLabel("Token", { exact: true }).fill(token);
  await page.getByRole("button", { name: "Connect" }).click();
}

/** The state the status line shows: idle, connecting, connected, lost or failed. */
export function connectionState(page) {
  return page.locator("#status").getAttribute("data-state");
}

export async function waitForState(page, state, ms = 20_000) {
  await eventually(`status ${state}`, async () => (await connectionState(page)) === state && state, ms);
}

/** Fills in To and Message and presses Send. */
export async function send(page, to, text) {
  await page.getByLabel("To", { exact: true }).fill(to);
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

/** The messages the conversation (role="log") shows, in its order: `{ id, from, to, content }`. */
export function shown(page) {
  return page.getByRole("log").locator("li[data-id]").evaluateAll((items) =>
    items.map((item) => ({
      id: item.dataset.id,
      from: item.querySelector(".from").textContent,
      to: item.querySelector(".to").textContent,
      content: item.querySelector(".content").textContent,
    })),
  );
}

/** Waits until the page shows exactly `contents`, in that order; returns what it shows. */
export async function waitForConversation(page, contents, ms = 20_000) {
  let last = [];
  try {
    return await eventually(
      `the conversation ${JSON.stringify(contents)}`,
      async () => {
        last = await shown(page);
        const seen = last.map((message) => message.content);
        return JSON.stringify(seen) === JSON.stringify(contents) && last;
      },
      ms,
    );
  } catch (error) {
    error.message += `\nshown: ${JSON.stringify(last.map((message) => message.content))}`;
    throw error;
  }
}

/** Checks that the shown ids are distinct and increasing. */
export function assertOrderedOnce(messages) {
  const ids = messages.map((message) => BigInt(message.id));
  for (let i = 1; i < ids.length; i += 1) {
    if (!(ids[i - 1] < ids[i])) {
      throw new Error(`ids out of order or repeated: ${messages.map((message) => message.id).join(", ")}`);
    }
  }
}

export function mkdirs(path) {
  mkdirSync(path, { recursive: true });
  return path;
}
