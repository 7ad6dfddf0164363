/* memtrail html page, part 3 of 4: the memory timeline (SVG, a mark per
 * snapshot), the header with the totals and the peak, the table of the top
 * sites, the leak records and the Python cycles. See base.js. */
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
    info.estimated ? el('span', { title: fmtInt(info.samples) + ' allocations sampled' }, el('b', null, 'estimates'),
      ': sampled by bytes, mean ', fmtBytes(info.sample_mean_bytes)) : null,
    el('span', { class: 'mono', title: s.path }, basename(s.path || '')));
  box.append(meta);
  // The snapshot's notes (report JSON's snapshot.notes, the text header's note: lines).
  for (const n of info.notes || []) box.append(el('div', { class: 'mt-note mt-snap-note' }, 'Note: ' + n));
  if (!r) { box.append(el('p', { class: 'mt-empty', text: 'No report data for this snapshot.' })); return; }
  // When the peak happened and its largest site (report entries by peak_bytes).
  let peakWhen = null;
  if (r.peak_time_ns && info.start_ns) peakWhen = (r.peak_time_ns - info.start_ns) / 1e9;
  const lines = report(S.sel, 'line') || r;
  let top = null;
  for (const e of lines.entries || []) if (e.peak_bytes != null && (!top || e.peak_bytes > top.peak_bytes)) top = e;
  const topFn = top && top.frames && top.frames[0] ? top.frames[0].function : '';
  const stats = el('div', { class: 'mt-stats' },
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: info.estimated ? 'Live (estimated)' : 'Live' }),
      el('div', { class: 'v', text: fmtBytes(r.total_bytes) }),
      el('div', { class: 'd', text: fmtInt(r.total_bytes) + ' B in ' + plural(r.total_blocks, 'block') })),
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: info.estimated ? 'Peak (estimated)' : 'Peak' }),
      el('div', { class: 'v', text: fmtBytes(r.peak_bytes) }),
      el('div', { class: 'd' }, fmtInt(r.peak_bytes) + ' B' + (peakWhen != null && peakWhen >= 0 ? ' at ' + fmtSec(peakWhen) : '')),
      top ? el('div', { class: 'd', title: top.key }, 'largest site then: ', el('b', null, topFn || top.key),
        ' ' + fmtBytes(top.peak_bytes) + (r.peak_bytes ? ' (' + fmtPct(top.peak_bytes / r.peak_bytes) + ')' : '')) : null),
    el('div', { class: 'mt-stat' }, el('div', { class: 'k', text: info.estimated ? 'Allocated (estimated)' : 'Allocated' }),
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
