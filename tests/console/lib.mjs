// The harness of the console suite (tests/console/flow.mjs): the browser, numbered steps with
// a screenshot each, the console's DOM contract as small helpers, and the `iamlet` CLI (the
// sidecar's decisions, the admin API) to check what the browser did.
//
// Everything comes from the environment that tests/console/run.sh sets; nothing is defaulted,
// so a run outside the script fails at once rather than against the wrong server.

import { execFile } from 'node:child_process';
import { appendFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run tests/console/run.sh)`);
  return value;
}

export const CONSOLE = env('CONSOLE_URL');
export const SHOTS = env('CONSOLE_SCREENSHOTS');
export const WORK = env('CONSOLE_WORK');
export const ACCOUNT = env('CONSOLE_ACCOUNT');
export const ADMIN_USER = env('CONSOLE_ADMIN_USER');
export const PASSWORD_FILE = env('CONSOLE_PASSWORD_FILE');
const CHROMIUM = env('CONSOLE_CHROMIUM');
const NODE_MODULES = env('CONSOLE_NODE_MODULES');
const BIN = env('IAMLET_BIN');
const SIDECAR = env('IAMLET_SIDECAR');

const browserLog = join(WORK, 'browser.log');
const run = promisify(execFile);

// playwright-core lives in the suite's own prefix (npm ci into target/console-node), not
// beside this file.
const require = createRequire(join(dirname(NODE_MODULES), 'package.json'));
const { chromium } = require('playwright-core');

/** Debian's Chromium, headless, with nothing that reaches the network on its own. */
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Playwright gives each launch a fresh temporary user-data-dir and removes it on close.
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
    timeout: 60_000,
  });
}

/** Failures a page reports outside any step's own checks: a dialog is an XSS that ran. */
const dialogs = [];
/** Each page's last main-frame document response (after redirects: the page shown). */
const lastDocument = new WeakMap();

/** A browser context of its own (one cookie jar: one signed-in user) and its page. */
export async function newPage(browser, who) {
  const context = await browser.newContext({
    acceptDownloads: true,
    viewport: { width: 1280, height: 900 },
  });
  const page = await context.newPage();
  // A debug build on a shared machine: generous, but every wait is still bounded.
  page.setDefaultTimeout(20_000);
  page.setDefaultNavigationTimeout(30_000);
  page.on('dialog', async (dialog) => {
    dialogs.push(`${who}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('response', (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) lastDocument.set(page, r);
  });
  page.on('console', (m) => appendFileSync(browserLog, `${who} console.${m.type()}: ${m.text()}\n`));
  page.on('pageerror', (e) => appendFileSync(browserLog, `${who} pageerror: ${e.message}\n`));
  return page;
}

let stepNo = 0;
let current = null;

/** The page the next screenshot is taken of. */
export function showing(page) {
  current = page;
}

/**
 * One numbered step: runs `fn`, then saves `NN-name.png` of the current page and prints one
 * line. On failure it saves `NN-name-FAILED.png` and the page's HTML beside the logs, prints
 * why, and rethrows (the flow stops at the first failure).
 */
