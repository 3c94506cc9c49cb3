// Soundalike's page: plain JavaScript over the JSON API (/api/...). No framework, no build step, no network
// beyond this server. Views: #library (paged table), #search (upload or record, ranked results), #map.
"use strict";

const PAGE_SIZE = 50;
const PALETTE = ["#4f46e5", "#0891b2", "#d97706", "#16a34a", "#db2777", "#7c3aed", "#dc2626", "#0d9488",
                 "#ca8a04", "#2563eb", "#9333ea", "#ea580c", "#059669", "#be185d", "#4338ca", "#65a30d"];
const PLAY_ICON = '<svg viewBox="0 0 12 12"><path d="M2.5 1.2v9.6L10.5 6z"/></svg>';
const PAUSE_ICON = '<svg viewBox="0 0 12 12"><path d="M2 1h3v10H2zM7 1h3v10H7z"/></svg>';

const $ = (id) => document.getElementById(id);
const state = { offset: 0, total: 0, filter: "", queryFile: null, queryRecording: null, queryUrl: null, recorder: null, map: null,
                selected: null, neighbours: [], hover: null, referenceLabel: null };

// ---------- small helpers ----------

/** An element with attributes (on* are listeners) and children (strings become text, never HTML). */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "html") element.innerHTML = value;  // only for our own constant icons
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const type = response.headers.get("content-type") || "";
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    if (type.includes("json")) message = (await response.json()).error || message;
    throw new Error(message);
  }
  return type.includes("json") ? response.json() : response.blob();
}

function upload(path, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return api(path, { method: "POST", body: form });
}

function clusterColour(cluster) {
  if (cluster === null || cluster === undefined) return "#9aa1b0";
  return cluster < PALETTE.length ? PALETTE[cluster] : `hsl(${(cluster * 137.5) % 360} 60% 45%)`;
}

function scoreColour(score) {
  if (score >= 80) return "#16a34a";
  if (score >= 60) return "#65a30d";
  if (score >= 40) return "#d97706";
  return "#9aa1b0";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60), rest = Math.round(seconds % 60);
  if (minutes < 60) return `${minutes}:${String(rest).padStart(2, "0")}`;
  return `${Math.floor(minutes / 60)}:${String(minutes % 60).padStart(2, "0")}:${String(rest).padStart(2, "0")}`;
}

const baseName = (path) => path.split(/[\\/]/).pop();
const fileSize = (bytes) => (bytes < 1024 ? `${bytes} bytes` : bytes < 1 << 20 ? `${(bytes / 1024).toFixed(0)} KB`
  : `${(bytes / (1 << 20)).toFixed(1)} MB`);
const audioUrl = (id, start) => `/api/recordings/${id}/audio?playable=1${start ? `#t=${start.toFixed(2)}` : ""}`;

function toast(message) {
  const element = $("toast");
  element.textContent = message;
  element.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { element.hidden = true; }, 5000);
}

function scoreBar(score) {
  return h("div", { class: "scorebar" },
    h("div", { class: "bar" }, h("span", { style: `width:${Math.max(2, score)}%;background:${scoreColour(score)}` })),
    h("span", { class: "score" }, score.toFixed(1)));
}

function labelChip(label) {
  return label ? h("span", { class: "chip", title: label }, label) : h("span", { class: "muted" }, "–");
}

function clusterCell(cluster) {
  if (cluster === null || cluster === undefined) return h("span", { class: "muted" }, "–");
  return h("span", { class: "cluster" }, h("span", { class: "swatch", style: `background:${clusterColour(cluster)}` }), String(cluster));
}

// ---------- views ----------

function showView() {
  const view = (location.hash || "#library").slice(1).split("?")[0];
  const known = ["library", "search", "map"].includes(view) ? view : "library";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.dataset.view !== known;
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === known);
  if (known === "map") loadMap();
}

async function loadSummary() {
  try {
    const stats = await api("/api/stats");
    const summary = $("summary");
    summary.replaceChildren(
      h("b", {}, stats.recordings.toLocaleString()), " recordings · ",
      h("b", {}, stats.hours >= 1 ? `${stats.hours.toFixed(1)} h` : stats.hours >= 1 / 60 ? `${Math.round(stats.hours * 60)} min`
        : `${Math.round(stats.hours * 3600)} s`),
      " · ", h("b", {}, stats.references), " references · encoder ", h("b", {}, stats.encoder.name));
    summary.title = stats.library;
    state.stats = stats;
    $("labels").replaceChildren(...Object.keys(stats.labels || {}).sort().map((label) => h("option", { value: label })));
  } catch (error) { toast(`Could not read the library: ${error.message}`); }
}

