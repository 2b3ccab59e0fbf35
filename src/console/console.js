// The Tenet console: one page, no dependencies, talking to the same
// /api/v1 every other client uses. Every text from the server goes through
// textContent (never innerHTML), so nothing in the log can run as script.
"use strict";

const API = "/api/v1";
const PAGE = 25;

// ---------------------------------------------------------------- session

const session = {
  get access() { return sessionStorage.getItem("tenet.access"); },
  get refresh() { return sessionStorage.getItem("tenet.refresh"); },
  save(pair) {
    sessionStorage.setItem("tenet.access", pair.access_token);
    if (pair.refresh_token) sessionStorage.setItem("tenet.refresh", pair.refresh_token);
  },
  clear() {
    sessionStorage.removeItem("tenet.access");
    sessionStorage.removeItem("tenet.refresh");
  },
};
let me = null;
// The highest X-Consistency-Token of this tab's commands: sent with every
// read, so a page shown after a change already shows it.
let consistency = null;

class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `The server answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function call(method, path, body, retried) {
  const headers = { Accept: "application/json" };
  if (session.access) headers.Authorization = `Bearer ${session.access}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method === "GET" && consistency !== null) headers["X-Consistency-Token"] = String(consistency);
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && !retried && session.refresh && path !== "/auth/refresh") {
    if (await refresh()) return call(method, path, body, true);
  }
  const token = Number(response.headers.get("X-Consistency-Token"));
  if (method !== "GET" && response.ok && Number.isSafeInteger(token) && token > 0) {
    consistency = Math.max(consistency ?? 0, token);
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch (_) { parsed = null; }
  }
  if (!response.ok) {
    if (response.status === 401) signedOut();
    throw new Problem(response.status, parsed);
  }
  return parsed;
}

async function refresh() {
  try {
    const pair = await fetch(API + "/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: session.refresh }),
    });
    if (!pair.ok) return false;
    session.save(await pair.json());
    return true;
  } catch (_) {
    return false;
  }
}

function signedOut() {
  session.clear();
  me = null;
}

// --------------------------------------------------------------- the DOM

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const main = () => document.getElementById("main");

function show(...nodes) {
  main().replaceChildren(...nodes.flat().filter((node) => node !== null && node !== undefined && node !== false));
}

function alertBox(message, kind) {
  const box = document.getElementById("alert");
  if (!message) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.className = kind === "info" ? "info" : "";
  box.textContent = message;
  box.hidden = false;
}

// Runs an action, showing the problem's detail if it fails.
async function attempt(action) {
  alertBox(null);
  try {
    return await action();
  } catch (error) {
    alertBox(error.message || String(error));
    return undefined;
  }
}

function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function short(id) {
  return id ? String(id).slice(0, 8) + "…" : "";
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function json(value) {
  return h("pre", { text: JSON.stringify(value, null, 2) });
}

function fields(pairs) {
  return h("dl", {}, pairs.flatMap(([key, value]) => [h("dt", { text: key }), h("dd", {}, value ?? "")]));
}

function table(headings, rows) {
  return h("div", { class: "scroll" },
    h("table", {},
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col", text })))),
      h("tbody", {}, rows)));
}

// A row that opens something: by click, Enter or Space.
function pickRow(cells, open, label) {
  const row = h("tr", { class: "pick", tabindex: "0", "aria-label": label }, cells.map((cell) => h("td", {}, cell)));
  row.addEventListener("click", () => open(row));
  row.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open(row);
    }
  });
  return row;
}

function pager(page, go) {
  const from = page.total === 0 ? 0 : page.offset + 1;
  const to = page.offset + page.items.length;
  return h("div", { class: "pager" },
    h("button", { class: "secondary", disabled: page.offset === 0, onclick: () => go(Math.max(0, page.offset - page.limit)) }, "Previous"),
    h("span", { class: "muted", text: `${from}–${to} of ${page.total}` }),
    h("button", { class: "secondary", disabled: !page.has_more, onclick: () => go(page.offset + page.limit) }, "Next"));
}

