// The Hare Run page: pick a photo, send it to the v6 analysis, draw the zones and findings over it.
"use strict";

const $ = (id) => document.getElementById(id);
const ANALYZE = "/api/v6/skin/analyze-hare-run";
const SVG = "http://www.w3.org/2000/svg";
// One colour per detector in pipeline order: harerun.overlay.PALETTE (there BGR).
const PALETTE = ["rgb(0,200,255)", "rgb(255,0,200)", "rgb(0,220,0)", "rgb(255,230,0)",
  "rgb(40,90,255)", "rgb(255,120,0)", "rgb(160,60,255)", "rgb(255,40,40)"];
const ADVICE = "Use a photo where the face is fully visible, well lit and facing the camera.";
// What a person can do about each quality reason code (harerun.results.QUALITY_ISSUES).
const ISSUE_TEXT = {
  NO_FACE: "No face was found.",
  FACE_UNCERTAIN: "The face is hard to make out: show the whole face, uncovered.",
  MULTIPLE_FACES: "There is more than one face: one person per photo.",
  FACE_TOO_SMALL: "The face is small: come closer so that it fills most of the photo.",
  TOO_DARK: "The photo is too dark: use more (even) light.",
  TOO_BRIGHT: "The photo is too bright: avoid direct sun or flash.",
  OVEREXPOSED: "Parts of the face are washed out: avoid direct sun or flash.",
  BLURRY: "The photo is blurred: hold still and let the camera focus on the face.",
  TILTED: "The head is turned or tilted: face the camera.",
  LOW_CONTRAST: "The photo has little contrast: use even, brighter light.",
};
let chosen = null;
let photoUrl = null;
let result = null;
let pipelineInfo = {};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setAdvice(text) {
  $("advice").textContent = text || "";
  $("advice").hidden = !text;
}

