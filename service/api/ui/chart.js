// A few SVG charts drawn by hand: a histogram with an interval, bars with spread, running lines.
// Charts are sized in CSS pixels of their container (width), so text stays readable when narrow.

const NS = "http://www.w3.org/2000/svg";
const PAD = { left: 48, right: 12, top: 24, bottom: 36 };

/** An SVG element with attributes and children (strings become text nodes). */
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

/** A number for people: `digits` significant digits, no exponent for everyday magnitudes. */
export function fmt(value, digits = 4) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return value.toExponential(digits - 1);
  if (abs >= 10 ** digits) return String(Math.round(value));
  return value.toPrecision(digits);
}

/** A short label: 3 significant digits at most, no trailing zeros (0.05, not 0.0500). */
export function short(value) {
  return String(Number(value.toPrecision(3)));
}

function linear(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** About `count` round tick values covering [lo, hi]. */
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function frame(width, height, label) {
  return svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": label,
    class: "chart",
  });
}

function axes(root, x, y, xTicks, yTicks, box, xLabel, yLabel) {
  const [x0, x1, y0, y1] = box;
  root.append(svg("line", { x1: x0, x2: x1, y1: y0, y2: y0, class: "axis" }));
  root.append(svg("line", { x1: x0, x2: x0, y1: y0, y2: y1, class: "axis" }));
  for (const t of xTicks) {
    root.append(svg("line", { x1: x(t), x2: x(t), y1: y0, y2: y0 + 4, class: "axis" }));
    root.append(svg("text", { x: x(t), y: y0 + 16, class: "tick", "text-anchor": "middle" }, short(t)));
  }
  for (const t of yTicks) {
    root.append(svg("line", { x1: x0, x2: x1, y1: y(t), y2: y(t), class: "grid" }));
    root.append(svg("text", { x: x0 - 6, y: y(t) + 4, class: "tick", "text-anchor": "end" }, short(t)));
  }
  if (xLabel) {
    root.append(svg("text", { x: (x0 + x1) / 2, y: y0 + 31, class: "label", "text-anchor": "middle" }, xLabel));
  }
  if (yLabel) {
    root.append(svg("text", { x: 4, y: 13, class: "label" }, yLabel));
  }
}

/**
 * Histogram of the T pass outputs, the MC mean with its interval as an error bar, and the
 * deterministic value as a dashed line.
 */
export function histogram({ width, samples, deterministic, mean, lower, upper, xLabel, label }) {
  const height = 200;
  const box = [PAD.left, width - PAD.right, height - PAD.bottom, PAD.top];
  const lo = Math.min(lower, deterministic, ...samples);
  const hi = Math.max(upper, deterministic, ...samples);
  const margin = (hi - lo) * 0.05 || 1;
  const x = linear(lo - margin, hi + margin, box[0], box[1]);
  const bins = Math.max(5, Math.min(40, Math.round(Math.sqrt(samples.length) * 2)));
  const counts = new Array(bins).fill(0);
  const binWidth = (hi + margin - (lo - margin)) / bins;
  for (const s of samples) {
    counts[Math.min(bins - 1, Math.floor((s - (lo - margin)) / binWidth))] += 1;
  }
  const top = Math.max(...counts, 1);
  const barTop = box[3] + 22; // room above the bars for the interval
  const y = linear(0, top, box[2], barTop);
  const root = frame(width, height, label);
  axes(root, x, y, ticks(lo - margin, hi + margin, Math.max(3, Math.floor(width / 90))),
    ticks(0, top, 3).filter((t) => Number.isInteger(t)), box, xLabel, "passes");
  counts.forEach((count, i) => {
    if (!count) return;
    const left = x(lo - margin + i * binWidth);
    root.append(svg("rect", {
      x: left + 0.5, y: y(count), width: Math.max(1, x(lo - margin + (i + 1) * binWidth) - left - 1),
      height: box[2] - y(count), class: "hist-bar",
    }));
  });
  const iy = box[3] + 10;
  root.append(svg("line", {
    x1: x(lower), x2: x(upper), y1: iy, y2: iy, class: "interval",
    "data-lower": lower, "data-upper": upper,
  }));
  for (const end of [lower, upper]) {
    root.append(svg("line", { x1: x(end), x2: x(end), y1: iy - 6, y2: iy + 6, class: "interval" }));
  }
  root.append(svg("circle", { cx: x(mean), cy: iy, r: 4.5, class: "mc-mark" }));
  root.append(svg("line", {
    x1: x(deterministic), x2: x(deterministic), y1: box[2], y2: box[3], class: "det-line",
  }));
  return root;
}

