#!/usr/bin/env python3
"""Bad input against a running panel (started by tests/panel_security.rs): forms without
or with a wrong CSRF token, one holder reaching for another's messages, roles mixed up,
path traversal in export names, oversized uploads, wrong passwords in a loop. Each must
be refused with a 4xx and leave nothing changed. Standard library only."""

import argparse
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ADMIN_PASSWORD = "amministratore-sicuro-1"
SECRET_SUBJECT = "Solo per Bob 7f3a"

checks = []


def check(ok, what):
    checks.append((ok, what))
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--password", required=True)
    a = ap.parse_args()
    url, ca, d = a.url, a.ca, a.domain
    alice, bob, carol = f"alice@{d}", f"bob@{d}", f"carol@{d}"

    # Setup through the wizard's forms.
    w = common.Http(url, ca)
    status, _, _ = w.post("/login", {"csrf": "x", "user": alice, "password": a.password})
    check(status == 403, f"a form post without a session is refused ({status})")
    token = w.csrf("/setup")
    code = open(os.path.join(a.data_dir, "panel", "setup-code")).read().strip()
    status, _, _ = w.post("/setup/provider", {"csrf": token, "name": "x", "domains": d, "hostname": "h"})
    check(status == 403, f"wizard steps need the setup code ({status})")
    w.post("/setup/code", {"csrf": token, "code": code})
    token = w.csrf("/setup")
    w.post("/setup/provider", {"csrf": token, "name": "Alfa PEC", "domains": d, "hostname": "localhost"})
    w.post("/setup/admin", {"csrf": token, "password": ADMIN_PASSWORD, "repeat": ADMIN_PASSWORD})
    w.post("/setup/mailboxes", {"csrf": token, "mailboxes": ""})
    status, _, body = w.post("/setup/finish", {"csrf": token})
    check(status == 200 and "Configurazione completata" in body.decode(), "setup completes")

    # Thunderbird autoconfig: public, this box's servers.
    status, headers, body = common.Http(url, ca).get("/.well-known/autoconfig/mail/config-v1.1.xml")
    text = body.decode()
    check(status == 200 and "xml" in headers.get("content-type", "") and f"<domain>{d}</domain>" in text
          and 'type="pop3"' in text and 'type="smtp"' in text, "autoconfig describes the box")
    status, _, body2 = common.Http(url, ca).get("/mail/config-v1.1.xml")
    check(status == 200 and body2 == body, "autoconfig at /mail/config-v1.1.xml too")

    # Security headers and cookie flags.
    h = common.Http(url, ca)
    status, headers, _ = h.request("GET", "/login")
    csp = headers.get("content-security-policy", "")
    check("default-src 'self'" in csp and "frame-ancestors 'none'" in csp, "CSP with frame-ancestors 'none'")
    check(headers.get("x-content-type-options") == "nosniff", "nosniff")
    check(headers.get("referrer-policy") == "no-referrer", "no referrer")
    cookie = headers.get("set-cookie", "")
    check(all(f in cookie for f in ("Secure", "HttpOnly", "SameSite=Strict")), f"session cookie flags ({cookie})")
    before = h.cookies.get("pbx_sid")
    status, headers, _ = h.login(alice, a.password)
    check(status == 303 and headers.get("location") == "/mail", f"alice signs in ({status})")
    check(h.cookies.get("pbx_sid") not in (None, before), "the session id changes at sign-in")

    # carol sends bob a PEC whose subject alice must never see.
    c = common.Http(url, ca)
    c.login(carol, a.password)
    token = c.csrf("/mail/compose")
    status, headers, _ = c.post_multipart("/mail/compose", [("csrf", token), ("to", bob), ("cc", ""),
                                          ("subject", SECRET_SUBJECT), ("body", "riservato"), ("receipt", "completa")], [])
    check(status == 303 and headers.get("location", "").startswith("/mail/track"), f"carol's PEC is accepted ({status})")
    b = common.Http(url, ca)
    b.login(bob, a.password)
    deadline = time.time() + 30
    while time.time() < deadline:
        _, _, body = b.get("/mail?f=INBOX")
        if SECRET_SUBJECT in body.decode():
            break
        time.sleep(0.5)
    check(SECRET_SUBJECT in body.decode(), "bob sees his message")

    # CSRF: missing, wrong, or not first in a multipart form.
    status, _, _ = h.post("/account/notifications", {"to1": "spia@example.org"})
    check(status == 403, f"form without token refused ({status})")
    status, _, _ = h.post("/account/notifications", {"csrf": "forged", "to1": "spia@example.org"})
    check(status == 403, f"form with a wrong token refused ({status})")
    status, _, body = h.get("/account")
    check("spia@example.org" not in body.decode(), "the notice addresses did not change")
    status, _, _ = h.post_multipart("/mail/compose", [("to", bob), ("subject", "forged")], [])
    check(status == 403, f"multipart compose without token refused ({status})")
    token = h.csrf("/mail/compose")
    status, _, _ = h.post_multipart("/mail/compose", [("to", bob), ("csrf", token), ("subject", "forged")], [])
    check(status == 403, f"multipart compose with the token not first refused ({status})")
    _, _, body = h.get("/mail?f=Sent")
    check("forged" not in body.decode(), "nothing was sent")
    status, _, _ = h.request("POST", "/account/notifications", b'{"to1":"x@example.org"}',
                             {"Content-Type": "application/json"})
    check(status == 415, f"other body types refused ({status})")

    # Another holder's messages: no route takes a mailbox; probing uids finds only alice's.
    leaked = False
    for folder in ("INBOX", "Sent"):
        for uid in range(1, 8):
            for path in (f"/mail/msg?f={folder}&uid={uid}&address={bob}",
                         f"/mail/eml?f={folder}&uid={uid}&mailbox={bob}",
                         f"/mail/part?f={folder}&uid={uid}&p=o0&user={bob}"):
                status, _, body = h.get(path)
                if SECRET_SUBJECT.encode() in body or status >= 500:
                    leaked = True
    check(not leaked, "alice never reaches bob's message")
    status, _, _ = h.get("/mail/msg?f=INBOX&uid=999")
    check(status == 404, f"a message that is not hers is 404 ({status})")
    status, _, _ = h.get("/admin/mailboxes")
    check(status == 403, f"a holder cannot open the administration ({status})")

    # Path traversal: names never become paths.
    for path in ("/mail/mbox?f=../../../../etc/passwd", "/mail/eml?f=../../etc&uid=1",
                 "/mail/part?f=INBOX&uid=1&p=../../etc/passwd", "/static/../../../../etc/passwd",
                 "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2f..%2fetc%2fpasswd"):
        status, _, body = h.get(path)
        check(400 <= status < 500 and b"root:" not in body, f"{path} refused ({status})")
    token = h.csrf("/mail")
    status, _, _ = h.post("/mail/folders", {"csrf": token, "name": "../../etc"})
    status, headers, _ = h.get("/mail/mbox?f=../../etc")
    disposition = headers.get("content-disposition", "")
    check(status == 200 and re.search(r'filename="[A-Za-z0-9_-]+\.mbox"', disposition) is not None,
          f"an odd folder name exports under a safe file name ({disposition})")

    # Administrator: CSRF, roles, oversized uploads.
    adm = common.Http(url, ca)
    status, headers, _ = adm.login("admin", ADMIN_PASSWORD)
    check(status == 303 and headers.get("location") == "/admin", f"admin signs in ({status})")
    status, _, _ = adm.post("/admin/mailboxes", {"local": "intruso", "domain": d})
    check(status == 403, f"admin form without token refused ({status})")
    _, _, body = adm.get("/admin/mailboxes")
    check(f"intruso@{d}" not in body.decode(), "no mailbox was created")
    status, _, _ = adm.get("/mail")
    check(status == 403, f"the administrator has no webmail ({status})")
    _, _, before_index = adm.get("/admin/index")
    token = adm.csrf("/admin/index")
    big = b"dn: x\n" + b"#" * (3 * 1024 * 1024)
    status, _, _ = adm.post_multipart("/admin/index/import", [("csrf", token)], [("file", "big.ldif", big)])
    check(status == 413, f"an oversized LDIF upload is refused ({status})")
    _, _, after_index = adm.get("/admin/index")
    strip = lambda b: re.sub(rb'name="csrf" value="[^"]+"', b"", b)
    check(strip(before_index) == strip(after_index), "the providers' index did not change")
    token = h.csrf("/mail/compose")
    status, _, _ = h.post_multipart("/mail/compose", [("csrf", token), ("to", bob), ("subject", "grosso")],
                                    [("attachment", "grosso.bin", os.urandom(2 * 1024 * 1024))])
    check(status == 413, f"an oversized attachment is refused ({status})")
    _, _, body = h.get("/mail?f=Sent")
    check("grosso" not in body.decode(), "nothing was sent")
    status, _, _ = h.post("/account/reference", {"csrf": token, "reference": "a" * (300 * 1024)})
    check(status == 413, f"an oversized form is refused ({status})")

    # Settings go to the override below the data folder, comments kept, and only what
    # differs from the factory file; the factory file is never written; invalid values
    # are refused and change nothing.
    factory_path = os.path.join(os.path.dirname(a.data_dir), "pecbox.toml")
    override_path = os.path.join(a.data_dir, "pecbox.toml")
    factory_before = open(factory_path, "rb").read()
    with open(override_path, "w") as f:
        f.write("# kept by the panel\n")
    token = adm.csrf("/admin/settings")
    _, _, page = adm.get("/admin/settings")
    fields = dict(re.findall(r'<input[^>]*name="([a-z_0-9]+)"[^>]*value="([^"]*)"', page.decode()))
    fields.update({"csrf": token, "smarthost": "relay.example.org:2525", "retention": "36"})
    bad = dict(fields, max_recipients="zero")
    status, _, _ = adm.post("/admin/settings", bad)
    text_before = open(override_path).read()
    check(text_before == "# kept by the panel\n", "invalid settings change nothing")
    status, headers, _ = adm.post("/admin/settings", fields)
    text_after = open(override_path).read()
    written = (status == 303 and 'smarthost = "relay.example.org:2525"' in text_after
               and "months = 36" in text_after and text_after.startswith("# kept by the panel\n"))
    check(written, "settings are written to the override in the data folder, comments kept"
          + ("" if written else f" ({status}):\n{text_after}"))
    check(all(k not in text_after for k in ("name =", "domains", "hostname", "[listen]", "max_message_bytes")),
          "the override holds only what differs from the factory file")
    check(open(factory_path, "rb").read() == factory_before, "the factory file is byte for byte the same")

    # Wrong passwords in a loop: slowed down, never a lockout of the account itself (a
    # third party must not lock its owner out); only the address that keeps failing is
    # refused ([limits] address_failures = 6 in this box's configuration).
    x = common.Http(url, ca, source="127.0.9.1")
    statuses = [x.login("admin", f"sbagliata-{i}")[0] for i in range(5)]
    check(statuses == [401] * 5, f"wrong admin passwords are refused, not locked: {statuses}")
    y = common.Http(url, ca, source="127.0.9.2")
    status, headers, _ = y.login("admin", ADMIN_PASSWORD)
    check(status == 303 and headers.get("location") == "/admin",
          f"5 failures from one address do not stop the admin from another ({status})")
    status, _, _ = x.login(alice, "sbagliata-5")
    check(status == 401, f"the sixth failure from that address ({status})")
    status, _, _ = x.login(alice, a.password)
    check(status == 429, f"then that address is refused, right password or not ({status})")
    z = common.Http(url, ca, source="127.0.9.3")
    status, headers, _ = z.login(f" {alice.upper()} ", a.password)
    check(status == 303, f"alice, spelt with spaces and capitals, signs in from elsewhere ({status})")
    status, headers, _ = common.Http(url, ca, source="127.0.9.3").login(bob, a.password)
    check(status == 303, f"other accounts still sign in ({status})")

    # The language switch follows local paths only; anything else is a 400, never a 500.
    r = common.Http(url, ca)
    status, headers, _ = r.get("/lang?set=en&next=/mail%3Ff%3DINBOX")
    check(status == 303 and headers.get("location") == "/mail?f=INBOX", f"a local path is followed ({status} {headers.get('location')})")
    for bad in ["/%09/evil.example", "//evil.example", "/%5Cevil.example", "%5C%5Cevil.example",
                "/x%0d%0aSet-Cookie:%20a=b", "/%0a", "https://evil.example/", "/%2F/evil.example",
                "javascript:alert(1)", "/%C3%A8", "/a%20b"]:
        status, headers, _ = r.get(f"/lang?set=en&next={bad}")
        check(status == 400 and "location" not in headers, f"next={bad}: 400 ({status} {headers.get('location')})")
    status, _, _ = h.get("/mail")
    check(status == 200, "alice's open session was not disturbed")

    # Sign-out ends the session.
    token = h.csrf("/mail")
    old = dict(h.cookies)
    h.post("/logout", {"csrf": token})
    h.cookies = old
    status, headers, _ = h.get("/mail")
    check(status == 303 and headers.get("location") == "/login", f"a signed-out session is gone ({status})")

    failed = sum(1 for ok, _ in checks if not ok)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
