//! The eleven kinds of message a PEC provider generates (pec-rules §3).

use super::daticert::TipoRicevuta;

/// Which of the two timeout notices (pec-rules §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeoutStage {
    /// No receipts in the first 12 hours: delivery may still happen.
    Preavviso12h,
    /// No delivery within 24 hours: the transaction is closed as failed.
    Definitivo24h,
    /// Another provider's notice that does not say which.
    Unspecified,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "variant")]
pub enum MessageKind {
    Accettazione,
    NonAccettazione,
    NonAccettazioneVirus,
    BustaTrasporto,
    PresaInCarico,
    BustaAnomalia,
    RilevazioneVirus,
    AvvenutaConsegna(TipoRicevuta),
    MancataConsegna,
    MancataConsegnaVirus,
    SuperamentoTempoMassimo(TimeoutStage),
}

impl MessageKind {
    /// The Italian name a holder knows it by.
    pub fn italian_name(&self) -> &'static str {
        match self {
            Self::Accettazione => "ricevuta di accettazione",
            Self::NonAccettazione => "avviso di non accettazione",
            Self::NonAccettazioneVirus => "avviso di non accettazione per virus",
            Self::BustaTrasporto => "busta di trasporto",
            Self::PresaInCarico => "ricevuta di presa in carico",
            Self::BustaAnomalia => "busta di anomalia",
            Self::RilevazioneVirus => "avviso di rilevazione virus",
            Self::AvvenutaConsegna(TipoRicevuta::Completa) => {
                "ricevuta di avvenuta consegna completa"
            }
            Self::AvvenutaConsegna(TipoRicevuta::Breve) => "ricevuta di avvenuta consegna breve",
            Self::AvvenutaConsegna(TipoRicevuta::Sintetica) => {
                "ricevuta di avvenuta consegna sintetica"
            }
            Self::MancataConsegna => "avviso di mancata consegna",
            Self::MancataConsegnaVirus => "avviso di mancata consegna per virus",
            Self::SuperamentoTempoMassimo(TimeoutStage::Preavviso12h) => {
                "avviso di mancata consegna per superamento tempo massimo (12 ore)"
            }
            Self::SuperamentoTempoMassimo(TimeoutStage::Definitivo24h) => {
                "avviso di mancata consegna per superamento tempo massimo (24 ore)"
            }
            Self::SuperamentoTempoMassimo(TimeoutStage::Unspecified) => {
                "avviso di mancata consegna per superamento tempo massimo"
            }
        }
    }

    /// A short stable identifier for scripts (`pecbox verify --json`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Accettazione => "accettazione",
            Self::NonAccettazione => "non-accettazione",
            Self::NonAccettazioneVirus => "non-accettazione-virus",
            Self::BustaTrasporto => "busta-trasporto",
            Self::PresaInCarico => "presa-in-carico",
            Self::BustaAnomalia => "busta-anomalia",
            Self::RilevazioneVirus => "rilevazione-virus",
            Self::AvvenutaConsegna(TipoRicevuta::Completa) => "avvenuta-consegna-completa",
            Self::AvvenutaConsegna(TipoRicevuta::Breve) => "avvenuta-consegna-breve",
            Self::AvvenutaConsegna(TipoRicevuta::Sintetica) => "avvenuta-consegna-sintetica",
            Self::MancataConsegna => "mancata-consegna",
            Self::MancataConsegnaVirus => "mancata-consegna-virus",
            Self::SuperamentoTempoMassimo(TimeoutStage::Preavviso12h) => "timeout-12h",
            Self::SuperamentoTempoMassimo(TimeoutStage::Definitivo24h) => "timeout-24h",
            Self::SuperamentoTempoMassimo(TimeoutStage::Unspecified) => "timeout",
        }
    }

    /// Every kind pecbox builds, for exhaustive tests.
    pub const BUILT: [MessageKind; 14] = [
        Self::Accettazione,
        Self::NonAccettazione,
        Self::NonAccettazioneVirus,
        Self::BustaTrasporto,
        Self::PresaInCarico,
        Self::BustaAnomalia,
        Self::RilevazioneVirus,
        Self::AvvenutaConsegna(TipoRicevuta::Completa),
        Self::AvvenutaConsegna(TipoRicevuta::Breve),
        Self::AvvenutaConsegna(TipoRicevuta::Sintetica),
        Self::MancataConsegna,
        Self::MancataConsegnaVirus,
        Self::SuperamentoTempoMassimo(TimeoutStage::Preavviso12h),
        Self::SuperamentoTempoMassimo(TimeoutStage::Definitivo24h),
    ];
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.italian_name())
    }
}
