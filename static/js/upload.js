// Drag-and-drop onto the upload form; the plain file picker works without this script.
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var zone = document.getElementById("drop-zone");
  var input = zone && zone.querySelector("input[type=file]");
  var chosen = document.getElementById("chosen-file");
  var form = document.getElementById("upload-form");
  var button = document.getElementById("upload-button");
  if (!zone || !input) { return; }

  function showChoice() {
    chosen.textContent = input.files.length
      ? interpolate(gettext("Chosen: %(name)s"), { name: input.files[0].name }, true)
      : "";
  }
  input.addEventListener("change", showChoice);
  ["dragenter", "dragover"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    zone.addEventListener(name, function (event) {
      event.preventDefault();
      zone.classList.remove("dragging");
    });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      showChoice();
    }
  });
  form.addEventListener("submit", function () {
    button.disabled = true;
    button.textContent = gettext("Uploading…");
  });
})();
