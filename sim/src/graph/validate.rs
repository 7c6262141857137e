//! Validation of `POST /{number}/messages` bodies, type by type, with Meta's limits.
//!
//! The simulator is deliberately *stricter-or-equal* to Meta: anything it accepts, Meta
//! accepts. Codes: 100 for invalid/over-long parameters on the envelope and text, 131008
//! for a missing required parameter, 131009 for a value outside what the type allows,
//! 131053 for media problems, 132000/132001/132012/132015/132016 for templates.

use serde_json::{Map, Value};

use crate::errors::{GraphError, GraphResult};
use crate::state::{Number, Template};
use crate::Sim;

/// What a valid request turned out to be.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Message type.
    pub kind: &'static str,
    /// Template sends: (name, language, category).
    pub template: Option<(String, String, String)>,
}

impl Checked {
    /// Free-form messages need an open 24 h window.
    pub fn is_free_form(&self) -> bool {
        self.template.is_none()
    }
}

const TYPES: [&str; 11] = [
    "text",
    "image",
    "audio",
    "video",
    "document",
    "sticker",
    "template",
    "interactive",
    "location",
    "contacts",
    "reaction",
];

fn obj<'a>(v: &'a Value, path: &str) -> GraphResult<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| GraphError::invalid_param(format!("Param {path} must be a JSON object")))
}

fn opt_str<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> GraphResult<Option<&'a str>> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GraphError::invalid_param(format!(
            "Param {path}['{key}'] must be a string."
        ))),
    }
}

fn req_str<'a>(o: &'a Map<String, Value>, key: &str, path: &str) -> GraphResult<&'a str> {
    match opt_str(o, key, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(GraphError::missing(&format!("{path}['{key}']"))),
    }
}

fn max_len(s: &str, max: usize, path: &str, code: u32) -> GraphResult<()> {
    let n = s.chars().count();
    if n > max {
        return Err(GraphError::new(
            code,
            format!("Param {path} must be at most {max} characters long (got {n})."),
        ));
    }
    Ok(())
}

fn len_range(s: &str, min: usize, max: usize, what: &str) -> GraphResult<()> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(GraphError::invalid_value(format!(
            "{what} length invalid. Min length: {min}, Max length: {max}"
        )));
    }
    Ok(())
}

/// Validates a message body (not a read receipt). `number` scopes media ids and templates.
pub fn check_message(
    sim: &Sim,
    number: &Number,
    body: &Map<String, Value>,
) -> GraphResult<Checked> {
    if let Some(rt) = opt_str(body, "recipient_type", "recipient_type")? {
        if rt != "individual" && rt != "group" {
            return Err(GraphError::invalid_value(
                "recipient_type must be individual or group",
            ));
        }
    }
    if let Some(data) = opt_str(body, "biz_opaque_callback_data", "biz_opaque_callback_data")? {
        max_len(data, 512, "biz_opaque_callback_data", 100)?;
    }
    if let Some(ctx) = body.get("context") {
        req_str(obj(ctx, "context")?, "message_id", "context")?;
    }
    let kind = match body.get("type") {
        None | Some(Value::Null) => "text",
        Some(Value::String(t)) => TYPES.iter().copied().find(|k| k == t).ok_or_else(|| {
            GraphError::invalid_value(format!(
                "Unsupported message type `{t}`. Param type must be one of {{{}}}",
                TYPES.join(", ")
            ))
        })?,
        Some(_) => return Err(GraphError::invalid_param("Param type must be a string.")),
    };
    if kind == "contacts" {
        check_contacts(body)?;
        return Ok(Checked {
            kind,
            template: None,
        });
    }
    let Some(payload) = body.get(kind) else {
        return Err(GraphError::missing(kind));
    };
    let o = obj(payload, kind)?;
    let mut template = None;
    match kind {
        "text" => {
            let text = req_str(o, "body", "text")?;
            max_len(text, 4096, "text['body']", 100)?;
            if let Some(p) = o.get("preview_url") {
                if !p.is_boolean() {
                    return Err(GraphError::invalid_param(
                        "Param text['preview_url'] must be a boolean.",
                    ));
                }
            }
        }
        "image" | "audio" | "video" | "document" | "sticker" => check_media(sim, number, kind, o)?,
        "location" => {
            for key in ["latitude", "longitude"] {
                match o.get(key) {
                    Some(Value::Number(_)) => {}
                    Some(Value::String(s)) if s.parse::<f64>().is_ok() => {}
                    None => return Err(GraphError::missing(&format!("location['{key}']"))),
                    Some(_) => {
                        return Err(GraphError::invalid_value(format!(
                            "location['{key}'] must be a number"
                        )))
                    }
                }
            }
            opt_str(o, "name", "location")?;
            opt_str(o, "address", "location")?;
        }
        "reaction" => {
            req_str(o, "message_id", "reaction")?;
            match o.get("emoji") {
                Some(Value::String(e)) => {
                    if e.chars().count() > 10 {
                        return Err(GraphError::invalid_value(
                            "reaction['emoji'] must be a single emoji",
                        ));
                    }
                }
                _ => return Err(GraphError::missing("reaction['emoji']")),
            }
        }
        "interactive" => check_interactive(o)?,
        "template" => template = Some(check_template(sim, number, o)?),
        _ => {}
    }
    Ok(Checked { kind, template })
}

