//! Template rules checked before Meta sees anything (ARCHITECTURE.md, "Meta facts"), and the
//! check of a template send's parameters against the stored template.
//!
//! Pure functions over JSON: they return [`Issue`]s whose `loc` is the path inside the request
//! body (the API prefixes `"body"`), so a client learns exactly which field is wrong.

use std::collections::{BTreeSet, HashSet};

use serde_json::Value;

/// One problem, located in the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub loc: Vec<String>,
    pub msg: String,
    /// `value_error`, `missing`, `enum`, `type_error`.
    pub kind: &'static str,
}

#[derive(Default, Debug)]
pub struct Issues(pub Vec<Issue>);

impl Issues {
    fn add(&mut self, loc: &[String], msg: impl Into<String>) {
        self.0.push(Issue {
            loc: loc.to_vec(),
            msg: msg.into(),
            kind: "value_error",
        });
    }

    fn add_kind(&mut self, loc: &[String], msg: impl Into<String>, kind: &'static str) {
        self.0.push(Issue {
            loc: loc.to_vec(),
            msg: msg.into(),
            kind,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Builds a location from path segments: `loc!["components", 0, "text"]`.
macro_rules! loc {
    ($($seg:expr),* $(,)?) => { vec![$($seg.to_string()),*] };
}

fn join(base: &[String], more: &[&str]) -> Vec<String> {
    let mut l = base.to_vec();
    l.extend(more.iter().map(|s| s.to_string()));
    l
}

pub const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];
pub const HEADER_FORMATS: [&str; 5] = ["TEXT", "IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];
pub const BUTTON_TYPES: [&str; 9] = [
    "QUICK_REPLY",
    "URL",
    "PHONE_NUMBER",
    "COPY_CODE",
    "OTP",
    "FLOW",
    "MPM",
    "CATALOG",
    "VOICE_CALL",
];
pub const MAX_NAME: usize = 512;
pub const MAX_BODY: usize = 1024;
pub const MAX_HEADER_TEXT: usize = 60;
pub const MAX_FOOTER: usize = 60;
pub const MAX_BUTTONS: usize = 10;
pub const MAX_BUTTON_TEXT: usize = 25;

/// `^[a-z0-9_]+$`, at most 512 characters.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Meta's language codes: `en`, `en_US`, `pt_BR`, `zh_CN`, `fil`.
pub fn valid_language(code: &str) -> bool {
    let (lang, region) = code.split_once('_').unwrap_or((code, ""));
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|c| c.is_ascii_lowercase())
        && (region.is_empty()
            || ((2..=3).contains(&region.len()) && region.bytes().all(|c| c.is_ascii_uppercase())))
}

/// `en-US` (webhook style) → `en_US`.
pub fn normalize_language(code: &str) -> String {
    code.trim().replace('-', "_")
}

/// The placeholders of a text, in order of appearance: `"Hi {{1}}, {{ 2 }}"` → `["1", "2"]`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push(after[..end].trim().to_string());
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    out
}

fn is_param_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == b'_')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
}

/// Checks a text's placeholders for the template's parameter format and returns the distinct
/// variables (positional: "1".."n"; named: names in order of first appearance).
fn check_vars(text: &str, named: bool, at: &[String], issues: &mut Issues) -> Vec<String> {
    let vars = placeholders(text);
    let mut distinct: Vec<String> = Vec::new();
    for v in &vars {
        if !distinct.contains(v) {
            distinct.push(v.clone());
        }
    }
    if named {
        if let Some(bad) = distinct.iter().find(|v| !is_param_name(v)) {
            issues.add(
                at,
                format!("{{{{{bad}}}}} is not a named placeholder: with parameterFormat NAMED use lowercase names like {{{{first_name}}}}"),
            );
        }
    } else {
        if let Some(bad) = distinct
            .iter()
            .find(|v| v.is_empty() || !v.bytes().all(|c| c.is_ascii_digit()))
        {
            issues.add(at, format!("{{{{{bad}}}}} is a named placeholder: set parameterFormat to NAMED, or use {{{{1}}}}..{{{{n}}}}"));
            return distinct;
        }
        let numbers: BTreeSet<u64> = distinct.iter().filter_map(|v| v.parse().ok()).collect();
        let expected: BTreeSet<u64> = (1..=numbers.len() as u64).collect();
        if numbers != expected {
            issues.add(
                at,
                "placeholders must be numbered {{1}}..{{n}} without gaps",
            );
        }
    }
    distinct
}

