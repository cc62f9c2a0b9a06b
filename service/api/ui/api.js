// Calls to dropserve's JSON API, from the same origin as the page (the CSP allows nothing else).
// Paths are relative to the page (/ui/), so a proxy prefix in front of dropserve is kept.

const KEY_STORAGE = "dropserve.apiKey";

/** An API error: the HTTP status and the server's own message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function savedKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return ""; // storage disabled: the key lives only as long as the input holds it
  }
}

export function saveKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled; nothing to keep
  }
}

function url(path) {
  return new URL(`../${path}`, document.baseURI).toString();
}

async function call(path, body, key) {
  const headers = { Accept: "application/json" };
  if (key) headers["X-API-Key"] = key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url(path), {
      method: body === undefined ? "GET" : "POST",
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message}); is dropserve running?`);
  }
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    // not JSON: reported below with the status
  }
  if (!response.ok) {
    const message = payload && typeof payload.error === "string"
      ? payload.error
      : `the server answered ${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return payload;
}

function modelPath(name, version) {
  const base = `v1/models/${encodeURIComponent(name)}`;
  return version ? `${base}/versions/${encodeURIComponent(version)}` : base;
}

export const api = {
  models: (key) => call("v1/models", undefined, key),
  model: (name, version, key) => call(modelPath(name, version), undefined, key),
  predict: (name, version, body, key) => call(`${modelPath(name, version)}/predict`, body, key),
  uncertainty: (name, version, body, key) =>
    call(`${modelPath(name, version)}/uncertainty`, body, key),
};
