/* Staff: one model's examples, live (GET /api/leaderboard/<id>/examples as staff). body[data-state]: loading | ready
 * | error. */
import { detailOf, request } from "./api.js";
import { el } from "./dom.js";
import { examplesUrl, reasonsText, renderExamples } from "./examples.js";

const page = document.getElementById("examples-page");
const statusEl = document.getElementById("status");
const slot = document.getElementById("examples-slot");

async function load() {
  document.body.dataset.state = "loading";
  const result = await request("GET", examplesUrl(page.dataset.variantId));
  if (!result.ok || !Array.isArray(result.data.approved)) {
    statusEl.textContent = detailOf(result, `The server answered ${result.status || "nothing"}.`);
    statusEl.classList.add("is-error");
    document.body.dataset.state = "error";
    return;
  }
  const { approved, rejected, reasons } = result.data;
  statusEl.textContent = approved.length + rejected.length ? "" : "No card of this model has enough votes yet.";
  const why = reasonsText(reasons);
  slot.replaceChildren(
    el("p", { className: "why-summary", "data-testid": "why-summary" }, el("strong", { text: "Why nope, over all its cards: " }), why || "no reasons given yet."),
    renderExamples(result.data),
  );
  document.body.dataset.state = "ready";
}

load();
