// Courier's chat page: sign in with a user name and a token, receive through ReceiveMessage
// (server streaming over gRPC-Web), post through PostMessage with an idempotency key.
//
// - The token lives in sessionStorage (this tab only, gone when it closes) and in the
//   `authorization` header of each call; never in a URL, never in the log.
// - The stream reconnects when it drops, with `after_id` = the last message it delivered, after
//   a growing pause (1 s, 2 s, 4 s ... 15 s, with jitter), and says so meanwhile.
// - A post keeps its idempotency key across retries, so a retry after a lost answer never
//   queues the message twice; posts go out one after another, in the order they were written.

import { ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { MessageService } from "courier-proto/courier/message/v1/message_pb.js";

import { Conversation, type Pending } from "./conversation.js";
import { codeName, describe, transient } from "./errors.js";

const USER_KEY = "courier.user";
const TOKEN_KEY = "courier.token";
/** The server's limit on `message.content`, in bytes of UTF-8. */
const MAX_CONTENT_BYTES = 4096;
/** How long a PostMessage may take before it is retried. */
const POST_TIMEOUT_MS = 10_000;
/** Tries of one post before it is shown as not sent (with a Retry button). */
const POST_TRIES = 8;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the page has no #${id}`);
  }
  return found as T;
}

const signIn = element<HTMLFormElement>("sign-in");
const userInput = element<HTMLInputElement>("user");
const tokenInput = element<HTMLInputElement>("token");
const signOutButton = element<HTMLButtonElement>("sign-out");
const statusLine = element<HTMLElement>("status");
const errorLine = element<HTMLElement>("error");
const composer = element<HTMLFormElement>("composer");
const toInput = element<HTMLInputElement>("to");
const messageInput = element<HTMLTextAreaElement>("message");
const sendButton = element<HTMLButtonElement>("send");

type State = "idle" | "connecting" | "connected" | "lost" | "failed";

function setStatus(state: State, text: string): void {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
}

function showError(text: string): void {
  errorLine.textContent = text;
  errorLine.hidden = false;
}

function clearError(): void {
  errorLine.textContent = "";
  errorLine.hidden = true;
}

/** A pause of `ms`, cut short when `signal` aborts or `wakers` are woken. */
function sleep(ms: number, signal: AbortSignal, wakers?: Set<() => void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    wakers?.add(done);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      wakers?.delete(done);
      resolve();
    }
  });
}

/** The pause before try number `failures` + 1: 1 s, doubling up to 15 s, ±20%. */
function backoff(failures: number): number {
  const base = Math.min(15_000, 1000 * 2 ** Math.max(0, failures - 1));
  return Math.round(base * (0.8 + 0.4 * Math.random()));
}

