//! Text out of an uploaded document (ARCHITECTURE.md, "Knowledge base"): PDF, DOCX, HTML,
//! Markdown, plain text and CSV, as blocks (a heading and its text; one block a PDF page).
//!
//! Pure and synchronous: no database, no network, CPU-bound (callers use `spawn_blocking`).
//! Memory stays within [`Limits`], and a parser panic on a malformed file becomes
//! [`ExtractError::Corrupt`].
//!
//! Crates:
//! - `lopdf`: pure-Rust PDF reader and writer, maintained, bounds stream decompression; we walk
//!   the page content ourselves so line and word breaks come from the text positioning.
//! - `zip` + `quick-xml`: DOCX is a ZIP of XML; `zip` is already ours, `quick-xml` streams XML
//!   without building a tree, so `word/document.xml` is read through a byte cap.
//! - `scraper`: html5ever, the browser-grade HTML parser (tolerates any tag soup).
//! - `csv`: the standard Rust CSV reader (quoted fields with commas, quotes and newlines).
//! - `encoding_rs`: decodes HTML saved in a legacy charset its `<meta charset>` names.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufReader, Cursor, Read};
use std::sync::LazyLock;

use lopdf::content::Content;
use lopdf::{Document, Encoding, LoadOptions, Object, ObjectId};

/// The formats the knowledge base takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pdf,
    Docx,
    Html,
    Markdown,
    Text,
    Csv,
}

const UNSUPPORTED: &str = "unsupported file type: use PDF, DOCX, HTML, Markdown, plain text or CSV";

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Pdf,
        Format::Docx,
        Format::Html,
        Format::Markdown,
        Format::Text,
        Format::Csv,
    ];

    /// From the file name's extension (.pdf .docx .html/.htm .md/.markdown .txt/.text .csv)
    /// and, when the extension says nothing, the declared MIME type; then the first bytes must
    /// agree (PDF starts with `%PDF-`, DOCX with `PK\x03\x04`, text formats contain no NUL in
    /// the head and are not an executable). The error is a sentence for the user.
    pub fn detect(filename: &str, mime: &str, head: &[u8]) -> Result<Format, String> {
        let format = Self::from_filename(filename)
            .or_else(|| Self::from_mime(mime))
            .ok_or_else(|| UNSUPPORTED.to_string())?;
        match format {
            Format::Pdf if !head.starts_with(b"%PDF-") => {
                Err("the file's content is not a PDF".to_string())
            }
            Format::Docx if !head.starts_with(b"PK\x03\x04") => {
                Err("the file's content is not a DOCX document".to_string())
            }
            Format::Pdf | Format::Docx => Ok(format),
            _ => text_head_problem(head)
                .map(|why| format!("the file's content is not {}: {why}", format.article_name()))
                .map_or(Ok(format), Err),
        }
    }

    /// The format an extension names (without the dot, any case).
    fn from_filename(filename: &str) -> Option<Format> {
        let (_, ext) = filename.rsplit_once('.')?;
        Some(match ext.to_ascii_lowercase().as_str() {
            "pdf" => Format::Pdf,
            "docx" => Format::Docx,
            "html" | "htm" | "xhtml" => Format::Html,
            "md" | "markdown" => Format::Markdown,
            "txt" | "text" => Format::Text,
            "csv" => Format::Csv,
            _ => return None,
        })
    }

    /// The format a MIME type names (parameters such as `charset` ignored).
    fn from_mime(mime: &str) -> Option<Format> {
        let essence = mime
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match essence.as_str() {
            "application/pdf" | "application/x-pdf" => Format::Pdf,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Format::Docx
            }
            "text/html" | "application/xhtml+xml" => Format::Html,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/plain" => Format::Text,
            "text/csv" | "application/csv" | "text/x-csv" => Format::Csv,
            _ => return None,
        })
    }

    /// The stored name: "PDF", "DOCX", "HTML", "MARKDOWN", "TEXT", "CSV".
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Pdf => "PDF",
            Format::Docx => "DOCX",
            Format::Html => "HTML",
            Format::Markdown => "MARKDOWN",
            Format::Text => "TEXT",
            Format::Csv => "CSV",
        }
    }

    /// The inverse of [`Format::as_str`].
    pub fn parse(s: &str) -> Option<Format> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn mime(&self) -> &'static str {
        match self {
            Format::Pdf => "application/pdf",
            Format::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            Format::Html => "text/html",
            Format::Markdown => "text/markdown",
            Format::Text => "text/plain",
            Format::Csv => "text/csv",
        }
    }

    /// The name in a sentence ("the file is damaged or not a valid ...").
    fn label(&self) -> &'static str {
        match self {
            Format::Pdf => "PDF",
            Format::Docx => "DOCX document",
            Format::Html => "HTML page",
            Format::Markdown => "Markdown file",
            Format::Text => "text file",
            Format::Csv => "CSV file",
        }
    }

    fn article_name(&self) -> &'static str {
        match self {
            Format::Pdf => "a PDF",
            Format::Docx => "a DOCX document",
            Format::Html => "HTML",
            Format::Markdown => "Markdown",
            Format::Text => "text",
            Format::Csv => "CSV",
        }
    }
}

/// Why the first bytes of a file said to be text are not text, if they are not.
fn text_head_problem(head: &[u8]) -> Option<&'static str> {
    // UTF-16 text is full of NULs; its byte order mark says what it is.
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return None;
    }
    const PROGRAMS: [&[u8]; 8] = [
        b"MZ",               // Windows / DOS
        b"\x7FELF",          // Linux
        b"\xCA\xFE\xBA\xBE", // Mach-O universal, Java class
        b"\xFE\xED\xFA\xCE", // Mach-O
        b"\xFE\xED\xFA\xCF",
        b"\xCE\xFA\xED\xFE",
        b"\xCF\xFA\xED\xFE",
        b"#!", // script
    ];
    if PROGRAMS.iter().any(|magic| head.starts_with(magic)) || head.starts_with(b"\0asm") {
        return Some("it is a program");
    }
    if head.starts_with(b"%PDF-") {
        return Some("it is a PDF");
    }
    if head.starts_with(b"PK\x03\x04") {
        return Some("it is a ZIP archive (a DOCX or other Office file?)");
    }
    if head.contains(&0) {
        return Some("it contains binary data");
    }
    None
}

