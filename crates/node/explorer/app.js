// chipledger explorer: a single-page app over the node's JSON API, in plain JavaScript.
// Hash routes: #/network, #/fleet, #/firmware, #/device/<id>, #/audit, #/tx/<hash>.
// Every fetch is caught and shown as a readable message; nothing here writes to the console.

const POLL_MS = 2000; // network page: /v1/status poll period
const MAX_SAMPLES = 150; // chart points kept (5 minutes at POLL_MS)
const LATEST_BLOCKS = 6; // blocks listed on the network page
const FLEET_PAGE = 50; // devices per fleet page
const AUDIT_PAGE = 50; // entries per audit page
const DEVICE_TRAIL = 100; // audit entries on a device page
const HEX40 = /^[0-9a-f]{40}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const AUDIT_KINDS = [
  "grant", "grant-revoked", "key-release", "tags", "offer", "offer-withdrawn", "purchase",
  "credits-issued", "authorization", "authorization-revoked", "command", "receipt",
  "receipt-anomaly", "range-proof",
];
const PAYLOAD_NAMES = {
  1: "Propose", 2: "Approve", 3: "Statement", 4: "RegisterDevice", 5: "OfferTransfer",
  6: "AcceptTransfer", 7: "Attest", 8: "RevokeDevice", 20: "RegisterFirmwareKey",
  21: "RevokeFirmwareKey", 22: "PublishRelease", 23: "WithdrawRelease", 24: "Certify",
  25: "ReportVulnerability", 26: "SetFleetPolicy", 27: "CreateRollout", 28: "ApproveRollout",
  29: "RejectRollout", 30: "ControlRollout", 31: "ReportProgress", 32: "AttestInstall",
  40: "RegisterGateway", 41: "CommitBatch", 42: "ReportChainAnomaly", 43: "RequestRebirth",
  50: "GrantAccess", 51: "RevokeAccess", 52: "KeyRelease", 53: "PublishOffer", 54: "WithdrawOffer",
  55: "Purchase", 56: "TagDevices", 60: "Authorize", 61: "RevokeAuthorization", 62: "RecordCommand",
  63: "AccessReceipt", 70: "PublishRangeProof",
};

// ---- DOM helpers ---------------------------------------------------------------------------

/** An HTML element: attributes (`on*` functions become listeners), then children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** An SVG element. */
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function appendAll(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace `el`'s content in one step (no intermediate empty state: no flicker). */
function fill(el, ...children) {
  const frag = document.createDocumentFragment();
  appendAll(frag, children);
  el.replaceChildren(frag);
}

function short(hex, n = 12) {
  return hex && hex.length > n ? `${hex.slice(0, n)}…` : hex || "";
}
function deviceLink(id) {
  return h("a", { href: `#/device/${id}`, class: "mono", title: id }, short(id, 16));
}
function txLink(hash) {
  return h("a", { href: `#/tx/${hash}`, class: "mono", title: hash }, short(hash, 16));
}
function releaseLink(id, text) {
  return h("a", { href: `#/release/${id}`, title: id }, text || short(id, 16));
}
function rolloutLink(id, text) {
  return h("a", { href: `#/rollout/${id}`, title: id }, text || short(id, 16));
}
function orgLink(name) {
  return h("a", { href: `#/org/${encodeURIComponent(name)}` }, name);
}
function grantLink(id) {
  return h("a", { href: `#/grant/${id}`, class: "mono", title: id }, short(id, 16));
}
function time(ms) {
  if (!ms) return "";
  const iso = new Date(ms).toISOString();
  return h("time", { datetime: iso, class: "nowrap" }, iso.replace("T", " ").replace(/\.\d+Z$/, " UTC"));
}
function fmt(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}
function errorBox(what, err) {
  return h("p", { class: "error", role: "alert" }, `${what}: ${err && err.message ? err.message : err}`);
}
function card(title, ...body) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...body);
}
/** A section whose body is filled later; `body` is the element to fill. */
function slot(title, attrs = {}) {
  const body = h("div", attrs, h("p", { class: "note" }, "Loading…"));
  return { el: card(title, body), body };
}
function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}
function stats(pairs) {
  return h("dl", { class: "stats" }, pairs.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
}

/**
 * A table: `cols` are [header, cell(row), numeric?]; header cells get scope="col", the first
 * cell of each row is a row header (scope="row").
 */
function table(caption, cols, rows, attrs = {}) {
  if (!rows.length) return h("p", { class: "empty", ...attrs }, `${caption}: none.`);
  const head = h("tr", {}, cols.map(([name, , num]) => h("th", { scope: "col", class: num ? "num" : null }, name)));
  const body = rows.map((r) =>
    h("tr", {}, cols.map(([, cell, num], i) => h(i === 0 ? "th" : "td", { scope: i === 0 ? "row" : null, class: num ? "num" : null }, cell(r)))),
  );
  return h("div", { class: "table-wrap" }, h("table", attrs, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body)));
}

// ---- API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET a JSON API path; throws an ApiError with a readable message on any failure. */
async function api(path) {
  let resp;
  try {
    resp = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new ApiError(`the node did not answer ${path} (${e.message || e})`, 0, "network");
  }
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const why = body && body.message ? body.message : resp.statusText || "error";
    throw new ApiError(`${why} (HTTP ${resp.status} from ${path})`, resp.status, body && body.error);
  }
  if (body === null) throw new ApiError(`the node's answer to ${path} is not JSON`, resp.status, "not_json");
  return body;
}

/** `api`, retried while the node answers 503 `retry` (a checkpoint still collecting signatures). */
async function apiRetry(path, tries = 4) {
  for (let i = 1; ; i++) {
    try {
      return await api(path);
    } catch (e) {
      if (e.status !== 503 || i >= tries) throw e;
      await new Promise((r) => setTimeout(r, 700));
    }
  }
}

/** Show a browser-verification verdict (`data-result` is what the browser tests read). */
function showVerdict(el, ok, text) {
  el.textContent = text;
  el.className = `verify ${ok ? "ok" : "bad"}`;
  el.dataset.result = ok ? "ok" : "failed";
}

/** Run `work` and show its error in `el` instead of throwing. */
async function guarded(el, what, work) {
  try {
    await work();
    return true;
  } catch (e) {
    fill(el, errorBox(what, e));
    return false;
  }
}

// ---- router --------------------------------------------------------------------------------

let generation = 0; // bumped on every navigation; stale async work checks it and stops
const main = document.getElementById("main");

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, qs] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { name: parts[0] || "network", arg: parts[1] || "", query: new URLSearchParams(qs || "") };
}

const PAGES = {
  network: pageNetwork,
  fleet: pageFleet,
  firmware: pageFirmware,
  device: pageDevice,
  audit: pageAudit,
  tx: pageTx,
  release: pageRelease,
  rollout: pageRollout,
  org: pageOrg,
  grant: pageGrant,
};
/** Detail pages highlight the main page they belong to. */
const NAV_OF = { release: "firmware", rollout: "firmware", org: "audit", grant: "audit" };

async function route() {
  const gen = ++generation;
  const r = parseRoute();
  const page = PAGES[r.name];
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (NAV_OF[r.name] || r.name)) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = h("section", { "data-test": `page-${page ? r.name : "not-found"}`, "data-state": "loading" });
  fill(main, root);
  if (!page) {
    fill(root, h("h1", {}, "Not found"), h("p", {}, "No such page. ", h("a", { href: "#/network" }, "Go to the network page.")));
    return;
  }
  const alive = () => gen === generation;
  try {
    await page(root, r, alive);
    if (alive()) root.dataset.state = "ready";
  } catch (e) {
    if (alive()) {
      root.append(errorBox("This page could not be shown", e));
      root.dataset.state = "error";
    }
  }
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function setupSearch() {
  const form = document.getElementById("search-form");
  const input = document.getElementById("search");
  const err = document.getElementById("search-error");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim().toLowerCase().replace(/^0x/, "");
    err.hidden = true;
    if (HEX40.test(v)) go(`#/device/${v}`);
    else if (HEX64.test(v)) go(`#/tx/${v}`);
    else if (/^[0-9a-f]{1,39}$/.test(v)) go(`#/fleet?q=${v}`);
    else {
      err.textContent = "Search takes a device id (40 hex digits), a transaction hash (64 hex digits) or a device-id prefix.";
      err.hidden = false;
    }
  });
}