fn str_array(v: &Value) -> Option<Vec<&str>> {
    v.as_array()?.iter().map(Value::as_str).collect()
}

/// Checks `example.<key>_named_params` (`[{param_name, example}]`) covers exactly `vars`.
fn check_named_examples(
    example: &Value,
    key: &str,
    vars: &[String],
    at: &[String],
    issues: &mut Issues,
) {
    let field = format!("{key}_named_params");
    let at = join(at, &["example", &field]);
    let Some(items) = example.get(&field).and_then(Value::as_array) else {
        issues.add_kind(
            &at,
            format!(
                "{} named placeholder(s) need example values in example.{field}",
                vars.len()
            ),
            "missing",
        );
        return;
    };
    let mut names = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let name = item["param_name"].as_str().unwrap_or_default();
        if item["example"].as_str().is_none_or(str::is_empty) {
            issues.add(
                &join(&at, &[&i.to_string(), "example"]),
                "must be a non-empty example value",
            );
        }
        names.insert(name.to_string());
    }
    let wanted: HashSet<String> = vars.iter().cloned().collect();
    if names != wanted || items.len() != vars.len() {
        let mut w: Vec<_> = wanted.into_iter().collect();
        w.sort();
        issues.add(
            &at,
            format!(
                "expected one example per placeholder ({}), got {}",
                w.join(", "),
                items.len()
            ),
        );
    }
}

/// What a template is made of, as submitted or stored.
pub struct TemplateSpec<'a> {
    pub category: &'a str,
    pub named: bool,
    pub components: &'a Value,
}

