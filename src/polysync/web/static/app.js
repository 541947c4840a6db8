// Polysync web console: keyboard shortcuts and live data (no build step, no framework).
// Every value from the server is written with textContent, never innerHTML.
"use strict";

(function () {
  const TERMINAL = new Set(["Succeeded", "Failed", "Cancelled"]);

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function ts(iso) {
    if (!iso) return "-";
    return String(iso).replace("T", " ").replace(/(\.\d+)?(Z|[+-]\d\d:\d\d)$/, "");
  }

  async function problem(resp) {
    try {
      const body = await resp.json();
      return body.detail || body.title || `HTTP ${resp.status}`;
    } catch (e) {
      return `HTTP ${resp.status}`;
    }
  }

  // The session's CSRF token (base.html's meta tag): the API refuses a POST made with the
  // session cookie without it, so no other page can make this browser call the API.
  const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  function post(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRF-Token": CSRF },
    });
  }

  function stateBadge(node, state) {
    node.textContent = state;
    node.className = `state state-${state}`;
  }

  // -- keyboard shortcuts: "g r" runs, "g t" tasks, "g j" jobs, "g p" platforms,
  //    "g v" vaults, "/" focus the first filter, "?" help --------------------------------
  const GO = { r: "/runs", t: "/tasks", j: "/jobs", p: "/platforms", v: "/vaults" };
  for (const btn of document.querySelectorAll("[data-open-help]")) {
    btn.addEventListener("click", () => {
      const help = document.getElementById("help");
      if (help && !help.open) help.showModal();
    });
  }
  let pendingG = 0;
  document.addEventListener("keydown", (ev) => {
    const t = ev.target;
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const help = document.getElementById("help");
    if (ev.key === "?") {
      if (help && !help.open) help.showModal();
      ev.preventDefault();
      return;
    }
    if (ev.key === "/") {
      const f = document.querySelector("[data-search]");
      if (f) { f.focus(); ev.preventDefault(); }
      return;
    }
    if (ev.key === "g") { pendingG = Date.now(); return; }
    if (pendingG && Date.now() - pendingG < 1500 && GO[ev.key]) {
      pendingG = 0;
      window.location.assign(GO[ev.key]);
      ev.preventDefault();
      return;
    }
    pendingG = 0;
  });

  // -- one EventSource per page, shared by the live widgets -----------------------------
  const listeners = [];
  function onRunEvent(fn) {
    listeners.push(fn);
    if (listeners.length > 1) return;
    const badge = document.querySelector("[data-live-status]");
    const setStatus = (s, text) => {
      if (!badge) return;
      badge.dataset.status = s;
      badge.textContent = text;
    };
    const source = new EventSource("/api/events");
    source.addEventListener("open", () => setStatus("live", "live"));
    source.addEventListener("error", () => {
      // CLOSED: the server refused to reconnect (signed out, session expired, token revoked).
      if (source.readyState === EventSource.CLOSED) setStatus("down", "stopped: reload the page");
      else setStatus("down", "reconnecting…");
    });
    source.addEventListener("run", (ev) => {
      let run;
      try { run = JSON.parse(ev.data); } catch (e) { return; }
      for (const f of listeners) f(run);
    });
  }

  // -- runs list: update rows in place, insert new runs on the first page ---------------
  function runCells(tr, run) {
    for (const cell of tr.querySelectorAll("[data-field]")) {
      const f = cell.dataset.field;
      if (f === "state") stateBadge(cell.querySelector(".state") || cell, run.state);
      else if (f === "exit_code") cell.textContent = run.exit_code === null ? "-" : run.exit_code;
      else if (f === "started_at" || f === "ended_at" || f === "created_at") cell.textContent = ts(run[f]);
      else if (f === "run_id") cell.textContent = run.run_id || "-";
      else if (f === "attempt") cell.textContent = run.attempt;
    }
  }

  function newRunRow(table, run) {
    const tr = el("tr", { "data-run-id": String(run.id) });
    const link = el("a", { href: `/runs/${run.id}` }, run.id);
    const idCell = el("td", { class: "num" });
    idCell.appendChild(link);
    tr.appendChild(idCell);
    const taskCell = el("td");
    taskCell.appendChild(el("a", { href: `/tasks/${encodeURIComponent(run.task)}` }, run.task));
    tr.appendChild(taskCell);
    const stateCell = el("td", { "data-field": "state" });
    stateCell.appendChild(el("span", { class: "state" }, ""));
    tr.appendChild(stateCell);
    for (const f of ["attempt", "run_id", "exit_code", "created_at", "started_at", "ended_at"]) {
      const cls = { run_id: "mono wrap", attempt: "num" }[f];
      tr.appendChild(el("td", cls ? { "data-field": f, class: cls } : { "data-field": f }));
    }
    runCells(tr, run);
    table.tBodies[0].prepend(tr);
    const counter = document.querySelector("[data-runs-count]");
    if (counter) {
      const shown = Number(counter.dataset.shown) + 1;
      const total = Number(counter.dataset.total) + 1;
      const from = Number(counter.dataset.offset) + 1;
      counter.dataset.shown = String(shown);
      counter.dataset.total = String(total);
      counter.textContent = `${from}–${from + shown - 1} of ${total}`;
    }
    const empty = document.querySelector("[data-empty-runs]");
    if (empty) empty.hidden = true;
    table.hidden = false;
  }

  const runsTable = document.querySelector("table[data-live-runs]");
  if (runsTable) {
    const wantTask = runsTable.dataset.filterTask || "";
    const wantState = runsTable.dataset.filterState || "";
    const mayInsert = runsTable.dataset.insert === "1";
    onRunEvent((run) => {
      const tr = runsTable.querySelector(`tr[data-run-id="${Number(run.id)}"]`);
      if (tr) {
        if (wantState && run.state !== wantState) tr.classList.add("muted");
        runCells(tr, run);
        return;
      }
      if (!mayInsert) return;
      if (wantTask && run.task !== wantTask) return;
      if (wantState && run.state !== wantState) return;
      newRunRow(runsTable, run);
    });
  }

  // -- run detail: fields, timeline, logs tail, cancel ----------------------------------
  const detail = document.querySelector("[data-run-detail]");
  if (detail) {
    const runId = Number(detail.dataset.runDetail);
    let state = detail.dataset.state;
    let refreshing = false;

    function renderRun(run) {
      state = run.state;
      detail.dataset.state = state;
      for (const node of detail.querySelectorAll("[data-run-field]")) {
        const f = node.dataset.runField;
        const v = run[f];
        if (f === "state") stateBadge(node, v);
        else if (f === "monitor_url") {
          if (v) { node.textContent = ""; node.appendChild(el("a", { href: v, target: "_blank", rel: "noopener" }, v)); }
        } else if (f.endsWith("_at")) node.textContent = ts(v);
        else node.textContent = v === null || v === undefined || v === "" ? "-" : v;
      }
      const tl = detail.querySelector("[data-timeline]");
      if (tl && Array.isArray(run.history)) {
        tl.textContent = "";
        for (const h of run.history) {
          const li = el("li");
          li.appendChild(el("time", { datetime: h.at || "" }, ts(h.at)));
          li.appendChild(el("span", { class: `state state-${h.to}` }, h.to));
          li.appendChild(document.createTextNode(" "));
          li.appendChild(el("span", {}, h.reason || ""));
          tl.appendChild(li);
        }
      }
      const fail = detail.querySelector("[data-failure]");
      if (fail && run.failure) {
        fail.hidden = false;
        fail.querySelector("[data-failure-code]").textContent = `${run.failure.category} / ${run.failure.code}`;
        fail.querySelector("[data-failure-message]").textContent = run.failure.message;
        const tail = fail.querySelector("[data-failure-stderr]");
        if (tail) { tail.textContent = run.failure.stderr_tail || ""; tail.hidden = !run.failure.stderr_tail; }
      }
      const sent = detail.querySelector("[data-params-sent]");
      if (sent && run.params_sent && Object.keys(run.params_sent).length) {
        const body = sent.querySelector("tbody");
        body.textContent = "";
        for (const name of Object.keys(run.params_sent).sort()) {
          const tr = el("tr");
          tr.appendChild(el("th", { scope: "row", class: "mono" }, name));
          tr.appendChild(el("td", { class: "mono wrap" }, run.params_sent[name]));
          body.appendChild(tr);
        }
        sent.hidden = false;
      }
      const diag = detail.querySelector("[data-diagnosis]");
      if (diag) { diag.hidden = !run.diagnosis; diag.textContent = run.diagnosis || ""; }
      const cancel = detail.querySelector("[data-cancel]");
      if (cancel && TERMINAL.has(state)) cancel.disabled = true;
      for (const log of logs) log.kick();
    }

    async function refresh() {
      if (refreshing) return;
      refreshing = true;
      try {
        const resp = await fetch(`/api/runs/${runId}`, { headers: { Accept: "application/json" } });
        if (resp.ok) renderRun(await resp.json());
      } finally {
        refreshing = false;
      }
    }

    // Tail one task file through the logs endpoint, from the last offset on.
    function tail(pre) {
      const file = pre.dataset.log;
      const status = document.querySelector(`[data-log-status="${file}"]`);
      let offset = 0;
      let timer = null;
      let busy = false;
      let finalRead = false;
      async function step() {
        timer = null;
        if (busy) return;
        busy = true;
        let eof = true;
        try {
          const url = `/api/runs/${runId}/logs?file=${encodeURIComponent(file)}&offset=${offset}`;
          const resp = await fetch(url, { headers: { Accept: "application/json" } });
          if (resp.ok) {
            const body = await resp.json();
            if (body.data) {
              const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
              pre.textContent += body.data;
              if (stick) pre.scrollTop = pre.scrollHeight;
            }
            offset = body.next_offset;
            eof = body.eof !== false;
            if (status) status.textContent = `${offset} bytes`;
          } else if (status) {
            status.textContent = await problem(resp);
          }
        } catch (e) {
          if (status) status.textContent = "could not read the file; retrying";
        } finally {
          busy = false;
        }
        if (TERMINAL.has(state)) {
          if (!eof) schedule(100);            // drain what is left
          else if (!finalRead) { finalRead = true; schedule(300); }
          return;
        }
        schedule(eof ? 1000 : 100);
      }
      function schedule(ms) { if (!timer) timer = setTimeout(step, ms); }
      step();
      return { kick() { if (TERMINAL.has(state)) { finalRead = false; schedule(200); } } };
    }
    const logs = [];
    for (const pre of detail.querySelectorAll("pre[data-log]")) logs.push(tail(pre));

    onRunEvent((run) => {
      if (Number(run.id) !== runId) return;
      if (Array.isArray(run.history)) renderRun(run);
      else { renderRun(Object.assign({}, run, { history: undefined })); refresh(); }
    });

    const cancelForm = detail.querySelector("form[data-cancel-form]");
    if (cancelForm) {
      cancelForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const btn = cancelForm.querySelector("[data-cancel]");
        const out = detail.querySelector("[data-cancel-result]");
        btn.disabled = true;
        out.textContent = "Cancelling…";
        const resp = await post(`/api/runs/${runId}/cancel`);
        if (resp.ok) {
          const body = await resp.json();
          out.textContent = body.message || "Cancel requested.";
          renderRun(body.run || body);
          refresh();
        } else {
          out.textContent = await problem(resp);
          btn.disabled = TERMINAL.has(state);
        }
      });
    }
  }

  // -- platforms: connectivity check -----------------------------------------------------
  for (const btn of document.querySelectorAll("button[data-test-platform]")) {
    btn.addEventListener("click", async () => {
      const name = btn.dataset.testPlatform;
      const out = document.getElementById(btn.getAttribute("aria-controls"));
      btn.disabled = true;
      out.textContent = "Checking…";
      try {
        const resp = await post(`/api/platforms/${encodeURIComponent(name)}/test`);
        out.textContent = "";
        if (!resp.ok) { out.appendChild(el("p", { class: "bad" }, await problem(resp))); return; }
        const report = await resp.json();
        const ul = el("ul", { class: "checks" });
        for (const c of report.checks || []) {
          const li = el("li");
          li.appendChild(el("span", { class: c.ok ? "ok" : "bad" }, c.ok ? "ok " : "fail "));
          li.appendChild(el("strong", {}, c.name));
          li.appendChild(document.createTextNode(`: ${c.detail}`));
          ul.appendChild(li);
        }
        out.appendChild(ul);
        out.appendChild(el("p", { class: report.ok ? "ok" : "bad" },
          report.ok ? `Platform ${name} is reachable and the credential works.`
                    : `Platform ${name} has problems: see the failed checks above.`));
      } catch (e) {
        out.textContent = "The check could not be started; is the server up?";
      } finally {
        btn.disabled = false;
      }
    });
  }

  // -- discovery: select all, count -----------------------------------------------------
  const pick = document.querySelector("form[data-discovery]");
  if (pick) {
    const boxes = () => Array.from(pick.querySelectorAll("input[name=external_ids]"));
    const count = pick.querySelector("[data-selected-count]");
    const all = pick.querySelector("input[data-select-all]");
    const update = () => {
      const n = boxes().filter((b) => b.checked).length;
      if (count) count.textContent = `${n} selected`;
      const submit = pick.querySelector("button[type=submit]");
      if (submit) submit.disabled = n === 0;
    };
    pick.addEventListener("change", (ev) => {
      if (ev.target === all) for (const b of boxes()) b.checked = all.checked;
      update();
    });
    update();
  }

  // -- task editor: validate parameter values as they are typed (same rules as the server)
  const CHECKS = {
    Int: (v) => /^\s*[+-]?[0-9]+\s*$/.test(v) ? "" : "is not a whole number: write digits with an optional sign",
    Float: (v) => /^\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$/.test(v) ? "" : "is not a number: write it like 3.5 or 1e-3",
    Bool: (v) => ["true", "1", "yes", "false", "0", "no"].includes(v.trim().toLowerCase()) ? "" : "is not a boolean: use true/false, yes/no or 1/0",
    JSON: (v) => { try { JSON.parse(v); return ""; } catch (e) { return "is not valid JSON"; } },
    // The console takes only vault references in a Secret (decision 0010); the server
    // checks the vault and its task secrets, this only catches the shape as it is typed.
    Secret: (v) => /^(env|file):/.test(v)
      ? "is a Secret: env: and file: references are refused here (they would read the server's environment or files); give vault://VAULT/SECRET"
      : /^vault:\/\/[^/\s]+\/[0-9A-Za-z-]+(\/[0-9A-Fa-f]{32})?$/.test(v) ? ""
      : "is a Secret: give a vault://VAULT/SECRET reference, never the value itself",
  };
  for (const input of document.querySelectorAll("input[data-param-type]")) {
    const msg = document.getElementById(input.getAttribute("aria-describedby").split(" ")[0]);
    const check = () => {
      // Outside a Secret, env:/file: text is a literal like any other, checked by its
      // type; one leading "literal:" is removed before sending, as the server does.
      const kind = input.dataset.paramType;
      const v = kind === "Secret" ? input.value : input.value.replace(/^literal:/, "");
      let err = "";
      // "***": a Secret's reference hidden from a viewer, not a value to judge.
      const hidden = kind === "Secret" && v === "***";
      if (input.value !== "" && !hidden && CHECKS[kind]) err = CHECKS[kind](v);
      input.setAttribute("aria-invalid", err ? "true" : "false");
      if (msg) msg.textContent = err ? `${input.dataset.paramName} ${err}.` : "";
    };
    input.addEventListener("input", check);
    check();
  }
})();
