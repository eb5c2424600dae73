/* kennel's web console. Everything it shows comes from the same signed API
 * calls every client makes (SigV4 by aws4fetch, with the access key the user
 * signs in with, kept in sessionStorage only), so the server's policies
 * decide what a user sees and may do. Pages are hash routes; each page
 * builds its layout once and a poll refreshes tables and charts in place.
 * Text from the server only ever goes into the page as text nodes. */
'use strict';
(function () {
  const POLL_MS = 2000;
  const AUTH_ERRORS = new Set([
    'UnrecognizedClientException', 'InvalidClientTokenId', 'InvalidSignatureException',
    'SignatureDoesNotMatch', 'IncompleteSignatureException', 'IncompleteSignature',
    'ExpiredTokenException', 'ExpiredToken', 'MissingAuthenticationTokenException',
    'MissingAuthenticationToken', 'InvalidAccessKeyId', 'AuthFailure',
  ]);
  const state = {
    creds: null, region: 'us-east-1', account: '', identity: '', prices: {},
    timer: null, page: null, down: null, charts: {},
  };
  window.kennelConsole = state; /* for the end-to-end tests: charts and their data */

  /* ------------------------------------------------------------ DOM */
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v == null) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const kid of kids.flat()) {
      if (kid == null) continue;
      e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);
  const fmtTime = (sec) => (sec ? new Date(sec * 1000).toISOString().replace('T', ' ').slice(0, 19) : '—');
  const fmtNum = (v, d = 2) => (v == null || Number.isNaN(v) ? '—' : Number(v).toFixed(d));
  const statusEl = (s) => el('span', { class: 'status ' + String(s || '').replace(/[^A-Za-z_]/g, ''), text: s || '—' });
  function table(columns, rows, opts = {}) {
    /* columns: [{key, label, render?, sort?}], rows: objects */
    const t = el('table', { class: opts.class, 'data-rows': String(rows.length) });
    const head = el('tr');
    const sortState = opts.sortState || {};
    for (const c of columns) {
      const th = el('th', { text: c.label, scope: 'col' });
      if (c.sort) {
        th.classList.add('sortable');
        th.setAttribute('data-key', c.key);
        if (sortState.key === c.key) th.setAttribute('aria-sort', sortState.dir > 0 ? 'ascending' : 'descending');
        th.addEventListener('click', () => opts.onSort && opts.onSort(c.key));
      }
      head.append(th);
    }
    t.append(el('thead', null, head));
    const body = el('tbody');
    let list = rows.slice();
    if (sortState.key) {
      const col = columns.find((c) => c.key === sortState.key);
      const val = (r) => (col && col.sort !== true ? col.sort(r) : r[sortState.key]);
      list.sort((a, b) => {
        const x = val(a), y = val(b);
        if (x == null && y == null) return 0;
        if (x == null) return 1; /* missing values last either way */
        if (y == null) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * sortState.dir;
      });
    }
    for (const r of list) {
      const tr = el('tr');
      for (const c of columns) tr.append(el('td', null, c.render ? c.render(r) : r[c.key] ?? '—'));
      body.append(tr);
    }
    if (!list.length) body.append(el('tr', null, el('td', { colspan: String(columns.length), class: 'muted', text: opts.empty || 'None.' })));
    t.append(body);
    return t;
  }
  function replace(node, content) {
    node.replaceChildren(...[content].flat().filter((x) => x != null));
  }

  /* ------------------------------------------------------------ banner */
  function serverDown(err) {
    if (!state.down) state.down = new Date();
    const b = $('banner');
    b.textContent = 'The kennel server at ' + location.host + ' is not answering (since ' +
      state.down.toLocaleTimeString() + '). The console keeps the last data it had and retries every ' +
      POLL_MS / 1000 + ' s.';
    b.hidden = false;
    b.setAttribute('data-state', 'down');
    if (err) console.warn(err);
  }
  function serverUp() {
    if (!state.down) return;
    state.down = null;
    const b = $('banner');
    b.hidden = true;
    b.removeAttribute('data-state');
  }

  /* ------------------------------------------------------------ API */
  class ApiError extends Error {
    constructor(code, message, status) {
      super(code + ': ' + message);
      this.code = code;
      this.detail = message;
      this.status = status;
    }
  }
  function parseError(resp, text) {
    let code = resp.headers.get('x-amzn-ErrorType') || '';
    let message = '';
    try {
      const j = JSON.parse(text);
      code = code || j.__type || j.code || j.Code || '';
      message = j.message || j.Message || '';
    } catch (_) {
      const doc = new DOMParser().parseFromString(text, 'application/xml');
      code = code || (doc.querySelector('Code') || {}).textContent || '';
      message = (doc.querySelector('Message') || {}).textContent || '';
    }
    code = String(code).split(':')[0].split('#').pop() || 'HTTP' + resp.status;
    return new ApiError(code, message || resp.statusText || 'request failed', resp.status);
  }
  async function signed(service, path, init) {
    if (!state.creds) throw new ApiError('NotSignedIn', 'sign in first', 0);
    const client = new aws4fetch.AwsClient({
      accessKeyId: state.creds.accessKeyId, secretAccessKey: state.creds.secretAccessKey,
      sessionToken: state.creds.sessionToken || undefined, service, region: state.region, retries: 0,
    });
    let resp;
    try {
      resp = await client.fetch(location.origin + path, init);
    } catch (e) {
      serverDown(e);
      throw new ApiError('NetworkError', 'the kennel server is not answering', 0);
    }
    serverUp();
    const text = await resp.text();
    if (!resp.ok) {
      const err = parseError(resp, text);
      if (AUTH_ERRORS.has(err.code)) signOut(err.code + ': ' + err.detail);
      throw err;
    }
    const type = resp.headers.get('content-type') || '';
    if (type.includes('xml')) return new DOMParser().parseFromString(text, 'application/xml');
    return text ? JSON.parse(text) : {};
  }
  const json11 = (service, target, input) => signed(service, '/', {
    method: 'POST', body: JSON.stringify(input || {}),
    headers: { 'Content-Type': 'application/x-amz-json-1.1', 'X-Amz-Target': target },
  });
  const sm = (op, input) => json11('sagemaker', 'SageMaker.' + op, input);
  const aas = (op, input) => json11('application-autoscaling', 'AnyScaleFrontendService.' + op, input);
  const query = (service, action, version, params) => signed(service, '/', {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: new URLSearchParams(Object.assign({ Action: action, Version: version }, params || {})).toString(),
  });
  /* An operation this server does not offer (yet) is not an error for the
   * page: the section says so instead. */
  const NOT_OFFERED = new Set(['UnknownOperationException', 'InvalidAction', 'NoSuchRoute', 'NotFound', 'UnknownOperation']);
  async function optional(promise) {
    try {
      return { ok: true, value: await promise };
    } catch (e) {
      if (e instanceof ApiError && (NOT_OFFERED.has(e.code) || e.status === 404)) return { ok: false, missing: true, error: e };
      return { ok: false, error: e };
    }
  }
  async function publicJson(path) {
    let resp;
    try {
      resp = await fetch(path, { cache: 'no-store' });
    } catch (e) {
      serverDown(e);
      throw new ApiError('NetworkError', 'the kennel server is not answering', 0);
    }
    serverUp();
    if (!resp.ok) throw parseError(resp, await resp.text());
    return resp.json();
  }

  /* ------------------------------------------------------------ session */
  function loadCreds() {
    try {
      const c = JSON.parse(sessionStorage.getItem('kennel.creds') || 'null');
      if (c && c.accessKeyId && c.secretAccessKey) return c;
    } catch (_) { /* a damaged entry is the same as none */ }
    return null;
  }
  function signOut(reason) {
    sessionStorage.removeItem('kennel.creds');
    state.creds = null;
    state.identity = '';
    stopPolling();
    showSignIn(reason);
  }
  async function whoAmI() {
    /* STS GetCallerIdentity where the server has it; else any cheap read */
    const r = await optional(query('sts', 'GetCallerIdentity', '2011-06-15'));
    if (r.ok) {
      const arn = r.value.querySelector && r.value.querySelector('Arn');
      return arn ? arn.textContent : state.creds.accessKeyId;
    }
    if (!r.missing) throw r.error;
    await sm('ListEndpoints', { MaxResults: 1 });
    return state.creds.accessKeyId;
  }
  function showSignIn(reason) {
    $('nav').hidden = true;
    $('signout').hidden = true;
    $('who').textContent = '';
    const err = el('div', { class: 'error', id: 'signin-error', role: 'alert' });
    if (reason) err.textContent = reason;
    const form = el('form', { class: 'signin', id: 'signin', autocomplete: 'off' },
      el('h1', { text: 'Sign in to kennel' }),
      el('p', { class: 'muted', text: 'Use an access key of this server (the administrator key is in the data directory). It stays in this browser tab only.' }),
      el('label', { for: 'akid', text: 'Access key ID' }), el('input', { id: 'akid', name: 'akid', required: '', spellcheck: 'false' }),
      el('label', { for: 'secret', text: 'Secret access key' }), el('input', { id: 'secret', name: 'secret', type: 'password', required: '' }),
      el('label', { for: 'token', text: 'Session token (temporary credentials only)' }), el('input', { id: 'token', name: 'token' }),
      el('button', { type: 'submit', text: 'Sign in' }), err);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      state.creds = {
        accessKeyId: $('akid').value.trim(), secretAccessKey: $('secret').value.trim(),
        sessionToken: $('token').value.trim(),
      };
      try {
        state.identity = await whoAmI();
      } catch (e) {
        state.creds = null;
        err.textContent = e.message || String(e);
        return;
      }
      sessionStorage.setItem('kennel.creds', JSON.stringify(state.creds));
      if (!location.hash || location.hash === '#/signin') location.hash = '#/';
      else route();
    });
    replace($('view'), form);
  }

  /* ------------------------------------------------------------ charts */
  function chart(id, title, series, opts = {}) {
    /* series: [{label, stroke, points?: true (markers only), dash?}] */
    const box = el('div', { class: 'chart', id: 'chart-' + id, 'data-chart': id });
    const wrap = el('section', null, el('h2', { text: title }), box,
      opts.note ? el('div', { class: 'legend-note', text: opts.note }) : null);
    const make = () => {
      const width = Math.max(260, box.clientWidth || wrap.clientWidth - 30 || 560);
      const u = new uPlot({
        width, height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'), /* as the tables: UTC */
        scales: { x: Object.assign({ time: opts.xTime !== false }, opts.x || {}), y: Object.assign({ auto: true }, opts.y || {}) },
        axes: [{ label: opts.xLabel }, { label: opts.yLabel || '', size: 60 }],
        series: [{}].concat(series.map((s) => s.points
          ? { label: s.label, stroke: s.stroke, fill: s.stroke, width: 0, paths: () => null, points: { show: true, size: 10, fill: s.stroke, stroke: s.stroke } }
          : { label: s.label, stroke: s.stroke, width: 2, dash: s.dash, spanGaps: true, points: { show: false },
              paths: s.step ? uPlot.paths.stepped({ align: 1 }) : undefined })),
      }, [[], ...series.map(() => [])], box);
      state.charts[id] = u;
      /* follow the card's width (grid reflow, rotation, window size) */
      if (typeof ResizeObserver !== 'undefined') {
        new ResizeObserver(() => {
          const w = Math.max(260, box.clientWidth);
          if (Math.abs(u.width - w) > 4) u.setSize({ width: w, height: 220 });
        }).observe(box);
      }
      return u;
    };
    return { node: wrap, box, make, setX(x) { opts.x = x; }, get u() { return state.charts[id]; } };
  }
  function setChart(c, data) {
    if (typeof uPlot === 'undefined') {
      c.box.textContent = 'Charts are unavailable: this kennel was built without its charting library (npm was missing at build time).';
      return;
    }
    const u = c.u || c.make();
    u.setData(data);
    const w = Math.max(260, c.box.clientWidth);
    if (Math.abs(u.width - w) > 4) u.setSize({ width: w, height: 220 });
  }

  /* ------------------------------------------------------------ pages */
  function stopPolling() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }
  function startPage(page) {
    stopPolling();
    state.charts = {};
    state.page = page;
    const tick = async () => {
      if (state.page !== page || !state.creds) return;
      try {
        await page.refresh();
        page.error && (page.error.textContent = '');
      } catch (e) {
        if (page.error && !(e instanceof ApiError && e.code === 'NetworkError')) page.error.textContent = e.message || String(e);
      }
      if (state.page === page && state.creds) state.timer = setTimeout(tick, POLL_MS);
    };
    tick();
  }

  function overviewPage() {
    const view = $('view');
    const cards = el('div', { class: 'cards', id: 'cards' });
    const eps = el('div', { id: 'endpoints' });
    const fns = el('div', { id: 'functions' });
    const jobs = el('div', { id: 'jobs' });
    const error = el('div', { class: 'error', role: 'alert' });
    replace(view, [el('h1', { text: 'Overview' }), error, cards,
      el('section', null, el('h2', { text: 'Endpoints' }), eps),
      el('section', null, el('h2', { text: 'Functions' }), fns),
      el('section', null, el('h2', { text: 'Recent training and tuning jobs' }), jobs)]);
    const card = (k, v, id) => el('div', { class: 'card', id }, el('div', { class: 'k', text: k }), el('div', { class: 'v', text: v }));
    return {
      error,
      async refresh() {
        const list = (await sm('ListEndpoints', { MaxResults: 100 })).Endpoints || [];
        const described = await Promise.all(list.map((e) => sm('DescribeEndpoint', { EndpointName: e.EndpointName }).catch(() => null)));
        const configs = {};
        await Promise.all(described.filter(Boolean).map(async (d) => {
          if (!configs[d.EndpointConfigName]) {
            configs[d.EndpointConfigName] = await sm('DescribeEndpointConfig', { EndpointConfigName: d.EndpointConfigName }).catch(() => null);
          }
        }));
        const now = Date.now() / 1000;
        let instances = 0, costHour = 0, costSoFar = 0;
        const rows = list.map((e, i) => {
          const d = described[i] || {};
          const cfg = configs[d.EndpointConfigName] || {};
          const types = {};
          for (const v of cfg.ProductionVariants || []) types[v.VariantName] = v.InstanceType;
          let n = 0, perHour = 0;
          for (const v of d.ProductionVariants || []) {
            const k = v.CurrentInstanceCount || 0;
            n += k;
            perHour += k * (state.prices[types[v.VariantName]] || 0);
          }
          instances += n;
          costHour += perHour;
          if (d.CreationTime && d.EndpointStatus !== 'Failed') costSoFar += perHour * Math.max(0, now - d.CreationTime) / 3600;
          return { name: e.EndpointName, status: e.EndpointStatus, type: Object.values(types).join(', '), n, perHour, created: e.CreationTime };
        });
        const fnList = await optional(signed('lambda', '/2015-03-31/functions/', { method: 'GET' }));
        const account = await optional(signed('lambda', '/2016-08-19/account-settings/', { method: 'GET' }));
        const recent = { MaxResults: 20, SortBy: 'CreationTime', SortOrder: 'Descending' };
        const training = await optional(sm('ListTrainingJobs', recent));
        const tuning = await optional(sm('ListHyperParameterTuningJobs', recent));
        const jobList = [];
        if (tuning.ok) for (const j of tuning.value.HyperParameterTuningJobSummaries || []) jobList.push({ kind: 'tuning', name: j.HyperParameterTuningJobName, status: j.HyperParameterTuningJobStatus, started: j.CreationTime });
        if (training.ok) for (const j of training.value.TrainingJobSummaries || []) jobList.push({ kind: 'training', name: j.TrainingJobName, status: j.TrainingJobStatus, started: j.CreationTime });
        const running = jobList.filter((j) => j.status === 'InProgress');
        const conc = account.ok && account.value.AccountLimit
          ? (account.value.AccountLimit.ConcurrentExecutions - (account.value.AccountLimit.UnreservedConcurrentExecutions || 0)) + ' reserved of ' + account.value.AccountLimit.ConcurrentExecutions
          : '—';
        replace(cards, [
          card('Endpoints in service', rows.filter((r) => r.status === 'InService').length + ' / ' + rows.length, 'card-endpoints'),
          card('Instances', String(instances), 'card-instances'),
          card('Functions', fnList.ok ? String((fnList.value.Functions || []).length) : '—', 'card-functions'),
          card('Running jobs', training.ok || tuning.ok ? String(running.length) : '—', 'card-jobs'),
          card('Function concurrency', conc, 'card-concurrency'),
          card('Cost so far (AWS prices)', '$' + costSoFar.toFixed(2) + '  ($' + costHour.toFixed(2) + '/h)', 'card-cost'),
        ]);
        replace(eps, table([
          { key: 'name', label: 'Name', render: (r) => el('a', { href: '#/endpoint/' + encodeURIComponent(r.name), text: r.name }) },
          { key: 'status', label: 'Status', render: (r) => statusEl(r.status) },
          { key: 'type', label: 'Instance type' },
          { key: 'n', label: 'Instances' },
          { key: 'perHour', label: 'USD / hour', render: (r) => '$' + r.perHour.toFixed(3) },
          { key: 'created', label: 'Created (UTC)', render: (r) => fmtTime(r.created) },
        ], rows, { empty: 'No endpoints yet.' }));
        if (fnList.ok) {
          replace(fns, table([
            { key: 'FunctionName', label: 'Name', render: (f) => el('a', { href: '#/function/' + encodeURIComponent(f.FunctionName), text: f.FunctionName }) },
            { key: 'Runtime', label: 'Runtime' }, { key: 'MemorySize', label: 'Memory (MB)' },
            { key: 'Timeout', label: 'Timeout (s)' }, { key: 'LastModified', label: 'Last modified' },
          ], fnList.value.Functions || [], { empty: 'No functions yet.' }));
        } else {
          replace(fns, el('p', { class: 'muted', text: fnList.missing ? 'This server does not run functions.' : fnList.error.message }));
        }
        if (training.ok || tuning.ok) {
          replace(jobs, table([
            { key: 'kind', label: 'Kind' },
            { key: 'name', label: 'Name', render: (j) => el('a', { href: '#/' + j.kind + '/' + encodeURIComponent(j.name), text: j.name }) },
            { key: 'status', label: 'Status', render: (j) => statusEl(j.status) },
            { key: 'started', label: 'Started (UTC)', render: (j) => fmtTime(j.started) },
          ], jobList, { empty: 'No jobs yet.' }));
        } else {
          replace(jobs, el('p', { class: 'muted', text: training.missing ? 'This server does not run training jobs.' : training.error.message }));
        }
      },
    };
  }

  function endpointPage(name) {
    const view = $('view');
    const head = el('div', { id: 'endpoint-head' });
    const vars = el('div', { id: 'variants' });
    const acts = el('div', { id: 'activities' });
    const error = el('div', { class: 'error', role: 'alert' });
    const cInst = chart('instances', 'Instances over time, UTC (markers: scaling activities)', [
      { label: 'instances', stroke: '#2563eb', step: true }, { label: 'scaling activity', stroke: '#b91c1c', points: true }], { y: { range: (u, min, max) => [0, Math.max(1, max) + 1] } });
    const cInv = chart('invocations', 'Invocations per instance per minute, against the target', [
      { label: 'invocations / instance', stroke: '#15803d' }, { label: 'target', stroke: '#b45309', dash: [6, 4] }]);
    const cLat = chart('latency', 'Latency per minute (ms)', [
      { label: 'p50', stroke: '#2563eb' }, { label: 'p99', stroke: '#b91c1c' },
      { label: 'model (mean)', stroke: '#7c3aed', dash: [4, 3] }, { label: 'overhead (mean)', stroke: '#0891b2', dash: [4, 3] }],
    { note: 'p50 and p99 of each request\'s whole time in the endpoint (model + overhead); ModelLatency and OverheadLatency are the minute\'s means.' });
    const cErr = chart('errors', 'Errors per minute', [
      { label: '4XX', stroke: '#b45309' }, { label: '5XX', stroke: '#b91c1c' }]);
    replace(view, [el('p', null, el('a', { href: '#/', text: '← Overview' })), head, error,
      el('section', null, el('h2', { text: 'Production variants' }), vars),
      el('div', { class: 'grid' }, cInst.node, cInv.node, cLat.node, cErr.node),
      el('section', null, el('h2', { text: 'Scaling activities' }), acts)]);
    return {
      error,
      async refresh() {
        const d = await sm('DescribeEndpoint', { EndpointName: name });
        replace(head, [el('h1', null, 'Endpoint ', el('span', { id: 'endpoint-name', text: d.EndpointName }), ' ', statusEl(d.EndpointStatus)),
          el('p', { class: 'muted', text: d.EndpointArn }),
          d.FailureReason ? el('p', { class: 'error', text: 'FailureReason: ' + d.FailureReason }) : null]);
        const variant = (d.ProductionVariants || [])[0];
        replace(vars, table([
          { key: 'VariantName', label: 'Variant' },
          { key: 'CurrentInstanceCount', label: 'Instances' },
          { key: 'DesiredInstanceCount', label: 'Desired' },
          { key: 'CurrentWeight', label: 'Weight' },
        ], d.ProductionVariants || []));
        if (!variant) return;
        const resource = 'endpoint/' + name + '/variant/' + variant.VariantName;
        const [metrics, activities, policies] = await Promise.all([
          signed('sagemaker', '/kennel/endpoints/' + encodeURIComponent(name) + '/metrics?minutes=60', { method: 'GET' }),
          optional(aas('DescribeScalingActivities', { ServiceNamespace: 'sagemaker', ResourceId: resource })),
          optional(aas('DescribeScalingPolicies', { ServiceNamespace: 'sagemaker', ResourceId: resource })),
        ]);
        const series = (metrics.Variants || {})[variant.VariantName] || [];
        const acts_ = activities.ok ? activities.value.ScalingActivities || [] : [];
        let target = null;
        if (policies.ok) {
          for (const p of policies.value.ScalingPolicies || []) {
            const t = p.TargetTrackingScalingPolicyConfiguration;
            if (t && t.TargetValue != null) target = t.TargetValue;
          }
        }
        /* one x axis: the per-minute points and the activity times */
        const xs = [...new Set(series.map((m) => m.Minute).concat(acts_.map((a) => Math.round(a.StartTime))))].sort((a, b) => a - b);
        const byMinute = new Map(series.map((m) => [m.Minute, m]));
        const at = new Map();
        for (const a of acts_) {
          const m = /to (\d+)/.exec(a.Description || '');
          at.set(Math.round(a.StartTime), m ? Number(m[1]) : null);
        }
        const col = (f) => xs.map((x) => (byMinute.has(x) ? f(byMinute.get(x)) : null));
        /* an activity's marker sits at the count it set (or the count then) */
        let last = null;
        const countAt = xs.map((x) => {
          if (byMinute.has(x)) last = byMinute.get(x).InstanceCount;
          return last;
        });
        const marks = xs.map((x, i) => (at.has(x) ? (at.get(x) ?? countAt[i]) : null));
        setChart(cInst, [xs, col((m) => m.InstanceCount), marks]);
        setChart(cInv, [xs, col((m) => m.InvocationsPerInstance), xs.map(() => target)]);
        setChart(cLat, [xs, col((m) => m.LatencyP50 / 1000), col((m) => m.LatencyP99 / 1000),
          col((m) => m.ModelLatency / 1000), col((m) => m.OverheadLatency / 1000)]);
        setChart(cErr, [xs, col((m) => m.Invocation4XXErrors), col((m) => m.Invocation5XXErrors)]);
        cInst.box.setAttribute('data-max-instances', String(Math.max(0, ...series.map((m) => m.InstanceCount || 0))));
        cInst.box.setAttribute('data-activities', String(acts_.length));
        if (activities.ok) {
          replace(acts, table([
            { key: 'StartTime', label: 'Start (UTC)', render: (a) => fmtTime(a.StartTime) },
            { key: 'Description', label: 'Description' },
            { key: 'Cause', label: 'Cause' },
            { key: 'StatusCode', label: 'Status', render: (a) => statusEl(a.StatusCode) },
          ], acts_, { empty: 'No scaling activity yet.' }));
        } else {
          replace(acts, el('p', { class: 'muted', text: activities.error.message }));
        }
      },
    };
  }

  /* a chart from [x, value] pairs per named series (x in seconds) */
  function seriesData(named) {
    const names = Object.keys(named);
    const xs = [...new Set(names.flatMap((n) => named[n].map((p) => p[0])))].sort((a, b) => a - b);
    const cols = names.map((n) => {
      const m = new Map(named[n].map((p) => [p[0], p[1]]));
      return xs.map((x) => (m.has(x) ? m.get(x) : null));
    });
    return [xs, ...cols];
  }
  const PALETTE = ['#2563eb', '#b91c1c', '#15803d', '#7c3aed', '#b45309', '#0891b2', '#db2777', '#4b5563'];
  function tailLines(text, n) {
    const lines = String(text || '').split('\n');
    while (lines.length && !lines[lines.length - 1]) lines.pop();
    return lines.slice(-n).join('\n');
  }
  function kv(pairs) {
    return table([{ key: 'k', label: 'Name' }, { key: 'v', label: 'Value' }],
      pairs.map(([k, v]) => ({ k, v: v == null ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v) })));
  }
  async function getText(service, path) {
    /* kennel's plain-text routes (logs) */
    if (!state.creds) throw new ApiError('NotSignedIn', 'sign in first', 0);
    const client = new aws4fetch.AwsClient({
      accessKeyId: state.creds.accessKeyId, secretAccessKey: state.creds.secretAccessKey,
      sessionToken: state.creds.sessionToken || undefined, service, region: state.region, retries: 0,
    });
    let resp;
    try {
      resp = await client.fetch(location.origin + path, { method: 'GET' });
    } catch (e) {
      serverDown(e);
      throw new ApiError('NetworkError', 'the kennel server is not answering', 0);
    }
    serverUp();
    const text = await resp.text();
    if (!resp.ok) throw parseError(resp, text);
    return text;
  }

  function trainingPage(name) {
    const view = $('view');
    const head = el('div', { id: 'job-head' });
    const timeline = el('div', { id: 'timeline' });
    const hps = el('div', { id: 'hyperparameters' });
    const finals = el('div', { id: 'final-metrics' });
    const log = el('pre', { class: 'log', id: 'log' });
    const error = el('div', { class: 'error', role: 'alert' });
    let cLoss = null, cAcc = null;
    const boxes = el('div', { class: 'grid', id: 'curves' });
    replace(view, [el('p', null, el('a', { href: '#/', text: '← Overview' })), head, error,
      el('section', null, el('h2', { text: 'Status timeline' }), timeline), boxes,
      el('div', { class: 'grid' }, el('section', null, el('h2', { text: 'Hyperparameters' }), hps),
        el('section', null, el('h2', { text: 'Final metrics' }), finals)),
      el('section', null, el('h2', { text: 'Log (last 60 lines)' }), log)]);
    let shape = '';
    return {
      error,
      async refresh() {
        const d = await sm('DescribeTrainingJob', { TrainingJobName: name });
        replace(head, [el('h1', null, 'Training job ', el('span', { id: 'job-name', text: d.TrainingJobName }), ' ', statusEl(d.TrainingJobStatus), ' ', el('span', { class: 'muted', text: d.SecondaryStatus || '' })),
          d.FailureReason ? el('p', { class: 'error', id: 'failure-reason', text: 'FailureReason: ' + d.FailureReason }) : null,
          d.TuningJobArn ? el('p', null, 'Trial of ', el('a', { href: '#/tuning/' + encodeURIComponent(d.TuningJobArn.split('/').pop()), text: d.TuningJobArn.split('/').pop() })) : null]);
        replace(timeline, table([
          { key: 'Status', label: 'Status', render: (t) => statusEl(t.Status) },
          { key: 'StartTime', label: 'Start (UTC)', render: (t) => fmtTime(t.StartTime) },
          { key: 'EndTime', label: 'End (UTC)', render: (t) => fmtTime(t.EndTime) },
          { key: 'StatusMessage', label: 'Message' },
        ], d.SecondaryStatusTransitions || []));
        replace(hps, kv(Object.entries(d.HyperParameters || {})));
        replace(finals, kv((d.FinalMetricDataList || []).map((m) => [m.MetricName, m.Value])));
        const series = await optional(signed('sagemaker', '/kennel/training-jobs/' + encodeURIComponent(name) + '/metrics', { method: 'GET' }));
        if (series.ok) {
          const named = series.value || {};
          const loss = Object.keys(named).filter((k) => /loss/i.test(k));
          const acc = Object.keys(named).filter((k) => /acc/i.test(k));
          const key = loss.join('|') + '/' + acc.join('|');
          if (key !== shape) { /* a new metric appeared: new charts */
            shape = key;
            const mk = (id, title, names) => chart(id, title, names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length] })));
            delete state.charts.loss;
            delete state.charts.accuracy;
            cLoss = loss.length ? mk('loss', 'Loss', loss) : null;
            cAcc = acc.length ? mk('accuracy', 'Accuracy', acc) : null;
            replace(boxes, [cLoss && cLoss.node, cAcc && cAcc.node]);
          }
          if (cLoss) setChart(cLoss, seriesData(Object.fromEntries(loss.map((k) => [k, named[k]]))));
          if (cAcc) setChart(cAcc, seriesData(Object.fromEntries(acc.map((k) => [k, named[k]]))));
          if (!loss.length && !acc.length) replace(boxes, el('section', null, el('p', { class: 'muted', text: 'No metric series yet (MetricDefinitions match the log as it is written).' })));
        }
        const text = await optional(getText('sagemaker', '/kennel/training-jobs/' + encodeURIComponent(name) + '/logs'));
        log.textContent = text.ok ? tailLines(text.value, 60) : (text.error && text.error.message) || '';
      },
    };
  }

  function tuningPage(name) {
    const view = $('view');
    const head = el('div', { id: 'tuning-head' });
    const best = el('div', { id: 'best' });
    const trials = el('div', { id: 'trials' });
    const error = el('div', { class: 'error', role: 'alert' });
    const deployMsg = el('div', { id: 'deploy-result', role: 'status' });
    const epInput = el('input', { id: 'deploy-name', placeholder: 'endpoint name', 'aria-label': 'Endpoint name' });
    const deployBtn = el('button', { id: 'deploy-best', type: 'button', text: 'Deploy best' });
    const cTime = chart('objective-time', 'Objective per trial over time (end time, UTC)', [{ label: 'objective', stroke: '#2563eb', points: true }]);
    const hpCharts = el('div', { class: 'grid', id: 'hp-charts' });
    const sortState = { key: 'objective', dir: 1 };
    let last = null;
    replace(view, [el('p', null, el('a', { href: '#/', text: '← Overview' })), head, error,
      el('section', null, el('h2', { text: 'Best training job' }), best, el('div', { class: 'deploy' }, epInput, ' ', deployBtn), deployMsg),
      el('section', null, el('h2', { text: 'Trials' }), trials),
      el('div', { class: 'grid' }, cTime.node), hpCharts]);
    const hpChart = {};
    function renderTrials() {
      if (!last) return;
      const hpNames = [...new Set(last.rows.flatMap((r) => Object.keys(r.hp)))].sort();
      replace(trials, table([
        { key: 'name', label: 'Training job', render: (r) => el('a', { href: '#/training/' + encodeURIComponent(r.name), text: r.name }) },
        { key: 'status', label: 'Status', render: (r) => statusEl(r.status), sort: true },
        ...hpNames.map((h) => ({ key: 'hp:' + h, label: h, render: (r) => r.hp[h] ?? '—', sort: (r) => (r.hp[h] == null ? null : Number.isNaN(Number(r.hp[h])) ? r.hp[h] : Number(r.hp[h])) })),
        { key: 'objective', label: 'Objective (' + last.metric + ')', render: (r) => fmtNum(r.objective, 4), sort: true },
        { key: 'elapsed', label: 'Elapsed (s)', render: (r) => fmtNum(r.elapsed, 0), sort: true },
      ], last.rows, {
        class: 'trials', sortState, empty: 'No trial yet.',
        onSort: (k) => { sortState.dir = sortState.key === k ? -sortState.dir : 1; sortState.key = k; renderTrials(); },
      }));
    }
    deployBtn.addEventListener('click', async () => {
      deployMsg.textContent = '';
      deployMsg.className = '';
      const ep = epInput.value.trim();
      if (!last || !last.best) { deployMsg.textContent = 'There is no best training job yet.'; return; }
      if (!/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/.test(ep)) { deployMsg.className = 'error'; deployMsg.textContent = 'Name the endpoint: letters, digits and hyphens, up to 63 characters.'; return; }
      deployBtn.disabled = true;
      try {
        const job = await sm('DescribeTrainingJob', { TrainingJobName: last.best });
        const url = job.ModelArtifacts && job.ModelArtifacts.S3ModelArtifacts;
        await sm('CreateModel', { ModelName: ep, PrimaryContainer: { ModelDataUrl: url } });
        await sm('CreateEndpointConfig', { EndpointConfigName: ep, ProductionVariants: [{ VariantName: 'AllTraffic', ModelName: ep, InitialInstanceCount: 1, InstanceType: 'ml.m5.large', InitialVariantWeight: 1 }] });
        await sm('CreateEndpoint', { EndpointName: ep, EndpointConfigName: ep });
        deployMsg.append(el('span', { text: 'Creating endpoint ' }), el('a', { href: '#/endpoint/' + encodeURIComponent(ep), text: ep }), el('span', { text: ' from ' + last.best + '.' }));
      } catch (e) {
        deployMsg.className = 'error';
        deployMsg.textContent = e.message || String(e);
      } finally {
        deployBtn.disabled = false;
      }
    });
    return {
      error,
      async refresh() {
        const d = await sm('DescribeHyperParameterTuningJob', { HyperParameterTuningJobName: name });
        const cfg = d.HyperParameterTuningJobConfig || {};
        const obj = cfg.HyperParameterTuningJobObjective || {};
        const c = d.TrainingJobStatusCounters || {};
        replace(head, [el('h1', null, 'Tuning job ', el('span', { id: 'tuning-name', text: d.HyperParameterTuningJobName }), ' ', statusEl(d.HyperParameterTuningJobStatus)),
          el('p', { class: 'muted', text: (cfg.Strategy || '') + ' · ' + (obj.Type || '') + ' ' + (obj.MetricName || '') + ' · completed ' + (c.Completed || 0) + ', in progress ' + (c.InProgress || 0) + ', stopped ' + (c.Stopped || 0) + ', failed ' + ((c.NonRetryableError || 0) + (c.RetryableError || 0)) + ' of ' + ((cfg.ResourceLimits || {}).MaxNumberOfTrainingJobs || '?') }),
          d.FailureReason ? el('p', { class: 'error', text: 'FailureReason: ' + d.FailureReason }) : null]);
        const rows = [];
        let token;
        do {
          const page = await sm('ListTrainingJobsForHyperParameterTuningJob', Object.assign({ HyperParameterTuningJobName: name, MaxResults: 100 }, token ? { NextToken: token } : {}));
          for (const j of page.TrainingJobSummaries || []) {
            const m = j.FinalHyperParameterTuningJobObjectiveMetric;
            rows.push({
              name: j.TrainingJobName, status: j.TrainingJobStatus, hp: j.TunedHyperParameters || {},
              objective: m ? m.Value : null,
              end: j.TrainingEndTime || null,
              elapsed: j.TrainingStartTime && j.TrainingEndTime ? j.TrainingEndTime - j.TrainingStartTime : null,
            });
          }
          token = page.NextToken;
        } while (token);
        if (!last && obj.Type === 'Maximize') sortState.dir = -1;
        const b = d.BestTrainingJob;
        last = { rows, metric: obj.MetricName || 'objective', best: b ? b.TrainingJobName : null };
        renderTrials();
        replace(best, b
          ? kv([['Training job', b.TrainingJobName], ['Objective', b.FinalHyperParameterTuningJobObjectiveMetric ? b.FinalHyperParameterTuningJobObjectiveMetric.Value : null],
            ...Object.entries(b.TunedHyperParameters || {})])
          : el('p', { class: 'muted', text: 'No completed trial with an objective yet.' }));
        const done = rows.filter((r) => r.objective != null && r.end != null).sort((x, y) => x.end - y.end);
        setChart(cTime, [done.map((r) => r.end), done.map((r) => r.objective)]);
        /* objective against each hyperparameter (categories by position) */
        const hpNames = [...new Set(rows.flatMap((r) => Object.keys(r.hp)))].sort();
        for (const h of hpNames) {
          if (!hpChart[h]) {
            hpChart[h] = chart('hp-' + h, 'Objective against ' + h, [{ label: 'objective', stroke: '#7c3aed', points: true }], { xTime: false, xLabel: h });
            hpCharts.append(hpChart[h].node);
          }
          const pts = rows.filter((r) => r.objective != null && r.hp[h] != null);
          const numeric = pts.every((r) => !Number.isNaN(Number(r.hp[h])));
          const vals = pts.map((r) => Number(r.hp[h]));
          const logX = numeric && vals.length > 1 && Math.min(...vals) > 0 && Math.max(...vals) / Math.min(...vals) >= 100;
          if (hpChart[h].logX !== logX) { /* a range over decades reads on a log axis */
            hpChart[h].logX = logX;
            if (hpChart[h].u) { hpChart[h].u.destroy(); delete state.charts['hp-' + h]; }
            hpChart[h].setX(logX ? { distr: 3 } : {});
          }
          const cats = [...new Set(pts.map((r) => r.hp[h]))].sort();
          const xy = pts.map((r) => [numeric ? Number(r.hp[h]) : cats.indexOf(r.hp[h]), r.objective]).sort((p, q) => p[0] - q[0]);
          setChart(hpChart[h], [xy.map((p) => p[0]), xy.map((p) => p[1])]);
        }
      },
    };
  }

  function functionPage(name) {
    const view = $('view');
    const head = el('div', { id: 'function-head' });
    const conf = el('div', { id: 'function-config' });
    const versions = el('div', { id: 'versions' });
    const aliases = el('div', { id: 'aliases' });
    const prov = el('div', { id: 'provisioned' });
    const log = el('pre', { class: 'log', id: 'log' });
    const error = el('div', { class: 'error', role: 'alert' });
    const cConc = chart('concurrency', 'Concurrency (per-minute peak) against reserved and provisioned', [
      { label: 'in flight', stroke: '#2563eb' }, { label: 'reserved', stroke: '#b91c1c', dash: [6, 4] }, { label: 'provisioned', stroke: '#15803d', dash: [2, 3] }]);
    const cInv = chart('fn-invocations', 'Invocations, errors and throttles per minute', [
      { label: 'invocations', stroke: '#2563eb' }, { label: 'errors', stroke: '#b45309' }, { label: 'throttles', stroke: '#b91c1c' }]);
    const cDur = chart('duration', 'Duration (ms)', [{ label: 'average', stroke: '#7c3aed' }, { label: 'max', stroke: '#0891b2' }]);
    const cPc = chart('provisioned-use', 'Provisioned concurrency: invocations and spillover per minute', [
      { label: 'on provisioned', stroke: '#15803d' }, { label: 'spillover', stroke: '#b45309' }]);
    replace(view, [el('p', null, el('a', { href: '#/', text: '← Overview' })), head, error,
      el('div', { class: 'grid' }, el('section', null, el('h2', { text: 'Configuration' }), conf), el('section', null, el('h2', { text: 'Provisioned concurrency' }), prov)),
      el('div', { class: 'grid' }, cConc.node, cInv.node, cDur.node, cPc.node),
      el('div', { class: 'grid' }, el('section', null, el('h2', { text: 'Versions' }), versions), el('section', null, el('h2', { text: 'Aliases' }), aliases)),
      el('section', null, el('h2', { text: 'Recent log lines' }), log)]);
    const fpath = '/2015-03-31/functions/' + encodeURIComponent(name);
    return {
      error,
      async refresh() {
        const f = await signed('lambda', fpath, { method: 'GET' });
        const c = f.Configuration || {};
        const reserved = f.Concurrency ? f.Concurrency.ReservedConcurrentExecutions : null;
        const [vs, as, pcs, metrics, text] = await Promise.all([
          optional(signed('lambda', fpath + '/versions', { method: 'GET' })),
          optional(signed('lambda', fpath + '/aliases', { method: 'GET' })),
          optional(signed('lambda', '/2019-09-30/functions/' + encodeURIComponent(name) + '/provisioned-concurrency?List=ALL', { method: 'GET' })),
          optional(signed('lambda', '/kennel/functions/' + encodeURIComponent(name) + '/metrics?minutes=60', { method: 'GET' })),
          optional(getText('lambda', '/kennel/functions/' + encodeURIComponent(name) + '/logs')),
        ]);
        const logText = text.ok ? text.value : '';
        const cold = (logText.match(/^REPORT .*Init Duration/gm) || []).length;
        const reports = (logText.match(/^REPORT /gm) || []).length;
        replace(head, [el('h1', null, 'Function ', el('span', { id: 'function-name', text: c.FunctionName || name }), ' ', statusEl(c.State || 'Active')),
          el('p', { class: 'muted', text: c.FunctionArn || '' })]);
        const pcList = pcs.ok ? pcs.value.ProvisionedConcurrencyConfigs || [] : [];
        const provTotal = pcList.reduce((n, p) => n + (p.AllocatedProvisionedConcurrentExecutions || 0), 0);
        replace(conf, kv([['Runtime', c.Runtime], ['Handler', c.Handler], ['Memory (MB)', c.MemorySize], ['Timeout (s)', c.Timeout],
          ['Role', c.Role], ['Reserved concurrency', reserved == null ? 'none (uses the unreserved pool)' : reserved],
          ['Cold starts in the log', reports ? cold + ' of ' + reports + ' invocations' : '—'], ['Last modified', c.LastModified], ['Description', c.Description],
          ...Object.entries(f.Tags || {}).map(([k, v]) => ['Tag ' + k, v])]));
        replace(prov, pcs.ok ? table([
          { key: 'FunctionArn', label: 'Qualifier', render: (p) => String(p.FunctionArn || '').split(':').pop() },
          { key: 'RequestedProvisionedConcurrentExecutions', label: 'Requested' },
          { key: 'AllocatedProvisionedConcurrentExecutions', label: 'Allocated' },
          { key: 'AvailableProvisionedConcurrentExecutions', label: 'Available' },
          { key: 'Status', label: 'Status', render: (p) => statusEl(p.Status) },
          { key: 'StatusReason', label: 'Reason' },
        ], pcList, { empty: 'No provisioned concurrency.' }) : el('p', { class: 'muted', text: pcs.error.message }));
        replace(versions, vs.ok ? table([{ key: 'Version', label: 'Version' }, { key: 'Description', label: 'Description' }, { key: 'LastModified', label: 'Last modified' }], vs.value.Versions || []) : el('p', { class: 'muted', text: vs.error.message }));
        replace(aliases, as.ok ? table([{ key: 'Name', label: 'Alias' }, { key: 'FunctionVersion', label: 'Version' }, { key: 'Description', label: 'Description' }], as.value.Aliases || [], { empty: 'No aliases.' }) : el('p', { class: 'muted', text: as.error.message }));
        if (metrics.ok) {
          const m = metrics.value.Metrics || [];
          const xs = m.map((p) => p.Minute);
          setChart(cConc, [xs, m.map((p) => p.ConcurrentExecutions), xs.map(() => reserved), xs.map(() => provTotal || null)]);
          setChart(cInv, [xs, m.map((p) => p.Invocations), m.map((p) => p.Errors), m.map((p) => p.Throttles)]);
          setChart(cDur, [xs, m.map((p) => p.Duration), m.map((p) => p.DurationMax)]);
          setChart(cPc, [xs, m.map((p) => p.ProvisionedConcurrencyInvocations), m.map((p) => p.ProvisionedConcurrencySpilloverInvocations)]);
          cInv.box.setAttribute('data-throttles', String(m.reduce((n, p) => n + (p.Throttles || 0), 0)));
        }
        log.textContent = text.ok ? tailLines(logText, 40) : (text.error && text.error.message) || '';
      },
    };
  }

  function iamPage() {
    const view = $('view');
    const users = el('div', { id: 'users' });
    const roles = el('div', { id: 'roles' });
    const denials = el('div', { id: 'denials' });
    const error = el('div', { class: 'error', role: 'alert' });
    replace(view, [el('h1', { text: 'Identity and access' }), error,
      el('section', null, el('h2', { text: 'Users' }), users),
      el('section', null, el('h2', { text: 'Roles, their policies and lint findings' }), roles),
      el('section', null, el('h2', { text: 'Recent denials (audit log)' }), denials)]);
    const iam = (action, params) => query('iam', action, '2010-05-08', params);
    const members = (doc, sel) => [...doc.querySelectorAll(sel)];
    const txt = (node, tag) => { const n = node.querySelector(tag); return n ? n.textContent : null; };
    async function policiesOf(kind, nameKey, name) {
      const attached = await optional(iam('ListAttached' + kind + 'Policies', { [nameKey]: name }));
      const inline = await optional(iam('List' + kind + 'Policies', { [nameKey]: name }));
      const out = [];
      if (attached.ok) for (const m of members(attached.value, 'AttachedPolicies > member')) out.push({ name: txt(m, 'PolicyName'), arn: txt(m, 'PolicyArn'), kind: 'managed' });
      if (inline.ok) {
        for (const m of members(inline.value, 'PolicyNames > member')) {
          const p = { name: m.textContent, kind: 'inline' };
          const got = await optional(iam('Get' + kind + 'Policy', { [nameKey]: name, PolicyName: p.name }));
          if (got.ok) p.document = decodeURIComponent(txt(got.value, 'PolicyDocument') || '');
          out.push(p);
        }
      }
      return out;
    }
    async function lint(doc) {
      if (!doc) return [];
      const r = await optional(signed('iam', '/kennel/iam/lint', { method: 'POST', body: doc, headers: { 'Content-Type': 'application/json' } }));
      return r.ok ? r.value.Findings || [] : [];
    }
    return {
      error,
      async refresh() {
        const u = await optional(iam('ListUsers'));
        if (u.ok) {
          const list = [];
          for (const m of members(u.value, 'Users > member')) {
            const name = txt(m, 'UserName');
            list.push({ name, arn: txt(m, 'Arn'), created: txt(m, 'CreateDate'), policies: await policiesOf('User', 'UserName', name) });
          }
          replace(users, table([
            { key: 'name', label: 'User' }, { key: 'arn', label: 'ARN' },
            { key: 'policies', label: 'Policies', render: (x) => x.policies.map((p) => p.name + ' (' + p.kind + ')').join(', ') || '—' },
            { key: 'created', label: 'Created' },
          ], list, { empty: 'No users.' }));
        } else {
          replace(users, el('p', { class: 'muted', text: u.error.message }));
        }
        const r = await optional(iam('ListRoles'));
        if (r.ok) {
          const list = [];
          for (const m of members(r.value, 'Roles > member')) {
            const name = txt(m, 'RoleName');
            const policies = await policiesOf('Role', 'RoleName', name);
            const findings = [];
            for (const p of policies) for (const f of await lint(p.document)) findings.push(p.name + ': ' + (f.Message || f.message || JSON.stringify(f)));
            list.push({ name, arn: txt(m, 'Arn'), trust: decodeURIComponent(txt(m, 'AssumeRolePolicyDocument') || ''), policies, findings });
          }
          replace(roles, table([
            { key: 'name', label: 'Role' },
            { key: 'trust', label: 'Trusted by', render: (x) => { try { return JSON.stringify(JSON.parse(x.trust).Statement.map((s) => s.Principal)); } catch (_) { return x.trust || '—'; } } },
            { key: 'policies', label: 'Policies', render: (x) => x.policies.map((p) => p.name + ' (' + p.kind + ')').join(', ') || '—' },
            { key: 'findings', label: 'Lint findings', render: (x) => (x.findings.length ? el('ul', { class: 'findings' }, x.findings.map((f) => el('li', { text: f }))) : 'none') },
          ], list, { empty: 'No roles.' }));
        } else {
          replace(roles, el('p', { class: 'muted', text: r.error.message }));
        }
        const a = await optional(signed('cloudtrail', '/kennel/audit?decision=Deny&limit=50', { method: 'GET' }));
        replace(denials, a.ok ? table([
          { key: 'Time', label: 'Time (UTC)', render: (x) => fmtTime(x.Time) },
          { key: 'Principal', label: 'Principal' }, { key: 'Action', label: 'Action' },
          { key: 'Resource', label: 'Resource' }, { key: 'SourceAddress', label: 'From' },
        ], a.value.Events || [], { empty: 'No denials.' }) : el('p', { class: 'muted', text: a.missing ? 'This server keeps no audit log.' : a.error.message }));
      },
    };
  }

  function notFoundPage(what) {
    replace($('view'), [el('h1', { text: 'Not found' }), el('p', { class: 'muted', text: 'The console has no page for ' + what + '.' }),
      el('p', null, el('a', { href: '#/', text: '← Overview' }))]);
    return null;
  }

  /* ------------------------------------------------------------ routing */
  function route() {
    if (!state.creds) {
      showSignIn('');
      return;
    }
    $('nav').hidden = false;
    $('signout').hidden = false;
    $('who').textContent = state.identity || state.creds.accessKeyId;
    const parts = (location.hash.replace(/^#\/?/, '') || '').split('/').map(decodeURIComponent);
    let page;
    if (!parts[0]) page = overviewPage();
    else if (parts[0] === 'endpoint' && parts[1]) page = endpointPage(parts[1]);
    else if (parts[0] === 'function' && parts[1]) page = functionPage(parts[1]);
    else if (parts[0] === 'training' && parts[1]) page = trainingPage(parts[1]);
    else if (parts[0] === 'tuning' && parts[1]) page = tuningPage(parts[1]);
    else if (parts[0] === 'iam') page = iamPage();
    else page = notFoundPage(location.hash);
    if (page) startPage(page);
    else stopPolling();
  }

  async function start() {
    $('signout').addEventListener('click', () => signOut('Signed out.'));
    window.addEventListener('hashchange', route);
    try {
      const h = await publicJson('/kennel/health');
      state.region = h.region || state.region;
      state.account = h.account || '';
      const t = await publicJson('/kennel/instance-types');
      for (const it of t.InstanceTypes || []) state.prices[it.InstanceType] = it.UsdPerHour;
    } catch (e) {
      /* the banner says the server is down; try again shortly */
      setTimeout(start, POLL_MS);
      return;
    }
    state.creds = loadCreds();
    if (state.creds) {
      try {
        state.identity = await whoAmI();
      } catch (e) {
        if (state.creds) signOut(e.message);
        return;
      }
    }
    route();
  }
  if (typeof aws4fetch === 'undefined') {
    document.addEventListener('DOMContentLoaded', () => {
      replace($('view'), el('p', { class: 'error', text: 'This kennel was built without the console\'s signing library (npm was missing at build time): rebuild with npm installed.' }));
    });
  } else {
    start();
  }
})();
