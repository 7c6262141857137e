//! The "model": deterministic answers, token counts and embeddings, the same for every
//! provider. Each wire format reduces its request to a [`Conversation`] and renders the
//! [`Reply`] in its own shape.

use serde_json::Value;

use super::{LlmSim, Provider, RuleReply};

/// `round(words × 1.3)`: close enough to BPE counts for English to make usage and limits
/// plausible, and trivially predictable in tests.
pub fn tokens(text: &str) -> u32 {
    (text.split_whitespace().count() as f64 * 1.3).round() as u32
}

/// What the answer depends on, whatever the wire format.
#[derive(Debug, Default)]
pub(crate) struct Conversation {
    /// Text of the last user turn that had text.
    pub last_user_text: String,
    /// When the request ends with tool results: their contents, in order.
    pub tool_results: Vec<String>,
    /// All prompt text (system, turns, tool calls and results), for the input count.
    pub input_text: String,
    /// Tools offered.
    pub tools: Vec<String>,
    pub max_tokens: Option<u32>,
}

impl Conversation {
    pub fn add_input(&mut self, text: &str) {
        if !text.is_empty() {
            self.input_text.push_str(text);
            self.input_text.push('\n');
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub text: String,
    /// (name, arguments)
    pub tool_call: Option<(String, Value)>,
    /// Cut at `max_tokens`.
    pub truncated: bool,
    pub input_tokens: u32,
    pub output_tokens: u32,
}

impl LlmSim {
    /// The answer: the first matching rule, else the echo.
    pub(crate) fn reply(&self, provider: Provider, conv: &Conversation) -> Reply {
        let (mut text, tool_call) = self
            .matching_rule(provider, conv)
            .unwrap_or_else(|| (default_text(conv), None));
        let mut output = tokens(&text);
        let mut truncated = false;
        if let Some((name, args)) = &tool_call {
            output += tokens(name) + tokens(&args.to_string()).max(1);
        } else if let Some(max) = conv.max_tokens {
            if output > max {
                // Keep as many words as fit in `max` tokens.
                let words = (f64::from(max) / 1.3).floor() as usize;
                text = text
                    .split_whitespace()
                    .take(words)
                    .collect::<Vec<_>>()
                    .join(" ");
                output = tokens(&text);
                truncated = true;
            }
        }
        Reply {
            text,
            tool_call,
            truncated,
            input_tokens: tokens(&conv.input_text),
            output_tokens: output,
        }
    }

    fn matching_rule(
        &self,
        provider: Provider,
        conv: &Conversation,
    ) -> Option<(String, Option<(String, Value)>)> {
        let last = conv.last_user_text.to_lowercase();
        let mut g = self.rules.lock();
        let rule = g.1.iter_mut().find(|r| {
            let s = &r.spec;
            s.provider.is_none_or(|p| p == provider)
                && s.times != Some(0)
                && last.contains(&s.contains.to_lowercase())
                && match &s.reply {
                    // A model calls only tools it was offered, and answers (rather than
                    // calling again) once it has the results.
                    RuleReply::Tool { name, .. } => {
                        conv.tool_results.is_empty() && conv.tools.contains(name)
                    }
                    RuleReply::Text { .. } => true,
                }
        })?;
        rule.hits += 1;
        if let Some(t) = rule.spec.times.as_mut() {
            *t -= 1;
        }
        let out = match &rule.spec.reply {
            RuleReply::Text { text } => (text.clone(), None),
            RuleReply::Tool {
                name,
                arguments,
                text,
            } => (
                text.clone().unwrap_or_default(),
                Some((
                    name.clone(),
                    if arguments.is_null() {
                        Value::Object(Default::default())
                    } else {
                        arguments.clone()
                    },
                )),
            ),
        };
        g.1.retain(|r| r.spec.times != Some(0));
        Some(out)
    }
}

fn default_text(conv: &Conversation) -> String {
    if conv.tool_results.is_empty() {
        format!("You said: {}", conv.last_user_text)
    } else {
        format!("Tool result: {}", conv.tool_results.join("; "))
    }
}

/// A hashed bag of words: lower-cased alphanumeric words, each adding ±1 to bucket
/// `fnv1a(word) % dims` (the sign from another bit of the hash, so unrelated texts come out
/// near-orthogonal), L2-normalised. Texts sharing words get close vectors.
pub fn embed_text(text: &str, dims: usize) -> Vec<f32> {
    let dims = dims.max(1);
    let mut v = vec![0f32; dims];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let h = fnv1a(&word.to_lowercase());
        let sign = if h >> 63 == 1 { -1.0 } else { 1.0 };
        v[(h % dims as u64) as usize] += sign;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn token_count() {
        assert_eq!(tokens("You said: hello there"), 5);
        assert_eq!(tokens(""), 0);
    }

    #[test]
    fn embeddings_are_close_for_shared_words() {
        let a = embed_text("Where is my order?", 256);
        let b = embed_text("my order is late", 256);
        let c = embed_text("Sunny weather in Paris", 256);
        assert!(cos(&a, &b) > 0.4, "{}", cos(&a, &b));
        assert!(cos(&a, &c).abs() < 0.3, "{}", cos(&a, &c));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
    }
}