// ---------- the player bar ----------

const player = { id: null };  // the recording in the player bar

/** Play a recording in the player bar, from `start` seconds; the same one again pauses or resumes it. */
function play(item, start = 0) {
  const audio = $("player-audio");
  $("player").hidden = false;
  if (player.id === item.id && !start) {  // the same recording again: pause or resume where it was
    if (audio.paused) audio.play().catch(() => toast("This file cannot be played by the browser.")); else audio.pause();
    return;
  }
  if (player.id !== item.id) {
    audio.src = audioUrl(item.id);
    player.id = item.id;
  }
  $("player-name").textContent = item.name || baseName(item.path);
  $("player-meta").textContent = [item.label, item.duration_s ? duration(item.duration_s) : null,
                                  start ? `from ${start.toFixed(1)} s` : null].filter(Boolean).join(" · ");
  const go = () => { audio.currentTime = start || 0; audio.play().catch(() => toast("This file cannot be played by the browser.")); };
  if (audio.readyState >= 1) go(); else audio.addEventListener("loadedmetadata", go, { once: true });
}

function syncPlayButtons() {
  const audio = $("player-audio");
  const playing = !audio.paused && !audio.ended;
  for (const button of document.querySelectorAll(".play[data-id]")) {
    const on = playing && Number(button.dataset.id) === player.id;
    button.classList.toggle("on", on);
    button.innerHTML = on ? PAUSE_ICON : PLAY_ICON;
    button.closest("tr")?.classList.toggle("playing", on);
  }
}

function playButton(item) {
  return h("button", { class: "play", type: "button", "data-id": item.id, title: "Play", "aria-label": `Play ${item.name}`,
    html: PLAY_ICON, onclick: () => play(item) });
}

// ---------- library ----------

async function loadRecordings() {
  const params = new URLSearchParams({ offset: state.offset, limit: PAGE_SIZE });
  if (state.filter) params.set("q", state.filter);
  let page;
  try { page = await api(`/api/recordings?${params}`); } catch (error) { toast(error.message); return; }
  state.total = page.total;
  const rows = page.items.map((item) => h("tr", { "data-id": item.id },
    h("td", {}, item.status === "indexed" ? playButton(item) : null),
    h("td", { class: "name-cell" }, h("div", { class: "name", title: item.name }, item.name),
      h("div", { class: "path", title: item.path }, h("bdi", {}, item.path))),
    h("td", {}, labelChip(item.label)),
    h("td", { class: "num" }, duration(item.duration_s)),
    h("td", {}, clusterCell(item.cluster)),
    h("td", { class: "center" }, item.is_reference ? h("span", { class: "star", title: "Reference sample" }, "★") : ""),
    h("td", {}, h("span", { class: `status ${item.status}`, title: item.error || "" }, item.status === "indexed" ? "Indexed" : "Failed")),
    h("td", { class: "row-actions" }, item.status === "indexed"
      ? h("button", { class: "btn small", type: "button", onclick: () => findSimilar(item) }, "Find similar") : null)));
  $("rows").replaceChildren(...rows);
  const empty = $("rows-empty");
  empty.hidden = page.total > 0;
  if (!page.total) {
    empty.replaceChildren(state.filter ? `No recording matches “${state.filter}”.`
      : h("span", {}, "This library is empty: add recordings with ", h("code", {}, "soundalike index FOLDER"), "."));
  }
  const last = Math.min(page.offset + page.items.length, page.total);
  $("count").textContent = state.filter ? `${page.total.toLocaleString()} matching` : `${page.total.toLocaleString()} recordings`;
  $("page-info").textContent = page.total ? `${(page.offset + 1).toLocaleString()}–${last.toLocaleString()} of ${page.total.toLocaleString()}` : "";
  $("prev").disabled = page.offset === 0;
  $("next").disabled = last >= page.total;
  syncPlayButtons();
}

// ---------- search by example ----------

function setQuery(file) {
  state.queryFile = file;
  state.queryRecording = null;
  $("query-reference").replaceChildren();
  if (state.queryUrl) URL.revokeObjectURL(state.queryUrl);
  state.queryUrl = URL.createObjectURL(file);
  $("query-info").hidden = false;
  $("query-name").textContent = file.name;
  $("query-meta").textContent = fileSize(file.size);
  $("query-audio").src = state.queryUrl;
  runQuery();
}

