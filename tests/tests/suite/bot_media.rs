//! The bot's media assets through `/bot-config/media`: uploads of every kind with their
//! thumbnails (a downscaled image, a video's own poster or the generated one, none for audio
//! and documents), the file streamed back as stored, renaming, deletion with the files, other
//! organizations seeing nothing, agents reading only, and bad uploads named field by field
//! with nothing left behind.

use std::{io::Cursor, path::PathBuf};

use chrono::{DateTime, Utc};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::{
    multipart::{Form, Part},
    Method,
};
use serde_json::{json, Value};
use uuid::Uuid;
use wharf_shared::bot::media::poster_png;
use wharf_tests::{OrgAdmin, Resp, TestApp};

const BASE: &str = "/api/v1/bot-config/media";

/// An api with its own blob directory (removed at the end) and an organization's admin.
struct Media {
    app: TestApp,
    admin: OrgAdmin,
    blobs: PathBuf,
}

impl Media {
    async fn start() -> Self {
        let blobs =
            std::env::temp_dir().join(format!("wharf-bot-media-{}", Uuid::new_v4().simple()));
        let app = TestApp::spawn_with(&[("BLOB_DIR", blobs.to_str().unwrap())]).await;
        let admin = app.register_org("Media Co").await;
        Media { app, admin, blobs }
    }

    async fn upload(&self, token: &str, form: Form) -> Resp {
        self.app.post_multipart(BASE, token, form).await
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Resp {
        self.app.request(method, path, Some(token), body).await
    }

    /// Every file under the organization's asset directory (temporary ones included).
    fn files_of(&self, org_id: Uuid) -> Vec<PathBuf> {
        let dir = self.blobs.join("bot-media").join(org_id.to_string());
        match std::fs::read_dir(&dir) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    async fn rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM bot_media")
            .fetch_one(&self.app.db.pool)
            .await
            .unwrap()
    }
}

impl Drop for Media {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.blobs);
    }
}