export async function step(name, fn) {
  stepNo += 1;
  const nn = String(stepNo).padStart(2, '0');
  const started = Date.now();
  let detail;
  try {
    detail = await fn();
    if (dialogs.length) throw new Error(dialogs.join('; '));
  } catch (err) {
    if (current) {
      const shot = join(SHOTS, `${nn}-${name}-FAILED.png`);
      await current.screenshot({ path: shot, fullPage: true }).catch(() => {});
      const html = await current.content().catch(() => '');
      writeFileSync(join(WORK, `${nn}-${name}.html`), html);
      console.error(`[${nn}] ${name}: FAILED at ${current.url()}\n     ${err.message}\n     screenshot ${shot}`);
    } else {
      console.error(`[${nn}] ${name}: FAILED\n     ${err.message}`);
    }
    throw err;
  }
  if (current) await current.screenshot({ path: join(SHOTS, `${nn}-${name}.png`), fullPage: true });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`[${nn}] ${name}: ok (${secs} s)${detail ? ` — ${detail}` : ''}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Loads a console path (relative to /console) and returns the response. */
export async function open(page, path) {
  const response = await page.goto(`${CONSOLE}${path}`);
  check(response, `no response for ${path}`);
  check(response.status() < 400, `${path} answered HTTP ${response.status()}`);
  await noAlert(page);
  return response;
}

/** Fails when the page now shown came with an HTTP error (a refused form, a missing page). */
async function landed(page, what) {
  await page.waitForLoadState('load');
  const response = lastDocument.get(page);
  if (response && response.status() >= 400) {
    const type = response.headers()['content-type'] ?? '';
    // A page sent as something other than HTML shows its markup as text: the words only.
    const text = (await page.locator('body').innerText().catch(() => ''))
      .replace(/<(head|title)[^>]*>[\s\S]*?<\/\1>/g, ' ').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
    throw new Error(`${what} led to HTTP ${response.status()} (${type}) at ${page.url()}: ${text}`);
  }
}

/** Clicks a submit button and waits for the page it leads to. */
export async function submit(page, button) {
  await Promise.all([
    page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() }),
    page.getByRole('button', { name: button, exact: true }).click(),
  ]);
  await landed(page, `the button "${button}"`);
}

/** Follows a link by its text and waits for the page. */
export async function follow(page, link, scope = page) {
  await Promise.all([
    page.waitForEvent('framenavigated', { predicate: (f) => f === page.mainFrame() }),
    scope.getByRole('link', { name: link, exact: true }).first().click(),
  ]);
  await landed(page, `the link "${link}"`);
}

/** The console's navigation every signed-in page has (a details page has a tabs `<nav>` too). */
export function iamNav(page) {
  return page.getByRole('navigation')
    .filter({ has: page.getByRole('link', { name: 'Event history', exact: true }) });
}

/** Follows a link of the console's navigation. */
export async function nav(page, link) {
  await follow(page, link, iamNav(page));
  await noAlert(page);
}

/**
 * A text field, textarea or select by its label (not the radio or checkbox of the same name).
 * The label's text starts the accessible name: a select wrapped in its label adds the chosen
 * option's text after it.
 */
export function field(page, label) {
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return page
    .getByLabel(new RegExp(`^${escaped}(\\s|$)`))
    .and(page.locator('input:not([type=radio]):not([type=checkbox]), textarea, select'));
}

export async function fill(page, label, value) {
  await field(page, label).fill(value);
}

export async function tick(page, label) {
  await page.getByRole('checkbox', { name: label, exact: true }).check();
}

export async function choose(page, label) {
  await page.getByRole('radio', { name: label, exact: true }).check();
}

/** Selects the option of a select whose label or value matches `pattern`. */
export async function pick(page, label, pattern) {
  const select = field(page, label);
  const options = await select.locator('option').evaluateAll((os) =>
    os.map((o) => ({ value: o.value, label: o.textContent.trim() })));
  const hit = options.find((o) => pattern.test(o.label) || pattern.test(o.value));
  check(hit, `the select "${label}" has no option matching ${pattern}: ${JSON.stringify(options)}`);
  await select.selectOption(hit.value);
  return hit.label;
}

/** The text of the page's `role="alert"` elements ('' when there is none or all are empty). */
export async function alertText(page) {
  const alerts = page.getByRole('alert');
  const texts = await alerts.allInnerTexts();
  return texts.map((t) => t.trim()).filter(Boolean).join(' | ');
}

export async function noAlert(page) {
  const text = await alertText(page);
  check(!text, `the console shows an error: ${text}`);
}

/** Waits for a success note in `role="status"` and returns its text. */
export async function statusNote(page) {
  await noAlert(page);
  const status = page.getByRole('status').filter({ hasText: /\S/ }).first();
  await status.waitFor({ state: 'visible' });
  return (await status.innerText()).trim();
}

/** The text the page shows, including the values of its fields. */
export async function shownText(page) {
  return page.evaluate(() => {
    const fields = [...document.querySelectorAll('input, textarea')].map((e) => e.value);
    return `${document.body.innerText}\n${fields.join('\n')}`;
  });
}

export async function signIn(page, user, password) {
  await open(page, '/signin');
  await fill(page, 'Account ID or alias', ACCOUNT);
  await fill(page, 'IAM user name', user);
  await fill(page, 'Password', password);
  await submit(page, 'Sign in');
}

export async function signOut(page) {
  await submit(page, 'Sign out');
  check(new URL(page.url()).pathname.startsWith('/console/signin'),
    `signing out led to ${page.url()}, not the sign-in page`);
}

/** Asserts a response's Content-Security-Policy allows no inline script. */
export function strictCsp(response, what) {
  const csp = response.headers()['content-security-policy'];
  check(csp, `${what} has no Content-Security-Policy header`);
  const directives = new Map(csp.split(';').map((d) => d.trim()).filter(Boolean).map((d) => {
    const [name, ...sources] = d.split(/\s+/);
    return [name.toLowerCase(), sources];
  }));
  const scripts = directives.get('script-src') ?? directives.get('default-src');
  check(scripts, `${what}'s Content-Security-Policy has neither script-src nor default-src: ${csp}`);
  check(!scripts.includes("'unsafe-inline'"), `${what}'s Content-Security-Policy lets inline scripts run: ${csp}`);
  check(!scripts.includes('*'), `${what}'s Content-Security-Policy lets scripts load from anywhere: ${csp}`);
  return csp;
}