// Fields of a form as an object of trimmed strings.
function formValues(form) {
  const values = {};
  for (const [key, value] of new FormData(form).entries()) values[key] = String(value).trim();
  return values;
}

// A datetime-local value as RFC 3339 (in the browser's zone), or "".
function instant(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

// ---------------------------------------------------------------- routes

// The workspaces whose audit log the signed-in user may read.
function auditable() {
  return (me?.workspaces || []).filter((w) => w.role === "owner" || w.role === "admin");
}

const pages = [
  { path: "audit", title: "Audit log", show: () => true, render: auditPage },
  { path: "tail", title: "Live tail", show: () => true, render: tailPage },
  { path: "projections", title: "Projections", show: () => me.platform_admin, render: projectionsPage },
  { path: "stats", title: "Stats", show: () => me.platform_admin, render: statsPage },
  { path: "users", title: "Users", show: () => me.platform_admin, render: usersPage },
  { path: "flags", title: "Feature flags", show: () => me.platform_admin, render: flagsPage },
];

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, rest] = hash.split("?");
  const parts = path.split("/").filter(Boolean);
  return { parts, params: new URLSearchParams(rest || "") };
}

function go(path, params) {
  const hash = `#/${path}${params ? query(params) : ""}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

async function render() {
  alertBox(null);
  if (!session.access) return loginPage();
  if (!me) {
    me = await attempt(() => call("GET", "/auth/me"));
    if (!me) return loginPage();
  }
  const { parts, params } = route();
  const visible = pages.filter((page) => page.show());
  if (!me.platform_admin && auditable().length === 0) {
    navigation([]);
    return show(h("h2", { text: "Nothing to administer" }),
      h("p", { text: "The console is for platform admins and for owners and admins of a workspace. Ask an owner of your workspace for the admin role." }));
  }
  const page = visible.find((p) => p.path === parts[0]) || visible[0];
  navigation(visible, page);
  document.title = `${page.title} · Tenet console`;
  await page.render(parts.slice(1), params);
  main().focus({ preventScroll: true });
}

function navigation(visible, current) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...visible.map((page) =>
    h("a", { href: `#/${page.path}`, "aria-current": page === current ? "page" : false, text: page.title })));
  nav.hidden = visible.length === 0;
  const who = document.getElementById("who");
  who.replaceChildren(
    h("span", { text: `${me.name} <${me.email}>${me.platform_admin ? " · platform admin" : ""}` }),
    h("button", { class: "secondary", onclick: logout }, "Sign out"));
}

async function logout() {
  await call("POST", "/auth/logout", {}).catch(() => undefined);
  signedOut();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  location.hash = "#/audit";
  render();
}

function loginPage() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h2", { id: "login-title", text: "Sign in" }),
    h("label", {}, "Email", h("input", { name: "email", type: "email", autocomplete: "username", required: true })),
    h("label", {}, "Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { email, password } = formValues(form);
    const pair = await attempt(() => call("POST", "/auth/login", { email, password }));
    if (!pair) return;
    session.save(pair);
    me = null;
    render();
  });
  show(form);
  form.querySelector("input").focus();
}

// ------------------------------------------------------------- audit log

