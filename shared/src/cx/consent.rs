//! Marketing consent and the blocklist. A customer who writes an opt-out keyword (the whole
//! message: "STOP", "baja.") is opted out of marketing, so campaigns skip them, and hears one
//! confirmation; an opt-in keyword reverses it. Users change both flags through the API. A
//! blocked number's inbound is dropped and nothing is sent to it. Every change is recorded in
//! `contact_consent_events` with its source; a change that changes nothing records nothing
//! and sends nothing, which is what makes the confirmation "once".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{types::Json, PgConnection};
use uuid::Uuid;

use crate::outbound::{self, NewOutbound, QueueError};

/// Keywords by language code (`{"en": ["STOP"], "es": ["BAJA"]}`).
pub type KeywordsByLanguage = BTreeMap<String, Vec<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    OptOut,
    OptIn,
    Block,
    Unblock,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::OptOut => "OPT_OUT",
            Change::OptIn => "OPT_IN",
            Change::Block => "BLOCK",
            Change::Unblock => "UNBLOCK",
        }
    }
}

/// Who made a change.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The customer wrote this keyword.
    Keyword(&'a str),
    /// A user (or an API key, `None`) through the API.
    Api(Option<Uuid>),
}

/// An organization's keywords and confirmations, with the built-in defaults where it set none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentSettings {
    pub opt_out_keywords: KeywordsByLanguage,
    pub opt_in_keywords: KeywordsByLanguage,
    /// `None`: the built-in confirmation in the keyword's language.
    pub opt_out_confirmation: Option<String>,
    pub opt_in_confirmation: Option<String>,
}

fn keywords(pairs: &[(&str, &[&str])]) -> KeywordsByLanguage {
    pairs
        .iter()
        .map(|(lang, words)| {
            (
                lang.to_string(),
                words.iter().map(|w| w.to_string()).collect(),
            )
        })
        .collect()
}

/// What carriers and Meta's own guidance use, in the languages our customers write most.
pub fn default_opt_out_keywords() -> KeywordsByLanguage {
    keywords(&[
        (
            "en",
            &["STOP", "UNSUBSCRIBE", "STOP ALL", "OPT OUT", "OPTOUT"],
        ),
        ("es", &["BAJA", "PARAR", "DETENER", "CANCELAR SUSCRIPCION"]),
        ("pt", &["SAIR", "PARAR", "DESCADASTRAR"]),
        ("fr", &["ARRET", "DESABONNER"]),
        ("de", &["STOPP", "ABMELDEN"]),
        ("it", &["ANNULLA ISCRIZIONE", "DISISCRIVI"]),
    ])
}

pub fn default_opt_in_keywords() -> KeywordsByLanguage {
    keywords(&[
        ("en", &["START", "UNSTOP", "SUBSCRIBE"]),
        ("es", &["ALTA", "SUSCRIBIR"]),
        ("pt", &["VOLTAR", "INSCREVER"]),
        ("fr", &["ABONNER"]),
        ("de", &["ANMELDEN"]),
        ("it", &["ISCRIVI"]),
    ])
}

fn default_confirmation(change: Change, language: &str) -> &'static str {
    match (change, language) {
        (Change::OptOut, "es") => "Has dejado de recibir mensajes promocionales. Escribe ALTA para volver a recibirlos.",
        (Change::OptOut, "pt") => "Você não receberá mais mensagens promocionais. Envie VOLTAR para recebê-las novamente.",
        (Change::OptOut, "fr") => "Vous ne recevrez plus de messages promotionnels. Écrivez ABONNER pour les recevoir à nouveau.",
        (Change::OptOut, "de") => "Sie erhalten keine Werbenachrichten mehr. Schreiben Sie ANMELDEN, um sie wieder zu erhalten.",
        (Change::OptOut, "it") => "Non riceverai più messaggi promozionali. Scrivi ISCRIVI per riceverli di nuovo.",
        (Change::OptOut, _) => "You will no longer receive promotional messages. Reply START to receive them again.",
        (_, "es") => "Vuelves a recibir nuestros mensajes promocionales. Escribe BAJA para dejar de recibirlos.",
        (_, "pt") => "Você voltará a receber nossas mensagens promocionais. Envie SAIR para deixar de recebê-las.",
        (_, "fr") => "Vous recevrez à nouveau nos messages promotionnels. Écrivez ARRET pour ne plus les recevoir.",
        (_, "de") => "Sie erhalten wieder unsere Werbenachrichten. Schreiben Sie STOPP, um sie abzubestellen.",
        (_, "it") => "Riceverai di nuovo i nostri messaggi promozionali. Scrivi DISISCRIVI per non riceverli più.",
        _ => "You will receive our promotional messages again. Reply STOP to stop them.",
    }
}

