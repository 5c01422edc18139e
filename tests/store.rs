//! The store on a real sled database on disk: mailboxes, folders, messages, queue,
//! providers' index, PEC transactions, claims, atomicity, durability and corruption.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pecbox::store::*;

fn open(dir: &Path) -> Store {
    // Reopening right after a drop: sled lets go of its lock a moment later.
    Store::open_waiting(dir, std::time::Duration::from_secs(10)).unwrap()
}

fn mailbox(address: &str, quota: Option<u64>) -> Mailbox {
    Mailbox {
        address: address.to_owned(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        quota,
        disabled: false,
        created: 1_700_000_000,
        ordinary_mail: OrdinaryMailPolicy::Refuse,
    }
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

fn uids(store: &Store, addr: &str, folder: &str) -> Vec<u32> {
    store
        .list(addr, folder)
        .unwrap()
        .iter()
        .map(|m| m.uid)
        .collect()
}

fn entry(domain: &str) -> QueueEntry {
    QueueEntry {
        id: 999,
        domain: domain.to_owned(),
        mail_from: "alice@pec.example".to_owned(),
        recipients: vec![QueuedRecipient {
            address: format!("bob@{domain}"),
            state: RecipientState::Pending,
            last_reply: None,
        }],
        created: 1_700_000_000,
        attempts: 0,
        next_attempt: 1_700_000_000,
        label: "busta".to_owned(),
    }
}

#[test]
fn mailbox_crud_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .add_mailbox(&mailbox("Zed@PEC.Example", None))
        .unwrap();
    store
        .add_mailbox(&mailbox("alice@pec.example", Some(10)))
        .unwrap();
    assert!(matches!(
        store.add_mailbox(&mailbox("ALICE@pec.example", None)),
        Err(StoreError::MailboxExists(a)) if a == "alice@pec.example"
    ));

    let zed = store.mailbox("zed@pec.example").unwrap().unwrap();
    assert_eq!(zed.address, "zed@pec.example");
    assert_eq!(
        store.mailbox("ALICE@Pec.Example").unwrap().unwrap().quota,
        Some(10)
    );
    let all: Vec<String> = store
        .mailboxes()
        .unwrap()
        .into_iter()
        .map(|m| m.address)
        .collect();
    assert_eq!(all, ["alice@pec.example", "zed@pec.example"]);
    let folders: Vec<String> = store
        .folders("Alice@pec.example")
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(folders, [INBOX, SENT]);

    let mut changed = mailbox("ALICE@PEC.EXAMPLE", None);
    changed.password_hash = "new".to_owned();
    changed.ordinary_mail = OrdinaryMailPolicy::Forward("a@ordinary.example".to_owned());
    store.put_mailbox(&changed).unwrap();
    let got = store.mailbox("alice@pec.example").unwrap().unwrap();
    assert_eq!(got.password_hash, "new");
    assert_eq!(got.address, "alice@pec.example");
    assert_eq!(got.ordinary_mail, changed.ordinary_mail);
    assert_eq!(store.mailboxes().unwrap().len(), 2);

    // Upsert of a new mailbox creates its folders too.
    store
        .put_mailbox(&mailbox("new@pec.example", None))
        .unwrap();
    assert!(store
        .folder_state("new@pec.example", "inbox")
        .unwrap()
        .is_some());

    assert!(store.remove_mailbox("ZED@pec.example").unwrap());
    assert!(!store.remove_mailbox("zed@pec.example").unwrap());
    assert!(store.mailbox("zed@pec.example").unwrap().is_none());
    assert!(matches!(
        store.folders("zed@pec.example"),
        Err(StoreError::NoMailbox(_))
    ));
    assert!(matches!(
        store.mailbox("bad\0name"),
        Err(StoreError::InvalidName(_))
    ));
}

#[test]
fn remove_mailbox_wipes_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "carol@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    // A neighbour whose address extends carol's must survive.
    store
        .add_mailbox(&mailbox("carol@pec.example.it", None))
        .unwrap();
    store
        .append("carol@pec.example.it", INBOX, b"keep", &[], 1)
        .unwrap();
    store.create_folder(addr, "Archive").unwrap();
    let uid = store.append(addr, INBOX, b"hello", &[], 1).unwrap();
    store.append(addr, "Archive", b"world!", &[], 2).unwrap();
    assert_eq!(store.usage(addr).unwrap(), 11);

    assert!(store.remove_mailbox(addr).unwrap());
    let leftovers = store
        .raw_db()
        .iter()
        .keys()
        .map(|k| k.unwrap())
        .filter(|k| {
            k.windows(addr.len() + 1)
                .any(|w| w == format!("{addr}\0").as_bytes())
        })
        .count();
    assert_eq!(leftovers, 0, "keys of the removed mailbox remain");
    let account_keys = store
        .raw_db()
        .iter()
        .keys()
        .map(|k| k.unwrap())
        .filter(|k| k.ends_with(addr.as_bytes()))
        .count();
    assert_eq!(account_keys, 0);

    store.add_mailbox(&mailbox(addr, None)).unwrap();
    assert_eq!(store.usage(addr).unwrap(), 0);
    assert_eq!(store.fetch(addr, INBOX, uid).unwrap(), None);
    assert!(store.list(addr, INBOX).unwrap().is_empty());
    assert!(store.folder_state(addr, "Archive").unwrap().is_none());
    assert_eq!(
        store
            .fetch("carol@pec.example.it", INBOX, 1)
            .unwrap()
            .unwrap(),
        b"keep"
    );
}

