/* Input on the swipe page: dragging the card (mouse, pen or touch, with flicks) and the arrow keys.
 * They only decide; what a verdict or an undo does is the page's business.
 */

// A drag commits past 30% of the card width, or on a flick: at least 0.6 px/ms (a quick thumb
// flick measures 1-2 px/ms, a slow drag 0.1-0.3) that has travelled 40 px.
export const SWIPE_FRACTION = 0.3;
const FLICK_SPEED = 0.6;
const FLICK_MIN_PX = 40;
const DRAG_SLOP_PX = 4;

/** Velocity in px/ms over the last ~100 ms of the drag. */
function velocity(samples) {
  const last = samples[samples.length - 1];
  const first = samples.find((s) => last.t - s.t <= 100) || last;
  return last.t > first.t ? (last.x - first.x) / (last.t - first.t) : 0;
}

/**
 * Lets the card be dragged. view: the CardView (pose, springBack...). canDrag(): whether input is accepted now.
 * onVerdict("dope" | "nope"): a drag far or fast enough; isReady(): checked again when the drag ends.
 */
export function attachDrag(view, { canDrag, isReady, onVerdict }) {
  const card = view.card;
  let drag = null;

  card.addEventListener("pointerdown", (event) => {
    if (!canDrag() || drag) return;
    if (event.pointerType === "mouse" && event.button !== 0) return;
    drag = {
      id: event.pointerId,
      x0: event.clientX,
      dx: 0,
      width: view.width,
      moved: false,
      samples: [{ t: event.timeStamp, x: event.clientX }],
    };
    try {
      card.setPointerCapture(event.pointerId);
    } catch {
      // The pointer is already gone; pointerup will not come, so forget the drag.
      drag = null;
      return;
    }
    view.startDrag();
  });

  card.addEventListener("pointermove", (event) => {
    if (!drag || event.pointerId !== drag.id) return;
    drag.dx = event.clientX - drag.x0;
    drag.samples.push({ t: event.timeStamp, x: event.clientX });
    if (drag.samples.length > 12) drag.samples.shift();
    if (!drag.moved && Math.abs(drag.dx) > DRAG_SLOP_PX) {
      drag.moved = true;
      view.markDragging();
    }
    if (drag.moved) view.pose(drag.dx, drag.width, SWIPE_FRACTION);
  });

  function endDrag(event, cancelled) {
    if (!drag || event.pointerId !== drag.id) return;
    const d = drag;
    drag = null;
    if (!d.moved) return;
    const v = velocity(d.samples);
    const far = Math.abs(d.dx) >= d.width * SWIPE_FRACTION;
    const flick = Math.abs(v) >= FLICK_SPEED && Math.abs(d.dx) >= FLICK_MIN_PX && Math.sign(v) === Math.sign(d.dx);
    if (!cancelled && isReady() && (far || flick)) onVerdict(d.dx > 0 ? "dope" : "nope");
    else view.springBack();
  }

  card.addEventListener("pointerup", (event) => endDrag(event, false));
  card.addEventListener("pointercancel", (event) => endDrag(event, true));
  card.addEventListener("lostpointercapture", (event) => endDrag(event, true));
}

/** → dope, ← nope, u / Backspace undo; ignored while typing in a field, and a held key does not repeat. */
export function attachKeys({ onVerdict, onUndo }) {
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.target.closest && event.target.closest("input, textarea, select, [contenteditable]")) return;
    const action = { ArrowRight: "dope", ArrowLeft: "nope", u: "undo", U: "undo", Backspace: "undo" }[event.key];
    if (!action) return;
    event.preventDefault();
    if (event.repeat) return; // a held key must not fire a burst of votes
    if (action === "undo") onUndo();
    else onVerdict(action);
  });
}
