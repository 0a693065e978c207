// The Recipe Relay operator console: sign-in, hash routes, and one view per sidebar entry plus the recipe page.
import { ApiError, SignedOut, call, clearKey, getJson, getKey, postJson, query, setKey, whenUnauthorized } from "./api.js";
import { badge, clear, h, idText, notice, timeText } from "./dom.js";

const LOOKUPS = [
  ["recipeId", "Recipe ID", "recipe ID"],
  ["orderId", "Order ID", "order ID"],
  ["orderNumber", "Order number", "order number"],
];
const NOT_YET = "not available on this server yet";
const POLL_EVERY_MS = 1000;
const POLL_FOR_MS = 60000;
const UNSETTLED = new Set(["pending", "retrying"]);
// After a pause or resume: the overview shows it once the association store has read it, usually within a second.
const STATE_FIRST_LOOK_MS = 300;
const STATE_POLL_FOR_MS = 10000;

const $ = (id) => document.getElementById(id);

// --- the current view: everything it started (requests, polls, blob URLs) ends when another view replaces it ----

let current = null;

function newView() {
  if (current) current.close();
  const controller = new AbortController();
  const cleanups = [];
  current = {
    signal: controller.signal,
    get live() {
      return !controller.signal.aborted;
    },
    onClose(cleanup) {
      cleanups.push(cleanup);
    },
    close() {
      controller.abort();
      for (const cleanup of cleanups.splice(0)) cleanup();
    },
  };
  return current;
}

function announce(text) {
  const announcer = $("announcer");
  // Cleared first so the same sentence twice is still read out.
  announcer.textContent = "";
  requestAnimationFrame(() => {
    announcer.textContent = text;
  });
}

function isQuiet(error) {
  // Aborted (the view changed) or signed out (the sign-in form says why): nothing to show in the panel.
  return (error && error.name === "AbortError") || error instanceof SignedOut;
}

function describe(error) {
  return error instanceof ApiError ? error.describe() : `Unexpected error: ${String(error && error.message)}`;
}

/** A panel's answer to a failed call: the "not yet" notice for a 404 of an endpoint still being built. */
function failure(error, { newEndpoint = false, what = "This" } = {}) {
  if (newEndpoint && error instanceof ApiError && error.status === 404) {
    return notice(`${what} is ${NOT_YET}.`);
  }
  return notice(describe(error), "error");
}

// --- sign-in ---------------------------------------------------------------------------------------------------

function showSignIn(message) {
  if (current) current.close();
  current = null;
  clear($("view"));
  $("announcer").textContent = "";
  $("shell").hidden = true;
  $("signin").hidden = false;
  $("signin-message").textContent = message || "";
  const input = $("api-key");
  input.value = "";
  input.focus();
}

function showShell() {
  $("signin").hidden = true;
  $("shell").hidden = false;
  $("signin-message").textContent = "";
  route();
}

async function signIn(event) {
  event.preventDefault();
  const input = $("api-key");
  const key = input.value.trim();
  input.value = "";
  if (!key) {
    $("signin-message").textContent = "Enter an API key.";
    input.focus();
    return;
  }
  setKey(key);
  const button = event.target.querySelector("button");
  button.disabled = true;
  try {
    // Checks the key only: the lookup route authenticates before it reads its query, so no parameter = no lookup.
    await call("/api/v2/orders");
  } catch (error) {
    if (error instanceof SignedOut) return; // showSignIn already said why
    if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) {
      clearKey();
      $("signin-message").textContent = describe(error);
      input.focus();
      return;
    }
    // 400 (no lookup given) or 403 (this key may not look orders up): the key itself was accepted.
  } finally {
    button.disabled = false;
  }
  showShell();
}

function signOut() {
  clearKey();
  showSignIn("Signed out.");
}

// --- routing ---------------------------------------------------------------------------------------------------

function parseRoute() {
  const hash = location.hash.replace(/^#/, "") || "/orders";
  const [path, search = ""] = hash.split("?", 2);
  const params = new URLSearchParams(search);
  if (path === "/orders") return { name: "orders", params };
  if (path === "/dead-letters") return { name: "dead-letters", params };
  if (path === "/integrations") return { name: "integrations", params };
  if (path.startsWith("/recipe/") && path.length > "/recipe/".length) {
    let id;
    try {
      id = decodeURIComponent(path.slice("/recipe/".length));
    } catch {
      return null;
    }
    return { name: "recipe", id, params };
  }
  return null;
}

const VIEWS = {
  orders: ordersView,
  recipe: recipeView,
  integrations: integrationsView,
  "dead-letters": deadLettersView,
};

function route() {
  if (!getKey()) {
    showSignIn("");
    return;
  }
  const found = parseRoute();
  if (!found) {
    location.replace("#/orders");
    return;
  }
  const nav = found.name === "recipe" ? "orders" : found.name;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const view = newView();
  const root = clear($("view"));
  $("announcer").textContent = "";
  VIEWS[found.name](view, root, found);
}

// --- orders ----------------------------------------------------------------------------------------------------

function ordersView(view, root, { params }) {
  const found = LOOKUPS.find(([name]) => params.has(name));
  const field = found ? found[0] : "orderId";
  const value = found ? params.get(field) : "";

  const select = h(
    "select",
    { id: "search-field", name: "field" },
    LOOKUPS.map(([name, label]) => h("option", { value: name, selected: name === field }, label)),
  );
  const input = h("input", {
    id: "search-value",
    name: "value",
    type: "search",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "e.g. 999-63CHGJokGoxPfSba, 6182665224482 or 1022",
  });
  input.value = value;
  const form = h(
    "form",
    { class: "search", role: "search", "aria-label": "Find orders" },
    h("div", { class: "field" }, h("label", { for: "search-field" }, "Search by"), select),
    h("div", { class: "field grow" }, h("label", { for: "search-value" }, "Value"), input),
    h("button", { type: "submit", class: "primary" }, "Search"),
    found ? h("a", { href: "#/orders" }, "Newest orders") : null,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    const target = text ? `#/orders?${select.value}=${encodeURIComponent(text)}` : "#/orders";
    if (location.hash === target) route();
    else location.hash = target;
  });

  const results = h("section", { "aria-labelledby": "orders-heading", "aria-busy": "true" });
  root.append(h("h1", { id: "orders-heading" }, "Review Recent Orders"), form, results);
  input.focus();

  const label = found ? found[2] : "";
  const source = found
    ? (after) => `/api/v2/orders${query({ [field]: value, after })}`
    : (after) => `/api/v2/orders/recent${query({ limit: 25, after })}`;
  const describePage = (count, more) => {
    if (!found) return count ? `Newest orders first.` : "No orders yet.";
    // The searched value is an ID like any other: shown with its invisible characters marked, never reordering.
    if (!count) return [`No order has ${label} “`, idText(value), "”."];
    return [`${count}${more ? "+" : ""} order${count === 1 ? "" : "s"} with ${label} “`, idText(value), "”."];
  };
  orderList(view, results, source, {
    summary: describePage,
    newEndpoint: !found,
    what: "The recent orders list",
    hint: found ? "" : " Search by recipe ID, order ID or order number instead.",
  });
}

