#!/usr/bin/env python3
"""Real IMAP clients for tests/imap_server.rs: imaplib and imapclient over implicit TLS.

usage: imap_clients.py imaplib|imapclient PORT CAFILE USER PASSWORD WORKDIR
Prints one JSON object with what the server answered; the Rust test checks it.
imapclient: after entering IDLE it creates WORKDIR/idling and waits for the server to
push the message the test then appends to INBOX.
"""
import base64
import json
import os
import ssl
import sys
import time

mode, port, cafile, user, password, workdir = sys.argv[1:7]
port = int(port)
ctx = ssl.create_default_context(cafile=cafile)
r = {}


def s(x):
    if isinstance(x, bytes):
        return x.decode("utf-8", "replace")
    if isinstance(x, (list, tuple)):
        return [s(i) for i in x]
    return x


def run_imaplib():
    import imaplib
    m = imaplib.IMAP4_SSL("localhost", port, ssl_context=ctx, timeout=20)
    r["capabilities"] = list(m.capabilities)
    r["login"] = s(m.login(user, password))
    typ, lines = m.list()
    r["list"] = s(lines)
    r["list_pattern"] = s(m.list('""', "S%")[1])
    typ, data = m.select("INBOX")
    r["select"] = [typ, s(data)]
    r["uidvalidity"] = s(m.response("UIDVALIDITY")[1])
    r["uidnext"] = s(m.untagged_responses.get("UIDNEXT", [b"?"]))
    typ, data = m.fetch("1", "(UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    r["fetch_meta"] = s(data)
    typ, data = m.fetch("1", "(BODY.PEEK[1.3] BODY.PEEK[1.3.MIME] BODY.PEEK[1.2]<0.40>)")
    r["fetch_parts"] = [s(x) for x in data]
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject X-Trasporto)])")
    r["fetch_fields"] = s(data[0][1])
    typ, data = m.fetch("1", "(BODY.PEEK[1.3.HEADER] BODY.PEEK[1.3.1])")
    r["fetch_nested"] = [s(x) for x in data]
    typ, data = m.fetch("1", "(RFC822.HEADER)")
    r["rfc822_header_len"] = len(data[0][1])
    r["flags_before"] = s(m.fetch("2", "(FLAGS)")[1])
    typ, data = m.fetch("2", "(BODY[])")
    r["body2"] = base64.b64encode(data[0][1]).decode()
    r["body2_reply"] = s(data)[1:] if len(data) > 1 else []
    r["flags_after"] = s(m.fetch("2", "(FLAGS)")[1])
    searches = {
        "all": "ALL",
        "unseen": "UNSEEN",
        "seen": "SEEN",
        "from": 'FROM "bob@pec.test.example"',
        "subject": 'SUBJECT "Fattura"',
        "header": 'HEADER X-Trasporto posta-certificata',
        "since": "SINCE 1-Jan-2020",
        "before": "BEFORE 1-Jan-2020",
        "on": "ON 14-Nov-2023",
        "larger": "LARGER 2000",
        "smaller": "SMALLER 2000",
        "text": 'TEXT "hello alice"',
        "body": 'BODY "allegato"',
        "not": "NOT SEEN",
        "or": 'OR SUBJECT one SUBJECT two',
        "to": 'TO "alice"',
        "cc": 'CC "dan@pec.other"',
        "seqset": "2:3",
        "uidset": "UID 1,3",
    }
    r["search"] = {k: s(m.search(None, v)[1][0]) for k, v in searches.items()}
    r["uid_search"] = s(m.uid("SEARCH", None, "ALL")[1][0])
    r["store_add"] = s(m.store("3", "+FLAGS", "(\\Flagged $Label1)")[1])
    r["store_remove"] = s(m.store("3", "-FLAGS", "($Label1)")[1])
    r["store_silent"] = s(m.store("1", "+FLAGS.SILENT", "(\\Answered)")[1])
    r["flagged"] = s(m.search(None, "FLAGGED")[1][0])
    r["keyword"] = s(m.search(None, "KEYWORD $Label1")[1][0])
    r["copy"] = s(m.copy("1:2", "Archive"))
    r["copy_missing"] = s(m.copy("1", "Nowhere"))
    uids = m.uid("SEARCH", None, "ALL")[1][0].split()
    r["uid_move"] = s(m.uid("MOVE", uids[-1], "Trash"))
    r["after_move"] = s(m.search(None, "ALL")[1][0])
    msg = b"From: alice@pec.test.example\r\nSubject: draft\r\n\r\nunfinished\r\n"
    r["append"] = s(m.append("Drafts", "(\\Draft \\Seen)", imaplib.Time2Internaldate(1700000000), msg))
    r["status_drafts"] = s(m.status("Drafts", "(MESSAGES UIDNEXT UIDVALIDITY UNSEEN)")[1])
    r["status_archive"] = s(m.status("Archive", "(MESSAGES)")[1])
    m.store("1", "+FLAGS", "(\\Deleted)")
    typ, data = m.expunge()
    r["expunge"] = [typ, s(data)]
    r["after_expunge"] = s(m.search(None, "ALL")[1][0])
    r["create"] = s(m.create("Progetti/2026"))
    r["list_all"] = s(m.list()[1])
    r["rename"] = s(m.rename("Progetti", "Lavori"))
    r["list_renamed"] = s(m.list('""', "Lavori*")[1])
    r["delete_parent"] = s(m.delete("Lavori"))
    r["delete_child"] = s(m.delete("Lavori/2026"))
    r["delete_inbox"] = s(m.delete("INBOX"))
    r["subscribe"] = s(m.subscribe("Archive"))
    r["lsub"] = s(m.lsub('""', "*")[1])
    r["namespace"] = s(m.namespace())
    r["examine"] = s(m.select("Drafts", readonly=True))
    r["store_readonly"] = s(m.store("1", "+FLAGS", "(\\Flagged)"))
    r["fetch_draft"] = s(m.fetch("1", "(FLAGS INTERNALDATE BODY[TEXT])")[1])
    r["unselect"] = s(m.unselect())
    r["logout"] = s(m.logout())