/// Bounds on what one document may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most pages of a PDF.
    pub max_pages: usize,
    /// Most bytes a DOCX's XML may inflate to, and any one PDF stream.
    pub max_unzipped_bytes: u64,
    /// Most characters of extracted text.
    pub max_text_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pages: 2000,
            max_unzipped_bytes: 100 * 1024 * 1024,
            max_text_chars: 20_000_000,
        }
    }
}

/// Most files in a DOCX archive (Word writes about a dozen; images add one each).
const MAX_ZIP_ENTRIES: usize = 10_000;
/// CSV data rows per block.
const CSV_ROWS_PER_BLOCK: usize = 20;

/// One block of the document: a heading (if it opens a section) and its text; `page` is the
/// 1-based PDF page. Paragraphs inside `text` are separated by one blank line.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub heading: Option<String>,
    pub text: String,
    pub page: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct Extracted {
    pub blocks: Vec<Block>,
    /// Pages of a PDF.
    pub pages: Option<u32>,
    /// Characters of [`Extracted::text`].
    pub chars: usize,
}

impl Extracted {
    /// The document's concatenated text, which chunk offsets index (in characters): blocks
    /// joined by a blank line, a block's heading on its own line before its text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for piece in self.layout() {
            out.push_str(piece);
        }
        out
    }

    /// The pieces of [`Extracted::text`], in order (separators included). Blocks with neither
    /// heading nor text take no room.
    pub(crate) fn layout(&self) -> impl Iterator<Item = &str> + '_ {
        self.blocks
            .iter()
            .filter(|b| b.heading.is_some() || !b.text.is_empty())
            .enumerate()
            .flat_map(|(i, b)| {
                let sep = if i == 0 { "" } else { "\n\n" };
                let heading = b.heading.as_deref().unwrap_or("");
                let newline = if b.heading.is_some() && !b.text.is_empty() {
                    "\n"
                } else {
                    ""
                };
                [sep, heading, newline, b.text.as_str()]
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("the file is damaged or not a valid {0}: {1}")]
    Corrupt(&'static str, String),
    #[error("the PDF is encrypted (password protected); upload a copy without a password")]
    Encrypted,
    #[error(
        "no text: the document contains no extractable text (a scanned image needs OCR first)"
    )]
    NoText,
    #[error("the document is too large: {0}")]
    TooLarge(String),
    #[error("the text is not UTF-8: save it as UTF-8 and upload it again")]
    NotUtf8,
}

/// The document's text as blocks. Synchronous and CPU-bound (callers use `spawn_blocking`).
/// Never panics: a panic inside a parser becomes [`ExtractError::Corrupt`].
pub fn extract(format: Format, bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let run = std::panic::AssertUnwindSafe(|| match format {
        Format::Pdf => pdf(bytes, limits),
        Format::Docx => docx(bytes, limits),
        Format::Html => html(bytes, limits),
        Format::Markdown => markdown(&decode_text(bytes)?, limits),
        Format::Text => plain(&decode_text(bytes)?, limits),
        Format::Csv => csv(&decode_text(bytes)?, limits),
    });
    match std::panic::catch_unwind(run) {
        Ok(result) => result,
        Err(_) => Err(ExtractError::Corrupt(
            format.label(),
            "its structure could not be parsed".to_string(),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Text normalisation and block building

/// Whitespace-normalised text: runs of spaces and tabs become one space, lines are trimmed,
/// three or more newlines become one blank line, control characters other than `\n` (and
/// zero-width marks) are dropped, and the whole is trimmed.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut newlines = 0usize;
    let mut after_cr = false;
    for c in s.chars() {
        let cr = c == '\r';
        if c == '\n' || cr {
            if !(c == '\n' && after_cr) {
                newlines += 1;
            }
            space = false;
        } else if c.is_whitespace() {
            space = true;
        } else if c.is_control() || matches!(c, '\u{200B}' | '\u{200C}' | '\u{FEFF}' | '\u{AD}') {
            // dropped, not a separator
        } else {
            if !out.is_empty() {
                if newlines > 0 {
                    out.push_str(if newlines > 1 { "\n\n" } else { "\n" });
                } else if space {
                    out.push(' ');
                }
            }
            newlines = 0;
            space = false;
            out.push(c);
        }
        after_cr = cr;
    }
    out
}

/// [`normalize`] on one line (a heading, a CSV cell): newlines become spaces.
fn one_line(s: &str) -> String {
    let n = normalize(s);
    if n.contains('\n') {
        n.split('\n')
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        n
    }
}

/// Collects blocks, normalising text and counting characters against the limit.
struct Builder {
    blocks: Vec<Block>,
    current: Block,
    chars: usize,
    max_chars: usize,
}

impl Builder {
    fn new(limits: &Limits) -> Self {
        Builder {
            blocks: Vec::new(),
            current: Block {
                heading: None,
                text: String::new(),
                page: None,
            },
            chars: 0,
            max_chars: limits.max_text_chars,
        }
    }

    fn count(&mut self, s: &str) -> Result<(), ExtractError> {
        self.chars += s.chars().count() + 2;
        if self.chars > self.max_chars {
            return Err(ExtractError::TooLarge(format!(
                "more than {} characters of text",
                self.max_chars
            )));
        }
        Ok(())
    }

    /// Appends a paragraph (normalised; nothing if it is blank) to the current block.
    fn paragraph(&mut self, raw: &str) -> Result<(), ExtractError> {
        let text = normalize(raw);
        if text.is_empty() {
            return Ok(());
        }
        self.count(&text)?;
        if !self.current.text.is_empty() {
            self.current.text.push_str("\n\n");
        }
        self.current.text.push_str(&text);
        Ok(())
    }

    /// Closes the current block and opens one under `heading` (ignored if blank).
    fn heading(&mut self, raw: &str) -> Result<(), ExtractError> {
        let heading = one_line(raw);
        if heading.is_empty() {
            return Ok(());
        }
        self.count(&heading)?;
        self.close(None);
        self.current.heading = Some(heading);
        Ok(())
    }

    /// Closes the current block and opens one without a heading (a PDF page, CSV rows).
    fn close(&mut self, page: Option<u32>) {
        let next = Block {
            heading: None,
            text: String::new(),
            page,
        };
        let done = std::mem::replace(&mut self.current, next);
        if done.heading.is_some() || !done.text.is_empty() {
            self.blocks.push(done);
        }
    }

    fn finish(mut self, pages: Option<u32>) -> Result<Extracted, ExtractError> {
        self.close(None);
        if self.blocks.is_empty() {
            return Err(ExtractError::NoText);
        }
        let mut doc = Extracted {
            blocks: self.blocks,
            pages,
            chars: 0,
        };
        doc.chars = doc.layout().map(|p| p.chars().count()).sum();
        Ok(doc)
    }
}

/// Text bytes as a string: UTF-8 (a byte order mark dropped) or UTF-16 with a byte order mark.
fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, ExtractError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(Cow::Borrowed)
            .map_err(|_| ExtractError::NotUtf8);
    }
    let utf16 = |big_endian: bool| {
        let body = &bytes[2..];
        if !body.len().is_multiple_of(2) {
            return Err(ExtractError::NotUtf8);
        }
        let units = body.chunks_exact(2).map(|p| {
            if big_endian {
                u16::from_be_bytes([p[0], p[1]])
            } else {
                u16::from_le_bytes([p[0], p[1]])
            }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map(Cow::Owned)
            .map_err(|_| ExtractError::NotUtf8)
    };
    if bytes.starts_with(b"\xFF\xFE") {
        return utf16(false);
    }
    if bytes.starts_with(b"\xFE\xFF") {
        return utf16(true);
    }
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|_| ExtractError::NotUtf8)
}

// ---------------------------------------------------------------------------------------------
// Plain text, Markdown, CSV

fn plain(text: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut b = Builder::new(limits);
    b.paragraph(text)?;
    b.finish(None)
}

/// Links and images keep their text; `**`, `__`, `~~` and backticks go.
static MD_LINK: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"!?\[([^\]\n]*)\]\([^)\n]*\)").expect("valid regex"));

