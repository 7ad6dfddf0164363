/* memtrail html: the report page's script.
 *
 * Reads the data embedded by `memtrail html` (<script id="memtrail-data">,
 * the contract is HTML_DATA.md) and draws: a header with the totals, the
 * memory timeline with one mark per snapshot, an icicle flame graph (canvas)
 * of the selected snapshot and metric with zoom, search and a diff mode, the
 * table of the top sites, the leak records and the Python cycles. With
 * #selftest in the URL it checks itself and writes the result into
 * the pre element #mt-selftest (for the Chromium test).
 *
 * Sections: 1 errors, 2 formatting and DOM helpers, 3 data loading,
 * 4 state, 5 tree values, 6 flame graph, 7 timeline, 8 header, 9 table,
 * 10 leaks and cycles, 11 page and controls, 12 self-test, 13 start.
 *
 * Numbers: sizes and counts are plain JavaScript numbers (doubles), exact up
 * to 2^53 bytes (8 PiB), far above any real heap, so no BigInt is needed.
 * The ns timestamps (about 1.8e18) are not exact as doubles; only their
 * differences in seconds are shown, where an error of some 100 ns is nil.
 */
(function () {
'use strict';

/* ------------------------------------------------------------ 1. errors */
// Everything that goes wrong is kept for the self-test.
const ERRORS = [];
const TIMING = { t0: performance.now() };
window.addEventListener('error', (e) => {
  ERRORS.push('error: ' + (e.message || String(e.error || e.type)) +
              (e.filename ? ' (' + e.lineno + ':' + e.colno + ')' : ''));
});
window.addEventListener('unhandledrejection', (e) => {
  ERRORS.push('unhandled rejection: ' + String(e.reason));
});
const consoleError = console.error.bind(console);
console.error = function (...args) {
  ERRORS.push('console.error: ' + args.map(String).join(' '));
  consoleError(...args);
};

/* ----------------------------------------- 2. formatting and DOM helpers */
const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

// 1234567 -> "1,234,567" (no locale: the same on every machine).
function fmtInt(n) {
  if (n == null || !isFinite(n)) return '\u2014';
  const s = String(Math.abs(Math.round(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return n < 0 ? '-' + s : s;
}
// 1723133 -> "1.6 MiB"
function fmtBytes(n) {
  if (n == null || !isFinite(n)) return '\u2014';
  let v = Math.abs(n), u = 0;
  while (v >= 1024 && u < UNITS.length - 1) { v /= 1024; u++; }
  const t = u === 0 ? String(v) : v >= 100 ? v.toFixed(0) : v.toFixed(1);
  return (n < 0 ? '-' : '') + t + ' ' + UNITS[u];
}
// 1723133 -> "1,723,133 B (1.6 MiB)"
function fmtFull(n) {
  if (n == null || !isFinite(n)) return '\u2014';
  return fmtInt(n) + ' B' + (Math.abs(n) >= 1024 ? ' (' + fmtBytes(n) + ')' : '');
}
function sign(n) { return n > 0 ? '+' : ''; }
function fmtPct(x) {
  if (!isFinite(x)) return '\u2014';
  const p = x * 100, a = Math.abs(p);
  return (a === 0 ? '0' : a < 0.01 ? (p < 0 ? '-' : '') + '<0.01' : a < 10 ? p.toFixed(2) : p.toFixed(1)) + ' %';
}
function fmtSec(s) {
  if (s == null || !isFinite(s)) return '\u2014';
  if (s > 0 && s < 0.1) return +(s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms';
  return (s < 10 ? s.toFixed(2) : s < 1000 ? s.toFixed(1) : fmtInt(s)) + ' s';
}
function fmtNs(ns) { return ns >= 1e9 ? fmtSec(ns / 1e9) : (ns / 1e6).toFixed(1) + ' ms'; }
function plural(n, one, many) { return fmtInt(n) + ' ' + (n === 1 ? one : (many || one + 's')); }
function basename(p) { const i = p.lastIndexOf('/'); return i < 0 ? p : p.slice(i + 1); }
function isoToText(iso) { return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : ''; }

// el('div', {class: 'x', onclick: f}, child, 'text', [more children])
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const k of kids.flat(3)) if (k != null && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}
function setAttrs(e, attrs) {
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k === 'class') e.setAttribute('class', v);
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
}
const SVGNS = 'http://www.w3.org/2000/svg';
function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  setAttrs(e, attrs);
  for (const k of kids) if (k != null) e.append(k instanceof Node ? k : String(k));
  return e;
}
function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); return e; }
// Replace e's children (null, false and nested arrays allowed, as in el).
function fill(e, ...kids) {
  clear(e);
  for (const k of kids.flat(3)) if (k != null && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}

// A frame's text as the report prints it: function (file:line) [module].
function frameWhere(f) {
  if (!f) return '';
  const loc = f.file ? f.file + (f.line ? ':' + f.line : '') : '';
  const mod = f.module ? basename(f.module) : '';
  return loc ? loc + (mod && f.kind !== 'python' ? ' [' + mod + ']' : '') : mod ? '[' + mod + ']' : '';
}
function frameName(f) {
  if (!f) return '[unknown]';
  if (f.function) return f.function;
  return f.file ? basename(f.file) + (f.line ? ':' + f.line : '') : f.module ? '[' + basename(f.module) + ']' : '[unknown]';
}
// The innermost Python frame of a stack (where a Python object was made), else the innermost.
function allocFrame(frames) {
  if (!frames || !frames.length) return null;
  return frames.find((f) => f.kind === 'python') || frames[0];
}

/* ------------------------------------------------------- 3. data loading */
const METRICS = [
  ['live', 'Live'], ['peak', 'At peak'], ['allocated', 'Allocated'],
  ['definite', 'Definitely lost'], ['possible', 'Possibly lost'],
];
const METRIC_LABEL = Object.fromEntries(METRICS);

function loadData() {
  const node = document.getElementById('memtrail-data');
  if (!node) throw new Error('this page holds no data (no #memtrail-data element)');
  const d = JSON.parse(node.textContent);
  if (!d || !d.tree || !Array.isArray(d.tree.parent) || !Array.isArray(d.snapshots) || !d.snapshots.length)
    throw new Error('the data has no call tree or no snapshot');
  return d;
}

// The tree as typed arrays, with each node's children found in O(1):
// children of i are kids[kidStart[i] .. kidStart[i+1]).
function buildModel(d) {
  const parent = d.tree.parent, frameOf = d.tree.frame || [], n = parent.length;
  if (parent[0] !== -1) throw new Error('tree.parent[0] must be -1 (the root)');
  const kidStart = new Int32Array(n + 1), kids = new Int32Array(Math.max(0, n - 1));
  for (let i = 1; i < n; i++) {
    const p = parent[i];
    if (!(p >= 0 && p < i)) throw new Error('tree.parent[' + i + '] = ' + p + ': a parent comes before its child');
    kidStart[p + 1]++;
  }
  for (let i = 0; i < n; i++) kidStart[i + 1] += kidStart[i];
  const fill = kidStart.slice(0, n);
  for (let i = 1; i < n; i++) kids[fill[parent[i]]++] = i;
  const merged = new Map(Array.isArray(d.tree.merged) ? d.tree.merged : []);
  // Only well-formed value arrays are used; a bad one is reported (and fails the self-test).
  for (const s of d.snapshots) {
    s.values = s.values || {};
    for (const m of Object.keys(s.values)) {
      const v = s.values[m];
      if (!v || !Array.isArray(v.bytes) || v.bytes.length !== n) {
        console.error('snapshot ' + s.path + ': values.' + m + ' does not match the tree (' + n + ' nodes)');
        delete s.values[m];
      }
    }
  }
  return { d, n, parent, frameOf, kidStart, kids, merged, frames: d.frames || [] };
}

/* -------------------------------------------------------------- 4. state */
let M = null;             // the model (buildModel)
const S = {
  sel: 0,                 // selected snapshot
  base: -1,               // diff base snapshot, -1 = no diff
  metric: 'live',
  zoom: 0,                // flame graph node spanning the full width
  search: '',
  group: 'function',      // table grouping
  sortKey: 'bytes', sortDir: -1,
};

function metricsFor(i) {
  const v = M.d.snapshots[i].values;
  return METRICS.map((m) => m[0]).filter((m) => v[m]);
}
// The metrics the flame graph offers: in diff mode, those both snapshots have.
function metricsOffered() {
  const m = metricsFor(S.sel);
  return S.base >= 0 ? m.filter((x) => metricsFor(S.base).includes(x)) : m;
}
function snapName(i) {
  const s = M.d.snapshots[i];
  return '#' + s.seq + ' ' + s.trigger + (s.label ? ' \u201c' + s.label + '\u201d' : '');
}
function report(i, group) {
  const r = M.d.snapshots[i].report;
  return r && r[group] ? r[group] : null;
}
function anyReport(i) {
  const r = M.d.snapshots[i].report || {};
  return r.line || r.function || r.file || r.module || null;
}

/* -------------------------------------------------------- 5. tree values */
// The arrays of the selected snapshot and metric (and of the diff base).
function vals(i, metric) { const v = M.d.snapshots[i].values[metric]; return v || null; }

// What the flame graph shows per node. Diff mode sizes a node by the larger
// of its two values, so that both what grew and what shrank stay visible.
function currentValues() {
  const cur = vals(S.sel, S.metric);
  const base = S.base >= 0 ? vals(S.base, S.metric) : null;
  if (!cur) return null;
  if (!base) return { size: cur.bytes, cur, base: null };
  const key = S.sel + '/' + S.base + '/' + S.metric;
  if (currentValues.key !== key) {
    const n = M.n, size = new Float64Array(n), a = cur.bytes, b = base.bytes || [];
    let maxd = 0;
    for (let i = 0; i < n; i++) {
      const x = a[i] || 0, y = b[i] || 0;
      size[i] = x > y ? x : y;
      const dd = Math.abs(x - y);
      if (i > 0 && dd > maxd) maxd = dd;
    }
    currentValues.key = key;
    currentValues.cache = { size, cur, base, maxDelta: maxd || Math.abs((a[0] || 0) - (b[0] || 0)) };
  }
  return currentValues.cache;
}

// Search: per node, 1 when its frame matches (substring of function or
// file, case-insensitive); share = bytes of the matches not inside another match.
function searchMatches() {
  const q = S.search.trim().toLowerCase();
  if (!q) return null;
  const fm = new Uint8Array(M.frames.length);
  M.frames.forEach((f, i) => {
    if ((f.function || '').toLowerCase().includes(q) || (f.file || '').toLowerCase().includes(q)) fm[i] = 1;
  });
  const n = M.n, match = new Uint8Array(n), inside = new Uint8Array(n);
  const cv = currentValues(), size = cv ? cv.size : [];
  let covered = 0, count = 0;
  for (let i = 1; i < n; i++) {
    const f = M.frameOf[i];
    const m = f >= 0 && fm[f] === 1;
    const p = M.parent[i];
    if (m) { match[i] = 1; if (!inside[p]) { covered += size[i] || 0; count++; } }
    inside[i] = inside[p] | (m ? 1 : 0);
  }
  return { match, covered, count, total: size[0] || 0 };
}

function nodeLabel(i) {
  if (i === 0) return 'all';
  const f = M.frameOf[i];
  if (f === -2) {
    const k = M.merged.get(i);
    return k ? '(other: ' + fmtInt(k) + ' small call sites)' : '(other small call sites)';
  }
  const fr = M.frames[f];
  if (!fr) return '[unknown]';
  if (fr.function === '<module>' && fr.file) return '<module> ' + basename(fr.file);
  return frameName(fr);
}

/* --------------------------------------------------------- 6. flame graph */
const ROW_H = 18;         // px per stack level
const MIN_W = 0.4;        // nodes narrower than this (css px) are neither drawn nor descended
const FONT = '12px ' + getComputedStyle(document.documentElement).getPropertyValue('--sans');

const Flame = {
  canvas: null, ctx: null, tip: null, W: 0, rows: 0,
  // the layout: one rectangle per drawn node, in flat arrays
  count: 0, rNode: new Int32Array(1024), rX: new Float64Array(1024), rW: new Float64Array(1024), rRow: new Int32Array(1024),
  depthOfZoom: 0, rootTotal: 0, grown: 0, matches: null, hover: -1, colourCache: new Map(),

  init(wrap) {
    this.canvas = el('canvas', { class: 'mt-flame', role: 'img', 'aria-label': 'flame graph' });
    wrap.append(this.canvas);
    this.ctx = this.canvas.getContext('2d');
    this.tip = document.querySelector('.mt-tip');
    this.canvas.addEventListener('mousemove', (e) => this.onMove(e));
    this.outline = el('div', { class: 'mt-hover' });
    wrap.append(this.outline);
    this.canvas.addEventListener('mouseleave', () => this.setHover(-1));
    this.canvas.addEventListener('click', (e) => this.onClick(e));
  },

  push(node, x, w, row) {
    if (this.count === this.rNode.length) {
      const grow = (a, T) => { const b = new T(a.length * 2); b.set(a); return b; };
      this.rNode = grow(this.rNode, Int32Array); this.rRow = grow(this.rRow, Int32Array);
      this.rX = grow(this.rX, Float64Array); this.rW = grow(this.rW, Float64Array);
    }
    const k = this.count++;
    this.rNode[k] = node; this.rX[k] = x; this.rW[k] = w; this.rRow[k] = row;
    if (row + 1 > this.rows) this.rows = row + 1;
  },

  // Lay out the zoomed subtree: children sorted by size, largest first,
  // each at its share of the parent's width; the zoom node's ancestors
  // above it at full width. Only nodes at least MIN_W wide are visited,
  // so the work is bounded by the pixels, not by the tree's size.
  layout() {
    this.W = Math.max(200, this.canvas.parentNode.clientWidth);
    this.count = 0; this.rows = 0;
    const cv = currentValues();
    if (!cv) return;
    const size = cv.size, W = this.W;
    const chain = [];
    for (let i = S.zoom; i >= 0; i = M.parent[i]) chain.unshift(i);
    chain.forEach((node, row) => this.push(node, 0, W, row));
    this.depthOfZoom = chain.length - 1;
    this.rootTotal = size[0] || 0;
    const stack = [S.zoom, 0, W, chain.length - 1];
    const tmp = [];
    while (stack.length) {
      const row = stack.pop(), w = stack.pop(), x = stack.pop(), node = stack.pop();
      tmp.length = 0;
      let sum = 0;
      for (let k = M.kidStart[node]; k < M.kidStart[node + 1]; k++) {
        const c = M.kids[k], v = size[c] || 0;
        if (v > 0) { tmp.push(c); sum += v; }
      }
      if (!tmp.length) continue;
      const scale = w / Math.max(size[node] || 0, sum);
      if (sum * scale < MIN_W) continue;
      tmp.sort((a, b) => (size[b] - size[a]) || (a - b));
      let cx = x;
      for (const c of tmp) {
        const cw = size[c] * scale;
        if (cw < MIN_W) break;        // sorted: the rest are narrower still
        this.push(c, cx, cw, row + 1);
        stack.push(c, cx, cw, row + 1);
        cx += cw;
      }
    }
  },

  colour(node, cv) {
    if (cv.base) {
      const a = cv.cur.bytes[node] || 0, b = cv.base.bytes[node] || 0, d = a - b;
      if (d === 0 || !cv.maxDelta) return ['#e9ebf0', '#1d2330'];
      const t = Math.min(1, Math.sqrt(Math.abs(d) / cv.maxDelta));
      const l = Math.round(93 - 45 * t);
      this.grown++;
      return [d > 0 ? 'hsl(4,78%,' + l + '%)' : 'hsl(218,78%,' + l + '%)', l < 62 ? '#fff' : '#1d2330'];
    }
    if (node === 0) return ['#c9ced9', '#1d2330'];
    const f = M.frameOf[node];
    if (f === -2) return ['#dfe1e6', '#6b7280'];
    let c = this.colourCache.get(f);
    if (!c) {
      const fr = M.frames[f] || {};
      let h = 0;
      const s = fr.function || fr.file || '';
      for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
      const r = (h % 1000) / 1000;
      c = fr.kind === 'python'
        ? 'hsl(' + Math.round(168 + 30 * r) + ',48%,' + Math.round(60 + 12 * ((h >>> 10) % 100) / 100) + '%)'
        : 'hsl(' + Math.round(18 + 26 * r) + ',82%,' + Math.round(62 + 10 * ((h >>> 10) % 100) / 100) + '%)';
      this.colourCache.set(f, c);
    }
    return [c, '#1d2330'];
  },

  fitText(ctx, s, maxW) {
    if (maxW < 16) return '';
    const w = ctx.measureText(s).width;
    if (w <= maxW) return s;
    let n = Math.floor(s.length * maxW / w);
    while (n > 1 && ctx.measureText(s.slice(0, n) + '\u2026').width > maxW) n--;
    return n > 1 ? s.slice(0, n) + '\u2026' : '';
  },

  paint() {
    const cv = currentValues();
    const dpr = window.devicePixelRatio || 1, W = this.W, H = Math.max(1, this.rows) * ROW_H;
    const c = this.canvas, ctx = this.ctx;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
      c.style.height = H + 'px';
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    this.grown = 0;
    if (!cv) return;
    ctx.font = FONT;
    ctx.textBaseline = 'middle';
    const m = this.matches;
    for (let k = 0; k < this.count; k++) {
      const node = this.rNode[k], x = this.rX[k], w = this.rW[k], y = this.rRow[k] * ROW_H;
      let [fill, ink] = this.colour(node, cv);
      const dim = m && !m.match[node] && node !== 0;
      if (m && m.match[node] && !cv.base) { fill = '#d94fc4'; ink = '#fff'; }
      ctx.globalAlpha = dim ? 0.35 : 1;
      ctx.fillStyle = fill;
      ctx.fillRect(x, y, w > 2 ? w - 1 : w, ROW_H - 1);
      if (this.rRow[k] < this.depthOfZoom) {   // ancestors of the zoomed node: hatched
        ctx.fillStyle = 'rgba(255,255,255,.45)';
        ctx.fillRect(x, y, w, ROW_H - 1);
      }
      if (w >= 20) {
        const other = M.frameOf[node] === -2;
        if (other) ctx.font = 'italic ' + FONT;
        const t = this.fitText(ctx, nodeLabel(node), w - 8);
        if (t) {
          ctx.fillStyle = ink;
          ctx.fillText(t, x + 4, y + ROW_H / 2);
        }
        if (other) ctx.font = FONT;
      }
      if (m && m.match[node] && cv.base) {
        ctx.strokeStyle = '#9c1a87'; ctx.lineWidth = 2;
        ctx.strokeRect(x + 1, y + 1, Math.max(0, w - 3), ROW_H - 3);
      }
    }
    ctx.globalAlpha = 1;
    this.setHover(this.hover);
  },

  // The hovered node's outline is a positioned element over the canvas:
  // moving the mouse never repaints the canvas.
  setHover(node) {
    this.hover = node;
    const k = node >= 0 ? this.findRect(node) : -1;
    if (k < 0) {
      this.hover = -1;
      this.outline.style.display = 'none';
      this.tip.style.display = 'none';
      return;
    }
    const st = this.outline.style;
    st.display = 'block';
    st.left = this.rX[k] + 'px'; st.top = this.rRow[k] * ROW_H + 'px';
    st.width = Math.max(1, this.rW[k] - 1) + 'px'; st.height = (ROW_H - 1) + 'px';
  },

  findRect(node) {
    for (let k = 0; k < this.count; k++) if (this.rNode[k] === node) return k;
    return -1;
  },
  hit(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = (e.clientX - r.left) * this.W / r.width, row = Math.floor((e.clientY - r.top) / ROW_H);
    for (let k = 0; k < this.count; k++)
      if (this.rRow[k] === row && x >= this.rX[k] && x < this.rX[k] + this.rW[k]) return k;
    return -1;
  },
  onMove(e) {
    const k = this.hit(e);
    const node = k >= 0 ? this.rNode[k] : -1;
    if (node !== this.hover) this.setHover(node);
    if (node < 0) return;
    showTip(this.tip, this.tipContent(node), e.clientX, e.clientY);
  },
  onClick(e) {
    const k = this.hit(e);
    if (k < 0) return;
    const node = this.rNode[k];
    zoomTo(node === S.zoom && node !== 0 ? M.parent[node] : node);
  },

  tipContent(node) {
    const cv = currentValues();
    const f = M.frameOf[node], fr = f >= 0 ? M.frames[f] : null;
    const box = el('div');
    box.append(el('div', { class: 'fn', text: nodeLabel(node) }));
    if (fr) {
      const loc = fr.file ? fr.file + (fr.line ? ':' + fr.line : '') : '';
      if (loc) box.append(el('div', { class: 'loc', text: loc }));
      box.append(el('div', { class: 'loc', text: (fr.kind === 'python' ? 'Python frame' : 'native frame') + (fr.module ? ' \u00b7 ' + fr.module : '') }));
    } else if (f === -2) {
      box.append(el('div', { class: 'loc', text: 'call sites below the pruning threshold, merged' }));
    }
    const rows = [];
    const blk = (v, i) => (v.blocks ? fmtInt(v.blocks[i]) : '\u2014');
    if (cv.base) {
      const a = cv.cur.bytes[node] || 0, b = cv.base.bytes[node] || 0, d = a - b;
      rows.push([snapName(S.base), fmtFull(b) + ', ' + blk(cv.base, node) + ' blocks']);
      rows.push([snapName(S.sel), fmtFull(a) + ', ' + blk(cv.cur, node) + ' blocks']);
      rows.push(['change', el('span', { class: d > 0 ? 'up' : d < 0 ? 'down' : '' },
        sign(d) + fmtFull(d) + (b ? ' (' + sign(d) + fmtPct(d / b) + ')' : ''))]);
    } else {
      const v = cv.cur.bytes[node] || 0;
      rows.push([METRIC_LABEL[S.metric].toLowerCase(), fmtFull(v)]);
      rows.push(['blocks', blk(cv.cur, node)]);
      rows.push(['share', fmtPct(this.rootTotal ? v / this.rootTotal : 0) + ' of total' +
        (S.zoom && node !== S.zoom && cv.size[S.zoom] ? ', ' + fmtPct(v / cv.size[S.zoom]) + ' of the zoomed frame' : '')]);
    }
    box.append(el('table', null, rows.map((r) => el('tr', null, el('td', null, r[0]), el('td', null, r[1])))));
    return box;
  },

  render() { this.layout(); this.paint(); },
};

function showTip(tip, content, cx, cy) {
  clear(tip).append(content);
  tip.style.display = 'block';
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let x = cx + 14, y = cy + 16;
  if (x + w > window.innerWidth - 8) x = Math.max(8, cx - w - 14);
  if (y + h > window.innerHeight - 8) y = Math.max(8, cy - h - 12);
  tip.style.left = x + 'px';
  tip.style.top = y + 'px';
}

function zoomTo(node) {
  S.zoom = node;
  Flame.render();
  renderCrumbs();
}

/* ------------------------------------------------------------ 7. timeline */
// Nice axis steps: 1, 2 or 5 times a power of ten.
function niceStep(span, count) {
  const raw = span / Math.max(1, count), p = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}
// Byte ticks in one binary unit ("0", "32 MiB", "64 MiB"...).
function byteTicks(max) {
  let u = 0;
  while (max / Math.pow(1024, u) >= 1024 && u < UNITS.length - 1) u++;
  const unit = Math.pow(1024, u), step = niceStep(max / unit, 5) * unit;
  const ticks = [];
  const top = Math.max(1, Math.ceil(max / step));
  for (let k = 0; k <= top; k++) ticks.push([k * step, k ? +(k * step / unit).toFixed(2) + ' ' + UNITS[u] : '0']);
  return ticks;
}

function renderTimeline(box) {
  clear(box);
  const d = M.d, tl = d.timeline, snaps = d.snapshots;
  const W = Math.max(300, box.clientWidth), H = 210;
  const L = 70, R = 18, T = 26, B = 28, pw = W - L - R, ph = H - T - B;
  const snapLive = snaps.map((s, i) => (vals(i, 'live') ? vals(i, 'live').bytes[0] : (anyReport(i) || {}).total_bytes || 0));
  let tMax = Math.max(0, ...snaps.map((s) => s.time_s || 0));
  let yMax = Math.max(1, ...snapLive);
  const n = tl && Array.isArray(tl.t) ? tl.t.length : 0;
  if (n) {
    tMax = Math.max(tMax, tl.t[n - 1]);
    for (let i = 0; i < n; i++) yMax = Math.max(yMax, tl.heap[i] || 0, (tl.rss || [])[i] || 0);
  }
  let peak = tl && tl.peak ? tl.peak : null;
  if (!peak) {
    // No series: the selected snapshot's own peak, when its time is known.
    const r = anyReport(S.sel), info = r && r.snapshot;
    const t = r && info && r.peak_time_ns && info.start_ns ? (r.peak_time_ns - info.start_ns) / 1e9 : -1;
    if (t >= 0 && r.peak_bytes) peak = { t, bytes: r.peak_bytes };
  }
  if (peak) yMax = Math.max(yMax, peak.bytes);
  tMax = tMax > 0 ? tMax * 1.01 : 1;
  const yt = byteTicks(yMax * 1.04), yTop = yt[yt.length - 1][0] || 1;
  const sx = (t) => L + (t / tMax) * pw, sy = (v) => T + ph - (v / yTop) * ph;
  const g = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H });
  const grid = sv('g', { class: 'grid' }), axis = sv('g', { class: 'axis' });
  for (const [v, label] of yt) {
    grid.append(sv('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v) }));
    axis.append(sv('text', { x: L - 8, y: sy(v) + 4, 'text-anchor': 'end' }, label));
  }
  const xs = niceStep(tMax, Math.max(2, Math.floor(pw / 90)));
  // Tick labels in ms below a second, else in s, with the step's decimals.
  const ms = tMax < 1, unitStep = ms ? xs * 1000 : xs;
  const dec = Math.max(0, -Math.floor(Math.log10(unitStep) + 1e-9));
  for (let k = 0; k * xs <= tMax; k++)
    axis.append(sv('text', { x: sx(k * xs), y: H - 8, 'text-anchor': 'middle' },
      k ? (k * unitStep).toFixed(dec) + (ms ? ' ms' : ' s') : '0'));
  g.append(grid, axis);

  // Series drawn with at most one point per pixel column (its maximum,
  // since each value is already the maximum over its interval).
  const series = (arr) => {
    let path = '', col = -1, best = 0, bx = 0;
    const flush = () => { if (col >= 0) path += (path ? 'L' : 'M') + bx.toFixed(1) + ' ' + sy(best).toFixed(1); };
    for (let i = 0; i < n; i++) {
      const x = sx(tl.t[i]), c = Math.floor(x), v = arr[i] || 0;
      if (c !== col) { flush(); col = c; best = v; bx = x; } else if (v > best) { best = v; bx = x; }
    }
    flush();
    return path;
  };
  if (n) {
    const hp = series(tl.heap);
    g.append(sv('path', { class: 'heap-area', d: hp + 'L' + sx(tl.t[n - 1]).toFixed(1) + ' ' + sy(0) + 'L' + sx(tl.t[0]).toFixed(1) + ' ' + sy(0) + 'Z' }));
    if (Array.isArray(tl.rss)) g.append(sv('path', { class: 'rss', d: series(tl.rss) }));
    g.append(sv('path', { class: 'heap', d: hp }));
  } else {
    // No series: the live totals of the snapshots, joined.
    const order = snaps.map((s, i) => i).sort((a, b) => snaps[a].time_s - snaps[b].time_s);
    g.append(sv('path', { class: 'snaps-line', d: order.map((i, k) => (k ? 'L' : 'M') + sx(snaps[i].time_s || 0) + ' ' + sy(snapLive[i])).join('') }));
  }
  // Hover read-out of the series.
  if (n) {
    const cross = sv('g', { class: 'cross', style: 'display:none' }, sv('line', { y1: T, y2: T + ph }));
    const hot = sv('rect', { x: L, y: T, width: pw, height: ph, fill: 'transparent' });
    const tip = document.querySelector('.mt-tip');
    hot.addEventListener('mousemove', (e) => {
      const r = g.getBoundingClientRect(), t = ((e.clientX - r.left) * W / r.width - L) / pw * tMax;
      let lo = 0, hi = n - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (tl.t[mid] < t) lo = mid + 1; else hi = mid; }
      const x = sx(tl.t[lo]);
      cross.firstChild.setAttribute('x1', x); cross.firstChild.setAttribute('x2', x);
      cross.style.display = '';
      const rows = [['time', fmtSec(tl.t[lo])], ['heap', fmtFull(tl.heap[lo])]];
      if (tl.blocks) rows.push(['blocks', fmtInt(tl.blocks[lo])]);
      if (tl.rss) rows.push(['RSS', fmtFull(tl.rss[lo])]);
      showTip(tip, el('table', null, rows.map((r2) => el('tr', null, el('td', null, r2[0]), el('td', null, r2[1])))), e.clientX, e.clientY);
    });
    hot.addEventListener('mouseleave', () => { cross.style.display = 'none'; tip.style.display = 'none'; });
    g.append(hot, cross);
  }
  if (peak) {
    const px = sx(peak.t), py = sy(peak.bytes), right = px > L + pw * 0.7;
    g.append(sv('g', { class: 'peak' }, sv('circle', { cx: px, cy: py, r: 4 }),
      sv('text', { x: px + (right ? -8 : 8), y: py - 6, 'text-anchor': right ? 'end' : 'start' },
        'peak ' + fmtBytes(peak.bytes) + ' at ' + fmtSec(peak.t))));
  }
  // One mark per snapshot, at its time; click to select it.
  snaps.forEach((s, i) => {
    const x = sx(s.time_s || 0);
    const cls = 'mt-snap-mark' + (i === S.sel ? ' sel' : '') + (i === S.base ? ' base' : '');
    const mark = sv('g', { class: cls, 'data-index': i, tabindex: 0, role: 'button' },
      sv('title', null, snapName(i) + ' at ' + fmtSec(s.time_s) + ': ' + fmtFull(snapLive[i]) + ' live' +
        (i === S.base ? ' (diff base)' : '') + ' \u2014 click to select'),
      sv('line', { x1: x, x2: x, y1: T - 6, y2: T + ph }),
      sv('circle', { cx: x, cy: sy(snapLive[i]), r: 4.5 }),
      sv('text', { x: x, y: T - 10, 'text-anchor': 'middle' }, '#' + s.seq + (i === S.base ? ' base' : '')));
    mark.addEventListener('click', () => selectSnapshot(i));
    mark.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') selectSnapshot(i); });
    g.append(mark);
  });
  box.append(g);
}

/* -------------------------------------------------------------- 8. header */
function renderHeader(box) {
  clear(box);
  const s = M.d.snapshots[S.sel], r = anyReport(S.sel), info = (r && r.snapshot) || {};
  const cmd = (info.cmdline || []).map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : "'" + a.replace(/'/g, "'\\''") + "'")).join(' ');
  box.append(el('h1', null, cmd || M.d.title || 'memtrail report'));
  const meta = el('div', { class: 'mt-meta' },
    el('span', null, 'pid ', el('b', null, String(s.pid)), info.ppid ? ' (parent ' + info.ppid + ')' : '', info.hostname ? ' on ' + info.hostname : ''),
    el('span', null, 'snapshot ', el('b', null, snapName(S.sel)), ' of ', String(M.d.snapshots.length)),
    el('span', null, 'taken ', el('b', null, isoToText(info.time) || '?'), ', ', fmtSec(s.time_s), ' after start'),
    info.unwind ? el('span', null, 'unwind ', info.unwind, ', depth ', String(info.depth)) : null,
    el('span', { class: 'mono', title: s.path }, basename(s.path || '')));
  box.append(meta);
  if (!r) { box.append(el('p', { class: 'mt-empty', text: 'No report data for this snapshot.' })); return; }
  // When the peak happened and its largest site (report entries by peak_bytes).
  let peakWhen = null;
  if (r.peak_time_ns && info.start_ns) peakWhen = (r.peak_time_ns - info.start_ns) / 1e9;
  const lines = report(S.sel, 'line') || r;
  let top = null;
  for (const e of lines.entries || []) if (e.peak_bytes != null && (!top || e.peak_bytes > top.peak_bytes)) top = e;
  const topFn = top && top.frames && top.frames[0] ? top.frames[0].function : '';
  const stats = el('div', { class: 'mt-stats' },
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: 'Live' }),
      el('div', { class: 'v', text: fmtBytes(r.total_bytes) }),
      el('div', { class: 'd', text: fmtInt(r.total_bytes) + ' B in ' + plural(r.total_blocks, 'block') })),
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: 'Peak' }),
      el('div', { class: 'v', text: fmtBytes(r.peak_bytes) }),
      el('div', { class: 'd' }, fmtInt(r.peak_bytes) + ' B' + (peakWhen != null && peakWhen >= 0 ? ' at ' + fmtSec(peakWhen) : '')),
      top ? el('div', { class: 'd', title: top.key }, 'largest site then: ', el('b', null, topFn || top.key),
        ' ' + fmtBytes(top.peak_bytes) + (r.peak_bytes ? ' (' + fmtPct(top.peak_bytes / r.peak_bytes) + ')' : '')) : null),
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: 'Allocated' }),
      el('div', { class: 'v', text: fmtBytes(r.alloc_bytes) }),
      el('div', { class: 'd', text: fmtInt(r.alloc_bytes) + ' B in ' + plural(r.alloc_blocks, 'block') + ', ' + fmtInt(r.free_blocks) + ' freed' })));
  const lk = s.leaks && s.leaks.summary;
  if (lk) {
    const b = (k) => (lk[k] && lk[k].bytes) || 0;
    const lost = b('definite') + b('indirect') + b('possible');
    stats.append(el('div', { class: 'mt-stat' + (lost ? ' bad' : '') }, el('div', { class: 'k', text: 'Lost' }),
      el('div', { class: 'v', text: fmtBytes(lost) }),
      el('div', { class: 'd', text: fmtBytes(b('definite')) + ' definite, ' + fmtBytes(b('indirect')) + ' indirect, ' + fmtBytes(b('possible')) + ' possible' })));
  }
  box.append(stats);
  const pr = M.d.pruned;
  if (pr) {
    const share = +((pr.threshold_share || 0) * 100).toPrecision(3) + ' %';
    box.append(el('div', { class: 'mt-note' }, 'Call sites below ' + share +
      ' of every metric were merged into grey \u201cother\u201d nodes of the flame graph: ' +
      plural(pr.nodes_merged || 0, 'call-tree node') + ' merged, ' + fmtInt(pr.nodes_kept || M.n) + ' kept. The table and totals are exact.'));
  }
}

