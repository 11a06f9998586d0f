// Keep a batch page live: poll GET /api/v1/batches/<id>/ until every photo is done, moving
// the progress bar ("3 of 20 photos finished") and filling each card with its faces'
// headlines as they finish. Strings come from Django's JavaScript catalog (jsi18n/).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var root = document.getElementById("batch");
  if (!root) { return; }
  var summary = document.getElementById("batch-summary");
  var progress = document.getElementById("batch-progress");
  var headline = window.faceage.headline;
  var labels = {
    queued: gettext("Queued"),
    running: gettext("Running"),
    succeeded: gettext("Succeeded"),
    failed: gettext("Failed")
  };
  var delay = 1000;

  function line(text, className) {
    var item = document.createElement("li");
    if (className) { item.className = className; }
    item.textContent = text;
    return item;
  }

  function faceLine(face, number) {
    var item = document.createElement("li");
    var badge = document.createElement("span");
    badge.className = "face-number small-number";
    badge.setAttribute("aria-hidden", "true");
    badge.textContent = String(number);
    item.appendChild(badge);
    item.appendChild(document.createTextNode(" " + headline(face)));
    return item;
  }

  function showFaces(list, prediction) {
    list.textContent = "";
    if (prediction.status === "failed") {
      list.appendChild(line(prediction.error ? prediction.error.message : "", "error"));
    } else if (prediction.status === "succeeded") {
      var faces = prediction.faces || [];
      if (!faces.length) { list.appendChild(line(gettext("no face found"), "no-face")); }
      faces.forEach(function (face, index) { list.appendChild(faceLine(face, index + 1)); });
    }
  }

  function update(batch) {
    summary.textContent = batch.summary;
    progress.max = batch.total;
    progress.value = batch.counts.succeeded + batch.counts.failed;
    progress.textContent = progress.value + " / " + batch.total;
    batch.predictions.forEach(function (prediction) {
      var card = root.querySelector('[data-prediction-id="' + prediction.id + '"]');
      if (!card) { return; }
      var status = card.querySelector(".batch-status");
      status.dataset.status = prediction.status;
      status.textContent = "";
      if (prediction.status === "queued" || prediction.status === "running") {
        var spinner = document.createElement("span");
        spinner.className = "spinner";
        spinner.setAttribute("aria-hidden", "true");
        status.appendChild(spinner);
      }
      status.appendChild(document.createTextNode(labels[prediction.status] || prediction.status));
      showFaces(card.querySelector(".batch-ages"), prediction);
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
