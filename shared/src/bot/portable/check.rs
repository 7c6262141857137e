//! The check of an import file: the whole document is walked and every problem is collected
//! with its JSON path (`intents[2].action`), so the user fixes the file in one go. The rules
//! are those of `PUT /bot-config` and `POST /bot-config/intents`; a field the format does not
//! know is a problem too, since a typo would otherwise be dropped silently.
//!
//! Written as a walk over `serde_json::Value` rather than a derived `Deserialize`, because
//! serde stops at the first wrong field.

mod fields;

use serde_json::{Map, Value};

use super::{ConfigDoc, ImportDoc, IntentDoc, FORMAT_VERSION};
use crate::llm::Provider;

pub const MAX_NAME: usize = 200;
pub const MAX_MODEL: usize = 100;
pub const MAX_PROMPT: usize = 20_000;
pub const MAX_MESSAGE: usize = 4096;
pub const MAX_INTENTS: usize = 500;
pub const MAX_PROMPT_VERSIONS: usize = 1000;
pub const ACTIONS: [&str; 3] = ["ANSWER", "HANDOFF", "TAG"];
/// What a config's settings default to when a hand-written file leaves them out (the
/// defaults of `bot_configs`).
const DEFAULT_TEMPERATURE: f32 = 0.3;
const DEFAULT_DEBOUNCE: i32 = 3;
const DEFAULT_MAX_TURNS: i32 = 20;

/// One problem of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Path segments inside the file: `["intents", "2", "action"]`; empty for the whole file.
    pub loc: Vec<String>,
    pub msg: String,
    /// `value_error`, `missing`, `type_error`, `enum`, `json_invalid`.
    pub kind: &'static str,
}

impl Problem {
    pub fn at(loc: &[&str], msg: impl Into<String>) -> Self {
        Self {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind: "value_error",
        }
    }

    /// The whole file.
    pub fn file(msg: impl Into<String>) -> Self {
        Self::at(&[], msg)
    }

    /// The location as a JSON path: `intents[2].action` (`$` for the whole file).
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.loc {
            if seg.parse::<usize>().is_ok() {
                out.push_str(&format!("[{seg}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(seg);
            }
        }
        if out.is_empty() {
            "$".into()
        } else {
            out
        }
    }
}

/// Parses and checks an export file; every problem at once, or the document to import.
pub fn parse(json: &[u8]) -> Result<ImportDoc, Vec<Problem>> {
    let value: Value = serde_json::from_slice(json).map_err(|e| {
        vec![Problem {
            loc: vec![],
            msg: format!("the file is not valid JSON ({e})"),
            kind: "json_invalid",
        }]
    })?;
    let mut w = Walker::default();
    let doc = w.document(&value);
    match doc {
        Some(doc) if w.problems.is_empty() => Ok(doc),
        _ => Err(w.problems),
    }
}

type Obj = Map<String, Value>;

#[derive(Default)]
struct Walker {
    problems: Vec<Problem>,
}

fn child(loc: &[String], seg: impl ToString) -> Vec<String> {
    let mut l = loc.to_vec();
    l.push(seg.to_string());
    l
}

impl Walker {
    fn add(&mut self, loc: Vec<String>, msg: impl Into<String>, kind: &'static str) {
        self.problems.push(Problem {
            loc,
            msg: msg.into(),
            kind,
        });
    }