async function auditPage(_rest, params) {
  const platform = me.platform_admin;
  const scopes = [
    ...(platform ? [{ value: "platform", label: "Every workspace (platform)" }] : []),
    ...auditable().map((w) => ({ value: w.id, label: w.name })),
  ];
  const scope = params.get("scope") || scopes[0].value;
  const filters = {
    event_type: params.get("event_type") || "",
    actor_id: params.get("actor_id") || "",
    stream_id: params.get("stream_id") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
    tenant_id: params.get("tenant_id") || "",
  };
  const offset = Number(params.get("offset") || 0);

  const input = (name, label, attrs) => h("label", {}, label,
    h("input", { name, value: filters[name], ...attrs }));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" },
    h("label", {}, "Scope", h("select", { name: "scope" },
      scopes.map((s) => h("option", { value: s.value, selected: s.value === scope }, s.label)))),
    input("event_type", "Event type", { placeholder: "task.created", size: 16 }),
    input("actor_id", "Actor id", { size: 20 }),
    input("stream_id", "Stream id", { size: 20 }),
    scope === "platform" ? input("tenant_id", "Workspace id", { size: 20 }) : null,
    h("label", {}, "From", h("input", { name: "from", type: "datetime-local", step: "1", value: localOf(filters.from) })),
    h("label", {}, "To", h("input", { name: "to", type: "datetime-local", step: "1", value: localOf(filters.to) })),
    h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = formValues(form);
    go("audit", { ...values, from: instant(values.from), to: instant(values.to) });
  });

  const detail = h("section", { class: "panel", "aria-live": "polite", hidden: true });
  const list = h("section", { "aria-label": "Events" }, h("p", { class: "muted", text: "Loading…" }));
  show(h("h2", { text: "Audit log" }), form, list, detail);

  const base = scope === "platform" ? "/admin/audit-log" : `/workspaces/${scope}/audit-log`;
  const page = await attempt(() => call("GET", base + query({
    ...filters, tenant_id: scope === "platform" ? filters.tenant_id : "", offset, limit: PAGE,
  })));
  if (!page) {
    list.replaceChildren();
    return;
  }
  const rows = page.items.map((event) => pickRow([
    h("span", { class: "mono", text: event.position }),
    when(event.occurred_at),
    h("code", { text: event.event_type }),
    event.actor?.display || event.actor?.kind || "",
    h("span", { class: "mono", title: event.stream_id, text: `${event.stream_type} ${short(event.stream_id)}` }),
  ], (row) => {
    for (const other of list.querySelectorAll("tr[aria-selected]")) other.removeAttribute("aria-selected");
    row.setAttribute("aria-selected", "true");
    eventDetail(detail, event, scope);
  }, `Event ${event.position}, ${event.event_type}`));
  list.replaceChildren(
    page.items.length === 0 ? h("p", { class: "muted", text: "No event matches these filters." })
      : table(["Position", "When", "Event", "Actor", "Stream"], rows),
    pager(page, (next) => go("audit", { scope, ...filters, offset: next })));
}

// A stored RFC 3339 instant as the value of a datetime-local input.
function localOf(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 19);
}

function eventDetail(panel, event, scope) {
  const actor = event.actor || {};
  const impersonator = event.impersonated_by || actor.impersonated_by;
  const state = h("div", { "aria-live": "polite" });
  const travel = event.stream_type === "task" || event.stream_type === "project";
  panel.replaceChildren(
    h("h3", { text: `${event.event_type} at position ${event.position}` }),
    fields([
      ["Event id", h("code", { text: event.event_id })],
      ["Occurred", when(event.occurred_at)],
      ["Actor", `${actor.display || actor.kind || ""}${actor.id ? ` (${actor.id})` : ""}`],
      ...(impersonator ? [["Impersonated by", typeof impersonator === "string" ? impersonator : JSON.stringify(impersonator)]] : []),
      ["Workspace", h("code", { text: event.tenant_id })],
      ["Stream", h("code", { text: `${event.stream_type} ${event.stream_id} v${event.stream_version}` })],
      ["Request id", h("code", { text: event.request_id || "—" })],
      ["Correlation id", h("code", { text: event.correlation_id || "—" })],
      ["Causation id", h("code", { text: event.causation_id || "—" })],
    ]),
    h("h3", { text: "Data" }),
    json(event.data),
    h("div", { class: "row" },
      h("button", { class: "secondary", onclick: () => go("audit", { scope, stream_id: event.stream_id }) }, "Stream history"),
      travel ? h("button", { class: "secondary", onclick: () => timeTravel(state, event, scope) }, `The ${event.stream_type} at this event`) : null),
    state);
  panel.hidden = false;
  panel.scrollIntoView({ block: "nearest" });
}