// ---- charts --------------------------------------------------------------------------------

/** Horizontal bar chart of `[label, value]` pairs, as an accessible inline SVG. */
function barChart(title, pairs) {
  const rowH = 22, labelW = 84, width = 320, valueW = 44;
  const max = Math.max(1, ...pairs.map(([, v]) => v));
  const height = Math.max(rowH, pairs.length * rowH) + 4;
  const id = `chart-${Math.random().toString(36).slice(2)}`;
  const bars = pairs.map(([label, v], i) => {
    const y = i * rowH + 2;
    const w = Math.max(v > 0 ? 2 : 0, ((width - labelW - valueW) * v) / max);
    return s("g", {},
      s("text", { x: labelW - 6, y: y + 15, "text-anchor": "end" }, short(String(label), 12)),
      s("rect", { class: "bar", x: labelW, y: y + 3, width: w.toFixed(1), height: rowH - 6, rx: 2 }),
      s("text", { x: labelW + w + 4, y: y + 15 }, fmt(v)));
  });
  return s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": id },
    s("title", { id }, `${title}: ${pairs.map(([l, v]) => `${l} ${v}`).join(", ")}`), bars);
}

/** Line chart of series `{name, cls, points: [[x, y]]}` over a shared x range. */
function lineChart(title, series, yUnit) {
  const width = 600, height = 170, left = 46, right = 8, top = 10, bottom = 24;
  const pts = series.flatMap((sr) => sr.points);
  const id = `chart-${Math.random().toString(36).slice(2)}`;
  if (pts.length < 2) return h("p", { class: "note" }, `${title}: collecting samples…`);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1) { y0 -= 1; y1 += 1; }
  const X = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const Y = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  const lines = series.filter((sr) => sr.points.length).map((sr) =>
    s("polyline", { class: sr.cls, points: sr.points.map(([x, y]) => `${X(x).toFixed(1)},${Y(y).toFixed(1)}`).join(" ") }));
  const secs = Math.round((x1 - x0) / 1000);
  const last = series.map((sr) => `${sr.name} ${sr.points.length ? fmt(sr.points[sr.points.length - 1][1]) : "–"}${yUnit}`);
  return s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": id },
    s("title", { id }, `${title} over the last ${secs} s; latest: ${last.join(", ")}`),
    s("line", { class: "axis", x1: left, y1: Y(y0), x2: width - right, y2: Y(y0) }),
    s("line", { class: "axis", x1: left, y1: top, x2: left, y2: Y(y0) }),
    s("text", { x: left - 4, y: top + 8, "text-anchor": "end" }, fmt(Math.round(y1))),
    s("text", { x: left - 4, y: Y(y0), "text-anchor": "end" }, fmt(Math.round(y0))),
    s("text", { x: left, y: height - 6 }, `−${secs} s`),
    s("text", { x: width - right, y: height - 6, "text-anchor": "end" }, "now"),
    lines);
}

function legend(series) {
  return h("p", { class: "note" }, series.map((sr, i) => [i ? " · " : "", sr.cls === "line" ? "━ " : "┅ ", sr.name]));
}

// ---- network -------------------------------------------------------------------------------

const samples = []; // {t, height, final, p50, p99}: kept across visits to the network page

function cosigners(note) {
  // C2SP signed note: signature lines "— <name> <base64>" after the blank line.
  return new Set(note.split("\n").filter((l) => l.startsWith("— ")).map((l) => l.split(" ")[1]));
}

async function pageNetwork(root, _r, alive) {
  const status = slot("Status");
  const cp = slot("Newest final checkpoint");
  const vals = slot("Validators");
  const charts = slot("Height and finality");
  const blocks = slot("Latest blocks");
  root.append(h("h1", {}, "Network"), h("div", { class: "grid" }, status.el, cp.el), vals.el, charts.el, blocks.el);
  let lastHeight = -1;
  let validators = [];
  const refresh = async () => {
    let st;
    const ok = await guarded(status.body, "Status unavailable", async () => {
      st = await api("/v1/status");
    });
    if (!ok || !alive()) return;
    samples.push({ t: Date.now(), height: st.height, final: st.final_checkpoint_height, p50: st.finality_p50_ms, p99: st.finality_p99_ms });
    if (samples.length > MAX_SAMPLES) samples.shift();
    renderStatus(status.body, st);
    renderCharts(charts.body);
    if (st.height === lastHeight) return;
    lastHeight = st.height;
    await guarded(vals.body, "Validators unavailable", async () => {
      validators = await api("/v1/validators");
    });
    const checkpoint = await loadCheckpoint(cp.body);
    if (!alive()) return;
    renderValidators(vals.body, validators, checkpoint);
    await guarded(blocks.body, "Blocks unavailable", () => renderBlocks(blocks.body, st.height, validators, alive));
  };
  await refresh();
  const loop = async () => {
    if (!alive()) return;
    await refresh();
    if (alive()) setTimeout(loop, POLL_MS);
  };
  setTimeout(loop, POLL_MS);
}

function renderStatus(el, st) {
  document.getElementById("chain").textContent = st.chain_id;
  fill(el,
    stats([
      ["Height", h("span", { "data-test": "status-height" }, fmt(st.height))],
      ["Final checkpoint", fmt(st.final_checkpoint_height)],
      ["Log size", fmt(st.log_size)],
      ["Mempool", fmt(st.mempool_txs)],
      ["Finality p50", st.finality_p50_ms === null ? "–" : `${fmt(st.finality_p50_ms)} ms`],
      ["Finality p99", st.finality_p99_ms === null ? "–" : `${fmt(st.finality_p99_ms)} ms`],
    ]),
    h("p", { class: "note" }, `Answered by ${st.name} on ${st.chain_id}; state root `, h("code", { title: st.state_root }, short(st.state_root, 16))));
}

async function loadCheckpoint(el) {
  try {
    const c = await api("/v1/checkpoint");
    const k = c.signatures;
    fill(el,
      stats([["Height", fmt(c.height)], ["Log size", fmt(c.log_size)], ["Cosigned", `${k} (quorum ${c.quorum})`]]),
      h("p", {}, h("span", { class: `badge ${k >= c.quorum ? "ok" : "bad"}` }, k >= c.quorum ? "final: quorum reached" : "below quorum")),
      kv([["Root", h("code", { title: c.root }, short(c.root, 24))], c.state_root && ["State", [`height ${fmt(c.state_height)}, root `, h("code", { title: c.state_root }, short(c.state_root, 16))]]]),
      h("details", {}, h("summary", {}, "Signed note"), h("pre", { class: "note-text" }, c.note)));
    return c;
  } catch (e) {
    fill(el, errorBox("No checkpoint", e));
    return null;
  }
}

function renderValidators(el, validators, checkpoint) {
  const signed = checkpoint ? cosigners(checkpoint.note) : new Set();
  const n = validators.length;
  const k = validators.filter((v) => signed.has(v.name)).length;
  fill(el,
    checkpoint ? h("p", {}, `The newest final checkpoint (height ${fmt(checkpoint.height)}) is cosigned by ${k} of ${n} validators; quorum is ${checkpoint.quorum}.`) : null,
    table(`${n} validators`, [
      ["#", (v) => String(v.index), true],
      ["Name", (v) => v.name],
      ["Organisation", (v) => v.org],
      ["Cosigned newest checkpoint", (v) => (signed.has(v.name) ? h("span", { class: "ok" }, "✓ yes") : h("span", { class: "bad" }, "✗ no"))],
      ["Note key", (v) => h("code", { title: v.note_verifier_key || "" }, v.note_verifier_key ? v.note_verifier_key.split("+").slice(0, 2).join("+") : "none")],
      ["API", (v) => (v.api_url ? h("a", { href: v.api_url }, v.api_url) : "–")],
    ], validators, { "data-test": "validators-table" }));
}