fn md_inline(line: &str) -> String {
    let line = MD_LINK.replace_all(line, "$1");
    line.replace("**", "")
        .replace("__", "")
        .replace("~~", "")
        .replace('`', "")
}

/// An ATX heading's text (`# Title ##` gives "Title").
fn md_atx_heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&hashes) {
        return None;
    }
    let rest = &trimmed[hashes..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let rest = rest.trim();
    // A closing sequence of #s is not part of the text.
    let closed = rest.trim_end_matches('#');
    if closed.is_empty() || closed.ends_with([' ', '\t']) {
        Some(closed.trim_end())
    } else {
        Some(rest)
    }
}

fn markdown(text: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut b = Builder::new(limits);
    let mut para = String::new();
    let mut fence: Option<&str> = None;
    let mut lines = text.lines().peekable();
    // YAML front matter is metadata, not text.
    if lines.peek().map(|l| l.trim_end()) == Some("---") {
        lines.next();
        for line in lines.by_ref() {
            if matches!(line.trim_end(), "---" | "...") {
                break;
            }
        }
    }
    for line in lines {
        let trimmed = line.trim();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) && trimmed.trim_start_matches(marker).trim().is_empty() {
                fence = None;
                b.paragraph(&para)?;
                para.clear();
            } else {
                para.push_str(line);
                para.push('\n');
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            b.paragraph(&para)?;
            para.clear();
            fence = Some(&trimmed[..3]);
            continue;
        }
        if trimmed.is_empty() {
            b.paragraph(&para)?;
            para.clear();
            continue;
        }
        if let Some(heading) = md_atx_heading(line) {
            b.paragraph(&para)?;
            para.clear();
            b.heading(&md_inline(heading))?;
            continue;
        }
        let underline = |c: char| trimmed.chars().all(|x| x == c);
        if !para.is_empty() && (underline('=') || (underline('-') && trimmed.len() >= 2)) {
            // Setext heading: the paragraph above is the heading.
            let heading = std::mem::take(&mut para);
            b.heading(&heading)?;
            continue;
        }
        // A thematic break: three or more of one of - * _ (spaces allowed between).
        let first = trimmed.chars().next().unwrap_or(' ');
        let rule = matches!(first, '-' | '*' | '_')
            && trimmed.chars().filter(|&x| x == first).count() >= 3
            && trimmed.chars().all(|x| x == first || x == ' ' || x == '\t');
        if rule {
            b.paragraph(&para)?;
            para.clear();
            continue;
        }
        // A table's delimiter row says nothing.
        if trimmed.contains('-') && trimmed.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
            continue;
        }
        let content = trimmed.trim_start_matches('>').trim_start();
        para.push_str(&md_inline(content));
        para.push('\n');
    }
    b.paragraph(&para)?;
    b.finish(None)
}

/// The delimiter the first line uses most: comma, semicolon, tab or pipe.
fn csv_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|&d| (first.bytes().filter(|&b| b == d).count(), d == b','))
        .unwrap_or(b',')
}

