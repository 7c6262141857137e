//! Client for Meta's WhatsApp Cloud (Graph) API: every call the platform makes, with typed
//! responses and classified errors ([`MetaError`]). The base URL is configurable
//! (`META_GRAPH_URL`), so tests and local runs talk to the simulator over real HTTP.

mod error;

use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, RequestBuilder};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

pub use error::{classify_code, parse_graph_error, ErrorClass, GraphError, MetaError};

use crate::Config;

#[derive(Clone)]
pub struct MetaClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
}

/// `POST /{phone_number_id}/messages` success.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SendResponse {
    #[serde(default)]
    pub contacts: Vec<SendContact>,
    pub messages: Vec<SentMessage>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SendContact {
    pub input: Option<String>,
    pub wa_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SentMessage {
    pub id: String,
    pub message_status: Option<String>,
}

impl SendResponse {
    pub fn wamid(&self) -> Option<&str> {
        self.messages.first().map(|m| m.id.as_str())
    }
}

/// `GET /{media_id}`: a download URL valid for five minutes.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MediaInfo {
    pub id: Option<String>,
    pub url: String,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    /// Meta sends this as a string.
    #[serde(default, deserialize_with = "string_or_number")]
    pub file_size: Option<u64>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    })
}

/// `GET /{phone_number_id}` (the fields we read).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    pub display_phone_number: Option<String>,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub status: Option<String>,
    pub platform_type: Option<String>,
    pub throughput: Option<Throughput>,
    pub whatsapp_business_manager_messaging_limit: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Throughput {
    pub level: Option<String>,
}

impl PhoneNumberInfo {
    /// Messages per second Meta allows this number (ARCHITECTURE.md, "Rate limits").
    pub fn messages_per_second(&self) -> u32 {
        match self.throughput.as_ref().and_then(|t| t.level.as_deref()) {
            Some("HIGH") => 1000,
            _ => 80,
        }
    }
}

/// A page of a Graph list (`data` + `paging.cursors.after`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GraphPage<T> {
    pub data: Vec<T>,
    pub paging: Option<Paging>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Paging {
    pub cursors: Option<Cursors>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Cursors {
    pub before: Option<String>,
    pub after: Option<String>,
}

impl<T> GraphPage<T> {
    /// The cursor of the next page, when there is one.
    pub fn next_cursor(&self) -> Option<String> {
        let paging = self.paging.as_ref()?;
        paging.next.as_ref()?;
        paging.cursors.as_ref()?.after.clone()
    }
}

/// Meta's management-call budget for one business object, from `x-business-use-case-usage`
/// (percent of the hourly allowance; throttled at 100; ARCHITECTURE.md, "Meta facts").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BucUsage {
    pub call_count: u64,
    pub total_cputime: u64,
    pub total_time: u64,
    /// Minutes until calls are allowed again (0 when not throttled).
    pub minutes_to_regain: u64,
}

impl BucUsage {
    /// The highest of the three percentages.
    pub fn percent(&self) -> u64 {
        self.call_count.max(self.total_cputime).max(self.total_time)
    }

    /// Parses the header; with `object_id`, that object's entries (else all), the worst of them.
    pub fn parse(header: &str, object_id: Option<&str>) -> Option<Self> {
        let v: Value = serde_json::from_str(header).ok()?;
        let obj = v.as_object()?;
        let mut out: Option<BucUsage> = None;
        for (id, entries) in obj {
            if object_id.is_some_and(|o| o != id) && obj.contains_key(object_id.unwrap_or_default())
            {
                continue;
            }
            for e in entries.as_array().into_iter().flatten() {
                let n = |k: &str| {
                    e[k].as_u64()
                        .or_else(|| e[k].as_f64().map(|f| f as u64))
                        .unwrap_or(0)
                };
                let u = BucUsage {
                    call_count: n("call_count"),
                    total_cputime: n("total_cputime"),
                    total_time: n("total_time"),
                    minutes_to_regain: n("estimated_time_to_regain_access"),
                };
                out = Some(match out {
                    None => u,
                    Some(o) => BucUsage {
                        call_count: o.call_count.max(u.call_count),
                        total_cputime: o.total_cputime.max(u.total_cputime),
                        total_time: o.total_time.max(u.total_time),
                        minutes_to_regain: o.minutes_to_regain.max(u.minutes_to_regain),
                    },
                });
            }
        }
        out
    }
}

