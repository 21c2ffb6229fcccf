// The events page: a live log, newest first (the last 500), of agents going
// online/offline and task transitions. The log is collected from the moment
// the dashboard opens (on every page) and seeded once from the API.

import { h, clear, fmtClock, fmtTime, frameBatcher } from './ui.js';
import * as live from './live.js';

export function eventsPage(main, ctx) {
  ctx.setTitle('Events');
  let gone = false;
  const list = h('ol', { class: 'events', testid: 'events-list', attrs: { reversed: true } });
  const empty = h('p', { class: 'empty', text: 'Nothing yet: agent and task events appear here as they happen.' });
  const count = h('p', { class: 'count', testid: 'events-count' });

  main.appendChild(h('section', { class: 'page page-events' },
    h('div', { class: 'page-head' }, h('h1', { text: 'Events' }), count),
    h('section', { class: 'panel' }, empty, list)));

  function row(e) {
    const text = e.href ? h('a', { href: e.href, text: e.text }) : h('span', { text: e.text });
    return h('li', { class: `event event-${e.kind}${e.history ? ' event-history' : ''}`, testid: 'events-row', dataset: { kind: e.kind, state: e.state || '' } },
      h('time', { class: 'event-time', text: fmtClock(e.at_ms), title: fmtTime(e.at_ms), attrs: { datetime: new Date(e.at_ms).toISOString() } }),
      h('span', { class: `badge kind-${e.kind}${e.state ? ` state-${e.state.toLowerCase()}` : ''}`, text: e.state && e.kind === 'task' ? e.state : e.kind }),
      h('span', { class: 'event-text' }, text, e.history ? h('span', { class: 'muted', text: ' (history)' }) : null));
  }

  // The log is small (≤ 500) and sorted; re-rendering it per frame is cheap
  // and keeps order right when history and live entries interleave.
  const schedule = frameBatcher(() => {
    if (gone) return;
    clear(list);
    const frag = document.createDocumentFragment();
    for (const e of live.log) frag.appendChild(row(e));
    list.appendChild(frag);
    empty.hidden = live.log.length > 0;
    count.textContent = `${live.log.length} event${live.log.length === 1 ? '' : 's'} (last ${live.LOG_MAX} kept)`;
  });

  const off = live.on('log', schedule);
  schedule();
  live.seedLog();
  return {
    refresh: schedule,
    unmount() {
      gone = true;
      off();
    },
  };
}