#[test]
fn messages_append_list_fetch_flags_remove_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "dave@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();

    let a = store
        .append(addr, "inbox", b"one", &flags(&["\\Seen"]), 10)
        .unwrap();
    let b = store
        .append("DAVE@pec.example", INBOX, b"two!", &[], 20)
        .unwrap();
    let c = store.append(addr, INBOX, b"three", &[], 30).unwrap();
    assert_eq!((a, b, c), (1, 2, 3));
    let list = store.list(addr, INBOX).unwrap();
    assert_eq!(
        list[0],
        MessageMeta {
            uid: 1,
            flags: flags(&["\\Seen"]),
            internal_date: 10,
            size: 3
        }
    );
    assert_eq!(uids(&store, addr, INBOX), [1, 2, 3]);
    assert_eq!(store.fetch(addr, INBOX, b).unwrap().unwrap(), b"two!");
    assert_eq!(store.fetch(addr, INBOX, 42).unwrap(), None);
    assert_eq!(store.usage(addr).unwrap(), 12);

    assert!(store
        .set_flags(addr, INBOX, b, &flags(&["\\Deleted"]))
        .unwrap());
    assert!(!store.set_flags(addr, INBOX, 42, &[]).unwrap());
    assert_eq!(
        store.list(addr, INBOX).unwrap()[1].flags,
        flags(&["\\Deleted"])
    );

    assert!(store.remove(addr, INBOX, c).unwrap());
    assert!(!store.remove(addr, INBOX, c).unwrap());
    assert_eq!(store.fetch(addr, INBOX, c).unwrap(), None);
    assert_eq!(store.usage(addr).unwrap(), 7);
    // Uids are never reused, even the last one's.
    assert_eq!(store.append(addr, INBOX, b"four", &[], 40).unwrap(), 4);
    assert_eq!(store.folder_state(addr, INBOX).unwrap().unwrap().uidnext, 5);

    let copied = store.copy(addr, INBOX, a, SENT).unwrap().unwrap();
    assert_eq!(copied, 1);
    assert_eq!(store.fetch(addr, SENT, copied).unwrap().unwrap(), b"one");
    let copy_meta = &store.list(addr, SENT).unwrap()[0];
    assert_eq!(copy_meta.flags, flags(&["\\Seen"]));
    assert_eq!(copy_meta.internal_date, 10);
    assert_eq!(store.copy(addr, INBOX, 42, SENT).unwrap(), None);
    assert_eq!(store.copy(addr, INBOX, a, INBOX).unwrap(), Some(5));
    assert_eq!(store.usage(addr).unwrap(), 7 + 4 + 3 + 3);

    assert!(matches!(
        store.append("nobody@pec.example", INBOX, b"x", &[], 0),
        Err(StoreError::NoMailbox(_))
    ));
    assert!(matches!(
        store.append(addr, "Nope", b"x", &[], 0),
        Err(StoreError::NoFolder { folder, .. }) if folder == "Nope"
    ));
    assert!(matches!(
        store.copy(addr, INBOX, a, "Nope"),
        Err(StoreError::NoFolder { .. })
    ));
    // Only INBOX is case-insensitive.
    assert!(matches!(
        store.list(addr, "sent"),
        Err(StoreError::NoFolder { .. })
    ));
}