async function runQuery() {
  if (!state.queryFile) return;
  if (location.hash !== "#search") location.hash = "#search";
  $("search-error").hidden = true;
  $("search-empty").hidden = true;
  $("results").replaceChildren(h("li", { class: "card empty" }, h("div", { class: "spinner", style: "position:static;margin:0 auto" })));
  $("reference").replaceChildren();
  try {
    const result = await upload(`/api/query?${queryParams()}`, state.queryFile);
    $("query-meta").textContent = `${duration(result.duration_s)} · ${fileSize(state.queryFile.size)}`;
    showResults(result);
  } catch (error) {
    $("results").replaceChildren();
    $("results-head").hidden = true;
    $("search-error").textContent = error.message;
    $("search-error").hidden = false;
  }
}

/** k and the filled-in filters of the query form, as /api/query's parameters. */
function queryParams() {
  const params = new URLSearchParams({ k: $("k").value });
  for (const input of $("query-filters").elements) {
    if (input.type === "checkbox" ? input.checked : input.value.trim()) {
      params.set(input.name, input.type === "checkbox" ? "true" : input.value.trim());
    }
  }
  return params;
}

/** A library recording as the query panel's subject, with its reference toggle. */
function showQueryRecording(item) {
  location.hash = "#search";
  state.queryFile = null;
  state.queryRecording = item;
  $("query-info").hidden = false;
  $("query-name").textContent = item.name;
  $("query-meta").textContent = `${duration(item.duration_s)} · from the library`;
  $("query-audio").src = audioUrl(item.id);
  $("query-reference").replaceChildren(referenceControls(item));
  $("search-error").hidden = true;
  $("search-empty").hidden = true;
}

async function findSimilar(item) {
  showQueryRecording(item);
  try { showResults(await api(`/api/recordings/${item.id}/neighbours?k=${$("k").value}`)); }
  catch (error) { $("search-error").textContent = error.message; $("search-error").hidden = false; }
}

function showResults(result) {
  state.referenceLabel = result.reference ? result.reference.label : null;
  $("results-title").textContent = "Most similar recordings";
  $("reference").replaceChildren(referenceCard(result.reference));
  $("results-head").hidden = false;
  $("results-meta").textContent = result.results.length ? `${result.results.length} of the library, best first` : "";
  if (result.signal === false) {
    $("results").replaceChildren(h("li", { class: "card empty" }, "No signal: the file is silent or too short to match."));
    return;
  }
  if (!result.results.length) {
    $("results").replaceChildren(h("li", { class: "card empty" }, "The library is empty: nothing to compare with."));
    return;
  }
  $("results").replaceChildren(...result.results.map((hit) => resultCard(hit)));
}

function referenceCard(reference) {
  if (!reference) {
    return h("div", { class: "card verdict none", id: "verdict" }, h("span", { class: "verdict-badge" }, "No references"),
      h("div", { class: "verdict-body" }, h("div", {}, "Mark your best takes as references to score against them: ",
        h("code", {}, "soundalike index DIR --reference"))));
  }
  const matched = reference.match;
  return h("div", { class: `card verdict ${matched ? "match" : "nomatch"}`, id: "verdict" },
    h("span", { class: "verdict-badge" }, matched ? "Match" : "No match"),
    h("div", { class: "verdict-body" },
      h("div", { class: "muted" }, "Nearest reference"),
      h("div", { class: "verdict-title", title: reference.path }, baseName(reference.path), " ",
        reference.label ? labelChip(reference.label) : null),
      h("div", { class: "muted" }, `distance ${reference.distance.toFixed(3)} (threshold ${reference.threshold.toFixed(3)}) · `
        + `matches at ${reference.start_s.toFixed(1)}–${reference.end_s.toFixed(1)} s`)),
    h("button", { class: "btn small", type: "button", onclick: () => play({ id: reference.recording_id, path: reference.path, label: reference.label }, reference.start_s) }, "Play reference"),
    h("div", { class: "verdict-score" }, h("div", { class: "big", style: `color:${scoreColour(reference.score)}` }, reference.score.toFixed(1)),
      h("div", { class: "muted" }, "score")));
}

