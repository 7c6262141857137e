//! Customer-originated messages: the simulator plays the WhatsApp user.
//!
//! A test says "customer X sends an image"; the simulator stores the media (so the platform
//! can download it through the normal Graph media flow), consumes a cell of the number's
//! throughput (Meta counts inbound and outbound together), opens the 24 h window, and
//! delivers the `messages` webhook in Meta's exact per-type shape.

use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::errors::GraphError;
use crate::sim::ControlError;
use crate::state::{normalize_phone, Media};
use crate::{ids, webhooks, Sim};

/// A customer message to simulate. Type-specific content goes under the type's key, as in
/// Meta's webhook (`"text": {"body": "hi"}`); media objects may carry `data_base64` +
/// `mime_type` (stored and given a media id) or reference an existing `id`.
#[derive(Debug, Clone, Deserialize)]
pub struct InboundSpec {
    /// Customer phone (wa_id).
    pub from: String,
    /// Profile name (default "Customer").
    #[serde(default)]
    pub profile_name: Option<String>,
    /// Message type: text, image, audio, video, document, sticker, location, contacts,
    /// reaction, button, interactive, order, unsupported, system.
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds (default now).
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// Reply context `{from, id}` (or `{forwarded: true}`).
    #[serde(default)]
    pub context: Option<Value>,
    /// Click-to-WhatsApp referral.
    #[serde(default)]
    pub referral: Option<Value>,
    /// Shortcut for `text.body`.
    #[serde(default)]
    pub body: Option<String>,
    /// The type object(s).
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

/// What the simulator did with an inbound message.
#[derive(Debug, Clone, Serialize)]
pub struct InboundResult {
    /// The message id the platform will see.
    pub wamid: String,
    /// Stored media id, for media types.
    pub media_id: Option<String>,
    /// Webhook delivery id (see the delivery log), if a target is configured.
    pub webhook_id: Option<u64>,
}

const MEDIA_TYPES: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

impl Sim {
    /// Simulates a customer message to `number_id`.
    pub fn inbound(
        &self,
        number_id: &str,
        spec: InboundSpec,
    ) -> Result<InboundResult, ControlError> {
        let number = self.number(number_id)?;
        let from = normalize_phone(&spec.from).ok_or_else(|| ControlError::bad("bad `from`"))?;
        let ts = spec
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let wamid = ids::wamid(&from);
        let kind = spec.kind.as_str();
        let mut fields = spec.fields;
        let mut media_id = None;

        let mut msg = json!({"from": from, "id": wamid, "timestamp": ts.to_string(), "type": kind});
        match kind {
            "text" => {
                let text = match (fields.remove("text"), spec.body) {
                    (Some(t), _) => t,
                    (None, Some(body)) => json!({"body": body}),
                    (None, None) => return Err(ControlError::bad("text.body is required")),
                };
                msg["text"] = text;
            }
            k if MEDIA_TYPES.contains(&k) => {
                let mut obj = fields.remove(k).unwrap_or_else(|| json!({}));
                let o = obj
                    .as_object_mut()
                    .ok_or_else(|| ControlError::bad("media object"))?;
                let media = if let Some(data) = o.remove("data_base64") {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(data.as_str().unwrap_or(""))
                        .map_err(|e| ControlError::bad(format!("data_base64: {e}")))?;
                    let mime = o
                        .get("mime_type")
                        .and_then(Value::as_str)
                        .unwrap_or(default_mime(k))
                        .to_string();
                    let filename = o.get("filename").and_then(Value::as_str).map(String::from);
                    self.store_media(number_id, mime, Bytes::from(bytes), filename)
                } else if let Some(id) = o.get("id").and_then(Value::as_str) {
                    self.inner
                        .media
                        .read()
                        .get(id)
                        .cloned()
                        .ok_or_else(|| ControlError::not_found("media", id))?
                } else {
                    // A tiny placeholder file so the download path always works.
                    self.store_media(
                        number_id,
                        default_mime(k).into(),
                        Bytes::from_static(b"sim"),
                        None,
                    )
                };
                o.insert("id".into(), media.id.clone().into());
                o.insert("mime_type".into(), media.mime_type.clone().into());
                o.insert("sha256".into(), media.sha256.clone().into());
                o.insert(
                    "url".into(),
                    format!("{}/media-lookaside/{}", self.base_url(), media.id).into(),
                );
                if k == "audio" && !o.contains_key("voice") {
                    o.insert("voice".into(), true.into());
                }
                if k == "sticker" && !o.contains_key("animated") {
                    o.insert("animated".into(), false.into());
                }
                media_id = Some(media.id.clone());
                msg[k] = obj;
            }
            "location" | "reaction" | "button" | "interactive" | "order" => {
                let obj = fields
                    .remove(kind)
                    .ok_or_else(|| ControlError::bad(format!("`{kind}` object is required")))?;
                validate_inbound_object(kind, &obj)?;
                msg[kind] = obj;
            }
            "contacts" => {
                let obj = fields
                    .remove("contacts")
                    .filter(Value::is_array)
                    .ok_or_else(|| ControlError::bad("`contacts` array is required"))?;
                msg["contacts"] = obj;
            }
            "unsupported" => {
                msg["errors"] = json!([GraphError::titled(
                    131051,
                    "Message type unknown",
                    "Message type is currently not supported."
                )
                .webhook_object()]);
                if let Some(u) = fields.remove("unsupported") {
                    msg["unsupported"] = u;
                }
            }
            "system" => {
                let obj = fields.remove("system").unwrap_or_else(|| {
                    json!({"body": format!("User {from} changed to a new number"), "wa_id": from, "type": "user_changed_number"})
                });
                msg["system"] = obj;
            }
            other => return Err(ControlError::bad(format!("unknown inbound type `{other}`"))),
        }
        if let Some(ctx) = spec.context {
            msg["context"] = ctx;
        }
        if let Some(r) = spec.referral {
            msg["referral"] = r;
        }

        // Inbound traffic uses the same throughput as outbound, and opens the window.
        number.throughput.lock().consume(Instant::now());
        number.set_last_inbound(&from, Some(ts));
        number
            .inbound_ids
            .lock()
            .insert(wamid.clone(), (from.clone(), ts));
        number.stats.lock().inbound += 1;

        let display = number.config.read().display_phone_number.clone();
        let mut value = json!({
            "messaging_product": "whatsapp",
            "metadata": webhooks::metadata(&display, number_id),
        });
        if kind != "system" {
            value["contacts"] = json!([{
                "profile": {"name": spec.profile_name.unwrap_or_else(|| "Customer".into())},
                "wa_id": from,
            }]);
        }
        value["messages"] = json!([msg]);
        let body = webhooks::envelope(&number.waba_id, "messages", value);
        let webhook_id = self.webhook_target(&number).map(|t| {
            webhooks::emit(
                self,
                t,
                Some(number_id.into()),
                format!("inbound:{kind}"),
                body,
            )
        });
        Ok(InboundResult {
            wamid,
            media_id,
            webhook_id,
        })
    }

