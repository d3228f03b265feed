// Updraft pages: times in UTC or the browser's zone, live regions refreshed when the server
// pushes a state change (one SSE stream, no polling), and JSON fields checked as you type.
(function () {
  "use strict";

  // ---- Times: <time datetime="..."> shows UTC; the toggle switches to the browser's zone.
  var TZ_KEY = "updraft.tz";
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function localText(date) {
    var zone = "";
    try {
      zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" })
        .formatToParts(date).filter(function (p) { return p.type === "timeZoneName"; })[0].value;
    } catch (e) { zone = "local"; }
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds()) + " " + zone;
  }
  function renderTimes(root) {
    var local = localStorage.getItem(TZ_KEY) === "local";
    (root || document).querySelectorAll("time[datetime]").forEach(function (el) {
      if (!el.dataset.utc) { el.dataset.utc = el.textContent; }
      el.textContent = local ? localText(new Date(el.getAttribute("datetime"))) : el.dataset.utc;
    });
    var toggle = document.getElementById("tz-toggle");
    if (toggle) {
      toggle.textContent = local ? "Local time" : "UTC";
      toggle.setAttribute("aria-pressed", local ? "true" : "false");
    }
  }
  document.addEventListener("click", function (event) {
    if (event.target && event.target.id === "tz-toggle") {
      localStorage.setItem(TZ_KEY, localStorage.getItem(TZ_KEY) === "local" ? "utc" : "local");
      renderTimes();
    }
  });

  // ---- Selects that act when changed (no inline handlers: the CSP allows no inline script):
  // data-submit-on-change sends its form, data-go-on-change goes to the chosen option's URL.
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select || select.tagName !== "SELECT") { return; }
    if (select.hasAttribute("data-submit-on-change") && select.form) {
      select.form.submit();
    } else if (select.hasAttribute("data-go-on-change")) {
      location.href = select.value;
    }
  });

  // ---- Live regions: <div data-live-src="/partial" data-live-dag="id" data-live-run="id">.
  var pending = new Map();
  var inFlight = new Set();
  var took = new Map();
  // Resolves once the browser has laid out and painted what was just put in the page.
  function painted() {
    return new Promise(function (resolve) {
      requestAnimationFrame(function () { setTimeout(resolve, 0); });
    });
  }
  function refresh(region) {
    if (inFlight.has(region)) { pending.set(region, true); return; }
    inFlight.add(region);
    var started = Date.now();
    fetch(region.dataset.liveSrc, { headers: { "x-requested-with": "updraft" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null) {
          region.innerHTML = html;
          renderTimes(region);
          region.dispatchEvent(new CustomEvent("updraft:refreshed", { bubbles: true }));
          return painted();
        }
      })
      .catch(function () {})
      .finally(function () {
        inFlight.delete(region);
        took.set(region, Date.now() - started);
        if (pending.get(region)) { pending.delete(region); schedule(region); }
      });
  }
  var timers = new Map();
  // Changes within 40 ms are one refresh. A region that took long to fetch and paint (a run
  // of thousands of tasks) waits twice that before its next refresh, so that following a
  // busy run leaves the browser and the server idle two thirds of the time.
  function schedule(region) {
    if (timers.has(region)) { return; }
    var wait = Math.max(40, 2 * (took.get(region) || 0));
    timers.set(region, setTimeout(function () { timers.delete(region); refresh(region); }, wait));
  }
  function concerns(region, change) {
    var dag = region.dataset.liveDag, run = region.dataset.liveRun;
    if (dag && dag !== change.dag_id) { return false; }
    if (run && change.run_id && run !== change.run_id) { return false; }
    return true;
  }
  function follow() {
    var regions = Array.prototype.slice.call(document.querySelectorAll("[data-live-src]"));
    if (!regions.length || !window.EventSource) { return; }
    // From the event the page was rendered at: nothing between render and connect is missed.
    var source = new EventSource("/live/events?after=" + (document.body.dataset.liveSeq || ""));
    source.addEventListener("state", function (message) {
      var change = JSON.parse(message.data);
      regions.forEach(function (region) { if (concerns(region, change)) { schedule(region); } });
    });
    source.addEventListener("reset", function () { regions.forEach(schedule); });
    source.addEventListener("open", function () { document.documentElement.dataset.live = "open"; });
    window.updraftLive = source;
  }

  // ---- JSON fields: <textarea data-json="object|any"> with a sibling .field-error.
  function checkJson(field) {
    var text = field.value.trim(), message = "";
    if (text) {
      try {
        var value = JSON.parse(text);
        if (field.dataset.json === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
          message = "must be a JSON object such as {\"key\": 1}";
        }
      } catch (e) { message = "invalid JSON: " + e.message; }
    }
    field.setCustomValidity(message);
    var out = document.getElementById(field.id + "-error");
    if (out && (message || !out.dataset.server)) { out.textContent = message; }
  }
  function checkInput(field) {
    var out = document.getElementById(field.id + "-error");
    if (out && !out.dataset.server) { out.textContent = field.validationMessage; }
  }
  document.addEventListener("input", function (event) {
    var field = event.target;
    if (field.dataset && field.dataset.json !== undefined) {
      if (field.id) { var out = document.getElementById(field.id + "-error"); if (out) { delete out.dataset.server; } }
      checkJson(field);
    } else if (field.form && field.form.classList.contains("checked")) {
      var o = document.getElementById(field.id + "-error"); if (o) { delete o.dataset.server; }
      checkInput(field);
    }
  });

  // ---- Pushed regions: <div data-push-src="/sse">: the server renders the region's HTML and
  // pushes it as an `html` event (stream figures each second, results on each flush).
  function followPushed() {
    document.querySelectorAll("[data-push-src]").forEach(function (region) {
      var source = new EventSource(region.dataset.pushSrc);
      source.addEventListener("html", function (event) {
        // Keep an open <select> or <details> as the user left it.
        var open = Array.prototype.map.call(region.querySelectorAll("details[open]"), function (d) { return d.id; });
        region.innerHTML = event.data;
        open.forEach(function (id) { var d = id && document.getElementById(id); if (d) { d.open = true; } });
        renderTimes(region);
        region.dataset.pushed = String(Number(region.dataset.pushed || "0") + 1);
        region.dispatchEvent(new CustomEvent("updraft:pushed", { bubbles: true }));
      });
    });
  }

  // "/" focuses the page's filter or search box.
  document.addEventListener("keydown", function (event) {
    if (event.key === "/" && !/INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) {
      var box = document.querySelector("[data-shortcut='/']");
      if (box) { event.preventDefault(); box.focus(); }
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    renderTimes();
    document.querySelectorAll("textarea[data-json]").forEach(checkJson);
    follow();
    followPushed();
  });
})();
