/* A model's examples (GET /api/leaderboard/<id>/examples): its most approved and most rejected cards, each the
 * query beside the match with the votes on it. Drawn on the leaderboard (models out of the rotation) and on the
 * staff examples page (every model; staff also get the nope reasons).
 */
import { el } from "./dom.js";

export const examplesUrl = (id) => `/api/leaderboard/${encodeURIComponent(id)}/examples`;

const REASONS = { kind: "other kind", colour: "other colour", pattern: "other pattern", other: "other" };

export function reasonsText(reasons) {
  const parts = Object.entries(reasons || {})
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, n]) => `${REASONS[reason] || reason} ${n}`);
  return parts.join(" · ");
}

function tile(example) {
  const { query, match } = example;
  const reasons = reasonsText(example.reasons);
  return el(
    "li",
    { className: "example", "data-testid": "example", "data-pair-id": example.pair_id },
    el(
      "div",
      { className: "example-pics" },
      el("div", { className: "thumb" }, el("img", { src: query.image, alt: `query #${query.id}, ${query.category}`, loading: "lazy", decoding: "async" })),
      el("div", { className: "thumb" }, el("img", { src: match.image, alt: `match #${match.id}, ${match.category}`, loading: "lazy", decoding: "async" })),
    ),
    el(
      "div",
      { className: "example-meta" },
      el("span", { className: "v-dope", "data-testid": "example-dope", text: `✓ ${example.dope}` }),
      el("span", { className: "v-nope", "data-testid": "example-nope", text: `✕ ${example.nope}` }),
      el("span", { className: "muted", text: `${query.category} → ${match.category}` }),
    ),
    reasons ? el("div", { className: "example-reasons", "data-testid": "example-reasons", title: "Why nope, as voters said", text: reasons }) : null,
  );
}

function group(title, examples, empty) {
  return el(
    "div",
    { className: "example-group" },
    el("h3", { text: title }),
    examples.length ? el("ul", { className: "example-grid" }, ...examples.map(tile)) : el("p", { className: "muted", text: empty }),
  );
}

/** The examples as a section; `data` is the API's answer. */
export function renderExamples(data) {
  const note = `Cards with at least ${data.min_votes} counted ${data.min_votes === 1 ? "vote" : "votes"}.`;
  return el(
    "section",
    { className: "examples", "data-testid": "examples", "data-variant-id": data.variant_id },
    group("Most approved", data.approved, "No card has more dope than nope votes yet."),
    group("Most rejected", data.rejected, "No card has more nope than dope votes yet."),
    el("p", { className: "muted examples-note", text: note }),
  );
}