/// Upper case, accents folded, punctuation around words dropped, spaces collapsed: "¡Baja!"
/// and "  baja " both read "BAJA".
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .chars()
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'Á' | 'À' | 'Â' | 'Ä' | 'Ã' => 'A',
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' | 'Ê' | 'Ë' => 'E',
            'í' | 'ì' | 'î' | 'ï' | 'Í' | 'Ì' | 'Î' | 'Ï' => 'I',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'Ó' | 'Ò' | 'Ô' | 'Ö' | 'Õ' => 'O',
            'ú' | 'ù' | 'û' | 'ü' | 'Ú' | 'Ù' | 'Û' | 'Ü' => 'U',
            'ç' | 'Ç' => 'C',
            'ñ' | 'Ñ' => 'N',
            c if c.is_alphanumeric() => c,
            _ => ' ',
        })
        .collect();
    folded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

/// Longest message still read as a keyword; anything longer is a conversation.
const MAX_KEYWORD_MESSAGE: usize = 64;

impl ConsentSettings {
    /// The change a customer's whole message asks for, with the keyword's language and the
    /// keyword as configured.
    pub fn keyword_in(&self, text: &str) -> Option<(Change, &str, &str)> {
        if text.chars().count() > MAX_KEYWORD_MESSAGE {
            return None;
        }
        let said = normalize(text);
        if said.is_empty() {
            return None;
        }
        for (change, table) in [
            (Change::OptOut, &self.opt_out_keywords),
            (Change::OptIn, &self.opt_in_keywords),
        ] {
            for (language, words) in table {
                if let Some(word) = words.iter().find(|w| normalize(w) == said) {
                    return Some((change, language, word));
                }
            }
        }
        None
    }

    fn confirmation(&self, change: Change, language: &str) -> String {
        let custom = match change {
            Change::OptOut => &self.opt_out_confirmation,
            _ => &self.opt_in_confirmation,
        };
        custom
            .clone()
            .unwrap_or_else(|| default_confirmation(change, language).to_string())
    }
}

#[derive(sqlx::FromRow)]
struct StoredSettings {
    opt_out_keywords: Option<Json<KeywordsByLanguage>>,
    opt_in_keywords: Option<Json<KeywordsByLanguage>>,
    opt_out_confirmation: Option<String>,
    opt_in_confirmation: Option<String>,
}

