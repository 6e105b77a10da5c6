/* Dope or Nope, the swipe page.
 *
 * One card at a time: a query item and the match some hidden model suggested for it. Drag the card
 * right (dope) or left (nope), or use the buttons or the arrow keys. The next pair and its pictures are
 * fetched while the current card is shown, so it appears at once. Votes go through a small queue kept in
 * localStorage: a vote that cannot be sent is retried, and never dropped without a visible message.
 *
 * document.body.dataset.state is one of loading | ready | sending | done | empty | error
 * ("ready": a card is shown, has finished coming in, and input is accepted). Browser tests wait on it.
 */
"use strict";

(() => {
  const API = { next: "/api/pairs/next", vote: "/api/votes", undo: "/api/votes/undo" };
  const QUEUE_KEY = "vsearch.pendingVotes.v1";
  const ABOUT_KEY = "vsearch.aboutSeen";
  const QUEUE_MAX = 100;
  // A drag commits past 30% of the card width, or on a flick: at least 0.6 px/ms (a quick thumb
  // flick measures 1-2 px/ms, a slow drag 0.1-0.3) that has travelled 40 px.
  const SWIPE_FRACTION = 0.3;
  const FLICK_SPEED = 0.6;
  const FLICK_MIN_PX = 40;
  const DRAG_SLOP_PX = 4;
  // 5xx or network failure while sending a vote: three more tries over about 7 s, then keep it queued.
  const RETRY_DELAYS_MS = [1000, 2000, 4000];
  const MAX_THROTTLE_WAITS = 10;
  const DEFAULT_RETRY_AFTER_S = 2;
  const MAX_RETRY_AFTER_S = 60;
  const IMAGE_TIMEOUT_MS = 10000;
  const EMPTY_POLL_MS = 15000;
  const RECENT_MAX = 20;

  const $ = (id) => document.getElementById(id);
  const deck = $("deck");
  const card = $("card");
  const queryImg = $("query-image");
  const matchImg = $("match-image");
  const stampDope = card.querySelector(".stamp-dope");
  const stampNope = card.querySelector(".stamp-nope");
  const notice = $("notice");
  const noticeTitle = $("notice-title");
  const retryButton = $("retry");
  const noticeLeaderboard = $("notice-leaderboard");
  const statusEl = $("status");
  const sendAgainButton = $("send-again");
  const dopeButton = $("dope");
  const nopeButton = $("nope");
  const undoButton = $("undo");
  const undoTimer = $("undo-timer");
  const countEl = document.querySelector("[data-testid=vote-count]");
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  let state = "loading";
  let current = null; // the pair on the card, not yet judged: {token, query, match}
  let shownAt = 0;
  let upcoming = null; // the prefetched next pair: {promise, result}
  let queue = loadQueue(); // votes not yet acknowledged by the server, oldest first
  let flushing = null; // the running flush, if any
  let voteStuck = false; // the queue gave up; it holds votes that still need sending
  let undoUntil = 0;
  let undoClose = 0;
  let lastVerdict = "dope";
  let pollTimer = 0;
  let statusTimer = 0;
  let statusSticky = false; // a message about votes in trouble: only news about those votes replaces it
  let statusHold = false; // a message the person should still get to read (sticky, or until its ttl)
  const recent = []; // keys of pairs judged lately, so a prefetch that raced a vote is not shown again

  // ---------- small helpers ----------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const pairKey = (pair) => `${pair.query.image}\n${pair.match.image}`;

  function retryAfterMs(header) {
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

  const request = window.vsearch.request;

  function detailOf(result, fallback) {
    const detail = result.data && result.data.detail;
    return typeof detail === "string" && detail ? detail : fallback;
  }

  /** Resolves once the picture is in the browser's cache (or failed, or took too long). */
  function preloadImage(url) {
    return new Promise((resolve) => {
      const img = new Image();
      const done = () => {
        clearTimeout(timer);
        resolve(img);
      };
      const timer = setTimeout(done, IMAGE_TIMEOUT_MS);
      img.onload = done;
      img.onerror = done;
      img.decoding = "async";
      img.src = url;
    });
  }

  function pairFrom(data) {
    if (!data || typeof data.token !== "string" || !data.query || !data.match) return null;
    return { token: data.token, query: { image: data.query.image }, match: { image: data.match.image } };
  }

  // ---------- status line ----------

  /** tone: "" | "warning" | "error"; ttl in ms (0: until replaced); sticky: only say()/clearSticky replace it. */
  function say(text, { tone = "", ttl = 0, sticky = false } = {}) {
    clearTimeout(statusTimer);
    statusEl.textContent = text;
    statusEl.classList.toggle("is-warning", tone === "warning");
    statusEl.classList.toggle("is-error", tone === "error");
    statusSticky = sticky;
    statusHold = sticky || ttl > 0;
    if (ttl) statusTimer = setTimeout(() => say(""), ttl);
  }

  /** Clears a state message ("Loading…") but leaves one the person has not had time to read. */
  function sayIdle() {
    if (!statusHold) say("");
  }

  // ---------- state and controls ----------

  function setState(next) {
    state = next;
    document.body.dataset.state = next;
    card.setAttribute("aria-busy", String(next === "loading"));
    updateControls();
  }

  function setButton(button, mode) {
    // "busy" keeps the button focusable (aria-disabled) so keyboard focus survives a vote being sent.
    button.disabled = mode === "off";
    if (mode === "on") button.removeAttribute("aria-disabled");
    else button.setAttribute("aria-disabled", "true");
  }

  function updateControls() {
    const verdictMode = state === "ready" ? "on" : card.hidden ? "off" : "busy";
    setButton(dopeButton, verdictMode);
    setButton(nopeButton, verdictMode);
    if (canUndo()) undoButton.removeAttribute("aria-disabled");
    else undoButton.setAttribute("aria-disabled", "true");
    sendAgainButton.hidden = !(voteStuck && queue.length && !flushing);
  }

  function canUndo() {
    if (state === "loading" || state === "sending" || flushing) return false;
    return (voteStuck && queue.length > 0) || Date.now() < undoUntil;
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

  // ---------- the card ----------

  function resetCardPose() {
    card.style.transform = "";
    card.style.opacity = "";
    card.classList.remove("is-dragging", "is-dope", "is-nope", "is-springing");
    stampDope.style.opacity = "";
    stampNope.style.opacity = "";
  }

  /** Plays an entry animation; resolves when it is over, so input starts on a card that stands still. */
  function animateCard(name) {
    card.classList.remove("is-entering", "is-entering-left", "is-entering-right");
    if (!name || reducedMotion.matches) return Promise.resolve();
    void card.offsetWidth; // restart the animation
    card.classList.add(name);
    return new Promise((resolve) => {
      card.addEventListener("animationend", resolve, { once: true });
      setTimeout(resolve, 500);
    });
  }

  function showPair(pair, { enter = "is-entering" } = {}) {
    current = pair;
    notice.hidden = true;
    card.hidden = false;
    resetCardPose();
    for (const [img, url] of [
      [queryImg, pair.query.image],
      [matchImg, pair.match.image],
    ]) {
      img.classList.remove("is-broken");
      if (img.getAttribute("src") !== url) img.src = url;
    }
    card.classList.remove("is-loading");
    shownAt = performance.now();
    return animateCard(enter);
  }

  function showLoadingCard() {
    current = null;
    notice.hidden = true;
    card.hidden = false;
    resetCardPose();
    card.classList.add("is-loading");
  }

  function showNotice(kind, detail) {
    current = null;
    card.hidden = true;
    notice.hidden = false;
    clearTimeout(pollTimer);
    retryButton.hidden = kind === "done";
    noticeLeaderboard.hidden = kind === "empty";
    if (kind === "done") {
      noticeTitle.textContent = "You have seen every pair, thank you!";
      say(detail || "Come back later: new pairs arrive when new models are built.");
    } else if (kind === "empty") {
      noticeTitle.textContent = "Nothing to judge yet";
      say(`${detail || "No model has finished building its matches yet."} Checking again every ${EMPTY_POLL_MS / 1000} s.`);
      pollTimer = setTimeout(() => {
        if (state === "empty") reload();
      }, EMPTY_POLL_MS);
    } else {
      noticeTitle.textContent = "Something went wrong";
      const kept = queue.length ? " Your unsent votes are kept on this device." : "";
      say(`${detail || "The server did not answer as expected."}${kept}`, { tone: "error" });
    }
    setState(kind);
  }

  /** A ghost copy of the card flies off the side it was judged to, revealing the next card beneath. */
  function flyOut(verdict) {
    if (reducedMotion.matches) return;
    const ghost = card.cloneNode(true);
    for (const el of [ghost, ...ghost.querySelectorAll("[id], [data-testid]")]) {
      el.removeAttribute("id");
      el.removeAttribute("data-testid");
    }
    ghost.removeAttribute("aria-labelledby");
    ghost.setAttribute("aria-hidden", "true");
    ghost.classList.remove("is-dragging", "is-entering", "is-entering-left", "is-entering-right", "is-springing");
    ghost.classList.add("ghost");
    ghost.querySelector(verdict === "dope" ? ".stamp-dope" : ".stamp-nope").style.opacity = "1";
    deck.appendChild(ghost);
    void ghost.offsetWidth;
    const sign = verdict === "dope" ? 1 : -1;
    ghost.style.transform = `translateX(${sign * (window.innerWidth * 0.9 + card.offsetWidth)}px) rotate(${sign * 28}deg)`;
    ghost.style.opacity = "0";
    const remove = () => ghost.remove();
    ghost.addEventListener("transitionend", remove, { once: true });
    setTimeout(remove, 600);
  }

  for (const img of [queryImg, matchImg]) {
    img.addEventListener("error", () => {
      if (img.getAttribute("src")) img.classList.add("is-broken");
    });
    img.addEventListener("load", () => img.classList.remove("is-broken"));
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
    if (result.votesCast !== undefined && queue.length === 0) setCount(result.votesCast);
    if (result.kind === "pair") {
      const shown = showPair(result.pair);
      sayIdle();
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
    if (!statusHold) say("Loading a pair…");
    if (queue.length) await flush();
    present(await foregroundFetch());
  }

  // ---------- votes ----------

  function loadQueue() {
    try {
      const items = JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
      return Array.isArray(items)
        ? items.filter((v) => v && typeof v.token === "string" && (v.verdict === "dope" || v.verdict === "nope"))
        : [];
    } catch {
      return [];
    }
  }

  function saveQueue() {
    try {
      if (queue.length) localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
      else localStorage.removeItem(QUEUE_KEY);
    } catch {
      // Storage full or disabled (private browsing): the in-memory queue still retries.
    }
  }

  function dequeue(item) {
    queue = queue.filter((v) => v !== item);
    saveQueue();
  }

  function flush() {
    if (!flushing) {
      flushing = sendQueued().finally(() => {
        flushing = null;
        updateControls();
      });
      updateControls();
    }
    return flushing;
  }

  /** Sends queued votes oldest first. Resolves true when the queue is empty, false when it gave up. */
  async function sendQueued() {
    let failures = 0;
    let throttled = 0;
    while (queue.length) {
      const item = queue[0];
      const r = await request("POST", API.vote, { token: item.token, verdict: item.verdict, shown_ms: item.shown_ms });
      item.attempts = (item.attempts || 0) + 1;
      if (r.ok) {
        dequeue(item);
        failures = 0;
        setCount(r.data.votes_cast);
        lastVerdict = item.verdict;
        openUndoWindow(r.data.undo_seconds);
        if (voteStuck || statusSticky) say("Your vote is saved.", { ttl: 3000 });
        voteStuck = false;
        continue;
      }
      if (r.status === 409) {
        // Already counted: after a retry that is our own earlier attempt getting through.
        dequeue(item);
        if (item.attempts === 1) say(detailOf(r, "You had already judged that pair."), { ttl: 4000 });
        voteStuck = false;
        continue;
      }
      if (r.status === 400) {
        dequeue(item);
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
        saveQueue();
        voteStuck = true;
        const n = queue.length;
        say(`${n === 1 ? "Vote" : `${n} votes`} not saved yet: kept on this device, sent with your next vote.`, {
          tone: "error",
          sticky: true,
        });
        return false;
      }
      // Any other refusal (403, 404…) will not change on a retry: say so instead of dropping it quietly.
      dequeue(item);
      say(`Your vote was not counted: ${detailOf(r, `the server answered ${r.status}.`)}`, {
        tone: "error",
        sticky: true,
      });
    }
    return true;
  }

  async function judge(verdict) {
    if (state !== "ready" || !current) return;
    const pair = current;
    remember(pair);
    queue.push({
      token: pair.token,
      verdict,
      shown_ms: Math.max(0, Math.round(performance.now() - shownAt)),
      query: pair.query,
      match: pair.match,
    });
    if (queue.length > QUEUE_MAX) queue.splice(0, queue.length - QUEUE_MAX);
    saveQueue();
    closeUndoWindow();
    flyOut(verdict);

    // Show the preloaded next pair at once; the vote travels behind it.
    const pending = upcoming;
    upcoming = null;
    current = null;
    const ready = pending && usable(pending.result) ? pending.result.pair : null;
    const shown = ready ? showPair(ready) : null;
    if (!ready) showLoadingCard();
    setState("sending");

    await flush();

    if (ready) {
      prefetch();
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

    if (voteStuck && queue.length) {
      // The last vote never reached the server: take it back here.
      const item = queue.pop();
      saveQueue();
      if (!queue.length) voteStuck = false;
      const pair = { token: item.token, query: item.query, match: item.match };
      forget(pair);
      putBack();
      setState("sending");
      if (queue.length) {
        const n = queue.length;
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

  // ---------- input: buttons, keys, drag ----------

  dopeButton.addEventListener("click", () => judge("dope"));
  nopeButton.addEventListener("click", () => judge("nope"));
  undoButton.addEventListener("click", () => undo());
  retryButton.addEventListener("click", () => reload());
  sendAgainButton.addEventListener("click", async () => {
    const before = state;
    if (before === "ready") setState("sending");
    say("Sending…", { sticky: true });
    await flush();
    if (state === "sending") setState(before);
    else if (state === "error" && !queue.length) reload();
  });
  window.addEventListener("online", () => {
    if (queue.length && !flushing) flush();
  });

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const action = { ArrowRight: "dope", ArrowLeft: "nope", u: "undo", U: "undo", Backspace: "undo" }[event.key];
    if (!action) return;
    event.preventDefault();
    if (event.repeat) return; // a held key must not fire a burst of votes
    if (action === "undo") undo();
    else judge(action);
  });

  let drag = null;

  function pose(dx, width) {
    const rotate = Math.max(-20, Math.min(20, (dx / width) * 16));
    const progress = Math.min(1, Math.abs(dx) / (width * SWIPE_FRACTION));
    card.style.transform = `translateX(${dx}px) rotate(${rotate}deg)`;
    card.style.opacity = String(1 - Math.min(0.45, (Math.abs(dx) / width) * 0.5));
    stampDope.style.opacity = dx > 0 ? String(progress) : "0";
    stampNope.style.opacity = dx < 0 ? String(progress) : "0";
    card.classList.toggle("is-dope", dx > 0 && progress >= 1);
    card.classList.toggle("is-nope", dx < 0 && progress >= 1);
  }

  function springBack() {
    card.classList.remove("is-dragging", "is-dope", "is-nope");
    if (reducedMotion.matches) return resetCardPose();
    card.classList.add("is-springing");
    card.style.transform = "";
    card.style.opacity = "";
    stampDope.style.opacity = "";
    stampNope.style.opacity = "";
    card.addEventListener("transitionend", () => card.classList.remove("is-springing"), { once: true });
  }

  /** Velocity in px/ms over the last ~100 ms of the drag. */
  function velocity(samples) {
    const last = samples[samples.length - 1];
    const first = samples.find((s) => last.t - s.t <= 100) || last;
    return last.t > first.t ? (last.x - first.x) / (last.t - first.t) : 0;
  }

  card.addEventListener("pointerdown", (event) => {
    if (state !== "ready" || !current || drag) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    drag = {
      id: event.pointerId,
      x0: event.clientX,
      dx: 0,
      width: card.offsetWidth,
      moved: false,
      samples: [{ t: event.timeStamp, x: event.clientX }],
    };
    try {
      card.setPointerCapture(event.pointerId);
    } catch {
      // The pointer is already gone; pointerup will not come, so forget the drag.
      drag = null;
      return;
    }
    card.classList.remove("is-springing", "is-entering", "is-entering-left", "is-entering-right");
  });

  card.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    drag.dx = event.clientX - drag.x0;
    drag.samples.push({ t: event.timeStamp, x: event.clientX });
    if (drag.samples.length > 12) drag.samples.shift();
    if (!drag.moved && Math.abs(drag.dx) > DRAG_SLOP_PX) {
      drag.moved = true;
      card.classList.add("is-dragging");
    }
    if (drag.moved) pose(drag.dx, drag.width);
  });

  function endDrag(event, cancelled) {
    if (!drag || event.pointerId !== drag.id) return;
    const d = drag;
    drag = null;
    if (!d.moved) return;
    const v = velocity(d.samples);
    const far = Math.abs(d.dx) >= d.width * SWIPE_FRACTION;
    const flick = Math.abs(v) >= FLICK_SPEED && Math.abs(d.dx) >= FLICK_MIN_PX && Math.sign(v) === Math.sign(d.dx);
    if (!cancelled && state === "ready" && (far || flick)) judge(d.dx > 0 ? "dope" : "nope");
    else springBack();
  }

  card.addEventListener("pointerup", (event) => endDrag(event, false));
  card.addEventListener("pointercancel", (event) => endDrag(event, true));
  card.addEventListener("lostpointercapture", (event) => endDrag(event, true));

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

  if (queue.length) say("Sending votes saved on this device…", { sticky: true });
  reload();
})();
