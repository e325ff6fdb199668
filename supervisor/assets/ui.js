// qos-elastic supervisor page: polls /api/v1 every 2 s; no external resources.
"use strict";
(function () {
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const CLASSES = ["UNDER_PERFORMANT", "ON_PLAN", "OVER_PERFORMANT", "AT_RISK", "NO_DATA"];
  const $ = (id) => document.getElementById(id);
  // The job list is read a page at a time: a supervisor keeps finished jobs for days.
  const PAGE = 100;
  let selected = null;
  let offset = 0;
  let timer = null;

  // ---- token (kept for this tab only) -------------------------------------------------
  function token() { return sessionStorage.getItem("qos-admin-token") || ""; }
  $("token").value = token();
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    const t = $("token").value.trim();
    if (t) sessionStorage.setItem("qos-admin-token", t); else sessionStorage.removeItem("qos-admin-token");
    refresh();
  });

  // The body of a GET, and the `X-Total-Count` of a list.
  async function apiPage(path) {
    const headers = { "Accept": "application/json" };
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    const r = await fetch(path, { headers, cache: "no-store" });
    if (r.status === 401) throw new Error("the API needs the admin token (field above)");
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { const b = await r.json(); if (b && b.error) msg = b.error.message || msg; } catch (_) { /* not JSON */ }
      throw new Error(path + ": " + msg);
    }
    const total = Number(r.headers.get("X-Total-Count"));
    return [await r.json(), isFinite(total) ? total : null];
  }
  async function api(path) { return (await apiPage(path))[0]; }

  // ---- helpers --------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "title") e.title = shown(v); else e.setAttribute(k, v);
    }
    // Every text is the client's string made visible (see `shown`), never markup.
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(shown(c)));
    return e;
  }
  function num(x, d) { return (x == null || !isFinite(x)) ? "–" : Number(x).toFixed(d); }
  // A length of time (≥ 0 s) in the unit that reads best, up to years.
  function span(a) {
    if (a < 120) return a.toFixed(0) + " s";
    if (a < 7200) return (a / 60).toFixed(1) + " min";
    if (a < 172800) return (a / 3600).toFixed(1) + " h";
    if (a < 31557600) return (a / 86400).toFixed(1) + " d";
    return (a / 31557600).toFixed(1) + " y";
  }
  function secs(s) {
    if (s == null || !isFinite(s)) return "–";
    if (Math.abs(s) < 0.5) return "0 s";
    return (s < 0 ? "−" : "+") + span(Math.abs(s));
  }
  // Time left to a deadline: "overdue by …" once it has passed.
  function left(s) {
    if (s == null || !isFinite(s)) return "–";
    return s >= 0 ? span(s) : "overdue by " + span(-s);
  }
  const two = (n) => String(n).padStart(2, "0");
  // Wall-clock time; with its date when it is not within 12 hours of now.
  function clock(t) {
    if (t == null || !isFinite(t) || Math.abs(t) > 8.64e12) return "–";
    const d = new Date(t * 1000);
    const hms = two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
    if (Math.abs(t - Date.now() / 1000) < 43200) return hms;
    return d.getFullYear() + "-" + two(d.getMonth() + 1) + "-" + two(d.getDate()) + " " + hms.slice(0, 5);
  }
  // A client's string as text an operator can trust: control, zero-width and bidi-override
  // characters (which hide text, or reverse what follows) are shown as their code points.
  function shown(s) {
    if (s == null) return "";
    return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g,
      (c) => "⟨U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟩");
  }
  function classBadge(c) {
    const known = CLASSES.includes(c) ? c : "none";
    return el("span", { class: "class " + known }, c || "—");
  }
  function progressBar(p) {
    const f = Math.max(0, Math.min(1, Number(p) || 0));
    const bar = el("span", { class: "bar", title: (f * 100).toFixed(1) + " %" }, el("span"));
    bar.firstChild.style.width = (f * 100).toFixed(1) + "%";
    return el("span", {}, bar, " " + (f * 100).toFixed(0) + " %");
  }
  function setStatus(text, error) {
    const s = $("status");
    s.textContent = shown(text);
    s.className = "status" + (error ? " error" : "");
  }

  // ---- jobs -----------------------------------------------------------------------------
  function listQuery() {
    const state = $("job-state").value, fw = $("job-framework").value;
    // Newest first, so the jobs of the moment lead whatever the supervisor still remembers.
    let q = "?limit=" + PAGE + "&offset=" + offset + "&order=desc";
    if (state) q += "&state=" + state;
    if (fw) q += "&framework=" + fw;
    return q;
  }
  function renderJobs(jobs, total) {
    const tb = $("jobs").tBodies[0];
    tb.replaceChildren();
    const state = $("job-state").value;
    total = total == null ? jobs.length : total;
    $("job-count").textContent = "(" + total.toLocaleString("en") + (state ? " " + state : "") + ")";
    $("page-info").textContent = jobs.length ? (offset + 1).toLocaleString("en") + "–" + (offset + jobs.length).toLocaleString("en") + " of " + total.toLocaleString("en") : "";
    $("prev").disabled = offset === 0;
    $("next").disabled = offset + jobs.length >= total;
    $("no-jobs").hidden = jobs.length > 0;
    $("no-jobs").textContent = state === "active" ? "No active jobs." : state === "finished" ? "No finished jobs." : "No jobs registered yet.";
    const now = Date.now() / 1000;
    for (const j of jobs) {
      const q = j.qos || {};
      const pvd = j.prediction != null && q.deadline_at != null ? j.prediction - q.deadline_at : null;
      const pcell = el("td", { class: "num " + (pvd == null ? "" : pvd > 0 ? "late" : "early") }, secs(pvd));
      const tr = el("tr", { "data-uuid": j.uuid, "data-class": j.class || "" },
        el("td", { class: "name", title: j.uuid }, j.name),
        el("td", {}, j.framework),
        el("td", j.state === "lost" ? { class: "lost", title: j.lost_reason || "" } : {}, j.state),
        el("td", {}, classBadge(j.class)),
        el("td", {}, progressBar(j.progress)),
        pcell,
        ["completed", "failed", "cancelled", "lost"].includes(j.state) ? el("td", { class: "num" }, "done")
          : el("td", { class: "num" + (q.deadline_at != null && q.deadline_at < now ? " late" : "") }, q.deadline_at != null ? left(q.deadline_at - now) : "–"),
        el("td", { class: "num" }, num(j.cpus, 2)),
        el("td", { class: "num" }, j.resizes == null ? "–" : j.resizes));
      if (j.uuid === selected) tr.classList.add("selected");
      tr.addEventListener("click", () => select(j.uuid));
      tb.append(tr);
    }
  }

  function select(uuid) {
    selected = uuid;
    if (location.hash !== "#job=" + uuid) history.replaceState(null, "", "#job=" + uuid);
    refresh();
  }

  // ---- one job ---------------------------------------------------------------------------
  function renderJob(job, rows) {
    $("job-view").hidden = false;
    const q = job.qos || {};
    $("job-title").replaceChildren(el("bdi", {}, job.name), " ", classBadge(job.class));
    const facts = [
      ["framework", job.framework], ["state", job.state], ["CPU", num(job.cpus, 2)],
      ["progress", ((Number(job.progress) || 0) * 100).toFixed(0) + " %"],
      ["deadline", clock(q.deadline_at)], ["predicted finish", clock(job.prediction)],
      ["resizes", job.resizes], ["node", job.node || "–"],
    ];
    if (job.remaining_iterations != null && job.framework === "chronos") facts.push(["iterations left", job.remaining_iterations]);
    if (job.cpu_seconds != null) facts.push(["CPU used", num(job.cpu_seconds, 1) + " CPU-s"]);
    if (job.lost_reason) facts.push(["lost", job.lost_reason]);
    if (job.framework === "marathon") {
      facts.push(["checkpoints", job.checkpointing === "able" ? "yes" : job.checkpointing === "unable" ? "no" : "unknown"]);
      if (job.restarts) facts.push(["restarts", job.restarts]);
      // Work thrown away by restarts from scratch: CPU-seconds that bought nothing.
      if (job.restarts_lost) facts.push(["lost work", num(job.cpu_seconds_lost, 1) + " CPU-s in " + job.restarts_lost + " restart(s) from scratch"]);
    }
    if (job.last_error) facts.push(["last error", job.last_error]);
    $("job-facts").replaceChildren(...facts.map(([k, v]) => el("span", {}, k + ": ", el("bdi", {}, el("b", {}, v)))));

    // CPU over time: the allocation before the first resize, then each applied resize.
    const now = Date.now() / 1000;
    const t0 = job.registered_at || (rows.length ? rows[0].at : now);
    const resizes = rows.filter((r) => r.kind === "resize" && r.action && r.action.to != null);
    const cpu = [[t0, resizes.length ? resizes[0].action.from : job.cpus]];
    for (const r of resizes) cpu.push([r.at, r.action.to]);
    cpu.push([Math.max(now, t0 + 1), job.cpus]);
    lineChart($("chart-cpu"), [{ color: "#1971c2", points: cpu, step: true, dots: true }], { y0: 0, unit: "" });

    // Prediction − deadline at each decision, with the ON_PLAN band.
    const dl = q.deadline_at;
    const dec = rows.filter((r) => r.kind === "decision" && r.figures && r.figures.prediction != null && dl != null);
    const pred = dec.map((r) => [r.at, r.figures.prediction - dl]);
    const sup = dec.filter((r) => r.figures.band_sup != null).map((r) => [r.at, r.figures.band_sup - dl]);
    const inf = dec.filter((r) => r.figures.band_inf != null).map((r) => [r.at, r.figures.band_inf - dl]);
    // Each figure holds until the next decision; the latest decision (stored in the history
    // only when something changed) gives the value now.
    const d = job.decision || {};
    const f = d.figures || {};
    const latest = [[pred, f.prediction], [sup, f.band_sup], [inf, f.band_inf]];
    for (const [s, v] of latest) {
      if (v != null && dl != null && d.at != null && (!s.length || d.at > s[s.length - 1][0])) s.push([d.at, v - dl]);
      if (s.length && now > s[s.length - 1][0]) s.push([now, s[s.length - 1][1]]);
    }
    lineChart($("chart-pred"), [
      { color: "#d9480f", points: pred, step: true, dots: false },
    ], { zero: true, band: sup.length && inf.length ? { upper: sup, lower: inf } : null, unit: "s" });

    // Decision log, newest first.
    const tb = $("log").tBodies[0];
    tb.replaceChildren();
    for (const r of rows.slice().reverse()) {
      tb.append(el("tr", {},
        el("td", {}, clock(r.at)),
        el("td", { class: "kind-" + r.kind }, r.kind),
        el("td", {}, r.class ? classBadge(r.class) : ""),
        el("td", {}, describe(r.action)),
        el("td", { class: "reason" }, r.reason || "")));
    }
  }

  function describe(a) {
    if (!a) return "";
    if (a.action === "resize") return "resize → " + num(a.cpus, 2) + " CPU";
    if (a.from != null && a.to != null) return num(a.from, 2) + " → " + num(a.to, 2) + " CPU" + (a.mode ? " (" + a.mode + ")" : "");
    if (a.action) return a.action;
    return JSON.stringify(a);
  }

  // ---- a small SVG line chart -----------------------------------------------------------
  function lineChart(host, series, opt) {
    const W = 560, H = 180, L = 48, R = 10, T = 10, B = 22;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    const node = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text != null) e.textContent = text;
      svg.append(e);
      return e;
    };
    const pts = series.flatMap((s) => s.points);
    const band = opt.band;
    const all = pts.concat(band ? band.upper.concat(band.lower) : []);
    if (!pts.length) {
      node("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet");
      host.replaceChildren(svg);
      return;
    }
    let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
    let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
    if (opt.y0 != null) y0 = Math.min(y0, opt.y0);
    if (opt.zero) { y0 = Math.min(y0, 0); y1 = Math.max(y1, 0); }
    if (x1 - x0 < 1) { x1 = x0 + 1; }
    if (y1 - y0 < 1e-9) { y1 += 0.5; y0 -= opt.y0 === 0 && y0 <= 0.5 ? y0 : 0.5; }
    const pad = (y1 - y0) * 0.08; y1 += pad; if (opt.y0 == null || y0 < opt.y0) y0 -= pad;
    const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
    const Y = (y) => T + (y1 - y) / (y1 - y0) * (H - T - B);
    // grid and axes
    for (let i = 0; i <= 4; i++) {
      const v = y0 + (y1 - y0) * i / 4, y = Y(v);
      node("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e5e7eb" });
      node("text", { x: L - 4, y: y + 3, "text-anchor": "end" }, Math.abs(y1 - y0) >= 20 ? v.toFixed(0) : v.toFixed(2));
    }
    for (let i = 0; i <= 3; i++) {
      const t = x0 + (x1 - x0) * i / 3;
      node("text", { x: X(t), y: H - 6, "text-anchor": i === 0 ? "start" : i === 3 ? "end" : "middle" }, clock(t));
    }
    if (band) {
      const up = band.upper.map((p) => X(p[0]) + "," + Y(p[1]));
      const lo = band.lower.slice().reverse().map((p) => X(p[0]) + "," + Y(p[1]));
      if (up.length === 1) { up.push((X(band.upper[0][0]) + 6) + "," + Y(band.upper[0][1])); lo.unshift((X(band.lower[0][0]) + 6) + "," + Y(band.lower[0][1])); }
      node("polygon", { points: up.concat(lo).join(" "), fill: "rgba(43,138,62,0.15)", stroke: "rgba(43,138,62,0.5)" });
    }
    if (opt.zero) node("line", { x1: L, x2: W - R, y1: Y(0), y2: Y(0), stroke: "#c92a2a", "stroke-dasharray": "4 3" });
    for (const s of series) {
      if (!s.points.length) continue;
      let d = "";
      s.points.forEach((p, i) => {
        if (i === 0) d += "M" + X(p[0]) + "," + Y(p[1]);
        else if (s.step) d += "H" + X(p[0]) + "V" + Y(p[1]);
        else d += "L" + X(p[0]) + "," + Y(p[1]);
      });
      node("path", { d, fill: "none", stroke: s.color, "stroke-width": 2 });
      if (s.dots) for (const p of s.points) node("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: s.color });
    }
    host.replaceChildren(svg);
  }

  // ---- nodes ----------------------------------------------------------------------------
  function renderNodes(nodes) {
    const tb = $("nodes").tBodies[0];
    tb.replaceChildren();
    $("node-count").textContent = "(" + nodes.length + ")";
    $("no-nodes").hidden = nodes.length > 0;
    for (const n of nodes) {
      const hb = n.heartbeat || {};
      tb.append(el("tr", { "data-node": n.id },
        el("td", { title: n.hostname || "" }, n.id),
        el("td", { class: n.alive ? "" : "dead" }, n.alive ? "yes" : "no"),
        el("td", { class: "num" }, num(n.cpus, 0)),
        el("td", { class: "num" }, num(n.free_cpus, 2)),
        el("td", { class: "num" }, num(hb.allocated_cpus, 2)),
        el("td", { class: "num" }, num(hb.load1, 2)),
        el("td", { class: "num" }, n.jobs == null ? "–" : n.jobs),
        el("td", {}, clock(n.last_seen))));
    }
  }

  // ---- polling --------------------------------------------------------------------------
  async function refresh() {
    clearTimeout(timer);
    try {
      const [[jobs, total], nodes] = await Promise.all([apiPage("/api/v1/jobs" + listQuery()), api("/api/v1/nodes")]);
      if (!jobs.length && offset > 0 && total != null) {
        // The list shrank below this page (jobs finished or were forgotten): its last page.
        offset = Math.max(0, Math.floor((total - 1) / PAGE) * PAGE);
        return refresh();
      }
      renderJobs(jobs, total);
      renderNodes(nodes);
      // The selected job is shown whether or not it is on this page of the list.
      const shownJob = selected && await Promise.all([
        // Without its iteration reports (a Chronos job may have a million): the page shows none.
        api("/api/v1/jobs/" + encodeURIComponent(selected) + "?reports=0"),
        api("/api/v1/jobs/" + encodeURIComponent(selected) + "/history"),
      ]).catch((e) => { if (/no job/.test(e.message)) return null; throw e; });
      if (shownJob) renderJob(shownJob[0], shownJob[1]); else $("job-view").hidden = true;
      setStatus("updated " + clock(Date.now() / 1000), false);
    } catch (e) {
      setStatus(e.message, true);
    }
    timer = setTimeout(refresh, POLL_MS);
  }

  for (const id of ["job-state", "job-framework"]) $(id).addEventListener("change", () => { offset = 0; refresh(); });
  $("prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); refresh(); });
  $("next").addEventListener("click", () => { offset += PAGE; refresh(); });

  const m = /^#job=([0-9A-Za-z_-]+)$/.exec(location.hash);
  if (m) selected = m[1];
  window.addEventListener("hashchange", () => {
    const h = /^#job=([0-9A-Za-z_-]+)$/.exec(location.hash);
    if (h && h[1] !== selected) select(h[1]);
  });
  refresh();
})();
