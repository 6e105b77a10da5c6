/* Leaderboard page: a table and an SVG chart of each model's approval rate with its interval, and offline
 * P@1 beside it. Choosing a model (table row or chart row) shows its approval per category.
 *
 * document.body.dataset.state is loading | ready | empty | error; the categories panel carries its own
 * data-state (loading | ready | error).
 */
import { request } from "./api.js";
import { examplesUrl, renderExamples } from "./examples.js";
import { el } from "./dom.js";

const API = "/api/leaderboard";
const categoriesUrl = (id) => `/api/leaderboard/${encodeURIComponent(id)}/categories`;
const SVG = "http://www.w3.org/2000/svg";
const NARROW_CHART_PX = 560; // below this the chart puts each label above its whisker

const $ = (id) => document.getElementById(id);
const statusEl = $("status");
const refreshButton = $("refresh");
const chart = $("chart");
const canvas = $("chart-canvas");
const tableWrap = $("table-wrap");
const tbody = $("rows");
const panel = $("categories");
const panelTitle = $("categories-title");
const panelStatus = $("categories-status");
const panelTable = $("categories-table");
const panelRows = $("categories-rows");
const examplesSlot = $("examples-slot");
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

let rows = [];
let selected = null; // variant_id whose categories are shown
let loadSeq = 0;
let categoriesSeq = 0;
let chartWidth = 0;

// ---------- helpers ----------

async function getJSON(url) {
  const result = await request("GET", url);
  return { ...result, ok: result.ok && Object.keys(result.data).length > 0 };
}

function detailOf(result) {
  const detail = result.data && result.data.detail;
  return typeof detail === "string" && detail ? detail : `The server answered ${result.status || "nothing"}.`;
}

const isNum = (x) => typeof x === "number" && Number.isFinite(x);
const pct = (x) => (isNum(x) ? `${(x * 100).toFixed(1)}%` : "—");
const interval = (lo, hi) => (isNum(lo) && isNum(hi) ? `${(lo * 100).toFixed(1)}–${(hi * 100).toFixed(1)}%` : "—");
const clamp01 = (x) => Math.max(0, Math.min(1, x));


function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function say(text, tone = "") {
  statusEl.textContent = text;
  statusEl.classList.toggle("is-error", tone === "error");
}

function setState(next) {
  document.body.dataset.state = next;
}

function badgesFor(row) {
  if (row.decided) return [["decided", "badge-decided"], ...badgesForRest(row)];
  return badgesForRest(row);
}

function badgesForRest(row) {
  const badges = [];
  if (row.provisional) badges.push(["provisional", "badge-provisional"]);
  if (row.is_new) badges.push(["new", "badge-new"]);
  if (row.status === "paused" || row.status === "retired") badges.push([row.status, `badge-${row.status}`]);
  return badges;
}

// ---------- loading ----------

/** The decision the numbers support: decided, practically equivalent, or how many votes would settle it. */
function showDecision(decision) {
  const node = $("decision");
  if (!node) return;
  node.hidden = !decision || !decision.explanation;
  if (node.hidden) return;
  node.dataset.status = decision.status;
  node.replaceChildren(el("strong", { text: `${decision.status[0].toUpperCase()}${decision.status.slice(1)}: ` }), decision.explanation);
}

const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** Public numbers are a snapshot that leaves out the newest votes (so nobody can tell which model made a card). */
function freshness(data) {
  if (data.live) return "Live numbers (you are staff).";
  const next = data.next_update ? ` Next update ${clock(data.next_update)}.` : "";
  return `Votes cast before ${clock(data.as_of)}.${next}`;
}

