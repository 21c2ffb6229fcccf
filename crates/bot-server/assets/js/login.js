// The login page: an API token in, a session cookie out.

import { post } from './api.js';
import { h } from './ui.js';

export function loginPage(main, ctx) {
  ctx.setTitle('Log in');
  const token = h('input', {
    type: 'password', id: 'login-token', name: 'token', testid: 'login-token',
    autocomplete: 'current-password', required: true, attrs: { autofocus: true },
  });
  const err = h('p', { class: 'field-error', testid: 'login-error', attrs: { role: 'alert' } });
  const button = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit', text: 'Log in' });
  const form = h('form', { class: 'login-form', testid: 'login-form', attrs: { novalidate: true } },
    h('h1', { text: 'bot' }),
    h('p', { class: 'muted', text: 'Log in with an API token (printed by `bot up`, or from the server configuration).' }),
    h('label', { htmlFor: 'login-token', text: 'API token' }),
    token,
    err,
    button);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const value = token.value.trim();
    if (!value) {
      err.textContent = 'Enter a token.';
      return;
    }
    button.disabled = true;
    try {
      const s = await post('/api/login', { token: value });
      token.value = '';
      ctx.login(s, ctx.query.get('next'));
    } catch (e) {
      err.textContent = e.status === 401 ? `Not accepted: ${e.message}` : e.message;
      token.select();
    } finally {
      button.disabled = false;
    }
  });
  main.appendChild(h('section', { class: 'page page-login' }, form));
  token.focus();
  return {};
}