/// Checks the component structure: at most one HEADER (TEXT|IMAGE|VIDEO|DOCUMENT|LOCATION),
/// exactly one BODY (≤1024), optional FOOTER (≤60), BUTTONS (≤10, known types); contiguous
/// or named placeholders; example values matching the placeholders.
pub fn check_components(t: &TemplateSpec<'_>, issues: &mut Issues) {
    let base = loc!["components"];
    let Some(components) = t.components.as_array() else {
        issues.add_kind(&base, "must be an array of components", "type_error");
        return;
    };
    if components.is_empty() {
        issues.add(&base, "must contain at least a BODY component");
        return;
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for (i, c) in components.iter().enumerate() {
        let at = loc!["components", i];
        let Some(obj) = c.as_object() else {
            issues.add_kind(&at, "must be an object", "type_error");
            continue;
        };
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_uppercase();
        *counts.entry(kind.clone()).or_default() += 1;
        let text = obj.get("text").and_then(Value::as_str);
        let example = obj.get("example").cloned().unwrap_or(Value::Null);
        match kind.as_str() {
            "HEADER" => check_header(obj, t.named, &at, issues),
            "BODY" => {
                let Some(text) = text else {
                    if t.category != "AUTHENTICATION" {
                        issues.add_kind(&join(&at, &["text"]), "Field required", "missing");
                    }
                    continue;
                };
                if text.trim().is_empty() {
                    issues.add(&join(&at, &["text"]), "must not be empty");
                }
                if text.chars().count() > MAX_BODY {
                    issues.add(
                        &join(&at, &["text"]),
                        format!("must be at most {MAX_BODY} characters"),
                    );
                }
                let vars = check_vars(text, t.named, &join(&at, &["text"]), issues);
                if vars.is_empty() {
                    continue;
                }
                if t.named {
                    check_named_examples(&example, "body_text", &vars, &at, issues);
                } else {
                    let ex_at = join(&at, &["example", "body_text"]);
                    match example.get("body_text").and_then(|b| b.get(0)).and_then(str_array) {
                        None => issues.add_kind(
                            &ex_at,
                            format!("{} placeholder(s) need example values: example.body_text = [[...]]", vars.len()),
                            "missing",
                        ),
                        Some(values) if values.len() != vars.len() => issues.add(
                            &ex_at,
                            format!("expected {} example value(s), one per placeholder, got {}", vars.len(), values.len()),
                        ),
                        Some(values) if values.iter().any(|v| v.trim().is_empty()) => {
                            issues.add(&ex_at, "example values must not be empty")
                        }
                        Some(_) => {}
                    }
                }
            }
            "FOOTER" => match text {
                None => issues.add_kind(&join(&at, &["text"]), "Field required", "missing"),
                Some(text) => {
                    if text.chars().count() > MAX_FOOTER {
                        issues.add(
                            &join(&at, &["text"]),
                            format!("must be at most {MAX_FOOTER} characters"),
                        );
                    }
                    if !placeholders(text).is_empty() {
                        issues.add(&join(&at, &["text"]), "a footer cannot have placeholders");
                    }
                }
            },
            "BUTTONS" => check_buttons(obj, &at, issues),
            "" => issues.add_kind(&join(&at, &["type"]), "Field required", "missing"),
            other => issues.add_kind(
                &join(&at, &["type"]),
                format!("unknown component type {other}: expected HEADER, BODY, FOOTER or BUTTONS"),
                "enum",
            ),
        }
    }
    for (kind, max) in [("HEADER", 1), ("FOOTER", 1), ("BUTTONS", 1)] {
        if counts.get(kind).copied().unwrap_or(0) > max {
            issues.add(&base, format!("at most one {kind} component"));
        }
    }
    match counts.get("BODY").copied().unwrap_or(0) {
        1 => {}
        0 => issues.add_kind(&base, "exactly one BODY component is required", "missing"),
        _ => issues.add(&base, "exactly one BODY component is allowed"),
    }
}

fn check_header(
    obj: &serde_json::Map<String, Value>,
    named: bool,
    at: &[String],
    issues: &mut Issues,
) {
    let format = obj
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or("TEXT")
        .to_uppercase();
    if !HEADER_FORMATS.contains(&format.as_str()) {
        issues.add_kind(
            &join(at, &["format"]),
            "must be TEXT, IMAGE, VIDEO, DOCUMENT or LOCATION",
            "enum",
        );
        return;
    }
    let example = obj.get("example").cloned().unwrap_or(Value::Null);
    match format.as_str() {
        "TEXT" => {
            let Some(text) = obj.get("text").and_then(Value::as_str) else {
                issues.add_kind(
                    &join(at, &["text"]),
                    "Field required for a TEXT header",
                    "missing",
                );
                return;
            };
            if text.trim().is_empty() {
                issues.add(&join(at, &["text"]), "must not be empty");
            }
            if text.chars().count() > MAX_HEADER_TEXT {
                issues.add(
                    &join(at, &["text"]),
                    format!("must be at most {MAX_HEADER_TEXT} characters"),
                );
            }
            let vars = check_vars(text, named, &join(at, &["text"]), issues);
            if vars.len() > 1 {
                issues.add(
                    &join(at, &["text"]),
                    "a text header can have at most one placeholder",
                );
            } else if vars.len() == 1 {
                if named {
                    check_named_examples(&example, "header_text", &vars, at, issues);
                } else {
                    match example.get("header_text").and_then(str_array) {
                        Some(v) if v.len() == 1 && !v[0].trim().is_empty() => {}
                        Some(v) => issues.add(
                            &join(at, &["example", "header_text"]),
                            format!("expected 1 example value, got {}", v.len()),
                        ),
                        None => issues.add_kind(
                            &join(at, &["example", "header_text"]),
                            "the header placeholder needs an example value: example.header_text = [\"...\"]",
                            "missing",
                        ),
                    }
                }
            }
        }
        "LOCATION" => {}
        media => {
            let ok = example
                .get("header_handle")
                .and_then(str_array)
                .is_some_and(|h| !h.is_empty() && h.iter().all(|s| !s.trim().is_empty()));
            if !ok {
                issues.add_kind(
                    &join(at, &["example", "header_handle"]),
                    format!("a {media} header needs a sample file handle (POST /templates/upload-media)"),
                    "missing",
                );
            }
        }
    }
}

fn check_buttons(obj: &serde_json::Map<String, Value>, at: &[String], issues: &mut Issues) {
    let b_at = join(at, &["buttons"]);
    let Some(buttons) = obj.get("buttons").and_then(Value::as_array) else {
        issues.add_kind(
            &b_at,
            "Field required: an array of 1 to 10 buttons",
            "missing",
        );
        return;
    };
    if buttons.is_empty() || buttons.len() > MAX_BUTTONS {
        issues.add(&b_at, format!("must have 1 to {MAX_BUTTONS} buttons"));
    }
    let (mut urls, mut phones) = (0, 0);
    for (j, b) in buttons.iter().enumerate() {
        let at = join(&b_at, &[&j.to_string()]);
        let kind = b["type"].as_str().unwrap_or_default().to_uppercase();
        if !BUTTON_TYPES.contains(&kind.as_str()) {
            issues.add_kind(
                &join(&at, &["type"]),
                format!("must be one of {}", BUTTON_TYPES.join(", ")),
                "enum",
            );
            continue;
        }
        let text = b["text"].as_str();
        if matches!(kind.as_str(), "QUICK_REPLY" | "URL" | "PHONE_NUMBER") {
            match text {
                None => issues.add_kind(&join(&at, &["text"]), "Field required", "missing"),
                Some(t) if t.trim().is_empty() || t.chars().count() > MAX_BUTTON_TEXT => issues
                    .add(
                        &join(&at, &["text"]),
                        format!("must be 1 to {MAX_BUTTON_TEXT} characters"),
                    ),
                _ => {}
            }
        }
        match kind.as_str() {
            "URL" => {
                urls += 1;
                let url = b["url"].as_str().unwrap_or_default();
                if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() > 2000
                {
                    issues.add(
                        &join(&at, &["url"]),
                        "must be an http(s) URL of at most 2000 characters",
                    );
                }
                let vars = placeholders(url);
                if vars.len() > 1
                    || (vars.len() == 1 && (vars[0] != "1" || !url.trim_end().ends_with("}}")))
                {
                    issues.add(
                        &join(&at, &["url"]),
                        "a URL can have one placeholder, {{1}}, at its end",
                    );
                } else if vars.len() == 1 && b["example"].as_array().is_none_or(|e| e.is_empty()) {
                    issues.add_kind(
                        &join(&at, &["example"]),
                        "a dynamic URL needs an example: [\"https://...\"]",
                        "missing",
                    );
                }
            }
            "PHONE_NUMBER" => {
                phones += 1;
                let phone = b["phone_number"].as_str().unwrap_or_default();
                let digits = phone.chars().filter(char::is_ascii_digit).count();
                if !(5..=20).contains(&digits) {
                    issues.add(
                        &join(&at, &["phone_number"]),
                        "must be a phone number with country code",
                    );
                }
            }
            "COPY_CODE"
                if b["example"]
                    .as_str()
                    .is_none_or(|e| e.is_empty() || e.chars().count() > 15) =>
            {
                issues.add(
                    &join(&at, &["example"]),
                    "must be a sample code of 1 to 15 characters",
                );
            }
            "OTP" => {
                let t = b["otp_type"].as_str().unwrap_or_default().to_uppercase();
                if !["COPY_CODE", "ONE_TAP", "ZERO_TAP"].contains(&t.as_str()) {
                    issues.add_kind(
                        &join(&at, &["otp_type"]),
                        "must be COPY_CODE, ONE_TAP or ZERO_TAP",
                        "enum",
                    );
                }
            }
            _ => {}
        }
    }
    if urls > 2 {
        issues.add(&b_at, "at most 2 URL buttons");
    }
    if phones > 1 {
        issues.add(&b_at, "at most 1 PHONE_NUMBER button");
    }
}

/// Upper-cases component, format and button types, as Meta returns them.
pub fn normalize_components(components: &Value) -> Value {
    let mut c = components.clone();
    for comp in c.as_array_mut().into_iter().flatten() {
        for key in ["type", "format"] {
            if let Some(s) = comp.get(key).and_then(Value::as_str).map(str::to_uppercase) {
                comp[key] = Value::String(s);
            }
        }
        for b in comp
            .get_mut("buttons")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if let Some(s) = b.get("type").and_then(Value::as_str).map(str::to_uppercase) {
                b["type"] = Value::String(s);
            }
        }
    }
    c
}

