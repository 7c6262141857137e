//! A document's text cut into chunks for retrieval (ARCHITECTURE.md, "Knowledge base").
//!
//! Cuts fall on semantic boundaries. A heading opens a section, and a section starts a new
//! chunk. Inside a section, whole paragraphs are packed up to the token budget. A paragraph
//! larger than the budget is cut between sentences, a sentence larger than the budget between
//! lines, and a line larger than the budget between words. Consecutive chunks of one section
//! overlap by whole sentences from the end of the previous chunk, about `overlap` tokens (less,
//! or none, where more would cut a paragraph that otherwise starts the next chunk whole).
//! Every chunk of a section starts with the section's heading line, so a search for the
//! heading's words finds it.
//!
//! Linear in the text: units are found in one pass, and packing uses prefix sums of their
//! token counts.

use std::borrow::Cow;

use super::extract::Extracted;
use crate::llm::estimate_tokens;

/// A piece of a document's text, ready to embed and store.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// 0-based order in the document.
    pub position: i32,
    /// The text: the section heading's line (if any), then the body.
    pub text: String,
    pub heading: Option<String>,
    /// The 1-based PDF page the chunk starts on.
    pub page: Option<i32>,
    /// Character offsets into [`Extracted::text`]: the body's range, which begins at the
    /// heading line for a section's first chunk.
    pub start_char: i64,
    pub end_char: i64,
    /// `estimate_tokens(text)`.
    pub tokens: i32,
}

pub const DEFAULT_BUDGET_TOKENS: usize = 350;
pub const DEFAULT_OVERLAP_TOKENS: usize = 50;

/// Tokens counted for the gap between two units (a space, a newline or a blank line: at most
/// two characters), so that summed estimates never fall below the estimate of the joined text.
const GAP_TOKENS: usize = 1;

/// Cuts `doc` into chunks of at most `budget_tokens` tokens (a single word longer than that
/// stands alone), consecutive chunks of one section overlapping by about `overlap_tokens`.
/// Empty input gives no chunks.
pub fn chunk(doc: &Extracted, budget_tokens: usize, overlap_tokens: usize) -> Vec<Chunk> {
    let text = doc.text();
    let budget = budget_tokens.max(1);
    let overlap = overlap_tokens.min(budget / 2);
    let mut chars = CharPos {
        text: &text,
        byte: 0,
        chars: 0,
    };
    let mut out = Vec::new();
    let mut section: Option<Section> = None;
    let mut pos = 0usize;
    let blocks = doc
        .blocks
        .iter()
        .filter(|b| b.heading.is_some() || !b.text.is_empty());
    for (i, block) in blocks.enumerate() {
        if i > 0 {
            pos += "\n\n".len();
        }
        if let Some(heading) = &block.heading {
            if let Some(done) = section.take() {
                done.pack(&text, overlap, &mut out);
            }
            let start = chars.at(pos);
            pos += heading.len();
            let end = chars.at(pos);
            section = Some(Section::new(Some(heading), budget, start, end, block.page));
            if !block.text.is_empty() {
                pos += 1;
            }
        }
        let section = section.get_or_insert_with(|| Section::new(None, budget, 0, 0, block.page));
        debug_assert_eq!(
            text.get(pos..pos + block.text.len()),
            Some(block.text.as_str())
        );
        let mut offset = pos;
        for paragraph in block.text.split("\n\n") {
            section.add_paragraph(
                &text,
                offset,
                offset + paragraph.len(),
                block.page,
                &mut chars,
            );
            offset += paragraph.len() + 2;
        }
        pos += block.text.len();
    }
    if let Some(done) = section {
        done.pack(&text, overlap, &mut out);
    }
    out
}

/// Byte offsets to character offsets, for offsets asked in increasing order.
struct CharPos<'a> {
    text: &'a str,
    byte: usize,
    chars: usize,
}

