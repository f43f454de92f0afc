"use strict";
(async function () {
const D = JSON.parse(document.getElementById("atlas-data").textContent);
const $ = (id) => document.getElementById(id);
const status = $("status");
const VIRIDIS = [[68,1,84],[72,36,117],[65,68,135],[53,95,141],[42,120,142],[33,145,140],[34,168,132],[68,191,112],[122,209,81],[189,223,38],[253,231,37]];
function viridis(t) {
  if (!(t >= 0)) t = 0; if (t > 1) t = 1;
  const x = t * (VIRIDIS.length - 1), i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  const a = VIRIDIS[i], b = VIRIDIS[i + 1];
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}
function hexRGB(h) { return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)]; }
// names (classes, sets, regions) are text, never markup
function esc(t) { return String(t).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"})[c]); }
const finite = Number.isFinite;
function rgbCSS(c) { return "rgb(" + Math.round(c[0]) + "," + Math.round(c[1]) + "," + Math.round(c[2]) + ")"; }
// ImageData words are little-endian RGBA: A is the high byte
function packRGBA(c, a) { return ((a << 24) | (Math.round(c[2]) << 16) | (Math.round(c[1]) << 8) | Math.round(c[0])) >>> 0; }

function b64bytes(s) {
  const bin = atob(s), u = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
  return u;
}
async function inflate(s) {
  const stream = new Blob([b64bytes(s)]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
// chunked row data (images, activations), inflated on first use
function chunked(spec, rowLen) {
  const cache = new Map();
  return async function row(i) {
    const c = Math.floor(i / D.chunk_rows);
    if (!cache.has(c)) cache.set(c, inflate(spec.chunks[c]));
    const bytes = await cache.get(c), off = (i - c * D.chunk_rows) * rowLen;
    return bytes.subarray(off, off + rowLen);
  };
}

const K = D.classes.length, classRGB = D.colors.map(hexRGB);
const sets = [];
for (const s of D.sets) {
  const set = {name: s.name, n: s.n, visible: true,
    z: new Float32Array((await inflate(s.z)).buffer),
    labels: await inflate(s.labels), predicted: await inflate(s.predicted),
    logErr: s.log10_error ? new Float32Array((await inflate(s.log10_error)).buffer) : null};
  if (s.image) {
    set.image = s.image;
    set.imageRow = chunked(s.image, s.image.channels * s.image.height * s.image.width);
  }
  if (s.activations) set.actRow = chunked(s.activations, D.network.units);
  if (s.attributions) {
    const a = s.attributions, rows = new Int32Array((await inflate(a.rows)).buffer);
    set.attrOf = new Int32Array(s.n).fill(-1);
    rows.forEach((r, j) => { set.attrOf[r] = j; });
    set.attr = {m: a.m, invert: a.invert, regions: a.regions, maps: []};
    for (const mp of a.maps) set.attr.maps.push({name: mp.name, scale: new Float32Array((await inflate(mp.scale)).buffer),
      row: chunked(mp, s.image.height * s.image.width)});
  }
  sets.push(set);
}
const attrSets = sets.filter((s) => s.attr);
const hiddenClass = new Uint8Array(K);
let total = 0;
for (const s of sets) total += s.n;

// ---- colours per mode ----------------------------------------------------------------------
let logMin = Infinity, logMax = -Infinity;
{
  const all = [];
  for (const s of sets) if (s.logErr) for (let i = 0; i < s.n; i += Math.max(1, Math.floor(s.n / 5000))) {
    if (finite(s.logErr[i])) all.push(s.logErr[i]);
  }
  all.sort((a, b) => a - b);
  if (all.length) { logMin = all[Math.floor(all.length * 0.01)]; logMax = all[Math.floor(all.length * 0.99)]; }
  if (!(logMax > logMin)) { logMin = -8; logMax = 0; }
}
const MODES = {class: "class", correct: "correct / misclassified", error: "log10 e_hat"};
let mode = "class";
function colourSets() {
  for (const s of sets) {
    const col = new Uint32Array(s.n), key = new Float32Array(s.n);
    for (let i = 0; i < s.n; i++) {
      if (mode === "class") { col[i] = packRGBA(classRGB[s.labels[i]], 255); key[i] = 0; }
      else if (mode === "correct") {
        const ok = s.labels[i] === s.predicted[i];
        col[i] = ok ? packRGBA([170, 190, 210], 255) : packRGBA([214, 39, 40], 255); key[i] = ok ? 0 : 1;
      } else {
        // -inf (e_hat 0) is the low end, +inf the high end, NaN drawn low and grey
        const v = s.logErr ? s.logErr[i] : logMin, known = v === v;
        col[i] = known ? packRGBA(viridis((v - logMin) / (logMax - logMin)), 255) : packRGBA([190, 190, 190], 255);
        key[i] = known ? Math.max(-3e38, Math.min(3e38, v)) : -3.4e38;
      }
    }
    // draw order: misclassified and high errors last, so on top
    const order = new Uint32Array(s.n);
    for (let i = 0; i < s.n; i++) order[i] = i;
    if (mode !== "class") order.sort((a, b) => key[a] - key[b]);
    s.colour = col; s.order = order;
  }
}
colourSets();

// ---- view ------------------------------------------------------------------------------------
const canvas = $("map"), ctx = canvas.getContext("2d");
const pointsCanvas = document.createElement("canvas"), pctx = pointsCanvas.getContext("2d");
let W = 0, H = 0, dpr = 1, img = null, words = null;
let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
// a point whose latent is not finite is not drawn, found or counted in the extent
const placed = (s, i) => finite(s.z[2 * i]) && finite(s.z[2 * i + 1]);
for (const s of sets) for (let i = 0; i < s.n; i++) {
  if (!placed(s, i)) continue;
  const x = s.z[2 * i], y = s.z[2 * i + 1];
  if (x < xmin) xmin = x; if (x > xmax) xmax = x; if (y < ymin) ymin = y; if (y > ymax) ymax = y;
}
// one point, or points on a line: a window of 8 around them
if (!(xmax > xmin)) { const c = finite(xmin) ? xmin : 0; xmin = c - 4; xmax = c + 4; }
if (!(ymax > ymin)) { const c = finite(ymin) ? ymin : 0; ymin = c - 4; ymax = c + 4; }
const view = {cx: 0, cy: 0, scale: 1};
let baseScale = 1;
function resetView() {
  view.cx = (xmin + xmax) / 2; view.cy = (ymin + ymax) / 2;
  view.scale = baseScale = 0.92 * Math.min(W / (xmax - xmin), H / (ymax - ymin));
}
function toScreen(x, y) { return [W / 2 + (x - view.cx) * view.scale, H / 2 - (y - view.cy) * view.scale]; }
function toData(px, py) { return [view.cx + (px - W / 2) / view.scale, view.cy - (py - H / 2) / view.scale]; }
function resize() {
  dpr = window.devicePixelRatio || 1;
  const r = canvas.getBoundingClientRect();
  W = Math.max(1, Math.round(r.width * dpr)); H = Math.max(1, Math.round(r.height * dpr));
  canvas.width = pointsCanvas.width = W; canvas.height = pointsCanvas.height = H;
  img = pctx.createImageData(W, H); words = new Uint32Array(img.data.buffer);
}

// the estimated error as a background image over [-lim, lim]^2
let heatCanvas = null, showHeat = !!D.heat;
if (D.heat) {
  const g = D.heat.values, rows = g.length, cols = g[0].length;
  let lo = Infinity, hi = -Infinity;
  for (const r of g) for (const v of r) if (finite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!(hi >= lo)) { lo = 0; hi = 1; } // no finite cell
  heatCanvas = document.createElement("canvas"); heatCanvas.width = cols; heatCanvas.height = rows;
  const hctx = heatCanvas.getContext("2d"), hd = hctx.createImageData(cols, rows);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) {
    const v = g[i][j], c = viridis((v - lo) / (hi - lo || 1)), k = ((rows - 1 - i) * cols + j) * 4; // row 1 is the bottom
    hd.data[k] = c[0]; hd.data[k + 1] = c[1]; hd.data[k + 2] = c[2]; hd.data[k + 3] = finite(v) ? 110 : 0; // blank: no value
  }
  hctx.putImageData(hd, 0, 0);
  D.heat.lo = lo; D.heat.hi = hi;
}

const overlayOn = D.overlays.map(() => true);
let hovered = null, selected = null, dirty = true, renderMs = 0;
function render() {
  const t0 = performance.now();
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
  if (heatCanvas && showHeat) {
    const [x0, y0] = toScreen(-D.heat.lim, D.heat.lim);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(heatCanvas, x0, y0, 2 * D.heat.lim * view.scale, 2 * D.heat.lim * view.scale);
  }
  words.fill(0);
  // discs that grow as one zooms in, larger when there are few points
  const zoom = view.scale / baseScale, base = total > 20000 ? 2 : 4;
  const r = Math.max(2, Math.min(12, Math.round(dpr * base * Math.sqrt(zoom)))), half = r >> 1;
  const disc = [];
  for (let dy = 0; dy < r; dy++) for (let dx = 0; dx < r; dx++) {
    const ex = dx - (r - 1) / 2, ey = dy - (r - 1) / 2;
    if (r < 4 || ex * ex + ey * ey <= (r / 2) * (r / 2)) disc.push(dy * W + dx);
  }
  const nd = disc.length;
  const ox = W / 2 - view.cx * view.scale, oy = H / 2 + view.cy * view.scale, sc = view.scale;
  let drawn = 0;
  for (const s of sets) {
    if (!s.visible) continue;
    const z = s.z, col = s.colour, order = s.order, lab = s.labels;
    for (let k = 0; k < s.n; k++) {
      const i = order[k];
      if (hiddenClass[lab[i]]) continue;
      const px = Math.round(ox + z[2 * i] * sc) - half, py = Math.round(oy - z[2 * i + 1] * sc) - half;
      if (!(px >= 0 && py >= 0 && px + r <= W && py + r <= H)) continue; // off screen, or not finite
      const c = col[i];
      const at = py * W + px;
      for (let k2 = 0; k2 < nd; k2++) words[at + disc[k2]] = c;
      drawn++;
    }
  }
  pctx.putImageData(img, 0, 0);
  ctx.drawImage(pointsCanvas, 0, 0);
  D.overlays.forEach((ov, j) => {
    if (!overlayOn[j]) return;
    ctx.strokeStyle = ctx.fillStyle = ov.color; ctx.lineWidth = 1.5 * dpr;
    const pts = ov.z.map((p) => toScreen(p[0], p[1]));
    if (!pts.length) return;
    if (ov.kind === "path") {
      ctx.beginPath(); pts.forEach((p, k) => k ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])); ctx.stroke();
      const a = pts[0], b = pts[pts.length - 1];
      ctx.beginPath(); ctx.arc(a[0], a[1], 4 * dpr, 0, 7); ctx.stroke();
      ctx.beginPath(); ctx.arc(b[0], b[1], 3 * dpr, 0, 7); ctx.fill();
    } else {
      for (const p of pts) { ctx.beginPath(); ctx.arc(p[0], p[1], 2.2 * dpr, 0, 7); ctx.fill(); }
    }
  });
  if (region && region.members.length <= 5000) {
    ctx.strokeStyle = "#000"; ctx.lineWidth = 1 * dpr;
    for (const m of region.members) {
      const [x, y] = toScreen(m.set.z[2 * m.i], m.set.z[2 * m.i + 1]);
      ctx.beginPath(); ctx.arc(x, y, 4 * dpr, 0, 7); ctx.stroke();
    }
  }
  if (brush) {
    const [ax, ay] = toScreen(brush[0], brush[1]), [bx, by] = toScreen(brush[2], brush[3]);
    ctx.strokeStyle = "#000"; ctx.lineWidth = 1.5 * dpr; ctx.setLineDash([6 * dpr, 4 * dpr]);
    ctx.strokeRect(ax, by, bx - ax, ay - by); ctx.setLineDash([]);
  }
  for (const [pt, colour] of [[selected, "#000"], [hovered, "#e6007e"]]) {
    if (!pt) continue;
    const [x, y] = toScreen(pt.set.z[2 * pt.i], pt.set.z[2 * pt.i + 1]);
    ctx.strokeStyle = colour; ctx.lineWidth = 2 * dpr;
    ctx.beginPath(); ctx.arc(x, y, 6 * dpr, 0, 7); ctx.stroke();
  }
  renderMs = performance.now() - t0;
  status.textContent = drawn.toLocaleString("en") + " points drawn in " + renderMs.toFixed(1) + " ms";
  dirty = false;
}
function frame() { if (dirty) render(); requestAnimationFrame(frame); }

