// The ofa-nas dashboard: one page, one view per URL under /ui/, reading only the REST API of the server that
// serves it. No build step: plain ES modules, no library.
import { Scatter, formatNumber } from "/ui/static/chart.js";

const TOKEN_KEY = "nas-token";
const view = document.getElementById("view");
const banner = document.getElementById("banner");
let cleanup = () => {};

// ------------------------------------------------------------------ helpers
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

class Unauthorized extends Error {}
class ServerDown extends Error {}
class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : (detail || []).map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; "));
    this.status = status; this.detail = detail;
  }
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  let body = options.body;
  if (body !== undefined && typeof body !== "string") { body = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  let r;
  try {
    r = await fetch(path, { method: options.method || "GET", headers, body });
  } catch (e) {
    throw new ServerDown(`the server does not answer (${e.message})`);
  }
  if (r.status === 401) throw new Unauthorized("this server needs a token");
  if (r.status >= 502 && r.status <= 504) throw new ServerDown(`the server answered ${r.status}`);
  if (options.raw) { if (!r.ok) throw new ApiError(r.status, (await r.json().catch(() => ({}))).detail || r.statusText); return r; }
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, data && data.detail !== undefined ? data.detail : r.statusText);
  return data;
}

function showBanner(text, kind = "error") {
  if (!text) { banner.hidden = true; return; }
  banner.className = kind; banner.textContent = text; banner.hidden = false;
}

const link = (href, text) => h("a", { href }, text);
const when = (t) => (t ? new Date(t).toLocaleString() : "–");
function duration(a, b) {
  if (!a) return "–";
  const s = Math.max(0, ((b ? new Date(b) : new Date()) - new Date(a)) / 1000);
  return s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${(s / 3600).toFixed(1)} h`;
}
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(2)}%`);
const badge = (status) => h("span", { class: `badge ${status}` }, status);
const ACTIVE = new Set(["queued", "running"]);
const RESUMABLE = new Set(["failed", "cancelled", "interrupted"]);

function progressBar(job) {
  const value = Math.round((job.progress || 0) * 100);
  return h("progress", { max: 100, value, "aria-label": `progress ${value}%`, title: `${value}%` });
}

function jobError(job) {
  if (job.status !== "failed" || !job.error) return null;
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, "The job failed: "), h("pre", {}, job.error));
}

function table(headers, rows, caption) {
  return h("table", {}, caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

// poll(fn, ms): call fn now and every ms until the view changes; fn returning false stops it
function poll(fn, ms) {
  let stop = false, timer = null;
  const tick = async () => {
    if (stop) return;
    let again = true;
    try { again = (await fn()) !== false; showBanner(null); } catch (e) {
      if (e instanceof ServerDown) showBanner(`The server is not answering (${e.message}); retrying…`);
      else if (e instanceof Unauthorized) { login(); return; }
      else showBanner(e.message);
    }
    if (!stop && again) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stop = true; clearTimeout(timer); };
}

// ------------------------------------------------------------------ routing
const routes = [
  [/^\/ui\/?$/, experimentsView], [/^\/ui\/experiments\/?$/, experimentsView],
  [/^\/ui\/experiments\/([^/]+)$/, experimentView], [/^\/ui\/launch$/, launchView],
  [/^\/ui\/runs\/?$/, runsView], [/^\/ui\/runs\/([^/]+)$/, runView],
  [/^\/ui\/devices\/?$/, devicesView], [/^\/ui\/devices\/([^/]+)$/, deviceView],
  [/^\/ui\/exports\/?$/, exportsView], [/^\/ui\/exports\/([^/]+)$/, exportView],
];

export function navigate(path) {
  history.pushState(null, "", path);
  render();
}

async function render() {
  cleanup(); cleanup = () => {};
  showBanner(null);
  const path = location.pathname;
  for (const a of document.querySelectorAll("nav a")) {
    const here = path === a.getAttribute("href") || path.startsWith(a.getAttribute("href") + "/") ||
      (a.dataset.home !== undefined && /^\/ui\/?$/.test(path));
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const found = routes.find(([re]) => re.test(path));
  view.replaceChildren();
  if (!found) { view.append(h("h1", {}, "Not found"), h("p", {}, `No view at ${path}. `, link("/ui/", "Experiments"))); return; }
  const args = path.match(found[0]).slice(1).map(decodeURIComponent);
  try {
    const done = await found[1](view, ...args);
    if (typeof done === "function") cleanup = done;
  } catch (e) { failed(e); }
}

function failed(e) {
  if (e instanceof Unauthorized) return login();
  if (e instanceof ServerDown) {
    view.replaceChildren(h("h1", {}, "Server unreachable"),
      h("p", { role: "alert" }, `The server is not answering: ${e.message}. Is \`nas serve\` running? `),
      h("button", { onclick: render }, "Try again"));
    return;
  }
  view.replaceChildren(h("h1", {}, e.status === 404 ? "Not found" : "Error"), h("p", { role: "alert", class: "error" }, e.message));
}

function login(message) {
  cleanup(); cleanup = () => {};
  const had = !!sessionStorage.getItem(TOKEN_KEY);
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", onsubmit: (e) => {
    e.preventDefault(); sessionStorage.setItem(TOKEN_KEY, input.value.trim()); updateTokenButton(); render();
  } },
  h("h1", {}, "Sign in"),
  h("p", { role: "alert" }, message || (had ? "The server refused the token in this browser session. Enter it again."
    : "This server needs its API token (`nas serve --token` or NAS_API_TOKEN).")),
  h("label", { for: "token" }, "API token"), input, h("button", { type: "submit" }, "Sign in"),
  h("p", { class: "hint" }, "The token is kept in this browser tab's session storage only."));
  view.replaceChildren(form);
  input.focus();
}

