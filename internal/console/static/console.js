// The console works without this script; it only keeps the queue fresh. Every data-refresh
// seconds the queue is fetched again and swapped in, unless the tab is hidden or the keyboard focus
// is inside the queue (a refresh must never move the analyst's place).
(function () {
  "use strict";
  var box = document.querySelector("[data-refresh]");
  if (!box || !window.fetch || !window.DOMParser) return;
  var seconds = parseInt(box.getAttribute("data-refresh"), 10) || 15;
  function stamp(el) {
    var s = el.querySelector("[data-updated]");
    if (s) s.textContent = " · updated " + new Date().toLocaleTimeString();
  }
  function refresh() {
    if (document.visibilityState !== "visible" || box.contains(document.activeElement)) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (res) {
        if (res.redirected || !res.ok) { window.location.reload(); return null; }
        return res.text();
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(box.id);
        if (!fresh) return;
        box.innerHTML = fresh.innerHTML;
        stamp(box);
      })
      .catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
