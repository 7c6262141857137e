//! `/routing-rules/opt-out`: the keywords that opt a customer out of marketing or back in, per
//! language, and the confirmations they get. Reading needs any role; changing needs an admin.
//! PUT is partial; `null` restores the built-in value. The keywords are acted on by the inbound
//! job (`wharf_shared::cx::consent`).

use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use wharf_shared::cx::consent::{
    self, default_opt_in_keywords, default_opt_out_keywords, normalize, ConsentSettings,
    KeywordsByLanguage,
};

use super::{
    cx_settings::{begin_update, present},
    Data,
};
use crate::{
    auth::{scopes, Auth, Role},
    error::ApiResult,
    extract::ValidJson,
    state::AppState,
    validate::{Validate, Violations},
};

const MAX_LANGUAGES: usize = 30;
const MAX_KEYWORDS_PER_LANGUAGE: usize = 20;
const MAX_KEYWORD_LEN: usize = 32;
const MAX_CONFIRMATION_LEN: usize = 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_opt_out, put_opt_out))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OptOutSettingsOut {
    /// `{"en": ["STOP", ...], "es": ["BAJA", ...]}`: a customer's whole message matching one
    /// (any case, accents and punctuation ignored) opts them out of marketing.
    #[schema(value_type = Object)]
    pub opt_out_keywords: KeywordsByLanguage,
    #[schema(value_type = Object)]
    pub opt_in_keywords: KeywordsByLanguage,
    /// `null`: a built-in confirmation in the keyword's language.
    pub opt_out_confirmation: Option<String>,
    pub opt_in_confirmation: Option<String>,
}

impl From<ConsentSettings> for OptOutSettingsOut {
    fn from(s: ConsentSettings) -> Self {
        Self {
            opt_out_keywords: s.opt_out_keywords,
            opt_in_keywords: s.opt_in_keywords,
            opt_out_confirmation: s.opt_out_confirmation,
            opt_in_confirmation: s.opt_in_confirmation,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OptOutSettingsRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub opt_out_keywords: Option<Option<KeywordsByLanguage>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub opt_in_keywords: Option<Option<KeywordsByLanguage>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub opt_out_confirmation: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub opt_in_confirmation: Option<Option<String>>,
}

/// A language code such as `en`, `pt-BR` or `es-419`.
fn is_language_code(code: &str) -> bool {
    let mut parts = code.split('-');
    let primary = parts.next().unwrap_or_default();
    let region = parts.next();
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (2..=3).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric())
        })
        && parts.next().is_none()
}

fn check_keywords(v: &mut Violations, field: &str, table: &KeywordsByLanguage) {
    if table.len() > MAX_LANGUAGES {
        v.add(field, format!("at most {MAX_LANGUAGES} languages"));
    }
    for (language, words) in table {
        if !is_language_code(language) {
            v.add_at(
                &[field, language],
                "not a language code such as en, es or pt-BR",
            );
        }
        if words.len() > MAX_KEYWORDS_PER_LANGUAGE {
            v.add_at(
                &[field, language],
                format!("at most {MAX_KEYWORDS_PER_LANGUAGE} keywords"),
            );
        }
        for (i, word) in words.iter().enumerate() {
            let index = i.to_string();
            if normalize(word).is_empty() {
                v.add_at(&[field, language, &index], "must contain a letter or digit");
            } else if word.chars().count() > MAX_KEYWORD_LEN {
                v.add_at(
                    &[field, language, &index],
                    format!("must be at most {MAX_KEYWORD_LEN} characters"),
                );
            }
        }
    }
}

fn normalized_words(table: &KeywordsByLanguage) -> impl Iterator<Item = String> + '_ {
    table.values().flatten().map(|w| normalize(w))
}

impl Validate for OptOutSettingsRequest {
    fn validate(&self, v: &mut Violations) {
        for (field, table) in [
            ("optOutKeywords", &self.opt_out_keywords),
            ("optInKeywords", &self.opt_in_keywords),
        ] {
            if let Some(Some(table)) = table {
                check_keywords(v, field, table);
            }
        }
        for (field, text) in [
            ("optOutConfirmation", &self.opt_out_confirmation),
            ("optInConfirmation", &self.opt_in_confirmation),
        ] {
            if let Some(Some(text)) = text {
                v.text(field, text, MAX_CONFIRMATION_LEN);
            }
        }
    }
}

async fn load(state: &AppState, org_id: uuid::Uuid) -> ApiResult<ConsentSettings> {
    let mut conn = state.db.acquire().await?;
    Ok(consent::load_settings(&mut conn, org_id).await?)
}

/// The opt-out and opt-in keywords and confirmations.
#[utoipa::path(get, path = "/routing-rules/opt-out", tag = "routing-rules",
    responses((status = 200, body = Data<OptOutSettingsOut>)))]
async fn get_opt_out(
    State(state): State<AppState>,
    auth: Auth,
) -> ApiResult<Json<Data<OptOutSettingsOut>>> {
    let org_id = auth.authorize(Role::Agent, scopes::WHATSAPP_READ)?;
    Ok(Data::new(load(&state, org_id).await?.into()))
}

/// Change the opt-out and opt-in keywords or confirmations. A keyword may not be in both
/// lists.
#[utoipa::path(put, path = "/routing-rules/opt-out", tag = "routing-rules",
    request_body = OptOutSettingsRequest,
    responses((status = 200, body = Data<OptOutSettingsOut>), (status = 422)))]
async fn put_opt_out(
    State(state): State<AppState>,
    auth: Auth,
    ValidJson(body): ValidJson<OptOutSettingsRequest>,
) -> ApiResult<Json<Data<OptOutSettingsOut>>> {
    let (mut tx, org_id, _) = begin_update(&state, &auth).await?;
    let mut s = consent::load_settings(&mut tx, org_id).await?;
    if let Some(t) = body.opt_out_keywords {
        s.opt_out_keywords = t.unwrap_or_else(default_opt_out_keywords);
    }
    if let Some(t) = body.opt_in_keywords {
        s.opt_in_keywords = t.unwrap_or_else(default_opt_in_keywords);
    }
    if let Some(t) = body.opt_out_confirmation {
        s.opt_out_confirmation = t.map(|m| m.trim().to_string());
    }
    if let Some(t) = body.opt_in_confirmation {
        s.opt_in_confirmation = t.map(|m| m.trim().to_string());
    }
    // Checked on the result, so a change to one list cannot collide with the other unseen.
    let opt_in: std::collections::HashSet<String> = normalized_words(&s.opt_in_keywords).collect();
    let mut v = Violations::body();
    for word in normalized_words(&s.opt_out_keywords).filter(|w| opt_in.contains(w)) {
        v.add(
            "optInKeywords",
            format!("{word} is also an opt-out keyword; a keyword can only mean one thing"),
        );
    }
    v.into_result()?;
    consent::save_settings(&mut tx, org_id, &s).await?;
    tx.commit().await?;
    Ok(Data::new(s.into()))
}
