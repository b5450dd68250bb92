// Shows only the step fields that matter for each step's kind, and keeps the list of branch
// targets ("if yes, go to") in step with the step keys typed on the page.
(function () {
  "use strict";

  function kindFields() {
    var element = document.getElementById("mktauto-step-kind-fields");
    return element ? JSON.parse(element.textContent) : null;
  }

  function fieldNames(row) {
    var names = [];
    row.classList.forEach(function (name) {
      if (name.indexOf("field-") === 0) {
        names.push(name.slice("field-".length));
      }
    });
    return names;
  }

  function applyKind(form, config) {
    if (!form) {
      return;
    }
    var select = form.querySelector("select.mktauto-step-kind");
    if (!select) {
      return;
    }
    var specific = new Set();
    Object.keys(config).forEach(function (kind) {
      config[kind].forEach(function (name) { specific.add(name); });
    });
    var used = new Set(config[select.value] || []);

    form.querySelectorAll(".form-row").forEach(function (row) {
      var names = fieldNames(row);
      var isSpecific = names.some(function (name) { return specific.has(name); });
      var isUsed = names.some(function (name) { return used.has(name); });
      row.hidden = isSpecific && !isUsed;
    });
  }

  function refreshTargets() {
    var list = document.getElementById("mktauto-step-targets");
    if (!list) {
      return;
    }
    var keys = [];
    document.querySelectorAll(".inline-related input[name$='-key']").forEach(function (input) {
      if (input.name.indexOf("__prefix__") === -1 && input.value.trim() && keys.indexOf(input.value.trim()) === -1) {
        keys.push(input.value.trim());
      }
    });
    list.querySelectorAll("option:not([value='next']):not([value='exit'])").forEach(function (option) {
      option.remove();
    });
    keys.forEach(function (key) {
      var option = document.createElement("option");
      option.value = key;
      option.dataset.stepKey = "1";
      list.appendChild(option);
    });
  }

  function init() {
    var config = kindFields();
    if (!config) {
      return;
    }
    // The empty form is the template Django clones for "Add another"; it is set up once cloned.
    document.querySelectorAll(".inline-related:not(.empty-form)").forEach(function (form) { applyKind(form, config); });
    document.addEventListener("formset:added", function (event) {
      applyKind(event.target.closest(".inline-related") || event.target, config);
      refreshTargets();
    });
    // One listener for every kind select, including those of forms added later.
    document.addEventListener("change", function (event) {
      if (event.target.matches && event.target.matches("select.mktauto-step-kind")) {
        applyKind(event.target.closest(".inline-related"), config);
      }
    });
    document.addEventListener("input", function (event) {
      if (event.target.matches && event.target.matches(".inline-related input[name$='-key']")) {
        refreshTargets();
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
