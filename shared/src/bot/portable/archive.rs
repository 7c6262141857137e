//! The ZIP form of an export: `bot-config.json` plus a `README.txt` saying what the archive is
//! (binary files, such as knowledge-base documents, will sit beside them). An uploaded file is
//! told to be a ZIP by its first bytes, never by its name.

use std::io::{Cursor, Read, Write};

use zip::{write::SimpleFileOptions, CompressionMethod, ZipArchive, ZipWriter};

use super::check::Problem;

/// The largest import file, and the largest `bot-config.json` inside a ZIP.
pub const MAX_IMPORT_BYTES: usize = 10 * 1024 * 1024;
/// The export document's name inside a ZIP.
pub const DOCUMENT_NAME: &str = "bot-config.json";

const README: &str = "Wharf bot config export\n\
\n\
bot-config.json is the bot config: its settings, system prompt and intents, plus, in a full\n\
export, the prompt's earlier versions. It never holds the provider's API key; set the key\n\
after importing.\n\
\n\
To import it, upload this ZIP (or bot-config.json alone) to POST /api/v1/bot-config/import\n\
as the multipart field `file`. The import creates a new draft config.\n";

/// Whether `bytes` start like a ZIP archive (a local file header, or the end record of an
/// empty archive).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// A ZIP holding `json` as `bot-config.json`, and the README.
pub fn write(json: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    zip.start_file(DOCUMENT_NAME, options)?;
    zip.write_all(json)?;
    zip.start_file("README.txt", options)?;
    zip.write_all(README.as_bytes())?;
    Ok(zip.finish()?.into_inner())
}

/// The export document of an uploaded file: the file itself, or the `bot-config.json` of a ZIP
/// (at its root, or in one folder, as re-zipping an extracted export gives).
pub fn document_bytes(file: &[u8]) -> Result<Vec<u8>, Problem> {
    if !is_zip(file) {
        return Ok(file.to_vec());
    }
    let mut zip = ZipArchive::new(Cursor::new(file)).map_err(|e| {
        Problem::file(format!(
            "the file looks like a ZIP archive but cannot be read ({e})"
        ))
    })?;
    // Names that are not valid text cannot be ours.
    let name = zip
        .file_names()
        .filter_map(Result::ok)
        .filter(|n| n == DOCUMENT_NAME || n.ends_with(&format!("/{DOCUMENT_NAME}")))
        .min_by_key(|n| n.len())
        .map(|n| n.into_owned())
        .ok_or_else(|| {
            Problem::file(format!(
                "the ZIP archive holds no {DOCUMENT_NAME}; upload a bot config export"
            ))
        })?;
    let unreadable = |e: &dyn std::fmt::Display| {
        Problem::file(format!(
            "{DOCUMENT_NAME} in the ZIP archive cannot be read ({e})"
        ))
    };
    let entry = zip.by_name(&name).map_err(|e| unreadable(&e))?;
    let too_large = || {
        Problem::file(format!(
            "{DOCUMENT_NAME} is larger than {} MB",
            MAX_IMPORT_BYTES / (1024 * 1024)
        ))
    };
    if entry.size() > MAX_IMPORT_BYTES as u64 {
        return Err(too_large());
    }
    // The declared size can lie: never inflate more than the limit.
    let mut json = Vec::new();
    entry
        .take(MAX_IMPORT_BYTES as u64 + 1)
        .read_to_end(&mut json)
        .map_err(|e| unreadable(&e))?;
    if json.len() > MAX_IMPORT_BYTES {
        return Err(too_large());
    }
    Ok(json)
}