/// `contacts` is the one type whose payload is an array.
pub fn check_contacts(body: &Map<String, Value>) -> GraphResult<()> {
    let arr = match body.get("contacts") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => return Err(GraphError::missing("contacts")),
        Some(_) => {
            return Err(GraphError::invalid_param(
                "Param contacts must be an array.",
            ))
        }
    };
    for (i, c) in arr.iter().enumerate() {
        let c = obj(c, &format!("contacts[{i}]"))?;
        let name = c
            .get("name")
            .ok_or_else(|| GraphError::missing(&format!("contacts[{i}]['name']")))?;
        req_str(
            obj(name, "name")?,
            "formatted_name",
            &format!("contacts[{i}]['name']"),
        )?;
    }
    Ok(())
}

fn check_media(sim: &Sim, number: &Number, kind: &str, o: &Map<String, Value>) -> GraphResult<()> {
    let id = opt_str(o, "id", kind)?;
    let link = opt_str(o, "link", kind)?;
    match (id, link) {
        (Some(_), Some(_)) => {
            return Err(GraphError::invalid_param(format!(
                "Param {kind} must contain exactly one of id or link, not both."
            )))
        }
        (None, None) => {
            return Err(GraphError::missing(&format!(
                "{kind}['id'] or {kind}['link']"
            )))
        }
        (Some(id), None) => {
            let media = sim.inner.media.read().get(id).cloned();
            let Some(media) = media.filter(|m| m.number_id == number.id) else {
                return Err(GraphError::new(
                    131053,
                    format!(
                        "Media id {id} does not exist or does not belong to this phone number."
                    ),
                ));
            };
            if !crate::graph::media::mime_fits(kind, &media.mime_type) {
                return Err(GraphError::new(
                    131053,
                    format!("Media type {} cannot be sent as {kind}.", media.mime_type),
                ));
            }
        }
        (None, Some(link)) => {
            if !(link.starts_with("https://") || link.starts_with("http://")) || link.len() < 12 {
                return Err(GraphError::invalid_value(format!(
                    "{kind}['link'] must be an http(s) URL"
                )));
            }
        }
    }
    if let Some(caption) = opt_str(o, "caption", kind)? {
        if kind == "audio" || kind == "sticker" {
            return Err(GraphError::invalid_param(format!(
                "Param {kind}['caption'] is not a valid field."
            )));
        }
        max_len(caption, 1024, &format!("{kind}['caption']"), 100)?;
    }
    if o.contains_key("filename") && kind != "document" {
        return Err(GraphError::invalid_param(format!(
            "Param {kind}['filename'] is not a valid field."
        )));
    }
    opt_str(o, "filename", kind)?;
    Ok(())
}