#[test]
fn folder_identity_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let addr = "erin@pec.example";
    let (inbox, sent) = {
        let store = open(dir.path());
        store.add_mailbox(&mailbox(addr, None)).unwrap();
        store.append(addr, INBOX, b"a", &[], 0).unwrap();
        store.append(addr, INBOX, b"b", &[], 0).unwrap();
        store.remove(addr, INBOX, 2).unwrap();
        store.flush().unwrap();
        (
            store.folder_state(addr, INBOX).unwrap().unwrap(),
            store.folder_state(addr, SENT).unwrap().unwrap(),
        )
    };
    assert_eq!(inbox.uidnext, 3);
    assert_ne!(inbox.uidvalidity, sent.uidvalidity);

    let store = open(dir.path());
    assert_eq!(store.folder_state(addr, INBOX).unwrap().unwrap(), inbox);
    assert_eq!(store.folder_state(addr, SENT).unwrap().unwrap(), sent);
    assert_eq!(store.append(addr, INBOX, b"c", &[], 0).unwrap(), 3);
    assert_eq!(uids(&store, addr, INBOX), [1, 3]);
    // New folders after reopening still get fresh UIDVALIDITY values.
    let archive = store.create_folder(addr, "Archive").unwrap();
    assert!(archive.uidvalidity > inbox.uidvalidity.max(sent.uidvalidity));
}

#[test]
fn recreated_folder_gets_new_uidvalidity_and_no_old_messages() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "fred@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    let first = store.create_folder(addr, "Archive").unwrap();
    assert_eq!(first.uidnext, 1);
    assert!(matches!(
        store.create_folder(addr, "Archive"),
        Err(StoreError::FolderExists(_))
    ));
    store.append(addr, "Archive", b"old", &[], 0).unwrap();
    assert_eq!(store.usage(addr).unwrap(), 3);

    assert!(store.delete_folder(addr, "Archive").unwrap());
    assert!(!store.delete_folder(addr, "Archive").unwrap());
    assert_eq!(store.usage(addr).unwrap(), 0);
    let second = store.create_folder(addr, "Archive").unwrap();
    assert_ne!(first.uidvalidity, second.uidvalidity);
    assert!(store.list(addr, "Archive").unwrap().is_empty());
    assert_eq!(store.fetch(addr, "Archive", 1).unwrap(), None);

    assert!(matches!(
        store.delete_folder(addr, "inbox"),
        Err(StoreError::InboxUndeletable)
    ));
    assert!(store.folder_state(addr, INBOX).unwrap().is_some());
    assert!(matches!(
        store.delete_folder("nobody@pec.example", "Archive"),
        Err(StoreError::NoMailbox(_))
    ));
}

