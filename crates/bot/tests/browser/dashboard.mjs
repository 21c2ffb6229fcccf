#!/usr/bin/env node
// Drives the bot dashboard in headless Chromium (Debian's /usr/bin/chromium,
// through playwright-core: no browser download) and checks what a person
// would: log in, see the fleet live, watch a chart get live points, untick a
// collector and see its chart stop, run and cancel tasks, read the events.
//
// Run by the Rust test harness (which starts `bot up` and agents), or by
// hand (see README.md). Parameters, all from the environment:
//   BOT_URL            http://127.0.0.1:PORT (required)
//   BOT_TOKEN          an API token with the operate or admin scope (required)
//   BOT_AGENT_ID       the id of a running agent (steps but fleet-load)
//   BOT_AGENT_NAME     its name (task step)
//   BOT_SCREENSHOTS    directory for the PNGs (default $TMPDIR/bot-dashboard)
//   CHROMIUM           browser binary (default /usr/bin/chromium)
//   BOT_STEPS          comma-separated steps to run, in the order given;
//                      default all: login,agent-chart,untick-cpu,task,events,
//                      mobile,offline,fleet-load
//   BOT_INTERVAL_MS    the agent's measuring interval (default 1000)
//   BOT_EXPECT_AGENTS  rows the fleet-load step waits for (default: the
//                      number of agents /api/agents lists)
//   BOT_TIMEOUT_MS     longest wait for one thing (default 30000)
//   BOT_SYNC_TIMEOUT_MS  untick-cpu: longest wait for the config to be in
//                      sync (default 60000, or 10 intervals if longer)
//   BOT_OFFLINE_TIMEOUT_MS  offline: longest wait for the row (default 60000)
//   BOT_OBSERVE_MS     fleet-load: how long to watch live updates (default 5000)
//   BOT_CHECK_FLAG     checks: a file whose existence turns the agent's
//                      scheduled check `flag` CRITICAL (the step creates it
//                      once the page shows the check OK, and removes it)
//   BOT_HOLD_FILE      untick-cpu: once the cpu chart has stopped, write this
//                      file and wait (at most 60 s) until it is deleted before
//                      ticking cpu again, so that the caller can check the
//                      bus meanwhile (the agent's batches carry no cpu.*)
//
// Output: one JSON line per step on stdout, e.g.
//   {"step":"login","ok":true,"ms":812}
//   {"step":"agent-chart","ok":true,"ms":2410,"latency_ms":14,"points":61}
// and exit status 1 at the first failure ({"ok":false,"error":…} on stdout,
// the reason on stderr, a `<step>-failure.png` screenshot). Every browser
// console error and page error is printed to stderr; a page error (uncaught
// exception), a Content-Security-Policy violation, or the dashboard's error
// banner left showing fails the step.
//
// Login: all steps share one browser context (one cookie jar). The `login`
// step logs in through the page; when a run (a phase) does not start with
// it, the script logs in once through the API first (POST /api/login with
// BOT_TOKEN from the context's request client, which stores the session
// cookie in the context). No state file is written.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ALL_STEPS = ['login', 'agent-chart', 'untick-cpu', 'task', 'events', 'checks', 'mobile', 'offline', 'fleet-load'];

const env = process.env;
const BASE = (env.BOT_URL || '').replace(/\/+$/, '');
const TOKEN = env.BOT_TOKEN || '';
const AGENT_ID = env.BOT_AGENT_ID || '';
const AGENT_NAME = env.BOT_AGENT_NAME || '';
const SHOTS = env.BOT_SCREENSHOTS || path.join(os.tmpdir(), 'bot-dashboard');
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const INTERVAL = Number(env.BOT_INTERVAL_MS || 1000);
const TIMEOUT = Number(env.BOT_TIMEOUT_MS || 30000);
const OBSERVE = Number(env.BOT_OBSERVE_MS || 5000);
const SYNC_TIMEOUT = Number(env.BOT_SYNC_TIMEOUT_MS || Math.max(60000, 10 * INTERVAL));
const STEPS = (env.BOT_STEPS || ALL_STEPS.join(',')).split(',').map((s) => s.trim()).filter(Boolean);

