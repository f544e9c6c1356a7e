// The view of wasinn_jupyter.widgets.params.ParamsTree: a graph's named parameters and buffers as a tree of
// modules (an anywidget ES module with no imports: it works offline). Rows arrive as one list; the tree is built here.
// Hooks for browser tests: .wasinn-params (root), .wp-node[data-path] (click folds), .wp-leaf[data-name].

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function count(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

function build(rows) {
  const root = { name: "", children: new Map(), rows: [], numel: 0, tensors: 0 };
  for (const row of rows) {
    const parts = row.name.split(".");
    let node = root;
    node.numel += row.numel;
    node.tensors += 1;
    for (const part of parts.slice(0, -1)) {
      if (!node.children.has(part)) node.children.set(part, { name: part, children: new Map(), rows: [], numel: 0, tensors: 0 });
      node = node.children.get(part);
      node.numel += row.numel;
      node.tensors += 1;
    }
    node.rows.push({ ...row, leaf: parts[parts.length - 1] });
  }
  return root;
}

function render({ model, el: host }) {
  const root = el("div", "wasinn-params");
  host.appendChild(root);
  const tools = el("div", "wp-tools");
  const filter = el("input");
  filter.type = "search";
  filter.placeholder = "filter by name";
  const expand = el("button", "", "expand all");
  const collapse = el("button", "", "collapse all");
  tools.append(filter, expand, collapse);
  const tree = el("div", "wp-tree");
  root.append(tools, tree);
  const open = new Set([""]);

  function leafRow(row, depth) {
    const line = el("div", `wp-leaf wp-${row.kind}`);
    line.style.paddingLeft = `${depth * 14 + 14}px`;
    line.dataset.name = row.name;
    line.append(
      el("span", "wp-name", row.leaf),
      el("span", "wp-kind", row.kind === "buffer" ? "buffer" : ""),
      el("span", "wp-shape", `[${row.shape.join(", ")}]`),
      el("span", "wp-dtype", row.dtype),
      el("span", "wp-device", row.device),
      el("span", "wp-count", count(row.numel)),
    );
    line.title = `${row.name}: ${row.numel.toLocaleString()} values`;
    return line;
  }

  function nodeRows(node, path, depth, out, match) {
    const names = [...node.children.keys()];
    for (const name of names) {
      const child = node.children.get(name);
      const childPath = path ? `${path}.${name}` : name;
      const line = el("div", "wp-node");
      line.style.paddingLeft = `${depth * 14}px`;
      const isOpen = match !== null || open.has(childPath);
      line.append(
        el("span", "wp-toggle", isOpen ? "▾" : "▸"),
        el("span", "wp-name", name),
        el("span", "wp-kind", ""),
        el("span", "wp-shape", `${child.tensors} tensors`),
        el("span", "wp-dtype", ""),
        el("span", "wp-device", ""),
        el("span", "wp-count", count(child.numel)),
      );
      line.dataset.path = childPath;
      line.addEventListener("click", () => {
        if (open.has(childPath)) open.delete(childPath); else open.add(childPath);
        draw();
      });
      out.push(line);
      if (isOpen) nodeRows(child, childPath, depth + 1, out, match);
    }
    for (const row of node.rows) out.push(leafRow(row, depth));
  }

  function draw() {
    const text = filter.value.trim().toLowerCase();
    const rows = (model.get("rows") || []).filter((r) => !text || r.name.toLowerCase().includes(text));
    const top = build(rows);
    const out = [];
    nodeRows(top, "", 0, out, text ? text : null);
    tree.replaceChildren(...out);
    if (!out.length) tree.append(el("div", "wp-empty", text ? "no name matches" : "no named tensors"));
  }

  function allPaths() {
    const paths = [];
    for (const row of model.get("rows") || []) {
      const parts = row.name.split(".");
      for (let i = 1; i < parts.length; i++) paths.push(parts.slice(0, i).join("."));
    }
    return paths;
  }

  filter.addEventListener("input", draw);
  expand.addEventListener("click", () => { allPaths().forEach((p) => open.add(p)); draw(); });
  collapse.addEventListener("click", () => { open.clear(); draw(); });
  draw();
  model.on("change:rows", draw);
  return () => model.off("change:rows", draw);
}

export default { render };