#[test]
fn rename_keeps_uids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "gina@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    store.create_folder(addr, "Work").unwrap();
    store.append(addr, "Work", b"w1", &[], 0).unwrap();
    store.append(addr, "Work", b"w2", &[], 0).unwrap();
    store.remove(addr, "Work", 1).unwrap();
    let before = store.folder_state(addr, "Work").unwrap().unwrap();

    store.rename_folder(addr, "Work", "Old work").unwrap();
    assert!(store.folder_state(addr, "Work").unwrap().is_none());
    assert_eq!(
        store
            .folder_state(addr, "Old work")
            .unwrap()
            .unwrap()
            .uidnext,
        before.uidnext
    );
    assert_eq!(uids(&store, addr, "Old work"), [2]);
    assert_eq!(store.fetch(addr, "Old work", 2).unwrap().unwrap(), b"w2");
    assert_eq!(store.append(addr, "Old work", b"w3", &[], 0).unwrap(), 3);

    assert!(matches!(
        store.rename_folder(addr, "Old work", SENT),
        Err(StoreError::FolderExists(_))
    ));
    assert!(matches!(
        store.rename_folder(addr, "Old work", "inbox"),
        Err(StoreError::FolderExists(_))
    ));
    assert!(matches!(
        store.rename_folder(addr, "Missing", "Other"),
        Err(StoreError::NoFolder { .. })
    ));

    // Renaming INBOX moves its messages and leaves a new, empty INBOX.
    store.append(addr, INBOX, b"i1", &[], 0).unwrap();
    let inbox = store.folder_state(addr, INBOX).unwrap().unwrap();
    store.rename_folder(addr, "INBOX", "Saved").unwrap();
    assert_eq!(uids(&store, addr, "Saved"), [1]);
    assert!(store.list(addr, INBOX).unwrap().is_empty());
    assert_ne!(
        store
            .folder_state(addr, INBOX)
            .unwrap()
            .unwrap()
            .uidvalidity,
        inbox.uidvalidity
    );
    assert_eq!(store.usage(addr).unwrap(), 6);
    // Deleting the renamed folder frees its bytes, not INBOX's.
    assert!(store.delete_folder(addr, "Saved").unwrap());
    assert_eq!(store.usage(addr).unwrap(), 4);
}

#[test]
fn quota_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "hal@pec.example";
    store.add_mailbox(&mailbox(addr, Some(100))).unwrap();
    store.append(addr, INBOX, &[b'x'; 60], &[], 0).unwrap();
    match store.append(addr, INBOX, &[b'y'; 50], &[], 0) {
        Err(StoreError::OverQuota {
            address,
            used,
            quota,
        }) => assert_eq!((address.as_str(), used, quota), (addr, 60, 100)),
        other => panic!("expected OverQuota, got {other:?}"),
    }
    assert_eq!(uids(&store, addr, INBOX), [1]);
    assert_eq!(store.usage(addr).unwrap(), 60);
    // Exactly at the quota is allowed.
    assert_eq!(store.append(addr, SENT, &[b'z'; 40], &[], 0).unwrap(), 1);
    assert!(matches!(
        store.copy(addr, SENT, 1, INBOX),
        Err(StoreError::OverQuota { used: 100, .. })
    ));
    assert!(store.remove(addr, INBOX, 1).unwrap());
    assert_eq!(store.usage(addr).unwrap(), 40);
    store.append(addr, INBOX, &[b'y'; 50], &[], 0).unwrap();

    // Raising the quota takes effect at once.
    store.put_mailbox(&mailbox(addr, None)).unwrap();
    store.append(addr, INBOX, &[b'w'; 1000], &[], 0).unwrap();
    assert_eq!(store.usage(addr).unwrap(), 1090);
}

#[test]
fn queue_roundtrip_and_ids_unique_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = {
        let store = open(dir.path());
        let first = store.enqueue(&entry("a.example"), b"message A").unwrap();
        let second = store.enqueue(&entry("b.example"), b"message B").unwrap();
        assert!(second > first);
        let queue = store.queue().unwrap();
        assert_eq!(
            queue.iter().map(|e| e.id).collect::<Vec<_>>(),
            [first, second]
        );
        assert_eq!(queue[0].domain, "a.example");
        assert_eq!(store.queue_message(second).unwrap().unwrap(), b"message B");

        let mut updated = store.queue_entry(first).unwrap().unwrap();
        assert_eq!(updated.id, first);
        updated.attempts = 3;
        updated.recipients[0].state = RecipientState::Delivered;
        updated.recipients[0].last_reply = Some("250 ok".to_owned());
        store.update_queue(&updated).unwrap();
        assert_eq!(store.queue_entry(first).unwrap().unwrap(), updated);

        assert!(store.dequeue(first).unwrap());
        assert!(!store.dequeue(first).unwrap());
        assert_eq!(store.queue_message(first).unwrap(), None);
        assert!(matches!(
            store.update_queue(&updated),
            Err(StoreError::NoQueueEntry(id)) if id == first
        ));
        store.flush().unwrap();
        (first, second)
    };
    let store = open(dir.path());
    assert_eq!(store.queue().unwrap().len(), 1);
    let third = store.enqueue(&entry("c.example"), b"C").unwrap();
    assert!(third > second && third != first);
    let n1 = store.next_id().unwrap();
    let n2 = store.next_id().unwrap();
    assert!(n2 > n1);
}

