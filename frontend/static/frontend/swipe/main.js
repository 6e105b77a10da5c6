/* Dope or Nope, the swipe page.
 *
 * One card at a time: a query item and the match some hidden model suggested for it. Drag the card
 * right (dope) or left (nope), or use the buttons or the arrow keys. The next pair and its pictures are
 * fetched while the current card is shown, so it appears at once. Votes go through the outbox (outbox.js):
 * a vote that cannot be sent is retried, and never dropped without a visible message.
 *
 * document.body.dataset.state is one of loading | ready | sending | done | empty | error
 * ("ready": a card is shown, has finished coming in, and input is accepted). Browser tests wait on it.
 *
 * Modules: card.js draws (card, notice, status line), gestures.js listens (drag, keys), outbox.js sends votes;
 * this file decides what happens next.
 */
import { detailOf, request, sleep } from "../api.js";
import { CardView, StatusLine, preloadImage } from "./card.js";
import { attachDrag, attachKeys } from "./gestures.js";
import { MAX_THROTTLE_WAITS, Outbox, RETRY_DELAYS_MS, retryAfterMs } from "./outbox.js";

const API = { next: "/api/pairs/next", vote: "/api/votes", undo: "/api/votes/undo", reason: "/api/votes/reason" };
const ABOUT_KEY = "vsearch.aboutSeen";
const EMPTY_POLL_MS = 15000;
const RECENT_MAX = 20;

const $ = (id) => document.getElementById(id);
const view = new CardView();
const status = new StatusLine($("status"));
const say = (text, options = {}) => {
  if (options.sticky || options.tone === "error") hideReasons(); // news about votes in trouble keeps the line
  status.say(text, options);
};
const sendAgainButton = $("send-again");
const dopeButton = $("dope");
const nopeButton = $("nope");
const undoButton = $("undo");
const undoTimer = $("undo-timer");
const countEl = document.querySelector("[data-testid=vote-count]");
const reasonsEl = $("reasons");
const reasonsThumb = $("reasons-thumb");
// The reason chips stay this long after a nope (or until the next verdict): long enough to tap, short enough to
// be gone before they could be taken for a question about the next card.
const REASONS_MS = 6000;

let state = "loading";
let current = null; // the pair on the card, not yet judged: {token, query, match}
let shownAt = 0;
let upcoming = null; // the prefetched next pair: {promise, result}
let undoUntil = 0;
let undoClose = 0;
let lastVerdict = "dope";
let pollTimer = 0;
const recent = []; // keys of pairs judged lately, so a prefetch that raced a vote is not shown again
let reasonsFor = null; // the token of the nope the chips are for
let reasonsTimer = 0;

const outbox = new Outbox({
  url: API.vote,
  reasonUrl: API.reason,
  say,
  onChange: () => updateControls(),
  isStatusSticky: () => status.sticky,
  onSaved: (item, data) => {
    setCount(data.votes_cast);
    lastVerdict = item.verdict;
    openUndoWindow(data.undo_seconds);
    if (data.next && !upcoming) offerUpcoming(data.next);
  },
});

const pairKey = (pair) => `${pair.query.image}\n${pair.match.image}`;

function pairFrom(data) {
  if (!data || typeof data.token !== "string" || !data.query || !data.match) return null;
  return { token: data.token, query: { image: data.query.image }, match: { image: data.match.image } };
}

// ---------- state and controls ----------

function setState(next) {
  state = next;
  document.body.dataset.state = next;
  view.setBusy(next === "loading");
  updateControls();
}

function setButton(button, mode) {
  // "busy" keeps the button focusable (aria-disabled) so keyboard focus survives a vote being sent.
  button.disabled = mode === "off";
  if (mode === "on") button.removeAttribute("aria-disabled");
  else button.setAttribute("aria-disabled", "true");
}

