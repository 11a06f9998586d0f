// The staff console: keep each unfinished training run's bar and stage live, and load the
// page again when one finishes (its model then appears among the candidates).
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var terminal = ["succeeded", "failed", "cancelled"];
  var items = Array.prototype.filter.call(
    document.querySelectorAll("#staff-runs li[data-progress-url]"),
    function (item) { return item.dataset.progressUrl; }
  );
  if (!items.length) { return; }

  function poll(item) {
    fetch(item.dataset.progressUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (run) {
        item.querySelector(".run-bar").value = run.progress;
        item.querySelector(".run-status").textContent = run.status_display +
          (run.stage_display && terminal.indexOf(run.status) < 0 ? " — " + run.stage_display : "");
        item.querySelector(".run-updated").textContent = interpolate(
          gettext("%(percent)s%% done · checked just now"), { percent: Math.round(100 * run.progress) }, true
        ).replace("%%", "%");
        if (terminal.indexOf(run.status) >= 0) { window.location.reload(); return; }
        window.setTimeout(function () { poll(item); }, 3000);
      })
      .catch(function () { window.setTimeout(function () { poll(item); }, 10000); });
  }
  items.forEach(poll);
})();