/* --------------------------------------------------------------- 9. table */
const COLS = [
  ['key', 'Site', false], ['bytes', 'Live bytes', true], ['blocks', 'Live blocks', true],
  ['peak_bytes', 'At peak', true], ['alloc_bytes', 'Allocated', true], ['stacks', 'Stacks', true],
];
const GROUP_LABEL = { line: 'Line', function: 'Function', file: 'File', module: 'Module' };

function renderTable(box) {
  clear(box);
  const r = report(S.sel, S.group);
  const seg = el('div', { class: 'mt-seg' }, Object.keys(GROUP_LABEL).map((g) =>
    el('button', { class: g === S.group ? 'on' : null, disabled: !report(S.sel, g), onclick: () => { S.group = g; renderTable(box); } }, GROUP_LABEL[g])));
  const head = el('div', { class: 'mt-tools' }, el('span', { class: 'muted', text: 'Group by' }), seg);
  box.append(head);
  if (!r) { box.append(el('p', { class: 'mt-empty', text: 'No report for this grouping.' })); return; }
  const entries = (r.entries || []).slice();
  const k = S.sortKey, dir = S.sortDir;
  entries.sort((a, b) => {
    const x = a[k], y = b[k];
    const c = k === 'key' ? (x < y ? -1 : x > y ? 1 : 0) : ((x == null ? -1 : x) - (y == null ? -1 : y));
    return c * dir || (b.bytes - a.bytes) || (a.key < b.key ? -1 : 1);
  });
  head.append(el('span', { class: 'mt-sum' }, (r.total_entries > entries.length ? 'top ' + fmtInt(entries.length) + ' of ' : '') +
    plural(r.total_entries != null ? r.total_entries : entries.length, 'site') + ' \u00b7 click a row to find it in the flame graph'));
  const thead = el('tr', null, COLS.map(([key, label, num]) => {
    const th = el('th', { class: (num ? 'num ' : '') + 'sortable', title: 'sort by ' + label.toLowerCase() },
      key === 'key' ? GROUP_LABEL[S.group] : label, key === k ? el('span', { class: 'arrow', text: dir < 0 ? '\u25BE' : '\u25B4' }) : null);
    th.addEventListener('click', () => {
      if (S.sortKey === key) S.sortDir = -S.sortDir; else { S.sortKey = key; S.sortDir = key === 'key' ? 1 : -1; }
      renderTable(box);
    });
    return th;
  }));
  const total = r.total_bytes || 0;
  const body = el('tbody');
  for (const e of entries) {
    const f = e.frames && e.frames[0];
    let sub = '';
    if (f && S.group === 'function') sub = frameWhere(f);
    else if (f && S.group === 'line' && f.function) sub = f.function + (f.module && f.kind !== 'python' ? ' [' + basename(f.module) + ']' : '');
    const find = f && (S.group === 'function' || S.group === 'line') ? f.function : S.group === 'file' && f ? f.file : '';
    const tr = el('tr', { class: find ? 'click' : null, title: find ? 'highlight \u201c' + find + '\u201d in the flame graph' : null },
      el('td', null, el('div', { class: 'key' }, f ? kindBadge(f) : null, e.key), sub ? el('div', { class: 'sub', text: sub }) : null),
      el('td', { class: 'num mt-bar-cell', title: fmtFull(e.bytes) },
        el('div', { class: 'b', style: 'width:' + (total ? Math.min(100, 100 * e.bytes / total) : 0).toFixed(2) + '%' }),
        el('span', null, fmtInt(e.bytes))),
      el('td', { class: 'num', text: fmtInt(e.blocks) }),
      el('td', { class: 'num', title: fmtFull(e.peak_bytes), text: fmtInt(e.peak_bytes) }),
      el('td', { class: 'num', title: fmtFull(e.alloc_bytes), text: fmtInt(e.alloc_bytes) }),
      el('td', { class: 'num', text: fmtInt(e.stacks) }));
    if (find) tr.addEventListener('click', () => setSearch(find, true));
    body.append(tr);
  }
  box.append(el('div', { class: 'mt-table-wrap' }, el('table', { class: 'mt-table' }, el('thead', null, thead), body)));
  box.append(el('p', { class: 'muted' }, 'Total live ' + fmtFull(r.total_bytes) + ' in ' + plural(r.total_blocks, 'block') +
    (r.filtered ? ' (filtered: ' + fmtFull(r.selected_bytes) + ' selected)' : '') + '. Bytes exact, as memtrail report prints them.'));
}
function kindBadge(f) {
  return f.kind === 'python' ? el('span', { class: 'badge py', text: 'py', title: 'Python frame' }) : null;
}

