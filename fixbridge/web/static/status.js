// The status page: renders /api/status into the tables and draws the charts as inline SVG.
// Polls every 2 s; read-only (nothing here sends anything but GETs).
"use strict";
const POLL_MS = 2000;
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const short = (h) => h ? h.slice(0, 10) + "…" + h.slice(-6) : "";
const time = (iso) => iso ? iso.replace("T", " ").slice(0, 19) : "";

function table(id, head, rows, empty) {
  const el = document.getElementById(id);
  if (!rows.length) { el.innerHTML = `<tr><td class="muted">${esc(empty)}</td></tr>`; return; }
  el.innerHTML = "<tr>" + head.map((h) => `<th>${esc(h)}</th>`).join("") + "</tr>" +
    rows.map((r) => "<tr>" + r.join("") + "</tr>").join("");
}
const td = (v, cls) => `<td${cls ? ` class="${cls}"` : ""}>${esc(v)}</td>`;
const orderLink = (o) => `<td><a class="order-link" href="/orders/${encodeURIComponent(o.order_id)}">${esc(o.order_id)}</a></td>`;
const txCell = (h) => h ? `<td class="hash tx-hash" title="${esc(h)}" data-tx="${esc(h)}">${esc(h)}</td>` : "<td></td>";

function orderRows(list) {
  return list.map((o) => [orderLink(o), td(o.cl_ord_id), td(o.session), td(o.symbol), td(o.side),
    td(o.qty + (o.cash ? " (cash)" : ""), "num"), td(o.price ?? "mkt", "num"),
    `<td><span class="status s-${esc(o.status)}">${esc(o.status)}</span></td>`, td(o.cum_qty, "num"),
    td(o.avg_px, "num"), txCell(o.tx_hash), td(time(o.created_at), "nowrap")]);
}
const ORDER_HEAD = ["OrderID", "ClOrdID", "session", "symbol", "side", "qty", "limit", "status", "cum", "avg px", "tx hash", "created (UTC)"];

function chart(id, points, series) {
  // points: [{t, ...}], series: [{key, color, bars?}]
  const el = document.getElementById(id), W = 300, H = 120, P = 22;
  const vals = points.flatMap((p) => series.map((s) => p[s.key]).filter((v) => v != null));
  const max = Math.max(...vals, 0) || 1;
  const x = (i) => P + (i * (W - P - 4)) / Math.max(points.length - 1, 1);
  const y = (v) => H - 14 - (v / max) * (H - 24);
  let svg = `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img">`;
  svg += `<line x1="${P}" y1="${H - 14}" x2="${W}" y2="${H - 14}" stroke="#ccd"/>`;
  svg += `<text x="2" y="12" font-size="9" fill="#667">${esc(+max.toPrecision(3))}</text>`;
  svg += `<text x="${P}" y="${H - 2}" font-size="9" fill="#667">-60 min</text><text x="${W - 22}" y="${H - 2}" font-size="9" fill="#667">now</text>`;
  for (const s of series) {
    if (s.bars) {
      const w = Math.max((W - P) / points.length - 1, 1);
      points.forEach((p, i) => { if (p[s.key]) svg += `<rect x="${x(i) - w / 2}" y="${y(p[s.key])}" width="${w}" height="${H - 14 - y(p[s.key])}" fill="${s.color}"><title>${p[s.key]}</title></rect>`; });
    } else {
      const pts = points.map((p, i) => p[s.key] == null ? null : `${x(i)},${y(p[s.key])}`).filter(Boolean);
      if (pts.length) svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.join(" ")}"/>`;
      points.forEach((p, i) => { if (p[s.key] != null) svg += `<circle cx="${x(i)}" cy="${y(p[s.key])}" r="1.8" fill="${s.color}"><title>${s.key} ${(+p[s.key]).toFixed(4)} s (${p.n})</title></circle>`; });
    }
  }
  el.innerHTML = svg + "</svg>";
}

function render(d) {
  document.getElementById("updated").textContent = new Date(d.now * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  document.getElementById("halts").innerHTML = d.halts.map((h) =>
    `<div class="halt">HALTED ${esc(h.scope === "*" ? "all sessions" : h.scope)} by ${esc(h.halted_by)} at ${esc(time(h.halted_at))}: ${esc(h.reason)}</div>`).join("");
  table("sessions", ["session", "logon", "next out seq", "next in seq"], d.sessions.map((s) => [
    td(s.counterparty), `<td class="${s.logged_on ? "ok" : "muted"}">${s.logged_on ? "logged on" : "logged out"}</td>`,
    td(s.next_sender_seq, "num"), td(s.next_target_seq, "num")]), "no sessions");
  table("chains", ["chain", "id", "head", "node", "lag", "state"], d.chains.map((c) => [
    td(c.chain), td(c.chain_id, "num"), td(c.head ?? "–", "num"), td(c.node_height ?? "–", "num"),
    td(c.lag_blocks ?? "–", "num"), `<td class="${c.outage ? "bad" : "ok"}">${c.outage ? "down: " + esc(c.outage) : c.watched ? "following" : "not watched"}</td>`]), "no chains");
  table("working", ORDER_HEAD, orderRows(d.orders.working), "no working orders");
  table("recent", ORDER_HEAD, orderRows(d.orders.recent), "no orders yet");
  table("in-flight", ["order", "chain", "wallet", "nonce", "tx hash", "attempts", "age (s)", "max fee (gwei)", "tip (gwei)", "max cost (ETH)"],
    d.in_flight.map((f) => [f.order_id ? orderLink(f) : td("–"), td(f.chain), td(f.wallet_name), td(f.nonce, "num"), txCell(f.tx_hash),
      td(f.attempts, "num"), td(f.age_s, "num"), td(f.max_fee_gwei, "num"), td(f.tip_gwei, "num"), td(f.max_fee_eth, "num")]),
    "nothing in flight");
  table("counts", ["status", "orders"], d.counts.orders.map((c) => [td(c.status), td(c.n, "num")])
    .concat([[td("fills (not busted)"), td(d.counts.fills, "num")]]), "no orders");
  document.getElementById("reconcile").innerHTML = d.reconcile.length ? d.reconcile.map((r) =>
    `<p><b>${esc(r.chain)}</b> blocks ${esc(r.from_block)}–${esc(r.to_block)}, ${esc(time(r.finished_at))}: ` +
    `<span class="${r.breaks ? "bad" : "ok"}">${esc(r.status)}${r.breaks ? ", " + esc(r.breaks) + " breaks" : ""}</span></p>` +
    (r.break_list.length ? "<ul>" + r.break_list.map((b) => `<li>${esc(b.kind)}: ${esc(b.detail)}</li>`).join("") + "</ul>" : "")).join("")
    : '<p class="muted">no reconcile run yet (<code>fixbridge reconcile</code>)</p>';
  chart("chart-fills", d.charts.fills_per_minute, [{key: "n", color: "#2f6fdf", bars: true}]);
  chart("chart-ack", d.charts.ack_latency, [{key: "mean", color: "#2f6fdf"}, {key: "max", color: "#e07b00"}]);
  chart("chart-fill", d.charts.fill_latency, [{key: "mean", color: "#2f6fdf"}, {key: "max", color: "#e07b00"}]);
}

async function poll() {
  try {
    const r = await fetch("/api/status", {credentials: "same-origin", cache: "no-store"});
    if (r.ok) render(await r.json());
  } catch (e) { /* the bridge may be restarting: try again */ }
  setTimeout(poll, POLL_MS);
}

render(JSON.parse(document.getElementById("initial").textContent));
setTimeout(poll, POLL_MS);
