//! daticert.xml: the certification data attached to every envelope and receipt
//! (DTD in docs/spec/daticert.dtd, pec-rules §4).

use super::timestamp::PecTime;

/// `postacert/@tipo`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tipo {
    Accettazione,
    NonAccettazione,
    PresaInCarico,
    AvvenutaConsegna,
    PostaCertificata,
    ErroreConsegna,
    PreavvisoErroreConsegna,
    RilevazioneVirus,
}

/// `postacert/@errore`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Errore {
    #[default]
    Nessuno,
    NoDest,
    NoDominio,
    Virus,
    Altro,
}

/// `destinatari/@tipo`: a PEC recipient (domain in the providers' index) or an ordinary one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TipoDestinatario {
    #[default]
    Certificato,
    Esterno,
}

/// `ricevuta/@tipo`, also the value of `X-TipoRicevuta`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TipoRicevuta {
    #[default]
    Completa,
    Breve,
    Sintetica,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Destinatario {
    pub indirizzo: String,
    pub tipo: TipoDestinatario,
}

/// The whole of a daticert.xml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daticert {
    pub tipo: Tipo,
    pub errore: Errore,
    pub mittente: String,
    pub destinatari: Vec<Destinatario>,
    /// Reply-To of the original; may be empty.
    pub risposte: String,
    pub oggetto: Option<String>,
    pub gestore_emittente: String,
    pub data: PecTime,
    /// PEC identificativo, without angle brackets.
    pub identificativo: String,
    /// The client's original Message-ID, with angle brackets.
    pub msgid: Option<String>,
    pub ricevuta: Option<TipoRicevuta>,
    pub consegna: Option<String>,
    pub ricezione: Vec<String>,
    pub errore_esteso: Option<String>,
}

// ---------------------------------------------------------------------------
// Fixed vocabularies
// ---------------------------------------------------------------------------

/// A value outside one of daticert's fixed vocabularies (also used for header values such
/// as `X-Ricevuta` and `X-TipoRicevuta`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?} (expected one of: {})", .expected.join(", "))]
pub struct UnknownValue {
    /// Which vocabulary: `tipo`, `errore`, `destinatari tipo`, `ricevuta tipo`.
    pub kind: &'static str,
    /// The offending value (shortened if very long).
    pub value: String,
    pub expected: &'static [&'static str],
}

macro_rules! vocabulary {
    ($ty:ident, $kind:literal, { $($var:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in DTD order.
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];
            /// Every wire spelling, in DTD order.
            pub const NAMES: &'static [&'static str] = &[$($s),+];

            /// The wire spelling (as in the DTD).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$var => $s,)+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Case-insensitive, surrounding whitespace ignored.
        impl std::str::FromStr for $ty {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                $(
                    if t.eq_ignore_ascii_case($s) {
                        return Ok($ty::$var);
                    }
                )+
                Err(UnknownValue {
                    kind: $kind,
                    value: shorten(s),
                    expected: Self::NAMES,
                })
            }
        }
    };
}

vocabulary!(Tipo, "tipo", {
    Accettazione => "accettazione",
    NonAccettazione => "non-accettazione",
    PresaInCarico => "presa-in-carico",
    AvvenutaConsegna => "avvenuta-consegna",
    PostaCertificata => "posta-certificata",
    ErroreConsegna => "errore-consegna",
    PreavvisoErroreConsegna => "preavviso-errore-consegna",
    RilevazioneVirus => "rilevazione-virus",
});

vocabulary!(Errore, "errore", {
    Nessuno => "nessuno",
    NoDest => "no-dest",
    NoDominio => "no-dominio",
    Virus => "virus",
    Altro => "altro",
});

vocabulary!(TipoDestinatario, "destinatari tipo", {
    Certificato => "certificato",
    Esterno => "esterno",
});

vocabulary!(TipoRicevuta, "ricevuta tipo", {
    Completa => "completa",
    Breve => "breve",
    Sintetica => "sintetica",
});

