// A scatter chart on one canvas, fast enough for 100k points: points are drawn in batches per group (one path
// each), hover finds the nearest point through a pixel grid, and the keyboard steps through the highlighted
// points (the Pareto front) so the chart works without a mouse.

const PAD = { left: 64, right: 16, top: 12, bottom: 44 };

function niceTicks(lo, hi, count = 6) {
  if (!(hi > lo)) { hi = lo + 1; }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

export function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(3);
  return v.toPrecision(3);
}

export class Scatter {
  // container: an element the chart fills; options: {label, onHover(i|null), onSelect(i)}
  constructor(container, options = {}) {
    this.options = options;
    this.wrap = document.createElement("div");
    this.wrap.className = "chart";
    this.canvas = document.createElement("canvas");
    this.canvas.tabIndex = 0;
    this.canvas.setAttribute("role", "img");
    this.tip = document.createElement("div");
    this.tip.className = "tooltip";
    this.tip.hidden = true;
    this.tip.setAttribute("role", "status");
    this.legend = document.createElement("ul");
    this.legend.className = "legend";
    this.wrap.append(this.canvas, this.tip, this.legend);
    container.append(this.wrap);
    this.data = null;
    this.focus = -1;
    this.canvas.addEventListener("mousemove", (e) => this._move(e));
    this.canvas.addEventListener("mouseleave", () => this._hover(-1));
    this.canvas.addEventListener("click", (e) => { const i = this._nearest(e); if (i >= 0) this._select(i); });
    this.canvas.addEventListener("keydown", (e) => this._key(e));
    this._resize = () => this.data && this.draw();
    window.addEventListener("resize", this._resize);
  }

  destroy() { window.removeEventListener("resize", this._resize); this.wrap.remove(); }

  // data: {x, y: Float64Array; diagonal?: bool (draw y = x); groups: [{label, color, shape: square|circle|star, size, index: Int32Array,
  //        line?: bool}]; xLabel, yLabel; lines: [{axis: "x"|"y", value, label}]; selected?: i; describe(i)}
  setData(data) {
    this.data = data;
    this.focus = -1;
    this.draw();
  }

  _scales(w, h) {
    const { x, y, lines = [] } = this.data;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < x.length; i++) {
      const a = x[i], b = y[i];
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
      if (a < x0) x0 = a; if (a > x1) x1 = a; if (b < y0) y0 = b; if (b > y1) y1 = b;
    }
    for (const l of lines) {
      if (l.axis === "x") { x0 = Math.min(x0, l.value); x1 = Math.max(x1, l.value); }
      else { y0 = Math.min(y0, l.value); y1 = Math.max(y1, l.value); }
    }
    if (!Number.isFinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    const px = (x1 - x0) * 0.04 || Math.abs(x0) * 0.1 || 1, py = (y1 - y0) * 0.05 || Math.abs(y0) * 0.1 || 1;
    x0 -= px; x1 += px; y0 -= py; y1 += py;
    const iw = w - PAD.left - PAD.right, ih = h - PAD.top - PAD.bottom;
    return { x0, x1, y0, y1, sx: (v) => PAD.left + ((v - x0) / (x1 - x0)) * iw,
      sy: (v) => PAD.top + ih - ((v - y0) / (y1 - y0)) * ih };
  }

