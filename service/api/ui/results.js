// The two answers side by side: deterministic (ONNX) and Monte-Carlo dropout, with charts.

import { h } from "./card.js";
import { bars, fmt, histogram, lines, short } from "./chart.js";

function figure(chart, caption) {
  return h("figure", {}, chart, h("figcaption", {}, ...caption));
}

function figures(...items) {
  return h("div", { class: "figures" }, ...items);
}

function swatch(kind) {
  return h("span", { class: `swatch ${kind}`, "aria-hidden": "true" });
}

function value(number, attrs = {}) {
  // <data> keeps the exact number the API returned next to its rounded display.
  return h("data", { value: String(number), ...attrs }, fmt(number));
}

/** Running mean of column `k` of the passes, with ± 2 standard errors of that mean. */
function running(samples, k) {
  const means = [];
  const low = [];
  const high = [];
  let mean = 0;
  let m2 = 0;
  samples.forEach((pass, i) => {
    const t = i + 1;
    const delta = pass[k] - mean;
    mean += delta / t;
    m2 += delta * (pass[k] - mean);
    const se = t > 1 ? Math.sqrt(m2 / (t - 1) / t) : 0;
    means.push(mean);
    low.push(mean - 2 * se);
    high.push(mean + 2 * se);
  });
  return { means, low, high };
}

function regressionOutput(name, k, det, mc, meta, width) {
  const samples = mc.samples ? mc.samples.map((pass) => pass[k]) : [];
  const mass = `${short(meta.interval * 100)}%`;
  const facts = h("dl", { class: "answers" },
    h("div", { class: "answer det" }, h("dt", {}, swatch("det"), "Deterministic (ONNX)"),
      h("dd", {}, value(det, { class: "det-value", "data-output": name }))),
    h("div", { class: "answer mc" }, h("dt", {}, swatch("mc"), `MC dropout mean (T = ${meta.samples})`),
      h("dd", {}, value(mc.mean[k], { class: "mc-mean" }))),
    h("div", { class: "answer" }, h("dt", { text: `${mass} interval` }),
      h("dd", {}, value(mc.lower[k], { class: "mc-lower" }), " to ", value(mc.upper[k], { class: "mc-upper" }))),
    h("div", { class: "answer" }, h("dt", { text: "std: total (epistemic, aleatoric)" }),
      h("dd", { text: `${fmt(mc.std[k])} (${fmt(Math.sqrt(mc.epistemic_variance[k]))}, ${fmt(Math.sqrt(mc.aleatoric_variance[k]))})` })),
  );
  const charts = [figure(
    histogram({
      width, samples, deterministic: det, mean: mc.mean[k], lower: mc.lower[k], upper: mc.upper[k],
      xLabel: name,
      label: `${name}: histogram of ${samples.length} pass outputs; MC mean ${fmt(mc.mean[k])}, `
        + `${mass} interval ${fmt(mc.lower[k])} to ${fmt(mc.upper[k])}; deterministic ${fmt(det)}`,
    }),
    [swatch("hist"), "outputs of the T passes (epistemic spread); ", swatch("mc"),
      `MC mean and ${mass} predictive interval (passes plus noise 1/tau); `, swatch("det"), "deterministic"],
  )];
  if (samples.length > 1) {
    const run = running(mc.samples, k);
    charts.push(figure(
      lines({
        width, series: [{ values: run.means, band: [run.low, run.high] }],
        references: [{ value: det, className: "det-ref" }], yLabel: name,
        label: `${name}: running mean of the first t passes, settling at ${fmt(mc.mean[k])} by t = ${samples.length}`,
      }),
      [swatch("mc"), "mean of the first t passes, ± 2 standard errors: how the estimate settles as T grows; ",
        swatch("det"), "deterministic"],
    ));
  }
  return h("article", { class: "output" }, h("h3", { text: name }), facts, figures(...charts));
}

