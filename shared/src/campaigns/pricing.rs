//! The per-message rate table (Meta's per-message pricing, in force since 2025-07-01): what a
//! delivered template message costs by category and the recipient's country calling code.
//!
//! Maintained by hand from Meta's published rate card, which changes only on quarter starts
//! (Jan 1 / Apr 1 / Jul 1 / Oct 1): bump [`RATE_TABLE_VERSION`] with every change, so every
//! estimate says which table priced it. Volume tiers (utility and authentication) are not
//! modelled: the list price is the upper bound. Utility templates delivered inside an open
//! customer-service window are free; service (non-template) messages are free.

use serde::Serialize;

/// The version of [`RATES`]; stored with every campaign estimate.
pub const RATE_TABLE_VERSION: &str = "2025-07-01.1";
pub const CURRENCY: &str = "USD";

/// USD per delivered message for one market.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Calling code without '+'.
    pub calling_code: &'static str,
    /// ISO 3166 country (or "OTHER").
    pub country: &'static str,
    pub marketing: f64,
    pub utility: f64,
    pub authentication: f64,
}

const fn r(
    calling_code: &'static str,
    country: &'static str,
    marketing: f64,
    utility: f64,
    authentication: f64,
) -> Rate {
    Rate {
        calling_code,
        country,
        marketing,
        utility,
        authentication,
    }
}

/// Markets by calling code (longest prefix wins). Codes shared by several countries (1: US,
/// Canada and the Caribbean; 7: Russia and Kazakhstan) use the main market's rate.
pub const RATES: &[Rate] = &[
    r("1", "US", 0.0250, 0.0034, 0.0135),
    r("7", "RU", 0.0802, 0.0400, 0.0400),
    r("20", "EG", 0.1073, 0.0052, 0.0052),
    r("27", "ZA", 0.0379, 0.0076, 0.0076),
    r("31", "NL", 0.1597, 0.0500, 0.0650),
    r("33", "FR", 0.0859, 0.0300, 0.0689),
    r("34", "ES", 0.0615, 0.0200, 0.0342),
    r("39", "IT", 0.0691, 0.0300, 0.0378),
    r("44", "GB", 0.0529, 0.0220, 0.0358),
    r("49", "DE", 0.1365, 0.0550, 0.0768),
    r("51", "PE", 0.0703, 0.0200, 0.0200),
    r("52", "MX", 0.0305, 0.0085, 0.0085),
    r("54", "AR", 0.0618, 0.0260, 0.0260),
    r("55", "BR", 0.0625, 0.0068, 0.0068),
    r("56", "CL", 0.0889, 0.0200, 0.0200),
    r("57", "CO", 0.0125, 0.0002, 0.0008),
    r("60", "MY", 0.0860, 0.0140, 0.0140),
    r("62", "ID", 0.0411, 0.0250, 0.0250),
    r("90", "TR", 0.0109, 0.0053, 0.0083),
    r("91", "IN", 0.0118, 0.0014, 0.0014),
    r("92", "PK", 0.0473, 0.0054, 0.0054),
    r("234", "NG", 0.0516, 0.0067, 0.0067),
    r("966", "SA", 0.0455, 0.0115, 0.0107),
    r("971", "AE", 0.0384, 0.0157, 0.0157),
    r("972", "IL", 0.0353, 0.0053, 0.0053),
];

/// Every market not in [`RATES`] ("rest of world").
pub const DEFAULT_RATE: Rate = r("", "OTHER", 0.0604, 0.0077, 0.0077);

/// The market of an E.164 number (digits only): the longest calling code that prefixes it.
pub fn market(phone: &str) -> &'static Rate {
    RATES
        .iter()
        .filter(|r| phone.starts_with(r.calling_code))
        .max_by_key(|r| r.calling_code.len())
        .unwrap_or(&DEFAULT_RATE)
}

/// USD for one delivered template of `category` to `phone`. `in_service_window`: the customer
/// wrote in the last 24 h (utility is then free).
pub fn unit_price(category: &str, phone: &str, in_service_window: bool) -> f64 {
    let rate = market(phone);
    match category.to_ascii_uppercase().as_str() {
        "MARKETING" => rate.marketing,
        "UTILITY" if in_service_window => 0.0,
        "UTILITY" => rate.utility,
        "AUTHENTICATION" => rate.authentication,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_and_default() {
        assert_eq!(market("14155550100").country, "US");
        assert_eq!(market("971501234567").country, "AE");
        assert_eq!(market("97312345678").country, "OTHER");
        assert_eq!(market("5511999998888").country, "BR");
        assert_eq!(unit_price("UTILITY", "14155550100", true), 0.0);
        assert!(unit_price("MARKETING", "14155550100", true) > 0.0);
    }
}
