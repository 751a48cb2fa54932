// Boots the vendored Swagger UI on /api/docs. Kept in a file: the CSP forbids inline scripts.
//
// Swagger UI renders into a shadow root, so the site's styles (Pico's element styles above all:
// buttons, tables, inputs, headings) cannot reach its markup, and its styles cannot reach the
// page. The root's stylesheets are the ones the page preloads (link[data-api-docs-style]):
// Swagger UI's own and css/api-docs.css, which fixes its contrast for WCAG AA.
//
// Swagger UI's dark theme hangs off `html.dark-mode`; selectors inside a shadow root only see
// that root's elements, so the root gets an <html> element of its own, which carries the class
// while the browser prefers a dark colour scheme (and follows it when that changes).
(function () {
  "use strict";

  // Swagger UI's BaseLayout, but with the operations in a <div>: the page already has its
  // <main>, and a second one (in the shadow tree, it is still one to assistive technology)
  // would be a second main landmark.
  function HearthLayoutPlugin(system) {
    var h = system.React.createElement;

    function loadingNotice(specSelectors, Errors) {
      var status = specSelectors.loadingStatus();
      if (status === "loading") {
        return h("div", { className: "info" }, h("div", { className: "loading-container" }, h("div", { className: "loading" })));
      }
      if (status === "failed") {
        return h(
          "div",
          { className: "info" },
          h("div", { className: "loading-container" }, h("h4", { className: "title" }, "Failed to load API definition."), h(Errors))
        );
      }
      return specSelectors.specStr() ? null : h("h4", null, "No API definition provided.");
    }

    function HearthLayout(props) {
      var specSelectors = props.specSelectors;
      var get = props.getComponent;
      var Row = get("Row");
      var Col = get("Col");
      var Errors = get("errors", true);
      var notice = loadingNotice(specSelectors, Errors);
      if (notice) {
        return h("div", { className: "swagger-ui" }, h("div", { className: "loading-container" }, notice));
      }
      var servers = specSelectors.servers();
      var schemes = specSelectors.schemes();
      var hasServers = servers && servers.size;
      var hasSchemes = schemes && schemes.size;
      var hasSecurity = !!specSelectors.securityDefinitions();
      var section = function (content, className) {
        return h(Row, { className: className }, h(Col, { mobile: 12, desktop: 12 }, content));
      };
      return h(
        "div",
        { className: "swagger-ui" },
        h(get("SvgAssets")),
        h(
          get("VersionPragmaFilter"),
          {
            isSwagger2: specSelectors.isSwagger2(),
            isOAS3: specSelectors.isOAS3(),
            isOAS31: specSelectors.isOAS31(),
            isOAS32: specSelectors.isOAS32 ? specSelectors.isOAS32() : false,
            alsoShow: h(Errors),
          },
          h(Errors),
          h(Row, { className: "information-container" }, h(Col, { mobile: 12 }, h(get("InfoContainer", true)))),
          hasServers || hasSchemes || hasSecurity
            ? h(
                "div",
                { className: "scheme-container" },
                h(
                  Col,
                  { className: "schemes wrapper", mobile: 12 },
                  hasServers || hasSchemes
                    ? h(
                        "div",
                        { className: "schemes-server-container" },
                        hasServers ? h(get("ServersContainer", true)) : null,
                        hasSchemes ? h(get("SchemesContainer", true)) : null
                      )
                    : null,
                  hasSecurity ? h(get("AuthorizeBtnContainer", true)) : null
                )
              )
            : null,
          h(get("FilterContainer", true)),
          h(
            "div",
            { id: "operations" },
            section(h(get("operations", true))),
            specSelectors.isOAS31() || (specSelectors.isOAS32 && specSelectors.isOAS32())
              ? section(h(get("Webhooks", true)), "webhooks-container")
              : null,
            section(h(get("Models", true)))
          )
        )
      );
    }

    return { components: { HearthLayout: HearthLayout } };
  }

  // What Swagger UI's markup leaves unnamed or out of keyboard reach, fixed as it renders
  // (operations and schemas render when they are expanded): parameter pickers get their
  // parameter's name, the server picker its own, and scrolling code samples a tab stop.
  function repairAccessibility(root) {
    root.querySelectorAll("select:not([aria-label])").forEach(function (select) {
      var row = select.closest("tr[data-param-name]");
      select.setAttribute("aria-label", row ? row.dataset.paramName : select.id === "servers" ? "Server" : "Choice");
    });
    root.querySelectorAll(".highlight-code > pre:not([tabindex]), pre.microlight:not([tabindex])").forEach(function (pre) {
      pre.setAttribute("tabindex", "0");
    });
  }

  function boot() {
    var host = document.getElementById("api-reference");
    if (!host || typeof window.SwaggerUIBundle !== "function" || host.shadowRoot) {
      return;
    }
    var shadow = host.attachShadow({ mode: "open" });
    document.querySelectorAll("link[data-api-docs-style]").forEach(function (preload) {
      var sheet = document.createElement("link");
      sheet.rel = "stylesheet";
      sheet.href = preload.href;
      shadow.appendChild(sheet);
    });
    var root = document.createElement("html");
    root.lang = document.documentElement.lang || "en";
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    var theme = function () {
      root.classList.toggle("dark-mode", dark.matches);
    };
    theme();
    dark.addEventListener("change", theme);
    var mount = document.createElement("div");
    root.appendChild(mount);
    shadow.appendChild(root);

    window.SwaggerUIBundle({
      url: host.dataset.specUrl,
      domNode: mount,
      // Deep links put a link inside each operation's toggle button (nested controls).
      deepLinking: false,
      presets: [window.SwaggerUIBundle.presets.apis],
      plugins: [HearthLayoutPlugin],
      layout: "HearthLayout",
      validatorUrl: null, // never call validator.swagger.io: no request leaves this site
    });
    repairAccessibility(shadow);
    new MutationObserver(function () {
      repairAccessibility(shadow);
    }).observe(shadow, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
