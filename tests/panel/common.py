"""Helpers shared by the panel's browser test and bad-input test: installing what they
need, a tiny SMTP sink standing in for the smarthost, and a small HTTPS client with a
cookie jar (standard library only)."""

import http.client
import os
import re
import shutil
import socketserver
import ssl
import subprocess
import sys
import threading
import urllib.parse
import uuid

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def ensure_browser():
    """Debian's chromium and chromedriver, and selenium from PyPI, when missing."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        print("installing chromium and chromium-driver", file=sys.stderr, flush=True)
        subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, stdout=sys.stderr)
        subprocess.run(
            sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                    "chromium", "chromium-driver", "fonts-dejavu-core"],
            check=True, env=env, stdout=sys.stderr,
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        _run([sys.executable, "-m", "pip", "install", "-q", "selenium"])


class SmtpSink:
    """Accepts every message on 127.0.0.1:port and keeps it (the smarthost)."""

    def __init__(self, port):
        self.messages = []
        self.lock = threading.Lock()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                w = self.wfile.write
                w(b"220 sink ESMTP\r\n")
                mail_from, rcpts = None, []
                while True:
                    line = self.rfile.readline(4096)
                    if not line:
                        return
                    cmd = line.decode("latin-1").strip()
                    verb = cmd.split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        w(b"250-sink\r\n250 8BITMIME\r\n")
                    elif verb == "MAIL":
                        mail_from, rcpts = cmd[10:].strip(), []
                        w(b"250 ok\r\n")
                    elif verb == "RCPT":
                        rcpts.append(cmd[8:].strip().strip("<>"))
                        w(b"250 ok\r\n")
                    elif verb == "DATA":
                        w(b"354 go\r\n")
                        data = []
                        while True:
                            l = self.rfile.readline(1 << 20)
                            if not l or l in (b".\r\n", b".\n"):
                                break
                            data.append(l[1:] if l.startswith(b"..") else l)
                        with sink.lock:
                            sink.messages.append((mail_from, rcpts, b"".join(data)))
                        w(b"250 queued\r\n")
                    elif verb == "QUIT":
                        w(b"221 bye\r\n")
                        return
                    else:
                        w(b"250 ok\r\n")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self):
        with self.lock:
            return list(self.messages)

    def close(self):
        self.server.shutdown()


def tls_context(ca_path):
    ctx = ssl.create_default_context(cafile=ca_path)
    # The box's certificate names its hostname and localhost; we dial 127.0.0.1.
    ctx.check_hostname = False
    return ctx


class Http:
    """HTTPS to the panel with cookies, like a browser without JavaScript."""

    def __init__(self, base, ca_path, source=None):
        u = urllib.parse.urlparse(base)
        self.host, self.port = u.hostname, u.port
        self.ctx = tls_context(ca_path)
        self.cookies = {}
        # a loopback address of our choosing: the panel sees another client
        self.source = (source, 0) if source else None

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60,
                                           source_address=self.source)
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request(method, path, body=body, headers=h)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer (413) before reading all of a large body.
            pass
        r = conn.getresponse()
        data = r.read()
        for k, v in r.getheaders():
            if k.lower() == "set-cookie":
                name, _, rest = v.partition("=")
                value = rest.split(";", 1)[0]
                if "Max-Age=0" in v:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, fields):
        body = urllib.parse.urlencode(fields)
        return self.request("POST", path, body,
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def post_multipart(self, path, fields, files):
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields:
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode()
                         + value.encode() + b"\r\n")
        for name, filename, content in files:
            parts.append(
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body,
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"})

    def csrf(self, path):
        status, _, body = self.get(path)
        m = re.search(r'name="csrf" value="([^"]+)"', body.decode())
        assert m, f"no form token on {path} ({status})"
        return m.group(1)

    def login(self, user, password):
        token = self.csrf("/login")
        return self.post("/login", {"csrf": token, "user": user, "password": password})


def find_pecbox():
    return os.environ.get("PECBOX_BIN") or shutil.which("pecbox")
