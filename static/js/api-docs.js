// Boots the vendored Swagger UI on /api/docs. Kept in a file: the CSP forbids inline scripts.
document.addEventListener("DOMContentLoaded", function () {
  var host = document.getElementById("swagger-ui");
  if (!host || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.SwaggerUIBundle({
    url: host.dataset.specUrl,
    domNode: host,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null, // never call validator.swagger.io: no request leaves this site
  });
});