async function load() {
  const seq = ++loadSeq;
  setState("loading");
  refreshButton.disabled = true;
  say("Loading the leaderboard…");
  const result = await getJSON(API);
  if (seq !== loadSeq) return;
  refreshButton.disabled = false;
  if (!result.ok || !Array.isArray(result.data.rows)) {
    setState("error");
    say(`Could not load the leaderboard: ${detailOf(result)} Press Refresh to try again.`, "error");
    return;
  }
  const data = result.data;
  fillExplainer(data);
  // Rows come in display order; keep it, only making sure provisional rows follow the ranked ones.
  rows = data.rows
    .map((row, i) => [row, i])
    .sort((a, b) => Number(!!a[0].provisional) - Number(!!b[0].provisional) || a[1] - b[1])
    .map(([row]) => row);
  if (!rows.length) {
    chart.hidden = true;
    tableWrap.hidden = true;
    closeCategories();
    setState("empty");
    say("No models on the board yet. Once a model has built its matches and people vote, it shows up here.");
    return;
  }
  chart.hidden = false;
  tableWrap.hidden = false;
  renderTable();
  chartWidth = 0;
  renderChart();
  const votes = rows.reduce((sum, row) => sum + (isNum(row.votes) ? row.votes : 0), 0);
  say(`${rows.length} ${rows.length === 1 ? "model" : "models"}, ${votes} ${votes === 1 ? "vote" : "votes"}. ${freshness(data)}`);
  showDecision(data.decision);
  setState("ready");

  const fromHash = /^#variant-(\d+)$/.exec(location.hash);
  const want = selected ?? (fromHash ? Number(fromHash[1]) : null);
  if (want !== null && rows.some((row) => row.variant_id === want)) select(want, { scroll: selected === null });
  else if (selected !== null) closeCategories();
}

function fillExplainer(data) {
  const confidence = isNum(data.confidence) ? `${Math.round(data.confidence * 100)}%` : "95%";
  if (isNum(data.decided_at)) {
    for (const node of document.querySelectorAll('[data-fill="decided-at"]')) node.textContent = `${Math.round(data.decided_at * 100)}%`;
  }
  for (const node of document.querySelectorAll('[data-fill="confidence"]')) node.textContent = confidence;
  if (isNum(data.min_votes)) {
    for (const node of document.querySelectorAll('[data-fill="min-votes"]')) node.textContent = String(data.min_votes);
  }
}

// ---------- table ----------

function renderTable() {
  const fragment = document.createDocumentFragment();
  let seenProvisional = false;
  for (const row of rows) {
    const inactive = row.status && row.status !== "active";
    const firstProvisional = row.provisional && !seenProvisional;
    seenProvisional = seenProvisional || !!row.provisional;
    const badges = badgesFor(row);
    const nameCell = el(
      "td",
      {},
      el("button", {
        type: "button",
        className: "model-name",
        "aria-controls": "categories",
        "aria-expanded": "false",
        text: row.name,
      }),
      badges.length
        ? el("span", { className: "badges" }, ...badges.map(([label, cls]) => el("span", { className: `badge ${cls}`, text: label })))
        : null,
      row.description ? el("div", { className: "model-desc", text: row.description }) : null,
    );
    const tr = el(
      "tr",
      {
        "data-testid": "leaderboard-row",
        "data-variant-id": row.variant_id,
        className: [inactive ? "is-inactive" : "", firstProvisional ? "first-provisional" : ""].join(" ").trim() || null,
      },
      el("td", { className: "rank", text: row.rank_group ?? (isNum(row.rank) ? String(row.rank) : "—") }),
      nameCell,
      el("td", { className: "num", "data-testid": "votes", text: String(row.votes ?? 0) }),
      el("td", { className: "num", "data-testid": "approvals", text: String(row.approvals ?? 0) }),
      el("td", { className: "num", "data-testid": "approval-rate", text: pct(row.approval_rate) }),
      el("td", { className: "num", "data-testid": "interval", text: interval(row.ci_low, row.ci_high) }),
      el("td", { className: "num", "data-testid": "p-best", text: isNum(row.p_best) ? pct(row.p_best) : "—" }),
      el("td", { className: "num", "data-testid": "p-at-1", text: pct(row.p_at_1) }),
    );
    tr.addEventListener("click", () => select(row.variant_id));
    fragment.append(tr);
  }
  tbody.replaceChildren(fragment);
}

// ---------- chart ----------

function truncate(text, maxChars) {
  return text.length <= maxChars ? text : `${text.slice(0, Math.max(1, maxChars - 1))}…`;
}

