// nanodistro console charts: lead-time series drawn with uPlot (vendored from the npm registry,
// static/vendor/uplot). Data comes inline from the page (a <script type="application/json">)
// or from the JSON API; times are ISO strings, lead times seconds.
"use strict";

const ndCharts = {
  // seconds -> the unit that keeps the axis readable
  unitFor(maxSeconds) {
    if (maxSeconds >= 2 * 86400) return { name: "days", size: 86400 };
    if (maxSeconds >= 2 * 3600) return { name: "hours", size: 3600 };
    if (maxSeconds >= 120) return { name: "minutes", size: 60 };
    return { name: "seconds", size: 1 };
  },

  // Draw `series` ([{key, label, color}]) of `points` (objects with `time` and each key) in `el`.
  lines(el, points, series, title) {
    if (!points.length) {
      el.textContent = "No promotion with a known upstream release yet.";
      el.classList.add("muted");
      return null;
    }
    const max = Math.max(0, ...points.flatMap((p) => series.map((s) => p[s.key] || 0)));
    const unit = ndCharts.unitFor(max);
    const xs = points.map((p) => Date.parse(p.time) / 1000);
    const data = [xs, ...series.map((s) => points.map((p) => (p[s.key] == null ? null : p[s.key] / unit.size)))];
    const options = {
      title,
      width: Math.max(320, el.clientWidth || 600),
      height: 260,
      // lead times start at zero: a flat line near the top must not look like a big change
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, (max || 1) * 1.15] } },
      axes: [{}, { label: unit.name }],
      series: [
        { label: "promoted" },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          points: { show: true, size: 6 },
          value: (_u, v) => (v == null ? "-" : v.toFixed(1) + " " + unit.name),
        })),
      ],
    };
    el.textContent = "";
    const chart = new uPlot(options, data, el);
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(320, el.clientWidth), height: 260 }));
    return chart;
  },

  // Every element with data-chart="<id of a JSON script>" and data-series='[...]' gets a chart.
  drawAll() {
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const source = document.getElementById(el.dataset.chart);
      if (!source) return;
      const points = JSON.parse(source.textContent || "[]");
      ndCharts.lines(el, points, JSON.parse(el.dataset.series), el.dataset.title || "");
    });
  },
};

document.addEventListener("DOMContentLoaded", () => {
  if (typeof uPlot === "undefined") return; // the page did not load the library
  ndCharts.drawAll();
});
