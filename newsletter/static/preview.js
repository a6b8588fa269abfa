// The preview page: shows the latest build, and long-polls the server for the next one.
// The view the writer chose (width, dark, recipient) lives in the URL's #fragment, so it
// survives rebuilds and a manual reload alike.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const frame = $("email");
  const view = { width: "desktop", dark: false, r: "" };
  let version = -1;
  let build = 0;
  let frameUrl = "";
  let recipientsKey = "";

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    view.width = params.get("width") === "phone" ? "phone" : "desktop";
    view.dark = params.get("dark") === "1";
    view.r = /^\d+$/.test(params.get("r") || "") ? params.get("r") : "";
  }

  function writeHash() {
    const params = new URLSearchParams({ width: view.width });
    if (view.dark) params.set("dark", "1");
    if (view.r !== "") params.set("r", view.r);
    history.replaceState(null, "", "#" + params.toString());
  }

  function query(extra) {
    const params = new URLSearchParams(extra);
    if (view.r !== "") params.set("r", view.r);
    return params.toString();
  }

  function applyView() {
    const wrap = $("frame-wrap");
    wrap.dataset.width = view.width;
    wrap.dataset.dark = view.dark ? "1" : "0";
    $("view-desktop").setAttribute("aria-pressed", String(view.width === "desktop"));
    $("view-phone").setAttribute("aria-pressed", String(view.width === "phone"));
    $("view-dark").setAttribute("aria-pressed", String(view.dark));
    $("recipient").value = view.r;
    requestAnimationFrame(fitFrame);
  }

  function loadFrame() {
    const url = "/email?" + query(view.dark ? { dark: "1", b: build } : { b: build });
    if (url !== frameUrl) {
      frameUrl = url;
      frame.src = url;
    }
  }

  // The frame is as tall as the email, so the page scrolls and not a box inside it.
  function fitFrame() {
    try {
      const doc = frame.contentDocument;
      if (!doc || !doc.documentElement) return;
      const height = Math.ceil(doc.documentElement.getBoundingClientRect().height);
      if (height > 0) frame.style.height = height + "px";
    } catch (_) {
      // not same-origin (about:blank while loading): keep the height it has
    }
  }

  function setStatus(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
  }

  function fill(id, text) {
    $(id).textContent = text || "";
  }

  function showError(error) {
    const box = $("error");
    document.body.classList.toggle("failed", Boolean(error));
    box.hidden = !error;
    if (!error) return;
    fill("error-where", error.where ? (error.line ? `${error.where}:${error.line}` : error.where) : "");
    fill("error-message", error.message);
    fill("error-hint", error.hint);
    $("error-details").hidden = !error.details;
    fill("error-details", error.details);
  }

  function showRecipients(state) {
    const picker = $("recipient-picker");
    picker.hidden = !state.list;
    const key = JSON.stringify(state.recipients);
    if (key === recipientsKey) return;
    recipientsKey = key;
    const select = $("recipient");
    select.replaceChildren(new Option("Sample reader", ""));
    for (const r of state.recipients) select.append(new Option(r.label, String(r.id)));
    if (state.recipients.length >= state.recipient_limit) {
      const more = new Option(`(first ${state.recipient_limit} of list ${state.list})`, "");
      more.disabled = true;
      select.append(more);
    }
    if (view.r !== "" && !state.recipients.some((r) => String(r.id) === view.r)) {
      view.r = "";
      writeHash();
    }
    select.value = view.r;
  }

  function findingItem(f) {
    const item = document.createElement("li");
    item.className = f.severity;
    const sev = document.createElement("span");
    sev.className = "sev";
    sev.textContent = f.severity + " ";
    item.append(sev);
    if (f.location) {
      const where = document.createElement("code");
      where.textContent = f.location;
      item.append(where, document.createElement("br"));
    }
    item.append(document.createTextNode(f.message));
    if (f.fix) {
      const fix = document.createElement("div");
      fix.className = "fix";
      fix.textContent = "Fix: " + f.fix;
      item.append(fix);
    }
    return item;
  }

  // Errors and warnings are listed; notes (which never block a send) fold away.
  function showFindings(findings, problem) {
    const list = $("findings");
    const notes = $("notes-list");
    list.replaceChildren();
    notes.replaceChildren();
    $("notes").hidden = true;
    if (problem) {
      fill("findings-summary", "The checks could not run: " + problem);
      return;
    }
    if (findings === null) {
      fill("findings-summary", "Checking…");
      return;
    }
    const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
    const count = (severity) => findings.filter((f) => f.severity === severity).length;
    const noteCount = findings.length - count("error") - count("warning");
    fill("findings-summary", findings.length
      ? `${plural(count("error"), "error")}, ${plural(count("warning"), "warning")}` +
        (noteCount ? `, ${plural(noteCount, "note")}` : "")
      : "No problems found.");
    for (const f of findings) {
      (f.severity === "error" || f.severity === "warning" ? list : notes).append(findingItem(f));
    }
    if (noteCount) {
      $("notes").hidden = false;
      fill("notes-summary", plural(noteCount, "note"));
    }
  }

  function showSize(size, limit) {
    const kb = (n) => (n / 1024).toFixed(1) + " KB";
    const over = size > limit;
    const el = $("size");
    el.classList.toggle("over", over);
    el.textContent = `${kb(size)} of HTML; Gmail clips messages over ${Math.round(limit / 1024)} KB` +
      (over ? " — this one will be clipped, hiding the rest and the unsubscribe link." : ".");
    const meter = $("size-meter");
    meter.max = limit;
    meter.high = limit * 0.99;
    meter.low = limit * 0.8;
    meter.value = Math.min(size, limit);
  }

  function render(state) {
    version = state.version;
    build = state.build;
    showError(state.error);
    showRecipients(state);
    if (!state.ready) {
      setStatus("error", "no build yet");
      return;
    }
    setStatus(state.error ? "error" : "live",
      state.error ? "build failed" : `live · build ${state.build} in ${Math.round(state.seconds * 1000)} ms`);
    document.title = `${state.issue.subject} — preview`;
    fill("issue-name", state.issue.name);
    fill("h-from", state.from);
    fill("h-to", state.to);
    fill("h-subject", state.issue.subject);
    fill("h-preheader", state.issue.preheader || "(none: inboxes show the first text of the email)");
    fill("text", state.text);
    showSize(state.size, state.size_limit);
    showFindings(state.findings, state.check_error);
    loadFrame();
  }

  async function refresh() {
    const response = await fetch("/api/state?" + query({}), { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function watch() {
    for (;;) {
      try {
        if (version < 0) await refresh();
        const response = await fetch("/api/wait?since=" + version, { cache: "no-store" });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const next = (await response.json()).version;
        if (next !== version) await refresh();
      } catch (_) {
        setStatus("disconnected", "disconnected: is `newsletter preview` still running?");
        version = -1;
        await sleep(1000);
      }
    }
  }

  function choose(change) {
    Object.assign(view, change);
    writeHash();
    applyView();
  }

  $("view-desktop").addEventListener("click", () => choose({ width: "desktop" }));
  $("view-phone").addEventListener("click", () => choose({ width: "phone" }));
  $("view-dark").addEventListener("click", () => { choose({ dark: !view.dark }); loadFrame(); });
  $("recipient").addEventListener("change", (event) => {
    choose({ r: event.target.value });
    refresh().catch(() => {});
  });
  frame.addEventListener("load", fitFrame);
  window.addEventListener("resize", () => requestAnimationFrame(fitFrame));
  window.addEventListener("hashchange", () => { readHash(); applyView(); refresh().catch(() => {}); });

  readHash();
  applyView();
  watch();
})();
