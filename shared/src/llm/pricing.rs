//! What a call costs, from a snapshot of the providers' published price lists (USD
//! per million tokens). Prices go stale: every `llm_usage` row stores
//! [`PRICE_TABLE_VERSION`] next to its cost, so a later table never silently rewrites what
//! past calls were charged, and a change here bumps the version.
//!
//! Lookup: the exact model id, or a listed id followed by a date or version suffix
//! (`gpt-5.4-mini-2026-03-17`, `claude-sonnet-4-5-20250929`, `gemini-2.5-flash-001`); the
//! longest listed id wins. Anything else costs the provider's **default**: its flagship's
//! price (below), because an unknown id is usually a newer, bigger model and overestimating
//! keeps monthly budgets safe. LOCAL models cost nothing.
//!
//! Simplifications, documented: cached input is charged as plain input (`Usage` does not
//! separate it), and DeepSeek's off-peak discount is ignored (peak prices, an upper bound,
//! so a cost does not depend on the hour it is computed at).

use super::{Provider, Usage};

/// Date of the price-list snapshot the table comes from.
pub const PRICE_TABLE_VERSION: &str = "2026-12-07";

/// (provider, model id, USD per 1M input tokens, USD per 1M output tokens).
const TABLE: &[(Provider, &str, f64, f64)] = &[
    (Provider::OpenAi, "gpt-5.5", 5.00, 30.00),
    (Provider::OpenAi, "gpt-5.4-mini", 0.75, 4.50),
    (Provider::OpenAi, "gpt-5-nano", 0.05, 0.40),
    (Provider::OpenAi, "gpt-5-mini", 0.25, 2.00),
    (Provider::OpenAi, "gpt-5", 1.25, 10.00),
    (Provider::OpenAi, "gpt-5.1", 1.25, 10.00),
    (Provider::OpenAi, "gpt-4.1", 2.00, 8.00),
    (Provider::OpenAi, "gpt-4.1-mini", 0.40, 1.60),
    (Provider::OpenAi, "gpt-4.1-nano", 0.10, 0.40),
    (Provider::OpenAi, "gpt-4o", 2.50, 10.00),
    (Provider::OpenAi, "gpt-4o-mini", 0.15, 0.60),
    (Provider::OpenAi, "o3", 2.00, 8.00),
    (Provider::OpenAi, "o4-mini", 1.10, 4.40),
    (Provider::OpenAi, "text-embedding-ada-002", 0.10, 0.0),
    (Provider::OpenAi, "text-embedding-3-small", 0.02, 0.0),
    (Provider::OpenAi, "text-embedding-3-large", 0.13, 0.0),
    (Provider::Anthropic, "claude-haiku-4-5", 1.0, 5.0),
    (Provider::Anthropic, "claude-3-5-haiku-latest", 0.80, 4.0),
    (Provider::Anthropic, "claude-sonnet-4-5", 3.0, 15.0),
    (Provider::Anthropic, "claude-sonnet-4-6", 3.0, 15.0),
    (Provider::Anthropic, "claude-opus-4", 15.0, 75.0),
    (Provider::Anthropic, "claude-opus-4-1", 15.0, 75.0),
    (Provider::Anthropic, "claude-opus-4-5", 5.0, 25.0),
    (Provider::Anthropic, "claude-opus-4-6", 5.0, 25.0),
    (Provider::Anthropic, "claude-opus-4-7", 5.0, 25.0),
    (Provider::Anthropic, "claude-opus-5", 5.0, 25.0),
    (Provider::Anthropic, "claude-sonnet-5", 2.0, 10.0),
    (Provider::Google, "gemini-2.5-pro", 1.25, 10.00),
    (Provider::Google, "gemini-2.5-flash", 0.30, 2.50),
    (Provider::Google, "gemini-2.5-flash-lite", 0.10, 0.40),
    (Provider::Google, "gemini-embedding-001", 0.15, 0.0),
    (Provider::DeepSeek, "deepseek-flash", 0.30, 1.20),
    (Provider::DeepSeek, "deepseek-v4-flash", 0.30, 1.20),
    (Provider::DeepSeek, "deepseek-v4-pro", 1.32, 3.96),
    (Provider::DeepSeek, "deepseek-chat", 0.27, 1.10),
    (Provider::DeepSeek, "deepseek-reasoner", 0.55, 2.19),
    (Provider::Kimi, "kimi-k2.6", 0.95, 4.00),
    (Provider::Kimi, "kimi-k3", 3.00, 15.00),
    (Provider::Kimi, "kimi-k2-0905-preview", 0.60, 2.50),
    (Provider::Kimi, "moonshot-v1-8k", 0.20, 2.00),
];