function usage(msg) {
  process.stderr.write(`dashboard.mjs: ${msg}\n`);
  process.exit(2);
}
if (!BASE) usage('BOT_URL is not set');
if (!TOKEN) usage('BOT_TOKEN is not set');
for (const s of STEPS) if (!ALL_STEPS.includes(s)) usage(`unknown step ${JSON.stringify(s)} (steps: ${ALL_STEPS.join(', ')})`);
const needsAgent = STEPS.some((s) => s !== 'fleet-load');
if (needsAgent && !AGENT_ID) usage('BOT_AGENT_ID is not set');
if (STEPS.includes('task') && !AGENT_NAME) usage('BOT_AGENT_NAME is not set');
if (!fs.existsSync(CHROMIUM)) usage(`no browser at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
fs.mkdirSync(SHOTS, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sel = (testid, extra = '') => `[data-testid="${testid}"]${extra}`;
const agentRow = (online) => `${sel('fleet-row')}[data-agent-id="${AGENT_ID}"]${online === undefined ? '' : `[data-online="${online}"]`}`;
const CPU = sel('chart-cpu.usage');
const MEM = sel('chart-memory.used_percent');

class StepFailure extends Error {}
function fail(msg) {
  throw new StepFailure(msg);
}

/** Problems seen by the page of the current step that fail it. */
let problems = [];

function watch(page, step) {
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    const loc = msg.location();
    process.stderr.write(`[${step}] console error: ${text}${loc && loc.url ? ` (${loc.url}:${loc.lineNumber})` : ''}\n`);
    if (/Content Security Policy|CSP violation/i.test(text)) problems.push(`CSP violation: ${text}`);
  });
  page.on('pageerror', (err) => {
    process.stderr.write(`[${step}] page error: ${err.stack || err.message}\n`);
    problems.push(`page error: ${err.message}`);
  });
}

async function screenshot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, name), fullPage: false });
}

/** Waits until `fn(arg)` is truthy in the page; returns its value. */
async function until(page, what, fn, arg, timeout = TIMEOUT) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return await handle.jsonValue();
  } catch (e) {
    if (/Timeout/i.test(e.message)) fail(`timed out after ${timeout} ms waiting for ${what}`);
    throw e;
  }
}

async function dataOf(page, selector) {
  return page.$eval(selector, (el) => ({ ...el.dataset }));
}

async function bannerText(page) {
  return page.evaluate(() => {
    const b = document.querySelector('[data-testid="error-banner"]');
    if (!b || b.hidden) return '';
    return (b.querySelector('.banner-text') || b).textContent.trim();
  });
}

/** Sets a collector checkbox and waits for the PUT and then for "in sync". */
async function setCollector(page, name, on) {
  const box = page.locator(sel(`config-collector-${name}`));
  const put = page.waitForResponse((r) => r.request().method() === 'PUT' && /\/api\/agents\/[^/]+\/config$/.test(new URL(r.url()).pathname), { timeout: TIMEOUT });
  if (on) await box.check(); else await box.uncheck();
  const resp = await put;
  if (!resp.ok()) fail(`PUT config answered ${resp.status()}: ${await resp.text()}`);
  await until(page, `config-state to say in sync after ${on ? 'ticking' : 'unticking'} ${name}`,
    (s) => { const el = document.querySelector(s); return el && el.dataset.inSync === 'true'; }, sel('config-state'), SYNC_TIMEOUT);
  if ((await box.isChecked()) !== on) fail(`config-collector-${name} is ${on ? 'unticked' : 'ticked'} after the server answered`);
}

async function openAgent(page) {
  await page.goto(`${BASE}/agents/${encodeURIComponent(AGENT_ID)}`);
  await until(page, 'the cpu chart to have points',
    (s) => { const el = document.querySelector(s); return el && Number(el.dataset.points) > 0; }, CPU, Math.max(TIMEOUT, 10 * INTERVAL));
}

// ---- the steps ---------------------------------------------------------------

const steps = {
  async login(page) {
    await page.goto(`${BASE}/login`);
    await page.locator(sel('login-token')).fill(TOKEN);
    await page.locator(sel('login-submit')).click();
    await page.waitForURL((u) => u.pathname === '/fleet' || u.pathname === '/', { timeout: TIMEOUT });
    await page.locator(agentRow(true)).waitFor({ timeout: TIMEOUT });
    const count = await page.locator(sel('fleet-count')).textContent();
    await screenshot(page, 'fleet.png');
    return { fleet_count: count };
  },

  async 'agent-chart'(page) {
    await openAgent(page);
    const before = await dataOf(page, CPU);
    const t0 = Date.now();
    await until(page, 'a new live point in the cpu chart',
      ([s, last]) => { const el = document.querySelector(s); return el && Number(el.dataset.lastMs) > last && el.dataset.lastReceivedMs; },
      [CPU, Number(before.lastMs)], Math.max(TIMEOUT, 10 * INTERVAL));
    const after = await dataOf(page, CPU);
    const latency = Number(after.lastReceivedMs) - Number(after.lastMs);
    await screenshot(page, 'agent.png');
    return { latency_ms: latency, points: Number(after.points), waited_ms: Date.now() - t0, last_ms: Number(after.lastMs) };
  },

  async 'untick-cpu'(page) {
    await openAgent(page);
    await until(page, 'the config panel to say in sync', (s) => { const el = document.querySelector(s); return el && el.dataset.inSync === 'true'; },
      sel('config-state'), SYNC_TIMEOUT);
    if (!(await page.locator(sel('config-collector-cpu')).isChecked())) fail('cpu is not ticked at the start (a previous run left it off?)');
    await setCollector(page, 'cpu', false);
    await sleep(INTERVAL); // a round collected before the change may still be on its way
    const cpu0 = Number((await dataOf(page, CPU)).lastMs);
    const mem0 = Number((await dataOf(page, MEM)).lastMs);
    await sleep(3 * INTERVAL);
    const cpu1 = Number((await dataOf(page, CPU)).lastMs);
    const mem1 = Number((await dataOf(page, MEM)).lastMs);
    await screenshot(page, 'agent-cpu-off.png');
    if (cpu1 !== cpu0) fail(`the cpu chart went on after cpu was unticked: data-last-ms ${cpu0} -> ${cpu1}`);
    if (!(mem1 > mem0)) fail(`the memory chart did not advance while cpu was off: data-last-ms ${mem0} -> ${mem1}`);
    if (env.BOT_HOLD_FILE) {
      fs.writeFileSync(env.BOT_HOLD_FILE, 'cpu unticked\n');
      const until_ = Date.now() + 60000;
      while (fs.existsSync(env.BOT_HOLD_FILE)) {
        if (Date.now() > until_) fail(`${env.BOT_HOLD_FILE} was not deleted within 60 s`);
        await sleep(100);
      }
    }
    // Tick it again and see the chart come back.
    const t0 = Date.now();
    await setCollector(page, 'cpu', true);
    await until(page, 'the cpu chart to resume after ticking cpu again',
      ([s, last]) => { const el = document.querySelector(s); return el && Number(el.dataset.lastMs) > last; },
      [CPU, cpu1], Math.max(TIMEOUT, 10 * INTERVAL));
    return { cpu_last_ms: cpu1, memory_advanced_ms: mem1 - mem0, resumed_ms: Date.now() - t0 };
  },

  async task(page) {
    const submit = async (command) => {
      await page.goto(`${BASE}/tasks`);
      await page.locator(sel('task-kind')).selectOption('command');
      await page.locator(sel('task-text')).fill(command);
      await page.locator(sel('task-filter')).fill('');
      await page.locator(sel('task-targets')).fill(AGENT_NAME);
      await page.locator(sel('task-submit')).click();
      await page.waitForURL((u) => /^\/tasks\/[^/]+$/.test(u.pathname), { timeout: TIMEOUT });
      return decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    };
    // 1. A command that succeeds, with its output.
    const t0 = Date.now();
    const first = await submit('echo hello-from-browser');
    await page.locator(`${sel('target-row')}[data-state="SUCCEEDED"]`).waitFor({ timeout: TIMEOUT });
    const done = Date.now() - t0;
    await until(page, 'the output to contain hello-from-browser',
      (s) => [...document.querySelectorAll(s)].some((el) => el.textContent.includes('hello-from-browser')), sel('target-stdout'));
    await until(page, 'the task to be SUCCEEDED',
      (s) => { const el = document.querySelector(s); return el && el.dataset.state === 'SUCCEEDED'; }, sel('task-state'));
    await screenshot(page, 'task-succeeded.png');
    // 2. A long one, cancelled while it runs.
    const second = await submit('sleep 30');
    if (second === first) fail('the second task has the first one\'s id');
    await page.locator(`${sel('target-row')}[data-state="RUNNING"]`).waitFor({ timeout: TIMEOUT });
    const cancel = page.locator(sel('task-cancel'));
    await cancel.waitFor({ state: 'visible', timeout: TIMEOUT });
    const c0 = Date.now();
    await cancel.click();
    const how = await until(page, 'the task to be CANCELLED (or its target FAILED with "cancelled")',
      ([st, tr]) => {
        const s = document.querySelector(st);
        if (s && s.dataset.state === 'CANCELLED') return 'task CANCELLED';
        const row = document.querySelector(`${tr}[data-state="FAILED"]`);
        if (row && /cancel/i.test(row.textContent)) return 'target FAILED (cancelled)';
        return false;
      }, [sel('task-state'), sel('target-row')]);
    const cancelMs = Date.now() - c0;
    if (!(await cancel.isHidden())) {
      await until(page, 'the Cancel button to go once the task is final',
        (s) => { const el = document.querySelector(s); return !el || el.hidden; }, sel('task-cancel'));
    }
    await screenshot(page, 'task.png');
    return { echo_task: first, echo_ms: done, sleep_task: second, cancel_ms: cancelMs, cancelled: how };
  },

  async events(page) {
    await page.goto(`${BASE}/events`);
    await page.locator(sel('events-row')).first().waitFor({ timeout: TIMEOUT });
    const rows = await page.locator(sel('events-row')).count();
    await screenshot(page, 'events.png');
    return { rows };
  },

  async checks(page) {
    const flag = env.BOT_CHECK_FLAG;
    if (!flag) throw new Error('the checks step needs BOT_CHECK_FLAG');
    fs.rmSync(flag, { force: true });
    await page.goto(`${BASE}/checks`);
    await page.locator(sel('checks-which')).selectOption('all');
    const row = (state) => `${sel('checks-row')}[data-agent="${AGENT_NAME}"][data-check="flag"][data-state="${state}"]`;
    await page.locator(row('OK')).waitFor({ timeout: TIMEOUT });
    // The check goes CRITICAL on the agent: the row changes live, no reload.
    const t0 = Date.now();
    fs.writeFileSync(flag, 'down\n');
    try {
      await page.locator(row('CRITICAL')).waitFor({ timeout: TIMEOUT });
    } finally {
      fs.rmSync(flag, { force: true });
    }
    const changedMs = Date.now() - t0;
    // Problems only (the default view) lists it, worst first.
    await page.locator(sel('checks-which')).selectOption('problems');
    await page.locator(row('CRITICAL')).waitFor({ timeout: TIMEOUT });
    const first = await page.locator(sel('checks-row')).first().getAttribute('data-state');
    if (first !== 'CRITICAL') throw new Error(`the worst check is not listed first: ${first}`);
    await screenshot(page, 'checks.png');
    return { changed_ms: changedMs };
  },

  async mobile(page) {
    await page.setViewportSize({ width: 375, height: 812 });
    const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    const widths = {};
    await page.goto(`${BASE}/fleet`);
    await page.locator(agentRow()).waitFor({ timeout: TIMEOUT });
    widths.fleet = await overflow();
    await screenshot(page, 'fleet-mobile.png');
    await openAgent(page);
    widths.agent = await overflow();
    await screenshot(page, 'agent-mobile.png');
    await page.goto(`${BASE}/tasks`);
    await page.locator(sel('task-form')).waitFor({ timeout: TIMEOUT });
    await page.waitForLoadState('networkidle').catch(() => {});
    widths.tasks = await overflow();
    await screenshot(page, 'tasks-mobile.png');
    const bad = Object.entries(widths).filter(([, v]) => v > 0);
    if (bad.length) fail(`horizontal scrolling at 375 px: ${bad.map(([k, v]) => `${k} +${v} px`).join(', ')}`);
    return { overflow_px: widths };
  },

  async offline(page) {
    await page.goto(`${BASE}/fleet`);
    await page.locator(agentRow()).waitFor({ timeout: TIMEOUT });
    const t0 = Date.now();
    await page.locator(agentRow(false)).waitFor({ timeout: Number(env.BOT_OFFLINE_TIMEOUT_MS || 60000) });
    await screenshot(page, 'fleet-offline.png');
    return { waited_ms: Date.now() - t0 };
  },

  async 'fleet-load'(page, context) {
    let expect = Number(env.BOT_EXPECT_AGENTS || 0);
    if (!expect) {
      const r = await context.request.get(`${BASE}/api/agents`);
      if (!r.ok()) fail(`GET /api/agents answered ${r.status()}`);
      expect = (await r.json()).length;
    }
    const cdp = await context.newCDPSession(page);
    await cdp.send('Performance.enable');
    await page.addInitScript(() => {
      window.__longTasks = [];
      try {
        new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longTasks.push(e.duration); })
          .observe({ type: 'longtask', buffered: true });
      } catch { /* not supported */ }
    });
    await page.goto(`${BASE}/fleet`, { waitUntil: 'commit' });
    const loadMs = await until(page, `${expect} fleet rows`,
      (n) => (document.querySelectorAll('[data-testid="fleet-row"]').length >= n ? performance.now() : false), expect, Math.max(TIMEOUT, 60000));
    const metrics = async () => Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
    const m0 = await metrics();
    const loadLong = await page.evaluate(() => window.__longTasks.slice());
    // Watch live updates for a while: frames, long tasks, heap.
    const frames = await page.evaluate((ms) => new Promise((resolve) => {
      const start = performance.now();
      let n = 0;
      let last = start;
      let maxGap = 0;
      const seen = window.__longTasks.length;
      const f = (t) => {
        n++;
        maxGap = Math.max(maxGap, t - last);
        last = t;
        if (t - start < ms) requestAnimationFrame(f);
        else resolve({ fps: (n * 1000) / (t - start), max_frame_gap_ms: maxGap, long: window.__longTasks.slice(seen) });
      };
      requestAnimationFrame(f);
    }), OBSERVE);
    const m1 = await metrics();
    const rows = await page.locator(sel('fleet-row')).count();
    await screenshot(page, 'fleet-load.png');
    return {
      agents: rows,
      load_ms: Math.round(loadMs),
      heap_bytes: m0.JSHeapUsedSize,
      heap_after_bytes: m1.JSHeapUsedSize,
      dom_nodes: m1.Nodes,
      load_long_tasks: loadLong.length,
      load_longest_task_ms: Math.round(Math.max(0, ...loadLong)),
      observe_ms: OBSERVE,
      fps: Math.round(frames.fps * 10) / 10,
      max_frame_gap_ms: Math.round(frames.max_frame_gap_ms),
      long_tasks: frames.long.length,
      longest_task_ms: Math.round(Math.max(0, ...frames.long)),
    };
  },
};

// ---- the run -------------------------------------------------------------------

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
let loggedIn = false;
let exitCode = 0;

async function apiLogin() {
  const r = await context.request.post(`${BASE}/api/login`, { data: { token: TOKEN } });
  if (!r.ok()) fail(`POST /api/login answered ${r.status()}: ${await r.text()}`);
}

try {
  for (const name of STEPS) {
    const t0 = Date.now();
    let page = null;
    problems = [];
    try {
      if (name !== 'login' && !loggedIn) await apiLogin();
      page = await context.newPage();
      watch(page, name);
      const extra = (await steps[name](page, context)) || {};
      if (name === 'login') loggedIn = true;
      await sleep(100); // let late errors arrive
      if (problems.length) fail(problems.join('; '));
      const banner = await bannerText(page);
      if (banner) fail(`the dashboard shows an error: ${banner}`);
      process.stdout.write(`${JSON.stringify({ step: name, ok: true, ms: Date.now() - t0, ...extra })}\n`);
    } catch (e) {
      const msg = e instanceof StepFailure ? e.message : (e.stack || e.message);
      let banner = '';
      if (page) {
        banner = await bannerText(page).catch(() => '');
        await screenshot(page, `${name}-failure.png`).catch(() => {});
      }
      const full = `${msg}${banner && !msg.includes(banner) ? ` (error banner: ${banner})` : ''}`;
      process.stdout.write(`${JSON.stringify({ step: name, ok: false, ms: Date.now() - t0, error: full.split('\n')[0] })}\n`);
      process.stderr.write(`dashboard.mjs: step ${name} failed: ${full}\n`);
      exitCode = 1;
      break;
    } finally {
      if (page) await page.close().catch(() => {});
    }
  }
} finally {
  await browser.close().catch(() => {});
}
process.exit(exitCode);
