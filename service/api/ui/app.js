// The playground: pick a model, edit a row, see its deterministic and MC-dropout answers.
// Values are sent as typed: the API checks them, and its own message is shown at the field.

import { api, ApiError, saveKey, savedKey } from "./api.js";
import { h, modelCard } from "./card.js";
import { imageSide, pixelPicture } from "./image.js";
import { renderResults } from "./results.js";

const $ = (id) => document.getElementById(id);
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
const DEFAULT_T = 200;
const WIDE = 760; // px; keep in step with .figures in style.css
const GAP = 16;

const state = {
  key: savedKey(),
  models: [],
  detail: null,
  example: 0,
  run: 0, // id of the latest run; answers of older runs are dropped
  shown: null, // the last answers drawn, redrawn when the width changes
  picture: null, // the image drawing of the fields, for models whose inputs are pixels
  width: 0,
};

// ---- errors next to the field at fault ----------------------------------------------------

function clearErrors() {
  for (const node of document.querySelectorAll("#inputs .error")) node.textContent = "";
  for (const node of document.querySelectorAll("#inputs [aria-invalid]")) node.removeAttribute("aria-invalid");
}

function featureInput(name) {
  return [...document.querySelectorAll("#features input")].find((input) => input.name === name);
}

// The API names what is wrong: "instances[0], feature 'cement': ...", "'samples': ...",
// "samples must be ...", "rows x samples ...". Anything else goes next to the submit button.
function fieldFor(message) {
  const feature = message.match(/feature(?:\(s\))? '([^']+)'/);
  if (feature && featureInput(feature[1])) return featureInput(feature[1]);
  const field = message.match(/'(samples|seed|interval|return_samples)'/)
    || message.match(/^(samples|return_samples|rows x samples)\b/);
  if (field) return $(field[1] === "seed" || field[1] === "interval" ? field[1] : "samples");
  return null;
}

function showError(error) {
  if (error.status === 401) {
    $("key-box").open = true;
    $("key-error").textContent = error.message;
    return $("api-key");
  }
  const field = fieldFor(error.message);
  const target = field ? $(field.getAttribute("aria-describedby")) : $("form-error");
  if (!target.textContent.includes(error.message)) {
    target.textContent = target.textContent ? `${target.textContent} ${error.message}` : error.message;
  }
  if (field) field.setAttribute("aria-invalid", "true");
  return field;
}

// ---- model choice and card -------------------------------------------------------------------

function setStatus(message, retry) {
  const status = $("status");
  status.replaceChildren(message);
  if (retry) {
    const button = h("button", { type: "button", class: "link" }, "Try again");
    button.addEventListener("click", retry);
    status.append(" ", button);
  }
}

async function loadModels() {
  setStatus("Loading the model list…");
  try {
    state.models = (await api.models(state.key)).models;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      $("key-box").open = true;
      $("key-error").textContent = error.message;
      setStatus("The model endpoints need an API key: enter it below.");
      $("api-key").focus();
    } else {
      setStatus(`Could not list the models: ${error.message}`, loadModels);
    }
    return;
  }
  if (!state.models.length) {
    setStatus("No model is loaded yet (the server may still be loading).", loadModels);
    return;
  }
  setStatus("");
  const wanted = new URLSearchParams(location.hash.slice(1)).get("model");
  $("model").replaceChildren(...state.models.map((m) =>
    h("option", { value: m.name, selected: m.name === wanted }, `${m.name} (${m.task})`)));
  await chooseModel();
}

async function chooseModel() {
  const summary = state.models.find((m) => m.name === $("model").value);
  $("version").replaceChildren(...summary.versions.map((v) =>
    h("option", { value: v, selected: v === summary.latest }, String(v))));
  await loadDetail();
}

async function loadDetail() {
  const name = $("model").value;
  const version = $("version").value;
  const ticket = ++state.run;
  $("card").setAttribute("aria-busy", "true");
  let detail;
  try {
    detail = await api.model(name, version, state.key);
  } catch (error) {
    if (ticket === state.run) setStatus(`Could not read ${name} version ${version}: ${error.message}`, loadDetail);
    return;
  } finally {
    $("card").removeAttribute("aria-busy");
  }
  if (ticket !== state.run) return;
  setStatus("");
  history.replaceState(null, "", `#model=${encodeURIComponent(name)}`);
  state.detail = detail;
  $("card").replaceChildren(modelCard(detail));
  buildForm(detail);
  await predict();
}

// ---- the input form --------------------------------------------------------------------------

