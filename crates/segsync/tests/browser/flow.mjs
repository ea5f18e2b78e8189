// The seed's flow in a real headless Chromium, as a new user would go through it:
//
//   admin logs in -> Admin > Connections -> Add connection (display name, shared with
//   contributors, "I agree", export user = self) -> "Authenticate with Mailchimp" -> Allow on
//   Mailchimp's (simulated) login page -> the OAuth connection is listed -> Data > Exports ->
//   Add destination (connection, audience, email, attributes, segments with their counts) ->
//   Save -> Run now -> the page follows the run until it succeeded -> log out -> a contributor
//   logs in: the exports are visible, every /admin page answers 403 "Admins only".
//
// Run by crates/segsync/tests/server/browser.rs, which starts the simulator and `segsync
// serve` and passes everything through the environment. Screenshots of the main pages are
// written to $SCREENSHOTS. Any failed check throws with the step and what was expected;
// the exit code is then 1.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is not set`);
  return v;
}

const BASE = env('SEGSYNC_URL').replace(/\/$/, '');
const ADMIN = { name: env('ADMIN_USER'), password: env('ADMIN_PASSWORD') };
const CONTRIBUTOR = { name: env('CONTRIBUTOR_USER'), password: env('CONTRIBUTOR_PASSWORD') };
const SHOTS = env('SCREENSHOTS');
const LIST_ID = env('LIST_ID');
const LIST_NAME = env('LIST_NAME');
const DISPLAY_NAME = env('DISPLAY_NAME');
const CONNECTION_NAME = env('CONNECTION_NAME');
const EXPORT_NAME = env('EXPORT_NAME');
// The profiles file the installation was imported from, uploaded again in the browser.
const PROFILES_FILE = env('PROFILES_FILE');
const PROFILE_COUNT = Number(env('PROFILE_COUNT'));
const SEGMENTS = JSON.parse(env('SEGMENTS')); // [{name, count, tag}]
// The distinct members the chosen segments give together (shared addresses merged).
const CHOSEN_MEMBERS = Number(env('CHOSEN_MEMBERS'));
const EXPECTED_CREATED = Number(env('EXPECTED_CREATED'));
const SECRETS = JSON.parse(env('SECRETS', '[]')); // strings no page may ever show
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
// Where a screenshot of the page is saved when a step fails (not among the docs).
const FAILURE_DIR = process.env.FAILURE_DIR;
const TIMEOUT = 15_000;

const fmt = (n) => new Intl.NumberFormat('en-US').format(n);

let step = 'starting';
function begin(name) {
  step = name;
  console.log(`[flow] ${name}`);
}

function fail(what, cause) {
  const why = cause ? `: ${String(cause.message ?? cause).split('\n')[0]}` : '';
  return new Error(`step "${step}": ${what}${why}`);
}

/** Waits until `locator` is visible. */
async function see(locator, what, timeout = TIMEOUT) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout });
  } catch (e) {
    throw fail(`expected to see ${what}`, e);
  }
}

/**
 * Waits until the visible text of `locator` contains `text`, in any case (styles may show
 * it in capitals); the page may reload meanwhile.
 */
async function seeText(locator, text, what, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  let last = '(nothing)';
  while (Date.now() < deadline) {
    try {
      last = await locator.first().innerText({ timeout: 1000 });
      if (last.toLowerCase().includes(text.toLowerCase())) return last;
    } catch {
      // Not there yet, or the page is reloading.
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw fail(`expected ${what} to contain ${JSON.stringify(text)}; it showed ${JSON.stringify(last)}`);
}

async function expectPath(page, path, what) {
  try {
    await page.waitForURL((u) => u.pathname === path, { timeout: TIMEOUT });
  } catch (e) {
    throw fail(`expected to arrive at ${path} (${what}); the browser is at ${page.url()}`, e);
  }
}

async function noSecretOn(page) {
  const html = await page.content();
  for (const s of SECRETS) {
    if (s && html.includes(s)) throw fail(`the page ${page.url()} shows a secret`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, name), fullPage: true });
  console.log(`[flow]   screenshot ${name}`);
}

async function logIn(page, who) {
  await page.goto(`${BASE}/`);
  await expectPath(page, '/login', 'the login page, since nobody is logged in');
  await page.getByLabel('User name').fill(who.name);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expectPath(page, '/exports', 'the exports after logging in');
  await seeText(page.locator('#who'), who.name, 'the logged-in user in the header');
}

async function main() {
  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    // No sandbox (tests may run as root); nothing that calls the outside world, which a
    // closed network would refuse (updates, sync, background requests).
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, locale: 'en-US' });
  const page = await context.newPage();
  // Script errors and refusals by the content security policy (a 403 or 401 page answering
  // as it should is not an error).
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  try {
    await flow(page, consoleErrors);
  } catch (e) {
    if (FAILURE_DIR) {
      try {
        mkdirSync(FAILURE_DIR, { recursive: true });
        await page.screenshot({ path: join(FAILURE_DIR, 'failure.png'), fullPage: true });
        writeFileSync(join(FAILURE_DIR, 'failure.html'), await page.content());
        console.error(`[flow] the page at the failure (${page.url()}): ${join(FAILURE_DIR, 'failure.png')}`);
      } catch {
        // The page may be gone.
      }
    }
    throw e;
  } finally {
    await browser.close();
  }
}

