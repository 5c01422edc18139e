//! The user's original message as the punto di accesso certifies it: the facts every
//! receipt repeats, and the Message-ID rewrite of pec-rules §2.4.

use mail_parser::{Address, HeaderName, HeaderValue, MessageParser};

use super::daticert::{Daticert, Destinatario, Errore, Tipo, TipoDestinatario, TipoRicevuta};
use super::headers;
use super::timestamp::PecTime;

/// What a PEC transaction certifies about the original message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certified {
    pub mittente: String,
    /// To and Cc, in order, each marked certificato or esterno.
    pub destinatari: Vec<Destinatario>,
    /// Reply-To of the original, or empty.
    pub risposte: String,
    /// Decoded Subject of the original.
    pub oggetto: String,
    pub identificativo: String,
    /// The client's Message-ID with angle brackets, as daticert's `msgid`.
    pub msgid: Option<String>,
}

impl Certified {
    /// The daticert.xml of a message about this transaction.
    pub fn daticert(&self, tipo: Tipo, gestore: &str, data: PecTime) -> Daticert {
        Daticert {
            tipo,
            errore: Errore::Nessuno,
            mittente: self.mittente.clone(),
            destinatari: self.destinatari.clone(),
            risposte: self.risposte.clone(),
            oggetto: Some(self.oggetto.clone()),
            gestore_emittente: gestore.to_string(),
            data,
            identificativo: self.identificativo.clone(),
            msgid: self.msgid.clone(),
            ricevuta: None,
            consegna: None,
            ricezione: Vec::new(),
            errore_esteso: None,
        }
    }

    /// The facts a receipt repeats, read back from another message's daticert.
    pub fn from_daticert(d: &Daticert) -> Self {
        Self {
            mittente: d.mittente.clone(),
            destinatari: d.destinatari.clone(),
            risposte: d.risposte.clone(),
            oggetto: d.oggetto.clone().unwrap_or_default(),
            identificativo: d.identificativo.clone(),
            msgid: d.msgid.clone(),
        }
    }

    /// Addresses only, in the order of the original's To and Cc.
    pub fn recipient_addresses(&self) -> Vec<&str> {
        self.destinatari
            .iter()
            .map(|d| d.indirizzo.as_str())
            .collect()
    }
}

/// The headers of an original that the access point checks and certifies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginalHeaders {
    pub from: Vec<String>,
    pub sender: Vec<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    /// True when a Bcc field is present at all, even empty.
    pub has_bcc_field: bool,
    pub reply_to: Vec<String>,
    pub subject: Option<String>,
    pub message_id: Option<String>,
    pub tipo_ricevuta: Option<TipoRicevuta>,
}

impl OriginalHeaders {
    /// Reads the addressing headers; `None` when the bytes are not a message at all.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let message = MessageParser::default().parse_headers(raw)?;
        let mut out = Self::default();
        for header in message.headers() {
            match &header.name {
                HeaderName::From => out.from.extend(addresses(&header.value)),
                HeaderName::Sender => out.sender.extend(addresses(&header.value)),
                HeaderName::To => out.to.extend(addresses(&header.value)),
                HeaderName::Cc => out.cc.extend(addresses(&header.value)),
                HeaderName::Bcc => {
                    out.has_bcc_field = true;
                    out.bcc.extend(addresses(&header.value));
                }
                HeaderName::ReplyTo => out.reply_to.extend(addresses(&header.value)),
                HeaderName::Subject => {
                    out.subject = header.value.as_text().map(str::to_string);
                }
                HeaderName::MessageId => {
                    out.message_id = header.value.as_text().map(|id| format!("<{id}>"));
                }
                HeaderName::Other(name) if name.eq_ignore_ascii_case(headers::X_TIPO_RICEVUTA) => {
                    out.tipo_ricevuta = header
                        .value
                        .as_text()
                        .and_then(|v| v.parse::<TipoRicevuta>().ok());
                }
                _ => {}
            }
        }
        Some(out)
    }

    /// The certified facts, with each recipient's type decided by `classify`
    /// (the providers' index lookup of pec-rules §5.4).
    pub fn certify(
        &self,
        identificativo: &str,
        classify: impl Fn(&str) -> TipoDestinatario,
    ) -> Certified {
        Certified {
            mittente: self.from.first().cloned().unwrap_or_default(),
            destinatari: self
                .to
                .iter()
                .chain(&self.cc)
                .map(|a| Destinatario {
                    indirizzo: a.clone(),
                    tipo: classify(a),
                })
                .collect(),
            risposte: self.reply_to.first().cloned().unwrap_or_default(),
            oggetto: self.subject.clone().unwrap_or_default(),
            identificativo: identificativo.to_string(),
            msgid: self.message_id.clone(),
        }
    }

    /// Whether `address` is a primary (To) rather than a copy (Cc) recipient.
    /// Ambiguous cases count as primary (pec-rules §7).
    pub fn is_primary(&self, address: &str) -> bool {
        let in_to = self.to.iter().any(|a| a.eq_ignore_ascii_case(address));
        let in_cc = self.cc.iter().any(|a| a.eq_ignore_ascii_case(address));
        in_to || !in_cc
    }
}

