// The Hare Run page: pick a photo, send it to the v6 analysis with the overlay, show the results.
"use strict";

const $ = (id) => document.getElementById(id);
const ANALYZE = "/api/v6/skin/analyze-hare-run";
let chosen = null;
let pipelineInfo = {};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
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

function render(body) {
  $("overlay").src = `data:image/png;base64,${body.overlay_png}`;
  const face = body.face;
  $("caption").textContent = `Pipeline ${body.pipeline}` + (body.variant ? ` (variant ${body.variant})` : "") +
    ` · photo ${body.image.width}×${body.image.height}` +
    (face ? ` · face via ${face.backend_used}, confidence ${face.confidence.toFixed(2)}` : "");

  const warnings = [...(body.quality.issues || []), ...((face && face.warnings) || [])];
  const box = $("warnings");
  box.replaceChildren();
  box.appendChild(Object.assign(document.createElement("p"), {
    textContent: `Photo quality ${Math.round(body.quality.score)}/100` + (body.quality.passed ? "" : " — below the gate"),
  }));
  for (const w of warnings) {
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
    tr.appendChild(cell(id));
    if (r.status !== "ok") {
      tr.appendChild(cell(r.status));
      const msg = cell(r.message || "", "");
      msg.colSpan = 1 + zones.length;
      tr.appendChild(msg);
    } else {
      tr.appendChild(cell(r.score === null ? "–" : r.score.toFixed(1)));
      tr.appendChild(cell(r.severity || "", `severity-${r.severity}`));
      for (const z of zones) tr.appendChild(cell(z in r.zones ? r.zones[z].toFixed(0) : "–"));
    }
    rows.push(tr);
  }
  $("scores").tBodies[0].replaceChildren(...rows);
  $("timing").textContent = `Analysed in ${Math.round(body.timings_ms.total || 0)} ms on the server.`;
  $("result").hidden = false;
}

async function analyze(event) {
  event.preventDefault();
  if (!chosen) return;
  const form = new FormData();
  form.append("image", chosen, chosen.name);
  form.append("pipeline", $("pipeline").value);
  if ($("subject").value.trim()) form.append("subject_id", $("subject").value.trim());
  form.append("include_overlay", "true");
  $("analyze").disabled = true;
  setStatus("Analysing…");
  try {
    const r = await fetch(ANALYZE, { method: "POST", body: form, headers: keyHeaders() });
    const body = await r.json();
    if (!r.ok) {
      const err = body.error || {};
      const issues = err.issues ? ` (${err.issues.join(", ")})` : "";
      setStatus(`${err.code || r.status}: ${err.message || r.statusText}${issues}`, true);
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

$("file").addEventListener("change", (e) => choose(e.target.files[0]));
$("apikey").value = sessionStorage.getItem("harerun-api-key") || "";
$("apikey").addEventListener("change", () => {
  sessionStorage.setItem("harerun-api-key", $("apikey").value.trim());
  $("pipeline").replaceChildren();
  setStatus("");
  loadPipelines();
});
$("pipeline").addEventListener("change", showPipelineInfo);
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
