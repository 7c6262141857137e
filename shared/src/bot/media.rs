//! Bot media assets (`bot_media`): files an organization keeps for the bot to send to customers
//! — images, videos, audio and documents of the types Meta accepts for sending, within Meta's
//! size limits ([`accepted`]; ARCHITECTURE.md, "Meta facts").
//!
//! The bytes live under `BLOB_DIR` at [`blob_path`] (`bot-media/<org_id>/<id>`), with a PNG
//! thumbnail at [`thumbnail_blob_path`] (`<id>.thumb.png`, at most [`THUMBNAIL_MAX_SIDE`]
//! pixels on its long side):
//!
//! - an image gets a downscaled copy of itself, made at upload;
//! - a video gets the poster image its uploader sent (JPEG or PNG, downscaled), or else a
//!   neutral generated poster ([`poster_png`]: a dark 320×180 frame with a play triangle).
//!   Taking a real frame out of the video would need ffmpeg, a system dependency we do not
//!   install, so the server never decodes video;
//! - audio and documents have none.
//!
//! Images are decoded with limits ([`MAX_DECODE_PIXELS`], [`MAX_DECODE_ALLOC`]), so a
//! decompression bomb — a small file declaring a huge picture — is refused as
//! [`ThumbnailError::TooLarge`] instead of taking the memory, and decoding runs on tokio's
//! blocking threads. The API (`/bot-config/media`) validates the upload, moves the file to its
//! blob path and calls [`create`]; [`delete`] removes the row and its files.

use std::{
    io::{BufReader, Cursor},
    path::{Path, PathBuf},
    sync::OnceLock,
};

use chrono::{DateTime, Utc};
use image::{
    metadata::Orientation, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader,
    Limits, Rgb, RgbImage,
};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

const MB: u64 = 1024 * 1024;

/// Longest name of an asset, in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest description of an asset, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1000;
/// Longest stored file name, in characters (longer ones are cut).
pub const MAX_FILENAME_LEN: usize = 255;
/// A thumbnail's long side, in pixels.
pub const THUMBNAIL_MAX_SIDE: u32 = 320;
/// The generated video poster's size.
pub const POSTER_SIZE: (u32, u32) = (320, 180);
/// The largest picture we decode: 40 megapixels.
pub const MAX_DECODE_PIXELS: u64 = 40_000_000;
/// The most memory one decode may take.
pub const MAX_DECODE_ALLOC: u64 = 256 * MB;
/// A video's poster image as uploaded: JPEG or PNG, like Meta's images.
pub const MAX_THUMBNAIL_UPLOAD_BYTES: u64 = 5 * MB;

/// What Meta sends an asset as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Image,
    Video,
    Audio,
    Document,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "IMAGE",
            Self::Video => "VIDEO",
            Self::Audio => "AUDIO",
            Self::Document => "DOCUMENT",
        }
    }
}

/// The types an asset may have, for error messages.
pub const ACCEPTED_TYPES: &str = "JPEG, PNG or WebP images; MP4 or 3GPP videos; AAC, M4A, MP3, \
    AMR or OGG audio; PDF, Word, Excel, PowerPoint or plain-text documents";

/// A MIME type without its parameters, in lower case (`Text/Plain; charset=utf-8` →
/// `text/plain`).
pub fn essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Meta's table of media it sends, by MIME type (an [`essence`]): what it is sent as and the
/// largest file Meta takes; `None` for a type Meta does not send. WebP is an image here but
/// Meta sends it only as a sticker, whose limit is 500 KB.
pub fn accepted(mime: &str) -> Option<(MediaType, u64)> {
    Some(match mime {
        "image/jpeg" | "image/png" => (MediaType::Image, 5 * MB),
        "image/webp" => (MediaType::Image, 500 * 1024),
        "video/mp4" | "video/3gpp" => (MediaType::Video, 16 * MB),
        "audio/aac" | "audio/mp4" | "audio/mpeg" | "audio/amr" | "audio/ogg" => {
            (MediaType::Audio, 16 * MB)
        }
        "application/pdf"
        | "application/msword"
        | "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        | "application/vnd.ms-excel"
        | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        | "application/vnd.ms-powerpoint"
        | "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        | "text/plain" => (MediaType::Document, 100 * MB),
        _ => return None,
    })
}