/** Pages of orders from `source(after)` into `container`, each a card, with "Load more" while there is a `next`. */
function orderList(view, container, source, { summary, newEndpoint = false, what = "This", hint = "" }) {
  const line = h("p", { class: "summary-line" }, "Loading…");
  const list = h("ol", { class: "cards", "aria-label": "Orders" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");
  container.append(line, list, more);
  let shown = 0;
  let next = null;

  async function load(after) {
    more.disabled = true;
    container.setAttribute("aria-busy", "true");
    try {
      const page = await getJson(source(after), { signal: view.signal });
      const orders = Array.isArray(page.orders) ? page.orders : [];
      for (const order of orders) list.append(orderCard(view, order));
      shown += orders.length;
      next = page.next || null;
      more.hidden = !next;
      line.replaceChildren(...[summary(shown, Boolean(next))].flat());
    } catch (error) {
      if (isQuiet(error)) return;
      const shownError = failure(error, { newEndpoint, what });
      line.replaceWith(shownError);
      if (newEndpoint && error instanceof ApiError && error.status === 404 && hint) shownError.append(hint);
      more.hidden = true;
    } finally {
      more.disabled = false;
      container.setAttribute("aria-busy", "false");
    }
  }

  more.addEventListener("click", () => load(next));
  load(undefined);
}

function totals(deliveries) {
  const counts = { deliveries: deliveries.length, attempts: 0, failed: 0, succeeded: 0, unsettled: 0 };
  for (const delivery of deliveries) {
    counts.attempts += Number(delivery.attempts) || 0;
    if (delivery.status === "failed") counts.failed += 1;
    if (delivery.status === "succeeded") counts.succeeded += 1;
    if (UNSETTLED.has(delivery.status)) counts.unsettled += 1;
  }
  return counts;
}

function totalsText(counts) {
  return (
    `${counts.deliveries} deliver${counts.deliveries === 1 ? "y" : "ies"}, ${counts.attempts} attempt` +
    `${counts.attempts === 1 ? "" : "s"}: ${counts.succeeded} succeeded, ${counts.failed} failed, ` +
    `${counts.unsettled} pending or retrying`
  );
}

/** One order: head, line items, deliveries and its Trigger Integrations controls; `update` redraws the data. */
function orderCard(view, order) {
  const card = h("article", { class: "card", dataset: { orderId: String(order.orderId ?? "") } });
  const body = h("div");
  const status = h("p", { class: "status-text", role: "status" });
  card.append(body, triggerControls(view, order, status, () => card), status);

  function update(next) {
    const deliveries = Array.isArray(next.deliveries) ? next.deliveries : [];
    card.snapshot = JSON.stringify(deliveries);
    const counts = totals(deliveries);
    const items = Array.isArray(next.items) ? next.items : [];
    clear(body).append(
      h(
        "div",
        { class: "card-head" },
        h("h2", {}, "Order ", idText(next.orderNumber)),
        next.status ? badge(next.status) : null,
      ),
      h(
        "p",
        { class: "meta" },
        h("span", {}, "Order ID ", idText(next.orderId)),
        next.updatedAt ? h("span", {}, "Updated ", timeText(next.updatedAt)) : null,
        h(
          "span",
          { "data-field": "totals", "data-attempts": counts.attempts, "data-deliveries": counts.deliveries },
          totalsText(counts),
        ),
      ),
      items.length
        ? h(
            "ul",
            { class: "items", "aria-label": "Line items" },
            items.map((item) =>
              h(
                "li",
                {},
                "Item ",
                idText(item.itemId),
                ` × ${Number(item.itemQuantity) || 0} — recipe `,
                h("a", { href: `#/recipe/${encodeURIComponent(String(item.recipeId ?? ""))}` }, idText(item.recipeId)),
              ),
            ),
          )
        : null,
      deliveriesTable(deliveries),
    );
  }

  card.update = update;
  update(order);
  return h("li", {}, card);
}

function deliveriesTable(deliveries) {
  if (!deliveries.length) return h("p", { class: "muted" }, "No deliveries recorded yet.");
  const withLog = deliveries.some((d) => Array.isArray(d.attemptLog) && d.attemptLog.length);
  const head = ["Integration", "Type", "Trigger", "Status", "Attempts", "Last error", "Files"];
  if (withLog) head.push("Attempt timeline");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "deliveries" },
      h("caption", {}, "Deliveries"),
      h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col" }, name)))),
      h(
        "tbody",
        {},
        deliveries.map((d) =>
          h(
            "tr",
            { class: d.status === "failed" ? "is-failed" : null, dataset: { integration: String(d.integration ?? "") } },
            h("td", {}, idText(d.integration)),
            h("td", {}, String(d.type ?? "")),
            h("td", {}, String(d.trigger ?? "")),
            h("td", {}, badge(d.status), heldBadge(d)),
            h("td", { class: "num", "data-field": "attempts" }, String(Number(d.attempts) || 0)),
            h("td", { class: "error-cell" }, d.lastError ? String(d.lastError) : h("span", { class: "muted" }, "—")),
            h(
              "td",
              {},
              Array.isArray(d.files) && d.files.length
                ? h("ul", { class: "files" }, d.files.map((name) => h("li", {}, idText(name))))
                : h("span", { class: "muted" }, "—"),
            ),
            withLog ? h("td", {}, attemptTimeline(d.attemptLog)) : null,
          ),
        ),
      ),
    ),
  );
}