fn csv(text: &str, limits: &Limits) -> Result<Extracted, ExtractError> {
    let corrupt = |e: csv::Error| ExtractError::Corrupt(Format::Csv.label(), e.to_string());
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(csv_delimiter(text))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let mut b = Builder::new(limits);
    let Some(header) = records.next() else {
        return Err(ExtractError::NoText);
    };
    let header: Vec<String> = header.map_err(corrupt)?.iter().map(one_line).collect();
    let name = |i: usize| match header.get(i) {
        Some(h) if !h.is_empty() => h.clone(),
        _ => format!("Column {}", i + 1),
    };
    let mut group = String::new();
    let mut rows = 0usize;
    for record in records {
        let record = record.map_err(corrupt)?;
        let mut line = String::new();
        for (i, value) in record.iter().enumerate() {
            let value = one_line(value);
            if value.is_empty() {
                continue;
            }
            if !line.is_empty() {
                line.push_str("; ");
            }
            line.push_str(&name(i));
            line.push_str(": ");
            line.push_str(&value);
        }
        if line.is_empty() {
            continue;
        }
        group.push_str(&line);
        group.push('\n');
        rows += 1;
        if rows.is_multiple_of(CSV_ROWS_PER_BLOCK) {
            b.paragraph(&group)?;
            b.close(None);
            group.clear();
        }
    }
    b.paragraph(&group)?;
    if rows == 0 {
        // Only a header: its names are the text there is.
        let names: Vec<&str> = header
            .iter()
            .map(String::as_str)
            .filter(|h| !h.is_empty())
            .collect();
        b.paragraph(&names.join(", "))?;
    }
    b.finish(None)
}

// ---------------------------------------------------------------------------------------------
// HTML

/// Elements whose content is not text for a reader.
const HTML_SKIP: &[&str] = &[
    "script", "style", "noscript", "head", "template", "svg", "math", "iframe", "object", "canvas",
    "select", "textarea", "button",
];
/// Elements that separate paragraphs.
const HTML_BLOCK: &[&str] = &[
    "p",
    "div",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "caption",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "blockquote",
    "pre",
    "hr",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "legend",
    "address",
    "details",
    "summary",
    "body",
    "html",
];

/// The text of an HTML file: UTF-8 or UTF-16 with a byte order mark, or the legacy charset its
/// first kilobyte declares.
fn decode_html(bytes: &[u8]) -> Result<Cow<'_, str>, ExtractError> {
    match decode_text(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let head =
                String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
            let Some(at) = head.find("charset=") else {
                return Err(e);
            };
            let label: String = head[at + 8..]
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.'))
                .collect();
            match encoding_rs::Encoding::for_label(label.as_bytes()) {
                Some(enc) if enc != encoding_rs::UTF_8 => Ok(Cow::Owned(
                    enc.decode_without_bom_handling(bytes).0.into_owned(),
                )),
                _ => Err(e),
            }
        }
    }
}

fn html(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let text = decode_html(bytes)?;
    let doc = scraper::Html::parse_document(&text);
    let mut b = Builder::new(limits);
    let mut para = String::new();
    let mut heading: Option<String> = None;
    let mut pre = 0usize;

    // Depth-first walk without recursion (deeply nested pages cannot overflow the stack).
    let root = doc.tree.root();
    let mut node = root;
    loop {
        // Open `node`; descend unless it is skipped.
        let mut descend = true;
        match node.value() {
            scraper::Node::Element(el) => {
                let name = el.name();
                if HTML_SKIP.contains(&name) {
                    descend = false;
                } else if is_html_heading(name) {
                    b.paragraph(&para)?;
                    para.clear();
                    heading = Some(String::new());
                } else if name == "br" {
                    heading.as_mut().unwrap_or(&mut para).push('\n');
                } else if name == "td" || name == "th" {
                    heading.as_mut().unwrap_or(&mut para).push(' ');
                } else if name == "img" {
                    if let Some(alt) = el.attr("alt") {
                        let target = heading.as_mut().unwrap_or(&mut para);
                        target.push(' ');
                        target.push_str(alt);
                        target.push(' ');
                    }
                } else if HTML_BLOCK.contains(&name) {
                    if name == "pre" {
                        pre += 1;
                    }
                    if heading.is_none() {
                        b.paragraph(&para)?;
                        para.clear();
                    }
                }
            }
            scraper::Node::Text(t) => {
                let target = heading.as_mut().unwrap_or(&mut para);
                if pre > 0 {
                    target.push_str(t);
                } else {
                    // Outside <pre>, a newline in the source is a space.
                    target.extend(
                        t.chars()
                            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c }),
                    );
                }
            }
            _ => {}
        }
        if descend {
            if let Some(child) = node.first_child() {
                node = child;
                continue;
            }
        }
        // Close `node` and every ancestor that has no next sibling.
        let mut closing = Some(node);
        while let Some(current) = closing {
            if let scraper::Node::Element(el) = current.value() {
                let name = el.name();
                if descend || current != node {
                    if is_html_heading(name) {
                        if let Some(h) = heading.take() {
                            b.heading(&h)?;
                        }
                    } else if HTML_BLOCK.contains(&name) {
                        if name == "pre" {
                            pre = pre.saturating_sub(1);
                        }
                        if heading.is_none() {
                            b.paragraph(&para)?;
                            para.clear();
                        }
                    }
                }
            }
            if current == root {
                closing = None;
                break;
            }
            if let Some(next) = current.next_sibling() {
                node = next;
                break;
            }
            closing = current.parent();
        }
        if closing.is_none() {
            break;
        }
    }
    if let Some(h) = heading.take() {
        b.heading(&h)?;
    }
    b.paragraph(&para)?;
    b.finish(None)
}

fn is_html_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

// ---------------------------------------------------------------------------------------------
// DOCX

/// A reader that fails once more than `left` bytes would pass, whatever the source claims.
struct Capped<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            // At the cap: one more byte means the limit is exceeded.
            let mut probe = [0u8; 1];
            if self.inner.read(&mut probe)? == 0 {
                return Ok(0);
            }
            self.exceeded = true;
            return Err(std::io::Error::other("decompressed size limit exceeded"));
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..n])?;
        self.left -= read as u64;
        Ok(read)
    }
}

fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1024 * 1024)
}