/// At most 120 characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    const MAX: usize = 120;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a daticert.xml could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaticertError {
    /// Empty, undecodable, malformed or truncated XML.
    #[error("daticert.xml is not well-formed XML: {0}")]
    NotXml(String),
    #[error("daticert.xml root element is <{0}>, expected <postacert>")]
    WrongRoot(String),
    /// A required element is absent (`mittente`, `gestore-emittente`, `data`, `giorno`,
    /// `ora`, `identificativo`).
    #[error("daticert.xml lacks the required element <{0}>")]
    MissingElement(&'static str),
    /// A required attribute is absent (`postacert tipo`, `data zona`).
    #[error("daticert.xml lacks the required attribute {0}")]
    MissingAttribute(&'static str),
    /// A value outside its fixed vocabulary, or an empty `identificativo`.
    #[error("daticert.xml has an invalid {field}: {value:?} (expected {})", .expected.join(" | "))]
    BadValue {
        field: &'static str,
        value: String,
        expected: &'static [&'static str],
    },
    /// `giorno`/`ora`/`zona` do not form a valid instant.
    #[error("daticert.xml has an invalid date: {0}")]
    BadDate(String),
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

/// Whether XML 1.0 allows `c` in a document (`Char` production; Rust chars are never
/// surrogates).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Replaces characters XML 1.0 forbids with U+FFFD.
fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(
            s.chars()
                .map(|c| if is_xml_char(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

/// Element content: forbidden characters replaced, `<>&` escaped, and CR written as
/// `&#13;` so that XML end-of-line normalisation does not change it.
fn text(s: &str) -> String {
    let clean = sanitize(s);
    let escaped = quick_xml::escape::partial_escape(clean.as_ref());
    if escaped.contains('\r') {
        escaped.replace('\r', "&#13;")
    } else {
        escaped.into_owned()
    }
}

/// Attribute value (only fixed vocabularies and `zona` go there).
fn attr(s: &str) -> String {
    let clean = sanitize(s);
    quick_xml::escape::escape(clean.as_ref())
        .replace('\r', "&#13;")
        .replace('\n', "&#10;")
        .replace('\t', "&#9;")
}

impl Daticert {
    /// The daticert.xml in the layout real providers write (pec-rules §4.2): UTF-8
    /// declaration, no DOCTYPE, 4-space indentation, explicit `errore` and
    /// `destinatari tipo`, DTD element order, trailing newline.
    pub fn to_xml(&self) -> String {
        use std::fmt::Write as _;
        let mut x = String::with_capacity(1024);
        // Writing to a String cannot fail.
        let _ = writeln!(x, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        let _ = writeln!(
            x,
            r#"<postacert tipo="{}" errore="{}">"#,
            self.tipo.as_str(),
            self.errore.as_str()
        );
        x.push_str("    <intestazione>\n");
        let _ = writeln!(x, "        <mittente>{}</mittente>", text(&self.mittente));
        for d in &self.destinatari {
            let _ = writeln!(
                x,
                r#"        <destinatari tipo="{}">{}</destinatari>"#,
                d.tipo.as_str(),
                text(&d.indirizzo)
            );
        }
        let _ = writeln!(x, "        <risposte>{}</risposte>", text(&self.risposte));
        if let Some(oggetto) = &self.oggetto {
            let _ = writeln!(x, "        <oggetto>{}</oggetto>", text(oggetto));
        }
        x.push_str("    </intestazione>\n");
        x.push_str("    <dati>\n");
        let _ = writeln!(
            x,
            "        <gestore-emittente>{}</gestore-emittente>",
            text(&self.gestore_emittente)
        );
        let _ = writeln!(x, r#"        <data zona="{}">"#, attr(&self.data.zona()));
        let _ = writeln!(x, "            <giorno>{}</giorno>", self.data.giorno());
        let _ = writeln!(x, "            <ora>{}</ora>", self.data.ora());
        x.push_str("        </data>\n");
        let _ = writeln!(
            x,
            "        <identificativo>{}</identificativo>",
            text(&self.identificativo)
        );
        if let Some(msgid) = &self.msgid {
            let _ = writeln!(x, "        <msgid>{}</msgid>", text(msgid));
        }
        if let Some(ricevuta) = self.ricevuta {
            let _ = writeln!(x, r#"        <ricevuta tipo="{}" />"#, ricevuta.as_str());
        }
        if let Some(consegna) = &self.consegna {
            let _ = writeln!(x, "        <consegna>{}</consegna>", text(consegna));
        }
        for r in &self.ricezione {
            let _ = writeln!(x, "        <ricezione>{}</ricezione>", text(r));
        }
        if let Some(e) = &self.errore_esteso {
            let _ = writeln!(x, "        <errore-esteso>{}</errore-esteso>", text(e));
        }
        x.push_str("    </dati>\n");
        x.push_str("</postacert>\n");
        x
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// windows-1252 code points for bytes 0x80..=0x9F (undefined ones map to the C1 control,
/// as the WHATWG decoder does).
const CP1252_HIGH: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum SingleByte {
    /// ISO-8859-1 / windows-1252 (treated alike, as WHATWG does).
    Latin1,
    /// ISO-8859-15.
    Latin9,
}

fn decode_single_byte(bytes: &[u8], which: SingleByte) -> String {
    bytes
        .iter()
        .map(|&b| {
            let cp = match (which, b) {
                (SingleByte::Latin1, 0x80..=0x9F) => u32::from(CP1252_HIGH[usize::from(b - 0x80)]),
                (SingleByte::Latin9, 0xA4) => 0x20AC,
                (SingleByte::Latin9, 0xA6) => 0x0160,
                (SingleByte::Latin9, 0xA8) => 0x0161,
                (SingleByte::Latin9, 0xB4) => 0x017D,
                (SingleByte::Latin9, 0xB8) => 0x017E,
                (SingleByte::Latin9, 0xBC) => 0x0152,
                (SingleByte::Latin9, 0xBD) => 0x0153,
                (SingleByte::Latin9, 0xBE) => 0x0178,
                _ => u32::from(b),
            };
            char::from_u32(cp).unwrap_or('\u{FFFD}')
        })
        .collect()
}

fn decode_utf16(bytes: &[u8], big_endian: bool) -> String {
    let units = bytes.chunks_exact(2).map(|c| {
        if big_endian {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_le_bytes([c[0], c[1]])
        }
    });
    char::decode_utf16(units)
        .map(|r| r.unwrap_or('\u{FFFD}'))
        .collect()
}

/// The `encoding` pseudo-attribute of the XML declaration, lowercased.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &bytes[start..bytes.len().min(start + 512)];
    if !head.starts_with(b"<?xml") {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let i = decl.find("encoding")?;
    let rest = decl[i + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?;
    let rest = rest.trim_start();
    let quote = rest.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &rest[1..];
    let close = value.find(quote)?;
    Some(value[..close].trim().to_ascii_lowercase())
}

/// Bytes to text: BOMs, UTF-16, declared ISO-8859-1/-15 or windows-1252; invalid UTF-8
/// falls back to windows-1252. Line ends are normalised as XML requires.
fn decode_document(bytes: &[u8]) -> String {
    let text = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        String::from_utf8_lossy(rest).into_owned()
    } else if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        decode_utf16(rest, false)
    } else if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        decode_utf16(rest, true)
    } else if bytes.starts_with(b"<\0?\0") {
        decode_utf16(bytes, false)
    } else if bytes.starts_with(b"\0<\0?") {
        decode_utf16(bytes, true)
    } else {
        let single = match declared_encoding(bytes).as_deref() {
            Some(
                "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1"
                | "windows-1252" | "cp1252" | "x-cp1252" | "us-ascii" | "ascii",
            ) => Some(SingleByte::Latin1),
            Some("iso-8859-15" | "iso8859-15" | "iso_8859-15" | "latin9" | "latin-9") => {
                Some(SingleByte::Latin9)
            }
            _ => None,
        };
        match (std::str::from_utf8(bytes), single) {
            // Declared single-byte but only ASCII, or actually (mislabelled) UTF-8: a
            // genuine Latin-1 text with accents is practically never valid UTF-8.
            (Ok(s), _) => s.to_string(),
            (Err(_), Some(which)) => decode_single_byte(bytes, which),
            (Err(_), None) => decode_single_byte(bytes, SingleByte::Latin1),
        }
    };
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(&text);
    if text.contains('\r') {
        text.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        text.to_string()
    }
}

/// Resolves one reference name (between `&` and `;`).
fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let num = name.strip_prefix('#')?;
            let cp = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                u32::from_str_radix(hex, 16).ok()?
            } else {
                num.parse::<u32>().ok()?
            };
            Some(
                char::from_u32(cp)
                    .filter(|c| is_xml_char(*c))
                    .unwrap_or('\u{FFFD}'),
            )
        }
    }
}

/// Entity and character references resolved; anything unrecognised is kept literally.
fn unescape_lenient(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let resolved = after
            .find(';')
            .filter(|&j| j <= 32)
            .and_then(|j| resolve_reference(&after[..j]).map(|c| (c, j)));
        match resolved {
            Some((c, j)) => {
                out.push(c);
                rest = &after[j + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// Parsed text of a trimmed field, with forbidden characters replaced.
fn clean(s: &str) -> String {
    sanitize(trim_xml(s)).into_owned()
}

/// One open element.
struct Frame {
    name: String,
    text: String,
    /// `tipo` attribute (destinatari, ricevuta) or `zona` (data), raw.
    attr: Option<String>,
}

fn local_name(e: &quick_xml::events::BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).to_ascii_lowercase()
}

fn attribute(e: &quick_xml::events::BytesStart<'_>, wanted: &str) -> Option<String> {
    let mut attrs = e.html_attributes();
    attrs.with_checks(false);
    attrs.flatten().find_map(|a| {
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        key.eq_ignore_ascii_case(wanted)
            .then(|| unescape_lenient(&String::from_utf8_lossy(&a.value)))
    })
}

fn vocab<T: std::str::FromStr<Err = UnknownValue>>(
    field: &'static str,
    value: &str,
) -> Result<T, DaticertError> {
    value.parse::<T>().map_err(|e| DaticertError::BadValue {
        field,
        value: e.value,
        expected: e.expected,
    })
}

#[derive(Default)]
struct Fields {
    tipo: Option<Tipo>,
    errore: Errore,
    mittente: Option<String>,
    destinatari: Vec<Destinatario>,
    risposte: Option<String>,
    oggetto: Option<String>,
    gestore_emittente: Option<String>,
    data_seen: bool,
    zona: Option<String>,
    giorno: Option<String>,
    ora: Option<String>,
    identificativo: Option<String>,
    msgid: Option<String>,
    ricevuta: Option<TipoRicevuta>,
    consegna: Option<String>,
    ricezione: Vec<String>,
    errore_esteso: Option<String>,
}

impl Fields {
    /// A closed element whose ancestors (root first) are `ancestors`.
    fn close(&mut self, ancestors: &[Frame], frame: Frame) -> Result<(), DaticertError> {
        let is_section = |f: &Frame| matches!(f.name.as_str(), "intestazione" | "dati");
        let section = ancestors.len() == 2 && is_section(&ancestors[1]);
        let in_data =
            ancestors.len() == 3 && is_section(&ancestors[1]) && ancestors[2].name == "data";
        if in_data {
            match frame.name.as_str() {
                "giorno" => set_first(&mut self.giorno, clean(&frame.text)),
                "ora" => set_first(&mut self.ora, clean(&frame.text)),
                _ => {}
            }
            return Ok(());
        }
        if !section {
            return Ok(());
        }
        match frame.name.as_str() {
            "mittente" => set_first(&mut self.mittente, clean(&frame.text)),
            "destinatari" => {
                let tipo = match &frame.attr {
                    Some(t) => vocab("destinatari tipo", t)?,
                    None => TipoDestinatario::default(),
                };
                self.destinatari.push(Destinatario {
                    indirizzo: clean(&frame.text),
                    tipo,
                });
            }
            "risposte" => set_first(&mut self.risposte, clean(&frame.text)),
            "oggetto" => set_first(&mut self.oggetto, sanitize(&frame.text).into_owned()),
            "gestore-emittente" => set_first(&mut self.gestore_emittente, clean(&frame.text)),
            "data" if !self.data_seen => {
                self.data_seen = true;
                self.zona = frame.attr;
            }
            "identificativo" => set_first(&mut self.identificativo, clean(&frame.text)),
            "msgid" => set_first(&mut self.msgid, clean(&frame.text)),
            "ricevuta" if self.ricevuta.is_none() => {
                // DTD: #REQUIRED; absent means the protocol default, completa.
                self.ricevuta = Some(match &frame.attr {
                    Some(t) => vocab("ricevuta tipo", t)?,
                    None => TipoRicevuta::default(),
                });
            }
            "consegna" => set_first(&mut self.consegna, clean(&frame.text)),
            "ricezione" => self.ricezione.push(clean(&frame.text)),
            "errore-esteso" => set_first(&mut self.errore_esteso, clean(&frame.text)),
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<Daticert, DaticertError> {
        let tipo = self
            .tipo
            .ok_or(DaticertError::MissingAttribute("postacert tipo"))?;
        let mittente = self
            .mittente
            .ok_or(DaticertError::MissingElement("mittente"))?;
        let gestore_emittente = self
            .gestore_emittente
            .ok_or(DaticertError::MissingElement("gestore-emittente"))?;
        if !self.data_seen {
            return Err(DaticertError::MissingElement("data"));
        }
        let giorno = self.giorno.ok_or(DaticertError::MissingElement("giorno"))?;
        let ora = self.ora.ok_or(DaticertError::MissingElement("ora"))?;
        let zona = self
            .zona
            .ok_or(DaticertError::MissingAttribute("data zona"))?;
        let data = PecTime::from_parts(&giorno, &ora, &zona).ok_or_else(|| {
            DaticertError::BadDate(format!(
                "giorno {:?}, ora {:?}, zona {:?} (expected dd/mm/yyyy, hh:mm:ss, +hhmm)",
                shorten(&giorno),
                shorten(&ora),
                shorten(&zona)
            ))
        })?;
        let identificativo = self
            .identificativo
            .ok_or(DaticertError::MissingElement("identificativo"))?;
        if identificativo.is_empty() {
            return Err(DaticertError::BadValue {
                field: "identificativo",
                value: String::new(),
                expected: &["a non-empty PEC message identifier"],
            });
        }
        Ok(Daticert {
            tipo,
            errore: self.errore,
            mittente,
            destinatari: self.destinatari,
            risposte: self.risposte.unwrap_or_default(),
            oggetto: self.oggetto,
            gestore_emittente,
            data,
            identificativo,
            msgid: self.msgid,
            ricevuta: self.ricevuta,
            consegna: self.consegna,
            ricezione: self.ricezione,
            errore_esteso: self.errore_esteso,
        })
    }
}

fn set_first(slot: &mut Option<String>, value: String) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

impl Daticert {
    /// Reads a daticert.xml as real providers write it, leniently (pec-rules §4.2): any
    /// indentation and line ends, BOM, DOCTYPE, comments, CDATA, references, stray text,
    /// unknown elements and attributes, ISO-8859-1/windows-1252/UTF-16 input. Missing
    /// `errore` means `nessuno`, missing `destinatari tipo` `certificato`, a `ricevuta`
    /// without `tipo` `completa`. Text fields are trimmed except `oggetto`. The first
    /// occurrence of a non-repeatable element wins. Never panics.
    pub fn parse(xml: &[u8]) -> Result<Daticert, DaticertError> {
        use quick_xml::events::Event;

        let doc = decode_document(xml);
        if trim_xml(&doc).is_empty() {
            return Err(DaticertError::NotXml("empty document".into()));
        }
        let mut reader = quick_xml::Reader::from_str(&doc);
        reader.config_mut().expand_empty_elements = true;

        let mut stack: Vec<Frame> = Vec::new();
        let mut fields = Fields::default();
        let mut root_seen = false;
        loop {
            let event = reader.read_event().map_err(|e| {
                DaticertError::NotXml(format!("{e} (at byte {})", reader.error_position()))
            })?;
            match event {
                Event::Start(e) => {
                    let name = local_name(&e);
                    if stack.is_empty() {
                        // (the loop ends when the root closes, so this is the root)
                        if name != "postacert" {
                            return Err(DaticertError::WrongRoot(shorten(
                                &String::from_utf8_lossy(e.name().as_ref()),
                            )));
                        }
                        root_seen = true;
                        let tipo = attribute(&e, "tipo")
                            .ok_or(DaticertError::MissingAttribute("postacert tipo"))?;
                        fields.tipo = Some(vocab("postacert tipo", &tipo)?);
                        if let Some(errore) = attribute(&e, "errore") {
                            fields.errore = vocab("postacert errore", &errore)?;
                        }
                    }
                    let attr = match name.as_str() {
                        "destinatari" | "ricevuta" => attribute(&e, "tipo"),
                        "data" => attribute(&e, "zona"),
                        _ => None,
                    };
                    stack.push(Frame {
                        name,
                        text: String::new(),
                        attr,
                    });
                }
                Event::End(_) => {
                    let Some(frame) = stack.pop() else { break };
                    if stack.is_empty() {
                        // Root closed: whatever follows is ignored.
                        break;
                    }
                    fields.close(&stack, frame)?;
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&unescape_lenient(&String::from_utf8_lossy(&t)));
                    }
                }
                Event::CData(c) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&String::from_utf8_lossy(&c));
                    }
                }
                Event::Eof => {
                    if let Some(open) = stack.last() {
                        return Err(DaticertError::NotXml(format!(
                            "document truncated inside <{}>",
                            shorten(&open.name)
                        )));
                    }
                    if !root_seen {
                        return Err(DaticertError::NotXml("no root element".into()));
                    }
                    break;
                }
                Event::Empty(_)
                | Event::Comment(_)
                | Event::Decl(_)
                | Event::PI(_)
                | Event::DocType(_) => {}
            }
        }
        fields.finish()
    }

    /// Problems with the usage rules of pec-rules §3/§4.1/§4.2 (the DTD comments and the
    /// message catalogue). Conservative: only what the rules state plainly. Empty when
    /// consistent.
    pub fn validate_consistency(&self) -> Vec<String> {
        use Tipo::*;
        let mut problems = Vec::new();
        let tipo = self.tipo;
        let positive = matches!(
            tipo,
            Accettazione | PresaInCarico | AvvenutaConsegna | PostaCertificata
        );

        if self.destinatari.is_empty() {
            problems.push("no <destinatari>: the DTD requires at least one".to_string());
        }

        // errore vs tipo (§3 catalogue, §4.1 errore semantics); one message per problem
        let errore = self.errore;
        if positive {
            if errore != Errore::Nessuno {
                problems.push(format!(
                    "tipo {tipo} must have errore nessuno, not {errore}"
                ));
            }
        } else if tipo == RilevazioneVirus {
            if errore != Errore::Virus {
                problems.push(format!(
                    "tipo rilevazione-virus must have errore virus, not {errore}"
                ));
            }
        } else {
            match errore {
                Errore::Nessuno if tipo == ErroreConsegna => problems.push(
                    "tipo errore-consegna with errore nessuno: the notice must state its errore"
                        .to_string(),
                ),
                Errore::NoDest | Errore::NoDominio if tipo != ErroreConsegna => problems.push(
                    format!("errore {errore} is only for errore-consegna, not {tipo}"),
                ),
                Errore::Virus if !matches!(tipo, ErroreConsegna | NonAccettazione) => problems
                    .push(format!(
                        "errore virus is only for errore-consegna, non-accettazione or \
                         rilevazione-virus, not {tipo}"
                    )),
                _ => {}
            }
        }

        // ricevuta: buste di trasporto and delivery receipts only
        match (self.ricevuta, tipo) {
            (Some(r), t) if !matches!(t, PostaCertificata | AvvenutaConsegna) => {
                problems.push(format!(
                    "<ricevuta tipo=\"{r}\"> is only for posta-certificata and \
                     avvenuta-consegna, not {t}"
                ));
            }
            (None, AvvenutaConsegna) => {
                problems.push("avvenuta-consegna without <ricevuta>".to_string());
            }
            _ => {}
        }

        // consegna
        match (&self.consegna, tipo) {
            (None, AvvenutaConsegna | ErroreConsegna) => {
                problems.push(format!(
                    "{tipo} without <consegna> (the recipient concerned)"
                ));
            }
            (Some(_), Accettazione | PostaCertificata | PresaInCarico) => {
                problems.push(format!("<consegna> does not belong in {tipo}"));
            }
            _ => {}
        }

        // ricezione: presa-in-carico only, and it lists the recipients
        if tipo == PresaInCarico {
            if self.ricezione.is_empty() {
                problems.push("presa-in-carico without <ricezione>".to_string());
            }
        } else if !self.ricezione.is_empty() {
            problems.push(format!(
                "<ricezione> is only for presa-in-carico, not {tipo}"
            ));
        }

        // errore-esteso: on errors
        if positive && self.errore_esteso.is_some() {
            problems.push(format!("<errore-esteso> does not belong in {tipo}"));
        }

        // identifiers
        let id = &self.identificativo;
        if id.is_empty() {
            problems.push("empty <identificativo>".to_string());
        } else if id.starts_with('<') || id.ends_with('>') {
            problems.push(format!(
                "identificativo {id:?} must not carry angle brackets"
            ));
        }
        if let Some(m) = &self.msgid {
            if !(m.starts_with('<') && m.ends_with('>') && m.len() > 2) {
                problems.push(format!(
                    "msgid {m:?} must be a Message-ID with angle brackets"
                ));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARUBA_2018: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="avvenuta-consegna" errore="nessuno">
    <intestazione>
        <mittente>l.battistini@pec.it</mittente>
        <destinatari tipo="certificato">l.battistini@pec.it</destinatari>
        <risposte>l.battistini@pec.it</risposte>
        <oggetto>IT03339130126_00009.xml</oggetto>
    </intestazione>
    <dati>
        <gestore-emittente>ARUBA PEC S.p.A.</gestore-emittente>
        <data zona="+0100">
            <giorno>13/11/2018</giorno>
            <ora>16:39:27</ora>
        </data>
        <identificativo>opec288.20181113163926.01838.310.1.63@pec.aruba.it</identificativo>
        <msgid>&lt;1542123565.921546936035156.464602125997431-openerp-8-fatturapa.attachment.out@elbati-Vostro-3550&gt;</msgid>
        <ricevuta tipo="completa" />
        <consegna>l.battistini@pec.it</consegna>
    </dati>
</postacert>
"#;

    fn aruba_2018() -> Daticert {
        Daticert {
            tipo: Tipo::AvvenutaConsegna,
            errore: Errore::Nessuno,
            mittente: "l.battistini@pec.it".into(),
            destinatari: vec![Destinatario {
                indirizzo: "l.battistini@pec.it".into(),
                tipo: TipoDestinatario::Certificato,
            }],
            risposte: "l.battistini@pec.it".into(),
            oggetto: Some("IT03339130126_00009.xml".into()),
            gestore_emittente: "ARUBA PEC S.p.A.".into(),
            data: PecTime::from_parts("13/11/2018", "16:39:27", "+0100").unwrap(),
            identificativo: "opec288.20181113163926.01838.310.1.63@pec.aruba.it".into(),
            msgid: Some(
                "<1542123565.921546936035156.464602125997431-openerp-8-fatturapa.attachment.out@elbati-Vostro-3550>"
                    .into(),
            ),
            ricevuta: Some(TipoRicevuta::Completa),
            consegna: Some("l.battistini@pec.it".into()),
            ricezione: vec![],
            errore_esteso: None,
        }
    }

    /// A minimal valid document with `body` spliced into <dati> after identificativo.
    fn doc(root_attrs: &str, extra_dati: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><postacert {root_attrs}><intestazione><mittente>a@b.it</mittente><destinatari>c@d.it</destinatari><risposte/></intestazione><dati><gestore-emittente>G</gestore-emittente><data zona="+0200"><giorno>01/06/2021</giorno><ora>10:00:00</ora></data><identificativo>id@x</identificativo>{extra_dati}</dati></postacert>"#
        )
    }

    #[test]
    fn builds_the_aruba_layout_byte_for_byte() {
        assert_eq!(aruba_2018().to_xml(), ARUBA_2018);
        assert_eq!(
            Daticert::parse(ARUBA_2018.as_bytes()).unwrap(),
            aruba_2018()
        );
    }

    #[test]
    fn minimal_output_keeps_explicit_defaults_and_empty_risposte() {
        let mut d = aruba_2018();
        d.tipo = Tipo::Accettazione;
        d.risposte.clear();
        d.oggetto = None;
        d.msgid = None;
        d.ricevuta = None;
        d.consegna = None;
        let x = d.to_xml();
        assert!(x.contains(r#"<postacert tipo="accettazione" errore="nessuno">"#));
        assert!(x.contains(r#"<destinatari tipo="certificato">"#));
        assert!(x.contains("        <risposte></risposte>\n"));
        assert!(!x.contains("oggetto") && !x.contains("msgid") && !x.contains("ricevuta"));
        assert!(!x.contains("DOCTYPE"));
        assert!(x.ends_with("</postacert>\n"));
        assert_eq!(Daticert::parse(x.as_bytes()).unwrap(), d);
    }

    #[test]
    fn escapes_text_and_drops_forbidden_characters() {
        assert_eq!(text(r#"<a & "b" 'c'>"#), r#"&lt;a &amp; "b" 'c'&gt;"#);
        assert_eq!(text("x]]>y"), "x]]&gt;y");
        assert_eq!(
            text("a\u{0}b\u{1b}c\u{FFFE}d"),
            "a\u{FFFD}b\u{FFFD}c\u{FFFD}d"
        );
        assert_eq!(text("a\r\nb\tc"), "a&#13;\nb\tc");
        assert_eq!(text("città 😀"), "città 😀");
        let mut d = aruba_2018();
        d.oggetto = Some("R: <x> & \u{7}bell\r\nnext".into());
        d.msgid = Some("<a&b@c>".into());
        let x = d.to_xml();
        assert!(x.contains("<msgid>&lt;a&amp;b@c&gt;</msgid>"));
        let back = Daticert::parse(x.as_bytes()).unwrap();
        assert_eq!(
            back.oggetto.as_deref(),
            Some("R: <x> & \u{FFFD}bell\r\nnext")
        );
        assert_eq!(back.msgid.as_deref(), Some("<a&b@c>"));
    }

    #[test]
    fn enum_strings_round_trip_case_insensitively() {
        for t in Tipo::ALL {
            assert_eq!(t.as_str().parse::<Tipo>(), Ok(*t));
            assert_eq!(
                format!("  {}\r\n", t.as_str().to_uppercase()).parse::<Tipo>(),
                Ok(*t)
            );
            assert_eq!(t.to_string(), t.as_str());
        }
        for e in Errore::ALL {
            assert_eq!(e.as_str().parse::<Errore>(), Ok(*e));
        }
        for d in TipoDestinatario::ALL {
            assert_eq!(d.as_str().parse::<TipoDestinatario>(), Ok(*d));
        }
        for r in TipoRicevuta::ALL {
            assert_eq!(r.as_str().parse::<TipoRicevuta>(), Ok(*r));
        }
        assert_eq!(Tipo::ALL.len(), 8);
        assert_eq!(
            Tipo::PreavvisoErroreConsegna.as_str(),
            "preavviso-errore-consegna"
        );
        assert_eq!(Errore::NoDominio.as_str(), "no-dominio");
        assert_eq!(" Breve ".parse::<TipoRicevuta>(), Ok(TipoRicevuta::Breve));
        let err = "consegna".parse::<Tipo>().unwrap_err();
        assert_eq!(err.kind, "tipo");
        assert!(err.to_string().contains("\"consegna\""));
        assert!(err.to_string().contains("avvenuta-consegna"));
        assert!("".parse::<Errore>().is_err());
        assert!("presa in carico".parse::<Tipo>().is_err());
    }

    #[test]
    fn lenient_inputs() {
        // BOM, CRLF, DOCTYPE with internal subset, comments, CDATA, PI, stray text,
        // unknown elements and attributes, missing errore and destinatari tipo,
        // <ricevuta/> without space, char refs, trailing \n\r\n.
        let x = "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
            <!DOCTYPE postacert SYSTEM \"daticert.dtd\" [ <!ENTITY foo \"bar\"> ]>\r\n\
            <!-- c --><?pi x?>\r\n\
            <postacert tipo=\" Avvenuta-Consegna \" foo=\"bar\">\r\n\
            junk<intestazione>\r\n<mittente>\r\n   a@b.it  \r\n</mittente>\r\n\
            <destinatari>x&#64;y.it</destinatari>a\r\n\
            <destinatari tipo=\"esterno\"><![CDATA[<z>@w.com]]></destinatari>\
            <risposte/>b<oggetto>  Re: &quot;x&quot; &egrave; &#x1F600;&#0;</oggetto>\
            <unknown><mittente>ignored</mittente></unknown>\
            </intestazione><dati><gestore-emittente>G</gestore-emittente>\
            <data zona=\"+01:00\" extra=\"1\"><giorno> 13/11/2018 </giorno><ora>16:39:27</ora></data>\
            <identificativo>id@x</identificativo><ricevuta tipo=\"breve\"/>\
            <consegna>x@y.it</consegna><nuovo/></dati></postacert>\n\r\n<trailing/>";
        let d = Daticert::parse(x.as_bytes()).unwrap();
        assert_eq!(d.tipo, Tipo::AvvenutaConsegna);
        assert_eq!(d.errore, Errore::Nessuno);
        assert_eq!(d.mittente, "a@b.it");
        assert_eq!(
            d.destinatari,
            vec![
                Destinatario {
                    indirizzo: "x@y.it".into(),
                    tipo: TipoDestinatario::Certificato
                },
                Destinatario {
                    indirizzo: "<z>@w.com".into(),
                    tipo: TipoDestinatario::Esterno
                },
            ]
        );
        assert_eq!(d.risposte, "");
        assert_eq!(
            d.oggetto.as_deref(),
            Some("  Re: \"x\" &egrave; 😀\u{FFFD}")
        );
        assert_eq!(
            d.data,
            PecTime::from_parts("13/11/2018", "16:39:27", "+0100").unwrap()
        );
        assert_eq!(d.ricevuta, Some(TipoRicevuta::Breve));
        assert_eq!(d.consegna.as_deref(), Some("x@y.it"));
        assert_eq!(d.msgid, None);
    }

    #[test]
    fn iso_8859_1_and_utf16_inputs() {
        let mut bytes = b"<?xml version='1.0' encoding='ISO-8859-1'?>".to_vec();
        bytes.extend_from_slice(
            doc(r#"tipo="accettazione""#, "")
                .replace("a@b.it", "citt\u{e0}")
                .as_bytes(),
        );
        // re-encode the à as a single Latin-1 byte
        let latin: Vec<u8> = String::from_utf8(bytes)
            .unwrap()
            .chars()
            .map(|c| c as u32 as u8)
            .collect();
        assert_eq!(Daticert::parse(&latin).unwrap().mittente, "città");
        // mislabelled: declared ISO-8859-1, really UTF-8
        let utf8 = format!(
            "<?xml version='1.0' encoding='iso-8859-1'?>{}",
            doc(r#"tipo="accettazione""#, "").replace("a@b.it", "città")
        );
        assert_eq!(Daticert::parse(utf8.as_bytes()).unwrap().mittente, "città");
        // UTF-16LE with BOM
        let src = doc(r#"tipo="accettazione""#, "").replace("a@b.it", "città");
        let mut u16 = vec![0xFF, 0xFE];
        for u in src.encode_utf16() {
            u16.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(Daticert::parse(&u16).unwrap().mittente, "città");
    }

    #[test]
    fn bad_inputs_are_errors() {
        use DaticertError::*;
        let p = |s: &str| Daticert::parse(s.as_bytes());
        assert!(matches!(p(""), Err(NotXml(_))));
        assert!(matches!(p(" \r\n "), Err(NotXml(_))));
        assert!(matches!(p("hello, world"), Err(NotXml(_))));
        assert!(matches!(p("{\"tipo\": 1}"), Err(NotXml(_))));
        assert!(matches!(p("<a><b></a>"), Err(WrongRoot(_))));
        assert!(matches!(
            p("<postacert tipo='accettazione'><b></postacert>"),
            Err(NotXml(_))
        ));
        assert_eq!(p("<html><body/></html>"), Err(WrongRoot("html".into())));
        assert_eq!(p("<postacert/>"), Err(MissingAttribute("postacert tipo")));
        let e = p(&doc(r#"tipo="consegna""#, "")).unwrap_err();
        assert!(
            matches!(&e, BadValue { field: "postacert tipo", value, .. } if value == "consegna")
        );
        assert!(e.to_string().contains("avvenuta-consegna"), "{e}");
        assert!(matches!(
            p(&doc(r#"tipo="accettazione" errore="boh""#, "")),
            Err(BadValue {
                field: "postacert errore",
                ..
            })
        ));
        assert!(matches!(
            p(&doc(r#"tipo="accettazione""#, "")
                .replace("<destinatari>", r#"<destinatari tipo="pec">"#)),
            Err(BadValue {
                field: "destinatari tipo",
                ..
            })
        ));
        assert!(matches!(
            p(&doc(
                r#"tipo="avvenuta-consegna""#,
                r#"<ricevuta tipo="lunga"/>"#
            )),
            Err(BadValue {
                field: "ricevuta tipo",
                ..
            })
        ));
        assert!(matches!(
            p(&doc(r#"tipo="accettazione""#, "").replace("01/06/2021", "31/02/2021")),
            Err(BadDate(_))
        ));
        assert!(matches!(
            p(&doc(r#"tipo="accettazione""#, "").replace("10:00:00", "ieri")),
            Err(BadDate(_))
        ));
        assert_eq!(
            p(&doc(r#"tipo="accettazione""#, "").replace(r#" zona="+0200""#, "")),
            Err(MissingAttribute("data zona"))
        );
        assert_eq!(
            p(&doc(r#"tipo="accettazione""#, "").replace("<ora>10:00:00</ora>", "")),
            Err(MissingElement("ora"))
        );
        assert_eq!(
            p(&doc(r#"tipo="accettazione""#, "").replace("<mittente>a@b.it</mittente>", "")),
            Err(MissingElement("mittente"))
        );
        assert_eq!(
            p(&doc(r#"tipo="accettazione""#, "")
                .replace("<identificativo>id@x</identificativo>", "")),
            Err(MissingElement("identificativo"))
        );
        assert!(matches!(
            p(&doc(r#"tipo="accettazione""#, "").replace("id@x", " ")),
            Err(BadValue {
                field: "identificativo",
                ..
            })
        ));
        assert_eq!(
            p(&doc(r#"tipo="accettazione""#, "")
                .replace("<gestore-emittente>G</gestore-emittente>", "")),
            Err(MissingElement("gestore-emittente"))
        );
        // lenient on the counts: no destinatari is accepted
        let d =
            p(&doc(r#"tipo="accettazione""#, "").replace("<destinatari>c@d.it</destinatari>", ""))
                .unwrap();
        assert!(d.destinatari.is_empty());
    }

    #[test]
    fn truncated_and_hostile_inputs_never_panic() {
        let full = ARUBA_2018.as_bytes();
        // everything before the final '>' of </postacert> is incomplete
        for cut in 0..full.len() - 1 {
            let r = Daticert::parse(&full[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes parsed");
        }
        // every single-byte corruption
        for i in (0..full.len()).step_by(7) {
            let mut b = full.to_vec();
            b[i] = 0xFF;
            let _ = Daticert::parse(&b);
            b[i] = b'<';
            let _ = Daticert::parse(&b);
        }
        let deep = format!(
            "<postacert tipo=\"accettazione\">{}{}</postacert>",
            "<a x='1'>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        assert!(matches!(
            Daticert::parse(deep.as_bytes()),
            Err(DaticertError::MissingElement("mittente"))
        ));
        let unclosed = "<a>".repeat(50_000);
        assert!(Daticert::parse(unclosed.as_bytes()).is_err());
        for junk in [
            &b"\0\0\0\0"[..],
            b"\xFF\xFE",
            b"\xFE\xFF\0",
            b"\xEF\xBB\xBF",
            b"<?xml",
            b"<?xml version=\"1.0\" encoding=\"",
            b"<!DOCTYPE",
            b"<![CDATA[",
            b"<postacert tipo=\"accettazione\" errore=",
            b"<postacert tipo='accettazione'><intestazione><mittente>&#xFFFFFFFF;&#;&;&",
            b"</postacert>",
            b"<?xml version='1.0' encoding='utf-16'?><p/>",
        ] {
            assert!(Daticert::parse(junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn consistency_rules() {
        assert!(aruba_2018().validate_consistency().is_empty());

        let mut d = aruba_2018();
        d.consegna = None;
        d.ricevuta = None;
        let p = d.validate_consistency();
        assert_eq!(p.len(), 2, "{p:?}");

        let mut d = aruba_2018();
        d.tipo = Tipo::Accettazione;
        d.ricevuta = None;
        d.consegna = None;
        assert!(d.validate_consistency().is_empty());
        d.ricevuta = Some(TipoRicevuta::Breve);
        d.errore = Errore::Altro;
        d.errore_esteso = Some("x".into());
        assert_eq!(d.validate_consistency().len(), 3);

        let mut d = aruba_2018();
        d.tipo = Tipo::PresaInCarico;
        d.ricevuta = None;
        d.consegna = None;
        assert_eq!(d.validate_consistency().len(), 1);
        d.ricezione = vec!["x@y.it".into()];
        assert!(d.validate_consistency().is_empty());

        let mut d = aruba_2018();
        d.tipo = Tipo::ErroreConsegna;
        d.ricevuta = None;
        d.errore_esteso = Some("5.1.1".into());
        assert_eq!(d.validate_consistency().len(), 1, "errore nessuno");
        for ok in [
            Errore::NoDest,
            Errore::NoDominio,
            Errore::Virus,
            Errore::Altro,
        ] {
            d.errore = ok;
            assert!(d.validate_consistency().is_empty(), "{ok}");
        }

        let mut d = aruba_2018();
        d.tipo = Tipo::NonAccettazione;
        d.ricevuta = None;
        d.consegna = None;
        d.errore = Errore::Virus;
        assert!(d.validate_consistency().is_empty());
        d.errore = Errore::NoDest;
        assert_eq!(d.validate_consistency().len(), 1);

        let mut d = aruba_2018();
        d.tipo = Tipo::RilevazioneVirus;
        d.ricevuta = None;
        d.errore = Errore::Altro;
        assert_eq!(d.validate_consistency().len(), 1);
        d.errore = Errore::Virus;
        assert!(d.validate_consistency().is_empty());

        let mut d = aruba_2018();
        d.destinatari.clear();
        d.identificativo = "<x@y>".into();
        d.msgid = Some("x@y".into());
        assert_eq!(d.validate_consistency().len(), 3);
    }
}
