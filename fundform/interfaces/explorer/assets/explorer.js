
(function(){
const $ = (id) => document.getElementById(id);
const state = {formula: null, level: null, sliders: [], values: {}, area: null, seq: 0, undo: [], redo: [],
  bands: null, bandSeq: 0,
               year: null, sort: {key: 'change', desc: true}, filter: ''};
let updates = 0;
const GROUPS = [['need', 'Need: who needs what'], ['transition', 'Pace of change, floors and ceilings'],
                ['local_tax', 'Local tax'], ['control_total', 'Growth of the total'], ['streams', 'Funding streams'],
                ['years', 'Numbers dated by year']];
const PERCENT = new Set(['share', 'change per year', 'growth per year']);
const NF = {};  // one formatter per number of decimals: toLocaleString with options builds one on every call
function fmt(x, d){ return (NF[d] = NF[d] || new Intl.NumberFormat('en-GB', {minimumFractionDigits: d,
                                                                            maximumFractionDigits: d})).format(x); }
function money(x){ return (x < 0 ? '-' : '') + '\u00a3' + fmt(Math.abs(x), 0); }
function pounds2(x){ return (x < 0 ? '-' : '') + '\u00a3' + fmt(Math.abs(x), 2); }
function bn(x){ return '\u00a3' + fmt(x / 1e9, 3) + 'bn'; }
function m(x){ return x === null || x === undefined ? '' : (x < 0 ? '-' : '') + '\u00a3' + fmt(Math.abs(x) / 1e6, 1) + 'm'; }
function pct(x){ const s = (x * 100).toFixed(2); return (s === '0.00' || s === '-0.00') ? '0.00%' :
  (x > 0 ? '+' : '') + s + '%'; }
function shown(s, v){ return PERCENT.has(s.unit) ? (v * 100).toFixed(2) + '%' : String(+Number(v).toPrecision(6)); }
function words(path){  // a key path in plain words
  const p = path.split('.');
  if (p[0] === 'need' && p[1] === 'indicators') return ({elasticity: 'weight of ', min_multiplier: 'lowest multiplier for ',
      max_multiplier: 'highest multiplier for '})[p[3]] + p[2].replace(/_/g, ' ');
  if (p[1] === 'age_cost_curve') return 'cost weight of ages ' + p[3] + ' (relative to ages 35-44)';
  const t = {gap_closed_per_year: 'share of the gap to target closed a year', floor: 'floor: least change a year',
    ceiling: 'ceiling: most change a year', max_gain: 'most gain a year by convergence',
    max_reduction: 'most loss a year by convergence', gain_gap_closed: 'share of the distance below target closed',
    reduction_gap_closed: 'share of the distance above target removed', phasing_years: 'years to phase in',
    real_growth: 'real growth a year', equalisation: 'share of local tax resources deducted (equalisation)',
    share_for_devolved_services: 'share of council tax for these services'};
  const last = p[p.length - 1];
  const where = p[0] === 'streams' ? ' (' + p[1].replace(/_/g, ' ') + ')' : p[0] === 'years' ? ' (from ' + p[1] + ')' : '';
  return (t[last] || last.replace(/_/g, ' ')) + where;
}
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
function row(cells, heads){ const tr = el('tr'); cells.forEach((c) => tr.append(el(heads ? 'th' : 'td', c))); return tr; }
function current(path){ const s = state.sliders.find((x) => x.path === path);
  return path in state.values ? state.values[path] : s.value; }
function setValues(values, push){
  if (push) { state.undo.push(JSON.stringify(state.values)); state.redo = []; }
  state.values = values; syncSliders();
  if (push) history.pushState({values}, '', link());  // Back and Forward step through the moves
  refresh();
}
function syncSliders(){
  document.querySelectorAll('#sliders input[type=range]').forEach((inp) => {
    const s = state.sliders.find((x) => x.path === inp.dataset.path); const v = current(s.path);
    inp.value = v; inp.parentElement.querySelector('.v').textContent = shown(s, v);
    const typed = inp.parentElement.querySelector('input[type=number]'); if (typed) typed.value = v; });
  $('undo').disabled = !state.undo.length; $('redo').disabled = !state.redo.length;
}
function buildSliders(){
  const box = $('sliders'); box.replaceChildren();
  const sets = {};
  state.sliders.forEach((s) => { const g = s.path.split('.')[0]; (sets[g] = sets[g] || []).push(s); });
  GROUPS.forEach(([g, title]) => { if (!sets[g]) return;
    const fs = el('fieldset'); fs.append(el('legend', title));
    sets[g].forEach((s) => {
      const wrap = el('div', undefined, {class: 'slider'});
      const lab = el('label', undefined, {title: s.path + ' \u00b7 ' + s.unit + ' \u00b7 source: ' + s.source});
      lab.append(el('span', words(s.path))); const v = el('span', shown(s, s.value), {class: 'v'});
      lab.append(v); wrap.append(lab);
      const inp = el('input', undefined, {type: 'range', min: s.min, max: s.max, step: s.step, 'data-path': s.path,
                                          'aria-label': words(s.path)});
      inp.value = s.value;
      inp.addEventListener('input', () => { v.textContent = shown(s, Number(inp.value)); });
      inp.addEventListener('change', () => { setValues({...state.values, [s.path]: Number(inp.value)}, true); });
      const typed = el('input', undefined, {type: 'number', step: 'any', 'data-typed': s.path, size: 7,
                                            'aria-label': words(s.path) + ' (type a value)'});
      typed.value = s.value;
      typed.addEventListener('change', () => { if (typed.value === '') return;
        setValues({...state.values, [s.path]: Number(typed.value)}, true); });
      wrap.append(inp); wrap.append(typed); wrap.append(el('div', 'as shipped ' + shown(s, s.value) + ' \u00b7 ' + s.unit +
                                        ' \u00b7 slider ' + shown(s, s.min) + ' to ' + shown(s, s.max) + ' (type any value the version allows)',
                                        {class: 'muted', title: 'source: ' + s.source}));
      fs.append(wrap); });
    box.append(fs); });
}
function pathChart(years, totals){
  const NS = 'http://www.w3.org/2000/svg', W = 480, H = 230, L = 70, R = 60, B = 30;
  const svg = document.createElementNS(NS, 'svg'); svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart'); svg.setAttribute('id', 'pathchart');
  const t = document.createElementNS(NS, 'text'); t.setAttribute('x', 8); t.setAttribute('y', 16);
  t.setAttribute('class', 't'); t.textContent = 'Total ' + (nhs(state.last) ? 'allocation' : 'grant') +
    ' by year (cash): scenario purple, as shipped grey';
  svg.append(t);
  const all = totals.grant.concat(totals.grant_shipped), lo = Math.min(...all) * 0.98, hi = Math.max(...all) * 1.02;
  const x = (i) => L + i * (W - L - R) / Math.max(1, years.length - 1);
  const y = (v) => H - B - (v - lo) / (hi - lo || 1) * (H - B - 34);
  [[totals.grant_shipped, '#999'], [totals.grant, '#542788']].forEach(([vals, colour]) => {
    const pl = document.createElementNS(NS, 'polyline');
    pl.setAttribute('points', vals.map((v, i) => `${x(i)},${y(v)}`).join(' '));
    pl.setAttribute('fill', 'none'); pl.setAttribute('stroke', colour); pl.setAttribute('stroke-width', 2); svg.append(pl); });
  totals.grant.forEach((v, i) => { const c = document.createElementNS(NS, 'circle'); c.setAttribute('cx', x(i));
    c.setAttribute('cy', y(v)); c.setAttribute('r', 3.5); c.setAttribute('fill', '#542788');
    const tt = document.createElementNS(NS, 'title'); tt.textContent = years[i] + ': ' + bn(v); c.append(tt); svg.append(c);
    const lab = document.createElementNS(NS, 'text'); lab.setAttribute('x', x(i)); lab.setAttribute('y', H - 10);
    lab.setAttribute('class', 'k'); lab.setAttribute('text-anchor', 'middle'); lab.textContent = years[i]; svg.append(lab);
    const vl = document.createElementNS(NS, 'text'); vl.setAttribute('x', x(i)); vl.setAttribute('y', y(v) - 8);
    vl.setAttribute('class', 'k'); vl.setAttribute('text-anchor', 'middle'); vl.textContent = bn(v); svg.append(vl); });
  return svg;
}
function moversTable(id, rows, r){
  const tb = $(id); tb.replaceChildren();
  tb.append(row(['area', r.measure + ' (\u00a3 ' + r.per + ')', 'allocation\u2019s distance from target'], true));
  rows.forEach((x) => { const tr = row([x.name + ' (' + x.code + ')', pounds2(x.change_per_head),
                                        pct(x.distance_from_target)]);
    tr.addEventListener('click', () => openArea(x.code)); tb.append(tr); });
}
const COLUMNS = [  // [key, heading (or heading(response)), value(areas, t, i), format]
  ['name', 'area', (a, t, i) => a.name[i] + ' (' + a.code[i] + ')', String],
  ['today', (r) => nhs(r) ? 'baseline (cash, the base year)' : "today's funding (cash, base year)",
   (a, t, i) => a.today_cash[i], m],
  ['target', 'target', (a, t, i) => a.target[t][i], m],
  ['dist0', 'allocation\u2019s distance from target, as shipped', (a, t, i) => a.distance_shipped[t][i], pct],
  ['dist', 'allocation\u2019s distance from target, this scenario', (a, t, i) => a.distance[t][i], pct],
  ['allocation', 'allocation', (a, t, i) => a.allocation[t][i], m],
  ['cash', (r) => nhs(r) ? 'allocation against the baseline (cash)' : 'allocation against today\u2019s funding (cash)',
   (a, t, i) => a.today_cash[i] === null ? null :
     a.allocation[t][i] - a.today_cash[i], m],
  ['uprated', (r) => nhs(r) ? 'allocation against the baseline grown by base growth' :
   'allocation against today\u2019s funding uprated', (a, t, i) => a.allocation[t][i] - a.uprated[t][i], m],
  ['grant', 'grant', (a, t, i) => a.grant[t][i], m],
  ['perhead', (r) => fig(r) + ' ' + r.per + ' (\u00a3)', (a, t, i) => a.grant_per_head[t][i], pounds2],
  ['change', (r) => fig(r) + ': change from the version as shipped', (a, t, i) => a.grant[t][i] - a.grant_shipped[t][i], m],
];
function nhs(r){ return !!(r && r.words && r.words.kind === 'nhs_allocation'); }
function fig(r){ return nhs(r) ? 'allocation' : 'grant'; }  // an NHS allocation has no local tax: its grant is it
function cols(){  // the table's columns: with the band toggled on, the grant's 5th and 95th percentile over the draws
  const b = state.bands;
  const base = nhs(state.last) ? COLUMNS.filter((c) => c[0] !== 'grant') : COLUMNS;  // NHS: the allocation is the money
  if (!b || !state.last || b.formula !== state.last.formula || b.level !== state.last.level) return base;
  const over = ' over ' + b.draws + ' draws of the inputs';
  const at = base.findIndex((c) => c[0] === 'grant') + 1;  // beside the figure they qualify
  return [...base.slice(0, at), ['p5', 'grant, 5th percentile' + over, (a, t, i) => b.grant_p5[t][i], m],
          ['p95', 'grant, 95th percentile' + over, (a, t, i) => b.grant_p95[t][i], m], ...base.slice(at)];
}
async function loadBands(){  // the band beside each figure: the scenario over the shipped draws of the inputs
  const seq = ++state.bandSeq;
  if (!$('bands').checked) { state.bands = null; if (state.last) areasTable(state.last); return; }
  $('bands-status').textContent = 'drawing\u2026';
  try {
    const b = await api('/api/bands', {formula: state.formula, level: state.level, values: state.values});
    if (seq !== state.bandSeq || !$('bands').checked) return;  // a later scenario's band has been asked for
    state.bands = b; $('bands-status').textContent = b.draws + ' draws (' + b.sources.join(', ') + ')';
    areaYears();
    document.body.dataset.bands = String(seq);
  } catch (e) { state.bands = null; $('bands-status').textContent = e.message; }
  if (state.last) areasTable(state.last);
}
function esc(x){ return String(x).replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;',
                                                              "'": '&#39;'})[c]); }
