// The segment builder and true sizes in a real headless Chromium (issue 18, items 1 and 2),
// at desktop (1280 px) and phone (390 px) widths:
//
//   admin and contributor: Data > Segments -> build "country is one of RO" AND
//   "lifetime_value >= 500" with the pickers, without typing SQL -> the live count and the
//   SQL under "View SQL" -> a sample of the matching profiles -> Save -> the segment's page
//   counts the same; the export form shows the distinct members of its segments, their
//   overlap and the limit check against them, live as boxes are ticked; the admin edits a
//   segment the export uses and is told how many members would gain or lose its tag; then
//   "Preview run" shows what a run would do, "Run now" does it (the first run creates what
//   the preview said, later ones nothing), and the run's change log is downloaded from its
//   page and lists the members created.
//   viewer: the counts only (no builder, no sample, no profile on any page, no change log).
//
// Run by crates/segsync/tests/server/browser.rs, which starts the simulator and `segsync
// serve`, sets up the export and passes the counts the profiles must give. Any failed check
// throws with the step and what was expected; the exit code is then 1.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name) {
  const v = process.env[name];
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is not set`);
  return v;
}

const BASE = env('SEGSYNC_URL').replace(/\/$/, '');
const USERS = JSON.parse(env('USERS')); // {admin: {name, password}, contributor, viewer}
const SHOTS = env('SCREENSHOTS');
const FAILURE_DIR = process.env.FAILURE_DIR;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const EXPORT_NAME = env('EXPORT_NAME');
// What the profiles must give.
const WANT = JSON.parse(env('WANT'));
// {ro_high, members_both, members_high, overlap, gain, lose, ro_top}
const TIMEOUT = 15_000;
const fmt = (n) => new Intl.NumberFormat('en-US').format(n);

let step = 'starting';
function begin(name) {
  step = name;
  console.log(`[builder] ${name}`);
}
function fail(what, cause) {
  const why = cause ? `: ${String(cause.message ?? cause).split('\n')[0]}` : '';
  return new Error(`step "${step}": ${what}${why}`);
}
async function see(locator, what) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: TIMEOUT });
  } catch (e) {
    throw fail(`expected to see ${what}`, e);
  }
}
async function seeText(locator, text, what) {
  const deadline = Date.now() + TIMEOUT;
  let last = '(nothing)';
  while (Date.now() < deadline) {
    try {
      last = await locator.first().innerText({ timeout: 1000 });
      if (last.toLowerCase().includes(text.toLowerCase())) return last;
    } catch {
      // Not there yet.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw fail(`expected ${what} to contain ${JSON.stringify(text)}; it showed ${JSON.stringify(last)}`);
}
async function absent(locator, what) {
  if ((await locator.count()) > 0) throw fail(`${what} should not be on the page`);
}
async function expectPath(page, path, what) {
  try {
    await page.waitForURL((u) => u.pathname === path, { timeout: TIMEOUT });
  } catch (e) {
    throw fail(`expected to arrive at ${path} (${what}); the browser is at ${page.url()}`, e);
  }
}
async function noOverflow(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  if (scroll > width + 1) throw fail(`${what} overflows horizontally (${scroll} px wide in ${width} px)`);
}
async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  console.log(`[builder]   screenshot ${name}`);
}
async function logIn(page, who) {
  await page.goto(`${BASE}/login`);
  await page.getByLabel('User name').fill(who.name);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expectPath(page, '/exports', 'the exports after logging in');
}

/** Builds "country is one of RO" AND "lifetime_value >= 500" with clicks and the pickers. */
async function build(page, name, sample) {
  begin(`${name}: the builder, without typing SQL`);
  await page.getByLabel('Name', { exact: true }).fill(name);
  await see(page.locator('#add-condition'), 'the builder');
  if (await page.locator('#sql-mode').evaluate((d) => d.open)) throw fail('the SQL field should be folded away');
  await page.locator('#add-condition').click();
  let row = page.locator('#builder .cond').last();
  await row.locator('.cond-column').selectOption('country');
  await row.locator('.cond-op').selectOption('one_of');
  row = page.locator('#builder .cond').last();
  await row.locator('.chip', { hasText: `RO (${fmt(WANT.ro_top)})` }).click();
  await page.locator('#add-condition').click();
  row = page.locator('#builder .cond').last();
  await row.locator('.cond-column').selectOption('lifetime_value');
  await row.locator('.cond-op').selectOption('gte');
  row = page.locator('#builder .cond').last();
  await see(row.locator('.chip', { hasText: 'median' }), 'the percentiles of lifetime_value');
  await row.locator('.cond-value').fill('500');
  await seeText(page.locator('#live-count'), fmt(WANT.ro_high), 'the live count');
  await page.getByText('View SQL').click();
  await seeText(page.locator('#compiled-sql'), `("country" IN ('RO') AND "lifetime_value" >= 500)`, 'the compiled SQL');
  if (sample) {
    await see(page.locator('#live-sample table'), 'a sample of the matching profiles');
  } else {
    await absent(page.locator('#live-sample table'), 'a sample');
  }
  // A mistake stops the save: an empty SQL part cannot be counted.
  await page.locator('#add-sql').click();
  await see(page.locator('#builder-error'), 'the draft\'s error');
  if (!(await page.locator('#segment-submit').isDisabled())) throw fail('a draft with an error must not be savable');
  await page.locator('#builder .cond-sql .cond-remove').click();
  await seeText(page.locator('#live-count'), fmt(WANT.ro_high), 'the live count again');
  if (await page.locator('#segment-submit').isDisabled()) throw fail('the draft is right again');
}

async function asEditor(page, who, width) {
  const name = `ro_high_${who}_${width}`;
  await page.goto(`${BASE}/segments`);
  await build(page, name, true);
  await noOverflow(page, 'the segments page with the builder');
  await shot(page, `builder-${who}-${width}.png`);
  begin(`${name}: saved from the builder`);
  await page.locator('#segment-submit').click();
  await expectPath(page, `/segments/${name}`, 'the new segment');
  await seeText(page.locator('#member-count'), fmt(WANT.ro_high), 'the saved segment\'s count');
  await see(page.locator('#sample'), 'the sample');
  await see(page.getByText('Built with the segment builder'), 'that the segment keeps its rule');

  begin(`${who} at ${width}: the export form's true sizes`);
  await page.goto(`${BASE}/exports/${EXPORT_NAME}/edit`);
  await seeText(page.locator('#segment-total'), fmt(WANT.members_both), 'the distinct members of both segments');
  await seeText(page.locator('#segment-overlaps'), `In both high_value and romania: ${fmt(WANT.overlap)} members`, 'the overlap');
  const limit = page.getByLabel('Profile limit');
  await limit.fill(String(WANT.members_both - 1));
  await see(page.locator('#limit-warning'), 'the warning against the distinct members');
  await limit.fill(String(WANT.members_both));
  await page.locator('#limit-warning').waitFor({ state: 'hidden', timeout: TIMEOUT });
  await page.locator('#segment-choice tr[data-segment="romania"]').getByRole('checkbox').uncheck();
  await seeText(page.locator('#segment-total'), fmt(WANT.members_high), 'the members of high_value alone');
  await noOverflow(page, 'the export form');
  await shot(page, `export-sizes-${who}-${width}.png`);
  await page.locator('#segment-choice tr[data-segment="romania"]').getByRole('checkbox').check();
  await seeText(page.locator('#segment-total'), fmt(WANT.members_both), 'both again');

  if (who === 'admin') {
    begin('editing a segment the export uses: who would gain or lose its tag');
    await page.goto(`${BASE}/segments/romania`);
    await see(page.locator('#add-condition'), 'the builder on the segment\'s page');
    await page.getByLabel('SQL condition', { exact: true }).fill('');
    await page.locator('#add-condition').click();
    const row = page.locator('#builder .cond').last();
    await row.locator('.cond-column').selectOption('country');
    await row.locator('.cond-value').fill('FR');
    await seeText(
      page.locator('#tag-changes'),
      `Export “${EXPORT_NAME}”: ${fmt(WANT.gain)} members would gain the tag “romania”, ${fmt(WANT.lose)} would lose it`,
      'the tag changes',
    );
    await noOverflow(page, 'the segment page');
    await shot(page, `segment-tag-changes-${width}.png`);
  }
  await previewAndRun(page, who, width);
}

