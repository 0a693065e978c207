// DOM building without innerHTML: every server string becomes a text node, so markup in an ID stays text.

/** `h("td", {class: "num"}, "3")`: attributes are set one by one; children are nodes or strings (text nodes). */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

// Invisible and direction-changing characters (Unicode "format", Cf): zero-width spaces and joiners, bidi overrides
// and isolates, the BOM. An operator must see that an ID holds one, so it is shown as a marked code point.
const INVISIBLE = /\p{Cf}/gu;

/** An ID as text an operator can read: each invisible character becomes a visible `U+XXXX` mark. */
export function idText(value) {
  const text = String(value ?? "");
  const span = h("span", { class: "id" });
  let last = 0;
  for (const match of text.matchAll(INVISIBLE)) {
    if (match.index > last) span.append(document.createTextNode(text.slice(last, match.index)));
    const code = match[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    span.append(h("span", { class: "ctl", title: "invisible character" }, `U+${code}`));
    last = match.index + match[0].length;
  }
  if (last < text.length) span.append(document.createTextNode(text.slice(last)));
  return span;
}

/** A time in the browser's locale; the exact UTC instant in the title. */
export function timeText(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const moment = new Date(String(iso));
  if (Number.isNaN(moment.getTime())) return h("span", {}, String(iso));
  return h("time", { datetime: moment.toISOString(), title: `${moment.toISOString()} (UTC)` }, moment.toLocaleString());
}

const KNOWN_BADGES = new Set([
  "open", "cancelled", "refunded", "returned", "succeeded", "failed", "retrying", "pending",
  "healthy", "failing", "degraded", "disabled", "ok",
]);

export function badge(status) {
  const text = String(status ?? "unknown");
  return h("span", { class: KNOWN_BADGES.has(text) ? `badge ${text}` : "badge", "data-status": text }, text);
}

export function notice(text, kind = "notice") {
  return h("p", { class: kind, role: kind === "error" ? "alert" : null }, text);
}
