// The hrcore console: a page over the HTTP API, with nothing fetched from anywhere else.
// Charts come from the API as SVG (Accept: image/svg+xml), drawn by the library from the
// same calls as the JSON; everything else is the API's JSON shown as text, never as HTML.
"use strict";

const TOKEN_KEY = "hrcore-token"; // sessionStorage: kept for this browser tab only
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "skipped"]);
const FIELDS = {
  departments: "id,department",
  jobs: "id,job",
  employees: "id,name,datetime,department_id,job_id (datetime in ISO 8601, e.g. 2021-07-27T16:02:08Z)",
};
const WAIT_MS = 30000; // the longest any request may take before the page gives up on it
const POLL_MS = 1000; // how often running loads are asked for their counts
const VIEWS = ["loads", "metrics", "data", "actions"];

const state = {
  tokenRequired: false,
  loadsNext: null, // the next page of the ledger, of a table's rows, of a load's rejected rows
  dataNext: null,
  dataPages: [], // the pages of the table shown so far, for "Previous page"
  rejectionsNext: null,
  shown: null, // the load whose detail is shown: {id, status, rejected}
  watching: null, // the load started from the actions view
  rowsFile: null, // the file chosen for "Add rows": its bytes, sent as they are, and its text
};

const $ = (selector) => document.querySelector(selector);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

// a table cell; numbers to the right, counts (``grouped``) as 12,345, ids and years as they are
function cell(value, grouped = false) {
  const numeric = typeof value === "number";
  return el("td", numeric && grouped ? value.toLocaleString("en") : value ?? "", numeric ? "n" : undefined);
}

const count = (value) => cell(value, true);

class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function canRead() {
  return !state.tokenRequired || token() !== "";
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  if (token()) headers.set("Authorization", `Bearer ${token()}`);
  const response = await fetch(path, { ...options, headers, signal: AbortSignal.timeout(WAIT_MS) });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = body.detail || body.error || detail;
    } catch (_) {
      // not JSON: the status text says enough
    }
    throw new ApiError(response.status, detail);
  }
  return response;
}

const json = async (path, options) => (await api(path, options)).json();
const svg = async (path) => (await api(path, { headers: { Accept: "image/svg+xml" } })).text();

function say(text) {
  const box = $("#message");
  box.textContent = text || "";
  box.hidden = !text;
}

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    say("The API refused the token (401): type the right one above.");
    $("#token-state").textContent = "the API refused this token";
  } else if (error instanceof ApiError) {
    say(`The API answered ${error.message}`);
  } else {
    say(`The API could not be reached: ${error.message}`);
  }
}

// every handler goes through here: an error is shown on the page, never thrown
const guarded = (work) => (...args) => work(...args).catch(failed);

// a button's work, the button disabled until it is done: a second click cannot race it
const busy = (button, work) => guarded(async (...args) => {
  button.disabled = true;
  try {
    await work(...args);
  } finally {
    button.disabled = false;
  }
});

// ---- views

function route() {
  const [name, arg] = location.hash.slice(1).split("/");
  const view = VIEWS.includes(name) ? name : "loads";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("current", link.dataset.view === view);
  const locked = $(`#view-${view} .locked`);
  locked.hidden = canRead();
  locked.textContent = canRead()
    ? ""
    : "This view needs the API token. Type it above: it is kept for this browser tab only, " +
      "and it unlocks the loads and their rejected rows, the metrics, the data, adding rows " +
      "and starting loads.";
  if (!canRead()) return;
  say("");
  const render = { loads: () => openLoads(arg), metrics: showMetrics, data: () => showData(true), actions: showActions };
  guarded(render[view])();
}

// ---- loads

// the ledger is fetched again when the view is opened (#loads) or refreshed; a load's
// link (#loads/7) only shows that load, so the pages of older loads stay
async function openLoads(selected) {
  if (!selected) {
    $("#load-detail").hidden = true;
    state.shown = null;
    await showLoads();
    return;
  }
  if (!$("#loads-table tbody").dataset.loaded) await showLoads();
  await showLoad(Number(selected));
}

async function showLoads() {
  state.loadsNext = "/loads?limit=25";
  $("#loads-table tbody").replaceChildren();
  await moreLoads();
  $("#loads-table tbody").dataset.loaded = "yes";
  if (state.shown) await showLoad(state.shown.id);
}

