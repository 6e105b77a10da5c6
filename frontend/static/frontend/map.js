/* Staff map: a feature set's 2-D layout, laid out on the workers after featurizing (GET /api/maps/<id>: item
 * ids, coordinates in [0, 1], categories, thumbnails), drawn on a canvas that pans and zooms.
 *
 * Smooth at 10k points: a frame draws only what is in view, points as dots batched by colour, and thumbnails
 * only once few enough points are in view (MAX_THUMBS), loaded as they come into view and kept in a bounded
 * cache. Frames are drawn on requestAnimationFrame, at most one per screen refresh. Clicks are hit-tested on a
 * grid of the points built once per map. A chosen item's neighbours under a chosen model come from
 * POST /api/search (the model's own searcher), and are ringed and linked on the map.
 *
 * document.body.dataset.state: loading | ready | empty | error. The canvas carries data-drawn (points drawn in
 * the last frame), data-thumbs (thumbnails drawn), data-view ({"scale", "x", "y"}: a point at unit
 * coordinates (u, v) is drawn at CSS pixel (u * scale + x, v * scale + y) of the canvas), data-frames (frames
 * drawn so far) and data-ms (how long the last one took to draw).
 */
import { detailOf, request } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const canvas = $("map");
const stage = $("stage");
const ctx = canvas.getContext("2d");
const fsSelect = $("feature-set");
const modelSelect = $("model");
const statusEl = $("status");
const buildButton = $("build");
const legend = $("legend");
const tip = $("tip");
const panelTitle = $("panel-title");
const panelHint = $("panel-hint");
const panelStatus = $("panel-status");
const selectedFrame = $("selected");
const selectedImage = $("selected-image");
const neighboursList = $("neighbours");

// Tableau 10, then two more; past twelve categories, hues spaced by the golden angle.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
  "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#17becf",
];
const MAX_THUMBS = 300; // thumbnails are drawn once at most this many points are in view
const THUMB_CACHE = 1500; // decoded thumbnails kept (64 px each: ~25 MB at most)
const DOT = 3; // dot radius, CSS px
const HIT_PX = 9; // a click this close to a dot picks it
const GRID = 64; // hit-test grid cells per side
const ZOOM_MIN = 0.5; // relative to the fitted view
const ZOOM_MAX = 400;
const NEIGHBOURS = 10;

const colour = (c) => (c < PALETTE.length ? PALETTE[c] : `hsl(${(c * 137.508) % 360} 62% 48%)`);

let maps = [];
let models = [];
let defaultModel = null;
let points = null; // {n, x, y, cat, item, thumb, index: Map(item -> i), grid}
let categories = [];
let view = { scale: 1, x: 0, y: 0 };
let fitScale = 1;
let size = { w: 0, h: 0, dpr: 1 };
let needsFit = true;
let scheduled = false;
let selected = null; // {i, neighbours: [i...]}
let picked = null; // a category index picked out in the legend
let hover = -1;
let loadSeq = 0;
let neighbourSeq = 0;
let pollTimer = null;
const thumbs = new Map(); // url -> HTMLImageElement (insertion order: oldest first)
let inView = new Int32Array(0);
let lastBox = 0; // thumbnail size in the last frame (0: dots)
let frames = 0;

function setState(next) {
  document.body.dataset.state = next;
}

function say(text, tone = "") {
  statusEl.textContent = text;
  statusEl.classList.toggle("is-error", tone === "error");
}


// ---------- loading ----------

async function start() {
  setState("loading");
  const [listed, searchable] = await Promise.all([request("GET", "/api/maps"), request("GET", "/api/search/models")]);
  if (!listed.ok) {
    say(detailOf(listed, "The maps could not be loaded."), "error");
    setState("error");
    return;
  }
  maps = listed.data.maps || [];
  models = (searchable.ok && searchable.data.models) || [];
  defaultModel = searchable.ok ? searchable.data.default : null;
  if (maps.length === 0) {
    say("No features are built yet: build a model first (manage.py build_variants, or the staff page).");
    setState("empty");
    return;
  }
  fsSelect.replaceChildren(...maps.map((m) => el("option", { value: String(m.feature_set), text: mapLabel(m) })));
  const wanted = new URLSearchParams(window.location.search).get("fs");
  const first = maps.find((m) => String(m.feature_set) === wanted) || maps.find((m) => m.status === "ready") || maps[0];
  fsSelect.value = String(first.feature_set);
  await loadMap();
}

