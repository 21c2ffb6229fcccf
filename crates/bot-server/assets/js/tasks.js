// The tasks pages: a submit form and the recent tasks (live), and one task's
// targets with their output (live), with Cancel while it is not final.

import { get, post, withQuery } from './api.js';
import {
  h, clear, setText, setData, setBadge, stateBadge, showError, frameBatcher, debounce,
  fmtTime, fmtDuration, shortId, FINAL_TASK_STATES,
} from './ui.js';
import * as live from './live.js';

const RANK = { WAITING: 0, RUNNING: 1 }; // everything else is final: 2
const rank = (s) => (s in RANK ? RANK[s] : 2);

/** Splits a command line into argv like a POSIX shell would (quotes, backslashes; no expansion). */
export function splitArgv(text) {
  const out = [];
  let cur = '';
  let inTok = false;
  let q = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q === "'") {
      if (c === "'") q = null; else cur += c;
      continue;
    }
    if (q === '"') {
      if (c === '"') q = null;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1])) cur += text[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') { q = c; inTok = true; continue; }
    if (c === '\\' && i + 1 < text.length) { cur += text[++i]; inTok = true; continue; }
    if (/\s/.test(c)) {
      if (inTok) { out.push(cur); cur = ''; inTok = false; }
      continue;
    }
    cur += c;
    inTok = true;
  }
  if (q) throw new Error(`unclosed ${q} quote in the command`);
  if (inTok) out.push(cur);
  return out;
}

export function countsText(c) {
  if (!c) return '';
  const parts = [`${c.succeeded || 0}/${c.total || 0} succeeded`];
  for (const k of ['running', 'waiting', 'failed', 'timed_out', 'lost', 'skipped']) {
    if (c[k]) parts.push(`${c[k]} ${k.replace('_', ' ')}`);
  }
  return parts.join(', ');
}

function argsSummary(t) {
  const a = t.args || {};
  if (Array.isArray(a.command)) return a.command.join(' ');
  if (typeof a.shell === 'string') return a.shell;
  if (typeof a.script === 'string') return `script: ${a.script.split('\n').find((l) => l.trim() && !l.startsWith('#!')) || ''}`;
  return `${t.action || ''} ${JSON.stringify(a)}`;
}

function targetsSummary(t) {
  if (t.filter) return `filter ${t.filter}`;
  if (t.pool) return `pool ${t.pool}`;
  return '';
}

function numField(label, name, attrs, hint) {
  const input = h('input', { type: 'number', name, id: `task-${name}`, testid: `task-${name.replaceAll('_', '-')}`, step: 'any', ...attrs });
  return { input, el: h('label', { class: 'field field-num', htmlFor: `task-${name}` }, h('span', { text: label }), input, hint ? h('small', { class: 'muted', text: hint }) : null) };
}

// ---- /tasks ----------------------------------------------------------------

