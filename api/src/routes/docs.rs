//! `/api/v1/openapi.json` (generated from the handlers' annotations) and `/docs`, Swagger UI
//! served from files vendored into the binary, so the page works without network access.

use axum::{
    http::header,
    response::{Html, IntoResponse},
    routing::get,
    Json, Router,
};
use utoipa::openapi::OpenApi;

const SWAGGER_JS: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");

const DOCS_PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Wharf API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "/api/v1/openapi.json", dom_id: "#swagger-ui", persistAuthorization: true });
  </script>
</body>
</html>"##;

pub fn router<S: Clone + Send + Sync + 'static>(spec: OpenApi) -> Router<S> {
    let spec = std::sync::Arc::new(spec);
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move { Json(spec.as_ref().clone()) }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
        .route("/docs/", get(|| async { Html(DOCS_PAGE) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/javascript")],
                    SWAGGER_JS,
                )
                    .into_response()
            }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], SWAGGER_CSS).into_response() }),
        )
}
