// bucketvault console: the moment picker, the selection kept across folders, and the progress
// of a running restore. Everything works without it too, only less conveniently.
"use strict";

(function () {
  // The moment picker: its time field and its list of backups share the name "at"; keep one.
  var time = document.getElementById("at-time");
  var run = document.getElementById("at-run");
  if (time && run) {
    time.addEventListener("change", function () { if (time.value) { run.value = ""; } });
    run.addEventListener("change", function () {
      time.value = "";
      if (run.form) { run.form.submit(); }
    });
  }

  // The selection: kept in sessionStorage for one moment, across folders.
  var form = document.getElementById("selection");
  var storeKey = "bucketvault-selection";
  function load(at) {
    try {
      var s = JSON.parse(sessionStorage.getItem(storeKey) || "null");
      if (s && s.at === at && Array.isArray(s.items)) { return s.items; }
    } catch (e) { /* a broken entry: start again */ }
    return [];
  }
  function save(at, items) { sessionStorage.setItem(storeKey, JSON.stringify({ at: at, items: items })); }
  if (form && form.querySelector("[data-testid=selected-count]")) { // absent for people who may not restore
    var at = form.getAttribute("data-at") || "";
    var items = load(at);
    var count = form.querySelector("[data-testid=selected-count]");
    var clear = form.querySelector("[data-testid=clear-selection]");
    var boxes = form.querySelectorAll("input[type=checkbox][name=select]");
    var show = function () {
      count.textContent = items.length === 0 ? "Nothing selected yet." : items.length + " selected (in all folders)";
      clear.hidden = items.length === 0;
    };
    boxes.forEach(function (box) {
      box.checked = items.indexOf(box.value) >= 0;
      box.addEventListener("change", function () {
        var i = items.indexOf(box.value);
        if (box.checked && i < 0) { items.push(box.value); }
        if (!box.checked && i >= 0) { items.splice(i, 1); }
        save(at, items);
        show();
      });
    });
    clear.addEventListener("click", function () {
      items = [];
      save(at, items);
      boxes.forEach(function (box) { box.checked = false; });
      show();
    });
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (items.length === 0) { count.textContent = "Select files or folders first."; return; }
      var q = new URLSearchParams();
      q.append("at", at);
      items.forEach(function (v) { q.append(v.slice(-1) === "/" ? "prefix" : "key", v); });
      window.location.assign("/restore?" + q.toString());
    });
    show();
  }

  // Progress: ask the server every second until the run is finished, then show the result.
  var progress = document.querySelector("[data-testid=progress]");
  if (progress) {
    sessionStorage.removeItem(storeKey); // the restore has started: the selection is done with
  }
  if (progress && progress.getAttribute("data-finished") !== "true") {
    var name = progress.getAttribute("data-run");
    var size = function (n) {
      var u = ["B", "KiB", "MiB", "GiB", "TiB"], i = 0;
      while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
      return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
    };
    var tick = function () {
      fetch("/api/runs/" + encodeURIComponent(name), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (s) {
          if (s.finished) { window.location.reload(); return; }
          if (s.status === "STARTING") { progress.textContent = "Starting…"; }
          else if (!s.batches) { progress.textContent = "Working out what to restore…"; }
          else if (s.thawing) { progress.textContent = "Waiting for archived files to thaw; then " + s.batches + " batches will be copied."; }
          else { progress.textContent = s.done + " of " + s.batches + " batches done, " + s.objects + " files, " + size(s.bytes) + " copied."; }
          // The rate and the thaw wait, in the server's words.
          [["rate", s.rateText], ["thaw", s.thawText]].forEach(function (p) {
            var el = document.querySelector("[data-testid=" + p[0] + "]");
            if (el) { el.textContent = p[1] || ""; el.hidden = !p[1]; }
          });
          window.setTimeout(tick, 1000);
        })
        .catch(function () { window.setTimeout(tick, 1000); });
    };
    window.setTimeout(tick, 1000);
  }
})();