async function moreLoads() {
  const page = await json(state.loadsNext);
  for (const load of page.items) {
    const row = el("tr");
    row.dataset.loadId = load.load_id;
    fillLoad(row, load);
    $("#loads-table tbody").append(row);
  }
  state.loadsNext = page.next;
  $("#loads-older").hidden = !page.next;
}

function progressOf(load) {
  if (load.status === "succeeded" || load.status === "skipped") return 1;
  if (load.parts.length) return load.parts.filter((p) => ["written", "skipped"].includes(p.status)).length / load.parts.length;
  if (load.rows_expected) return Math.min(load.rows_read / load.rows_expected, 1);
  return null; // not known yet: the bar moves without a value
}

function progressBar(load) {
  const bar = el("progress");
  bar.max = 1;
  const done = progressOf(load);
  if (done !== null) bar.value = done;
  bar.title = done === null ? load.status : `${Math.round(done * 100)}%`;
  return bar;
}

function fillLoad(row, load) {
  row.dataset.status = load.status;
  const link = el("a", load.load_id);
  link.href = `#loads/${load.load_id}`;
  link.addEventListener("click", () => {
    if (location.hash === link.hash) guarded(showLoad)(load.load_id); // no hashchange: show it again
  });
  const id = el("td");
  id.append(link);
  const status = el("td", load.status, `status-${load.status}`);
  const progress = el("td");
  if (!TERMINAL.has(load.status)) progress.append(progressBar(load));
  row.replaceChildren(
    id, cell(load.table), cell(load.source), status, progress,
    count(load.rows_read), count(load.rows_inserted), count(load.rows_updated),
    count(load.rows_unchanged), count(load.rows_rejected), cell(load.seconds),
  );
}

function describe(load) {
  const parts = [`${load.status}`, `${load.rows_read.toLocaleString("en")} rows read`,
    `${load.rows_inserted} inserted, ${load.rows_updated} updated, ${load.rows_unchanged} unchanged, ${load.rows_rejected} rejected`,
    `${load.seconds} s`];
  if (load.worker) parts.push(`worker ${load.worker}, attempt ${load.attempt}`);
  if (load.same_as) parts.push(`the same as load ${load.same_as}`);
  if (load.error) parts.push(`error: ${load.error}`);
  return parts.join(" · ");
}