/** One bar per class: mean probability, a whisker of ± std, and a tick at the deterministic value. */
export function bars({ width, labels, values, spread, marks, label }) {
  const height = 220;
  const box = [PAD.left, width - PAD.right, height - PAD.bottom, PAD.top];
  const y = linear(0, 1, box[2], box[3]);
  const slot = (box[1] - box[0]) / labels.length;
  const x = (i) => box[0] + slot * (i + 0.5);
  const root = frame(width, height, label);
  axes(root, (v) => v, y, [], ticks(0, 1, 4), box, "", "probability");
  labels.forEach((name, i) => {
    const w = Math.max(2, slot * 0.6);
    const v = values[i];
    root.append(svg("rect", {
      x: x(i) - w / 2, y: y(v), width: w, height: Math.max(0, box[2] - y(v)),
      class: "prob-bar", "data-label": name, "data-value": v,
    }, svg("title", {}, `class ${name}: ${fmt(v)} ± ${fmt(spread[i])}`)));
    if (spread[i] > 0) {
      const a = y(Math.min(1, v + spread[i]));
      const b = y(Math.max(0, v - spread[i]));
      root.append(svg("line", { x1: x(i), x2: x(i), y1: a, y2: b, class: "whisker" }));
      root.append(svg("line", { x1: x(i) - 4, x2: x(i) + 4, y1: a, y2: a, class: "whisker" }));
    }
    if (marks) {
      root.append(svg("line", {
        x1: x(i) - w / 2 - 2, x2: x(i) + w / 2 + 2, y1: y(marks[i]), y2: y(marks[i]),
        class: "det-tick",
      }));
    }
    root.append(svg("text", { x: x(i), y: box[2] + 16, class: "tick", "text-anchor": "middle" }, name));
  });
  root.append(svg("text", { x: (box[0] + box[1]) / 2, y: box[2] + 31, class: "label", "text-anchor": "middle" }, "class"));
  return root;
}

/**
 * Lines over t = 1..T (one per series), each with an optional band, and optional horizontal
 * reference lines (e.g. the deterministic value).
 */
export function lines({ width, series, references = [], yDomain, yLabel, label }) {
  const height = 200;
  const box = [PAD.left, width - PAD.right, height - PAD.bottom, PAD.top];
  const T = series[0].values.length;
  const all = series.flatMap((s) => [...s.values, ...(s.band ? [...s.band[0], ...s.band[1]] : [])]);
  all.push(...references.map((r) => r.value));
  let [lo, hi] = yDomain || [Math.min(...all), Math.max(...all)];
  if (!yDomain) {
    const margin = (hi - lo) * 0.05 || Math.abs(hi) * 0.05 || 1;
    [lo, hi] = [lo - margin, hi + margin];
  }
  const x = linear(1, Math.max(2, T), box[0], box[1]);
  const y = linear(lo, hi, box[2], box[3]);
  const root = frame(width, height, label);
  const xTicks = ticks(1, Math.max(2, T), Math.max(3, Math.floor(width / 90)))
    .filter((t) => Number.isInteger(t) && t >= 1);
  axes(root, x, y, xTicks, ticks(lo, hi, 4), box, "passes t", yLabel);
  const path = (vals) => vals.map((v, i) => `${i ? "L" : "M"}${x(i + 1).toFixed(1)},${y(v).toFixed(1)}`).join("");
  series.forEach((s, k) => {
    if (s.band) {
      const [low, high] = s.band;
      const back = high.map((v, i) => `L${x(high.length - i).toFixed(1)},${y(high[high.length - 1 - i]).toFixed(1)}`);
      root.append(svg("path", { d: `${path(low)}${back.join("")}Z`, class: `band series-${k}` }));
    }
    root.append(svg("path", { d: path(s.values), class: `run-line series-${k}` }));
  });
  for (const r of references) {
    root.append(svg("line", { x1: box[0], x2: box[1], y1: y(r.value), y2: y(r.value), class: r.className }));
  }
  return root;
}