/// The price of models the table does not list: the provider's flagship.
fn default_price(provider: Provider) -> (f64, f64) {
    match provider {
        Provider::OpenAi => (5.00, 30.00),  // gpt-5.5
        Provider::Anthropic => (5.0, 25.0), // Opus 4.5+ / Opus 5
        Provider::Google => (1.25, 10.00),  // gemini-2.5-pro
        Provider::DeepSeek => (1.32, 3.96), // deepseek-v4-pro, peak
        Provider::Kimi => (3.00, 15.00),    // kimi-k3
        Provider::Local => (0.0, 0.0),      // the customer's own hardware
    }
}

/// `-20250929`, `-2026-03-17`, `-001`: a dated or versioned id of a listed model.
fn is_version_suffix(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        [d] => digits(d) && (d.len() == 3 || d.len() == 8),
        [y, m, d] => digits(y) && y.len() == 4 && digits(m) && digits(d),
        _ => false,
    }
}

/// (input, output) USD per million tokens, and whether the model is listed.
pub fn price_per_million(provider: Provider, model: &str) -> ((f64, f64), bool) {
    let model = model.strip_prefix("models/").unwrap_or(model);
    TABLE
        .iter()
        .filter(|(p, id, _, _)| {
            *p == provider
                && model
                    .strip_prefix(id)
                    .is_some_and(|rest| rest.is_empty() || is_version_suffix(rest))
        })
        .max_by_key(|(_, id, _, _)| id.len())
        .map(|(_, _, i, o)| ((*i, *o), true))
        .unwrap_or((default_price(provider), false))
}

pub fn cost_usd(provider: Provider, model: &str, usage: &Usage) -> f64 {
    let ((input, output), _) = price_per_million(provider, model);
    (f64::from(usage.input_tokens) * input + f64::from(usage.output_tokens) * output) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(i: u32, o: u32) -> Usage {
        Usage {
            input_tokens: i,
            output_tokens: o,
        }
    }

    #[test]
    fn listed_dated_and_unknown_models() {
        let c = cost_usd(
            Provider::OpenAi,
            "gpt-5.4-mini",
            &usage(1_000_000, 1_000_000),
        );
        assert!((c - 5.25).abs() < 1e-9);
        assert_eq!(
            price_per_million(Provider::OpenAi, "gpt-5.4-mini-2026-03-17"),
            ((0.75, 4.50), true)
        );
        assert_eq!(
            price_per_million(Provider::Anthropic, "claude-sonnet-4-5-20250929"),
            ((3.0, 15.0), true)
        );
        assert_eq!(
            price_per_million(Provider::Anthropic, "claude-opus-4-5-20251101"),
            ((5.0, 25.0), true)
        );
        assert_eq!(
            price_per_million(Provider::Anthropic, "claude-opus-4-1"),
            ((15.0, 75.0), true)
        );
        assert_eq!(
            price_per_million(Provider::Google, "models/gemini-2.5-flash-lite"),
            ((0.10, 0.40), true)
        );
        // Not a date: a different model, priced as the flagship.
        assert_eq!(
            price_per_million(Provider::OpenAi, "gpt-5.5-pro"),
            ((5.0, 30.0), false)
        );
        assert_eq!(
            cost_usd(Provider::Local, "llama3.1", &usage(1000, 1000)),
            0.0
        );
    }
}