function resultCard(hit) {
  const audio = h("audio", { controls: true, preload: "metadata", src: audioUrl(hit.recording_id, hit.start_s) });
  // Every place the query matches on this recording (the best first), each a mark on the player's bar: click to play it.
  const occurrences = hit.occurrences && hit.occurrences.length ? hit.occurrences : [hit];
  const spans = occurrences.map((item, index) => h("span", {
    class: `occurrence${index ? " other" : ""}`, "data-start": item.start_s,
    title: `${item.start_s.toFixed(1)}–${item.end_s.toFixed(1)} s` + (item.score !== undefined ? ` · score ${item.score.toFixed(1)}` : ""),
    onclick: () => { audio.currentTime = item.start_s; audio.play(); },
  }));
  audio.addEventListener("loadedmetadata", () => {
    if (!isFinite(audio.duration) || !audio.duration) return;
    occurrences.forEach((item, index) => {
      const left = Math.min(100, (100 * item.start_s) / audio.duration);
      spans[index].style.left = `${left}%`;
      spans[index].style.width = `${Math.min(100 - left, (100 * (item.end_s - item.start_s)) / audio.duration)}%`;
    });
  });
  const more = occurrences.length > 1
    ? ` · also at ${occurrences.slice(1).map((item) => `${item.start_s.toFixed(1)} s`).join(", ")}` : "";
  const name = baseName(hit.path);
  return h("li", { class: `card result${hit.rank === 1 ? " first" : ""}`, "data-recording-id": hit.recording_id },
    h("div", { class: "rank" }, hit.rank),
    h("div", { class: "result-main" },
      h("div", { class: "result-title" }, h("span", { class: "name", title: hit.path }, name), hit.label ? labelChip(hit.label) : null),
      h("div", { class: "result-meta" }, `matches at ${hit.start_s.toFixed(1)}–${hit.end_s.toFixed(1)} s${more} · distance ${hit.distance.toFixed(3)}`),
      copiesLine(hit.also_at), scoreBar(hit.score), markControls(hit)),
    h("div", { class: "result-side" }, audio, h("div", { class: "span-bar", title: "Where the query matches in the recording (click a mark to play it)" }, ...spans),
      h("button", { class: "btn small compare", type: "button", onclick: () => openCompare(hit) }, "Compare spectrograms")));
}

/** The copies folded into a collapsed result ("Collapse duplicates"), by name; the full path on hover. */
function copiesLine(paths) {
  if (!paths || !paths.length) return null;
  return h("div", { class: "copies" }, h("span", { class: "muted" }, `${paths.length === 1 ? "a copy" : `${paths.length} copies`} also at `),
    ...paths.map((path) => h("span", { class: "chip copy", title: path }, baseName(path))));
}

// ---------- references: mark the selected recording, rank the takes against it ----------

const RANKING_SHOWN = 100;  // takes shown of a ranking (a whole library's takes can be thousands)

/** The selected recording's reference toggle and, when it is one, a button to rank the takes against it. */
function referenceControls(item) {
  const controls = h("div", { class: "reference-controls" },
    h("button", { class: `btn small reference-toggle${item.is_reference ? " on" : ""}`, type: "button", "aria-pressed": String(!!item.is_reference),
      title: item.is_reference ? "Un-mark: keep it as a take" : "Mark this recording as a reference sample",
      onclick: () => toggleReference(item, controls) }, item.is_reference ? "★ Reference · un-mark" : "☆ Mark as reference"),
    item.is_reference ? h("button", { class: "btn small rank-takes", type: "button", onclick: () => showRanking(item) },
      "Rank takes against this reference") : null);
  return controls;
}

async function toggleReference(item, controls) {
  let updated;
  try { updated = await api(`/api/recordings/${item.id}/reference`, { method: item.is_reference ? "DELETE" : "POST" }); }
  catch (error) { toast(error.message); return; }
  item.is_reference = updated.is_reference;
  const point = state.map && state.map.points.find((candidate) => candidate.recording_id === item.id);
  if (point) { point.is_reference = updated.is_reference; drawMap(); }
  controls.replaceWith(referenceControls(item));
  toast(`${item.name} is ${updated.is_reference ? "now a reference" : "no longer a reference"}`);
  loadSummary();
  loadRecordings();
}

