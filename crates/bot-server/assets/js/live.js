// Live updates: one EventSource on /api/events for the whole app (reopened
// with `?samples=<id>` while an agent page is open), a small pub/sub for the
// pages, and the state kept across pages: the last headline values of every
// agent (fleet sparklines) and the event log (events page).

import { get } from './api.js';
import { showError, showNotice, shortId } from './ui.js';

const TYPES = ['agent', 'task', 'config', 'samples', 'headline', 'check', 'dropped'];
const listeners = new Map(); // type -> Set(fn)

/** Subscribes to a live event type (or 'resync', 'log', 'status'); returns the unsubscribe. */
export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

function emit(type, data) {
  const set = listeners.get(type);
  if (!set) return;
  for (const fn of [...set]) {
    try {
      fn(data);
    } catch (e) {
      console.error(e);
      showError(`handling a live ${type} event failed: ${e.message}`);
    }
  }
}

// ---- state kept across pages ---------------------------------------------

export const SPARK_POINTS = 60;

/** agent id -> {cpu: [], memory: [], load: [], time_ms, last: {cpu, memory, load}} */
export const headlines = new Map();

/** agent id -> name, learnt from lists and events (for readable log lines). */
export const agentNames = new Map();

/** The event log, newest first, at most LOG_MAX entries. */
export const LOG_MAX = 500;
export const log = [];
const logKeys = new Set();
let logSeq = 0;

function pushHeadline(d) {
  let hl = headlines.get(d.agent_id);
  if (!hl) {
    hl = { cpu: [], memory: [], load: [], time_ms: 0, last: {} };
    headlines.set(d.agent_id, hl);
  }
  if (d.time_ms && d.time_ms <= hl.time_ms) return false; // duplicate or out of order
  hl.time_ms = d.time_ms || Date.now();
  for (const k of ['cpu', 'memory', 'load']) {
    const v = typeof d[k] === 'number' && Number.isFinite(d[k]) ? d[k] : null;
    const arr = hl[k];
    arr.push(v);
    if (arr.length > SPARK_POINTS) arr.splice(0, arr.length - SPARK_POINTS);
    hl.last[k] = v;
  }
  return true;
}

/**
 * Adds entries to the log: {at_ms, kind, text, href?, key?}. Entries with a
 * key already present are skipped (history seeding vs live events).
 */
export function addLog(entries) {
  const fresh = [];
  for (const e of entries) {
    if (e.key) {
      if (logKeys.has(e.key)) continue;
      logKeys.add(e.key);
    }
    fresh.push({ ...e, seq: ++logSeq });
  }
  if (!fresh.length) return;
  log.push(...fresh);
  log.sort((a, b) => (b.at_ms - a.at_ms) || (b.seq - a.seq));
  while (log.length > LOG_MAX) {
    const gone = log.pop();
    if (gone.key) logKeys.delete(gone.key);
  }
  emit('log', fresh);
}

function agentLabel(id, name) {
  return name || agentNames.get(id) || shortId(id);
}

export function taskEventText(d) {
  const t = d.target;
  if (t) {
    let s = `task ${shortId(d.task_id)}: ${agentLabel(t.agent_id, t.agent_name) || 'slot ' + t.seq} ${t.state}`;
    if (t.exit_code !== null && t.exit_code !== undefined) s += ` (exit ${t.exit_code})`;
    if (t.error) s += ` — ${t.error}`;
    return s;
  }
  return `task ${shortId(d.task_id)} ${d.state}`;
}

function logFromEvent(type, d) {
  if (type === 'agent') {
    if (d.name) agentNames.set(d.id, d.name);
    addLog([{
      at_ms: d.at_ms || Date.now(),
      kind: d.online ? 'online' : 'offline',
      text: `${agentLabel(d.id, d.name)} ${d.online ? 'came online' : 'went offline'}`,
      href: `/agents/${encodeURIComponent(d.id)}`,
    }]);
  } else if (type === 'task') {
    const t = d.target;
    addLog([{
      at_ms: d.at_ms || Date.now(),
      kind: 'task',
      state: t ? t.state : d.state,
      text: taskEventText(d),
      href: `/tasks/${encodeURIComponent(d.task_id)}`,
      key: `task:${d.task_id}:${t ? t.seq : '-'}:${t ? t.state : d.state}`,
    }]);
  } else if (type === 'check') {
    addLog([{
      at_ms: d.at_ms || Date.now(),
      kind: 'check',
      state: d.to,
      text: `${agentLabel(d.agent_id)} check ${d.check}: ${d.from || 'new'} → ${d.to}${d.output ? ` (${d.output})` : ''}`,
      href: '/checks',
    }]);
  }
}

let seeded = false;

