//! Small request and response helpers shared by the edge: query and header reading,
//! JSON, redirect and page answers.
//!
//! Requests and responses are `lambda_http`'s (`http` types with a Lambda body), so the
//! same handler serves a function URL event and a local HTTP request.

use http::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use http::{HeaderMap, StatusCode};
use lambda_http::{Body, Request, Response};

/// The query parameters of a request, percent-decoded, in order.
pub fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The one value of query parameter `name`: `Err` when it is given more than once, so
/// a duplicated `state` or `code` cannot be read differently by two parsers.
pub fn single_param<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, String> {
    let mut values = pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("`{name}` is given more than once"));
    }
    Ok(first)
}

/// A header's value as text, when present exactly once and valid ASCII.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::Text(value.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(NOSNIFF.0, HeaderValue::from_static(NOSNIFF.1));
    response
}

/// Browsers must take the BFF's own answers for what their `Content-Type` says.
const NOSNIFF: (&str, &str) = ("x-content-type-options", "nosniff");

/// A `302 Found` to `location`. Fails only if `location` is not a valid header value,
/// which validated redirect targets never are.
pub fn redirect(location: &str) -> Result<Response<Body>, http::header::InvalidHeaderValue> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::FOUND;
    response
        .headers_mut()
        .insert(LOCATION, HeaderValue::from_str(location)?);
    Ok(response)
}

/// The error page's look: the demo front end's palette, light and dark, in one inline
/// style sheet (the page's CSP allows inline styles and nothing else).
const PAGE_STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f6f8fa;--card:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;\
--accent:#0969da;--accent-fg:#fff;--bad:#cf222e;--bad-bg:#ffebe9;--code:#f6f8fa}\
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#151b23;--fg:#e6edf3;--muted:#9198a1;\
--line:#3d444d;--accent:#2f81f7;--bad:#f85149;--bad-bg:#2d1214;--code:#0d1117}}\
*{box-sizing:border-box}\
body{margin:0;background:var(--bg);color:var(--fg);\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",sans-serif}\
main{max-width:44rem;margin:0 auto;padding:2.5rem 1rem 3rem}\
h1{margin:0 0 1.5rem;font-size:1.6rem;letter-spacing:-.01em}\
.card{background:var(--bad-bg);border:1px solid var(--bad);border-radius:10px;padding:1.25rem 1.5rem;\
margin-bottom:1rem;overflow-wrap:anywhere}\
.card p{margin:0}.card .code{margin-top:.75rem;color:var(--muted);font-size:.875rem}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);\
border:1px solid var(--line);border-radius:4px;padding:0 .3em}\
a.button{display:inline-block;font-weight:500;padding:.5rem 1.1rem;border-radius:6px;\
background:var(--accent);color:var(--accent-fg);text-decoration:none}\
a.button:hover{filter:brightness(1.08)}";

/// A short human-readable HTML page in the demo's look; `title`, `message` and `code`
/// are escaped here.
pub fn html_page(status: StatusCode, title: &str, message: &str, code: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>{PAGE_STYLE}</style></head>\
         <body><main><h1>{title}</h1><div class=\"card\" role=\"alert\"><p>{message}</p>\
         <p class=\"code\">Error code: <code>{code}</code></p></div>\
         <p><a class=\"button\" href=\"/\">Back to the application</a></p></main></body></html>\n",
        title = escape_html(title),
        message = escape_html(message),
        code = escape_html(code),
    );
    let mut response = Response::new(Body::Text(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(NOSNIFF.0, HeaderValue::from_static(NOSNIFF.1));
    // The page shows text only: no script, no style sheet, no frame may load.
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    response
}

/// Appends a `Set-Cookie` header.
pub fn set_cookie<B>(response: &mut Response<B>, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(http::header::SET_COOKIE, value);
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The request body as bytes, whatever form the Lambda event gave it.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        // Body is non-exhaustive upstream; any other form carries no readable payload.
        #[allow(unreachable_patterns)]
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_page_escapes_everything_it_shows() {
        let page = html_page(StatusCode::BAD_REQUEST, "<b>", "<script>alert('x')</script>&", "<i>");
        let Body::Text(html) = page.body() else {
            panic!("text body")
        };
        assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
    }

    #[test]
    fn repeated_query_parameters_are_refused() {
        let pairs = vec![
            ("state".to_owned(), "a".to_owned()),
            ("state".to_owned(), "b".to_owned()),
        ];
        assert!(single_param(&pairs, "state").is_err());
        assert_eq!(single_param(&pairs, "code"), Ok(None));
    }
}
