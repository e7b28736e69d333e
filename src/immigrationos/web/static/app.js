// ImmigrationOS pages: send the session's CSRF token with every htmx request, and run the
// live panels (server-sent events) that pages declare with data-sse-url. No inline scripts:
// the Content-Security-Policy allows scripts from this origin only.
(function () {
  "use strict";
  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }
  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrf();
  });
  // A live panel: <section data-sse-url="/departures/stream" data-sse-event="monitor">; each
  // event's data is HTML for the panel's [data-sse-target] element (or the panel itself).
  function connect(panel) {
    if (!window.EventSource) { return; }
    var source = new EventSource(panel.getAttribute("data-sse-url"));
    var target = panel.querySelector("[data-sse-target]") || panel;
    var status = panel.querySelector("[data-sse-status]");
    source.addEventListener(panel.getAttribute("data-sse-event") || "message", function (e) {
      target.innerHTML = e.data;
      if (status) { status.textContent = "live · updated " + new Date().toLocaleTimeString(); }
    });
    source.onerror = function () { if (status) { status.textContent = "reconnecting…"; } };
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-sse-url]").forEach(connect);
  });
})();