function updateControls() {
  const verdictMode = state === "ready" ? "on" : view.hidden ? "off" : "busy";
  setButton(dopeButton, verdictMode);
  setButton(nopeButton, verdictMode);
  if (canUndo()) undoButton.removeAttribute("aria-disabled");
  else undoButton.setAttribute("aria-disabled", "true");
  sendAgainButton.hidden = !(outbox.stuck && outbox.length && !outbox.busy);
}

function canUndo() {
  if (state === "loading" || state === "sending" || outbox.busy) return false;
  return (outbox.stuck && outbox.length > 0) || Date.now() < undoUntil;
}

function setCount(n) {
  if (Number.isInteger(n) && n >= 0) countEl.textContent = String(n);
}

function openUndoWindow(seconds) {
  clearTimeout(undoClose);
  const ms = Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 0;
  undoUntil = ms ? Date.now() + ms : 0;
  undoTimer.style.transition = "none";
  undoTimer.style.transform = ms ? "scaleX(1)" : "scaleX(0)";
  if (ms) {
    void undoTimer.offsetWidth; // start the shrinking bar from full width
    undoTimer.style.transition = `transform ${ms}ms linear`;
    undoTimer.style.transform = "scaleX(0)";
    undoClose = setTimeout(updateControls, ms + 50);
  }
  updateControls();
}

function closeUndoWindow() {
  openUndoWindow(0);
}

// ---------- what is on screen ----------

function showPair(pair, options) {
  current = pair;
  shownAt = performance.now();
  return view.showPair(pair, options);
}

function showLoadingCard() {
  current = null;
  view.showLoading();
}

function showNotice(kind, detail) {
  current = null;
  clearTimeout(pollTimer);
  view.showNotice(kind);
  if (kind === "done") {
    say(detail || "Come back later: new pairs arrive when new models are built.");
  } else if (kind === "empty") {
    say(`${detail || "No model has finished building its matches yet."} Checking again every ${EMPTY_POLL_MS / 1000} s.`);
    pollTimer = setTimeout(() => {
      if (state === "empty") reload();
    }, EMPTY_POLL_MS);
  } else {
    const kept = outbox.length ? " Your unsent votes are kept on this device." : "";
    say(`${detail || "The server did not answer as expected."}${kept}`, { tone: "error" });
  }
  setState(kind);
}

// ---------- fetching pairs ----------

/**
 * GET the next pair and preload both pictures. Never rejects: resolves to
 * {kind: "pair", pair, votesCast} | {kind: "done", detail, votesCast} | {kind: "empty"|"error", detail}.
 * Waits out 429s; onWait(ms) lets the foreground caller say so.
 */
async function fetchPair({ onWait } = {}) {
  let failures = 0;
  for (let throttled = 0; ; ) {
    const r = await request("GET", API.next);
    if (r.status === 200 && r.data.done) {
      return { kind: "done", detail: detailOf(r, ""), votesCast: r.data.votes_cast };
    }
    if (r.status === 200) {
      const pair = pairFrom(r.data);
      if (!pair) return { kind: "error", detail: "The server sent a pair this page cannot show." };
      // Holding the Image objects keeps the decoded pictures alive until the card is shown.
      pair.preloaded = await Promise.all([preloadImage(pair.query.image), preloadImage(pair.match.image)]);
      return { kind: "pair", pair, votesCast: r.data.votes_cast };
    }
    if (r.status === 429 && throttled++ < MAX_THROTTLE_WAITS) {
      const ms = retryAfterMs(r.retryAfter);
      if (onWait) onWait(ms);
      await sleep(ms);
      continue;
    }
    if (r.status === 503) return { kind: "empty", detail: detailOf(r, "") };
    if ((r.status === 0 || r.status >= 500) && failures < RETRY_DELAYS_MS.length - 1) {
      await sleep(RETRY_DELAYS_MS[failures++]);
      continue;
    }
    return { kind: "error", detail: detailOf(r, `The server answered ${r.status || "nothing"}.`) };
  }
}

function prefetch() {
  const entry = { result: null };
  entry.promise = fetchPair().then((result) => (entry.result = result));
  upcoming = entry;
}

