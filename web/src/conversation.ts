// The conversation: the `role="log"` list, each message once, in the server's order.
//
// Messages come from two places: ReceiveMessage (those addressed to the signed-in user) and
// PostMessage's answers (the user's own, with the id the server assigned). Message ids are
// decimal numbers the server assigns in increasing order, so ordering by id interleaves the
// two as the server queued them. A message whose id is already shown is ignored: a stream that
// resumes with `after_id` may repeat what the server had handed over before the drop.
//
// A post waiting for its answer is shown at the end, marked as sending; its answer puts it in
// its place by id.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Message } from "courier-proto/courier/message/v1/message_pb.js";

/** An entry of the log that is not (yet) a queued message: a post waiting for its answer. */
export interface Pending {
  /** Says what is happening to the post (sending, retrying, not sent). */
  note(text: string, failed: boolean): void;
  /** Offers a way to try again (with the same idempotency key), or takes it away. */
  offerRetry(retry: (() => void) | undefined): void;
  /** Removes the entry (its message is shown in its place, or it was given up). */
  remove(): void;
}

export class Conversation {
  /** Ids shown, with their element. */
  private readonly shown = new Map<string, HTMLElement>();

  constructor(
    private readonly log: HTMLElement,
    private readonly me: () => string,
  ) {}

  /** Shows `message` unless its id is shown already; returns whether it was new. */
  add(message: Message): boolean {
    if (message.id === "") {
      return false;
    }
    if (this.shown.has(message.id)) {
      // Counted where a test (or a curious person) can read it: `data-repeats` on the log.
      this.log.dataset.repeats = String(Number(this.log.dataset.repeats ?? "0") + 1);
      return false;
    }
    const item = this.item(message.from, message.to, message.content);
    item.dataset.id = message.id;
    const time = document.createElement("time");
    if (message.sentAt) {
      const date = timestampDate(message.sentAt);
      time.dateTime = date.toISOString();
      time.textContent = date.toLocaleTimeString();
    }
    item.querySelector(".meta")?.append(" ", time);
    this.shown.set(message.id, item);
    this.log.insertBefore(item, this.following(BigInt(message.id)));
    item.scrollIntoView({ block: "nearest" });
    return true;
  }

  /** Shows a post that has no answer yet, at the end. */
  pending(from: string, to: string, content: string): Pending {
    const item = this.item(from, to, content);
    item.classList.add("pending");
    const status = document.createElement("span");
    status.className = "note";
    item.append(status);
    this.log.append(item);
    item.scrollIntoView({ block: "nearest" });
    let button: HTMLButtonElement | undefined;
    return {
      note(text, failed) {
        status.textContent = text;
        item.classList.toggle("failed", failed);
      },
      offerRetry(retry) {
        button?.remove();
        button = undefined;
        if (retry) {
          button = document.createElement("button");
          button.type = "button";
          button.textContent = "Retry";
          button.addEventListener("click", retry, { once: true });
          item.append(button);
        }
      },
      remove() {
        item.remove();
      },
    };
  }

  /** Empties the log (another user signed in). */
  clear(): void {
    this.shown.clear();
    this.log.replaceChildren();
    delete this.log.dataset.repeats;
  }

  /**
   * The element the message `id` goes before: the one after the last shown message with a
   * smaller id (pending posts stay at the end). Searched from the end, where new messages go.
   */
  private following(id: bigint): Element | null {
    for (let child = this.log.lastElementChild; child; child = child.previousElementSibling) {
      const other = (child as HTMLElement).dataset.id;
      if (other !== undefined && BigInt(other) < id) {
        return child.nextElementSibling;
      }
    }
    return this.log.firstElementChild;
  }

  private item(from: string, to: string, content: string): HTMLElement {
    const item = document.createElement("li");
    item.className = from === this.me() ? "message out" : "message in";
    const meta = document.createElement("span");
    meta.className = "meta";
    const sender = document.createElement("span");
    sender.className = "from";
    sender.textContent = from;
    const recipient = document.createElement("span");
    recipient.className = "to";
    recipient.textContent = to;
    meta.append(sender, " → ", recipient);
    const text = document.createElement("p");
    text.className = "content";
    text.textContent = content;
    item.append(meta, text);
    return item;
  }
}
