// aiobgproc dashboard: live lists, the live output log, the proceed form's check.
// Served by the app itself (no CDN, no build step); every text goes in with textContent.
"use strict";

(function () {
  const body = document.body;
  const root = body.dataset.root || "";
  const page = body.dataset.page;

  function age(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const units = [["d", 86400], ["h", 3600], ["min", 60]];
    for (const [unit, size] of units) {
      if (seconds >= size) return Math.floor(seconds / size) + " " + unit + " ago";
    }
    return Math.floor(seconds) + " s ago";
  }

  function cell(row, text, className) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function badge(status) {
    const span = document.createElement("span");
    span.className = "status status-" + status;
    span.textContent = status;
    return span;
  }

  function quote(arg) {
    // As Python's shlex.quote (the server renders the first page with it).
    if (arg === "") return "''";
    if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
    return "'" + arg.replace(/'/g, "'\"'\"'") + "'";
  }

  function what(info) {
    return info.command ? info.command.map(quote).join(" ") : info.steps.join(" → ");
  }

  function renderRows(tbody, processes) {
    const rows = processes.map(function (info) {
      const row = document.createElement("tr");
      const link = document.createElement("a");
      link.href = root + "/processes/" + encodeURIComponent(info.id);
      link.textContent = info.id.slice(0, 12);
      cell(row, link, "id");
      cell(row, what(info), "what");
      cell(row, badge(info.status));
      cell(row, info.queue);
      cell(row, info.label || "");
      const time = document.createElement("time");
      time.dateTime = info.created_at;
      time.textContent = age(info.created_at);
      cell(row, time);
      cell(row, info.kind === "process" ? info.steps_done + "/" + info.steps_total : "");
      return row;
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function liveList() {
    const tbody = document.querySelector("#processes tbody");
    if (!tbody || tbody.dataset.live !== "1") return;
    let pending = null;
    function refresh() {
      pending = null;
      fetch(root + "/api/processes" + window.location.search, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (!data) return;
          renderRows(tbody, data.processes);
          const empty = document.querySelector("p.empty");
          if (empty) empty.hidden = data.processes.length > 0;
        });
    }
    const source = new EventSource(root + "/api/events");
    function soon() {
      if (pending === null) pending = setTimeout(refresh, 150);
    }
    // The stream starts from its connection: what changed since the page was made is read
    // once it is open (and again after a reconnection).
    source.addEventListener("open", soon);
    source.addEventListener("process", soon);
    setInterval(function () {
      document.querySelectorAll("#processes time").forEach(function (time) {
        time.textContent = age(time.dateTime);
      });
    }, 10000);
  }

  function liveProcess() {
    const log = document.getElementById("log");
    if (!log) return;
    const id = log.dataset.process;
    const status = document.querySelector("#status .status");
    const current = status ? status.textContent : "";
    const url = root + "/api/processes/" + encodeURIComponent(id) + "/output?tail=" +
      encodeURIComponent(log.dataset.tail);
    const output = new EventSource(url);
    let first = true;
    output.addEventListener("chunk", function (message) {
      if (first) { log.replaceChildren(); first = false; }
      const chunk = JSON.parse(message.data);
      const span = document.createElement("span");
      span.className = chunk.stream === "stderr" ? "stderr" : "stdout";
      span.textContent = chunk.data;
      const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
      log.appendChild(span);
      if (atBottom) log.scrollTop = log.scrollHeight;
    });
    output.addEventListener("end", function () { output.close(); });
    const events = new EventSource(root + "/api/events?process_id=" + encodeURIComponent(id));
    events.addEventListener("process", function (message) {
      const event = JSON.parse(message.data);
      if (event.status === current) return;
      events.close();
      const notice = document.getElementById("changed");
      if (document.getElementById("proceed") && notice) {
        // Someone is answering the proceed form: keep what they typed, say what happened.
        notice.textContent = "This process is " + event.status + " now. ";
        const again = document.createElement("a");
        again.href = window.location.pathname;
        again.textContent = "Reload";
        notice.appendChild(again);
        notice.hidden = false;
        return;
      }
      output.close();
      window.location.reload();
    });
  }

  function proceedForm() {
    const form = document.getElementById("proceed");
    if (!form) return;
    const field = document.getElementById("proceed-data");
    const error = document.getElementById("proceed-error");
    form.addEventListener("submit", function (submit) {
      let problem = null;
      try {
        const value = JSON.parse(field.value || "{}");
        if (value === null || typeof value !== "object" || Array.isArray(value)) {
          problem = "The data must be a JSON object ({...}).";
        }
      } catch (exc) {
        problem = "Not valid JSON: " + exc.message;
      }
      if (problem !== null) {
        submit.preventDefault();
        error.textContent = problem;
        error.hidden = false;
      }
    });
  }

  if (page === "list") liveList();
  if (page === "process") { liveProcess(); proceedForm(); }
})();
