/* Search by photo: take or choose a photo (or tap a result for "more like this") and show the nearest catalog
 * items from POST /api/search. Which models one may use is the API's rule (GET /api/search/models): staff pick
 * any, everyone else gets the public search model, or is told why there is none yet.
 *
 * document.body.dataset.state is loading | idle | searching | ready | error | closed.
 */
import { detailOf, request, requestForm } from "./api.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
const form = $("finder-form");
const camera = $("camera");
const chooser = $("photo");
const again = $("again");
const kSelect = $("k");
const modelField = $("model-field");
const modelSelect = $("model");
const modelNote = $("model-note");
const previewFrame = $("preview-frame");
const preview = $("preview");
const statusEl = $("status");
const resultsSection = $("results-section");
const resultsList = $("results");

// Phone photos are 3-12 MB: sent at most this many pixels on the longer side (the models look at 224-256 px),
// which also bakes the EXIF orientation into the pixels. Smaller files go as they are.
const MAX_SIDE = 1600;
const SHRINK_ABOVE_BYTES = 1_500_000;
const PREVIEW_SIDE = 480;

let query = null; // {photo: Blob} | {item: number, image: string}
let seq = 0;

function setState(next) {
  document.body.dataset.state = next;
}

function say(text, tone = "") {
  statusEl.textContent = text;
  statusEl.classList.toggle("is-error", tone === "error");
}


// ---------- models ----------

async function loadModels() {
  const result = await request("GET", "/api/search/models");
  if (!result.ok) {
    say(detailOf(result, "Search is not available right now."), "error");
    setState("error");
    return false;
  }
  const { models, detail } = result.data;
  if (!models || models.length === 0) {
    say(detail || "Search is not open yet.");
    setState("closed");
    for (const input of [camera, chooser]) input.disabled = true;
    return false;
  }
  modelSelect.replaceChildren(
    ...models.map((m) => el("option", { value: String(m.id), text: m.photo ? m.name : `${m.name} (by item only)` })),
  );
  modelSelect.value = String(result.data.default ?? models[0].id);
  modelField.hidden = models.length < 2;
  noteModel(models);
  modelSelect.addEventListener("change", () => {
    noteModel(models);
    if (query) search();
  });
  return true;
}

function noteModel(models) {
  const chosen = models.find((m) => String(m.id) === modelSelect.value) || models[0];
  modelNote.textContent = models.length < 2 ? `Searching with ${chosen.name}.` : "";
}

// ---------- the query ----------

async function bitmapOf(file) {
  if (typeof createImageBitmap !== "function") return null;
  try {
    return await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    return null; // not something this browser can decode: the server says what is wrong with it
  }
}

function drawn(bitmap, side) {
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas;
}

async function shrunk(file, bitmap) {
  if (!bitmap || file.size <= SHRINK_ABOVE_BYTES) return file;
  const blob = await new Promise((resolve) => drawn(bitmap, MAX_SIDE).toBlob(resolve, "image/jpeg", 0.92));
  return blob || file;
}

function showPreview(src) {
  if (!src) {
    previewFrame.hidden = true;
    return;
  }
  preview.src = src; // a small data: URL for a photo (the CSP allows data: images, not blob:), a /media/ URL for an item
  previewFrame.hidden = false;
}

async function onFile(input) {
  const file = input.files && input.files[0];
  input.value = ""; // choosing the same photo again still searches
  if (!file) return;
  const bitmap = await bitmapOf(file);
  showPreview(bitmap ? drawn(bitmap, PREVIEW_SIDE).toDataURL("image/jpeg", 0.85) : null);
  const photo = await shrunk(file, bitmap);
  if (bitmap) bitmap.close();
  query = { photo, name: photo === file ? file.name || "photo" : "photo.jpg" };
  search();
}

// ---------- searching ----------

async function search() {
  if (!query) return;
  const mine = ++seq;
  setState("searching");
  again.disabled = true;
  say("Searching…");
  const k = Number(kSelect.value);
  const model = modelSelect.value ? Number(modelSelect.value) : null;
  let result;
  if (query.photo) {
    const body = new FormData();
    body.append("image", query.photo, query.name);
    body.append("k", String(k));
    if (model) body.append("model", String(model));
    result = await requestForm("/api/search", body);
  } else {
    result = await request("POST", "/api/search", { item: query.item, k, ...(model ? { model } : {}) });
  }
  if (mine !== seq) return; // a newer search started meanwhile
  again.disabled = false;
  if (!result.ok) {
    const wait = result.status === 429 && result.retryAfter ? ` Try again in ${result.retryAfter} s.` : "";
    say(detailOf(result, `The search failed (${result.status || "no answer"}).`) + wait, "error");
    setState("error");
    return;
  }
  render(result.data);
}

function render(data) {
  const results = data.results || [];
  resultsList.replaceChildren(
    ...results.map((r) => {
      const img = el("img", { src: r.image, alt: `${r.category} #${r.item}`, loading: "lazy", decoding: "async" });
      const button = el(
        "button",
        { type: "button", className: "finder-result", "data-testid": "result", "data-item": String(r.item) },
        el("span", { className: "finder-thumb" }, img),
        el(
          "span",
          { className: "finder-caption" },
          el("span", { className: "finder-category", text: r.category }),
          el("span", { className: "finder-distance", text: `#${r.rank} · distance ${r.distance.toFixed(3)}` }),
        ),
      );
      button.title = "More like this";
      button.addEventListener("click", () => moreLike(r));
      return el("li", {}, button);
    }),
  );
  resultsSection.hidden = false;
  const what = data.query ? `item #${data.query.item}` : "your photo";
  say(
    results.length
      ? `${results.length} items closest to ${what}, by ${data.model.name}. Tap one for more like it.`
      : "No items found.",
  );
  setState("ready");
}

function moreLike(result) {
  query = { item: result.item, image: result.image };
  showPreview(result.image);
  search();
  previewFrame.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

// ---------- wiring ----------

camera.addEventListener("change", () => onFile(camera));
chooser.addEventListener("change", () => onFile(chooser));
form.addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
kSelect.addEventListener("change", () => {
  if (query) search();
});

setState("loading");
loadModels().then((open) => {
  if (!open) return;
  again.disabled = true;
  say("Take or choose a photo to search.");
  setState("idle");
});