/// The decoder for an image MIME type (an [`essence`]) we make thumbnails from.
pub fn image_format(mime: &str) -> Option<ImageFormat> {
    match mime {
        "image/jpeg" => Some(ImageFormat::Jpeg),
        "image/png" => Some(ImageFormat::Png),
        "image/webp" => Some(ImageFormat::WebP),
        _ => None,
    }
}

/// The directory of an organization's assets, under `BLOB_DIR`.
pub fn org_dir(blob_dir: &Path, org_id: Uuid) -> PathBuf {
    blob_dir.join("bot-media").join(org_id.to_string())
}

/// Where an asset's file is kept, relative to `BLOB_DIR`.
pub fn blob_path(org_id: Uuid, id: Uuid) -> String {
    format!("bot-media/{org_id}/{id}")
}

/// Where an asset's thumbnail is kept, relative to `BLOB_DIR`.
pub fn thumbnail_blob_path(org_id: Uuid, id: Uuid) -> String {
    format!("bot-media/{org_id}/{id}.thumb.png")
}

/// A stored relative path under `blob_dir`; `None` for anything but plain path segments (the
/// paths are built from ids, so that would be a corrupted row).
pub fn resolve(blob_dir: &Path, relative: &str) -> Option<PathBuf> {
    let plain = !relative.is_empty()
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\\'));
    plain.then(|| blob_dir.join(relative))
}

/// Why no thumbnail could be made of an image.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// Larger than [`MAX_DECODE_PIXELS`] or [`MAX_DECODE_ALLOC`] allow.
    #[error("the image is too large to process (at most {} megapixels)", MAX_DECODE_PIXELS / 1_000_000)]
    TooLarge,
    /// Not a readable image of its declared format.
    #[error("the file cannot be read as a {format} image ({reason})")]
    Unreadable {
        format: &'static str,
        reason: String,
    },
    /// The file could not be opened (ours to fix, not the client's).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Jpeg => "JPEG",
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        _ => "supported",
    }
}

fn classify(err: ImageError, format: ImageFormat) -> ThumbnailError {
    match err {
        ImageError::Limits(_) => ThumbnailError::TooLarge,
        other => ThumbnailError::Unreadable {
            format: format_name(format),
            reason: other.to_string(),
        },
    }
}

fn decode_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    limits
}

/// Decodes the image at `source` (of `format`) within the decode limits, turned upright by its
/// EXIF orientation. Blocking: call it from a blocking thread.
pub fn decode_image(source: &Path, format: ImageFormat) -> Result<DynamicImage, ThumbnailError> {
    let file = std::fs::File::open(source)?;
    let mut reader = ImageReader::with_format(BufReader::new(file), format);
    reader.limits(decode_limits());
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, format))?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_DECODE_PIXELS
        || decoder.total_bytes() > MAX_DECODE_ALLOC
    {
        return Err(ThumbnailError::TooLarge);
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, format))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// `image` as an 8-bit PNG no larger than [`THUMBNAIL_MAX_SIDE`] on its long side (a smaller
/// image keeps its size).
pub fn encode_thumbnail(image: &DynamicImage) -> Vec<u8> {
    let side = THUMBNAIL_MAX_SIDE;
    let small = if image.width() > side || image.height() > side {
        image.thumbnail(side, side)
    } else {
        image.clone()
    };
    let small = if small.color().has_alpha() {
        DynamicImage::ImageRgba8(small.to_rgba8())
    } else {
        DynamicImage::ImageRgb8(small.to_rgb8())
    };
    encode_png(&small)
}

fn encode_png(image: &DynamicImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .expect("encoding an 8-bit image as PNG in memory cannot fail");
    out.into_inner()
}

/// Makes the PNG thumbnail of the image at `source`, on a blocking thread.
pub async fn make_thumbnail(
    source: PathBuf,
    format: ImageFormat,
) -> Result<Vec<u8>, ThumbnailError> {
    tokio::task::spawn_blocking(move || {
        decode_image(&source, format).map(|image| encode_thumbnail(&image))
    })
    .await
    .map_err(|e| ThumbnailError::Io(std::io::Error::other(e)))?
}

