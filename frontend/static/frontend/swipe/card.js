/* The card view of the swipe page: the two pictures, their entry and exit animations, the drag pose, the notice
 * that stands in for the card (done, empty, error), and the status line under it. No network, no votes here.
 */

const IMAGE_TIMEOUT_MS = 10000;

/** Resolves once the picture is in the browser's cache (or failed, or took too long). */
export function preloadImage(url) {
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

export class CardView {
  constructor(doc = document) {
    const $ = (id) => doc.getElementById(id);
    this.deck = $("deck");
    this.card = $("card");
    this.queryImg = $("query-image");
    this.matchImg = $("match-image");
    this.stampDope = this.card.querySelector(".stamp-dope");
    this.stampNope = this.card.querySelector(".stamp-nope");
    this.notice = $("notice");
    this.noticeTitle = $("notice-title");
    this.retryButton = $("retry");
    this.noticeLeaderboard = $("notice-leaderboard");
    this.reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
    for (const img of [this.queryImg, this.matchImg]) {
      img.addEventListener("error", () => {
        if (img.getAttribute("src")) img.classList.add("is-broken");
      });
      img.addEventListener("load", () => img.classList.remove("is-broken"));
    }
  }

  get hidden() {
    return this.card.hidden;
  }

  get width() {
    return this.card.offsetWidth;
  }

  setBusy(busy) {
    this.card.setAttribute("aria-busy", String(busy));
  }

  resetPose() {
    const { card } = this;
    card.style.transform = "";
    card.style.opacity = "";
    card.classList.remove("is-dragging", "is-dope", "is-nope", "is-springing");
    this.stampDope.style.opacity = "";
    this.stampNope.style.opacity = "";
  }

  /** Plays an entry animation; resolves when it is over, so input starts on a card that stands still. */
  animate(name) {
    const { card } = this;
    card.classList.remove("is-entering", "is-entering-left", "is-entering-right");
    if (!name || this.reducedMotion.matches) return Promise.resolve();
    void card.offsetWidth; // restart the animation
    card.classList.add(name);
    return new Promise((resolve) => {
      card.addEventListener("animationend", resolve, { once: true });
      setTimeout(resolve, 500);
    });
  }

  /** Shows a pair; resolves when its entry animation is over. */
  showPair(pair, { enter = "is-entering" } = {}) {
    this.notice.hidden = true;
    this.card.hidden = false;
    this.resetPose();
    for (const [img, url] of [
      [this.queryImg, pair.query.image],
      [this.matchImg, pair.match.image],
    ]) {
      img.classList.remove("is-broken");
      if (img.getAttribute("src") !== url) img.src = url;
    }
    this.card.classList.remove("is-loading");
    return this.animate(enter);
  }

  showLoading() {
    this.notice.hidden = true;
    this.card.hidden = false;
    this.resetPose();
    this.card.classList.add("is-loading");
  }

  /** kind: done | empty | error; the notice takes the card's place. */
  showNotice(kind) {
    this.card.hidden = true;
    this.notice.hidden = false;
    this.retryButton.hidden = kind === "done";
    this.noticeLeaderboard.hidden = kind === "empty";
    this.noticeTitle.textContent = {
      done: "You have seen every pair, thank you!",
      empty: "Nothing to judge yet",
      error: "Something went wrong",
    }[kind];
  }

  /** A ghost copy of the card flies off the side it was judged to, revealing the next card beneath. */
  flyOut(verdict) {
    if (this.reducedMotion.matches) return;
    const { card } = this;
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
    this.deck.appendChild(ghost);
    void ghost.offsetWidth;
    const sign = verdict === "dope" ? 1 : -1;
    ghost.style.transform = `translateX(${sign * (window.innerWidth * 0.9 + card.offsetWidth)}px) rotate(${sign * 28}deg)`;
    ghost.style.opacity = "0";
    const remove = () => ghost.remove();
    ghost.addEventListener("transitionend", remove, { once: true });
    setTimeout(remove, 600);
  }

  /** The card follows a drag: dx pixels sideways; `fraction` of the width commits the verdict. */
  pose(dx, width, fraction) {
    const { card } = this;
    const rotate = Math.max(-20, Math.min(20, (dx / width) * 16));
    const progress = Math.min(1, Math.abs(dx) / (width * fraction));
    card.style.transform = `translateX(${dx}px) rotate(${rotate}deg)`;
    card.style.opacity = String(1 - Math.min(0.45, (Math.abs(dx) / width) * 0.5));
    this.stampDope.style.opacity = dx > 0 ? String(progress) : "0";
    this.stampNope.style.opacity = dx < 0 ? String(progress) : "0";
    card.classList.toggle("is-dope", dx > 0 && progress >= 1);
    card.classList.toggle("is-nope", dx < 0 && progress >= 1);
  }

  startDrag() {
    this.card.classList.remove("is-springing", "is-entering", "is-entering-left", "is-entering-right");
  }

  markDragging() {
    this.card.classList.add("is-dragging");
  }

  springBack() {
    const { card } = this;
    card.classList.remove("is-dragging", "is-dope", "is-nope");
    if (this.reducedMotion.matches) return this.resetPose();
    card.classList.add("is-springing");
    card.style.transform = "";
    card.style.opacity = "";
    this.stampDope.style.opacity = "";
    this.stampNope.style.opacity = "";
    card.addEventListener("transitionend", () => card.classList.remove("is-springing"), { once: true });
  }
}

/** The status line under the card. A "sticky" message (votes in trouble) is replaced only by news about them. */
export class StatusLine {
  constructor(el) {
    this.el = el;
    this.timer = 0;
    this.sticky = false;
    this.hold = false; // a message the person should still get to read (sticky, or until its ttl)
  }

  /** tone: "" | "warning" | "error"; ttl in ms (0: until replaced); sticky: only say() replaces it. */
  say(text, { tone = "", ttl = 0, sticky = false } = {}) {
    clearTimeout(this.timer);
    this.el.textContent = text;
    this.el.classList.toggle("is-warning", tone === "warning");
    this.el.classList.toggle("is-error", tone === "error");
    this.sticky = sticky;
    this.hold = sticky || ttl > 0;
    if (ttl) this.timer = setTimeout(() => this.say(""), ttl);
  }

  /** Clears a state message ("Loading…") but leaves one the person has not had time to read. */
  idle() {
    if (!this.hold) this.say("");
  }
}
