//! One IMAP session: login, the selected folder's view, and every command over the store.
//!
//! The view of the selected folder is the list of its messages as last told to the
//! client (sequence number = position). Store events mark it dirty; before each tagged
//! answer (and at once under IDLE) it is compared with the store and the differences
//! become EXISTS, EXPUNGE and FETCH FLAGS. Messages removed by others while EXPUNGE
//! may not be sent (during FETCH, STORE, SEARCH) stay in the view, marked gone.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::{
    Atom, Charset, IString, Literal, NString, QuotedChar, Tag, Vec1,
};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::flag::{
    Flag, FlagFetch, FlagNameAttribute, FlagPerm, StoreResponse, StoreType,
};
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{Capability, Code, CodeOther, Data, StatusKind};
use imap_codec::imap_types::search::SearchKey;
use imap_codec::imap_types::sequence::SequenceSet;
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_codec::imap_types::IntoStatic;
use tokio::sync::broadcast;

use super::folders::{self, DELIMITER};
use super::mime::{istring, Mime};
use super::search::{self, has_flag, in_set, largest_explicit, Candidate};
use super::server::{Flow, ImapAuth, Out, Shared};
use crate::provider::auth::LoginError;
use crate::store::{FolderState, MessageMeta, Store, StoreError, StoreEvent, INBOX, SENT};

/// Messages whose bodies are read from the store in one go.
const CHUNK: usize = 128;

pub(super) fn capabilities(authenticated: bool) -> Vec1<Capability<'static>> {
    let mut caps = vec![
        Capability::Imap4Rev1,
        Capability::LiteralPlus,
        Capability::SaslIr,
        Capability::Enable,
        Capability::Idle,
        Capability::UidPlus,
        Capability::Move,
        Capability::Namespace,
        Capability::Unselect,
        Capability::try_from("SPECIAL-USE").expect("valid atom"),
    ];
    if !authenticated {
        caps.push(Capability::Auth(AuthMechanism::Plain));
        caps.push(Capability::Auth(AuthMechanism::Login));
    }
    Vec1::try_from(caps).expect("not empty")
}

fn code_other(code: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(code.as_bytes()))
}

/// What the session waits for from the client.
pub(super) enum Mode {
    Command,
    Authenticate(AuthState),
    Idle(Tag<'static>),
}

pub(super) struct AuthState {
    pub tag: Tag<'static>,
    login_mechanism: bool,
    /// LOGIN mechanism: the user name, once sent.
    user: Option<String>,
}

/// A tagged answer.
struct Done {
    kind: StatusKind,
    code: Option<Code<'static>>,
    text: Cow<'static, str>,
}

fn ok(text: impl Into<Cow<'static, str>>) -> Done {
    Done {
        kind: StatusKind::Ok,
        code: None,
        text: text.into(),
    }
}

fn no(text: impl Into<Cow<'static, str>>) -> Done {
    Done {
        kind: StatusKind::No,
        code: None,
        text: text.into(),
    }
}

fn bad(text: impl Into<Cow<'static, str>>) -> Done {
    Done {
        kind: StatusKind::Bad,
        code: None,
        text: text.into(),
    }
}

impl Done {
    fn code(mut self, code: Code<'static>) -> Self {
        self.code = Some(code);
        self
    }
}

/// A store failure as the client sees it; the details go to the log.
fn failed(e: StoreError) -> Done {
    match e {
        StoreError::OverQuota { .. } => no("mailbox over quota").code(Code::OverQuota),
        StoreError::NoFolder { .. } => no("no such mailbox").code(Code::TryCreate),
        StoreError::FolderExists(_) => {
            no("mailbox already exists").code(code_other("ALREADYEXISTS"))
        }
        StoreError::InvalidName(_) => no("invalid mailbox name"),
        StoreError::InboxUndeletable => no("INBOX cannot be deleted").code(code_other("CANNOT")),
        e => {
            tracing::error!("imap: store: {e}");
            no("temporary server failure, try again").code(code_other("UNAVAILABLE"))
        }
    }
}

/// One message of the view.
struct Msg {
    meta: MessageMeta,
    /// Removed from the store, EXPUNGE not sent yet.
    gone: bool,
}

struct Selected {
    folder: String,
    uidvalidity: u32,
    read_only: bool,
    msgs: Vec<Msg>,
    /// Something changed in the store since the view was last compared.
    dirty: bool,
}

impl Selected {
    fn max_uid(&self) -> u32 {
        self.msgs.last().map_or(0, |m| m.meta.uid)
    }
}

pub(super) struct Session<A> {
    pub shared: Arc<Shared<A>>,
    peer: SocketAddr,
    /// The mailbox once logged in.
    pub(super) address: Option<String>,
    failures: u32,
    selected: Option<Selected>,
    pub events: Option<broadcast::Receiver<StoreEvent>>,
    pub mode: Mode,
}

fn folder_name(m: &Mailbox<'_>) -> Result<String, Done> {
    let name = match m {
        Mailbox::Inbox => return Ok(INBOX.to_owned()),
        Mailbox::Other(other) => String::from_utf8(other.inner().as_ref().to_vec())
            .map_err(|_| bad("mailbox name is not UTF-8 (use modified UTF-7)"))?,
    };
    let name = name.trim_end_matches(DELIMITER);
    if name.is_empty() || name.contains('\0') || name.starts_with(DELIMITER) {
        return Err(no("invalid mailbox name"));
    }
    if name.eq_ignore_ascii_case(INBOX) {
        return Ok(INBOX.to_owned());
    }
    Ok(name.to_owned())
}

fn wire_mailbox(name: &str) -> Mailbox<'static> {
    Mailbox::try_from(name.to_owned()).unwrap_or(Mailbox::Inbox)
}

fn flags_of(meta: &MessageMeta) -> Vec<FlagFetch<'static>> {
    meta.flags
        .iter()
        .filter_map(|f| Flag::try_from(f.as_str()).ok())
        .map(|f| FlagFetch::Flag(f.into_static()))
        .collect()
}