/** Data > Sources > Imported profiles: the file uploaded again, previewed, imported. */
async function uploadProfiles(page) {
  begin('Data > Sources > Upload a file: a preview before anything changes');
  await page.getByRole('link', { name: 'Sources', exact: true }).click();
  await page.locator('#upload-profiles').click();
  await expectPath(page, '/profiles', 'the imported profiles');
  await seeText(page.locator('#profile-count'), fmt(PROFILE_COUNT), 'the profiles now');
  if ((await page.getByLabel('Key column').inputValue()) !== 'customer_id') {
    throw fail('the key column should be the current one');
  }
  await page.getByLabel('File').setInputFiles(PROFILES_FILE);
  await page.getByRole('button', { name: 'Preview' }).click();
  await seeText(page.locator('#upload-rows'), fmt(PROFILE_COUNT), 'the profiles the import would store');
  await seeText(page.locator('#upload-dialect'), 'delimiter', 'how the file is read');
  await see(page.locator('#upload-rows-table th', { hasText: 'lifetime_value' }), 'the columns');
  await see(page.locator('#upload-rows-table [data-type="text"]').first(), 'the column types');

  begin('Import commits the upload');
  await page.locator('#commit-upload').click();
  await expectPath(page, '/profiles', 'the imported profiles after the import');
  await seeText(page.locator('#notice'), `Imported ${fmt(PROFILE_COUNT)} profiles`, 'the notice');
}