/* --------------------------------------------------- 10. leaks and cycles */
function stackList(frames, max) {
  const ol = el('ol', { class: 'mt-stack' });
  const shown = frames.slice(0, max || frames.length);
  for (const f of shown) ol.append(el('li', null, frameName(f), ' ', el('span', { class: 'loc', text: frameWhere(f) })));
  if (frames.length > shown.length) ol.append(el('li', { class: 'loc', text: '\u2026 ' + plural(frames.length - shown.length, 'more frame') }));
  return ol;
}
function otherSnapshotWith(member) {
  const i = M.d.snapshots.findIndex((s) => s[member]);
  return i;
}
function missingNote(box, member, what) {
  const j = otherSnapshotWith(member);
  box.append(el('p', { class: 'mt-empty' }, 'No ' + what + ' in snapshot ' + snapName(S.sel) + '.',
    j >= 0 ? [' ', el('a', { href: '#', onclick: (e) => { e.preventDefault(); selectSnapshot(j); } }, 'Show snapshot ' + snapName(j)), ', which has some.'] : ''));
}

function renderLeaks(box) {
  clear(box);
  const L = M.d.snapshots[S.sel].leaks;
  if (!L) { missingNote(box, 'leaks', 'leak data'); return; }
  const sm = L.summary || {};
  const kinds = el('div', { class: 'mt-kinds' });
  for (const k of ['definite', 'indirect', 'possible', 'reachable', 'libc', 'unscanned']) {
    const v = sm[k] || { bytes: 0, blocks: 0 };
    const lost = k === 'definite' || k === 'indirect' || k === 'possible';
    kinds.append(el('div', { class: 'mt-kind' + (v.bytes ? (lost ? ' lost' : '') : ' zero'), title: fmtFull(v.bytes) },
      el('div', { class: 'k', text: k }), el('div', { class: 'v', text: fmtBytes(v.bytes) }),
      el('div', { class: 'muted', text: plural(v.blocks, 'block') })));
  }
  box.append(kinds);
  const sc = L.scan;
  if (sc) {
    box.append(el('p', { class: 'muted' }, 'Scan: ' + plural(sc.threads, 'thread') + ' stopped for ' + fmtNs(sc.stop_ns) + ', ' +
      fmtBytes(sc.root_bytes) + ' of roots and ' + fmtBytes(sc.heap_bytes) + ' of blocks read.',
      sc.partial ? el('b', { style: 'color:var(--warn)' }, ' Partial scan (' + plural(sc.threads_missed, 'thread') + ' missed): possibly lost blocks may be overcounted.') : ''));
  }
  if (L.verdict) box.append(el('p', null, el('b', { text: L.verdict.message })));
  const recs = L.leaks || [];
  box.append(el('h3', null, 'Loss records ', el('span', { class: 'muted', text: '(' + (L.kinds || []).join(', ') + ': ' +
    (L.total_records > recs.length ? recs.length + ' of ' : '') + fmtInt(L.total_records != null ? L.total_records : recs.length) + ')' })));
  if (!recs.length) box.append(el('p', { class: 'mt-empty', text: 'No loss record of these kinds.' }));
  recs.forEach((r, i) => {
    const f = r.frames && r.frames.find((x) => !/^operator new/.test(x.function)) || (r.frames || [])[0];
    box.append(el('details', { class: 'mt-rec', open: i === 0 },
      el('summary', null, el('span', { class: 'badge ' + r.kind, text: r.kind }),
        el('b', { text: fmtFull(r.bytes) }), el('span', { class: 'muted', text: 'in ' + plural(r.blocks, 'block') }),
        el('span', { class: 'where', text: f ? frameName(f) + '  ' + frameWhere(f) : '[unknown stack]' })),
      el('div', { class: 'body' }, r.frames && r.frames.length ? stackList(r.frames, 40) : el('p', { class: 'mt-empty', text: 'unknown stack' }))));
  });
}