function updateTokenButton() {
  document.getElementById("logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target || a.hasAttribute("download")) return;
  const href = a.getAttribute("href");
  if (href && href.startsWith("/ui/")) { e.preventDefault(); navigate(href); }
});
window.addEventListener("popstate", render);
document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); updateTokenButton(); render(); });

// ------------------------------------------------------------------ experiments list
async function experimentsView(root) {
  root.append(h("div", { class: "title" }, h("h1", {}, "Experiments"), link("/ui/launch", "New search…")));
  const body = h("div");
  root.append(body);
  return poll(async () => {
    const list = await api("/experiments");
    if (!list.length) { body.replaceChildren(h("p", {}, "No experiments yet. ", link("/ui/launch", "Launch a search"), ".")); return true; }
    const rows = list.slice().reverse().map((x) => {
      const best = Object.entries(x.best || {}).map(([dev, b]) => {
        const vals = Object.entries((b && b.values) || {}).slice(0, 2).map(([k, v]) => `${k} ${formatNumber(v)}`);
        return h("div", {}, `${dev}: ${vals.join(", ") || "–"}`);
      });
      const actions = h("div", { class: "actions" });
      if (ACTIVE.has(x.status)) actions.append(h("button", { onclick: () => act(`/experiments/${x.id}/cancel`) , "aria-label": `Cancel ${x.name}` }, "Cancel"));
      if (RESUMABLE.has(x.status)) actions.append(h("button", { onclick: () => act(`/experiments/${x.id}/resume`), "aria-label": `Resume ${x.name}` }, "Resume"));
      return h("tr", { dataset: { id: x.id, status: x.status } },
        h("td", {}, link(`/ui/experiments/${x.id}`, x.name), h("div", { class: "muted" }, x.id)),
        h("td", {}, badge(x.status), x.status === "failed" && x.error ? h("div", { class: "error small" }, x.error.split("\n").slice(-1)[0]) : null),
        h("td", {}, progressBar(x)), h("td", { class: "num" }, `${x.trials_done} / ${x.budget}`),
        h("td", {}, x.devices.join(", ")), h("td", {}, best), h("td", {}, when(x.started_at)),
        h("td", {}, duration(x.started_at, x.finished_at)), h("td", {}, actions));
    });
    body.replaceChildren(h("table", { id: "experiments" },
      h("thead", {}, h("tr", {}, ["Experiment", "Status", "Progress", "Trials", "Devices", "Best so far", "Started", "Duration", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
    return true;
  }, 2000);

  async function act(path) {
    try { await api(path, { method: "POST" }); showBanner(null); } catch (e) {
      if (e instanceof Unauthorized) return login();
      showBanner(e.message);
    }
  }
}

// ------------------------------------------------------------------ one experiment
const COLORS = { infeasible: "#b8b8b8", feasible: "#3a6fb0", front: "#e07b24", chosen: "#c0392b", fit: "#3a6fb0", heldout: "#e07b24" };
const UNITS = { latency_ms: "ms", sram_bytes: "B", flash_bytes: "B", macs: "MACs", params: "params", accuracy: "top-1" };

async function experimentView(root, id) {
  const exp = await api(`/experiments/${id}`);
  const head = h("div");
  root.append(h("p", {}, link("/ui/experiments", "← Experiments")), head);
  const tabs = h("div", { role: "tablist", "aria-label": "Devices" });
  const panel = h("section", { id: "device-panel", role: "tabpanel" });
  root.append(tabs, panel);
  let device = new URLSearchParams(location.search).get("device") || exp.devices[0];
  let shown = null; // the device panel's state: {device, trials_done, refresh}
  const drawHead = (x) => {
    const actions = h("div", { class: "actions" });
    if (ACTIVE.has(x.status)) actions.append(h("button", { onclick: () => api(`/experiments/${id}/cancel`, { method: "POST" }).then(live, failed) }, "Cancel"));
    if (RESUMABLE.has(x.status)) actions.append(h("button", { onclick: () => api(`/experiments/${id}/resume`, { method: "POST" }).then(live, failed) }, "Resume"));
    head.replaceChildren(...[h("div", { class: "title" }, h("h1", {}, x.name), badge(x.status), actions),
      h("p", { class: "muted" }, `${x.id} · ${x.spec && x.spec.run ? `run ${x.spec.run}` : `space ${x.spec ? x.spec.space : "?"}`} · started ${when(x.started_at)} · ${duration(x.started_at, x.finished_at)}`),
      h("div", { class: "progress-row" }, progressBar(x), ` ${x.trials_done} / ${x.budget} trials`, x.message ? h("span", { class: "muted" }, ` · ${x.message}`) : null),
      jobError(x)].filter(Boolean));
  };
  const drawTabs = (x) => {
    tabs.replaceChildren(...x.devices.map((d) => h("button", { role: "tab", id: `tab-${d}`, "aria-selected": String(d === device),
      "aria-controls": "device-panel", tabindex: d === device ? "0" : "-1",
      onclick: () => { device = d; history.replaceState(null, "", `?device=${encodeURIComponent(d)}`); drawTabs(x); showDevice(x); },
      onkeydown: (e) => {
        const i = x.devices.indexOf(d);
        const j = e.key === "ArrowRight" ? i + 1 : e.key === "ArrowLeft" ? i - 1 : null;
        if (j === null) return;
        const next = x.devices[(j + x.devices.length) % x.devices.length];
        tabs.querySelector(`#tab-${CSS.escape(next)}`).click(); tabs.querySelector(`#tab-${CSS.escape(next)}`).focus();
      } }, d)));
  };
  let stopDevice = () => {};
  const showDevice = (x) => {
    stopDevice();
    panel.setAttribute("aria-labelledby", `tab-${device}`);
    panel.replaceChildren();
    shown = devicePanel(panel, x, device);
    stopDevice = shown.stop;
  };
  drawHead(exp); drawTabs(exp); showDevice(exp);
  let last = exp, lastFetch = performance.now(), pending = false, stopPoll = () => {};
  async function tick() {
    const x = await api(`/experiments/${id}`);
    drawHead(x);
    if (x.trials_done !== last.trials_done || x.status !== last.status) pending = true;
    last = x;
    // new trials are fetched at most every 4 s while it runs, and once more when it ends
    if (pending && (performance.now() - lastFetch > 4000 || !ACTIVE.has(x.status))) {
      pending = false; lastFetch = performance.now(); shown.refresh(x);
    }
    return ACTIVE.has(x.status);
  }
  function live() { stopPoll(); stopPoll = poll(tick, 2000); }
  if (ACTIVE.has(exp.status)) live();
  return () => { stopPoll(); stopDevice(); };
}

function devicePanel(panel, exp, device) {
  const controls = h("div", { class: "controls" });
  const chartBox = h("div", { class: "chart-box" });
  const detail = h("aside", { class: "detail", "aria-live": "polite" }, h("p", { class: "muted" }, "Hover a point for its figures; click it (or press Enter on it) to see its arch and export it."));
  const tableBox = h("div", { class: "trials" });
  const status = h("p", { class: "muted" }, "Loading trials…");
  panel.append(status, controls, h("div", { class: "chart-row" }, chartBox, detail), tableBox);
  const chart = new Scatter(chartBox, { onSelect: (i) => select(i) });
  let t = null, stopped = false, selected = -1;
  const objectives = Object.keys(exp.spec ? exp.spec.objectives || {} : {});
  let xKey = null, yKey = null;

  async function load() {
    const t0 = performance.now();
    const data = await api(`/experiments/${exp.id}/trials?device=${encodeURIComponent(device)}`);
    if (stopped) return;
    const fetchMs = performance.now() - t0;
    const cols = {};
    for (const [k, v] of Object.entries(data.columns)) cols[k] = k === "feasible" || k === "front" ? v : Float64Array.from(v, (z) => (z === null ? NaN : z));
    t = { ...data, cols, keys: Object.keys(cols).filter((k) => !["trial", "feasible", "front"].includes(k)) };
    t.row = new Map(); cols.trial.forEach((n, i) => t.row.set(n, i));
    yKey = yKey || objectives[0] || t.keys[0];
    xKey = xKey || objectives.find((o) => o !== yKey) || (yKey === "latency_ms" ? "macs" : "latency_ms");
    if (!t.keys.includes(xKey)) xKey = t.keys.find((k) => k !== yKey) || yKey;
    status.textContent = `${data.n} trials on ${device} (${data.source === "result" ? "finished search" : "recorded so far"}), ` +
      `${cols.feasible.filter(Boolean).length} feasible, ${cols.front.filter(Boolean).length} on the Pareto front.`;
    drawControls(); drawChart(); rows.update();
    window.__nas = { ...(window.__nas || {}), fetchMs, points: data.n, chartMs: chart.renderMs };
    performance.mark("nas:chart-drawn");
  }

  function drawControls() {
    const pick = (id, label, value, set) => {
      const sel = h("select", { id, onchange: (e) => { set(e.target.value); drawChart(); } }, t.keys.map((k) => h("option", { value: k, selected: k === value }, k)));
      return h("span", { class: "field" }, h("label", { for: id }, label), sel);
    };
    controls.replaceChildren(pick("y-axis", "Y axis", yKey, (v) => (yKey = v)), pick("x-axis", "X axis", xKey, (v) => (xKey = v)));
  }

  function drawChart() {
    const n = t.n, c = t.cols;
    const groups = { infeasible: [], feasible: [], front: [] };
    for (let i = 0; i < n; i++) (c.front[i] ? groups.front : c.feasible[i] ? groups.feasible : groups.infeasible).push(i);
    const chosen = t.chosen !== null && t.row.has(t.chosen) ? [t.row.get(t.chosen)] : [];
    const lines = [];
    for (const [k, bound] of Object.entries(t.constraints)) {
      if (k === xKey) lines.push({ axis: "x", value: bound, label: `${k} ≤ ${formatNumber(bound)}` });
      if (k === yKey) lines.push({ axis: "y", value: bound, label: `${k} ≤ ${formatNumber(bound)}` });
    }
    const frontOrder = groups.front.slice().sort((a, b) => c[xKey][a] - c[xKey][b]);
    chart.setData({
      x: c[xKey], y: c[yKey], xLabel: `${xKey}${UNITS[xKey] ? ` (${UNITS[xKey]})` : ""}`, yLabel: `${yKey}${UNITS[yKey] ? ` (${UNITS[yKey]})` : ""}`,
      groups: [
        { label: "infeasible", color: COLORS.infeasible, shape: "square", size: 1.5, index: Int32Array.from(groups.infeasible) },
        { label: "feasible", color: COLORS.feasible, shape: "square", size: 2, index: Int32Array.from(groups.feasible) },
        { label: "Pareto front", color: COLORS.front, shape: "circle", size: 4, index: Int32Array.from(groups.front), line: true },
        { label: "chosen", color: COLORS.chosen, shape: "star", size: 10, index: Int32Array.from(chosen) },
      ],
      lines, selected, keyboard: [...frontOrder, ...chosen.filter((i) => !groups.front.includes(i))],
      describe: (i) => describe(i),
    });
  }

  const archCache = new Map();
  function describe(i) {
    const c = t.cols, n = c.trial[i];
    const kind = c.front[i] ? "Pareto front" : c.feasible[i] ? "feasible" : "infeasible";
    const lines = [h("strong", {}, `trial ${n}`), ` · ${kind}${t.chosen === n ? " · chosen" : ""}`];
    for (const k of t.keys) lines.push(h("div", {}, `${k}: ${formatNumber(c[k][i])}${UNITS[k] && k !== "macs" && k !== "params" ? " " + UNITS[k] : ""}`));
    const archLine = h("div", { class: "arch" }, archCache.has(n) ? archText(archCache.get(n)) : "arch: …");
    lines.push(archLine);
    if (!archCache.has(n)) {
      clearTimeout(describe.timer);
      describe.timer = setTimeout(() => trial(n).then((tr) => { archLine.textContent = archText(tr.arch); }, () => {}), 120);
    }
    return lines;
  }
  const archText = (a) => `arch: r ${JSON.stringify(a.r)} · d ${a.d.join("")} · ks ${a.ks.join("")} · e ${a.e.join(" ")}`;
  async function trial(n) {
    if (archCache.has(n)) return { arch: archCache.get(n), ...archCache.get(`full-${n}`) };
    const tr = await api(`/experiments/${exp.id}/trials/${n}?device=${encodeURIComponent(device)}`);
    archCache.set(n, tr.arch); archCache.set(`full-${n}`, tr);
    return tr;
  }

  async function select(i) {
    selected = i;
    drawChart();
    rows.mark(i);
    const n = t.cols.trial[i];
    detail.replaceChildren(h("h2", {}, `Trial ${n}`), h("p", { class: "muted" }, "Loading…"));
    let tr;
    try { tr = await trial(n); } catch (e) { detail.replaceChildren(h("p", { class: "error" }, e.message)); return; }
    const figures = Object.entries(tr.values).map(([k, v]) => [k, `${formatNumber(v)}${UNITS[k] && k !== "macs" && k !== "params" ? " " + UNITS[k] : ""}`,
      k in t.constraints ? `≤ ${formatNumber(t.constraints[k])}` : ""]);
    detail.replaceChildren(h("h2", {}, `Trial ${n}`),
      h("p", {}, tr.feasible ? "Feasible" : "Infeasible", t.cols.front[i] ? " · on the Pareto front" : "", t.chosen === n ? " · chosen" : ""),
      table(["figure", "predicted", "bound"], figures),
      h("details", {}, h("summary", {}, "Arch (OFA keys)"), h("pre", { class: "arch-json" }, JSON.stringify(tr.arch))),
      exportForm(exp, device, tr.arch, n));
  }

  const rows = trialsTable(tableBox, () => t, (i) => select(i));
  load().catch((e) => { if (e instanceof ApiError && e.status === 409) status.textContent = e.message; else failedIn(status, e); });
  return {
    stop: () => { stopped = true; chart.destroy(); },
    refresh: () => load().catch((e) => failedIn(status, e)),
  };
}

function failedIn(el, e) {
  if (e instanceof Unauthorized) return login();
  el.textContent = e instanceof ServerDown ? `The server is not answering (${e.message}).` : e.message;
  el.className = "error";
}

function exportForm(exp, device, arch, n) {
  const FORMATS = ["safetensors", "torchscript", "onnx", "int8", "c-header"];
  const msg = h("p", { class: "error", role: "alert" });
  const boxes = FORMATS.map((f) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "format", value: f }), ` ${f}`));
  const epochs = h("input", { id: "finetune", type: "number", min: 0, max: 100, value: 0 });
  const form = h("form", { class: "export-form", onsubmit: async (e) => {
    e.preventDefault();
    const formats = [...form.querySelectorAll("input[name=format]:checked")].map((x) => x.value);
    const body = { experiment: exp.id, device, arch, finetune_epochs: Number(epochs.value || 0) };
    if (formats.length) body.formats = formats;
    msg.textContent = "";
    try {
      const r = await api("/exports", { method: "POST", body });
      navigate(`/ui/exports/${r.id}`);
    } catch (err) {
      if (err instanceof Unauthorized) return login();
      msg.textContent = err instanceof ApiError && Array.isArray(err.detail)
        ? err.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") : err.message;
    }
  } },
  h("h3", {}, "Export this subnet"),
  h("fieldset", {}, h("legend", {}, "Formats (none ticked: the device kind's defaults)"), boxes),
  h("span", { class: "field" }, h("label", { for: "finetune" }, "Fine-tune epochs"), epochs),
  h("button", { type: "submit" }, `Export trial ${n} for ${device}`), msg);
  return form;
}

// the trials table: sort by any column, filter, 50 rows a page; works on index arrays, so 100k rows stay quick
function trialsTable(box, get, onPick) {
  let sortKey = "trial", desc = false, page = 0, only = "all", minKey = "", bound = "", order = null, marked = -1;
  const PAGE = 50;
  const pager = h("div", { class: "pager" });
  const filter = h("div", { class: "controls" });
  const tbl = h("table", { id: "trials" });
  box.append(h("h2", {}, "Trials"), filter, tbl, pager);

  function compute() {
    const t = get(); if (!t) return;
    const c = t.cols, n = t.n;
    const idx = [];
    const lim = bound === "" ? null : Number(bound);
    for (let i = 0; i < n; i++) {
      if (only === "feasible" && !c.feasible[i]) continue;
      if (only === "front" && !c.front[i]) continue;
      if (lim !== null && minKey && !(c[minKey][i] <= lim)) continue;
      idx.push(i);
    }
    const col = c[sortKey] || c.trial, sign = desc ? -1 : 1;
    idx.sort((a, b) => { const x = col[a], y = col[b]; return (x === y ? a - b : x < y || Number.isNaN(y) ? -1 : 1) * sign; });
    order = idx;
  }

  function drawFilter() {
    const t = get();
    const onlySel = h("select", { id: "only", onchange: (e) => { only = e.target.value; page = 0; update(); } },
      [["all", "all trials"], ["feasible", "feasible only"], ["front", "Pareto front only"]].map(([v, l]) => h("option", { value: v, selected: v === only }, l)));
    const keySel = h("select", { id: "bound-key", onchange: (e) => { minKey = e.target.value; page = 0; update(); } },
      [h("option", { value: "" }, "(no bound)"), ...t.keys.map((k) => h("option", { value: k, selected: k === minKey }, k))]);
    const boundIn = h("input", { id: "bound-value", type: "number", step: "any", value: bound, onchange: (e) => { bound = e.target.value; page = 0; update(); } });
    filter.replaceChildren(h("span", { class: "field" }, h("label", { for: "only" }, "Show"), onlySel),
      h("span", { class: "field" }, h("label", { for: "bound-key" }, "Where"), keySel),
      h("span", { class: "field" }, h("label", { for: "bound-value" }, "≤"), boundIn));
  }

  function draw() {
    const t = get(); if (!t || !order) return;
    const cols = ["trial", ...t.keys, "feasible", "front"];
    const pages = Math.max(1, Math.ceil(order.length / PAGE));
    page = Math.min(page, pages - 1);
    const rows = order.slice(page * PAGE, page * PAGE + PAGE);
    tbl.replaceChildren(
      h("caption", { class: "muted" }, `${order.length} of ${t.n} trials; click a heading to sort`),
      h("thead", {}, h("tr", {}, cols.map((k) => h("th", { scope: "col", "aria-sort": k === sortKey ? (desc ? "descending" : "ascending") : "none" },
        h("button", { class: "sort", onclick: () => { desc = sortKey === k ? !desc : false; sortKey = k; page = 0; update(); } }, k, k === sortKey ? (desc ? " ▼" : " ▲") : ""))))),
      h("tbody", {}, rows.map((i) => h("tr", { class: i === marked ? "marked" : "", dataset: { row: i } }, cols.map((k) => {
        const v = t.cols[k][i];
        if (k === "trial") return h("td", {}, h("button", { class: "linkish", onclick: () => onPick(i), "aria-label": `Show trial ${v}` }, String(v)), t.chosen === v ? " ★" : "");
        if (k === "feasible" || k === "front") return h("td", {}, v ? "yes" : "no");
        return h("td", { class: "num" }, formatNumber(v));
      })))));
    pager.replaceChildren(
      h("button", { disabled: page === 0, onclick: () => { page--; draw(); } }, "← Previous"),
      h("span", {}, ` page ${page + 1} of ${pages} `),
      h("button", { disabled: page >= pages - 1, onclick: () => { page++; draw(); } }, "Next →"));
  }

  function update() { compute(); drawFilter(); draw(); }
  return {
    update,
    mark(i) {
      marked = i;
      if (order) { const pos = order.indexOf(i); if (pos >= 0) page = Math.floor(pos / PAGE); }
      draw();
    },
  };
}

// ------------------------------------------------------------------ launch a search
const CONSTRAINTS = [
  ["latency_ms", "Latency", "ms", 1], ["sram_bytes", "SRAM", "kB", 1000], ["flash_bytes", "Flash", "kB", 1000],
  ["macs", "MACs", "M", 1e6], ["params", "Params", "M", 1e6],
];
const METRICS = ["accuracy", "latency_ms", "sram_bytes", "flash_bytes", "macs", "params"];

async function launchView(root) {
  const [spaces, devices, runs] = await Promise.all([api("/spaces"), api("/devices"), api("/runs")]);
  const field = (loc, label, input, unit) => {
    const id = input.id;
    const err = h("span", { class: "field-error", id: `${id}-error`, "data-error-for": loc });
    input.dataset.loc = loc; input.setAttribute("aria-describedby", `${id}-error`);
    return h("div", { class: "field" }, h("label", { for: id }, label), input, unit ? h("span", { class: "unit" }, unit) : null, err);
  };
  const name = h("input", { id: "f-name", required: true, value: "search", pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*" });
  const source = h("select", { id: "f-source" }, h("option", { value: "space" }, "a space (no trained run)"),
    runs.length ? h("option", { value: "run" }, "a trained run") : null);
  const space = h("select", { id: "f-space" }, spaces.map((s) => h("option", { value: s.name }, s.name)));
  const run = h("select", { id: "f-run" }, runs.map((r) => h("option", { value: r.id }, `${r.id} (${r.space || "?"})`)));
  const spaceField = field("body.space", "Space", space), runField = field("body.run", "Run", run);
  runField.hidden = true;
  source.addEventListener("change", () => { runField.hidden = source.value !== "run"; spaceField.hidden = source.value === "run"; });
  const devList = h("div", { id: "f-devices" });
  let nDev = 0;
  const addDevice = (dname) => {
    const i = nDev++;
    const sel = h("select", { id: `f-dev-${i}` }, devices.map((d) => h("option", { value: d.name, selected: d.name === dname }, `${d.name} (${d.kind})`)));
    const box = h("fieldset", { class: "device", dataset: { index: i } }, h("legend", {}, `Device ${i + 1}`), field(`body.devices.${i}.name`, "Device", sel),
      CONSTRAINTS.map(([key, label, unit, scale]) => field(`body.devices.${i}.constraints.${key}`, `${label} ≤`,
        h("input", { id: `f-dev-${i}-${key}`, type: "number", step: "any", dataset: { key, scale } }), unit)),
      h("button", { type: "button", onclick: () => { box.remove(); }, "aria-label": `Remove device ${i + 1}` }, "Remove"));
    devList.append(box);
  };
  addDevice(devices[0] && devices[0].name);
  const objList = h("div", { id: "f-objectives" });
  const addObjective = (metric, dir) => {
    const k = objList.children.length;
    const m = h("select", { id: `f-obj-${k}`, class: "obj-metric" }, METRICS.map((x) => h("option", { value: x, selected: x === metric }, x)));
    const d = h("select", { id: `f-obj-${k}-dir`, class: "obj-dir", "aria-label": `direction of objective ${k + 1}` },
      ["maximize", "minimize"].map((x) => h("option", { value: x, selected: x === dir }, x)));
    objList.append(h("div", { class: "objective" }, field("body.objectives", `Objective ${k + 1}`, m), d));
  };
  addObjective("params", "maximize"); addObjective("latency_ms", "minimize");
  const strategy = h("input", { id: "f-strategy", placeholder: "default (evolution or NSGA-II)", list: "strategies" });
  const budget = h("input", { id: "f-budget", type: "number", min: 1, value: 400, required: true });
  const seed = h("input", { id: "f-seed", type: "number", value: 0 });
  const formError = h("div", { class: "error", role: "alert", id: "form-error", tabindex: "-1" });
  const form = h("form", { id: "launch", novalidate: true, onsubmit: submit },
    h("h1", {}, "Launch a search"),
    field("body.name", "Name", name),
    h("div", { class: "field" }, h("label", { for: "f-source" }, "Search over"), source), spaceField, runField,
    h("h2", {}, "Devices and their budgets"), devList,
    h("button", { type: "button", onclick: () => addDevice(devices[0] && devices[0].name) }, "Add a device"),
    h("h2", {}, "Objectives"), h("p", { class: "muted" }, "The first objective picks the chosen subnet."), objList,
    h("button", { type: "button", onclick: () => addObjective("macs", "minimize") }, "Add an objective"),
    h("h2", {}, "Search"), field("body.strategy", "Strategy", strategy), field("body.budget", "Budget (trials per device)", budget),
    field("body.seed", "Seed", seed), formError, h("button", { type: "submit", class: "primary" }, "Launch"));
  root.append(form);

  function spec() {
    const out = { name: name.value.trim(), budget: budget.value === "" ? null : Number(budget.value), seed: Number(seed.value || 0) };
    if (source.value === "run") out.run = run.value; else out.space = space.value;
    out.devices = [...devList.querySelectorAll("fieldset.device")].map((fs) => {
      const c = {};
      for (const inp of fs.querySelectorAll("input[data-key]")) if (inp.value !== "") c[inp.dataset.key] = Number(inp.value) * Number(inp.dataset.scale);
      return { name: fs.querySelector("select").value, constraints: c };
    });
    out.objectives = {};
    for (const row of objList.children) out.objectives[row.querySelector(".obj-metric").value] = row.querySelector(".obj-dir").value;
    if (strategy.value.trim()) out.strategy = strategy.value.trim();
    return out;
  }

  function clearErrors() {
    for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    formError.textContent = "";
  }

  // the API's 422 `loc` names the field: the form's devices are renumbered to match what was sent
  function showErrors(detail) {
    const boxes = [...devList.querySelectorAll("fieldset.device")];
    let first = null;
    for (const d of detail) {
      const loc = (d.loc || []).map(String);
      if (loc[1] === "devices" && loc.length > 2) loc[2] = boxes[Number(loc[2])] ? boxes[Number(loc[2])].dataset.index : loc[2];
      let target = null;
      for (let k = loc.length; k > 1 && !target; k--) target = form.querySelector(`[data-loc="${CSS.escape(loc.slice(0, k).join("."))}"]`);
      const text = d.msg + (d.ctx && d.ctx.allowed ? ` (allowed: ${d.ctx.allowed.join(", ")})` : "");
      if (target) {
        target.setAttribute("aria-invalid", "true");
        const err = document.getElementById(`${target.id}-error`);
        if (err) err.textContent = text;
        first = first || target;
      } else formError.textContent += `${(d.loc || []).slice(1).join(".") || "spec"}: ${text} `;
    }
    (first || formError).focus();
  }

  async function submit(e) {
    e.preventDefault();
    clearErrors();
    if (!name.value.trim()) return showErrors([{ loc: ["body", "name"], msg: "give the experiment a name" }]);
    try {
      const r = await api("/experiments", { method: "POST", body: spec() });
      navigate(`/ui/experiments/${r.id}`);
    } catch (err) {
      if (err instanceof Unauthorized) return login();
      if (err instanceof ApiError && Array.isArray(err.detail)) showErrors(err.detail);
      else formError.textContent = err.message;
    }
  }
}

// ------------------------------------------------------------------ runs
async function runsView(root) {
  const runs = await api("/runs");
  root.append(h("h1", {}, "Runs"), runs.length ? table(["Run", "Space", "Finished", "Weights", "Predictors"],
    runs.map((r) => [link(`/ui/runs/${encodeURIComponent(r.id)}`, r.id), r.space || "–", r.finished ? "yes" : "no", r.weights ? "yes" : "no",
      Object.keys(r.predictors || {}).join(", ") || "–"])) : h("p", {}, "No trained or imported runs on this server."));
}

function fidelityRows(fid) {
  const rows = [];
  const walk = (where, v) => {
    if (v && typeof v === "object" && !Array.isArray(v) && ("spearman" in v || "kendall" in v)) {
      rows.push([where, v.n ?? "–", formatNumber(v.spearman), formatNumber(v.kendall), formatNumber(v.rmse), formatNumber(v.mape), formatNumber(v.within_10pct)]);
    } else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(where ? `${where} · ${k}` : k, x);
  };
  walk("", fid || {});
  return rows;
}
const FID_HEAD = ["where", "n", "Spearman", "Kendall", "RMSE", "MAPE", "within 10%"];

async function runView(root, id) {
  const [run, subnets] = await Promise.all([api(`/runs/${encodeURIComponent(id)}`), api(`/runs/${encodeURIComponent(id)}/subnets`)]);
  root.append(h("p", {}, link("/ui/runs", "← Runs")), h("h1", {}, `Run ${run.id}`),
    h("p", { class: "muted" }, `space ${run.space || "?"} · checkpoint ${run.checkpoint_hash ? run.checkpoint_hash.slice(0, 16) : "–"} · ${run.finished ? "finished" : "not finished"}`),
    h("h2", {}, "Accuracy predictor fidelity"));
  const rows = fidelityRows(run.fidelity);
  root.append(rows.length ? table(FID_HEAD, rows) : h("p", {}, "No fidelity figures in this run folder (fit the predictor with `nas accuracy fit`)."));
  root.append(h("h2", {}, `Measured subnets (${subnets.n})`));
  if (!subnets.n) { root.append(h("p", {}, "No measured subnets for this checkpoint.")); return; }
  const c = subnets.columns, x = Float64Array.from(c.macs, (v) => v ?? NaN), y = Float64Array.from(c.accuracy, (v) => v ?? NaN);
  const idx = (s) => Int32Array.from(c.split.map((v, i) => (v === s ? i : -1)).filter((i) => i >= 0));
  const box = h("div", { class: "chart-box" });
  root.append(box);
  new Scatter(box).setData({ x, y, xLabel: "MACs", yLabel: "top-1 accuracy (measured)",
    groups: [{ label: "fit set", color: COLORS.fit, shape: "circle", size: 3, index: idx("fit") },
      { label: "held out", color: COLORS.heldout, shape: "circle", size: 3, index: idx("heldout") }],
    describe: (i) => [h("div", {}, `${c.split[i]} · r ${c.r[i]} px`), h("div", {}, `top-1 ${pct(c.accuracy[i])}`), h("div", {}, `MACs ${formatNumber(c.macs[i])} · params ${formatNumber(c.params[i])}`)] });
}

// ------------------------------------------------------------------ devices
async function devicesView(root) {
  const devices = await api("/devices");
  root.append(h("h1", {}, "Devices"), table(["Device", "Kind", "State", "Origin", "Latency model", "Description"],
    devices.map((d) => [link(`/ui/devices/${encodeURIComponent(d.name)}`, d.name), d.kind, d.state, d.origin, d.latency_model.join(", ") || "spec sheet", d.description])));
}

async function deviceView(root, name) {
  const [d, fid] = await Promise.all([api(`/devices/${encodeURIComponent(name)}`), api(`/devices/${encodeURIComponent(name)}/fidelity`)]);
  const figs = (section) => Object.entries(section).map(([k, f]) => [k, formatNumber(f.value), f.unit, f.source, f.note || ""]);
  root.append(h("p", {}, link("/ui/devices", "← Devices")), h("h1", {}, d.name), h("p", {}, `${d.kind} · ${d.state} · ${d.origin} · ${d.description}`),
    h("h2", {}, "Figures"), table(["figure", "value", "unit", "source", "note"], [...figs(d.specs), ...figs(d.mcu)]),
    h("p", {}, `Latency model: ${d.latency_model.join(", ") || "roofline from the spec sheet"}`),
    h("h2", {}, "Latency predictors against measured subnets"));
  const spaces = Object.entries(fid.spaces);
  if (!spaces.length) { root.append(h("p", {}, "Not measured: this profile holds no held-out measurements (`nas profile` measures one).")); return; }
  for (const [space, entries] of spaces) {
    root.append(table(["predictor", "n", "Spearman", "Kendall", "RMSE (ms)", "MAPE", "within 10%", "source"],
      entries.map((e) => [e.predictor, e.n, formatNumber(e.spearman), formatNumber(e.kendall), formatNumber(e.rmse), pct(e.mape), pct(e.within_10pct), e.source]), `space ${space}`));
    root.append(h("p", { class: "muted" }, "Figures on subnets measured here and held out from fitting. The profile keeps these figures, not the subnets' points, so no predicted-against-measured scatter can be drawn for it."));
  }
}

// ------------------------------------------------------------------ exports
async function exportsView(root) {
  root.append(h("h1", {}, "Exports"));
  const body = h("div");
  root.append(body);
  return poll(async () => {
    const list = await api("/exports");
    body.replaceChildren(list.length ? table(["Export", "Device", "Run", "Experiment", "Status", "Created", ""],
      list.slice().reverse().map((x) => [link(`/ui/exports/${x.id}`, x.id), x.device, x.run, x.experiment ? link(`/ui/experiments/${x.experiment}`, x.experiment) : "–",
        badge(x.status), when(x.created_at), x.download ? downloadButton(x) : ""])) : h("p", {}, "No exports yet: open an experiment and export a subnet."));
    return list.some((x) => ACTIVE.has(x.status));
  }, 2000);
}

function downloadButton(x) {
  return h("button", { onclick: async () => {
    try {
      const r = await api(x.download, { raw: true });
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: `${x.id}-${x.device}.zip` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { if (e instanceof Unauthorized) login(); else showBanner(e.message); }
  } }, "Download zip");
}

async function exportView(root, id) {
  root.append(h("p", {}, link("/ui/exports", "← Exports")));
  const body = h("div");
  root.append(body);
  let cardShown = false;
  return poll(async () => {
    const x = await api(`/exports/${id}`);
    if (cardShown) return false;
    const headEls = [h("div", { class: "title" }, h("h1", {}, `Export ${x.id}`), badge(x.status)),
      h("p", { class: "muted" }, `${x.device} · run ${x.run}`, x.experiment ? [" · experiment ", link(`/ui/experiments/${x.experiment}`, x.experiment)] : ""),
      h("div", { class: "progress-row" }, progressBar(x), x.message ? ` ${x.message}` : ""), jobError(x)].filter(Boolean);
    if (x.status !== "succeeded") { body.replaceChildren(...headEls); return ACTIVE.has(x.status); }
    const { card } = await api(`/exports/${id}/card`);
    cardShown = true;
    body.replaceChildren(...headEls, h("p", {}, downloadButton(x), ` files: ${x.files.join(", ")}`), cardView(card));
    return false;
  }, 1500);
}

function cardView(card) {
  const pred = card.predicted || {}, meas = card.measured || {}, acc = meas.accuracy || {};
  const accRows = ["val", "test"].map((s) => [s, s === "val" ? pct(pred.accuracy) : "–", pct((acc[s] || {}).torch_fp32), pct((acc[s] || {}).onnx_fp32), pct((acc[s] || {}).onnx_int8), (acc[s] || {}).images ?? "–"]);
  const latRows = [["predicted", pred.latency_ms != null ? `${formatNumber(pred.latency_ms)} ms` : "–", `${pred.latency_source || "?"} model of the profile`]];
  for (const [label, e] of Object.entries(meas.latency || {})) latRows.push([`measured, ${label}`, `${formatNumber(e.median_ms)} ms`, `median of ${e.repeats} runs, ${e.threads} thread(s), the server's machine`]);
  const mem = card.memory;
  return h("section", { id: "card", "aria-label": "Model card" }, h("h2", {}, `Model card: ${card.name}`),
    h("p", {}, `${card.space ? card.space.name : ""} subnet for ${card.device.name} (${card.device.kind}) · MACs ${formatNumber(card.macs)} · params ${formatNumber(card.params)}`),
    h("h3", {}, "Accuracy (top-1)"), table(["split", "predicted", "PyTorch fp32", "onnxruntime fp32", "onnxruntime int8", "images"], accRows),
    h("h3", {}, "Latency (batch 1)"), table(["", "latency", "how"], latRows),
    meas.latency ? null : h("p", { class: "muted" }, `Not measured: ${meas.latency_note || "the server's machine is not the device"}.`),
    mem ? [h("h3", {}, "Memory"), table(["", "need", "capacity", "fits"], [
      ["SRAM / activations", formatNumber(mem.sram_bytes) + " B", mem.sram_capacity_bytes ? formatNumber(mem.sram_capacity_bytes) + " B" : "–", String(mem.sram_fits ?? "–")],
      ["Flash / weights", formatNumber(mem.flash_bytes) + " B", mem.flash_capacity_bytes ? formatNumber(mem.flash_capacity_bytes) + " B" : "–", String(mem.flash_fits ?? "–")]]),
    h("p", { class: "verdict" }, h("strong", {}, `Verdict: ${mem.verdict}`))] : null,
    h("details", {}, h("summary", {}, "Arch (OFA keys)"), h("pre", { class: "arch-json" }, card.arch_json || "")));
}

// ------------------------------------------------------------------ start
updateTokenButton();
fetch("/healthz").then((r) => r.json()).then((s) => { document.getElementById("server").textContent = `ofa-nas ${s.version} · ${s.database} · ${s.running_jobs}/${s.workers} jobs running`; })
  .catch(() => showBanner("The server is not answering /healthz."));
render();