/** A fresh idempotency key: a random UUID (crypto.randomUUID needs a secure context). */
function newKey(): string {
  if (typeof crypto.randomUUID === "function") {
    return crypto.randomUUID();
  }
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** One signed-in user: its client, its receiving stream and its posts. */
class Session {
  readonly stop = new AbortController();
  private readonly client: Client<typeof MessageService>;
  /** The id of the last message the stream delivered: where a reconnect resumes. */
  private lastReceived = "";
  /** The posts, one after another. */
  private posting: Promise<void> = Promise.resolve();
  /** Posts waiting to try again, woken when the stream reconnects. */
  private readonly waiting = new Set<() => void>();

  constructor(
    readonly user: string,
    token: string,
    private readonly conversation: Conversation,
  ) {
    const bearer: Interceptor = (next) => (request) => {
      request.header.set("authorization", `Bearer ${token}`);
      return next(request);
    };
    // Same origin: the page's own server, so no CORS is involved.
    const transport = createGrpcWebTransport({
      baseUrl: location.origin,
      useBinaryFormat: true,
      interceptors: [bearer],
    });
    this.client = createClient(MessageService, transport);
  }

  private describe(error: ConnectError): string {
    return describe(error, this.user, location.origin);
  }

  /** Receives until signed out, reconnecting whenever the stream drops. */
  async receive(): Promise<void> {
    const signal = this.stop.signal;
    let failures = 0;
    while (!signal.aborted) {
      let opened = false;
      let reason: string;
      setStatus(
        "connecting",
        failures === 0 ? `Connecting as ${this.user}…` : `Reconnecting as ${this.user}…`,
      );
      try {
        const stream = this.client.receiveMessage(
          { user: this.user, afterId: this.lastReceived },
          {
            signal,
            onHeader: () => {
              opened = true;
              failures = 0;
              clearError();
              setStatus("connected", `Connected as ${this.user}`);
              composerEnabled(true);
              // The server is back: a post waiting to try again need not wait any longer.
              for (const wake of [...this.waiting]) {
                wake();
              }
            },
          },
        );
        for await (const response of stream) {
          const message = response.message;
          if (message && message.id !== "") {
            this.conversation.add(message);
            this.lastReceived = message.id;
          }
        }
        reason = "The server ended the stream.";
      } catch (caught) {
        if (signal.aborted) {
          return;
        }
        const error = ConnectError.from(caught);
        if (!transient(error)) {
          // Retrying cannot help: a wrong token, a user that is not the token's, a bad name.
          showError(this.describe(error));
          setStatus("failed", `Not connected (${codeName(error.code)})`);
          composerEnabled(false);
          return;
        }
        reason = this.describe(error);
      }
      if (signal.aborted) {
        return;
      }
      failures += 1;
      const pause = backoff(failures);
      const lost = opened ? "Connection lost" : "Cannot connect";
      setStatus("lost", `${lost}: ${reason} Reconnecting in ${Math.ceil(pause / 1000)} s…`);
      await sleep(pause, signal);
    }
  }

  /** Queues a post of `content` to `to` behind the earlier ones. */
  post(to: string, content: string): void {
    const pending = this.conversation.pending(this.user, to, content);
    pending.note("sending…", false);
    const key = newKey();
    this.posting = this.posting.then(() => this.deliver(to, content, key, pending));
  }

  /** Posts until answered, refused or out of tries, always with the same `key`. */
  private async deliver(to: string, content: string, key: string, pending: Pending): Promise<void> {
    const signal = this.stop.signal;
    for (let tries = 1; !signal.aborted; tries += 1) {
      try {
        const answer = await this.client.postMessage(
          { message: { from: this.user, to, content }, idempotencyKey: key },
          { signal, timeoutMs: POST_TIMEOUT_MS },
        );
        pending.remove();
        if (answer.message) {
          this.conversation.add(answer.message);
        }
        return;
      } catch (caught) {
        if (signal.aborted) {
          break;
        }
        const error = ConnectError.from(caught);
        const words = this.describe(error);
        if (!transient(error) || tries >= POST_TRIES) {
          pending.note(`not sent: ${words}`, true);
          showError(`Your message to ${to} was not sent. ${words}`);
          // The same key again: if the server did queue it, the retry answers that message.
          pending.offerRetry(() => {
            pending.offerRetry(undefined);
            pending.note("sending…", false);
            this.posting = this.posting.then(() => this.deliver(to, content, key, pending));
          });
          return;
        }
        const pause = backoff(tries);
        pending.note(`${words} Trying again in ${Math.ceil(pause / 1000)} s…`, false);
        await sleep(pause, signal, this.waiting);
      }
    }
    pending.note("not sent: signed out", true);
  }
}

const conversation = new Conversation(element("log"), () => session?.user ?? "");
let session: Session | undefined;

function composerEnabled(enabled: boolean): void {
  sendButton.disabled = !enabled;
}

function start(user: string, token: string): void {
  session?.stop.abort();
  if (session?.user !== user) {
    conversation.clear();
  }
  clearError();
  sessionStorage.setItem(USER_KEY, user);
  sessionStorage.setItem(TOKEN_KEY, token);
  signOutButton.hidden = false;
  composerEnabled(true);
  session = new Session(user, token, conversation);
  void session.receive();
}

signIn.addEventListener("submit", (event) => {
  event.preventDefault();
  const user = userInput.value.trim();
  const token = tokenInput.value.trim();
  if (user === "" || token === "") {
    showError("Enter a user name and its token.");
    return;
  }
  start(user, token);
});

signOutButton.addEventListener("click", () => {
  session?.stop.abort();
  session = undefined;
  sessionStorage.removeItem(USER_KEY);
  sessionStorage.removeItem(TOKEN_KEY);
  tokenInput.value = "";
  conversation.clear();
  clearError();
  signOutButton.hidden = true;
  composerEnabled(false);
  setStatus("idle", "Not connected");
});

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!session || sendButton.disabled) {
    showError("Connect first.");
    return;
  }
  const to = toInput.value.trim();
  const content = messageInput.value;
  if (to === "" || content.trim() === "") {
    showError("Enter a recipient and a message.");
    return;
  }
  const bytes = new TextEncoder().encode(content).length;
  if (bytes > MAX_CONTENT_BYTES) {
    showError(`The message is ${bytes} bytes long; the server takes at most ${MAX_CONTENT_BYTES}.`);
    return;
  }
  clearError();
  session.post(to, content);
  messageInput.value = "";
  messageInput.focus();
});

// Enter sends, Shift+Enter makes a new line.
messageInput.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});

// A reload of this tab signs in again with what it kept.
const keptUser = sessionStorage.getItem(USER_KEY);
const keptToken = sessionStorage.getItem(TOKEN_KEY);
if (keptUser && keptToken) {
  userInput.value = keptUser;
  tokenInput.value = keptToken;
  start(keptUser, keptToken);
} else {
  setStatus("idle", "Not connected");
}
