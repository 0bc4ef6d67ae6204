// Progressive enhancement only: every page works without this file.
// 1. Checks as one types: an input with data-check="<url>" is sent there (debounced) and the
//    answer's message is shown next to it, as the server would after a post.
// 2. Buttons with data-confirm ask before their form is sent.
(function () {
  "use strict";
  function showError(input, text) {
    var box = document.getElementById(input.id + "-error");
    if (!box) return;
    box.textContent = text || "";
    if (text) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    input.closest(".field") && input.closest(".field").classList.toggle("invalid", !!text);
  }
  document.querySelectorAll("input[data-check]").forEach(function (input) {
    var timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (!input.value) { showError(input, ""); return; }
        var url = input.dataset.check + (input.dataset.check.indexOf("?") < 0 ? "?" : "&") +
          "value=" + encodeURIComponent(input.value);
        fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
          .then(function (r) { return r.json(); })
          .then(function (answer) { showError(input, answer.ok ? "" : answer.message); })
          .catch(function () { /* the server checks again on submit */ });
      }, 350);
    });
  });
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.dataset.confirm)) event.preventDefault();
    });
  });
  // 3. A section that applies to some choices only (data-shown-by="<name>=<value>[,<value>]": an
  //    express address, an overseas unit's data) is hidden and disabled for the others. Without this
  //    file every section shows, and the server ignores what does not apply.
  document.querySelectorAll("[data-shown-by]").forEach(function (section) {
    var form = section.closest("form");
    var spec = section.dataset.shownBy.split("=");
    var name = spec[0], values = (spec[1] || "").split(",");
    if (!form) return;
    function update() {
      var chosen = form.querySelector('[name="' + name + '"]:checked') ||
        form.querySelector('select[name="' + name + '"]');
      var show = !!chosen && values.indexOf(chosen.value) >= 0;
      section.hidden = !show;
      if (section.tagName === "FIELDSET") section.disabled = !show;
    }
    form.addEventListener("change", function (event) { if (event.target.name === name) update(); });
    update();
  });
})();
// 3. A checkbox with data-select-all="<name>" ticks or unticks every checkbox of that name in its form
//    (without this file each row is ticked by itself).
(function () {
  "use strict";
  document.querySelectorAll("input[type=checkbox][data-select-all]").forEach(function (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      var form = all.form || document;
      form.querySelectorAll("input[type=checkbox][name='" + all.dataset.selectAll + "']").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
})();
// 4. A refused form's error summary (forms.html) takes the focus as the page opens, so keyboard and
//    screen-reader users start from the list of what to correct; each of its links moves the focus to
//    its input (a fragment link only scrolls there), the input's label or legend scrolled into view.
(function () {
  "use strict";
  var summary = document.getElementById("error-summary");
  if (!summary) return;
  summary.focus();
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var target = link && document.getElementById(decodeURIComponent(link.hash.slice(1)));
    if (!target) return;
    // A radio group's id is its fieldset's: the focus goes to the chosen radio, or the first.
    var input = target.matches("input, select, textarea") ? target :
      target.querySelector("input:checked") || target.querySelector("input:not([type=hidden]), select, textarea");
    if (!input) return;
    event.preventDefault();
    var field = target.closest("fieldset.radios, .field");
    var caption = field && field.querySelector("legend, label");
    (caption || input).scrollIntoView();
    input.focus({ preventScroll: true });
  });
})();