const HELD_TEXT = {
  operator: "integration paused — not attempted until resumed",
  unhealthy: "destination unhealthy — held until a probe succeeds or it is resumed",
};

/**
 * "Held" next to the status of a delivery the store marks `held` (not ended, its integration paused now). The why is
 * visible text, not only a title: a title reaches neither the keyboard nor a touch screen.
 */
function heldBadge(d) {
  if (d.held !== true) return null;
  const cause = d.heldCause === "unhealthy" ? "unhealthy" : "operator";
  return h(
    "span",
    { class: "held", "data-field": "held", "data-cause": cause },
    " ",
    h("span", { class: "badge held", "data-status": "held", title: HELD_TEXT[cause] }, "Held"),
    h("span", { class: "held-why" }, HELD_TEXT[cause]),
  );
}

function attemptTimeline(log) {
  if (!Array.isArray(log) || !log.length) return h("span", { class: "muted" }, "—");
  return h(
    "details",
    {},
    h("summary", {}, `${log.length} attempt${log.length === 1 ? "" : "s"}`),
    h(
      "ol",
      { class: "timeline" },
      log.map((entry) =>
        h(
          "li",
          {},
          `#${Number(entry.attempt) || 0} `,
          badge(entry.status),
          " ",
          timeText(entry.at),
          entry.errorClass || entry.error
            ? h("div", { class: "error-cell" }, [entry.errorClass, entry.error].filter(Boolean).map(String).join(": "))
            : null,
        ),
      ),
    ),
  );
}

// --- Trigger Integrations ---------------------------------------------------------------------------------------

function triggerControls(view, order, status, cardOf) {
  const integrations = [
    ...new Set((order.deliveries || []).map((d) => String(d.integration ?? "")).filter(Boolean)),
  ].sort();
  const boxes = integrations.map((id) => h("input", { type: "checkbox", value: id }));
  const button = h("button", { type: "button", class: "primary", "data-action": "trigger" }, "Trigger Integrations");
  button.addEventListener("click", async () => {
    const chosen = boxes.filter((box) => box.checked).map((box) => box.value);
    const body = { orderId: String(order.orderId) };
    if (chosen.length) body.integrationIds = chosen;
    const accepted = await trigger(view, body, button, status, `order ${order.orderNumber}`);
    if (accepted) watchOrder(view, String(order.orderId), cardOf(), status);
  });
  return h(
    "div",
    { class: "actions" },
    button,
    integrations.length
      ? h(
          "details",
          {},
          h("summary", {}, "Only some integrations"),
          h(
            "fieldset",
            {},
            h("legend", {}, "Trigger only these (none ticked: all)"),
            integrations.map((id, index) => h("label", {}, boxes[index], " ", idText(id))),
          ),
        )
      : null,
  );
}

/** POST the trigger; says what happened in `status` and the live region. The accepted body, or null. */
async function trigger(view, body, button, status, what) {
  button.disabled = true;
  status.className = "status-text";
  status.textContent = `Triggering integrations for ${what}…`;
  try {
    const accepted = await postJson("/api/v2/integrations/trigger", body, { signal: view.signal });
    const runs = Number(accepted.triggered) || 0;
    const ids = [...new Set((accepted.triggers || []).flatMap((t) => t.integrationIds || []))].join(", ");
    const text = `Triggered ${runs} run${runs === 1 ? "" : "s"} for ${what}${ids ? ` (${ids})` : ""}.`;
    status.textContent = text;
    announce(text);
    return accepted;
  } catch (error) {
    if (isQuiet(error)) return null;
    status.className = "status-text error";
    status.textContent = describe(error);
    announce(`Trigger failed for ${what}.`);
    return null;
  } finally {
    button.disabled = false;
  }
}

/** Re-read the order every second for up to a minute (or until the view changes) and redraw its card. */
function watchOrder(view, orderId, card, status) {
  const said = status.textContent;
  const started = performance.now();
  // The card's deliveries when the trigger was accepted: the first read that differs is the trigger's effect.
  let last = card.snapshot;
  let changed = false;
  let timer = 0;
  view.onClose(() => clearTimeout(timer));
  status.textContent = `${said} Watching for new attempts…`;
  const tick = async () => {
    if (!view.live) return;
    try {
      const page = await getJson(`/api/v2/orders${query({ orderId })}`, { signal: view.signal });
      const order = (page.orders || []).find((o) => String(o.orderId) === orderId);
      if (order && JSON.stringify(order.deliveries || []) !== last) {
        changed = true;
        card.update(order);
        last = card.snapshot;
        const counts = totals(order.deliveries || []);
        announce(`Order ${order.orderNumber}: ${totalsText(counts)}.`);
        if (counts.unsettled === 0) {
          status.textContent = `${said} Done: ${totalsText(counts)}.`;
          return;
        }
      }
    } catch (error) {
      if (isQuiet(error)) return;
      status.textContent = `${said} Could not refresh the order: ${describe(error)}`;
      return;
    }
    if (performance.now() - started >= POLL_FOR_MS) {
      status.textContent = `${said} Stopped watching after 60 s${changed ? "" : " (no change seen)"}.`;
      return;
    }
    timer = setTimeout(tick, POLL_EVERY_MS);
  };
  timer = setTimeout(tick, POLL_EVERY_MS);
}