async function timeTravel(target, event, scope) {
  const at = encodeURIComponent(event.occurred_at);
  const path = scope === "platform"
    ? `/admin/workspaces/${event.tenant_id}/streams/${event.stream_id}/state?as_of=${at}`
    : `/workspaces/${event.tenant_id}/${event.stream_type}s/${event.stream_id}?as_of=${at}`;
  const value = await attempt(() => call("GET", path));
  if (!value) return;
  target.replaceChildren(
    h("h3", { text: `The ${event.stream_type} as it was at ${when(event.occurred_at)}` }),
    json(value));
}

// -------------------------------------------------------------- live tail

let tailSocket = null;
let tailTimer = null;

function stopTail() {
  if (tailSocket) tailSocket.close();
  tailSocket = null;
  if (tailTimer) clearInterval(tailTimer);
  tailTimer = null;
}

async function tailPage() {
  stopTail();
  const choices = [
    ...(me.platform_admin ? [{ value: "platform", label: "Every workspace (platform log, polled)" }] : []),
    ...(me.workspaces || []).map((w) => ({ value: w.id, label: `${w.name} (WebSocket)` })),
  ];
  const lines = h("tbody", {});
  const status = h("p", { class: "muted", "aria-live": "polite", text: "Not following." });
  const select = h("select", { name: "scope" }, choices.map((c) => h("option", { value: c.value }, c.label)));
  const start = h("button", {}, "Follow");
  const stop = h("button", { class: "secondary", disabled: true }, "Stop");
  const add = (position, type, what, at) => {
    lines.prepend(h("tr", {}, h("td", { class: "mono", text: position }), h("td", {}, h("code", { text: type })), h("td", { text: what }), h("td", { text: at })));
    while (lines.childElementCount > 200) lines.lastChild.remove();
  };
  start.addEventListener("click", () => {
    stopTail();
    lines.replaceChildren();
    start.disabled = true;
    stop.disabled = false;
    if (select.value === "platform") followPlatform(add, status);
    else followWorkspace(select.value, add, status);
  });
  stop.addEventListener("click", () => {
    stopTail();
    start.disabled = false;
    stop.disabled = true;
    status.textContent = "Stopped.";
  });
  show(h("h2", { text: "Live tail" }),
    h("div", { class: "row" }, h("label", {}, "Follow", select), start, stop),
    status,
    h("div", { class: "tail scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Position", "Event", "Resource", "When"].map((t) => h("th", { scope: "col", text: t })))),
      lines)));
}

