#!/usr/bin/env python3
"""Writes the committed seed inputs (fuzz/seeds/<target>/) and, with --corpus, copies the
real PEC samples (tests/data/pec-samples) into the working corpora (fuzz/corpus/<target>/,
not committed): whole messages for classify/verify/imap_message, the daticert.xml files
inside them for daticert, and SMTP sessions carrying them for smtp_session."""
import email, os, sys, base64, hashlib

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLES = os.path.join(HERE, "..", "tests", "data", "pec-samples")


def put(base, target, name, data):
    d = os.path.join(base, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def samples():
    for root, _, files in sorted(os.walk(SAMPLES)):
        for f in sorted(files):
            if f.endswith(".eml"):
                with open(os.path.join(root, f), "rb") as fh:
                    yield os.path.basename(root) + "-" + f, fh.read()


def stuffed(raw):
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines) + b"\r\n.\r\n"


def daticerts(raw):
    msg = email.message_from_bytes(raw)
    for part in msg.walk():
        if part.get_filename() == "daticert.xml" or part.get_content_type() == "application/xml":
            body = part.get_payload(decode=True)
            if body:
                yield body


def corpus():
    base = os.path.join(HERE, "corpus")
    for name, raw in samples():
        for t in ("classify", "verify", "imap_message"):
            put(base, t, name, raw)
        for i, x in enumerate(daticerts(raw)):
            put(base, "daticert", f"{name}-{i}.xml", x)
        session = (b"\x00EHLO client.example\r\nMAIL FROM:<a@pec.example>\r\n"
                   b"RCPT TO:<b@pec.example>\r\nDATA\r\n" + stuffed(raw) + b"QUIT\r\n")
        put(base, "smtp_session", name, session)


