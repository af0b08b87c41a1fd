// The callmeter dashboard: plain JavaScript over the public API only
// (GraphQL over HTTP, and the graphql-transport-ws protocol for the live calls).

const TOKEN_KEY = "callmeter.token";
const PAGE_SIZE = 20;
const CHART_MONTHS = 12;
const $ = (id) => document.getElementById(id);

const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const fineMoney = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });
const whole = new Intl.NumberFormat("en-US");
const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

export const formatMoney = (decimal, fine = false) => (fine ? fineMoney : money).format(Number(decimal));
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}
const formatTime = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }) : "–");
const text = (value) => document.createTextNode(value ?? "–");
const fourPlaces = new Intl.NumberFormat(undefined, { maximumFractionDigits: 4 });

class AuthError extends Error {}
class ServiceDown extends Error {}

const state = {
  token: null, claims: null, userId: null, cursors: [null], page: 0, status: "", plan: null, live: null, retry: null,
  invoiceMonthChosen: false,
};

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ServiceDown("callmeter cannot be reached");
  }
  if (response.status >= 500) throw new ServiceDown(`callmeter answered ${response.status}`);
  const body = await response.json();
  const error = body.errors?.[0];
  if (error?.extensions?.code === "UNAUTHENTICATED") throw new AuthError(error.message);
  if (error) throw new Error(error.message);
  return body.data;
}

const scope = () => (state.userId ? { u: String(state.userId) } : {});

// ---------- sign-in ----------

function showSignIn(message) {
  stopLive();
  $("dashboard").hidden = true;
  $("viewer").hidden = true;
  $("banner").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !message;
  $("sign-in-error").textContent = message || "";
}

function signIn(token) {
  state.token = token.trim();
  state.claims = claimsOf(state.token);
  if (!state.claims) {
    showSignIn("That does not look like an access token. Paste the whole token (three parts separated by dots).");
    return;
  }
  localStorage.setItem(TOKEN_KEY, state.token);
  state.userId = null;
  $("sign-in").hidden = true;
  $("viewer").hidden = false;
  $("who").textContent = `User ${state.claims.sub}${state.claims.role === "admin" ? " (admin)" : ""}`;
  $("user-switch").hidden = state.claims.role !== "admin";
  $("user-id").value = state.claims.sub;
  refresh();
}

function signOut() {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showSignIn();
}

function showProblem(error) {
  if (error instanceof AuthError) {
    localStorage.removeItem(TOKEN_KEY);
    showSignIn(`Your token was refused (${error.message}). Ask your operator for a new one and paste it here.`);
    return true;
  }
  const banner = $("banner");
  banner.hidden = false;
  banner.textContent = error instanceof ServiceDown
    ? "The usage service cannot be reached right now. Retrying every few seconds…"
    : `Something went wrong: ${error.message}`;
  if (error instanceof ServiceDown && !state.retry) {
    // One retry at a time, however many requests failed.
    state.retry = setTimeout(() => { state.retry = null; refresh(); }, 5000);
  }
  return false;
}

// ---------- data ----------

// history runs to the customer's current month (its default): months are theirs, not the browser's.
const SUMMARY = `query($u: ID, $from: String!) { usage(userId: $u) {
  customer { billingTimezone balanceUsd availableUsd limits { monthlySpendCapUsd maxConcurrentCalls } }
  alerts { name metric threshold lastFiredMonth }
  current { month totalCalls totalMinutes totalCostUsd byMeter { meter quantity costUsd }
    plan { name kind ratePerMinute overageRatePerMinute tiers { ratePerMinute } } }
  history(from: $from) { month totalMinutes totalCostUsd }
  agentUsage { agent { name } totalCalls totalMinutes totalCostUsd } } }`;

const CALLS = `query($u: ID, $after: String, $status: CallStatus) { usage(userId: $u) {
  calls(first: ${PAGE_SIZE}, after: $after, status: $status) { edges { cursor node {
    callSid callFrom callTo direction status durationSeconds costUsd totalCostUsd
    costBreakdown { meter quantity costUsd } startedAt endedAt agent { name } } }
    pageInfo { hasNextPage endCursor } } } }`;

const INVOICE = `query($u: ID, $m: String!) { usage(userId: $u) { invoice(month: $m) {
  number status totalUsd pdfUrl lines { position description amountUsd } } } }`;

// One month more than the chart shows: the customer's month may be a month behind UTC's.
function chartStart() {
  const now = new Date();
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - CHART_MONTHS, 1));
  return { from: `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}` };
}

async function refresh() {
  if (!state.token) return;
  try {
    const data = await gql(SUMMARY, { ...scope(), ...chartStart() });
    $("banner").hidden = true;
    $("dashboard").hidden = false;
    renderSummary(data.usage);
    renderAlerts(data.usage);
    await Promise.all([loadCalls(), loadInvoice(), loadWebhooks()]);
    startLive();
  } catch (error) {
    showProblem(error);
  }
}

