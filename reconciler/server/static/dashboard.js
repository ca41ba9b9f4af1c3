// The dashboard's live parts, on top of pages that read fully without them: metric charts (uPlot,
// vendored), a run's values and status refreshed while it runs, its log followed as it prints
// (the API's server-sent events, read with fetch so the stream resumes from the page's offset),
// and trial tables sorted in place. Text from the server is only ever set as text, never as HTML.
(function () {
  "use strict";

  var run = document.getElementById("run");
  var name = run ? run.getAttribute("data-run") : null;
  var live = run ? run.getAttribute("data-live") === "true" : false;
  var api = name ? "/api/runs/" + encodeURIComponent(name) : null;

  function json(id) {
    var node = document.getElementById(id);
    if (!node) return null;
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  function width(container) {
    return Math.max(260, Math.min(560, (container.clientWidth || 600) - 20));
  }

  // --- metric charts ---------------------------------------------------------------------------

  var charts = {};

  function chartMetric(container, metric, points) {
    var xs = points.map(function (p) { return p.step; });
    var ys = points.map(function (p) { return p.value; });
    if (charts[metric]) {
      charts[metric].setData([xs, ys]);
      return;
    }
    var box = document.createElement("div");
    box.className = "chart";
    box.setAttribute("data-metric", metric);
    var title = document.createElement("h3");
    title.textContent = metric;
    box.appendChild(title);
    container.appendChild(box);
    charts[metric] = new uPlot({
      width: width(container), height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, {}],
      series: [{ label: "step" }, { label: metric, stroke: "#0b5cad", width: 2, points: { show: points.length < 60 } }],
    }, [xs, ys], box);
  }

  function drawMetrics(metrics) {
    var container = document.getElementById("metric-charts");
    if (!container || typeof uPlot === "undefined" || !metrics) return;
    Object.keys(metrics).sort().forEach(function (metric) {
      if (metrics[metric].length) chartMetric(container, metric, metrics[metric]);
    });
    var none = document.getElementById("metrics-none");
    if (none && Object.keys(metrics).length) none.hidden = true;
  }

  function drawObjective() {
    var container = document.getElementById("objective-chart");
    var points = json("objective-data");
    if (!container || !points || !points.length || typeof uPlot === "undefined") return;
    points.sort(function (a, b) { return a.trial - b.trial; });
    var box = document.createElement("div");
    box.className = "chart";
    var metric = container.getAttribute("data-metric") || "objective";
    var title = document.createElement("h3");
    title.textContent = metric + " per trial";
    box.appendChild(title);
    container.appendChild(box);
    new uPlot({
      width: width(container), height: 220,
      scales: { x: { time: false } },
      axes: [{ label: "trial" }, {}],
      series: [{ label: "trial" }, {
        label: metric, stroke: "#116329", width: 0,
        points: { show: true, size: 9, fill: "#116329" }, paths: function () { return null; },
      }],
    }, [points.map(function (p) { return p.trial; }), points.map(function (p) { return p.value; })], box);
  }

  // --- tables rebuilt from the API, as text ------------------------------------------------------

  function fillTable(id, rows) {
    var table = document.getElementById(id);
    if (!table) return;
    var body = table.tBodies[0];
    while (body.firstChild) body.removeChild(body.firstChild);
    rows.forEach(function (cells) {
      var tr = document.createElement("tr");
      cells.forEach(function (cell, i) {
        var td = document.createElement("td");
        if (i === 0) {
          var code = document.createElement("code");
          code.textContent = cell;
          td.appendChild(code);
        } else {
          td.textContent = cell;
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function show(value) {
    return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
  }

  function refresh() {
    fetch(api + "/outputs", { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.json();
    }).then(function (found) {
      drawMetrics(found.metrics);
      fillTable("metrics-table", Object.keys(found.metrics).sort().map(function (m) {
        var pts = found.metrics[m];
        var last = pts[pts.length - 1];
        return [m, String(pts.length), String(last.value), String(last.step)];
      }));
      fillTable("outputs-table", Object.keys(found.outputs).sort().map(function (k) {
        return [k, show(found.outputs[k])];
      }));
      return fetch(api, { credentials: "same-origin" });
    }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (detail) {
      if (!detail) return;
      var badge = document.querySelector("#run-status .status");
      if (badge && badge.textContent !== detail.status) {
        badge.textContent = detail.status;
        badge.className = "status status-" + detail.status;
      }
      var done = ["succeeded", "failed", "stopped", "skipped", "upstream_failed", "done"];
      if (done.indexOf(detail.status) < 0) setTimeout(refresh, 2000);
    }).catch(function () { /* not allowed to read the API, or gone: the page as served stays */ });
  }

  // --- the log, followed ---------------------------------------------------------------------------

  function follow() {
    var pre = document.getElementById("log");
    if (!pre || !window.fetch || !window.ReadableStream) return;
    var offset = pre.getAttribute("data-offset") || "0";
    var decoder = new TextDecoder();
    var buffer = "";
    fetch(api + "/logs?follow=true", { credentials: "same-origin", headers: { "Last-Event-ID": offset } }).then(function (r) {
      if (!r.ok || !r.body) return;
      pre.setAttribute("data-following", "true");
      var reader = r.body.getReader();
      function pump() {
        return reader.read().then(function (step) {
          if (step.done) { pre.setAttribute("data-following", "done"); return; }
          buffer += decoder.decode(step.value, { stream: true });
          var at;
          while ((at = buffer.indexOf("\n\n")) >= 0) {
            var block = buffer.slice(0, at);
            buffer = buffer.slice(at + 2);
            var event = "", data = [];
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event: ") === 0) event = line.slice(7);
              else if (line.indexOf("data: ") === 0) data.push(line.slice(6));
            });
            if (event === "log") {
              var bottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
              var text = data.join("\n");
              var current = pre.textContent;
              pre.appendChild(document.createTextNode((current && current.slice(-1) !== "\n" ? "\n" : "") + text + "\n"));
              if (bottom) pre.scrollTop = pre.scrollHeight;
            } else if (event === "end") {
              pre.setAttribute("data-following", "done");
            }
          }
          return pump();
        });
      }
      return pump();
    }).catch(function () { /* the page keeps the lines it was served with */ });
  }

  // --- trials sorted in place ----------------------------------------------------------------------

  function sortable(table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, index) {
      var link = th.querySelector("a[data-sort]");
      if (!link) return;
      link.addEventListener("click", function (e) {
        e.preventDefault();
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (h) { h.setAttribute("aria-sort", "none"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[index].getAttribute("data-value"), y = b.cells[index].getAttribute("data-value");
          if (x === "" || x === null) return 1;
          if (y === "" || y === null) return -1;
          var nx = Number(x), ny = Number(y);
          var order = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), sortable);
  drawMetrics(json("metrics-data"));
  drawObjective();
  if (api && live) {
    setTimeout(refresh, 2000);
    follow();
  }
})();
