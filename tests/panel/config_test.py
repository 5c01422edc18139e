#!/usr/bin/env python3
"""The configuration's two layers through the panel of a running pecbox (started by
tests/config_layers.rs), driven over HTTPS like a browser without JavaScript: session
cookie, the form's CSRF token, the wizard's steps. Standard library only.

  wizard    the setup wizard with a new name and hostname; they must land in the
            override below the data folder (the factory file is checked by the caller)
  settings  the wizard unchanged, then the settings page: what differs from the factory
            goes to the override, next to the comments already there
  restarted after a restart: the wizard's settings are in effect (page title, SMTP
            greeting, the settings form)
"""

import argparse
import os
import re
import smtplib
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ADMIN_PASSWORD = "amministratore-sicuro-1"

checks = []


def check(ok, what):
    checks.append((ok, what))
    print(("ok   " if ok else "FAIL ") + what, flush=True)


def fields_of(page):
    """The text inputs of a form page, as a browser would submit them."""
    return dict(re.findall(r'<input[^>]*name="([a-z_0-9]+)"[^>]*value="([^"]*)"', page))


def wizard(a, w, name=None, hostname=None, mailboxes=""):
    token = w.csrf("/setup")
    code = open(os.path.join(a.data_dir, "panel", "setup-code")).read().strip()
    w.post("/setup/code", {"csrf": token, "code": code})
    token = w.csrf("/setup")
    _, _, page = w.get("/setup")
    prefilled = fields_of(page.decode())
    check(prefilled.get("name") == a.expect_name,
          f"the wizard starts from the configuration in effect ({prefilled.get('name')!r})")
    w.post("/setup/provider", {"csrf": token, "name": name or prefilled["name"],
                               "domains": prefilled["domains"],
                               "hostname": hostname or prefilled["hostname"]})
    w.post("/setup/admin", {"csrf": token, "password": ADMIN_PASSWORD, "repeat": ADMIN_PASSWORD})
    w.post("/setup/mailboxes", {"csrf": token, "mailboxes": mailboxes})
    _, _, page = w.get("/setup")
    check(a.override in page.decode(), "the summary says where the settings are saved")
    status, _, body = w.post("/setup/finish", {"csrf": token})
    return status, body.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["wizard", "settings", "restarted"])
    ap.add_argument("--url", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--override", required=True)
    ap.add_argument("--expect-name", required=True)
    ap.add_argument("--name")
    ap.add_argument("--hostname")
    ap.add_argument("--smtp-port", type=int)
    a = ap.parse_args()
    url, ca = a.url, a.ca

    if a.mode == "wizard":
        check(not os.path.exists(a.override), "no override before the wizard")
        status, body = wizard(a, common.Http(url, ca), a.name, a.hostname, "carla")
        check(status == 200 and "Configurazione completata" in body, f"setup completes ({status})")
        check("Salva questo testo" not in body and "<pre" not in body, "no text to save by hand")
        check(re.search(r"Impostazioni salvate in\s*<code>" + re.escape(a.override), body) is not None,
              "the wizard says the settings were saved to the override")
        text = open(a.override).read() if os.path.exists(a.override) else ""
        check(f'name = "{a.name}"' in text and f'hostname = "{a.hostname}"' in text,
              f"the override holds the new name and hostname:\n{text}")
        check("domains" not in text and "[listen]" not in text and "[storage]" not in text,
              "and nothing the wizard left as the factory has it")
        check(re.search(r'<code class="secret">[^<]{12,}</code>', body) is not None,
              "the first mailbox's password is shown")

    elif a.mode == "settings":
        before = open(a.override).read()
        status, body = wizard(a, common.Http(url, ca))
        check(status == 200 and "Configurazione completata" in body, f"setup completes ({status})")
        check(open(a.override).read() == before, "an unchanged wizard leaves the override alone")
        adm = common.Http(url, ca)
        status, headers, _ = adm.login("admin", ADMIN_PASSWORD)
        check(status == 303 and headers.get("location") == "/admin", f"admin signs in ({status})")
        _, _, page = adm.get("/admin")
        check(a.override in page.decode(), "the dashboard names the override beside the factory file")
        token = adm.csrf("/admin/settings")
        _, _, page = adm.get("/admin/settings")
        fields = fields_of(page.decode())
        check(fields.get("name") == a.expect_name, "the settings form shows the override's name")
        bad = dict(fields, csrf=token, max_recipients="zero", smarthost="relay.example.org:2525")
        adm.post("/admin/settings", bad)
        check(open(a.override).read() == before, "invalid settings change nothing")
        good = dict(fields, csrf=token, smarthost="relay.example.org:2525", retention="36",
                    listen_submission="")
        status, headers, _ = adm.post("/admin/settings", good)
        check(status == 303 and headers.get("location") == "/admin/settings", f"settings saved ({status})")
        text = open(a.override).read()
        print(text)
        check(text.startswith(before.rstrip("\n")), "the override's comments and keys stay where they were")
        for want in ('smarthost = "relay.example.org:2525"', "months = 36", 'submission = ""',
                     f'name = "{a.expect_name}"'):
            check(want in text, f"the override now says {want}")
        for unwanted in ("hostname", "domains", "submissions", "smtp =", "pop3s", "max_message_bytes",
                         "max_recipients"):
            check(unwanted not in text, f"the override does not repeat the factory's {unwanted}")
        _, _, page = adm.get("/admin/settings")
        page = page.decode()
        fields = fields_of(page)
        check(fields.get("smarthost") == "relay.example.org:2525" and fields.get("retention") == "36"
              and fields.get("listen_submission") == "", "the form shows what was saved")
        check("dal prossimo riavvio" in page, "and says it applies from the next start")

    else:
        title = re.search(r"<title>([^<]*)</title>", common.Http(url, ca).get("/login")[2].decode())
        check(title is not None and title.group(1).endswith(a.expect_name),
              f"the running panel is {a.expect_name!r} ({title.group(1) if title else None})")
        smtp = smtplib.SMTP(timeout=30)
        code, greeting = smtp.connect("127.0.0.1", a.smtp_port)
        smtp.quit()
        greeting = greeting.decode()
        check(code == 220 and greeting.startswith(a.hostname + " "),
              f"the SMTP greeting names {a.hostname} ({code} {greeting})")
        adm = common.Http(url, ca)
        status, _, _ = adm.login("admin", ADMIN_PASSWORD)
        check(status == 303, f"the wizard's admin password still signs in ({status})")
        _, _, page = adm.get("/admin/settings")
        page = page.decode()
        fields = fields_of(page)
        check(fields.get("name") == a.expect_name and fields.get("hostname") == a.hostname,
              "the settings form shows the wizard's values")
        check("dal prossimo riavvio" not in page, "nothing is waiting for a restart")

    failed = [w for ok, w in checks if not ok]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