function mapLabel(m) {
  const items = m.n_items ? ` · ${m.n_items.toLocaleString()} items` : "";
  const state = m.status === "ready" ? (m.current ? "" : " · stale") : ` · ${m.status === "none" ? "no map" : m.status}`;
  return `${m.name}${items}${state}`;
}

function fillModels(summary) {
  const onThis = new Set((summary.variants || []).map((v) => v.id));
  const ordered = [...models].sort((a, b) => Number(onThis.has(b.id)) - Number(onThis.has(a.id)));
  modelSelect.replaceChildren(
    ...ordered.map((m) =>
      el("option", { value: String(m.id), text: onThis.has(m.id) ? `${m.name} (these features)` : m.name }),
    ),
  );
  const own = ordered.find((m) => onThis.has(m.id));
  modelSelect.value = String(own ? own.id : defaultModel ?? (ordered[0] && ordered[0].id) ?? "");
  modelSelect.disabled = ordered.length === 0;
}

async function loadMap() {
  const mine = ++loadSeq;
  clearTimeout(pollTimer);
  const id = fsSelect.value;
  const summary = maps.find((m) => String(m.feature_set) === id);
  const url = new URL(window.location.href);
  url.searchParams.set("fs", id);
  window.history.replaceState(null, "", url);
  fillModels(summary);
  setState("loading");
  say("Loading the map…");
  const result = await request("GET", `/api/maps/${encodeURIComponent(id)}`);
  if (mine !== loadSeq) return;
  if (!result.ok) {
    say(detailOf(result, "The map could not be loaded."), "error");
    setState("error");
    return;
  }
  const data = result.data;
  buildButton.hidden = data.status === "running" || data.status === "queued" || (data.status === "ready" && data.current);
  if (data.status === "queued" || data.status === "running") {
    say("This map is being laid out on a worker…");
    pollTimer = setTimeout(() => reloadMaps(), 2000);
  }
  if (!data.points || data.points.item.length === 0) {
    points = null;
    selectNone();
    legend.replaceChildren();
    if (data.status === "failed") say(`Laying out this map failed: ${data.error}`, "error");
    else if (data.status !== "queued" && data.status !== "running") say("These features have no map yet.");
    setState("empty");
    requestDraw();
    return;
  }
  usePoints(data);
  const stale = data.current ? "" : " (from older features: lay it out again)";
  const took = data.seconds ? `, laid out in ${data.seconds.toFixed(1)} s` : "";
  if (data.status !== "queued" && data.status !== "running") {
    say(`${points.n.toLocaleString()} items${took}${stale}. Similar items lie close together.`);
  }
  setState("ready");
}

async function reloadMaps() {
  const listed = await request("GET", "/api/maps");
  if (listed.ok) {
    maps = listed.data.maps || maps;
    const value = fsSelect.value;
    fsSelect.replaceChildren(...maps.map((m) => el("option", { value: String(m.feature_set), text: mapLabel(m) })));
    fsSelect.value = value;
  }
  await loadMap();
}

function usePoints(data) {
  const p = data.points;
  const n = p.item.length;
  const x = Float32Array.from(p.x);
  const y = Float32Array.from(p.y);
  const cat = Uint16Array.from(p.category);
  const item = Int32Array.from(p.item);
  const index = new Map();
  for (let i = 0; i < n; i += 1) index.set(item[i], i);
  const grid = Array.from({ length: GRID * GRID }, () => []);
  for (let i = 0; i < n; i += 1) grid[cell(x[i]) + GRID * cell(y[i])].push(i);
  points = { n, x, y, cat, item, thumb: p.thumbnail, index, grid };
  inView = new Int32Array(n);
  categories = data.categories;
  picked = null;
  selectNone();
  renderLegend();
  needsFit = true;
  resize();
}

const cell = (u) => Math.max(0, Math.min(GRID - 1, Math.floor(u * GRID)));