// The runs made so far (one export: a run's number is its id).
let runsMade = 0;

/** Preview run -> Run now -> the run's page -> its change log, downloaded. */
async function previewAndRun(page, who, width) {
  begin(`${who} at ${width}: Preview run`);
  await page.goto(`${BASE}/exports/${EXPORT_NAME}`);
  await page.locator('#preview-run').click();
  await expectPath(page, `/exports/${EXPORT_NAME}/preview`, 'the preview');
  const creates = await seeText(page.locator('#plan tr[data-count="creates"] td.num'), '', 'members to create');
  const want = Number(creates.replace(/[^0-9]/g, ''));
  if (runsMade === 0 && want === 0) throw fail('the first preview should create members');
  if (runsMade > 0 && want !== 0) throw fail(`nothing changed since run ${runsMade}, yet the preview creates ${want}`);
  await noOverflow(page, 'the preview');
  await shot(page, `preview-${who}-${width}.png`);

  begin(`${who} at ${width}: Run now from the preview`);
  await page.getByRole('button', { name: 'Run now' }).click();
  await expectPath(page, `/exports/${EXPORT_NAME}`, 'the export after Run now');
  runsMade += 1;
  const row = page.locator(`#history tr[data-run="${runsMade}"]`);
  await seeText(row, 'succeeded', `the outcome of run ${runsMade}`);
  await seeText(row.locator('td[data-count="created"]'), fmt(want), 'the members created, as previewed');

  begin(`${who} at ${width}: the run's change log`);
  await page.goto(`${BASE}/runs/${runsMade}`);
  await noOverflow(page, 'the run page');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: TIMEOUT }),
    page.getByRole('link', { name: 'Download change log' }).click(),
  ]);
  const lines = readFileSync(await download.path(), 'utf8').trim().split('\n');
  if (lines[0] !== 'action,email,detail,profile_key') throw fail(`the change log's header: ${lines[0]}`);
  const created = lines.filter((l) => l.startsWith('created,')).length;
  if (created !== want) throw fail(`the change log lists ${created} members created, not ${want}`);
}

