#!/usr/bin/env python3
"""Drive pecbox's SMTP server with smtplib (used by tests/smtp_server.rs).

usage: smtp_client.py ssl|starttls|plain PORT CAFILE USER PASSWORD FROM TO[,TO...]
The message is read from stdin; USER may be empty (no AUTH).
"""
import smtplib
import ssl
import sys

mode, port, cafile, user, password, sender, rcpts = sys.argv[1:8]
msg = sys.stdin.buffer.read()
ctx = ssl.create_default_context(cafile=cafile)
if mode == "ssl":
    s = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=10)
else:
    s = smtplib.SMTP("localhost", int(port), timeout=10)
s.ehlo("client.test")
if mode == "starttls":
    s.starttls(context=ctx)
    s.ehlo("client.test")
if user:
    s.login(user, password)
refused = s.sendmail(sender, rcpts.split(","), msg)
s.quit()
print("refused:", ",".join(sorted(refused)))