export function tasksPage(main, ctx) {
  ctx.setTitle('Tasks');
  let gone = false;

  const kind = h('select', { name: 'kind', id: 'task-kind', testid: 'task-kind' },
    h('option', { value: 'command', text: 'command (argv, no shell)' }),
    h('option', { value: 'shell', text: 'shell (sh -c)' }),
    h('option', { value: 'script', text: 'script (body on stdin)' }));
  const text = h('textarea', { name: 'text', id: 'task-text', testid: 'task-text', rows: 3, spellcheck: false, required: true, placeholder: 'systemctl restart nginx' });
  const interpreter = h('input', { type: 'text', name: 'interpreter', id: 'task-interpreter', testid: 'task-interpreter', value: '/bin/sh', spellcheck: false });
  const interpreterField = h('label', { class: 'field', htmlFor: 'task-interpreter', hidden: true }, h('span', { text: 'Interpreter' }), interpreter);
  const filter = h('input', { type: 'text', name: 'filter', id: 'task-filter', testid: 'task-filter', placeholder: 'os=linux and tag:web', spellcheck: false, autocomplete: 'off' });
  const targets = h('input', { type: 'text', name: 'targets', id: 'task-targets', testid: 'task-targets', placeholder: 'web1, web2 (ids or names)', spellcheck: false, autocomplete: 'off' });
  const parallel = numField('Parallel', 'parallel', { min: 1, step: 1, placeholder: 'all' });
  const failCount = numField('Fail count', 'fail_count', { step: 1, placeholder: '-1 (never)' });
  const failRate = numField('Fail rate', 'fail_rate', { min: 0, max: 1, placeholder: '1 (never)' });
  const timeout = numField('Timeout (s)', 'timeout_s', { min: 1, placeholder: 'default' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'task-submit', text: 'Run' });
  const formError = h('p', { class: 'field-error', testid: 'task-form-error', attrs: { role: 'alert' } });
  const readOnly = !ctx.canOperate();
  if (readOnly) submit.disabled = true;

  const form = h('form', { class: 'panel task-form', testid: 'task-form', attrs: { novalidate: true } },
    h('h2', { text: 'Run a command' }),
    readOnly ? h('p', { class: 'muted', text: 'Read-only: running tasks needs a token with the operate scope.' }) : null,
    h('div', { class: 'form-grid' },
      h('label', { class: 'field', htmlFor: 'task-kind' }, h('span', { text: 'Kind' }), kind),
      interpreterField,
      h('label', { class: 'field field-wide', htmlFor: 'task-text' }, h('span', { text: 'Command' }), text),
      h('label', { class: 'field', htmlFor: 'task-filter' }, h('span', { text: 'Filter' }), filter),
      h('label', { class: 'field', htmlFor: 'task-targets' }, h('span', { text: 'or targets (comma separated)' }), targets),
      parallel.el, failCount.el, failRate.el, timeout.el),
    formError,
    h('div', { class: 'form-actions' }, submit));

  kind.addEventListener('change', () => {
    interpreterField.hidden = kind.value !== 'script';
    text.rows = kind.value === 'script' ? 8 : 3;
    text.placeholder = { command: 'systemctl restart nginx', shell: 'df -h / | tail -1', script: 'set -e\napt-get update\n…' }[kind.value];
  });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    const body = {};
    try {
      const t = text.value;
      if (!t.trim()) throw new Error('Enter a command.');
      if (kind.value === 'command') {
        const argv = splitArgv(t.trim());
        if (!argv.length) throw new Error('Enter a command.');
        body.args = { command: argv };
      } else if (kind.value === 'shell') body.args = { shell: t };
      else body.args = { script: t, interpreter: interpreter.value.trim() || '/bin/sh' };
      const list = targets.value.split(',').map((s) => s.trim()).filter(Boolean);
      const f = filter.value.trim();
      if (!f && !list.length) throw new Error('Give a filter or targets.');
      if (f) body.filter = f;
      if (list.length) body.targets = list;
      for (const [field, key, int] of [[parallel, 'parallel', true], [failCount, 'fail_count', true], [failRate, 'fail_rate', false], [timeout, 'timeout_s', false]]) {
        const v = field.input.value.trim();
        if (!v) continue;
        const n = Number(v);
        if (!Number.isFinite(n) || (int && !Number.isInteger(n))) throw new Error(`${key}: ${v} is not ${int ? 'a whole number' : 'a number'}`);
        body[key] = n;
      }
    } catch (e) {
      formError.textContent = e.message;
      return;
    }
    submit.disabled = true;
    try {
      const task = await post('/api/tasks', body);
      const tid = task && (task.id || (task.task && task.task.id));
      if (!tid) throw new Error('the server did not return the task id');
      ctx.navigate(`/tasks/${encodeURIComponent(tid)}`);
    } catch (e) {
      if (gone) return;
      formError.textContent = e.message;
      showError(`submitting the task failed: ${e.message}`);
    } finally {
      submit.disabled = readOnly;
    }
  });

  // The list.
  const tbody = h('tbody');
  const totalEl = h('p', { class: 'count', testid: 'task-count' });
  const empty = h('p', { class: 'empty', text: 'No tasks yet.', hidden: true });
  const rows = new Map(); // id -> {task, tr, state, counts}
  const dirty = new Set();
  const schedule = frameBatcher(() => {
    for (const rec of dirty) {
      setBadge(rec.state, rec.task.state);
      setData(rec.tr, 'state', rec.task.state);
      setText(rec.counts, countsText(rec.task.counts));
    }
    dirty.clear();
  });

  function buildRow(t) {
    const rec = { task: t };
    rec.state = stateBadge(t.state, { testid: 'task-state' });
    rec.counts = h('td', { class: 'c-counts', text: countsText(t.counts), dataset: { label: 'Targets' } });
    rec.tr = h('tr', { testid: 'task-row', dataset: { taskId: t.id, state: t.state } },
      h('td', { class: 'c-id', dataset: { label: 'Task' } }, h('a', { href: `/tasks/${encodeURIComponent(t.id)}`, text: shortId(t.id), title: t.id })),
      h('td', { dataset: { label: 'State' } }, rec.state),
      h('td', { class: 'c-what', dataset: { label: 'Command' } }, h('code', { text: argsSummary(t) })),
      h('td', { class: 'c-targets', text: targetsSummary(t) || '—', dataset: { label: 'Filter' } }),
      rec.counts,
      h('td', { class: 'c-time', text: fmtTime(t.created_ms), dataset: { label: 'Created' } }),
      h('td', { class: 'c-by', text: t.created_by || '', dataset: { label: 'By' } }));
    return rec;
  }

  let seq = 0;
  async function load() {
    const my = ++seq;
    try {
      const resp = await get(withQuery('/api/tasks', { limit: 50 }));
      if (gone || my !== seq) return;
      const list = Array.isArray(resp) ? resp : (resp && resp.tasks) || [];
      const total = Array.isArray(resp) ? null : resp && resp.total;
      clear(tbody);
      rows.clear();
      dirty.clear();
      const frag = document.createDocumentFragment();
      for (const t of list) {
        const rec = buildRow(t);
        rows.set(t.id, rec);
        frag.appendChild(rec.tr);
      }
      tbody.appendChild(frag);
      empty.hidden = list.length > 0;
      setText(totalEl, total !== null && total !== undefined && total > list.length ? `${list.length} newest of ${total}` : `${list.length} task${list.length === 1 ? '' : 's'}`);
    } catch (e) {
      if (!gone) showError(`loading tasks failed: ${e.message}`);
    }
  }
  const loadSoon = debounce(load, 500);

  const off = live.on('task', (d) => {
    const rec = rows.get(d.task_id);
    if (!rec) { loadSoon(); return; }
    if (rank(d.state) >= rank(rec.task.state)) rec.task = { ...rec.task, state: d.state, counts: d.counts || rec.task.counts };
    else if (d.counts) rec.task = { ...rec.task, counts: d.counts };
    dirty.add(rec);
    schedule();
  });

  main.appendChild(h('section', { class: 'page page-tasks' },
    h('div', { class: 'page-head' }, h('h1', { text: 'Tasks' }), totalEl),
    form,
    h('section', { class: 'panel' },
      h('h2', { text: 'Recent tasks' }),
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table tasks-table', testid: 'task-list' },
          h('thead', {}, h('tr', {}, ['Task', 'State', 'Command', 'Filter', 'Targets', 'Created', 'By'].map((t) => h('th', { text: t, attrs: { scope: 'col' } })))),
          tbody)),
      empty)));

  load();
  return {
    refresh: load,
    unmount() {
      gone = true;
      off();
      loadSoon.cancel();
    },
  };
}

