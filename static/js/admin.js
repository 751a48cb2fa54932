// Admin pages: confirmation of destructive forms, "select all" and the role picker of the bulk
// actions, row menus, and tables that poll without pulling the rug from under the reader.
// Everything here enhances what works without JavaScript: the server asks for confirmation on a
// page of its own, refuses "Assign role" without a role, and row menus are plain <details>.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    var only = form.dataset.confirmWhen;
    if (only && (!form.elements.action || form.elements.action.value !== only)) return;
    var answer = form.querySelector('input[name="confirmed"]');
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      event.stopImmediatePropagation();
      return;
    }
    if (answer) answer.value = "yes";
  }, true);

  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || !box.dataset.selectAll) return;
    var form = box.form || box.closest("form");
    if (!form) return;
    form.querySelectorAll('input[type="checkbox"][name="' + box.dataset.selectAll + '"]').forEach(function (item) {
      item.checked = box.checked;
    });
  });

  // A select with data-required-when="<action>" is required (and shown) only while the form's
  // action select has that value: "Assign role" needs a role, "Disable" needs none.
  function syncRequired(form) {
    if (!form || !form.elements || !form.elements.action) return;
    var action = form.elements.action.value;
    form.querySelectorAll("[data-required-when]").forEach(function (field) {
      var needed = field.getAttribute("data-required-when") === action;
      field.required = needed;
      field.hidden = !needed;
      var label = field.id && form.querySelector('label[for="' + field.id + '"]');
      if (label) label.hidden = !needed;
    });
  }

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select instanceof HTMLSelectElement && select.hasAttribute("data-bulk-action")) syncRequired(select.form);
  });

  function syncAll(root) {
    (root || document).querySelectorAll("select[data-bulk-action]").forEach(function (select) {
      syncRequired(select.form);
    });
  }

  // Row menus: one open at a time; Escape or a click elsewhere closes them.
  function closeMenus(except) {
    document.querySelectorAll("details.row-menu[open]").forEach(function (menu) {
      if (menu !== except) menu.open = false;
    });
  }

  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (menu instanceof HTMLDetailsElement && menu.classList.contains("row-menu") && menu.open) closeMenus(menu);
  }, true);

  document.addEventListener("click", function (event) {
    if (!(event.target instanceof Element) || !event.target.closest("details.row-menu")) closeMenus(null);
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector("details.row-menu[open]");
    if (!open) return;
    open.open = false;
    var summary = open.querySelector("summary");
    if (summary) summary.focus();
  });

  // A polling table (data-poll-pauses) skips its refresh while one of its row menus is open or
  // something in it has focus: the swap would close the menu or drop the reader's place.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var source = event.detail && event.detail.elt;
    if (!(source instanceof Element) || !source.hasAttribute("data-poll-pauses")) return;
    if (source.querySelector("details[open]") || source.contains(document.activeElement)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () { syncAll(document); });
  document.addEventListener("htmx:afterSwap", function (event) { syncAll(event.target); });
})();