function renderCycles(box) {
  clear(box);
  const C = M.d.snapshots[S.sel].cycles;
  if (!C) { missingNote(box, 'cycles', 'Python object graph'); return; }
  const g = C.graph || {}, sm = C.summary || {};
  box.append(el('p', { class: 'muted' }, fmtInt(g.objects) + ' gc-tracked objects, ' + fmtInt(g.edges) + ' references \u00b7 Python ' +
    g.python + ' \u00b7 collector ' + (g.gc_enabled ? 'enabled' : 'disabled') + ' \u00b7 captured in ' + fmtNs(g.capture_ns || 0) +
    (g.scanned ? ' \u00b7 memory scanned' : ' \u00b7 no memory scan: refcount leaks not checked')));
  const kinds = el('div', { class: 'mt-kinds' },
    el('div', { class: 'mt-kind' + (sm.garbage_cycles ? ' lost' : ' zero') }, el('div', { class: 'k', text: 'garbage cycles' }),
      el('div', { class: 'v', text: fmtInt(sm.garbage_cycles) }), el('div', { class: 'muted', text: plural(sm.garbage_objects, 'object') + ', ' + fmtBytes(sm.garbage_bytes) })),
    el('div', { class: 'mt-kind' + (sm.refcount_leaks ? ' lost' : ' zero') }, el('div', { class: 'k', text: 'refcount leaks' }),
      el('div', { class: 'v', text: C.refcount_leaks_checked === false ? 'not checked' : fmtInt(sm.refcount_leaks) }),
      el('div', { class: 'muted', text: fmtBytes(sm.leaked_bytes) + ' kept' })),
    el('div', { class: 'mt-kind' }, el('div', { class: 'k', text: 'alive cycles' }), el('div', { class: 'v', text: fmtInt(sm.alive_cycles) }),
      el('div', { class: 'muted', text: 'reachable, not garbage' })));
  box.append(kinds);
  if (sm.hidden_cycles || sm.hidden_leaks)
    box.append(el('p', { class: 'muted', text: 'Hidden: ' + plural(sm.hidden_cycles, 'cycle') + ' and ' + plural(sm.hidden_leaks, 'refcount leak') +
      ' outside the program\u2019s code (memtrail cycles --all shows them).' }));
  if (C.verdict) box.append(el('p', null, el('b', { text: C.verdict.message })));
  const cols = el('div', { class: 'mt-cols' });
  const left = el('div', null, el('h3', { text: 'Cycles' })), right = el('div', null, el('h3', { text: 'Refcount leaks' }));
  cols.append(left, right);
  box.append(cols);
  const cycles = C.cycles || [];
  if (!cycles.length) left.append(el('p', { class: 'mt-empty', text: 'No reference cycle in the program\u2019s code.' }));
  cycles.forEach((c, i) => {
    const state = c.garbage ? ['garbage', 'garbage'] : c.kept_by_leak ? ['leak', 'kept by a refcount leak'] : ['alive', 'alive'];
    const objs = c.objects || [];
    const at = allocFrame((objs[0] || {}).frames);
    const rows = objs.slice(0, 10).map((o) => {
      const f = allocFrame(o.frames);
      return el('tr', null, el('td', { class: 'key', text: o.type }), el('td', { class: 'num', text: fmtInt(o.size) + ' B' }),
        el('td', { class: 'num', text: String(o.refcount) }), el('td', null, o.finalizer ? el('span', { class: 'badge possible', text: '__del__' }) : ''),
        el('td', { class: 'sub', text: f ? frameName(f) + ' ' + frameWhere(f) : '[unknown]' }));
    });
    if (objs.length > 10) rows.push(el('tr', null, el('td', { colspan: 5, class: 'muted', text: '\u2026 and ' + fmtInt(objs.length - 10) + ' more' })));
    left.append(el('details', { class: 'mt-rec', open: i < 2 },
      el('summary', null, el('span', { class: 'badge ' + state[0], text: state[1] }),
        el('b', { text: plural(c.size, 'object') + ', ' + fmtFull(c.bytes) }),
        at ? el('span', { class: 'where', text: frameName(at) + '  ' + frameWhere(at) }) : null),
      el('div', { class: 'body' }, el('table', { class: 'mt-table' },
        el('thead', null, el('tr', null, ['type', 'size', 'refcount', '', 'allocated at'].map((h, j) => el('th', { class: j === 1 || j === 2 ? 'num' : null, text: h })))),
        el('tbody', null, rows)))));
  });
  const leaks = C.refcount_leaks || [];
  if (C.refcount_leaks_checked === false) right.append(el('p', { class: 'mt-empty', text: 'Not checked: the graph was not scanned.' }));
  else if (!leaks.length) right.append(el('p', { class: 'mt-empty', text: 'No refcount leak in the program\u2019s code.' }));
  leaks.forEach((l, i) => {
    const at = allocFrame(l.frames);
    right.append(el('details', { class: 'mt-rec', open: i < 2 },
      el('summary', null, el('span', { class: 'badge leak', text: 'refcount leak' }), el('b', { class: 'mono', text: l.type }),
        el('span', { class: 'muted', text: l.address }),
        el('span', null, 'keeps ' + plural((l.keeps_alive || {}).objects || 0, 'object') + ' (' + fmtBytes((l.keeps_alive || {}).bytes || 0) + ') alive')),
      el('div', { class: 'body' },
        el('p', { class: 'muted', text: 'refcount ' + l.refcount + ', ' + plural(l.referrers, 'reference') + ' found, ' + l.unexplained +
          ' unexplained (a missing Py_DECREF); ' + fmtInt(l.size) + ' B' + (at ? '; allocated at ' + frameName(at) + ' ' + frameWhere(at) : '') }),
        l.frames && l.frames.length ? stackList(l.frames, 30) : null)));
  });
}

