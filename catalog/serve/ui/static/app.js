// Culvert's web console and catalog browser. Plain JavaScript, no build step,
// nothing loaded from outside the page's own origin.
//
// Two modes, one script:
//   - static (catalog/site/): window.CULVERT_CATALOG holds catalog.json; only
//     the catalog pages exist;
//   - console (culvert serve, /ui/): the catalog comes from the REST API's
//     GET /connector-plugins, and instances are created, listed, paused,
//     resumed, restarted and deleted through the Kafka Connect endpoints.
//
// Every piece of data is put in the page as text (textContent), never as HTML.
'use strict';

(function () {
  const STATIC = typeof window.CULVERT_CATALOG === 'object' && window.CULVERT_CATALOG !== null;
  const POLL_MS = 1500;
  const TOKEN_KEY = 'culvert.token';
  const main = document.getElementById('main');

  // ---- DOM helpers -------------------------------------------------------

  // h builds an element: h('a', {href: '#/'}, 'text', child, ...). Attributes
  // starting with "on" are listeners; class and dataset are set as such.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'text') el.textContent = v;
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function show(...nodes) {
    main.replaceChildren(...nodes);
  }

  function code(s) {
    return h('code', null, s);
  }

  // ---- the REST API ------------------------------------------------------

  class APIError extends Error {
    constructor(status, message, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  // api calls the supervisor on the page's origin and returns the decoded
  // JSON answer; a non-2xx answer throws an APIError with Kafka Connect's
  // {"error_code","message"} message. A 401 shows the token form.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text.trim() }; }
    }
    if (res.status === 401) askToken();
    if (!res.ok) {
      const msg = (data && data.message) || (res.status + ' ' + res.statusText);
      throw new APIError(res.status, msg, data);
    }
    return data;
  }

  function askToken() {
    const form = document.getElementById('token-form');
    if (!form.hidden) return;
    form.hidden = false;
    document.getElementById('token-input').focus();
  }

  function setupTokenForm() {
    const form = document.getElementById('token-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const v = document.getElementById('token-input').value.trim();
      try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { /* private mode: kept for this page only */ }
      form.hidden = true;
      catalogPromise = null;
      route();
    });
  }

  // ---- the catalog -------------------------------------------------------

  // A catalog entry: {name, direction, version, description, schema}, as in
  // catalog.json and as `<connector> metadata` prints it.
  let catalogPromise = null;

  function loadCatalog() {
    if (!catalogPromise) {
      catalogPromise = STATIC ? Promise.resolve(window.CULVERT_CATALOG.connectors || []) : pluginsCatalog();
      catalogPromise.catch(() => { catalogPromise = null; });
    }
    return catalogPromise;
  }

  // pluginsCatalog reads the connectors' metadata from catalog.json beside
  // the page (culvert serve's ui.WithCatalog). Without it, it reads Kafka
  // Connect's GET /connector-plugins and, for a plugin that does not carry
  // its JSON Schema there, GET /connector-plugins/{class}/config, the config
  // definitions.
  async function pluginsCatalog() {
    try {
      const cat = await api('GET', 'catalog.json');
      if (cat && Array.isArray(cat.connectors)) return cat.connectors;
    } catch (e) {
      if (e.status !== 404) throw e;
    }
    const plugins = await api('GET', '/connector-plugins');
    const list = Array.isArray(plugins) ? plugins : [];
    const out = await Promise.all(list.map(async (p) => {
      const c = {
        name: p.name || p.class,
        direction: p.direction || p.type,
        version: p.version || '',
        description: p.description || '',
        schema: p.schema || null,
      };
      if (!c.schema) {
        c.schema = configDefsSchema(await api('GET', '/connector-plugins/' + encodeURIComponent(c.name) + '/config'));
      }
      return c;
    }));
    out.sort((a, b) => a.name.localeCompare(b.name));
    return out;
  }

  // configDefsSchema turns Kafka Connect's config definitions into a JSON
  // Schema of the same options.
  function configDefsSchema(defs) {
    const types = { BOOLEAN: 'boolean', INT: 'integer', SHORT: 'integer', LONG: 'integer', DOUBLE: 'number' };
    const schema = { type: 'object', properties: {}, required: [] };
    for (const d of Array.isArray(defs) ? defs : []) {
      const def = d.definition || d;
      if (def.name === 'connector.class' || def.name === 'name') continue; // the form has its own
      const t = String(def.type || '').toUpperCase();
      const p = { type: types[t] || (t === 'LIST' ? 'array' : 'string'), description: def.documentation || '' };
      if (p.type === 'array') p.items = { type: 'string' };
      if (t === 'PASSWORD') p.writeOnly = true;
      if (def.default_value !== undefined && def.default_value !== null && def.default_value !== '') p.default = typedDefault(p.type, def.default_value);
      schema.properties[def.name] = p;
      if (def.required) schema.required.push(def.name);
    }
    return schema;
  }

  // typedDefault reads a config definition's default (a string) as a value
  // of the option's type.
  function typedDefault(type, v) {
    if (type === 'integer' || type === 'number') {
      const n = Number(v);
      return Number.isFinite(n) ? n : v;
    }
    if (type === 'boolean') return v === 'true';
    if (type === 'array') {
      try { const l = JSON.parse(v); if (Array.isArray(l)) return l; } catch (e) { /* a comma-separated list */ }
      return String(v).split(',').map((x) => x.trim()).filter(Boolean);
    }
    return v;
  }

  // resolve follows a local $ref (#/$defs/x, #/definitions/x).
  function resolve(root, s) {
    for (let i = 0; s && typeof s === 'object' && s.$ref && i < 8; i++) {
      const m = /^#\/(\$defs|definitions)\/(.+)$/.exec(s.$ref);
      if (!m || !root[m[1]]) break;
      s = root[m[1]][m[2]];
    }
    return s && typeof s === 'object' ? s : {};
  }

  // typeName describes a property's type as catalog/README.md does:
  // "string", "integer or null", "array of string", "string (one of ...)".
  function typeName(root, s, depth) {
    depth = depth || 0;
    s = resolve(root, s);
    if (depth > 8) return 'any';
    let types = Array.isArray(s.type) ? s.type.slice() : (s.type ? [s.type] : []);
    const values = s.const !== undefined ? [s.const] : (s.enum || []);
    if (!types.length && !values.length) {
      const alts = (s.oneOf || []).concat(s.anyOf || []).map((a) => typeName(root, a, depth + 1));
      if (alts.length) return alts.join(' or ');
    }
    types = types.map((t) => (t === 'array' && s.items ? 'array of ' + typeName(root, s.items, depth + 1) : t));
    const name = types.join(' or ');
    if (!values.length) return name || 'any';
    const enumText = 'one of ' + values.map((v) => JSON.stringify(v)).join(', ');
    return name ? name + ' (' + enumText + ')' : enumText;
  }

  // options lists a connector's options in its schema's order.
  function options(c) {
    const schema = c.schema || {};
    const required = new Set(schema.required || []);
    return Object.entries(schema.properties || {}).map(([name, raw]) => {
      const s = resolve(schema, raw);
      return {
        name,
        schema: s,
        type: typeName(schema, raw),
        required: required.has(name),
        hasDefault: s.default !== undefined,
        def: s.default,
        description: s.description || s.title || '',
        env: s['x-env'] || '',
        flag: '--' + name.replace(/_/g, '-'),
      };
    });
  }

  // own tells whether an option is the connector's own rather than one every
  // connector shares: its variable is CULVERT_<CONNECTOR>_..., or it is required.
  function own(c, o) {
    const prefix = 'CULVERT_' + c.name.toUpperCase().replace(/-/g, '_') + '_';
    return o.required || !o.env || o.env.startsWith(prefix);
  }

  function matches(c, q) {
    if (!q) return true;
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    // The connector's own options only: the shared ones (--format, --bus,
    // ...) are every connector's, and their texts name other connectors.
    const hay = [c.name, c.direction, c.description]
      .concat(options(c).filter((o) => own(c, o)).map((o) => o.name + ' ' + o.description))
      .join('\n').toLowerCase();
    return words.every((w) => hay.includes(w));
  }

  // ---- pages: catalog ----------------------------------------------------

  let searchText = '';

  async function catalogPage() {
    const conns = await loadCatalog();
    const list = h('ul', { class: 'cards', id: 'connector-list' });
    const count = h('p', { class: 'muted', id: 'connector-count' });
    const search = h('input', {
      type: 'search', id: 'search', placeholder: 'Search connectors and options', 'aria-label': 'Search the catalog',
      value: searchText, autocomplete: 'off',
    });
    const fill = () => {
      searchText = search.value;
      const shown = conns.filter((c) => matches(c, search.value.trim()));
      list.replaceChildren(...shown.map((c) => h('li', { class: 'card', dataset: { connector: c.name } },
        h('h3', null, h('a', { href: '#/connectors/' + encodeURIComponent(c.name) }, c.name),
          ' ', h('span', { class: 'badge ' + c.direction }, c.direction)),
        h('p', null, c.description),
        h('p', { class: 'muted' }, options(c).length + ' options · version ' + c.version))));
      count.textContent = shown.length + ' of ' + conns.length + ' connectors';
    };
    search.addEventListener('input', fill);
    fill();
    show(h('h1', null, 'Connector catalog'), h('div', { class: 'toolbar' }, search), count, list);
    search.focus();
  }

  async function connectorPage(name) {
    const conns = await loadCatalog();
    const c = conns.find((x) => x.name === name);
    if (!c) return notFound('No connector named ' + name + ' in the catalog.');
    const opts = options(c);
    const row = (o) => h('tr', { dataset: { option: o.name } },
      h('td', null, code(o.name), h('div', { class: 'muted small' }, o.flag, o.env ? ', ' + o.env : '')),
      h('td', null, o.type),
      h('td', null, o.hasDefault ? code(JSON.stringify(o.def)) : ''),
      h('td', null, o.required ? 'yes' : ''),
      h('td', null, o.description));
    const table = (rows) => h('table', { class: 'options' },
      h('thead', null, h('tr', null, ['option', 'type', 'default', 'required', 'description'].map((t) => h('th', null, t)))),
      h('tbody', null, rows.map(row)));
    const mine = opts.filter((o) => own(c, o));
    const shared = opts.filter((o) => !own(c, o));
    show(
      h('p', null, h('a', { href: '#/' }, '← Catalog')),
      h('h1', null, c.name, ' ', h('span', { class: 'badge ' + c.direction }, c.direction)),
      h('p', null, c.description),
      h('p', { class: 'muted' }, 'Version ', c.version),
      STATIC ? null : h('p', null, h('a', { class: 'button primary', id: 'create-link', href: '#/new/' + encodeURIComponent(c.name) }, 'Create an instance')),
      h('h2', null, 'Options'),
      table(mine),
      shared.length ? h('h2', null, 'Options every connector shares') : null,
      shared.length ? table(shared) : null);
  }

  // ---- pages: create an instance ----------------------------------------

  // field builds the input of one option and returns {el, input, error, read}:
  // read() gives the option's value in Kafka Connect's flat string map, or
  // undefined to leave the option out (its default applies).
  function field(o) {
    const id = 'opt-' + o.name;
    const s = o.schema;
    const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
    const values = s.enum || (s.const !== undefined ? [s.const] : null);
    let input;
    let read;
    if (values) {
      input = h('select', { id, name: o.name },
        h('option', { value: '' }, o.hasDefault ? 'default (' + o.def + ')' : '—'),
        values.map((v) => h('option', { value: String(v) }, String(v))));
      read = () => (input.value === '' ? undefined : input.value);
    } else if (type === 'boolean') {
      input = h('input', { id, name: o.name, type: 'checkbox', checked: o.def === true });
      read = () => (input.checked === (o.def === true) ? undefined : String(input.checked));
    } else if (type === 'array') {
      input = h('textarea', { id, name: o.name, rows: 2, placeholder: 'one per line' });
      read = () => {
        const items = input.value.split('\n').map((x) => x.trim()).filter(Boolean);
        return items.length ? JSON.stringify(items) : undefined;
      };
    } else {
      const attrs = { id, name: o.name, autocomplete: 'off', spellcheck: 'false' };
      if (type === 'integer' || type === 'number') {
        Object.assign(attrs, { type: 'number', step: type === 'integer' ? '1' : 'any', min: s.minimum, max: s.maximum });
      } else {
        attrs.type = s.writeOnly ? 'password' : 'text';
      }
      if (o.hasDefault) attrs.placeholder = String(o.def);
      input = h('input', attrs);
      read = () => (input.value.trim() === '' ? undefined : input.value.trim());
    }
    const error = h('div', { class: 'field-error', id: 'err-' + o.name, role: 'alert' });
    input.setAttribute('aria-describedby', 'err-' + o.name + ' help-' + o.name);
    const el = h('div', { class: 'field' + (type === 'boolean' ? ' check' : ''), dataset: { field: o.name } },
      h('label', { for: id }, o.name, o.required ? h('span', { class: 'req', title: 'required' }, ' *') : null,
        h('span', { class: 'muted small' }, ' ', o.type)),
      input,
      h('div', { class: 'help muted small', id: 'help-' + o.name }, o.description),
      error);
    return { el, input, error, read, option: o };
  }

  // check finds what the browser can tell before asking the API: a missing
  // required option, a number out of range, a string off its pattern.
  function check(f, value) {
    const o = f.option;
    const s = o.schema;
    if (value === undefined) return o.required && !o.hasDefault ? 'required' : '';
    if (s.type === 'integer' || s.type === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n) || (s.type === 'integer' && !Number.isInteger(n))) return 'must be ' + (s.type === 'integer' ? 'an integer' : 'a number');
      if (s.minimum !== undefined && n < s.minimum) return 'must be at least ' + s.minimum;
      if (s.maximum !== undefined && n > s.maximum) return 'must be at most ' + s.maximum;
    }
    if (s.type === 'string') {
      if (s.minLength && value.length < s.minLength) return 'must be at least ' + s.minLength + ' characters';
      if (s.pattern) {
        try {
          if (!new RegExp(s.pattern, 'u').test(value)) return 'does not match ' + s.pattern;
        } catch (e) { /* a pattern JavaScript cannot read: the API checks it */ }
      }
    }
    return '';
  }

  async function createPage(name) {
    const conns = await loadCatalog();
    const c = conns.find((x) => x.name === name);
    if (!c) return notFound('No connector named ' + name + ' in the catalog.');
    const opts = options(c);
    const nameField = field({
      name: 'name', schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$' }, type: 'string', required: true,
      hasDefault: false, description: 'Name of the instance (letters, digits, . _ -).',
    });
    nameField.input.id = 'instance-name';
    nameField.el.querySelector('label').setAttribute('for', 'instance-name');
    nameField.error.id = 'err-instance-name';
    nameField.input.setAttribute('aria-describedby', 'err-instance-name');
    const fields = opts.map(field);
    const byName = new Map(fields.map((f) => [f.option.name, f]));
    const general = h('div', { class: 'form-error', id: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'create-submit' }, 'Create');

    const clearErrors = () => {
      for (const f of fields.concat([nameField])) { f.error.textContent = ''; f.el.classList.remove('invalid'); }
      general.textContent = '';
    };
    const fail = (key, msg) => {
      // "name" is the instance's name, as in Kafka Connect's config.
      const f = key === 'name' ? nameField : byName.get(key);
      if (!f) {
        general.append(h('div', null, (key ? key + ': ' : '') + msg));
        return;
      }
      f.error.append(h('div', null, msg));
      f.el.classList.add('invalid');
      const section = f.el.closest('details');
      if (section) section.open = true;
    };

    const form = h('form', { id: 'create-form', novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      clearErrors();
      const config = { 'connector.class': c.name };
      let bad = false;
      const instance = nameField.read();
      if (check(nameField, instance)) {
        fail('name', instance === undefined ? 'required' : 'must be letters, digits, ".", "_" or "-", starting with a letter or digit');
        bad = true;
      }
      for (const f of fields) {
        const v = f.read();
        const err = check(f, v);
        if (err) { fail(f.option.name, err); bad = true; }
        if (v !== undefined) config[f.option.name] = v;
      }
      if (bad) return focusError(form);
      submit.disabled = true;
      try {
        if (await validate(c.name, config, fail)) return focusError(form);
        await api('POST', '/connectors', { name: instance, config });
        location.hash = '#/instances/' + encodeURIComponent(instance);
      } catch (e) {
        if (e.status === 409) fail('name', e.message);
        else if (e.status === 400 || e.status === 422) blame(e.message, fields, fail);
        else fail('', e.message);
        focusError(form);
      } finally {
        submit.disabled = false;
      }
    } },
    nameField.el,
    fields.filter((f) => own(c, f.option)).map((f) => f.el),
    h('details', { id: 'shared-options' }, h('summary', null, 'Options every connector shares'),
      fields.filter((f) => !own(c, f.option)).map((f) => f.el)),
    general,
    h('div', { class: 'actions' }, submit, ' ', h('a', { href: '#/connectors/' + encodeURIComponent(c.name) }, 'Cancel')));

    show(
      h('p', null, h('a', { href: '#/connectors/' + encodeURIComponent(c.name) }, '← ' + c.name)),
      h('h1', null, 'New ', c.name, ' instance'),
      h('p', { class: 'muted' }, 'Empty fields keep their defaults. Fields marked * are required.'),
      form);
    nameField.input.focus();
  }

  function focusError(form) {
    const first = form.querySelector('.invalid input, .invalid select, .invalid textarea');
    if (first) first.focus();
  }

  // validate asks PUT /connector-plugins/{class}/config/validate and shows
  // each option's errors next to its field. It returns whether there were
  // any. An API without the endpoint (404, 405) lets POST decide.
  async function validate(cls, config, fail) {
    let res;
    try {
      res = await api('PUT', '/connector-plugins/' + encodeURIComponent(cls) + '/config/validate', config);
    } catch (e) {
      if (e.status === 404 || e.status === 405) return false;
      throw e;
    }
    let n = 0;
    for (const item of (res && res.configs) || []) {
      const v = item.value || {};
      const key = v.name || (item.definition && item.definition.name) || '';
      for (const msg of v.errors || []) {
        fail(key === 'connector.class' ? '' : key, msg);
        n++;
      }
    }
    if (!n && res && res.error_count > 0) {
      fail('', res.error_count + ' errors in the configuration');
      n = res.error_count;
    }
    return n > 0;
  }

  // blame puts the lines of a 400's message next to the options they name:
  // "Connector configuration is invalid and contains the following 2
  // error(s):\ntopic: required\n..." (or one "option: problem" line).
  function blame(msg, fields, fail) {
    const names = new Set(fields.map((f) => f.option.name).concat(['name']));
    const key = (k) => k.replace(/[.-]/g, '_');
    const rest = [];
    let placed = 0;
    for (const line of String(msg).split('\n')) {
      const m = /^\s*([A-Za-z0-9_.-]+):\s*(.+)$/.exec(line);
      if (m && names.has(key(m[1]))) {
        fail(key(m[1]), m[2]);
        placed++;
      } else if (line.trim()) {
        rest.push(line.trim());
      }
    }
    if (!placed || rest.length > 1) fail('', rest.join(' '));
  }

  // ---- pages: instances --------------------------------------------------

  // view reads one instance from GET /connectors?expand=status&expand=info:
  // Kafka Connect's status (connector and tasks) and the figures the
  // supervisor adds from the connector's own /status.
  function view(name, entry) {
    const st = (entry && entry.status) || {};
    const info = (entry && entry.info) || {};
    const conn = st.connector || {};
    const tasks = st.tasks || [];
    let state = conn.state || 'UNKNOWN';
    const failedTask = tasks.find((t) => t.state === 'FAILED');
    if (failedTask && state === 'RUNNING') state = 'FAILED';
    const m = metricsOf(st);
    const traces = [conn.trace].concat(tasks.map((t) => t.trace)).filter(Boolean);
    const task = tasks[0] || {};
    return {
      name,
      cls: (info.config && info.config['connector.class']) || st.connector_class || st.type || info.type || '',
      type: st.type || info.type || '',
      state,
      m,
      trace: traces.join('\n'),
      starts: num(task.starts),
      lastExit: task.last_exit || '',
      config: info.config || null,
    };
  }

  // metricsOf finds the child's /status figures (rates, totals, lag) in a
  // status answer: beside Kafka Connect's fields, or in its first task.
  function metricsOf(st) {
    const cands = [st.culvert, st.metrics, st.connector && st.connector.metrics, st.connector && st.connector.culvert]
      .concat((st.tasks || []).map((t) => t.culvert || t.metrics), [st]);
    const src = cands.find((x) => x && typeof x === 'object' && (x.rates || x.totals || x.lag !== undefined || x.in_per_s !== undefined)) || {};
    const rates = src.rates || src;
    const totals = src.totals || src;
    return {
      inRate: num(rates.in_per_s),
      outRate: num(rates.out_per_s),
      lag: num(src.lag),
      dead: num(totals.dead !== undefined ? totals.dead : src.dead_letters),
      recIn: num(totals.in),
      recOut: num(totals.out),
    };
  }

  function num(v) {
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  }

  function fmt(v, digits) {
    if (v === null) return '–';
    return v.toLocaleString('en-US', { maximumFractionDigits: digits || 0 });
  }

  // action runs one instance action and refreshes the page at once.
  async function action(name, what, btn) {
    const paths = {
      pause: ['PUT', '/pause'], resume: ['PUT', '/resume'], restart: ['POST', '/restart'], delete: ['DELETE', ''],
    };
    const [method, suffix] = paths[what];
    if (btn) btn.disabled = true;
    try {
      await api(method, '/connectors/' + encodeURIComponent(name) + suffix);
      setMessage('');
      if (what === 'delete' && currentRoute().page === 'instance') location.hash = '#/instances';
    } catch (e) {
      setMessage(what + ' ' + name + ': ' + e.message, true);
    } finally {
      if (btn) btn.disabled = false;
    }
    if (poller) poller.now();
  }

  // actions builds the buttons of an instance; delete asks to be clicked twice.
  function actions(name) {
    const mk = (what, label) => h('button', {
      type: 'button', class: 'small', dataset: { action: what }, onclick: (ev) => action(name, what, ev.currentTarget),
    }, label);
    const del = h('button', { type: 'button', class: 'small danger', dataset: { action: 'delete' } }, 'Delete');
    del.addEventListener('click', () => {
      if (del.dataset.armed) return action(name, 'delete', del);
      del.dataset.armed = '1';
      del.textContent = 'Confirm delete';
      setTimeout(() => { delete del.dataset.armed; del.textContent = 'Delete'; }, 4000);
    });
    return h('span', { class: 'actions' }, mk('pause', 'Pause'), mk('resume', 'Resume'), mk('restart', 'Restart'), del);
  }

  function setActions(box, state) {
    box.querySelector('[data-action=pause]').disabled = state !== 'RUNNING';
    box.querySelector('[data-action=resume]').disabled = state !== 'PAUSED' && state !== 'STOPPED';
  }

  function stateBadge(el, state) {
    el.textContent = state;
    el.className = 'state state-' + state.toLowerCase();
  }

  let messageEl = null;
  function setMessage(text, isError) {
    if (!messageEl) return;
    messageEl.textContent = text;
    messageEl.className = isError ? 'form-error' : 'muted';
  }

  async function instancesPage() {
    const tbody = h('tbody', { id: 'instance-rows' });
    const empty = h('p', { class: 'muted', id: 'no-instances', hidden: true }, 'No instances yet. Pick a connector in the ',
      h('a', { href: '#/' }, 'catalog'), ' and create one.');
    messageEl = h('div', { id: 'message', role: 'status' });
    const updated = h('span', { class: 'muted small', id: 'updated' });
    const rows = new Map();
    show(
      h('h1', null, 'Instances ', updated),
      messageEl,
      h('table', { class: 'instances' },
        h('thead', null, h('tr', null, ['name', 'connector', 'state'].map((t) => h('th', null, t)),
          ['in/s', 'out/s', 'lag', 'dead letters'].map((t) => h('th', { class: 'num' }, t)), h('th', null, ''))),
        tbody),
      empty);

    const refresh = async () => {
      const all = await api('GET', '/connectors?expand=status&expand=info');
      const names = Object.keys(all || {}).sort();
      for (const [n, r] of rows) {
        if (!names.includes(n)) { r.tr.remove(); rows.delete(n); }
      }
      let prev = null; // the row before this one, to keep name order
      for (const n of names) {
        const v = view(n, all[n]);
        let r = rows.get(n);
        if (!r) {
          r = {
            tr: h('tr', { dataset: { instance: n } }),
            cells: {},
          };
          const cell = (k, cls) => (r.cells[k] = h('td', { class: cls || k }));
          r.tr.append(
            h('td', { class: 'name' }, h('a', { href: '#/instances/' + encodeURIComponent(n) }, n)),
            cell('cls'), h('td', null, (r.cells.state = h('span', { class: 'state' }))),
            cell('in', 'num in'), cell('out', 'num out'), cell('lag', 'num lag'), cell('dead', 'num dead'),
            (r.cells.actions = h('td', { class: 'acts' }, actions(n))));
          rows.set(n, r);
        }
        r.cells.cls.textContent = v.cls;
        stateBadge(r.cells.state, v.state);
        r.cells.in.textContent = fmt(v.m.inRate, 1);
        r.cells.out.textContent = fmt(v.m.outRate, 1);
        r.cells.lag.textContent = fmt(v.m.lag);
        r.cells.dead.textContent = fmt(v.m.dead);
        setActions(r.cells.actions, v.state);
        // Moved only when out of place: a row is never taken out of the
        // page under the pointer.
        const want = prev ? prev.nextSibling : tbody.firstChild;
        if (want !== r.tr) tbody.insertBefore(r.tr, want);
        prev = r.tr;
      }
      empty.hidden = names.length > 0;
      updated.textContent = 'updated ' + new Date().toLocaleTimeString();
    };
    startPolling(refresh);
  }

  async function instancePage(name) {
    messageEl = h('div', { id: 'message', role: 'status' });
    const state = h('span', { class: 'state', id: 'instance-state' });
    const acts = actions(name);
    const figures = h('dl', { class: 'figures', id: 'figures' });
    const trace = h('pre', { class: 'log', id: 'instance-log' });
    const config = h('table', { class: 'options', id: 'instance-config' });
    const updated = h('span', { class: 'muted small' });
    show(
      h('p', null, h('a', { href: '#/instances' }, '← Instances')),
      h('h1', null, name, ' ', state, ' ', updated),
      acts, messageEl,
      figures,
      h('h2', null, 'Last log lines'),
      trace,
      h('h2', null, 'Configuration'),
      config);
    let info = null; // read once: the config does not change under the page
    const refresh = async () => {
      let entry;
      try {
        const [status, inf] = await Promise.all([
          api('GET', '/connectors/' + encodeURIComponent(name) + '/status'),
          info ? Promise.resolve(info) : api('GET', '/connectors/' + encodeURIComponent(name)),
        ]);
        entry = { status, info: inf };
      } catch (e) {
        if (e.status === 404) {
          stopPolling();
          show(h('p', null, h('a', { href: '#/instances' }, '← Instances')), h('p', { id: 'gone' }, 'There is no instance named ' + name + '.'));
          return;
        }
        throw e;
      }
      const v = view(name, entry);
      stateBadge(state, v.state);
      setActions(acts, v.state);
      const items = [['connector', v.cls], ['records in', fmt(v.m.recIn)], ['records out', fmt(v.m.recOut)],
        ['in/s', fmt(v.m.inRate, 1)], ['out/s', fmt(v.m.outRate, 1)], ['lag', fmt(v.m.lag)], ['dead letters', fmt(v.m.dead)]];
      if (v.starts !== null) items.push(['starts', fmt(v.starts)]);
      if (v.lastExit) items.push(['last exit', v.lastExit]);
      figures.replaceChildren(...items.map(([k, val]) => h('div', null, h('dt', null, k), h('dd', { dataset: { figure: k } }, val))));
      const atEnd = trace.scrollTop + trace.clientHeight >= trace.scrollHeight - 4;
      trace.textContent = (await logLines(name)) || v.trace || '(no log lines)';
      if (atEnd) trace.scrollTop = trace.scrollHeight; // follow the newest lines
      if (!info && entry.info && entry.info.config) {
        info = entry.info;
        config.replaceChildren(h('tbody', null, Object.entries(entry.info.config).map(([k, val]) => h('tr', null, h('td', null, code(k)), h('td', null, val)))));
      }
      updated.textContent = 'updated ' + new Date().toLocaleTimeString();
    };
    startPolling(refresh);
  }

  // logLines reads the instance's last log lines from culvert serve's
  // GET /connectors/{name}/logs; a server without it has only the status
  // trace (given when the instance failed).
  let noLogs = false;
  async function logLines(name) {
    if (noLogs) return '';
    try {
      const res = await api('GET', '/connectors/' + encodeURIComponent(name) + '/logs?lines=50');
      return ((res && res.lines) || []).join('\n');
    } catch (e) {
      // A 404 about the instance is the status's to report; another is a
      // server without the endpoint.
      if (e.status === 404 && !/^Connector /.test(e.message)) noLogs = true;
      return '';
    }
  }

  // ---- polling -----------------------------------------------------------

  // poller calls refresh every POLL_MS while its page is shown, never two at
  // once; now() refreshes at once (after an action).
  let poller = null;

  function startPolling(refresh) {
    stopPolling();
    const p = { timer: 0, busy: false, stopped: false };
    const tick = async () => {
      if (p.stopped || p.busy) return;
      p.busy = true;
      clearTimeout(p.timer);
      try {
        await refresh();
        if (messageEl && messageEl.dataset.poll) { setMessage(''); delete messageEl.dataset.poll; }
      } catch (e) {
        setMessage('cannot reach the API: ' + e.message, true);
        if (messageEl) messageEl.dataset.poll = '1';
      } finally {
        p.busy = false;
        if (!p.stopped) p.timer = setTimeout(tick, POLL_MS);
      }
    };
    p.now = tick;
    p.stop = () => { p.stopped = true; clearTimeout(p.timer); };
    poller = p;
    tick();
  }

  function stopPolling() {
    if (poller) poller.stop();
    poller = null;
  }

  // ---- routing -----------------------------------------------------------

  function notFound(msg) {
    show(h('h1', null, 'Not found'), h('p', null, msg), h('p', null, h('a', { href: '#/' }, 'Catalog')));
  }

  function currentRoute() {
    const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    const [first, arg] = parts;
    if (!first) return { page: 'catalog' };
    if (first === 'connectors' && arg) return { page: 'connector', arg };
    if (!STATIC && first === 'new' && arg) return { page: 'create', arg };
    if (!STATIC && first === 'instances') return arg ? { page: 'instance', arg } : { page: 'instances' };
    return { page: 'missing' };
  }

  async function route() {
    stopPolling();
    messageEl = null;
    const r = currentRoute();
    for (const a of document.querySelectorAll('[data-nav]')) {
      a.classList.toggle('current', a.dataset.nav === (r.page.startsWith('instance') ? 'instances' : 'catalog'));
    }
    try {
      switch (r.page) {
        case 'catalog': await catalogPage(); break;
        case 'connector': await connectorPage(r.arg); break;
        case 'create': await createPage(r.arg); break;
        case 'instances': await instancesPage(); break;
        case 'instance': await instancePage(r.arg); break;
        default: notFound('There is no page at ' + location.hash + '.');
      }
    } catch (e) {
      show(h('h1', null, 'Error'), h('p', { class: 'form-error', id: 'page-error' }, e.message));
    }
  }

  document.body.classList.add(STATIC ? 'static' : 'console');
  document.getElementById('footer').textContent = STATIC
    ? 'Generated by make catalog from each connector\u2019s metadata.'
    : 'culvert serve: Kafka Connect-compatible REST API on this origin.';
  setupTokenForm();
  window.addEventListener('hashchange', route);
  route();
}());
