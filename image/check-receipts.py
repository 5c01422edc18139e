#!/usr/bin/env python3
"""Checks what the smoke tests fetched over POP3S after one PEC message sender → recipient.

check-receipts.py SENDER_DIR RECIPIENT_DIR SUBJECT
SENDER_DIR must hold the ricevuta di accettazione and the ricevuta di avvenuta consegna,
RECIPIENT_DIR the busta di trasporto (POSTA CERTIFICATA) of the message. Prints one line
per message; exit 1 when something is missing.
"""
import email
import email.policy
import os
import sys


def load(folder):
    out = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out.append(email.message_from_binary_file(f, policy=email.policy.default))
    return out


def main():
    sender_dir, recipient_dir, subject = sys.argv[1:4]
    sender, recipient = load(sender_dir), load(recipient_dir)
    for who, msgs in (("sender", sender), ("recipient", recipient)):
        for m in msgs:
            print("%-9s %-22s %-20s %s" % (who, m.get("X-Ricevuta", "-"), m.get("X-Trasporto", "-"),
                                         m.get("Subject", "")))
    ricevute = {str(m.get("X-Ricevuta", "")) for m in sender}
    ok = True
    for want in ("accettazione", "avvenuta-consegna"):
        if want not in ricevute:
            print("MISSING: ricevuta", want, "in the sender's mailbox")
            ok = False
    buste = [m for m in recipient if str(m.get("X-Trasporto", "")) == "posta-certificata"
             and subject in str(m.get("Subject", ""))]
    if not buste:
        print("MISSING: busta di trasporto 'POSTA CERTIFICATA: %s' for the recipient" % subject)
        ok = False
    print("RECEIPTS-OK" if ok else "RECEIPTS-FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
