// The view of wasinn_jupyter.widgets.TensorWidget: an anywidget ES module with no imports (it works offline).
// Arrays arrive as binary buffers (DataView); everything here only draws what the kernel computed.
// Hooks for browser tests: .wasinn-tensor (root), .wt-tabs button[data-view], .wt-body[data-view],
// .wt-sliders input[type=range][data-axis], canvas.wt-pixels (heatmap, image), table.wt-grid (values).

const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
const DIVERGING = [[33, 102, 172], [103, 169, 207], [209, 229, 240], [247, 247, 247], [253, 219, 199],
  [239, 138, 98], [178, 24, 43]];
const NAN_RGB = [255, 0, 255];

function palette(anchors) {
  const out = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const at = (i / 255) * (anchors.length - 1);
    const k = Math.min(Math.floor(at), anchors.length - 2);
    const f = at - k;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(anchors[k][c] * (1 - f) + anchors[k + 1][c] * f);
  }
  return out;
}
const PALETTES = { viridis: palette(VIRIDIS), diverging: palette(DIVERGING), gray: palette([[0, 0, 0], [255, 255, 255]]) };

function bytesOf(value) {
  if (!value) return new Uint8Array(0);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(0);
}

// A typed array over a buffer, copied when its offset is not aligned for the element size.
function typed(value, Kind) {
  const raw = bytesOf(value);
  const aligned = raw.byteOffset % Kind.BYTES_PER_ELEMENT === 0 ? raw : raw.slice();
  return new Kind(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / Kind.BYTES_PER_ELEMENT));
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtNumber(x) {
  if (typeof x === "bigint") return x.toString();
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return x.toExponential(4);
  return String(Number(x.toPrecision(6)));
}

function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return u === 0 ? `${n} B` : `${n.toFixed(1)} ${units[u]}`;
}

function fitSize(rows, cols, maxW, maxH) {
  // CSS size for a rows x cols picture: keep the aspect, at most maxW x maxH, thin slices at least 12 px
  const scale = Math.min(maxW / cols, maxH / rows);
  return [Math.max(12, Math.round(cols * scale)), Math.max(12, Math.round(rows * scale))];
}