    fn document(&mut self, value: &Value) -> Option<ImportDoc> {
        let Some(root) = value.as_object() else {
            self.add(
                vec![],
                "the file must be a JSON object (a bot config export)",
                "type_error",
            );
            return None;
        };
        let top: &[String] = &[];
        self.known(
            root,
            top,
            &[
                "version",
                "tier",
                "exportedAt",
                "config",
                "intents",
                "presets",
                "promptVersions",
                "documents",
            ],
        );
        match root.get("version") {
            None => self.add(
                vec!["version".into()],
                "Field required: the export format's version",
                "missing",
            ),
            Some(v) if v.as_i64() == Some(FORMAT_VERSION) => {}
            Some(v) => self.add(
                vec!["version".into()],
                format!("unsupported version {v}; this server reads version {FORMAT_VERSION}"),
                "value_error",
            ),
        }
        if let Some(tier) = self.text(root, top, "tier", false, 20) {
            self.one_of(top, "tier", &tier, &super::Tier::NAMES);
        }
        self.text(root, top, "exportedAt", false, 100);
        let config = match root.get("config") {
            Some(Value::Object(c)) => self.config(c),
            Some(_) => {
                self.add(vec!["config".into()], "must be an object", "type_error");
                None
            }
            None => {
                self.add(vec!["config".into()], "Field required", "missing");
                None
            }
        };
        let intents = self.each(root, "intents", MAX_INTENTS, |w, obj, loc| {
            w.intent(obj, loc)
        });
        self.each(root, "presets", 1000, |w, obj, loc| w.preset(obj, loc));
        let mut versions = self.each(
            root,
            "promptVersions",
            MAX_PROMPT_VERSIONS,
            |w, obj, loc| w.prompt_version(obj, loc),
        );
        versions.sort_by_key(|(version, _)| *version);
        match root.get("documents") {
            None | Some(Value::Null) => {}
            Some(Value::Array(d)) if d.is_empty() => {}
            Some(Value::Array(_)) => self.add(
                vec!["documents".into()],
                "knowledge-base documents cannot be imported yet; leave the list empty",
                "value_error",
            ),
            Some(_) => self.add(vec!["documents".into()], "must be a list", "type_error"),
        }
        Some(ImportDoc {
            config: config?,
            intents,
            prompt_history: versions.into_iter().map(|(_, p)| p).collect(),
        })
    }

