// What every view uses: the API client (token, 401, server down), the element builder, small formatters, polling.
export const TOKEN_KEY = "nas-token";
const banner = document.getElementById("banner");
// set by app.js: the sign-in form, moving to another view, a view's failure shown in place
export const hooks = { login() {}, navigate() {}, failed() {} };

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

export class Unauthorized extends Error {}
export class ServerDown extends Error {}
export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : (detail || []).map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; "));
    this.status = status; this.detail = detail;
  }
}

export async function api(path, options = {}) {
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

export function showBanner(text, kind = "error") {
  if (!text) { banner.hidden = true; return; }
  banner.className = kind; banner.textContent = text; banner.hidden = false;
}

export const link = (href, text) => h("a", { href }, text);
export const when = (t) => (t ? new Date(t).toLocaleString() : "–");
export function duration(a, b) {
  if (!a) return "–";
  const s = Math.max(0, ((b ? new Date(b) : new Date()) - new Date(a)) / 1000);
  return s < 60 ? `${s.toFixed(0)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s` : `${(s / 3600).toFixed(1)} h`;
}
export const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(2)}%`);
export const badge = (status) => h("span", { class: `badge ${status}` }, status);
export const ACTIVE = new Set(["queued", "running"]);
export const RESUMABLE = new Set(["failed", "cancelled", "interrupted"]);

export function progressBar(job) {
  const value = Math.round((job.progress || 0) * 100);
  return h("progress", { max: 100, value, "aria-label": `progress ${value}%`, title: `${value}%` });
}

export function jobError(job) {
  if (job.status !== "failed" || !job.error) return null;
  return h("div", { class: "error-box", role: "alert" }, h("strong", {}, "The job failed: "), h("pre", {}, job.error));
}

export function table(headers, rows, caption) {
  return h("table", {}, caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

// poll(fn, ms): call fn now and every ms until the view changes; fn returning false stops it
export function poll(fn, ms) {
  let stop = false, timer = null;
  const tick = async () => {
    if (stop) return;
    let again = true;
    try { again = (await fn()) !== false; showBanner(null); } catch (e) {
      if (e instanceof ServerDown) showBanner(`The server is not answering (${e.message}); retrying…`);
      else if (e instanceof Unauthorized) { hooks.login(); return; }
      else showBanner(e.message);
    }
    if (!stop && again) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stop = true; clearTimeout(timer); };
}