function renderLegend() {
  const counts = new Array(categories.length).fill(0);
  for (let i = 0; i < points.n; i += 1) counts[points.cat[i]] += 1;
  legend.replaceChildren(
    ...categories.map((name, c) => {
      const button = el(
        "button",
        { type: "button", className: "atlas-key", "aria-pressed": "false", "data-category": String(c) },
        el("span", { className: "atlas-swatch", "data-colour": String(c) }),
        el("span", { text: `${name} ${counts[c]}` }),
      );
      button.querySelector(".atlas-swatch").style.background = colour(c); // CSSOM, not an inline style attribute
      button.addEventListener("click", () => {
        picked = picked === c ? null : c;
        for (const other of legend.querySelectorAll(".atlas-key")) {
          other.setAttribute("aria-pressed", String(Number(other.dataset.category) === picked));
        }
        requestDraw();
      });
      return el("li", {}, button);
    }),
  );
}

// ---------- view ----------

function resize() {
  const rect = stage.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  size = { w: Math.max(1, rect.width), h: Math.max(1, rect.height), dpr };
  canvas.width = Math.round(size.w * dpr);
  canvas.height = Math.round(size.h * dpr);
  const fit = fitted();
  if (needsFit || !points) {
    fitView();
  } else {
    // Keep the same part of the map in the middle, at the same zoom relative to the fitted view.
    const relative = view.scale / fitScale;
    const cx = (size.w / 2 - view.x) / view.scale;
    const cy = (size.h / 2 - view.y) / view.scale;
    fitScale = fit;
    view.scale = relative * fit;
    view.x = size.w / 2 - cx * view.scale;
    view.y = size.h / 2 - cy * view.scale;
  }
  requestDraw();
}

function fitView() {
  fitScale = fitted();
  const free = size.h - legendRoom();
  view = { scale: fitScale, x: (size.w - fitScale) / 2, y: Math.max(8, (free - fitScale) / 2) };
  needsFit = !points;
  requestDraw();
}

/** The scale at which the whole map fits the canvas above the legend. */
function fitted() {
  return Math.max(40, Math.min(size.w - 24, size.h - legendRoom() - 16));
}

const legendRoom = () => (legend.offsetHeight ? legend.offsetHeight + 12 : 0);

function zoomAt(px, py, factor) {
  const scale = Math.max(fitScale * ZOOM_MIN, Math.min(fitScale * ZOOM_MAX, view.scale * factor));
  const f = scale / view.scale;
  view = { scale, x: px - (px - view.x) * f, y: py - (py - view.y) * f };
  requestDraw();
}

function centreOn(i) {
  view.x = size.w / 2 - points.x[i] * view.scale;
  view.y = size.h / 2 - points.y[i] * view.scale;
  requestDraw();
}

// ---------- drawing ----------

function requestDraw() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(draw);
}

function thumbFor(url) {
  let image = thumbs.get(url);
  if (image) {
    thumbs.delete(url); // most recently used last
    thumbs.set(url, image);
    return image;
  }
  image = new Image();
  image.decoding = "async";
  image.onload = requestDraw;
  image.src = url;
  thumbs.set(url, image);
  if (thumbs.size > THUMB_CACHE) thumbs.delete(thumbs.keys().next().value);
  return image;
}

