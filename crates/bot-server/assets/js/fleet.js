// The fleet page: every agent, live. The rows are built once; live events
// only mark rows dirty, and one requestAnimationFrame pass updates them.
// Headline numbers and sparklines of rows off screen wait until the row
// scrolls into view (IntersectionObserver), so 1,000 agents stay smooth.

import { get, withQuery } from './api.js';
import { h, setText, setData, frameBatcher, debounce, showError, fmtPct, fmtNum, fmtAgo } from './ui.js';
import * as live from './live.js';
import { sparkCanvas, drawSpark } from './sparkline.js';

const METRICS = [
  { key: 'cpu', label: 'CPU', fmt: fmtPct, max: 100, color: '--c-cpu' },
  { key: 'memory', label: 'Memory', fmt: fmtPct, max: 100, color: '--c-mem' },
  { key: 'load', label: 'Load', fmt: (v) => fmtNum(v, 2), max: null, color: '--c-load' },
];

function osOf(a) {
  const f = a.facts || {};
  const os = f.os;
  if (os && typeof os === 'object') return os.name || os.id || os.family || JSON.stringify(os);
  return os ? String(os) : '';
}

function measureText(m) {
  if (!m) return '—';
  if (!m.enabled) return 'off';
  return `on · ${m.interval_ms ? +(m.interval_ms / 1000).toFixed(1) + ' s' : '?'}`;
}

