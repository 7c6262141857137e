//! Small valid files of the knowledge base's formats, made in code, for tests and the
//! benchmark. Always compiled (they are small); nothing here reads the disk.

use std::io::{Cursor, Write};

use lopdf::content::{Content, Operation};
use lopdf::{dictionary, Document, Object, Stream, StringFormat};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

/// Characters a PDF line holds before it wraps.
const PDF_LINE: usize = 90;

/// A PDF with one text page per entry: Helvetica 11 pt, lines wrapped at about 90 characters
/// (a `\n` in an entry also breaks the line). Characters outside Latin-1 become `?`.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    save(&mut pdf_document(pages))
}

/// A PDF whose trailer names an `/Encrypt` dictionary (standard security handler, a user
/// password that is not empty), so readers treat it as password protected. Its content is not
/// actually encrypted: it only has to be recognised, not opened.
pub fn pdf_encrypted() -> Vec<u8> {
    let mut doc = pdf_document(&["This text is behind a password."]);
    let encrypt = doc.add_object(dictionary! {
        "Filter" => "Standard",
        "V" => 1,
        "R" => 2,
        "Length" => 40,
        "P" => -44,
        "O" => Object::String((0u8..32).collect(), StringFormat::Hexadecimal),
        "U" => Object::String((0u8..32).map(|b| b.wrapping_mul(7)).collect(), StringFormat::Hexadecimal),
    });
    doc.trailer.set("Encrypt", encrypt);
    let id = Object::String(b"wharf-fixture-id".to_vec(), StringFormat::Hexadecimal);
    doc.trailer.set("ID", vec![id.clone(), id]);
    save(&mut doc)
}

fn save(doc: &mut Document) -> Vec<u8> {
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("writing a PDF to memory");
    out
}

fn pdf_document(pages: &[&str]) -> Document {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font },
    });
    let mut kids = Vec::new();
    for text in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![72.into(), 770.into()]),
        ];
        for (i, line) in wrap(text, PDF_LINE).iter().enumerate() {
            if i > 0 {
                operations.push(Operation::new("T*", vec![]));
            }
            let latin1: Vec<u8> = line
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect();
            operations.push(Operation::new(
                "Tj",
                vec![Object::String(latin1, StringFormat::Literal)],
            ));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }
            .encode()
            .expect("encoding page content");
        let content = doc.add_object(Stream::new(dictionary! {}, content));
        kids.push(
            doc.add_object(dictionary! {
                "Type" => "Page",
                "Parent" => pages_id,
                "Contents" => content,
            })
            .into(),
        );
    }
    let count = i64::try_from(kids.len()).unwrap_or(i64::MAX);
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog);
    doc.compress();
    doc
}

/// `text`'s lines wrapped at word boundaries to at most `width` characters (a longer word
/// stands alone). Blank lines are kept.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for source in text.split('\n') {
        let mut line = String::new();
        for word in source.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

const DOCUMENT_HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#;

const DOCUMENT_TAIL: &str = "<w:sectPr/></w:body></w:document>";

/// A DOCX with one paragraph per entry: (a paragraph style such as "Heading1" or "Title", or
/// none; the text). A `\t` in the text becomes a tab, a `\n` a line break.
pub fn docx(paragraphs: &[(Option<&str>, &str)]) -> Vec<u8> {
    let mut xml = String::from(DOCUMENT_HEAD);
    for (style, text) in paragraphs {
        xml.push_str("<w:p>");
        if let Some(style) = style {
            xml.push_str(&format!(
                r#"<w:pPr><w:pStyle w:val="{}"/></w:pPr>"#,
                quick_xml::escape::escape(*style)
            ));
        }
        xml.push_str("<w:r>");
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                xml.push_str("<w:br/>");
            }
            for (j, piece) in line.split('\t').enumerate() {
                if j > 0 {
                    xml.push_str("<w:tab/>");
                }
                xml.push_str(r#"<w:t xml:space="preserve">"#);
                xml.push_str(&quick_xml::escape::escape(piece));
                xml.push_str("</w:t>");
            }
        }
        xml.push_str("</w:r></w:p>");
    }
    xml.push_str(DOCUMENT_TAIL);
    let mut zip = docx_writer();
    zip.start_file("word/document.xml", deflated())
        .expect("zip entry");
    zip.write_all(xml.as_bytes()).expect("zip write");
    zip.finish().expect("zip finish").into_inner()
}

/// Bytes of spaces inside the bomb's document.
const BOMB_BYTES: usize = 200 * 1024 * 1024;

/// A DOCX whose `word/document.xml` inflates to 200 MiB (spaces inside one run of text): about
/// 200 KB on disk. Built streaming, so it never holds the 200 MiB.
pub fn docx_bomb() -> Vec<u8> {
    let mut zip = docx_writer();
    zip.start_file("word/document.xml", deflated().compression_level(Some(1)))
        .expect("zip entry");
    zip.write_all(DOCUMENT_HEAD.as_bytes()).expect("zip write");
    zip.write_all(br#"<w:p><w:r><w:t xml:space="preserve">"#)
        .expect("zip write");
    let spaces = vec![b' '; 1024 * 1024];
    for _ in 0..BOMB_BYTES / spaces.len() {
        zip.write_all(&spaces).expect("zip write");
    }
    zip.write_all(b"</w:t></w:r></w:p>").expect("zip write");
    zip.write_all(DOCUMENT_TAIL.as_bytes()).expect("zip write");
    zip.finish().expect("zip finish").into_inner()
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// A ZIP writer holding a DOCX's package parts other than the document.
fn docx_writer() -> ZipWriter<Cursor<Vec<u8>>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, body) in [
        ("[Content_Types].xml", CONTENT_TYPES),
        ("_rels/.rels", RELS),
    ] {
        zip.start_file(name, deflated()).expect("zip entry");
        zip.write_all(body.as_bytes()).expect("zip write");
    }
    zip
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn fixtures_have_their_magic_bytes() {
        assert!(pdf(&["x"]).starts_with(b"%PDF-"));
        assert!(pdf_encrypted().starts_with(b"%PDF-"));
        assert!(docx(&[(None, "x")]).starts_with(b"PK\x03\x04"));
    }

    #[test]
    fn wrap_keeps_lines_short() {
        let text = "word ".repeat(100);
        let lines = wrap(&text, 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20));
        assert_eq!(lines.join(" ").split(' ').count(), 100);
        assert_eq!(wrap("a\n\nb", 20), ["a", "", "b"]);
    }

    #[test]
    fn docx_bomb_is_small_and_cheap() {
        let started = Instant::now();
        let bomb = docx_bomb();
        let took = started.elapsed();
        assert!(bomb.len() < 2 * 1024 * 1024, "{} bytes", bomb.len());
        let mut zip = zip::ZipArchive::new(Cursor::new(bomb)).unwrap();
        let entry = zip.by_name("word/document.xml").unwrap();
        assert!(entry.size() > 200 * 1024 * 1024);
        // Generous for an unoptimised build on a busy machine; the brief is < 1 s.
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