/** The card a vote's answer brought (one round trip per vote): it becomes the upcoming one, pictures preloaded. */
function offerUpcoming(next) {
  const entry = { result: null };
  const pair = pairFrom(next);
  if (pair) {
    entry.promise = Promise.all([preloadImage(pair.query.image), preloadImage(pair.match.image)]).then((preloaded) => {
      pair.preloaded = preloaded;
      return (entry.result = { kind: "pair", pair, votesCast: next.votes_cast });
    });
  } else if (next.done) {
    entry.promise = Promise.resolve((entry.result = { kind: "done", detail: detailOf({ data: next }, ""), votesCast: next.votes_cast }));
  } else {
    return;
  }
  upcoming = entry;
}

/** A prefetched pair is worth showing only if it is not one the person judged (or sees) already. */
function usable(result) {
  if (!result || result.kind !== "pair") return false;
  const key = pairKey(result.pair);
  return !recent.includes(key) && !(current && pairKey(current) === key);
}

function remember(pair) {
  recent.push(pairKey(pair));
  if (recent.length > RECENT_MAX) recent.shift();
}

function forget(pair) {
  const i = recent.lastIndexOf(pairKey(pair));
  if (i >= 0) recent.splice(i, 1);
}

function foregroundFetch() {
  return fetchPair({
    onWait: (ms) => say(`Easy there! The next pair comes in ${Math.ceil(ms / 1000)} s.`, { tone: "warning" }),
  });
}

/** Puts a freshly fetched result on screen; "ready" once the card has finished coming in. */
async function present(result) {
  if (result.votesCast !== undefined && outbox.length === 0) setCount(result.votesCast);
  if (result.kind === "pair") {
    const shown = showPair(result.pair);
    status.idle();
    prefetch();
    await shown;
    if (current === result.pair) setState("ready");
  } else {
    showNotice(result.kind, result.detail);
  }
}

async function reload() {
  clearTimeout(pollTimer);
  upcoming = null;
  showLoadingCard();
  setState("loading");
  if (!status.hold) say("Loading a pair…");
  if (outbox.length) await outbox.flush();
  present(await foregroundFetch());
}

// ---------- why nope (optional) ----------

/** After a nope: chips for why, beside a small copy of the rejected match. Never in the way of the next card. */
function offerReasons(item) {
  hideReasons();
  if (status.sticky) return;
  reasonsFor = item.token;
  reasonsThumb.src = item.match.image;
  reasonsEl.hidden = false;
  reasonsTimer = setTimeout(hideReasons, REASONS_MS);
}

function hideReasons() {
  clearTimeout(reasonsTimer);
  reasonsFor = null;
  reasonsEl.hidden = true;
}

function giveReason(reason) {
  if (!reasonsFor) return;
  outbox.pushReason(reasonsFor, reason); // sent once its vote is in, beside the next votes, never before them
  hideReasons();
  status.say("Thanks, noted.", { ttl: 1500 });
}

// ---------- votes ----------

async function judge(verdict) {
  if (state !== "ready" || !current) return;
  const pair = current;
  remember(pair);
  const item = {
    token: pair.token,
    verdict,
    shown_ms: Math.max(0, Math.round(performance.now() - shownAt)),
    query: pair.query,
    match: pair.match,
  };
  outbox.push(item);
  if (verdict === "nope") offerReasons(item);
  else hideReasons();
  closeUndoWindow();
  view.flyOut(verdict);

  // Show the preloaded next pair at once; the vote travels behind it.
  const pending = upcoming;
  upcoming = null;
  current = null;
  const ready = pending && usable(pending.result) ? pending.result.pair : null;
  const shown = ready ? showPair(ready) : null;
  if (!ready) showLoadingCard();
  setState("sending");

  await outbox.flush();

  if (ready) {
    if (!upcoming || (upcoming.result && !usable(upcoming.result))) prefetch(); // the vote's answer brought none
    await shown; // input starts on a card that stands still
    if (current === ready) setState("ready");
    return;
  }
  // The prefetch was late, raced this vote, or said done/empty before the vote landed: ask again.
  const early = pending ? await pending.promise : null;
  // A prefetched count predates this vote; the vote's own answer already set the counter.
  present(usable(early) ? { ...early, votesCast: undefined } : await foregroundFetch());
}