// ---- nearest point: a uniform grid over the latents --------------------------------------------
const G = 256, cellStart = new Int32Array(G * G + 1);
const gx = (x) => Math.min(G - 1, Math.max(0, Math.floor((x - xmin) / (xmax - xmin) * G)));
const gy = (y) => Math.min(G - 1, Math.max(0, Math.floor((y - ymin) / (ymax - ymin) * G)));
const itemSet = new Uint16Array(total), itemIdx = new Int32Array(total);
{
  for (const s of sets) for (let i = 0; i < s.n; i++) if (placed(s, i)) cellStart[gy(s.z[2 * i + 1]) * G + gx(s.z[2 * i]) + 1]++;
  for (let c = 0; c < G * G; c++) cellStart[c + 1] += cellStart[c];
  const fill = cellStart.slice(0, G * G);
  sets.forEach((s, si) => { for (let i = 0; i < s.n; i++) {
    if (!placed(s, i)) continue;
    const c = gy(s.z[2 * i + 1]) * G + gx(s.z[2 * i]), at = fill[c]++;
    itemSet[at] = si; itemIdx[at] = i;
  } });
}
function nearest(px, py, radiusPx) {
  const [x, y] = toData(px, py), rd = radiusPx / view.scale;
  let best = null, bestD = rd * rd;
  for (let cy = gy(y - rd); cy <= gy(y + rd); cy++) for (let cx = gx(x - rd); cx <= gx(x + rd); cx++) {
    const c = cy * G + cx;
    for (let k = cellStart[c]; k < cellStart[c + 1]; k++) {
      const s = sets[itemSet[k]], i = itemIdx[k];
      if (!s.visible || hiddenClass[s.labels[i]]) continue;
      const dx = s.z[2 * i] - x, dy = s.z[2 * i + 1] - y, d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = {set: s, i: i}; }
    }
  }
  return best;
}

