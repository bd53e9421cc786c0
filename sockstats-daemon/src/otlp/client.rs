//! Posting one export to the collector over HTTP/1.1 (hyper-util's client on hyper 1.x), and
//! reading the collector's answer as an [`Outcome`].
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::{
    header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT},
    Request, StatusCode,
};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;

use super::{endpoint::Endpoint, outbox::Outcome};

/// The longest one export may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a collector's answer that is read.
const MAX_ANSWER: usize = 64 * 1024;
/// OTLP/HTTP's binary encoding.
pub const PROTOBUF: &str = "application/x-protobuf";

/// A client of one collector (it keeps the connection open between exports).
#[derive(Debug, Clone)]
pub struct Collector {
    client: Client<HttpConnector, Full<Bytes>>,
    endpoint: Endpoint,
}

impl Collector {
    #[must_use]
    pub fn new(endpoint: Endpoint) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Self { client, endpoint }
    }

    /// POSTs `body` (an encoded `ExportMetricsServiceRequest`), within [`REQUEST_TIMEOUT`].
    pub async fn post(&self, body: Bytes) -> Outcome {
        let request = Request::post(self.endpoint.uri().clone())
            .header(CONTENT_TYPE, PROTOBUF)
            .header(
                USER_AGENT,
                concat!("sockstatsd/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(error) => return Outcome::Refused(format!("cannot make the request: {error}")),
        };
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| describe(&error))?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let answer = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .unwrap_or_default();
            Ok::<_, String>(answered(status, retry_after, &answer))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => Outcome::Retry(error),
            Err(_) => Outcome::Retry(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
        }
    }
}

/// A client error with its causes (hyper-util's own message is only "client error (Connect)").
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the collector's answer means: 2xx delivered (maybe partly rejected), 429 and 5xx
/// retried (not before `retry_after`, the `Retry-After` header in seconds; its HTTP-date form
/// is not read), anything else refused.
#[must_use]
pub fn answered(status: StatusCode, retry_after: Option<Duration>, answer: &[u8]) -> Outcome {
    if status.is_success() {
        let rejected = prost::Message::decode(answer)
            .ok()
            .and_then(|response: ExportMetricsServiceResponse| response.partial_success)
            .filter(|partial| partial.rejected_data_points > 0 || !partial.error_message.is_empty())
            .map(|partial| {
                format!(
                    "the collector rejected {} point(s): {}",
                    partial.rejected_data_points, partial.error_message
                )
            });
        return Outcome::Delivered { rejected };
    }
    let said = String::from_utf8_lossy(&answer[..answer.len().min(200)]);
    let said: String = said
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let reason = format!("the collector answered {status}: {}", said.trim());
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        match retry_after {
            Some(after) => Outcome::RetryAfter(reason, after),
            None => Outcome::Retry(reason),
        }
    } else {
        Outcome::Refused(reason)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
    use prost::Message as _;

    use super::*;

    #[test]
    fn answers_are_delivered_retried_or_refused() {
        assert_eq!(
            answered(StatusCode::OK, None, b""),
            Outcome::Delivered { rejected: None }
        );
        let partial = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 2,
                error_message: "bad unit".to_owned(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            answered(StatusCode::OK, None, &partial),
            Outcome::Delivered {
                rejected: Some("the collector rejected 2 point(s): bad unit".to_owned())
            }
        );
        for status in [429, 500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(answered(status, None, b"busy"), Outcome::Retry(_)),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 413, 301] {
            let status = StatusCode::from_u16(status).unwrap();
            assert!(
                matches!(answered(status, None, b""), Outcome::Refused(_)),
                "{status}"
            );
        }
        assert_eq!(
            answered(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(Duration::from_secs(7)),
                b""
            ),
            Outcome::RetryAfter(
                "the collector answered 503 Service Unavailable: ".to_owned(),
                Duration::from_secs(7)
            )
        );
        assert_eq!(
            answered(StatusCode::BAD_REQUEST, None, b"bad\nrequest\n"),
            Outcome::Refused("the collector answered 400 Bad Request: bad request".to_owned())
        );
    }

    #[tokio::test]
    async fn a_collector_that_is_not_there_is_retried() {
        // A port nothing listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}/v1/metrics")).unwrap();
        let outcome = Collector::new(endpoint)
            .post(Bytes::from_static(b"x"))
            .await;
        let Outcome::Retry(reason) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(reason.contains("onnection refused"), "{reason}");
    }

    #[tokio::test]
    async fn posts_protobuf_to_the_endpoint_and_reads_the_answer() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let serving = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.ends_with(b"\r\n\r\nhello") {
                let read = stream.read(&mut buffer).await.unwrap();
                assert!(read > 0, "{}", String::from_utf8_lossy(&request));
                request.extend_from_slice(&buffer[..read]);
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let outcome = Collector::new(endpoint)
            .post(Bytes::from_static(b"hello"))
            .await;
        assert_eq!(
            outcome,
            Outcome::Retry("the collector answered 503 Service Unavailable: busy".to_owned())
        );
        let request = serving.await.unwrap().to_ascii_lowercase();
        assert!(
            request.starts_with("post /v1/metrics http/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("content-type: application/x-protobuf\r\n"),
            "{request}"
        );
        assert!(request.contains("content-length: 5\r\n"), "{request}");
    }
}