function render({ model, el: host }) {
  const root = el("div", "wasinn-tensor");
  host.appendChild(root);
  const head = el("div", "wt-head");
  const stats = el("div", "wt-stats");
  const notes = el("div", "wt-note");
  const tabs = el("div", "wt-tabs");
  const sliders = el("div", "wt-sliders");
  const body = el("div", "wt-body");
  const status = el("div", "wt-error");
  root.append(head, stats, notes, tabs, sliders, body, status);
  let cmap = "viridis";
  let logScale = false;

  function drawHead() {
    const s = model.get("summary") || {};
    head.replaceChildren();
    const name = model.get("name");
    if (name) head.append(el("span", "wt-name", name));
    head.append(el("span", "wt-type", `${s.dtype}[${(s.shape || []).join(", ")}]`));
    head.append(el("span", "wt-dim", s.device));
    head.append(el("span", "wt-dim", `${(s.numel || 0).toLocaleString()} values · ${fmtBytes(s.nbytes || 0)}`));
    stats.replaceChildren();
    const text = s.text || {};
    for (const key of ["min", "max", "mean", "std"]) {
      if (text[key] === undefined || text[key] === "—") continue;
      const item = el("span");
      item.append(el("b", "", key), document.createTextNode(text[key]));
      stats.append(item);
    }
    for (const [key, label] of [["nan", "NaN"], ["posinf", "+inf"], ["neginf", "-inf"]]) {
      if (s[key]) stats.append(el("span", "wt-badge", `${s[key].toLocaleString()} ${label}`));
    }
    const finiteNote = (s.nan || s.posinf || s.neginf) ? ["statistics over the finite values"] : [];
    notes.textContent = [...finiteNote, ...(s.notes || [])].join(" · ");
  }

  function drawTabs() {
    tabs.replaceChildren();
    const current = model.get("view");
    for (const view of model.get("views") || []) {
      const b = el("button", view === current ? "wt-on" : "", view);
      b.dataset.view = view;
      b.addEventListener("click", () => { model.set("view", view); model.save_changes(); });
      tabs.append(b);
    }
    tabs.style.display = (model.get("views") || []).length ? "" : "none";
  }

  // sliders: the kernel recomputes the slice; at most one request in flight per animation frame
  let pending = null;
  function sendIndex(index) {
    pending = index;
    requestAnimationFrame(() => {
      if (pending === null) return;
      model.set("index", pending);
      model.save_changes();
      pending = null;
    });
  }
  function drawSliders() {
    sliders.replaceChildren();
    const specs = model.get("sliders") || [];
    const index = model.get("index") || [];
    const live = model.get("live");
    specs.forEach((spec, i) => {
      const label = el("label", "", `axis ${spec.axis}`);
      const input = el("input");
      input.type = "range";
      input.min = "0";
      input.max = String(spec.size - 1);
      input.value = String(index[i] || 0);
      input.disabled = !live || spec.size < 2;
      input.dataset.axis = String(spec.axis);
      const out = el("output", "", `${index[i] || 0} / ${spec.size - 1}`);
      input.addEventListener("input", () => {
        const next = [...(model.get("index") || [])];
        next[i] = Number(input.value);
        out.textContent = `${input.value} / ${spec.size - 1}`;
        sendIndex(next);
      });
      sliders.append(label, input, out);
    });
    const view = model.get("view");
    sliders.style.display = specs.length && view !== "histogram" ? "" : "none";
  }

  function drawHeatmap() {
    const [rows, cols] = model.get("heatmap_shape") || [0, 0];
    const values = typed(model.get("heatmap"), Float32Array);
    const [srcRows, srcCols] = model.get("heatmap_source") || [rows, cols];
    const [stepR, stepC] = model.get("heatmap_step") || [1, 1];
    let [lo, hi] = model.get("heatmap_range") || [null, null];
    const wrap = el("div");
    const tools = el("div", "wt-tools");
    const select = el("select");
    for (const name of Object.keys(PALETTES)) {
      const o = el("option", "", name);
      o.value = name;
      o.selected = name === cmap;
      select.append(o);
    }
    select.addEventListener("change", () => { cmap = select.value; drawBody(); });
    tools.append(el("span", "wt-note", `slice ${srcRows}×${srcCols}, ${model.get("heatmap_note")}`), select);
    wrap.append(tools);
    if (!rows || !cols || values.length < rows * cols) {
      wrap.append(el("div", "wt-note", "nothing to draw"));
      return wrap;
    }
    if (lo === null || hi === null) { lo = 0; hi = 0; }
    if (cmap === "diverging") { const m = Math.max(Math.abs(lo), Math.abs(hi)); lo = -m; hi = m; }
    const lut = PALETTES[cmap];
    const canvas = el("canvas", "wt-pixels");
    canvas.width = cols;
    canvas.height = rows;
    const image = new ImageData(cols, rows);
    const span = hi > lo ? 255 / (hi - lo) : 0;
    for (let i = 0; i < rows * cols; i++) {
      const v = values[i];
      let r, g, b;
      if (Number.isNaN(v)) { [r, g, b] = NAN_RGB; } else {
        const k = Math.max(0, Math.min(255, Math.round((v - lo) * span))) * 3;
        r = lut[k]; g = lut[k + 1]; b = lut[k + 2];
      }
      image.data[i * 4] = r; image.data[i * 4 + 1] = g; image.data[i * 4 + 2] = b; image.data[i * 4 + 3] = 255;
    }
    canvas.getContext("2d").putImageData(image, 0, 0);
    const [w, h] = fitSize(srcRows, srcCols, 480, 360);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    const bar = el("canvas", "wt-pixels");
    bar.width = 1; bar.height = 256;
    const barImage = new ImageData(1, 256);
    for (let i = 0; i < 256; i++) {
      const k = (255 - i) * 3;
      barImage.data.set([lut[k], lut[k + 1], lut[k + 2], 255], i * 4);
    }
    bar.getContext("2d").putImageData(barImage, 0, 0);
    bar.style.width = "12px";
    bar.style.height = `${h}px`;
    const labels = el("div", "wt-bar");
    labels.style.height = `${h}px`;
    labels.append(el("span", "", fmtNumber(hi)), el("span", "", fmtNumber(lo)));
    const hover = el("div", "wt-hover");
    canvas.addEventListener("mousemove", (event) => {
      const box = canvas.getBoundingClientRect();
      const c = Math.min(cols - 1, Math.floor(((event.clientX - box.left) / box.width) * cols));
      const r = Math.min(rows - 1, Math.floor(((event.clientY - box.top) / box.height) * rows));
      const v = values[r * cols + c];
      const pooled = model.get("heatmap_pooled") !== false;
      const where = (i, step, size) => (pooled && step > 1 ? `${i * step}–${Math.min(size, (i + 1) * step) - 1}` : `${i * step}`);
      const what = pooled && (stepR > 1 || stepC > 1) ? "mean" : "value";
      hover.textContent = `row ${where(r, stepR, srcRows)}, col ${where(c, stepC, srcCols)}: ${what} ${fmtNumber(v)}`;
    });
    canvas.addEventListener("mouseleave", () => { hover.textContent = ""; });
    const row = el("div", "wt-row");
    row.append(canvas, bar, labels);
    wrap.append(row, hover);
    return wrap;
  }

  function drawImage() {
    const [rows, cols] = model.get("image_shape") || [0, 0];
    const data = bytesOf(model.get("image"));
    const wrap = el("div");
    wrap.append(el("div", "wt-note", model.get("image_note")));
    if (!rows || !cols || data.length < rows * cols * 4) return wrap;
    const canvas = el("canvas", "wt-pixels");
    canvas.width = cols;
    canvas.height = rows;
    canvas.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(data.slice(0, rows * cols * 4).buffer), cols, rows), 0, 0);
    const [w, h] = fitSize(rows, cols, 384, 384);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    wrap.append(canvas);
    return wrap;
  }

  function drawHistogram() {
    const counts = typed(model.get("histogram"), Float64Array);
    const [lo, hi] = model.get("histogram_range") || [0, 0];
    const integer = model.get("histogram_integer");
    const wrap = el("div");
    const tools = el("div", "wt-tools");
    const box = el("input");
    box.type = "checkbox";
    box.checked = logScale;
    box.addEventListener("change", () => { logScale = box.checked; drawBody(); });
    const label = el("label");
    label.append(box, document.createTextNode(" log scale"));
    const s = model.get("summary") || {};
    const shown = counts.reduce((a, b) => a + b, 0);
    tools.append(el("span", "wt-note", `${counts.length} bins, ${shown.toLocaleString()} finite values`), label);
    wrap.append(tools);
    if (!counts.length) return wrap;
    const W = 480, H = 150;
    const canvas = el("canvas");
    canvas.width = W * 2; canvas.height = H * 2;
    canvas.style.width = `${W}px`; canvas.style.height = `${H}px`;
    const ctx = canvas.getContext("2d");
    ctx.scale(2, 2);
    const height = (c) => (logScale ? Math.log10(1 + c) : c);
    const top = Math.max(...Array.from(counts, height)) || 1;
    const bw = W / counts.length;
    const style = getComputedStyle(root);
    ctx.fillStyle = style.getPropertyValue("--jp-brand-color1").trim() || "#1976d2";
    counts.forEach((c, i) => {
      const bh = (height(c) / top) * (H - 4);
      ctx.fillRect(i * bw + 0.5, H - bh, Math.max(1, bw - 1), bh);
    });
    const axis = el("div", "wt-tools");
    axis.style.justifyContent = "space-between";
    axis.style.width = `${W}px`;
    axis.append(el("span", "wt-note", fmtNumber(integer ? lo + 0.5 : lo)),
      el("span", "wt-note", fmtNumber(integer ? hi - 0.5 : hi)));
    const hover = el("div", "wt-hover");
    const width = (hi - lo) / counts.length;
    canvas.addEventListener("mousemove", (event) => {
      const rect = canvas.getBoundingClientRect();
      const i = Math.min(counts.length - 1, Math.floor(((event.clientX - rect.left) / rect.width) * counts.length));
      const a = lo + i * width;
      const range = integer && width === 1 ? `${fmtNumber(a + 0.5)}` : `[${fmtNumber(a)}, ${fmtNumber(a + width)})`;
      hover.textContent = `${range}: ${counts[i].toLocaleString()}`;
    });
    canvas.addEventListener("mouseleave", () => { hover.textContent = ""; });
    wrap.append(canvas, axis, hover);
    if (s.dtype === "bool") hover.textContent = `false: ${counts[0].toLocaleString()} · true: ${counts[1].toLocaleString()}`;
    return wrap;
  }

  function drawValues() {
    const [rows, cols] = model.get("grid_shape") || [0, 0];
    const kind = model.get("grid_dtype");
    const data = kind === "float64" ? typed(model.get("grid"), Float64Array)
      : kind === "int64" ? typed(model.get("grid"), BigInt64Array) : bytesOf(model.get("grid"));
    const wrap = el("div", "wt-gridwrap");
    const table = el("table", "wt-grid");
    const vector = rows === 1 && cols > 16;
    const width = vector ? 16 : cols;
    const height = vector ? Math.ceil(cols / 16) : rows;
    const headRow = el("tr");
    headRow.append(el("th", "", ""));
    for (let c = 0; c < width; c++) headRow.append(el("th", "", vector ? `+${c}` : String(c)));
    table.append(headRow);
    for (let r = 0; r < height; r++) {
      const tr = el("tr");
      tr.append(el("th", "", String(vector ? r * 16 : r)));
      for (let c = 0; c < width; c++) {
        const i = r * width + c;
        if (i >= rows * cols) { tr.append(el("td")); continue; }
        const v = data[i];
        tr.append(el("td", "", kind === "bool" ? (v ? "true" : "false") : fmtNumber(v)));
      }
      table.append(tr);
    }
    wrap.append(table);
    return wrap;
  }

  function drawBody() {
    const view = model.get("view");
    body.replaceChildren();
    body.dataset.view = view;
    const draw = { heatmap: drawHeatmap, image: drawImage, histogram: drawHistogram, values: drawValues }[view];
    if (draw && (model.get("views") || []).includes(view)) body.append(draw());
  }

  function drawStatus() {
    const messages = [];
    if (model.get("error")) messages.push(model.get("error"));
    else if (!model.get("live") && (model.get("sliders") || []).length) {
      messages.push("the kernel released this tensor: the sliders are off (run the cell again to explore it)");
    }
    status.textContent = messages.join(" ");
  }

  function syncSliders() {  // the kernel's index (clamped, or set from Python) without rebuilding a dragged slider
    const index = model.get("index") || [];
    sliders.querySelectorAll("input[type=range]").forEach((input, i) => {
      if (document.activeElement !== input) input.value = String(index[i] || 0);
      const out = input.nextElementSibling;
      if (out && document.activeElement !== input) out.textContent = `${index[i] || 0} / ${input.max}`;
    });
  }

  function drawAll() { drawHead(); drawTabs(); drawSliders(); drawBody(); drawStatus(); }
  const redrawBody = () => drawBody();
  const onView = () => { drawTabs(); drawSliders(); drawBody(); };
  const onLive = () => { drawSliders(); drawStatus(); };
  drawAll();
  model.on("change:view", onView);
  model.on("change:heatmap", redrawBody);
  model.on("change:image", redrawBody);
  model.on("change:grid", redrawBody);
  model.on("change:error", drawStatus);
  model.on("change:live", onLive);
  model.on("change:summary", drawHead);
  model.on("change:index", syncSliders);
  return () => {
    model.off("change:index", syncSliders);
    model.off("change:view", onView);
    model.off("change:heatmap", redrawBody);
    model.off("change:image", redrawBody);
    model.off("change:grid", redrawBody);
    model.off("change:error", drawStatus);
    model.off("change:live", onLive);
    model.off("change:summary", drawHead);
  };
}

export default { render };
