// An operator's session on Gatehouse's certificates page, in headless Chromium through
// Playwright. tests/console.rs starts Gatehouse, runs this script once per phase and
// checks what it prints against the certificates it made.
//
//   node drive.mjs install   log in (a wrong token first), read the table, upload the
//                            renewal, read the dry run, confirm, read the table again,
//                            screenshot the main page
//   node drive.mjs restore   log in, upload the renewal with a key of another certificate
//                            (refused), restore the newest backup, log out
//
// Input, from the environment:
//   CONSOLE_BASE        the admin listener, http://127.0.0.1:PORT
//   CONSOLE_TOKEN       the admin token
//   CONSOLE_CHROMIUM    the Chromium binary
//   CONSOLE_NAME        the certificate to work on
//   CONSOLE_CERT, CONSOLE_KEY, CONSOLE_CHAIN   the renewal's files
//   CONSOLE_WRONG_KEY   a key that does not belong to CONSOLE_CERT (restore phase)
//   CONSOLE_SCREENSHOT  where to write the main page's screenshot (install phase)
//
// Output: one JSON object per line on stdout, `{"step": …}`, the last `{"step": "done"}`.
// Structural expectations (a page, a form, a redirect, a status) are checked here: an
// unmet one prints `{"step": "failed", "error": …}`, the page's text on stderr, and exits
// 1. What the serials must be is checked by the Rust test, which knows them.

import { chromium, request } from 'playwright-core';

/// Bound on each wait for a page, element or response.
const STEP_TIMEOUT = 10_000;
/// Bound on the whole run (tests/console.rs kills the script later than this).
const RUN_TIMEOUT = 90_000;

const SESSION_COOKIE = 'gatehouse_session';
const CSP = "default-src 'self'";

class Unmet extends Error {}

function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

/// Fails the run with `rule` (what the page must do) and what was seen instead.
function expect(condition, rule, seen) {
  if (!condition) {
    throw new Unmet(seen === undefined ? rule : `${rule} (seen: ${seen})`);
  }
}