fn part(bytes: Vec<u8>, filename: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(filename.to_string())
        .mime_str(mime)
        .unwrap()
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// A real PNG of `width`×`height` with a gradient.
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(width, height, |x, y| Rgb([x as u8, y as u8, 128]));
    encode(DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn solid(width: u32, height: u32, colour: [u8; 3], format: ImageFormat) -> Vec<u8> {
    let img = RgbImage::from_pixel(width, height, Rgb(colour));
    encode(DynamicImage::ImageRgb8(img), format)
}

/// The first bytes of an MP4 (an `ftyp` box) and some payload: we never decode video.
fn mp4() -> Vec<u8> {
    let mut bytes = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    bytes.extend(std::iter::repeat_n(0x42, 2000));
    bytes
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A decompression bomb: a valid 100-byte PNG that declares a 30000×30000 picture.
fn png_bomb() -> Vec<u8> {
    let mut ihdr = 30_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&30_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("a thumbnail decodes")
}

fn loc_of(entry: &Value) -> String {
    entry["loc"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(".")
}

/// The location of every entry of a 422 (`body.file`), in order.
fn locs(resp: &Resp) -> Vec<String> {
    resp.body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("a 422 list, got {}", resp.body))
        .iter()
        .map(loc_of)
        .collect()
}

/// The message of the 422 entry at `loc`.
fn message(resp: &Resp, loc: &str) -> String {
    let entry = resp.body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| loc_of(e) == loc)
        .unwrap_or_else(|| panic!("no {loc} in {}", resp.body));
    entry["msg"].as_str().unwrap().to_string()
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn an_image_is_listed_served_as_uploaded_and_thumbnailed() {
    let m = Media::start().await;
    let token = m.admin.token.clone();
    let bytes = png(800, 400);
    let created = m
        .upload(
            &token,
            Form::new()
                .part("file", part(bytes.clone(), "prices.png", "image/png"))
                .text("name", "  Price list ")
                .text("description", "Our prices for 2025"),
        )
        .await
        .expect(201);
    let d = created.data().clone();
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["name"], "Price list");
    assert_eq!(d["description"], "Our prices for 2025");
    assert_eq!(d["mediaType"], "IMAGE");
    assert_eq!(d["mimeType"], "image/png");
    assert_eq!(d["size"], bytes.len());
    assert_eq!(d["filename"], "prices.png");
    assert_eq!(d["hasThumbnail"], true);
    assert_eq!(d["fileUrl"], format!("{BASE}/{id}/file"));
    assert_eq!(d["thumbnailUrl"], format!("{BASE}/{id}/thumbnail"));
    assert!(d["createdAt"].is_string() && d["updatedAt"].is_string());

    let (status, headers, body) = m.app.get_bytes(&format!("{BASE}/{id}/file"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes, "the file comes back byte for byte");
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(header(&headers, "content-length"), bytes.len().to_string());
    assert_eq!(
        header(&headers, "content-disposition"),
        "inline; filename=\"prices.png\""
    );

    let (status, headers, thumb) = m
        .app
        .get_bytes(&format!("{BASE}/{id}/thumbnail"), &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    let thumb = decode(&thumb);
    assert_eq!(
        (thumb.width(), thumb.height()),
        (320, 160),
        "320 px on the long side"
    );

    // On disk: the file and its thumbnail, nothing else.
    let dir = m.blobs.join("bot-media").join(m.admin.org_id.to_string());
    assert_eq!(std::fs::read(dir.join(&id)).unwrap(), bytes);
    assert!(dir.join(format!("{id}.thumb.png")).is_file());
    assert_eq!(m.files_of(m.admin.org_id).len(), 2);
    let created_by: Option<Uuid> = sqlx::query_scalar("SELECT created_by FROM bot_media")
        .fetch_one(&m.app.db.pool)
        .await
        .unwrap();
    assert_eq!(created_by, Some(m.admin.user_id));

    // A small JPEG without a name: named after its file, its thumbnail keeps its size, and the
    // list shows the newest first.
    let jpeg = solid(100, 50, [10, 200, 30], ImageFormat::Jpeg);
    let second = m
        .upload(
            &token,
            Form::new().part("file", part(jpeg, "logo.jpg", "image/jpeg")),
        )
        .await
        .expect(201);
    let second_id = second.data()["id"].as_str().unwrap().to_string();
    assert_eq!(second.data()["name"], "logo.jpg");
    assert_eq!(second.data()["description"], Value::Null);
    let (_, _, small) = m
        .app
        .get_bytes(&format!("{BASE}/{second_id}/thumbnail"), &token)
        .await;
    let small = decode(&small);
    assert_eq!((small.width(), small.height()), (100, 50));

    // WebP, as Meta's stickers are: decoded for its thumbnail too.
    let webp = solid(600, 300, [30, 60, 200], ImageFormat::WebP);
    let third = m
        .upload(
            &token,
            Form::new().part("file", part(webp, "sticker.webp", "image/webp")),
        )
        .await
        .expect(201);
    assert_eq!(third.data()["mediaType"], "IMAGE");
    let (_, _, thumb) = m
        .app
        .get_bytes(third.data()["thumbnailUrl"].as_str().unwrap(), &token)
        .await;
    let thumb = decode(&thumb).to_rgb8();
    assert_eq!(thumb.dimensions(), (320, 160));
    assert_eq!(thumb.get_pixel(10, 10).0, [30, 60, 200]);
    let third_id = third.data()["id"].as_str().unwrap().to_string();

    let list = m.call(Method::GET, BASE, &token, None).await.expect(200);
    let ids: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [third_id.as_str(), second_id.as_str(), id.as_str()]);
    assert_eq!(list.data()[2], d, "the list shows what the upload answered");
}

#[tokio::test]
async fn videos_get_a_poster_audio_and_documents_none() {
    let m = Media::start().await;
    let token = m.admin.token.clone();

    let video = m
        .upload(
            &token,
            Form::new().part("file", part(mp4(), "tour.mp4", "video/mp4")),
        )
        .await
        .expect(201);
    assert_eq!(video.data()["mediaType"], "VIDEO");
    assert_eq!(video.data()["hasThumbnail"], true);
    let (status, headers, poster) = m
        .app
        .get_bytes(video.data()["thumbnailUrl"].as_str().unwrap(), &token)
        .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert_eq!(poster, poster_png(), "the generated poster");
    let poster = decode(&poster).to_rgb8();
    assert_eq!(poster.dimensions(), (320, 180));
    assert!(
        poster.get_pixel(3, 3).0.iter().all(|&c| c < 0x40),
        "a dark frame"
    );
    assert!(
        poster.get_pixel(160, 90).0.iter().all(|&c| c > 0xE0),
        "a light play sign"
    );

    // A video with its own poster: that one, downscaled.
    let own = solid(640, 480, [220, 20, 20], ImageFormat::Png);
    let video = m
        .upload(
            &token,
            Form::new()
                .part("file", part(mp4(), "clip.3gp", "video/3gpp"))
                .part("thumbnail", part(own, "poster.png", "image/png")),
        )
        .await
        .expect(201);
    let (_, _, thumb) = m
        .app
        .get_bytes(video.data()["thumbnailUrl"].as_str().unwrap(), &token)
        .await;
    let thumb = decode(&thumb).to_rgb8();
    assert_eq!(thumb.dimensions(), (320, 240));
    assert_eq!(thumb.get_pixel(100, 100).0, [220, 20, 20]);
    // The poster's upload is not left next to the files.
    assert_eq!(m.files_of(m.admin.org_id).len(), 4);

    let mut mp3 = b"ID3\x04\0\0\0\0\0\0".to_vec();
    mp3.extend(std::iter::repeat_n(0x55, 500));
    let audio = m
        .upload(
            &token,
            Form::new().part("file", part(mp3.clone(), "jingle.mp3", "audio/mpeg")),
        )
        .await
        .expect(201);
    assert_eq!(audio.data()["mediaType"], "AUDIO");
    assert_eq!(audio.data()["hasThumbnail"], false);
    assert_eq!(audio.data()["thumbnailUrl"], Value::Null);
    let id = audio.data()["id"].as_str().unwrap();
    let none = m
        .call(Method::GET, &format!("{BASE}/{id}/thumbnail"), &token, None)
        .await
        .expect(404);
    assert!(
        none.body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("this asset has no thumbnail"),
        "{}",
        none.body
    );
    let (_, headers, body) = m.app.get_bytes(&format!("{BASE}/{id}/file"), &token).await;
    assert_eq!(body, mp3);
    assert_eq!(header(&headers, "content-type"), "audio/mpeg");

    let pdf = b"%PDF-1.7\n% a catalogue\n".to_vec();
    let doc = m
        .upload(
            &token,
            Form::new().part(
                "file",
                part(pdf.clone(), "Catálogo 2025.pdf", "application/pdf"),
            ),
        )
        .await
        .expect(201);
    assert_eq!(doc.data()["mediaType"], "DOCUMENT");
    assert_eq!(doc.data()["hasThumbnail"], false);
    let (_, headers, body) = m
        .app
        .get_bytes(doc.data()["fileUrl"].as_str().unwrap(), &token)
        .await;
    assert_eq!(body, pdf);
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    assert_eq!(
        header(&headers, "content-disposition"),
        "inline; filename=\"Cat_logo 2025.pdf\"; filename*=UTF-8''Cat%C3%A1logo%202025%2Epdf"
    );
}

#[tokio::test]
async fn rename_describe_and_delete_with_the_files() {
    let m = Media::start().await;
    let token = m.admin.token.clone();
    let created = m
        .upload(
            &token,
            Form::new().part("file", part(png(400, 400), "menu.png", "image/png")),
        )
        .await
        .expect(201);
    let id = created.data()["id"].as_str().unwrap().to_string();
    let path = format!("{BASE}/{id}");

    let renamed = m
        .call(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"name": " Lunch menu ", "description": "Weekdays only"})),
        )
        .await
        .expect(200);
    assert_eq!(renamed.data()["name"], "Lunch menu");
    assert_eq!(renamed.data()["description"], "Weekdays only");
    assert_eq!(
        renamed.data()["filename"],
        "menu.png",
        "the file stays as it was"
    );
    let at = |r: &Resp| {
        r.data()["updatedAt"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    assert!(at(&renamed) > at(&created), "updatedAt moves");
    let cleared = m
        .call(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"description": null})),
        )
        .await
        .expect(200);
    assert_eq!(cleared.data()["description"], Value::Null);
    assert_eq!(cleared.data()["name"], "Lunch menu");

    let bad = m
        .call(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"name": " ", "description": "x".repeat(1001)})),
        )
        .await
        .expect(422);
    assert_eq!(locs(&bad), ["body.name", "body.description"]);
    let long = m
        .call(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"name": "n".repeat(201)})),
        )
        .await
        .expect(422);
    assert_eq!(locs(&long), ["body.name"]);
    let unknown = m
        .call(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"mediaType": "VIDEO"})),
        )
        .await
        .expect(422);
    assert_eq!(unknown.status, 422);
    m.call(
        Method::PATCH,
        &format!("{BASE}/{}", Uuid::new_v4()),
        &token,
        Some(json!({"name": "x"})),
    )
    .await
    .expect(404);
    m.call(
        Method::PATCH,
        &format!("{BASE}/not-an-id"),
        &token,
        Some(json!({"name": "x"})),
    )
    .await
    .expect(404);

    let dir = m.blobs.join("bot-media").join(m.admin.org_id.to_string());
    assert!(dir.join(&id).is_file());
    let deleted = m.call(Method::DELETE, &path, &token, None).await;
    assert_eq!(deleted.status, 204);
    assert!(!dir.join(&id).exists(), "the file is removed");
    assert!(
        !dir.join(format!("{id}.thumb.png")).exists(),
        "the thumbnail too"
    );
    assert_eq!(m.rows().await, 0);
    for route in [format!("{path}/file"), format!("{path}/thumbnail")] {
        m.call(Method::GET, &route, &token, None).await.expect(404);
    }
    m.call(Method::DELETE, &path, &token, None)
        .await
        .expect(404);
    let list = m.call(Method::GET, BASE, &token, None).await.expect(200);
    assert_eq!(list.data(), &json!([]));
}