// ---- images, tooltip, selection ----------------------------------------------------------------
// whether the page holds point i's image (a large set keeps its first rows' only)
const hasImage = (s, i) => !!s.image && i < (s.image.rows ?? s.n);
// wanted(): whether the image is still wanted once its row is inflated (the pointer may have moved on)
async function drawImage(target, s, i, wanted) {
  if (!hasImage(s, i)) { target.width = target.height = 1; return false; }
  const {channels: C, height: h, width: w} = s.image, px = await s.imageRow(i);
  if (wanted && !wanted()) return false;
  target.width = w; target.height = h;
  const tctx = target.getContext("2d"), d = tctx.createImageData(w, h);
  for (let p = 0; p < h * w; p++) {
    for (let c = 0; c < 3; c++) d.data[4 * p + c] = px[(C === 1 ? 0 : c) * h * w + p];
    d.data[4 * p + 3] = 255;
  }
  tctx.putImageData(d, 0, 0);
  return true;
}
function describe(s, i) {
  const t = s.labels[i], p = s.predicted[i], ok = t === p;
  let html = "<div><b id=\"tip-set\">" + esc(s.name) + " #" + (i + 1) + "</b></div>" +
    "<div id=\"tip-true\">true: " + esc(D.classes[t]) + "</div>" +
    "<div id=\"tip-pred\" class=\"" + (ok ? "" : "wrong") + "\">predicted: " + esc(D.classes[p]) + (ok ? "" : " (wrong)") + "</div>";
  if (s.logErr) html += "<div id=\"tip-ehat\" data-log10=\"" + s.logErr[i] + "\">e_hat: " +
    Math.pow(10, s.logErr[i]).toExponential(2) + " (log10 " + s.logErr[i].toFixed(2) + ")</div>";
  if (s.image && !hasImage(s, i)) html += "<div id=\"tip-noimage\">image not stored: the page keeps the first " +
    s.image.rows + " of this set's " + s.n + " images</div>";
  return html;
}
const tooltip = $("tooltip"), tipText = $("tip-text"), tipImage = $("tip-image");
let tipToken = 0, tipImageReady = false;
async function showTooltip(pt, clientX, clientY) {
  const token = ++tipToken;
  tipImageReady = false;
  tipText.innerHTML = describe(pt.set, pt.i);
  tipImage.style.display = hasImage(pt.set, pt.i) ? "" : "none";
  tooltip.hidden = false;
  const r = $("view").getBoundingClientRect(), tw = tooltip.offsetWidth, th = tooltip.offsetHeight;
  let x = clientX - r.left + 14, y = clientY - r.top + 14;
  if (x + tw > r.width) x -= tw + 28; if (y + th > r.height) y -= th + 28;
  tooltip.style.left = Math.max(0, x) + "px"; tooltip.style.top = Math.max(0, y) + "px";
  const ok = await drawImage(tipImage, pt.set, pt.i, () => token === tipToken);
  if (token === tipToken) tipImageReady = ok;
}
function hideTooltip() { tipToken++; tooltip.hidden = true; }

