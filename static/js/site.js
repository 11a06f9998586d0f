// Behaviour every page shares. No page has inline scripts or event handlers: the
// Content-Security-Policy allows scripts from this site's files only.
(function () {
  "use strict";

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