#[tokio::test]
async fn another_organization_sees_nothing() {
    let m = Media::start().await;
    let created = m
        .upload(
            &m.admin.token,
            Form::new().part("file", part(png(50, 50), "a.png", "image/png")),
        )
        .await
        .expect(201);
    let id = created.data()["id"].as_str().unwrap().to_string();
    let other = m.app.register_org("Other Co").await;
    let path = format!("{BASE}/{id}");

    let list = m
        .call(Method::GET, BASE, &other.token, None)
        .await
        .expect(200);
    assert_eq!(list.data(), &json!([]));
    for route in [format!("{path}/file"), format!("{path}/thumbnail")] {
        m.call(Method::GET, &route, &other.token, None)
            .await
            .expect(404);
    }
    m.call(
        Method::PATCH,
        &path,
        &other.token,
        Some(json!({"name": "mine"})),
    )
    .await
    .expect(404);
    m.call(Method::DELETE, &path, &other.token, None)
        .await
        .expect(404);

    // Untouched for its owner.
    let (status, _, _) = m
        .app
        .get_bytes(&format!("{path}/file"), &m.admin.token)
        .await;
    assert_eq!(status, 200);
    let mine = m
        .call(Method::GET, BASE, &m.admin.token, None)
        .await
        .expect(200);
    assert_eq!(mine.data()[0]["name"], "a.png");
}

