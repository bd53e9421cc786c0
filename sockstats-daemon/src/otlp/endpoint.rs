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

/// Why an `--otlp-endpoint` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0:?} is not a URL: give the collector's OTLP/HTTP address, like http://127.0.0.1:4318/v1/metrics")]
    NotAUrl(String),
    #[error("{0:?}: https is not supported yet; give an http:// URL (a collector or agent on this host or a trusted network)")]
    Https(String),
    #[error("{url:?}: the scheme {scheme:?} is not supported; give an http:// URL")]
    Scheme { url: String, scheme: String },
    #[error("{0:?} has no host: give one like http://127.0.0.1:4318/v1/metrics")]
    NoHost(String),
}

/// An `http://` URL to POST OTLP metrics to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint(Uri);

impl Endpoint {
    /// Parses `text` (for clap), appending [`METRICS_PATH`] to a URL without a path.
    pub fn parse(text: &str) -> Result<Self, EndpointError> {
        let not_a_url = || EndpointError::NotAUrl(text.to_owned());
        let uri: Uri = text.parse().map_err(|_| not_a_url())?;
        let scheme = uri.scheme_str().ok_or_else(not_a_url)?;
        if scheme.eq_ignore_ascii_case("https") {
            return Err(EndpointError::Https(text.to_owned()));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(EndpointError::Scheme {
                url: text.to_owned(),
                scheme: scheme.to_owned(),
            });
        }
        let authority = uri
            .authority()
            .filter(|a| !a.host().is_empty())
            .ok_or_else(|| EndpointError::NoHost(text.to_owned()))?
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
            (
                "collector:4318",
                EndpointError::NotAUrl("collector:4318".to_owned()),
            ),
            (
                "ftp://collector/v1/metrics",
                EndpointError::Scheme {
                    url: "ftp://collector/v1/metrics".to_owned(),
                    scheme: "ftp".to_owned(),
                },
            ),
            ("not a url", EndpointError::NotAUrl("not a url".to_owned())),
            ("127.0.0.1", EndpointError::NotAUrl("127.0.0.1".to_owned())),
            (
                "/v1/metrics",
                EndpointError::NotAUrl("/v1/metrics".to_owned()),
            ),
            ("", EndpointError::NotAUrl(String::new())),
            (
                "https://collector:4318/v1/metrics",
                EndpointError::Https("https://collector:4318/v1/metrics".to_owned()),
            ),
            (
                "grpc://collector:4317",
                EndpointError::Scheme {
                    url: "grpc://collector:4317".to_owned(),
                    scheme: "grpc".to_owned(),
                },
            ),
            (
                "http://:4318/v1/metrics",
                EndpointError::NoHost("http://:4318/v1/metrics".to_owned()),
            ),
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
