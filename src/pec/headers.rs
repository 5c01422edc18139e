//! PEC header names and subject prefixes (pec-rules §3). Match header names
//! case-insensitively: Aruba and Sogei write `X-Tiporicevuta`.

pub const X_RICEVUTA: &str = "X-Ricevuta";
pub const X_TRASPORTO: &str = "X-Trasporto";
pub const X_RIFERIMENTO_MESSAGE_ID: &str = "X-Riferimento-Message-ID";
pub const X_TIPO_RICEVUTA: &str = "X-TipoRicevuta";
pub const X_VERIFICA_SICUREZZA: &str = "X-VerificaSicurezza";
pub const X_MITTENTE: &str = "X-Mittente";

/// `X-Trasporto` values.
pub const TRASPORTO_POSTA_CERTIFICATA: &str = "posta-certificata";
pub const TRASPORTO_ERRORE: &str = "errore";
/// `X-VerificaSicurezza` value on virus notices.
pub const VERIFICA_SICUREZZA_ERRORE: &str = "errore";

pub mod subject {
    pub const ACCETTAZIONE: &str = "ACCETTAZIONE: ";
    pub const NON_ACCETTAZIONE: &str = "AVVISO DI NON ACCETTAZIONE: ";
    pub const NON_ACCETTAZIONE_VIRUS: &str = "AVVISO DI NON ACCETTAZIONE PER VIRUS: ";
    pub const POSTA_CERTIFICATA: &str = "POSTA CERTIFICATA: ";
    pub const PRESA_IN_CARICO: &str = "PRESA IN CARICO: ";
    pub const ANOMALIA: &str = "ANOMALIA MESSAGGIO: ";
    pub const PROBLEMA_SICUREZZA: &str = "PROBLEMA DI SICUREZZA: ";
    pub const MANCATA_CONSEGNA_VIRUS: &str = "AVVISO DI MANCATA CONSEGNA PER VIRUS: ";
    pub const CONSEGNA: &str = "CONSEGNA: ";
    pub const MANCATA_CONSEGNA: &str = "AVVISO DI MANCATA CONSEGNA: ";
    pub const TEMPO_MASSIMO: &str = "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: ";
}

/// The display name of the busta's `From:`: `Per conto di: <sender>`.
pub fn per_conto_di(sender: &str) -> String {
    format!("Per conto di: {sender}")
}

/// Extracts the sender from a busta `From:` display name, if it follows the rule.
pub fn sender_from_per_conto_di(display_name: &str) -> Option<&str> {
    let rest = display_name.trim().strip_prefix("Per conto di:")?;
    let sender = rest.trim();
    (!sender.is_empty()).then_some(sender)
}
