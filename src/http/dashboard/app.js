// The dashboard of the mqtt-ota sender: a plain ES module, no build step, no library.
// It reads the JSON API (/api/fleet, /api/devices, /api/rollouts/{id}/pause|resume|cancel) with
// the bearer token the operator enters (kept in sessionStorage, or given once as ?token= by the
// demo's link) and listens to /api/events for live transfers and rollouts. Everything a device
// sent (ids, versions, details) is put on the page as text, never as HTML.

const TOKEN_KEY = "mqtt-ota.token";
/** How often the fleet table is read again. */
const FLEET_EVERY_MS = 5000;
/** Commands an admin may give a rollout, and the states in which each applies. */
const COMMANDS = [
  { command: "pause", label: "Pause", states: ["RUNNING"] },
  { command: "resume", label: "Resume", states: ["PAUSED"] },
  { command: "cancel", label: "Cancel", states: ["CREATED", "RUNNING", "PAUSED"] },
];

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

const state = {
  token: null,
  access: "read",
  events: null,
  fleetTimer: 0,
  rollouts: [],
  busy: new Set(),
};

// ---- token ----

function takeToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get("token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    // The token leaves the address bar (and the history) as soon as it is stored.
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function showLogin(message) {
  stop();
  $("main").hidden = true;
  $("forget").hidden = true;
  $("access").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function forget() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin("");
}

// ---- API ----

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${state.token}`, accept: "application/json" },
  });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const message = body?.error?.message ?? `${method} ${path} answered ${res.status}`;
    if (res.status === 401) showLogin(message);
    throw new ApiError(res.status, message);
  }
  return body;
}

function notice(message) {
  $("notice").textContent = message ?? "";
  $("notice").hidden = !message;
}

// ---- fleet ----

/** Rows of the fleet answer: one per product and version. */
function fleetRows(fleet) {
  const rows = [];
  const products = Array.isArray(fleet?.products) ? fleet.products : [];
  for (const p of products) {
    const versions = Array.isArray(p.versions)
      ? p.versions
      : Object.entries(p.versions ?? {}).map(([version, v]) =>
        typeof v === "number" ? { version, devices: v } : { version, ...v }
      );
    for (const v of versions) {
      rows.push({
        product: p.product,
        version: v.version,
        devices: v.devices ?? v.count ?? 0,
        online: v.online ?? 0,
      });
    }
  }
  return rows;
}

async function loadFleet() {
  try {
    const fleet = await api("GET", "/api/fleet");
    const rows = fleetRows(fleet);
    $("fleet-rows").replaceChildren(
      ...rows.map((r) =>
        el(
          "tr",
          { "data-product": r.product, "data-version": r.version },
          el("td", {}, r.product),
          el(
            "td",
            {},
            el("a", {
              href: "#",
              onclick: (e) => (e.preventDefault(), listDevices(r.product, r.version)),
            }, r.version || "(unknown)"),
          ),
          el("td", { class: "num" }, r.devices),
          el("td", { class: "num" }, r.online),
        )
      ),
    );
    const total = fleet?.devices ?? rows.reduce((n, r) => n + r.devices, 0);
    const online = fleet?.online ?? rows.reduce((n, r) => n + r.online, 0);
    const win = fleet?.onlineWindowSeconds
      ? ` (seen in the last ${fleet.onlineWindowSeconds} s)`
      : "";
    $("fleet-total").textContent = `${total} devices, ${online} online now${win}`;
  } catch (err) {
    if (err.status !== 401) notice(`Fleet: ${err.message}`);
  }
}

async function listDevices(product, version) {
  const q = new URLSearchParams({ product, version, limit: "100" });
  try {
    const page = await api("GET", `/api/devices?${q}`);
    const devices = Array.isArray(page) ? page : page?.devices ?? [];
    $("device-list-title").textContent = `${product}@${version || "(unknown)"}: ${devices.length}${
      page?.cursor ? "+" : ""
    } devices`;
    $("device-list-items").replaceChildren(
      ...devices.map((d) =>
        el(
          "li",
          {},
          el("a", { href: "#", onclick: (e) => (e.preventDefault(), showDevice(d.id)) }, d.id),
        )
      ),
    );
    $("device-list").hidden = false;
  } catch (err) {
    if (err.status !== 401) notice(`Devices: ${err.message}`);
  }
}

// ---- rollouts ----

function renderRollouts(rollouts) {
  state.rollouts = rollouts;
  $("rollouts-empty").hidden = rollouts.length > 0;
  $("rollout-list").replaceChildren(...rollouts.map(rolloutCard));
}

function rolloutCard(r) {
  const s = r.summary;
  const states = Object.keys(s.totals);
  const failures = s.outcomes.failures;
  const outcomes = s.outcomes.outcomes;
  const rate = r.failurePct === null ? "no outcome yet" : `${r.failurePct} %`;
  const armed = outcomes >= r.abortMinDevices;
  const over = r.failurePct !== null && armed && r.failurePct > r.abortFailurePct;
  return el(
    "article",
    { class: "rollout", "data-rollout-id": s.id, "data-state": s.state },
    el(
      "h3",
      {},
      el("span", { class: "rollout-id" }, s.id),
      " ",
      el("span", {}, s.image),
      " ",
      el("span", { class: `badge state-${s.state.toLowerCase()}`, "data-field": "state" }, s.state),
    ),
    el("p", { class: "muted" }, `${s.target}; created ${when(r.createdAt)}`),
    s.reason ? el("p", {}, s.reason) : null,
    el("p", { "data-field": "next" }, `Next: ${s.next}`),
    el(
      "p",
      { class: over ? "failure-rate over" : "failure-rate", "data-field": "failure-rate" },
      el("meter", {
        min: 0,
        max: 100,
        low: r.abortFailurePct / 2,
        high: r.abortFailurePct,
        optimum: 0,
        value: r.failurePct ?? 0,
        title: `abort threshold ${r.abortFailurePct} %`,
      }),
      `Failure rate: ${rate} (${failures} failed of ${outcomes} outcomes); aborts above ` +
        `${r.abortFailurePct} % once ${r.abortMinDevices} devices have an outcome` +
        (armed ? "" : ` (${r.abortMinDevices - outcomes} to go)`),
    ),
    el(
      "table",
      { class: "waves" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", {}, "Wave"),
          el("th", { class: "num" }, "%"),
          el("th", {}, "Opened"),
          el("th", { class: "num" }, "Devices"),
          states.map((st) => el("th", { class: "num" }, st.toLowerCase())),
        ),
      ),
      el(
        "tbody",
        {},
        s.waves.map((w) =>
          el(
            "tr",
            { "data-wave": w.wave, class: w.wave === s.currentWave ? "current" : undefined },
            el("td", {}, w.wave),
            el("td", { class: "num" }, w.pct),
            el("td", {}, w.openedAt ? when(w.openedAt) : "not open"),
            el("td", { class: "num" }, w.enrolled),
            states.map((st) => el("td", { class: "num", "data-state": st }, w.devices[st])),
          )
        ),
        el(
          "tr",
          { class: "totals" },
          el("td", {}, "All"),
          el("td", {}, ""),
          el("td", {}, ""),
          el("td", { class: "num" }, states.reduce((n, st) => n + s.totals[st], 0)),
          states.map((st) => el("td", { class: "num", "data-state": st }, s.totals[st])),
        ),
      ),
    ),
    state.access === "admin" ? commandButtons(s) : null,
  );
}

function commandButtons(s) {
  return el(
    "p",
    { class: "commands" },
    COMMANDS.map((c) =>
      el("button", {
        type: "button",
        "data-command": c.command,
        disabled: !c.states.includes(s.state) || state.busy.has(s.id),
        onclick: () => command(s.id, c.command),
      }, c.label)
    ),
  );
}

async function command(id, name) {
  if (name === "cancel" && !confirm(`Cancel rollout ${id}? This cannot be undone.`)) return;
  state.busy.add(id);
  renderRollouts(state.rollouts);
  try {
    await api("POST", `/api/rollouts/${encodeURIComponent(id)}/${name}`);
    notice("");
  } catch (err) {
    if (err.status !== 401) notice(`Cannot ${name} ${id}: ${err.message}`);
  } finally {
    state.busy.delete(id);
    renderRollouts(state.rollouts);
  }
}

// ---- live transfers ----

function renderTransfers(live) {
  $("transfers-count").textContent = `${live.open} open`;
  $("transfer-rows").replaceChildren(
    ...live.transfers.map((t) =>
      el(
        "tr",
        { "data-device": t.deviceId },
        el(
          "td",
          {},
          el(
            "a",
            { href: "#", onclick: (e) => (e.preventDefault(), showDevice(t.deviceId)) },
            t.deviceId,
          ),
        ),
        el("td", {}, t.image),
        el("td", {}, t.state),
        el(
          "td",
          {},
          el("progress", { max: 100, value: t.percent }),
          " ",
          el("span", { "data-field": "percent" }, `${t.percent} %`),
          " ",
          el("span", { class: "muted" }, t.progress),
        ),
        el("td", { class: "num", "data-field": "rate" }, t.rateText),
      )
    ),
  );
}

// ---- one device ----

async function showDevice(id) {
  $("device-id").value = id;
  $("device-error").hidden = true;
  try {
    const detail = await api("GET", `/api/devices/${encodeURIComponent(id)}`);
    const record = detail?.record ?? detail?.device ?? detail;
    const history = detail?.history ?? [];
    const facts = [
      ["Product", record.product || "(unknown)"],
      ["Version", record.version || "(unknown)"],
      ["Groups", (record.groups ?? []).join(", ") || "none"],
      ["First seen", when(record.firstSeen)],
      ["Last seen", when(record.lastSeen)],
      ["Rollout", record.rollout ? `${record.rollout.id} ${record.rollout.state}` : "none"],
      [
        "Last transfer",
        record.lastTransfer
          ? `${record.lastTransfer.version} ${record.lastTransfer.outcome} ${
            when(record.lastTransfer.at)
          }`
          : "none",
      ],
    ];
    $("device-record").replaceChildren(
      ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]),
    );
    $("device-record").hidden = false;
    $("history-rows").replaceChildren(
      ...[...history].reverse().map((h) =>
        el(
          "tr",
          { "data-kind": h.kind },
          el("td", {}, when(h.at)),
          el("td", {}, h.kind),
          el("td", {}, h.text),
        )
      ),
    );
    $("device-history").hidden = false;
    $("device").scrollIntoView({ block: "nearest" });
  } catch (err) {
    $("device-record").hidden = true;
    $("device-history").hidden = true;
    $("device-error").textContent = err.message;
    $("device-error").hidden = false;
  }
}

function when(iso) {
  if (!iso) return "-";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

// ---- the event stream ----

function listen() {
  const events = new EventSource(`/api/events?token=${encodeURIComponent(state.token)}`);
  state.events = events;
  events.addEventListener("open", () => setLink("live"));
  events.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    state.access = hello.access;
    $("sender").textContent = `sender ${hello.senderId}`;
    $("access").textContent = hello.access === "admin" ? "admin" : "read only";
    $("access").hidden = false;
    renderRollouts(state.rollouts);
  });
  events.addEventListener("transfers", (e) => renderTransfers(JSON.parse(e.data)));
  events.addEventListener("rollouts", (e) => renderRollouts(JSON.parse(e.data).rollouts));
  events.addEventListener("error", async () => {
    setLink("reconnecting");
    if (events.readyState !== EventSource.CLOSED) return;
    // The browser gives up on a refused stream; find out why (a bad token says so) and retry.
    try {
      await api("GET", "/api/health");
      setTimeout(() => state.events === events && restartEvents(), 2000);
    } catch (err) {
      if (err.status !== 401) setTimeout(() => state.events === events && restartEvents(), 2000);
    }
  });
}

function restartEvents() {
  state.events?.close();
  listen();
}

function setLink(text) {
  $("link").textContent = text;
  $("link").dataset.state = text;
}

// ---- start and stop ----

function start() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("forget").hidden = false;
  listen();
  loadFleet();
  state.fleetTimer = setInterval(loadFleet, FLEET_EVERY_MS);
}

function stop() {
  state.events?.close();
  state.events = null;
  clearInterval(state.fleetTimer);
  setLink("offline");
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  sessionStorage.setItem(TOKEN_KEY, state.token);
  start();
});
$("forget").addEventListener("click", forget);
$("device-form").addEventListener("submit", (e) => {
  e.preventDefault();
  showDevice($("device-id").value.trim());
});

state.token = takeToken();
if (state.token) start();
else showLogin("");