function areasTable(r){  // sorts and filters every area; draws only the rows in view (see drawRows)
  const a = r.areas, t = r.years.indexOf(state.year) < 0 ? r.years.length - 1 : r.years.indexOf(state.year);
  const q = state.filter.toLowerCase();
  let idx = a.code.map((_, i) => i).filter((i) => !q ||
    (a.name[i] + ' ' + a.code[i] + ' ' + (a.within ? a.within[i] : '')).toLowerCase().includes(q));
  const columns = cols();
  const col = columns.find((c) => c[0] === state.sort.key) || columns[columns.length - 1];
  const key = idx.map((i) => col[2](a, t, i));
  const pos = new Map(idx.map((i, k) => [i, key[k]]));
  idx.sort((i, j) => { const x = pos.get(i), y = pos.get(j);
    const c = (typeof x === 'string') ? x.localeCompare(y) : ((x === null) - (y === null)) || (x - y);
    return state.sort.desc ? -c : c; });
  state.rows = {r, t, idx};
  const head = columns.map(([k, h]) => '<th class="sort" data-key="' + k + '">' + esc(typeof h === 'function' ? h(r) : h) +
    (state.sort.key === k ? (state.sort.desc ? ' \u25bc' : ' \u25b2') : '') + '</th>').join('');
  const box = $('areas-table');
  if (!$('all-areas') || $('all-areas').dataset.cols !== String(columns.length)) box.innerHTML =
    '<table id="all-areas" data-cols="' + columns.length + '"><colgroup><col class="name">' +
    columns.slice(1).map(() => '<col>').join('') + '</colgroup><thead><tr></tr></thead><tbody></tbody></table>';
  $('all-areas').tHead.rows[0].innerHTML = head;
  drawRows();
  $('areas-count').textContent = idx.length + ' of ' + a.code.length + ' areas, ' + r.years[t] + ' (money in \u00a3m, cash)';
  box.dataset.rows = String(idx.length);
}
function drawRows(){  // the rows in view and a screenful either side; spacer rows keep the scroll height true
  const {r, t, idx} = state.rows, a = r.areas, tb = $('all-areas').tBodies[0];
  // the box's height and scroll are read when it scrolls, not here: reading them would force a layout per move
  const h = state.rowHeight || 22, n = Math.ceil(420 / h), top = state.scrollTop || 0;
  const from = Math.max(0, Math.min(Math.floor(top / h) - n, idx.length - 3 * n)), to = Math.min(idx.length, from + 3 * n);
  const columns = cols();
  const cells = idx.slice(from, to).map((i) => '<tr data-area="' + esc(a.code[i]) + '">' + columns.map(([k, hd, v, f]) => {
    const x = v(a, t, i); const cls = typeof x === 'number' && (k === 'change' || k === 'cash' || k === 'uprated')
      ? (x > 0 ? ' class="pos"' : x < 0 ? ' class="neg"' : '') : '';
    return '<td' + cls + (k === 'name' ? ' title="' + esc(x) + '"' : '') + '>' + (x === null ? '' : esc(f(x))) +
           '</td>'; }).join('') + '</tr>').join('');
  const pad = (k) => k > 0 ? '<tr class="pad" style="height:' + (k * h) + 'px"><td colspan="' + columns.length + '"></td></tr>' : '';
  tb.innerHTML = pad(from) + cells + pad(idx.length - to);
  const one = tb.querySelector('tr[data-area]');
  if (!state.rowHeight && one && one.offsetHeight) { state.rowHeight = one.offsetHeight; drawRows(); }
}
$('areas-table').addEventListener('click', (e) => {
  const th = e.target.closest('th[data-key]');
  if (th) { const k = th.dataset.key; state.sort = {key: k, desc: state.sort.key === k ? !state.sort.desc : true};
            toTop(); areasTable(state.last); return; }
  const tr = e.target.closest('tr[data-area]');
  if (tr) openArea(tr.dataset.area); });
