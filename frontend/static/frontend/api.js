/* The one way the pages talk to the JSON API: fetch() that never throws, CSRF header on writes.
 *
 * request(method, url, body) -> {ok, status, data, retryAfter}; status 0 means no answer,
 * data is always an object (the API's errors carry data.detail). requestForm(url, formData) posts a
 * multipart form (a photo) the same way.
 */

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "csrftoken") return decodeURIComponent(rest.join("="));
  }
  return "";
}

export async function request(method, url, body) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRFToken"] = csrfToken();
    init.body = JSON.stringify(body || {});
  }
  return send(url, init);
}

export async function requestForm(url, form) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  return send(url, { method: "POST", headers, credentials: "same-origin", cache: "no-store", body: form });
}

async function send(url, init) {
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    return { ok: false, status: 0, data: { detail: "Could not reach the server. Check your connection." } };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!data || typeof data !== "object") data = {};
  return { ok: response.ok, status: response.status, data, retryAfter: response.headers.get("Retry-After") };
}

/** The API's own message, or `fallback`. */
export function detailOf(result, fallback) {
  const detail = result.data && result.data.detail;
  return typeof detail === "string" && detail ? detail : fallback;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
