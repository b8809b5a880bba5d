// A small SVG line chart: one or more series of [time in ms, value] over the same time axis.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 180;
const PAD = { left: 48, right: 10, top: 10, bottom: 22 };

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

// series: [{name, points: [[ms, value], ...]}]; the time axis spans [from, to] (ms).
export function lineChart({ title, unit, series, from, to, id }) {
  const chart = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img", "aria-label": title });
  if (id) chart.id = id;
  const values = series.flatMap((line) => line.points.map(([, value]) => value)).filter(Number.isFinite);
  const top = niceMax(Math.max(0, ...values));
  const x = (ms) => PAD.left + ((ms - from) / Math.max(to - from, 1)) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => HEIGHT - PAD.bottom - (value / top) * (HEIGHT - PAD.top - PAD.bottom);
  for (const fraction of [0, 0.5, 1]) {
    const value = top * fraction;
    chart.append(svg("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    chart.append(svg("text", { x: PAD.left - 4, y: y(value) + 4, class: "axis", "text-anchor": "end" }, formatAxis(value)));
  }
  chart.append(svg("text", { x: PAD.left, y: HEIGHT - 4, class: "axis" }, clock(from)));
  chart.append(svg("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, class: "axis", "text-anchor": "end" }, clock(to)));
  series.forEach((line, index) => {
    const points = line.points.filter(([, value]) => Number.isFinite(value));
    if (!points.length) return;
    const path = points.map(([ms, value], i) => `${i ? "L" : "M"}${x(ms).toFixed(1)},${y(value).toFixed(1)}`).join(" ");
    chart.append(svg("path", { d: path, class: `line series-${index % 6}`, "data-series": line.name }));
  });
  const legend = document.createElement("div");
  legend.className = "legend";
  series.forEach((line, index) => {
    const item = document.createElement("span");
    item.className = `key series-${index % 6}`;
    const last = line.points.length ? line.points[line.points.length - 1][1] : null;
    item.textContent = `${line.name}${last === null || last === undefined ? "" : `: ${formatAxis(last)}${unit ? ` ${unit}` : ""}`}`;
    legend.append(item);
  });
  const figure = document.createElement("figure");
  figure.className = "chart-card";
  const caption = document.createElement("figcaption");
  caption.textContent = unit ? `${title} (${unit})` : title;
  figure.append(caption, chart, legend);
  return figure;
}

function formatAxis(value) {
  if (value === 0) return "0";
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString();
  return Number(value.toFixed(2)).toLocaleString();
}