// --- recipe page -----------------------------------------------------------------------------------------------

function recipeView(view, root, { id }) {
  const path = encodeURIComponent(id);
  const status = h("p", { class: "status-text", role: "status" });
  const button = h("button", { type: "button", class: "primary", "data-action": "trigger-recipe" }, "Trigger Integrations");
  button.addEventListener("click", () => trigger(view, { recipeId: id }, button, status, `recipe ${id}`));
  const summary = h("section", { class: "panel", "aria-labelledby": "summary-heading" }, h("h2", { id: "summary-heading" }, "Summary"));
  const ticket = h("section", { class: "panel", "aria-labelledby": "ticket-heading" }, h("h2", { id: "ticket-heading" }, "Pick ticket"));
  const orders = h("section", { "aria-labelledby": "recipe-orders-heading" }, h("h2", { id: "recipe-orders-heading" }, "Orders using this recipe"));
  const heading = h("h1", { tabindex: "-1" }, "Recipe ", idText(id));
  root.append(
    h("p", {}, h("a", { href: "#/orders" }, "← Review Recent Orders")),
    heading,
    h("div", { class: "actions" }, button),
    status,
    h("div", { class: "recipe-grid" }, summary, ticket),
    orders,
  );
  heading.focus();

  recipeSummary(view, summary, path);
  pickTicket(view, ticket, path, id);
  orderList(view, orders, (after) => `/api/v2/orders${query({ recipeId: id, after })}`, {
    summary: (count, more) => (count ? `${count}${more ? "+" : ""} order${count === 1 ? "" : "s"}.` : "No order uses this recipe yet."),
  });
}

function safeLink(url, text) {
  try {
    const parsed = new URL(String(url), location.href);
    if (parsed.protocol === "https:" || parsed.protocol === "http:") {
      return h("a", { href: parsed.href, rel: "noopener noreferrer", target: "_blank" }, text);
    }
  } catch {
    // not a URL: shown as text below
  }
  return h("span", {}, text);
}

async function recipeSummary(view, panel, path) {
  const loading = h("p", { class: "muted" }, "Loading…");
  panel.append(loading);
  try {
    const recipe = await getJson(`/recipe/${path}.json`, { signal: view.signal });
    const facts = [
      ["Name", recipe.name],
      ["Style code", recipe.styleCode],
      ["Created", recipe.created ? timeText(recipe.created) : null],
      ["Components", Array.isArray(recipe.components) ? String(recipe.components.length) : null],
      ["Views", Array.isArray(recipe.views) ? String(recipe.views.length) : null],
    ].filter(([, value]) => value !== undefined && value !== null && value !== "");
    const attachments = Array.isArray(recipe.attachments) ? recipe.attachments : [];
    loading.replaceWith(
      h("dl", { class: "facts" }, facts.map(([name, value]) => [h("dt", {}, name), h("dd", {}, value instanceof Node ? value : String(value))])),
      h("h3", {}, "Files"),
      attachments.length
        ? h(
            "ul",
            { class: "files", "aria-label": "Attachments" },
            attachments.map((a) =>
              h("li", {}, safeLink(a.url, String(a.name || a.code || a.url || "attachment")), a.code ? h("span", { class: "muted" }, ` (${String(a.code)})`) : null),
            ),
          )
        : h("p", { class: "muted" }, "No attachments."),
      h("details", {}, h("summary", {}, "Recipe JSON"), h("pre", { class: "json" }, JSON.stringify(recipe, null, 2))),
    );
  } catch (error) {
    if (isQuiet(error)) return;
    loading.replaceWith(failure(error));
  }
}

async function pickTicket(view, panel, path, id) {
  const loading = h("p", { class: "muted" }, "Rendering the pick ticket…");
  panel.append(loading);
  try {
    // Fetched with the key (a key-protected recipe's PDF needs it), then shown from a blob: URL of this page.
    const response = await call(`/recipe/${path}.pdf`, { signal: view.signal });
    const blob = new Blob([await response.arrayBuffer()], { type: "application/pdf" });
    if (!view.live) return;
    const url = URL.createObjectURL(blob);
    view.onClose(() => URL.revokeObjectURL(url));
    loading.replaceWith(
      h("iframe", { class: "pdf", src: url, title: `Pick ticket for recipe ${id}` }),
      h("p", {}, h("a", { href: url, download: `${id}.pdf` }, "Download the pick ticket (PDF)")),
    );
  } catch (error) {
    if (isQuiet(error)) return;
    loading.replaceWith(failure(error));
  }
}

// --- integrations ----------------------------------------------------------------------------------------------

function health(integration) {
  if (typeof integration.health === "string") return integration.health;
  if (integration.enabled === false) return "disabled";
  const counts = integration.counts || {};
  const failed = Number(counts.failed) || 0;
  const failedLast = integration.lastFailureAt && (!integration.lastSuccessAt || integration.lastFailureAt > integration.lastSuccessAt);
  if (failed && failedLast) return "failing";
  if (failed || Number(counts.retrying)) return "degraded";
  return "healthy";
}

