/* memtrail html page, part 2 of 4: the icicle flame graph on a canvas
 * (layout of the zoomed subtree bounded by the pixels, search, diff
 * colours, hover outline). See base.js for the whole. */
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
