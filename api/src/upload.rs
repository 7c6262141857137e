//! Uploaded files: streamed to the blob store as they arrive (never held in memory whole),
//! bounded by the route's limit (`crate::edge::body_limit`), and checked against the type the
//! client declared by their first bytes.

use std::path::{Path, PathBuf};

use axum::extract::multipart::{Field, MultipartError};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::error::ApiError;

/// How many leading bytes are kept to recognise a file's type.
const HEAD_BYTES: usize = 64;

/// A file field written to a temporary file next to where it will be kept. Dropped without
/// [`ReceivedFile::keep_as`], the temporary file is removed.
#[derive(Debug)]
pub struct ReceivedFile {
    temp_path: PathBuf,
    pub size: u64,
    /// The declared MIME type (`application/octet-stream` when the client gave none).
    pub mime: String,
    pub filename: String,
    head: Vec<u8>,
    kept: bool,
}

/// The answer for a malformed or too large multipart body.
pub fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("The upload is larger than this route accepts".into())
    } else {
        ApiError::BadRequest(format!("Malformed multipart body: {}", err.body_text()))
    }
}

/// The 422 for a multipart body without its `file` field.
pub fn file_required() -> ApiError {
    ApiError::missing_field("file")
}

/// For routes whose only field is `file`: streams it into `dir` (other fields are ignored);
/// a body without it is a 422 naming `file`.
pub async fn receive_only_file(
    multipart: &mut axum::extract::Multipart,
    default_name: &str,
    dir: &Path,
) -> Result<ReceivedFile, ApiError> {
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("file") {
            file = Some(receive(field, default_name, dir).await?);
        }
    }
    file.ok_or_else(file_required)
}

/// Streams a multipart file field into `dir` (created if missing).
pub async fn receive(
    mut field: Field<'_>,
    default_name: &str,
    dir: &Path,
) -> Result<ReceivedFile, ApiError> {
    let filename: String = field
        .file_name()
        .unwrap_or(default_name)
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mime = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_string();
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let mut received = ReceivedFile {
        temp_path: dir.join(format!(".upload-{}", Uuid::new_v4().simple())),
        size: 0,
        mime,
        filename: if filename.is_empty() {
            default_name.to_string()
        } else {
            filename
        },
        head: Vec::new(),
        kept: false,
    };
    let mut file = tokio::fs::File::create(&received.temp_path)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if received.head.len() < HEAD_BYTES {
            let take = (HEAD_BYTES - received.head.len()).min(chunk.len());
            received.head.extend_from_slice(&chunk[..take]);
        }
        received.size += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    file.flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(received)
}

impl ReceivedFile {
    /// The file's first bytes (up to 64), to recognise its type.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// A 422 on `field` when the bytes are not of the declared type.
    pub fn check_type(&self, field: &str) -> Result<(), ApiError> {
        if content_matches(&self.mime, &self.head) {
            Ok(())
        } else {
            Err(ApiError::invalid_field(
                field,
                format!("the file's content is not {}", self.mime),
            ))
        }
    }

    /// Moves the file to `path` (created directories included) for good.
    pub async fn keep_as(mut self, path: &Path) -> Result<(), ApiError> {
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
        }
        tokio::fs::rename(&self.temp_path, path)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for ReceivedFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Whether `head` (a file's first bytes) fits `mime`, by the signatures of the types Meta
/// accepts. Types we have no signature for are taken as declared.
pub fn content_matches(mime: &str, head: &[u8]) -> bool {
    let mime = mime
        .split(';')
        .next()
        .unwrap_or(mime)
        .trim()
        .to_ascii_lowercase();
    let at = |offset: usize, sig: &[u8]| head.get(offset..offset + sig.len()) == Some(sig);
    match mime.as_str() {
        "image/jpeg" => at(0, &[0xFF, 0xD8, 0xFF]),
        "image/png" => at(0, &[0x89, b'P', b'N', b'G']),
        "image/webp" => at(0, b"RIFF") && at(8, b"WEBP"),
        "image/gif" => at(0, b"GIF8"),
        "video/mp4" | "video/3gpp" | "audio/mp4" | "audio/m4a" | "audio/x-m4a" => at(4, b"ftyp"),
        "audio/ogg" | "audio/opus" => at(0, b"OggS"),
        "audio/mpeg" => {
            at(0, b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0)
        }
        "audio/aac" => {
            at(0, b"ADIF") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xF6 == 0xF0)
        }
        "audio/amr" => at(0, b"#!AMR"),
        "application/pdf" => at(0, b"%PDF-"),
        "application/zip" => at(0, b"PK\x03\x04"),
        m if m.starts_with("application/vnd.openxmlformats-officedocument.") => {
            at(0, b"PK\x03\x04")
        }
        "application/msword" | "application/vnd.ms-excel" | "application/vnd.ms-powerpoint" => {
            at(0, &[0xD0, 0xCF, 0x11, 0xE0])
        }
        m if m.starts_with("text/") => match std::str::from_utf8(head) {
            // A multi-byte character cut at the end of the head is fine.
            Ok(_) => !head.contains(&0),
            Err(e) => e.error_len().is_none() && !head[..e.valid_up_to()].contains(&0),
        },
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::content_matches;

    #[test]
    fn signatures() {
        assert!(content_matches("image/png", b"\x89PNG\r\n\x1a\n...."));
        assert!(!content_matches("image/png", b"GIF89a"));
        assert!(content_matches("image/jpeg", &[0xFF, 0xD8, 0xFF, 0xE0]));
        assert!(!content_matches("image/jpeg", b"hello"));
        assert!(content_matches("application/pdf", b"%PDF-1.7"));
        assert!(!content_matches("application/pdf", b"<html>"));
        assert!(content_matches("video/mp4", b"\0\0\0\x18ftypmp42"));
        assert!(content_matches(
            "text/plain; charset=utf-8",
            "héllo".as_bytes()
        ));
        assert!(!content_matches("text/plain", b"a\0b"));
        assert!(content_matches("application/x-unknown", b"anything"));
    }
}
