// precache dashboard: one EventSource, six uPlot charts, the model panel and the alert list.
"use strict";
(function () {
  const KEEP = 300; // points per chart (10 minutes at the default 2 s interval)
  const t = [];
  const series = {
    hitRate: [[], []], latency: [[], []], accuracy: [[]], efficiency: [[]], memory: [[]], overhead: [[]],
  };
  const labels = {
    hitRate: ["hit ratio", "predictive hit ratio"], latency: ["p50", "p95"], accuracy: ["HR@5"],
    efficiency: ["used / completed"], memory: ["MiB"], overhead: ["warming / user misses"],
  };
  const colors = ["#2563eb", "#dc2626"];
  const charts = {};
  const $ = (id) => document.getElementById(id);

  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  function num(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits); }

  function chart(key) {
    if (charts[key]) return charts[key];
    const el = $("c-" + key);
    const opts = {
      width: Math.max(300, el.clientWidth || 480), height: 180,
      series: [{}].concat(labels[key].map((label, i) => ({ label: label, stroke: colors[i], width: 2 }))),
      axes: [{}, { size: 60 }], scales: { x: { time: true } },
    };
    charts[key] = new uPlot(opts, [t].concat(series[key]), el);
    return charts[key];
  }

  function push(arr, v) { arr.push(v === null || v === undefined ? null : v); if (arr.length > KEEP) arr.shift(); }

  function render(data) {
    const s = data.summary || {};
    t.push(data.at); if (t.length > KEEP) t.shift();
    push(series.hitRate[0], s.cacheHitRate); push(series.hitRate[1], s.predictiveHitRate);
    push(series.latency[0], s.p50Latency); push(series.latency[1], s.p95Latency);
    push(series.accuracy[0], s.accuracy);
    push(series.efficiency[0], s.preloadEfficiency);
    push(series.memory[0], s.memoryBytes === undefined ? null : s.memoryBytes / 1048576);
    push(series.overhead[0], s.originOverhead);
    for (const key of Object.keys(series)) chart(key).setData([t].concat(series[key]));
    $("v-hitRate").textContent = pct(s.cacheHitRate);
    $("v-latency").textContent = num(s.p95Latency, 2) + " ms";
    $("v-accuracy").textContent = pct(s.accuracy);
    $("v-efficiency").textContent = pct(s.preloadEfficiency);
    $("v-memory").textContent = bytes(s.memoryBytes);
    $("v-overhead").textContent = pct(s.originOverhead);
    renderModels(data.models || {});
    renderAlerts(s.alerts || []);
    renderExperiments((s.experiments || {}).experiments || []);
  }

  // One row per experiment arm against the control: hit ratios, the always-valid p-value and the verdict.
  function renderExperiments(list) {
    const rows = [];
    for (const e of list) {
      const flag = e.sampleRatioMismatch ? " (sample ratio mismatch!)" : "";
      for (const a of e.arms || []) {
        rows.push("<tr><td>" + esc(e.id) + "<br><small>" + esc(e.kind) + ", " + esc(e.status) + "</small></td><td>" +
          esc(a.arm) + "<br><small>vs " + esc(e.control) + "</small></td><td class=num>" + pct(a.control) + " → " +
          pct(a.treatment) + "</td><td class=num>" +
          (a.pValue === null || a.pValue === undefined ? "–" : num(a.pValue, 3)) + "</td></tr>" +
          "<tr class=verdict><td colspan=4>" + esc(a.verdict + flag) + "</td></tr>");
      }
    }
    // The verdict gets a row of its own under its arm: four narrow columns fit the side card.
    $("experiments").innerHTML = rows.length ? "<tr><th>experiment</th><th>arm</th><th>hit ratio</th>" +
      "<th title=\"always-valid p-value\">p</th></tr>" + rows.join("") : "<tr><td>none running</td></tr>";
  }

  function renderModels(models) {
    const active = models.active;
    $("model").textContent = active ? active.name + " " + active.version : "no active model reported";
    const rows = (models.history || []).map((v) =>
      "<tr><td>" + esc(v.name || "") + "</td><td>" + esc(v.version) + "</td><td>" + esc(v.status || "") +
      "</td><td>" + esc(v.reason || "") + "</td></tr>");
    $("history").innerHTML = rows.length ? "<tr><th>model</th><th>version</th><th>status</th><th>gate</th></tr>" +
      rows.join("") : "<tr><td>no versions reported</td></tr>";
  }

  // Value and threshold in the alert's own unit (memory in bytes shown as KiB/MiB, like its summary).
  function inUnit(v, unit) {
    if (v === null || v === undefined) return "–";
    if (unit === "bytes") return bytes(v);
    if (unit === "ratio") return pct(v);
    if (unit === "ms") return num(v, 2) + " ms";
    return String(v);
  }

  function renderAlerts(alerts) {
    $("alerts").innerHTML = alerts.length ? alerts.map((a) =>
      '<li class="firing">' + esc(a.alert) + ": " + esc(a.summary || "") + " (now " + esc(inUnit(a.value, a.unit)) +
      ", threshold " + esc(inUnit(a.threshold, a.unit)) + ")</li>").join("") : "<li>none</li>";
  }

  function bytes(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1048576) return num(v / 1024, 1) + " KiB";
    return num(v / 1048576, 1) + " MiB";
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  const source = new EventSource("/dashboard/events");
  source.onopen = () => { $("status").textContent = "live"; };
  source.onerror = () => { $("status").textContent = "reconnecting…"; };
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    render(data);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
})();
