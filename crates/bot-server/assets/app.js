// The dashboard's entry point: the session, client-side routing (History
// API, real hrefs), the top nav, and the live stream's lifetime. Pages live
// in /assets/js/; no build step.

import { get, post, setCsrf, setUnauthorizedHandler } from './js/api.js';
import { initBanners, showError, showNotice, hideError, clear, h } from './js/ui.js';
import * as live from './js/live.js';
import { loginPage } from './js/login.js';
import { fleetPage } from './js/fleet.js';
import { agentPage } from './js/agent.js';
import { tasksPage, taskPage } from './js/tasks.js';
import { eventsPage } from './js/events.js';
import { checksPage } from './js/checks.js';

/** The logged-in token: {name, scope, csrf}, or null. */
export const session = { user: null };

const ROUTES = [
  { re: /^\/login\/?$/, nav: null, page: loginPage, public: true },
  { re: /^\/(?:fleet\/?)?$/, nav: 'fleet', page: fleetPage },
  { re: /^\/agents\/([^/]+)\/?$/, nav: 'fleet', page: agentPage, samples: true },
  { re: /^\/tasks\/?$/, nav: 'tasks', page: tasksPage },
  { re: /^\/tasks\/([^/]+)\/?$/, nav: 'tasks', page: taskPage },
  { re: /^\/checks\/?$/, nav: 'checks', page: checksPage },
  { re: /^\/events\/?$/, nav: 'events', page: eventsPage },
];

const main = document.getElementById('main');
let current = null; // the mounted page: {unmount?, refresh?}
let renderSeq = 0;

function setSession(s) {
  session.user = s ? { name: s.name, scope: s.scope, csrf: s.csrf } : null;
  setCsrf(s ? s.csrf : null);
  const bar = document.getElementById('topbar');
  bar.hidden = !s;
  document.getElementById('user-name').textContent = s ? `${s.name} (${s.scope})` : '';
}

export function canOperate() {
  const s = session.user && session.user.scope;
  return s === 'operate' || s === 'admin';
}

export function navigate(path, opts = {}) {
  hideError(); // an error belongs to the page it happened on
  if (opts.replace) history.replaceState(null, '', path);
  else if (path !== location.pathname + location.search) history.pushState(null, '', path);
  render();
}

function setTitle(t) {
  document.title = t ? `${t} · bot` : 'bot';
}

function render() {
  const seq = ++renderSeq;
  const path = location.pathname;
  const route = ROUTES.find((r) => r.re.test(path));
  if (!session.user && !(route && route.public)) {
    const next = path === '/' || path === '/login' ? '' : `?next=${encodeURIComponent(path + location.search)}`;
    history.replaceState(null, '', `/login${next}`);
    return render();
  }
  if (session.user && route && route.public) {
    history.replaceState(null, '', '/fleet');
    return render();
  }
  if (current && current.unmount) {
    try { current.unmount(); } catch (e) { console.error(e); }
  }
  current = null;
  clear(main);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (route && a.dataset.nav === route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!route) {
    setTitle('Not found');
    main.appendChild(h('section', { class: 'page' },
      h('h1', { text: 'Not found' }),
      h('p', {}, 'No page at ', h('code', { text: path }), '. ', h('a', { href: '/fleet', text: 'Go to the fleet' }))));
    return;
  }
  const m = path.match(route.re);
  if (session.user) live.connect(route.samples ? decodeURIComponent(m[1]) : null, checkSession);
  const ctx = {
    params: m.slice(1).map(decodeURIComponent),
    query: new URLSearchParams(location.search),
    navigate,
    setTitle,
    session,
    canOperate,
    login: onLogin,
    isCurrent: () => seq === renderSeq,
  };
  try {
    current = route.page(main, ctx) || {};
  } catch (e) {
    console.error(e);
    showError(`showing this page failed: ${e.message}`);
  }
}

function onLogin(s, next) {
  setSession(s);
  hideError();
  navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/fleet', { replace: true });
}

let ending = false;
function sessionEnded(msg) {
  if (ending || !session.user) return;
  ending = true;
  setSession(null);
  live.disconnect();
  showNotice(`Your session ended (${msg}); log in again.`);
  navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  ending = false;
}

/** For the live stream's retries: false when the session is gone. */
async function checkSession() {
  try {
    await get('/api/session');
    return true;
  } catch (e) {
    if (e.status === 401) {
      sessionEnded(e.message);
      return false;
    }
    return true;
  }
}

async function logout() {
  try {
    await post('/api/logout');
  } catch (e) {
    showError(`logout failed: ${e.message}`);
    return;
  }
  setSession(null);
  live.disconnect();
  navigate('/login', { replace: true });
}

function interceptLinks(ev) {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest && ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/') || url.pathname.startsWith('/assets/')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
}

async function start() {
  initBanners();
  document.addEventListener('click', interceptLinks);
  window.addEventListener('popstate', render);
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} (${e.sourceFile || ''}:${e.lineNumber || ''})`);
  });
  window.addEventListener('unhandledrejection', (e) => {
    showError(`unexpected error: ${(e.reason && e.reason.message) || e.reason}`);
  });
  live.on('resync', () => {
    if (current && current.refresh) current.refresh();
  });
  setUnauthorizedHandler(sessionEnded);
  try {
    setSession(await get('/api/session'));
  } catch (e) {
    setSession(null);
    if (e.status !== 401) showError(`checking the session failed: ${e.message}`);
  }
  render();
}

start();