#[test]
fn providers_index_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let aruba = ProviderEntry {
        name: "Aruba PEC".to_owned(),
        domains: vec!["PEC.Aruba.it".to_owned(), "legalmail.example".to_owned()],
        mail_receipt: "ricevute@pec.aruba.it".to_owned(),
        certificates: vec![vec![1, 2, 3]],
        certificate_hashes: vec!["abcdef0123".to_owned()],
    };
    let other = ProviderEntry {
        name: "Other".to_owned(),
        domains: vec!["other.example".to_owned()],
        mail_receipt: "r@other.example".to_owned(),
        certificates: vec![],
        certificate_hashes: vec!["ffff".to_owned()],
    };
    store.put_provider(&aruba).unwrap();
    store.put_provider(&other).unwrap();

    assert_eq!(
        store.provider_for_domain("pec.aruba.IT").unwrap(),
        Some(aruba.clone())
    );
    assert_eq!(
        store.provider_for_domain("legalmail.example.").unwrap(),
        Some(aruba.clone())
    );
    assert_eq!(
        store.provider_for_certificate_hash("ABCDEF0123").unwrap(),
        Some(aruba.clone())
    );
    assert_eq!(store.provider_for_domain("unknown.example").unwrap(), None);
    assert_eq!(
        store
            .providers()
            .unwrap()
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["Aruba PEC", "Other"]
    );

    // Replacement drops domains and hashes the new entry no longer has.
    let replaced = ProviderEntry {
        domains: vec!["legalmail.example".to_owned(), "new.example".to_owned()],
        certificate_hashes: vec!["1234".to_owned()],
        ..aruba.clone()
    };
    store.put_provider(&replaced).unwrap();
    assert_eq!(store.provider_for_domain("pec.aruba.it").unwrap(), None);
    assert_eq!(
        store.provider_for_certificate_hash("abcdef0123").unwrap(),
        None
    );
    assert_eq!(
        store.provider_for_domain("LEGALMAIL.example").unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(
        store.provider_for_domain("new.example").unwrap(),
        Some(replaced.clone())
    );
    assert_eq!(
        store.provider_for_certificate_hash("1234").unwrap(),
        Some(replaced)
    );
    assert_eq!(store.providers().unwrap().len(), 2);

    assert!(store.remove_provider("Aruba PEC").unwrap());
    assert!(!store.remove_provider("Aruba PEC").unwrap());
    assert_eq!(store.provider_for_domain("new.example").unwrap(), None);
    assert_eq!(store.provider_for_certificate_hash("1234").unwrap(), None);
    assert_eq!(
        store.provider_for_domain("other.example").unwrap(),
        Some(other)
    );
}

fn tracked(address: &str, certified: bool) -> TrackedRecipient {
    TrackedRecipient {
        address: address.to_owned(),
        certified,
        presa_in_carico: None,
        consegna: None,
        failed: None,
        notice_12h: None,
        notice_24h: None,
    }
}

fn pec_transaction(id: &str, recipients: Vec<TrackedRecipient>) -> Transaction {
    Transaction {
        identificativo: id.to_owned(),
        sender: "alice@pec.example".to_owned(),
        subject: "prova".to_owned(),
        msgid: Some("<m@client>".to_owned()),
        accepted: 1_700_000_000,
        recipients,
    }
}

