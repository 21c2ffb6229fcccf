// The agent page: who it is (facts), what it measures (the config panel,
// applied on every change), and live charts (history from /metrics, then
// each `samples` event appended while the 1 h range is shown).

import { get, put, withQuery } from './api.js';
import { h, clear, setText, setData, showError, fmtTime, fmtAgo, fmtDuration } from './ui.js';
import * as live from './live.js';
import { CHART_DEFS, CHART_METRICS, MetricChart, loadUPlot } from './charts.js';

const RANGES = {
  '1h': { label: '1 h', ms: 3600e3, step: null },
  '24h': { label: '24 h', ms: 86400e3, step: 60e3 },
  '30d': { label: '30 d', ms: 30 * 86400e3, step: 3600e3 },
};
const DEFAULT_COLLECTORS = ['load', 'cpu', 'memory', 'disk', 'diskio', 'net', 'uptime', 'stat', 'ps', 'files'];

function flatten(obj, prefix = '', out = []) {
  for (const k of Object.keys(obj || {}).sort()) {
    const v = obj[k];
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === 'object' && !Array.isArray(v)) flatten(v, key, out);
    else if (Array.isArray(v)) out.push([key, v.map((x) => (x && typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ')]);
    else out.push([key, v === null || v === undefined ? '' : String(v)]);
  }
  return out;
}

function kvTable(rows, testid) {
  return h('table', { class: 'kv', testid },
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', { text: k, attrs: { scope: 'row' } }), h('td', {}, v instanceof Node ? v : String(v ?? ''))))));
}

export function agentPage(main, ctx) {
  const id = ctx.params[0];
  ctx.setTitle(id);
  let gone = false;
  let agent = null;
  const timers = [];

  // ---- header ------------------------------------------------------------
  const dot = h('span', { class: 'dot' });
  const title = h('h1', { class: 'agent-title' }, dot, h('span', { text: id }));
  const meta = h('div', { class: 'agent-meta' });
  const lastRound = h('p', { class: 'muted last-round', testid: 'agent-last-round' });

  // ---- config panel ------------------------------------------------------
  const cfgPanel = configPanel(id, ctx, () => agent);

  // ---- facts -------------------------------------------------------------
  const facts = h('div', { class: 'facts' }, h('p', { class: 'muted', text: 'Loading…' }));

  // ---- charts ------------------------------------------------------------
  let range = RANGES[ctx.query.get('range')] ? ctx.query.get('range') : '1h';
  const rangeButtons = Object.entries(RANGES).map(([k, r]) => h('button', {
    type: 'button', class: 'seg', text: r.label, testid: `range-${k}`, dataset: { range: k },
    attrs: { 'aria-pressed': String(k === range) },
  }));
  const charts = CHART_DEFS.map((d) => new MetricChart(d));
  const chartNote = h('p', { class: 'muted chart-note', testid: 'chart-note' });
  const chartsSection = h('section', { class: 'panel charts-panel' },
    h('div', { class: 'panel-head' },
      h('h2', { text: 'Measurements' }),
      h('div', { class: 'segmented', attrs: { role: 'group', 'aria-label': 'Time range' } }, rangeButtons)),
    chartNote,
    h('div', { class: 'charts' }, charts.map((c) => c.root)));

  main.appendChild(h('section', { class: 'page page-agent' },
    h('p', { class: 'crumbs' }, h('a', { href: '/fleet', text: '← Fleet' })),
    h('div', { class: 'page-head' }, title, lastRound),
    meta,
    h('div', { class: 'agent-grid' },
      h('div', { class: 'agent-side' },
        cfgPanel.root,
        h('section', { class: 'panel facts-panel' }, h('h2', { text: 'Facts' }), facts)),
      chartsSection)));

  // The URL may name the agent by name; events carry its id.
  let agentId = id;

  function renderAgent(a) {
    agent = a;
    if (a.id && a.id !== agentId) {
      agentId = a.id;
      live.connect(agentId); // ask for this agent's samples by id
    }
    live.agentNames.set(a.id, a.name);
    ctx.setTitle(a.name || a.id);
    setText(title.lastChild, a.name || a.id);
    dot.className = a.online ? 'dot dot-on' : 'dot dot-off';
    dot.title = a.online ? 'online' : 'offline';
    setData(title, 'online', String(!!a.online));
    clear(meta);
    const key = a.key || {};
    meta.appendChild(kvTable([
      ['id', a.id],
      ['hostname', a.hostname || ''],
      ['status', a.online ? `online since ${fmtTime(a.started_ms)}` : `offline, last seen ${fmtTime(a.last_seen_ms)} (${fmtAgo(a.last_seen_ms)})`],
      ['addresses', (a.ips || []).join(', ')],
      ['version', a.version || ''],
      ['tags', (a.tags || []).join(', ') || '—'],
      ['pools', (a.pools || []).join(', ') || '—'],
      ['key', key.state || '—'],
      ['heartbeat', a.heartbeat_s ? `${a.heartbeat_s} s` : '—'],
      ['first seen', fmtTime(a.first_seen_ms)],
    ], 'agent-meta'));
    clear(facts);
    const rows = flatten(a.facts || {});
    facts.appendChild(rows.length ? kvTable(rows, 'agent-facts') : h('p', { class: 'muted', text: 'No facts reported.' }));
    cfgPanel.setOnline(!!a.online);
  }

  async function loadAgent() {
    try {
      const a = await get(`/api/agents/${encodeURIComponent(id)}`);
      if (!gone) renderAgent(a);
    } catch (e) {
      if (gone) return;
      showError(`loading agent ${id} failed: ${e.message}`);
      if (e.status === 404) { clear(facts); facts.appendChild(h('p', { class: 'field-error', text: e.message })); }
    }
  }

  // ---- metrics -----------------------------------------------------------
  let metricsSeq = 0;
  let metricsLoaded = false;
  let buffered = [];

  async function loadMetrics() {
    const my = ++metricsSeq;
    metricsLoaded = false;
    const r = RANGES[range];
    const until = Date.now();
    setText(chartNote, `Loading the last ${r.label}…`);
    try {
      const [resp] = await Promise.all([
        get(withQuery(`/api/agents/${encodeURIComponent(id)}/metrics`, {
          name: CHART_METRICS.join(','), since: Math.floor(until - r.ms), until, step: r.step,
        })),
        loadUPlot(),
      ]);
      if (gone || my !== metricsSeq) return;
      for (const c of charts) c.load(resp);
      metricsLoaded = true;
      const step = resp.step_ms ? `, step ${fmtDuration(resp.step_ms)}` : '';
      setText(chartNote, range === '1h'
        ? `Last hour (${resp.source || 'raw'}${step}), live.`
        : `Last ${r.label} (${resp.source || '?'}${step}); refreshed every minute.`);
      if (range === '1h') {
        const pending = buffered;
        buffered = [];
        for (const d of pending) applySamples(d.data, d.received);
      }
    } catch (e) {
      if (gone || my !== metricsSeq) return;
      setText(chartNote, `Could not load measurements: ${e.message}`);
      showError(`loading measurements failed: ${e.message}`);
    }
  }

  function applySamples(d, received) {
    const keep = RANGES['1h'].ms;
    for (const c of charts) c.append(d.time_ms, d.samples || [], received, keep);
  }

  function setRange(k) {
    if (k === range) return;
    range = k;
    for (const b of rangeButtons) b.setAttribute('aria-pressed', String(b.dataset.range === k));
    const q = new URLSearchParams(location.search);
    if (k === '1h') q.delete('range'); else q.set('range', k);
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? `?${s}` : ''));
    buffered = [];
    loadMetrics();
  }
  for (const b of rangeButtons) b.addEventListener('click', () => setRange(b.dataset.range));

  const offs = [
    live.on('samples', (d) => {
      if (d.agent_id !== agentId) return;
      const received = Date.now();
      setText(lastRound, `last round ${fmtTime(d.time_ms)}${d.interval_ms ? `, every ${fmtDuration(d.interval_ms)}` : ''}`);
      if (range !== '1h') return;
      if (!metricsLoaded) {
        buffered.push({ data: d, received });
        if (buffered.length > 100) buffered.shift();
        return;
      }
      applySamples(d, received);
    }),
    live.on('agent', (d) => {
      if (d.id !== agentId || !agent) return;
      renderAgent({ ...agent, online: !!d.online, name: d.name || agent.name, last_seen_ms: d.at_ms || agent.last_seen_ms, started_ms: d.online ? (d.at_ms || agent.started_ms) : agent.started_ms });
    }),
    live.on('config', (d) => {
      if (d.agent_id === agentId) cfgPanel.reload();
    }),
  ];
  // Long ranges are not live: refresh them every minute.
  timers.push(setInterval(() => { if (range !== '1h') loadMetrics(); }, 60e3));

  loadAgent();
  cfgPanel.reload();
  loadMetrics();

  return {
    refresh() {
      loadAgent();
      cfgPanel.reload();
      loadMetrics();
    },
    unmount() {
      gone = true;
      offs.forEach((f) => f());
      timers.forEach(clearInterval);
      cfgPanel.destroy();
      for (const c of charts) c.destroy();
    },
  };
}

/**
 * The measuring settings: a switch, an interval (seconds) and a checkbox per
 * known collector; every change is PUT at once (changes made while a PUT is
 * in flight are merged and sent next). Shows wanted vs in force, and
 * "applying…" (polling the config every second) until the agent is in sync.
 */
function configPanel(id, ctx, getAgent) {
  const url = `/api/agents/${encodeURIComponent(id)}/config`;
  let cfg = null;
  let inFlight = false;
  let pending = null;
  let pollTimer = 0;
  let unsyncedSince = 0;
  let online = true;
  let gone = false;
  const readOnly = !ctx.canOperate();

  const enabled = h('input', { type: 'checkbox', class: 'switch', testid: 'config-enabled', id: 'config-enabled', disabled: readOnly });
  const interval = h('input', {
    type: 'number', class: 'interval-input', testid: 'config-interval', id: 'config-interval',
    min: '0.1', step: 'any', inputMode: 'decimal', disabled: readOnly,
  });
  const intervalError = h('p', { class: 'field-error', testid: 'config-interval-error' });
  const boxes = h('div', { class: 'collectors', attrs: { role: 'group', 'aria-label': 'Collectors' } });
  const state = h('span', { class: 'config-state', testid: 'config-state', dataset: { inSync: 'false' }, text: 'loading…' });
  const compare = h('div', { class: 'config-compare' });
  const checkboxes = new Map();

  const root = h('section', { class: 'panel config-panel', testid: 'config-panel' },
    h('div', { class: 'panel-head' }, h('h2', { text: 'Measuring' }), state),
    readOnly ? h('p', { class: 'muted', text: 'Read-only: changing these needs a token with the operate scope.' }) : null,
    h('div', { class: 'config-row' },
      h('label', { class: 'switch-label', htmlFor: 'config-enabled' }, enabled, h('span', { text: 'Measure' })),
      h('label', { class: 'interval-label', htmlFor: 'config-interval' }, h('span', { text: 'every' }), interval, h('span', { text: 's' }))),
    intervalError,
    boxes,
    compare);

  function collectorsNow() {
    const known = (cfg && cfg.collectors_known) || DEFAULT_COLLECTORS;
    return known.filter((n) => checkboxes.get(n) && checkboxes.get(n).checked);
  }

  function shown() {
    // What the controls show: the wanted settings, else what is in force.
    return (cfg && (cfg.wanted || cfg.in_force)) || null;
  }

  function describe(m) {
    if (!m) return '—';
    return `${m.enabled ? 'on' : 'off'}, every ${m.interval_ms ? fmtDuration(m.interval_ms) : '?'}: ${(m.collectors || []).join(', ') || 'no collectors'}`;
  }

  function renderState() {
    let text;
    let sync = false;
    if (inFlight || pending) text = 'saving…';
    else if (!cfg) text = 'loading…';
    else if (cfg.in_sync) { text = `in sync${cfg.wanted ? ` (revision ${cfg.wanted.revision})` : ''}`; sync = true; }
    else if (!online) text = 'applying… (waiting for the agent: offline)';
    else if (unsyncedSince && Date.now() - unsyncedSince > 60e3) text = 'applying… (the agent has not confirmed yet)';
    else text = 'applying…';
    setText(state, text);
    setData(state, 'inSync', String(sync));
    state.className = `config-state ${sync ? 'ok' : 'busy'}`;
  }

  function render() {
    renderState();
    if (!cfg) return;
    const known = cfg.collectors_known || DEFAULT_COLLECTORS;
    const m = shown();
    const local = inFlight || pending; // don't overwrite what the user just did
    if ([...checkboxes.keys()].join() !== known.join()) {
      clear(boxes);
      checkboxes.clear();
      for (const n of known) {
        const box = h('input', { type: 'checkbox', testid: `config-collector-${n}`, id: `config-collector-${n}`, value: n, disabled: readOnly });
        box.addEventListener('change', () => send({ collectors: collectorsNow() }));
        checkboxes.set(n, box);
        boxes.appendChild(h('label', { class: 'collector', htmlFor: `config-collector-${n}` }, box, h('span', { text: n })));
      }
    }
    if (!local && m) {
      const on = new Set(m.collectors || []);
      for (const [n, box] of checkboxes) box.checked = on.has(n);
      enabled.checked = !!m.enabled;
      if (document.activeElement !== interval && m.interval_ms) interval.value = String(+(m.interval_ms / 1000).toFixed(3));
    }
    boxes.classList.toggle('is-off', !enabled.checked);
    clear(compare);
    const w = cfg.wanted;
    const f = cfg.in_force;
    compare.appendChild(h('table', { class: 'kv', testid: 'config-compare' }, h('tbody', {},
      h('tr', {}, h('th', { text: 'wanted', attrs: { scope: 'row' } }), h('td', { testid: 'config-wanted', text: w ? describe(w) : 'nothing set here: the agent\'s own settings apply' })),
      h('tr', {}, h('th', { text: 'in force', attrs: { scope: 'row' } }), h('td', { testid: 'config-in-force', text: f ? `${describe(f)}${f.local ? ' (local settings)' : ''}${f.revision !== undefined ? `, revision ${f.revision}` : ''}` : 'not reported by the agent' })),
      w && w.updated_by ? h('tr', {}, h('th', { text: 'changed', attrs: { scope: 'row' } }), h('td', { text: `${fmtTime(w.updated_ms)} by ${w.updated_by}` })) : null)));
  }

  function schedulePoll() {
    clearTimeout(pollTimer);
    if (gone || !cfg || cfg.in_sync || inFlight || pending) {
      if (cfg && cfg.in_sync) unsyncedSince = 0;
      return;
    }
    if (!unsyncedSince) unsyncedSince = Date.now();
    const slow = Date.now() - unsyncedSince > 120e3;
    pollTimer = setTimeout(reload, slow ? 5000 : 1000);
  }

  async function reload() {
    if (gone || inFlight || pending) return;
    try {
      const c = await get(url);
      if (gone || inFlight || pending) return;
      cfg = c;
      render();
    } catch (e) {
      if (gone) return;
      showError(`loading the measuring settings failed: ${e.message}`);
    }
    schedulePoll();
  }

  async function send(change) {
    pending = { ...(pending || {}), ...change };
    renderState();
    if (inFlight) return;
    while (pending && !gone) {
      const body = pending;
      pending = null;
      inFlight = true;
      renderState();
      try {
        cfg = await put(url, body);
        unsyncedSince = 0;
      } catch (e) {
        showError(`changing the measuring settings failed: ${e.message}`);
        pending = null;
        inFlight = false;
        await reload(); // show what is really wanted
        return;
      }
      inFlight = false;
    }
    render();
    schedulePoll();
  }

  enabled.addEventListener('change', () => {
    boxes.classList.toggle('is-off', !enabled.checked);
    send({ enabled: enabled.checked });
  });
  interval.addEventListener('change', () => {
    const s = Number(interval.value);
    if (!Number.isFinite(s) || s <= 0) {
      intervalError.textContent = 'The interval is a number of seconds above 0.';
      return;
    }
    intervalError.textContent = '';
    send({ interval_ms: Math.round(s * 1000) });
  });

  return {
    root,
    reload,
    setOnline(v) {
      online = v;
      renderState();
      if (getAgent() && cfg && !cfg.in_sync) schedulePoll();
    },
    destroy() {
      gone = true;
      clearTimeout(pollTimer);
    },
  };
}
