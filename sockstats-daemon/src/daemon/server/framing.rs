//! Framing of one client connection: bytes and passed fds in, request lines (each with the fds
//! that came with it) out.
//!
//! A client sends a `label` request and its fds in one `sendmsg`. Linux delivers the fds with
//! the first byte of that message and ends a `recvmsg` right after a message that carried fds,
//! but may start it with bytes of earlier messages. So the fds of one `recvmsg` belong to the
//! last line that *starts* in the bytes it returned (or, if none starts there, to the line in
//! progress).
use std::os::fd::OwnedFd;

use sockstats_common::protocol::{MAX_FDS_PER_REQUEST, MAX_LINE_BYTES};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("request line longer than {MAX_LINE_BYTES} bytes; closing the connection")]
    LineTooLong,
    #[error("more than {MAX_FDS_PER_REQUEST} fds passed with one request; closing the connection")]
    TooManyFds,
}

/// One request line (without its newline) and the fds passed with it.
pub type Line = (Vec<u8>, Vec<OwnedFd>);

/// Buffers a connection's input and splits it into lines.
#[derive(Debug, Default)]
pub struct LineFramer {
    buffer: Vec<u8>,
    /// Stream offset of `buffer[0]`, which is always the start of a line.
    offset: u64,
    /// Passed fds waiting for their line, by the stream offset where that line starts.
    pending_fds: Vec<(u64, Vec<OwnedFd>)>,
}

impl LineFramer {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the bytes and fds of one `recvmsg`.
    pub fn push(&mut self, bytes: &[u8], fds: Vec<OwnedFd>) -> Result<(), FrameError> {
        self.buffer.extend_from_slice(bytes);
        if !fds.is_empty() {
            let line_start = self.buffer[..self.buffer.len().saturating_sub(1)]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |newline| newline + 1);
            let at = self.offset + line_start as u64;
            match self.pending_fds.iter_mut().find(|(start, _)| *start == at) {
                Some((_, existing)) => existing.extend(fds),
                None => self.pending_fds.push((at, fds)),
            }
            if self
                .pending_fds
                .iter()
                .any(|(_, fds)| fds.len() > MAX_FDS_PER_REQUEST)
            {
                return Err(FrameError::TooManyFds);
            }
        }
        if !self.buffer.contains(&b'\n') && self.buffer.len() >= MAX_LINE_BYTES {
            return Err(FrameError::LineTooLong);
        }
        Ok(())
    }

    /// Has part of a request line arrived (bytes without their newline yet)?
    #[must_use]
    pub fn has_partial_line(&self) -> bool {
        !self.buffer.is_empty()
    }

    /// The next complete line (without its newline) and the fds passed with it.
    pub fn next_line(&mut self) -> Option<Result<Line, FrameError>> {
        let newline = self.buffer.iter().position(|b| *b == b'\n')?;
        if newline + 1 > MAX_LINE_BYTES {
            return Some(Err(FrameError::LineTooLong));
        }
        let mut line: Vec<u8> = self.buffer.drain(..=newline).collect();
        line.pop();
        let start = self.offset;
        self.offset += newline as u64 + 1;
        let mut fds = Vec::new();
        self.pending_fds.retain_mut(|(at, passed)| {
            if *at == start {
                fds.append(passed);
                false
            } else {
                true
            }
        });
        Some(Ok((line, fds)))
    }
}

#[cfg(test)]
mod tests {
    use std::{fs::File, os::fd::AsRawFd};

    use super::*;

    fn fd() -> OwnedFd {
        File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut framer = LineFramer::new();
        framer.push(b"{\"op\":", Vec::new()).unwrap();
        assert!(framer.next_line().is_none());
        framer
            .push(b"\"get\"}\n{\"op\":\"labels\"}\n{\"op", Vec::new())
            .unwrap();
        assert_eq!(framer.next_line().unwrap().unwrap().0, br#"{"op":"get"}"#);
        assert_eq!(
            framer.next_line().unwrap().unwrap().0,
            br#"{"op":"labels"}"#
        );
        assert!(framer.next_line().is_none());
    }

    #[test]
    fn fds_belong_to_the_last_line_starting_in_their_read() {
        let mut framer = LineFramer::new();
        let passed = fd();
        let raw = passed.as_raw_fd();
        // An earlier request and the label request arrive in one read with the label's fds.
        framer
            .push(
                b"{\"op\":\"get\"}\n{\"op\":\"label\",\"label\":\"a\"}\n",
                vec![passed],
            )
            .unwrap();
        let (get, get_fds) = framer.next_line().unwrap().unwrap();
        assert_eq!(get, br#"{"op":"get"}"#);
        assert!(get_fds.is_empty());
        let (_, label_fds) = framer.next_line().unwrap().unwrap();
        assert_eq!(
            label_fds.iter().map(AsRawFd::as_raw_fd).collect::<Vec<_>>(),
            [raw]
        );
    }

    #[test]
    fn fds_of_a_split_line_stay_with_it() {
        let mut framer = LineFramer::new();
        framer
            .push(b"{\"op\":\"label\",", vec![fd(), fd()])
            .unwrap();
        framer.push(b"\"label\":\"a\"}\n", Vec::new()).unwrap();
        let (_, fds) = framer.next_line().unwrap().unwrap();
        assert_eq!(fds.len(), 2);
    }

    #[test]
    fn refuses_oversized_lines_and_fd_floods() {
        let mut framer = LineFramer::new();
        assert_eq!(
            framer.push(&vec![b'x'; MAX_LINE_BYTES], Vec::new()),
            Err(FrameError::LineTooLong)
        );
        let mut framer = LineFramer::new();
        let mut long = vec![b'x'; MAX_LINE_BYTES + 10];
        long.push(b'\n');
        framer.push(&long, Vec::new()).unwrap();
        assert!(matches!(
            framer.next_line(),
            Some(Err(FrameError::LineTooLong))
        ));
        let mut framer = LineFramer::new();
        let mut exact = vec![b' '; MAX_LINE_BYTES - 1];
        exact.push(b'\n');
        framer.push(&exact, Vec::new()).unwrap();
        assert!(framer.next_line().unwrap().is_ok());
        let mut framer = LineFramer::new();
        let flood = (0..=MAX_FDS_PER_REQUEST).map(|_| fd()).collect();
        assert_eq!(framer.push(b"{}", flood), Err(FrameError::TooManyFds));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1_000, ..Default::default() })]

        /// However a stream of lines is cut into reads, the framer gives back the same lines
        /// (a bounded fuzz run of the framing).
        #[test]
        fn lines_survive_any_split_into_reads(
            lines in proptest::collection::vec("[^\n]{0,200}", 0..20),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..30),
        ) {
            let stream: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain([b'\n'])).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut framer = LineFramer::new();
            let mut got = Vec::new();
            for pair in points.windows(2) {
                framer.push(&stream[pair[0]..pair[1]], Vec::new()).unwrap();
                while let Some(line) = framer.next_line() {
                    got.push(String::from_utf8(line.unwrap().0).unwrap());
                }
            }
            proptest::prop_assert_eq!(got, lines);
            proptest::prop_assert!(!framer.has_partial_line());
        }
    }
}