async function showRanking(item) {
  showQueryRecording(item);
  $("reference").replaceChildren();
  $("results").replaceChildren(h("li", { class: "card empty" }, h("div", { class: "spinner", style: "position:static;margin:0 auto" })));
  let ranking;
  try { ranking = await api(`/api/ranking?reference=${item.id}`); }
  catch (error) {
    $("results").replaceChildren();
    $("search-error").textContent = error.message;
    $("search-error").hidden = false;
    return;
  }
  state.referenceLabel = item.label;
  const matches = ranking.takes.filter((take) => take.match).length;
  $("results-head").hidden = false;
  $("results-title").textContent = `Takes ranked against ${item.name}`;
  $("results-meta").textContent = `${ranking.takes.length} takes · ${matches} match · threshold ${ranking.threshold.toFixed(3)}`
    + (ranking.takes.length > RANKING_SHOWN ? ` · the best ${RANKING_SHOWN} shown` : "");
  $("results").replaceChildren(...(ranking.takes.length ? ranking.takes.slice(0, RANKING_SHOWN).map(takeCard)
    : [h("li", { class: "card empty" }, "No takes: every recording of the library is a reference.")]));
}

function takeCard(take) {
  return h("li", { class: `card result take${take.match ? " match" : ""}`, "data-recording-id": take.recording_id },
    h("div", { class: "rank" }, take.rank),
    h("div", { class: "result-main" },
      h("div", { class: "result-title" }, h("span", { class: "name", title: take.path }, baseName(take.path)),
        take.label ? labelChip(take.label) : null,
        h("span", { class: `match-badge ${take.match ? "yes" : "no"}` }, take.match ? "Match" : "No match")),
      h("div", { class: "path", title: take.path }, h("bdi", {}, take.path)),
      h("div", { class: "result-meta" }, `distance ${take.distance.toFixed(3)} · matches the reference at `
        + `${take.start_s.toFixed(1)}–${take.end_s.toFixed(1)} s`),
      scoreBar(take.score), markControls(take)),
    h("div", { class: "result-side" }, h("audio", { controls: true, preload: "none", src: audioUrl(take.recording_id) })));
}

// ---------- marks: the agile loop (mark results, retrain the classifier, see its accuracy) ----------

/** Right / wrong for the query's reference label (when it has one), and a box to give the result a label. */
function markControls(hit) {
  const status = h("span", { class: "muted mark-status" });
  const send = async (label, verdict) => {
    try {
      const mark = await api("/api/marks", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ recording_id: hit.recording_id, label, verdict }) });
      status.textContent = `marked ${mark.verdict} for “${mark.label}”`;
    } catch (error) { toast(error.message); }
  };
  const input = h("input", { type: "text", class: "mark-label", placeholder: "label", maxlength: 256, "aria-label": "Label for this result" });
  const reference = state.referenceLabel;
  return h("form", { class: "marks", onsubmit: (event) => { event.preventDefault(); if (input.value.trim()) send(input.value.trim(), "right"); } },
    reference ? h("button", { class: "btn small", type: "button", title: `This result is a “${reference}”`, onclick: () => send(reference, "right") }, `✓ ${reference}`) : null,
    reference ? h("button", { class: "btn small ghost", type: "button", title: `This result is not a “${reference}”`, onclick: () => send(reference, "wrong") }, `✗ not ${reference}`) : null,
    input, h("button", { class: "btn small ghost", type: "submit" }, "Label"), status);
}

async function retrainFromMarks() {
  const out = $("classifier-report");
  out.textContent = "training…";
  try {
    const report = await api("/api/classifiers/default/train?labels=marks", { method: "POST" });
    const examples = Object.entries(report.examples).map(([label, count]) => `${label} ${count}`).join(", ");
    out.textContent = `cross-validated accuracy ${(100 * report.accuracy).toFixed(1)}% · macro-F1 ${report.macro_f1.toFixed(2)} `
      + `(${report.folds}-fold; ${examples})` + (report.warnings.length ? ` · ${report.warnings.join("; ")}` : "");
  } catch (error) { out.textContent = ""; toast(error.message); }
}

// ---------- compare ----------

