// The checks page: "what is wrong now" — the state of every scheduled check
// on every agent, worst first (CRITICAL, UNKNOWN, WARNING, OK), filterable
// by state, updated live from `check` events (the list is fetched again,
// at most once per frame).

import { get, withQuery } from './api.js';
import { h, clear, stateBadge, showError, frameBatcher, fmtAgo, fmtTime } from './ui.js';
import * as live from './live.js';

const STATES = ['CRITICAL', 'UNKNOWN', 'WARNING', 'OK'];

export function checksPage(main, ctx) {
  ctx.setTitle('Checks');
  let gone = false;
  let only = 'problems';
  const body = h('tbody', { testid: 'checks-body' });
  const count = h('p', { class: 'count', testid: 'checks-count' });
  const empty = h('p', { class: 'empty', testid: 'checks-empty', text: 'No check results: schedule checks with `bot schedule add NAME --every 1m --check CHECK`.' });
  const which = h('select', { testid: 'checks-which', attrs: { 'aria-label': 'Which checks' } },
    h('option', { value: 'problems', text: 'Problems (not OK)' }),
    h('option', { value: 'all', text: 'All' }));
  which.addEventListener('change', () => { only = which.value; schedule(); });

  main.appendChild(h('section', { class: 'page page-checks' },
    h('div', { class: 'page-head' }, h('h1', { text: 'Checks' }), which, count),
    h('section', { class: 'panel' }, empty,
      h('table', { class: 'table checks', testid: 'checks-table' },
        h('thead', {}, h('tr', {},
          h('th', { text: 'State' }), h('th', { text: 'Agent' }), h('th', { text: 'Check' }),
          h('th', { text: 'Since' }), h('th', { text: 'Output' }))),
        body))));

  function row(c) {
    return h('tr', { testid: 'checks-row', dataset: { agent: c.agent_name, check: c.check, state: c.state } },
      h('td', {}, stateBadge(c.state, { title: c.stale ? 'stale: no result for two intervals' : '' })),
      h('td', {}, h('a', { href: `/agents/${encodeURIComponent(c.agent_id)}`, text: c.agent_name || c.agent_id })),
      h('td', { text: c.check }),
      h('td', { text: fmtAgo(c.since_ms), title: fmtTime(c.since_ms) }),
      h('td', { class: 'output', text: c.output, title: c.long_output || '' }));
  }

  const schedule = frameBatcher(async () => {
    if (gone) return;
    try {
      const list = await get(withQuery('/api/checks', only === 'problems' ? { state: 'warning,critical,unknown' } : {}));
      if (gone) return;
      clear(body);
      const frag = document.createDocumentFragment();
      for (const c of list) frag.appendChild(row(c));
      body.appendChild(frag);
      empty.hidden = list.length > 0;
      const n = Object.fromEntries(STATES.map((s) => [s, list.filter((c) => c.state === s).length]));
      count.textContent = `${list.length} check${list.length === 1 ? '' : 's'}: ${STATES.map((s) => `${n[s]} ${s}`).join(', ')}`;
    } catch (e) {
      if (!gone) showError(`cannot list the checks: ${e.message}`);
    }
  });

  const off = live.on('check', schedule);
  const offResync = live.on('resync', schedule);
  schedule();
  return {
    refresh: schedule,
    unmount() {
      gone = true;
      off();
      offResync();
    },
  };
}
