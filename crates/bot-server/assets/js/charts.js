// The agent page's charts: one uPlot per chart, fed from the columnar
// /metrics answer and then, live, from `samples` events. Each chart's root
// keeps data-metric, data-points (x values plotted), data-last-ms (time of
// the newest point) and data-last-received-ms (when the newest live point
// arrived) for tests and curious people.

import { h, setText, fmtBytes, fmtPct, fmtNum, showError } from './ui.js';

const byLabel = (key) => (a, b) => String(a.labels[key] ?? '').localeCompare(String(b.labels[key] ?? ''), undefined, { numeric: true });

export const CHART_DEFS = [
  {
    metric: 'cpu.usage', title: 'CPU usage', metrics: ['cpu.usage'], max: 100, fmt: fmtPct, axis: (v) => `${v}%`,
    label: (s) => (s.labels.cpu === 'total' || s.labels.cpu === undefined ? 'total' : `cpu ${s.labels.cpu}`),
    main: (s) => s.labels.cpu === 'total' || s.labels.cpu === undefined,
    sort: (a, b) => (b.labels.cpu === 'total') - (a.labels.cpu === 'total') || byLabel('cpu')(a, b),
  },
  {
    metric: 'memory.used_percent', title: 'Memory used', metrics: ['memory.used_percent'], max: 100, fmt: fmtPct, axis: (v) => `${v}%`,
    label: () => 'used',
  },
  {
    metric: 'cpu.load', title: 'Load average', metrics: ['cpu.load', 'cpu.load5', 'cpu.load15'], fmt: (v) => fmtNum(v, 2), axis: (v) => String(+v.toFixed(2)),
    label: (s) => ({ 'cpu.load': '1 min', 'cpu.load5': '5 min', 'cpu.load15': '15 min' })[s.metric] || s.metric,
    sort: (a, b) => ['cpu.load', 'cpu.load5', 'cpu.load15'].indexOf(a.metric) - ['cpu.load', 'cpu.load5', 'cpu.load15'].indexOf(b.metric),
  },
  {
    metric: 'net.rx_bytes', title: 'Network received', metrics: ['net.rx_bytes'], axisSize: 80, fmt: (v) => fmtBytes(v, '/s'), axis: (v) => fmtBytes(v, '/s'),
    label: (s) => s.labels.iface || 'rx', sort: byLabel('iface'),
  },
  {
    metric: 'net.tx_bytes', title: 'Network sent', metrics: ['net.tx_bytes'], axisSize: 80, fmt: (v) => fmtBytes(v, '/s'), axis: (v) => fmtBytes(v, '/s'),
    label: (s) => s.labels.iface || 'tx', sort: byLabel('iface'),
  },
  {
    metric: 'disk.used_percent', title: 'Disk used', metrics: ['disk.used_percent'], max: 100, fmt: fmtPct, axis: (v) => `${v}%`,
    label: (s) => s.labels.mount || 'disk', sort: byLabel('mount'),
  },
];

/** Every metric the charts show (the `name=` of the /metrics request). */
export const CHART_METRICS = CHART_DEFS.flatMap((d) => d.metrics);

const PALETTE = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#4f46e5'];

let uplotLoading = null;

/**
 * Loads the vendored uPlot (a classic script defining `window.uPlot`) the
 * first time a chart is needed, so other pages don't pay for it.
 */
export function loadUPlot() {
  if (typeof window.uPlot === 'function') return Promise.resolve(window.uPlot);
  if (!uplotLoading) {
    uplotLoading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/assets/vendor/uPlot.iife.min.js';
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => {
        uplotLoading = null;
        reject(new Error('the chart library /assets/vendor/uPlot.iife.min.js did not load'));
      };
      document.head.appendChild(s);
    });
  }
  return uplotLoading;
}

