// Drag-and-drop onto the upload form; the plain file picker works without this script.
// Strings come from Django's JavaScript catalog (jsi18n/, loaded by base.html).
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var ngettext = window.ngettext || function (one, many, n) { return n === 1 ? one : many; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };
  var zone = document.getElementById("drop-zone");
  var input = zone && zone.querySelector("input[type=file]");
  var chosen = document.getElementById("chosen-file");
  var previews = document.getElementById("previews");
  var form = document.getElementById("upload-form");
  var button = document.getElementById("upload-button");
  if (!zone || !input) { return; }
  var MAX_PREVIEWS = 12;
  var previewUrls = [];

  function megabytes(bytes) { return (bytes / 1048576).toFixed(1); }

  // What was chosen: the names (or a count) and a small preview of each photo.
  function showChoice() {
    var files = Array.prototype.slice.call(input.files);
    var count = files.length;
    if (count > 1) {
      chosen.textContent = interpolate(
        ngettext("Chosen: %(count)s photo", "Chosen: %(count)s photos", count), { count: count }, true
      );
    } else {
      chosen.textContent = count
        ? interpolate(gettext("Chosen: %(name)s"), { name: files[0].name }, true)
        : "";
    }
    previewUrls.forEach(function (url) { URL.revokeObjectURL(url); });
    previewUrls = [];
    previews.textContent = "";
    files.slice(0, MAX_PREVIEWS).forEach(function (file) {
      var item = document.createElement("li");
      if (/^image\//.test(file.type)) {
        var url = URL.createObjectURL(file);
        previewUrls.push(url);
        var image = document.createElement("img");
        image.src = url;
        image.alt = interpolate(gettext("Preview of %(name)s"), { name: file.name }, true);
        item.appendChild(image);
      } else {
        item.className = "file-tile";
        item.textContent = file.name;
      }
      previews.appendChild(item);
    });
    if (count > MAX_PREVIEWS) {
      var more = document.createElement("li");
      more.className = "file-tile";
      more.textContent = interpolate(gettext("and %(count)s more"), { count: count - MAX_PREVIEWS }, true);
      previews.appendChild(more);
    }
    previews.hidden = count === 0;
  }

  function useFiles(files) {
    if (typeof DataTransfer !== "function") { return false; }
    try {
      var transfer = new DataTransfer();
      Array.prototype.forEach.call(files, function (file) { transfer.items.add(file); });
      input.files = transfer.files;
    } catch (error) { return false; }
    showChoice();
    return true;
  }

  input.addEventListener("change", showChoice);
  // Enter or Space on the focused zone opens the picker, as a button would.
  zone.addEventListener("keydown", function (event) {
    if (event.target === zone && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      input.click();
    }
  });
  // Dragging and pasting are offered where they are possible: a mouse or trackpad.
  if (window.matchMedia && window.matchMedia("(hover: hover) and (pointer: fine)").matches) {
    document.getElementById("drag-hint").hidden = false;
  }
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
  // A photo pasted anywhere on the page (a screenshot, an image copied in a browser).
  document.addEventListener("paste", function (event) {
    var items = (event.clipboardData && event.clipboardData.files) || [];
    var images = Array.prototype.filter.call(items, function (file) { return /^image\//.test(file.type); });
    if (!images.length) { return; }
    event.preventDefault();
    var named = images.map(function (file, index) {
      var extension = (file.type.split("/")[1] || "png").replace("jpeg", "jpg");
      var name = file.name && file.name !== "image." + extension ? file.name : "pasted-" + (index + 1) + "." + extension;
      return new File([file], name, { type: file.type });
    });
    useFiles(named);
  });

  // Send with a progress bar (bytes sent); the server's answer replaces the page as a
  // normal form submission would: a redirect to the result, or the form with its error.
  var progressBox = document.getElementById("upload-progress");
  var progressBar = document.getElementById("upload-progress-bar");
  var progressText = document.getElementById("upload-progress-text");

  function resetButton() {
    button.disabled = false;
    button.textContent = gettext("Estimate ages");
  }

  form.addEventListener("submit", function (event) {
    button.disabled = true;
    button.textContent = gettext("Uploading…");
    if (!window.XMLHttpRequest || !window.FormData) { return; } // the browser sends it
    event.preventDefault();
    var request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
    request.responseType = "text";
    progressBox.hidden = false;
    request.upload.addEventListener("progress", function (sent) {
      if (!sent.lengthComputable) { return; }
      progressBar.max = sent.total;
      progressBar.value = sent.loaded;
      progressText.textContent = sent.loaded >= sent.total
        ? gettext("Sent. Waiting for the server…")
        : interpolate(gettext("Sending: %(sent)s of %(total)s MB"),
          { sent: megabytes(sent.loaded), total: megabytes(sent.total) }, true);
    });
    function giveUp(text) {
      progressBox.hidden = true;
      resetButton();
      chosen.textContent = text;
    }
    request.addEventListener("load", function () {
      var landed = request.responseURL || "";
      if (landed && landed.split("#")[0] !== (form.action || window.location.href).split("#")[0]) {
        window.location.href = landed; // redirected to the result or the batch
        return;
      }
      if (request.responseText.indexOf("<meta name=\"application-name\" content=\"faceage\">") === -1) {
        // Not one of this site's pages: a proxy's refusal (nginx's own 413 page, or none).
        giveUp(request.status === 413
          ? gettext("The upload is too large for the server. Choose a smaller photo, or fewer photos at once.")
          : interpolate(gettext("The server could not take the upload (error %(status)s). Try again in a moment."),
            { status: request.status }, true));
        return;
      }
      document.open();
      document.write(request.responseText);
      document.close();
    });
    request.addEventListener("error", function () {
      giveUp(gettext("The photo could not be sent. Check your connection and try again."));
    });
    request.addEventListener("abort", function () {
      giveUp(gettext("Sending was stopped. Choose the photo again to send it."));
    });
    request.timeout = 15 * 60 * 1000; // a slow phone link may take minutes for a batch
    request.addEventListener("timeout", function () {
      giveUp(gettext("Sending took too long and was stopped. Check your connection, or send fewer photos at once."));
    });
    request.send(new FormData(form));
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
    return useFiles([file]);
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
      } else {
        say(gettext("This browser cannot attach the photo. Choose a photo file instead."));
      }
    }, "image/jpeg", 0.92);
  });

  window.addEventListener("pagehide", stopCamera);
})();
