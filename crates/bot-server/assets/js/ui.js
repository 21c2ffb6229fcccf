// DOM helpers (text only: server data never goes through innerHTML), the
// error and notice banners, formatting, and a requestAnimationFrame batcher.

/**
 * Creates an element. `props`: class, text, testid, dataset {}, attrs {},
 * on {event: fn}, and any DOM property (href, type, value, checked, …).
 * Children: nodes, strings (as text), arrays, null/false (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'testid') el.dataset.testid = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'attrs') for (const [a, av] of Object.entries(v)) { if (av !== null && av !== undefined && av !== false) el.setAttribute(a, av === true ? '' : String(av)); }
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
      else el[k] = v;
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Sets textContent only when it changed (no needless layout). */
export function setText(el, text) {
  const s = text === null || text === undefined ? '' : String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** Sets a data attribute only when it changed. */
export function setData(el, key, value) {
  const s = String(value);
  if (el.dataset[key] !== s) el.dataset[key] = s;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

// ---- banners -------------------------------------------------------------

let errorTimer = 0;
let noticeTimer = 0;

/** Shows an error to the user (the server's message); stays 15 s or until dismissed. */
export function showError(err) {
  const msg = typeof err === 'string' ? err : (err && err.message) || String(err);
  console.warn('bot dashboard:', msg);
  const banner = document.getElementById('error-banner');
  document.getElementById('error-text').textContent = msg;
  banner.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { banner.hidden = true; }, 15000);
}

export function hideError() {
  clearTimeout(errorTimer);
  document.getElementById('error-banner').hidden = true;
}

/** An informational notice (not an error); stays 8 s. */
export function showNotice(msg) {
  const banner = document.getElementById('notice-banner');
  document.getElementById('notice-text').textContent = msg;
  banner.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { banner.hidden = true; }, 8000);
}

export function initBanners() {
  document.getElementById('error-close').addEventListener('click', hideError);
  document.getElementById('notice-close').addEventListener('click', () => {
    document.getElementById('notice-banner').hidden = true;
  });
}

// ---- formatting ----------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

/** `2025-01-31 14:05:09` in local time; '—' for nothing. */
export function fmtTime(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `14:05:09` (today) for logs. */
export function fmtClock(ms) {
  const d = new Date(ms);
  const now = new Date();
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

/** `5 s ago`, `3 min ago`, … */
export function fmtAgo(ms, now = Date.now()) {
  if (!ms) return '—';
  const s = Math.round((now - ms) / 1000);
  if (s < 0) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A duration in ms as `850 ms`, `12.3 s`, `4 min 5 s`. */
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const m = Math.floor(ms / 60000);
  const sec = Math.round((ms % 60000) / 1000);
  if (m < 60) return sec ? `${m} min ${sec} s` : `${m} min`;
  return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${Math.floor(m / 60)} h`;
}

export function fmtNum(v, digits = 1) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v.toFixed(digits);
}

export function fmtPct(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return `${v.toFixed(1)} %`;
}

/** Bytes (or bytes/s with `suffix`) in binary-free SI units: 1.2 MB. */
export function fmtBytes(v, suffix = '') {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let x = Math.abs(v);
  while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  const s = x >= 100 || i === 0 ? x.toFixed(0) : x.toFixed(1);
  return `${v < 0 ? '-' : ''}${s} ${units[i]}${suffix}`;
}

/** Short form of a long id (UUIDs, hex). */
export function shortId(id) {
  return id && id.length > 12 ? id.slice(0, 8) : id || '';
}

// ---- batching ------------------------------------------------------------

/**
 * Returns `schedule()`: calls `fn` once on the next animation frame however
 * often it is scheduled before then. Falls back to a timer when the tab is
 * hidden (no frames) so state still catches up.
 */
export function frameBatcher(fn) {
  let queued = false;
  let timer = 0;
  const run = () => {
    if (!queued) return;
    queued = false;
    clearTimeout(timer);
    try {
      fn();
    } catch (e) {
      showError(`display update failed: ${e.message}`);
      console.error(e);
    }
  };
  return function schedule() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(run);
    if (document.hidden) timer = setTimeout(run, 1000);
  };
}

/** Debounces `fn` by `ms`; the returned function has `.cancel()`. */
export function debounce(fn, ms) {
  let t = 0;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

/** A state badge: `<span class="badge state-running">RUNNING</span>`. */
export function stateBadge(state, props = {}) {
  const s = String(state || '?');
  return h('span', { class: `badge state-${s.toLowerCase()}`, text: s, ...props, dataset: { state: s, ...(props.dataset || {}) } });
}

export function setBadge(el, state) {
  const s = String(state || '?');
  setText(el, s);
  setData(el, 'state', s);
  const cls = `badge state-${s.toLowerCase()}`;
  if (el.className !== cls) el.className = cls;
}

export const FINAL_TASK_STATES = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);
