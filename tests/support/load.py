#!/usr/bin/env python3
"""Submit N certified messages over one SMTPS session (load generator)."""
import smtplib
import ssl
import sys
import time

port, ca, user, password, to, n = sys.argv[1:7]
ctx = ssl.create_default_context(cafile=ca)
client = smtplib.SMTP_SSL("localhost", int(port), context=ctx, timeout=120)
client.login(user, password)
start = time.time()
for i in range(int(n)):
    body = (
        f"From: {user}\r\nTo: {to}\r\nSubject: carico {i}\r\n"
        f"Message-ID: <load{i}.{start}@client.test>\r\n\r\nMessaggio {i}.\r\n"
    )
    client.sendmail(user, [to], body.encode())
client.quit()
print("submitted", n, "in", round(time.time() - start, 3), "s")
