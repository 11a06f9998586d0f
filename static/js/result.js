// Poll the prediction until it is finished, then draw a labelled box on each face.
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var root = document.getElementById("result");
  if (!root) { return; }
  var apiUrl = root.dataset.apiUrl;
  var width = Number(root.dataset.width) || 1;
  var height = Number(root.dataset.height) || 1;
  var statusLine = document.getElementById("status");
  var frame = document.getElementById("photo-frame");
  var list = document.getElementById("face-list");
  var waitingText = { queued: gettext("Waiting in the queue…"), running: gettext("Looking for faces…") };
  var delay = 500;

  function percent(value, total) { return (100 * value / total).toFixed(3) + "%"; }

  function drawFaces(faces) {
    frame.querySelectorAll(".face-box").forEach(function (node) { node.remove(); });
    list.textContent = "";
    faces.forEach(function (face, index) {
      var box = face.box;
      var label = Math.round(face.age) + " ± " + Math.round(face.age_std);
      var div = document.createElement("div");
      div.className = "face-box";
      div.style.left = percent(box[0], width);
      div.style.top = percent(box[1], height);
      div.style.width = percent(box[2] - box[0], width);
      div.style.height = percent(box[3] - box[1], height);
      var tag = document.createElement("span");
      tag.className = "face-label";
      tag.textContent = label;
      div.appendChild(tag);
      frame.appendChild(div);
      var item = document.createElement("li");
      item.textContent = "Face " + (index + 1) + ": about " + face.age.toFixed(1) +
        " years (± " + face.age_std.toFixed(1) + ")";
      list.appendChild(item);
    });
  }

  function show(prediction) {
    statusLine.className = "status status-" + prediction.status;
    if (prediction.status === "succeeded") {
      var n = prediction.faces.length;
      statusLine.textContent = n === 0
        ? gettext("No face was found in this photo. Try a photo where faces are larger, well lit and facing the camera.")
        : interpolate(ngettext("Found %(count)s face.", "Found %(count)s faces.", n), { count: n }, true);
      drawFaces(prediction.faces);
      return true;
    }
    if (prediction.status === "failed") {
      statusLine.textContent = interpolate(
        gettext("This photo could not be processed: %(reason)s"), { reason: prediction.error }, true
      );
      return true;
    }
    statusLine.textContent = waitingText[prediction.status] || prediction.status;
    return false;
  }

  function poll() {
    fetch(apiUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (prediction) {
        if (!show(prediction)) {
          delay = Math.min(delay * 1.5, 3000);
          window.setTimeout(poll, delay);
        }
      })
      .catch(function () {
        statusLine.textContent = gettext("Lost contact with the server; retrying…");
        window.setTimeout(poll, 3000);
      });
  }
  poll();
})();
