// otel-rollout view: draws one rollout from the JSON blocks of this page. Plain JavaScript, no
// network. The rollout block is parsed at load; raw payloads only when one is first asked for.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("rollout-data").textContent);
  const R = D.rollout;
  const O = D.objects;
  const I = D.items;
  const threads = D.threads;
  const T = new Map(threads.map((t) => [t.id, t]));
  const BATCH = 120;
  const state = { thread: null, tab: "timeline", selected: null, shown: 0 };
  let payloadStore = null;

  // --- small helpers -------------------------------------------------------------------

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = v;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
    for (const child of children) if (child) node.append(child instanceof Node ? child : document.createTextNode(child));
    return node;
  }
  function duration(start, end) {
    if (typeof start !== "number" || typeof end !== "number") return null;
    return Math.max(0, end - start);
  }
  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return "running";
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    const s = Math.floor(ms / 1000);
    if (s < 3600) return Math.floor(s / 60) + "m " + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }
  function fmtTime(ms) {
    if (typeof ms !== "number") return "?";
    return new Date(ms).toISOString().replace("T", " ").replace("Z", " UTC");
  }
  function fmtCount(n) {
    if (n < 1000) return String(n);
    if (n < 100000) return (n / 1000).toFixed(1) + "k";
    if (n < 1000000) return Math.floor(n / 1000) + "k";
    return (n / 1e6).toFixed(2) + "M";
  }
  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function oneLine(text, max) {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
  }
  function pill(status, text) { return el("span", { class: "pill " + status, text: text || status }); }
  function statusPill(status) { return status === "completed" ? pill("completed", "✓ completed") : pill(status, glyph(status) + " " + status); }
  function glyph(status) {
    return { completed: "✓", failed: "✗", cancelled: "⊘", aborted: "■", running: "…" }[status] || "?";
  }
  function outcomePills(x) {
    const out = [];
    if (x.outcome === "failed" && x.status !== "failed") out.push(pill("failed", "✗ " + plural(x.failed_turns, "turn") + " failed"));
    if (x.retried) out.push(pill("retried", "↻ " + plural(x.retried, "failed attempt") + " retried"));
    return out;
  }

  // Thread names: the agent path, with the id's tail where two threads share a path.
  const pathCounts = new Map();
  for (const t of threads) pathCounts.set(t.path, (pathCounts.get(t.path) || 0) + 1);
  for (const t of threads) {
    t.name = !t.path ? t.id : pathCounts.get(t.path) > 1 ? t.path + "#" + t.id.slice(-8) : t.path;
  }
  function threadName(id) { const t = T.get(id); return t ? t.name : id || "?"; }
  const turnIndex = new Map();
  for (const t of threads) {
    let n = 0;
    for (const id of t.timeline) if (O[id].kind === "turn") turnIndex.set(id, ++n);
  }

  function label(o) {
    if (!o) return "?";
    if (o.kind === "turn") return "turn " + (turnIndex.get(o.id) || "");
    if (o.kind === "inference") return "inference " + o.label;
    if (o.kind === "tool") return "tool " + o.label;
    return o.label;
  }

  // --- header --------------------------------------------------------------------------

  function renderSummary() {
    const c = R.counts;
    const names = [["threads", "thread"], ["turns", "turn"], ["inference_calls", "inference call"],
      ["tool_calls", "tool call"], ["code_cells", "code cell"], ["compactions", "compaction"],
      ["interaction_edges", "edge"]];
    document.getElementById("summary").append(
      el("h1", null, "Rollout", el("span", { class: "id", text: R.id }), statusPill(R.status), ...outcomePills(R)),
      el("div", { class: "meta" },
        el("span", { text: fmtDuration(duration(R.start, R.end)) }),
        el("span", { text: "started " + fmtTime(R.start) }),
        el("span", { class: "mono", text: "trace " + R.trace_id }),
        el("span", { text: "schema " + R.schema })),
      el("div", { class: "counts", id: "counts" }, names.map(([key, word]) =>
        el("span", { class: "count", data: { count: key, value: String(c[key]) } },
          el("b", { text: String(c[key]) }), " " + (c[key] === 1 ? word : word + "s")))));
  }

  // --- the agent graph -----------------------------------------------------------------

  function renderGraph() {
    const box = document.getElementById("graph");
    const width = 318, nodeH = 60, gap = 34, indent = 24, right = 78;
    const children = new Map();
    const roots = [];
    for (const t of threads) {
      if (t.parent && T.has(t.parent) && t.parent !== t.id) {
        if (!children.has(t.parent)) children.set(t.parent, []);
        children.get(t.parent).push(t);
      } else roots.push(t);
    }
    const order = [];
    const seen = new Set();
    function visit(t, depth) {
      if (seen.has(t.id)) return;
      seen.add(t.id);
      order.push([t, depth]);
      for (const c of children.get(t.id) || []) visit(c, depth + 1);
    }
    roots.forEach((t) => visit(t, 0));
    threads.forEach((t) => visit(t, 0));
    const pos = new Map();
    order.forEach(([t, depth], i) => {
      const x = 10 + Math.min(depth, 6) * indent;
      pos.set(t.id, { x, y: 10 + i * (nodeH + gap), w: width - x - right, h: nodeH });
    });
    const height = 20 + order.length * (nodeH + gap) - gap;
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "agent graph" });
    root.append(svg("defs", null, ...["spawn_agent", "agent_result", "send_message", "assign_agent_task", "close_agent"].map((kind) =>
      svg("marker", { id: "arrow-" + kind, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: edgeColor(kind) })))));
    const pairCount = new Map();
    for (const e of D.edges) {
      const a = pos.get(e.from), b = pos.get(e.to);
      if (!a || !b) continue;
      const key = [e.from, e.to].sort().join(" ");
      const k = pairCount.get(key) || 0;
      pairCount.set(key, k + 1);
      const x1 = a.x + a.w, y1 = a.y + a.h / 2 + (e.from === e.to ? -8 : 0);
      const x2 = b.x + b.w, y2 = b.y + b.h / 2 + (e.from === e.to ? 8 : 0) + (y1 < b.y ? -6 : 6);
      const bulge = 26 + k * 18;
      const mx = Math.max(x1, x2) + bulge;
      const d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 + 2},${y2}`;
      const g = svg("g", { class: "edge edge-" + e.kind, "data-edge": e.id, "data-kind": e.kind, "data-from": e.from, "data-to": e.to },
        svg("title", null, `${e.kind}: ${threadName(e.from)} → ${threadName(e.to)}${e.text ? "\n" + oneLine(e.text, 200) : ""}`),
        svg("path", { d, "marker-end": `url(#arrow-${e.kind})`, stroke: edgeColor(e.kind) }),
        svg("text", { x: mx + 3, y: (y1 + y2) / 2 + 4 + (k % 2 ? 12 : -4) * Math.ceil(k / 2 + 0.5) / 1.5 }, shortKind(e.kind)));
      g.addEventListener("click", () => showEdge(e));
      root.append(g);
    }
    for (const [t] of order) {
      const p = pos.get(t.id);
      const failed = t.outcome === "failed" || t.status === "failed";
      const g = svg("g", { class: "node" + (failed ? " failed" : ""), "data-thread": t.id, transform: `translate(${p.x},${p.y})`, tabindex: 0 });
      g.append(svg("rect", { class: "box", width: p.w, height: p.h, rx: 8 }),
        svg("circle", { cx: 14, cy: 17, r: 5, fill: statusColor(t.status) }),
        svg("text", { x: 26, y: 21, "font-weight": 600, class: "name" }, fit(t.name + (t.nickname ? " (" + t.nickname + ")" : ""), p.w - 34)),
        svg("text", { x: 12, y: 38, class: "sub" }, fit([t.model, plural(t.counts.turns, "turn")].filter(Boolean).join(" · "), p.w - 20)),
        svg("text", { x: 12, y: 52, class: "sub" }, fit(`${plural(t.counts.inference_calls, "inference")} · ${plural(t.counts.tool_calls, "tool")}`, p.w - 20)));
      if (t.outcome !== "ok" || t.status !== "completed") {
        const text = t.status !== "completed" ? glyph(t.status) : t.outcome === "failed" ? "✗" : "↻";
        g.append(svg("text", { x: p.w - 10, y: 21, "text-anchor": "end", class: "flag", fill: t.outcome === "failed" || t.status === "failed" ? "var(--fail)" : "var(--warn)" }, text));
      }
      g.append(svg("title", null, `${t.name}\n${t.status}${t.task ? "\ntask " + t.task : ""}`));
      g.addEventListener("click", () => selectThread(t.id));
      g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") selectThread(t.id); });
      root.append(g);
    }
    box.replaceChildren(root);
    const kinds = [...new Set(D.edges.map((e) => e.kind))];
    document.getElementById("legend").replaceChildren(...kinds.map((k) =>
      el("span", null, el("i", { style: `border-color:${edgeColor(k)}` }), k.replace(/_/g, " "))));
  }
  function fit(text, px) {
    const max = Math.max(4, Math.floor(px / 6.6));
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }
  function shortKind(kind) {
    return { spawn_agent: "spawn", agent_result: "result", send_message: "message", assign_agent_task: "task", close_agent: "close" }[kind] || kind;
  }
  function edgeColor(kind) {
    return { spawn_agent: "#3b5bdb", agent_result: "#2f9e44", send_message: "#e8890c", assign_agent_task: "#e8890c" }[kind] || "#868e96";
  }
  function statusColor(status) {
    return { completed: "#2f9e44", failed: "#d6336c", cancelled: "#e8890c", aborted: "#7048e8", running: "#1c7ed6" }[status] || "#868e96";
  }

  // --- one thread: head, timeline, conversation ----------------------------------------

  function selectThread(id) {
    if (!T.has(id)) return;
    state.thread = id;
    state.shown = 0;
    for (const node of document.querySelectorAll("#graph .node")) node.classList.toggle("selected", node.dataset.thread === id);
    const t = T.get(id);
    const parent = t.parent && T.get(t.parent);
    document.getElementById("thread-head").replaceChildren(
      el("h2", null, t.name + (t.nickname ? " (" + t.nickname + ")" : ""), statusPill(t.status), ...outcomePills(t)),
      el("div", { class: "meta", id: "thread-meta" },
        t.model && el("span", { text: t.model }),
        el("span", { text: fmtDuration(duration(t.start, t.end)) }),
        parent && el("span", null, "spawned by ", el("button", { class: "link", text: parent.name, on: { click: () => selectThread(parent.id) } }),
          t.task ? " for " + t.task : ""),
        el("span", { data: { threadCount: "turns" }, text: plural(t.counts.turns, "turn") }),
        el("span", { data: { threadCount: "inference_calls" }, text: plural(t.counts.inference_calls, "inference call") }),
        el("span", { data: { threadCount: "tool_calls" }, text: plural(t.counts.tool_calls, "tool call") }),
        t.counts.code_cells ? el("span", { text: plural(t.counts.code_cells, "code cell") }) : null,
        t.counts.compactions ? el("span", { text: plural(t.counts.compactions, "compaction") }) : null));
    renderTimeline(t);
    document.getElementById("conversation").replaceChildren();
    if (state.tab === "conversation") renderConversation(t);
  }

  function showTab(tab) {
    state.tab = tab;
    for (const b of document.querySelectorAll(".tabs button")) b.setAttribute("aria-selected", String(b.dataset.tab === tab));
    document.getElementById("timeline").hidden = tab !== "timeline";
    document.getElementById("conversation").hidden = tab !== "conversation";
    if (tab === "conversation" && !document.querySelector("#conversation .conv")) renderConversation(T.get(state.thread));
  }

  function renderTimeline(t) {
    const objs = t.timeline.map((id) => O[id]);
    let t0 = t.start, t1 = t.end || t.start;
    for (const o of objs) {
      if (typeof o.start === "number" && o.start < t0) t0 = o.start;
      const end = o.end !== null ? o.end : o.start;
      if (end > t1) t1 = end;
    }
    const span = Math.max(1, t1 - t0);
    const pct = (ms) => ((ms - t0) / span) * 100;
    const rows = [];
    const turnIds = new Set(objs.filter((o) => o.kind === "turn").map((o) => o.id));
    const byTurn = new Map();
    const loose = [];
    for (const o of objs) {
      if (o.kind === "turn") continue;
      if (o.turn && turnIds.has(o.turn)) {
        if (!byTurn.has(o.turn)) byTurn.set(o.turn, []);
        byTurn.get(o.turn).push(o);
      } else loose.push(o);
    }
    const top = objs.filter((o) => o.kind === "turn").concat(loose).sort((a, b) => a.start - b.start || a.seq - b.seq);
    for (const o of top) {
      rows.push(row(o, 0));
      if (o.kind === "turn") for (const c of byTurn.get(o.id) || []) rows.push(row(c, c.cell ? 2 : 1));
    }
    const ticks = el("div", { class: "ticks" });
    for (let i = 0; i <= 4; i++) {
      ticks.append(el("span", { style: `left:${i * 25}%`, text: i === 0 ? "0" : "+" + fmtDuration(Math.round((span * i) / 4)) }));
    }
    const box = document.getElementById("timeline");
    box.replaceChildren(el("div", { class: "axis" }, el("div", { class: "label", style: "padding:5px 12px", text: plural(objs.length, "object") }), ticks), ...rows);

    function row(o, depth) {
      const end = o.end !== null ? o.end : t1;
      const left = pct(o.start);
      const width = Math.max(0.25, pct(end) - left);
      const glyphs = { turn: "▸", inference: "◆", tool: "⚙", code_cell: "{}", compaction: "⇣" };
      const hint = o.kind === "tool" ? o.arguments : o.kind === "turn" ? turnHint(o) : o.kind === "inference" && o.tools && o.tools.length ? "→ " + plural(o.tools.length, "tool call") : null;
      const r = el("div", { class: `row k-${o.kind} s-${o.status}` + (o.kind === "turn" ? " turn" : ""), data: { id: o.id, kind: o.kind, status: o.status }, on: { click: () => select(o.id) } },
        el("div", { class: "label", style: `padding-left:${12 + depth * 18}px` },
          el("div", { class: "name" }, el("span", { class: "glyph", text: glyphs[o.kind] || "•" }), el("span", { class: "t", text: label(o) }),
            o.status !== "completed" ? pill(o.status, glyph(o.status) + " " + o.status) : null,
            o.kind === "turn" && o.outcome === "retried" ? pill("retried", "↻") : null,
            o.kind === "tool" && o.exit_code !== null && o.exit_code !== undefined && o.exit_code !== 0 ? pill("failed", "exit " + o.exit_code) : null),
          o.error ? el("div", { class: "reason", title: o.error, text: oneLine(o.error, 160) }) : hint ? el("div", { class: "hint", text: oneLine(hint, 120) }) : null),
        el("div", { class: "track" },
          el("div", { class: "bar", style: `left:${left}%;width:${width}%` }),
          el("span", { class: "dur", style: `left:${Math.min(left + width, 100)}%`, text: fmtDuration(duration(o.start, o.end)) })));
      return r;
    }
  }
  function turnHint(turn) {
    const t = T.get(turn.thread);
    for (const id of t.items) {
      const it = I[id];
      if (it.turn === turn.id && it.role === "user" && it.kind === "message" && it.text && !/^\s*</.test(it.text)) return "“" + it.text + "”";
    }
    return null;
  }

  function renderConversation(t) {
    const box = document.getElementById("conversation");
    const list = el("div", { class: "conv" });
    box.replaceChildren(list);
    state.shown = 0;
    if (!t.items.length) list.append(el("p", { class: "muted", text: "No conversation items were recorded for this thread." }));
    moreItems(t, BATCH);
  }
  function moreItems(t, n) {
    const list = document.querySelector("#conversation .conv");
    if (!list) return;
    const old = list.querySelector(".more");
    if (old) old.remove();
    const end = Math.min(t.items.length, state.shown + n);
    const frag = document.createDocumentFragment();
    for (let i = state.shown; i < end; i++) frag.append(message(I[t.items[i]]));
    list.append(frag);
    state.shown = end;
    if (end < t.items.length) {
      const more = el("button", { class: "more", type: "button", text: `Show more (${t.items.length - end} left)`, on: { click: () => moreItems(t, BATCH) } });
      list.append(more);
      if ("IntersectionObserver" in window) {
        const seen = new IntersectionObserver((entries) => {
          if (entries.some((e) => e.isIntersecting)) { seen.disconnect(); moreItems(t, BATCH); }
        }, { root: document.getElementById("conversation") });
        seen.observe(more);
      }
    }
  }
  function message(it) {
    const tool = it.tool && O[it.tool];
    const inference = it.by.find((id) => O[id] && O[id].kind === "inference");
    const kindText = it.kind === "message" ? null : it.kind.replace(/_/g, " ");
    const quiet = it.role === "developer" || it.role === "system";
    const long = it.text && (it.text.length > (quiet ? 240 : 700) || it.text.split("\n").length > (quiet ? 3 : 9));
    const mono = it.kind !== "message" && it.kind !== "reasoning";
    const agent = it.agent;
    const body = el("div", { class: "body" + (mono ? " mono" : "") + (long ? " clamp" : "") + (quiet ? " quiet" : ""), text: it.text || "(no readable text)" });
    const node = el("div", { class: `msg role-${it.role} kind-${it.kind}` + (agent ? " agent" : ""), id: "item-" + it.id, data: { item: it.id } },
      el("div", { class: "head" }, el("b", { text: it.role }), kindText && el("span", { text: kindText }),
        tool && el("span", { class: "mono", text: tool.label }),
        agent && el("span", { text: `${agent.author || "?"} → ${agent.recipient || "?"}` }),
        tool && el("button", { class: "link", type: "button", text: "tool call ↗", data: { jump: "tool" }, on: { click: () => reveal(tool.id) } }),
        inference && el("button", { class: "link", type: "button", text: "inference ↗", data: { jump: "inference" }, on: { click: () => reveal(inference) } }),
        el("button", { class: "link", type: "button", text: "details", on: { click: () => showItem(it) } })),
      body);
    if (long) node.append(el("button", { class: "link", type: "button", text: "show all", on: { click: (ev) => { body.classList.remove("clamp"); ev.target.remove(); } } }));
    return node;
  }

  // --- selection and jumps -------------------------------------------------------------

  function select(id) {
    const o = O[id];
    if (!o) return;
    state.selected = id;
    for (const r of document.querySelectorAll("#timeline .row.selected")) r.classList.remove("selected");
    const r = document.querySelector(`#timeline .row[data-id="${CSS.escape(id)}"]`);
    if (r) r.classList.add("selected");
    showObject(o);
  }
  function reveal(id) {
    const o = O[id];
    if (!o) return;
    if (state.thread !== o.thread) selectThread(o.thread);
    showTab("timeline");
    select(id);
    const r = document.querySelector(`#timeline .row[data-id="${CSS.escape(id)}"]`);
    if (r) { r.scrollIntoView({ block: "center" }); flash(r); }
  }
  function gotoItem(itemId) {
    const it = I[itemId];
    if (!it) return;
    const t = threads.find((x) => x.items.includes(itemId));
    if (!t) return;
    if (state.thread !== t.id) selectThread(t.id);
    showTab("conversation");
    const index = t.items.indexOf(itemId);
    if (index >= state.shown) moreItems(t, index - state.shown + BATCH);
    const node = document.getElementById("item-" + itemId);
    if (node) { node.scrollIntoView({ block: "center" }); flash(node); }
  }
  function flash(node) {
    for (const other of document.querySelectorAll(".flash")) other.classList.remove("flash");
    void node.offsetWidth;
    node.classList.add("flash");
  }

  // --- details ------------------------------------------------------------------------

  function details(...children) { document.getElementById("details").replaceChildren(...children); }
  function fields(pairs) {
    return el("dl", null, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) =>
      [el("dt", { text: k }), el("dd", null, v)]));
  }
  function jump(text, fn, data) { return el("button", { class: "link", type: "button", text, on: { click: fn }, data }); }
  function usage(u) {
    if (!u) return null;
    let s = fmtCount(u.input_tokens) + " in";
    if (u.cached_input_tokens) s += ` (${fmtCount(u.cached_input_tokens)} cached)`;
    s += " / " + fmtCount(u.output_tokens) + " out";
    if (u.reasoning_output_tokens) s += ` (${fmtCount(u.reasoning_output_tokens)} reasoning)`;
    return s + " tokens";
  }

  function showObject(o) {
    const parts = [el("h3", null, label(o), statusPill(o.status))];
    if (o.error) parts.push(el("h4", { text: o.status === "cancelled" ? "Why it was cancelled" : "Why it failed" }), el("div", { class: "error", data: { role: "error" }, text: o.error }));
    parts.push(fields([
      ["id", el("span", { class: "mono", text: o.id })],
      ["thread", jump(threadName(o.thread), () => selectThread(o.thread))],
      ["turn", o.turn && O[o.turn] && o.kind !== "turn" ? jump(label(O[o.turn]), () => reveal(o.turn)) : null],
      ["started", fmtTime(o.start)],
      ["duration", fmtDuration(duration(o.start, o.end))],
      ["provider", o.provider], ["response id", o.response_id && el("span", { class: "mono", text: o.response_id })],
      ["usage", usage(o.usage)],
      ["request", o.kind === "inference" ? plural(o.request_items, "item") : null],
      ["call id", o.call_id && el("span", { class: "mono", text: o.call_id })],
      ["exit code", o.exit_code], ["runtime", o.runtime_status],
      ["items", o.kind === "compaction" && o.installed ? `${o.input_items} → ${o.replacement_items}` : null],
    ]));
    const jumps = [];
    if (o.kind === "tool") {
      if (o.inference) jumps.push(jump("← requested by " + label(O[o.inference]), () => reveal(o.inference), { jump: "inference" }));
      if (o.cell && O[o.cell]) jumps.push(jump("← requested by " + label(O[o.cell]), () => reveal(o.cell)));
      if (o.items && o.items.length) jumps.push(jump("show in conversation", () => gotoItem(o.items[0]), { jump: "conversation" }));
      for (const e of D.edges.filter((x) => x.source === o.id)) jumps.push(jump(`→ ${e.kind} ${threadName(e.to)}`, () => showEdge(e)));
    }
    if (o.kind === "inference") {
      for (const id of o.tools || []) if (O[id]) jumps.push(jump("→ started " + label(O[id]), () => reveal(id), { jump: "tool" }));
      if (o.response_items && o.response_items.length) jumps.push(jump("show response in conversation", () => gotoItem(o.response_items[0]), { jump: "conversation" }));
    }
    if (o.kind === "code_cell") for (const id of o.tools || []) if (O[id]) jumps.push(jump("→ " + label(O[id]), () => reveal(id)));
    if (o.kind === "turn") {
      const inner = T.get(o.thread).timeline.filter((id) => O[id].turn === o.id && id !== o.id);
      parts.push(el("p", { class: "muted", text: `${inner.filter((id) => O[id].kind === "inference").length} inference calls, ${inner.filter((id) => O[id].kind === "tool").length} tool calls` }));
    }
    if (jumps.length) parts.push(el("h4", { text: "Related" }), el("div", { class: "jumps" }, jumps));
    if (o.kind === "tool") {
      parts.push(el("h4", { text: "Arguments" }), el("pre", { class: "args", data: { role: "arguments" }, text: prettyMaybe(o.arguments) || "(none recorded)" }));
      parts.push(el("h4", { text: "Result" }), el("pre", { class: "result", data: { role: "result" }, text: o.result || "(none recorded)" }));
    }
    if (o.kind === "code_cell" && o.source) parts.push(el("h4", { text: "Source" }), el("pre", { text: o.source }));
    if (o.kind === "inference" && o.response_items) {
      const text = o.response_items.map((id) => I[id]).filter((it) => it && it.role === "assistant" && it.kind === "message").map((it) => it.text).join("\n\n");
      if (text) parts.push(el("h4", { text: "Reply" }), el("pre", { text }));
    }
    parts.push(...payloadButtons(o.raw));
    details(...parts);
  }
  function showItem(it) {
    const parts = [el("h3", null, `${it.role} ${it.kind.replace(/_/g, " ")}`)];
    parts.push(fields([["id", el("span", { class: "mono", text: it.id })], ["turn", it.turn && O[it.turn] ? jump(label(O[it.turn]), () => reveal(it.turn)) : null],
      ["call id", it.call_id && el("span", { class: "mono", text: it.call_id })], ["channel", it.channel]]));
    const jumps = it.by.filter((id) => O[id]).map((id) => jump("← produced by " + label(O[id]), () => reveal(id)));
    if (it.tool) jumps.push(jump("→ " + label(O[it.tool]), () => reveal(it.tool)));
    if (jumps.length) parts.push(el("h4", { text: "Related" }), el("div", { class: "jumps" }, jumps));
    parts.push(el("h4", { text: "Text" }), el("pre", { text: it.text || "" }));
    parts.push(...payloadButtons(it.raw));
    details(...parts);
  }
  function showEdge(e) {
    details(el("h3", null, e.kind.replace(/_/g, " ")),
      fields([["id", el("span", { class: "mono", text: e.id })], ["from", jump(threadName(e.from), () => selectThread(e.from))],
        ["to", jump(threadName(e.to), () => selectThread(e.to))], ["at", fmtTime(e.start)],
        ["source", e.source && O[e.source] ? jump(label(O[e.source]), () => reveal(e.source)) : e.source && I[e.source] ? jump("message", () => gotoItem(e.source)) : null]]),
      e.text ? el("h4", { text: "Message" }) : null, e.text ? el("pre", { text: e.text }) : null,
      ...payloadButtons(e.raw));
  }
  function prettyMaybe(text) {
    if (!text) return text;
    try { const v = JSON.parse(text); if (v && typeof v === "object") return JSON.stringify(v, null, 2); } catch (_) { /* not JSON */ }
    return text;
  }

  // --- raw payloads, parsed on first use -----------------------------------------------

  function payloads() {
    if (!payloadStore) payloadStore = JSON.parse(document.getElementById("rollout-payloads").textContent);
    return payloadStore;
  }
  function unpack(value, pool) {
    if (Array.isArray(value)) return value.map((v) => unpack(v, pool));
    if (value && typeof value === "object") {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === "\u0000") return value["\u0000"].map((i) => unpack(pool[i], pool));
      const out = {};
      for (const k of keys) out[k] = unpack(value[k], pool);
      return out;
    }
    return value;
  }
  function payloadButtons(ids) {
    if (!ids || !ids.length) return [];
    return [el("h4", { text: "Raw payloads" }), ...ids.map((id) => {
      const holder = el("div", { class: "payload", data: { payload: id } });
      const button = el("button", { type: "button", text: "{ } " + id, on: { click: () => {
        const open = holder.querySelector("pre");
        if (open) { open.remove(); return; }
        const store = payloads();
        let text;
        if (!(id in store.bodies)) text = "(not in this bundle)";
        else if (store.problems[id]) text = "(" + store.problems[id] + ")";
        else {
          text = JSON.stringify(unpack(store.bodies[id], store.pool), null, 2);
          if (text.length > 400000) text = text.slice(0, 400000) + "\n… (" + fmtCount(text.length) + " characters; cut here)";
        }
        holder.append(el("pre", { class: "raw", text }));
      } } });
      holder.append(button);
      return holder;
    })];
  }

  // --- search --------------------------------------------------------------------------

  let haystack = null;
  function buildHaystack() {
    haystack = [];
    for (const t of threads) haystack.push({ text: [t.name, t.nickname, t.model, t.task].filter(Boolean).join(" "), thread: t.id, title: "thread " + t.name });
    for (const o of Object.values(O)) {
      const text = [label(o), o.error, o.arguments, o.result, o.source, o.response_id, o.call_id].filter(Boolean).join("\n");
      haystack.push({ text, object: o.id, title: label(o) + " · " + threadName(o.thread) });
    }
    for (const it of Object.values(I)) {
      if (it.text) haystack.push({ text: it.text, item: it.id, title: `${it.role} ${it.kind.replace(/_/g, " ")}` });
    }
    for (const h of haystack) h.lower = h.text.toLowerCase();
  }
  function search(q) {
    const box = document.getElementById("results");
    q = q.trim().toLowerCase();
    if (q.length < 2) { box.hidden = true; return; }
    if (!haystack) buildHaystack();
    const hits = [];
    let total = 0;
    for (const h of haystack) {
      const at = h.lower.indexOf(q);
      if (at < 0) continue;
      total++;
      if (hits.length < 100) hits.push([h, at]);
    }
    box.replaceChildren(...(hits.length ? [el("div", { class: "none", text: total > hits.length ? `${total} matches, first 100 shown` : plural(total, "match") })] : [el("div", { class: "none", text: "No match" })]),
      ...hits.map(([h, at]) => {
        const from = Math.max(0, at - 40);
        const snippet = h.text.slice(from, at + q.length + 80).replace(/\s+/g, " ");
        const flat = h.text.slice(from, at).replace(/\s+/g, " ");
        const m = flat.length;
        return el("button", { class: "hit", type: "button", on: { click: () => { box.hidden = true; open(h); } } },
          h.title, el("small", null, (from ? "…" : "") + snippet.slice(0, m), el("mark", { text: snippet.slice(m, m + q.length) }), snippet.slice(m + q.length)));
      }));
    box.hidden = false;
  }
  function open(h) {
    if (h.thread) selectThread(h.thread);
    else if (h.object) reveal(h.object);
    else if (h.item) { gotoItem(h.item); showItem(I[h.item]); }
  }

  // --- start ---------------------------------------------------------------------------

  function start() {
    renderSummary();
    renderGraph();
    for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
    let timer = 0;
    const input = document.getElementById("search");
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => search(input.value), 150); });
    input.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { input.value = ""; search(""); } });
    document.addEventListener("click", (ev) => { if (!document.getElementById("search-box").contains(ev.target)) document.getElementById("results").hidden = true; });
    selectThread(T.has(R.root) ? R.root : threads.length ? threads[0].id : null);
    document.body.dataset.ready = "true";
    performance.mark("rollout-rendered");
  }
  try {
    start();
  } catch (error) {
    document.body.prepend(el("div", { class: "fatal", text: "Could not draw this rollout: " + error }));
    throw error;
  }
})();
