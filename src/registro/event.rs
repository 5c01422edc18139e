//! What the registro dei log records (pec-rules §1.3): one event per step of every
//! transaction, logins and administrative actions.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// Punto di accesso: ricevuta di accettazione issued.
    Accettazione,
    /// Punto di accesso: avviso di non accettazione issued (reason in outcome).
    NonAccettazione,
    /// Busta di trasporto signed and queued.
    BustaEmessa,
    /// Punto di ricezione: a busta from another provider taken in charge.
    BustaRicevuta,
    PresaInCaricoEmessa,
    PresaInCaricoRicevuta,
    ConsegnaEmessa,
    ConsegnaRicevuta,
    MancataConsegnaEmessa,
    MancataConsegnaRicevuta,
    RilevazioneVirusRicevuta,
    Anomalia,
    /// Ordinary mail refused by a mailbox's policy.
    PostaOrdinariaRifiutata,
    Preavviso12h,
    Avviso24h,
    /// One delivery attempt to a next hop, with the SMTP outcome.
    Inoltro,
    Login,
    Amministrazione,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Accettazione => "accettazione",
            Self::NonAccettazione => "non-accettazione",
            Self::BustaEmessa => "busta-emessa",
            Self::BustaRicevuta => "busta-ricevuta",
            Self::PresaInCaricoEmessa => "presa-in-carico-emessa",
            Self::PresaInCaricoRicevuta => "presa-in-carico-ricevuta",
            Self::ConsegnaEmessa => "consegna-emessa",
            Self::ConsegnaRicevuta => "consegna-ricevuta",
            Self::MancataConsegnaEmessa => "mancata-consegna-emessa",
            Self::MancataConsegnaRicevuta => "mancata-consegna-ricevuta",
            Self::RilevazioneVirusRicevuta => "rilevazione-virus-ricevuta",
            Self::Anomalia => "anomalia",
            Self::PostaOrdinariaRifiutata => "posta-ordinaria-rifiutata",
            Self::Preavviso12h => "preavviso-12h",
            Self::Avviso24h => "avviso-24h",
            Self::Inoltro => "inoltro",
            Self::Login => "login",
            Self::Amministrazione => "amministrazione",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ALL.iter()
            .copied()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

pub const ALL: [EventKind; 18] = [
    EventKind::Accettazione,
    EventKind::NonAccettazione,
    EventKind::BustaEmessa,
    EventKind::BustaRicevuta,
    EventKind::PresaInCaricoEmessa,
    EventKind::PresaInCaricoRicevuta,
    EventKind::ConsegnaEmessa,
    EventKind::ConsegnaRicevuta,
    EventKind::MancataConsegnaEmessa,
    EventKind::MancataConsegnaRicevuta,
    EventKind::RilevazioneVirusRicevuta,
    EventKind::Anomalia,
    EventKind::PostaOrdinariaRifiutata,
    EventKind::Preavviso12h,
    EventKind::Avviso24h,
    EventKind::Inoltro,
    EventKind::Login,
    EventKind::Amministrazione,
];

/// One event as the provider reports it; the registro adds sequence, time and hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Event {
    pub kind: Option<EventKind>,
    /// The PEC identificativo of the transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identificativo: Option<String>,
    /// Message-ID of the message this event is about (a receipt's own, or the original's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Message-ID the sender's mail client gave the original (daticert `msgid`): what
    /// a holder knows the message by. `--message-id` finds it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// ok, refused: …, the SMTP reply, failure: …
    pub outcome: String,
    /// The other provider involved, or this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// Protocol and IP of a login, the action of an administrator, the next hop, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The clock reading of the step that built the message this event is about: the
    /// record takes it as its time, so log, daticert and receipt text show one instant
    /// (pec-rules §1.3, RFC 6109 §4.1). Without it the record is timed when written.
    #[serde(skip)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Event {
    pub fn new(kind: EventKind, outcome: impl Into<String>) -> Self {
        Self {
            kind: Some(kind),
            outcome: outcome.into(),
            ..Self::default()
        }
    }

    pub fn identificativo(mut self, id: impl Into<String>) -> Self {
        self.identificativo = Some(id.into());
        self
    }

    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// The original's Message-ID, when it has one.
    pub fn original_message_id(mut self, id: Option<&str>) -> Self {
        self.original_message_id = id.map(str::to_string);
        self
    }

    pub fn sender(mut self, sender: impl Into<String>) -> Self {
        self.sender = Some(sender.into());
        self
    }

    pub fn recipients(mut self, recipients: &[String]) -> Self {
        self.recipients = recipients.to_vec();
        self
    }

    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn at(mut self, time: &crate::pec::timestamp::PecTime) -> Self {
        self.at = Some(time.utc());
        self
    }
}
