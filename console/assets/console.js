// sterad console: live panels over server-sent events. An element with
// data-sse="URL" has its content replaced by each "update" event; "end"
// closes the stream.
(function () {
  "use strict";
  function follow(el) {
    var src = new EventSource(el.getAttribute("data-sse"));
    src.addEventListener("update", function (e) {
      el.innerHTML = e.data;
      if (window.htmx) { window.htmx.process(el); }
    });
    src.addEventListener("end", function () {
      src.close();
      el.removeAttribute("data-sse");
      el.setAttribute("data-live-ended", "true");
    });
    src.onerror = function () {
      if (el.hasAttribute("data-live-ended")) { src.close(); }
    };
  }
  function start() {
    document.querySelectorAll("[data-sse]").forEach(follow);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
