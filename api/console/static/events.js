// A job's server-sent events (GET /jobs/<id>/events), read with fetch rather than EventSource: EventSource can't
// send the Authorization header. After a dropped connection it resumes with Last-Event-ID, so no token is shown
// twice or lost.

import { api, ApiError, askForKey, authHeaders } from "./api.js";
import { sleep } from "./dom.js";

const RECONNECT_MS = 1000;
const POLL_MS = 500;

// Calls onStatus({status}), onToken({text}) as they come, then onCompleted(job) once; resolves after that.
export async function followJob(jobId, { onStatus, onToken, onCompleted, signal }) {
  let lastEventId = null;
  while (!signal?.aborted) {
    const headers = { Accept: "text/event-stream", ...authHeaders() };
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    let response;
    try {
      response = await fetch(`/jobs/${jobId}/events`, { headers, signal, cache: "no-store" });
    } catch (error) {
      if (signal?.aborted) return;
      await sleep(RECONNECT_MS);
      continue;
    }
    if (response.status === 401) {
      await askForKey((await ApiError.from(response)).message);
      continue;
    }
    if (response.status === 404 && !(await jobExists(jobId))) throw new ApiError(404, { message: "no such job" });
    if (response.status === 404) return pollJob(jobId, { onStatus, onCompleted, signal });
    if (!response.ok) throw await ApiError.from(response);
    const finished = await readEvents(response.body, signal, (event) => {
      if (event.id) lastEventId = event.id;
      const data = event.data ? JSON.parse(event.data) : {};
      if (event.type === "status") onStatus?.(data);
      else if (event.type === "token") onToken?.(data);
      else if (event.type === "completed") {
        onCompleted?.(data);
        return true;
      }
      return false;
    });
    if (finished) return;
    await sleep(RECONNECT_MS);
  }
}

async function jobExists(jobId) {
  try {
    await api(`/jobs/${jobId}`);
    return true;
  } catch (error) {
    if (error.status === 404) return false;
    throw error;
  }
}

// An API without the events route (an older release): the job is polled, and its text shown when it ends.
async function pollJob(jobId, { onStatus, onCompleted, signal }) {
  let last = null;
  while (!signal?.aborted) {
    const job = await api(`/jobs/${jobId}`, { signal });
    if (job.status !== last) onStatus?.({ status: job.status });
    last = job.status;
    if (["succeeded", "failed", "canceled"].includes(job.status)) {
      onCompleted?.(job);
      return;
    }
    await sleep(POLL_MS);
  }
}

// Parses the text/event-stream body, calling onEvent({type, data, id}) for each event; resolves true as soon as
// onEvent returns true, false when the body ends first.
async function readEvents(body, signal, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
        if (line === "") {
          if (event.data.length || event.id) {
            const stop = onEvent({ type: event.type, data: event.data.join("\n"), id: event.id });
            if (stop) return true;
          }
          event = { type: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // a keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
      }
    }
  } catch (error) {
    if (signal?.aborted) return true;
    return false; // the connection broke: the caller resumes after the last id
  } finally {
    reader.cancel().catch(() => {});
  }
}
