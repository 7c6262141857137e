//! A campaign's audience as a client gives it: JSON recipients or a CSV upload, read into
//! [`InputRow`]s, then normalised, deduplicated and checked against the template's variables
//! ([`screen`]). Invalid rows are reported per row ([`Rejected`]), never a failed request.
//! Shared by every API dialect that creates campaigns.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use super::{normalize_phone, TemplateVars};

/// One input row before validation.
pub struct InputRow {
    pub row: i32,
    pub phone: String,
    pub name: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// Positional variables given as an array (its length, for the error message).
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// JSON: 1-based index in `recipients`; CSV: line number (the header is line 1).
    pub row: i32,
    pub phone: String,
    pub reason: String,
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `{{1}}` → `1`; trims.
fn var_key(k: &str) -> String {
    let k = k.trim();
    k.strip_prefix("{{")
        .and_then(|r| r.strip_suffix("}}"))
        .unwrap_or(k)
        .trim()
        .to_string()
}

pub fn json_rows(recipients: Vec<Value>) -> Vec<InputRow> {
    recipients
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let row = i as i32 + 1;
            let Value::Object(o) = r else {
                return InputRow {
                    row,
                    phone: value_text(&r).unwrap_or_default(),
                    name: None,
                    vars: BTreeMap::new(),
                    error: Some("a recipient must be an object with a phone".into()),
                };
            };
            let phone = o
                .get("phone")
                .or(o.get("phoneNumber"))
                .and_then(value_text)
                .unwrap_or_default();
            let name = o.get("name").and_then(Value::as_str).map(str::to_string);
            let mut vars = BTreeMap::new();
            let mut error = None;
            for (k, v) in &o {
                if matches!(k.as_str(), "phone" | "phoneNumber" | "name" | "variables") {
                    continue;
                }
                if let Some(t) = value_text(v) {
                    vars.insert(var_key(k), t);
                }
            }
            match o.get("variables") {
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        match value_text(v) {
                            Some(t) => {
                                vars.insert(var_key(k), t);
                            }
                            None => {
                                error = Some(format!("variable {k} must be a string or a number"))
                            }
                        }
                    }
                }
                Some(Value::Array(a)) => {
                    for (j, v) in a.iter().enumerate() {
                        match value_text(v) {
                            Some(t) => {
                                vars.insert((j + 1).to_string(), t);
                            }
                            None => {
                                error =
                                    Some(format!("variable {} must be a string or a number", j + 1))
                            }
                        }
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => error = Some("variables must be an object or an array".into()),
            }
            if phone.is_empty() && error.is_none() {
                error = Some("phone is required".into());
            }
            InputRow {
                row,
                phone,
                name,
                vars,
                error,
            }
        })
        .collect()
}

/// Splits CSV text into records (RFC 4180: quotes, doubled quotes, CRLF), each with the line
/// it starts on.
fn csv_records(text: &str, delimiter: char) -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut start_line = 1;
    let mut field = String::new();
    let mut record: Vec<String> = Vec::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(ch) = chars.next() {
        if quoted {
            match ch {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match ch {
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            c if c == delimiter => {
                record.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' => {}
            '\n' => {
                record.push(std::mem::take(&mut field));
                if any || record.iter().any(|f| !f.trim().is_empty()) {
                    out.push((start_line, std::mem::take(&mut record)));
                }
                record.clear();
                any = false;
                line += 1;
                start_line = line;
            }
            c => {
                field.push(c);
                any = true;
            }
        }
    }
    if any || !field.is_empty() {
        record.push(field);
        out.push((start_line, record));
    }
    out
}

const PHONE_COLUMNS: [&str; 8] = [
    "phone",
    "phone_number",
    "phonenumber",
    "number",
    "mobile",
    "wa_id",
    "whatsapp",
    "telefone",
];

pub fn csv_rows(bytes: &[u8]) -> Result<Vec<InputRow>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the CSV must be UTF-8 text".to_string())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.lines().next().unwrap_or_default();
    let delimiter = if !first.contains(',') && first.contains(';') {
        ';'
    } else {
        ','
    };
    let mut records = csv_records(text, delimiter).into_iter();
    let Some((_, header)) = records.next() else {
        return Err("the CSV is empty".to_string());
    };
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    let phone_col = header
        .iter()
        .position(|h| PHONE_COLUMNS.contains(&h.to_lowercase().as_str()))
        .ok_or_else(|| {
            "the CSV header needs a phone column (phone, phone_number, number, mobile or wa_id)"
                .to_string()
        })?;
    let name_col = header.iter().position(|h| h.eq_ignore_ascii_case("name"));
    Ok(records
        .map(|(line, fields)| {
            let get = |i: usize| {
                fields
                    .get(i)
                    .map(|f| f.trim().to_string())
                    .unwrap_or_default()
            };
            let mut vars = BTreeMap::new();
            for (i, h) in header.iter().enumerate() {
                if i == phone_col || Some(i) == name_col || h.is_empty() {
                    continue;
                }
                let v = get(i);
                if !v.is_empty() {
                    vars.insert(var_key(h), v);
                }
            }
            let phone = get(phone_col);
            let error = (fields.len() > header.len())
                .then(|| {
                    format!(
                        "{} fields where the header has {}",
                        fields.len(),
                        header.len()
                    )
                })
                .or_else(|| phone.is_empty().then(|| "phone is empty".to_string()));
            InputRow {
                row: line,
                phone,
                name: name_col.map(get).filter(|n| !n.is_empty()),
                vars,
                error,
            }
        })
        .collect())
}

/// A valid, deduplicated recipient.
pub struct Accepted {
    pub row: i32,
    pub phone: String,
    pub name: Option<String>,
    pub vars: BTreeMap<String, String>,
}

/// Normalises, deduplicates and checks the variables of every row.
pub fn screen(rows: Vec<InputRow>, vars: Option<&TemplateVars>) -> (Vec<Accepted>, Vec<Rejected>) {
    let mut seen: HashMap<String, i32> = HashMap::with_capacity(rows.len());
    let mut ok = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for r in rows {
        let reject = |reason: String| Rejected {
            row: r.row,
            phone: r.phone.clone(),
            reason,
        };
        if let Some(e) = &r.error {
            bad.push(reject(e.clone()));
            continue;
        }
        let phone = match normalize_phone(&r.phone) {
            Ok(p) => p,
            Err(e) => {
                bad.push(reject(e.to_string()));
                continue;
            }
        };
        if let Some(first) = seen.get(&phone) {
            bad.push(reject(format!("duplicate of row {first}")));
            continue;
        }
        let kept = match vars.map(|v| v.check(&r.vars)) {
            Some(Err(e)) => {
                bad.push(reject(e));
                continue;
            }
            Some(Ok(k)) => k,
            None => BTreeMap::new(),
        };
        seen.insert(phone.clone(), r.row);
        ok.push(Accepted {
            row: r.row,
            phone,
            name: r.name.map(|n| n.chars().take(200).collect()),
            vars: kept,
        });
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_and_quotes() {
        let recs = csv_records(
            "phone,name\n+1 415,\"A, \"\"B\"\"\"\n\n\"12\n34\",x\n5,y",
            ',',
        );
        assert_eq!(recs.len(), 4);
        assert_eq!(
            recs[1],
            (2, vec!["+1 415".to_string(), "A, \"B\"".to_string()])
        );
        assert_eq!(recs[2].0, 4);
        assert_eq!(recs[3], (6, vec!["5".to_string(), "y".to_string()]));
    }
}