/* ---------------------------------------------------- 11. page and controls */
const UI = {};

function buildPage(root) {
  const d = M.d, snaps = d.snapshots;
  const hasLeaks = snaps.some((s) => s.leaks), hasCycles = snaps.some((s) => s.cycles);
  const nav = [['mt-overview', 'Overview'], ['mt-timeline', 'Timeline'], ['mt-flame', 'Flame graph'], ['mt-table', 'Top sites']];
  if (hasLeaks) nav.push(['mt-leaks', 'Leaks']);
  if (hasCycles) nav.push(['mt-cycles', 'Python objects']);
  UI.snapSel = el('select', { 'aria-label': 'snapshot', onchange: (e) => selectSnapshot(+e.target.value) },
    snaps.map((s, i) => el('option', { value: i }, snapName(i) + ' \u00b7 ' + fmtSec(s.time_s) +
      (new Set(snaps.map((x) => x.pid)).size > 1 ? ' \u00b7 pid ' + s.pid : ''))));
  root.append(el('div', { class: 'mt-bar' },
    el('div', { class: 'mt-brand' }, 'mem', el('span', null, 'trail')),
    el('nav', { class: 'mt-nav' }, nav.map(([id, t]) => el('a', { href: '#' + id, onclick: (e) => { e.preventDefault(); scrollToId(id); } }, t))),
    el('div', { class: 'mt-grow' }), el('label', null, 'Snapshot'), UI.snapSel));
  const main = el('main');
  root.append(main, el('div', { class: 'mt-tip' }));
  UI.header = el('section', { class: 'mt-card mt-head', id: 'mt-overview' });
  UI.timeline = el('div', { class: 'mt-timeline' });
  UI.timelineLegend = el('div', { class: 'mt-legend' });
  main.append(UI.header, el('section', { class: 'mt-card', id: 'mt-timeline' },
    el('h2', null, 'Memory over time', el('span', { class: 'muted', text: d.timeline ? 'heap and RSS; click a snapshot mark to select it' : 'live memory at each snapshot; click a mark to select it' })),
    UI.timeline, UI.timelineLegend));

  // Flame graph card: metric, diff base, search, zoom path, canvas.
  UI.metricSeg = el('div', { class: 'mt-seg', role: 'group', 'aria-label': 'metric' });
  UI.baseSel = el('select', { 'aria-label': 'diff base', onchange: (e) => setBase(+e.target.value) });
  UI.search = el('input', { type: 'search', placeholder: 'Search function or file\u2026', 'aria-label': 'search' });
  let timer = 0;
  UI.search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => setSearch(UI.search.value, false), 120); });
  UI.matchInfo = el('span', { class: 'mt-match' });
  UI.flameSum = el('span', { class: 'mt-sum' });
  UI.crumbs = el('div', { class: 'mt-crumbs' });
  UI.flameLegend = el('div', { class: 'mt-legend' });
  const wrap = el('div', { class: 'mt-flame-wrap' });
  main.append(el('section', { class: 'mt-card', id: 'mt-flame' },
    el('h2', null, 'Flame graph', el('span', { class: 'muted', text: 'callers on top, callees below; width = bytes; click to zoom' })),
    el('div', { class: 'mt-tools' }, UI.metricSeg,
      snaps.length > 1 ? el('label', { class: 'muted' }, 'Compare with ', UI.baseSel) : null,
      UI.search, UI.matchInfo, UI.flameSum),
    UI.crumbs, wrap, el('div', { style: 'margin-top:8px' }, UI.flameLegend)));
  Flame.init(wrap);

  UI.table = el('div');
  main.append(el('section', { class: 'mt-card', id: 'mt-table' }, el('h2', null, 'Top sites', el('span', { class: 'muted', text: 'from memtrail report' })), UI.table));
  if (hasLeaks) {
    UI.leaks = el('div');
    main.append(el('section', { class: 'mt-card', id: 'mt-leaks' }, el('h2', null, 'Leaks', el('span', { class: 'muted', text: 'from memtrail leaks' })), UI.leaks));
  }
  if (hasCycles) {
    UI.cycles = el('div');
    main.append(el('section', { class: 'mt-card', id: 'mt-cycles' }, el('h2', null, 'Python garbage cycles and refcount leaks', el('span', { class: 'muted', text: 'from memtrail cycles' })), UI.cycles));
  }
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && document.activeElement !== UI.search) zoomTo(0);
  });
  let pending = 0;
  window.addEventListener('resize', () => {
    cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => { renderTimeline(UI.timeline); Flame.render(); });
  });
}

