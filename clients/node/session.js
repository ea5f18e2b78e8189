#!/usr/bin/env node
// A realistic session of the official Node client (npm `@mailchimp/mailchimp_marketing`) against
// mailchimp-sim, unchanged except for its address.
//
//     MAILCHIMP_SIM_API_URL=http://127.0.0.1:PORT/3.0 MAILCHIMP_SIM_API_KEY=<32hex>-us6 \
//         node clients/node/session.js
//
// Every answer is checked; the first mismatch ends the script with exit status 1 and a message
// naming the step. On success it prints `audience: <list_id>` and, last,
// `node client session: OK (N checks)`.
//
// It leaves the audience in the same state as clients/python/session.py (see there), which
// crates/mailchimp-sim/tests/official_clients.rs checks through the simulator itself.
'use strict';

const crypto = require('crypto');
const zlib = require('zlib');
const util = require('util');
const mailchimp = require('@mailchimp/mailchimp_marketing');

const NAME = 'node client session';
const FIRST = ['olivia', 'liam', 'emma', 'noah', 'ava', 'elijah', 'sophia', 'lucas', 'mia', 'mateo',
  'amelia', 'levi', 'harper', 'ezra', 'evelyn', 'asher', 'luna', 'leo', 'camila', 'owen'];
const LAST = ['smith', 'garcia', 'nguyen', 'patel', 'mueller', 'rossi', 'kowalski', 'tanaka',
  'okafor', 'silva', 'johansson', 'dubois', 'murphy', 'cohen', 'haddad'];
const DOMAINS = ['gmail.com', 'outlook.com', 'yahoo.com', 'icloud.com', 'proton.me', 'fastmail.com',
  'hotmail.co.uk', 'gmx.de', 'orange.fr', 'comcast.net'];
const PLANS = ['Free', 'Pro', 'Enterprise'];
const PEOPLE = 500;
const BATCH_PERSON = PEOPLE; // the contact written by the /batches job
const ARCHIVED = 7;
const UNSUBSCRIBED = 9;

let checks = 0;

class Failure extends Error {}

function fail(step, message) {
  throw new Failure(`${NAME}: FAILED at ${step}: ${message}`);
}

function check(step, ok, message) {
  checks += 1;
  if (!ok) fail(step, message);
}

function same(a, b) {
  return util.isDeepStrictEqual(a, b);
}