function renderCharts(el) {
  const heights = [
    { name: "height", cls: "line", points: samples.map((p) => [p.t, p.height]) },
    { name: "final checkpoint", cls: "line2", points: samples.filter((p) => p.final !== null).map((p) => [p.t, p.final]) },
  ];
  const latency = [
    { name: "finality p50", cls: "line", points: samples.filter((p) => p.p50 !== null).map((p) => [p.t, p.p50]) },
    { name: "finality p99", cls: "line2", points: samples.filter((p) => p.p99 !== null).map((p) => [p.t, p.p99]) },
  ];
  fill(el, h("div", { class: "grid" },
    h("figure", { "data-test": "height-chart" }, lineChart("Height", heights, ""), h("figcaption", {}, legend(heights))),
    h("figure", { "data-test": "finality-chart" }, lineChart("Finality latency", latency, " ms"), h("figcaption", {}, legend(latency), h("span", { class: "note" }, `Polled every ${POLL_MS / 1000} s.`)))));
}

async function renderBlocks(el, tip, validators, alive) {
  const heights = [];
  for (let hh = tip; hh >= 1 && heights.length < LATEST_BLOCKS; hh--) heights.push(hh);
  const bodies = await Promise.all(heights.map((hh) => api(`/v1/blocks/${hh}`).catch(() => null)));
  if (!alive()) return;
  const rows = bodies.filter(Boolean);
  const proposer = (i) => (validators.find((v) => v.index === i) || {}).name || `#${i}`;
  fill(el, table("Newest finalized blocks", [
    ["Height", (b) => fmt(b.header.height), true],
    ["Time", (b) => time(b.header.timestamp_ms)],
    ["Proposer", (b) => proposer(b.header.proposer)],
    ["Transactions", (b) => (b.tx_hashes.length ? [b.tx_hashes.slice(0, 3).map((t, i) => [i ? ", " : "", txLink(t)]), b.tx_hashes.length > 3 ? ` +${b.tx_hashes.length - 3}` : ""] : "0")],
    ["Log size", (b) => fmt(b.header.log_size), true],
  ], rows, { "data-test": "blocks-table" }));
}

// ---- fleet ---------------------------------------------------------------------------------

const FLEET_FILTERS = [
  // [hash param, API param, label]
  ["model", "model", "Model"],
  ["owner", "owner", "Owner"],
  ["manufacturer", "manufacturer", "Manufacturer"],
  ["status", "status", "Status"],
  ["version", "attested_version", "Attested version"],
  ["q", "q", "Id prefix"],
];
let fleetPages = { key: "", stack: [] }; // cursors of earlier pages, per filter set

async function pageFleet(root, r, alive) {
  const statsSlot = slot("Fleet counts");
  const listSlot = slot("Devices");
  root.append(h("h1", {}, "Fleet"), statsSlot.el, listSlot.el);
  let st = null;
  await guarded(statsSlot.body, "Counts unavailable", async () => {
    st = await api("/v1/devices/stats");
    if (alive()) renderFleetStats(statsSlot.body, st);
  });
  if (!alive()) return;
  const form = fleetForm(r.query, st);
  listSlot.el.insertBefore(form, listSlot.body);
  await guarded(listSlot.body, "Devices unavailable", () => renderDevices(listSlot.body, r.query, alive));
}

function renderFleetStats(el, st) {
  const chartOf = (title, obj) => h("figure", {}, h("figcaption", {}, title), barChart(title, Object.entries(obj)));
  fill(el,
    stats([
      ["Devices", fmt(st.total)],
      ["Active", fmt(st.by_status.active)],
      ["Offered", fmt(st.by_status.offered)],
      ["Revoked", fmt(st.by_status.revoked)],
      ["Unattested", fmt(st.unattested)],
      ["Untrusted CA", fmt(st.untrusted)],
    ]),
    h("p", { class: "note" }, `At finalized height ${fmt(st.height)}.`),
    h("div", { class: "grid", "data-test": "fleet-charts" },
      chartOf("Devices by attested firmware version", { ...st.by_attested_version, "(none)": st.unattested }),
      chartOf("Devices by model", st.by_model),
      chartOf("Devices by owner", st.by_owner),
      chartOf("Devices by status", st.by_status)));
}

function fleetForm(query, st) {
  const options = {
    model: st ? Object.keys(st.by_model) : [],
    owner: st ? Object.keys(st.by_owner) : [],
    manufacturer: st ? Object.keys(st.by_manufacturer) : [],
    status: ["active", "offered", "revoked"],
    version: st ? Object.keys(st.by_attested_version) : [],
  };
  const fields = FLEET_FILTERS.map(([param, , label]) => {
    const id = `fleet-${param}`;
    const value = query.get(param) || "";
    const control = param === "q"
      ? h("input", { id, name: param, value, inputmode: "text", pattern: "[0-9a-fA-F]{0,40}", placeholder: "hex", autocomplete: "off" })
      : h("select", { id, name: param }, h("option", { value: "" }, "any"),
        options[param].map((o) => h("option", { value: o, selected: o === value }, o)));
    return h("label", { for: id }, label, control);
  });
  const form = h("form", { class: "filters", "aria-label": "Device filters" }, fields,
    h("button", { type: "submit" }, "Filter"),
    h("button", { type: "reset", class: "secondary" }, "Clear"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [param] of FLEET_FILTERS) {
      const v = form.elements[param].value.trim();
      if (v) q.set(param, param === "q" ? v.toLowerCase() : v);
    }
    go(`#/fleet${q.toString() ? `?${q}` : ""}`);
  });
  form.addEventListener("reset", (ev) => {
    ev.preventDefault();
    go("#/fleet");
  });
  return form;
}

async function renderDevices(el, query, alive) {
  const apiQ = new URLSearchParams({ limit: String(FLEET_PAGE) });
  for (const [param, apiParam] of FLEET_FILTERS) if (query.get(param)) apiQ.set(apiParam, query.get(param));
  const after = query.get("after") || "";
  if (after) apiQ.set("after", after);
  const key = FLEET_FILTERS.map(([p]) => query.get(p) || "").join("|");
  if (fleetPages.key !== key) fleetPages = { key, stack: [] };
  if (!after) fleetPages.stack = [];
  const page = await api(`/v1/devices?${apiQ}`);
  if (!alive()) return;
  const base = new URLSearchParams(query);
  const link = (cursor) => {
    const q = new URLSearchParams(base);
    if (cursor) q.set("after", cursor); else q.delete("after");
    return `#/fleet?${q}`;
  };
  const first = fleetPages.stack.length * FLEET_PAGE;
  const pager = h("nav", { class: "pager", "aria-label": "Device pages" },
    h("button", { type: "button", class: "secondary", disabled: !after, onclick: () => go(link("")) }, "First"),
    h("button", { type: "button", class: "secondary", disabled: !after, onclick: () => go(link(fleetPages.stack.pop() || "")) }, "Previous"),
    h("button", { type: "button", disabled: !page.next_after, onclick: () => { fleetPages.stack.push(after); go(link(page.next_after)); } }, "Next"),
    h("span", { class: "note" }, page.devices.length ? `devices ${fmt(first + 1)}–${fmt(first + page.devices.length)} of ${fmt(page.total)} matching, at height ${fmt(page.height)}` : `${fmt(page.total)} matching`));
  fill(el, table(`Devices (${fmt(page.total)} matching)`, [
    ["Device id", (d) => deviceLink(d.id)],
    ["Model", (d) => String(d.model), true],
    ["Owner", (d) => d.owner],
    ["Manufacturer", (d) => d.manufacturer],
    ["Status", (d) => statusBadge(d.ca_revoked ? "untrusted" : d.status)],
    ["Attested version", (d) => (d.attestation ? d.attestation.swversion : h("span", { class: "note" }, "none"))],
    ["Registered", (d) => fmt(d.registered_height), true],
  ], page.devices, { "data-test": "devices-table" }), pager);
}