function scrollToId(id) {
  const e = document.getElementById(id);
  if (e) e.scrollIntoView({ block: 'start' });
}

function renderControls() {
  UI.snapSel.value = String(S.sel);
  fill(UI.metricSeg, metricsOffered().map((m) =>
    el('button', { class: m === S.metric ? 'on' : null, onclick: () => { S.metric = m; renderFlame(); } }, METRIC_LABEL[m])));
  fill(UI.baseSel, el('option', { value: -1 }, 'nothing (no diff)'),
    ...M.d.snapshots.map((s, i) => (i === S.sel ? null : el('option', { value: i }, snapName(i) + ' \u00b7 ' + fmtSec(s.time_s)))).filter(Boolean));
  UI.baseSel.value = String(S.base);
}

function renderCrumbs() {
  const chain = [];
  for (let i = S.zoom; i >= 0; i = M.parent[i]) chain.unshift(i);
  clear(UI.crumbs);
  const items = chain.length > 8 ? [chain[0], -1, ...chain.slice(-6)] : chain;
  items.forEach((node, k) => {
    if (k) UI.crumbs.append(el('span', { class: 'sep', text: '\u203A' }));
    if (node === -1) UI.crumbs.append('\u2026');
    else UI.crumbs.append(el('a', { href: '#', onclick: (e) => { e.preventDefault(); zoomTo(node); } }, nodeLabel(node)));
  });
  if (S.zoom) UI.crumbs.append(' ', el('button', { onclick: () => zoomTo(0), style: 'margin-left:10px' }, 'Reset zoom'));
}

