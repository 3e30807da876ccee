// Ghapplets dashboard: the little script the pages need (no inline script anywhere: CSP).
// htmx requests say who they are, so the admin API accepts them with the session cookie
// (a cross-site page cannot send this header without a CORS preflight, never granted here).
document.addEventListener("htmx:configRequest", function (event) {
  event.detail.headers["X-Requested-With"] = "XMLHttpRequest";
});
// show an error answer (403, 404, 409...) in the target too, not only success
document.addEventListener("DOMContentLoaded", function () {
  if (window.htmx) {
    window.htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: true, error: true },
    ];
  }
});
// a stream the server ended because the session did: go to the login page
document.addEventListener("htmx:sseMessage", function (event) {
  if (event.detail && event.detail.type === "ended") {
    window.location.assign("/login");
  }
});
