// samsa live dashboard: subscribes to a topic over WebSocket (the JS SDK,
// ./samsa.js = sdk/js/dist/samsa.js), charts the readings with their
// offsets on a canvas, and produces commands.
//
// URL parameters: ?topic=sensors&commands=commands&from=latest|earliest&ws=ws://host/ws
// and, with auth on, a bearer JWT in the fragment: #token=eyJ...
//
// For tests the page keeps window.dashboard (offsets seen, duplicates) and
// data attributes: #chart[data-count][data-last-offset][data-duplicates],
// #last-offset[data-offset], #ack[data-offset][data-partition],
// #state[data-state].
import { Client } from "./samsa.js";

const params = new URLSearchParams(location.search);
const topic = params.get("topic") || "sensors";
const commandsTopic = params.get("commands") || "commands";
const from = params.get("from") === "earliest" ? "earliest" : "latest";
const wsURL = params.get("ws") || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;

// With auth on, a bearer JWT can come in the URL's fragment (#token=...):
// browsers never send fragments to servers, and the page removes it from
// the address bar at once. Without one the broker's cookie (if any) is
// used. A token is kept in this tab only (sessionStorage), for reloads.
const fragment = new URLSearchParams(location.hash.slice(1));
let bearer = fragment.get("token");
if (bearer) {
  sessionStorage.setItem("samsa-token", bearer);
  history.replaceState(null, "", location.pathname + location.search);
} else {
  bearer = sessionStorage.getItem("samsa-token");
}

const $ = (id) => document.getElementById(id);
const canvas = $("chart");
const ctx = canvas.getContext("2d");

const MAX_POINTS = 600;
const WINDOW_MS = 60_000;
const MAX_ROWS = 15;
const COLORS = ["#4fb3ff", "#3ccf7a", "#f0b44c", "#ef5b5b", "#b98cff", "#4fd6d6", "#ff8fc7", "#c7d36b"];

// What the page has seen; tests read it.
const dash = {
  topic,
  offsets: [], // "partition:offset" in arrival order (capped)
  count: 0,
  duplicates: 0,
  last: null, // {partition, offset}
  state: "connecting",
  states: [], // every state change, in order
  acks: [],
};
window.dashboard = dash;

const maxOffset = new Map(); // partition -> highest offset seen
const points = []; // {t, y, series, partition, offset}
const seriesColor = new Map();
let dirty = true;

$("topic").textContent = topic;
$("commands-topic").textContent = commandsTopic;
document.title = `samsa · ${topic}`;

// --- connection ---

const client = new Client(wsURL, {
  ...(bearer ? { auth: { bearer } } : {}),
  // The page waits for the broker as long as it takes.
  connectTimeoutMs: 2 ** 31 - 1,
  backoff: { initialMs: 200, maxMs: 5000 },
  onStateChange(state, err) {
    dash.state = state;
    dash.states.push(state);
    const b = $("state");
    b.dataset.state = state;
    b.textContent = state;
    if (state === "open") {
      $("session").textContent = client.hello ? `session ${client.hello.session}` : "";
      $("error").textContent = "";
    } else if (err) {
      $("error").textContent = String(err.message || err);
    }
  },
});

client.subscribe(topic, { from, onError: (e) => ($("error").textContent = `subscription: ${e.code}: ${e.message}`) }, onRecord);

// --- records ---

function onRecord(rec) {
  const key = `${rec.partition}:${rec.offset}`;
  const prev = maxOffset.get(rec.partition);
  if (prev !== undefined && rec.offset <= prev) {
    dash.duplicates++;
    canvas.dataset.duplicates = String(dash.duplicates);
    console.warn("duplicate or out-of-order offset", key, "after", prev);
  } else {
    maxOffset.set(rec.partition, rec.offset);
  }
  if (dash.offsets.length < 100_000) dash.offsets.push(key);
  dash.count++;
  dash.last = { partition: rec.partition, offset: rec.offset };

  const v = rec.value;
  let y = null;
  let t = rec.timestamp;
  let series = rec.key == null ? `p${rec.partition}` : String(rec.key);
  if (v && typeof v === "object") {
    if (typeof v.temp === "number") y = v.temp;
    else if (typeof v.value === "number") y = v.value;
    if (typeof v.ts === "number") t = v.ts;
    if (typeof v.sensor === "string") series = v.sensor;
  } else if (typeof v === "number") {
    y = v;
  }
  if (y !== null) {
    if (!seriesColor.has(series)) {
      seriesColor.set(series, COLORS[seriesColor.size % COLORS.length]);
      renderLegend();
    }
    points.push({ t, y, series, partition: rec.partition, offset: rec.offset });
    if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
  }

  canvas.dataset.count = String(dash.count);
  canvas.dataset.lastOffset = String(rec.offset);
  const lo = $("last-offset");
  lo.textContent = dash.last.partition ? key : String(rec.offset);
  lo.dataset.offset = String(rec.offset);
  lo.dataset.partition = String(rec.partition);
  $("count").textContent = String(dash.count);
  addRow(rec);
  dirty = true;
}

