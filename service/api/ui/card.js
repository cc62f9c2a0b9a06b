// The model card: what GET /v1/models/{name}/versions/{v} says about a model, for people.

import { fmt, short } from "./chart.js";

/** An HTML element with attributes and children (strings become text nodes). */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
  }
  return node;
}

function row(term, ...definition) {
  return h("div", {}, h("dt", { text: term }), h("dd", {}, ...definition));
}

function percent(value) {
  return `${short(value * 100)}%`;
}

function dropoutText(arch) {
  const hidden = arch.dropout.map(short).join(", ");
  const input = arch.input_dropout > 0 ? `inputs ${short(arch.input_dropout)}; ` : "";
  const style = arch.style === "inverted"
    ? "inverted (kept units scaled by 1/(1-p) in training)"
    : "classic (weights scaled by 1-p at test time)";
  return `${input}hidden ${hidden}; ${style}`;
}

// `validation_coverage_95` -> [95, value]; ECE keys -> a sentence; the rest stay as metrics.
function calibration(metrics) {
  const items = [];
  for (const [key, value] of Object.entries(metrics)) {
    const coverage = key.match(/^(\w+?)_coverage_(\d+)$/);
    if (coverage) {
      items.push(`${coverage[2]}% interval covers ${percent(value)} of ${coverage[1]} rows`);
    } else if (/_mc_ece$/.test(key)) {
      items.push(`expected calibration error (MC mean) ${fmt(value, 3)}`);
    } else if (/_ece$/.test(key)) {
      items.push(`expected calibration error (deterministic) ${fmt(value, 3)}`);
    }
  }
  return items;
}

function metricTable(metrics) {
  const plain = Object.entries(metrics).filter(([key]) => !/_coverage_\d+$|_ece$/.test(key));
  if (!plain.length) return null;
  return h("div", { class: "metrics" },
    h("h4", { id: "metrics-title", text: "Metrics recorded at training" }),
    h("table", { "aria-labelledby": "metrics-title" }, h("tbody", {}, plain.map(([key, value]) =>
      h("tr", {}, h("th", { scope: "row", text: key.replaceAll("_", " ") }), h("td", { text: fmt(value) }))))));
}

/** The card for one model version (a ModelDetail). */
export function modelCard(detail) {
  const arch = detail.architecture;
  const widths = [detail.features.length, ...arch.hidden, detail.outputs.length].join(" → ");
  const facts = h("dl", { class: "facts" },
    row("Task", detail.task === "regression" ? "regression" : `classification, ${detail.outputs.length} classes`),
    row(detail.task === "regression" ? "Outputs" : "Classes", detail.outputs.join(", ")),
    row("Features", h("details", {},
      h("summary", { text: `${detail.features.length} features` }),
      h("p", { class: "feature-list", text: detail.features.join(", ") }))),
    row("Network", `${widths} units, ${arch.activation}`),
    row("Dropout", dropoutText(arch)),
    detail.tau
      ? row("tau", detail.tau.map((t) => `${fmt(t)} (noise std ${fmt(1 / Math.sqrt(t))})`).join(", "))
      : null,
    row("MC device", detail.device),
    row("Created", detail.created_at.slice(0, 10)),
  );
  const calib = calibration(detail.metrics);
  return h("div", { class: "card" },
    h("h3", { text: `${detail.name}, version ${detail.version}` }),
    detail.description ? h("p", { class: "description", text: detail.description }) : null,
    facts,
    metricTable(detail.metrics),
    calib.length
      ? h("div", { class: "calibration" },
        h("h4", { text: "Calibration on held-out rows" }),
        h("ul", {}, calib.map((text) => h("li", { text }))))
      : null,
  );
}
