/* memtrail html: the report page's script, part 1 of 4 (base.js, flame.js,
 * views.js, app.js: embed.py joins them, in that order, in one function
 * scope under 'use strict').
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
 * 4 state, 5 tree values (this file); 6 flame graph (flame.js); 7 timeline,
 * 8 header, 9 table, 10 leaks and cycles (views.js); 11 page and
 * controls, 12 self-test, 13 start (app.js).
 *
 * Numbers: sizes and counts are plain JavaScript numbers (doubles), exact up
 * to 2^53 bytes (8 PiB), far above any real heap, so no BigInt is needed.
 * The ns timestamps (about 1.8e18) are not exact as doubles; only their
 * differences in seconds are shown, where an error of some 100 ns is nil.
 */
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
  const where = loc ? loc + (mod && f.kind !== 'python' ? ' [' + mod + ']' : '') : mod ? '[' + mod + ']' : '';
  return f.inlined ? where + ' (inlined)' : where;   // a function inlined into the next frame
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