impl CharPos<'_> {
    fn at(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            return self.text[..byte].chars().count();
        }
        self.chars += self.text[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

/// Text never cut inside: a sentence, or a line or a run of words of a sentence too large.
struct Unit {
    /// Byte range in the document's text.
    start: usize,
    end: usize,
    /// Character range in the document's text.
    cstart: usize,
    cend: usize,
    tokens: usize,
    page: Option<u32>,
}

/// A heading and the body under it, as units grouped in paragraphs.
struct Section {
    /// The heading as chunks carry it (cut short if very long).
    heading: Option<String>,
    heading_cstart: usize,
    heading_cend: usize,
    page: Option<u32>,
    /// Most tokens of body a chunk of this section holds.
    body_budget: usize,
    units: Vec<Unit>,
    /// Unit index ranges.
    paragraphs: Vec<(usize, usize)>,
}

impl Section {
    fn new(
        heading: Option<&str>,
        budget: usize,
        cstart: usize,
        cend: usize,
        page: Option<u32>,
    ) -> Self {
        // A heading takes at most about a quarter of the budget in every chunk.
        let heading = heading.map(|h| shorten(h, budget.max(16)).into_owned());
        let heading_tokens = heading
            .as_deref()
            .map_or(0, |h| estimate_tokens(h) as usize + GAP_TOKENS);
        Section {
            heading,
            heading_cstart: cstart,
            heading_cend: cend,
            page,
            body_budget: budget.saturating_sub(heading_tokens).max(1),
            units: Vec::new(),
            paragraphs: Vec::new(),
        }
    }

    /// Splits the paragraph at bytes `start..end` of `text` into units of at most the body
    /// budget.
    fn add_paragraph(
        &mut self,
        text: &str,
        start: usize,
        end: usize,
        page: Option<u32>,
        chars: &mut CharPos<'_>,
    ) {
        let max = self.body_budget;
        let first = self.units.len();
        let units = &mut self.units;
        let mut push = |s: usize, e: usize| {
            let cstart = chars.at(s);
            let cend = chars.at(e);
            units.push(Unit {
                start: s,
                end: e,
                cstart,
                cend,
                tokens: estimate_tokens(&text[s..e]) as usize,
                page,
            });
        };
        for (s, e) in sentences(text, start, end) {
            if fits(&text[s..e], max) {
                push(s, e);
                continue;
            }
            for (ls, le) in lines(text, s, e) {
                if fits(&text[ls..le], max) {
                    push(ls, le);
                } else {
                    words(text, ls, le, max, &mut push);
                }
            }
        }
        if self.units.len() > first {
            self.paragraphs.push((first, self.units.len()));
        }
    }

    /// Packs the units into chunks, appended to `out`.
    fn pack(self, text: &str, overlap: usize, out: &mut Vec<Chunk>) {
        if self.units.is_empty() {
            // A heading with nothing under it is still findable.
            if let Some(heading) = &self.heading {
                push_chunk(
                    out,
                    heading.clone(),
                    Some(heading.clone()),
                    self.page,
                    self.heading_cstart,
                    self.heading_cend,
                );
            }
            return;
        }
        let mut prefix = Vec::with_capacity(self.units.len() + 1);
        prefix.push(0usize);
        for unit in &self.units {
            prefix.push(prefix[prefix.len() - 1] + unit.tokens);
        }
        // Tokens of the units a..b joined.
        let cost =
            |a: usize, b: usize| prefix[b] - prefix[a] + (b - a).saturating_sub(1) * GAP_TOKENS;
        let body = self.body_budget;
        // Where the chunk after a..b starts: the last whole units of a..b that total at most
        // `overlap` and leave room for the units up to `next_end`, never a itself.
        let overlap_start = |a: usize, b: usize, next_end: usize| {
            let mut s = b;
            while s > a + 1 && cost(s - 1, b) <= overlap && cost(s - 1, next_end) <= body {
                s -= 1;
            }
            s
        };
        let mut first = true;
        let mut emit = |a: usize, b: usize| {
            self.emit(text, a, b, first, out);
            first = false;
        };
        let (mut a, mut b) = (0usize, 0usize);
        for &(ps, pe) in &self.paragraphs {
            if b > a && cost(a, pe) <= body {
                b = pe;
                continue;
            }
            if cost(ps, pe) <= body {
                if b > a {
                    emit(a, b);
                    a = overlap_start(a, b, pe);
                } else {
                    a = ps;
                }
                b = pe;
                continue;
            }
            // Larger than a chunk: cut between its units. A chunk already half full is
            // closed first, so the paragraph starts a chunk of its own.
            if b > a && cost(a, b) * 2 > body {
                emit(a, b);
                a = overlap_start(a, b, ps + 1);
            }
            if b == a {
                (a, b) = (ps, ps);
            }
            for u in ps..pe {
                if b > a && cost(a, u + 1) > body {
                    emit(a, b);
                    a = overlap_start(a, b, u + 1);
                }
                b = u + 1;
            }
        }
        if b > a {
            emit(a, b);
        }
    }

    /// Appends the chunk of units a..b.
    fn emit(&self, text: &str, a: usize, b: usize, first: bool, out: &mut Vec<Chunk>) {
        let (head, tail) = (&self.units[a], &self.units[b - 1]);
        let body = &text[head.start..tail.end];
        let (chunk_text, start) = match &self.heading {
            Some(h) => {
                let start = if first {
                    self.heading_cstart
                } else {
                    head.cstart
                };
                (format!("{h}\n{body}"), start)
            }
            None => (body.to_string(), head.cstart),
        };
        push_chunk(
            out,
            chunk_text,
            self.heading.clone(),
            head.page,
            start,
            tail.cend,
        );
    }
}

fn push_chunk(
    out: &mut Vec<Chunk>,
    text: String,
    heading: Option<String>,
    page: Option<u32>,
    start: usize,
    end: usize,
) {
    let tokens = estimate_tokens(&text);
    out.push(Chunk {
        position: i32::try_from(out.len()).unwrap_or(i32::MAX),
        text,
        heading,
        page: page.map(|p| i32::try_from(p).unwrap_or(i32::MAX)),
        start_char: start as i64,
        end_char: end as i64,
        tokens: i32::try_from(tokens).unwrap_or(i32::MAX),
    });
}

/// Whether `s` fits in `max` tokens.
fn fits(s: &str, max: usize) -> bool {
    // Cheap bound first: a token is at least one byte's worth of estimate.
    s.len() <= max || estimate_tokens(s) as usize <= max
}

/// `s` cut to at most `max` characters (at a word boundary when there is one), with "…".
fn shorten(s: &str, max: usize) -> Cow<'_, str> {
    let Some((cut, _)) = s.char_indices().nth(max) else {
        return Cow::Borrowed(s);
    };
    let head = &s[..cut];
    let head = match head.rfind(' ') {
        Some(space) if space > cut / 2 => &head[..space],
        _ => head,
    };
    Cow::Owned(format!("{}…", head.trim_end()))
}