function renderSummary(usage) {
  const current = usage.current;
  state.plan = current.plan;
  $("total-calls").textContent = whole.format(current.totalCalls);
  $("total-minutes").textContent = oneDecimal.format(current.totalMinutes);
  $("total-cost").textContent = formatMoney(current.totalCostUsd);
  $("plan-name").textContent = `${current.month} · ${current.plan.name}`;
  $("billing-zone").textContent = `Months in ${usage.customer.billingTimezone} time`;
  if (!state.invoiceMonthChosen) $("invoice-month").value = current.month;
  renderChart(usage.history.slice(-CHART_MONTHS));
  const rows = usage.agentUsage.map((row) => tableRow([
    row.agent?.name ?? "(no agent)", whole.format(row.totalCalls), oneDecimal.format(row.totalMinutes),
    formatMoney(row.totalCostUsd)], [false, true, true, true]));
  $("agents").replaceChildren(...rows);
  $("agents-empty").hidden = rows.length > 0;
  const meters = current.byMeter.filter((part) => Number(part.quantity) > 0 || Number(part.costUsd) !== 0);
  $("meters").replaceChildren(...meters.map((part) => tableRow([
    part.meter, fourPlaces.format(Number(part.quantity)), formatMoney(part.costUsd, true)], [false, true, true])));
  $("meters-empty").hidden = meters.length > 0;
}

// A call's cost by component: a small stacked bar, each part titled with its meter, quantity and cost.
function breakdownBar(parts) {
  const bar = document.createElement("span");
  bar.className = "breakdown";
  const priced = parts.filter((part) => Number(part.costUsd) > 0);
  const total = priced.reduce((sum, part) => sum + Number(part.costUsd), 0);
  const described = parts.map((part) => `${part.meter}: ${part.quantity} · ${formatMoney(part.costUsd, true)}`);
  bar.title = described.join("\n");
  bar.setAttribute("aria-label", described.join("; "));
  for (const part of priced) {
    const seg = document.createElement("span");
    seg.className = `seg seg-${parts.indexOf(part) % 4}`;
    seg.dataset.meter = part.meter;
    seg.style.width = `${(100 * Number(part.costUsd)) / total}%`;
    seg.title = `${part.meter}: ${part.quantity} · ${formatMoney(part.costUsd, true)}`;
    bar.append(seg);
  }
  return bar;
}

const METRICS = { SPEND_USD: "Spend", MINUTES: "Minutes", INCLUDED_MINUTES_PERCENT: "% of included minutes" };

function renderAlerts(usage) {
  const customer = usage.customer;
  const parts = [customer.balanceUsd === null ? "Postpaid (no prepaid credit)"
    : `Balance ${formatMoney(customer.balanceUsd)} · available ${formatMoney(customer.availableUsd)}`];
  if (customer.limits.monthlySpendCapUsd !== null) parts.push(`cap ${formatMoney(customer.limits.monthlySpendCapUsd)} a month`);
  if (customer.limits.maxConcurrentCalls !== null) parts.push(`at most ${customer.limits.maxConcurrentCalls} calls at once`);
  $("balance").textContent = parts.join(" · ");
  const rows = usage.alerts.map((alert) => tableRow([
    alert.name ?? "–", METRICS[alert.metric] ?? alert.metric,
    alert.metric === "SPEND_USD" ? formatMoney(alert.threshold) : alert.threshold,
    alert.lastFiredMonth ?? "not yet"], [false, false, true, false]));
  $("alerts").replaceChildren(...rows);
  $("alerts-empty").hidden = rows.length > 0;
}

const ENDPOINTS = `{ webhookEndpoints { id url events disabled } }`;
const DELIVERIES = `query($e: ID!) { webhookDeliveries(endpointId: $e, first: 10) {
  eventType status attempts lastStatusCode createdAt } }`;

// Admins: every endpoint with its latest deliveries and their status.
async function loadWebhooks() {
  const admin = state.claims?.role === "admin";
  $("webhooks-card").hidden = !admin;
  if (!admin) return;
  const { webhookEndpoints } = await gql(ENDPOINTS);
  const blocks = await Promise.all(webhookEndpoints.map(async (endpoint) => {
    const { webhookDeliveries } = await gql(DELIVERIES, { e: endpoint.id });
    const block = document.createElement("div");
    block.className = "endpoint";
    const head = document.createElement("h3");
    head.textContent = `${endpoint.url}${endpoint.disabled ? " (disabled)" : ""}`;
    const events = document.createElement("p");
    events.className = "hint";
    events.textContent = endpoint.events.join(", ");
    const table = document.createElement("table");
    const body = document.createElement("tbody");
    body.append(...webhookDeliveries.map((d) => tableRow([
      formatTime(d.createdAt), d.eventType, d.status, whole.format(d.attempts), d.lastStatusCode ?? "–"],
      [false, false, false, true, true])));
    table.append(body);
    block.append(head, events, table);
    return block;
  }));
  $("webhooks").replaceChildren(...blocks);
  $("webhooks-empty").hidden = blocks.length > 0;
}