async function showLoad(loadId) {
  const load = await json(`/loads/${loadId}`);
  for (const row of document.querySelectorAll("#loads-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.loadId === String(loadId));
  }
  $("#load-detail").hidden = false;
  $("#load-detail").dataset.loadId = loadId;
  state.shown = { id: loadId, status: load.status, rejected: load.rows_rejected };
  $("#load-title").textContent = `Load ${load.load_id}: ${load.table} from ${load.source}`;
  $("#load-summary").textContent = describe(load);
  const chart = $("#rejections-chart");
  chart.replaceChildren();
  if (load.rows_rejected) chart.innerHTML = await svg(`/loads/${loadId}/rejections`); // SVG the library made, its text escaped
  else chart.textContent = "No row of this load was rejected.";
  // a skipped load's rejected rows are those of the load whose work it would repeat
  const owner = load.same_as ?? loadId;
  $("#rejections-note").textContent = load.rows_rejected && load.same_as ? `The rejected rows of load ${owner}, whose work this load would repeat:` : "";
  $("#rejections-table tbody").replaceChildren();
  state.rejectionsNext = load.rows_rejected ? `/loads/${owner}/rejections?limit=50` : null;
  if (state.rejectionsNext) await moreRejections();
  $("#rejections-more").hidden = !state.rejectionsNext;
}

async function moreRejections() {
  const page = await json(state.rejectionsNext);
  for (const r of page.items) {
    const row = el("tr");
    row.append(cell(r.line_number), el("td", r.raw, "raw"), cell(r.reasons.join(", ")));
    $("#rejections-table tbody").append(row);
  }
  state.rejectionsNext = page.next;
  $("#rejections-more").hidden = !page.next;
}

// running loads, in the table and in the actions view, are asked for their counts
async function poll() {
  if (!canRead()) return;
  const rows = [...document.querySelectorAll("#loads-table tbody tr")].filter((r) => !TERMINAL.has(r.dataset.status));
  for (const row of rows) fillLoad(row, await json(`/loads/${row.dataset.loadId}`));
  const shown = state.shown;
  if (shown && !TERMINAL.has(shown.status) && !$("#load-detail").hidden) {
    const load = await json(`/loads/${shown.id}`);
    $("#load-summary").textContent = describe(load);
    // new rejected rows, or the end: the chart and the rows are fetched again
    if (load.status !== shown.status || load.rows_rejected !== shown.rejected) await showLoad(shown.id);
  }
  if (state.watching !== null) await watch(state.watching);
}

async function watch(loadId) {
  const load = await json(`/loads/${loadId}`);
  const waiting = load.status === "queued" ? " (waiting for a worker: hrcore worker)" : "";
  $("#file-load-status").textContent = `Load ${loadId} of ${load.table}: ${describe(load)}${waiting}`;
  $("#file-load-status").dataset.status = load.status;
  const done = progressOf(load);
  const bar = $("#file-load-progress");
  if (done === null) bar.removeAttribute("value");
  else bar.value = done;
  if (TERMINAL.has(load.status)) state.watching = null;
}

// ---- metrics

function fillTable(table, items, columns) {
  const head = el("tr");
  for (const name of columns) head.append(el("th", name));
  table.querySelector("thead").replaceChildren(head);
  table.querySelector("tbody").replaceChildren(
    ...items.map((item) => {
      const row = el("tr");
      row.append(...columns.map((name) => cell(item[name])));
      return row;
    }),
  );
}

async function showMetrics() {
  const year = Number($("#year").value) || 2021;
  const byQuarter = `/metrics/hires-by-quarter?year=${year}`;
  const aboveMean = `/metrics/departments-above-mean?year=${year}`;
  const [quarters, quartersChart, above, aboveChart] = await Promise.all([
    json(byQuarter), svg(byQuarter), json(aboveMean), svg(aboveMean),
  ]);
  $("#quarters-chart").innerHTML = quartersChart; // SVG the library made, its text escaped
  $("#above-mean-chart").innerHTML = aboveChart;
  fillTable($("#quarters-table"), quarters.items, ["department", "job", "Q1", "Q2", "Q3", "Q4"]);
  fillTable($("#above-mean-table"), above.items, ["id", "department", "hired"]);
}

// ---- data

// keyset pages: "next" is the API's link; "previous" goes back through the pages seen
async function showData(first) {
  if (first) state.dataPages = [`/${$("#data-table").value}?limit=50`];
  else state.dataPages.push(state.dataNext);
  await dataPage();
}

async function previousData() {
  state.dataPages.pop();
  await dataPage();
}

async function dataPage() {
  const page = await json(state.dataPages[state.dataPages.length - 1]);
  const columns = page.items.length ? Object.keys(page.items[0]) : [];
  fillTable($("#data-rows"), page.items, columns);
  state.dataNext = page.next;
  $("#data-next").hidden = !page.next;
  $("#data-previous").hidden = state.dataPages.length < 2;
}

async function lookUp() {
  const table = $("#data-table").value;
  const id = $("#lookup-id").value;
  const out = $("#lookup-result");
  if (id === "") return;
  try {
    const row = await json(`/${table}/${encodeURIComponent(id)}`);
    out.textContent = Object.entries(row).map(([k, v]) => `${k}: ${v}`).join(" · ");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    out.textContent = `No row of ${table} has id ${id}.`;
  }
}

// ---- actions

async function showActions() {
  $("#rows-hint").textContent = `Fields, in order: ${FIELDS[$("#rows-table").value]}`;
  const found = await json("/health-s3").catch(() => ({ source: "", files: [] }));
  const prefix = found.source.replace(/\/?$/, "/");
  $("#source-files").replaceChildren(
    ...found.files.map((f) => {
      const option = el("option");
      option.value = f.uri.startsWith(prefix) ? f.uri.slice(prefix.length) : f.uri;
      return option;
    }),
  );
}

async function chooseFile() {
  const file = $("#rows-file").files[0];
  if (!file) return;
  const bytes = await file.arrayBuffer();
  // shown as UTF-8 (a byte that is not becomes \uFFFD), but sent as the file's own bytes,
  // unless edited: so a line that is not UTF-8 is rejected as such, as in a file load
  const text = new TextDecoder("utf-8").decode(bytes);
  state.rowsFile = { bytes, text };
  $("#rows-csv").value = text;
}

async function sendRows() {
  const table = $("#rows-table").value;
  const text = $("#rows-csv").value;
  const body = state.rowsFile && state.rowsFile.text === text ? state.rowsFile.bytes : text;
  $("#rows-summary").textContent = "";
  $("#rows-outcome tbody").replaceChildren();
  const report = await json(`/${table}`, { method: "POST", headers: { "Content-Type": "text/csv" }, body });
  $("#rows-summary").textContent =
    `Load ${report.load_id}: ${report.received} rows received, ${report.inserted} inserted, ` +
    `${report.updated} updated, ${report.unchanged} unchanged, ${report.rejected.length} rejected.`;
  const lines = text.split(/\r?\n/);
  const reasons = new Map(report.rejected.map((r) => [r.index, r.reasons.join(", ")]));
  $("#rows-outcome tbody").replaceChildren(
    ...report.rows.map((r) => {
      const row = el("tr");
      row.dataset.outcome = r.outcome;
      row.append(cell(r.index + 1), el("td", lines[r.index], "raw"), el("td", r.outcome, `outcome-${r.outcome}`), cell(reasons.get(r.index) || ""));
      return row;
    }),
  );
}

async function startLoad() {
  const table = $("#file-table").value;
  const key = $("#file-key").value.trim();
  const queued = await json(`/${table}/batch`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(key ? { key } : {}),
  });
  $("#file-load").hidden = false;
  state.watching = queued.load_id;
  await watch(queued.load_id);
}