#[tokio::test]
async fn the_routes_are_in_the_openapi_document() {
    let app = TestApp::spawn().await;
    let spec = app
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    let paths = &spec.body["paths"];
    for (path, methods) in [
        (BASE.to_string(), &["get", "post"][..]),
        (format!("{BASE}/{{id}}"), &["patch", "delete"][..]),
        (format!("{BASE}/{{id}}/file"), &["get"][..]),
        (format!("{BASE}/{{id}}/thumbnail"), &["get"][..]),
    ] {
        for method in methods {
            assert!(paths[&path][method].is_object(), "{method} {path}");
        }
    }
    let upload = &paths[BASE]["post"]["requestBody"]["content"]["multipart/form-data"];
    assert!(upload.is_object(), "the upload is documented as multipart");
}

#[tokio::test]
async fn agents_read_but_only_admins_change() {
    let m = Media::start().await;
    let created = m
        .upload(
            &m.admin.token,
            Form::new().part("file", part(png(60, 60), "a.png", "image/png")),
        )
        .await
        .expect(201);
    let id = created.data()["id"].as_str().unwrap().to_string();
    let (_, agent) = m.app.create_user(&m.admin, "AGENT").await;

    let denied = m
        .upload(
            &agent,
            Form::new().part("file", part(png(60, 60), "b.png", "image/png")),
        )
        .await
        .expect(403);
    assert!(denied.body["detail"].as_str().unwrap().contains("ADMIN"));
    m.call(
        Method::PATCH,
        &format!("{BASE}/{id}"),
        &agent,
        Some(json!({"name": "x"})),
    )
    .await
    .expect(403);
    m.call(Method::DELETE, &format!("{BASE}/{id}"), &agent, None)
        .await
        .expect(403);
    assert_eq!(m.rows().await, 1);
    assert_eq!(
        m.files_of(m.admin.org_id).len(),
        2,
        "no file from the agent"
    );

    let list = m.call(Method::GET, BASE, &agent, None).await.expect(200);
    assert_eq!(list.data().as_array().unwrap().len(), 1);
    let (status, _, _) = m.app.get_bytes(&format!("{BASE}/{id}/file"), &agent).await;
    assert_eq!(status, 200);
    let (status, _, _) = m
        .app
        .get_bytes(&format!("{BASE}/{id}/thumbnail"), &agent)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bad_uploads_name_every_field_and_leave_nothing() {
    let m = Media::start().await;
    let token = m.admin.token.clone();
    let org = m.admin.org_id;
    let check_nothing_left = |what: &str, m: &Media| {
        let files = m.files_of(org);
        assert!(files.is_empty(), "{what}: files left behind: {files:?}");
    };

    let none = m
        .upload(&token, Form::new().text("name", "No file"))
        .await
        .expect(422);
    assert_eq!(locs(&none), ["body.file"]);
    assert_eq!(none.body["detail"][0]["type"], "missing");

    let exe = m
        .upload(
            &token,
            Form::new().part(
                "file",
                part(
                    b"MZ\x90\0\x03".to_vec(),
                    "setup.exe",
                    "application/x-msdownload",
                ),
            ),
        )
        .await
        .expect(422);
    assert_eq!(locs(&exe), ["body.file"]);
    assert!(message(&exe, "body.file").contains("cannot be sent"));
    check_nothing_left("unsupported type", &m);

    let fake = m
        .upload(
            &token,
            Form::new().part("file", part(b"just text".to_vec(), "fake.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&fake), ["body.file"]);
    assert!(message(&fake, "body.file").contains("content"));
    check_nothing_left("content not of its type", &m);

    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(5 * 1024 * 1024 + 1, 0);
    let oversize = m
        .upload(
            &token,
            Form::new().part("file", part(big, "huge.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&oversize), ["body.file"]);
    assert!(message(&oversize, "body.file").contains("5 MB"));
    check_nothing_left("oversize image", &m);

    // Every wrong field at once.
    let many = m
        .upload(
            &token,
            Form::new()
                .part(
                    "file",
                    part(b"MZ".to_vec(), "x.exe", "application/x-msdownload"),
                )
                .text("name", "n".repeat(201))
                .text("description", "d".repeat(1001)),
        )
        .await
        .expect(422);
    assert_eq!(locs(&many), ["body.name", "body.description", "body.file"]);

    let empty = m
        .upload(
            &token,
            Form::new()
                .part("file", part(Vec::new(), "empty.pdf", "application/pdf"))
                .text("name", "   "),
        )
        .await
        .expect(422);
    assert_eq!(locs(&empty), ["body.name", "body.file"]);

    // A decompression bomb: refused by the decoder's limits, not decoded.
    let bomb = m
        .upload(
            &token,
            Form::new().part("file", part(png_bomb(), "bomb.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&bomb), ["body.file"]);
    assert!(
        message(&bomb, "body.file").contains("too large"),
        "{}",
        bomb.body
    );
    check_nothing_left("decompression bomb", &m);

    let mut broken = b"\x89PNG\r\n\x1a\n".to_vec();
    broken.extend_from_slice(b"not really a png at all");
    let broken = m
        .upload(
            &token,
            Form::new().part("file", part(broken, "broken.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&broken), ["body.file"]);
    assert!(message(&broken, "body.file").contains("cannot be read"));
    check_nothing_left("unreadable image", &m);

    // Thumbnails: only for videos, only JPEG or PNG that really are.
    let on_image = m
        .upload(
            &token,
            Form::new()
                .part("file", part(png(20, 20), "a.png", "image/png"))
                .part("thumbnail", part(png(20, 20), "t.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&on_image), ["body.thumbnail"]);
    let fake_poster = m
        .upload(
            &token,
            Form::new()
                .part("file", part(mp4(), "v.mp4", "video/mp4"))
                .part("thumbnail", part(b"text".to_vec(), "t.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&fake_poster), ["body.thumbnail"]);
    let gif_poster = m
        .upload(
            &token,
            Form::new()
                .part("file", part(mp4(), "v.mp4", "video/mp4"))
                .part("thumbnail", part(b"GIF89a".to_vec(), "t.gif", "image/gif")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&gif_poster), ["body.thumbnail"]);
    let mut broken_poster = b"\x89PNG\r\n\x1a\n".to_vec();
    broken_poster.extend_from_slice(b"garbage");
    let broken_poster = m
        .upload(
            &token,
            Form::new()
                .part("file", part(mp4(), "v.mp4", "video/mp4"))
                .part("thumbnail", part(broken_poster, "t.png", "image/png")),
        )
        .await
        .expect(422);
    assert_eq!(locs(&broken_poster), ["body.thumbnail"]);

    assert_eq!(m.rows().await, 0, "no row for any refused upload");
    check_nothing_left("all refused uploads", &m);
}
