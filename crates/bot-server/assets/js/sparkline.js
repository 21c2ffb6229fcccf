// Sparklines on small canvases (one per number on the fleet page: far
// cheaper than a chart object per row).

import { SPARK_POINTS } from './live.js';

export const SPARK_W = 64;
export const SPARK_H = 18;

export function sparkCanvas(label) {
  const c = document.createElement('canvas');
  c.className = 'spark';
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  c.width = Math.round(SPARK_W * dpr);
  c.height = Math.round(SPARK_H * dpr);
  c.setAttribute('aria-label', label);
  c.setAttribute('role', 'img');
  return c;
}

/**
 * Draws `values` (numbers or null; the newest last, right-aligned) scaled to
 * 0..max (max: a number, or null for the values' own maximum, at least 1).
 */
export function drawSpark(canvas, values, color, max) {
  const ctx = canvas.getContext('2d');
  const W = canvas.width;
  const H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  if (!values || !values.length) return;
  let top = max;
  if (!top) {
    top = 1;
    for (const v of values) if (v !== null && v > top) top = v;
  }
  const pad = 1.5 * (W / SPARK_W);
  const step = (W - 2 * pad) / (SPARK_POINTS - 1);
  const x0 = W - pad - (values.length - 1) * step;
  const y = (v) => H - pad - (Math.min(Math.max(v, 0), top) / top) * (H - 2 * pad);
  ctx.lineWidth = Math.max(1, W / SPARK_W) * 1.2;
  ctx.strokeStyle = color;
  ctx.fillStyle = color;
  // Area under the line, faint.
  ctx.globalAlpha = 0.18;
  let open = false;
  let startX = 0;
  let lastX = 0;
  ctx.beginPath();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const x = x0 + i * step;
    if (v === null) {
      if (open) { ctx.lineTo(lastX, H); ctx.lineTo(startX, H); ctx.closePath(); open = false; }
      continue;
    }
    if (!open) { ctx.moveTo(x, H); ctx.lineTo(x, y(v)); startX = x; open = true; }
    else ctx.lineTo(x, y(v));
    lastX = x;
  }
  if (open) { ctx.lineTo(lastX, H); ctx.lineTo(startX, H); ctx.closePath(); }
  ctx.fill();
  // The line.
  ctx.globalAlpha = 1;
  ctx.beginPath();
  open = false;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null) { open = false; continue; }
    const x = x0 + i * step;
    if (!open) { ctx.moveTo(x, y(v)); open = true; } else ctx.lineTo(x, y(v));
  }
  ctx.stroke();
  // The newest point as a dot.
  const lastV = values[values.length - 1];
  if (lastV !== null) {
    ctx.beginPath();
    ctx.arc(x0 + (values.length - 1) * step, y(lastV), ctx.lineWidth * 1.2, 0, Math.PI * 2);
    ctx.fill();
  }
}
