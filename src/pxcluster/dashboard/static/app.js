// pxcluster dashboard: renders each snapshot the server streams (server-sent events).
// Every value from the cluster is put in the page as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const TASKS_SHOWN = 25;
const ERRORS_SHOWN = 8;
let chart = null;

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function clock(t) { return new Date(t * 1000).toLocaleTimeString(); }

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fillTable(id, items, build) {
  const body = document.querySelector("#" + id + " tbody");
  const rows = document.createDocumentFragment();
  for (const item of items) rows.appendChild(build(item));
  body.replaceChildren(rows);
}

function engineRow(e) {
  const tr = document.createElement("tr");
  tr.dataset.engine = e.id;
  tr.dataset.state = e.state;
  tr.dataset.pid = e.pid;
  if (e.state === "dead" || e.state === "stopped") { tr.className = "gone"; tr.title = e.why; }
  cell(tr, e.id);
  const st = document.createElement("span");
  st.className = "state " + e.state;
  st.textContent = e.state;
  tr.appendChild(document.createElement("td")).appendChild(st);
  cell(tr, e.hostname);
  cell(tr, e.pid);
  cell(tr, e.queue);
  cell(tr, bytes(e.memory));
  cell(tr, e.cpu === null ? "-" : e.cpu.toFixed(0));
  const gone = e.state === "dead" || e.state === "stopped";
  cell(tr, e.last_seen.toFixed(1) + " s" + (gone ? " ago" : ""));
  cell(tr, e.job || "-");
  return tr;
}

function taskRow(ev) {
  const tr = document.createElement("tr");
  tr.dataset.status = ev.status;
  cell(tr, clock(ev.done));
  cell(tr, ev.engine);
  cell(tr, ev.kind);
  cell(tr, ev.took < 1 ? (ev.took * 1000).toFixed(1) + " ms" : ev.took.toFixed(2) + " s");
  cell(tr, ev.status, ev.status);
  cell(tr, ev.id);
  return tr;
}

function renderErrors(errors) {
  const box = $("errors");
  if (!errors.length) {
    const p = document.createElement("p");
    p.className = "quiet";
    p.textContent = "none";
    box.replaceChildren(p);
    return;
  }
  const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.dataset.seq));
  const items = errors.slice(-ERRORS_SHOWN).reverse().map((err) => {
    const d = document.createElement("details");
    d.dataset.seq = err.seq;
    d.className = "error";
    if (open.has(String(err.seq))) d.open = true;
    const s = document.createElement("summary");
    s.textContent = `${clock(err.time)} engine ${err.engine} ${err.kind}: ${err.ename}: ${err.evalue}`;
    const pre = document.createElement("pre");
    pre.textContent = err.traceback || "(no traceback)";
    d.append(s, pre);
    return d;
  });
  if (errors.length > ERRORS_SHOWN) {
    const more = document.createElement("p");
    more.className = "quiet";
    more.textContent = `and ${errors.length - ERRORS_SHOWN} earlier ones`;
    items.push(more);
  }
  box.replaceChildren(...items);
}

function renderChart(points, backlog) {
  // both series are sampled at the same polls; the backlog has one more (the first poll)
  const waiting = new Map(backlog.map((p) => [p[0], p[1]]));
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]);
  const ws = points.map((p) => waiting.get(p[0]) ?? null);
  const el = $("throughput-chart");
  if (chart === null) {
    chart = new uPlot({
      width: Math.max(300, el.clientWidth), height: 180,
      scales: {
        x: { time: true },
        y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
        w: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.1)] },
      },
      series: [
        {},
        { label: "finished/s", stroke: "#1565c0", fill: "rgba(21,101,192,0.12)", width: 2 },
        { label: "waiting", scale: "w", stroke: "#e65100", width: 1.5, dash: [4, 3] },
      ],
      axes: [{}, { size: 60 }, { scale: "w", side: 1, size: 60, grid: { show: false } }],
    }, [xs, ys, ws], el);
    window.addEventListener("resize", () => chart.setSize({ width: Math.max(300, el.clientWidth), height: 180 }));
  } else {
    chart.setData([xs, ys, ws]);
  }
}

