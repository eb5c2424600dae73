// The console's end-to-end checks in headless Chromium (driven by
// test_console_heavy.sh, which starts the server and deploys the endpoints).
// Env: KN_URL, KN_SERVER_PID, KN_JPEG, KN_ARTIFACTS, KN_CHROMIUM,
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (the administrator's key).
'use strict';
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');
const { AwsClient } = require('aws4fetch');

const URL_ = process.env.KN_URL;
const AKID = process.env.AWS_ACCESS_KEY_ID;
const SECRET = process.env.AWS_SECRET_ACCESS_KEY;
const ART = process.env.KN_ARTIFACTS;
let failures = 0;
let checks = 0;
function check(name, ok, detail) {
  checks++;
  if (ok) {
    console.log('ok   ' + name);
  } else {
    failures++;
    console.log('FAIL ' + name + (detail ? ': ' + detail : ''));
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, ms) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error('timed out waiting for ' + what + (last instanceof Error ? ' (' + last.message + ')' : ''));
}

// Load through the router: `workers` loops invoking the endpoint until stop().
function load(endpoint, workers) {
  const client = new AwsClient({ accessKeyId: AKID, secretAccessKey: SECRET, service: 'sagemaker', region: 'us-east-1', retries: 0 });
  const jpeg = fs.readFileSync(process.env.KN_JPEG);
  let running = true;
  let sent = 0;
  const loops = [];
  for (let i = 0; i < workers; i++) {
    loops.push((async () => {
      while (running) {
        try {
          const r = await client.fetch(URL_ + '/endpoints/' + endpoint + '/invocations', {
            method: 'POST', body: jpeg, headers: { 'Content-Type': 'image/jpeg', Accept: 'application/json' },
          });
          await r.arrayBuffer();
          sent++;
        } catch (_) {
          await sleep(50);
        }
      }
    })());
  }
  return { stop: async () => { running = false; await Promise.all(loops); return sent; } };
}

async function signIn(page, akid, secret) {
  await page.goto(URL_ + '/console/');
  await page.waitForSelector('#signin');
  await page.fill('#akid', akid);
  await page.fill('#secret', secret);
  await page.click('#signin button[type=submit]');
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ART, name + '.png'), fullPage: true });
}