export function seriesKey(metric, labels) {
  const keys = Object.keys(labels || {}).sort();
  return `${metric}|${keys.map((k) => `${k}=${labels[k]}`).join(',')}`;
}

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export class MetricChart {
  constructor(def) {
    this.def = def;
    this.times = []; // ms
    this.xs = []; // seconds, for uPlot
    this.series = []; // {key, metric, labels, label, values[]}
    this.u = null;
    this.structure = '';
    this.title = h('figcaption', { class: 'chart-title' }, h('span', { text: def.title }), h('span', { class: 'chart-latest muted' }));
    this.body = h('div', { class: 'chart-body' });
    this.empty = h('p', { class: 'chart-empty muted', text: 'No data in this range.' });
    this.root = h('figure', {
      class: 'chart', testid: `chart-${def.metric}`,
      dataset: { metric: def.metric, points: '0', lastMs: '0', series: '0' },
    }, this.title, this.body, this.empty);
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.body);
  }

  size() {
    const w = Math.max(200, Math.floor(this.body.clientWidth || this.root.clientWidth || 300));
    const hgt = window.matchMedia('(max-width: 600px)').matches ? 160 : 200;
    return { width: w, height: hgt };
  }

  resize() {
    if (!this.u) return;
    const s = this.size();
    if (s.width !== this.u.width || s.height !== this.u.height) this.u.setSize(s);
  }

  /** Replaces the data with the /metrics answer (columnar, shared times). */
  load(resp) {
    const mine = (resp.series || []).filter((s) => this.def.metrics.includes(s.metric));
    const times = resp.times || [];
    // Keep only the times where this chart has at least one value.
    const keep = [];
    for (let i = 0; i < times.length; i++) {
      if (mine.some((s) => s.values && num(s.values[i]) !== null)) keep.push(i);
    }
    this.times = keep.map((i) => times[i]);
    this.xs = this.times.map((t) => t / 1000);
    this.series = mine.map((s) => ({
      key: seriesKey(s.metric, s.labels),
      metric: s.metric,
      labels: s.labels || {},
      values: keep.map((i) => num(s.values[i])),
    }));
    this.sortSeries();
    this.lastReceived = 0;
    this.draw(true);
  }

  sortSeries() {
    if (this.def.sort) this.series.sort(this.def.sort);
  }

  /**
   * Appends one live round (the `samples` array of a samples event). Returns
   * true when it had a value for this chart. `keepMs` trims older points.
   */
  append(timeMs, samples, receivedMs, keepMs) {
    const mine = samples.filter((s) => Array.isArray(s) && this.def.metrics.includes(s[0]));
    if (!mine.length) return false;
    const last = this.times.length ? this.times[this.times.length - 1] : -Infinity;
    if (timeMs <= last) return false;
    const byKey = new Map();
    for (const [metric, labels, value] of mine) byKey.set(seriesKey(metric, labels), { metric, labels: labels || {}, value: num(value) });
    let added = false;
    for (const [key, s] of byKey) {
      if (!this.series.some((x) => x.key === key)) {
        this.series.push({ key, metric: s.metric, labels: s.labels, values: new Array(this.times.length).fill(null) });
        added = true;
      }
    }
    if (added) this.sortSeries();
    this.times.push(timeMs);
    this.xs.push(timeMs / 1000);
    for (const s of this.series) {
      const got = byKey.get(s.key);
      s.values.push(got ? got.value : null);
    }
    if (keepMs) {
      const cut = timeMs - keepMs;
      let n = 0;
      while (n < this.times.length && this.times[n] < cut) n++;
      if (n) {
        this.times.splice(0, n);
        this.xs.splice(0, n);
        for (const s of this.series) s.values.splice(0, n);
      }
    }
    this.lastReceived = receivedMs;
    this.draw(false);
    return true;
  }

  draw(reset) {
    const d = this.root.dataset;
    d.points = String(this.times.length);
    d.lastMs = String(this.times.length ? this.times[this.times.length - 1] : 0);
    d.series = String(this.series.length);
    if (this.lastReceived) d.lastReceivedMs = String(this.lastReceived);
    else delete d.lastReceivedMs;
    this.empty.hidden = this.times.length > 0;
    this.body.hidden = this.times.length === 0;
    this.updateLatest();
    if (!this.times.length) {
      this.destroyPlot();
      return;
    }
    const structure = this.series.map((s) => s.key).join(';');
    const data = [this.xs, ...this.series.map((s) => s.values)];
    if (!this.u || structure !== this.structure) {
      this.build(data);
      this.structure = structure;
    } else {
      this.u.setData(data, true);
    }
  }

  updateLatest() {
    const main = this.series.find((s) => (this.def.main ? this.def.main(s) : true));
    const v = main && main.values.length ? main.values[main.values.length - 1] : null;
    setText(this.title.lastChild, v === null || v === undefined ? '' : this.def.fmt(v));
  }

  build(data) {
    this.destroyPlot();
    if (typeof window.uPlot !== 'function') {
      showError('the chart library (uPlot) did not load');
      return;
    }
    const cs = getComputedStyle(document.documentElement);
    const fg = cs.getPropertyValue('--muted').trim() || '#666';
    const grid = cs.getPropertyValue('--grid').trim() || 'rgba(0,0,0,.08)';
    const def = this.def;
    const many = this.series.length > 6;
    const series = [{}];
    this.series.forEach((s, i) => {
      const isMain = def.main ? def.main(s) : true;
      const color = def.main ? (isMain ? PALETTE[0] : PALETTE[1 + (i % (PALETTE.length - 1))]) : PALETTE[i % PALETTE.length];
      series.push({
        label: def.label(s),
        stroke: color,
        width: isMain ? 2 : 1,
        alpha: isMain || !def.main ? 1 : 0.55,
        value: (u, v) => (v === null || v === undefined ? '—' : def.fmt(v)),
        points: { size: 4 },
        show: !(many && !isMain && def.main), // per-CPU lines start hidden when there are many
      });
    });
    const yRange = def.max
      ? [0, def.max]
      : (u, min, max) => [0, max === null || max === undefined || max <= 0 ? 1 : max * 1.1];
    const axisCommon = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: '11px system-ui, sans-serif' };
    const opts = {
      ...this.size(),
      series,
      scales: { x: { time: true }, y: { range: yRange } },
      axes: [
        { ...axisCommon },
        { ...axisCommon, size: def.axisSize || 56, values: (u, splits) => splits.map((v) => def.axis(v)) },
      ],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    };
    this.u = new window.uPlot(opts, data, this.body);
  }

  destroyPlot() {
    if (this.u) {
      this.u.destroy();
      this.u = null;
      this.structure = '';
    }
  }

  destroy() {
    this.ro.disconnect();
    this.destroyPlot();
  }
}