export function fleetPage(main, ctx) {
  ctx.setTitle('Fleet');
  const colors = {};
  const cs = getComputedStyle(document.documentElement);
  for (const m of METRICS) colors[m.key] = cs.getPropertyValue(m.color).trim() || '#3b82f6';

  const filter = h('input', {
    type: 'search', class: 'filter-input', testid: 'fleet-filter', id: 'fleet-filter',
    placeholder: 'filter, e.g. os=linux and tag:web and not db*',
    value: ctx.query.get('filter') || '', spellcheck: false, autocomplete: 'off',
    attrs: { 'aria-describedby': 'fleet-filter-error' },
  });
  const online = h('select', { testid: 'fleet-online', attrs: { 'aria-label': 'Online' } },
    h('option', { value: '', text: 'all' }),
    h('option', { value: 'true', text: 'online' }),
    h('option', { value: 'false', text: 'offline' }));
  online.value = ctx.query.get('online') || '';
  const filterError = h('p', { class: 'field-error', id: 'fleet-filter-error', testid: 'fleet-filter-error', attrs: { role: 'alert' } });
  const count = h('p', { class: 'count', testid: 'fleet-count', text: 'Loading agents…' });
  // A grid of divs rather than a <table>: each row can then use
  // `content-visibility: auto`, so rows off screen cost no style, layout or
  // paint work at all (1,000 rows stay cheap).
  const cell = (cls, props = {}, ...kids) => h('span', { class: cls, attrs: { role: 'cell' }, ...props }, ...kids);
  const head = (cls, text) => h('span', { class: cls, text, attrs: { role: 'columnheader' } });
  const tbody = h('div', { class: 'fleet-body', attrs: { role: 'rowgroup' } });
  const empty = h('p', { class: 'empty', hidden: true, testid: 'fleet-empty' });
  const table = h('div', { class: 'fleet-table', testid: 'fleet-table', attrs: { role: 'table', 'aria-label': 'Agents' } },
    h('div', { class: 'fleet-head', attrs: { role: 'rowgroup' } },
      h('div', { class: 'fleet-hrow', attrs: { role: 'row' } },
        h('span', { class: 'c-dot', attrs: { role: 'columnheader' } }, h('span', { class: 'sr-only', text: 'Online' })),
        head('c-name', 'Name'), head('c-host', 'Hostname'), head('c-os', 'OS'), head('c-tags', 'Tags'),
        METRICS.map((m) => head('c-metric', m.label)),
        head('c-measure', 'Measuring'))),
    tbody);

  main.appendChild(h('section', { class: 'page page-fleet' },
    h('div', { class: 'page-head' },
      h('h1', { text: 'Fleet' }),
      count),
    h('div', { class: 'filter-bar' }, filter, online),
    filterError,
    table,
    empty));

  /** id -> {agent, tr, dot, name, host, os, tags, nums{}, sparks{}, measure} */
  const rows = new Map();
  const visible = new Set();
  const stale = new Set(); // headline changed while off screen
  const dirtyState = new Set();
  const dirtyHead = new Set();
  let loaded = false;
  let seq = 0;
  let gone = false;

  const io = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const rec = e.target.__rec;
      if (!rec) continue;
      if (e.isIntersecting) {
        visible.add(rec);
        if (stale.delete(rec)) dirtyHead.add(rec);
      } else visible.delete(rec);
    }
    if (dirtyHead.size) schedule();
  }, { rootMargin: '300px 0px' });

  // One row built by hand, cloned for every agent (much cheaper than
  // creating each cell); the sparkline canvases are added the first time a
  // row is on screen with values to draw.
  const template = (() => {
    const tr = h('div', { class: 'fleet-row', testid: 'fleet-row', attrs: { role: 'row' } },
      cell('c-dot', {}, h('span', { class: 'dot' })),
      cell('c-name', {}, h('a', { class: 'agent-link' })),
      cell('c-host', { dataset: { label: 'Host' } }),
      cell('c-os', { dataset: { label: 'OS' } }),
      cell('c-tags', { dataset: { label: 'Tags' } }),
      METRICS.map((m) => cell('c-metric', { dataset: { label: m.label, metric: m.key } }, h('span', { class: 'num', text: '—' }))),
      cell('c-measure', { dataset: { label: 'Measuring' } }));
    return tr;
  })();

  function buildRow(a) {
    const rec = { agent: a, nums: {}, sparks: {}, cells: {} };
    const tr = template.cloneNode(true);
    tr.dataset.agentId = a.id;
    tr.__rec = rec;
    rec.tr = tr;
    const td = tr.children;
    rec.dot = td[0].firstChild;
    rec.name = td[1].firstChild;
    rec.name.href = `/agents/${encodeURIComponent(a.id)}`;
    rec.host = td[2];
    rec.os = td[3];
    rec.tags = td[4];
    METRICS.forEach((m, i) => {
      rec.cells[m.key] = td[5 + i];
      rec.nums[m.key] = td[5 + i].firstChild;
    });
    rec.measure = td[5 + METRICS.length];
    updateState(rec);
    return rec;
  }

  function updateState(rec) {
    const a = rec.agent;
    setData(rec.tr, 'online', a.online ? 'true' : 'false');
    const dotCls = a.online ? 'dot dot-on' : 'dot dot-off';
    if (rec.dot.className !== dotCls) rec.dot.className = dotCls;
    rec.dot.title = a.online ? 'online' : `offline, last seen ${fmtAgo(a.last_seen_ms)}`;
    setText(rec.name, a.name || a.id);
    setText(rec.host, a.hostname || '');
    setText(rec.os, osOf(a));
    setText(rec.tags, (a.tags || []).join(', '));
    setText(rec.measure, measureText(a.measure));
    const m = a.measure;
    setData(rec.measure, 'enabled', m ? String(!!m.enabled) : 'unknown');
  }

  function updateHeadline(rec) {
    const hl = live.headlines.get(rec.agent.id);
    if (!hl) return;
    for (const m of METRICS) {
      setText(rec.nums[m.key], m.fmt(hl.last[m.key]));
      let c = rec.sparks[m.key];
      if (!c) {
        c = sparkCanvas(`${m.label} trend`);
        rec.sparks[m.key] = c;
        rec.cells[m.key].appendChild(c);
      }
      drawSpark(c, hl[m.key], colors[m.key], m.max);
    }
  }

  function updateCount() {
    let on = 0;
    for (const rec of rows.values()) if (rec.agent.online) on++;
    const n = rows.size;
    setText(count, `${n} agent${n === 1 ? '' : 's'}, ${on} online`);
    setData(count, 'total', n);
    setData(count, 'online', on);
    empty.hidden = !(loaded && n === 0);
    if (loaded && n === 0) setText(empty, filter.value.trim() || online.value ? 'No agent matches.' : 'No agents yet: start one with `bot agent`.');
  }

  const schedule = frameBatcher(() => {
    if (gone) return;
    for (const rec of dirtyState) updateState(rec);
    dirtyState.clear();
    for (const rec of dirtyHead) {
      if (visible.has(rec)) updateHeadline(rec);
      else stale.add(rec);
    }
    dirtyHead.clear();
    updateCount();
  });

  function reconcile(list) {
    const seen = new Set();
    const fresh = [];
    for (const a of list) {
      seen.add(a.id);
      live.agentNames.set(a.id, a.name);
      let rec = rows.get(a.id);
      if (!rec) {
        rec = buildRow(a);
        rows.set(a.id, rec);
        fresh.push(rec);
        if (live.headlines.has(a.id)) dirtyHead.add(rec);
      } else {
        rec.agent = a;
        dirtyState.add(rec);
      }
    }
    for (const [id, rec] of rows) {
      if (seen.has(id)) continue;
      io.unobserve(rec.tr);
      rec.tr.remove();
      rows.delete(id);
      visible.delete(rec);
      stale.delete(rec);
      dirtyHead.delete(rec);
      dirtyState.delete(rec);
    }
    // Keep the server's order (by name); move rows only when it differs.
    let i = 0;
    let inOrder = true;
    const kids = tbody.children;
    for (const a of list) {
      if (kids[i] !== rows.get(a.id).tr) { inOrder = false; break; }
      i++;
    }
    if (!inOrder || kids.length !== list.length) {
      const frag = document.createDocumentFragment();
      for (const a of list) frag.appendChild(rows.get(a.id).tr);
      tbody.appendChild(frag);
    }
    for (const rec of fresh) io.observe(rec.tr);
    loaded = true;
    schedule();
  }

  async function load() {
    const my = ++seq;
    const params = { filter: filter.value.trim(), online: online.value };
    const url = withQuery('/api/agents', params);
    const loc = withQuery('/fleet', params);
    if (location.pathname + location.search !== loc && ctx.isCurrent()) history.replaceState(null, '', loc);
    try {
      const list = await get(url);
      if (gone || my !== seq) return;
      filterError.textContent = '';
      filter.removeAttribute('aria-invalid');
      reconcile(Array.isArray(list) ? list : (list && list.agents) || []);
    } catch (e) {
      if (gone || my !== seq) return;
      if (e.status === 400) {
        filterError.textContent = e.message;
        filter.setAttribute('aria-invalid', 'true');
        if (!loaded) setText(count, 'Fix the filter to list agents.');
      } else {
        showError(`loading agents failed: ${e.message}`);
      }
    }
  }

  const refetchSoon = debounce(load, 1000);
  const loadDebounced = debounce(load, 300);
  filter.addEventListener('input', loadDebounced);
  filter.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { loadDebounced.cancel(); load(); }
  });
  online.addEventListener('change', () => { loadDebounced.cancel(); load(); });

  tbody.addEventListener('click', (e) => {
    if (e.target.closest('a')) return; // the link navigates by itself
    const tr = e.target.closest('.fleet-row[data-agent-id]');
    if (tr) ctx.navigate(`/agents/${encodeURIComponent(tr.dataset.agentId)}`);
  });

  const offs = [
    live.on('agent', (d) => {
      const rec = rows.get(d.id);
      if (!rec) { refetchSoon(); return; }
      rec.agent = { ...rec.agent, online: !!d.online, name: d.name || rec.agent.name, last_seen_ms: d.at_ms || rec.agent.last_seen_ms };
      dirtyState.add(rec);
      if (online.value && String(!!d.online) !== online.value) refetchSoon();
      schedule();
    }),
    live.on('headline', (d) => {
      const rec = rows.get(d.agent_id);
      if (!rec) return;
      dirtyHead.add(rec);
      schedule();
    }),
    live.on('config', (d) => {
      const rec = rows.get(d.agent_id);
      if (!rec) return;
      const m = rec.agent.measure || {};
      rec.agent = { ...rec.agent, measure: { ...m, enabled: d.enabled, interval_ms: d.interval_ms, collectors: d.collectors, revision: d.revision } };
      dirtyState.add(rec);
      schedule();
    }),
  ];

  load();
  return {
    refresh: load,
    unmount() {
      gone = true;
      offs.forEach((f) => f());
      io.disconnect();
      refetchSoon.cancel();
      loadDebounced.cancel();
    },
  };
}
