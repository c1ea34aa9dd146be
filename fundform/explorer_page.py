"""The explorer's one page: inline style and script, nothing fetched but the server's own JSON API.

Text from the server is set with textContent (never parsed as HTML); the maps are the report's own SVG, whose every
name and value is escaped where it is drawn (fundform/outputs/maps.py).
"""

from __future__ import annotations

import html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}
header{padding:.8rem 1.2rem;background:#24313f;color:#fff;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header h1{font-size:1.15rem;margin:0 1rem 0 0}header label{font-size:.9rem}
header select{font-size:.9rem;margin-left:.3rem}
main{display:grid;grid-template-columns:minmax(280px,340px) 1fr;gap:1rem;padding:1rem;max-width:1500px;margin:auto}
@media (max-width:900px){main{grid-template-columns:1fr}}
.panel{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem}
.slider{margin:.55rem 0}.slider label{display:block;font-size:.82rem}.slider input{width:100%}
.slider .v{font-variant-numeric:tabular-nums;font-weight:600;float:right}
.muted{color:#666;font-size:.8rem}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:1rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{padding:.2rem .4rem;border-bottom:1px solid #eee;
text-align:right}td:first-child,th:first-child{text-align:left}figure{margin:0}svg.chart{width:100%;height:auto}
svg .t{font-size:13px;font-weight:600}svg .k{font-size:10px}#status{font-size:.85rem}
button{font-size:.85rem;margin:.3rem .3rem 0 0}pre{white-space:pre-wrap;font-size:.75rem;background:#f3f3f3;padding:.5rem}
.areas use,.areas polygon{cursor:pointer}.err{color:#a40000;font-weight:600}
"""

SCRIPT = r"""
(function(){
const $ = (id) => document.getElementById(id);
const state = {formula: null, level: null, sliders: [], values: {}, area: null, seq: 0};
let updates = 0;
function fmt(x, d){ return Number(x).toLocaleString('en-GB', {minimumFractionDigits: d, maximumFractionDigits: d}); }
function money(x){ return (x < 0 ? '-' : '') + '\u00a3' + fmt(Math.abs(x), 0); }
function bn(x){ return '\u00a3' + fmt(x / 1e9, 3) + 'bn'; }
function setStatus(text, bad){ const s = $('status'); s.textContent = text; s.className = bad ? 'err' : 'muted'; }
async function api(path, body){
  const opts = body === undefined ? {} : {method: 'POST', headers: {'Content-Type': 'application/json'},
                                          body: JSON.stringify(body)};
  const r = await fetch(path, opts);
  const j = await r.json();
  if (!r.ok) { throw new Error(j.error + (j.bounds ? ' (bounds: ' + JSON.stringify(j.bounds) + ')' : '')); }
  return j;
}
function el(tag, text, attrs){ const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
  for (const k in (attrs || {})) e.setAttribute(k, attrs[k]); return e; }
function buildSliders(){
  const box = $('sliders'); box.replaceChildren();
  state.sliders.forEach((s) => {
    const wrap = el('div', undefined, {class: 'slider'});
    const lab = el('label'); lab.append(el('span', s.path)); const v = el('span', '', {class: 'v'});
    lab.append(v); wrap.append(lab);
    const inp = el('input', undefined, {type: 'range', min: s.min, max: s.max, step: s.step, 'data-path': s.path,
                                        'aria-label': s.path});
    inp.value = s.value; v.textContent = String(s.value);
    inp.addEventListener('input', () => { v.textContent = inp.value; });
    inp.addEventListener('change', () => { state.values[s.path] = Number(inp.value); v.textContent = inp.value;
                                           refresh(); });
    wrap.append(inp); wrap.append(el('div', s.label + (s.unit ? ' \u00b7 ' + s.unit : ''), {class: 'muted',
                                                                                         title: s.source}));
    box.append(wrap);
  });
}
function pathChart(years, totals){
  const NS = 'http://www.w3.org/2000/svg', W = 460, H = 220, L = 70, B = 30;
  const svg = document.createElementNS(NS, 'svg'); svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart'); svg.setAttribute('id', 'pathchart');
  const t = document.createElementNS(NS, 'text'); t.setAttribute('x', 8); t.setAttribute('y', 16);
  t.setAttribute('class', 't'); t.textContent = 'The settlement path: total grant (cash)'; svg.append(t);
  const vals = totals.grant, lo = Math.min(...vals) * 0.98, hi = Math.max(...vals) * 1.02;
  const x = (i) => L + i * (W - L - 20) / Math.max(1, years.length - 1);
  const y = (v) => H - B - (v - lo) / (hi - lo || 1) * (H - B - 30);
  const pl = document.createElementNS(NS, 'polyline');
  pl.setAttribute('points', vals.map((v, i) => `${x(i)},${y(v)}`).join(' '));
  pl.setAttribute('fill', 'none'); pl.setAttribute('stroke', '#542788'); pl.setAttribute('stroke-width', 2);
  svg.append(pl);
  vals.forEach((v, i) => { const c = document.createElementNS(NS, 'circle'); c.setAttribute('cx', x(i));
    c.setAttribute('cy', y(v)); c.setAttribute('r', 3.5); c.setAttribute('fill', '#542788');
    const tt = document.createElementNS(NS, 'title'); tt.textContent = years[i] + ': ' + bn(v); c.append(tt);
    svg.append(c);
    const lab = document.createElementNS(NS, 'text'); lab.setAttribute('x', x(i)); lab.setAttribute('y', H - 10);
    lab.setAttribute('class', 'k'); lab.setAttribute('text-anchor', 'middle'); lab.textContent = years[i];
    svg.append(lab);
    const vl = document.createElementNS(NS, 'text'); vl.setAttribute('x', x(i)); vl.setAttribute('y', y(v) - 8);
    vl.setAttribute('class', 'k'); vl.setAttribute('text-anchor', 'middle'); vl.textContent = bn(v);
    svg.append(vl); });
  return svg;
}
function table(id, rows){
  const tb = $(id); tb.replaceChildren();
  rows.forEach((r) => { const tr = el('tr'); tr.append(el('td', r.name + ' ' + r.code));
    tr.append(el('td', money(r.change_per_head))); tr.append(el('td', (r.distance_from_target * 100).toFixed(1) + '%'));
    tr.addEventListener('click', () => { state.area = r.code; loadWaterfall(); }); tb.append(tr); });
}
function showMaps(maps){
  const box = $('maps'); box.replaceChildren();
  ['change', 'hex', 'distance'].forEach((k) => { if (!maps[k]) return;
    const tpl = document.createElement('template'); tpl.innerHTML = maps[k];  // the server's escaped SVG
    box.append(tpl.content); });
  box.querySelectorAll('[data-area]').forEach((e) => e.addEventListener('click', () => {
    state.area = e.getAttribute('data-area'); loadWaterfall(); }));
}
async function refresh(){
  const seq = ++state.seq, t0 = performance.now();
  setStatus('computing\u2026');
  try {
    const r = await api('/api/scenario', {formula: state.formula, level: state.level, values: state.values});
    if (seq !== state.seq) return;  // a later slider move has been asked for
    const years = r.years, last = years.length - 1;
    const tot = $('totals'); tot.replaceChildren();
    years.forEach((y, i) => { const tr = el('tr'); tr.append(el('td', y)); tr.append(el('td', bn(r.totals.target[i])));
      tr.append(el('td', bn(r.totals.allocation[i]))); tr.append(el('td', bn(r.totals.grant[i])));
      tr.append(el('td', fmt(r.totals.population[i], 0))); tot.append(tr); });
    $('grant-last').textContent = '\u00a3' + fmt(r.totals.grant[last], 2);
    $('grant-last').setAttribute('data-pounds', r.totals.grant[last]);
    table('winners', r.winners); table('losers', r.losers);
    showMaps(r.maps);
    const pc = $('path'); pc.replaceChildren(pathChart(years, r.totals));
    $('command').textContent = r.command;
    state.last = r; updates += 1;
    const ms = performance.now() - t0;
    document.body.dataset.updates = String(updates); document.body.dataset.lastMs = ms.toFixed(1);
    document.body.dataset.engineMs = String(r.took_ms);
    setStatus(`updated in ${ms.toFixed(0)} ms (engine ${r.took_ms} ms) \u00b7 ${r.areas.code.length} areas`);
    if (!state.area || !r.areas.code.includes(state.area)) state.area = r.winners[0] && r.winners[0].code;
    clearTimeout(state.wfTimer);  // the waterfall is a whole run: asked for once the sliders rest
    state.wfTimer = setTimeout(loadWaterfall, 350);
  } catch (e) { if (seq === state.seq) setStatus(e.message, true); }
}
async function loadWaterfall(){
  if (!state.area) return;
  const box = $('waterfall'); const seq = state.seq;
  try {
    const w = await api('/api/waterfall', {formula: state.formula, level: state.level, values: state.values,
                                           area: state.area});
    if (seq !== state.seq) return;
    box.replaceChildren(el('h3', w.name + ' (' + w.area + ')'));
    w.years.forEach((y) => { const t = el('table'); const h = el('tr'); h.append(el('th', y.year));
      h.append(el('th', 'adds')); t.append(h);
      y.steps.forEach((s) => { const tr = el('tr'); tr.append(el('td', s.step)); tr.append(el('td', money(s.amount)));
        t.append(tr); });
      const g = el('tr'); g.append(el('td', 'grant')); g.append(el('td', '\u00a3' + fmt(y.grant, 2))); t.append(g);
      box.append(t); });
    document.body.dataset.waterfall = w.area;
    state.waterfalls = (state.waterfalls || 0) + 1; document.body.dataset.waterfalls = String(state.waterfalls);
  } catch (e) { box.replaceChildren(el('p', e.message, {class: 'err'})); }
}
async function save(){
  try {
    const s = await api('/api/save', {formula: state.formula, level: state.level, values: state.values});
    $('saved').textContent = s.toml + '\n# or: ' + s.command;
    const a = $('download'); a.href = 'data:text/plain;charset=utf-8,' + encodeURIComponent(s.toml);
    a.download = state.formula + '-scenario.toml'; a.hidden = false;
  } catch (e) { setStatus(e.message, true); }
}
async function load(formula, level){
  try {
    const s = await api('/api/setup?formula=' + encodeURIComponent(formula) + (level ? '&level=' +
                        encodeURIComponent(level) : ''));
    state.formula = s.formula; state.level = s.level; state.sliders = s.sliders; state.values = {};
    const fsel = $('formula'); fsel.replaceChildren();
    s.versions.forEach((v) => { const o = el('option', v, {value: v}); if (v === s.formula) o.selected = true;
                                fsel.append(o); });
    const lsel = $('level'); lsel.replaceChildren();
    s.levels.forEach((v) => { const o = el('option', v, {value: v}); if (v === s.level) o.selected = true;
                              lsel.append(o); });
    $('title').textContent = s.title + ' \u00b7 ' + s.start_year + ', ' + s.years + ' year(s)';
    buildSliders(); await refresh();
  } catch (e) { setStatus(e.message, true); }
}
$('formula').addEventListener('change', () => load($('formula').value));
$('level').addEventListener('change', () => load(state.formula, $('level').value));
$('reset').addEventListener('click', () => load(state.formula, state.level));
$('save').addEventListener('click', save);
window.addEventListener('error', (e) => { document.body.dataset.error = String(e.message); });
load(document.body.dataset.formula, document.body.dataset.level);
})();
"""


def page(explorer) -> str:
    from fundform.outputs import maps

    defs = maps.defs() if maps.available() else ""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>fundform explorer</title>
<style>{CSS}</style></head>
<body data-formula="{html.escape(explorer.default_formula)}" data-level="{html.escape(explorer.default_level)}">
{defs}
<header><h1>fundform explorer</h1><label>version <select id="formula"></select></label>
<label>level <select id="level"></select></label><span id="title"></span></header>
<main><section class="panel"><h2>The version's numbers</h2>
<p class="muted">Move a slider and let go: every figure is the engine's own, the same as <code>fundform run
--set</code> with these values.</p><div id="sliders"></div>
<button id="reset">Reset</button><button id="save">Save as scenario</button>
<a id="download" hidden>download the TOML</a><pre id="saved"></pre>
<p class="muted">Equivalent command:</p><pre id="command"></pre></section>
<section><p id="status" class="muted">loading\u2026</p>
<div class="panel"><b>Total grant, last year: <span id="grant-last"></span></b>
<table><thead><tr><th>year</th><th>target</th><th>allocation</th><th>grant</th><th>residents</th></tr></thead>
<tbody id="totals"></tbody></table></div>
<div class="grid"><div class="panel" id="maps"></div>
<div><div class="panel" id="path"></div>
<div class="panel"><h3>Winners: change against today's funding, per resident</h3><table><tbody id="winners"></tbody>
</table><h3>Losers</h3><table><tbody id="losers"></tbody></table></div>
<div class="panel" id="waterfall"><p class="muted">Click an area for its waterfall.</p></div></div></div>
</section></main>
<script>{SCRIPT}</script></body></html>
"""