function renderChart(months) {
  const width = 600, height = 180, pad = 22, top = 14;
  const max = Math.max(...months.map((m) => Number(m.totalCostUsd)), 0.01);
  const step = (width - 2 * pad) / months.length;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  months.forEach((m, i) => {
    const value = Number(m.totalCostUsd);
    const h = (value / max) * (height - pad - top - 4);
    const bar = document.createElementNS(ns, "rect");
    Object.entries({ x: pad + i * step + 3, y: height - pad - h, width: step - 6, height: Math.max(h, 0.5),
      class: "bar-rect" }).forEach(([k, v]) => bar.setAttribute(k, v));
    const title = document.createElementNS(ns, "title");
    title.textContent = `${m.month}: ${formatMoney(m.totalCostUsd)}, ${oneDecimal.format(m.totalMinutes)} min`;
    bar.append(title);
    const label = document.createElementNS(ns, "text");
    Object.entries({ x: pad + i * step + step / 2, y: height - 6, "text-anchor": "middle" })
      .forEach(([k, v]) => label.setAttribute(k, v));
    label.textContent = m.month.slice(5) === "01" ? m.month : m.month.slice(5);
    svg.append(bar, label);
    if (value > 0) {
      const amount = document.createElementNS(ns, "text");
      Object.entries({ x: pad + i * step + step / 2, y: height - pad - h - 3, "text-anchor": "middle" })
        .forEach(([k, v]) => amount.setAttribute(k, v));
      amount.textContent = money.format(value);
      svg.append(amount);
    }
  });
  $("chart").replaceChildren(svg);
}

function tableRow(cells, numeric = []) {
  const tr = document.createElement("tr");
  cells.forEach((cell, i) => {
    const td = document.createElement("td");
    if (numeric[i]) td.className = "num";
    if (cell instanceof Node) td.append(cell); else td.append(text(cell));
    tr.append(td);
  });
  return tr;
}

async function loadCalls() {
  const data = await gql(CALLS, { ...scope(), after: state.cursors[state.page], status: state.status || null });
  const { edges, pageInfo } = data.usage.calls;
  const rows = edges.map(({ node }) => {
    const status = document.createElement("span");
    status.className = `status-${node.status.toLowerCase()}`;
    status.textContent = node.status.toLowerCase();
    return tableRow([formatTime(node.startedAt), node.agent?.name, otherParty(node), status,
      formatDuration(node.durationSeconds), formatMoney(node.totalCostUsd, true), breakdownBar(node.costBreakdown)],
      [false, false, false, false, true, true, false]);
  });
  $("calls").replaceChildren(...rows);
  $("calls-empty").hidden = rows.length > 0;
  $("calls-empty").textContent = state.status ? "No calls with this status." : "No calls yet.";
  state.cursors[state.page + 1] = pageInfo.hasNextPage ? pageInfo.endCursor : undefined;
  $("next-page").disabled = !pageInfo.hasNextPage;
  $("prev-page").disabled = state.page === 0;
  $("page-number").textContent = `Page ${state.page + 1}`;
}

async function loadInvoice() {
  const month = $("invoice-month").value;
  const box = $("invoice");
  try {
    const { invoice } = (await gql(INVOICE, { ...scope(), m: month })).usage;
    const table = document.createElement("table");
    table.className = "table";
    table.append(...invoice.lines.map((line) => tableRow([line.description, formatMoney(line.amountUsd)], [false, true])));
    table.append(tableRow([`Total (${invoice.status === "FINALIZED" ? `invoice ${invoice.number}` : "draft"})`,
      formatMoney(invoice.totalUsd)], [false, true]));
    table.lastChild.style.fontWeight = "650";
    box.replaceChildren(table);
    $("invoice-pdf").dataset.url = invoice.pdfUrl;
  } catch (error) {
    if (!showProblem(error)) box.replaceChildren(text(`No invoice for ${month}.`));
  }
}