/// Sentences of `text[start..end]` as trimmed byte ranges: a sentence ends after `.`, `!` or
/// `?` followed by whitespace, or after `。`, `！` or `？`.
fn sentences(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let s = &text[start..end];
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        let from = *open.get_or_insert(i);
        let ends = match c {
            '.' | '!' | '?' => it.peek().is_some_and(|&(_, n)| n.is_whitespace()),
            '。' | '！' | '？' => true,
            _ => false,
        };
        if ends {
            out.push((start + from, start + i + c.len_utf8()));
            open = None;
        }
    }
    if let Some(from) = open {
        out.push((start + from, start + s.trim_end().len()));
    }
    out
}

/// Non-blank lines of `text[start..end]` as trimmed byte ranges.
fn lines(text: &str, start: usize, end: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = start;
    for line in text[start..end].split('\n') {
        let lead = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if !trimmed.is_empty() {
            out.push((at + lead, at + lead + trimmed.len()));
        }
        at += line.len() + 1;
    }
    out
}

/// Runs of whole words of `text[start..end]` of at most `max` tokens each (a longer word
/// alone), handed to `push` as byte ranges.
fn words(text: &str, start: usize, end: usize, max: usize, push: &mut impl FnMut(usize, usize)) {
    let mut group: Option<(usize, usize, usize)> = None;
    let mut word_start: Option<usize> = None;
    let s = &text[start..end];
    let mut add = |ws: usize, we: usize, group: &mut Option<(usize, usize, usize)>| {
        let t = estimate_tokens(&text[ws..we]) as usize;
        *group = match *group {
            Some((gs, _, gt)) if gt + GAP_TOKENS + t <= max => Some((gs, we, gt + GAP_TOKENS + t)),
            Some((gs, ge, _)) => {
                push(gs, ge);
                Some((ws, we, t))
            }
            None => Some((ws, we, t)),
        };
    };
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), word_start) {
            (true, Some(ws)) => {
                add(start + ws, start + i, &mut group);
                word_start = None;
            }
            (false, None) => word_start = Some(i),
            _ => {}
        }
    }
    if let Some(ws) = word_start {
        add(start + ws, end, &mut group);
    }
    if let Some((gs, ge, _)) = group {
        push(gs, ge);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::extract::{Block, Extracted};
    use std::time::Instant;

    fn doc(blocks: Vec<Block>) -> Extracted {
        let mut d = Extracted {
            blocks,
            pages: None,
            chars: 0,
        };
        d.chars = d.text().chars().count();
        d
    }

    fn block(heading: Option<&str>, text: &str) -> Block {
        Block {
            heading: heading.map(str::to_string),
            text: text.to_string(),
            page: None,
        }
    }

    /// `n` numbered sentences of about 60 characters (15 tokens).
    fn sentences_text(prefix: &str, n: usize) -> String {
        (0..n)
            .map(|i| format!("{prefix} sentence number {i:03} says something useful here."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn check_invariants(d: &Extracted, chunks: &[Chunk], budget: usize) {
        let text: Vec<char> = d.text().chars().collect();
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.position, i as i32);
            assert_eq!(c.tokens, estimate_tokens(&c.text) as i32);
            assert!(c.start_char < c.end_char, "{c:?}");
            assert!(c.end_char as usize <= text.len());
            let unsplittable = !c
                .text
                .split_once('\n')
                .map_or(c.text.as_str(), |(_, b)| b)
                .contains(' ');
            assert!(
                c.tokens as usize <= budget || unsplittable,
                "chunk {i} has {} tokens: {:?}",
                c.tokens,
                c.text
            );
            // The body is the document's text at the chunk's offsets.
            let span: String = text[c.start_char as usize..c.end_char as usize]
                .iter()
                .collect();
            let body = match &c.heading {
                Some(h) if c.text == *h => "",
                Some(h) => c.text.strip_prefix(&format!("{h}\n")).unwrap(),
                None => c.text.as_str(),
            };
            assert!(span.ends_with(body), "span {span:?} body {body:?}");
            if i > 0 {
                let prev = &chunks[i - 1];
                assert!(c.start_char > prev.start_char);
                assert!(c.end_char > prev.end_char);
            }
        }
    }

    #[test]
    fn empty_input_gives_no_chunks() {
        assert!(chunk(&doc(vec![]), 350, 50).is_empty());
        assert!(chunk(&doc(vec![block(None, "")]), 350, 50).is_empty());
    }

    #[test]
    fn headings_start_chunks_and_lead_their_text() {
        let d = doc(vec![
            block(None, "Intro."),
            block(Some("Refunds"), "Refunds take five days.\n\nAsk the shop."),
            block(Some("Exchanges"), "Exchanges are free."),
            block(Some("Empty heading"), ""),
        ]);
        let chunks = chunk(&d, 350, 50);
        assert_eq!(chunks.len(), 4);
        assert_eq!(chunks[0].text, "Intro.");
        assert_eq!(chunks[0].heading, None);
        assert_eq!(
            chunks[1].text,
            "Refunds\nRefunds take five days.\n\nAsk the shop."
        );
        assert_eq!(chunks[1].heading.as_deref(), Some("Refunds"));
        assert_eq!(chunks[2].text, "Exchanges\nExchanges are free.");
        assert_eq!(chunks[3].text, "Empty heading");
        // A section's first chunk spans its heading line.
        let text = d.text();
        let at = |c: &Chunk| -> String {
            text.chars()
                .skip(c.start_char as usize)
                .take((c.end_char - c.start_char) as usize)
                .collect()
        };
        assert_eq!(at(&chunks[1]), chunks[1].text);
        assert_eq!(at(&chunks[3]), "Empty heading");
        check_invariants(&d, &chunks, 350);
    }

    #[test]
    fn budget_respected_and_sections_overlap() {
        // Paragraphs of 3 sentences (about 45 tokens), and one of 20 (larger than a chunk).
        let mut paragraphs: Vec<String> = (0..6)
            .map(|p| sentences_text(&format!("P{p}"), 3))
            .collect();
        paragraphs.insert(3, sentences_text("Big", 20));
        let d = doc(vec![
            block(Some("Long section"), &paragraphs.join("\n\n")),
            block(Some("Next"), "Short."),
        ]);
        let budget = 120;
        let chunks = chunk(&d, budget, 30);
        check_invariants(&d, &chunks, budget);
        let long: Vec<&Chunk> = chunks
            .iter()
            .filter(|c| c.heading.as_deref() == Some("Long section"))
            .collect();
        assert!(long.len() >= 5, "{}", long.len());
        for c in &long {
            assert!(c.text.starts_with("Long section\n"));
        }
        for pair in long.windows(2) {
            assert!(
                pair[1].start_char < pair[0].end_char,
                "consecutive chunks of a section overlap"
            );
            // Whole sentences: the overlap starts at a sentence.
            let body = pair[1].text.strip_prefix("Long section\n").unwrap();
            assert!(body.starts_with(['P', 'B']), "{body:?}");
        }
        // No overlap across sections.
        let next = chunks
            .iter()
            .find(|c| c.heading.as_deref() == Some("Next"))
            .unwrap();
        assert_eq!(next.text, "Next\nShort.");
        assert!(next.start_char >= long.last().unwrap().end_char);
    }

    #[test]
    fn paragraphs_are_packed_whole_when_they_fit() {
        let d = doc(vec![block(None, "One.\n\nTwo two.\n\nThree three three.")]);
        let chunks = chunk(&d, 350, 50);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "One.\n\nTwo two.\n\nThree three three.");
        assert_eq!(
            (chunks[0].start_char, chunks[0].end_char),
            (0, d.chars as i64)
        );
    }

    #[test]
    fn long_sentences_split_on_lines_then_words() {
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        let mut text = words.join(" ");
        text.push_str("\n\n");
        text.push_str(&"x".repeat(2000)); // one word of 500 tokens
        text.push_str(" tail");
        let d = doc(vec![block(None, &text)]);
        let chunks = chunk(&d, 100, 20);
        check_invariants(&d, &chunks, 100);
        assert!(chunks.iter().any(|c| c.text == "x".repeat(2000)));
        let joined: String = chunks
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        for w in &words {
            assert!(joined.split_whitespace().any(|x| x == w), "{w} lost");
        }
        assert!(joined.ends_with("tail"));
    }

    #[test]
    fn cjk_sentences_split() {
        let s = "这是一个句子。".repeat(200);
        let d = doc(vec![block(None, &s)]);
        let chunks = chunk(&d, 50, 10);
        check_invariants(&d, &chunks, 50);
        assert!(chunks.len() > 5);
        assert!(chunks.iter().all(|c| c.text.ends_with('。')));
    }

    #[test]
    fn pdf_pages_keep_their_numbers() {
        let mut blocks = Vec::new();
        for p in 1..=4 {
            blocks.push(Block {
                heading: None,
                text: sentences_text(&format!("Page{p}"), 10),
                page: Some(p),
            });
        }
        let d = doc(blocks);
        let chunks = chunk(&d, 200, 40);
        check_invariants(&d, &chunks, 200);
        assert_eq!(chunks[0].page, Some(1));
        assert!(chunks.windows(2).all(|w| w[0].page <= w[1].page));
        for c in &chunks {
            let first_word = c.text.split_whitespace().next().unwrap();
            assert_eq!(first_word, format!("Page{}", c.page.unwrap()));
        }
    }

    #[test]
    fn long_heading_is_shortened() {
        let heading = "word ".repeat(200);
        let d = doc(vec![block(Some(heading.trim()), &sentences_text("S", 40))]);
        let chunks = chunk(&d, 100, 20);
        check_invariants(&d, &chunks, 100);
        assert!(chunks[0].heading.as_ref().unwrap().ends_with('…'));
    }

    #[test]
    fn a_large_document_chunks_fast() {
        // About 1 MB of text in 300 pages.
        let blocks: Vec<Block> = (1..=300)
            .map(|p| Block {
                heading: None,
                text: (0..5)
                    .map(|q| sentences_text(&format!("p{p}q{q}"), 11))
                    .collect::<Vec<_>>()
                    .join("\n\n"),
                page: Some(p),
            })
            .collect();
        let d = doc(blocks);
        assert!(d.chars > 900_000, "{}", d.chars);
        let started = Instant::now();
        let chunks = chunk(&d, DEFAULT_BUDGET_TOKENS, DEFAULT_OVERLAP_TOKENS);
        let took = started.elapsed();
        check_invariants(&d, &chunks, DEFAULT_BUDGET_TOKENS);
        // Well under 100 ms in release; an unoptimised test build gets more room.
        assert!(took.as_millis() < 2000, "{took:?}");
    }

    #[test]
    fn extracted_fixtures_chunk() {
        use crate::kb::{extract, fixtures};
        let bytes = fixtures::docx(&[
            (Some("Heading1"), "Delivery"),
            (None, &sentences_text("D", 40)),
            (Some("Heading1"), "Payment"),
            (None, "We take cards."),
        ]);
        let d =
            extract::extract(extract::Format::Docx, &bytes, &extract::Limits::default()).unwrap();
        let chunks = chunk(&d, 200, 40);
        check_invariants(&d, &chunks, 200);
        assert!(
            chunks
                .iter()
                .filter(|c| c.heading.as_deref() == Some("Delivery"))
                .count()
                >= 3
        );
        assert_eq!(chunks.last().unwrap().text, "Payment\nWe take cards.");
    }
}