/// The poster of a video that came without one: a dark 320×180 frame with a light play
/// triangle in a grey disc, as a PNG (drawn once).
pub fn poster_png() -> &'static [u8] {
    static POSTER: OnceLock<Vec<u8>> = OnceLock::new();
    POSTER.get_or_init(|| {
        let (width, height) = POSTER_SIZE;
        let (cx, cy) = (width as f32 / 2.0, height as f32 / 2.0);
        let image = RgbImage::from_fn(width, height, |x, y| {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            // A triangle pointing right: its base at dx = -14, its apex at (22, 0).
            let in_triangle = (-14.0..=22.0).contains(&dx) && dy.abs() <= 24.0 * (22.0 - dx) / 36.0;
            if in_triangle {
                Rgb([0xF2, 0xF2, 0xF2])
            } else if dx * dx + dy * dy <= 44.0 * 44.0 {
                Rgb([0x3A, 0x3F, 0x47])
            } else {
                Rgb([0x1C, 0x1F, 0x24])
            }
        });
        encode_png(&DynamicImage::ImageRgb8(image))
    })
}

/// An asset as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BotMedia {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// IMAGE, VIDEO, AUDIO or DOCUMENT.
    pub media_type: String,
    pub mime_type: String,
    pub size: i64,
    pub filename: String,
    /// Relative to `BLOB_DIR`.
    pub blob_path: String,
    /// Relative to `BLOB_DIR`; `None` for audio and documents.
    pub thumbnail_path: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, org_id, name, description, media_type, mime_type, size, filename, \
    blob_path, thumbnail_path, created_by, created_at, updated_at";

/// A new asset whose file is already at [`blob_path`]`(org_id, id)` under `BLOB_DIR`.
#[derive(Debug, Clone)]
pub struct NewAsset {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub media_type: MediaType,
    /// An [`essence`] that [`accepted`] knows.
    pub mime_type: String,
    pub size: u64,
    pub filename: String,
    pub created_by: Option<Uuid>,
    /// A video's poster image as its uploader sent it (a file under `BLOB_DIR`, and its
    /// format); removed once the thumbnail is made of it.
    pub poster_source: Option<(PathBuf, ImageFormat)>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The upload's `field` (`file` or `thumbnail`) cannot be made into a thumbnail: the
    /// client's mistake.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Makes the asset's thumbnail and stores its row. Takes charge of the files: on any error the
/// asset's file and thumbnail are removed, and the poster source is removed in every case, so
/// a refused upload leaves nothing behind.
/// `db` is used for the insert only, after the thumbnail is made: with a pool, no connection
/// is held while an image is decoded.
pub async fn create<'e>(
    db: impl PgExecutor<'e>,
    blob_dir: &Path,
    new: NewAsset,
) -> Result<BotMedia, CreateError> {
    let blob = blob_path(new.org_id, new.id);
    let thumb = thumbnail_blob_path(new.org_id, new.id);
    let result = store(db, blob_dir, &new, &blob, &thumb).await;
    if let Some((source, _)) = &new.poster_source {
        remove_file(source).await;
    }
    if result.is_err() {
        remove_file(&blob_dir.join(&blob)).await;
        remove_file(&blob_dir.join(&thumb)).await;
    }
    result
}

async fn store<'e>(
    db: impl PgExecutor<'e>,
    blob_dir: &Path,
    new: &NewAsset,
    blob: &str,
    thumb: &str,
) -> Result<BotMedia, CreateError> {
    let invalid = |field: &'static str| {
        move |e: ThumbnailError| match e {
            ThumbnailError::Io(e) => CreateError::Io(e),
            other => CreateError::Invalid {
                field,
                message: other.to_string(),
            },
        }
    };
    let thumbnail: Option<Vec<u8>> = match (new.media_type, &new.poster_source) {
        (MediaType::Image, _) => {
            let format = image_format(&new.mime_type).ok_or_else(|| CreateError::Invalid {
                field: "file",
                message: format!("{} is not an image type", new.mime_type),
            })?;
            Some(
                make_thumbnail(blob_dir.join(blob), format)
                    .await
                    .map_err(invalid("file"))?,
            )
        }
        (MediaType::Video, Some((source, format))) => Some(
            make_thumbnail(source.clone(), *format)
                .await
                .map_err(invalid("thumbnail"))?,
        ),
        (MediaType::Video, None) => Some(poster_png().to_vec()),
        (MediaType::Audio | MediaType::Document, _) => None,
    };
    if let Some(png) = &thumbnail {
        tokio::fs::write(blob_dir.join(thumb), png).await?;
    }
    let row = sqlx::query_as(&format!(
        "INSERT INTO bot_media (id, org_id, name, description, media_type, mime_type, size,
                                filename, blob_path, thumbnail_path, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.org_id)
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.media_type.as_str())
    .bind(&new.mime_type)
    .bind(new.size as i64)
    .bind(&new.filename)
    .bind(blob)
    .bind(thumbnail.as_ref().map(|_| thumb))
    .bind(new.created_by)
    .fetch_one(db)
    .await?;
    Ok(row)
}