function renderFlame() {
  if (!metricsOffered().includes(S.metric)) S.metric = 'live';
  renderControls();
  const cv = currentValues();
  if (cv && !(cv.size[S.zoom] > 0)) S.zoom = 0;   // the zoomed frame is empty here
  Flame.matches = searchMatches();
  Flame.render();
  renderCrumbs();
  const m = Flame.matches;
  UI.matchInfo.textContent = m ? (m.count ? 'matched ' + fmtPct(m.total ? m.covered / m.total : 0) + ' (' + fmtBytes(m.covered) + ')' : 'no match') : '';
  if (!cv) { UI.flameSum.textContent = 'no values for this metric'; return; }
  const a = cv.cur.bytes[0] || 0;
  if (!cv.size[0]) {
    UI.crumbs.append(el('span', { class: 'mt-empty', style: 'margin-left:12px' },
      'Nothing to draw: ' + METRIC_LABEL[S.metric].toLowerCase() + ' is 0 B in this snapshot.'));
  }
  clear(UI.flameSum);
  if (cv.base) {
    const b = cv.base.bytes[0] || 0;
    UI.flameSum.append(snapName(S.base) + ' \u2192 ' + snapName(S.sel) + ': ', el('b', { text: sign(a - b) + fmtFull(a - b) }));
  } else {
    UI.flameSum.append(METRIC_LABEL[S.metric] + ': ', el('b', { text: fmtFull(a) }),
      cv.cur.blocks ? ' in ' + plural(cv.cur.blocks[0] || 0, 'block') : '');
  }
  const chip = (bg, t) => el('span', null, el('i', { style: 'background:' + bg }), t);
  fill(UI.flameLegend, cv.base
    ? [chip('hsl(4,78%,55%)', 'grew'), chip('hsl(218,78%,55%)', 'shrank'), chip('#e9ebf0', 'unchanged'),
      el('span', null, 'width: the larger of the two values; colour intensity: size of the change')]
    : [chip('hsl(180,48%,64%)', 'Python frame'), chip('hsl(30,82%,65%)', 'native frame'),
      M.d.pruned ? chip('#dfe1e6', 'other (merged small call sites)') : null,
      m ? chip('#d94fc4', 'search match') : null,
      el('span', null, 'Esc or a click on \u201call\u201d resets the zoom')]);
}

function renderLegendTimeline() {
  const t = M.d.timeline;
  fill(UI.timelineLegend, 
    t ? el('span', null, el('i', { class: 'line' }), 'live heap') : el('span', null, el('i', { class: 'line' }), 'live at snapshots'),
    t && t.rss ? el('span', null, el('i', { class: 'dash' }), 'RSS') : null,
    el('span', null, el('i', { style: 'background:var(--accent)' }), 'selected snapshot'),
    S.base >= 0 ? el('span', null, el('i', { style: 'background:var(--shrink)' }), 'diff base') : null,
    t && t.step_s ? el('span', { text: 'resolution ' + fmtSec(t.step_s) + ' (each point is the maximum of its interval)' }) : null);
}

function renderAll() {
  renderHeader(UI.header);
  renderTimeline(UI.timeline);
  renderLegendTimeline();
  renderFlame();
  renderTable(UI.table);
  if (UI.leaks) renderLeaks(UI.leaks);
  if (UI.cycles) renderCycles(UI.cycles);
}

function selectSnapshot(i) {
  if (i < 0 || i >= M.d.snapshots.length) return;
  S.sel = i;
  if (S.base === i) S.base = -1;
  if (!metricsFor(i).includes(S.metric)) S.metric = 'live';
  renderAll();
}
function setBase(i) {
  S.base = i;
  renderFlame();
  renderTimeline(UI.timeline);
  renderLegendTimeline();
}
function setSearch(q, scroll) {
  S.search = q;
  if (UI.search.value !== q) UI.search.value = q;
  renderFlame();
  if (scroll) scrollToId('mt-flame');
}

function fragment() {
  const out = {};
  let hash = location.hash.slice(1);
  try { hash = decodeURIComponent(hash); } catch (e) { /* keep it as it is */ }
  for (const part of hash.split(/[&;,]/)) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0) out[part] = true; else out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}
function applyView(view) {
  if (view === 'diff' && M.d.snapshots.length > 1 && S.base < 0) {
    setBase(S.sel > 0 ? S.sel - 1 : 1);
  }
  if (view === 'leaks' && !M.d.snapshots[S.sel].leaks) {
    const j = otherSnapshotWith('leaks');
    if (j >= 0) selectSnapshot(j);
  }
  const id = VIEWS[view];
  if (!id || !document.getElementById(id)) return;
  focusSection(id);
}
const VIEWS = { flame: 'mt-flame', diff: 'mt-flame', timeline: 'mt-timeline', table: 'mt-table', leaks: 'mt-leaks', cycles: 'mt-cycles', overview: 'mt-overview' };

// #view=NAME shows that section alone, at the top of the page (a link
// brings the others back): a headless browser's screenshot shows the top
// of the document whatever the scroll position, and one view at a time
// is what such a link asks for.
function focusSection(id) {
  for (const sec of document.querySelectorAll('main > .mt-card')) sec.classList.toggle('mt-hidden', sec.id !== id);
  if (!UI.focusNote) {
    UI.focusNote = el('div', { class: 'mt-focus-note' }, 'One section shown. ',
      el('a', { href: '#', onclick: (e) => { e.preventDefault(); unfocus(); } }, 'Show the whole report'));
    document.querySelector('main').prepend(UI.focusNote);
  }
  UI.focusNote.classList.remove('mt-hidden');
  renderTimeline(UI.timeline);   // a hidden section had no width: draw again
  Flame.render();
  window.scrollTo(0, 0);
}
function unfocus() {
  for (const sec of document.querySelectorAll('main > .mt-card')) sec.classList.remove('mt-hidden');
  if (UI.focusNote) UI.focusNote.classList.add('mt-hidden');
  history.replaceState(null, '', location.pathname + location.search);
  renderTimeline(UI.timeline);
  Flame.render();
}