def seeds():
    base = os.path.join(HERE, "seeds")
    crlf = lambda *lines: "\r\n".join(lines) + "\r\n"
    msg = ("From: per conto di: a@pec.example <posta-certificata@pec.example>\r\nTo: b@pec.example\r\n"
           "Subject: POSTA CERTIFICATA: x\r\nX-Trasporto: posta-certificata\r\nX-Riferimento-Message-ID: <m@x>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"S\"\r\n\r\n"
           "--S\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n--M\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
           "Content-Transfer-Encoding: quoted-printable\r\n\r\nMessaggio di posta certificata =E8\r\n--M\r\n"
           "Content-Type: application/xml; name=\"daticert.xml\"\r\nContent-Disposition: inline; filename=\"daticert.xml\"\r\n\r\n"
           "<postacert tipo=\"posta-certificata\" errore=\"nessuno\"/>\r\n--M\r\nContent-Type: message/rfc822; name=\"postacert.eml\"\r\n\r\n"
           "Subject: x\r\n\r\noriginal\r\n--M--\r\n\r\n--S\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQExADCABgkqhkiG9w0BBwEAADEAAAAAAAA=\r\n--S--\r\n")
    for t in ("classify", "verify", "imap_message"):
        put(base, t, "busta", msg)
    put(base, "daticert", "daticert.xml", '<?xml version="1.0" encoding="UTF-8"?>\n<postacert tipo="avvenuta-consegna" errore="nessuno">'
        '<intestazione><mittente>a@pec.example</mittente><destinatari tipo="certificato">b@pec.example</destinatari>'
        '<risposte>a@pec.example</risposte><oggetto>ciao &amp; &#232;</oggetto></intestazione><dati>'
        '<gestore-emittente>Gestore</gestore-emittente><data zona="+0100"><giorno>01/03/2024</giorno><ora>10:00:00</ora></data>'
        '<identificativo>opec1@pec.example</identificativo><msgid>&lt;m@x&gt;</msgid><ricevuta tipo="completa"/>'
        '<consegna>b@pec.example</consegna></dati></postacert>\n')
    s = "smtp_command"
    put(base, s, "mail", crlf("EHLO [127.0.0.1]", "MAIL FROM:<@r.example,@s.example:a@b.example> SIZE=100 BODY=8BITMIME",
                               "RCPT TO:<\"q\\\"x\"@[IPv6:::1]>", "RCPT TO:<Postmaster>", "DATA", "RSET", "NOOP x",
                               "VRFY x", "EXPN y", "HELP", "STARTTLS", "AUTH PLAIN AGFAYgBj", "QUIT"))
    put(base, s, "bad", crlf("MAIL FROM:<>", "MAIL FROM:<a@b.it> SIZE=99999999999999999999", "HELO a_b.c", "RCPT TO:<a..b@c>"))
    s = "smtp_session"
    body = "From: a@pec.example\r\nTo: b@pec.example\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\n"
    put(base, s, "reception", "\x00" + crlf("EHLO client.example", "MAIL FROM:<a@pec.example> SIZE=100",
                                             "RCPT TO:<b@pec.example>", "RCPT TO:<bad@pec.example>", "DATA") + body
        + crlf("HELO x", "MAIL FROM:<>", "DATA", "STARTTLS", "QUIT"))
    plain = base64.b64encode(b"\0alice@pec.example\0secret").decode()
    put(base, s, "auth-plain", "\x05" + crlf("EHLO c", "AUTH PLAIN " + plain, "MAIL FROM:<alice@pec.example>",
                                              "RCPT TO:<b@pec.example>", "DATA") + body + crlf("QUIT"))
    put(base, s, "auth-login", "\x04" + crlf("EHLO c", "AUTH LOGIN", base64.b64encode(b"alice").decode(),
                                              base64.b64encode(b"wrong").decode(), "AUTH PLAIN", "*", "AUTH PLAIN =",
                                              "AUTH LOGIN " + base64.b64encode(b"u").decode(), "cHc=", "QUIT"))
    put(base, s, "pipelined-starttls", "\x01" + crlf("EHLO c", "STARTTLS", "MAIL FROM:<a@b.example>"))
    s = "imap_session"
    put(base, s, "login-fetch", crlf("a CAPABILITY", "b LOGIN alice pw", "c SELECT INBOX",
                                      "d FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
                                      "e FETCH 1 (BODY[] BODY[1] BODY[1.MIME] BODY[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT]<0.10>)",
                                      "f UID FETCH 1:* (BODY[2.1])", "g SEARCH OR SUBJECT x BODY y SINCE 1-Jan-2020",
                                      "h UID SEARCH ALL", "i STORE 1 +FLAGS (\\Seen)", "j LOGOUT"))
    put(base, s, "folders", crlf("a AUTHENTICATE PLAIN " + base64.b64encode(b"\0u\0pw").decode(), "b LIST \"\" *",
                                  "c CREATE x/y", "d RENAME x/y z", "e STATUS z (MESSAGES UIDNEXT)", "f SUBSCRIBE z",
                                  "g LSUB \"\" %", "h NAMESPACE", "i ENABLE UTF8=ACCEPT", "j SELECT INBOX",
                                  "k COPY 1 z", "l UID MOVE 2 z", "m EXPUNGE", "n DELETE z", "o IDLE") + crlf("DONE", "p UNSELECT", "q LOGOUT"))
    put(base, s, "append", crlf("a LOGIN u pw", "b APPEND INBOX (\\Flagged) {34}") + "Subject: hi\r\n\r\nappended body\r\n\r\n"
        + crlf("c APPEND INBOX {5+}") + "x\r\ny\r\n" + crlf("d EXAMINE INBOX", "e FETCH * BODYSTRUCTURE", "f CLOSE"))
    put(base, s, "auth-steps", crlf("a AUTHENTICATE PLAIN", base64.b64encode(b"\0u\0wrong").decode(), "b AUTHENTICATE LOGIN", "dQ==", "*", "c NOOP"))
    s = "pop3_command"
    put(base, s, "all", crlf("CAPA", "USER alice", "PASS a b c", "STAT", "LIST", "LIST 1", "UIDL 2", "RETR 1",
                              "TOP 1 10", "DELE 1", "RSET", "NOOP", "QUIT", "APOP x y", "AUTH", "STLS"))
    s = "pop3_session"
    put(base, s, "session", crlf("CAPA", "USER alice", "PASS pw", "STAT", "LIST", "UIDL", "RETR 1", "TOP 2 3",
                                  "DELE 1", "LIST 1", "RSET", "DELE 3", "QUIT"))
    put(base, s, "wrong", crlf("PASS x", "USER a", "PASS wrong", "USER a", "PASS pw", "RETR 9", "TOP 1 99999999999999999999"))
    s = "panel_form"
    put(base, s, "urlencoded", "application/x-www-form-urlencoded\r\ncsrf=fuzz-token&a=b+c&%41%4=x&&=&name=%C3%A8")
    mp = ("--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nfuzz-token\r\n"
          "--XyZ\r\nContent-Disposition: form-data; name=\"subject\"\r\n\r\nciao\r\n"
          "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n"
          "--XyZ\r\nContent-Disposition: form-data; name=\"empty\"; filename=\"\"\r\n\r\n\r\n--XyZ--\r\n")
    put(base, s, "multipart", "multipart/form-data; boundary=XyZ\r\n" + mp)
    s = "ldif"
    cert = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    put(base, s, "index", crlf("version: 1", "", "# comment", " folded", "dn: o=postacert", "objectClass: top", "o: postacert", "",
                                "dn: providerName=Gestore Esempio,o=postacert", "objectclass: provider", "providerName: Gestore Esempio",
                                "MANAGEDDOMAINS: pec.esempio.example", "managedDomains:   Cert.Esempio.example  ",
                                "mailReceipt: posta-certificata@pec.esempio.example", "providerCertificate;binary:: " + cert,
                                "providerCertificateHash: " + hashlib.sha1(b"x").hexdigest().upper(),
                                "LDIFLocationURL: https://pec.esempio.example/index.ldif.p7m", "",
                                "dn: providerUnit=Ambiente 2,providerName=Gestore Esempio,o=postacert", "objectClass: provider",
                                "providerName:: " + base64.b64encode("Gestore è".encode()).decode(), "providerUnit: Ambiente 2",
                                "managedDomains: pec2.esempio.example", "mailReceipt: p@pec2.esempio.example"))
    put(base, s, "p7m-pem", "-----BEGIN PKCS7-----\nMAMCAQE=\n-----END PKCS7-----\n")
    s = "registro_export"
    rec = ('{"seq":1,"time":"2024-03-01T10:00:00Z","event":{"kind":"accettazione","identificativo":"opec1@p.example",'
           '"sender":"a@p.example","recipients":["b@q.example"],"outcome":"ok"},"receipt":true,'
           '"prev":"' + "0" * 64 + '","hash":"' + hashlib.sha256(b"x").hexdigest() + '"}')
    cp = ('{"month":"2024-03","first_seq":1,"last_seq":1,"count":1,"prev_hash":"' + "0" * 64 + '","last_hash":"'
          + hashlib.sha256(b"x").hexdigest() + '","provider":"P","created":"2024-04-01T00:00:00Z","signature":"MAMCAQE="}')
    put(base, s, "export.json", '{"format":"pecbox-registro/1","month":"2024-03","provider":"P","certificate":"",'
        '"checkpoint":' + cp + ',"records":[' + rec + '],"receipts":{"m@x":"eJw="}}')
    put(base, s, "records-first.json", '{"records":[' + rec + ',' + rec + '],"format":"pecbox-registro/1","checkpoint":' + cp + '}')


if __name__ == "__main__":
    if "--corpus" in sys.argv:
        corpus()
    else:
        seeds()
