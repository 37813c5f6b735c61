// The ofa-nas dashboard: one page, one view per URL under /ui/, reading only the REST API of the server that
// serves it. No build step: plain ES modules, no library.
import { Scatter, formatNumber } from "/ui/static/chart.js";
import { ACTIVE, ApiError, RESUMABLE, ServerDown, TOKEN_KEY, Unauthorized, api, badge, duration, h, hooks, jobError,
  link, pct, poll, progressBar, showBanner, table, when } from "/ui/static/core.js";
import { COLORS, experimentView } from "/ui/static/experiment.js";

const view = document.getElementById("view");
let cleanup = () => {};

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
      let text = d.msg + (d.ctx && d.ctx.allowed ? ` (allowed: ${d.ctx.allowed.join(", ")})` : "");
      const unit = target && target.parentElement.querySelector(".unit");
      if (target && unit && Number(target.dataset.scale) !== 1) text += ` (the API counts single units; this field is in ${unit.textContent})`;
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
    const withPoints = entries.filter((e) => e.points && e.points.length);
    if (!withPoints.length) {
      root.append(h("p", { class: "muted" }, "This profile keeps the figures, not the held-out subnets' points (it was measured before they were kept): `nas profile` again draws the scatter."));
      continue;
    }
    const x = [], y = [], who = [], groups = [];
    const palette = ["#3a6fb0", "#e07b24", "#2e8b57", "#8e44ad"];
    withPoints.forEach((e, k) => {
      const start = x.length;
      for (const [p, m] of e.points) { x.push(p); y.push(m); who.push(e.predictor); }
      groups.push({ label: e.predictor, color: palette[k % palette.length], shape: "circle", size: 3,
        index: Int32Array.from({ length: e.points.length }, (_, i) => start + i) });
    });
    const box = h("div", { class: "chart-box small" });
    root.append(h("h3", {}, `Predicted against measured latency, ${space}`), box);
    new Scatter(box).setData({ x: Float64Array.from(x), y: Float64Array.from(y), diagonal: true, groups,
      xLabel: "predicted latency (ms)", yLabel: "measured latency (ms)",
      describe: (i) => [h("strong", {}, who[i]), h("div", {}, `predicted ${formatNumber(x[i])} ms · measured ${formatNumber(y[i])} ms`)] });
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
Object.assign(hooks, { login, navigate, failed });
updateTokenButton();
fetch("/healthz").then((r) => r.json()).then((s) => { document.getElementById("server").textContent = `ofa-nas ${s.version} · ${s.database} · ${s.running_jobs}/${s.workers} jobs running`; })
  .catch(() => showBanner("The server is not answering /healthz."));
render();
