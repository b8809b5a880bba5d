// Charts over the last hour, from the service's own samples (GET /metrics/history): queue depth, jobs in flight,
// tokens/s, and each GPU worker's VRAM (allocated and reserved) and RAM.

import { api, ApiError } from "./api.js";
import { clear, errorBox, every, h } from "./dom.js";
import { lineChart } from "./line_chart.js";

const REFRESH_MS = 5000;
const HOUR_MS = 3600_000;
const MIN_SPAN_MS = 5 * 60_000;
const NOT_ADMIN =
  "The charts show the whole service's load, so only an admin may read them: a key of ADMIN_API_KEYS (or, with " +
  "no API keys set, a browser on the service's own machine). Jobs and batches work as before.";

function toMs(timestamp) {
  return typeof timestamp === "number" ? timestamp * 1000 : Date.parse(timestamp);
}

// The history as chart series: one per figure, and per worker for the memory charts.
export function seriesFrom(history) {
  const samples = history.samples ?? [];
  const times = samples.map((sample) => toMs(sample.timestamp));
  const one = (name, pick) => [{ name, points: samples.map((sample, i) => [times[i], pick(sample)]) }];
  const workerNames = [...new Set(samples.flatMap((sample) => (sample.workers ?? []).map((worker) => worker.name)))];
  const perWorker = (field, label) =>
    workerNames.map((name) => ({
      name: `${name} ${label}`.trim(),
      points: samples
        .map((sample, i) => [times[i], (sample.workers ?? []).find((worker) => worker.name === name)?.[field]])
        .filter(([, value]) => value !== undefined && value !== null),
    }));
  return {
    times,
    queue: one("queued", (sample) => sample.queue_depth),
    inFlight: one("running", (sample) => sample.jobs_in_flight),
    tokens: one("tokens/s", (sample) => sample.tokens_per_second),
    vram: [...perWorker("vram_allocated_gb", "allocated"), ...perWorker("vram_reserved_gb", "reserved")],
    ram: perWorker("ram_used_gb", ""),
  };
}

export function chartsView(root) {
  const grid = h("div", { class: "charts", id: "charts" });
  const note = h("p", { class: "muted", id: "charts-note" }, "Loading…");
  clear(root, h("section", { class: "card" }, h("h2", {}, "The last hour"), note, grid));
  const refresh = async () => {
    let history;
    try {
      history = await api("/metrics/history");
    } catch (error) {
      // The service's metrics are an admin's view: another key is told so, and the charts stay empty.
      const notAdmin = error instanceof ApiError && error.status === 403;
      clear(grid);
      clear(note, notAdmin ? h("span", { id: "charts-admin-only" }, NOT_ADMIN) : errorBox(error));
      return;
    }
    const series = seriesFrom(history);
    // The last hour, or since the first sample when there is less (a fresh service's lines stay readable).
    const to = Date.now();
    const from = Math.max(to - HOUR_MS, Math.min(to - MIN_SPAN_MS, ...series.times));
    clear(note, series.times.length ? `${series.times.length} samples.` : "No samples yet: the ops worker takes them.");
    clear(
      grid,
      lineChart({ title: "Queue depth", unit: "jobs", series: series.queue, from, to, id: "chart-queue" }),
      lineChart({ title: "Jobs in flight", unit: "jobs", series: series.inFlight, from, to, id: "chart-in-flight" }),
      lineChart({ title: "Tokens per second", unit: "", series: series.tokens, from, to, id: "chart-tokens" }),
      lineChart({ title: "VRAM per GPU worker", unit: "GB", series: series.vram, from, to, id: "chart-vram" }),
      lineChart({ title: "RAM per GPU worker", unit: "GB", series: series.ram, from, to, id: "chart-ram" }),
    );
  };
  return every(REFRESH_MS, refresh);
}