async function noHorizontalOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.KN_CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const pageErrors = [];
  try {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));

    // 1. the sign-in page, and a wrong key, when the server checks signatures
    const probe = await fetch(URL_ + '/', { method: 'POST', headers: { 'X-Amz-Target': 'SageMaker.ListEndpoints', 'Content-Type': 'application/x-amz-json-1.1' }, body: '{}' });
    const verifies = probe.status === 400 || probe.status === 403;
    await page.goto(URL_ + '/console/');
    await page.waitForSelector('#signin');
    check('the console opens on the sign-in page', await page.isVisible('#akid'));
    await shot(page, 'signin');
    if (verifies) {
      await signIn(page, AKID, SECRET.slice(0, -1) + (SECRET.endsWith('x') ? 'y' : 'x'));
      const msg = await until('the sign-in error', async () => (await page.textContent('#signin-error')).trim(), 15000);
      check('a wrong secret keeps the sign-in page and says why', /Signature|signature/.test(msg) && await page.isVisible('#signin'), msg);
    } else {
      console.log('note: this server accepts unsigned requests (no authentication yet): the wrong-key check needs it');
    }

    // 2. sign in; the overview lists the endpoints
    await signIn(page, AKID, SECRET);
    await page.waitForSelector('#endpoints table');
    await until('both endpoints on the overview', async () => {
      const t = await page.textContent('#endpoints');
      return t.includes('dogs') && t.includes('cats') && t.includes('InService');
    }, 20000);
    check('the overview lists the deployed endpoints', true);
    const cost = await page.textContent('#card-cost');
    check('the overview shows a running cost', /\$\d+\.\d\d/.test(cost), cost);
    check('the overview fits 1280x800', await noHorizontalOverflow(page));
    await shot(page, 'overview');

    // 3. the endpoint page; a load burst steps the instance count up, with
    // the scaling activity marked on the chart
    await page.click('#endpoints a:text("dogs")');
    await page.waitForSelector('#chart-instances .uplot');
    // (no per-minute point exists before the first invocation: the variant
    // table gives the count)
    const before = await until('the variants table', async () => page.evaluate(() => {
      const cells = [...document.querySelectorAll('#variants tbody td')].map((td) => td.textContent);
      return cells.length >= 2 ? Number(cells[1]) : null;
    }), 15000).catch((e) => String(e));
    check('the endpoint starts with one instance', before === 1, String(before));
    const burst = load('dogs', 3);
    let stepped;
    try {
      stepped = await until('the instance chart to step up with a marked activity', async () => page.evaluate(() => {
        const u = window.kennelConsole.charts.instances;
        if (!u) return null;
        const counts = u.data[1].filter((v) => v != null);
        const marks = u.data[2].map((v, i) => (v != null ? { x: u.data[0][i], y: v } : null)).filter(Boolean);
        const max = Math.max(0, ...counts);
        return max >= 2 && marks.length >= 1 ? { max, marks, counts } : null;
      }), 90000);
    } finally {
      const sent = await burst.stop();
      console.log('load: ' + sent + ' invocations');
    }
    check('the instance-count chart steps up under load', stepped && stepped.max >= 2 && stepped.max <= 3, JSON.stringify(stepped && stepped.counts));
    check('the scaling activity is marked at the count it set', stepped && stepped.marks.some((m) => m.y >= 2), JSON.stringify(stepped && stepped.marks));
    const actText = await page.textContent('#activities');
    check('the activities table lists the scale-out', /desired instance count to [23]/i.test(actText) || /to [23]/.test(actText), actText.slice(0, 200));
    const liveBefore = await page.evaluate(() => window.kennelConsole.charts.invocations.data[0].length);
    await sleep(4500);
    const liveAfter = await page.evaluate(() => window.kennelConsole.charts.invocations.data[0].length);
    check('charts update without a reload', liveAfter > liveBefore, liveBefore + ' -> ' + liveAfter);
    const target = await page.evaluate(() => window.kennelConsole.charts.invocations.data[2].find((v) => v != null));
    check('the invocations chart shows the policy target', target === 5, String(target));
    const lat = await page.evaluate(() => {
      const d = window.kennelConsole.charts.latency.data;
      return d[1].map((p50, i) => [p50, d[2][i]]).filter((x) => x[0] != null);
    });
    check('latency p50 and p99 per minute, p50 <= p99', lat.length > 0 && lat.every(([a, b]) => a > 0 && a <= b), JSON.stringify(lat.slice(0, 5)));
    await shot(page, 'endpoint');

    // 4. markup in server data stays text: the failed endpoint's reason
    // names a folder called <img src=x onerror=...>
    await page.goto(URL_ + '/console/#/endpoint/broken');
    const reason = await until('the FailureReason of endpoint broken', async () => {
      const t = await page.textContent('#endpoint-head');
      return /Failed/.test(t) && /FailureReason/.test(t) ? t : null;
    }, 30000).catch((e) => String(e));
    check('the failure reason shows the markup as text', reason.includes('<img src=x onerror=window.__xss=1>'), reason);
    const injected = await page.evaluate(() => ({ imgs: document.querySelectorAll('main img').length, xss: window.__xss }));
    check('markup in a resource is rendered inert', injected.imgs === 0 && injected.xss === undefined, JSON.stringify(injected));
    await shot(page, 'endpoint-failed');

    // 5. the tuning job's page: trials sortable by objective; a trial's page
    if (process.env.KN_TUNING) {
      const tj = process.env.KN_TUNING;
      await page.goto(URL_ + '/console/#/tuning/' + tj);
      await until('four finished trials', async () => {
        const t = await page.textContent('#tuning-head');
        return /Completed/.test(t) && (await page.$$('table.trials tbody tr')).length === 4;
      }, 90000);
      const objectives = async () => page.$$eval('table.trials tbody tr', (rows) => {
        const head = [...document.querySelectorAll('table.trials th')].map((th) => th.textContent);
        const col = head.findIndex((h) => h.startsWith('Objective'));
        return rows.map((r) => Number(r.children[col].textContent));
      });
      const asc = await objectives();
      check('trials are listed best first (Minimize)', asc.every((v, i) => i === 0 || asc[i - 1] <= v), JSON.stringify(asc));
      await page.click('table.trials th[data-key=objective]');
      const desc = await objectives();
      check('a click on Objective sorts the other way', desc.every((v, i) => i === 0 || desc[i - 1] >= v) && desc[0] > desc[desc.length - 1], JSON.stringify(desc));
      await page.click('table.trials th[data-key=objective]');
      const again = await objectives();
      check('and back', JSON.stringify(again) === JSON.stringify(asc), JSON.stringify(again));
      const best = await page.textContent('#best');
      const first = await page.$eval('table.trials tbody tr a', (a) => a.textContent);
      check('the best training job is the first trial', best.includes(first), best);
      const hpCharts = await page.evaluate(() => Object.keys(window.kennelConsole.charts).filter((k) => k.startsWith('hp-')));
      check('objective against each hyperparameter', hpCharts.includes('hp-learning_rate') && hpCharts.includes('hp-batch_size'), JSON.stringify(hpCharts));
      await shot(page, 'tuning');
      await page.click('table.trials tbody tr a');
      await page.waitForSelector('#job-name');
      const curves = await until('the loss curves', async () => page.evaluate(() => {
        const u = window.kennelConsole.charts.loss;
        return u && u.series.length >= 3 ? u.series.map((x) => x.label).slice(1) : null;
      }), 20000).catch((e) => String(e));
      check('the training job page draws its loss curves', Array.isArray(curves) && curves.includes('Valid Loss') && curves.includes('Test Loss'), JSON.stringify(curves));
      const tl = await page.textContent('#timeline');
      check('the training job page shows the status timeline', /Completed/.test(tl) && /Training/.test(tl), tl.slice(0, 200));
      const logTail = await until('the log tail', async () => {
        const t = await page.textContent('#log');
        return /Testing Loss: /.test(t) ? t : null;
      }, 15000).catch((e) => String(e));
      check('the training job page shows the log tail', /Testing Loss: /.test(logTail), logTail.slice(-200));
      await shot(page, 'training-job');

      // a read-only user sees the tuning job but cannot deploy its best
      const viewer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const vp = await viewer.newPage();
      vp.on('pageerror', (e) => pageErrors.push(String(e)));
      await signIn(vp, process.env.KN_VIEWER_KEY, process.env.KN_VIEWER_SECRET);
      await vp.waitForSelector('#endpoints table');
      await vp.goto(URL_ + '/console/#/tuning/' + tj);
      await until('the viewer\'s trials table', async () => (await vp.$$('table.trials tbody tr')).length === 4, 20000);
      await vp.fill('#deploy-name', 'viewer-ep');
      await vp.click('#deploy-best');
      const denied = await until('the deploy answer', async () => (await vp.textContent('#deploy-result')).trim(), 20000).catch((e) => String(e));
      check('a read-only user cannot deploy the best job', /AccessDenied/.test(denied) && /not authorized to perform: sagemaker:CreateModel/.test(denied), denied);
      await shot(vp, 'tuning-read-only');
      await viewer.close();
      const admin = new AwsClient({ accessKeyId: AKID, secretAccessKey: SECRET, service: 'sagemaker', region: 'us-east-1', retries: 0 });
      const m = await admin.fetch(URL_ + '/', { method: 'POST', headers: { 'X-Amz-Target': 'SageMaker.DescribeModel', 'Content-Type': 'application/x-amz-json-1.1' }, body: JSON.stringify({ ModelName: 'viewer-ep' }) });
      check('and nothing was created', m.status === 400, String(m.status));

      // the IAM page: users, the role with its lint finding, the denial
      await page.goto(URL_ + '/console/#/iam');
      const iamText = await until('the IAM page', async () => {
        const t = await page.textContent('main');
        return /dog-fn-role/.test(t) && /viewer/.test(t) && /sagemaker:CreateModel/.test(t) ? t : null;
      }, 20000).catch((e) => String(e));
      check('the IAM page lists users and roles', /viewer/.test(iamText) && /dog-fn-role/.test(iamText) && /too-broad \(inline\)/.test(iamText), iamText.slice(0, 300));
      check('the IAM page flags the role\'s sagemaker:* policy', /allows all \d+ sagemaker actions/.test(iamText), iamText.slice(0, 300));
      check('the IAM page shows the recent denial', /viewer/.test(await page.textContent('#denials')) && /sagemaker:CreateModel/.test(await page.textContent('#denials')), await page.textContent('#denials'));
      await shot(page, 'iam');
    }

    // 6. the function page: an over-limit burst shows as throttles
    if (process.env.KN_FUNCTION) {
      const fn = process.env.KN_FUNCTION;
      const lambda = new AwsClient({ accessKeyId: AKID, secretAccessKey: SECRET, service: 'lambda', region: 'us-east-1', retries: 0 });
      const one = async () => {
        const r = await lambda.fetch(URL_ + '/2015-03-31/functions/' + fn + ':live/invocations', { method: 'POST', body: JSON.stringify({ sleep_ms: 1500 }) });
        await r.text();
        return r.status;
      };
      const statuses = await Promise.all([1, 2, 3, 4, 5, 6].map(one));
      const throttled = statuses.filter((x) => x === 429).length;
      check('the burst over reserved concurrency 2 is throttled', throttled >= 3 && statuses.filter((x) => x === 200).length >= 1, JSON.stringify(statuses));
      await page.goto(URL_ + '/console/#/function/' + fn);
      const shown = await until('the throttles on the function page', async () => {
        const v = await page.getAttribute('#chart-fn-invocations', 'data-throttles');
        return v && Number(v) > 0 ? Number(v) : null;
      }, 30000).catch((e) => String(e));
      check('the function page shows the throttles', shown === throttled, shown + ' vs ' + throttled);
      const conf = await page.textContent('#function-config');
      check('the function page shows reserved concurrency and cold starts', /Reserved concurrency\s*2/.test(conf) && /Cold starts in the log\s*\d+ of \d+/.test(conf), conf.slice(0, 300));
      const prov = await page.textContent('#provisioned');
      check('and the provisioned configuration on live', /live/.test(prov) && /READY/.test(prov), prov);
      check('versions and aliases', /live/.test(await page.textContent('#aliases')) && /1/.test(await page.textContent('#versions')));
      const injected2 = await page.evaluate(() => ({ imgs: document.querySelectorAll('main img, main b').length, xss: window.__xss }));
      check('markup in a resource tag and description is shown as text and runs nothing',
        conf.includes('<img src=x onerror=window.__xss=2>') && conf.includes('<b onmouseover=alert(1)>slow</b>') &&
        injected2.imgs === 0 && injected2.xss === undefined, JSON.stringify(injected2) + ' ' + conf.slice(0, 400));
      const logs = await page.textContent('#log');
      check('and recent log lines', /REPORT RequestId/.test(logs), logs.slice(-300));
      await shot(page, 'function');
    }

    // 7. a phone-sized viewport
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const p2 = await phone.newPage();
    await signIn(p2, AKID, SECRET);
    await p2.waitForSelector('#endpoints table');
    check('the overview fits a phone-sized viewport', await noHorizontalOverflow(p2));
    await shot(p2, 'overview-phone');
    await p2.goto(URL_ + '/console/#/endpoint/dogs');
    await p2.waitForSelector('#chart-instances .uplot');
    check('the endpoint page fits a phone-sized viewport', await noHorizontalOverflow(p2));
    await shot(p2, 'endpoint-phone');
    const more = [['iam', '#users table']];
    if (process.env.KN_TUNING) more.push(['tuning/' + process.env.KN_TUNING, 'table.trials']);
    if (process.env.KN_FUNCTION) more.push(['function/' + process.env.KN_FUNCTION, '#function-config table']);
    for (const [route, sel] of more) {
      await p2.goto(URL_ + '/console/#/' + route);
      await p2.waitForSelector(sel, { timeout: 20000 }).catch(() => {});
      await sleep(500);
      check('the ' + route.split('/')[0] + ' page fits a phone-sized viewport', await noHorizontalOverflow(p2));
      await shot(p2, route.split('/')[0] + '-phone');
    }
    await phone.close();

    // 8. the server stops answering: a banner, and the page keeps its data
    await page.goto(URL_ + '/console/#/endpoint/dogs');
    await until('the dogs charts', async () => page.evaluate(() => {
      const u = window.kennelConsole.charts.instances;
      return u && u.data[0].length > 0;
    }), 15000);
    // (the page stays where it is: its next poll finds the server gone)
    process.kill(Number(process.env.KN_SERVER_PID), 'SIGKILL');
    const banner = await until('the server-down banner', async () => {
      const b = await page.$('#banner[data-state=down]');
      return b && await b.isVisible() ? b.textContent() : null;
    }, 15000).catch((e) => String(e));
    check('a server that stops answering shows a banner', /not answering/.test(banner), banner);
    const kept = await page.evaluate(() => window.kennelConsole.charts.instances.data[0].length);
    check('the page keeps its last data', kept > 0 && await page.isVisible('#endpoint-name'), String(kept));
    await shot(page, 'server-down');
  } catch (e) {
    failures++;
    console.log('FAIL ' + (e && e.stack || e));
  } finally {
    await browser.close();
  }
  check('no script error in the pages', pageErrors.length === 0, pageErrors.join(' | '));
  console.log(checks + ' checks, ' + failures + ' failed');
  process.exit(failures ? 1 : 0);
})();
