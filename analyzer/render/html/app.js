/* memtrail html page, part 4 of 4: the page and its controls, the
 * self-test (#selftest) and the start. See base.js. */
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
  // The selected snapshot's notes, each shown in the header.
  const notes = (((anyReport(S.sel) || {}).snapshot || {}).notes) || [];
  const shown = [...document.querySelectorAll('.mt-snap-note')].map((e) => e.textContent);
  res.notes = notes.length;
  res.notes_shown = notes.filter((n) => shown.some((t) => t.includes(n))).length;
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
    res.zoom_ok !== false && res.snap_marks === res.snapshots && res.notes_shown === res.notes && res.diff_ok !== false && res.ui_ok;
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