/** The sidecar's decision for a principal, or `ERROR: …` when it cannot decide (unknown principal). */
export async function decision(principal, action, resource) {
  const args = ['authorize', '--sidecar', SIDECAR, '--principal', principal, '--action', action, '--resource', resource];
  try {
    const { stdout } = await run(BIN, args, { timeout: 20_000 });
    return JSON.parse(stdout).Decision;
  } catch (err) {
    // Exit status 1 is a denial, with the decision on stdout; anything else is an error.
    if (err.code === 1 && err.stdout) return JSON.parse(err.stdout).Decision;
    return `ERROR: ${(err.stderr || err.message).trim()}`;
  }
}

/**
 * Polls the sidecar (changes reach it within about a second) until the decision is `want`
 * (`ALLOW`, or `DENY` for an implicit or explicit deny); fails after `boundMs`.
 */
export async function expectDecision(principal, action, resource, want, boundMs = 20_000) {
  const deadline = Date.now() + boundMs;
  let got;
  for (;;) {
    got = await decision(principal, action, resource);
    const matches = want === 'DENY' ? /^(IMPLICIT|EXPLICIT)_DENY$/.test(got) : got === want;
    if (matches) return got;
    if (Date.now() > deadline) {
      throw new Error(`the sidecar says ${got} for ${principal} ${action} ${resource}, not ${want} (after ${boundMs / 1000} s)`);
    }
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

/** An `iamlet admin` call as the demo's administrator (profile demo-admin); its JSON. */
export async function admin(...args) {
  try {
    const { stdout } = await run(BIN, ['admin', '--profile', 'demo-admin', ...args], { timeout: 20_000 });
    return stdout.trim() ? JSON.parse(stdout) : {};
  } catch (err) {
    throw new Error(`iamlet admin ${args.join(' ')} failed: ${(err.stderr || err.message).trim()}`);
  }
}

/** A JSON document the admin API returned, as an object whether or not it came URL-encoded. */
export function documentOf(doc) {
  if (typeof doc !== 'string') return doc;
  return JSON.parse(doc.trim().startsWith('%') ? decodeURIComponent(doc) : doc);
}