// The timeline keeps the finished requests of the last WINDOW seconds, by sequence number
// (snapshots overlap), and draws one bar per request on its engine's row.
const WINDOW = 60;
const KEPT = 20000;
const seen = new Map();

function renderTimeline(s) {
  for (const ev of s.events) seen.set(ev.seq, ev);
  const cutoff = s.taken - WINDOW;
  for (const [seq, ev] of seen) if (ev.done < cutoff || seen.size > KEPT) seen.delete(seq);
  const canvas = $("timeline");
  const ids = s.engines.map((e) => e.id).sort((a, b) => a - b);
  const row = new Map(ids.map((id, i) => [id, i]));
  const rowHeight = Math.max(2, Math.min(14, Math.floor(360 / Math.max(1, ids.length))));
  const width = canvas.clientWidth || 800;
  const ratio = window.devicePixelRatio || 1;
  const height = Math.max(40, ids.length * rowHeight + 16);
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.height = height + "px";
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  g.fillStyle = "#6b7385";
  g.font = "10px sans-serif";
  g.fillText(`-${WINDOW} s`, 0, height - 2);
  g.fillText("now", width - 22, height - 2);
  const labels = rowHeight >= 9 ? 28 : 0;  // engine ids at the left when rows are tall enough
  const x = (t) => labels + ((t - cutoff) / WINDOW) * (width - labels);
  if (labels) ids.forEach((id, i) => g.fillText(String(id), 2, i * rowHeight + rowHeight - 2));
  let bars = 0;
  for (const ev of seen.values()) {
    const r = row.get(ev.engine);
    if (r === undefined) continue;
    g.fillStyle = ev.status === "OK" ? "#1565c0" : ev.status === "ERROR" ? "#c62828" : "#e65100";
    const left = x(ev.done - ev.took);
    g.fillRect(left, r * rowHeight, Math.max(1.5, x(ev.done) - left), rowHeight - 1);
    bars++;
  }
  canvas.dataset.bars = String(bars);
}

function render(s) {
  const live = s.engines.filter((e) => e.state === "idle" || e.state === "busy");
  const busy = live.filter((e) => e.state === "busy").length;
  $("profile").textContent = "profile " + s.profile;
  $("controller").textContent = s.controller_url;
  const status = $("status");
  status.textContent = s.answering ? "live, " + clock(s.taken) : s.problem;
  status.className = "status " + (s.answering ? "live" : "down");
  $("n-engines").textContent = live.length;
  $("n-engines-sub").textContent = `${busy} busy, ${live.length - busy} idle, ${s.engines.length - live.length} dead`;
  const rate = s.throughput.length ? s.throughput[s.throughput.length - 1][1] : 0;
  $("rate").textContent = rate.toFixed(1) + "/s";
  $("queued").textContent = s.queued;
  $("queued-sub").textContent = `${s.waiting} waiting on others, ${s.assigned} assigned to engines`;
  $("finished").textContent = s.finished;
  $("errors-total").textContent = s.errors_total + " errors";
  $("store").textContent = s.store_records;
  $("store-sub").textContent = `records; ${bytes(s.store_bytes)} of results, file ${bytes(s.store_file_bytes)}`;
  $("n-clients").textContent = s.clients.length;
  fillTable("engines", s.engines, engineRow);
  fillTable("tasks", s.events.slice(-TASKS_SHOWN).reverse(), taskRow);
  fillTable("clients", s.clients, (c) => {
    const tr = document.createElement("tr");
    cell(tr, c.session);
    cell(tr, c.idle.toFixed(1) + " s ago");
    return tr;
  });
  renderErrors(s.errors);
  renderChart(s.throughput, s.backlog);
  renderTimeline(s);
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

function connect() {
  const events = new EventSource("/events");
  events.onmessage = (m) => render(JSON.parse(m.data));
  events.onerror = () => {
    const status = $("status");
    status.textContent = "dashboard server unreachable; retrying";
    status.className = "status down";
  };
}

connect();
