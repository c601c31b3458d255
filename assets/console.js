// The console's only script: live printer cards. The server sends the cards' HTML (rendered
// and escaped like the page) whenever a printer changes; without JavaScript the page still
// works and shows the state at load time.
(function () {
  "use strict";
  var grid = document.querySelector("[data-live]");
  if (!grid || !window.EventSource) return;
  var source = new EventSource(grid.getAttribute("data-live"));
  source.addEventListener("printers", function (e) {
    grid.innerHTML = e.data;
    grid.removeAttribute("data-stale");
  });
  source.onerror = function () {
    // The browser reconnects by itself; meanwhile say the view may be old.
    grid.setAttribute("data-stale", "");
  };
})();
