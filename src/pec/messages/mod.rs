//! Builders for the messages a provider generates, one file per kind (pec-rules §3).
//! Each returns an [`UnsignedMessage`]; `crate::smime` signs it into the wire message.

mod accettazione;
mod avvenuta_consegna;
mod busta_anomalia;
mod busta_trasporto;
mod mancata_consegna;
mod non_accettazione;
mod presa_in_carico;
mod rilevazione_virus;
mod tempo_massimo;

pub use accettazione::accettazione;
pub use avvenuta_consegna::{avvenuta_consegna, avvenuta_consegna_owned, tipo_ricevuta_for};
pub use busta_anomalia::busta_anomalia;
pub use busta_trasporto::{busta_trasporto, busta_trasporto_owned};
pub use mancata_consegna::{mancata_consegna, mancata_consegna_virus};
pub use non_accettazione::{non_accettazione, non_accettazione_virus};
pub use presa_in_carico::presa_in_carico;
pub use rilevazione_virus::rilevazione_virus;
pub use tempo_massimo::tempo_massimo;

use super::daticert::Daticert;
use super::headers;
use super::kind::MessageKind;
use super::mime::{self, Part};
use super::original::Certified;
use super::timestamp::PecTime;

/// The provider that emits a message (gestore-emittente and its service address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gestore {
    /// providerName: shown as gestore-emittente.
    pub name: String,
    /// `posta-certificata@<domain>`: the From of everything generated; equals the
    /// signing certificate's e-mail address.
    pub service_address: String,
}

/// A generated message before signing: its top-level headers and the inner entity.
#[derive(Debug, Clone)]
pub struct UnsignedMessage {
    pub kind: MessageKind,
    pub headers: Vec<(String, String)>,
    /// The `multipart/mixed` entity that the S/MIME signature covers.
    pub entity: Vec<u8>,
    pub date: PecTime,
}

impl UnsignedMessage {
    /// The header lines (CRLF-terminated), without the MIME headers of the signature wrapper.
    pub fn header_block(&self) -> String {
        self.headers
            .iter()
            .map(|(n, v)| mime::format_header(n, v))
            .collect()
    }

    /// The first value of a header, case-insensitive.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Header block followed by the entity, unsigned: for inspection and tests only.
    pub fn to_unsigned_bytes(&self) -> Vec<u8> {
        let mut out = self.header_block().into_bytes();
        out.extend_from_slice(b"MIME-Version: 1.0\r\n");
        out.extend_from_slice(&self.entity);
        out
    }
}

/// The human text of a notice: a title, then paragraphs; rendered as text and HTML.
struct Text {
    title: String,
    paragraphs: Vec<String>,
}

impl Text {
    fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            paragraphs: Vec::new(),
        }
    }

    fn para(mut self, p: impl Into<String>) -> Self {
        self.paragraphs.push(p.into());
        self
    }

    fn plain(&self) -> String {
        let mut out = format!("{}\n\n", self.title);
        for p in &self.paragraphs {
            out.push_str(p);
            out.push('\n');
        }
        out
    }

    fn html(&self) -> String {
        let mut out = format!(
            "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\"><title>{0}</title></head><body>\n<h3>{0}</h3>\n",
            mime::html_escape(&self.title)
        );
        for p in &self.paragraphs {
            out.push_str("<p>");
            out.push_str(&mime::html_escape(p).replace('\n', "<br>\n"));
            out.push_str("</p>\n");
        }
        out.push_str("</body></html>\n");
        out
    }

    fn part(&self) -> Part {
        Part::multipart(
            "alternative",
            vec![
                Part::text_latin1(&self.plain()),
                Part::html_latin1(&self.html()),
            ],
        )
    }
}

/// The common frame: text (+ html), daticert.xml, and optionally the attached message.
/// [`entity`] with an attached message, built in that message's buffer (no copy of
/// it); also where the message sits in the entity.
fn entity_enclosing(
    text: &Text,
    daticert: Option<&Daticert>,
    attached: Vec<u8>,
) -> (Vec<u8>, std::ops::Range<usize>) {
    let mut parts = vec![text.part()];
    if let Some(d) = daticert {
        parts.push(Part::daticert(&d.to_xml()));
    }
    parts.push(Part::rfc822_owned("postacert.eml", attached));
    Part::multipart_bytes_owned("mixed", parts)
}

fn entity(text: &Text, daticert: Option<&Daticert>, attached: Option<&[u8]>) -> Vec<u8> {
    let mut parts = vec![text.part()];
    if let Some(d) = daticert {
        parts.push(Part::daticert(&d.to_xml()));
    }
    if let Some(message) = attached {
        parts.push(Part::rfc822("postacert.eml", message));
    }
    Part::multipart("mixed", parts).to_bytes()
}

/// Headers every receipt and notice carries (pec-rules §3): fresh Date, From, To,
/// Subject, Message-ID, the X- header that names the kind and X-Riferimento-Message-ID.
fn receipt_headers(
    gestore: &Gestore,
    to: &str,
    subject_prefix: &str,
    certified: &Certified,
    message_id: &str,
    date: PecTime,
    x_headers: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut h = vec![
        ("Date".to_string(), date.rfc5322()),
        ("From".to_string(), gestore.service_address.clone()),
        ("To".to_string(), to.to_string()),
        (
            "Subject".to_string(),
            mime::encode_unstructured(&format!("{subject_prefix}{}", certified.oggetto)),
        ),
        ("Message-ID".to_string(), format!("<{message_id}>")),
    ];
    for (name, value) in x_headers {
        h.push((name.to_string(), value.to_string()));
    }
    h.push((
        headers::X_RIFERIMENTO_MESSAGE_ID.to_string(),
        reference_msgid(certified),
    ));
    h
}

/// The client's Message-ID, or the identificativo when the client sent none.
fn reference_msgid(certified: &Certified) -> String {
    certified
        .msgid
        .clone()
        .unwrap_or_else(|| format!("<{}>", certified.identificativo))
}

/// The recipients as the texts list them, with their certified/ordinary marker.
fn recipient_lines(certified: &Certified) -> String {
    use super::daticert::TipoDestinatario;
    certified
        .destinatari
        .iter()
        .map(|d| match d.tipo {
            TipoDestinatario::Certificato => format!("{} (\"posta certificata\")", d.indirizzo),
            TipoDestinatario::Esterno => format!("{} (\"posta ordinaria\")", d.indirizzo),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn id_line(certified: &Certified) -> String {
    format!("Identificativo messaggio: {}", certified.identificativo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entity_built_in_place_is_the_same_bytes() {
        let text = Text::new("Messaggio di posta certificata").para("Il messaggio.");
        let original = b"From: a@b\r\nTo: c@d\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
        let (owned, range) = entity_enclosing(&text, None, original.clone());
        assert_eq!(owned, entity(&text, None, Some(&original)));
        assert_eq!(&owned[range], &original[..]);
        let lf = b"From: a@b\nSubject: x\n\nbody\n".to_vec();
        let (owned, _) = entity_enclosing(&text, None, lf.clone());
        assert_eq!(
            owned,
            entity(&text, None, Some(&lf)),
            "line ends fixed alike"
        );
    }
}