async function integrationsView(view, root) {
  const heading = h("h1", { tabindex: "-1" }, "Integrations");
  const panel = h("section", { "aria-labelledby": "int-heading-hidden" });
  root.append(heading, panel);
  heading.focus();
  const loading = h("p", { class: "muted" }, "Loading…");
  panel.append(loading);
  try {
    const body = await getJson("/api/v2/integrations", { signal: view.signal });
    const integrations = Array.isArray(body.integrations) ? body.integrations : [];
    if (!integrations.length) {
      loading.replaceWith(h("p", { class: "muted" }, "This tenant has no integrations."));
      return;
    }
    loading.replaceWith(h("ul", { class: "int-grid" }, integrations.map((i) => integrationCard(view, i))));
  } catch (error) {
    if (isQuiet(error)) return;
    loading.replaceWith(failure(error, { newEndpoint: true, what: "The integrations overview" }));
  }
}

/** One integration's card: counts and health, its delivery state and the Pause / Resume controls. Paused by an
 * operator: a "Paused" badge, since when and why. Paused by the destination-health rules (`stateCause`
 * "unhealthy"): an "Unhealthy — deliveries held" badge instead of the count-derived health, the reason and since
 * when; an operator may still resume it by hand. Redrawn whole once the overview shows a change. */
function integrationCard(view, i) {
  const counts = i.counts || {};
  const window = Number(i.windowHours) || 0;
  const paused = i.state === "paused";
  const cause = String(i.stateCause ?? "operator");
  const unhealthy = paused && cause === "unhealthy";
  const status = h("p", { class: "status-text", role: "status" });
  const card = h(
    "li",
    { class: "panel", dataset: { integration: String(i.id ?? ""), state: paused ? "paused" : "active", cause } },
    h(
      "div",
      { class: "card-head" },
      h("h2", {}, idText(i.id)),
      // Held deliveries are not attempted, so the counts no longer tell its health: the state says it.
      unhealthy ? null : badge(health(i)),
      unhealthy
        ? h("span", { class: "badge unhealthy", "data-status": "unhealthy" }, "Unhealthy — deliveries held")
        : paused
          ? h("span", { class: "badge paused", "data-status": "paused" }, "Paused")
          : null,
    ),
    h("p", { class: "meta" }, h("span", {}, String(i.type ?? "")), Array.isArray(i.feeds) ? h("span", {}, `feeds: ${i.feeds.map(String).join(", ")}`) : null),
    i.description ? h("p", {}, String(i.description)) : null,
    unhealthy
      ? [
          h(
            "p",
            { class: "paused-line unhealthy-line" },
            "Paused by destination health; deliveries held since ",
            timeText(i.stateChangedAt),
            i.stateReason ? `. Reason: ${String(i.stateReason)}` : ". No reason given.",
          ),
          h("p", { class: "hint" }, "It resumes by itself once a probe delivery succeeds; Resume sends them now."),
        ]
      : paused
        ? h(
            "p",
            { class: "paused-line" },
            "Deliveries held since ",
            timeText(i.stateChangedAt),
            i.stateReason ? `. Reason: ${String(i.stateReason)}` : ". No reason given.",
          )
        : cause === "recovered"
          ? h("p", { class: "paused-line muted" }, "Resumed automatically after a probe delivery succeeded, ", timeText(i.stateChangedAt), ".")
          : null,
    h(
      "div",
      { class: "counts", "aria-label": window ? `Last ${window} hours` : "Recent deliveries" },
      ["succeeded", "failed", "retrying", "pending"].map((name) => h("div", {}, h("strong", {}, String(Number(counts[name]) || 0)), h("span", {}, name))),
    ),
    h("p", { class: "meta" }, window ? h("span", {}, `last ${window} h`) : null, h("span", {}, "Last success ", timeText(i.lastSuccessAt)), h("span", {}, "Last failure ", timeText(i.lastFailureAt))),
    stateControls(view, i, status),
    status,
  );
  return card;
}

function stateControls(view, i, status) {
  const id = String(i.id ?? "");
  if (i.state === "paused") {
    const resume = h("button", { type: "button", class: "primary", "data-action": "resume" }, "Resume");
    resume.addEventListener("click", () => changeState(view, id, "resume", {}, [resume], status));
    return h("div", { class: "actions" }, resume);
  }
  // The reason is asked for in the page (never window.prompt): a small form shown under the button.
  const formId = `pause-form-${id}`;
  const reasonId = `pause-reason-${id}`;
  const pause = h("button", { type: "button", "data-action": "pause", "aria-expanded": "false", "aria-controls": formId }, "Pause");
  const reason = h("input", { id: reasonId, name: "reason", type: "text", maxlength: "200", autocomplete: "off" });
  const confirm = h("button", { type: "submit", class: "primary", "data-action": "confirm-pause" }, "Pause deliveries");
  const cancel = h("button", { type: "button", "data-action": "cancel-pause" }, "Cancel");
  const form = h(
    "form",
    { class: "pause-form", id: formId, hidden: true },
    h("p", { class: "hint" }, "While paused, its deliveries are held, not attempted. Resume sends them, oldest first."),
    h("div", { class: "field" }, h("label", { for: reasonId }, "Reason (optional)"), reason),
    h("div", { class: "actions" }, confirm, cancel),
  );
  const close = () => {
    form.hidden = true;
    pause.setAttribute("aria-expanded", "false");
    pause.focus();
  };
  pause.addEventListener("click", () => {
    form.hidden = false;
    pause.setAttribute("aria-expanded", "true");
    reason.focus();
  });
  cancel.addEventListener("click", close);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = reason.value.trim();
    changeState(view, id, "pause", text ? { reason: text } : {}, [pause, confirm, cancel], status);
  });
  return h("div", {}, h("div", { class: "actions" }, pause), form);
}

