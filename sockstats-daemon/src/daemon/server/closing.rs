//! Why the server closes a connection, with the last line it sends (a refusal with the
//! documented code).
use sockstats_common::protocol::{encode_refusal, ErrorCode};

use super::framing::FrameError;

#[derive(Debug, thiserror::Error)]
pub enum Closing {
    #[error("sockstatsd is serving its maximum of {max} clients; try again shortly")]
    TooManyClients { max: usize },
    #[error("uid {uid} already has {max} connections open, its limit (sockstatsd --max-clients-per-uid); close some")]
    UidLimit { uid: u32, max: usize },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("request line not completed within {seconds} s; closing the connection")]
    RequestTimeout { seconds: u64 },
    #[error("too many fds in one message; the extra ones were discarded; closing the connection")]
    FdsTruncated,
}

impl Closing {
    /// The documented error code (docs/protocol.md).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Closing::TooManyClients { .. }
            | Closing::UidLimit { .. }
            | Closing::FdsTruncated
            | Closing::Frame(FrameError::TooManyFds) => ErrorCode::LimitReached,
            Closing::Frame(FrameError::LineTooLong) | Closing::RequestTimeout { .. } => {
                ErrorCode::BadRequest
            }
        }
    }

    /// The last reply line.
    #[must_use]
    pub fn line(&self) -> String {
        encode_refusal(self.code(), &self.to_string())
    }
}
