//! Which existing routing rules a new or edited rule would collide with
//! (`GET /routing-rules/check-conflicts`): a rule sending to another team whose conditions
//! can match the same conversations (only the higher priority wins, silently), or a rule
//! with the same conditions to the same team (a duplicate). A preview for people writing
//! rules, so it flags conditions that plainly overlap (equal values, one text inside the
//! other, shared list items, the same pattern) rather than proving that no message matches
//! both.

use serde_json::Value;

use super::routing::Condition;

/// Lower-cased, trimmed; a phone's leading `+` dropped (as matching does).
fn norm(field: &str, s: &str) -> String {
    let s = s.trim().to_lowercase();
    if field == "phone" {
        s.trim_start_matches('+').to_string()
    } else {
        s
    }
}

fn values(c: &Condition) -> Vec<String> {
    match &c.value {
        Value::String(s) => vec![norm(&c.field, s)],
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| norm(&c.field, s))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether one conversation can plainly satisfy both conditions.
pub fn conditions_overlap(a: &Condition, b: &Condition) -> bool {
    if a.field != b.field {
        return false;
    }
    if a.operator == "regex" || b.operator == "regex" {
        return a.operator == b.operator && a.value == b.value;
    }
    let (va, vb) = (values(a), values(b));
    let loose = |op: &str| matches!(op, "contains" | "startsWith");
    va.iter().any(|x| {
        vb.iter().any(|y| {
            x == y
                || (loose(&a.operator) && y.contains(x.as_str()))
                || (loose(&b.operator) && x.contains(y.as_str()))
        })
    })
}

/// Pairs `(i, j)`: condition `i` of `a` overlaps condition `j` of `b`.
pub fn overlapping(a: &[Condition], b: &[Condition]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            if conditions_overlap(x, y) {
                pairs.push((i, j));
            }
        }
    }
    pairs
}

/// The same conditions, in any order (values compared as matching compares them).
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        let mut v = values(c);
        v.sort();
        (c.field.clone(), c.operator.clone(), v)
    };
    let mut ka: Vec<_> = a.iter().map(key).collect();
    let mut kb: Vec<_> = b.iter().map(key).collect();
    ka.sort();
    kb.sort();
    ka == kb
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn c(field: &str, operator: &str, value: Value) -> Condition {
        Condition {
            field: field.into(),
            operator: operator.into(),
            value,
        }
    }

    #[test]
    fn plain_overlaps_are_found() {
        assert!(conditions_overlap(
            &c("message", "contains", json!("Refund")),
            &c("message", "contains", json!("refund please"))
        ));
        assert!(conditions_overlap(
            &c("phone", "in", json!(["+34600", "1"])),
            &c("phone", "equals", json!("34600"))
        ));
        assert!(conditions_overlap(
            &c("phone", "startsWith", json!("34")),
            &c("phone", "startsWith", json!("+346"))
        ));
        assert!(!conditions_overlap(
            &c("message", "contains", json!("refund")),
            &c("contactCategory", "contains", json!("refund"))
        ));
        assert!(!conditions_overlap(
            &c("message", "equals", json!("hola")),
            &c("message", "equals", json!("hello"))
        ));
        assert!(!conditions_overlap(
            &c("message", "regex", json!("a+")),
            &c("message", "regex", json!("b+"))
        ));
        assert!(same_conditions(
            &[
                c("phone", "in", json!(["2", "1"])),
                c("message", "contains", json!("X"))
            ],
            &[
                c("message", "contains", json!("x")),
                c("phone", "in", json!(["1", "2"]))
            ]
        ));
    }
}