#[derive(Debug, Deserialize)]
struct AccessTokenResponse {
    access_token: String,
}

#[derive(Debug, Deserialize)]
struct MediaUploadResponse {
    id: String,
}

impl MetaClient {
    pub fn new(base_url: &str, version: &str) -> Self {
        Self::with_timeout(base_url, version, Duration::from_secs(30))
    }

    pub fn with_timeout(base_url: &str, version: &str, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            // As many idle connections as a dispatcher has sends in flight (2,048): with fewer, a
            // fast campaign closed and reopened connections all the time (a connect per few sends).
            .pool_max_idle_per_host(2048)
            .build()
            .expect("reqwest client with static settings");
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            version: version.to_string(),
        }
    }

    pub fn from_config(config: &Config) -> Self {
        Self::with_timeout(
            &config.meta_graph_url,
            &config.meta_api_version,
            config.meta_timeout,
        )
    }

    /// `{base}/{version}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base_url,
            self.version,
            path.trim_start_matches('/')
        )
    }

    fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// Sends a request and decodes a JSON success; errors are classified.
    async fn call<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T, MetaError> {
        let bytes = self.call_raw(req).await?;
        serde_json::from_slice(&bytes).map_err(|_| MetaError::Unexpected {
            status: 200,
            body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        })
    }

    async fn call_raw(&self, req: RequestBuilder) -> Result<Bytes, MetaError> {
        let res = req.send().await.map_err(transport_error)?;
        let status = res.status().as_u16();
        let body = res.bytes().await.map_err(transport_error)?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        match parse_graph_error(status, &body) {
            Some(g) => Err(MetaError::Graph(g)),
            None => Err(MetaError::Unexpected {
                status,
                body: String::from_utf8_lossy(&body).chars().take(500).collect(),
            }),
        }
    }

    /// `POST /{phone_number_id}/messages` with a complete Cloud API message body.
    pub async fn send_message(
        &self,
        token: &str,
        phone_number_id: &str,
        body: &Value,
    ) -> Result<SendResponse, MetaError> {
        self.call(
            self.request(Method::POST, &format!("{phone_number_id}/messages"), token)
                .json(body),
        )
        .await
    }

    /// [`Self::send_message`] with the body already serialized: the campaign dispatcher has
    /// it as text (it stores it), so it is not built and serialized a second time per send.
    pub async fn send_message_text(
        &self,
        token: &str,
        phone_number_id: &str,
        body: String,
    ) -> Result<SendResponse, MetaError> {
        self.call(
            self.request(Method::POST, &format!("{phone_number_id}/messages"), token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body),
        )
        .await
    }

    /// Marks an inbound message as read (and the ones before it).
    pub async fn mark_read(
        &self,
        token: &str,
        phone_number_id: &str,
        wamid: &str,
    ) -> Result<(), MetaError> {
        let body = serde_json::json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
        let _: Value = self
            .call(
                self.request(Method::POST, &format!("{phone_number_id}/messages"), token)
                    .json(&body),
            )
            .await?;
        Ok(())
    }

    /// A fresh download URL for a media id (valid five minutes).
    pub async fn media_info(&self, token: &str, media_id: &str) -> Result<MediaInfo, MetaError> {
        self.call(self.request(Method::GET, media_id, token)).await
    }

    /// Downloads media from a URL returned by [`Self::media_info`], with the bearer token.
    /// Refuses bodies larger than `max_bytes`.
    pub async fn download_media(
        &self,
        token: &str,
        url: &str,
        max_bytes: u64,
    ) -> Result<Bytes, MetaError> {
        let res = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(transport_error)?;
        let status = res.status().as_u16();
        if !(200..300).contains(&status) {
            let body = res.bytes().await.unwrap_or_default();
            return Err(match parse_graph_error(status, &body) {
                Some(g) => MetaError::Graph(g),
                None => MetaError::Unexpected {
                    status,
                    body: String::from_utf8_lossy(&body).chars().take(200).collect(),
                },
            });
        }
        if res.content_length().is_some_and(|n| n > max_bytes) {
            return Err(MetaError::Unexpected {
                status,
                body: format!("media larger than {max_bytes} bytes"),
            });
        }
        let body = res.bytes().await.map_err(transport_error)?;
        if body.len() as u64 > max_bytes {
            return Err(MetaError::Unexpected {
                status,
                body: format!("media larger than {max_bytes} bytes"),
            });
        }
        Ok(body)
    }

    /// Uploads media for sending; returns its id.
    pub async fn upload_media(
        &self,
        token: &str,
        phone_number_id: &str,
        bytes: Vec<u8>,
        mime_type: &str,
        filename: &str,
    ) -> Result<String, MetaError> {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(filename.to_string())
            .mime_str(mime_type)
            .map_err(|e| MetaError::Unexpected {
                status: 0,
                body: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new()
            .text("messaging_product", "whatsapp")
            .text("type", mime_type.to_string())
            .part("file", part);
        let res: MediaUploadResponse = self
            .call(
                self.request(Method::POST, &format!("{phone_number_id}/media"), token)
                    .multipart(form),
            )
            .await?;
        Ok(res.id)
    }

    /// Phone number details: display number, quality, throughput level, messaging limit.
    pub async fn phone_number(
        &self,
        token: &str,
        phone_number_id: &str,
    ) -> Result<PhoneNumberInfo, MetaError> {
        let fields = "id,display_phone_number,verified_name,quality_rating,code_verification_status,name_status,\
                      status,platform_type,throughput,whatsapp_business_manager_messaging_limit";
        self.call(
            self.request(Method::GET, phone_number_id, token)
                .query(&[("fields", fields)]),
        )
        .await
    }

    /// The numbers of a WABA.
    pub async fn waba_phone_numbers(
        &self,
        token: &str,
        waba_id: &str,
    ) -> Result<GraphPage<PhoneNumberInfo>, MetaError> {
        self.call(self.request(Method::GET, &format!("{waba_id}/phone_numbers"), token))
            .await
    }

    /// Embedded Signup: exchanges the code for a business token.
    pub async fn exchange_code(
        &self,
        app_id: &str,
        app_secret: &str,
        code: &str,
    ) -> Result<String, MetaError> {
        let req = self.http.get(self.url("oauth/access_token")).query(&[
            ("client_id", app_id),
            ("client_secret", app_secret),
            ("code", code),
        ]);
        let res: AccessTokenResponse = self.call(req).await?;
        Ok(res.access_token)
    }

    /// The WABAs a business token may manage (`debug_token` granular scopes), for Embedded
    /// Signup sessions that did not report the WABA id.
    pub async fn token_wabas(
        &self,
        app_id: &str,
        app_secret: &str,
        token: &str,
    ) -> Result<Vec<String>, MetaError> {
        let app_token = format!("{app_id}|{app_secret}");
        let req = self
            .http
            .get(self.url("debug_token"))
            .query(&[("input_token", token), ("access_token", app_token.as_str())]);
        let v: Value = self.call(req).await?;
        let mut wabas: Vec<String> = v["data"]["granular_scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["scope"] == "whatsapp_business_management")
            .flat_map(|s| s["target_ids"].as_array().cloned().unwrap_or_default())
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect();
        wabas.dedup();
        Ok(wabas)
    }

    /// Subscribes our app to the WABA's webhooks.
    pub async fn subscribe_app(&self, token: &str, waba_id: &str) -> Result<(), MetaError> {
        let _: Value = self
            .call(self.request(Method::POST, &format!("{waba_id}/subscribed_apps"), token))
            .await?;
        Ok(())
    }

    /// Unsubscribes our app from the WABA's webhooks.
    pub async fn unsubscribe_app(&self, token: &str, waba_id: &str) -> Result<(), MetaError> {
        let _: Value = self
            .call(self.request(Method::DELETE, &format!("{waba_id}/subscribed_apps"), token))
            .await?;
        Ok(())
    }

    /// Registers a number for Cloud API use with its two-step verification PIN.
    pub async fn register_number(
        &self,
        token: &str,
        phone_number_id: &str,
        pin: &str,
    ) -> Result<(), MetaError> {
        let body = serde_json::json!({"messaging_product": "whatsapp", "pin": pin});
        let _: Value = self
            .call(
                self.request(Method::POST, &format!("{phone_number_id}/register"), token)
                    .json(&body),
            )
            .await?;
        Ok(())
    }

    /// One page of a WABA's message templates.
    pub async fn list_templates(
        &self,
        token: &str,
        waba_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<GraphPage<Value>, MetaError> {
        let mut req = self
            .request(Method::GET, &format!("{waba_id}/message_templates"), token)
            .query(&[("limit", limit.to_string())]);
        if let Some(a) = after {
            req = req.query(&[("after", a)]);
        }
        self.call(req).await
    }

    /// Creates a template; Meta answers `{"id","status","category"}`.
    pub async fn create_template(
        &self,
        token: &str,
        waba_id: &str,
        body: &Value,
    ) -> Result<Value, MetaError> {
        self.call(
            self.request(Method::POST, &format!("{waba_id}/message_templates"), token)
                .json(body),
        )
        .await
    }

    /// Edits a template's components or category.
    pub async fn edit_template(
        &self,
        token: &str,
        template_id: &str,
        body: &Value,
    ) -> Result<Value, MetaError> {
        self.call(self.request(Method::POST, template_id, token).json(body))
            .await
    }

    /// Deletes a template by name (all languages), or one language by its id.
    pub async fn delete_template(
        &self,
        token: &str,
        waba_id: &str,
        name: &str,
        hsm_id: Option<&str>,
    ) -> Result<(), MetaError> {
        let mut req = self
            .request(
                Method::DELETE,
                &format!("{waba_id}/message_templates"),
                token,
            )
            .query(&[("name", name)]);
        if let Some(id) = hsm_id {
            req = req.query(&[("hsm_id", id)]);
        }
        let _: Value = self.call(req).await?;
        Ok(())
    }

    /// One page of a WABA's message templates with the requested `fields`, and the
    /// management-call budget Meta reported with it (`x-business-use-case-usage`), also on
    /// errors: a throttled caller learns how long to wait.
    pub async fn list_templates_with_usage(
        &self,
        token: &str,
        waba_id: &str,
        after: Option<&str>,
        limit: u32,
        fields: Option<&str>,
    ) -> (Result<GraphPage<Value>, MetaError>, Option<BucUsage>) {
        let mut req = self
            .request(Method::GET, &format!("{waba_id}/message_templates"), token)
            .query(&[("limit", limit.to_string())]);
        if let Some(a) = after {
            req = req.query(&[("after", a)]);
        }
        if let Some(f) = fields {
            req = req.query(&[("fields", f)]);
        }
        let res = match req.send().await {
            Ok(r) => r,
            Err(e) => return (Err(transport_error(e)), None),
        };
        let usage = res
            .headers()
            .get("x-business-use-case-usage")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| BucUsage::parse(v, Some(waba_id)));
        let status = res.status().as_u16();
        let body = match res.bytes().await {
            Ok(b) => b,
            Err(e) => return (Err(transport_error(e)), usage),
        };
        if !(200..300).contains(&status) {
            let err = match parse_graph_error(status, &body) {
                Some(g) => MetaError::Graph(g),
                None => MetaError::Unexpected {
                    status,
                    body: String::from_utf8_lossy(&body).chars().take(500).collect(),
                },
            };
            return (Err(err), usage);
        }
        let page = serde_json::from_slice(&body).map_err(|_| MetaError::Unexpected {
            status,
            body: String::from_utf8_lossy(&body).chars().take(500).collect(),
        });
        (page, usage)
    }

    /// Any GET on the Graph (e.g. the WABA's `pricing_analytics` field).
    pub async fn get_json(
        &self,
        token: &str,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Value, MetaError> {
        self.call(self.request(Method::GET, path, token).query(query))
            .await
    }
}

fn transport_error(e: reqwest::Error) -> MetaError {
    // A connect failure never reached Meta; anything later may have.
    let request_sent = !e.is_connect();
    if e.is_timeout() {
        MetaError::Timeout { request_sent }
    } else {
        MetaError::Transport {
            message: e.to_string(),
            request_sent,
        }
    }
}