#[test]
fn transactions_and_open_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut delivered = tracked("b@x", true);
    delivered.consegna = Some(1);
    let mut failed = tracked("c@x", true);
    failed.failed = Some(1);
    let mut expired = tracked("d@x", true);
    expired.notice_24h = Some(1);
    let mut warned = tracked("e@x", true);
    warned.notice_12h = Some(1);
    warned.presa_in_carico = Some(1);

    let open_one = pec_transaction("open-1@pec.example", vec![delivered.clone(), warned]);
    let closed = pec_transaction(
        "closed@pec.example",
        vec![delivered.clone(), failed, expired],
    );
    let external = pec_transaction("ext@pec.example", vec![tracked("f@gmail.example", false)]);
    let open_two = pec_transaction("open-2@pec.example", vec![tracked("g@x", true)]);
    for t in [&open_one, &closed, &external, &open_two] {
        store.put_transaction(t).unwrap();
    }
    assert_eq!(
        store.transaction("closed@pec.example").unwrap(),
        Some(closed)
    );
    assert_eq!(store.transaction("missing").unwrap(), None);
    assert_eq!(
        store.open_transactions().unwrap(),
        [open_one.clone(), open_two.clone()]
    );

    // Closing one removes it from the open set; reopening adds it back.
    let mut now_closed = open_two.clone();
    now_closed.recipients[0].consegna = Some(5);
    store.put_transaction(&now_closed).unwrap();
    assert_eq!(
        store.open_transactions().unwrap(),
        std::slice::from_ref(&open_one)
    );
    store.put_transaction(&open_two).unwrap();
    assert_eq!(store.open_transactions().unwrap().len(), 2);

    assert!(store.remove_transaction("open-1@pec.example").unwrap());
    assert!(!store.remove_transaction("open-1@pec.example").unwrap());
    assert_eq!(store.open_transactions().unwrap(), [open_two]);
}

#[test]
fn claim_is_true_once_also_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert!(!store.claimed("msg-1/bob@x").unwrap());
        assert!(store.claim("msg-1/bob@x").unwrap());
        assert!(!store.claim("msg-1/bob@x").unwrap());
        assert!(store.claim("msg-1/carol@x").unwrap());
        assert!(store.claimed("msg-1/bob@x").unwrap());
        store.flush().unwrap();
    }
    let store = open(dir.path());
    assert!(!store.claim("msg-1/bob@x").unwrap());
    assert!(store.claimed("msg-1/carol@x").unwrap());
    assert!(store.claim("msg-2/bob@x").unwrap());
}

#[test]
fn atomically_rolls_back_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "ivan@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    let before = store.folder_state(addr, INBOX).unwrap().unwrap();

    let result: Result<(), StoreError> = store.atomically(|t| {
        t.append(addr, INBOX, b"ghost", &[], 0)?;
        t.enqueue(&entry("x.example"), b"ghost")?;
        assert!(t.claim("ghost-claim")?);
        t.add_mailbox(&mailbox("ghost@pec.example", None))?;
        Err(StoreError::Backend("caller changed its mind".to_owned()))
    });
    assert!(matches!(result, Err(StoreError::Backend(m)) if m == "caller changed its mind"));
    assert!(store.list(addr, INBOX).unwrap().is_empty());
    assert_eq!(store.fetch(addr, INBOX, before.uidnext).unwrap(), None);
    assert_eq!(store.folder_state(addr, INBOX).unwrap().unwrap(), before);
    assert_eq!(store.usage(addr).unwrap(), 0);
    assert!(store.queue().unwrap().is_empty());
    assert!(!store.claimed("ghost-claim").unwrap());
    assert!(store.mailbox("ghost@pec.example").unwrap().is_none());

    // An error of a store operation (quota) inside also rolls back earlier steps.
    store.put_mailbox(&mailbox(addr, Some(10))).unwrap();
    let result = store.atomically(|t| {
        t.append(addr, INBOX, b"12345", &[], 0)?;
        t.append(addr, SENT, b"123456", &[], 0)
    });
    assert!(matches!(result, Err(StoreError::OverQuota { used: 5, .. })));
    assert_eq!(store.usage(addr).unwrap(), 0);
    assert!(store.list(addr, INBOX).unwrap().is_empty());

    // And the success path commits everything together.
    let (uid, id) = store
        .atomically(|t| {
            let uid = t.append(addr, INBOX, b"ok", &[], 0)?;
            let id = t.enqueue(&entry("x.example"), b"receipt")?;
            t.put_transaction(&pec_transaction(
                "t@pec.example",
                vec![tracked("b@x", true)],
            ))?;
            Ok((uid, id))
        })
        .unwrap();
    assert_eq!(store.fetch(addr, INBOX, uid).unwrap().unwrap(), b"ok");
    assert_eq!(store.queue_message(id).unwrap().unwrap(), b"receipt");
    assert_eq!(store.open_transactions().unwrap().len(), 1);
}

