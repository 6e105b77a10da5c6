/* Small DOM helpers shared by the staff pages. */

/** el("p", {className: "x", text: "hi", "data-id": 3}, child, ...): attributes null/false are left out. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

/** Whether a key press belongs to a form field (then page shortcuts leave it alone). */
export function typing(event) {
  return Boolean(event.target.closest && event.target.closest("input, textarea, select, [contenteditable]"));
}