    /// Stores media bytes for a number; returns the stored object.
    pub fn store_media(
        &self,
        number_id: &str,
        mime_type: String,
        bytes: Bytes,
        filename: Option<String>,
    ) -> std::sync::Arc<Media> {
        let media = std::sync::Arc::new(Media {
            id: ids::object_id(),
            number_id: number_id.to_string(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            mime_type,
            bytes,
            filename,
        });
        self.inner
            .media
            .write()
            .insert(media.id.clone(), media.clone());
        media
    }
}

fn default_mime(kind: &str) -> &'static str {
    match kind {
        "image" => "image/jpeg",
        "audio" => "audio/ogg",
        "video" => "video/mp4",
        "sticker" => "image/webp",
        _ => "application/pdf",
    }
}

fn validate_inbound_object(kind: &str, obj: &Value) -> Result<(), ControlError> {
    let need = |key: &str| {
        if obj.get(key).is_none() {
            Err(ControlError::bad(format!("{kind}.{key} is required")))
        } else {
            Ok(())
        }
    };
    match kind {
        "location" => {
            need("latitude")?;
            need("longitude")
        }
        "reaction" => {
            need("message_id")?;
            need("emoji")
        }
        "button" => {
            need("payload")?;
            need("text")
        }
        "interactive" => match obj["type"].as_str() {
            Some("button_reply") => need("button_reply"),
            Some("list_reply") => need("list_reply"),
            Some("nfm_reply") => need("nfm_reply"),
            _ => Err(ControlError::bad(
                "interactive.type must be button_reply|list_reply|nfm_reply",
            )),
        },
        _ => Ok(()),
    }
}
