//! Which PEC message is this? Any RFC 5322 message becomes one of the kinds of
//! pec-rules §3, ordinary mail, or a malformed PEC message, always with the reason.
//!
//! Only the top-level X- headers and the daticert.xml count (clients must never parse
//! the human text); the signature is `crate::smime`'s business.

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::daticert::{Daticert, Errore, Tipo, TipoRicevuta};
use super::headers::{self, subject};
use super::kind::{MessageKind, TimeoutStage};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "class", content = "kind")]
pub enum Class {
    Pec(MessageKind),
    /// No PEC headers: ordinary mail (possibly a user's own S/MIME).
    Ordinary,
    /// PEC headers, but the message breaks the rules.
    Malformed,
}

#[derive(Debug, Clone)]
pub struct Classification {
    pub class: Class,
    /// Why this class: one line, English.
    pub reason: String,
    /// Rule deviations that do not change the class (e.g. an unusual subject prefix).
    pub problems: Vec<String>,
    pub daticert: Option<Daticert>,
    /// The attached original (postacert.eml), when there is one ([`classify_in_place`]
    /// leaves it out when `postacert_range` says where it is).
    pub postacert: Option<Vec<u8>>,
    /// Where the postacert sits in the classified bytes, when it is there unencoded
    /// (as every provider sends it): a 30 MB original need not be copied to be read.
    pub postacert_range: Option<std::ops::Range<usize>>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
}

impl Classification {
    pub fn kind(&self) -> Option<MessageKind> {
        match self.class {
            Class::Pec(kind) => Some(kind),
            _ => None,
        }
    }

    fn new(class: Class, reason: impl Into<String>) -> Self {
        Self {
            class,
            reason: reason.into(),
            problems: Vec::new(),
            daticert: None,
            postacert: None,
            postacert_range: None,
            subject: None,
            message_id: None,
        }
    }
}

/// Classifies raw message bytes. Never fails: unparseable input is `Malformed`.
pub fn classify(raw: &[u8]) -> Classification {
    let mut c = classify_in_place(raw);
    if c.postacert.is_none() {
        c.postacert = c
            .postacert_range
            .clone()
            .and_then(|r| raw.get(r))
            .map(<[u8]>::to_vec);
    }
    c
}

/// [`classify`] without copying an unencoded postacert: `postacert_range` says where
/// it is in `raw` (`postacert` is then None).
pub fn classify_in_place(raw: &[u8]) -> Classification {
    let Some(message) = super::parse::parse_message(raw) else {
        return Classification::new(Class::Malformed, "not an RFC 5322 message");
    };
    if message.headers().is_empty() {
        return Classification::new(Class::Malformed, "not an RFC 5322 message (no header)");
    }
    let mut c = classify_parsed(&message);
    c.subject = message.subject().map(str::to_string);
    c.message_id = message.message_id().map(str::to_string);
    c
}

fn header<'a>(message: &'a Message<'_>, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| h.value.as_text())
        .map(str::trim)
}

fn classify_parsed(message: &Message<'_>) -> Classification {
    let ricevuta = header(message, headers::X_RICEVUTA);
    let trasporto = header(message, headers::X_TRASPORTO);
    let pec_header = match (ricevuta, trasporto) {
        (None, None) => {
            return Classification::new(
                Class::Ordinary,
                "no X-Ricevuta or X-Trasporto header: ordinary mail",
            )
        }
        (Some(_), Some(_)) => {
            return Classification::new(
                Class::Malformed,
                "both X-Ricevuta and X-Trasporto are present",
            )
        }
        (Some(r), None) => PecHeader::Ricevuta(r),
        (None, Some(t)) => PecHeader::Trasporto(t),
    };
    let Some(inner) = signed_content(message) else {
        return Classification::new(
            Class::Malformed,
            "PEC header present but the message is not S/MIME multipart/signed",
        );
    };
    let parts = Parts::find(message, inner);
    let daticert = parts.daticert.map(|p| Daticert::parse(p.contents()));
    let virus_header = header(message, headers::X_VERIFICA_SICUREZZA)
        .is_some_and(|v| v.eq_ignore_ascii_case(headers::VERIFICA_SICUREZZA_ERRORE));
    let subject_text = message.subject().unwrap_or("");

    let mut c = match pec_header {
        PecHeader::Trasporto(t) => classify_envelope(t, daticert, parts.has_postacert()),
        PecHeader::Ricevuta(r) => {
            classify_receipt(r, daticert, virus_header, parts.has_postacert())
        }
    };
    c.postacert = parts.postacert;
    c.postacert_range = parts.postacert_range;
    if let Class::Pec(kind) = c.class {
        let prefix = expected_prefix(kind);
        if !subject_text.starts_with(prefix) {
            c.problems.push(format!(
                "subject does not start with \"{}\"",
                prefix.trim_end()
            ));
        }
        if kind == MessageKind::BustaTrasporto {
            if let (Some(d), Some(id)) = (&c.daticert, message.message_id()) {
                if d.identificativo != id {
                    c.problems.push(format!(
                        "daticert identificativo {} differs from Message-ID <{id}>",
                        d.identificativo
                    ));
                }
            }
        }
        if let Some(d) = &c.daticert {
            c.problems.extend(d.validate_consistency());
        }
    }
    c
}

