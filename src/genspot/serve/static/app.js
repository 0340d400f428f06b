// genspot page: upload -> /v1/predict (verdicts) -> /v1/explain (heat maps), one image at a time.
"use strict";
const $ = (id) => document.getElementById(id);
const CHUNK = 16;  // files per /v1/predict request (the server allows more; small chunks show progress)
let entries = [];  // {file, row, card}
let queue = Promise.resolve();
const OUT_OF_DOMAIN = "out of domain: this detector cannot tell";
const NAMES = { gradcam: "Grad-CAM", "gradcam++": "Grad-CAM++", cam: "CAM", scorecam: "Score-CAM", layercam: "LayerCAM",
  eigencam: "EigenCAM", rollout: "attention rollout", patch: "patch map" };
let localisation = "";  // what the default method's measured localisation says, shown under its maps

fetch("/v1/models").then((r) => r.json()).then((m) => {
  const v = m[0].validation;
  $("model").textContent = `${m[0].name} (${m[0].architecture}, ${m[0].parameters.toLocaleString()} parameters` +
    (v ? `, validation accuracy ${(100 * v.accuracy).toFixed(2)}%)` : ")");
  const s = m[0].input_size, how = m[0].input_policy === "crop" ? "crops at native resolution" : "images resized to it";
  // The default heat map is the method measured best at pointing inside generated regions, and the
  // page says how well it does (genspot explain-eval --localise --set-default), or that it was not measured.
  const ex = m[0].explain || { method: "gradcam", localisation: null };
  const name = NAMES[ex.method] || ex.method, loc = ex.localisation;
  if (loc && loc.pointing_game !== undefined) {
    localisation = `${name} points inside the generated region in ${Math.round(100 * loc.pointing_game)}% of ` +
      `${loc.n} validation splices (measured best of the methods this model allows)`;
    $("method-default").textContent = `${name} (measured best)`;
  } else {
    localisation = `${name}: how well it localises generated regions is not measured for this model`;
    $("method-default").textContent = `${name} (default)`;
  }
  $("localisation").textContent = `Heat maps by default: ${localisation}.`;
  $("localisation").dataset.testid = "localisation";
  if (m[0].trained_on && !/^cifake/i.test(m[0].trained_on)) {  // the page's own sentence describes CIFAKE
    $("trained").textContent = `Trained on ${m[0].trained_on} (${s}x${s} ${how})`;
  }
}).catch(() => { $("model").textContent = "unavailable"; });

function status(text) { $("status").textContent = text; }

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function makeCard(file, row) {
  const card = el("article", "card");
  card.append(el("div", "name", row.filename));
  const ok = !row.error;
  // Out of the model's domain the score is a guess: the headline says so in a neutral colour, never
  // a green REAL or a red FAKE (the JSON keeps label and p_fake as they are).
  const out = ok && row.domain === "out";
  const headline = !ok ? "could not read" : out ? OUT_OF_DOMAIN : row.label;
  const v = el("div", "verdict " + (!ok ? "error" : out ? "out" : row.label), headline);
  v.dataset.testid = "verdict";
  card.append(v);
  if (ok) {
    card.append(el("div", "prob", out ? `its score, not a verdict: p(fake) = ${row.p_fake.toFixed(3)}` : `p(fake) = ${row.p_fake.toFixed(3)}`));
    if (out) {  // why the model is guessing
      const d = el("div", "domain out", `out of domain: ${row.domain_reason}`);
      d.dataset.testid = "domain";
      card.append(d);
    }
    const bar = el("div", out ? "bar out" : "bar"); const fill = el("div");
    fill.style.width = `${(100 * row.p_fake).toFixed(1)}%`; bar.append(fill); card.append(bar);
    const stack = el("div", "stack");
    const base = el("img", "base"); base.alt = row.filename; base.src = URL.createObjectURL(file);
    const heat = el("img", "heat"); heat.alt = "heat map"; heat.hidden = true;
    heat.style.opacity = $("opacity").value / 100;
    stack.append(base, heat); card.append(stack);
  } else {
    card.append(el("div", "note", row.error));
  }
  card.append(el("div", "note explain-note"));
  $("cards").append(card);
  const tr = document.createElement("tr");
  const dom = ok ? (out ? `out: ${row.domain_reason}` : "in") : "-";
  for (const t of [row.filename, !ok ? "error" : out ? "cannot tell" : row.label, ok ? row.p_fake.toFixed(4) : "-", dom, row.error || ""]) tr.append(el("td", "", t));
  $("batch").querySelector("tbody").append(tr);
  $("batch").hidden = false;
  return card;
}

async function explainOne(entry) {
  const method = $("method").value;  // "" is the model's default
  const note = entry.card.querySelector(".explain-note");
  note.textContent = `${method || "default method"}…`;
  const fd = new FormData();
  fd.append("file", entry.file, entry.row.filename);
  fd.append("method", method);
  fd.append("format", "json");
  const r = await fetch("/v1/explain", { method: "POST", body: fd });
  const j = await r.json();
  if (!r.ok) { note.textContent = j.detail || `error ${r.status}`; return; }
  const base = entry.card.querySelector(".base"), heat = entry.card.querySelector(".heat");
  base.src = "data:image/png;base64," + j.image_png;  // the S x S input the model saw, shown at about 256 px
  heat.src = "data:image/png;base64," + j.heatmap_png;
  heat.hidden = false;
  heat.dataset.testid = "overlay";
  note.textContent = `${NAMES[j.method] || j.method} for ${j.target} (layer ${j.layer || "-"})` + (method === "" ? ` — ${localisation}` : "");
}

function explainAll() {
  for (const e of entries) if (!e.row.error) queue = queue.then(() => explainOne(e)).catch((err) => status(String(err)));
}

async function upload(files) {
  files = Array.from(files);
  if (!files.length) return;
  let done = 0;
  for (let i = 0; i < files.length; i += CHUNK) {
    const part = files.slice(i, i + CHUNK);
    const fd = new FormData();
    part.forEach((f) => fd.append("files", f, f.name));
    status(`scoring ${done + 1}-${done + part.length} of ${files.length}…`);
    const r = await fetch("/v1/predict", { method: "POST", body: fd });
    const j = await r.json();
    if (!r.ok) { status(`error ${r.status}: ${j.detail}`); return; }
    j.results.forEach((row, k) => {
      const entry = { file: part[k], row, card: makeCard(part[k], row) };
      entries.push(entry);
      if (!row.error) queue = queue.then(() => explainOne(entry)).catch((err) => status(String(err)));
    });
    done += part.length;
  }
  const inside = entries.filter((e) => !e.row.error && e.row.domain !== "out");
  const fake = inside.filter((e) => e.row.label === "FAKE").length;
  const errs = entries.filter((e) => e.row.error).length;
  const outs = entries.filter((e) => !e.row.error && e.row.domain === "out").length;
  const n = entries.length, plural = (k, w) => `${k} ${w}${k === 1 ? "" : "s"}`;
  status(`${plural(n, "image")}: ${fake} FAKE, ${inside.length - fake} REAL, ${outs} out of the model's domain (cannot tell), ${plural(errs, "error")}`);
}

$("files").addEventListener("change", (ev) => upload(ev.target.files));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (ev) => { ev.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (ev) => upload(ev.dataTransfer.files));
$("method").addEventListener("change", explainAll);
$("opacity").addEventListener("input", () => {
  for (const h of document.querySelectorAll(".heat")) h.style.opacity = $("opacity").value / 100;
});
