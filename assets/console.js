// The console's only script. Everything works without it; it adds live printer cards
// (server-sent events), upload progress, and times in the viewer's time zone.
(function () {
  "use strict";

  // Times: the page carries UTC; show them as the viewer's clock reads.
  function localTimes(root) {
    var format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) {
        t.title = t.textContent;
        t.textContent = format.format(d);
      }
    });
  }
  localTimes(document);

  // Live printer cards: the server sends the cards' HTML (rendered and escaped like the page):
  // all of them ("printers") when the set changed, else only the changed ones ("cards").
  var grid = document.querySelector("[data-live]");
  if (grid && window.EventSource) {
    var whole = null;
    var changed = {};
    // Someone is choosing a cancel reason or typing: keep their form until they are done.
    var inUse = function () {
      var active = document.activeElement;
      return grid.querySelector("details[open]") ||
        (active && active !== document.body && grid.contains(active) && active.tagName !== "BUTTON");
    };
    var apply = function () {
      if (inUse()) return;
      if (whole !== null) {
        grid.innerHTML = whole;
        whole = null;
      }
      Object.keys(changed).forEach(function (id) {
        var old = grid.querySelector("[data-printer='" + id + "']");
        if (old) old.replaceWith(changed[id]);
      });
      changed = {};
      grid.removeAttribute("data-stale");
      localTimes(grid);
    };
    var source = new EventSource(grid.getAttribute("data-live"));
    source.addEventListener("printers", function (e) {
      whole = e.data;
      changed = {};
      apply();
    });
    source.addEventListener("cards", function (e) {
      var t = document.createElement("template");
      t.innerHTML = e.data;
      t.content.querySelectorAll("[data-printer]").forEach(function (card) {
        changed[card.getAttribute("data-printer")] = card;
      });
      apply();
    });
    source.onerror = function () {
      // The browser reconnects by itself; meanwhile say the view may be old. A refused
      // reconnection (the session ended) closes the source: reload, which shows the sign-in.
      grid.setAttribute("data-stale", "");
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(function () { window.location.reload(); }, 3000);
      }
    };
    grid.addEventListener("toggle", apply, true);
    grid.addEventListener("focusout", function () { setTimeout(apply, 0); });
  }

  // A part of the page that follows work under way (a slice): reload it until it is done,
  // unless the person is filling a form.
  var follow = document.querySelector("[data-reload]");
  if (follow) {
    setInterval(function () {
      var active = document.activeElement;
      if (active && active.form) return;
      window.location.reload();
    }, Number(follow.getAttribute("data-reload")) || 3000);
  }

  // Camera pictures, refreshed while the page is open (the printer sends them while someone
  // watches); without one yet, say so instead of a broken image.
  document.querySelectorAll("img[data-camera]").forEach(function (img) {
    var base = img.getAttribute("src");
    var panel = img.parentNode;
    img.addEventListener("error", function () { panel.classList.add("camera-none"); });
    img.addEventListener("load", function () { panel.classList.remove("camera-none"); });
    setInterval(function () {
      img.src = base + "?t=" + Date.now();
    }, Number(img.getAttribute("data-camera")) || 3000);
  });

  // Uploads with a progress bar; the server's answer decides (a refusal's reason is shown).
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    var bar = form.querySelector(".upload-progress");
    var status = form.querySelector(".upload-status");
    var input = form.querySelector("input[type=file]");
    var button = form.querySelector("button[type=submit]");
    var max = Number(form.getAttribute("data-max-bytes")) || Infinity;
    function say(text, bad) {
      status.textContent = text;
      status.classList.toggle("bad", !!bad);
    }
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var file = input.files[0];
      if (!file) return;
      if (file.size > max) {
        say(file.name + " is larger than this server accepts.", true);
        return;
      }
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.upload.addEventListener("progress", function (p) {
        if (p.lengthComputable) {
          bar.value = Math.round(100 * p.loaded / p.total);
          say("Uploading " + file.name + ": " + bar.value + " %");
        }
      });
      xhr.upload.addEventListener("load", function () { say("Checking " + file.name + "…"); });
      xhr.addEventListener("load", function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          window.location.assign(xhr.responseURL);
          return;
        }
        var doc = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var reason = doc.querySelector("[role=alert]");
        say(reason ? reason.textContent : "The upload was refused (" + xhr.status + ").", true);
        button.disabled = false;
        bar.hidden = true;
      });
      xhr.addEventListener("error", function () {
        say("The upload was interrupted. Check the connection and try again.", true);
        button.disabled = false;
        bar.hidden = true;
      });
      bar.hidden = false;
      bar.value = 0;
      button.disabled = true;
      say("Uploading " + file.name + "…");
      xhr.send(new FormData(form));
    });
  });
})();