async function downloadPdf() {
  const url = $("invoice-pdf").dataset.url;
  const response = await fetch(url, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) return showProblem(new Error(`the PDF could not be made (${response.status})`));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `invoice-${$("invoice-month").value}.pdf`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

// ---------- live calls over graphql-transport-ws ----------

const LIVE = `subscription($u: ID) { activeCalls(userId: $u) {
  callSid callFrom callTo direction startedAt agent { name } } }`;

/** The number on the other end: the caller of an inbound call, the one called by an outbound call. */
function otherParty(call) {
  return (call.direction ?? "").startsWith("outbound") ? call.callTo : call.callFrom;
}

function stopLive() {
  if (state.live) {
    state.live.closed = true;
    state.live.socket.close();
    clearInterval(state.live.ticker);
    state.live = null;
  }
}

function startLive(delay = 1000) {
  stopLive();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
  const socket = new WebSocket(url, "graphql-transport-ws");
  const live = { socket, closed: false, opened: false, calls: [], ticker: setInterval(tick, 1000) };
  state.live = live;
  const pill = $("live-state");
  socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } }));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "connection_ack") {
      socket.send(JSON.stringify({ id: "live", type: "subscribe", payload: { query: LIVE, variables: scope() } }));
      pill.textContent = "live";
      pill.classList.add("on");
      live.opened = true;
    } else if (message.type === "ping") {
      socket.send(JSON.stringify({ type: "pong" }));
    } else if (message.type === "next") {
      if (message.payload.errors) return showProblem(new Error(message.payload.errors[0].message));
      const previous = live.calls.length;
      live.calls = message.payload.data.activeCalls;
      renderLive();
      if (live.calls.length < previous) refreshTotals();
    } else if (message.type === "error") {
      showProblem(new Error(message.payload[0]?.message ?? "subscription refused"));
    }
  };
  socket.onclose = (event) => {
    if (live.closed) return;
    pill.textContent = "reconnecting…";
    pill.classList.remove("on");
    clearInterval(live.ticker);
    if (event.code === 4403) return showProblem(new AuthError(event.reason || "the live connection was refused"));
    // A connection that was live dropped: check the service now, so a stopped service shows at once
    // (and totals catch up on what happened meanwhile if it is still there).
    if (live.opened) refreshTotals();
    setTimeout(() => state.live === live && startLive(Math.min(delay * 2, 15000)), delay);
  };
}

function estimateRate() {
  const plan = state.plan;
  if (!plan) return 0;
  return Number(plan.ratePerMinute ?? plan.overageRatePerMinute ?? plan.tiers?.[0]?.ratePerMinute ?? 0);
}

function renderLive() {
  const calls = state.live?.calls ?? [];
  $("live-empty").hidden = calls.length > 0;
  $("live-calls").replaceChildren(...calls.map((call) => {
    const li = document.createElement("li");
    li.dataset.started = call.startedAt;
    li.dataset.sid = call.callSid;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${call.agent?.name ?? "agent"} · ${otherParty(call) ?? "unknown number"}`;
    const duration = document.createElement("span");
    duration.className = "tick duration";
    const cost = document.createElement("span");
    cost.className = "tick cost";
    li.append(who, duration, cost);
    return li;
  }));
  tick();
}

function tick() {
  const rate = estimateRate();
  for (const li of $("live-calls").children) {
    const seconds = (Date.now() - new Date(li.dataset.started).getTime()) / 1000;
    li.querySelector(".duration").textContent = formatDuration(seconds);
    li.querySelector(".cost").textContent = `≈ ${formatMoney((rate * Math.max(seconds, 0)) / 60, true)}`;
  }
}

async function refreshTotals() {
  try {
    renderSummary((await gql(SUMMARY, { ...scope(), ...chartStart() })).usage);
    $("banner").hidden = true;
    await Promise.all([loadCalls(), loadInvoice()]);
  } catch (error) {
    showProblem(error);
  }
}

// ---------- wiring ----------

function init() {
  const now = new Date();
  $("invoice-month").value = `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, "0")}`;
  $("sign-in-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value); });
  $("sign-out").addEventListener("click", signOut);
  $("status-filter").addEventListener("change", (event) => {
    state.status = event.target.value; state.page = 0; state.cursors = [null];
    loadCalls().catch(showProblem);
  });
  $("next-page").addEventListener("click", () => { state.page += 1; loadCalls().catch(showProblem); });
  $("prev-page").addEventListener("click", () => { state.page = Math.max(0, state.page - 1); loadCalls().catch(showProblem); });
  $("invoice-month").addEventListener("change", () => { state.invoiceMonthChosen = true; loadInvoice(); });
  $("invoice-pdf").addEventListener("click", () => downloadPdf().catch(showProblem));
  $("user-id").addEventListener("change", (event) => {
    const id = Number(event.target.value);
    state.userId = id > 0 && String(id) !== String(state.claims.sub) ? id : null;
    state.page = 0; state.cursors = [null];
    refresh();
  });
  const params = new URLSearchParams(location.search);
  const linked = params.get("token");
  if (linked) {
    params.delete("token");
    history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
  }
  const token = linked || localStorage.getItem(TOKEN_KEY);
  if (token) signIn(token); else showSignIn();
}

init();
