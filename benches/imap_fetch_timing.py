#!/usr/bin/env python3
"""Times FETCH of all headers and all bodies on IMAPS servers (benches/imap_vs_dovecot.rs).

usage: imap_fetch_timing.py RUNS NAME:PORT:USER:PASSWORD...
A minimal reader (lines, literals skipped by their length) so that the client's own
parsing weighs as little as possible. Prints one JSON object: per server and query the
best of RUNS wall-clock seconds, the literal bytes and FETCH responses received.
"""
import json
import socket
import ssl
import sys
import time

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class Conn:
    def __init__(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=600)
        self.s = ctx.wrap_socket(raw)
        self.buf = bytearray()
        self.n = 0
        self.line()  # greeting

    def fill(self):
        chunk = self.s.recv(1 << 20)
        if not chunk:
            raise EOFError("server closed")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return out
            self.fill()

    def skip(self, n):
        while len(self.buf) < n:
            self.fill()
        del self.buf[:n]

    def cmd(self, text):
        """Runs a command: (tagged line, literal bytes, untagged FETCH count)."""
        self.n += 1
        tag = b"b%d" % self.n
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        literal_bytes = fetches = 0
        while True:
            l = self.line()
            if l.startswith(b"* ") and b" FETCH " in l[:24]:
                fetches += 1
            while l.endswith(b"}") and b"{" in l:
                size = int(l[l.rindex(b"{") + 1 : -1])
                self.skip(size)
                literal_bytes += size
                l = self.line()
            if l.startswith(tag + b" "):
                if not l.startswith(tag + b" OK"):
                    raise RuntimeError(l)
                return l, literal_bytes, fetches


queries = {
    "headers": "FETCH 1:* (BODY.PEEK[HEADER])",
    "bodies": "FETCH 1:* (BODY.PEEK[])",
}
runs = int(sys.argv[1])
result = {}
for spec in sys.argv[2:]:
    name, port, user, password = spec.split(":", 3)
    c = Conn(int(port))
    c.cmd('LOGIN "%s" "%s"' % (user, password))
    c.cmd("SELECT INBOX")
    # warm-up: indexes, caches, page cache
    c.cmd("FETCH 1:* (FLAGS)")
    for q in queries.values():
        c.cmd(q)
    result[name] = {}
    for key, q in queries.items():
        best = None
        for _ in range(runs):
            t = time.perf_counter()
            _, size, count = c.cmd(q)
            dt = time.perf_counter() - t
            best = dt if best is None else min(best, dt)
        result[name][key] = {"seconds": best, "bytes": size, "messages": count}
    c.cmd("LOGOUT")
print(json.dumps(result))