function toTop(){ state.scrollTop = 0; $('areas-table').scrollTop = 0; }  // a new order or filter starts at its top
$('areas-table').addEventListener('scroll', () => { if (state.scrolling) return; state.scrolling = true;
  requestAnimationFrame(() => { state.scrolling = false; state.scrollTop = $('areas-table').scrollTop; drawRows(); }); });
function csv(r){
  const a = r.areas, lines = [['area_code', 'area_name', 'financial_year', 'population', 'todays_funding_cash_gbp',
    'target_gbp', 'allocation_gbp', 'grant_gbp', 'grant_as_shipped_gbp', 'grant_per_head_gbp',
    'distance_from_target', 'distance_from_target_as_shipped'].join(',')];
  r.years.forEach((y, t) => a.code.forEach((c, i) => lines.push([c, '"' + a.name[i].replace(/"/g, '""') + '"', y,
    a.population[t][i], a.today_cash[i] === null ? '' : a.today_cash[i], a.target[t][i].toFixed(2), a.allocation[t][i].toFixed(2),
    a.grant[t][i].toFixed(2), a.grant_shipped[t][i].toFixed(2), a.grant_per_head[t][i].toFixed(2), a.distance[t][i],
    a.distance_shipped[t][i]].join(','))));
  return lines.join('\n') + '\n';
}
function drawMaps(frames){  // the version's maps, drawn once per version and level; each move repaints them
  const box = $('maps'); box.replaceChildren(); state.maps = {};
  ['change', 'hex', 'distance'].forEach((k) => { if (!frames[k]) return;
    const tpl = document.createElement('template'); tpl.innerHTML = frames[k];  // the server's escaped SVG
    const svg = tpl.content.querySelector('svg');
    state.maps[k] = {svg, shapes: Array.from(svg.querySelectorAll('[data-area]')).map((e) =>
      ({e, code: e.getAttribute('data-area'), tip: e.querySelector('title'), fill: e.getAttribute('fill')}))};
    box.append(tpl.content); });
  box.querySelectorAll('[data-area]').forEach((e) => e.addEventListener('click', () => {
    openArea(e.getAttribute('data-area')); }));
}
function wrapTitle(t, title){  // as maps.wrap: at most two lines of data-chars characters, broken between words
  const chars = Number(t.dataset.chars), lines = [''];
  title.split(' ').forEach((w) => { const l = lines[lines.length - 1];
    if (l && l.length + 1 + w.length > chars && lines.length < 2) lines.push(w);
    else lines[lines.length - 1] = l ? l + ' ' + w : w; });
  const spans = t.querySelectorAll('tspan');
  lines.forEach((l, i) => { let s = spans[i];
    if (!s) { s = document.createElementNS('http://www.w3.org/2000/svg', 'tspan');
      s.setAttribute('x', t.getAttribute('x')); s.setAttribute('dy', '16'); t.append(s); }
    s.textContent = l; });
  for (let i = lines.length; i < spans.length; i++) spans[i].remove();
}
function paintMaps(paints, codes){  // colours, tooltips, legend ends and titles from the server (maps.paint)
  const pos = new Map(codes.map((c, i) => [c, i]));
  Object.entries(paints).forEach(([k, p]) => { const m = state.maps[k]; if (!m) return;
    m.shapes.forEach((s) => { const i = pos.get(s.code); if (i === undefined) return;
      if (s.fill !== p.fill[i]) { s.e.setAttribute('fill', p.fill[i]); s.fill = p.fill[i]; }
      if (s.tip) s.tip.textContent = p.tip[i]; });
    if (m.title !== p.title) { wrapTitle(m.svg.querySelector('text.t'), p.title); m.title = p.title; }
    m.svg.querySelector(':scope > title').textContent = p.title;
    m.svg.setAttribute('aria-label', p.title);
    m.svg.querySelector('.legend .lo').textContent = p.low; m.svg.querySelector('.legend .hi').textContent = p.high;
    m.svg.querySelector('.legend .unit').textContent = p.unit; });
}
function link(){
  const v = Object.entries(state.values).map(([k, x]) => encodeURIComponent(k) + ':' + x).join(',');
  return '#f=' + encodeURIComponent(state.formula) + '&l=' + encodeURIComponent(state.level) + (v ? '&v=' + v : '');
}
function fromLink(){
  const h = new URLSearchParams(location.hash.slice(1)), values = {};
  (h.get('v') || '').split(',').filter(Boolean).forEach((kv) => { const i = kv.lastIndexOf(':');
    values[decodeURIComponent(kv.slice(0, i))] = Number(kv.slice(i + 1)); });
  return {formula: h.get('f'), level: h.get('l'), values};
}
async function refresh(){
  const seq = ++state.seq, t0 = performance.now();
  setStatus('computing\u2026');
  try {
    const r = await api('/api/scenario', {formula: state.formula, level: state.level, values: state.values});
    if (seq !== state.seq) return;  // a later slider move has been asked for
    const years = r.years, last = years.length - 1;
    if (!state.year || !years.includes(state.year)) state.year = years[last];
    const ysel = $('year'); ysel.replaceChildren(); years.forEach((y) => { const o = el('option', y, {value: y});
      if (y === state.year) o.selected = true; ysel.append(o); });
    const tot = $('totals'); tot.replaceChildren();
    const mv = r.move, pb = r.price_base_year;
    const f = fig(r);
    tot.append(row(['year', 'target', 'allocation', f + ', this scenario', f + ', as shipped',
                    f + ', this scenario (' + pb + ' prices)', 'moved between areas (cash, against as shipped)',
                    'areas held at a floor (as shipped)', r.population_label], true));
    years.forEach((y, i) => tot.append(row([y, bn(r.totals.target[i]), bn(r.totals.allocation[i]), bn(r.totals.grant[i]),
      bn(r.totals.grant_shipped[i]), bn(r.totals.grant_real[i]), bn(mv.moved[i]),
      mv.at_floor[i] + ' (' + mv.at_floor_shipped[i] + ')', fmt(r.totals.population[i], 0)])));
    $('grant-last-label').firstChild.textContent = 'Total ' + f + ', ' + years[last] + ' (cash): ';
    $('grant-last').textContent = bn(r.totals.grant[last]);
    $('grant-last').setAttribute('data-pounds', r.totals.grant[last]);
    $('today-total').textContent = r.totals.todays_funding === null ? '' : (nhs(r) ? 'The baseline (cash, the base ' +
      'year): ' : "Today's funding (cash, the base year): ") +
      bn(r.totals.todays_funding) + '; the total grows with the version\u2019s index, so a move shares it differently ' +
      'between areas and leaves each year\u2019s total as it was.';
    moveWords(r);
    $('movers-title').textContent = 'Who gains and who loses, ' + years[last] + ': ' + r.measure + ', \u00a3 ' + r.per;
    moversTable('winners', r.winners, r); moversTable('losers', r.losers, r);
    paintMaps(r.maps, r.areas.code);
    $('path').replaceChildren(pathChart(years, r.totals));
    $('command').textContent = r.command;
    state.last = r; areasTable(r);
    if ($('bands').checked) loadBands();  // the band follows the scenario
    history.replaceState(null, '', link()); $('share').href = link();
    const ms = performance.now() - t0;
    setStatus(`updated in ${ms.toFixed(0)} ms (engine ${r.took_ms} ms) \u00b7 ${r.areas.code.length} areas`);
    requestAnimationFrame(() => setTimeout(() => {  // after the frame that shows the new figures is drawn
      const b = document.body.dataset; b.lastMs = ms.toFixed(1); b.paintedMs = (performance.now() - t0).toFixed(1);
      b.engineMs = String(r.took_ms); updates += 1; b.updates = String(updates); }, 0));
    if (!state.area || !r.areas.code.includes(state.area)) state.area = r.winners[0] && r.winners[0].code;
    areaYears();
    clearTimeout(state.wfTimer);  // the waterfall is a whole run: asked for once the sliders rest
    state.wfTimer = setTimeout(loadWaterfall, 350);
  } catch (e) { if (seq === state.seq) setStatus(e.message, true); }
}
function moveWords(r){  // what the move did, at the top: the money it moved, who, the floors, the pace
  const mv = r.move, box = $('move-words'), y = mv.year, last = mv.moved.length - 1;
  $('move-title').textContent = mv.changed ? 'What this move did, against the version as shipped' :
    'The version as shipped';
  box.replaceChildren();
  const say = (text, id) => box.append(el('p', text, id ? {id} : undefined));
  if (!mv.changed) { say('Move a slider and let go: this panel then says how much money the move shifts between ' +
    'areas, who gains and loses most, how many areas are held at a floor and how long the slowest takes to reach ' +
    'its target.'); return; }
  say('It moves ' + bn(mv.moved[last]) + ' between areas in ' + y + ' (' + bn(mv.moved_total) + ' over the ' +
      mv.moved.length + ' years, cash): ' + mv.gainers + ' areas gain, ' + mv.losers + ' lose; each year\u2019s ' +
      'total is unchanged.', 'move-moved');
  const names = (xs) => xs.map((x) => x.name + ' (' + (x.change > 0 ? '+' : '-') + m(Math.abs(x.change)) + ')').join(', ');
  if (mv.largest_gains.length) say('Largest gains in ' + y + ': ' + names(mv.largest_gains) + '.');
  if (mv.largest_losses.length) say('Largest losses in ' + y + ': ' + names(mv.largest_losses) + '.');
  say('Areas held at a floor: ' + mv.at_floor[0] + ' in ' + r.years[0] + ' and ' + mv.at_floor[last] + ' in ' + y +
      ' (as shipped ' + mv.at_floor_shipped[0] + ' and ' + mv.at_floor_shipped[last] + '); to pay for the floors, ' +
      (mv.scale_back[0] * 100).toFixed(1) + '% of every other area\u2019s headroom above its floor is scaled back in ' +
      r.years[0] + ' (as shipped ' + (mv.scale_back_shipped[0] * 100).toFixed(1) + '%). An area below target that ' +
      'loses is paying for others\u2019 floors.', 'move-floors');
  const ytt = (n) => n === null ? 'never at this pace' : n + ' more year(s)';
  say('The slowest area reaches its target after ' + y + ' in ' + ytt(mv.longest_to_target) + ' (as shipped ' +
      ytt(mv.longest_to_target_shipped) + ').');
}
function areaYears(){  // one area's years: every figure of the scenario and the version as shipped, side by side
  const r = state.last, box = $('area-years');
  if (!r || !state.area) return;
  const a = r.areas, i = a.code.indexOf(state.area); if (i < 0) return;
  const b = state.bands && state.bands.formula === r.formula && state.bands.level === r.level ? state.bands : null;
  box.replaceChildren(el('h3', a.name[i] + ' (' + a.code[i] + '), year by year: this scenario beside the version as ' +
                             'shipped (money in \u00a3m, cash unless marked)', {id: 'area-title'}));
  const t = el('table', undefined, {id: 'area-table'});
  const f = fig(r);
  const heads = ['year', nhs(r) ? 'baseline (cash, the base year)' : "today's funding (cash, base year)", 'target',
    'allocation', 'distance from target', 'distance from target, as shipped', 'held at', 'held at, as shipped', f,
    f + ', as shipped', f + ': change', f + ' (' + r.price_base_year + ' prices)', f + ' ' + r.per + ' (\u00a3)'];
  if (b) heads.push('grant, 5th to 95th percentile over ' + b.draws + ' draws');
  t.append(row(heads, true));
  const held = (x) => x === 'none' ? '' : x;
  r.years.forEach((y, k) => { const cells = [y, a.today_cash[i] === null ? '' : m(a.today_cash[i]), m(a.target[k][i]),
    m(a.allocation[k][i]), pct(a.distance[k][i]), pct(a.distance_shipped[k][i]), held(a.bound[k][i]),
    held(a.bound_shipped[k][i]), m(a.grant[k][i]), m(a.grant_shipped[k][i]), m(a.grant[k][i] - a.grant_shipped[k][i]),
    m(a.grant_real[k][i]), pounds2(a.grant_per_head[k][i])];
    if (b) cells.push(m(b.grant_p5[k][i]) + ' to ' + m(b.grant_p95[k][i]));
    t.append(row(cells)); });
  const sc = el('div', undefined, {class: 'scroll'}); sc.append(t); box.append(sc);
  if (r.letter) {  // an NHS allocation: the letter's lines, this scenario's beside NHS England's published
    const lines = r.letter.rows.filter((x) => x.area_code === state.area);
    const lt = el('table', undefined, {id: 'area-letter'});
    lt.append(row(['year', 'line', 'baseline (\u00a3m)', 'base growth', 'convergence', 'allocation, this scenario (\u00a3m)',
                   'allocation, NHS England (\u00a3m)', 'difference (\u00a3)', 'distance from target'], true));
    lines.forEach((x) => lt.append(row([x.financial_year, x.line, m(x.baseline), pct(x.base_growth),
      x.convergence === null ? 'none' : pct(x.convergence), m(x.allocation),
      x.published_allocation === null ? 'not published' : m(x.published_allocation),
      x.difference === null ? '' : pounds2(x.difference), x.distance_from_target === null ? 'no target' :
      pct(x.distance_from_target)])));
    box.append(el('h4', 'The allocation letter\u2019s lines: this scenario beside NHS England\u2019s published (cash)'));
    const s2 = el('div', undefined, {class: 'scroll'}); s2.append(lt); box.append(s2);
  }
  document.body.dataset.areaYears = state.area;
}
function openArea(code){  // a person's choice of area (a row, a mover, a map): it wins over a pending filter move
  clearTimeout(state.filterTimer); state.area = code; loadWaterfall();
}
async function loadWaterfall(){
  if (!state.area) return;
  areaYears();
  const box = $('waterfall'), seq = state.seq, ask = state.wfAsked = (state.wfAsked || 0) + 1;
  try {
    const w = await api('/api/waterfall', {formula: state.formula, level: state.level, values: state.values,
                                           area: state.area});
    if (seq !== state.seq || ask !== state.wfAsked) return;  // a later scenario or area has been asked for
    box.replaceChildren(el('h3', 'Why ' + w.name + ' (' + w.area + ') gets its grant'));
    w.years.forEach((y) => { const t = el('table'); t.append(row([y.year + ': step', 'adds (\u00a3, cash)'], true));
      y.steps.forEach((s) => t.append(row([s.step, money(s.amount)])));
      t.append(row(['grant', '\u00a3' + fmt(y.grant, 2)])); const sc = el('div', undefined, {class: 'scroll'});
      sc.append(t); box.append(sc); });
    document.body.dataset.waterfall = w.area;
    state.waterfalls = (state.waterfalls || 0) + 1; document.body.dataset.waterfalls = String(state.waterfalls);
  } catch (e) { if (ask === state.wfAsked) box.replaceChildren(el('p', e.message, {class: 'err'})); }
}
async function save(){
  try {
    const s = await api('/api/save', {formula: state.formula, level: state.level, values: state.values});
    $('saved').textContent = s.toml + '\n# or: ' + s.command;
    const a = $('download'); a.href = 'data:text/plain;charset=utf-8,' + encodeURIComponent(s.toml);
    a.download = state.formula + '-scenario.toml'; a.hidden = false;
  } catch (e) { setStatus(e.message, true); }
}
async function design(){
  const box = $('design-out'); box.replaceChildren(el('p', 'searching\u2026', {class: 'muted'}));
  const free = {};
  [$('d1').value, $('d2').value].filter(Boolean).forEach((p) => { const s = state.sliders.find((x) => x.path === p);
    free[p] = [s.min, s.max]; });
  const body = {free, objective: $('dobj').value};
  if ($('dfall').value !== '') body.max_real_fall = Number($('dfall').value) / 100;
  if ($('dtarget').value !== '') body.within_target = Number($('dtarget').value) / 100;
  try {
    const r = await api('/api/design', {formula: state.formula, level: state.level, design: body});
    box.replaceChildren(el('p', r.feasible ? 'The constraints can be met (' + r.candidates + ' candidates, ' +
      Math.round(r.took_ms) + ' ms); the best is loaded below.' : 'No candidate of ' + r.candidates +
      ' meets every constraint: ' + r.binding.constraint + ' binds (short by ' + (+r.binding.short_by.toPrecision(3)) + ').',
      {class: r.feasible ? '' : 'err', id: 'design-answer'}));
    r.svg.forEach((svg) => { const tpl = document.createElement('template'); tpl.innerHTML = svg; box.append(tpl.content); });
    const t = el('table', undefined, {id: 'design-frontier'}); const names = Object.keys(free);
    t.append(row([...names.map(words), ...r.objectives, ''], true));
    r.frontier.forEach((f) => { const tr = row([...names.map((n) => String(+f.values[n].toPrecision(4))),
      ...f.objectives.map((o) => String(+Number(o).toPrecision(4)))]);
      const td = el('td'); const b = el('button', 'load'); b.addEventListener('click', () =>
        setValues({...state.values, ...f.values}, true)); td.append(b); tr.append(td); t.append(tr); });
    const sc = el('div', undefined, {class: 'scroll'}); sc.append(t); box.append(sc);
    document.body.dataset.design = r.feasible ? 'feasible' : 'infeasible';
  } catch (e) { box.replaceChildren(el('p', e.message, {class: 'err'})); }
}
async function load(formula, level, values){
  try {
    const s = await api('/api/setup?formula=' + encodeURIComponent(formula) + (level ? '&level=' +
                        encodeURIComponent(level) : ''));
    state.formula = s.formula; state.level = s.level; state.sliders = s.sliders; state.values = values || {};
    state.undo = []; state.redo = [];
    const fsel = $('formula'); fsel.replaceChildren();
    s.versions.forEach((v) => { const o = el('option', v, {value: v}); if (v === s.formula) o.selected = true;
                                fsel.append(o); });
    const lsel = $('level'); lsel.replaceChildren();
    s.levels.forEach((v) => { const o = el('option', v, {value: v}); if (v === s.level) o.selected = true;
                              lsel.append(o); });
    $('title').textContent = s.title + ' \u00b7 ' + s.start_year + ', ' + s.years + ' year(s) \u00b7 per head = ' + s.per;
    [$('d1'), $('d2')].forEach((sel, k) => { sel.replaceChildren(el('option', k ? '(none)' : '', {value: ''}));
      s.sliders.forEach((x, i) => { const o = el('option', words(x.path), {value: x.path}); if (i === k) o.selected = true;
                                    sel.append(o); }); });
    drawMaps(s.maps || {}); buildSliders(); syncSliders(); await refresh();
  } catch (e) { setStatus(e.message, true); }
}
$('formula').addEventListener('change', () => load($('formula').value));
$('level').addEventListener('change', () => load(state.formula, $('level').value));
$('reset').addEventListener('click', () => setValues({}, true));
$('undo').addEventListener('click', () => { if (!state.undo.length) return; state.redo.push(JSON.stringify(state.values));
  state.values = JSON.parse(state.undo.pop()); syncSliders(); refresh(); });
$('redo').addEventListener('click', () => { if (!state.redo.length) return; state.undo.push(JSON.stringify(state.values));
  state.values = JSON.parse(state.redo.pop()); syncSliders(); refresh(); });
$('save').addEventListener('click', save);
$('year').addEventListener('change', () => { state.year = $('year').value; areasTable(state.last); });
function shownAreas(){ return state.rows ? state.rows.idx.map((i) => state.last.areas.code[i]) : []; }
$('filter').addEventListener('input', () => { state.filter = $('filter').value; toTop(); areasTable(state.last);
  // the waterfall and the area's years follow the filter, once typing pauses: to the first area shown if the open
  // one is filtered out. Every keystroke cancels the pending move, and the move reads the filter as it then stands,
  // so a filter typed and cleared moves nothing (and a row clicked meanwhile is not overridden: see the click)
  clearTimeout(state.filterTimer);
  state.filterTimer = setTimeout(() => { const shown = shownAreas();
    if (shown.length && !shown.includes(state.area)) { state.area = shown[0]; loadWaterfall(); } }, 300); });
$('csv').addEventListener('click', () => { const a = $('csv-link');
  a.href = 'data:text/csv;charset=utf-8,' + encodeURIComponent(csv(state.last));
  a.download = state.formula + '-scenario-areas.csv'; a.hidden = false; a.click(); });
$('run-design').addEventListener('click', design);
async function fileOf(fmt){
  setStatus('writing the run\u2026');
  try {
    const r = await fetch('/api/download', {method: 'POST', headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({formula: state.formula, level: state.level, values: state.values, format: fmt})});
    if (!r.ok) { const j = await r.json(); throw new Error(j.error); }
    const name = (r.headers.get('Content-Disposition') || '').replace(/.*filename="([^"]+)".*/, '$1');
    const blob = await r.blob(); const a = $('file-link');
    a.href = URL.createObjectURL(blob); a.download = name; a.textContent = name; a.hidden = false;
    a.dataset.bytes = String(blob.size); document.body.dataset.download = fmt;
    setStatus('the run written as ' + name + ' (the same run as fundform run --set)');
  } catch (e) { setStatus(e.message, true); }
}
$('bands').addEventListener('change', loadBands);
$('copy-link').addEventListener('click', async () => {
  const url = location.origin + location.pathname + link();
  try { await navigator.clipboard.writeText(url); $('copied').textContent = 'copied: ' + url; }
  catch (e) { $('copied').textContent = 'your browser refused the clipboard: the link is ' + url; }
  document.body.dataset.copied = url; });
window.addEventListener('popstate', () => {  // Back or Forward: the scenario of that step
  const s = fromLink();
  if (s.formula === state.formula && (s.level || state.level) === state.level) {
    state.values = s.values; syncSliders(); refresh(); }
  else load(s.formula || document.body.dataset.formula, s.level, s.values); });
$('xlsx').addEventListener('click', () => fileOf('xlsx'));
$('parquet').addEventListener('click', () => fileOf('parquet'));
window.addEventListener('error', (e) => { document.body.dataset.error = String(e.message); });
const start = fromLink();
load(start.formula || document.body.dataset.formula, start.level || document.body.dataset.level, start.values);
})();