fn addresses(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Address(Address::List(list)) => list
            .iter()
            .filter_map(|a| a.address.as_deref())
            .map(str::to_string)
            .collect(),
        HeaderValue::Address(Address::Group(groups)) => groups
            .iter()
            .flat_map(|g| g.addresses.iter())
            .filter_map(|a| a.address.as_deref())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The original as it travels inside the busta: its Message-ID replaced by the PEC
/// identificativo and the client's kept as X-Riferimento-Message-ID (pec-rules §2.4).
/// A client-supplied X-Riferimento-Message-ID is dropped: only the provider sets it.
pub fn rewrite_message_id(raw: &[u8], identificativo: &str, client_msgid: Option<&str>) -> Vec<u8> {
    rewrite_message_id_owned(raw.to_vec(), identificativo, client_msgid)
}

/// [`rewrite_message_id`] in the message's buffer, which it takes: only the header
/// block is rewritten, the body is never copied.
pub fn rewrite_message_id_owned(
    raw: Vec<u8>,
    identificativo: &str,
    client_msgid: Option<&str>,
) -> Vec<u8> {
    let mut raw = crate::pec::mime::crlf_owned(raw);
    let header_end = find_header_end(&raw);
    let head = &raw[..header_end];
    let mut out = Vec::with_capacity(head.len() + 128);
    for field in header_fields(head) {
        let name = field_name(field);
        if name.eq_ignore_ascii_case("Message-ID")
            || name.eq_ignore_ascii_case(headers::X_RIFERIMENTO_MESSAGE_ID)
        {
            continue;
        }
        out.extend_from_slice(field);
    }
    out.extend_from_slice(format!("Message-ID: <{identificativo}>\r\n").as_bytes());
    let reference = client_msgid
        .map(str::to_string)
        .unwrap_or_else(|| format!("<{identificativo}>"));
    out.extend_from_slice(
        format!("{}: {reference}\r\n", headers::X_RIFERIMENTO_MESSAGE_ID).as_bytes(),
    );
    raw.splice(0..header_end, out);
    raw
}

/// Offset of the blank line ending the header block (or the end, when there is none).
pub(crate) fn find_header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 0;
    }
    raw.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(raw.len())
}

/// Splits a CRLF header block into whole fields, continuation lines included.
pub(crate) fn header_fields(head: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < head.len() {
        let line_end = head[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .map(|p| i + p + 2)
            .unwrap_or(head.len());
        let next_is_continuation = matches!(head.get(line_end), Some(b' ') | Some(b'\t'));
        if !next_is_continuation {
            fields.push(&head[start..line_end]);
            start = line_end;
        }
        i = line_end;
    }
    fields
}

pub(crate) fn field_name(field: &[u8]) -> &str {
    let colon = field.iter().position(|b| *b == b':').unwrap_or(0);
    std::str::from_utf8(&field[..colon]).unwrap_or("").trim()
}

/// The value of a raw header field as written, folds kept (what buste copy unchanged).
pub(crate) fn field_raw_value(field: &[u8]) -> String {
    let colon = field.iter().position(|b| *b == b':').map_or(0, |c| c + 1);
    let value = String::from_utf8_lossy(&field[colon..]);
    value
        .trim_start_matches([' ', '\t'])
        .trim_end_matches(['\r', '\n'])
        .to_string()
}

/// The unfolded value of a raw header field (RFC 5322 §2.2.3: only the CRLFs go).
pub(crate) fn field_value(field: &[u8]) -> String {
    let colon = field.iter().position(|b| *b == b':').map_or(0, |c| c + 1);
    let value = String::from_utf8_lossy(&field[colon..]);
    value.replace("\r\n", "").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] = b"From: Alice <alice@pec.example>\nTo: bob@pec.other, Carla <carla@gmail.example>\nCc: dan@pec.other\nSubject: =?UTF-8?Q?Perch=C3=A9?=\nMessage-ID: <abc@client>\nX-Riferimento-Message-ID: <forged@x>\nX-TipoRicevuta: breve\n\nbody\n";

    #[test]
    fn facts_of_an_original() {
        let h = OriginalHeaders::parse(ORIGINAL).unwrap();
        assert_eq!(h.from, ["alice@pec.example"]);
        assert_eq!(h.tipo_ricevuta, Some(TipoRicevuta::Breve));
        let c = h.certify("id1@pec.example", |a| {
            if a.ends_with("gmail.example") {
                TipoDestinatario::Esterno
            } else {
                TipoDestinatario::Certificato
            }
        });
        assert_eq!(c.oggetto, "Perché");
        assert_eq!(c.msgid.as_deref(), Some("<abc@client>"));
        assert_eq!(
            c.recipient_addresses(),
            ["bob@pec.other", "carla@gmail.example", "dan@pec.other"]
        );
        assert_eq!(c.destinatari[1].tipo, TipoDestinatario::Esterno);
        assert!(h.is_primary("BOB@pec.other"));
        assert!(!h.is_primary("dan@pec.other"));
    }

    #[test]
    fn message_id_is_replaced_and_the_client_one_kept() {
        let out = rewrite_message_id(ORIGINAL, "pec123@pec.example", Some("<abc@client>"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Message-ID: <pec123@pec.example>\r\n"));
        assert!(text.contains("X-Riferimento-Message-ID: <abc@client>\r\n"));
        assert!(!text.contains("forged"));
        assert!(!text.contains("<abc@client>\r\nX-Rif") || text.matches("abc@client").count() == 1);
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
    }

    #[test]
    fn folded_fields_stay_whole() {
        let head = b"Subject: a\r\n b\r\nTo: x\r\n";
        let fields = header_fields(head);
        assert_eq!(fields.len(), 2);
        assert_eq!(field_value(fields[0]), "a b");
    }
}