fn check_interactive(o: &Map<String, Value>) -> GraphResult<()> {
    let itype = req_str(o, "type", "interactive")?;
    let body_text = |max: usize| -> GraphResult<()> {
        let b = o
            .get("body")
            .ok_or_else(|| GraphError::missing("interactive['body']"))?;
        let text = req_str(
            obj(b, "interactive['body']")?,
            "text",
            "interactive['body']",
        )?;
        max_len(text, max, "interactive['body']['text']", 131009)
    };
    let footer = || -> GraphResult<()> {
        if let Some(f) = o.get("footer") {
            let text = req_str(
                obj(f, "interactive['footer']")?,
                "text",
                "interactive['footer']",
            )?;
            max_len(text, 60, "interactive['footer']['text']", 131009)?;
        }
        Ok(())
    };
    let action = o
        .get("action")
        .ok_or_else(|| GraphError::missing("interactive['action']"))
        .and_then(|a| obj(a, "interactive['action']"))?;
    match itype {
        "button" => {
            body_text(1024)?;
            footer()?;
            if let Some(h) = o.get("header") {
                let h = obj(h, "interactive['header']")?;
                match req_str(h, "type", "interactive['header']")? {
                    "text" => max_len(
                        req_str(h, "text", "interactive['header']")?,
                        60,
                        "interactive['header']['text']",
                        131009,
                    )?,
                    m @ ("image" | "video" | "document") => {
                        let media = h.get(m).ok_or_else(|| {
                            GraphError::missing(&format!("interactive['header']['{m}']"))
                        })?;
                        let media = obj(media, m)?;
                        if media.get("id").is_none() == media.get("link").is_none() {
                            return Err(GraphError::invalid_param(format!(
                                "Param header {m} must contain exactly one of id or link."
                            )));
                        }
                    }
                    other => {
                        return Err(GraphError::invalid_value(format!(
                            "Header type `{other}` is not valid for button messages"
                        )))
                    }
                }
            }
            let buttons = match action.get("buttons") {
                Some(Value::Array(b)) => b,
                _ => return Err(GraphError::missing("interactive['action']['buttons']")),
            };
            if buttons.is_empty() || buttons.len() > 3 {
                return Err(GraphError::invalid_value(format!(
                    "Buttons count invalid. Min: 1, Max: 3 (got {})",
                    buttons.len()
                )));
            }
            let mut titles = Vec::new();
            let mut ids = Vec::new();
            for (i, b) in buttons.iter().enumerate() {
                let b = obj(b, &format!("buttons[{i}]"))?;
                if opt_str(b, "type", "button")? != Some("reply") {
                    return Err(GraphError::invalid_value("Button type must be `reply`"));
                }
                let reply = b
                    .get("reply")
                    .ok_or_else(|| GraphError::missing(&format!("buttons[{i}]['reply']")))?;
                let reply = obj(reply, "reply")?;
                let id = req_str(reply, "id", "reply")?;
                let title = req_str(reply, "title", "reply")?;
                len_range(id, 1, 256, "Button id")?;
                len_range(title, 1, 20, "Button title")?;
                if titles.contains(&title) {
                    return Err(GraphError::invalid_value("Button titles must be unique"));
                }
                if ids.contains(&id) {
                    return Err(GraphError::invalid_value("Button ids must be unique"));
                }
                titles.push(title);
                ids.push(id);
            }
        }
        "list" => {
            body_text(4096)?;
            footer()?;
            if let Some(h) = o.get("header") {
                let h = obj(h, "interactive['header']")?;
                if req_str(h, "type", "interactive['header']")? != "text" {
                    return Err(GraphError::invalid_value(
                        "List messages only support text headers",
                    ));
                }
                max_len(
                    req_str(h, "text", "interactive['header']")?,
                    60,
                    "interactive['header']['text']",
                    131009,
                )?;
            }
            let button = req_str(action, "button", "interactive['action']")?;
            len_range(button, 1, 20, "Button label")?;
            let sections = match action.get("sections") {
                Some(Value::Array(s)) => s,
                _ => return Err(GraphError::missing("interactive['action']['sections']")),
            };
            if sections.is_empty() || sections.len() > 10 {
                return Err(GraphError::invalid_value(
                    "Sections count invalid. Min: 1, Max: 10",
                ));
            }
            let mut total_rows = 0;
            let mut row_ids = Vec::new();
            for (i, s) in sections.iter().enumerate() {
                let s = obj(s, &format!("sections[{i}]"))?;
                match opt_str(s, "title", "section")? {
                    Some(t) => len_range(t, 1, 24, "Section title")?,
                    None if sections.len() > 1 => {
                        return Err(GraphError::missing(&format!("sections[{i}]['title']")))
                    }
                    None => {}
                }
                let rows = match s.get("rows") {
                    Some(Value::Array(r)) if !r.is_empty() => r,
                    _ => return Err(GraphError::missing(&format!("sections[{i}]['rows']"))),
                };
                for r in rows {
                    let r = obj(r, "row")?;
                    let id = req_str(r, "id", "row")?;
                    len_range(id, 1, 200, "Row id")?;
                    len_range(req_str(r, "title", "row")?, 1, 24, "Row title")?;
                    if let Some(d) = opt_str(r, "description", "row")? {
                        len_range(d, 0, 72, "Row description")?;
                    }
                    if row_ids.contains(&id) {
                        return Err(GraphError::invalid_value("Row ids must be unique"));
                    }
                    row_ids.push(id);
                    total_rows += 1;
                }
            }
            if total_rows > 10 {
                return Err(GraphError::invalid_value(format!(
                    "Total row count exceed max allowed count: 10 (got {total_rows})"
                )));
            }
        }
        "cta_url" => {
            body_text(1024)?;
            footer()?;
            let p = action
                .get("parameters")
                .ok_or_else(|| GraphError::missing("interactive['action']['parameters']"))?;
            let p = obj(p, "parameters")?;
            len_range(
                req_str(p, "display_text", "parameters")?,
                1,
                20,
                "Display text",
            )?;
            let url = req_str(p, "url", "parameters")?;
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(GraphError::invalid_value(
                    "parameters['url'] must be an http(s) URL",
                ));
            }
        }
        "flow"
        | "product"
        | "product_list"
        | "location_request_message"
        | "address_message"
        | "catalog_message"
        | "call_permission_request" => {}
        other => {
            return Err(GraphError::invalid_value(format!(
                "Interactive type `{other}` is not valid"
            )))
        }
    }
    Ok(())
}