function buildForm(detail) {
  const fields = detail.features.map((name, i) => h("div", { class: "feature" },
    h("label", { for: `f-${i}`, text: name }),
    h("input", {
      id: `f-${i}`, name, type: "text", inputmode: "decimal", autocomplete: "off",
      spellcheck: "false", "aria-describedby": `f-${i}-error`,
    }),
    h("p", { id: `f-${i}-error`, class: "error" })));
  $("features").replaceChildren(...fields);
  $("features").classList.toggle("dense", detail.features.length > 16);
  const side = imageSide(detail.features);
  state.picture = side ? pixelPicture(side, detail.examples, (i) => $(`f-${i}`), () => {}) : null;
  $("picture").replaceChildren(...(state.picture ? [state.picture.node, h("figcaption", {
    text: `The ${side}x${side} pixels as an image; click a pixel to turn it on or off.`,
  })] : []));
  $("picture").hidden = !state.picture;
  const limits = detail.limits;
  // Samples come back (for the histogram) up to max_return_samples; past it only the summary.
  const top = Math.min(limits.max_samples, limits.max_work,
    limits.max_return_samples > 1 ? limits.max_return_samples : 2000);
  $("samples").max = String(top);
  $("samples").value = String(Math.min(DEFAULT_T, top));
  $("samples-value").value = $("samples").value;
  $("interval-field").hidden = detail.task !== "regression";
  $("random").disabled = detail.examples.length < 2;
  $("example-note").textContent = detail.examples.length > 1
    ? `Prefilled with one of ${detail.examples.length} held-out rows recorded with the model.`
    : "Prefilled with the model's example row.";
  fillExample(0);
  clearErrors();
}

function fillExample(index) {
  state.example = index;
  const row = state.detail.examples[index];
  state.detail.features.forEach((_, i) => { $(`f-${i}`).value = String(row[i]); });
  if (state.picture) state.picture.redraw();
}

function randomExample() {
  const count = state.detail.examples.length;
  const next = (state.example + 1 + Math.floor(Math.random() * (count - 1))) % count;
  fillExample(next);
  predict();
}

// A typed number is sent as a number; anything else as the text itself, for the API to judge.
function typed(text) {
  const trimmed = text.trim();
  return NUMBER.test(trimmed) && Number.isFinite(Number(trimmed)) ? Number(trimmed) : text;
}

function requestBodies(detail) {
  const row = {};
  detail.features.forEach((name, i) => { row[name] = typed($(`f-${i}`).value); });
  const samples = Number($("samples").value);
  const mc = { instances: [row], samples, return_samples: samples <= detail.limits.max_return_samples };
  const seed = $("seed").value.trim();
  if (seed) mc.seed = /^\d+$/.test(seed) && Number.isSafeInteger(Number(seed)) ? Number(seed) : seed;
  if (detail.task === "regression") mc.interval = Number($("interval").value);
  return [{ instances: [row] }, mc];
}

// ---- running both modes ----------------------------------------------------------------------

function draw() {
  const { detail, predicted, mc } = state.shown;
  state.width = $("results").clientWidth;
  // Two charts side by side when there is room (see .figures in style.css), else one a row.
  const column = state.width >= WIDE ? (state.width - GAP) / 2 : state.width;
  const width = Math.floor(Math.max(260, Math.min(720, column)));
  const { summary, nodes } = renderResults(detail, predicted, mc, width);
  $("results").replaceChildren(...nodes);
  return summary;
}

async function predict(event) {
  if (event) event.preventDefault();
  const detail = state.detail;
  if (!detail) return;
  const ticket = ++state.run;
  const [body, mcBody] = requestBodies(detail);
  clearErrors();
  const results = $("results");
  results.dataset.state = "running";
  results.setAttribute("aria-busy", "true");
  const answers = await Promise.allSettled([
    api.predict(detail.name, detail.version, body, state.key),
    api.uncertainty(detail.name, detail.version, mcBody, state.key),
  ]);
  if (ticket !== state.run) return;
  results.removeAttribute("aria-busy");
  const failed = answers.filter((a) => a.status === "rejected").map((a) => a.reason);
  if (failed.length) {
    const fields = failed.map((error) => showError(error instanceof ApiError ? error : new ApiError(0, String(error))));
    fields.find(Boolean)?.focus();
    state.shown = null;
    results.replaceChildren();
    results.dataset.state = "error";
    $("summary").textContent = "The API refused the request; its message is shown next to the field at fault.";
    return;
  }
  state.shown = { detail, predicted: answers[0].value, mc: answers[1].value };
  const summary = draw();
  results.dataset.model = detail.name;
  results.dataset.version = String(detail.version);
  results.dataset.state = "done";
  $("summary").textContent = summary;
}

// ---- wiring ----------------------------------------------------------------------------------

function start() {
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = $("api-key").value.trim();
    saveKey(state.key);
    $("key-error").textContent = "";
    loadModels();
  });
  $("key-forget").addEventListener("click", () => {
    state.key = "";
    $("api-key").value = "";
    saveKey("");
  });
  $("choose").addEventListener("submit", (event) => event.preventDefault());
  $("model").addEventListener("change", chooseModel);
  $("version").addEventListener("change", loadDetail);
  $("inputs").addEventListener("submit", predict);
  $("random").addEventListener("click", randomExample);
  $("features").addEventListener("input", () => { if (state.picture) state.picture.redraw(); });
  $("samples").addEventListener("input", () => { $("samples-value").value = $("samples").value; });
  // Arrow keys fire a change per step: run once the value rests.
  let settle = 0;
  $("samples").addEventListener("change", () => {
    clearTimeout(settle);
    settle = setTimeout(() => predict(), 250);
  });
  $("interval").addEventListener("change", () => predict());
  new ResizeObserver(() => {
    if (state.shown && Math.abs($("results").clientWidth - state.width) > 24) draw();
  }).observe($("results"));
  loadModels();
}

start();