fn docx(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let corrupt =
        |e: &dyn std::fmt::Display| ExtractError::Corrupt(Format::Docx.label(), e.to_string());
    let too_large = || {
        ExtractError::TooLarge(format!(
            "word/document.xml unpacks to more than {} MiB; the limit is {} MiB",
            mib(limits.max_unzipped_bytes),
            mib(limits.max_unzipped_bytes)
        ))
    };
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| corrupt(&e))?;
    if zip.len() > MAX_ZIP_ENTRIES {
        return Err(ExtractError::TooLarge(format!(
            "the archive holds {} files; the limit is {MAX_ZIP_ENTRIES}",
            zip.len()
        )));
    }
    let entry = zip
        .by_name("word/document.xml")
        .map_err(|_| corrupt(&"it has no word/document.xml"))?;
    let declared = entry.size();
    if declared > limits.max_unzipped_bytes {
        return Err(ExtractError::TooLarge(format!(
            "word/document.xml unpacks to {} MiB; the limit is {} MiB",
            mib(declared),
            mib(limits.max_unzipped_bytes)
        )));
    }
    // The declared size can lie: the cap holds whatever the stream inflates to.
    let capped = Capped {
        inner: entry.take(limits.max_unzipped_bytes.saturating_add(1)),
        left: limits.max_unzipped_bytes,
        exceeded: false,
    };
    let mut reader = quick_xml::Reader::from_reader(BufReader::with_capacity(64 * 1024, capped));
    let mut b = Builder::new(limits);
    let result = docx_body(&mut reader, &mut b, limits);
    if reader.get_ref().get_ref().exceeded {
        return Err(too_large());
    }
    result?;
    b.finish(None)
}

/// A heading style: "Title", "Heading1" … "Heading6" (any case, with or without a space).
fn docx_heading_style(style: &str) -> bool {
    let s = style.to_ascii_lowercase().replace(' ', "");
    s == "title"
        || s.strip_prefix("heading")
            .is_some_and(|n| matches!(n, "1" | "2" | "3" | "4" | "5" | "6"))
}

fn docx_body<R: std::io::BufRead>(
    reader: &mut quick_xml::Reader<R>,
    b: &mut Builder,
    limits: &Limits,
) -> Result<(), ExtractError> {
    use quick_xml::events::Event;
    let corrupt =
        |e: &dyn std::fmt::Display| ExtractError::Corrupt(Format::Docx.label(), e.to_string());
    let mut buf = Vec::new();
    let mut para = String::new();
    let mut heading = false;
    let mut in_text = false;
    let flush = |b: &mut Builder, para: &mut String, heading: &mut bool| {
        let r = if *heading {
            b.heading(para)
        } else {
            b.paragraph(para)
        };
        para.clear();
        *heading = false;
        r
    };
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| corrupt(&e))?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let start = matches!(event, Event::Start(_));
                match e.local_name().as_ref() {
                    "p" => flush(b, &mut para, &mut heading)?,
                    "t" => in_text = start,
                    "tab" => para.push('\t'),
                    "br" | "cr" => para.push('\n'),
                    "pStyle" => {
                        for attr in e.attributes().flatten() {
                            if attr.key.local_name().as_ref() == "val" {
                                let value = attr
                                    .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                    .map_err(|e| corrupt(&e))?;
                                heading = docx_heading_style(&value);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "p" => flush(b, &mut para, &mut heading)?,
                "t" => in_text = false,
                "tc" => para.push(' '),
                _ => {}
            },
            Event::Text(t) if in_text => push_collapsed(&mut para, &t.xml10_content()),
            Event::CData(t) if in_text => push_collapsed(&mut para, &t.xml10_content()),
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    para.push_str(s);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        if para.len() > limits.max_text_chars.saturating_mul(4) {
            return Err(ExtractError::TooLarge(format!(
                "more than {} characters of text",
                limits.max_text_chars
            )));
        }
        buf.clear();
    }
    flush(b, &mut para, &mut heading)
}

/// Appends `s`, dropping whitespace that follows whitespace (normalising would drop it anyway),
/// so a run of blanks costs no memory.
fn push_collapsed(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_whitespace() && out.ends_with(char::is_whitespace) {
            continue;
        }
        out.push(c);
    }
}

// ---------------------------------------------------------------------------------------------
// PDF

fn pdf(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let stream_limit = usize::try_from(limits.max_unzipped_bytes).unwrap_or(usize::MAX);
    let options = LoadOptions {
        max_decompressed_size: Some(stream_limit),
        ..LoadOptions::default()
    };
    let doc = match Document::load_mem_with_options(bytes, options) {
        Ok(doc) => doc,
        Err(e) => return Err(pdf_error(e, bytes)),
    };
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted);
    }
    let pages = doc.get_pages();
    if pages.len() > limits.max_pages {
        return Err(ExtractError::TooLarge(format!(
            "{} pages; the limit is {}",
            pages.len(),
            limits.max_pages
        )));
    }
    let mut b = Builder::new(limits);
    let mut first_error = None;
    let mut read_any = false;
    for (&number, &page) in &pages {
        match pdf_page_text(&doc, page, stream_limit) {
            Ok(text) => {
                read_any = true;
                b.close(Some(number));
                b.paragraph(&text)?;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if !read_any {
        if let Some(e) = first_error {
            return Err(pdf_error(e, bytes));
        }
    }
    let count = u32::try_from(pages.len()).unwrap_or(u32::MAX);
    b.finish(Some(count))
}

fn pdf_error(e: lopdf::Error, bytes: &[u8]) -> ExtractError {
    use lopdf::{DecompressError, Error};
    match e {
        Error::Decryption(_) | Error::InvalidPassword | Error::AlreadyEncrypted => {
            ExtractError::Encrypted
        }
        Error::Decompress(DecompressError::MemoryLimitExceeded { limit }) => {
            ExtractError::TooLarge(format!(
                "a PDF stream decompresses to more than {} MiB",
                mib(limit as u64)
            ))
        }
        // A security handler lopdf cannot set up still means the file is encrypted.
        _ if pdf_declares_encryption(bytes) => ExtractError::Encrypted,
        e => ExtractError::Corrupt(Format::Pdf.label(), e.to_string()),
    }
}

/// Whether the file's trailer names an `/Encrypt` dictionary (looked for near the end, where
/// trailers are).
fn pdf_declares_encryption(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64 * 1024)..];
    tail.windows(8).any(|w| w == b"/Encrypt")
}