// ---- the token, the health line, the start

function showTokenState() {
  $("#token-state").textContent = !state.tokenRequired
    ? "this server needs no token"
    : token() ? "token kept for this tab" : "no token: only the health line is shown";
}

async function start() {
  const index = await json("/");
  state.tokenRequired = Boolean(index.token_required);
  showTokenState();
  const health = await json("/health-db").catch(() => null);
  $("#health").textContent = health
    ? `hrcore ${index.version} · database up (PostgreSQL ${health.server_version}) · reads go to the ${health.reads}`
    : `hrcore ${index.version} · the database does not answer`;
  route();
}

window.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // a bearer token is visible ASCII (RFC 6750); anything else cannot go in a header
    if (!/^[\x21-\x7e]+$/.test($("#token").value)) {
      say("A token is made of visible ASCII characters (letters, digits, - . _ ~ + / =).");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, $("#token").value);
    $("#token").value = "";
    showTokenState();
    route();
  });
  $("#forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    route();
  });
  window.addEventListener("hashchange", route);
  const submit = (form, work) => {
    const run = busy(form.querySelector("button[type=submit]"), work);
    form.addEventListener("submit", (event) => { event.preventDefault(); run(); });
  };
  $("#loads-refresh").addEventListener("click", busy($("#loads-refresh"), showLoads));
  $("#loads-older").addEventListener("click", busy($("#loads-older"), moreLoads));
  $("#rejections-more").addEventListener("click", busy($("#rejections-more"), moreRejections));
  submit($("#metrics-form"), showMetrics);
  submit($("#data-form"), () => showData(true));
  $("#data-table").addEventListener("change", guarded(() => showData(true)));
  $("#data-next").addEventListener("click", busy($("#data-next"), () => showData(false)));
  $("#data-previous").addEventListener("click", busy($("#data-previous"), previousData));
  $("#lookup").addEventListener("click", busy($("#lookup"), lookUp));
  $("#rows-table").addEventListener("change", () => { $("#rows-hint").textContent = `Fields, in order: ${FIELDS[$("#rows-table").value]}`; });
  $("#rows-file").addEventListener("change", guarded(chooseFile));
  submit($("#rows-form"), sendRows);
  submit($("#file-form"), startLoad);
  guarded(start)();
  // one poll at a time: the next is planned when this one is over
  const tick = () => guarded(poll)().finally(() => setTimeout(tick, POLL_MS));
  setTimeout(tick, POLL_MS);
});