// ---- attributions: a diverging map (blue < 0 < red, white at 0) over the grey input ---------------------
// as lm.explain.colorize: t = a / max|a| in [-1, 1] between the grey background (0.45 + 0.55 g, or
// 1 - 0.55 g for ink on paper) and RdBu's red (t > 0) or blue (t < 0) end
const POSITIVE = [0.792, 0.000, 0.125], NEGATIVE = [0.020, 0.443, 0.690];
// the values of attribution row j of a map, decoded: (q - 128) / 127 * scale
async function attrValues(map, j) {
  const q = await map.row(j), s = map.scale[j], v = new Float32Array(q.length);
  for (let p = 0; p < q.length; p++) v[p] = (q[p] - 128) / 127 * s;
  return v;
}
// the grey level 0..1 of each pixel of image row bytes (channels averaged)
function greyOf(s, px) {
  const {channels: C, height: h, width: w} = s.image, g = new Float32Array(h * w);
  for (let p = 0; p < h * w; p++) { let t = 0; for (let c = 0; c < C; c++) t += px[c * h * w + p]; g[p] = t / C / 255; }
  return g;
}
function drawAttribution(target, values, grey, w, h, invert) {
  let vmax = 0;
  for (const v of values) if (Math.abs(v) > vmax) vmax = Math.abs(v);
  if (!(vmax > 0)) vmax = 1;
  target.width = w; target.height = h;
  const tctx = target.getContext("2d"), d = tctx.createImageData(w, h);
  for (let p = 0; p < w * h; p++) {
    const t = Math.max(-1, Math.min(1, values[p] / vmax)), pos = Math.max(t, 0), neg = Math.max(-t, 0);
    const g = Math.max(0, Math.min(1, grey[p])), base = invert ? 1 - 0.55 * g : 0.45 + 0.55 * g;
    for (let c = 0; c < 3; c++) d.data[4 * p + c] = Math.round(255 * (base * (1 - pos - neg) + pos * POSITIVE[c] + neg * NEGATIVE[c]));
    d.data[4 * p + 3] = 255;
  }
  tctx.putImageData(d, 0, 0);
  return vmax;
}
function greyCanvas(target, grey, w, h, invert) {
  target.width = w; target.height = h;
  const tctx = target.getContext("2d"), d = tctx.createImageData(w, h);
  for (let p = 0; p < w * h; p++) {
    const v = Math.round(255 * (invert ? 1 - grey[p] : grey[p]));
    d.data[4 * p] = d.data[4 * p + 1] = d.data[4 * p + 2] = v; d.data[4 * p + 3] = 255;
  }
  tctx.putImageData(d, 0, 0);
}
// figures (a canvas with a caption) into box: [{name, values, grey}], one per map; returns what each drew
function attrFigures(box, s, maps, grey, first) {
  const {height: h, width: w} = s.image, out = [];
  if (first) {
    const f = document.createElement("figure"), c = document.createElement("canvas");
    greyCanvas(c, grey, w, h, s.attr.invert);
    const cap = document.createElement("figcaption"); cap.textContent = first;
    f.appendChild(c); f.appendChild(cap); box.appendChild(f);
  }
  for (const m of maps) {
    const f = document.createElement("figure"), c = document.createElement("canvas");
    const vmax = drawAttribution(c, m.values, grey, w, h, s.attr.invert);
    const cap = document.createElement("figcaption"); cap.textContent = m.name;
    cap.title = "blue lowers the score, red raises it; full colour at |a| = " + vmax.toExponential(2);
    f.appendChild(c); f.appendChild(cap); box.appendChild(f);
    out.push({name: m.name, vmax: vmax, values: Array.from(m.values), canvas: c});
  }
  return out;
}
const ATTR_NOTE = "Input attributions over the grey input: red raises the score named, blue lowers it, white is 0; " +
  "each map is scaled by its largest |value| (hover a caption for it).";