/// The template's component of `kind` (HEADER, BODY, FOOTER, BUTTONS).
pub fn component<'a>(components: &'a Value, kind: &str) -> Option<&'a Value> {
    components.as_array()?.iter().find(|c| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case(kind))
    })
}

/// The header format of a template (`TEXT`, `IMAGE`, ...), if it has a header.
pub fn header_format(components: &Value) -> Option<String> {
    component(components, "HEADER").map(|h| h["format"].as_str().unwrap_or("TEXT").to_uppercase())
}

/// The handle in a media header's example, if any.
pub fn header_handle(components: &Value) -> Option<String> {
    component(components, "HEADER")?["example"]["header_handle"]
        .get(0)?
        .as_str()
        .map(str::to_string)
}

/// Renders the body text with the parameters sent (for the inbox preview).
pub fn render_body(components: &Value, send_components: &[Value]) -> Option<String> {
    let mut text = component(components, "BODY")?["text"].as_str()?.to_string();
    let body = send_components.iter().find(|c| {
        c["type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("body"))
    });
    for (i, p) in body
        .and_then(|b| b["parameters"].as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let value = p["text"]
            .as_str()
            .or(p["currency"]["fallback_value"].as_str())
            .or(p["date_time"]["fallback_value"].as_str())
            .unwrap_or_default();
        let key = p["parameter_name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| (i + 1).to_string());
        text = text.replace(&format!("{{{{{key}}}}}", key = key), value);
    }
    Some(text)
}

/// One component of a send (Cloud API shape) with where it came from in the request.
#[derive(Debug, Clone)]
pub struct SendComponent {
    pub value: Value,
    /// Location of the component (for "not expected" errors).
    pub loc: Vec<String>,
    /// Location of its parameter list (for count errors).
    pub params_at: Vec<String>,
    /// Location of each of its parameters.
    pub param_locs: Vec<Vec<String>>,
}

/// Checks the parameters of a send against the stored template: one component per header,
/// body and dynamic button that has placeholders, with exactly as many parameters; named
/// parameters for NAMED templates; media of the header's type. `missing_at(kind)` says where
/// to report a component that should have been sent.
pub fn check_send(
    template_components: &Value,
    named: bool,
    send: &[SendComponent],
    missing_at: impl Fn(&str) -> Vec<String>,
    issues: &mut Issues,
) {
    let find = |kind: &str| {
        send.iter()
            .filter(|c| {
                c.value["type"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case(kind))
            })
            .collect::<Vec<_>>()
    };
    for c in send {
        let t = c.value["type"].as_str().unwrap_or_default().to_lowercase();
        if !["header", "body", "button"].contains(&t.as_str()) {
            issues.add_kind(
                &join(&c.loc, &["type"]),
                "must be header, body or button",
                "enum",
            );
        }
        if !c.value["parameters"].is_array() && t != "button" {
            issues.add_kind(
                &c.params_at,
                "Field required: an array of parameters",
                "missing",
            );
        }
    }
    // Header.
    let headers = find("header");
    match header_format(template_components).as_deref() {
        None => {
            if let Some(h) = headers.first() {
                issues.add(&h.loc, "this template has no header");
            }
        }
        Some("TEXT") => {
            let text = component(template_components, "HEADER")
                .and_then(|h| h["text"].as_str())
                .unwrap_or_default();
            let vars = distinct(placeholders(text));
            check_text_params(
                headers.first().copied(),
                &vars,
                named,
                "header",
                &missing_at,
                issues,
            );
        }
        Some(format) => {
            let kind = format.to_lowercase();
            match headers.first() {
                None => issues.add_kind(
                    &missing_at("header"),
                    format!("this template's {format} header needs a {kind} parameter"),
                    "missing",
                ),
                Some(h) => {
                    let params = h.value["parameters"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if params.len() != 1 {
                        issues.add(
                            &h.params_at,
                            format!("expected 1 {kind} parameter, got {}", params.len()),
                        );
                    } else {
                        let p = &params[0];
                        let at = h
                            .param_locs
                            .first()
                            .cloned()
                            .unwrap_or_else(|| join(&h.params_at, &["0"]));
                        if p["type"].as_str() != Some(kind.as_str()) {
                            issues.add(
                                &join(&at, &["type"]),
                                format!(
                                    "the header is {format}: the parameter must be of type {kind}"
                                ),
                            );
                        } else if kind == "location" {
                            if !(p["location"]["latitude"].is_number()
                                && p["location"]["longitude"].is_number())
                            {
                                issues
                                    .add(&join(&at, &["location"]), "needs latitude and longitude");
                            }
                        } else {
                            let m = &p[kind.as_str()];
                            let link = m["link"]
                                .as_str()
                                .filter(|l| l.starts_with("https://") || l.starts_with("http://"));
                            let id = m["id"].as_str().filter(|i| !i.is_empty());
                            if link.is_some() == id.is_some() {
                                issues.add(
                                    &join(&at, &[kind.as_str()]),
                                    "give exactly one of link (http(s) URL) or id",
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    // Body.
    let text = component(template_components, "BODY")
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default();
    let vars = distinct(placeholders(text));
    let bodies = find("body");
    if bodies.len() > 1 {
        issues.add(&bodies[1].loc, "only one body component");
    }
    check_text_params(
        bodies.first().copied(),
        &vars,
        named,
        "body",
        &missing_at,
        issues,
    );
    // Buttons.
    let template_buttons: Vec<Value> = component(template_components, "BUTTONS")
        .and_then(|b| b["buttons"].as_array().cloned())
        .unwrap_or_default();
    let sent_buttons = find("button");
    let mut seen = HashSet::new();
    for b in &sent_buttons {
        let index = match &b.value["index"] {
            Value::String(s) => s.parse::<usize>().ok(),
            Value::Number(n) => n.as_u64().map(|n| n as usize),
            _ => None,
        };
        let Some(index) = index.filter(|i| *i < template_buttons.len()) else {
            issues.add(
                &join(&b.loc, &["index"]),
                format!(
                    "must be the index of one of the template's {} button(s)",
                    template_buttons.len()
                ),
            );
            continue;
        };
        if !seen.insert(index) {
            issues.add(&join(&b.loc, &["index"]), "each button index once");
        }
        let tb = &template_buttons[index];
        let ttype = tb["type"].as_str().unwrap_or_default().to_uppercase();
        let params = b.value["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let at0 = b
            .param_locs
            .first()
            .cloned()
            .unwrap_or_else(|| join(&b.params_at, &["0"]));
        match ttype.as_str() {
            "URL" => {
                let dynamic = !placeholders(tb["url"].as_str().unwrap_or_default()).is_empty();
                if !dynamic {
                    issues.add(&b.loc, "this URL button is static: it takes no parameter");
                } else if params.len() != 1 || params[0]["text"].as_str().is_none_or(str::is_empty)
                {
                    issues.add(
                        &at0,
                        "a dynamic URL button takes one text parameter (the URL suffix)",
                    );
                }
            }
            "QUICK_REPLY"
                if params.len() > 1
                    || params
                        .first()
                        .is_some_and(|p| p["payload"].as_str().is_none()) =>
            {
                issues.add(
                    &at0,
                    "a quick reply button takes at most one payload parameter",
                );
            }
            "COPY_CODE"
                if params.len() != 1
                    || params[0]["coupon_code"].as_str().is_none_or(str::is_empty) =>
            {
                issues.add(&at0, "a copy-code button takes one coupon_code parameter");
            }
            "OTP" if params.len() != 1 || params[0]["text"].as_str().is_none_or(str::is_empty) => {
                issues.add(&at0, "an OTP button takes one text parameter (the code)");
            }
            _ => {}
        }
    }
    for (i, tb) in template_buttons.iter().enumerate() {
        let ttype = tb["type"].as_str().unwrap_or_default().to_uppercase();
        let needs = match ttype.as_str() {
            "URL" => !placeholders(tb["url"].as_str().unwrap_or_default()).is_empty(),
            "OTP" | "COPY_CODE" => true,
            _ => false,
        };
        if needs && !seen.contains(&i) {
            issues.add_kind(
                &missing_at("buttons"),
                format!("button {i} ({ttype}) needs a parameter"),
                "missing",
            );
        }
    }
}

fn distinct(vars: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in vars {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn check_text_params(
    given: Option<&SendComponent>,
    vars: &[String],
    named: bool,
    what: &str,
    missing_at: &impl Fn(&str) -> Vec<String>,
    issues: &mut Issues,
) {
    let Some(c) = given else {
        if !vars.is_empty() {
            issues.add_kind(
                &missing_at(what),
                format!(
                    "the template's {what} has {} placeholder(s): send {} parameter(s)",
                    vars.len(),
                    vars.len()
                ),
                "missing",
            );
        }
        return;
    };
    let params = c.value["parameters"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if vars.is_empty() {
        if !params.is_empty() {
            issues.add(
                &c.params_at,
                format!("the template's {what} has no placeholders"),
            );
        }
        return;
    }
    if params.len() != vars.len() {
        issues.add(
            &c.params_at,
            format!(
                "the template's {what} has {} placeholder(s), got {} parameter(s)",
                vars.len(),
                params.len()
            ),
        );
    }
    let mut names = HashSet::new();
    for (j, p) in params.iter().enumerate() {
        let at = c
            .param_locs
            .get(j)
            .cloned()
            .unwrap_or_else(|| join(&c.params_at, &[&j.to_string()]));
        let ptype = p["type"].as_str().unwrap_or_default();
        let ok_type = if what == "header" {
            ptype == "text"
        } else {
            ["text", "currency", "date_time"].contains(&ptype)
        };
        if !ok_type {
            issues.add(
                &at,
                format!(
                    "a {what} parameter must be of type text{}",
                    if what == "body" {
                        ", currency or date_time"
                    } else {
                        ""
                    }
                ),
            );
            continue;
        }
        if ptype == "text" && p["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
            issues.add(&at, "the text must not be empty");
        }
        let pname = p["parameter_name"].as_str();
        match (named, pname) {
            (true, None) => issues.add(
                &at,
                "this template uses named parameters: parameter_name is required",
            ),
            (true, Some(n)) if !vars.iter().any(|v| v == n) => issues.add(
                &at,
                format!(
                    "the template has no placeholder {{{{{n}}}}} (it has {})",
                    vars.join(", ")
                ),
            ),
            (true, Some(n)) if !names.insert(n.to_string()) => {
                issues.add(&at, format!("{n} given twice"))
            }
            (false, Some(_)) => issues.add(
                &at,
                "this template uses positional parameters: remove parameter_name",
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(category: &str, named: bool, components: Value) -> Vec<Issue> {
        let mut i = Issues::default();
        check_components(
            &TemplateSpec {
                category,
                named,
                components: &components,
            },
            &mut i,
        );
        i.0
    }

    #[test]
    fn names_and_languages() {
        assert!(valid_name("order_update_2"));
        assert!(!valid_name("Order"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(&"a".repeat(513)));
        assert!(valid_language("en_US") && valid_language("en") && valid_language("pt_BR"));
        assert!(!valid_language("english") && !valid_language("en-US") && !valid_language("EN"));
    }

    #[test]
    fn placeholders_contiguous_and_examples() {
        let ok = json!([{"type": "BODY", "text": "Hi {{1}}, order {{2}}", "example": {"body_text": [["Ana", "42"]]}}]);
        assert!(check("UTILITY", false, ok).is_empty());
        let gap = json!([{"type": "BODY", "text": "Hi {{1}} {{3}}", "example": {"body_text": [["a", "b"]]}}]);
        assert_eq!(
            check("UTILITY", false, gap)[0].loc,
            loc!["components", 0, "text"]
        );
        let count =
            json!([{"type": "BODY", "text": "Hi {{1}} {{2}}", "example": {"body_text": [["a"]]}}]);
        assert_eq!(
            check("UTILITY", false, count)[0].loc,
            loc!["components", 0, "example", "body_text"]
        );
        let named = json!([{"type": "BODY", "text": "Hi {{first_name}}",
            "example": {"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]}}]);
        assert!(check("UTILITY", true, named.clone()).is_empty());
        assert!(!check("UTILITY", false, named).is_empty());
    }

    #[test]
    fn structure() {
        let two_bodies = json!([{"type": "BODY", "text": "a"}, {"type": "BODY", "text": "b"}]);
        assert!(!check("UTILITY", false, two_bodies).is_empty());
        let no_body = json!([{"type": "FOOTER", "text": "x"}]);
        assert!(!check("UTILITY", false, no_body).is_empty());
        let header = json!([{"type": "HEADER", "format": "GIF"}, {"type": "BODY", "text": "a"}]);
        assert_eq!(
            check("UTILITY", false, header)[0].loc,
            loc!["components", 0, "format"]
        );
        let buttons = json!([{"type": "BODY", "text": "a"}, {"type": "BUTTONS", "buttons": [{"type": "FAX", "text": "x"}]}]);
        assert_eq!(
            check("UTILITY", false, buttons)[0].loc,
            loc!["components", 1, "buttons", 0, "type"]
        );
    }

    #[test]
    fn send_params() {
        let t = json!([{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Hi {{1}} {{2}}"}]);
        let send = vec![SendComponent {
            value: json!({"type": "body", "parameters": [{"type": "text", "text": "a"}]}),
            loc: loc!["components", 0],
            params_at: loc!["components", 0, "parameters"],
            param_locs: vec![],
        }];
        let mut i = Issues::default();
        check_send(&t, false, &send, |k| loc![k], &mut i);
        let locs: Vec<_> = i.0.iter().map(|x| x.loc.clone()).collect();
        assert!(locs.contains(&loc!["header"]), "{locs:?}");
        assert!(
            locs.contains(&loc!["components", 0, "parameters"]),
            "{locs:?}"
        );
    }
}
