// The log page: the last lines first, earlier ones on demand, new lines live over SSE from the
// byte offset already shown (a reconnect resumes there: no gap, no duplicate), auto-scroll
// that stops while the reader looks further up, and an explicit end of log.
(function () {
  "use strict";
  var view = document.getElementById("log");
  if (!view) { return; }
  var encoder = new TextEncoder();
  var start = Number(view.dataset.start), end = Number(view.dataset.end);
  var finished = view.dataset.finished === "true";
  var permalink = view.dataset.permalink;
  var status = document.getElementById("log-status");
  var followBox = document.getElementById("log-follow");
  var source = null;
  var following = !view.dataset.at;
  // Lines start with their UTC time stamp: shown in the gutter, which links to the line.
  var STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

  function lineElement(offset, text) {
    var row = document.createElement("div");
    row.className = "line";
    row.id = "o" + offset;
    var link = document.createElement("a");
    link.className = "ln";
    link.href = permalink + "?at=" + offset + "#o" + offset;
    link.title = "Link to this line";
    var stamped = STAMP.test(text);
    link.textContent = stamped ? text.slice(11, 23) : "";
    var body = document.createElement("span");
    body.textContent = stamped ? text.slice(25) : text;
    row.appendChild(link);
    row.appendChild(body);
    return row;
  }
  // Lines of `text` starting at byte `from`, as elements.
  function fragment(text, from) {
    var frag = document.createDocumentFragment(), offset = from;
    text.split("\n").forEach(function (line, i, all) {
      if (i === all.length - 1 && line === "") { return; }
      frag.appendChild(lineElement(offset, line));
      offset += encoder.encode(line).length + 1;
    });
    return frag;
  }
  function nearBottom() { return view.scrollHeight - view.scrollTop - view.clientHeight < 40; }
  function setFollowing(on) {
    following = on;
    if (followBox) { followBox.checked = on; }
    if (on) { view.scrollTop = view.scrollHeight; }
  }
  view.addEventListener("scroll", function () {
    if (following && !nearBottom()) { setFollowing(false); }
    else if (!following && nearBottom() && source) { setFollowing(true); }
  });
  if (followBox) { followBox.addEventListener("change", function () { setFollowing(followBox.checked); }); }

  function setStatus(text, state) {
    if (!status) { return; }
    status.textContent = text;
    status.className = "log-status state s-" + state;
  }
  function endOfLog() {
    if (source) { source.close(); source = null; }
    finished = true;
    var marker = document.createElement("div");
    marker.className = "marker";
    marker.id = "end-of-log";
    marker.textContent = "End of log";
    view.appendChild(marker);
    setStatus("Ended", "success");
    if (following) { view.scrollTop = view.scrollHeight; }
    showTaskState();
  }
  // The task instance's state beside the title, as it is now.
  function showTaskState() {
    var badge = document.getElementById("ti-state");
    if (!badge || !view.dataset.taskUrl) { return; }
    fetch(view.dataset.taskUrl, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        var ti = body && body.task_instances.filter(function (t) { return t.task_id === view.dataset.task; })[0];
        if (!ti) { return; }
        var span = document.createElement("span");
        span.className = "state s-" + ti.state;
        span.textContent = ti.state;
        badge.replaceChildren(span);
      })
      .catch(function () {});
  }
  function connect() {
    if (finished || !window.EventSource) { return; }
    source = new EventSource(view.dataset.streamUrl + "?from=" + end);
    setStatus("Live", "running");
    source.addEventListener("lines", function (message) {
      var upTo = Number(message.lastEventId);
      if (!(upTo > end)) { return; }
      var text = message.data + "\n";
      view.appendChild(fragment(text, end));
      end = upTo;
      view.dataset.end = String(end);
      if (following) { view.scrollTop = view.scrollHeight; }
    });
    source.addEventListener("end", endOfLog);
    source.addEventListener("error", function () { if (!finished) { setStatus("Reconnecting…", "up_for_retry"); } });
    source.addEventListener("open", function () { if (!finished) { setStatus("Live", "running"); } });
  }

  // A line longer than a read (1 MiB) comes in parts: say how long it is, as the page does.
  function showCutLine(cut) {
    var banner = document.getElementById("log-line-cut");
    if (!banner) {
      banner = document.createElement("div");
      banner.className = "banner";
      banner.id = "log-line-cut";
      view.parentNode.insertBefore(banner, view);
    }
    var mib = (cut.bytes / 1048576).toFixed(1) + " MiB";
    var length = cut.exact ? mib + " (" + cut.bytes + " bytes)" : "more than " + mib;
    banner.textContent = "The first line shown is " + length + " long: only 1 MiB of it is here. " +
      "“Load earlier” shows more of it, and Download has every line whole.";
  }

  var earlier = document.getElementById("log-earlier");
  function updateEarlier() { if (earlier) { earlier.hidden = start <= 0; } }
  if (earlier) {
    earlier.addEventListener("click", function () {
      earlier.disabled = true;
      fetch(view.dataset.chunkUrl + "?before=" + start, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (chunk) {
          var height = view.scrollHeight;
          var first = view.querySelector(".line");
          view.insertBefore(fragment(chunk.text, chunk.start), first);
          start = chunk.start;
          view.scrollTop += view.scrollHeight - height;
          if (chunk.first_line_cut) { showCutLine(chunk.first_line_cut); }
          updateEarlier();
        })
        .finally(function () { earlier.disabled = false; });
    });
  }
  updateEarlier();

  // For tests and the toolbar: drop the connection and resume from the last byte shown.
  window.updraftLog = {
    reconnect: function () { if (source) { source.close(); source = null; } connect(); },
    end: function () { return end; }
  };
  var again = document.getElementById("log-reconnect");
  if (again) { again.addEventListener("click", window.updraftLog.reconnect); }

  if (finished) { endOfLog(); } else { connect(); }
  if (view.dataset.at) {
    var target = document.getElementById("o" + view.dataset.at);
    if (target) { target.classList.add("at"); target.scrollIntoView({ block: "center" }); }
  } else { view.scrollTop = view.scrollHeight; }
})();