#[test]
fn concurrent_appends_get_distinct_uids() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "judy@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| store.append(addr, INBOX, b"abcd", &[], 0).unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u32> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=100).collect::<Vec<_>>());
    assert_eq!(store.usage(addr).unwrap(), 400);
    assert_eq!(uids(&store, addr, INBOX), all);
}

const WRITER_DIR: &str = "PECBOX_STORE_TEST_WRITER_DIR";

/// The writer role of `flushed_data_survives_sigkill`: does nothing unless re-executed
/// by it with `WRITER_DIR` set; then writes, flushes, reports and waits to be killed.
#[test]
fn durability_writer() {
    let Some(dir) = std::env::var_os(WRITER_DIR) else {
        return;
    };
    let store = open(Path::new(&dir));
    let addr = "kim@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    let uid = store
        .atomically(|t| {
            let uid = t.append(addr, INBOX, b"durable message", &[], 7)?;
            t.enqueue(&entry("y.example"), b"durable receipt")?;
            t.claim("durable-claim")?;
            Ok(uid)
        })
        .unwrap();
    store.flush().unwrap();
    println!("FLUSHED {uid}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
}

/// Kills the writer even if the test fails half-way.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn flushed_data_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    // The harness prints "test durability_writer ... " on the same line, and a reader
    // thread with a timeout keeps a stuck writer from hanging the suite.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let uid = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("FLUSHED ")?.1.trim().parse::<u32>().ok());
        let _ = tx.send(uid);
    });
    let uid = rx
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the writer did not report in time")
        .expect("the writer exited before flushing");
    // Child::kill is SIGKILL on Unix: no destructor, no sled shutdown flush.
    child.0.kill().unwrap();
    child.0.wait().unwrap();

    let store = open(dir.path());
    let addr = "kim@pec.example";
    assert!(store.mailbox(addr).unwrap().is_some());
    assert_eq!(
        store.fetch(addr, INBOX, uid).unwrap().unwrap(),
        b"durable message"
    );
    assert_eq!(store.usage(addr).unwrap(), 15);
    let queue = store.queue().unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(
        store.queue_message(queue[0].id).unwrap().unwrap(),
        b"durable receipt"
    );
    assert!(!store.claim("durable-claim").unwrap());
}