let selectedAttr = null;
async function showAttributions(pt) {
  const box = $("sel-attr");
  selectedAttr = null;
  if (!box) return;
  box.innerHTML = "";
  const j = pt && pt.set.attr ? pt.set.attrOf[pt.i] : -1;
  if (!pt) return;
  if (j < 0) {
    box.innerHTML = "<div class=\"muted\">Attributions are stored for " + attrSets.map((s) => s.attr.m + " points of the " +
      esc(s.name) + " set").join(", ") + " (shift-drag on the map for a region's mean).</div>";
    return;
  }
  const s = pt.set, grey = greyOf(s, await s.imageRow(pt.i)), maps = [];
  for (const m of s.attr.maps) maps.push({name: m.name, values: await attrValues(m, j)});
  if (selected !== pt) return;
  const figs = document.createElement("div"); figs.className = "attr-figs"; box.appendChild(figs);
  selectedAttr = attrFigures(figs, s, maps, grey, null);
  const note = document.createElement("div"); note.className = "muted"; note.textContent = ATTR_NOTE; box.appendChild(note);
}

// the mean attributions of the attributed points of a region (rows of one set, or a rectangle of the map)
let region = null, brush = null, namedRegions = [];
async function showRegion(name, members) {
  const box = $("region-attr");
  box.innerHTML = "";
  region = {name: name, members: members, n: 0, maps: null};
  const first = attrSets[0];
  const use = members.filter((m) => m.set.attr && m.set.attrOf[m.i] >= 0 && m.set.image.height === first.image.height &&
    m.set.image.width === first.image.width && m.set.attr.maps.length === first.attr.maps.length);
  const hw = first.image.height * first.image.width, mine = region;
  const sums = first.attr.maps.map(() => new Float64Array(hw)), grey = new Float64Array(hw);
  for (const m of use) {
    const g = greyOf(m.set, await m.set.imageRow(m.i)), j = m.set.attrOf[m.i];
    for (let p = 0; p < hw; p++) grey[p] += g[p];
    for (let k = 0; k < sums.length; k++) {
      const v = await attrValues(m.set.attr.maps[k], j);
      for (let p = 0; p < hw; p++) sums[k][p] += v[p];
    }
  }
  if (region !== mine) return;
  const n = use.length;
  region.n = n; dirty = true;
  const head = document.createElement("div");
  head.id = "region-info";
  head.textContent = name + ": " + n + " attributed point" + (n === 1 ? "" : "s") + (n ? ", mean image and mean attributions" : "");
  box.appendChild(head);
  if (!n) return;
  const mean = (a) => Float32Array.from(a, (v) => v / n);
  const figs = document.createElement("div"); figs.className = "attr-figs"; box.appendChild(figs);
  region.maps = attrFigures(figs, first, first.attr.maps.map((m, k) => ({name: "mean " + m.name, values: mean(sums[k])})),
    mean(grey), "mean image");
}
function regionOfRows(set, r) {
  return {name: r.name, members: r.rows.map((i) => ({set: set, i: i - 1}))};
}
function brushRegion(x0, y0, x1, y1) {
  const lx = Math.min(x0, x1), hx = Math.max(x0, x1), ly = Math.min(y0, y1), hy = Math.max(y0, y1), members = [];
  for (const s of attrSets) {
    if (!s.visible) continue;
    for (let i = 0; i < s.n; i++) {
      if (s.attrOf[i] < 0 || hiddenClass[s.labels[i]]) continue;
      const x = s.z[2 * i], y = s.z[2 * i + 1];
      if (x >= lx && x <= hx && y >= ly && y <= hy) members.push({set: s, i: i});
    }
  }
  brush = [lx, ly, hx, hy];
  return showRegion("rectangle z1 " + lx.toFixed(2) + ".." + hx.toFixed(2) + ", z2 " + ly.toFixed(2) + ".." + hy.toFixed(2), members);
}

