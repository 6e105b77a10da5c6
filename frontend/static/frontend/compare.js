/* Staff: compare every model's matches for one query, side by side (GET /api/compare).
 *
 * Choose the query by id, by category (its first query) or at random; ← and → step to the previous and next
 * query (within the category, if one was chosen), r picks a random one (in it). The URL keeps the query (?item=…), so a
 * comparison can be reloaded or shared; ?variant=… puts that model's column first.
 *
 * document.body.dataset.state is loading | ready | error.
 */
import { detailOf, request } from "./api.js";
import { el, typing } from "./dom.js";
import { reasonsText } from "./examples.js";

const API = "/api/compare";
const $ = (id) => document.getElementById(id);
const form = $("compare-form");
const itemInput = $("item");
const categorySelect = $("category");
const statusEl = $("status");
const compare = $("compare");
const columnsEl = $("columns");
const queryImage = $("query-image");
const queryCaption = $("query-caption");
const previousButton = $("previous");
const nextButton = $("next");
const randomButton = $("random");

const url = new URL(window.location.href);
const pinned = Number(url.searchParams.get("variant")) || null; // this model's column comes first
let data = null;
let seq = 0;

function setState(state) {
  document.body.dataset.state = state;
}

function say(text, tone = "") {
  statusEl.textContent = text;
  statusEl.classList.toggle("is-error", tone === "error");
}

const distance = (d) => (Number.isFinite(d) ? (Math.abs(d) >= 100 ? d.toFixed(0) : d.toPrecision(3)) : "—");

async function load(params) {
  const mine = ++seq;
  setState("loading");
  say("Loading…");
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value !== null && value !== undefined) query.set(key, value);
  const result = await request("GET", `${API}?${query}`);
  if (mine !== seq) return;
  if (!result.ok) {
    setState("error");
    say(detailOf(result, `The server answered ${result.status || "nothing"}.`), "error");
    return;
  }
  data = result.data;
  render();
  remember();
  setState("ready");
}

/** The URL names the query shown, so a reload or a shared link shows it again. */
function remember() {
  const next = new URL(window.location.href);
  next.search = "";
  next.searchParams.set("item", data.query.id);
  if (data.category) next.searchParams.set("category", data.category);
  if (pinned) next.searchParams.set("variant", pinned);
  window.history.replaceState(null, "", next);
}

function render() {
  const { query, columns } = data;
  itemInput.value = query.id;
  categorySelect.value = data.category || "";
  queryImage.src = query.image;
  queryImage.alt = `query item #${query.id}, ${query.category}`;
  queryCaption.replaceChildren("Query ", el("strong", { text: `#${query.id}` }), ` · ${query.category}`);
  previousButton.disabled = data.previous === null;
  nextButton.disabled = data.next === null;

  const names = Object.fromEntries(columns.map((c) => [c.variant_id, c.name]));
  const ordered = [...columns].sort((a, b) => (b.variant_id === pinned) - (a.variant_id === pinned));
  columnsEl.replaceChildren(...ordered.map((column) => renderColumn(column, query, names)));
  compare.hidden = false;
  const scope = data.category ? `among the ${data.category} queries` : "among all queries";
  say(`${columns.length} ${columns.length === 1 ? "model" : "models"}; query #${query.id} ${scope}.`);
}

function renderColumn(column, query, names) {
  const badges = el("span", { className: "badges" });
  if (column.rotation !== "active") badges.append(el("span", { className: `badge badge-${column.rotation}`, text: column.rotation }));
  const head = el(
    "header",
    { className: "compare-col-head" },
    el("h2", { text: column.name }, badges),
    el("p", { className: "muted", text: column.metric === "random" ? "control" : `${column.metric} · ${column.search}` }),
  );
  const list = el("ol", { className: "compare-cards" });
  for (const match of column.matches) list.append(renderCard(match, query, names));
  if (!column.matches.length) list.append(el("li", { className: "compare-empty muted", text: "No matches stored for this query." }));
  return el(
    "section",
    { className: `compare-col${column.variant_id === pinned ? " is-pinned" : ""}`, "data-variant-id": column.variant_id, "data-testid": "compare-column" },
    head,
    list,
  );
}

function renderCard(match, query, names) {
  const other = match.item.category !== query.category;
  const shared = match.shared_with.length;
  const votes = match.dope + match.nope;
  const meta = el(
    "div",
    { className: "card-meta" },
    el("span", { className: "rank", text: `${match.rank + 1}` }),
    el("span", { className: "distance", "data-testid": "distance", title: "distance", text: distance(match.distance) }),
    el(
      "span",
      { className: `votes${votes ? "" : " is-none"}`, "data-testid": "votes", title: votes ? `${match.dope} dope, ${match.nope} nope (counted votes)` : "no counted votes yet" },
      el("span", { className: "v-dope", text: `✓${match.dope}` }),
      el("span", { className: "v-nope", text: `✕${match.nope}` }),
    ),
  );
  const foot = el(
    "div",
    { className: "card-foot" },
    el("span", { className: `cat${other ? " is-other" : ""}`, text: `#${match.item.id} · ${match.item.category}` }),
    shared
      ? el("span", {
          className: "shared",
          "data-testid": "shared",
          title: `Also in: ${match.shared_with.map((id) => names[id] || `#${id}`).join(", ")}`,
          text: `+${shared}`,
        })
      : el("span", { className: "shared is-alone", "data-testid": "shared", title: "Only this model has this card", text: "only here" }),
  );
  const reasons = reasonsText(match.reasons);
  return el(
    "li",
    { className: `compare-card${shared ? " is-shared" : ""}`, "data-pair-id": match.pair_id, "data-testid": "compare-card", tabindex: "0" },
    el("div", { className: "thumb" }, el("img", { src: match.item.image, alt: `match #${match.item.id}, ${match.item.category}`, loading: "lazy", decoding: "async" })),
    meta,
    foot,
    reasons ? el("div", { className: "example-reasons", "data-testid": "reasons", title: "Why nope, as voters said", text: reasons }) : null,
  );
}

/** Pointing at a card lights up the same card in the other models' columns. */
function link(event, on) {
  const card = event.target.closest && event.target.closest(".compare-card");
  if (!card) return;
  for (const same of columnsEl.querySelectorAll(`.compare-card[data-pair-id="${card.dataset.pairId}"]`)) same.classList.toggle("is-linked", on);
}

columnsEl.addEventListener("pointerover", (e) => link(e, true));
columnsEl.addEventListener("pointerout", (e) => link(e, false));
columnsEl.addEventListener("focusin", (e) => link(e, true));
columnsEl.addEventListener("focusout", (e) => link(e, false));

const category = () => categorySelect.value;
const step = (to) => {
  if (data && data[to] !== null) load({ item: data[to], category: data.category || "" });
};
const random = () => load({ random: "1", category: category() });

form.addEventListener("submit", (event) => {
  event.preventDefault();
  // An id names its query wherever it is: previous and next then step through every query.
  load({ item: itemInput.value.trim() });
});
categorySelect.addEventListener("change", () => load({ category: category() }));
randomButton.addEventListener("click", random);
previousButton.addEventListener("click", () => step("previous"));
nextButton.addEventListener("click", () => step("next"));
document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || typing(event)) return;
  const action = { ArrowLeft: "previous", ArrowRight: "next", r: "random", R: "random" }[event.key];
  if (!action) return;
  event.preventDefault();
  if (action === "random") random();
  else step(action);
});

load({ item: url.searchParams.get("item") || "", category: url.searchParams.get("category") || "" });