function statusBadge(st) {
  const cls = { active: "ok", certified: "ok", final: "ok", finished: "ok", succeeded: "ok", revoked: "bad", untrusted: "bad", rejected: "bad", failed: "bad" }[st] || "warn";
  return h("span", { class: `badge ${cls}` }, st);
}

// ---- firmware ------------------------------------------------------------------------------

async function pageFirmware(root, r, alive) {
  const rel = slot("Releases");
  const roll = slot("Rollouts");
  const exp = slot("CVE exposure");
  root.append(h("h1", {}, "Firmware"), rel.el, roll.el, exp.el);
  let list = null;
  let reported = [];
  await guarded(rel.body, "Releases unavailable", async () => {
    list = await api("/v1/firmware/releases");
    const details = await Promise.all(list.releases.slice(0, 50).map((x) => api(`/v1/firmware/releases/${x.id}`).catch(() => null)));
    reported = [...new Set(details.filter(Boolean).flatMap((d) => d.vulnerabilities))].sort();
    if (alive()) renderReleases(rel.body, list, details);
  });
  if (!alive()) return;
  const versions = new Map((list ? list.releases : []).map((x) => [x.id, x.version]));
  await guarded(roll.body, "Rollouts unavailable", async () => {
    const ro = await api("/v1/firmware/rollouts");
    if (alive()) renderRollouts(roll.body, ro);
  });
  if (!alive()) return;
  const known = [...new Set((list ? list.releases : []).flatMap((x) => x.fixes))];
  // Without a CVE named, show the first one reported against a release (if any).
  const cve = r.query.get("cve") || reported[0] || "";
  exp.el.insertBefore(cveForm(cve, known), exp.body);
  if (!cve) {
    fill(exp.body, h("p", { class: "note" }, "Name a CVE to list exactly the devices whose attested firmware it affects."));
    return;
  }
  await guarded(exp.body, `Exposure to ${cve}`, async () => {
    const e = await api(`/v1/firmware/exposure?cve=${encodeURIComponent(cve)}`);
    if (alive()) renderExposure(exp.body, e, versions);
  });
}

function renderReleases(el, list, details) {
  const detail = new Map(details.filter(Boolean).map((d) => [d.release.id, d]));
  fill(el,
    h("p", { class: "note" }, `At height ${fmt(list.height)}; newest final checkpoint ${fmt(list.checkpoint_height)}.`),
    table("Published releases", [
      ["Version", (x) => releaseLink(x.id, x.version)],
      ["Publisher", (x) => orgLink(x.publisher)],
      ["Models", (x) => x.models.join(", ")],
      ["Security version", (x) => String(x.security_version), true],
      ["Fixes", (x) => x.fixes.join(", ") || "–"],
      ["Certification", (x) => {
        const c = (detail.get(x.id) || {}).certification;
        return c ? [statusBadge(c.status), ` by ${c.history.map((e) => e.auditor).join(", ")}`] : "none";
      }],
      ["Known CVEs", (x) => ((detail.get(x.id) || {}).vulnerabilities || []).join(", ") || "–"],
      ["Devices running it", (x) => fmt(list.devices_per_release[x.id] || 0), true],
      ["Published", (x) => [`height ${fmt(x.published_height)} `, txLink(x.published_tx)]],
      ["Withdrawn", (x) => (x.withdrawn ? `height ${x.withdrawn.height}: ${x.withdrawn.reason}` : "no")],
    ], list.releases, { "data-test": "releases-table" }));
}

function renderRollouts(el, ro) {
  const done = (x) => x.counts.succeeded + x.counts.failed;
  fill(el, table("Rollouts per fleet, oldest first", [
    ["Fleet", (x) => rolloutLink(x.id, `${x.owner}/${x.fleet}`)],
    ["Version", (x) => releaseLink(x.release, x.version)],
    ["State", (x) => statusBadge(x.status)],
    ["Approvals", (x) => `${x.approvals.length} of ${x.threshold} needed (${x.approvals.join(", ") || "none"})${x.rejection ? `; rejected by ${x.rejection.org}: ${x.rejection.reason}` : ""}`],
    ["Progress", (x) => (x.target_devices
      ? [h("progress", { max: x.target_devices, value: done(x), "aria-label": `${done(x)} of ${x.target_devices} devices done` }), ` ${done(x)}/${x.target_devices}`]
      : "no targets")],
    ["Succeeded", (x) => fmt(x.counts.succeeded), true],
    ["Failed", (x) => fmt(x.counts.failed), true],
    ["In flight", (x) => fmt(x.counts.downloading + x.counts.downloaded + x.counts.updating), true],
    ["Attested", (x) => fmt(x.attested), true],
    ["Created", (x) => [`height ${fmt(x.created_height)} `, txLink(x.id)]],
  ], ro.rollouts, { "data-test": "rollouts-table" }));
}

function cveForm(value, known) {
  const listId = "known-cves";
  const form = h("form", { class: "filters", "aria-label": "CVE exposure" },
    h("label", { for: "cve-input" }, "CVE id",
      h("input", { id: "cve-input", name: "cve", value, placeholder: "CVE-2026-4242", list: listId, autocomplete: "off", "data-test": "cve-input" })),
    h("datalist", { id: listId }, known.map((c) => h("option", { value: c }))),
    h("button", { type: "submit" }, "Show exposure"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = form.elements.cve.value.trim().toUpperCase();
    go(v ? `#/firmware?cve=${encodeURIComponent(v)}` : "#/firmware");
  });
  return form;
}

function renderExposure(el, e, versions) {
  fill(el,
    stats([["Exposed devices", fmt(e.count)], ["Unknown firmware", fmt(e.unknown_firmware)], ["Affected releases", fmt(e.affected.length)]]),
    h("p", {}, `${e.cve} affects: `, e.affected.map((id, i) => [i ? ", " : "", h("code", { title: id }, versions.get(id) || short(id))])),
    table(`Devices exposed to ${e.cve}`, [
      ["Device id", (d) => deviceLink(d.device)],
      ["Version", (d) => d.version],
      ["Security version", (d) => String(d.security_version), true],
      ["Installed at height", (d) => fmt(d.height), true],
    ], e.devices, { "data-test": "exposure-table" }),
    e.devices.length < e.count ? h("p", { class: "note" }, `Showing ${e.devices.length} of ${e.count}.`) : null);
}

// ---- device --------------------------------------------------------------------------------