async function undo() {
  if (!canUndo()) return;
  const before = state;
  hideReasons();

  if (outbox.stuck && outbox.length) {
    // The last vote never reached the server: take it back here.
    const item = outbox.pop();
    const pair = { token: item.token, query: item.query, match: item.match };
    forget(pair);
    putBack();
    setState("sending");
    if (outbox.length) {
      const n = outbox.length;
      say(`Vote taken back: judge it again. ${n === 1 ? "One earlier vote" : `${n} earlier votes`} still to send.`, {
        tone: "warning",
        sticky: true,
      });
    } else say("Vote taken back: judge it again.", { ttl: 4000 });
    await showPair(pair, { enter: item.verdict === "dope" ? "is-entering-right" : "is-entering-left" });
    setState("ready");
    return;
  }

  setState("sending");
  const r = await request("POST", API.undo, {});
  closeUndoWindow();
  const pair = r.ok ? pairFrom(r.data) : null;
  if (pair) {
    setCount(r.data.votes_cast);
    forget(pair);
    putBack();
    say("Vote undone: judge it again.", { ttl: 4000 });
    if (!upcoming) prefetch();
    await showPair(pair, { enter: lastVerdict === "dope" ? "is-entering-right" : "is-entering-left" });
    setState("ready");
    return;
  }
  say(detailOf(r, "There is nothing to undo."), { tone: "warning", ttl: 6000 });
  setState(before);
}

/** The card on screen (not judged yet) becomes the next one, behind the pair that came back. */
function putBack() {
  if (current) {
    const result = { kind: "pair", pair: current };
    upcoming = { result, promise: Promise.resolve(result) };
    current = null;
  }
}

// ---------- input ----------

dopeButton.addEventListener("click", () => judge("dope"));
nopeButton.addEventListener("click", () => judge("nope"));
undoButton.addEventListener("click", () => undo());
view.retryButton.addEventListener("click", () => reload());
sendAgainButton.addEventListener("click", async () => {
  const before = state;
  if (before === "ready") setState("sending");
  say("Sending…", { sticky: true });
  await outbox.flush();
  if (state === "sending") setState(before);
  else if (state === "error" && !outbox.length) reload();
});
reasonsEl.addEventListener("click", (event) => {
  const chip = event.target.closest("[data-reason]");
  if (chip) giveReason(chip.dataset.reason);
});
// 1-4 pick a chip while they are shown (the arrow keys go on voting).
document.addEventListener("keydown", (event) => {
  if (reasonsEl.hidden || event.altKey || event.ctrlKey || event.metaKey || event.repeat) return;
  const chip = reasonsEl.querySelectorAll("[data-reason]")[Number(event.key) - 1];
  if (!chip || !/^[1-4]$/.test(event.key)) return;
  event.preventDefault();
  giveReason(chip.dataset.reason);
});
window.addEventListener("online", () => {
  if (outbox.length && !outbox.busy) outbox.flush();
});
attachKeys({ onVerdict: judge, onUndo: undo });
attachDrag(view, {
  canDrag: () => state === "ready" && current !== null,
  isReady: () => state === "ready",
  onVerdict: judge,
});

// ---------- start ----------

const about = $("about");
try {
  if (!localStorage.getItem(ABOUT_KEY)) {
    about.open = true;
    localStorage.setItem(ABOUT_KEY, "1");
  }
} catch {
  about.open = true;
}

if (outbox.length) say("Sending votes saved on this device…", { sticky: true });
outbox.sendReasons(); // reasons left from a visit that ended before they went
reload();
