// Behaviour every page shares. No page has inline scripts or event handlers: the
// Content-Security-Policy allows scripts from this site's files only.
(function () {
  "use strict";
  var gettext = window.gettext || function (text) { return text; };
  var interpolate = window.interpolate || function (format, values) {
    return format.replace(/%\((\w+)\)s/g, function (match, name) { return values[name]; });
  };

  // The one answer a person reads about a face, on every page: "about 28, likely 24-34"
  // (the 80% interval), the same words as Face.headline on the server's pages.
  window.faceage = {
    headline: function (face) {
      var age = Math.round(face.age);
      if (!face.age_interval) { return interpolate(gettext("about %(age)s"), { age: age }, true); }
      return interpolate(gettext("about %(age)s, likely %(low)s-%(high)s"),
        { age: age, low: face.age_interval[0], high: face.age_interval[1] }, true);
    }
  };

  // <select data-submit-on-change>: choosing an option submits its form (the language
  // switcher; its Switch button does the same without JavaScript).
  document.querySelectorAll("select[data-submit-on-change]").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  });

  // <form data-confirm="question">: ask before submitting; Cancel keeps the page as it is.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  });
})();
