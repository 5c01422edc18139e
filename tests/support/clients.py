#!/usr/bin/env python3
"""Real mail clients for the end-to-end tests: smtplib and poplib over TLS.

send:  submit a message through the punto di accesso (implicit TLS or STARTTLS).
fetch: download every message of a mailbox over POP3S into a folder (one .eml each).
Exit status 0 on success; on an SMTP refusal prints "REFUSED <code> <text>" and exits 3.
"""
import argparse
import email.message
import email.utils
import os
import poplib
import smtplib
import ssl
import sys


def context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


def send(args):
    msg = email.message.EmailMessage()
    msg["From"] = args.header_from or args.user
    msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    if args.bcc_header:
        msg["Bcc"] = args.bcc_header
    msg["Subject"] = args.subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain="client.test")
    for h in args.header or []:
        name, value = h.split(":", 1)
        msg[name.strip()] = value.strip()
    msg.set_content(args.body)
    if args.attach_bytes:
        msg.add_attachment(os.urandom(args.attach_bytes), maintype="application",
                           subtype="octet-stream", filename="allegato.bin")
    rcpts = args.rcpt or (args.to + (args.cc or []))
    mail_from = args.mail_from or args.user
    try:
        if args.starttls:
            client = smtplib.SMTP("localhost", args.port, timeout=30)
            client.starttls(context=context(args.ca))
        else:
            client = smtplib.SMTP_SSL("localhost", args.port, context=context(args.ca), timeout=30)
        client.login(args.user, args.password)
        refused = client.sendmail(mail_from, rcpts, msg.as_bytes())
        client.quit()
    except smtplib.SMTPResponseException as e:
        print("REFUSED", e.smtp_code, e.smtp_error.decode(errors="replace"))
        return 3
    except smtplib.SMTPRecipientsRefused as e:
        for rcpt, (code, text) in e.recipients.items():
            print("REFUSED", code, rcpt, text.decode(errors="replace"))
        return 3
    if refused:
        print("PARTIAL", refused)
        return 4
    print("SENT", msg["Message-ID"])
    return 0


def fetch(args):
    client = poplib.POP3_SSL("localhost", args.port, context=context(args.ca), timeout=30)
    try:
        client.user(args.user)
        client.pass_(args.password)
    except poplib.error_proto as e:
        print("LOGIN-FAILED", e)
        return 3
    count, _ = client.stat()
    os.makedirs(args.out, exist_ok=True)
    for i in range(1, count + 1):
        _, lines, _ = client.retr(i)
        with open(os.path.join(args.out, "%03d.eml" % i), "wb") as f:
            f.write(b"\r\n".join(lines) + b"\r\n")
        if args.delete:
            client.dele(i)
    client.quit()
    print("FETCHED", count)
    return 0


def stat(args):
    client = poplib.POP3_SSL("localhost", args.port, context=context(args.ca), timeout=30)
    client.user(args.user)
    client.pass_(args.password)
    count, size = client.stat()
    client.quit()
    print(count)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--password", required=True)
    s.add_argument("--to", action="append", required=True)
    s.add_argument("--cc", action="append")
    s.add_argument("--rcpt", action="append", help="envelope recipients (default To+Cc)")
    s.add_argument("--mail-from")
    s.add_argument("--header-from")
    s.add_argument("--bcc-header")
    s.add_argument("--header", action="append")
    s.add_argument("--subject", default="Prova PEC")
    s.add_argument("--body", default="Messaggio di prova.\n")
    s.add_argument("--attach-bytes", type=int, default=0)
    s.add_argument("--starttls", action="store_true")
    f = sub.add_parser("fetch")
    f.add_argument("--port", type=int, required=True)
    f.add_argument("--ca", required=True)
    f.add_argument("--user", required=True)
    f.add_argument("--password", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--delete", action="store_true")
    c = sub.add_parser("stat")
    for name in ("--port", "--ca", "--user", "--password"):
        c.add_argument(name, required=True, type=int if name == "--port" else str)
    args = p.parse_args()
    sys.exit({"send": send, "fetch": fetch, "stat": stat}[args.cmd](args))


if __name__ == "__main__":
    main()
