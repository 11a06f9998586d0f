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
  var epochsSeen = -1;
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
    bar.value = run.progress;
    bar.textContent = Math.round(run.progress * 100) + "%";
    statusLine.className = "status status-" + run.status;
    var finished = terminal.indexOf(run.status) >= 0;
    statusLine.textContent = (run.status_display || run.status) +
      (run.stage && !finished ? " — " + (run.stage_display || run.stage) : "");
    detail.textContent = interpolate(
      gettext("Epoch %(epoch)s of %(epochs)s, step %(step)s of %(steps)s"),
      { epoch: run.epoch, epochs: run.epochs, step: run.step, steps: run.steps_per_epoch },
      true
    ) + (run.status === "running" ? eta(run.eta_seconds) : "");
    log.textContent = run.log_tail.join("\n");
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