async function pageDevice(root, r, alive) {
  const id = r.arg.toLowerCase();
  const tampered = r.query.get("proof") === "tampered";
  root.append(h("h1", {}, "Device ", h("code", { class: "mono" }, id)));
  if (!HEX40.test(id)) {
    root.append(errorBox("Not a device id", "a device id is 40 hex digits"));
    return;
  }
  // Ask the fleet index first: an unknown id is an answer, not an HTTP error.
  const known = await api(`/v1/devices?q=${id}&limit=1`);
  if (!alive()) return;
  if (!known.total) {
    root.append(card("Not on this ledger", h("p", { "data-test": "device-unknown" },
      `No device ${id} is registered on this ledger (read at height ${fmt(known.height)}). `,
      h("a", { href: `#/fleet?q=${id.slice(0, 8)}` }, "Devices with a similar id"))));
    return;
  }
  const verify = h("p", { class: "verify", "data-test": "device-verify-status", role: "status" }, "verifying in the browser…");
  const ident = slot("Identity");
  const att = slot("Attestation");
  const own = slot("Ownership history");
  const fw = slot("Firmware updates");
  const data = slot("Data chains and anomalies");
  const audit = slot("Grants, key releases, commands and receipts");
  root.append(
    card("Browser verification", verify, h("p", { class: "note" }, tampered
      ? "Using the test hook's altered device record."
      : "The device record, installed firmware and chain heads are checked here against the state root a quorum-signed checkpoint binds (WebCrypto SHA-256 and Ed25519).")),
    h("div", { class: "grid" }, ident.el, att.el), own.el, fw.el, data.el, audit.el);
  let shown = null;
  const verifier = window.chipledgerVerify;
  const verifying = verifier && typeof verifier.verifyDevice === "function"
    ? verifier.verifyDevice(id, { tampered })
    : Promise.resolve({ ok: false, error: "the verifier (verify.js) did not load" });
  await Promise.all([
    guarded(ident.body, "Device unavailable", async () => {
      const [d, cas] = await Promise.all([api(`/v1/devices/${id}`), api("/v1/cas").catch(() => [])]);
      shown = d;
      if (alive()) renderIdentity(ident.body, att.body, d, cas);
    }).then((ok) => ok || fill(att.body, h("p", { class: "note" }, "No device record."))),
    guarded(own.body, "History unavailable", async () => {
      const hist = await api(`/v1/devices/${id}/history`);
      if (alive()) renderOwnership(own.body, hist);
    }),
    guarded(fw.body, "Firmware unavailable", async () => {
      const f = await apiRetry(`/v1/firmware/devices/${id}`);
      if (alive()) renderDeviceFirmware(fw.body, f);
    }),
    guarded(data.body, "Data unavailable", async () => {
      const d = await api(`/v1/data/devices/${id}`);
      if (alive()) renderDeviceData(data.body, d);
    }),
    guarded(audit.body, "Audit trail unavailable", async () => {
      const a = await api(`/v1/audit/devices/${id}?proofs=false&limit=${DEVICE_TRAIL}`);
      if (alive()) fill(audit.body, auditTable(a, "device-audit-table"));
    }),
  ]);
  const [ok, text] = deviceVerdict(await verifying, shown);
  if (!alive()) return;
  showVerdict(verify, ok, text);
}

/** The sentence for a `verifyDevice` result; also checks it against what the page shows. */
function deviceVerdict(res, shown) {
  if (!res || !res.ok) return [false, `verification failed: ${(res && res.error) || "no result"}`];
  const d = res.device;
  const shownVersion = shown && shown.attestation ? shown.attestation.swversion : null;
  if (shown && (shown.owner !== d.owner || (shownVersion !== d.attestedVersion && shown.attestation && shown.attestation.height <= res.stateHeight))) {
    return [false, `verification failed: the page shows owner ${shown.owner}, attested ${shownVersion || "none"}, but the ledger proves owner ${d.owner}, attested ${d.attestedVersion || "none"}`];
  }
  const parts = [
    `owner ${d.owner}`,
    `attested firmware ${d.attestedVersion || "none"}`,
    `installed ${res.installed ? res.installed.version : "none"}`,
    `${res.heads.length} data chain head${res.heads.length === 1 ? "" : "s"}`,
  ];
  if (d.revoked) parts.unshift("revoked");
  return [true, `verified against checkpoint ${res.size} signed by ${res.signers} of ${res.n} validators (state at height ${fmt(res.stateHeight)}): ${parts.join(", ")}`];
}

function renderIdentity(el, attEl, d, cas) {
  const ca = cas.find((c) => c.id === d.ca);
  fill(el, kv([
    ["Status", statusBadge(d.status)],
    ["Model", String(d.model)],
    ["Owner", orgLink(d.owner)],
    d.offered_to && ["Offered to", orgLink(d.offered_to)],
    ["Manufacturer", orgLink(d.manufacturer)],
    ["Manufacturer CA", [h("code", { title: d.ca }, short(d.ca, 16)), ca ? ` (${ca.org}, models ${ca.models.map(([a, b]) => `${a}–${b}`).join(", ")}${ca.revoked ? `; revoked at ${ca.revoked.height}: ${ca.revoked.reason}` : ""})` : ""]],
    ["Registered at", `height ${fmt(d.registered_height)}`],
    d.revoked && ["Revoked", `height ${d.revoked.height} by ${d.revoked.by}: ${d.revoked.reason}`],
    ["DeviceID certificate", h("details", {}, h("summary", {}, `${d.deviceid_cert.length / 2} bytes DER`), h("pre", { class: "note-text" }, d.deviceid_cert))],
  ]));
  const a = d.attestation;
  fill(attEl,
    h("p", {}, "Attested firmware version: ",
      h("strong", { "data-test": "device-attested-version" }, a ? a.swversion : "none")),
    a ? kv([
      ["Firmware", a.swname],
      ["Accepted at", `height ${fmt(a.height)}`],
      ["Measurement", h("code", { title: a.measurement }, short(a.measurement, 24))],
      ["Alias FWID", h("code", { title: a.alias_fwid_sha256 }, short(a.alias_fwid_sha256, 24) || "–")],
      ["Alias key", a.alias_key_alg],
    ]) : h("p", { class: "note" }, "No accepted evidence (EAT) yet."));
}

function renderOwnership(el, hist) {
  fill(el, table("Registration, transfers, revocation", [
    ["Height", (e) => fmt(e.height), true],
    ["Event", (e) => e.kind],
    ["From", (e) => e.from],
    ["To", (e) => e.to],
    ["Device proved presence", (e) => (e.device_proof ? "yes" : "no")],
  ], hist, { "data-test": "device-history-table" }));
}

function renderDeviceFirmware(el, f) {
  const i = f.installed;
  fill(el,
    i ? kv([
      ["Installed", `${i.version} (security version ${i.security_version})`],
      ["Release", h("code", { title: i.release }, short(i.release, 16))],
      ["Install evidence", [`height ${fmt(i.height)} `, txLink(i.tx)]],
    ]) : h("p", { class: "note" }, "No attested install on the ledger."),
    h("p", { class: "note" }, `The installed record above is proven against the state root at height ${fmt(f.state_height)}; the browser verification at the top of this page checks it.`),
    table("Attested installs", [
      ["Height", (e) => fmt(e.height), true],
      ["Version", (e) => e.version],
      ["Security version", (e) => String(e.security_version), true],
      ["Rollout", (e) => h("code", { title: e.rollout }, short(e.rollout))],
      ["Transaction", (e) => txLink(e.tx)],
    ], f.history, { "data-test": "device-updates-table" }));
}

function renderDeviceData(el, d) {
  const an = d.anomalies;
  fill(el,
    stats([["Records", fmt(d.records)], ["Streams", fmt(d.streams.length)], ["Anomalies", fmt(an.total)], ["Rebirths", fmt(an.rebirths)]]),
    table("Chain heads per stream", [
      ["Stream", (c) => c.stream],
      ["Head seq", (c) => fmt(c.seq), true],
      ["Records", (c) => fmt(c.records), true],
      ["Missing", (c) => fmt(c.missing), true],
      ["Trust", (c) => c.trust_name],
      ["Head hash", (c) => h("code", { title: c.hash }, short(c.hash, 16))],
      ["Committed by", (c) => `${c.gateway} batch ${c.batch_seq} at height ${fmt(c.height)}`],
    ], d.streams, { "data-test": "device-streams-table" }),
    an.total ? [
      table("Anomalies by kind", [["Kind", ([k]) => k], ["Reports", ([, n]) => fmt(n), true]], Object.entries(an.counts).filter(([, n]) => n > 0)),
      table("Latest anomaly reports", [
        ["Height", (a) => fmt(a.height), true],
        ["Kind", (a) => a.kind],
        ["Stream", (a) => a.stream],
        ["Seq", (a) => fmt(a.seq), true],
        ["Detail", (a) => a.detail],
        ["Gateway", (a) => a.gateway],
      ], an.recent),
    ] : h("p", { class: "note" }, "No anomalies reported."));
}