let selectedActs = null;
async function select(pt) {
  selected = pt; dirty = true;
  const info = $("sel-info"), net = $("network");
  if (!pt) {
    info.innerHTML = "<span class=\"muted\">Click a point to see its input and activation pattern" +
      (attrSets.length ? " and attributions" : "") + ".</span>";
    if (attrSets.length) await showAttributions(null);
    return;
  }
  info.innerHTML = describe(pt.set, pt.i).replace(/id="tip-/g, "id=\"sel-");
  $("sel-image").style.display = hasImage(pt.set, pt.i) ? "" : "none";
  await drawImage($("sel-image"), pt.set, pt.i, () => selected === pt);
  if (selected !== pt) return;
  if (attrSets.length) await showAttributions(pt);
  if (selected !== pt) return;
  selectedActs = null;
  if (!pt.set.actRow) {
    net.style.display = "none";
    $("net-note").textContent = D.network ? "Activation patterns are stored for the " +
      sets.filter((s) => s.actRow).map((s) => s.name).join(", ") + " set only." : "";
    return;
  }
  const acts = await pt.set.actRow(pt.i);
  if (selected !== pt) return;
  selectedActs = acts;
  drawNetwork(net, acts);
  $("net-note").textContent = "Each row is a layer (layer 1 at the bottom), each cell a unit, sorted by the class that " +
    "drives it most (band below each row); colour: the unit's activation relative to its range over the set.";
}
function drawNetwork(net, acts) {
  const L = D.network.layer_sizes.length, rowH = 16, band = 3, gap = 3, w = 400;
  net.style.display = "";
  net.width = w; net.height = L * (rowH + band + gap);
  const nctx = net.getContext("2d");
  nctx.fillStyle = "#fff"; nctx.fillRect(0, 0, net.width, net.height);
  let base = 0;
  for (let l = 0; l < L; l++) {
    const n = D.network.layer_sizes[l], order = D.network.orders ? D.network.orders[l] : null;
    const y = (L - 1 - l) * (rowH + band + gap), cw = w / n;
    for (let k = 0; k < n; k++) {
      const u = order ? order[k] - 1 : base + k; // orders hold 1-based indices into the whole vector
      nctx.fillStyle = rgbCSS(viridis(acts[u] / 255));
      nctx.fillRect(Math.floor(k * cw), y, Math.ceil(cw), rowH);
      if (D.network.unit_classes) {
        nctx.fillStyle = D.colors[D.network.unit_classes[u] - 1];
        nctx.fillRect(Math.floor(k * cw), y + rowH, Math.ceil(cw), band);
      }
    }
    base += n;
  }
}