async function openCompare(hit) {
  const source = state.queryFile
    ? { name: state.queryFile.name, url: state.queryUrl,
        json: () => upload(`/api/compare?recording_id=${hit.recording_id}`, state.queryFile),
        plot: () => upload(`/api/compare/plot?recording_id=${hit.recording_id}`, state.queryFile) }
    : { name: state.queryRecording.name, url: audioUrl(state.queryRecording.id),
        json: () => api(`/api/recordings/${state.queryRecording.id}/compare/${hit.recording_id}`),
        plot: () => api(`/api/recordings/${state.queryRecording.id}/compare/${hit.recording_id}/plot`) };
  $("compare").hidden = false;
  $("compare-title").textContent = `${source.name}  vs  ${baseName(hit.path)}`;
  $("compare-stats").replaceChildren();
  const image = $("compare-plot");
  image.removeAttribute("src");
  image.hidden = true;
  $("compare-spinner").hidden = false;
  $("compare-players").replaceChildren(
    h("div", {}, h("div", { class: "label" }, `Query: ${source.name}`), h("audio", { controls: true, preload: "metadata", src: source.url })),
    h("div", {}, h("div", { class: "label" }, `${baseName(hit.path)} from ${hit.start_s.toFixed(1)} s`),
      h("audio", { controls: true, preload: "metadata", src: audioUrl(hit.recording_id, hit.start_s) })));
  const stat = (label, value) => h("div", { class: "stat" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const span = (start, end) => `${start.toFixed(1)}–${end.toFixed(1)} s`;
  source.json().then((comparison) => {
    $("compare-stats").replaceChildren(stat("Score", comparison.score.toFixed(1)), stat("Distance", comparison.distance.toFixed(3)),
      stat("Query span", span(comparison.a_start_s, comparison.a_end_s)),
      stat("Recording span", span(comparison.b_start_s, comparison.b_end_s)));
  }).catch((error) => {
    $("compare-stats").replaceChildren(stat("Score", hit.score.toFixed(1)), stat("Distance", hit.distance.toFixed(3)),
      stat("Recording span", span(hit.start_s, hit.end_s)), stat("Comparison", error.message));
  });
  try {
    image.src = URL.createObjectURL(await source.plot());
    await image.decode();
    image.hidden = false;
  } catch (error) {
    $("compare-plot").append(h("div", { class: "empty" }, `No spectrograms: ${error.message}`));
  } finally {
    $("compare-spinner").hidden = true;
  }
}

function closeCompare() {
  const modal = $("compare");
  modal.hidden = true;
  for (const audio of modal.querySelectorAll("audio")) audio.pause();
  for (const extra of modal.querySelectorAll(".compare-plot .empty")) extra.remove();
}

// ---------- recording in the browser ----------

async function toggleRecording() {
  const button = $("record");
  if (state.recorder) { state.recorder.stop(); return; }
  if (!navigator.mediaDevices || !window.MediaRecorder) { toast("This browser cannot record audio here."); return; }
  let stream;
  try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
  catch (error) { toast(`No microphone: ${error.message}`); return; }
  const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
  const recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
  const chunks = [];
  const started = Date.now();
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((track) => track.stop());
    clearInterval(state.recordTimer);
    state.recorder = null;
    button.classList.remove("on");
    $("record-label").textContent = "Record with the microphone";
    const mime = recorder.mimeType || type || "audio/webm";
    const extension = mime.includes("ogg") ? "ogg" : mime.includes("mp4") ? "m4a" : "webm";
    const stamp = new Date().toISOString().slice(11, 19).replaceAll(":", "");
    setQuery(new File(chunks, `recording-${stamp}.${extension}`, { type: mime.split(";")[0] }));
  };
  recorder.start(250);
  state.recorder = recorder;
  button.classList.add("on");
  state.recordTimer = setInterval(() => {
    $("record-label").textContent = `Stop recording (${((Date.now() - started) / 1000).toFixed(0)} s)`;
  }, 250);
  $("record-label").textContent = "Stop recording (0 s)";
}

// ---------- the map ----------

async function loadMap() {
  if (state.map) { drawMap(); return; }
  let data;
  try { data = await api("/api/map"); }
  catch (error) {
    $("map-empty").hidden = false;
    $("map-empty").replaceChildren(h("p", {}, h("strong", {}, "No map yet. "), error.message));
    $("map").hidden = true;
    return;
  }
  state.map = data;
  $("map").hidden = false;
  $("map-empty").hidden = true;
  const clusters = new Map();
  for (const point of data.points) clusters.set(point.cluster, (clusters.get(point.cluster) || 0) + 1);
  const clustered = [...clusters.keys()].filter((cluster) => cluster !== null && cluster !== undefined).length;
  $("map-meta").textContent = `${data.points.length.toLocaleString()} recordings · `
    + (clustered ? `${clustered} clusters` : "not clustered yet") + (data.method ? ` · ${data.method.toUpperCase()}` : "");
  const unmapped = state.stats ? state.stats.recordings - data.points.length : 0;
  $("map-stale").hidden = unmapped <= 0;
  $("map-stale").textContent = `${unmapped.toLocaleString()} recordings indexed since: recompute to place them`;
  $("legend").replaceChildren(...[...clusters.entries()].sort((a, b) => (a[0] ?? 1e9) - (b[0] ?? 1e9)).map(([cluster, count]) =>
    h("span", {}, h("span", { class: "swatch", style: `background:${clusterColour(cluster)}` }),
      cluster === null || cluster === undefined ? `unclustered (${count})` : `cluster ${cluster} (${count})`)),
    h("span", {}, h("span", { class: "swatch", style: "background:#fff;border:2px solid #1c2130" }), "reference"));
  drawMap();
}

async function recomputeMap() {
  const button = $("map-refresh");
  button.disabled = true;
  button.textContent = "Computing…";
  try {
    await api("/api/clusters", { method: "POST" });
    await api("/api/map", { method: "POST" });
    state.map = null;
    state.selected = null;
    state.neighbours = [];
    await loadSummary();
    await loadMap();
    loadRecordings();
  } catch (error) { toast(error.message); }
  finally { button.disabled = false; button.textContent = "Recompute"; }
}

function mapGeometry() {
  const canvas = $("map");
  const width = canvas.clientWidth, height = canvas.clientHeight, pad = 28;
  let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;  // no spread: maps can be large
  for (const point of state.map.points) {
    minX = Math.min(minX, point.x); maxX = Math.max(maxX, point.x);
    minY = Math.min(minY, point.y); maxY = Math.max(maxY, point.y);
  }
  const scale = Math.min((width - 2 * pad) / (maxX - minX || 1), (height - 2 * pad) / (maxY - minY || 1));
  const offsetX = (width - scale * (maxX - minX)) / 2, offsetY = (height - scale * (maxY - minY)) / 2;
  return (point) => [offsetX + scale * (point.x - minX), height - (offsetY + scale * (point.y - minY))];
}

function drawMap() {
  const canvas = $("map");
  if (!state.map || canvas.hidden || !canvas.clientWidth) return;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = canvas.clientWidth * ratio;
  canvas.height = canvas.clientHeight * ratio;
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  const place = mapGeometry();
  state.screen = state.map.points.map((point) => [point, ...place(point)]);
  const radius = state.map.points.length > 2000 ? 2.5 : state.map.points.length > 300 ? 4 : 6;
  const selected = state.selected && state.screen.find(([point]) => point.recording_id === state.selected.recording_id);
  if (selected) {  // lines to the neighbours first, under the points
    context.strokeStyle = "rgba(79,70,229,.45)";
    context.lineWidth = 1.5;
    for (const hit of state.neighbours) {
      const other = state.screen.find(([point]) => point.recording_id === hit.recording_id);
      if (!other) continue;
      context.beginPath(); context.moveTo(selected[1], selected[2]); context.lineTo(other[1], other[2]); context.stroke();
    }
  }
  for (const [point, x, y] of state.screen) {
    context.beginPath();
    context.arc(x, y, point.is_reference ? radius + 1.5 : radius, 0, 2 * Math.PI);
    context.fillStyle = clusterColour(point.cluster);
    context.globalAlpha = selected && point !== selected[0] && !state.neighbours.some((hit) => hit.recording_id === point.recording_id) ? 0.35 : 0.9;
    context.fill();
    context.globalAlpha = 1;
    if (point.is_reference) { context.lineWidth = 2; context.strokeStyle = "#1c2130"; context.stroke(); }
  }
  for (const marked of [selected, state.hover && state.screen.find(([point]) => point === state.hover)]) {
    if (!marked) continue;
    context.beginPath();
    context.arc(marked[1], marked[2], radius + 5, 0, 2 * Math.PI);
    context.lineWidth = 2.5;
    context.strokeStyle = marked === selected ? "#4f46e5" : "rgba(28,33,48,.6)";
    context.stroke();
  }
}

function pointAt(event) {
  if (!state.screen) return null;
  const box = $("map").getBoundingClientRect();
  const x = event.clientX - box.left, y = event.clientY - box.top;
  let best = null, bestDistance = 12 * 12;
  for (const [point, px, py] of state.screen) {
    const distance = (px - x) ** 2 + (py - y) ** 2;
    if (distance < bestDistance) { best = point; bestDistance = distance; }
  }
  return best;
}

function hoverMap(event) {
  const point = pointAt(event);
  const tooltip = $("tooltip");
  if (point !== state.hover) { state.hover = point; drawMap(); }
  if (!point) { tooltip.hidden = true; return; }
  const box = $("map").getBoundingClientRect();
  tooltip.replaceChildren(h("div", {}, h("b", {}, baseName(point.path))),
    h("div", { class: "muted" }, [point.label, point.cluster !== null && point.cluster !== undefined ? `cluster ${point.cluster}` : null,
      point.is_reference ? "reference" : null].filter(Boolean).join(" · ") || "no label"));
  tooltip.style.left = `${event.clientX - box.left}px`;
  tooltip.style.top = `${event.clientY - box.top}px`;
  tooltip.hidden = false;
}

async function selectPoint(point) {
  state.selected = point;
  state.neighbours = [];
  const item = { id: point.recording_id, path: point.path, name: baseName(point.path), label: point.label,
                 is_reference: point.is_reference };
  play(item);
  drawMap();
  const panel = $("map-selection");
  $("map-hint").hidden = true;
  panel.hidden = false;
  panel.replaceChildren(h("div", { class: "selected-head" },
    h("span", { class: "swatch", style: `background:${clusterColour(point.cluster)};width:14px;height:14px` }),
    h("div", { style: "min-width:0;flex:1" }, h("div", { class: "name", title: point.path }, item.name),
      h("div", { class: "muted" }, [point.label, point.cluster !== null && point.cluster !== undefined ? `cluster ${point.cluster}` : null,
        point.is_reference ? "reference" : null].filter(Boolean).join(" · "))),
    h("button", { class: "play", type: "button", "data-id": point.recording_id, html: PLAY_ICON, onclick: () => play(item) })),
    referenceControls(item), h("h2", {}, "Nearest neighbours"), h("div", { class: "muted" }, "Loading…"));
  syncPlayButtons();
  let result;
  try { result = await api(`/api/recordings/${point.recording_id}/neighbours?k=8`); }
  catch (error) { panel.lastChild.textContent = error.message; return; }
  if (state.selected !== point) return;
  state.neighbours = result.results;
  panel.lastChild.replaceWith(h("div", { class: "neighbours", id: "neighbours" }, ...result.results.map((hit) => {
    const neighbour = { id: hit.recording_id, path: hit.path, name: baseName(hit.path), label: hit.label };
    return h("div", { class: "neighbour", "data-recording-id": hit.recording_id },
      h("button", { class: "play", type: "button", "data-id": hit.recording_id, html: PLAY_ICON, onclick: () => play(neighbour, hit.start_s) }),
      h("div", { class: "name", title: hit.path }, neighbour.name, h("div", { class: "muted", style: "font-weight:400;font-size:12px" }, hit.label || "")),
      h("div", { class: "bar" }, h("span", { style: `width:${Math.max(2, hit.score)}%;background:${scoreColour(hit.score)}` })),
      h("span", { class: "score" }, hit.score.toFixed(0)));
  })));
  syncPlayButtons();
  drawMap();
}

// ---------- wiring ----------

function wire() {
  window.addEventListener("hashchange", showView);
  window.addEventListener("resize", drawMap);
  let typing;
  $("filter").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => { state.filter = event.target.value.trim(); state.offset = 0; loadRecordings(); }, 200);
  });
  $("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadRecordings(); });
  $("next").addEventListener("click", () => { state.offset += PAGE_SIZE; loadRecordings(); });
  $("file").addEventListener("change", (event) => { if (event.target.files[0]) setQuery(event.target.files[0]); });
  const zone = $("dropzone");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files[0]) setQuery(event.dataTransfer.files[0]);
  });
  $("k").addEventListener("change", runQuery);
  $("query-filters").addEventListener("change", runQuery);
  $("query-filters").addEventListener("submit", (event) => { event.preventDefault(); runQuery(); });
  $("retrain").addEventListener("click", retrainFromMarks);
  $("record").addEventListener("click", toggleRecording);
  $("compare-close").addEventListener("click", closeCompare);
  $("compare").addEventListener("click", (event) => { if (event.target.id === "compare") closeCompare(); });
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeCompare(); });
  const audio = $("player-audio");
  for (const name of ["play", "pause", "ended", "emptied"]) audio.addEventListener(name, syncPlayButtons);
  const canvas = $("map");
  $("map-refresh").addEventListener("click", recomputeMap);
  canvas.addEventListener("mousemove", hoverMap);
  canvas.addEventListener("mouseleave", () => { state.hover = null; $("tooltip").hidden = true; drawMap(); });
  canvas.addEventListener("click", (event) => { const point = pointAt(event); if (point) selectPoint(point); });
}

wire();
showView();
loadSummary();
loadRecordings();