function auditTable(a, testId) {
  return [
    h("p", { class: "note" }, `${fmt(a.total)} entries in the trail of ${a.subject}, read at height ${fmt(a.height)}.`),
    table(`Audit trail of ${a.subject}`, [
      ["#", (e) => String(e.n), true],
      ["Height", (e) => fmt(e.height), true],
      ["Time", (e) => time(e.timestamp_ms)],
      ["Kind", (e) => e.kind],
      ["Actor", (e) => orgLink(e.actor)],
      ["Summary", (e) => e.summary],
      ["Transaction", (e) => (e.kind === "grant" || e.kind === "purchase" ? [txLink(e.tx), " ", h("a", { href: `#/grant/${e.tx}` }, "grant")] : txLink(e.tx))],
    ], a.entries, { "data-test": testId }),
  ];
}

// ---- audit ---------------------------------------------------------------------------------

async function pageAudit(root, r, alive) {
  const trail = slot("Trail");
  root.append(h("h1", {}, "Audit"));
  let orgs = [];
  try {
    orgs = await api("/v1/orgs");
  } catch (e) {
    root.append(errorBox("Organisations unavailable", e));
  }
  if (!alive()) return;
  const q = r.query;
  const subject = q.get("device") ? ["device", q.get("device")] : q.get("key") ? ["key", q.get("key")] : ["org", q.get("org") || busiest(orgs)];
  root.append(trail.el);
  trail.el.insertBefore(auditForm(subject, q.get("kind") || "", orgs), trail.body);
  if (!subject[1]) {
    fill(trail.body, h("p", { class: "note" }, "Choose an organisation, device or key."));
    return;
  }
  const from = Math.max(0, Number(q.get("from")) || 0);
  const apiQ = new URLSearchParams({ proofs: "false", limit: String(AUDIT_PAGE), from: String(from) });
  if (q.get("kind")) apiQ.set("kind", q.get("kind"));
  const path = { org: "orgs", device: "devices", key: "keys" }[subject[0]];
  await guarded(trail.body, "Trail unavailable", async () => {
    const a = await api(`/v1/audit/${path}/${encodeURIComponent(subject[1])}?${apiQ}`);
    if (!alive()) return;
    const link = (f) => {
      const nq = new URLSearchParams(q);
      nq.set("from", String(f));
      return `#/audit?${nq}`;
    };
    const last = a.entries.length ? a.entries[a.entries.length - 1].n : from;
    fill(trail.body, auditTable(a, "audit-table"),
      h("nav", { class: "pager", "aria-label": "Trail pages" },
        h("button", { type: "button", class: "secondary", disabled: from === 0, onclick: () => go(link(Math.max(0, from - AUDIT_PAGE))) }, "Previous"),
        h("button", { type: "button", disabled: a.entries.length < AUDIT_PAGE, onclick: () => go(link(last + 1)) }, "Next")));
  });
}

function busiest(orgs) {
  const sorted = [...orgs].sort((a, b) => b.last_seq - a.last_seq);
  return sorted.length ? sorted[0].name : "";
}

function auditForm([type, value], kind, orgs) {
  const form = h("form", { class: "filters", "aria-label": "Audit trail" },
    h("label", { for: "audit-type" }, "Subject",
      h("select", { id: "audit-type", name: "type" },
        [["org", "organisation"], ["device", "device"], ["key", "grantee key"]].map(([v, l]) => h("option", { value: v, selected: v === type }, l)))),
    h("label", { for: "audit-subject" }, "Name, device id or key hash",
      h("input", { id: "audit-subject", name: "subject", value, list: "audit-orgs", autocomplete: "off", "data-test": "audit-subject" })),
    h("datalist", { id: "audit-orgs" }, orgs.map((o) => h("option", { value: o.name }))),
    h("label", { for: "audit-kind" }, "Kind",
      h("select", { id: "audit-kind", name: "kind", "data-test": "audit-kind" }, h("option", { value: "" }, "any"),
        AUDIT_KINDS.map((k) => h("option", { value: k, selected: k === kind }, k)))),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    const v = form.elements.subject.value.trim();
    if (v) q.set(form.elements.type.value, form.elements.type.value === "org" ? v : v.toLowerCase());
    if (form.elements.kind.value) q.set("kind", form.elements.kind.value);
    go(`#/audit?${q}`);
  });
  return form;
}

// ---- detail pages: release, rollout, organisation, grant -----------------------------------

async function pageRelease(root, r, alive) {
  const id = r.arg.toLowerCase();
  root.append(h("h1", {}, "Release ", h("code", { class: "mono" }, short(id, 24))));
  if (!HEX64.test(id)) {
    root.append(errorBox("Not a release id", "a release id is 64 hex digits"));
    return;
  }
  const list = await api("/v1/firmware/releases");
  if (!alive()) return;
  if (!list.releases.some((x) => x.id === id)) {
    root.append(card("Not on this ledger", h("p", { "data-test": "release-unknown" }, `No release ${id} has been published.`)));
    return;
  }
  const [d, devs, ro] = await Promise.all([
    api(`/v1/firmware/releases/${id}`),
    api(`/v1/firmware/releases/${id}/devices?limit=${FLEET_PAGE}`),
    api("/v1/firmware/rollouts"),
  ]);
  if (!alive()) return;
  const x = d.release;
  const c = d.certification;
  root.append(
    card("Release", kv([
      ["Version", h("strong", { "data-test": "release-version" }, x.version)],
      ["Publisher", orgLink(x.publisher)],
      ["Security version", String(x.security_version)],
      ["Models", x.models.join(", ")],
      ["Applies to", `${x.min_applicable} – ${x.max_applicable}`],
      ["Fixes", x.fixes.join(", ") || "–"],
      ["Known CVEs", d.vulnerabilities.join(", ") || "none reported"],
      ["Certification", c ? [statusBadge(c.status), ` (${c.history.map((e) => `${e.auditor}: ${e.status}${e.note ? `, ${e.note}` : ""} at height ${fmt(e.height)}`).join("; ")})`] : "none"],
      ["Image", [h("code", { title: x.image_digest }, short(x.image_digest, 24)), ` (${fmt(x.image_size)} bytes)`]],
      ["Published", [`height ${fmt(x.published_height)} `, txLink(x.published_tx)]],
      ["Withdrawn", x.withdrawn ? `height ${x.withdrawn.height}: ${x.withdrawn.reason}` : "no"],
      ["Devices running it", fmt(d.devices)],
    ])),
    card("Rollouts of this release", table("Rollouts", [
      ["Fleet", (o) => rolloutLink(o.id, `${o.owner}/${o.fleet}`)],
      ["State", (o) => statusBadge(o.status)],
      ["Succeeded", (o) => fmt(o.counts.succeeded), true],
      ["Failed", (o) => fmt(o.counts.failed), true],
      ["Targets", (o) => fmt(o.target_devices), true],
    ], ro.rollouts.filter((o) => o.release === id), { "data-test": "release-rollouts-table" })),
    card(`Devices running it (first ${FLEET_PAGE} of ${fmt(devs.count)})`, table("Devices", [
      ["Device", (e) => deviceLink(e.device)],
      ["Installed at", (e) => `height ${fmt(e.height)}`, true],
    ], devs.devices, { "data-test": "release-devices-table" })));
}