enum PecHeader<'a> {
    Ricevuta(&'a str),
    Trasporto(&'a str),
}

fn classify_envelope(
    trasporto: &str,
    daticert: Option<Result<Daticert, super::daticert::DaticertError>>,
    has_original: bool,
) -> Classification {
    if trasporto.eq_ignore_ascii_case(headers::TRASPORTO_ERRORE) {
        if !has_original {
            return Classification::new(
                Class::Malformed,
                "busta di anomalia without the received message attached",
            );
        }
        let mut c = Classification::new(
            Class::Pec(MessageKind::BustaAnomalia),
            "X-Trasporto: errore with the received message attached",
        );
        if daticert.is_some() {
            c.problems
                .push("a busta di anomalia must not carry its own daticert.xml".into());
        }
        return c;
    }
    if !trasporto.eq_ignore_ascii_case(headers::TRASPORTO_POSTA_CERTIFICATA) {
        return Classification::new(
            Class::Malformed,
            format!("unknown X-Trasporto value \"{trasporto}\""),
        );
    }
    let d = match require_daticert(daticert, Tipo::PostaCertificata, "X-Trasporto") {
        Ok(d) => d,
        Err(c) => return *c,
    };
    if !has_original {
        let mut c =
            Classification::new(Class::Malformed, "busta di trasporto without postacert.eml");
        c.daticert = Some(d);
        return c;
    }
    let mut c = Classification::new(
        Class::Pec(MessageKind::BustaTrasporto),
        "X-Trasporto: posta-certificata, daticert tipo posta-certificata, original attached",
    );
    c.daticert = Some(d);
    c
}

fn classify_receipt(
    ricevuta: &str,
    daticert: Option<Result<Daticert, super::daticert::DaticertError>>,
    virus_header: bool,
    has_original: bool,
) -> Classification {
    let Ok(tipo) = ricevuta.parse::<Tipo>() else {
        return Classification::new(
            Class::Malformed,
            format!("unknown X-Ricevuta value \"{ricevuta}\""),
        );
    };
    let d = match require_daticert(daticert, tipo, "X-Ricevuta") {
        Ok(d) => d,
        Err(c) => return *c,
    };
    let virus = virus_header || d.errore == Errore::Virus;
    let mut problems = Vec::new();
    let kind = match tipo {
        Tipo::Accettazione => MessageKind::Accettazione,
        Tipo::NonAccettazione if virus => MessageKind::NonAccettazioneVirus,
        Tipo::NonAccettazione => MessageKind::NonAccettazione,
        Tipo::PresaInCarico => MessageKind::PresaInCarico,
        Tipo::RilevazioneVirus => MessageKind::RilevazioneVirus,
        Tipo::ErroreConsegna if virus => MessageKind::MancataConsegnaVirus,
        Tipo::ErroreConsegna => MessageKind::MancataConsegna,
        Tipo::AvvenutaConsegna => {
            let tipo = d.ricevuta.unwrap_or(if has_original {
                TipoRicevuta::Completa
            } else {
                TipoRicevuta::Sintetica
            });
            match (tipo, has_original) {
                (TipoRicevuta::Sintetica, true) => {
                    problems.push("a sintetica receipt must not carry the original".into())
                }
                (TipoRicevuta::Completa | TipoRicevuta::Breve, false) => problems.push(format!(
                    "a {} receipt must carry postacert.eml",
                    tipo.as_str()
                )),
                _ => {}
            }
            MessageKind::AvvenutaConsegna(tipo)
        }
        Tipo::PreavvisoErroreConsegna => {
            let esteso = d.errore_esteso.as_deref().unwrap_or("").trim_start();
            let stage = if esteso.starts_with("4.") {
                TimeoutStage::Preavviso12h
            } else if esteso.starts_with("5.") {
                TimeoutStage::Definitivo24h
            } else {
                TimeoutStage::Unspecified
            };
            MessageKind::SuperamentoTempoMassimo(stage)
        }
        Tipo::PostaCertificata => {
            return Classification::new(
                Class::Malformed,
                "X-Ricevuta: posta-certificata (that value belongs to X-Trasporto)",
            )
        }
    };
    if virus_header && d.errore != Errore::Virus {
        problems.push("X-VerificaSicurezza: errore but daticert errore is not virus".into());
    }
    if has_original
        && !matches!(
            kind,
            MessageKind::AvvenutaConsegna(_) | MessageKind::MancataConsegna
        )
    {
        problems.push(format!("a {kind} must not carry the original message"));
    }
    let mut c = Classification::new(
        Class::Pec(kind),
        format!("X-Ricevuta: {ricevuta}, daticert tipo {}", tipo.as_str()),
    );
    c.problems = problems;
    c.daticert = Some(d);
    c
}

fn require_daticert(
    daticert: Option<Result<Daticert, super::daticert::DaticertError>>,
    tipo: Tipo,
    header: &str,
) -> Result<Daticert, Box<Classification>> {
    match daticert {
        None => Err(Box::new(Classification::new(
            Class::Malformed,
            "daticert.xml is missing",
        ))),
        Some(Err(e)) => Err(Box::new(Classification::new(
            Class::Malformed,
            format!("daticert.xml is not valid: {e}"),
        ))),
        Some(Ok(d)) if d.tipo != tipo => {
            let mut c = Classification::new(
                Class::Malformed,
                format!(
                    "daticert tipo {} contradicts {header}: {}",
                    d.tipo.as_str(),
                    tipo.as_str()
                ),
            );
            c.daticert = Some(d);
            Err(Box::new(c))
        }
        Some(Ok(d)) => Ok(d),
    }
}

fn expected_prefix(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Accettazione => subject::ACCETTAZIONE,
        MessageKind::NonAccettazione => subject::NON_ACCETTAZIONE,
        MessageKind::NonAccettazioneVirus => subject::NON_ACCETTAZIONE_VIRUS,
        MessageKind::BustaTrasporto => subject::POSTA_CERTIFICATA,
        MessageKind::PresaInCarico => subject::PRESA_IN_CARICO,
        MessageKind::BustaAnomalia => subject::ANOMALIA,
        MessageKind::RilevazioneVirus => subject::PROBLEMA_SICUREZZA,
        MessageKind::AvvenutaConsegna(_) => subject::CONSEGNA,
        MessageKind::MancataConsegna => subject::MANCATA_CONSEGNA,
        MessageKind::MancataConsegnaVirus => subject::MANCATA_CONSEGNA_VIRUS,
        MessageKind::SuperamentoTempoMassimo(_) => subject::TEMPO_MASSIMO,
    }
}