/* ------------------------------------------------------------ 12. self-test */
// Checks the page as the user sees it; see "Self-test" in HTML_DATA.md.
function selfTest() {
  const d = M.d, saved = { metric: S.metric, base: S.base, zoom: S.zoom, search: S.search };
  const res = { pass: false, errors: ERRORS };
  S.metric = 'live'; S.base = -1; S.zoom = 0; setSearch('', false);
  res.root_bytes = Flame.rootTotal;
  const r = report(S.sel, 'line');
  res.snapshot_live_bytes = r ? r.total_bytes : null;
  const fe = (report(S.sel, 'function') || {}).entries || [];
  if (fe.length) {
    const f = fe[0].frames && fe[0].frames[0];
    res.top_function_present = document.body.innerText.includes((f && f.function) || fe[0].key);
  } else {
    res.top_function_present = null;
  }
  // Zoom: click the largest child of the root, then the root.
  let big = -1;
  for (let k = 0; k < Flame.count; k++)
    if (Flame.rRow[k] === 1 && (big < 0 || Flame.rW[k] > Flame.rW[big])) big = k;
  if (big < 0) {
    res.zoom_ok = null;
  } else {
    const child = Flame.rNode[big], x0 = Flame.rX[big] + Flame.rW[big] / 2;
    const click = (x, row) => {
      const rc = Flame.canvas.getBoundingClientRect();
      Flame.canvas.dispatchEvent(new MouseEvent('click', {
        bubbles: true, cancelable: true, view: window,
        clientX: rc.left + x * rc.width / Flame.W, clientY: rc.top + row * ROW_H + ROW_H / 2,
      }));
    };
    click(x0, 1);
    const k1 = Flame.findRect(child);
    const zoomed = S.zoom === child && k1 >= 0 && Flame.rX[k1] === 0 && Math.abs(Flame.rW[k1] - Flame.W) < 0.5;
    click(Flame.W / 2, 0);
    const k2 = Flame.findRect(child);
    res.zoom_ok = zoomed && S.zoom === 0 && k2 >= 0 && Math.abs(Flame.rW[k2] - Flame.rW[big]) < 0.5;
  }
  res.snap_marks = document.querySelectorAll('.mt-snap-mark').length;
  res.snapshots = d.snapshots.length;
  res.metrics = metricsFor(S.sel);
  res.selected = S.sel;
  res.nodes = M.n;
  // Diff: against each other snapshot until one colours a node.
  if (d.snapshots.length < 2) {
    res.diff_ok = null;
  } else {
    const before = ERRORS.length;
    let coloured = 0;
    try {
      for (let i = 0; i < d.snapshots.length && !coloured; i++) {
        if (i === S.sel) continue;
        setBase(i);
        coloured = Flame.grown;
      }
    } catch (e) {
      ERRORS.push('diff: ' + e);
    }
    res.diff_ok = coloured > 0 && ERRORS.length === before;
  }
  res.ui_ok = uiCheck();
  // Back to what the user had.
  S.metric = saved.metric; S.zoom = saved.zoom;
  setBase(saved.base);
  setSearch(saved.search, false);
  res.drawn = Flame.count;
  res.render_ms = TIMING.render_ms;      // parse + first render
  // Redraw cost, best of three (the machine may be busy).
  res.layout_ms = res.paint_ms = Infinity;
  for (let k = 0; k < 3; k++) {
    const t1 = performance.now();
    Flame.layout();
    const t2 = performance.now();
    Flame.paint();
    const t3 = performance.now();
    res.layout_ms = Math.min(res.layout_ms, Math.round((t2 - t1) * 10) / 10);
    res.paint_ms = Math.min(res.paint_ms, Math.round((t3 - t2) * 10) / 10);
  }
  res.load_ms = TIMING.load_ms;
  res.pass = !ERRORS.length && res.root_bytes === res.snapshot_live_bytes && res.top_function_present !== false &&
    res.zoom_ok !== false && res.snap_marks === res.snapshots && res.diff_ok !== false && res.ui_ok;
  let pre = document.getElementById('mt-selftest');
  if (!pre) { pre = el('pre', { id: 'mt-selftest' }); document.body.append(pre); }
  pre.textContent = JSON.stringify(res, null, 1);
  document.title = res.pass ? 'SELFTEST PASS' : 'SELFTEST FAIL';
  return res;
}

// Every control once, by real click events: each snapshot mark, each
// metric, each table grouping and sort header; true when each did its job
// and nothing went wrong. The selection, grouping and sort are restored.
function uiCheck() {
  const before = ERRORS.length, keep = { sel: S.sel, group: S.group, sortKey: S.sortKey, sortDir: S.sortDir };
  let ok = true;
  const click = (e) => e.dispatchEvent(new MouseEvent('click', { bubbles: true, cancelable: true, view: window }));
  const n = M.d.snapshots.length;
  for (let i = 0; i < n; i++) {
    const mark = document.querySelector('.mt-snap-mark[data-index="' + i + '"]');
    if (!mark) { ok = false; continue; }
    click(mark);
    ok = ok && S.sel === i && UI.snapSel.value === String(i);
  }
  selectSnapshot(keep.sel);
  for (const m of metricsFor(S.sel)) {
    const b = [...UI.metricSeg.querySelectorAll('button')].find((x) => x.textContent === METRIC_LABEL[m]);
    if (b) { click(b); ok = ok && S.metric === m; } else ok = false;
  }
  for (const g of Object.keys(GROUP_LABEL)) {
    const b = [...UI.table.querySelectorAll('.mt-seg button')].find((x) => x.textContent === GROUP_LABEL[g]);
    if (b && !b.disabled) { click(b); ok = ok && S.group === g; }
  }
  S.group = keep.group;
  renderTable(UI.table);
  for (let k = 0; k < COLS.length; k++) {
    const th = UI.table.querySelectorAll('th.sortable')[k];
    if (th) { click(th); ok = ok && S.sortKey === COLS[k][0]; }
  }
  Object.assign(S, keep);
  renderAll();
  return ok && ERRORS.length === before;
}

/* ---------------------------------------------------------------- 13. start */
function start() {
  const root = document.getElementById('mt-app') || document.body;
  const frag = fragment();
  try {
    M = buildModel(loadData());
    TIMING.load_ms = Math.round(performance.now() - TIMING.t0);
  } catch (e) {
    console.error('memtrail: ' + e.message);
    root.append(el('div', { class: 'mt-fatal' }, el('b', null, 'This report cannot be shown: '), e.message));
    if (frag.selftest) {
      document.body.append(el('pre', { id: 'mt-selftest', text: JSON.stringify({ pass: false, errors: ERRORS }) }));
      document.title = 'SELFTEST FAIL';
    }
    return;
  }
  // Default: the newest snapshot, but not a Python process's 'final' one
  // (taken after the interpreter's teardown) when an earlier one exists.
  const n = M.d.snapshots.length;
  S.sel = n - 1;
  while (S.sel > 0 && M.d.snapshots[S.sel].trigger === 'final') S.sel--;
  if (M.d.snapshots[S.sel].trigger === 'final') S.sel = n - 1;
  if (frag.snapshot != null && +frag.snapshot >= 0 && +frag.snapshot < n) S.sel = +frag.snapshot;
  buildPage(root);
  renderAll();
  TIMING.render_ms = Math.round(performance.now() - TIMING.t0);
  if (frag.selftest) {
    setTimeout(() => {
      try { selfTest(); } catch (e) { ERRORS.push('selftest: ' + e); selfTestFailed(); }
      if (frag.view) applyView(frag.view);
    }, 0);
  } else if (frag.view) {
    applyView(frag.view);
  }
  window.addEventListener('hashchange', () => { const f = fragment(); if (f.view) applyView(f.view); });
  window.memtrail = { model: M, state: S, selfTest, selectSnapshot, setBase, zoomTo };
}
function selfTestFailed() {
  document.body.append(el('pre', { id: 'mt-selftest', text: JSON.stringify({ pass: false, errors: ERRORS }) }));
  document.title = 'SELFTEST FAIL';
}

try {
  start();
} catch (e) {
  console.error('memtrail: ' + (e && e.stack || e));
  if (/selftest/.test(location.hash)) selfTestFailed();
}
})();
