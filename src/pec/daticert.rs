//! daticert.xml: the certification data attached to every envelope and receipt
//! (DTD in ../shared/spec/daticert.dtd, pec-rules §4).

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
