// Draws the workflow page's flowchart with Mermaid and its daily chart with Chart.js, both
// from JSON the server rendered into the page.
(function () {
  "use strict";

  function readJson(id) {
    var element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function drawFlowchart() {
    var container = document.getElementById("mktauto-flowchart");
    var source = readJson("mktauto-flowchart-source");
    if (!container || !source || !window.mermaid) {
      return;
    }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    window.mermaid.initialize({
      startOnLoad: false,
      securityLevel: "strict",
      theme: dark ? "dark" : "default",
      flowchart: { htmlLabels: true, useMaxWidth: true },
    });
    window.mermaid.render("mktauto-flowchart-svg", source).then(function (result) {
      container.innerHTML = result.svg;
      container.dataset.rendered = "true";
    }).catch(function (error) {
      container.textContent = container.dataset.error + " " + error;
      container.dataset.rendered = "error";
    });
  }

  function drawChart() {
    var canvas = document.getElementById("mktauto-daily-chart");
    var series = readJson("mktauto-daily-series");
    var labels = readJson("mktauto-daily-labels");
    if (!canvas || !series || !labels || !window.Chart) {
      return;
    }
    var colors = { enrolled: "#79aec8", sent: "#417690", opened: "#f5a623", clicked: "#8e44ad", converted: "#2e7d32" };
    var datasets = Object.keys(labels).map(function (name) {
      return {
        label: labels[name],
        data: series[name],
        borderColor: colors[name],
        backgroundColor: colors[name],
        tension: 0.2,
        pointRadius: 2,
      };
    });
    new window.Chart(canvas, {
      type: "line",
      data: { labels: series.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: "index", intersect: false },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
      },
    });
    canvas.dataset.rendered = "true";
  }

  function init() {
    drawFlowchart();
    drawChart();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