/// The first part of the top-level multipart/signed.
fn signed_content<'a, 'x>(message: &'a Message<'x>) -> Option<&'a MessagePart<'x>> {
    let root = message.parts.first()?;
    let ct = root.content_type()?;
    let is_signed = ct.c_type.eq_ignore_ascii_case("multipart")
        && ct
            .c_subtype
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("signed"));
    if !is_signed {
        return None;
    }
    match &root.body {
        PartType::Multipart(children) => message.parts.get(*children.first()? as usize),
        _ => None,
    }
}

/// daticert.xml and postacert.eml among the signed content's parts (not inside the
/// attached original, whose own daticert belongs to another message).
struct Parts<'a, 'x> {
    daticert: Option<&'a MessagePart<'x>>,
    /// An encoded (base64, quoted-printable) postacert, decoded.
    postacert: Option<Vec<u8>>,
    /// An unencoded postacert's place in the raw message.
    postacert_range: Option<std::ops::Range<usize>>,
}

impl<'a, 'x> Parts<'a, 'x> {
    fn find(message: &'a Message<'x>, inner: &'a MessagePart<'x>) -> Self {
        let mut found = Parts {
            daticert: None,
            postacert: None,
            postacert_range: None,
        };
        found.walk(message, inner, 0);
        found
    }

    fn has_postacert(&self) -> bool {
        self.postacert.is_some() || self.postacert_range.is_some()
    }

    fn walk(&mut self, message: &'a Message<'x>, part: &'a MessagePart<'x>, depth: usize) {
        if depth > 8 {
            return;
        }
        match &part.body {
            PartType::Multipart(children) => {
                for child in children {
                    if let Some(p) = message.parts.get(*child as usize) {
                        self.walk(message, p, depth + 1);
                    }
                }
            }
            PartType::Message(_) if self.postacert.is_none() && self.postacert_range.is_none() => {
                let range = part.offset_body as usize..part.offset_end as usize;
                match part.encoding {
                    mail_parser::Encoding::None
                        if message.raw_message.get(range.clone()).is_some() =>
                    {
                        self.postacert_range = Some(range);
                    }
                    _ => self.postacert = Some(attached_message(message, part)),
                }
            }
            _ => {
                let named_daticert = part
                    .attachment_name()
                    .is_some_and(|n| n.eq_ignore_ascii_case("daticert.xml"));
                if named_daticert && self.daticert.is_none() {
                    self.daticert = Some(part);
                }
            }
        }
    }
}

/// The bytes of an attached message as it was written, transfer encoding undone.
fn attached_message(message: &Message<'_>, part: &MessagePart<'_>) -> Vec<u8> {
    let raw = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    match part.encoding {
        mail_parser::Encoding::None => raw.to_vec(),
        mail_parser::Encoding::Base64 => {
            use base64::Engine;
            let compact: Vec<u8> = raw
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_default()
        }
        mail_parser::Encoding::QuotedPrintable => {
            quoted_printable::decode(raw, quoted_printable::ParseMode::Robust).unwrap_or_default()
        }
    }
}
