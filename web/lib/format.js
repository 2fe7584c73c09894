// How numbers, times and states read on the pages.

export function time(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return date.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function number(value, digits = 4) {
  if (value === undefined || value === null || value === "") return "";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (Number.isInteger(n)) return String(n);
  const text = n.toPrecision(digits);
  return text.includes(".") && !text.includes("e") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

export function epochOf(job) {
  if (job.epoch === undefined || job.epoch === null) return job.epochs ? `0/${job.epochs}` : "";
  return job.epochs ? `${job.epoch}/${job.epochs}` : String(job.epoch);
}

export function progressOf(job) {
  if (job.state === "succeeded") return 1;
  if (!job.epochs || !job.epoch) return 0;
  return Math.min(1, job.epoch / job.epochs);
}

export const jobStates = ["queued", "running", "stopping", "succeeded", "failed", "stopped", "pruned"];
export const activeStates = new Set(["queued", "running", "stopping"]);
export const resumableStates = new Set(["stopped", "failed"]);