fn internal_date(unix: i64) -> Option<DateTime> {
    DateTime::try_from(super::local_time(unix).fixed_offset()).ok()
}

fn nz(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

fn n32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// uids (ascending) as a compact set: `1:3,7`.
fn uid_set(uids: &[u32]) -> Option<UidSet> {
    let mut elements = Vec::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            end = uids[i + 1];
            i += 1;
        }
        i += 1;
        elements.push(if start == end {
            UidElement::Single(nz(start)?)
        } else {
            UidElement::Range(nz(start)?, nz(end)?)
        });
    }
    Some(UidSet(Vec1::try_from(elements).ok()?))
}

fn literal_owned(bytes: Vec<u8>) -> NString<'static> {
    if Literal::try_from(bytes.as_slice()).is_err() {
        return NString(Some(istring(&bytes)));
    }
    match Literal::try_from(bytes) {
        Ok(l) => NString(Some(IString::Literal(l))),
        Err(_) => NString(None),
    }
}

fn literal(bytes: &[u8]) -> NString<'_> {
    match Literal::try_from(bytes) {
        Ok(l) => NString(Some(IString::Literal(l))),
        Err(_) => NString(Some(istring(bytes))),
    }
}

impl<A: ImapAuth> Session<A> {
    pub(super) fn new(shared: Arc<Shared<A>>, peer: SocketAddr) -> Self {
        Session {
            shared,
            peer,
            address: None,
            failures: 0,
            selected: None,
            events: None,
            mode: Mode::Command,
        }
    }

    fn store(&self) -> Store {
        self.shared.store.clone()
    }