// An API key, when the server has HARERUN_API_KEYS: kept for this tab only.
function keyHeaders() {
  const key = $("apikey").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function svg(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// 0 (clear skin) pale yellow ... 100 deep red; the same ramp as .ramp in style.css.
function heatColour(score) {
  const t = Math.max(0, Math.min(100, score)) / 100;
  return `hsl(${60 * (1 - t)} ${100 - 15 * t}% ${70 - 25 * t}%)`;
}

async function loadPipelines() {
  try {
    const r = await fetch("/api/pipelines", { headers: keyHeaders() });
    const body = await r.json();
    if (!r.ok) throw new Error(body.error ? body.error.message : r.statusText);
    const select = $("pipeline");
    for (const p of body.pipelines) {
      pipelineInfo[p.name] = `${p.description} Detectors: ${p.detectors.map((d) => d.id).join(", ")}.`;
      select.add(new Option(p.name, p.name, p.name === body.default, p.name === body.default));
    }
    for (const e of body.experiments) {
      pipelineInfo[e.name] = `A/B experiment: ${e.variants.map((v) => `${v.name} = ${v.pipeline}`).join(", ")}. ` +
        "Give a subject id to keep the same variant.";
      select.add(new Option(`${e.name} (experiment)`, e.name));
    }
    showPipelineInfo();
  } catch (err) {
    setStatus(`Could not load the pipelines: ${err.message}`, true);
  }
}

function showPipelineInfo() {
  $("pipeline-info").textContent = pipelineInfo[$("pipeline").value] || "";
}

function choose(file) {
  if (!file) return;
  chosen = file;
  $("drop-text").textContent = `${file.name} (${Math.round(file.size / 1024)} kB)`;
  $("analyze").disabled = false;
}

function zoneNames(results) {
  const names = [];
  for (const r of Object.values(results)) {
    for (const z of Object.keys(r.zones || {})) if (!names.includes(z)) names.push(z);
  }
  return names;
}

// The photo upright (EXIF orientation applied, as the server does) and at most 2048 px, as a URL
// the page can draw on; null when this browser cannot decode it (TIFF): then the server draws.
async function uprightPhoto(file) {
  try {
    const bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    const k = Math.min(1, 2048 / Math.max(bitmap.width, bitmap.height));
    const canvas = Object.assign(document.createElement("canvas"), {
      width: Math.round(bitmap.width * k), height: Math.round(bitmap.height * k),
    });
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
    return blob ? URL.createObjectURL(blob) : null;
  } catch {
    return null;
  }
}

// What the picture shows: the face with a margin, or the whole photo, in the photo's pixels.
function viewBox(body) {
  const { width, height } = body.image;
  const face = body.face;
  const choice = document.querySelector('input[name="view"]:checked').value;
  if (choice !== "face" || !face) return [0, 0, width, height];
  const [x, y, w, h] = face.box;
  const m = 0.35 * Math.max(w, h);
  const x0 = Math.max(0, x - m), y0 = Math.max(0, y - m);
  return [x0, y0, Math.min(width, x + w + m) - x0, Math.min(height, y + h + m) - y0];
}

function drawMarks(body) {
  const layer = $("marks");
  const { width, height } = body.image;
  const box = viewBox(body);
  layer.setAttribute("viewBox", box.map((v) => Math.round(v)).join(" "));
  const serverDrawn = Boolean(body.overlay_png);
  const href = serverDrawn ? `data:image/png;base64,${body.overlay_png}` : photoUrl;
  layer.replaceChildren(svg("image", { id: "photo", href, x: 0, y: 0, width, height, preserveAspectRatio: "none" }));
  if (serverDrawn) return; // the server's overlay has the marks already
  layer.appendChild(svg("g", { id: "heat-layer" }));
  const face = body.face;
  if (face) {
    const [x, y, w, h] = face.box;
    layer.appendChild(svg("rect", { class: "face", x, y, width: w, height: h }));
  }
  const minR = Math.max(box[2], box[3]) / 120; // a marker stays visible however large the photo
  Object.entries(body.results).forEach(([id, r], i) => {
    const g = svg("g", { class: "det", "data-detector": id });
    const on = document.querySelector(`#toggles input[value="${id}"]`);
    if (on && !on.checked) g.style.display = "none";
    for (const [cx, cy, rad] of (r.evidence && r.evidence.markers) || []) {
      const radius = Math.max(rad, minR);
      g.appendChild(svg("circle", { class: "rim", cx, cy, r: radius }));
      g.appendChild(svg("circle", { class: "ring", cx, cy, r: radius, stroke: PALETTE[i % PALETTE.length] }));
    }
    layer.appendChild(g);
  });
}

function drawHeat(id) {
  const layer = $("heat-layer");
  if (!layer) return; // the server drew the photo (a format this browser cannot show)
  layer.replaceChildren();
  const r = result.results[id];
  const zones = (result.face && result.face.zones) || {};
  for (const [name, z] of Object.entries(zones)) {
    if (!z.visible || z.polygon.length < 3) continue;
    const score = r && r.zones ? r.zones[name] : undefined;
    const poly = svg("polygon", { class: "zone", points: z.polygon.map((p) => p.join(",")).join(" "), "data-zone": name });
    poly.setAttribute("fill", score === undefined ? "none" : heatColour(score));
    const title = svg("title", {});
    title.textContent = score === undefined ? name : `${name.replaceAll("_", " ")}: ${score.toFixed(0)}`;
    poly.appendChild(title);
    layer.appendChild(poly);
  }
  for (const tr of $("scores").tBodies[0].rows) tr.classList.toggle("heat-on", tr.dataset.detector === id);
}

function renderLegend(body) {
  const withZones = Object.entries(body.results).filter(([, r]) => r.status === "ok" && Object.keys(r.zones || {}).length);
  const heat = $("heat");
  heat.replaceChildren(new Option("none", ""));
  for (const [id, r] of withZones) heat.add(new Option(`${id} (${r.score.toFixed(0)})`, id));
  const top = withZones.reduce((best, e) => (!best || e[1].score > best[1].score ? e : best), null);
  heat.value = top ? top[0] : "";

  const toggles = [];
  Object.entries(body.results).forEach(([id, r], i) => {
    const n = ((r.evidence && r.evidence.markers) || []).length;
    if (!n) return;
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = Object.assign(document.createElement("input"), { type: "checkbox", checked: true, value: id });
    box.addEventListener("change", () => {
      $("marks").querySelector(`g.det[data-detector="${id}"]`).style.display = box.checked ? "" : "none";
    });
    const swatch = Object.assign(document.createElement("span"), { className: "swatch" });
    swatch.style.borderColor = PALETTE[i % PALETTE.length];
    label.append(box, swatch, `${id} (${n})`);
    li.appendChild(label);
    toggles.push(li);
  });
  if (!toggles.length) {
    toggles.push(Object.assign(document.createElement("li"), { className: "muted", textContent: "No findings marked." }));
  }
  $("toggles").replaceChildren(...toggles);
}

function render(body) {
  result = body;
  const serverDrawn = Boolean(body.overlay_png);
  $("legend").hidden = serverDrawn;
  const face = body.face;
  $("caption").textContent = `Pipeline ${body.pipeline}` + (body.variant ? ` (variant ${body.variant})` : "") +
    ` · photo ${body.image.width}×${body.image.height}` +
    (face ? ` · face via ${face.backend_used}, confidence ${face.confidence.toFixed(2)}` : "") +
    (serverDrawn ? " · drawn by the server (this browser cannot show the photo's format)" : "");

  const box = $("warnings");
  box.replaceChildren();
  box.appendChild(Object.assign(document.createElement("p"), {
    textContent: `Photo quality ${Math.round(body.quality.score)}/100` + (body.quality.passed ? "" : " — below the gate"),
  }));
  for (const w of body.quality.issues || []) {
    const text = ISSUE_TEXT[w] ? `${ISSUE_TEXT[w]} (${w})` : w;
    box.appendChild(Object.assign(document.createElement("div"), { className: "warning", textContent: text }));
  }
  for (const w of (face && face.warnings) || []) {
    box.appendChild(Object.assign(document.createElement("div"), { className: "warning", textContent: w }));
  }

  const zones = zoneNames(body.results);
  const head = document.createElement("tr");
  for (const h of ["detector", "score", "severity", ...zones.map((z) => z.replaceAll("_", " "))]) {
    head.appendChild(Object.assign(document.createElement("th"), { textContent: h }));
  }
  $("scores").tHead.replaceChildren(head);
  const rows = [];
  for (const [id, r] of Object.entries(body.results)) {
    const tr = document.createElement("tr");
    tr.dataset.detector = id;
    tr.title = "Show its zone scores on the photo";
    tr.appendChild(cell(id));
    if (r.status !== "ok") {
      tr.appendChild(cell(r.status));
      const msg = cell(r.message || "", "message");
      msg.colSpan = 1 + zones.length;
      tr.appendChild(msg);
    } else {
      tr.appendChild(cell(r.score === null ? "–" : r.score.toFixed(1)));
      tr.appendChild(cell(r.severity || "", `severity-${r.severity}`));
      for (const z of zones) tr.appendChild(cell(z in r.zones ? r.zones[z].toFixed(0) : "–"));
    }
    tr.addEventListener("click", () => {
      if ([...$("heat").options].some((o) => o.value === id)) {
        $("heat").value = id;
        drawHeat(id);
      }
    });
    rows.push(tr);
  }
  $("scores").tBodies[0].replaceChildren(...rows);
  $("timing").textContent = `Analysed in ${Math.round(body.timings_ms.total || 0)} ms on the server.`;
  renderLegend(body);
  drawMarks(body);
  if (!serverDrawn) drawHeat($("heat").value);
  $("result").hidden = false;
}

// A refusal a person can act on: what to change about the photo, then the reason codes.
function showError(status, err) {
  const codes = [...new Set([err.code, ...(err.issues || [])].filter(Boolean))];
  if (err.code === "NO_FACE" || err.code === "QUALITY_REJECTED") {
    const head = err.code === "NO_FACE" ? "No face was found in this photo" : "This photo is not good enough to analyse";
    setStatus(`${head} (${codes.join(", ")}).`, true);
    const tips = (err.issues || []).filter((c) => c !== "NO_FACE").map((c) => ISSUE_TEXT[c]).filter(Boolean);
    setAdvice([ADVICE, ...tips].join(" "));
  } else {
    setStatus(`${err.code || status}: ${err.message || "the request failed"}`, true);
  }
}

async function analyze(event) {
  event.preventDefault();
  if (!chosen) return;
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = await uprightPhoto(chosen);
  const form = new FormData();
  form.append("image", chosen, chosen.name);
  form.append("pipeline", $("pipeline").value);
  if ($("subject").value.trim()) form.append("subject_id", $("subject").value.trim());
  form.append("include_overlay", photoUrl ? "false" : "true");
  $("analyze").disabled = true;
  setStatus("Analysing…");
  setAdvice("");
  try {
    const r = await fetch(ANALYZE, { method: "POST", body: form, headers: keyHeaders() });
    const body = await r.json();
    if (!r.ok) {
      showError(r.status, body.error || {});
      $("result").hidden = true;
      return;
    }
    render(body);
    setStatus("Done.");
  } catch (err) {
    setStatus(`The request failed: ${err.message}`, true);
  } finally {
    $("analyze").disabled = false;
  }
}

function download() {
  const { overlay_png: _, ...rest } = result;
  const blob = new Blob([JSON.stringify(rest, null, 2)], { type: "application/json" });
  const a = Object.assign(document.createElement("a"), {
    href: URL.createObjectURL(blob),
    download: `${(chosen ? chosen.name : "photo").replace(/\.[^.]*$/, "")}-harerun.json`,
  });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
$("apikey").value = sessionStorage.getItem("harerun-api-key") || "";
$("apikey").addEventListener("change", () => {
  sessionStorage.setItem("harerun-api-key", $("apikey").value.trim());
  $("pipeline").replaceChildren();
  setStatus("");
  loadPipelines();
});
$("pipeline").addEventListener("change", showPipelineInfo);
$("heat").addEventListener("change", () => drawHeat($("heat").value));
for (const radio of document.querySelectorAll('input[name="view"]')) {
  radio.addEventListener("change", () => {
    if (!result) return;
    drawMarks(result);
    if (!result.overlay_png) drawHeat($("heat").value);
  });
}
$("download").addEventListener("click", download);
$("form").addEventListener("submit", analyze);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  choose(e.dataTransfer.files[0]);
});
loadPipelines();
