// The annotators' page: plain JS, no build step. Every change goes through the server's API, which
// validates it; the version the editor loaded travels with each edit so a stale editor gets a conflict.
"use strict";
const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("token", params.get("token"));
const $ = (id) => document.getElementById(id);
const state = { tax: null, version: 0, selected: null, sample: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  const t = sessionStorage.getItem("token");
  if (t) h["X-Token"] = t;
  return h;
}
function status(msg, kind) { const s = $("status"); s.textContent = msg; s.className = kind || ""; }
function who() {
  const w = $("who").value.trim();
  if (!w) { status("Enter your annotator name first.", "error"); throw new Error("no annotator name"); }
  localStorage.setItem("who", w);
  return w;
}
async function api(path, body) {
  const r = await fetch(path, body === undefined ? { headers: headers() }
    : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = { detail: r.statusText }; }
  return { status: r.status, data };
}
function lines(s) { return s.split("\n").map((x) => x.trim()).filter(Boolean); }
function esc(s) { const d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }

// ---------- taxonomy ----------
async function loadTaxonomy(keepStatus) {
  const r = await api("/api/taxonomy");
  if (r.status !== 200) { status(`Cannot load taxonomy: ${r.data.detail}`, "error"); return; }
  state.tax = r.data; state.version = r.data.version;
  const c = r.data.counts;
  $("tax-version").textContent = `v${r.data.version} · ${c.main} main / ${c.secondary} secondary / ${c.leaf} leaf`;
  renderTree(); renderLeaves(); renderChangelog();
  if (state.selected && !byId(state.selected)) state.selected = null;
  if (state.selected) select(state.selected); else $("editor").hidden = true;
  if (!keepStatus) status("");
}
function byId(id) { return state.tax.nodes.find((n) => n.id === id); }
function kids(id) { return state.tax.nodes.filter((n) => (n.parent || null) === id); }
function renderTree() {
  const f = $("tree-filter").value.toLowerCase();
  const build = (parent) => {
    const ul = document.createElement("ul");
    for (const n of kids(parent)) {
      const li = document.createElement("li");
      li.dataset.id = n.id; li.className = `kind-${n.kind}`;
      const sub = build(n.id);
      const match = !f || n.name.toLowerCase().includes(f) || n.id.includes(f);
      if (!match && !sub.children.length) continue;
      li.innerHTML = `<span class="${n.id === state.selected ? "sel" : ""}">${esc(n.name)}</span>`;
      li.firstChild.addEventListener("click", () => select(n.id));
      if (sub.children.length) li.appendChild(sub);
      ul.appendChild(li);
    }
    return ul;
  };
  const root = build(null); root.id = "tree";
  $("tree").replaceWith(root);
}
function renderChangelog() {
  $("changelog").innerHTML = state.tax.changelog.slice().reverse()
    .map((c) => `<li value="${c.version}">${esc(c.change)} <span class="muted">${esc(c.by)}</span></li>`).join("");
}
function select(id) {
  state.selected = id;
  const n = byId(id);
  $("editor").hidden = false;
  $("ed-title").textContent = n.name; $("ed-id").textContent = n.id;
  $("ed-kind").textContent = n.kind; $("ed-parent").textContent = n.parent || "-";
  $("f-name").value = n.name; $("f-description").value = n.description;
  $("f-examples").value = n.examples.join("\n"); $("f-keywords").value = n.keywords.join("\n");
  $("f-weight").value = n.weight; $("f-weight").disabled = !n.labelable;
  const opts = (pred) => state.tax.nodes.filter(pred)
    .map((m) => `<option value="${m.id}">${esc(m.name)} (${m.id})</option>`).join("");
  $("move-to").innerHTML = opts((m) => m.id !== id && m.kind !== "leaf");
  $("merge-into").innerHTML = opts((m) => m.id !== id && m.kind === n.kind);
  document.querySelectorAll("#tree li > span").forEach((s) => s.classList.toggle("sel", s.parentNode.dataset.id === id));
}
async function edit(op, args) {
  let w; try { w = who(); } catch (e) { return; }
  const r = await api("/api/edit", { op, args, version: state.version, who: w });
  if (r.status === 200) {
    status(`Saved: ${r.data.change} (now v${r.data.version})`, "ok");
    if (op === "rename" && args.new_id) state.selected = args.new_id;
    if (op === "merge") state.selected = args.dst;
    if (op === "retire") state.selected = null;
    await loadTaxonomy(true);
  } else if (r.status === 409) {
    status(`Conflict: someone saved first (${r.data.detail}). Your change was not saved; reload and redo it.`, "error");
    const b = document.createElement("button"); b.id = "reload"; b.textContent = "Reload";
    b.addEventListener("click", () => loadTaxonomy());
    $("status").appendChild(b);
  } else {
    status(`Refused: ${r.data.detail}`, "error");
  }
}
$("save-node").addEventListener("click", () => {
  const n = byId(state.selected);
  const args = { id: n.id, name: $("f-name").value.trim(), description: $("f-description").value,
    examples: lines($("f-examples").value), keywords: lines($("f-keywords").value) };
  if (n.labelable) args.weight = parseFloat($("f-weight").value);
  edit("edit", args);
});
$("add-child").addEventListener("click", () =>
  edit("add", { name: $("add-name").value.trim(), parent: state.selected, kind: $("add-kind").value }));