// ---- controls and legend -----------------------------------------------------------------------
const modeSel = $("color-mode");
for (const [k, v] of Object.entries(MODES)) {
  if (k === "error" && !sets.some((s) => s.logErr)) continue;
  const o = document.createElement("option"); o.value = k; o.textContent = v; modeSel.appendChild(o);
}
function setMode(m) { mode = m; modeSel.value = m; colourSets(); legend(); dirty = true; }
modeSel.onchange = () => setMode(modeSel.value);
function checkbox(parent, text, on, fn, id) {
  const l = document.createElement("label"), c = document.createElement("input");
  c.type = "checkbox"; c.checked = on; if (id) c.id = id;
  c.onchange = () => { fn(c.checked); dirty = true; };
  l.appendChild(c); l.appendChild(document.createTextNode(text)); parent.appendChild(l);
}
sets.forEach((s) => checkbox($("set-toggles"), s.name + " (" + s.n.toLocaleString("en") + ")", true, (v) => { s.visible = v; }, "show-" + s.name));
if (heatCanvas) checkbox($("set-toggles"), "error heat map", true, (v) => { showHeat = v; }, "show-heat");
if (D.overlays.length) {
  $("overlay-box").hidden = false;
  D.overlays.forEach((ov, j) => {
    const l = document.createElement("div");
    checkbox(l, "", true, (v) => { overlayOn[j] = v; }, "overlay-" + (j + 1));
    const sw = document.createElement("span"); sw.className = "swatch"; sw.style.background = ov.color;
    l.firstChild.appendChild(sw); l.firstChild.appendChild(document.createTextNode(" " + ov.name));
    $("overlays").appendChild(l);
  });
}
function legend() {
  const box = $("legend"); box.innerHTML = "";
  if (heatCanvas) {
    const note = document.createElement("div"); note.className = "muted";
    note.textContent = "Background: the estimator's log10 e_hat over the map, from " + D.heat.lo.toFixed(1) +
      " (dark) to " + D.heat.hi.toFixed(1) + " (yellow: errors expected).";
    box.appendChild(note);
  }
  if (mode === "class") {
    D.classes.forEach((name, k) => {
      const it = document.createElement("span"); it.className = "item" + (hiddenClass[k] ? " off" : "");
      it.innerHTML = "<span class=\"swatch\" style=\"background:" + D.colors[k] + "\"></span>" + esc(name);
      it.title = "click to hide or show this class";
      it.onclick = () => { hiddenClass[k] ^= 1; legend(); dirty = true; };
      box.appendChild(it);
    });
  } else if (mode === "correct") {
    box.innerHTML = "<span class=\"item\"><span class=\"swatch\" style=\"background:rgb(170,190,210)\"></span>correct</span>" +
      "<span class=\"item\"><span class=\"swatch\" style=\"background:rgb(214,39,40)\"></span>misclassified</span>";
  } else {
    const c = document.createElement("canvas"); c.width = 256; c.height = 1;
    const g = c.getContext("2d");
    for (let x = 0; x < 256; x++) { g.fillStyle = rgbCSS(viridis(x / 255)); g.fillRect(x, 0, 1, 1); }
    box.appendChild(c);
    const t = document.createElement("div"); t.className = "muted";
    t.textContent = "log10 e_hat from " + logMin.toFixed(2) + " to " + logMax.toFixed(2) + " (1st to 99th percentile)";
    box.appendChild(t);
  }
  const hidden = hiddenClass.reduce((a, b) => a + b, 0);
  if (hidden && mode !== "class") { // classes hidden in the class legend stay hidden: say so, and offer them back
    const note = document.createElement("div"); note.className = "muted"; note.id = "hidden-note";
    note.textContent = hidden + " class" + (hidden === 1 ? "" : "es") + " hidden ";
    const b = document.createElement("button"); b.textContent = "show all";
    b.onclick = () => { hiddenClass.fill(0); legend(); dirty = true; };
    note.appendChild(b); box.appendChild(note);
  }
}
legend();
if (attrSets.length) {
  // the attribution panels live beside the selection; made here so that a page without attributions is as before
  const sel = document.createElement("div"); sel.id = "sel-attr";
  $("network").parentNode.insertBefore(sel, $("network"));
  const h = document.createElement("h2"); h.textContent = "Region";
  const box = document.createElement("div"); box.id = "region-box";
  const pick = document.createElement("select"); pick.id = "region-select";
  const none = document.createElement("option"); none.value = ""; none.textContent = "choose a region"; pick.appendChild(none);
  const named = namedRegions;
  for (const s of attrSets) for (const r of s.attr.regions) {
    const o = document.createElement("option"); o.value = String(named.length); o.textContent = r.name;
    named.push(regionOfRows(s, r)); pick.appendChild(o);
  }
  pick.onchange = () => {
    brush = null;
    if (pick.value === "") { region = null; $("region-attr").innerHTML = ""; dirty = true; return; }
    const r = named[+pick.value]; showRegion(r.name, r.members);
  };
  const hint = document.createElement("div"); hint.className = "muted";
  hint.textContent = (named.length ? "Pick a region, or shift-drag" : "Shift-drag") +
    " a rectangle on the map: the mean image and mean attributions of its attributed points.";
  if (named.length) box.appendChild(pick);
  box.appendChild(hint);
  const out = document.createElement("div"); out.id = "region-attr"; box.appendChild(out);
  const aside = document.querySelector("aside");
  aside.appendChild(h); aside.appendChild(box);
}
$("reset").onclick = () => { resetView(); dirty = true; };

