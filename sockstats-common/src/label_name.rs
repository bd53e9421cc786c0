//! Label names: what is accepted, and why anything else is refused.
//!
//! A label is 1–64 characters from `[A-Za-z0-9._:/-]`, so it is safe in a file name component of
//! the state dir, in Prometheus label values and in a terminal, without escaping.

/// Longest accepted label name, in bytes (every accepted character is one byte).
pub const MAX_LABEL_LEN: usize = 64;

/// The name under which bytes of sockets nobody labeled are reported. It cannot be registered.
pub const UNLABELED_NAME: &str = "unlabeled";

/// Why a label name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelNameError {
    /// The name is empty.
    #[error("label name is empty; use 1 to {MAX_LABEL_LEN} characters from [A-Za-z0-9._:/-]")]
    Empty,
    /// The name is longer than [`MAX_LABEL_LEN`] bytes (all its characters are allowed ones).
    #[error("label name is {len} bytes long; the limit is {MAX_LABEL_LEN}")]
    TooLong {
        /// The name's length in bytes.
        len: usize,
    },
    /// The name has a character outside `[A-Za-z0-9._:/-]`.
    #[error(
        "label name has {character:?} at position {position}; only [A-Za-z0-9._:/-] are allowed"
    )]
    BadCharacter {
        /// The first such character.
        character: char,
        /// Its position in the name, in characters (not bytes), from 0.
        position: usize,
    },
    /// The name is [`UNLABELED_NAME`], which cannot be registered.
    #[error("label name \"{UNLABELED_NAME}\" cannot be registered: it is the name of sockets without a label")]
    Reserved,
}

fn is_allowed(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '.' | '_' | ':' | '/' | '-')
}

/// Checks `name` against the documented rules.
pub fn validate(name: &str) -> Result<(), LabelNameError> {
    if name.is_empty() {
        return Err(LabelNameError::Empty);
    }
    if let Some((position, character)) = name.chars().enumerate().find(|(_, c)| !is_allowed(*c)) {
        return Err(LabelNameError::BadCharacter {
            character,
            position,
        });
    }
    if name.len() > MAX_LABEL_LEN {
        return Err(LabelNameError::TooLong { len: name.len() });
    }
    if name == UNLABELED_NAME {
        return Err(LabelNameError::Reserved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for name in [
            "a",
            "web",
            "client.v2",
            "team/service:grpc-1",
            "A_b",
            &"x".repeat(64),
        ] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_everything_else_with_the_reason() {
        assert_eq!(validate(""), Err(LabelNameError::Empty));
        assert_eq!(
            validate(&"x".repeat(65)),
            Err(LabelNameError::TooLong { len: 65 })
        );
        assert_eq!(
            validate("has space"),
            Err(LabelNameError::BadCharacter {
                character: ' ',
                position: 3
            })
        );
        assert_eq!(
            validate("naïve"),
            Err(LabelNameError::BadCharacter {
                character: 'ï',
                position: 2
            })
        );
        assert_eq!(
            validate("line\nbreak"),
            Err(LabelNameError::BadCharacter {
                character: '\n',
                position: 4
            })
        );
        assert_eq!(validate("unlabeled"), Err(LabelNameError::Reserved));
    }

    #[test]
    fn messages_say_what_to_do() {
        let message = validate("a b").unwrap_err().to_string();
        assert!(message.contains("[A-Za-z0-9._:/-]"), "{message}");
    }
}
