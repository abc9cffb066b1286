// The fleet page: summary, a paged and filtered worker table, a detail panel and live events.
// Plain JavaScript, no build step. The credential lives in sessionStorage (this tab only) and
// is sent as a header, never in a URL.
"use strict";

const ROOT = document.body.dataset.root || "";
const PAGE_SIZE = 50;
const FEED_SIZE = 20;
const STORE = "hb.credential";
const LIVENESS = ["online", "stale", "offline", "never"];

const $ = (id) => document.getElementById(id);

let credential = null; // {kind: "api-key" | "session", secret}
let cursors = [null]; // the cursor of each page shown so far; the last is the current page
let nextCursor = null;
let stream = null; // the AbortController of the event stream
let summaryTimer = null;

// --- credential ---------------------------------------------------------------------------

function loadCredential() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE));
  } catch {
    return null;
  }
}

function authHeaders() {
  if (credential.kind === "session") return { Authorization: `Bearer ${credential.secret}` };
  return { "x-api-key": credential.secret };
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(ROOT + path, { headers: authHeaders(), cache: "no-store" });
  if (response.status === 401) throw new Unauthorized("The credential was not accepted.");
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      if (body.message) message = body.message;
    } catch {}
    throw new Error(message);
  }
  return response.json();
}

function failed(error, where) {
  if (error instanceof Unauthorized) {
    signOut(error.message);
    return;
  }
  where.textContent = String(error.message || error);
}

// --- formatting ---------------------------------------------------------------------------

function relative(iso) {
  if (!iso) return "never";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function timeElement(iso) {
  const element = document.createElement("time");
  if (iso) {
    element.dateTime = iso;
    element.title = iso;
    element.dataset.at = iso;
  }
  element.textContent = relative(iso);
  return element;
}

function tick() {
  for (const element of document.querySelectorAll("time[data-at]")) {
    element.textContent = relative(element.dataset.at);
  }
}

function badge(liveness) {
  const element = document.createElement("span");
  element.className = `badge ${liveness}`;
  element.dataset.liveness = liveness;
  element.textContent = liveness;
  return element;
}

function cell(label, ...children) {
  const td = document.createElement("td");
  td.dataset.label = label; // shown before the value on narrow screens
  for (const child of children) {
    td.append(child === null || child === undefined ? "—" : child);
  }
  return td;
}

function instanceText(instance) {
  return instance ? `${instance.provider} / ${instance.status}` : null;
}

// --- summary ------------------------------------------------------------------------------

async function loadSummary() {
  try {
    const summary = await api("/v1/workers/summary");
    const total = summary.total || 0;
    $("summary-total").textContent = `${total} workers`;
    const bar = $("summary-bar");
    bar.replaceChildren();
    const parts = [];
    for (const name of LIVENESS) {
      const count = summary.liveness[name] || 0;
      $(`count-${name}`).textContent = count;
      parts.push(`${count} ${name}`);
      if (count > 0 && total > 0) {
        const segment = document.createElement("span");
        segment.className = `segment ${name}`;
        segment.style.width = `${(100 * count) / total}%`;
        segment.title = `${count} ${name}`;
        bar.append(segment);
      }
    }
    bar.setAttribute("aria-label", `Liveness of ${total} workers: ${parts.join(", ")}`);
  } catch (error) {
    failed(error, $("list-error"));
  }
}

function refreshSummarySoon() {
  // Events come in bursts: one summary read for a burst.
  clearTimeout(summaryTimer);
  summaryTimer = setTimeout(loadSummary, 500);
}

// --- the table ----------------------------------------------------------------------------

function listQuery(cursor) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const form = $("filters");
  const liveness = [...form.querySelectorAll("input[name=liveness]:checked")].map((i) => i.value);
  if (liveness.length) params.set("liveness", liveness.join(","));
  const status = $("filter-status").value.trim();
  if (status) params.set("status", status);
  const q = $("filter-q").value.trim();
  if (q) params.set("q", q);
  if (cursor) params.set("cursor", cursor);
  return params;
}

function workerRow(worker) {
  const row = document.createElement("tr");
  row.dataset.workerId = worker.id;
  row.tabIndex = 0;
  row.setAttribute("aria-label", `Worker ${worker.name}, ${worker.liveness}; open details`);
  const active = worker.isActiveRecently ? "active" : "idle";
  const sessions = worker.openSessionCount === null ? "—" : worker.openSessionCount;
  const task = worker.currentTaskId ? ` · ${worker.currentTaskId}` : "";
  row.append(
    cell("Name", worker.name),
    cell("Liveness", badge(worker.liveness)),
    cell("Last heartbeat", timeElement(worker.lastHeartbeatAt)),
    cell("Active / sessions", `${active} / ${sessions}`),
    cell("Status / task", (worker.reportedStatus || worker.status) + task),
    cell("Instance", instanceText(worker.instance)),
  );
  row.addEventListener("click", () => showDetail(worker.id));
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      showDetail(worker.id);
    }
  });
  return row;
}

async function loadPage() {
  $("list-error").textContent = "";
  const cursor = cursors[cursors.length - 1];
  try {
    const page = await api(`/v1/workers?${listQuery(cursor)}`);
    $("worker-rows").replaceChildren(...page.workers.map(workerRow));
    $("empty").hidden = page.workers.length > 0;
    nextCursor = page.nextCursor;
    $("next").disabled = !nextCursor;
    $("prev").disabled = cursors.length < 2;
    $("page-label").textContent = `Page ${cursors.length}`;
  } catch (error) {
    failed(error, $("list-error"));
  }
}