// ---- mouse: hover, click, drag to pan, wheel to zoom -------------------------------------------
const viewEl = $("view");
let drag = null;
function local(e) { const r = canvas.getBoundingClientRect(); return [(e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr]; }
viewEl.addEventListener("mousedown", (e) => {
  drag = {x: e.clientX, y: e.clientY, cx: view.cx, cy: view.cy, moved: false};
  if (e.shiftKey && attrSets.length) { const [px, py] = local(e); drag.brush = toData(px, py); }
});
window.addEventListener("mouseup", (e) => {
  if (drag && drag.brush && drag.moved) {
    const [px, py] = local(e), [x, y] = toData(px, py);
    if ($("region-select")) $("region-select").value = "";
    brushRegion(drag.brush[0], drag.brush[1], x, y);
  } else if (drag && !drag.moved) { const [px, py] = local(e); select(nearest(px, py, 8 * dpr)); }
  drag = null; viewEl.classList.remove("dragging");
});
viewEl.addEventListener("mousemove", (e) => {
  if (drag && drag.brush) {
    if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) drag.moved = true;
    const [px, py] = local(e), [x, y] = toData(px, py);
    brush = [Math.min(drag.brush[0], x), Math.min(drag.brush[1], y), Math.max(drag.brush[0], x), Math.max(drag.brush[1], y)];
    hideTooltip(); dirty = true; return;
  }
  if (drag) {
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) { drag.moved = true; viewEl.classList.add("dragging"); hideTooltip(); }
    if (drag.moved) { view.cx = drag.cx - dx * dpr / view.scale; view.cy = drag.cy + dy * dpr / view.scale; dirty = true; return; }
  }
  const [px, py] = local(e), pt = nearest(px, py, 8 * dpr);
  const same = pt && hovered && pt.set === hovered.set && pt.i === hovered.i;
  if (!same) { hovered = pt; dirty = true; }
  if (pt) { if (!same || tooltip.hidden) showTooltip(pt, e.clientX, e.clientY); } else hideTooltip();
});
viewEl.addEventListener("mouseleave", () => { hovered = null; hideTooltip(); dirty = true; });
viewEl.addEventListener("wheel", (e) => {
  e.preventDefault();
  const [px, py] = local(e), [x, y] = toData(px, py);
  view.scale *= Math.pow(1.0015, -e.deltaY);
  view.cx = x - (px - W / 2) / view.scale; view.cy = y + (py - H / 2) / view.scale; // keep the point under the cursor
  hideTooltip(); dirty = true;
}, {passive: false});
window.addEventListener("resize", () => { resize(); dirty = true; });

resize(); resetView(); select(null);
render(); requestAnimationFrame(frame);

function figureState(f) {
  return {name: f.name, vmax: f.vmax, values: f.values, width: f.canvas.width, height: f.canvas.height,
    pixels: Array.from(f.canvas.getContext("2d").getImageData(0, 0, f.canvas.width, f.canvas.height).data)};
}
// for tests and scripting from the console
window.atlas = {
  ready: true, sets: sets.map((s) => s.name),
  renderMs: () => renderMs,
  render: () => { render(); return renderMs; },
  view: () => ({cx: view.cx, cy: view.cy, scale: view.scale}),
  screenOf: (name, i) => {           // client coordinates of point i (1-based) of a set
    const s = sets.find((t) => t.name === name), r = canvas.getBoundingClientRect();
    const [x, y] = toScreen(s.z[2 * (i - 1)], s.z[2 * (i - 1) + 1]);
    return [r.left + x / dpr, r.top + y / dpr];
  },
  screenOfZ: (x, y) => {             // client coordinates of a place (z1, z2) on the map
    const r = canvas.getBoundingClientRect(), [sx, sy] = toScreen(x, y);
    return [r.left + sx / dpr, r.top + sy / dpr];
  },
  tooltip: () => ({visible: !tooltip.hidden, text: tipText.innerText, imageReady: tipImageReady,
    pixels: tipImageReady ? Array.from(tipImage.getContext("2d").getImageData(0, 0, tipImage.width, tipImage.height).data) : null}),
  selection: () => selected && {set: selected.set.name, index: selected.i + 1,
    activations: selectedActs ? Array.from(selectedActs) : null,
    attributions: selectedAttr && selectedAttr.map(figureState)},
  // the region shown: its name, attributed points and mean maps (values and drawn pixels)
  region: () => region && region.maps && {name: region.name, n: region.n, maps: region.maps.map(figureState)},
  regions: () => namedRegions.map((r) => r.name),
  showRegion: (k) => { const r = namedRegions[k - 1]; return showRegion(r.name, r.members); },
  brush: (x0, y0, x1, y1) => brushRegion(x0, y0, x1, y1),
  setMode: setMode,
};
})().catch((e) => { document.getElementById("status").textContent = "atlas error: " + e; console.error(e); });
