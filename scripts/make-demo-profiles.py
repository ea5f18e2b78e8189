#!/usr/bin/env python3
"""Writes crates/segsync/data/demo-profiles.csv: the sample `segsync demo` imports.

Deterministic (fixed seed), so the file only changes when this script does. 3,000 realistic
profiles from Romania, Italy, France, Germany and Spain: names with accents, plus-addressing,
a few addresses repeated in another case (duplicates to merge), and a few invalid addresses.
"""
import csv
import os
import random
import unicodedata

rng = random.Random(20261122)
first = {
    "RO": ["Ana", "Ioana", "Mihai", "Ștefan", "Andreea", "Răzvan", "Bianca", "Călin", "Irina", "Tudor"],
    "IT": ["Giulia", "Luca", "Chiara", "Niccolò", "Francesca", "Matteo", "Sofia", "Gianluca", "Martina", "Lorenzo"],
    "FR": ["Amélie", "Étienne", "Chloé", "Hélène", "Loïc", "Léa", "Théo", "Zoé", "Benoît", "Céline"],
    "DE": ["Jürgen", "Lena", "Jörg", "Anja", "Björn", "Sören", "Käthe", "Maximilian", "Ute", "Uwe"],
    "ES": ["José", "Lucía", "Sofía", "Martín", "Inés", "Álvaro", "Begoña", "Íñigo", "Nuria", "Raúl"],
}
last = {
    "RO": ["Popescu", "Ionescu", "Dumitrescu", "Stănescu", "Gheorghiu", "Țurcanu", "Mureșan", "Vlădescu"],
    "IT": ["Rossi", "Bianchi", "Esposito", "Ricci", "Marino", "Greco", "Bruno", "D'Angelo"],
    "FR": ["Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Girard", "Rousseau", "Lémieux"],
    "DE": ["Müller", "Schröder", "Groß", "Weiß", "Schäfer", "Köhler", "Bäcker", "Fuchs"],
    "ES": ["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez"],
}
cities = {
    "RO": ["București", "Cluj-Napoca", "Iași", "Brașov", "Timișoara"],
    "IT": ["Milano", "Roma", "Napoli", "Torino", "Firenze"],
    "FR": ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes"],
    "DE": ["Berlin", "München", "Köln", "Düsseldorf", "Nürnberg"],
    "ES": ["Madrid", "Barcelona", "Sevilla", "Málaga", "Bilbao"],
}
domains = {
    "RO": ["yahoo.ro", "gmail.com", "posta.ro"],
    "IT": ["libero.it", "gmail.com", "tiscali.it"],
    "FR": ["orange.fr", "free.fr", "gmail.com"],
    "DE": ["web.de", "gmx.de", "t-online.de"],
    "ES": ["telefonica.net", "gmail.com", "hotmail.es"],
}
def ascii(s):
    """The name as people write it in an address: no accents, no apostrophes, lower case."""
    plain = unicodedata.normalize("NFKD", s.replace("ß", "ss"))
    return "".join(c for c in plain if c.isascii() and c.isalnum()).lower()


rows = []
for i in range(1, 3001):
    country = rng.choice(list(first))
    fn, ln = rng.choice(first[country]), rng.choice(last[country])
    user = f"{ascii(fn)}.{ascii(ln)}{rng.randint(1, 999)}"
    if rng.random() < 0.05:
        user += "+news"
    email = f"{user}@{rng.choice(domains[country])}"
    ltv = round(rng.lognormvariate(5.5, 1.0), 2)
    orders = max(1, int(ltv // rng.randint(40, 120)))
    month, day = rng.randint(1, 10), rng.randint(1, 28)
    rows.append({
        "customer_id": f"C{i:05d}",
        "email": email,
        "first_name": fn,
        "last_name": ln,
        "country": country,
        "city": rng.choice(cities[country]),
        "lifetime_value": ltv,
        "orders": orders,
        "last_order_date": f"2026-{month:02d}-{day:02d}",
        "updated_at": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
    })

# The same person twice, the address written in another case: one member in Mailchimp.
for n in range(40):
    src = rows[rng.randrange(len(rows))]
    dup = dict(src)
    dup["customer_id"] = f"D{n + 1:05d}"
    dup["email"] = src["email"].upper() if n % 2 else src["email"].capitalize()
    dup["lifetime_value"] = round(float(src["lifetime_value"]) + 10, 2)
    rows.append(dup)
# Addresses Mailchimp would refuse: reported, never sent.
for n, bad in enumerate(["ana.popescu@", "luca rossi@libero.it", "no-at-sign.gmail.com", "jose@@gmail.com", "chloe@orange", ""]):
    r = dict(rows[n])
    r["customer_id"] = f"X{n + 1:05d}"
    r["email"] = bad
    rows.append(r)
rng.shuffle(rows)

out = os.path.join(os.path.dirname(__file__), "..", "crates", "segsync", "data", "demo-profiles.csv")
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
print(f"wrote {len(rows)} profiles to {os.path.normpath(out)}")