/** POST the pause or resume, then watch the overview until it shows the change (up to 10 s) and redraw the card. */
async function changeState(view, id, action, body, buttons, status) {
  const wanted = action === "pause" ? "paused" : "active";
  for (const button of buttons) button.disabled = true;
  status.className = "status-text";
  status.textContent = `${action === "pause" ? "Pausing" : "Resuming"} ${id}…`;
  let accepted;
  try {
    accepted = await postJson(`/api/v2/integrations/${encodeURIComponent(id)}/${action}`, body, { signal: view.signal });
  } catch (error) {
    if (isQuiet(error)) return;
    for (const button of buttons) button.disabled = false;
    status.className = "status-text error";
    // A 403 reads "This key may not do that (...)": pausing needs the admin permission.
    status.textContent = describe(error);
    announce(`${action === "pause" ? "Pause" : "Resume"} failed for ${id}.`);
    return;
  }
  const said = `${action === "pause" ? "Pause" : "Resume"} of ${id} accepted.`;
  status.textContent = `${said} Waiting for the overview to show it…`;
  announce(said);
  watchState(view, id, wanted, String(accepted.changedAt ?? ""), { buttons, status, said });
}

function watchState(view, id, wanted, since, { buttons, status, said }) {
  const started = performance.now();
  let timer = 0;
  view.onClose(() => clearTimeout(timer));
  const tick = async () => {
    if (!view.live) return;
    try {
      const body = await getJson("/api/v2/integrations", { signal: view.signal });
      const found = (Array.isArray(body.integrations) ? body.integrations : []).find((i) => String(i.id ?? "") === id);
      // This change or a newer one (RFC 3339 UTC texts of one shape compare as instants).
      if (found && (found.state || "active") === wanted && (!since || String(found.stateChangedAt ?? "") >= since)) {
        const old = status.closest("li");
        const card = integrationCard(view, found);
        if (old) old.replaceWith(card);
        const text = wanted === "paused" ? `${id} is paused: its deliveries are held.` : `${id} is active: held deliveries are being sent.`;
        card.querySelector(".status-text").textContent = text;
        announce(text);
        const next = card.querySelector("button[data-action=pause], button[data-action=resume]");
        if (next) next.focus();
        return;
      }
    } catch (error) {
      if (isQuiet(error)) return;
      status.textContent = `${said} Could not refresh the overview: ${describe(error)}`;
      for (const button of buttons) button.disabled = false;
      return;
    }
    if (performance.now() - started >= STATE_POLL_FOR_MS) {
      status.textContent = `${said} Not shown by the overview after 10 s; reload the page to check.`;
      for (const button of buttons) button.disabled = false;
      return;
    }
    timer = setTimeout(tick, POLL_EVERY_MS);
  };
  timer = setTimeout(tick, STATE_FIRST_LOOK_MS);
}

// --- dead letters ----------------------------------------------------------------------------------------------

function deadLettersView(view, root) {
  const heading = h("h1", { tabindex: "-1" }, "Dead letters");
  root.append(heading, h("p", { class: "muted" }, "Deliveries that failed after their last retry. Trigger one again once its destination is fixed."));
  // The list is defined below; the replay panel refreshes it when a replay ends.
  root.append(replayPanel(view, () => reload()));
  heading.focus();
  const line = h("p", { class: "summary-line" }, "Loading…");
  const body = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap", hidden: true },
    h(
      "table",
      { class: "dead-letters" },
      h("caption", {}, "Failed deliveries"),
      h("thead", {}, h("tr", {}, ["Updated", "Order", "Recipe", "Integration", "Type", "Attempts", "Last error", ""].map((name) => h("th", { scope: "col" }, name)))),
      body,
    ),
  );
  const more = h("button", { type: "button", class: "more", hidden: true }, "Load more");
  root.append(line, table, more);
  let shown = 0;
  let next = null;

  const row = (d) => {
    const status = h("div", { class: "status-text", role: "status" });
    const button = h("button", { type: "button", "data-action": "trigger-again" }, "Trigger again");
    const request = d.orderId ? { orderId: String(d.orderId) } : { recipeId: String(d.recipeId) };
    request.integrationIds = [String(d.integration)];
    const what = d.orderId ? `order ${d.orderNumber ?? d.orderId} on ${d.integration}` : `recipe ${d.recipeId} on ${d.integration}`;
    button.addEventListener("click", () => trigger(view, request, button, status, what));
    return h(
      "tr",
      { class: "is-failed", dataset: { deliveryId: String(d.deliveryId ?? "") } },
      h("td", {}, timeText(d.updatedAt)),
      h("td", {}, d.orderId ? h("a", { href: `#/orders?orderId=${encodeURIComponent(String(d.orderId))}` }, idText(d.orderNumber ?? d.orderId)) : h("span", { class: "muted" }, "recipe feed")),
      h("td", {}, d.recipeId ? h("a", { href: `#/recipe/${encodeURIComponent(String(d.recipeId))}` }, idText(d.recipeId)) : "—"),
      h("td", {}, idText(d.integration)),
      h("td", {}, String(d.type ?? "")),
      h("td", { class: "num" }, String(Number(d.attempts) || 0)),
      h("td", { class: "error-cell" }, d.lastError ? String(d.lastError) : "—"),
      h("td", {}, d.replayedBy ? h("span", { class: "muted", "data-field": "replayed" }, "Replayed") : null, button, status),
    );
  };

  async function load(after) {
    more.disabled = true;
    try {
      const page = await getJson(`/api/v2/deliveries/failed${query({ limit: 25, after })}`, { signal: view.signal });
      const deliveries = Array.isArray(page.deliveries) ? page.deliveries : [];
      for (const d of deliveries) body.append(row(d));
      shown += deliveries.length;
      next = page.next || null;
      table.hidden = shown === 0;
      more.hidden = !next;
      line.textContent = shown ? `${shown}${next ? "+" : ""} failed deliver${shown === 1 ? "y" : "ies"}, newest first.` : "No failed deliveries.";
    } catch (error) {
      if (isQuiet(error)) return;
      line.replaceWith(failure(error, { newEndpoint: true, what: "The dead-letter list" }));
      more.hidden = true;
    } finally {
      more.disabled = false;
    }
  }
  function reload() {
    if (!view.live) return;
    clear(body);
    shown = 0;
    next = null;
    line.textContent = "Loading…";
    load(undefined);
  }
  more.addEventListener("click", () => load(next));
  load(undefined);
}