#[test]
fn corrupt_records_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let addr = "leo@pec.example";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    store.append(addr, INBOX, b"fine", &[], 0).unwrap();
    let db = store.raw_db();

    // Garbage under a mailbox key.
    db.insert(b"A\0mallory@pec.example", &b"\xff\x00garbage"[..])
        .unwrap();
    assert!(matches!(
        store.mailbox("Mallory@pec.example"),
        Err(StoreError::Corrupt { key, .. }) if key.contains("mallory@pec.example")
    ));
    assert!(matches!(store.mailboxes(), Err(StoreError::Corrupt { .. })));
    assert!(matches!(
        store.append("mallory@pec.example", INBOX, b"x", &[], 0),
        Err(StoreError::Corrupt { .. })
    ));
    // A corrupt account can still be removed.
    assert!(store.remove_mailbox("mallory@pec.example").unwrap());
    assert_eq!(store.mailboxes().unwrap().len(), 1);

    // Garbage in place of a message's metadata.
    let meta_key = db.scan_prefix(b"M\0").keys().next().unwrap().unwrap();
    db.insert(meta_key, &b"{not json"[..]).unwrap();
    assert!(matches!(
        store.list(addr, INBOX),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.set_flags(addr, INBOX, 1, &[]),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.remove(addr, INBOX, 1).unwrap());
    assert!(store.list(addr, INBOX).unwrap().is_empty());
    assert_eq!(store.usage(addr).unwrap(), 0);

    // A folder record, a queue entry, a provider, a transaction.
    db.insert(b"F\0leo@pec.example\0Sent", &b"[]"[..]).unwrap();
    assert!(matches!(
        store.folders(addr),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.list(addr, SENT),
        Err(StoreError::Corrupt { .. })
    ));
    let id = store.enqueue(&entry("z.example"), b"m").unwrap();
    let mut queue_key = b"Q\0".to_vec();
    queue_key.extend_from_slice(&id.to_be_bytes());
    db.insert(queue_key, &b"7"[..]).unwrap();
    assert!(matches!(store.queue(), Err(StoreError::Corrupt { .. })));
    assert!(matches!(
        store.queue_entry(id),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.dequeue(id).unwrap());

    db.insert(b"P\0Broken", &b"nope"[..]).unwrap();
    db.insert(b"D\0broken.example", &b"Broken"[..]).unwrap();
    assert!(matches!(
        store.provider_for_domain("broken.example"),
        Err(StoreError::Corrupt { .. })
    ));
    // A corrupt provider entry can be replaced by the next index refresh.
    let fixed = ProviderEntry {
        name: "Broken".to_owned(),
        domains: vec!["fixed.example".to_owned()],
        mail_receipt: "r@fixed.example".to_owned(),
        certificates: vec![],
        certificate_hashes: vec![],
    };
    store.put_provider(&fixed).unwrap();
    assert_eq!(
        store.provider_for_domain("fixed.example").unwrap(),
        Some(fixed)
    );
    assert_eq!(store.provider_for_domain("broken.example").unwrap(), None);

    db.insert(b"T\0bad-id", &b"\x00"[..]).unwrap();
    db.insert(b"O\0bad-id", &b""[..]).unwrap();
    assert!(matches!(
        store.transaction("bad-id"),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.open_transactions(),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(store.remove_transaction("bad-id").unwrap());
    assert!(store.open_transactions().unwrap().is_empty());
}

#[test]
fn large_bodies_live_in_files_shared_by_copies_and_swept_when_unreferenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let addr = "big@pec.test";
    store.add_mailbox(&mailbox(addr, None)).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let blobs = dir.path().join("blobs");
    let files = || std::fs::read_dir(&blobs).unwrap().count();
    let a = store.append(addr, INBOX, &big, &[], 0).unwrap();
    assert_eq!(files(), 1, "a large body is a file");
    assert_eq!(store.fetch(addr, INBOX, a).unwrap().unwrap(), big);
    let b = store.copy(addr, INBOX, a, SENT).unwrap().unwrap();
    let c = store.append(addr, INBOX, &big, &[], 0).unwrap();
    assert_eq!(files(), 1, "copies and equal bodies share the file");
    assert_eq!(store.usage(addr).unwrap(), 3 * big.len() as u64);
    let small = store
        .append(addr, INBOX, b"From: x\r\n\r\nhi\r\n", &[], 0)
        .unwrap();
    assert_eq!(files(), 1, "a small body stays in the database");

    store.remove(addr, INBOX, a).unwrap();
    store.remove(addr, SENT, b).unwrap();
    assert_eq!(
        store.sweep_blobs(Duration::ZERO).unwrap(),
        0,
        "still referenced"
    );
    assert_eq!(store.fetch(addr, INBOX, c).unwrap().unwrap(), big);
    store.remove(addr, INBOX, c).unwrap();
    assert_eq!(
        store.sweep_blobs(pecbox::store::SWEEP_MIN_AGE).unwrap(),
        0,
        "a young file is left for a transaction that may be about to refer to it"
    );
    assert_eq!(store.sweep_blobs(Duration::ZERO).unwrap(), 1);
    assert_eq!(files(), 0);
    assert_eq!(store.usage(addr).unwrap(), 15, "the small message alone");
    assert!(store.fetch(addr, INBOX, small).unwrap().is_some());

    // the queue too; removing a mailbox drops its references
    let id = store.enqueue(&entry("pec.other.test"), &big).unwrap();
    store.append(addr, INBOX, &big, &[], 0).unwrap();
    assert_eq!(store.queue_message(id).unwrap().unwrap(), big);
    store.remove_mailbox(addr).unwrap();
    assert_eq!(
        store.sweep_blobs(Duration::ZERO).unwrap(),
        0,
        "the queue holds it"
    );
    store.dequeue(id).unwrap();
    assert_eq!(store.sweep_blobs(Duration::ZERO).unwrap(), 1);
    drop(store);
    let reopened = Store::open_waiting(dir.path(), Duration::from_secs(5)).unwrap();
    assert!(reopened.queue_message(id).unwrap().is_none());
}
