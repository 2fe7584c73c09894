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
