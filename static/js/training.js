// Poll a training run's progress and refresh the bar, the curves and the log.
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var root = document.getElementById("run");
  if (!root) { return; }
  var bar = document.getElementById("run-progress-bar");
  var statusLine = document.getElementById("run-status");
  var detail = document.getElementById("run-detail");
  var curves = document.getElementById("run-curves");
  var log = document.getElementById("run-log");
  var error = document.getElementById("run-error");
  var result = document.getElementById("run-result");
  var heartbeat = document.getElementById("run-heartbeat");
  var lossFigure = document.getElementById("step-loss-figure");
  var lossChart = document.getElementById("step-loss-chart");
  var SVG = "http://www.w3.org/2000/svg";
  var epochsSeen = -1;

  function svgNode(name, attributes, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // The training loss every few steps, [step, loss, MAE]: a line, with its first and last
  // values and the step axis labelled.
  function drawStepLosses(points) {
    if (!lossChart || points.length < 2) { return; }
    lossFigure.hidden = false;
    var W = 480, H = 140, left = 44, right = 10, top = 10, bottom = 26;
    var steps = points.map(function (p) { return p[0]; });
    var losses = points.map(function (p) { return p[1]; });
    var x0 = steps[0], x1 = steps[steps.length - 1] || 1;
    var lo = Math.min.apply(null, losses), hi = Math.max.apply(null, losses);
    if (hi === lo) { hi = lo + 1; }
    function x(step) { return left + (W - left - right) * (step - x0) / Math.max(1, x1 - x0); }
    function y(loss) { return top + (H - top - bottom) * (1 - (loss - lo) / (hi - lo)); }
    lossChart.textContent = "";
    lossChart.appendChild(svgNode("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, class: "axis" }));
    lossChart.appendChild(svgNode("line", { x1: left, x2: left, y1: top, y2: H - bottom, class: "axis" }));
    lossChart.appendChild(svgNode("text", { x: left - 4, y: y(hi) + 4, class: "tick", "text-anchor": "end" }, hi.toFixed(2)));
    lossChart.appendChild(svgNode("text", { x: left - 4, y: y(lo) + 4, class: "tick", "text-anchor": "end" }, lo.toFixed(2)));
    lossChart.appendChild(svgNode("text", { x: left, y: H - 8, class: "tick" }, String(x0)));
    lossChart.appendChild(svgNode("text", { x: W - right, y: H - 8, class: "tick", "text-anchor": "end" },
      interpolate(gettext("step %(step)s"), { step: x1 }, true)));
    var d = points.map(function (p, i) { return (i ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join("");
    lossChart.appendChild(svgNode("path", { d: d, class: "loss-line" }));
    lossChart.setAttribute("aria-label", interpolate(
      gettext("Training loss by step: %(first)s at step %(from)s, %(last)s at step %(to)s"),
      { first: losses[0].toFixed(3), from: x0, last: losses[losses.length - 1].toFixed(3), to: x1 }, true));
  }
  var terminal = ["succeeded", "failed", "cancelled"];

  function eta(seconds) {
    if (seconds === null || seconds === undefined) { return ""; }
    var minutes = Math.floor(seconds / 60);
    var values = { minutes: minutes, seconds: Math.round(seconds % 60) };
    return minutes
      ? interpolate(gettext(", about %(minutes)s min %(seconds)s s left"), values, true)
      : interpolate(gettext(", about %(seconds)s s left"), values, true);
  }

  function update(run) {
    var finished = terminal.indexOf(run.status) >= 0;
    bar.value = run.progress;
    bar.textContent = Math.round(run.progress * 100) + "%";
    // A stage with its own count (chips cut of how many) has a bar of its own.
    var stageBox = document.getElementById("run-stage");
    var hasStage = run.stage_progress !== null && run.stage_progress !== undefined && !finished;
    stageBox.hidden = !hasStage;
    if (hasStage) {
      document.getElementById("run-stage-bar").value = run.stage_progress;
      document.getElementById("run-stage-label").textContent = run.stage_display;
    }
    statusLine.className = "status status-" + run.status;
    statusLine.textContent = (run.status_display || run.status) +
      (run.stage && !finished ? " — " + (run.stage_display || run.stage) : "");
    detail.textContent = run.steps_per_epoch ? interpolate(
      gettext("Epoch %(epoch)s of %(epochs)s, step %(step)s of %(steps)s"),
      { epoch: run.epoch, epochs: run.epochs, step: run.step, steps: run.steps_per_epoch },
      true
    ) + (run.status === "running" ? eta(run.eta_seconds) : "") : "";
    log.textContent = run.log_tail.join("\n");
    heartbeat.textContent = run.heartbeat_seconds === null || finished ? "" : interpolate(
      gettext("The worker last reported %(seconds)s s ago."), { seconds: run.heartbeat_seconds }, true
    );
    drawStepLosses(run.step_losses || []);
    error.textContent = run.error;
    if (run.history.length !== epochsSeen) {
      epochsSeen = run.history.length;
      curves.src = root.dataset.curvesUrl + "?epochs=" + epochsSeen;
    }
    if (run.model_version && !result.querySelector("a")) {
      var link = document.createElement("a");
      link.href = root.dataset.modelUrl.replace("MODEL-NAME", encodeURIComponent(run.model_version));
      link.textContent = run.model_version;
      result.textContent = gettext("Result:") + " ";
      result.appendChild(link);
    }
    var cancelForm = document.getElementById("cancel-form");
    if (finished && cancelForm) { cancelForm.remove(); }
    return finished;
  }

  function poll() {
    fetch(root.dataset.progressUrl, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (run) { if (!update(run)) { window.setTimeout(poll, 2000); } })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  poll();
})();
