/* The vote outbox: votes wait here, in localStorage, until the server has acknowledged them. A vote that cannot
 * be sent is retried (5xx, no answer, 429 with its Retry-After), kept on the device when the retries give up,
 * and never dropped without a message saying so.
 *
 * A nope's reason (optional, one tap) waits here too, behind its own vote, but never in front of another: votes go
 * first (flush), reasons in a loop of their own once their vote is acknowledged. A reason is a nicety: one the
 * server refuses, or that still fails after the retries, is dropped without a word.
 */
import { detailOf, request, sleep } from "../api.js";

const QUEUE_KEY = "vsearch.pendingVotes.v1";
const QUEUE_MAX = 100;
// 5xx or network failure while sending a vote: three more tries over about 7 s, then keep it queued.
export const RETRY_DELAYS_MS = [1000, 2000, 4000];
export const MAX_THROTTLE_WAITS = 10;
const DEFAULT_RETRY_AFTER_S = 2;
const MAX_RETRY_AFTER_S = 60;

/** Milliseconds to wait from a Retry-After header (seconds or a date), bounded. */
export function retryAfterMs(header) {
  let seconds = DEFAULT_RETRY_AFTER_S;
  if (header) {
    const n = Number(header);
    if (Number.isFinite(n)) seconds = n;
    else {
      const at = Date.parse(header);
      if (!Number.isNaN(at)) seconds = (at - Date.now()) / 1000;
    }
  }
  return Math.round(Math.min(Math.max(seconds, 0.5), MAX_RETRY_AFTER_S) * 1000);
}

export class Outbox {
  /**
   * url: where votes are POSTed. Callbacks:
   *   onSaved(item, data): the server acknowledged a vote (data: its answer);
   *   say(text, options): a message for the status line (see StatusLine.say);
   *   onChange(): busy or stuck changed (the page updates its controls).
   */
  constructor({ url, reasonUrl = "", onSaved, say, onChange, isStatusSticky = () => false }) {
    this.url = url;
    this.reasonUrl = reasonUrl;
    this.sendingReasons = null; // the running reason loop, if any
    this.onSaved = onSaved;
    this.say = say;
    this.onChange = onChange;
    this.isStatusSticky = isStatusSticky;
    this.queue = this.load(); // votes not yet acknowledged by the server, oldest first
    this.flushing = null; // the running flush, if any
    this.stuck = false; // the retries gave up; the queue holds votes that still need sending
  }

  /** Votes not yet acknowledged (reasons are not counted: they are never "unsent votes"). */
  get length() {
    return this.votes().length;
  }

  votes() {
    return this.queue.filter((item) => item.kind !== "reason");
  }

  get busy() {
    return this.flushing !== null;
  }

  load() {
    try {
      const items = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(items)
        ? items.filter(
            (v) =>
              v &&
              typeof v.token === "string" &&
              (v.kind === "reason" ? typeof v.reason === "string" : v.verdict === "dope" || v.verdict === "nope"),
          )
        : [];
    } catch {
      return [];
    }
  }

  save() {
    try {
      if (this.queue.length) localStorage.setItem(QUEUE_KEY, JSON.stringify(this.queue));
      else localStorage.removeItem(QUEUE_KEY);
    } catch {
      // Storage full or disabled (private browsing): the in-memory queue still retries.
    }
  }

  push(item) {
    this.queue.push(item);
    if (this.queue.length > QUEUE_MAX) this.queue.splice(0, this.queue.length - QUEUE_MAX);
    this.save();
  }

  /** Takes back the newest vote that never reached the server (and its reason, if one was tapped). */
  pop() {
    const votes = this.votes();
    const item = votes[votes.length - 1];
    if (!item) return undefined;
    this.queue = this.queue.filter((v) => v !== item && !(v.kind === "reason" && v.token === item.token));
    this.save();
    if (!this.length) this.stuck = false;
    return item;
  }

  /** Why the voter said nope to the card of `token`: sent once its vote is acknowledged, never before one. */
  pushReason(token, reason) {
    this.queue = this.queue.filter((v) => !(v.kind === "reason" && v.token === token)); // a second tap replaces
    this.push({ kind: "reason", token, reason });
    this.sendReasons();
  }

