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
  // distribution=1: each face's age probabilities (ages 0..100), for its chart.
  var apiUrl = root.dataset.apiUrl + "?distribution=1";
  var width = Number(root.dataset.width) || 1;
  var height = Number(root.dataset.height) || 1;
  var statusLine = document.getElementById("status");
  var frame = document.getElementById("photo-frame");
  var list = document.getElementById("face-list");
  var waitingText = { queued: gettext("Waiting in the queue…"), running: gettext("Looking for faces…") };
  var delay = 500;

  function percent(value, total) { return (100 * value / total).toFixed(3) + "%"; }

  var SVG = "http://www.w3.org/2000/svg";

  function svgNode(name, attributes) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    return node;
  }

  // The three most likely ages, as words: the chart's text alternative.
  function topAges(distribution) {
    return distribution
      .map(function (p, age) { return { age: age, p: p }; })
      .sort(function (a, b) { return b.p - a.p; })
      .slice(0, 3)
      .map(function (row) {
        return interpolate(gettext("%(age)s years (%(percent)s%%)"),
          { age: row.age, percent: Math.round(100 * row.p) }, true).replace("%%", "%");
      })
      .join(", ");
  }

  // A bar per whole age 0..100; bars inside the 80% interval are darker.
  function distributionChart(distribution, interval, label) {
    var barWidth = 2, chartHeight = 48, axis = 14;
    var width = barWidth * distribution.length;
    var peak = Math.max.apply(null, distribution) || 1;
    var svg = svgNode("svg", {
      class: "age-chart", role: "img", width: width, height: chartHeight + axis,
      viewBox: "0 0 " + width + " " + (chartHeight + axis)
    });
    var title = svgNode("title", {});
    title.textContent = label;
    svg.appendChild(title);
    distribution.forEach(function (p, age) {
      var h = chartHeight * p / peak;
      if (h <= 0) { return; }
      var inside = interval && age >= interval[0] && age <= interval[1];
      svg.appendChild(svgNode("rect", {
        x: age * barWidth, y: chartHeight - h, width: barWidth, height: h,
        class: inside ? "bar inside" : "bar"
      }));
    });
    svg.appendChild(svgNode("line", { x1: 0, x2: width, y1: chartHeight, y2: chartHeight, class: "axis" }));
    [0, 20, 40, 60, 80, 100].forEach(function (age) {
      var tick = svgNode("text", { x: Math.min(age * barWidth, width - 10), y: chartHeight + axis - 2, class: "tick" });
      tick.textContent = String(age);
      svg.appendChild(tick);
    });
    return svg;
  }

  function faceItem(face, index) {
    var item = document.createElement("li");
    item.className = "face-item";
    var number = index + 1;
    if (face.chip_url) {
      var chip = document.createElement("img");
      chip.className = "face-chip";
      chip.src = face.chip_url;
      chip.width = 64;
      chip.height = 64;
      chip.alt = interpolate(gettext("Face %(number)s, aligned as the network saw it"), { number: number }, true);
      item.appendChild(chip);
    }
    var text = document.createElement("div");
    var summary = document.createElement("p");
    summary.textContent = interpolate(
      gettext("Face %(number)s: about %(age)s years (± %(std)s)"),
      { number: number, age: face.age.toFixed(1), std: face.age_std.toFixed(1) },
      true
    );
    text.appendChild(summary);
    if (face.age_interval) {
      var interval = document.createElement("p");
      interval.className = "age-interval";
      interval.textContent = interpolate(gettext("80% interval: %(low)s-%(high)s years"),
        { low: face.age_interval[0], high: face.age_interval[1] }, true);
      text.appendChild(interval);
    }
    if (face.distribution && face.distribution.length) {
      var words = interpolate(
        gettext("Age distribution of face %(number)s; most likely: %(ages)s"),
        { number: number, ages: topAges(face.distribution) }, true
      );
      var chart = distributionChart(face.distribution, face.age_interval, words);
      chart.setAttribute("aria-label", words);
      text.appendChild(chart);
      var alternative = document.createElement("p");
      alternative.className = "small chart-text";
      alternative.setAttribute("aria-hidden", "true"); // the chart's label says the same
      alternative.textContent = words;
      text.appendChild(alternative);
    }
    item.appendChild(text);
    return item;
  }

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
      list.appendChild(faceItem(face, index));
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
      // "Is this right?" is drawn by the server once there are faces: a page opened while
      // the photo waited loads again to show it (once: the new page is already finished).
      if (n > 0 && root.dataset.reloadWhenDone === "1") {
        window.location.reload();
      }
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