  draw() {
    const t0 = performance.now();
    const d = this.data;
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(320, this.wrap.clientWidth || 640), h = Math.round(Math.min(460, Math.max(280, w * 0.5)));
    this.canvas.width = w * dpr; this.canvas.height = h * dpr;
    this.canvas.style.width = w + "px"; this.canvas.style.height = h + "px";
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const s = this._scales(w, h);
    this.s = s; this.w = w; this.h = h;
    this._axes(ctx, s, w, h);
    const n = d.x.length;
    const px = new Float32Array(n).fill(NaN), py = new Float32Array(n).fill(NaN);
    let drawn = 0;
    for (const g of d.groups) {
      ctx.fillStyle = g.color; ctx.strokeStyle = g.color;
      if (g.line && g.index.length > 1) {
        const order = Array.from(g.index).sort((a, b) => d.x[a] - d.x[b]);
        ctx.beginPath(); ctx.lineWidth = 1.5;
        order.forEach((i, k) => (k ? ctx.lineTo(s.sx(d.x[i]), s.sy(d.y[i])) : ctx.moveTo(s.sx(d.x[i]), s.sy(d.y[i]))));
        ctx.stroke();
      }
      ctx.beginPath();
      const r = g.size || 2;
      for (const i of g.index) {
        if (!Number.isFinite(d.x[i]) || !Number.isFinite(d.y[i])) continue;
        const a = s.sx(d.x[i]), b = s.sy(d.y[i]);
        if (Number.isNaN(px[i])) drawn++;
        px[i] = a; py[i] = b;
        if (g.shape === "circle") { ctx.moveTo(a + r, b); ctx.arc(a, b, r, 0, 2 * Math.PI); }
        else if (g.shape === "star") this._star(ctx, a, b, r);
        else ctx.rect(a - r, b - r, 2 * r, 2 * r);
      }
      ctx.fill();
      if (g.shape === "star") { ctx.lineWidth = 1; ctx.strokeStyle = "#222"; ctx.stroke(); }
    }
    this.px = px; this.py = py;
    this._grid(w, h);
    if (d.selected !== undefined && d.selected >= 0) this._ring(ctx, d.selected, "#000");
    this.canvas.dataset.points = String(drawn); // distinct points: the chosen one is also in its own group
    this.canvas.setAttribute("aria-label", `${d.yLabel} against ${d.xLabel}: ${drawn} points. ` +
      "Use the left and right arrow keys to step through the highlighted points, Enter to choose one.");
    this.legend.replaceChildren(...d.groups.map((g) => {
      const li = document.createElement("li");
      const sw = document.createElement("span");
      sw.className = "swatch " + (g.shape || "square"); sw.style.background = g.color;
      li.append(sw, ` ${g.label} (${g.index.length})`);
      return li;
    }));
    for (const l of d.lines || []) {
      const li = document.createElement("li");
      const sw = document.createElement("span"); sw.className = "swatch dash";
      li.append(sw, ` ${l.label}`); this.legend.append(li);
    }
    this.renderMs = performance.now() - t0;
    this.canvas.dataset.renderMs = this.renderMs.toFixed(1);
  }