function setLiveness(workerId, liveness) {
  const row = document.querySelector(`tr[data-worker-id="${CSS.escape(workerId)}"]`);
  if (!row) return;
  row.children[1].replaceChildren(badge(liveness));
  const name = row.children[0].textContent;
  row.setAttribute("aria-label", `Worker ${name}, ${liveness}; open details`);
}

// --- detail -------------------------------------------------------------------------------

async function showDetail(workerId) {
  const panel = $("detail");
  try {
    const { worker, instance } = await api(`/v1/workers/${encodeURIComponent(workerId)}`);
    $("detail-title").textContent = `Worker ${worker.name}`;
    const fields = [
      ["Id", worker.id],
      ["Liveness", badge(worker.liveness)],
      ["Last heartbeat", timeElement(worker.lastHeartbeatAt)],
      ["Active recently", worker.isActiveRecently ? "yes" : "no"],
      ["Open sessions", worker.openSessionCount],
      ["Status (Den)", worker.status],
      ["Reported status", worker.reportedStatus],
      ["Current task", worker.currentTaskId],
      ["Tasks processed", worker.tasksProcessed],
      ["Environment", worker.environmentName],
      ["Instance", instanceText(instance)],
      ["Disconnected", worker.disconnectedAt ? timeElement(worker.disconnectedAt) : null],
      ["Disconnect reason", worker.disconnectReason],
      ["Created", timeElement(worker.createdAt)],
    ];
    const list = $("detail-fields");
    list.replaceChildren();
    for (const [label, value] of fields) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.append(value === null || value === undefined ? "—" : value);
      list.append(dt, dd);
    }
    panel.hidden = false;
    panel.dataset.workerId = worker.id;
    $("detail-title").focus();
  } catch (error) {
    failed(error, $("list-error"));
  }
}

function closeDetail() {
  const panel = $("detail");
  const row = document.querySelector(`tr[data-worker-id="${CSS.escape(panel.dataset.workerId || "")}"]`);
  panel.hidden = true;
  if (row) row.focus();
}

// --- live events (Server-Sent Events over fetch, so the credential stays in a header) ------

function addToFeed(event) {
  const item = document.createElement("li");
  item.append(timeElement(event.at), " ");
  const kind = event.type.replace(/^worker\./, "");
  item.append(LIVENESS.includes(kind) ? badge(kind) : kind, ` ${event.workerId}`);
  const feed = $("feed-items");
  feed.prepend(item);
  while (feed.children.length > FEED_SIZE) feed.lastElementChild.remove();
}

function handleEvent(event) {
  addToFeed(event);
  const kind = event.type.replace(/^worker\./, "");
  if (LIVENESS.includes(kind)) setLiveness(event.workerId, kind);
  if (panelShows(event.workerId) && LIVENESS.includes(kind)) showDetail(event.workerId);
  refreshSummarySoon();
}

function panelShows(workerId) {
  const panel = $("detail");
  return !panel.hidden && panel.dataset.workerId === workerId;
}

function parseFrame(frame) {
  const fields = { data: [] };
  for (const line of frame.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "data") fields.data.push(value);
    else fields[name] = value;
  }
  return fields;
}

async function follow() {
  let lastId = null;
  const controller = new AbortController();
  stream = controller;
  while (!controller.signal.aborted) {
    try {
      const headers = { ...authHeaders(), Accept: "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(`${ROOT}/v1/events/stream`, { headers, signal: controller.signal });
      if (response.status === 401) throw new Unauthorized("The credential was not accepted.");
      if (!response.ok) throw new Error(`${response.status}`);
      $("stream-state").textContent = "live";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (frame.id) lastId = frame.id;
          if (frame.data.length) handleEvent(JSON.parse(frame.data.join("\n")));
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof Unauthorized) {
        signOut(error.message);
        return;
      }
    }
    // The stream ended (it does, now and then) or failed: resume after the last event seen.
    $("stream-state").textContent = "reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// --- signing in and out -------------------------------------------------------------------

function signedIn() {
  $("sign-in").hidden = true;
  $("fleet").hidden = false;
  $("sign-out").hidden = false;
  cursors = [null];
  loadSummary();
  loadPage();
  follow();
}

function signOut(message) {
  sessionStorage.removeItem(STORE);
  credential = null;
  if (stream) stream.abort();
  stream = null;
  $("fleet").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("worker-rows").replaceChildren();
  $("feed-items").replaceChildren();
  $("detail").hidden = true;
  $("sign-in-error").textContent = message || "";
  $("credential").focus();
}

function setUp() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const secret = $("credential").value.trim();
    if (!secret) return;
    credential = { kind: $("credential-kind").value, secret };
    sessionStorage.setItem(STORE, JSON.stringify(credential));
    $("credential").value = "";
    $("sign-in-error").textContent = "";
    signedIn();
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    cursors = [null];
    loadPage();
  });
  $("next").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadPage();
  });
  $("prev").addEventListener("click", () => {
    if (cursors.length < 2) return;
    cursors.pop();
    loadPage();
  });
  $("detail-close").addEventListener("click", closeDetail);
  $("detail").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDetail();
  });
  setInterval(tick, 1000);
  credential = loadCredential();
  if (credential && credential.secret) signedIn();
}

setUp();