async function flow(page, consoleErrors) {
  // --- the admin ---
  begin('an unknown visitor is sent to the login page');
  await page.goto(`${BASE}/admin/connections`);
  await expectPath(page, '/login', 'the login page');
  await see(page.getByRole('heading', { name: 'Log in to segsync' }), 'the login form');
  await shot(page, '01-login.png');

  begin('a wrong password is refused');
  await page.getByLabel('User name').fill(ADMIN.name);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  await seeText(page.locator('#error'), 'Wrong user name or password', 'the login error');

  begin('the admin logs in and comes back to the page asked for');
  await page.getByLabel('Password').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expectPath(page, '/admin/connections', 'the page asked for before logging in');
  await seeText(page.locator('#who'), `${ADMIN.name}`, 'the user in the header');
  await seeText(page.locator('#who'), 'admin', 'the role in the header');
  await see(page.getByText('No connection yet'), 'the empty list of connections');

  await uploadProfiles(page);
  await page.goto(`${BASE}/admin/connections`);

  begin('Admin > Connections > Add connection');
  await page.getByRole('link', { name: 'Add connection' }).first().click();
  await expectPath(page, '/admin/connections/new', 'the form to add a connection');
  await see(page.getByText('Data privacy and compliance'), 'the data privacy statement');
  await page.getByLabel('Display name').fill(DISPLAY_NAME);
  await page.getByRole('radio', { name: /^Admins and contributors/ }).check();
  await page.getByLabel('I agree').check();
  const addSelf = page.getByRole('checkbox', { name: /^Add yourself as export user/ });
  if (!(await addSelf.isChecked())) throw fail('"Add yourself as export user" should be ticked by default');
  await shot(page, '02-add-connection.png');

  begin('"Authenticate with Mailchimp" without agreeing is refused');
  await page.getByLabel('I agree').uncheck();
  await page.getByRole('button', { name: 'Authenticate with Mailchimp' }).click();
  await seeText(page.locator('#error'), 'only once you agree', 'the refusal');
  if ((await page.getByLabel('Display name').inputValue()) !== DISPLAY_NAME) {
    throw fail('the form should keep the display name after a refusal');
  }

  begin('"Authenticate with Mailchimp" leads to Mailchimp\'s login page');
  await page.getByLabel('I agree').check();
  await page.getByRole('button', { name: 'Authenticate with Mailchimp' }).click();
  try {
    await page.waitForURL((u) => u.pathname === '/oauth2/authorize', { timeout: TIMEOUT });
  } catch (e) {
    throw fail(`expected Mailchimp's authorize page; the browser is at ${page.url()}`, e);
  }
  await see(page.locator('#username'), 'the Mailchimp user name field');
  await shot(page, '03-mailchimp-authorize.png');

  begin('Allow: back on the connections, the new OAuth connection is listed');
  await page.locator('#allow').click();
  await expectPath(page, '/admin/connections', 'the connections after authorizing');
  await seeText(page.locator('#notice'), 'authenticated with Mailchimp', 'the notice');
  const row = page.locator(`#connections tr[data-connection="${CONNECTION_NAME}"]`);
  await seeText(row, DISPLAY_NAME, 'the new connection\'s row');
  await seeText(row, 'OAuth', 'the connection\'s kind');
  await seeText(row, 'Admins and contributors', 'who can use it');
  await seeText(row, ADMIN.name, 'who agreed to the privacy statement and the export user');
  await noSecretOn(page);
  await shot(page, '04-connections.png');

  begin('the connection\'s page: Test connection');
  await row.getByRole('link', { name: DISPLAY_NAME }).click();
  await expectPath(page, `/admin/connections/${CONNECTION_NAME}`, 'the connection\'s page');
  await page.getByRole('button', { name: 'Test connection' }).click();
  await seeText(page.locator('#notice'), 'Mailchimp accepts the credential', 'the test result');
  await noSecretOn(page);
  await shot(page, '05-connection.png');

  begin('Data > Segments: counts, and a bad condition refused by the form');
  await page.getByRole('link', { name: 'Segments', exact: true }).click();
  await expectPath(page, '/segments', 'the segments');
  for (const s of SEGMENTS) {
    await seeText(page.locator(`#segments tr[data-segment="${s.name}"]`), fmt(s.count), `the count of ${s.name}`);
  }
  await page.getByLabel('Name', { exact: true }).fill('big_spenders');
  await page.getByText('Write the whole condition in SQL').click();
  await page.getByLabel('SQL condition', { exact: true }).fill('lifetime_valu > 500');
  await page.getByRole('button', { name: 'Add segment' }).click();
  await seeText(page.locator('#segment-error'), 'no such column', 'the predicate\'s error');
  if ((await page.getByLabel('SQL condition', { exact: true }).inputValue()) !== 'lifetime_valu > 500') {
    throw fail('the form should keep the condition after a refusal');
  }
  await shot(page, '06-segments.png');

  begin('Data > Exports > Add destination: the connection first');
  await page.getByRole('link', { name: 'Exports', exact: true }).click();
  await expectPath(page, '/exports', 'the exports');
  await see(page.getByText('No export yet'), 'the empty list of exports');
  await page.getByRole('link', { name: 'Add destination' }).first().click();
  await expectPath(page, '/exports/new', 'the new export form');
  const connections = page.getByLabel('Connection for export');
  await connections.selectOption({ value: CONNECTION_NAME });
  await page.getByRole('button', { name: 'Next' }).click();

  begin('the audience, from the audiences the connection sees');
  const audience = page.getByLabel('Mailchimp audience');
  await see(audience, 'the audience list');
  const option = audience.locator(`option[value="${LIST_ID}"]`);
  await seeText(option, LIST_NAME, 'the audience in the list');
  await page.getByLabel('Export name').fill(EXPORT_NAME);
  await audience.selectOption({ value: LIST_ID });

  begin('data matching: email, and attributes added one by one');
  if ((await page.getByLabel('Email', { exact: true }).inputValue()) !== 'email') {
    throw fail('the email column should be preselected');
  }
  const attributes = [
    ['FNAME', 'first_name'],
    ['LNAME', 'last_name'],
    ['CITY', 'city'],
  ];
  for (const [i, [tag, column]] of attributes.entries()) {
    await page.getByRole('button', { name: 'Add attribute' }).click();
    const tagInput = page.getByLabel(`Merge tag ${i + 1}`, { exact: true });
    await see(tagInput, `attribute row ${i + 1}`);
    await tagInput.fill(tag);
    await page.getByLabel(`Profile column ${i + 1}`, { exact: true }).selectOption(column);
  }
  if ((await page.getByLabel('Export name').inputValue()) !== EXPORT_NAME) {
    throw fail('"Add attribute" should keep what was typed');
  }
  if ((await audience.inputValue()) !== LIST_ID) throw fail('"Add attribute" should keep the audience');
  await page.getByLabel('Create the merge fields the audience lacks', { exact: false }).check();

  begin('segments, with their member counts and tags');
  for (const s of SEGMENTS) {
    const r = page.locator(`#segment-choice tr[data-segment="${s.name}"]`);
    await seeText(r, fmt(s.count), `the member count of ${s.name}`);
    await r.getByRole('checkbox').check();
    await page.getByLabel(`Tag for ${s.name}`, { exact: true }).fill(s.tag);
  }
  // The distinct members (not the sum of the segments' counts), and the limit against them.
  const total = CHOSEN_MEMBERS;
  await seeText(page.locator('#segment-total'), fmt(total), 'the distinct members of the chosen segments');
  const limit = page.getByLabel('Profile limit');
  await limit.fill(String(total - 1));
  await see(page.locator('#limit-warning'), 'the warning that the segments are over the limit');
  await limit.fill('1000000');
  await page.locator('#limit-warning').waitFor({ state: 'hidden', timeout: TIMEOUT });
  await shot(page, '07-add-destination.png');

  begin('the schedule: every weekday at a time, in a time zone from the list');
  await page.getByRole('radio', { name: /^On a schedule/ }).check();
  await page.getByLabel('Repeat', { exact: true }).selectOption('weekdays');
  // Half a day away, so that it cannot fire during the test.
  const hour = String((new Date().getUTCHours() + 12) % 24).padStart(2, '0');
  await page.getByLabel('At', { exact: true }).fill(`${hour}:30`);
  await page.getByLabel('Time zone', { exact: true }).selectOption('Europe/Bucharest');

  begin('Save');
  await page.getByRole('button', { name: 'Save', exact: true }).click();
  await expectPath(page, `/exports/${EXPORT_NAME}`, 'the export\'s page');
  await seeText(page.locator('#notice'), 'saved', 'the notice');
  await see(page.getByText('This export has not run yet'), 'the empty history');
  await seeText(page.locator('#configuration'), LIST_ID, 'the audience in the configuration');
  await seeText(page.locator('#configuration'), 'first_name', 'the attributes in the configuration');
  await seeText(page.locator('#audience-name'), LIST_NAME, 'the audience by its name');
  await seeText(page.locator('#configuration'), 'Europe/Bucharest', 'the schedule\'s time zone');

  begin('Run now, and the page follows the run by itself');
  await page.getByRole('button', { name: 'Run now' }).click();
  await expectPath(page, `/exports/${EXPORT_NAME}`, 'the export\'s page after Run now');
  // The notice goes with the page's first refresh: a slow check may find it gone.
  const started = await page.locator('#notice').innerText({ timeout: 1000 }).catch(() => '');
  if (started && !started.includes('Run 1 started')) throw fail(`unexpected notice after Run now: ${started}`);
  let sawProgress = false;
  try {
    await page.locator('#progress').waitFor({ state: 'visible', timeout: 1500 });
    sawProgress = true;
    await shot(page, '08-export-running.png');
  } catch {
    console.log('[flow]   the run ended before its progress could be seen');
  }
  const run1 = page.locator('#history tr[data-run="1"]');
  await seeText(run1, 'succeeded', 'the outcome of run 1 (the page refreshes itself)', 90_000);
  await seeText(run1.locator('td[data-count="created"]'), fmt(EXPECTED_CREATED), 'the created count');
  await see(page.locator('#records-chart g.bar[data-run="1"]'), 'the bar of run 1 in the chart');
  if (sawProgress) console.log('[flow]   saw the progress of the run');
  await shot(page, '09-export.png');

  begin('the run\'s page');
  await run1.getByRole('link', { name: '1', exact: true }).click();
  await expectPath(page, '/runs/1', 'the run\'s page');
  await seeText(page.locator('#counts'), fmt(EXPECTED_CREATED), 'the counts');
  await shot(page, '10-run.png');
  begin('download the run\'s change log');
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: TIMEOUT }),
    page.getByRole('link', { name: 'Download change log' }).click(),
  ]);
  if (download.suggestedFilename() !== 'run-1-changes.csv') {
    throw fail(`the change log's file name: ${download.suggestedFilename()}`);
  }
  const changeLog = readFileSync(await download.path(), 'utf8').trim().split('\n');
  if (changeLog[0] !== 'action,email,detail,profile_key') throw fail(`the change log's header: ${changeLog[0]}`);
  const createdLines = changeLog.filter((l) => l.startsWith('created,')).length;
  if (createdLines !== EXPECTED_CREATED) {
    throw fail(`the change log lists ${createdLines} created members, not ${EXPECTED_CREATED}`);
  }
  console.log(`[flow]   the change log lists the ${createdLines} members created`);
  await page.goBack();

  begin('Data > Exports lists the export with its last run');
  await page.getByRole('link', { name: 'Exports', exact: true }).click();
  await expectPath(page, '/exports', 'the exports');
  const listed = page.locator(`#exports tr[data-export="${EXPORT_NAME}"]`);
  await seeText(listed, DISPLAY_NAME, 'the export\'s connection');
  await seeText(listed, LIST_ID, 'the export\'s audience');
  await seeText(listed, 'succeeded', 'the export\'s last run');
  await seeText(listed, `${fmt(EXPECTED_CREATED)} created`, 'the last run\'s created count');
  await shot(page, '11-exports.png');

  begin('Admin > Users');
  await page.getByRole('link', { name: 'Users', exact: true }).click();
  await expectPath(page, '/admin/users', 'the users');
  for (const n of [ADMIN.name, CONTRIBUTOR.name]) {
    await see(page.locator(`#users tr[data-user="${n}"]`), `the user ${n}`);
  }
  await shot(page, '12-users.png');

  begin('log out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await expectPath(page, '/login', 'the login page');
  await seeText(page.locator('#notice'), 'logged out', 'the notice');
  const after = await page.goto(`${BASE}/exports`);
  if (!new URL(page.url()).pathname.startsWith('/login')) {
    throw fail(`after logging out, /exports should lead to the login page (status ${after?.status()})`);
  }

  // --- the contributor ---
  begin('the contributor logs in and sees the exports');
  await logIn(page, CONTRIBUTOR);
  await seeText(page.locator(`#exports tr[data-export="${EXPORT_NAME}"]`), DISPLAY_NAME, 'the export and its connection');
  if ((await page.getByRole('link', { name: 'Connections', exact: true }).count()) !== 0) {
    throw fail('a contributor should not have the Admin menu');
  }
  await page.goto(`${BASE}/exports/${EXPORT_NAME}`);
  await see(page.getByRole('button', { name: 'Run now' }), 'Run now on an export of a shared connection');

  begin('every /admin page is "Admins only" for a contributor');
  for (const path of ['/admin/connections', `/admin/connections/${CONNECTION_NAME}`, '/admin/connections/new', '/admin/users']) {
    const res = await page.goto(`${BASE}${path}`);
    if (res?.status() !== 403) throw fail(`${path} should answer 403 to a contributor, not ${res?.status()}`);
    await see(page.getByRole('heading', { name: 'Admins only' }), `the "Admins only" page at ${path}`);
    await noSecretOn(page);
    if (path === '/admin/connections') await shot(page, '13-contributor-admins-only.png');
  }

  begin('the contributor may choose the shared connection for a new export');
  await page.goto(`${BASE}/exports/new`);
  await seeText(page.getByLabel('Connection for export'), DISPLAY_NAME, 'the shared connection');

  if (consoleErrors.length) {
    throw fail(`the browser console reported errors: ${consoleErrors.join(' | ')}`);
  }
  console.log('[flow] every step passed');
}

const watchdog = setTimeout(() => {
  console.error(`[flow] timed out in step "${step}"`);
  process.exit(2);
}, 240_000);

main()
  .then(() => {
    clearTimeout(watchdog);
  })
  .catch((e) => {
    clearTimeout(watchdog);
    console.error(`[flow] FAILED: ${e.stack ?? e}`);
    process.exitCode = 1;
  });