function followWorkspace(workspace, add, status) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${API}/ws?token=${encodeURIComponent(session.access)}`);
  tailSocket = socket;
  socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "subscribe", channel: `workspace:${workspace}` })));
  socket.addEventListener("message", (message) => {
    let data;
    try { data = JSON.parse(message.data); } catch (_) { return; }
    if (data.type === "subscribed") status.textContent = `Following from position ${data.position}.`;
    else if (data.type === "update" || data.type === "removed") {
      const name = data.data?.key || data.data?.name || data.data?.title || short(data.data?.id);
      add(data.position, data.event_type, `${data.resource || ""} ${name || ""}`.trim(), new Date().toLocaleTimeString());
    } else if (data.type === "error") status.textContent = `Stopped: ${data.message}`;
  });
  socket.addEventListener("close", (event) => {
    if (tailSocket === socket) status.textContent = `Connection closed${event.reason ? `: ${event.reason}` : "."}`;
  });
}

async function followPlatform(add, status) {
  const head = await attempt(() => call("GET", "/admin/audit-log?limit=1&offset=0"));
  let after = 0;
  if (head && head.total > 0) {
    const last = await attempt(() => call("GET", `/admin/audit-log?limit=1&offset=${head.total - 1}`));
    after = last?.items?.[0]?.position || 0;
  }
  status.textContent = `Following from position ${after}.`;
  tailTimer = setInterval(async () => {
    const page = await call("GET", `/admin/audit-log${query({ after_position: after, limit: 100 })}`).catch((error) => {
      status.textContent = error.message;
      return null;
    });
    for (const event of page?.items || []) {
      add(event.position, event.event_type, `${event.stream_type} ${short(event.stream_id)}`, when(event.occurred_at));
      after = Math.max(after, event.position);
    }
  }, 1000);
}

// ------------------------------------------------------------ projections

async function projectionsPage() {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  const progress = h("section", { class: "panel", "aria-live": "polite", hidden: true });
  show(h("h2", { text: "Projections" }), body, progress);
  const page = await attempt(() => call("GET", "/admin/projections?limit=100"));
  if (!page) return;
  body.replaceChildren(table(["Name", "Generation", "State", "Checkpoint", "Lag", "Last error", ""],
    page.items.map((p) => h("tr", {},
      h("td", {}, h("code", { text: p.name })),
      h("td", { text: p.generation }),
      h("td", { class: `state-${p.state}`, text: p.state }),
      h("td", { class: "mono", text: p.position }),
      h("td", { text: `${p.lag_events} events, ${Number(p.lag_seconds).toFixed(1)} s` }),
      h("td", { class: "bad", text: p.last_error ? `${p.last_error} (at ${p.error_position})` : "" }),
      h("td", {}, p.inline ? h("span", { class: "muted", text: "inline" })
        : h("button", { onclick: () => replay(p.name, progress) }, `Replay ${p.name}`))))));
}

async function replay(name, panel) {
  const job = await attempt(() => call("POST", `/admin/projections/${name}/replay`, {}));
  if (!job) return;
  const bar = h("progress", { max: "1", value: "0" });
  const line = h("span", {});
  panel.replaceChildren(h("h3", { text: `Rebuilding ${name}, generation ${job.generation}` }), h("div", { class: "row" }, bar, line));
  panel.hidden = false;
  for (;;) {
    const now = await attempt(() => call("GET", `/admin/jobs/${job.id}`));
    if (!now) return;
    bar.value = now.progress;
    line.textContent = `${now.state}: ${now.position} of ${now.head} events${now.eta_seconds ? `, about ${Math.ceil(now.eta_seconds)} s left` : ""}`;
    line.className = `state-${now.state}`;
    if (now.state === "completed") {
      line.textContent = `completed: generation ${now.generation} swapped in (${now.position} events)`;
      return projectionsPage().then(() => {
        document.querySelector("main").append(panel);
      });
    }
    if (now.state === "failed") {
      line.textContent = `failed: ${now.error || "see the server log"}`;
      return undefined;
    }
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
}

// ------------------------------------------------------------------ stats

async function statsPage() {
  show(h("h2", { text: "Platform stats" }), h("p", { class: "muted", text: "Loading…" }));
  const stats = await attempt(() => call("GET", "/admin/stats"));
  if (!stats) return;
  const cards = [];
  const charts = [];
  for (const [key, value] of Object.entries(stats)) {
    if (typeof value === "number") {
      cards.push(h("div", { class: "card" }, h("div", { class: "n", text: value.toLocaleString() }), h("div", { class: "k", text: key.replaceAll("_", " ") })));
    } else if (Array.isArray(value) && value.length && typeof value[0] === "object") {
      // One small chart per figure of the series: figures of very
      // different sizes (events, new users) stay readable side by side.
      for (const figure of Object.keys(value[0]).filter((k) => typeof value[0][k] === "number")) {
        charts.push(chart(figure, value.map((point) => ({ date: point.date ?? "", [figure]: point[figure] }))));
      }
    } else if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [series, points] of Object.entries(value)) {
        if (Array.isArray(points) && points.length && typeof points[0] === "object") charts.push(chart(series, points));
      }
    }
  }
  show(h("h2", { text: "Platform stats" }),
    stats.as_of ? h("p", { class: "muted", text: `As of ${when(stats.as_of)}` }) : null,
    h("div", { class: "cards" }, cards), h("div", { class: "charts" }, charts));
}

// Bars per day for each numeric field of a series of points.
function chart(name, points) {
  const dateKey = Object.keys(points[0]).find((k) => typeof points[0][k] === "string") || null;
  const numeric = Object.keys(points[0]).filter((k) => typeof points[0][k] === "number");
  const width = 600;
  const height = 150;
  const max = Math.max(1, ...points.flatMap((p) => numeric.map((k) => p[k])));
  const slot = width / points.length;
  const bar = Math.max(1, (slot - 2) / Math.max(1, numeric.length));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const total = numeric.map((k) => `${k.replaceAll("_", " ")} ${points.reduce((sum, p) => sum + p[k], 0)}`).join(", ");
  svg.setAttribute("aria-label", `${name.replaceAll("_", " ")} over ${points.length} days: ${total}`);
  points.forEach((point, index) => {
    numeric.forEach((key, which) => {
      const value = point[key];
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      const tall = (value / max) * (height - 4);
      rect.setAttribute("x", String(index * slot + which * bar));
      rect.setAttribute("y", String(height - tall));
      rect.setAttribute("width", String(bar));
      rect.setAttribute("height", String(tall));
      if (which % 2 === 1) rect.setAttribute("class", "b");
      const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      title.textContent = `${dateKey ? point[dateKey] : index}: ${key.replaceAll("_", " ")} ${value}`;
      rect.append(title);
      svg.append(rect);
    });
  });
  return h("figure", { class: "chart panel" },
    h("figcaption", {}, h("strong", { text: name.replaceAll("_", " ") }), " ",
      numeric.length > 1 ? h("span", { class: "legend", text: `(${numeric.map((k, i) => `${i % 2 ? "green" : "blue"}: ${k.replaceAll("_", " ")}`).join(", ")})` }) : null,
      dateKey ? h("span", { class: "legend", text: ` ${points[0][dateKey]} to ${points[points.length - 1][dateKey]}` }) : null),
    svg);
}

// ------------------------------------------------------------------ users

async function usersPage(rest, params) {
  if (rest[0]) return userPage(rest[0]);
  const search = params.get("search") || "";
  const offset = Number(params.get("offset") || 0);
  const form = h("form", { class: "filters", role: "search", "aria-label": "Search users" },
    h("label", {}, "Name or email", h("input", { name: "search", value: search, type: "search" })),
    h("button", { type: "submit" }, "Search"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go("users", formValues(form));
  });
  const list = h("section", {}, h("p", { class: "muted", text: "Loading…" }));
  show(h("h2", { text: "Users" }), form, list);
  const page = await attempt(() => call("GET", `/admin/users${query({ search, offset, limit: PAGE })}`));
  if (!page) return;
  list.replaceChildren(
    table(["Name", "Email", "Platform admin", "State", "Joined"], page.items.map((user) =>
      pickRow([user.name, user.email, user.platform_admin ? "yes" : "", user.deactivated_at ? h("span", { class: "bad", text: "deactivated" }) : "active", when(user.created_at)],
        () => go(`users/${user.id}`), `User ${user.name}`))),
    pager(page, (next) => go("users", { search, offset: next })));
}

async function userPage(id) {
  show(h("h2", { text: "User" }), h("p", { class: "muted", text: "Loading…" }));
  const user = await attempt(() => call("GET", `/admin/users/${id}`));
  if (!user) return;
  const reload = () => userPage(id);
  const reasonForm = (label, action, danger) => {
    const form = h("form", { class: "panel" },
      h("label", {}, `Reason (${label.toLowerCase()})`, h("textarea", { name: "reason", required: true, maxlength: "500" })),
      h("button", { type: "submit", class: danger ? "danger" : "" }, label));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { reason } = formValues(form);
      const done = await attempt(() => action(reason));
      if (done !== undefined) reload();
    });
    return form;
  };
  const impersonation = h("div", { "aria-live": "polite" });
  const impersonate = h("form", { class: "panel" },
    h("label", {}, "Reason (impersonate)", h("textarea", { name: "reason", required: true, maxlength: "500" })),
    h("button", { type: "submit" }, "Impersonate"));
  impersonate.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { reason } = formValues(impersonate);
    const started = await attempt(() => call("POST", "/admin/impersonations", { user_id: id, reason }));
    if (!started) return;
    impersonation.replaceChildren(
      h("p", { text: `Impersonating ${user.name} until ${when(started.expires_at)}. Send this token as Authorization: Bearer …` }),
      h("pre", { text: started.access_token }),
      h("button", { class: "secondary", onclick: async () => {
        if (await attempt(() => call("DELETE", `/admin/impersonations/${started.impersonation_id}`)) !== undefined) {
          impersonation.replaceChildren(h("p", { text: "Impersonation ended." }));
        }
      } }, "End impersonation"));
  });
  const rename = h("form", { class: "row" },
    h("label", {}, "Name", h("input", { name: "name", value: user.name, required: true, maxlength: "100" })),
    h("button", { type: "submit", class: "secondary" }, "Rename"));
  rename.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await attempt(() => call("PATCH", `/admin/users/${id}`, { name: formValues(rename).name })) !== undefined) reload();
  });
  show(
    h("p", {}, h("a", { href: "#/users" }, "← Users")),
    h("h2", { text: user.name }),
    fields([
      ["Email", user.email],
      ["Id", h("code", { text: user.id })],
      ["Platform admin", user.platform_admin ? "yes" : "no"],
      ["State", user.deactivated_at ? h("span", { class: "bad", text: `deactivated ${when(user.deactivated_at)}${user.deactivation_reason ? `: ${user.deactivation_reason}` : ""}` }) : h("span", { class: "ok", text: "active" })],
      ["Sessions", user.sessions ?? user.sessions_count ?? user.active_sessions ?? ""],
      ["Joined", when(user.created_at)],
    ]),
    rename,
    h("h3", { text: "Workspaces" }),
    table(["Workspace", "Role"], (user.workspaces || []).map((w) => h("tr", {}, h("td", { text: w.name || w.id }), h("td", { text: w.role })))),
    h("h3", { text: "Account" }),
    user.deactivated_at
      ? h("div", { class: "panel" }, h("button", { onclick: async () => {
        if (await attempt(() => call("POST", `/admin/users/${id}/reactivate`, {})) !== undefined) reload();
      } }, "Reactivate"))
      : reasonForm("Deactivate", (reason) => call("POST", `/admin/users/${id}/deactivate`, { reason }), true),
    user.platform_admin || user.deactivated_at ? null : impersonate,
    impersonation);
}

// ---------------------------------------------------------- feature flags

async function flagsPage(rest) {
  if (rest[0]) return flagPage(decodeURIComponent(rest[0]));
  const create = h("form", { class: "panel filters", "aria-label": "New flag" },
    h("label", {}, "Key", h("input", { name: "key", required: true, pattern: "[a-z0-9][a-z0-9._-]*", maxlength: "100", placeholder: "new-board" })),
    h("label", {}, "Description", h("input", { name: "description", maxlength: "500" })),
    h("label", {}, "Rollout %", h("input", { name: "rollout_percent", type: "number", min: "0", max: "100", value: "0" })),
    h("label", { class: "inline" }, h("input", { name: "enabled", type: "checkbox" }), "Enabled"),
    h("button", { type: "submit" }, "Create flag"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(create);
    const made = await attempt(() => call("POST", "/admin/feature-flags", {
      key: values.key,
      description: values.description,
      enabled: create.elements.enabled.checked,
      rollout_percent: Number(values.rollout_percent || 0),
    }));
    if (made) go(`flags/${encodeURIComponent(made.key)}`);
  });
  const list = h("section", {}, h("p", { class: "muted", text: "Loading…" }));
  show(h("h2", { text: "Feature flags" }), list, h("h3", { text: "New flag" }), create);
  const page = await attempt(() => call("GET", "/admin/feature-flags?limit=100"));
  if (!page) return;
  const flags = page.items || page;
  list.replaceChildren(flags.length === 0 ? h("p", { class: "muted", text: "No flags yet." })
    : table(["Key", "Description", "Enabled", "Rollout", "Overrides"], flags.map((flag) =>
      pickRow([h("code", { text: flag.key }), flag.description || "", flag.enabled ? h("span", { class: "ok", text: "on" }) : "off",
        `${flag.rollout_percent}%`, String(Object.keys(flag.overrides || {}).length)],
      () => go(`flags/${encodeURIComponent(flag.key)}`), `Flag ${flag.key}`))));
}

async function flagPage(key) {
  show(h("h2", { text: key }), h("p", { class: "muted", text: "Loading…" }));
  const flag = await attempt(() => call("GET", `/admin/feature-flags/${encodeURIComponent(key)}`));
  if (!flag) return;
  const path = `/admin/feature-flags/${encodeURIComponent(key)}`;
  const reload = () => flagPage(key);
  const edit = h("form", { class: "panel filters", "aria-label": "Edit flag" },
    h("label", {}, "Description", h("input", { name: "description", value: flag.description || "", maxlength: "500", size: 40 })),
    h("label", {}, "Rollout %", h("input", { name: "rollout_percent", type: "number", min: "0", max: "100", value: String(flag.rollout_percent) })),
    h("label", { class: "inline" }, h("input", { name: "enabled", type: "checkbox", checked: flag.enabled }), "Enabled"),
    h("button", { type: "submit" }, "Save"));
  edit.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = formValues(edit);
    const saved = await attempt(() => call("PATCH", path, {
      description: values.description,
      enabled: edit.elements.enabled.checked,
      rollout_percent: Number(values.rollout_percent),
    }));
    if (saved) {
      await reload();
      alertBox(`Saved ${key}.`, "info");
    }
  });
  const override = h("form", { class: "panel filters", "aria-label": "Override for a workspace" },
    h("label", {}, "Workspace id", h("input", { name: "workspace_id", required: true, size: 36 })),
    h("label", {}, "Value", h("select", { name: "value" }, h("option", { value: "true" }, "on"), h("option", { value: "false" }, "off"))),
    h("button", { type: "submit" }, "Override"));
  override.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { workspace_id: workspace, value } = formValues(override);
    // A PATCH names only the overrides it changes; the others stay.
    if (await attempt(() => call("PATCH", path, { overrides: { [workspace]: value === "true" } }))) reload();
  });
  const overrides = Object.entries(flag.overrides || {});
  show(
    h("p", {}, h("a", { href: "#/flags" }, "← Feature flags")),
    h("h2", {}, h("code", { text: flag.key })),
    fields([["State", flag.enabled ? `on for ${flag.rollout_percent}% of workspaces` : "off everywhere but its overrides"],
      ["Updated", when(flag.updated_at)]]),
    edit,
    h("h3", { text: "Overrides" }),
    overrides.length === 0 ? h("p", { class: "muted", text: "None: every workspace follows the rollout." })
      : table(["Workspace", "Value", ""], overrides.map(([workspace, value]) => h("tr", {},
        h("td", {}, h("code", { text: workspace })), h("td", { text: value ? "on" : "off" }),
        h("td", {}, h("button", { class: "secondary", onclick: async () => {
          if (await attempt(() => call("PATCH", path, { overrides: { [workspace]: null } }))) reload();
        } }, "Remove"))))),
    override,
    h("h3", { text: "Delete" }),
    h("div", { class: "panel" }, h("button", { class: "danger", onclick: async () => {
      if (!window.confirm(`Delete the flag ${flag.key}?`)) return;
      if (await attempt(() => call("DELETE", path)) !== undefined) go("flags");
    } }, "Delete flag")));
}

// ------------------------------------------------------------------ start

window.addEventListener("hashchange", () => {
  stopTail();
  render();
});
document.addEventListener("DOMContentLoaded", render);