// ---- /tasks/<id> -------------------------------------------------------------

export function taskPage(main, ctx) {
  const id = ctx.params[0];
  ctx.setTitle(`Task ${shortId(id)}`);
  let gone = false;
  let task = null;
  const targets = new Map(); // seq -> {t, tr, out, ...}

  const state = stateBadge('…', { testid: 'task-state' });
  const cancel = h('button', { type: 'button', class: 'btn btn-danger', testid: 'task-cancel', text: 'Cancel', hidden: true });
  const info = h('div', { class: 'task-info' });
  const counts = h('p', { class: 'task-counts', testid: 'task-counts' });
  const bar = h('div', { class: 'progress', attrs: { 'aria-hidden': 'true' } });
  const tbody = h('tbody');
  const many = () => targets.size > 20;

  main.appendChild(h('section', { class: 'page page-task' },
    h('p', { class: 'crumbs' }, h('a', { href: '/tasks', text: '← Tasks' })),
    h('div', { class: 'page-head' }, h('h1', {}, 'Task ', h('code', { text: shortId(id), title: id })), state, cancel),
    info,
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', { text: 'Targets' }), counts),
      bar,
      h('div', { class: 'table-wrap' },
        h('table', { class: 'table targets-table', testid: 'target-list' },
          h('thead', {}, h('tr', {}, ['#', 'Agent', 'State', 'Exit', 'Duration', 'Error'].map((t) => h('th', { text: t, attrs: { scope: 'col' } })))),
          tbody)))));

  function renderTask() {
    setBadge(state, task.state);
    const final = FINAL_TASK_STATES.has(task.state);
    cancel.hidden = final;
    cancel.disabled = !ctx.canOperate();
    setText(counts, countsText(task.counts));
    renderBar();
    clear(info);
    const a = task.args || {};
    let what;
    if (Array.isArray(a.command)) what = h('code', { text: a.command.map((x) => (/[\s'"\\]/.test(x) || x === '' ? JSON.stringify(x) : x)).join(' ') });
    else if (typeof a.shell === 'string') what = h('code', { text: `sh -c ${JSON.stringify(a.shell)}` });
    else if (typeof a.script === 'string') what = h('pre', { class: 'out', text: a.script });
    else what = h('code', { text: JSON.stringify(a) });
    const rows = [
      ['action', task.action || 'exec'],
      ['runs', what],
      ...(typeof a.script === 'string' ? [['interpreter', a.interpreter || 'default']] : []),
      ['targets', task.filter ? `filter ${task.filter}` : task.pool ? `pool ${task.pool}` : 'listed'],
      ['parallel', task.parallel ?? '—'],
      ['fail count', task.fail_count === -1 ? 'never' : task.fail_count ?? '—'],
      ['fail rate', task.fail_rate === 1 ? 'never' : task.fail_rate ?? '—'],
      ['timeout', task.timeout_ms ? fmtDuration(task.timeout_ms) : '—'],
      ['created', `${fmtTime(task.created_ms)}${task.created_by ? ` by ${task.created_by}` : ''}`],
      ['finished', task.finished_ms ? `${fmtTime(task.finished_ms)} (${fmtDuration(task.finished_ms - task.created_ms)})` : '—'],
    ];
    if (task.reason) rows.push(['reason', task.reason]);
    if (task.retry_of) rows.push(['retry of', h('a', { href: `/tasks/${encodeURIComponent(task.retry_of)}`, text: shortId(task.retry_of) })]);
    info.appendChild(h('table', { class: 'kv', testid: 'task-info' }, h('tbody', {},
      rows.map(([k, v]) => h('tr', {}, h('th', { text: k, attrs: { scope: 'row' } }), h('td', {}, v instanceof Node ? v : String(v)))))));
  }

  function renderBar() {
    const c = task.counts || {};
    const total = c.total || 0;
    clear(bar);
    if (!total) return;
    for (const k of ['succeeded', 'failed', 'timed_out', 'lost', 'skipped', 'running', 'waiting']) {
      if (!c[k]) continue;
      const seg = h('span', { class: `seg-${k}`, title: `${c[k]} ${k}` });
      seg.style.width = `${(100 * c[k]) / total}%`;
      bar.appendChild(seg);
    }
  }

  function buildTarget(t) {
    const rec = { t };
    rec.state = stateBadge(t.state);
    rec.exit = h('td', { class: 'c-exit', dataset: { label: 'Exit' } });
    rec.dur = h('td', { class: 'c-dur', dataset: { label: 'Duration' } });
    rec.err = h('td', { class: 'c-err', dataset: { label: 'Error' } });
    rec.stdout = h('pre', { class: 'out', testid: 'target-stdout' });
    rec.stderr = h('pre', { class: 'out out-err', testid: 'target-stderr' });
    rec.outWrap = h('details', { class: 'target-output' },
      h('summary', { text: 'output' }),
      h('div', { class: 'out-label', text: 'stdout' }), rec.stdout,
      h('div', { class: 'out-label', text: 'stderr' }), rec.stderr);
    const agent = t.agent_id
      ? h('a', { href: `/agents/${encodeURIComponent(t.agent_id)}`, text: t.agent_name || shortId(t.agent_id) })
      : h('span', { class: 'muted', text: 'slot (not taken yet)' });
    rec.tr = h('tr', { class: 'target-row', testid: 'target-row', dataset: { seq: t.seq, agentId: t.agent_id || '', state: t.state } },
      h('td', { class: 'c-seq', text: t.seq, dataset: { label: '#' } }),
      h('td', { class: 'c-agent', dataset: { label: 'Agent' } }, agent),
      h('td', { dataset: { label: 'State' } }, rec.state),
      rec.exit, rec.dur, rec.err);
    rec.outTr = h('tr', { class: 'output-row', hidden: true }, h('td', { colSpan: 6 }, rec.outWrap));
    updateTarget(rec);
    return rec;
  }

  function updateTarget(rec) {
    const t = rec.t;
    setBadge(rec.state, t.state);
    setData(rec.tr, 'state', t.state);
    setText(rec.exit, t.exit_code !== null && t.exit_code !== undefined ? String(t.exit_code) : t.signal ? `signal ${t.signal}` : '—');
    setText(rec.dur, t.started_ms ? fmtDuration((t.finished_ms || Date.now()) - t.started_ms) : '—');
    setText(rec.err, t.error || '');
    setText(rec.stdout, t.stdout || '');
    setText(rec.stderr, t.stderr || '');
    rec.stdout.hidden = !t.stdout;
    rec.stdout.previousSibling.hidden = !t.stdout;
    rec.stderr.hidden = !t.stderr;
    rec.stderr.previousSibling.hidden = !t.stderr;
    const hasOut = !!(t.stdout || t.stderr);
    rec.outTr.hidden = !hasOut;
    if (hasOut && !rec.opened && !many()) { rec.outWrap.open = true; rec.opened = true; }
  }

  function renderTargets(list) {
    clear(tbody);
    targets.clear();
    const frag = document.createDocumentFragment();
    for (const t of list) {
      const rec = buildTarget(t);
      targets.set(t.seq, rec);
      frag.append(rec.tr, rec.outTr);
    }
    tbody.appendChild(frag);
    for (const rec of targets.values()) updateTarget(rec);
  }

  let seq = 0;
  let loaded = false;
  let early = [];
  async function load() {
    const my = ++seq;
    try {
      const d = await get(`/api/tasks/${encodeURIComponent(id)}`);
      if (gone || my !== seq) return;
      const { targets: list, ...rest } = d;
      task = rest;
      renderTask();
      renderTargets(list || []);
      loaded = true;
      const evs = early;
      early = [];
      for (const e of evs) apply(e);
      schedule();
    } catch (e) {
      if (gone) return;
      showError(`loading task ${id} failed: ${e.message}`);
      if (e.status === 404) setBadge(state, 'NOT FOUND');
    }
  }

  const dirty = new Set();
  let taskDirty = false;
  const schedule = frameBatcher(() => {
    if (gone || !task) return;
    if (taskDirty) renderTask();
    taskDirty = false;
    for (const rec of dirty) updateTarget(rec);
    dirty.clear();
  });

  function apply(d) {
    if (rank(d.state) >= rank(task.state) && d.state !== task.state) {
      task = { ...task, state: d.state };
      if (FINAL_TASK_STATES.has(d.state) && !task.finished_ms) task.finished_ms = d.at_ms;
      taskDirty = true;
    }
    if (d.counts) { task = { ...task, counts: d.counts }; taskDirty = true; }
    const t = d.target;
    if (t) {
      const rec = targets.get(t.seq);
      if (!rec) { load(); return; }
      if (rank(t.state) >= rank(rec.t.state)) {
        rec.t = { ...rec.t, ...t };
        dirty.add(rec);
      }
    }
  }

  const off = live.on('task', (d) => {
    if (d.task_id !== id && !(task && d.task_id === task.id)) return;
    if (!loaded) { early.push(d); return; }
    apply(d);
    schedule();
  });

  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      const t = await post(`/api/tasks/${encodeURIComponent(task ? task.id : id)}/cancel`);
      if (t && t.state && !gone) {
        const { targets: list, ...rest } = t;
        task = { ...task, ...rest };
        renderTask();
        if (Array.isArray(list)) renderTargets(list);
      }
      load();
    } catch (e) {
      showError(`cancelling the task failed: ${e.message}`);
      cancel.disabled = !ctx.canOperate();
    }
  });

  // Durations of running targets tick.
  const tick = setInterval(() => {
    for (const rec of targets.values()) if (rec.t.state === 'RUNNING') dirty.add(rec);
    if (dirty.size) schedule();
  }, 1000);

  load();
  return {
    refresh: load,
    unmount() {
      gone = true;
      off();
      clearInterval(tick);
    },
  };
}
