// Admin pages: confirmation of destructive forms, and "select all" for bulk actions.
// Without JavaScript the server asks for confirmation on a page of its own instead.
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
})();