/// The organization's assets, newest first.
pub async fn list(conn: &mut PgConnection, org_id: Uuid) -> Result<Vec<BotMedia>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_media WHERE org_id = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(org_id)
    .fetch_all(conn)
    .await
}

/// The organization's asset `id`; `None` when it has none of that id.
pub async fn fetch(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<BotMedia>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bot_media WHERE id = $1 AND org_id = $2"
    ))
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await
}

/// Changes to an asset's text; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
}

/// Applies `changes` to the organization's asset `id`; `None` when it has none of that id.
pub async fn update(
    conn: &mut PgConnection,
    org_id: Uuid,
    id: Uuid,
    changes: &Changes,
) -> Result<Option<BotMedia>, sqlx::Error> {
    if changes.name.is_none() && changes.description.is_none() {
        return fetch(conn, org_id, id).await;
    }
    sqlx::query_as(&format!(
        "UPDATE bot_media SET name = COALESCE($3, name),
                description = CASE WHEN $4 THEN $5 ELSE description END
          WHERE id = $1 AND org_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(org_id)
    .bind(&changes.name)
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .fetch_optional(conn)
    .await
}

/// Deletes the organization's asset `id` and then its file and thumbnail; `false` when it has
/// none of that id. A file that cannot be removed is logged, not an error: the row is gone.
pub async fn delete(
    conn: &mut PgConnection,
    blob_dir: &Path,
    org_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let paths: Option<(String, Option<String>)> = sqlx::query_as(
        "DELETE FROM bot_media WHERE id = $1 AND org_id = $2 RETURNING blob_path, thumbnail_path",
    )
    .bind(id)
    .bind(org_id)
    .fetch_optional(conn)
    .await?;
    let Some((blob, thumb)) = paths else {
        return Ok(false);
    };
    for path in std::iter::once(blob).chain(thumb) {
        match resolve(blob_dir, &path) {
            Some(full) => remove_file(&full).await,
            None => tracing::warn!(media_id = %id, path, "suspicious bot media path not removed"),
        }
    }
    Ok(true)
}

/// Removes a file; one already gone is fine, any other failure is logged.
async fn remove_file(path: &Path) {
    if let Err(err) = tokio::fs::remove_file(path).await {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %err, path = %path.display(), "could not remove a bot media file");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_table() {
        assert_eq!(accepted("image/png"), Some((MediaType::Image, 5 * MB)));
        assert_eq!(accepted("video/3gpp"), Some((MediaType::Video, 16 * MB)));
        assert_eq!(accepted("audio/ogg"), Some((MediaType::Audio, 16 * MB)));
        assert_eq!(
            accepted("text/plain"),
            Some((MediaType::Document, 100 * MB))
        );
        assert_eq!(accepted("application/x-msdownload"), None);
        assert_eq!(essence("Text/Plain; charset=utf-8"), "text/plain");
    }

    #[test]
    fn paths_are_plain() {
        let dir = Path::new("/blobs");
        assert!(resolve(dir, "bot-media/a/b").is_some());
        assert!(resolve(dir, "bot-media/../etc").is_none());
        assert!(resolve(dir, "/etc/passwd").is_none());
        assert!(resolve(dir, "").is_none());
    }

    #[test]
    fn poster_is_a_dark_frame_with_a_light_centre() {
        let poster = image::load_from_memory_with_format(poster_png(), ImageFormat::Png)
            .unwrap()
            .to_rgb8();
        assert_eq!(poster.dimensions(), POSTER_SIZE);
        assert!(poster.get_pixel(2, 2).0.iter().all(|&c| c < 0x40));
        assert!(poster.get_pixel(160, 90).0.iter().all(|&c| c > 0xE0));
    }

    #[test]
    fn thumbnails_fit_and_keep_small_images() {
        let big = DynamicImage::ImageRgb8(RgbImage::new(1000, 500));
        let thumb = image::load_from_memory(&encode_thumbnail(&big)).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
        let small = DynamicImage::ImageRgb8(RgbImage::new(40, 30));
        let thumb = image::load_from_memory(&encode_thumbnail(&small)).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (40, 30));
    }
}
