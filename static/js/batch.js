// Keep a batch page's statuses live: poll GET /api/v1/batches/<id>/ until every photo is done.
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var root = document.getElementById("batch");
  if (!root) { return; }
  var summary = document.getElementById("batch-summary");
  var labels = {
    queued: gettext("Queued"),
    running: gettext("Running"),
    succeeded: gettext("Succeeded"),
    failed: gettext("Failed")
  };
  var delay = 1000;

  function describeFaces(prediction) {
    if (prediction.status === "failed") { return prediction.error ? "· " + prediction.error : ""; }
    if (prediction.status !== "succeeded") { return ""; }
    var faces = prediction.faces || [];
    if (!faces.length) { return "· " + gettext("no face found"); }
    var ages = faces.map(function (face) { return Math.round(face.age); }).join(", ");
    return "· " + interpolate(
      ngettext("%(n)s face:", "%(n)s faces:", faces.length), { n: faces.length }, true
    ) + " " + ages;
  }

  function update(batch) {
    summary.textContent = batch.summary;
    batch.predictions.forEach(function (prediction) {
      var item = root.querySelector('[data-prediction-id="' + prediction.id + '"]');
      if (!item) { return; }
      var status = item.querySelector(".batch-status");
      status.dataset.status = prediction.status;
      status.textContent = labels[prediction.status] || prediction.status;
      item.querySelector(".batch-ages").textContent = describeFaces(prediction);
    });
    return batch.done;
  }

  function poll() {
    fetch(root.dataset.apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        return response.json();
      })
      .then(function (batch) {
        if (!update(batch)) {
          delay = Math.min(delay * 1.5, 5000);
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        summary.textContent = gettext("Could not refresh the status. Reload the page to try again.");
      });
  }
  poll();
})();