$("add-main").addEventListener("click", () => edit("add", { name: $("add-main-name").value.trim(), kind: "main" }));
$("rename-id").addEventListener("click", () => edit("rename", { id: state.selected, new_id: $("new-id").value.trim() }));
$("move-node").addEventListener("click", () => edit("move", { id: state.selected, parent: $("move-to").value }));
$("merge-node").addEventListener("click", () => edit("merge", { src: state.selected, dst: $("merge-into").value }));
$("retire-node").addEventListener("click", () => edit("retire", { id: state.selected }));
$("tree-filter").addEventListener("input", renderTree);

// ---------- labelling ----------
function renderLeaves() {
  const f = $("leaf-filter").value.toLowerCase();
  const checked = new Set([...document.querySelectorAll("#leaves input:checked")].map((x) => x.value));
  const groups = {};
  for (const n of state.tax.nodes.filter((m) => m.labelable)) {
    if (f && !n.name.toLowerCase().includes(f) && !n.id.includes(f)) continue;
    (groups[n.main] = groups[n.main] || []).push(n);
  }
  $("leaves").innerHTML = Object.entries(groups).map(([main, ns]) =>
    `<div class="group"><h4>${esc(byId(main).name)}</h4>` + ns.map((n) =>
      `<label title="${esc(n.description)}"><input type="checkbox" value="${n.id}" ${checked.has(n.id) ? "checked" : ""}> ${esc(n.name)}</label>`
    ).join("") + "</div>").join("");
}
$("leaf-filter").addEventListener("input", renderLeaves);

async function nextSample() {
  const after = state.sample ? state.sample.key : "";
  const r = await api(`/api/samples/next?after=${encodeURIComponent(after)}`);
  if (r.status !== 200) { status(`Cannot load samples: ${r.data.detail}`, "error"); return; }
  if (!r.data.key) { state.sample = null; $("sample-key").textContent = "(all samples done)"; clearSample(); return; }
  await showSample(r.data.key);
}
function clearSample() { $("sample-images").innerHTML = ""; $("sample-conv").innerHTML = ""; $("sample-meta").textContent = ""; $("sample-tags").textContent = ""; }
async function showSample(key) {
  const r = await api(`/api/samples/${encodeURIComponent(key)}`);
  if (r.status !== 200) { status(`Cannot load sample: ${r.data.detail}`, "error"); return; }
  const s = r.data; state.sample = s; clearSample();
  $("sample-key").textContent = s.key;
  $("sample-meta").textContent = `${s.source} · ${s.task} · ${s.category}`;
  for (let i = 0; i < s.images.length; i++) {
    const resp = await fetch(`/api/samples/${encodeURIComponent(key)}/image/${i}`, { headers: headers() });
    const img = document.createElement("img"); img.className = "sample-image"; img.alt = `image ${i}`;
    img.src = URL.createObjectURL(await resp.blob());
    $("sample-images").appendChild(img);
  }
  const msgs = s.messages || [{ role: "user", content: s.text || "" }];
  $("sample-conv").innerHTML = msgs.map((m) => `<div class="msg ${m.role}"><b>${m.role}:</b> ${esc(m.content)}</div>`).join("");
  $("sample-tags").textContent = s.taxonomy.length ? "tagger: " + s.taxonomy.map((t) => `${t.id || t} (${t.confidence ?? ""})`).join(", ") : "";
  // the tagger's suggestions start checked; the annotator confirms or corrects them
  const suggested = new Set(s.taxonomy.map((t) => t.id || t));
  document.querySelectorAll("#leaves input").forEach((x) => { x.checked = suggested.has(x.value); });
  $("label-note").value = "";
}
async function decide(action) {
  if (!state.sample) return;
  let w; try { w = who(); } catch (e) { return; }
  const labels = [...document.querySelectorAll("#leaves input:checked")].map((x) => x.value);
  const key = state.sample.key;
  const r = await api(`/api/samples/${encodeURIComponent(key)}/label`,
    { action, labels: action === "label" ? labels : [], note: $("label-note").value, who: w });
  if (r.status !== 200) { status(`Refused: ${r.data.detail}`, "error"); return; }
  status(`${action === "label" ? "Labelled" : action === "skip" ? "Skipped" : "Flagged"} ${key}`, "ok");
  await nextSample();
}
$("label-save").addEventListener("click", () => decide("label"));
$("label-skip").addEventListener("click", () => decide("skip"));
$("label-flag").addEventListener("click", () => decide("flag"));

// ---------- tabs ----------
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", async () => {
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
  $("view-taxonomy").hidden = b.dataset.tab !== "taxonomy";
  $("view-label").hidden = b.dataset.tab !== "label";
  if (b.dataset.tab === "label" && !state.sample) await nextSample();
}));
$("who").value = localStorage.getItem("who") || "";
loadTaxonomy();