function renderChart() {
  const width = Math.round(canvas.clientWidth || 640);
  if (width === chartWidth && canvas.firstChild) return;
  chartWidth = width;
  const narrow = width < NARROW_CHART_PX;
  const labelWidth = narrow ? 0 : Math.min(320, Math.round(width * 0.38));
  const rowHeight = narrow ? 46 : 32;
  const top = 22;
  const left = narrow ? 8 : labelWidth + 16;
  const right = 14;
  const plot = width - left - right;
  const height = top + rows.length * rowHeight + 4;
  const x = (v) => left + clamp01(v) * plot;

  const root = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "Approval rate of each model with its interval, and offline P@1. The table below has the same numbers.",
  });

  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    root.append(svg("line", { class: "gridline", x1: x(tick), x2: x(tick), y1: top - 4, y2: height }));
    const anchor = tick === 0 ? "start" : tick === 1 ? "end" : "middle";
    root.append(svg("text", { class: "tick", x: x(tick), y: 12, "text-anchor": anchor }, `${tick * 100}%`));
  }

  rows.forEach((row, i) => {
    const y0 = top + i * rowHeight;
    const cy = narrow ? y0 + 32 : y0 + rowHeight / 2;
    const classes = ["chart-row"];
    if (row.provisional) classes.push("is-provisional");
    if (row.status && row.status !== "active") classes.push("is-inactive");
    if (row.variant_id === selected) classes.push("is-selected");
    const g = svg("g", { class: classes.join(" "), "data-variant-id": row.variant_id });

    const rank = row.rank_group ?? (row.provisional ? "–" : "");
    const notes = badgesFor(row).map(([label]) => label);
    g.append(
      svg(
        "title",
        {},
        `${row.name}${notes.length ? ` (${notes.join(", ")})` : ""}\n` +
          `approval ${pct(row.approval_rate)}, interval ${interval(row.ci_low, row.ci_high)}, ` +
          `${row.votes ?? 0} votes; P(best) ${isNum(row.p_best) ? pct(row.p_best) : "—"}; P@1 ${pct(row.p_at_1)}`,
      ),
    );
    g.append(svg("rect", { class: "hit", x: 0, y: y0 + 1, width, height: rowHeight - 2, rx: 6 }));

    const label = `${rank ? `${rank}  ` : ""}${row.name}${row.provisional ? " · provisional" : ""}`;
    if (narrow) {
      g.append(svg("text", { x: left, y: y0 + 15 }, truncate(label, Math.floor(width / 6.8))));
    } else {
      g.append(svg("text", { x: labelWidth + 4, y: cy + 4, "text-anchor": "end" }, truncate(label, Math.floor(labelWidth / 6.6))));
    }

    if (isNum(row.p_best)) {
      // P(best) beside approval: a bar along the row's foot, on the same 0-100% axis.
      g.append(svg("rect", { class: `pbest${row.decided ? " is-decided" : ""}`, x: x(0), y: cy + 8, width: Math.max(1, x(row.p_best) - x(0)), height: 3, rx: 1.5 }));
    }
    if (isNum(row.ci_low) && isNum(row.ci_high)) {
      const x1 = x(row.ci_low);
      const x2 = x(row.ci_high);
      g.append(svg("line", { class: "whisker", x1, x2, y1: cy, y2: cy }));
      g.append(svg("line", { class: "whisker", x1, x2: x1, y1: cy - 5, y2: cy + 5 }));
      g.append(svg("line", { class: "whisker", x1: x2, x2, y1: cy - 5, y2: cy + 5 }));
    }
    if (isNum(row.approval_rate)) {
      g.append(svg("circle", { class: "dot", cx: x(row.approval_rate), cy, r: 5 }));
    } else {
      g.append(svg("text", { class: "row-note", x: x(0) + 4, y: cy + 4 }, "no votes yet"));
    }
    if (isNum(row.p_at_1)) {
      const px = x(row.p_at_1);
      g.append(svg("rect", { class: "p1", x: px - 4, y: cy - 4, width: 8, height: 8, transform: `rotate(45 ${px} ${cy})` }));
    }
    g.addEventListener("click", () => select(row.variant_id));
    root.append(g);
  });

  canvas.replaceChildren(root);
}

let resizeTimer = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (rows.length) renderChart();
  }, 150);
});

// ---------- categories ----------

function markSelected() {
  for (const tr of tbody.querySelectorAll("tr")) {
    const on = Number(tr.dataset.variantId) === selected;
    tr.classList.toggle("is-selected", on);
    tr.querySelector(".model-name").setAttribute("aria-expanded", String(on));
  }
  for (const g of canvas.querySelectorAll(".chart-row")) {
    g.classList.toggle("is-selected", Number(g.dataset.variantId) === selected);
  }
}