function addRow(rec) {
  const tr = document.createElement("tr");
  tr.dataset.offset = String(rec.offset);
  for (const cell of [rec.partition, rec.offset, rec.key ?? "null", show(rec.value)]) {
    const td = document.createElement("td");
    td.textContent = String(cell);
    tr.appendChild(td);
  }
  const body = $("records");
  body.prepend(tr);
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
}

function show(v) {
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

function renderLegend() {
  const el = $("legend");
  el.textContent = "";
  for (const [name, color] of seriesColor) {
    const span = document.createElement("span");
    const dot = document.createElement("i");
    dot.style.background = color;
    span.append(dot, name);
    el.appendChild(span);
  }
}

// --- chart ---

function draw() {
  dirty = false;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width;
  const h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 48, r: 16, t: 18, b: 28 };
  const pw = w - pad.l - pad.r;
  const ph = h - pad.t - pad.b;

  ctx.font = "11px ui-monospace, monospace";
  ctx.fillStyle = "#7d8896";
  ctx.strokeStyle = "#26303b";
  ctx.lineWidth = 1;

  if (points.length === 0) {
    ctx.fillText(`waiting for records on "${topic}"…`, pad.l + 10, pad.t + ph / 2);
    return;
  }
  // The time window follows the data: at least 10 s, at most 60 s.
  const tMax = Math.max(...points.map((p) => p.t));
  const tFirst = Math.min(...points.map((p) => p.t));
  const windowMs = Math.min(WINDOW_MS, Math.max(10_000, Math.ceil((tMax - tFirst) / 5000) * 5000));
  const tMin = tMax - windowMs;
  const vis = points.filter((p) => p.t >= tMin);
  let yMin = Math.min(...vis.map((p) => p.y));
  let yMax = Math.max(...vis.map((p) => p.y));
  if (yMax - yMin < 1) {
    yMin -= 0.5;
    yMax += 0.5;
  }
  const span = yMax - yMin;
  yMin -= span * 0.08;
  yMax += span * 0.12;
  const x = (t) => pad.l + ((t - tMin) / windowMs) * pw;
  const y = (v) => pad.t + (1 - (v - yMin) / (yMax - yMin)) * ph;

  // Grid and axes.
  ctx.beginPath();
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    ctx.moveTo(pad.l, yy);
    ctx.lineTo(pad.l + pw, yy);
    ctx.fillText(v.toFixed(1), 6, yy + 4);
  }
  const step = windowMs > 30_000 ? 10 : 5;
  for (let s = 0; s <= windowMs / 1000; s += step) {
    const xx = Math.round(x(tMax - s * 1000)) + 0.5;
    ctx.moveTo(xx, pad.t);
    ctx.lineTo(xx, pad.t + ph);
    ctx.fillText(s === 0 ? "now" : `-${s}s`, xx - 12, h - 8);
  }
  ctx.stroke();

  // One line per series, then the points with their offsets.
  const bySeries = new Map();
  for (const p of vis) {
    if (!bySeries.has(p.series)) bySeries.set(p.series, []);
    bySeries.get(p.series).push(p);
  }
  for (const [name, ps] of bySeries) {
    ctx.strokeStyle = seriesColor.get(name);
    ctx.globalAlpha = 0.55;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ps.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.y)) : ctx.moveTo(x(p.t), y(p.y))));
    ctx.stroke();
    ctx.globalAlpha = 1;
  }
  // Points, each series' offsets written above them where there is room
  // (always for the newest point of a series).
  const lastX = new Map();
  for (let i = vis.length - 1; i >= 0; i--) {
    const p = vis[i];
    const px = x(p.t);
    const py = y(p.y);
    ctx.fillStyle = seriesColor.get(p.series);
    ctx.beginPath();
    ctx.arc(px, py, 3, 0, Math.PI * 2);
    ctx.fill();
    const label = String(p.offset);
    const wl = ctx.measureText(label).width;
    const prev = lastX.get(p.series);
    if (prev === undefined || prev - px > wl + 10) {
      ctx.fillStyle = "#d8dee6";
      ctx.fillText(label, Math.min(px - wl / 2, pad.l + pw - wl), py - 7);
      lastX.set(p.series, px);
    }
  }
}

function frame() {
  if (dirty) draw();
  requestAnimationFrame(frame);
}
requestAnimationFrame(frame);
// Background tabs get no animation frames: keep the data attributes and
// the chart fresh anyway.
setInterval(() => dirty && document.hidden && draw(), 1000);
window.addEventListener("resize", () => (dirty = true));

// --- commands ---

$("command-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const pump = $("pump").value.trim();
  const speed = Number($("speed").value);
  const ack = $("ack");
  const btn = $("send");
  btn.disabled = true;
  ack.className = "ack";
  ack.textContent = "sending…";
  try {
    const res = await client.produce(commandsTopic, { key: pump, value: { pump, speed } });
    ack.className = "ack ok";
    ack.textContent = `ack: ${commandsTopic} partition ${res.partition} offset ${res.offset}`;
    ack.dataset.offset = String(res.offset);
    ack.dataset.partition = String(res.partition);
    dash.acks.push(res);
  } catch (e) {
    ack.className = "ack fail";
    ack.textContent = `failed: ${e.code || ""} ${e.message || e}`;
    ack.dataset.error = String(e.code || e.message || e);
  } finally {
    btn.disabled = false;
  }
});