def run_imapclient():
    from imapclient import IMAPClient
    c = IMAPClient("localhost", port=port, ssl=True, ssl_context=ctx, timeout=20)
    r["login"] = s(c.login(user, password))
    r["capabilities"] = s(list(c.capabilities()))
    r["folders"] = [[s(list(flags)), s(delim), s(name)] for flags, delim, name in c.list_folders()]
    r["sent_folder"] = s(c.find_special_folder(b"\\Sent"))
    r["trash_folder"] = s(c.find_special_folder(b"\\Trash"))
    sel = c.select_folder("INBOX")
    r["select"] = {k.decode(): s(v) if not isinstance(v, int) else v for k, v in sel.items()}
    uids = c.search(["ALL"])
    r["uids"] = uids
    pec = uids[0]
    data = c.fetch([pec], ["BODYSTRUCTURE", "ENVELOPE", "RFC822.SIZE", "BODY.PEEK[]"])[pec]
    bs = data[b"BODYSTRUCTURE"]
    r["bs_multipart"] = bs.is_multipart
    r["bs_subtype"] = s(bs[1])
    inner = bs[0][0]
    r["inner_subtype"] = s(inner[1])
    r["inner_parts"] = [
        ("multipart/" + s(p[1])) if isinstance(p[0], list) else (s(p[0]) + "/" + s(p[1]))
        for p in inner[0]
    ]
    rfc822 = inner[0][2]
    r["rfc822_params"] = s(list(rfc822[2]))
    r["rfc822_envelope_subject"] = s(rfc822[7][1])
    # a multipart nested in message/rfc822 comes flat: parts, then the subtype
    r["rfc822_inner_subtype"] = s(next(x for x in rfc822[8] if isinstance(x, bytes)))
    xml = inner[0][1]
    r["xml_params"] = s(list(xml[2]))
    r["xml_disposition"] = s(xml[8]) if len(xml) > 8 else None
    sig = bs[0][1]
    r["signature"] = s(sig[0]) + "/" + s(sig[1])
    env = data[b"ENVELOPE"]
    r["env_subject"] = s(env.subject)
    r["env_from"] = s(env.from_[0].mailbox) + "@" + s(env.from_[0].host)
    r["env_to"] = [s(a.mailbox) + "@" + s(a.host) for a in env.to]
    r["size_ok"] = data[b"RFC822.SIZE"] == len(data[b"BODY[]"])
    r["unseen"] = c.search(["UNSEEN"])
    c.add_flags([pec], [b"\\Seen", b"\\Flagged"])
    r["flags"] = s(list(c.get_flags([pec])[pec]))
    c.remove_flags([pec], [b"\\Flagged"])
    r["flags_removed"] = s(list(c.get_flags([pec])[pec]))
    r["copy"] = s(c.copy([pec], "Archive"))
    r["move"] = s(c.move([uids[-1]], "Junk"))
    r["after_move"] = c.search(["ALL"])
    r["append"] = s(c.append("INBOX", b"From: x@y.example\r\nSubject: appended\r\n\r\nhi\r\n", flags=[b"\\Seen"]))
    c.set_flags([uids[1]], [b"\\Deleted"])
    r["expunge"] = s(c.expunge())
    r["after_expunge"] = c.search(["ALL"])
    # IDLE: the test appends a message to INBOX once the marker file exists.
    c.idle()
    open(os.path.join(workdir, "idling"), "w").close()
    got = []
    deadline = time.time() + 20
    while time.time() < deadline and not any(x[1] == b"EXISTS" for x in got):
        got += c.idle_check(timeout=1)
    r["idle"] = s([list(x) for x in got])
    r["idle_done"] = s(c.idle_done())
    r["after_idle"] = c.search(["ALL"])
    new = r["after_idle"][-1]
    r["idle_subject"] = s(c.fetch([new], ["ENVELOPE"])[new][b"ENVELOPE"].subject)
    r["logout"] = s(c.logout())