function setHash(hash) {
  try {
    history.replaceState(null, "", hash || location.pathname + location.search);
  } catch {
    // file:// or sandboxed: the hash is only a convenience
  }
}

async function select(variantId, { scroll = true } = {}) {
  const row = rows.find((r) => r.variant_id === variantId);
  if (!row) return;
  selected = variantId;
  markSelected();
  setHash(`#variant-${variantId}`);
  panel.hidden = false;
  panel.dataset.state = "loading";
  panel.dataset.variantId = String(variantId);
  panelTitle.textContent = `By category: ${row.name}`;
  panelStatus.textContent = "Loading…";
  examplesSlot.replaceChildren();
  panelStatus.classList.remove("is-error");
  if (scroll) {
    panel.focus({ preventScroll: true });
    panel.scrollIntoView({ block: "nearest", behavior: reducedMotion.matches ? "auto" : "smooth" });
  }

  const seq = ++categoriesSeq;
  const result = await getJSON(categoriesUrl(variantId));
  if (seq !== categoriesSeq) return; // another model was chosen meanwhile
  if (!result.ok || !Array.isArray(result.data.rows)) {
    panel.dataset.state = "error";
    panelTable.hidden = true;
    panelStatus.textContent = `Could not load the categories: ${detailOf(result)}`;
    panelStatus.classList.add("is-error");
    return;
  }
  if (typeof result.data.variant === "string" && result.data.variant) {
    panelTitle.textContent = `By category: ${result.data.variant}`;
  }
  renderCategories(result.data.rows);
  await showExamples(row, seq);
  panel.dataset.state = "ready";
}

/** A model out of the rotation shows its most approved and most rejected cards; one in it never does (its cards
 * would tell voters which model made them). */
async function showExamples(row, seq) {
  examplesSlot.replaceChildren();
  if (row.status !== "retired" && row.status !== "paused") return;
  const result = await getJSON(examplesUrl(row.variant_id));
  if (seq !== categoriesSeq || !result.ok || !Array.isArray(result.data.approved)) return;
  examplesSlot.replaceChildren(renderExamples(result.data));
}

function renderCategories(categoryRows) {
  if (!categoryRows.length) {
    panelTable.hidden = true;
    panelStatus.textContent = "No votes for this model yet.";
    return;
  }
  panelStatus.textContent = "Approval among the pairs whose query item is in each category.";
  const fragment = document.createDocumentFragment();
  for (const row of categoryRows) {
    const bar = el("div", { className: "cat-bar", "aria-hidden": "true" });
    if (isNum(row.approval_rate)) {
      const fill = el("div", { className: "cat-fill" });
      fill.style.width = `${clamp01(row.approval_rate) * 100}%`;
      bar.append(fill);
    }
    if (isNum(row.ci_low) && isNum(row.ci_high)) {
      const ci = el("div", { className: "cat-ci" });
      ci.style.left = `${clamp01(row.ci_low) * 100}%`;
      ci.style.width = `${(clamp01(row.ci_high) - clamp01(row.ci_low)) * 100}%`;
      bar.append(ci);
    }
    if (isNum(row.approval_rate)) {
      const mark = el("div", { className: "cat-mark" });
      mark.style.left = `${clamp01(row.approval_rate) * 100}%`;
      bar.append(mark);
    }
    fragment.append(
      el(
        "tr",
        { "data-testid": "category-row" },
        el("th", { scope: "row", text: row.category }),
        el("td", { className: "num", text: String(row.votes ?? 0) }),
        el("td", { className: "num", text: String(row.approvals ?? 0) }),
        el(
          "td",
          {},
          bar,
          el("span", { className: "cat-label", text: `${pct(row.approval_rate)} (${interval(row.ci_low, row.ci_high)})` }),
        ),
      ),
    );
  }
  panelRows.replaceChildren(fragment);
  panelTable.hidden = false;
}

function closeCategories() {
  categoriesSeq++;
  selected = null;
  panel.hidden = true;
  delete panel.dataset.state;
  delete panel.dataset.variantId;
  markSelected();
  setHash("");
}

$("categories-close").addEventListener("click", () => {
  const id = selected;
  closeCategories();
  const button = tbody.querySelector(`tr[data-variant-id="${id}"] .model-name`);
  if (button) button.focus();
});
refreshButton.addEventListener("click", () => load());

load();