function draw() {
  scheduled = false;
  const started = performance.now();
  frames += 1;
  const { w, h, dpr } = size;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  canvas.dataset.view = JSON.stringify({ scale: view.scale, x: view.x, y: view.y });
  if (!points) {
    canvas.dataset.drawn = "0";
    canvas.dataset.thumbs = "0";
    return;
  }
  const { x, y, cat, n } = points;
  const { scale, x: ox, y: oy } = view;
  const margin = 40;
  let count = 0;
  for (let i = 0; i < n; i += 1) {
    const sx = x[i] * scale + ox;
    const sy = y[i] * scale + oy;
    if (sx > -margin && sx < w + margin && sy > -margin && sy < h + margin) inView[count++] = i;
  }
  const thumbMode = count <= MAX_THUMBS;
  // Thumbnails as large as the points in view leave room for, up to their own 64 px (no upscaling blur).
  const box = thumbMode ? Math.max(20, Math.min(64, 0.6 * Math.sqrt((w * h) / Math.max(1, count)))) : 0;
  let thumbsDrawn = 0;

  if (thumbMode) {
    for (let k = 0; k < count; k += 1) {
      const i = inView[k];
      const sx = x[i] * scale + ox;
      const sy = y[i] * scale + oy;
      ctx.globalAlpha = picked === null || cat[i] === picked ? 1 : 0.18;
      const image = thumbFor(points.thumb[i]);
      if (image.complete && image.naturalWidth > 0) {
        const f = box / Math.max(image.naturalWidth, image.naturalHeight);
        const iw = image.naturalWidth * f;
        const ih = image.naturalHeight * f;
        ctx.fillStyle = colour(cat[i]);
        ctx.fillRect(sx - iw / 2 - 2, sy - ih / 2 - 2, iw + 4, ih + 4);
        ctx.drawImage(image, sx - iw / 2, sy - ih / 2, iw, ih);
        thumbsDrawn += 1;
      } else {
        ctx.fillStyle = colour(cat[i]);
        ctx.beginPath();
        ctx.arc(sx, sy, DOT + 1, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    ctx.globalAlpha = 1;
  } else {
    // One path per category: thousands of dots cost a handful of fill() calls.
    for (let c = 0; c < categories.length; c += 1) {
      ctx.globalAlpha = picked === null || c === picked ? 0.85 : 0.12;
      ctx.fillStyle = colour(c);
      ctx.beginPath();
      for (let k = 0; k < count; k += 1) {
        const i = inView[k];
        if (cat[i] !== c) continue;
        const sx = x[i] * scale + ox;
        const sy = y[i] * scale + oy;
        ctx.moveTo(sx + DOT, sy);
        ctx.arc(sx, sy, DOT, 0, Math.PI * 2);
      }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }
  lastBox = box;
  drawSelection(box);
  if (hover >= 0) {
    ring(hover, thumbMode ? box / 2 + 4 : DOT + 4, "rgba(0,0,0,0.55)", 2);
    placeTip(hover);
  }
  canvas.dataset.drawn = String(count);
  canvas.dataset.thumbs = String(thumbsDrawn);
  canvas.dataset.frames = String(frames);
  canvas.dataset.ms = (performance.now() - started).toFixed(2); // this frame's drawing (bench/map_page.py)
}

function screenOf(i) {
  return [points.x[i] * view.scale + view.x, points.y[i] * view.scale + view.y];
}

function ring(i, radius, stroke, width) {
  const [sx, sy] = screenOf(i);
  ctx.beginPath();
  ctx.arc(sx, sy, radius, 0, Math.PI * 2);
  ctx.lineWidth = width + 2;
  ctx.strokeStyle = "rgba(255,255,255,0.9)";
  ctx.stroke();
  ctx.lineWidth = width;
  ctx.strokeStyle = stroke;
  ctx.stroke();
}

function drawSelection(box) {
  if (!selected) return;
  const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#3b5bdb";
  const radius = box ? box / 2 + 5 : DOT + 5;
  const [sx, sy] = screenOf(selected.i);
  ctx.lineWidth = 1.5;
  ctx.strokeStyle = accent;
  ctx.beginPath();
  for (const j of selected.neighbours) {
    const [nx, ny] = screenOf(j);
    ctx.moveTo(sx, sy);
    ctx.lineTo(nx, ny);
  }
  ctx.stroke();
  for (const j of selected.neighbours) ring(j, radius - 2, accent, 2);
  ring(selected.i, radius + 2, "#111", 3);
}

// ---------- picking ----------

function hitTest(px, py) {
  if (!points) return -1;
  const reach = (lastBox ? lastBox / 2 + 2 : HIT_PX) / view.scale;
  const u = (px - view.x) / view.scale;
  const v = (py - view.y) / view.scale;
  let best = -1;
  let bestD = reach * reach;
  for (let cy = cell(v - reach); cy <= cell(v + reach); cy += 1) {
    for (let cx = cell(u - reach); cx <= cell(u + reach); cx += 1) {
      for (const i of points.grid[cx + GRID * cy]) {
        const d = (points.x[i] - u) ** 2 + (points.y[i] - v) ** 2;
        if (d <= bestD) {
          bestD = d;
          best = i;
        }
      }
    }
  }
  return best;
}

function selectNone() {
  selected = null;
  neighbourSeq += 1;
  panelTitle.textContent = "Choose an item";
  panelHint.hidden = false;
  selectedFrame.hidden = true;
  panelStatus.textContent = "";
  neighboursList.replaceChildren();
  delete neighboursList.dataset.item;
  requestDraw();
}

async function select(i) {
  if (i < 0) return;
  const mine = ++neighbourSeq;
  const item = points.item[i];
  selected = { i, neighbours: [] };
  panelTitle.textContent = `#${item} · ${categories[points.cat[i]]}`;
  panelHint.hidden = true;
  selectedImage.src = points.thumb[i];
  selectedImage.alt = `${categories[points.cat[i]]} #${item}`;
  selectedFrame.hidden = false;
  panelStatus.textContent = "Finding its neighbours…";
  panelStatus.classList.remove("is-error");
  neighboursList.replaceChildren();
  requestDraw();
  if (!modelSelect.value) {
    panelStatus.textContent = "No model can search: build one first.";
    return;
  }
  const result = await request("POST", "/api/search", { item, model: Number(modelSelect.value), k: NEIGHBOURS });
  if (mine !== neighbourSeq) return;
  if (!result.ok) {
    panelStatus.textContent = detailOf(result, "Its neighbours could not be found.");
    panelStatus.classList.add("is-error");
    return;
  }
  if (result.data.query && result.data.query.image) selectedImage.src = result.data.query.image;
  const found = result.data.results || [];
  selected.neighbours = found.map((r) => points.index.get(r.item)).filter((j) => j !== undefined);
  const off = found.length - selected.neighbours.length;
  panelStatus.textContent =
    `${found.length} nearest by ${result.data.model.name}` + (off ? ` (${off} not on this map)` : "") + ".";
  neighboursList.dataset.item = String(item);
  neighboursList.replaceChildren(
    ...found.map((r) => {
      const button = el(
        "button",
        { type: "button", className: "atlas-neighbour", "data-testid": "neighbour", "data-item": String(r.item) },
        el("img", { src: r.image, alt: "", loading: "lazy", decoding: "async" }),
        el(
          "span",
          { className: "atlas-neighbour-text" },
          el("span", { text: `#${r.item} · ${r.category}` }),
          el("span", { className: "muted", text: `distance ${r.distance.toFixed(3)}` }),
        ),
      );
      const j = points.index.get(r.item);
      if (j === undefined) button.disabled = true;
      else
        button.addEventListener("click", () => {
          centreOn(j);
          select(j);
        });
      return el("li", {}, button);
    }),
  );
  requestDraw();
}

// ---------- input ----------

const pointers = new Map();
let drag = null; // {x, y, ox, oy, moved}
let pinch = null; // {d, scale, cx, cy, ox, oy}

function local(event) {
  const rect = canvas.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  pointers.set(event.pointerId, local(event));
  if (pointers.size === 1) {
    const [px, py] = local(event);
    drag = { x: px, y: py, ox: view.x, oy: view.y, moved: false };
  } else if (pointers.size === 2) {
    const [[ax, ay], [bx, by]] = [...pointers.values()];
    pinch = { d: Math.hypot(ax - bx, ay - by) || 1, scale: view.scale, cx: (ax + bx) / 2, cy: (ay + by) / 2 };
    pinch.ox = view.x;
    pinch.oy = view.y;
    if (drag) drag.moved = true; // a pinch is never a click
  }
});

canvas.addEventListener("pointermove", (event) => {
  const [px, py] = local(event);
  if (pointers.has(event.pointerId)) pointers.set(event.pointerId, [px, py]);
  if (pinch && pointers.size >= 2) {
    const [[ax, ay], [bx, by]] = [...pointers.values()];
    const factor = Math.hypot(ax - bx, ay - by) / pinch.d;
    const scale = Math.max(fitScale * ZOOM_MIN, Math.min(fitScale * ZOOM_MAX, pinch.scale * factor));
    const f = scale / pinch.scale;
    const cx = (ax + bx) / 2;
    const cy = (ay + by) / 2;
    view = { scale, x: cx - (pinch.cx - pinch.ox) * f, y: cy - (pinch.cy - pinch.oy) * f };
    requestDraw();
    return;
  }
  if (drag && pointers.size === 1) {
    const dx = px - drag.x;
    const dy = py - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) > 4) drag.moved = true;
    if (drag.moved) {
      view.x = drag.ox + dx;
      view.y = drag.oy + dy;
      tip.hidden = true;
      requestDraw();
    }
    return;
  }
  if (event.pointerType === "mouse") showTip(px, py);
});

function release(event) {
  const wasClick = drag && !drag.moved && pointers.size === 1 && event.type === "pointerup";
  pointers.delete(event.pointerId);
  if (pointers.size < 2) pinch = null;
  if (pointers.size === 0) {
    if (wasClick) {
      const [px, py] = local(event);
      const i = hitTest(px, py);
      if (i >= 0) select(i);
    }
    drag = null;
  } else if (pointers.size === 1) {
    const [[px, py]] = [...pointers.values()];
    drag = { x: px, y: py, ox: view.x, oy: view.y, moved: true };
  }
}

canvas.addEventListener("pointerup", release);
canvas.addEventListener("pointercancel", release);
canvas.addEventListener("pointerleave", () => {
  tip.hidden = true;
  if (hover >= 0) {
    hover = -1;
    requestDraw();
  }
});

canvas.addEventListener(
  "wheel",
  (event) => {
    event.preventDefault();
    const [px, py] = local(event);
    const delta = event.deltaMode === 1 ? event.deltaY * 16 : event.deltaY;
    zoomAt(px, py, Math.exp(-delta * 0.0015));
  },
  { passive: false },
);

canvas.addEventListener("keydown", (event) => {
  const step = 60;
  const keys = {
    "+": () => zoomAt(size.w / 2, size.h / 2, 1.5),
    "=": () => zoomAt(size.w / 2, size.h / 2, 1.5),
    "-": () => zoomAt(size.w / 2, size.h / 2, 1 / 1.5),
    0: fitView,
    ArrowLeft: () => pan(step, 0),
    ArrowRight: () => pan(-step, 0),
    ArrowUp: () => pan(0, step),
    ArrowDown: () => pan(0, -step),
    Escape: selectNone,
  };
  const action = keys[event.key];
  if (action) {
    event.preventDefault();
    action();
  }
});

function pan(dx, dy) {
  view.x += dx;
  view.y += dy;
  requestDraw();
}

function showTip(px, py) {
  const i = hitTest(px, py);
  if (i !== hover) {
    hover = i;
    requestDraw();
  }
  if (i < 0) {
    tip.hidden = true;
    canvas.classList.remove("is-pointing");
    return;
  }
  canvas.classList.add("is-pointing");
  tip.textContent = `#${points.item[i]} · ${categories[points.cat[i]]}`;
  tip.hidden = false;
  placeTip(i);
}

function placeTip(i) {
  const [sx, sy] = screenOf(i);
  tip.style.transform = `translate(${Math.round(sx + 12)}px, ${Math.round(sy + 12)}px)`; // CSSOM: allowed by the CSP
}

$("zoom-in").addEventListener("click", () => zoomAt(size.w / 2, size.h / 2, 1.6));
$("zoom-out").addEventListener("click", () => zoomAt(size.w / 2, size.h / 2, 1 / 1.6));
$("zoom-fit").addEventListener("click", fitView);
fsSelect.addEventListener("change", loadMap);
modelSelect.addEventListener("change", () => {
  if (selected) select(selected.i);
});
buildButton.addEventListener("click", async () => {
  buildButton.disabled = true;
  say("Asking a worker to lay out this map…");
  const result = await request("POST", `/api/maps/${encodeURIComponent(fsSelect.value)}/build`);
  buildButton.disabled = false;
  if (!result.ok) {
    say(detailOf(result, "The map could not be queued."), "error");
    return;
  }
  await reloadMaps();
});

new ResizeObserver(resize).observe(stage);
start();