    /// Runs a store call off the async threads (sled may block).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.store();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Backend(format!("store task failed: {e}"))),
        }
    }

    fn address(&self) -> String {
        self.address.clone().unwrap_or_default()
    }

    /// A folder's state and messages, or the answer for a folder that does not exist.
    async fn load_folder(&self, name: &str) -> Result<(FolderState, Vec<MessageMeta>), Done> {
        let (addr, folder) = (self.address(), name.to_string());
        let loaded = self
            .blocking(move |s| {
                let state = s.folder_state(&addr, &folder)?;
                let list = match state {
                    Some(_) => s.list(&addr, &folder)?,
                    None => Vec::new(),
                };
                Ok((state, list))
            })
            .await;
        match loaded {
            Ok((Some(state), list)) => Ok((state, list)),
            Ok((None, _)) => Err(no("no such mailbox").code(code_other("NONEXISTENT"))),
            Err(e) => Err(failed(e)),
        }
    }

    pub(super) fn note_event(&mut self, event: Result<StoreEvent, broadcast::error::RecvError>) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        match event {
            Ok(e) => {
                if e.uidvalidity == sel.uidvalidity && Some(&e.address) == self.address.as_ref() {
                    sel.dirty = true;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => sel.dirty = true,
            Err(broadcast::error::RecvError::Closed) => self.events = None,
        }
    }

    fn drain_events(&mut self) {
        loop {
            let event = match self.events.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(e)) => Ok(e),
                Some(Err(broadcast::error::TryRecvError::Lagged(n))) => {
                    Err(broadcast::error::RecvError::Lagged(n))
                }
                Some(Err(broadcast::error::TryRecvError::Closed)) => {
                    Err(broadcast::error::RecvError::Closed)
                }
                Some(Err(broadcast::error::TryRecvError::Empty)) | None => return,
            };
            self.note_event(event);
        }
    }

    /// Tells the client what changed in the selected folder since it was last told.
    pub(super) async fn sync(&mut self, out: &mut Out, allow_expunge: bool) {
        self.drain_events();
        let Some(sel) = self.selected.as_ref() else {
            return;
        };
        let expunge_due = allow_expunge && sel.msgs.iter().any(|m| m.gone);
        if !sel.dirty && !expunge_due {
            return;
        }
        let (addr, folder) = (self.address(), sel.folder.clone());
        let listed = self.blocking(move |s| s.list(&addr, &folder)).await;
        let list = match listed {
            Ok(list) => list,
            Err(StoreError::NoFolder { .. }) => Vec::new(),
            Err(e) => {
                tracing::warn!(peer = %self.peer, "imap: cannot refresh the folder: {e}");
                return;
            }
        };
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        sel.dirty = false;
        let mut changed = Vec::new();
        let mut j = 0;
        for m in sel.msgs.iter_mut() {
            while j < list.len() && list[j].uid < m.meta.uid {
                j += 1;
            }
            if j < list.len() && list[j].uid == m.meta.uid {
                if list[j].flags != m.meta.flags {
                    m.meta.flags = list[j].flags.clone();
                    changed.push(m.meta.uid);
                }
                j += 1;
            } else {
                m.gone = true;
            }
        }
        if allow_expunge {
            let mut i = 0;
            while i < sel.msgs.len() {
                if sel.msgs[i].gone {
                    if let Ok(d) = Data::expunge(n32(i + 1)) {
                        out.data(d);
                    }
                    sel.msgs.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        for uid in changed {
            if let Some(i) = sel.msgs.iter().position(|m| m.meta.uid == uid) {
                let meta = &sel.msgs[i].meta;
                let items = vec![
                    MessageDataItem::Uid(nz(meta.uid).unwrap_or(NonZeroU32::MIN)),
                    MessageDataItem::Flags(flags_of(meta)),
                ];
                out.data(Data::Fetch {
                    seq: nz(n32(i + 1)).unwrap_or(NonZeroU32::MIN),
                    items: Vec1::try_from(items).expect("not empty"),
                });
            }
        }
        let max = sel.max_uid();
        let before = sel.msgs.len();
        sel.msgs.extend(
            list.into_iter()
                .filter(|m| m.uid > max)
                .map(|meta| Msg { meta, gone: false }),
        );
        if sel.msgs.len() != before {
            out.data(Data::Exists(n32(sel.msgs.len())));
            out.data(Data::Recent(0));
        }
    }

    pub(super) async fn command(&mut self, cmd: Command<'_>, out: &mut Out) -> Flow {
        let Command { tag, body } = cmd;
        let allow_expunge = !matches!(
            &body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
        );
        let authenticated = self.address.is_some();
        let done = match body {
            CommandBody::Capability => {
                out.data(Data::Capability(capabilities(authenticated)));
                ok("CAPABILITY completed")
            }
            CommandBody::Noop => ok("NOOP completed"),
            CommandBody::Logout => {
                out.bye(None, "pecbox logging out");
                out.status(Some(&tag), StatusKind::Ok, None, "LOGOUT completed");
                return Flow::Close;
            }
            CommandBody::Login { username, password } => {
                if authenticated {
                    bad("already logged in")
                } else {
                    let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                    let password =
                        String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                    return self.login(tag.into_static(), &user, &password, out).await;
                }
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                if authenticated {
                    bad("already logged in")
                } else {
                    let tag = tag.into_static();
                    let login_mechanism = match mechanism {
                        AuthMechanism::Plain => false,
                        AuthMechanism::Login => true,
                        _ => {
                            out.status(Some(&tag), StatusKind::No, None, "unsupported mechanism");
                            return Flow::Continue;
                        }
                    };
                    let state = AuthState {
                        tag,
                        login_mechanism,
                        user: None,
                    };
                    return match initial_response {
                        Some(ir) => {
                            self.authenticate_step(state, ir.declassify().to_vec(), out)
                                .await
                        }
                        None => {
                            if login_mechanism {
                                out.continuation_base64(b"Username:");
                            } else {
                                out.continuation_base64(b"");
                            }
                            self.mode = Mode::Authenticate(state);
                            Flow::Continue
                        }
                    };
                }
            }
            _ if !authenticated => bad("log in first"),
            CommandBody::Select { mailbox, .. } => self.select(&mailbox, false, out).await,
            CommandBody::Examine { mailbox, .. } => self.select(&mailbox, true, out).await,
            CommandBody::Create { mailbox } => self.create(&mailbox).await,
            CommandBody::Delete { mailbox } => self.delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox).await,
            CommandBody::Unsubscribe { .. } => ok("UNSUBSCRIBE completed"),
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, false, out).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, true, out).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(&mailbox, &item_names, out).await,
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, &flags, date.as_ref(), &message).await,
            CommandBody::Namespace => {
                let personal = Namespace::new(
                    IString::try_from("").expect("valid"),
                    QuotedChar::try_from(DELIMITER).ok(),
                );
                out.data(Data::Namespace {
                    personal: vec![personal],
                    other: Vec::new(),
                    shared: Vec::new(),
                });
                ok("NAMESPACE completed")
            }
            CommandBody::Enable { .. } => {
                // Nothing pecbox supports needs enabling.
                out.data(Data::Enabled {
                    capabilities: Vec::new(),
                });
                ok("ENABLE completed")
            }
            CommandBody::Idle => {
                out.continuation("idling");
                self.mode = Mode::Idle(tag.into_static());
                self.sync(out, true).await;
                return Flow::Continue;
            }
            _ if self.selected.is_none() => bad("no mailbox selected"),
            CommandBody::Check => ok("CHECK completed"),
            CommandBody::Close => {
                if !self.selected.as_ref().is_some_and(|s| s.read_only) {
                    let done = self.expunge(None, out, true).await;
                    if done.kind != StatusKind::Ok {
                        return self.finish(&tag, done, out, false).await;
                    }
                }
                self.unselect();
                ok("CLOSE completed")
            }
            CommandBody::Unselect => {
                self.unselect();
                ok("UNSELECT completed")
            }
            CommandBody::Expunge => self.expunge(None, out, false).await,
            CommandBody::ExpungeUid { sequence_set } => {
                self.expunge(Some(&sequence_set), out, false).await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => self.search(charset.as_ref(), &criteria, uid, out).await,
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => {
                self.fetch(&sequence_set, macro_or_item_names, uid, out)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                self.store_flags(&sequence_set, kind, response, &flags, uid, out)
                    .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, false, out).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, true, out).await,
            _ => bad("command not supported"),
        };
        self.finish(&tag, done, out, allow_expunge).await
    }

    /// Pending updates, then the tagged answer.
    async fn finish(
        &mut self,
        tag: &Tag<'_>,
        done: Done,
        out: &mut Out,
        allow_expunge: bool,
    ) -> Flow {
        self.sync(out, allow_expunge).await;
        out.status(Some(tag), done.kind, done.code, &done.text);
        Flow::Continue
    }

    // ---- login ----

    async fn login(
        &mut self,
        tag: Tag<'static>,
        user: &str,
        password: &str,
        out: &mut Out,
    ) -> Flow {
        let peer = self.peer;
        match self.shared.auth.authenticate(peer, user, password).await {
            Ok(address) => {
                let address = address.to_lowercase();
                let addr = address.clone();
                if let Err(e) = self
                    .blocking(move |s| folders::ensure_special(s, &addr))
                    .await
                {
                    tracing::warn!(%peer, mailbox = %address, "imap: special-use folders: {e}");
                }
                tracing::info!(%peer, mailbox = %address, "imap login");
                self.address = Some(address);
                out.status(
                    Some(&tag),
                    StatusKind::Ok,
                    Some(Code::Capability(capabilities(true))),
                    "logged in",
                );
                Flow::Continue
            }
            Err(reason @ (LoginError::AddressBlocked | LoginError::Temporary(_))) => {
                tracing::info!(%peer, user, "imap login not checked: {reason}");
                out.status(
                    Some(&tag),
                    StatusKind::No,
                    Some(code_other("UNAVAILABLE")),
                    "cannot log in now, try again later",
                );
                Flow::Continue
            }
            Err(reason) => {
                tracing::info!(%peer, user, "imap login failed: {reason}");
                self.failures += 1;
                out.status(
                    Some(&tag),
                    StatusKind::No,
                    Some(code_other("AUTHENTICATIONFAILED")),
                    "authentication failed",
                );
                if self.failures >= self.shared.limits.max_auth_failures {
                    out.bye(None, "too many failed logins");
                    return Flow::Close;
                }
                Flow::Continue
            }
        }
    }

    pub(super) async fn authenticate_step(
        &mut self,
        mut state: AuthState,
        data: Vec<u8>,
        out: &mut Out,
    ) -> Flow {
        if state.login_mechanism {
            let text = String::from_utf8_lossy(&data).into_owned();
            match state.user.take() {
                None => {
                    state.user = Some(text);
                    out.continuation_base64(b"Password:");
                    self.mode = Mode::Authenticate(state);
                    Flow::Continue
                }
                Some(user) => self.login(state.tag, &user, &text, out).await,
            }
        } else {
            // RFC 4616: [authzid] NUL authcid NUL passwd
            let fields: Vec<&[u8]> = data.split(|b| *b == 0).collect();
            if fields.len() != 3 {
                out.status(
                    Some(&state.tag),
                    StatusKind::Bad,
                    None,
                    "malformed PLAIN response",
                );
                return Flow::Continue;
            }
            let authzid = String::from_utf8_lossy(fields[0]).into_owned();
            let user = String::from_utf8_lossy(fields[1]).into_owned();
            let password = String::from_utf8_lossy(fields[2]).into_owned();
            if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&user) {
                out.status(
                    Some(&state.tag),
                    StatusKind::No,
                    Some(code_other("AUTHORIZATIONFAILED")),
                    "cannot act as another user",
                );
                return Flow::Continue;
            }
            self.login(state.tag, &user, &password, out).await
        }
    }

    // ---- folders ----

    fn unselect(&mut self) {
        self.selected = None;
        self.events = None;
    }

    async fn select(&mut self, mailbox: &Mailbox<'_>, read_only: bool, out: &mut Out) -> Done {
        self.unselect();
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        // Subscribe first: a change between listing and subscribing is not lost.
        let events = self.store().subscribe();
        let (state, list) = match self.load_folder(&name).await {
            Ok(loaded) => loaded,
            Err(done) => return done,
        };
        let mut keywords: Vec<String> = Vec::new();
        for m in &list {
            for f in &m.flags {
                if !f.starts_with('\\') && !keywords.contains(f) {
                    keywords.push(f.clone());
                }
            }
        }
        let mut flags = vec![
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        flags.extend(
            keywords
                .iter()
                .filter_map(|k| Flag::try_from(k.as_str()).ok()),
        );
        out.data(Data::Flags(flags.clone()));
        let mut permanent: Vec<FlagPerm<'_>> = flags.into_iter().map(FlagPerm::Flag).collect();
        permanent.push(FlagPerm::Asterisk);
        out.data(Data::Exists(n32(list.len())));
        out.data(Data::Recent(0));
        if let Some(i) = list.iter().position(|m| !has_flag(m, "\\Seen")) {
            if let Ok(code) = Code::unseen(n32(i + 1)) {
                out.status(None, StatusKind::Ok, Some(code), "first unseen");
            }
        }
        if !read_only {
            out.status(
                None,
                StatusKind::Ok,
                Some(Code::PermanentFlags(permanent)),
                "flags permitted",
            );
        } else {
            out.status(
                None,
                StatusKind::Ok,
                Some(Code::PermanentFlags(Vec::new())),
                "read-only",
            );
        }
        if let Ok(code) = Code::uidvalidity(state.uidvalidity) {
            out.status(None, StatusKind::Ok, Some(code), "UIDs valid");
        }
        if let Ok(code) = Code::uidnext(state.uidnext) {
            out.status(None, StatusKind::Ok, Some(code), "predicted next UID");
        }
        self.selected = Some(Selected {
            folder: name,
            uidvalidity: state.uidvalidity,
            read_only,
            msgs: list
                .into_iter()
                .map(|meta| Msg { meta, gone: false })
                .collect(),
            dirty: false,
        });
        self.events = Some(events);
        if read_only {
            ok("EXAMINE completed").code(Code::ReadOnly)
        } else {
            ok("SELECT completed").code(Code::ReadWrite)
        }
    }

    async fn create(&mut self, mailbox: &Mailbox<'_>) -> Done {
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        if name == INBOX {
            return no("INBOX exists").code(code_other("ALREADYEXISTS"));
        }
        let addr = self.address();
        let created = self
            .blocking(move |s| {
                // RFC 3501: create the superiors too, so the hierarchy has no holes.
                for parent in folders::parents(&name) {
                    match s.create_folder(&addr, parent) {
                        Ok(_) | Err(StoreError::FolderExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                s.create_folder(&addr, &name)
            })
            .await;
        match created {
            Ok(_) => ok("CREATE completed"),
            Err(e) => failed(e),
        }
    }

    async fn folder_names(&self) -> Result<Vec<String>, StoreError> {
        let addr = self.address();
        let folders = self.blocking(move |s| s.folders(&addr)).await?;
        Ok(folders.into_iter().map(|(n, _)| n).collect())
    }

    async fn delete(&mut self, mailbox: &Mailbox<'_>) -> Done {
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        if name == INBOX || name == SENT {
            return no("this mailbox cannot be deleted").code(code_other("CANNOT"));
        }
        let names = match self.folder_names().await {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        if folders::has_children(&name, &names) {
            return no("mailbox has children; delete them first").code(code_other("INUSE"));
        }
        if self.selected.as_ref().is_some_and(|s| s.folder == name) {
            self.unselect();
        }
        let addr = self.address();
        match self.blocking(move |s| s.delete_folder(&addr, &name)).await {
            Ok(true) => ok("DELETE completed"),
            Ok(false) => no("no such mailbox").code(code_other("NONEXISTENT")),
            Err(e) => failed(e),
        }
    }

    async fn rename(&mut self, from: &Mailbox<'_>, to: &Mailbox<'_>) -> Done {
        let (from, to) = match (folder_name(from), folder_name(to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(d), _) | (_, Err(d)) => return d,
        };
        if from == SENT {
            return no("Sent cannot be renamed").code(code_other("CANNOT"));
        }
        if to == INBOX {
            return no("INBOX exists").code(code_other("ALREADYEXISTS"));
        }
        let names = match self.folder_names().await {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        if !names.contains(&from) {
            return no("no such mailbox").code(code_other("NONEXISTENT"));
        }
        // Children move along: a/x → b/x.
        let prefix = format!("{from}{DELIMITER}");
        let mut moves: Vec<(String, String)> = vec![(from.clone(), to.clone())];
        if from != INBOX {
            for n in &names {
                if let Some(rest) = n.strip_prefix(&prefix) {
                    moves.push((n.clone(), format!("{to}{DELIMITER}{rest}")));
                }
            }
        }
        if self
            .selected
            .as_ref()
            .is_some_and(|s| moves.iter().any(|(f, _)| *f == s.folder))
        {
            self.unselect();
        }
        let addr = self.address();
        let renamed = self
            .blocking(move |s| {
                for parent in folders::parents(&to) {
                    if parent != from {
                        match s.create_folder(&addr, parent) {
                            Ok(_) | Err(StoreError::FolderExists(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                s.atomically(|t| {
                    for (f, t2) in &moves {
                        t.rename_folder(&addr, f, t2)?;
                    }
                    Ok(())
                })
            })
            .await;
        match renamed {
            Ok(()) => ok("RENAME completed"),
            Err(e) => failed(e),
        }
    }

    async fn subscribe(&mut self, mailbox: &Mailbox<'_>) -> Done {
        // Every folder counts as subscribed (LSUB lists them all).
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        match self.folder_names().await {
            Ok(names) if names.contains(&name) => ok("SUBSCRIBE completed"),
            Ok(_) => no("no such mailbox").code(code_other("NONEXISTENT")),
            Err(e) => failed(e),
        }
    }

    async fn list(
        &mut self,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
        out: &mut Out,
    ) -> Done {
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(s) => String::from_utf8_lossy(s.as_ref()).into_owned(),
        };
        let reference = match reference {
            Mailbox::Inbox => INBOX.to_owned(),
            Mailbox::Other(o) => String::from_utf8_lossy(o.inner().as_ref()).into_owned(),
        };
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        if pattern.is_empty() && !lsub {
            // RFC 3501 §6.3.8: the hierarchy delimiter and root.
            out.data(Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
            });
            return ok("LIST completed");
        }
        let full = format!("{reference}{pattern}");
        let names = match self.folder_names().await {
            Ok(n) => n,
            Err(e) => return failed(e),
        };
        for name in names.iter().filter(|n| folders::matches(&full, n)) {
            let mut items = vec![FlagNameAttribute::from(
                Atom::try_from(if folders::has_children(name, &names) {
                    "HasChildren"
                } else {
                    "HasNoChildren"
                })
                .expect("valid atom"),
            )];
            if let Some(attr) = folders::special_use(name) {
                items.push(FlagNameAttribute::from(
                    Atom::try_from(attr).expect("valid atom"),
                ));
            }
            let mailbox = wire_mailbox(name);
            out.data(if lsub {
                Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                }
            } else {
                Data::List {
                    items,
                    delimiter,
                    mailbox,
                }
            });
        }
        ok(if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        })
    }

    async fn status(
        &mut self,
        mailbox: &Mailbox<'_>,
        names: &[StatusDataItemName],
        out: &mut Out,
    ) -> Done {
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        let (state, list) = match self.load_folder(&name).await {
            Ok(loaded) => loaded,
            Err(done) => return done,
        };
        let mut items = Vec::new();
        for item in names {
            items.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(n32(list.len())),
                StatusDataItemName::Recent => StatusDataItem::Recent(0),
                StatusDataItemName::UidNext => match nz(state.uidnext) {
                    Some(n) => StatusDataItem::UidNext(n),
                    None => continue,
                },
                StatusDataItemName::UidValidity => match nz(state.uidvalidity) {
                    Some(n) => StatusDataItem::UidValidity(n),
                    None => continue,
                },
                StatusDataItemName::Unseen => StatusDataItem::Unseen(n32(list
                    .iter()
                    .filter(|m| !has_flag(m, "\\Seen"))
                    .count())),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(n32(list
                    .iter()
                    .filter(|m| has_flag(m, "\\Deleted"))
                    .count())),
                _ => continue,
            });
        }
        out.data(Data::Status {
            mailbox: wire_mailbox(&name),
            items: items.into(),
        });
        ok("STATUS completed")
    }

    async fn append(
        &mut self,
        mailbox: &Mailbox<'_>,
        flags: &[Flag<'_>],
        date: Option<&DateTime>,
        message: &LiteralOrLiteral8<'_>,
    ) -> Done {
        let name = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        let data = match message {
            LiteralOrLiteral8::Literal(l) => l.data().to_vec(),
            LiteralOrLiteral8::Literal8(l) => l.data.to_vec(),
        };
        if data.len() as u64 > self.shared.limits.max_message_bytes {
            return no("message too big").code(Code::TooBig);
        }
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let when = date.map_or_else(
            || chrono::Utc::now().timestamp(),
            |d| d.as_ref().timestamp(),
        );
        let (addr, folder) = (self.address(), name.clone());
        let appended = self
            .blocking(move |s| {
                let Some(state) = s.folder_state(&addr, &folder)? else {
                    return Ok(None);
                };
                let uid = s.append(&addr, &folder, &data, &flags, when)?;
                s.flush()?;
                Ok(Some((state.uidvalidity, uid)))
            })
            .await;
        match appended {
            Ok(Some((uidvalidity, uid))) => {
                if let Some(sel) = self.selected.as_mut().filter(|s| s.folder == name) {
                    sel.dirty = true;
                }
                let done = ok("APPEND completed");
                match (nz(uidvalidity), nz(uid)) {
                    (Some(uid_validity), Some(uid)) => {
                        done.code(Code::AppendUid { uid_validity, uid })
                    }
                    _ => done,
                }
            }
            Ok(None) => no("no such mailbox").code(Code::TryCreate),
            Err(e) => failed(e),
        }
    }

    // ---- the selected folder ----

    /// The view indexes a sequence set names; BAD for sequence numbers past the end.
    fn targets(&self, set: &SequenceSet, uid: bool) -> Result<Vec<usize>, Done> {
        let Some(sel) = self.selected.as_ref() else {
            return Err(bad("no mailbox selected"));
        };
        let count = n32(sel.msgs.len());
        if uid {
            let max = sel.max_uid();
            return Ok((0..sel.msgs.len())
                .filter(|i| in_set(set, sel.msgs[*i].meta.uid, max))
                .collect());
        }
        if largest_explicit(set) > count {
            return Err(bad("no such message (sequence number past the end)"));
        }
        Ok((0..sel.msgs.len())
            .filter(|i| in_set(set, n32(i + 1), count))
            .collect())
    }

    async fn bodies(&self, uids: Vec<u32>) -> Result<Vec<Option<crate::store::Body>>, StoreError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let (addr, folder) = (self.address(), sel.folder.clone());
        self.blocking(move |s| uids.iter().map(|u| s.fetch(&addr, &folder, *u)).collect())
            .await
    }

    async fn fetch(
        &mut self,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'_>,
        uid: bool,
        out: &mut Out,
    ) -> Done {
        let mut names: Vec<MessageDataItemName<'static>> = match items {
            MacroOrMessageDataItemNames::Macro(m) => {
                m.expand().into_iter().map(|n| n.into_static()).collect()
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => {
                v.into_iter().map(|n| n.into_static()).collect()
            }
        };
        if names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::Binary { .. } | MessageDataItemName::BinarySize { .. }
            )
        }) {
            return bad("BINARY is not supported");
        }
        if uid && !names.contains(&MessageDataItemName::Uid) {
            names.insert(0, MessageDataItemName::Uid);
        }
        let targets = match self.targets(set, uid) {
            Ok(t) => t,
            Err(d) => return d,
        };
        let read_only = self.selected.as_ref().is_some_and(|s| s.read_only);
        let needs_body = names.iter().any(|n| {
            !matches!(
                n,
                MessageDataItemName::Flags
                    | MessageDataItemName::Uid
                    | MessageDataItemName::InternalDate
                    | MessageDataItemName::Rfc822Size
            )
        });

        let needs_structure = names.iter().any(|n| {
            matches!(
                n,
                MessageDataItemName::Envelope
                    | MessageDataItemName::BodyStructure
                    | MessageDataItemName::Body
                    | MessageDataItemName::Rfc822Header
                    | MessageDataItemName::Rfc822Text
                    | MessageDataItemName::BodyExt {
                        section: Some(_),
                        ..
                    }
            )
        });

        let marks_seen = !read_only
            && names.iter().any(|n| {
                matches!(
                    n,
                    MessageDataItemName::BodyExt { peek: false, .. }
                        | MessageDataItemName::Rfc822
                        | MessageDataItemName::Rfc822Text
                )
            });
        for chunk in targets.chunks(CHUNK) {
            let live: Vec<usize> = {
                let Some(sel) = self.selected.as_ref() else {
                    break;
                };
                chunk
                    .iter()
                    .copied()
                    .filter(|i| !sel.msgs[*i].gone)
                    .collect()
            };
            let raws = if needs_body {
                let uids = {
                    let Some(sel) = self.selected.as_ref() else {
                        break;
                    };
                    live.iter().map(|i| sel.msgs[*i].meta.uid).collect()
                };
                match self.bodies(uids).await {
                    Ok(r) => r,
                    Err(e) => return failed(e),
                }
            } else {
                (0..live.len()).map(|_| None).collect()
            };
            let mut seen_now: Vec<(u32, Vec<String>)> = Vec::new();
            let Some(sel) = self.selected.as_mut() else {
                break;
            };
            for (i, raw) in live.iter().zip(raws) {
                let msg = &mut sel.msgs[*i];
                if needs_body && raw.is_none() {
                    // removed meanwhile: its EXPUNGE comes later
                    continue;
                }
                let raw = raw.unwrap_or_default();
                let mut flags_changed = false;
                if marks_seen && !has_flag(&msg.meta, "\\Seen") {
                    msg.meta.flags.push("\\Seen".to_owned());
                    seen_now.push((msg.meta.uid, msg.meta.flags.clone()));
                    flags_changed = true;
                }
                // parses only if an item needs the structure (not for BODY[] alone)
                let mime = needs_structure.then(|| Mime::parse(&raw));
                let mut items = Vec::with_capacity(names.len() + 1);
                for name in &names {
                    items.push(match name {
                        MessageDataItemName::Uid => {
                            MessageDataItem::Uid(nz(msg.meta.uid).unwrap_or(NonZeroU32::MIN))
                        }
                        MessageDataItemName::Flags => MessageDataItem::Flags(flags_of(&msg.meta)),
                        MessageDataItemName::InternalDate => {
                            match internal_date(msg.meta.internal_date) {
                                Some(d) => MessageDataItem::InternalDate(d),
                                None => continue,
                            }
                        }
                        MessageDataItemName::Rfc822Size => MessageDataItem::Rfc822Size(
                            u32::try_from(msg.meta.size).unwrap_or(u32::MAX),
                        ),
                        MessageDataItemName::Envelope => match &mime {
                            Some(m) => MessageDataItem::Envelope(m.envelope()),
                            None => continue,
                        },
                        MessageDataItemName::BodyStructure => match &mime {
                            Some(m) => MessageDataItem::BodyStructure(m.structure(true)),
                            None => continue,
                        },
                        MessageDataItemName::Body => match &mime {
                            Some(m) => MessageDataItem::Body(m.structure(false)),
                            None => continue,
                        },
                        MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(literal(&raw)),
                        MessageDataItemName::Rfc822Header => {
                            let header = mime.as_ref().and_then(|m| {
                                m.section(Some(&imap_codec::imap_types::fetch::Section::Header(
                                    None,
                                )))
                            });
                            MessageDataItem::Rfc822Header(literal_owned(
                                header.map(Cow::into_owned).unwrap_or_default(),
                            ))
                        }
                        MessageDataItemName::Rfc822Text => {
                            let text = mime.as_ref().and_then(|m| {
                                m.section(Some(&imap_codec::imap_types::fetch::Section::Text(None)))
                            });
                            MessageDataItem::Rfc822Text(literal_owned(
                                text.map(Cow::into_owned).unwrap_or_default(),
                            ))
                        }
                        MessageDataItemName::BodyExt {
                            section, partial, ..
                        } => {
                            let whole: Cow<[u8]> = match (&mime, section) {
                                (_, None) => Cow::Borrowed(&raw),
                                (Some(m), Some(s)) => m.section(Some(s)).unwrap_or_default(),
                                (None, Some(_)) => Cow::Borrowed(&[]),
                            };
                            let range = |len: usize| match partial {
                                Some((start, n)) => {
                                    let s = (*start as usize).min(len);
                                    s..s.saturating_add(n.get() as usize).min(len)
                                }
                                None => 0..len,
                            };
                            // the whole message is borrowed from the store, never copied
                            let data = match whole {
                                Cow::Borrowed(b) => literal(&b[range(b.len())]),
                                Cow::Owned(v) => literal_owned(v[range(v.len())].to_vec()),
                            };
                            MessageDataItem::BodyExt {
                                section: section.clone(),
                                origin: partial.map(|(start, _)| start),
                                data,
                            }
                        }
                        _ => continue,
                    });
                }
                if flags_changed && !names.contains(&MessageDataItemName::Flags) {
                    items.push(MessageDataItem::Flags(flags_of(&msg.meta)));
                }
                if let (Some(seq), Ok(items)) = (nz(n32(i + 1)), Vec1::try_from(items)) {
                    out.data(Data::Fetch { seq, items });
                }
            }
            let folder = sel.folder.clone();
            if !seen_now.is_empty() {
                let addr = self.address();
                let stored = self
                    .blocking(move |s| {
                        s.atomically(|t| {
                            for (uid, flags) in &seen_now {
                                t.set_flags(&addr, &folder, *uid, flags)?;
                            }
                            Ok(())
                        })
                    })
                    .await;
                if let Err(e) = stored {
                    return failed(e);
                }
            }
            if !out.flush_if_big().await {
                return no("connection lost");
            }
        }
        ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        })
    }

    async fn store_flags(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[Flag<'_>],
        uid: bool,
        out: &mut Out,
    ) -> Done {
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return no("mailbox is read-only").code(Code::ReadOnly);
        }
        let targets = match self.targets(set, uid) {
            Ok(t) => t,
            Err(d) => return d,
        };
        let given: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let Some(sel) = self.selected.as_ref() else {
            return bad("no mailbox selected");
        };
        let mut changes: Vec<(usize, Vec<String>)> = Vec::new();
        for &i in &targets {
            let m = &sel.msgs[i];
            if m.gone {
                continue;
            }
            let old = &m.meta.flags;
            let new: Vec<String> = match kind {
                StoreType::Replace => given.clone(),
                StoreType::Add => {
                    let mut new = old.clone();
                    for f in &given {
                        if !new.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                            new.push(f.clone());
                        }
                    }
                    new
                }
                StoreType::Remove => old
                    .iter()
                    .filter(|o| !given.iter().any(|f| f.eq_ignore_ascii_case(o)))
                    .cloned()
                    .collect(),
            };
            if new != *old {
                changes.push((i, new));
            }
        }
        let writes: Vec<(u32, Vec<String>)> = changes
            .iter()
            .map(|(i, f)| (sel.msgs[*i].meta.uid, f.clone()))
            .collect();
        let (addr, folder) = (self.address(), sel.folder.clone());
        if !writes.is_empty() {
            let stored = self
                .blocking(move |s| {
                    s.atomically(|t| {
                        for (uid, flags) in &writes {
                            t.set_flags(&addr, &folder, *uid, flags)?;
                        }
                        Ok(())
                    })
                })
                .await;
            if let Err(e) = stored {
                return failed(e);
            }
        }
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        for (i, flags) in changes {
            sel.msgs[i].meta.flags = flags;
        }
        if matches!(response, StoreResponse::Answer) {
            for &i in &targets {
                let m = &sel.msgs[i];
                if m.gone {
                    continue;
                }
                let mut items = vec![MessageDataItem::Flags(flags_of(&m.meta))];
                if uid {
                    items.push(MessageDataItem::Uid(
                        nz(m.meta.uid).unwrap_or(NonZeroU32::MIN),
                    ));
                }
                if let Some(seq) = nz(n32(i + 1)) {
                    out.data(Data::Fetch {
                        seq,
                        items: Vec1::try_from(items).expect("not empty"),
                    });
                }
            }
        }
        ok(if uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        })
    }

    async fn copy(
        &mut self,
        set: &SequenceSet,
        mailbox: &Mailbox<'_>,
        uid: bool,
        is_move: bool,
        out: &mut Out,
    ) -> Done {
        let target = match folder_name(mailbox) {
            Ok(n) => n,
            Err(d) => return d,
        };
        if is_move && self.selected.as_ref().is_some_and(|s| s.read_only) {
            return no("mailbox is read-only").code(Code::ReadOnly);
        }
        let targets = match self.targets(set, uid) {
            Ok(t) => t,
            Err(d) => return d,
        };
        let Some(sel) = self.selected.as_ref() else {
            return bad("no mailbox selected");
        };
        let uids: Vec<u32> = targets
            .iter()
            .filter(|i| !sel.msgs[**i].gone)
            .map(|i| sel.msgs[*i].meta.uid)
            .collect();
        let (addr, source, dest) = (self.address(), sel.folder.clone(), target.clone());
        let copied = self
            .blocking(move |s| {
                let Some(state) = s.folder_state(&addr, &dest)? else {
                    return Ok(None);
                };
                let pairs = s.atomically(|t| {
                    let mut pairs = Vec::new();
                    for uid in &uids {
                        if let Some(new) = t.copy(&addr, &source, *uid, &dest)? {
                            if is_move {
                                t.remove(&addr, &source, *uid)?;
                            }
                            pairs.push((*uid, new));
                        }
                    }
                    Ok(pairs)
                })?;
                s.flush()?;
                Ok(Some((state.uidvalidity, pairs)))
            })
            .await;
        let (uidvalidity, pairs) = match copied {
            Ok(Some(x)) => x,
            Ok(None) => return no("no such mailbox").code(Code::TryCreate),
            Err(e) => return failed(e),
        };
        let verb = match (is_move, uid) {
            (true, true) => "UID MOVE completed",
            (true, false) => "MOVE completed",
            (false, true) => "UID COPY completed",
            (false, false) => "COPY completed",
        };
        let sources: Vec<u32> = pairs.iter().map(|p| p.0).collect();
        let dests: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let code = match (nz(uidvalidity), uid_set(&sources), uid_set(&dests)) {
            (Some(uid_validity), Some(source), Some(destination)) => Some(Code::CopyUid {
                uid_validity,
                source,
                destination,
            }),
            _ => None,
        };
        let Some(sel) = self.selected.as_mut() else {
            return ok(verb);
        };
        if target == sel.folder {
            sel.dirty = true;
        }
        if !is_move {
            return match code {
                Some(code) => ok(verb).code(code),
                None => ok(verb),
            };
        }
        // RFC 6851: COPYUID untagged, then the EXPUNGEs.
        if let Some(code) = code {
            out.status(None, StatusKind::Ok, Some(code), "moved");
        }
        let mut i = 0;
        while i < sel.msgs.len() {
            if sources.contains(&sel.msgs[i].meta.uid) {
                if let Ok(d) = Data::expunge(n32(i + 1)) {
                    out.data(d);
                }
                sel.msgs.remove(i);
            } else {
                i += 1;
            }
        }
        ok(verb)
    }

    /// Removes the \Deleted messages (of `uids` only, for UID EXPUNGE); `silent` for
    /// CLOSE, which sends no EXPUNGE.
    async fn expunge(&mut self, uids: Option<&SequenceSet>, out: &mut Out, silent: bool) -> Done {
        let Some(sel) = self.selected.as_ref() else {
            return bad("no mailbox selected");
        };
        if sel.read_only {
            return no("mailbox is read-only").code(Code::ReadOnly);
        }
        let max = sel.max_uid();
        let doomed: Vec<u32> = sel
            .msgs
            .iter()
            .filter(|m| !m.gone && has_flag(&m.meta, "\\Deleted"))
            .filter(|m| uids.is_none_or(|set| in_set(set, m.meta.uid, max)))
            .map(|m| m.meta.uid)
            .collect();
        if !doomed.is_empty() {
            let (addr, folder, list) = (self.address(), sel.folder.clone(), doomed.clone());
            let removed = self
                .blocking(move |s| {
                    s.atomically(|t| {
                        for uid in &list {
                            t.remove(&addr, &folder, *uid)?;
                        }
                        Ok(())
                    })?;
                    s.flush()
                })
                .await;
            if let Err(e) = removed {
                return failed(e);
            }
        }
        let Some(sel) = self.selected.as_mut() else {
            return bad("no mailbox selected");
        };
        let mut i = 0;
        while i < sel.msgs.len() {
            if doomed.contains(&sel.msgs[i].meta.uid) {
                if !silent {
                    if let Ok(d) = Data::expunge(n32(i + 1)) {
                        out.data(d);
                    }
                }
                sel.msgs.remove(i);
            } else {
                i += 1;
            }
        }
        ok("EXPUNGE completed")
    }

    async fn search(
        &mut self,
        charset: Option<&Charset<'_>>,
        criteria: &Vec1<SearchKey<'_>>,
        uid: bool,
        out: &mut Out,
    ) -> Done {
        if let Some(c) = charset {
            let c = c.as_ref();
            if !c.eq_ignore_ascii_case("UTF-8") && !c.eq_ignore_ascii_case("US-ASCII") {
                let allowed = vec![
                    Charset::try_from("UTF-8").expect("valid"),
                    Charset::try_from("US-ASCII").expect("valid"),
                ];
                return no("unsupported charset").code(Code::badcharset(allowed));
            }
        }
        let needs = criteria.as_ref().iter().any(search::needs_message);
        let Some(sel) = self.selected.as_ref() else {
            return bad("no mailbox selected");
        };
        let count = n32(sel.msgs.len());
        let max_uid = sel.max_uid();
        let indexes: Vec<usize> = (0..sel.msgs.len()).filter(|i| !sel.msgs[*i].gone).collect();
        let mut found = Vec::new();
        for chunk in indexes.chunks(CHUNK) {
            let raws = if needs {
                let uids = {
                    let Some(sel) = self.selected.as_ref() else {
                        break;
                    };
                    chunk.iter().map(|i| sel.msgs[*i].meta.uid).collect()
                };
                match self.bodies(uids).await {
                    Ok(r) => r,
                    Err(e) => return failed(e),
                }
            } else {
                (0..chunk.len()).map(|_| None).collect()
            };
            let Some(sel) = self.selected.as_ref() else {
                break;
            };
            for (i, raw) in chunk.iter().zip(raws) {
                let meta = &sel.msgs[*i].meta;
                let mime = raw.as_deref().map(Mime::parse);
                let c = Candidate {
                    seq: n32(i + 1),
                    meta,
                    mime: mime.as_ref(),
                    count,
                    max_uid,
                };
                if criteria.as_ref().iter().all(|k| c.matches(k)) {
                    found.push(if uid { meta.uid } else { n32(i + 1) });
                }
            }
        }
        out.data(Data::Search(found.into_iter().filter_map(nz).collect()));
        ok(if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        })
    }
}
