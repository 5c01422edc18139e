#!/usr/bin/env python3
"""The panel in a real headless Chromium (selenium + Debian's chromedriver), against two
running pecbox daemons started by tests/panel_browser.rs: setup wizard, a mailbox made
by the administrator, a PEC with ricevuta breve to two recipients of the other box whose
state reaches "consegnata", the receipt, .eml export checked by `pecbox verify`, .mbox
export read by Python's mailbox module, a password change, and a notice of new PEC
arriving at an SMTP sink. Screenshots go to --shots."""

import argparse
import email
import email.policy
import mailbox
import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ADMIN_PASSWORD = "amministratore-sicuro-1"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--peer-ca", required=True)
    ap.add_argument("--peer-config", required=True)
    ap.add_argument("--domain", required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--cc", required=True)
    ap.add_argument("--peer-submissions", type=int, required=True)
    ap.add_argument("--peer-password", required=True)
    ap.add_argument("--sink-port", type=int, required=True)
    ap.add_argument("--pecbox", required=True)
    ap.add_argument("--shots", required=True)
    a = ap.parse_args()

    common.ensure_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import WebDriverException

    os.makedirs(a.shots, exist_ok=True)
    sink = common.SmtpSink(a.sink_port)
    opts = webdriver.ChromeOptions()
    opts.binary_location = common.CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--ignore-certificate-errors", "--disable-dev-shm-usage", "--window-size=1280,900",
                 "--lang=it-IT"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(common.CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    checks = []

    def check(ok, what):
        checks.append((ok, what))
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            shot("failure")
            raise SystemExit(f"failed: {what}\nURL {driver.current_url}\n{driver.find_element(By.TAG_NAME, 'body').text[:3000]}")

    def shot(name, height=None):
        if height:
            driver.set_window_size(1280, height)
        driver.save_screenshot(os.path.join(a.shots, name + ".png"))
        if height:
            driver.set_window_size(1280, 900)

    def go(path):
        driver.get(a.url + path)

    def fill(name, value):
        el = driver.find_element(By.NAME, name)
        el.clear()
        el.send_keys(value)

    def navigating(action):
        """Runs `action` (a click) and waits until the next page has loaded."""
        driver.execute_script("window.__pbx_old_page = true;")
        action()
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if driver.execute_script(
                        "return !window.__pbx_old_page && document.readyState === 'complete'"):
                    return
            except WebDriverException:
                pass
            time.sleep(0.05)
        raise SystemExit(f"no new page after a click on {driver.current_url}")

    def submit(action):
        button = driver.find_element(By.CSS_SELECTOR, f'form[action="{action}"] button[type=submit]')
        navigating(button.click)

    def click(css):
        navigating(driver.find_element(By.CSS_SELECTOR, css).click)

    def text():
        return driver.find_element(By.TAG_NAME, "body").text

    def path():
        return driver.current_url[len(a.url):]

    def http_session():
        h = common.Http(a.url, a.ca)
        h.cookies["pbx_sid"] = driver.get_cookie("pbx_sid")["value"]
        return h

    def login(user, password):
        go("/login")
        fill("user", user)
        fill("password", password)
        submit("/login")

    def logout():
        submit("/logout")

    try:
        # --- the wizard on a fresh box --------------------------------------------
        go("/")
        check(path().startswith("/setup"), "a fresh box leads to the setup wizard")
        code = open(os.path.join(a.data_dir, "panel", "setup-code")).read().strip()
        shot("00-wizard-code")
        fill("code", "WRONG-CODE")
        submit("/setup/code")
        check("Codice non valido" in text(), "a wrong setup code is refused")
        fill("code", code)
        submit("/setup/code")
        check(driver.find_element(By.NAME, "domains").get_attribute("value") == a.domain,
              "the provider step is prefilled from the configuration")
        shot("01-wizard-provider")
        submit("/setup/provider")
        fill("password", ADMIN_PASSWORD)
        fill("repeat", ADMIN_PASSWORD)
        submit("/setup/admin")
        fill("mailboxes", "alice")
        submit("/setup/mailboxes")
        check("alice@" + a.domain in text(), "the summary lists the first mailbox")
        submit("/setup/finish")
        check("Configurazione completata" in text(), "the wizard completes")
        alice = "alice@" + a.domain
        row = driver.find_element(By.CSS_SELECTOR, "table.created tbody tr")
        check(alice in row.text, "the wizard created alice")
        alice_password = row.find_element(By.CSS_SELECTOR, "code.secret").text.strip()
        check(len(alice_password) >= 12, "alice's generated password is shown once")
        check(bool(driver.find_elements(By.CSS_SELECTOR, 'a[href="/ca.pem"]'))
              and bool(driver.find_elements(By.CSS_SELECTOR, 'a[href="/index-entry.ldif"]')),
              "the CA certificate and index entry are offered")
        shot("02-wizard-done")
        h = common.Http(a.url, a.ca)
        status, _, body = h.get("/index-entry.ldif")
        check(status == 200 and b"providerName:" in body, "the index entry downloads")
        status, _, body = h.get("/ca.pem")
        check(status == 200 and b"BEGIN CERTIFICATE" in body, "the CA certificate downloads")

        # --- administration ------------------------------------------------------
        go("/login")
        shot("02b-login")
        login("admin", "not-the-password")
        check("Credenziali non valide" in text(), "a wrong admin password is refused")
        login("admin", ADMIN_PASSWORD)
        check(path() == "/admin", "the administrator lands on the dashboard")
        check("Servizi in ascolto" in text(), "the dashboard shows the listeners")
        summary = driver.find_element(By.CSS_SELECTOR, ".registro-summary").text
        check(" eventi, 1 mese (" in summary and "ultimo mese sigillato: —" in summary,
              f"the dashboard sums up the registro dei log ({summary})")
        shot("03-admin-dashboard")
        go("/admin/mailboxes")
        fill("local", "mario")
        fill("quota", "1G")
        fill("password", "password-di-mario")
        submit("/admin/mailboxes")
        check("Casella creata: mario@" + a.domain in text(), "the administrator creates a mailbox")
        check(bool(driver.find_elements(By.CSS_SELECTOR, f'tr[data-address="mario@{a.domain}"]')),
              "the new mailbox is listed")
        shot("04-admin-mailboxes")
        go("/admin/index")
        ldif = subprocess.run([a.pecbox, "--config", a.peer_config, "index", "self"],
                              capture_output=True, check=True).stdout
        ldif_file = os.path.join(tempfile.mkdtemp(), "beta.ldif")
        with open(ldif_file, "wb") as f:
            f.write(ldif)
        driver.find_element(By.NAME, "file").send_keys(ldif_file)
        submit("/admin/index/import")
        check("Voci importate: Beta PEC" in text(), "the administrator imports an LDIF index entry")
        shot("04b-admin-index", height=1100)
        for page in ("/admin/index", "/admin/certs", "/admin/queue", "/admin/log", "/admin/settings", "/admin/update"):
            go(page)
            check(driver.find_elements(By.CSS_SELECTOR, ".page-head h1") != [], f"{page} renders")
            if page == "/admin/settings":
                check(os.path.join(a.data_dir, "pecbox.toml") in text(),
                      "the settings page says they are saved in the data folder")
                shot("04c-admin-settings", height=1300)
        go("/admin/certs")
        shot("05-admin-certs")
        logout()

        # --- the holder: compose a PEC with ricevuta breve ------------------------
        login(alice, alice_password)
        check(path().startswith("/mail"), "the holder lands in the webmail")
        go("/admin")
        check("403" in driver.title or "Forbidden" in text(), "a holder cannot open the administration")
        go("/mail/compose")
        fill("to", a.to)
        fill("cc", a.cc)
        fill("subject", "Contratto di fornitura 2026")
        fill("body", "Buongiorno,\nin allegato il contratto firmato.\n\nCordiali saluti\nAlice")
        attachment = os.path.join(tempfile.mkdtemp(), "contratto.txt")
        with open(attachment, "w") as f:
            f.write("Contratto di fornitura\n" * 40)
        driver.find_element(By.NAME, "attachment").send_keys(attachment)
        driver.find_element(By.CSS_SELECTOR, 'input[name="receipt"][value="breve"]').click()
        shot("06-compose")
        submit("/mail/compose")
        check("Messaggio accettato" in text(), "the punto di accesso accepts the message")
        check(path().startswith("/mail/msg?f=Sent"), "compose lands on the sent message")
        sent_url = path()
        deadline = time.time() + 90
        states = []
        while time.time() < deadline:
            go(sent_url)
            states = [e.get_attribute("data-state")
                      for e in driver.find_elements(By.CSS_SELECTOR, ".delivery .rcpt-state")]
            if len(states) == 2 and all(s == "consegnata" for s in states):
                break
            time.sleep(1)
        check(states == ["consegnata", "consegnata"], f"every recipient reaches consegnata ({states})")
        shot("07-sent-with-receipts", height=1500)

        # --- the receipt ---------------------------------------------------------
        links = [e.get_attribute("href") for e in
                 driver.find_elements(By.CSS_SELECTOR, ".related a.row") if "consegna" in e.get_attribute("innerHTML")]
        check(len(links) >= 2, "the sent message lists its delivery receipts")
        kinds = []
        for href in links:
            driver.get(href)
            kinds.append(driver.find_element(By.CSS_SELECTOR, ".msg-head .badge").get_attribute("data-kind"))
            if kinds[-1] == "avvenuta-consegna-breve":
                breve_url = href
        check("avvenuta-consegna-breve" in kinds, f"the To recipient's receipt is breve ({kinds})")
        check("avvenuta-consegna-sintetica" in kinds, f"the Cc recipient's receipt is sintetica ({kinds})")
        driver.get(breve_url)
        check("valida" in driver.find_element(By.CSS_SELECTOR, ".msg-meta").text, "the receipt's signature is valid")
        check("Dati di certificazione" in text() and a.to in text(), "the daticert facts are shown")
        shot("08-receipt", height=1400)

        # --- exports ---------------------------------------------------------------
        eml_href = driver.find_element(By.XPATH, '//a[contains(@href, "/mail/eml?")]').get_attribute("href")
        h = http_session()
        status, headers, eml = h.get(eml_href[len(a.url):])
        check(status == 200 and "attachment" in headers.get("content-disposition", ""), "the .eml downloads")
        eml_file = os.path.join(tempfile.mkdtemp(), "ricevuta.eml")
        with open(eml_file, "wb") as f:
            f.write(eml)
        v = subprocess.run([a.pecbox, "verify", "--json", "--ca", a.ca, "--ca", a.peer_ca, eml_file],
                           capture_output=True, text=True)
        check(v.returncode == 0 and "avvenuta-consegna-breve" in v.stdout, f"pecbox verify passes the .eml: {v.stdout}{v.stderr}")
        status, _, mbox_bytes = h.get("/mail/mbox?f=INBOX")
        check(status == 200, "the INBOX .mbox downloads")
        mbox_file = os.path.join(tempfile.mkdtemp(), "inbox.mbox")
        with open(mbox_file, "wb") as f:
            f.write(mbox_bytes)
        box = mailbox.mbox(mbox_file)
        subjects = [m["Subject"] for m in box]
        check(len(subjects) >= 3 and any(s.startswith("ACCETTAZIONE") for s in subjects)
              and sum(1 for s in subjects if s.startswith("CONSEGNA")) >= 2,
              f"Python's mailbox reads the .mbox ({subjects})")
        for m in box:
            parsed = email.message_from_bytes(m.as_bytes(), policy=email.policy.default)
            check(parsed.is_multipart(), "each exported message is a whole signed message")
        go("/mail")
        shot("09-inbox")

        # --- password change -------------------------------------------------------
        go("/account")
        new_password = "nuova-password-di-alice"
        fill("current", alice_password)
        fill("new", new_password)
        fill("repeat", new_password)
        submit("/account/password")
        check("Password cambiata" in text(), "the holder changes the password")
        logout()
        login(alice, alice_password)
        check(path() == "/login" or "Credenziali non valide" in text(), "the old password no longer works")
        login(alice, new_password)
        check(path().startswith("/mail"), "the new password works")

        # --- the holder's sign-ins, from the registro dei log ------------------------
        go("/account/access")
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in driver.find_elements(By.CSS_SELECTOR, "table tbody tr")]
        web = [r for r in rows if len(r) == 4 and r[1] == "web" and r[2] == "127.0.0.1"]
        check(any(r[3] == "fallito" for r in web) and any(r[3] == "riuscito" for r in web),
              f"the access log shows the failed and the successful web sign-ins ({rows[:4]})")
        shot("09b-access-log")

        # --- password reset through the reference address ----------------------------
        go("/account")
        fill("reference", "alice.rossi@example.org")
        submit("/account/reference")
        check("Salvato" in text(), "the reference address is saved")
        logout()
        go("/reset")
        fill("address", alice)
        submit("/reset")
        check(path() == "/login", "the reset request answers without telling anything")
        link = None
        deadline = time.time() + 30
        while time.time() < deadline and link is None:
            for _, rcpts, data in sink.received():
                if "alice.rossi@example.org" in rcpts:
                    body = email.message_from_bytes(data, policy=email.policy.default).get_body().get_content()
                    for word in body.split():
                        if "/reset/confirm?t=" in word:
                            link = word[word.index("/reset/confirm"):]
            time.sleep(0.3)
        check(link is not None, "the reset link reaches the reference address")
        go(link)
        reset_password = "reimpostata-da-link-1"
        fill("new", reset_password)
        fill("repeat", reset_password)
        submit("/reset/confirm")
        check("Password impostata" in text(), "the link sets a new password")
        go(link)
        check("400" in driver.title, "the link works only once")
        login(alice, reset_password)
        check(path().startswith("/mail"), "the holder signs in with the password from the link")

        # --- notice of new PEC to an ordinary address --------------------------------
        go("/account")
        fill("to1", "avvisi@example.org")
        fill("from1", a.to)
        submit("/account/notifications")
        check("Notifiche salvate" in text(), "the notice addresses are saved")
        shot("10-gestionemail", height=1100)
        ctx = ssl.create_default_context(cafile=a.peer_ca)
        ctx.check_hostname = False
        with smtplib.SMTP_SSL("127.0.0.1", a.peer_submissions, context=ctx, timeout=30) as s:
            s.login(a.to, a.peer_password)
            msg = (f"From: {a.to}\r\nTo: {alice}\r\nSubject: Risposta al contratto\r\n"
                   "X-TipoRicevuta: completa\r\n\r\nRicevuto, grazie.\r\n")
            s.sendmail(a.to, [alice], msg.encode())
        deadline = time.time() + 60
        notice = None
        while time.time() < deadline and notice is None:
            for mail_from, rcpts, data in sink.received():
                if "avvisi@example.org" in rcpts and b"Nuovo messaggio PEC" in data:
                    notice = data
            time.sleep(0.5)
        check(notice is not None, "the notice of new PEC reaches the smarthost")
        parsed = email.message_from_bytes(notice, policy=email.policy.default)
        check(a.to in parsed["Subject"] and "Risposta al contratto" in parsed["Subject"],
              f"the notice names sender and subject ({parsed['Subject']})")
        go("/mail")
        click("ul.msglist li a.row")
        check(driver.find_element(By.CSS_SELECTOR, ".msg-head .badge").get_attribute("data-kind") == "busta-trasporto",
              "a received PEC shows as busta di trasporto")
        check("Ricevuto, grazie." in driver.find_element(By.CSS_SELECTOR, "pre.msg-body").text,
              "the certified original inside the busta is shown")
        shot("12-busta", height=1300)

        # --- search, folders, move, delete ----------------------------------------------
        go("/mail?f=INBOX&q=risposta")
        check(len(driver.find_elements(By.CSS_SELECTOR, "ul.msglist li")) == 1, "search finds the one matching message")
        fill("name", "Archivio 2026")
        submit("/mail/folders")
        check("Cartella creata" in text(), "a folder is created")
        go("/mail?f=INBOX&q=risposta")
        click("ul.msglist li a.row")
        driver.find_element(By.CSS_SELECTOR, 'form[action="/mail/move"] select option[value="Archivio 2026"]').click()
        submit("/mail/move")
        check("Archivio 2026" in text() and path().startswith("/mail/msg?f=Archivio"), "the message moves to the folder")
        submit("/mail/delete")
        check("Messaggio eliminato" in text() and "Nessun messaggio" in text(), "the message is deleted")

        # --- ordinary mail policy ---------------------------------------------------------
        go("/account")
        driver.find_element(By.CSS_SELECTOR, 'input[name="policy"][value="anomalia"]').click()
        submit("/account/ordinary")
        check(driver.find_element(By.CSS_SELECTOR, 'input[name="policy"][value="anomalia"]').is_selected(),
              "accepting ordinary mail is saved")

        # --- English and a phone ---------------------------------------------------------
        go("/mail")
        click('nav.lang a[href^="/lang?set=en"]')
        check("Inbox" in text() and "New PEC" in text(), "the English switch works")
        click('nav.lang a[href^="/lang?set=it"]')
        driver.set_window_size(390, 844)
        go("/mail")
        shot("11-inbox-phone")
        driver.set_window_size(1280, 900)
        logout()
    finally:
        driver.quit()
        sink.close()
    failed = sum(1 for ok, _ in checks if not ok)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
