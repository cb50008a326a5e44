// Headless Chromium (Debian's) driven by playwright-core, for the end-to-end tests of the
// browser client. Every page records its console errors, uncaught exceptions and CSP
// violations, so a test can say "none".
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const OUTPUT = join(ROOT, 'tests', 'output');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export async function launch() {
  // playwright gives every launch a fresh profile (--user-data-dir) in a new temporary
  // directory, removed when the browser closes
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-sync',
      '--disable-background-networking', '--disable-component-update', '--disable-dev-shm-usage'],
  });
}

// A person at a browser: a fresh context (own storage, own session) with one page.
export async function person(browser, base, { width = 1280, height = 800 } = {}) {
  const context = await browser.newContext({ baseURL: base, viewport: { width, height } });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()} @ ${m.location().url}`);
  });
  page.on('pageerror', (e) => problems.push(`exception: ${e.message}`));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const t = e.target && e.target.outerHTML ? ` at ${e.target.outerHTML.slice(0, 160)}` : "";
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}${t}`);
    });
  });
  return { context, page, problems };
}

export async function screenshot(page, name) {
  mkdirSync(OUTPUT, { recursive: true });
  const path = join(OUTPUT, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

// The shared workers a person's pages run (the browser context of `page`) from the script
// at `path`, as the DevTools protocol lists them: [{targetId, url, title, ...}].
export async function sharedWorkers(browser, page, path = '/dist/stream-worker.js') {
  const own = await page.context().newCDPSession(page);
  const cdp = await browser.newBrowserCDPSession();
  try {
    const { targetInfo } = await own.send('Target.getTargetInfo');
    const { targetInfos } = await cdp.send('Target.getTargets');
    return targetInfos.filter((t) => t.type === 'shared_worker' && t.browserContextId === targetInfo.browserContextId
      && new URL(t.url).pathname === path);
  } finally {
    await own.detach();
    await cdp.detach();
  }
}
