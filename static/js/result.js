// The result page: wait for the prediction to finish (a long-poll), then draw a numbered box on
// each face, one headline per face ("about 28, likely 24-34") and a smooth chart of how
// likely each age is; hovering or tapping a box or its face in the list highlights both.
// "Missed someone?" lets the owner drag a box around a face the detector missed.
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
  var photo = document.getElementById("photo");
  var list = document.getElementById("face-list");
  var waitingText = { queued: gettext("Waiting in the queue…"), running: gettext("Looking for faces…") };
  var delay = 500;

  function percent(value, total) { return (100 * value / total).toFixed(3) + "%"; }

  var headline = window.faceage.headline; // static/js/site.js

  var SVG = "http://www.w3.org/2000/svg";

  function svgNode(name, attributes, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  // A smooth line through the points (monotone cubic, Fritsch-Carlson): it never dips
  // below zero or overshoots a peak, so the curve shows the probabilities as they are.
  function monotonePath(points) {
    var n = points.length;
    var slopes = [], tangents = [];
    for (var i = 0; i < n - 1; i += 1) {
      slopes.push((points[i + 1][1] - points[i][1]) / (points[i + 1][0] - points[i][0]));
    }
    tangents.push(slopes[0]);
    for (i = 1; i < n - 1; i += 1) {
      tangents.push(slopes[i - 1] * slopes[i] <= 0 ? 0 : (slopes[i - 1] + slopes[i]) / 2);
    }
    tangents.push(slopes[n - 2]);
    for (i = 0; i < n - 1; i += 1) {
      if (slopes[i] === 0) { tangents[i] = tangents[i + 1] = 0; continue; }
      var a = tangents[i] / slopes[i], b = tangents[i + 1] / slopes[i], s = a * a + b * b;
      if (s > 9) { var t = 3 / Math.sqrt(s); tangents[i] = t * a * slopes[i]; tangents[i + 1] = t * b * slopes[i]; }
    }
    var d = "M" + points[0][0].toFixed(1) + "," + points[0][1].toFixed(1);
    for (i = 0; i < n - 1; i += 1) {
      var dx = (points[i + 1][0] - points[i][0]) / 3;
      d += "C" + (points[i][0] + dx).toFixed(1) + "," + (points[i][1] + tangents[i] * dx).toFixed(1) +
        " " + (points[i + 1][0] - dx).toFixed(1) + "," + (points[i + 1][1] - tangents[i + 1] * dx).toFixed(1) +
        " " + points[i + 1][0].toFixed(1) + "," + points[i + 1][1].toFixed(1);
    }
    return d;
  }

  // The network gives a probability to each whole year, often in spikes a year or two
  // apart that mean nothing to a reader. The chart shows each age's chance averaged over
  // nearby years (a Gaussian of SMOOTHING years, renormalised at 0 and 100): the same mass,
  // the same range and estimate, without the comb. The key says so.
  var SMOOTHING = 2;

  function smoothed(distribution) {
    var weights = [];
    for (var d = -3 * SMOOTHING; d <= 3 * SMOOTHING; d += 1) {
      weights.push(Math.exp(-d * d / (2 * SMOOTHING * SMOOTHING)));
    }
    var reach = 3 * SMOOTHING;
    return distribution.map(function (_, age) {
      var sum = 0, total = 0;
      for (var k = -reach; k <= reach; k += 1) {
        var other = age + k;
        if (other < 0 || other >= distribution.length) { continue; }
        sum += weights[k + reach] * distribution[other];
        total += weights[k + reach];
      }
      return sum / total;
    });
  }

  // How likely each age is: a smooth curve over ages 0-100, the likely range shaded, the
  // estimate marked and labelled, a y-axis in percent per year, and a key.
  function distributionChart(face, number, label) {
    var distribution = smoothed(face.distribution), interval = face.age_interval;
    var W = 340, H = 170, left = 38, right = 10, top = 26, bottom = 30;
    var plotW = W - left - right, plotH = H - top - bottom;
    var peak = Math.max.apply(null, distribution) || 1;
    var yMax = Math.max(0.01, Math.ceil(peak * 100 * 1.1) / 100);
    function x(age) { return left + plotW * age / 100; }
    function y(p) { return top + plotH * (1 - p / yMax); }
    var svg = svgNode("svg", { class: "age-chart", role: "img", viewBox: "0 0 " + W + " " + H,
      "aria-label": label, preserveAspectRatio: "xMinYMin meet" });
    svg.appendChild(svgNode("title", {}, label));
    var points = distribution.map(function (p, age) { return [x(age), y(p)]; });
    var curve = monotonePath(points);
    var area = curve + "L" + x(100) + "," + y(0) + "L" + x(0) + "," + y(0) + "Z";
    var clipId = "likely-" + number;
    var defs = svgNode("defs", {});
    var clip = svgNode("clipPath", { id: clipId });
    if (interval) {
      clip.appendChild(svgNode("rect", { x: x(interval[0] - 0.5), y: 0,
        width: x(interval[1] + 0.5) - x(interval[0] - 0.5), height: H }));
    }
    defs.appendChild(clip);
    svg.appendChild(defs);
    // Gridlines and the y-axis: 0 and the top in percent per year of age.
    [0, yMax / 2, yMax].forEach(function (p) {
      svg.appendChild(svgNode("line", { x1: left, x2: W - right, y1: y(p), y2: y(p), class: "grid" }));
      svg.appendChild(svgNode("text", { x: left - 4, y: y(p) + 3, class: "tick", "text-anchor": "end" },
        Math.round(p * 1000) / 10 + "%"));
    });
    svg.appendChild(svgNode("path", { d: area, class: "area" }));
    if (interval) { svg.appendChild(svgNode("path", { d: area, class: "area likely", "clip-path": "url(#" + clipId + ")" })); }
    svg.appendChild(svgNode("path", { d: curve, class: "curve" }));
    svg.appendChild(svgNode("line", { x1: left, x2: W - right, y1: y(0), y2: y(0), class: "axis" }));
    [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100].forEach(function (age) {
      svg.appendChild(svgNode("line", { x1: x(age), x2: x(age), y1: y(0), y2: y(0) + 3, class: "axis" }));
      if (age % 20 === 0) {
        svg.appendChild(svgNode("text", { x: x(age), y: y(0) + 14, class: "tick", "text-anchor": "middle" }, String(age)));
      }
    });
    svg.appendChild(svgNode("text", { x: W - right, y: H - 2, class: "tick", "text-anchor": "end" }, gettext("age in years")));
    svg.appendChild(svgNode("text", { x: 2, y: 10, class: "tick" }, gettext("how likely")));
    // The estimate: a line from the axis to the top, labelled "about 28".
    var ex = x(face.age);
    svg.appendChild(svgNode("line", { x1: ex, x2: ex, y1: y(0), y2: top - 4, class: "estimate" }));
    var anchor = face.age < 15 ? "start" : (face.age > 85 ? "end" : "middle");
    svg.appendChild(svgNode("text", { x: ex, y: top - 8, class: "estimate-label", "text-anchor": anchor },
      interpolate(gettext("about %(age)s"), { age: Math.round(face.age) }, true)));
    return svg;
  }

  function chartKey() {
    var key = document.createElement("p");
    key.className = "chart-key small";
    var likely = document.createElement("span");
    likely.className = "key-likely";
    likely.textContent = gettext("likely range (8 faces in 10)");
    var averaged = document.createElement("span");
    averaged.className = "key-note";
    averaged.textContent = gettext("each age's chance, averaged over about 2 years either side");
    var estimate = document.createElement("span");
    estimate.className = "key-estimate";
    estimate.textContent = gettext("the estimate");
    key.appendChild(likely);
    key.appendChild(estimate);
    key.appendChild(averaged);
    key.setAttribute("aria-hidden", "true"); // the chart's label says the same
    return key;
  }

  function highlight(number, on) {
    document.querySelectorAll('[data-face="' + number + '"]').forEach(function (node) {
      node.classList.toggle("highlight", on);
    });
  }

  function linkHighlight(node, number) {
    ["mouseenter", "focusin"].forEach(function (name) {
      node.addEventListener(name, function () { highlight(number, true); });
    });
    ["mouseleave", "focusout"].forEach(function (name) {
      node.addEventListener(name, function () { highlight(number, false); });
    });
  }

  function faceItem(face, number) {
    var item = document.createElement("li");
    item.className = "face-item";
    item.id = "face-" + number;
    item.dataset.face = String(number);
    item.tabIndex = -1;
    var badge = document.createElement("span");
    badge.className = "face-number";
    badge.textContent = String(number);
    badge.setAttribute("aria-hidden", "true");
    item.appendChild(badge);
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
    text.className = "face-text";
    var summary = document.createElement("p");
    summary.className = "face-headline";
    summary.textContent = interpolate(gettext("Face %(number)s: %(headline)s"),
      { number: number, headline: headline(face) }, true);
    text.appendChild(summary);
    if (face.drawn_by_user) {
      var drawn = document.createElement("p");
      drawn.className = "small";
      drawn.textContent = gettext("You marked this face.");
      text.appendChild(drawn);
    }
    var figure = null;
    if (face.distribution && face.distribution.length) {
      var words = interpolate(gettext("How likely each age is for face %(number)s: %(headline)s"),
        { number: number, headline: headline(face) }, true);
      var figure = document.createElement("div");
      figure.className = "chart-figure";
      figure.appendChild(distributionChart(face, number, words));
      figure.appendChild(chartKey());
    }
    item.appendChild(text);
    if (figure) { item.appendChild(figure); }
    linkHighlight(item, number);
    return item;
  }

  function faceBox(face, number) {
    var box = face.box;
    var link = document.createElement("a");
    // A face in the photo's right half has its label run leftwards, so it stays on the photo.
    link.className = "face-box" + (face.drawn_by_user ? " drawn" : "") +
      ((box[0] + box[2]) / 2 > width / 2 ? " label-left" : "");
    link.href = "#face-" + number;
    link.dataset.face = String(number);
    link.style.left = percent(box[0], width);
    link.style.top = percent(box[1], height);
    link.style.width = percent(box[2] - box[0], width);
    link.style.height = percent(box[3] - box[1], height);
    var tag = document.createElement("span");
    tag.className = "face-label";
    var digits = document.createElement("span");
    digits.className = "face-label-number";
    digits.textContent = String(number);
    // The same headline as the list's ("about 28, likely 24-34"); a phone shows the number only.
    var age = document.createElement("span");
    age.className = "face-label-age";
    age.textContent = headline(face);
    // Its name is what it shows, after a word only screen readers hear: "Face 1 about 28,
    // likely 24-34", also on a phone, where the headline is hidden from sight only.
    var words = document.createElement("span");
    words.className = "visually-hidden";
    words.textContent = gettext("Face") + " ";
    tag.appendChild(words);
    tag.appendChild(digits);
    tag.appendChild(document.createTextNode(" "));
    tag.appendChild(age);
    link.appendChild(tag);
    link.addEventListener("click", function () {
      var item = document.getElementById("face-" + number);
      if (item) { window.setTimeout(function () { item.focus({ preventScroll: true }); }, 0); }
    });
    linkHighlight(link, number);
    return link;
  }

  function drawFaces(faces) {
    frame.querySelectorAll(".face-box").forEach(function (node) { node.remove(); });
    list.textContent = "";
    faces.forEach(function (face, index) {
      frame.appendChild(faceBox(face, index + 1));
      list.appendChild(faceItem(face, index + 1));
    });
  }

  function waiting(prediction) {
    statusLine.textContent = "";
    var spinner = document.createElement("span");
    spinner.className = "spinner";
    spinner.setAttribute("aria-hidden", "true");
    statusLine.appendChild(spinner);
    var text = waitingText[prediction.status] || prediction.status;
    if (prediction.status === "queued" && prediction.queue_position) {
      text += " " + interpolate(ngettext("%(count)s photo is ahead of yours.",
        "%(count)s photos are ahead of yours.", prediction.queue_position),
        { count: prediction.queue_position }, true);
    }
    statusLine.appendChild(document.createTextNode(text));
    // A finished photo waits again while a face marked on it is rated: its faces stay shown.
    if (prediction.faces && prediction.faces.length && !frame.querySelector(".face-box")) {
      drawFaces(prediction.faces);
    }
  }

  function show(prediction) {
    statusLine.className = "status status-" + prediction.status;
    if (prediction.status === "succeeded") {
      var n = prediction.faces.length;
      statusLine.textContent = n === 0
        ? gettext("No face was found in this photo. Try a photo where faces are larger, well lit and facing the camera.")
        : interpolate(ngettext("Found %(count)s face.", "Found %(count)s faces.", n), { count: n }, true);
      // A face marked later that could not be rated says why; the others stand.
      if (prediction.error) { statusLine.textContent += " " + prediction.error.message; }
      drawFaces(prediction.faces);
      // The labels, the "Missed someone?" tools and the explanation are drawn by the server
      // once the photo is finished: a page opened while it waited loads again (once).
      if (root.dataset.reloadWhenDone === "1") { window.location.reload(); }
      return true;
    }
    if (prediction.status === "failed") {
      statusLine.textContent = interpolate(
        gettext("This photo could not be processed: %(reason)s"), { reason: prediction.error ? prediction.error.message : "" }, true
      );
      return true;
    }
    waiting(prediction);
    return false;
  }

  // The first request is answered at once, to show the status. Each one after it is held by
  // the server until the photo is finished or WAIT_SECONDS pass (?wait=, docs/api.md), so the
  // faces show the moment the worker has stored them, and the status (the queue position)
  // is at most WAIT_SECONDS old. An answer that comes back unfinished sooner (the server's
  // waits were all taken) is followed by its Retry-After, or a pause that grows to 3 s. A tab
  // out of sight asks without waiting, on a timer (which the browser slows down there), so a
  // forgotten tab holds none of the server's waits.
  var WAIT_SECONDS = 3;
  function poll(held) {
    held = held && !document.hidden;
    var asked = window.performance.now();
    var retryAfter = 0;
    var url = held ? apiUrl + "&wait=" + WAIT_SECONDS : apiUrl;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        retryAfter = Number(response.headers.get("Retry-After")) || 0;
        return response.json();
      })
      .then(function (prediction) {
        if (show(prediction)) { return; }
        // In sight, after an unheld answer or a wait that ran its course: wait again at once.
        var waitedOut = held && window.performance.now() - asked >= 1000 * WAIT_SECONDS;
        if (!document.hidden && (!held || waitedOut)) {
          poll(true);
          return;
        }
        window.setTimeout(function () { poll(true); }, Math.max(delay, 1000 * retryAfter));
        delay = Math.min(delay * 1.5, 3000);
      })
      .catch(function () {
        statusLine.textContent = gettext("Lost contact with the server; retrying…");
        window.setTimeout(function () { poll(true); }, 3000);
      });
  }

  // On a phone, the photo can be shown at twice the width, scrolled sideways.
  function setUpZoom() {
    var button = document.getElementById("zoom-button");
    var scroller = document.getElementById("photo-scroller");
    if (!button || !scroller) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      var on = !scroller.classList.contains("zoomed");
      scroller.classList.toggle("zoomed", on);
      button.setAttribute("aria-pressed", String(on));
      button.textContent = on ? gettext("Show the whole photo") : gettext("Enlarge the photo");
    });
  }

  // "Missed someone?": drag a box on the photo (mouse, pen or finger), then send it.
  function setUpDrawing() {
    var button = document.getElementById("draw-button");
    var form = document.getElementById("draw-form");
    if (!button || !form) { return; }
    var field = document.getElementById("draw-box");
    var submit = document.getElementById("draw-submit");
    var cancel = document.getElementById("draw-cancel");
    var start = null, rectangle = null;
    button.hidden = false;

    function toImage(event) {
      var bounds = photo.getBoundingClientRect();
      var fx = Math.min(1, Math.max(0, (event.clientX - bounds.left) / bounds.width));
      var fy = Math.min(1, Math.max(0, (event.clientY - bounds.top) / bounds.height));
      return [Math.round(fx * width), Math.round(fy * height)];
    }

    function place(a, b) {
      var box = [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
      rectangle.style.left = percent(box[0], width);
      rectangle.style.top = percent(box[1], height);
      rectangle.style.width = percent(box[2] - box[0], width);
      rectangle.style.height = percent(box[3] - box[1], height);
      return box;
    }

    function stop() {
      frame.classList.remove("drawing");
      form.hidden = true;
      button.setAttribute("aria-pressed", "false");
      if (rectangle) { rectangle.remove(); rectangle = null; }
      field.value = "";
      submit.disabled = true;
    }

    button.addEventListener("click", function () {
      if (frame.classList.contains("drawing")) { stop(); return; }
      frame.classList.add("drawing");
      form.hidden = false;
      button.setAttribute("aria-pressed", "true");
      document.getElementById("draw-help").focus({ preventScroll: true });
    });
    cancel.addEventListener("click", stop);
    frame.addEventListener("dragstart", function (event) { event.preventDefault(); });
    frame.addEventListener("pointerdown", function (event) {
      if (!frame.classList.contains("drawing")) { return; }
      event.preventDefault();
      frame.setPointerCapture(event.pointerId);
      start = toImage(event);
      if (!rectangle) {
        rectangle = document.createElement("div");
        rectangle.className = "face-box drawn drawing-box";
        frame.appendChild(rectangle);
      }
      place(start, start);
    });
    frame.addEventListener("pointermove", function (event) {
      if (start) { place(start, toImage(event)); }
    });
    frame.addEventListener("pointerup", function (event) {
      if (!start) { return; }
      var box = place(start, toImage(event));
      start = null;
      var big = box[2] - box[0] >= 12 && box[3] - box[1] >= 12;
      field.value = big ? JSON.stringify([box]) : "";
      submit.disabled = !big;
    });
  }

  if (document.getElementById("photo-tools")) {
    setUpZoom();
    setUpDrawing();
  }
  poll(false);
})();