/**
 * Seeds the log once per page load from what the API knows (agents'
 * online/offline times, recent tasks), so the events page is not empty
 * before the next transition.
 */
export async function seedLog() {
  if (seeded) return;
  seeded = true;
  try {
    const [agents, tasksResp] = await Promise.all([get('/api/agents'), get('/api/tasks?limit=50')]);
    const entries = [];
    for (const a of agents || []) {
      agentNames.set(a.id, a.name);
      const at = a.online ? (a.started_ms || a.last_seen_ms) : a.last_seen_ms;
      if (!at) continue;
      entries.push({
        at_ms: at,
        kind: a.online ? 'online' : 'offline',
        text: a.online ? `${a.name} online (since agent start)` : `${a.name} offline (last seen)`,
        href: `/agents/${encodeURIComponent(a.id)}`,
        history: true,
      });
    }
    const tasks = Array.isArray(tasksResp) ? tasksResp : (tasksResp && tasksResp.tasks) || [];
    for (const t of tasks) {
      entries.push({
        at_ms: t.created_ms, kind: 'task', state: 'WAITING', history: true,
        text: `task ${shortId(t.id)} submitted by ${t.created_by || '?'}`,
        href: `/tasks/${encodeURIComponent(t.id)}`, key: `task:${t.id}:submitted`,
      });
      if (t.finished_ms) {
        entries.push({
          at_ms: t.finished_ms, kind: 'task', state: t.state, history: true,
          text: `task ${shortId(t.id)} ${t.state}${t.reason ? ' — ' + t.reason : ''}`,
          href: `/tasks/${encodeURIComponent(t.id)}`, key: `task:${t.id}:-:${t.state}`,
        });
      }
    }
    addLog(entries);
  } catch (e) {
    seeded = false;
    showError(`loading the event history failed: ${e.message}`);
  }
}

// ---- the EventSource -----------------------------------------------------

let es = null;
let samplesFor = null;
let running = false;
let broken = false;
let retryTimer = 0;
let retryDelay = 1000;
let checkSession = null;
export let connected = false;

function setConnected(v) {
  connected = v;
  const el = document.getElementById('live-status');
  if (el) {
    el.dataset.live = String(v);
    el.textContent = v ? 'live' : 'reconnecting…';
  }
  emit('status', v);
}

function dispatch(type, raw) {
  let d;
  try {
    d = JSON.parse(raw);
  } catch (e) {
    showError(`a live ${type} event was not JSON: ${e.message}`);
    return;
  }
  if (!type || type === 'message') type = d && d.type;
  if (!TYPES.includes(type)) return;
  if (type === 'headline') {
    if (!pushHeadline(d)) return;
  } else if (type === 'dropped') {
    showNotice(`The server dropped ${d.count} live events for this page (too slow); reloading the data.`);
    addLog([{ at_ms: Date.now(), kind: 'notice', text: `${d.count} live events dropped; data reloaded` }]);
    emit('dropped', d);
    emit('resync', 'dropped');
    return;
  } else {
    logFromEvent(type, d);
  }
  emit(type, d);
}

function open() {
  clearTimeout(retryTimer);
  const url = samplesFor ? `/api/events?samples=${encodeURIComponent(samplesFor)}` : '/api/events';
  const src = new EventSource(url);
  es = src;
  for (const t of TYPES) src.addEventListener(t, (ev) => { if (es === src) dispatch(t, ev.data); });
  src.onmessage = (ev) => { if (es === src) dispatch('message', ev.data); };
  src.onopen = () => {
    if (es !== src) return;
    retryDelay = 1000;
    setConnected(true);
    if (broken) {
      broken = false;
      emit('resync', 'reconnected'); // events may have been missed meanwhile
    }
  };
  src.onerror = () => {
    if (es !== src) return;
    setConnected(false);
    broken = true;
    if (src.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error such as 401): check the session,
      // then retry with a growing delay.
      src.close();
      es = null;
      retryTimer = setTimeout(async () => {
        if (!running) return;
        if (checkSession && !(await checkSession())) return;
        if (running && !es) open();
      }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 15000);
    }
  };
}

/**
 * Starts (or keeps) the live stream; `agentId` asks for that agent's sample
 * events too. `sessionCheck` resolves false when the session is gone.
 */
export function connect(agentId, sessionCheck) {
  if (sessionCheck) checkSession = sessionCheck;
  const want = agentId || null;
  if (running && es && samplesFor === want) return;
  samplesFor = want;
  running = true;
  if (es) {
    es.close();
    es = null;
  }
  open();
}

export function disconnect() {
  running = false;
  clearTimeout(retryTimer);
  if (es) es.close();
  es = null;
  setConnected(false);
  headlines.clear();
  log.length = 0;
  logKeys.clear();
  seeded = false;
}
