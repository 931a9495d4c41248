// Draws the dashboard's charts from the JSON the server put in <script type="application/json">.
(function () {
  function data(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  function draw() {
    if (!window.frappe) return;
    var funnel = data("funnel-data");
    if (funnel && document.getElementById("funnel-chart")) {
      new frappe.Chart("#funnel-chart", {
        type: "bar", height: 260, colors: ["#3b6fd8", "#e0603a"], animate: 0,
        data: { labels: funnel.labels, datasets: [
          { name: "entered", values: funnel.entered },
          { name: "lost before the next stage", values: funnel.lost },
        ] },
      });
    }
    var trend = data("trend-data");
    if (trend && trend.labels.length && document.getElementById("trend-chart")) {
      new frappe.Chart("#trend-chart", {
        type: trend.labels.length > 1 ? "line" : "bar", height: 260, animate: 0,
        data: { labels: trend.labels, datasets: trend.series },
      });
    }
    document.body.setAttribute("data-charts", "drawn");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
