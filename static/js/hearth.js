/* Hearth's site-wide behaviour: toasts and the main menu. Everything here enhances markup that
   already works without JavaScript (base.html): flashed messages are rendered as toasts by the
   server, and the menu is a <details> disclosure. No inline code anywhere (CSP). */
(function () {
  "use strict";

  var AUTO_DISMISS_MS = 6000;
  var LEVELS = ["success", "info", "warning", "error"];

  function region() {
    return document.getElementById("toasts");
  }

  function dismiss(toast) {
    if (!toast || !toast.parentNode) return;
    window.clearTimeout(toast._hearthTimer);
    toast.parentNode.removeChild(toast);
  }

  // Errors stay until dismissed; anything else leaves after a while, but not while the
  // pointer or the keyboard focus is on it (WCAG 2.2.1: timing adjustable).
  function schedule(toast) {
    if (toast.getAttribute("data-level") === "error") return;
    window.clearTimeout(toast._hearthTimer);
    toast._hearthTimer = window.setTimeout(function () { dismiss(toast); }, AUTO_DISMISS_MS);
  }

  function hold(toast) {
    window.clearTimeout(toast._hearthTimer);
  }

  function wire(toast) {
    if (toast._hearthWired) return;
    toast._hearthWired = true;
    toast.addEventListener("mouseenter", function () { hold(toast); });
    toast.addEventListener("mouseleave", function () { schedule(toast); });
    toast.addEventListener("focusin", function () { hold(toast); });
    toast.addEventListener("focusout", function () { schedule(toast); });
    schedule(toast);
  }

  function show(message, level) {
    var target = region();
    if (!target || !message) return null;
    if (LEVELS.indexOf(level) < 0) level = "info";
    var template = document.querySelector('template[data-toast-template="' + level + '"]');
    if (!template) return null;
    var toast = template.content.firstElementChild.cloneNode(true);
    toast.querySelector(".toast__message").textContent = String(message);
    target.appendChild(toast);
    wire(toast);
    return toast;
  }

  // The server sends `HX-Trigger: {"toast": {"message": …, "level": …}}`, or a list of them
  // (htmx then passes it as `detail.value`).
  function onToastEvent(event) {
    var detail = event.detail || {};
    var items = Array.isArray(detail.value) ? detail.value : [detail];
    items.forEach(function (item) {
      if (item && item.message) show(item.message, item.level);
    });
  }

  function onClick(event) {
    var button = event.target.closest && event.target.closest(".toast__close");
    if (button) {
      dismiss(button.closest(".toast"));
      return;
    }
    // A click outside the open phone menu closes it.
    var menu = document.querySelector("details[data-site-menu][open]");
    if (menu && narrow.matches && !menu.contains(event.target)) menu.open = false;
  }

  // Wide screens show the navigation inline: keep the disclosure open there (the CSS already
  // does so in browsers with ::details-content; this covers the rest).
  var narrow = window.matchMedia("(max-width: 767.98px)");
  function syncMenu() {
    var menu = document.querySelector("details[data-site-menu]");
    if (menu) menu.open = !narrow.matches;
  }

  function onKeydown(event) {
    if (event.key !== "Escape") return;
    var menu = document.querySelector("details[data-site-menu][open]");
    if (menu && narrow.matches) {
      menu.open = false;
      var toggle = menu.querySelector("summary");
      if (toggle) toggle.focus();
    }
  }

  function start() {
    var target = region();
    if (target) Array.prototype.forEach.call(target.querySelectorAll(".toast"), wire);
    syncMenu();
    if (narrow.addEventListener) narrow.addEventListener("change", syncMenu);
  }

  // A page htmx keeps for the back button must not bring old messages back with it.
  function onBeforeHistorySave() {
    var target = region();
    if (target) Array.prototype.forEach.call(target.querySelectorAll(".toast"), dismiss);
  }

  document.addEventListener("toast", onToastEvent);
  document.addEventListener("htmx:beforeHistorySave", onBeforeHistorySave);
  document.addEventListener("click", onClick);
  document.addEventListener("keydown", onKeydown);
  window.hearthToast = show;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
