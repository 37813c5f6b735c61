// One experiment: per device, the Pareto chart, the selected trial with "export this subnet", the trials table.
import { Scatter, formatNumber } from "/ui/static/chart.js";
import { ACTIVE, ApiError, RESUMABLE, ServerDown, Unauthorized, api, badge, duration, h, hooks, jobError, link,
  poll, progressBar, table, when } from "/ui/static/core.js";

// ------------------------------------------------------------------ one experiment
export const COLORS = { infeasible: "#b8b8b8", feasible: "#3a6fb0", front: "#e07b24", chosen: "#c0392b", fit: "#3a6fb0", heldout: "#e07b24" };
export const UNITS = { latency_ms: "ms", sram_bytes: "B", flash_bytes: "B", macs: "MACs", params: "params", accuracy: "top-1" };

export async function experimentView(root, id) {
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
    if (ACTIVE.has(x.status)) actions.append(h("button", { onclick: () => api(`/experiments/${id}/cancel`, { method: "POST" }).then(live, hooks.failed) }, "Cancel"));
    if (RESUMABLE.has(x.status)) actions.append(h("button", { onclick: () => api(`/experiments/${id}/resume`, { method: "POST" }).then(live, hooks.failed) }, "Resume"));
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
  if (e instanceof Unauthorized) return hooks.login();
  el.textContent = e instanceof ServerDown ? `The server is not answering (${e.message}).` : e.message;
  el.className = "error";
}

function exportForm(exp, device, arch, n) {
  const FORMATS = ["safetensors", "torchscript", "onnx", "int8", "c-header", "c"];
  const msg = h("p", { class: "error", role: "alert" });
  const boxes = FORMATS.map((f) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "format", value: f }), ` ${f}`));
  const finetune = h("input", { id: "finetune", type: "text", value: "0", inputmode: "decimal",
    "aria-describedby": "finetune-help", size: 6 });
  const form = h("form", { class: "export-form", onsubmit: async (e) => {
    e.preventDefault();
    const formats = [...form.querySelectorAll("input[name=format]:checked")].map((x) => x.value);
    const ft = finetune.value.trim() || "0";
    const body = { experiment: exp.id, device, arch, finetune: /^\d+$/.test(ft) ? Number(ft) : ft };
    if (formats.length) body.formats = formats;
    msg.textContent = "";
    try {
      const r = await api("/exports", { method: "POST", body });
      hooks.navigate(`/ui/exports/${r.id}`);
    } catch (err) {
      if (err instanceof Unauthorized) return hooks.login();
      msg.textContent = err instanceof ApiError && Array.isArray(err.detail)
        ? err.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") : err.message;
    }
  } },
  h("h3", {}, "Export this subnet"),
  h("fieldset", {}, h("legend", {}, "Formats (none ticked: the device kind's defaults)"), boxes),
  h("span", { class: "field" }, h("label", { for: "finetune" }, "Fine-tune"), finetune,
    h("small", { id: "finetune-help" }, " steps, or a share of the supernet's training such as 10%")),
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