async function pageRollout(root, r, alive) {
  const id = r.arg.toLowerCase();
  root.append(h("h1", {}, "Rollout ", h("code", { class: "mono" }, short(id, 24))));
  if (!HEX64.test(id)) {
    root.append(errorBox("Not a rollout id", "a rollout id is 64 hex digits"));
    return;
  }
  const list = await api("/v1/firmware/rollouts");
  if (!alive()) return;
  if (!list.rollouts.some((x) => x.id === id)) {
    root.append(card("Not on this ledger", h("p", { "data-test": "rollout-unknown" }, `No rollout ${id} exists.`)));
    return;
  }
  const d = await api(`/v1/firmware/rollouts/${id}`);
  if (!alive()) return;
  const x = d.rollout;
  const done = x.counts.succeeded + x.counts.failed;
  root.append(
    card("Rollout", kv([
      ["Fleet", `${x.owner}/${x.fleet}`],
      ["Release", releaseLink(x.release, x.version)],
      ["State", h("span", { "data-test": "rollout-status" }, statusBadge(x.status))],
      ["Approvals", `${x.approvals.length} of ${x.threshold} needed from ${x.approvers.join(", ")} (given: ${x.approvals.join(", ") || "none"})`],
      x.rejection && ["Rejected", `by ${x.rejection.org}: ${x.rejection.reason}`],
      ["Pace", `${fmt(x.rate_devices_per_min)} devices/min in waves of ${fmt(x.wave_size)}; aborts above ${x.abort_failure_pct}% failures`],
      ["Certified release required", x.require_certified ? "yes" : "no"],
      ["Progress", x.target_devices ? [h("progress", { max: x.target_devices, value: done, "aria-label": `${done} of ${x.target_devices} devices done` }), ` ${done}/${x.target_devices}, ${fmt(x.attested)} attested`] : "no targets"],
      ["Created", [`height ${fmt(x.created_height)} `, txLink(x.id)]],
    ])),
    card("Devices by state", barChart("Devices by state", Object.entries(x.counts).filter(([, n]) => n > 0))),
    card("Devices", table("Per-device state (device reports)", [
      ["Device", (e) => deviceLink(e.device)],
      ["State", (e) => e.state],
      ["Result", (e) => e.result_text || String(e.result)],
      ["Height", (e) => fmt(e.height), true],
    ], d.devices, { "data-test": "rollout-devices-table" })));
}

async function pageOrg(root, r, alive) {
  const name = r.arg;
  root.append(h("h1", {}, "Organisation ", h("code", {}, name)));
  const orgs = await api("/v1/orgs");
  if (!alive()) return;
  const o = orgs.find((x) => x.name === name);
  if (!o) {
    root.append(card("Not on this ledger", h("p", { "data-test": "org-unknown" }, `No organisation ${JSON.stringify(name)} is a member.`)));
    return;
  }
  const q = encodeURIComponent(name);
  const [owned, made, credits, given, received] = await Promise.all([
    api(`/v1/devices?owner=${q}&limit=1`),
    api(`/v1/devices?manufacturer=${q}&limit=1`),
    api(`/v1/access/credits/${q}`),
    api(`/v1/access/grants?owner=${q}`),
    api(`/v1/access/grants?grantee=${q}`),
  ]);
  if (!alive()) return;
  const grants = (caption, list, testId) => table(caption, [
    ["Grant", (g) => grantLink(g.id)],
    ["Owner", (g) => orgLink(g.owner)],
    ["Grantee", (g) => granteeText(g.grantee)],
    ["Purpose", (g) => g.purpose],
    ["Active", (g) => (g.active ? "yes" : g.revoked ? `revoked: ${g.revoked.reason}` : "no")],
  ], list, { "data-test": testId });
  root.append(
    card("Membership", kv([
      ["Roles", h("span", { "data-test": "org-roles" }, o.roles.join(", "))],
      ["Member since", `height ${fmt(o.added_height)}`],
      o.removed_height !== null && o.removed_height !== undefined && ["Removed", `height ${fmt(o.removed_height)}`],
      ["Transactions signed", fmt(o.last_seq)],
      ["Devices owned", h("a", { href: `#/fleet?owner=${q}` }, fmt(owned.total))],
      ["Devices manufactured", h("a", { href: `#/fleet?manufacturer=${q}` }, fmt(made.total))],
      ["Data credits", fmt(credits.balance)],
      ["Audit trail", h("a", { href: `#/audit?org=${q}` }, "every key release, purchase, command and receipt")],
    ])),
    card("Keys", table("Signing keys", [
      ["Key", (k) => h("code", { title: k.key }, short(k.key, 32))],
      ["Valid from", (k) => `height ${fmt(k.from_height)}`],
      ["Until", (k) => (k.until_height === null ? "–" : `height ${fmt(k.until_height)}`)],
    ], o.keys)),
    card("Grants given", grants("Grants this organisation gave", given.grants, "org-grants-given")),
    card("Grants received", grants("Grants to this organisation", received.grants, "org-grants-received")));
}

function granteeText(g) {
  if (g.org) return orgLink(g.org);
  return h("code", { title: g.key || g.key_hash || "" }, `key ${short(g.key_hash || g.key || "", 16)}`);
}

async function pageGrant(root, r, alive) {
  const id = r.arg.toLowerCase();
  root.append(h("h1", {}, "Grant ", h("code", { class: "mono" }, short(id, 24))));
  if (!HEX64.test(id)) {
    root.append(errorBox("Not a grant id", "a grant id is 64 hex digits"));
    return;
  }
  const verify = h("p", { class: "verify", "data-test": "grant-verify-status", role: "status" }, "verifying in the browser…");
  const st = await api(`/v1/tx/${id}`);
  if (!alive()) return;
  if (st.status !== "final") {
    root.append(card("Not on this ledger", h("p", { "data-test": "grant-unknown" }, `No final grant ${id} (transaction ${st.status}).`)));
    return;
  }
  const g = await api(`/v1/access/grants/${id}`);
  if (!alive()) return;
  const sc = g.scope;
  root.append(
    card("Browser verification", verify, h("p", { class: "note" }, "The grant record is checked here against the state root a quorum-signed checkpoint binds.")),
    card("Grant", kv([
      ["Owner", orgLink(g.owner)],
      ["Grantee", granteeText(g.grantee)],
      ["Purpose", h("span", { "data-test": "grant-purpose" }, g.purpose)],
      ["Status", statusBadge(g.active ? "active" : g.revoked ? "revoked" : "expired")],
      g.revoked && ["Revoked", `height ${fmt(g.revoked.height)} (${time(g.revoked.timestamp_ms)}): ${g.revoked.reason}`],
      ["Devices", sc.devices.length ? h("span", {}, ...sc.devices.flatMap((d) => [deviceLink(d), " "])) : "–"],
      ["Tags", sc.tags.join(", ") || "–"],
      ["Streams", sc.streams.join(", ") || "all"],
      ["Records from", `${time(sc.from_ms)} to ${time(sc.until_ms)}`],
      ["Expires", time(g.expires_ms)],
      ["Price", g.price === null || g.price === undefined ? "free" : `${fmt(g.price)} credits`],
      ["Created", [`height ${fmt(g.created_height)} `, txLink(g.id)]],
      ["Key releases", fmt(g.releases)],
    ])),
    card("Trail", h("p", {}, h("a", { href: `#/audit?org=${encodeURIComponent(g.owner)}` }, `The owner's audit trail`), " lists this grant's key releases.")));
  let ok = false, text;
  try {
    const v = window.chipledgerVerify;
    if (!g.state_proof) throw new Error("the node sent no state proof yet; reload shortly");
    const [validators, status] = await Promise.all([api("/v1/validators"), api("/v1/status")]);
    const res = await v.verifyStateProofs(g.state_proof, [`access/grant/${id}`], validators, status.chain_id);
    const proven = res.values[0];
    if (proven === null) throw new Error("the ledger proves no such grant");
    if (v.bytesToHex(proven) !== g.record_cbor) throw new Error("the grant record shown is not the one the ledger holds");
    ok = true;
    text = `verified against checkpoint ${res.size} signed by ${res.signers} of ${res.n} validators (state at height ${fmt(Number(res.stateHeight))}): the grant record shown is the one the ledger holds`;
  } catch (e) {
    text = `verification failed: ${e && e.message ? e.message : e}`;
  }
  if (!alive()) return;
  showVerdict(verify, ok, text);
}

