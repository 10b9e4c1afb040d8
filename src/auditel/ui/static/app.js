// auditel viewer: one script for the live viewer (`auditel ui`, data from /api/...) and the report
// (`auditel report`, data embedded as JSON in the page). Every value from the trail is put into the
// page as text (textContent, never innerHTML): the trail holds text chosen by models and tool callers.
(function () {
  "use strict";
  var embedded = document.getElementById("auditel-data");
  var DATA = embedded ? JSON.parse(embedded.textContent) : null;
  var PAGE = 50;
  var state = { offset: 0, key: null, integrity: null, rowId: null, polling: false };

  function el(tag, props) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (k) {
        if (k === "class") node.className = props[k];
        else if (k === "text") node.textContent = props[k];
        else if (k === "style") props[k].split(";").forEach(function (d) { // CSSOM: allowed by the CSP, style="" is not
          var i = d.indexOf(":"); if (i > 0) node.style.setProperty(d.slice(0, i).trim(), d.slice(i + 1).trim());
        });
        else node.setAttribute(k, props[k]);
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function $(id) { return document.getElementById(id); }

  // --- times (nanoseconds arrive as strings: JS numbers cannot hold them exactly) --------------
  function nsToMs(ns) { return Number(BigInt(ns) / 1000000n); }
  function fmtTime(ns) { return new Date(nsToMs(ns)).toISOString().replace("T", " ").replace("Z", ""); }
  function fmtDur(ms) {
    if (ms === null || ms === undefined || ms === "") return "";
    ms = Number(ms);
    if (ms < 1) return ms.toFixed(2) + " ms";
    if (ms < 1000) return ms.toFixed(1) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(2) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }
  function parseWhen(text) { // "7d", "2h", "15m", "90s", "1w" or an ISO time -> ms since epoch
    text = (text || "").trim();
    if (!text) return null;
    var m = /^(\d+(?:\.\d+)?)\s*([smhdw])$/.exec(text);
    if (m) return Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 }[m[2]];
    var t = Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(text) || text.length <= 10 ? text : text + "Z");
    return isNaN(t) ? NaN : t;
  }

  // --- data sources --------------------------------------------------------------------------------
  function api(path, params) {
    var qs = new URLSearchParams();
    Object.keys(params || {}).forEach(function (k) { if (params[k]) qs.set(k, params[k]); });
    return fetch(path + (qs.toString() ? "?" + qs : ""), { cache: "no-store" }).then(function (r) {
      return r.json().then(function (body) { if (!r.ok) throw new Error(body.error || r.statusText); return body; });
    });
  }
  function filterValues() {
    var f = $("filters"), out = {};
    ["since", "until", "kind", "tool", "model", "outcome", "verdict", "q"].forEach(function (n) { out[n] = f.elements[n].value; });
    return out;
  }
  function getSessions(filters, offset) {
    if (!DATA) return api("/api/sessions", Object.assign({}, filters, { offset: String(offset), limit: String(PAGE) }));
    var since = parseWhen(filters.since), until = parseWhen(filters.until);
    if (Number.isNaN(since) || Number.isNaN(until)) return Promise.reject(new Error("From/To: use 7d, 2h, 15m or an ISO time"));
    var q = (filters.q || "").toLowerCase();
    var found = DATA.sessions.filter(function (s) {
      if (since !== null && nsToMs(s.end_ns) < since) return false;
      if (until !== null && nsToMs(s.start_ns) >= until) return false;
      if (filters.kind && s.kinds.indexOf(filters.kind) < 0) return false;
      if (filters.tool && s.tools.indexOf(filters.tool) < 0) return false;
      if (filters.model && s.models.indexOf(filters.model) < 0) return false;
      if (filters.outcome && s.outcomes.indexOf(filters.outcome) < 0) return false;
      if (filters.verdict && s.verdicts.indexOf(filters.verdict) < 0) return false;
      if (q && ![s.key, s.agent].concat(s.tools, s.models).some(function (v) { return String(v || "").toLowerCase().indexOf(q) >= 0; })) return false;
      return true;
    });
    return Promise.resolve({ total: found.length, offset: offset, limit: PAGE, sessions: found.slice(offset, offset + PAGE), facets: DATA.facets });
  }
  function getSession(key) { return DATA ? Promise.resolve(DATA.timelines[key] || null) : api("/api/session", { key: key }); }
  function getIntegrity() { return DATA ? Promise.resolve(DATA.integrity) : api("/api/integrity"); }
  function getDelivery() { return DATA ? Promise.resolve(DATA.delivery) : api("/api/delivery"); }

  // --- integrity panel ----------------------------------------------------------------------------
  function problemRids() {
    var map = {};
    ((state.integrity && state.integrity.problems) || []).forEach(function (p) { if (p.rid !== null && p.rid !== undefined) map[p.rid] = p; });
    return map;
  }
  function renderIntegrity(data) {
    state.integrity = data;
    var panel = $("integrity"), body = clear(panel.querySelector(".body"));
    panel.classList.toggle("bad", data.state !== "running" && !data.ok);
    panel.classList.toggle("good", !!data.ok);
    body.appendChild(el("div", { class: "headline", id: "integrity-headline", text: data.headline || "" }));
    if (data.state === "running" || data.stale) {
      body.appendChild(el("div", { class: "muted", text: "Checking the newest records…" }));
      if (!DATA && !state.polling) {
        state.polling = true;
        setTimeout(function () {
          state.polling = false;
          getIntegrity().then(function (d) { renderIntegrity(d); refreshTimelineMarks(); }).catch(function () {});
        }, 700);
      }
    }
    (data.problems || []).forEach(function (p) {
      var where = p.seq !== null && p.seq !== undefined ? "record " + p.seq + " of stream " + String(p.stream_id).slice(0, 8) : (p.stream_id ? "stream " + String(p.stream_id).slice(0, 8) : "the outbox");
      var line = el("div", { class: "problem", "data-rid": p.rid === null || p.rid === undefined ? "" : String(p.rid) },
        el("strong", { text: "At " + where + ": " }), p.plain || p.message, " ");
      if (p.session_key) {
        var a = el("a", { text: "show it in the timeline" });
        a.addEventListener("click", function () { openSession(p.session_key, p.rid); });
        line.appendChild(a);
      }
      body.appendChild(line);
    });
    var streams = data.streams || [];
    if (streams.length) {
      var kv = el("div", { class: "kv muted" });
      streams.forEach(function (s) {
        kv.appendChild(el("span", { text: "stream " + String(s.stream_id).slice(0, 8) }));
        kv.appendChild(el("span", { text: s.records + " records, " + s.checkpoints + " signed checkpoint(s)" +
          (s.key_id ? " (key " + s.key_id + ")" : "") + ", " + (s.end === "clean" ? "closed cleanly" : "no end marker yet") }));
      });
      body.appendChild(kv);
    }
    var shown = {};
    (data.notes || []).forEach(function (n) { // "ended cleanly" is already said per stream above
      var text = n.plain || n.message;
      if (n.code === "ended" || shown[text]) return;
      shown[text] = true;
      body.appendChild(el("div", { class: "muted", text: "Note: " + text }));
    });
  }
  function renderDelivery(d) {
    var body = clear($("delivery").querySelector(".body"));
    var kv = el("div", { class: "kv" });
    function row(k, v) { kv.appendChild(el("span", { class: "muted", text: k })); kv.appendChild(el("span", { text: v })); }
    row("Pending", String(d.pending));
    row("Shipped", String(d.shipped));
    row("Dead-lettered", String(d.dead_lettered));
    row("Oldest unshipped", d.oldest_pending_age_s === null ? "none" : fmtDur(d.oldest_pending_age_s * 1000) + " old");
    row("Last backend error", d.last_error || "none");
    body.appendChild(kv);
  }

  // --- sessions list ------------------------------------------------------------------------------
  function fillSelect(select, values) {
    var keep = select.value;
    clear(select).appendChild(el("option", { value: "", text: "any" }));
    values.forEach(function (v) { select.appendChild(el("option", { value: v, text: v })); });
    select.value = values.indexOf(keep) >= 0 ? keep : "";
  }
  function loadSessions() {
    $("sessions-error").textContent = "";
    return getSessions(filterValues(), state.offset).then(function (page) {
      var f = $("filters");
      ["kind", "tool", "model", "outcome", "verdict"].forEach(function (n) { fillSelect(f.elements[n], page.facets[n] || []); });
      var tbody = clear($("sessions").querySelector("tbody"));
      page.sessions.forEach(function (s) {
        var tr = el("tr", { "data-key": s.key, class: s.key === state.key ? "selected" : "" },
          el("td", { text: fmtTime(s.start_ns) }), el("td", { class: "num", text: fmtDur(s.duration_ms) }),
          el("td", { text: s.agent || "—" }), el("td", { text: s.key }), el("td", { class: "num", text: String(s.records) }),
          el("td", { class: "num", text: String(s.model_calls) }), el("td", { class: "num", text: String(s.tool_calls) }),
          el("td", { class: "num deny-count" + (s.denials ? " nz" : ""), text: String(s.denials) }),
          el("td", { class: "num fail-count" + (s.failures ? " nz" : ""), text: String(s.failures) }));
        tr.addEventListener("click", function () { openSession(s.key, null); });
        tbody.appendChild(tr);
      });
      if (!page.sessions.length) tbody.appendChild(el("tr", {}, el("td", { colspan: "9", class: "muted", text: "No sessions match these filters." })));
      var more = page.index && !page.index.complete;
      $("page").textContent = (page.total ? (page.offset + 1) + "–" + (page.offset + page.sessions.length) + " of " + page.total : "0 sessions") +
        (more ? " · reading older records: " + Math.floor(page.index.indexed_fraction * 100) + "% of the trail indexed" : "");
      if (more && !state.indexPoll) {
        state.indexPoll = setTimeout(function () { state.indexPoll = null; loadSessions(); }, 1500);
      }
      $("prev").disabled = page.offset <= 0;
      $("next").disabled = page.offset + page.sessions.length >= page.total;
    }).catch(function (e) { $("sessions-error").textContent = String(e.message || e); });
  }

  // --- timeline -----------------------------------------------------------------------------------
  var current = null;
  function openSession(key, focusRid) {
    state.key = key;
    Array.prototype.forEach.call(document.querySelectorAll("#sessions tbody tr"), function (tr) { tr.classList.toggle("selected", tr.getAttribute("data-key") === key); });
    return getSession(key).then(function (t) {
      current = t;
      $("timeline-section").hidden = false;
      if (!t) { $("timeline-title").textContent = "Session not found"; clear($("timeline")); return; }
      renderTimeline(t);
      var target = null;
      if (focusRid !== null && focusRid !== undefined) target = t.rows.filter(function (r) { return r.rids.indexOf(focusRid) >= 0; })[0];
      if (target) showRow(target); else $("detail-section").hidden = true;
      $("timeline-section").scrollIntoView();
    });
  }
  function renderTimeline(t) {
    var s = t.session;
    $("timeline-title").textContent = "Timeline of " + (s.agent ? s.agent + " — " : "") + s.key;
    $("timeline-meta").textContent = fmtTime(s.start_ns) + " · " + fmtDur(s.duration_ms) + " · " + s.records + " records" +
      (t.truncated ? " · only the first " + Object.keys(t.records).length + " records are shown" : "");
    var box = clear($("timeline"));
    // a record with a duration starts before it is written: the axis runs from the earliest start
    var t0 = BigInt(s.start_ns), tEnd = BigInt(s.end_ns);
    t.rows.forEach(function (r) { var a = BigInt(r.start_ns), b = BigInt(r.end_ns); if (a < t0) t0 = a; if (b > tEnd) tEnd = b; });
    var span = tEnd - t0;
    if (span <= 0n) span = 1n;
    var bad = problemRids();
    t.rows.forEach(function (r) {
      var left = Number((BigInt(r.start_ns) - t0) * 10000n / span) / 100;
      var width = Number((BigInt(r.end_ns) - BigInt(r.start_ns)) * 10000n / span) / 100;
      var problem = null;
      r.rids.forEach(function (rid) { if (bad[rid]) problem = bad[rid]; });
      var label = el("div", { class: "label", style: "padding-left:" + (r.depth * 1.4) + "em" },
        el("span", { class: "kind", text: r.kind.replace("_", " ") }), r.label);
      if (r.status === "denied") label.appendChild(el("span", { class: "badge denied", text: "denied" }));
      else if (r.status === "failure") label.appendChild(el("span", { class: "badge failure", text: "failed" }));
      if (problem) label.appendChild(el("span", { class: "badge integrity", text: "integrity problem" }));
      var row = el("div", { class: "trow " + r.status + (problem ? " integrity" : ""), "data-row": String(r.id), "data-kind": r.kind,
        "data-rids": r.rids.join(" "), title: problem ? (problem.plain || problem.message) : "" },
        el("div", { class: "t", text: "+" + fmtDur(Number(BigInt(r.start_ns) - t0) / 1e6) }), label,
        el("div", { class: "track" }, el("div", { class: "bar", style: "left:" + Math.min(left, 99.5) + "%;width:" + Math.max(width, 0.3) + "%" })),
        el("div", { class: "dur", text: fmtDur(r.duration_ms) }));
      row.addEventListener("click", function () { showRow(r); });
      box.appendChild(row);
    });
  }
  function refreshTimelineMarks() { if (current) renderTimeline(current); }

  // --- record details -----------------------------------------------------------------------------
  var DIGEST = /^(hmac-)?sha(256|384|512):[0-9a-f]{32,}$/;
  function valueCell(key, v) {
    var td = el("td");
    var text = typeof v === "string" ? v : JSON.stringify(v, null, 1);
    td.appendChild(document.createTextNode(text));
    if (typeof v === "string" && v.indexOf("[REDACTED:") >= 0) td.appendChild(el("span", { class: "badge redacted", text: "redacted" }));
    if ((typeof v === "string" && DIGEST.test(v)) || (/\.digests?$/.test(key) && v !== null)) td.appendChild(el("span", { class: "badge digest", text: "digest — not the content" }));
    return td;
  }
  function showRow(r) {
    state.rowId = r.id;
    Array.prototype.forEach.call(document.querySelectorAll(".trow"), function (n) { n.classList.toggle("selected", n.getAttribute("data-row") === String(r.id)); });
    var box = clear($("detail")), bad = problemRids();
    r.rids.forEach(function (rid) {
      var rec = current.records[String(rid)];
      if (!rec) return;
      var problem = bad[rid];
      var card = el("div", { class: "record" + (problem ? " integrity" : ""), "data-rid": String(rid) },
        el("h3", { text: rec.event_name + " · " + fmtTime(rec.time_unix_nano) }));
      if (problem) card.appendChild(el("div", { class: "problem", text: "Integrity problem: " + (problem.plain || problem.message) + " (" + problem.message + ")" }));
      var table = el("table", { class: "attrs" }), tb = el("tbody");
      var attrs = rec.attributes || {};
      Object.keys(attrs).sort().forEach(function (k) { tb.appendChild(el("tr", {}, el("td", { text: k }), valueCell(k, attrs[k]))); });
      [["trace_id", rec.trace_id], ["span_id", rec.span_id], ["severity", rec.severity_text], ["row (rid)", String(rec.rid)],
       ["shipping", rec.shipping], ["record hash", rec.hash]].forEach(function (p) {
        if (p[1] !== undefined && p[1] !== null) tb.appendChild(el("tr", {}, el("td", { text: p[0] }), valueCell(p[0] === "record hash" ? "x.digest" : p[0], p[1])));
      });
      if (rec.body !== undefined) tb.appendChild(el("tr", {}, el("td", { text: "body" }), valueCell("body", rec.body)));
      table.appendChild(tb);
      card.appendChild(table);
      box.appendChild(card);
    });
    $("detail-section").hidden = false;
  }

  // --- start --------------------------------------------------------------------------------------
  function start() {
    if (DATA) {
      $("source").textContent = "Report generated " + fmtTime(DATA.generated_ns) + " from " + DATA.outbox +
        (DATA.scope ? " · " + DATA.scope : "") + " · signing key " + ((DATA.integrity && DATA.integrity.key_ids || []).join(", ") || "none");
    } else {
      api("/api/info").then(function (i) { $("source").textContent = "Live, read-only view of " + i.outbox; });
      // the app keeps recording: re-check integrity and delivery now and then
      setInterval(function () {
        getIntegrity().then(function (d) {
          var before = JSON.stringify(state.integrity && state.integrity.problems);
          renderIntegrity(d);
          if (JSON.stringify(d.problems) !== before) refreshTimelineMarks();
        }).catch(function () {});
        getDelivery().then(renderDelivery).catch(function () {});
        if (state.offset === 0 && !state.indexPoll) loadSessions(); // new sessions appear at the top
      }, 3000);
    }
    getIntegrity().then(function (d) { renderIntegrity(d); refreshTimelineMarks(); });
    getDelivery().then(renderDelivery).catch(function () {});
    var f = $("filters");
    f.addEventListener("change", function () { state.offset = 0; loadSessions(); });
    f.addEventListener("input", function (e) { if (e.target.name === "q") { state.offset = 0; loadSessions(); } });
    f.addEventListener("reset", function () { setTimeout(function () { state.offset = 0; loadSessions(); }, 0); });
    f.addEventListener("submit", function (e) { e.preventDefault(); });
    $("prev").addEventListener("click", function () { state.offset = Math.max(0, state.offset - PAGE); loadSessions(); });
    $("next").addEventListener("click", function () { state.offset += PAGE; loadSessions(); });
    loadSessions().then(function () { document.body.setAttribute("data-ready", "1"); });
  }
  start();
})();