    /// Checks each object of the optional list `key` of `root` with `f`.
    fn each<T>(
        &mut self,
        root: &Obj,
        key: &str,
        max: usize,
        f: impl Fn(&mut Self, &Obj, &[String]) -> Option<T>,
    ) -> Vec<T> {
        let loc = vec![key.to_string()];
        let items = match root.get(key) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.add(loc, "must be a list", "type_error");
                return Vec::new();
            }
        };
        if items.len() > max {
            self.add(loc.clone(), format!("at most {max} items"), "value_error");
        }
        let mut out = Vec::new();
        for (n, item) in items.iter().enumerate() {
            let at = child(&loc, n);
            match item.as_object() {
                Some(obj) => out.extend(f(self, obj, &at)),
                None => self.add(at, "must be an object", "type_error"),
            }
        }
        out
    }

    fn config(&mut self, c: &Obj) -> Option<ConfigDoc> {
        let loc = vec!["config".to_string()];
        if c.contains_key("apiKey") {
            self.add(
                child(&loc, "apiKey"),
                "API keys are never exported or imported; set the key after the import",
                "value_error",
            );
        }
        self.known(
            c,
            &loc,
            &[
                "apiKey",
                "name",
                "provider",
                "model",
                "baseUrl",
                "systemPrompt",
                "greeting",
                "handoffMessage",
                "temperature",
                "debounceSeconds",
                "maxTurns",
                "handoffKeywords",
                "embeddingProvider",
                "embeddingModel",
            ],
        );
        let name = self.text(c, &loc, "name", true, MAX_NAME);
        let provider = self.provider(c, &loc, "provider", true);
        let model = self.text(c, &loc, "model", true, MAX_MODEL);
        let base_url = self.url(c, &loc, "baseUrl");
        if provider.as_deref() == Some(Provider::Local.as_str()) && base_url.is_none() {
            self.add(
                child(&loc, "baseUrl"),
                "a LOCAL provider needs the server's OpenAI-compatible base URL",
                "value_error",
            );
        }
        let system_prompt = self.long_text(c, &loc, "systemPrompt", MAX_PROMPT);
        let greeting = self.long_text(c, &loc, "greeting", MAX_MESSAGE);
        let handoff_message = self.long_text(c, &loc, "handoffMessage", MAX_MESSAGE);
        let temperature = self.number(c, &loc, "temperature", 0.0, 2.0);
        let debounce = self.integer(c, &loc, "debounceSeconds", 0, 60);
        let max_turns = self.integer(c, &loc, "maxTurns", 0, 1000);
        let keywords = self.list(c, &loc, "handoffKeywords", 50, 50);
        let embedding_provider = self.provider(c, &loc, "embeddingProvider", false);
        let embedding_model = self.text(c, &loc, "embeddingModel", false, MAX_MODEL);
        Some(ConfigDoc {
            name: name?,
            provider: provider?,
            model: model?,
            base_url,
            system_prompt: system_prompt.unwrap_or_default(),
            greeting,
            handoff_message,
            temperature: temperature.map_or(DEFAULT_TEMPERATURE, |t| t as f32),
            debounce_seconds: debounce.map_or(DEFAULT_DEBOUNCE, |d| d as i32),
            max_turns: max_turns.map_or(DEFAULT_MAX_TURNS, |t| t as i32),
            handoff_keywords: keywords.unwrap_or_default(),
            embedding_provider,
            embedding_model,
        })
    }

    fn intent(&mut self, i: &Obj, loc: &[String]) -> Option<IntentDoc> {
        self.known(
            i,
            loc,
            &[
                "name", "keywords", "examples", "action", "response", "teamName", "tagName",
                "isActive",
            ],
        );
        let name = self.text(i, loc, "name", true, MAX_NAME);
        let action = self.text(i, loc, "action", true, 20);
        if let Some(a) = &action {
            self.one_of(loc, "action", a, &ACTIONS);
        }
        let keywords = self.list(i, loc, "keywords", 100, 100);
        if keywords.as_ref().is_some_and(Vec::is_empty) || !i.contains_key("keywords") {
            self.add(
                child(loc, "keywords"),
                "give at least one keyword",
                "value_error",
            );
        }
        let examples = self.list(i, loc, "examples", 100, 1000);
        let response = self.long_text(i, loc, "response", MAX_MESSAGE);
        let team_name = self.text(i, loc, "teamName", false, MAX_NAME);
        let tag_name = self.text(i, loc, "tagName", false, MAX_NAME);
        let is_active = self.boolean(i, loc, "isActive");
        if action.as_deref() == Some("ANSWER")
            && response.as_deref().is_none_or(|r| r.trim().is_empty())
        {
            self.add(
                child(loc, "response"),
                "an ANSWER intent needs the text it answers with",
                "value_error",
            );
        }
        if action.as_deref() == Some("TAG") && tag_name.is_none() {
            self.add(
                child(loc, "tagName"),
                "a TAG intent needs the tag it adds",
                "value_error",
            );
        }
        Some(IntentDoc {
            name: name?,
            keywords: sqlx::types::Json(keywords?),
            examples: sqlx::types::Json(examples.unwrap_or_default()),
            action: action?,
            response,
            team_name,
            tag_name,
            is_active: is_active.unwrap_or(true),
        })
    }

    /// Presets are not imported (they would have no key), but a file is only taken whole.
    fn preset(&mut self, p: &Obj, loc: &[String]) -> Option<()> {
        self.known(
            p,
            loc,
            &["name", "provider", "model", "baseUrl", "temperature"],
        );
        self.text(p, loc, "name", true, MAX_NAME);
        self.provider(p, loc, "provider", true);
        self.text(p, loc, "model", true, MAX_MODEL);
        self.url(p, loc, "baseUrl");
        self.number(p, loc, "temperature", 0.0, 2.0);
        Some(())
    }

    fn prompt_version(&mut self, v: &Obj, loc: &[String]) -> Option<(i64, String)> {
        self.known(v, loc, &["version", "systemPrompt", "createdAt"]);
        let version = self.integer(v, loc, "version", 1, i64::from(i32::MAX));
        if !v.contains_key("version") {
            self.add(child(loc, "version"), "Field required", "missing");
        }
        let prompt = self.long_text(v, loc, "systemPrompt", MAX_PROMPT);
        if !v.contains_key("systemPrompt") {
            self.add(child(loc, "systemPrompt"), "Field required", "missing");
        }
        self.text(v, loc, "createdAt", false, 100);
        Some((version?, prompt?))
    }
}