/// The consent settings of `org_id` (defaults for whatever it never set).
pub async fn load_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
) -> Result<ConsentSettings, sqlx::Error> {
    let stored: Option<StoredSettings> = sqlx::query_as(
        "SELECT opt_out_keywords, opt_in_keywords, opt_out_confirmation, opt_in_confirmation
           FROM org_cx_settings WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_optional(conn)
    .await?;
    let s = stored.unwrap_or(StoredSettings {
        opt_out_keywords: None,
        opt_in_keywords: None,
        opt_out_confirmation: None,
        opt_in_confirmation: None,
    });
    Ok(ConsentSettings {
        opt_out_keywords: s
            .opt_out_keywords
            .map_or_else(default_opt_out_keywords, |j| j.0),
        opt_in_keywords: s
            .opt_in_keywords
            .map_or_else(default_opt_in_keywords, |j| j.0),
        opt_out_confirmation: s.opt_out_confirmation,
        opt_in_confirmation: s.opt_in_confirmation,
    })
}

/// Saves `s` for `org_id`; keyword tables equal to the defaults are stored as "defaults", so
/// a later change of the built-in lists reaches them.
pub async fn save_settings(
    conn: &mut PgConnection,
    org_id: Uuid,
    s: &ConsentSettings,
) -> Result<(), sqlx::Error> {
    let out =
        (s.opt_out_keywords != default_opt_out_keywords()).then_some(Json(&s.opt_out_keywords));
    let into = (s.opt_in_keywords != default_opt_in_keywords()).then_some(Json(&s.opt_in_keywords));
    sqlx::query(
        "INSERT INTO org_cx_settings (org_id, opt_out_keywords, opt_in_keywords, opt_out_confirmation, opt_in_confirmation)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (org_id) DO UPDATE SET
            opt_out_keywords = EXCLUDED.opt_out_keywords, opt_in_keywords = EXCLUDED.opt_in_keywords,
            opt_out_confirmation = EXCLUDED.opt_out_confirmation,
            opt_in_confirmation = EXCLUDED.opt_in_confirmation, updated_at = now()",
    )
    .bind(org_id)
    .bind(out)
    .bind(into)
    .bind(&s.opt_out_confirmation)
    .bind(&s.opt_in_confirmation)
    .execute(conn)
    .await?;
    Ok(())
}

/// Applies `change` to contact `contact_id` of `org_id` and records it with its source.
/// Returns `false` (and records nothing) when the contact was already in that state.
pub async fn apply(
    conn: &mut PgConnection,
    org_id: Uuid,
    contact_id: Uuid,
    change: Change,
    source: Source<'_>,
) -> Result<bool, sqlx::Error> {
    let set = match change {
        Change::OptOut => {
            "marketing_opt_out = true, opted_out_at = now() WHERE NOT marketing_opt_out"
        }
        Change::OptIn => "marketing_opt_out = false, opted_out_at = NULL WHERE marketing_opt_out",
        Change::Block => "blocked = true, blocked_at = now() WHERE NOT blocked",
        Change::Unblock => "blocked = false, blocked_at = NULL WHERE blocked",
    };
    let changed = sqlx::query(&format!(
        "UPDATE contacts SET updated_at = now(), {set} AND id = $1 AND org_id = $2"
    ))
    .bind(contact_id)
    .bind(org_id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        > 0;
    if changed {
        let (source_name, keyword, user_id) = match source {
            Source::Keyword(k) => ("KEYWORD", Some(k), None),
            Source::Api(user) => ("API", None, user),
        };
        sqlx::query(
            "INSERT INTO contact_consent_events (org_id, contact_id, change, source, keyword, user_id)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(org_id)
        .bind(contact_id)
        .bind(change.as_str())
        .bind(source_name)
        .bind(keyword)
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(changed)
}

/// Whether the organization blocked `wa_id` (its inbound is dropped).
pub async fn is_blocked(
    conn: &mut PgConnection,
    org_id: Uuid,
    wa_id: &str,
) -> Result<bool, sqlx::Error> {
    Ok(
        sqlx::query_scalar("SELECT blocked FROM contacts WHERE org_id = $1 AND wa_id = $2")
            .bind(org_id)
            .bind(wa_id)
            .fetch_optional(conn)
            .await?
            .unwrap_or(false),
    )
}

/// Called in the transaction that stored a customer's text in `conversation_id`: an opt-out
/// or opt-in keyword changes the contact's consent and queues one confirmation.
pub async fn after_customer_message(
    conn: &mut PgConnection,
    org_id: Uuid,
    contact_id: Uuid,
    conversation_id: Uuid,
    text: &str,
) -> Result<Option<Change>, QueueError> {
    if text.is_empty() || text.chars().count() > MAX_KEYWORD_MESSAGE {
        return Ok(None);
    }
    let settings = load_settings(conn, org_id).await?;
    let Some((change, language, keyword)) = settings.keyword_in(text) else {
        return Ok(None);
    };
    if !apply(conn, org_id, contact_id, change, Source::Keyword(keyword)).await? {
        return Ok(None);
    }
    if let Some(target) = outbound::load_target(conn, org_id, conversation_id).await? {
        if target.sendable() && target.window_open() {
            let message = settings.confirmation(change, language);
            outbound::queue_outbound(conn, NewOutbound::text(org_id, target, &message)).await?;
        }
    }
    Ok(Some(change))
}

/// One recorded change, newest first in [`history`].
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct ConsentEvent {
    pub change: String,
    pub source: String,
    pub keyword: Option<String>,
    pub user_id: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// The latest `limit` consent changes of a contact.
pub async fn history(
    conn: &mut PgConnection,
    contact_id: Uuid,
    limit: i64,
) -> Result<Vec<ConsentEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT change, source, keyword, user_id, created_at AS at FROM contact_consent_events
          WHERE contact_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(contact_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ConsentSettings {
        ConsentSettings {
            opt_out_keywords: default_opt_out_keywords(),
            opt_in_keywords: default_opt_in_keywords(),
            opt_out_confirmation: None,
            opt_in_confirmation: None,
        }
    }

    #[test]
    fn whole_message_keywords_match_in_any_case_and_punctuation() {
        let s = defaults();
        assert_eq!(s.keyword_in("stop").map(|k| k.0), Some(Change::OptOut));
        assert_eq!(
            s.keyword_in("  ¡Baja! ").map(|k| (k.0, k.1)),
            Some((Change::OptOut, "es"))
        );
        assert_eq!(s.keyword_in("Arrêt").map(|k| k.1), Some("fr"));
        assert_eq!(s.keyword_in("START").map(|k| k.0), Some(Change::OptIn));
        assert_eq!(s.keyword_in("please don't stop the delivery"), None);
        assert_eq!(s.keyword_in("stopping by later"), None);
        assert_eq!(s.keyword_in("???"), None);
    }

    #[test]
    fn confirmations_follow_the_keyword_language_unless_the_org_wrote_its_own() {
        let mut s = defaults();
        assert!(s.confirmation(Change::OptOut, "es").contains("ALTA"));
        assert!(s.confirmation(Change::OptIn, "xx").contains("STOP"));
        s.opt_out_confirmation = Some("Bye".into());
        assert_eq!(s.confirmation(Change::OptOut, "es"), "Bye");
    }
}
