// Drag-and-drop onto the upload form; the plain file picker works without this script.
(function () {
  "use strict";
  var zone = document.getElementById("drop-zone");
  var input = zone && zone.querySelector("input[type=file]");
  var chosen = document.getElementById("chosen-file");
  var form = document.getElementById("upload-form");
  var button = document.getElementById("upload-button");
  if (!zone || !input) { return; }

  function showChoice() {
    chosen.textContent = input.files.length ? "Chosen: " + input.files[0].name : "";
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
    button.textContent = "Uploading…";
  });
})();