/// A page's text, with line breaks where the text moves to another line and spaces where it
/// jumps along one (lopdf's own `extract_text` glues words positioned apart).
fn pdf_page_text(doc: &Document, page: ObjectId, limit: usize) -> lopdf::Result<String> {
    let encodings: BTreeMap<Vec<u8>, Encoding<'_>> = doc
        .get_page_fonts(page)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, font)| {
            font.get_font_encoding_with_limit(doc, limit)
                .ok()
                .map(|e| (name, e))
        })
        .collect();
    let data = doc.get_page_content_with_limit(page, limit)?;
    let content = Content::decode(&data)?;
    let mut out = String::new();
    let mut font: Option<&Encoding<'_>> = None;
    let mut y = 0f32;
    let mut last_y: Option<f32> = None;
    let mut newline = false;
    let mut moved = false;
    let number =
        |ops: &[Object], i: usize| ops.get(i).and_then(|o| o.as_float().ok()).unwrap_or(0.0);
    for op in &content.operations {
        let ops = op.operands.as_slice();
        let shown: &[Object] = match op.operator.as_str() {
            "BT" => {
                y = 0.0;
                continue;
            }
            "Tf" => {
                font = ops
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|n| encodings.get(n));
                continue;
            }
            "Td" | "TD" => {
                let (tx, ty) = (number(ops, 0), number(ops, 1));
                if ty.abs() > 0.01 {
                    y += ty;
                } else if tx.abs() > 0.01 {
                    moved = true;
                }
                continue;
            }
            "Tm" => {
                y = number(ops, 5);
                moved = true;
                continue;
            }
            "T*" => {
                newline = true;
                continue;
            }
            "Tj" | "TJ" => ops,
            "'" => {
                newline = true;
                ops
            }
            "\"" => {
                newline = true;
                ops.get(2..).unwrap_or(&[])
            }
            _ => continue,
        };
        let Some(encoding) = font else { continue };
        if !out.is_empty() {
            let other_line = last_y.is_some_and(|ly| (ly - y).abs() > 0.5);
            if newline || other_line {
                out.push('\n');
            } else if moved && !out.ends_with(char::is_whitespace) {
                out.push(' ');
            }
        }
        newline = false;
        moved = false;
        last_y = Some(y);
        pdf_show(&mut out, encoding, shown);
    }
    Ok(out)
}