  _axes(ctx, s, w, h) {
    const d = this.data;
    ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = "#333"; ctx.strokeStyle = "#e3e3e3"; ctx.lineWidth = 1;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const v of niceTicks(s.x0, s.x1)) {
      const a = s.sx(v); if (a < PAD.left || a > w - PAD.right) continue;
      ctx.beginPath(); ctx.moveTo(a, PAD.top); ctx.lineTo(a, h - PAD.bottom); ctx.stroke();
      ctx.fillText(formatNumber(v), a, h - PAD.bottom + 4);
    }
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const v of niceTicks(s.y0, s.y1)) {
      const b = s.sy(v); if (b < PAD.top || b > h - PAD.bottom) continue;
      ctx.beginPath(); ctx.moveTo(PAD.left, b); ctx.lineTo(w - PAD.right, b); ctx.stroke();
      ctx.fillText(formatNumber(v), PAD.left - 6, b);
    }
    ctx.strokeStyle = "#888"; ctx.strokeRect(PAD.left, PAD.top, w - PAD.left - PAD.right, h - PAD.top - PAD.bottom);
    ctx.textAlign = "center"; ctx.textBaseline = "bottom"; ctx.fillText(d.xLabel, (PAD.left + w - PAD.right) / 2, h - 4);
    ctx.save(); ctx.translate(14, (PAD.top + h - PAD.bottom) / 2); ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle"; ctx.fillText(d.yLabel, 0, 0); ctx.restore();
    ctx.setLineDash([6, 4]); ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 1.5;
    ctx.textAlign = "left"; ctx.textBaseline = "top"; ctx.fillStyle = "#c0392b";
    for (const l of d.lines || []) {
      ctx.beginPath();
      if (l.axis === "x") { const a = s.sx(l.value); ctx.moveTo(a, PAD.top); ctx.lineTo(a, h - PAD.bottom); 
        const tw = ctx.measureText(l.label).width;
        ctx.fillText(l.label, a + 4 + tw > w - PAD.right ? a - 4 - tw : a + 4, PAD.top + 2); }
      else { const b = s.sy(l.value); ctx.moveTo(PAD.left, b); ctx.lineTo(w - PAD.right, b); ctx.fillText(l.label, PAD.left + 4, b + 2); }
      ctx.stroke();
    }
    if (d.diagonal) { // y = x: where a predictor's points would lie if it were exact
      const lo = Math.max(s.x0, s.y0), hi = Math.min(s.x1, s.y1);
      if (hi > lo) {
        ctx.strokeStyle = "#777"; ctx.lineWidth = 1; ctx.beginPath();
        ctx.moveTo(s.sx(lo), s.sy(lo)); ctx.lineTo(s.sx(hi), s.sy(hi)); ctx.stroke();
      }
    }
    ctx.setLineDash([]);
  }

  _star(ctx, a, b, r) {
    for (let k = 0; k < 10; k++) {
      const rad = k % 2 ? r * 0.45 : r, ang = -Math.PI / 2 + (k * Math.PI) / 5;
      const fn = k ? "lineTo" : "moveTo";
      ctx[fn](a + rad * Math.cos(ang), b + rad * Math.sin(ang));
    }
    ctx.closePath();
  }

  _ring(ctx, i, color) {
    if (!Number.isFinite(this.px[i])) return;
    ctx.beginPath(); ctx.strokeStyle = color; ctx.lineWidth = 2;
    ctx.arc(this.px[i], this.py[i], 8, 0, 2 * Math.PI); ctx.stroke();
  }

  _grid(w, h) {
    const cell = 8, cols = Math.ceil(w / cell) + 1, rows = Math.ceil(h / cell) + 1;
    const head = new Int32Array(cols * rows).fill(-1), next = new Int32Array(this.px.length).fill(-1);
    for (let i = 0; i < this.px.length; i++) {
      if (Number.isNaN(this.px[i])) continue;
      const c = Math.floor(this.px[i] / cell) + Math.floor(this.py[i] / cell) * cols;
      next[i] = head[c]; head[c] = i;
    }
    this.gridIndex = { cell, cols, rows, head, next };
  }

  _nearest(e) {
    if (!this.gridIndex) return -1;
    const rect = this.canvas.getBoundingClientRect();
    const mx = e.clientX - rect.left, my = e.clientY - rect.top;
    const { cell, cols, rows, head, next } = this.gridIndex;
    const cx = Math.floor(mx / cell), cy = Math.floor(my / cell);
    let best = -1, bestD = 100; // within 10 px
    const rank = this._rank();
    for (let y = cy - 2; y <= cy + 2; y++) {
      if (y < 0 || y >= rows) continue;
      for (let x = cx - 2; x <= cx + 2; x++) {
        if (x < 0 || x >= cols) continue;
        for (let i = head[x + y * cols]; i >= 0; i = next[i]) {
          const dd = (this.px[i] - mx) ** 2 + (this.py[i] - my) ** 2 - rank[i]; // the front wins near-ties
          if (dd < bestD) { bestD = dd; best = i; }
        }
      }
    }
    return best;
  }

  _rank() {
    if (this._ranks && this._ranksFor === this.data) return this._ranks;
    const r = new Float32Array(this.data.x.length);
    this.data.groups.forEach((g, k) => { for (const i of g.index) r[i] = k * 4; });
    this._ranks = r; this._ranksFor = this.data;
    return r;
  }

  _move(e) { this._hover(this._nearest(e)); }

  _hover(i) {
    if (this.options.onHover) this.options.onHover(i);
    if (i < 0) { this.tip.hidden = true; return; }
    this.tip.replaceChildren(...(this.data.describe ? this.data.describe(i) : [String(i)]));
    this.tip.hidden = false;
    const left = Math.min(this.px[i] + 12, this.w - 260), top = Math.max(this.py[i] - 10, 0);
    this.tip.style.left = left + "px"; this.tip.style.top = top + "px";
  }

  _select(i) { if (this.options.onSelect) this.options.onSelect(i); }

  _key(e) {
    const keys = this.data && this.data.keyboard;
    if (!keys || !keys.length) return;
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      const step = e.key === "ArrowRight" ? 1 : -1;
      const pos = keys.indexOf(this.focus);
      const k = pos < 0 ? (step > 0 ? 0 : keys.length - 1) : (pos + step + keys.length) % keys.length;
      this.focus = keys[k];
      this._hover(this.focus);
    } else if (e.key === "Enter" && this.focus >= 0) {
      e.preventDefault();
      this._select(this.focus);
    } else if (e.key === "Escape") {
      this.focus = -1; this._hover(-1);
    }
  }
}