async function asViewer(page, width) {
  begin(`viewer at ${width}: counts only`);
  await page.goto(`${BASE}/segments`);
  await seeText(page.locator(`#segments tr[data-segment="ro_high_admin_${width}"]`), fmt(WANT.ro_high), 'the count');
  await absent(page.locator('#builder'), 'the builder');
  await page.goto(`${BASE}/segments/ro_high_admin_${width}`);
  await seeText(page.locator('#member-count'), fmt(WANT.ro_high), 'the count');
  await absent(page.locator('#sample'), 'the sample');
  await see(page.getByText('Viewers see the count only'), 'why there is no sample');
  await noOverflow(page, 'the segment page');
  await shot(page, `segment-viewer-${width}.png`);
  begin(`viewer at ${width}: a run's page without its change log`);
  await page.goto(`${BASE}/runs/${runsMade}`);
  await see(page.locator('#counts'), 'the run\'s counts');
  await absent(page.locator('#download-changes'), 'the change log link');
  const status = await page.evaluate(async (id) => (await fetch(`/api/runs/${id}/changes`)).status, runsMade);
  if (status !== 403) throw fail(`the change log answered a viewer ${status}, not 403`);
  await noOverflow(page, 'the run page');
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let page = null;
  try {
    for (const [width, height] of [[1280, 860], [390, 844]]) {
      for (const who of ['admin', 'contributor', 'viewer']) {
        const context = await browser.newContext({ viewport: { width, height }, locale: 'en-US' });
        page = await context.newPage();
        const errors = [];
        page.on('pageerror', (e) => errors.push(String(e)));
        page.on('console', (m) => {
          if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
        });
        begin(`${who} logs in at ${width} px`);
        await logIn(page, USERS[who]);
        if (who === 'viewer') await asViewer(page, width);
        else await asEditor(page, who, width);
        if (errors.length) throw fail(`script errors or refusals: ${errors.join(' | ')}`);
        await context.close();
      }
    }
  } catch (e) {
    if (FAILURE_DIR && page) {
      try {
        mkdirSync(FAILURE_DIR, { recursive: true });
        await page.screenshot({ path: join(FAILURE_DIR, 'failure.png'), fullPage: true });
        writeFileSync(join(FAILURE_DIR, 'failure.html'), await page.content());
      } catch {
        // The page may be gone.
      }
    }
    throw e;
  } finally {
    await browser.close();
  }
}

main().then(
  () => {
    console.log('[builder] done');
    process.exit(0);
  },
  (e) => {
    console.error(String(e.stack ?? e));
    process.exit(1);
  },
);
