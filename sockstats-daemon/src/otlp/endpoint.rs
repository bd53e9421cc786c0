//! `--otlp-endpoint URL`: where the exporter posts, checked once at start.
//!
//! A URL with a path is used as given (the collector's full metrics URL, as
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is); a URL without one (`http://collector:4318` or
//! `http://collector:4318/`) gets the OTLP/HTTP metrics path `/v1/metrics` appended, as
//! `OTEL_EXPORTER_OTLP_ENDPOINT` does. Only `http://` is spoken: `https://` is refused at start.
use std::fmt;

use hyper::Uri;

/// The OTLP/HTTP path of the metrics signal.
pub const METRICS_PATH: &str = "/v1/metrics";

/// Why an `--otlp-endpoint` cannot be used (clap's message names the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "not a URL: give the collector's OTLP/HTTP address, like http://127.0.0.1:4318/v1/metrics"
    )]
    NotAUrl,
    #[error("https is not supported yet; give an http:// URL (a collector or agent on this host or a trusted network)")]
    Https,
    #[error("the scheme {0:?} is not supported; give an http:// URL")]
    Scheme(String),
    #[error("no host: give one, like http://127.0.0.1:4318/v1/metrics")]
    NoHost,
}

/// An `http://` URL to POST OTLP metrics to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(Uri);

impl Endpoint {
    /// Parses `text` (for clap), appending [`METRICS_PATH`] to a URL without a path.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let not_a_url = || EndpointError::NotAUrl;
        let uri: Uri = text.parse().map_err(|_| not_a_url())?;
        let scheme = uri.scheme_str().ok_or_else(not_a_url)?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(EndpointError::Https);
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(EndpointError::Scheme(scheme.to_owned()));
        }
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or(EndpointError::NoHost)?
            .clone();
        let path_and_query = match uri.path_and_query() {
            Some(given) if !matches!(given.path(), "" | "/") => given.as_str().to_owned(),
            given => format!(
                "{METRICS_PATH}{}",
                given
                    .and_then(|p| p.query())
                    .map(|q| format!("?{q}"))
                    .unwrap_or_default()
            ),
        };
        let uri = Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path_and_query)
            .build()
            .map_err(|_| not_a_url())?;
        Ok(Self(uri))
    }

    /// The URL the exporter posts to.
    #[must_use]
    pub fn uri(&self) -> &Uri {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_path_is_kept_and_one_without_gets_v1_metrics() {
        for (given, used) in [
            (
                "http://127.0.0.1:4318/v1/metrics",
                "http://127.0.0.1:4318/v1/metrics",
            ),
            ("http://collector:4318", "http://collector:4318/v1/metrics"),
            ("http://collector:4318/", "http://collector:4318/v1/metrics"),
            (
                "HTTP://collector/otlp/v1/metrics",
                "http://collector/otlp/v1/metrics",
            ),
            (
                "http://[::1]:4318/?tenant=a",
                "http://[::1]:4318/v1/metrics?tenant=a",
            ),
        ] {
            let endpoint = Endpoint::parse(given).unwrap();
            assert_eq!(endpoint.to_string(), used, "{given}");
            assert_eq!(endpoint.uri().to_string(), used, "{given}");
        }
    }

    #[test]
    fn bad_endpoints_are_refused_saying_why() {
        for (given, error) in [
            ("collector:4318", EndpointError::NotAUrl),
            ("not a url", EndpointError::NotAUrl),
            ("127.0.0.1", EndpointError::NotAUrl),
            ("/v1/metrics", EndpointError::NotAUrl),
            ("", EndpointError::NotAUrl),
            ("https://collector:4318/v1/metrics", EndpointError::Https),
            (
                "ftp://collector/v1/metrics",
                EndpointError::Scheme("ftp".to_owned()),
            ),
            (
                "grpc://collector:4317",
                EndpointError::Scheme("grpc".to_owned()),
            ),
            ("http://:4318/v1/metrics", EndpointError::NoHost),
        ] {
            assert_eq!(Endpoint::parse(given), Err(error), "{given:?}");
        }
        let message = Endpoint::parse("https://c/v1/metrics")
            .unwrap_err()
            .to_string();
        assert!(message.contains("https is not supported yet"), "{message}");
        assert!(!message.contains('\n'));
    }
}
