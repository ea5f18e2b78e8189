// Every page on a phone: headless Chromium at 390 x 844 (a common phone's CSS pixels) logs
// in as each role and opens the pages that role uses; no page may be wider than the screen
// (nothing to scroll sideways: tables stack, forms wrap). Screenshots of a few pages are
// written to $SCREENSHOTS.
//
// Run by crates/segsync/tests/server/browser.rs, which starts the simulator and `segsync
// serve` with an export that has run, and passes everything through the environment:
// VISITS = [{user, password, paths: [...]}]. A page wider than the screen fails the run
// (exit 1) with its path, its width and the widest elements.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is not set`);
  return v;
}

const BASE = env('SEGSYNC_URL').replace(/\/$/, '');
const VISITS = JSON.parse(env('VISITS'));
const SHOTS = env('SCREENSHOTS');
const SHOOT = JSON.parse(env('SHOOT', '{}')); // {path: file name}
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const WIDTH = 390;

/** The page's width beyond the screen, with the elements that stick out furthest. */
async function overflow(page) {
  return page.evaluate((width) => {
    const doc = document.documentElement;
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > width + 1 && r.width > 0) {
        const id = el.id ? `#${el.id}` : '';
        const cls = el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : '';
        wide.push({ el: `${el.tagName.toLowerCase()}${id}${cls}`, right: Math.round(r.right) });
      }
    }
    wide.sort((a, b) => b.right - a.right);
    return { scrollWidth: doc.scrollWidth, widest: wide.slice(0, 5) };
  }, WIDTH);
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const problems = [];
  try {
    for (const visit of VISITS) {
      const context = await browser.newContext({
        viewport: { width: WIDTH, height: 844 },
        deviceScaleFactor: 2,
        isMobile: true,
        hasTouch: true,
        locale: 'en-US',
      });
      const page = await context.newPage();
      await page.goto(`${BASE}/login`);
      await page.getByLabel('User name').fill(visit.user);
      await page.getByLabel('Password').fill(visit.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.waitForURL((u) => u.pathname !== '/login', { timeout: 15_000 });
      for (const path of visit.paths) {
        await page.goto(`${BASE}${path}`);
        await page.waitForLoadState('load');
        const o = await overflow(page);
        console.log(`[phone] ${visit.user} ${path}: ${o.scrollWidth} px wide`);
        if (o.scrollWidth > WIDTH + 1) {
          problems.push(`${visit.user} ${path}: ${o.scrollWidth} px wide on a ${WIDTH} px screen; widest: ${JSON.stringify(o.widest)}`);
        }
        const name = SHOOT[`${visit.user} ${path}`];
        if (name) {
          await page.screenshot({ path: join(SHOTS, name), fullPage: true });
          console.log(`[phone]   screenshot ${name}`);
        }
      }
      await context.close();
    }
  } finally {
    await browser.close();
  }
  if (problems.length > 0) {
    throw new Error(`pages wider than a phone:\n${problems.join('\n')}`);
  }
}

main().catch((e) => {
  console.error(String(e.stack ?? e));
  process.exit(1);
});
