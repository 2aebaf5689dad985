// 门店运营看板: the merchant's view of one store, from the mall's own API (same origin).
// Logs in with a wx.login sandbox code, then reads .../kpis every 15 s and the pickup
// queue every 5 s.  Charts are plotly's, served by the mall; nothing comes from elsewhere.
"use strict";

const API = "/api/v1";
const QUEUE_EVERY_MS = 5000;
const KPIS_EVERY_MS = 15000;
const LATE_WAIT_S = 15 * 60;   // a queued order waiting longer than this is shown in red
const state = { token: sessionStorage.getItem("xc-token"), stores: [], timers: [] };
const $ = (id) => document.getElementById(id);

const yuan = (fen) => fen == null ? "-" : "¥" + (fen / 100).toLocaleString("zh-CN",
  { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const percent = (rate) => rate == null ? "-" : (rate * 100).toFixed(1) + "%";
const minutes = (s) => s == null ? "-" : s < 60 ? Math.round(s) + " 秒"
  : (s / 60).toFixed(1) + " 分钟";

async function call(path) {
  const response = await fetch(API + path,
    { headers: state.token ? { Authorization: "Bearer " + state.token } : {} });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(body.error ? body.error.message : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch(API + "/auth/wx-login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ code: "sandbox:" + $("openid").value.trim() }) });
  const body = await response.json();
  if (!response.ok) {
    $("login-error").textContent = body.error ? body.error.message : "登录失败";
    return;
  }
  if (!body.store_ids.length) {
    $("login-error").textContent = "这个账号不是任何门店的店员";
    return;
  }
  state.token = body.token;
  sessionStorage.setItem("xc-token", body.token);
  sessionStorage.setItem("xc-stores", JSON.stringify(body.store_ids));
  await open(body.store_ids);
}

async function open(storeIds) {
  const select = $("store");
  select.replaceChildren();
  for (const id of storeIds) {
    const store = await call("/stores/" + id);
    select.append(new Option(store.name + "（" + store.district + "）", id));
  }
  $("login").hidden = true;
  $("who").hidden = false;
  $("board").hidden = false;
  await refresh();
  state.timers.push(setInterval(queue, QUEUE_EVERY_MS), setInterval(kpis, KPIS_EVERY_MS));
}

function logout() {
  sessionStorage.clear();
  state.timers.forEach(clearInterval);
  location.reload();
}

async function refresh() {
  await Promise.all([kpis(), queue()]);
}

function failed(error) {
  if (error.status === 401) logout();
  else $("window").textContent = "读取失败：" + error.message;
}

async function kpis() {
  const store = $("store").value;
  const day = $("day").value;
  let k;
  try {
    k = await call(`/merchant/stores/${store}/kpis` + (day ? "?from=" + day : ""));
  } catch (error) { return failed(error); }
  if (!$("day").value) $("day").value = k.from.slice(0, 10);
  $("window").textContent = `${k.store_name} · ${k.from.slice(0, 16).replace("T", " ")} 至 `
    + `${k.to.slice(0, 16).replace("T", " ")}（商城时钟）`;
  $("t-gmv").textContent = yuan(k.gmv_fen);
  $("t-orders").textContent = k.paid_orders;
  $("t-aov").textContent = yuan(k.avg_order_fen);
  $("t-conversion").textContent = percent(k.conversion);
  $("t-repurchase").textContent = percent(k.customers.repurchase_rate);
  $("t-customers").textContent = `${k.customers.new} / ${k.customers.returning}`;
  $("t-refunds").textContent = `${k.refunds}（${percent(k.refund_rate)}）`;
  $("t-wait").textContent = `${minutes(k.pickup_wait_s.p50)} / ${minutes(k.pickup_wait_s.p90)}`;
  charts(k);
  const low = $("low");
  low.replaceChildren(...k.low_stock.map((sku) => {
    const item = document.createElement("li");
    item.textContent = `${sku.product_name}（${sku.spec}）剩余 ${sku.available} 件`;
    return item;
  }));
  $("low-note").textContent = k.low_stock.length ? `可售 ≤ ${k.low_stock_at_most}` : "库存充足";
}

function charts(k) {
  if (typeof Plotly === "undefined") return;
  const config = { displayModeBar: false, responsive: true };
  const layout = { margin: { l: 50, r: 10, t: 10, b: 40 }, font: { size: 11 } };
  const hours = k.series.map((b) => b.at.length > 10 ? b.at.slice(11, 13) + "时" : b.at.slice(5));
  Plotly.react("c-gmv", [{ type: "bar", x: hours, y: k.series.map((b) => b.gmv_fen / 100),
    marker: { color: "#c8102e" }, hovertemplate: "%{x}: ¥%{y:.2f}<extra></extra>" }],
    { ...layout, yaxis: { title: "元" } }, config);
  Plotly.react("c-funnel", [{ type: "funnel", y: k.funnel.map((s) => s.label),
    x: k.funnel.map((s) => s.count), marker: { color: ["#f4a259", "#e07a5f", "#c8102e"] } }],
    { ...layout, margin: { l: 60, r: 10, t: 10, b: 20 } }, config);
  Plotly.react("c-heat", [{ type: "heatmap", z: k.heatmap.counts, y: k.heatmap.weekdays,
    x: k.heatmap.hours.map((h) => h + "时"), colorscale: "Reds",
    hovertemplate: "%{y} %{x}: %{z} 单<extra></extra>" }], layout, config);
  const top = [...k.top_products.by_units].reverse();
  const named = top.map((p) => p.product_name);   // two SKUs of one product: both shown
  const labels = named.map((n, i) => named.indexOf(n) === named.lastIndexOf(n) ? n
    : `${n} #${top[i].sku_id}`);
  Plotly.react("c-top", [{ type: "bar", orientation: "h", y: labels,
    x: top.map((p) => p.units), marker: { color: "#e07a5f" },
    hovertemplate: "%{y}: %{x} 件<extra></extra>" }],
    { ...layout, margin: { l: 120, r: 10, t: 10, b: 30 }, xaxis: { rangemode: "tozero" } },
    config);
}

async function queue() {
  let q;
  try {
    q = await call(`/merchant/stores/${$("store").value}/pickup-queue`);
  } catch (error) { return failed(error); }
  $("queue-count").textContent = `${q.items.length} 单`;
  $("queue").tBodies[0].replaceChildren(...q.items.map((order) => {
    const row = document.createElement("tr");
    row.dataset.order = order.order_id;
    const status = order.status === "ready_for_pickup" ? "待取货" : "备货中";
    for (const text of ["#" + order.order_id, status, yuan(order.total_fen),
                        minutes(order.waiting_s)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    if (order.waiting_s > LATE_WAIT_S) row.lastChild.className = "late";
    return row;
  }));
}

$("login").addEventListener("submit", login);
$("logout").addEventListener("click", logout);
$("store").addEventListener("change", refresh);
$("day").addEventListener("change", kpis);
if (state.token) open(JSON.parse(sessionStorage.getItem("xc-stores") || "[]")).catch(logout);