/// Appends the strings of a Tj/TJ operand list; a large negative adjustment in a TJ array is a
/// word space.
fn pdf_show(out: &mut String, encoding: &Encoding<'_>, operands: &[Object]) {
    for operand in operands {
        match operand {
            Object::String(bytes, _) => {
                let _ = encoding.write_to_string(bytes, out);
            }
            Object::Array(items) => pdf_show(out, encoding, items),
            Object::Integer(i) if *i < -150 => out.push(' '),
            Object::Real(r) if *r < -150.0 => out.push(' '),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kb::fixtures;
    use std::time::{Duration, Instant};

    fn words(doc: &Extracted) -> String {
        doc.text()
    }

    #[test]
    fn detect_by_extension_then_mime_then_head() {
        assert_eq!(Format::detect("a.PDF", "", b"%PDF-1.7\n"), Ok(Format::Pdf));
        assert_eq!(
            Format::detect("a.docx", "", b"PK\x03\x04rest"),
            Ok(Format::Docx)
        );
        assert_eq!(Format::detect("a.htm", "", b"<html>"), Ok(Format::Html));
        assert_eq!(
            Format::detect("a.markdown", "", b"# T"),
            Ok(Format::Markdown)
        );
        assert_eq!(Format::detect("a.txt", "", b"hi"), Ok(Format::Text));
        assert_eq!(Format::detect("a.csv", "", b"a,b"), Ok(Format::Csv));
        assert_eq!(
            Format::detect("upload", "text/csv; charset=utf-8", b"a,b"),
            Ok(Format::Csv)
        );
        assert_eq!(
            Format::detect("a.log", "text/plain", b"hi"),
            Ok(Format::Text)
        );
        assert_eq!(
            Format::detect("a.txt", "", b"\xFF\xFEh\0i\0"),
            Ok(Format::Text),
            "UTF-16 text has NULs"
        );
        assert_eq!(
            Format::detect("a.exe", "application/octet-stream", b"MZ\x90\0"),
            Err(UNSUPPORTED.to_string())
        );
        assert_eq!(
            Format::detect("a.doc", "application/msword", b"\xD0\xCF"),
            Err(UNSUPPORTED.to_string())
        );
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            assert!(!f.mime().is_empty());
        }
    }

    #[test]
    fn executables_renamed_are_rejected() {
        for head in [
            &b"MZ\x90\0\x03\0\0\0"[..],
            b"\x7FELF\x02\x01\x01\0",
            b"\xCA\xFE\xBA\xBE\0\0\0\x02",
            b"#!/bin/sh\nrm -rf /\n",
        ] {
            let err = Format::detect("report.pdf", "application/pdf", head).unwrap_err();
            assert_eq!(err, "the file's content is not a PDF");
            assert!(Format::detect("notes.txt", "text/plain", head)
                .unwrap_err()
                .contains("not text"));
            assert!(Format::detect("page.html", "", head).is_err());
        }
        assert!(Format::detect("a.docx", "", b"%PDF-1.4").is_err());
        assert!(Format::detect("a.txt", "", b"ab\0cd")
            .unwrap_err()
            .contains("binary"));
    }

    #[test]
    fn normalize_whitespace_and_controls() {
        assert_eq!(
            normalize("  a \t b\u{0}c  \r\n\r\n\r\n\n  d\u{7}  \n e\u{a0}f "),
            "a bc\n\nd\ne f"
        );
        assert_eq!(normalize(" \n\t \n"), "");
    }

    #[test]
    fn pdf_round_trip() {
        let bytes = fixtures::pdf(&[
            "The quick brown fox jumps over the lazy dog. It was a sunny day in the harbour and the \
             ships were loading their cargo of apples, pears and plums for the long journey south.",
            "Second page talks about refunds (full, within 30 days) and shipping.",
        ]);
        let doc = extract(Format::Pdf, &bytes, &Limits::default()).unwrap();
        assert_eq!(doc.pages, Some(2));
        assert_eq!(doc.blocks.len(), 2);
        assert_eq!(doc.blocks[0].page, Some(1));
        assert_eq!(doc.blocks[1].page, Some(2));
        assert!(doc.blocks.iter().all(|b| b.heading.is_none()));
        let first = &doc.blocks[0].text;
        assert!(
            first.contains("The quick brown fox jumps over the lazy dog."),
            "{first}"
        );
        assert!(first.contains("cargo of apples"), "{first}");
        assert!(first.contains('\n'), "wrapped lines stay lines: {first}");
        assert!(doc.blocks[1]
            .text
            .contains("refunds (full, within 30 days)"));
        assert_eq!(doc.chars, doc.text().chars().count());
    }

    #[test]
    fn pdf_encrypted_is_reported() {
        let err = extract(Format::Pdf, &fixtures::pdf_encrypted(), &Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::Encrypted), "{err:?}");
    }

    #[test]
    fn pdf_over_page_limit_is_too_large() {
        let bytes = fixtures::pdf(&["one", "two", "three", "four", "five"]);
        let limits = Limits {
            max_pages: 3,
            ..Limits::default()
        };
        match extract(Format::Pdf, &bytes, &limits) {
            Err(ExtractError::TooLarge(msg)) => assert_eq!(msg, "5 pages; the limit is 3"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_pdf_is_corrupt_without_panicking() {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
        let err = extract(Format::Pdf, &bytes, &Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::Corrupt("PDF", _)), "{err:?}");
        // A valid file cut in half.
        let whole = fixtures::pdf(&["some words here"]);
        let half = &whole[..whole.len() / 2];
        assert!(extract(Format::Pdf, half, &Limits::default()).is_err());
    }

    #[test]
    fn pdf_without_text_is_no_text() {
        let bytes = fixtures::pdf(&["   ", ""]);
        let err = extract(Format::Pdf, &bytes, &Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::NoText), "{err:?}");
    }

    #[test]
    fn docx_round_trip_with_headings() {
        let bytes = fixtures::docx(&[
            (Some("Title"), "Returns policy"),
            (None, "Intro paragraph & more <text>."),
            (Some("Heading1"), "Refunds"),
            (None, "Refunds take 5 days.\tTabbed.\nNew line."),
            (None, "Second paragraph."),
            (Some("Heading2"), "Exchanges"),
            (None, "Exchanges are free."),
        ]);
        let doc = extract(Format::Docx, &bytes, &Limits::default()).unwrap();
        let headings: Vec<_> = doc.blocks.iter().map(|b| b.heading.as_deref()).collect();
        assert_eq!(
            headings,
            [Some("Returns policy"), Some("Refunds"), Some("Exchanges")]
        );
        assert_eq!(doc.blocks[0].text, "Intro paragraph & more <text>.");
        assert_eq!(
            doc.blocks[1].text,
            "Refunds take 5 days. Tabbed.\nNew line.\n\nSecond paragraph."
        );
        assert_eq!(doc.pages, None);
    }

    #[test]
    fn docx_bomb_is_too_large_quickly() {
        let bytes = fixtures::docx_bomb();
        assert!(bytes.len() < 2 * 1024 * 1024, "{} bytes", bytes.len());
        let started = Instant::now();
        let err = extract(Format::Docx, &bytes, &Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    /// Rewrites the uncompressed size the archive declares for `name` (local and central
    /// headers), as a crafted file would.
    fn lie_about_size(zip: &mut [u8], name: &[u8], size: u32) {
        let mut patched = 0;
        for i in 0..zip.len().saturating_sub(46 + name.len()) {
            let (sig, at, name_at) = match &zip[i..i + 4] {
                b"PK\x03\x04" => (true, 22, 30),
                b"PK\x01\x02" => (true, 24, 46),
                _ => (false, 0, 0),
            };
            if sig && zip[i + name_at..].starts_with(name) {
                zip[i + at..i + at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
        assert_eq!(patched, 2);
    }

    #[test]
    fn docx_with_lying_size_is_capped() {
        // The bomb claiming 10 bytes: inflating stops at the cap.
        let mut bomb = fixtures::docx_bomb();
        lie_about_size(&mut bomb, b"word/document.xml", 10);
        let limits = Limits {
            max_unzipped_bytes: 4 * 1024 * 1024,
            ..Limits::default()
        };
        let err = extract(Format::Docx, &bomb, &limits).unwrap_err();
        // `zip` refuses to inflate past the declared size itself; our cap is the second guard.
        assert!(
            matches!(err, ExtractError::TooLarge(_) | ExtractError::Corrupt(..)),
            "{err:?}"
        );
        // A truthful document over a small cap is too large too.
        let bytes = fixtures::docx(&[(None, &"word ".repeat(10_000))]);
        let small = Limits {
            max_unzipped_bytes: 1024,
            ..Limits::default()
        };
        let err = extract(Format::Docx, &bytes, &small).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
        // And the cap itself.
        let mut capped = Capped {
            inner: Cursor::new(vec![b' '; 5000]),
            left: 1000,
            exceeded: false,
        };
        let mut sink = Vec::new();
        assert!(capped.read_to_end(&mut sink).is_err());
        assert!(capped.exceeded);
        assert_eq!(sink.len(), 1000);
    }

    #[test]
    fn docx_not_a_zip_is_corrupt() {
        let err = extract(Format::Docx, b"PK\x03\x04garbage", &Limits::default()).unwrap_err();
        assert!(matches!(err, ExtractError::Corrupt(_, _)), "{err:?}");
    }

    #[test]
    fn html_headings_and_blocks() {
        let page = br#"<!doctype html><html><head><title>Ignored</title>
            <style>body { color: red }</style><script>var secret = 1;</script></head>
            <body><p>Welcome to <b>Acme</b>.</p>
            <h1>Opening hours</h1><p>Monday to Friday,
            9 to 5.</p><ul><li>Closed on Sunday</li><li>Open late Thursday</li></ul>
            <noscript>enable js</noscript>
            <h2>Contact &amp; support</h2><div>Call us<br>any time</div>
            <table><tr><td>Phone</td><td>555</td></tr></table></body></html>"#;
        let doc = extract(Format::Html, page, &Limits::default()).unwrap();
        let text = words(&doc);
        assert!(!text.contains("secret") && !text.contains("color") && !text.contains("Ignored"));
        assert!(!text.contains("enable js"));
        assert_eq!(doc.blocks[0].heading, None);
        assert_eq!(doc.blocks[0].text, "Welcome to Acme.");
        assert_eq!(doc.blocks[1].heading.as_deref(), Some("Opening hours"));
        assert_eq!(
            doc.blocks[1].text,
            "Monday to Friday, 9 to 5.\n\nClosed on Sunday\n\nOpen late Thursday"
        );
        assert_eq!(doc.blocks[2].heading.as_deref(), Some("Contact & support"));
        assert_eq!(doc.blocks[2].text, "Call us\nany time\n\nPhone 555");
    }

    #[test]
    fn html_in_a_declared_legacy_charset() {
        let page =
            b"<html><head><meta charset=\"windows-1252\"></head><body><p>caf\xe9</p></body></html>";
        let doc = extract(Format::Html, page, &Limits::default()).unwrap();
        assert_eq!(doc.blocks[0].text, "caf\u{e9}");
        let undeclared = b"<p>caf\xe9</p>";
        assert!(matches!(
            extract(Format::Html, undeclared, &Limits::default()),
            Err(ExtractError::NotUtf8)
        ));
    }

    #[test]
    fn markdown_headings_and_paragraphs() {
        let md = "---\ntitle: front matter\n---\nIntro with **bold** and a [link](https://x.test).\n\n\
                  # Shipping #\nWe ship `daily`.\nEven on Saturday.\n\n\n\nSecond para.\n\n* * *\n\
                  ```\n# not a heading\n```\n\nReturns\n-------\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let doc = extract(Format::Markdown, md.as_bytes(), &Limits::default()).unwrap();
        assert!(!doc.text().contains("front matter"));
        let headings: Vec<_> = doc.blocks.iter().map(|b| b.heading.as_deref()).collect();
        assert_eq!(headings, [None, Some("Shipping"), Some("Returns")]);
        assert_eq!(doc.blocks[0].text, "Intro with bold and a link.");
        assert_eq!(
            doc.blocks[1].text,
            "We ship daily.\nEven on Saturday.\n\nSecond para.\n\n# not a heading"
        );
        assert_eq!(doc.blocks[2].text, "| a | b |\n| 1 | 2 |");
    }

    #[test]
    fn text_encodings() {
        let doc = extract(
            Format::Text,
            b"\xEF\xBB\xBFhello  world\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(doc.blocks[0].text, "hello world");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("caf\u{e9}".encode_utf16().flat_map(|u| u.to_le_bytes()))
            .collect();
        let doc = extract(Format::Text, &utf16, &Limits::default()).unwrap();
        assert_eq!(doc.blocks[0].text, "caf\u{e9}");
        let utf16be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain("ok".encode_utf16().flat_map(|u| u.to_be_bytes()))
            .collect();
        assert_eq!(
            extract(Format::Text, &utf16be, &Limits::default())
                .unwrap()
                .blocks[0]
                .text,
            "ok"
        );
        for format in [Format::Text, Format::Csv, Format::Markdown] {
            assert!(matches!(
                extract(format, b"caf\xe9 au lait", &Limits::default()),
                Err(ExtractError::NotUtf8)
            ));
        }
    }

    #[test]
    fn blank_files_have_no_text() {
        for format in [Format::Text, Format::Markdown, Format::Html, Format::Csv] {
            for bytes in [&b""[..], b"  \n\t\r\n  ", b"\xEF\xBB\xBF \n"] {
                let err = extract(format, bytes, &Limits::default()).unwrap_err();
                assert!(matches!(err, ExtractError::NoText), "{format:?}: {err:?}");
            }
        }
        let err = extract(
            Format::Docx,
            &fixtures::docx(&[(None, "  ")]),
            &Limits::default(),
        );
        assert!(matches!(err, Err(ExtractError::NoText)));
    }

    #[test]
    fn csv_rows_become_lines_in_groups() {
        let mut csv = String::from("Product,Price,Notes\n");
        csv.push_str("\"Widget, large\",10,\"says \"\"hi\"\"\nand more\"\n");
        for i in 0..44 {
            csv.push_str(&format!("Item {i},{i},\n"));
        }
        let doc = extract(Format::Csv, csv.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(doc.blocks.len(), 3, "45 rows in groups of 20");
        let first = doc.blocks[0].text.lines().next().unwrap();
        assert_eq!(
            first,
            "Product: Widget, large; Price: 10; Notes: says \"hi\" and more"
        );
        assert_eq!(
            doc.blocks[0].text.lines().nth(1),
            Some("Product: Item 0; Price: 0")
        );
        assert_eq!(doc.blocks[2].text.lines().count(), 5);
        let semi = extract(Format::Csv, b"a;b\n1;2\n", &Limits::default()).unwrap();
        assert_eq!(semi.blocks[0].text, "a: 1; b: 2");
    }

    #[test]
    fn text_over_char_limit_is_too_large() {
        let limits = Limits {
            max_text_chars: 100,
            ..Limits::default()
        };
        let err = extract(Format::Text, "word ".repeat(100).as_bytes(), &limits).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)), "{err:?}");
    }
}
