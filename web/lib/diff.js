// Config diffs: a config as {"a.b": value} leaves, and the keys whose
// values differ between two or more configs.

/** {"a.b": value} for every leaf of a config (lists as one value). */
export function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) flatten(child, prefix ? `${prefix}.${key}` : key, out);
  } else if (prefix) {
    out[prefix] = value;
  }
  return out;
}

/** Rows {key, values: [one per config], same} over every config's keys, sorted. */
export function diffAll(configs) {
  const flat = configs.map((c) => flatten(c || {}));
  const keys = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  return keys.map((key) => {
    const values = flat.map((f) => f[key]);
    const texts = values.map((v) => JSON.stringify(v));
    return { key, values, same: texts.every((t) => t === texts[0]) };
  });
}

/** Rows [key, left, right, same] over both configs' keys, sorted. */
export function diff(left, right) {
  return diffAll([left, right]).map(({ key, values, same }) => [key, values[0], values[1], same]);
}

/** A config value as text ("—" when the config has no such key). */
export const show = (v) => (v === undefined ? "—" : typeof v === "string" ? v : JSON.stringify(v));

/** A line diff of two texts' lines: [{op: "same"|"del"|"add", left, right}],
 *  by the longest common subsequence of their lines (as `key` spells them:
 *  e.g. with digits masked, two epochs' lines match). Common head and tail
 *  are taken off first; at most `cap` lines of each are compared (the last
 *  ones; `truncated` says so). */
export function lineDiff(a, b, key = (line) => line, cap = 2000) {
  const truncated = a.length > cap || b.length > cap;
  a = a.slice(-cap);
  b = b.slice(-cap);
  const ka = a.map(key), kb = b.map(key);
  let head = 0;
  while (head < a.length && head < b.length && ka[head] === kb[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && ka[a.length - 1 - tail] === kb[b.length - 1 - tail]) tail += 1;
  const n = a.length - head - tail, m = b.length - head - tail;
  // lcs[i][j]: the common length of a[head+i..] and b[head+j..], one row of m+1 per i.
  const width = m + 1;
  const lcs = new Uint16Array((n + 1) * width);
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      lcs[i * width + j] = ka[head + i] === kb[head + j] ? lcs[(i + 1) * width + j + 1] + 1
        : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const ops = [];
  for (let i = 0; i < head; i += 1) ops.push({ op: "same", left: a[i], right: b[i] });
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && ka[head + i] === kb[head + j]) { ops.push({ op: "same", left: a[head + i], right: b[head + j] }); i += 1; j += 1; }
    else if (j < m && (i === n || lcs[i * width + j + 1] >= lcs[(i + 1) * width + j])) { ops.push({ op: "add", right: b[head + j] }); j += 1; }
    else { ops.push({ op: "del", left: a[head + i] }); i += 1; }
  }
  for (let t = tail; t > 0; t -= 1) ops.push({ op: "same", left: a[a.length - t], right: b[b.length - t] });
  return { ops, truncated };
}

/** Digits masked: lines that differ only in numbers (losses, times, epochs) match. */
export const maskNumbers = (line) => line.replace(/\d+(\.\d+)?(e[-+]?\d+)?/gi, "#");