  /** Sends the reasons whose vote has been acknowledged, one at a time, beside (never in front of) the votes. */
  sendReasons() {
    if (!this.sendingReasons && this.reasonUrl) {
      this.sendingReasons = this.sendReasonsNow().finally(() => {
        this.sendingReasons = null;
      });
    }
    return this.sendingReasons;
  }

  async sendReasonsNow() {
    for (;;) {
      const pending = new Set(this.votes().map((v) => v.token));
      const item = this.queue.find((v) => v.kind === "reason" && !pending.has(v.token));
      if (!item) return;
      let r = null;
      for (let attempt = 0; attempt <= RETRY_DELAYS_MS.length; attempt++) {
        r = await request("POST", this.reasonUrl, { token: item.token, reason: item.reason });
        if (r.ok || (r.status >= 400 && r.status < 500 && r.status !== 429)) break;
        if (attempt < RETRY_DELAYS_MS.length) await sleep(RETRY_DELAYS_MS[attempt]);
      }
      if (this.queue.includes(item)) this.remove(item); // sent, refused, or given up on: a reason is optional
    }
  }

  remove(item) {
    this.queue = this.queue.filter((v) => v !== item);
    this.save();
  }

  /** Sends what is queued; one flush at a time. Resolves true when the queue is empty, false when it gave up. */
  flush() {
    if (!this.flushing) {
      this.flushing = this.send().finally(() => {
        this.flushing = null;
        this.onChange();
        this.sendReasons(); // reasons whose vote was settled (saved or refused) meanwhile
      });
      this.onChange();
    }
    return this.flushing;
  }

  async send() {
    let failures = 0;
    let throttled = 0;
    const say = this.say;
    while (this.length) {
      const item = this.votes()[0];
      const r = await request("POST", this.url, { token: item.token, verdict: item.verdict, shown_ms: item.shown_ms });
      item.attempts = (item.attempts || 0) + 1;
      if (r.ok) {
        this.remove(item);
        failures = 0;
        const wasInTrouble = this.stuck || this.isStatusSticky();
        this.stuck = false;
        this.onSaved(item, r.data);
        if (wasInTrouble) say("Your vote is saved.", { ttl: 3000 });
        this.sendReasons(); // a reason waiting for this vote may go now
        continue;
      }
      if (r.status === 409) {
        // Already counted: after a retry that is our own earlier attempt getting through.
        this.remove(item);
        if (item.attempts === 1) say(detailOf(r, "You had already judged that pair."), { ttl: 4000 });
        this.stuck = false;
        continue;
      }
      if (r.status === 400) {
        this.remove(item);
        say(`${detailOf(r, "That pair had expired.")} That vote was not counted; here is a fresh pair.`, {
          tone: "warning",
          ttl: 8000,
        });
        continue;
      }
      if (r.status === 429 && throttled++ < MAX_THROTTLE_WAITS) {
        const ms = retryAfterMs(r.retryAfter);
        say(`Easy there! Sending your vote in ${Math.ceil(ms / 1000)} s…`, { tone: "warning", sticky: true });
        await sleep(ms);
        continue;
      }
      if (r.status === 0 || r.status >= 500 || r.status === 429) {
        if (failures < RETRY_DELAYS_MS.length) {
          const ms = RETRY_DELAYS_MS[failures++];
          say(`Could not save your vote yet (${detailOf(r, `error ${r.status}`)}). Trying again in ${ms / 1000} s…`, {
            tone: "warning",
            sticky: true,
          });
          await sleep(ms);
          continue;
        }
        this.save();
        this.stuck = true;
        const n = this.length;
        say(`${n === 1 ? "Vote" : `${n} votes`} not saved yet: kept on this device, sent with your next vote.`, {
          tone: "error",
          sticky: true,
        });
        return false;
      }
      // Any other refusal (403, 404…) will not change on a retry: say so instead of dropping it quietly.
      this.remove(item);
      say(`Your vote was not counted: ${detailOf(r, `the server answered ${r.status}.`)}`, {
        tone: "error",
        sticky: true,
      });
    }
    return true;
  }
}
