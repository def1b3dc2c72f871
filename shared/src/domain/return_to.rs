//! `returnTo` validation: where the browser may be sent after login.
//!
//! Accepted: a path on the BFF's own origin starting with exactly one `/`, or an absolute
//! http(s) URL whose origin is the BFF's or an allowed front-end origin. Everything else
//! is refused, never followed: protocol-relative and backslash forms, other schemes, any
//! whitespace or control character, and encoded forms of these.

use url::Url;

/// Layers of percent-encoding looked through; a value encoded deeper is refused.
const MAX_ENCODING_LAYERS: usize = 4;

/// Longest `returnTo` accepted.
pub const MAX_RETURN_TO_LEN: usize = 2048;

/// Why a `returnTo` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("returnTo must be a path on this site or a URL of an allowed origin")]
pub struct InvalidReturnTo;

/// Validates `raw` (already percent-decoded once, as a query value is) and returns the
/// target to put in `Location`. `None` or empty means `/`.
pub fn validate_return_to(
    raw: Option<&str>,
    public_origin: &str,
    allowed_origins: &[String],
) -> Result<String, InvalidReturnTo> {
    let raw = match raw {
        None | Some("") => return Ok("/".to_owned()),
        Some(raw) => raw,
    };
    if raw.len() > MAX_RETURN_TO_LEN {
        return Err(InvalidReturnTo);
    }
    // Look through every layer of percent-encoding, so `%2F%2Fevil.com` or
    // `%252F%252F...` cannot become `//evil.com` in some later decoder; a value still
    // encoded after that many layers is refused rather than trusted.
    let mut layer = raw.to_owned();
    let mut fully_decoded = false;
    for _ in 0..=MAX_ENCODING_LAYERS {
        if layer.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
            return Err(InvalidReturnTo);
        }
        let decoded = percent_encoding::percent_decode_str(&layer)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == layer {
            fully_decoded = true;
            break;
        }
        if decoded.starts_with("//") || decoded.starts_with("/\\") {
            return Err(InvalidReturnTo);
        }
        layer = decoded;
    }
    if !fully_decoded {
        return Err(InvalidReturnTo);
    }

    let base = Url::parse(&format!("{public_origin}/")).map_err(|_| InvalidReturnTo)?;
    if raw.starts_with('/') {
        if raw.starts_with("//") {
            return Err(InvalidReturnTo);
        }
        // Resolve as a browser would; the origin must not change.
        let resolved = base.join(raw).map_err(|_| InvalidReturnTo)?;
        if resolved.origin() != base.origin() {
            return Err(InvalidReturnTo);
        }
        return Ok(raw.to_owned());
    }

    let url = Url::parse(raw).map_err(|_| InvalidReturnTo)?;
    if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() || url.password().is_some() {
        return Err(InvalidReturnTo);
    }
    // The URL parser accepts forms like `https:evil.com` or `https:/evil.com`; only the
    // canonical `scheme://` spelling is accepted, so browsers and we read the same host.
    if !raw.to_ascii_lowercase().starts_with(&format!("{}://", url.scheme())) {
        return Err(InvalidReturnTo);
    }
    let origin = url.origin().ascii_serialization();
    if origin == public_origin || allowed_origins.contains(&origin) {
        Ok(url.to_string())
    } else {
        Err(InvalidReturnTo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "https://app.example.com";

    fn check(raw: &str) -> Result<String, InvalidReturnTo> {
        validate_return_to(Some(raw), ORIGIN, &["https://front.example.com".to_owned()])
    }

    #[test]
    fn missing_or_empty_return_to_means_root() {
        assert_eq!(validate_return_to(None, ORIGIN, &[]).as_deref(), Ok("/"));
        assert_eq!(validate_return_to(Some(""), ORIGIN, &[]).as_deref(), Ok("/"));
    }

    #[test]
    fn own_paths_and_allowed_absolute_urls_are_accepted() {
        for ok in ["/", "/orders?x=1", "/a/b#frag", "/caf%C3%A9", "/search?q=a+b"] {
            assert_eq!(check(ok).as_deref(), Ok(ok), "{ok}");
        }
        assert_eq!(
            check("https://front.example.com/home").as_deref(),
            Ok("https://front.example.com/home")
        );
        assert_eq!(
            check("https://app.example.com/x").as_deref(),
            Ok("https://app.example.com/x")
        );
    }

    #[test]
    fn open_redirect_forms_are_refused() {
        let attacks = [
            "//evil.com",
            "///evil.com",
            "/\\evil.com",
            "\\\\evil.com",
            "/\\/evil.com",
            "https://evil.com",
            "http://evil.com",
            "evil.com",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "%2F%2Fevil.com",
            "/%2F%2Fevil.com",
            "%252F%252Fevil.com",
            "/%5Cevil.com",
            "/%09/evil.com",
            " /orders",
            "/orders\n",
            "/search?q=a%20b",
            "/ord ers",
            "/\u{0}x",
            "https:evil.com",
            "https:/evil.com",
            "https://front.example.com@evil.com",
            "https://app.example.com.evil.com/",
            "https://front.example.com:444/",
            "http://front.example.com/",
            "ftp://front.example.com/",
            "/\u{3000}evil",
            // Deeply nested encodings of a control character, a backslash and `//`.
            "/%%2532502",
            "/%25252509x",
            "/a%2525255Cb",
            "/%252525252Fevil.com",
        ];
        for attack in attacks {
            assert_eq!(check(attack), Err(InvalidReturnTo), "{attack:?} must be refused");
        }
    }

    #[test]
    fn overlong_return_to_is_refused() {
        assert!(check(&format!("/{}", "a".repeat(MAX_RETURN_TO_LEN))).is_err());
    }
}
