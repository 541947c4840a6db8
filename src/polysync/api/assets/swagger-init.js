// Starts Swagger UI on /docs (a file, not an inline script: the CSP allows no inline code).
// Requests to this server made with the console's session cookie carry its CSRF token;
// a bearer token given through "Authorize" is sent as Swagger UI sends it.
"use strict";

(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

  function sameOrigin(url) {
    try {
      return new URL(url, window.location.href).origin === window.location.origin;
    } catch (e) {
      return false;
    }
  }

  window.ui = SwaggerUIBundle({
    url: "/docs/openapi-3.0.json", // Swagger UI 4 reads OpenAPI 3.0; /openapi.json is 3.1
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    validatorUrl: null, // never send the schema to validator.swagger.io
    requestInterceptor: (req) => {
      if (csrf && UNSAFE.has(String(req.method).toUpperCase()) && sameOrigin(req.url)) {
        req.headers["X-CSRF-Token"] = csrf;
      }
      return req;
    },
  });
})();