/// Placeholders of a template text: `{{1}}`..`{{n}}` or `{{name}}`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_string();
        if !name.is_empty() && !out.contains(&name) {
            out.push(name);
        }
        rest = &after[end + 2..];
    }
    out
}

fn check_template(
    sim: &Sim,
    number: &Number,
    o: &Map<String, Value>,
) -> GraphResult<(String, String, String)> {
    let name = req_str(o, "name", "template")?;
    let lang = o
        .get("language")
        .ok_or_else(|| GraphError::missing("template['language']"))?;
    let code = req_str(
        obj(lang, "template['language']")?,
        "code",
        "template['language']",
    )?;
    let waba = sim
        .waba(&number.waba_id)
        .map_err(|_| GraphError::new(132001, ""))?;
    let tpl: Template = {
        let s = waba.state.lock();
        match s
            .templates
            .iter()
            .find(|t| t.name == name && t.language == code)
        {
            Some(t) => t.clone(),
            None => {
                return Err(GraphError::new(
                    132001,
                    format!("template name ({name}) does not exist in {code}"),
                ))
            }
        }
    };
    match tpl.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => {
            return Err(GraphError::new(
                132015,
                format!("Template {name} is paused due to low quality."),
            ))
        }
        "DISABLED" => {
            return Err(GraphError::new(
                132016,
                format!("Template {name} has been disabled due to low quality."),
            ))
        }
        other => {
            return Err(GraphError::new(
                132001,
                format!("template name ({name}) does not exist in {code} (status {other})"),
            ))
        }
    }
    let named = tpl.parameter_format == "NAMED";
    // Collect request parameters per component.
    let empty = Vec::new();
    let req_components = match o.get("components") {
        None | Some(Value::Null) => &empty,
        Some(Value::Array(c)) => c,
        Some(_) => {
            return Err(GraphError::invalid_param(
                "Param template['components'] must be an array.",
            ))
        }
    };
    let mut header: Option<&Vec<Value>> = None;
    let mut body: Option<&Vec<Value>> = None;
    let mut buttons: Vec<(String, String, &Vec<Value>)> = Vec::new();
    for c in req_components {
        let c = obj(c, "component")?;
        let ctype = req_str(c, "type", "component")?.to_ascii_lowercase();
        let params = match c.get("parameters") {
            Some(Value::Array(p)) => p,
            None => &empty,
            Some(_) => {
                return Err(GraphError::invalid_param(
                    "Param parameters must be an array.",
                ))
            }
        };
        match ctype.as_str() {
            "header" => header = Some(params),
            "body" => body = Some(params),
            "button" => {
                let sub = req_str(c, "sub_type", "button component")?.to_ascii_lowercase();
                let index = match c.get("index") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => return Err(GraphError::missing("button component['index']")),
                };
                buttons.push((sub, index, params));
            }
            "carousel" | "limited_time_offer" => {}
            other => {
                return Err(GraphError::invalid_value(format!(
                    "Component type `{other}` is not valid"
                )))
            }
        }
    }
    let tcomps = tpl.components.as_array().cloned().unwrap_or_default();
    let find = |t: &str| {
        tcomps.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|x| x.eq_ignore_ascii_case(t))
        })
    };
    let mismatch = |what: &str, expected: usize, got: usize| {
        GraphError::new(132000, format!("{what}: number of localizable_params ({got}) does not match the expected number of params ({expected})"))
    };
    // Header.
    let theader = find("HEADER");
    let hformat = theader
        .and_then(|h| h["format"].as_str())
        .unwrap_or("TEXT")
        .to_ascii_uppercase();
    match (theader, hformat.as_str()) {
        (Some(h), "TEXT") => {
            let expected = placeholders(h["text"].as_str().unwrap_or(""));
            check_text_params("header", &expected, header.unwrap_or(&empty), named)?;
        }
        (Some(_), fmt @ ("IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION")) => {
            let params = header.unwrap_or(&empty);
            if params.len() != 1 {
                return Err(mismatch("header", 1, params.len()));
            }
            let want = fmt.to_ascii_lowercase();
            if params[0]["type"].as_str() != Some(want.as_str()) {
                return Err(GraphError::new(
                    132012,
                    format!(
                        "header: Format mismatch, expected {fmt}, received {}",
                        params[0]["type"]
                    ),
                ));
            }
            if want != "location" {
                let m = &params[0][want.as_str()];
                if m.get("id").is_none() == m.get("link").is_none() {
                    return Err(GraphError::new(
                        132012,
                        format!("header: {want} must contain exactly one of id or link"),
                    ));
                }
            }
        }
        (None, _) => {
            if let Some(p) = header {
                if !p.is_empty() {
                    return Err(mismatch("header", 0, p.len()));
                }
            }
        }
        _ => {}
    }
    // Body.
    let expected = find("BODY")
        .map(|b| placeholders(b["text"].as_str().unwrap_or("")))
        .unwrap_or_default();
    check_text_params("body", &expected, body.unwrap_or(&empty), named)?;
    // Buttons: URL buttons with a placeholder need exactly one text parameter.
    let tbuttons = find("BUTTONS")
        .and_then(|b| b["buttons"].as_array().cloned())
        .unwrap_or_default();
    for (i, b) in tbuttons.iter().enumerate() {
        let btype = b["type"].as_str().unwrap_or("").to_ascii_uppercase();
        let needs = match btype.as_str() {
            "URL" => !placeholders(b["url"].as_str().unwrap_or("")).is_empty(),
            "OTP" => b["otp_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("COPY_CODE")),
            _ => false,
        };
        let given = buttons.iter().find(|(_, idx, _)| idx == &i.to_string());
        if needs {
            match given {
                Some((_, _, p)) if p.len() == 1 => {}
                Some((_, _, p)) => {
                    return Err(mismatch(&format!("button at index {i}"), 1, p.len()))
                }
                None => return Err(mismatch(&format!("button at index {i}"), 1, 0)),
            }
        }
    }
    for (sub, idx, _) in &buttons {
        let i: usize = idx
            .parse()
            .map_err(|_| GraphError::invalid_value("button index must be a number"))?;
        let Some(b) = tbuttons.get(i) else {
            return Err(GraphError::new(
                132000,
                format!("button at index {i} does not exist in the template"),
            ));
        };
        let btype = b["type"].as_str().unwrap_or("").to_ascii_lowercase();
        let ok = match sub.as_str() {
            "url" => btype == "url" || btype == "otp",
            "quick_reply" => btype == "quick_reply",
            "copy_code" => btype == "copy_code" || btype == "otp",
            _ => true,
        };
        if !ok {
            return Err(GraphError::new(132012, format!("button at index {i}: sub_type {sub} does not match template button type {btype}")));
        }
    }
    Ok((tpl.name, tpl.language, tpl.category))
}

