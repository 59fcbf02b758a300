// Starts Swagger UI over this API's own OpenAPI document (served next to this page).
// A file of ours rather than an inline script, so the page's CSP can stay script-src 'self'.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // null: Swagger UI would otherwise send the document to an online validator.
    validatorUrl: null,
  });
});