function input(name) {
  const value = process.env[name];
  if (!value) {
    throw new Unmet(`${name} is not set; tests/console.rs sets it`);
  }
  return value;
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

/// The first element matching `selector` on the loaded page; the page has no script, so
/// what the server sent is all there will be.
async function one(page, selector, rule) {
  const found = page.locator(selector);
  const count = await found.count();
  expect(count > 0, `${rule}: no ${selector} on ${pathOf(page)}`);
  return found.first();
}

async function textOf(page, selector, rule) {
  const element = await one(page, selector, rule);
  return ((await element.textContent()) ?? '').trim();
}

/// Opens `path`; the response of the request the browser ended on, and the status of the
/// first one when it was redirected.
async function open(page, base, path) {
  const response = await page.goto(base + path, { waitUntil: 'load' });
  expect(response !== null, `GET ${path} answers`);
  return { response, redirect: await redirectStatus(response) };
}

async function redirectStatus(response) {
  const from = response.request().redirectedFrom();
  if (from === null) {
    return null;
  }
  const first = await from.response();
  return first === null ? null : first.status();
}

/// Submits `form` with its submit button as a person would: the status of the POST (a
/// redirect's own status, not its target's), the path the browser then shows, and the
/// response it shows.
async function submit(page, form) {
  const button = await one(page, `${form} button[type=submit]`, `${form} has a submit button`);
  const posted = page.waitForRequest((r) => r.method() === 'POST' && r.isNavigationRequest());
  const loaded = page.waitForEvent('load');
  await button.click();
  const request = await posted;
  await loaded;
  const response = await request.response();
  expect(response !== null, `POST ${new URL(request.url()).pathname} answers`);
  let last = request;
  while (last.redirectedTo() !== null) {
    last = last.redirectedTo();
  }
  const shown = await last.response();
  expect(shown !== null, `${last.method()} ${new URL(last.url()).pathname} answers`);
  return { status: response.status(), path: pathOf(page), response: shown };
}

/// Checks the parts of the certificates page every visit relies on; the row of `name`.
async function readMainPage(page, response, name, stylesheets, base) {
  expect(pathOf(page) === '/', 'the certificates page is at /', page.url());
  expect(response.status() === 200, 'GET / with a session answers 200', response.status());
  const csp = response.headers()['content-security-policy'] ?? '';
  expect(csp.includes(CSP), `the page is served with Content-Security-Policy: ${CSP}`, csp);
  expect(
    (await textOf(page, 'h1', 'the page has a title')) === 'Certificates',
    'the page title is "Certificates"',
  );
  expect(
    (await page.locator('script').count()) === 0,
    'the certificates page carries no JavaScript',
  );
  await one(
    page,
    'link[rel=stylesheet][href="/console/console.css"]',
    'the page takes its style from /console/console.css',
  );
  expect(
    stylesheets.has(`${base}/console/console.css`),
    'the page loads its style from /console/console.css (and it answers 200)',
    JSON.stringify([...stylesheets]),
  );
  const row = `#certificates tr[data-certificate="${name}"]`;
  await one(page, row, `the table lists certificate "${name}"`);
  const cells = {};
  for (const cell of ['names', 'issuer', 'serial', 'not-after', 'chain', 'warnings', 'used-by']) {
    cells[cell] = await textOf(page, `${row} .${cell}`, `the row of "${name}" has a ${cell} cell`);
  }
  const link = await one(page, `${row} .name a`, `the name in the row of "${name}" is a link`);
  const href = await link.getAttribute('href');
  expect(href === `/certificate/${name}`, `the name links to /certificate/${name}`, href);
  const notAfterCell = await one(page, `${row} .not-after`, 'the row has a not-after cell');
  const notAfter = (await notAfterCell.getAttribute('class')) ?? '';
  const days = notAfter.split(/\s+/).find((c) => c.startsWith('days-')) ?? '';
  expect(
    ['days-ok', 'days-warn', 'days-bad'].includes(days),
    'the not-after cell is classed days-ok, days-warn or days-bad',
    notAfter,
  );
  await one(page, '#last-reload', 'the page has the last reload section');
  await one(
    page,
    'form#reload[method=post][action="/console/reload"] button[type=submit]',
    'the page has the reload button',
  );
  await one(
    page,
    'form#logout[method=post][action="/logout"] button[type=submit]',
    'the page has the log out button',
  );
  return { ...cells, days };
}

/// Logs in with `token` from a fresh context: GET / sends the browser to the login page.
async function logIn(page, base, token) {
  const { response, redirect } = await open(page, base, '/');
  expect(
    redirect === 303 && pathOf(page) === '/login',
    'without a session, GET / answers 303 to /login',
    `${redirect} to ${pathOf(page)}`,
  );
  const csp = response.headers()['content-security-policy'] ?? '';
  expect(csp.includes(CSP), `the login page is served with Content-Security-Policy: ${CSP}`, csp);
  const field = await one(
    page,
    'form#login[method=post][action="/login"] input[type=password][name=token]',
    'the login form asks for the token',
  );
  await field.fill(token);
  const sent = await submit(page, 'form#login');
  expect(
    sent.status === 303 && sent.path === '/',
    'the right token answers 303 to /',
    `${sent.status} to ${sent.path}`,
  );
  const cookie = (await page.context().cookies()).find((c) => c.name === SESSION_COOKIE);
  expect(cookie !== undefined, `logging in sets the ${SESSION_COOKIE} cookie`);
  expect(cookie.httpOnly, `the ${SESSION_COOKIE} cookie is HttpOnly`);
  expect(
    cookie.sameSite === 'Strict',
    `the ${SESSION_COOKIE} cookie is SameSite=Strict`,
    cookie.sameSite,
  );
  emit({ step: 'logged-in' });
  return cookie;
}

/// Opens the certificate's page and submits `files` (input name → path) to its replace
/// form; the dry-run page answers.
async function upload(page, base, name, files) {
  const { response } = await open(page, base, `/certificate/${name}`);
  expect(response.status() === 200, `GET /certificate/${name} answers 200`, response.status());
  const form =
    `form#replace[method=post][action="/console/replace/${name}"]` +
    '[enctype="multipart/form-data"]';
  await one(page, form, 'the certificate page has the replace form');
  for (const input of ['cert', 'key', 'chain', 'pkcs12']) {
    await one(
      page,
      `${form} input[type=file][name=${input}]`,
      `the replace form has a ${input} file input`,
    );
  }
  await one(
    page,
    `${form} input[type=password][name=password]`,
    'the replace form has a password input',
  );
  const button = await textOf(
    page,
    `${form} button[type=submit]`,
    'the replace form has a submit button',
  );
  expect(button === 'Check (dry run)', 'the replace button says "Check (dry run)"', button);
  for (const [input, path] of Object.entries(files)) {
    await page.locator(`${form} input[name=${input}]`).setInputFiles(path);
  }
  const sent = await submit(page, 'form#replace');
  expect(
    sent.path === `/console/replace/${name}`,
    'an upload answers with a page of its own (the dry run or the refusal)',
    sent.path,
  );
  return sent;
}

/// The main page after a redirect from a confirmed action: its flash and the row.
async function afterAction(page, base, name, sent, action, stylesheets) {
  expect(
    sent.status === 303 && sent.path === '/',
    `${action} answers 303 to /`,
    `${sent.status} to ${sent.path}`,
  );
  const flash = await textOf(
    page,
    '#flash pre',
    `after ${action} the page shows its output in #flash`,
  );
  const row = await readMainPage(page, sent.response, name, stylesheets, base);
  return { flash, row };
}

async function install(page, base, name, stylesheets) {
  const token = input('CONSOLE_TOKEN');
  // A wrong token first: the login page again, saying so.
  await open(page, base, '/login');
  await (await one(page, 'form#login input[name=token]', 'the login form asks for the token')).fill(
    `not-${token}`,
  );
  const wrong = await submit(page, 'form#login');
  expect(wrong.status === 401, 'a wrong token answers 401', wrong.status);
  const error = await textOf(page, 'p.error', 'a wrong token shows an error');
  expect(error.includes('wrong token'), 'the error says "wrong token"', error);
  expect(
    (await page.context().cookies()).every((c) => c.name !== SESSION_COOKIE),
    'a wrong token sets no session cookie',
  );
  emit({ step: 'login-refused', status: wrong.status, error });

  await logIn(page, base, token);
  const { response } = await open(page, base, '/');
  const before = await readMainPage(page, response, name, stylesheets, base);
  emit({ step: 'listed', serial: before.serial, days: before.days });

  const link = await one(page, `tr[data-certificate="${name}"] .name a`, 'the name is a link');
  await link.click();
  await page.waitForURL(`**/certificate/${name}`, { timeout: STEP_TIMEOUT });
  await one(page, '#backups', 'the certificate page lists its backups');
  await one(
    page,
    `form#csr[method=post][action="/console/csr/${name}"]`,
    'the certificate page has the CSR form',
  );

  const checked = await upload(page, base, name, {
    cert: input('CONSOLE_CERT'),
    key: input('CONSOLE_KEY'),
    chain: input('CONSOLE_CHAIN'),
  });
  expect(
    checked.status === 200,
    'an acceptable upload answers 200 with the dry run',
    checked.status,
  );
  expect(
    (await page.locator('#refused').count()) === 0,
    'the renewal with its own key and chain is not refused',
    await page.locator('body').innerText(),
  );
  const dryRun = await textOf(page, 'pre#dry-run', 'an acceptable upload shows the dry run');
  const button = await textOf(
    page,
    'form#confirm[method=post][action="/console/install"] button[type=submit]',
    'an acceptable upload can be confirmed',
  );
  expect(button === 'Install', 'the confirm button says "Install"', button);
  emit({ step: 'dry-run', text: dryRun });

  const sent = await submit(page, 'form#confirm');
  const { flash, row } = await afterAction(page, base, name, sent, 'the install', stylesheets);
  expect(flash.includes(`installed "${name}"`), `the flash says installed "${name}"`, flash);
  emit({ step: 'installed', serial: row.serial, flash });

  // The page as an operator sees it after an install (docs/console.png is this picture).
  const screenshot = input('CONSOLE_SCREENSHOT');
  await page.screenshot({ path: screenshot, fullPage: true });
  emit({ step: 'screenshot', path: screenshot });
}

async function restore(page, base, name, stylesheets) {
  const cookie = await logIn(page, base, input('CONSOLE_TOKEN'));
  const { response } = await open(page, base, '/');
  const before = await readMainPage(page, response, name, stylesheets, base);
  emit({ step: 'listed', serial: before.serial });

  // The renewal with a key that is not its own: refused, nothing to confirm.
  const refusedUpload = await upload(page, base, name, {
    cert: input('CONSOLE_CERT'),
    key: input('CONSOLE_WRONG_KEY'),
    chain: input('CONSOLE_CHAIN'),
  });
  // How a refusal answers is the server's choice (200, or a 4xx such as 422), but never
  // as an error of its own.
  expect(
    refusedUpload.status === 200 || (refusedUpload.status >= 400 && refusedUpload.status < 500),
    'a refused upload answers with the refusal page (200 or 4xx), not a server error',
    refusedUpload.status,
  );
  const refused = await textOf(
    page,
    'p.error#refused',
    'a certificate with a key not its own is refused',
  );
  const message = await textOf(page, 'pre', 'the refusal shows its message');
  const refusal = `${refused}\n${message}`;
  expect(
    (await page.locator('#confirm').count()) === 0,
    'a refused upload offers no confirm form',
  );
  expect(
    (await page.locator('#dry-run').count()) === 0,
    'a refused upload shows no dry run to confirm',
  );
  emit({ step: 'refused', text: refusal });
  const afterRefusal = await open(page, base, '/');
  const unchanged = await readMainPage(page, afterRefusal.response, name, stylesheets, base);
  emit({ step: 'after-refusal', serial: unchanged.serial });

  // The newest backup holds the files the install replaced.
  await open(page, base, `/certificate/${name}`);
  const newest = await one(page, '#backups tr[data-backup]', 'the install left a backup');
  const backup = await newest.getAttribute('data-backup');
  const button = await textOf(
    page,
    `#backups tr[data-backup="${backup}"] form.restore[method=post] button[type=submit]`,
    'each backup has a restore button',
  );
  expect(button === 'Restore', 'the restore button says "Restore"', button);
  const sent = await submit(page, `#backups tr[data-backup="${backup}"] form.restore`);
  const { flash, row } = await afterAction(page, base, name, sent, 'the restore', stylesheets);
  expect(
    flash.includes(`restored "${name}" from backup ${backup}`),
    `the flash says restored "${name}" from backup ${backup}`,
    flash,
  );
  emit({ step: 'restored', serial: row.serial, backup, flash });

  // Logging out ends the session: the browser lands on the login page, GET / sends it
  // there again, and so does the old cookie sent by anyone else.
  const out = await submit(page, 'form#logout');
  expect(
    out.status === 303 && out.path === '/login',
    'logging out answers 303 to /login',
    `${out.status} to ${out.path}`,
  );
  const again = await open(page, base, '/');
  expect(
    again.redirect === 303 && pathOf(page) === '/login',
    'after logging out, GET / answers 303 to /login',
    `${again.redirect} to ${pathOf(page)}`,
  );
  const outsider = await request.newContext({ timeout: STEP_TIMEOUT });
  try {
    const replay = await outsider.get(`${base}/`, {
      headers: { cookie: `${SESSION_COOKIE}=${cookie.value}` },
      maxRedirects: 0,
    });
    expect(
      replay.status() === 303 && replay.headers().location?.endsWith('/login'),
      'a session ends at log out on the server: its cookie no longer opens the page',
      `${replay.status()} location ${replay.headers().location}`,
    );
  } finally {
    await outsider.dispose();
  }
  emit({ step: 'logged-out' });
}

async function main() {
  const phase = process.argv[2];
  const phases = { install, restore };
  if (!(phase in phases)) {
    throw new Unmet(`usage: node drive.mjs install|restore (not ${phase})`);
  }
  const base = input('CONSOLE_BASE').replace(/\/$/, '');
  const name = input('CONSOLE_NAME');
  const browser = await chromium.launch({
    executablePath: input('CONSOLE_CHROMIUM'),
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.setDefaultNavigationTimeout(STEP_TIMEOUT);
    // The stylesheets that loaded, and what the browser refused under the page's own
    // Content-Security-Policy (an inline style or script the policy blocks).
    const stylesheets = new Set();
    const violations = new Set();
    page.on('response', (r) => {
      if (r.request().resourceType() === 'stylesheet' && r.status() === 200) {
        stylesheets.add(r.url());
      }
    });
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) {
        violations.add(m.text());
      }
    });
    await phases[phase](page, base, name, stylesheets);
    expect(
      violations.size === 0,
      "the pages need nothing their Content-Security-Policy (default-src 'self') blocks",
      [...violations].join(' | '),
    );
    emit({ step: 'done', phase });
  } catch (e) {
    if (page !== undefined) {
      const body = await page
        .locator('body')
        .innerText({ timeout: 1_000 })
        .catch(() => '(no page)');
      process.stderr.write(`page ${page.url()}:\n${body.slice(0, 4000)}\n`);
    }
    throw e;
  } finally {
    await browser.close();
  }
}

const watchdog = setTimeout(() => {
  emit({ step: 'failed', error: `the run took longer than ${RUN_TIMEOUT} ms` });
  process.exit(1);
}, RUN_TIMEOUT);
watchdog.unref();

try {
  await main();
} catch (e) {
  emit({ step: 'failed', error: e instanceof Unmet ? e.message : String(e?.stack ?? e) });
  process.exitCode = 1;
}