// ---- transaction ---------------------------------------------------------------------------

async function pageTx(root, r, alive) {
  const hash = r.arg.toLowerCase();
  const tampered = r.query.get("proof") === "tampered";
  root.append(h("h1", {}, "Transaction ", h("code", { class: "mono" }, short(hash, 24))));
  const verify = h("p", { class: "verify", "data-test": "verify-status", role: "status" }, "verifying in the browser…");
  const st = slot("Status");
  const dec = slot("Decoded");
  const proof = slot("Inclusion proof");
  root.append(card("Browser verification", verify,
    h("p", { class: "note" }, tampered ? "Using the test hook's tampered proof." : "SHA-256 and Ed25519 checks run in this page (WebCrypto), not on the server.")), st.el, dec.el, proof.el);
  const verifying = runVerify(verify, hash, tampered, alive);
  if (!HEX64.test(hash)) {
    fill(st.body, errorBox("Not a transaction hash", "a transaction hash is 64 hex digits"));
    fill(dec.body);
    fill(proof.body);
    await verifying;
    return;
  }
  let tx = null;
  await guarded(st.body, "Status unavailable", async () => {
    // With the test hook, show the (tampered) proof the verifier was given.
    tx = await api(tampered ? `/v1/test/tampered-proof/${hash}` : `/v1/tx/${hash}`);
    if (alive()) renderTxStatus(st.body, tx);
  });
  if (!alive()) return;
  if (tx && tx.height) await guarded(dec.body, "Could not decode", () => renderDecoded(dec.body, tx, alive));
  else fill(dec.body, h("p", { class: "note" }, "Only final transactions are decoded."));
  if (tx && tx.proof) renderProof(proof.body, tx.proof);
  else fill(proof.body, h("p", { class: "note" }, "No inclusion proof: the transaction is not final."));
  await verifying;
}

async function runVerify(el, hash, tampered, alive) {
  let text, ok = false;
  try {
    const v = window.chipledgerVerify;
    if (!v || typeof v.verifyTx !== "function") throw new Error("the verifier (verify.js) did not load");
    const res = await v.verifyTx(hash, { tampered });
    ok = !!(res && res.ok);
    text = typeof v.renderStatus === "function"
      ? v.renderStatus(res)
      : ok
        ? `verified against checkpoint ${res.size} signed by ${res.signers} of ${res.n} validators`
        : `verification failed: ${(res && res.error) || "no result"}`;
  } catch (e) {
    text = `verification failed: ${e && e.message ? e.message : e}`;
  }
  if (!alive()) return;
  showVerdict(el, ok, text);
}

function renderTxStatus(el, tx) {
  fill(el, kv([
    ["Hash", h("code", {}, tx.hash)],
    ["Status", statusBadge(tx.status)],
    tx.height !== null && tx.height !== undefined && ["Block height", fmt(tx.height)],
    tx.reason && ["Reason", tx.reason],
  ]));
}

function renderProof(el, p) {
  fill(el,
    kv([
      ["Leaf index", fmt(p.leaf_index)],
      ["Log size", fmt(p.log_size)],
      ["Root", h("code", {}, p.root)],
      ["Against", p.checkpoint ? "the newest final checkpoint (below)" : "the node's tip (no final checkpoint covers it yet)"],
    ]),
    table("Audit path (RFC 9162), leaf's sibling first", [["#", (x) => String(x[0]), true], ["Hash", (x) => h("code", {}, x[1])]], p.hashes.map((x, i) => [i, x]), { "data-test": "proof-table" }),
    p.checkpoint ? h("details", {}, h("summary", {}, "Checkpoint (signed note)"), h("pre", { class: "note-text" }, p.checkpoint)) : null);
}

async function renderDecoded(el, tx, alive) {
  const block = await api(`/v1/blocks/${tx.height}`);
  if (!alive()) return;
  const pos = block.tx_hashes.indexOf(tx.hash);
  const decoded = decodeCbor(hexToBytes(block.raw));
  const txs = Array.isArray(decoded) && Array.isArray(decoded[1]) ? decoded[1] : [];
  const bytes = pos >= 0 ? txs[pos] : null;
  const head = [
    ["Block", [`height ${fmt(block.header.height)}, `, time(block.header.timestamp_ms), `, proposer #${block.header.proposer}`]],
    ["Position", pos >= 0 ? `${pos + 1} of ${block.tx_hashes.length} in the block` : "not found in the block"],
  ];
  if (!(bytes instanceof Uint8Array)) {
    fill(el, kv(head));
    return;
  }
  const env = decodeCbor(bytes);
  const body = Array.isArray(env) ? env[0] : null;
  if (!Array.isArray(body) || body.length !== 6) {
    fill(el, kv(head), h("pre", { class: "note-text" }, diag(env)));
    return;
  }
  const [chain, org, keyId, seq, expiry, payload] = body;
  const tag = Array.isArray(payload) ? payload[0] : null;
  fill(el,
    kv([
      ...head,
      ["Type", h("strong", { "data-test": "tx-kind" }, PAYLOAD_NAMES[tag] || `payload ${tag}`)],
      ["Signed by", `${org} (key ${keyId instanceof Uint8Array ? bytesToHex(keyId) : diag(keyId)})`],
      ["Sequence", String(seq)],
      ["Valid until height", String(expiry)],
      ["Chain", String(chain)],
      ["Size", `${bytes.length} bytes`],
    ]),
    h("details", { open: true }, h("summary", {}, "Payload fields (CBOR)"),
      h("pre", { class: "note-text" }, diag(Array.isArray(payload) ? payload.slice(1) : payload))));
}

// ---- a small, bounded CBOR decoder (RFC 8949) for showing transactions ---------------------

function hexToBytes(hex) {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}
function bytesToHex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Decode one CBOR item (verify.js's bounded decoder); throws on malformed input. */
function decodeCbor(bytes) {
  const v = window.chipledgerVerify;
  if (!v || typeof v.decodeCbor !== "function") throw new Error("the verifier (verify.js) did not load");
  return v.decodeCbor(bytes);
}

/** CBOR diagnostic notation (RFC 8949 §8), long byte strings shortened. */
function diag(v, indent = "") {
  const next = `${indent}  `;
  if (v instanceof Uint8Array) return v.length > 48 ? `h'${bytesToHex(v.slice(0, 32))}…' (${v.length} bytes)` : `h'${bytesToHex(v)}'`;
  if (typeof v === "string") return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}…` : v);
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) {
    if (!v.length) return "[]";
    const inner = v.map((x) => diag(x, next));
    return inner.join(", ").length < 80 && !inner.some((x) => x.includes("\n")) ? `[${inner.join(", ")}]` : `[\n${inner.map((x) => next + x).join(",\n")}\n${indent}]`;
  }
  if (v instanceof Map) return `{${[...v].map(([k, x]) => `\n${next}${diag(k, next)}: ${diag(x, next)}`).join(",")}\n${indent}}`;
  if (v && typeof v === "object" && "tag" in v) return `${v.tag}(${diag(v.value, indent)})`;
  return String(v);
}

// ---- start ---------------------------------------------------------------------------------

window.addEventListener("unhandledrejection", (ev) => {
  ev.preventDefault();
  main.append(errorBox("Unexpected error", ev.reason));
});
window.addEventListener("hashchange", route);
setupSearch();
api("/v1/status").then((st) => {
  document.getElementById("chain").textContent = st.chain_id;
}, () => {
  document.getElementById("chain").textContent = "node unreachable";
});
if (!location.hash) history.replaceState(null, "", "#/network");
route();
