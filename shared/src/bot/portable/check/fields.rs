//! The walker's readers: each takes one field of an object, records what is wrong with it at
//! its path, and gives the value only when it is right.

use serde_json::Value;

use super::{child, Obj, Walker};
use crate::llm::Provider;

impl Walker {
    /// A problem for each field of `obj` not in `allowed`.
    pub(super) fn known(&mut self, obj: &Obj, loc: &[String], allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.add(child(loc, key), "unknown field", "value_error");
            }
        }
    }

    /// The value of `key` unless it is missing or `null` (a problem when `required`).
    pub(super) fn field<'a>(
        &mut self,
        obj: &'a Obj,
        loc: &[String],
        key: &str,
        required: bool,
    ) -> Option<&'a Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.add(child(loc, key), "Field required", "missing");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    pub(super) fn string(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        required: bool,
    ) -> Option<String> {
        let v = self.field(obj, loc, key, required)?;
        match v.as_str() {
            // PostgreSQL cannot store U+0000 in text.
            Some(s) if s.contains('\0') => {
                self.add(
                    child(loc, key),
                    "must not contain the NUL character (U+0000)",
                    "value_error",
                );
                None
            }
            Some(s) => Some(s.to_string()),
            None => {
                self.add(child(loc, key), "must be a string", "type_error");
                None
            }
        }
    }

    /// Trimmed, non-empty text of at most `max` characters.
    pub(super) fn text(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        required: bool,
        max: usize,
    ) -> Option<String> {
        let s = self.string(obj, loc, key, required)?;
        let t = s.trim();
        if t.is_empty() {
            self.add(child(loc, key), "must not be empty", "value_error");
            None
        } else if t.chars().count() > max {
            self.add(
                child(loc, key),
                format!("must be at most {max} characters"),
                "value_error",
            );
            None
        } else {
            Some(t.to_string())
        }
    }

    /// Text kept as written (prompts and messages), at most `max` characters.
    pub(super) fn long_text(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        max: usize,
    ) -> Option<String> {
        let s = self.string(obj, loc, key, false)?;
        if s.chars().count() > max {
            self.add(
                child(loc, key),
                format!("must be at most {max} characters"),
                "value_error",
            );
            return None;
        }
        Some(s)
    }

    pub(super) fn one_of(
        &mut self,
        loc: &[String],
        key: &str,
        value: &str,
        allowed: &[&str],
    ) -> bool {
        let ok = allowed.contains(&value);
        if !ok {
            self.add(
                child(loc, key),
                format!("must be one of {}", allowed.join(", ")),
                "enum",
            );
        }
        ok
    }

    pub(super) fn provider(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        required: bool,
    ) -> Option<String> {
        let p = self.string(obj, loc, key, required)?;
        let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
        self.one_of(loc, key, &p, &names).then_some(p)
    }

    pub(super) fn url(&mut self, obj: &Obj, loc: &[String], key: &str) -> Option<String> {
        let u = self.text(obj, loc, key, false, 500)?;
        let ok = reqwest::Url::parse(&u)
            .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
        if !ok {
            self.add(
                child(loc, key),
                "must be an http(s) URL, e.g. http://localhost:11434/v1",
                "value_error",
            );
            return None;
        }
        Some(u)
    }

    pub(super) fn number(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        min: f64,
        max: f64,
    ) -> Option<f64> {
        let v = self.field(obj, loc, key, false)?;
        match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.add(
                    child(loc, key),
                    format!("must be between {min} and {max}"),
                    "value_error",
                );
                None
            }
            None => {
                self.add(child(loc, key), "must be a number", "type_error");
                None
            }
        }
    }

    pub(super) fn integer(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let v = self.field(obj, loc, key, false)?;
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                self.add(
                    child(loc, key),
                    format!("must be between {min} and {max}"),
                    "value_error",
                );
                None
            }
            None => {
                self.add(child(loc, key), "must be a whole number", "type_error");
                None
            }
        }
    }

    pub(super) fn boolean(&mut self, obj: &Obj, loc: &[String], key: &str) -> Option<bool> {
        let v = self.field(obj, loc, key, false)?;
        if v.is_boolean() {
            v.as_bool()
        } else {
            self.add(child(loc, key), "must be true or false", "type_error");
            None
        }
    }

    /// A list of at most `max_items` texts of 1 to `max_len` characters.
    pub(super) fn list(
        &mut self,
        obj: &Obj,
        loc: &[String],
        key: &str,
        max_items: usize,
        max_len: usize,
    ) -> Option<Vec<String>> {
        let v = self.field(obj, loc, key, false)?;
        let Some(items) = v.as_array() else {
            self.add(child(loc, key), "must be a list of texts", "type_error");
            return None;
        };
        if items.len() > max_items {
            self.add(
                child(loc, key),
                format!("at most {max_items} items"),
                "value_error",
            );
        }
        let before = self.problems.len();
        let at = child(loc, key);
        let mut out = Vec::new();
        for (n, item) in items.iter().enumerate() {
            match item.as_str().map(str::trim) {
                Some(s) if !s.is_empty() && s.chars().count() <= max_len && !s.contains('\0') => {
                    out.push(s.to_string())
                }
                _ => self.add(
                    child(&at, n),
                    format!("must be a text of 1 to {max_len} characters"),
                    "value_error",
                ),
            }
        }
        (self.problems.len() == before).then_some(out)
    }
}