function expectEq(step, what, got, want) {
  check(step, same(got, want), `${what}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
}

// Person i: a stable, realistic address and merge values (as in the Python session).
function person(i) {
  const first = FIRST[i % FIRST.length];
  const last = LAST[Math.floor(i / FIRST.length) % LAST.length];
  const title = (s) => s[0].toUpperCase() + s.slice(1);
  const email = `${first}.${last}${i}@${DOMAINS[i % DOMAINS.length]}`;
  return { email, merge: { FNAME: title(first), LNAME: title(last), ORDERS: i % 17, PLAN: PLANS[i % PLANS.length] } };
}

function md5(email) {
  return crypto.createHash('md5').update(email.toLowerCase()).digest('hex');
}

// The problem document of a failed call: superagent's error carries the response.
function problem(err) {
  const res = err && err.response;
  if (!res) return {};
  if (res.body && typeof res.body === 'object' && Object.keys(res.body).length) return res.body;
  try {
    return JSON.parse(res.text);
  } catch (_) {
    return {};
  }
}

async function call(step, promise) {
  try {
    return await promise;
  } catch (err) {
    if (err instanceof Failure) throw err;
    if (err && err.response) {
      fail(step, `the API answered ${err.status}: ${err.response.text}`);
    }
    fail(step, `could not reach the API: ${err && err.message ? err.message : err}`);
  }
}

// Entries of an uncompressed tar archive, as {name, data}.
function untar(buf) {
  const files = [];
  let pos = 0;
  while (pos + 512 <= buf.length) {
    const header = buf.subarray(pos, pos + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start, len) => header.subarray(start, start + len).toString('latin1').replace(/\0.*$/s, '');
    let name = field(0, 100);
    const prefix = field(345, 155);
    if (field(257, 5) === 'ustar' && prefix) name = `${prefix}/${name}`;
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    pos += 512;
    if (type === '0') files.push({ name, data: buf.subarray(pos, pos + size) });
    pos += Math.ceil(size / 512) * 512;
  }
  return files;
}

async function session() {
  const url = process.env.MAILCHIMP_SIM_API_URL;
  const key = process.env.MAILCHIMP_SIM_API_KEY;
  if (!url || !key) {
    fail('setup', 'set MAILCHIMP_SIM_API_URL (e.g. http://127.0.0.1:PORT/3.0) and MAILCHIMP_SIM_API_KEY');
  }
  const mc = mailchimp;
  mc.setConfig({ apiKey: key, server: key.split('-').pop() });
  // The one change from talking to Mailchimp: the address.
  mc.basePath = url.replace(/\/+$/, '');

  // Ping.
  const pong = await call('ping', mc.ping.get());
  expectEq('ping', 'health_status', pong.health_status, "Everything's Chimpy!");

  // An audience.
  const audience = await call('create audience', mc.lists.createList({
    name: 'Riverside Bikes Newsletter',
    contact: { company: 'Riverside Bikes', address1: '210 Canal Street', city: 'Portland',
      state: 'OR', zip: '97209', country: 'US' },
    permission_reminder: 'You signed up for news when you bought a bike from us.',
    campaign_defaults: { from_name: 'Riverside Bikes', from_email: 'news@riversidebikes.co',
      subject: 'Riverside news', language: 'en' },
    email_type_option: false,
  }));
  const listId = audience.id;
  check('create audience', typeof listId === 'string' && listId !== '', `no id in ${JSON.stringify(audience)}`);
  expectEq('create audience', 'name', audience.name, 'Riverside Bikes Newsletter');
  expectEq('create audience', 'stats.member_count', (audience.stats || {}).member_count, 0);
  console.log(`audience: ${listId}`);

  // Merge fields: a number and a dropdown.
  const orders = await call('merge field ORDERS',
    mc.lists.addListMergeField(listId, { name: 'Lifetime orders', type: 'number', tag: 'ORDERS' }));
  expectEq('merge field ORDERS', 'type', orders.type, 'number');
  expectEq('merge field ORDERS', 'tag', orders.tag, 'ORDERS');
  const plan = await call('merge field PLAN',
    mc.lists.addListMergeField(listId, { name: 'Plan', type: 'dropdown', tag: 'PLAN', options: { choices: PLANS } }));
  expectEq('merge field PLAN', 'type', plan.type, 'dropdown');
  expectEq('merge field PLAN', 'options.choices', (plan.options || {}).choices, PLANS);

  // Upsert five members one by one (PUT with status_if_new), then one again as an update.
  for (let i = 0; i < 5; i++) {
    const { email, merge } = person(i);
    const m = await call(`set member ${i}`, mc.lists.setListMember(listId, md5(email),
      { email_address: email, status_if_new: 'subscribed', merge_fields: merge }));
    expectEq(`set member ${i}`, 'id', m.id, md5(email));
    expectEq(`set member ${i}`, 'status', m.status, 'subscribed');
    expectEq(`set member ${i}`, 'merge_fields.ORDERS', m.merge_fields.ORDERS, merge.ORDERS);
    expectEq(`set member ${i}`, 'merge_fields.PLAN', m.merge_fields.PLAN, merge.PLAN);
  }
  const p0 = person(0);
  let m = await call('set member 0 again', mc.lists.setListMember(listId, md5(p0.email),
    { email_address: p0.email, status_if_new: 'unsubscribed', merge_fields: { ORDERS: 42, PLAN: 'Enterprise' } }));
  expectEq('set member 0 again', 'status (status_if_new is for new members only)', m.status, 'subscribed');
  expectEq('set member 0 again', 'merge_fields.ORDERS', m.merge_fields.ORDERS, 42);
  expectEq('set member 0 again', 'merge_fields.FNAME (kept)', m.merge_fields.FNAME, p0.merge.FNAME);

  // 500 members in one batch upsert: 5 already there, 495 new.
  const members = [];
  for (let i = 0; i < PEOPLE; i++) {
    const { email, merge } = person(i);
    members.push({ email_address: email, status: 'subscribed', merge_fields: merge });
  }
  const batch = await call('batch upsert', mc.lists.batchListMembers(listId, { members, update_existing: true }));
  expectEq('batch upsert', 'error_count', batch.error_count, 0);
  expectEq('batch upsert', 'total_created', batch.total_created, PEOPLE - 5);
  expectEq('batch upsert', 'total_updated', batch.total_updated, 5);
  expectEq('batch upsert', 'new_members.length', (batch.new_members || []).length, PEOPLE - 5);

  // A refused address comes back in errors[], not as a failed call.
  const bad = await call('batch upsert of a fake-looking address', mc.lists.batchListMembers(listId,
    { members: [{ email_address: 'someone@example.com', status: 'subscribed' }] }));
  expectEq('batch upsert of a fake-looking address', 'error_count', bad.error_count, 1);
  expectEq('batch upsert of a fake-looking address', 'total_created', bad.total_created, 0);

  // Tags on single members: 204 No Content.
  for (const i of [0, 1]) {
    const { email } = person(i);
    const r = await call(`tag member ${i}`, mc.lists.updateListMemberTagsWithHttpInfo(listId, md5(email),
      { tags: [{ name: 'VIP', status: 'active' }, { name: 'Beta', status: 'active' }] }));
    expectEq(`tag member ${i}`, 'HTTP status', r.response.status, 204);
  }
  const p1 = person(1);
  const untag = await call('untag member 1', mc.lists.updateListMemberTagsWithHttpInfo(listId, md5(p1.email),
    { tags: [{ name: 'Beta', status: 'inactive' }] }));
  expectEq('untag member 1', 'HTTP status', untag.response.status, 204);
  const tags = await call('member 1 tags', mc.lists.getListMemberTags(listId, md5(p1.email)));
  expectEq('member 1 tags', 'names', (tags.tags || []).map((t) => t.name).sort(), ['VIP']);

  // A tag created as an empty static segment, then 100 members added in one batch.
  let seg = await call('create tag', mc.lists.createSegment(listId, { name: 'Spring Promo', static_segment: [] }));
  const segId = seg.id;
  expectEq('create tag', 'type', seg.type, 'static');
  expectEq('create tag', 'member_count', seg.member_count, 0);
  const promo = [];
  for (let i = 100; i < 200; i++) promo.push(person(i).email);
  const added = await call('batch segment members',
    mc.lists.batchSegmentMembers({ members_to_add: promo, members_to_remove: [] }, listId, segId));
  expectEq('batch segment members', 'total_added', added.total_added, 100);
  expectEq('batch segment members', 'error_count', added.error_count, 0);
  seg = await call('get tag', mc.lists.getSegment(listId, segId));
  expectEq('get tag', 'member_count', seg.member_count, 100);

  // Page through all members with count/offset: each seen once, total_items on every page.
  const seen = new Map();
  const pageSize = 120;
  let offset = 0;
  let pages = 0;
  for (;;) {
    const page = await call(`members page at ${offset}`, mc.lists.getListMembersInfo(listId, {
      count: pageSize, offset,
      fields: ['members.id', 'members.email_address', 'members.status', 'total_items'],
    }));
    pages += 1;
    expectEq(`members page at ${offset}`, 'total_items', page.total_items, PEOPLE);
    const got = page.members || [];
    for (const mem of got) {
      check(`members page at ${offset}`, !seen.has(mem.id), `member ${mem.email_address} seen twice`);
      seen.set(mem.id, mem.email_address);
    }
    if (got.length < pageSize) break;
    offset += pageSize;
  }
  expectEq('paging', 'pages', pages, 5);
  const everyone = [];
  for (let i = 0; i < PEOPLE; i++) everyone.push(person(i).email);
  expectEq('paging', 'members seen', [...seen.values()].sort(), everyone.sort());

  // Archive one member: 204, then it reads as archived.
  const pa = person(ARCHIVED);
  const archived = await call('archive member', mc.lists.deleteListMemberWithHttpInfo(listId, md5(pa.email)));
  expectEq('archive member', 'HTTP status', archived.response.status, 204);
  m = await call('read archived member', mc.lists.getListMember(listId, md5(pa.email)));
  expectEq('read archived member', 'status', m.status, 'archived');

  // Compliance: unsubscribe a member, then try to subscribe it again -> 400.
  const pu = person(UNSUBSCRIBED);
  m = await call('unsubscribe member', mc.lists.updateListMember(listId, md5(pu.email), { status: 'unsubscribed' }));
  expectEq('unsubscribe member', 'status', m.status, 'unsubscribed');
  let refused = null;
  try {
    await mc.lists.setListMember(listId, md5(pu.email), { email_address: pu.email, status: 'subscribed' });
  } catch (err) {
    refused = err;
  }
  check('resubscribe member', refused !== null, 'resubscribing an unsubscribed member was accepted');
  check('resubscribe member', Boolean(refused.response), `no HTTP answer: ${refused}`);
  expectEq('resubscribe member', 'HTTP status', refused.status, 400);
  const ctype = refused.response.headers['content-type'] || '';
  check('resubscribe member', ctype.startsWith('application/problem+json'), `content-type is ${ctype}`);
  const doc = problem(refused);
  expectEq('resubscribe member', 'title', doc.title, 'Member In Compliance State');
  expectEq('resubscribe member', 'status in body', doc.status, 400);
  check('resubscribe member', String(doc.detail || '').includes(pu.email),
    `detail does not name the address: ${JSON.stringify(doc)}`);
  m = await call('read unsubscribed member', mc.lists.getListMember(listId, md5(pu.email)));
  expectEq('read unsubscribed member', 'status', m.status, 'unsubscribed');

  // A /batches job: operations whose bodies are JSON strings.
  const pb = person(BATCH_PERSON);
  const p2 = person(2);
  const operations = [
    { method: 'GET', path: `/lists/${listId}`, operation_id: 'get-audience' },
    { method: 'PUT', path: `/lists/${listId}/members/${md5(pb.email)}`, operation_id: 'put-new-member',
      body: JSON.stringify({ email_address: pb.email, status_if_new: 'subscribed', merge_fields: pb.merge }) },
    { method: 'PATCH', path: `/lists/${listId}/members/${md5(p2.email)}`, operation_id: 'patch-member',
      body: JSON.stringify({ merge_fields: { PLAN: 'Enterprise' } }) },
    { method: 'GET', path: `/lists/${listId}/members`, operation_id: 'list-members',
      params: { count: '5', fields: 'total_items,members.email_address' } },
  ];
  const started = await call('start batch', mc.batches.start({ operations }));
  const batchId = started.id;
  check('start batch', typeof batchId === 'string' && batchId !== '', `no id in ${JSON.stringify(started)}`);
  expectEq('start batch', 'total_operations', started.total_operations, operations.length);
  const deadline = Date.now() + 60000;
  let status = started;
  while (status.status !== 'finished') {
    check('poll batch', Date.now() < deadline, `still ${JSON.stringify(status.status)} after 60 s`);
    await new Promise((r) => setTimeout(r, 100));
    status = await call('poll batch', mc.batches.status(batchId));
  }
  expectEq('finished batch', 'finished_operations', status.finished_operations, operations.length);
  expectEq('finished batch', 'errored_operations', status.errored_operations, 0);
  const resultsUrl = status.response_body_url || '';
  check('finished batch', resultsUrl.startsWith('http'), `no response_body_url in ${JSON.stringify(status)}`);

  // The results: a plain GET without credentials, a gzipped tar of JSON arrays.
  let res;
  try {
    res = await fetch(resultsUrl);
  } catch (err) {
    fail('download results', `could not fetch ${resultsUrl}: ${err.message}`);
  }
  expectEq('download results', 'HTTP status', res.status, 200);
  const archive = Buffer.from(await res.arrayBuffer());
  const results = [];
  for (const f of untar(zlib.gunzipSync(archive))) {
    if (f.name.endsWith('.json')) results.push(...JSON.parse(f.data.toString('utf8')));
  }
  expectEq('batch results', 'count', results.length, operations.length);
  const byOp = new Map(results.map((r) => [r.operation_id, r]));
  expectEq('batch results', 'operation ids', [...byOp.keys()].sort(), operations.map((o) => o.operation_id).sort());
  const answers = {};
  for (const [opId, r] of byOp) {
    expectEq(`batch result ${opId}`, 'status_code', r.status_code, 200);
    try {
      answers[opId] = JSON.parse(r.response);
    } catch (err) {
      fail(`batch result ${opId}`, `response is not a JSON string (${err.message}): ${JSON.stringify(r.response)}`);
    }
  }
  expectEq('batch result get-audience', 'id', answers['get-audience'].id, listId);
  expectEq('batch result put-new-member', 'email_address', answers['put-new-member'].email_address, pb.email);
  expectEq('batch result patch-member', 'merge_fields.PLAN', (answers['patch-member'].merge_fields || {}).PLAN, 'Enterprise');
  expectEq('batch result list-members', 'total_items', answers['list-members'].total_items, PEOPLE + 1);
  m = await call('read member written by the batch', mc.lists.getListMember(listId, md5(pb.email)));
  expectEq('read member written by the batch', 'status', m.status, 'subscribed');

  console.log(`${NAME}: OK (${checks} checks)`);
}

session().catch((err) => {
  console.error(err instanceof Failure ? err.message : `${NAME}: FAILED: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
