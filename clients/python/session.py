#!/usr/bin/env python3
"""A realistic session of the official Python client (PyPI `mailchimp-marketing`) against
mailchimp-sim, unchanged except for its address.

    MAILCHIMP_SIM_API_URL=http://127.0.0.1:PORT/3.0 MAILCHIMP_SIM_API_KEY=<32hex>-us6 \
        clients/python/.venv/bin/python clients/python/session.py

Every answer is checked; the first mismatch ends the script with exit status 1 and a message
naming the step. On success it prints `audience: <list_id>` and, last,
`python client session: OK (N checks)`.

The session leaves the audience in this state, which crates/mailchimp-sim/tests/official_clients.rs
checks through the simulator itself (the Node session leaves the same one):
- 501 contacts: 500 upserted (5 one by one, then all 500 in one batch) plus 1 written by a
  /batches operation; person 7 archived, person 9 unsubscribed, the rest subscribed;
- merge fields ORDERS (number) and PLAN (dropdown Free/Pro/Enterprise);
- tag "VIP" on persons 0 and 1, tag "Spring Promo" on persons 100..199.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import time
import urllib.request

import mailchimp_marketing
from mailchimp_marketing.api_client import ApiClientError

NAME = "python client session"
FIRST = ["olivia", "liam", "emma", "noah", "ava", "elijah", "sophia", "lucas", "mia", "mateo",
         "amelia", "levi", "harper", "ezra", "evelyn", "asher", "luna", "leo", "camila", "owen"]
LAST = ["smith", "garcia", "nguyen", "patel", "mueller", "rossi", "kowalski", "tanaka",
        "okafor", "silva", "johansson", "dubois", "murphy", "cohen", "haddad"]
DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "fastmail.com",
           "hotmail.co.uk", "gmx.de", "orange.fr", "comcast.net"]
PLANS = ["Free", "Pro", "Enterprise"]
PEOPLE = 500
BATCH_PERSON = PEOPLE  # the contact written by the /batches job
ARCHIVED = 7
UNSUBSCRIBED = 9

checks = 0


def fail(step, message):
    print(f"{NAME}: FAILED at {step}: {message}", file=sys.stderr)
    sys.exit(1)


def check(step, ok, message):
    global checks
    checks += 1
    if not ok:
        fail(step, message)


def expect_eq(step, what, got, want):
    check(step, got == want, f"{what}: expected {want!r}, got {got!r}")


def person(i):
    """Person i: a stable, realistic address and merge values."""
    first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
    email = f"{first}.{last}{i}@{DOMAINS[i % len(DOMAINS)]}"
    merge = {"FNAME": first.title(), "LNAME": last.title(), "ORDERS": i % 17,
             "PLAN": PLANS[i % len(PLANS)]}
    return email, merge


def md5(email):
    return hashlib.md5(email.lower().encode()).hexdigest()


def problem(err):
    """The problem document of an ApiClientError (the client hands application/problem+json over
    as text, since it only parses bodies whose content type contains application/json)."""
    body = err.text
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except ValueError:
            return {}
    return body if isinstance(body, dict) else {}


def call(step, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ApiClientError as e:
        if e.status_code is None:
            fail(step, f"could not reach the API: {e.text}")
        fail(step, f"the API answered {e.status_code}: {e.text}")


def status_of(res):
    """The status of an answer without a body: the client returns the requests.Response."""
    return getattr(res, "status_code", None)


def main():
    url = os.environ.get("MAILCHIMP_SIM_API_URL")
    key = os.environ.get("MAILCHIMP_SIM_API_KEY")
    if not url or not key:
        fail("setup", "set MAILCHIMP_SIM_API_URL (e.g. http://127.0.0.1:PORT/3.0) and MAILCHIMP_SIM_API_KEY")

    client = mailchimp_marketing.Client()
    client.set_config({"api_key": key, "server": key.rsplit("-", 1)[-1]})
    # The one change from talking to Mailchimp: the address.
    client.api_client.host = url.rstrip("/")

    # Ping.
    pong = call("ping", client.ping.get)
    expect_eq("ping", "health_status", pong.get("health_status"), "Everything's Chimpy!")

    # An audience.
    audience = call("create audience", client.lists.create_list, {
        "name": "Riverside Bikes Newsletter",
        "contact": {"company": "Riverside Bikes", "address1": "210 Canal Street", "city": "Portland",
                    "state": "OR", "zip": "97209", "country": "US"},
        "permission_reminder": "You signed up for news when you bought a bike from us.",
        "campaign_defaults": {"from_name": "Riverside Bikes", "from_email": "news@riversidebikes.co",
                              "subject": "Riverside news", "language": "en"},
        "email_type_option": False,
    })
    list_id = audience.get("id")
    check("create audience", isinstance(list_id, str) and list_id != "", f"no id in {audience!r}")
    expect_eq("create audience", "name", audience.get("name"), "Riverside Bikes Newsletter")
    expect_eq("create audience", "stats.member_count", audience.get("stats", {}).get("member_count"), 0)
    print(f"audience: {list_id}")

    # Merge fields: a number and a dropdown.
    orders = call("merge field ORDERS", client.lists.add_list_merge_field, list_id,
                  {"name": "Lifetime orders", "type": "number", "tag": "ORDERS"})
    expect_eq("merge field ORDERS", "type", orders.get("type"), "number")
    expect_eq("merge field ORDERS", "tag", orders.get("tag"), "ORDERS")
    plan = call("merge field PLAN", client.lists.add_list_merge_field, list_id,
                {"name": "Plan", "type": "dropdown", "tag": "PLAN", "options": {"choices": PLANS}})
    expect_eq("merge field PLAN", "type", plan.get("type"), "dropdown")
    expect_eq("merge field PLAN", "options.choices", plan.get("options", {}).get("choices"), PLANS)

    # Upsert five members one by one (PUT with status_if_new), then one again as an update.
    for i in range(5):
        email, merge = person(i)
        m = call(f"set member {i}", client.lists.set_list_member, list_id, md5(email),
                 {"email_address": email, "status_if_new": "subscribed", "merge_fields": merge})
        expect_eq(f"set member {i}", "id", m.get("id"), md5(email))
        expect_eq(f"set member {i}", "status", m.get("status"), "subscribed")
        expect_eq(f"set member {i}", "merge_fields.ORDERS", m.get("merge_fields", {}).get("ORDERS"), merge["ORDERS"])
        expect_eq(f"set member {i}", "merge_fields.PLAN", m.get("merge_fields", {}).get("PLAN"), merge["PLAN"])
    email0, merge0 = person(0)
    m = call("set member 0 again", client.lists.set_list_member, list_id, md5(email0),
             {"email_address": email0, "status_if_new": "unsubscribed",
              "merge_fields": {"ORDERS": 42, "PLAN": "Enterprise"}})
    expect_eq("set member 0 again", "status (status_if_new is for new members only)", m.get("status"), "subscribed")
    expect_eq("set member 0 again", "merge_fields.ORDERS", m.get("merge_fields", {}).get("ORDERS"), 42)
    expect_eq("set member 0 again", "merge_fields.FNAME (kept)", m.get("merge_fields", {}).get("FNAME"), merge0["FNAME"])

    # 500 members in one batch upsert: 5 already there, 495 new.
    members = []
    for i in range(PEOPLE):
        email, merge = person(i)
        members.append({"email_address": email, "status": "subscribed", "merge_fields": merge})
    batch = call("batch upsert", client.lists.batch_list_members, list_id,
                 {"members": members, "update_existing": True})
    expect_eq("batch upsert", "error_count", batch.get("error_count"), 0)
    expect_eq("batch upsert", "total_created", batch.get("total_created"), PEOPLE - 5)
    expect_eq("batch upsert", "total_updated", batch.get("total_updated"), 5)
    expect_eq("batch upsert", "len(new_members)", len(batch.get("new_members", [])), PEOPLE - 5)

    # A refused address comes back in errors[], not as a failed call.
    bad = call("batch upsert of a fake-looking address", client.lists.batch_list_members, list_id,
               {"members": [{"email_address": "someone@example.com", "status": "subscribed"}]})
    expect_eq("batch upsert of a fake-looking address", "error_count", bad.get("error_count"), 1)
    expect_eq("batch upsert of a fake-looking address", "total_created", bad.get("total_created"), 0)

    # Tags on single members: 204 No Content.
    for i in (0, 1):
        email, _ = person(i)
        res = call(f"tag member {i}", client.lists.update_list_member_tags, list_id, md5(email),
                   {"tags": [{"name": "VIP", "status": "active"}, {"name": "Beta", "status": "active"}]})
        expect_eq(f"tag member {i}", "HTTP status", status_of(res), 204)
    email1, _ = person(1)
    res = call("untag member 1", client.lists.update_list_member_tags, list_id, md5(email1),
               {"tags": [{"name": "Beta", "status": "inactive"}]})
    expect_eq("untag member 1", "HTTP status", status_of(res), 204)
    tags = call("member 1 tags", client.lists.get_list_member_tags, list_id, md5(email1))
    expect_eq("member 1 tags", "names", sorted(t["name"] for t in tags.get("tags", [])), ["VIP"])

    # A tag created as an empty static segment, then 100 members added in one batch.
    seg = call("create tag", client.lists.create_segment, list_id, {"name": "Spring Promo", "static_segment": []})
    seg_id = seg.get("id")
    expect_eq("create tag", "type", seg.get("type"), "static")
    expect_eq("create tag", "member_count", seg.get("member_count"), 0)
    promo = [person(i)[0] for i in range(100, 200)]
    added = call("batch segment members", client.lists.batch_segment_members,
                 {"members_to_add": promo, "members_to_remove": []}, list_id, seg_id)
    expect_eq("batch segment members", "total_added", added.get("total_added"), 100)
    expect_eq("batch segment members", "error_count", added.get("error_count"), 0)
    seg = call("get tag", client.lists.get_segment, list_id, seg_id)
    expect_eq("get tag", "member_count", seg.get("member_count"), 100)

    # Page through all members with count/offset: each seen once, total_items on every page.
    seen = {}
    offset, page_size, pages = 0, 120, 0
    while True:
        page = call(f"members page at {offset}", client.lists.get_list_members_info, list_id,
                    count=page_size, offset=offset,
                    fields=["members.id", "members.email_address", "members.status", "total_items"])
        pages += 1
        expect_eq(f"members page at {offset}", "total_items", page.get("total_items"), PEOPLE)
        batch_members = page.get("members", [])
        for m in batch_members:
            check(f"members page at {offset}", m["id"] not in seen, f"member {m['email_address']} seen twice")
            seen[m["id"]] = m["email_address"]
        if len(batch_members) < page_size:
            break
        offset += page_size
    expect_eq("paging", "pages", pages, 5)
    expect_eq("paging", "members seen", sorted(seen.values()), sorted(person(i)[0] for i in range(PEOPLE)))

    # Archive one member: 204, then it reads as archived.
    email_a, _ = person(ARCHIVED)
    res = call("archive member", client.lists.delete_list_member, list_id, md5(email_a))
    expect_eq("archive member", "HTTP status", status_of(res), 204)
    m = call("read archived member", client.lists.get_list_member, list_id, md5(email_a))
    expect_eq("read archived member", "status", m.get("status"), "archived")

    # Compliance: unsubscribe a member, then try to subscribe it again -> 400.
    email_u, _ = person(UNSUBSCRIBED)
    m = call("unsubscribe member", client.lists.update_list_member, list_id, md5(email_u), {"status": "unsubscribed"})
    expect_eq("unsubscribe member", "status", m.get("status"), "unsubscribed")
    try:
        client.lists.set_list_member(list_id, md5(email_u), {"email_address": email_u, "status": "subscribed"})
        fail("resubscribe member", "resubscribing an unsubscribed member was accepted")
    except ApiClientError as e:
        expect_eq("resubscribe member", "HTTP status", e.status_code, 400)
        doc = problem(e)
        expect_eq("resubscribe member", "title", doc.get("title"), "Member In Compliance State")
        expect_eq("resubscribe member", "status in body", doc.get("status"), 400)
        check("resubscribe member", email_u in str(doc.get("detail", "")), f"detail does not name the address: {doc!r}")
    m = call("read unsubscribed member", client.lists.get_list_member, list_id, md5(email_u))
    expect_eq("read unsubscribed member", "status", m.get("status"), "unsubscribed")

    # A /batches job: operations whose bodies are JSON strings.
    email_b, merge_b = person(BATCH_PERSON)
    email2, _ = person(2)
    operations = [
        {"method": "GET", "path": f"/lists/{list_id}", "operation_id": "get-audience"},
        {"method": "PUT", "path": f"/lists/{list_id}/members/{md5(email_b)}", "operation_id": "put-new-member",
         "body": json.dumps({"email_address": email_b, "status_if_new": "subscribed", "merge_fields": merge_b})},
        {"method": "PATCH", "path": f"/lists/{list_id}/members/{md5(email2)}", "operation_id": "patch-member",
         "body": json.dumps({"merge_fields": {"PLAN": "Enterprise"}})},
        {"method": "GET", "path": f"/lists/{list_id}/members", "operation_id": "list-members",
         "params": {"count": "5", "fields": "total_items,members.email_address"}},
    ]
    started = call("start batch", client.batches.start, {"operations": operations})
    batch_id = started.get("id")
    check("start batch", isinstance(batch_id, str) and batch_id != "", f"no id in {started!r}")
    expect_eq("start batch", "total_operations", started.get("total_operations"), len(operations))
    deadline = time.monotonic() + 60
    status = started
    while status.get("status") != "finished":
        check("poll batch", time.monotonic() < deadline, f"still {status.get('status')!r} after 60 s")
        time.sleep(0.1)
        status = call("poll batch", client.batches.status, batch_id)
    expect_eq("finished batch", "finished_operations", status.get("finished_operations"), len(operations))
    expect_eq("finished batch", "errored_operations", status.get("errored_operations"), 0)
    results_url = status.get("response_body_url", "")
    check("finished batch", results_url.startswith("http"), f"no response_body_url in {status!r}")

    # The results: a plain GET without credentials, a gzipped tar of JSON arrays.
    with urllib.request.urlopen(results_url, timeout=30) as r:
        expect_eq("download results", "HTTP status", r.status, 200)
        archive = r.read()
    results = []
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive)), mode="r:") as tar:
        for entry in tar.getmembers():
            if entry.isfile() and entry.name.endswith(".json"):
                results.extend(json.load(tar.extractfile(entry)))
    expect_eq("batch results", "count", len(results), len(operations))
    by_op = {r.get("operation_id"): r for r in results}
    expect_eq("batch results", "operation ids", sorted(by_op), sorted(o["operation_id"] for o in operations))
    answers = {}
    for op_id, r in by_op.items():
        expect_eq(f"batch result {op_id}", "status_code", r.get("status_code"), 200)
        try:
            answers[op_id] = json.loads(r.get("response"))
        except (TypeError, ValueError) as e:
            fail(f"batch result {op_id}", f"response is not a JSON string ({e}): {r.get('response')!r}")
    expect_eq("batch result get-audience", "id", answers["get-audience"].get("id"), list_id)
    expect_eq("batch result put-new-member", "email_address", answers["put-new-member"].get("email_address"), email_b)
    expect_eq("batch result patch-member", "merge_fields.PLAN",
              answers["patch-member"].get("merge_fields", {}).get("PLAN"), "Enterprise")
    expect_eq("batch result list-members", "total_items", answers["list-members"].get("total_items"), PEOPLE + 1)
    m = call("read member written by the batch", client.lists.get_list_member, list_id, md5(email_b))
    expect_eq("read member written by the batch", "status", m.get("status"), "subscribed")

    print(f"{NAME}: OK ({checks} checks)")


if __name__ == "__main__":
    main()