function classification(classes, det, mc, meta, width) {
  const most = Math.log(classes.length); // the entropy of K equally likely classes
  const best = classes.indexOf(mc.label);
  const detBest = classes.indexOf(det.label);
  const facts = h("dl", { class: "answers" },
    h("div", { class: "answer det" }, h("dt", {}, swatch("det"), "Deterministic (ONNX)"),
      h("dd", {}, h("span", { class: "det-label", text: det.label }), " with p = ",
        value(det.probabilities[detBest], { class: "det-value" }))),
    h("div", { class: "answer mc" }, h("dt", {}, swatch("mc"), `MC dropout (T = ${meta.samples})`),
      h("dd", {}, h("span", { class: "mc-label", text: mc.label }), " with mean p = ",
        value(mc.probabilities[best]), " ± ", value(mc.std[best]))),
    h("div", { class: "answer" }, h("dt", { text: "predictive entropy" }),
      h("dd", {}, value(mc.predictive_entropy), ` nats of at most ln ${classes.length} = ${fmt(most)}`)),
    h("div", { class: "answer" }, h("dt", { text: "mutual information (passes disagreeing)" }),
      h("dd", {}, value(mc.mutual_information, { class: "mutual-information" }),
        ` nats of at most ${fmt(most)} (${short(100 * mc.mutual_information / most)}%)`)),
  );
  const meaning = h("p", {
    class: "hint mi-meaning",
    text: "A high mutual information (towards ln K) means the passes disagree: the model itself "
      + "is unsure of this row, for instance because it is unlike the training data. A high "
      + "entropy with a low mutual information means the passes agree that the row is ambiguous.",
  });
  const charts = [figure(
    bars({
      width, labels: classes, values: mc.probabilities, spread: mc.std, marks: det.probabilities,
      label: `mean class probabilities over ${meta.samples} passes; highest ${mc.label} at ${fmt(mc.probabilities[best])}`,
    }),
    [swatch("mc"), "mean probability over the T passes, whisker ± std across passes; ", swatch("det"), "deterministic"],
  )];
  if (mc.samples && mc.samples.length > 1) {
    const top = classes.map((_, i) => i).sort((a, b) => mc.probabilities[b] - mc.probabilities[a]).slice(0, 3);
    charts.push(figure(
      lines({
        width, series: top.map((i) => ({ values: running(mc.samples, i).means })), yDomain: [0, 1],
        yLabel: "mean p",
        label: `running mean probability of classes ${top.map((i) => classes[i]).join(", ")} over the first t passes`,
      }),
      top.flatMap((i, n) => [swatch(`series-${n}`), `class ${classes[i]}${n < top.length - 1 ? ", " : ""}`])
        .concat([": mean probability over the first t passes, settling as T grows"]),
    ));
  }
  return h("article", { class: "output" }, h("h3", { text: "class probabilities" }), facts, meaning, figures(...charts));
}

/** A summary sentence (for the live region) and one article per output (or the class chart). */
export function renderResults(detail, predicted, mc, width) {
  const row = mc.predictions[0];
  const det = predicted.predictions[0];
  const meta = { samples: mc.samples, interval: mc.interval };
  let summary;
  let body;
  if (detail.task === "regression") {
    summary = detail.outputs.map((name, k) => `${name}: deterministic ${fmt(det[k])}, MC mean `
      + `${fmt(row.mean[k])}, ${short(mc.interval * 100)}% interval ${fmt(row.lower[k])} to ${fmt(row.upper[k])}`).join("; ");
    body = detail.outputs.map((name, k) => regressionOutput(name, k, det[k], row, meta, width));
  } else {
    summary = `deterministic class ${det.label}; MC class ${row.label}, mutual information ${fmt(row.mutual_information)} nats`;
    body = [classification(detail.outputs, det, row, meta, width)];
  }
  return { summary: `${summary} (T = ${mc.samples}, seed ${mc.seed}, ${mc.device}).`, nodes: body };
}
