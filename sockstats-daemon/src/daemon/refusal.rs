//! A refused request: the code programs act on and the message people read.
use sockstats_common::protocol::{encode_refusal, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    #[must_use]
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The reply line.
    #[must_use]
    pub fn encode(&self) -> String {
        encode_refusal(self.code, &self.message)
    }
}

impl From<String> for Refusal {
    fn from(message: String) -> Self {
        Self::new(ErrorCode::Failed, message)
    }
}

impl From<crate::labels::RegistryError> for Refusal {
    fn from(error: crate::labels::RegistryError) -> Self {
        use crate::labels::RegistryError;
        let code = match &error {
            RegistryError::BadName(_) => ErrorCode::BadLabel,
            RegistryError::Full { .. } | RegistryError::UidQuota { .. } => ErrorCode::LimitReached,
            _ => ErrorCode::Failed,
        };
        Self::new(code, error.to_string())
    }
}

/// Who sent a request: its uid (`SO_PEERCRED`) and its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    /// Unique per connection for the daemon's lifetime (temporary rules belong to one).
    pub connection: u64,
}

impl Peer {
    /// Refuses unless the peer is root.
    pub fn require_root(&self, what: &str) -> Result<(), Refusal> {
        if self.uid == 0 {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::NotPermitted,
                format!("only root may {what}; this client runs as uid {}", self.uid),
            ))
        }
    }
}
