//! GraphiQL from the binary: the page and every file it loads are embedded (vendored from npm
//! in `assets/graphiql/`, refreshed by its `refresh.sh`), so the playground works with no
//! internet. The page opens with a first query, and with an `Authorization` header to fill in
//! when `[auth]` is on.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Where the page loads its files from (outside `/graphql`, so no credential is needed).
pub const ASSETS: &str = "/assets/graphiql";

/// The embedded files: name, content type, bytes.
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "graphiql.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/graphiql/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js"),
    ),
];

const DEFAULT_QUERY: &str = "# contact-gateway: five contact providers behind one Contact type.
# Run with the ▶ button (or Ctrl-Enter).
{
  providers { id enabled capabilities }
  contacts(first: 10) {
    nodes { id provider displayName primaryEmail primaryPhone company tags }
    pageInfo { hasNextPage endCursor }
  }
}
";

/// The playground page. `auth`: prefill the headers editor with an `Authorization` header.
pub fn page(auth: bool) -> Html<String> {
    let headers = if auth {
        r#"{ "Authorization": "Bearer <your API key or JWT>" }"#
    } else {
        ""
    };
    let config = serde_json::json!({
        "url": "/graphql",
        "defaultQuery": DEFAULT_QUERY,
        "defaultHeaders": headers,
    });
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>contact-gateway · GraphiQL</title>
  <link rel="stylesheet" href="{ASSETS}/graphiql.min.css">
  <style>body {{ margin: 0; }} #graphiql {{ height: 100vh; }}</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="{ASSETS}/react.production.min.js"></script>
  <script src="{ASSETS}/react-dom.production.min.js"></script>
  <script src="{ASSETS}/graphiql.min.js"></script>
  <script>
    const config = {config};
    // Subscriptions over a WebSocket to the same /graphql; the headers editor's values are
    // sent as the connection_init payload (where a credential goes).
    const subscriptionUrl = location.origin.replace(/^http/, 'ws') + config.url;
    const fetcher = GraphiQL.createFetcher({{ url: config.url, subscriptionUrl }});
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultQuery: config.defaultQuery,
        defaultHeaders: config.defaultHeaders,
        shouldPersistHeaders: true,
      }})
    );
  </script>
</body>
</html>
"#
    ))
}

/// One embedded file, cached by browsers for a day (they change only with the binary).
pub async fn asset(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=86400"),
                ),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