fn check_text_params(
    what: &str,
    expected: &[String],
    given: &[Value],
    named: bool,
) -> GraphResult<()> {
    if given.len() != expected.len() {
        return Err(GraphError::new(
            132000,
            format!("{what}: number of localizable_params ({}) does not match the expected number of params ({})", given.len(), expected.len()),
        ));
    }
    for (i, p) in given.iter().enumerate() {
        let p = obj(p, "parameter")?;
        let ptype = req_str(p, "type", "parameter")?;
        match ptype {
            "text" => {
                let text = p.get("text").and_then(Value::as_str).unwrap_or("");
                if text.trim().is_empty() {
                    return Err(GraphError::missing(&format!(
                        "{what}['parameters'][{i}]['text']"
                    )));
                }
                if what == "header" {
                    max_len(text, 60, "header text parameter", 132005)?;
                }
            }
            "currency" => {
                let c = p
                    .get("currency")
                    .ok_or_else(|| GraphError::missing("currency"))?;
                let c = obj(c, "currency")?;
                req_str(c, "fallback_value", "currency")?;
                req_str(c, "code", "currency")?;
                if !c.get("amount_1000").is_some_and(Value::is_i64) {
                    return Err(GraphError::missing("currency['amount_1000']"));
                }
            }
            "date_time" => {
                let d = p
                    .get("date_time")
                    .ok_or_else(|| GraphError::missing("date_time"))?;
                req_str(obj(d, "date_time")?, "fallback_value", "date_time")?;
            }
            other => {
                return Err(GraphError::new(
                    132012,
                    format!("{what}: parameter type `{other}` is not allowed here"),
                ));
            }
        }
        if named {
            let pname = p
                .get("parameter_name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !expected.iter().any(|e| e == pname) {
                return Err(GraphError::new(
                    132000,
                    format!(
                        "{what}: parameter_name `{pname}` is not one of the template's parameters"
                    ),
                ));
            }
        }
    }
    Ok(())
}
