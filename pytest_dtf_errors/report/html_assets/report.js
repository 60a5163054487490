/* pytest-dtf-errors HTML report: draws the page from the JSON in #dtf-data.
   Every text of the report goes in as a text node or an attribute value (never
   parsed as markup), and nothing is fetched. The data's keys: report/html.py. */
(() => {
  "use strict";
  const SVGNS = "http://www.w3.org/2000/svg";
  const root = document.getElementById("dtf");
  const D = JSON.parse(document.getElementById("dtf-data").textContent);
  const OUT = D.outcomes; // passed failed error skipped flaky
  const RANK = { error: 0, failed: 1, flaky: 2, skipped: 3, passed: 4 };
  const PAGE = 100;
  const S = (i) => (i === undefined || i === null || i < 0 ? null : D.strings[i]);

  // -- DOM helpers: text only -------------------------------------------------
  function put(e, attrs, kids) {
    if (attrs) {
      for (const k of Object.keys(attrs)) {
        const v = attrs[k];
        if (v === null || v === undefined || v === false) continue;
        if (k === "text") e.textContent = v;
        else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const kid of kids) append(e, kid);
    return e;
  }
  function append(e, kid) {
    if (kid === null || kid === undefined || kid === false) return;
    if (Array.isArray(kid)) { for (const k of kid) append(e, k); return; }
    e.append(typeof kid === "object" ? kid : String(kid));
  }
  const el = (tag, attrs, ...kids) => put(document.createElement(tag), attrs, kids);
  const sv = (tag, attrs, ...kids) => put(document.createElementNS(SVGNS, tag), attrs, kids);

  function fmtMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms === 0) return "0";
    const a = Math.abs(ms);
    if (a < 10) return ms.toFixed(a < 1 ? 2 : 1) + " ms";
    if (a < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (Math.abs(s) < 60) return s.toFixed(Math.abs(s) < 10 ? 2 : 1) + " s";
    const m = Math.floor(s / 60);
    return m + " min " + Math.round(s - 60 * m) + " s";
  }
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  const clip = (text, n) => (text && text.length > n ? text.slice(0, n) + "…" : text || "");

  // -- the model --------------------------------------------------------------
  const W = D.workers;
  const P = D.patterns;
  // a test: [file, rest of the nodeid, outcome, attempts, info]; an attempt:
  // [worker, start, length, duration, outcome, category, pattern, detail, retry, number]
  // in ms, trailing defaults left out; here the length becomes the end.
  const T = D.tests.map((t, i) => {
    const att = t[3].map((a, ai) => [a[0], a[1], a[1] === null || a[2] === null ? null : a[1] + a[2], a[3],
      a[4] ?? 0, a[5] ?? -1, a[6] ?? -1, a[7] ?? -1, a[8] ?? 0, a[9] ?? ai + 1]);
    const info = t[4] || {};
    let dur = 0, cat = -1;
    const ws = [];
    for (const a of att) {
      dur += a[3];
      if ((a[4] === 1 || a[4] === 2) && a[5] >= 0) cat = a[5];
      if (a[0] >= 0 && !ws.includes(a[0])) ws.push(a[0]);
    }
    return {
      i, id: (t[0] >= 0 ? D.files[t[0]] : "") + t[1], o: t[2], att, info, dur, cat: cat >= 0 ? D.categories[cat] : "",
      workers: ws.map((w) => W[w].id).join(" "),
      quarantined: !!info.quarantine,
      victim: !!(info.poison && info.poison.role === "victim" && OUT[t[2]] === "passed"),
      score: info.history && info.history.score !== null ? info.history.score : -1,
      hay: null,
    };
  });

  const tip = el("div", { id: "tip", role: "tooltip", hidden: true });
  const dialog = el("dialog", { id: "detail", "aria-labelledby": "detail-title" });
  const live = el("p", { class: "live", "aria-live": "polite" });
  let timelineApi = null;
  let highlightFromDialog = () => {}; // set by patterns()
  let filterOutcome = () => {}; // set by testsSection()

  main();

  function main() {
    root.append(header(), timeline(), patterns(), testsSection());
    document.body.append(tip, dialog);
    if (timelineApi) timelineApi.layout();
    dialog.addEventListener("click", (e) => { if (e.target === dialog) dialog.close(); });
    document.documentElement.setAttribute("data-ready", "1");
    window.dtfRenderMs = performance.now();
  }

  // -- header ---------------------------------------------------------------
  function header() {
    const run = D.run, sm = D.summary;
    const st = run.exit_status;
    const meaning = { 0: "all tests passed", 1: "tests failed", 2: "interrupted", 3: "internal error",
      4: "usage error", 5: "no tests collected" };
    const status = el("span", { class: "status " + (st === 0 ? "ok" : st === null ? "unknown" : "bad") },
      st === null ? "exit status unknown" : "exit status " + st + (meaning[st] ? ": " + meaning[st] : ""));
    const chips = el("ul", { class: "counts", "aria-label": "final outcomes" });
    const kinds = [["passed", "passed"], ["failed", "failed"], ["error", "error"], ["flaky", "flaky"],
      ["skipped", "skipped"], ["quarantined", "quarantined"], ["victims", "victim"]];
    for (const [key, cls] of kinds) {
      const n = sm[key] || 0;
      chips.append(el("li", null, el("button", {
        type: "button", class: "o-" + cls, "data-count": key,
        title: "show the " + key + " tests", onclick: () => filterOutcome(key),
      }, el("span", { class: "sw", "aria-hidden": "true" }), el("b", null, n), " " + key)));
    }
    chips.append(el("li", { class: "muted" }, el("b", null, sm.total || 0), " tests"));
    const hosts = [...new Set(W.map((w) => w.host))];
    const facts = el("dl", { class: "facts" });
    const fact = (k, ...v) => facts.append(el("dt", null, k), el("dd", null, ...v));
    if (run.duration !== null) fact("wall time", fmtMs(run.duration * 1000));
    fact("workers", plural(W.length, "worker") + " on " + plural(hosts.length, "host") +
      (hosts.length ? " (" + clip(hosts.join(", "), 300) + ")" : ""));
    fact("attempts", (sm.attempts || 0) + " (" + plural(sm.retries || 0, "retry").replace("retrys", "retries") + ")");
    const budget = sm.budget === null || sm.budget === undefined ? "no budget" : "of " + sm.budget;
    fact("retry budget", (sm.budget_used || 0) + " used " + budget + (sm.budget_note ? " (" + sm.budget_note + ")" : ""));
    if (sm.breaker_cancelled) fact("breaker", "cancelled " + plural(sm.breaker_cancelled, "retry").replace("retrys", "retries"));
    if (run.collection_errors) fact("collection errors", run.collection_errors);
    if (run.start) fact("started", run.start + (run.end ? " → " + run.end : ""));
    if (run.label || run.id) fact("run", [run.label, run.id].filter(Boolean).join(" · "));
    const versions = [["pytest-dtf-errors", run.plugin], ["pytest", run.pytest], ["xdist", run.xdist]]
      .filter((v) => v[1]).map((v) => v[0] + " " + v[1]).join(", ");
    if (versions) fact("versions", versions);
    if (run.args) fact("command", el("code", null, "pytest " + run.args));
    if (run.repeats) fact("repeats", el("code", null, run.repeats));
    if (D.history) {
      const h = D.history;
      fact("history", (h.file || "") + (h.runs !== null ? " · " + plural(h.runs, "run") : "") +
        (h.known_tests !== null ? " · " + plural(h.known_tests, "known test") : "") +
        (h.quarantined ? " · " + h.quarantined + " quarantined" : ""));
    }
    const notes = [];
    const note = (...kids) => notes.push(el("div", { class: "notice" }, ...kids));
    if (D.cut) note(plural(D.cut, "long text") + " cut or left out to keep this page small; the JSON report has them whole.");
    if (D.history && D.history.warning) note("history: " + D.history.warning);
    for (const h of D.lost_hosts) note("lost host " + h.host + ": " + h.reason);
    for (const u of D.unavailable) note("unavailable hardware: " + u.node + ": " + u.hardware);
    for (const p of D.poisoned) note("poisoned worker " + p.worker + ": " + p.signature + "; culprit " + p.culprit +
      ", " + plural(p.victims, "victim") + (p.reproduced_on ? "; reproduced on " + p.reproduced_on : ""));
    for (const b of D.breaker) note("breaker " + b.pattern + ": " + b.reason + " (" + b.tests + " cancelled)");
    for (const c of D.collection_errors) note("not collected: " + c.nodeid + ": ", el("code", null, clip(c.message, 500)));
    if (D.history) for (const e of D.history.events) note("history " + e.decision + ": " + e.nodeid + ": " + e.reason);
    return el("header", null, el("h1", null, "pytest-dtf-errors report"),
      el("p", { class: "run-line" }, status, run.start ? "started " + run.start : ""), chips, facts, notes);
  }

  // -- timeline ---------------------------------------------------------------
  function timeline() {
    const sec = el("section", { id: "timeline", "aria-labelledby": "tl-h" }, el("h2", { id: "tl-h" }, "Worker timeline"));
    const AXIS = 26, HOSTH = 20, LANEH = W.length > 8 ? 20 : 26; // few lanes: taller ones
    const BARH = [0.5, 0.8, 0.8, 0.3].map((f) => Math.round(f * LANEH)); // passed, failed, error, skipped
    const span = Math.max(D.span, 1);
    const pad = span * 0.01;
    const longest = W.reduce((m, w) => Math.max(m, w.id.length + (w.hw.join(",").length || 0) +
      (w.replaces ? w.replaces.length + 3 : 0)), 4);
    const L = Math.min(Math.max(longest * 6.6 + 30, 110), 320);
    const svg = sv("svg", { class: "tl", role: "img", "aria-label": "worker timeline" });
    const defs = sv("defs", null,
      sv("marker", { id: "dtf-ah", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7",
        orient: "auto-start-reverse" }, sv("path", { d: "M0,0L10,5L0,10z" })),
      sv("pattern", { id: "dtf-hatch", width: "6", height: "6", patternUnits: "userSpaceOnUse",
        patternTransform: "rotate(45)" }, sv("path", { d: "M0,0L0,6" })),
      sv("pattern", { id: "dtf-dots", width: "6", height: "6", patternUnits: "userSpaceOnUse" },
        sv("circle", { cx: "3", cy: "3", r: "1" })));
    // under the plot: each row's background and the axis; over it: the label column
    const gRows = sv("g", { class: "rows" });
    const gAxis = sv("g", { class: "axis" });
    const gPlot = sv("g", { class: "plot" });
    const gContent = sv("g", { class: "content" });
    const gShades = sv("g", { class: "shades" }), gBars = sv("g", { class: "bars" });
    const gArrows = sv("g", { class: "arrows" }), gMarks = sv("g", { class: "marks" });
    const gLanes = sv("g", { class: "lanes" });
    const gLit = sv("g", { class: "lit-bars" });
    gContent.append(gShades, gBars, gArrows, gLit);
    gPlot.append(gContent, gMarks);
    svg.append(defs, gRows, gAxis, gPlot, gLanes);

    // lanes, grouped by host
    const laneY = [];
    const rowBgs = [];
    gLanes.append(sv("rect", { class: "label-bg", x: 0, y: 0, width: L, height: AXIS }),
      sv("text", { class: "axis-title", x: 6, y: 14, text: "time from start" }));
    let y = AXIS, host = null, alt = false;
    const row = (cls, top, height) => {
      const r = sv("rect", { class: cls, x: 0, y: top, height });
      rowBgs.push(r);
      gRows.append(r);
      return sv("rect", { class: cls, x: 0, y: top, width: L, height });
    };
    W.forEach((w, i) => {
      if (w.host !== host) {
        host = w.host;
        gLanes.append(sv("g", { class: "host", "data-host": host }, row("host-bg", y, HOSTH),
          sv("text", { class: "host-label", x: 6, y: y + 14, text: "host " + host })));
        y += HOSTH;
        alt = false;
      }
      laneY[i] = y;
      const bg = row("lane-bg" + (alt ? " alt" : ""), y, LANEH);
      const sub = [w.hw.join(","), w.replaces ? "↳ " + w.replaces : ""].filter(Boolean).join(" ");
      const label = sv("text", { class: "lane-label", x: 14, y: y + LANEH / 2 + 4 }, w.id,
        sub ? sv("tspan", { class: "sub", text: " " + sub }) : null);
      const title = [w.id + " on " + w.host, w.hw.length ? "hardware " + w.hw.join(", ") : "",
        w.crashes ? plural(w.crashes, "crash").replace("crashs", "crashes") : "", w.quarantined ? "quarantined: " + w.quarantined : "",
        w.declined ? "not quarantined: " + w.declined : "", w.lost ? "lost: " + w.lost : "",
        w.replaces ? "replaces " + w.replaces : "", w.replaced_by ? "replaced by " + w.replaced_by : "",
        w.gpus ? "GPUs " + w.gpus : ""].filter(Boolean).join("\n");
      gLanes.append(sv("g", { class: "lane", "data-worker": w.id }, bg, label, sv("title", { text: title })));
      alt = !alt;
      y += LANEH;
    });
    const H = y + 4;
    svg.setAttribute("height", H);

    // bars: passed and skipped first, failures drawn over them
    const bars = [];
    T.forEach((t) => t.att.forEach((a, ai) => {
      if (a[0] < 0 || a[1] === null || a[2] === null) return;
      bars.push({ t: t.i, ai, w: a[0], s: a[1], e: a[2], o: a[4], p: a[6], el: null, off: false });
    }));
    bars.sort((x, z) => (x.o === 1 || x.o === 2) - (z.o === 1 || z.o === 2));
    const frag = document.createDocumentFragment();
    for (const b of bars) {
      const h = BARH[b.o] || 10;
      b.el = sv("rect", { class: "bar o-" + OUT[b.o] + (T[b.t].quarantined ? " q" : ""), y: laneY[b.w] + (LANEH - h) / 2, height: h, "data-t": b.t,
        "data-a": b.ai, "data-p": b.p >= 0 ? P[b.p].id : null });
      frag.append(b.el);
    }
    gBars.append(frag);

    // retries: an arrow from the failed attempt to the one that replaced it
    const arrows = [];
    for (const t of T) {
      for (let ai = 1; ai < t.att.length; ai++) {
        const a = t.att[ai], prev = t.att[ai - 1];
        if (!a[8] || a[0] < 0 || prev[0] < 0 || a[1] === null || prev[2] === null) continue;
        const el_ = sv("path", { class: "arrow", "marker-end": "url(#dtf-ah)", "data-t": t.i, "data-a": ai });
        arrows.push({ el: el_, t0: prev[2], y0: laneY[prev[0]] + LANEH / 2, t1: a[1], y1: laneY[a[0]] + LANEH / 2 });
        gArrows.append(el_);
      }
    }

    // marks, and the lane shading after a worker's end
    const marks = [];
    const shades = [];
    D.marks.forEach((m, mi) => {
      if (m.t === null) return;
      const text = S(m.text) || "";
      const title = sv("title", { text: m.label + "\n" + clip(text, 600) });
      let g;
      if (m.kind === "breaker") {
        const fw = Math.max(34, m.label.length * 6.2 + 8);
        const flag = sv("g", null, sv("rect", { class: "flag", x: 0, y: 2, width: fw, height: 15, rx: 3 }),
          sv("text", { x: 4, y: 13, text: m.label }));
        g = sv("g", { class: "mark m-breaker", tabindex: "0", role: "button", "data-m": mi, "aria-label": m.label },
          sv("line", { class: "sym", x1: 0, x2: 0, y1: AXIS - 6, y2: H }), flag, title);
        marks.push({ el: g, t: m.t, y: 0, flag, fw });
      } else {
        if (m.worker < 0) return;
        const sym = {
          crash: [sv("circle", { class: "halo", r: 7 }), sv("path", { class: "sym", d: "M-4,-4L4,4M4,-4L-4,4" })],
          lost: [sv("circle", { class: "halo", r: 7 }), sv("path", { class: "sym", d: "M-4,4L4,-4M-5,0A5,5 0 1 0 5,0A5,5 0 1 0 -5,0" })],
          quarantine: [sv("path", { class: "sym", d: "M0,-7L7,0L0,7L-7,0Z" })],
          poison: [sv("path", { class: "sym", d: "M0,-8L7,6L-7,6Z" })],
          replacement: [sv("path", { class: "sym", d: "M-5,-7L6,0L-5,7Z" })],
        }[m.kind] || [sv("circle", { class: "sym", r: 5 })];
        g = sv("g", { class: "mark m-" + m.kind, tabindex: "0", role: "button", "data-m": mi, "aria-label": m.label },
          ...sym, title);
        marks.push({ el: g, t: m.t, y: laneY[m.worker] + LANEH / 2 });
        const shade = { crash: "s-dead", lost: "s-lost", quarantine: "s-quarantine", poison: "s-poison" }[m.kind];
        if (shade) {
          const r = sv("rect", { class: "shade " + shade, y: laneY[m.worker] + 1, height: LANEH - 2 });
          shades.push({ el: r, t: m.t });
          gShades.append(r);
        }
      }
      gMarks.append(g);
    });

    // the view: [va, vb] ms on the plot's width; home: the attempts' extent (start-up left out)
    let first = Infinity, last = -Infinity;
    for (const b of bars) { if (b.s < first) first = b.s; if (b.e > last) last = b.e; }
    for (const m of marks) { if (m.t < first) first = m.t; if (m.t > last) last = m.t; }
    if (!(first < last)) { first = 0; last = span; }
    const margin = (last - first) * 0.02 + 0.5;
    const home = [Math.max(-pad, first - margin), Math.min(span + pad, last + margin)];
    let va = home[0], vb = home[1], k = 1, PW = 100, queued = 0;
    // The content (bars, arrows, shading) is laid out for one scale and view start; a pan or
    // a zoom first only moves and stretches its group (one attribute), and the bars are laid
    // out again once the view has been still for a moment (or left the laid-out range).
    let ref = va, kLaid = 0, widthLaid = 0, laidLo = 0, laidHi = 0, settle = 0;
    const X = (t) => L + (t - va) * k; // on the screen
    const C = (t) => (t - ref) * kLaid; // in the content group
    function layout() {
      const full = queued === 2;
      queued = 0;
      const width = Math.max(wrap.clientWidth || 900, 480);
      PW = width - L - 12;
      k = PW / (vb - va);
      if (full || !kLaid || width !== widthLaid || va < laidLo || vb > laidHi) {
        svg.setAttribute("width", width);
        for (const bg of rowBgs) bg.setAttribute("width", width);
        ref = va; kLaid = k; widthLaid = width;
        content();
      }
      const sx = k / kLaid;
      gContent.setAttribute("transform", "translate(" + (L + (ref - va) * k).toFixed(2) + ",0) scale(" + sx + ",1)");
      for (const m of marks) {
        const x = X(m.t);
        m.el.setAttribute("transform", "translate(" + x.toFixed(1) + "," + m.y + ")");
        if (m.flag) m.flag.setAttribute("transform", x + m.fw > L + PW ? "translate(" + -m.fw + ",0)" : "");
      }
      clearTimeout(settle);
      if (Math.abs(sx - 1) > 1e-6) settle = setTimeout(() => later(true), 150);
      drawAxis();
    }
    function content() {
      const range = vb - va;
      const lo = laidLo = va - 2 * range, hi = laidHi = vb + 2 * range;
      for (const b of bars) {
        if (b.e < lo || b.s > hi) { // far off the view: parked once, not moved on every zoom
          if (!b.off) { b.el.setAttribute("x", "-99999"); b.el.setAttribute("width", "1"); b.off = true; }
          continue;
        }
        b.off = false;
        const x1 = C(Math.max(b.s, lo));
        b.el.setAttribute("x", x1.toFixed(1));
        b.el.setAttribute("width", Math.max(1, C(Math.min(b.e, hi)) - x1).toFixed(1));
      }
      for (const a of arrows) {
        const x0 = C(Math.min(Math.max(a.t0, lo), hi)), x1 = C(Math.min(Math.max(a.t1, lo), hi));
        const dx = Math.max(Math.min(Math.abs(x1 - x0) / 2, 60), 12);
        a.el.setAttribute("d", "M" + x0.toFixed(1) + "," + a.y0 + "C" + (x0 + dx).toFixed(1) + "," + a.y0 + " " +
          (x1 - dx).toFixed(1) + "," + a.y1 + " " + x1.toFixed(1) + "," + a.y1);
      }
      if (lit.length) copies();
      for (const sh of shades) {
        const x1 = C(Math.min(Math.max(sh.t, lo), hi));
        sh.el.setAttribute("x", x1.toFixed(1));
        sh.el.setAttribute("width", Math.max(0, C(Math.min(span + pad, hi)) - x1).toFixed(1));
      }
    }
    function drawAxis() {
      gAxis.textContent = "";
      const range = vb - va;
      const raw = range / Math.max(PW / 110, 1);
      const pow = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((f) => f * pow).find((s) => s >= raw) || raw;
      for (let t = Math.ceil(va / step) * step; t <= vb; t += step) {
        const x = X(t);
        if (x < L - 0.5) continue;
        gAxis.append(sv("line", { x1: x, x2: x, y1: AXIS - 5, y2: H }),
          x + 50 < L + PW + 12 ? sv("text", { x: x + 3, y: 14, text: fmtMs(t) }) : null);
      }
    }
    const later = (full) => {
      if (!queued) requestAnimationFrame(layout);
      queued = Math.max(queued, full === true ? 2 : 1);
    };
    function zoomAt(px, factor) {
      const t = va + (px - L) / k;
      let range = Math.min(Math.max((vb - va) / factor, 0.05), span + 2 * pad);
      const f = Math.min(Math.max((px - L) / PW, 0), 1);
      va = t - f * range;
      vb = va + range;
      clamp();
      later();
    }
    function pan(dxPx) {
      const dt = dxPx / k;
      va += dt; vb += dt;
      clamp();
      later();
    }
    function clamp() {
      const range = vb - va;
      if (va < -pad) { va = -pad; vb = va + range; }
      if (vb > span + pad) { vb = span + pad; va = Math.max(-pad, vb - range); }
    }
    function reset() { va = home[0]; vb = home[1]; later(); }
    function whole() { va = -pad; vb = span + pad; later(); }

    const wrap = el("div", { class: "tl-wrap", tabindex: "0", role: "group",
      "aria-label": "worker timeline: " + plural(W.length, "lane") + ", " + plural(bars.length, "attempt") +
        ", " + plural(arrows.length, "retry arrow") + ". Keys: + and - zoom, arrows pan, 0 resets." }, svg);
    const zoomBtn = (label, title, fn) => el("button", { type: "button", title, "aria-label": title, onclick: fn }, label);
    const toolbar = el("div", { class: "toolbar" },
      zoomBtn("+", "zoom in", () => zoomAt(L + PW / 2, 2)),
      zoomBtn("−", "zoom out", () => zoomAt(L + PW / 2, 0.5)),
      zoomBtn("reset", "show every attempt", reset),
      zoomBtn("whole run", "show the whole run, start-up included", whole),
      zoomBtn("clear highlight", "clear the pattern highlight", () => highlight(-1)),
      el("span", { class: "muted" }, "Ctrl + wheel or +/− to zoom, drag or ←/→ to pan, double-click to zoom in; " +
        "click an attempt for its test, a mark for its details."));
    const legend = el("div", { class: "legend", "aria-label": "legend" },
      ["passed", "failed", "error", "skipped"].map((o, i) => el("span", null,
        sv("svg", { width: 16, height: 16, "aria-hidden": "true" },
          sv("rect", { class: "swatch-bar o-" + o, x: 1, y: (16 - [8, 14, 14, 5][i]) / 2, width: 14,
            height: [8, 14, 14, 5][i] })), "attempt " + o)),
      el("span", null, sv("svg", { width: 26, height: 12, "aria-hidden": "true" },
        sv("path", { class: "legend-arrow", d: "M1,6L22,6", "marker-end": "url(#dtf-ah)" })), "retry"),
      [["crash", "worker died"], ["lost", "worker lost"], ["quarantine", "worker quarantined"],
        ["poison", "worker poisoned"], ["replacement", "replacement worker"]].map(([kind, text]) => {
        const m = D.marks.find((x) => x.kind === kind);
        if (!m) return null;
        const g = sv("svg", { width: 18, height: 18, "aria-hidden": "true" });
        const sym = { crash: "M-4,-4L4,4M4,-4L-4,4", lost: "M-4,4L4,-4", quarantine: "M0,-7L7,0L0,7L-7,0Z",
          poison: "M0,-8L7,6L-7,6Z", replacement: "M-5,-7L6,0L-5,7Z" }[kind];
        g.append(sv("g", { transform: "translate(9,9)", class: "m-" + kind },
          kind === "crash" || kind === "lost" ? sv("circle", { class: "halo", r: 7 }) : null,
          sv("path", { class: "sym", d: sym })));
        return el("span", null, g, text);
      }),
      T.some((t) => t.quarantined) ? el("span", null, sv("svg", { width: 16, height: 16, "aria-hidden": "true" },
        sv("rect", { class: "swatch-bar o-failed q", x: 1, y: 1, width: 14, height: 14 })), "quarantined test") : null,
      D.marks.some((m) => m.kind === "breaker") ? el("span", null, sv("svg", { width: 12, height: 16, "aria-hidden": "true", class: "m-breaker" },
        sv("line", { class: "sym", x1: 6, x2: 6, y1: 0, y2: 16 })), "breaker tripped") : null);

    // interactions
    let drag = null;
    svg.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      drag = { x: e.clientX, moved: false, target: e.target };
      svg.setPointerCapture(e.pointerId);
    });
    svg.addEventListener("pointermove", (e) => {
      if (drag) {
        const dx = e.clientX - drag.x;
        if (Math.abs(dx) > 3 || drag.moved) {
          if (!drag.moved) svg.classList.add("dragging");
          drag.moved = true;
          drag.x = e.clientX;
          pan(-dx);
          tip.hidden = true;
          return;
        }
      }
      showTip(e);
    });
    svg.addEventListener("pointerup", () => {
      if (!drag) return;
      const d = drag;
      drag = null;
      svg.classList.remove("dragging");
      if (!d.moved) activate(d.target);
    });
    svg.addEventListener("pointerleave", () => { tip.hidden = true; });
    svg.addEventListener("dblclick", (e) => zoomAt(e.clientX - svg.getBoundingClientRect().left, 2));
    svg.addEventListener("wheel", (e) => {
      const px = e.clientX - svg.getBoundingClientRect().left;
      if (e.ctrlKey || e.metaKey || e.altKey) {
        e.preventDefault();
        zoomAt(px, Math.exp(-e.deltaY * 0.0025));
      } else if (Math.abs(e.deltaX) > Math.abs(e.deltaY)) {
        e.preventDefault();
        pan(e.deltaX);
      }
    }, { passive: false });
    wrap.addEventListener("keydown", (e) => {
      const mark = e.target.closest && e.target.closest(".mark");
      if (mark && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); activate(mark); return; }
      const steps = { "+": () => zoomAt(L + PW / 2, 1.6), "=": () => zoomAt(L + PW / 2, 1.6),
        "-": () => zoomAt(L + PW / 2, 1 / 1.6), "0": reset, ArrowLeft: () => pan(-PW / 8), ArrowRight: () => pan(PW / 8) };
      if (steps[e.key]) { e.preventDefault(); steps[e.key](); }
    });
    window.addEventListener("resize", () => later(true));
    function activate(target) {
      const bar = target.closest && target.closest(".bar, .lit, .arrow");
      if (bar) { openTest(+bar.getAttribute("data-t"), +bar.getAttribute("data-a")); return; }
      const mark = target.closest && target.closest(".mark");
      if (mark) openMark(+mark.getAttribute("data-m"));
    }
    function showTip(e) {
      const t = e.target.closest && e.target.closest(".bar, .lit");
      if (!t) { tip.hidden = true; return; }
      const test = T[+t.getAttribute("data-t")];
      const a = test.att[+t.getAttribute("data-a")];
      const lines = [test.id, "attempt " + a[9] + " on " + (a[0] >= 0 ? W[a[0]].id : "?") + ": " + OUT[a[4]] +
        ", " + fmtMs(a[2] - a[1]) + " at " + fmtMs(a[1])];
      if (a[5] >= 0) lines.push(D.categories[a[5]] + (a[6] >= 0 ? " · pattern " + P[a[6]].id : ""));
      const x = a[7] >= 0 ? D.details[a[7]] : null;
      if (x && x.message !== undefined && x.message >= 0) lines.push(clip(S(x.message), 300));
      tip.textContent = lines.join("\n");
      tip.hidden = false;
      const w = tip.offsetWidth, h = tip.offsetHeight;
      tip.style.left = Math.min(e.clientX + 14, window.innerWidth - w - 8) + "px";
      tip.style.top = (e.clientY + 18 + h > window.innerHeight ? e.clientY - h - 10 : e.clientY + 18) + "px";
    }
    // A highlight dims the bars' group as a whole (one layer, not 10,000 opacities) and draws
    // copies of the pattern's bars over it; the bars themselves are marked "hl".
    let lit = [];
    function highlight(pi) {
      svg.classList.toggle("hl-on", pi >= 0);
      for (const b of lit) b.el.classList.remove("hl");
      lit = pi >= 0 ? bars.filter((b) => b.p === pi) : [];
      for (const b of lit) b.el.classList.add("hl");
      copies();
      return lit.length;
    }
    function copies() {
      gLit.textContent = "";
      for (const b of lit) {
        const c = b.el.cloneNode(false);
        c.setAttribute("class", "lit o-" + OUT[b.o]);
        gLit.append(c);
      }
    }
    timelineApi = { layout: () => { queued = 2; layout(); }, highlight, select: (ti, ai) => {
      for (const b of bars) if (b.el.classList.contains("sel") || (b.t === ti && (ai === undefined || b.ai === ai))) {
        b.el.classList.toggle("sel", b.t === ti && (ai === undefined || b.ai === ai));
      }
    } };

    sec.append(toolbar, legend, wrap, live);
    if (!bars.length) sec.append(el("p", { class: "muted" }, "No attempt has a time in this report: nothing to draw."));
    sec.append(eventsTable());
    return sec;
  }

  function eventsTable() {
    const rows = D.marks.map((m, mi) => ({ m, mi })).sort((x, z) => (x.m.t ?? Infinity) - (z.m.t ?? Infinity));
    if (!rows.length) return el("p", { class: "muted" }, "No worker died, was lost, quarantined or poisoned; the breaker did not trip.");
    const tbody = el("tbody");
    rows.forEach(({ m, mi }, i) => {
      tbody.append(el("tr", { tabindex: i === 0 ? "0" : "-1", "data-m": mi },
        el("td", { class: "num" }, m.t === null ? "–" : fmtMs(m.t)),
        el("td", null, m.worker >= 0 ? W[m.worker].id : "all"),
        el("td", null, m.kind),
        el("td", null, m.label),
        el("td", { class: "tpl" }, clip((S(m.text) || "").split("\n").slice(0, 2).join(" "), 200))));
    });
    rowKeys(tbody, (tr) => openMark(+tr.getAttribute("data-m")));
    tbody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) openMark(+tr.getAttribute("data-m")); });
    return el("details", { open: rows.length <= 30 },
      el("summary", null, "Events on the timeline (" + rows.length + ")"),
      el("table", { class: "events" }, el("thead", null, el("tr", null,
        el("th", { class: "num" }, "time"), el("th", null, "worker"), el("th", null, "kind"), el("th", null, "what"),
        el("th", null, "details"))), tbody));
  }

  // -- patterns ---------------------------------------------------------------
  function patterns() {
    const sec = el("section", { id: "patterns", "aria-labelledby": "pat-h" }, el("h2", { id: "pat-h" }, "Patterns"));
    if (!P.length) { sec.append(el("p", { class: "muted" }, "No failures, so no error patterns.")); return sec; }
    sec.append(el("p", { class: "muted" }, "Failures clustered by normalized message. Click a pattern (or press Enter on it) to highlight its attempts on the timeline."));
    const tbody = el("tbody");
    P.forEach((p, pi) => {
      const ex = S(p.example.message);
      tbody.append(el("tr", { tabindex: pi === 0 ? "0" : "-1", "data-p": p.id, "aria-selected": "false" },
        el("td", null, el("b", null, p.id)),
        el("td", null, p.scope),
        el("td", null, p.category),
        el("td", { class: "num" }, p.count),
        el("td", { class: "num", title: p.names.join("\n") }, p.tests),
        el("td", null, clip(p.nodes.join(", "), 200)),
        el("td", { class: "tpl" }, el("code", null, clip(p.template, 400)),
          ex ? el("div", { class: "muted" }, "e.g. " + (p.example.test ? p.example.test + ": " : "") + clip(ex, 300)) : null),
        el("td", null, p.hint)));
    });
    let current = -1;
    const choose = (tr) => {
      const pi = P.findIndex((p) => p.id === tr.getAttribute("data-p"));
      current = current === pi ? -1 : pi;
      for (const r of tbody.rows) r.setAttribute("aria-selected", String(r === tr && current >= 0));
      const n = timelineApi ? timelineApi.highlight(current) : 0;
      live.textContent = current >= 0 ? "pattern " + P[current].id + ": " + plural(n, "attempt") + " highlighted on the timeline" : "";
    };
    highlightFromDialog = (pi) => { const tr = tbody.rows[pi]; if (tr) { current = -1; choose(tr); } };
    tbody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) choose(tr); });
    rowKeys(tbody, choose);
    sec.append(el("table", { class: "patterns" }, el("thead", null, el("tr", null,
      ["id", "scope", "category", "count", "tests", "workers", "template", "hint"].map((h) =>
        el("th", { class: h === "count" || h === "tests" ? "num" : null, scope: "col",
          title: h === "count" ? "failed attempts" : h === "tests" ? "distinct tests" : null }, h)))), tbody));
    return sec;
  }
  // -- tests ------------------------------------------------------------------
  function testsSection() {
    const sec = el("section", { id: "tests", "aria-labelledby": "tests-h" }, el("h2", { id: "tests-h" }, "Tests"));
    const hasHistory = T.some((t) => t.info.history);
    const cols = [["outcome", "outcome"], ["name", "test"], ["attempts", "attempts"], ["category", "category"],
      ["duration", "duration"], ["workers", "workers"]];
    if (hasHistory) cols.push(["history", "history"]);
    const state = { q: "", outcome: "all", key: "outcome", dir: 1, page: 0 };
    const search = el("input", { type: "search", placeholder: "filter: name, category, pattern, message",
      "aria-label": "filter tests", size: "40" });
    const select = el("select", { "aria-label": "outcome" },
      [["all", "all outcomes"], ["failures", "failed or error"], ["failed", "failed"], ["error", "error"],
        ["flaky", "flaky"], ["passed", "passed"], ["skipped", "skipped"], ["quarantined", "quarantined"],
        ["victims", "victims"], ["retried", "more than one attempt"], ["history", "with a history"]]
        .map(([v, t]) => el("option", { value: v }, t)));
    const info = el("span", { class: "muted", "aria-live": "polite" });
    const prev = el("button", { type: "button" }, "‹ previous");
    const next = el("button", { type: "button" }, "next ›");
    const thead = el("thead");
    const headRow = el("tr");
    const ths = {};
    for (const [key, label] of cols) {
      const th = el("th", { scope: "col", class: key === "attempts" || key === "duration" ? "num" : null },
        el("button", { type: "button", "data-sort": key, onclick: () => sortBy(key) }, label));
      ths[key] = th;
      headRow.append(th);
    }
    thead.append(headRow);
    const tbody = el("tbody");
    const table = el("table", { class: "tests", "aria-rowcount": T.length }, thead, tbody);
    sec.append(el("div", { class: "toolbar" }, search, select, info), table, el("div", { class: "pager" }, prev, next));

    const matches = {
      all: () => true, failures: (t) => t.o === 1 || t.o === 2, retried: (t) => t.att.length > 1,
      quarantined: (t) => t.quarantined, victims: (t) => t.victim, history: (t) => !!t.info.history,
    };
    function hay(t) {
      if (t.hay === null) {
        const parts = [t.id, t.cat, OUT[t.o], t.workers];
        for (const a of t.att) {
          if (a[5] >= 0) parts.push(D.categories[a[5]]);
          if (a[6] >= 0) parts.push(P[a[6]].id);
          const x = a[7] >= 0 ? D.details[a[7]] : null;
          if (x) parts.push(S(x.type) || "", S(x.message) || "");
        }
        t.hay = parts.join("\n").toLowerCase();
      }
      return t.hay;
    }
    const sorters = {
      outcome: (x, z) => RANK[OUT[x.o]] - RANK[OUT[z.o]] || (z.att.length - x.att.length),
      name: () => 0, attempts: (x, z) => x.att.length - z.att.length,
      category: (x, z) => (x.cat || "~").localeCompare(z.cat || "~"), duration: (x, z) => x.dur - z.dur,
      workers: (x, z) => x.workers.localeCompare(z.workers), history: (x, z) => x.score - z.score,
    };
    let view = [];
    function compute() {
      const q = state.q.trim().toLowerCase();
      const want = matches[state.outcome] || ((t) => OUT[t.o] === state.outcome);
      view = T.filter((t) => want(t) && (!q || hay(t).includes(q)));
      const cmp = sorters[state.key];
      view.sort((x, z) => state.dir * (cmp(x, z) || (x.id < z.id ? -1 : x.id > z.id ? 1 : 0)));
      for (const [key] of cols) ths[key].setAttribute("aria-sort", key === state.key ? (state.dir > 0 ? "ascending" : "descending") : "none");
      state.page = Math.min(state.page, Math.max(0, Math.ceil(view.length / PAGE) - 1));
      draw();
    }
    function draw(focusFirst) {
      tbody.textContent = "";
      const start = state.page * PAGE, rows = view.slice(start, start + PAGE);
      const frag = document.createDocumentFragment();
      rows.forEach((t, i) => frag.append(row(t, i === 0, start + i)));
      tbody.append(frag);
      info.textContent = view.length ? "showing " + (start + 1) + "–" + (start + rows.length) + " of " + view.length +
        (view.length !== T.length ? " (of " + T.length + ")" : "") : "no test matches";
      prev.disabled = state.page === 0;
      next.disabled = start + PAGE >= view.length;
      if (focusFirst && tbody.rows.length) tbody.rows[0].focus();
    }
    function row(t, first, index) {
      const name = el("td", { class: "name" }, el("code", null, t.id),
        t.quarantined ? el("span", { class: "tag o-quarantined" }, "quarantined") : null,
        t.victim ? el("span", { class: "tag o-victim" }, "victim") : null,
        t.info.poison && t.info.poison.role === "culprit" ? el("span", { class: "tag o-failed" }, "culprit") : null,
        t.info.repeat ? el("span", { class: "tag" }, t.info.repeat.kind + " " + t.info.repeat.passed + "/" + t.info.repeat.runs) : null,
        t.info.reason !== undefined ? el("div", { class: "muted" }, clip(S(t.info.reason), 300)) : null);
      const cells = [
        el("td", null, el("span", { class: "badge o-" + OUT[t.o] }, OUT[t.o])), name,
        el("td", { class: "num" }, t.att.length),
        el("td", null, t.cat),
        el("td", { class: "num" }, fmtMs(t.dur)),
        el("td", null, clip(t.workers, 80)),
      ];
      if (hasHistory) cells.push(el("td", null, historyCell(t.info.history)));
      return el("tr", { tabindex: first ? "0" : "-1", "data-t": t.i, "aria-rowindex": index + 2 }, cells);
    }
    function sortBy(key) {
      if (state.key === key) state.dir = -state.dir;
      else { state.key = key; state.dir = key === "duration" || key === "attempts" || key === "history" ? -1 : 1; }
      compute();
    }
    let timer = 0;
    search.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.q = search.value; state.page = 0; compute(); }, 120);
    });
    select.addEventListener("change", () => { state.outcome = select.value; state.page = 0; compute(); });
    const turn = (d) => {
      const last = Math.max(0, Math.ceil(view.length / PAGE) - 1);
      const page = Math.min(Math.max(state.page + d, 0), last);
      if (page !== state.page) { state.page = page; draw(true); }
    };
    prev.addEventListener("click", () => turn(-1));
    next.addEventListener("click", () => turn(1));
    tbody.addEventListener("click", (e) => { const tr = e.target.closest("tr"); if (tr) openTest(+tr.getAttribute("data-t")); });
    rowKeys(tbody, (tr) => openTest(+tr.getAttribute("data-t")), turn);
    filterOutcome = (key) => {
      select.value = key;
      state.outcome = select.value === key ? key : "all";
      state.page = 0;
      compute();
      sec.scrollIntoView({ block: "start" });
    };
    compute();
    return sec;
  }

  function historyCell(h) {
    if (!h) return null;
    const notes = (h.notes || []).map((n) => S(n.text)).filter(Boolean);
    return [sparkline(h.recent), h.score !== null ? "score " + h.score.toFixed(2) : "",
      notes.length ? el("div", { class: "muted" }, clip(notes[0], 140)) : null];
  }

  function sparkline(recent) {
    if (!recent) return null;
    const hgt = { P: 5, K: 10, F: 14, E: 14, S: 3 };
    const names = { P: "passed", K: "flaky", F: "failed", E: "error", S: "skipped" };
    const g = sv("svg", { class: "spark", width: recent.length * 4, height: 14, role: "img",
      "aria-label": "recent runs, oldest first: " + [...recent].map((c) => names[c]).join(", ") });
    [...recent].forEach((c, i) => g.append(sv("rect", { class: c, x: i * 4, y: 14 - hgt[c], width: 3, height: hgt[c] })));
    return g;
  }

  // -- tables: keyboard -----------------------------------------------------
  function rowKeys(tbody, activate, turnPage) {
    tbody.addEventListener("keydown", (e) => {
      const tr = e.target.closest && e.target.closest("tr");
      if (!tr || tr.parentNode !== tbody) return;
      const rows = tbody.rows;
      let j = null;
      const i = tr.sectionRowIndex;
      if (e.key === "ArrowDown") j = Math.min(i + 1, rows.length - 1);
      else if (e.key === "ArrowUp") j = Math.max(i - 1, 0);
      else if (e.key === "Home") j = 0;
      else if (e.key === "End") j = rows.length - 1;
      else if (e.key === "Enter" || e.key === " ") { e.preventDefault(); activate(tr); return; }
      else if ((e.key === "PageDown" || e.key === "PageUp") && turnPage) { e.preventDefault(); turnPage(e.key === "PageDown" ? 1 : -1); return; }
      else return;
      e.preventDefault();
      for (const r of rows) r.tabIndex = -1;
      rows[j].tabIndex = 0;
      rows[j].focus();
    });
  }

  // -- details ----------------------------------------------------------------
  function show(title, body) {
    dialog.textContent = "";
    const close = el("button", { type: "button", "aria-label": "close", onclick: () => dialog.close() }, "close ✕");
    dialog.append(el("div", { class: "dlg-head" }, el("h3", { id: "detail-title" }, title), close),
      el("div", { class: "dlg-body" }, body));
    if (!dialog.open) dialog.showModal();
    close.focus();
  }

  function openTest(ti, ai) {
    const t = T[ti];
    if (!t) return;
    if (timelineApi) timelineApi.select(ti, ai);
    const body = [];
    const kv = el("dl", { class: "kv" });
    const item = (k, ...v) => kv.append(el("dt", null, k), el("dd", null, ...v));
    item("outcome", el("span", { class: "badge o-" + OUT[t.o] }, OUT[t.o]));
    if (t.info.reason !== undefined) item("reason", S(t.info.reason));
    const q = t.info.quarantine;
    if (q) item("quarantined", q.reason + (q.score !== null ? " (score " + q.score.toFixed(2) + ")" : "") +
      (q.since !== null ? ", since " + new Date(q.since * 1000).toISOString() : ", since this run"));
    const po = t.info.poison;
    if (po) item("poisoning", po.role + " on " + po.worker + ": " + po.signature + (po.role === "victim" ? "; culprit " + po.culprit : ""));
    const rp = t.info.repeat;
    if (rp) item("runs", (rp.kind === "new" ? "new test, early flake detection: " : "--dtf-repeat: ") + rp.passed + " of " + rp.runs + " passed");
    const h = t.info.history;
    if (h) {
      item("history", sparkline(h.recent), (h.score !== null ? " score " + h.score.toFixed(2) : "") +
        (h.runs !== null ? " · " + plural(h.runs, "run") : ""));
      for (const n of h.notes || []) item(n.kind.replace(/_/g, " "), S(n.text));
    }
    if (t.info.suspects) item("ran before it", el("ul", null, t.info.suspects.map((s) => el("li", null, S(s)))));
    body.push(kv);
    if (!t.att.length) body.push(el("p", { class: "muted" }, "No attempt ran."));
    let focus = null;
    t.att.forEach((a, i) => {
      const x = a[7] >= 0 ? D.details[a[7]] : {};
      const w = a[0] >= 0 ? W[a[0]] : null;
      const head = "Attempt " + a[9] + (w ? " on " + w.id + " (" + [w.host, w.hw.join(",")].filter(Boolean).join(", ") + ")" : "") +
        ": " + OUT[a[4]] + (x.phase === undefined || a[4] === 0 ? "" : S(x.phase) === "crash" ? " (the worker died)" : " in " + S(x.phase));
      const d = el("dl", { class: "kv" });
      const it = (k, ...v) => d.append(el("dt", null, k), el("dd", null, ...v));
      it("time", (a[1] !== null ? "at " + fmtMs(a[1]) + " from the start, " : "") + "ran " + fmtMs(a[3]) +
        (a[1] !== null && a[2] !== null ? " (" + fmtMs(a[2] - a[1]) + " on the worker)" : ""));
      if (a[5] >= 0) it("category", D.categories[a[5]] + (x.rule !== undefined ? " (rule " + S(x.rule) + ")" : ""));
      if (a[6] >= 0) {
        const pi = a[6];
        it("pattern", el("button", { type: "button", title: "highlight on the timeline",
          onclick: () => { dialog.close(); highlightFromDialog(pi); document.getElementById("timeline").scrollIntoView(); } },
        P[pi].id), " " + clip(P[pi].template, 200));
      }
      if (x.type !== undefined || x.message !== undefined) {
        it("error", el("pre", null, (S(x.type) ? S(x.type) + ": " : "") + (S(x.message) ?? "")));
      }
      if (x.teardown !== undefined) it("teardown", el("pre", null, S(x.teardown)));
      if (x.retry !== undefined) {
        it("decision", (x.retry ? "retry" + (x.delay !== undefined ? " after " + S(x.delay) + " s" : "") : "not retried") +
          (S(x.decision) ? ": " + S(x.decision) : ""));
      }
      if (x.actions !== undefined) it("actions", S(x.actions));
      const block = el("div", { class: "attempt o-" + OUT[a[4]], id: "att-" + i }, el("h4", null, head), d);
      if (x.forensics !== undefined) block.append(el("div", null, el("b", null, "crash forensics"), el("pre", null, S(x.forensics))));
      if (x.traceback !== undefined) block.append(el("details", null, el("summary", null, "traceback"), el("pre", null, S(x.traceback))));
      if (x.stderr_tail !== undefined) block.append(el("details", null, el("summary", null, "stderr"), el("pre", null, S(x.stderr_tail))));
      if (ai === i) focus = block;
      body.push(block);
    });
    show(t.id, body);
    if (focus) focus.scrollIntoView({ block: "nearest" });
  }

  function openMark(mi) {
    const m = D.marks[mi];
    if (!m) return;
    const kv = el("dl", { class: "kv" });
    const item = (k, ...v) => kv.append(el("dt", null, k), el("dd", null, ...v));
    item("kind", m.kind);
    item("worker", m.worker >= 0 ? W[m.worker].id + " on " + W[m.worker].host : "all workers");
    item("time", m.t === null ? "unknown" : fmtMs(m.t) + " from the start" +
      (m.kind === "crash" ? "" : " (placed at its related attempt: the report has no time of its own for it)"));
    if (m.test >= 0) item("test", el("button", { type: "button", onclick: () => openTest(m.test, m.attempt) }, T[m.test].id));
    show(m.label, [kv, el("pre", { class: "mark-text" }, S(m.text) || "")]);
  }
})();