def run_daemon():
    """bob idles in INBOX until the punto di consegna delivers alice's message."""
    import imaplib
    from imapclient import IMAPClient
    m = imaplib.IMAP4_SSL("localhost", port, ssl_context=ctx, timeout=20)
    try:
        m.login(user, "wrong password")
        r["wrong_password"] = "accepted"
    except imaplib.IMAP4.error as e:
        r["wrong_password"] = str(e)
    m.logout()
    c = IMAPClient("localhost", port=port, ssl=True, ssl_context=ctx, timeout=30)
    c.login(user, password)
    r["folders"] = [[s(list(flags)), s(name)] for flags, _, name in c.list_folders()]
    r["before"] = c.select_folder("INBOX")[b"EXISTS"]
    c.idle()
    open(os.path.join(workdir, "idling"), "w").close()
    got = []
    deadline = time.time() + 60
    while time.time() < deadline and not any(x[1] == b"EXISTS" for x in got):
        got += c.idle_check(timeout=1)
    c.idle_done()
    r["idle"] = s([list(x) for x in got])
    uids = c.search(["ALL"])
    data = c.fetch(uids[-1:], ["BODYSTRUCTURE", "ENVELOPE"])[uids[-1]]
    bs = data[b"BODYSTRUCTURE"]
    r["subtype"] = s(bs[1])
    inner = bs[0][0]
    r["inner"] = [
        ("multipart/" + s(p[1])) if isinstance(p[0], list) else (s(p[0]) + "/" + s(p[1]))
        for p in inner[0]
    ]
    r["subject"] = s(data[b"ENVELOPE"].subject)
    c.logout()


{"imaplib": run_imaplib, "imapclient": run_imapclient, "daemon": run_daemon}[mode]()
print(json.dumps(r))