// --- bulk replay (Dead letters) ----------------------------------------------------------------------------------

const REPLAY_PATH = "/api/v2/deliveries/replay";
const REPLAY_BATCH = 25;
const REPLAY_RATE = 5; // deliveries a second at most: a destination that just recovered is not flooded
const REPLAY_RETRIES = 5; // consecutive 429/503 answers for one batch before giving up
const REPLAY_MAX_WAIT_S = 300;

/** Stopped by the operator while waiting to retry a batch: the batch was not sent. */
class ReplayStopped extends Error {}

/** `YYYY-MM-DDTHH:MM` in the browser's time zone, as a datetime-local input shows it. */
function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value (the browser's time zone) as an RFC 3339 UTC instant; null when empty or unreadable. */
function instantOf(value) {
  if (!value) return null;
  const moment = new Date(value);
  return Number.isNaN(moment.getTime()) ? null : moment.toISOString();
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

/** "Replay failed deliveries": count (dry run), confirm in the page, then paced batches with progress and Stop. */
function replayPanel(view, refreshList) {
  const integration = h("select", { id: "replay-integration", name: "integration" }, h("option", { value: "" }, "All integrations"));
  const since = h("input", { id: "replay-since", name: "since", type: "datetime-local", required: true });
  since.value = localInputValue(new Date(Date.now() - 24 * 3600 * 1000));
  const until = h("input", { id: "replay-until", name: "until", type: "datetime-local" });
  const countButton = h("button", { type: "submit", "data-action": "replay-count" }, "Count");
  const form = h(
    "form",
    { class: "replay-form", "aria-label": "Which failed deliveries to replay" },
    h("div", { class: "field" }, h("label", { for: "replay-integration" }, "Integration"), integration),
    h("div", { class: "field" }, h("label", { for: "replay-since" }, "Failed since"), since),
    h("div", { class: "field" }, h("label", { for: "replay-until" }, "until (optional)"), until),
    countButton,
  );
  const replayButton = h("button", { type: "button", class: "primary", "data-action": "replay-start", hidden: true });
  const confirmText = h("span", {});
  const confirmButton = h("button", { type: "button", class: "primary", "data-action": "replay-confirm" }, "Yes, replay");
  const cancelButton = h("button", { type: "button", "data-action": "replay-cancel" }, "Cancel");
  const confirmRow = h("div", { class: "actions replay-confirm", role: "group", "aria-label": "Confirm the replay", hidden: true }, confirmText, confirmButton, cancelButton);
  const stopButton = h("button", { type: "button", "data-action": "replay-stop", hidden: true }, "Stop");
  const progress = h("progress", { id: "replay-progress", max: "1", value: "0", hidden: true, "aria-label": "Replay progress" });
  const status = h("p", { id: "replay-status", class: "status-text", role: "status", "aria-live": "polite" });
  const panel = h(
    "section",
    { class: "panel replay", "aria-labelledby": "replay-heading" },
    h("h2", { id: "replay-heading" }, "Replay failed deliveries"),
    h("p", { class: "muted" }, `Triggers again, once each, the deliveries that failed for good in the window and were not replayed yet: at most ${REPLAY_RATE} a second, so a destination that just recovered is not flooded.`),
    form,
    h("div", { class: "actions" }, replayButton, stopButton),
    confirmRow,
    progress,
    status,
  );

  let counted = null; // {selection, matched, what, window} of the last count, while the form is unchanged
  let running = false;
  let stopAsked = false;
  let wake = null; // ends the current pause early (Stop, or the view closing)
  view.onClose(() => wake && wake());

  const say = (text, kind = "") => {
    status.className = `status-text${kind ? ` ${kind}` : ""}`;
    status.textContent = text;
  };

  function forget() {
    counted = null;
    replayButton.hidden = true;
    confirmRow.hidden = true;
  }

  function selection() {
    const start = instantOf(since.value);
    if (!start) return { problem: "Enter when the failures started (Failed since)." };
    const end = until.value ? instantOf(until.value) : null;
    if (until.value && !end) return { problem: "The until time is not a date and time." };
    if (end && end < start) return { problem: "The until time is before Failed since." };
    const body = { since: start, status: "failed" };
    if (end) body.until = end;
    if (integration.value) body.integrationId = integration.value;
    return { body, what: integration.value || "all integrations", window: `${start} to ${end || "now"}` };
  }

  function pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  }

  /** One batch, sent again after a 429/503's Retry-After (the same body: replaying is idempotent on the server). */
  async function batch(body, onWait) {
    for (let retry = 0; ; retry += 1) {
      try {
        return await postJson(REPLAY_PATH, body, { signal: view.signal });
      } catch (error) {
        const again = error instanceof ApiError && (error.status === 429 || error.status === 503);
        if (!again || retry >= REPLAY_RETRIES) throw error;
        const seconds = error.retryAfter ?? Math.min(2 * 2 ** retry, 60);
        if (seconds > REPLAY_MAX_WAIT_S) throw error;
        onWait(seconds, error.status, retry + 1);
        await pause(seconds * 1000);
        if (stopAsked || !view.live) throw new ReplayStopped();
      }
    }
  }

  async function count(event) {
    event.preventDefault();
    if (running) return;
    forget();
    const chosen = selection();
    if (chosen.problem) {
      say(chosen.problem, "error");
      return;
    }
    countButton.disabled = true;
    say("Counting…");
    try {
      const answer = await postJson(REPLAY_PATH, { ...chosen.body, dryRun: true, limit: 1 }, { signal: view.signal });
      const matched = Number(answer.matched) || 0;
      const text = `${plural(matched, "delivery", "deliveries")} would be replayed (${chosen.what}, ${chosen.window}).`;
      say(text);
      announce(text);
      if (matched > 0) {
        counted = { ...chosen, matched };
        replayButton.textContent = `Replay ${plural(matched, "delivery", "deliveries")}`;
        replayButton.hidden = false;
        replayButton.focus();
      }
    } catch (error) {
      if (isQuiet(error)) return;
      say(describe(error), "error");
    } finally {
      countButton.disabled = false;
    }
  }

  function askToConfirm() {
    if (!counted || running) return;
    confirmText.textContent = `Replay ${plural(counted.matched, "delivery", "deliveries")} of ${counted.what} (${counted.window})?`;
    confirmRow.hidden = false;
    replayButton.hidden = true;
    confirmButton.focus();
  }

  async function run() {
    if (!counted || running) return;
    const chosen = counted;
    forget();
    running = true;
    stopAsked = false;
    for (const control of form.elements) control.disabled = true;
    stopButton.hidden = false;
    stopButton.disabled = false;
    stopButton.textContent = "Stop";
    stopButton.focus();
    progress.max = chosen.matched;
    progress.value = 0;
    progress.hidden = false;
    const perIntegration = new Map();
    let replayed = 0;
    let skipped = 0; // integration no longer configured or enabled: the API leaves these out
    let after = null;
    let failed = null;
    say(`Replaying 0 of ${chosen.matched}…`);
    try {
      for (;;) {
        const started = performance.now();
        const body = { ...chosen.body, dryRun: false, limit: REPLAY_BATCH };
        if (after) body.after = after;
        const answer = await batch(body, (seconds, code, retry) =>
          say(`Replayed ${replayed} so far; HTTP ${code}: waiting ${seconds} s before sending the batch again (retry ${retry} of ${REPLAY_RETRIES})…`),
        );
        const count = Number(answer.replayed) || 0;
        const left = Number(answer.skipped) || 0;
        for (const d of Array.isArray(answer.deliveries) ? answer.deliveries : []) {
          const name = String(d.integration ?? "?");
          perIntegration.set(name, (perIntegration.get(name) || 0) + 1);
        }
        // `matched` counts what matched before this batch: failures that arrive meanwhile make the total grow.
        progress.max = Math.max(replayed + skipped + (Number(answer.matched) || 0), replayed + skipped + count + left, 1);
        replayed += count;
        skipped += left;
        progress.value = replayed + skipped;
        say(`Replaying ${replayed + skipped} of ${progress.max}…`);
        if (!answer.next || answer.next === after) break;
        after = answer.next;
        if (stopAsked || !view.live) break;
        await pause(Math.max(0, (count / REPLAY_RATE) * 1000 - (performance.now() - started)));
        if (stopAsked || !view.live) break;
      }
    } catch (error) {
      if (!(error instanceof ReplayStopped)) failed = error;
    } finally {
      running = false;
      wake = null;
      for (const control of form.elements) control.disabled = false;
      stopButton.hidden = true;
    }
    if (!view.live || isQuiet(failed)) return;
    const parts = [...perIntegration].sort((a, b) => b[1] - a[1]).map(([name, n]) => `${name}: ${n}`);
    const summary =
      `Replayed ${plural(replayed, "delivery", "deliveries")}${parts.length ? ` (${parts.join(", ")})` : ""}.` +
      (skipped ? ` ${skipped} skipped: their integration is no longer configured or enabled.` : "");
    if (failed) {
      say(`${describe(failed)}\n${summary} Count again to replay the rest: replayed deliveries are not sent twice.`, "error");
      announce("The replay stopped on an error.");
    } else if (stopAsked) {
      say(`Stopped. ${summary} Count again to replay the rest.`);
      announce(`Replay stopped after ${plural(replayed, "delivery", "deliveries")}.`);
    } else {
      say(`Done. ${summary}`);
      announce(`Replay done: ${plural(replayed, "delivery", "deliveries")}.`);
    }
    countButton.focus();
    refreshList();
  }

  form.addEventListener("submit", count);
  // A count is for the window it was made with: changing the form asks for a new one.
  form.addEventListener("input", forget);
  form.addEventListener("change", forget);
  replayButton.addEventListener("click", askToConfirm);
  confirmButton.addEventListener("click", run);
  cancelButton.addEventListener("click", () => {
    confirmRow.hidden = true;
    replayButton.hidden = !counted;
    if (counted) replayButton.focus();
  });
  stopButton.addEventListener("click", () => {
    stopAsked = true;
    stopButton.disabled = true;
    stopButton.textContent = "Stopping after this batch…";
    if (wake) wake();
  });

  (async () => {
    try {
      const answer = await getJson("/api/v2/integrations", { signal: view.signal });
      const ids = (Array.isArray(answer.integrations) ? answer.integrations : []).map((i) => String(i.id ?? "")).filter(Boolean);
      integration.append(...ids.map((id) => h("option", { value: id }, id)));
    } catch (error) {
      // Without the list only "All integrations" is offered; the replay itself still works.
      if (!isQuiet(error)) integration.title = `Integrations could not be listed: ${describe(error)}`;
    }
  })();

  return panel;
}

// --- start -----------------------------------------------------------------------------------------------------

whenUnauthorized((message) => showSignIn(message));
$("signin-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", signOut);
// Without a key (signed out in another view of this tab, or cleared) a route change shows the sign-in form.
window.addEventListener("hashchange", () => {
  if (getKey()) route();
  else if ($("signin").hidden) showSignIn("");
});
if (getKey()) showShell();
else showSignIn("");
