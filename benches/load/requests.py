#!/usr/bin/env python3
"""N keep-alive GET requests, like load.lua: a random x-user-id, and on 5% of requests
x-gray-version: v2. For counting instructions per request, where wrk's unbounded load is
no use.   requests.py N PORT"""
import http.client
import random
import sys

n, port = int(sys.argv[1]), int(sys.argv[2])
conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
rng = random.Random(42)
for i in range(n):
    headers = {"x-user-id": str(rng.randint(1, 1000000))}
    if i % 20 == 0:
        headers["x-gray-version"] = "v2"
    conn = conns[i % len(conns)]
    conn.request("GET", "/api/hello", headers=headers)
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        sys.exit(f"request {i}: status {res.status}")
