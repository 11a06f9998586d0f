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
    var count = input.files.length;
    if (count > 1) {
      var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
      chosen.textContent = interpolate(
        ngettext("Chosen: %(count)s photo", "Chosen: %(count)s photos", count), { count: count }, true
      );
    } else {
      chosen.textContent = count
        ? interpolate(gettext("Chosen: %(name)s"), { name: input.files[0].name }, true)
        : "";
    }
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

  // --- Camera: only where the browser offers getUserMedia on a secure page. ---------------
  // Without it (or when permission is refused, or there is no camera) the file picker above
  // is all there is, and a message says why.
  var camera = document.getElementById("camera");
  var openButton = document.getElementById("camera-open");
  var panel = document.getElementById("camera-panel");
  var video = document.getElementById("camera-video");
  var takeButton = document.getElementById("camera-take");
  var closeButton = document.getElementById("camera-cancel");
  var preview = document.getElementById("camera-photo");
  var message = document.getElementById("camera-message");
  var media = navigator.mediaDevices;
  if (!camera || !window.isSecureContext || !media || !media.getUserMedia) { return; }
  camera.hidden = false;
  var stream = null;

  function say(text) { message.textContent = text; }

  function stopCamera() {
    if (stream) {
      stream.getTracks().forEach(function (track) { track.stop(); });
      stream = null;
    }
    video.srcObject = null;
    panel.hidden = true;
    openButton.hidden = false;
  }

  function failureText(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      return gettext("The camera was not allowed. Choose a photo file instead, or allow the camera in your browser's settings.");
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      return gettext("No camera was found. Choose a photo file instead.");
    }
    if (name === "NotReadableError" || name === "AbortError") {
      return gettext("The camera is busy in another application. Close it there, or choose a photo file instead.");
    }
    return gettext("The camera could not be started. Choose a photo file instead.");
  }

  openButton.addEventListener("click", function () {
    say(gettext("Starting the camera…"));
    media.getUserMedia({ video: { facingMode: "user" }, audio: false })
      .then(function (opened) {
        stream = opened;
        video.srcObject = opened;
        panel.hidden = false;
        openButton.hidden = true;
        say(gettext("Camera on. Frame the faces, then take the photo."));
        takeButton.focus();
      })
      .catch(function (error) {
        stopCamera();
        say(failureText(error));
        input.focus();
      });
  });

  closeButton.addEventListener("click", function () {
    stopCamera();
    say("");
  });

  function useFile(file) {
    if (typeof DataTransfer === "function") {
      try {
        var transfer = new DataTransfer();
        transfer.items.add(file);
        input.files = transfer.files;
        showChoice();
        return true;
      } catch (error) { /* older browsers: send it below as the form would */ }
    }
    var data = new FormData(form);
    data.delete(input.name);
    data.append(input.name, file, file.name);
    button.disabled = true;
    button.textContent = gettext("Uploading…");
    fetch(form.action || window.location.href, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected) { window.location.href = response.url; return null; }
        return response.text().then(function (html) {
          document.open(); document.write(html); document.close();
        });
      })
      .catch(function () {
        button.disabled = false;
        button.textContent = gettext("Estimate ages");
        say(gettext("The photo could not be sent. Check your connection and try again."));
      });
    return false;
  }

  takeButton.addEventListener("click", function () {
    var width = video.videoWidth;
    var height = video.videoHeight;
    if (!width || !height) {
      say(gettext("The camera is not ready yet. Try again in a moment."));
      return;
    }
    var canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    canvas.getContext("2d").drawImage(video, 0, 0, width, height);
    stopCamera();
    canvas.toBlob(function (blob) {
      if (!blob) {
        say(gettext("The camera could not be started. Choose a photo file instead."));
        return;
      }
      var file = new File([blob], "camera.jpg", { type: "image/jpeg" });
      preview.src = URL.createObjectURL(blob);
      preview.hidden = false;
      if (useFile(file)) {
        say(gettext("Photo taken. Press “Estimate ages” to upload it, or take another."));
        openButton.textContent = gettext("Take another photo");
        button.focus();
      }
    }, "image/jpeg", 0.92);
  });

  window.addEventListener("pagehide", stopCamera);
})();
