// The console's only script: live printer cards. The server sends the cards' HTML (rendered
// and escaped like the page) whenever a printer changes; without JavaScript the page still
// works and shows the state at load time.
(function () {
  "use strict";
  var grid = document.querySelector("[data-live]");
  if (!grid || !window.EventSource) return;
  var pending = null;
  // Someone is choosing a cancel reason or typing: keep their form until they are done.
  function inUse() {
    var active = document.activeElement;
    return grid.querySelector("details[open]") ||
      (active && active !== document.body && grid.contains(active) && active.tagName !== "BUTTON");
  }
  function apply() {
    if (pending === null || inUse()) return;
    grid.innerHTML = pending;
    pending = null;
    grid.removeAttribute("data-stale");
  }
  var source = new EventSource(grid.getAttribute("data-live"));
  source.addEventListener("printers", function (e) {
    pending = e.data;
    apply();
  });
  source.onerror = function () {
    // The browser reconnects by itself; meanwhile say the view may be old.
    grid.setAttribute("data-stale", "");
  };
  grid.addEventListener("toggle", apply, true);
  grid.addEventListener("focusout", function () { setTimeout(apply, 0); });
})();
