// checkrun's HTML report: the grid, the filters, the ranking and the on-demand SVG charts.
// Every string from the results is hostile: it reaches the page through textContent or an
// attribute set with setAttribute, never as markup.
"use strict";
(function () {
  var SVG = "http://www.w3.org/2000/svg";
  var STATUSES = ["CRITICAL", "UNKNOWN", "UNREACHABLE", "WARNING", "OK", "SKIPPED"];
  var ICONS = {OK: "\u2713", WARNING: "\u25B2", CRITICAL: "\u2716", UNKNOWN: "?",
               SKIPPED: "\u2013", UNREACHABLE: "\u2298"};
  var SHORT = {OK: "OK", WARNING: "WARN", CRITICAL: "CRIT", UNKNOWN: "UNKN",
               SKIPPED: "SKIP", UNREACHABLE: "UNREACH"};
  var CODES = {O: "OK", W: "WARNING", C: "CRITICAL", U: "UNKNOWN", S: "SKIPPED", R: "UNREACHABLE"};
  var DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  var LEVELS = DIGITS.length * DIGITS.length - 1;
  var RANKING_ROWS = 25; // the most loaded hosts; the others when asked

  var data = JSON.parse(document.getElementById("results-data").textContent);
  var history = null; // parsed on the first chart
  var filter = {statuses: {}, play: "", tag: "", host: ""};
  STATUSES.forEach(function (s) { filter.statuses[s] = true; });
  var generation = 0;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) { Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); }); }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = String(text); }
    return node;
  }
  function badge(status) {
    var span = el("span", {"class": "badge s-" + status});
    span.appendChild(el("span", {"class": "icon", "aria-hidden": "true"}, ICONS[status]));
    span.appendChild(document.createTextNode(" " + status));
    return span;
  }

  // -- header, filters, unreachable hosts, ranking --------------------------------------------
  function header() {
    var summary = document.getElementById("summary");
    summary.appendChild(badge(data.status));
    summary.appendChild(document.createTextNode(" " + data.summary + ": "));
    data.counts.forEach(function (pair, i) {
      if (i) { summary.appendChild(document.createTextNode(" \u00B7 ")); }
      summary.appendChild(el("span", {"class": pair[1] ? "count s-" + pair[0] : "count"}, pair[1] + " " + pair[0].toLowerCase()));
    });
    var when = new Date(data.generated * 1000).toISOString().replace("T", " ").slice(0, 19);
    summary.appendChild(document.createTextNode(
      (data.live ? " \u00B7 live, as of " : " \u00B7 generated ") + when + " UTC"));
    if (data.interrupted) {
      summary.appendChild(el("strong", null, " The run was interrupted: these results are partial."));
    }
  }

  function distinct(values) {
    var seen = {}, out = [];
    values.forEach(function (v) { if (!seen.hasOwnProperty(v)) { seen[v] = 1; out.push(v); } });
    return out.sort();
  }

  function select(id, label, all, options, onChange) {
    var wrap = el("label", {"for": id}, label + " ");
    var box = el("select", {id: id});
    box.appendChild(el("option", {value: ""}, all));
    options.forEach(function (o) { box.appendChild(el("option", {value: o}, o)); });
    box.addEventListener("change", function () { onChange(box.value); render(); });
    wrap.appendChild(box);
    return wrap;
  }

  function filters() {
    var section = document.getElementById("filters");
    var statuses = el("fieldset", {id: "status-filter"});
    statuses.appendChild(el("legend", null, "Status"));
    STATUSES.forEach(function (s) {
      var label = el("label", {"class": "s-" + s});
      var box = el("input", {type: "checkbox", value: s, checked: "checked"});
      box.addEventListener("change", function () { filter.statuses[s] = box.checked; render(); });
      label.appendChild(box);
      label.appendChild(el("span", {"class": "icon", "aria-hidden": "true"}, " " + ICONS[s]));
      label.appendChild(document.createTextNode(" " + s));
      statuses.appendChild(label);
    });
    section.appendChild(statuses);
    var plays = distinct(data.columns.map(function (c) { return c.play; }));
    var tags = distinct([].concat.apply([], data.columns.map(function (c) { return c.tags; })));
    section.appendChild(select("play-filter", "Play", "all plays", plays, function (v) { filter.play = v; }));
    section.appendChild(select("tag-filter", "Tag", "all tags", tags, function (v) { filter.tag = v; }));
    var hostLabel = el("label", {"for": "host-filter"}, "Host ");
    var host = el("input", {id: "host-filter", type: "search", placeholder: "name contains\u2026"});
    var timer = null;
    host.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { filter.host = host.value.toLowerCase(); render(); }, 120);
    });
    hostLabel.appendChild(host);
    section.appendChild(hostLabel);
  }

  function unreachable() {
    var lost = data.hosts.filter(function (h) { return h.reason !== undefined; });
    if (!lost.length) { return; }
    var section = document.getElementById("unreachable");
    section.hidden = false;
    section.appendChild(el("h2", null, "Unreachable hosts (" + lost.length + ")"));
    var table = el("table", {"class": "list"});
    var head = el("tr");
    ["Host", "Status", "Reason"].forEach(function (t) { head.appendChild(el("th", {scope: "col"}, t)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    lost.forEach(function (h) {
      var row = el("tr");
      row.appendChild(el("td", null, h.host));
      row.appendChild(el("td")).appendChild(badge("UNREACHABLE"));
      row.appendChild(el("td", {"class": "reason"}, h.reason));
      body.appendChild(row);
    });
    section.appendChild(table);
  }

  function ranking() {
    if (!data.score.length) { return; }
    var section = document.getElementById("ranking");
    section.hidden = false;
    var details = el("details", {open: "open"});
    details.appendChild(el("summary", null, "Hosts by score (" + data.score.length + ")"));
    var table = el("table", {"class": "list", id: "score-table"});
    var head = el("tr");
    ["Rank", "Host", "Play", "Score", "Status"].forEach(function (t) { head.appendChild(el("th", {scope: "col"}, t)); });
    table.appendChild(el("thead")).appendChild(head);
    var body = table.appendChild(el("tbody"));
    function rows(from, to) {
      var fragment = document.createDocumentFragment();
      data.score.slice(from, to).forEach(function (entry, n) {
        var row = el("tr");
        row.appendChild(el("td", {"class": "num"}, from + n + 1));
        row.appendChild(el("td", null, entry[0]));
        row.appendChild(el("td", null, entry[1]));
        row.appendChild(el("td", {"class": "num"}, entry[2]));
        row.appendChild(el("td")).appendChild(badge(entry[3]));
        fragment.appendChild(row);
      });
      body.appendChild(fragment);
    }
    rows(0, RANKING_ROWS);
    details.appendChild(table);
    if (data.score.length > RANKING_ROWS) {
      var more = el("button", {type: "button", id: "ranking-more"}, "Show all " + data.score.length + " hosts");
      more.addEventListener("click", function () { rows(RANKING_ROWS, data.score.length); more.remove(); });
      details.appendChild(more);
    }
    section.appendChild(details);
  }

  // -- the grid ---------------------------------------------------------------------------------
  function visibleColumns() {
    var out = [];
    data.columns.forEach(function (c, i) {
      if (filter.play && c.play !== filter.play) { return; }
      if (filter.tag && c.tags.indexOf(filter.tag) < 0) { return; }
      out.push(i);
    });
    return out;
  }

  function hostShown(h, columns) {
    if (filter.host && h.host.toLowerCase().indexOf(filter.host) < 0) { return false; }
    if (h.reason !== undefined && filter.statuses.UNREACHABLE) { return true; }
    return columns.some(function (i) {
      var cell = h.cells[i];
      return cell !== undefined && filter.statuses[cell.status];
    });
  }

  // The grid is virtualised: only the rows in view (and BUFFER_ROWS either side) are in the
  // DOM, between two spacer rows that keep the scroll height of every row. Rows have one
  // fixed height and the table a fixed layout, so nothing is measured: 1000 hosts cost what
  // 40 do. Charts open in the detail panel below the grid, never inside it.
  var ROW_HEIGHT = 28, BUFFER_ROWS = 15;
  var view = {hosts: [], columns: [], first: -1, last: -1, open: null};

  function render() {
    generation += 1;
    view.columns = visibleColumns();
    view.hosts = data.hosts.filter(function (h) { return hostShown(h, view.columns); });
    view.first = view.last = -1;
    var table = document.getElementById("grid");
    table.setAttribute("aria-rowcount", String(view.hosts.length + 1));
    table.setAttribute("aria-colcount", String(view.columns.length + 1));
    var rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
    table.style.width = (16 + 8.5 * view.columns.length) * rem + "px"; // a fixed layout needs a width
    var head = table.tHead;
    head.textContent = "";
    var row = el("tr", {"aria-rowindex": "1"});
    row.appendChild(el("th", {scope: "col", "class": "host"}, "Host"));
    view.columns.forEach(function (i) {
      var c = data.columns[i];
      var th = el("th", {scope: "col", title: "play " + c.play + (c.tags.length ? " \u00B7 tags " + c.tags.join(", ") : "")});
      th.appendChild(el("span", {"class": "check"}, c.check));
      th.appendChild(el("span", {"class": "play"}, c.play));
      row.appendChild(th);
    });
    head.appendChild(row);
    document.getElementById("grid-note").textContent = "Showing " + view.hosts.length + " of " +
      data.hosts.length + " hosts and " + view.columns.length + " of " + data.columns.length +
      " checks. Open a cell (or a host) for its chart.";
    drawRows(true);
    document.body.setAttribute("data-rendered", String(generation));
    document.body.setAttribute("data-complete", String(generation));
  }

  function drawRows(force) {
    var scroller = document.getElementById("grid-scroll");
    var headHeight = document.getElementById("grid").tHead.offsetHeight || ROW_HEIGHT;
    var top = Math.max(0, scroller.scrollTop - headHeight);
    var height = scroller.clientHeight || 600;
    var first = Math.max(0, Math.floor(top / ROW_HEIGHT) - BUFFER_ROWS);
    var last = Math.min(view.hosts.length, Math.ceil((top + height) / ROW_HEIGHT) + BUFFER_ROWS);
    if (!force && first === view.first && last === view.last) { return; }
    view.first = first; view.last = last;
    var body = document.getElementById("grid").tBodies[0];
    var fragment = document.createDocumentFragment();
    fragment.appendChild(spacer(first * ROW_HEIGHT));
    for (var n = first; n < last; n++) { fragment.appendChild(hostRow(view.hosts[n], view.columns, n)); }
    fragment.appendChild(spacer((view.hosts.length - last) * ROW_HEIGHT));
    body.textContent = "";
    body.appendChild(fragment);
    var drawn = body.querySelector("tr.host-row");
    if (drawn && drawn.offsetHeight && drawn.offsetHeight !== ROW_HEIGHT) {
      ROW_HEIGHT = drawn.offsetHeight; // the rows' real height (fonts differ): laid out again with it
      drawRows(true);
    }
  }

  function spacer(height) {
    var row = el("tr", {"class": "spacer", "aria-hidden": "true"});
    var cell = row.appendChild(el("td", {colspan: String(view.columns.length + 1)}));
    cell.style.height = height + "px";
    if (!height) { row.hidden = true; }
    return row;
  }

  function hostRow(h, columns, n) {
    var row = el("tr", {"class": "host-row", "data-host": h.host, "aria-rowindex": String(n + 2)});
    var th = el("th", {scope: "row", "class": "host"});
    var key = "host:" + h.host;
    var button = el("button", {type: "button", "class": "host-button s-" + h.status, "data-key": key,
                               "aria-expanded": String(view.open === key), "aria-controls": "detail",
                               "aria-label": h.host + ": " + h.status + ", open every chart"});
    button.appendChild(el("span", {"class": "icon", "aria-hidden": "true"}, ICONS[h.status]));
    button.appendChild(document.createTextNode(" " + h.host));
    button.addEventListener("click", function () { toggleDetail(key, h, view.columns); });
    th.appendChild(button);
    row.appendChild(th);
    if (h.reason !== undefined) {
      var td = el("td", {colspan: String(Math.max(1, columns.length)), "class": "unreachable s-UNREACHABLE", "data-status": "UNREACHABLE"});
      td.appendChild(el("span", {"class": "icon", "aria-hidden": "true"}, ICONS.UNREACHABLE));
      td.appendChild(document.createTextNode(" UNREACHABLE: " + h.reason));
      row.appendChild(td);
      return row;
    }
    columns.forEach(function (i) {
      var cell = h.cells[i];
      if (cell === undefined) { row.appendChild(el("td", {"class": "none"}, "\u2014")); return; }
      var td = el("td", {"class": "cell s-" + cell.status, "data-status": cell.status});
      var c = data.columns[i];
      var cellKey = "cell:" + h.host + "\u0000" + i;
      var open = el("button", {type: "button", "data-key": cellKey, "aria-expanded": String(view.open === cellKey),
        "aria-controls": "detail",
        "aria-label": h.host + " \u00B7 " + c.check + ": " + cell.status + (cell.value ? " " + cell.value : "") + ", open its chart"});
      open.appendChild(el("span", {"class": "icon", "aria-hidden": "true"}, ICONS[cell.status]));
      open.appendChild(el("span", {"class": "word"}, " " + SHORT[cell.status]));
      if (cell.value) { open.appendChild(el("span", {"class": "value"}, cell.value)); }
      open.addEventListener("click", function () { toggleDetail(cellKey, h, [i]); });
      td.appendChild(open);
      row.appendChild(td);
    });
    return row;
  }

  function toggleDetail(key, h, columns) {
    var panel = document.getElementById("detail");
    panel.textContent = "";
    var closing = view.open === key;
    view.open = closing ? null : key;
    document.querySelectorAll("#grid button[aria-expanded=true]").forEach(function (b) { b.setAttribute("aria-expanded", "false"); });
    if (closing) { panel.hidden = true; return; }
    document.querySelectorAll("#grid button[data-key]").forEach(function (b) {
      if (b.getAttribute("data-key") === key) { b.setAttribute("aria-expanded", "true"); }
    });
    panel.hidden = false;
    var close = el("button", {type: "button", "class": "close"}, "Close");
    close.addEventListener("click", function () { toggleDetail(key, h, columns); });
    panel.appendChild(close);
    panel.appendChild(el("h2", null, h.host));
    if (h.reason !== undefined) {
      panel.appendChild(el("p", {"class": "reason"}, "Unreachable: " + h.reason));
    }
    columns.forEach(function (i) {
      if (h.cells[i] !== undefined) { panel.appendChild(chart(h, data.columns[i], expand(h.cells[i]))); }
    });
    panel.scrollIntoView({block: "nearest"});
  }

  // -- charts ------------------------------------------------------------------------------------
  function expand(cell) {
    // A cell with what it shares with its check's other cells (data.kinds), and its bands.
    var kind = data.kinds[cell.kind], full = {};
    Object.keys(cell).forEach(function (k) { full[k] = cell[k]; });
    full.metric = kind.metric; full.unit = kind.unit; full.thresholds = kind.thresholds;
    full.bands = cell.bands || [];
    return full;
  }

  function seriesOf(h, column) {
    if (history === null) { history = JSON.parse(document.getElementById("history-data").textContent); }
    var found = history[h.host + "\u0000" + column.play + "\u0000" + column.check];
    return found === undefined ? null : decode(found);
  }

  function level(text, at, low, high) {
    var code = text.substr(at, 2);
    if (code === "!!") { return null; }
    var n = DIGITS.indexOf(code[0]) * DIGITS.length + DIGITS.indexOf(code[1]);
    return low + (high - low) * n / LEVELS;
  }

  function decode(series) {
    var points = [], p = series.points;
    for (var at = 0; at + 9 <= p.length; at += 9) {
      points.push({
        t: level(p, at, series.start, series.end),
        min: level(p, at + 2, series.low, series.high),
        avg: level(p, at + 4, series.low, series.high),
        max: level(p, at + 6, series.low, series.high),
        status: CODES[p[at + 8]] || ""
      });
    }
    return {start: series.start, end: series.end, points: points};
  }

  function formatValue(v, unit) {
    var abs = Math.abs(v), text;
    if (unit === "%") { return v.toFixed(1) + "%"; }
    if (unit === "B" || unit === "bytes") {
      var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"], i = 0;
      while (abs >= 1024 && i < units.length - 1) { abs /= 1024; v /= 1024; i++; }
      return (i ? v.toFixed(abs < 10 ? 2 : 1) : String(Math.round(v))) + " " + units[i];
    }
    if (unit === "s" && abs < 1) { return (v * 1000).toPrecision(3).replace(/\.?0+$/, "") + "ms"; }
    text = Number.isInteger(v) ? String(v) : abs >= 1000 ? v.toFixed(0) : v.toPrecision(3);
    if (text.indexOf(".") >= 0 && text.indexOf("e") < 0) { text = text.replace(/\.?0+$/, ""); }
    return unit ? text + (unit === "s" ? "s" : " " + unit) : text;
  }

  function clock(t, span) {
    var iso = new Date(t * 1000).toISOString();
    return span > 86400 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, span < 600 ? 19 : 16);
  }

  function chart(h, column, cell) {
    var figure = el("figure", {"class": "chart", "data-host": h.host, "data-check": column.check, "data-play": column.play});
    var caption = el("figcaption");
    caption.appendChild(badge(cell.status));
    caption.appendChild(el("strong", null, " " + column.check));
    caption.appendChild(document.createTextNode(" on " + h.host + " (play " + column.play + ")" +
      (cell.metric ? " \u00B7 " + cell.metric : "") + (cell.value ? " = " + cell.value : "")));
    figure.appendChild(caption);
    if (cell.message) { figure.appendChild(el("p", {"class": "message"}, cell.message)); }
    cell.thresholds.forEach(function (t) {
      figure.appendChild(el("p", {"class": "threshold-text " + t.level}, t.level + ": " + t.text));
    });
    cell.bands.forEach(function (b) {
      figure.appendChild(el("p", {"class": "band-text " + b.level},
        b.level + " baseline: " + (b.warming ? "baseline warming up" + (b.text ? " (" + b.text + ")" : "") : b.text)));
    });
    var series = data.history ? seriesOf(h, column) : null;
    if (!data.history) {
      figure.appendChild(el("p", {"class": "no-history"},
        "No history: this report was made without a state database (--no-state), so the chart shows the current value only."));
    } else if (series === null) {
      figure.appendChild(el("p", {"class": "no-history"},
        "No history for this check in the last " + Math.round(data.window / 3600) + " h yet; the chart shows the current value only."));
    }
    figure.appendChild(plot(cell, series));
    return figure;
  }

  function plot(cell, series) {
    var W = 640, H = 200, L = 70, R = 12, T = 10, B = 34;
    var points = series ? series.points : [];
    var now = data.generated;
    var t0 = series ? Math.min(series.start, now) : now - 60, t1 = Math.max(series ? series.end : now, now);
    if (t1 - t0 < 1) { t0 = t1 - 60; }
    var ys = [];
    points.forEach(function (p) { [p.min, p.avg, p.max].forEach(function (v) { if (v !== null) { ys.push(v); } }); });
    if (cell.current !== undefined) { ys.push(cell.current); }
    var dataLow = ys.length ? Math.min.apply(null, ys) : 0, dataHigh = ys.length ? Math.max.apply(null, ys) : 1;
    cell.thresholds.forEach(function (t) { [t.low, t.high].forEach(function (v) { if (v !== null) { ys.push(v); } }); });
    cell.bands.forEach(function (b) { [b.lower, b.upper].forEach(function (v) { if (v !== null) { ys.push(v); } }); });
    var y0 = ys.length ? Math.min.apply(null, ys) : 0, y1 = ys.length ? Math.max.apply(null, ys) : 1;
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    var pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
    function x(t) { return L + (W - L - R) * (t - t0) / (t1 - t0); }
    function y(v) { return T + (H - T - B) * (1 - (v - y0) / (y1 - y0)); }
    var label = "Chart of " + (cell.metric || "status") + " from " + clock(t0, t1 - t0) + " to " + clock(t1, t1 - t0) + " UTC";
    var root = svg("svg", {viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "aria-label": label, "class": "plot"});
    root.appendChild(svg("title", {}, label));
    root.appendChild(svg("rect", {x: L, y: T, width: W - L - R, height: H - T - B, "class": "frame"}));
    cell.bands.forEach(function (b) {
      if (b.lower === null && b.upper === null) { return; }
      var top = b.upper === null ? T : y(b.upper), bottom = b.lower === null ? H - B : y(b.lower);
      var rect = svg("rect", {x: L, y: Math.min(top, bottom), width: W - L - R, height: Math.max(1, Math.abs(bottom - top)),
                              "class": "band " + b.level, "data-lower": b.lower === null ? "" : b.lower, "data-upper": b.upper === null ? "" : b.upper});
      rect.appendChild(svg("title", {}, b.level + " baseline band: " + b.text));
      root.appendChild(rect);
    });
    [[y0 + pad, dataLow], [y1 - pad, dataHigh]].forEach(function (pair, i) {
      var v = i ? Math.max(pair[0], pair[1]) : Math.min(pair[0], pair[1]);
      root.appendChild(svg("text", {x: L - 6, y: y(v) + 4, "class": "axis", "text-anchor": "end"}, formatValue(v, cell.unit)));
    });
    root.appendChild(svg("text", {x: L, y: H - 8, "class": "axis"}, clock(t0, t1 - t0)));
    root.appendChild(svg("text", {x: W - R, y: H - 8, "class": "axis", "text-anchor": "end"}, clock(t1, t1 - t0) + " UTC"));
    var valued = points.filter(function (p) { return p.avg !== null; });
    if (valued.length > 1) {
      var upper = valued.map(function (p) { return x(p.t).toFixed(1) + "," + y(p.max).toFixed(1); });
      var lower = valued.slice().reverse().map(function (p) { return x(p.t).toFixed(1) + "," + y(p.min).toFixed(1); });
      root.appendChild(svg("path", {d: "M" + upper.concat(lower).join("L") + "Z", "class": "envelope"}));
    }
    if (valued.length === 1 && valued[0].max > valued[0].min) {
      // One slot (a young series): its range as a bar, there being no envelope to draw.
      var only = valued[0];
      root.appendChild(svg("line", {x1: x(only.t), x2: x(only.t), y1: y(only.min), y2: y(only.max), "class": "range"}));
    }
    if (valued.length) {
      var line = valued.map(function (p) { return x(p.t).toFixed(1) + "," + y(p.avg).toFixed(1); });
      if (cell.current !== undefined) { line.push(x(now).toFixed(1) + "," + y(cell.current).toFixed(1)); }
      root.appendChild(svg("path", {d: "M" + line.join("L"), "class": "series"}));
    }
    points.forEach(function (p) {
      if (!p.status) { return; }
      root.appendChild(svg("rect", {x: x(p.t) - 2, y: H - B + 3, width: 4, height: 6, "class": "tick s-" + p.status}));
    });
    cell.thresholds.forEach(function (t) {
      [t.low, t.high].forEach(function (v) {
        if (v === null || v < y0 || v > y1) { return; }
        var line = svg("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), "class": "threshold " + t.level, "data-value": v});
        line.appendChild(svg("title", {}, t.level + " " + t.text));
        root.appendChild(line);
        root.appendChild(svg("text", {x: W - R - 4, y: y(v) - 3, "class": "threshold-label " + t.level, "text-anchor": "end"}, t.level + " " + formatValue(v, cell.unit)));
      });
    });
    if (cell.current !== undefined) {
      var dot = svg("circle", {cx: x(now), cy: y(cell.current), r: 4, "class": "current s-" + cell.status});
      dot.appendChild(svg("title", {}, "now: " + cell.value));
      root.appendChild(dot);
    }
    return root;
  }

  header();
  filters();
  unreachable();
  render();
  var pending = false;
  document.getElementById("grid-scroll").addEventListener("scroll", function () {
    if (pending) { return; }
    pending = true;
    requestAnimationFrame(function () { pending = false; drawRows(false); });
  });
  window.addEventListener("resize", function () { drawRows(false); });
  document.addEventListener("keydown", function (event) {
    var panel = document.getElementById("detail");
    if (event.key === "Escape" && !panel.hidden) { panel.querySelector("button.close").click(); }
  });
  if (window.performance && performance.mark) {
    // When the first rows are on screen: the next frame after they are in the DOM.
    requestAnimationFrame(function () { setTimeout(function () { performance.mark("checkrun-grid-painted"); }, 0); });
  }
  ranking();
})();
