#!/usr/bin/env python3
"""The soak's API load (scripts/soak.sh): consent reads and writes over mutual TLS (the dev `io`
client certificate), keep-alive, a few threads, at a given rate (0 = as fast as they go: the
calibration). Standard library only. Seeds its citizens' consent first, then runs the mix
GET /consent/status (70 %), GET /consent (20 %), POST /consent (10 %) flipping Allow and Deny of
a citizen of the thread's own share (setting the value already set would be a 400 1005).
Rewrites --stats every 5 s with the counts so far ({"sent", "ok", "statuses", "errors", "rate"})
and prints the final ones. Every answer but 200 is unexpected."""
import argparse
import http.client
import json
import random
import ssl
import threading
import time

ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23]


def tax_code(n):
    """A valid fiscal code for citizen n (the check character computed, as tkm-bench does)."""
    letters = ""
    for _ in range(6):
        letters += chr(ord("A") + n % 26)
        n //= 26
    body = letters + "85T10A562"
    total = 0
    for i, c in enumerate(body):
        v = ord(c) - (ord("0") if c.isdigit() else ord("A"))
        total += ODD[v] if i % 2 == 0 else v
    return body + chr(ord("A") + total % 26)


p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--seconds", type=float, required=True)
p.add_argument("--rate", type=float, default=0.0)
p.add_argument("--threads", type=int, default=8)
p.add_argument("--citizens", type=int, default=200)
p.add_argument("--base", type=int, default=7_000_000)
p.add_argument("--stats", required=True)
a = p.parse_args()

ctx = ssl.create_default_context(cafile="certs/dev/ca.crt")
ctx.load_cert_chain("certs/dev/io.pem")
codes = [tax_code(a.base + i) for i in range(a.citizens)]
lock = threading.Lock()
stats = {"sent": 0, "ok": 0, "statuses": {}, "errors": 0, "rate": 0.0}


def call(conn, method, path, tc, body=None):
    headers = {"Tax-Code": tc, "Client-Id": "soak"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    r.read()
    return r.status


def worker(index, start, stop, seed_only):
    conn = http.client.HTTPSConnection("localhost", a.port, context=ctx, timeout=30)
    rnd = random.Random(index)
    own = {tc: "Allow" for tc in codes[index :: a.threads]}
    k = index
    while True:
        if seed_only:
            if k >= len(codes):
                return
            req = ("POST", "/consent", codes[k], '{"consent": "Allow"}')
        else:
            due = start + k / a.rate if a.rate > 0 else 0
            now = time.monotonic()
            if now >= stop or due >= stop:
                return
            if due > now:
                time.sleep(due - now)
            tc, roll = rnd.choice(codes), rnd.random()
            if roll < 0.7:
                req = ("GET", "/consent/status?service=BPD", tc, None)
            elif roll < 0.9:
                req = ("GET", "/consent", tc, None)
            elif own:
                tc = rnd.choice(list(own))
                own[tc] = "Deny" if own[tc] == "Allow" else "Allow"
                req = ("POST", "/consent", tc, json.dumps({"consent": own[tc]}))
            else:
                req = ("GET", "/consent", tc, None)
        try:
            status = call(conn, *req)
            with lock:
                stats["sent"] += 1
                stats["ok"] += status == 200
                stats["statuses"][str(status)] = stats["statuses"].get(str(status), 0) + 1
        except (OSError, http.client.HTTPException):
            with lock:
                stats["sent"] += 1
                stats["errors"] += 1
            conn.close()
            conn = http.client.HTTPSConnection("localhost", a.port, context=ctx, timeout=30)
        k += a.threads


def run(seed_only):
    start = time.monotonic()
    stop = start + a.seconds
    threads = [threading.Thread(target=worker, args=(i, start, stop, seed_only)) for i in range(a.threads)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(min(5.0, max(0.1, stop - time.monotonic())))
        save(start)
    for t in threads:
        t.join()
    save(start)


def save(start):
    with lock:
        stats["rate"] = round(stats["sent"] / max(0.001, time.monotonic() - start), 1)
        with open(a.stats, "w") as f:
            json.dump(stats, f)


run(seed_only=True)
stats.update(sent=0, ok=0, statuses={}, errors=0)
run(seed_only=False)
print(json.dumps(stats))
