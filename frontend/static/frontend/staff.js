/* Staff page: show only the fields that fit the upload kind and search method, and keep build progress live. */
const form = document.querySelector("[data-testid=upload-form]");

function syncKind() {
  const kind = form.querySelector("input[name=kind]:checked").value;
  form.querySelectorAll(".weights-only").forEach((el) => { el.hidden = kind !== "weights"; });
  form.querySelectorAll(".embeddings-only").forEach((el) => { el.hidden = kind !== "embeddings"; });
}

function syncLayers() {
  const arch = form.querySelector("select[name=architecture]").value;
  const layer = form.querySelector("select[name=layer]");
  let firstVisible = null;
  for (const option of layer.options) {
    option.hidden = option.dataset.architecture !== arch;
    if (!option.hidden && !firstVisible) firstVisible = option;
  }
  if (layer.selectedOptions[0]?.hidden && firstVisible) firstVisible.selected = true;
}

/** Exact search has no trees and no search budget. */
function syncSearch() {
  const search = form.querySelector("input[name=search]:checked").value;
  form.querySelector(".annoy-params").hidden = search === "exact";
}

form.addEventListener("change", () => {
  syncKind();
  syncLayers();
  syncSearch();
});
syncKind();
syncLayers();
syncSearch();

// A ready model being refreshed stays ready; its stage shows the step under way.
const busy = (status, stage) =>
  status === "queued" || status === "running" || (status === "ready" && Boolean(stage) && stage !== "ready");

async function poll() {
  try {
    const response = await fetch("/api/variants", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const { variants } = await response.json();
    let stillBusy = false;
    for (const v of variants) {
      const row = document.querySelector(`[data-testid=variant-row][data-variant-id="${v.id}"]`);
      if (!row) {
        if (busy(v.status, v.stage)) stillBusy = true;
        continue;
      }
      const cell = row.querySelector("[data-testid=build]");
      const wasBusy = busy(cell.dataset.status, cell.dataset.stage);
      cell.dataset.status = v.status;
      cell.dataset.stage = v.stage;
      cell.querySelector(".build-stage").textContent = v.status === "running" ? `running · ${v.stage}` : v.status;
      cell.querySelector("progress").value = v.progress;
      cell.querySelector(".build-error").textContent = v.status === "failed" || v.error ? v.error : "";
      if (busy(v.status, v.stage)) stillBusy = true;
      if (wasBusy && !busy(v.status, v.stage)) {
        window.location.reload(); // votes, scores and actions change with the build
        return;
      }
    }
    if (stillBusy) setTimeout(poll, 2000);
  } catch {
    setTimeout(poll, 5000);
  }
}

if (document.querySelector("[data-testid=build][data-status=queued], [data-testid=build][data-status=running], [data-testid=build][data-status=ready]:not([data-stage=ready])"))
  poll();
